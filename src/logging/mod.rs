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

use tracing::Level;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use pgwa_core::config::{LogConfig, LogFormat};

pub use redact::mask_numbers;
pub use secrets::SecretFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// Everything on standard error: commands whose standard output is their result.
    Stderr,
    /// A long-running worker: INFO and below on standard output, WARN and ERROR on
    /// standard error, so supervisors that file the two apart (PM2's out and error logs)
    /// put only warnings and errors under errors.
    ByLevel,
}

/// Keep it until the command ends: dropping it writes out the queued lines (waiting a
/// second at most if an output is blocked).
pub struct LogGuard {
    _guards: Vec<WorkerGuard>,
}

/// Installs the global subscriber. A second call installs nothing (and returns None).
///
/// Lines reach their stream through a bounded queue and a thread of their own, which
/// drops them when the queue is full and ignores write errors: with `pgwa run 2>&1 | head
/// -1` every write fails with EPIPE, and the fmt layer's own error report (`eprintln!`)
/// panicked in whichever task was logging; a reader that stops reading (a paused pager)
/// would otherwise block every thread that logs, heartbeats included.
pub fn init(cfg: &LogConfig, streams: Streams) -> Option<LogGuard> {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.filter));
    let queue = |out: Output| NonBlockingBuilder::default().lossy(true).thread_name("pgwa-log").finish(out);
    let (err, err_guard) = queue(Output::Stderr);
    let mut guards = vec![err_guard];
    // Colour codes only for a person at a terminal, not in files and collectors.
    let (writer, ansi) = match streams {
        Streams::Stderr => (BoxMakeWriter::new(err), io::stderr().is_terminal()),
        Streams::ByLevel => {
            let (out, out_guard) = queue(Output::Stdout);
            guards.push(out_guard);
            let ansi = io::stderr().is_terminal() && io::stdout().is_terminal();
            (BoxMakeWriter::new(err.with_max_level(Level::WARN).or_else(out)), ansi)
        }
    };
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
    installed.is_ok().then_some(LogGuard { _guards: guards })
}

/// Standard output or error with write errors ignored: a log line that cannot be written
/// is lost, never an error for the code that logged it.
enum Output {
    Stdout,
    Stderr,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = match self {
            Output::Stdout => io::stdout().write_all(buf),
            Output::Stderr => io::stderr().write_all(buf),
        };
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = match self {
            Output::Stdout => io::stdout().flush(),
            Output::Stderr => io::stderr().flush(),
        };
        Ok(())
    }
}

/// Whether a module path or log target belongs to the WhatsApp client crates. Their
/// `log` lines use targets of their own (`Client/Send`, `AppState`, ...), so a
/// `whatsapp_rust=info` directive does not reach them; the module path always does.
pub(crate) fn is_whatsapp(module_or_target: &str) -> bool {
    ["whatsapp_rust", "wacore", "waproto"].iter().any(|c| module_or_target.starts_with(c))
}
