//! LISTEN for wake-ups, so a job enqueued by an app starts within milliseconds instead of
//! at the next poll. If the connection drops, the worker keeps polling while it
//! reconnects; in poll-only mode (PgBouncer transaction pooling) this task is not started.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pgwa_core::backoff::Backoff;
use pgwa_pg::notify::Listener;

use super::Shared;

pub const CHANNELS: [&str; 6] = ["wa_jobs", "wa_job_cancel", "wa_sessions", "wa_schedules", "wa_link", "wa_session_status"];

/// Between LISTEN connection attempts: 100 ms doubling to 10 s, without jitter; the
/// worker polls meanwhile, so a long pause costs latency, not work.
const RETRY: Backoff = Backoff::doubling(Duration::from_millis(100), Duration::from_secs(10));

pub async fn run(shared: Arc<Shared>) {
    keep_listening(RETRY, || listen(&shared), || shared.mark_all_hot()).await
}

/// Runs `listen` again after each failure, with `retry`'s pauses, until it returns Ok
/// (shutdown). `after_pause` runs before each new attempt.
async fn keep_listening<F: Future<Output = anyhow::Result<()>>>(
    retry: Backoff,
    mut listen: impl FnMut() -> F,
    after_pause: impl Fn(),
) {
    for pause in retry.delays() {
        let Err(e) = listen().await else { return };
        tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "LISTEN connection lost; polling meanwhile");
        tokio::time::sleep(pause).await;
        // Whatever was notified while we were away is found by this poll.
        after_pause();
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
            // Only connect pages care; each re-reads the row the payload names.
            "wa_link" | "wa_session_status" => tell_pages(shared, &n.payload),
            _ => {
                tell_pages(shared, &n.payload);
                shared.wake_lease.notify_one()
            }
        }
    }
}

fn tell_pages(shared: &Shared, payload: &str) {
    if shared.link_changes.receiver_count() == 0 {
        return;
    }
    let session =
        serde_json::from_str::<serde_json::Value>(payload).ok().and_then(|v| v.get("session")?.as_str().map(str::to_owned));
    if let Some(s) = session {
        let _ = shared.link_changes.send(s);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    /// The LISTEN connection fails 9 times, then holds until shutdown: the attempts are
    /// 100 ms doubling to 10 s apart, and every pause ends with a poll of all sessions.
    #[tokio::test(start_paused = true)]
    async fn reconnects_after_growing_pauses_and_polls_after_each() {
        let attempts = Mutex::new(Vec::new());
        let polls = Mutex::new(0);
        let start = Instant::now();
        let listen = || {
            let mut a = attempts.lock().unwrap();
            a.push(start.elapsed().as_millis());
            let fail = a.len() < 10;
            async move { if fail { Err(anyhow::anyhow!("connection refused")) } else { Ok(()) } }
        };
        keep_listening(RETRY, listen, || *polls.lock().unwrap() += 1).await;
        let gaps: Vec<u128> = attempts.lock().unwrap().windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(*polls.lock().unwrap(), 9);
    }
}
