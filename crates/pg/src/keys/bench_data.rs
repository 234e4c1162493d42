//! Data for the store benchmark (`pgwa_bench::store`): a scratch database and many
//! sessions with credentials and keys, written in a few set-based statements.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, PgPool};
use whatsapp_rust::wacore::store::Device;

/// Recreates `<database>_store_bench` next to the database of `database_url`; returns
/// its URL.
pub async fn scratch_database(database_url: &str) -> anyhow::Result<String> {
    let opts = PgConnectOptions::from_str(database_url).context("database_url")?;
    let name = format!("{}_store_bench", opts.get_database().unwrap_or("pgwa"));
    let mut admin = opts.clone().database("postgres").connect().await.context("connecting to Postgres")?;
    for sql in [format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"), format!("CREATE DATABASE \"{name}\"")] {
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await?;
    }
    let mut url = url::Url::parse(database_url).context("database_url")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

pub async fn drop_database(database_url: &str, scratch_url: &str) -> anyhow::Result<()> {
    let opts = PgConnectOptions::from_str(database_url)?;
    let name = PgConnectOptions::from_str(scratch_url)?.get_database().unwrap_or_default().to_string();
    let mut admin = opts.database("postgres").connect().await?;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&mut admin).await?;
    Ok(())
}

/// Sessions `bench-0001`.. with an auth document each, `prekeys` one-time prekeys and
/// `signal_sessions` 1 KB session records each, so lookups run against a realistic table
/// size. Returns the session ids.
pub async fn populate(pool: &PgPool, sessions: usize, prekeys: i32, signal_sessions: i32) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = (1..=sessions).map(|i| format!("bench-{i:04}")).collect();
    sqlx::query("SELECT wa.add_session(id, start => false) FROM unnest($1::text[]) AS id").bind(&ids).execute(pool).await?;
    let docs: Vec<serde_json::Value> = ids.iter().map(|_| crate::authdoc::to_document(&Device::new())).collect();
    sqlx::query("INSERT INTO wa.auth_state (session_id, creds) SELECT * FROM unnest($1::text[], $2::jsonb[])")
        .bind(&ids)
        .bind(&docs)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO wa.signal_prekeys (session_id, prekey_id, record, uploaded)
         SELECT s, k, decode(md5(s || k) || md5(k || s), 'hex'), true FROM unnest($1::text[]) s, generate_series(1, $2) k",
    )
    .bind(&ids)
    .bind(prekeys)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO wa.signal_sessions (session_id, address, record)
         SELECT s, '1555' || lpad(k::text, 7, '0') || '@c.us', decode(repeat(md5(s || k), 64), 'hex')
         FROM unnest($1::text[]) s, generate_series(1, $2) k",
    )
    .bind(&ids)
    .bind(signal_sessions)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(ids)
}
