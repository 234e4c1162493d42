//! What the connect page reads and does (wa.connect_link hands its URL out): the signing
//! key, a session's linking state, and the two things an end customer may ask for,
//! a pairing code for their number and a new round of QR codes.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The key connect links are signed with (wa.secrets; apps cannot read it).
pub async fn key(pool: &PgPool) -> sqlx::Result<Vec<u8>> {
    sqlx::query_scalar!(r#"SELECT value FROM wa.secrets WHERE name = 'connect_link'"#).fetch_one(pool).await
}

/// The columns of a session the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkView {
    pub status: String,
    pub desired: String,
    pub qr_code: Option<String>,
    pub qr_expires_at: Option<DateTime<Utc>>,
    pub pair_code: Option<String>,
    pub pair_code_expires_at: Option<DateTime<Utc>>,
    pub phone: Option<String>,
    pub linked: bool,
}

pub async fn view(pool: &PgPool, session: &str) -> sqlx::Result<Option<LinkView>> {
    sqlx::query_as!(
        LinkView,
        r#"SELECT status::text AS "status!", desired::text AS "desired!",
                  CASE WHEN qr_expires_at > now() THEN qr_code END AS qr_code, qr_expires_at,
                  CASE WHEN pair_code_expires_at > now() THEN pair_code END AS pair_code, pair_code_expires_at,
                  phone, jid IS NOT NULL AS "linked!"
             FROM wa.sessions WHERE id = $1"#,
        session,
    )
    .fetch_optional(pool)
    .await
}

/// Asks for linking by pairing code for `phone`: sets the session's pair_phone (checked
/// and normalized by sessions_validate: WA009 for a bad number) and has it run. The
/// holder restarts the connection to ask WhatsApp for a code. False when the session is
/// connected already (or gone): a linked number is not linked again from a link.
pub async fn pair_by_phone(pool: &PgPool, session: &str, phone: &str) -> sqlx::Result<bool> {
    relink(pool, session, Some(phone)).await
}

/// Back to QR codes (pair_phone cleared) and running: after the codes ran out, or a
/// failure the customer retries. False when the session is connected already (or gone).
pub async fn restart(pool: &PgPool, session: &str) -> sqlx::Result<bool> {
    relink(pool, session, None).await
}

async fn relink(pool: &PgPool, session: &str, pair_phone: Option<&str>) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let Some(connected) =
        sqlx::query_scalar!("SELECT status = 'connected' AS \"c!\" FROM wa.sessions WHERE id = $1 FOR UPDATE", session)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(false);
    };
    // Written even when connected, then rolled back: the table's trigger judges the
    // number (WA009), so a bad one is refused whatever the session's state. The codes on
    // show are void once the connection restarts.
    sqlx::query!(
        "UPDATE wa.sessions
            SET pair_phone = $2, qr_code = NULL, qr_expires_at = NULL, pair_code = NULL, pair_code_expires_at = NULL
          WHERE id = $1",
        session,
        pair_phone
    )
    .execute(&mut *tx)
    .await?;
    if connected {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query!("SELECT (wa.start_session($1)).id", session).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(true)
}
