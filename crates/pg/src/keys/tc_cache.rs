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

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashlink::LruCache;
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
}

/// What a read must hand back to [`TcCache::keep`].
pub(crate) struct ReadTicket(u64);

impl Default for TcCache {
    fn default() -> Self {
        Self { state: Mutex::new(State { entries: LruCache::new(CAPACITY), generation: 0 }) }
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
        st.generation += 1;
        match jid {
            Some(jid) => {
                st.entries.remove(jid);
            }
            None => st.entries.clear(),
        }
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
}
