//! Tells apps listening on `wa_outbound` which messages changed status: the outcomes the
//! completer recorded and the receipts the session events applied, in the order they
//! were committed.
//!
//! Each announcement is a transaction of its own (see pgwa_pg::jobs::announce_outbound
//! for why it is not part of the write it announces), and a NOTIFY is not cheap for
//! Postgres: its commit takes the database's notify lock and flushes the WAL while
//! holding it, so notifying commits go one after the other, and it wakes every listening
//! backend of the database. One per outcome batch and one per receipt made them about
//! half of a burst's commits (BENCHMARKS.md). So after an announcement the next one waits
//! until [`GAP`] has passed and carries everything recorded meanwhile: under load a
//! worker announces at most 1 / GAP times a second, and a lone status, after a quiet
//! moment, goes at once.

use std::time::Duration;

use pgwa_pg::PgPool;
use pgwa_pg::jobs::Recorded;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The least time between two announcements of one worker.
pub const GAP: Duration = Duration::from_millis(10);

/// The handle of a worker's announcing task; dropping every handle ends the task.
#[derive(Clone)]
pub struct Announcer {
    tx: mpsc::UnboundedSender<Vec<Recorded>>,
}

impl Announcer {
    /// Starts the announcing task on `pool` (the main pool: waiting for the notify lock
    /// must never hold one of the queue's few connections), `gap` apart at least.
    pub fn spawn(pool: PgPool, gap: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, gap, rx));
        Self { tx }
    }

    /// Queues committed statuses for the next announcement.
    pub fn announce(&self, recorded: Vec<Recorded>) {
        if recorded.iter().any(|r| r.delivery.is_some()) {
            let _ = self.tx.send(recorded);
        }
    }
}

/// An announcement that fails is logged and dropped: the rows are committed, and apps
/// that missed a NOTIFY read them anyway.
async fn run(pool: PgPool, gap: Duration, mut rx: mpsc::UnboundedReceiver<Vec<Recorded>>) {
    let mut pending = Vec::new();
    let mut last: Option<Instant> = None;
    while let Some(first) = rx.recv().await {
        pending.extend(first);
        if let Some(at) = last {
            tokio::time::sleep_until(at + gap).await;
        }
        while let Ok(more) = rx.try_recv() {
            pending.extend(more);
        }
        if let Err(e) = pgwa_pg::jobs::announce_outbound(&pool, &pending).await {
            tracing::warn!(error = %e, messages = pending.len(), "announcing outbound statuses failed");
        }
        last = Some(Instant::now());
        pending.clear();
    }
}
