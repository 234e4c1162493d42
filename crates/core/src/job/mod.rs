//! Job kinds and outcomes. The handlers live with the worker (`pgwa_worker::jobs`).

pub mod backoff;

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kinds a job row can have (Postgres enum `wa.job_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Send,
    Reconnect,
    KeyCleanup,
    CloseSession,
    Maintenance,
}

impl JobKind {
    pub const ALL: [JobKind; 5] =
        [JobKind::Send, JobKind::Reconnect, JobKind::KeyCleanup, JobKind::CloseSession, JobKind::Maintenance];

    /// The stable name stored in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Send => "send",
            JobKind::Reconnect => "reconnect",
            JobKind::KeyCleanup => "key_cleanup",
            JobKind::CloseSession => "close_session",
            JobKind::Maintenance => "maintenance",
        }
    }
}

impl FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown job kind {s:?} (accepted: send, reconnect, key_cleanup, close_session, maintenance)"))
    }
}

impl Outcome {
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

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as claimed by a worker.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub session_id: Option<String>,
    pub kind: JobKind,
    pub payload: serde_json::Value,
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
    /// Done; `result` is stored on the row.
    Completed { result: serde_json::Value },
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
        Outcome::Completed { result }
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
