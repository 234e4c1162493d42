//! What a session learns about other people: which numbers are on WhatsApp (number
//! checks) and the chat states they show us. Written by the session's holder only.

use sqlx::PgPool;

use pgwa_core::fence::Fence;
use pgwa_core::wa::{InboundChatState, NumberCheck};

/// Stores the answers of a number check in wa.contacts and tells apps on channel
/// wa_contacts ({"session", "job", "checked"}: no numbers, any role can LISTEN). A LID
/// the check did not return keeps the one already known. Returns false when the fence
/// refused the write.
pub async fn record_checks(pool: &PgPool, f: &Fence, job: i64, checks: &[NumberCheck]) -> sqlx::Result<bool> {
    let phones: Vec<&str> = checks.iter().map(|c| c.phone.as_str()).collect();
    let jids: Vec<Option<&str>> = checks.iter().map(|c| c.jid.as_deref()).collect();
    let lids: Vec<Option<&str>> = checks.iter().map(|c| c.lid.as_deref()).collect();
    let on: Vec<bool> = checks.iter().map(|c| c.on_whatsapp).collect();
    let business: Vec<bool> = checks.iter().map(|c| c.is_business).collect();
    let stored = sqlx::query_scalar!(
        r#"WITH held AS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3)),
           written AS (
             INSERT INTO wa.contacts AS c (session_id, phone, jid, lid, on_whatsapp, is_business, checked_at,
                                           lid_learned_at, updated_at)
             SELECT $1, p, j, l, o, b, now(), CASE WHEN l IS NOT NULL THEN now() END, now()
               FROM unnest($4::text[], $5::text[], $6::text[], $7::bool[], $8::bool[]) AS x(p, j, l, o, b)
              WHERE EXISTS (SELECT 1 FROM held)
             ON CONFLICT (session_id, phone) DO UPDATE
                SET jid = coalesce(EXCLUDED.jid, c.jid), lid = coalesce(EXCLUDED.lid, c.lid),
                    on_whatsapp = EXCLUDED.on_whatsapp, is_business = EXCLUDED.is_business,
                    checked_at = EXCLUDED.checked_at,
                    lid_learned_at = CASE WHEN EXCLUDED.lid IS DISTINCT FROM c.lid AND EXCLUDED.lid IS NOT NULL
                                          THEN now() ELSE c.lid_learned_at END,
                    updated_at = now()
             RETURNING 1)
           SELECT CASE WHEN EXISTS (SELECT 1 FROM held)
                       THEN pg_notify('wa_contacts', json_build_object('session', $1::text, 'job', $9::bigint,
                                      'checked', (SELECT count(*) FROM written))::text) IS NOT NULL
                       ELSE false END AS "held!""#,
        &f.session,
        f.worker,
        f.epoch,
        &phones as &[&str],
        &jids as &[Option<&str>],
        &lids as &[Option<&str>],
        &on[..],
        &business[..],
        job,
    )
    .fetch_one(pool)
    .await?;
    Ok(stored)
}

/// Records the chat state someone showed a chat (one row per session, chat and sender,
/// updated in place; the trigger tells apps on wa_chat_state). False when fenced out.
pub async fn record_chat_state(pool: &PgPool, f: &Fence, c: &InboundChatState) -> sqlx::Result<bool> {
    let n = sqlx::query!(
        "INSERT INTO wa.chat_states AS c (session_id, chat, sender, state, at)
         SELECT $1, $4, $5, $6, now()
          WHERE EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3))
         ON CONFLICT (session_id, chat, sender) DO UPDATE SET state = EXCLUDED.state, at = EXCLUDED.at",
        &f.session,
        f.worker,
        f.epoch,
        &c.chat,
        &c.sender,
        c.state.as_str(),
    )
    .execute(pool)
    .await?;
    Ok(n.rows_affected() == 1)
}
