//! The buffered copies of inbound messages that one session connection never writes, or
//! never deletes, because its inbox statement makes them unneeded.
//!
//! whatsapp-rust buffers each decrypted message in wa.pending_inbound, runs the
//! durability hook, then deletes the buffered rows before it acks the server. The copy
//! exists for one case: the ratchet that consumed the message's key is stored, and the
//! message is not in the inbox; the server's redelivery can no longer be decrypted, and
//! whatsapp-rust replays it from the copy. Two waits on every message are spared:
//!
//! - Deferred copies. The key store holds a copy in memory instead of committing it (one
//!   batch at a time, [`Unbuffered::defer`]), and writes the copies it holds before any
//!   other write of the session's keys (the ratchets among them) may start
//!   ([`Unbuffered::settle`]). A copy whose message the inbox stores first is dropped
//!   unwritten. So no ratchet is durable while a copy of a message it decrypted is not,
//!   and a worker that dies holding copies had stored neither their ratchets nor their
//!   inbox rows: the server, never acked, redelivers. Writes of copies themselves, of
//!   message secrets and of sent copies make no ratchet durable, so they go out without
//!   settling first.
//! - Deletes the inbox made. The inbox writer deletes a message's buffered row in the
//!   transaction that stores the message, so whatsapp-rust's delete after the hook would
//!   be one more group-committed write, waited for before every ack, that finds nothing.
//!   The hook notes here what its statements cleared, and the key store leaves those
//!   keys out of the delete. A key noted but never asked for (whatsapp-rust's commit
//!   cancelled after its hook) is forgotten when the set is full; forgetting one costs
//!   only a delete that finds nothing.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;

use whatsapp_rust::wacore::store::traits::{PendingInboundKey, PendingInboundRow};

const MAX_KEYS: usize = 4096;
/// The most copies, and bytes of them, a connection holds: a catch-up of offline
/// messages comes in batches of hundreds, whose copies are written the usual way.
const MAX_DEFERRED_ROWS: usize = 64;
const MAX_DEFERRED_BYTES: usize = 256 * 1024;

/// A buffered copy as the combined key write takes it: chat, sender, stanza id, message.
pub(crate) type CopyRow = (String, String, String, Vec<u8>);

pub(crate) fn copy_row(r: &PendingInboundRow<'_>) -> CopyRow {
    (r.chat.to_owned(), r.sender.to_owned(), r.id.to_owned(), r.message.to_vec())
}

/// The buffered copies of one session connection that the inbox made unneeded, and those
/// held in memory until the session's next key write.
#[derive(Debug, Default)]
pub struct Unbuffered {
    cleared: Mutex<HashSet<String>>,
    /// Held across a settle's write, so a key write that must wait for the copies waits
    /// for that write to commit, not only for the copies to leave the queue.
    deferred: tokio::sync::Mutex<Deferred>,
}

#[derive(Debug, Default)]
struct Deferred {
    rows: Vec<(String, CopyRow)>,
    /// Keys of copies a settle wrote: its write may have come after the inbox statement
    /// that deleted the message's row, so these are deleted as usual even when cleared.
    written: HashSet<String>,
}

/// The buffer's key (chat, sender, stanza id) as one string: none of them holds a NUL.
fn key(chat: &str, sender: &str, id: &str) -> String {
    [chat, sender, id].join("\0")
}

fn bounded_insert(set: &mut HashSet<String>, key: String) {
    if set.len() >= MAX_KEYS {
        set.clear();
    }
    set.insert(key);
}

impl Unbuffered {
    /// Holds `rows` instead of writing them, when nothing else is held or being written
    /// for this connection and they fit; false otherwise, and the caller writes them now.
    /// One batch at a time: a connection receiving faster than its inbox commits (a
    /// burst, a catch-up) writes its copies as before, group-committed with every other
    /// session's, instead of making its ratchet writes wait for settles.
    pub(crate) fn defer(&self, rows: &[PendingInboundRow<'_>]) -> bool {
        let Ok(mut d) = self.deferred.try_lock() else {
            return false;
        };
        let bytes: usize = rows.iter().map(|r| r.message.len()).sum();
        if !d.rows.is_empty() || rows.len() > MAX_DEFERRED_ROWS || bytes > MAX_DEFERRED_BYTES {
            return false;
        }
        for r in rows {
            let k = key(r.chat, r.sender, r.id);
            // Last wins, as in the table's upsert.
            d.rows.retain(|(held, _)| *held != k);
            d.rows.push((k, copy_row(r)));
        }
        true
    }

    /// The held copy of a message, for a redelivery whatsapp-rust can no longer decrypt.
    pub(crate) async fn held_copy(&self, chat: &str, sender: &str, id: &str) -> Option<Vec<u8>> {
        let k = key(chat, sender, id);
        let d = self.deferred.lock().await;
        d.rows.iter().find(|(held, _)| *held == k).map(|(_, row)| row.3.clone())
    }

    /// Writes the held copies with `write` and forgets them once it succeeds; on failure
    /// they stay held, and the key write that called this must not be made. Another
    /// settle waits until this one's write returns.
    pub(crate) async fn settle<E, Fut>(&self, write: impl FnOnce(Vec<CopyRow>) -> Fut) -> Result<(), E>
    where
        Fut: Future<Output = Result<(), E>>,
    {
        let mut d = self.deferred.lock().await;
        if d.rows.is_empty() {
            return Ok(());
        }
        write(d.rows.iter().map(|(_, row)| row.clone()).collect()).await?;
        let d = &mut *d;
        for (k, _) in d.rows.drain(..) {
            bounded_insert(&mut d.written, k);
        }
        Ok(())
    }

    /// The inbox statement that stored (or found) this message committed, and with it
    /// the deletion of its buffered row if one was written before it.
    pub async fn cleared(&self, chat: &str, sender: &str, id: &str) {
        let k = key(chat, sender, id);
        let mut d = self.deferred.lock().await;
        if let Some(i) = d.rows.iter().position(|(held, _)| *held == k) {
            d.rows.remove(i);
        } else if d.written.remove(&k) {
            // Written by a settle, maybe after the inbox statement: whatsapp-rust's
            // delete goes to the table.
            return;
        }
        bounded_insert(&mut self.cleared.lock().unwrap_or_else(|p| p.into_inner()), k);
    }

    /// `keys` without those that need no delete in the table: copies still held (dropped
    /// here, unwritten) and rows the inbox already deleted (each forgotten as it is
    /// matched, so a later buffered row with the same key is deleted as usual).
    pub(crate) async fn still_buffered<'a>(&self, keys: &[PendingInboundKey<'a>]) -> Vec<PendingInboundKey<'a>> {
        let mut d = self.deferred.lock().await;
        let mut cleared = self.cleared.lock().unwrap_or_else(|p| p.into_inner());
        let mut rest = Vec::with_capacity(keys.len());
        for k in keys {
            let k2 = key(k.chat, k.sender, k.id);
            if let Some(i) = d.rows.iter().position(|(held, _)| *held == k2) {
                d.rows.remove(i);
            } else if !cleared.remove(&k2) {
                d.written.remove(&k2);
                rest.push(*k);
            }
        }
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k<'a>(id: &'a str) -> PendingInboundKey<'a> {
        PendingInboundKey { chat: "c", sender: "s", id }
    }

    fn row<'a>(id: &'a str, message: &'a [u8]) -> PendingInboundRow<'a> {
        PendingInboundRow { chat: "c", sender: "s", id, message }
    }

    async fn settled(u: &Unbuffered) -> Vec<CopyRow> {
        let mut out = Vec::new();
        u.settle(|rows| {
            out = rows;
            async { Ok::<(), ()>(()) }
        })
        .await
        .unwrap();
        out
    }

    fn ids(keys: &[PendingInboundKey<'_>]) -> Vec<String> {
        keys.iter().map(|k| k.id.to_owned()).collect()
    }

    #[tokio::test]
    async fn a_cleared_key_is_left_out_once() {
        let u = Unbuffered::default();
        u.cleared("c", "s", "A").await;
        assert_eq!(ids(&u.still_buffered(&[k("A"), k("B")]).await), ["B"]);
        assert_eq!(ids(&u.still_buffered(&[k("A")]).await), ["A"], "the mark is used up: a new row of A is deleted");
    }

    #[tokio::test]
    async fn the_parts_of_a_key_do_not_run_together() {
        let u = Unbuffered::default();
        u.cleared("c", "s", "A").await;
        let other = PendingInboundKey { chat: "c", sender: "sA", id: "" };
        assert_eq!(u.still_buffered(&[other]).await.len(), 1);
    }

    #[tokio::test]
    async fn a_full_set_forgets_rather_than_grows() {
        let u = Unbuffered::default();
        for i in 0..MAX_KEYS + 10 {
            u.cleared("c", "s", &i.to_string()).await;
        }
        assert!(u.cleared.lock().unwrap().len() <= MAX_KEYS);
    }

    #[tokio::test]
    async fn a_copy_the_inbox_stored_first_is_never_written() {
        let u = Unbuffered::default();
        assert!(u.defer(&[row("A", b"a"), row("B", b"b")]));
        assert_eq!(u.held_copy("c", "s", "A").await.as_deref(), Some(&b"a"[..]));
        u.cleared("c", "s", "A").await;
        assert_eq!(u.held_copy("c", "s", "A").await, None);
        let written = settled(&u).await;
        assert_eq!(written, [("c".into(), "s".into(), "B".into(), b"b".to_vec())], "only B is still needed");
        assert!(settled(&u).await.is_empty(), "a settle forgets what it wrote");
        // whatsapp-rust's delete: A was never written and the inbox cleared it; B was
        // written by the settle, maybe after the inbox statement, so its delete goes on.
        u.cleared("c", "s", "B").await;
        assert_eq!(ids(&u.still_buffered(&[k("A"), k("B")]).await), ["B"]);
    }

    #[tokio::test]
    async fn a_held_copy_that_whatsapp_rust_deletes_is_dropped_unwritten() {
        let u = Unbuffered::default();
        assert!(u.defer(&[row("A", b"a")]));
        assert!(u.still_buffered(&[k("A")]).await.is_empty());
        assert!(settled(&u).await.is_empty());
    }

    #[tokio::test]
    async fn a_failed_settle_keeps_the_copies() {
        let u = Unbuffered::default();
        assert!(u.defer(&[row("A", b"a")]));
        let failed = u.settle(|_| async { Err::<(), &str>("database away") }).await;
        assert_eq!(failed, Err("database away"));
        assert_eq!(settled(&u).await.len(), 1, "the copy is written by the next settle");
    }

    #[tokio::test]
    async fn a_connection_holds_one_batch_at_a_time_and_only_a_small_one() {
        let u = Unbuffered::default();
        let big = vec![0u8; MAX_DEFERRED_BYTES];
        assert!(!u.defer(&[row("A", &big), row("B", b"b")]), "too many bytes");
        let names: Vec<String> = (0..=MAX_DEFERRED_ROWS).map(|i| i.to_string()).collect();
        let many: Vec<_> = names.iter().map(|n| row(n, b"x")).collect();
        assert!(!u.defer(&many), "too many rows");
        assert!(u.defer(&many[..MAX_DEFERRED_ROWS]));
        assert!(!u.defer(&[row("late", b"x")]), "a batch is held: the next is written at once");
        assert_eq!(settled(&u).await.len(), MAX_DEFERRED_ROWS);
        assert!(u.defer(&[row("late", b"x")]), "a settle makes room");
    }

    #[tokio::test]
    async fn within_a_batch_the_last_copy_of_a_message_wins() {
        let u = Unbuffered::default();
        assert!(u.defer(&[row("A", b"old"), row("A", b"new")]));
        assert_eq!(settled(&u).await, [("c".into(), "s".into(), "A".into(), b"new".to_vec())]);
    }

    /// While a settle writes, the receive path does not wait for it: the next copies are
    /// written at once instead of held.
    #[tokio::test]
    async fn copies_that_come_during_a_settle_are_not_held() {
        let u = std::sync::Arc::new(Unbuffered::default());
        assert!(u.defer(&[row("A", b"a")]));
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let writing = tokio::spawn({
            let u = u.clone();
            async move {
                u.settle(|_| async move {
                    started_tx.send(()).unwrap();
                    finish_rx.await.unwrap();
                    Ok::<(), ()>(())
                })
                .await
            }
        });
        started.await.unwrap();
        assert!(!u.defer(&[row("B", b"b")]));
        finish.send(()).unwrap();
        writing.await.unwrap().unwrap();
    }

    /// A key write that finds a settle under way waits for its write to finish, not only
    /// for the copies to leave the queue.
    #[tokio::test]
    async fn a_key_write_waits_for_a_settle_in_flight() {
        let u = std::sync::Arc::new(Unbuffered::default());
        assert!(u.defer(&[row("A", b"a")]));
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let u = u.clone();
            async move {
                u.settle(|_| async move {
                    started_tx.send(()).unwrap();
                    finish_rx.await.unwrap();
                    Ok::<(), ()>(())
                })
                .await
            }
        });
        started.await.unwrap();
        let mut second = Box::pin(settled(&u));
        assert!(futures_poll_once(&mut second).await.is_none(), "the second settle returned while the first wrote");
        finish.send(()).unwrap();
        first.await.unwrap().unwrap();
        assert!(second.await.is_empty());
    }

    async fn futures_poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = f => Some(out),
            _ = tokio::task::yield_now() => None,
        }
    }
}
