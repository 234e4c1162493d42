//! Rate limits of the connect page (governor token buckets): per client address on
//! every request, and per session on what reaches WhatsApp (asking for a pairing code,
//! a new round of QR codes), so neither a script nor a customer pressing a button again
//! and again can get the number rate-limited or banned by WhatsApp.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct Limits {
    clients: DefaultKeyedRateLimiter<IpAddr>,
    actions: DefaultKeyedRateLimiter<String>,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl Limits {
    /// `per_client`: requests a minute from one address (burst of the same size);
    /// `actions_per_hour`: pairing codes and restarts an hour for one session (burst 3).
    pub fn new(per_client: u32, actions_per_hour: u32) -> Self {
        let actions = Quota::with_period(Duration::from_secs(3600) / actions_per_hour.max(1))
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(3).expect("3 > 0"));
        Self { clients: RateLimiter::keyed(quota(per_client, per_client)), actions: RateLimiter::keyed(actions) }
    }

    /// Ok, or the seconds to wait.
    pub fn client(&self, ip: IpAddr) -> Result<(), u64> {
        let r = self.clients.check_key(&ip).map_err(wait_secs);
        if self.clients.len() > 100_000 {
            self.clients.retain_recent();
        }
        r
    }

    pub fn action(&self, session: &str) -> Result<(), u64> {
        let r = self.actions.check_key(&session.to_owned()).map_err(wait_secs);
        if self.actions.len() > 100_000 {
            self.actions.retain_recent();
        }
        r
    }
}

fn wait_secs(n: governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    n.wait_time_from(DefaultClock::default().now()).as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_rate_waits_and_others_do_not() {
        let l = Limits::new(5, 10);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!((0..5).all(|_| l.client(a).is_ok()));
        let wait = l.client(a).expect_err("the sixth request within a minute");
        assert!((1..=12).contains(&wait), "waits about 12 s for the next token: {wait}");
        assert!(l.client(b).is_ok(), "another address has its own bucket");
        assert!((0..3).all(|_| l.action("s1").is_ok()));
        assert!(l.action("s1").is_err(), "a fourth code in a row is refused");
        assert!(l.action("s2").is_ok());
    }
}
