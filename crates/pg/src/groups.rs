//! wa.groups: the groups a session is in, as the server last described them. Written
//! by the session's holder only, after its group jobs and on group notifications.

use sqlx::PgPool;

use pgwa_core::fence::Fence;
use pgwa_core::wa::GroupInfo;

/// Stores what the server says the group is now (and its invite link, when one was
/// fetched); a group this number had left and is in again loses its left_at. Returns
/// false when the fence refused the write.
pub async fn record_group(pool: &PgPool, f: &Fence, g: &GroupInfo, invite_link: Option<&str>) -> sqlx::Result<bool> {
    let participants = serde_json::to_value(&g.participants).unwrap_or_default();
    let n = sqlx::query!(
        "INSERT INTO wa.groups AS g (session_id, jid, subject, participants, creator, created_at, invite_link)
         SELECT $1, $4, $5, $6, $7, $8, $9
          WHERE EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3))
         ON CONFLICT (session_id, jid) DO UPDATE
            SET subject = EXCLUDED.subject, participants = EXCLUDED.participants,
                creator = coalesce(EXCLUDED.creator, g.creator), created_at = coalesce(EXCLUDED.created_at, g.created_at),
                invite_link = coalesce(EXCLUDED.invite_link, g.invite_link), left_at = NULL, updated_at = now()",
        &f.session,
        f.worker,
        f.epoch,
        &g.jid,
        &g.subject,
        participants,
        g.creator.as_deref(),
        g.created_at,
        invite_link,
    )
    .execute(pool)
    .await?;
    Ok(n.rows_affected() == 1)
}

/// This number left the group or was removed from it: the row stays, with left_at.
/// Returns false when the fence refused the write.
pub async fn record_left(pool: &PgPool, f: &Fence, group: &str) -> sqlx::Result<bool> {
    let held = sqlx::query_scalar!(
        r#"WITH held AS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3)),
           left_group AS (UPDATE wa.groups SET left_at = now(), updated_at = now()
                           WHERE session_id = $1 AND jid = $4 AND left_at IS NULL AND EXISTS (SELECT 1 FROM held))
           SELECT EXISTS (SELECT 1 FROM held) AS "held!""#,
        &f.session,
        f.worker,
        f.epoch,
        group,
    )
    .fetch_one(pool)
    .await?;
    Ok(held)
}
