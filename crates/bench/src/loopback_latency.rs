//! The latency run of `pgwa dev bench-messages`: its percentiles, and its timeline (every
//! message, in the order sent) for `--timeline`, which is how a tail is told apart from
//! a few slow moments of the host: slow messages in clusters a second or two apart,
//! several pairs at once, the send -> claim hop included (BENCHMARKS.md).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use pgwa_pg::bench::LatencyMessage;

use crate::percentile;

/// Send to B's inbox row, ms: median, 99th percentile and slowest; and the medians of its
/// two hops (the sender's pickup, then the claim to the inbox row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub p50_to_claim: f64,
    pub p50_claim_to_inbox: f64,
}

impl Latency {
    /// None for no messages.
    pub fn of(messages: &[LatencyMessage]) -> Option<Self> {
        let sorted = |f: fn(&LatencyMessage) -> f64| {
            let mut v: Vec<f64> = messages.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let total = sorted(|m| m.to_inbox_ms);
        let to_claim = sorted(|m| m.to_claim_ms);
        let past_claim = sorted(|m| m.to_inbox_ms - m.to_claim_ms);
        Some(Self {
            p50: percentile(&total, 0.5)?,
            p99: percentile(&total, 0.99)?,
            max: *total.last()?,
            p50_to_claim: percentile(&to_claim, 0.5)?,
            p50_claim_to_inbox: percentile(&past_claim, 0.5)?,
        })
    }
}

/// A CSV file of every latency message of every run, made before the first run so a
/// path that cannot be written fails at once, not after minutes of measuring.
pub struct Timeline {
    file: std::io::BufWriter<std::fs::File>,
    path: String,
}

impl Timeline {
    pub fn create(path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let file = std::fs::File::create(path).with_context(|| format!("--timeline {shown}: cannot create the file"))?;
        let mut file = std::io::BufWriter::new(file);
        writeln!(file, "round,key_store,sent_ms,pair,to_claim_ms,to_inbox_ms")
            .with_context(|| format!("--timeline {shown}: writing failed"))?;
        Ok(Self { file, path: shown })
    }

    /// Appends one run's messages and flushes them, so an interrupted bench keeps the
    /// runs it finished.
    pub fn add(&mut self, round: u32, key_store: &str, messages: &[LatencyMessage]) -> Result<()> {
        let f = &mut self.file;
        messages
            .iter()
            .try_for_each(|m| {
                writeln!(f, "{round},{key_store},{:.3},{},{:.3},{:.3}", m.sent_ms, m.pair, m.to_claim_ms, m.to_inbox_ms)
            })
            .and_then(|()| f.flush())
            .with_context(|| format!("--timeline {}: writing failed", self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to_claim_ms: f64, to_inbox_ms: f64) -> LatencyMessage {
        LatencyMessage { pair: "a1".into(), sent_ms: 0.0, to_claim_ms, to_inbox_ms }
    }

    #[test]
    fn the_hops_are_taken_per_message_before_their_medians() {
        // Unsorted on purpose; past the claim: 2, 6, 4.
        let l = Latency::of(&[message(1.0, 3.0), message(4.0, 10.0), message(3.0, 7.0)]).unwrap();
        assert_eq!((l.p50, l.max, l.p50_to_claim, l.p50_claim_to_inbox), (7.0, 10.0, 3.0, 4.0));
        assert!((l.p99 - 9.94).abs() < 1e-9, "{l:?}");
        assert_eq!(Latency::of(&[]), None);
    }

    #[test]
    fn the_timeline_has_a_row_per_message_under_its_header() {
        let dir = std::env::temp_dir().join(format!("pgwa-timeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        let mut t = Timeline::create(&path).unwrap();
        t.add(1, "postgres", &[message(1.25, 3.5)]).unwrap();
        t.add(1, "memory", &[message(0.5, 2.0), message(0.75, 2.25)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "round,key_store,sent_ms,pair,to_claim_ms,to_inbox_ms\n1,postgres,0.000,a1,1.250,3.500\n\
             1,memory,0.000,a1,0.500,2.000\n1,memory,0.000,a1,0.750,2.250\n"
        );
        // A path that cannot be made is refused by name.
        let err = Timeline::create(&dir.join("missing").join("t.csv")).err().unwrap();
        assert!(format!("{err:#}").contains("--timeline") && format!("{err:#}").contains("missing"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
