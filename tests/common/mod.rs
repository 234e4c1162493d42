//! Helpers shared by the integration tests: worker processes and in-process workers on
//! a fresh database, and polling with a deadline.
#![allow(dead_code)]

pub mod browser;
pub mod ecosystem;
pub mod loopback;
pub mod media_files;
pub mod pg_instance;
pub mod roles;
pub mod s3;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwa_core::config::Config;
use pgwa_testkit::TestDb;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Config for a worker on `db` with short leases, so takeovers happen in about a second,
/// on the simulated WhatsApp side (the default is the real one).
pub fn fast_config(db: &TestDb) -> Config {
    let mut cfg = Config::default();
    cfg.whatsapp.backend = pgwa_core::config::Backend::Simulated;
    cfg.database_url = db.url.clone();
    cfg.worker.lease_ttl_ms = 1500;
    cfg.worker.heartbeat_ms = 300;
    cfg.worker.poll_interval_ms = 200;
    cfg.worker.shutdown_timeout_ms = 5000;
    cfg.retry.base_ms = 50;
    cfg.retry.max_ms = 400;
    cfg.db.max_connections = 6;
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.pacing.enabled = false;
    cfg.worker.connect_per_sec = 1000;
    cfg.worker.claimers = 2;
    cfg.log.filter = "warn".into();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    cfg
}

/// A worker running in this process, stopped by `stop()`.
pub struct InProcess {
    pub token: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub id: uuid::Uuid,
    /// Where /health and /metrics are served.
    pub http: Option<std::net::SocketAddr>,
}

impl InProcess {
    pub async fn start(cfg: Config) -> Self {
        let pool = pgwa_pg::connect(&cfg.database_url, cfg.db.max_connections).await.unwrap();
        let wa = Arc::new(pgwa_wa::simulated::SimulatedWhatsApp::new(cfg.whatsapp.simulated.clone()).unwrap());
        let worker = pgwa_worker::Worker::new(cfg, pool, wa).await.unwrap();
        let id = worker.id();
        let http = worker.http_addr();
        let token = CancellationToken::new();
        let handle = tokio::spawn(worker.run(token.clone()));
        Self { token, handle, id, http }
    }

    pub async fn stop(self) {
        self.token.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

/// A `pgwa run` process configured through the environment, on the simulated WhatsApp
/// side unless `extra_env` picks another.
pub fn spawn_worker(db: &TestDb, extra_env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgwa"));
    cmd.arg("run")
        .arg("--no-migrate")
        .env("PGWA_WHATSAPP__BACKEND", "simulated")
        .env("PGWA_DATABASE_URL", &db.url)
        .env("PGWA_WORKER__LEASE_TTL_MS", "1500")
        .env("PGWA_WORKER__HEARTBEAT_MS", "300")
        .env("PGWA_WORKER__POLL_INTERVAL_MS", "200")
        .env("PGWA_RETRY__BASE_MS", "50")
        .env("PGWA_RETRY__MAX_MS", "400")
        .env("PGWA_DB__MAX_CONNECTIONS", "6")
        .env("PGWA_LOG__FILTER", "warn")
        .env("PGWA_HTTP__LISTEN", "127.0.0.1:0")
        .env("PGWA_PACING__ENABLED", "false")
        .env("PGWA_WORKER__CONNECT_PER_SEC", "1000")
        .env("PGWA_WORKER__CLAIMERS", "2")
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

/// Runs `sql` expecting an error; returns (SQLSTATE, message).
pub async fn fails(pool: &PgPool, sql: &str) -> (String, String) {
    let e = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await.expect_err(sql);
    let msg = e.as_database_error().map(|d| d.message().to_owned()).unwrap_or_default();
    (sqlstate(&e), msg)
}

/// Runs each `(sql, sqlstate, argument)`: each fails with that SQLSTATE and a message
/// that starts with the argument's name, and no job is inserted by any of them.
pub async fn refused_by_name(pool: &PgPool, cases: &[(&str, &str, &str)]) {
    let before = jobs(pool).await;
    for (sql, code, arg) in cases {
        let (got, msg) = fails(pool, sql).await;
        assert_eq!(&got, code, "{sql}: {msg}");
        assert!(msg.starts_with(&format!("{arg}:")), "{sql}: the message names {arg}: {msg}");
    }
    assert_eq!(jobs(pool).await, before, "nothing was inserted");
}

/// Answers the session's number check as a worker would, once it is queued: one
/// number on WhatsApp (`on`, with LID 100000001@lid), one not (`off`), the job
/// completed, then the announcement on wa_contacts. Returns the job id. For tests of
/// what waits for the answer (the CLI, the client examples), which run no worker.
pub async fn answer_number_check(pool: &PgPool, session: &str, on: &str, off: &str) -> i64 {
    let job: i64 = eventually(Duration::from_secs(30), "the check_numbers job", || async {
        sqlx::query_scalar("SELECT id FROM wa.jobs WHERE kind = 'check_numbers' AND state = 'available'")
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    sqlx::query(
        "INSERT INTO wa.contacts (session_id, phone, jid, lid, on_whatsapp, is_business, checked_at)
         VALUES ($1, $2, $2 || '@s.whatsapp.net', '100000001@lid', true, false, now()),
                ($1, $3, NULL, NULL, false, false, now())",
    )
    .bind(session)
    .bind(on)
    .bind(off)
    .execute(pool)
    .await
    .unwrap();
    complete_as_worker(pool, job, serde_json::json!({"checked": 2, "on_whatsapp": 1, "unanswered": []})).await;
    sqlx::query("SELECT pg_notify('wa_contacts', json_build_object('session', $1::text, 'job', $2::bigint, 'checked', 2)::text)")
        .bind(session)
        .bind(job)
        .execute(pool)
        .await
        .unwrap();
    job
}

/// Moves a queued job through running to completed with `result`, as a worker would.
pub async fn complete_as_worker(pool: &PgPool, job: i64, result: serde_json::Value) {
    sqlx::query("UPDATE wa.jobs SET state = 'running', attempts = 1, worker_id = gen_random_uuid() WHERE id = $1")
        .bind(job)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE wa.jobs SET state = 'completed', finished_at = now(), result = $2 WHERE id = $1")
        .bind(job)
        .bind(result)
        .execute(pool)
        .await
        .unwrap();
}

/// Answers the session's queued create_group as a worker would: the group in wa.groups
/// (its creator `me` as superadmin, then the payload's participants), the job completed
/// with the group's JID. Returns the JID. For tests of what waits for the answer (the
/// CLI, the client examples), which run no worker.
pub async fn answer_group_create(pool: &PgPool, session: &str, me: &str) -> String {
    let job: i64 = eventually(Duration::from_secs(30), "the create_group job", || async {
        sqlx::query_scalar(
            "SELECT id FROM wa.jobs WHERE session_id = $1 AND kind = 'group' AND payload->>'action' = 'create' AND state = 'available'",
        )
        .bind(session)
        .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    let jid = "120363000000000042@g.us";
    sqlx::query(
        "INSERT INTO wa.groups (session_id, jid, subject, participants, creator, created_at)
         SELECT j.session_id, $2, j.payload->>'subject',
                jsonb_build_array(jsonb_build_object('jid', $3 || '@s.whatsapp.net', 'phone', $3, 'admin', 'superadmin'))
                || coalesce((SELECT jsonb_agg(jsonb_build_object('jid', p || '@s.whatsapp.net', 'phone', p, 'admin', NULL))
                               FROM jsonb_array_elements_text(j.payload->'participants') p), '[]'),
                $3 || '@s.whatsapp.net', now()
           FROM wa.jobs j WHERE j.id = $1",
    )
    .bind(job)
    .bind(jid)
    .bind(me)
    .execute(pool)
    .await
    .unwrap();
    complete_as_worker(pool, job, serde_json::json!({"group": jid, "participants": 3})).await;
    jid.to_string()
}

/// Session `s1`, added and held by a fresh worker: its fence.
pub async fn held_s1(db: &pgwa_testkit::TestDb) -> pgwa_core::fence::Fence {
    use pgwa_pg::{leases, workers};
    let worker = uuid::Uuid::now_v7();
    workers::register(&db.pool, &workers::Registration::new(worker, "test", 10)).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let held = leases::claim(&db.pool, worker, 60.0, 10).await.unwrap();
    pgwa_core::fence::Fence { worker, session: "s1".into(), epoch: held[0].epoch }
}

/// Every job in the database.
pub async fn jobs(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM wa.jobs").await
}

/// Jobs visible inside a transaction.
pub async fn count_in(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM wa.jobs").fetch_one(&mut **tx).await.unwrap()
}

/// A plain HTTP/1.1 GET: (status code, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

/// A send of `session` left dead, its attempts spent, the last failed by `error` (as the
/// owner, who may write any state).
pub async fn dead_send(pool: &PgPool, session: &str, error: &str) -> i64 {
    let id: i64 = sqlx::query_scalar("SELECT job_id FROM wa.send_text($1, '+15550000001', 'x')")
        .bind(session)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE wa.jobs SET state = 'dead', finished_at = now(), attempts = max_attempts, delivery = 'failed',
                errors = jsonb_build_array(jsonb_build_object('attempt', 1, 'error', 'first try'),
                                           jsonb_build_object('attempt', 2, 'error', $2::text))
          WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await
    .unwrap();
    id
}
