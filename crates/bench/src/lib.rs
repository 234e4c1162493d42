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
mod wal_watch;
#[cfg(feature = "loopback")]
mod worker_proc;

/// `x` to `places` decimal places: a printed figure carries the precision its
/// measurement has, not the float arithmetic's tail.
pub(crate) fn round_to(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// The `p` percentile of `sorted`, interpolated between the two nearest values as
/// Postgres's `percentile_cont`; None for no values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let at = (sorted.len().checked_sub(1)? as f64) * p;
    let (lo, hi) = (sorted[at.floor() as usize], sorted[at.ceil() as usize]);
    Some(lo + (hi - lo) * (at - at.floor()))
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
    use super::{percentile, round_to};

    #[test]
    fn percentiles_interpolate_as_postgres_does() {
        // percentile_cont(0.5) of 1..4 is 2.5; of 1..5, 3; 0.99 of 1..101 is 100.
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), Some(3.0));
        let hundred: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.99), Some(100.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[1.0, 9.0], 1.0), Some(9.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn round_to_keeps_the_places_asked_for() {
        assert_eq!(round_to(1.23456, 2), 1.23);
        assert_eq!(round_to(1.23556, 2), 1.24);
        assert_eq!(round_to(0.0004, 3), 0.0);
        assert_eq!(round_to(41_262.4, 0), 41_262.0);
        assert_eq!(round_to(163.04, 1), 163.0);
    }
}
