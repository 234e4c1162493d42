//! `send`: deliver an outbound message. The message id was fixed at enqueue, so a retry
//! re-sends the same id and the server sees one message. The job completes on the server
//! ack; a refusal from the server fails it for good with the reason kept.

use std::time::Duration;

use serde_json::json;

use super::{Handler, JobCtx};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::SendArgs;
use pgwa_core::wa::{ChatState, OutboundMessage, WaSession};

/// A send that has no server ack after this long is retried (same message id).
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Send;

impl Handler for Send {
    type Args = SendArgs;
    async fn run(ctx: &JobCtx<'_>, args: SendArgs) -> Outcome {
        send(ctx, args).await
    }
}

async fn send(ctx: &JobCtx<'_>, SendArgs(payload): SendArgs) -> Outcome {
    let job = ctx.job;
    let (Some(session), Some(epoch), Some(chat), Some(message_id)) =
        (job.session_id.as_deref(), job.epoch, job.chat.clone(), job.message_id.clone())
    else {
        return Outcome::fail("send job without session, chat or message id");
    };
    let client = match ctx.slots.client_for(session, epoch) {
        Ok(c) => c,
        // The session went away under us: leave the job to whoever holds it next.
        Err(_) => return Outcome::Release,
    };
    if let Some(pacing) = ctx.slots.pacing(session) {
        let waited = pacing.wait(&chat).await;
        if waited >= std::time::Duration::from_secs(1) {
            // A send held this long looks like a stuck queue from outside; say why.
            tracing::info!(session, job = job.id, waited_ms = waited.as_millis() as u64, "pacing held the send");
        }
        if let Some((state, lasts)) = pacing.typing(&payload) {
            type_before_sending(&*client, &chat, state, lasts).await;
        }
        // The lease may have moved while we waited.
        if ctx.slots.client_for(session, epoch).is_err() {
            return Outcome::Release;
        }
    }
    let msg = OutboundMessage { job_id: job.id, message_id, chat, payload, attempt: job.attempts };
    match tokio::time::timeout(ACK_TIMEOUT, client.send(&msg)).await {
        Ok(Ok(ack)) => {
            Outcome::Completed { result: json!({ "message_id": ack.message_id, "acked_at": ack.at }), acked_at: Some(ack.at) }
        }
        Ok(Err(e)) => super::session_error(e),
        Err(_) => Outcome::retry(format!("no server ack within {} s", ACK_TIMEOUT.as_secs())),
    }
}

/// Shows the chat "typing..." (or "recording...") for `lasts`, then "paused", as a person
/// would before sending. A hint only: if WhatsApp does not take it, the send still goes.
async fn type_before_sending(client: &dyn WaSession, chat: &str, state: ChatState, lasts: Duration) {
    if let Err(e) = client.chat_state(chat, state).await {
        tracing::debug!(chat, error = %e, "typing indicator not sent");
        return;
    }
    tokio::time::sleep(lasts).await;
    if let Err(e) = client.chat_state(chat, ChatState::Paused).await {
        tracing::debug!(chat, error = %e, "typing indicator not cleared");
    }
}
