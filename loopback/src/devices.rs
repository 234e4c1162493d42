//! Device-list change notifications. Clients cache device lists, so when a
//! companion is linked or unlinked the server tells the account's other devices and
//! the online devices of the accounts that know it (`crate::contacts`), as WhatsApp does.

use std::collections::HashSet;

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::nodes;
use crate::state::{Inner, Outbound, Shared};
use crate::usync::signed_key_index_list;

#[derive(Clone, Copy, Debug)]
pub enum Change {
    Added,
    Removed,
}

/// Tells the devices that care that `phone:device` was added or removed.
pub fn announce(shared: &Shared, inner: &Inner, phone: &str, device: u16, change: Change) {
    let Some(account) = inner.dir.account(phone) else { return };
    let ts = nodes::now();
    let (tag, key_index_list) = match change {
        Change::Added => (
            "add",
            NodeBuilder::new("key-index-list").attr("ts", ts.to_string()).bytes(signed_key_index_list(account, ts)).build(),
        ),
        Change::Removed => ("remove", NodeBuilder::new("key-index-list").attr("ts", ts.to_string()).build()),
    };
    let mut device_node =
        NodeBuilder::new("device").attr("jid", Jid::pn_device(phone, device)).attr("lid", Jid::lid_device(&account.lid, device));
    if let Some(d) = account.devices.get(&device) {
        device_node = device_node.attr("key-index", d.key_index.to_string());
    }
    let audience: HashSet<&str> =
        std::iter::once(phone).chain(inner.contacts.known_by(phone)).chain(inner.groups.co_members(phone)).collect();
    let operation = NodeBuilder::new(tag).children([device_node.build(), key_index_list]).build();
    let mut told = 0;
    for ((other_phone, other_device), conn) in &inner.online {
        if (other_phone == phone && *other_device == device) || !audience.contains(other_phone.as_str()) {
            continue;
        }
        let _ = conn.tx.send(Outbound::Node(notification(shared, phone, &account.lid, ts, operation.clone())));
        told += 1;
    }
    tracing::debug!(phone, device, ?change, told, "device list change announced");
}

fn notification(shared: &Shared, phone: &str, lid: &str, ts: u64, operation: Node) -> Node {
    NodeBuilder::new("notification")
        .attr("from", Jid::pn(phone))
        .attr("lid", Jid::lid(lid))
        .attr("id", shared.stanza_id("devices"))
        .attr("type", "devices")
        .attr("t", ts.to_string())
        .children([operation])
        .build()
}
