//! The expiring part of ProtocolStore: trusted-contact tokens, the sent-message store
//! (answers retry receipts) and the inbound durability buffer. Each write is one atomic
//! statement, so concurrent writers inside one client converge without locks. A fenced
//! backend with a combiner sends the per-message writes (sent copies, the inbound buffer)
//! through it instead (`super::combined`), and holds the inbound buffer's copies in
//! memory until the session's next key write when it is given a `crate::unbuffered`.

use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{PendingInboundKey, PendingInboundRow, TcTokenEntry};

use super::combined::{BehindRows, CopyRows};
use super::tc_cache::Touch;
use super::{PgBackend, db_err, fenced, last_wins};
use crate::outage::{caused_by_unreachable, is_unreachable, wait_out};
use crate::unbuffered::copy_row;

impl PgBackend {
    pub(crate) async fn tc_get(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        let ticket = match self.tc.as_deref().map(|c| c.get(jid)) {
            Some(Ok(cached)) => return Ok(cached),
            Some(Err(ticket)) => Some(ticket),
            None => None,
        };
        let row = sqlx::query!(
            "SELECT token, token_ts, sender_ts FROM wa.tc_tokens WHERE session_id = $1 AND jid = $2",
            &self.session,
            jid
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let row = row.map(|r| TcTokenEntry { token: r.token, token_timestamp: r.token_ts, sender_timestamp: r.sender_ts });
        if let (Some(cache), Some(ticket)) = (self.tc.as_deref(), ticket) {
            cache.keep(ticket, jid, &row);
        }
        Ok(row)
    }

    /// Runs a token write, then forgets what the cache held for `jid` (`None`: for every
    /// contact), whatever the write's result.
    async fn tc_write<T>(&self, jid: Option<&str>, write: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let result = write.await;
        if let Some(cache) = self.tc.as_deref() {
            cache.forget(jid);
        }
        result
    }

    pub(crate) async fn tc_put(&self, jid: &str, e: &TcTokenEntry) -> Result<()> {
        self.tc_write(Some(jid), async {
            fenced!(
                self,
                "INSERT INTO wa.tc_tokens (session_id, jid, token, token_ts, sender_ts)
                     SELECT $1, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM fence)
                     ON CONFLICT (session_id, jid) DO UPDATE SET token = EXCLUDED.token,
                         token_ts = EXCLUDED.token_ts, sender_ts = EXCLUDED.sender_ts",
                jid.to_string(),
                e.token.clone(),
                e.token_timestamp,
                e.sender_timestamp
            )
            .map(drop)
        })
        .await
    }

    pub(crate) async fn tc_delete(&self, jid: &str) -> Result<()> {
        self.tc_write(Some(jid), async {
            fenced!(
                self,
                "DELETE FROM wa.tc_tokens WHERE session_id = $1 AND jid = $4 AND EXISTS (SELECT 1 FROM fence)",
                jid.to_string()
            )
            .map(drop)
        })
        .await
    }

    pub(crate) async fn tc_all_jids(&self) -> Result<Vec<String>> {
        sqlx::query_scalar!("SELECT jid FROM wa.tc_tokens WHERE session_id = $1 ORDER BY jid", &self.session)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }

    /// A row goes only when both its received token and its sender bucket are stale or
    /// absent (the trait's contract).
    pub(crate) async fn tc_delete_expired(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        self.tc_write(None, async {
            fenced!(
                self,
                "DELETE FROM wa.tc_tokens WHERE session_id = $1 AND EXISTS (SELECT 1 FROM fence)
                     AND NOT (length(token) > 0 AND token_ts >= $4)
                     AND NOT (sender_ts IS NOT NULL AND sender_ts >= $5)",
                token_cutoff,
                sender_cutoff
            )
            .map(|n| n as u32)
        })
        .await
    }

    /// Sender timestamp only moves forward; a missing row becomes a byte-less placeholder.
    /// A fenced backend coalesces the touches of one contact (`tc_cache`): one the row
    /// already holds writes nothing (and so meets no fence, like a read), one a write in
    /// flight covers waits for it.
    pub(crate) async fn tc_touch_sender(&self, jid: &str, ts: i64) -> Result<()> {
        let Some(cache) = self.tc.as_deref() else {
            return self.tc_touch_write(jid, ts).await;
        };
        loop {
            match cache.touch(jid, ts) {
                Touch::Held => return Ok(()),
                // If that write failed or was dropped, this touch asks again (and most
                // likely writes itself: its own result is what it returns).
                Touch::Wait(mut rx) => {
                    if let Ok(Some(true)) = rx.wait_for(Option::is_some).await.map(|r| *r) {
                        return Ok(());
                    }
                }
                Touch::Write(ticket) => {
                    let result = self.tc_touch_write(jid, ts).await;
                    cache.touched(jid, ticket, result.is_ok());
                    return result;
                }
            }
        }
    }

    async fn tc_touch_write(&self, jid: &str, ts: i64) -> Result<()> {
        fenced!(
            self,
            "INSERT INTO wa.tc_tokens AS t (session_id, jid, token, token_ts, sender_ts)
                     SELECT $1, $4, '\\x'::bytea, $5, $5 WHERE EXISTS (SELECT 1 FROM fence)
                     ON CONFLICT (session_id, jid) DO UPDATE SET sender_ts = greatest(t.sender_ts, EXCLUDED.sender_ts)",
            jid.to_string(),
            ts
        )
        .map(drop)
    }

    /// Newer wins, a placeholder never blocks the first real token, and the sender
    /// timestamp is preserved.
    pub(crate) async fn tc_store_received(&self, jid: &str, token: &[u8], ts: i64) -> Result<()> {
        self.tc_write(Some(jid), async {
            fenced!(
                self,
                "INSERT INTO wa.tc_tokens AS t (session_id, jid, token, token_ts, sender_ts)
                     SELECT $1, $4, $5, $6, NULL WHERE EXISTS (SELECT 1 FROM fence)
                     ON CONFLICT (session_id, jid) DO UPDATE SET token = EXCLUDED.token, token_ts = EXCLUDED.token_ts
                     WHERE length(t.token) = 0 OR EXCLUDED.token_ts >= t.token_ts",
                jid.to_string(),
                token.to_vec(),
                ts
            )
            .map(drop)
        })
        .await
    }

    pub(crate) async fn sent_store(&self, chat: &str, id: &str, payload: &[u8]) -> Result<()> {
        if let Some(through) = self.combined() {
            return through.write(BehindRows::Sent { chat: chat.to_owned(), id: id.to_owned(), payload: payload.to_vec() }).await;
        }
        fenced!(
            self,
            "INSERT INTO wa.sent_messages (session_id, chat_jid, message_id, payload)
                 SELECT $1, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, chat_jid, message_id) DO UPDATE SET payload = EXCLUDED.payload,
                     stored_at = EXCLUDED.stored_at",
            chat.to_string(),
            id.to_string(),
            payload.to_vec()
        )
        .map(drop)
    }

    /// Read and delete in one statement: two retry receipts racing for one message get
    /// the payload once.
    pub(crate) async fn sent_take(&self, chat: &str, id: &str) -> Result<Option<Vec<u8>>> {
        self.settle_held_copies().await?;
        let row = sqlx::query!(
            r#"WITH fence AS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._may_write(s, $2, $3) FOR SHARE),
                    w AS (DELETE FROM wa.sent_messages WHERE session_id = $1 AND chat_jid = $4 AND message_id = $5
                          AND EXISTS (SELECT 1 FROM fence) RETURNING payload)
             SELECT EXISTS (SELECT 1 FROM fence) AS "ok!", (SELECT payload FROM w) AS payload"#,
            self.session_id(),
            self.fence_worker(),
            self.fence_epoch(),
            chat,
            id
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        self.fenced_result(row.ok, 0)?;
        Ok(row.payload)
    }

    pub(crate) async fn sent_delete_expired(&self, cutoff: i64) -> Result<u32> {
        fenced!(
            self,
            "DELETE FROM wa.sent_messages WHERE session_id = $1 AND stored_at < $4 AND EXISTS (SELECT 1 FROM fence)",
            cutoff
        )
        .map(|n| n as u32)
    }

    pub(crate) async fn pending_store(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let Some(through) = self.combined() {
            if let Some(u) = &self.unbuffered
                && u.defer(rows)
            {
                return Ok(());
            }
            let store = || through.write(CopyRows::Store(rows.iter().map(copy_row).collect()));
            return wait_out(self.outage_wait, "buffering an inbound message", |e: &StoreError| caused_by_unreachable(e), store)
                .await;
        }
        let rows = last_wins(rows.iter().map(|r| ((r.chat, r.sender, r.id), r.message)));
        let chats: Vec<&str> = rows.iter().map(|((c, _, _), _)| *c).collect();
        let senders: Vec<&str> = rows.iter().map(|((_, s, _), _)| *s).collect();
        let ids: Vec<&str> = rows.iter().map(|((_, _, i), _)| *i).collect();
        let msgs: Vec<&[u8]> = rows.iter().map(|(_, m)| *m).collect();
        // The closure runs once per attempt: its futures borrow the arrays.
        let (chats, senders, ids, msgs) = (&chats, &senders, &ids, &msgs);
        let store = || async move {
            fenced!(
                self,
                "INSERT INTO wa.pending_inbound (session_id, chat, sender, stanza_id, message)
                     SELECT $1, c, s, i, m FROM unnest($4::text[], $5::text[], $6::text[], $7::bytea[]) AS u(c, s, i, m)
                     WHERE EXISTS (SELECT 1 FROM fence)
                     ON CONFLICT (session_id, chat, sender, stanza_id) DO UPDATE SET message = EXCLUDED.message,
                         stored_at = EXCLUDED.stored_at",
                &chats[..] as &[&str],
                &senders[..] as &[&str],
                &ids[..] as &[&str],
                &msgs[..] as &[&[u8]]
            )
            .map(drop)
        };
        wait_out(self.outage_wait, "buffering an inbound message", |e: &StoreError| caused_by_unreachable(e), store).await
    }

    pub(crate) async fn pending_get(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        if let Some(u) = &self.unbuffered
            && let Some(copy) = u.held_copy(chat, sender, id).await
        {
            return Ok(Some(copy));
        }
        let read = || {
            sqlx::query_scalar!(
                "SELECT message FROM wa.pending_inbound WHERE session_id = $1 AND chat = $2 AND sender = $3 AND stanza_id = $4",
                &self.session,
                chat,
                sender,
                id
            )
            .fetch_optional(&self.pool)
        };
        wait_out(self.outage_wait, "reading a buffered inbound message", is_unreachable, read).await.map_err(db_err)
    }

    pub(crate) async fn pending_delete(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        let rest;
        let keys = match &self.unbuffered {
            Some(u) => {
                rest = u.still_buffered(keys).await;
                &rest[..]
            }
            None => keys,
        };
        if keys.is_empty() {
            return Ok(());
        }
        if let Some(through) = self.combined() {
            let keys = keys.iter().map(|k| (k.chat.to_owned(), k.sender.to_owned(), k.id.to_owned()));
            return through.write(CopyRows::Delete(keys.collect())).await;
        }
        let chats: Vec<&str> = keys.iter().map(|k| k.chat).collect();
        let senders: Vec<&str> = keys.iter().map(|k| k.sender).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id).collect();
        fenced!(
            self,
            "DELETE FROM wa.pending_inbound p USING unnest($4::text[], $5::text[], $6::text[]) AS u(c, s, i)
                 WHERE p.session_id = $1 AND p.chat = u.c AND p.sender = u.s AND p.stanza_id = u.i
                 AND EXISTS (SELECT 1 FROM fence)",
            &chats[..] as &[&str],
            &senders[..] as &[&str],
            &ids[..] as &[&str]
        )
        .map(drop)
    }

    pub(crate) async fn pending_delete_expired(&self, cutoff: i64) -> Result<u32> {
        fenced!(
            self,
            "DELETE FROM wa.pending_inbound WHERE session_id = $1 AND stored_at < $4 AND EXISTS (SELECT 1 FROM fence)",
            cutoff
        )
        .map(|n| n as u32)
    }
}
