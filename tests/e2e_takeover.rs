//! End to end: 1,000 messages from A to B while the worker process holding A is killed
//! with SIGKILL twice. Another worker takes A over each time; every message reaches B
//! exactly once by message id, in the order it was sent, and the loopback server saw no
//! message id that was not enqueued (a retry resends the id fixed at enqueue, it never
//! makes a second message). Real `pgwa run` processes, real whatsapp-rust clients, real
//! Postgres; see docs/loopback.md.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::loopback::{Worker, assert_inbox_exactly, inbox_count, link_by_qr, send_numbered, start_server, wait_status};
use pgwa_loopback::state::Relayed;
use pgwa_testkit::TestDb;
use sqlx::PgPool;

const A_PHONE: &str = "15550003333";
const B_PHONE: &str = "15550004444";
const MESSAGES: i64 = 1000;

/// SIGKILLs the worker process that holds session `a` (it may hold `b` too) and starts
/// a fresh one in its place, so two workers keep running. Returns A's epoch at the kill.
async fn kill_holder_of_a(pool: &PgPool, workers: &mut Vec<Worker>, spawn: impl Fn() -> Worker) -> i64 {
    let (pid, epoch): (i32, i64) = common::eventually(Duration::from_secs(60), "a worker to hold session a", || async {
        sqlx::query_as(
            "SELECT w.pid, s.epoch FROM wa.sessions s JOIN wa.workers w ON w.id = s.owner_id
              WHERE s.id = 'a' AND s.status = 'connected' AND s.lease_expires_at > now()",
        )
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await;
    let at = workers.iter().position(|w| w.child.id() as i32 == pid).expect("the holder of a is one of this test's workers");
    let mut victim = workers.remove(at);
    victim.child.kill().expect("SIGKILL the worker"); // std's kill is SIGKILL: no shutdown code runs
    victim.child.wait().unwrap();
    workers.push(spawn());
    epoch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_survive_two_sigkills_of_the_sending_worker() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let spawn = || Worker::spawn(&db, &server);
    let mut workers = vec![spawn(), spawn()];
    link_by_qr(pool, &server, "a", A_PHONE).await;
    link_by_qr(pool, &server, "b", B_PHONE).await;

    let sent = send_numbered(pool, "a", B_PHONE, MESSAGES).await;

    let mut killed_epochs = Vec::new();
    for threshold in [MESSAGES * 3 / 10, MESSAGES * 65 / 100] {
        common::eventually(Duration::from_secs(300), &format!("{threshold} messages in b's inbox"), || async {
            (inbox_count(pool, "b").await >= threshold).then_some(())
        })
        .await;
        killed_epochs.push(kill_holder_of_a(pool, &mut workers, spawn).await);
    }

    common::eventually(Duration::from_secs(300), "every message in b's inbox", || async {
        (inbox_count(pool, "b").await >= MESSAGES).then_some(())
    })
    .await;
    let a = wait_status(pool, "a", "connected", Duration::from_secs(60)).await;
    assert!(a.epoch > *killed_epochs.last().unwrap(), "a was taken over after the second kill");
    assert!(killed_epochs[1] > killed_epochs[0], "a was taken over after the first kill");
    let states: Vec<(String, i64)> = common::eventually(Duration::from_secs(60), "every send job recorded", || async {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state::text, count(*) FROM wa.jobs WHERE session_id = 'a' AND kind = 'send' GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        (rows.len() == 1 && rows[0].0 == "completed").then_some(rows)
    })
    .await;
    assert_eq!(states, vec![("completed".to_string(), MESSAGES)]);

    // Exactly once at B, in the order sent, with the text sent under that id.
    assert_inbox_exactly(pool, "b", &sent).await;

    // On the wire: only enqueued ids, each at least once; an id crossed again only on a
    // later connection, after the one that first carried it had carried its last message
    // (its worker was killed after sending, before the outcome was recorded): never twice
    // within one worker's life. Judged by connection, not by relay counts sampled at each
    // kill: frames the killed worker had already written may be relayed after its death.
    let log = server.shared.lock().relayed.clone();
    let from_a: Vec<(usize, &Relayed)> =
        log.iter().enumerate().filter(|(_, r)| r.from_phone == A_PHONE && r.to_phone == B_PHONE).collect();
    let last_on_conn: HashMap<u64, usize> = from_a.iter().map(|(at, r)| (r.conn_id, *at)).collect();
    let enqueued: HashSet<&String> = sent.iter().map(|(id, _)| id).collect();
    let mut seen_at: HashMap<&String, (usize, u64)> = HashMap::new();
    let mut resent = 0;
    for &(at, r) in &from_a {
        assert!(enqueued.contains(&r.id), "the server relayed {}, which no job carries: a retry made a new message", r.id);
        if let Some((first, conn)) = seen_at.insert(&r.id, (at, r.conn_id)) {
            resent += 1;
            assert!(
                conn != r.conn_id && last_on_conn[&conn] < at,
                "{} crossed the server twice ({first} on connection {conn}, {at} on {}) while the first connection lived",
                r.id,
                r.conn_id
            );
        }
    }
    assert_eq!(seen_at.len(), sent.len(), "every enqueued message crossed the server");

    // Each kill charges an attempt to at most the one send that may have been in flight;
    // the sends queued behind it are not charged for a crash they took no part in.
    let charged: Vec<(i64, serde_json::Value)> =
        sqlx::query_as("SELECT id, errors FROM wa.jobs WHERE session_id = 'a' AND kind = 'send' AND attempts > 1")
            .fetch_all(pool)
            .await
            .unwrap();
    assert!(charged.len() <= killed_epochs.len(), "more sends charged than kills: {charged:?}");
    eprintln!(
        "takeover: {} messages on {} connections of a, {} sends charged an attempt, {resent} resent after a kill",
        sent.len(),
        last_on_conn.len(),
        charged.len()
    );
    drop(workers);
}
