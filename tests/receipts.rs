//! Receipts applied in one statement (pgwa_pg::receipts): a message's status only moves
//! forward, each timestamp is set once, receipts of one batch for one message fold into
//! one change, and a receipt heard on a connection that no longer holds the session
//! changes nothing.

mod common;

use chrono::{DateTime, Utc};
use pgwa_core::fence::Fence;
use pgwa_core::wa::ReceiptKind;
use pgwa_pg::receipts::{self, Receipt};
use pgwa_testkit::TestDb;

async fn send(db: &TestDb) -> String {
    sqlx::query_scalar("SELECT message_id FROM wa.send_text('s1', '+15550009999', 'hi')").fetch_one(&db.pool).await.unwrap()
}

async fn status(db: &TestDb, message: &str) -> (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    sqlx::query_as("SELECT delivery::text, delivered_at, read_at FROM wa.jobs WHERE message_id = $1")
        .bind(message)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn receipt(fence: &Fence, message: &str, kind: ReceiptKind, secs: i64) -> Receipt {
    Receipt { fence: fence.clone(), message_id: message.into(), kind, at: at(secs) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_move_forward_once_under_the_fence() {
    let db = TestDb::new().await.unwrap();
    let fence = common::held_s1(&db).await;
    let stale = Fence { epoch: fence.epoch - 1, ..fence.clone() };
    let (m1, m2, m3) = (send(&db).await, send(&db).await, send(&db).await);

    let moved = receipts::apply(
        &db.pool,
        &[
            receipt(&fence, &m1, ReceiptKind::Delivered, 10),
            receipt(&fence, &m1, ReceiptKind::Read, 30),
            receipt(&fence, &m2, ReceiptKind::Read, 20),
            receipt(&stale, &m3, ReceiptKind::Delivered, 5),
            receipt(&fence, "no-such-message", ReceiptKind::Delivered, 5),
        ],
    )
    .await
    .unwrap();
    let mut got: Vec<(String, String)> =
        moved.iter().map(|r| (r.message_id.clone().unwrap(), r.delivery.clone().unwrap())).collect();
    got.sort();
    let mut want = vec![(m1.clone(), "read".to_string()), (m2.clone(), "read".to_string())];
    want.sort();
    assert_eq!(got, want, "one change per message, none for the stale fence or the unknown id");
    assert_eq!(status(&db, &m1).await, ("read".into(), Some(at(10)), Some(at(30))));
    // A read receipt alone says the message was delivered, at the same moment.
    assert_eq!(status(&db, &m2).await, ("read".into(), Some(at(20)), Some(at(20))));
    assert_eq!(status(&db, &m3).await, ("queued".into(), None, None), "the stale connection's receipt was applied");

    // Late and repeated receipts change nothing: not backwards, no timestamp moved.
    let again = receipts::apply(
        &db.pool,
        &[receipt(&fence, &m1, ReceiptKind::Delivered, 50), receipt(&fence, &m2, ReceiptKind::Read, 60)],
    )
    .await
    .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(status(&db, &m1).await, ("read".into(), Some(at(10)), Some(at(30))));
    assert_eq!(status(&db, &m2).await, ("read".into(), Some(at(20)), Some(at(20))));
}

/// Receipts given to the worker's announcer are applied in its announcing transaction:
/// twenty receipts heard together become delivered rows and one announcement or a few,
/// not twenty autocommitted UPDATEs and twenty NOTIFYs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_announcer_applies_receipts_and_announces_them() {
    use pgwa_worker::announcer::{Announcer, GAP};
    let db = TestDb::new().await.unwrap();
    let fence = common::held_s1(&db).await;
    let mut messages = Vec::new();
    for _ in 0..20 {
        messages.push(send(&db).await);
    }
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("wa_outbound").await.unwrap();
    let announcer = Announcer::spawn(db.pool.clone(), GAP);
    for m in &messages {
        announcer.receipt(receipt(&fence, m, ReceiptKind::Delivered, 1));
    }
    let mut announced = Vec::new();
    let mut notifies = 0;
    while announced.len() < messages.len() {
        let note = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
            .await
            .expect("the receipts announced within 5 s")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
        assert_eq!((v["session"].as_str(), v["status"].as_str()), (Some("s1"), Some("delivered")), "{v}");
        announced.extend(v["message_ids"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()));
        notifies += 1;
    }
    announced.sort();
    messages.sort();
    assert_eq!(announced, messages, "each receipt announced once");
    assert!(notifies <= 2, "{notifies} NOTIFYs for 20 receipts queued at once");
    let delivered = common::count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE delivery = 'delivered'").await;
    assert_eq!(delivered, 20);
}
