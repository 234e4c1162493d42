//! Messages already known: what a reply or a reaction points at, who sent the messages
//! a read receipt is for, and their read marks.

use sqlx::PgPool;

use pgwa_core::fence::Fence;

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
        r#"SELECT payload->>'text' AS "text" FROM wa.job_rows WHERE session_id = $1 AND message_id = $2"#,
        session,
        message_id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(ours.map(|text| Target { from_me: true, sender: None, text }))
}

/// The authors of messages received in `chat`, by message id (a group's read receipts
/// go to each author). Ids not in wa.inbox are left out.
pub async fn inbox_senders(pool: &PgPool, session: &str, chat: &str, ids: &[String]) -> sqlx::Result<Vec<(String, String)>> {
    let rows = sqlx::query!(
        "SELECT DISTINCT message_id, sender FROM wa.inbox
          WHERE session_id = $1 AND message_id = ANY($3) AND chat = $2
          ORDER BY message_id",
        session,
        chat,
        ids,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.message_id, r.sender)).collect())
}

/// Sets read_at on the messages whose read receipts went out. Returns the rows marked,
/// or None when the fence refused the write.
pub async fn mark_inbox_read(pool: &PgPool, f: &Fence, chat: &str, ids: &[String]) -> sqlx::Result<Option<u64>> {
    let row = sqlx::query!(
        r#"WITH held AS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3)),
           marked AS (
             UPDATE wa.inbox SET read_at = coalesce(read_at, now())
              WHERE session_id = $1 AND message_id = ANY($5) AND chat = $4 AND EXISTS (SELECT 1 FROM held)
             RETURNING 1)
           SELECT EXISTS (SELECT 1 FROM held) AS "held!", (SELECT count(*) FROM marked) AS "n!""#,
        &f.session,
        f.worker,
        f.epoch,
        chat,
        ids,
    )
    .fetch_one(pool)
    .await?;
    Ok(row.held.then_some(row.n as u64))
}
