//! Helpers for the end-to-end tests against the loopback WhatsApp Web server
//! (`pgwa-loopback`): the server in this process, real `pgwa run` worker processes on
//! the whatsapp-rust backend pointed at it, the admin endpoint as the phone, and a
//! LISTEN client that records every notification.
//!
//! The worker binary is `env!("CARGO_BIN_EXE_pgwa")`, built by `cargo test` with the
//! dev-dependencies' features unified in, so its whatsapp-rust accepts the loopback
//! server's zero-signed certificate chain (`danger-skip-cert-chain-verify`; see
//! tests/production_build.rs for why the release build does not).

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgwa_loopback::test_client::{TestClient, new_store};
use pgwa_loopback::{Config, Server};
use pgwa_testkit::TestDb;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::eventually;

/// The WhatsApp Web version announced to the loopback server (no HTTPS version fetch).
pub const VERSION: &str = "[2, 3000, 0]";

/// The server in this process. `TEST_LOG` (e.g. `pgwa_loopback=debug`) shows its log.
pub async fn start_server() -> Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    Server::start(Config::default()).await.expect("loopback server starts")
}

/// A `pgwa run` process on the whatsapp-rust backend, pointed at `server`. Killed when
/// dropped, so a failing test leaves no worker behind. `E2E_LOG` sets its log filter
/// (default `warn`); its stderr is the test's.
pub struct Worker {
    pub child: Child,
}

impl Worker {
    pub fn spawn(db: &TestDb, server: &Server) -> Self {
        Self::spawn_with(db, server, &[])
    }

    /// Like `spawn`, with `extra` configuration on top.
    pub fn spawn_with(db: &TestDb, server: &Server, extra: &[(&str, String)]) -> Self {
        let log = std::env::var("E2E_LOG").unwrap_or_else(|_| "warn".into());
        let mut env = vec![
            ("PGWA_WHATSAPP__BACKEND", "whatsapp".to_string()),
            ("PGWA_WHATSAPP__RUST__WS_URL", server.ws_url()),
            ("PGWA_WHATSAPP__RUST__VERSION", VERSION.to_string()),
            // Real clients on a 2-core machine: a lease of 1.5 s (the simulated tests'
            // value) could lapse during a busy link and restart the client mid-pairing.
            ("PGWA_WORKER__LEASE_TTL_MS", "10000".to_string()),
            ("PGWA_WORKER__HEARTBEAT_MS", "1000".to_string()),
            ("PGWA_LOG__FILTER", log),
        ];
        env.extend(extra.iter().cloned());
        Self { child: super::spawn_worker(db, &env) }
    }

    /// SIGTERM, then waits for a clean exit (the worker releases its leases).
    pub async fn terminate(mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, Signal::SIGTERM).expect("SIGTERM to the worker");
        let status = eventually(Duration::from_secs(40), "the worker to exit after SIGTERM", || {
            let s = self.child.try_wait().expect("waiting for the worker");
            async move { s }
        })
        .await;
        assert!(status.success(), "the worker exited with {status} after SIGTERM");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A LISTEN client recording every notification (channel, JSON payload) it receives.
pub struct Notifications {
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Notifications {
    pub async fn listen(url: &str, channels: &[&str]) -> Self {
        let mut listener = PgListener::connect(url).await.expect("LISTEN connection");
        listener.listen_all(channels.iter().copied()).await.expect("LISTEN");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok(n) = listener.recv().await {
                let payload = serde_json::from_str(n.payload()).unwrap_or(Value::String(n.payload().to_owned()));
                log.lock().unwrap().push((n.channel().to_owned(), payload));
            }
        });
        Self { seen, task }
    }

    /// Waits for a notification on `channel` whose payload `pick` accepts.
    pub async fn wait(&self, within: Duration, channel: &str, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        eventually(within, what, || {
            let found = self.seen.lock().unwrap().iter().find(|(c, p)| c == channel && pick(p)).map(|(_, p)| p.clone());
            async move { found }
        })
        .await
    }

    /// Every payload seen so far on `channel`.
    pub fn on(&self, channel: &str) -> Vec<Value> {
        self.seen.lock().unwrap().iter().filter(|(c, _)| c == channel).map(|(_, p)| p.clone()).collect()
    }
}

impl Drop for Notifications {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The columns of a wa.sessions row the tests look at.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub status: String,
    pub status_reason: Option<String>,
    pub qr_code: Option<String>,
    pub qr_count: i32,
    pub pair_code: Option<String>,
    pub phone: Option<String>,
    pub jid: Option<String>,
    pub lid: Option<String>,
    pub epoch: i64,
    pub last_error: Option<String>,
}

pub async fn session(pool: &PgPool, id: &str) -> SessionRow {
    sqlx::query_as(
        "SELECT status::text AS status, status_reason, qr_code, qr_count, pair_code, phone, jid, lid, epoch, last_error
           FROM wa.sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("reading wa.sessions")
}

/// Waits until session `id` has status `status`, failing early on a terminal status
/// that is not the one expected.
pub async fn wait_status(pool: &PgPool, id: &str, status: &str, within: Duration) -> SessionRow {
    eventually(within, &format!("session {id} to become {status}"), || async {
        let row = session(pool, id).await;
        if row.status != status && matches!(row.status.as_str(), "logged_out" | "conflict" | "failed") {
            panic!("session {id} became {} ({:?}) while waiting for {status}", row.status, row.status_reason);
        }
        (row.status == status).then_some(row)
    })
    .await
}

/// Adds session `id` and links it by QR on phone `phone`: waits for the worker to
/// publish the code, scans it through the admin endpoint, waits for connected. For
/// tests whose subject is not linking (tests/e2e_loopback.rs checks linking itself).
pub async fn link_by_qr(pool: &PgPool, server: &Server, id: &str, phone: &str) -> SessionRow {
    let within = Duration::from_secs(120);
    sqlx::query("SELECT wa.add_session($1)").bind(id).execute(pool).await.expect("wa.add_session");
    let qr = eventually(within, &format!("session {id} to publish a QR code"), || async {
        let row = session(pool, id).await;
        row.qr_code.filter(|_| row.status == "awaiting_qr")
    })
    .await;
    let (status, body) = server.admin_post(&format!("/admin/scan?phone={phone}"), &qr).await;
    assert_eq!(status, 200, "the phone could not scan session {id}'s QR: {body}");
    wait_status(pool, id, "connected", within).await
}

/// Enqueues one text from session `from` to `to_phone`; returns its message id.
pub async fn send_text(pool: &PgPool, from: &str, to_phone: &str, text: &str) -> String {
    sqlx::query_scalar("SELECT message_id FROM wa.send_text($1, $2, $3)")
        .bind(from)
        .bind(format!("+{to_phone}"))
        .bind(text)
        .fetch_one(pool)
        .await
        .expect("wa.send_text")
}

/// Waits (90 s at most) for `message_id` in `session`'s inbox and asserts its text.
pub async fn arrives(pool: &PgPool, session: &str, message_id: &str, text: &str) {
    let got: Option<String> = eventually(Duration::from_secs(90), &format!("{text:?} in {session}'s inbox"), || async {
        sqlx::query_scalar("SELECT text FROM wa.inbox WHERE session_id = $1 AND message_id = $2")
            .bind(session)
            .bind(message_id)
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(got.as_deref(), Some(text));
}

/// Enqueues texts "m1".."m{n}" from session `from` to `to_phone` in one statement;
/// returns (message id, text) in enqueue order.
pub async fn send_numbered(pool: &PgPool, from: &str, to_phone: &str, n: i64) -> Vec<(String, String)> {
    sqlx::query("SELECT wa.send_text($1, $2, 'm' || g) FROM generate_series(1, $3) g")
        .bind(from)
        .bind(format!("+{to_phone}"))
        .bind(n)
        .execute(pool)
        .await
        .expect("wa.send_text");
    let sent: Vec<(String, String)> =
        sqlx::query_as("SELECT message_id, payload->>'text' FROM wa.jobs WHERE session_id = $1 AND kind = 'send' ORDER BY id")
            .bind(from)
            .fetch_all(pool)
            .await
            .expect("reading the send jobs");
    assert_eq!(sent.len() as i64, n);
    sent
}

/// Rows in `session`'s inbox; -1 while the database cannot answer (tests that break it).
pub async fn inbox_count(pool: &PgPool, session: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM wa.inbox WHERE session_id = $1").bind(session).fetch_one(pool).await.unwrap_or(-1)
}

/// Asserts that `session`'s inbox holds exactly the `sent` messages, once each, in order.
pub async fn assert_inbox_exactly(pool: &PgPool, session: &str, sent: &[(String, String)]) {
    let got: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT message_id, text FROM wa.inbox WHERE session_id = $1 ORDER BY id")
            .bind(session)
            .fetch_all(pool)
            .await
            .expect("reading wa.inbox");
    assert_eq!(got.len(), sent.len(), "one inbox row per message");
    for (i, ((sent_id, sent_text), (got_id, got_text))) in sent.iter().zip(&got).enumerate() {
        assert_eq!((got_id, got_text.as_ref()), (sent_id, Some(sent_text)), "message {i} out of order or altered");
    }
}

/// A plain whatsapp-rust client (in-memory store) in this process: the person at the
/// other end of a chat, who reads messages, marks them read and votes in polls as a
/// phone would. Derefs to the loopback crate's
/// [`TestClient`] (`wait_for`, `try_wait_for`, `client`).
pub struct Person(pub TestClient);

impl Person {
    /// Starts a client, scans its QR on phone `phone` and waits until it is connected.
    pub async fn link(server: &Server, push_name: &str, phone: &str) -> Self {
        use whatsapp_rust::types::events::Event;

        let mut person = TestClient::start(server, new_store(), push_name).await;
        let qr = person
            .wait_for("the person's QR code", 30, |e| match e {
                Event::PairingQrCode(q) => Some(q.code.clone()),
                _ => None,
            })
            .await;
        let (status, body) = server.admin_post(&format!("/admin/scan?phone={phone}"), &qr).await;
        assert_eq!(status, 200, "the person's phone could not scan: {body}");
        person.wait_for("the person to connect", 90, |e| matches!(e, Event::Connected(_)).then_some(())).await;
        Self(person)
    }

    pub async fn stop(self) {
        self.0.stop().await;
    }
}

impl std::ops::Deref for Person {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.0
    }
}

impl std::ops::DerefMut for Person {
    fn deref_mut(&mut self) -> &mut TestClient {
        &mut self.0
    }
}
