//! The SQL API of locations, contact cards, mentions, edits and deletes for everyone,
//! videos, audio, voice notes and stickers:
//! what each function stores for the worker, and bad input refused with its SQLSTATE and
//! the argument named, nothing inserted. No worker runs here.

mod common;

use common::refused_by_name;
use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn db_with_sessions() -> TestDb {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1'), wa.add_session('s2')").execute(&db.pool).await.unwrap();
    db
}

async fn payload(pool: &PgPool, job: i64) -> Value {
    sqlx::query_scalar("SELECT payload FROM wa.jobs WHERE id = $1").bind(job).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn locations_contacts_and_mentions_are_stored_for_the_worker() {
    let db = db_with_sessions().await;
    let (job, message_id): (i64, String) = sqlx::query_as(
        "SELECT * FROM wa.send_location('s1', '+55 11 99999-8888', -23.5617, -46.6559, name => 'Salon', address => 'Av. Paulista 1000')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(message_id.starts_with("3EB0"), "{message_id}");
    assert_eq!(
        payload(&db.pool, job).await,
        json!({"type": "location", "to": "5511999998888@s.whatsapp.net", "latitude": -23.5617, "longitude": -46.6559,
               "name": "Salon", "address": "Av. Paulista 1000"})
    );

    let (job, _): (i64, String) = sqlx::query_as(
        "SELECT * FROM wa.send_contact('s1', '+5511999998888', 'Ana Lima', ARRAY['+55 (11) 98888-7777', '15550001234@s.whatsapp.net'])",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let p = payload(&db.pool, job).await;
    assert_eq!((p["display_name"].as_str(), &p["phones"]), (Some("Ana Lima"), &json!(["5511988887777", "15550001234"])));

    let (job, _): (i64, String) = sqlx::query_as(
        "SELECT * FROM wa.send_text('s1', '120363000000000001@g.us', 'hi @5511988887777', mentions => ARRAY['+55 11 98888-7777'])",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(payload(&db.pool, job).await["mentions"], json!(["5511988887777@s.whatsapp.net"]));

    refused_by_name(
        &db.pool,
        &[
            ("SELECT wa.send_location('s1', '+15550000001', 91, 0)", "WA006", "latitude"),
            ("SELECT wa.send_location('s1', '+15550000001', 'NaN', 0)", "WA006", "latitude"),
            ("SELECT wa.send_location('s1', '+15550000001', 0, -180.5)", "WA006", "longitude"),
            ("SELECT wa.send_location('s1', '+15550000001', NULL, 0)", "WA006", "latitude"),
            ("SELECT wa.send_location('s1', '+15550000001', 0, 0, name => repeat('x', 1001))", "WA006", "name"),
            ("SELECT wa.send_contact('s1', '+15550000001', 'Ana', ARRAY[]::text[])", "WA006", "phones"),
            ("SELECT wa.send_contact('s1', '+15550000001', 'Ana', NULL)", "WA006", "phones"),
            ("SELECT wa.send_contact('s1', '+15550000001', 'Ana', ARRAY['12ab'])", "WA002", "phones"),
            ("SELECT wa.send_contact('s1', '+15550000001', 'Ana', ARRAY['120363000000000001@g.us'])", "WA002", "phones"),
            ("SELECT wa.send_contact('s1', '+15550000001', ' ', ARRAY['+15550000002'])", "WA006", "display_name"),
            ("SELECT wa.send_text('s1', '+15550000001', 'hi', mentions => ARRAY['120363000000000001@g.us'])", "WA002", "mentions"),
            ("SELECT wa.send_text('s1', '+15550000001', 'hi', mentions => ARRAY['nobody'])", "WA002", "mentions"),
            (
                "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'send', '{\"type\": \"text\", \"to\": \"+15550000001\", \"text\": \"hi\", \"mentions\": \"+15550000002\"}')",
                "WA006",
                "mentions",
            ),
            (
                "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'send', '{\"type\": \"location\", \"to\": \"+15550000001\", \"latitude\": \"12\", \"longitude\": 0}')",
                "WA006",
                "latitude",
            ),
        ],
    )
    .await;
}

/// The message id of `call` (a wa.send_* call), marked sent `ago` ago as a worker would.
async fn sent(pool: &PgPool, call: &str, ago: &str) -> String {
    let (job, message_id): (i64, String) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT * FROM wa.{call}"))).fetch_one(pool).await.unwrap();
    sqlx::query(
        "UPDATE wa.jobs SET state = 'completed', finished_at = now(), sent_at = now() - $2::interval, delivery = 'sent' WHERE id = $1",
    )
    .bind(job)
    .bind(ago)
    .execute(pool)
    .await
    .unwrap();
    message_id
}

#[tokio::test]
async fn edits_and_revokes_name_a_message_this_session_sent_to_that_chat() {
    let db = db_with_sessions().await;
    let pool = &db.pool;
    let text = sent(pool, "send_text('s1', '+15550000001', 'helo')", "1 minute").await;
    let old = sent(pool, "send_text('s1', '+15550000001', 'old')", "20 minutes").await;
    let doc = sent(pool, "send_media('s1', '+15550000001', 'document', url => 'https://example.com/a.pdf')", "1 minute").await;
    let other_chat = sent(pool, "send_text('s1', '+15550000002', 'hi')", "1 minute").await;
    let theirs = sent(pool, "send_text('s2', '+15550000001', 'hi')", "1 minute").await;
    let reaction = sent(pool, &format!("send_reaction('s1', '+15550000001', '{text}', '👍')"), "1 minute").await;
    let (cancelled,): (String,) =
        sqlx::query_as("SELECT message_id FROM wa.send_text('s1', '+15550000001', 'never', run_at => now() + interval '1 hour')")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query("SELECT wa.cancel_job(id) FROM wa.jobs WHERE message_id = $1").bind(&cancelled).execute(pool).await.unwrap();

    let job: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT wa.edit_message('s1', '+1 555 000 0001', '{text}', 'hello')")))
            .fetch_one(pool)
            .await
            .unwrap();
    let p = payload(pool, job).await;
    assert_eq!(
        (p["type"].as_str(), p["to"].as_str(), p["message_id"].as_str(), p["text"].as_str()),
        (Some("edit"), Some("15550000001@s.whatsapp.net"), Some(text.as_str()), Some("hello"))
    );
    let (chat, own_id): (String, String) =
        sqlx::query_as("SELECT chat, message_id FROM wa.jobs WHERE id = $1").bind(job).fetch_one(pool).await.unwrap();
    assert!(chat == "15550000001@s.whatsapp.net" && own_id != text, "the edit queues in the chat's FIFO under an id of its own");
    // A revoke works on any message kind, also past the edit window.
    for target in [&text, &doc, &old] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT wa.revoke_message('s1', '+15550000001', '{target}')")))
            .execute(pool)
            .await
            .unwrap();
    }

    let edit = |target: &str, body: &str| format!("SELECT wa.edit_message('s1', '+15550000001', '{target}', '{body}')");
    let revoke = |session: &str, chat: &str, target: &str| format!("SELECT wa.revoke_message('{session}', '{chat}', '{target}')");
    let cases = [
        (edit("3EB0FFFFFFFFFFFFFFFFFF", "x"), "WA013", "message_id"),
        (edit("not an id", "x"), "WA006", "message_id"),
        (edit(&old, "x"), "WA013", "message_id"),
        (edit(&doc, "x"), "WA013", "message_id"),
        (edit(&other_chat, "x"), "WA013", "message_id"),
        (edit(&reaction, "x"), "WA013", "message_id"),
        (edit(&cancelled, "x"), "WA013", "message_id"),
        (edit(&text, " "), "WA003", "text"),
        // Another session's message, even in the same chat: neither tenant nor session
        // may change what it did not send.
        (revoke("s1", "+15550000001", &theirs), "WA013", "message_id"),
        (revoke("s2", "+15550000001", &text), "WA013", "message_id"),
        (revoke("s1", "+15550000002", &text), "WA013", "message_id"),
        (revoke("s1", "+15550000001", &reaction), "WA013", "message_id"),
        (
            format!(
                "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s2', 'send', '{{\"type\": \"revoke\", \"to\": \"+15550000001\", \"message_id\": \"{text}\"}}')"
            ),
            "WA013",
            "message_id",
        ),
    ];
    let cases: Vec<(&str, &str, &str)> = cases.iter().map(|(s, c, a)| (s.as_str(), *c, *a)).collect();
    refused_by_name(pool, &cases).await;
}

#[tokio::test]
async fn videos_audio_voice_notes_and_stickers_are_stored_for_the_worker() {
    let db = db_with_sessions().await;
    let (job, _): (i64, String) = sqlx::query_as(
        "SELECT * FROM wa.send_media('s1', '+15550000001', 'voice', data => '\\x4f676753'::bytea, seconds => 3, waveform => '\\x003264'::bytea)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let p = payload(&db.pool, job).await;
    assert_eq!((p["type"].as_str(), p["seconds"].as_u64(), p["waveform"].as_str()), (Some("voice"), Some(3), Some("ADJk")));
    for kind in ["video", "audio", "sticker"] {
        sqlx::query("SELECT wa.send_media('s1', '+15550000001', $1, url => 'https://example.com/f')")
            .bind(kind)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    refused_by_name(
        &db.pool,
        &[
            ("SELECT wa.send_media('s1', '+15550000001', 'gif', url => 'https://x.test/a')", "WA006", "kind"),
            ("SELECT wa.send_media('s1', '+15550000001', 'voice', url => 'https://x.test/a', mimetype => 'audio/mpeg')", "WA006", "payload.mimetype"),
            ("SELECT wa.send_media('s1', '+15550000001', 'sticker', url => 'https://x.test/a', mimetype => 'image/png')", "WA006", "payload.mimetype"),
            ("SELECT wa.send_media('s1', '+15550000001', 'image', url => 'https://x.test/a', seconds => 3)", "WA006", "payload.seconds"),
            ("SELECT wa.send_media('s1', '+15550000001', 'video', url => 'https://x.test/a', seconds => -1)", "WA006", "payload.seconds"),
            ("SELECT wa.send_media('s1', '+15550000001', 'video', url => 'https://x.test/a', seconds => 86401)", "WA006", "payload.seconds"),
            (
                "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'send', '{\"type\": \"video\", \"to\": \"+15550000001\", \"url\": \"https://x.test/a\", \"seconds\": 2.5}')",
                "WA006",
                "payload.seconds",
            ),
            (
                "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'send', '{\"type\": \"video\", \"to\": \"+15550000001\", \"url\": \"https://x.test/a\", \"seconds\": \"3\"}')",
                "WA006",
                "payload.seconds",
            ),
            ("SELECT wa.send_media('s1', '+15550000001', 'video', url => 'https://x.test/a', waveform => '\\x00'::bytea)", "WA006", "payload.waveform"),
            ("SELECT wa.send_media('s1', '+15550000001', 'voice', url => 'https://x.test/a', waveform => '\\x0065'::bytea)", "WA006", "payload.waveform"),
            (
                "SELECT wa.send_media('s1', '+15550000001', 'voice', url => 'https://x.test/a', waveform => decode(repeat('00', 65), 'hex'))",
                "WA006",
                "payload.waveform",
            ),
        ],
    )
    .await;
}
