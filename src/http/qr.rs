//! `GET /sessions/{id}/qr.svg` and `.png`: the session's current linking QR code, for
//! an admin page. They need `Authorization: Bearer <http.admin_token>`; without a
//! configured token they are off. A token in the URL (`?token=`) is refused even when
//! right: URLs end up in access logs, proxies and browser history.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::worker::Shared;

fn authorized(shared: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<(), Response> {
    let Some(expected) = shared.cfg.http.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err((StatusCode::NOT_FOUND, "QR endpoints are off: set http.admin_token to enable them\n").into_response());
    };
    if query.contains_key("token") {
        return Err((
            StatusCode::UNAUTHORIZED,
            "the admin token is not accepted in the URL (`?token=`), where logs and browser history keep it: \
             send it as `Authorization: Bearer <token>`, and replace the token if that URL was shared\n",
        )
            .into_response());
    }
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // The token guards account linking: compare without leaking where it differs.
    // (`ct_eq` on slices of different lengths is false, and the length is no secret.)
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err((StatusCode::UNAUTHORIZED, "missing or wrong admin token: send `Authorization: Bearer <http.admin_token>`\n")
            .into_response())
    }
}

async fn current(shared: &Shared, file: &str) -> Result<(String, &'static str), Response> {
    let (session, ext) =
        file.rsplit_once('.').ok_or_else(|| (StatusCode::NOT_FOUND, "use qr.svg or qr.png\n").into_response())?;
    let ext = match ext {
        "svg" => "svg",
        "png" => "png",
        _ => return Err((StatusCode::NOT_FOUND, "use qr.svg or qr.png\n").into_response()),
    };
    match crate::db::admin::current_qr(&shared.pool, session).await {
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
    if let Err(r) = authorized(&shared, &headers, &query) {
        return r;
    }
    let (code, ext) = match current(&shared, &format!("{id}.{}", file.strip_prefix("qr.").unwrap_or("?"))).await {
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
