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
    /// Run a dead, cancelled or waiting job again now; or, without an id, every job
    /// the filter picks (dead ones unless --state says otherwise).
    Retry {
        id: Option<i64>,
        #[command(flatten)]
        pick: Pick,
    },
    /// Cancel a job that has not run; or, without an id, every job the filter picks
    /// (at least one filter).
    Cancel {
        id: Option<i64>,
        #[command(flatten)]
        pick: Pick,
    },
}

/// Which jobs `retry` and `cancel` move when no id is given (wa.retry_jobs, wa.cancel_jobs).
#[derive(clap::Args, Debug)]
pub struct Pick {
    #[arg(long)]
    session: Option<String>,
    #[arg(long)]
    kind: Option<pgwa_core::job::JobKind>,
    #[arg(long)]
    state: Option<pgwa_core::job::JobState>,
    /// Only jobs whose last error contains this text (any case).
    #[arg(long)]
    error: Option<String>,
    /// At most this many, oldest first.
    #[arg(long, default_value_t = 1000)]
    max: i32,
}

impl Pick {
    fn any(&self) -> bool {
        self.session.is_some() || self.kind.is_some() || self.state.is_some() || self.error.is_some()
    }

    fn filter(&self) -> pgwa_pg::api::JobPick<'_> {
        pgwa_pg::api::JobPick {
            session: self.session.as_deref(),
            kind: self.kind.map(|k| k.to_string()),
            state: self.state.map(|s| s.to_string()),
            error_contains: self.error.as_deref(),
            max_jobs: self.max,
        }
    }
}

/// The job id, or None for a bulk call; both at once is refused.
fn one_or_many(id: Option<i64>, pick: &Pick, verb: &str) -> anyhow::Result<Option<i64>> {
    match id {
        Some(_) if pick.any() => anyhow::bail!("give a job id or a filter (--session, --kind, --state, --error), not both"),
        Some(id) => Ok(Some(id)),
        None if verb == "cancel" && !pick.any() => anyhow::bail!(
            "name the job to cancel, or a filter (--session, --kind, --state, --error): cancelling every job at once is not done"
        ),
        None => Ok(None),
    }
}

pub async fn run(cmd: JobsCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::List { session, state, kind, limit, json } => {
            let f = JobFilter { session: session.as_deref(), state, kind, error_contains: None, limit };
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
        JobsCmd::Retry { id, pick } => {
            let Some(id) = one_or_many(id, &pick, "retry")? else {
                let n = pgwa_pg::api::retry_jobs(pool, &pick.filter()).await?;
                say(format!("retried {n} job{}", if n == 1 { "" } else { "s" }));
                return Ok(());
            };
            let state = pgwa_pg::api::retry_job(pool, id).await?;
            say(format!("job {id}: {state}"));
            Ok(())
        }
        JobsCmd::Cancel { id, pick } => {
            let Some(id) = one_or_many(id, &pick, "cancel")? else {
                let n = pgwa_pg::api::cancel_jobs(pool, &pick.filter()).await?;
                say(format!(
                    "cancelled {n} job{} (running ones are dropped by their worker if not started yet)",
                    if n == 1 { "" } else { "s" }
                ));
                return Ok(());
            };
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
