//! `maintenance`: housekeeping tasks, fired by the schedules in wa.schedules (or enqueued
//! by hand). Each runs on one worker, whichever claims it.
//!
//! * `retention`: delete finished jobs past their retention (see config `retention`);
//! * `reap_workers`: forget workers dead for more than an hour;
//! * `sweep_keys`: delete expired WhatsApp key material (sent-message cache, tokens,
//!   secrets, pending inbound, base keys, old LID mappings);
//! * `release_webhooks`: release the next delivery of any webhook whose queue stalled.

use serde_json::json;

use super::{Handler, JobCtx};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::{MaintenanceArgs, MaintenanceTask};

pub struct Maintenance;

impl Handler for Maintenance {
    type Args = MaintenanceArgs;
    async fn run(ctx: &JobCtx<'_>, MaintenanceArgs { task }: MaintenanceArgs) -> Outcome {
        maintain(ctx, task).await
    }
}

async fn maintain(ctx: &JobCtx<'_>, task: MaintenanceTask) -> Outcome {
    let pool = ctx.pool;
    let result = match task {
        MaintenanceTask::Retention => pgwa_pg::maintenance::sweep_jobs(pool, ctx.retention).await.map_err(anyhow::Error::from),
        MaintenanceTask::ReapWorkers => {
            pgwa_pg::workers::reap_dead(pool, 3600.0).await.map(|n| json!({ "reaped": n })).map_err(Into::into)
        }
        MaintenanceTask::SweepKeys => {
            pgwa_pg::keys::sweep::sweep_expired(pool, &pgwa_pg::keys::sweep::SweepOptions::default()).await
        }
        MaintenanceTask::ReleaseWebhooks => {
            pgwa_pg::webhooks::release_stalled(pool).await.map(|n| json!({ "released": n })).map_err(Into::into)
        }
    };
    match result {
        Ok(counts) => Outcome::completed(json!({ "task": task.as_str(), "result": counts })),
        Err(e) => Outcome::retry(e.to_string()),
    }
}
