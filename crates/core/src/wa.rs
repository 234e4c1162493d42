//! The WhatsApp side, behind one trait, so the queue, leases and policies are tested
//! without a network. The sides themselves (whatsapp-rust, the simulation) are in
//! `pgwa_wa`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

/// What a worker knows about a session when it opens it.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub id: String,
    pub epoch: i64,
    pub worker_id: uuid::Uuid,
    /// Link by pairing code to this phone number instead of QR.
    pub pair_phone: Option<String>,
}

impl SessionSpec {
    /// The fence its holder's writes carry: this worker at this epoch.
    pub fn fence(&self) -> crate::fence::Fence {
        crate::fence::Fence { worker: self.worker_id, session: self.id.clone(), epoch: self.epoch }
    }
}

/// An outbound message as the send job describes it.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub job_id: i64,
    /// Fixed at enqueue: a retry re-sends the same id, so the server sees one message.
    pub message_id: String,
    pub chat: String,
    pub payload: serde_json::Value,
    pub attempt: i16,
}

/// The server acknowledged the message.
#[derive(Debug, Clone, PartialEq)]
pub struct SendAck {
    pub message_id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again (timeout, dropped socket, server busy).
    #[error("{0}")]
    Retryable(String),
    /// Will never succeed as is (the server refused the message with this reason).
    #[error("{0}")]
    Permanent(String),
    /// The session is not connected right now.
    #[error("session is not connected")]
    NotConnected,
}

/// Why opening, reconnecting, closing or clearing the keys of a session failed. The
/// worker decides by kind (a lost lease is not a connection failure to count); the text
/// is for the session's last_error and the logs, and never carries key material.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WaError {
    /// This worker no longer holds the session at this epoch: nothing was started or
    /// written; another worker (or none) has it now.
    #[error("session {session}: lease lost: worker {worker} no longer holds it at epoch {epoch}; the client was not started")]
    LeaseLost { session: String, worker: uuid::Uuid, epoch: i64 },
    /// The session's row is gone (removed while it was being opened).
    #[error("session {0} does not exist in wa.sessions")]
    UnknownSession(String),
    /// The session was closed; it has no connection to act on.
    #[error("session {0} is closed")]
    Closed(String),
    /// The operation needs a logged-in connection (a logout must reach WhatsApp).
    #[error("not logged in to WhatsApp right now, so the device could not be unlinked; the session stays open")]
    NotLoggedIn,
    /// Postgres failed a read or write the side needed; the text says which.
    #[error("{0}")]
    Store(String),
    /// The WhatsApp client failed (building it, connecting); the text says how.
    #[error("{0}")]
    Client(String),
    /// A value the operation was given is not usable (a peer that is not a JID).
    #[error("{0}")]
    Invalid(String),
}

impl WaError {
    /// The lease was lost: the caller drops the session instead of retrying.
    pub fn lease_lost(spec: &SessionSpec) -> Self {
        WaError::LeaseLost { session: spec.id.clone(), worker: spec.worker_id, epoch: spec.epoch }
    }
}

/// Delivery receipts for our own messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered,
    Read,
}

/// An inbound message, as stored in wa.inbox.
#[derive(Debug, Clone, Default)]
pub struct InboundMessage {
    pub chat: String,
    pub sender: String,
    pub message_id: String,
    pub kind: String,
    pub text: Option<String>,
    pub quoted_id: Option<String>,
    /// What is needed to download the file of a media message.
    pub media: Option<serde_json::Value>,
    /// The fields of other kinds: a location's coordinates, a contact's card.
    pub data: Option<serde_json::Value>,
    /// The JIDs the text mentions.
    pub mentions: Vec<String>,
    /// Set when the message changes an earlier one rather than being one itself.
    pub change: Option<InboundChange>,
    pub raw: Option<serde_json::Value>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A change a sender makes to a message they sent earlier, applied to its inbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundChange {
    /// The message `target` now reads `text`.
    Edit { target: String, text: Option<String> },
    /// The message `target` was deleted for everyone.
    Revoke { target: String },
}

impl InboundChange {
    pub fn target(&self) -> &str {
        match self {
            Self::Edit { target, .. } | Self::Revoke { target } => target,
        }
    }

    /// The word stored in wa.inbox.history and in the row's `kind` when the target is unknown.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Edit { .. } => "edit",
            Self::Revoke { .. } => "revoke",
        }
    }
}

/// What a connection reports. Each maps to a session status and an action in the
/// worker's supervisor.
#[derive(Debug, Clone)]
pub enum WaEvent {
    Connected {
        jid: Option<String>,
        push_name: Option<String>,
    },
    Disconnected {
        reason: String,
    },
    LoggedOut {
        reason: String,
    },
    StreamReplaced,
    TemporaryBan {
        until: DateTime<Utc>,
        reason: String,
    },
    /// A connection attempt failed (counts toward the circuit breaker).
    ConnectFailure {
        reason: String,
    },
    /// The server refuses this client version.
    ClientOutdated,
    /// An inbound message could not be decrypted; `bad_mac` tells a Signal session
    /// mismatch with `peer` from other failures (app-state keys and the like).
    Undecryptable {
        peer: String,
        bad_mac: bool,
    },
    /// Linking: a QR code to show, valid until `expires_at`.
    Qr {
        code: String,
        expires_at: DateTime<Utc>,
    },
    /// Linking: a pairing code to type on the phone.
    PairCode {
        code: String,
        expires_at: DateTime<Utc>,
    },
    /// Linking: every QR code expired without a scan.
    QrExhausted,
    /// Linking succeeded: the device's identity.
    Paired {
        jid: String,
        lid: Option<String>,
        phone: Option<String>,
        push_name: Option<String>,
    },
    Receipt {
        message_id: String,
        kind: ReceiptKind,
        at: DateTime<Utc>,
    },
    /// Someone shows a chat they are typing, recording or stopped.
    ChatState(InboundChatState),
    /// Someone is calling this number.
    IncomingCall(IncomingCall),
    /// A group this number is in changed, or this number was added to one.
    GroupChanged(GroupChanged),
    Error {
        message: String,
    },
}

/// Events are tagged with the session and the epoch of the connection that produced them,
/// so a late event from a closed connection cannot touch the session's next life.
#[derive(Debug, Clone)]
pub struct TaggedEvent {
    pub session: String,
    pub epoch: i64,
    pub event: WaEvent,
}

pub type EventSink = mpsc::UnboundedSender<TaggedEvent>;

/// Opens sessions.
#[async_trait]
pub trait WhatsApp: Send + Sync + 'static {
    /// Which side this is: recorded with the worker, so every session it holds shows
    /// whether its messages reach anyone.
    fn backend(&self) -> crate::config::Backend;
    /// Connects (or starts linking) a session. Returns once the connection attempt is
    /// under way; progress arrives as events on `events`.
    async fn open(&self, spec: SessionSpec, events: EventSink) -> Result<Arc<dyn WaSession>, WaError>;
}

/// One open session.
#[async_trait]
pub trait WaSession: Send + Sync + 'static {
    /// Sends and resolves on the server ack (not when the bytes leave).
    async fn send(&self, msg: &OutboundMessage) -> Result<SendAck, SendError>;
    /// Reconnects now.
    async fn reconnect(&self) -> Result<(), WaError>;
    /// Ends the connection; with `logout`, unlinks the device from the phone first.
    async fn close(&self, logout: bool) -> Result<(), WaError>;

    /// Clears keys the connection may also hold in memory, so that a key_cleanup is not
    /// undone by the client writing its cache back. Returns the rows it removed, or None
    /// when this side keeps no such cache (the store's SQL cleanup is then enough).
    async fn clear_keys(&self, _scope: &crate::job::CleanupScope) -> Result<Option<u64>, WaError> {
        Ok(None)
    }

    /// Shows `chat` that this number is typing, recording or has stopped. A hint with no
    /// ack: the default (a side with no one to show it to) does nothing.
    async fn chat_state(&self, _chat: &str, _state: ChatState) -> Result<(), SendError> {
        Ok(())
    }

    /// Sends read receipts for messages received in `chat`; in a group, `sender` is
    /// their author. The default (a side with no peers) accepts and does nothing.
    async fn mark_read(&self, _chat: &str, _sender: Option<&str>, _message_ids: &[String]) -> Result<(), SendError> {
        Ok(())
    }

    /// Downloads and decrypts the file an inbound message points to (`media`: its
    /// wa.inbox.media, `kind` its wa.inbox.kind). A side with no media hosts refuses.
    async fn download_media(&self, _kind: &str, _media: &serde_json::Value) -> Result<Vec<u8>, SendError> {
        Err(SendError::Permanent("this side has no media to download".into()))
    }

    /// Declines a call that is ringing. The default (a side no one can call) accepts.
    async fn reject_call(&self, _call: &IncomingCall) -> Result<(), SendError> {
        Ok(())
    }

    /// Asks WhatsApp which of `phones` (digits) have an account. A side with no
    /// directory to ask refuses.
    async fn check_numbers(&self, _phones: &[String]) -> Result<Vec<NumberCheck>, SendError> {
        Err(SendError::Permanent("this side has no WhatsApp directory to check numbers against".into()))
    }

    /// Creates a group of this number and `participants` (phone digits).
    async fn create_group(&self, _subject: &str, _participants: &[String]) -> Result<GroupInfo, SendError> {
        Err(no_groups())
    }

    /// What the server says group `group` is now.
    async fn group_info(&self, _group: &str) -> Result<GroupInfo, SendError> {
        Err(no_groups())
    }

    /// Adds, removes, promotes or demotes `participants` (phone digits); one answer each.
    async fn change_members(
        &self,
        _group: &str,
        _change: MemberChange,
        _participants: &[String],
    ) -> Result<Vec<MemberResult>, SendError> {
        Err(no_groups())
    }

    /// The group's invite link (https://chat.whatsapp.com/…).
    async fn group_invite_link(&self, _group: &str) -> Result<String, SendError> {
        Err(no_groups())
    }

    async fn leave_group(&self, _group: &str) -> Result<(), SendError> {
        Err(no_groups())
    }
}

fn no_groups() -> SendError {
    SendError::Permanent("this side has no WhatsApp server to keep groups".into())
}

/// Whether `jid` names a group (`digits@g.us`, or the older `creator-time@g.us`).
pub fn is_group_jid(jid: &str) -> bool {
    jid.strip_suffix("@g.us").is_some_and(|user| {
        let mut parts = user.splitn(2, '-');
        parts.all(|p| !p.is_empty() && p.len() <= 32 && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// A group as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub jid: String,
    pub subject: String,
    pub creator: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub participants: Vec<GroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupMember {
    pub jid: String,
    /// The member's phone number (digits), when the server tells it.
    pub phone: Option<String>,
    /// `admin` or `superadmin` (the creator); None for a plain member.
    pub admin: Option<String>,
}

/// What a group job does to members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    Add,
    Remove,
    Promote,
    Demote,
}

impl MemberChange {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Promote => "promote",
            Self::Demote => "demote",
        }
    }
}

/// The server's answer about one participant of a member change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberResult {
    pub jid: String,
    /// The server's code when the change did not apply to them (403: their privacy
    /// settings allow only an invite; 404: not on WhatsApp or not a member; 409:
    /// already a member).
    pub error: Option<String>,
}

/// A group notification: what happened (`add`, `remove`, `promote`, `demote`,
/// `subject`, `create`…, the server's name for it) in which group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChanged {
    pub group: String,
    pub action: String,
    /// This number was removed from the group (or left it from another device).
    pub removed_me: bool,
}

/// What a chat is shown of us between messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatState {
    Composing,
    Recording,
    Paused,
}

impl ChatState {
    pub const ALL: [ChatState; 3] = [ChatState::Composing, ChatState::Recording, ChatState::Paused];

    /// The name used in SQL (wa.send_presence) and in wa.chat_states.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatState::Composing => "composing",
            ChatState::Recording => "recording",
            ChatState::Paused => "paused",
        }
    }
}

impl std::str::FromStr for ChatState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ChatState::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a chat state (accepted: composing, recording, paused)"))
    }
}

/// What a number check found about one phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberCheck {
    /// The number asked about (digits).
    pub phone: String,
    pub on_whatsapp: bool,
    /// The account's phone JID, when WhatsApp answered with one.
    pub jid: Option<String>,
    /// The account's LID (`digits@lid`), when WhatsApp told it.
    pub lid: Option<String>,
    pub is_business: bool,
}

/// A call offered to this number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call_id: String,
    /// Where the offer came from (the JID a reject is addressed to).
    pub from: String,
    /// Who started the call (the reject names them too).
    pub creator: String,
    pub group: Option<String>,
    pub video: bool,
    pub at: DateTime<Utc>,
}

/// A chat state someone showed us in a chat (inbound "typing...").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundChatState {
    pub chat: String,
    pub sender: String,
    pub state: ChatState,
}
