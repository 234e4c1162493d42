//! Waiting for a job a command queued: the commands that answer with the job's outcome
//! (check-numbers, create-group) rather than a job id.

use std::time::{Duration, Instant};

use pgwa_core::job::JobState;
use pgwa_pg::PgPool;
use pgwa_pg::api::JobProgress;

/// Waits up to `timeout` for job `job` of `session` to finish. Completed: its progress;
/// anything else is an error that says where to look.
pub async fn completed(pool: &PgPool, job: i64, session: &str, timeout: Duration) -> anyhow::Result<JobProgress> {
    let started = Instant::now();
    let mut told = false;
    let done = loop {
        let p = pgwa_pg::api::job_progress(pool, job).await?;
        if p.finished() {
            break p;
        }
        if started.elapsed() >= timeout {
            anyhow::bail!(
                "job {job} is still {} after {} s: session {session} must be connected for it to run; \
                 see `pgwa session list`, then `pgwa jobs show {job}`",
                p.state,
                timeout.as_secs(),
            );
        }
        if !told && started.elapsed() >= Duration::from_secs(3) {
            eprintln!("waiting for session {session} to run job {job} (now {})", p.state);
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if done.state != JobState::Completed {
        anyhow::bail!(
            "job {job} is {}: {}; see `pgwa jobs show {job}`",
            done.state,
            done.last_error.as_deref().unwrap_or("no error recorded")
        );
    }
    Ok(done)
}
