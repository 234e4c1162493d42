//! The command line: thin wrappers over the SQL API and the worker.

mod bench;
mod contacts;
#[cfg(feature = "loopback")]
mod dev;
mod dev_cmd;
mod groups;
pub mod import;
mod jobs;
mod link;
mod log;
mod session;
mod table;
mod tenant;
mod wait;
mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::logging;
use pgwa_core::config::{Backend, Config};

#[derive(Parser, Debug)]
#[command(name = "pgwa", version, about = "Postgres-native WhatsApp gateway")]
pub struct Cli {
    /// Configuration file (default: ./pgwa.toml if it exists).
    #[arg(long, global = true, env = "PGWA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Postgres URL, over the configuration file, PGWA_DATABASE_URL and DATABASE_URL
    /// (the environment keeps it out of `ps`; prefer it where others share the machine).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the database if needed and bring the schema and SQL API up to date.
    Migrate,
    /// Run a worker until SIGTERM or SIGINT (migrates first).
    Run {
        /// Do not migrate on start (when migrations are run separately at deploy).
        #[arg(long)]
        no_migrate: bool,
    },
    /// Manage sessions (one per WhatsApp number).
    #[command(subcommand)]
    Session(session::SessionCmd),
    /// Manage tenants: each has a Postgres role that sees only its own sessions.
    #[command(subcommand)]
    Tenant(tenant::TenantCmd),
    /// Manage webhooks: signed POSTs of events for apps that cannot LISTEN.
    #[command(subcommand)]
    Webhook(webhook::WebhookCmd),
    /// Send a text message: enqueues a send job and prints its ids.
    Send {
        session: String,
        /// Phone number with country code (+5511999998888) or JID.
        to: String,
        text: String,
        /// Quote an earlier message by its id.
        #[arg(long)]
        reply_to: Option<String>,
        /// Enqueue at most once per key and session.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// A person the text mentions as @<number> (phone number or JID); repeatable.
        #[arg(long = "mention")]
        mentions: Vec<String>,
    },
    /// Send a location pin: enqueues a send job and prints its ids.
    #[command(allow_negative_numbers = true)]
    SendLocation {
        session: String,
        /// Phone number with country code (+5511999998888) or JID.
        to: String,
        /// Degrees, -90 to 90.
        latitude: f64,
        /// Degrees, -180 to 180.
        longitude: f64,
        /// The place's name, shown above the map.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        address: Option<String>,
        /// Enqueue at most once per key and session.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Send a file (image, document, video, audio, voice note, sticker) from a local path
    /// or an http(s) URL the worker fetches: enqueues a send job and prints its ids.
    SendMedia {
        session: String,
        /// Phone number with country code (+5511999998888) or JID.
        to: String,
        /// image, document, video, audio, voice or sticker.
        kind: String,
        /// A local file (read now, sent as bytes) or an http(s) URL.
        file: String,
        #[arg(long)]
        caption: Option<String>,
        #[arg(long)]
        mimetype: Option<String>,
    },
    /// Send a poll: enqueues a send job and prints its ids; votes show in wa.poll_results.
    SendPoll {
        session: String,
        /// Phone number with country code (+5511999998888) or JID.
        to: String,
        question: String,
        /// 2 to 12 options.
        #[arg(required = true, num_args = 2..=12)]
        options: Vec<String>,
        /// How many options a voter may pick (0: any number).
        #[arg(long, default_value_t = 1)]
        pick: i32,
    },
    /// Check which phone numbers are on WhatsApp (through a connected session); waits for
    /// the answers and prints them, as wa.contacts keeps them.
    CheckNumbers(contacts::CheckNumbersArgs),
    /// Create a group of the session's number and the people named; waits for the
    /// server's answer and prints the group's JID (wa.groups has the rest).
    CreateGroup(groups::CreateGroupArgs),
    /// Inspect and steer jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCmd),
    /// Measure the job core: enqueue sends over simulated sessions and drain them.
    Bench(bench::BenchArgs),
    /// Measure the key store: session-record put/get, prekey batches, auth-state loads.
    BenchStore,
    /// Measure what recording completed sends, their receipts (and queueing them) cost per job, schema variant by variant.
    BenchOutcomes(bench::OutcomesArgs),
    /// Try pgwa offline against a loopback WhatsApp server (builds with `--features loopback`).
    #[command(subcommand)]
    Dev(dev_cmd::DevCmd),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    #[cfg(not(feature = "loopback"))]
    if let Command::Dev(_) = &cli.command {
        return Err(dev_cmd::not_in_this_build());
    }
    let mut cfg = Config::load(cli.config.as_deref()).context("configuration")?;
    if let Some(url) = &cli.database_url {
        cfg.database_url = url.clone();
    }
    if let Command::Dev(cmd) = &cli.command
        && cmd.is_bench()
    {
        // The in-process loopback server logs every login; a benchmark's output is its figures.
        cfg.log.filter = "warn".into();
    }
    // A worker's log is its output: its progress goes to stdout, its warnings and errors to
    // stderr (PM2, systemd and container runtimes file them apart). The other commands
    // print their results on stdout, so their log stays on stderr.
    let streams = match &cli.command {
        Command::Run { .. } => logging::Streams::ByLevel,
        #[cfg(feature = "loopback")]
        Command::Dev(cmd) if !cmd.is_bench() => logging::Streams::ByLevel,
        _ => logging::Streams::Stderr,
    };
    // Held to the end of the command, so the queued log lines are written before exit.
    let _log = logging::init(&cfg.log, streams);
    // Every command, before any connection: a URL for another database is refused by name.
    pgwa_pg::check_url(&cfg.database_url)?;
    match cli.command {
        Command::Bench(args) => bench::run(&cfg, args).await,
        Command::BenchOutcomes(args) => bench::outcomes(&cfg, args).await,
        Command::BenchStore => {
            log::say(pgwa_bench::store::run(&cfg.database_url).await?);
            Ok(())
        }
        Command::Run { no_migrate } => {
            // Installed before the first connection, so SIGTERM also ends the wait for Postgres.
            let shutdown = CancellationToken::new();
            tokio::spawn(signal_on_term(shutdown.clone()));
            let max_delay = std::time::Duration::from_millis(cfg.db.connect_retry_max_ms);
            let url = &cfg.database_url;
            let Some(pool) = pgwa_pg::connect_waiting(url, cfg.db.max_connections, max_delay, &shutdown).await? else {
                tracing::info!("stopped while waiting for Postgres");
                return Ok(());
            };
            if !no_migrate {
                migrate(&pool, as_log).await?;
            }
            run_worker_until(cfg, pool, shutdown).await
        }
        Command::Migrate => migrate(&pgwa_pg::connect(&cfg.database_url, cfg.db.max_connections).await?, log::say).await,
        #[cfg(not(feature = "loopback"))]
        Command::Dev(_) => unreachable!("answered before the configuration is loaded"),
        #[cfg(feature = "loopback")]
        Command::Dev(cmd) => {
            // The dev worker owns its schema as `run` does; benchmarks make a scratch database.
            let pool = pgwa_pg::connect(&cfg.database_url, cfg.db.max_connections).await?;
            if !cmd.is_bench() {
                migrate(&pool, as_log).await?;
            }
            dev::run(cmd, cfg, pool).await
        }
        command => {
            // Only `migrate` and `run` create the database: a typo'd name here must not
            // leave an empty one behind.
            let pool = pgwa_pg::connect_existing(&cfg.database_url, cfg.db.max_connections).await?;
            match command {
                Command::Session(cmd) => session::run(cmd, &pool).await,
                Command::Tenant(cmd) => tenant::run(cmd, &pool).await,
                Command::Webhook(cmd) => webhook::run(cmd, &pool).await,
                Command::Send { session, to, text, reply_to, idempotency_key, mentions } => {
                    let m = pgwa_pg::api::SendText {
                        session: &session,
                        to: &to,
                        text: &text,
                        reply_to: reply_to.as_deref(),
                        idempotency_key: idempotency_key.as_deref(),
                        mentions: &mentions,
                    };
                    queued(pgwa_pg::api::send_text(&pool, &m).await?);
                    Ok(())
                }
                Command::SendLocation { session, to, latitude, longitude, name, address, idempotency_key } => {
                    let l = pgwa_pg::api::SendLocation {
                        session: &session,
                        to: &to,
                        latitude,
                        longitude,
                        name: name.as_deref(),
                        address: address.as_deref(),
                        idempotency_key: idempotency_key.as_deref(),
                    };
                    queued(pgwa_pg::api::send_location(&pool, &l).await?);
                    Ok(())
                }
                Command::Jobs(cmd) => jobs::run(cmd, &pool).await,
                Command::CheckNumbers(a) => contacts::run(a, &pool).await,
                Command::CreateGroup(a) => groups::run(a, &pool).await,
                Command::SendMedia { session, to, kind, file, caption, mimetype } => {
                    let is_url = file.starts_with("http://") || file.starts_with("https://");
                    let bytes =
                        if is_url { None } else { Some(std::fs::read(&file).with_context(|| format!("file: reading {file}"))?) };
                    let name = (!is_url).then(|| std::path::Path::new(&file).file_name()).flatten().and_then(|n| n.to_str());
                    let m = pgwa_pg::api::SendMedia {
                        session: &session,
                        to: &to,
                        kind: &kind,
                        data: bytes.as_deref(),
                        url: is_url.then_some(file.as_str()),
                        caption: caption.as_deref(),
                        mimetype: mimetype.as_deref(),
                        file_name: name.filter(|_| kind == "document"),
                    };
                    queued(pgwa_pg::api::send_media(&pool, &m).await?);
                    Ok(())
                }
                Command::SendPoll { session, to, question, options, pick } => {
                    queued(pgwa_pg::api::send_poll(&pool, &session, &to, &question, &options, pick).await?);
                    Ok(())
                }
                _ => unreachable!("handled above"),
            }
        }
    }
}

/// What a send command prints: the ids, and how to follow the job.
fn queued((job, message): (i64, String)) {
    log::say(format!("queued job {job}, message id {message}"));
    log::say(format!("follow it with: pgwa jobs show {job}"));
}

/// A line of a worker's start (what migrate did) as a log line: a worker's output is its
/// log, which may be JSON; `pgwa migrate` prints the same lines as its result.
fn as_log(line: String) {
    tracing::info!("{line}");
}

/// Brings the schema up to date; `tell` reports what it did, line by line.
async fn migrate(pool: &pgwa_pg::PgPool, tell: fn(String)) -> anyhow::Result<()> {
    use pgwa_pg::migrate::{LEDGER, SQL_API_VERSION};
    let report = pgwa_pg::migrate::migrate(pool).await?;
    if report.ledger_moved {
        tell(format!("moved the migration ledger from public._sqlx_migrations to {LEDGER}"));
    }
    if !report.migrations_newer.is_empty() {
        tell(format!(
            "the schema has migrations a newer pgwa applied ({}); this one leaves them",
            report.migrations_newer.iter().map(|v| format!("{v:04}")).collect::<Vec<_>>().join(", ")
        ));
    }
    for m in &report.migrations_applied {
        tell(format!("applied migration {m}"));
    }
    if report.sql_api_applied {
        tell(format!("applied the SQL API (sql/, version {SQL_API_VERSION})"));
    }
    if let Some(newer) = report.sql_api_newer {
        tell(format!(
            "the SQL API (version {newer}) was installed by a newer pgwa; this one (version {SQL_API_VERSION}) leaves it"
        ));
    } else if report.migrations_applied.is_empty() && !report.sql_api_applied {
        tell("schema is up to date".into());
    }
    Ok(())
}

/// Runs a worker until SIGTERM or SIGINT.
#[cfg(feature = "loopback")]
async fn run_worker(cfg: Config, pool: pgwa_pg::PgPool) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_on_term(shutdown.clone()));
    run_worker_until(cfg, pool, shutdown).await
}

async fn run_worker_until(cfg: Config, pool: pgwa_pg::PgPool, shutdown: CancellationToken) -> anyhow::Result<()> {
    #[cfg(feature = "loopback")]
    if matches!(cfg.whatsapp.backend, Backend::Whatsapp) {
        dev::require_loopback(cfg.whatsapp.rust.ws_url.as_deref())?;
    }
    check_key_store(&cfg, cfg!(feature = "loopback"))?;
    let wa: Arc<dyn pgwa_core::wa::WhatsApp> = match cfg.whatsapp.backend {
        Backend::Whatsapp => Arc::new(pgwa_wa::rust::RustWhatsApp::new(pool.clone(), cfg.whatsapp.rust.clone())),
        Backend::Simulated => {
            tracing::warn!("whatsapp.backend = simulated: messages go nowhere (trials and benchmarks only)");
            Arc::new(
                pgwa_wa::simulated::SimulatedWhatsApp::new(cfg.whatsapp.simulated.clone())
                    .context("whatsapp.simulated.sent_log")?,
            )
        }
    };
    let worker = pgwa_worker::Worker::new(cfg, pool, wa).await?;
    worker.run(shutdown).await
}

/// Keys kept in memory die with the process (every session re-linked by QR after a
/// restart): only loopback builds, which exist for benchmarks and trials, accept them.
fn check_key_store(cfg: &Config, loopback_build: bool) -> anyhow::Result<()> {
    if cfg.whatsapp.rust.key_store == pgwa_core::config::KeyStore::Memory && !loopback_build {
        anyhow::bail!(
            "whatsapp.rust.key_store = memory would keep every session's keys only in this process, lost at the next \
             restart (re-link by QR); it exists for benchmarks in loopback builds: remove the setting"
        );
    }
    Ok(())
}

/// Cancels `token` on SIGTERM or SIGINT.
pub async fn signal_on_term(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    // Cancel before logging: nothing that goes wrong with the log may keep the worker up.
    token.cancel();
    tracing::info!("{name} received");
}

/// An error as the user should read it: the SQL API's message and SQLSTATE, else the
/// chain of causes. The SQL API's hints name its functions, which an app calls; a person
/// at the command line is also told the command that does the same.
pub fn describe(e: &anyhow::Error) -> String {
    match pgwa_pg::api::describe(e) {
        Some(text) => with_cli_commands(&text),
        None => format!("{e:#}"),
    }
}

/// The SQL API functions a hint may name, and the `pgwa` command for each.
const CLI_FOR_SQL: &[(&str, &str)] = &[
    ("wa.add_session", "pgwa session add ID"),
    ("wa.start_session", "pgwa session start ID"),
    ("wa.stop_session", "pgwa session stop ID"),
    ("wa.remove_session", "pgwa session remove ID --yes"),
    ("wa.cancel_job", "pgwa jobs cancel JOB_ID"),
    ("wa.retry_job", "pgwa jobs retry JOB_ID"),
];

fn with_cli_commands(text: &str) -> String {
    let commands: Vec<&str> = CLI_FOR_SQL.iter().filter(|(f, _)| text.contains(f)).map(|(_, c)| *c).collect();
    if commands.is_empty() {
        return text.to_owned();
    }
    format!("{text}\nfrom the command line: {}", commands.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_naming_sql_functions_also_name_the_commands() {
        let text = "session x does not exist (SQLSTATE WA001)\nhint: Create it first with wa.add_session(id).";
        assert_eq!(with_cli_commands(text), format!("{text}\nfrom the command line: pgwa session add ID"));
        let text = "hint: Use wa.start_session to run it, or wa.remove_session to start over.";
        assert!(with_cli_commands(text).ends_with("pgwa session start ID, pgwa session remove ID --yes"));
        assert_eq!(with_cli_commands("no hint here"), "no hint here");
    }

    #[test]
    fn keys_in_memory_are_refused_outside_loopback_builds() {
        let mut cfg = Config::default();
        assert!(check_key_store(&cfg, false).is_ok(), "keys in Postgres are the default everywhere");
        cfg.whatsapp.rust.key_store = pgwa_core::config::KeyStore::Memory;
        let refused = check_key_store(&cfg, false).unwrap_err().to_string();
        assert!(refused.starts_with("whatsapp.rust.key_store = memory") && refused.ends_with("remove the setting"), "{refused}");
        assert!(check_key_store(&cfg, true).is_ok(), "loopback builds run the in-memory bench variant");
    }
}
