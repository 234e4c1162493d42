//! `close_session` (the seeds' closeSession): end the socket cleanly, optionally log the
//! device out of the phone, optionally wipe its stored keys; the session then stays
//! stopped (desired = stopped) until wa.start_session. The lease task releases it once
//! this job's completion is recorded.

use serde_json::json;

use super::{Handler, JobCtx};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::CloseSessionArgs;
use pgwa_pg::sessions;

pub struct CloseSession;

impl Handler for CloseSession {
    type Args = CloseSessionArgs;
    async fn run(ctx: &JobCtx<'_>, args: CloseSessionArgs) -> Outcome {
        close(ctx, args).await
    }
}

async fn close(ctx: &JobCtx<'_>, CloseSessionArgs { logout, wipe, reason }: CloseSessionArgs) -> Outcome {
    let Some((session, epoch)) = ctx.session() else {
        return Outcome::fail("close_session job without a session");
    };
    let Some(fence) = ctx.slots.fence(ctx.worker, session).filter(|f| f.epoch == epoch) else {
        return Outcome::Release;
    };
    // Stop claiming for it first, so no send starts while the socket closes.
    ctx.slots.update(session, epoch, |s| s.connected = false);
    if let Ok(client) = ctx.slots.client_for(session, epoch)
        && let Err(e) = client.close(logout).await
    {
        if logout {
            return Outcome::retry(format!("logout failed: {e}"));
        }
        tracing::debug!(session, error = %e, "close reported an error; the socket is gone anyway");
    }
    let mut wiped = 0;
    if wipe {
        match pgwa_pg::keys::cleanup::wipe_session_state(ctx.pool, &fence).await {
            Ok(n) => wiped = n,
            Err(e) => return Outcome::retry(format!("wiping stored keys failed: {e}")),
        }
    }
    let reason = if logout { format!("{reason} (logged out)") } else { reason };
    match sessions::set_desired_stopped(ctx.pool, &fence, &reason).await {
        Ok(true) => Outcome::completed(json!({ "closed": true, "logout": logout, "wiped_rows": wiped })),
        Ok(false) => Outcome::Release,
        Err(e) => Outcome::retry(e.to_string()),
    }
}
