//! Signal key directory (namespace `encrypt`): uploads from companions, counts,
//! and the bundles senders fetch before their first message to a device.

use anyhow::{Context, Result};
use wacore::prekeys::compute_key_bundle_digest;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::accounts::SignalKeys;
use crate::nodes::{attr, be_bytes, child, child_bytes, child_key32, child_uint, children, iq_error, iq_result};
use crate::session::{Role, Session};
use crate::state::Inner;

pub fn answer(session: &Session, node: &Node) -> Node {
    let first = children(node).first().map(|c| c.tag.to_string()).unwrap_or_default();
    let result = match first.as_str() {
        "registration" | "list" | "identity" | "skey" | "type" => upload(session, node),
        "count" => Ok(count(session, node)),
        "key" => Ok(fetch(session, node)),
        "digest" => Ok(digest(session, node)),
        _ => Ok(iq_result(node, vec![])),
    };
    result.unwrap_or_else(|e| {
        tracing::warn!("prekey iq <{first}> refused: {e:#}");
        iq_error(node, 400, "bad-request")
    })
}

fn upload(session: &Session, node: &Node) -> Result<Node> {
    let Role::Device { phone, device } = &session.role else {
        anyhow::bail!("prekey upload from a connection that is not a registered device");
    };
    let mut prekeys = Vec::new();
    if let Some(list) = child(node, "list") {
        for key in children(list).iter().filter(|k| k.tag == "key") {
            let id = child_uint(key, "id").context("prekey <key> has no <id>")?;
            prekeys.push((id, child_key32(key, "value")?));
        }
    }
    let mut inner = session.shared.lock();
    let dev = inner.dir.device_mut(phone, *device).context("uploading device is gone")?;
    if let Some(reg) = child_uint(node, "registration") {
        dev.keys.registration_id = reg;
    }
    if child(node, "identity").is_some() {
        dev.keys.identity = child_key32(node, "identity")?;
    }
    if let Some(skey) = child(node, "skey") {
        dev.keys.signed_prekey_id = child_uint(skey, "id").context("<skey> has no <id>")?;
        dev.keys.signed_prekey = child_key32(skey, "value")?;
        dev.keys.signed_prekey_sig = child_bytes(skey, "signature").context("<skey> has no <signature>")?.to_vec();
    }
    let n = prekeys.len();
    dev.keys.prekeys.extend(prekeys);
    tracing::debug!(phone, device, n, "prekeys uploaded");
    Ok(iq_result(node, vec![]))
}

fn count(session: &Session, node: &Node) -> Node {
    let n = match &session.role {
        Role::Device { phone, device } => session.shared.lock().dir.device(phone, *device).map_or(0, |d| d.keys.prekeys.len()),
        _ => 0,
    };
    iq_result(node, vec![NodeBuilder::new("count").attr("value", n.to_string()).build()])
}

/// What the server holds for the device, so the client can check it against
/// its own keys; a 404 (nothing held) makes the client upload again.
fn digest(session: &Session, node: &Node) -> Node {
    let keys = match &session.role {
        Role::Device { phone, device } => session.shared.lock().dir.device(phone, *device).map(|d| d.keys.clone()),
        _ => None,
    };
    let Some(keys) = keys.filter(|k| !k.prekeys.is_empty()) else {
        return iq_error(node, 404, "item-not-found");
    };
    let pubs: Vec<&[u8]> = keys.prekeys.iter().map(|(_, k)| &k[..]).collect();
    let hash = compute_key_bundle_digest(&keys.identity, &keys.signed_prekey, &keys.signed_prekey_sig, &pubs);
    let ids = keys.prekeys.iter().map(|(id, _)| NodeBuilder::new("id").bytes(be_bytes(*id, 3)).build());
    let mut body = bundle_children(&keys, None, None);
    body.push(NodeBuilder::new("list").children(ids).build());
    body.push(NodeBuilder::new("hash").bytes(hash).build());
    iq_result(node, vec![NodeBuilder::new("digest").children(body).build()])
}

fn fetch(session: &Session, node: &Node) -> Node {
    let mut inner = session.shared.lock();
    let users = child(node, "key")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter(|u| u.tag == "user")
        .filter_map(|u| {
            let jid = attr(u, "jid")?.into_owned();
            if let (Some(me), Some((of, _))) = (session.phone(), resolve(&inner, &jid)) {
                inner.contacts.learn(me, &of);
            }
            Some(bundle_node(&mut inner, &jid))
        })
        .collect::<Vec<_>>();
    iq_result(node, vec![NodeBuilder::new("list").children(users).build()])
}

/// One `<user>` of a fetch answer: the device's bundle, or a 404 for a device
/// this server does not know.
fn bundle_node(inner: &mut Inner, jid: &str) -> Node {
    let user = NodeBuilder::new("user").attr("jid", jid.to_string());
    let Some((phone, device)) = resolve(inner, jid) else {
        return user.children([NodeBuilder::new("error").attr("code", "404").build()]).build();
    };
    let Some(account) = inner.dir.account_mut(&phone) else {
        return user.children([NodeBuilder::new("error").attr("code", "404").build()]).build();
    };
    let (keys, identity) = if device == 0 {
        (&mut account.phone_keys, None)
    } else {
        match account.devices.get_mut(&device) {
            Some(d) => (&mut d.keys, d.signed_identity.clone()),
            None => return user.children([NodeBuilder::new("error").attr("code", "404").build()]).build(),
        }
    };
    let one_time = if keys.prekeys.is_empty() { None } else { Some(keys.prekeys.remove(0)) };
    user.children(bundle_children(keys, one_time, identity)).build()
}

fn bundle_children(keys: &SignalKeys, one_time: Option<(u32, [u8; 32])>, identity: Option<Vec<u8>>) -> Vec<Node> {
    let mut out = vec![
        NodeBuilder::new("registration").bytes(be_bytes(keys.registration_id, 4)).build(),
        NodeBuilder::new("type").bytes(vec![5u8]).build(),
        NodeBuilder::new("identity").bytes(keys.identity.to_vec()).build(),
    ];
    if let Some((id, value)) = one_time {
        out.push(
            NodeBuilder::new("key")
                .children([
                    NodeBuilder::new("id").bytes(be_bytes(id, 3)).build(),
                    NodeBuilder::new("value").bytes(value.to_vec()).build(),
                ])
                .build(),
        );
    }
    out.push(
        NodeBuilder::new("skey")
            .children([
                NodeBuilder::new("id").bytes(be_bytes(keys.signed_prekey_id, 3)).build(),
                NodeBuilder::new("value").bytes(keys.signed_prekey.to_vec()).build(),
                NodeBuilder::new("signature").bytes(keys.signed_prekey_sig.clone()).build(),
            ])
            .build(),
    );
    if let Some(identity) = identity {
        out.push(NodeBuilder::new("device-identity").bytes(identity).build());
    }
    out
}

/// (phone, device) for a PN or LID device JID known to this server.
pub fn resolve(inner: &Inner, jid: &str) -> Option<(String, u16)> {
    let jid: Jid = jid.parse().ok()?;
    let phone = if jid.is_lid() { inner.dir.phone_for_lid(&jid.user)?.to_string() } else { jid.user.to_string() };
    inner.dir.account(&phone)?;
    Some((phone, jid.device))
}
