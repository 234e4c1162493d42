//! 1:1 message and receipt relay between devices. The server never decrypts:
//! it fans each `<to>` ciphertext out to its device, acks the sender, and
//! carries receipts back.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::oneshot;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent};

use crate::nodes::{self, attr, attr_string, child, children};
use crate::prekeys::resolve;
use crate::session::{Role, Session};
use crate::state::{ConnTx, Outbound, Relayed, Shared};

/// Fault injection (`/admin/slow?ms=N`): the server sits on each client message for `ms`
/// before it relays it and acks the sender (0: off). Delayed messages of one connection
/// leave in the order they came: each waits for the one before it.
#[derive(Default)]
pub struct Slow {
    pub ms: u64,
    /// Per connection, the last delayed message (its number and a signal that it left).
    tails: HashMap<u64, (u64, oneshot::Receiver<()>)>,
    next: u64,
}

pub fn on_message(session: &Session, node: &Node) {
    let Role::Device { phone, device } = &session.role else { return };
    let id = attr_string(node, "id").unwrap_or_default();
    let mut inner = session.shared.lock();
    // Fault injection (`/admin/nack`): refuse this message, relay nothing.
    if let Some(code) = inner.nacks.remove(&id) {
        drop(inner);
        tracing::info!(id, code, "message refused with a nack");
        let to = attr_string(node, "to").unwrap_or_default();
        session.send(
            NodeBuilder::new("ack")
                .attr("class", "message")
                .attr("id", id)
                .attr("from", to)
                .attr("t", nodes::now().to_string())
                .attr("error", code)
                .build(),
        );
        return;
    }
    let ms = inner.slow.ms;
    let conn_id = session.conn_id;
    if ms == 0 && !inner.slow.tails.contains_key(&conn_id) {
        drop(inner);
        relay(&session.shared, &session.tx, conn_id, phone, *device, node);
        return;
    }
    // Fault injection (`/admin/slow`): relay and ack later, after the messages this
    // connection sent before.
    let seq = inner.slow.next;
    inner.slow.next += 1;
    let (left, tail) = oneshot::channel();
    let before = inner.slow.tails.insert(conn_id, (seq, tail)).map(|(_, rx)| rx);
    drop(inner);
    tracing::debug!(id, ms, "message held back (slow server)");
    let (shared, tx, phone, device, node) = (session.shared.clone(), session.tx.clone(), phone.clone(), *device, node.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if let Some(before) = before {
            let _ = before.await; // an error only means that task died: go on
        }
        relay(&shared, &tx, conn_id, &phone, device, &node);
        let _ = left.send(());
        let mut inner = shared.lock();
        if inner.slow.tails.get(&conn_id).is_some_and(|(s, _)| *s == seq) {
            inner.slow.tails.remove(&conn_id);
        }
    });
}

/// Fans message `node` from `phone:device` (on connection `conn_id`) out to its targets
/// and acks it on `tx`.
fn relay(shared: &Shared, tx: &ConnTx, conn_id: u64, phone: &str, device: u16, node: &Node) {
    let id = attr_string(node, "id").unwrap_or_default();
    let to = attr_string(node, "to").unwrap_or_default();
    let kind = attr_string(node, "type").unwrap_or_else(|| "text".into());
    let t = nodes::now().to_string();
    let sender = Jid::pn_device(phone, device);
    let device_identity = child(node, "device-identity").cloned();
    // An edit or a delete for everyone is marked on the stanza (edit="1", "7", "8"), and
    // WhatsApp's server passes the mark on.
    let edit = attr_string(node, "edit");
    let mut inner = shared.lock();
    if to.ends_with("@g.us") {
        drop(inner);
        return relay_to_group(shared, tx, conn_id, phone, device, node);
    }
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
        if target_phone == phone {
            out = out.attr("recipient", to.clone());
        }
        if let Some(edit) = &edit {
            out = out.attr("edit", edit.clone());
        }
        let mut content = vec![enc];
        content.extend(device_identity.clone());
        inner.deliver_message(&target_phone, target_device, &id, out.children(content).build());
        delivered += 1;
        if target_phone != phone && !peers.contains(&target_phone) {
            peers.push(target_phone);
        }
    }
    for to_phone in peers {
        inner.contacts.learn(phone, &to_phone);
        inner.contacts.learn(&to_phone, phone);
        inner.relayed.push(Relayed { conn_id, from_phone: phone.to_string(), to_phone, id: id.clone() });
    }
    drop(inner);
    tracing::debug!(id, to, delivered, "message relayed");
    let ack = NodeBuilder::new("ack").attr("class", "message").attr("id", id).attr("from", to).attr("t", t).build();
    let _ = tx.send(Outbound::Node(ack));
}

/// A group message: every member device but the sender's gets the sender-key
/// ciphertext (`skmsg`) and, when the sender included one for it, its own pairwise
/// `<to>` ciphertext (the sender-key distribution), from the group with the sender as
/// `participant`. A sender who is not a member is refused as WhatsApp does.
fn relay_to_group(shared: &Shared, tx: &ConnTx, conn_id: u64, phone: &str, device: u16, node: &Node) {
    let id = attr_string(node, "id").unwrap_or_default();
    let to = attr_string(node, "to").unwrap_or_default();
    let kind = attr_string(node, "type").unwrap_or_else(|| "text".into());
    let t = nodes::now().to_string();
    let mut inner = shared.lock();
    let members: Result<Vec<String>, &str> = match inner.groups.get(&to) {
        Some(g) if g.is_member(phone) => Ok(g.members.iter().map(|m| m.phone.clone()).collect()),
        Some(_) => Err("403"),
        None => Err("404"),
    };
    let members = match members {
        Ok(m) => m,
        Err(code) => {
            drop(inner);
            tracing::info!(id, to, code, "group message refused");
            let nack = NodeBuilder::new("ack").attr("class", "message").attr("id", id).attr("from", to).attr("t", t);
            let _ = tx.send(Outbound::Node(nack.attr("error", code).build()));
            return;
        }
    };
    let mut pairwise: HashMap<(String, u16), Node> = HashMap::new();
    if let Some(p) = child(node, "participants") {
        for c in children(p).iter().filter(|c| c.tag == "to") {
            if let (Some(target), Some(enc)) = (attr_string(c, "jid").and_then(|j| resolve(&inner, &j)), child(c, "enc")) {
                pairwise.insert(target, enc.clone());
            }
        }
    }
    let skmsg = children(node).iter().find(|c| c.tag == "enc").cloned();
    let device_identity = child(node, "device-identity").cloned();
    let notify = inner.dir.account(phone).map(|a| a.push_name.clone()).unwrap_or_default();
    let sender = Jid::pn_device(phone, device);
    let mut delivered = 0;
    for member in &members {
        let devices: Vec<u16> = inner.dir.account(member).map(|a| a.devices.keys().copied().collect()).unwrap_or_default();
        for d in devices {
            if d == 0 || (member == phone && d == device) {
                continue;
            }
            let mut content: Vec<Node> = pairwise.remove(&(member.clone(), d)).into_iter().collect();
            if !content.is_empty() {
                content.extend(device_identity.clone());
            }
            content.extend(skmsg.clone());
            let out = NodeBuilder::new("message")
                .attr("from", to.clone())
                .attr("participant", sender.clone())
                .attr("id", id.clone())
                .attr("type", kind.clone())
                .attr("t", t.clone())
                .attr("notify", notify.clone())
                .attr("addressing_mode", "pn");
            let out = match attr_string(node, "edit") {
                Some(edit) => out.attr("edit", edit),
                None => out,
            };
            inner.deliver_message(member, d, &id, out.children(content).build());
            delivered += 1;
        }
        if member != phone {
            inner.relayed.push(Relayed { conn_id, from_phone: phone.to_string(), to_phone: member.clone(), id: id.clone() });
        }
    }
    drop(inner);
    tracing::debug!(id, to, delivered, "group message relayed");
    let ack = NodeBuilder::new("ack").attr("class", "message").attr("id", id).attr("from", to).attr("t", t).build();
    let _ = tx.send(Outbound::Node(ack));
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

/// `<chatstate to=X><composing/></chatstate>` from a client: passed on, as
/// `<chatstate from=SENDER>`, to X's devices that are online now. Typing indicators are
/// not kept for devices that are offline, as WhatsApp's server does not keep them.
pub fn on_chatstate(session: &Session, node: &Node) {
    let Role::Device { phone, .. } = &session.role else { return };
    let to = attr_string(node, "to").unwrap_or_default();
    let inner = session.shared.lock();
    let Some((target_phone, _)) = resolve(&inner, &to) else { return };
    let mut out = NodeBuilder::new("chatstate").attr("from", Jid::pn(phone.as_str()));
    if let Some(NodeContent::Nodes(kids)) = &node.content {
        out = out.children(kids.clone());
    }
    let out = out.build();
    let devices = inner.dir.account(&target_phone).map(|a| a.devices.keys().copied().collect::<Vec<_>>()).unwrap_or_default();
    for d in devices {
        if let Some(conn) = inner.online.get(&(target_phone.clone(), d)) {
            let _ = conn.tx.send(Outbound::Node(out.clone()));
        }
    }
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
    // In a group, a receipt goes to the message's author (`participant`), from the group.
    let group = to.ends_with("@g.us");
    let target = if group { attr_string(node, "participant").unwrap_or_default() } else { to.clone() };
    let Some((target_phone, target_device)) = resolve(&inner, &target) else { return };
    let targets: Vec<u16> = match target.parse::<Jid>() {
        Ok(j) if j.device != 0 || target.contains(':') => vec![target_device],
        // A bare user JID (read receipts) reaches every companion of that user.
        _ => inner.dir.account(&target_phone).map(|a| a.devices.keys().copied().collect()).unwrap_or_default(),
    };
    let reader = Jid::pn_device(phone.as_str(), *device);
    let mut out = NodeBuilder::new("receipt").attr("id", id).attr("t", nodes::now().to_string());
    out = if group { out.attr("from", to.clone()).attr("participant", reader) } else { out.attr("from", reader) };
    let keys: &[&str] = if group { &["type"] } else { &["type", "participant", "recipient"] };
    for key in keys.iter().copied() {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;
    use crate::noise::ServerKeys;

    fn acked_id(out: Outbound) -> String {
        match out {
            Outbound::Node(n) if n.tag == "ack" => attr_string(&n, "id").unwrap_or_default(),
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    /// On tokio's paused clock: the delay takes no real time, and its length is exact.
    #[tokio::test(start_paused = true)]
    async fn a_slow_server_acks_late_and_in_order() {
        let shared = Arc::new(Shared::new(ServerKeys::generate()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let role = Role::Device { phone: "1555".into(), device: 1 };
        let session = Session { shared: shared.clone(), conn_id: 7, tx, role };
        let message = |id: &str| NodeBuilder::new("message").attr("id", id).attr("to", "1666@s.whatsapp.net").build();

        on_message(&session, &message("M0"));
        assert_eq!(acked_id(rx.try_recv().unwrap()), "M0", "a normal server acks at once");

        shared.lock().slow.ms = 300;
        let held = tokio::time::Instant::now();
        on_message(&session, &message("M1"));
        // Off again: M2 is not held back itself, but it does not overtake M1.
        shared.lock().slow.ms = 0;
        on_message(&session, &message("M2"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "nothing acked before the delay is up");
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(held.elapsed(), Duration::from_millis(300), "acked when the delay is up");
        let second = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!([acked_id(first), acked_id(second)], ["M1", "M2"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(shared.lock().slow.tails.is_empty(), "nothing left held back");

        on_message(&session, &message("M3"));
        assert_eq!(acked_id(rx.try_recv().unwrap()), "M3", "fast again once the queue is empty");
    }
}
