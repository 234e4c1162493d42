//! Many linked sessions in one worker against the loopback server: memory per session,
//! CPU at idle, and how long a restarted worker takes to bring them all back (by login,
//! no QR), at the configured connection stagger. With `contacts` K, each session first
//! messages the K sessions after it in a ring, so the memory is that of sessions that
//! have talked to 2K others, not of freshly linked ones.

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

use super::loopback::{Harness, progress};
use crate::round_to;
use pgwa_core::config::Config;
use pgwa_pg::bench as sql;

#[derive(Debug, Clone)]
pub struct SessionsBench {
    pub sessions: u32,
    pub idle_secs: u64,
    /// The worker's `worker.connect_per_sec` (its stagger of connection attempts).
    pub connect_per_sec: u32,
    /// Sessions each one messages before memory is measured.
    pub contacts: u32,
}

fn mib(kib: u64) -> f64 {
    round_to(kib as f64 / 1024.0, 1)
}

pub async fn run(cfg: &Config, b: SessionsBench) -> Result<serde_json::Value> {
    if b.sessions == 0 {
        bail!("--sessions must be above 0");
    }
    if b.contacts >= b.sessions {
        bail!("--contacts ({}) must be below --sessions ({}): a session's contacts are the others", b.contacts, b.sessions);
    }
    crate::in_scratch_db(&cfg.database_url, "bench", async |url| measure(cfg, &b, url).await).await
}

async fn measure(cfg: &Config, b: &SessionsBench, url: String) -> Result<serde_json::Value> {
    let h = Harness::start(url).await?;
    let n = b.sessions as i64;
    let env = [
        ("PGWA_WORKER__CONNECT_PER_SEC", b.connect_per_sec.to_string()),
        // Pacing is a policy against bans; the contacts' messages are setup, not measured.
        ("PGWA_PACING__ENABLED", "false".to_string()),
        ("PGWA_WORKER__MAX_SESSIONS", b.sessions.to_string()),
        ("PGWA_DB__MAX_CONNECTIONS", "20".to_string()),
    ];
    let worker = h.spawn_worker(&env)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base = worker.rss_kib()?;

    progress(format!("adding {n} sessions; the phone links each one as its QR code appears"));
    let since = h.db_now().await?;
    sql::add_numbered_sessions(&h.pool, n).await?;
    let link = h.wait_connected(n, since, Duration::from_secs(3600)).await?;
    progress(format!("{n} sessions linked in {:.1} s", link.as_secs_f64()));
    if b.contacts > 0 {
        let k = b.contacts as i64;
        progress(format!("each session messages the {k} after it ({} messages)", n * k));
        let sent = sql::send_ring(&h.pool, n, k).await?;
        h.wait_inbox("s%", sent, Duration::from_secs(3600)).await?;
    }
    // RSS is read once the worker's periodic heap trim (worker.heap_trim_secs) has run
    // since the last message, so it is what the sessions hold, not what a burst freed.
    let settle = Duration::from_secs(10.max(cfg.worker.heap_trim_secs + 1));
    progress(format!("letting them settle for {} s", settle.as_secs()));
    tokio::time::sleep(settle).await;
    let rss = worker.rss_kib()?;

    progress(format!("measuring idle CPU for {} s", b.idle_secs));
    let cpu_before = crate::cpu::Mark::take(&[worker.pid()])?;
    tokio::time::sleep(Duration::from_secs(b.idle_secs)).await;
    let idle_cpu = crate::cpu::Mark::take(&[worker.pid()])?.since(&cpu_before).others / b.idle_secs as f64;

    progress("restarting the worker (SIGTERM, then a new process)");
    let shutdown = worker.terminate().await?;
    let since = h.db_now().await?;
    let worker = h.spawn_worker(&env)?;
    // The new worker has used next to no CPU yet: what it uses from here is its bring-up.
    let cpu_before = crate::cpu::Mark::take(&[worker.pid()])?;
    let bringup = h.wait_connected(n, since, Duration::from_secs(3600)).await?;
    let bringup_cpu = crate::cpu::Mark::take(&[worker.pid()])?.since(&cpu_before);
    tokio::time::sleep(settle).await;
    let rss_restarted = worker.rss_kib()?;
    let logins = h.server.shared.stats.logins.load(std::sync::atomic::Ordering::Relaxed);
    drop(worker);

    let per_session = |rss: u64| ((rss.saturating_sub(base)) as f64 / n as f64).round();
    Ok(json!({
        "bench": "loopback_sessions",
        "sessions": n,
        "connect_per_sec": b.connect_per_sec,
        "contacts_messaged_per_session": b.contacts,
        "worker_rss_empty_mib": mib(base),
        "worker_rss_mib": mib(rss),
        "rss_per_session_kib": per_session(rss),
        "link_all_secs": round_to(link.as_secs_f64(), 1),
        "idle_cpu_percent_of_one_core": round_to(idle_cpu * 100.0, 1),
        "idle_secs": b.idle_secs,
        "settle_secs": settle.as_secs(),
        "shutdown_secs": round_to(shutdown.as_secs_f64(), 1),
        "restart_bringup_secs": round_to(bringup.as_secs_f64(), 1),
        // Per session brought back: the worker, the bench process (the loopback server and
        // the phone), and the rest of the machine (Postgres, mostly).
        "restart_cpu_ms_per_session": bringup_cpu.split_ms(n, "worker", "server"),
        "worker_rss_after_restart_mib": mib(rss_restarted),
        "rss_per_session_after_restart_kib": per_session(rss_restarted),
        "server_logins": logins,
    }))
}
