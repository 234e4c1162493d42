//! Prometheus metric names in one place (the recorder: `pgwa_worker::prometheus`).

pub const SESSIONS: &str = "pgwa_sessions";
pub const ACTIVE_CONNECTIONS: &str = "pgwa_active_connections";
pub const RECONNECTS_FAILED: &str = "pgwa_reconnects_failed_total";
pub const MESSAGES_SENT: &str = "pgwa_messages_sent_total";
pub const MESSAGES_RECEIVED: &str = "pgwa_messages_received_total";
pub const QR_CODES: &str = "pgwa_qr_codes_total";
pub const ERRORS: &str = "pgwa_errors_total";
pub const LAST_ERROR: &str = "pgwa_last_error_timestamp_seconds";
pub const JOB_DURATION: &str = "pgwa_job_duration_seconds";
pub const JOBS: &str = "pgwa_jobs_total";
pub const QUEUE_DEPTH: &str = "pgwa_queue_depth";
pub const OUTCOMES_REFUSED: &str = "pgwa_outcomes_refused_total";
/// Seconds sends waited for pacing (a histogram: `_sum` is the seconds, `_count` the
/// sends held).
pub const PACING_WAIT: &str = "pgwa_pacing_wait_seconds";

/// Key writes sent through the group-commit writer, the statements that carried them
/// (writes per statement is how much the group commit saves), and statements run again
/// after losing a deadlock.
pub const KEY_WRITES: &str = "pgwa_key_writes_total";
pub const KEY_WRITE_STATEMENTS: &str = "pgwa_key_write_statements_total";
pub const KEY_WRITE_DEADLOCKS: &str = "pgwa_key_write_deadlocks_total";

/// Webhook deliveries by result: `delivered` (2xx), `failed` (any other answer, or
/// none), `refused` (the URL or its address is not allowed).
pub const WEBHOOK_DELIVERIES: &str = "pgwa_webhook_deliveries_total";
/// Seconds from sending a webhook to its receiver's answer, answered or not.
pub const WEBHOOK_LATENCY: &str = "pgwa_webhook_delivery_seconds";
/// Every result `WEBHOOK_DELIVERIES` is recorded with.
pub const WEBHOOK_RESULTS: &[&str] = &["delivered", "failed", "refused"];

/// The error kinds `error()` records.
pub const ERROR_KINDS: &[&str] = &["session", "job", "connect", "bad_mac", "bad_decrypt"];

/// Records an error of `kind` and when it happened.
pub fn error(kind: &'static str) {
    errors(kind, 1);
}

/// Records `n` errors of `kind` that happened now.
pub fn errors(kind: &'static str, n: u64) {
    metrics::counter!(ERRORS, "kind" => kind).increment(n);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    metrics::gauge!(LAST_ERROR, "kind" => kind).set(now);
}
