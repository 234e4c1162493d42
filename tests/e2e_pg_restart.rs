//! End to end: Postgres restarts while messages flow from A to B. The worker loses
//! every connection at once (queue, leases, the whatsapp-rust store); it must recover
//! by itself, and every message must reach B exactly once, in order.
//!
//! This restarts the machine's Postgres cluster, so it is its own test binary: cargo
//! runs test binaries one after the other, and no other test shares the outage. The
//! restart command is `pg_ctlcluster --skip-systemctl-redirect <version> main restart`
//! (the CI machine's cluster); set PGWA_TEST_PG_RESTART to another shell command where
//! Postgres runs differently.

mod common;

use std::time::Duration;

use common::loopback::{Worker, assert_inbox_exactly, inbox_count, link_by_qr, send_numbered, start_server, wait_status};
use pgwa::testkit::TestDb;

const A_PHONE: &str = "15550007777";
const B_PHONE: &str = "15550008888";
const MESSAGES: i64 = 200;

fn restart_postgres() {
    let cmd = std::env::var("PGWA_TEST_PG_RESTART").unwrap_or_else(|_| {
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .expect("no /etc/postgresql/<version>: set PGWA_TEST_PG_RESTART to a command that restarts Postgres");
        format!("pg_ctlcluster --skip-systemctl-redirect {version} main restart -m fast")
    });
    let out = std::process::Command::new("sh").arg("-c").arg(&cmd).output().expect("running the Postgres restart command");
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flowing_through_a_postgres_restart_all_arrive_once_in_order() {
    let db = TestDb::new().await.unwrap();
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
    restart_postgres();
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
