//! `presence`: show a chat that this number is typing, recording or has stopped. A chat
//! state is about now: one that could not go out before its expiry is dropped, not shown
//! late.

use serde_json::json;

use super::{Handler, JobCtx, session_error};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::PresenceArgs;

pub struct Presence;

impl Handler for Presence {
    type Args = PresenceArgs;
    async fn run(ctx: &JobCtx<'_>, args: PresenceArgs) -> Outcome {
        let Some((session, epoch)) = ctx.session() else { return Outcome::fail("presence job without session") };
        if chrono::Utc::now() > args.expires_at {
            return Outcome::completed(json!({ "shown": false, "reason": "expired before the session could show it" }));
        }
        let client = match ctx.slots.client_for(session, epoch) {
            Ok(c) => c,
            Err(_) => return Outcome::Release,
        };
        match client.chat_state(&args.chat, args.state).await {
            Ok(()) => Outcome::completed(json!({ "shown": true })),
            Err(e) => session_error(e),
        }
    }
}
