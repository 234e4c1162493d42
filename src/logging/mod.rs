//! pgwa's log: the operator's filter (`RUST_LOG`, else `log.filter`), then two guards
//! that no filter can turn off, because operators debugging a session set everything to
//! `trace`:
//! - [`secrets::SecretFilter`] drops the whatsapp-rust log lines that carry pairing
//!   codes, QR refs, stanzas or names (each entry says which line and what it leaked);
//! - [`redact::Redacting`] masks phone numbers in whatever whatsapp-rust still says,
//!   because raw JIDs and Signal addresses (`<phone>:<device>@c.us.0`) are in hundreds of
//!   its lines and a list of call sites would always be one short.
//!
//! tests/security_logs.rs links by QR and by pairing code and exchanges messages with
//! everything at `trace`, then searches the output for each secret.

mod redact;
mod secrets;

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogConfig, LogFormat};

pub use redact::mask_numbers;
pub use secrets::SecretFilter;

/// Installs the global subscriber writing to stderr. A second call is a no-op.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    // Colour codes only for a person at a terminal, not in files and collectors.
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter).with(SecretFilter);
    let _ = match cfg.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .fmt_fields(fmt::format::JsonFields::new())
                    .event_format(redact::Redacting(fmt::format().json()))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(ansi)
                    .event_format(redact::Redacting(fmt::format().with_ansi(ansi)))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}

/// Whether a module path or log target belongs to the WhatsApp client crates. Their
/// `log` lines use targets of their own (`Client/Send`, `AppState`, ...), so a
/// `whatsapp_rust=info` directive does not reach them; the module path always does.
pub(crate) fn is_whatsapp(module_or_target: &str) -> bool {
    ["whatsapp_rust", "wacore", "waproto"].iter().any(|c| module_or_target.starts_with(c))
}
