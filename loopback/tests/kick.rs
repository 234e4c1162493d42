//! Forcing clients away through the admin endpoint (§7): a conflict ends the
//! session without reconnecting, an unlink logs the device out for good.

mod common;

use std::sync::atomic::Ordering::Relaxed;

use common::{TestClient, link_new, new_store, start_server};
use whatsapp_rust::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_replaced_emits_stream_replaced() {
    let server = start_server().await;
    let (mut client, jid) = link_new(&server, new_store(), "Erin", None).await;
    let logins = server.shared.stats.logins.load(Relaxed);
    let (status, body) = server.admin_post(&format!("/admin/kick?jid={jid}&reason=replaced"), "").await;
    assert_eq!(status, 204, "kick failed: {body}");
    client.wait_for("StreamReplaced", 10, |e| matches!(e, Event::StreamReplaced(_)).then_some(())).await;
    let reconnected = client.try_wait_for("Connected", 3, |e| matches!(e, Event::Connected(_)).then_some(())).await;
    assert!(reconnected.is_none(), "a replaced client must not reconnect");
    assert_eq!(server.shared.stats.logins.load(Relaxed), logins);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinked_device_is_logged_out_and_refused() {
    let server = start_server().await;
    let store = new_store();
    let (mut client, jid) = link_new(&server, store.clone(), "Frank", None).await;
    let (status, body) = server.admin_post(&format!("/admin/kick?jid={jid}&reason=401"), "").await;
    assert_eq!(status, 204, "kick failed: {body}");
    client.wait_for("LoggedOut", 10, |e| matches!(e, Event::LoggedOut(_)).then_some(())).await;
    client.stop().await;

    // Its store still holds the identity; the server no longer knows it.
    let mut again = TestClient::start(&server, store, "Frank").await;
    let on_connect = again
        .wait_for("LoggedOut at login", 20, |e| match e {
            Event::LoggedOut(l) => Some(l.on_connect),
            Event::Connected(_) => panic!("an unlinked device logged in"),
            _ => None,
        })
        .await;
    assert!(on_connect, "the refusal comes as <failure> at connect");
    assert_eq!(server.shared.stats.refused_logins.load(Relaxed), 1);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_end_makes_the_client_reconnect_by_itself() {
    let server = start_server().await;
    let (mut client, jid) = link_new(&server, new_store(), "Gina", None).await;
    let logins = server.shared.stats.logins.load(Relaxed);
    let (status, body) = server.admin_post(&format!("/admin/kick?jid={jid}&reason=end"), "").await;
    assert_eq!(status, 204, "kick failed: {body}");
    client.wait_for("Connected again", 30, |e| matches!(e, Event::Connected(_)).then_some(())).await;
    assert_eq!(server.shared.stats.logins.load(Relaxed), logins + 1);
    client.stop().await;
}
