//! `close_session` (the seeds' closeSession): end the socket cleanly, optionally log the
//! device out of the phone, optionally wipe its stored keys; the session then stays
//! stopped (desired = stopped) until wa.start_session. The lease task releases it once
//! this job's completion is recorded.

use std::sync::Arc;

use serde_json::json;

use crate::Shared;
use pgwa_core::job::{ClaimedJob, Outcome};
use pgwa_pg::sessions;

pub async fn run(shared: &Arc<Shared>, job: &ClaimedJob) -> Outcome {
    let (Some(session), Some(epoch)) = (job.session_id.as_deref(), job.epoch) else {
        return Outcome::fail("close_session job without a session");
    };
    let p = &job.payload;
    let logout = p.get("logout").and_then(|v| v.as_bool()).unwrap_or(false);
    let wipe = p.get("wipe").and_then(|v| v.as_bool()).unwrap_or(false);
    let reason = p.get("reason").and_then(|v| v.as_str()).unwrap_or("closed by request").to_owned();
    let Some(fence) = shared.slots.fence(shared.id, session).filter(|f| f.epoch == epoch) else {
        return Outcome::Release;
    };
    // Stop claiming for it first, so no send starts while the socket closes.
    shared.slots.update(session, epoch, |s| s.connected = false);
    if let Ok(client) = shared.slots.client_for(session, epoch)
        && let Err(e) = client.close(logout).await
    {
        if logout {
            return Outcome::retry(format!("logout failed: {e}"));
        }
        tracing::debug!(session, error = %e, "close reported an error; the socket is gone anyway");
    }
    let mut wiped = 0;
    if wipe {
        match pgwa_pg::keys::cleanup::wipe_session_state(&shared.pool, &fence).await {
            Ok(n) => wiped = n,
            Err(e) => return Outcome::retry(format!("wiping stored keys failed: {e}")),
        }
    }
    let reason = if logout { format!("{reason} (logged out)") } else { reason };
    match sessions::set_desired_stopped(&shared.pool, &fence, &reason).await {
        Ok(true) => Outcome::completed(json!({ "closed": true, "logout": logout, "wiped_rows": wiped })),
        Ok(false) => Outcome::Release,
        Err(e) => Outcome::retry(e.to_string()),
    }
}
