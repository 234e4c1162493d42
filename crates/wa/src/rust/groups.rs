//! Groups through whatsapp-rust's `groups()` feature: create, read, change members,
//! invite link, leave. Server refusals become permanent failures that say what to do;
//! a lost connection or a timeout is worth another attempt.

use whatsapp_rust::IqError;
use whatsapp_rust::Jid;
use whatsapp_rust::features::{GroupCreateOptions, GroupError, GroupMetadata, GroupParticipantOptions};

use super::{RustSession, parse_jid};
use pgwa_core::wa::{GroupInfo, GroupMember, MemberChange, MemberResult, SendError};

impl RustSession {
    pub(super) async fn new_group(&self, subject: &str, participants: &[String]) -> Result<GroupInfo, SendError> {
        let client = self.logged_in().await?;
        let mut options = GroupCreateOptions::new(subject);
        for p in participants {
            options = options.with_participant(GroupParticipantOptions::new(Jid::pn(p.as_str())));
        }
        let created = client.groups().create_group(options).await.map_err(|e| refused("creating the group", e))?;
        Ok(info(created.metadata))
    }

    pub(super) async fn read_group(&self, group: &str) -> Result<GroupInfo, SendError> {
        let jid = parse_jid(group)?;
        let client = self.logged_in().await?;
        let meta = client.groups().get_metadata(&jid).await.map_err(|e| refused(&format!("reading group {group}"), e))?;
        Ok(info(meta))
    }

    pub(super) async fn members(
        &self,
        group: &str,
        change: MemberChange,
        phones: &[String],
    ) -> Result<Vec<MemberResult>, SendError> {
        let jid = parse_jid(group)?;
        let who: Vec<Jid> = phones.iter().map(|p| Jid::pn(p.as_str())).collect();
        let client = self.logged_in().await?;
        let groups = client.groups();
        let answers = match change {
            MemberChange::Add => groups.add_participants(jid, &who).await,
            MemberChange::Remove => groups.remove_participants(jid, &who).await,
            MemberChange::Promote => groups.promote_participants(jid, &who).await,
            MemberChange::Demote => groups.demote_participants(jid, &who).await,
        }
        .map_err(|e| refused(&format!("{} in group {group}", change.as_str()), e))?;
        Ok(answers.into_iter().map(|a| MemberResult { jid: a.jid.to_non_ad_string(), error: a.error }).collect())
    }

    pub(super) async fn invite_link(&self, group: &str) -> Result<String, SendError> {
        let jid = parse_jid(group)?;
        let client = self.logged_in().await?;
        client.groups().get_invite_link(jid, false).await.map_err(|e| refused(&format!("invite link of group {group}"), e))
    }

    pub(super) async fn leave(&self, group: &str) -> Result<(), SendError> {
        let jid = parse_jid(group)?;
        let client = self.logged_in().await?;
        client.groups().leave(jid).await.map_err(|e| refused(&format!("leaving group {group}"), e))
    }
}

fn info(m: GroupMetadata) -> GroupInfo {
    let participants = m
        .participants
        .iter()
        .map(|p| {
            let phone = match (&p.phone_number, p.jid.is_lid()) {
                (Some(pn), _) => Some(pn.user.to_string()),
                (None, false) => Some(p.jid.user.to_string()),
                (None, true) => None,
            };
            let admin = if p.is_super_admin() { Some("superadmin") } else { p.is_admin().then_some("admin") };
            GroupMember { jid: p.jid.to_non_ad_string(), phone, admin: admin.map(str::to_string) }
        })
        .collect();
    GroupInfo {
        jid: m.id.to_string(),
        subject: m.subject,
        creator: m.creator.map(|c| c.to_non_ad_string()),
        created_at: m.creation_time.and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0)),
        participants,
    }
}

/// The server's refusals, each with what it means for the app; the rest is retried.
fn refused(what: &str, e: GroupError) -> SendError {
    match e {
        GroupError::Iq(IqError::ServerError { code, text, .. }) => {
            let meaning = match code {
                401 => "this number is not an admin of the group: ",
                403 => "this number is not a member of the group: ",
                404 => "no such group: ",
                406 => "the subject or a participant was refused: ",
                _ => "",
            };
            let message = format!("{what}: {meaning}the server answered {code} {text}");
            // Throttling and server trouble pass; the rest is an answer about the group.
            if code == 429 || code >= 500 { SendError::Retryable(message) } else { SendError::Permanent(message) }
        }
        GroupError::InvalidRequest(m) => SendError::Permanent(format!("{what}: {m}")),
        other => SendError::Retryable(format!("{what}: {other}")),
    }
}
