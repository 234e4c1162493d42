//! `key_cleanup`: targeted removal of a session's stored keys, the seeds' recovery steps:
//! `app_state` (app-state sync keys only; first step on bad decrypt), `peer` (one peer's
//! Signal sessions; first step on Bad MAC), `all` (everything, e.g. after a logout).
//! Fenced: a worker that lost the session's lease deletes nothing.

use std::sync::Arc;

use serde_json::json;

use crate::Shared;
use pgwa_core::fence::Fence;
use pgwa_core::job::CleanupScope;
use pgwa_core::job::{ClaimedJob, Outcome};
use pgwa_core::session::SessionStatus;
use pgwa_pg::keys::cleanup::run_cleanup;

pub async fn run(shared: &Arc<Shared>, job: &ClaimedJob) -> Outcome {
    let (Some(session), Some(epoch)) = (job.session_id.as_deref(), job.epoch) else {
        return Outcome::fail("key_cleanup job without a session");
    };
    let scope_name = job.payload.get("scope").and_then(|v| v.as_str()).unwrap_or("app_state");
    let scope = match scope_name {
        "app_state" => CleanupScope::AppStateKeys,
        "peer" => match job.payload.get("peer").and_then(|v| v.as_str()) {
            Some(peer) => CleanupScope::Peer { jid: peer.to_owned() },
            None => return Outcome::fail("payload.peer: missing for scope peer"),
        },
        "all" => CleanupScope::All,
        other => return Outcome::fail(format!("payload.scope: unknown scope {other:?}")),
    };
    let client = shared.slots.client_for(session, epoch).ok();
    let mut via_client = 0;
    if let Some(client) = &client {
        if matches!(scope, CleanupScope::All) {
            // Close first: a live client would write its in-memory keys back.
            shared.slots.update(session, epoch, |s| s.connected = false);
            let _ = client.close(false).await;
        } else {
            match client.clear_keys(&scope).await {
                Ok(n) => via_client = n.unwrap_or(0),
                Err(e) => return Outcome::retry(format!("clearing keys through the connection failed: {e}")),
            }
        }
    }
    let fence = Fence { worker: shared.id, session: session.to_owned(), epoch };
    let result = run_cleanup(&shared.pool, &fence, &scope).await;
    if matches!(scope, CleanupScope::All) && result.is_ok() {
        // No keys left: the device must be linked again.
        let _ = pgwa_pg::sessions::set_status(
            &shared.pool,
            &fence,
            SessionStatus::LoggedOut,
            Some("keys wiped by key_cleanup (scope all)"),
            None,
        )
        .await;
        crate::drain_session(shared, session);
    }
    match result {
        Ok(n) => Outcome::completed(json!({ "scope": scope_name, "removed_rows": n + via_client })),
        Err(e) if e.chain().any(|c| c.is::<pgwa_core::fence::LeaseLost>()) => Outcome::Release,
        Err(e) => Outcome::retry(e.to_string()),
    }
}
