//! Logging to standard error that can neither stop nor stall the worker.
//!
//! With `pgwa run 2>&1 | head -1`, every line after head exits fails with EPIPE; the
//! fmt subscriber reports a failed write with `eprintln!`, which panics on the same broken
//! pipe, killing whichever task was logging (the SIGTERM handler logs, so the worker then
//! kept its leases and ignored SIGTERM). And a reader that stops reading (a paused pager)
//! fills the pipe, after which a blocking write would stop every thread that logs,
//! heartbeats included. So lines go through a bounded queue to a thread of their own,
//! which drops them when the queue is full and ignores write errors.

use std::io::{self, Write};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

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

/// Installs the subscriber. Keep the guard until the command ends: dropping it writes
/// out the queued lines (waiting a second at most if standard error is blocked).
pub fn init(cfg: &Config) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.log.filter));
    let (writer, guard) = NonBlockingBuilder::default().lossy(true).thread_name("pgwa-log").finish(Stderr);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).log_internal_errors(false);
    let installed = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.is_ok().then_some(guard)
}

/// Prints a line on standard output for a person or a script; a closed or broken stdout
/// loses the line instead of panicking (`println!` would).
pub fn say(line: impl std::fmt::Display) {
    let _ = writeln!(io::stdout(), "{line}");
}
