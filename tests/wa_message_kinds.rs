//! Locations, contact cards, mentions, edits and deletes for everyone, videos, audio,
//! voice notes and stickers, without a server: payloads parse into requests and build the
//! waproto messages WhatsApp expects, media is checked by its bytes, inbound messages of
//! these kinds convert to inbox rows with their fields in `data` or `media`, and an
//! inbound edit or delete changes the earlier row once, keeping its history, fenced.
//! End to end between two linked sessions: tests/e2e_message_kinds.rs, tests/e2e_media.rs.

mod common;

use std::time::Duration;

use common::media_files;
use pgwa_core::fence::Fence;
use pgwa_core::wa::InboundChange;
use pgwa_core::wa::SendError;
use pgwa_testkit::TestDb;
use pgwa_wa::rust::inbound::{InboxHook, to_inbound, vcard_phones};
use pgwa_wa::rust::media_format;
use pgwa_wa::rust::send::{self, MediaKind, MediaSource, Request};
use serde_json::json;
use whatsapp_rust::Jid;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::types::message::{MessageInfo, MessageSource};
use whatsapp_rust::waproto::whatsapp as wa;

const PEER: &str = "15550000001@s.whatsapp.net";

fn info(id: &str) -> MessageInfo {
    let peer = PEER.parse::<Jid>().unwrap();
    MessageInfo {
        id: id.into(),
        source: MessageSource { chat: peer.clone(), sender: peer, ..Default::default() },
        push_name: "Ana".into(),
        timestamp: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        ..Default::default()
    }
}

const MAX: usize = 1024;

#[test]
fn locations_contacts_and_mentions_build_the_messages_whatsapp_shows() {
    let r = send::parse(&json!({"type": "location", "latitude": -23.5617, "longitude": -46.6559, "name": "Paulista"}), MAX);
    let Ok(Request::Location { latitude, longitude, name, address, reply_to }) = r else { panic!("{r:?}") };
    assert_eq!((latitude, longitude, name.as_deref(), address, reply_to), (-23.5617, -46.6559, Some("Paulista"), None, None));
    let m = send::location_message(latitude, longitude, name, None, None);
    let l = m.location_message.as_option().unwrap();
    assert_eq!((l.degrees_latitude, l.degrees_longitude, l.name.as_deref()), (Some(-23.5617), Some(-46.6559), Some("Paulista")));

    let r =
        send::parse(&json!({"type": "contact", "display_name": "Ana; Lima", "phones": ["+55 11 99999-8888", "15550001"]}), MAX);
    let Ok(Request::Contact { display_name, phones, .. }) = r else { panic!("{r:?}") };
    assert_eq!(phones, ["5511999998888", "15550001"], "digits, country code first");
    let m = send::contact_message(&display_name, &phones, None);
    let c = m.contact_message.as_option().unwrap();
    let card = c.vcard.as_deref().unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Ana; Lima"));
    assert!(card.starts_with("BEGIN:VCARD\nVERSION:3.0\nFN:Ana\\; Lima\n"), "the name is escaped in the card: {card}");
    assert!(card.contains("TEL;type=CELL;type=VOICE;waid=5511999998888:+5511999998888\n"), "{card}");
    assert!(card.ends_with("END:VCARD"), "{card}");
    assert_eq!(vcard_phones(card), ["5511999998888", "15550001"], "the card reads back");

    let mention = "15550000002@s.whatsapp.net".to_owned();
    let r = send::parse(&json!({"type": "text", "text": "hi @15550000002", "mentions": [mention]}), MAX).unwrap();
    let Request::Text { text, mentions, .. } = r else { panic!() };
    let m = send::text_message(&text, None, &mentions);
    let ext = m.extended_text_message.as_option().expect("a text with context is an extended text");
    assert_eq!(ext.context_info.as_option().unwrap().mentioned_jid, [mention]);
}

#[test]
fn edits_and_revokes_are_protocol_messages_keyed_to_our_earlier_message() {
    let r = send::parse(&json!({"type": "edit", "message_id": "3EB0AAAA", "text": "fixed"}), MAX).unwrap();
    assert_eq!(r, Request::Edit { target: "3EB0AAAA".into(), text: "fixed".into() });
    let m = send::edit_message(PEER, "3EB0AAAA", "fixed", None, 1_700_000_000_000);
    let p = m.protocol_message.as_option().unwrap();
    let key = p.key.as_option().unwrap();
    assert_eq!(p.r#type, Some(wa::message::protocol_message::Type::MessageEdit));
    assert_eq!((key.remote_jid.as_deref(), key.from_me, key.id.as_deref()), (Some(PEER), Some(true), Some("3EB0AAAA")));
    assert_eq!(p.edited_message.as_option().unwrap().conversation.as_deref(), Some("fixed"));

    let r = send::parse(&json!({"type": "revoke", "message_id": "3EB0AAAA"}), MAX).unwrap();
    assert_eq!(r, Request::Revoke { target: "3EB0AAAA".into() });
    let m = send::revoke_message("120363000000000001@g.us", "3EB0AAAA", Some("15550000009@s.whatsapp.net".into()));
    let p = m.protocol_message.as_option().unwrap();
    assert_eq!(p.r#type, Some(wa::message::protocol_message::Type::Revoke));
    assert_eq!(p.key.as_option().unwrap().participant.as_deref(), Some("15550000009@s.whatsapp.net"), "our JID in a group");
}

fn edit_of(target: &str, text: &str) -> wa::Message {
    let edited = wa::Message { conversation: Some(text.into()), ..Default::default() };
    protocol(target, wa::message::protocol_message::Type::MessageEdit, Some(edited))
}

fn revoke_of(target: &str) -> wa::Message {
    protocol(target, wa::message::protocol_message::Type::Revoke, None)
}

fn protocol(target: &str, t: wa::message::protocol_message::Type, edited: Option<wa::Message>) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(wa::MessageKey {
                remote_jid: Some(PEER.into()),
                from_me: Some(true),
                id: Some(target.into()),
                participant: None,
            }),
            r#type: Some(t),
            edited_message: edited.map(MessageField::some).unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn inbound_locations_contacts_mentions_and_changes_convert_to_rows() {
    let loc = wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(48.8584),
            degrees_longitude: Some(2.2945),
            name: Some("Tour Eiffel".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = to_inbound(&loc, &info("L1")).unwrap();
    assert_eq!((r.kind.as_str(), r.text.as_deref()), ("location", Some("Tour Eiffel")));
    assert_eq!(r.data, Some(json!({"latitude": 48.8584, "longitude": 2.2945, "name": "Tour Eiffel"})));
    assert!(r.media.is_none(), "media holds download metadata only");

    let card = send::vcard("Bob", &["15550000003".into()]);
    let contact = send::contact_message("Bob", &["15550000003".into()], None);
    let r = to_inbound(&contact, &info("C1")).unwrap();
    assert_eq!((r.kind.as_str(), r.text.as_deref()), ("contact", Some("Bob")));
    assert_eq!(r.data, Some(json!({"display_name": "Bob", "phones": ["15550000003"], "vcard": card})));

    // An iOS-style card: grouped property, no waid.
    assert_eq!(vcard_phones("BEGIN:VCARD\nitem1.TEL;type=CELL:+1 (555) 000-0004\nEND:VCARD"), ["15550000004"]);

    let mentions = vec!["15550000002@s.whatsapp.net".to_owned()];
    let r = to_inbound(&send::text_message("hi @15550000002", None, &mentions), &info("T1")).unwrap();
    assert_eq!((r.kind.as_str(), r.mentions.clone()), ("text", mentions));

    let r = to_inbound(&edit_of("T1", "hello"), &info("E1")).unwrap();
    assert_eq!(r.change, Some(InboundChange::Edit { target: "T1".into(), text: Some("hello".into()) }));
    assert_eq!((r.kind.as_str(), r.quoted_id.as_deref(), r.text.as_deref()), ("edit", Some("T1"), Some("hello")));
    let r = to_inbound(&revoke_of("T1"), &info("R1")).unwrap();
    assert_eq!(r.change, Some(InboundChange::Revoke { target: "T1".into() }));

    let key_share = protocol("X", wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE, None);
    assert!(to_inbound(&key_share, &info("K1")).is_none(), "other protocol messages stay out of the inbox");
}

#[derive(sqlx::FromRow, Debug)]
struct Row {
    kind: String,
    text: Option<String>,
    edited_at: Option<chrono::DateTime<chrono::Utc>>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    history: serde_json::Value,
}

async fn row(db: &TestDb, message_id: &str) -> Row {
    sqlx::query_as("SELECT kind, text, edited_at, revoked_at, history FROM wa.inbox WHERE message_id = $1")
        .bind(message_id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_inbound_edit_and_revoke_change_the_earlier_row_once_and_keep_its_history() {
    let db = TestDb::new().await.unwrap();
    let fence = common::held_s1(&db).await;
    let writer = pgwa_pg::inbox::InboxWriter::new(db.pool.clone());
    let hook = |fence: Fence| InboxHook {
        pool: db.pool.clone(),
        writer: writer.clone(),
        fence,
        unbuffered: Default::default(),
        attempts: 2,
        pause: Duration::from_millis(5),
        outage_wait: Duration::from_secs(5),
    };
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("wa_inbox").await.unwrap();

    let original = to_inbound(&wa::Message { conversation: Some("helo".into()), ..Default::default() }, &info("T1")).unwrap();
    let edit = to_inbound(&edit_of("T1", "hello"), &info("E1")).unwrap();
    let revoke = to_inbound(&revoke_of("T1"), &info("R1")).unwrap();
    assert_eq!(hook(fence.clone()).commit(vec![original]).await.unwrap(), 1);

    // A stale holder changes nothing and must not ack.
    let stale = Fence { epoch: fence.epoch - 1, ..fence.clone() };
    let err = hook(stale).commit(vec![edit.clone()]).await.unwrap_err().to_string();
    assert!(err.contains("lease lost"), "{err}");
    assert_eq!(row(&db, "T1").await.text.as_deref(), Some("helo"));

    assert_eq!(hook(fence.clone()).commit(vec![edit.clone()]).await.unwrap(), 1);
    let r = row(&db, "T1").await;
    assert_eq!((r.kind.as_str(), r.text.as_deref(), r.revoked_at), ("text", Some("hello"), None));
    assert_eq!(r.edited_at.unwrap().timestamp(), 1_700_000_000, "the edit's own time");
    assert_eq!(r.history, json!([{"kind": "edit", "id": "E1", "at": "2023-11-14T22:13:20+00:00", "text": "helo"}]));
    assert_eq!(hook(fence.clone()).commit(vec![edit.clone()]).await.unwrap(), 0, "a redelivered edit is acked, not reapplied");
    assert_eq!(row(&db, "T1").await.history.as_array().unwrap().len(), 1);

    assert_eq!(hook(fence.clone()).commit(vec![revoke]).await.unwrap(), 1);
    let r = row(&db, "T1").await;
    assert!(r.revoked_at.is_some() && r.text.is_none(), "deleted for everyone: {r:?}");
    assert_eq!(r.history[1]["kind"], "revoke");
    assert_eq!(r.history[1]["text"], "hello", "the text before the delete is kept");

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.inbox").fetch_one(&db.pool).await.unwrap();
    assert_eq!(count, 1, "changes add no rows when their target is stored");

    // An edit of a message the inbox never had is kept as a row of its own.
    let orphan = to_inbound(&edit_of("UNKNOWN1", "late"), &info("E2")).unwrap();
    assert_eq!(hook(fence.clone()).commit(vec![orphan]).await.unwrap(), 1);
    let (kind, quoted, text): (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT kind, quoted_id, text FROM wa.inbox WHERE message_id = 'E2'").fetch_one(&db.pool).await.unwrap();
    assert_eq!((kind.as_str(), quoted.as_deref(), text.as_deref()), ("edit", Some("UNKNOWN1"), Some("late")));

    // NOTIFY: the insert, then one per change, naming it.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let n = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("a notification").unwrap();
        let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
        seen.push((v["kind"].as_str().unwrap().to_owned(), v["change"].as_str().map(str::to_owned)));
    }
    assert_eq!(
        seen,
        [
            ("text".into(), None),
            ("text".into(), Some("edit".into())),
            ("text".into(), Some("revoke".into())),
            ("edit".into(), None)
        ]
    );
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn media(payload: serde_json::Value) -> Result<send::MediaRequest, String> {
    match send::parse(&payload, 1 << 20) {
        Ok(Request::Media(m)) => Ok(m),
        Ok(other) => panic!("not media: {other:?}"),
        Err(SendError::Permanent(m)) => Err(m),
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn media_files_are_read_from_their_bytes() {
    assert_eq!(media_format::ogg_opus_seconds(&media_files::ogg_opus(7)), Some(7));
    assert!(media_format::is_ogg_opus(&media_files::ogg_opus(1)));
    assert!(!media_format::is_ogg_opus(b"OggS but no opus header in here at all"));
    assert_eq!(media_format::webp_info(&media_files::webp(512, 384)), Some((512, 384, false)));
    let mut animated = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
    animated.extend([0x12, 0, 0, 0, 0xFF, 0x01, 0, 0x7F, 0, 0]); // animation + alpha, 512 x 128
    assert_eq!(media_format::webp_info(&animated), Some((512, 128, true)));
    assert!(media_format::is_mp4(&media_files::mp4()));
    assert_eq!(media_format::image(&media_files::webp(1, 1)), Some("image/webp"));
}

#[test]
fn videos_audio_voice_notes_and_stickers_parse_with_their_checks() {
    let voice = media(json!({"type": "voice", "data": b64(&media_files::ogg_opus(3)), "waveform": b64(&[0, 50, 100])})).unwrap();
    assert_eq!((voice.kind, voice.waveform.as_deref()), (MediaKind::Voice, Some(&[0u8, 50, 100][..])));
    assert_eq!(send::media_mimetype(&voice, &media_files::ogg_opus(3)), "audio/ogg; codecs=opus");
    let video = media(json!({"type": "video", "data": b64(&media_files::mp4()), "caption": "tour", "seconds": 12})).unwrap();
    assert_eq!((video.kind, video.seconds, video.caption.as_deref()), (MediaKind::Video, Some(12), Some("tour")));
    let sticker = media(json!({"type": "sticker", "data": b64(&media_files::webp(512, 512))})).unwrap();
    assert_eq!(send::media_mimetype(&sticker, &media_files::webp(512, 512)), "image/webp");
    let audio = media(json!({"type": "audio", "url": "https://example.com/jingle.mp3"})).unwrap();
    assert_eq!((audio.kind, &audio.source), (MediaKind::Audio, &MediaSource::Url("https://example.com/jingle.mp3".into())));

    for (payload, needle) in [
        (json!({"type": "voice", "data": b64(&media_files::mp4())}), "payload.data: not an Ogg Opus file"),
        (json!({"type": "video", "data": b64(&media_files::ogg_opus(1))}), "payload.data: not an MP4 video"),
        (json!({"type": "sticker", "data": b64(&media_files::mp4())}), "payload.data: not a WebP image"),
        (json!({"type": "sticker", "data": b64(&media_files::webp(1, 1)), "mimetype": "image/png"}), "payload.mimetype"),
        (json!({"type": "voice", "data": b64(&media_files::ogg_opus(1)), "waveform": b64(&[101])}), "payload.waveform"),
        (json!({"type": "voice", "data": b64(&media_files::ogg_opus(1)), "waveform": b64(&[1; 65])}), "payload.waveform"),
        (json!({"type": "video", "data": b64(&media_files::mp4()), "seconds": -1}), "payload.seconds"),
    ] {
        let err = media(payload.clone()).expect_err("refused");
        assert!(err.starts_with(needle), "{payload}: {err}");
    }
}

#[test]
fn inbound_voice_notes_videos_and_stickers_keep_what_downloading_needs() {
    let voice = wa::Message {
        audio_message: MessageField::some(wa::message::AudioMessage {
            ptt: Some(true),
            seconds: Some(3),
            waveform: Some(vec![0, 50, 100]),
            direct_path: Some("/v/t62/voice".into()),
            media_key: Some(vec![7; 32]),
            file_sha256: Some(vec![1; 32]),
            file_enc_sha256: Some(vec![2; 32]),
            mimetype: Some("audio/ogg; codecs=opus".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = to_inbound(&voice, &info("V1")).unwrap();
    let m = r.media.unwrap();
    assert_eq!((r.kind.as_str(), m["seconds"].as_u64(), m["waveform"].as_str()), ("voice", Some(3), Some("ADJk")));
    assert_eq!((m["direct_path"].as_str(), m["media_key"].as_str().map(str::len)), (Some("/v/t62/voice"), Some(44)));
    let sticker = wa::Message {
        sticker_message: MessageField::some(wa::message::StickerMessage {
            width: Some(512),
            is_animated: Some(false),
            direct_path: Some("/v/t62/sticker".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = to_inbound(&sticker, &info("S1")).unwrap();
    assert_eq!((r.kind.as_str(), r.media.unwrap()["direct_path"].as_str()), ("sticker", Some("/v/t62/sticker")));
}

/// A vote is opened whether voter and poll author are named by phone number or by LID,
/// and when the vote was sealed under the other naming than the one it arrives with
/// (the fallback WhatsApp Web also tries); a vote sealed for another poll stays shut.
#[test]
fn poll_votes_open_under_phone_numbers_and_lids() {
    use pgwa_wa::rust::poll;
    use whatsapp_rust::wacore::poll as wapoll;
    let options = ["Sat".to_string(), "Sun".to_string()];
    let secret = [7u8; 32];
    let (me_pn, me_lid) = ("15550009999@s.whatsapp.net", "900000009@lid");
    let (voter_pn, voter_lid) = ("15550001111@s.whatsapp.net", "900000001@lid");
    let seal = |poll_id: &str, creator: &str, voter: &str| {
        let picked = vec![wapoll::compute_option_hash("Sun").to_vec()];
        let (enc, iv) = wapoll::encrypt_poll_vote_with_secret(&picked, &secret, poll_id, creator, voter).unwrap();
        let b = |v: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v);
        json!({ "enc_payload": b(&enc), "enc_iv": b(&iv) })
    };
    let from = |sender: &str, alt: Option<&str>| {
        let mut i = info("V1");
        i.source.sender = sender.parse().unwrap();
        i.source.sender_alt = alt.map(|a| a.parse().unwrap());
        i
    };
    let me = || (Some(me_pn.parse().unwrap()), Some(me_lid.parse().unwrap()));
    let open = |sealed: &serde_json::Value, i: &MessageInfo| poll::open_vote(sealed, "POLL1", &options, &secret, me(), i);
    let sun = json!({ "options": ["Sun"] });
    assert_eq!(open(&seal("POLL1", me_pn, voter_pn), &from(voter_pn, None)), sun, "by phone numbers");
    assert_eq!(open(&seal("POLL1", me_lid, voter_lid), &from(voter_lid, None)), sun, "by LIDs");
    assert_eq!(open(&seal("POLL1", me_pn, voter_pn), &from(voter_lid, Some(voter_pn))), sun, "sealed by number, arrived by LID");
    let shut = open(&seal("POLL2", me_pn, voter_pn), &from(voter_pn, None));
    assert!(shut["error"].as_str().is_some_and(|e| e.contains("could not be opened")), "{shut}");
    let none = open(&json!({}), &from(voter_pn, None));
    assert_eq!(none, json!({ "error": "the vote carries no encrypted payload" }));
}
