//! The store benchmark: Signal session-record writes and reads per second, storing a
//! batch of 100 prekeys, and loading one session's auth state (query, revival and
//! `Device` construction) with 1,000 sessions in the database. Prints as one JSON value.

use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::store::traits::{DeviceStore, SignalStore};

use crate::round_to;
use pgwa_pg::keys::{PgBackend, bench_data};

const SESSIONS: usize = 1000;
const RECORD_OPS: usize = 4000;
const WRITERS: usize = 16;
const LOADS: usize = 2000;

/// Milliseconds, sorted, and their percentile `p` to the microsecond.
fn ms_at(sorted: &[f64], p: f64) -> anyhow::Result<f64> {
    Ok(round_to(crate::percentile(sorted, p).context("no samples")?, 3))
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Runs against a scratch database next to `database_url` (dropped at the end).
pub async fn run(database_url: &str) -> anyhow::Result<serde_json::Value> {
    super::in_scratch_db(database_url, "store_bench", async |url| measure(&url).await).await
}

async fn measure(url: &str) -> anyhow::Result<serde_json::Value> {
    let pool = pgwa_pg::connect(url, WRITERS as u32).await?;
    pgwa_pg::migrate::migrate(&pool).await?;
    let started = Instant::now();
    let ids = bench_data::populate(&pool, SESSIONS, 100, 20).await?;
    let populate_s = started.elapsed().as_secs_f64();

    // Session records (~1 KB, a typical ratchet) put then get, from WRITERS tasks, each
    // on its own session as workers would be.
    let record = Bytes::from(vec![7u8; 1024]);
    let per = RECORD_OPS / WRITERS;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for id in ids.iter().take(WRITERS) {
        let b = PgBackend::offline(pool.clone(), id.clone());
        let record = record.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                b.put_session(&format!("1666{i:07}@c.us"), &record).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let put_per_sec = (per * WRITERS) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for id in ids.iter().take(WRITERS) {
        let b = PgBackend::offline(pool.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                anyhow::ensure!(b.get_session(&format!("1666{i:07}@c.us")).await?.is_some(), "record missing");
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let get_per_sec = (per * WRITERS) as f64 / t.elapsed().as_secs_f64();

    // A batch of 100 prekeys (what a prekey upload stores), 50 times.
    let b = PgBackend::offline(pool.clone(), ids[SESSIONS - 1].clone());
    let mut batches = Vec::new();
    for round in 0..50u32 {
        let keys: Vec<(u32, Bytes)> = (0..100).map(|i| (10_000 + round * 100 + i, Bytes::from(vec![3u8; 70]))).collect();
        let t = Instant::now();
        b.store_prekeys_batch(&keys, false).await?;
        batches.push(ms_since(t));
    }
    batches.sort_by(f64::total_cmp);

    // Auth state loads of random sessions among 1,000.
    let mut loads = Vec::with_capacity(LOADS);
    for i in 0..LOADS {
        let id = &ids[(i * 7919) % SESSIONS];
        let t = Instant::now();
        let d = PgBackend::offline(pool.clone(), id.clone()).load().await?;
        loads.push(ms_since(t));
        anyhow::ensure!(d.is_some(), "auth state of {id} missing");
    }
    loads.sort_by(f64::total_cmp);
    let (p50, p99) = (ms_at(&loads, 0.50)?, ms_at(&loads, 0.99)?);
    pool.close().await;
    Ok(json!({
        "bench": "store",
        "sessions": SESSIONS,
        "rows": {"prekeys_per_session": 100, "signal_sessions_per_session": 20},
        "populate_s": round_to(populate_s, 1),
        "writers": WRITERS,
        "session_record_put_per_sec": put_per_sec.round(),
        "session_record_get_per_sec": get_per_sec.round(),
        "prekeys_100_batch_ms": {"p50": ms_at(&batches, 0.5)?, "max": ms_at(&batches, 1.0)?},
        "auth_state_load_ms": {"p50": p50, "p99": p99, "samples": LOADS},
        "auth_state_load_target_met": p50 <= 5.0 && p99 <= 20.0,
    }))
}
