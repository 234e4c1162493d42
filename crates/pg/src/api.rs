//! The SQL API (functions of schema `wa`) called on behalf of the command line, so the
//! CLI and apps share one set of rules and errors (SQLSTATE WA0xx).

use sqlx::PgPool;

use pgwa_core::job::JobState;
use pgwa_core::session::SessionStatus;

pub async fn add_session(
    pool: &PgPool,
    id: &str,
    pair_phone: Option<&str>,
    metadata: &serde_json::Value,
    start: bool,
) -> sqlx::Result<()> {
    sqlx::query("SELECT wa.add_session($1, $2, $3, $4)")
        .bind(id)
        .bind(pair_phone)
        .bind(metadata)
        .bind(start)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn start_session(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT wa.start_session($1)").bind(id).execute(pool).await?;
    Ok(())
}

pub async fn stop_session(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT wa.stop_session($1)").bind(id).execute(pool).await?;
    Ok(())
}

pub async fn remove_session(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT wa.remove_session($1)").bind(id).execute(pool).await?;
    Ok(())
}

/// A text message to enqueue (`wa.send_text`).
#[derive(Debug, Clone, Default)]
pub struct SendText<'a> {
    pub session: &'a str,
    pub to: &'a str,
    pub text: &'a str,
    pub reply_to: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

/// Enqueues; returns the job id and the message id fixed at enqueue.
pub async fn send_text(pool: &PgPool, m: &SendText<'_>) -> sqlx::Result<(i64, String)> {
    sqlx::query_as("SELECT job_id, message_id FROM wa.send_text($1, $2, $3, reply_to => $4, idempotency_key => $5)")
        .bind(m.session)
        .bind(m.to)
        .bind(m.text)
        .bind(m.reply_to)
        .bind(m.idempotency_key)
        .fetch_one(pool)
        .await
}

/// `wa.retry_job`: the job's state after the call.
pub async fn retry_job(pool: &PgPool, id: i64) -> sqlx::Result<JobState> {
    job_state_of(pool, "SELECT wa.retry_job($1)::text", id).await
}

/// `wa.cancel_job`: the job's state after the call (`running` when it was claimed).
pub async fn cancel_job(pool: &PgPool, id: i64) -> sqlx::Result<JobState> {
    job_state_of(pool, "SELECT wa.cancel_job($1)::text", id).await
}

async fn job_state_of(pool: &PgPool, sql: &'static str, id: i64) -> sqlx::Result<JobState> {
    let state: String = sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?;
    state.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))
}

/// Where linking a session stands, as `pgwa session add --wait` shows it.
#[derive(Debug, sqlx::FromRow)]
pub struct LinkState {
    #[sqlx(try_from = "String")]
    pub status: SessionStatus,
    pub status_reason: Option<String>,
    pub qr_code: Option<String>,
    pub pair_code: Option<String>,
    pub jid: Option<String>,
}

pub async fn link_state(pool: &PgPool, id: &str) -> sqlx::Result<LinkState> {
    sqlx::query_as("SELECT status::text AS status, status_reason, qr_code, pair_code, jid FROM wa.sessions WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// An error of the SQL API as a person should read it: its message, SQLSTATE and hint.
/// None when `e` did not come from Postgres.
pub fn describe(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>() {
            let code = db.code().unwrap_or_default();
            let mut out = format!("{} (SQLSTATE {code})", db.message());
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                && let Some(hint) = pg.hint()
            {
                out.push_str(&format!("\nhint: {hint}"));
            }
            return Some(out);
        }
    }
    None
}
