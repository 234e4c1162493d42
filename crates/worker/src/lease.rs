//! The lease task: heartbeat, renew, converge on the desired state, take a fair share of
//! the sessions that should run, and release everything on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Shared;
use super::slots::{Drain, Slot};
use pgwa_core::fence::Fence;
use pgwa_core::session::{Desired, SessionStatus};
use pgwa_core::wa::{EventSink, SessionSpec};
use pgwa_pg::leases::{self, Held};

pub async fn run(shared: Arc<Shared>, events: EventSink) {
    let (opener_tx, opener_rx) = mpsc::unbounded_channel();
    let opener = tokio::spawn(run_opener(shared.clone(), opener_rx, events));
    let every = Duration::from_millis(shared.cfg.worker.heartbeat_ms);
    let mut ticks: u64 = 0;
    loop {
        if let Err(e) = tick(&shared, &opener_tx, ticks).await {
            tracing::warn!(error = %e, "lease tick failed; retrying at the next heartbeat");
        }
        ticks += 1;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shared.wake_lease.notified() => {}
            _ = shared.release_leases.cancelled() => break,
        }
    }
    opener.abort();
    release_all(&shared).await;
}

async fn tick(shared: &Arc<Shared>, opener: &mpsc::UnboundedSender<Held>, ticks: u64) -> anyhow::Result<()> {
    let pool = &shared.pool;
    let ttl = shared.lease_ttl_secs();
    if !pgwa_pg::workers::heartbeat(pool, shared.id).await? {
        tracing::warn!(worker = %shared.id, "worker row was reaped while paused; registering again");
        pgwa_pg::workers::register(pool, &shared.registration).await?;
    }
    let renewed_at = Instant::now();
    let held: HashMap<String, Held> = leases::renew(pool, shared.id, ttl).await?.into_iter().map(|h| (h.id.clone(), h)).collect();
    let deadline = renewed_at + Duration::from_millis(shared.cfg.worker.lease_ttl_ms);

    // Lost: taken over after a pause, or deleted. Stop before anything else is written.
    for id in shared.slots.ids() {
        let still = held.get(&id).map(|h| h.epoch);
        let local = shared.slots.get(&id).map(|s| s.epoch);
        if still != local {
            tracing::warn!(session = %id, "lease lost; dropping the session");
            if let Some(slot) = shared.slots.remove(&id) {
                close_quietly(slot, false).await;
            }
        }
    }
    let stopping = shared.stopping.is_cancelled();
    for h in held.values() {
        let renewed = shared.slots.update(&h.id, h.epoch, |s| s.lease_deadline = deadline);
        if h.desired == Desired::Stopped {
            if renewed {
                shared.slots.drain(&h.id, Drain::to(SessionStatus::Stopped, None));
            } else {
                stop(shared, &h.id, h.epoch, Some(SessionStatus::Stopped), None).await;
            }
        } else if !renewed && !stopping {
            open(shared, h, deadline, opener).await;
        } else if renewed && relink_asked(shared, h) {
            // Linking switched between QR and pairing code (the connect page, or an app
            // setting pair_phone): whatsapp-rust takes that at build time, so the
            // session is handed back and claimed again with the new number.
            shared.slots.drain(&h.id, Drain::to(SessionStatus::Reconnecting, Some("linking by another method")));
        }
    }
    for id in shared.slots.ids() {
        let Some(slot) = shared.slots.get(&id) else { continue };
        if let Some(d) = &slot.draining
            && !slot.busy()
        {
            stop(shared, &id, slot.epoch, d.status, d.reason).await;
        }
    }
    if stopping {
        return Ok(());
    }

    let (wanted, live) = leases::fair_share(pool, ttl).await?;
    let share = (wanted + live - 1) / live;
    let target = share.min(shared.cfg.worker.max_sessions as i64);
    let holding = shared.slots.len() as i64;
    if holding < target {
        let claimed = leases::claim(pool, shared.id, ttl, target - holding).await?;
        if !claimed.is_empty() {
            tracing::info!(count = claimed.len(), sessions = %id_list(claimed.iter().map(|h| h.id.as_str())), "claimed sessions");
        }
        for h in &claimed {
            open(shared, h, deadline, opener).await;
        }
    } else if holding > target + 1 {
        shed(shared, (holding - target) as usize);
    }
    if ticks.is_multiple_of(10) {
        pgwa_pg::jobs::recover_orphaned_sessionless(pool, ttl).await?;
    }
    Ok(())
}

/// Takes the session into this worker and queues its connection. Connections are opened
/// by the opener at `worker.connect_per_sec`, so a restart with 1,000 sessions does not
/// stampede the WhatsApp servers (or the loopback one).
async fn open(shared: &Arc<Shared>, h: &Held, deadline: Instant, opener: &mpsc::UnboundedSender<Held>) {
    let mut slot = Slot::new(h.epoch, deadline);
    slot.pair_phone = h.pair_phone.clone();
    if shared.cfg.pacing.enabled {
        slot.pacing = Some(Arc::new(super::pacing::Pacing::new(&shared.cfg.pacing)));
    }
    shared.slots.insert(h.id.clone(), slot);
    let _ = opener.send(h.clone());
}

/// The session is not linked yet and its pair_phone changed since it was opened.
fn relink_asked(shared: &Shared, h: &Held) -> bool {
    shared.slots.get(&h.id).is_some_and(|s| !s.connected && s.draining.is_none() && s.pair_phone != h.pair_phone)
}

/// Opens queued sessions one after the other, at most `worker.connect_per_sec`.
pub async fn run_opener(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Held>, events: EventSink) {
    let gap = Duration::from_secs_f64(1.0 / shared.cfg.worker.connect_per_sec.max(1) as f64);
    let mut next = Instant::now();
    while let Some(h) = queue.recv().await {
        if shared.slots.get(&h.id).is_none_or(|s| s.epoch != h.epoch || s.client.is_some()) {
            continue; // lost or stopped while queued
        }
        tokio::time::sleep_until(next).await;
        next = Instant::now() + gap;
        let spec = SessionSpec { id: h.id.clone(), epoch: h.epoch, worker_id: shared.id, pair_phone: h.pair_phone.clone() };
        match shared.wa.open(spec, events.clone()).await {
            Ok(client) => {
                shared.slots.update(&h.id, h.epoch, |s| s.client = Some(client));
            }
            Err(e) => {
                tracing::warn!(session = %h.id, error = %e, "could not open the session");
                let fence = Fence { worker: shared.id, session: h.id.clone(), epoch: h.epoch };
                if let Err(e) = super::policy::open_failed(&shared, &fence, &e.to_string()).await {
                    tracing::warn!(session = %h.id, error = %e, "recording the failure failed");
                }
            }
        }
    }
}

/// Hands back sessions above the fair share, the ones with the least work first; they
/// are released once their running jobs are done.
fn shed(shared: &Arc<Shared>, count: usize) {
    let mut ids = shared.slots.ids();
    ids.sort();
    let shed: Vec<String> = ids.into_iter().rev().take(count).collect();
    for id in &shed {
        shared.slots.drain(id, Drain::to(SessionStatus::Reconnecting, Some("handed over to another worker")));
    }
    tracing::info!(count, sessions = %id_list(shed.iter().map(String::as_str)), "shedding sessions above the fair share");
}

/// Session ids for a log line: the first 20, then how many more.
fn id_list<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 20;
    let total = ids.len();
    let mut out: Vec<&str> = ids.take(SHOWN).collect();
    let more = total.saturating_sub(SHOWN);
    let more = (more > 0).then(|| format!("+{more} more"));
    out.extend(more.as_deref());
    out.join(",")
}

/// Closes the connection (no logout) and releases the lease with the given status.
pub(super) async fn stop(shared: &Arc<Shared>, id: &str, epoch: i64, status: Option<SessionStatus>, reason: Option<&str>) {
    if let Some(slot) = shared.slots.remove(id) {
        close_quietly(slot, false).await;
    }
    match leases::release(&shared.pool, shared.id, id, epoch, status, reason).await {
        Ok(true) => {
            tracing::info!(session = %id, status = status.map_or("as written", SessionStatus::as_str), "released session")
        }
        Ok(false) => tracing::debug!(session = %id, "session was no longer ours to release"),
        Err(e) => tracing::warn!(session = %id, error = %e, "release failed; the lease will expire"),
    }
}

async fn close_quietly(slot: Slot, logout: bool) {
    if let Some(client) = slot.client
        && let Err(e) = client.close(logout).await
    {
        tracing::debug!(error = %e, "close failed");
    }
}

async fn release_all(shared: &Arc<Shared>) {
    let ids = shared.slots.ids();
    let n = ids.len();
    for id in ids {
        if let Some(slot) = shared.slots.get(&id) {
            stop(shared, &id, slot.epoch, Some(SessionStatus::Reconnecting), Some("worker shut down; another worker takes over"))
                .await;
        }
    }
    tracing::info!(count = n, "released all sessions");
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_lists_stay_short() {
        assert_eq!(super::id_list(["a", "b"].into_iter()), "a,b");
        let many: Vec<String> = (0..25).map(|i| format!("s{i}")).collect();
        let line = super::id_list(many.iter().map(String::as_str));
        assert!(line.starts_with("s0,s1,") && line.ends_with(",s19,+5 more"), "{line}");
    }
}
