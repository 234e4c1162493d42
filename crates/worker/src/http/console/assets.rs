//! The console's files, compiled into the binary (no build step, no CDN). The HTML is
//! the same for everyone and holds no data: what the page shows comes from the API,
//! with the token the operator types.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

const HTML: &str = include_str!("assets/console.html");
const JS: &str = include_str!("assets/console.js");
const CSS: &str = include_str!("assets/console.css");

/// Only this origin's script and style; QR images as blob URLs; nothing may frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn page() -> Response {
    let mut r = Html(HTML.replace("{{version}}", env!("CARGO_PKG_VERSION"))).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (ctype, body) = match file.as_str() {
        "console.js" => ("text/javascript; charset=utf-8", JS),
        "console.css" => ("text/css; charset=utf-8", CSS),
        _ => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    };
    ([(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}
