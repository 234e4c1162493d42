//! Records outcomes in batches: while one batch is being written, the next accumulates,
//! so at high load a statement covers hundreds of jobs and at low load one job waits for
//! one round trip. Every write is fenced (see pgwa_pg::jobs).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::Shared;
use pgwa_core::backoff::Backoff;
use pgwa_core::job::{ClaimedJob, Outcome};
use pgwa_pg::held_conn::HeldConn;
use pgwa_pg::jobs::Recorded;

/// A job and what running it came to.
pub struct Done {
    pub job: ClaimedJob,
    pub outcome: Outcome,
}

const MAX_BATCH: usize = 2000;

/// Under load (the last batch held more than one job), a batch smaller than
/// [`LINGER_BELOW`] waits this long for company: with ten chats in flight a statement
/// recorded about three jobs, and each statement is a commit. Waiting 2 ms cut the
/// statements by two thirds and a message's CPU by a tenth (BENCHMARKS.md, 2026-12-02).
/// A lone outcome never waits, so a quiet worker's latency is unchanged.
const BUSY_LINGER: std::time::Duration = std::time::Duration::from_millis(2);
const LINGER_BELOW: usize = 64;

/// Pauses between attempts to record a batch: 100 ms doubling to 2 s, 20 retries (about
/// half a minute) before the jobs are left to the lease's recovery.
const WRITE_RETRY: Backoff = Backoff::doubling(std::time::Duration::from_millis(100), std::time::Duration::from_secs(2));
const WRITE_RETRIES: usize = 20;

pub async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Done>) {
    let mut db = HeldConn::new(shared.queue.clone());
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut busy = false;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if busy {
            gather(&mut rx, &mut batch).await;
        }
        busy = batch.len() > 1;
        let t = std::time::Instant::now();
        // Once per batch, not per attempt to record it.
        record_metrics(&batch);
        let writes = Writes::take(&shared, &mut batch);
        let mut pauses = WRITE_RETRY.delays().take(WRITE_RETRIES);
        loop {
            let result = flush(&shared, &mut db, &writes, &batch).await;
            if result.is_err() {
                db.reset();
            }
            match result {
                Ok(recorded) => {
                    shared.announcer.announce(recorded);
                    break;
                }
                Err(e) => match pauses.next() {
                    Some(pause) if !shared.release_leases.is_cancelled() => {
                        tracing::warn!(error = %e, jobs = batch.len(), "recording outcomes failed; retrying");
                        tokio::time::sleep(pause).await;
                    }
                    _ => {
                        // The jobs stay running in the database and are recovered with the
                        // session's lease; nothing is lost, some work may be repeated.
                        tracing::error!(error = %e, jobs = batch.len(), "giving up recording outcomes");
                        break;
                    }
                },
            }
        }
        tracing::debug!(jobs = batch.len(), ms = t.elapsed().as_millis() as u64, "recorded outcomes");
        shared.mark_hot(to_claim_again(&shared, &batch).iter().map(String::as_str));
        // Room was freed: a loop that stopped for lack of it claims again.
        shared.wake_blocked();
        shared.in_flight.fetch_sub(batch.len(), Ordering::SeqCst);
        batch.clear();
    }
}

/// A small batch while busy waits [`BUSY_LINGER`] for the outcomes that come meanwhile,
/// then takes them too.
async fn gather<T>(rx: &mut mpsc::UnboundedReceiver<T>, batch: &mut Vec<T>) {
    if batch.len() >= LINGER_BELOW {
        return;
    }
    tokio::time::sleep(BUSY_LINGER).await;
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(d) => batch.push(d),
            Err(_) => break,
        }
    }
}

/// The sessions of a recorded batch that need another claim: those a claim looked at
/// while their jobs ran (it may have held back a send of the same chat), and those with
/// jobs handed back unattempted.
fn to_claim_again(shared: &Shared, batch: &[Done]) -> Vec<String> {
    let mut per_session: foldhash::HashMap<&str, (Vec<Option<&str>>, bool)> = Default::default();
    for d in batch {
        if let Some(s) = d.job.session_id.as_deref() {
            let e = per_session.entry(s).or_default();
            e.0.push(d.job.chat.as_deref());
            e.1 |= matches!(d.outcome, Outcome::Release);
        }
    }
    let mut again = Vec::new();
    for (session, (chats, released)) in per_session {
        let overlapped = shared.slots.in_flight(session).is_some_and(|c| c.recorded(chats));
        if overlapped || released {
            again.push(session.to_owned());
        }
    }
    again
}

#[derive(Default)]
struct Completions {
    ids: Vec<i64>,
    results: Vec<serde_json::Value>,
    acked: Vec<Option<DateTime<Utc>>>,
}

#[derive(Default)]
struct Failures {
    ids: Vec<i64>,
    errors: Vec<String>,
    backoff_ms: Vec<i64>,
    dead: Vec<bool>,
}

/// A batch's outcomes as the statements' arrays, made once and kept for the retries.
#[derive(Default)]
struct Writes {
    ok: Completions,
    failed: Failures,
    released: Vec<i64>,
    cancelled: Vec<i64>,
}

impl Writes {
    /// Takes the completed jobs' results out of the batch (the rows keep them; nothing
    /// after the write reads them) instead of copying each.
    fn take(shared: &Shared, batch: &mut [Done]) -> Self {
        let mut w = Writes::default();
        let (ok, failed) = (&mut w.ok, &mut w.failed);
        for d in batch {
            match &mut d.outcome {
                Outcome::Completed { result, acked_at } => {
                    ok.ids.push(d.job.id);
                    ok.acked.push(*acked_at);
                    ok.results.push(std::mem::take(result));
                }
                Outcome::Retry { error, after } => {
                    let attempt = u32::try_from(d.job.attempts).unwrap_or(1);
                    let delay = after.unwrap_or_else(|| shared.cfg.retry.backoff().delay(attempt));
                    failed.ids.push(d.job.id);
                    failed.errors.push(error.clone());
                    failed.backoff_ms.push(delay.as_millis() as i64);
                    failed.dead.push(false);
                }
                Outcome::Fail { error } => {
                    failed.ids.push(d.job.id);
                    failed.errors.push(error.clone());
                    failed.backoff_ms.push(0);
                    failed.dead.push(true);
                }
                Outcome::Release => w.released.push(d.job.id),
                Outcome::Cancelled => w.cancelled.push(d.job.id),
            }
        }
        w
    }
}

async fn flush(shared: &Arc<Shared>, db: &mut HeldConn, w: &Writes, batch: &[Done]) -> anyhow::Result<Vec<Recorded>> {
    let Writes { ok, failed, released, cancelled } = w;
    let me = shared.id;
    let mut refused = 0;
    let mut recorded = Vec::new();
    if !ok.ids.is_empty() {
        let done = pgwa_pg::jobs::complete(db.conn().await?, me, &ok.ids, &ok.results, &ok.acked).await?;
        refused += (ok.ids.len() - done.len()) as u64;
        recorded.extend(done);
    }
    if !failed.ids.is_empty() {
        let done =
            pgwa_pg::jobs::fail(db.conn().await?, me, &failed.ids, &failed.errors, &failed.backoff_ms, &failed.dead).await?;
        refused += (failed.ids.len() - done.len()) as u64;
        log_deaths(batch, &done);
        recorded.extend(done);
        if let Some(min) = failed.backoff_ms.iter().zip(&failed.dead).filter(|(_, d)| !**d).map(|(b, _)| *b).min() {
            wake_after(shared, min);
        }
    }
    if !released.is_empty() {
        pgwa_pg::jobs::release(db.conn().await?, me, released).await?;
    }
    if !cancelled.is_empty() {
        pgwa_pg::jobs::cancel_claimed(db.conn().await?, me, cancelled).await?;
    }
    if refused > 0 {
        metrics::counter!(pgwa_core::metrics::OUTCOMES_REFUSED).increment(refused);
        tracing::warn!(refused, "outcomes refused by the fence: sessions changed hands; checking leases");
        shared.wake_lease.notify_one();
    }
    Ok(recorded)
}

/// A dead job needs a person (wa.retry_job, or a fix of what it sends): say so once, for
/// the jobs the outcome statement made dead (it decides, from the attempts it counts).
fn log_deaths(batch: &[Done], recorded: &[Recorded]) {
    for r in recorded.iter().filter(|r| r.dead) {
        let Some(d) = batch.iter().find(|d| d.job.id == r.id) else { continue };
        let error = match &d.outcome {
            Outcome::Retry { error, .. } | Outcome::Fail { error } => error.as_str(),
            _ => "",
        };
        tracing::warn!(
            job = d.job.id,
            kind = %d.job.kind.as_str(),
            session = %d.job.session_id.as_deref().unwrap_or("-"),
            attempts = d.job.attempts,
            error,
            "job dead: no more attempts (retry it with `pgwa jobs retry {}` or wa.retry_job)",
            d.job.id
        );
    }
}

/// A retry is due in `ms`: wake the dispatcher then rather than at the next poll.
fn wake_after(shared: &Arc<Shared>, ms: i64) {
    let shared = Arc::downgrade(shared);
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(ms.max(0) as u64 + 5)).await;
        if let Some(s) = shared.upgrade() {
            s.mark_all_hot();
        }
    });
}

/// Counts a batch's outcomes per kind and outcome, and adds each count once: a labelled
/// counter or histogram is a registry lookup (a key built and hashed) per call, which per
/// job was a measurable share of the worker's CPU in a burst.
fn record_metrics(batch: &[Done]) {
    use pgwa_core::metrics as m;
    let mut counts: std::collections::BTreeMap<(&'static str, &'static str), u64> = Default::default();
    let mut durations: std::collections::BTreeMap<&'static str, metrics::Histogram> = Default::default();
    let (mut sent, mut errors) = (0u64, 0u64);
    for d in batch {
        let kind = d.job.kind.as_str();
        *counts.entry((kind, d.outcome.label())).or_default() += 1;
        if !matches!(d.outcome, Outcome::Release | Outcome::Cancelled) {
            durations
                .entry(kind)
                .or_insert_with(|| metrics::histogram!(m::JOB_DURATION, "kind" => kind))
                .record(d.job.claimed_at.elapsed().as_secs_f64());
        }
        match &d.outcome {
            Outcome::Completed { .. } if d.job.kind == pgwa_core::job::JobKind::Send => sent += 1,
            Outcome::Retry { .. } | Outcome::Fail { .. } => errors += 1,
            _ => {}
        }
    }
    for ((kind, outcome), n) in counts {
        metrics::counter!(m::JOBS, "kind" => kind, "outcome" => outcome).increment(n);
    }
    if sent > 0 {
        metrics::counter!(m::MESSAGES_SENT).increment(sent);
    }
    if errors > 0 {
        m::errors("job", errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{Duration, Instant};

    /// A batch as `run` receives it, and a task sending `late` after `after`.
    async fn received(first: usize, late: usize, after: Duration) -> (mpsc::UnboundedReceiver<usize>, Vec<usize>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        (0..first).for_each(|i| tx.send(i).unwrap());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            (0..late).for_each(|i| tx.send(first + i).unwrap());
        });
        let mut batch = Vec::new();
        rx.recv_many(&mut batch, MAX_BATCH).await;
        (rx, batch)
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_batch_takes_the_outcomes_of_its_linger() {
        let (mut rx, mut batch) = received(3, 4, Duration::from_millis(1)).await;
        let t = Instant::now();
        gather(&mut rx, &mut batch).await;
        assert_eq!(t.elapsed(), BUSY_LINGER);
        assert_eq!(batch, (0..7).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn what_comes_after_the_linger_waits_for_the_next_batch() {
        let (mut rx, mut batch) = received(2, 1, BUSY_LINGER * 2).await;
        gather(&mut rx, &mut batch).await;
        assert_eq!(batch, [0, 1]);
        assert_eq!(rx.recv().await, Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_batch_goes_at_once() {
        let (mut rx, mut batch) = received(LINGER_BELOW, 1, Duration::ZERO).await;
        tokio::task::yield_now().await;
        let t = Instant::now();
        gather(&mut rx, &mut batch).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
        assert_eq!(batch.len(), LINGER_BELOW);
    }
}
