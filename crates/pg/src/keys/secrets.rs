//! MsgSecretStore: per-message secrets for poll votes, reactions and edits.

use async_trait::async_trait;
use std::collections::HashMap;
use whatsapp_rust::wacore::store::error::Result;

use whatsapp_rust::wacore::store::traits::{
    MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use super::combined::BehindRows;
use super::{PgBackend, db_err, fenced};

#[async_trait]
impl MsgSecretStore for PgBackend {
    /// One upsert for the batch. On conflict the merge is the trait's: a `0` deadline
    /// ("never") wins, otherwise the later one; the later non-zero message time wins.
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        if entries.is_empty() {
            return Ok(0);
        }
        if let Some(through) = self.combined() {
            through.write(BehindRows::MsgSecrets(entries)).await?;
            return Ok(stored);
        }
        // Within one batch apply the same merge rule a sequence of puts would.
        let merged = merged_secrets(entries.iter().map(|e| ((&*e.chat, &*e.sender, &*e.msg_id), e)));
        let chats: Vec<&str> = merged.iter().map(|((c, _, _), _)| *c).collect();
        let senders: Vec<&str> = merged.iter().map(|((_, s, _), _)| *s).collect();
        let ids: Vec<&str> = merged.iter().map(|((_, _, i), _)| *i).collect();
        let secrets: Vec<&[u8]> = merged.iter().map(|(_, r)| r.secret).collect();
        let expires: Vec<i64> = merged.iter().map(|(_, r)| r.expires_at).collect();
        let ts: Vec<i64> = merged.iter().map(|(_, r)| r.message_ts).collect();
        fenced!(
            self,
            "INSERT INTO wa.msg_secrets AS m (session_id, chat, sender, msg_id, secret, expires_at, message_ts)
                 SELECT $1, c, s, i, k, e, t
                 FROM unnest($4::text[], $5::text[], $6::text[], $7::bytea[], $8::bigint[], $9::bigint[]) AS u(c, s, i, k, e, t)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, chat, sender, msg_id) DO UPDATE SET secret = EXCLUDED.secret,
                     expires_at = CASE WHEN m.expires_at = 0 OR EXCLUDED.expires_at = 0 THEN 0
                                       ELSE greatest(m.expires_at, EXCLUDED.expires_at) END,
                     message_ts = greatest(m.message_ts, EXCLUDED.message_ts)",
            &chats[..] as &[&str],
            &senders[..] as &[&str],
            &ids[..] as &[&str],
            &secrets[..] as &[&[u8]],
            &expires[..],
            &ts[..]
        )?;
        Ok(stored)
    }

    async fn get_msg_secret(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_msg_secret_with_ts(chat, sender, msg_id).await?.map(|(s, _)| s))
    }

    async fn get_msg_secret_with_ts(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<(Vec<u8>, i64)>> {
        let row = sqlx::query!(
            "SELECT secret, message_ts FROM wa.msg_secrets WHERE session_id = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
            &self.session,
            chat,
            sender,
            msg_id
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| (r.secret, r.message_ts)))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        fenced!(
            self,
            "DELETE FROM wa.msg_secrets WHERE session_id = $1 AND expires_at <> 0 AND expires_at <= $4
                 AND EXISTS (SELECT 1 FROM fence)",
            cutoff_timestamp
        )
        .map(|n| n as u32)
    }
}

/// A message secret as it will be stored: the last write's secret, with the deadline
/// and message time merged over every write of the same key.
pub(crate) struct SecretRow<'a> {
    pub secret: &'a [u8],
    pub expires_at: i64,
    pub message_ts: i64,
}

/// Keys message secrets and merges repeats of a key, in first-seen order, by the store
/// trait's rule, as a sequence of puts would leave them (ON CONFLICT cannot touch one
/// row twice in a statement).
pub(crate) fn merged_secrets<'a, K: Eq + std::hash::Hash + Clone>(
    entries: impl IntoIterator<Item = (K, &'a MsgSecretEntry)>,
) -> Vec<(K, SecretRow<'a>)> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<(K, SecretRow<'a>)> = Vec::new();
    for (key, e) in entries {
        match index.get(&key) {
            Some(&i) => {
                let prev = &mut out[i].1;
                prev.secret = &e.secret;
                prev.expires_at = merge_msg_secret_expiry(prev.expires_at, e.expires_at);
                prev.message_ts = merge_msg_secret_message_ts(prev.message_ts, e.message_ts);
            }
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, SecretRow { secret: &e.secret, expires_at: e.expires_at, message_ts: e.message_ts }));
            }
        }
    }
    out
}
