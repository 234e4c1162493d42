//! Group commit of the frequent key writes across the sessions of one worker.
//!
//! Every message costs whatsapp-rust several small key writes (its message secret, the
//! sent copy kept for retry receipts, the inbound buffer row and its deletion). Each was
//! its own autocommitted statement with its own fence, round trip and commit, and at
//! tens of messages a second per session whatsapp-rust's own per-session batching holds
//! about one row. A [`Combiner`] writes these writes of all sessions of a worker in
//! group commits (`crate::group_commit`): one fence check for every session in a
//! statement, one round trip, one commit, on a connection each lane keeps
//! (`crate::held_conn`).
//!
//! Message secrets and sent copies, which whatsapp-rust writes behind its own buffers,
//! go in a lane of their own that waits 10 ms for company before each statement: in a
//! burst they went in nearly every per-message statement beside an inbound copy that a
//! message waits for, and now share a few statements among themselves. Each lane's
//! statement names only its own tables: Postgres sets up and runs every insert of a
//! statement on each run, rows or none, and the other lane's two cost each statement
//! about a tenth of its time (BENCHMARKS.md, "Each key lane's statement writes only its
//! own tables").
//!
//! whatsapp-rust's Signal session records (its write-behind flush of each session's
//! ratchets, every 25 ms while it talks) go in group commits of their own: through the
//! same statement, the CTE they add cost every other write its set-up while saving them
//! nothing (BENCHMARKS.md, "Signal session records in the combined key write").
//!
//! Durability is unchanged: a write returns only after the statement holding it has
//! committed, and it fails exactly when it would have alone (its session's fence did not
//! hold, or the statement failed).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pgwa_core::metrics as m;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use whatsapp_rust::wacore::store::traits::MsgSecretEntry;

use super::last_wins;
use super::secrets::merged_secrets;
use crate::batch_fences::BatchFences;
use crate::group_commit::{Flush, GroupCommit};
use crate::held_conn::HeldConn;

/// How often a statement that lost a deadlock is tried again. It is idempotent (upserts
/// and deletes), so running it again is safe.
const DEADLOCK_TRIES: usize = 3;

/// One queued write and the fence it is made under.
pub(crate) struct Write<R = Rows> {
    pub session: String,
    pub worker: Uuid,
    pub epoch: i64,
    pub rows: R,
}

/// The rows of one write: [`Combiner::write`] sends each kind to its own group commit.
pub(crate) enum Rows {
    Copies(CopyRows),
    Behind(BehindRows),
    /// (address, record): Signal session records.
    SessionRecords(Vec<(String, Vec<u8>)>),
}

/// The inbound buffer's rows: a received message may wait on them.
pub(crate) enum CopyRows {
    /// (chat, sender, stanza id, message)
    Store(Vec<crate::unbuffered::CopyRow>),
    /// (chat, sender, stanza id)
    Delete(Vec<(String, String, String)>),
}

/// Message secrets and sent copies: whatsapp-rust writes both behind its own buffers,
/// which answer reads until the write returns, so no message waits on them and they go
/// in the lingering lane ([`Behind`]).
pub(crate) enum BehindRows {
    MsgSecrets(Vec<MsgSecretEntry>),
    Sent { chat: String, id: String, payload: Vec<u8> },
}

impl Rows {
    /// Signal session records, the only rows of a combined write that make a ratchet
    /// durable, wait first for the inbound copies their session holds
    /// (`Through::write`); every other kind goes at once.
    pub(crate) fn settles_first(&self) -> bool {
        matches!(self, Rows::SessionRecords(_))
    }
}

impl From<CopyRows> for Rows {
    fn from(rows: CopyRows) -> Self {
        Rows::Copies(rows)
    }
}

impl From<BehindRows> for Rows {
    fn from(rows: BehindRows) -> Self {
        Rows::Behind(rows)
    }
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
    copies: Arc<GroupCommit<KeyWrites<Copies>>>,
    behind: Arc<GroupCommit<KeyWrites<Behind>>>,
    records: Arc<GroupCommit<KeyWrites<SessionRecords>>>,
}

/// How the key writes of one lane are written together, and what that has cost.
struct KeyWrites<L> {
    /// Held from statement to statement: through the pool, each would cost two more
    /// round trips (`crate::held_conn`).
    db: tokio::sync::Mutex<HeldConn>,
    writes: AtomicU64,
    statements: AtomicU64,
    deadlocks: AtomicU64,
    lane: std::marker::PhantomData<L>,
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
        Arc::new(Self {
            copies: GroupCommit::new(KeyWrites::new(&pool)),
            behind: GroupCommit::new(KeyWrites::new(&pool)),
            records: GroupCommit::new(KeyWrites::new(&pool)),
        })
    }

    /// How much the writes were combined, and how often a statement had to run again
    /// (all lanes together).
    pub fn counts(&self) -> CombinerCounts {
        let lanes = [self.copies.flusher().counts(), self.behind.flusher().counts(), self.records.flusher().counts()];
        CombinerCounts {
            writes: lanes.iter().map(|c| c.writes).sum(),
            statements: lanes.iter().map(|c| c.statements).sum(),
            deadlocks: lanes.iter().map(|c| c.deadlocks).sum(),
        }
    }

    /// Queues `write` and waits until the statement holding it has committed or failed.
    pub(crate) async fn write(&self, write: Write) -> Outcome {
        let Write { session, worker, epoch, rows } = write;
        let answer = match rows {
            Rows::Copies(rows) => self.copies.write(Write { session, worker, epoch, rows }).await,
            Rows::Behind(rows) => self.behind.write(Write { session, worker, epoch, rows }).await,
            Rows::SessionRecords(rows) => self.records.write(Write { session, worker, epoch, rows }).await,
        };
        answer.unwrap_or(Outcome::Dropped)
    }
}

/// A kind of key write with group commits of its own.
trait Lane: Send + Sync + 'static {
    type Rows: Send + Sync + 'static;

    /// See [`Flush::LINGER`].
    const LINGER: std::time::Duration = std::time::Duration::ZERO;

    /// How many of `queued` may share the next statement (see [`Flush::take`]).
    fn take(queued: &[Write<Self::Rows>]) -> usize {
        queued.len()
    }

    /// Writes `rows`, each under the fence `fences` numbers it by, in one statement;
    /// returns the fence numbers that held.
    fn write(
        conn: &mut PgConnection,
        fences: &BatchFences<'_>,
        rows: &[(i64, &Self::Rows)],
    ) -> impl std::future::Future<Output = sqlx::Result<Vec<i64>>> + Send;
}

impl<L: Lane> Flush for KeyWrites<L> {
    type Item = Write<L::Rows>;
    type Answer = Outcome;
    const MAX_BATCH: usize = 512;
    const LINGER: std::time::Duration = L::LINGER;

    fn take(&self, queued: &[Self::Item]) -> usize {
        L::take(queued)
    }

    async fn flush(&self, batch: &[Self::Item]) -> Vec<Outcome> {
        let outcomes = self.run(batch).await;
        self.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::counter!(m::KEY_WRITES).increment(batch.len() as u64);
        outcomes
    }
}

impl<L: Lane> KeyWrites<L> {
    fn new(pool: &PgPool) -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            db: tokio::sync::Mutex::new(HeldConn::beside(pool)),
            writes: zero(),
            statements: zero(),
            deadlocks: zero(),
            lane: std::marker::PhantomData,
        }
    }

    fn counts(&self) -> CombinerCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CombinerCounts { writes: get(&self.writes), statements: get(&self.statements), deadlocks: get(&self.deadlocks) }
    }

    /// Writes one batch; an outcome per write, in order. When the statement fails for
    /// something other than an unreachable database, each write is tried again alone:
    /// one write's bad row (a peer's id Postgres refuses, say) must not fail the writes
    /// of every other session that shared its statement.
    async fn run(&self, batch: &[Write<L::Rows>]) -> Vec<Outcome> {
        match self.execute(batch).await {
            Ok(held) => held,
            Err(e) if batch.len() > 1 && !crate::outage::is_unreachable(&e) => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for w in batch {
                    let one = self.execute(std::slice::from_ref(w)).await;
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

    /// Writes `batch` in one statement, again if it lost a deadlock: each write's
    /// outcome, or the error.
    async fn execute(&self, batch: &[Write<L::Rows>]) -> sqlx::Result<Vec<Outcome>> {
        let mut fences = BatchFences::default();
        let rows: Vec<(i64, &L::Rows)> = batch.iter().map(|w| (fences.number(&w.session, w.worker, w.epoch), &w.rows)).collect();
        let mut db = self.db.lock().await;
        let mut tries = 0;
        let held: HashSet<i64> = loop {
            tries += 1;
            // Upserts and deletes: running them again is safe. Each statement sent is
            // counted, the one run again on a fresh connection too.
            let written = crate::held_conn::run_held!(&mut db, "the key writer", |conn| {
                self.statements.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(m::KEY_WRITE_STATEMENTS).increment(1);
                L::write(conn, &fences, &rows)
            });
            match written {
                Ok(held) => break held.into_iter().collect(),
                Err(e) if tries < DEADLOCK_TRIES && is_deadlock(&e) => {
                    self.deadlocks.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(m::KEY_WRITE_DEADLOCKS).increment(1);
                    tracing::warn!("a combined key write lost a deadlock; running it again");
                }
                Err(e) => return Err(e),
            }
        };
        Ok(rows.iter().map(|(k, _)| if held.contains(k) { Outcome::Written } else { Outcome::FenceLost }).collect())
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
fn reordering_cut(batch: &[Write<CopyRows>]) -> usize {
    let mut touched: HashMap<(&str, &str, &str, &str), bool> = HashMap::new();
    for (i, w) in batch.iter().enumerate() {
        let (keys, store): (Vec<(&str, &str, &str)>, bool) = match &w.rows {
            CopyRows::Store(rows) => (rows.iter().map(|(c, s, id, _)| (c.as_str(), s.as_str(), id.as_str())).collect(), true),
            CopyRows::Delete(keys) => (keys.iter().map(|(c, s, id)| (c.as_str(), s.as_str(), id.as_str())).collect(), false),
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
    ($fences:expr, $ctes:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query_scalar!(
            r#"WITH fence AS (
                   SELECT s.id, u.k FROM wa.sessions s
                     JOIN unnest($1::text[], $2::uuid[], $3::bigint[]) WITH ORDINALITY AS u(id, worker, epoch, k) ON s.id = u.id
                    WHERE wa._may_write(s, u.worker, u.epoch)
                    ORDER BY s.id FOR SHARE OF s), "# + $ctes + r#"
             SELECT k AS "k!" FROM fence"#,
            &$fences.sessions as &[&str],
            &$fences.workers,
            &$fences.epochs
            $(, $arg)*
        )
    };
}

/// The inbound buffer: copies of received messages and their deletion, in one
/// statement; a copy and its deletion never share one ([`reordering_cut`]).
struct Copies;

impl Lane for Copies {
    type Rows = CopyRows;

    fn take(queued: &[Write<CopyRows>]) -> usize {
        reordering_cut(queued)
    }

    async fn write(conn: &mut PgConnection, fences: &BatchFences<'_>, rows: &[(i64, &CopyRows)]) -> sqlx::Result<Vec<i64>> {
        let (mut stores, mut deletes) = (Vec::new(), Vec::new());
        for &(k, rows) in rows {
            match rows {
                CopyRows::Store(rows) => {
                    stores.extend(rows.iter().map(|(c, s, id, m)| ((k, c.as_str(), s.as_str(), id.as_str()), m.as_slice())));
                }
                CopyRows::Delete(keys) => deletes.extend(keys.iter().map(|(c, s, id)| (k, c.as_str(), s.as_str(), id.as_str()))),
            }
        }
        let stores = last_wins(stores);
        batch_fenced!(
            fences,
            r#"stored AS (
                   INSERT INTO wa.pending_inbound (session_id, chat, sender, stanza_id, message)
                   SELECT f.id, r.c, r.s, r.i, r.m
                     FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::bytea[]) AS r(k, c, s, i, m)
                     JOIN fence f ON f.k = r.k
                   ON CONFLICT (session_id, chat, sender, stanza_id) DO UPDATE SET message = EXCLUDED.message,
                       stored_at = EXCLUDED.stored_at),
               deleted AS (
                   DELETE FROM wa.pending_inbound p
                    USING unnest($9::bigint[], $10::text[], $11::text[], $12::text[]) AS r(k, c, s, i)
                     JOIN fence f ON f.k = r.k
                    WHERE p.session_id = f.id AND p.chat = r.c AND p.sender = r.s AND p.stanza_id = r.i)"#,
            &stores.iter().map(|((k, ..), _)| *k).collect::<Vec<_>>(),
            &stores.iter().map(|((_, c, ..), _)| *c).collect::<Vec<_>>() as &[&str],
            &stores.iter().map(|((_, _, s, _), _)| *s).collect::<Vec<_>>() as &[&str],
            &stores.iter().map(|((.., i), _)| *i).collect::<Vec<_>>() as &[&str],
            &stores.iter().map(|(_, m)| *m).collect::<Vec<_>>() as &[&[u8]],
            &deletes.iter().map(|(k, ..)| *k).collect::<Vec<_>>(),
            &deletes.iter().map(|(_, c, ..)| *c).collect::<Vec<_>>() as &[&str],
            &deletes.iter().map(|(_, _, s, _)| *s).collect::<Vec<_>>() as &[&str],
            &deletes.iter().map(|(.., i)| *i).collect::<Vec<_>>() as &[&str],
        )
        .fetch_all(conn)
        .await
    }
}

/// Message secrets and sent copies, after a linger that gathers a burst's into a few
/// statements: nobody waits on them in the common case ([`BehindRows`]).
struct Behind;

impl Lane for Behind {
    type Rows = BehindRows;

    const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

    async fn write(conn: &mut PgConnection, fences: &BatchFences<'_>, rows: &[(i64, &BehindRows)]) -> sqlx::Result<Vec<i64>> {
        let (mut secrets, mut sent) = (Vec::new(), Vec::new());
        for &(k, rows) in rows {
            match rows {
                BehindRows::MsgSecrets(entries) => {
                    secrets.extend(entries.iter().map(|e| ((k, &*e.chat, &*e.sender, &*e.msg_id), e)));
                }
                BehindRows::Sent { chat, id, payload } => sent.push(((k, chat.as_str(), id.as_str()), payload.as_slice())),
            }
        }
        let (sec, sent) = (merged_secrets(secrets), last_wins(sent));
        batch_fenced!(
            fences,
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
                       stored_at = EXCLUDED.stored_at)"#,
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
        )
        .fetch_all(conn)
        .await
    }
}

/// whatsapp-rust's Signal session records, the last record of each address kept.
struct SessionRecords;

impl Lane for SessionRecords {
    type Rows = Vec<(String, Vec<u8>)>;

    /// whatsapp-rust writes these behind, each talking session every 25 ms, and waits
    /// on few of them; gathering more sessions per statement saves commits.
    const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

    async fn write(conn: &mut PgConnection, fences: &BatchFences<'_>, rows: &[(i64, &Self::Rows)]) -> sqlx::Result<Vec<i64>> {
        let records =
            last_wins(rows.iter().flat_map(|&(k, rows)| rows.iter().map(move |(a, r)| ((k, a.as_str()), r.as_slice()))));
        batch_fenced!(
            fences,
            r#"records AS (
                   INSERT INTO wa.signal_sessions (session_id, address, record)
                   SELECT f.id, r.a, r.r FROM unnest($4::bigint[], $5::text[], $6::bytea[]) AS r(k, a, r)
                     JOIN fence f ON f.k = r.k
                   ON CONFLICT (session_id, address) DO UPDATE SET record = EXCLUDED.record, updated_at = now())"#,
            &records.iter().map(|((k, _), _)| *k).collect::<Vec<_>>(),
            &records.iter().map(|((_, a), _)| *a).collect::<Vec<_>>() as &[&str],
            &records.iter().map(|(_, r)| *r).collect::<Vec<_>>() as &[&[u8]],
        )
        .fetch_all(conn)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(session: &str, rows: CopyRows) -> Write<CopyRows> {
        Write { session: session.into(), worker: Uuid::nil(), epoch: 1, rows }
    }

    fn key(id: &str) -> (String, String, String) {
        ("c".into(), "s".into(), id.into())
    }

    fn store(session: &str, id: &str) -> Write<CopyRows> {
        let (c, s, i) = key(id);
        write(session, CopyRows::Store(vec![(c, s, i, vec![1])]))
    }

    fn delete(session: &str, id: &str) -> Write<CopyRows> {
        write(session, CopyRows::Delete(vec![key(id)]))
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
