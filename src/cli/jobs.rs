//! `pgwa jobs ...`

use clap::Subcommand;
use sqlx::PgPool;

use pgwa_pg::admin::{self, JobFilter};

#[derive(Subcommand, Debug)]
pub enum JobsCmd {
    /// List jobs, newest first.
    List {
        #[arg(long)]
        session: Option<String>,
        /// available, scheduled, running, retryable, completed, dead or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// send, reconnect, key_cleanup, close_session or maintenance.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one job with its payload, errors and result.
    Show { id: i64 },
    /// Run a dead, cancelled or waiting job again now.
    Retry { id: i64 },
    /// Cancel a job that has not run.
    Cancel { id: i64 },
}

pub async fn run(cmd: JobsCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::List { session, state, kind, limit } => {
            let f = JobFilter { session: session.as_deref(), state: state.as_deref(), kind: kind.as_deref(), limit };
            let rows = admin::jobs(pool, &f).await?;
            println!(
                "{:>10} {:<20} {:<13} {:<10} {:>8} {:<10} LAST ERROR",
                "ID", "SESSION", "KIND", "STATE", "ATTEMPTS", "DELIVERY"
            );
            for r in &rows {
                println!(
                    "{:>10} {:<20} {:<13} {:<10} {:>8} {:<10} {}",
                    r.id,
                    r.session_id.as_deref().unwrap_or("-"),
                    r.kind,
                    r.state,
                    format!("{}/{}", r.attempts, r.max_attempts),
                    r.delivery.as_deref().unwrap_or("-"),
                    r.last_error.as_deref().unwrap_or("")
                );
            }
            println!("{} job(s)", rows.len());
            Ok(())
        }
        JobsCmd::Show { id } => match admin::job_json(pool, id).await? {
            Some(v) => {
                println!("{}", serde_json::to_string_pretty(&v)?);
                Ok(())
            }
            None => anyhow::bail!("job: no job with id {id}; see `pgwa jobs list`"),
        },
        JobsCmd::Retry { id } => {
            let state: String = sqlx::query_scalar("SELECT wa.retry_job($1)::text").bind(id).fetch_one(pool).await?;
            println!("job {id}: {state}");
            Ok(())
        }
        JobsCmd::Cancel { id } => {
            let state: String = sqlx::query_scalar("SELECT wa.cancel_job($1)::text").bind(id).fetch_one(pool).await?;
            match state.as_str() {
                "running" => println!("job {id}: running; its worker drops it if it has not started it yet"),
                s => println!("job {id}: {s}"),
            }
            Ok(())
        }
    }
}
