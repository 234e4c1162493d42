//! Answers to the client's IQs. Most only need to exist: the client logs their
//! failures. The ones that gate `Connected` are passive/active (followed by the
//! offline marker) and the critical app-state sync.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::nodes::{attr, attr_string, child, children, iq_error, iq_result};
use crate::session::{Role, Session};
use crate::{groups, media, pair_code, prekeys, usync};

pub fn answer(session: &Session, node: &Node) -> Vec<Node> {
    let xmlns = attr(node, "xmlns").unwrap_or_default().into_owned();
    let kind = attr(node, "type").unwrap_or_default().into_owned();
    match (xmlns.as_str(), kind.as_str()) {
        ("passive", _) => passive(session, node),
        ("md", "set") if child(node, "link_code_companion_reg").is_some() => pair_code::answer(session, node),
        ("encrypt", _) => vec![prekeys::answer(session, node)],
        ("usync", _) => vec![usync::answer(session, node)],
        ("w:g2", _) => groups::answer(session, node),
        ("w:sync:app:state", _) => vec![app_state(node)],
        ("w:p", _) => vec![iq_result(node, vec![])],
        ("w:m", _) if child(node, "media_conn").is_some() => vec![media::media_conn(session, node)],
        ("abt", _) => {
            vec![iq_result(node, vec![NodeBuilder::new("props").attr("protocol", "1").attr("hash", "loopback").build()])]
        }
        ("blocklist", "get") => vec![iq_result(node, vec![NodeBuilder::new("list").build()])],
        ("privacy", "get") => vec![iq_result(node, vec![privacy()])],
        ("md" | "privacy" | "blocklist" | "status" | "w:profile:picture" | "disappearing_mode", _) => {
            vec![iq_result(node, vec![])]
        }
        _ => {
            tracing::warn!(xmlns, kind, "unhandled iq, answering 501: {node:?}");
            vec![iq_error(node, 501, "feature-not-implemented")]
        }
    }
}

/// `<active/>` ends passive mode; the offline queue and its end marker follow,
/// and the client waits for that marker (60 s otherwise) before going on.
fn passive(session: &Session, node: &Node) -> Vec<Node> {
    let mut out = vec![iq_result(node, vec![])];
    if child(node, "active").is_none() {
        return out;
    }
    if let Role::Device { phone, device } = &session.role {
        let mut inner = session.shared.lock();
        let queued = inner.offline.remove(&(phone.clone(), *device)).unwrap_or_default();
        // Queued messages stay owed until this connection acknowledges them.
        let owed = queued.iter().filter(|n| n.tag == "message").filter_map(|n| Some((attr_string(n, "id")?, n.clone())));
        let owed: Vec<_> = owed.collect();
        inner.unacked.entry(session.conn_id).or_default().extend(owed);
        drop(inner);
        let count = queued.len();
        out.extend(queued);
        out.push(
            NodeBuilder::new("ib")
                .attr("from", wacore_binary::SERVER_JID)
                .children([NodeBuilder::new("offline").attr("count", count.to_string()).build()])
                .build(),
        );
    }
    out
}

/// Every requested collection is echoed back as empty at its current version,
/// which the client counts as synced with no mutations.
fn app_state(node: &Node) -> Node {
    let collections = child(node, "sync")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter(|c| c.tag == "collection")
        .map(|c| {
            let name = attr(c, "name").unwrap_or_default().into_owned();
            let version = attr(c, "version").unwrap_or(std::borrow::Cow::Borrowed("0")).into_owned();
            NodeBuilder::new("collection").attr("name", name).attr("version", version).build()
        })
        .collect::<Vec<_>>();
    iq_result(node, vec![NodeBuilder::new("sync").children(collections).build()])
}

fn privacy() -> Node {
    let categories = [
        ("last", "all"),
        ("online", "all"),
        ("profile", "all"),
        ("status", "all"),
        ("groupadd", "all"),
        ("readreceipts", "all"),
        ("calladd", "all"),
    ]
    .map(|(name, value)| NodeBuilder::new("category").attr("name", name).attr("value", value).build());
    NodeBuilder::new("privacy").children(categories).build()
}
