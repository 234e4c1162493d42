//! `check_numbers`: ask WhatsApp which numbers have an account, and keep the answers in
//! wa.contacts. Asked in batches, as WhatsApp Web does, so a long list is several
//! queries rather than one the server may refuse.

use serde_json::json;

use super::{Handler, JobCtx, session_error};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::CheckNumbersArgs;

/// Numbers per query.
const BATCH: usize = 50;

pub struct CheckNumbers;

impl Handler for CheckNumbers {
    type Args = CheckNumbersArgs;
    async fn run(ctx: &JobCtx<'_>, args: CheckNumbersArgs) -> Outcome {
        let Some(fence) = ctx.fence() else { return Outcome::fail("check_numbers job without session") };
        let client = match ctx.slots.client_for(&fence.session, fence.epoch) {
            Ok(c) => c,
            Err(_) => return Outcome::Release,
        };
        let mut found = Vec::with_capacity(args.phones.len());
        for batch in args.phones.chunks(BATCH) {
            match client.check_numbers(batch).await {
                Ok(answers) => found.extend(answers.into_iter().filter(|a| batch.contains(&a.phone))),
                Err(e) => return session_error(e),
            }
        }
        match pgwa_pg::contacts::record_checks(ctx.pool, &fence, ctx.job.id, &found).await {
            Ok(true) => {}
            // Another worker holds the session now: it runs the job again.
            Ok(false) => return Outcome::Release,
            Err(e) => return Outcome::retry(format!("storing the answers in wa.contacts: {e}")),
        }
        let on = found.iter().filter(|a| a.on_whatsapp).count();
        let answered: std::collections::HashSet<&str> = found.iter().map(|a| a.phone.as_str()).collect();
        let unanswered: Vec<&String> = args.phones.iter().filter(|p| !answered.contains(p.as_str())).collect();
        Outcome::completed(json!({
            "checked": found.len(),
            "on_whatsapp": on,
            "unanswered": unanswered,
        }))
    }
}
