//! Group commit of the frequent key writes across the sessions of one worker.
//!
//! Every message costs whatsapp-rust several small key writes (its message secret, the
//! sent copy kept for retry receipts, the inbound buffer row and its deletion). Each was
//! its own autocommitted statement with its own fence, round trip and commit, and at
//! tens of messages a second per session whatsapp-rust's own per-session batching holds
//! about one row. A [`Combiner`] queues these writes from all sessions of a worker and
//! writes whatever has queued in one statement: one fence check for every session in
//! it, one round trip, one commit.
//!
//! Durability is unchanged: a write returns only after the statement holding it has
//! committed, and it fails exactly when it would have alone (its session's fence did not
//! hold, or the statement failed). While no statement is in flight a write goes at once,
//! so a quiet worker pays no wait; under load, writes wait for the statement in flight
//! and go together in the next one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;
use whatsapp_rust::wacore::store::traits::{MsgSecretEntry, merge_msg_secret_expiry, merge_msg_secret_message_ts};

/// At most this many writes go in one statement; the rest wait for the next.
const MAX_WRITES: usize = 512;

/// How often a statement that lost a deadlock is tried again. It is idempotent (upserts
/// and deletes), so running it again is safe.
const DEADLOCK_TRIES: usize = 3;

/// One queued write and the fence it is made under.
pub(crate) struct Write {
    pub session: String,
    pub worker: Uuid,
    pub epoch: i64,
    pub rows: Rows,
}

/// The rows of one write.
pub(crate) enum Rows {
    MsgSecrets(Vec<MsgSecretEntry>),
    Sent {
        chat: String,
        id: String,
        payload: Vec<u8>,
    },
    /// (chat, sender, stanza id, message)
    PendingStore(Vec<(String, String, String, Vec<u8>)>),
    /// (chat, sender, stanza id)
    PendingDelete(Vec<(String, String, String)>),
}

/// How one write ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Written,
    /// Its session's fence did not hold: nothing of it was written.
    FenceLost,
    Failed(Arc<sqlx::Error>),
    /// The task writing it stopped before answering (it panicked).
    Dropped,
}

/// The statement's error, shared by every write that was in it. Its source is the
/// `sqlx::Error` itself, so outage checks (`crate::outage::caused_by_unreachable`) see it.
#[derive(Debug)]
pub struct CombinedWriteFailed(pub Arc<sqlx::Error>);

impl std::fmt::Display for CombinedWriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing keys failed: {}", self.0)
    }
}

impl std::error::Error for CombinedWriteFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

struct Queued {
    write: Write,
    done: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct State {
    queue: Vec<Queued>,
    running: bool,
}

/// The group-commit writer of one worker's sessions (see the module doc). Cheap to
/// share: hold it in an `Arc` and attach it to each fenced backend.
pub struct Combiner {
    pool: PgPool,
    state: Mutex<State>,
    writes: AtomicU64,
    statements: AtomicU64,
    deadlocks: AtomicU64,
}

/// What a [`Combiner`] has done since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CombinerCounts {
    /// Writes answered (written, refused by their fence, or failed).
    pub writes: u64,
    /// Statements run, retries included.
    pub statements: u64,
    /// Statements that lost a deadlock and were run again.
    pub deadlocks: u64,
}

impl Combiner {
    pub fn new(pool: PgPool) -> Arc<Self> {
        let zero = || AtomicU64::new(0);
        Arc::new(Self { pool, state: Mutex::new(State::default()), writes: zero(), statements: zero(), deadlocks: zero() })
    }

    /// How much the writes were combined, and how often a statement had to run again.
    pub fn counts(&self) -> CombinerCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CombinerCounts { writes: get(&self.writes), statements: get(&self.statements), deadlocks: get(&self.deadlocks) }
    }

    /// Queues `write` and waits until the statement holding it has committed or failed.
    pub(crate) async fn write(self: &Arc<Self>, write: Write) -> Outcome {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.queue.push(Queued { write, done });
            !std::mem::replace(&mut st.running, true)
        };
        // A spawned task, not the first caller, writes: a caller that is cancelled
        // (its future dropped) must not strand the writes queued behind it.
        if start {
            tokio::spawn(self.clone().drain());
        }
        answer.await.unwrap_or(Outcome::Dropped)
    }

    async fn drain(self: Arc<Self>) {
        let _reset = ResetOnExit(&self);
        loop {
            let batch = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.queue.is_empty() {
                    st.running = false;
                    return;
                }
                let n = st.queue.len().min(MAX_WRITES);
                let rest = st.queue.split_off(n);
                std::mem::replace(&mut st.queue, rest)
            };
            let (batch, deferred) = split_at_reordering(batch);
            if !deferred.is_empty() {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.queue.splice(0..0, deferred);
            }
            let outcomes = self.run(&batch).await;
            self.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
            for (q, outcome) in batch.into_iter().zip(outcomes) {
                let _ = q.done.send(outcome);
            }
        }
    }

    /// Writes one batch; an outcome per write, in order. When the statement fails for
    /// something other than an unreachable database, each write is tried again alone:
    /// one write's bad row (a peer's id Postgres refuses, say) must not fail the writes
    /// of every other session that shared its statement.
    async fn run(&self, batch: &[Queued]) -> Vec<Outcome> {
        match self.execute(Statement::build(batch)).await {
            Ok(held) => held,
            Err(e) if batch.len() > 1 && !crate::outage::is_unreachable(&e) => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for q in batch {
                    let one = self.execute(Statement::build(std::slice::from_ref(q))).await;
                    outcomes.push(one.map_or_else(|e| Outcome::Failed(Arc::new(e)), |mut o| o.remove(0)));
                }
                outcomes
            }
            Err(e) => {
                let e = Arc::new(e);
                batch.iter().map(|_| Outcome::Failed(e.clone())).collect()
            }
        }
    }

    /// Runs `stmt`, again if it lost a deadlock: each write's outcome, or the error.
    async fn execute(&self, stmt: Statement) -> sqlx::Result<Vec<Outcome>> {
        let mut tries = 0;
        let held = loop {
            tries += 1;
            self.statements.fetch_add(1, Ordering::Relaxed);
            match stmt.execute(&self.pool).await {
                Ok(held) => break held,
                Err(e) if tries < DEADLOCK_TRIES && is_deadlock(&e) => {
                    self.deadlocks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("a combined key write lost a deadlock; running it again");
                }
                Err(e) => return Err(e),
            }
        };
        Ok(stmt.fence_of.iter().map(|k| if held.contains(k) { Outcome::Written } else { Outcome::FenceLost }).collect())
    }
}

/// Keeps the writer going however its task ends: if a batch panics (a bug), its callers
/// get `Dropped` and the writes queued behind it go on in a new task.
struct ResetOnExit<'a>(&'a Arc<Combiner>);

impl Drop for ResetOnExit<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.queue.is_empty() {
                st.running = false;
            } else {
                tokio::spawn(self.0.clone().drain());
            }
        }
    }
}

fn is_deadlock(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40P01")
}

/// The statement writes every table's rows from one snapshot, so a buffered inbound row
/// and its deletion must not go in one: the first write that touches a key an earlier
/// write of the batch touched the other way is deferred, with everything after it, to
/// the next statement. (whatsapp-rust deletes a buffered row only after its store
/// returned, which is after it committed, so this is a guard, not a path taken.)
fn split_at_reordering(mut batch: Vec<Queued>) -> (Vec<Queued>, Vec<Queued>) {
    let mut touched: HashMap<(&str, &str, &str, &str), bool> = HashMap::new();
    let mut cut = batch.len();
    for (i, q) in batch.iter().enumerate() {
        let (keys, store): (Vec<(&str, &str, &str)>, bool) = match &q.write.rows {
            Rows::PendingStore(rows) => (rows.iter().map(|(c, s, id, _)| (c.as_str(), s.as_str(), id.as_str())).collect(), true),
            Rows::PendingDelete(keys) => (keys.iter().map(|(c, s, id)| (c.as_str(), s.as_str(), id.as_str())).collect(), false),
            _ => continue,
        };
        let keys: Vec<_> = keys.into_iter().map(|(c, s, id)| (q.write.session.as_str(), c, s, id)).collect();
        if keys.iter().any(|k| touched.get(k).is_some_and(|&was_store| was_store != store)) {
            cut = i;
            break;
        }
        touched.extend(keys.into_iter().map(|k| (k, store)));
    }
    let deferred = batch.split_off(cut);
    (batch, deferred)
}

/// A batch as the statement's arrays. Each write's fence is one (session, worker,
/// epoch) entry, numbered from 1 (`k`); rows carry the number of their fence.
#[derive(Default)]
struct Statement {
    sessions: Vec<String>,
    workers: Vec<Uuid>,
    epochs: Vec<i64>,
    /// Each write's fence number, in batch order.
    fence_of: Vec<i64>,
    secrets: SecretRows,
    sent: HashMap<(i64, String, String), Vec<u8>>,
    pending: HashMap<(i64, String, String, String), Vec<u8>>,
    deletes: Vec<(i64, String, String, String)>,
}

#[derive(Default)]
struct SecretRows {
    order: Vec<(i64, String, String, String)>,
    rows: HashMap<(i64, String, String, String), MsgSecretEntry>,
}

impl SecretRows {
    /// Adds `e`, merged with an earlier row of the same key by the store trait's rule
    /// (ON CONFLICT cannot touch one row twice in a statement).
    fn put(&mut self, k: i64, e: MsgSecretEntry) {
        let key = (k, e.chat.to_string(), e.sender.to_string(), e.msg_id.to_string());
        match self.rows.get_mut(&key) {
            Some(prev) => merge_secret(prev, e),
            None => {
                self.order.push(key.clone());
                self.rows.insert(key, e);
            }
        }
    }
}

/// A later write of one message secret over an earlier one: its secret, and the merged
/// deadline and message time, as a sequence of puts would leave them.
pub(crate) fn merge_secret(prev: &mut MsgSecretEntry, next: MsgSecretEntry) {
    prev.secret = next.secret;
    prev.expires_at = merge_msg_secret_expiry(prev.expires_at, next.expires_at);
    prev.message_ts = merge_msg_secret_message_ts(prev.message_ts, next.message_ts);
}

impl Statement {
    fn build(batch: &[Queued]) -> Self {
        let mut st = Statement::default();
        let mut fences: HashMap<(&str, Uuid, i64), i64> = HashMap::new();
        for q in batch {
            let w = &q.write;
            let k = *fences.entry((w.session.as_str(), w.worker, w.epoch)).or_insert_with(|| {
                st.sessions.push(w.session.clone());
                st.workers.push(w.worker);
                st.epochs.push(w.epoch);
                st.sessions.len() as i64
            });
            st.fence_of.push(k);
            match &w.rows {
                Rows::MsgSecrets(entries) => entries.iter().cloned().for_each(|e| st.secrets.put(k, e)),
                Rows::Sent { chat, id, payload } => {
                    st.sent.insert((k, chat.clone(), id.clone()), payload.clone());
                }
                Rows::PendingStore(rows) => rows.iter().for_each(|(c, s, id, m)| {
                    st.pending.insert((k, c.clone(), s.clone(), id.clone()), m.clone());
                }),
                Rows::PendingDelete(keys) => {
                    st.deletes.extend(keys.iter().map(|(c, s, id)| (k, c.clone(), s.clone(), id.clone())))
                }
            }
        }
        st
    }

    /// Runs the statement; returns the fence numbers that held.
    async fn execute(&self, pool: &PgPool) -> sqlx::Result<std::collections::HashSet<i64>> {
        let sec = &self.secrets;
        let sec_rows: Vec<&MsgSecretEntry> = sec.order.iter().map(|key| &sec.rows[key]).collect();
        let sent: Vec<_> = self.sent.iter().collect();
        let pending: Vec<_> = self.pending.iter().collect();
        let held = sqlx::query_scalar!(
            r#"WITH fence AS (
                   SELECT s.id, u.k FROM wa.sessions s
                     JOIN unnest($1::text[], $2::uuid[], $3::bigint[]) WITH ORDINALITY AS u(id, worker, epoch, k) ON s.id = u.id
                    WHERE wa._holds(s, u.worker, u.epoch)
                    ORDER BY s.id FOR SHARE OF s),
               secrets AS (
                   INSERT INTO wa.msg_secrets AS m (session_id, chat, sender, msg_id, secret, expires_at, message_ts)
                   SELECT f.id, r.c, r.s, r.i, r.x, r.e, r.t
                     FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::bigint[], $10::bigint[])
                          AS r(k, c, s, i, x, e, t)
                     JOIN fence f ON f.k = r.k
                   ON CONFLICT (session_id, chat, sender, msg_id) DO UPDATE SET secret = EXCLUDED.secret,
                       expires_at = CASE WHEN m.expires_at = 0 OR EXCLUDED.expires_at = 0 THEN 0
                                         ELSE greatest(m.expires_at, EXCLUDED.expires_at) END,
                       message_ts = greatest(m.message_ts, EXCLUDED.message_ts)),
               sent AS (
                   INSERT INTO wa.sent_messages (session_id, chat_jid, message_id, payload)
                   SELECT f.id, r.c, r.i, r.p
                     FROM unnest($11::bigint[], $12::text[], $13::text[], $14::bytea[]) AS r(k, c, i, p)
                     JOIN fence f ON f.k = r.k
                   ON CONFLICT (session_id, chat_jid, message_id) DO UPDATE SET payload = EXCLUDED.payload,
                       stored_at = EXCLUDED.stored_at),
               pending AS (
                   INSERT INTO wa.pending_inbound (session_id, chat, sender, stanza_id, message)
                   SELECT f.id, r.c, r.s, r.i, r.m
                     FROM unnest($15::bigint[], $16::text[], $17::text[], $18::text[], $19::bytea[]) AS r(k, c, s, i, m)
                     JOIN fence f ON f.k = r.k
                   ON CONFLICT (session_id, chat, sender, stanza_id) DO UPDATE SET message = EXCLUDED.message,
                       stored_at = EXCLUDED.stored_at),
               unbuffered AS (
                   DELETE FROM wa.pending_inbound p
                    USING unnest($20::bigint[], $21::text[], $22::text[], $23::text[]) AS r(k, c, s, i)
                     JOIN fence f ON f.k = r.k
                    WHERE p.session_id = f.id AND p.chat = r.c AND p.sender = r.s AND p.stanza_id = r.i)
             SELECT k AS "k!" FROM fence"#,
            &self.sessions,
            &self.workers,
            &self.epochs,
            &sec.order.iter().map(|(k, ..)| *k).collect::<Vec<_>>(),
            &sec_rows.iter().map(|e| e.chat.to_string()).collect::<Vec<_>>(),
            &sec_rows.iter().map(|e| e.sender.to_string()).collect::<Vec<_>>(),
            &sec_rows.iter().map(|e| e.msg_id.to_string()).collect::<Vec<_>>(),
            &sec_rows.iter().map(|e| e.secret.to_vec()).collect::<Vec<_>>(),
            &sec_rows.iter().map(|e| e.expires_at).collect::<Vec<_>>(),
            &sec_rows.iter().map(|e| e.message_ts).collect::<Vec<_>>(),
            &sent.iter().map(|((k, ..), _)| *k).collect::<Vec<_>>(),
            &sent.iter().map(|((_, c, _), _)| c.clone()).collect::<Vec<_>>(),
            &sent.iter().map(|((_, _, i), _)| i.clone()).collect::<Vec<_>>(),
            &sent.iter().map(|(_, p)| (*p).clone()).collect::<Vec<_>>(),
            &pending.iter().map(|((k, ..), _)| *k).collect::<Vec<_>>(),
            &pending.iter().map(|((_, c, ..), _)| c.clone()).collect::<Vec<_>>(),
            &pending.iter().map(|((_, _, s, _), _)| s.clone()).collect::<Vec<_>>(),
            &pending.iter().map(|((.., i), _)| i.clone()).collect::<Vec<_>>(),
            &pending.iter().map(|(_, m)| (*m).clone()).collect::<Vec<_>>(),
            &self.deletes.iter().map(|(k, ..)| *k).collect::<Vec<_>>(),
            &self.deletes.iter().map(|(_, c, ..)| c.clone()).collect::<Vec<_>>(),
            &self.deletes.iter().map(|(_, _, s, _)| s.clone()).collect::<Vec<_>>(),
            &self.deletes.iter().map(|(.., i)| i.clone()).collect::<Vec<_>>(),
        )
        .fetch_all(pool)
        .await?;
        Ok(held.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(session: &str, rows: Rows) -> Queued {
        let (done, _) = oneshot::channel();
        Queued { write: Write { session: session.into(), worker: Uuid::nil(), epoch: 1, rows }, done }
    }

    fn key(id: &str) -> (String, String, String) {
        ("c".into(), "s".into(), id.into())
    }

    fn store(session: &str, id: &str) -> Queued {
        let (c, s, i) = key(id);
        queued(session, Rows::PendingStore(vec![(c, s, i, vec![1])]))
    }

    fn delete(session: &str, id: &str) -> Queued {
        queued(session, Rows::PendingDelete(vec![key(id)]))
    }

    #[test]
    fn a_buffered_row_and_its_deletion_never_share_a_statement() {
        let batch = vec![store("a", "1"), delete("b", "1"), store("a", "2"), delete("a", "1"), store("a", "3")];
        let (now, later) = split_at_reordering(batch);
        assert_eq!((now.len(), later.len()), (3, 2), "the delete of a:1 waits, and all after it");
        let (now, later) = split_at_reordering(later);
        assert_eq!((now.len(), later.len()), (2, 0));

        let (now, later) = split_at_reordering(vec![delete("a", "1"), store("a", "1")]);
        assert_eq!((now.len(), later.len()), (1, 1), "a store after a delete of its key waits too");
        let (now, later) = split_at_reordering(vec![store("a", "1"), store("a", "1"), delete("a", "2"), delete("a", "2")]);
        assert_eq!((now.len(), later.len()), (4, 0), "repeats of one kind merge");
    }
}
