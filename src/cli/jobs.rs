//! `pgwa jobs ...`

use clap::Subcommand;
use pgwa_pg::PgPool;

use super::log::{self, say};
use super::table::{self, Col};
use pgwa_pg::admin::{self, JobFilter};

#[derive(Subcommand, Debug)]
pub enum JobsCmd {
    /// List jobs, newest first.
    List {
        #[arg(long)]
        session: Option<String>,
        /// available, scheduled, running, retryable, completed, dead or cancelled.
        #[arg(long)]
        state: Option<pgwa_core::job::JobState>,
        /// send, reconnect, key_cleanup, close_session, maintenance, mark_read, presence
        /// or check_numbers.
        #[arg(long)]
        kind: Option<pgwa_core::job::JobKind>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// One JSON array of objects instead of the table.
        #[arg(long)]
        json: bool,
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
        JobsCmd::List { session, state, kind, limit, json } => {
            let f = JobFilter { session: session.as_deref(), state, kind, limit };
            let rows = admin::jobs(pool, &f).await?;
            let cols = [
                Col::Right("ID"),
                Col::Left("SESSION"),
                Col::Left("KIND"),
                Col::Left("STATE"),
                Col::Right("ATTEMPTS"),
                Col::Left("DELIVERY"),
                Col::Left("LAST ERROR"),
            ];
            table::print(&rows, json, &cols, "job", |r| {
                vec![
                    r.id.to_string(),
                    r.session_id.clone().unwrap_or_else(|| "-".into()),
                    r.kind.to_string(),
                    r.state.to_string(),
                    format!("{}/{}", r.attempts, r.max_attempts),
                    r.delivery.map_or_else(|| "-".into(), |d| d.to_string()),
                    r.last_error.clone().unwrap_or_default(),
                ]
            })
        }
        JobsCmd::Show { id } => match admin::job_json(pool, id).await? {
            Some(v) => log::out(&(serde_json::to_string_pretty(&v)? + "\n")),
            None => anyhow::bail!("job: no job with id {id}; see `pgwa jobs list`"),
        },
        JobsCmd::Retry { id } => {
            let state = pgwa_pg::api::retry_job(pool, id).await?;
            say(format!("job {id}: {state}"));
            Ok(())
        }
        JobsCmd::Cancel { id } => {
            let state = pgwa_pg::api::cancel_job(pool, id).await?;
            match state {
                pgwa_core::job::JobState::Running => {
                    say(format!("job {id}: running; its worker drops it if it has not started it yet"))
                }
                s => say(format!("job {id}: {s}")),
            }
            Ok(())
        }
    }
}
