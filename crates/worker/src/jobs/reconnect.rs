//! `reconnect`: restart a session's connection now, resetting its backoff.

use serde_json::json;

use super::{Handler, JobCtx};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::ReconnectArgs;

pub struct Reconnect;

impl Handler for Reconnect {
    type Args = ReconnectArgs;
    async fn run(ctx: &JobCtx<'_>, _: ReconnectArgs) -> Outcome {
        reconnect(ctx).await
    }
}

async fn reconnect(ctx: &JobCtx<'_>) -> Outcome {
    let Some((session, epoch)) = ctx.session() else {
        return Outcome::fail("reconnect job without a session");
    };
    let client = match ctx.slots.client_for(session, epoch) {
        Ok(c) => c,
        Err(why) => return Outcome::retry(why),
    };
    ctx.slots.update(session, epoch, |s| {
        s.reconnects = 0;
        s.connected = false;
    });
    match client.reconnect().await {
        Ok(()) => Outcome::completed(json!({ "reconnected": true })),
        Err(e) => Outcome::retry(e.to_string()),
    }
}
