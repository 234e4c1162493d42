//! What a webhook delivery reads and writes besides its job row (wa.webhooks; the
//! outbox triggers and the SQL API are in sql/08_webhooks.sql).

use sqlx::PgPool;

/// Where and how to deliver: read when a delivery runs, never copied onto the job.
pub struct Endpoint {
    pub url: String,
    /// `whsec_<base64>`: the HMAC key. Never logged (Debug hides it).
    pub secret: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &"<hidden>").field("secret", &"<hidden>").finish()
    }
}

/// The webhook's URL and secret; None once it was removed.
pub async fn endpoint(pool: &PgPool, webhook: i64) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as!(Endpoint, "SELECT url, secret FROM wa.webhooks WHERE id = $1", webhook).fetch_optional(pool).await
}

/// Turns the webhook off (its receiver answered 410 Gone: it asks for no more events).
/// Deliveries already queued are left for the app to cancel or retry.
pub async fn disable(pool: &PgPool, webhook: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE wa.webhooks SET enabled = false, updated_at = now() WHERE id = $1 AND enabled", webhook)
        .execute(pool)
        .await?;
    Ok(())
}

/// Sets going again the webhooks whose deliveries wait with none out (two transactions
/// crossed; sql/08_webhooks.sql). Returns how many deliveries it released.
pub async fn release_stalled(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT wa._webhooks_release_stalled() AS "released!""#).fetch_one(pool).await.map(i64::from)
}

/// A webhook as the CLI lists it (no secret).
#[derive(Debug, serde::Serialize)]
pub struct WebhookRow {
    pub id: i64,
    pub tenant: String,
    pub url: String,
    pub events: Vec<String>,
    pub session: Option<String>,
    pub enabled: bool,
    pub description: Option<String>,
    /// Deliveries not yet made (released, running, waiting for a retry or their turn).
    pub pending: i64,
    pub dead: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// What `wa.add_webhook` takes.
pub struct NewWebhook<'a> {
    pub url: &'a str,
    pub events: Option<&'a [String]>,
    pub session: Option<&'a str>,
    pub description: Option<&'a str>,
    pub tenant: Option<&'a str>,
}

/// `wa.add_webhook`: the new webhook's id and its secret (shown this once).
pub async fn add(pool: &PgPool, w: &NewWebhook<'_>) -> sqlx::Result<(i64, String)> {
    let r = sqlx::query!(
        r#"SELECT h.id AS "id!", h.secret AS "secret!"
             FROM wa.add_webhook($1, coalesce($2, '{inbox,outbound,session,codes}'::text[]), $3,
                                 description => $4, tenant => $5) h"#,
        w.url,
        w.events,
        w.session,
        w.description,
        w.tenant,
    )
    .fetch_one(pool)
    .await?;
    Ok((r.id, r.secret))
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<WebhookRow>> {
    sqlx::query_as!(
        WebhookRow,
        r#"SELECT h.id, h.tenant, h.url, h.events, h.session_id AS session, h.enabled, h.description,
                  count(d.id) FILTER (WHERE d.state IN ('available', 'scheduled', 'retryable', 'running')) AS "pending!",
                  count(d.id) FILTER (WHERE d.state = 'dead') AS "dead!",
                  h.created_at
             FROM wa.webhooks h LEFT JOIN wa.webhook_deliveries d ON d.webhook = h.id
            GROUP BY h.id ORDER BY h.id"#
    )
    .fetch_all(pool)
    .await
}

/// `wa.update_webhook(webhook, enabled => ...)`.
pub async fn set_enabled(pool: &PgPool, webhook: i64, enabled: bool) -> sqlx::Result<()> {
    sqlx::query!("SELECT (wa.update_webhook($1, enabled => $2)).id", webhook, enabled).fetch_one(pool).await?;
    Ok(())
}

/// `wa.remove_webhook`: how many deliveries not yet made were cancelled.
pub async fn remove(pool: &PgPool, webhook: i64) -> sqlx::Result<i32> {
    sqlx::query_scalar!(r#"SELECT wa.remove_webhook($1) AS "cancelled!""#, webhook).fetch_one(pool).await
}

/// `wa.rotate_webhook_secret`: the new secret.
pub async fn rotate_secret(pool: &PgPool, webhook: i64) -> sqlx::Result<String> {
    sqlx::query_scalar!(r#"SELECT wa.rotate_webhook_secret($1) AS "secret!""#, webhook).fetch_one(pool).await
}

/// A delivery as `pgwa webhook deliveries` lists it.
#[derive(Debug, serde::Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub webhook: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub event_id: String,
    pub state: String,
    pub attempts: i16,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The newest deliveries of `webhook` (all webhooks when None), in `state` when given.
pub async fn deliveries(pool: &PgPool, webhook: Option<i64>, state: Option<&str>, limit: i64) -> sqlx::Result<Vec<DeliveryRow>> {
    sqlx::query_as!(
        DeliveryRow,
        r#"SELECT d.id AS "id!", d.webhook AS "webhook!", d.type AS "event_type!", d.event_id AS "event_id!",
                  d.state::text AS "state!", d.attempts AS "attempts!", d.last_error, d.created_at AS "created_at!", d.finished_at
             FROM wa.webhook_deliveries d
            WHERE ($1::bigint IS NULL OR d.webhook = $1) AND ($2::text IS NULL OR d.state::text = $2)
            ORDER BY d.id DESC LIMIT $3"#,
        webhook,
        state,
        limit,
    )
    .fetch_all(pool)
    .await
}
