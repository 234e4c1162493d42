//! Exponential backoff with jitter for job retries.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryConfig;

/// Delay before the attempt after `attempt` (1-based): base * 2^(attempt-1), capped at
/// max, then jittered by +-25 % so that jobs that failed together do not retry together.
pub fn delay(cfg: &RetryConfig, attempt: i16) -> Duration {
    let exp = u32::try_from(attempt.max(1) - 1).unwrap_or(0).min(40);
    let raw = cfg.base_ms.saturating_mul(1u64 << exp).min(cfg.max_ms);
    let jitter = rand::rng().random_range(0.75..=1.25);
    Duration::from_millis(((raw as f64) * jitter) as u64).min(Duration::from_millis(cfg.max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let cfg = RetryConfig { base_ms: 1000, max_ms: 10_000 };
        for _ in 0..100 {
            let d1 = delay(&cfg, 1).as_millis();
            assert!((750..=1250).contains(&d1), "{d1}");
            let d3 = delay(&cfg, 3).as_millis();
            assert!((3000..=5000).contains(&d3), "{d3}");
            assert!(delay(&cfg, 30).as_millis() <= 10_000);
        }
    }
}
