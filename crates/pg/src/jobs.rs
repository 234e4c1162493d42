//! The job hot path: promote due jobs, claim batches, record outcomes. Each is one
//! statement over arrays, so a batch of 1,000 jobs costs one round trip.
//!
//! The worker runs them on connections of its queue pool, whose commits do not wait for
//! the WAL flush (see `db::queue_pool`), each loop holding its own connection (see
//! `worker::held`). They take any executor so that tests can pass a pool.

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use pgwa_core::job::{Claimed, ClaimedJob, JobKind};

/// Moves scheduled and retryable jobs whose time has come to available, for the given
/// sessions and for session-less jobs (maintenance ticks). Returns how many.
///
/// It reads `jobs_due` (session, run_at) for those sessions only: the due jobs of
/// sessions nobody holds are not stepped over (migration 0035). The rows are updated at
/// the addresses the locking read found them at; joined by id, a batch the planner
/// thought large made it read the whole table.
pub async fn promote_due(db: impl PgExecutor<'_>, sessions: &[String]) -> sqlx::Result<u64> {
    let n = sqlx::query!(
        "UPDATE wa.job_rows j SET state = 'available'
           FROM unnest(ARRAY(SELECT ctid FROM wa.job_rows
                              WHERE phase = 0 AND run_at <= now()
                                AND (session_id = ANY($1) OR session_id IS NULL)
                              ORDER BY run_at LIMIT 10000 FOR UPDATE SKIP LOCKED)) AS d(at)
          WHERE j.ctid = d.at AND j.phase = 0",
        sessions
    )
    .execute(db)
    .await?;
    Ok(n.rows_affected())
}

/// What to claim: control jobs for every held session, sends only for connected ones.
pub struct ClaimRequest<'a> {
    pub worker: Uuid,
    pub held: &'a [String],
    pub connected: &'a [String],
    pub per_session: i64,
    pub sessionless: i64,
}

/// The claim statement (queries/claim.sql), public so tests can check its plan.
pub const CLAIM: &str = include_str!("../queries/claim.sql");

/// Claims available jobs in one statement:
/// * per held session (fairly: at most `per_session` each), control lane before sends,
///   then priority, then id; sends only for connected sessions;
/// * session-less jobs (maintenance, webhook deliveries) up to `sessionless`;
/// * only kinds this build knows: during a rolling deploy, jobs of a kind added by a newer
///   pgwa wait for the newer workers instead of failing the older ones' claims;
/// * per-chat FIFO: a send is dropped from the batch when an earlier unfinished send of
///   its chat (running, waiting for a retry, or available but not in this batch) exists,
///   so a later message never overtakes an earlier one, across retries too.
///
/// The statement's plan is made once per connection, often while `wa.jobs` is empty, and
/// again whenever the table's statistics change, so its shape must not depend on
/// estimates. Written as a join of the batch with its chats' first gaps, it was planned
/// as a nested loop over both: 555 ms for a claim of 2,000 candidates whose chats were
/// busy, against 17 ms with probes.
///
/// Candidates are read unlocked. Each chat among them is probed once, at its first
/// candidate, for an unfinished send before it (an index probe kept a subplan, against
/// a hashed set of the chats): a chat found busy drops all its candidates at that one
/// probe. In a chat found free (a busy chat's stops would be read for nothing), one
/// more probe per chat with several candidates reads its stops: the unfinished sends
/// between its first and last candidates that are not in the batch. A window over each
/// chat's candidates and stops in id order drops every candidate after a stop.
/// `OFFSET 0` keeps the stops a probe per chat, which the planner cannot turn into one
/// scan of the table, and the probe is bounded by the ids of the chat's own candidates,
/// so whichever index it takes it reads only that span.
/// Probing each later candidate on its own for the sends before it read its chat's
/// earlier candidates again, n²/2 rows for n candidates of one chat, and with
/// statistics that said every send was unfinished and went to one number, each probe
/// went by primary key from the table's first row: a claim of 1,000 sends of ten
/// one-chat sessions took 32–58 ms against 15–21 with stops, and 1.5–1.8 s against
/// 27–49 ms with those statistics (BENCHMARKS.md). Only what passes is locked (`FOR UPDATE
/// SKIP LOCKED`). Locking and probing every candidate first made a session with one
/// busy chat pay, on every claim, a row lock (a WAL record) and a probe per candidate
/// for nothing: in `pgwa dev bench-messages` (one chat per session, 200 candidates
/// each) the claim was 40 % of Postgres's time, at 6.3 ms for 5.5 jobs (BENCHMARKS.md).
/// A candidate skipped because another transaction holds it (a cancel) still holds
/// back the later sends of its chat: the check runs again against what was locked,
/// unless every candidate that passed was locked (then it cannot change).
///
/// The lock and the update find each row at the address (`ctid`) the candidate scan read
/// it from, a tuple fetch where a primary-key probe would descend the index: the claim of
/// 1,000 sends makes a quarter fewer buffer accesses (BENCHMARKS.md).
/// The address is only a shortcut, never trusted alone: a row changed since it was read
/// is followed to its current version by the lock, which rechecks its id and that it is
/// still available (or skips it, as it skips one locked elsewhere), and the update goes
/// to the address of the version it locked, which nobody else can change before the
/// claim commits. The update takes its rows from an array of (id, address, epoch), which
/// keeps it one tuple fetch per row in any plan. It has no `j.id = c.id` of its own: the
/// lock already checked the id, and with it the plan made on an empty table (the queue
/// connection's first) went by the primary key instead (tests/queue_plans.rs checks).
/// Probing the first candidate twice, and looking its session's epoch up per row in the
/// held sessions (a scan of them each), cost a tenth of the claim's time: 22.1–22.9
/// against 19.5–19.7 µs a job draining 100,000 sends (BENCHMARKS.md). The first
/// candidate's probe, the stops (below its last candidate, their lower bound pushed into
/// the inlined probe) and the recheck share one definition of "an earlier unfinished
/// send of this chat", `wa._chat_unfinished_before` (migration 0031), which the planner
/// inlines.
///
/// The update is HOT (see migration 0015): nothing indexed changes, so it writes no index
/// entries, which made claims 2.5 times cheaper. It rechecks `state`, so a job cancelled
/// while the claim ran is not taken. The running rows the scan steps over are the
/// worker's own in-flight jobs.
///
/// The session's current epoch is stamped on each job: completions are fenced by it.
pub async fn claim(db: impl PgExecutor<'_>, req: &ClaimRequest<'_>) -> sqlx::Result<Vec<Claimed>> {
    let kinds: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
    let rows = sqlx::query_file!(
        "queries/claim.sql",
        req.worker,
        req.held,
        req.connected,
        req.per_session,
        req.sessionless,
        &kinds as &[&str]
    )
    .fetch_all(db)
    .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    let claimed_at = std::time::Instant::now();
    for r in rows {
        let job = ClaimedJob {
            id: r.id,
            session_id: r.session_id,
            kind: crate::enum_label::<JobKind>(r.kind)?,
            chat: r.chat,
            message_id: r.message_id,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            epoch: r.epoch,
            claimed_at,
        };
        jobs.push(Claimed { job, payload: r.payload });
    }
    jobs.sort_unstable_by_key(|c| c.job.id);
    Ok(jobs)
}

/// A job whose outcome was recorded, as the outbound announcement needs it: sends that
/// reached a delivery status worth telling apps about (sent, failed) carry it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recorded {
    pub id: i64,
    pub session_id: Option<String>,
    pub message_id: Option<String>,
    pub delivery: Option<String>,
    /// The outcome made the job dead (its attempts are spent or it failed for good).
    pub dead: bool,
}

impl Recorded {
    /// The session, message id and status to announce, when this outcome has them: a
    /// send that reached a delivery status. Other jobs are not announced.
    pub fn announceable(&self) -> Option<(&str, &str, &str)> {
        Some((self.session_id.as_deref()?, self.message_id.as_deref()?, self.delivery.as_deref()?))
    }
}

/// Tells apps listening on `wa_outbound` which messages changed status: one NOTIFY per
/// session and status, up to 100 messages each.
///
/// This is its own statement, run after the outcomes committed, and not part of the
/// outcome statement: a transaction that NOTIFYs takes Postgres's global notify lock at
/// commit and holds it through its WAL flush, so every app transaction enqueueing a job
/// (each NOTIFYs wa_jobs and flushes) was making the outcome writes wait in line, about
/// 2 ms per batch at 1,000 jobs/s. Apps read the row when notified, and it is committed
/// by then.
pub async fn announce_outbound(db: impl PgExecutor<'_>, recorded: &[Recorded]) -> sqlx::Result<u64> {
    // Per (session, status): the jobs and their message ids, in the same order.
    type Announced<'a> = (Vec<i64>, Vec<&'a str>);
    let mut groups: std::collections::BTreeMap<(&str, &str), Announced<'_>> = Default::default();
    for r in recorded {
        if let Some((session, message, status)) = r.announceable() {
            let g = groups.entry((session, status)).or_default();
            g.0.push(r.id);
            g.1.push(message);
        }
    }
    let mut payloads = Vec::new();
    for ((session, status), (jobs, messages)) in &groups {
        for (jobs, messages) in jobs.chunks(100).zip(messages.chunks(100)) {
            let p = serde_json::json!({ "session": session, "status": status, "jobs": jobs, "message_ids": messages });
            payloads.push(p.to_string());
        }
    }
    if payloads.is_empty() {
        return Ok(0);
    }
    let n = sqlx::query_scalar!(r#"SELECT count(pg_notify('wa_outbound', p)) AS "n!" FROM unnest($1::text[]) p"#, &payloads)
        .fetch_one(db)
        .await?;
    Ok(n as u64)
}

/// Marks jobs completed; for sends, the message becomes `sent` (server ack) unless a
/// receipt already moved it further. Returns the jobs accepted; the rest were refused by
/// the fence (the session changed hands) and will run again elsewhere.
///
/// The outcome statements (queries/complete.sql, fail.sql) join the jobs to `unnest()` of
/// their arrays and nothing else, so the plan walks the arrays and looks each job up by
/// primary key. (With an extra `j.id = ANY($2)` the planner, which expects almost no
/// running rows, put the jobs outside and rescanned the arrays for each: 1,200 outcomes
/// took 350 ms instead of 20.)
pub async fn complete(
    db: impl PgExecutor<'_>,
    worker: Uuid,
    ids: &[i64],
    results: &[serde_json::Value],
    acked_at: &[Option<chrono::DateTime<chrono::Utc>>],
) -> sqlx::Result<Vec<Recorded>> {
    sqlx::query_file_as!(Recorded, "queries/complete.sql", worker, ids, results, acked_at as _).fetch_all(db).await
}

/// The outcome statement for completed jobs, public so tests can check its plan.
pub const COMPLETE: &str = include_str!("../queries/complete.sql");

/// Records failed attempts: retryable after `backoff_ms`, or dead when `dead` is set or
/// the attempts are spent. The error is appended to the job's history.
pub async fn fail(
    db: impl PgExecutor<'_>,
    worker: Uuid,
    ids: &[i64],
    errors: &[String],
    backoff_ms: &[i64],
    dead: &[bool],
) -> sqlx::Result<Vec<Recorded>> {
    sqlx::query_file_as!(Recorded, "queries/fail.sql", worker, ids, errors, backoff_ms, dead).fetch_all(db).await
}

/// The outcome statement for failed attempts, public so tests can check its plan.
pub const FAIL: &str = include_str!("../queries/fail.sql");

/// Hands jobs back without spending their attempt (they never started).
pub async fn release(db: impl PgExecutor<'_>, worker: Uuid, ids: &[i64]) -> sqlx::Result<u64> {
    let n = sqlx::query!(
        "UPDATE wa.job_rows SET state = 'available', attempts = attempts - 1, worker_id = NULL, epoch = NULL
          WHERE id = ANY($2) AND state = 'running' AND worker_id = $1",
        worker,
        ids
    )
    .execute(db)
    .await?;
    Ok(n.rows_affected())
}

/// Cancels jobs that were claimed but had not started when wa.cancel_job asked. Only
/// rows that carry the request are cancelled: the request is the authority, never the
/// worker's memory of a notification.
pub async fn cancel_claimed(db: impl PgExecutor<'_>, worker: Uuid, ids: &[i64]) -> sqlx::Result<u64> {
    let n = sqlx::query!(
        "UPDATE wa.job_rows SET state = 'cancelled', attempts = attempts - 1, finished_at = now(),
                delivery = CASE WHEN kind = 'send' THEN 'failed'::wa.delivery_status END,
                result = jsonb_build_object('cancelled', true)
          WHERE id = ANY($2) AND state = 'running' AND worker_id = $1 AND cancel_requested_at IS NOT NULL",
        worker,
        ids
    )
    .execute(db)
    .await?;
    Ok(n.rows_affected())
}

/// Whether wa.cancel_job asked to drop `job`, which this worker has claimed. The
/// `wa_job_cancel` notification that prompts this read is only a wake-up: any role that
/// can connect may send one.
pub async fn cancel_requested(db: impl PgExecutor<'_>, worker: Uuid, job: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM wa.job_rows
                         WHERE id = $2 AND worker_id = $1 AND state = 'running' AND cancel_requested_at IS NOT NULL) AS "requested!""#,
        worker,
        job
    )
    .fetch_one(db)
    .await
}

/// Session-less jobs (maintenance, webhook deliveries) have no session lease: when their
/// worker stops heart-beating they go back to the queue.
pub async fn recover_orphaned_sessionless(pool: &PgPool, ttl_secs: f64) -> sqlx::Result<u64> {
    let n = sqlx::query!(
        "UPDATE wa.job_rows j
            SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'available' END::wa.job_state,
                finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
                errors = j.errors || jsonb_build_object('attempt', j.attempts, 'at', now(),
                           'error', 'the worker running this job was lost', 'worker', j.worker_id),
                worker_id = NULL, epoch = NULL
          WHERE j.session_id IS NULL AND j.phase = 1 AND j.state = 'running'
            AND NOT EXISTS (SELECT 1 FROM wa.workers w WHERE w.id = j.worker_id
                              AND w.heartbeat_at > now() - make_interval(secs => $1))",
        ttl_secs
    )
    .execute(pool)
    .await?;
    Ok(n.rows_affected())
}
