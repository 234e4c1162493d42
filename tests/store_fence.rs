//! Fencing: a worker whose lease was taken over (epoch bumped, or another owner) cannot
//! change the session's keys, and nothing it tried is written.

use pgwa_core::fence::Fence;
use pgwa_pg::keys::{PgBackend, is_lease_lost};
use pgwa_testkit::TestDb;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::traits::*;

async fn worker(pool: &sqlx::PgPool) -> uuid::Uuid {
    pgwa_testkit::worker_row(pool).await.unwrap()
}

async fn take_over(pool: &sqlx::PgPool, session: &str, owner: uuid::Uuid) -> i64 {
    sqlx::query_scalar("UPDATE wa.sessions SET owner_id = $2, epoch = epoch + 1, lease_expires_at = now() + interval '1 hour' WHERE id = $1 RETURNING epoch")
        .bind(session)
        .bind(owner)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    pgwa_testkit::session_rows(pool, table, "fenced").await.unwrap()
}

#[tokio::test]
async fn stale_epoch_write_is_refused_and_nothing_is_written() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('fenced', start => false)").execute(pool).await.unwrap();
    let (w1, w2) = (worker(pool).await, worker(pool).await);

    let e1 = take_over(pool, "fenced", w1).await;
    let old = PgBackend::fenced(pool.clone(), Fence { worker: w1, session: "fenced".into(), epoch: e1 });
    old.put_session("a@lid", b"v1").await.unwrap();
    old.store_sent_message("a@lid", "M1", b"p").await.unwrap();

    // w2 takes the session over: w1's epoch is now stale.
    let e2 = take_over(pool, "fenced", w2).await;
    let err = old.put_session("a@lid", b"v2").await.unwrap_err();
    assert!(is_lease_lost(&err), "{err:?}");
    let chain = format!("{}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("lease lost") && chain.contains("fenced"), "{chain}");

    // Every kind of write is refused: upserts, batches, deletes, takes, the auth document.
    assert!(is_lease_lost(&old.put_sessions_batch(&[("b@lid".into(), Bytes::from_static(b"x"))]).await.unwrap_err()));
    assert!(is_lease_lost(&old.store_prekeys_batch(&[(1, Bytes::from_static(b"k"))], false).await.unwrap_err()));
    assert!(is_lease_lost(&old.delete_session("a@lid").await.unwrap_err()));
    assert!(is_lease_lost(&old.take_sent_message("a@lid", "M1").await.unwrap_err()));
    assert!(is_lease_lost(&old.touch_tc_token_sender_timestamp("t@lid", 5).await.unwrap_err()));
    assert!(is_lease_lost(&old.save(&Device::new()).await.unwrap_err()));
    assert!(is_lease_lost(&old.delete_expired_sent_messages(i64::MAX).await.unwrap_err()));

    // Nothing changed: the old values are intact, nothing new appeared.
    let reader = PgBackend::offline(pool.clone(), "fenced");
    assert_eq!(reader.get_session("a@lid").await.unwrap().unwrap(), Bytes::from_static(b"v1"));
    assert_eq!(count(pool, "signal_sessions").await, 1);
    assert_eq!(count(pool, "signal_prekeys").await, 0);
    assert_eq!(count(pool, "sent_messages").await, 1);
    assert_eq!(count(pool, "tc_tokens").await, 0);
    assert_eq!(count(pool, "auth_state").await, 0);
    // Reads need no fence.
    assert!(old.get_session("a@lid").await.unwrap().is_some());

    // The new owner writes fine; a wrong epoch of the right owner is refused too.
    let new = PgBackend::fenced(pool.clone(), Fence { worker: w2, session: "fenced".into(), epoch: e2 });
    new.put_session("a@lid", b"v3").await.unwrap();
    assert_eq!(new.take_sent_message("a@lid", "M1").await.unwrap(), Some(b"p".to_vec()));
    let wrong_epoch = PgBackend::fenced(pool.clone(), Fence { worker: w2, session: "fenced".into(), epoch: e2 - 1 });
    assert!(is_lease_lost(&wrong_epoch.put_session("a@lid", b"v4").await.unwrap_err()));
    assert_eq!(reader.get_session("a@lid").await.unwrap().unwrap(), Bytes::from_static(b"v3"));

    // A released session (no owner) refuses every fenced write.
    sqlx::query("UPDATE wa.sessions SET owner_id = NULL WHERE id = 'fenced'").execute(pool).await.unwrap();
    assert!(is_lease_lost(&new.put_session("a@lid", b"v5").await.unwrap_err()));
    db.drop_now().await.unwrap();
}

/// A takeover that commits while a fenced write is in flight: the write holds the session
/// row FOR SHARE, so the takeover waits for it, and the next write sees the new epoch.
#[tokio::test]
async fn takeover_waits_for_in_flight_write_then_fences() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('fenced', start => false)").execute(pool).await.unwrap();
    let (w1, w2) = (worker(pool).await, worker(pool).await);
    let e1 = take_over(pool, "fenced", w1).await;
    let old = PgBackend::fenced(pool.clone(), Fence { worker: w1, session: "fenced".into(), epoch: e1 });

    // Hold the fence's row lock inside an open transaction, as a slow write would.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM wa.sessions WHERE id = 'fenced' FOR SHARE").execute(&mut *tx).await.unwrap();
    let pool2 = pool.clone();
    let takeover = tokio::spawn(async move { take_over(&pool2, "fenced", w2).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!takeover.is_finished(), "the takeover must wait for the in-flight write");
    tx.commit().await.unwrap();
    takeover.await.unwrap();
    assert!(is_lease_lost(&old.put_session("a@lid", b"late").await.unwrap_err()));
    assert_eq!(count(pool, "signal_sessions").await, 0);
    db.drop_now().await.unwrap();
}
