//! The worker's own reconnects of a session that went down (whatsapp-rust also retries by
//! itself: see `pgwa_wa::rust` for how the two share the work).

use std::sync::Arc;
use std::time::Duration;

use pgwa_core::backoff::Backoff;

use super::Shared;
use super::slots::Slots;

/// 100-200 ms after the first drop, doubling to 30-60 s: each delay is drawn from the
/// upper half of 200 ms * 2^(n-1) (capped at 60 s), so sessions dropped together (a
/// network blip) do not all reconnect at once.
const BACKOFF: Backoff = Backoff::doubling(Duration::from_millis(200), Duration::from_secs(60)).with_jitter(0.5, 1.0);

/// Reconnects after the backoff of the session's consecutive drops (reset on Connected).
/// `owner` is the worker's shared state (its slots), kept alive by the spawned wait.
pub(super) fn schedule<S>(owner: &Arc<S>, session: &str, epoch: i64)
where
    S: AsRef<Slots> + Send + Sync + 'static,
{
    // A session no longer held at this epoch has nothing to reconnect.
    let Some(delay) = next_delay((**owner).as_ref(), session, epoch) else { return };
    let owner = owner.clone();
    let session = session.to_owned();
    tokio::spawn(async move { reconnect_after((*owner).as_ref(), &session, epoch, delay).await });
}

impl AsRef<Slots> for Shared {
    fn as_ref(&self) -> &Slots {
        &self.slots
    }
}

/// Counts one more drop of the session at `epoch`; the delay before its reconnect.
fn next_delay(slots: &Slots, session: &str, epoch: i64) -> Option<Duration> {
    let mut attempt = 0;
    slots
        .update(session, epoch, |s| {
            s.reconnects += 1;
            attempt = s.reconnects;
        })
        .then(|| BACKOFF.delay(attempt))
}

/// After `delay`, reconnects the session unless it came back or changed hands meanwhile.
async fn reconnect_after(slots: &Slots, session: &str, epoch: i64, delay: Duration) {
    tokio::time::sleep(delay).await;
    let Some(slot) = slots.get(session).filter(|s| s.epoch == epoch && !s.connected) else { return };
    if let Some(client) = slot.client
        && let Err(e) = client.reconnect().await
    {
        metrics::counter!(pgwa_core::metrics::RECONNECTS_FAILED).increment(1);
        tracing::warn!(session = %session, error = %e, "reconnect failed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use pgwa_core::wa::{OutboundMessage, SendAck, SendError, WaSession};
    use tokio::time::Instant;

    use super::*;
    use crate::slots::Slot;

    /// Records when it was asked to reconnect.
    #[derive(Default)]
    struct Client {
        reconnects: Mutex<Vec<Instant>>,
    }

    #[async_trait::async_trait]
    impl WaSession for Client {
        async fn send(&self, _: &OutboundMessage) -> Result<SendAck, SendError> {
            unimplemented!("no sends in these tests")
        }
        async fn reconnect(&self) -> Result<(), pgwa_core::wa::WaError> {
            self.reconnects.lock().unwrap().push(Instant::now());
            Ok(())
        }
        async fn close(&self, _: bool) -> Result<(), pgwa_core::wa::WaError> {
            Ok(())
        }
    }

    fn held(client: &Arc<Client>) -> Slots {
        let slots = Slots::default();
        let mut slot = Slot::new(7, Instant::now() + Duration::from_secs(60));
        slot.client = Some(client.clone());
        slots.insert("s1".into(), slot);
        slots
    }

    #[test]
    fn delays_grow_from_100_200_ms_to_30_60_s_and_reset_on_connected() {
        let slots = held(&Arc::default());
        let ms = Duration::from_millis;
        for n in 1..=14u32 {
            let d = next_delay(&slots, "s1", 7).unwrap();
            let top = ms(100 << n.min(10)).min(ms(60_000));
            assert!(d >= top / 2 && d <= top, "drop {n}: {d:?} outside {:?}..={top:?}", top / 2);
        }
        slots.update("s1", 7, |s| s.reconnects = 0); // what Connected does (events.rs)
        assert!(next_delay(&slots, "s1", 7).unwrap() <= ms(200));
        assert_eq!(next_delay(&slots, "s1", 8), None, "another epoch's drop is not counted");
    }

    #[tokio::test(start_paused = true)]
    async fn reconnects_once_the_delay_has_passed() {
        let client = Arc::new(Client::default());
        let slots = held(&client);
        let start = Instant::now();
        reconnect_after(&slots, "s1", 7, Duration::from_millis(150)).await;
        assert_eq!(*client.reconnects.lock().unwrap(), [start + Duration::from_millis(150)]);
    }

    /// What the event loop calls on a drop: the reconnect runs on its own task once the
    /// first drop's delay (at most 200 ms) has passed, and a drop reported for an epoch
    /// the worker no longer holds schedules nothing.
    #[tokio::test(start_paused = true)]
    async fn a_scheduled_reconnect_runs_on_its_own_after_the_first_delay() {
        let client = Arc::new(Client::default());
        let slots = Arc::new(held(&client));
        let start = Instant::now();
        schedule(&slots, "s1", 7);
        schedule(&slots, "s1", 6);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let at = client.reconnects.lock().unwrap().clone();
        assert_eq!(at.len(), 1, "{at:?}");
        assert!(at[0] >= start + Duration::from_millis(100) && at[0] <= start + Duration::from_millis(200), "{at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_reconnect_for_a_session_that_came_back_or_changed_hands() {
        let client = Arc::new(Client::default());
        let slots = held(&client);
        slots.update("s1", 7, |s| s.connected = true);
        reconnect_after(&slots, "s1", 7, Duration::from_secs(60)).await;
        slots.update("s1", 7, |s| s.connected = false);
        reconnect_after(&slots, "s1", 6, Duration::from_secs(60)).await;
        assert!(client.reconnects.lock().unwrap().is_empty());
    }
}
