//! The console API's answers: JSON, never cached, and errors as `{"error", "sqlstate"}`
//! with the status the SQL API's error class calls for. A database failure other than
//! the SQL API's own errors is logged and answered as "database unavailable": its text
//! may name internals the page has no use for.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    sqlstate: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), sqlstate: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

/// The HTTP status for a SQLSTATE the SQL API raises (README, Errors); None for the rest.
fn status_of(sqlstate: &str) -> Option<StatusCode> {
    Some(match sqlstate {
        // Unknown session, unknown job.
        "WA001" | "WA007" => StatusCode::NOT_FOUND,
        // The job's state does not allow it; the session exists already.
        "WA008" | "WA010" => StatusCode::CONFLICT,
        s if s.starts_with("WA") => StatusCode::BAD_REQUEST,
        // Data exceptions: a value of the wrong form.
        s if s.starts_with("22") => StatusCode::BAD_REQUEST,
        _ => return None,
    })
}

impl From<pgwa_pg::Error> for ApiError {
    fn from(e: pgwa_pg::Error) -> Self {
        if let pgwa_pg::Error::Database(db) = &e
            && let Some(code) = db.code()
            && let Some(status) = status_of(&code)
        {
            return Self { status, message: db.message().to_owned(), sqlstate: Some(code.into_owned()) };
        }
        tracing::warn!(error = %e, "console: the database call failed");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable: see the worker's log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": self.message, "sqlstate": self.sqlstate }))).into_response();
        no_store(r.headers_mut());
        r
    }
}

pub fn ok(v: Value) -> Response {
    let mut r = Json(v).into_response();
    no_store(r.headers_mut());
    r
}

pub fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_apis_errors_map_to_statuses_and_the_rest_to_none() {
        assert_eq!(status_of("WA001"), Some(StatusCode::NOT_FOUND));
        assert_eq!(status_of("WA007"), Some(StatusCode::NOT_FOUND));
        assert_eq!(status_of("WA008"), Some(StatusCode::CONFLICT));
        assert_eq!(status_of("WA005"), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status_of("22P02"), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status_of("57P01"), None, "an admin shutdown is the database being unavailable");
        assert_eq!(status_of("42501"), None, "a permission error says something is misconfigured: logged, not shown");
    }
}
