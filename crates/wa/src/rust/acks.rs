//! Send completion on the server's ack. whatsapp-rust resolves a send once the stanza is
//! written to the socket, and resolves a nacked send as `Ok` too, so a send is only done
//! when `Event::ServerAck` for its message id arrives. A waiter is registered *before*
//! the send call, because the ack can beat the send future back.
//!
//! Outcomes: ack without error -> `SendAck`; nack with a code -> `Permanent` keeping the
//! code, except 5xx and 429 (the server is busy or throttling; the same message id makes
//! a retry safe) -> `Retryable`; no ack within the timeout, or the connection dropped
//! (its acks never come) -> `Retryable`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use pgwa_core::wa::{SendAck, SendError};

/// What the server said about one outbound stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct AckOutcome {
    /// The nack code (e.g. "479", "463"); None for a plain ack.
    pub error: Option<String>,
    /// The server's timestamp of the message, when the ack carried one.
    pub at: Option<DateTime<Utc>>,
}

type Map = HashMap<String, oneshot::Sender<AckOutcome>>;

/// Pending sends of one session, keyed by message id.
#[derive(Clone, Default)]
pub struct AckWaiters {
    inner: Arc<Mutex<Map>>,
}

/// A registered waiter; dropping it unregisters the id.
pub struct AckWait {
    id: String,
    rx: oneshot::Receiver<AckOutcome>,
    owner: AckWaiters,
}

impl AckWaiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers interest in the ack of `message_id`. A second registration for the same
    /// id (a retry while the first attempt still waits) replaces the first, whose waiter
    /// then fails as retryable.
    pub fn register(&self, message_id: &str) -> AckWait {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(message_id.to_owned(), tx);
        AckWait { id: message_id.to_owned(), rx, owner: self.clone() }
    }

    /// Delivers a server ack; returns whether someone was waiting for it.
    pub fn resolve(&self, message_id: &str, outcome: AckOutcome) -> bool {
        match self.lock().remove(message_id) {
            Some(tx) => tx.send(outcome).is_ok(),
            None => false,
        }
    }

    /// The connection dropped: acks for what was in flight will never come. Every
    /// waiter fails at once as retryable instead of sitting out its timeout.
    pub fn fail_all(&self) -> usize {
        let mut map = self.lock();
        let n = map.len();
        map.clear();
        n
    }

    /// Sends still waiting for an ack.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for AckWait {
    fn drop(&mut self) {
        // Closing our receiver first makes our sender report closed, so only our own
        // entry is removed: a newer registration for the same id stays.
        self.rx.close();
        let mut map = self.owner.lock();
        if map.get(&self.id).is_some_and(|tx| tx.is_closed()) {
            map.remove(&self.id);
        }
    }
}

impl AckWait {
    pub fn message_id(&self) -> &str {
        &self.id
    }

    /// Waits for the ack and turns it into the send's result.
    pub async fn wait(mut self, timeout: Duration) -> Result<SendAck, SendError> {
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(outcome)) => outcome_to_result(&self.id, outcome),
            Ok(Err(_)) => {
                Err(SendError::Retryable(format!("the connection dropped before the server acknowledged message {}", self.id)))
            }
            Err(_) => {
                Err(SendError::Retryable(format!("no server ack for message {} within {} ms", self.id, timeout.as_millis())))
            }
        }
    }
}

/// Ack -> `SendAck`; nack -> an error that keeps the server's code, with what it means
/// where WhatsApp's meaning is known.
pub fn outcome_to_result(message_id: &str, outcome: AckOutcome) -> Result<SendAck, SendError> {
    match outcome.error {
        None => Ok(SendAck { message_id: message_id.to_owned(), at: outcome.at.unwrap_or_else(Utc::now) }),
        Some(code) => {
            let busy = code == "429" || code.starts_with('5');
            let mut text = format!("the server refused message {message_id}: nack {code}");
            if let Some(meaning) = nack_meaning(&code) {
                text = format!("{text} ({meaning})");
            }
            Err(if busy { SendError::Retryable(text) } else { SendError::Permanent(text) })
        }
    }
}

/// What a nack code tells the operator to do. 463: WhatsApp wants a trusted-contact
/// (privacy) token this account does not hold for the recipient, which it gets only once
/// the recipient has written to it; retrying the same message cannot succeed.
fn nack_meaning(code: &str) -> Option<&'static str> {
    Some(match code {
        "463" => {
            "missing trusted-contact token: WhatsApp accepts messages to this recipient only after they have written to \
             this number, or the number is not on WhatsApp; check it, and wait for the recipient to write first"
        }
        "429" => "rate limited by WhatsApp; the send is retried later",
        _ => return None,
    })
}
