//! Outbound pacing against bans: token buckets (governor) per session and per recipient
//! of that session. A send waits for both before it goes out; the wait shows in
//! `pgwa_pacing_wait_seconds` (`_sum`: seconds held, `_count`: sends paced). Sending too
//! fast is the most common reason numbers get banned, so the defaults are deliberately
//! slow (see README "Pacing").

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use pgwa_core::config::PacingConfig;

pub struct Pacing {
    session: DefaultDirectRateLimiter,
    recipients: DefaultKeyedRateLimiter<String>,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

impl Pacing {
    pub fn new(cfg: &PacingConfig) -> Self {
        Self {
            session: RateLimiter::direct(quota(cfg.session_per_minute, cfg.session_burst)),
            recipients: RateLimiter::keyed(quota(cfg.recipient_per_minute, cfg.recipient_burst)),
        }
    }

    /// Waits until a message to `chat` may go out; returns how long it waited.
    pub async fn wait(&self, chat: &str) -> Duration {
        let t = Instant::now();
        self.recipients.until_key_ready(&chat.to_owned()).await;
        self.session.until_ready().await;
        if self.recipients.len() > 10_000 {
            // Forget recipients whose bucket is full again, so memory stays bounded.
            self.recipients.retain_recent();
        }
        let waited = t.elapsed();
        metrics::histogram!(pgwa_core::metrics::PACING_WAIT).record(waited.as_secs_f64());
        waited
    }
}
