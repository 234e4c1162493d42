//! LISTEN for wake-ups, so a job enqueued by an app starts within milliseconds instead of
//! at the next poll. If the connection drops, the worker keeps polling while it
//! reconnects; in poll-only mode (PgBouncer transaction pooling) this task is not started.

use std::sync::Arc;
use std::time::Duration;

use pgwa_pg::notify::Listener;

use super::Shared;

pub const CHANNELS: [&str; 4] = ["wa_jobs", "wa_job_cancel", "wa_sessions", "wa_schedules"];

pub async fn run(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen(&shared).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "LISTEN connection lost; polling meanwhile");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                // Whatever was notified while we were away is found by this poll.
                shared.mark_all_hot();
            }
        }
    }
}

async fn listen(shared: &Arc<Shared>) -> anyhow::Result<()> {
    let mut listener = Listener::connect(&shared.pool, &CHANNELS).await?;
    shared.mark_all_hot();
    loop {
        let n = tokio::select! {
            n = listener.recv() => n?,
            _ = shared.stopping.cancelled() => return Ok(()),
        };
        match n.channel.as_str() {
            "wa_jobs" => {
                // {"sessions": [...]} names the sessions that got jobs ("" for maintenance);
                // null or anything unexpected means: look at all of them.
                let named = serde_json::from_str::<serde_json::Value>(&n.payload)
                    .ok()
                    .and_then(|v| v.get("sessions").and_then(|s| s.as_array()).cloned());
                match named {
                    Some(ids) if ids.iter().all(|i| i.as_str().is_some_and(|s| !s.is_empty())) => {
                        shared.mark_hot(ids.iter().filter_map(|i| i.as_str()));
                    }
                    _ => shared.mark_all_hot(),
                }
            }
            "wa_job_cancel" => {
                // Anyone who can connect can NOTIFY: the payload only says which row to
                // read; the row says whether wa.cancel_job asked for this job to go.
                let job = serde_json::from_str::<serde_json::Value>(&n.payload).ok().and_then(|v| v.get("job")?.as_i64());
                if let Some(id) = job {
                    tokio::spawn(note_cancel(shared.clone(), id));
                }
            }
            "wa_schedules" => shared.wake_schedules.notify_one(),
            _ => shared.wake_lease.notify_one(),
        }
    }
}

async fn note_cancel(shared: Arc<Shared>, job: i64) {
    match pgwa_pg::jobs::cancel_requested(&shared.pool, shared.id, job).await {
        Ok(true) => {
            if let Ok(mut c) = shared.cancelled.lock() {
                c.insert(job);
            }
        }
        Ok(false) => {}
        // The job then runs; cancelling a claimed job is best effort (README, wa.cancel_job).
        Err(e) => tracing::warn!(job, error = %e, "could not read a cancel request"),
    }
}
