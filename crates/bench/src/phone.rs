//! The phone of every account on a loopback WhatsApp server: it scans each QR code and
//! types each pairing code a worker publishes, so sessions link with nobody at a screen
//! (`pgwa dev loopback` and the loopback benchmarks).

use std::sync::Arc;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

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
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen("wa_link").await?;
    // Codes published before we listened.
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM wa.sessions WHERE (qr_code IS NOT NULL AND qr_expires_at > now())
            OR (pair_code IS NOT NULL AND pair_code_expires_at > now())",
    )
    .fetch_all(pool)
    .await?;
    for session in pending {
        link(pool, server, &session, verbose).await;
    }
    loop {
        let n = listener.recv().await?;
        let payload: serde_json::Value = serde_json::from_str(n.payload()).unwrap_or_default();
        if let Some(session) = payload.get("session").and_then(|s| s.as_str()) {
            link(pool, server, session, verbose).await;
        }
    }
}

/// A session's live QR code, live pairing code, and the phone number the code is for.
type LinkCodes = (Option<String>, Option<String>, Option<String>);

async fn link(pool: &PgPool, server: &Arc<pgwa_loopback::state::Shared>, session: &str, verbose: bool) {
    let row: sqlx::Result<Option<LinkCodes>> = sqlx::query_as(
        "SELECT CASE WHEN qr_expires_at > now() THEN qr_code END,
                CASE WHEN pair_code_expires_at > now() THEN pair_code END, pair_phone
           FROM wa.sessions WHERE id = $1",
    )
    .bind(session)
    .fetch_optional(pool)
    .await;
    match row {
        Ok(Some((Some(qr), _, _))) => match pgwa_loopback::pairing::scan(server, &qr, None) {
            Ok(linked) if verbose => say(format!("phone: scanned the QR code of session {session}: linked as {}", linked.jid)),
            Ok(_) => {}
            Err(e) => warn(format!("phone: could not scan the QR code of session {session}: {e:#}")),
        },
        Ok(Some((None, Some(code), Some(phone)))) => {
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
