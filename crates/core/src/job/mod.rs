//! Job kinds and outcomes. The handlers live with the worker (`pgwa_worker::jobs`).

pub mod args;

use std::time::Duration;

crate::pg_enum::pg_enum!(
    /// The kinds a job row can have.
    JobKind, "wa.job_kind", {
        Send = "send",
        Reconnect = "reconnect",
        KeyCleanup = "key_cleanup",
        CloseSession = "close_session",
        Maintenance = "maintenance",
        /// Read receipts for messages received in a chat.
        MarkRead = "mark_read",
        /// A chat state (typing, recording, paused) shown to a chat.
        Presence = "presence",
        /// Which phone numbers are on WhatsApp (fills wa.contacts).
        CheckNumbers = "check_numbers",
        /// Download an inbound message's file into wa.media.
        MediaDownload = "media_download",
        /// Create a group, change its members, fetch its invite link or leave it.
        Group = "group",
        /// Deliver one event to one webhook (session-less, FIFO per webhook).
        Webhook = "webhook",
    }
);

impl JobKind {
    /// Whether the job acts through the WhatsApp connection: such jobs are claimed only
    /// while their session is connected (the claim's lane 1, see migration 0021), so a
    /// disconnected session's jobs wait in the queue instead of being claimed and handed
    /// back in a loop. The others (lane 0) manage the session itself and run first.
    pub fn needs_connection(self) -> bool {
        !matches!(
            self,
            JobKind::Reconnect | JobKind::KeyCleanup | JobKind::CloseSession | JobKind::Maintenance | JobKind::Webhook
        )
    }
}

crate::pg_enum::pg_enum!(
    /// Where a job is: available -> running -> completed; running -> retryable ->
    /// available ... -> dead; scheduled -> available; any not-running state -> cancelled.
    JobState, "wa.job_state", {
        Available = "available",
        Scheduled = "scheduled",
        Running = "running",
        Retryable = "retryable",
        Completed = "completed",
        Dead = "dead",
        Cancelled = "cancelled",
    }
);

crate::pg_enum::pg_enum!(
    /// An outbound message's fate, apart from its job's: the job completes at `sent`
    /// (server ack); delivered and read arrive later as receipts.
    Delivery, "wa.delivery_status", {
        Queued = "queued",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Failed = "failed",
    }
);

impl Outcome {
    /// Every label `label()` returns.
    pub const LABELS: [&'static str; 5] = ["completed", "retry", "dead", "released", "cancelled"];

    /// The label used in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Retry { .. } => "retry",
            Outcome::Fail { .. } => "dead",
            Outcome::Release => "released",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// A job as claimed by a worker, and its payload beside it: the payload goes to the
/// handler when the job runs, and what is done with the outcome needs the job only.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: ClaimedJob,
    pub payload: serde_json::Value,
}

/// A claimed job, what the worker keeps of it from the claim to its recorded outcome.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub session_id: Option<String>,
    pub kind: JobKind,
    pub chat: Option<String>,
    pub message_id: Option<String>,
    pub attempts: i16,
    pub max_attempts: i16,
    /// The session epoch the worker held when it claimed the job (fencing token).
    pub epoch: Option<i64>,
    /// When this worker claimed it (for the job duration histogram).
    pub claimed_at: std::time::Instant,
}

/// What running a job came to. Handlers return this rather than stringly errors so the
/// dispatcher decides retries in one place.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; `result` is stored on the row. A send's server ack time becomes its
    /// `sent_at` (None: the time the outcome is recorded).
    Completed { result: serde_json::Value, acked_at: Option<chrono::DateTime<chrono::Utc>> },
    /// Failed this time; try again after the backoff (or `after`), unless attempts are
    /// exhausted, in which case the job is dead.
    Retry { error: String, after: Option<Duration> },
    /// Failed for good: dead now, whatever attempts remain.
    Fail { error: String },
    /// Not attempted (the worker is stopping, the session went away, an earlier job of
    /// the same chat failed): back to available without spending an attempt.
    Release,
    /// Cancelled by wa.cancel_job before it started.
    Cancelled,
}

impl Outcome {
    pub fn completed(result: serde_json::Value) -> Self {
        Outcome::Completed { result, acked_at: None }
    }
    pub fn retry(error: impl Into<String>) -> Self {
        Outcome::Retry { error: error.into(), after: None }
    }
    pub fn fail(error: impl Into<String>) -> Self {
        Outcome::Fail { error: error.into() }
    }
}

/// What a `key_cleanup` job removes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum CleanupScope {
    /// App-state sync keys only (first step on repeated bad decrypts).
    AppStateKeys,
    /// One peer's Signal sessions (first step on Bad MAC).
    Peer { jid: String },
    /// Everything, the auth document included (after logout).
    All,
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    /// Metrics create every (kind, outcome) series at start from LABELS: a label missing
    /// there would appear only at its first event.
    #[test]
    fn every_outcome_label_is_listed() {
        let all = [
            Outcome::completed(serde_json::json!({})),
            Outcome::retry("e"),
            Outcome::fail("e"),
            Outcome::Release,
            Outcome::Cancelled,
        ];
        let labels: Vec<&str> = all.iter().map(Outcome::label).collect();
        assert_eq!(labels, Outcome::LABELS);
    }
}
