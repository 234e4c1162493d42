//! The seeds' session policies, with limits from wa.policy and counters in Postgres:
//!
//! * circuit breaker: `connect_failure_limit` failed connection attempts in a row open
//!   the circuit: status failed until now + `circuit_cooldown`, then one more try;
//! * Bad MAC: below `bad_mac_limit`, clear the peer's Signal sessions (key_cleanup
//!   scope peer); at the limit, close the session, wipe its keys, status logged_out;
//! * other decryption failures: below `bad_decrypt_limit`, clear the app-state sync
//!   keys only (scope app_state); at the limit, the same as Bad MAC.
//!
//! Counters reset when the session connects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::slots::Drain;
use pgwa_core::fence::Fence;
use pgwa_core::session::SessionStatus;
use pgwa_pg::sessions;

/// After a failed connection attempt: reconnect with backoff, or open the circuit.
pub async fn connect_failed(shared: &Arc<Shared>, f: &Fence, reason: &str) -> anyhow::Result<bool> {
    pgwa_core::metrics::error("connect");
    shared.slots.update(&f.session, f.epoch, |s| s.connected = false);
    let Some(c) = sessions::count_connect_failure(&shared.pool, f, reason).await? else { return Ok(false) };
    if c.count >= c.limit {
        let until = chrono::Utc::now() + chrono::Duration::milliseconds((c.cooldown_secs * 1000.0) as i64);
        let why = format!("circuit open after {} failed connection attempts (last: {reason}); retrying after {until}", c.count);
        tracing::warn!(session = %f.session, failures = c.count, "circuit open");
        sessions::set_status(&shared.pool, f, SessionStatus::Failed, Some(&why), Some(until)).await?;
        shared.slots.drain(&f.session, Drain::as_written());
        shared.wake_lease.notify_one();
    } else {
        sessions::set_status(&shared.pool, f, SessionStatus::Reconnecting, Some(reason), None).await?;
        super::reconnects::schedule(shared, &f.session, f.epoch);
    }
    Ok(true)
}

/// Opening the connection failed outright: counts toward the circuit breaker; below the
/// limit the session is handed back and claimed again at a later heartbeat.
pub async fn open_failed(shared: &Arc<Shared>, f: &Fence, reason: &str) -> anyhow::Result<()> {
    pgwa_core::metrics::error("connect");
    let Some(c) = sessions::count_connect_failure(&shared.pool, f, reason).await? else { return Ok(()) };
    if c.count >= c.limit {
        let until = chrono::Utc::now() + chrono::Duration::milliseconds((c.cooldown_secs * 1000.0) as i64);
        let why = format!("circuit open after {} failed connection attempts (last: {reason}); retrying after {until}", c.count);
        sessions::set_status(&shared.pool, f, SessionStatus::Failed, Some(&why), Some(until)).await?;
        shared.slots.drain(&f.session, Drain::as_written());
    } else {
        shared.slots.drain(&f.session, Drain::to(SessionStatus::Reconnecting, Some("could not open the connection")));
    }
    shared.wake_lease.notify_one();
    Ok(())
}

/// After an undecryptable inbound message.
pub async fn undecryptable(shared: &Arc<Shared>, f: &Fence, peer: &str, bad_mac: bool) -> anyhow::Result<bool> {
    pgwa_core::metrics::error(if bad_mac { "bad_mac" } else { "bad_decrypt" });
    let Some(c) = sessions::count_decrypt_failure(&shared.pool, f, bad_mac).await? else { return Ok(false) };
    let what = if bad_mac { "Bad MAC" } else { "decryption failure" };
    if throttle(shared, &f.session) {
        tracing::warn!(session = %f.session, count = c.count, limit = c.limit, "{what}");
    }
    if c.count < c.limit {
        let (scope, peer) = if bad_mac { ("peer", Some(peer)) } else { ("app_state", None) };
        sessions::enqueue_key_cleanup(&shared.pool, &f.session, scope, peer).await?;
        return Ok(true);
    }
    // At the limit: the keys are beyond repair. Close, wipe, and ask for a new link.
    let reason = format!("{} {what}s: keys wiped, link the device again", c.count);
    if let Ok(client) = shared.slots.client_for(&f.session, f.epoch) {
        let _ = client.close(false).await;
    }
    shared.slots.update(&f.session, f.epoch, |s| s.connected = false);
    let wiped = pgwa_pg::keys::cleanup::wipe_session_state(&shared.pool, f).await?;
    tracing::warn!(session = %f.session, wiped, "{reason}");
    sessions::set_status(&shared.pool, f, SessionStatus::LoggedOut, Some(&reason), None).await?;
    shared.slots.drain(&f.session, Drain::as_written());
    shared.wake_lease.notify_one();
    Ok(true)
}

/// Repeated decryption errors are logged at most once every 10 s per session, so a
/// storm does not flood the logs (the counters still count every one).
fn throttle(shared: &Shared, session: &str) -> bool {
    let mut last = shared.log_throttle.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    match last.get(session) {
        Some(t) if now.duration_since(*t) < Duration::from_secs(10) => false,
        _ => {
            last.insert(session.to_owned(), now);
            true
        }
    }
}
