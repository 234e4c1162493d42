//! The store layer: every SQL statement pgwa runs lives under this module.

pub mod admin;
pub mod jobs;
pub mod leases;
pub mod maintenance;
pub mod migrate;
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
