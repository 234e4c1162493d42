//! Media: the `media_conn` IQ and a CDN on the server's own port.
//!
//! A client asks `<iq xmlns="w:m" type="set"><media_conn/></iq>` for an auth token and
//! hosts, encrypts the file itself (the server never sees a media key), and POSTs the
//! ciphertext to `https://{host}/mms/{type}/{token}?auth=..&token=..`, where the token
//! is the base64url (unpadded) SHA-256 of the ciphertext. The answer is JSON with `url`
//! and `direct_path`; the recipient GETs `https://{host}{direct_path}?auth=..&token=..`.
//! The one host handed out is `127.0.0.1:PORT`, served over plain HTTP: clients built
//! for the loopback server rewrite `https` to `http` for loopback hosts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use wacore::libsignal::crypto::CryptographicHash;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::nodes::{iq_error, iq_result};
use crate::session::Session;
use crate::state::Shared;

/// Seconds a `media_conn` answer stays valid (routes and auth alike).
const TTL_SECS: u64 = 3600;

/// The largest upload accepted; the router's body limit.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// An uploaded file as the server keeps it: ciphertext and MAC, never plaintext.
#[derive(Clone, Debug)]
pub struct Blob {
    /// The upload path's media type (`image`, `document`, …).
    pub kind: String,
    /// base64url(SHA-256(bytes)), the token the client uploaded it under.
    pub token: String,
    pub bytes: Vec<u8>,
}

/// The server's CDN: the auth token it hands out, its own address, and the uploaded
/// blobs keyed by direct path.
pub struct MediaStore {
    pub auth: String,
    host: OnceLock<String>,
    blobs: Mutex<HashMap<String, Blob>>,
}

impl Default for MediaStore {
    fn default() -> Self {
        Self {
            auth: format!("loopback-media-{:016x}", rand::random::<u64>()),
            host: OnceLock::new(),
            blobs: Mutex::new(HashMap::new()),
        }
    }
}

impl MediaStore {
    /// Set once the listener is bound: the host `media_conn` hands out.
    pub fn set_addr(&self, addr: SocketAddr) {
        let _ = self.host.set(addr.to_string());
    }

    pub fn host(&self) -> Option<&str> {
        self.host.get().map(String::as_str)
    }

    /// The blob stored under `direct_path` (as a message carries it).
    pub fn blob(&self, direct_path: &str) -> Option<Blob> {
        self.lock().get(direct_path).cloned()
    }

    /// How many files were uploaded.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Blob>> {
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `<iq xmlns="w:m" type="set"><media_conn/></iq>` → the auth token and our one host.
pub fn media_conn(session: &Session, node: &Node) -> Node {
    let media = &session.shared.media;
    let Some(host) = media.host() else {
        return iq_error(node, 503, "service-unavailable");
    };
    let host = NodeBuilder::new("host").attr("hostname", host).attr("type", "primary").build();
    let conn = NodeBuilder::new("media_conn")
        .attr("auth", media.auth.as_str())
        .attr("ttl", TTL_SECS.to_string())
        .attr("auth_ttl", TTL_SECS.to_string())
        .attr("max_buckets", "1")
        .children([host])
        .build();
    iq_result(node, vec![conn])
}

#[derive(Deserialize)]
pub struct MediaQuery {
    pub auth: Option<String>,
    pub token: Option<String>,
    /// The resumable-upload probe (files of 5 MiB and more).
    pub resume: Option<String>,
    pub file_offset: Option<u64>,
}

fn refuse(status: StatusCode, why: &str) -> Response {
    tracing::info!(%status, why, "media request refused");
    (status, why.to_owned()).into_response()
}

fn sha256_token(bytes: &[u8]) -> String {
    let mut hash = CryptographicHash::new("SHA-256").expect("SHA-256 is supported");
    hash.update(bytes);
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// What whatsapp-rust reads from an upload's answer.
#[derive(Serialize)]
struct Uploaded {
    url: String,
    direct_path: String,
}

/// `POST /mms/{type}/{token}?auth=..&token=..` with the ciphertext as body.
pub async fn upload(
    State(shared): State<Arc<Shared>>,
    Path((kind, token)): Path<(String, String)>,
    Query(q): Query<MediaQuery>,
    body: Bytes,
) -> Response {
    let media = &shared.media;
    if q.auth.as_deref() != Some(media.auth.as_str()) {
        return refuse(StatusCode::UNAUTHORIZED, "bad media auth");
    }
    if q.resume.is_some() {
        // Nothing is ever partially stored: "not found" makes the client upload it all.
        return refuse(StatusCode::NOT_FOUND, "no partial upload");
    }
    if q.file_offset.is_some() {
        return refuse(StatusCode::BAD_REQUEST, "resumed uploads are not supported");
    }
    if !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return refuse(StatusCode::BAD_REQUEST, "bad media type");
    }
    if body.is_empty() || sha256_token(&body) != token {
        return refuse(StatusCode::BAD_REQUEST, "the token is not the SHA-256 of the body");
    }
    let Some(host) = media.host() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "no media host");
    };
    let direct_path = format!("/v/{kind}/{}_{}.enc", shared.next_id(), &token[..12]);
    let url = format!("https://{host}{direct_path}");
    tracing::info!(kind, direct_path, len = body.len(), "media uploaded");
    media.lock().insert(direct_path.clone(), Blob { kind, token, bytes: body.to_vec() });
    Json(Uploaded { url, direct_path }).into_response()
}

/// `GET {direct_path}?auth=..&token=..`: the stored ciphertext.
pub async fn download(State(shared): State<Arc<Shared>>, uri: Uri, Query(q): Query<MediaQuery>) -> Response {
    let media = &shared.media;
    if q.auth.as_deref() != Some(media.auth.as_str()) {
        return refuse(StatusCode::UNAUTHORIZED, "bad media auth");
    }
    let Some(blob) = media.blob(uri.path()) else {
        return refuse(StatusCode::NOT_FOUND, "no such media");
    };
    if q.token.as_deref().is_some_and(|t| t != blob.token) {
        return refuse(StatusCode::NOT_FOUND, "token does not match the media");
    }
    ([(header::CONTENT_TYPE, "application/octet-stream")], blob.bytes).into_response()
}
