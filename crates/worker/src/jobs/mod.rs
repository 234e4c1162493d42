//! The job handlers, one module per kind. Each handler is a type: its arguments (read
//! once from the payload, `pgwa_core::job::args`) and its `run`, which gets a narrow
//! [`JobCtx`] (its job, its session's slot, the pool), not the worker's runtime.

pub mod check_numbers;
pub mod close_session;
pub mod group;
pub mod key_cleanup;
pub mod maintenance;
pub mod mark_read;
pub mod media_download;
pub mod presence;
pub mod reconnect;
pub mod send;
pub mod webhook;

use pgwa_core::config::{RetentionConfig, WebhooksConfig};
use pgwa_core::fence::Fence;
use pgwa_core::job::args::JobArgs;
use pgwa_core::job::{ClaimedJob, JobKind, Outcome};
use pgwa_pg::PgPool;
use uuid::Uuid;

use crate::slots::Slots;

/// What a job handler may touch. A handler cannot claim, lease, wake or release
/// anything: it acts on its session through the slot and writes through the fence.
pub struct JobCtx<'a> {
    pub job: &'a ClaimedJob,
    pub worker: Uuid,
    pub pool: &'a PgPool,
    pub slots: &'a Slots,
    pub retention: &'a RetentionConfig,
    pub webhooks: &'a WebhooksConfig,
    pub webhook_clients: &'a pgwa_net::Clients,
    /// The object store for received files, when this worker has one.
    pub media_store: Option<&'a crate::media_store::MediaStore>,
    /// Wakes the lease task, which releases drained sessions.
    pub wake_lease: &'a tokio::sync::Notify,
}

impl JobCtx<'_> {
    /// The job's session and the epoch it was claimed under; None for session-less
    /// jobs (maintenance, webhook deliveries).
    pub fn session(&self) -> Option<(&str, i64)> {
        Some((self.job.session_id.as_deref()?, self.job.epoch?))
    }

    /// Stops claiming for the session and has it released, keeping the status the
    /// handler wrote, once its running jobs are recorded (a handler that ends the
    /// session's life, like key_cleanup all).
    pub fn end_session(&self, session: &str) {
        self.slots.drain(session, crate::slots::Drain::as_written());
        self.wake_lease.notify_one();
    }

    /// This worker's fence on the job's session at the claim's epoch.
    pub fn fence(&self) -> Option<Fence> {
        let (session, epoch) = self.session()?;
        Some(Fence { worker: self.worker, session: session.to_owned(), epoch })
    }
}

/// One job kind's handler.
pub(crate) trait Handler {
    type Args: JobArgs;
    async fn run(ctx: &JobCtx<'_>, args: Self::Args) -> Outcome;
}

/// Reads the job's arguments and runs its kind's handler; a payload that does not read
/// fails the job for good, with the field named.
///
/// Sends run inline; every other kind's future is boxed. A future is as large as the
/// largest it may await, and the dispatcher copies one per chat lane into its set of
/// running lanes: with the webhook and media handlers inline, that copy was a tenth of
/// the worker's CPU in a burst of sends (BENCHMARKS.md).
pub(crate) async fn run(ctx: &JobCtx<'_>, payload: serde_json::Value) -> Outcome {
    match ctx.job.kind {
        JobKind::Send => handle::<send::Send>(ctx, payload).await,
        JobKind::Reconnect => Box::pin(handle::<reconnect::Reconnect>(ctx, payload)).await,
        JobKind::KeyCleanup => Box::pin(handle::<key_cleanup::KeyCleanup>(ctx, payload)).await,
        JobKind::CloseSession => Box::pin(handle::<close_session::CloseSession>(ctx, payload)).await,
        JobKind::Maintenance => Box::pin(handle::<maintenance::Maintenance>(ctx, payload)).await,
        JobKind::MarkRead => Box::pin(handle::<mark_read::MarkRead>(ctx, payload)).await,
        JobKind::Presence => Box::pin(handle::<presence::Presence>(ctx, payload)).await,
        JobKind::CheckNumbers => Box::pin(handle::<check_numbers::CheckNumbers>(ctx, payload)).await,
        JobKind::MediaDownload => Box::pin(handle::<media_download::MediaDownload>(ctx, payload)).await,
        JobKind::Group => Box::pin(handle::<group::Group>(ctx, payload)).await,
        JobKind::Webhook => Box::pin(handle::<webhook::Webhook>(ctx, payload)).await,
    }
}

/// A failed action on the session's connection, as a job outcome: refused for good,
/// worth another attempt, or back to the queue until the session is connected again.
pub(crate) fn session_error(e: pgwa_core::wa::SendError) -> Outcome {
    use pgwa_core::wa::SendError;
    match e {
        SendError::Permanent(e) => Outcome::fail(e),
        SendError::Retryable(e) => Outcome::retry(e),
        SendError::NotConnected => Outcome::Release,
    }
}

async fn handle<H: Handler>(ctx: &JobCtx<'_>, payload: serde_json::Value) -> Outcome {
    debug_assert_eq!(ctx.job.kind, <H::Args as JobArgs>::KIND);
    match H::Args::from_owned_payload(payload) {
        Ok(args) => H::run(ctx, args).await,
        Err(e) => Outcome::fail(e),
    }
}
