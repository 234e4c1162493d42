//! Messages end to end through two worker processes and Postgres: session pairs A_i ->
//! B_i linked to the loopback server; a burst of `wa.send_text` rows (or one set-based
//! insert of them, `--enqueue insert`) for throughput,
//! then sends at a steady rate for latency, measured from the job's `created_at` to the
//! row's `received_at` in B's `wa.inbox` (both written by Postgres, one clock).
//!
//! The whole run is made twice in one invocation: with the sessions' keys in Postgres
//! (production), then with whatsapp-rust's in-memory key store (same server, queue,
//! workers and inbox; a fresh scratch database), so what Postgres-backed keys cost is a
//! ratio measured on the same machine minutes apart. With several rounds the two
//! alternate which goes first, so the second run's warmer caches or a noisy minute weigh
//! on both alike.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use super::loopback::{Harness, WorkerProc, progress};
use super::loopback_latency::{Latency, Timeline};
use crate::round_to;
use pgwa_core::config::Config;
use pgwa_pg::bench as sql;

#[derive(Debug, Clone)]
pub struct MessagesBench {
    /// Session pairs (each pair is one chat, whose messages go one after the other).
    pub pairs: u32,
    /// Messages in the burst.
    pub messages: u64,
    /// Steady rate for the latency run, messages per second.
    pub rate: u32,
    /// Messages in the latency run.
    pub latency_messages: u64,
    /// Rounds of both runs.
    pub rounds: u32,
    /// A CSV file to write every latency message of every run to.
    pub timeline: Option<std::path::PathBuf>,
    /// How the burst is enqueued.
    pub enqueue: Enqueue,
}

/// How the burst's messages go into the queue, both in one statement and one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueue {
    /// A `wa.send_text` call per message, as an app sends one message at a time.
    SendText,
    /// One `INSERT INTO wa.jobs ... SELECT` of every message, as an app enqueues a batch.
    Insert,
}

impl Enqueue {
    pub fn as_str(self) -> &'static str {
        match self {
            Enqueue::SendText => "send_text",
            Enqueue::Insert => "insert",
        }
    }
}

pub async fn run(cfg: &Config, b: MessagesBench) -> Result<serde_json::Value> {
    if b.pairs == 0 || b.messages == 0 || b.rate == 0 || b.latency_messages == 0 || b.rounds == 0 {
        bail!("--pairs, --messages, --rate, --latency-messages and --rounds must be above 0");
    }
    let mut timeline = b.timeline.as_deref().map(Timeline::create).transpose()?;
    let mut rounds = Vec::with_capacity(b.rounds as usize);
    for r in 1..=b.rounds {
        let order = order_of(r);
        let mut figures = serde_json::Map::new();
        for store in order {
            let what = if store == "postgres" { "keys in Postgres" } else { "keys in memory (whatsapp-rust's InMemoryBackend)" };
            progress(format!("round {r}/{}: {what}", b.rounds));
            let (v, messages) =
                crate::in_scratch_db(&cfg.database_url, "bench", async |url| measure(url, &b, store).await).await?;
            if let Some(t) = &mut timeline {
                t.add(r, store, &messages)?;
            }
            figures.insert(store.to_string(), v);
        }
        rounds.push(one_round(order, &figures["postgres"], &figures["memory"]));
    }
    let ratios: Vec<f64> = rounds.iter().map(|r| r["burst_ratio_postgres_to_memory"].as_f64().unwrap_or(0.0)).collect();
    let median = median_index(&ratios);
    let mut out = json!({
        "bench": "loopback_messages",
        "workers": 2,
        "pairs": b.pairs,
        "burst_ratios": ratios,
        "median_round": median + 1,
    });
    for k in ["postgres_keys", "memory_keys", "burst_ratio_postgres_to_memory", "p50_ratio_postgres_to_memory"] {
        out[k] = rounds[median][k].clone();
    }
    out["rounds"] = rounds.into();
    Ok(out)
}

/// One round's figures: both runs, the order they ran in, and their ratios.
fn one_round(order: [&str; 2], postgres: &serde_json::Value, memory: &serde_json::Value) -> serde_json::Value {
    let ratio = |k: &str| {
        let (p, m) = (postgres[k].as_f64().unwrap_or(0.0), memory[k].as_f64().unwrap_or(0.0));
        if m > 0.0 { round_to(p / m, 3) } else { 0.0 }
    };
    json!({
        "order": order,
        "postgres_keys": postgres,
        "memory_keys": memory,
        "burst_ratio_postgres_to_memory": ratio("burst_msgs_per_sec"),
        "p50_ratio_postgres_to_memory": ratio("p50_send_to_inbox_ms"),
    })
}

/// Which key store runs first in round `r` (from 1): Postgres in odd rounds.
fn order_of(r: u32) -> [&'static str; 2] {
    if r % 2 == 1 { ["postgres", "memory"] } else { ["memory", "postgres"] }
}

/// The index of the median of `values` (the upper one of an even count).
fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order[values.len() / 2]
}

/// One run with the workers' keys in `key_store` (postgres or memory): its figures, and
/// its latency messages as Postgres timed them.
async fn measure(url: String, b: &MessagesBench, key_store: &str) -> Result<(serde_json::Value, Vec<sql::LatencyMessage>)> {
    let mut h = Harness::start(url).await?;
    let env = [
        ("PGWA_WORKER__CONNECT_PER_SEC", "1000".to_string()),
        // Pacing is a policy against bans, not a cost of the pipeline: measured without it.
        ("PGWA_PACING__ENABLED", "false".to_string()),
        ("PGWA_WHATSAPP__RUST__KEY_STORE", key_store.to_string()),
    ];
    let workers = [h.spawn_worker(&env)?, h.spawn_worker(&env)?];
    let pairs = b.pairs as i64;
    progress(format!("linking {pairs} session pairs over two workers"));
    let since = h.db_now().await?;
    sql::add_session_pairs(&h.pool, pairs).await?;
    h.wait_connected(2 * pairs, since, Duration::from_secs(600)).await?;
    let crossing = sql::pairs_across_workers(&h.pool).await?;

    progress(format!("burst: {} messages", b.messages));
    let per_pair = (b.messages as i64 + pairs - 1) / pairs;
    let burst = Instant::now();
    let worker_pids: Vec<u32> = workers.iter().map(WorkerProc::pid).collect();
    let cpu_before = crate::cpu::Mark::take(&worker_pids)?;
    let writes_before = sql::write_mark(&h.pool).await?;
    let enqueue = Instant::now();
    let sent = match b.enqueue {
        Enqueue::SendText => sql::send_burst(&h.pool, per_pair).await?,
        Enqueue::Insert => sql::insert_burst(&h.pool, per_pair).await?,
    };
    let enqueue = enqueue.elapsed();
    h.wait_inbox("b%", sent, Duration::from_secs(3600)).await?;
    let cpu = crate::cpu::Mark::take(&worker_pids)?.since(&cpu_before);
    let writes = sql::write_mark(&h.pool).await?.since(&writes_before);
    let wall = burst.elapsed();
    let span = sql::burst_span_secs(&h.pool).await?;

    progress(format!("latency: {} messages at {} per second", b.latency_messages, b.rate));
    let phones = sql::pair_phones(&h.pool).await?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / b.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let watch = crate::wal_watch::WalWatch::start(&h.url).await?;
    let mut conn = h.pool.acquire().await?;
    for i in 0..b.latency_messages {
        tick.tick().await;
        let (from, to) = &phones[i as usize % phones.len()];
        sql::send_latency_message(&mut *conn, from, to, i as i64).await?;
    }
    drop(conn);
    h.wait_inbox("b%", sent + b.latency_messages as i64, Duration::from_secs(600)).await?;
    let flushes = watch.finish().await?;
    let messages = sql::latency_messages(&h.pool).await?;
    let Some(latency) = Latency::of(&messages) else { bail!("none of the latency messages reached B's inbox") };
    // Both at once: stopped in turn, the second would take over the first's sessions as
    // they are released and be stopped while connecting them, and whatsapp-rust logs the
    // requests it had in flight as errors.
    let [first, second] = workers;
    let (first, second) = tokio::join!(first.terminate(), second.terminate());
    first?;
    second?;
    h.close().await;
    let round = |x: f64| round_to(x, 2);
    let figures = json!({
        "key_store": key_store,
        "pairs_across_workers": crossing,
        "burst_messages": sent,
        "burst_msgs_per_sec": round(sent as f64 / span),
        "burst_wall_secs": round(wall.as_secs_f64()),
        "burst_enqueue": b.enqueue.as_str(),
        // Inside the burst's span: no job is visible to the workers before it commits.
        "burst_enqueue_ms": round(enqueue.as_secs_f64() * 1e3),
        // The two workers are the mark's others; this process is the bench and the loopback
        // server with its phone.
        "burst_cpu_ms_per_msg": cpu.split_ms(sent, "workers", "bench_and_server"),
        "burst_postgres_writes_per_msg": writes_per_message(&writes, sent),
        "latency_messages": b.latency_messages,
        "latency_rate_per_sec": b.rate,
        "p50_send_to_inbox_ms": round(latency.p50),
        "p99_send_to_inbox_ms": round(latency.p99),
        "max_send_to_inbox_ms": round(latency.max),
        "p50_send_to_claim_ms": round(latency.p50_to_claim),
        "p50_claim_to_inbox_ms": round(latency.p50_claim_to_inbox),
        "latency_wal_flush_longest_ms": round(flushes.longest_ms()),
        "latency_wal_flushes_over_20ms": flushes.long(),
    });
    Ok((figures, messages))
}

/// What Postgres wrote per message over the burst (whole server): WAL bytes, and
/// transactions that wrote (each a commit record and, with `synchronous_commit` on, a
/// WAL flush, unless it shared one with others).
fn writes_per_message(burst: &sql::Writes, messages: i64) -> serde_json::Value {
    let per = |n: i64| round_to(n as f64 / messages.max(1) as f64, 2);
    json!({ "wal_bytes": per(burst.wal_bytes), "write_transactions": per(burst.write_transactions) })
}

#[cfg(test)]
mod tests {
    use super::{median_index, order_of};

    #[test]
    fn rounds_alternate_and_the_median_round_is_found() {
        assert_eq!(
            (order_of(1), order_of(2), order_of(3)),
            (["postgres", "memory"], ["memory", "postgres"], ["postgres", "memory"])
        );
        assert_eq!(median_index(&[0.7]), 0);
        assert_eq!(median_index(&[0.6, 0.4, 0.5]), 2);
        assert_eq!(median_index(&[0.4, 0.7, 0.5, 0.6]), 3);
    }
}
