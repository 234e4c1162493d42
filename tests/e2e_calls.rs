//! End to end, incoming calls: a `pgwa run` worker (whatsapp-rust backend) holds a
//! session on the loopback server, whose admin endpoint rings it as a caller's phone.
//! By default (wa.policy.reject_calls) the worker declines the call at once, the server
//! sees the reject for that call, and wa.calls records it (announced on wa_calls);
//! with the policy off, the call is recorded and left ringing.

mod common;

use std::time::Duration;

use common::loopback::{Notifications, Worker, link_by_qr, start_server};
use pgwa_testkit::TestDb;
use sqlx::PgPool;

const A_PHONE: &str = "15550008181";
const CALLER: &str = "15550008282";
const WITHIN: Duration = Duration::from_secs(60);

type Call = (String, String, bool, String, Option<String>);

async fn call(pool: &PgPool, call_id: &str) -> Option<Call> {
    sqlx::query_as("SELECT caller, call_id, video, status, reason FROM wa.calls WHERE session_id = 'alice' AND call_id = $1")
        .bind(call_id)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_calls_are_rejected_and_recorded_by_policy() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let notes = Notifications::listen(&db.url, &["wa_calls"]).await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, "alice", A_PHONE).await;

    let (status, call_id) = server.admin_post(&format!("/admin/call?from={CALLER}&to={A_PHONE}&video=true"), "").await;
    assert_eq!(status, 200, "{call_id}");
    let rejected = common::eventually(WITHIN, "the call rejected in wa.calls", || async {
        call(pool, &call_id).await.filter(|c| c.3 != "offered")
    })
    .await;
    assert_eq!(rejected, (format!("{CALLER}@s.whatsapp.net"), call_id.clone(), true, "rejected".to_string(), None));
    // The server sees alice's device reject that call (the row is written once the
    // stanza left; the server may read it a moment later).
    common::eventually(Duration::from_secs(10), "the reject at the server", || async {
        let signals = server.shared.lock().call_signals.clone();
        signals
            .iter()
            .any(|s| {
                s.action == "reject" && s.call_id == call_id && s.from_phone == A_PHONE && s.call_creator.starts_with(CALLER)
            })
            .then_some(())
    })
    .await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM wa.calls WHERE call_id = $1").bind(&call_id).fetch_one(pool).await.unwrap();
    for status in ["offered", "rejected"] {
        notes.wait(WITHIN, "wa_calls", status, |n| n["id"] == id && n["status"] == status).await;
    }

    // With the policy off, the call is recorded and left to ring.
    sqlx::query("UPDATE wa.policy SET reject_calls = false").execute(pool).await.unwrap();
    let (status, second) = server.admin_post(&format!("/admin/call?from={CALLER}&to={A_PHONE}"), "").await;
    assert_eq!(status, 200, "{second}");
    let offered = common::eventually(WITHIN, "the second call in wa.calls", || async { call(pool, &second).await }).await;
    assert_eq!((offered.2, offered.3.as_str()), (false, "offered"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(call(pool, &second).await.unwrap().3, "offered", "nobody declined it");
    let signals = server.shared.lock().call_signals.clone();
    assert!(!signals.iter().any(|s| s.call_id == second), "no reject went out: {signals:?}");
}
