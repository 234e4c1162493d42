//! The dispatcher: promotes due jobs, claims batches for the sessions this worker holds,
//! and runs them. Within a batch, a session's control jobs run first; then each chat's
//! sends run one after the other in id order (chats in parallel), so a later message
//! never overtakes an earlier one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use pgwa_core::backoff::Backoff;
use tokio::time::Instant;

use super::Shared;
use super::completer::Done;
use pgwa_core::job::{Claimed, ClaimedJob, JobKind, Outcome};
use pgwa_pg::held_conn::HeldConn;
use pgwa_pg::jobs::{self, ClaimRequest};

/// Pauses after failed claims: short for a blip, growing while Postgres stays away, so a
/// worker does not hammer a database that is restarting.
const CLAIM_RETRY: Backoff = Backoff::doubling(Duration::from_millis(200), Duration::from_secs(5)).with_jitter(0.5, 1.0);

pub async fn run(shared: Arc<Shared>, claimer: usize) {
    let poll = Duration::from_millis(shared.cfg.worker.poll_interval_ms);
    let mut db = HeldConn::new(shared.queue.clone());
    let mut failures = 0u32;
    // Kept across wake-ups: a wake-up claims only the sessions it names, and only a poll
    // promotes jobs whose time has come, so NOTIFYs coming sooner than the interval (any
    // steady traffic) must not put the poll off.
    let mut poll_at = Instant::now() + poll;
    loop {
        if shared.stopping.is_cancelled() {
            return;
        }
        if Instant::now() >= poll_at {
            shared.keep_all_hot(claimer);
            poll_at = Instant::now() + poll;
        }
        let mut found = false;
        match round(&shared, claimer, &mut db).await {
            Ok(f) => {
                found = f;
                failures = 0;
            }
            Err(e) => {
                db.reset();
                failures = failures.saturating_add(1);
                let pause = CLAIM_RETRY.delay(failures);
                tracing::warn!(error = %e, failures, retry_in_ms = pause.as_millis() as u64, "claim failed; retrying");
                shared.mark_all_hot();
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shared.stopping.cancelled() => return,
                }
            }
        }
        if found {
            continue;
        }
        tokio::select! {
            _ = shared.woken(claimer) => {}
            _ = tokio::time::sleep_until(poll_at) => {}
            _ = shared.stopping.cancelled() => return,
        }
    }
}

/// One claim over the hot sessions (all of them after a poll, with due jobs promoted
/// first). Returns true when it found work: the dispatcher then claims again at once
/// while there is room, so claims overlap the running batches.
async fn round(shared: &Arc<Shared>, claimer: usize, db: &mut HeldConn) -> anyhow::Result<bool> {
    let hot = shared.take_hot(claimer);
    let (mut held, mut connected) = shared.slots.claimable();
    held.retain(|s| shared.claimer_of(s) == claimer);
    connected.retain(|s| shared.claimer_of(s) == claimer);
    match &hot {
        None => {
            // Maintenance jobs are promoted (and claimed) by the first loop only.
            if claimer == 0 || !held.is_empty() {
                jobs::promote_due(db.conn().await?, &held).await?;
            }
        }
        Some(ids) if ids.is_empty() => return Ok(false),
        Some(ids) => {
            held.retain(|s| ids.contains(s));
            connected.retain(|s| ids.contains(s));
        }
    }
    let cap = shared.cfg.worker.max_in_flight as usize;
    let room = cap.saturating_sub(shared.in_flight.load(Ordering::SeqCst));
    let limit = room.min(shared.cfg.worker.claim_batch as usize);
    if limit == 0 {
        // Full: the completer wakes us as outcomes are recorded.
        shared.set_blocked(claimer);
        match &hot {
            Some(ids) => shared.keep_hot(ids),
            None => shared.keep_all_hot(claimer),
        }
        return Ok(false);
    }
    let per_session = (limit / connected.len().max(1)).max(1) as i64;
    // Session-less jobs (maintenance, webhook deliveries) go to the first loop's full
    // rounds; a NOTIFY for one, or a batch of them, makes the next round a full one.
    // Each webhook has at most one delivery claimable (FIFO), so a batch spans webhooks.
    let sessionless =
        if hot.is_none() && claimer == 0 { limit.min(shared.cfg.webhooks.claim_batch.max(2) as usize) as i64 } else { 0 };
    shared.slots.claiming(&held);
    let req = ClaimRequest { worker: shared.id, held: &held, connected: &connected, per_session, sessionless };
    let t = std::time::Instant::now();
    let mut claimed = jobs::claim(db.conn().await?, &req).await?;
    let n = claimed.len();
    tracing::debug!(claimed = n, limit, sessions = held.len(), ms = t.elapsed().as_millis() as u64, "claim");
    if n == 0 {
        return Ok(false);
    }
    shared.in_flight.fetch_add(n, Ordering::SeqCst);
    // Stable: each session's jobs stay in id order.
    claimed.sort_by(|a, b| a.job.session_id.cmp(&b.job.session_id));
    for jobs in runs(claimed, |a, b| a.job.session_id == b.job.session_id) {
        if let Some(id) = &jobs[0].job.session_id {
            // A session that filled its share may have more jobs behind this batch; one
            // that did not has none claimable now (new ones are announced, blocked chats
            // are woken by their outcomes), and claiming it again at once would cost a
            // round trip per job at low load.
            if jobs.len() as i64 >= per_session {
                shared.mark_hot([id.as_str()]);
            }
            if let Some(f) = shared.slots.in_flight(id) {
                f.claimed(jobs.iter().map(|c| c.job.chat.as_deref()));
            }
        } else {
            shared.mark_all_hot();
        }
        tokio::spawn(run_session_batch(shared.clone(), jobs));
    }
    Ok(true)
}

/// Control jobs first, one at a time; then one lane per chat for its sends, and one of
/// its own for each other job on the connection (a read receipt, a number check), which
/// has no order to keep and must not wait behind a chat's sends.
async fn run_session_batch(shared: Arc<Shared>, jobs: Vec<Claimed>) {
    let (mut connected, control): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|c| c.job.kind.needs_connection());
    for Claimed { job, payload } in control {
        let outcome = run_one(&shared, &job, payload).await;
        shared.finish(Done { job, outcome });
    }
    let send = |c: &Claimed| matches!(c.job.kind, JobKind::Send);
    // Sends first, by chat; stable, so each chat's sends stay in id order.
    connected.sort_by(|a, b| (!send(a), &a.job.chat).cmp(&(!send(b), &b.job.chat)));
    let lanes = runs(connected, |a, b| send(a) && send(b) && a.job.chat == b.job.chat);
    let mut running: FuturesUnordered<_> = lanes.into_iter().map(|lane| run_lane(&shared, lane)).collect();
    while running.next().await.is_some() {}
}

/// Splits `items`, in which equal keys are adjacent, into runs of equal keys in their
/// order, each run allocated once at its size. Grouping by comparing neighbours, instead
/// of in a map keyed by session or chat, copies no key: each copy was an allocation.
fn runs<T>(items: Vec<T>, same: impl Fn(&T, &T) -> bool) -> Vec<Vec<T>> {
    let mut lens = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || !same(&items[i - 1], &items[i]) {
            lens.push(i - start);
            start = i;
        }
    }
    let mut items = items.into_iter();
    lens.into_iter().map(|n| items.by_ref().take(n).collect()).collect()
}

/// A chat's sends in order. After a failure that will be retried, the rest of the lane
/// goes back unattempted: it must wait behind the failed message.
async fn run_lane(shared: &Arc<Shared>, lane: Vec<Claimed>) {
    let mut blocked = false;
    for Claimed { job, payload } in lane {
        let outcome =
            if blocked || shared.stopping.is_cancelled() { Outcome::Release } else { run_one(shared, &job, payload).await };
        if matches!(outcome, Outcome::Retry { .. } | Outcome::Release) {
            blocked = true;
        }
        shared.finish(Done { job, outcome });
    }
}

/// Runs a job once, its payload handed to the handler.
async fn run_one(shared: &Arc<Shared>, job: &ClaimedJob, payload: serde_json::Value) -> Outcome {
    if shared.take_cancelled(job.id) {
        return Outcome::Cancelled;
    }
    let ctx = crate::jobs::JobCtx {
        job,
        worker: shared.id,
        pool: &shared.pool,
        slots: &shared.slots,
        retention: &shared.cfg.retention,
        webhooks: &shared.cfg.webhooks,
        webhook_clients: &shared.webhook_clients,
        media_store: shared.media_store.as_ref(),
        wake_lease: &shared.wake_lease,
    };
    let outcome = crate::jobs::run(&ctx, payload).await;
    if let Outcome::Retry { error, .. } | Outcome::Fail { error } = &outcome {
        tracing::debug!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %error, "job failed");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_split_at_each_change_of_key_and_keep_the_order_within() {
        let items = vec![("a", 1), ("a", 2), ("b", 3), ("b", 4), ("b", 5), ("a", 6)];
        let got = runs(items, |x, y| x.0 == y.0);
        assert_eq!(got, vec![vec![("a", 1), ("a", 2)], vec![("b", 3), ("b", 4), ("b", 5)], vec![("a", 6)]]);
        assert!(got.iter().all(|run| run.capacity() == run.len()), "each run is allocated once, at its size");
        assert!(runs(Vec::<u8>::new(), |x, y| x == y).is_empty());
    }
}
