//! Leases and fencing: a stale holder can neither complete jobs nor write session state;
//! sessions spread fairly; a graceful shutdown hands sessions over at once; a worker
//! killed with SIGKILL mid-batch loses nothing and no job completes twice.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{InProcess, count, eventually, fast_config, spawn_worker, wait_connected};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgwa_pg::{jobs, leases, sessions, workers};
use pgwa_testkit::TestDb;
use uuid::Uuid;

#[tokio::test]
async fn a_stale_holder_is_fenced_out() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
    workers::register(pool, &pgwa_pg::workers::Registration::new(old, "old", 10)).await.unwrap();
    workers::register(pool, &pgwa_pg::workers::Registration::new(new, "new", 10)).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(pool).await.unwrap();
    let job: i64 =
        sqlx::query_scalar("SELECT job_id FROM wa.send_text('s1', '+15550000001', 'x')").fetch_one(pool).await.unwrap();

    let held = leases::claim(pool, old, 30.0, 10).await.unwrap();
    assert_eq!(held.len(), 1);
    let ids = vec!["s1".to_string()];
    let req = jobs::ClaimRequest { worker: old, held: &ids, connected: &ids, per_session: 10, sessionless: 0 };
    let claimed = jobs::claim(pool, &req).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let stale = pgwa_core::fence::Fence { worker: old, session: "s1".into(), epoch: held[0].epoch };

    // The old worker pauses past its lease; the new one takes over (epoch + 1).
    sqlx::query("UPDATE wa.sessions SET lease_expires_at = now() - interval '1 second'").execute(pool).await.unwrap();
    let taken = leases::claim(pool, new, 30.0, 10).await.unwrap();
    assert_eq!(taken[0].epoch, held[0].epoch + 1);
    let state: String =
        sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = $1").bind(job).fetch_one(pool).await.unwrap();
    assert_eq!(state, "available", "the takeover hands the running job back to the queue");

    // Everything the old worker tries now is refused and changes nothing.
    let done = jobs::complete(pool, old, &[job], &[serde_json::json!({})], &[None]).await.unwrap();
    assert!(done.is_empty());
    assert!(!sessions::set_status(pool, &stale, pgwa_core::session::SessionStatus::Connected, None, None).await.unwrap());
    assert!(!sessions::mark_connected(pool, &stale, None, None).await.unwrap());
    assert!(
        !leases::release(pool, old, "s1", stale.epoch, Some(pgwa_core::session::SessionStatus::Stopped), None).await.unwrap()
    );
    let (state, status, owner): (String, String, Uuid) = sqlx::query_as(
        "SELECT j.state::text, s.status::text, s.owner_id FROM wa.jobs j JOIN wa.sessions s ON s.id = j.session_id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), status.as_str(), owner), ("available", "starting", new));
    // Even a claim under the old worker's name finds nothing: it holds no session.
    assert!(jobs::claim(pool, &req).await.unwrap().is_empty());

    // The new holder completes it once.
    let req = jobs::ClaimRequest { worker: new, held: &ids, connected: &ids, per_session: 10, sessionless: 0 };
    let again = jobs::claim(pool, &req).await.unwrap();
    assert_eq!(again[0].job.attempts, 2);
    let done = jobs::complete(pool, new, &[job], &[serde_json::json!({})], &[None]).await.unwrap();
    assert_eq!(done.iter().map(|r| (r.id, r.delivery.as_deref())).collect::<Vec<_>>(), [(job, Some("sent"))]);
    assert!(jobs::complete(pool, new, &[job], &[serde_json::json!({})], &[None]).await.unwrap().is_empty(), "never twice");

    // The lease check the inbox hook and a starting client ask: held, lost, released, gone.
    let current = pgwa_core::fence::Fence { worker: new, session: "s1".into(), epoch: taken[0].epoch };
    assert_eq!(sessions::held(pool, &current).await.unwrap(), Some(true));
    assert_eq!(sessions::held(pool, &stale).await.unwrap(), Some(false));
    assert!(!sessions::still_held(pool, &stale).await.unwrap());
    assert!(
        leases::release(pool, new, "s1", current.epoch, Some(pgwa_core::session::SessionStatus::Stopped), None).await.unwrap()
    );
    assert_eq!(sessions::held(pool, &current).await.unwrap(), Some(false), "a released session has no owner");
    let gone = pgwa_core::fence::Fence { session: "nobody".into(), ..current };
    assert_eq!(sessions::held(pool, &gone).await.unwrap(), None);
    assert!(!sessions::still_held(pool, &gone).await.unwrap());
}

async fn owners(db: &TestDb) -> BTreeMap<Uuid, i64> {
    sqlx::query_as::<_, (Uuid, i64)>("SELECT owner_id, count(*) FROM wa.sessions WHERE owner_id IS NOT NULL GROUP BY 1")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn sessions_spread_fairly_and_a_graceful_stop_hands_them_over_at_once() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s' || i) FROM generate_series(1, 20) i").execute(&db.pool).await.unwrap();
    let mut cfg = fast_config(&db);
    cfg.worker.lease_ttl_ms = 30_000; // a handover must not wait for expiry
    cfg.worker.heartbeat_ms = 200;
    let a = InProcess::start(cfg.clone()).await;
    wait_connected(&db.pool, 20).await;
    let b = InProcess::start(cfg).await;
    let (a_id, b_id) = (a.id, b.id);
    eventually(Duration::from_secs(10), "an even split", || async {
        let o = owners(&db).await;
        (o.get(&a_id) == Some(&10) && o.get(&b_id) == Some(&10)).then_some(())
    })
    .await;
    wait_connected(&db.pool, 20).await;

    let t = Instant::now();
    a.stop().await;
    eventually(Duration::from_secs(3), "b to hold all 20", || async {
        (owners(&db).await.get(&b_id) == Some(&20)).then_some(())
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(3), "handover took {:?} with a 30 s lease", t.elapsed());
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.workers").await, 1, "a stopped worker deregisters");
    b.stop().await;
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL").await, 0);
}

#[tokio::test]
async fn sigterm_exits_zero_and_sigkill_loses_nothing() {
    let db = TestDb::new().await.unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_path = log.path().to_string_lossy().into_owned();
    sqlx::query("SELECT wa.add_session('s' || i) FROM generate_series(1, 4) i").execute(&db.pool).await.unwrap();
    // 4 sessions x 5 chats x 60 messages; each ack takes 2 ms, so the first worker is
    // killed with many jobs claimed and in flight.
    sqlx::query(
        "SELECT wa.send_text('s' || (1 + i % 4), '+1555000000' || ((i / 4) % 5), 'm' || i) FROM generate_series(0, 1199) i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let env =
        vec![("PGWA_WHATSAPP__SIMULATED__SENT_LOG", log_path.clone()), ("PGWA_WHATSAPP__SIMULATED__ACK_LATENCY_MS", "2".into())];

    let mut first = spawn_worker(&db, &env);
    eventually(Duration::from_secs(20), "some progress", || async {
        (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE state = 'completed'").await >= 200).then_some(())
    })
    .await;
    kill(Pid::from_raw(first.id() as i32), Signal::SIGKILL).unwrap();
    first.wait().unwrap();
    let running_at_kill = count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE state = 'running'").await;
    assert!(running_at_kill > 0, "the kill should land mid-batch");

    let mut second = spawn_worker(&db, &env);
    eventually(Duration::from_secs(60), "every job to complete", || async {
        (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE state = 'completed'").await == 1200).then_some(())
    })
    .await;
    kill(Pid::from_raw(second.id() as i32), Signal::SIGTERM).unwrap();
    let status = second.wait().unwrap();
    assert!(status.success(), "SIGTERM must end the worker with exit 0, got {status}");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL").await, 0, "leases released");

    // Every job completed exactly once; a message was sent twice only if the first
    // worker died between the server ack and recording it (those jobs carry the error).
    let recovered: HashSet<String> =
        sqlx::query_scalar("SELECT message_id FROM wa.jobs WHERE errors::text LIKE '%worker holding the session was lost%'")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let ids: HashMap<String, i64> =
        sqlx::query_as("SELECT message_id, id FROM wa.jobs").fetch_all(&db.pool).await.unwrap().into_iter().collect();
    let lines = std::fs::read_to_string(&log_path).unwrap();
    let mut sends: HashMap<String, u32> = HashMap::new();
    let mut first_seen: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for l in lines.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let n = sends.entry(f[2].to_owned()).or_default();
        *n += 1;
        if *n == 1 {
            first_seen.entry((f[0].to_owned(), f[1].to_owned())).or_default().push(ids[f[2]]);
        }
    }
    assert_eq!(sends.len(), 1200, "every message reached the server");
    for (msg, n) in &sends {
        assert!(*n == 1 || recovered.contains(msg), "{msg} sent {n} times without a crash in between");
    }
    for (chat, order) in &first_seen {
        assert!(order.windows(2).all(|w| w[0] < w[1]), "chat {chat:?} went out of order: {order:?}");
    }
}
