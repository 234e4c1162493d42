//! `pgwa dev loopback`: pgwa against a WhatsApp stand-in on this machine, for trying it
//! with no WhatsApp account and no network. It runs the loopback server (the test host
//! of `loopback/`) in this process, plays the phone of every account on it, and runs a
//! worker whose sessions connect there instead of to WhatsApp.
//!
//! Only in builds with the `loopback` feature: the stand-in's certificate is not signed
//! by WhatsApp, so those builds skip that check, and they refuse any server that is not
//! on this machine (`require_loopback`). Release builds have neither.

use std::net::SocketAddr;

use anyhow::Context;
use pgwa_pg::PgPool;

use super::dev_cmd::{BurstEnqueue, DevCmd};
use super::log::say;
use pgwa_bench::loopback_messages::Enqueue;
use pgwa_core::config::{Backend, Config};

pub async fn run(cmd: DevCmd, cfg: Config, pool: PgPool) -> anyhow::Result<()> {
    let figures = match cmd {
        DevCmd::Loopback { port } => return loopback(port, cfg, pool).await,
        DevCmd::BenchSessions { sessions, idle_secs, connect_per_sec, contacts } => {
            let connect_per_sec = connect_per_sec.unwrap_or(cfg.worker.connect_per_sec);
            let b = pgwa_bench::loopback_sessions::SessionsBench { sessions, idle_secs, connect_per_sec, contacts };
            pgwa_bench::loopback_sessions::run(&cfg, b).await?
        }
        DevCmd::BenchMessages { pairs, messages, rate, latency_messages, rounds, timeline, enqueue } => {
            let b = pgwa_bench::loopback_messages::MessagesBench {
                pairs,
                messages,
                rate,
                latency_messages,
                rounds,
                timeline,
                enqueue: match enqueue {
                    BurstEnqueue::SendText => Enqueue::SendText,
                    BurstEnqueue::Insert => Enqueue::Insert,
                },
            };
            pgwa_bench::loopback_messages::run(&cfg, b).await?
        }
    };
    say(figures);
    Ok(())
}

async fn loopback(port: u16, mut cfg: Config, pool: PgPool) -> anyhow::Result<()> {
    let server = pgwa_loopback::Server::start(pgwa_loopback::Config {
        addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        state_dir: None,
    })
    .await
    .with_context(|| format!("starting the loopback server on 127.0.0.1:{port}; is the port free? (--port 0 picks one)"))?;
    cfg.whatsapp.backend = Backend::Whatsapp;
    cfg.whatsapp.rust.ws_url = Some(server.ws_url());
    cfg.whatsapp.rust.version = Some((2, 3000, 0));
    say(format!("loopback WhatsApp server on {}", server.ws_url()));
    say("the phone links every session that shows a QR or pairing code; try:");
    say("  psql -c \"SELECT wa.add_session('alice')\" -c \"SELECT wa.add_session('bob')\"");
    say("  psql -c \"SELECT phone FROM wa.sessions\"      # once both are connected");
    say("  psql -c \"SELECT wa.send_text('alice', '<bob''s phone>', 'hello')\"");
    say("  psql -c \"SELECT chat, sender, text FROM wa.inbox\"");
    say("accounts live in this process only: after a restart, sessions link again");
    let phone = tokio::spawn(pgwa_bench::phone::play_phone(pool.clone(), server.shared.clone(), true));
    let result = super::run_worker(cfg, pool).await;
    phone.abort();
    result
}

/// Builds with the `loopback` feature skip the check of WhatsApp's certificate chain, so
/// they may only talk to a server on this machine; anything else is refused before a
/// socket is opened.
pub fn require_loopback(ws_url: Option<&str>) -> anyhow::Result<()> {
    let refuse = |what: &str| {
        anyhow::anyhow!(
            "whatsapp.rust.ws_url: {what}; this pgwa was built with the `loopback` feature, which skips the check of \
             WhatsApp's certificate, so it connects only to a server on this machine. Build without \
             `--features loopback` to connect to WhatsApp"
        )
    };
    let url = ws_url.ok_or_else(|| refuse("not set (WhatsApp's own server)"))?;
    let parsed = url::Url::parse(url).map_err(|e| refuse(&format!("{url:?} is not a URL ({e})")))?;
    if pgwa_loopback::plain_http::is_loopback_host(&parsed) {
        Ok(())
    } else {
        Err(refuse(&format!("{url} is not on this machine")))
    }
}

#[cfg(test)]
mod tests {
    use super::require_loopback;

    #[test]
    fn only_servers_on_this_machine_are_accepted() {
        for ok in ["ws://127.0.0.1:5222/ws/chat", "ws://localhost:1/ws/chat", "ws://[::1]:5222/ws/chat"] {
            assert!(require_loopback(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [None, Some("wss://web.whatsapp.com/ws/chat"), Some("ws://10.0.0.5:5222/ws/chat"), Some("not a url")] {
            let e = require_loopback(bad).unwrap_err().to_string();
            assert!(e.contains("whatsapp.rust.ws_url") && e.contains("--features loopback"), "{bad:?}: {e}");
        }
    }
}
