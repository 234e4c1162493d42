//! What the connect page shows, from the session's row: a QR code, a pairing code,
//! "connected" with the number, a wait, or one of the errors the marketplace defines,
//! each with its HTTP status.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use pgwa_pg::connect_page::LinkView;

/// The page's errors, named as the apps that embed it know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PageError {
    /// Not signed by the current key, malformed, or expired.
    InvalidToken,
    SessionNotFound,
    /// No code was scanned in time; the page offers a new round.
    QrExpired,
    RateLimit,
    /// The session failed, was logged out or replaced; the page offers a retry.
    ConnectionFailed,
    DbError,
    /// The number typed for a pairing code is not a phone number.
    InvalidPhone,
}

impl PageError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::QrExpired => StatusCode::GONE,
            Self::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            Self::ConnectionFailed => StatusCode::INTERNAL_SERVER_ERROR,
            Self::DbError => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidPhone => StatusCode::BAD_REQUEST,
        }
    }
}

/// One state of the page, sent as JSON (initially in the page, then as Server-Sent Events).
#[derive(Debug, Clone, PartialEq)]
pub enum PageState {
    Waiting,
    Qr { code: String, expires_at: Option<DateTime<Utc>> },
    PairCode { code: String, expires_at: Option<DateTime<Utc>> },
    Connected { phone: Option<String> },
    Error { error: PageError, retry_after: Option<u64> },
}

impl PageState {
    pub fn error(error: PageError) -> Self {
        Self::Error { error, retry_after: None }
    }

    pub fn of(v: &LinkView) -> Self {
        match v.status.as_str() {
            "connected" => Self::Connected { phone: v.phone.clone() },
            "awaiting_qr" if v.qr_code.is_some() => {
                Self::Qr { code: v.qr_code.clone().unwrap_or_default(), expires_at: v.qr_expires_at }
            }
            "awaiting_pair_code" if v.pair_code.is_some() => {
                Self::PairCode { code: v.pair_code.clone().unwrap_or_default(), expires_at: v.pair_code_expires_at }
            }
            "logged_out" | "conflict" | "failed" | "banned" => Self::error(PageError::ConnectionFailed),
            // Linked before and stopped by the operator: nothing for the customer to do.
            _ if v.desired == "stopped" && v.linked => Self::Connected { phone: v.phone.clone() },
            // Stopped unlinked: the QR codes ran out (the worker stops the session then).
            _ if v.desired == "stopped" => Self::error(PageError::QrExpired),
            _ => Self::Waiting,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Error { error, .. } => error.status(),
            _ => StatusCode::OK,
        }
    }

    /// The JSON the page renders. The QR comes as an SVG image (data URI) drawn here, so
    /// the page needs no QR library; the code itself stays out of any log.
    pub fn json(&self, now: DateTime<Utc>) -> Value {
        let secs_left = |at: &Option<DateTime<Utc>>| at.map(|t| (t - now).num_seconds().max(0));
        match self {
            Self::Waiting => json!({ "state": "waiting" }),
            Self::Qr { code, expires_at } => {
                let image = crate::qr::svg(code).map(|svg| {
                    use base64::Engine;
                    format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg))
                });
                match image {
                    Ok(image) => json!({ "state": "qr", "image": image, "expires_in": secs_left(expires_at) }),
                    Err(_) => json!({ "state": "waiting" }),
                }
            }
            Self::PairCode { code, expires_at } => {
                // Shown as WhatsApp shows it: ABCD-EFGH.
                let shown = if code.len() == 8 { format!("{}-{}", &code[..4], &code[4..]) } else { code.clone() };
                json!({ "state": "pair_code", "code": shown, "expires_in": secs_left(expires_at) })
            }
            Self::Connected { phone } => json!({ "state": "connected", "phone": phone.as_ref().map(|p| format!("+{p}")) }),
            Self::Error { error, retry_after } => {
                json!({ "state": "error", "error": error, "status": error.status().as_u16(), "retry_after": retry_after })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, desired: &str, linked: bool) -> LinkView {
        LinkView {
            status: status.into(),
            desired: desired.into(),
            qr_code: Some("2@abc".into()),
            qr_expires_at: None,
            pair_code: Some("ABCDEFGH".into()),
            pair_code_expires_at: None,
            phone: Some("15550001111".into()),
            linked,
        }
    }

    #[test]
    fn each_session_state_shows_as_the_marketplace_expects() {
        let cases = [
            (row("awaiting_qr", "running", false), "qr", 200),
            (row("awaiting_pair_code", "running", false), "pair_code", 200),
            (row("connected", "running", true), "connected", 200),
            (row("starting", "running", false), "waiting", 200),
            (row("stopped", "stopped", false), "error", 410),
            (row("stopped", "stopped", true), "connected", 200),
            (row("logged_out", "running", false), "error", 500),
            (row("failed", "running", true), "error", 500),
        ];
        for (r, state, status) in cases {
            let s = PageState::of(&r);
            assert_eq!(s.json(Utc::now())["state"], state, "{r:?}");
            assert_eq!(s.status().as_u16(), status, "{r:?}");
        }
        let mut no_code = row("awaiting_qr", "running", false);
        no_code.qr_code = None;
        assert_eq!(PageState::of(&no_code), PageState::Waiting, "a QR status without a live code waits");
        let code = PageState::of(&row("awaiting_pair_code", "running", false)).json(Utc::now());
        assert_eq!(code["code"], "ABCD-EFGH");
        let err = PageState::error(PageError::QrExpired).json(Utc::now());
        assert_eq!((err["error"].as_str(), err["status"].as_u64()), (Some("QR_EXPIRED"), Some(410)));
    }
}
