//! pgwa, the command line: configuration, logging, then the command. The gateway itself
//! is in the crates under crates/ (core, pg, wa, worker, bench).

pub mod cli;
pub mod logging;
