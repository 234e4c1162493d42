//! Session leases: claim, renew, release. The epoch (fencing token) is bumped on every
//! takeover; every write made on behalf of a session checks it.

use pgwa_core::session::{Desired, SessionStatus};
use sqlx::PgPool;
use uuid::Uuid;

/// A session this worker holds, as of the last claim or renewal.
#[derive(Debug, Clone)]
pub struct Held {
    pub id: String,
    pub epoch: i64,
    pub desired: Desired,
    pub pair_phone: Option<String>,
}

impl Held {
    fn new(id: String, epoch: i64, desired: String, pair_phone: Option<String>) -> sqlx::Result<Self> {
        Ok(Self { id, epoch, desired: crate::enum_label(desired)?, pair_phone })
    }
}

/// Renews every lease this worker holds and returns what it still holds. A session
/// missing from the answer was taken over or deleted: the caller must stop it at once.
///
/// The rows are locked in id order, the order the key writer's fence share-locks them
/// in (keys::Combiner): locked in index order instead, a renewal and a combined key
/// write could each hold a row the other waits for, and one would fail as a deadlock.
pub async fn renew(pool: &PgPool, worker: Uuid, ttl_secs: f64) -> sqlx::Result<Vec<Held>> {
    let rows = sqlx::query!(
        r#"UPDATE wa.sessions s SET lease_expires_at = now() + make_interval(secs => $2)
            WHERE s.id = ANY(ARRAY(SELECT id FROM wa.sessions WHERE owner_id = $1 ORDER BY id FOR NO KEY UPDATE))
              AND s.owner_id = $1
         RETURNING s.id, s.epoch, s.desired::text AS "desired!", s.pair_phone"#,
        worker,
        ttl_secs
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|r| Held::new(r.id, r.epoch, r.desired, r.pair_phone)).collect()
}

/// This worker's fair share: sessions that want to run divided by live workers (those
/// with a fresh heartbeat that are not shutting down), rounded up.
pub async fn fair_share(pool: &PgPool, ttl_secs: f64) -> sqlx::Result<(i64, i64)> {
    let r = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM wa.sessions WHERE desired = 'running'
                   AND status NOT IN ('conflict', 'logged_out')) AS "wanted!",
                (SELECT greatest(count(*), 1) FROM wa.workers
                  WHERE heartbeat_at > now() - make_interval(secs => $1) AND stopping_at IS NULL) AS "live!""#,
        ttl_secs
    )
    .fetch_one(pool)
    .await?;
    Ok((r.wanted, r.live))
}

/// Claims up to `limit` claimable sessions, bumping their epoch, and in the same
/// transaction hands their jobs left running by the previous owner back to the queue
/// (or to dead, when that was their last attempt).
pub async fn claim(pool: &PgPool, worker: Uuid, ttl_secs: f64, limit: i64) -> sqlx::Result<Vec<Held>> {
    if limit <= 0 {
        return Ok(vec![]);
    }
    let mut tx = pool.begin().await?;
    // Claimable: should run, not parked in a terminal or cooling-down status, no live owner.
    let rows = sqlx::query!(
        r#"UPDATE wa.sessions s
            SET owner_id = $1, lease_expires_at = now() + make_interval(secs => $2),
                epoch = s.epoch + 1, status = 'starting', status_reason = NULL, status_until = NULL
           FROM (SELECT id FROM wa.sessions
                  WHERE desired = 'running'
                    AND (owner_id IS NULL OR lease_expires_at IS NULL OR lease_expires_at < now())
                    AND status NOT IN ('conflict', 'logged_out')
                    AND NOT (status IN ('failed', 'banned') AND (status_until IS NULL OR status_until > now()))
                  ORDER BY lease_expires_at NULLS FIRST, id LIMIT $3 FOR UPDATE SKIP LOCKED) c
          WHERE s.id = c.id
         RETURNING s.id, s.epoch, s.desired::text AS "desired!", s.pair_phone"#,
        worker,
        ttl_secs,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    let held = rows.into_iter().map(|r| Held::new(r.id, r.epoch, r.desired, r.pair_phone)).collect::<sqlx::Result<Vec<_>>>()?;
    if !held.is_empty() {
        let ids: Vec<&str> = held.iter().map(|h| h.id.as_str()).collect();
        // The jobs the lost worker had claimed go back to available. Only one per chat is
        // charged the attempt (and can go dead): the first, which may have been the send
        // in flight when the worker died. The rest of its chat queued behind it in the
        // worker's memory, or ran and lost only their recorded outcome; a resend carries
        // the same message id, which the recipient deduplicates. Charging them all would
        // let a few crashes kill messages that were never tried. Every one still gets an
        // entry in its error history (uncharged ones marked so): one that ran may go out
        // twice, and whoever reads the history should see why.
        sqlx::query!(
            "WITH lost AS (
                 SELECT j.id, (j.chat IS NULL OR j.id = min(j.id) OVER (PARTITION BY j.session_id, j.chat)) AS charged
                   FROM wa.job_rows j
                  WHERE j.session_id = ANY($1) AND j.phase = 1 AND j.state = 'running'
             )
             UPDATE wa.job_rows j
                SET state = CASE WHEN l.charged AND j.attempts >= j.max_attempts THEN 'dead' ELSE 'available' END::wa.job_state,
                    finished_at = CASE WHEN l.charged AND j.attempts >= j.max_attempts THEN now() END,
                    delivery = CASE WHEN j.kind = 'send' AND l.charged AND j.attempts >= j.max_attempts
                                    THEN 'failed'::wa.delivery_status ELSE j.delivery END,
                    attempts = CASE WHEN l.charged THEN j.attempts ELSE j.attempts - 1 END,
                    errors = j.errors || (jsonb_build_object('attempt', j.attempts, 'at', now(), 'worker', j.worker_id,
                                 'error', CASE WHEN l.charged
                                              THEN 'the worker holding the session was lost while running this job'
                                              ELSE 'the worker holding the session was lost while this job was claimed '
                                                   || 'behind an earlier send of its chat; not counted as an attempt' END)
                                 || CASE WHEN l.charged THEN '{}'::jsonb ELSE jsonb_build_object('charged', false) END),
                    worker_id = NULL, epoch = NULL
               FROM lost l
              WHERE j.id = l.id",
            &ids as &[&str]
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(held)
}

/// Gives a session up (fenced) with the status it is left in (None keeps the row's
/// current status). Wakes the other workers.
pub async fn release(
    pool: &PgPool,
    worker: Uuid,
    session: &str,
    epoch: i64,
    status: Option<SessionStatus>,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    // Fenced like any write: a worker whose lease expired leaves the row to whoever
    // claims it next (an expired lease is claimable anyway).
    let n = sqlx::query_scalar!(
        r#"WITH r AS (
            UPDATE wa.sessions s SET owner_id = NULL, lease_expires_at = NULL,
                   status = coalesce($4::text::wa.session_status, status), status_reason = coalesce($5, status_reason)
             WHERE s.id = $2 AND wa._holds(s, $1, $3)
            RETURNING id)
         SELECT count(*) AS "n!" FROM r, LATERAL pg_notify('wa_sessions', json_build_object('released', r.id)::text)"#,
        worker,
        session,
        epoch,
        status.map(SessionStatus::as_str),
        reason
    )
    .fetch_one(pool)
    .await?;
    Ok(n == 1)
}
