//! Writes a worker makes on behalf of a session it holds. Every one is fenced: it applies
//! only while this worker still holds the session at the same epoch, and returns false
//! otherwise, which the caller treats as "lease lost: stop now".

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::jobs::{Recorded, announce_outbound};
use pgwa_core::wa::{InboundMessage, ReceiptKind};

use super::fence::HELD;
use pgwa_core::fence::Fence;
use pgwa_core::session::SessionStatus;

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// `UPDATE wa.sessions SET <set> WHERE <fence>`: $1..$3 are the fence, `more` binds $4 on.
async fn update_fenced<'q>(
    pool: &PgPool,
    f: &'q Fence,
    set: &str,
    more: impl FnOnce(PgQuery<'q>) -> PgQuery<'q>,
) -> sqlx::Result<bool> {
    let sql = format!("UPDATE wa.sessions SET {set} WHERE {HELD}");
    let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&f.session).bind(f.worker).bind(f.epoch);
    Ok(more(q).execute(pool).await?.rows_affected() == 1)
}

pub async fn set_status(
    pool: &PgPool,
    f: &Fence,
    status: SessionStatus,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
) -> sqlx::Result<bool> {
    update_fenced(pool, f, "status = $4::wa.session_status, status_reason = $5, status_until = $6", |q| {
        q.bind(status.as_str()).bind(reason).bind(until)
    })
    .await
}

/// Connected: error counters reset (the seeds' rule), identity recorded.
pub async fn mark_connected(pool: &PgPool, f: &Fence, jid: Option<&str>, push_name: Option<&str>) -> sqlx::Result<bool> {
    update_fenced(
        pool,
        f,
        "status = 'connected', status_reason = NULL, status_until = NULL, connected_at = now(),
         bad_mac_count = 0, bad_decrypt_count = 0, failed_connect_count = 0,
         qr_code = NULL, qr_expires_at = NULL, pair_code = NULL, pair_code_expires_at = NULL,
         jid = coalesce($4, jid), push_name = coalesce($5, push_name)",
        |q| q.bind(jid).bind(push_name),
    )
    .await
}

pub async fn record_error(pool: &PgPool, f: &Fence, message: &str) -> sqlx::Result<bool> {
    update_fenced(pool, f, "last_error = left($4, 2000), last_error_at = now()", |q| q.bind(message)).await
}

/// The app asked (close_session) for the session to stay down until started again.
pub async fn set_desired_stopped(pool: &PgPool, f: &Fence, reason: &str) -> sqlx::Result<bool> {
    update_fenced(pool, f, "desired = 'stopped', status_reason = $4", |q| q.bind(reason)).await
}

/// A delivery or read receipt for one of our messages. Never moves a message backwards
/// (a late "delivered" after "read" is ignored). Returns whether a row changed; a
/// change is announced on `wa_outbound` like a recorded outcome (after the update, for
/// the same reason: see `jobs::announce_outbound`).
pub async fn apply_receipt(
    pool: &PgPool,
    f: &Fence,
    message_id: &str,
    kind: ReceiptKind,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let status = match kind {
        ReceiptKind::Delivered => "delivered",
        ReceiptKind::Read => "read",
    };
    let changed: Option<i64> = sqlx::query_scalar(concat!(
        "UPDATE wa.jobs j
            SET delivery = $5::wa.delivery_status,
                delivered_at = coalesce(j.delivered_at, $6),
                read_at = CASE WHEN $5 = 'read' THEN coalesce(j.read_at, $6) ELSE j.read_at END
          WHERE j.session_id = $1 AND j.message_id = $4
            AND (j.delivery < $5::wa.delivery_status)
            AND EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND ",
        crate::holds!("s", "$2", "$3"),
        ")
         RETURNING j.id"
    ))
    .bind(&f.session)
    .bind(f.worker)
    .bind(f.epoch)
    .bind(message_id)
    .bind(status)
    .bind(at)
    .fetch_optional(pool)
    .await?;
    let Some(id) = changed else { return Ok(false) };
    let recorded = Recorded {
        id,
        session_id: Some(f.session.clone()),
        message_id: Some(message_id.to_owned()),
        delivery: Some(status.to_owned()),
    };
    // The row is committed: a lost announcement costs only the wake-up (apps that
    // missed it read the row anyway), so it is logged, not retried.
    if let Err(e) = announce_outbound(pool, &[recorded]).await {
        tracing::warn!(session = %f.session, message_id, error = %e, "announcing a receipt failed");
    }
    Ok(true)
}

/// Stores an inbound message (deduplicated on session, chat, sender, message id) and
/// returns its row id, or None if it was already stored or the fence refused it.
pub async fn insert_inbound(pool: &PgPool, f: &Fence, m: &InboundMessage) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(concat!(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text, quoted_id, media, raw, sent_at)
         SELECT $1, $4, $5, $6, $7, $8, $9, $10, $11, $12
          WHERE EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND ",
        crate::holds!("s", "$2", "$3"),
        ")
         ON CONFLICT ON CONSTRAINT inbox_unique DO NOTHING
         RETURNING id",
    ))
    .bind(&f.session)
    .bind(f.worker)
    .bind(f.epoch)
    .bind(&m.chat)
    .bind(&m.sender)
    .bind(&m.message_id)
    .bind(&m.kind)
    .bind(&m.text)
    .bind(&m.quoted_id)
    .bind(&m.media)
    .bind(&m.raw)
    .bind(m.sent_at)
    .fetch_optional(pool)
    .await
}

/// Whether this worker still holds the session at this epoch with a live lease; None
/// when the session no longer exists.
pub async fn held(pool: &PgPool, f: &Fence) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar(concat!("SELECT coalesce(", crate::holds!("s", "$2", "$3"), ", false) FROM wa.sessions s WHERE s.id = $1"))
        .bind(&f.session)
        .bind(f.worker)
        .bind(f.epoch)
        .fetch_optional(pool)
        .await
}

/// Whether this worker still holds the session at this epoch (false when it is gone).
pub async fn still_held(pool: &PgPool, f: &Fence) -> sqlx::Result<bool> {
    Ok(held(pool, f).await? == Some(true))
}

/// Linking: publishes a QR code (NOTIFY wa_link follows from the trigger).
pub async fn publish_qr(pool: &PgPool, f: &Fence, code: &str, expires_at: DateTime<Utc>) -> sqlx::Result<bool> {
    update_fenced(
        pool,
        f,
        "qr_code = $4, qr_expires_at = $5, qr_count = qr_count + 1, status = 'awaiting_qr', status_reason = NULL",
        |q| q.bind(code).bind(expires_at),
    )
    .await
}

/// Linking: publishes a pairing code.
pub async fn publish_pair_code(pool: &PgPool, f: &Fence, code: &str, expires_at: DateTime<Utc>) -> sqlx::Result<bool> {
    update_fenced(
        pool,
        f,
        "pair_code = $4, pair_code_expires_at = $5, status = 'awaiting_pair_code', status_reason = NULL",
        |q| q.bind(code).bind(expires_at),
    )
    .await
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
    update_fenced(
        pool,
        f,
        "jid = $4, lid = coalesce($5, lid), phone = coalesce($6, phone), push_name = coalesce($7, push_name),
         qr_code = NULL, qr_expires_at = NULL, pair_code = NULL, pair_code_expires_at = NULL",
        |q| q.bind(jid).bind(lid).bind(phone).bind(push_name),
    )
    .await
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
    let sql = format!(
        "UPDATE wa.sessions SET failed_connect_count = failed_connect_count + 1,
                last_error = left($4, 2000), last_error_at = now()
          WHERE {HELD}
         RETURNING failed_connect_count,
                   (SELECT connect_failure_limit FROM wa.policy),
                   (SELECT extract(epoch FROM circuit_cooldown)::float8 FROM wa.policy)"
    );
    let row: Option<(i32, i32, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&f.session)
        .bind(f.worker)
        .bind(f.epoch)
        .bind(reason)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(count, limit, cooldown_secs)| Count { count, limit, cooldown_secs }))
}

/// Counts a Bad MAC or another decryption failure.
pub async fn count_decrypt_failure(pool: &PgPool, f: &Fence, bad_mac: bool) -> sqlx::Result<Option<Count>> {
    let sql = if bad_mac {
        format!(
            "UPDATE wa.sessions SET bad_mac_count = bad_mac_count + 1 WHERE {HELD}
                 RETURNING bad_mac_count, (SELECT bad_mac_limit FROM wa.policy)"
        )
    } else {
        format!(
            "UPDATE wa.sessions SET bad_decrypt_count = bad_decrypt_count + 1 WHERE {HELD}
                 RETURNING bad_decrypt_count, (SELECT bad_decrypt_limit FROM wa.policy)"
        )
    };
    let row: Option<(i32, i32)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&f.session).bind(f.worker).bind(f.epoch).fetch_optional(pool).await?;
    Ok(row.map(|(count, limit)| Count { count, limit, cooldown_secs: 0.0 }))
}

/// Enqueues a targeted key cleanup for the session (the first step of recovery).
pub async fn enqueue_key_cleanup(pool: &PgPool, session: &str, scope: &str, peer: Option<&str>) -> sqlx::Result<i64> {
    let mut payload = serde_json::json!({ "scope": scope });
    if let Some(p) = peer {
        payload["peer"] = p.into();
    }
    sqlx::query_scalar("SELECT (wa.enqueue($1, 'key_cleanup', $2, priority => 0)).id")
        .bind(session)
        .bind(payload)
        .fetch_one(pool)
        .await
}
