//! 1:1 message and receipt relay between devices. The server never decrypts:
//! it fans each `<to>` ciphertext out to its device, acks the sender, and
//! carries receipts back.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent};

use crate::nodes::{self, attr, attr_string, child, children};
use crate::prekeys::resolve;
use crate::session::{Role, Session};
use crate::state::Relayed;

pub fn on_message(session: &Session, node: &Node) {
    let Role::Device { phone, device } = &session.role else { return };
    let id = attr_string(node, "id").unwrap_or_default();
    let to = attr_string(node, "to").unwrap_or_default();
    let kind = attr_string(node, "type").unwrap_or_else(|| "text".into());
    let t = nodes::now().to_string();
    // Fault injection (`/admin/nack`): refuse this message, relay nothing.
    let nack = session.shared.lock().nacks.remove(&id);
    if let Some(code) = nack {
        tracing::info!(id, code, "message refused with a nack");
        session.send(
            NodeBuilder::new("ack")
                .attr("class", "message")
                .attr("id", id)
                .attr("from", to)
                .attr("t", t)
                .attr("error", code)
                .build(),
        );
        return;
    }
    let sender = Jid::pn_device(phone.as_str(), *device);
    let device_identity = child(node, "device-identity").cloned();
    let mut inner = session.shared.lock();
    let notify = inner.dir.account(phone).map(|a| a.push_name.clone()).unwrap_or_default();
    let targets: Vec<(String, Node)> = match child(node, "participants") {
        Some(p) => children(p)
            .iter()
            .filter(|c| c.tag == "to")
            .filter_map(|c| Some((attr_string(c, "jid")?, child(c, "enc")?.clone())))
            .collect(),
        None => children(node).iter().filter(|c| c.tag == "enc").map(|e| (to.clone(), e.clone())).collect(),
    };
    let mut delivered = 0;
    let mut peers: Vec<String> = Vec::new();
    for (target, enc) in targets {
        let Some((target_phone, target_device)) = resolve(&inner, &target) else {
            tracing::warn!(id, target, "message for an unknown device dropped");
            continue;
        };
        // Device 0 is the simulated phone: it has a bundle so senders can
        // encrypt for it, but nothing would ever read what it is sent.
        if target_device == 0 {
            continue;
        }
        let mut out = NodeBuilder::new("message")
            .attr("from", sender.clone())
            .attr("id", id.clone())
            .attr("type", kind.clone())
            .attr("t", t.clone())
            .attr("notify", notify.clone());
        // Fan-out to the sender's own devices is "from me" in chat `to`.
        if &target_phone == phone {
            out = out.attr("recipient", to.clone());
        }
        let mut content = vec![enc];
        content.extend(device_identity.clone());
        inner.deliver_message(&target_phone, target_device, &id, out.children(content).build());
        delivered += 1;
        if &target_phone != phone && !peers.contains(&target_phone) {
            peers.push(target_phone);
        }
    }
    for to_phone in peers {
        inner.relayed.push(Relayed { from_phone: phone.clone(), to_phone, id: id.clone() });
    }
    drop(inner);
    tracing::debug!(id, to, delivered, "message relayed");
    session.send(NodeBuilder::new("ack").attr("class", "message").attr("id", id).attr("from", to).attr("t", t).build());
}

/// The ids a client acknowledges with a receipt or an ack: the stanza's own and, in
/// aggregate receipts, each `<list><item id=…/>`.
fn acked_ids(node: &Node) -> Vec<String> {
    let mut ids: Vec<String> = attr_string(node, "id").into_iter().collect();
    if let Some(list) = child(node, "list") {
        ids.extend(children(list).iter().filter_map(|item| attr_string(item, "id")));
    }
    ids
}

/// `<ack class="message">` from a client: it took the message without a receipt.
pub fn on_client_ack(session: &Session, node: &Node) {
    if attr(node, "class").as_deref() == Some("message") {
        session.shared.lock().acked(session.conn_id, &acked_ids(node));
    }
}

pub fn on_receipt(session: &Session, node: &Node) {
    let Role::Device { phone, device } = &session.role else { return };
    session.shared.lock().acked(session.conn_id, &acked_ids(node));
    let id = attr_string(node, "id").unwrap_or_default();
    let to = attr_string(node, "to").unwrap_or_default();
    let kind = attr_string(node, "type");
    let mut ack = NodeBuilder::new("ack").attr("class", "receipt").attr("id", id.clone()).attr("from", to.clone());
    if let Some(k) = &kind {
        ack = ack.attr("type", k.clone());
    }
    session.send(ack.build());

    let mut inner = session.shared.lock();
    let Some((target_phone, target_device)) = resolve(&inner, &to) else { return };
    let targets: Vec<u16> = match to.parse::<Jid>() {
        Ok(j) if j.device != 0 || to.contains(':') => vec![target_device],
        // A bare user JID (read receipts) reaches every companion of that user.
        _ => inner.dir.account(&target_phone).map(|a| a.devices.keys().copied().collect()).unwrap_or_default(),
    };
    let mut out = NodeBuilder::new("receipt")
        .attr("from", Jid::pn_device(phone.as_str(), *device))
        .attr("id", id)
        .attr("t", nodes::now().to_string());
    for key in ["type", "participant", "recipient"] {
        if let Some(v) = attr(node, key) {
            out = out.attr(key, v.into_owned());
        }
    }
    if let Some(NodeContent::Nodes(kids)) = &node.content {
        out = out.children(kids.clone());
    }
    let out = out.build();
    for d in targets {
        inner.deliver(&target_phone, d, out.clone());
    }
}
