//! Test harness: a whatsapp-rust client with an in-memory store pointed at a
//! loopback server, its events in a channel, and the admin endpoint as a phone.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pgwa_loopback::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use whatsapp_rust::TokioRuntime;
use whatsapp_rust::http::UreqHttpClient;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::prelude::*;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::wacore::store::InMemoryBackend;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,pgwa_loopback=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub async fn start_server() -> Server {
    init_tracing();
    Server::start(Config::default()).await.expect("loopback server starts")
}

pub fn new_store() -> Arc<dyn Backend> {
    Arc::new(InMemoryBackend::new())
}

pub struct TestClient {
    pub handle: BotHandle,
    pub events: mpsc::UnboundedReceiver<Arc<Event>>,
}

impl TestClient {
    pub async fn start(server: &Server, store: Arc<dyn Backend>, push_name: &str) -> Self {
        Self::start_with(server, store, push_name, None).await
    }

    /// Like `start`, but the client asks to link by pair code for `phone`.
    pub async fn start_with_pair_code(server: &Server, store: Arc<dyn Backend>, push_name: &str, phone: &str) -> Self {
        let options = PairCodeOptions { phone_number: phone.to_string(), ..Default::default() };
        Self::start_with(server, store, push_name, Some(options)).await
    }

    async fn start_with(server: &Server, store: Arc<dyn Backend>, push_name: &str, pair_code: Option<PairCodeOptions>) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let mut builder = Bot::builder()
            .with_backend_arc(store)
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
            });
        if let Some(options) = pair_code {
            builder = builder.with_pair_code(options);
        }
        let bot = builder.build().await.expect("bot builds");
        Self { handle: bot.spawn(), events }
    }

    pub fn client(&self) -> Arc<Client> {
        self.handle.client()
    }

    /// Waits for the first event `pick` maps to Some, failing on timeout.
    pub async fn wait_for<T>(&mut self, what: &str, secs: u64, pick: impl FnMut(&Event) -> Option<T>) -> T {
        self.try_wait_for(what, secs, pick).await.unwrap_or_else(|| panic!("timed out after {secs}s waiting for {what}"))
    }

    /// Like `wait_for`, but a timeout is None rather than a failure.
    pub async fn try_wait_for<T>(&mut self, what: &str, secs: u64, mut pick: impl FnMut(&Event) -> Option<T>) -> Option<T> {
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

/// Minimal HTTP/1.1 POST, enough for the admin endpoint.
pub async fn post(server: &Server, path_and_query: &str, body: &str) -> (u16, String) {
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

/// Starts a fresh client, scans its first QR through the admin endpoint and
/// waits until it is connected. Returns the client and the linked JID.
pub async fn link_new(server: &Server, store: Arc<dyn Backend>, name: &str, phone: Option<&str>) -> (TestClient, String) {
    let mut client = TestClient::start(server, store, name).await;
    let qr = client
        .wait_for("PairingQrCode", 20, |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await;
    let path = match phone {
        Some(p) => format!("/admin/scan?phone={p}"),
        None => "/admin/scan".to_string(),
    };
    let (status, body) = post(server, &path, &qr).await;
    assert_eq!(status, 200, "admin scan failed: {body}");
    let jid = client
        .wait_for("PairSuccess", 20, |e| match e {
            Event::PairSuccess(p) => Some(p.id.to_string()),
            Event::PairError(p) => panic!("pairing failed: {}", p.error),
            _ => None,
        })
        .await;
    client.wait_for("Connected after pairing", 60, |e| matches!(e, Event::Connected(_)).then_some(())).await;
    (client, jid)
}
