//! Output for a person or a script on standard output (logs go to stderr through
//! `crate::logging`).

use std::io::{self, Write};

/// Prints a line on standard output for a person or a script; a closed or broken stdout
/// loses the line instead of panicking (`println!` would).
pub fn say(line: impl std::fmt::Display) {
    let _ = writeln!(io::stdout(), "{line}");
}
