//! Versioned migrations (migrations/, tables and types) followed by the SQL API (sql/,
//! functions, triggers and views), which carries a version number so that an older pgwa
//! (during a rolling deploy every `pgwa run` migrates first) never puts its older
//! functions back over a newer one's.

use std::sync::LazyLock;

use anyhow::Context;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::{Connection, PgConnection, PgPool};

/// Where sqlx records the applied migrations: in schema `wa` with everything else pgwa
/// owns, not in `public`, which belongs to the apps sharing the database (and to their
/// own sqlx ledger, if they have one). Before, it was `public._sqlx_migrations`;
/// `migrate` moves such a ledger here once.
pub const LEDGER: &str = "wa._sqlx_migrations";

static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut m = sqlx::migrate!("../../migrations");
    m.dangerous_set_table_name(LEDGER);
    // `migrate` holds sqlx's lock itself, around more than the migrator's own steps.
    m.set_locking(false);
    // During a rolling deploy a newer pgwa may have applied migrations this one does not
    // know: it leaves them (they are written to keep older workers working) instead of
    // refusing to start.
    m.set_ignore_missing(true);
    m
});

/// The version of the SQL API in sql/. Bump it with every change of sql/ and record the
/// new checksum in sql/VERSIONS (tests/schema_versions.rs fails until both are done):
/// `migrate` never replaces an installed SQL API of a higher version.
pub const SQL_API_VERSION: i32 = 20;

/// The SQL API files in the order they are applied.
const SQL_API: &[(&str, &str)] = &[
    ("01_validation.sql", include_str!("../../../sql/01_validation.sql")),
    ("02_triggers.sql", include_str!("../../../sql/02_triggers.sql")),
    ("03_sessions_api.sql", include_str!("../../../sql/03_sessions_api.sql")),
    ("04_jobs_api.sql", include_str!("../../../sql/04_jobs_api.sql")),
    ("05_views.sql", include_str!("../../../sql/05_views.sql")),
    ("06_roles.sql", include_str!("../../../sql/06_roles.sql")),
    ("07_tenants.sql", include_str!("../../../sql/07_tenants.sql")),
    ("08_webhooks.sql", include_str!("../../../sql/08_webhooks.sql")),
];

/// What `migrate` did, for the CLI to print.
#[derive(Debug, Default)]
pub struct Report {
    /// The ledger was found in `public` (made by an earlier pgwa) and moved to `wa`.
    pub ledger_moved: bool,
    pub migrations_applied: Vec<String>,
    pub sql_api_applied: bool,
    /// The installed SQL API's version when a newer pgwa installed it: left as it is.
    pub sql_api_newer: Option<i32>,
    /// Applied migrations this pgwa does not know (a newer one applied them).
    pub migrations_newer: Vec<i64>,
}

/// Brings the schema up to date. Safe to run from several workers at once, and from
/// older pgwa versions beside it: everything runs under sqlx's migration lock (the one
/// every pgwa takes for migrations/), and the SQL API also under its own, as before.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Report> {
    let mut conn = pool.acquire().await?;
    // The lock is held by the session: if anything below fails (or the future is
    // dropped), closing the connection releases it, instead of a pooled connection
    // going back to the pool still holding it.
    conn.close_on_drop();
    conn.lock().await.context("taking the migration lock")?;
    let report = migrate_locked(&mut conn).await?;
    // Ending the session releases the lock.
    conn.close().await?;
    Ok(report)
}

async fn migrate_locked(conn: &mut PgConnection) -> anyhow::Result<Report> {
    // The ledger lives in wa, so wa must exist before sqlx creates the ledger (migration
    // 0001 creates it too, IF NOT EXISTS).
    sqlx::raw_sql("CREATE SCHEMA IF NOT EXISTS wa").execute(&mut *conn).await?;
    let ledger_moved = move_ledger_from_public(conn).await?;
    let before = applied_versions(conn).await?;
    MIGRATOR.run(&mut *conn).await.context("applying migrations/")?;
    let migrations_applied = MIGRATOR
        .iter()
        .filter(|m| !before.contains(&m.version))
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect();
    let (sql_api_applied, sql_api_newer) = match apply_sql_api(conn).await? {
        SqlApi::Applied => (true, None),
        SqlApi::UpToDate => (false, None),
        SqlApi::Newer(v) => (false, Some(v)),
    };
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    let migrations_newer = before.iter().copied().filter(|v| !known.contains(v)).collect();
    Ok(Report { ledger_moved, migrations_applied, sql_api_applied, sql_api_newer, migrations_newer })
}

/// Moves the ledger of an earlier pgwa from `public` to `wa`, keeping its rows, so no
/// migration runs again. Only once (not when `wa` has a ledger already), and only a
/// ledger that is pgwa's: one holding pgwa's first migration with its checksum. An app's
/// own sqlx ledger in `public` stays where it is.
async fn move_ledger_from_public(conn: &mut PgConnection) -> anyhow::Result<bool> {
    let ledgers = sqlx::query!(
        r#"SELECT to_regclass('public._sqlx_migrations') IS NOT NULL AS "in_public!",
                  to_regclass('wa._sqlx_migrations') IS NOT NULL AS "in_wa!""#
    )
    .fetch_one(&mut *conn)
    .await?;
    let (in_public, in_wa) = (ledgers.in_public, ledgers.in_wa);
    let Some(first) = MIGRATOR.iter().next().filter(|_| in_public && !in_wa) else { return Ok(false) };
    // The ledgers are sqlx's own tables, which the schema that checks pgwa's queries at
    // compile time does not have: these statements stay unchecked.
    let ours: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM public._sqlx_migrations WHERE version = $1 AND checksum = $2)")
            .bind(first.version)
            .bind(first.checksum.as_ref())
            .fetch_one(&mut *conn)
            .await?;
    if !ours {
        return Ok(false);
    }
    sqlx::raw_sql("ALTER TABLE public._sqlx_migrations SET SCHEMA wa").execute(&mut *conn).await?;
    Ok(true)
}

async fn applied_versions(conn: &mut PgConnection) -> anyhow::Result<Vec<i64>> {
    let exists = sqlx::query_scalar!(r#"SELECT to_regclass('wa._sqlx_migrations') IS NOT NULL AS "exists!""#)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(vec![]);
    }
    Ok(sqlx::query_scalar("SELECT version FROM wa._sqlx_migrations WHERE success").fetch_all(&mut *conn).await?)
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

enum SqlApi {
    Applied,
    UpToDate,
    /// A newer pgwa installed this version; left as it is.
    Newer(i32),
}

/// Applies sql/ unless the installed SQL API is newer (a higher version) or this very
/// one (same version and checksum). Same version with another checksum is applied: sql/
/// changed during development (tests/schema_versions.rs keeps that from being released).
async fn apply_sql_api(conn: &mut PgConnection) -> anyhow::Result<SqlApi> {
    let checksum = sql_api_checksum();
    let mut tx = conn.begin().await?;
    // Older pgwa versions take only this lock around the SQL API.
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('pgwa.sql_api'))").execute(&mut *tx).await?;
    let installed =
        sqlx::query!("SELECT version, checksum FROM wa.sql_api").fetch_optional(&mut *tx).await?.map(|r| (r.version, r.checksum));
    match installed {
        Some((version, _)) if version > SQL_API_VERSION => {
            tx.rollback().await?;
            return Ok(SqlApi::Newer(version));
        }
        Some((version, installed)) if version == SQL_API_VERSION && installed == checksum => {
            tx.rollback().await?;
            return Ok(SqlApi::UpToDate);
        }
        _ => {}
    }
    for (name, text) in SQL_API {
        sqlx::raw_sql(*text).execute(&mut *tx).await.with_context(|| format!("applying sql/{name}"))?;
    }
    sqlx::query!(
        "INSERT INTO wa.sql_api (version, checksum) VALUES ($1, $2)
         ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, checksum = EXCLUDED.checksum, applied_at = now()",
        SQL_API_VERSION,
        &checksum
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(SqlApi::Applied)
}
