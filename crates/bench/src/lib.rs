//! Benchmarks behind `pgwa bench`: commands that print one JSON line of measured figures.

pub mod jobs;
#[cfg(feature = "loopback")]
pub mod loopback;
#[cfg(feature = "loopback")]
pub mod loopback_messages;
#[cfg(feature = "loopback")]
pub mod loopback_sessions;
#[cfg(feature = "loopback")]
pub mod phone;
pub mod store;

use std::str::FromStr;

use anyhow::Context;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

use pgwa_core::config::Config;

/// A scratch database next to the configured one (`<name>_bench`), recreated each run.
pub(crate) async fn scratch_db(cfg: &Config) -> anyhow::Result<String> {
    let opts = PgConnectOptions::from_str(&cfg.database_url).context("database_url")?;
    let name = format!("{}_bench", opts.get_database().unwrap_or("pgwa"));
    let mut admin = opts.clone().database("postgres").connect().await.context("connecting to Postgres")?;
    for sql in [format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"), format!("CREATE DATABASE \"{name}\"")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await?;
    }
    let mut url = url::Url::parse(&cfg.database_url).context("database_url")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}
