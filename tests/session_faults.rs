//! What the simulated WhatsApp side's faults do to a session held by a worker: a
//! dropped connection reconnects; a logout parks it in logged_out and a replaced stream
//! in conflict, both released and never reconnected until wa.start_session; receipts
//! move the message forward.

mod common;

use std::time::Duration;

use common::{InProcess, eventually, fast_config, wait_connected};
use pgwa_testkit::TestDb;

async fn send_with_sim(db: &TestDb, sim: serde_json::Value) -> i64 {
    let payload = serde_json::json!({ "to": "+15550000001", "text": "x", "sim": sim });
    sqlx::query_scalar("SELECT (wa.enqueue('s1', 'send', $1)).id").bind(payload).fetch_one(&db.pool).await.unwrap()
}

async fn status(db: &TestDb) -> (String, bool, Option<String>) {
    sqlx::query_as("SELECT status::text, owner_id IS NOT NULL, status_reason FROM wa.sessions WHERE id = 's1'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn job_state(db: &TestDb, id: i64) -> (String, String) {
    sqlx::query_as("SELECT state::text, delivery::text FROM wa.jobs WHERE id = $1").bind(id).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_dropped_connection_reconnects_and_the_send_is_retried() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    wait_connected(&db.pool, 1).await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("wa_session_status").await.unwrap();
    let job = send_with_sim(&db, serde_json::json!({ "fault": "drop_connection" })).await;
    eventually(Duration::from_secs(10), "the send to complete after reconnecting", || async {
        (job_state(&db, job).await.0 == "completed").then_some(())
    })
    .await;
    let mut seen = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await {
        let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
        seen.push(v["status"].as_str().unwrap().to_owned());
    }
    w.stop().await;
    assert!(seen.starts_with(&["reconnecting".to_string(), "connected".to_string()]), "{seen:?}");
    let attempts: i16 =
        sqlx::query_scalar("SELECT attempts FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn logout_and_stream_replaced_park_the_session_without_reconnecting() {
    for (fault, parked) in [("logout", "logged_out"), ("stream_replaced", "conflict")] {
        let db = TestDb::new().await.unwrap();
        sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
        let w = InProcess::start(fast_config(&db)).await;
        wait_connected(&db.pool, 1).await;
        let job = send_with_sim(&db, serde_json::json!({ "fault": fault })).await;
        eventually(Duration::from_secs(10), "the session to be parked", || async {
            let (s, held, _) = status(&db).await;
            (s == parked && !held).then_some(())
        })
        .await;
        // Stays parked across several heartbeats: no reconnect loop, nobody claims it.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (s, held, _) = status(&db).await;
        assert_eq!((s.as_str(), held), (parked, false), "{fault}");
        let (state, _) = job_state(&db, job).await;
        assert_eq!(state, "retryable", "{fault}: the send waits for the session to come back");

        sqlx::query("SELECT wa.start_session('s1')").execute(&db.pool).await.unwrap();
        eventually(Duration::from_secs(10), "the send after wa.start_session", || async {
            (job_state(&db, job).await.0 == "completed").then_some(())
        })
        .await;
        w.stop().await;
    }
}

/// A session parked by a logout stays held until its running jobs are recorded; an app
/// that calls wa.start_session in that window must not see its call undone by the release.
#[tokio::test]
async fn start_session_while_a_parked_session_drains_is_kept() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    wait_connected(&db.pool, 1).await;
    let slow: i64 = sqlx::query_scalar("SELECT (wa.enqueue('s1', 'send', $1)).id")
        .bind(serde_json::json!({ "to": "+15550000002", "text": "slow", "sim": { "ack_delay_ms": 3000 } }))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the slow send to run", || async {
        (job_state(&db, slow).await.0 == "running").then_some(())
    })
    .await;
    let job = send_with_sim(&db, serde_json::json!({ "fault": "logout" })).await;
    eventually(Duration::from_secs(10), "logged_out while still held (draining)", || async {
        let (s, held, _) = status(&db).await;
        (s == "logged_out" && held).then_some(())
    })
    .await;
    assert_eq!(job_state(&db, slow).await.0, "running", "the window must still be open");
    sqlx::query("SELECT wa.start_session('s1')").execute(&db.pool).await.unwrap();
    eventually(Duration::from_secs(15), "the session to run again and the send to complete", || async {
        (job_state(&db, job).await.0 == "completed").then_some(())
    })
    .await;
    let (s, held, _) = status(&db).await;
    w.stop().await;
    assert_eq!((s.as_str(), held), ("connected", true));
}

#[tokio::test]
async fn receipts_move_the_message_to_delivered_and_read() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    let job = send_with_sim(&db, serde_json::json!({ "receipts": ["delivered", "read"] })).await;
    let (delivered, read): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        eventually(Duration::from_secs(10), "the read receipt", || async {
            sqlx::query_as::<_, (String, Option<chrono::DateTime<chrono::Utc>>, Option<chrono::DateTime<chrono::Utc>>)>(
                "SELECT status::text, delivered_at, read_at FROM wa.outbound WHERE job_id = $1",
            )
            .bind(job)
            .fetch_one(&db.pool)
            .await
            .ok()
            .filter(|(s, _, _)| s == "read")
            .map(|(_, d, r)| (d.unwrap(), r.unwrap()))
        })
        .await;
    w.stop().await;
    assert!(delivered <= read);
    assert_eq!(job_state(&db, job).await, ("completed".to_string(), "read".to_string()));
}
