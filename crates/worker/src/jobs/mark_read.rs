//! `mark_read`: read receipts (blue ticks) for messages received in a chat, then their
//! wa.inbox rows get read_at. In a group, each author gets the receipts for their own
//! messages, as WhatsApp expects.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Handler, JobCtx, session_error};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::MarkReadArgs;

pub struct MarkRead;

impl Handler for MarkRead {
    type Args = MarkReadArgs;
    async fn run(ctx: &JobCtx<'_>, args: MarkReadArgs) -> Outcome {
        let Some(fence) = ctx.fence() else { return Outcome::fail("mark_read job without session") };
        let client = match ctx.slots.client_for(&fence.session, fence.epoch) {
            Ok(c) => c,
            Err(_) => return Outcome::Release,
        };
        let found = match pgwa_pg::messages::inbox_senders(ctx.pool, &fence.session, &args.chat, &args.message_ids).await {
            Ok(f) => f,
            Err(e) => return Outcome::retry(format!("reading the messages' senders: {e}")),
        };
        // Only a group's receipts name the author; a direct chat's go to the chat.
        let group = args.chat.ends_with("@g.us");
        let mut by_sender: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for (id, sender) in found {
            by_sender.entry(group.then_some(sender)).or_default().push(id);
        }
        let mut sent = 0;
        for (sender, ids) in &by_sender {
            if let Err(e) = client.mark_read(&args.chat, sender.as_deref(), ids).await {
                return session_error(e);
            }
            sent += ids.len();
        }
        let ids: Vec<String> = by_sender.into_values().flatten().collect();
        match pgwa_pg::messages::mark_inbox_read(ctx.pool, &fence, &args.chat, &ids).await {
            Ok(Some(marked)) => Outcome::completed(json!({ "receipts": sent, "marked": marked })),
            // The receipts went out; another worker holds the session now.
            Ok(None) => {
                Outcome::completed(json!({ "receipts": sent, "marked": 0, "note": "lease moved before read_at was set" }))
            }
            Err(e) => Outcome::completed(json!({ "receipts": sent, "marked": 0, "note": format!("read_at not set: {e}") })),
        }
    }
}
