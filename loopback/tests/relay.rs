//! 1:1 relay between linked devices: server acks, delivery and read receipts,
//! the offline queue, and the sender's own second device.

mod common;

use common::{link_new, new_store, start_server};
use whatsapp_rust::prelude::*;
use whatsapp_rust::wacore::types::presence::ReceiptType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_a_reaches_b() {
    let server = start_server().await;
    let (mut a, a_jid) = link_new(&server, new_store(), "Alice", Some("15550001111")).await;
    let (mut b, b_jid) = link_new(&server, new_store(), "Bob", Some("15550002222")).await;
    assert!(a_jid.starts_with("15550001111:"), "A linked as {a_jid}");
    assert!(b_jid.starts_with("15550002222:"), "B linked as {b_jid}");

    let to: Jid = "15550002222@s.whatsapp.net".parse().unwrap();
    let sent = a.client().send_text(to, "hello from A").await.expect("A sends");
    let id = sent.message_id.clone();

    let text = b
        .wait_for("B receives the message", 30, |e| match e {
            Event::Messages(batch) => {
                batch.iter().find_map(|m| (m.info.id == id).then(|| m.message.conversation.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .await;
    assert_eq!(text, "hello from A");

    a.wait_for("server ack for A's message", 10, |e| match e {
        Event::ServerAck(ack) if ack.id == id && ack.class.as_deref() == Some("message") => {
            assert!(ack.error.is_none(), "send was nacked: {:?}", ack.error);
            Some(())
        }
        _ => None,
    })
    .await;
    a.wait_for("delivery receipt from B", 20, |e| match e {
        Event::Receipt(r) if r.message_ids.contains(&id) => Some(()),
        _ => None,
    })
    .await;

    let chat: Jid = "15550001111@s.whatsapp.net".parse().unwrap();
    b.client().mark_as_read(&chat, None, &[id.as_str()]).await.expect("B marks read");
    a.wait_for("read receipt from B", 20, |e| match e {
        Event::Receipt(r) if r.message_ids.contains(&id) && r.r#type == ReceiptType::Read => Some(()),
        _ => None,
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_for_an_offline_device_arrives_at_its_next_login() {
    let server = start_server().await;
    let (a, _) = link_new(&server, new_store(), "Alice", Some("15550005555")).await;
    let b_store = new_store();
    let (b, _) = link_new(&server, b_store.clone(), "Bob", Some("15550006666")).await;
    b.stop().await;

    let to: Jid = "15550006666@s.whatsapp.net".parse().unwrap();
    let id = a.client().send_text(to, "while you were away").await.expect("A sends").message_id;

    let mut b = common::TestClient::start(&server, b_store, "Bob").await;
    let text = b
        .wait_for("B receives the queued message", 30, |e| match e {
            Event::Messages(batch) => {
                batch.iter().find_map(|m| (m.info.id == id).then(|| m.message.conversation.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .await;
    assert_eq!(text, "while you were away");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_second_device_sees_the_message_as_from_me() {
    let server = start_server().await;
    let (mut b, _) = link_new(&server, new_store(), "Bob", Some("15550008888")).await;
    let (a1, _) = link_new(&server, new_store(), "Alice", Some("15550007777")).await;
    let (mut a2, a2_jid) = link_new(&server, new_store(), "Alice", Some("15550007777")).await;
    assert!(a2_jid.starts_with("15550007777:2"), "second device of A linked as {a2_jid}");

    let to: Jid = "15550008888@s.whatsapp.net".parse().unwrap();
    let id = a1.client().send_text(to, "copy to my other device").await.expect("A1 sends").message_id;

    let (text, from_me, chat) = a2
        .wait_for("A2 receives its own sent message", 30, |e| match e {
            Event::Messages(batch) => batch.iter().find_map(|m| {
                (m.info.id == id).then(|| {
                    let text = m.message.conversation.clone().or_else(|| {
                        m.message
                            .device_sent_message
                            .as_option()
                            .and_then(|d| d.message.as_option())
                            .and_then(|inner| inner.conversation.clone())
                    });
                    (text.unwrap_or_default(), m.info.source.is_from_me, m.info.source.chat.to_string())
                })
            }),
            _ => None,
        })
        .await;
    assert_eq!(text, "copy to my other device");
    assert!(from_me, "A2 sees the message as sent by its own account");
    assert_eq!(chat, "15550008888@s.whatsapp.net");
    b.wait_for("B receives it too", 30, |e| match e {
        Event::Messages(batch) => batch.iter().any(|m| m.info.id == id).then_some(()),
        _ => None,
    })
    .await;
    a1.stop().await;
    a2.stop().await;
    b.stop().await;
}
