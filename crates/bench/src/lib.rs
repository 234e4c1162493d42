//! Benchmarks behind `pgwa bench`: commands that print one JSON line of measured figures.

pub mod cpu;
pub mod jobs;
#[cfg(feature = "loopback")]
pub mod loopback;
#[cfg(feature = "loopback")]
pub mod loopback_messages;
#[cfg(feature = "loopback")]
pub mod loopback_sessions;
pub mod outcomes;
#[cfg(feature = "loopback")]
pub mod phone;
pub mod store;

use pgwa_core::config::Config;

/// A scratch database next to the configured one (`<name>_bench`), recreated each run.
pub(crate) async fn scratch_db(cfg: &Config) -> anyhow::Result<String> {
    pgwa_pg::bench::recreate_database_beside(&cfg.database_url, "bench").await
}
