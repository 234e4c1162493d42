//! Test harness: the library's whatsapp-rust test client pointed at a loopback
//! server, and the admin endpoint as a phone.

#![allow(dead_code)]

use std::sync::Arc;

use pgwa_loopback::{Config, Server};
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::types::events::Event;

pub use pgwa_loopback::test_client::{TestClient, new_store};

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
    let (status, body) = server.admin_post(&path, &qr).await;
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
