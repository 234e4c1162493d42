//! Queries behind the CLI's inspection commands. Mutations go through the SQL API so
//! the CLI and apps share one set of rules and errors.
//!
//! The row types are also the CLI's `--json` output (serde: field names as they are here,
//! times in RFC 3339, none as null): renaming a field changes what scripts read.

use sqlx::PgPool;

use crate::enum_label;

use pgwa_core::config::Backend;
use pgwa_core::job::{Delivery, JobKind, JobState};
use pgwa_core::session::{Desired, SessionStatus};

#[derive(Debug, serde::Serialize)]
pub struct SessionRow {
    pub session: String,
    pub desired: Desired,
    pub status: SessionStatus,
    pub status_reason: Option<String>,
    pub held: bool,
    pub healthy: bool,
    pub worker_id: Option<uuid::Uuid>,
    pub bad_mac_count: i32,
    pub bad_decrypt_count: i32,
    pub failed_connect_count: i32,
    pub last_error: Option<String>,
    pub queued: i64,
    /// The WhatsApp side of the worker holding it (none while not held).
    pub backend: Option<Backend>,
}

/// Every session, or the one named.
pub async fn sessions(pool: &PgPool) -> sqlx::Result<Vec<SessionRow>> {
    session_rows(pool, None).await
}

pub async fn session(pool: &PgPool, id: &str) -> sqlx::Result<Option<SessionRow>> {
    Ok(session_rows(pool, Some(id)).await?.pop())
}

async fn session_rows(pool: &PgPool, id: Option<&str>) -> sqlx::Result<Vec<SessionRow>> {
    // The view's columns read as nullable to the checker; these come from NOT NULL
    // columns or expressions that are never null.
    let rows = sqlx::query!(
        r#"SELECT h.session AS "session!", h.desired::text AS "desired!", h.status::text AS "status!", h.status_reason,
                  h.held AS "held!", h.healthy AS "healthy!", h.worker_id, h.bad_mac_count AS "bad_mac_count!",
                  h.bad_decrypt_count AS "bad_decrypt_count!", h.failed_connect_count AS "failed_connect_count!",
                  h.last_error, h.backend::text AS backend,
                  (SELECT count(*) FROM wa.job_rows j WHERE j.session_id = h.session AND j.phase = 1)
                    + (SELECT count(*) FROM wa.job_rows j WHERE j.session_id = h.session AND j.phase = 0) AS "queued!"
             FROM wa.session_health h
            WHERE $1::text IS NULL OR h.session = $1
            ORDER BY h.session"#,
        id,
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(SessionRow {
                session: r.session,
                desired: enum_label(r.desired)?,
                status: enum_label(r.status)?,
                status_reason: r.status_reason,
                held: r.held,
                healthy: r.healthy,
                worker_id: r.worker_id,
                bad_mac_count: r.bad_mac_count,
                bad_decrypt_count: r.bad_decrypt_count,
                failed_connect_count: r.failed_connect_count,
                last_error: r.last_error,
                queued: r.queued,
                backend: r.backend.map(enum_label).transpose()?,
            })
        })
        .collect()
}

#[derive(Debug, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub session_id: Option<String>,
    pub kind: JobKind,
    pub state: JobState,
    pub attempts: i16,
    pub max_attempts: i16,
    pub chat: Option<String>,
    pub message_id: Option<String>,
    pub delivery: Option<Delivery>,
    pub run_at: chrono::DateTime<chrono::Utc>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
}

pub struct JobFilter<'a> {
    pub session: Option<&'a str>,
    pub state: Option<JobState>,
    pub kind: Option<JobKind>,
    /// Jobs whose last error contains this (case-insensitive), as wa.retry_jobs picks them.
    pub error_contains: Option<&'a str>,
    pub limit: i64,
}

/// The latest jobs the filter picks. A state filter reads the index holding that state's
/// jobs (`wa._job_in_states`, sql/05_views.sql), not the history kept for weeks.
/// That takes a plan made for the filter's values, which a cached statement stops making
/// after a few runs: the statement runs with custom plans forced, in a transaction of
/// its own.
pub async fn jobs(pool: &PgPool, f: &JobFilter<'_>) -> sqlx::Result<Vec<JobRow>> {
    let mut tx = pool.begin().await?;
    sqlx::query_scalar!("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)").fetch_one(&mut *tx).await?;
    let rows = sqlx::query!(
        r#"SELECT id, session_id, kind::text AS "kind!", state::text AS "state!", attempts, max_attempts, chat, message_id,
                  delivery::text AS delivery, run_at, created_at, finished_at, errors->-1->>'error' AS last_error
             FROM wa.job_rows
            WHERE ($1::text IS NULL OR session_id = $1)
              AND ($2::text IS NULL OR wa._job_in_states(ARRAY[$2], state, phase, result))
              AND ($3::text IS NULL OR kind::text = $3)
              AND ($5::text IS NULL OR strpos(lower(errors->-1->>'error'), lower($5)) > 0)
            ORDER BY id DESC LIMIT $4"#,
        f.session,
        f.state.map(JobState::as_str),
        f.kind.map(JobKind::as_str),
        f.limit,
        f.error_contains,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.into_iter()
        .map(|r| {
            Ok(JobRow {
                id: r.id,
                session_id: r.session_id,
                kind: enum_label(r.kind)?,
                state: enum_label(r.state)?,
                attempts: r.attempts,
                max_attempts: r.max_attempts,
                chat: r.chat,
                message_id: r.message_id,
                delivery: r.delivery.map(enum_label).transpose()?,
                run_at: r.run_at,
                created_at: r.created_at,
                finished_at: r.finished_at,
                last_error: r.last_error,
            })
        })
        .collect()
}

/// What wa.contacts holds about a phone number.
#[derive(Debug, serde::Serialize)]
pub struct ContactRow {
    pub phone: String,
    pub on_whatsapp: Option<bool>,
    pub jid: Option<String>,
    pub lid: Option<String>,
    pub is_business: Option<bool>,
    pub checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A session's contacts, the ones named (digits) or all, by phone number.
pub async fn contacts(pool: &PgPool, session: &str, phones: Option<&[String]>) -> sqlx::Result<Vec<ContactRow>> {
    sqlx::query_as!(
        ContactRow,
        "SELECT phone, on_whatsapp, jid, lid, is_business, checked_at FROM wa.contacts
          WHERE session_id = $1 AND ($2::text[] IS NULL OR phone = ANY($2))
          ORDER BY phone",
        session,
        phones as Option<&[String]>,
    )
    .fetch_all(pool)
    .await
}

/// One of a session's groups as JSON (its wa.groups row), for `pgwa create-group`.
pub async fn group(pool: &PgPool, session: &str, jid: &str) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar!(
        r#"SELECT to_jsonb(g) - 'id' AS "group!" FROM wa.groups g WHERE g.session_id = $1 AND g.jid = $2"#,
        session,
        jid
    )
    .fetch_optional(pool)
    .await
}

/// One job as JSON (every column), for `pgwa jobs show`.
pub async fn job_json(pool: &PgPool, id: i64) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar!(r#"SELECT to_jsonb(j) AS "job!" FROM wa.job_rows j WHERE j.id = $1"#, id).fetch_optional(pool).await
}

/// Sessions held by one worker, counted by status (for /health and /metrics).
pub async fn held_by_status(pool: &PgPool, worker: uuid::Uuid) -> sqlx::Result<Vec<(String, serde_json::Value)>> {
    let rows = sqlx::query!(
        r#"SELECT status::text AS "status!", count(*) AS "n!" FROM wa.sessions WHERE owner_id = $1 GROUP BY 1 ORDER BY 1"#,
        worker,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n.into())).collect())
}

/// Jobs waiting or running, by state, across all sessions. Each count names its phase,
/// whose partial index holds only unfinished jobs, so this stays cheap beside millions
/// of finished ones.
pub async fn queue_depth(pool: &PgPool) -> sqlx::Result<Vec<(&'static str, i64)>> {
    let r = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM wa.job_rows WHERE phase = 1 AND state = 'available') AS "available!",
                  (SELECT count(*) FROM wa.job_rows WHERE phase = 0 AND state = 'scheduled') AS "scheduled!",
                  (SELECT count(*) FROM wa.job_rows WHERE phase = 1 AND state = 'running') AS "running!",
                  (SELECT count(*) FROM wa.job_rows WHERE phase = 0 AND state = 'retryable') AS "retryable!""#,
    )
    .fetch_one(pool)
    .await?;
    Ok(vec![("available", r.available), ("scheduled", r.scheduled), ("running", r.running), ("retryable", r.retryable)])
}

/// The QR code a session is waiting to have scanned, if it has not expired.
/// The session's QR code waiting to be scanned; with `tenant`, only if the session is
/// that tenant's (another tenant's session reads as having none).
pub async fn current_qr(pool: &PgPool, session: &str, tenant: Option<&str>) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"SELECT qr_code AS "qr_code!" FROM wa.sessions
            WHERE id = $1 AND qr_code IS NOT NULL AND qr_expires_at > now() AND ($2::text IS NULL OR tenant = $2)"#,
        session,
        tenant,
    )
    .fetch_optional(pool)
    .await
}

/// Adds a tenant with its role (`wa.add_tenant`); returns the role's name.
pub async fn add_tenant(pool: &PgPool, name: &str) -> sqlx::Result<String> {
    sqlx::query_scalar!(r#"SELECT wa.add_tenant($1)::text AS "role!""#, name).fetch_one(pool).await
}

#[derive(Debug, serde::Serialize)]
pub struct Tenant {
    pub name: String,
    pub role: String,
    pub sessions: i64,
}

pub async fn tenants(pool: &PgPool) -> sqlx::Result<Vec<Tenant>> {
    sqlx::query_as!(
        Tenant,
        r#"SELECT t.name, t.role::text AS "role!", (SELECT count(*) FROM wa.sessions s WHERE s.tenant = t.name) AS "sessions!"
             FROM wa.tenants t ORDER BY t.name"#,
    )
    .fetch_all(pool)
    .await
}
