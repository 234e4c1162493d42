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

use std::io::{self, IsTerminal, Write};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use pgwa_core::config::{LogConfig, LogFormat};

pub use redact::mask_numbers;
pub use secrets::SecretFilter;

/// Installs the global subscriber. Keep the guard until the command ends: dropping it
/// writes out the queued lines (waiting a second at most if standard error is blocked).
/// A second call installs nothing.
///
/// Lines reach stderr through a bounded queue and a thread of their own, which drops
/// them when the queue is full and ignores write errors: with `pgwa run 2>&1 | head -1`
/// every write fails with EPIPE, and the fmt layer's own error report (`eprintln!`)
/// panicked in whichever task was logging; a reader that stops reading (a paused pager)
/// would otherwise block every thread that logs, heartbeats included.
pub fn init(cfg: &LogConfig) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    // Colour codes only for a person at a terminal, not in files and collectors.
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = NonBlockingBuilder::default().lossy(true).thread_name("pgwa-log").finish(Stderr);
    let registry = tracing_subscriber::registry().with(filter).with(SecretFilter);
    let installed = match cfg.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .fmt_fields(fmt::format::JsonFields::new())
                    .event_format(redact::Redacting(fmt::format().json()))
                    .with_writer(writer)
                    .log_internal_errors(false),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(ansi)
                    .event_format(redact::Redacting(fmt::format().with_ansi(ansi)))
                    .with_writer(writer)
                    .log_internal_errors(false),
            )
            .try_init(),
    };
    installed.is_ok().then_some(guard)
}

/// Standard error with write errors ignored: a log line that cannot be written is lost,
/// never an error for the code that logged it.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// Whether a module path or log target belongs to the WhatsApp client crates. Their
/// `log` lines use targets of their own (`Client/Send`, `AppState`, ...), so a
/// `whatsapp_rust=info` directive does not reach them; the module path always does.
pub(crate) fn is_whatsapp(module_or_target: &str) -> bool {
    ["whatsapp_rust", "wacore", "waproto"].iter().any(|c| module_or_target.starts_with(c))
}
