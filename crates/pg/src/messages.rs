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
    let got: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT sender, text FROM wa.inbox WHERE session_id = $1 AND message_id = $2 ORDER BY id DESC LIMIT 1")
            .bind(session)
            .bind(message_id)
            .fetch_optional(pool)
            .await?;
    if let Some((sender, text)) = got {
        return Ok(Some(Target { from_me: false, sender: Some(sender), text }));
    }
    let ours: Option<Option<String>> =
        sqlx::query_scalar("SELECT payload->>'text' FROM wa.jobs WHERE session_id = $1 AND message_id = $2")
            .bind(session)
            .bind(message_id)
            .fetch_optional(pool)
            .await?;
    Ok(ours.map(|text| Target { from_me: true, sender: None, text }))
}
