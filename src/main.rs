//! `pgwa`: configuration, logging, then the command. Everything else is in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = pgwa::cli::Cli::parse();
    match pgwa::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", pgwa::cli::describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
