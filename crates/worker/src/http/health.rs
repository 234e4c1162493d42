//! `/health` and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::Shared;
use pgwa_core::metrics as m;

/// 200 when the database answers and the worker is not shutting down, else 503. Counts
/// only: no session ids, no tenant data.
pub async fn health(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let t = std::time::Instant::now();
    let by_status = tokio::time::timeout(Duration::from_secs(2), pgwa_pg::admin::held_by_status(&shared.pool, shared.id)).await;
    let (reachable, by_status) = match by_status {
        Ok(Ok(rows)) => (true, rows),
        _ => (false, vec![]),
    };
    let stopping = shared.stopping.is_cancelled();
    let healthy = reachable && !stopping;
    let body = json!({
        "status": if healthy { "ok" } else if stopping { "stopping" } else { "unhealthy" },
        "worker": shared.id,
        "version": env!("CARGO_PKG_VERSION"),
        "whatsapp": whatsapp_side(shared.registration.backend),
        "uptime_secs": shared.started.elapsed().as_secs(),
        "database": { "reachable": reachable, "latency_ms": t.elapsed().as_millis() as u64 },
        "sessions": {
            "held": shared.slots.len(),
            "connected": shared.slots.connected_count(),
            "by_status": by_status.into_iter().collect::<serde_json::Map<_, _>>(),
        },
        "jobs_in_flight": shared.in_flight.load(Ordering::SeqCst),
        "memory": { "rss_bytes": rss_bytes() },
    });
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}

/// Which WhatsApp side this worker runs; a simulated one says plainly what that means.
fn whatsapp_side(backend: pgwa_core::config::Backend) -> serde_json::Value {
    match backend {
        pgwa_core::config::Backend::Whatsapp => json!({ "backend": "whatsapp" }),
        pgwa_core::config::Backend::Simulated => json!({
            "backend": "simulated",
            "warning": "simulated WhatsApp side: sends are acknowledged but reach nobody",
        }),
    }
}

/// Prometheus text format. Gauges that describe state (sessions by status, queue depth)
/// are refreshed from Postgres at scrape time.
pub async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if let Ok(rows) = pgwa_pg::admin::held_by_status(&shared.pool, shared.id).await {
        for status in pgwa_core::session::SessionStatus::ALL.iter().map(|s| s.as_str()) {
            let n = rows.iter().find(|(s, _)| s == status).map(|(_, n)| n.as_i64().unwrap_or(0)).unwrap_or(0);
            metrics::gauge!(m::SESSIONS, "status" => status).set(n as f64);
        }
    }
    if let Ok(rows) = pgwa_pg::admin::queue_depth(&shared.pool).await {
        for (state, n) in rows {
            metrics::gauge!(m::QUEUE_DEPTH, "state" => state).set(n as f64);
        }
    }
    metrics::gauge!(m::ACTIVE_CONNECTIONS).set(shared.slots.connected_count() as f64);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::prometheus::handle().render())
}

/// Resident memory of this process, from /proc (Linux) in pages of the system's size;
/// 0 elsewhere.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map(|pages| pages * rustix::param::page_size() as u64)
        .unwrap_or(0)
}
