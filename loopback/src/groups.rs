//! Groups, as WhatsApp's server keeps them: the `w:g2` IQs (create, query, add, remove,
//! promote, demote, invite link, leave), the `w:gp2` notifications that tell members'
//! devices what changed, and the member list that group messages fan out to
//! ([`crate::relay`]). Groups are addressed by phone number (`addressing_mode="pn"`).

use std::collections::HashMap;

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::nodes::{self, attr, attr_string, child, children, iq_error, iq_result};
use crate::prekeys::resolve;
use crate::session::{Role, Session};
use crate::state::{Inner, Shared};

/// One group: its members by phone number, in the order they joined.
#[derive(Clone, Debug)]
pub struct Group {
    pub subject: String,
    pub creator: String,
    pub created: u64,
    pub members: Vec<Member>,
    pub invite_code: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub phone: String,
    /// `admin`, `superadmin` or None.
    pub admin: Option<&'static str>,
}

impl Group {
    pub fn is_member(&self, phone: &str) -> bool {
        self.members.iter().any(|m| m.phone == phone)
    }

    fn is_admin(&self, phone: &str) -> bool {
        self.members.iter().any(|m| m.phone == phone && m.admin.is_some())
    }
}

#[derive(Default)]
pub struct Groups {
    /// By the group's user part (`120363…`).
    pub by_id: HashMap<String, Group>,
}

impl Groups {
    /// The group `jid` names (`120363…@g.us`), if there is one.
    pub fn get(&self, jid: &str) -> Option<&Group> {
        self.by_id.get(jid.strip_suffix("@g.us")?)
    }

    /// The phones that share a group with `phone`.
    pub fn co_members<'a>(&'a self, phone: &'a str) -> impl Iterator<Item = &'a str> {
        self.by_id.values().filter(|g| g.is_member(phone)).flat_map(|g| g.members.iter().map(|m| m.phone.as_str()))
    }
}

/// A `w:g2` IQ from a device.
pub fn answer(session: &Session, node: &Node) -> Vec<Node> {
    let Role::Device { phone, device } = &session.role else { return vec![iq_error(node, 401, "not-authorized")] };
    let to = attr_string(node, "to").unwrap_or_default();
    let kind = attr(node, "type").unwrap_or_default().into_owned();
    let action = children(node).first().map(|c| c.tag.to_string()).unwrap_or_default();
    let shared = &session.shared;
    match (kind.as_str(), action.as_str()) {
        ("set", "create") if to == "g.us" => create(shared, phone, *device, node),
        ("set", "leave") if to == "g.us" => leave(shared, phone, *device, node),
        ("get", "query") => query(shared, phone, &to, node),
        ("get", "invite") => invite(shared, phone, &to, node),
        ("set", "add" | "remove" | "promote" | "demote") => change(shared, phone, *device, &to, &action, node),
        _ => {
            tracing::warn!(kind, action, "unhandled group iq, answering 501");
            vec![iq_error(node, 501, "feature-not-implemented")]
        }
    }
}

/// The phone numbers of a request's `<participant jid=…/>` children that have an
/// account, and the JIDs of those that do not.
fn participants(inner: &Inner, action: &Node) -> (Vec<(String, String)>, Vec<String>) {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for p in children(action).iter().filter(|c| c.tag == "participant") {
        let jid = attr_string(p, "jid").unwrap_or_default();
        match resolve(inner, &jid) {
            Some((phone, _)) => known.push((jid, phone)),
            None => unknown.push(jid),
        }
    }
    (known, unknown)
}

fn create(shared: &Shared, phone: &str, device: u16, node: &Node) -> Vec<Node> {
    let Some(create) = child(node, "create") else { return vec![iq_error(node, 400, "bad-request")] };
    let subject = attr_string(create, "subject").unwrap_or_default();
    if subject.is_empty() {
        return vec![iq_error(node, 400, "bad-request")];
    }
    let id = format!("120363{:012}", shared.next_id());
    let mut inner = shared.lock();
    let (known, _unknown) = participants(&inner, create);
    let mut members = vec![Member { phone: phone.to_string(), admin: Some("superadmin") }];
    for (_, p) in known {
        if !members.iter().any(|m| m.phone == p) {
            members.push(Member { phone: p, admin: None });
        }
    }
    let group = Group { subject, creator: phone.to_string(), created: nodes::now(), members, invite_code: invite_code(shared) };
    let info = group_node(&id, &group);
    inner.groups.by_id.insert(id.clone(), group);
    let jid = format!("{id}@g.us");
    tracing::info!(group = jid, creator = phone, "group created");
    let change = NodeBuilder::new("create").children([info.clone()]).build();
    notify_members(&mut inner, shared, &jid, phone, device, change, None);
    vec![iq_result(node, vec![info])]
}

fn leave(shared: &Shared, phone: &str, device: u16, node: &Node) -> Vec<Node> {
    let ids: Vec<String> = child(node, "leave")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter(|g| g.tag == "group")
        .filter_map(|g| attr_string(g, "id"))
        .collect();
    let mut inner = shared.lock();
    for jid in ids {
        let Some(group) = inner.groups.by_id.get_mut(jid.trim_end_matches("@g.us")) else { continue };
        if !group.is_member(phone) {
            continue;
        }
        group.members.retain(|m| m.phone != phone);
        let change = action_node("remove", &[phone.to_string()]);
        // The one who left is told too (their other devices), then no more.
        notify_members(&mut inner, shared, &jid, phone, device, change, Some(phone));
    }
    vec![iq_result(node, vec![])]
}

fn query(shared: &Shared, phone: &str, to: &str, node: &Node) -> Vec<Node> {
    let inner = shared.lock();
    match inner.groups.get(to) {
        None => vec![iq_error(node, 404, "item-not-found")],
        Some(g) if !g.is_member(phone) => vec![iq_error(node, 403, "forbidden")],
        Some(g) => vec![iq_result(node, vec![group_node(to.trim_end_matches("@g.us"), g)])],
    }
}

fn invite(shared: &Shared, phone: &str, to: &str, node: &Node) -> Vec<Node> {
    let inner = shared.lock();
    match inner.groups.get(to) {
        None => vec![iq_error(node, 404, "item-not-found")],
        Some(g) if !g.is_admin(phone) => vec![iq_error(node, 401, "not-authorized")],
        Some(g) => vec![iq_result(node, vec![NodeBuilder::new("invite").attr("code", g.invite_code.clone()).build()])],
    }
}

/// add, remove, promote or demote: each participant gets its own answer (an `error`
/// code where it did not apply), and members' devices are told what did.
fn change(shared: &Shared, phone: &str, device: u16, to: &str, action: &str, node: &Node) -> Vec<Node> {
    let Some(request) = child(node, action) else { return vec![iq_error(node, 400, "bad-request")] };
    let mut inner = shared.lock();
    let (known, unknown) = participants(&inner, request);
    let Some(group) = inner.groups.by_id.get_mut(to.trim_end_matches("@g.us")) else {
        return vec![iq_error(node, 404, "item-not-found")];
    };
    if !group.is_admin(phone) {
        return vec![iq_error(node, 401, "not-authorized")];
    }
    let mut answers = Vec::new();
    let mut applied = Vec::new();
    for (jid, p) in known {
        let member = group.members.iter().position(|m| m.phone == p);
        let error = match (action, member) {
            ("add", Some(_)) => Some("409"),
            ("add", None) => {
                group.members.push(Member { phone: p.clone(), admin: None });
                None
            }
            (_, None) => Some("404"),
            ("remove", Some(i)) => {
                group.members.remove(i);
                None
            }
            ("promote", Some(i)) => {
                group.members[i].admin.get_or_insert("admin");
                None
            }
            (_, Some(i)) => {
                // demote: the creator stays what they are.
                if group.members[i].admin == Some("admin") {
                    group.members[i].admin = None;
                }
                None
            }
        };
        let mut answer = NodeBuilder::new("participant").attr("jid", jid);
        if let Some(code) = error {
            answer = answer.attr("error", code);
        } else {
            applied.push(p);
        }
        answers.push(answer.build());
    }
    answers.extend(unknown.into_iter().map(|jid| NodeBuilder::new("participant").attr("jid", jid).attr("error", "404").build()));
    if !applied.is_empty() {
        let change = action_node(action, &applied);
        // Removed members are no longer in the list, and learn it too.
        if action == "remove" {
            for p in &applied {
                notify_one(&mut inner, shared, to, phone, device, p, change.clone());
            }
        }
        notify_members(&mut inner, shared, to, phone, device, change, None);
    }
    vec![iq_result(node, vec![NodeBuilder::new_dynamic(action.to_string()).children(answers).build()])]
}

fn action_node(action: &str, phones: &[String]) -> Node {
    let list = phones.iter().map(|p| NodeBuilder::new("participant").attr("jid", Jid::pn(p.as_str())).build());
    NodeBuilder::new_dynamic(action.to_string()).children(list.collect::<Vec<_>>()).build()
}

/// `<group>` as the server describes one (creation, subject, members and their rank).
pub fn group_node(id: &str, g: &Group) -> Node {
    let members = g.members.iter().map(|m| {
        let b = NodeBuilder::new("participant").attr("jid", Jid::pn(m.phone.as_str()));
        match m.admin {
            Some(t) => b.attr("type", t).build(),
            None => b.build(),
        }
    });
    NodeBuilder::new("group")
        .attr("id", id)
        .attr("subject", g.subject.clone())
        .attr("s_t", g.created.to_string())
        .attr("s_o", Jid::pn(g.creator.as_str()))
        .attr("creation", g.created.to_string())
        .attr("creator", Jid::pn(g.creator.as_str()))
        .attr("addressing_mode", "pn")
        .attr("size", g.members.len().to_string())
        .children(members.collect::<Vec<_>>())
        .build()
}

fn invite_code(shared: &Shared) -> String {
    format!("LOOP{:018}", shared.next_id())
}

/// Tells every member's devices (but the acting one), and `also`'s, about `change` in
/// group `jid`.
fn notify_members(
    inner: &mut Inner,
    shared: &Shared,
    jid: &str,
    actor: &str,
    actor_device: u16,
    change: Node,
    also: Option<&str>,
) {
    let mut phones: Vec<String> =
        inner.groups.get(jid).map(|g| g.members.iter().map(|m| m.phone.clone()).collect()).unwrap_or_default();
    if let Some(p) = also {
        phones.push(p.to_string());
    }
    for p in phones {
        notify_one(inner, shared, jid, actor, actor_device, &p, change.clone());
    }
}

fn notify_one(inner: &mut Inner, shared: &Shared, jid: &str, actor: &str, actor_device: u16, phone: &str, change: Node) {
    let stanza = NodeBuilder::new("notification")
        .attr("from", jid.to_string())
        .attr("type", "w:gp2")
        .attr("id", shared.stanza_id("gp2"))
        .attr("participant", Jid::pn(actor))
        .attr("t", nodes::now().to_string())
        .attr("notify", inner.dir.account(actor).map(|a| a.push_name.clone()).unwrap_or_default())
        .children([change])
        .build();
    let devices: Vec<u16> = inner.dir.account(phone).map(|a| a.devices.keys().copied().collect()).unwrap_or_default();
    for d in devices {
        // Device 0 is the simulated phone; the acting device knows what it did.
        if d == 0 || (phone == actor && d == actor_device) {
            continue;
        }
        inner.deliver(phone, d, stanza.clone());
    }
}
