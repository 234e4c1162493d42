//! Writes a worker makes on behalf of a session it holds. Every one is fenced: it applies
//! only while this worker still holds the session at the same epoch, and returns false
//! otherwise, which the caller treats as "lease lost: stop now".

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::wa::{InboundMessage, ReceiptKind};

/// Who may write for a session: this worker at this epoch.
#[derive(Debug, Clone)]
pub struct SessionFence {
    pub worker: Uuid,
    pub session: String,
    pub epoch: i64,
}

const FENCE: &str = "id = $1 AND owner_id = $2 AND epoch = $3";

pub async fn set_status(pool: &PgPool, f: &SessionFence, status: &str, reason: Option<&str>, until: Option<DateTime<Utc>>) -> sqlx::Result<bool> {
    let sql = format!(
        "UPDATE wa.sessions SET status = $4::wa.session_status, status_reason = $5, status_until = $6 WHERE {FENCE}"
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&f.session)
        .bind(f.worker)
        .bind(f.epoch)
        .bind(status)
        .bind(reason)
        .bind(until)
        .execute(pool)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// Connected: error counters reset (the seeds' rule), identity recorded.
pub async fn mark_connected(pool: &PgPool, f: &SessionFence, jid: Option<&str>, push_name: Option<&str>) -> sqlx::Result<bool> {
    let sql = format!(
        "UPDATE wa.sessions SET status = 'connected', status_reason = NULL, status_until = NULL,
                connected_at = now(), bad_mac_count = 0, bad_decrypt_count = 0, failed_connect_count = 0,
                jid = coalesce($4, jid), push_name = coalesce($5, push_name)
          WHERE {FENCE}"
    );
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&f.session)
        .bind(f.worker)
        .bind(f.epoch)
        .bind(jid)
        .bind(push_name)
        .execute(pool)
        .await?;
    Ok(n.rows_affected() == 1)
}

pub async fn record_error(pool: &PgPool, f: &SessionFence, message: &str) -> sqlx::Result<bool> {
    let sql = format!("UPDATE wa.sessions SET last_error = left($4, 2000), last_error_at = now() WHERE {FENCE}");
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&f.session)
        .bind(f.worker)
        .bind(f.epoch)
        .bind(message)
        .execute(pool)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// The app asked (close_session) for the session to stay down until started again.
pub async fn set_desired_stopped(pool: &PgPool, f: &SessionFence, reason: &str) -> sqlx::Result<bool> {
    let sql = format!("UPDATE wa.sessions SET desired = 'stopped', status_reason = $4 WHERE {FENCE}");
    let n = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&f.session)
        .bind(f.worker)
        .bind(f.epoch)
        .bind(reason)
        .execute(pool)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// A delivery or read receipt for one of our messages. Never moves a message backwards
/// (a late "delivered" after "read" is ignored). Returns whether a row changed.
pub async fn apply_receipt(pool: &PgPool, f: &SessionFence, message_id: &str, kind: ReceiptKind, at: DateTime<Utc>) -> sqlx::Result<bool> {
    let status = match kind {
        ReceiptKind::Delivered => "delivered",
        ReceiptKind::Read => "read",
    };
    let n: i64 = sqlx::query_scalar(
        "WITH u AS (
            UPDATE wa.jobs j
               SET delivery = $5::wa.delivery_status,
                   delivered_at = coalesce(j.delivered_at, $6),
                   read_at = CASE WHEN $5 = 'read' THEN coalesce(j.read_at, $6) ELSE j.read_at END
             WHERE j.session_id = $1 AND j.message_id = $4
               AND (j.delivery < $5::wa.delivery_status)
               AND EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND s.owner_id = $2 AND s.epoch = $3)
            RETURNING j.id, j.session_id, j.message_id, j.delivery)
         SELECT count(*) FROM u, LATERAL pg_notify('wa_outbound', json_build_object('session', u.session_id,
                'status', u.delivery, 'jobs', json_build_array(u.id), 'message_ids', json_build_array(u.message_id))::text)",
    )
    .bind(&f.session)
    .bind(f.worker)
    .bind(f.epoch)
    .bind(message_id)
    .bind(status)
    .bind(at)
    .fetch_one(pool)
    .await?;
    Ok(n == 1)
}

/// Stores an inbound message (deduplicated on session, chat, sender, message id) and
/// returns its row id, or None if it was already stored or the fence refused it.
pub async fn insert_inbound(pool: &PgPool, f: &SessionFence, m: &InboundMessage) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text, quoted_id, media, raw, sent_at)
         SELECT $1, $4, $5, $6, $7, $8, $9, $10, $11, $12
          WHERE EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND s.owner_id = $2 AND s.epoch = $3)
         ON CONFLICT ON CONSTRAINT inbox_unique DO NOTHING
         RETURNING id",
    )
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
