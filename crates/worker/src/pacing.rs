//! Outbound pacing against bans: token buckets (governor) per session and per recipient
//! of that session. A send waits for both before it goes out; the wait shows in
//! `pgwa_pacing_wait_seconds` (`_sum`: seconds held, `_count`: sends paced). Sending too
//! fast is the most common reason numbers get banned, so the defaults are deliberately
//! slow (see README "Pacing").

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use pgwa_core::config::PacingConfig;
use pgwa_core::wa::ChatState;

pub struct Pacing {
    session: DefaultDirectRateLimiter,
    recipients: DefaultKeyedRateLimiter<String>,
    typing_per_char: Duration,
    typing_max: Duration,
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
            typing_per_char: Duration::from_millis(cfg.typing_ms_per_char.into()),
            typing_max: Duration::from_millis(cfg.typing_max_ms.into()),
        }
    }

    /// What the chat is shown before this send, and for how long: typing for a time that
    /// grows with the text (or caption), recording for a voice note's length; None when
    /// typing is off or the message has no words (a reaction, a location, an edit).
    pub fn typing(&self, payload: &serde_json::Value) -> Option<(ChatState, Duration)> {
        if self.typing_per_char.is_zero() {
            return None;
        }
        let kind = payload.get("type").and_then(|t| t.as_str()).unwrap_or("text");
        let (state, lasts) = match kind {
            "voice" => {
                let seconds = payload.get("seconds").and_then(|s| s.as_u64()).unwrap_or(3);
                (ChatState::Recording, Duration::from_secs(seconds))
            }
            "text" | "image" | "video" | "document" => {
                let words = payload.get("text").or_else(|| payload.get("caption")).and_then(|t| t.as_str())?;
                (ChatState::Composing, self.typing_per_char * words.chars().count().min(100_000) as u32)
            }
            _ => return None,
        };
        Some((state, lasts.min(self.typing_max)))
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
