//! Incoming calls, recorded by the session's holder (wa.calls).

use sqlx::PgPool;

use pgwa_core::fence::Fence;
use pgwa_core::wa::IncomingCall;

/// A call recorded: its row, and whether wa.policy says to reject it.
pub struct Recorded {
    pub id: i64,
    pub reject: bool,
}

/// Records a call offered to the session (once per call id: an offer seen again is not
/// new). None when it was already recorded or the fence refused.
pub async fn record(pool: &PgPool, f: &Fence, c: &IncomingCall) -> sqlx::Result<Option<Recorded>> {
    let r = sqlx::query!(
        r#"INSERT INTO wa.calls (session_id, call_id, caller, group_jid, video, offered_at, status)
           SELECT $1, $4, $5, $6, $7, $8, 'offered'
            WHERE EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3))
           ON CONFLICT ON CONSTRAINT calls_unique DO NOTHING
           RETURNING id, (SELECT reject_calls FROM wa.policy) AS "reject!""#,
        &f.session,
        f.worker,
        f.epoch,
        &c.call_id,
        &c.creator,
        c.group.as_deref(),
        c.video,
        c.at,
    )
    .fetch_optional(pool)
    .await?;
    Ok(r.map(|r| Recorded { id: r.id, reject: r.reject }))
}

/// The call's outcome: rejected, or failed with the reason.
pub async fn set_outcome(pool: &PgPool, f: &Fence, id: i64, rejected: Result<(), &str>) -> sqlx::Result<bool> {
    let (status, reason) = match rejected {
        Ok(()) => ("rejected", None),
        Err(why) => ("failed", Some(why)),
    };
    let n = sqlx::query!(
        "UPDATE wa.calls SET status = $5, reason = $6, updated_at = now()
          WHERE id = $4 AND session_id = $1
            AND EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3))",
        &f.session,
        f.worker,
        f.epoch,
        id,
        status,
        reason,
    )
    .execute(pool)
    .await?;
    Ok(n.rows_affected() == 1)
}
