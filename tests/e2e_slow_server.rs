//! End to end: a slow WhatsApp server (issue 6, fault injection). The loopback server
//! holds every client message back for 2.5 s before it relays it and acks the sender
//! (`POST /admin/slow?ms=2500`), and the worker waits only 1 s for an ack
//! (`whatsapp.rust.ack_timeout_ms`). The send fails as retryable, naming the missing ack,
//! and is retried with the message id fixed at enqueue, until an ack for that id comes
//! back while an attempt is waiting. The id crosses the server more than once and the
//! recipient keeps it once. With the server fast again, a send takes one attempt. Real
//! `pgwa run` process, real whatsapp-rust clients, real Postgres; see docs/loopback.md.

mod common;

use std::time::Duration;

use common::loopback::{Worker, inbox_count, link_by_qr, send_text, start_server, wait_status};
use pgwa_loopback::Server;
use pgwa_testkit::TestDb;
use serde_json::Value;
use sqlx::PgPool;

const A_PHONE: &str = "15550011111";
const B_PHONE: &str = "15550012222";
const ACK_TIMEOUT_MS: u64 = 1000;
const SLOW_MS: u64 = 2500;

/// A worker that waits 1 s for a server ack.
fn spawn_worker(db: &TestDb, server: &Server) -> Worker {
    Worker::spawn_with(db, server, &[("PGWA_WHATSAPP__RUST__ACK_TIMEOUT_MS", ACK_TIMEOUT_MS.to_string())])
}

async fn set_slow(server: &Server, ms: u64) {
    let (status, body) = server.admin_post(&format!("/admin/slow?ms={ms}"), "").await;
    assert_eq!(status, 204, "setting the slow server to {ms} ms failed: {body}");
}

/// The send job of a message once it has an outcome: (state, attempts, errors).
async fn finished_job(pool: &PgPool, message_id: &str) -> (String, i64, Vec<Value>) {
    common::eventually(Duration::from_secs(60), &format!("the send of {message_id} to finish"), || async {
        let (state, attempts, errors): (String, i64, Value) =
            sqlx::query_as("SELECT state::text, attempts::bigint, errors FROM wa.jobs WHERE kind = 'send' AND message_id = $1")
                .bind(message_id)
                .fetch_one(pool)
                .await
                .unwrap();
        let errors = errors.as_array().cloned().unwrap_or_default();
        matches!(state.as_str(), "completed" | "dead").then_some((state, attempts, errors))
    })
    .await
}

/// How often the server relayed `id` from A to B.
fn relayed(server: &Server, id: &str) -> usize {
    server.shared.lock().relayed.iter().filter(|r| r.from_phone == A_PHONE && r.to_phone == B_PHONE && r.id == id).count()
}

async fn in_inbox(pool: &PgPool, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM wa.inbox WHERE session_id = 'b' AND message_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A send that completes at its first attempt, relayed once, in B's inbox once.
async fn assert_plain_send(pool: &PgPool, server: &Server, text: &str) -> String {
    let id = send_text(pool, "a", B_PHONE, text).await;
    let (state, attempts, errors) = finished_job(pool, &id).await;
    assert_eq!((state.as_str(), attempts), ("completed", 1), "{text:?} took one attempt; errors {errors:?}");
    assert!(errors.is_empty(), "{text:?} recorded no error: {errors:?}");
    common::eventually(Duration::from_secs(30), &format!("{text:?} in b's inbox"), || async {
        (in_inbox(pool, &id).await == 1).then_some(())
    })
    .await;
    assert_eq!(relayed(server, &id), 1, "{text:?} crossed the server once");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_ack_times_out_and_the_retry_reuses_the_message_id() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let _worker = spawn_worker(&db, &server);
    link_by_qr(pool, &server, "a", A_PHONE).await;
    link_by_qr(pool, &server, "b", B_PHONE).await;

    // A normal server: one attempt.
    assert_plain_send(pool, &server, "before").await;

    // A slow server: every message waits 2.5 s for its ack, the worker 1 s.
    set_slow(&server, SLOW_MS).await;
    let started = std::time::Instant::now();
    let id = send_text(pool, "a", B_PHONE, "slow").await;
    let (state, attempts, errors) = finished_job(pool, &id).await;
    let took = started.elapsed();
    assert_eq!(state, "completed", "the slow send completed on a retry; errors {errors:?}");
    assert!(attempts >= 2, "the first attempt timed out: {attempts} attempt(s), errors {errors:?}");
    assert_eq!(errors.len() as i64, attempts - 1, "each failed attempt recorded its error: {errors:?}");
    let missing_ack = format!("no server ack for message {id} within {ACK_TIMEOUT_MS} ms");
    for e in &errors {
        assert_eq!(e["error"].as_str(), Some(missing_ack.as_str()), "an attempt failed on the missing ack, nothing else: {e}");
    }
    assert!(took >= Duration::from_millis(SLOW_MS), "nothing completes before the server acks: {took:?}");

    // Every attempt sent the same id, and the server relays each when its time is up.
    common::eventually(Duration::from_secs(30), "every attempt of the slow send relayed", || async {
        (relayed(&server, &id) as i64 >= attempts).then_some(())
    })
    .await;
    let crossings = relayed(&server, &id);
    assert!(crossings >= 2, "the id crossed the server more than once: {crossings}");
    assert_eq!(crossings as i64, attempts, "one relay per attempt, no other id: {crossings} relays, {attempts} attempts");
    assert_eq!(
        server.shared.lock().relayed.iter().filter(|r| r.from_phone == A_PHONE).count(),
        crossings + 1,
        "the server saw no message id but the two sent"
    );
    let delivered: String = common::eventually(Duration::from_secs(30), "the slow send delivered", || async {
        let status: String = sqlx::query_scalar("SELECT status::text FROM wa.outbound WHERE message_id = $1")
            .bind(&id)
            .fetch_one(pool)
            .await
            .unwrap();
        (status == "delivered").then_some(status)
    })
    .await;
    assert_eq!(delivered, "delivered");

    // A fast server again: one attempt. That message reaches B after every copy of the
    // slow one (B's socket is in order), so B has seen them all when it arrives.
    set_slow(&server, 0).await;
    let after = assert_plain_send(pool, &server, "after").await;
    assert_eq!(in_inbox(pool, &id).await, 1, "b keeps the slow message once, however often it came");
    assert_eq!(inbox_count(pool, "b").await, 3, "b's inbox: before, slow, after");
    let texts: Vec<String> =
        sqlx::query_scalar("SELECT text FROM wa.inbox WHERE session_id = 'b' ORDER BY id").fetch_all(pool).await.unwrap();
    assert_eq!(texts, ["before", "slow", "after"]);
    wait_status(pool, "a", "connected", Duration::from_secs(5)).await;
    eprintln!(
        "slow server: {attempts} attempts over {took:?}, {crossings} relays of {id}; then {after} in one attempt; errors {errors:?}"
    );
}
