//! `pgwa create-group`: a new group of a session's number and the people named.

use std::time::Duration;

use clap::Args;
use pgwa_pg::PgPool;

use super::log::say;

#[derive(Args, Debug)]
pub struct CreateGroupArgs {
    session: String,
    /// The group's name (1 to 100 characters).
    subject: String,
    /// Participants' phone numbers with country code (+5511999998888).
    #[arg(required = true)]
    participants: Vec<String>,
    /// How long to wait for the server's answer (seconds); the job stays queued after that.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Print the group's wa.groups row as JSON instead of a sentence.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: CreateGroupArgs, pool: &PgPool) -> anyhow::Result<()> {
    let job = pgwa_pg::api::create_group(pool, &a.session, &a.subject, &a.participants).await?;
    eprintln!("queued job {job}: creating group {:?} through session {}", a.subject, a.session);
    let done = super::wait::completed(pool, job, &a.session, Duration::from_secs(a.timeout)).await?;
    let jid = done.result.as_ref().and_then(|r| r["group"].as_str()).unwrap_or_default().to_string();
    let Some(group) = pgwa_pg::admin::group(pool, &a.session, &jid).await? else {
        anyhow::bail!("job {job} completed but wa.groups has no group {jid:?}; see `pgwa jobs show {job}`");
    };
    if a.json {
        println!("{group}");
        return Ok(());
    }
    let members = group["participants"].as_array().map_or(0, Vec::len);
    say(format!("created group {jid} ({:?}, {members} members including this number)", a.subject));
    Ok(())
}
