//! `pgwa webhook ...`: webhooks for apps that cannot LISTEN (wa.webhooks,
//! sql/08_webhooks.sql). The secret is printed once, when it is made.

use clap::Subcommand;
use pgwa_core::job::JobState;
use pgwa_pg::PgPool;
use pgwa_pg::webhooks::{self, NewWebhook};

use super::log::say;
use super::table::{self, Col};

#[derive(Subcommand, Debug)]
pub enum WebhookCmd {
    /// Add a webhook; prints its id on stderr and its secret alone on stdout (shown this once).
    Add {
        /// Where to POST events: http(s)://host[:port]/path, public addresses only unless
        /// the workers' webhooks.allow lists the host.
        url: String,
        /// Which events (default all): inbox, outbound, session, codes; repeatable or comma-separated.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Only this session's events.
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// The tenant whose events it receives (default: the session's, or "default").
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List webhooks with their pending and dead deliveries.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop queuing deliveries to a webhook (those queued still go).
    Disable { id: i64 },
    /// Queue deliveries again.
    Enable { id: i64 },
    /// Give a webhook a new secret; prints it alone on stdout. Deliveries sign with it at once.
    RotateSecret { id: i64 },
    /// Remove a webhook; its deliveries not yet made are cancelled.
    Remove { id: i64 },
    /// The newest deliveries (retry dead ones with `pgwa jobs retry <id>` or by filter).
    Deliveries {
        /// One webhook's only.
        id: Option<i64>,
        #[arg(long)]
        state: Option<JobState>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: WebhookCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        WebhookCmd::Add { url, events, session, description, tenant } => {
            let w = NewWebhook {
                url: &url,
                events: (!events.is_empty()).then_some(events.as_slice()),
                session: session.as_deref(),
                description: description.as_deref(),
                tenant: tenant.as_deref(),
            };
            let (id, secret) = webhooks::add(pool, &w).await?;
            // The advice on stderr, the secret alone on stdout: `SECRET=$(pgwa webhook add ...)`.
            eprintln!(
                "added webhook {id}; its secret (below, on stdout) is shown this once: the receiver checks signatures with it"
            );
            say(secret);
        }
        WebhookCmd::List { json } => {
            let rows = webhooks::list(pool).await?;
            let cols = [
                Col::Right("ID"),
                Col::Left("TENANT"),
                Col::Left("URL"),
                Col::Left("EVENTS"),
                Col::Left("SESSION"),
                Col::Left("ENABLED"),
                Col::Right("PENDING"),
                Col::Right("DEAD"),
            ];
            table::print(&rows, json, &cols, "webhook", |w| {
                vec![
                    w.id.to_string(),
                    w.tenant.clone(),
                    w.url.clone(),
                    w.events.join(","),
                    w.session.clone().unwrap_or_else(|| "(all)".into()),
                    if w.enabled { "yes" } else { "no" }.into(),
                    w.pending.to_string(),
                    w.dead.to_string(),
                ]
            })?;
        }
        WebhookCmd::Disable { id } => {
            webhooks::set_enabled(pool, id, false).await?;
            say(format!("webhook {id} disabled: no new deliveries are queued (`pgwa webhook enable {id}` to resume)"));
        }
        WebhookCmd::Enable { id } => {
            webhooks::set_enabled(pool, id, true).await?;
            say(format!("webhook {id} enabled"));
        }
        WebhookCmd::RotateSecret { id } => {
            let secret = webhooks::rotate_secret(pool, id).await?;
            eprintln!("webhook {id} has a new secret (below, on stdout); deliveries from now on are signed with it");
            say(secret);
        }
        WebhookCmd::Remove { id } => {
            let cancelled = webhooks::remove(pool, id).await?;
            let deliveries = if cancelled == 1 { "delivery not yet made was" } else { "deliveries not yet made were" };
            say(format!("removed webhook {id}; {cancelled} {deliveries} cancelled"));
        }
        WebhookCmd::Deliveries { id, state, limit, json } => {
            let rows = webhooks::deliveries(pool, id, state.map(JobState::as_str), limit.clamp(1, 1000)).await?;
            let cols = [
                Col::Right("JOB"),
                Col::Right("WEBHOOK"),
                Col::Left("TYPE"),
                Col::Left("STATE"),
                Col::Right("ATTEMPTS"),
                Col::Left("QUEUED"),
                Col::Left("LAST ERROR"),
            ];
            table::print(&rows, json, &cols, "delivery", |d| {
                vec![
                    d.id.to_string(),
                    d.webhook.to_string(),
                    d.event_type.clone(),
                    d.state.clone(),
                    d.attempts.to_string(),
                    d.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    d.last_error.clone().unwrap_or_default(),
                ]
            })?;
        }
    }
    Ok(())
}
