//! Tells apps listening on `wa_outbound` which messages changed status: the outcomes the
//! completer recorded, and the receipts the sessions heard, which this task applies
//! itself, in the transaction that announces them.
//!
//! A NOTIFY is not cheap for Postgres: its commit takes the database's notify lock and
//! flushes the WAL while holding it, so notifying commits go one after the other, and it
//! wakes every listening backend of the database. One per outcome batch and one per
//! receipt made them about half of a burst's commits (BENCHMARKS.md). So after an
//! announcement the next one waits until [`GAP`] has passed and carries everything
//! recorded meanwhile: under load a worker announces at most 1 / GAP times a second, and
//! a lone status, after a quiet moment, goes at once.
//!
//! Outcomes are committed by the completer before they come here (see
//! pgwa_pg::jobs::announce_outbound for why they are not announced in their own write).
//! Receipts have no such reason: nothing waits on them, so they wait for the next
//! announcement and are written with it, one statement for all of them instead of one
//! autocommitted UPDATE each (a receipt is a status for the app, not a key: losing the
//! last GAP of them in a crash loses no message).

use std::time::Duration;

use pgwa_pg::PgPool;
use pgwa_pg::jobs::Recorded;
use pgwa_pg::receipts::{self, Receipt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The least time between two announcements of one worker.
pub const GAP: Duration = Duration::from_millis(10);

enum Item {
    Recorded(Vec<Recorded>),
    Receipt(Receipt),
}

/// The handle of a worker's announcing task; dropping every handle ends the task.
#[derive(Clone)]
pub struct Announcer {
    tx: mpsc::UnboundedSender<Item>,
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
        if recorded.iter().any(|r| r.announceable().is_some()) {
            let _ = self.tx.send(Item::Recorded(recorded));
        }
    }

    /// Queues a receipt, to be applied and announced with the next announcement.
    pub fn receipt(&self, receipt: Receipt) {
        let _ = self.tx.send(Item::Receipt(receipt));
    }
}

#[derive(Default)]
struct Pending {
    recorded: Vec<Recorded>,
    receipts: Vec<Receipt>,
}

impl Pending {
    fn add(&mut self, item: Item) {
        match item {
            Item::Recorded(r) => self.recorded.extend(r),
            Item::Receipt(r) => self.receipts.push(r),
        }
    }
}

async fn run(pool: PgPool, gap: Duration, mut rx: mpsc::UnboundedReceiver<Item>) {
    let mut pending = Pending::default();
    let mut last: Option<Instant> = None;
    while let Some(first) = rx.recv().await {
        pending.add(first);
        if let Some(at) = last {
            tokio::time::sleep_until(at + gap).await;
        }
        while let Ok(more) = rx.try_recv() {
            pending.add(more);
        }
        flush(&pool, &mut pending).await;
        last = Some(Instant::now());
    }
}

/// A failure is logged and dropped: outcomes are committed, and apps that missed a
/// NOTIFY read the rows anyway; receipts are statuses the app can live without.
async fn flush(pool: &PgPool, pending: &mut Pending) {
    let (receipts, announced) = (pending.receipts.len(), pending.recorded.len());
    let recorded = std::mem::take(&mut pending.recorded);
    if let Err(e) = receipts::apply_and_announce(pool, &pending.receipts, recorded).await {
        tracing::warn!(error = %e, receipts, announced, "applying receipts and announcing outbound statuses failed");
    }
    pending.receipts.clear();
}
