//! The claim's plan is made once per queue connection, usually while `wa.jobs` is empty
//! (a fresh install, a worker started before the first send), and then kept for the
//! connection's life. It must stay index-driven whatever the table holds later: a plan
//! that scanned the table, or joined the batch with its chats by comparing every pair,
//! cost 0.5 s per claim of 2,000 jobs whose chats were busy.

use pgwa::testkit::TestDb;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection};

const WORKER: &str = "00000000-0000-0000-0000-0000000000aa";

/// Every plan node, depth first.
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        nodes(child, out);
    }
}

#[tokio::test]
async fn the_claim_plan_made_on_an_empty_table_stays_index_driven() {
    let db = TestDb::new().await.unwrap();
    let queue = pgwa::db::queue_pool(&db.pool, false, 1);
    let mut conn = queue.acquire().await.unwrap();
    // With worker.poll_only the claim runs on the main pool, whose prepared statements
    // Postgres may switch to a generic plan after a few runs; force it, the worst case.
    let mut plain = db.pool.acquire().await.unwrap();
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan").execute(&mut *plain).await.unwrap();
    let params = format!("'{WORKER}', '{{s1}}', '{{s1}}', 5000, 2");

    // The plan is made and cached while the table is empty, as a new worker's is.
    // (Autovacuum is off for the table, so no ANALYZE replans it behind the test's back;
    // the ALTER comes first because it too would replan.)
    sqlx::raw_sql("ALTER TABLE wa.jobs SET (autovacuum_enabled = false)").execute(&db.pool).await.unwrap();
    let empty: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(empty, 0);
    let prepare = format!("PREPARE claim(uuid, text[], text[], bigint, bigint) AS {}", pgwa::db::jobs::CLAIM);
    for c in [&mut conn, &mut plain] {
        sqlx::raw_sql(AssertSqlSafe(prepare.clone())).execute(&mut **c).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("EXECUTE claim({params})"))).execute(&mut **c).await.unwrap();
    }

    // Then a backlog arrives: 3,000 sends over 300 chats, one in seven of them running (the
    // busy chats, whose later sends the FIFO check must hold back).
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO wa.workers (id, host, pid, version, max_sessions) VALUES ('{WORKER}', 'test', 1, 'test', 10);
         SELECT wa.add_session('s1');
         UPDATE wa.sessions SET owner_id = '{WORKER}', epoch = 1, lease_expires_at = now() + interval '1 hour';
         SELECT count(wa.send_text('s1', '+1555' || lpad((i % 300)::text, 7, '0'), 'm' || i)) FROM generate_series(1, 3000) i;
         UPDATE wa.jobs SET state = 'running', attempts = 1, worker_id = '{WORKER}', epoch = 1 WHERE id % 7 = 0;"
    )))
    .execute(&db.pool)
    .await
    .unwrap();

    for (name, c) in [("queue connection", &mut conn), ("pool connection", &mut plain)] {
        let explain = format!("EXPLAIN (FORMAT JSON) EXECUTE claim({params})");
        let plan: Value = sqlx::query_scalar(AssertSqlSafe(explain)).fetch_one(&mut **c).await.unwrap();
        let mut all = Vec::new();
        nodes(&plan[0]["Plan"], &mut all);
        let text = plan.to_string();
        for n in &all {
            let kind = n["Node Type"].as_str().unwrap_or_default();
            assert_ne!(kind, "Seq Scan", "{name}: the claim scans {} sequentially: {text}", n["Relation Name"]);
            assert!(
                !(kind == "Nested Loop" && n.get("Join Filter").is_some()),
                "{name}: the claim compares every pair of a join instead of looking rows up ({}): {text}",
                n["Join Filter"]
            );
        }
        assert!(
            all.iter().any(|n| n["Index Name"] == "jobs_chat" && n["Index Cond"].as_str().is_some_and(|c| c.contains("chat ="))),
            "{name}: the FIFO check does not look the candidate's chat up in jobs_chat: {text}"
        );
    }
    drop(plain);

    // The same plan still keeps per-chat FIFO: every available send is a candidate
    // (the share is 5,000), and exactly those with no running send before them in their
    // chat are taken.
    let mut tx = conn.begin().await.unwrap();
    let expected: Vec<i64> = sqlx::query_scalar(
        "SELECT r.id FROM wa.jobs r WHERE r.state = 'available'
            AND NOT EXISTS (SELECT 1 FROM wa.jobs k WHERE k.chat = r.chat AND k.state = 'running' AND k.id < r.id)
          ORDER BY r.id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let available: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE state = 'available'").fetch_one(&mut *tx).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("EXECUTE claim({params})"))).execute(&mut *tx).await.unwrap();
    let claimed: Vec<i64> = sqlx::query_scalar("SELECT id FROM wa.jobs WHERE attempted_at IS NOT NULL ORDER BY id")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(!expected.is_empty() && (expected.len() as i64) < available, "the data must have free and blocked chats");
    assert_eq!(claimed, expected);
    drop(conn);
    db.drop_now().await.unwrap();
}
