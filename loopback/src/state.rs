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
}

/// Counters tests use to see which protocol paths ran.
#[derive(Default)]
pub struct Stats {
    pub xx_handshakes: AtomicU64,
    pub ik_handshakes: AtomicU64,
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
    /// Delivers to a device now, or keeps it for the device's next login.
    pub fn deliver(&mut self, phone: &str, device: u16, node: Node) {
        let key = (phone.to_string(), device);
        if let Some(conn) = self.online.get(&key)
            && conn.tx.send(Outbound::Node(node.clone())).is_ok()
        {
            return;
        }
        self.offline.entry(key).or_default().push(node);
    }
}
