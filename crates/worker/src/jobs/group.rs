//! `group`: create a group, change its members, fetch its invite link, or leave it.
//! After each, the group as the server now describes it goes to wa.groups, and the
//! job's result says what happened to each participant.

use serde_json::{Value, json};

use super::{Handler, JobCtx, session_error};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::GroupArgs;
use pgwa_core::wa::{GroupInfo, MemberChange, MemberResult, SendError, WaSession};

pub struct Group;

impl Handler for Group {
    type Args = GroupArgs;
    async fn run(ctx: &JobCtx<'_>, args: GroupArgs) -> Outcome {
        let Some(fence) = ctx.fence() else { return Outcome::fail("group job without session") };
        let client = match ctx.slots.client_for(&fence.session, fence.epoch) {
            Ok(c) => c,
            Err(_) => return Outcome::Release,
        };
        let (info, link, result) = match act(client.as_ref(), &args).await {
            Ok(done) => done,
            Err(outcome) => return outcome,
        };
        let stored = match (&args, &info) {
            (GroupArgs::Leave { group }, _) => pgwa_pg::groups::record_left(ctx.pool, &fence, group).await,
            (_, Some(info)) => pgwa_pg::groups::record_group(ctx.pool, &fence, info, link.as_deref()).await,
            (_, None) => Ok(true),
        };
        match stored {
            Ok(true) => Outcome::completed(result),
            // Another worker holds the session now: it runs the job again.
            Ok(false) => Outcome::Release,
            Err(e) => Outcome::retry(format!("storing the group in wa.groups: {e}")),
        }
    }
}

type Done = (Option<GroupInfo>, Option<String>, Value);

async fn act(client: &dyn WaSession, args: &GroupArgs) -> Result<Done, Outcome> {
    let change = |c: MemberChange, group: &str, who: &[String]| (c, group.to_string(), who.to_vec());
    let (change, group, who) = match args {
        GroupArgs::Create { subject, participants } => {
            let info = client.create_group(subject, participants).await.map_err(create_error)?;
            let result = json!({"group": info.jid, "subject": info.subject, "participants": info.participants.len()});
            return Ok((Some(info), None, result));
        }
        GroupArgs::InviteLink { group } => {
            let link = client.group_invite_link(group).await.map_err(session_error)?;
            let info = client.group_info(group).await.ok();
            return Ok((info, Some(link.clone()), json!({"group": group, "invite_link": link})));
        }
        GroupArgs::Leave { group } => {
            client.leave_group(group).await.map_err(session_error)?;
            return Ok((None, None, json!({"group": group, "left": true})));
        }
        GroupArgs::Add { group, participants } => change(MemberChange::Add, group, participants),
        GroupArgs::Remove { group, participants } => change(MemberChange::Remove, group, participants),
        GroupArgs::Promote { group, participants } => change(MemberChange::Promote, group, participants),
        GroupArgs::Demote { group, participants } => change(MemberChange::Demote, group, participants),
    };
    let answers = client.change_members(&group, change, &who).await.map_err(session_error)?;
    // The group as it is now; if reading it fails, the next notification refreshes it.
    let info = client.group_info(&group).await.ok();
    Ok((info, None, member_result(&group, change, &answers)))
}

/// A create is not repeated after an unanswered request: the server may have made the
/// group, and a second attempt would make another.
fn create_error(e: SendError) -> Outcome {
    match e {
        SendError::Retryable(e) => Outcome::fail(format!(
            "{e}; not retried, as the group may have been created: look in wa.groups before creating it again"
        )),
        other => session_error(other),
    }
}

fn member_result(group: &str, change: MemberChange, answers: &[MemberResult]) -> Value {
    let changed: Vec<&str> = answers.iter().filter(|a| a.error.is_none()).map(|a| a.jid.as_str()).collect();
    let refused: Vec<Value> = answers
        .iter()
        .filter_map(|a| {
            let code = a.error.as_deref()?;
            Some(json!({"participant": a.jid, "error": code, "reason": refusal(change, code)}))
        })
        .collect();
    json!({"group": group, "action": change.as_str(), "changed": changed, "refused": refused})
}

/// What the server's code for one participant means, and what to do about it.
fn refusal(change: MemberChange, code: &str) -> &'static str {
    match (change, code) {
        (MemberChange::Add, "403") => {
            "their privacy settings do not let others add them: send them the invite link (wa.group_invite_link)"
        }
        (MemberChange::Add, "404") => "not on WhatsApp",
        (MemberChange::Add, "408") => "they left the group recently and cannot be added back yet: send them the invite link",
        (MemberChange::Add, "409") => "already a member",
        (_, "404") => "not a member of the group",
        (_, "406") => "not allowed for the group's creator",
        _ => "refused by the server",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_participant_is_answered_with_what_to_do() {
        let answers = [
            MemberResult { jid: "15550001111@s.whatsapp.net".into(), error: None },
            MemberResult { jid: "15550002222@s.whatsapp.net".into(), error: Some("403".into()) },
        ];
        let r = member_result("120363000000000001@g.us", MemberChange::Add, &answers);
        assert_eq!(r["changed"], json!(["15550001111@s.whatsapp.net"]));
        assert_eq!(r["refused"][0]["error"], "403");
        assert!(r["refused"][0]["reason"].as_str().unwrap().contains("wa.group_invite_link"));
        assert_eq!(refusal(MemberChange::Remove, "404"), "not a member of the group");
    }

    #[test]
    fn an_unanswered_create_is_not_repeated() {
        match create_error(SendError::Retryable("creating the group: IQ request timed out".into())) {
            Outcome::Fail { error: m } => assert!(m.contains("look in wa.groups"), "{m}"),
            other => panic!("expected a failure, got {other:?}"),
        }
        assert!(matches!(create_error(SendError::NotConnected), Outcome::Release));
    }
}
