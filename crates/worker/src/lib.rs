//! The worker runtime: holds sessions under leases, claims their jobs, runs them, and
//! writes back what happened. Each concern is one task:
//!
//! * `lease`: heartbeat, renew, claim a fair share of sessions, release on stop;
//! * `dispatch`: promote due jobs, claim batches, run them (per-chat FIFO lanes);
//! * `completer`: record outcomes in batches, fenced by the session epoch;
//! * `listen`: LISTEN for wake-ups (skipped in poll-only mode);
//! * `events`: map what the WhatsApp side reports to statuses and actions;
//! * `schedules`: fire wa.schedules (apalis-cron) as maintenance jobs.

pub mod announcer;
mod completer;
mod dispatch;
mod events;
mod heap_trim;
pub mod http;
pub mod jobs;
mod lease;
mod listen;
pub mod media_store;
pub mod pacing;
mod policy;
pub mod prometheus;
pub mod qr;
mod reconnects;
pub mod schedules;
mod slots;
pub mod webhook_signature;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use pgwa_pg::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use pgwa_core::config::Config;
use pgwa_core::wa::WhatsApp;

pub use completer::Done;
pub use slots::Slots;

/// State shared by the worker's tasks.
pub struct Shared {
    pub id: Uuid,
    /// This worker's row in wa.workers, written again if it was reaped while paused.
    pub registration: pgwa_pg::workers::Registration,
    pub started: std::time::Instant,
    pub pool: PgPool,
    /// Claims and outcomes (see db::queue_pool).
    pub queue: PgPool,
    /// Outcomes and receipts to announce on `wa_outbound`.
    pub announcer: crate::announcer::Announcer,
    pub cfg: Config,
    pub wa: Arc<dyn WhatsApp>,
    /// Where received files go when wa.policy.media_download = 's3' (`[media.s3]`).
    pub media_store: Option<crate::media_store::MediaStore>,
    /// Webhook receivers' HTTP clients, one per host and port (keep-alive across deliveries).
    pub webhook_clients: pgwa_net::Clients,
    pub slots: Slots,
    /// Jobs claimed and not yet recorded.
    pub in_flight: AtomicUsize,
    /// One per claim loop; each loop claims for its own share of the sessions, so claims
    /// (the serial part of the hot path) overlap.
    claimers: Vec<Claimer>,
    pub wake_lease: Notify,
    pub wake_schedules: Notify,
    /// Jobs wa.cancel_job asked us to drop if they have not started.
    pub cancelled: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// When each session last logged a repeated error (see policy::throttle).
    pub log_throttle: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Set when shutdown begins: no new claims, lanes release what they have not started.
    pub stopping: CancellationToken,
    /// Set once running jobs are drained: the lease task releases every session and ends.
    pub release_leases: CancellationToken,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Session ids whose linking state changed (QR, pairing code, status, desired), from
    /// the LISTEN task: connect pages watching a session re-read it at once.
    pub link_changes: tokio::sync::broadcast::Sender<String>,
}

impl Shared {
    pub fn lease_ttl_secs(&self) -> f64 {
        self.cfg.worker.lease_ttl_ms as f64 / 1000.0
    }

    /// Hands an outcome to the completer.
    pub fn finish(&self, done: Done) {
        if self.done_tx.send(done).is_err() {
            tracing::error!("completer is gone; outcome dropped (the job will be recovered after the lease)");
        }
    }

    fn take_cancelled(&self, job: i64) -> bool {
        self.cancelled.lock().map(|mut c| c.remove(&job)).unwrap_or(false)
    }
}

/// Which sessions the next claim should look at. A claim over every held session costs
/// two index probes per session; at low load a NOTIFY names the one session that got a
/// job, and a recorded outcome names the sessions whose chats it may have unblocked, so
/// the claim looks at those only. `all` (polls, retry timers, maintenance, start) makes
/// the next claim look at every session and promote due jobs.
#[derive(Default)]
pub struct Hot {
    pub all: bool,
    pub ids: std::collections::HashSet<String>,
}

struct Claimer {
    wake: Notify,
    hot: std::sync::Mutex<Hot>,
    /// Stopped for lack of room (max_in_flight): the completer wakes it when it frees some.
    blocked: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Which claim loop owns a session.
    pub fn claimer_of(&self, session: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        session.hash(&mut h);
        (h.finish() % self.claimers.len() as u64) as usize
    }

    pub fn claimer_count(&self) -> usize {
        self.claimers.len()
    }

    /// Marks sessions as maybe having work and wakes the loops that own them.
    pub fn mark_hot<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            let c = &self.claimers[self.claimer_of(id)];
            let fresh = c.hot.lock().unwrap_or_else(|p| p.into_inner()).ids.insert(id.to_owned());
            if fresh {
                c.wake.notify_one();
            }
        }
    }

    /// Puts sessions back in their loops' hot sets without waking them (a loop that found
    /// no room keeps its work for when the completer frees some).
    pub(crate) fn keep_hot(&self, ids: &std::collections::HashSet<String>) {
        for id in ids {
            let c = &self.claimers[self.claimer_of(id)];
            c.hot.lock().unwrap_or_else(|p| p.into_inner()).ids.insert(id.clone());
        }
    }

    pub(crate) fn keep_all_hot(&self, claimer: usize) {
        self.claimers[claimer].hot.lock().unwrap_or_else(|p| p.into_inner()).all = true;
    }

    pub(crate) fn set_blocked(&self, claimer: usize) {
        self.claimers[claimer].blocked.store(true, Ordering::SeqCst);
    }

    /// Makes every loop look at all its sessions at its next round, and wakes them.
    pub fn mark_all_hot(&self) {
        for c in &self.claimers {
            c.hot.lock().unwrap_or_else(|p| p.into_inner()).all = true;
            c.wake.notify_one();
        }
    }

    /// Wakes the claim loops that stopped for lack of room.
    pub fn wake_blocked(&self) {
        for c in &self.claimers {
            if c.blocked.swap(false, Ordering::SeqCst) {
                c.wake.notify_one();
            }
        }
    }

    /// The hot sessions of one claim loop; None: look at all of its sessions.
    fn take_hot(&self, claimer: usize) -> Option<std::collections::HashSet<String>> {
        let mut hot = self.claimers[claimer].hot.lock().unwrap_or_else(|p| p.into_inner());
        let taken = std::mem::take(&mut *hot);
        if taken.all { None } else { Some(taken.ids) }
    }

    async fn woken(&self, claimer: usize) {
        self.claimers[claimer].wake.notified().await
    }
}

/// A running worker. `run` returns after a graceful shutdown (token cancelled).
pub struct Worker {
    shared: Arc<Shared>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    http: Option<tokio::net::TcpListener>,
}

impl Worker {
    pub async fn new(cfg: Config, pool: PgPool, wa: Arc<dyn WhatsApp>) -> anyhow::Result<Self> {
        let http = if cfg.http.enabled { Some(crate::http::bind(&cfg.http.listen).await?) } else { None };
        let claimers = cfg.worker.claimers.max(1);
        let id = Uuid::now_v7();
        let registration = pgwa_pg::workers::Registration {
            id,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            max_sessions: cfg.worker.max_sessions,
            backend: wa.backend(),
        };
        let media_store = cfg.media.s3.as_ref().map(crate::media_store::MediaStore::from_config).transpose()?;
        pgwa_pg::workers::register(&pool, &registration).await.context("registering the worker")?;
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let webhook_clients = crate::jobs::webhook::clients(&cfg.webhooks);
        let shared = Arc::new(Shared {
            id,
            registration,
            started: std::time::Instant::now(),
            queue: pgwa_pg::queue_pool(&pool, cfg.worker.poll_only, 1 + claimers),
            announcer: crate::announcer::Announcer::spawn(pool.clone(), crate::announcer::GAP),
            pool,
            cfg,
            wa,
            media_store,
            webhook_clients,
            slots: Slots::default(),
            in_flight: AtomicUsize::new(0),
            claimers: (0..claimers)
                .map(|_| Claimer {
                    wake: Notify::new(),
                    hot: std::sync::Mutex::new(Hot { all: true, ids: Default::default() }),
                    blocked: Default::default(),
                })
                .collect(),
            wake_lease: Notify::new(),
            wake_schedules: Notify::new(),
            cancelled: Default::default(),
            log_throttle: Default::default(),
            stopping: CancellationToken::new(),
            release_leases: CancellationToken::new(),
            link_changes: tokio::sync::broadcast::channel(256).0,
            done_tx,
        });
        Ok(Self { shared, done_rx, http })
    }

    pub fn id(&self) -> Uuid {
        self.shared.id
    }

    /// The address /health and /metrics are served on, if enabled.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs until `shutdown` is cancelled, then stops gracefully: no new claims, running
    /// jobs finish (up to worker.shutdown_timeout_ms), unstarted ones go back to the queue,
    /// leases are released so another worker takes the sessions at once.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Worker { shared, done_rx, http } = self;
        crate::prometheus::handle();
        let listen = http.as_ref().and_then(|l| l.local_addr().ok()).map_or_else(|| "off".to_owned(), |a| a.to_string());
        let http = http.map(|l| tokio::spawn(crate::http::serve(shared.clone(), l)));
        tracing::info!(
            worker = %shared.id,
            http = %listen,
            whatsapp = %shared.cfg.whatsapp.backend.as_str(),
            max_sessions = shared.cfg.worker.max_sessions,
            "worker started (/health and /metrics on http)"
        );
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let completer = tokio::spawn(completer::run(shared.clone(), done_rx));
        let events = tokio::spawn(events::run(shared.clone(), events_rx));
        let listener = (!shared.cfg.worker.poll_only).then(|| tokio::spawn(listen::run(shared.clone())));
        let dispatchers: Vec<_> = (0..shared.claimer_count()).map(|i| tokio::spawn(dispatch::run(shared.clone(), i))).collect();
        let leases = tokio::spawn(lease::run(shared.clone(), events_tx));
        let schedules = tokio::spawn(schedules::run(shared.clone()));
        heap_trim::spawn(Duration::from_secs(shared.cfg.worker.heap_trim_secs), shared.stopping.clone());

        shutdown.cancelled().await;
        tracing::info!(worker = %shared.id, in_flight = shared.in_flight.load(Ordering::SeqCst), "shutting down");
        let _ = pgwa_pg::workers::mark_stopping(&shared.pool, shared.id).await;
        shared.stopping.cancel();
        for d in dispatchers {
            let _ = d.await;
        }
        let _ = schedules.await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(shared.cfg.worker.shutdown_timeout_ms);
        while shared.in_flight.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shared.release_leases.cancel();
        let _ = leases.await;
        if let Some(l) = listener {
            l.abort();
        }
        events.abort();
        if let Some(h) = http {
            let _ = h.await;
        }
        // The lease task released every session; what is still running now is fenced out.
        completer.abort();
        pgwa_pg::workers::deregister(&shared.pool, shared.id).await.context("deregistering the worker")?;
        tracing::info!(worker = %shared.id, "worker stopped");
        Ok(())
    }
}
