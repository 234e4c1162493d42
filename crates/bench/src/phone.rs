//! The phone of every account on a loopback WhatsApp server: it scans each QR code and
//! types each pairing code a worker publishes, so sessions link with nobody at a screen
//! (`pgwa dev loopback` and the loopback benchmarks).

use std::sync::Arc;

use pgwa_pg::PgPool;
use pgwa_pg::bench::{self as sql, LinkCodes};
use pgwa_pg::notify::Listener;

/// A line for the person watching; a closed stdout loses it instead of panicking.
fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A problem, on stderr: stdout carries a benchmark's JSON.
fn warn(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Scans each QR code and types each pairing code a worker publishes, as a phone would;
/// `verbose` prints each link (the benchmarks link a thousand).
pub async fn play_phone(pool: PgPool, server: Arc<pgwa_loopback::state::Shared>, verbose: bool) {
    loop {
        if let Err(e) = link_as_published(&pool, &server, verbose).await {
            warn(format!("phone: {e:#}; listening again in 1 s"));
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

async fn link_as_published(pool: &PgPool, server: &Arc<pgwa_loopback::state::Shared>, verbose: bool) -> anyhow::Result<()> {
    let mut listener = Listener::connect(pool, &["wa_link"]).await?;
    // Codes published before we listened.
    let pending = sql::pending_link_codes(pool).await?;
    for session in pending {
        link(pool, server, &session, verbose).await;
    }
    loop {
        let n = listener.recv().await?;
        let payload: serde_json::Value = serde_json::from_str(&n.payload).unwrap_or_default();
        if let Some(session) = payload.get("session").and_then(|s| s.as_str()) {
            link(pool, server, session, verbose).await;
        }
    }
}

async fn link(pool: &PgPool, server: &Arc<pgwa_loopback::state::Shared>, session: &str, verbose: bool) {
    match sql::link_codes(pool, session).await {
        Ok(Some(LinkCodes { qr_code: Some(qr), .. })) => match pgwa_loopback::pairing::scan(server, &qr, None) {
            Ok(linked) if verbose => say(format!("phone: scanned the QR code of session {session}: linked as {}", linked.jid)),
            Ok(_) => {}
            Err(e) => warn(format!("phone: could not scan the QR code of session {session}: {e:#}")),
        },
        Ok(Some(LinkCodes { qr_code: None, pair_code: Some(code), pair_phone: Some(phone) })) => {
            let server = server.clone();
            let entered = tokio::task::spawn_blocking(move || pgwa_loopback::pair_code::enter_code(&server, &phone, &code)).await;
            match entered {
                Ok(Ok(e)) if verbose => say(format!("phone: typed the pairing code of session {session} on phone {}", e.phone)),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn(format!("phone: the pairing code of session {session} was refused: {e:#}")),
                Err(e) => warn(format!("phone: typing the pairing code of session {session} failed: {e}")),
            }
        }
        Ok(_) => {}
        Err(e) => warn(format!("phone: reading session {session}: {e}")),
    }
}
