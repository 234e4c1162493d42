//! `wa.retry_jobs` and `wa.cancel_jobs`: many jobs by one filter, as the single-job
//! functions move one; nothing but what the filter names, nothing of another tenant,
//! nothing at all on bad input.

mod common;

use std::time::Duration;

use common::roles::{Login, refused, snapshot};
use common::{dead_send, fails, sqlstate};
use pgwa_testkit::TestDb;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

async fn states(pool: &PgPool, ids: &[i64]) -> Vec<String> {
    sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = ANY($1) ORDER BY id").bind(ids).fetch_all(pool).await.unwrap()
}

async fn call(pool: &PgPool, sql: &str) -> i32 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn retry_jobs_moves_what_the_filter_names_and_nothing_else() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('a', start => false), wa.add_session('b', start => false)").execute(pool).await.unwrap();
    let timeouts = [
        dead_send(pool, "a", "no server ack within 30 s (timeout)").await,
        dead_send(pool, "a", "Timeout waiting for the socket").await,
    ];
    let refused_by_server = dead_send(pool, "a", "recipient is not on WhatsApp").await;
    let other_session = dead_send(pool, "b", "timeout").await;
    // A dead job whose first error said timeout, and its last did not, is not picked.
    let completed: i64 =
        sqlx::query_scalar("SELECT job_id FROM wa.send_text('a', '+15550000002', 'sent')").fetch_one(pool).await.unwrap();
    sqlx::query("UPDATE wa.jobs SET state = 'completed', finished_at = now(), delivery = 'sent' WHERE id = $1")
        .bind(completed)
        .execute(pool)
        .await
        .unwrap();

    let app = Login::app(&db).await;
    let mut wake = PgListener::connect_with(pool).await.unwrap();
    wake.listen("wa_jobs").await.unwrap();
    let n = call(&app.pool, "SELECT wa.retry_jobs(session => 'a', error_contains => 'TIMEOUT')").await;
    assert_eq!(n, 2);
    assert_eq!(states(pool, &timeouts).await, ["available", "available"]);
    let (delivery, max_attempts, attempts): (String, i16, i16) =
        sqlx::query_as("SELECT delivery::text, max_attempts, attempts FROM wa.jobs WHERE id = $1")
            .bind(timeouts[0])
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(delivery, "queued");
    assert!(max_attempts > attempts, "at least one more attempt allowed");
    assert_eq!(states(pool, &[refused_by_server, other_session, completed]).await, ["dead", "dead", "completed"]);
    let n = tokio::time::timeout(Duration::from_secs(5), wake.recv()).await.expect("a wake-up").unwrap();
    assert_eq!(n.payload(), r#"{"sessions" : ["a"]}"#, "the workers of session a are woken");

    // max_jobs takes the oldest first.
    let more = [dead_send(pool, "b", "x").await, dead_send(pool, "b", "x").await];
    assert_eq!(call(&app.pool, "SELECT wa.retry_jobs(session => 'b', max_jobs => 2)").await, 2);
    assert_eq!(states(pool, &[other_session, more[0], more[1]]).await, ["available", "available", "dead"]);

    // Bad input: refused by name, nothing moved.
    let before = snapshot(pool).await;
    for (sql, code, arg) in [
        ("SELECT wa.retry_jobs(state => 'completed')", "WA005", "state:"),
        ("SELECT wa.retry_jobs(state => 'running')", "WA005", "state:"),
        ("SELECT wa.retry_jobs(kind => 'explode')", "WA004", "kind:"),
        ("SELECT wa.retry_jobs(max_jobs => 0)", "WA005", "max_jobs:"),
        ("SELECT wa.retry_jobs(max_jobs => 100001)", "WA005", "max_jobs:"),
        ("SELECT wa.retry_jobs(max_jobs => NULL)", "WA005", "max_jobs:"),
    ] {
        let (got, msg) = fails(&app.pool, sql).await;
        assert_eq!(got, code, "{sql}: {msg}");
        assert!(msg.starts_with(arg), "{sql}: {msg}");
    }
    assert_eq!(snapshot(pool).await, before, "nothing moved");
    app.drop(&db).await;
}

#[tokio::test]
async fn cancel_jobs_needs_a_filter_and_asks_running_jobs_to_stop() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('a', start => false), wa.add_session('b', start => false)").execute(pool).await.unwrap();
    let queued: Vec<i64> =
        sqlx::query_scalar("SELECT (wa.send_text('a', '+15550000001', 'x')).job_id FROM generate_series(1, 3)")
            .fetch_all(pool)
            .await
            .unwrap();
    let running = queued[2];
    sqlx::query("UPDATE wa.jobs SET state = 'running', worker_id = gen_random_uuid(), attempts = 1 WHERE id = $1")
        .bind(running)
        .execute(pool)
        .await
        .unwrap();
    let of_b: i64 =
        sqlx::query_scalar("SELECT job_id FROM wa.send_text('b', '+15550000001', 'x')").fetch_one(pool).await.unwrap();

    let app = Login::app(&db).await;
    let (code, msg) = fails(&app.pool, "SELECT wa.cancel_jobs()").await;
    assert_eq!(code, "WA005", "a bare call would cancel the whole queue: {msg}");
    assert!(msg.starts_with("filter:"), "{msg}");
    let (code, msg) = fails(&app.pool, "SELECT wa.cancel_jobs(state => 'dead')").await;
    assert_eq!(code, "WA005", "{msg}");

    let mut stop = PgListener::connect_with(pool).await.unwrap();
    stop.listen("wa_job_cancel").await.unwrap();
    assert_eq!(call(&app.pool, "SELECT wa.cancel_jobs(session => 'a')").await, 3);
    assert_eq!(states(pool, &queued).await, ["cancelled", "cancelled", "running"]);
    let asked: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT cancel_requested_at FROM wa.jobs WHERE id = $1").bind(running).fetch_one(pool).await.unwrap();
    assert!(asked.is_some(), "the running job is asked to stop");
    let n = tokio::time::timeout(Duration::from_secs(5), stop.recv()).await.expect("a cancel notice").unwrap();
    let note: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
    assert_eq!((note["job"].as_i64(), note["session"].as_str()), (Some(running), Some("a")));
    assert_eq!(states(pool, &[of_b]).await, ["available"], "another session's job stays");
    let delivery: String =
        sqlx::query_scalar("SELECT delivery::text FROM wa.jobs WHERE id = $1").bind(queued[0]).fetch_one(pool).await.unwrap();
    assert_eq!(delivery, "failed", "a cancelled send reads as failed, as wa.cancel_job leaves it");
    app.drop(&db).await;
}

/// A tenant's filter reaches its own jobs only, whatever it names; a role without
/// grants reaches nothing.
#[tokio::test]
async fn a_tenant_moves_only_its_own_jobs() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let [t_acme, t_beta] = common::roles::two_tenants(&db).await;
    let mine = dead_send(pool, "acme-1", "timeout").await;
    let theirs = dead_send(pool, "beta-1", "timeout").await;
    let acme = Login::new(&db, "acme", Some(&format!("pgwa_t_{t_acme}"))).await;
    assert_eq!(call(&acme.pool, "SELECT wa.retry_jobs()").await, 1);
    assert_eq!(call(&acme.pool, "SELECT wa.retry_jobs(session => 'beta-1')").await, 0);
    assert_eq!(call(&acme.pool, "SELECT wa.cancel_jobs(session => 'beta-1')").await, 0);
    assert_eq!(states(pool, &[mine, theirs]).await, ["available", "dead"]);
    let nobody = Login::nobody(&db).await;
    for sql in ["SELECT wa.retry_jobs()", "SELECT wa.cancel_jobs(session => 'beta-1')"] {
        assert_eq!(refused(&nobody.pool, sql).await, "42501", "{sql}");
    }
    let e = sqlx::query("SELECT wa._check_job_filter(NULL, NULL, 1, '{}', 'x')").execute(&nobody.pool).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    acme.drop(&db).await;
    nobody.drop(&db).await;
    for t in [&t_acme, &t_beta] {
        common::roles::drop_tenant(&db, t).await;
    }
}
