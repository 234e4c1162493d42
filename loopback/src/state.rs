//! Server-wide state shared by connections and the admin endpoint. One lock,
//! never held across an await: handlers take it, decide, and queue nodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc;
use wacore::libsignal::protocol::KeyPair;
use wacore_binary::Node;

use crate::accounts::{Directory, SignalKeys};
use crate::noise::ServerKeys;

/// What a connection task is asked to write.
#[derive(Debug)]
pub enum Outbound {
    Node(Node),
    /// Write nothing more and close the socket.
    Close,
}

pub type ConnTx = mpsc::UnboundedSender<Outbound>;

/// A live socket of a registered device.
pub struct OnlineConn {
    pub conn_id: u64,
    pub tx: ConnTx,
}

/// An unpaired client waiting to be linked, keyed by its noise static (which
/// the QR carries).
pub struct PendingLink {
    pub conn_id: u64,
    pub tx: ConnTx,
    pub refs: Vec<String>,
    pub keys: SignalKeys,
    pub push_name: String,
    /// Set once pair-success went out: (iq id, phone, device id).
    pub sent_success: Option<(String, String, u16)>,
    /// Set when the client asked to link by pair code instead of QR.
    pub code_flow: Option<CodeFlow>,
}

/// A pair-code link in progress (the companion's side runs in the client).
pub struct CodeFlow {
    pub phone: String,
    pub pairing_ref: Vec<u8>,
    pub wrapped_companion_ephemeral: Vec<u8>,
    /// After the code was entered: the phone's ephemeral and the companion's.
    pub ephemerals: Option<(KeyPair, [u8; 32])>,
}

#[derive(Default)]
pub struct Inner {
    pub dir: Directory,
    pub online: HashMap<(String, u16), OnlineConn>,
    pub pending: HashMap<[u8; 32], PendingLink>,
    /// Stanzas for devices that were offline, delivered after their next login.
    pub offline: HashMap<(String, u16), Vec<Node>>,
    /// Fault injection: message ids to refuse with a nack code instead of relaying.
    pub nacks: HashMap<String, String>,
    /// Every message relayed to another account, in relay order: tests count how often
    /// an id crossed the wire, which a deduplicating recipient cannot show.
    pub relayed: Vec<Relayed>,
    /// Messages written to a connection and not yet acknowledged by it (a receipt or a
    /// message ack), by connection id. A connection that ends gives them back to the
    /// offline queue, as WhatsApp redelivers what a client never acknowledged: this is
    /// what whatsapp-rust's inbound durability hook relies on.
    pub unacked: HashMap<u64, Vec<(String, Node)>>,
    /// Fault injection (`/admin/slow`): the delay before each client message is relayed
    /// and acked, and the messages held back (`crate::relay`).
    pub slow: crate::relay::Slow,
    /// What devices answered about calls (`crate::calls`), in order.
    pub call_signals: Vec<crate::calls::CallSignal>,
    /// Groups and their members (`crate::groups`).
    pub groups: crate::groups::Groups,
    /// Who knows whom, for device-list notifications (`crate::contacts`).
    pub contacts: crate::contacts::Contacts,
}

/// One message stanza relayed from one account to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relayed {
    /// The sender's connection: a resend on the same connection is a bug, one on a later
    /// connection is a takeover.
    pub conn_id: u64,
    pub from_phone: String,
    pub to_phone: String,
    pub id: String,
}

/// Counters tests use to see which protocol paths ran.
#[derive(Default)]
pub struct Stats {
    pub xx_handshakes: AtomicU64,
    pub ik_handshakes: AtomicU64,
    pub xx_fallback_handshakes: AtomicU64,
    pub logins: AtomicU64,
    pub refused_logins: AtomicU64,
}

pub struct Shared {
    pub keys: ServerKeys,
    pub stats: Stats,
    /// Uploaded media and the media auth token (`crate::media`).
    pub media: crate::media::MediaStore,
    inner: Mutex<Inner>,
    counter: AtomicU64,
}

impl Shared {
    pub fn new(keys: ServerKeys) -> Self {
        Self {
            keys,
            stats: Stats::default(),
            media: crate::media::MediaStore::default(),
            inner: Mutex::new(Inner::default()),
            counter: AtomicU64::new(1),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler must not take the whole server down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// A server stanza id; unique for the server's life.
    pub fn stanza_id(&self, prefix: &str) -> String {
        format!("{prefix}.{}", self.next_id())
    }
}

impl Inner {
    /// Delivers a message stanza like [`Inner::deliver`], and keeps it until the device
    /// acknowledges it.
    pub fn deliver_message(&mut self, phone: &str, device: u16, id: &str, node: Node) {
        if let Some(conn_id) = self.deliver(phone, device, node.clone()) {
            self.unacked.entry(conn_id).or_default().push((id.to_string(), node));
        }
    }

    /// The device acknowledged these message ids on connection `conn_id`.
    pub fn acked(&mut self, conn_id: u64, ids: &[String]) {
        if let Some(pending) = self.unacked.get_mut(&conn_id) {
            pending.retain(|(id, _)| !ids.contains(id));
        }
    }

    /// Connection `conn_id` of `phone:device` ended: what it never acknowledged goes
    /// back in front of the device's offline queue (or to its new connection).
    pub fn requeue_unacked(&mut self, conn_id: u64, phone: &str, device: u16) {
        let Some(pending) = self.unacked.remove(&conn_id) else { return };
        if pending.is_empty() {
            return;
        }
        tracing::debug!(conn_id, phone, device, count = pending.len(), "requeueing unacknowledged messages");
        let key = (phone.to_string(), device);
        if self.online.contains_key(&key) {
            for (id, node) in pending {
                self.deliver_message(phone, device, &id, node);
            }
        } else {
            let queue = self.offline.entry(key).or_default();
            queue.splice(0..0, pending.into_iter().map(|(_, node)| node));
        }
    }

    /// Delivers to a device now (returns the connection it went to), or keeps it for
    /// the device's next login.
    pub fn deliver(&mut self, phone: &str, device: u16, node: Node) -> Option<u64> {
        let key = (phone.to_string(), device);
        if let Some(conn) = self.online.get(&key)
            && conn.tx.send(Outbound::Node(node.clone())).is_ok()
        {
            return Some(conn.conn_id);
        }
        self.offline.entry(key).or_default().push(node);
        None
    }
}

#[cfg(test)]
mod tests {
    use wacore_binary::builder::NodeBuilder;

    use super::*;

    fn message(id: &str) -> Node {
        NodeBuilder::new("message").attr("id", id).build()
    }

    fn ids(nodes: &[Node]) -> Vec<String> {
        nodes.iter().filter_map(|n| crate::nodes::attr_string(n, "id")).collect()
    }

    #[test]
    fn what_a_connection_never_acknowledged_is_redelivered_first() {
        let mut inner = Inner::default();
        let key = ("1555".to_string(), 1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        inner.online.insert(key.clone(), OnlineConn { conn_id: 7, tx });
        inner.deliver_message("1555", 1, "M1", message("M1"));
        inner.deliver_message("1555", 1, "M2", message("M2"));
        inner.deliver_message("1555", 1, "M3", message("M3"));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Node(_))), "written to the live connection");
        inner.acked(7, &["M2".to_string()]);

        // The socket dies; a message arrives while the device is away.
        inner.online.remove(&key);
        inner.deliver_message("1555", 1, "M4", message("M4"));
        inner.requeue_unacked(7, "1555", 1);
        assert_eq!(ids(&inner.offline[&key]), ["M1", "M3", "M4"], "unacknowledged first, in order; M2 was acknowledged");
        assert!(!inner.unacked.contains_key(&7));
    }
}
