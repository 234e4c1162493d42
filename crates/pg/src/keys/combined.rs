//! Group commit of the frequent key writes across the sessions of one worker.
//!
//! Every message costs whatsapp-rust several small key writes (its message secret, the
//! sent copy kept for retry receipts, the inbound buffer row and its deletion). Each was
//! its own autocommitted statement with its own fence, round trip and commit, and at
//! tens of messages a second per session whatsapp-rust's own per-session batching holds
//! about one row. A [`Combiner`] writes these writes of all sessions of a worker in
//! group commits (`crate::group_commit`): one fence check for every session in a
//! statement, one round trip, one commit.
//!
//! whatsapp-rust's Signal session records (its write-behind flush of each session's
//! ratchets, every 25 ms while it talks) go in group commits of their own: through the
//! same statement, the CTE they add cost every other write its set-up while saving them
//! nothing (BENCHMARKS.md, "Signal session records in the combined key write").
//!
//! Durability is unchanged: a write returns only after the statement holding it has
//! committed, and it fails exactly when it would have alone (its session's fence did not
//! hold, or the statement failed).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pgwa_core::metrics as m;
use sqlx::PgPool;
use uuid::Uuid;
use whatsapp_rust::wacore::store::traits::MsgSecretEntry;

use super::last_wins;
use super::secrets::{SecretRow, merged_secrets};
use crate::batch_fences::BatchFences;
use crate::group_commit::{Flush, GroupCommit};

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
    /// (address, record): Signal session records, written in their own group commits.
    SessionRecords(Vec<(String, Vec<u8>)>),
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

/// The group-commit writer of one worker's sessions (see the module doc). Cheap to
/// share: hold it in an `Arc` and attach it to each fenced backend.
pub struct Combiner {
    /// The per-message writes.
    writer: Arc<GroupCommit<KeyWrites>>,
    /// Signal session records.
    records: Arc<GroupCommit<KeyWrites>>,
}

/// How the key writes are written together, and what that has cost.
struct KeyWrites {
    pool: PgPool,
    writes: AtomicU64,
    statements: AtomicU64,
    deadlocks: AtomicU64,
}

/// What a [`Combiner`] has done since it started (the process-wide sums are the
/// `pgwa_key_write*` Prometheus counters).
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
        let writes = |pool| KeyWrites { pool, writes: zero(), statements: zero(), deadlocks: zero() };
        Arc::new(Self { writer: GroupCommit::new(writes(pool.clone())), records: GroupCommit::new(writes(pool)) })
    }

    /// How much the writes were combined, and how often a statement had to run again
    /// (both kinds of group commit together).
    pub fn counts(&self) -> CombinerCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (w, r) = (self.writer.flusher(), self.records.flusher());
        CombinerCounts {
            writes: get(&w.writes) + get(&r.writes),
            statements: get(&w.statements) + get(&r.statements),
            deadlocks: get(&w.deadlocks) + get(&r.deadlocks),
        }
    }

    /// Queues `write` and waits until the statement holding it has committed or failed.
    pub(crate) async fn write(&self, write: Write) -> Outcome {
        let lane = if matches!(write.rows, Rows::SessionRecords(_)) { &self.records } else { &self.writer };
        lane.write(write).await.unwrap_or(Outcome::Dropped)
    }
}

impl Flush for KeyWrites {
    type Item = Write;
    type Answer = Outcome;
    const MAX_BATCH: usize = 512;

    fn take(&self, queued: &[Write]) -> usize {
        reordering_cut(queued)
    }

    async fn flush(&self, batch: &[Write]) -> Vec<Outcome> {
        let outcomes = self.run(batch).await;
        self.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::counter!(m::KEY_WRITES).increment(batch.len() as u64);
        outcomes
    }
}

impl KeyWrites {
    /// Writes one batch; an outcome per write, in order. When the statement fails for
    /// something other than an unreachable database, each write is tried again alone:
    /// one write's bad row (a peer's id Postgres refuses, say) must not fail the writes
    /// of every other session that shared its statement.
    async fn run(&self, batch: &[Write]) -> Vec<Outcome> {
        match self.execute(Statement::build(batch)).await {
            Ok(held) => held,
            Err(e) if batch.len() > 1 && !crate::outage::is_unreachable(&e) => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for w in batch {
                    let one = self.execute(Statement::build(std::slice::from_ref(w))).await;
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
    async fn execute(&self, stmt: Statement<'_>) -> sqlx::Result<Vec<Outcome>> {
        let mut tries = 0;
        let held = loop {
            tries += 1;
            self.statements.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::KEY_WRITE_STATEMENTS).increment(1);
            match stmt.execute(&self.pool).await {
                Ok(held) => break held,
                Err(e) if tries < DEADLOCK_TRIES && is_deadlock(&e) => {
                    self.deadlocks.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(m::KEY_WRITE_DEADLOCKS).increment(1);
                    tracing::warn!("a combined key write lost a deadlock; running it again");
                }
                Err(e) => return Err(e),
            }
        };
        Ok(stmt.fence_of.iter().map(|k| if held.contains(k) { Outcome::Written } else { Outcome::FenceLost }).collect())
    }
}

fn is_deadlock(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "40P01")
}

/// The statement writes every table's rows from one snapshot, so a buffered inbound row
/// and its deletion must not go in one: the first write that touches a key an earlier
/// write of the batch touched the other way waits, with everything after it, for the
/// next statement. Returns how many writes go now. (whatsapp-rust deletes a buffered
/// row only after its store returned, which is after it committed, so this is a guard,
/// not a path taken.)
fn reordering_cut(batch: &[Write]) -> usize {
    let mut touched: HashMap<(&str, &str, &str, &str), bool> = HashMap::new();
    for (i, w) in batch.iter().enumerate() {
        let (keys, store): (Vec<(&str, &str, &str)>, bool) = match &w.rows {
            Rows::PendingStore(rows) => (rows.iter().map(|(c, s, id, _)| (c.as_str(), s.as_str(), id.as_str())).collect(), true),
            Rows::PendingDelete(keys) => (keys.iter().map(|(c, s, id)| (c.as_str(), s.as_str(), id.as_str())).collect(), false),
            _ => continue,
        };
        let keys: Vec<_> = keys.into_iter().map(|(c, s, id)| (w.session.as_str(), c, s, id)).collect();
        if keys.iter().any(|k| touched.get(k).is_some_and(|&was_store| was_store != store)) {
            return i;
        }
        touched.extend(keys.into_iter().map(|k| (k, store)));
    }
    batch.len()
}

/// A group-committed statement: `fence` holds a row (its fence number `k`) for each
/// session of the batch whose fence holds, share-locked in id order, and `$ctes` write
/// rows joined to it; it returns the fence numbers that held. $1..$3 are the fences.
macro_rules! batch_fenced {
    ($st:expr, $ctes:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_scalar!(
            r#"WITH fence AS (
                   SELECT s.id, u.k FROM wa.sessions s
                     JOIN unnest($1::text[], $2::uuid[], $3::bigint[]) WITH ORDINALITY AS u(id, worker, epoch, k) ON s.id = u.id
                    WHERE wa._holds(s, u.worker, u.epoch)
                    ORDER BY s.id FOR SHARE OF s), "# + $ctes + r#"
             SELECT k AS "k!" FROM fence"#,
            &$st.fences.sessions as &[&str],
            &$st.fences.workers,
            &$st.fences.epochs
            $(, $arg)*
        )
    };
}

/// A batch as the statement's arrays, borrowing the batch's rows (the write-by-write
/// retry builds from the same batch again); rows carry the number of their write's fence
/// (`crate::batch_fences`).
#[derive(Default)]
struct Statement<'a> {
    fences: BatchFences<'a>,
    /// Each write's fence number, in batch order.
    fence_of: Vec<i64>,
    secrets: Vec<((i64, &'a str, &'a str, &'a str), SecretRow<'a>)>,
    sent: Vec<((i64, &'a str, &'a str), &'a [u8])>,
    pending: Vec<((i64, &'a str, &'a str, &'a str), &'a [u8])>,
    deletes: Vec<(i64, &'a str, &'a str, &'a str)>,
    /// Session records: a batch holds these only ([`Combiner::write`] keeps them apart).
    records: Vec<((i64, &'a str), &'a [u8])>,
}

impl<'a> Statement<'a> {
    fn build(batch: &'a [Write]) -> Self {
        let mut st = Statement::default();
        let (mut secrets, mut sent, mut pending, mut records) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for w in batch {
            let k = st.fences.number(&w.session, w.worker, w.epoch);
            st.fence_of.push(k);
            match &w.rows {
                Rows::MsgSecrets(entries) => {
                    secrets.extend(entries.iter().map(|e| ((k, &*e.chat, &*e.sender, &*e.msg_id), e)));
                }
                Rows::Sent { chat, id, payload } => sent.push(((k, chat.as_str(), id.as_str()), payload.as_slice())),
                Rows::PendingStore(rows) => {
                    pending.extend(rows.iter().map(|(c, s, id, m)| ((k, c.as_str(), s.as_str(), id.as_str()), m.as_slice())));
                }
                Rows::PendingDelete(keys) => {
                    st.deletes.extend(keys.iter().map(|(c, s, id)| (k, c.as_str(), s.as_str(), id.as_str())))
                }
                Rows::SessionRecords(rows) => records.extend(rows.iter().map(|(a, r)| ((k, a.as_str()), r.as_slice()))),
            }
        }
        st.secrets = merged_secrets(secrets);
        st.sent = last_wins(sent);
        st.pending = last_wins(pending);
        st.records = last_wins(records);
        st
    }

    /// Runs the statement; returns the fence numbers that held.
    async fn execute(&self, pool: &PgPool) -> sqlx::Result<std::collections::HashSet<i64>> {
        let held = if self.records.is_empty() { self.write_per_message(pool).await? } else { self.write_records(pool).await? };
        Ok(held.into_iter().collect())
    }

    async fn write_per_message(&self, pool: &PgPool) -> sqlx::Result<Vec<i64>> {
        let (sec, sent, pending, deletes) = (&self.secrets, &self.sent, &self.pending, &self.deletes);
        batch_fenced!(
            self,
            r#"secrets AS (
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
                    WHERE p.session_id = f.id AND p.chat = r.c AND p.sender = r.s AND p.stanza_id = r.i)"#,
            &sec.iter().map(|((k, ..), _)| *k).collect::<Vec<_>>(),
            &sec.iter().map(|((_, c, ..), _)| *c).collect::<Vec<_>>() as &[&str],
            &sec.iter().map(|((_, _, s, _), _)| *s).collect::<Vec<_>>() as &[&str],
            &sec.iter().map(|((.., i), _)| *i).collect::<Vec<_>>() as &[&str],
            &sec.iter().map(|(_, r)| r.secret).collect::<Vec<_>>() as &[&[u8]],
            &sec.iter().map(|(_, r)| r.expires_at).collect::<Vec<_>>(),
            &sec.iter().map(|(_, r)| r.message_ts).collect::<Vec<_>>(),
            &sent.iter().map(|((k, ..), _)| *k).collect::<Vec<_>>(),
            &sent.iter().map(|((_, c, _), _)| *c).collect::<Vec<_>>() as &[&str],
            &sent.iter().map(|((.., i), _)| *i).collect::<Vec<_>>() as &[&str],
            &sent.iter().map(|(_, p)| *p).collect::<Vec<_>>() as &[&[u8]],
            &pending.iter().map(|((k, ..), _)| *k).collect::<Vec<_>>(),
            &pending.iter().map(|((_, c, ..), _)| *c).collect::<Vec<_>>() as &[&str],
            &pending.iter().map(|((_, _, s, _), _)| *s).collect::<Vec<_>>() as &[&str],
            &pending.iter().map(|((.., i), _)| *i).collect::<Vec<_>>() as &[&str],
            &pending.iter().map(|(_, m)| *m).collect::<Vec<_>>() as &[&[u8]],
            &deletes.iter().map(|(k, ..)| *k).collect::<Vec<_>>(),
            &deletes.iter().map(|(_, c, ..)| *c).collect::<Vec<_>>() as &[&str],
            &deletes.iter().map(|(_, _, s, _)| *s).collect::<Vec<_>>() as &[&str],
            &deletes.iter().map(|(.., i)| *i).collect::<Vec<_>>() as &[&str],
        )
        .fetch_all(pool)
        .await
    }

    async fn write_records(&self, pool: &PgPool) -> sqlx::Result<Vec<i64>> {
        debug_assert!(self.secrets.is_empty() && self.sent.is_empty() && self.pending.is_empty() && self.deletes.is_empty());
        let records = &self.records;
        batch_fenced!(
            self,
            r#"records AS (
                   INSERT INTO wa.signal_sessions (session_id, address, record)
                   SELECT f.id, r.a, r.r FROM unnest($4::bigint[], $5::text[], $6::bytea[]) AS r(k, a, r)
                     JOIN fence f ON f.k = r.k
                   ON CONFLICT (session_id, address) DO UPDATE SET record = EXCLUDED.record, updated_at = now())"#,
            &records.iter().map(|((k, _), _)| *k).collect::<Vec<_>>(),
            &records.iter().map(|((_, a), _)| *a).collect::<Vec<_>>() as &[&str],
            &records.iter().map(|(_, r)| *r).collect::<Vec<_>>() as &[&[u8]],
        )
        .fetch_all(pool)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(session: &str, rows: Rows) -> Write {
        Write { session: session.into(), worker: Uuid::nil(), epoch: 1, rows }
    }

    fn key(id: &str) -> (String, String, String) {
        ("c".into(), "s".into(), id.into())
    }

    fn store(session: &str, id: &str) -> Write {
        let (c, s, i) = key(id);
        write(session, Rows::PendingStore(vec![(c, s, i, vec![1])]))
    }

    fn delete(session: &str, id: &str) -> Write {
        write(session, Rows::PendingDelete(vec![key(id)]))
    }

    #[test]
    fn a_buffered_row_and_its_deletion_never_share_a_statement() {
        let batch = vec![store("a", "1"), delete("b", "1"), store("a", "2"), delete("a", "1"), store("a", "3")];
        assert_eq!(reordering_cut(&batch), 3, "the delete of a:1 waits, and all after it");
        assert_eq!(reordering_cut(&batch[3..]), 2);

        assert_eq!(reordering_cut(&[delete("a", "1"), store("a", "1")]), 1, "a store after a delete of its key waits too");
        let repeats = [store("a", "1"), store("a", "1"), delete("a", "2"), delete("a", "2")];
        assert_eq!(reordering_cut(&repeats), 4, "repeats of one kind merge");
    }
}
