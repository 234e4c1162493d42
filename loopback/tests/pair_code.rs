//! Linking by pair code: the client shows a code, the phone (admin endpoint)
//! enters it, and the client pairs and connects without any QR scan.

mod common;

use common::{TestClient, new_store, start_server};
use whatsapp_rust::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_by_pair_code() {
    let server = start_server().await;
    let store = new_store();
    let mut client = TestClient::start_with_pair_code(&server, store.clone(), "Carol", "15550003333").await;
    let code = client
        .wait_for("PairingCode", 30, |e| match e {
            Event::PairingCode(p) => Some(p.code.clone()),
            _ => None,
        })
        .await;
    let (status, body) = server.admin_post("/admin/pair-code?phone=15550003333", &code).await;
    assert_eq!(status, 200, "entering the pair code failed: {body}");
    let jid = client
        .wait_for("PairSuccess", 30, |e| match e {
            Event::PairSuccess(p) => Some(p.id.to_string()),
            Event::PairError(p) => panic!("pairing failed: {}", p.error),
            _ => None,
        })
        .await;
    assert!(jid.starts_with("15550003333:"), "linked as {jid}");
    client.wait_for("Connected after pair code", 60, |e| matches!(e, Event::Connected(_)).then_some(())).await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pair_code_does_not_link() {
    let server = start_server().await;
    let mut client = TestClient::start_with_pair_code(&server, new_store(), "Dave", "15550004444").await;
    let code = client
        .wait_for("PairingCode", 30, |e| match e {
            Event::PairingCode(p) => Some(p.code.clone()),
            _ => None,
        })
        .await;
    let wrong: String = code.chars().rev().collect();
    assert_ne!(wrong, code);
    let (status, body) = server.admin_post("/admin/pair-code?phone=15550004444", &wrong).await;
    assert_eq!(status, 200, "the phone accepts any typed code: {body}");
    // The client cannot unwrap the phone's ephemeral with its own code, so its
    // key bundle does not decrypt and no pair-success is ever sent.
    let linked = client.try_wait_for("PairSuccess", 5, |e| matches!(e, Event::PairSuccess(_)).then_some(())).await;
    assert!(linked.is_none(), "a wrong code must not link");
    assert!(server.shared.lock().dir.account("15550004444").is_some_and(|a| a.devices.is_empty()));
    client.handle.abort();
}
