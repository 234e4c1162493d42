//! Device-list notifications go to the account's devices and to the accounts that know
//! it, as WhatsApp's do, not to every device online: a stranger learns nothing.

mod common;

use common::{link_new, new_store, start_server};
use whatsapp_rust::prelude::*;
use whatsapp_rust::types::events::{DeviceListUpdate, DeviceListUpdateType};

fn about(user: &str) -> impl FnMut(&Event) -> Option<DeviceListUpdate> + '_ {
    move |e| match e {
        Event::DeviceListUpdate(u) if u.user.user == user => Some(u.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_is_told_to_contacts_and_not_to_strangers() {
    let server = start_server().await;
    let (mut a, _) = link_new(&server, new_store(), "Alice", Some("15550007001")).await;
    let (mut b, _) = link_new(&server, new_store(), "Bob", Some("15550007002")).await;
    let (mut stranger, _) = link_new(&server, new_store(), "Carol", Some("15550007003")).await;

    // A and B have talked: each now knows the other.
    let to: Jid = "15550007002@s.whatsapp.net".parse().unwrap();
    let id = a.client().send_text(to, "hi Bob").await.expect("A sends").message_id;
    b.wait_for("B receives A's message", 30, |e| match e {
        Event::Messages(batch) => batch.iter().any(|m| m.info.id == id).then_some(()),
        _ => None,
    })
    .await;

    let (b2, _) = link_new(&server, new_store(), "Bob's laptop", Some("15550007002")).await;
    let update = a.wait_for("A hears of B's new device", 20, about("15550007002")).await;
    assert_eq!(update.update_type, DeviceListUpdateType::Add, "{update:?}");
    b.wait_for("B's first device hears of its new sibling", 20, about("15550007002")).await;
    // Told in the same pass as A: had the stranger been told, it would be queued by now.
    let heard = stranger.try_wait_for("anything about B", 3, about("15550007002")).await;
    assert!(heard.is_none(), "a stranger was told of B's device: {heard:?}");

    for c in [a, b, b2, stranger] {
        c.stop().await;
    }
}
