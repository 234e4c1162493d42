//! The Prometheus recorder, installed once per process; /metrics renders it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use pgwa_core::metrics::JOB_DURATION;

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
