//! Writes a worker makes on behalf of a session it holds. Every one is fenced: it applies
//! only while this worker still holds the session at the same epoch, and returns false
//! otherwise, which the caller treats as "lease lost: stop now".

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use pgwa_core::wa::{InboundChange, InboundMessage};

use pgwa_core::fence::Fence;
use pgwa_core::session::SessionStatus;

/// `UPDATE wa.sessions SET <set>` under the fence, checked at compile time: $1..$3 are
/// the fence (session, worker, epoch), the SET clause's own parameters follow from $4.
/// Evaluates to whether the row changed (false: the lease is lost).
macro_rules! update_fenced {
    ($pool:expr, $f:expr, $set:tt $(, $arg:expr)* $(,)?) => {{
        let f: &Fence = $f;
        let done = sqlx::query!(
            "UPDATE wa.sessions s SET " + $set + " WHERE s.id = $1 AND wa._holds(s, $2, $3)",
            &f.session,
            f.worker,
            f.epoch
            $(, $arg)*
        )
        .execute($pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }};
}

pub async fn set_status(
    pool: &PgPool,
    f: &Fence,
    status: SessionStatus,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
) -> sqlx::Result<bool> {
    update_fenced!(
        pool,
        f,
        "status = $4::text::wa.session_status, status_reason = $5, status_until = $6",
        status.as_str(),
        reason,
        until
    )
}

/// Connected: error counters reset (the seeds' rule), identity recorded.
pub async fn mark_connected(pool: &PgPool, f: &Fence, jid: Option<&str>, push_name: Option<&str>) -> sqlx::Result<bool> {
    update_fenced!(
        pool,
        f,
        "status = 'connected', status_reason = NULL, status_until = NULL, connected_at = now(),
         bad_mac_count = 0, bad_decrypt_count = 0, failed_connect_count = 0,
         qr_code = NULL, qr_expires_at = NULL, pair_code = NULL, pair_code_expires_at = NULL,
         jid = coalesce($4, jid), push_name = coalesce($5, push_name)",
        jid,
        push_name
    )
}

pub async fn record_error(pool: &PgPool, f: &Fence, message: &str) -> sqlx::Result<bool> {
    update_fenced!(pool, f, "last_error = left($4, 2000), last_error_at = now()", message)
}

/// The app asked (close_session) for the session to stay down until started again.
pub async fn set_desired_stopped(pool: &PgPool, f: &Fence, reason: &str) -> sqlx::Result<bool> {
    update_fenced!(pool, f, "desired = 'stopped', status_reason = $4", reason)
}

/// Stores an inbound message (deduplicated on session, chat, sender, message id; its
/// buffered copy deleted, `inbox::insert_single`) and returns its row id, or None if it
/// was already stored or the fence refused it.
pub async fn insert_inbound(db: impl PgExecutor<'_>, f: &Fence, m: &InboundMessage) -> sqlx::Result<Option<i64>> {
    if let Some(change) = &m.change {
        return apply_inbound_change(db, f, m, change).await;
    }
    Ok(match crate::inbox::insert_single(db, f, m).await? {
        crate::inbox::Stored::New(id) => Some(id),
        crate::inbox::Stored::Known | crate::inbox::Stored::FenceLost => None,
    })
}

/// An edit or a delete for everyone: applied to the target's row, or stored as a row of
/// its own when the target is not in the inbox (queries/apply_inbound_change.sql).
/// Returns the row changed or stored, None when it was already applied or the fence
/// refused.
async fn apply_inbound_change(
    db: impl PgExecutor<'_>,
    f: &Fence,
    m: &InboundMessage,
    change: &InboundChange,
) -> sqlx::Result<Option<i64>> {
    let r = sqlx::query_file!(
        "queries/apply_inbound_change.sql",
        &f.session,
        f.worker,
        f.epoch,
        &m.chat,
        &m.sender,
        &m.message_id,
        change.kind(),
        change.target(),
        m.text.as_deref(),
        m.sent_at,
        m.raw.as_ref()
    )
    .fetch_one(db)
    .await?;
    Ok(r.changed.or(r.stored))
}

/// Whether this worker still holds the session at this epoch with a live lease; None
/// when the session no longer exists.
pub async fn held(db: impl PgExecutor<'_>, f: &Fence) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(wa._holds(s, $2, $3), false) AS "held!" FROM wa.sessions s WHERE s.id = $1"#,
        &f.session,
        f.worker,
        f.epoch
    )
    .fetch_optional(db)
    .await
}

/// Whether this worker still holds the session at this epoch (false when it is gone).
pub async fn still_held(db: impl PgExecutor<'_>, f: &Fence) -> sqlx::Result<bool> {
    Ok(held(db, f).await? == Some(true))
}

/// Linking: publishes a QR code (NOTIFY wa_link follows from the trigger).
pub async fn publish_qr(pool: &PgPool, f: &Fence, code: &str, expires_at: DateTime<Utc>) -> sqlx::Result<bool> {
    update_fenced!(
        pool,
        f,
        "qr_code = $4, qr_expires_at = $5, qr_count = qr_count + 1, status = 'awaiting_qr', status_reason = NULL",
        code,
        expires_at
    )
}

/// Linking: publishes a pairing code.
pub async fn publish_pair_code(pool: &PgPool, f: &Fence, code: &str, expires_at: DateTime<Utc>) -> sqlx::Result<bool> {
    update_fenced!(
        pool,
        f,
        "pair_code = $4, pair_code_expires_at = $5, status = 'awaiting_pair_code', status_reason = NULL",
        code,
        expires_at
    )
}

/// Linking succeeded: identity recorded, codes cleared.
pub async fn mark_paired(
    pool: &PgPool,
    f: &Fence,
    jid: &str,
    lid: Option<&str>,
    phone: Option<&str>,
    push_name: Option<&str>,
) -> sqlx::Result<bool> {
    update_fenced!(
        pool,
        f,
        "jid = $4, lid = coalesce($5, lid), phone = coalesce($6, phone), push_name = coalesce($7, push_name),
         qr_code = NULL, qr_expires_at = NULL, pair_code = NULL, pair_code_expires_at = NULL",
        jid,
        lid,
        phone,
        push_name
    )
}

/// A counter after it was bumped, next to its limit from wa.policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count {
    pub count: i32,
    pub limit: i32,
    /// The circuit cooldown, for connection failures.
    pub cooldown_secs: f64,
}

/// Counts a failed connection attempt (in Postgres, so a restart does not hide a storm).
pub async fn count_connect_failure(pool: &PgPool, f: &Fence, reason: &str) -> sqlx::Result<Option<Count>> {
    let row = sqlx::query!(
        r#"UPDATE wa.sessions s SET failed_connect_count = failed_connect_count + 1,
                last_error = left($4, 2000), last_error_at = now()
          WHERE s.id = $1 AND wa._holds(s, $2, $3)
         RETURNING failed_connect_count AS "count!",
                   (SELECT connect_failure_limit FROM wa.policy) AS "limit!",
                   (SELECT extract(epoch FROM circuit_cooldown)::float8 FROM wa.policy) AS "cooldown_secs!""#,
        &f.session,
        f.worker,
        f.epoch,
        reason
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Count { count: r.count, limit: r.limit, cooldown_secs: r.cooldown_secs }))
}

/// Counts a Bad MAC or another decryption failure.
pub async fn count_decrypt_failure(pool: &PgPool, f: &Fence, bad_mac: bool) -> sqlx::Result<Option<Count>> {
    let row = sqlx::query!(
        r#"UPDATE wa.sessions s
              SET bad_mac_count = bad_mac_count + CASE WHEN $4 THEN 1 ELSE 0 END,
                  bad_decrypt_count = bad_decrypt_count + CASE WHEN $4 THEN 0 ELSE 1 END
            WHERE s.id = $1 AND wa._holds(s, $2, $3)
        RETURNING CASE WHEN $4 THEN bad_mac_count ELSE bad_decrypt_count END AS "count!",
                  (SELECT CASE WHEN $4 THEN bad_mac_limit ELSE bad_decrypt_limit END FROM wa.policy) AS "limit!""#,
        &f.session,
        f.worker,
        f.epoch,
        bad_mac
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Count { count: r.count, limit: r.limit, cooldown_secs: 0.0 }))
}

/// Enqueues a targeted key cleanup for the session (the first step of recovery).
pub async fn enqueue_key_cleanup(pool: &PgPool, session: &str, scope: &str, peer: Option<&str>) -> sqlx::Result<i64> {
    let mut payload = serde_json::json!({ "scope": scope });
    if let Some(p) = peer {
        payload["peer"] = p.into();
    }
    sqlx::query_scalar!(r#"SELECT (wa.enqueue($1, 'key_cleanup', $2, priority => 0)).id AS "id!""#, session, payload)
        .fetch_one(pool)
        .await
}
