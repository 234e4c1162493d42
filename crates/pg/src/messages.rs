//! Reads of messages already known: what a reply or a reaction points at.

use sqlx::PgPool;

/// What a reply or reaction points at.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub from_me: bool,
    /// The author, for a message we received.
    pub sender: Option<String>,
    pub text: Option<String>,
}

/// Looks the target message up: one we received (wa.inbox) or one we sent (wa.jobs).
/// Unknown ids resolve to None; the caller then assumes the peer's message.
pub async fn lookup_target(pool: &PgPool, session: &str, message_id: &str) -> sqlx::Result<Option<Target>> {
    let got = sqlx::query!(
        "SELECT sender, text FROM wa.inbox WHERE session_id = $1 AND message_id = $2 ORDER BY id DESC LIMIT 1",
        session,
        message_id,
    )
    .fetch_optional(pool)
    .await?;
    if let Some(r) = got {
        return Ok(Some(Target { from_me: false, sender: Some(r.sender), text: r.text }));
    }
    let ours = sqlx::query_scalar!(
        r#"SELECT payload->>'text' AS "text" FROM wa.jobs WHERE session_id = $1 AND message_id = $2"#,
        session,
        message_id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(ours.map(|text| Target { from_me: true, sender: None, text }))
}
