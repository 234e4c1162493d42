//! The `pgwa` command line against a real database: what it prints and its exit codes.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pgwa_testkit::TestDb;

/// Runs `pgwa` with `args` to its end. Awaited, not waited for: a worker the test runs
/// beside it keeps renewing its lease meanwhile, even on a runtime of one thread.
async fn pgwa(db: &TestDb, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pgwa"))
        .args(args)
        .env("PGWA_DATABASE_URL", &db.url)
        .env_remove("DATABASE_URL")
        .env("PGWA_LOG__FILTER", "warn")
        .output()
        .await
        .unwrap()
}

/// Starts `pgwa` with `args` and its output piped, for commands that wait for a job.
fn spawn_pgwa(db: &TestDb, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pgwa"))
        .args(args)
        .env("PGWA_DATABASE_URL", &db.url)
        .env_remove("DATABASE_URL")
        .env("PGWA_LOG__FILTER", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn sessions_sends_and_jobs_from_the_command_line() {
    let db = TestDb::new().await.unwrap();
    let o = pgwa(&db, &["session", "add", "salon-42", "--no-wait"]).await;
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("added session salon-42"));
    let o = pgwa(&db, &["send", "salon-42", "+55 11 99999-8888", "Your booking is confirmed"]).await;
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("queued job 1, message id 3EB0"), "{}", stdout(&o));
    let o = pgwa(&db, &["jobs", "list", "--session", "salon-42"]).await;
    assert!(stdout(&o).contains("available") && stdout(&o).contains("1 job(s)"), "{}", stdout(&o));
    let o = pgwa(&db, &["jobs", "cancel", "1"]).await;
    assert_eq!(stdout(&o).trim(), "job 1: cancelled");
    let o = pgwa(&db, &["jobs", "show", "1"]).await;
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["state"], "cancelled");
    let o = pgwa(&db, &["session", "list"]).await;
    assert!(stdout(&o).contains("salon-42") && stdout(&o).contains("1 session(s)"));
    let o = pgwa(&db, &["session", "remove", "salon-42"]).await;
    assert!(!o.status.success(), "remove needs --yes");
    let o = pgwa(&db, &["session", "remove", "salon-42", "--yes"]).await;
    assert!(o.status.success());
}

#[tokio::test]
async fn locations_and_mentions_from_the_command_line() {
    let db = TestDb::new().await.unwrap();
    pgwa(&db, &["session", "add", "s1", "--no-wait"]).await;
    let o = pgwa(&db, &["send-location", "s1", "+5511999998888", "-23.5617", "-46.6559", "--name", "Salon 42"]).await;
    assert!(o.status.success(), "negative coordinates are numbers, not flags: {o:?}");
    assert!(stdout(&o).starts_with("queued job 1, message id 3EB0"), "{}", stdout(&o));
    let o = pgwa(&db, &["send", "s1", "+5511999998888", "hi @15550000002", "--mention", "+15550000002"]).await;
    assert!(o.status.success(), "{o:?}");
    let payloads: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT payload FROM wa.jobs ORDER BY id").fetch_all(&db.pool).await.unwrap();
    assert_eq!((payloads[0]["latitude"].as_f64(), payloads[0]["name"].as_str()), (Some(-23.5617), Some("Salon 42")));
    assert_eq!(payloads[1]["mentions"], serde_json::json!(["15550000002@s.whatsapp.net"]));
    let o = pgwa(&db, &["send-location", "s1", "+5511999998888", "123", "0"]).await;
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("latitude: '123' is not a latitude") && err.contains("SQLSTATE WA006"), "{err}");
}

#[tokio::test]
async fn polls_and_voice_notes_from_the_command_line() {
    let db = TestDb::new().await.unwrap();
    pgwa(&db, &["session", "add", "s1", "--no-wait"]).await;
    let o = pgwa(&db, &["send-poll", "s1", "+5511999998888", "Which day?", "Saturday", "Sunday", "--pick", "0"]).await;
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("queued job 1, message id 3EB0"), "{}", stdout(&o));
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("welcome.ogg");
    std::fs::write(&voice, common::media_files::ogg_opus(3)).unwrap();
    let o = pgwa(&db, &["send-media", "s1", "+5511999998888", "voice", voice.to_str().unwrap()]).await;
    assert!(o.status.success(), "{o:?}");
    let o =
        pgwa(&db, &["send-media", "s1", "+5511999998888", "document", "https://example.com/prices.pdf", "--caption", "prices"])
            .await;
    assert!(o.status.success(), "{o:?}");
    let payloads: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT payload FROM wa.jobs ORDER BY id").fetch_all(&db.pool).await.unwrap();
    assert_eq!(
        (&payloads[0]["question"], &payloads[0]["options"], &payloads[0]["selectable_count"]),
        (&serde_json::json!("Which day?"), &serde_json::json!(["Saturday", "Sunday"]), &serde_json::json!(0))
    );
    assert_eq!(payloads[1]["type"], "voice");
    let data = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payloads[1]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, common::media_files::ogg_opus(3), "the file's bytes, as they are");
    assert_eq!(
        (payloads[2]["url"].as_str(), payloads[2]["caption"].as_str()),
        (Some("https://example.com/prices.pdf"), Some("prices"))
    );
    // Bad input: named, nothing queued.
    let o = pgwa(&db, &["send-poll", "s1", "+5511999998888", "Q?", "same", "same"]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("options: the same option twice") && err.contains("WA006"), "{err}");
    let o = pgwa(&db, &["send-media", "s1", "+5511999998888", "voice", "/nonexistent/welcome.ogg"]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("file: reading /nonexistent/welcome.ogg"), "{err}");
    assert_eq!(common::jobs(&db.pool).await, 3);
}

/// `pgwa check-numbers` waits for its job and prints what wa.contacts then holds. No
/// worker runs here: the test answers the job as one would (contacts written, job
/// completed), which is what the command watches for.
#[tokio::test]
async fn check_numbers_waits_for_the_answers_and_prints_them() {
    let db = TestDb::new().await.unwrap();
    pgwa(&db, &["session", "add", "s1", "--no-wait"]).await;
    let cli = spawn_pgwa(&db, &["check-numbers", "s1", "+1 555 000 1111", "15550002222", "--timeout", "30"]);
    common::answer_number_check(&db.pool, "s1", "15550001111", "15550002222").await;
    let o = cli.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert_eq!(row(&out, "15550001111"), ["15550001111", "yes", "15550001111@s.whatsapp.net", "100000001@lid", "no"], "{out}");
    assert_eq!(row(&out, "15550002222"), ["15550002222", "no", "-", "-", "no"], "{out}");
    assert!(out.contains("2 number(s)"), "{out}");

    // No worker: the job waits, and the command says why and what to look at.
    let o = pgwa(&db, &["check-numbers", "s1", "+15550003333", "--timeout", "1"]).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is still available after 1 s: session s1 must be connected"), "{err}");
    assert!(err.contains("pgwa jobs show"), "{err}");
    // Bad input: refused by the SQL API before anything is queued.
    let o = pgwa(&db, &["check-numbers", "s1", "12ab"]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("phones: '12ab' is not a phone number") && err.contains("WA002"), "{err}");
}

/// `pgwa create-group` waits for its job and prints the group's JID and size from
/// wa.groups (the test answers the job as a worker would).
#[tokio::test]
async fn create_group_waits_for_the_server_and_prints_the_group() {
    let db = TestDb::new().await.unwrap();
    pgwa(&db, &["session", "add", "s1", "--no-wait"]).await;
    let cli = spawn_pgwa(&db, &["create-group", "s1", "Saturday team", "+1 555 000 1111", "15550002222", "--timeout", "30"]);
    let jid = common::answer_group_create(&db.pool, "s1", "15550009999").await;
    let o = cli.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert_eq!(out.trim(), format!("created group {jid} (\"Saturday team\", 3 members including this number)"), "{out}");

    // No worker: the job waits, and the command says why and what to look at.
    let o = pgwa(&db, &["create-group", "s1", "Later", "+15550003333", "--timeout", "1"]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("is still available after 1 s: session s1 must be connected"), "{err}");
    // Bad input: refused by the SQL API before anything is queued.
    let o = pgwa(&db, &["create-group", "s1", "", "+15550003333"]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("subject: a group needs a name") && err.contains("WA006"), "{err}");
}

#[tokio::test]
async fn bad_input_exits_non_zero_with_the_sqlstate() {
    let db = TestDb::new().await.unwrap();
    pgwa(&db, &["session", "add", "s1", "--no-wait"]).await;
    let o = pgwa(&db, &["send", "s1", "12ab", "hi"]).await;
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("recipient: '12ab' is not a phone number") && err.contains("SQLSTATE WA002") && err.contains("hint:"),
        "{err}"
    );
    let o = pgwa(&db, &["send", "nope", "+15550000001", "hi"]).await;
    assert!(String::from_utf8_lossy(&o.stderr).contains("SQLSTATE WA001"));
    let o = pgwa(&db, &["jobs", "retry", "99"]).await;
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

/// A benchmark drops the scratch database it made next to the test's (`<database>_bench`)
/// when its run ends, whether the run succeeded or not.
async fn assert_no_bench_database(db: &TestDb) {
    let scratch = format!("{}_bench", db.name);
    let left: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&scratch)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!left, "{scratch} was left behind");
}

/// `pgwa bench` keeps working: a small burst and a short steady run each print one JSON
/// line whose figures add up (every job drained, percentiles ordered, the latency
/// breakdown present, a burst's CPU per job), and leave no scratch database behind. The figures themselves are
/// measured in release builds only.
#[tokio::test]
async fn bench_prints_its_figures_as_one_json_line() {
    let db = TestDb::new().await.unwrap();
    for args in [
        &["bench", "--jobs", "300", "--sessions", "3", "--chats", "5"][..],
        &["bench", "--jobs", "60", "--sessions", "2", "--rate", "200"],
    ] {
        let o = pgwa(&db, args).await;
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
        let (machine, worker) = (&v["cpu_us_per_job"], &v["worker_cpu_us_per_job"]);
        if args.contains(&"--rate") {
            assert!(machine.is_null() && worker.is_null(), "a paced run's CPU is the pacing's: {v}");
        } else {
            let (machine, worker) = (machine.as_f64().unwrap(), worker.as_f64().unwrap());
            // /proc counts in 10 ms ticks: a tick over the drain is 10,000 µs / jobs.
            let tick = 10_000.0 / jobs as f64;
            assert!(machine > 0.0 && worker >= 0.0 && machine + tick >= worker, "the machine's CPU includes the worker's: {v}");
        }
        assert_no_bench_database(&db).await;
    }
}

/// `pgwa bench --schema-variant` drains against the schema as the variants left it, in
/// the order given, and says which: the repository's variant files apply cleanly to the
/// schema the migrations make. A variant that fails stops the run naming the file, and an
/// unreadable one is refused before anything is created; neither leaves a database.
#[tokio::test]
async fn bench_drains_against_schema_variants() {
    let db = TestDb::new().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/bench/sql");
    let files: Vec<String> = ["jobs_before_0032", "jobs_before_0033", "jobs_without_checks", "jobs_without_after_row_triggers"]
        .iter()
        .map(|f| dir.join(format!("{f}.sql")).display().to_string())
        .collect();
    let mut args = vec!["bench", "--jobs", "100", "--sessions", "2", "--chats", "3"];
    for f in &files {
        args.extend(["--schema-variant", f.as_str()]);
    }
    let o = pgwa(&db, &args).await;
    assert!(o.status.success(), "{o:?}");
    let line = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["jobs"], 100, "{v}");
    assert_eq!(v["schema_variants"], serde_json::json!(files), "{v}");
    assert_no_bench_database(&db).await;

    let bad = std::env::temp_dir().join(format!("{}_variant.sql", db.name));
    std::fs::write(&bad, "DROP TRIGGER no_such_trigger ON wa.jobs;").unwrap();
    let o = pgwa(&db, &["bench", "--jobs", "10", "--schema-variant", bad.to_str().unwrap()]).await;
    std::fs::remove_file(&bad).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{o:?}");
    assert!(err.contains("schema variant") && err.contains(bad.to_str().unwrap()) && err.contains("no_such_trigger"), "{err}");
    assert_no_bench_database(&db).await;

    let o = pgwa(&db, &["bench", "--schema-variant", "/nonexistent/variant.sql"]).await;
    assert!(!o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--schema-variant: cannot read /nonexistent/variant.sql"), "{o:?}");
    assert_no_bench_database(&db).await;
}

/// `pgwa bench-outcomes` keeps working: every variant reports each round's figures (the
/// completion, the receipt and the enqueue) and their medians, and a zero count is refused by name
/// before anything is created.
#[tokio::test]
async fn bench_outcomes_reports_every_variant() {
    let db = TestDb::new().await.unwrap();
    let o = pgwa(&db, &["bench-outcomes", "--jobs", "200", "--sessions", "2", "--rounds", "2"]).await;
    assert!(o.status.success(), "{o:?}");
    let line = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!((v["jobs"].as_u64(), v["sessions"].as_u64()), (Some(200), Some(2)), "{v}");
    let variants = v["variants"].as_object().unwrap();
    let names: Vec<&str> = variants.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "as_shipped",
            "finished_jobs_table",
            "finished_jobs_table_ff50",
            "message_id_table",
            "with_before_0032",
            "with_before_0033",
            "without_jobs_finished_sends",
            "without_jobs_message"
        ],
        "{v}"
    );
    for (name, r) in variants {
        let figures =
            [("us_per_job", "median"), ("receipt_us_per_receipt", "receipt_median"), ("enqueue_us_per_job", "enqueue_median")];
        for (runs, median) in figures {
            let runs: Vec<f64> = r[runs].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert!(runs.len() == 2 && runs.iter().all(|us| *us > 0.0), "{name}: {r}");
            let median = r[median].as_f64().unwrap();
            assert!((median - (runs[0] + runs[1]) / 2.0).abs() < 0.011, "{name}: {r}");
        }
    }
    let o = pgwa(&db, &["bench-outcomes", "--rounds", "0"]).await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--rounds"), "{o:?}");

    // --variant runs only those named, and an unknown name is refused with the list.
    let args = ["bench-outcomes", "--jobs", "50", "--sessions", "2", "--rounds", "1", "--variant", "finished_jobs_table"];
    let o = pgwa(&db, &args).await;
    assert!(o.status.success(), "{o:?}");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["variants"].as_object().unwrap().keys().collect::<Vec<_>>(), ["finished_jobs_table"], "{v}");
    let o = pgwa(&db, &["bench-outcomes", "--variant", "nope"]).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--variant nope") && err.contains("as_shipped"), "{o:?}");
    assert_no_bench_database(&db).await;
}

#[tokio::test]
async fn tenants_from_the_command_line() {
    let db = TestDb::new().await.unwrap();
    let name = common::roles::cluster_name(&db, "cli");
    let o = pgwa(&db, &["tenant", "add", &name]).await;
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains(&format!("its role is pgwa_t_{name}")), "{}", stdout(&o));
    let o = pgwa(&db, &["tenant", "add", "Bad-Name"]).await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("WA012"), "{o:?}");
    let o = pgwa(&db, &["tenant", "list"]).await;
    assert!(stdout(&o).contains("default") && stdout(&o).contains("pgwa_app") && stdout(&o).contains(&name), "{}", stdout(&o));
    common::roles::drop_tenant(&db, &name).await;
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

/// The keys of a JSON object, sorted: the fields a script may rely on.
fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{o:?}");
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// The line of a table whose first cell is `first`, split into its cells.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    let line = table.lines().find(|l| l.split_whitespace().next() == Some(first));
    line.unwrap_or_else(|| panic!("no row {first:?} in\n{table}")).split_whitespace().collect()
}

fn rfc3339(v: &serde_json::Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))).unwrap()
}

#[tokio::test]
async fn session_and_job_lists_as_tables_and_as_json() {
    let db = TestDb::new().await.unwrap();
    assert!(pgwa(&db, &["session", "add", "salon-a", "--no-wait"]).await.status.success());
    assert!(pgwa(&db, &["session", "add", "salon-b", "--stopped", "--no-wait"]).await.status.success());
    let o = pgwa(&db, &["send", "salon-a", "+15550000001", "See you at 3"]).await;
    assert!(o.status.success(), "{o:?}");

    let v = json(&pgwa(&db, &["session", "list", "--json"]).await);
    let rows = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    assert_eq!(rows.len(), 2, "{v}");
    let fields = [
        "backend",
        "bad_decrypt_count",
        "bad_mac_count",
        "desired",
        "failed_connect_count",
        "healthy",
        "held",
        "last_error",
        "queued",
        "session",
        "status",
        "status_reason",
        "worker_id",
    ];
    assert_eq!(keys(&rows[0]), fields);
    let (a, b) = (&rows[0], &rows[1]);
    assert_eq!(
        (&a["session"], &a["desired"], &a["status"], &a["queued"]),
        (&"salon-a".into(), &"running".into(), &"stopped".into(), &1.into())
    );
    assert_eq!((a["held"].as_bool(), a["healthy"].as_bool()), (Some(false), Some(false)), "{a}");
    assert!(a["worker_id"].is_null() && a["backend"].is_null() && a["last_error"].is_null(), "nulls as null: {a}");
    assert_eq!((&b["session"], &b["desired"], &b["queued"]), (&"salon-b".into(), &"stopped".into(), &0.into()));
    let one = json(&pgwa(&db, &["session", "show", "salon-a", "--json"]).await);
    assert_eq!(&one, a, "show --json is the list's object");

    let o = pgwa(&db, &["session", "list"]).await;
    let table = stdout(&o);
    assert_eq!(
        table.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["SESSION", "DESIRED", "STATUS", "HELD", "HEALTHY", "QUEUED", "REASON"],
        "{table}"
    );
    assert_eq!(row(&table, "salon-a"), ["salon-a", "running", "stopped", "false", "false", "1"], "{table}");
    assert_eq!(row(&table, "salon-b"), ["salon-b", "stopped", "stopped", "false", "false", "0"], "{table}");
    assert_eq!(table.lines().last(), Some("2 session(s)"), "{table}");

    let v = json(&pgwa(&db, &["jobs", "list", "--json"]).await);
    let jobs = v.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{v}");
    let j = &jobs[0];
    assert_eq!(
        keys(j),
        [
            "attempts",
            "chat",
            "created_at",
            "delivery",
            "finished_at",
            "id",
            "kind",
            "last_error",
            "max_attempts",
            "message_id",
            "run_at",
            "session_id",
            "state"
        ]
    );
    assert_eq!(
        (&j["id"], &j["session_id"], &j["kind"], &j["state"]),
        (&1.into(), &"salon-a".into(), &"send".into(), &"available".into())
    );
    assert_eq!(j["chat"], "15550000001@s.whatsapp.net", "{j}");
    assert!(j["message_id"].as_str().unwrap().starts_with("3EB0"), "{j}");
    assert_eq!(j["delivery"], "queued", "{j}");
    assert!(j["finished_at"].is_null() && j["last_error"].is_null(), "nulls as null: {j}");
    let created = rfc3339(&j["created_at"]);
    assert!((chrono::Utc::now() - created.to_utc()).num_minutes().abs() < 5, "{j}");
    assert!(rfc3339(&j["run_at"]) >= created, "{j}");

    let o = pgwa(&db, &["jobs", "cancel", "1"]).await;
    assert!(o.status.success(), "{o:?}");
    let v = json(&pgwa(&db, &["jobs", "list", "--json", "--state", "cancelled"]).await);
    assert!(rfc3339(&v[0]["finished_at"]) >= created, "{v}");
    assert_eq!(json(&pgwa(&db, &["jobs", "list", "--json", "--state", "available"]).await), serde_json::json!([]));

    let table = stdout(&pgwa(&db, &["jobs", "list"]).await);
    assert_eq!(
        table.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["ID", "SESSION", "KIND", "STATE", "ATTEMPTS", "DELIVERY", "LAST", "ERROR"],
        "{table}"
    );
    let max = j["max_attempts"].as_i64().unwrap();
    let delivery = v[0]["delivery"].as_str().unwrap_or("-");
    assert_eq!(row(&table, "1"), ["1", "salon-a", "send", "cancelled", format!("0/{max}").as_str(), delivery], "{table}");
    assert_eq!(table.lines().last(), Some("1 job(s)"), "{table}");
}

/// A session held by a simulated worker: the table says "(simulated)" after the status,
/// the JSON keeps the status as the database has it and names the backend apart.
/// One runtime thread: the worker renews its 1.5 s lease while `pgwa()` runs the CLI.
#[tokio::test]
async fn a_simulated_session_says_so_in_the_table_and_apart_in_json() {
    let db = TestDb::new().await.unwrap();
    assert!(pgwa(&db, &["session", "add", "s1", "--no-wait"]).await.status.success());
    let worker = common::InProcess::start(common::fast_config(&db)).await;
    common::eventually(Duration::from_secs(20), "s1 connected", || async {
        (common::count(&db.pool, "SELECT count(*) FROM wa.session_health WHERE status = 'connected' AND held").await == 1)
            .then_some(())
    })
    .await;
    let v = json(&pgwa(&db, &["session", "list", "--json"]).await);
    let s = &v[0];
    assert_eq!((&s["status"], &s["backend"]), (&"connected".into(), &"simulated".into()), "{s}");
    assert_eq!((s["held"].as_bool(), s["worker_id"].as_str()), (Some(true), Some(worker.id.to_string().as_str())), "{s}");
    let table = stdout(&pgwa(&db, &["session", "list"]).await);
    assert!(row(&table, "s1").join(" ").starts_with("s1 running connected (simulated) true"), "{table}");
    worker.stop().await;
}

#[tokio::test]
async fn tenant_list_as_table_and_as_json() {
    let db = TestDb::new().await.unwrap();
    let name = common::roles::cluster_name(&db, "lst");
    assert!(pgwa(&db, &["tenant", "add", &name]).await.status.success());
    sqlx::query("INSERT INTO wa.sessions (id, tenant) VALUES ('t1', $1)").bind(&name).execute(&db.pool).await.unwrap();

    let v = json(&pgwa(&db, &["tenant", "list", "--json"]).await);
    let tenants = v.as_array().unwrap();
    let mine = tenants.iter().find(|t| t["name"] == name.as_str()).unwrap_or_else(|| panic!("{name} not in {v}"));
    assert_eq!(mine, &serde_json::json!({"name": name, "role": format!("pgwa_t_{name}"), "sessions": 1}));
    assert!(tenants.iter().any(|t| t["name"] == "default" && t["role"] == "pgwa_app"), "{v}");

    let table = stdout(&pgwa(&db, &["tenant", "list"]).await);
    assert_eq!(table.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(), ["TENANT", "ROLE", "SESSIONS"]);
    assert_eq!(row(&table, &name), [name.as_str(), format!("pgwa_t_{name}").as_str(), "1"], "{table}");
    assert_eq!(table.lines().last(), Some(format!("{} tenant(s)", tenants.len()).as_str()), "{table}");

    common::roles::drop_tenant(&db, &name).await;
}

/// A reader that stops reading (`pgwa session list | head -1`) ends the command well: no
/// panic, exit 0, the first line being the table's header.
#[tokio::test]
async fn a_closed_stdout_pipe_does_not_panic() {
    let db = TestDb::new().await.unwrap();
    // Output well past a pipe's buffer (64 KiB), so the writer meets the closed pipe.
    sqlx::query("SELECT wa.add_session('session-' || g, start => false) FROM generate_series(1, 2000) g")
        .execute(&db.pool)
        .await
        .unwrap();
    let lists: [&[&str]; 6] = [
        &["session", "list"],
        &["session", "list", "--json"],
        &["session", "show", "session-1"],
        &["jobs", "list"],
        &["tenant", "list", "--json"],
        &["session", "stop", "session-1"],
    ];
    for args in lists {
        // A pipe whose reading end is closed before the command writes a byte.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_pgwa"))
            .args(args)
            .env("PGWA_DATABASE_URL", &db.url)
            .env_remove("DATABASE_URL")
            .env("PGWA_LOG__FILTER", "warn")
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && !err.contains("panicked"), "{args:?}: {o:?}");
    }
    for list in ["session list", "session list --json"] {
        let o = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; \"$PGWA\" {list} | head -1")])
            .env("PGWA", env!("CARGO_BIN_EXE_pgwa"))
            .env("PGWA_DATABASE_URL", &db.url)
            .env_remove("DATABASE_URL")
            .env("PGWA_LOG__FILTER", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && !err.contains("panicked"), "{list}: {o:?}");
        let first = if list.ends_with("--json") { "[" } else { "SESSION" };
        assert!(stdout(&o).starts_with(first) && stdout(&o).lines().count() == 1, "{list}: {}", stdout(&o));
    }
}

/// The configuration file can be named by PGWA_CONFIG, as every `--help` says, and the
/// database by --database-url, which wins over the file and the environment.
#[tokio::test]
async fn pgwa_config_and_database_url_from_the_command_line() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('cfg-a')").execute(&db.pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("elsewhere.toml");
    std::fs::write(&file, format!("database_url = \"{}\"\n", db.url)).unwrap();
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgwa"));
        c.args(args).env_remove("DATABASE_URL").env_remove("PGWA_DATABASE_URL").env("PGWA_LOG__FILTER", "warn");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let by_env = run(&[("PGWA_CONFIG", file.to_str().unwrap())], &["session", "list"]);
    assert!(by_env.status.success(), "{}", String::from_utf8_lossy(&by_env.stderr));
    assert!(stdout(&by_env).contains("cfg-a"), "{}", stdout(&by_env));

    let by_flag =
        run(&[("PGWA_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")], &["--database-url", &db.url, "session", "list"]);
    assert!(by_flag.status.success(), "{}", String::from_utf8_lossy(&by_flag.stderr));
    assert!(stdout(&by_flag).contains("cfg-a"), "{}", stdout(&by_flag));

    let missing = run(&[("PGWA_CONFIG", "/nonexistent/pgwa.toml")], &["session", "list"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("/nonexistent/pgwa.toml") && err.contains("does not exist"), "{err}");
    db.drop_now().await.unwrap();
}

/// `pgwa jobs retry|cancel` without an id move every job the filter picks (wa.retry_jobs,
/// wa.cancel_jobs), and say how many; a bare cancel, or an id with a filter, is refused.
#[tokio::test]
async fn jobs_retry_and_cancel_by_filter() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1', start => false), wa.add_session('s2', start => false)")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("SELECT wa.send_text(s, '+15550000001', 'x') FROM unnest('{s1,s1,s1,s2}'::text[]) s")
        .execute(&db.pool)
        .await
        .unwrap();

    let o = pgwa(&db, &["jobs", "cancel", "--session", "s1", "--kind", "send"]).await;
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("cancelled 3 jobs"), "{}", stdout(&o));
    let o = pgwa(&db, &["jobs", "retry", "--state", "cancelled", "--max", "2"]).await;
    assert_eq!(stdout(&o).trim(), "retried 2 jobs", "{o:?}");
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state::text FROM wa.jobs ORDER BY id").fetch_all(&db.pool).await.unwrap();
    assert_eq!(states, ["available", "available", "cancelled", "available"]);

    for (args, says) in [
        (&["jobs", "cancel"][..], "cancelling every job at once is not done"),
        (&["jobs", "retry", "1", "--session", "s1"], "not both"),
        (&["jobs", "retry", "--state", "completed"], "SQLSTATE WA005"),
    ] {
        let o = pgwa(&db, args).await;
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `pgwa session link` prints the connect page's URL alone on stdout; a missing
/// public_url or a ttl out of range is refused with its SQLSTATE.
#[tokio::test]
async fn session_link_prints_the_connect_url() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(&db.pool).await.unwrap();
    let o = pgwa(&db, &["session", "link", "s1"]).await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("SQLSTATE WA014"), "{o:?}");
    sqlx::query("UPDATE wa.policy SET public_url = 'https://wa.example.com'").execute(&db.pool).await.unwrap();
    let o = pgwa(&db, &["session", "link", "s1", "--minutes", "120"]).await;
    assert!(o.status.success(), "{o:?}");
    let url = stdout(&o);
    assert!(url.starts_with("https://wa.example.com/connect/") && url.lines().count() == 1, "{url}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("valid for 120 minutes"), "{o:?}");
    let o = pgwa(&db, &["session", "link", "s1", "--minutes", "20000"]).await;
    assert!(String::from_utf8_lossy(&o.stderr).contains("SQLSTATE WA005"), "{o:?}");
}

#[tokio::test]
async fn webhooks_from_the_command_line() {
    let db = TestDb::new().await.unwrap();
    let o = pgwa(&db, &["webhook", "add", "https://app.example.com/pgwa-events?k=1", "--events", "inbox,outbound"]).await;
    assert!(o.status.success(), "{o:?}");
    let secret = stdout(&o).trim().to_owned();
    assert!(secret.starts_with("whsec_") && !secret.contains(' '), "the secret alone on stdout: {secret}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("added webhook 1"));
    let stored: String = sqlx::query_scalar("SELECT secret FROM wa.webhooks WHERE id = 1").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, secret);

    let o = pgwa(&db, &["webhook", "add", "ftp://app.example.com/x"]).await;
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("url:") && err.contains("SQLSTATE WA015"), "{err}");
    let o = pgwa(&db, &["webhook", "add", "https://app.example.com/x", "--events", "inbox,everything"]).await;
    assert!(String::from_utf8_lossy(&o.stderr).contains("events:"), "{o:?}");

    let o = pgwa(&db, &["webhook", "list", "--json"]).await;
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "the refused ones were not written");
    assert_eq!(list[0]["events"], serde_json::json!(["inbox", "outbound"]));
    assert_eq!(list[0]["enabled"], true);
    assert!(!stdout(&o).contains(&secret[6..]), "no secret in the list");

    assert!(pgwa(&db, &["webhook", "disable", "1"]).await.status.success());
    let o = pgwa(&db, &["webhook", "list"]).await;
    assert!(stdout(&o).contains(" no ") && stdout(&o).contains("1 webhook(s)"), "{}", stdout(&o));
    let o = pgwa(&db, &["webhook", "rotate-secret", "1"]).await;
    let rotated = stdout(&o).trim().to_owned();
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    let o = pgwa(&db, &["webhook", "deliveries", "1"]).await;
    assert!(o.status.success() && stdout(&o).contains("0 delivery(s)"), "{}", stdout(&o));
    let o = pgwa(&db, &["webhook", "remove", "1"]).await;
    assert!(stdout(&o).contains("removed webhook 1"), "{o:?}");
    let o = pgwa(&db, &["webhook", "remove", "1"]).await;
    assert!(String::from_utf8_lossy(&o.stderr).contains("SQLSTATE WA016"), "{o:?}");
}
