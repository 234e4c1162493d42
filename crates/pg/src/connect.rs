//! Opening the pool. The URL is checked before any connection; a missing database is
//! created only by the commands that own the schema (`migrate`, `run`); `run` waits for a
//! Postgres that is not up yet; every error names where it looked, without the password,
//! and what to check.

use std::str::FromStr;
use std::time::Duration;

use pgwa_core::backoff::Backoff;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::log_params::{self, ParamLogging};

/// How long one connection attempt may take: a host that drops packets would otherwise
/// hold a command (or one of `run`'s attempts) for the kernel's TCP timeout, minutes.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// `run`'s first wait before trying again; it doubles up to `db.connect_retry_max_ms`.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// What to do when the server answers but the database does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Create it: a fresh machine with a local Postgres needs no manual `createdb`.
    Create,
    /// Refuse: a typo'd name must not leave an empty database behind.
    Refuse,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("database_url: {0}")]
    BadUrl(String),
    #[error("cannot connect to {target}: {reason}; is Postgres running, and are the host and port in database_url right?")]
    Unreachable { target: String, reason: String },
    #[error(
        "database_url has sslmode={mode} but the server at {target} refused TLS; turn on ssl in the server's \
         postgresql.conf, or set sslmode=prefer (TLS when the server offers it) or sslmode=disable"
    )]
    TlsRefused { target: String, mode: &'static str },
    #[error(
        "TLS with {target} failed: {reason}; with sslmode=verify-full or verify-ca the server's certificate must \
         chain to a public root or to the CA given as sslrootcert=/path/to/ca.pem in database_url (managed \
         Postgres services publish theirs), and verify-full also checks the host name"
    )]
    TlsFailed { target: String, reason: String },
    #[error("database '{name}' does not exist; run `pgwa migrate` first (or check the database name in database_url)")]
    NoDatabase { name: String },
    #[error(
        "database '{name}' does not exist and cannot be created through database 'postgres': {reason}; create it \
         (createdb {name}) or let the user of database_url create databases"
    )]
    CannotCreate { name: String, reason: String },
    #[error("cannot connect to {target}: {reason}")]
    Refused { target: String, reason: String },
}

impl ConnectError {
    /// Whether waiting may help: the server is down, starting, restarting or full.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// Refuses anything but a postgres:// or postgresql:// URL, by name and before any
/// connection: sqlx reads any URL's host, port and path as Postgres's, so `mysql://...`
/// used to connect (and create a database) as if it were one.
pub fn check_url(url: &str) -> Result<(), ConnectError> {
    const WANTED: &str = "pgwa needs postgres:// or postgresql:// (e.g. postgres://user:password@host:5432/pgwa)";
    match url::Url::parse(url) {
        Err(_) => Err(ConnectError::BadUrl(format!("the value is not a URL; {WANTED}"))),
        Ok(u) if !matches!(u.scheme(), "postgres" | "postgresql") => {
            let scheme: String = u.scheme().chars().take(20).collect();
            Err(ConnectError::BadUrl(format!("scheme '{scheme}' is not supported; {WANTED}")))
        }
        Ok(_) => Ok(()),
    }
}

/// Opens a pool on `url`, creating the database first if it does not exist.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    Ok(open(url, max_connections, IfMissing::Create).await?)
}

/// Opens a pool on `url`; a missing database is an error that says to run `pgwa migrate`.
pub async fn connect_existing(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    Ok(open(url, max_connections, IfMissing::Refuse).await?)
}

/// Like [`connect`], but while Postgres is unreachable it waits and tries again (capped
/// exponential backoff, a warning per attempt) instead of failing: a worker started with
/// its database (compose, a reboot, a failover) must not need a restart loop. Returns
/// `None` if `shutdown` is cancelled first. Errors waiting cannot fix (a bad URL, a
/// refused password or TLS) are returned at once.
pub async fn connect_waiting(
    url: &str,
    max_connections: u32,
    max_delay: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<PgPool>> {
    let retry = Backoff::doubling(FIRST_RETRY, max_delay);
    for (attempt, delay) in (1u32..).zip(retry.delays()) {
        let result = tokio::select! {
            r = open(url, max_connections, IfMissing::Create) => r,
            _ = shutdown.cancelled() => return Ok(None),
        };
        match result {
            Ok(pool) => {
                if attempt > 1 {
                    tracing::info!(attempt, url = %super::redact(url), "connected to Postgres");
                }
                return Ok(Some(pool));
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(attempt, retry_in_ms = delay.as_millis() as u64, "{e}; retrying");
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
    unreachable!("the attempts never run out")
}

async fn open(url: &str, max_connections: u32, missing: IfMissing) -> Result<PgPool, ConnectError> {
    check_url(url)?;
    let target = super::redact(url);
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| ConnectError::BadUrl(format!("cannot read {target}: {e}")))?
        .application_name("pgwa");
    let opts = plain_on_this_host(url, opts);
    // One plain connection first: it reports the server's own error (a missing database,
    // a refused TLS), where a pool may only report that it timed out.
    let mut conn = match attempt(&opts, &target).await {
        Ok(conn) => conn,
        Err(ConnectError::NoDatabase { name }) if missing == IfMissing::Create => {
            create_database(&opts, &name).await?;
            attempt(&opts, &target).await?
        }
        Err(e) => return Err(e),
    };
    let params = log_params::check(&mut conn).await.map_err(|e| classify(e, &opts, &target))?;
    let _ = conn.close().await;
    let opts = match params {
        ParamLogging::Off | ParamLogging::Exposed { logging: false } => opts,
        ParamLogging::Exposed { logging: true } => {
            log_params::warn_exposed(opts.get_username(), "this user may not turn that off for its connections");
            opts
        }
        // Tried once: a pooler such as PgBouncer refuses startup options it does not know.
        ParamLogging::TurnOff { logging } => match attempt(&log_params::quiet(opts.clone()), &target).await {
            Ok(c) => {
                let _ = c.close().await;
                log_params::quiet(opts)
            }
            Err(e) => {
                if logging {
                    log_params::warn_exposed(opts.get_username(), &format!("turning it off at connection start failed ({e})"));
                }
                opts
            }
        },
    };
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ATTEMPT_TIMEOUT)
        .connect_with(opts.clone())
        .await
        .map_err(|e| classify(e, &opts, &target))
}

/// A Postgres on this host (a loopback address, `localhost` or a Unix socket) is reached
/// without TLS unless the URL or `PGSSLMODE` names an `sslmode`. The bytes never leave
/// the machine, so TLS protects nothing there, and it is costly: with Debian's default
/// `ssl = on`, the default `prefer` encrypted every local connection, and the job
/// queue's drain ran at 23,000 jobs/s instead of 35,000 (BENCHMARKS.md, 2026-11-25).
pub fn plain_on_this_host(url: &str, opts: PgConnectOptions) -> PgConnectOptions {
    let named = std::env::var_os("PGSSLMODE").is_some()
        || url::Url::parse(url).is_ok_and(|u| u.query_pairs().any(|(k, _)| k == "sslmode" || k == "ssl-mode"));
    if named || !(opts.get_socket().is_some() || is_this_host(opts.get_host())) {
        return opts;
    }
    opts.ssl_mode(PgSslMode::Disable)
}

fn is_this_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn attempt(opts: &PgConnectOptions, target: &str) -> Result<PgConnection, ConnectError> {
    match tokio::time::timeout(ATTEMPT_TIMEOUT, PgConnection::connect_with(opts)).await {
        Ok(r) => r.map_err(|e| classify(e, opts, target)),
        Err(_) => Err(ConnectError::Unreachable {
            target: target.to_owned(),
            reason: format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
        }),
    }
}

fn classify(e: sqlx::Error, opts: &PgConnectOptions, target: &str) -> ConnectError {
    let target = target.to_owned();
    let reason = e.to_string();
    match &e {
        // sqlx reports a failed handshake (an untrusted certificate, a wrong host name)
        // as the I/O error rustls gives; waiting would not fix it.
        sqlx::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            ConnectError::TlsFailed { target, reason }
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => ConnectError::Unreachable { target, reason },
        sqlx::Error::Tls(t) if t.to_string().contains("does not support TLS") => {
            ConnectError::TlsRefused { target, mode: ssl_mode_name(opts.get_ssl_mode()) }
        }
        sqlx::Error::Tls(_) => ConnectError::TlsFailed { target, reason },
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("3D000") => ConnectError::NoDatabase { name: database_name(opts) },
            // Starting up or shutting down (57P03, 57P01, 57P02), full (53300), or the
            // connection broke (08xxx): all pass with time.
            Some(c) if c.starts_with("57P") || c.starts_with("08") || c == "53300" => {
                ConnectError::Unreachable { target, reason }
            }
            _ => ConnectError::Refused { target, reason },
        },
        _ => ConnectError::Refused { target, reason },
    }
}

/// The database a connection goes to: the URL's, else Postgres's default, the user name.
fn database_name(opts: &PgConnectOptions) -> String {
    let name = opts.get_database().unwrap_or(opts.get_username());
    name.chars().take(63).collect()
}

fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

async fn create_database(opts: &PgConnectOptions, name: &str) -> Result<(), ConnectError> {
    let cannot = |reason: String| ConnectError::CannotCreate { name: name.to_owned(), reason };
    let mut admin = opts.clone().database("postgres").connect().await.map_err(|e| cannot(e.to_string()))?;
    let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await {
        Ok(_) => tracing::info!(database = %name, "created database"),
        // Another worker created it between our connection attempt and our CREATE.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P04") => {}
        Err(e) => return Err(cannot(e.to_string())),
    }
    let _ = admin.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> PgSslMode {
        plain_on_this_host(url, PgConnectOptions::from_str(url).unwrap()).get_ssl_mode()
    }

    #[test]
    fn this_host_is_reached_without_tls_unless_a_mode_is_named() {
        // PGSSLMODE in the test's environment would make every case below "named".
        if std::env::var_os("PGSSLMODE").is_some() {
            return;
        }
        for url in [
            "postgres://u@127.0.0.1:5432/pgwa",
            "postgres://u@127.8.0.1/pgwa",
            "postgres://u@localhost/pgwa",
            "postgres://u@[::1]:5432/pgwa",
            "postgres://u@db.example.com/pgwa?host=/var/run/postgresql",
        ] {
            assert!(matches!(mode(url), PgSslMode::Disable), "{url}");
        }
        assert!(matches!(mode("postgres://u@127.0.0.1/pgwa?sslmode=require"), PgSslMode::Require));
        assert!(matches!(mode("postgres://u@localhost/pgwa?sslmode=prefer"), PgSslMode::Prefer));
        assert!(matches!(mode("postgres://u@db.example.com/pgwa"), PgSslMode::Prefer), "other hosts keep libpq's default");
        assert!(matches!(mode("postgres://u@10.0.0.5/pgwa"), PgSslMode::Prefer));
    }
}
