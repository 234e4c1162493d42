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
    sqlx::query!("SELECT (wa.add_session($1, $2, $3, $4)).id", id, pair_phone, metadata, start).fetch_one(pool).await?;
    Ok(())
}

pub async fn start_session(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    sqlx::query!("SELECT (wa.start_session($1)).id", id).fetch_one(pool).await?;
    Ok(())
}

pub async fn stop_session(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    sqlx::query!("SELECT (wa.stop_session($1)).id", id).fetch_one(pool).await?;
    Ok(())
}

/// `wa.reconnect`: the reconnect job's id.
pub async fn reconnect(pool: &PgPool, id: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT wa.reconnect($1) AS "job!""#, id).fetch_one(pool).await
}

/// `wa.close_session` (no logout, keys kept): the close job's id.
pub async fn close_session(pool: &PgPool, id: &str, reason: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT wa.close_session($1, $2) AS "job!""#, id, reason).fetch_one(pool).await
}

pub async fn remove_session(pool: &PgPool, id: &str) -> sqlx::Result<()> {
    sqlx::query!("SELECT wa.remove_session($1)", id).fetch_one(pool).await?;
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
    /// People the text mentions (phone numbers or JIDs); empty for none.
    pub mentions: &'a [String],
}

/// Enqueues; returns the job id and the message id fixed at enqueue.
pub async fn send_text(pool: &PgPool, m: &SendText<'_>) -> sqlx::Result<(i64, String)> {
    let mentions = (!m.mentions.is_empty()).then_some(m.mentions);
    let r = sqlx::query!(
        r#"SELECT job_id AS "job_id!", message_id AS "message_id!"
             FROM wa.send_text($1, $2, $3, reply_to => $4, idempotency_key => $5, mentions => $6)"#,
        m.session,
        m.to,
        m.text,
        m.reply_to,
        m.idempotency_key,
        mentions as Option<&[String]>,
    )
    .fetch_one(pool)
    .await?;
    Ok((r.job_id, r.message_id))
}

/// A location pin to enqueue (`wa.send_location`).
#[derive(Debug, Clone, Default)]
pub struct SendLocation<'a> {
    pub session: &'a str,
    pub to: &'a str,
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<&'a str>,
    pub address: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
}

/// Enqueues; returns the job id and the message id fixed at enqueue.
pub async fn send_location(pool: &PgPool, l: &SendLocation<'_>) -> sqlx::Result<(i64, String)> {
    let r = sqlx::query!(
        r#"SELECT job_id AS "job_id!", message_id AS "message_id!"
             FROM wa.send_location($1, $2, $3, $4, name => $5, address => $6, idempotency_key => $7)"#,
        l.session,
        l.to,
        l.latitude,
        l.longitude,
        l.name,
        l.address,
        l.idempotency_key,
    )
    .fetch_one(pool)
    .await?;
    Ok((r.job_id, r.message_id))
}

/// A file to enqueue (`wa.send_media`): from bytes or from a URL the worker fetches.
#[derive(Debug, Clone, Default)]
pub struct SendMedia<'a> {
    pub session: &'a str,
    pub to: &'a str,
    pub kind: &'a str,
    pub data: Option<&'a [u8]>,
    pub url: Option<&'a str>,
    pub caption: Option<&'a str>,
    pub mimetype: Option<&'a str>,
    pub file_name: Option<&'a str>,
}

/// Enqueues; returns the job id and the message id fixed at enqueue.
pub async fn send_media(pool: &PgPool, m: &SendMedia<'_>) -> sqlx::Result<(i64, String)> {
    let r = sqlx::query!(
        r#"SELECT job_id AS "job_id!", message_id AS "message_id!"
             FROM wa.send_media($1, $2, $3, data => $4, url => $5, caption => $6, mimetype => $7, file_name => $8)"#,
        m.session,
        m.to,
        m.kind,
        m.data,
        m.url,
        m.caption,
        m.mimetype,
        m.file_name,
    )
    .fetch_one(pool)
    .await?;
    Ok((r.job_id, r.message_id))
}

/// `wa.send_poll`: the job id and the message id fixed at enqueue.
pub async fn send_poll(
    pool: &PgPool,
    session: &str,
    to: &str,
    question: &str,
    options: &[String],
    selectable_count: i32,
) -> sqlx::Result<(i64, String)> {
    let r = sqlx::query!(
        r#"SELECT job_id AS "job_id!", message_id AS "message_id!" FROM wa.send_poll($1, $2, $3, $4, $5)"#,
        session,
        to,
        question,
        options,
        selectable_count,
    )
    .fetch_one(pool)
    .await?;
    Ok((r.job_id, r.message_id))
}

/// `wa.check_numbers`: the job id.
pub async fn check_numbers(pool: &PgPool, session: &str, phones: &[String]) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT wa.check_numbers($1, $2) AS "job!""#, session, phones).fetch_one(pool).await
}

/// `wa.create_group`: the job id.
pub async fn create_group(pool: &PgPool, session: &str, subject: &str, participants: &[String]) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT wa.create_group($1, $2, $3) AS "job!""#, session, subject, participants).fetch_one(pool).await
}

/// Where a job stands, for commands that wait for one.
#[derive(Debug)]
pub struct JobProgress {
    pub state: JobState,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
}

impl JobProgress {
    pub fn finished(&self) -> bool {
        matches!(self.state, JobState::Completed | JobState::Dead | JobState::Cancelled)
    }
}

pub async fn job_progress(pool: &PgPool, id: i64) -> sqlx::Result<JobProgress> {
    let r = sqlx::query!(
        r#"SELECT state::text AS "state!", errors->-1->>'error' AS last_error, result FROM wa.job_rows WHERE id = $1"#,
        id
    )
    .fetch_one(pool)
    .await?;
    Ok(JobProgress { state: crate::enum_label(r.state)?, last_error: r.last_error, result: r.result })
}

/// `wa.retry_job`: the job's state after the call.
pub async fn retry_job(pool: &PgPool, id: i64) -> sqlx::Result<JobState> {
    let state = sqlx::query_scalar!(r#"SELECT wa.retry_job($1)::text AS "state!""#, id).fetch_one(pool).await?;
    crate::enum_label(state)
}

/// `wa.cancel_job`: the job's state after the call (`running` when it was claimed).
pub async fn cancel_job(pool: &PgPool, id: i64) -> sqlx::Result<JobState> {
    let state = sqlx::query_scalar!(r#"SELECT wa.cancel_job($1)::text AS "state!""#, id).fetch_one(pool).await?;
    crate::enum_label(state)
}

/// `wa.connect_link`: a URL of the connect page valid for `minutes`.
pub async fn connect_link(pool: &PgPool, session: &str, minutes: u32) -> sqlx::Result<String> {
    sqlx::query_scalar!(r#"SELECT wa.connect_link($1, make_interval(mins => $2)) AS "url!""#, session, minutes as i32)
        .fetch_one(pool)
        .await
}

/// The filter of `wa.retry_jobs` and `wa.cancel_jobs` (kind and state as their labels).
pub struct JobPick<'a> {
    pub session: Option<&'a str>,
    pub kind: Option<String>,
    pub state: Option<String>,
    pub error_contains: Option<&'a str>,
    pub max_jobs: i32,
}

/// `wa.retry_jobs` (dead jobs when no state is named): how many were retried.
pub async fn retry_jobs(pool: &PgPool, p: &JobPick<'_>) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"SELECT wa.retry_jobs($1, $2, coalesce($3::text, 'dead')::wa.job_state, $4, NULL, $5) AS "n!""#,
        p.session,
        p.kind,
        p.state,
        p.error_contains,
        p.max_jobs
    )
    .fetch_one(pool)
    .await
}

/// `wa.cancel_jobs`: how many were cancelled or asked to stop.
pub async fn cancel_jobs(pool: &PgPool, p: &JobPick<'_>) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"SELECT wa.cancel_jobs($1, $2, $3::text::wa.job_state, $4, NULL, $5) AS "n!""#,
        p.session,
        p.kind,
        p.state,
        p.error_contains,
        p.max_jobs
    )
    .fetch_one(pool)
    .await
}

/// Where linking a session stands, as `pgwa session add --wait` shows it.
#[derive(Debug)]
pub struct LinkState {
    pub status: SessionStatus,
    pub status_reason: Option<String>,
    pub qr_code: Option<String>,
    pub pair_code: Option<String>,
    pub jid: Option<String>,
}

pub async fn link_state(pool: &PgPool, id: &str) -> sqlx::Result<LinkState> {
    let r = sqlx::query!(
        r#"SELECT status::text AS "status!", status_reason, qr_code, pair_code, jid FROM wa.sessions WHERE id = $1"#,
        id,
    )
    .fetch_one(pool)
    .await?;
    Ok(LinkState {
        status: crate::enum_label(r.status)?,
        status_reason: r.status_reason,
        qr_code: r.qr_code,
        pair_code: r.pair_code,
        jid: r.jid,
    })
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
