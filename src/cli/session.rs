//! `pgwa session ...`

use clap::Subcommand;
use pgwa_pg::PgPool;

use super::log::{self, say};
use super::table::{self, Col};
use pgwa_pg::admin;

#[derive(Subcommand, Debug)]
pub enum SessionCmd {
    /// Create a session; a worker links it (QR, or pairing code with --pair-phone).
    Add {
        id: String,
        /// Link by pairing code to this phone number instead of QR.
        #[arg(long)]
        pair_phone: Option<String>,
        /// Create it stopped.
        #[arg(long)]
        stopped: bool,
        /// Free-form JSON object kept with the session (tenant data).
        #[arg(long, default_value = "{}")]
        metadata: String,
        /// Wait until linked, showing each QR or pairing code (default when the output is a terminal).
        #[arg(long, conflicts_with = "no_wait")]
        wait: bool,
        /// Return at once.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// List sessions with status, health and queued jobs.
    List {
        /// One JSON array of objects instead of the table (status and backend apart).
        #[arg(long)]
        json: bool,
    },
    /// Show one session.
    Show {
        id: String,
        /// One JSON object instead of the text.
        #[arg(long)]
        json: bool,
    },
    /// Print a link to the connect page for the session's end customer (wa.connect_link).
    Link {
        id: String,
        /// How long the link works, in minutes (1 to 10080, a week).
        #[arg(long, default_value_t = 15)]
        minutes: u32,
    },
    /// Ask for the session to run (clears conflict, logged_out, failed).
    Start { id: String },
    /// Ask for the session to stop (closes without logging out).
    Stop { id: String },
    /// Move a number linked with Baileys to pgwa (no new QR scan).
    ImportBaileys(super::import::ImportBaileysArgs),
    /// Delete a session with its jobs, inbox and keys.
    Remove {
        id: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(cmd: SessionCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        SessionCmd::Add { id, pair_phone, stopped, metadata, wait, no_wait, timeout } => {
            let metadata: serde_json::Value = serde_json::from_str(&metadata)
                .map_err(|e| anyhow::anyhow!("--metadata: not valid JSON ({e}); pass an object like '{{\"tenant\":42}}'"))?;
            pgwa_pg::api::add_session(pool, &id, pair_phone.as_deref(), &metadata, !stopped).await?;
            say(format!("added session {id} ({})", if stopped { "stopped" } else { "a worker will link it" }));
            let wait = wait || (!no_wait && std::io::IsTerminal::is_terminal(&std::io::stdout()));
            if wait && !stopped {
                super::link::wait_linked(pool, &id, std::time::Duration::from_secs(timeout)).await?;
            }
            Ok(())
        }
        SessionCmd::List { json } => {
            let rows = admin::sessions(pool).await?;
            let cols = [
                Col::Left("SESSION"),
                Col::Left("DESIRED"),
                Col::Left("STATUS"),
                Col::Left("HELD"),
                Col::Left("HEALTHY"),
                Col::Right("QUEUED"),
                Col::Left("REASON"),
            ];
            table::print(&rows, json, &cols, "session", |r| {
                vec![
                    r.session.clone(),
                    r.desired.to_string(),
                    status_shown(r),
                    r.held.to_string(),
                    r.healthy.to_string(),
                    r.queued.to_string(),
                    r.status_reason.clone().unwrap_or_default(),
                ]
            })
        }
        SessionCmd::Show { id, json } => {
            let Some(r) = admin::session(pool, &id).await? else {
                anyhow::bail!("session: unknown session {id:?}; see `pgwa session list`");
            };
            if json {
                return log::out(&(serde_json::to_string_pretty(&r)? + "\n"));
            }
            say(format!("session          {}", r.session));
            say(format!("desired          {}", r.desired));
            say(format!("status           {} {}", status_shown(&r), r.status_reason.as_deref().unwrap_or("")));
            say(format!("held by          {}", r.worker_id.map(|w| w.to_string()).unwrap_or_else(|| "-".into())));
            say(format!("healthy          {}", r.healthy));
            say(format!("bad mac          {}", r.bad_mac_count));
            say(format!("bad decrypt      {}", r.bad_decrypt_count));
            say(format!("failed connects  {}", r.failed_connect_count));
            say(format!("last error       {}", r.last_error.as_deref().unwrap_or("-")));
            say(format!("queued jobs      {}", r.queued));
            Ok(())
        }
        SessionCmd::Link { id, minutes } => {
            let url = pgwa_pg::api::connect_link(pool, &id, minutes).await?;
            let hours = f64::from(minutes) / 60.0;
            crate::cli::log::out(&format!("{url}\n"))?;
            // The URL alone on stdout, for `$(pgwa session link ...)`; the advice on stderr.
            eprintln!(
                "valid for {minutes} minutes ({hours:.1} h): send it to the number's owner, who opens it and scans the QR code or asks for a pairing code"
            );
            Ok(())
        }
        SessionCmd::Start { id } => {
            pgwa_pg::api::start_session(pool, &id).await?;
            say(format!("session {id}: desired = running"));
            Ok(())
        }
        SessionCmd::Stop { id } => {
            pgwa_pg::api::stop_session(pool, &id).await?;
            say(format!("session {id}: desired = stopped"));
            Ok(())
        }
        SessionCmd::ImportBaileys(args) => super::import::run(args, pool).await,
        SessionCmd::Remove { id, yes } => {
            if !yes {
                anyhow::bail!("removing {id:?} deletes its jobs, inbox and keys; run again with --yes to confirm");
            }
            pgwa_pg::api::remove_session(pool, &id).await?;
            say(format!("removed session {id}"));
            Ok(())
        }
    }
}

/// The status as a person should read it: a session held by a simulated worker says so.
fn status_shown(r: &admin::SessionRow) -> String {
    match r.backend {
        Some(pgwa_core::config::Backend::Simulated) => format!("{} (simulated)", r.status),
        _ => r.status.to_string(),
    }
}
