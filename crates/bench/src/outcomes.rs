//! The outcomes benchmark: what recording completed sends costs Postgres per job, and
//! what part of it each of the writes a completion makes: the index entries the new
//! row version needs, and (variant `with_before_0032`) the row lock BEFORE ROW triggers
//! took before migration 0032. Each variant takes one of them away or puts it back (or,
//! `message_id_table`, moves the message ids out of wa.job_rows; `finished_jobs_table`
//! moves each finished job into a table of its own, with its own completion statement) in a
//! fresh scratch database, with the same sends left running by the same claim, and
//! times `jobs::complete` over all of them in batches of a drain's size. What a variant
//! saves the completion may cost the enqueue, so that is timed too: the sends go in
//! through `wa.send_text`, one row per call, as apps enqueue them.
//! The variants run in turn, round after round, so a noisy hour weighs on all alike.
//! Prints one JSON value: microseconds per job, each round, and the median per variant.

use std::time::Instant;

use serde_json::json;
use uuid::Uuid;

use crate::round_to;
use pgwa_core::config::Config;
use pgwa_pg::bench as sql;
use pgwa_pg::jobs::{self, ClaimRequest};
use pgwa_pg::workers::{self, Registration};

/// Outcome batch: about what the worker's completer writes per statement in a drain.
const BATCH: usize = 1000;

/// A schema variant: what it changes in the schema the migrations made, before the
/// sends are enqueued (only this benchmark's scratch database is changed), and the
/// statement that records its completions when it is not the worker's
/// (`queries/complete.sql`): the same parameters and answer, a row per job recorded.
struct Variant {
    name: &'static str,
    ddl: &'static str,
    complete: Option<&'static str>,
}

const fn variant(name: &'static str, ddl: &'static str) -> Variant {
    Variant { name, ddl, complete: None }
}

/// The first is the schema as it ships.
const VARIANTS: [Variant; 7] = [
    variant("as_shipped", ""),
    variant("message_id_table", include_str!("../sql/message_id_table.sql")),
    variant("without_jobs_message", "DROP INDEX wa.jobs_message"),
    variant("without_jobs_finished_sends", "DROP INDEX wa.jobs_finished_sends"),
    variant("with_before_0032", include_str!("../sql/jobs_before_0032.sql")),
    variant("with_before_0033", include_str!("../sql/jobs_before_0033.sql")),
    Variant {
        name: "finished_jobs_table",
        ddl: include_str!("../sql/finished_jobs_table.sql"),
        complete: Some(include_str!("../sql/finished_jobs_table_complete.sql")),
    },
];

/// The names of the variants, for `--variant` and its error.
fn variant_names() -> impl Iterator<Item = &'static str> {
    VARIANTS.iter().map(|v| v.name)
}

#[derive(Debug, Clone)]
pub struct OutcomesBench {
    pub jobs: u64,
    pub sessions: u32,
    pub rounds: u32,
    /// The variants to run, by name; all when empty.
    pub only: Vec<String>,
}

pub async fn run(cfg: &Config, b: OutcomesBench) -> anyhow::Result<serde_json::Value> {
    if let Some(unknown) = b.only.iter().find(|n| !variant_names().any(|v| v == n.as_str())) {
        anyhow::bail!(
            "--variant {unknown}: no such variant; the variants are {}",
            variant_names().collect::<Vec<_>>().join(", ")
        );
    }
    let chosen: Vec<&Variant> = VARIANTS.iter().filter(|v| b.only.is_empty() || b.only.iter().any(|n| n == v.name)).collect();
    let mut per_variant: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); chosen.len()];
    for round in 1..=b.rounds {
        for (i, v) in chosen.iter().enumerate() {
            let name = v.name;
            let (complete, enqueue) = one(cfg, &b, v).await?;
            eprintln!(
                "bench-outcomes: round {round}/{}: {name} {complete:.2} µs a completion, {enqueue:.2} µs an enqueue",
                b.rounds
            );
            per_variant[i].0.push(complete);
            per_variant[i].1.push(enqueue);
        }
    }
    let variants: serde_json::Map<String, serde_json::Value> = chosen
        .iter()
        .zip(&per_variant)
        .map(|(Variant { name, .. }, (complete, enqueue))| {
            let v = json!({
                "us_per_job": complete,
                "median": median(complete),
                "enqueue_us_per_job": enqueue,
                "enqueue_median": median(enqueue),
            });
            (name.to_string(), v)
        })
        .collect();
    Ok(json!({ "bench": "outcomes", "jobs": b.jobs, "sessions": b.sessions, "batch": BATCH, "variants": variants }))
}

/// One variant in a new scratch database: its sends enqueued and running, then all of
/// them completed. Returns µs per completion and µs per enqueue.
async fn one(cfg: &Config, b: &OutcomesBench, v: &Variant) -> anyhow::Result<(f64, f64)> {
    super::in_scratch_db(&cfg.database_url, "bench", async |url| measure(b, v, url).await).await
}

async fn measure(b: &OutcomesBench, v: &Variant, url: String) -> anyhow::Result<(f64, f64)> {
    let pool = pgwa_pg::connect(&url, 4).await?;
    pgwa_pg::migrate::migrate(&pool).await?;
    // Before the sends, so what a variant adds grows with them as it would in production.
    if !v.ddl.is_empty() {
        sql::run_script(&pool, v.ddl).await?;
    }
    let worker = Uuid::now_v7();
    let (ids, enqueue_secs) = running_sends(&pool, b, worker).await?;
    // As a drain finds them: the claim's dead versions pruned, statistics current.
    sql::run_script(&pool, "VACUUM ANALYZE wa.job_rows").await?;

    let results = vec![json!({}); BATCH];
    let acked = vec![Some(chrono::Utc::now()); BATCH];
    let started = Instant::now();
    let mut done = 0;
    for chunk in ids.chunks(BATCH) {
        let (results, acked) = (&results[..chunk.len()], &acked[..chunk.len()]);
        done += match v.complete {
            None => jobs::complete(&pool, worker, chunk, results, acked).await?.len(),
            Some(statement) => sql::complete_with(&pool, statement, worker, chunk, results, acked).await?,
        };
    }
    let elapsed = started.elapsed();
    pool.close().await;
    anyhow::ensure!(done == ids.len(), "bench-outcomes: {done} of {} completions were recorded", ids.len());
    let per_job = |secs: f64| round_to(secs * 1e6 / ids.len() as f64, 2);
    Ok((per_job(elapsed.as_secs_f64()), per_job(enqueue_secs)))
}

/// Enqueues the sends and claims them all for `worker` with the worker's own statements,
/// so the rows are what a drain completes; returns their ids in order, as a drain
/// finishes them, and the seconds the enqueue took (one connection).
async fn running_sends(pool: &pgwa_pg::PgPool, b: &OutcomesBench, worker: Uuid) -> anyhow::Result<(Vec<i64>, f64)> {
    sql::add_sessions(pool, "bench-", b.sessions).await?;
    let started = Instant::now();
    for from in (0..b.jobs).step_by(BATCH) {
        sql::enqueue_sends(pool, from, (from + BATCH as u64).min(b.jobs) - 1, b.sessions, 200).await?;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    workers::register(pool, &Registration::new(worker, "bench-outcomes", b.sessions)).await?;
    let held: Vec<String> =
        pgwa_pg::leases::claim(pool, worker, 3600.0, b.sessions as i64).await?.into_iter().map(|h| h.id).collect();
    anyhow::ensure!(held.len() == b.sessions as usize, "bench-outcomes: {} of {} sessions leased", held.len(), b.sessions);
    // Every send of a session in one claim, a session at a time: a chat's sends are then
    // all in the batch, so the FIFO rule holds none back.
    let per_session = b.jobs.div_ceil(b.sessions as u64) as i64;
    let mut ids = Vec::with_capacity(b.jobs as usize);
    for session in held.iter().map(std::slice::from_ref) {
        let req = ClaimRequest { worker, held: session, connected: session, per_session, sessionless: 0 };
        ids.extend(jobs::claim(pool, &req).await?.into_iter().map(|c| c.job.id));
    }
    anyhow::ensure!(ids.len() as u64 == b.jobs, "bench-outcomes: {} of {} sends claimed", ids.len(), b.jobs);
    ids.sort_unstable();
    Ok((ids, enqueue_secs))
}

fn median(runs: &[f64]) -> f64 {
    let mut v = runs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    round_to(if v.len().is_multiple_of(2) { (v[m - 1] + v[m]) / 2.0 } else { v[m] }, 2)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
