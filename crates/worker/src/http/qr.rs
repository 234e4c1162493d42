//! `GET /sessions/{id}/qr.svg` and `.png`: the session's current linking QR code, for
//! an admin page or the console. They need the admin token or a tenant's (auth.rs); a
//! tenant's token sees its own sessions only (another tenant's answers as having no QR).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{self, Scope};
use crate::Shared;

async fn current(shared: &Shared, file: &str, scope: &Scope) -> Result<(String, &'static str), Response> {
    let (session, ext) =
        file.rsplit_once('.').ok_or_else(|| (StatusCode::NOT_FOUND, "use qr.svg or qr.png\n").into_response())?;
    let ext = match ext {
        "svg" => "svg",
        "png" => "png",
        _ => return Err((StatusCode::NOT_FOUND, "use qr.svg or qr.png\n").into_response()),
    };
    match pgwa_pg::admin::current_qr(&shared.pool, session, scope.tenant()).await {
        Ok(Some(code)) => Ok((code, ext)),
        Ok(None) => Err((StatusCode::NOT_FOUND, "no QR code is waiting to be scanned for this session\n").into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "reading the QR code failed");
            Err((StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response())
        }
    }
}

/// Route `/sessions/{id}/{file}` where file is `qr.svg` or `qr.png`.
pub async fn qr(
    State(shared): State<Arc<Shared>>,
    Path((id, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let scope = match auth::scope(&shared, &headers, &query, true) {
        Ok(s) => s,
        Err(r) => return (r.status, format!("{}\n", r.message)).into_response(),
    };
    let (code, ext) = match current(&shared, &format!("{id}.{}", file.strip_prefix("qr.").unwrap_or("?")), &scope).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rendered = match ext {
        "svg" => crate::qr::svg(&code).map(|s| ("image/svg+xml", s.into_bytes())),
        _ => crate::qr::png(&code, 8).map(|b| ("image/png", b)),
    };
    match rendered {
        Ok((ctype, body)) => ([(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "no-store")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}
