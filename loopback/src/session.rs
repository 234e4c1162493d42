//! What one authenticated connection is (an unpaired client or a registered
//! device) and where its stanzas go.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use waproto::whatsapp as wa;

use crate::nodes::{self, attr};
use crate::state::{ConnTx, OnlineConn, Outbound, PendingLink, Shared};
use crate::{iq, pairing, relay};

pub enum Role {
    /// Closed before it became anything (bad login, bad registration).
    Rejected,
    Unpaired {
        noise: [u8; 32],
    },
    Device {
        phone: String,
        device: u16,
    },
}

pub struct Session {
    pub shared: Arc<Shared>,
    pub conn_id: u64,
    pub tx: ConnTx,
    pub role: Role,
}

impl Session {
    pub fn start(shared: Arc<Shared>, conn_id: u64, tx: ConnTx, noise: [u8; 32], payload: wa::ClientPayload) -> Self {
        let mut session = Self { shared, conn_id, tx, role: Role::Rejected };
        session.role = match payload.username {
            Some(user) => session.login(noise, user, payload.device.unwrap_or(0) as u16),
            None => session.register(noise, &payload),
        };
        session
    }

    /// The phone of a registered device's account.
    pub fn phone(&self) -> Option<&str> {
        match &self.role {
            Role::Device { phone, .. } => Some(phone),
            _ => None,
        }
    }

    pub fn send(&self, node: Node) {
        let _ = self.tx.send(Outbound::Node(node));
    }

    fn login(&self, noise: [u8; 32], user: u64, device: u16) -> Role {
        let phone = user.to_string();
        let mut inner = self.shared.lock();
        let lid = match inner.dir.account(&phone) {
            Some(a) if a.devices.get(&device).is_some_and(|d| d.noise_static == noise) => a.lid.clone(),
            _ => {
                drop(inner);
                tracing::info!(phone, device, "login refused: unknown device or noise key mismatch");
                self.shared.stats.refused_logins.fetch_add(1, Ordering::Relaxed);
                self.send(NodeBuilder::new("failure").attr("reason", "401").build());
                let _ = self.tx.send(Outbound::Close);
                return Role::Rejected;
            }
        };
        let previous = inner.online.insert((phone.clone(), device), OnlineConn { conn_id: self.conn_id, tx: self.tx.clone() });
        drop(inner);
        if let Some(old) = previous {
            let conflict = NodeBuilder::new("conflict").attr("type", "replaced").build();
            let _ = old.tx.send(Outbound::Node(NodeBuilder::new("stream:error").children([conflict]).build()));
            let _ = old.tx.send(Outbound::Close);
        }
        self.shared.stats.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(phone, device, conn_id = self.conn_id, "device logged in");
        self.send(
            NodeBuilder::new("success").attr("t", nodes::now().to_string()).attr("lid", Jid::lid_device(lid, device)).build(),
        );
        Role::Device { phone, device }
    }

    fn register(&self, noise: [u8; 32], payload: &wa::ClientPayload) -> Role {
        let keys = match pairing::registration_keys(payload) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("registration refused: {e:#}");
                let _ = self.tx.send(Outbound::Close);
                return Role::Rejected;
            }
        };
        let refs = pairing::new_refs();
        let iq = pairing::pair_device_iq(self.shared.stanza_id("ref"), &refs);
        let push_name = payload.push_name.clone().unwrap_or_default();
        self.shared.lock().pending.insert(
            noise,
            PendingLink {
                conn_id: self.conn_id,
                tx: self.tx.clone(),
                refs,
                keys,
                push_name,
                sent_success: None,
                code_flow: None,
            },
        );
        tracing::info!(conn_id = self.conn_id, "unpaired client connected; offering QR refs");
        self.send(iq);
        Role::Unpaired { noise }
    }

    pub fn handle(&mut self, node: Node) {
        match node.tag.as_ref() {
            "iq" => self.handle_iq(node),
            "message" => relay::on_message(self, &node),
            "receipt" => relay::on_receipt(self, &node),
            "ack" => relay::on_client_ack(self, &node),
            "chatstate" => relay::on_chatstate(self, &node),
            "call" => crate::calls::on_call(self, &node),
            "presence" | "ib" => {}
            other => tracing::debug!(conn_id = self.conn_id, "ignoring <{other}> from client"),
        }
    }

    fn handle_iq(&mut self, node: Node) {
        let kind = attr(&node, "type").unwrap_or_default().into_owned();
        if kind == "result" || kind == "error" {
            if let Role::Unpaired { noise } = &self.role
                && pairing::on_pair_answer(&self.shared, noise, &node)
            {
                return;
            }
            if kind == "error" {
                tracing::warn!(conn_id = self.conn_id, "client answered a server iq with an error: {node:?}");
            }
            return;
        }
        for reply in iq::answer(self, &node) {
            self.send(reply);
        }
    }

    pub fn end(&self) {
        let mut inner = self.shared.lock();
        match &self.role {
            Role::Device { phone, device } => {
                let key = (phone.clone(), *device);
                if inner.online.get(&key).is_some_and(|c| c.conn_id == self.conn_id) {
                    inner.online.remove(&key);
                }
                inner.requeue_unacked(self.conn_id, phone, *device);
            }
            Role::Unpaired { noise } => {
                if inner.pending.get(noise).is_some_and(|p| p.conn_id == self.conn_id) {
                    inner.pending.remove(noise);
                }
            }
            Role::Rejected => {}
        }
    }
}
