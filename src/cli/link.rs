//! `pgwa session add` waiting for the link: shows each QR code (and refresh) or pairing
//! code as the worker publishes it, until the session connects or gives up.

use std::time::Duration;

use pgwa_core::session::SessionStatus;
use pgwa_pg::PgPool;
use pgwa_pg::notify::Listener;

use super::log::say;

pub async fn wait_linked(pool: &PgPool, id: &str, timeout: Duration) -> anyhow::Result<()> {
    let mut listener = Listener::connect(pool, &["wa_link", "wa_session_status"]).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut shown: Option<String> = None;
    say(format!("waiting for a worker to link {id} (is `pgwa run` running?)"));
    loop {
        let l = pgwa_pg::api::link_state(pool, id).await?;
        match l.status {
            SessionStatus::Connected => {
                say(format!("linked: {id} is connected{}", l.jid.map(|j| format!(" as {j}")).unwrap_or_default()));
                return Ok(());
            }
            SessionStatus::LoggedOut | SessionStatus::Conflict | SessionStatus::Failed | SessionStatus::Stopped
                if shown.is_some() || l.status != SessionStatus::Stopped =>
            {
                anyhow::bail!("{id} ended {}: {}", l.status, l.status_reason.unwrap_or_default());
            }
            _ => {}
        }
        if let Some(code) = l.pair_code.filter(|c| shown.as_ref() != Some(c)) {
            say(format!("pairing code for {id}: {code}\non the phone: Linked devices > Link with phone number"));
            shown = Some(code);
        } else if let Some(qr) = l.qr_code.filter(|c| shown.as_ref() != Some(c)) {
            say(pgwa_worker::qr::terminal(&qr).map_err(anyhow::Error::msg)?);
            say("scan with WhatsApp on the phone: Linked devices > Link a device");
            shown = Some(qr);
        }
        tokio::select! {
            n = listener.recv() => { n?; }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = tokio::time::sleep_until(deadline) => {
                anyhow::bail!("{id} is not linked after {} s; it stays queued for the workers (see `pgwa session show {id}`)", timeout.as_secs());
            }
        }
    }
}
