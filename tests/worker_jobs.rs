//! A worker (in this process, simulated WhatsApp side) consuming jobs: per-chat FIFO
//! under retries, backoff and the dead state, cancellation, NOTIFY wake-ups, control
//! jobs before sends.

mod common;

use std::time::{Duration, Instant};

use common::{InProcess, count, eventually, fast_config, wait_connected};
use pgwa_testkit::TestDb;

/// The lines the simulated server logged: (chat, message id) in send order.
fn sent(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

async fn all_finished(db: &TestDb) {
    eventually(Duration::from_secs(20), "all jobs to finish", || async {
        (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE finished_at IS NULL").await == 0).then_some(())
    })
    .await
}

#[tokio::test]
async fn sends_to_one_chat_keep_their_order_across_retries() {
    let db = TestDb::new().await.unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cfg = fast_config(&db);
    cfg.whatsapp.simulated.sent_log = Some(log.path().to_string_lossy().into_owned());
    cfg.worker.claim_batch = 7; // several claims, so order must hold across batches too
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    // Two chats; in chat A, message 3 fails twice and message 6 fails once.
    let fails = |i: i32, chat: &str| match (chat, i) {
        ("A", 3) => 2,
        ("A", 6) => 1,
        _ => 0,
    };
    let mut expected: std::collections::HashMap<&str, Vec<String>> = Default::default();
    for i in 1..=20 {
        for (chat, phone) in [("A", "+15550000001"), ("B", "+15550000002")] {
            let payload =
                serde_json::json!({ "to": phone, "text": format!("{chat}{i}"), "sim": { "fail_attempts": fails(i, chat) } });
            let msg: String = sqlx::query_scalar("SELECT (wa.enqueue('s1', 'send', $1)).message_id")
                .bind(payload)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            expected.entry(chat).or_default().push(msg);
        }
    }
    let w = InProcess::start(cfg).await;
    all_finished(&db).await;
    w.stop().await;

    let log = sent(log.path());
    for (chat, phone) in [("A", "15550000001@s.whatsapp.net"), ("B", "15550000002@s.whatsapp.net")] {
        let order: Vec<String> = log.iter().filter(|(c, _)| c == phone).map(|(_, m)| m.clone()).collect();
        assert_eq!(order, expected[chat], "chat {chat} delivered out of order or more than once");
    }
    let (completed, retried): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE jsonb_array_length(errors) > 0) FROM wa.jobs",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((completed, retried), (40, 2));
    let attempts: Vec<i16> = sqlx::query_scalar("SELECT attempts FROM wa.jobs WHERE jsonb_array_length(errors) > 0 ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, vec![3, 2], "attempts count failures, released jobs do not spend one");
    // A send's sent_at is the server's ack time, handed from the send to the completer,
    // not the moment its outcome was recorded (the result's copy is in text, to the µs).
    let off_ack = "SELECT count(*) FROM wa.jobs WHERE state = 'completed'
                      AND NOT coalesce(abs(extract(epoch FROM sent_at - (result->>'acked_at')::timestamptz)) <= 0.000001, false)";
    assert_eq!(count(&db.pool, off_ack).await, 0);
}

#[tokio::test]
async fn failures_back_off_then_die_with_their_errors_kept() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    wait_connected(&db.pool, 1).await;
    let t = Instant::now();
    let doomed: i64 = sqlx::query_scalar(
        "SELECT (wa.enqueue('s1', 'send', '{\"to\": \"+15550000001\", \"text\": \"x\", \"sim\": {\"fail_attempts\": 99}}', max_attempts => 4)).id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let refused: i64 = sqlx::query_scalar(
        "SELECT (wa.enqueue('s1', 'send', '{\"to\": \"+15550000002\", \"text\": \"x\", \"sim\": {\"fail\": \"spam\"}}')).id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    all_finished(&db).await;
    let elapsed = t.elapsed();
    w.stop().await;

    let (state, delivery, attempts, errors): (String, String, i16, serde_json::Value) =
        sqlx::query_as("SELECT state::text, delivery::text, attempts, errors FROM wa.jobs WHERE id = $1")
            .bind(doomed)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), delivery.as_str(), attempts), ("dead", "failed", 4));
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 4);
    assert_eq!(errors[0]["attempt"], 1);
    assert!(errors[3]["error"].as_str().unwrap().contains("attempt 4"));
    // Backoffs of ~50, ~100, ~200 ms (+-25 %) separate the four attempts.
    assert!(elapsed >= Duration::from_millis(260), "retries came too fast: {elapsed:?}");

    let (state, attempts, last): (String, i16, String) =
        sqlx::query_as("SELECT state::text, attempts, errors->-1->>'error' FROM wa.jobs WHERE id = $1")
            .bind(refused)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts), ("dead", 1), "a permanent refusal is not retried");
    assert!(last.contains("spam"), "{last}");

    // wa.retry_job gives a dead job another attempt.
    sqlx::query("UPDATE wa.jobs SET payload = payload - 'sim' WHERE id = $1").bind(refused).execute(&db.pool).await.unwrap();
    let s: String = sqlx::query_scalar("SELECT wa.retry_job($1)::text").bind(refused).fetch_one(&db.pool).await.unwrap();
    assert_eq!(s, "available");
    let w = InProcess::start(fast_config(&db)).await;
    all_finished(&db).await;
    w.stop().await;
    let (state, attempts): (String, i16) = sqlx::query_as("SELECT state::text, attempts FROM wa.jobs WHERE id = $1")
        .bind(refused)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("completed", 2));
}

#[tokio::test]
async fn a_cancelled_job_never_starts() {
    let db = TestDb::new().await.unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut cfg = fast_config(&db);
    cfg.whatsapp.simulated.sent_log = Some(log.path().to_string_lossy().into_owned());
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let keep: String = sqlx::query_scalar("SELECT message_id FROM wa.send_text('s1', '+15550000001', 'keep')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let (gone, gone_msg): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_text('s1', '+15550000001', 'drop')").fetch_one(&db.pool).await.unwrap();
    let later: (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_text('s1', '+15550000001', 'later', run_at => now() + interval '300 ms')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    sqlx::query("SELECT wa.cancel_job($1)").bind(gone).execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.cancel_job($1)").bind(later.0).execute(&db.pool).await.unwrap();
    let w = InProcess::start(cfg).await;
    all_finished(&db).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    w.stop().await;
    let msgs: Vec<String> = sent(log.path()).into_iter().map(|(_, m)| m).collect();
    assert_eq!(msgs, vec![keep], "cancelled {gone_msg} and {} must not be sent", later.1);
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state::text FROM wa.jobs ORDER BY id").fetch_all(&db.pool).await.unwrap();
    assert_eq!(states, vec!["completed", "cancelled", "cancelled"]);
}

#[tokio::test]
async fn notify_wakes_an_idle_worker_at_once() {
    let db = TestDb::new().await.unwrap();
    let mut cfg = fast_config(&db);
    cfg.worker.poll_interval_ms = 60_000; // only NOTIFY can wake it in time
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(cfg).await;
    wait_connected(&db.pool, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the dispatcher go idle
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        let id: i64 = sqlx::query_scalar("SELECT job_id FROM wa.send_text('s1', '+15550000001', $1)")
            .bind(format!("ping {i}"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        eventually(Duration::from_secs(5), "the job to complete", || async {
            let s: String =
                sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = $1").bind(id).fetch_one(&db.pool).await.unwrap();
            (s == "completed").then_some(())
        })
        .await;
        worst = worst.max(t.elapsed());
    }
    w.stop().await;
    assert!(worst < Duration::from_secs(1), "a NOTIFY wake-up took {worst:?}; the poll interval is 60 s");
}

#[tokio::test]
async fn poll_only_mode_still_runs_jobs() {
    let db = TestDb::new().await.unwrap();
    let mut cfg = fast_config(&db);
    cfg.worker.poll_only = true;
    cfg.worker.poll_interval_ms = 100;
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(cfg).await;
    sqlx::query("SELECT wa.send_text('s1', '+15550000001', 'polled')").execute(&db.pool).await.unwrap();
    all_finished(&db).await;
    w.stop().await;
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE state = 'completed'").await, 1);
}

#[tokio::test]
async fn control_jobs_run_before_queued_sends() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.send_text('s1', '+15550000001', 'queued ' || i) FROM generate_series(1, 50) i")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("SELECT wa.close_session('s1', 'tenant left', logout => true)").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    eventually(Duration::from_secs(10), "the session to stop", || async {
        let (status, owner, closed): (String, Option<uuid::Uuid>, bool) = sqlx::query_as(
            "SELECT status::text, owner_id, EXISTS (SELECT 1 FROM wa.jobs WHERE kind = 'close_session' AND state = 'completed')
               FROM wa.sessions WHERE id = 's1'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (closed && status == "stopped" && owner.is_none()).then_some(())
    })
    .await;
    w.stop().await;
    let (close_state, sends_done): (String, i64) = sqlx::query_as(
        "SELECT (SELECT state::text FROM wa.jobs WHERE kind = 'close_session'),
                (SELECT count(*) FROM wa.jobs WHERE kind = 'send' AND state = 'completed')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(close_state, "completed");
    assert_eq!(sends_done, 0, "the close ran before any queued send, which now waits for wa.start_session");
    let (desired, reason): (String, String) =
        sqlx::query_as("SELECT desired::text, status_reason FROM wa.sessions").fetch_one(&db.pool).await.unwrap();
    assert_eq!(desired, "stopped");
    assert!(reason.contains("tenant left") && reason.contains("logged out"), "{reason}");
}

/// A send queued behind a running send of its chat is passed over by the claim its
/// NOTIFY triggers; it must start as soon as the earlier one is recorded, not at the next
/// poll (60 s here).
#[tokio::test]
async fn a_send_held_back_by_its_chat_starts_when_the_earlier_one_is_recorded() {
    let db = TestDb::new().await.unwrap();
    let mut cfg = fast_config(&db);
    cfg.worker.poll_interval_ms = 60_000;
    cfg.whatsapp.simulated.ack_latency_ms = 400;
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(cfg).await;
    wait_connected(&db.pool, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the dispatcher go idle
    sqlx::query("SELECT wa.send_text('s1', '+15550000001', 'first')").execute(&db.pool).await.unwrap();
    eventually(Duration::from_secs(5), "the first send to start", || async {
        (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE state = 'running'").await == 1).then_some(())
    })
    .await;
    let t = Instant::now();
    sqlx::query("SELECT wa.send_text('s1', '+15550000001', 'second')").execute(&db.pool).await.unwrap();
    all_finished(&db).await;
    let waited = t.elapsed();
    w.stop().await;
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT payload->>'text' FROM wa.jobs WHERE chat = '15550000001@s.whatsapp.net' ORDER BY attempted_at",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(order, ["first", "second"]);
    assert!(waited < Duration::from_secs(5), "the held-back send finished after {waited:?}; the poll interval is 60 s");
}

/// A send scheduled for later becomes claimable at a poll (a claim over every session,
/// which promotes due jobs). NOTIFY wake-ups name sessions and claim those only, so a
/// steady stream of them, each sooner than the poll interval, must not put the poll off.
#[tokio::test]
async fn a_scheduled_send_runs_on_time_while_wake_ups_keep_coming() {
    let db = TestDb::new().await.unwrap();
    let mut cfg = fast_config(&db);
    cfg.worker.poll_interval_ms = 300;
    cfg.worker.claimers = 1;
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(cfg).await;
    wait_connected(&db.pool, 1).await;
    let later: i64 = sqlx::query_scalar(
        "SELECT job_id FROM wa.send_text('s1', '+15550000001', 'later', run_at => now() + interval '500 milliseconds')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let t = Instant::now();
    let mut ran_after = None;
    // A send to another chat every 100 ms: each NOTIFY wakes the claim loop.
    while t.elapsed() < Duration::from_secs(4) {
        sqlx::query("SELECT wa.send_text('s1', '+15550000002', 'tick')").execute(&db.pool).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let state: String =
            sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = $1").bind(later).fetch_one(&db.pool).await.unwrap();
        if state == "completed" {
            ran_after = Some(t.elapsed());
            break;
        }
    }
    w.stop().await;
    let ticks = count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE payload->>'text' = 'tick' AND state = 'completed'").await;
    assert!(ticks >= 3, "the wake-up sends ran too ({ticks} completed)");
    let ran_after = ran_after.expect("the send due after 0.5 s had not run after 4 s of wake-ups (polls every 0.3 s)");
    assert!(ran_after < Duration::from_secs(2), "the send due after 0.5 s ran after {ran_after:?}");
}
