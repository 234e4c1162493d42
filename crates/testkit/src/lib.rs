//! Fresh, migrated databases for tests and benchmarks, on the real Postgres.
//!
//! The first call in a process migrates a template database (named after a hash of the
//! migrations and the SQL API, so a schema change gets a new template); every call then
//! clones it with `CREATE DATABASE ... TEMPLATE`, which takes milliseconds. Databases left
//! behind by earlier runs are dropped when they are more than an hour old.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, PgConnection, PgPool};
use tokio::sync::OnceCell;

/// Server used by tests: `PGWA_TEST_SERVER` or the local trust-auth Postgres.
pub fn server_url() -> String {
    std::env::var("PGWA_TEST_SERVER").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of its own, migrated, with a pool on it.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

impl TestDb {
    /// A new database cloned from the migrated template.
    pub async fn new() -> anyhow::Result<Self> {
        Self::with_pool_size(8).await
    }

    pub async fn with_pool_size(max_connections: u32) -> anyhow::Result<Self> {
        let template = TEMPLATE.get_or_try_init(|| make_template(server_url())).await?;
        Self::create(server_url(), template, max_connections).await
    }

    /// A new database on `server` (a URL without a database, like `server_url()`), from a
    /// template migrated there: for tests that run a Postgres of their own.
    pub async fn on_server(server: &str) -> anyhow::Result<Self> {
        let template = make_template(server.to_owned()).await?;
        Self::create(server.to_owned(), &template, 8).await
    }

    async fn create(server: String, template: &str, max_connections: u32) -> anyhow::Result<Self> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let name = format!("pgwa_t_{secs}_{}", uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap_or("0"));
        let mut admin = admin_conn(&server).await?;
        // CREATE DATABASE ... TEMPLATE fails while another session is connected to the
        // template; templates are only connected to while being built, so retry briefly.
        let mut tries = 0;
        loop {
            let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
            match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await {
                Ok(_) => break,
                Err(e) if tries < 50 => {
                    tries += 1;
                    tracing::debug!(error = %e, "template busy, retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("creating test database"),
            }
        }
        let url = format!("{server}/{name}");
        // As pgwa connects: no TLS to a server on this host unless the URL asks for it.
        let opts = pgwa_pg::plain_on_this_host(&url, PgConnectOptions::from_str(&url)?);
        let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(opts).await?;
        // The built-in maintenance schedules would add jobs to whatever test happens to run
        // across a tick (every 10 minutes); tests that exercise schedules add their own.
        sqlx::query("UPDATE wa.schedules SET enabled = false").execute(&pool).await?;
        Ok(Self { name, url, pool })
    }

    /// Drops the database now (tests that care about leftovers call it at the end).
    pub async fn drop_now(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut admin = admin_conn(self.url.rsplit_once('/').map_or("", |(server, _)| server)).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)))
            .execute(&mut admin)
            .await?;
        Ok(())
    }
}

async fn admin_conn(server: &str) -> anyhow::Result<PgConnection> {
    let opts = PgConnectOptions::from_str(&format!("{server}/postgres"))?;
    opts.connect().await.context("connecting to the test Postgres server; is it running?")
}

fn schema_hash() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for m in sqlx::migrate!("../../migrations").iter() {
        h.update(m.version.to_le_bytes());
        h.update(m.sql.as_str());
    }
    h.update(pgwa_pg::migrate::sql_api_checksum());
    // The version too: bumping it alone (sql/ unchanged) must not reuse a template whose
    // installed API carries the old number, which migrate would then re-apply.
    h.update(pgwa_pg::migrate::SQL_API_VERSION.to_le_bytes());
    format!("{:x}", h.finalize())[..12].to_string()
}

async fn make_template(server: String) -> anyhow::Result<String> {
    let name = format!("pgwa_tmpl_{}", schema_hash());
    let mut admin = admin_conn(&server).await?;
    // One builder at a time across test processes.
    sqlx::query("SELECT pg_advisory_lock(hashtext('pgwa.testkit.template'))").execute(&mut admin).await?;
    let result = async {
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
        if !exists {
            let building = format!("{name}_build");
            sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")))
                .execute(&mut admin)
                .await?;
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{building}\""))).execute(&mut admin).await?;
            let pool = PgPoolOptions::new().max_connections(1).connect(&format!("{server}/{building}")).await?;
            pgwa_pg::migrate::migrate(&pool).await?;
            pool.close().await;
            sqlx::raw_sql(AssertSqlSafe(format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"")))
                .execute(&mut admin)
                .await?;
        }
        drop_stale(&mut admin).await?;
        anyhow::Ok(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('pgwa.testkit.template'))").execute(&mut admin).await?;
    result.map(|_| name)
}

/// Drops test databases older than an hour (the timestamp is in their name).
async fn drop_stale(admin: &mut PgConnection) -> anyhow::Result<()> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'pgwa\\_t\\_%'").fetch_all(&mut *admin).await?;
    for name in names {
        let secs = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if secs.is_some_and(|s| s + 3600 < now) {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                .execute(&mut *admin)
                .await;
        }
    }
    Ok(())
}

/// Registers a worker (a row in wa.workers, as a starting worker writes it) and returns
/// its id, for tests that take sessions over by hand.
pub async fn worker_row(pool: &PgPool) -> sqlx::Result<uuid::Uuid> {
    let id = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO wa.workers (id, host, pid, version, max_sessions) VALUES ($1, 'test', 1, 'test', 100)")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(id)
}

/// Adds `session` (not started) and gives it to `owner` at a new epoch, as a lease
/// would: the fence the owner's writes carry.
pub async fn held_by(pool: &PgPool, session: &str, owner: uuid::Uuid) -> sqlx::Result<pgwa_core::fence::Fence> {
    sqlx::query("SELECT wa.add_session($1, start => false)").bind(session).execute(pool).await?;
    take_over(pool, session, owner).await
}

/// Gives `session` to `owner` at a new epoch: the fence of the previous holder no longer
/// holds.
pub async fn take_over(pool: &PgPool, session: &str, owner: uuid::Uuid) -> sqlx::Result<pgwa_core::fence::Fence> {
    let epoch = sqlx::query_scalar(
        "UPDATE wa.sessions SET owner_id = $2, epoch = epoch + 1, lease_expires_at = now() + interval '1 hour' WHERE id = $1 RETURNING epoch",
    )
    .bind(session)
    .bind(owner)
    .fetch_one(pool)
    .await?;
    Ok(pgwa_core::fence::Fence { worker: owner, session: session.into(), epoch })
}

/// The rows of `session` in the key table `wa.<table>`.
pub async fn session_rows(pool: &PgPool, table: &str, session: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM wa.{table} WHERE session_id = $1")))
        .bind(session)
        .fetch_one(pool)
        .await
}

/// Cuts the connections to this test's database whose last statement matches the LIKE
/// pattern `last_query` (as a Postgres restart or a dropped link would), waits until they
/// are gone, and returns how many there were.
pub async fn cut_connections(pool: &PgPool, last_query: &str) -> sqlx::Result<i64> {
    let mine = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE $1";
    let cut: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(pg_terminate_backend(pid)) {mine}")))
        .bind(last_query)
        .fetch_one(pool)
        .await?;
    for _ in 0..500 {
        let left: i64 =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) {mine}"))).bind(last_query).fetch_one(pool).await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(cut)
}
