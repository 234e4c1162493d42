//! The expiring part of ProtocolStore: trusted-contact tokens, the sent-message store
//! (answers retry receipts) and the inbound durability buffer. Each write is one atomic
//! statement, so concurrent writers inside one client converge without locks.

use sqlx::Row;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{PendingInboundKey, PendingInboundRow, TcTokenEntry};

use super::{PgBackend, db_err, fenced, last_wins};
use crate::outage::{caused_by_unreachable, is_unreachable, wait_out};

impl PgBackend {
    pub(crate) async fn tc_get(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        let row = sqlx::query("SELECT token, token_ts, sender_ts FROM wa.tc_tokens WHERE session_id = $1 AND jid = $2")
            .bind(&self.session)
            .bind(jid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(TcTokenEntry {
                token: r.try_get(0).map_err(db_err)?,
                token_timestamp: r.try_get(1).map_err(db_err)?,
                sender_timestamp: r.try_get(2).map_err(db_err)?,
            })
        })
        .transpose()
    }

    pub(crate) async fn tc_put(&self, jid: &str, e: &TcTokenEntry) -> Result<()> {
        let q = self
            .write(fenced!(
                "INSERT INTO wa.tc_tokens (session_id, jid, token, token_ts, sender_ts)
                 SELECT $1, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, jid) DO UPDATE SET token = EXCLUDED.token,
                     token_ts = EXCLUDED.token_ts, sender_ts = EXCLUDED.sender_ts"
            ))
            .bind(jid.to_string())
            .bind(e.token.clone())
            .bind(e.token_timestamp)
            .bind(e.sender_timestamp);
        self.run(q).await.map(drop)
    }

    pub(crate) async fn tc_delete(&self, jid: &str) -> Result<()> {
        let q = self
            .write(fenced!("DELETE FROM wa.tc_tokens WHERE session_id = $1 AND jid = $4 AND EXISTS (SELECT 1 FROM fence)"))
            .bind(jid.to_string());
        self.run(q).await.map(drop)
    }

    pub(crate) async fn tc_all_jids(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT jid FROM wa.tc_tokens WHERE session_id = $1 ORDER BY jid")
            .bind(&self.session)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    /// A row goes only when both its received token and its sender bucket are stale or
    /// absent (the trait's contract).
    pub(crate) async fn tc_delete_expired(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let q = self
            .write(fenced!(
                "DELETE FROM wa.tc_tokens WHERE session_id = $1 AND EXISTS (SELECT 1 FROM fence)
                 AND NOT (length(token) > 0 AND token_ts >= $4)
                 AND NOT (sender_ts IS NOT NULL AND sender_ts >= $5)"
            ))
            .bind(token_cutoff)
            .bind(sender_cutoff);
        self.run(q).await.map(|n| n as u32)
    }

    /// Sender timestamp only moves forward; a missing row becomes a byte-less placeholder.
    pub(crate) async fn tc_touch_sender(&self, jid: &str, ts: i64) -> Result<()> {
        let q = self
            .write(fenced!(
                "INSERT INTO wa.tc_tokens AS t (session_id, jid, token, token_ts, sender_ts)
                 SELECT $1, $4, '\\x'::bytea, $5, $5 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, jid) DO UPDATE SET sender_ts = greatest(t.sender_ts, EXCLUDED.sender_ts)"
            ))
            .bind(jid.to_string())
            .bind(ts);
        self.run(q).await.map(drop)
    }

    /// Newer wins, a placeholder never blocks the first real token, and the sender
    /// timestamp is preserved.
    pub(crate) async fn tc_store_received(&self, jid: &str, token: &[u8], ts: i64) -> Result<()> {
        let q = self
            .write(fenced!(
                "INSERT INTO wa.tc_tokens AS t (session_id, jid, token, token_ts, sender_ts)
                 SELECT $1, $4, $5, $6, NULL WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, jid) DO UPDATE SET token = EXCLUDED.token, token_ts = EXCLUDED.token_ts
                 WHERE length(t.token) = 0 OR EXCLUDED.token_ts >= t.token_ts"
            ))
            .bind(jid.to_string())
            .bind(token.to_vec())
            .bind(ts);
        self.run(q).await.map(drop)
    }

    pub(crate) async fn sent_store(&self, chat: &str, id: &str, payload: &[u8]) -> Result<()> {
        let q = self
            .write(fenced!(
                "INSERT INTO wa.sent_messages (session_id, chat_jid, message_id, payload)
                 SELECT $1, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, chat_jid, message_id) DO UPDATE SET payload = EXCLUDED.payload,
                     stored_at = EXCLUDED.stored_at"
            ))
            .bind(chat.to_string())
            .bind(id.to_string())
            .bind(payload.to_vec());
        self.run(q).await.map(drop)
    }

    /// Read and delete in one statement: two retry receipts racing for one message get
    /// the payload once.
    pub(crate) async fn sent_take(&self, chat: &str, id: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .write(concat!(
                super::fence_cte!(),
                "w AS (DELETE FROM wa.sent_messages WHERE session_id = $1 AND chat_jid = $4 AND message_id = $5
                       AND EXISTS (SELECT 1 FROM fence) RETURNING payload)
                 SELECT EXISTS (SELECT 1 FROM fence) AS ok, (SELECT payload FROM w) AS payload",
            ))
            .bind(chat.to_string())
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        if !row.try_get::<bool, _>("ok").map_err(db_err)? {
            return Err(self.fence_error());
        }
        row.try_get("payload").map_err(db_err)
    }

    pub(crate) async fn sent_delete_expired(&self, cutoff: i64) -> Result<u32> {
        let q = self
            .write(fenced!(
                "DELETE FROM wa.sent_messages WHERE session_id = $1 AND stored_at < $4 AND EXISTS (SELECT 1 FROM fence)"
            ))
            .bind(cutoff);
        self.run(q).await.map(|n| n as u32)
    }

    pub(crate) async fn pending_store(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = last_wins(rows.iter().map(|r| ((r.chat, r.sender, r.id), r.message)));
        let chats: Vec<&str> = rows.iter().map(|((c, _, _), _)| *c).collect();
        let senders: Vec<&str> = rows.iter().map(|((_, s, _), _)| *s).collect();
        let ids: Vec<&str> = rows.iter().map(|((_, _, i), _)| *i).collect();
        let msgs: Vec<&[u8]> = rows.iter().map(|(_, m)| *m).collect();
        let store = || {
            let q = self
                .write(fenced!(
                    "INSERT INTO wa.pending_inbound (session_id, chat, sender, stanza_id, message)
                     SELECT $1, c, s, i, m FROM unnest($4::text[], $5::text[], $6::text[], $7::bytea[]) AS u(c, s, i, m)
                     WHERE EXISTS (SELECT 1 FROM fence)
                     ON CONFLICT (session_id, chat, sender, stanza_id) DO UPDATE SET message = EXCLUDED.message,
                         stored_at = EXCLUDED.stored_at"
                ))
                .bind(&chats)
                .bind(&senders)
                .bind(&ids)
                .bind(&msgs);
            async move { self.run(q).await.map(drop) }
        };
        wait_out(self.outage_wait, "buffering an inbound message", |e: &StoreError| caused_by_unreachable(e), store).await
    }

    pub(crate) async fn pending_get(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        let read = || {
            sqlx::query_scalar(
                "SELECT message FROM wa.pending_inbound WHERE session_id = $1 AND chat = $2 AND sender = $3 AND stanza_id = $4",
            )
            .bind(&self.session)
            .bind(chat)
            .bind(sender)
            .bind(id)
            .fetch_optional(&self.pool)
        };
        wait_out(self.outage_wait, "reading a buffered inbound message", is_unreachable, read).await.map_err(db_err)
    }

    pub(crate) async fn pending_delete(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let chats: Vec<&str> = keys.iter().map(|k| k.chat).collect();
        let senders: Vec<&str> = keys.iter().map(|k| k.sender).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id).collect();
        let q = self
            .write(fenced!(
                "DELETE FROM wa.pending_inbound p USING unnest($4::text[], $5::text[], $6::text[]) AS u(c, s, i)
                 WHERE p.session_id = $1 AND p.chat = u.c AND p.sender = u.s AND p.stanza_id = u.i
                 AND EXISTS (SELECT 1 FROM fence)"
            ))
            .bind(chats)
            .bind(senders)
            .bind(ids);
        self.run(q).await.map(drop)
    }

    pub(crate) async fn pending_delete_expired(&self, cutoff: i64) -> Result<u32> {
        let q = self
            .write(fenced!(
                "DELETE FROM wa.pending_inbound WHERE session_id = $1 AND stored_at < $4 AND EXISTS (SELECT 1 FROM fence)"
            ))
            .bind(cutoff);
        self.run(q).await.map(|n| n as u32)
    }
}
