//! The Prometheus recorder, installed once per process; /metrics renders it.
//!
//! Every series pgwa records is described (`# HELP`, with its unit) and exists from the
//! start at zero: a counter that appeared only at its first event left dashboards
//! showing "No data" instead of 0 for errors, received messages, QR codes and failed
//! reconnects on a healthy worker.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use pgwa_core::job::{JobKind, Outcome};
use pgwa_core::metrics as m;
use pgwa_core::session::SessionStatus;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder (installed on first use; later workers in the same process,
/// as in tests, share it).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(m::JOB_DURATION.into()),
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(m::PACING_WAIT.into()),
                    &[0.001, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(m::WEBHOOK_LATENCY.into()),
                    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
            })
            .expect("static buckets are valid");
        let handle = match builder.install_recorder() {
            Ok(h) => h,
            // Another recorder is installed (an embedding app): render ours detached.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        register_all();
        handle
    })
}

/// Describes every series and creates it at zero.
fn register_all() {
    describe_gauge!(m::SESSIONS, "Sessions this worker holds, by status (refreshed at each scrape)");
    describe_gauge!(m::ACTIVE_CONNECTIONS, "WhatsApp connections of this worker that are up");
    describe_counter!(m::RECONNECTS_FAILED, "Reconnects of a dropped session that failed");
    describe_counter!(m::MESSAGES_SENT, "Messages the WhatsApp server acknowledged");
    describe_counter!(m::MESSAGES_RECEIVED, "Inbound messages stored in wa.inbox");
    describe_counter!(m::QR_CODES, "QR codes published for linking");
    describe_counter!(m::ERRORS, "Errors by kind (session, job, connect, bad_mac, bad_decrypt)");
    describe_gauge!(m::LAST_ERROR, Unit::Seconds, "Unix time of the last error of each kind");
    describe_histogram!(m::JOB_DURATION, Unit::Seconds, "Time from a job's claim to its outcome, by kind");
    describe_counter!(m::JOBS, "Job outcomes by kind and outcome");
    describe_gauge!(m::QUEUE_DEPTH, "Jobs by state across all sessions (refreshed at each scrape)");
    describe_counter!(m::OUTCOMES_REFUSED, "Job outcomes refused by the fence (the session changed hands)");
    describe_histogram!(m::PACING_WAIT, Unit::Seconds, "Time sends waited for pacing");
    describe_counter!(m::KEY_WRITES, "Per-message key writes sent through the group-commit writer");
    describe_counter!(m::KEY_WRITE_STATEMENTS, "Statements that carried the group-commit writer's key writes");
    describe_counter!(m::KEY_WRITE_DEADLOCKS, "Group-commit key statements run again after losing a deadlock");
    describe_counter!(m::WEBHOOK_DELIVERIES, "Webhook deliveries by result (delivered, failed, refused)");
    describe_histogram!(m::WEBHOOK_LATENCY, Unit::Seconds, "Time from posting a webhook to its receiver's answer");

    for status in SessionStatus::ALL {
        metrics::gauge!(m::SESSIONS, "status" => status.as_str()).set(0.0);
    }
    metrics::gauge!(m::ACTIVE_CONNECTIONS).set(0.0);
    for name in [
        m::RECONNECTS_FAILED,
        m::MESSAGES_SENT,
        m::MESSAGES_RECEIVED,
        m::QR_CODES,
        m::OUTCOMES_REFUSED,
        m::KEY_WRITES,
        m::KEY_WRITE_STATEMENTS,
        m::KEY_WRITE_DEADLOCKS,
    ] {
        metrics::counter!(name).increment(0);
    }
    for result in m::WEBHOOK_RESULTS {
        metrics::counter!(m::WEBHOOK_DELIVERIES, "result" => *result).increment(0);
    }
    for kind in m::ERROR_KINDS {
        metrics::counter!(m::ERRORS, "kind" => *kind).increment(0);
    }
    for kind in JobKind::ALL {
        for outcome in Outcome::LABELS {
            metrics::counter!(m::JOBS, "kind" => kind.as_str(), "outcome" => outcome).increment(0);
        }
    }
}
