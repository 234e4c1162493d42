//! User sync: device lists (with the signed key-index list that companions
//! require), LID mappings and "is on WhatsApp" answers.

use wacore::libsignal::protocol::KeyPair;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use waproto::buffa::Message;
use waproto::whatsapp as wa;

use crate::accounts::Account;
use crate::nodes::{self, attr, bytes, child, children, iq_result};
use crate::session::Session;

const ADV_PREFIX_KEY_INDEX_LIST: &[u8] = &[6, 2];

pub fn answer(session: &Session, node: &Node) -> Node {
    let Some(usync) = child(node, "usync") else { return iq_result(node, vec![]) };
    let query: Vec<String> = child(usync, "query").map(children).unwrap_or_default().iter().map(|q| q.tag.to_string()).collect();
    let mut inner = session.shared.lock();
    let mut asked = Vec::new();
    let users = child(usync, "list")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter(|u| u.tag == "user")
        .map(|u| {
            let phone = user_phone(&inner, u);
            let account = phone.as_deref().and_then(|p| inner.dir.account(p));
            if let Some(a) = account {
                asked.push(a.phone.clone());
            }
            user_node(u, phone.as_deref(), account, &query)
        })
        .collect::<Vec<_>>();
    if let Some(me) = session.phone() {
        for of in &asked {
            inner.contacts.learn(me, of);
        }
    }
    drop(inner);
    let list = NodeBuilder::new("list").children(users).build();
    iq_result(node, vec![NodeBuilder::new("usync").children([list]).build()])
}

/// The phone number a `<user>` asks about: from its jid or its `<contact>`.
fn user_phone(inner: &crate::state::Inner, user: &Node) -> Option<String> {
    if let Some(jid) = attr(user, "jid").and_then(|j| j.parse::<Jid>().ok()) {
        return if jid.is_lid() { inner.dir.phone_for_lid(&jid.user).map(str::to_string) } else { Some(jid.user.to_string()) };
    }
    let contact = child(user, "contact").and_then(bytes)?;
    Some(String::from_utf8_lossy(contact).trim_start_matches('+').to_string())
}

/// One `<user>` answer. A number asked about by `<contact>` is answered with its phone
/// JID whether or not it has an account (`<contact type="out"/>` then), as WhatsApp does:
/// clients drop an answer without a jid.
fn user_node(request: &Node, phone: Option<&str>, account: Option<&Account>, query: &[String]) -> Node {
    let jid = match (attr(request, "jid"), account, phone) {
        (Some(j), _, _) => j.into_owned(),
        (None, Some(a), _) => Jid::pn(&a.phone).to_string(),
        (None, None, Some(p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Jid::pn(p).to_string(),
        (None, None, _) => String::new(),
    };
    let mut out = Vec::new();
    for protocol in query {
        match (protocol.as_str(), account) {
            ("devices", Some(a)) => out.push(devices(a)),
            ("lid", Some(a)) => out.push(NodeBuilder::new("lid").attr("val", Jid::lid(&a.lid)).build()),
            ("contact", found) => {
                let kind = if found.is_some() { "in" } else { "out" };
                out.push(NodeBuilder::new("contact").attr("type", kind).build());
            }
            _ => {}
        }
    }
    let mut user = NodeBuilder::new("user");
    if !jid.is_empty() {
        user = user.attr("jid", jid);
    }
    user.children(out).build()
}

fn devices(account: &Account) -> Node {
    let mut list = vec![NodeBuilder::new("device").attr("id", "0").build()];
    for d in account.devices.values() {
        list.push(NodeBuilder::new("device").attr("id", d.id.to_string()).attr("key-index", d.key_index.to_string()).build());
    }
    let mut children = vec![NodeBuilder::new("device-list").children(list).build()];
    if !account.devices.is_empty() {
        let ts = nodes::now();
        children.push(
            NodeBuilder::new("key-index-list").attr("ts", ts.to_string()).bytes(signed_key_index_list(account, ts)).build(),
        );
    }
    NodeBuilder::new("devices").children(children).build()
}

/// The client does not verify this signature today; it is made anyway so the
/// blob is what a real phone would publish.
pub fn signed_key_index_list(account: &Account, ts: u64) -> Vec<u8> {
    let indexes = account.key_indexes();
    let details = wa::ADVKeyIndexList {
        raw_id: Some(account.raw_id),
        timestamp: Some(ts),
        current_index: indexes.iter().copied().max(),
        valid_indexes: indexes,
        ..Default::default()
    }
    .encode_to_vec();
    let signature = sign(&account.acct, &[ADV_PREFIX_KEY_INDEX_LIST, &details].concat());
    wa::ADVSignedKeyIndexList {
        details: Some(details),
        account_signature: signature,
        account_signature_key: Some(account.acct.public_key.public_key_bytes().to_vec()),
    }
    .encode_to_vec()
}

fn sign(key: &KeyPair, msg: &[u8]) -> Option<Vec<u8>> {
    key.private_key.calculate_signature(msg, &mut rand::rng()).ok().map(|s| s.to_vec())
}
