//! The one backoff policy of pgwa: job retries, the worker's reconnects, LISTEN
//! reconnects, waiting for Postgres at start and during an outage, and the retries of
//! inbox and outcome writes all take their delays from here. It computes delays only;
//! the caller sleeps, on tokio's clock, so tests can run it on a paused one.
//!
//! Not backon (the usual crate): its jitter only adds up to one more delay on top (a
//! delay in [d, 2d)), where pgwa spreads around the delay (+-25 % for jobs) or below it
//! (50-100 % for reconnects); and a job's delay is computed from its attempt count in
//! the database, not by walking an iterator from the first attempt.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff: `initial` after the first failure, times `factor` after each
/// further one, never above `max`; each delay then multiplied by a factor drawn
/// uniformly from `jitter` (low, high) and capped at `max` again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: u32,
    pub max: Duration,
    pub jitter: (f64, f64),
}

impl Backoff {
    /// `initial` doubling up to `max`, without jitter.
    pub const fn doubling(initial: Duration, max: Duration) -> Self {
        Self { initial, factor: 2, max, jitter: (1.0, 1.0) }
    }

    /// Each delay times a factor drawn from `low..=high`, so that what failed together
    /// does not retry together.
    pub const fn with_jitter(self, low: f64, high: f64) -> Self {
        assert!(0.0 <= low && low <= high, "jitter must be 0 <= low <= high");
        Self { jitter: (low, high), ..self }
    }

    /// The delay after failure number `attempt` (1-based; 0 counts as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let grown = self.grown(attempt);
        let (low, high) = self.jitter;
        if (low, high) == (1.0, 1.0) {
            return grown;
        }
        let factor = if low < high { rand::rng().random_range(low..=high) } else { low };
        Duration::try_from_secs_f64(grown.as_secs_f64() * factor).unwrap_or(self.max).min(self.max)
    }

    /// The delays after the first, second, ... failure, without end (`.take(n)` bounds
    /// the attempts).
    pub fn delays(self) -> impl Iterator<Item = Duration> {
        (1..).map(move |attempt| self.delay(attempt))
    }

    /// Before jitter: initial * factor^(attempt-1), at most `max`.
    fn grown(&self, attempt: u32) -> Duration {
        let mut d = self.initial.min(self.max);
        for _ in 1..attempt {
            // Stops growing at the cap (or if it cannot grow), so a large attempt count
            // costs a few steps, not one per attempt.
            if d >= self.max || self.factor < 2 || d.is_zero() {
                break;
            }
            d = d.saturating_mul(self.factor).min(self.max);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetryConfig;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_by_its_factor_up_to_the_cap() {
        let b = Backoff::doubling(ms(100), ms(10_000));
        let got: Vec<u128> = b.delays().take(10).map(|d| d.as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
        assert_eq!(b.delay(0), ms(100), "attempt 0 counts as the first");
        assert_eq!(b.delay(u32::MAX), ms(10_000), "a huge attempt count neither overflows nor loops long");
        let tripling = Backoff { factor: 3, ..b };
        assert_eq!(tripling.delays().take(4).collect::<Vec<_>>(), [ms(100), ms(300), ms(900), ms(2700)]);
    }

    #[test]
    fn the_cap_bounds_the_first_delay_too() {
        let b = Backoff::doubling(ms(500), ms(300));
        assert_eq!(b.delays().take(3).collect::<Vec<_>>(), [ms(300); 3]);
    }

    #[test]
    fn a_constant_policy_does_not_grow() {
        let b = Backoff { factor: 1, ..Backoff::doubling(ms(200), ms(60_000)) };
        assert_eq!(b.delay(1000), ms(200));
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_under_the_cap() {
        let b = Backoff::doubling(ms(200), ms(60_000)).with_jitter(0.5, 1.0);
        let mut seen_low = false;
        for _ in 0..1000 {
            let d = b.delay(1);
            assert!((ms(100)..=ms(200)).contains(&d), "{d:?}");
            seen_low |= d < ms(150);
            let capped = b.delay(20);
            assert!((ms(30_000)..=ms(60_000)).contains(&capped), "{capped:?}");
        }
        assert!(seen_low, "the jitter spreads the delays");
        let above = Backoff::doubling(ms(1000), ms(1100)).with_jitter(0.75, 1.25);
        for _ in 0..1000 {
            assert!(above.delay(1) <= ms(1100), "jitter never passes the cap");
        }
    }

    /// The job retry numbers (`retry.base_ms`, `retry.max_ms`, +-25 %).
    #[test]
    fn doubles_and_caps() {
        let cfg = RetryConfig { base_ms: 1000, max_ms: 10_000 };
        let b = cfg.backoff();
        for _ in 0..100 {
            let d1 = b.delay(1).as_millis();
            assert!((750..=1250).contains(&d1), "{d1}");
            let d3 = b.delay(3).as_millis();
            assert!((3000..=5000).contains(&d3), "{d3}");
            assert!(b.delay(30).as_millis() <= 10_000);
        }
    }
}
