//! The `pgwa` process against what operators meet: a log pipe that broke, a Postgres
//! that is not up yet or speaks no TLS, a typo'd database name or a URL for another
//! database.

mod common;

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::{count, eventually};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgwa_testkit::TestDb;

/// The binary under test. `TEST_PGWA_BIN` pins one: worktrees that share a target
/// directory overwrite each other's `target/debug/pgwa`, the path Cargo gives the tests.
fn bin() -> String {
    std::env::var("TEST_PGWA_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pgwa").to_owned())
}

/// `pgwa` with the short leases of tests/common, on `url`, on the simulated WhatsApp side.
fn pgwa(url: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("PGWA_DATABASE_URL", url)
        .env("PGWA_WHATSAPP__BACKEND", "simulated")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .env_remove("PGSSLMODE")
        .env("PGWA_WORKER__LEASE_TTL_MS", "1500")
        .env("PGWA_WORKER__HEARTBEAT_MS", "300")
        .env("PGWA_WORKER__POLL_INTERVAL_MS", "200")
        .env("PGWA_DB__MAX_CONNECTIONS", "6")
        .env("PGWA_LOG__FILTER", "warn")
        .env("PGWA_HTTP__LISTEN", "127.0.0.1:0")
        .env("PGWA_PACING__ENABLED", "false")
        .env("PGWA_WORKER__CONNECT_PER_SEC", "1000")
        .stdin(Stdio::null());
    cmd
}

fn output(url: &str, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let o = pgwa(url).args(args).output().unwrap();
    (o, t.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sigterm(child: &Child) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
}

/// Waits for `child` to exit; kills it and fails if it takes longer than `within`.
fn wait_exit(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A URL for database `name` on the test server.
fn url_for(name: &str) -> String {
    format!("{}/{name}", pgwa_testkit::server_url())
}

/// `db.url` with another port (and an optional password), e.g. one nothing listens on.
fn url_on_port(db: &TestDb, port: u16, password: Option<&str>) -> String {
    let mut u = url::Url::parse(&db.url).unwrap();
    u.set_port(Some(port)).unwrap();
    if password.is_some() {
        u.set_password(password).unwrap();
    }
    u.to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn database_exists(db: &TestDb, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// A worker whose stdout and stderr are pipes nobody reads any more (`pgwa run | head -1`
/// after head exited): every log line fails with EPIPE. The worker must go on holding
/// its session, and SIGTERM must still stop it cleanly and release the lease.
#[tokio::test]
async fn a_broken_log_pipe_neither_stops_the_worker_nor_keeps_its_leases() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = pgwa(&db.url)
        .arg("run") // migrates first, which prints to stdout
        .env("PGWA_LOG__FILTER", "debug") // a line for every statement
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    wait_held(&db).await;
    let beat = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("SELECT max(heartbeat_at) FROM wa.workers")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let first = beat(&db).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(child.try_wait().unwrap().is_none(), "the worker died of its broken log pipe");
    assert!(beat(&db).await > first, "the worker stopped heartbeating");
    let held = count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL AND lease_expires_at > now()").await;
    assert_eq!(held, 1, "the worker lost its lease");

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10), "SIGTERM with a broken log pipe");
    assert!(status.success(), "SIGTERM must end the worker with exit 0, got {status}");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL").await, 0, "leases released");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.workers").await, 0, "worker deregistered");
}

/// A log pipe whose reader stopped reading (a paused pager): once the pipe is full a
/// blocking write would stall every thread that logs, heartbeats included.
#[tokio::test]
async fn a_stalled_log_pipe_does_not_stall_the_worker() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = pgwa(&db.url)
        .args(["run", "--no-migrate"])
        .env("PGWA_LOG__FILTER", "trace")
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    wait_held(&db).await;
    // At trace level the 64 KiB pipe fills within a few heartbeats; from then on the
    // heartbeat must still advance.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(heartbeat_at) FROM wa.workers").fetch_one(&db.pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(heartbeat_at) FROM wa.workers").fetch_one(&db.pool).await.unwrap();
    assert!(after > before, "the heartbeat stalled behind a full log pipe");
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10), "SIGTERM with a full log pipe");
    assert!(status.success(), "got {status}");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL").await, 0, "leases released");
    drop(reader);
}

/// Only `migrate` and `run` create a missing database; a typo'd name elsewhere is an
/// error that says what to do, and creates nothing.
#[tokio::test]
async fn only_migrate_and_run_create_the_database() {
    let db = TestDb::new().await.unwrap();
    let name = format!("{}_typo", db.name);
    let url = url_for(&name);
    for args in [
        &["session", "list"][..],
        &["jobs", "list"],
        &["send", "s1", "+15550000001", "hi"],
        &["session", "add", "s1", "--no-wait"],
    ] {
        let (o, _) = output(&url, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&format!("database '{name}' does not exist")) && err.contains("pgwa migrate"), "{args:?}: {err}");
        assert!(!database_exists(&db, &name).await, "{args:?} created the database");
    }
    let (o, _) = output(&url, &["migrate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(database_exists(&db, &name).await, "migrate creates the database");
    let (o, _) = output(&url, &["session", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
        .execute(&db.pool)
        .await
        .unwrap();
}

/// A URL for another database or no URL at all is refused by its scheme, for every
/// command, before any connection, and without its password.
#[tokio::test]
async fn a_url_for_another_database_is_refused_by_name() {
    let db = TestDb::new().await.unwrap();
    let name = format!("{}_other", db.name);
    let cases = [
        (format!("mysql://postgres:s3cr3tpw@127.0.0.1:5432/{name}"), "scheme 'mysql' is not supported"),
        (format!("http://postgres:s3cr3tpw@127.0.0.1:5432/{name}"), "scheme 'http' is not supported"),
        (format!("sqlite:{name}.db"), "scheme 'sqlite' is not supported"),
        ("s3cr3tpw garbage".to_string(), "is not a URL"),
    ];
    let commands: [&[&str]; 5] =
        [&["migrate"], &["run"], &["session", "list"], &["jobs", "list"], &["send", "s1", "+15550000001", "hi"]];
    for (url, expected) in &cases {
        for args in commands {
            let (o, took) = output(url, args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{url} {args:?}: {err}");
            assert!(err.contains(expected) && err.contains("postgres://"), "{url} {args:?}: {err}");
            assert!(!err.contains("s3cr3tpw"), "{url} {args:?} printed the password: {err}");
            assert!(took < Duration::from_secs(5), "{url} {args:?} took {took:?}");
        }
    }
    assert!(!database_exists(&db, &name).await, "a non-postgres URL created a database");
}

/// sslmode=require or verify-full against a server without TLS (the proxy below answers
/// "no" to the TLS request for it) is refused with that reason, never a panic and never
/// plaintext, and `run` does not wait for it; prefer and disable still connect.
#[tokio::test(flavor = "multi_thread")]
async fn sslmode_require_is_refused_by_a_server_without_tls() {
    let db = TestDb::new().await.unwrap();
    let port = free_port();
    let server = tokio::spawn(proxy(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap(), true));
    let url = url_on_port(&db, port, None);
    for mode in ["require", "verify-full"] {
        let url = format!("{url}?sslmode={mode}");
        for args in [&["session", "list"][..], &["run", "--no-migrate"]] {
            let (o, took) = output(&url, args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{mode} {args:?}: {err}");
            assert!(err.contains(&format!("sslmode={mode}")) && err.contains("refused TLS"), "{mode} {args:?}: {err}");
            assert!(took < Duration::from_secs(10), "{mode} {args:?} took {took:?}: TLS refusal is not retried");
        }
    }
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.workers").await, 0);
    for mode in ["prefer", "disable"] {
        let (o, _) = output(&format!("{url}?sslmode={mode}"), &["session", "list"]);
        assert!(o.status.success(), "sslmode={mode}: {}", stderr(&o));
    }
    server.abort();
}

/// With a server that speaks TLS (the local one when its `ssl` is on, as Debian's
/// packages set it up with a self-signed certificate): sslmode=require encrypts every
/// connection of the worker, verify-full refuses a certificate nobody vouches for, and
/// accepts it when database_url names it as sslrootcert; with no sslmode, this host's
/// server is reached without TLS.
#[tokio::test]
async fn tls_is_used_when_asked_and_verified_with_verify_full() {
    let db = TestDb::new().await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&db.pool).await.unwrap();
    let cert: String = sqlx::query_scalar("SHOW ssl_cert_file").fetch_one(&db.pool).await.unwrap();
    if ssl != "on" || std::fs::metadata(&cert).is_err() {
        eprintln!("skipped: the test server has ssl = {ssl} (certificate {cert}); the refusal test covers the rest");
        return;
    }
    let mut child = pgwa(&format!("{}?sslmode=require", db.url))
        .args(["run", "--no-migrate"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let by_ssl = |ssl: bool| {
        let (pool, name) = (db.pool.clone(), db.name.clone());
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                  WHERE a.datname = $1 AND a.application_name = 'pgwa' AND s.ssl = $2",
            )
            .bind(name)
            .bind(ssl)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    eventually(Duration::from_secs(15), "the worker's connections", || async {
        (count(&db.pool, "SELECT count(*) FROM wa.workers").await == 1 && by_ssl(true).await >= 2).then_some(())
    })
    .await;
    assert_eq!(by_ssl(false).await, 0, "a worker connection without TLS under sslmode=require");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(10), "SIGTERM").success());

    let (o, took) = output(&format!("{}?sslmode=verify-full", db.url), &["session", "list"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "an unverified certificate was accepted: {err}");
    assert!(err.contains("TLS with") && err.contains("sslrootcert="), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // The self-signed certificate names localhost.
    let mut u = url::Url::parse(&db.url).unwrap();
    u.set_host(Some("localhost")).unwrap();
    u.query_pairs_mut().append_pair("sslmode", "verify-full").append_pair("sslrootcert", &cert);
    let (o, _) = output(u.as_str(), &["session", "list"]);
    assert!(o.status.success(), "verify-full with the server's certificate as sslrootcert: {}", stderr(&o));

    // Without an sslmode, a server on this host is reached in plaintext, though it
    // offers TLS: the bytes never leave the machine, and TLS cost a third of the queue's
    // throughput (pgwa_pg::connect::plain_on_this_host).
    let mut child = pgwa(&db.url).args(["run", "--no-migrate"]).stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
    eventually(Duration::from_secs(15), "the worker's plaintext connections", || async {
        (by_ssl(false).await >= 2).then_some(())
    })
    .await;
    assert_eq!(by_ssl(true).await, 0, "a worker connection to this host used TLS without being asked to");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(10), "SIGTERM").success());
}

/// Commands other than `run` fail fast when Postgres is down, naming where they looked.
#[tokio::test]
async fn commands_fail_fast_when_postgres_is_down() {
    let db = TestDb::new().await.unwrap();
    let url = url_on_port(&db, free_port(), Some("s3cr3tpw"));
    for args in [&["session", "list"][..], &["migrate"]] {
        let (o, took) = output(&url, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("cannot connect to") && err.contains("is Postgres running"), "{args:?}: {err}");
        assert!(!err.contains("s3cr3tpw"), "{args:?} printed the password: {err}");
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    }
}

/// Reads what `child` wrote to stderr so far (a temporary file).
fn log_so_far(file: &mut std::fs::File) -> String {
    use std::io::Seek;
    let mut s = String::new();
    file.seek(std::io::SeekFrom::Start(0)).unwrap();
    file.read_to_string(&mut s).unwrap();
    s
}

/// `pgwa run` started before Postgres waits, saying so at warn, and SIGTERM still stops
/// it at once.
#[tokio::test]
async fn run_waits_for_postgres_and_stops_on_sigterm_while_waiting() {
    let db = TestDb::new().await.unwrap();
    let url = url_on_port(&db, free_port(), Some("s3cr3tpw"));
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child =
        pgwa(&url).arg("run").stdout(Stdio::null()).stderr(log.reopen().unwrap()).env("NO_COLOR", "1").spawn().unwrap();
    let mut file = log.reopen().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "run gave up: {}", log_so_far(&mut file));
    let text = log_so_far(&mut file);
    let retries = text.lines().filter(|l| l.contains("WARN") && l.contains("retrying")).count();
    assert!(retries >= 2, "expected a warn line per attempt: {text}");
    assert!(text.contains("127.0.0.1") && text.contains("is Postgres running"), "{text}");
    assert!(!text.contains("s3cr3tpw"), "the password was logged: {text}");
    let t = Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(3), "SIGTERM while waiting for Postgres");
    assert!(status.success(), "got {status}: {}", log_so_far(&mut file));
    assert!(t.elapsed() < Duration::from_secs(2), "stopping took {:?}", t.elapsed());
}

/// A tiny TCP proxy to the test server on `listener`, so a "server" can appear later;
/// with `refuse_tls` it answers a client's TLS request "no" itself, as a server without
/// TLS does, and passes the plaintext session on.
async fn proxy(listener: tokio::net::TcpListener, refuse_tls: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Length 8, then the SSLRequest code 80877103.
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];
    let target = {
        let u = url::Url::parse(&pgwa_testkit::server_url()).unwrap();
        format!("{}:{}", u.host_str().unwrap(), u.port().unwrap_or(5432))
    };
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { return };
        let target = target.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
            if refuse_tls {
                let mut first = [0u8; 8];
                if inbound.read_exact(&mut first).await.is_err() {
                    return;
                }
                let sent = if first == SSL_REQUEST { inbound.write_all(b"N").await } else { outbound.write_all(&first).await };
                if sent.is_err() {
                    return;
                }
            }
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

/// Once Postgres appears, the waiting worker connects and takes its sessions.
#[tokio::test(flavor = "multi_thread")]
async fn run_connects_once_postgres_appears() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = pgwa(&url_on_port(&db, port, None))
        .args(["run", "--no-migrate"])
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let mut file = log.reopen().unwrap();
    eventually(Duration::from_secs(10), "a retry line", || {
        let text = log_so_far(&mut file);
        async move { text.contains("retrying").then_some(()) }
    })
    .await;
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.workers").await, 0);
    let server = tokio::spawn(proxy(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap(), false));
    eventually(Duration::from_secs(30), "the worker to hold s1 once Postgres is up", || async {
        let held =
            count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL AND lease_expires_at > now()").await;
        (held == 1).then_some(())
    })
    .await;
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10), "SIGTERM after connecting");
    assert!(status.success(), "got {status}");
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL").await, 0, "leases released");
    server.abort();
}

/// Neither password form reaches a log line or an error: the user-info one and the
/// `password=` query parameter that sqlx also reads.
#[test]
fn redact_hides_both_password_forms() {
    let r = pgwa_pg::redact("postgres://app:s3cr3tpw@db.example:5432/pgwa?password=0th3rpw&sslmode=require");
    assert!(!r.contains("s3cr3tpw") && !r.contains("0th3rpw"), "{r}");
    assert!(r.contains("db.example:5432/pgwa") && r.contains("sslmode=require"), "{r}");
}

/// Waits until the worker holds the test's one session with a live lease.
async fn wait_held(db: &TestDb) {
    eventually(Duration::from_secs(15), "the worker to hold s1", || async {
        let held =
            count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL AND lease_expires_at > now()").await;
        (held == 1).then_some(())
    })
    .await;
}

/// A worker's progress goes to stdout and its warnings to stderr, so supervisors that file
/// the two apart (PM2) put only warnings and errors under errors. The start line names
/// the /health address, a claim names its sessions, and a job that dies says so.
#[tokio::test]
async fn a_worker_logs_progress_on_stdout_and_warnings_on_stderr() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let (out, err) = (tempfile::NamedTempFile::new().unwrap(), tempfile::NamedTempFile::new().unwrap());
    let mut child = pgwa(&db.url)
        .args(["run", "--no-migrate"])
        .env("PGWA_LOG__FILTER", "info")
        .env("NO_COLOR", "1")
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    common::wait_connected(&db.pool, 1).await;
    sqlx::query(r#"SELECT wa.enqueue('s1', 'send', '{"to": "+15550000002", "text": "x", "sim": {"fail": "no"}}')"#)
        .execute(&db.pool)
        .await
        .unwrap();
    let mut err_file = err.reopen().unwrap();
    let warnings = eventually(Duration::from_secs(20), "the dead job's warning on stderr", || {
        let text = log_so_far(&mut err_file);
        async move { text.contains("job dead").then_some(text) }
    })
    .await;
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20), "pgwa run after SIGTERM").success());
    let progress = log_so_far(&mut out.reopen().unwrap());

    let start = progress.lines().find(|l| l.contains("worker started")).unwrap_or_else(|| panic!("no start line:\n{progress}"));
    assert!(start.contains("http=127.0.0.1:") && start.contains("whatsapp=simulated"), "{start}");
    assert!(progress.lines().any(|l| l.contains("claimed sessions") && l.contains("sessions=s1")), "{progress}");
    assert!(warnings.contains("pgwa jobs retry"), "{warnings}");
    assert!(!warnings.lines().any(|l| l.contains(" INFO ")), "INFO lines on stderr:\n{warnings}");
    assert!(!progress.lines().any(|l| l.contains(" WARN ") || l.contains(" ERROR ")), "warnings on stdout:\n{progress}");
    db.drop_now().await.unwrap();
}
