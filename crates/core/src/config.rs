//! Configuration: built-in defaults < `pgwa.toml` < `PGWA_*` environment variables, with
//! `DATABASE_URL` honoured. Every field has a default that works on a machine with a
//! local Postgres and trust auth, so `pgwa run` needs no file at all.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Postgres connection string (postgres:// or postgresql://; TLS with `?sslmode=`).
    /// `migrate` and `run` create the database if it does not exist.
    pub database_url: String,
    pub log: LogConfig,
    pub db: DbConfig,
    pub worker: WorkerConfig,
    pub retry: RetryConfig,
    pub retention: RetentionConfig,
    pub whatsapp: WhatsAppConfig,
    pub http: HttpConfig,
    pub pacing: PacingConfig,
    pub media: MediaConfig,
    pub webhooks: WebhooksConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `pgwa=debug,sqlx=warn`.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbConfig {
    /// Connections in the worker's pool (LISTEN uses one more of its own).
    pub max_connections: u32,
    /// `pgwa run` started while Postgres is unreachable tries again after 0.5 s, then
    /// twice as long each time, up to this long between attempts.
    pub connect_retry_max_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Sessions this worker holds at most; it also takes no more than its fair share.
    pub max_sessions: u32,
    /// How long a session lease lasts without renewal; a dead worker's sessions are
    /// taken over after at most this long.
    pub lease_ttl_ms: u64,
    /// How often leases are renewed and new sessions claimed (well under lease_ttl_ms).
    pub heartbeat_ms: u64,
    /// Jobs claimed per claim statement.
    pub claim_batch: u32,
    /// Jobs claimed and not yet finished, at most, in this worker.
    pub max_in_flight: u32,
    /// Poll for due jobs this often even without a NOTIFY (the fallback).
    pub poll_interval_ms: u64,
    /// Never LISTEN: only poll. For PgBouncer in transaction pooling mode.
    pub poll_only: bool,
    /// On SIGTERM, wait this long for running jobs before releasing them.
    pub shutdown_timeout_ms: u64,
    /// Sessions connected per second at most, so a restart with many sessions does not
    /// reconnect them all at once. 200 brings 1,000 sessions back in about 9 s on 2 cores
    /// (BENCHMARKS.md, bench-sessions), where the logins themselves then set the pace
    /// (about 110 a second there); 100 took 12 s, too close to the 15 s a deploy may take.
    pub connect_per_sec: u32,
    /// How often the worker hands the memory its bursts freed back to the system
    /// (glibc's `malloc_trim`; seconds, 0 = never). See crates/worker/src/heap_trim.rs.
    pub heap_trim_secs: u64,
    /// Claim loops, each over its own share of the sessions, so claims overlap.
    pub claimers: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Backoff before the 2nd attempt; doubles each attempt, with jitter of +-25 %.
    pub base_ms: u64,
    /// Backoff never exceeds this.
    pub max_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Completed jobs other than sends are deleted after this many hours.
    pub completed_hours: u32,
    /// Completed or cancelled sends (the outbound message history) are kept this many days.
    pub sends_days: u32,
    /// Dead jobs are kept this many days for inspection and wa.retry_job.
    pub dead_days: u32,
    /// Rows deleted per statement, so a sweep never holds long locks on hot tables.
    pub batch: u32,
}

/// Outbound pacing per session and per recipient (token buckets).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    pub enabled: bool,
    /// Sustained messages per minute per session (per WhatsApp number).
    pub session_per_minute: u32,
    /// Messages a session may send at once before the sustained rate applies.
    pub session_burst: u32,
    /// Sustained messages per minute to one recipient.
    pub recipient_per_minute: u32,
    pub recipient_burst: u32,
    /// "Type before sending": before a text (or a captioned file) goes out, the chat is
    /// shown "typing..." for this many milliseconds per character, then "paused" (a voice
    /// note shows "recording..." for its length). 0 turns it off.
    pub typing_ms_per_char: u32,
    /// The longest a send types (or records) before it goes out.
    pub typing_max_ms: u32,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_per_minute: 60,
            session_burst: 10,
            recipient_per_minute: 6,
            recipient_burst: 3,
            typing_ms_per_char: 0,
            typing_max_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve /health and /metrics.
    pub enabled: bool,
    /// Address to listen on; port 0 picks a free one.
    pub listen: String,
    /// Bearer token for the QR endpoints (they are off while unset and no tenant token is set).
    pub admin_token: Option<String>,
    /// Per-tenant bearer tokens for the QR endpoints: a tenant's token serves the QR codes
    /// of that tenant's sessions only (`[http.tenant_tokens] acme = "..."`).
    pub tenant_tokens: std::collections::BTreeMap<String, String>,
    /// Connect page: requests a minute from one client address (page, state, events).
    pub connect_requests_per_minute: u32,
    /// Connect page: pairing codes and restarts an hour for one session, after a burst of
    /// 3: each one asks WhatsApp for new codes, and asking too often gets a number refused.
    pub connect_actions_per_hour: u32,
    /// The header a reverse proxy in front sets to the client's address
    /// (`x-forwarded-for`: its last entry; `x-real-ip`). Unset: the socket's address.
    /// Set it only behind a proxy that overwrites the header, or clients choose their own.
    pub client_ip_header: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            admin_token: None,
            tenant_tokens: Default::default(),
            connect_requests_per_minute: 60,
            connect_actions_per_hour: 10,
            client_ip_header: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppConfig {
    /// Which WhatsApp side the worker uses.
    pub backend: Backend,
    pub simulated: SimulatedConfig,
    /// The real WhatsApp side (whatsapp-rust), used when backend = "whatsapp".
    pub rust: RustConfig,
}

crate::pg_enum::pg_enum!(
    /// Which WhatsApp side a worker runs (config `whatsapp.backend`, Postgres
    /// `wa.whatsapp_backend`).
    Backend, "wa.whatsapp_backend", {
        /// WhatsApp Web through whatsapp-rust, keys in Postgres. The default.
        Whatsapp = "whatsapp",
        /// In-process simulation: no network, for tests, trials and benchmarks. Chosen
        /// explicitly only: a message "sent" here reaches nobody.
        Simulated = "simulated",
    }
);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedConfig {
    /// Time from send to server ack.
    pub ack_latency_ms: u64,
    /// Share of sends that fail (0.0 to 1.0), for trials of the retry path.
    pub send_failure_rate: f64,
    /// Time to connect a session.
    pub connect_latency_ms: u64,
    /// Append a line per send to this file (session, message id, job id, worker pid):
    /// lets tests count deliveries across worker processes.
    pub sent_log: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/pgwa".into(),
            log: LogConfig::default(),
            db: DbConfig::default(),
            worker: WorkerConfig::default(),
            retry: RetryConfig::default(),
            retention: RetentionConfig::default(),
            whatsapp: WhatsAppConfig::default(),
            http: HttpConfig::default(),
            pacing: PacingConfig::default(),
            media: MediaConfig::default(),
            webhooks: WebhooksConfig::default(),
        }
    }
}

/// How the worker delivers webhooks (wa.webhooks): to public addresses only unless
/// `allow` lists more, like media fetches, since an app chooses the URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Time for one delivery, from connecting to the receiver's answer (ms).
    pub timeout_ms: u64,
    /// Hosts and address ranges webhooks may be delivered to although they are not
    /// public (a receiver on the same network): CIDRs, addresses or host names,
    /// optionally with a port. Empty: public addresses only.
    pub allow: crate::fetch_policy::FetchAllow,
    /// Deliveries (of different webhooks) a worker takes in one claim at most.
    pub claim_batch: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self { timeout_ms: 10_000, allow: crate::fetch_policy::FetchAllow::default(), claim_batch: 16 }
    }
}

/// Where received files go when wa.policy.media_download says `s3`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// An S3-compatible object store (AWS S3, MinIO, Cloudflare R2, Ceph...).
    pub s3: Option<S3Config>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// The store's URL; unset means AWS S3 in `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "S3Config::default_region")]
    pub region: String,
    /// Unset: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the instance's role).
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Put before every object's key, e.g. `pgwa/`.
    #[serde(default)]
    pub prefix: String,
    /// Allow an http:// endpoint (a store on a private network).
    #[serde(default)]
    pub allow_http: bool,
}

impl S3Config {
    fn default_region() -> String {
        "us-east-1".into()
    }
}

// The secret never reaches a log line, even through a debug print of the config.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, filter: "info,sqlx=warn".into() }
    }
}

impl Default for DbConfig {
    fn default() -> Self {
        Self { max_connections: 10, connect_retry_max_ms: 30_000 }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_sessions: 1000,
            lease_ttl_ms: 20_000,
            heartbeat_ms: 5_000,
            claim_batch: 1000,
            max_in_flight: 5000,
            poll_interval_ms: 1000,
            poll_only: false,
            shutdown_timeout_ms: 20_000,
            connect_per_sec: 200,
            heap_trim_secs: 30,
            claimers: 1,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { base_ms: 1000, max_ms: 3_600_000 }
    }
}

impl RetryConfig {
    /// The delay before a failed job's next attempt: base_ms doubling to max_ms, +-25 %
    /// so that jobs that failed together do not retry together.
    pub fn backoff(&self) -> crate::backoff::Backoff {
        let ms = std::time::Duration::from_millis;
        crate::backoff::Backoff::doubling(ms(self.base_ms), ms(self.max_ms)).with_jitter(0.75, 1.25)
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { completed_hours: 24, sends_days: 30, dead_days: 30, batch: 5000 }
    }
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self { backend: Backend::Whatsapp, simulated: SimulatedConfig::default(), rust: Default::default() }
    }
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        Self { ack_latency_ms: 0, send_failure_rate: 0.0, connect_latency_ms: 0, sent_log: None }
    }
}

/// Configuration of the whatsapp-rust side (config key `whatsapp.rust`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RustConfig {
    /// How long a send waits for the server's ack before it fails as retryable (ms).
    pub ack_timeout_ms: u64,
    /// WebSocket URL of the WhatsApp Web server; None = WhatsApp's own. Tests point it
    /// at a loopback server.
    pub ws_url: Option<String>,
    /// WhatsApp Web version to announce, e.g. [2, 3000, 1023456789]; None = fetched
    /// over HTTPS by whatsapp-rust (refreshed when older than 24 h).
    pub version: Option<(u32, u32, u32)>,
    /// Acknowledge history-sync notifications without processing them (a gateway has
    /// no use for the phone's chat history; it saves memory and time at link).
    pub skip_history_sync: bool,
    /// How often the stats watcher looks for failed connection attempts (ms).
    pub stats_poll_ms: u64,
    /// After the connection has been down this long, `reconnect()` rebuilds the client
    /// instead of leaving it to whatsapp-rust's own backoff (ms).
    pub reconnect_takeover_ms: u64,
    /// Decryption failures from the same peer within this window count once (ms).
    pub decrypt_failure_window_ms: u64,
    /// Attempts to store an inbound message on database errors before the hook fails
    /// (then the server is not acked and redelivers), and the first pause between them
    /// (ms; doubling, at most 2 s or this pause if longer).
    pub inbox_attempts: u32,
    pub inbox_retry_pause_ms: u64,
    /// How long storing an inbound message (its buffered copy, then its inbox row)
    /// waits for a database that stopped answering, e.g. during a Postgres restart
    /// (ms). Past it the message stays unacknowledged: one whose buffered copy was
    /// written is replayed when the session reconnects (it does once the database
    /// answers), one whose buffered copy could not be written may be lost
    /// (whatsapp-rust's documented limit), so keep this longer than a restart takes.
    pub outage_wait_ms: u64,
    /// Largest media file accepted, inline or fetched (bytes).
    pub max_media_bytes: usize,
    /// Time limit for fetching media from a URL, redirects included (ms).
    pub media_fetch_timeout_ms: u64,
    /// Redirects followed at most when fetching media from a URL.
    pub media_fetch_max_redirects: u32,
    /// Hosts and address ranges media may be fetched from although they are not public
    /// (loopback, private, link-local, ...): CIDRs, addresses (optionally with a port)
    /// and host names (optionally with a port). Empty: public addresses only.
    pub media_fetch_allow: crate::fetch_policy::FetchAllow,
    /// How long close() waits for the client to flush and stop before aborting it (ms).
    pub close_grace_ms: u64,
    /// Where sessions' keys live: `postgres` (always, in production), or `memory`,
    /// whatsapp-rust's in-memory store, lost when the worker stops: only loopback builds
    /// accept it, so `pgwa dev bench-messages` can measure what Postgres-backed keys cost.
    pub key_store: KeyStore,
}

/// Where a whatsapp-rust session keeps its keys (`whatsapp.rust.key_store`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStore {
    #[default]
    Postgres,
    Memory,
}

impl Default for RustConfig {
    fn default() -> Self {
        Self {
            ack_timeout_ms: 20_000,
            ws_url: None,
            version: None,
            skip_history_sync: true,
            stats_poll_ms: 1_000,
            reconnect_takeover_ms: 20_000,
            decrypt_failure_window_ms: 60_000,
            inbox_attempts: 5,
            inbox_retry_pause_ms: 200,
            outage_wait_ms: 300_000,
            max_media_bytes: 16 * 1024 * 1024,
            media_fetch_timeout_ms: 30_000,
            media_fetch_max_redirects: 5,
            media_fetch_allow: crate::fetch_policy::FetchAllow::default(),
            close_grace_ms: 10_000,
            key_store: KeyStore::Postgres,
        }
    }
}

#[allow(clippy::result_large_err, reason = "figment's own error, made once at start-up: its size costs nothing")]
impl Config {
    /// Loads defaults, then the TOML file if it exists, then the environment.
    /// Nested keys use `__` in the environment: `PGWA_WORKER__MAX_SESSIONS=200`.
    pub fn load(path: Option<&Path>) -> Result<Self, figment::Error> {
        let explicit = path.is_some();
        let path = path.unwrap_or(Path::new("pgwa.toml"));
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if explicit && !path.exists() {
            return Err(figment::Error::from(format!("config file {} does not exist", path.display())));
        }
        if path.exists() {
            fig = fig.merge(Toml::file_exact(path));
        }
        let config: Config = fig
            .merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database_url".into()))
            // PGWA_CONFIG names the file (the CLI's --config), it is not a setting.
            .merge(Env::prefixed("PGWA_").ignore(&["config"]).split("__"))
            .extract()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), figment::Error> {
        let bad = |key: &str, msg: &str| Err(figment::Error::from(format!("invalid `{key}`: {msg}")));
        let w = &self.worker;
        if w.lease_ttl_ms < 500 {
            return bad("worker.lease_ttl_ms", "must be at least 500");
        }
        if w.heartbeat_ms == 0 || w.heartbeat_ms * 2 > w.lease_ttl_ms {
            return bad("worker.heartbeat_ms", "must be above 0 and at most half of worker.lease_ttl_ms");
        }
        if w.claim_batch == 0 || w.max_in_flight < w.claim_batch {
            return bad("worker.claim_batch", "must be above 0 and at most worker.max_in_flight");
        }
        if w.max_sessions == 0 {
            return bad("worker.max_sessions", "must be above 0");
        }
        if !(1..=8).contains(&w.claimers) {
            return bad("worker.claimers", "must be between 1 and 8");
        }
        if w.connect_per_sec == 0 {
            return bad("worker.connect_per_sec", "must be above 0");
        }
        if w.poll_interval_ms == 0 {
            return bad("worker.poll_interval_ms", "must be above 0");
        }
        if self.retry.base_ms == 0 || self.retry.max_ms < self.retry.base_ms {
            return bad("retry.base_ms", "must be above 0 and at most retry.max_ms");
        }
        if self.retention.batch == 0 {
            return bad("retention.batch", "must be above 0");
        }
        let rate = self.whatsapp.simulated.send_failure_rate;
        if !(0.0..=1.0).contains(&rate) {
            return bad("whatsapp.simulated.send_failure_rate", "must be between 0.0 and 1.0");
        }
        let p = &self.pacing;
        if p.session_per_minute == 0 || p.session_burst == 0 || p.recipient_per_minute == 0 || p.recipient_burst == 0 {
            return bad("pacing", "rates and bursts must be above 0 (set pacing.enabled = false to turn pacing off)");
        }
        if self.db.connect_retry_max_ms < 100 {
            return bad("db.connect_retry_max_ms", "must be at least 100");
        }
        if self.db.max_connections < 4 {
            return bad("db.max_connections", "must be at least 4 (claims, completions, leases, maintenance)");
        }
        // Each claim loop and the completer keep a connection; in poll-only mode they come
        // from this pool, and the leases and maintenance need room beside them.
        if w.poll_only && self.db.max_connections < w.claimers + 3 {
            return bad("db.max_connections", "with worker.poll_only must be at least worker.claimers + 3");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(toml: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgwa.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path)).map_err(|e| e.to_string())
    }

    #[test]
    fn file_values_override_defaults() {
        let cfg = load_with("[worker]\nmax_sessions = 7\n").unwrap();
        assert_eq!(cfg.worker.max_sessions, 7);
        assert_eq!(cfg.worker.claim_batch, WorkerConfig::default().claim_batch);
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_accepted() {
        let e = load_with("[whatsapp]\nbackend = \"telegram\"\n").unwrap_err();
        assert!(e.contains("telegram") && e.contains("simulated") && e.to_lowercase().contains("backend"), "{e}");
        let e = load_with("[worker]\nlease_ttl = 5\n").unwrap_err();
        assert!(e.contains("lease_ttl") && e.contains("lease_ttl_ms"), "{e}");
        let e = load_with("[worker]\nheartbeat_ms = 0\n").unwrap_err();
        assert!(e.contains("worker.heartbeat_ms"), "{e}");
        let e = load_with("[whatsapp.simulated]\nsend_failure_rate = 2.0\n").unwrap_err();
        assert!(e.contains("whatsapp.simulated.send_failure_rate") && e.contains("between 0.0 and 1.0"), "{e}");
        let e = load_with("[worker]\npoll_only = true\nclaimers = 2\n[db]\nmax_connections = 4\n").unwrap_err();
        assert!(e.contains("db.max_connections") && e.contains("worker.claimers + 3"), "{e}");
        assert!(load_with("[worker]\npoll_only = true\nclaimers = 1\n[db]\nmax_connections = 4\n").is_ok());
        let e = load_with("[db]\nconnect_retry_max_ms = 0\n").unwrap_err();
        assert!(e.contains("db.connect_retry_max_ms"), "{e}");
    }

    #[test]
    fn the_default_whatsapp_side_is_the_real_one() {
        assert_eq!(Config::default().whatsapp.backend, Backend::Whatsapp);
        assert_eq!(load_with("").unwrap().whatsapp.backend, Backend::Whatsapp);
    }

    #[test]
    fn an_object_store_is_configured_and_its_secret_never_printed() {
        assert!(Config::default().media.s3.is_none(), "no store unless configured");
        let cfg = load_with(
            "[media.s3]\nbucket = \"files\"\nendpoint = \"http://minio:9000\"\nallow_http = true\nsecret_access_key = \"s3cr3t-value\"\n",
        )
        .unwrap();
        let s3 = cfg.media.s3.as_ref().unwrap();
        assert_eq!((s3.bucket.as_str(), s3.region.as_str(), s3.allow_http), ("files", "us-east-1", true));
        let shown = format!("{cfg:?}");
        assert!(shown.contains("files") && !shown.contains("s3cr3t-value"), "{shown}");
        let e = load_with("[media.s3]\nendpoint = \"http://minio:9000\"\n").unwrap_err();
        assert!(e.contains("bucket"), "a store needs its bucket named: {e}");
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let e = Config::load(Some(Path::new("/nonexistent/pgwa.toml"))).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/pgwa.toml") && e.contains("does not exist"), "{e}");
    }
}
