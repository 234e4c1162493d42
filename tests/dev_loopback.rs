//! `pgwa dev loopback`, the offline trial the README shows: one process runs the loopback
//! WhatsApp server, a phone that links every new session, and a worker. A new user adds
//! two sessions with SQL, and they link with nobody scanning anything; one sends to the
//! other and the message lands in the inbox. (The test binary has the `loopback` feature
//! through the package's dev-dependency on itself; release builds do not.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::eventually;
// Kills the process if the test fails, so it cannot outlive it holding the test's stderr.
use common::loopback::Worker;
use pgwa_testkit::TestDb;

#[tokio::test]
async fn two_sessions_link_by_themselves_and_exchange_a_message() {
    let db = TestDb::new().await.unwrap();
    let mut child = Worker {
        child: Command::new(env!("CARGO_BIN_EXE_pgwa"))
            .args(["dev", "loopback", "--port", "0"])
            .env("PGWA_DATABASE_URL", &db.url)
            .env_remove("DATABASE_URL")
            .env("PGWA_LOG__FILTER", "warn")
            .env("PGWA_HTTP__LISTEN", "127.0.0.1:0")
            .env("PGWA_WORKER__LEASE_TTL_MS", "10000")
            .env("PGWA_WORKER__HEARTBEAT_MS", "1000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning pgwa dev loopback"),
    };
    let out = child.child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // It migrates first (and says so), then starts the server.
    let mut said = Vec::new();
    while !said.last().is_some_and(|l: &String| l.starts_with("loopback WhatsApp server on ws://127.0.0.1:")) {
        let line = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
        said.push(line.unwrap_or_else(|_| panic!("no server line within 60 s; it said {said:#?}")).expect("its output"));
    }

    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('alice'), wa.add_session('bob')").execute(pool).await.unwrap();
    let phones: Vec<(String, String)> = eventually(Duration::from_secs(90), "both sessions connected", || async {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id, phone FROM wa.sessions WHERE status = 'connected' ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap();
        let phones: Vec<(String, String)> = rows.into_iter().filter_map(|(id, p)| Some((id, p?))).collect();
        (phones.len() == 2).then_some(phones)
    })
    .await;
    let bob_phone = &phones[1].1;

    sqlx::query("SELECT wa.send_text('alice', $1, 'hello from alice')").bind(bob_phone).execute(pool).await.unwrap();
    let (chat, text): (String, Option<String>) = eventually(Duration::from_secs(60), "the message in bob's inbox", || async {
        sqlx::query_as("SELECT chat, text FROM wa.inbox WHERE session_id = 'bob'").fetch_optional(pool).await.unwrap()
    })
    .await;
    assert_eq!(text.as_deref(), Some("hello from alice"));
    assert_eq!(chat, format!("{}@s.whatsapp.net", phones[0].1), "the chat is alice's number");

    // What the process said it did: a user follows along in its output.
    while let Ok(line) = rx.try_recv() {
        said.push(line);
    }
    let scans = said.iter().filter(|l| l.starts_with("phone: scanned the QR code of session")).count();
    assert_eq!(scans, 2, "{said:#?}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || child.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
}

/// `pgwa dev bench-sessions` and `bench-messages` keep working: tiny runs each print one
/// JSON line whose figures add up. The figures themselves are measured in release builds
/// (BENCHMARKS.md).
#[tokio::test]
async fn loopback_benches_print_their_figures_as_one_json_line() {
    let db = TestDb::new().await.unwrap();
    let run = |args: &[&str]| {
        let (url, args) = (db.url.clone(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_pgwa"))
                .args(args)
                .env("PGWA_DATABASE_URL", url)
                .env_remove("DATABASE_URL")
                // bench-sessions settles until a heap trim ran: 10 s, not the default 31.
                .env("PGWA_WORKER__HEAP_TRIM_SECS", "5")
                .stderr(Stdio::inherit())
                .output()
                .expect("running the bench")
        })
    };
    let timeline = std::env::temp_dir().join(format!("{}-timeline.csv", db.name));
    let timeline_arg = timeline.display().to_string();
    let args = ["--pairs", "2", "--messages", "20", "--rate", "20", "--latency-messages", "10", "--timeline", &timeline_arg];
    let out = run(&[&["dev", "bench-messages"], &args[..]].concat()).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let all: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    // The same run with the keys in Postgres and in memory, and their ratio.
    for (part, store) in [("postgres_keys", "postgres"), ("memory_keys", "memory")] {
        let v = &all[part];
        assert_eq!((&v["key_store"], &v["burst_enqueue"]), (&serde_json::json!(store), &serde_json::json!("send_text")), "{all}");
        assert_eq!((v["burst_messages"].as_i64(), v["latency_messages"].as_i64()), (Some(20), Some(10)), "{all}");
        assert!(v["burst_msgs_per_sec"].as_f64().unwrap() > 0.0, "{all}");
        // The enqueueing statement is part of the burst, timed apart.
        let enqueue_ms = v["burst_enqueue_ms"].as_f64().unwrap_or_else(|| panic!("burst_enqueue_ms in {all}"));
        assert!(0.0 < enqueue_ms && enqueue_ms <= v["burst_wall_secs"].as_f64().unwrap() * 1e3, "{all}");
        let (p50, p99) = (v["p50_send_to_inbox_ms"].as_f64().unwrap(), v["p99_send_to_inbox_ms"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99, "{all}");
        // The two hops' medians: each positive, neither longer than the slowest message.
        let max = v["max_send_to_inbox_ms"].as_f64().unwrap();
        for hop in ["p50_send_to_claim_ms", "p50_claim_to_inbox_ms"] {
            let ms = v[hop].as_f64().unwrap_or_else(|| panic!("{hop} in {all}"));
            assert!(0.0 < ms && ms <= max, "{hop}: {all}");
        }
        // The disk's part, as the WAL flush watcher saw it: a wait no longer than the run.
        let longest = v["latency_wal_flush_longest_ms"].as_f64().unwrap_or_else(|| panic!("{all}"));
        let over = v["latency_wal_flushes_over_20ms"].as_u64().unwrap_or_else(|| panic!("{all}"));
        assert!((0.0..60_000.0).contains(&longest) && (over == 0) == (longest < 20.0), "{all}");
    }
    for part in ["postgres_keys", "memory_keys"] {
        // The burst's CPU per message, split: the parts add up to the machine's.
        let cpu = &all[part]["burst_cpu_ms_per_msg"];
        let f = |k: &str| cpu[k].as_f64().unwrap_or_else(|| panic!("{k} in {all}"));
        let parts = f("workers") + f("bench_and_server") + f("postgres_and_rest");
        assert!((f("machine") - parts).abs() <= 0.02, "{all}");
        // The machine's time includes the processes' (/proc counts in 10 ms ticks: four
        // of them over the burst's messages is the reading's slack).
        let slack = 40.0 / all[part]["burst_messages"].as_f64().unwrap();
        assert!(f("machine") >= f("workers") + f("bench_and_server") - slack, "{all}");
        // Every message writes at least its job row and its inbox row (other tests'
        // writes may add to these server-wide counts, never take from them).
        let writes = &all[part]["burst_postgres_writes_per_msg"];
        let w = |k: &str| writes[k].as_f64().unwrap_or_else(|| panic!("{k} in {all}"));
        assert!(w("write_transactions") > 0.0 && w("wal_bytes") >= 500.0, "{all}");
    }
    let scratch = format!("{}_bench", db.name);
    let scratch_left = || async {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&scratch)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    assert!(!scratch_left().await, "bench-messages dropped its scratch database");
    // The timeline: every latency message of both runs, in the order sent, agreeing with
    // the slowest message the figures name.
    let csv = std::fs::read_to_string(&timeline).unwrap();
    std::fs::remove_file(&timeline).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("round,key_store,sent_ms,pair,to_claim_ms,to_inbox_ms"), "{csv}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for (part, store) in [("postgres_keys", "postgres"), ("memory_keys", "memory")] {
        let run: Vec<&Vec<&str>> = rows.iter().filter(|r| r[1] == store).collect();
        assert_eq!(run.len(), 10, "{csv}");
        let f = |r: &Vec<&str>, i: usize| r[i].parse::<f64>().unwrap_or_else(|e| panic!("{e}: {csv}"));
        assert!(run.iter().all(|r| r[0] == "1" && r[3].starts_with('a') && 0.0 < f(r, 4) && f(r, 4) <= f(r, 5)), "{csv}");
        assert!(run.windows(2).all(|w| f(w[0], 2) <= f(w[1], 2)) && f(run[0], 2) == 0.0, "{csv}");
        let slowest = run.iter().map(|r| f(r, 5)).fold(0.0, f64::max);
        assert!((slowest - all[part]["max_send_to_inbox_ms"].as_f64().unwrap()).abs() < 0.01, "{csv} {all}");
    }
    let ratio = all["burst_ratio_postgres_to_memory"].as_f64().unwrap();
    let want =
        all["postgres_keys"]["burst_msgs_per_sec"].as_f64().unwrap() / all["memory_keys"]["burst_msgs_per_sec"].as_f64().unwrap();
    assert!((ratio - want).abs() < 0.001, "{all}");
    // One round unless asked: the figures on top are that round's, run Postgres first.
    let rounds = all["rounds"].as_array().unwrap();
    assert_eq!(
        (rounds.len(), &all["median_round"], &rounds[0]["order"]),
        (1, &serde_json::json!(1), &serde_json::json!(["postgres", "memory"])),
        "{all}"
    );
    assert_eq!(
        (&rounds[0]["postgres_keys"], &all["burst_ratios"][0]),
        (&all["postgres_keys"], &all["burst_ratio_postgres_to_memory"])
    );

    // Bad arguments are refused by name, before anything is measured: a zero count, a
    // timeline that cannot be written, an unknown way to enqueue.
    for (arg, value, named) in [
        ("--rounds", "0", "--rounds"),
        ("--timeline", "/nonexistent-dir/t.csv", "--timeline /nonexistent-dir/t.csv"),
        ("--enqueue", "copy", "'copy' for '--enqueue"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pgwa"))
            .args(["dev", "bench-messages", arg, value])
            .env("PGWA_DATABASE_URL", &db.url)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(named), "{out:?}");
        assert!(!stderr.contains("round 1/"), "nothing was measured: {out:?}");
    }

    let args = ["dev", "bench-sessions", "--sessions", "3", "--idle-secs", "1", "--connect-per-sec", "100"];
    let out = run(&args).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    assert_eq!(v["sessions"], 3, "{v}");
    assert!(v["worker_rss_mib"].as_f64().unwrap() >= v["worker_rss_empty_mib"].as_f64().unwrap(), "{v}");
    assert!(v["restart_bringup_secs"].as_f64().unwrap() > 0.0, "{v}");
    let cpu = &v["restart_cpu_ms_per_session"];
    assert!(cpu["machine"].as_f64().unwrap() > 0.0, "{v}");
    for part in ["worker", "server", "postgres_and_rest"] {
        assert!(cpu[part].as_f64().is_some(), "{part}: {v}");
    }
    assert_eq!(v["settle_secs"], 10, "{v}");
    // 3 links log in after their 515 restart, and the restarted worker logs all 3 in again.
    assert!(v["server_logins"].as_u64().unwrap() >= 6, "{v}");
    assert!(!scratch_left().await, "bench-sessions dropped its scratch database");
}
