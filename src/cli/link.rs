//! `pgwa session add` waiting for the link: shows each QR code (and refresh) or pairing
//! code as the worker publishes it, until the session connects or gives up.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::log::say;

#[derive(sqlx::FromRow)]
struct Link {
    status: String,
    status_reason: Option<String>,
    qr_code: Option<String>,
    pair_code: Option<String>,
    jid: Option<String>,
}

pub async fn wait_linked(pool: &PgPool, id: &str, timeout: Duration) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all(["wa_link", "wa_session_status"]).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut shown: Option<String> = None;
    say(format!("waiting for a worker to link {id} (is `pgwa run` running?)"));
    loop {
        let l: Link = sqlx::query_as(
            "SELECT status::text AS status, status_reason, qr_code, pair_code, jid FROM wa.sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?;
        match l.status.as_str() {
            "connected" => {
                say(format!("linked: {id} is connected{}", l.jid.map(|j| format!(" as {j}")).unwrap_or_default()));
                return Ok(());
            }
            "logged_out" | "conflict" | "failed" | "stopped" if shown.is_some() || l.status != "stopped" => {
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
