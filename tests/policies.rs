//! The seeds' session policies with the simulated side: the circuit breaker, and the
//! Bad MAC / decrypt-failure path from targeted key cleanup to wipe and logged_out.

mod common;

use std::time::Duration;

use common::{InProcess, count, eventually, fast_config, wait_connected};
use pgwa_testkit::TestDb;

async fn send_with_fault(db: &TestDb, fault: serde_json::Value) -> i64 {
    let payload = serde_json::json!({ "to": "+15550000001", "text": "x", "sim": fault });
    sqlx::query_scalar("SELECT (wa.enqueue('s1', 'send', $1)).id").bind(payload).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn failed_connections_open_the_circuit_then_it_closes_after_the_cooldown() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("UPDATE wa.policy SET connect_failure_limit = 3, circuit_cooldown = '1 second'").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    wait_connected(&db.pool, 1).await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("wa_session_status").await.unwrap();
    let job = send_with_fault(&db, serde_json::json!({ "fault": "connect_failure", "failures": 10 })).await;

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.ends_with(&["connected".to_string()]) || !seen.contains(&"failed".to_string()) {
        let n = tokio::time::timeout_at(deadline, listener.recv()).await.expect("status changes").unwrap();
        let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
        if v["status"] == "failed" {
            assert!(v["reason"].as_str().unwrap().starts_with("circuit open after 3 failed connection attempts"), "{v}");
        }
        seen.push(v["status"].as_str().unwrap().to_owned());
    }
    eventually(Duration::from_secs(10), "the send to complete after the circuit closed", || async {
        let s: String =
            sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
        (s == "completed").then_some(())
    })
    .await;
    w.stop().await;
    let reconnecting = seen.iter().filter(|s| *s == "reconnecting").count();
    assert!(reconnecting >= 1, "{seen:?}");
    assert_eq!(count(&db.pool, "SELECT failed_connect_count::bigint FROM wa.sessions").await, 0, "reset on connect");
}

#[tokio::test]
async fn bad_macs_clean_the_peer_then_wipe_and_log_out_at_the_limit() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    sqlx::query("INSERT INTO wa.base_keys (session_id, address, message_id, base_key) VALUES ('s1', 'a', 'm', '\\x00')")
        .execute(&db.pool)
        .await
        .unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    wait_connected(&db.pool, 1).await;
    for _ in 0..2 {
        send_with_fault(&db, serde_json::json!({ "fault": "bad_mac" })).await;
    }
    eventually(Duration::from_secs(10), "two peer cleanups", || async {
        (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE kind = 'key_cleanup' AND state = 'completed'").await == 2)
            .then_some(())
    })
    .await;
    let (scope, peer): (String, String) =
        sqlx::query_as("SELECT payload->>'scope', payload->>'peer' FROM wa.jobs WHERE kind = 'key_cleanup' LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((scope.as_str(), peer.as_str()), ("peer", "15550000001@s.whatsapp.net"));
    let (status, bad_mac, healthy): (String, i32, bool) =
        sqlx::query_as("SELECT status::text, bad_mac_count, healthy FROM wa.session_health").fetch_one(&db.pool).await.unwrap();
    assert_eq!((status.as_str(), bad_mac, healthy), ("connected", 2, true));

    send_with_fault(&db, serde_json::json!({ "fault": "bad_mac" })).await;
    eventually(Duration::from_secs(10), "logged_out after the third Bad MAC", || async {
        let (s, held): (String, bool) =
            sqlx::query_as("SELECT status::text, owner_id IS NOT NULL FROM wa.sessions").fetch_one(&db.pool).await.unwrap();
        (s == "logged_out" && !held).then_some(())
    })
    .await;
    w.stop().await;
    let reason: String = sqlx::query_scalar("SELECT status_reason FROM wa.sessions").fetch_one(&db.pool).await.unwrap();
    assert!(reason.contains("3 Bad MACs") && reason.contains("link the device again"), "{reason}");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.base_keys").await, 0, "keys wiped");
}

#[tokio::test]
async fn decrypt_failures_clear_app_state_keys_first() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("UPDATE wa.policy SET bad_decrypt_limit = 2").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    wait_connected(&db.pool, 1).await;
    send_with_fault(&db, serde_json::json!({ "fault": "bad_decrypt" })).await;
    eventually(Duration::from_secs(10), "an app-state cleanup", || async {
        (count(
            &db.pool,
            "SELECT count(*) FROM wa.jobs WHERE kind = 'key_cleanup' AND payload->>'scope' = 'app_state' AND state = 'completed'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    send_with_fault(&db, serde_json::json!({ "fault": "bad_decrypt" })).await;
    eventually(Duration::from_secs(10), "logged_out at the limit", || async {
        let s: String = sqlx::query_scalar("SELECT status::text FROM wa.sessions").fetch_one(&db.pool).await.unwrap();
        (s == "logged_out").then_some(())
    })
    .await;
    w.stop().await;
}

#[tokio::test]
async fn a_temporary_ban_holds_the_session_until_it_expires() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    wait_connected(&db.pool, 1).await;
    let job = send_with_fault(&db, serde_json::json!({ "fault": "ban", "ban_secs": 2 })).await;
    let until: chrono::DateTime<chrono::Utc> = eventually(Duration::from_secs(10), "banned", || async {
        sqlx::query_as::<_, (String, Option<chrono::DateTime<chrono::Utc>>)>("SELECT status::text, status_until FROM wa.sessions")
            .fetch_one(&db.pool)
            .await
            .ok()
            .filter(|(s, _)| s == "banned")
            .and_then(|(_, u)| u)
    })
    .await;
    eventually(Duration::from_secs(15), "the send after the ban", || async {
        let s: String =
            sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
        (s == "completed").then_some(())
    })
    .await;
    let sent_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT sent_at FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
    w.stop().await;
    assert!(sent_at >= until, "sent at {sent_at} during a ban until {until}");
}

#[tokio::test]
async fn many_sessions_connect_at_the_configured_rate_not_all_at_once() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s' || i) FROM generate_series(1, 12) i").execute(&db.pool).await.unwrap();
    let mut cfg = fast_config(&db);
    cfg.worker.connect_per_sec = 10;
    let w = InProcess::start(cfg).await;
    wait_connected(&db.pool, 12).await;
    let spread: f64 =
        sqlx::query_scalar("SELECT extract(epoch FROM max(connected_at) - min(connected_at))::float8 FROM wa.sessions")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    w.stop().await;
    // 12 connections at 10 per second: the last one opens 1.1 s after the first.
    assert!(spread >= 1.0, "connections were not staggered: spread {spread} s");
}

#[tokio::test]
async fn key_cleanup_all_wipes_and_asks_for_a_new_link() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    sqlx::query("INSERT INTO wa.base_keys (session_id, address, message_id, base_key) VALUES ('s1', 'a', 'm', '\\x00')")
        .execute(&db.pool)
        .await
        .unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    wait_connected(&db.pool, 1).await;
    sqlx::query("SELECT wa.enqueue('s1', 'key_cleanup', '{\"scope\": \"all\"}')").execute(&db.pool).await.unwrap();
    eventually(Duration::from_secs(10), "logged_out and released", || async {
        let (s, held): (String, bool) =
            sqlx::query_as("SELECT status::text, owner_id IS NOT NULL FROM wa.sessions").fetch_one(&db.pool).await.unwrap();
        (s == "logged_out" && !held).then_some(())
    })
    .await;
    w.stop().await;
    let result: serde_json::Value =
        sqlx::query_scalar("SELECT result FROM wa.jobs WHERE kind = 'key_cleanup'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(result["scope"], "all");
    assert!(result["removed_rows"].as_u64().unwrap() >= 1);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.base_keys").await, 0);
}
