//! Polls this session sends. A poll's votes are encrypted with a secret the poll carries:
//! it is made before the first attempt and kept, so a retry (same message id) sends the
//! same one, and the votes can be opened whenever they come. It is kept in the store's
//! wa.msg_secrets (key material: never granted to apps, wiped with the session's keys),
//! under sender `pgwa:poll`, apart from the rows whatsapp-rust writes there itself.

use sqlx::PgPool;

use pgwa_core::fence::Fence;

const SENDER: &str = "pgwa:poll";

/// The secret of poll `message_id` in `chat`: `fresh` if this is the first attempt, else
/// the one stored by the first. None when the fence refused (the lease moved).
pub async fn secret(pool: &PgPool, f: &Fence, chat: &str, message_id: &str, fresh: &[u8]) -> sqlx::Result<Option<Vec<u8>>> {
    let r = sqlx::query!(
        r#"WITH held AS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3)),
           made AS (
             INSERT INTO wa.msg_secrets (session_id, chat, sender, msg_id, secret, expires_at, message_ts)
             SELECT $1, $4, $6, $5, $7, 0, extract(epoch FROM now())::bigint
              WHERE EXISTS (SELECT 1 FROM held)
             ON CONFLICT DO NOTHING
             RETURNING secret)
           SELECT EXISTS (SELECT 1 FROM held) AS "held!",
                  coalesce((SELECT secret FROM made),
                           (SELECT secret FROM wa.msg_secrets
                             WHERE session_id = $1 AND chat = $4 AND sender = $6 AND msg_id = $5)) AS secret"#,
        &f.session,
        f.worker,
        f.epoch,
        chat,
        message_id,
        SENDER,
        fresh,
    )
    .fetch_one(pool)
    .await?;
    Ok(if r.held { r.secret } else { None })
}

/// A poll this session sent, as its votes need it: its options and secret.
#[derive(Debug, Clone)]
pub struct SentPoll {
    pub options: Vec<String>,
    pub secret: Vec<u8>,
}

/// The poll `poll_id` of `session`, if this session sent it (and its secret is kept).
pub async fn sent_poll(pool: &PgPool, session: &str, poll_id: &str) -> sqlx::Result<Option<SentPoll>> {
    let r = sqlx::query!(
        r#"SELECT array(SELECT jsonb_array_elements_text(j.payload->'options')) AS "options!", s.secret
             FROM wa.job_rows j
             JOIN wa.msg_secrets s ON s.session_id = j.session_id AND s.chat = j.chat AND s.msg_id = j.message_id
                                  AND s.sender = $3
            WHERE j.session_id = $1 AND j.message_id = $2 AND j.kind = 'send' AND j.payload->>'type' = 'poll'"#,
        session,
        poll_id,
        SENDER,
    )
    .fetch_optional(pool)
    .await?;
    Ok(r.map(|r| SentPoll { options: r.options, secret: r.secret }))
}
