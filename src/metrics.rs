//! Prometheus metrics: names in one place, the recorder installed once per process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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
/// Milliseconds sends waited for pacing.
pub const PACING_WAIT: &str = "pgwa_pacing_wait_milliseconds_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder (installed on first use; later workers in the same process,
/// as in tests, share it).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(JOB_DURATION.into()),
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            )
            .expect("static buckets are valid");
        match builder.install_recorder() {
            Ok(h) => h,
            // Another recorder is installed (an embedding app): render ours detached.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Records an error of `kind` and when it happened.
pub fn error(kind: &'static str) {
    metrics::counter!(ERRORS, "kind" => kind).increment(1);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    metrics::gauge!(LAST_ERROR, "kind" => kind).set(now);
}
