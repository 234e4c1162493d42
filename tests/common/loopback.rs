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

use pgwa::testkit::TestDb;
use pgwa_loopback::{Config, Server};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        let log = std::env::var("E2E_LOG").unwrap_or_else(|_| "warn".into());
        let env = [
            ("PGWA_WHATSAPP__BACKEND", "whatsapp".to_string()),
            ("PGWA_WHATSAPP__RUST__WS_URL", server.ws_url()),
            ("PGWA_WHATSAPP__RUST__VERSION", VERSION.to_string()),
            // Real clients on a 2-core machine: a lease of 1.5 s (the simulated tests'
            // value) could lapse during a busy link and restart the client mid-pairing.
            ("PGWA_WORKER__LEASE_TTL_MS", "10000".to_string()),
            ("PGWA_WORKER__HEARTBEAT_MS", "1000".to_string()),
            ("PGWA_LOG__FILTER", log),
        ];
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

/// Minimal HTTP/1.1 POST to the loopback admin endpoint: (status code, body).
pub async fn admin_post(server: &Server, path_and_query: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.expect("connect admin");
    let request = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write admin request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read admin response");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
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

/// A plain whatsapp-rust client (in-memory store) in this process: the person at the
/// other end of a chat, who can read messages and mark them read, which a pgwa session
/// never does (pgwa sends no read receipts).
pub struct Person {
    pub handle: whatsapp_rust::bot::BotHandle,
    pub events: tokio::sync::mpsc::UnboundedReceiver<Arc<whatsapp_rust::types::events::Event>>,
}

impl Person {
    /// Starts a client, scans its QR on phone `phone` and waits until it is connected.
    pub async fn link(server: &Server, push_name: &str, phone: &str) -> Self {
        use whatsapp_rust::TokioRuntime;
        use whatsapp_rust::bot::Bot;
        use whatsapp_rust::http::UreqHttpClient;
        use whatsapp_rust::transport::TokioWebSocketTransportFactory;
        use whatsapp_rust::types::events::Event;
        use whatsapp_rust::wacore::store::InMemoryBackend;

        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let bot = Bot::builder()
            .with_backend(InMemoryBackend::new())
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(server.ws_url()))
            .with_http_client(UreqHttpClient::new())
            .with_runtime(TokioRuntime)
            .with_version((2, 3000, 0))
            .with_push_name(push_name)
            .skip_history_sync()
            .on_event(move |event, _client| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            })
            .build()
            .await
            .expect("whatsapp-rust client builds");
        let mut person = Self { handle: bot.spawn(), events };
        let qr = person
            .wait_for("the person's QR code", 30, |e| match e {
                Event::PairingQrCode(q) => Some(q.code.clone()),
                _ => None,
            })
            .await;
        let (status, body) = admin_post(server, &format!("/admin/scan?phone={phone}"), &qr).await;
        assert_eq!(status, 200, "the person's phone could not scan: {body}");
        person.wait_for("the person to connect", 90, |e| matches!(e, Event::Connected(_)).then_some(())).await;
        person
    }

    pub fn client(&self) -> Arc<whatsapp_rust::Client> {
        self.handle.client()
    }

    /// Waits for the first event `pick` maps to Some, failing on timeout.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        secs: u64,
        pick: impl FnMut(&whatsapp_rust::types::events::Event) -> Option<T>,
    ) -> T {
        self.try_wait_for(what, secs, pick).await.unwrap_or_else(|| panic!("timed out after {secs}s waiting for {what}"))
    }

    /// Like `wait_for`, but a timeout is None rather than a failure.
    pub async fn try_wait_for<T>(
        &mut self,
        what: &str,
        secs: u64,
        mut pick: impl FnMut(&whatsapp_rust::types::events::Event) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()?
                .unwrap_or_else(|| panic!("event channel closed while waiting for {what}"));
            if let Some(v) = pick(&event) {
                return Some(v);
            }
        }
    }

    pub async fn stop(self) {
        self.handle.shutdown().await;
    }
}
