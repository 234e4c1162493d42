//! Inbound messages of all a worker's sessions, stored in group commits.
//!
//! Every inbound message is committed to wa.inbox before the server is acknowledged. One
//! insert per message was a statement and a commit each, and a commit that notified
//! (wa_inbox) holds Postgres's global notify lock through its WAL flush. An
//! [`InboxWriter`] stores what its sessions have waiting in one statement
//! (`crate::group_commit`): about 2.4 messages per statement in a bench-messages burst
//! (BENCHMARKS.md). Each message is answered after that statement committed, so the ack
//! still waits for the commit. The writer keeps a connection of its own from statement
//! to statement (`crate::held_conn`).
//!
//! The same statement deletes the message's buffered copy in wa.pending_inbound (the
//! crash window's buffer, whatsapp-rust's): from its commit on, wa.inbox holds the
//! message, and the deletion whatsapp-rust sends after the hook can be left out
//! (`crate::unbuffered`).

use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;

use crate::WriteFailed;
use crate::batch_fences::BatchFences;
use crate::group_commit::{Flush, GroupCommit};
use crate::held_conn::HeldConn;
use pgwa_core::fence::Fence;
use pgwa_core::wa::InboundMessage;

/// What storing one message found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, as this row.
    New(i64),
    /// Already in the inbox: a redelivery.
    Known,
    /// The fence refused: another worker holds the session now. Nothing was written.
    FenceLost,
}

/// The group-commit writer of wa.inbox for one worker's sessions. Cheap to share.
pub struct InboxWriter {
    writer: Arc<GroupCommit<InboxRows>>,
}

struct InboxRows {
    /// Held from statement to statement: through the pool, each would cost two more
    /// round trips (`crate::held_conn`).
    db: tokio::sync::Mutex<HeldConn>,
}

/// One message to store, under the fence of its session's connection.
struct Row {
    fence: Fence,
    message: Arc<InboundMessage>,
}

type Answer = Result<Stored, WriteFailed>;

const WHAT: &str = "storing an inbound message";
const WRITER: &str = "the inbox writer";

impl InboxWriter {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self { writer: GroupCommit::new(InboxRows { db: tokio::sync::Mutex::new(HeldConn::beside(&pool)) }) })
    }

    /// Stores `m` (a message, not an edit or a delete: `sessions::insert_inbound` applies
    /// those) unless it is already stored, deduplicated on session, chat, sender and
    /// message id, and deletes its buffered copy (the row of wa.pending_inbound with its
    /// chat, sender and id) when the fence holds, stored now or before; waits until the
    /// statement holding it committed or failed.
    pub async fn store(&self, fence: &Fence, m: Arc<InboundMessage>) -> Answer {
        debug_assert!(m.change.is_none(), "edits and deletes are applied, not stored");
        let row = Row { fence: fence.clone(), message: m };
        self.writer.write(row).await.unwrap_or_else(|| {
            Err(WriteFailed::new(
                WHAT,
                sqlx::Error::Protocol(format!(
                    "session {}: the inbox writer stopped before answering; the message may not have been stored",
                    fence.session
                )),
            ))
        })
    }
}

impl Flush for InboxRows {
    type Item = Row;
    type Answer = Answer;
    const MAX_BATCH: usize = 256;

    async fn flush(&self, batch: &[Row]) -> Vec<Answer> {
        write(&mut *self.db.lock().await, batch).await
    }
}

/// When the statement fails for something other than an unreachable database, each
/// message is tried again alone: one message Postgres refuses must not fail the messages
/// of every other session that shared its statement.
async fn write(db: &mut HeldConn, batch: &[Row]) -> Vec<Answer> {
    // Alone, a message takes the single-row insert: the batch statement costs about
    // twice as much for one row (310 against 140 µs in pg_stat_statements), which a
    // quiet worker would pay on every message.
    if let [row] = batch {
        return vec![insert_one(db, row).await.map_err(|e| WriteFailed::new(WHAT, e))];
    }
    // Deduplicated inserts: running them again is safe.
    let all = crate::held_conn::run_held!(db, WRITER, |conn| insert(conn, batch));
    match all {
        Ok(stored) => stored.into_iter().map(Ok).collect(),
        Err(e) if !crate::outage::is_unreachable(&e) => {
            let mut answers = Vec::with_capacity(batch.len());
            for row in batch {
                answers.push(insert_one(db, row).await.map_err(|e| WriteFailed::new(WHAT, e)));
            }
            answers
        }
        Err(e) => {
            let e = WriteFailed::new(WHAT, e);
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

/// One message in its own statement, on `db`'s connection (again on a fresh one if the
/// held one was lost).
async fn insert_one(db: &mut HeldConn, row: &Row) -> sqlx::Result<Stored> {
    crate::held_conn::run_held!(db, WRITER, |conn| insert_single(conn, &row.fence, &row.message))
}

/// The single-row form of [`insert`]: the same row and the same deletion of its
/// buffered copy, and whether the fence held, in one statement.
pub(crate) async fn insert_single(db: impl sqlx::PgExecutor<'_>, f: &Fence, m: &InboundMessage) -> sqlx::Result<Stored> {
    let mentions = (!m.mentions.is_empty()).then_some(&m.mentions[..]);
    let r = sqlx::query!(
        r#"WITH held AS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3)),
           stored AS (
               INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text, quoted_id, media, data, mentions, raw, sent_at)
               SELECT $1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
                WHERE EXISTS (SELECT 1 FROM held)
               ON CONFLICT ON CONSTRAINT inbox_unique DO NOTHING
               RETURNING id),
           unbuffered AS (
               DELETE FROM wa.pending_inbound
                WHERE session_id = $1 AND chat = $4 AND sender = $5 AND stanza_id = $6 AND EXISTS (SELECT 1 FROM held))
         SELECT (SELECT id FROM stored) AS id, EXISTS (SELECT 1 FROM held) AS "held!""#,
        &f.session,
        f.worker,
        f.epoch,
        &m.chat,
        &m.sender,
        &m.message_id,
        &m.kind,
        m.text.as_deref(),
        m.quoted_id.as_deref(),
        m.media.as_ref(),
        m.data.as_ref(),
        mentions as Option<&[String]>,
        m.raw.as_ref(),
        m.sent_at
    )
    .fetch_one(db)
    .await?;
    Ok(match (r.id, r.held) {
        (Some(id), _) => Stored::New(id),
        // A redelivery: already stored.
        (None, true) => Stored::Known,
        (None, false) => Stored::FenceLost,
    })
}

/// One statement for `batch`: each row's fence is checked (one entry per distinct
/// fence), the rows whose fence holds are inserted in batch order, and a row whose key
/// is already stored, or stored by an earlier row of the batch, is skipped.
async fn insert(conn: &mut sqlx::PgConnection, batch: &[Row]) -> sqlx::Result<Vec<Stored>> {
    let mut fences = BatchFences::default();
    let fence_of: Vec<i64> = batch.iter().map(|r| fences.number(&r.fence.session, r.fence.worker, r.fence.epoch)).collect();
    let msgs: Vec<&InboundMessage> = batch.iter().map(|r| &*r.message).collect();
    let mentions: Vec<Option<Value>> =
        msgs.iter().map(|m| (!m.mentions.is_empty()).then(|| Value::from(m.mentions.clone()))).collect();
    let rows = sqlx::query!(
        r#"WITH fence AS (
               SELECT s.id, u.k FROM wa.sessions s
                 JOIN unnest($1::text[], $2::uuid[], $3::bigint[]) WITH ORDINALITY AS u(id, worker, epoch, k) ON s.id = u.id
                WHERE wa._holds(s, u.worker, u.epoch)),
           stored AS (
               INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text, quoted_id, media, data, mentions, raw, sent_at)
               SELECT f.id, r.chat, r.sender, r.message_id, r.kind, r.text, r.quoted_id, r.media, r.data,
                      CASE WHEN r.mentions IS NOT NULL THEN ARRAY(SELECT jsonb_array_elements_text(r.mentions)) END,
                      r.raw, r.sent_at
                 FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::jsonb[], $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::timestamptz[])
                      WITH ORDINALITY AS r(k, chat, sender, message_id, kind, text, quoted_id, media, data, mentions, raw, sent_at, n)
                 JOIN fence f ON f.k = r.k
                ORDER BY r.n
               ON CONFLICT ON CONSTRAINT inbox_unique DO NOTHING
               RETURNING id, chat, sender, message_id, session_id),
           unbuffered AS (
               DELETE FROM wa.pending_inbound p
                USING unnest($4::bigint[], $5::text[], $6::text[], $7::text[]) AS r(k, chat, sender, message_id)
                 JOIN fence f ON f.k = r.k
                WHERE p.session_id = f.id AND p.chat = r.chat AND p.sender = r.sender AND p.stanza_id = r.message_id)
         SELECT NULL::bigint AS id, NULL::text AS chat, NULL::text AS sender, NULL::text AS message_id, k AS held
           FROM fence
         UNION ALL
         SELECT s.id, s.chat, s.sender, s.message_id, f.k
           FROM stored s JOIN fence f ON f.id = s.session_id"#,
        &fences.sessions as &[&str],
        &fences.workers,
        &fences.epochs,
        &fence_of,
        &msgs.iter().map(|m| m.chat.as_str()).collect::<Vec<_>>() as &[&str],
        &msgs.iter().map(|m| m.sender.as_str()).collect::<Vec<_>>() as &[&str],
        &msgs.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>() as &[&str],
        &msgs.iter().map(|m| m.kind.as_str()).collect::<Vec<_>>() as &[&str],
        &msgs.iter().map(|m| m.text.as_deref()).collect::<Vec<_>>() as &[Option<&str>],
        &msgs.iter().map(|m| m.quoted_id.as_deref()).collect::<Vec<_>>() as &[Option<&str>],
        &msgs.iter().map(|m| m.media.as_ref()).collect::<Vec<_>>() as &[Option<&Value>],
        &msgs.iter().map(|m| m.data.as_ref()).collect::<Vec<_>>() as &[Option<&Value>],
        &mentions as &[Option<Value>],
        &msgs.iter().map(|m| m.raw.as_ref()).collect::<Vec<_>>() as &[Option<&Value>],
        &msgs.iter().map(|m| m.sent_at).collect::<Vec<_>>() as &[Option<chrono::DateTime<chrono::Utc>>],
    )
    .fetch_all(conn)
    .await?;
    let held: std::collections::HashSet<i64> = rows.iter().filter(|r| r.id.is_none()).filter_map(|r| r.held).collect();
    let mut new: std::collections::HashMap<(i64, &str, &str, &str), i64> = rows
        .iter()
        .filter_map(|r| Some(((r.held?, r.chat.as_deref()?, r.sender.as_deref()?, r.message_id.as_deref()?), r.id?)))
        .collect();
    // A key stored by the statement answers its first row; a later row of the batch with
    // the same key was skipped as already stored.
    Ok(batch
        .iter()
        .zip(&fence_of)
        .map(|(r, k)| {
            if !held.contains(k) {
                return Stored::FenceLost;
            }
            let m = &r.message;
            match new.remove(&(*k, m.chat.as_str(), m.sender.as_str(), m.message_id.as_str())) {
                Some(id) => Stored::New(id),
                None => Stored::Known,
            }
        })
        .collect())
}
