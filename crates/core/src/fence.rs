//! The one fence: who may write for a session. Every write and delete of session state,
//! keys, job outcomes and inbox rows carries one and checks it in the same statement
//! (in SQL: `wa._holds`, `wa._unheld` and `wa._may_write`, migrations/0019). It holds
//! while `wa.sessions` says this worker owns the session at this epoch and the lease has
//! not expired: a worker that was paused past its lease writes nothing until its next
//! renewal succeeds, even if nobody has taken the session over yet (docs/security.md).
//! Key writes also stop at a wipe of the session's keys under that epoch
//! (`wa._keys_open`, migrations/0036).

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub worker: Uuid,
    pub session: String,
    pub epoch: i64,
}

impl Fence {
    /// The error a write refused by this fence reports.
    pub fn lost(&self) -> LeaseLost {
        LeaseLost { session: self.session.clone(), worker: self.worker, epoch: self.epoch }
    }
}

/// A fenced write was refused: the session was taken over, released, deleted, or this
/// worker's lease on it expired. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[error(
    "lease lost: session {session} is no longer held by worker {worker} at epoch {epoch} (taken over, released or expired), or its keys were wiped at that epoch; write refused"
)]
pub struct LeaseLost {
    pub session: String,
    pub worker: Uuid,
    pub epoch: i64,
}
