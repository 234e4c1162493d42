//! `reconnect`: restart a session's connection now, resetting its backoff.

use std::sync::Arc;

use serde_json::json;

use crate::Shared;
use pgwa_core::job::{ClaimedJob, Outcome};

pub async fn run(shared: &Arc<Shared>, job: &ClaimedJob) -> Outcome {
    let (Some(session), Some(epoch)) = (job.session_id.as_deref(), job.epoch) else {
        return Outcome::fail("reconnect job without a session");
    };
    let client = match shared.slots.client_for(session, epoch) {
        Ok(c) => c,
        Err(why) => return Outcome::retry(why),
    };
    shared.slots.update(session, epoch, |s| {
        s.reconnects = 0;
        s.connected = false;
    });
    match client.reconnect().await {
        Ok(()) => Outcome::completed(json!({ "reconnected": true })),
        Err(e) => Outcome::retry(e.to_string()),
    }
}
