//! Output for a person or a script on standard output (logs go to stderr through
//! `crate::logging`).

use std::io::{self, Write};

/// Prints a line on standard output for a person or a script; a closed or broken stdout
/// loses the line instead of panicking (`println!` would).
pub fn say(line: impl std::fmt::Display) {
    let _ = writeln!(io::stdout(), "{line}");
}

/// Writes a command's result (a table, JSON) to standard output as it is. A reader that
/// stopped reading (`pgwa session list | head -1`) is not an error: the rest is dropped
/// and the command ends well. Any other failure (a full disk) is, so a script notices.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(anyhow::Error::new(e).context("writing to stdout")),
        _ => Ok(()),
    }
}
