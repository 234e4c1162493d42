//! End to end, the message kinds beyond text and media: a `pgwa run` worker (whatsapp-rust
//! backend) links alice and bob to the loopback WhatsApp Web server; alice sends a
//! location, a contact card and a text mentioning bob, then edits a text and deletes
//! another for everyone, all through the SQL API. Bob's wa.inbox shows each with its
//! fields, and the edit and the delete change the earlier rows, keeping their history.

mod common;

use std::time::Duration;

use common::loopback::{Notifications, Worker, link_by_qr, send_text, start_server};
use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;

const A_PHONE: &str = "15550005656";
const B_PHONE: &str = "15550007878";
const WITHIN: Duration = Duration::from_secs(60);

#[derive(sqlx::FromRow, Debug, Clone)]
struct Row {
    kind: String,
    text: Option<String>,
    data: Option<Value>,
    mentions: Option<Vec<String>>,
    edited_at: Option<chrono::DateTime<chrono::Utc>>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    history: Value,
}

/// Bob's row of `message_id`, once `ready` holds for it.
async fn bobs_row(pool: &PgPool, message_id: &str, what: &str, ready: impl Fn(&Row) -> bool) -> Row {
    common::eventually(WITHIN, what, || async {
        let r: Option<Row> = sqlx::query_as(
            "SELECT kind, text, data, mentions, edited_at, revoked_at, history FROM wa.inbox
              WHERE session_id = 'bob' AND message_id = $1",
        )
        .bind(message_id)
        .fetch_optional(pool)
        .await
        .unwrap();
        r.filter(|r| ready(r))
    })
    .await
}

/// The job's send completed (the server acked it).
async fn completed(pool: &PgPool, job: i64) {
    common::eventually(WITHIN, "the job to complete", || async {
        let (state, err): (String, Option<String>) =
            sqlx::query_as("SELECT job_state::text, last_error FROM wa.outbound WHERE job_id = $1")
                .bind(job)
                .fetch_one(pool)
                .await
                .unwrap();
        assert!(state != "dead", "job {job} died: {err:?}");
        (state == "completed").then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_contacts_mentions_edits_and_revokes_reach_the_other_session() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let notes = Notifications::listen(&db.url, &["wa_inbox"]).await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, "alice", A_PHONE).await;
    link_by_qr(pool, &server, "bob", B_PHONE).await;
    let bob_jid = format!("{B_PHONE}@s.whatsapp.net");

    let (_, location): (i64, String) = sqlx::query_as(
        "SELECT * FROM wa.send_location('alice', $1, -23.5617, -46.6559, name => 'Salon', address => 'Av. Paulista 1000')",
    )
    .bind(B_PHONE)
    .fetch_one(pool)
    .await
    .unwrap();
    let r = bobs_row(pool, &location, "the location in bob's inbox", |_| true).await;
    assert_eq!((r.kind.as_str(), r.text.as_deref()), ("location", Some("Salon")));
    assert_eq!(
        r.data,
        Some(json!({"latitude": -23.5617, "longitude": -46.6559, "name": "Salon", "address": "Av. Paulista 1000"}))
    );

    let (_, contact): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_contact('alice', $1, 'Ana Lima', ARRAY['+55 11 98888-7777'])")
            .bind(B_PHONE)
            .fetch_one(pool)
            .await
            .unwrap();
    let r = bobs_row(pool, &contact, "the contact card in bob's inbox", |_| true).await;
    let data = r.data.clone().unwrap();
    assert_eq!((r.kind.as_str(), r.text.as_deref(), &data["phones"]), ("contact", Some("Ana Lima"), &json!(["5511988887777"])));
    assert!(data["vcard"].as_str().unwrap().contains("waid=5511988887777"), "{data}");

    let (_, mention): (i64, String) = sqlx::query_as("SELECT * FROM wa.send_text('alice', $1, $2, mentions => ARRAY[$3])")
        .bind(B_PHONE)
        .bind(format!("see you @{B_PHONE}"))
        .bind(format!("+{B_PHONE}"))
        .fetch_one(pool)
        .await
        .unwrap();
    let r = bobs_row(pool, &mention, "the mention in bob's inbox", |_| true).await;
    assert_eq!(r.mentions, Some(vec![bob_jid.clone()]));

    // An edit of a delivered text: bob's row now reads the new text, the old one kept.
    let typo = send_text(pool, "alice", B_PHONE, "see you at 10h").await;
    bobs_row(pool, &typo, "the text to edit in bob's inbox", |_| true).await;
    let edit: i64 = sqlx::query_scalar("SELECT wa.edit_message('alice', $1, $2, 'see you at 11h')")
        .bind(B_PHONE)
        .bind(&typo)
        .fetch_one(pool)
        .await
        .unwrap();
    completed(pool, edit).await;
    let r = bobs_row(pool, &typo, "the edit applied to bob's row", |r| r.edited_at.is_some()).await;
    assert_eq!((r.kind.as_str(), r.text.as_deref(), r.revoked_at), ("text", Some("see you at 11h"), None));
    assert_eq!((r.history[0]["kind"].as_str(), r.history[0]["text"].as_str()), (Some("edit"), Some("see you at 10h")));

    // A delete for everyone: the row is marked, its text moves to the history.
    let oops = send_text(pool, "alice", B_PHONE, "wrong chat, sorry").await;
    bobs_row(pool, &oops, "the text to delete in bob's inbox", |_| true).await;
    let revoke: i64 =
        sqlx::query_scalar("SELECT wa.revoke_message('alice', $1, $2)").bind(B_PHONE).bind(&oops).fetch_one(pool).await.unwrap();
    completed(pool, revoke).await;
    let r = bobs_row(pool, &oops, "the delete applied to bob's row", |r| r.revoked_at.is_some()).await;
    assert_eq!(r.text, None);
    assert_eq!((r.history[0]["kind"].as_str(), r.history[0]["text"].as_str()), (Some("revoke"), Some("wrong chat, sorry")));

    let bob_rows: i64 = common::count(pool, "SELECT count(*) FROM wa.inbox WHERE session_id = 'bob'").await;
    assert_eq!(bob_rows, 5, "the edit and the delete changed rows instead of adding them");
    notes.wait(WITHIN, "wa_inbox", "the delete's notification", |n| n["change"] == "revoke").await;
    let changes: Vec<String> = notes
        .on("wa_inbox")
        .iter()
        .filter(|n| n["session"] == "bob")
        .filter_map(|n| n["change"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(changes, ["edit", "revoke"], "apps LISTENing on wa_inbox hear of both changes");
}
