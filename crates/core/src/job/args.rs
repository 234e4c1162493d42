//! Each job kind's arguments, read once from the row's payload when the job runs. The SQL
//! API validates them at enqueue (sql/01_validation.sql); reading them into types here is
//! the worker's own check, so a row written another way (by hand, by an older version)
//! fails with the field named instead of running half-understood.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CleanupScope, JobKind};

/// The arguments of one job kind.
pub trait JobArgs: Sized {
    /// The kind whose payload these are (its stable name is `KIND.as_str()`).
    const KIND: JobKind;

    /// Reads the payload; a bad one is an error naming the field.
    fn from_payload(payload: &Value) -> Result<Self, String>;

    /// Reads the payload the job no longer needs (the worker's path): arguments that
    /// keep the payload take it instead of a copy.
    fn from_owned_payload(payload: Value) -> Result<Self, String> {
        Self::from_payload(&payload)
    }
}

fn read<T: DeserializeOwned>(payload: &Value) -> Result<T, String> {
    T::deserialize(payload).map_err(|e| format!("payload: {e}"))
}

/// `send`: the message (`type` and its fields). Which fields a message type needs is
/// the WhatsApp side's knowledge: it parses them when it builds the message.
#[derive(Debug, Clone, PartialEq)]
pub struct SendArgs(pub Value);

impl JobArgs for SendArgs {
    const KIND: JobKind = JobKind::Send;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        Self::from_owned_payload(payload.clone())
    }
    fn from_owned_payload(payload: Value) -> Result<Self, String> {
        match payload {
            Value::Object(_) => Ok(SendArgs(payload)),
            _ => Err("payload: a send's payload must be a JSON object".into()),
        }
    }
}

/// `reconnect`: no arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectArgs;

impl JobArgs for ReconnectArgs {
    const KIND: JobKind = JobKind::Reconnect;
    fn from_payload(_: &Value) -> Result<Self, String> {
        Ok(ReconnectArgs)
    }
}

/// `key_cleanup`: what to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCleanupArgs {
    pub scope: CleanupScope,
    /// The scope's name in the payload (`app_state`, `peer`, `all`), kept for the result.
    pub scope_name: String,
}

impl JobArgs for KeyCleanupArgs {
    const KIND: JobKind = JobKind::KeyCleanup;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default = "app_state")]
            scope: String,
            peer: Option<String>,
        }
        fn app_state() -> String {
            "app_state".into()
        }
        let raw: Raw = read(payload)?;
        let scope = match raw.scope.as_str() {
            "app_state" => CleanupScope::AppStateKeys,
            "peer" => CleanupScope::Peer { jid: raw.peer.ok_or("payload.peer: missing for scope peer")? },
            "all" => CleanupScope::All,
            other => return Err(format!("payload.scope: unknown scope {other:?}")),
        };
        Ok(KeyCleanupArgs { scope, scope_name: raw.scope })
    }
}

/// `close_session`: end the socket; optionally unlink the device and wipe its keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CloseSessionArgs {
    #[serde(default)]
    pub logout: bool,
    #[serde(default)]
    pub wipe: bool,
    #[serde(default = "closed_by_request")]
    pub reason: String,
}

fn closed_by_request() -> String {
    "closed by request".into()
}

impl JobArgs for CloseSessionArgs {
    const KIND: JobKind = JobKind::CloseSession;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        read(payload)
    }
}

/// `maintenance`: which housekeeping task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceTask {
    /// Delete finished jobs past their retention.
    Retention,
    /// Forget workers dead for more than an hour.
    ReapWorkers,
    /// Delete expired WhatsApp key material.
    SweepKeys,
    /// Release the next delivery of webhooks whose queue stalled (two transactions
    /// crossed as one delivery ended and another was added).
    ReleaseWebhooks,
}

impl MaintenanceTask {
    pub const ALL: [MaintenanceTask; 4] =
        [MaintenanceTask::Retention, MaintenanceTask::ReapWorkers, MaintenanceTask::SweepKeys, MaintenanceTask::ReleaseWebhooks];

    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceTask::Retention => "retention",
            MaintenanceTask::ReapWorkers => "reap_workers",
            MaintenanceTask::SweepKeys => "sweep_keys",
            MaintenanceTask::ReleaseWebhooks => "release_webhooks",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceArgs {
    pub task: MaintenanceTask,
}

impl JobArgs for MaintenanceArgs {
    const KIND: JobKind = JobKind::Maintenance;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        let task = payload.get("task").and_then(|v| v.as_str()).unwrap_or_default();
        MaintenanceTask::ALL.into_iter().find(|t| t.as_str() == task).map(|task| MaintenanceArgs { task }).ok_or_else(|| {
            let accepted: Vec<&str> = MaintenanceTask::ALL.iter().map(|t| t.as_str()).collect();
            format!("payload.task: unknown task {task:?} (accepted: {})", accepted.join(", "))
        })
    }
}

/// `mark_read`: read receipts for messages received in `chat` (by their ids).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MarkReadArgs {
    pub chat: String,
    pub message_ids: Vec<String>,
}

impl JobArgs for MarkReadArgs {
    const KIND: JobKind = JobKind::MarkRead;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        let args: MarkReadArgs = read(payload)?;
        if args.message_ids.is_empty() {
            return Err("payload.message_ids: empty; name at least one message".into());
        }
        Ok(args)
    }
}

/// `presence`: show `chat` a chat state, unless the moment has passed: a "typing..."
/// shown minutes late (the session was offline) would be a lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceArgs {
    pub chat: String,
    pub state: crate::wa::ChatState,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl JobArgs for PresenceArgs {
    const KIND: JobKind = JobKind::Presence;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Raw {
            chat: String,
            state: String,
            expires_at: chrono::DateTime<chrono::Utc>,
        }
        let raw: Raw = read(payload)?;
        let state = raw.state.parse().map_err(|e| format!("payload.state: {e}"))?;
        Ok(PresenceArgs { chat: raw.chat, state, expires_at: raw.expires_at })
    }
}

/// `check_numbers`: phone numbers (digits, country code first) to look up.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckNumbersArgs {
    pub phones: Vec<String>,
}

impl JobArgs for CheckNumbersArgs {
    const KIND: JobKind = JobKind::CheckNumbers;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        let args: CheckNumbersArgs = read(payload)?;
        if let Some(bad) = args.phones.iter().find(|p| !is_phone(p)) {
            return Err(format!("payload.phones: {bad:?} is not a phone number (7 to 15 digits, country code first)"));
        }
        if args.phones.is_empty() {
            return Err("payload.phones: empty; name at least one number".into());
        }
        Ok(args)
    }
}

/// `group`: one action on a group (`action` in the payload). Participants are phone
/// numbers (digits), as the SQL API stores them; the group is its JID (`…@g.us`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum GroupArgs {
    Create { subject: String, participants: Vec<String> },
    Add { group: String, participants: Vec<String> },
    Remove { group: String, participants: Vec<String> },
    Promote { group: String, participants: Vec<String> },
    Demote { group: String, participants: Vec<String> },
    InviteLink { group: String },
    Leave { group: String },
}

impl GroupArgs {
    /// The group acted on (None for a group still to be created).
    pub fn group(&self) -> Option<&str> {
        match self {
            Self::Create { .. } => None,
            Self::Add { group, .. }
            | Self::Remove { group, .. }
            | Self::Promote { group, .. }
            | Self::Demote { group, .. }
            | Self::InviteLink { group }
            | Self::Leave { group } => Some(group),
        }
    }

    fn participants(&self) -> &[String] {
        match self {
            Self::Create { participants, .. }
            | Self::Add { participants, .. }
            | Self::Remove { participants, .. }
            | Self::Promote { participants, .. }
            | Self::Demote { participants, .. } => participants,
            Self::InviteLink { .. } | Self::Leave { .. } => &[],
        }
    }
}

impl JobArgs for GroupArgs {
    const KIND: JobKind = JobKind::Group;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        let args: GroupArgs = read(payload)?;
        if let Some(g) = args.group()
            && !crate::wa::is_group_jid(g)
        {
            return Err(format!("payload.group: {g:?} is not a group JID (digits@g.us)"));
        }
        if let Some(bad) = args.participants().iter().find(|p| !is_phone(p)) {
            return Err(format!("payload.participants: {bad:?} is not a phone number (7 to 15 digits, country code first)"));
        }
        if let GroupArgs::Create { subject, .. } = &args
            && subject.trim().is_empty()
        {
            return Err("payload.subject: empty; a group needs a name".into());
        }
        let changes_members = !matches!(args, GroupArgs::Create { .. } | GroupArgs::InviteLink { .. } | GroupArgs::Leave { .. });
        if changes_members && args.participants().is_empty() {
            return Err("payload.participants: empty; name at least one number".into());
        }
        Ok(args)
    }
}

/// `media_download`: the wa.inbox row whose file to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MediaDownloadArgs {
    pub inbox_id: i64,
}

impl JobArgs for MediaDownloadArgs {
    const KIND: JobKind = JobKind::MediaDownload;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        read(payload)
    }
}

/// `webhook`: one event for one webhook, as the outbox trigger wrote it. The body sent
/// is `{"type", "timestamp", "data"}`; the webhook's URL and secret are read when the
/// delivery runs (never stored on the job), so a rotated secret or a changed URL
/// applies to deliveries still waiting.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WebhookArgs {
    pub webhook: i64,
    /// The `webhook-id` header: the same on every attempt, so receivers drop repeats.
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    pub data: Value,
}

impl JobArgs for WebhookArgs {
    const KIND: JobKind = JobKind::Webhook;
    fn from_payload(payload: &Value) -> Result<Self, String> {
        read(payload)
    }
}

fn is_phone(p: &str) -> bool {
    (7..=15).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && !p.starts_with('0')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn payloads_read_into_their_kinds_and_bad_ones_name_the_field() {
        let k = KeyCleanupArgs::from_payload(&json!({})).unwrap();
        assert_eq!(k.scope, CleanupScope::AppStateKeys);
        let k = KeyCleanupArgs::from_payload(&json!({"scope": "peer", "peer": "1@s.whatsapp.net"})).unwrap();
        assert_eq!(k.scope, CleanupScope::Peer { jid: "1@s.whatsapp.net".into() });
        assert!(KeyCleanupArgs::from_payload(&json!({"scope": "peer"})).unwrap_err().contains("payload.peer"));
        assert!(KeyCleanupArgs::from_payload(&json!({"scope": "x"})).unwrap_err().contains("payload.scope"));

        let c = CloseSessionArgs::from_payload(&json!({"logout": true})).unwrap();
        assert_eq!(c, CloseSessionArgs { logout: true, wipe: false, reason: "closed by request".into() });
        let e = CloseSessionArgs::from_payload(&json!({"wipe": "yes"})).unwrap_err();
        assert!(e.starts_with("payload:") && e.contains("bool"), "{e}");

        assert_eq!(MaintenanceArgs::from_payload(&json!({"task": "sweep_keys"})).unwrap().task, MaintenanceTask::SweepKeys);
        let e = MaintenanceArgs::from_payload(&json!({"task": "vacuum"})).unwrap_err();
        assert!(e.contains("payload.task") && e.contains("reap_workers"), "{e}");

        assert!(SendArgs::from_payload(&json!("text")).is_err());
        assert!(SendArgs::from_owned_payload(json!(["text"])).is_err());
        assert_eq!(SendArgs::from_owned_payload(json!({"type": "text"})).unwrap(), SendArgs(json!({"type": "text"})));
        assert_eq!(ReconnectArgs::KIND.as_str(), "reconnect");
    }
}
