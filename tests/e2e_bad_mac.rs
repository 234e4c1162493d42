//! End to end: a corrupted Signal session row in Postgres takes the Bad MAC policy path
//! to recovery. B's session with A is damaged while B is stopped (a running client
//! keeps sessions in memory); after B starts again, A's next message cannot be
//! decrypted: the failure is counted in Postgres, a key_cleanup for that peer runs,
//! whatsapp-rust's retry receipt makes A resend with a fresh session, and the message
//! and the ones after it arrive. B stays connected: one failure is below the limit.

mod common;

use std::time::Duration;

use common::loopback::{Worker, arrives, link_by_qr, send_text, start_server, wait_status};
use pgwa_testkit::TestDb;

const A_PHONE: &str = "15550005555";
const B_PHONE: &str = "15550006666";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_signal_session_is_counted_cleaned_up_and_recovered() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, "a", A_PHONE).await;
    link_by_qr(pool, &server, "b", B_PHONE).await;
    let first = send_text(pool, "a", B_PHONE, "before the damage").await;
    arrives(pool, "b", &first, "before the damage").await;
    // B's answer completes the handshake: from now on A sends plain Signal messages
    // (not prekey messages, which would carry a new session and mask the damage).
    let reply = send_text(pool, "b", A_PHONE, "got it").await;
    arrives(pool, "a", &reply, "got it").await;

    sqlx::query("SELECT wa.stop_session('b')").execute(pool).await.unwrap();
    common::eventually(Duration::from_secs(30), "b to be released", || async {
        let held: bool =
            sqlx::query_scalar("SELECT owner_id IS NOT NULL FROM wa.sessions WHERE id = 'b'").fetch_one(pool).await.unwrap();
        (!held).then_some(())
    })
    .await;
    // Flip one byte in the middle of each of B's Signal session records: the records
    // still load, but the keys no longer match what A encrypts with.
    let damaged = sqlx::query(
        "UPDATE wa.signal_sessions
            SET record = set_byte(record, length(record) / 2, get_byte(record, length(record) / 2) # 255)
          WHERE session_id = 'b'",
    )
    .execute(pool)
    .await
    .unwrap()
    .rows_affected();
    assert!(damaged > 0, "b has Signal sessions to damage");
    sqlx::query("SELECT wa.start_session('b')").execute(pool).await.unwrap();
    wait_status(pool, "b", "connected", Duration::from_secs(60)).await;

    let second = send_text(pool, "a", B_PHONE, "after the damage").await;
    let bad_macs: i32 = common::eventually(Duration::from_secs(60), "b's Bad MAC counter to move", || async {
        let n: i32 =
            sqlx::query_scalar("SELECT bad_mac_count FROM wa.session_health WHERE session = 'b'").fetch_one(pool).await.unwrap();
        (n > 0).then_some(n)
    })
    .await;
    let cleanup: String = common::eventually(Duration::from_secs(60), "a key_cleanup job for the peer to finish", || async {
        sqlx::query_scalar(
            "SELECT state::text FROM wa.jobs
              WHERE session_id = 'b' AND kind = 'key_cleanup' AND payload->>'scope' = 'peer'
                AND state IN ('completed', 'dead')",
        )
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(cleanup, "completed");
    arrives(pool, "b", &second, "after the damage").await;
    let third = send_text(pool, "a", B_PHONE, "and after that").await;
    arrives(pool, "b", &third, "and after that").await;

    let (status, count, limit): (String, i32, i32) =
        sqlx::query_as("SELECT status::text, bad_mac_count, bad_mac_limit FROM wa.session_health WHERE session = 'b'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(status, "connected", "one failure is below the limit: the session keeps running");
    assert!(count >= bad_macs && count < limit, "bad_mac_count {count} (limit {limit})");
}
