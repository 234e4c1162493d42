//! Helpers shared by the integration tests: worker processes and in-process workers on
//! a fresh database, and polling with a deadline.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwa::config::Config;
use pgwa::testkit::TestDb;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Config for a worker on `db` with short leases, so takeovers happen in about a second.
pub fn fast_config(db: &TestDb) -> Config {
    let mut cfg = Config::default();
    cfg.database_url = db.url.clone();
    cfg.worker.lease_ttl_ms = 1500;
    cfg.worker.heartbeat_ms = 300;
    cfg.worker.poll_interval_ms = 200;
    cfg.worker.shutdown_timeout_ms = 5000;
    cfg.retry.base_ms = 50;
    cfg.retry.max_ms = 400;
    cfg.db.max_connections = 6;
    cfg.log.filter = "warn".into();
    let _ = tracing_subscriber::fmt().with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into())).with_test_writer().try_init();
    cfg
}

/// A worker running in this process, stopped by `stop()`.
pub struct InProcess {
    pub token: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub id: uuid::Uuid,
}

impl InProcess {
    pub async fn start(cfg: Config) -> Self {
        let pool = pgwa::db::connect(&cfg.database_url, cfg.db.max_connections).await.unwrap();
        let wa = Arc::new(pgwa::wa::simulated::SimulatedWhatsApp::new(cfg.whatsapp.simulated.clone()).unwrap());
        let worker = pgwa::worker::Worker::new(cfg, pool, wa).await.unwrap();
        let id = worker.id();
        let token = CancellationToken::new();
        let handle = tokio::spawn(worker.run(token.clone()));
        Self { token, handle, id }
    }

    pub async fn stop(self) {
        self.token.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

/// A `pgwa run` process configured through the environment.
pub fn spawn_worker(db: &TestDb, extra_env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgwa"));
    cmd.arg("run")
        .arg("--no-migrate")
        .env("PGWA_DATABASE_URL", &db.url)
        .env("PGWA_WORKER__LEASE_TTL_MS", "1500")
        .env("PGWA_WORKER__HEARTBEAT_MS", "300")
        .env("PGWA_WORKER__POLL_INTERVAL_MS", "200")
        .env("PGWA_RETRY__BASE_MS", "50")
        .env("PGWA_RETRY__MAX_MS", "400")
        .env("PGWA_DB__MAX_CONNECTIONS", "6")
        .env("PGWA_LOG__FILTER", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawning pgwa run")
}

/// Polls `check` until it returns Some or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(t.elapsed() < within, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Waits until `n` sessions are connected.
pub async fn wait_connected(pool: &PgPool, n: i64) {
    eventually(Duration::from_secs(15), "sessions to connect", || async {
        (count(pool, "SELECT count(*) FROM wa.sessions WHERE status = 'connected'").await >= n).then_some(())
    })
    .await
}

/// The SQLSTATE of a failed query.
pub fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_else(|| format!("not a database error: {e}"))
}

/// Jobs visible inside a transaction.
pub async fn count_in(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM wa.jobs").fetch_one(&mut **tx).await.unwrap()
}
