//! The store layer: every SQL statement pgwa runs lives under this module.

pub mod admin;
pub mod fence;
pub mod jobs;
pub mod leases;
pub mod maintenance;
pub mod migrate;
pub mod outage;
pub mod schedules;
pub mod sessions;
pub mod workers;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};

/// Opens a pool on `url`, creating the database first if it does not exist (so a fresh
/// machine with a local Postgres needs no manual `createdb`).
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(url).with_context(|| format!("database_url: cannot parse {}", redact(url)))?;
    create_database_if_missing(&opts).await?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts.application_name("pgwa"))
        .await
        .with_context(|| format!("cannot connect to {}; is Postgres running?", redact(url)))
}

/// A small pool for the queue's own bookkeeping (claims, outcomes, promotions), set up
/// for its few hot statements:
/// * commits do not wait for the WAL flush. Losing the last few hundred milliseconds of
///   these in a Postgres crash is harmless: a lost claim leaves the job available, a lost
///   completion makes it run again with the same message id. It saves a disk flush per
///   claim and per outcome batch, and, set per connection, the BEGIN/SET/COMMIT round
///   trips a per-transaction setting would cost. Session state, keys and inbound
///   messages never go through this pool.
/// * plans are generic, made once per connection: planning the claim cost 0.7-1.4 ms,
///   more than running it at low load, and the generic plans of these statements are the
///   ones wanted at any batch size (index lookups driven by the arrays).
/// * sequential scans are off. A generic plan lives as long as its connection, and one
///   made while `wa.jobs` was empty (a fresh install, a worker started before the first
///   send) scanned the whole table in every claim's per-chat FIFO check, a table that
///   keeps finished jobs for the retention period. Every statement here has an index
///   made for it, so the planner is told to use one whatever the table's size.
/// * no JIT compilation: these statements touch a few rows through indexes, and a
///   compile (tens of milliseconds) would cost more than thousands of their runs. It
///   would be chosen if a plan ever carried the cost penalty of a disabled scan.
///
/// Behind a transaction-pooling PgBouncer (`poll_only`) a session-level SET would leak to
/// other clients, so there the main pool is used as is.
pub fn queue_pool(pool: &PgPool, poll_only: bool, max_connections: u32) -> PgPool {
    if poll_only {
        return pool.clone();
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::raw_sql("SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; SET jit = off")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with((*pool.connect_options()).clone())
}

async fn create_database_if_missing(opts: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = opts.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if PgConnection::connect_with(opts).await.is_ok() {
        return Ok(());
    }
    let admin = opts.clone().database("postgres");
    let mut conn = admin
        .connect()
        .await
        .with_context(|| format!("cannot connect to Postgres at {}:{}; is it running?", opts.get_host(), opts.get_port()))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await {
            // Another worker may have created it between our check and our CREATE.
            let raced = e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P04");
            if !raced {
                return Err(e).with_context(|| format!("cannot create database {name}"));
            }
        } else {
            tracing::info!(database = %name, "created database");
        }
    }
    Ok(())
}

/// The URL without its password, for error messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".into(),
    }
}
