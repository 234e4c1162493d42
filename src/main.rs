//! `pgwa`: configuration, logging, then the command. Everything else is in the library.

use std::io::Write;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = pgwa::cli::Cli::parse();
    match pgwa::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: on a broken stderr it panics, and the exit code would be 101.
            let _ = writeln!(std::io::stderr(), "error: {}", pgwa::cli::describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
