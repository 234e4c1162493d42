//! The worker's HTTP side: `/health` for orchestrators (no tenant data), `/metrics`
//! for Prometheus, the linking QR code as an image behind the admin token, the connect
//! page end customers open from a `wa.connect_link` URL, and the operator console.

mod auth;
pub mod connect;
mod console;
mod health;
mod qr;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::Shared;

/// Binds `http.listen`; a clear error if the port is taken.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("http.listen {addr}: cannot bind ({e}); set http.listen (PGWA_HTTP__LISTEN) to a free address, or http.enabled = false")
    })
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/sessions/{id}/{file}", get(qr::qr))
        .with_state(shared.clone())
        .merge(connect::routes(shared.clone()))
        .merge(console::routes(shared))
}

pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let stopping = shared.stopping.clone();
    let app = router(shared);
    // The client's address feeds the connect page's rate limits.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stopping.cancelled().await }).await {
        tracing::error!(error = %e, "http server failed");
    }
}
