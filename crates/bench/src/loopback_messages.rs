//! Messages end to end through two worker processes and Postgres: session pairs A_i ->
//! B_i linked to the loopback server; a burst of `wa.send_text` rows for throughput,
//! then sends at a steady rate for latency, measured from the job's `created_at` to the
//! row's `received_at` in B's `wa.inbox` (both written by Postgres, one clock).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use super::loopback::{Harness, progress};
use pgwa_core::config::Config;

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
}

pub async fn run(cfg: &Config, b: MessagesBench) -> Result<serde_json::Value> {
    if b.pairs == 0 || b.messages == 0 || b.rate == 0 || b.latency_messages == 0 {
        bail!("--pairs, --messages, --rate and --latency-messages must be above 0");
    }
    let h = Harness::start(cfg).await?;
    let env = [
        ("PGWA_WORKER__CONNECT_PER_SEC", "1000".to_string()),
        // Pacing is a policy against bans, not a cost of the pipeline: measured without it.
        ("PGWA_PACING__ENABLED", "false".to_string()),
    ];
    let _workers = [h.spawn_worker(&env)?, h.spawn_worker(&env)?];
    let pairs = b.pairs as i64;
    progress(format!("linking {pairs} session pairs over two workers"));
    let since = h.db_now().await?;
    sqlx::query(
        "SELECT wa.add_session(side || lpad(i::text, 4, '0')) FROM generate_series(1, $1) i, unnest('{a,b}'::text[]) side",
    )
    .bind(pairs)
    .execute(&h.pool)
    .await?;
    h.wait_connected(2 * pairs, since, Duration::from_secs(600)).await?;
    let crossing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM wa.sessions a JOIN wa.sessions b ON b.id = 'b' || substr(a.id, 2)
          WHERE a.id LIKE 'a%' AND a.owner_id IS DISTINCT FROM b.owner_id",
    )
    .fetch_one(&h.pool)
    .await?;

    progress(format!("burst: {} messages", b.messages));
    let per_pair = (b.messages as i64 + pairs - 1) / pairs;
    let burst = Instant::now();
    let sent: i64 = sqlx::query_scalar(
        "WITH s AS (SELECT wa.send_text(a.id, '+' || bs.phone, 'burst ' || g) FROM wa.sessions a
                      JOIN wa.sessions bs ON bs.id = 'b' || substr(a.id, 2), generate_series(1, $1) g
                     WHERE a.id LIKE 'a%')
         SELECT count(*) FROM s",
    )
    .bind(per_pair)
    .fetch_one(&h.pool)
    .await?;
    h.wait_inbox("b%", sent, Duration::from_secs(3600)).await?;
    let wall = burst.elapsed();
    let span: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM (SELECT max(received_at) FROM wa.inbox WHERE session_id LIKE 'b%')
                               - (SELECT min(created_at) FROM wa.jobs WHERE kind = 'send'))::float8",
    )
    .fetch_one(&h.pool)
    .await?;

    progress(format!("latency: {} messages at {} per second", b.latency_messages, b.rate));
    let phones: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.id, '+' || bs.phone FROM wa.sessions a JOIN wa.sessions bs ON bs.id = 'b' || substr(a.id, 2)
          WHERE a.id LIKE 'a%' ORDER BY a.id",
    )
    .fetch_all(&h.pool)
    .await?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / b.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut conn = h.pool.acquire().await?;
    for i in 0..b.latency_messages {
        tick.tick().await;
        let (from, to) = &phones[i as usize % phones.len()];
        sqlx::query("SELECT wa.send_text($1, $2, 'latency ' || $3)")
            .bind(from)
            .bind(to)
            .bind(i as i64)
            .execute(&mut *conn)
            .await?;
    }
    drop(conn);
    h.wait_inbox("b%", sent + b.latency_messages as i64, Duration::from_secs(600)).await?;
    let (p50, p99, max): (f64, f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
           FROM (SELECT extract(epoch FROM i.received_at - j.created_at)::float8 * 1000 AS ms
                   FROM wa.jobs j JOIN wa.inbox i ON i.message_id = j.message_id AND i.session_id = 'b' || substr(j.session_id, 2)
                  WHERE j.kind = 'send' AND j.payload->>'text' LIKE 'latency %') l",
    )
    .fetch_one(&h.pool)
    .await?;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Ok(json!({
        "bench": "loopback_messages",
        "workers": 2,
        "pairs": pairs,
        "pairs_across_workers": crossing,
        "burst_messages": sent,
        "burst_msgs_per_sec": round(sent as f64 / span),
        "burst_wall_secs": round(wall.as_secs_f64()),
        "latency_messages": b.latency_messages,
        "latency_rate_per_sec": b.rate,
        "p50_send_to_inbox_ms": round(p50),
        "p99_send_to_inbox_ms": round(p99),
        "max_send_to_inbox_ms": round(max),
    }))
}
