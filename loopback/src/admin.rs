//! The admin HTTP surface, on the same port as the WebSocket: the test harness
//! plays the phone through it.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::adopt::AdoptedDevice;
use crate::pair_code::{self, CodeEntered};
use crate::pairing::{self, Linked};
use crate::state::Shared;

#[derive(Deserialize)]
pub struct ScanParams {
    /// Link into this existing (or new) phone number instead of a fresh one.
    pub phone: Option<String>,
}

/// `POST /admin/scan[?phone=N]` with the QR string as the body.
pub async fn scan(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<ScanParams>,
    body: String,
) -> Result<Json<Linked>, (StatusCode, String)> {
    pairing::scan(&shared, &body, params.phone.as_deref()).map(Json).map_err(|e| (StatusCode::BAD_REQUEST, format!("{e:#}")))
}

#[derive(Deserialize)]
pub struct CodeParams {
    pub phone: String,
}

/// `POST /admin/pair-code?phone=N` with the code the client showed as body.
pub async fn pair_code(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<CodeParams>,
    body: String,
) -> Result<Json<CodeEntered>, (StatusCode, String)> {
    // PBKDF2 over the code is deliberately slow; keep it off the runtime.
    tokio::task::spawn_blocking(move || pair_code::enter_code(&shared, &params.phone, &body))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("pair-code task failed: {e}")))?
        .map(Json)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e:#}")))
}

#[derive(Deserialize)]
pub struct KickParams {
    pub jid: String,
    pub reason: String,
}

/// `POST /admin/kick?jid=PN:DEV@s.whatsapp.net&reason=replaced|end|close|CODE`.
pub async fn kick(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<KickParams>,
) -> Result<StatusCode, (StatusCode, String)> {
    crate::kick::kick(&shared, &params.jid, &params.reason)
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e:#}")))
}

#[derive(Deserialize)]
pub struct NackParams {
    pub id: String,
    pub code: String,
}

/// `POST /admin/nack?id=MESSAGE_ID&code=479`: the server will refuse that message
/// (`<ack class="message" error="479"/>`) instead of relaying it.
pub async fn nack(State(shared): State<Arc<Shared>>, Query(params): Query<NackParams>) -> StatusCode {
    shared.lock().nacks.insert(params.id, params.code);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
pub struct SlowParams {
    pub ms: u64,
}

/// `POST /admin/slow?ms=N`: a slow server. Each client message waits N ms before it is
/// relayed and acked (`crate::relay`); a connection's messages keep their order. 0 turns
/// it off (messages already held back still leave when their time is up).
pub async fn slow(State(shared): State<Arc<Shared>>, Query(params): Query<SlowParams>) -> StatusCode {
    shared.lock().slow.ms = params.ms;
    tracing::info!(ms = params.ms, "slow server");
    StatusCode::NO_CONTENT
}

/// `POST /admin/adopt` with an [`AdoptedDevice`] as JSON (any content type): the server
/// learns a device that linked elsewhere (an imported session), which can then log in
/// without a QR. Answers the device's JID and LID like a scan.
pub async fn adopt(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Json<Linked>, (StatusCode, String)> {
    let Json(device) = Json::<AdoptedDevice>::from_bytes(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.body_text()))?;
    crate::adopt::adopt(&shared, device).map(Json).map_err(|e| (StatusCode::BAD_REQUEST, format!("{e:#}")))
}

#[derive(Deserialize)]
pub struct CallParams {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub video: bool,
}

/// `POST /admin/call?from=PHONE&to=PHONE[&video=true]`: rings `to`'s online devices with
/// a call from `from`. Answers the call id, or 404 when no device of `to` is online.
pub async fn call(State(shared): State<Arc<Shared>>, Query(p): Query<CallParams>) -> Result<String, (StatusCode, String)> {
    crate::calls::offer(&shared, &p.from, &p.to, p.video)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no device of {} is online to ring", p.to)))
}
