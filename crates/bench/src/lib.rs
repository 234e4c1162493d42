//! Benchmarks behind `pgwa bench`: commands that print one JSON line of measured figures.

pub mod cpu;
pub mod jobs;
#[cfg(feature = "loopback")]
pub mod loopback;
#[cfg(feature = "loopback")]
pub mod loopback_latency;
#[cfg(feature = "loopback")]
pub mod loopback_messages;
#[cfg(feature = "loopback")]
pub mod loopback_sessions;
pub mod outcomes;
#[cfg(feature = "loopback")]
pub mod phone;
pub mod store;
#[cfg(feature = "loopback")]
mod worker_proc;

/// `x` to `places` decimal places: a printed figure carries the precision its
/// measurement has, not the float arithmetic's tail.
pub(crate) fn round_to(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// Runs `measure` in a fresh scratch database `<name>_<suffix>` next to the one of
/// `database_url`, given its URL, and drops it afterwards however the measurement ended,
/// so a benchmark leaves nothing behind on the server. The measurement's own error comes
/// first: a failed drop is reported only after a measurement that succeeded.
pub(crate) async fn in_scratch_db<T>(
    database_url: &str,
    suffix: &str,
    measure: impl AsyncFnOnce(String) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let url = pgwa_pg::bench::recreate_database_beside(database_url, suffix).await?;
    let measured = measure(url.clone()).await;
    let dropped = pgwa_pg::bench::drop_database(database_url, &url).await;
    let value = measured?;
    dropped?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::round_to;

    #[test]
    fn round_to_keeps_the_places_asked_for() {
        assert_eq!(round_to(1.23456, 2), 1.23);
        assert_eq!(round_to(1.23556, 2), 1.24);
        assert_eq!(round_to(0.0004, 3), 0.0);
        assert_eq!(round_to(41_262.4, 0), 41_262.0);
        assert_eq!(round_to(163.04, 1), 163.0);
    }
}
