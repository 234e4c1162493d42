//! Gives the memory that bursts freed back to the system.
//!
//! glibc's malloc keeps what a process frees in its arenas for reuse and returns pages
//! only from the top of each heap. A worker's bursts (linking sessions, a busy minute of
//! messages: Signal sessions built, stanzas decoded, key rows read) leave those arenas
//! resident though mostly free: with 200 sessions that had each just talked with 20
//! contacts, two 64 MB arenas stayed fully resident (BENCHMARKS.md, "Memory of sessions
//! that have talked"). `malloc_trim` hands every free page of every arena back; it takes
//! the arenas' locks for a few milliseconds, so it runs on the blocking pool, on a timer.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Trims the heap every `every` until `stop`; `every` of zero turns it off. Other
/// allocators and C libraries than glibc's have no such call: nothing runs there.
pub fn spawn(every: Duration, stop: CancellationToken) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !every.is_zero() {
        tokio::spawn(trim_every(every, stop));
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (every, stop);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
async fn trim_every(every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free pages; it takes each arena's own lock.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// What a burst leaves behind: many small blocks freed, a few kept among them (as
    /// a session's state is), so no heap top is free for malloc to give back by itself.
    #[test]
    fn a_trim_gives_back_what_a_burst_freed() {
        let mut blocks: Vec<Box<[u8; 512]>> = (0..200_000).map(|i| Box::new([i as u8; 512])).collect();
        let kept: Vec<Box<[u8; 512]>> = blocks.drain(..).step_by(64).collect();
        let before = rss_kib();
        super::trim();
        let after = rss_kib();
        assert!(
            before >= after + 30 * 1024,
            "about 100 MB freed, of which at least 30 MB given back: {before} KiB -> {after} KiB"
        );
        assert_eq!(kept.len(), 3_125);
    }
}
