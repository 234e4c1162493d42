//! `GET /sessions/{id}/qr.svg` and `.png`: the session's current linking QR code, for
//! an admin page. They need `Authorization: Bearer <http.admin_token>` (every session)
//! or a tenant's token from `http.tenant_tokens` (that tenant's sessions only; another
//! tenant's session answers as having no QR); without a configured token they are off. A token in the URL (`?token=`) is refused even when
//! right: URLs end up in access logs, proxies and browser history.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::Shared;

/// Which sessions a request may see: all (the admin token) or one tenant's.
enum Scope {
    All,
    Tenant(String),
}

fn same(given: &str, expected: &str) -> bool {
    // The token guards account linking: compare without leaking where it differs.
    // (`ct_eq` on slices of different lengths is false, and the length is no secret.)
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

fn authorized(shared: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Scope, Response> {
    let http = &shared.cfg.http;
    let admin = http.admin_token.as_deref().filter(|t| !t.is_empty());
    if admin.is_none() && http.tenant_tokens.values().all(|t| t.is_empty()) {
        return Err((
            StatusCode::NOT_FOUND,
            "QR endpoints are off: set http.admin_token (or http.tenant_tokens) to enable them\n",
        )
            .into_response());
    }
    if query.contains_key("token") {
        return Err((
            StatusCode::UNAUTHORIZED,
            "the admin token is not accepted in the URL (`?token=`), where logs and browser history keep it: \
             send it as `Authorization: Bearer <token>`, and replace the token if that URL was shared\n",
        )
            .into_response());
    }
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if let Some(g) = given {
        if admin.is_some_and(|a| same(g, a)) {
            return Ok(Scope::All);
        }
        // Every tenant token is compared, so the time taken does not say which matched.
        let mut found = None;
        for (tenant, token) in &http.tenant_tokens {
            if same(g, token) {
                found = Some(tenant.clone());
            }
        }
        if let Some(t) = found {
            return Ok(Scope::Tenant(t));
        }
    }
    Err((StatusCode::UNAUTHORIZED, "missing or wrong admin token: send `Authorization: Bearer <http.admin_token>`\n")
        .into_response())
}

async fn current(shared: &Shared, file: &str, scope: &Scope) -> Result<(String, &'static str), Response> {
    let (session, ext) =
        file.rsplit_once('.').ok_or_else(|| (StatusCode::NOT_FOUND, "use qr.svg or qr.png\n").into_response())?;
    let ext = match ext {
        "svg" => "svg",
        "png" => "png",
        _ => return Err((StatusCode::NOT_FOUND, "use qr.svg or qr.png\n").into_response()),
    };
    let tenant = match scope {
        Scope::All => None,
        Scope::Tenant(t) => Some(t.as_str()),
    };
    match pgwa_pg::admin::current_qr(&shared.pool, session, tenant).await {
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
    let scope = match authorized(&shared, &headers, &query) {
        Ok(s) => s,
        Err(r) => return r,
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
