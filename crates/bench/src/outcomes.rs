//! The outcomes benchmark: what recording completed sends costs Postgres per job, and
//! what part of it each of the writes a completion makes: the index entries the new
//! row version needs, and (variant `with_before_0032`) the row lock BEFORE ROW triggers
//! took before migration 0032. Each variant takes one of them away or puts it back (or,
//! `message_id_table`, moves the message ids out of wa.job_rows; `finished_jobs_table`
//! moves each finished job into a table of its own, with its own completion and receipt
//! statements) in a fresh scratch database, with the same sends left running by the same
//! claim, and times `jobs::complete` over all of them in batches of a drain's size. What a
//! variant saves the completion may cost the enqueue or the receipts, so those are timed
//! too: the sends go in through `wa.send_text`, one row per call, as apps enqueue them,
//! and each completed send is then delivered and read.
//! The variants run in turn, round after round, so a noisy hour weighs on all alike.
//! Prints one JSON value: microseconds per job, each round, and the median per variant.

use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use uuid::Uuid;

use crate::round_to;
use pgwa_core::config::Config;
use pgwa_core::fence::Fence;
use pgwa_core::wa::ReceiptKind;
use pgwa_pg::bench as sql;
use pgwa_pg::jobs::{self, ClaimRequest};
use pgwa_pg::receipts::Receipt;
use pgwa_pg::workers::{self, Registration};

/// Outcome batch: about what the worker's completer writes per statement in a drain.
const BATCH: usize = 1000;

/// A schema variant: what it changes in the schema the migrations made, before the
/// sends are enqueued (only this benchmark's scratch database is changed), and the
/// statements that record its completions and apply its receipts when they are not the
/// worker's (`queries/complete.sql`, `receipts::apply`): the same parameters and answer,
/// a row per job recorded or message moved.
struct Variant {
    name: &'static str,
    ddl: &'static str,
    complete: Option<&'static str>,
    receipt: Option<&'static str>,
}

const fn variant(name: &'static str, ddl: &'static str) -> Variant {
    Variant { name, ddl, complete: None, receipt: None }
}

const FINISHED_COMPLETE: Option<&str> = Some(include_str!("../sql/finished_jobs_table_complete.sql"));
const FINISHED_RECEIPT: Option<&str> = Some(include_str!("../sql/finished_jobs_table_receipt.sql"));

/// The first is the schema as it ships.
const VARIANTS: [Variant; 8] = [
    variant("as_shipped", ""),
    variant("message_id_table", include_str!("../sql/message_id_table.sql")),
    variant("without_jobs_message", "DROP INDEX wa.jobs_message"),
    variant("without_jobs_finished_sends", "DROP INDEX wa.jobs_finished_sends"),
    variant("with_before_0032", include_str!("../sql/jobs_before_0032.sql")),
    variant("with_before_0033", include_str!("../sql/jobs_before_0033.sql")),
    Variant {
        name: "finished_jobs_table",
        ddl: include_str!("../sql/finished_jobs_table.sql"),
        complete: FINISHED_COMPLETE,
        receipt: FINISHED_RECEIPT,
    },
    // The same with room on each page, so a receipt can update its row in place (HOT).
    Variant {
        name: "finished_jobs_table_ff50",
        ddl: concat!(include_str!("../sql/finished_jobs_table.sql"), "\nALTER TABLE wa.finished_jobs SET (fillfactor = 50);"),
        complete: FINISHED_COMPLETE,
        receipt: FINISHED_RECEIPT,
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
    let mut per_variant: Vec<Vec<Figures>> = vec![Vec::new(); chosen.len()];
    for round in 1..=b.rounds {
        for (i, v) in chosen.iter().enumerate() {
            let f = one(cfg, &b, v).await?;
            eprintln!(
                "bench-outcomes: round {round}/{}: {} {:.2} µs a completion, {:.2} µs a receipt, {:.2} µs an enqueue",
                b.rounds, v.name, f.complete, f.receipt, f.enqueue
            );
            per_variant[i].push(f);
        }
    }
    let variants: serde_json::Map<String, serde_json::Value> = chosen
        .iter()
        .zip(&per_variant)
        .map(|(Variant { name, .. }, rounds)| {
            let (complete, receipt, enqueue): (Vec<f64>, Vec<f64>, Vec<f64>) = (
                rounds.iter().map(|f| f.complete).collect(),
                rounds.iter().map(|f| f.receipt).collect(),
                rounds.iter().map(|f| f.enqueue).collect(),
            );
            let v = json!({
                "us_per_job": complete,
                "median": median(&complete),
                "receipt_us_per_receipt": receipt,
                "receipt_median": median(&receipt),
                "enqueue_us_per_job": enqueue,
                "enqueue_median": median(&enqueue),
            });
            (name.to_string(), v)
        })
        .collect();
    Ok(json!({ "bench": "outcomes", "jobs": b.jobs, "sessions": b.sessions, "batch": BATCH, "variants": variants }))
}

/// What one variant costs in one round, in µs: a completion, a receipt, an enqueue.
#[derive(Debug, Clone, Copy)]
struct Figures {
    complete: f64,
    receipt: f64,
    enqueue: f64,
}

/// One variant in a new scratch database: its sends enqueued and running, then all of
/// them completed, then each delivered and read (two receipts, as a one-to-one chat
/// sends them).
async fn one(cfg: &Config, b: &OutcomesBench, v: &Variant) -> anyhow::Result<Figures> {
    super::in_scratch_db(&cfg.database_url, "bench", async |url| measure(b, v, url).await).await
}

async fn measure(b: &OutcomesBench, v: &Variant, url: String) -> anyhow::Result<Figures> {
    let pool = pgwa_pg::connect(&url, 4).await?;
    pgwa_pg::migrate::migrate(&pool).await?;
    // Before the sends, so what a variant adds grows with them as it would in production.
    if !v.ddl.is_empty() {
        sql::run_script(&pool, v.ddl).await?;
    }
    let worker = Uuid::now_v7();
    let (sends, enqueue_secs) = running_sends(&pool, b, worker).await?;
    let ids: Vec<i64> = sends.iter().map(|s| s.0).collect();
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
    anyhow::ensure!(done == ids.len(), "bench-outcomes: {done} of {} completions were recorded", ids.len());
    let receipt_secs = receipts(&pool, v, worker, &sends).await?;
    pool.close().await;
    let per_job = |secs: f64| round_to(secs * 1e6 / ids.len() as f64, 2);
    Ok(Figures { complete: per_job(elapsed.as_secs_f64()), receipt: per_job(receipt_secs / 2.0), enqueue: per_job(enqueue_secs) })
}

/// Every send delivered, then every send read, in batches of BATCH receipts, through the
/// worker's receipt statement or the variant's; returns the seconds both passes took.
async fn receipts(pool: &pgwa_pg::PgPool, v: &Variant, worker: Uuid, sends: &[RunningSend]) -> anyhow::Result<f64> {
    let mut secs = 0.0;
    for kind in [ReceiptKind::Delivered, ReceiptKind::Read] {
        let batch: Vec<Receipt> = sends
            .iter()
            .map(|(_, session, epoch, message)| Receipt {
                fence: Fence { worker, session: session.clone(), epoch: *epoch },
                message_id: message.clone(),
                kind,
                at: chrono::Utc::now(),
            })
            .collect();
        let started = Instant::now();
        let mut moved = 0;
        for chunk in batch.chunks(BATCH) {
            moved += match v.receipt {
                None => pgwa_pg::receipts::apply(pool, chunk).await?.len(),
                Some(statement) => sql::receipts_with(pool, statement, chunk).await?,
            };
        }
        secs += started.elapsed().as_secs_f64();
        anyhow::ensure!(moved == sends.len(), "bench-outcomes: {moved} of {} {kind:?} receipts were applied", sends.len());
    }
    Ok(secs)
}

/// A running send: job id, session, the epoch of its claim, message id.
type RunningSend = (i64, String, i64, String);

/// Enqueues the sends and claims them all for `worker` with the worker's own statements,
/// so the rows are what a drain completes; returns them in order of id, as a drain
/// finishes them, and the seconds the enqueue took (one connection).
async fn running_sends(pool: &pgwa_pg::PgPool, b: &OutcomesBench, worker: Uuid) -> anyhow::Result<(Vec<RunningSend>, f64)> {
    sql::add_sessions(pool, "bench-", b.sessions).await?;
    let started = Instant::now();
    for from in (0..b.jobs).step_by(BATCH) {
        sql::enqueue_sends(pool, from, (from + BATCH as u64).min(b.jobs) - 1, b.sessions, 200).await?;
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    workers::register(pool, &Registration::new(worker, "bench-outcomes", b.sessions)).await?;
    let held = pgwa_pg::leases::claim(pool, worker, 3600.0, b.sessions as i64).await?;
    anyhow::ensure!(held.len() == b.sessions as usize, "bench-outcomes: {} of {} sessions leased", held.len(), b.sessions);
    // Every send of a session in one claim, a session at a time: a chat's sends are then
    // all in the batch, so the FIFO rule holds none back.
    let per_session = b.jobs.div_ceil(b.sessions as u64) as i64;
    let mut sends = Vec::with_capacity(b.jobs as usize);
    for h in &held {
        let session = std::slice::from_ref(&h.id);
        let req = ClaimRequest { worker, held: session, connected: session, per_session, sessionless: 0 };
        for c in jobs::claim(pool, &req).await? {
            let message = c.job.message_id.context("bench-outcomes: a claimed send has no message id")?;
            sends.push((c.job.id, h.id.clone(), h.epoch, message));
        }
    }
    anyhow::ensure!(sends.len() as u64 == b.jobs, "bench-outcomes: {} of {} sends claimed", sends.len(), b.jobs);
    sends.sort_unstable_by_key(|s| s.0);
    Ok((sends, enqueue_secs))
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
