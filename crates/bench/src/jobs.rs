//! The job-core benchmark: N sends enqueued through the SQL API over S simulated
//! sessions, drained by one in-process worker, timed from insert to completed.
//!
//! Burst mode enqueues the whole backlog first (2 connections, 500 rows per statement),
//! then starts the worker and reports how fast it drains. Rate mode enqueues one send
//! per statement at a steady rate and reports latency at that rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::round_to;
use pgwa_core::config::Config;
use pgwa_pg::PgPool;
use pgwa_pg::bench as sql;

#[derive(Debug, Clone)]
pub struct JobsBench {
    pub jobs: u64,
    pub sessions: u32,
    /// Distinct recipients per session (messages to one chat run one after the other).
    pub chats: u32,
    /// Steady enqueue rate in jobs/s; None for burst mode.
    pub rate: Option<u32>,
    pub ack_latency_ms: u64,
    /// Schema variants, each its name and the SQL run after the migrations, in order.
    pub schema_variants: Vec<(String, String)>,
}

pub async fn run(cfg: &Config, b: JobsBench) -> anyhow::Result<serde_json::Value> {
    super::in_scratch_db(&cfg.database_url, "bench", async |url| measure(cfg, b, url).await).await
}

async fn measure(cfg: &Config, b: JobsBench, url: String) -> anyhow::Result<serde_json::Value> {
    // The steady mode's senders hold APP_CONNECTIONS; the rest serve the bench's polls.
    let pool = pgwa_pg::connect(&url, APP_CONNECTIONS as u32 + 4).await?;
    pgwa_pg::migrate::migrate(&pool).await?;
    for (name, ddl) in &b.schema_variants {
        sql::run_script(&pool, ddl).await.map_err(|e| anyhow::anyhow!("schema variant {name}: {e}"))?;
    }
    // The sessions `sql::enqueue_sends` sends from.
    sql::add_sessions(&pool, "bench-", b.sessions).await?;

    let mut wcfg = cfg.clone();
    wcfg.database_url = url.clone();
    wcfg.whatsapp.simulated.ack_latency_ms = b.ack_latency_ms;
    wcfg.whatsapp.simulated.sent_log = None;
    // The bench measures the job core; pacing would measure the pacing defaults.
    wcfg.pacing.enabled = false;
    wcfg.http.enabled = false;
    let start_worker = || async {
        let worker_pool = pgwa_pg::connect(&url, wcfg.db.max_connections).await?;
        let wa = Arc::new(pgwa_wa::simulated::SimulatedWhatsApp::new(wcfg.whatsapp.simulated.clone())?);
        let worker = pgwa_worker::Worker::new(wcfg.clone(), worker_pool, wa).await?;
        let stop = CancellationToken::new();
        anyhow::Ok((stop.clone(), tokio::spawn(worker.run(stop))))
    };

    // Burst: the whole backlog is enqueued first, then one worker drains it; seconds and
    // jobs_per_sec are the drain. Rate: the worker is up first, jobs arrive steadily.
    let mut drain_cpu = None;
    let (total, insert_secs, seconds, (stop, handle)) = match b.rate {
        None => {
            eprintln!("bench: enqueuing {} sends over {} sessions", b.jobs, b.sessions);
            let (total, insert_secs) = burst(&pool, &b).await?;
            eprintln!("bench: enqueued in {insert_secs:.1} s; draining with one worker");
            let started = Instant::now();
            let cpu = crate::cpu::Mark::take(&[])?;
            let worker = start_worker().await?;
            wait_drained(&pool, total, started).await?;
            drain_cpu = Some(crate::cpu::Mark::take(&[])?.since(&cpu).per_unit(total, 1e6));
            (total, insert_secs, started.elapsed().as_secs_f64(), worker)
        }
        Some(rate) => {
            let worker = start_worker().await?;
            wait_connected(&pool, b.sessions).await?;
            eprintln!("bench: {} sessions connected; enqueuing {} sends at {rate}/s", b.sessions, b.jobs);
            let started = Instant::now();
            let (total, insert_secs) = steady(&pool, &b, rate).await?;
            wait_drained(&pool, total, started).await?;
            (total, insert_secs, started.elapsed().as_secs_f64(), worker)
        }
    };
    let (p50, p99) = sql::send_latency_percentiles(&pool).await?;
    let stages = sql::stage_medians(&pool).await?;
    let after_start = sql::first_claim_to_last_outcome(&pool).await?;
    stop.cancel();
    handle.await??;
    pool.close().await;
    Ok(json!({
        "bench": "jobs",
        "mode": if b.rate.is_some() { "rate" } else { "burst" },
        "jobs": total,
        "sessions": b.sessions,
        "chats_per_session": b.chats,
        "rate": b.rate,
        "ack_latency_ms": b.ack_latency_ms,
        "schema_variants": b.schema_variants.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        "seconds": round_to(seconds, 3),
        "insert_seconds": round_to(insert_secs, 3),
        "inserts_per_sec": (total as f64 / insert_secs).round(),
        "jobs_per_sec": (total as f64 / seconds).round(),
        // The drain from the first claim on, the worker's start left out, as Graphile
        // Worker's perf test counts its own (burst mode; in rate mode the enqueue paces it).
        "jobs_per_sec_after_start": (total as f64 / after_start).round(),
        // Burst mode: CPU time per drained job, the machine's (Postgres included) and
        // this process's (the worker); a throughput in one hour of a shared host moves
        // with the host, these move with the work.
        "cpu_us_per_job": drain_cpu.map(|c| round_to(c.machine, 2)),
        "worker_cpu_us_per_job": drain_cpu.map(|c| round_to(c.this_process, 2)),
        "p50_ms": round_to(p50, 3),
        "p99_ms": round_to(p99, 3),
        "p50_enqueue_to_claim_ms": round_to(stages.to_claim, 3),
        "p50_claim_to_ack_ms": round_to(stages.to_ack, 3),
        "p50_ack_to_recorded_ms": round_to(stages.to_recorded, 3),
    }))
}

/// Enqueues all jobs in chunks of 500 rows from 2 connections at once.
async fn burst(pool: &PgPool, b: &JobsBench) -> anyhow::Result<(u64, f64)> {
    let t = Instant::now();
    let chunk = 500u64;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (pool, next, b) = (pool.clone(), next.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let from = next.fetch_add(chunk, std::sync::atomic::Ordering::SeqCst);
                if from >= b.jobs {
                    return anyhow::Ok(());
                }
                let to = (from + chunk).min(b.jobs) - 1;
                sql::enqueue_sends(&pool, from, to, b.sessions, b.chats).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((b.jobs, t.elapsed().as_secs_f64()))
}

/// Connections the steady mode enqueues on, each held by one sender as an app's driver
/// holds its connection (through the pool, sqlx would add two round trips per insert).
const APP_CONNECTIONS: usize = 8;

/// One send per statement at `rate` per second for as many jobs as asked, from
/// `APP_CONNECTIONS` senders taking the next send as they become free.
async fn steady(pool: &PgPool, b: &JobsBench, rate: u32) -> anyhow::Result<(u64, f64)> {
    let t = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut senders = Vec::new();
    for _ in 0..APP_CONNECTIONS {
        let (pool, rx) = (pool.clone(), rx.clone());
        let (s, c) = (b.sessions, b.chats);
        senders.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            loop {
                let next = rx.lock().await.recv().await;
                let Some(i) = next else { return anyhow::Ok(()) };
                sql::enqueue_sends(&mut *conn, i, i, s, c).await?;
            }
        }));
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..b.jobs {
        tick.tick().await;
        if tx.send(i).is_err() {
            break; // every sender stopped: their errors are reported below
        }
    }
    drop(tx);
    for s in senders {
        s.await??;
    }
    Ok((b.jobs, t.elapsed().as_secs_f64()))
}

async fn wait_connected(pool: &PgPool, sessions: u32) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let n = sql::connected_count(pool).await?;
        if n >= sessions as i64 {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("only {n} of {sessions} sessions connected after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls cheaply (unfinished jobs are in partial indexes by phase) until none is left.
async fn wait_drained(pool: &PgPool, total: u64, started: Instant) -> anyhow::Result<()> {
    let mut last_report = Instant::now();
    loop {
        if !sql::queue_busy(pool).await? {
            let done = sql::completed_sends(pool).await?;
            anyhow::ensure!(done as u64 == total, "only {done} of {total} jobs completed; see wa.jobs for the others");
            return Ok(());
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            let done = sql::completed_sends(pool).await?;
            eprintln!("bench: {done}/{total} completed after {:.1} s", started.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        if started.elapsed() > Duration::from_secs(900) {
            anyhow::bail!("jobs still unfinished after 900 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
