//! Group commit: many small writes from many tasks, one statement and one commit.
//!
//! The writes of a worker's sessions (their key writes, their inbound messages) are each
//! tiny, and each alone cost a round trip, a statement and a commit (BENCHMARKS.md has
//! the statements per message). A [`GroupCommit`] queues the writes and hands whatever
//! has queued to its [`Flush`], which writes them in one statement (each row under its
//! session's fence: `crate::batch_fences`). A write is answered only after the statement
//! holding it ended, with its own result, so the caller's durability is what it was.
//! On a lane without [`Flush::LINGER`], a write goes at once while no statement is in
//! flight, so a quiet worker pays no wait; under load, writes wait for the statement in
//! flight and go together in the next. A lingering lane waits its linger before each
//! statement (unless a full batch is already queued), trading a later commit for fewer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// The statement holding a write failed; every write it held gets this, naming what
/// was being written. Its source is the `sqlx::Error`, so outage checks
/// (`crate::outage::caused_by_unreachable`) see it.
#[derive(Debug, Clone)]
pub struct WriteFailed {
    what: &'static str,
    error: Arc<sqlx::Error>,
}

impl WriteFailed {
    pub(crate) fn new(what: &'static str, error: sqlx::Error) -> Self {
        Self::shared(what, Arc::new(error))
    }

    pub(crate) fn shared(what: &'static str, error: Arc<sqlx::Error>) -> Self {
        Self { what, error }
    }
}

impl std::fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.what, self.error)
    }
}

impl std::error::Error for WriteFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

/// How a kind of write is written in batches.
pub(crate) trait Flush: Send + Sync + 'static {
    type Item: Send + 'static;
    type Answer: Send + 'static;

    /// At most this many items go in one statement; the rest wait for the next.
    const MAX_BATCH: usize;

    /// How long a batch waits for company before its statement: for writes nobody
    /// waits on in the common case, where fewer statements are worth a later commit.
    const LINGER: Duration = Duration::ZERO;

    /// How many of `queued` (never empty) may go in the next statement, at least one:
    /// for writes that must not share a statement with some earlier write.
    fn take(&self, queued: &[Self::Item]) -> usize {
        queued.len()
    }

    /// Writes `items`: one answer each, in order.
    fn flush(&self, items: &[Self::Item]) -> impl Future<Output = Vec<Self::Answer>> + Send;
}

struct Queued<F: Flush> {
    item: F::Item,
    done: oneshot::Sender<F::Answer>,
}

struct State<F: Flush> {
    queue: Vec<Queued<F>>,
    running: bool,
}

pub(crate) struct GroupCommit<F: Flush> {
    flush: F,
    state: Mutex<State<F>>,
}

impl<F: Flush> GroupCommit<F> {
    pub(crate) fn new(flush: F) -> Arc<Self> {
        Arc::new(Self { flush, state: Mutex::new(State { queue: Vec::new(), running: false }) })
    }

    pub(crate) fn flusher(&self) -> &F {
        &self.flush
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<F>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` and waits for its answer; `None` when the task writing it stopped
    /// before answering (it panicked), so whether it was written is unknown.
    pub(crate) async fn write(self: &Arc<Self>, item: F::Item) -> Option<F::Answer> {
        let (done, answer) = oneshot::channel();
        let start = {
            let mut st = self.state();
            st.queue.push(Queued { item, done });
            !std::mem::replace(&mut st.running, true)
        };
        // A spawned task, not the first caller, writes: a caller that is cancelled
        // (its future dropped) must not strand the writes queued behind it.
        if start {
            tokio::spawn(self.clone().drain());
        }
        answer.await.ok()
    }

    async fn drain(self: Arc<Self>) {
        let _reset = ResetOnExit(&self);
        loop {
            if !F::LINGER.is_zero() && self.state().queue.len() < F::MAX_BATCH {
                tokio::time::sleep(F::LINGER).await;
            }
            let (items, answers) = {
                let mut st = self.state();
                if st.queue.is_empty() {
                    st.running = false;
                    return;
                }
                let n = st.queue.len().min(F::MAX_BATCH);
                let (mut items, mut answers): (Vec<F::Item>, Vec<_>) = st.queue.drain(..n).map(|q| (q.item, q.done)).unzip();
                let cut = self.flush.take(&items).clamp(1, items.len());
                let later = items.drain(cut..).zip(answers.drain(cut..)).map(|(item, done)| Queued { item, done });
                st.queue.splice(0..0, later.collect::<Vec<_>>());
                (items, answers)
            };
            let outcomes = self.flush.flush(&items).await;
            debug_assert_eq!(outcomes.len(), answers.len(), "one answer per item");
            for (done, outcome) in answers.into_iter().zip(outcomes) {
                let _ = done.send(outcome);
            }
        }
    }
}

/// Keeps the writer going however its task ends: if a batch panics (a bug), its callers
/// get `None` and the writes queued behind it go on in a new task.
struct ResetOnExit<'a, F: Flush>(&'a Arc<GroupCommit<F>>);

impl<F: Flush> Drop for ResetOnExit<'_, F> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut st = self.0.state();
            if st.queue.is_empty() {
                st.running = false;
            } else {
                tokio::spawn(self.0.clone().drain());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the size of each batch it is handed.
    #[derive(Default)]
    struct Batches<const LINGER_MS: u64>(Mutex<Vec<usize>>);

    impl<const LINGER_MS: u64> Flush for Batches<LINGER_MS> {
        type Item = u32;
        type Answer = u32;
        const MAX_BATCH: usize = 16;
        const LINGER: Duration = Duration::from_millis(LINGER_MS);

        async fn flush(&self, items: &[u32]) -> Vec<u32> {
            self.0.lock().unwrap().push(items.len());
            items.to_vec()
        }
    }

    /// Two writes 5 ms apart: each item answered with itself; the batch sizes.
    async fn two_writes_apart<const LINGER_MS: u64>() -> Vec<usize> {
        let gc = GroupCommit::new(Batches::<LINGER_MS>::default());
        let first = tokio::spawn({
            let gc = gc.clone();
            async move { gc.write(1).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(gc.write(2).await, Some(2));
        assert_eq!(first.await.unwrap(), Some(1));
        gc.flusher().0.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn without_linger_a_lone_write_goes_at_once() {
        assert_eq!(two_writes_apart::<0>().await, vec![1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lingering_batch_takes_the_writes_that_come_meanwhile() {
        assert_eq!(two_writes_apart::<10>().await, vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_does_not_linger() {
        let gc = GroupCommit::new(Batches::<10>::default());
        let started = tokio::time::Instant::now();
        let writes: Vec<_> = (0..16u32)
            .map(|i| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.write(i).await })
            })
            .collect();
        for (i, w) in (0..).zip(writes) {
            assert_eq!(w.await.unwrap(), Some(i));
        }
        assert_eq!(started.elapsed(), Duration::ZERO, "a full batch waited for company");
        assert_eq!(gc.flusher().0.lock().unwrap().clone(), vec![16]);
    }
}
