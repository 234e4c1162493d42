//! Key cleanup on a live session (the worker's key_cleanup scopes). whatsapp-rust keeps
//! Signal sessions in a write-back cache, so deleting their rows behind a running client
//! is undone at its next flush; these go through the client instead.
//!
//! How the worker should run each scope while the session is open here:
//! * `peer`: `delete_peer_sessions(peer)`, then `store::cleanup::clear_peer_sessions`
//!   for the rows the client does not own (retry base keys, sender-key tracking);
//! * `app_state`: `clear_app_state_keys()` (SQL delete, then an immediate reconnect so
//!   the client drops its expanded-key cache and asks the phone again);
//! * `all`: `close(false)` first (the client saves its device document on the way out;
//!   a wipe before that would be re-written), then `store::cleanup::wipe_session_state`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use whatsapp_rust::{Client, Jid};

use super::RustSession;
use pgwa_core::wa::WaError;

impl RustSession {
    async fn client(&self) -> Result<Arc<Client>, WaError> {
        let guard = self.conn.lock().await;
        guard.as_ref().map(|c| c.client.clone()).ok_or_else(|| WaError::Closed(self.id().to_owned()))
    }

    /// Deletes the Signal sessions (and identities) of every device of `peer`, under its
    /// phone number and its LID, in the client's cache and in Postgres. Returns the
    /// device addresses cleared. The peer's next message builds a fresh session.
    pub async fn delete_peer_sessions(&self, peer: &str) -> Result<usize, WaError> {
        let client = self.client().await?;
        let given: Jid = peer.parse().map_err(|e| WaError::Invalid(format!("peer {peer:?} is not a JID: {e}")))?;
        let user = given.to_non_ad();
        let mut devices = match client.signal().get_user_devices(std::slice::from_ref(&user)).await {
            Ok(d) => d,
            Err(e) => {
                // Offline or unknown: the addresses we know of still get cleared.
                tracing::debug!(session = %self.id(), error = %e, "device list unavailable for key cleanup");
                Vec::new()
            }
        };
        for j in [user, given] {
            if !devices.contains(&j) {
                devices.push(j);
            }
        }
        client
            .signal()
            .delete_sessions(&devices)
            .await
            .map_err(|e| WaError::Client(format!("deleting Signal sessions of {peer}: {e}")))?;
        Ok(devices.len())
    }

    /// Deletes the app-state sync keys, then reconnects at once when connected so the
    /// client forgets its expanded copies; missing keys are requested from the phone.
    pub async fn clear_app_state_keys(&self) -> Result<u64, WaError> {
        let n = pgwa_pg::keys::cleanup::clear_app_state_keys(&self.ctx.pool, &self.ctx.spec.fence())
            .await
            .map_err(|e| WaError::Store(e.to_string()))?;
        let guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| c.flags.up.load(Ordering::SeqCst)) {
            c.client.reconnect_immediately().await;
        }
        Ok(n)
    }
}
