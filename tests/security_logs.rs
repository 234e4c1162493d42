//! Nothing secret reaches pgwa's log, at any level. A real `pgwa run` worker on the
//! whatsapp-rust backend, with every log target at `trace` (`RUST_LOG=trace`, as an
//! operator debugging a session would set), links one number by QR and one by pairing
//! code against the loopback WhatsApp server and exchanges a message each way. Then its
//! whole output (stdout and stderr) is searched for the pairing code, the phone numbers,
//! the QR strings and their parts, both message texts and the sessions' key material as
//! stored in wa.auth_state (base64, hex and byte-list forms).
//!
//! `SECURITY_LOGS_KEEP=/path/worker.log` keeps the captured log for reading.

mod common;

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use common::loopback::{VERSION, Worker, arrives, send_text, session, start_server, wait_status};
use pgwa_testkit::TestDb;
use serde_json::Value;

// Digits that occur nowhere else in a log by chance (no port, pid or timestamp has them).
const A_PHONE: &str = "15557310486";
const B_PHONE: &str = "15558246913";
const TEXT_A_TO_B: &str = "tulip appointment moved to thursday";
const TEXT_B_TO_A: &str = "orchid colour confirmed for saturday";
const LINK: Duration = Duration::from_secs(120);

/// `pgwa run` against `server` with every target at trace, its stdout and stderr into `log`.
fn spawn_traced_worker(db: &TestDb, server: &pgwa_loopback::Server, log: &std::fs::File) -> Worker {
    // SECURITY_LOGS_BIN: the binary to test when a target directory shared by several checkouts
    // may hold another checkout's `pgwa` by the time this test runs.
    let bin = std::env::var("SECURITY_LOGS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pgwa").to_owned());
    let child = Command::new(bin)
        .args(["run", "--no-migrate"])
        .env_remove("DATABASE_URL")
        .env("PGWA_DATABASE_URL", &db.url)
        .env("PGWA_WHATSAPP__BACKEND", "whatsapp")
        .env("PGWA_WHATSAPP__RUST__WS_URL", server.ws_url())
        .env("PGWA_WHATSAPP__RUST__VERSION", VERSION)
        .env("PGWA_WORKER__LEASE_TTL_MS", "10000")
        .env("PGWA_WORKER__HEARTBEAT_MS", "1000")
        .env("PGWA_WORKER__POLL_INTERVAL_MS", "200")
        .env("PGWA_HTTP__LISTEN", "127.0.0.1:0")
        .env("PGWA_PACING__ENABLED", "false")
        .env("PGWA_LOG__FILTER", "trace")
        .env("RUST_LOG", "trace")
        // A worker logs progress on stdout and warnings on stderr: both are searched.
        .stdout(log.try_clone().expect("log file handle"))
        .stderr(log.try_clone().expect("log file handle"))
        .spawn()
        .expect("spawning pgwa run");
    Worker { child }
}

/// The forms a byte string can take in a log line: base64 (padded, unpadded, URL-safe),
/// hex, and the start of a Rust `{:?}` byte list.
fn byte_forms(bytes: &[u8]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let list = format!("{:?}", &bytes[..bytes.len().min(8)]);
    vec![
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        hex,
        list.trim_end_matches(']').to_owned(),
    ]
}

/// (what, bytes) for every private key and secret in a session's auth document.
fn key_material(creds: &Value) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for path in [
        "/noise_key/private",
        "/noise_key/public",
        "/identity_key/private",
        "/identity_key/public",
        "/signed_pre_key/private",
        "/adv_secret_key",
    ] {
        let b64 = creds.pointer(path).and_then(Value::as_str).unwrap_or_else(|| panic!("auth document has no {path}"));
        out.push((path.to_owned(), STANDARD.decode(b64).expect("base64 in the auth document")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_log_of_linking_and_messaging_holds_no_code_number_key_or_text() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path =
        std::env::var("SECURITY_LOGS_KEEP").map(std::path::PathBuf::from).unwrap_or_else(|_| dir.path().join("worker.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let worker = spawn_traced_worker(&db, &server, &log);

    // QR link, scanned by A's phone.
    sqlx::query("SELECT wa.add_session('alice')").execute(pool).await.unwrap();
    let qr = common::eventually(LINK, "the worker to publish a QR code", || async {
        let row = session(pool, "alice").await;
        row.qr_code.filter(|_| row.status == "awaiting_qr")
    })
    .await;
    let (status, body) = server.admin_post(&format!("/admin/scan?phone={A_PHONE}"), &qr).await;
    assert_eq!(status, 200, "the phone could not scan the QR: {body}");
    wait_status(pool, "alice", "connected", LINK).await;

    // Pairing-code link, typed on B's phone.
    sqlx::query("SELECT wa.add_session('bob', pair_phone => $1)").bind(format!("+{B_PHONE}")).execute(pool).await.unwrap();
    let code = common::eventually(LINK, "the worker to publish a pairing code", || async {
        let row = session(pool, "bob").await;
        row.pair_code.filter(|_| row.status == "awaiting_pair_code")
    })
    .await;
    let (status, body) = server.admin_post(&format!("/admin/pair-code?phone={B_PHONE}"), &code).await;
    assert_eq!(status, 200, "the phone could not enter the code: {body}");
    wait_status(pool, "bob", "connected", LINK).await;

    // A message each way, received by the other session.
    arrives(pool, "bob", &send_text(pool, "alice", B_PHONE, TEXT_A_TO_B).await, TEXT_A_TO_B).await;
    arrives(pool, "alice", &send_text(pool, "bob", A_PHONE, TEXT_B_TO_A).await, TEXT_B_TO_A).await;

    let mut secrets: Vec<(String, String)> = vec![
        ("the pairing code".into(), code.clone()),
        // Pairing codes are shown as XXXX-XXXX too.
        ("the pairing code's halves".into(), format!("{}-{}", &code[..4], &code[4..])),
        ("A's phone number".into(), A_PHONE.into()),
        ("B's phone number".into(), B_PHONE.into()),
        ("the text sent by A".into(), TEXT_A_TO_B.into()),
        ("the text sent by B".into(), TEXT_B_TO_A.into()),
    ];
    // The QR string is "ref,noise public key,identity public key,adv secret,platform":
    // each part but the one-digit platform.
    let parts: Vec<&str> = qr.split(',').collect();
    assert!(parts.len() >= 4, "a QR string has at least four parts: {qr}");
    for (what, part) in ["QR ref", "QR noise key", "QR identity key", "QR adv secret"].into_iter().zip(parts) {
        secrets.push((format!("the {what}"), part.to_owned()));
    }
    for id in ["alice", "bob"] {
        let creds: Value = sqlx::query_scalar("SELECT creds FROM wa.auth_state WHERE session_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .expect("the session's auth document");
        for (what, bytes) in key_material(&creds) {
            for form in byte_forms(&bytes) {
                secrets.push((format!("{id}'s {what}"), form));
            }
        }
    }

    worker.terminate().await;
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines = text.lines().count();
    assert!(lines > 200, "a trace log of two links and two messages has more than {lines} lines:\n{text}");
    assert!(
        text.lines().any(|l| l.contains("session connected") && l.contains("alice")),
        "the log lacks the line saying alice connected: the capture missed the worker's output"
    );
    assert!(text.contains("whatsapp_rust") || text.contains("Client/"), "the log holds no line of whatsapp-rust at trace");
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
            leaks.push(format!("{what} in: {}", line.chars().take(300).collect::<String>()));
        }
    }
    assert!(leaks.is_empty(), "{} secrets in a {lines}-line trace log:\n{}", leaks.len(), leaks.join("\n"));
}
