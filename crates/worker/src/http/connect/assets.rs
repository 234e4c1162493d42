//! The connect page's files, compiled into the binary (no build step, no CDN): the
//! HTML shell with the first state in it, the script that renders and follows states,
//! and the style sheet. Texts live in the script, in English and Russian.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

const HTML: &str = include_str!("assets/connect.html");
const JS: &str = include_str!("assets/connect.js");
const CSS: &str = include_str!("assets/connect.css");

/// Only this origin's script and style; QR images as data URIs; nothing may frame it.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub const LANGUAGES: [&str; 2] = ["en", "ru"];

/// `?lang=` when it names a language the page has, else the first of Accept-Language
/// that it has, else English.
pub fn language(asked: Option<&str>, accept: Option<&str>) -> &'static str {
    let known = |l: &str| LANGUAGES.iter().copied().find(|k| l.trim().to_ascii_lowercase().starts_with(k));
    asked
        .and_then(known)
        .or_else(|| accept.and_then(|a| a.split(',').find_map(|part| known(part.split(';').next().unwrap_or("")))))
        .unwrap_or("en")
}

pub fn page(lang: &str, state: &Value) -> Html<String> {
    // Inside <script type="application/json">: "<" escaped, so no text can close it.
    let state = state.to_string().replace('<', "\\u003c");
    Html(HTML.replace("{{lang}}", lang).replace("{{version}}", env!("CARGO_PKG_VERSION")).replace("{{state}}", &state))
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (ctype, body) = match file.as_str() {
        "connect.js" => ("text/javascript; charset=utf-8", JS),
        "connect.css" => ("text/css; charset=utf-8", CSS),
        _ => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    };
    ([(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_the_one_asked_for_then_the_browsers_then_english() {
        assert_eq!(language(Some("ru"), Some("en-US")), "ru");
        assert_eq!(language(Some("xx"), Some("de-DE,ru;q=0.8,en;q=0.5")), "ru");
        assert_eq!(language(None, Some("en-GB,en;q=0.9")), "en");
        assert_eq!(language(None, Some("de")), "en");
        assert_eq!(language(None, None), "en");
    }

    #[test]
    fn a_state_cannot_close_the_script_it_sits_in() {
        let html = page("en", &serde_json::json!({ "x": "</script><script>alert(1)</script>" })).0;
        assert_eq!(html.matches("</script>").count(), HTML.matches("</script>").count());
    }
}
