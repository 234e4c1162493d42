//! `key_cleanup`: targeted removal of a session's stored keys, the seeds' recovery steps:
//! `app_state` (app-state sync keys only; first step on bad decrypt), `peer` (one peer's
//! Signal sessions; first step on Bad MAC), `all` (everything, e.g. after a logout).
//! Fenced: a worker that lost the session's lease deletes nothing.

use serde_json::json;

use super::{Handler, JobCtx};
use pgwa_core::job::args::KeyCleanupArgs;
use pgwa_core::job::{CleanupScope, Outcome};
use pgwa_core::session::SessionStatus;
use pgwa_pg::keys::cleanup::run_cleanup;

pub struct KeyCleanup;

impl Handler for KeyCleanup {
    type Args = KeyCleanupArgs;
    async fn run(ctx: &JobCtx<'_>, args: KeyCleanupArgs) -> Outcome {
        clean(ctx, args).await
    }
}

async fn clean(ctx: &JobCtx<'_>, KeyCleanupArgs { scope, scope_name }: KeyCleanupArgs) -> Outcome {
    let (Some((session, epoch)), Some(fence)) = (ctx.session(), ctx.fence()) else {
        return Outcome::fail("key_cleanup job without a session");
    };
    let client = ctx.slots.client_for(session, epoch).ok();
    let mut via_client = 0;
    if let Some(client) = &client {
        if matches!(scope, CleanupScope::All) {
            // Close first: a live client would write its in-memory keys back.
            ctx.slots.update(session, epoch, |s| s.connected = false);
            let _ = client.close(false).await;
        } else {
            match client.clear_keys(&scope).await {
                Ok(n) => via_client = n.unwrap_or(0),
                Err(e) => return Outcome::retry(format!("clearing keys through the connection failed: {e}")),
            }
        }
    }
    let result = run_cleanup(ctx.pool, &fence, &scope).await;
    if matches!(scope, CleanupScope::All) && result.is_ok() {
        // No keys left: the device must be linked again.
        let _ = pgwa_pg::sessions::set_status(
            ctx.pool,
            &fence,
            SessionStatus::LoggedOut,
            Some("keys wiped by key_cleanup (scope all)"),
            None,
        )
        .await;
        ctx.end_session(session);
    }
    match result {
        Ok(n) => Outcome::completed(json!({ "scope": scope_name, "removed_rows": n + via_client })),
        Err(e) if e.chain().any(|c| c.is::<pgwa_core::fence::LeaseLost>()) => Outcome::Release,
        Err(e) => Outcome::retry(e.to_string()),
    }
}
