//! The disk's share of a latency tail. Every commit of a message's path waits for its WAL
//! flush, and on some virtual disks one flush now and then takes 50 ms to over a second
//! (BENCHMARKS.md, 2026-11-30): every message in flight then waits, whatever pgwa does.
//! A watcher samples, every 10 ms through a connection of its own, which backends of the
//! scratch database wait in `IO:WALSync`; one seen in the same flush across consecutive
//! samples was held by the disk at least that long. The latency figures carry the longest such wait,
//! so a run whose p99 a stalled disk made is told from one pgwa made.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use pgwa_pg::bench::ActivitySampler;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_millis(10);

/// Waits of at least this long are counted: a healthy flush takes well under a
/// millisecond, and the message path's p99 target is 20 ms.
const LONG_MS: f64 = 20.0;

/// A backend's wait in one statement: its pid and the statement's start.
type Waiter = (i32, DateTime<Utc>);

/// The WAL flush waits seen while watching. A wait lasts as long as its backend is seen
/// in it, in the same statement, sample after sample: seen again after a sample without
/// it, it is another flush.
#[derive(Debug, Default)]
pub struct FlushWaits {
    /// Waits seen in the last sample: the first and last sample of each.
    open: HashMap<Waiter, (DateTime<Utc>, DateTime<Utc>)>,
    /// Lengths of the waits that ended, ms.
    ended: Vec<f64>,
}

impl FlushWaits {
    pub fn add(&mut self, at: DateTime<Utc>, waiting: &[Waiter]) {
        let mut now = HashMap::with_capacity(waiting.len());
        for &w in waiting {
            let first = self.open.get(&w).map_or(at, |&(first, _)| first);
            now.insert(w, (first, at));
        }
        let ended = self.open.iter().filter(|(w, _)| !now.contains_key(*w)).map(|(_, &span)| ms(span));
        self.ended.extend(ended);
        self.open = now;
    }

    /// The longest wait seen (from its first to its last sample, so a lower bound), ms.
    pub fn longest_ms(&self) -> f64 {
        self.lengths_ms().fold(0.0, f64::max)
    }

    /// How many waits were seen lasting `LONG_MS` or more.
    pub fn long(&self) -> usize {
        self.lengths_ms().filter(|&ms| ms >= LONG_MS).count()
    }

    fn lengths_ms(&self) -> impl Iterator<Item = f64> + '_ {
        self.ended.iter().copied().chain(self.open.values().map(|&span| ms(span)))
    }
}

fn ms((first, last): (DateTime<Utc>, DateTime<Utc>)) -> f64 {
    (last - first).num_microseconds().unwrap_or(0) as f64 / 1e3
}

/// A running watcher; `finish` stops it and returns what it saw (dropped, it stops too).
pub struct WalWatch {
    stop: CancellationToken,
    task: JoinHandle<Result<FlushWaits>>,
}

impl WalWatch {
    pub async fn start(url: &str) -> Result<Self> {
        let mut sampler = ActivitySampler::connect(url).await?;
        let stop = CancellationToken::new();
        let halt = stop.clone();
        let task = tokio::spawn(async move {
            let mut waits = FlushWaits::default();
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !halt.is_cancelled() {
                tick.tick().await;
                let (at, waiting) = sampler.wal_flush_waiters().await?;
                waits.add(at, &waiting);
            }
            Ok(waits)
        });
        Ok(Self { stop, task })
    }

    pub async fn finish(mut self) -> Result<FlushWaits> {
        self.stop.cancel();
        (&mut self.task).await.context("the WAL flush watcher panicked")?
    }
}

impl Drop for WalWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn one_flush_seen_in_consecutive_samples_is_one_wait_of_that_length() {
        let mut w = FlushWaits::default();
        // pid 7's statement waited from 0 to 120 ms; pid 8 twice, in two statements, each
        // seen once; pid 9 for 30 ms; pid 10 at 20 and 110 ms in one statement, not
        // between: two flushes, not a wait of 90 ms.
        for ms in (0..=120).step_by(10) {
            let mut now = vec![(7, t(-5))];
            if ms == 40 {
                now.push((8, t(35)));
            }
            if ms == 50 {
                now.push((8, t(45)));
            }
            if (60..=90).contains(&ms) {
                now.push((9, t(55)));
            }
            if ms == 20 || ms == 110 {
                now.push((10, t(15)));
            }
            w.add(t(ms), &now);
        }
        assert_eq!(w.longest_ms(), 120.0);
        assert_eq!(w.long(), 2);
        let mut lengths: Vec<f64> = w.lengths_ms().collect();
        lengths.sort_by(f64::total_cmp);
        assert_eq!(lengths, [0.0, 0.0, 0.0, 0.0, 30.0, 120.0]);
        assert_eq!(FlushWaits::default().longest_ms(), 0.0);
    }
}
