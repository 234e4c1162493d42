//! `pgwa-loopback [PORT] [STATE_DIR]`: runs the loopback server on 127.0.0.1.

use std::net::SocketAddr;

use anyhow::Context;
use pgwa_loopback::{Config, Server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next() {
        Some(p) => p.parse().with_context(|| format!("port {p:?} is not a number"))?,
        None => 0,
    };
    let config = Config { addr: Some(SocketAddr::from(([127, 0, 0, 1], port))), state_dir: args.next().map(Into::into) };
    let server = Server::start(config).await?;
    println!("{}", server.ws_url());
    server.wait().await;
    Ok(())
}
