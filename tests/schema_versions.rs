//! How `migrate` brings a database up to date across pgwa versions: the migration ledger
//! in schema `wa` (moved there once from an earlier pgwa's `public`), and the SQL API's
//! version, which an older pgwa never overwrites. Real Postgres, real migrations.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use pgwa_pg::migrate::{SQL_API_VERSION, migrate, sql_api_checksum};
use pgwa_testkit::{TestDb, server_url};
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

/// The first migration an earlier pgwa (ledger in `public`, no SQL API version) lacks.
const FIRST_NEW_MIGRATION: i64 = 18;

fn all_migrations() -> usize {
    sqlx::migrate!("./migrations").iter().count()
}

/// What `pgwa migrate` reports applying on an install from before the ledger moved:
/// 0018 (the versioned SQL API) and every migration since.
fn new_migrations() -> Vec<String> {
    sqlx::migrate!("./migrations")
        .iter()
        .filter(|m| m.version >= FIRST_NEW_MIGRATION)
        .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
        .collect()
}

/// An empty database (no schema at all), named like testkit's so leftovers are swept.
async fn empty_db() -> TestDb {
    let server = server_url();
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let name = format!("pgwa_t_{secs}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let url = format!("{server}/{name}");
    let pool = PgPoolOptions::new().max_connections(8).connect(&url).await.unwrap();
    TestDb { name, url, pool }
}

/// A database as an earlier pgwa left it: its migrations applied by sqlx's default
/// migrator (ledger `public._sqlx_migrations`), and a `wa.sql_api` row without version.
async fn old_install() -> TestDb {
    let db = empty_db().await;
    let old: Vec<_> = sqlx::migrate!("./migrations").iter().filter(|m| m.version < FIRST_NEW_MIGRATION).cloned().collect();
    Migrator::with_migrations(old).run(&db.pool).await.unwrap();
    sqlx::query("INSERT INTO wa.sql_api (checksum) VALUES ('sql/ of an earlier pgwa')").execute(&db.pool).await.unwrap();
    assert!(exists(&db.pool, "public._sqlx_migrations").await);
    db
}

async fn exists(pool: &PgPool, table: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(table).fetch_one(pool).await.unwrap()
}

/// The ledger's rows: version -> when it was applied.
async fn ledger(pool: &PgPool, table: &str) -> BTreeMap<i64, DateTime<Utc>> {
    let rows: Vec<(i64, DateTime<Utc>)> =
        sqlx::query_as(AssertSqlSafe(format!("SELECT version, installed_on FROM {table} WHERE success")))
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn an_earlier_install_moves_its_ledger_to_wa_and_reapplies_nothing() {
    let db = old_install().await;
    let before = ledger(&db.pool, "public._sqlx_migrations").await;
    assert_eq!(before.len(), FIRST_NEW_MIGRATION as usize - 2, "0001..0017 without the missing 0009");

    let report = migrate(&db.pool).await.unwrap();
    assert!(report.ledger_moved);
    assert_eq!(report.migrations_applied, new_migrations());
    assert_eq!(report.migrations_applied[0], "0018_sql_api_version");
    assert!(report.sql_api_applied, "an unversioned SQL API is replaced");
    assert!(!exists(&db.pool, "public._sqlx_migrations").await);
    let after = ledger(&db.pool, "wa._sqlx_migrations").await;
    assert_eq!(after.len(), all_migrations());
    for (version, at) in &before {
        assert_eq!(after.get(version), Some(at), "migration {version} was applied again");
    }
    let (version, checksum): (i32, String) =
        sqlx::query_as("SELECT version, checksum FROM wa.sql_api").fetch_one(&db.pool).await.unwrap();
    assert_eq!((version, checksum), (SQL_API_VERSION, sql_api_checksum()));

    let again = migrate(&db.pool).await.unwrap();
    assert!(!again.ledger_moved && again.migrations_applied.is_empty() && !again.sql_api_applied, "{again:?}");
    assert_eq!(ledger(&db.pool, "wa._sqlx_migrations").await, after);
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn workers_migrating_an_earlier_install_at_once_move_and_apply_everything_once() {
    let db = old_install().await;
    let reports = futures::future::join_all((0..4).map(|_| migrate(&db.pool))).await;
    let reports: Vec<_> = reports.into_iter().map(Result::unwrap).collect();
    assert_eq!(reports.iter().filter(|r| r.ledger_moved).count(), 1, "{reports:?}");
    assert_eq!(reports.iter().filter(|r| r.sql_api_applied).count(), 1, "{reports:?}");
    let applied: Vec<String> = reports.iter().flat_map(|r| r.migrations_applied.clone()).collect();
    assert_eq!(applied, new_migrations(), "each applied once, by one worker: {reports:?}");
    assert!(!exists(&db.pool, "public._sqlx_migrations").await);
    assert_eq!(ledger(&db.pool, "wa._sqlx_migrations").await.len(), all_migrations());
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn a_fresh_database_keeps_its_ledger_in_wa_only() {
    let db = empty_db().await;
    let report = migrate(&db.pool).await.unwrap();
    assert!(!report.ledger_moved);
    assert_eq!(report.migrations_applied.len(), all_migrations());
    assert!(report.sql_api_applied);
    assert!(!exists(&db.pool, "public._sqlx_migrations").await);
    assert_eq!(ledger(&db.pool, "wa._sqlx_migrations").await.len(), all_migrations());
    let version: i32 = sqlx::query_scalar("SELECT version FROM wa.sql_api").fetch_one(&db.pool).await.unwrap();
    assert_eq!(version, SQL_API_VERSION);
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn an_apps_own_sqlx_ledger_in_public_is_left_alone() {
    let db = empty_db().await;
    sqlx::raw_sql(
        "CREATE TABLE public._sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
             installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL, checksum bytea NOT NULL,
             execution_time bigint NOT NULL);
         INSERT INTO public._sqlx_migrations VALUES (20240101000000, 'the app''s bookings', now(), true, '\\x00', 1);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let report = migrate(&db.pool).await.unwrap();
    assert!(!report.ledger_moved);
    assert_eq!(report.migrations_applied.len(), all_migrations());
    let apps: Vec<i64> = ledger(&db.pool, "public._sqlx_migrations").await.into_keys().collect();
    assert_eq!(apps, vec![20240101000000]);
    assert_eq!(ledger(&db.pool, "wa._sqlx_migrations").await.len(), all_migrations());
    db.drop_now().await.unwrap();
}

// --- the SQL API's version ------------------------------------------------------------

/// Stands in for a function of another pgwa version's sql/.
async fn replace_normalize_jid(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE OR REPLACE FUNCTION wa.normalize_jid(recipient text, arg text DEFAULT 'recipient') RETURNS text
         LANGUAGE sql IMMUTABLE AS $$ SELECT 'another version' $$",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn normalize_jid(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT wa.normalize_jid('+55 11 99999-8888')").fetch_one(pool).await.unwrap()
}

async fn installed(pool: &PgPool) -> (i32, String) {
    sqlx::query_as("SELECT version, checksum FROM wa.sql_api").fetch_one(pool).await.unwrap()
}

/// A database whose SQL API another pgwa installed: `version`, a checksum of its own, and
/// its own wa.normalize_jid.
async fn sql_api_installed_by(version: i32) -> TestDb {
    let db = TestDb::new().await.unwrap();
    replace_normalize_jid(&db.pool).await;
    sqlx::query("UPDATE wa.sql_api SET version = $1, checksum = 'sql/ of another pgwa'")
        .bind(version)
        .execute(&db.pool)
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn a_newer_sql_api_is_left_as_it_is() {
    let newer = SQL_API_VERSION + 1;
    let db = sql_api_installed_by(newer).await;
    let report = migrate(&db.pool).await.unwrap();
    assert_eq!(report.sql_api_newer, Some(newer));
    assert!(!report.sql_api_applied);
    assert_eq!(normalize_jid(&db.pool).await, "another version");
    assert_eq!(installed(&db.pool).await, (newer, "sql/ of another pgwa".to_string()));
}

#[tokio::test]
async fn an_older_sql_api_is_replaced() {
    let db = sql_api_installed_by(SQL_API_VERSION - 1).await;
    let report = migrate(&db.pool).await.unwrap();
    assert!(report.sql_api_applied && report.sql_api_newer.is_none(), "{report:?}");
    assert_eq!(normalize_jid(&db.pool).await, "5511999998888@s.whatsapp.net");
    assert_eq!(installed(&db.pool).await, (SQL_API_VERSION, sql_api_checksum()));
}

#[tokio::test]
async fn the_same_version_with_other_text_is_replaced() {
    // sql/ edited during development without a new version yet (the test below keeps that
    // from being committed): this pgwa's text wins.
    let db = sql_api_installed_by(SQL_API_VERSION).await;
    let report = migrate(&db.pool).await.unwrap();
    assert!(report.sql_api_applied, "{report:?}");
    assert_eq!(normalize_jid(&db.pool).await, "5511999998888@s.whatsapp.net");
    assert_eq!(installed(&db.pool).await, (SQL_API_VERSION, sql_api_checksum()));
}

/// `pgwa migrate` on `db`: what it printed, once it succeeded.
fn pgwa_migrate(db: &TestDb) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_pgwa"))
        .arg("migrate")
        .env("PGWA_DATABASE_URL", &db.url)
        .env_remove("DATABASE_URL")
        .env("PGWA_LOG__FILTER", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn the_command_line_says_a_newer_sql_api_is_left() {
    let db = sql_api_installed_by(SQL_API_VERSION + 1).await;
    let out = pgwa_migrate(&db);
    let want = format!(
        "the SQL API (version {}) was installed by a newer pgwa; this one (version {SQL_API_VERSION}) leaves it",
        SQL_API_VERSION + 1
    );
    assert_eq!(out.trim(), want);
    assert_eq!(normalize_jid(&db.pool).await, "another version");
}

/// Every change of sql/ needs a new SQL_API_VERSION, or an older pgwa with the same
/// version would re-apply its text over it (and a newer one would be refused by neither).
#[test]
fn sql_versions_records_the_current_sql_api() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/VERSIONS");
    let text = std::fs::read_to_string(path).unwrap();
    let versions: Vec<(i32, &str)> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (v, c) = l.split_once(' ').unwrap_or_else(|| panic!("sql/VERSIONS: `{l}` is not `version checksum`"));
            (v.parse().unwrap_or_else(|_| panic!("sql/VERSIONS: `{v}` is not a version")), c.trim())
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0].0 < w[1].0), "sql/VERSIONS: versions must increase line by line");
    let current = sql_api_checksum();
    let next = SQL_API_VERSION + 1;
    match versions.last() {
        Some(&(v, c)) if v == SQL_API_VERSION && c == current => {}
        Some(&(v, c)) if v == SQL_API_VERSION => panic!(
            "sql/ changed since version {v} was recorded (checksum {c}, now {current}). Bump SQL_API_VERSION in \
             crates/pg/src/migrate.rs to {next} and add the line `{next} {current}` to sql/VERSIONS"
        ),
        Some(&(v, _)) if v > SQL_API_VERSION => {
            panic!("sql/VERSIONS records version {v}, newer than SQL_API_VERSION {SQL_API_VERSION} in crates/pg/src/migrate.rs")
        }
        _ => panic!("sql/VERSIONS has no line for SQL_API_VERSION {SQL_API_VERSION}: add `{SQL_API_VERSION} {current}` to it"),
    }
}

/// During a rolling deploy a newer pgwa may already have applied a migration this one
/// does not know: this one still starts (every `pgwa run` migrates first), applies
/// nothing and says so, instead of refusing with "migration previously applied but
/// missing".
#[tokio::test]
async fn a_migration_applied_by_a_newer_pgwa_does_not_stop_an_older_one() {
    let db = TestDb::new().await.unwrap();
    sqlx::query(
        "INSERT INTO wa._sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (9999, 'from a newer pgwa', true, '\\x00', 1)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let report = migrate(&db.pool).await.expect("an older pgwa still migrates");
    assert_eq!(report.migrations_newer, vec![9999], "{report:?}");
    assert!(report.migrations_applied.is_empty() && !report.sql_api_applied, "{report:?}");
    let out = pgwa_migrate(&db);
    assert!(out.contains("migrations a newer pgwa applied (9999); this one leaves them"), "{out}");
}
