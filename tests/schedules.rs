//! wa.schedules driven by apalis-cron in every worker: each tick runs once however many
//! workers fire it, missed ticks are caught up, bad cron is reported; and the retention
//! task deletes in bounded batches.

mod common;

use std::time::Duration;

use common::{InProcess, count, eventually, fast_config};
use pgwa_testkit::TestDb;

#[tokio::test]
async fn each_tick_runs_once_across_workers() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("UPDATE wa.schedules SET enabled = false").execute(&db.pool).await.unwrap();
    sqlx::query("INSERT INTO wa.schedules (name, cron, task) VALUES ('every-second', '* * * * * *', 'reap_workers')")
        .execute(&db.pool)
        .await
        .unwrap();
    let a = InProcess::start(fast_config(&db)).await;
    let b = InProcess::start(fast_config(&db)).await;
    let c = InProcess::start(fast_config(&db)).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    a.stop().await;
    b.stop().await;
    c.stop().await;
    let (jobs, ticks, completed): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT payload->>'tick'), count(*) FILTER (WHERE state = 'completed')
           FROM wa.jobs WHERE payload->>'schedule' = 'every-second'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(ticks >= 2, "expected a job per second, got {ticks}");
    assert_eq!(jobs, ticks, "three workers fired each tick; each must run once");
    assert!(completed >= ticks - 1, "{completed} of {ticks} completed");
    let (last_run, next_run): (Option<chrono::DateTime<chrono::Utc>>, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT last_run_at, next_run_at FROM wa.schedules WHERE name = 'every-second'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(last_run.unwrap() < next_run.unwrap());
}

#[tokio::test]
async fn a_missed_tick_is_caught_up_and_bad_cron_is_reported() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("UPDATE wa.schedules SET enabled = false").execute(&db.pool).await.unwrap();
    sqlx::query(
        "INSERT INTO wa.schedules (name, cron, task, next_run_at) VALUES
            ('hourly', '0 * * * *', 'reap_workers', now() - interval '2 hours'),
            ('broken', '61 * * * *', 'reap_workers', NULL)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    eventually(Duration::from_secs(10), "the missed tick to run", || async {
        (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE payload->>'schedule' = 'hourly' AND state = 'completed'").await == 1)
            .then_some(())
    })
    .await;
    let error: Option<String> = eventually(Duration::from_secs(5), "the cron error", || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT last_error FROM wa.schedules WHERE name = 'broken'")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .map(Some)
    })
    .await;
    w.stop().await;
    assert!(error.unwrap().starts_with("cron: cannot parse"));
    let bad =
        sqlx::query("INSERT INTO wa.schedules (name, cron, task) VALUES ('x', 'nonsense', 'retention')").execute(&db.pool).await;
    assert_eq!(common::sqlstate(&bad.unwrap_err()), "23514", "a cron without 5 to 7 fields is refused by a CHECK");
}

/// Every schedule a migration ships names a task the workers run: a task they did not
/// know would fail once a minute, forever, in every deployment.
#[tokio::test]
async fn shipped_schedules_name_tasks_the_workers_know() {
    use pgwa_core::job::args::{JobArgs, MaintenanceArgs};
    let db = TestDb::new().await.unwrap();
    let tasks: Vec<String> = sqlx::query_scalar("SELECT task FROM wa.schedules ORDER BY name").fetch_all(&db.pool).await.unwrap();
    assert_eq!(tasks, ["reap_workers", "release_webhooks", "retention", "sweep_keys"]);
    for task in tasks {
        MaintenanceArgs::from_payload(&serde_json::json!({ "task": task })).unwrap_or_else(|e| panic!("{task}: {e}"));
    }
}

/// The SQL check on maintenance payloads (sql/01_validation.sql) accepts every task the
/// workers know, and nothing else: the two lists are written apart, and a task missing
/// from the SQL one could not be scheduled at all.
#[tokio::test]
async fn the_enqueue_check_accepts_exactly_the_workers_maintenance_tasks() {
    use pgwa_core::job::args::MaintenanceTask;
    let db = TestDb::new().await.unwrap();
    for task in MaintenanceTask::ALL {
        sqlx::query("INSERT INTO wa.jobs (kind, payload) VALUES ('maintenance', jsonb_build_object('task', $1::text))")
            .bind(task.as_str())
            .execute(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{}: refused by the enqueue check: {e}", task.as_str()));
    }
    let unknown = sqlx::query("INSERT INTO wa.jobs (kind, payload) VALUES ('maintenance', '{\"task\": \"defrag\"}')")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&unknown), "WA006");
    assert!(unknown.to_string().contains("payload.task: 'defrag' is not a maintenance task"), "{unknown}");
}

/// The stalled-webhook repair runs as a maintenance job (once across the workers), and
/// reports what it released.
#[tokio::test]
async fn release_webhooks_runs_as_a_maintenance_task() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("UPDATE wa.schedules SET enabled = false").execute(&db.pool).await.unwrap();
    sqlx::query("UPDATE wa.schedules SET enabled = true, cron = '* * * * * *' WHERE name = 'release_webhooks'")
        .execute(&db.pool)
        .await
        .unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    let result: serde_json::Value = eventually(Duration::from_secs(10), "a release_webhooks job to complete", || async {
        sqlx::query_scalar(
            "SELECT result FROM wa.jobs WHERE payload->>'schedule' = 'release_webhooks' AND state = 'completed' LIMIT 1",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap()
    })
    .await;
    w.stop().await;
    assert_eq!(result, serde_json::json!({ "task": "release_webhooks", "result": { "released": 0 } }));
}

#[tokio::test]
async fn retention_deletes_old_finished_jobs_in_batches() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("UPDATE wa.schedules SET enabled = false").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.send_text('s1', '+15550000001', 'm' || i) FROM generate_series(1, 9) i")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("SELECT wa.reconnect('s1') FROM generate_series(1, 5)").execute(&db.pool).await.unwrap();
    // 5 old completed sends, 2 recent ones, 2 old dead ones; 5 old completed reconnects.
    sqlx::raw_sql(
        "UPDATE wa.jobs SET state = 'completed', finished_at = now() - interval '40 days' WHERE id IN (SELECT id FROM wa.jobs WHERE kind = 'send' ORDER BY id LIMIT 5);
         UPDATE wa.jobs SET state = 'completed', finished_at = now() WHERE id IN (SELECT id FROM wa.jobs WHERE kind = 'send' AND state = 'available' ORDER BY id LIMIT 2);
         UPDATE wa.jobs SET state = 'dead', finished_at = now() - interval '40 days' WHERE kind = 'send' AND state = 'available';
         UPDATE wa.jobs SET state = 'completed', finished_at = now() - interval '2 days' WHERE kind = 'reconnect';",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let mut cfg = fast_config(&db);
    cfg.retention.batch = 2;
    sqlx::query("UPDATE wa.sessions SET desired = 'stopped'").execute(&db.pool).await.unwrap();
    let job: i64 = sqlx::query_scalar("SELECT (wa.enqueue(NULL, 'maintenance', '{\"task\": \"retention\"}')).id")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let w = InProcess::start(cfg).await;
    let result: serde_json::Value = eventually(Duration::from_secs(10), "retention to run", || async {
        sqlx::query_scalar::<_, Option<serde_json::Value>>("SELECT result FROM wa.jobs WHERE id = $1 AND state = 'completed'")
            .bind(job)
            .fetch_optional(&db.pool)
            .await
            .unwrap()
            .flatten()
    })
    .await;
    w.stop().await;
    assert_eq!(result["result"], serde_json::json!({ "completed": 5, "sends": 5, "dead": 2 }));
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE kind = 'send'").await, 2);
}
