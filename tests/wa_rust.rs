//! The whatsapp-rust side without a WhatsApp server: a client is built and spawned for a
//! fresh session (its device record lands in Postgres, fenced by the lease), a stale
//! lease refuses to open, failed connection attempts surface as ConnectFailure, inbound
//! messages convert to inbox rows (and commit once, fenced), outbound payloads build or
//! fail with the field named, events map with their decisions, and sends resolve on the
//! server ack.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pgwa_core::config::RustConfig;
use pgwa_core::fence::Fence;
use pgwa_core::wa::{OutboundMessage, ReceiptKind, SendError, SessionSpec, WaEvent, WhatsApp};
use pgwa_pg::{leases, workers};
use pgwa_testkit::TestDb;
use pgwa_wa::rust::RustWhatsApp;
use pgwa_wa::rust::acks::{AckOutcome, AckWaiters};
use pgwa_wa::rust::events::{self, Flags, Identity};
use pgwa_wa::rust::inbound::{InboxHook, to_inbound};
use pgwa_wa::rust::send::{self, MediaKind, MediaSource, Quoted, Request};
use serde_json::json;
use uuid::Uuid;
use whatsapp_rust::Jid;
use whatsapp_rust::types::events as ev;
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore::types::message::{MessageInfo, MessageSource};
use whatsapp_rust::waproto::whatsapp as wa;

/// A session held by a fresh worker: (worker, epoch).
async fn held_session(db: &TestDb) -> (Uuid, i64) {
    let worker = Uuid::now_v7();
    workers::register(&db.pool, &pgwa_pg::workers::Registration::new(worker, "test", 10)).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let held = leases::claim(&db.pool, worker, 60.0, 10).await.unwrap();
    assert_eq!(held.len(), 1);
    (worker, held[0].epoch)
}

/// Nothing listens on port 9 of the loopback: every connection attempt is refused at
/// once, no network needed.
fn offline_config() -> RustConfig {
    RustConfig {
        ws_url: Some("ws://127.0.0.1:9/ws/chat".into()),
        version: Some((2, 3000, 1_000_000_000)),
        stats_poll_ms: 20,
        close_grace_ms: 3_000,
        ..RustConfig::default()
    }
}

#[tokio::test]
async fn a_fresh_session_gets_its_device_record_and_reports_failed_connection_attempts() {
    let db = TestDb::new().await.unwrap();
    let (worker, epoch) = held_session(&db).await;
    let wa = RustWhatsApp::new(db.pool.clone(), offline_config());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = SessionSpec { id: "s1".into(), epoch, worker_id: worker, pair_phone: None };
    let session = wa.open(spec, tx).await.expect("the client builds and spawns");

    let devices: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wa.auth_state WHERE session_id = 's1'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(devices, 1, "the device record was created in Postgres");
    assert!(wa.sessions().get("s1", epoch).is_some(), "the open session is reachable for key cleanup");
    assert!(wa.sessions().get("s1", epoch + 1).is_none(), "but not under another epoch");

    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = rx.recv().await.expect("events flow");
            assert_eq!((e.session.as_str(), e.epoch), ("s1", epoch));
            if let WaEvent::ConnectFailure { reason } = e.event {
                break reason;
            }
        }
    })
    .await
    .expect("a refused connection attempt is reported");
    assert!(got.contains("connection attempt failed"), "{got}");

    let msg = OutboundMessage {
        job_id: 1,
        message_id: "3EB0AAAAAAAAAAAAAAAAAA".into(),
        chat: "15550000001@s.whatsapp.net".into(),
        payload: json!({"text": "hi"}),
        attempt: 1,
    };
    assert_eq!(session.send(&msg).await, Err(SendError::NotConnected));
    let bad = OutboundMessage { payload: json!({"type": "sticker_pack"}), ..msg };
    assert!(
        matches!(session.send(&bad).await, Err(SendError::Permanent(m)) if m.contains("payload.type")),
        "validation comes first"
    );

    tokio::time::timeout(Duration::from_secs(10), session.close(false)).await.expect("close is bounded").unwrap();
    session.close(false).await.expect("closing twice is harmless");

    // A closed client is single-use: reconnect builds a new one on the same device.
    session.reconnect().await.expect("a new client starts");
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.auth_state").fetch_one(&db.pool).await.unwrap();
    assert_eq!(devices, 1, "the same device record is reused");
    // Never linked: a logout has nothing to unlink and closes at once.
    tokio::time::timeout(Duration::from_secs(10), session.close(true)).await.expect("bounded").unwrap();

    // Once the lease moved on, the old holder cannot start a client again.
    let other = Uuid::now_v7();
    workers::register(&db.pool, &pgwa_pg::workers::Registration::new(other, "other", 10)).await.unwrap();
    sqlx::query("UPDATE wa.sessions SET epoch = epoch + 1, owner_id = $1").bind(other).execute(&db.pool).await.unwrap();
    let err = session.reconnect().await.unwrap_err();
    assert!(matches!(err, pgwa_core::wa::WaError::LeaseLost { .. }), "{err}");
    let err = err.to_string();
    assert!(err.contains("lease lost"), "{err}");
}

#[tokio::test]
async fn a_stale_lease_refuses_to_open() {
    let db = TestDb::new().await.unwrap();
    let (worker, epoch) = held_session(&db).await;
    // Another worker took the session over meanwhile.
    let other = Uuid::now_v7();
    workers::register(&db.pool, &pgwa_pg::workers::Registration::new(other, "other", 10)).await.unwrap();
    sqlx::query("UPDATE wa.sessions SET epoch = epoch + 1, owner_id = $1").bind(other).execute(&db.pool).await.unwrap();
    let wa = RustWhatsApp::new(db.pool.clone(), offline_config());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = SessionSpec { id: "s1".into(), epoch, worker_id: worker, pair_phone: None };
    let err = wa.open(spec, tx).await.err().expect("open fails");
    assert!(matches!(err, pgwa_core::wa::WaError::LeaseLost { .. }), "{err}");
    let err = err.to_string();
    assert!(err.contains("lease lost") && err.contains("s1") && err.contains(&format!("epoch {epoch}")), "{err}");
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.auth_state").fetch_one(&db.pool).await.unwrap();
    assert_eq!(devices, 0, "nothing was written");
}

fn info(id: &str, from_me: bool) -> MessageInfo {
    let peer = "15550000001@s.whatsapp.net".parse::<Jid>().unwrap();
    MessageInfo {
        id: id.into(),
        source: MessageSource { chat: peer.clone(), sender: peer, is_from_me: from_me, ..Default::default() },
        push_name: "Ana".into(),
        timestamp: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        ..Default::default()
    }
}

fn text(t: &str) -> wa::Message {
    wa::Message { conversation: Some(t.into()), ..Default::default() }
}

fn quoting(t: &str, quoted_id: &str) -> wa::Message {
    let q = Quoted { id: quoted_id.into(), participant: "15550000001@s.whatsapp.net".into(), text: Some("earlier".into()) };
    send::text_message(t, Some(&q), &[])
}

fn image() -> wa::Message {
    wa::Message {
        image_message: whatsapp_rust::buffa::MessageField::some(wa::message::ImageMessage {
            mimetype: Some("image/jpeg".into()),
            caption: Some("look".into()),
            file_length: Some(1234),
            width: Some(640),
            height: Some(480),
            direct_path: Some("/v/t62/abc".into()),
            media_key: Some(vec![7; 32]),
            jpeg_thumbnail: Some(vec![1, 2, 3]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn inbound_messages_convert_to_inbox_rows() {
    let t = to_inbound(&text("hello"), &info("A1", false)).unwrap();
    assert_eq!((t.kind.as_str(), t.text.as_deref(), t.quoted_id.as_deref()), ("text", Some("hello"), None));
    assert_eq!(
        (t.chat.as_str(), t.sender.as_str(), t.message_id.as_str()),
        ("15550000001@s.whatsapp.net", "15550000001@s.whatsapp.net", "A1")
    );
    assert_eq!(t.sent_at.unwrap().timestamp(), 1_700_000_000);
    let raw = t.raw.unwrap();
    assert_eq!(raw["message"], json!({"conversation": "hello"}), "nulls are stripped");
    assert_eq!(raw["push_name"], "Ana");

    let r = to_inbound(&quoting("yes", "Q9"), &info("A2", false)).unwrap();
    assert_eq!((r.kind.as_str(), r.text.as_deref(), r.quoted_id.as_deref()), ("text", Some("yes"), Some("Q9")));

    let i = to_inbound(&image(), &info("A3", false)).unwrap();
    assert_eq!((i.kind.as_str(), i.text.as_deref()), ("image", Some("look")));
    let media = i.media.unwrap();
    assert_eq!(
        (media["mimetype"].as_str(), media["width"].as_u64(), media["file_length"].as_u64()),
        (Some("image/jpeg"), Some(640), Some(1234))
    );
    assert_eq!(media["media_key"].as_str().map(str::len), Some(44), "bytes as base64");
    assert!(media.get("url").is_none(), "unset fields are left out");
    assert!(!i.raw.unwrap().to_string().contains("jpeg_thumbnail"), "thumbnails are dropped from raw");

    assert!(to_inbound(&text("mine"), &info("A4", true)).is_none(), "our own messages from the phone are skipped");
    let revoke =
        wa::Message { protocol_message: whatsapp_rust::buffa::MessageField::some(Default::default()), ..Default::default() };
    assert!(to_inbound(&revoke, &info("A5", false)).is_none(), "protocol messages are skipped");
}

#[tokio::test]
async fn the_inbox_hook_commits_once_and_refuses_without_the_lease() {
    let db = TestDb::new().await.unwrap();
    let (worker, epoch) = held_session(&db).await;
    let row = to_inbound(&text("hello"), &info("A1", false)).unwrap();
    let writer = pgwa_pg::inbox::InboxWriter::new(db.pool.clone());
    let hook = |epoch| InboxHook {
        pool: db.pool.clone(),
        writer: writer.clone(),
        fence: Fence { worker, session: "s1".into(), epoch },
        unbuffered: Default::default(),
        attempts: 2,
        pause: Duration::from_millis(5),
        outage_wait: Duration::from_secs(5),
    };
    assert_eq!(hook(epoch).commit(vec![row.clone()]).await.unwrap(), 1);
    assert_eq!(hook(epoch).commit(vec![row.clone()]).await.unwrap(), 0, "a redelivery is deduplicated and still acked");
    let err = hook(epoch - 1).commit(vec![row]).await.unwrap_err().to_string();
    assert!(err.contains("lease lost"), "a stale holder must not ack: {err}");
    let stored: (i64, String) = sqlx::query_as("SELECT count(*), min(text) FROM wa.inbox").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, (1, "hello".into()));
}

/// A held session's key store and durability hook, sharing their note of the buffered
/// copies; with `combined`, the store writes through a combiner as a worker's does (and
/// so holds its inbound copies in memory).
async fn store_and_hook(db: &TestDb, combined: bool) -> (pgwa_pg::keys::PgBackend, InboxHook) {
    let (worker, epoch) = held_session(db).await;
    let fence = Fence { worker, session: "s1".into(), epoch };
    let unbuffered = Arc::new(pgwa_pg::unbuffered::Unbuffered::default());
    let mut store = pgwa_pg::keys::PgBackend::fenced(db.pool.clone(), fence.clone());
    if combined {
        store = store.combining(pgwa_pg::keys::Combiner::new(db.pool.clone()));
    }
    let hook = InboxHook {
        pool: db.pool.clone(),
        writer: pgwa_pg::inbox::InboxWriter::new(db.pool.clone()),
        fence,
        unbuffered: unbuffered.clone(),
        attempts: 2,
        pause: Duration::from_millis(5),
        outage_wait: Duration::from_secs(5),
    };
    (store.unbuffered_by(unbuffered), hook)
}

async fn buffered_ids(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT stanza_id FROM wa.pending_inbound ORDER BY 1").fetch_all(pool).await.unwrap()
}

/// The hook's inbox statement deletes the message's buffered copy, and notes it, so the
/// session's key store leaves that key out of whatsapp-rust's deletion after the hook:
/// shown by a deletion that still goes through for the key the hook did not store (a
/// protocol message) and is never sent for the stored one, whose buffered row, written
/// again after the hook, then stays.
#[tokio::test]
async fn the_key_store_leaves_out_the_buffered_rows_the_hook_deleted() {
    use whatsapp_rust::wacore::store::traits::{PendingInboundKey, PendingInboundRow, ProtocolStore};
    let db = TestDb::new().await.unwrap();
    let (store, hook) = store_and_hook(&db, false).await;
    let row = to_inbound(&text("hello"), &info("A1", false)).unwrap();
    let (chat, sender) = (row.chat.clone(), row.sender.clone());
    let buffered = |id: &'static str| PendingInboundRow { chat: &chat, sender: &sender, id, message: b"m" };
    let left = || buffered_ids(&db.pool);

    store.store_pending_inbound_batch(&[buffered("A1"), buffered("P1")]).await.unwrap();
    assert_eq!(hook.commit(vec![row]).await.unwrap(), 1);
    assert_eq!(left().await, ["P1"], "the inbox statement deleted A1's buffered copy, not P1's");

    store.store_pending_inbound_batch(&[buffered("A1")]).await.unwrap();
    let keys = |id| PendingInboundKey { chat: &chat, sender: &sender, id };
    store.delete_pending_inbound_batch(&[keys("A1"), keys("P1")]).await.unwrap();
    assert_eq!(left().await, ["A1"], "P1 deleted; A1 left out, as the hook had deleted it");
    store.delete_pending_inbound_batch(&[keys("A1")]).await.unwrap();
    assert!(left().await.is_empty(), "the note is used once");
}

/// With the worker's combined key writes, the copy is held in memory: the hook's inbox
/// commit drops it unwritten, and a copy the inbox never took is written before the
/// session's next key write.
#[tokio::test]
async fn the_inbox_commit_drops_a_held_copy_unwritten() {
    use whatsapp_rust::wacore::store::traits::{PendingInboundRow, ProtocolStore, SignalStore};
    let db = TestDb::new().await.unwrap();
    let (store, hook) = store_and_hook(&db, true).await;
    let row = to_inbound(&text("hello"), &info("A1", false)).unwrap();
    let (chat, sender) = (row.chat.clone(), row.sender.clone());
    let buffered = |id: &'static str| PendingInboundRow { chat: &chat, sender: &sender, id, message: b"m" };
    let left = || buffered_ids(&db.pool);

    store.store_pending_inbound_batch(&[buffered("A1"), buffered("P1")]).await.unwrap();
    assert!(left().await.is_empty(), "held, not written");
    assert_eq!(hook.commit(vec![row]).await.unwrap(), 1);
    store.put_session("c.0", b"ratchet").await.unwrap();
    assert_eq!(left().await, ["P1"], "A1's copy dropped with its inbox commit; P1's written before the ratchet");
}

fn perm(r: Result<Request, SendError>) -> String {
    match r {
        Err(SendError::Permanent(m)) => m,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];

#[test]
fn outbound_payloads_build_or_fail_with_the_field_named() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let max = 1024;

    assert_eq!(
        send::parse(&json!({"to": "+1555", "text": "hi"}), max).unwrap(),
        Request::Text { text: "hi".into(), reply_to: None, mentions: vec![] }
    );
    let m = send::text_message("hi", None, &[]);
    assert_eq!(m.conversation.as_deref(), Some("hi"));

    let Request::Text { text, reply_to, .. } =
        send::parse(&json!({"type": "text", "text": "yes", "reply_to": "Q1"}), max).unwrap()
    else {
        panic!()
    };
    let q = Quoted { id: reply_to.unwrap(), participant: "15550000001@s.whatsapp.net".into(), text: Some("earlier".into()) };
    let m = send::text_message(&text, Some(&q), &[]);
    let ext = m.extended_text_message.as_option().unwrap();
    let ctx = ext.context_info.as_option().unwrap();
    assert_eq!(
        (ext.text.as_deref(), ctx.stanza_id.as_deref(), ctx.participant.as_deref()),
        (Some("yes"), Some("Q1"), Some("15550000001@s.whatsapp.net"))
    );

    let r = send::parse(&json!({"type": "reaction", "message_id": "T1", "emoji": "👍"}), max).unwrap();
    assert_eq!(r, Request::Reaction { target: "T1".into(), emoji: "👍".into(), from_me: None });
    let m = send::reaction_message("15550000001@s.whatsapp.net", "T1", "👍", true, None, 1_700_000_000_000);
    let reaction = m.reaction_message.as_option().unwrap();
    let key = reaction.key.as_option().unwrap();
    assert_eq!((key.id.as_deref(), key.from_me, reaction.text.as_deref()), (Some("T1"), Some(true), Some("👍")));
    assert!(
        matches!(send::parse(&json!({"type": "reaction", "message_id": "T1", "emoji": ""}), max), Ok(Request::Reaction { .. })),
        "empty emoji removes"
    );

    let Request::Media(img) = send::parse(&json!({"type": "image", "data": b64(PNG), "caption": "c"}), max).unwrap() else {
        panic!()
    };
    assert_eq!((img.kind, &img.source, img.caption.as_deref()), (MediaKind::Image, &MediaSource::Bytes(PNG.to_vec()), Some("c")));
    assert_eq!(send::media_mimetype(&img, PNG), "image/png", "sniffed when not given");
    let Request::Media(doc) =
        send::parse(&json!({"type": "document", "url": "https://example.com/a.pdf", "file_name": "a.pdf"}), max).unwrap()
    else {
        panic!()
    };
    assert_eq!((doc.kind, &doc.source), (MediaKind::Document, &MediaSource::Url("https://example.com/a.pdf".into())));
    assert_eq!(send::media_mimetype(&doc, b"%PDF"), "application/octet-stream");

    for (payload, field) in [
        (json!({"type": "text"}), "payload.text: missing"),
        (json!({"text": 5}), "payload.text: must be a string"),
        (json!({"type": "sticker_pack"}), "payload.type"),
        (json!({"type": "text", "text": "hi", "mentions": ["x@g.us"]}), "payload.mentions"),
        (json!({"type": "location", "latitude": 91, "longitude": 0}), "payload.latitude"),
        (json!({"type": "location", "latitude": 0, "longitude": "east"}), "payload.longitude"),
        (json!({"type": "contact", "display_name": "Ana", "phones": []}), "payload.phones"),
        (json!({"type": "contact", "display_name": "Ana", "phones": ["12ab"]}), "payload.phones"),
        (json!({"type": "contact", "phones": ["5511999998888"]}), "payload.display_name"),
        (json!({"type": "edit", "message_id": "3EB0AA"}), "payload.text"),
        (json!({"type": "revoke"}), "payload.message_id"),
        (json!({"type": "reaction", "emoji": "x"}), "payload.message_id"),
        (json!({"type": "reaction", "message_id": "T1"}), "payload.emoji"),
        (json!({"type": "image"}), "payload.data: missing"),
        (json!({"type": "image", "data": b64(PNG), "url": "https://x.y/z"}), "not both"),
        (json!({"type": "image", "data": "***"}), "not valid base64"),
        (json!({"type": "image", "data": b64(b"plain text, not an image")}), "not a JPEG, PNG or WebP"),
        (json!({"type": "image", "data": b64(&[0xFF, 0xD8, 0xFF]), "mimetype": "application/pdf"}), "payload.mimetype"),
        (json!({"type": "document", "data": b64(&[0u8; 2048])}), "limit"),
        (json!({"type": "document", "url": "ftp://x.y/z"}), "not http or https"),
        (json!({"type": "document", "url": "not a url"}), "payload.url"),
        (json!("just a string"), "JSON object"),
    ] {
        let m = perm(send::parse(&payload, max));
        assert!(m.contains(field), "{payload}: {m}");
    }
}

#[tokio::test]
async fn sends_resolve_on_the_server_ack() {
    let acks = AckWaiters::default();
    let short = Duration::from_millis(30);

    let w = acks.register("M1");
    let at = Utc::now();
    assert!(acks.resolve("M1", AckOutcome { error: None, at: Some(at) }));
    let ok = w.wait(short).await.unwrap();
    assert_eq!((ok.message_id.as_str(), ok.at), ("M1", at));

    let w = acks.register("M2");
    acks.resolve("M2", AckOutcome { error: Some("479".into()), at: None });
    assert!(matches!(w.wait(short).await, Err(SendError::Permanent(m)) if m.contains("nack 479")), "a nack keeps its code");

    let w = acks.register("M463");
    acks.resolve("M463", AckOutcome { error: Some("463".into()), at: None });
    let e = w.wait(short).await;
    assert!(
        matches!(&e, Err(SendError::Permanent(m)) if m.contains("nack 463 (missing trusted-contact token") && m.contains("write first")),
        "463 fails for good and says why and what to do: {e:?}"
    );

    let w = acks.register("M3");
    acks.resolve("M3", AckOutcome { error: Some("503".into()), at: None });
    assert!(matches!(w.wait(short).await, Err(SendError::Retryable(m)) if m.contains("503")), "a busy server is retryable");

    let w = acks.register("M4");
    assert!(matches!(w.wait(short).await, Err(SendError::Retryable(m)) if m.contains("no server ack")));
    assert_eq!(acks.pending(), 0, "a timed-out waiter unregisters");
    assert!(!acks.resolve("M4", AckOutcome { error: None, at: None }), "a late ack finds nobody");

    let w = acks.register("M5");
    assert_eq!(acks.fail_all(), 1);
    assert!(matches!(w.wait(short).await, Err(SendError::Retryable(m)) if m.contains("dropped")));

    let first = acks.register("M6");
    let second = acks.register("M6");
    drop(first);
    assert_eq!(acks.pending(), 1, "dropping a replaced waiter keeps the newer one");
    acks.resolve("M6", AckOutcome { error: None, at: None });
    assert!(second.wait(short).await.is_ok());
}

fn me() -> Identity {
    Identity {
        jid: Some("15559990000:3@s.whatsapp.net".into()),
        lid: Some("100000009@lid".into()),
        push_name: Some("Salon".into()),
    }
}

/// A group notification names the group and what happened; a removal of this number
/// (by phone JID or LID, whatever device the client runs as) says so.
#[test]
fn group_notifications_map_to_group_changes() {
    use whatsapp_rust::wacore::stanza::groups::{GroupNotificationAction as Action, GroupParticipantInfo};
    let flags = Flags::new(Duration::from_secs(60));
    let who = |jid: &str| GroupParticipantInfo {
        jid: jid.parse().unwrap(),
        phone_number: None,
        display_name: None,
        r#type: None,
        lid: None,
        username: None,
        join_time: None,
        group_history_sent_state: None,
    };
    let update = |action: Action| {
        let u = ev::GroupUpdate::builder()
            .group_jid("120363000000000001@g.us".parse().unwrap())
            .timestamp(Utc::now())
            .is_lid_addressing_mode(false)
            .action(action)
            .build();
        events::map(&ev::Event::GroupUpdate(u), &flags, Utc::now(), me)
    };
    let changed = |got: Vec<WaEvent>| match &got[..] {
        [WaEvent::GroupChanged(g)] => (g.group.clone(), g.action.clone(), g.removed_me),
        other => panic!("expected one group change, got {other:?}"),
    };
    let group = "120363000000000001@g.us".to_string();
    let add = update(Action::Add { participants: vec![who("15559990000@s.whatsapp.net")], reason: None });
    assert_eq!(changed(add), (group.clone(), "add".into(), false), "added: the group is read again, not left");
    let others = update(Action::Remove { participants: vec![who("15550001111@s.whatsapp.net")], reason: None });
    assert_eq!(changed(others), (group.clone(), "remove".into(), false));
    let by_phone = update(Action::Remove { participants: vec![who("15559990000@s.whatsapp.net")], reason: None });
    assert_eq!(changed(by_phone), (group.clone(), "remove".into(), true), "our phone JID, though we run as device 3");
    let by_lid = update(Action::Remove { participants: vec![who("100000009@lid")], reason: None });
    assert!(changed(by_lid).2, "our LID");
}

#[test]
fn events_map_to_session_events() {
    let flags = Flags::new(Duration::from_secs(60));
    let now = Utc::now();
    let map = |e: ev::Event| events::map(&e, &flags, now, me);

    let qr =
        map(ev::Event::PairingQrCode(ev::PairingQrCode::builder().code("2@abc".into()).timeout(Duration::from_secs(60)).build()));
    assert!(
        matches!(&qr[..], [WaEvent::Qr { code, expires_at }] if code == "2@abc" && *expires_at == now + chrono::Duration::seconds(60))
    );

    let ban = ev::TemporaryBan::builder().code(ev::TempBanReason::SentToTooManyPeople).expire(chrono::Duration::hours(2)).build();
    let got = map(ev::Event::TemporaryBan(ban));
    assert!(
        matches!(&got[..], [WaEvent::TemporaryBan { until, .. }] if *until == now + chrono::Duration::hours(2)),
        "expire is a duration: {got:?}"
    );

    let got = map(ev::Event::Connected(ev::Connected::builder().build()));
    assert!(
        matches!(&got[..], [WaEvent::Connected { jid: Some(j), push_name: Some(p) }] if j.starts_with("15559990000") && p == "Salon")
    );
    assert!(flags.down_for().is_none());

    let undecryptable = || {
        // Failures come from one of the peer's devices; the policy works per peer.
        let mut i = info("U1", false);
        i.source.sender = "15550000001:3@s.whatsapp.net".parse::<Jid>().unwrap();
        let i = Arc::new(i);
        ev::Event::UndecryptableMessage(
            ev::UndecryptableMessage::builder()
                .info(i)
                .is_unavailable(false)
                .unavailable_type(ev::UnavailableType::Unknown)
                .decrypt_fail_mode(ev::DecryptFailMode::Show)
                .build(),
        )
    };
    let got = map(undecryptable());
    assert!(
        matches!(&got[..], [WaEvent::Undecryptable { peer, bad_mac: true }] if peer == "15550000001@s.whatsapp.net"),
        "the peer without its device part, as wa.enqueue's key_cleanup accepts it: {got:?}"
    );
    assert!(map(undecryptable()).is_empty(), "the same peer within the window counts once");

    let receipt = |t| {
        ev::Event::Receipt(
            ev::Receipt::builder()
                .source(MessageSource::default())
                .message_ids(vec!["M1".into(), "M2".into()])
                .timestamp(now)
                .r#type(t)
                .offline(false)
                .build(),
        )
    };
    let got = map(receipt(ReceiptType::Read));
    assert!(
        matches!(&got[..], [WaEvent::Receipt { message_id: a, kind: ReceiptKind::Read, .. }, WaEvent::Receipt { message_id: b, .. }] if a == "M1" && b == "M2")
    );
    assert!(matches!(&map(receipt(ReceiptType::Delivered))[..], [WaEvent::Receipt { kind: ReceiptKind::Delivered, .. }, _]));
    assert!(map(receipt(ReceiptType::Sent)).is_empty(), "a downgraded delivery is not a delivery");

    let failure = ev::ConnectFailure::builder().reason(ev::ConnectFailureReason::ServiceUnavailable).build();
    assert!(
        matches!(&map(ev::Event::ConnectFailure(failure))[..], [WaEvent::ConnectFailure { reason }] if reason.contains("ServiceUnavailable"))
    );
    assert!(flags.dropped.load(std::sync::atomic::Ordering::SeqCst), "the reconnect it causes is not counted twice");

    let logged_out =
        || ev::Event::LoggedOut(ev::LoggedOut::builder().on_connect(true).reason(ev::ConnectFailureReason::LoggedOut).build());
    assert!(matches!(&map(logged_out())[..], [WaEvent::LoggedOut { reason }] if reason.contains("LoggedOut")));
    flags.closing.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(map(logged_out()).is_empty(), "our own logout is not reported as the phone's");
    assert!(flags.down_for().is_some());
}

#[test]
fn the_config_has_defaults_and_rejects_unknown_keys() {
    let cfg: RustConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!((cfg.ack_timeout_ms, cfg.ws_url, cfg.version, cfg.skip_history_sync), (20_000, None, None, true));
    let cfg: RustConfig =
        serde_json::from_value(json!({"ws_url": "ws://127.0.0.1:5222/ws/chat", "version": [2, 3000, 7]})).unwrap();
    assert_eq!((cfg.ws_url.as_deref(), cfg.version), (Some("ws://127.0.0.1:5222/ws/chat"), Some((2, 3000, 7))));
    let err = serde_json::from_value::<RustConfig>(json!({"ack_timeout": 5})).unwrap_err().to_string();
    assert!(err.contains("ack_timeout"), "{err}");
}

/// Serves one canned HTTP response per connection on the loopback.
async fn http_once(status: &'static str, body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.write_all(&body).await;
    });
    format!("http://{addr}/media")
}

#[tokio::test]
async fn media_urls_are_fetched_within_bounds() {
    use pgwa_core::fetch_policy::FetchAllow;
    use pgwa_wa::rust::fetch::{FetchPolicy, fetch_url};
    // The loopback is refused unless allowed (tests/security_ssrf.rs); this test is about the limits.
    let allow = FetchAllow::try_from(vec!["127.0.0.1".to_owned()]).unwrap();
    let t = &FetchPolicy { allow, ..FetchPolicy::public_only(1024, Duration::from_secs(5)) };
    let url = http_once("200 OK", PNG.to_vec()).await;
    assert_eq!(fetch_url(&url, t).await.unwrap(), PNG);
    let url = http_once("200 OK", vec![0; 4096]).await;
    assert!(matches!(fetch_url(&url, t).await, Err(SendError::Permanent(m)) if m.contains("limit")));
    let url = http_once("404 Not Found", b"gone".to_vec()).await;
    assert!(matches!(fetch_url(&url, t).await, Err(SendError::Permanent(m)) if m.contains("HTTP 404")));
    let url = http_once("503 Service Unavailable", vec![]).await;
    assert!(matches!(fetch_url(&url, t).await, Err(SendError::Retryable(m)) if m.contains("HTTP 503")));
}
