//! The listening server: one axum router for the chat WebSocket, the admin
//! endpoints and the media CDN (`media`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{any, get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::noise::ServerKeys;
use crate::state::Shared;
use crate::{admin, conn, media};

#[derive(Clone, Debug, Default)]
pub struct Config {
    pub addr: Option<SocketAddr>,
    /// Where the server static key lives; None keeps it in memory only.
    pub state_dir: Option<PathBuf>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(config: Config) -> Result<Self> {
        let keys = match &config.state_dir {
            Some(dir) => ServerKeys::load_or_create(&dir.join("server_static.key"))?,
            None => ServerKeys::generate(),
        };
        let addr = config.addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr().context("reading bound address")?;
        let shared = Arc::new(Shared::new(keys));
        shared.media.set_addr(addr);
        let app = Router::new()
            .route("/ws/chat", any(upgrade))
            .route("/admin/scan", post(admin::scan))
            .route("/admin/pair-code", post(admin::pair_code))
            .route("/admin/kick", post(admin::kick))
            .route("/admin/nack", post(admin::nack))
            .route("/admin/slow", post(admin::slow))
            .route("/admin/adopt", post(admin::adopt))
            .route("/admin/call", post(admin::call))
            .route("/mms/{kind}/{token}", post(media::upload).layer(DefaultBodyLimit::max(media::MAX_UPLOAD_BYTES)))
            .route("/v/{*direct_path}", get(media::download))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("loopback server stopped: {e}");
            }
        });
        tracing::info!(%addr, "loopback WhatsApp server listening");
        Ok(Self { addr, shared, task })
    }

    /// The URL to give `TokioWebSocketTransportFactory::with_url`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// POSTs `body` to an admin endpoint (`path_and_query`, e.g. `/admin/scan?phone=…`)
    /// over a minimal HTTP/1.1 request: (status code, response body). A test helper:
    /// it panics if the server cannot be reached.
    pub async fn admin_post(&self, path_and_query: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect admin");
        let request = format!(
            "POST {path_and_query} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write admin request");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read admin response");
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// Runs until the listener fails.
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn upgrade(ws: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> Response {
    ws.on_upgrade(move |socket| conn::serve(socket, shared))
}
