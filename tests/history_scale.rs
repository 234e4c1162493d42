//! What runs often reads what its work needs, not the history kept for weeks: finished
//! sends (30 days), the inbox, keyed jobs. Each test keeps tens of thousands of rows of
//! history beside a little live work and counts the blocks a statement touches, which
//! grows with the history when an index is missing or cannot be used.

use pgwa_testkit::TestDb;
use sqlx::PgPool;

/// Blocks of `table` (its heap and indexes, found in cache or read) that `work` touched.
/// The pool must hold one connection, so the statistics of the work are that backend's,
/// flushed before and after it; autovacuum, which would add its own, is off for the
/// tables measured.
async fn blocks_touched<F: Future<Output = ()>>(pool: &PgPool, table: &str, work: F) -> i64 {
    async fn now(pool: &PgPool, table: &str) -> i64 {
        sqlx::query("SELECT pg_stat_force_next_flush()").execute(pool).await.unwrap();
        // A statement of its own: its snapshot of the statistics is taken after the flush.
        sqlx::query_scalar(
            "SELECT heap_blks_hit + heap_blks_read + coalesce(idx_blks_hit, 0) + coalesce(idx_blks_read, 0)
               FROM pg_statio_user_tables WHERE schemaname = 'wa' AND relname = $1",
        )
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
    }
    let before = now(pool, table).await;
    work.await;
    now(pool, table).await - before
}

/// Pages of a table or index, as the last ANALYZE or VACUUM counted them.
async fn pages(pool: &PgPool, relation: &str) -> i64 {
    sqlx::query_scalar("SELECT relpages::bigint FROM pg_class WHERE oid = $1::regclass")
        .bind(relation)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn run(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(pool).await.unwrap();
}

/// A session with 40,000 text messages kept in its inbox, one photo among them.
async fn inbox_with_history(db: &TestDb) -> i64 {
    run(
        &db.pool,
        "ALTER TABLE wa.inbox SET (autovacuum_enabled = false);
         SELECT wa.add_session('s1');
         INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text)
         SELECT 's1', '15550000001@s.whatsapp.net', '15550000001@s.whatsapp.net', 'M' || i, 'text', 'message ' || i
           FROM generate_series(1, 40000) i;",
    )
    .await;
    let photo: i64 = sqlx::query_scalar(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, media)
         VALUES ('s1', '15550000001@s.whatsapp.net', '15550000001@s.whatsapp.net', 'PHOTO', 'image',
                 '{\"direct_path\": \"/v/t62/x\", \"mimetype\": \"image/jpeg\"}') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    run(&db.pool, "VACUUM ANALYZE wa.inbox").await;
    assert!(pages(&db.pool, "wa.inbox").await >= 300, "the inbox must be large enough to tell");
    photo
}

/// Asking for a received file checks the message by its id: one probe of the inbox's
/// primary key, not a read of the session's inbox (the id was compared as numeric,
/// which no index serves, for each file received with automatic downloads on).
#[tokio::test]
async fn a_media_download_finds_its_message_by_id() {
    let db = TestDb::with_pool_size(1).await.unwrap();
    let photo = inbox_with_history(&db).await;
    let download = || async {
        sqlx::query("SELECT wa.download_media('s1', $1)").bind(photo).execute(&db.pool).await.unwrap();
    };
    download().await; // plans the checks once
    let touched = blocks_touched(&db.pool, "inbox", download()).await;
    assert!(touched <= 20, "one media_download read {touched} blocks of wa.inbox");
    // Ids that are no message's, or no number, are refused as before.
    for bad in ["1.5", "-3", "1e30", "\"7\"", "null"] {
        let sql = format!("SELECT wa.enqueue('s1', 'media_download', '{{\"inbox_id\": {bad}}}')");
        let e = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&db.pool).await.unwrap_err();
        let e = e.as_database_error().unwrap();
        assert_eq!(e.code().as_deref(), Some("WA013"), "{bad}: {e}");
        assert!(e.message().starts_with("inbox_id: "), "{bad}: {e}");
    }
    db.drop_now().await.unwrap();
}

/// A poll's votes are found by the poll's message id.
#[tokio::test]
async fn poll_results_read_the_polls_votes_only() {
    let db = TestDb::with_pool_size(1).await.unwrap();
    inbox_with_history(&db).await;
    let poll: String =
        sqlx::query_scalar("SELECT message_id FROM wa.send_poll('s1', '+15550000001', 'Lunch?', ARRAY['pizza', 'sushi'])")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, quoted_id, data)
         VALUES ('s1', '15550000001@s.whatsapp.net', '15550000001@s.whatsapp.net', 'V1', 'poll_vote', $1, '{\"options\": [\"sushi\"]}')",
    )
    .bind(&poll)
    .execute(&db.pool)
    .await
    .unwrap();
    run(&db.pool, "ANALYZE wa.inbox").await;
    let results = || async {
        let votes: Vec<(String, i64)> =
            sqlx::query_as("SELECT option, votes FROM wa.poll_results WHERE session = 's1' AND poll_id = $1 ORDER BY position")
                .bind(&poll)
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert_eq!(votes, [("pizza".to_string(), 0), ("sushi".to_string(), 1)]);
    };
    results().await;
    let touched = blocks_touched(&db.pool, "inbox", results()).await;
    assert!(touched <= 20, "reading one poll's results read {touched} blocks of wa.inbox");
    db.drop_now().await.unwrap();
}

/// A session's 40,000 sends finished two days ago (history), a few queued and a few dead.
async fn jobs_with_history(db: &TestDb) {
    run(
        &db.pool,
        "ALTER TABLE wa.job_rows SET (autovacuum_enabled = false);
         SELECT wa.add_session('s1');
         SELECT wa.add_session('s2');
         INSERT INTO wa.jobs (session_id, kind, payload, idempotency_key)
         SELECT 's1', 'send', jsonb_build_object('to', '+1555' || lpad((i % 100)::text, 7, '0'), 'text', 'm' || i),
                'order-' || lpad(i::text, 90, '0')
           FROM generate_series(1, 40000) i;
         UPDATE wa.job_rows SET state = 'completed', finished_at = now() - interval '2 days', result = '{}',
                delivery = 'sent', sent_at = now() - interval '2 days';
         SELECT count(wa.send_text('s2', '+15550000002', 'queued ' || i)) FROM generate_series(1, 20) i;
         UPDATE wa.job_rows SET state = 'dead', finished_at = now(), delivery = 'failed'
          WHERE id IN (SELECT id FROM wa.job_rows WHERE session_id = 's2' ORDER BY id LIMIT 5);",
    )
    .await;
    run(&db.pool, "VACUUM ANALYZE wa.job_rows").await;
    assert!(pages(&db.pool, "wa.job_rows").await >= 1000, "the history must be large enough to tell");
}

/// An idempotency key is looked up in its session's part of the key index, not by
/// walking the whole index (`session_id IS NOT DISTINCT FROM` was no index condition).
#[tokio::test]
async fn a_keyed_enqueue_looks_its_key_up() {
    let db = TestDb::with_pool_size(1).await.unwrap();
    jobs_with_history(&db).await;
    assert!(pages(&db.pool, "wa.jobs_idempotency").await >= 400);
    let pool = &db.pool;
    let send = |key: &'static str| async move {
        sqlx::query_scalar::<_, i64>("SELECT job_id FROM wa.send_text('s1', '+15550000009', 'hi', idempotency_key => $1)")
            .bind(key)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let first = send("warm-up").await;
    assert_eq!(send("warm-up").await, first, "the same key returns the same job");
    let touched = blocks_touched(&db.pool, "job_rows", async {
        send("new-key").await;
    })
    .await;
    assert!(touched <= 120, "a keyed enqueue touched {touched} blocks of wa.job_rows");
    let touched = blocks_touched(&db.pool, "job_rows", async {
        send("new-key").await;
    })
    .await;
    assert!(touched <= 20, "a repeated key touched {touched} blocks of wa.job_rows");
    // A schedule's tick, a session-less key, is still found by its key.
    let tick = "SELECT (wa.enqueue(NULL, 'maintenance', '{\"task\": \"retention\"}', idempotency_key => 'schedule:t:1')).id";
    let a: i64 = sqlx::query_scalar(tick).fetch_one(&db.pool).await.unwrap();
    let b: i64 = sqlx::query_scalar(tick).fetch_one(&db.pool).await.unwrap();
    assert_eq!(a, b);
    db.drop_now().await.unwrap();
}

/// The queue's overview and the console's job lists read the jobs that are waiting,
/// running or dead, through the indexes that hold them.
#[tokio::test]
async fn queue_stats_and_job_lists_skip_the_history() {
    use pgwa_core::job::JobState;
    use pgwa_pg::admin::{JobFilter, jobs};
    let db = TestDb::with_pool_size(1).await.unwrap();
    jobs_with_history(&db).await;
    let stats = || async {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT session, available, dead FROM wa.queue_stats ORDER BY session")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        assert_eq!(rows, [("s2".to_string(), 15, 5)]);
    };
    stats().await;
    let touched = blocks_touched(&db.pool, "job_rows", stats()).await;
    assert!(touched <= 30, "wa.queue_stats read {touched} blocks of wa.job_rows");

    for (session, state, expected) in [
        (None, Some(JobState::Dead), 5),
        (Some("s2"), Some(JobState::Dead), 5),
        (Some("s2"), Some(JobState::Available), 15),
        (None, Some(JobState::Scheduled), 0),
    ] {
        let filter = JobFilter { session, state, kind: None, error_contains: None, limit: 100 };
        // More runs than Postgres makes custom plans for before it may cache a generic one.
        for _ in 0..6 {
            assert_eq!(jobs(&db.pool, &filter).await.unwrap().len(), expected);
        }
        let touched = blocks_touched(&db.pool, "job_rows", async {
            assert_eq!(jobs(&db.pool, &filter).await.unwrap().len(), expected);
        })
        .await;
        assert!(touched <= 30, "the job list of {session:?} {state:?} read {touched} blocks of wa.job_rows");
    }
    db.drop_now().await.unwrap();
}

/// Promotion moves the due jobs of the worker's sessions without stepping over those of
/// sessions nobody holds: here a stopped session's 20,000 scheduled sends, all due.
#[tokio::test]
async fn promotion_skips_the_due_jobs_of_sessions_nobody_holds() {
    let db = TestDb::with_pool_size(1).await.unwrap();
    run(
        &db.pool,
        "ALTER TABLE wa.job_rows SET (autovacuum_enabled = false);
         SELECT wa.add_session('stale');
         SELECT wa.add_session('s1');
         SELECT count(wa.send_text(s, '+15550000001', 'later ' || i, run_at => now() + interval '1 hour'))
           FROM generate_series(1, 20000) i, LATERAL (SELECT CASE WHEN i <= 3 THEN 's1' ELSE 'stale' END AS s) x;
         UPDATE wa.job_rows SET run_at = now() - interval '1 minute';",
    )
    .await;
    run(&db.pool, "VACUUM ANALYZE wa.job_rows").await;
    assert!(pages(&db.pool, "wa.job_rows").await >= 500);
    let held = vec!["s1".to_string()];
    let promote = || async {
        assert_eq!(pgwa_pg::jobs::promote_due(&db.pool, &held).await.unwrap(), 3);
    };
    let touched = blocks_touched(&db.pool, "job_rows", promote()).await;
    // Three jobs moved: their new versions' index entries are most of it.
    assert!(touched <= 150, "promoting 3 jobs touched {touched} blocks of wa.job_rows");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE state = 'scheduled'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(left, 19997, "the stopped session's jobs wait for a worker that holds it");
    db.drop_now().await.unwrap();
}

/// Each retention rule reads only its own part of the finished jobs. The rule for other
/// kinds, kept for hours, used to step over the whole message history, kept for days,
/// every ten minutes: here 20,000 sends finished two days ago beside 50 reconnects.
#[tokio::test]
async fn retention_rules_read_only_their_own_rows() {
    use pgwa_pg::maintenance::{RETENTION, sweep_jobs};
    let db = TestDb::new().await.unwrap();
    run(
        &db.pool,
        "UPDATE wa.schedules SET enabled = false;
         SELECT wa.add_session('s1');
         SELECT count(wa.send_text('s1', '+1555' || lpad((i % 100)::text, 7, '0'), 'm' || i)) FROM generate_series(1, 20000) i;
         SELECT count(wa.reconnect('s1')) FROM generate_series(1, 50);
         UPDATE wa.job_rows SET state = 'completed', finished_at = now() - interval '2 days', result = '{}';",
    )
    .await;
    run(&db.pool, "VACUUM ANALYZE wa.job_rows").await;
    let cfg = pgwa_core::config::RetentionConfig::default();
    let kept = [
        ("completed", cfg.completed_hours as f64 * 3600.0),
        ("sends", cfg.sends_days as f64 * 86400.0),
        ("dead", cfg.dead_days as f64 * 86400.0),
    ];
    assert_eq!(RETENTION.map(|(rule, _)| rule), kept.map(|(rule, _)| rule));
    for ((rule, sql), (_, secs)) in RETENTION.iter().zip(kept) {
        let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", sql.replace("$1", &secs.to_string()).replace("$2", "5000"));
        let mut tx = db.pool.begin().await.unwrap();
        let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(explain)).fetch_one(&mut *tx).await.unwrap();
        tx.rollback().await.unwrap();
        let mut read = 0.0;
        let mut stack = vec![&plan[0]["Plan"]];
        while let Some(n) = stack.pop() {
            if n["Relation Name"] == "job_rows" && n["Node Type"] != "ModifyTable" {
                let per_loop = n["Actual Rows"].as_f64().unwrap() + n["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
                read += per_loop * n["Actual Loops"].as_f64().unwrap();
            }
            stack.extend(n["Plans"].as_array().into_iter().flatten());
        }
        // The completed rule finds its 50 and fetches them again to delete them; the
        // others have nothing old enough.
        let most = if *rule == "completed" { 100.0 } else { 0.0 };
        assert!(read <= most, "the {rule} rule read {read} rows of wa.job_rows: {plan}");
    }
    let swept = sweep_jobs(&db.pool, &cfg).await.unwrap();
    assert_eq!(swept, serde_json::json!({ "completed": 50, "sends": 0, "dead": 0 }));
    let sends: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE kind = 'send'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(sends, 20000);
    db.drop_now().await.unwrap();
}
