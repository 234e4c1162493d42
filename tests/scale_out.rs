//! Scale-out: three `pgwa run` processes share 300 simulated sessions under a steady
//! stream of sends; one of them stops (gracefully, or killed). The two left take over
//! its sessions within the lease time, each holding its fair share, and every message
//! is sent: exactly once after a graceful stop, and after a kill a second time only for
//! the messages whose ack died with the worker (same message id, so WhatsApp sees one).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{count, eventually, spawn_worker};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgwa_testkit::TestDb;
use uuid::Uuid;

const SESSIONS: i64 = 300;
const HEARTBEAT_MS: u64 = 300;

/// Sessions held per live worker.
async fn owners(db: &TestDb) -> BTreeMap<Uuid, i64> {
    sqlx::query_as::<_, (Uuid, i64)>(
        "SELECT owner_id, count(*) FROM wa.sessions WHERE owner_id IS NOT NULL AND lease_expires_at > now() GROUP BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn connected(db: &TestDb) -> i64 {
    count(
        &db.pool,
        "SELECT count(*) FROM wa.sessions WHERE status = 'connected' AND owner_id IS NOT NULL AND lease_expires_at > now()",
    )
    .await
}

/// Waits until every session is connected and held by `workers` workers with an even
/// share each (300 / 3 = 100, 300 / 2 = 150), and returns the owners.
async fn spread_over(db: &TestDb, workers: usize, within: Duration) -> BTreeMap<Uuid, i64> {
    let share = SESSIONS / workers as i64;
    eventually(within, &format!("{SESSIONS} sessions connected, {share} on each of {workers} workers"), || async {
        let o = owners(db).await;
        (o.len() == workers && o.values().all(|n| *n == share) && connected(db).await == SESSIONS).then_some(o)
    })
    .await
}

/// Enqueues sends to random sessions and chats until stopped: 10 every 20 ms.
fn start_stream(db: &TestDb) -> (Arc<AtomicBool>, Arc<AtomicI64>, tokio::task::JoinHandle<()>) {
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicI64::new(0)));
    let (pool, s, n) = (db.pool.clone(), stop.clone(), sent.clone());
    let task = tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            sqlx::query(
                "SELECT wa.send_text('s' || (1 + floor(random() * $1))::int, '+1555' || lpad((floor(random() * 20))::int::text, 7, '0'), 'stream ' || i)
                   FROM generate_series(1, 10) i",
            )
            .bind(SESSIONS as f64)
            .execute(&pool)
            .await
            .unwrap();
            n.fetch_add(10, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (stop, sent, task)
}

/// (message id -> times sent, lines) from the simulated server's log.
fn sends(log: &std::path::Path) -> HashMap<String, u32> {
    let mut per_id = HashMap::new();
    for l in std::fs::read_to_string(log).unwrap().lines() {
        let id = l.split(' ').nth(2).unwrap_or_else(|| panic!("malformed sent-log line {l:?}"));
        *per_id.entry(id.to_owned()).or_default() += 1;
    }
    per_id
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// A graceful stop releases the leases and wakes the others, so it must not wait for
/// the TTL: a long TTL proves it. A killed worker's leases expire after the TTL (and its
/// worker row goes stale with them, which raises the others' fair share); the next
/// heartbeat claims them, and the slack covers a few heartbeats on a busy machine.
fn lease_ttl_ms(stop_with: Signal) -> u64 {
    if stop_with == Signal::SIGKILL { 3000 } else { 10_000 }
}

fn spread_bound(stop_with: Signal) -> Duration {
    match stop_with {
        Signal::SIGKILL => Duration::from_millis(lease_ttl_ms(stop_with) + 2000),
        _ => Duration::from_millis(4000),
    }
}

/// One scenario at a time: six workers on two cores would blur the timing bounds.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn scale_out(stop_with: Signal) {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new().await.unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    sqlx::query("SELECT wa.add_session('s' || i) FROM generate_series(1, $1) i").bind(SESSIONS).execute(&db.pool).await.unwrap();
    let env = vec![
        ("PGWA_WHATSAPP__SIMULATED__SENT_LOG", log.path().to_string_lossy().into_owned()),
        // Acks take a little time, so the stopped worker has sends in flight.
        ("PGWA_WHATSAPP__SIMULATED__ACK_LATENCY_MS", "5".into()),
        ("PGWA_WORKER__LEASE_TTL_MS", lease_ttl_ms(stop_with).to_string()),
        ("PGWA_WORKER__HEARTBEAT_MS", HEARTBEAT_MS.to_string()),
    ];
    let mut workers: Vec<Child> = (0..3).map(|_| spawn_worker(&db, &env)).collect();
    let before = spread_over(&db, 3, Duration::from_secs(60)).await;

    let (stop_stream, enqueued, stream) = start_stream(&db);
    eventually(Duration::from_secs(20), "the stream to be under way", || async {
        (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE state = 'completed'").await >= 300).then_some(())
    })
    .await;

    // Stop the first worker mid-stream.
    let mut gone = workers.remove(0);
    let t = Instant::now();
    signal(&gone, stop_with);
    let after = spread_over(&db, 2, Duration::from_secs(30)).await;
    let took = t.elapsed();
    let status = gone.wait().unwrap();
    let bound = spread_bound(stop_with);
    assert!(
        took <= bound,
        "the sessions spread again in {took:?}, over the bound of {bound:?} (lease TTL {} ms)",
        lease_ttl_ms(stop_with)
    );
    if stop_with == Signal::SIGTERM {
        assert!(status.success(), "SIGTERM ends the worker with exit 0, got {status}");
    }
    let survivors: Vec<&Uuid> = after.keys().collect();
    assert!(
        survivors.iter().all(|w| before.contains_key(*w)),
        "the two remaining workers took over: before {before:?}, after {after:?}"
    );

    // Keep sending a while on two workers, then let the queue drain.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_stream.store(true, Ordering::Relaxed);
    stream.await.unwrap();
    let total = enqueued.load(Ordering::Relaxed);
    eventually(Duration::from_secs(60), &format!("all {total} sends to complete"), || async {
        (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE state = 'completed' AND delivery = 'sent'").await == total)
            .then_some(())
    })
    .await;
    for w in &workers {
        signal(w, Signal::SIGTERM);
    }
    for mut w in workers {
        assert!(w.wait().unwrap().success(), "the remaining workers stop cleanly");
    }

    // None lost, none twice: every enqueued job completed, and the simulated server saw
    // each message id once; after a kill a second send is allowed only for a job that
    // was running on the dead worker and recovered (its errors say so).
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE kind = 'send'").await, total, "every enqueued send is a job");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE kind = 'send' AND state <> 'completed'").await,
        0,
        "none lost"
    );
    let per_id = sends(log.path());
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM wa.jobs WHERE kind = 'send'").fetch_all(&db.pool).await.unwrap();
    let missing: Vec<&String> = ids.iter().filter(|id| !per_id.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} completed messages never reached the server, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let twice: Vec<(&String, &u32)> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    match stop_with {
        Signal::SIGKILL => {
            let recovered: std::collections::HashSet<String> = sqlx::query_scalar(
                "SELECT message_id FROM wa.jobs WHERE errors::text LIKE '%worker holding the session was lost%'",
            )
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
            for (id, n) in &twice {
                assert!(**n == 2 && recovered.contains(*id), "message {id} sent {n} times without being a recovered job");
            }
        }
        _ => assert!(
            twice.is_empty(),
            "after a graceful stop no message is sent twice: {} were, e.g. {:?}",
            twice.len(),
            &twice[..twice.len().min(5)]
        ),
    }
    eprintln!("scale-out with {stop_with}: {total} sends, spread again in {took:?}, {} sent twice after recovery", twice.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_spreads_the_sessions_at_once_and_sends_each_message_once() {
    scale_out(Signal::SIGTERM).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_sessions_spread_within_the_lease_time_and_nothing_is_lost() {
    scale_out(Signal::SIGKILL).await
}
