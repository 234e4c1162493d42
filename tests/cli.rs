//! The `pgwa` command line against a real database: what it prints and its exit codes.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pgwa_testkit::TestDb;

fn pgwa(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pgwa"))
        .args(args)
        .env("PGWA_DATABASE_URL", &db.url)
        .env_remove("DATABASE_URL")
        .env("PGWA_LOG__FILTER", "warn")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn sessions_sends_and_jobs_from_the_command_line() {
    let db = TestDb::new().await.unwrap();
    let o = pgwa(&db, &["session", "add", "salon-42", "--no-wait"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("added session salon-42"));
    let o = pgwa(&db, &["send", "salon-42", "+55 11 99999-8888", "Your booking is confirmed"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("queued job 1, message id 3EB0"), "{}", stdout(&o));
    let o = pgwa(&db, &["jobs", "list", "--session", "salon-42"]);
    assert!(stdout(&o).contains("available") && stdout(&o).contains("1 job(s)"), "{}", stdout(&o));
    let o = pgwa(&db, &["jobs", "cancel", "1"]);
    assert_eq!(stdout(&o).trim(), "job 1: cancelled");
    let o = pgwa(&db, &["jobs", "show", "1"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["state"], "cancelled");
    let o = pgwa(&db, &["session", "list"]);
    assert!(stdout(&o).contains("salon-42") && stdout(&o).contains("1 session(s)"));
    let o = pgwa(&db, &["session", "remove", "salon-42"]);
    assert!(!o.status.success(), "remove needs --yes");
    let o = pgwa(&db, &["session", "remove", "salon-42", "--yes"]);
    assert!(o.status.success());
}

#[tokio::test]
async fn bad_input_exits_non_zero_with_the_sqlstate() {
    let db = TestDb::new().await.unwrap();
    pgwa(&db, &["session", "add", "s1", "--no-wait"]);
    let o = pgwa(&db, &["send", "s1", "12ab", "hi"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("recipient: '12ab' is not a phone number") && err.contains("SQLSTATE WA002") && err.contains("hint:"),
        "{err}"
    );
    let o = pgwa(&db, &["send", "nope", "+15550000001", "hi"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("SQLSTATE WA001"));
    let o = pgwa(&db, &["jobs", "retry", "99"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("SQLSTATE WA007"));
}

#[tokio::test]
async fn session_add_shows_the_qr_and_waits_until_linked() {
    let db = TestDb::new().await.unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pgwa"))
        .args(["session", "add", "s1", "--wait", "--timeout", "20"])
        .env("PGWA_DATABASE_URL", &db.url)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    common::eventually(Duration::from_secs(10), "the session row", || async {
        (common::count(&db.pool, "SELECT count(*) FROM wa.sessions").await == 1).then_some(())
    })
    .await;
    // What a linking worker writes: a QR code, then the link.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("UPDATE wa.sessions SET qr_code = '2@abc,def', qr_expires_at = now() + interval '1 minute'")
        .execute(&db.pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("UPDATE wa.sessions SET status = 'connected', jid = '15550000001@s.whatsapp.net'")
        .execute(&db.pool)
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains('█') && text.contains("Link a device"), "{text}");
    assert!(text.contains("linked: s1 is connected as 15550000001@s.whatsapp.net"), "{text}");
}

/// `pgwa bench` keeps working: a small burst and a short steady run each print one JSON
/// line whose figures add up (every job drained, percentiles ordered, the latency
/// breakdown present). The figures themselves are measured in release builds only.
#[tokio::test]
async fn bench_prints_its_figures_as_one_json_line() {
    let db = TestDb::new().await.unwrap();
    for args in [
        &["bench", "--jobs", "300", "--sessions", "3", "--chats", "5"][..],
        &["bench", "--jobs", "60", "--sessions", "2", "--rate", "200"],
    ] {
        let o = pgwa(&db, args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        let line = stdout(&o);
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
        let jobs: u64 = args[2].parse().unwrap();
        assert_eq!(v["jobs"], jobs, "{v}");
        assert!(v["jobs_per_sec"].as_f64().unwrap() > 0.0, "{v}");
        let (p50, p99) = (v["p50_ms"].as_f64().unwrap(), v["p99_ms"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99, "{v}");
        for part in ["p50_enqueue_to_claim_ms", "p50_claim_to_ack_ms", "p50_ack_to_recorded_ms"] {
            assert!(v[part].as_f64().is_some_and(|ms| ms >= 0.0), "{part} in {v}");
        }
    }
    let scratch = format!("{}_bench", db.name);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)")))
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn tenants_from_the_command_line() {
    let db = TestDb::new().await.unwrap();
    let name = format!("cli_{}", &db.name[db.name.len() - 8..]);
    let o = pgwa(&db, &["tenant", "add", &name]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains(&format!("its role is pgwa_t_{name}")), "{}", stdout(&o));
    let o = pgwa(&db, &["tenant", "add", "Bad-Name"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("WA012"), "{o:?}");
    let o = pgwa(&db, &["tenant", "list"]);
    assert!(stdout(&o).contains("default") && stdout(&o).contains("pgwa_app") && stdout(&o).contains(&name), "{}", stdout(&o));
    sqlx::query("DELETE FROM wa.tenants WHERE name = $1").bind(&name).execute(&db.pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE pgwa_t_{name}"))).execute(&db.pool).await.unwrap();
}

/// With no configuration, `pgwa run` is the real WhatsApp side. This test build has the
/// `loopback` feature, whose whatsapp-rust side refuses any server but this machine's: a
/// default `run` failing on exactly that proves it chose whatsapp-rust, not the simulation.
#[tokio::test]
async fn run_without_configuration_uses_the_real_whatsapp_side() {
    let db = TestDb::new().await.unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_pgwa"))
        .args(["run", "--no-migrate"])
        .env("PGWA_DATABASE_URL", &db.url)
        .env_remove("DATABASE_URL")
        .env_remove("PGWA_WHATSAPP__BACKEND")
        .env("PGWA_HTTP__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a loopback build must refuse WhatsApp's own server: {err}");
    assert!(err.contains("whatsapp.rust.ws_url") && err.contains("not set"), "{err}");
    assert!(!err.contains("simulated"), "{err}");
}
