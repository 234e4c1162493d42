//! `maintenance`: housekeeping tasks, fired by the schedules in wa.schedules (or enqueued
//! by hand). Each runs on one worker, whichever claims it.
//!
//! * `retention`: delete finished jobs past their retention (see config `retention`);
//! * `reap_workers`: forget workers dead for more than an hour;
//! * `sweep_keys`: delete expired WhatsApp key material (sent-message cache, tokens,
//!   secrets, pending inbound, base keys, old LID mappings).

use std::sync::Arc;

use serde_json::json;

use crate::Shared;
use pgwa_core::job::{ClaimedJob, Outcome};

pub const TASKS: [&str; 3] = ["retention", "reap_workers", "sweep_keys"];

pub async fn run(shared: &Arc<Shared>, job: &ClaimedJob) -> Outcome {
    let task = job.payload.get("task").and_then(|v| v.as_str()).unwrap_or_default();
    let pool = &shared.pool;
    let result = match task {
        "retention" => pgwa_pg::maintenance::sweep_jobs(pool, &shared.cfg.retention).await.map_err(anyhow::Error::from),
        "reap_workers" => pgwa_pg::workers::reap_dead(pool, 3600.0).await.map(|n| json!({ "reaped": n })).map_err(Into::into),
        "sweep_keys" => pgwa_pg::keys::sweep::sweep_expired(pool, &pgwa_pg::keys::sweep::SweepOptions::default()).await,
        other => return Outcome::fail(format!("payload.task: unknown task {other:?} (accepted: {})", TASKS.join(", "))),
    };
    match result {
        Ok(counts) => Outcome::completed(json!({ "task": task, "result": counts })),
        Err(e) => Outcome::retry(e.to_string()),
    }
}
