//! Trusted-contact tokens kept in memory by a fenced backend.
//!
//! whatsapp-rust reads the peer's token on every send, and it almost never changes: the
//! read was one statement per message, about a sixth of the statements of the real
//! message path (BENCHMARKS.md). While a worker holds a session, every write to its
//! tokens goes through the session's one backend (the fence refuses everyone else), so
//! that backend can answer reads from what it last read or wrote. The two other
//! deleters do not break that: the TTL sweep removes only rows that are expired on
//! both sides, which readers check for themselves, so a swept row and a cached expired
//! one read alike; and the close-session wipe ends the session this backend serves.
//! Entries still expire after [`TTL`], which bounds how long any such difference lasts.
//!
//! A write forgets its entry instead of computing the new row (the SQL merges, for
//! example the sender timestamp only moving forward, stay the one definition), and a
//! read that raced a write is not kept: each write moves a generation, and a read
//! caches its row only if no write began while it ran.
//!
//! Sender-timestamp touches are coalesced. whatsapp-rust 0.7 issues a privacy token
//! after every send whose read found no sender timestamp yet, and nothing dedupes the
//! issuances in flight: a burst to a new contact ended in one touch per message, each
//! an upsert of the same row (waiting on its lock) and its own commit; it was the
//! statement with the most Postgres time in a message burst (BENCHMARKS.md). The touch
//! only moves the timestamp forward (`greatest`), so a touch whose timestamp the row
//! already holds writes nothing, and one that a write in flight covers waits for that
//! write. What a touch leaves known is dropped by every other write of the contact,
//! which may have lowered or removed the timestamp.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashlink::LruCache;
use tokio::sync::watch;
use whatsapp_rust::wacore::store::traits::TcTokenEntry;

/// How long an entry answers reads.
pub(crate) const TTL: Duration = Duration::from_secs(60);

/// Entries per session: the contacts it talks to most. Allocated as used, so an idle
/// session pays nothing.
const CAPACITY: usize = 64;

pub(crate) struct TcCache {
    state: Mutex<State>,
}

struct State {
    entries: LruCache<String, (Instant, Option<TcTokenEntry>)>,
    generation: u64,
    touched: LruCache<String, Touched>,
    /// Moves with every write that is not a touch: a touch that ran across one does not
    /// know what the row holds after it.
    other_writes: u64,
    touches: u64,
}

/// What the touches of one contact left known.
#[derive(Default)]
struct Touched {
    /// The row's sender timestamp is at least this (since then).
    holds: Option<(i64, Instant)>,
    /// The touch being written: its timestamp, its number, and where it tells whether it
    /// committed.
    writing: Option<(i64, u64, watch::Receiver<Option<bool>>)>,
}

/// What a touch of the sender timestamp has to do.
pub(crate) enum Touch {
    /// The row already holds the timestamp or a later one: write nothing.
    Held,
    /// A touch of the same or a later timestamp is being written: wait for its result
    /// (`Some(true)`: committed; anything else: ask [`TcCache::touch`] again).
    Wait(watch::Receiver<Option<bool>>),
    /// Write it, then hand the ticket to [`TcCache::touched`].
    Write(TouchTicket),
}

pub(crate) struct TouchTicket {
    ts: i64,
    number: u64,
    other_writes: u64,
    done: watch::Sender<Option<bool>>,
}

/// What a read must hand back to [`TcCache::keep`].
pub(crate) struct ReadTicket(u64);

impl Default for TcCache {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                entries: LruCache::new(CAPACITY),
                generation: 0,
                touched: LruCache::new(CAPACITY),
                other_writes: 0,
                touches: 0,
            }),
        }
    }
}

impl State {
    /// Forgets the read row of `jid`; reads running now will not keep theirs.
    fn forget_read(&mut self, jid: &str) {
        self.generation += 1;
        self.entries.remove(jid);
    }
}

impl TcCache {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached row of `jid` (`Some(None)`: known to be absent), or the ticket to read
    /// it from the database and keep it.
    pub(crate) fn get(&self, jid: &str) -> Result<Option<TcTokenEntry>, ReadTicket> {
        let mut st = self.state();
        match st.entries.get(jid) {
            Some((at, row)) if at.elapsed() < TTL => Ok(row.clone()),
            _ => Err(ReadTicket(st.generation)),
        }
    }

    /// Keeps a row read from the database, unless a write began since the read did.
    pub(crate) fn keep(&self, ticket: ReadTicket, jid: &str, row: &Option<TcTokenEntry>) {
        let mut st = self.state();
        if st.generation == ticket.0 {
            st.entries.insert(jid.to_owned(), (Instant::now(), row.clone()));
        }
    }

    /// After every write of `jid` (`None`: of any token), whatever its result (a failed
    /// write may still have committed): what is cached for it is forgotten, and reads
    /// running now, which may have seen the old row, will not keep it.
    pub(crate) fn forget(&self, jid: Option<&str>) {
        let mut st = self.state();
        st.other_writes += 1;
        match jid {
            Some(jid) => {
                st.forget_read(jid);
                st.touched.remove(jid);
            }
            None => {
                st.generation += 1;
                st.entries.clear();
                st.touched.clear();
            }
        }
    }

    /// Whether a touch of `jid`'s sender timestamp to `ts` must be written.
    pub(crate) fn touch(&self, jid: &str, ts: i64) -> Touch {
        let mut st = self.state();
        let (other_writes, number) = (st.other_writes, st.touches + 1);
        if !st.touched.contains_key(jid) {
            st.touched.insert(jid.to_owned(), Touched::default());
        }
        let t = st.touched.get_mut(jid).expect("just inserted");
        if t.holds.is_some_and(|(held, at)| held >= ts && at.elapsed() < TTL) {
            return Touch::Held;
        }
        // A closed channel is a write whose future was dropped: it tells nothing.
        if let Some((writing, _, rx)) = &t.writing
            && *writing >= ts
            && rx.has_changed().is_ok()
        {
            return Touch::Wait(rx.clone());
        }
        let (done, rx) = watch::channel(None);
        t.writing = Some((ts, number, rx));
        st.touches = number;
        Touch::Write(TouchTicket { ts, number, other_writes, done })
    }

    /// After a touch's write, whatever its result: the row is forgotten like after any
    /// write, and a committed touch that no other write ran across is known to hold.
    pub(crate) fn touched(&self, jid: &str, ticket: TouchTicket, committed: bool) {
        let mut st = self.state();
        st.forget_read(jid);
        let unraced = st.other_writes == ticket.other_writes;
        if let Some(t) = st.touched.get_mut(jid) {
            // A fresh fact of a later timestamp keeps its own time: it is not re-learnt now.
            let fresh_later = t.holds.is_some_and(|(held, at)| held >= ticket.ts && at.elapsed() < TTL);
            if committed && unraced && !fresh_later {
                t.holds = Some((ticket.ts, Instant::now()));
            }
            if t.writing.as_ref().is_some_and(|(_, number, _)| *number == ticket.number) {
                t.writing = None;
            }
        }
        drop(st);
        ticket.done.send_replace(Some(committed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64) -> TcTokenEntry {
        TcTokenEntry { token: vec![1, 2], token_timestamp: ts, sender_timestamp: None }
    }

    #[test]
    fn a_read_is_kept_and_answers_the_next_one() {
        let c = TcCache::default();
        let Err(ticket) = c.get("a") else { panic!("an empty cache answered") };
        c.keep(ticket, "a", &Some(entry(5)));
        assert_eq!(c.get("a").ok().flatten().map(|e| e.token_timestamp), Some(5));
        let Err(ticket) = c.get("b") else { panic!("b was never read") };
        c.keep(ticket, "b", &None);
        assert!(matches!(c.get("b"), Ok(None)), "an absent row is cached as absent");
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let c = TcCache::default();
        let Err(ticket) = c.get("a") else { panic!() };
        c.forget(Some("a")); // a write of any token began while the read ran
        c.keep(ticket, "a", &Some(entry(1)));
        assert!(c.get("a").is_err(), "the read's row may be older than the write's");
        let Err(ticket) = c.get("a") else { panic!() };
        c.forget(Some("other"));
        c.keep(ticket, "a", &Some(entry(1)));
        assert!(c.get("a").is_err(), "the generation is per session, not per contact");
    }

    #[test]
    fn a_write_forgets_its_entry_and_a_wide_write_forgets_all() {
        let c = TcCache::default();
        for jid in ["a", "b"] {
            let Err(t) = c.get(jid) else { panic!() };
            c.keep(t, jid, &Some(entry(1)));
        }
        c.forget(Some("a"));
        assert!(c.get("a").is_err());
        assert!(c.get("b").is_ok());
        c.forget(None);
        assert!(c.get("b").is_err());
    }

    #[test]
    fn it_holds_at_most_its_capacity() {
        let c = TcCache::default();
        for i in 0..CAPACITY + 10 {
            let jid = i.to_string();
            let Err(t) = c.get(&jid) else { panic!() };
            c.keep(t, &jid, &None);
        }
        assert_eq!(c.state().entries.len(), CAPACITY);
        assert!(c.get("0").is_err(), "the least recently used went first");
    }

    fn writes(t: Touch) -> TouchTicket {
        match t {
            Touch::Write(ticket) => ticket,
            Touch::Held => panic!("held, expected a write"),
            Touch::Wait(_) => panic!("waits, expected a write"),
        }
    }

    fn waits(t: Touch) -> watch::Receiver<Option<bool>> {
        match t {
            Touch::Wait(rx) => rx,
            Touch::Held => panic!("held, expected a wait"),
            Touch::Write(_) => panic!("writes, expected a wait"),
        }
    }

    #[test]
    fn touches_a_write_in_flight_covers_wait_for_it_and_then_are_held() {
        let c = TcCache::default();
        let first = writes(c.touch("a", 100));
        let same = waits(c.touch("a", 100));
        let older = waits(c.touch("a", 90));
        assert!(matches!(c.touch("b", 100), Touch::Write(_)), "contacts are apart");
        let newer = writes(c.touch("a", 101));
        c.touched("a", first, true);
        assert_eq!(*same.borrow(), Some(true));
        assert_eq!(*older.borrow(), Some(true));
        assert!(matches!(c.touch("a", 100), Touch::Held), "the row holds 100");
        let on_newer = waits(c.touch("a", 101));
        c.touched("a", newer, true);
        assert_eq!(*on_newer.borrow(), Some(true));
        assert!(matches!(c.touch("a", 101), Touch::Held));
        assert!(matches!(c.touch("a", 102), Touch::Write(_)));
    }

    #[test]
    fn a_touch_forgets_the_cached_row() {
        let c = TcCache::default();
        let Err(ticket) = c.get("a") else { panic!() };
        c.keep(ticket, "a", &Some(entry(1)));
        let read_before = match c.get("b") {
            Err(t) => t,
            Ok(_) => panic!("b was never read"),
        };
        let t = writes(c.touch("a", 5));
        c.touched("a", t, true);
        assert!(c.get("a").is_err(), "the row's sender timestamp changed");
        c.keep(read_before, "b", &None);
        assert!(c.get("b").is_err(), "a read that ran across the touch is not kept");
    }

    #[test]
    fn another_write_of_the_contact_drops_what_touches_left_known() {
        let c = TcCache::default();
        let t = writes(c.touch("a", 100));
        c.touched("a", t, true);
        // A put may have lowered the timestamp, a delete removed the row.
        c.forget(Some("a"));
        assert!(matches!(c.touch("a", 100), Touch::Write(_)));
        let t = writes(c.touch("b", 100));
        c.touched("b", t, true);
        c.forget(None);
        assert!(matches!(c.touch("b", 100), Touch::Write(_)), "a sweep drops every contact's");
    }

    #[test]
    fn a_touch_that_ran_across_another_write_is_not_known_to_hold() {
        let c = TcCache::default();
        let t = writes(c.touch("a", 100));
        let waiting = waits(c.touch("a", 100));
        c.forget(Some("a")); // e.g. a put that ended while the touch ran
        c.touched("a", t, true);
        assert_eq!(*waiting.borrow(), Some(true), "its waiters still had their write");
        assert!(matches!(c.touch("a", 100), Touch::Write(_)), "which one landed last is unknown");
    }

    #[test]
    fn a_failed_or_dropped_write_covers_nobody() {
        let c = TcCache::default();
        let t = writes(c.touch("a", 100));
        let waiting = waits(c.touch("a", 100));
        c.touched("a", t, false);
        assert_eq!(*waiting.borrow(), Some(false), "the waiter writes itself");
        let t = writes(c.touch("a", 100));
        let waiting = waits(c.touch("a", 100));
        drop(t); // the touch's future was dropped mid-write
        assert!(waiting.has_changed().is_err(), "the waiter sees the channel closed");
        assert!(matches!(c.touch("a", 100), Touch::Write(_)), "nobody waits on a dropped write");
    }

    #[test]
    fn what_touches_left_known_expires() {
        let c = TcCache::default();
        let t = writes(c.touch("a", 100));
        c.touched("a", t, true);
        c.state().touched.get_mut("a").unwrap().holds = Some((100, Instant::now() - TTL));
        assert!(matches!(c.touch("a", 100), Touch::Write(_)));
    }

    #[test]
    fn an_older_touch_landing_late_does_not_stretch_a_later_ones_life() {
        let c = TcCache::default();
        let older = writes(c.touch("a", 90));
        let newer = writes(c.touch("a", 100));
        c.touched("a", newer, true);
        let learnt = Instant::now() - TTL / 2;
        c.state().touched.get_mut("a").unwrap().holds = Some((100, learnt));
        c.touched("a", older, true);
        assert_eq!(c.state().touched.get_mut("a").unwrap().holds, Some((100, learnt)));
        // Once that fact expired, the older touch's commit is what is known.
        c.state().touched.get_mut("a").unwrap().holds = Some((100, Instant::now() - TTL));
        let older = writes(c.touch("a", 95));
        c.touched("a", older, true);
        assert!(matches!(c.touch("a", 95), Touch::Held));
        assert!(matches!(c.touch("a", 100), Touch::Write(_)));
    }
}
