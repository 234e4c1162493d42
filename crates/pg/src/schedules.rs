//! wa.schedules: read by every worker, turned into maintenance jobs tick by tick.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    pub task: String,
    pub payload: serde_json::Value,
    pub next_run_at: Option<DateTime<Utc>>,
}

pub async fn enabled(pool: &PgPool) -> sqlx::Result<Vec<Schedule>> {
    sqlx::query_as!(Schedule, "SELECT name, cron, task, payload, next_run_at FROM wa.schedules WHERE enabled ORDER BY name")
        .fetch_all(pool)
        .await
}

/// Enqueues the maintenance job of one tick, once across all workers (idempotency key
/// per schedule and tick), and records the tick. Returns the job id.
pub async fn fire(pool: &PgPool, s: &Schedule, tick: DateTime<Utc>, next: Option<DateTime<Utc>>) -> sqlx::Result<i64> {
    let key = format!("schedule:{}:{}", s.name, tick.timestamp());
    let mut payload = s.payload.clone();
    if let Some(obj) = payload.as_object_mut() {
        obj.insert("task".into(), s.task.clone().into());
        obj.insert("schedule".into(), s.name.clone().into());
        obj.insert("tick".into(), tick.to_rfc3339().into());
    }
    sqlx::query_scalar!(
        r#"WITH j AS (SELECT (wa.enqueue(NULL, 'maintenance', $2, idempotency_key => $3, max_attempts => 3)).id AS id)
         UPDATE wa.schedules SET last_run_at = greatest(last_run_at, $4), last_job_id = j.id,
                next_run_at = $5, last_error = NULL
           FROM j WHERE name = $1
         RETURNING j.id AS "id!""#,
        s.name,
        payload,
        key,
        tick,
        next,
    )
    .fetch_one(pool)
    .await
}

/// Records why a schedule cannot run (shown in wa.schedules.last_error).
pub async fn set_error(pool: &PgPool, name: &str, error: &str) -> sqlx::Result<()> {
    sqlx::query!("UPDATE wa.schedules SET last_error = $2 WHERE name = $1 AND last_error IS DISTINCT FROM $2", name, error)
        .execute(pool)
        .await?;
    Ok(())
}
