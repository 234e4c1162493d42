//! Milestone: link by QR through the admin endpoint, reach Connected, then
//! restart the same client from its store and reach Connected by login.

mod common;

use common::{TestClient, link_new, new_store, start_server};
use std::sync::atomic::Ordering::Relaxed;

use whatsapp_rust::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_link_then_login_again_without_qr() {
    let server = start_server().await;
    let store = new_store();
    let (client, jid) = link_new(&server, store.clone(), "Alice", None).await;
    assert!(jid.contains(':'), "linked JID {jid} names a companion device");
    let pn = client.client().pn().expect("client knows its own number after pairing");
    assert_eq!(pn.to_string(), jid);
    client.stop().await;
    let stats = &server.shared.stats;
    let (xx_before, ik_before) = (stats.xx_handshakes.load(Relaxed), stats.ik_handshakes.load(Relaxed));
    assert_eq!(xx_before, 2, "pairing uses XX twice: registration, then the login after 515");

    let mut again = TestClient::start(&server, store, "Alice").await;
    again
        .wait_for("Connected by login", 30, |e| match e {
            Event::PairingQrCode(_) => panic!("a registered client was offered a QR"),
            Event::LoggedOut(_) => panic!("a registered client was logged out"),
            Event::Connected(_) => Some(()),
            _ => None,
        })
        .await;
    assert_eq!(stats.ik_handshakes.load(Relaxed), ik_before + 1, "a returning client logs in with IK");
    assert_eq!(stats.xx_handshakes.load(Relaxed), xx_before, "no XX on a plain re-login");
    assert_eq!(stats.refused_logins.load(Relaxed), 0);
    again.stop().await;
}
