//! The worker's own reconnects of a session that went down (whatsapp-rust also retries by
//! itself: see `pgwa_wa::rust` for how the two share the work).

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::Shared;

/// Reconnects after a capped, jittered exponential backoff (100 ms doubling to 60 s).
pub(super) fn schedule(shared: &Arc<Shared>, session: &str, epoch: i64) {
    let mut attempt = 0;
    shared.slots.update(session, epoch, |s| {
        s.reconnects += 1;
        attempt = s.reconnects;
    });
    let base = 100u64.saturating_mul(1 << attempt.min(10)).min(60_000);
    let delay = Duration::from_millis(rand::rng().random_range(base / 2..=base));
    let shared = shared.clone();
    let session = session.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let Some(slot) = shared.slots.get(&session).filter(|s| s.epoch == epoch && !s.connected) else { return };
        if let Some(client) = slot.client
            && let Err(e) = client.reconnect().await
        {
            metrics::counter!(pgwa_core::metrics::RECONNECTS_FAILED).increment(1);
            tracing::warn!(session = %session, error = %e, "reconnect failed");
        }
    });
}
