//! The sessions this worker holds, with their open connection and local state.

use foldhash::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::time::Instant;

use pgwa_core::fence::Fence;
use pgwa_core::session::SessionStatus;
use pgwa_core::wa::WaSession;

#[derive(Clone)]
pub struct Slot {
    pub epoch: i64,
    pub client: Option<Arc<dyn WaSession>>,
    pub connected: bool,
    /// Being handed back (rebalancing or stop), with the status to leave it in: no new
    /// jobs are claimed for it, and it is released once its running jobs are recorded.
    pub draining: Option<Drain>,
    /// Jobs of this session claimed and not yet recorded.
    pub jobs: Arc<InFlight>,
    /// Local view of the lease: no send starts after this instant unless renewed.
    pub lease_deadline: Instant,
    /// Consecutive reconnect attempts since the last Connected, for backoff.
    pub reconnects: u32,
    /// Outbound pacing of this session (None when pacing is off).
    pub pacing: Option<Arc<super::pacing::Pacing>>,
    /// The number the connection was opened to link by pairing code (None: QR codes).
    pub pair_phone: Option<String>,
}

/// How a draining session is given up.
#[derive(Clone, Debug)]
pub struct Drain {
    /// The status the release writes; None when the worker already wrote it under the
    /// fence (a terminal status): the release then keeps whatever the row says by then,
    /// so a `wa.start_session` called in between is not undone.
    pub status: Option<SessionStatus>,
    pub reason: Option<&'static str>,
}

impl Drain {
    pub fn to(status: SessionStatus, reason: Option<&'static str>) -> Self {
        Self { status: Some(status), reason }
    }

    /// The status is already written.
    pub fn as_written() -> Self {
        Self { status: None, reason: None }
    }
}

impl Slot {
    pub fn new(epoch: i64, lease_deadline: Instant) -> Self {
        Self {
            epoch,
            client: None,
            connected: false,
            draining: None,
            jobs: Arc::default(),
            lease_deadline,
            reconnects: 0,
            pacing: None,
            pair_phone: None,
        }
    }

    pub fn busy(&self) -> bool {
        self.jobs.count() > 0
    }
}

/// A session's jobs claimed and not yet recorded, and whether a claim looked at the
/// session meanwhile. Such a claim may have passed over a send queued behind one of them
/// (per-chat FIFO), so the session is claimed again, but only once a chat has none of
/// its jobs left in flight: until then its next send is held back by the ones still
/// running, and a claim would find nothing. Claiming again after every recorded batch,
/// as before, made most claims of a busy session empty ones that still read its
/// candidates (2.7 ms for 0 jobs at 1,000 candidates: BENCHMARKS.md).
#[derive(Default)]
pub struct InFlight {
    jobs: AtomicUsize,
    overlapped: AtomicBool,
    /// Jobs in flight per chat (jobs without a chat hold nothing back).
    chats: Mutex<HashMap<String, usize>>,
}

impl InFlight {
    pub fn count(&self) -> usize {
        self.jobs.load(Ordering::SeqCst)
    }

    fn chats(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.chats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Jobs of these chats (None: no chat) were claimed.
    pub fn claimed<'a>(&self, chats: impl IntoIterator<Item = Option<&'a str>>) {
        let mut map = self.chats();
        for chat in chats {
            self.jobs.fetch_add(1, Ordering::SeqCst);
            // A chat already in flight is counted without allocating its name again.
            if let Some(c) = chat {
                match map.get_mut(c) {
                    Some(n) => *n += 1,
                    None => {
                        map.insert(c.to_owned(), 1);
                    }
                }
            }
        }
    }

    /// Called before each claim that covers the session. (Called after, it would miss a
    /// job recorded while the claim ran.)
    pub fn claiming(&self) {
        if self.count() > 0 {
            self.overlapped.store(true, Ordering::SeqCst);
        }
    }

    /// The outcomes of jobs of these chats are committed; true when the session must be
    /// claimed again: a claim looked at it meanwhile and a chat has no job left in flight.
    pub fn recorded<'a>(&self, chats: impl IntoIterator<Item = Option<&'a str>>) -> bool {
        let mut map = self.chats();
        let mut drained = false;
        for chat in chats {
            // Saturating: a session re-leased while its old jobs ran has a fresh count.
            let _ = self.jobs.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |j| Some(j.saturating_sub(1)));
            if let Some(c) = chat
                && let Some(n) = map.get_mut(c)
            {
                *n -= 1;
                if *n == 0 {
                    map.remove(c);
                    drained = true;
                }
            }
        }
        drained && self.overlapped.swap(false, Ordering::SeqCst)
    }
}

#[derive(Default)]
pub struct Slots {
    inner: Mutex<HashMap<String, Slot>>,
}

impl AsRef<Slots> for Slots {
    fn as_ref(&self) -> &Slots {
        self
    }
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, id: String, slot: Slot) {
        self.lock().insert(id, slot);
    }

    pub fn remove(&self, id: &str) -> Option<Slot> {
        self.lock().remove(id)
    }

    pub fn get(&self, id: &str) -> Option<Slot> {
        self.lock().get(id).cloned()
    }

    /// Applies `f` to the slot if it is still at `epoch`; returns whether it was.
    /// Stops claiming for the session; the lease task releases it once its jobs are
    /// recorded. A session already draining keeps its first reason.
    pub fn drain(&self, id: &str, how: Drain) {
        if let Some(slot) = self.get(id)
            && slot.draining.is_none()
        {
            self.update(id, slot.epoch, |s| s.draining = Some(how));
        }
    }

    pub fn update(&self, id: &str, epoch: i64, f: impl FnOnce(&mut Slot)) -> bool {
        match self.lock().get_mut(id) {
            Some(slot) if slot.epoch == epoch => {
                f(slot);
                true
            }
            _ => false,
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn connected_count(&self) -> usize {
        self.lock().values().filter(|s| s.connected).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (sessions to claim control jobs for, sessions to claim sends for).
    pub fn claimable(&self) -> (Vec<String>, Vec<String>) {
        let now = Instant::now();
        let map = self.lock();
        let mut held = Vec::with_capacity(map.len());
        let mut connected = Vec::new();
        for (id, s) in map.iter().filter(|(_, s)| s.draining.is_none() && s.lease_deadline > now) {
            held.push(id.clone());
            if s.connected && s.client.is_some() {
                connected.push(id.clone());
            }
        }
        (held, connected)
    }

    /// A claim is about to look at these sessions (see `InFlight::claiming`).
    pub fn claiming(&self, ids: &[String]) {
        let map = self.lock();
        for s in ids.iter().filter_map(|id| map.get(id)) {
            s.jobs.claiming();
        }
    }

    /// The client to use for a job claimed at `epoch`, if the lease is still ours and live.
    pub fn client_for(&self, id: &str, epoch: i64) -> Result<Arc<dyn WaSession>, &'static str> {
        let map = self.lock();
        match map.get(id) {
            None => Err("session is no longer held by this worker"),
            Some(s) if s.epoch != epoch => Err("session changed hands since the job was claimed"),
            Some(s) if s.lease_deadline <= Instant::now() => Err("lease not renewed in time"),
            Some(s) => s.client.clone().ok_or("session has no open connection"),
        }
    }

    /// A session's jobs in flight, for the dispatcher and the completer.
    pub fn in_flight(&self, id: &str) -> Option<Arc<InFlight>> {
        self.lock().get(id).map(|s| s.jobs.clone())
    }

    pub fn pacing(&self, id: &str) -> Option<Arc<super::pacing::Pacing>> {
        self.lock().get(id).and_then(|s| s.pacing.clone())
    }

    pub fn fence(&self, worker: uuid::Uuid, id: &str) -> Option<Fence> {
        self.lock().get(id).map(|s| Fence { worker, session: id.to_owned(), epoch: s.epoch })
    }
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    #[test]
    fn a_session_is_claimed_again_once_a_chat_it_held_back_has_nothing_in_flight() {
        let f = InFlight::default();
        f.claimed([Some("x"), Some("x"), Some("x"), Some("y"), None]);
        assert!(!f.recorded([Some("x")]), "no claim looked at the session meanwhile");
        f.claiming(); // a claim passed over the chats' later sends
        assert!(!f.recorded([Some("x"), None]), "x still has a send in flight: its next one is held back");
        assert!(f.recorded([Some("x")]), "x has nothing in flight: its next send can go");
        assert!(!f.recorded([Some("y")]), "the claim that was due has been asked for");
        assert_eq!(f.count(), 0);

        f.claimed([Some("x")]);
        f.claiming();
        assert!(f.recorded([Some("x"), Some("x")]), "a count never goes below zero, and x drained");
        assert_eq!(f.count(), 0);
    }
}
