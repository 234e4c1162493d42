//! End to end: Postgres restarts while messages flow from A to B. The worker loses
//! every connection at once (queue, leases, the whatsapp-rust store); it must recover
//! by itself, and every message must reach B exactly once, in order.
//!
//! The test runs its own Postgres instance (`common::pg_instance`: initdb in a temporary
//! folder, a free port) and restarts that: restarting the machine's cluster would cut
//! every other test and program using it at the same moment.

mod common;

use std::time::Duration;

use common::loopback::{Worker, assert_inbox_exactly, inbox_count, link_by_qr, send_numbered, start_server, wait_status};
use common::pg_instance::PgInstance;
use pgwa_testkit::TestDb;

const A_PHONE: &str = "15550007777";
const B_PHONE: &str = "15550008888";
const MESSAGES: i64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flowing_through_a_postgres_restart_all_arrive_once_in_order() {
    let pg = PgInstance::start();
    let db = TestDb::on_server(&pg.url()).await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, "a", A_PHONE).await;
    link_by_qr(pool, &server, "b", B_PHONE).await;

    let sent = send_numbered(pool, "a", B_PHONE, MESSAGES).await;

    common::eventually(Duration::from_secs(120), "the first messages in b's inbox", || async {
        (inbox_count(pool, "b").await >= MESSAGES / 4).then_some(())
    })
    .await;
    let before = inbox_count(pool, "b").await;
    pg.restart();
    assert!(before < MESSAGES, "the restart must happen while messages flow ({before} of {MESSAGES} had arrived)");

    common::eventually(Duration::from_secs(180), "every message in b's inbox after the restart", || async {
        (inbox_count(pool, "b").await >= MESSAGES).then_some(())
    })
    .await;
    common::eventually(Duration::from_secs(60), "every send job completed", || async {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE session_id = 'a' AND kind = 'send' AND state = 'completed'")
                .fetch_one(pool)
                .await
                .unwrap_or(0);
        (done == MESSAGES).then_some(())
    })
    .await;
    assert_inbox_exactly(pool, "b", &sent).await;
    for id in ["a", "b"] {
        wait_status(pool, id, "connected", Duration::from_secs(60)).await;
    }
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE state = 'dead'").fetch_one(pool).await.unwrap();
    assert_eq!(dead, 0, "no job gave up during the outage");
}
