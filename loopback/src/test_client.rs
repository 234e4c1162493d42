//! The test side of the loopback server: a real whatsapp-rust client pointed at it,
//! its events in a channel. Shared by this crate's tests and pgwa's end-to-end tests;
//! the functions here panic on failure, as test helpers do.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use whatsapp_rust::TokioRuntime;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::store::InMemoryBackend;

use crate::Server;

/// The WhatsApp Web version the test clients announce (no HTTPS version fetch).
pub const VERSION: (u32, u32, u32) = (2, 3000, 0);

/// A fresh in-memory store: a client that has never linked.
pub fn new_store() -> Arc<dyn Backend> {
    Arc::new(InMemoryBackend::new())
}

/// A whatsapp-rust client connected to a loopback server, its events in `events`.
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
            .with_http_client(crate::plain_http::LoopbackHttpClient::new())
            .with_runtime(TokioRuntime)
            .with_version(VERSION)
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
        let bot = builder.build().await.expect("whatsapp-rust client builds");
        Self { handle: bot.spawn(), events }
    }

    pub fn client(&self) -> Arc<whatsapp_rust::Client> {
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
