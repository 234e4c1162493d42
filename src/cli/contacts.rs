//! `pgwa check-numbers`: which phone numbers are on WhatsApp, asked through a session.

use std::time::Duration;

use clap::Args;
use pgwa_pg::PgPool;

use super::log::say;
use super::table::{self, Col};

#[derive(Args, Debug)]
pub struct CheckNumbersArgs {
    session: String,
    /// Phone numbers with country code (+5511999998888); up to 1000.
    #[arg(required = true)]
    phones: Vec<String>,
    /// How long to wait for the answers (seconds); the job stays queued after that.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// One JSON array of objects instead of the table.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: CheckNumbersArgs, pool: &PgPool) -> anyhow::Result<()> {
    let job = pgwa_pg::api::check_numbers(pool, &a.session, &a.phones).await?;
    eprintln!("queued job {job}: checking {} number(s) through session {}", a.phones.len(), a.session);
    let done = super::wait::completed(pool, job, &a.session, Duration::from_secs(a.timeout)).await?;
    // The numbers as the check stored them: digits, without repeats.
    let digits: Vec<String> = a.phones.iter().map(|p| p.chars().filter(char::is_ascii_digit).collect()).collect();
    let rows = pgwa_pg::admin::contacts(pool, &a.session, Some(&digits)).await?;
    let cols = [Col::Left("PHONE"), Col::Left("ON WHATSAPP"), Col::Left("JID"), Col::Left("LID"), Col::Left("BUSINESS")];
    let yes_no = |b: Option<bool>| b.map_or("-", |b| if b { "yes" } else { "no" }).to_string();
    table::print(&rows, a.json, &cols, "number", |r| {
        vec![
            r.phone.clone(),
            yes_no(r.on_whatsapp),
            r.jid.clone().unwrap_or_else(|| "-".into()),
            r.lid.clone().unwrap_or_else(|| "-".into()),
            yes_no(r.is_business),
        ]
    })?;
    if let Some(missing) = done.result.as_ref().and_then(|r| r["unanswered"].as_array()).filter(|m| !m.is_empty()) {
        say(format!("WhatsApp did not answer for: {}", missing.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join(", ")));
    }
    Ok(())
}
