//! Issue 6 §1: a returning client whose cached server static is stale (the server's
//! key changed) sends an IK hello the server cannot read; the server answers
//! XXfallback and the client logs in on that same connection, with no plain XX retry.

mod common;

use common::{TestClient, link_new, new_store, start_server};
use std::sync::atomic::Ordering::Relaxed;

use whatsapp_rust::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_stale_server_key_logs_in_by_xx_fallback() {
    let server = start_server().await;
    let store = new_store();
    let (client, _jid) = link_new(&server, store.clone(), "Alice", None).await;
    client.stop().await;
    let stats = &server.shared.stats;
    let snapshot = || {
        (
            stats.xx_handshakes.load(Relaxed),
            stats.ik_handshakes.load(Relaxed),
            stats.xx_fallback_handshakes.load(Relaxed),
            stats.logins.load(Relaxed),
        )
    };
    let (xx, ik, fallback, logins) = snapshot();
    assert_eq!((xx, ik, fallback), (2, 0, 0), "pairing: XX registration, XX login after 515");

    // The server's static key changes; the account and its device stay.
    let old_key = server.shared.keys.public();
    server.shared.keys.rotate();
    assert_ne!(server.shared.keys.public(), old_key);

    let mut again = TestClient::start(&server, store.clone(), "Alice").await;
    again
        .wait_for("Connected after XXfallback", 30, |e| match e {
            Event::PairingQrCode(_) => panic!("a registered client was offered a QR"),
            Event::LoggedOut(_) => panic!("a registered client was logged out"),
            Event::Connected(_) => Some(()),
            _ => None,
        })
        .await;
    assert_eq!(
        snapshot(),
        (xx, ik + 1, fallback + 1, logins + 1),
        "one connection: an IK hello answered with XXfallback, one login, no plain XX retry"
    );
    assert_eq!(stats.refused_logins.load(Relaxed), 0);
    again.stop().await;

    // The fallback gave the client the new key: the next login is a plain IK.
    let mut third = TestClient::start(&server, store, "Alice").await;
    third.wait_for("Connected by IK", 30, |e| matches!(e, Event::Connected(_)).then_some(())).await;
    assert_eq!(
        snapshot(),
        (xx, ik + 2, fallback + 1, logins + 2),
        "the client cached the new key from the fallback and IK now succeeds"
    );
    third.stop().await;
}
