//! `key_cleanup`: targeted removal of a session's stored keys, the seeds' recovery steps:
//! `app_state` (app-state sync keys only; first step on bad decrypt), `peer` (one peer's
//! Signal sessions; first step on Bad MAC), `all` (everything, e.g. after a logout).

use std::sync::Arc;

use serde_json::json;

use super::{ClaimedJob, Outcome};
use crate::store::cleanup;
use crate::worker::Shared;

pub async fn run(shared: &Arc<Shared>, job: &ClaimedJob) -> Outcome {
    let (Some(session), Some(epoch)) = (job.session_id.as_deref(), job.epoch) else {
        return Outcome::fail("key_cleanup job without a session");
    };
    if shared.slots.client_for(session, epoch).is_err() && shared.slots.get(session).map(|s| s.epoch) != Some(epoch) {
        return Outcome::Release;
    }
    let pool = &shared.pool;
    let scope = job.payload.get("scope").and_then(|v| v.as_str()).unwrap_or("app_state");
    let removed = match scope {
        "app_state" => cleanup::clear_app_state_keys(pool, session).await,
        "peer" => match job.payload.get("peer").and_then(|v| v.as_str()) {
            Some(peer) => cleanup::clear_peer_sessions(pool, session, peer).await,
            None => return Outcome::fail("payload.peer: missing for scope peer"),
        },
        "all" => cleanup::wipe_session_state(pool, session).await,
        other => return Outcome::fail(format!("payload.scope: unknown scope {other:?}")),
    };
    match removed {
        Ok(n) => Outcome::completed(json!({ "scope": scope, "removed_rows": n })),
        Err(e) => Outcome::retry(e.to_string()),
    }
}
