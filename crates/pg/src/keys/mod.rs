//! whatsapp-rust 0.7's storage `Backend` on Postgres.
//!
//! One [`PgBackend`] per session, all sharing one `PgPool`: every row is keyed by the
//! session id. Writes are fenced: when a [`Fence`] is set, each write statement locks the
//! session row `FOR SHARE` and checks that this worker still owns it at this epoch, in the
//! same statement, so a worker that lost its lease cannot change the session's keys.
//!
//! The trait impls live one per file (signal, appsync, protocol, secrets, device); the
//! protocol store's larger halves (tokens, sent messages, pending inbound) are in
//! `ephemeral`. SQL lives only here and in `crate::import`.

mod appsync;
pub mod bench_data;
pub mod cleanup;
mod combined;
mod device;
mod ephemeral;
mod protocol;
mod secrets;
mod signal;
pub mod sweep;
mod tc_cache;

pub use combined::{Combiner, CombinerCounts};
pub use device::{load_auth_document, save_auth_document};

use sqlx::PgPool;
use wacore::store::error::StoreError;
use whatsapp_rust::wacore;

use pgwa_core::fence::{Fence, LeaseLost};

use crate::outage::{caused_by_unreachable, wait_out};
use combined::{CopyRows, Outcome, Rows, Write};

/// An offline write (no fence) was refused: the session does not exist, or a worker
/// holds it. Offline writers (the importer, tests, benchmarks) never change the keys of
/// a session a worker is running.
#[derive(Debug, thiserror::Error)]
#[error(
    "session {0}: write refused: it does not exist in wa.sessions, or a worker holds it; create it with wa.add_session, or stop it with wa.stop_session and wait for its release"
)]
pub struct OfflineWriteRefused(pub String);

/// True when a store error is a refused fenced write.
pub fn is_lease_lost(err: &StoreError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<LeaseLost>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The Postgres storage backend of one session.
#[derive(Clone)]
pub struct PgBackend {
    pool: PgPool,
    session: String,
    fence: Option<Fence>,
    /// How long the pending-inbound buffer waits for an unreachable database (zero:
    /// fail at once); see [`PgBackend::waiting_out_outages`].
    outage_wait: std::time::Duration,
    /// Where the frequent per-message writes go when set; see [`PgBackend::combining`].
    combiner: Option<std::sync::Arc<Combiner>>,
    /// The trusted-contact tokens read or written lately; fenced backends only (see
    /// `tc_cache`), shared by the clones.
    tc: Option<std::sync::Arc<tc_cache::TcCache>>,
    /// Buffered inbound rows the inbox already deleted; see [`PgBackend::unbuffered_by`].
    unbuffered: Option<std::sync::Arc<crate::unbuffered::Unbuffered>>,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").field("session", &self.session).field("fence", &self.fence).finish()
    }
}

/// A fenced key write, checked at compile time (sqlx::query!). The core, an
/// INSERT/UPDATE/DELETE without RETURNING whose WHERE includes `EXISTS (SELECT 1 FROM
/// fence)`, becomes one statement that also reports whether the fence held. `fence` is
/// one row when the writer may write (`wa._may_write`: with a worker, while it holds;
/// offline, while nobody does) and locks the session row FOR SHARE, so a takeover waits
/// for the write. $1 = session, $2 = worker (NULL offline), $3 = epoch; the core's own
/// parameters, passed after it, start at $4. Evaluates to the rows changed, or the lease
/// error when the fence did not hold (then nothing was written).
macro_rules! fenced {
    ($b:expr, $core:tt $(, $arg:expr)* $(,)?) => {{
        let b: &$crate::keys::PgBackend = $b;
        async {
            b.settle_held_copies().await?;
            let r = sqlx::query!(
                "WITH fence AS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._may_write(s, $2, $3) FOR SHARE), w AS ("
                    + $core
                    + r#" RETURNING 1) SELECT EXISTS (SELECT 1 FROM fence) AS "ok!", (SELECT count(*) FROM w) AS "n!""#,
                b.session_id(),
                b.fence_worker(),
                b.fence_epoch()
                $(, $arg)*
            )
            .fetch_one(b.pool())
            .await
            .map_err($crate::keys::db_err)?;
            b.fenced_result(r.ok, r.n)
        }
        .await
    }};
}
pub(crate) use fenced;

impl PgBackend {
    /// The backend of a session this worker holds: every write checks `fence`.
    pub fn fenced(pool: PgPool, fence: Fence) -> Self {
        let session = fence.session.clone();
        let tc = Some(Default::default());
        Self { pool, session, fence: Some(fence), outage_wait: std::time::Duration::ZERO, combiner: None, tc, unbuffered: None }
    }

    /// A backend for a session no worker holds (import, tests, benchmarks): its writes
    /// are refused while a worker holds the session.
    pub fn offline(pool: PgPool, session_id: impl Into<String>) -> Self {
        Self {
            pool,
            session: session_id.into(),
            fence: None,
            outage_wait: std::time::Duration::ZERO,
            combiner: None,
            tc: None,
            unbuffered: None,
        }
    }

    /// Makes the pending-inbound buffer wait up to `limit` for a database that stopped
    /// answering, instead of failing. whatsapp-rust decrypts a message (advancing the
    /// ratchet, which it flushes later with retries of its own) before it buffers it;
    /// if that buffer write fails it leaves the message unacknowledged, and the
    /// server's redelivery then reads as an already-processed duplicate with no buffered
    /// copy, which it acknowledges: the message would be lost. Waiting out a Postgres
    /// restart stalls the session's inbound pipeline instead, which holds nothing that
    /// could be stored anyway.
    pub fn waiting_out_outages(mut self, limit: std::time::Duration) -> Self {
        self.outage_wait = limit;
        self
    }

    /// Sends the frequent writes (message secrets, sent copies, the inbound buffer, Signal
    /// session records) of this fenced backend through `combiner`, which writes those of all the
    /// worker's sessions together (group commit; see [`Combiner`]). Offline backends
    /// write alone whatever is set.
    pub fn combining(mut self, combiner: std::sync::Arc<Combiner>) -> Self {
        self.combiner = Some(combiner);
        self
    }

    /// Leaves out of the deletes of buffered inbound rows those that `unbuffered` says
    /// the inbox statement deleted already (the session connection's durability hook
    /// notes them there).
    pub fn unbuffered_by(mut self, unbuffered: std::sync::Arc<crate::unbuffered::Unbuffered>) -> Self {
        self.unbuffered = Some(unbuffered);
        self
    }

    /// Writes the inbound copies this backend holds, before any other write of its keys
    /// (`crate::unbuffered`): no ratchet is durable before the copy of a message it
    /// decrypted.
    pub(crate) async fn settle_held_copies(&self) -> Result<(), StoreError> {
        match self.combined() {
            Some(through) => through.settle().await,
            None => Ok(()),
        }
    }

    /// The way through the combiner, when this is a fenced backend with one attached.
    pub(crate) fn combined(&self) -> Option<Through<'_>> {
        Some(Through { backend: self, combiner: self.combiner.as_ref()?, fence: self.fence.as_ref()? })
    }

    pub fn session_id(&self) -> &str {
        &self.session
    }

    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The fence's worker parameter: None for an offline writer.
    pub(crate) fn fence_worker(&self) -> Option<uuid::Uuid> {
        self.fence.as_ref().map(|f| f.worker)
    }

    pub(crate) fn fence_epoch(&self) -> i64 {
        self.fence.as_ref().map(|f| f.epoch).unwrap_or(0)
    }

    /// What a [`fenced!`] statement reported: the rows it changed, or the lease error.
    pub(crate) fn fenced_result(&self, ok: bool, n: i64) -> Result<u64, StoreError> {
        if !ok {
            return Err(self.fence_error());
        }
        Ok(n as u64)
    }

    fn fence_error(&self) -> StoreError {
        match &self.fence {
            Some(f) => StoreError::Database(Box::new(f.lost())),
            None => StoreError::Database(Box::new(OfflineWriteRefused(self.session.clone()))),
        }
    }
}

/// A fenced backend's writes through its combiner ([`PgBackend::combined`]).
#[derive(Clone, Copy)]
pub(crate) struct Through<'a> {
    backend: &'a PgBackend,
    combiner: &'a std::sync::Arc<Combiner>,
    fence: &'a Fence,
}

impl Through<'_> {
    /// Writes `rows` under the backend's fence, together with whatever else is queued,
    /// after the inbound copies the session holds when the rows say so
    /// ([`Rows::settles_first`]). Copies, their deletes, message secrets and sent copies
    /// do not wait: settling before them would make a message received while a batch is
    /// held wait for two commits in a row.
    pub(crate) async fn write(self, rows: impl Into<Rows>) -> Result<(), StoreError> {
        let rows = rows.into();
        if rows.settles_first() {
            self.settle().await?;
        }
        self.write_now(rows).await
    }

    /// Writes the inbound copies the session holds (`crate::unbuffered`), waiting out an
    /// unreachable database as the buffer's own writes do.
    pub(crate) async fn settle(self) -> Result<(), StoreError> {
        let Some(u) = &self.backend.unbuffered else {
            return Ok(());
        };
        u.settle(|rows| {
            let write = move || self.write_now(CopyRows::Store(rows.clone()).into());
            wait_out(self.backend.outage_wait, "writing held inbound copies", |e: &StoreError| caused_by_unreachable(e), write)
        })
        .await
    }

    async fn write_now(self, rows: Rows) -> Result<(), StoreError> {
        let f = self.fence;
        match self.combiner.write(Write { session: f.session.clone(), worker: f.worker, epoch: f.epoch, rows }).await {
            Outcome::Written => Ok(()),
            Outcome::FenceLost => Err(self.backend.fence_error()),
            Outcome::Failed(e) => Err(StoreError::Database(Box::new(crate::WriteFailed::shared("writing keys", e)))),
            Outcome::Dropped => Err(StoreError::Database(
                format!("session {}: the key writer stopped before answering; the write may not have been made", f.session)
                    .into(),
            )),
        }
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

pub(crate) fn ser_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Serialization(Box::new(e))
}

/// u32 ids as Postgres bigint.
pub(crate) fn ids_i64(ids: &[u32]) -> Vec<i64> {
    ids.iter().map(|&i| i64::from(i)).collect()
}

/// Batch upserts must not name one key twice (ON CONFLICT cannot update a row twice in
/// one statement); the last entry wins, as it would with sequential writes.
pub(crate) fn last_wins<K: Eq + std::hash::Hash + Clone, V>(items: impl IntoIterator<Item = (K, V)>) -> Vec<(K, V)> {
    let mut seen = std::collections::HashMap::new();
    let mut out: Vec<(K, V)> = Vec::new();
    for (k, v) in items {
        match seen.get(&k) {
            Some(&i) => out[i] = (k, v),
            None => {
                seen.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}
