//! Versioned migrations (migrations/, tables and types) followed by the SQL API (sql/,
//! functions, triggers and views), which is re-applied whenever its text changes.

use anyhow::Context;
use sqlx::PgPool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The SQL API files in the order they are applied.
const SQL_API: &[(&str, &str)] = &[
    ("01_validation.sql", include_str!("../../../sql/01_validation.sql")),
    ("02_triggers.sql", include_str!("../../../sql/02_triggers.sql")),
    ("03_sessions_api.sql", include_str!("../../../sql/03_sessions_api.sql")),
    ("04_jobs_api.sql", include_str!("../../../sql/04_jobs_api.sql")),
    ("05_views.sql", include_str!("../../../sql/05_views.sql")),
    ("06_roles.sql", include_str!("../../../sql/06_roles.sql")),
    ("07_tenants.sql", include_str!("../../../sql/07_tenants.sql")),
];

/// What `migrate` did, for the CLI to print.
#[derive(Debug, Default)]
pub struct Report {
    pub migrations_applied: Vec<String>,
    pub sql_api_applied: bool,
}

/// Brings the schema up to date. Safe to run from several workers at once: sqlx holds an
/// advisory lock for the versioned part, and the SQL API is applied under another.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Report> {
    let before: Vec<i64> = applied_versions(pool).await?;
    MIGRATOR.run(pool).await.context("applying migrations/")?;
    let migrations_applied = MIGRATOR
        .iter()
        .filter(|m| !before.contains(&m.version))
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect();
    let sql_api_applied = apply_sql_api(pool).await?;
    Ok(Report { migrations_applied, sql_api_applied })
}

async fn applied_versions(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    if !exists {
        return Ok(vec![]);
    }
    Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await?)
}

pub fn sql_api_checksum() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, text) in SQL_API {
        h.update(name.as_bytes());
        h.update(text.as_bytes());
    }
    format!("{:x}", h.finalize())
}

async fn apply_sql_api(pool: &PgPool) -> anyhow::Result<bool> {
    let checksum = sql_api_checksum();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('pgwa.sql_api'))").execute(&mut *tx).await?;
    let installed: Option<String> = sqlx::query_scalar("SELECT checksum FROM wa.sql_api").fetch_optional(&mut *tx).await?;
    if installed.as_deref() == Some(checksum.as_str()) {
        return Ok(false);
    }
    for (name, text) in SQL_API {
        sqlx::raw_sql(*text).execute(&mut *tx).await.with_context(|| format!("applying sql/{name}"))?;
    }
    sqlx::query(
        "INSERT INTO wa.sql_api (checksum) VALUES ($1)
         ON CONFLICT (singleton) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()",
    )
    .bind(&checksum)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
