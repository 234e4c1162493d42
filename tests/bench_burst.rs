//! `pgwa dev bench-messages` enqueues its burst either as `wa.send_text` calls or as one
//! `INSERT INTO wa.jobs ... SELECT` (`--enqueue`). Both must make the same queue, or the
//! two ways' figures would not compare: same senders, chats, texts and order, each row a
//! queued send of its own message id.

use pgwa_pg::bench;
use pgwa_testkit::TestDb;

/// The queue's sends as (session, chat, text, delivery), in id order.
async fn queue(db: &TestDb) -> Vec<(String, String, String, String)> {
    sqlx::query_as("SELECT session_id, chat, payload->>'text', delivery::text FROM wa.jobs WHERE kind = 'send' ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn both_ways_of_enqueueing_the_burst_make_the_same_queue() {
    let db = TestDb::new().await.unwrap();
    bench::add_session_pairs(&db.pool, 3).await.unwrap();
    // What linking would have set: each session's own number.
    sqlx::query(
        "UPDATE wa.sessions SET phone = '1555' || lpad(substr(id, 2), 7, '0') || CASE WHEN id LIKE 'a%' THEN '1' ELSE '2' END",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    assert_eq!(bench::send_burst(&db.pool, 4).await.unwrap(), 12);
    let by_calls = queue(&db).await;
    sqlx::query("DELETE FROM wa.job_rows").execute(&db.pool).await.unwrap();
    assert_eq!(bench::insert_burst(&db.pool, 4).await.unwrap(), 12);
    let by_insert = queue(&db).await;

    assert_eq!(by_calls.len(), 12);
    let sorted = |q: &[(String, String, String, String)]| {
        let mut q = q.to_vec();
        q.sort();
        q
    };
    assert_eq!(sorted(&by_insert), sorted(&by_calls), "the same sends either way");
    for q in [&by_calls, &by_insert] {
        // Each pair's sends go to its own b, queued, in the order of their numbers.
        for (session, chat, text, delivery) in q.iter() {
            let b = format!("1555{:0>7}2@s.whatsapp.net", &session[1..]);
            assert_eq!((chat, delivery.as_str()), (&b, "queued"), "{q:?}");
            assert!(text.starts_with("burst "), "{q:?}");
        }
        for pair in ["a0001", "a0002", "a0003"] {
            let texts: Vec<&str> = q.iter().filter(|r| r.0 == pair).map(|r| r.2.as_str()).collect();
            assert_eq!(texts, ["burst 1", "burst 2", "burst 3", "burst 4"], "{pair}: {q:?}");
        }
    }
    let ids: i64 = sqlx::query_scalar("SELECT count(DISTINCT message_id) FROM wa.jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(ids, 12, "a message id per send");
}
