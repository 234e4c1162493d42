//! End to end, the actions on a chat that are not messages: a `pgwa run` worker
//! (whatsapp-rust backend) links alice and bob to the loopback WhatsApp Web server.
//! Alice marks bob's message read (bob's wa.jobs row turns read), shows bob she is
//! typing (bob's wa.chat_states shows it), and checks which numbers are on WhatsApp
//! (alice's wa.contacts: bob with his LID, a stranger's number not on WhatsApp). Bob's
//! wa.contacts shows the LID his client learned for alice's number when writing to her.

mod common;

use std::time::Duration;

use common::loopback::{Notifications, Worker, link_by_qr, send_text, start_server};
use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;

const A_PHONE: &str = "15550006161";
const B_PHONE: &str = "15550006262";
const STRANGER: &str = "15550006363";
const WITHIN: Duration = Duration::from_secs(60);

/// The job's final state and result, once it has one.
async fn finished(pool: &PgPool, job: i64) -> Value {
    common::eventually(WITHIN, "the job to finish", || async {
        let (state, result, errors): (String, Option<Value>, Value) =
            sqlx::query_as("SELECT state::text, result, errors FROM wa.jobs WHERE id = $1")
                .bind(job)
                .fetch_one(pool)
                .await
                .unwrap();
        assert!(state != "dead", "job {job} died: {errors}");
        (state == "completed").then(|| result.unwrap_or(Value::Null))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_marks_chat_states_and_number_checks_reach_whatsapp_and_the_tables() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let notes = Notifications::listen(&db.url, &["wa_chat_state", "wa_contacts"]).await;
    let _worker = Worker::spawn(&db, &server);
    let alice = link_by_qr(pool, &server, "alice", A_PHONE).await;
    let bob = link_by_qr(pool, &server, "bob", B_PHONE).await;
    let alice_jid = format!("{A_PHONE}@s.whatsapp.net");

    // Read receipts: bob writes, alice reads; bob's message turns read.
    let hello = send_text(pool, "bob", A_PHONE, "are you open on sunday?").await;
    let chat: String = common::eventually(WITHIN, "bob's message in alice's inbox", || async {
        sqlx::query_scalar("SELECT chat FROM wa.inbox WHERE session_id = 'alice' AND message_id = $1")
            .bind(&hello)
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    // The chat as alice's inbox names it (a phone JID or bob's LID).
    let job: i64 =
        sqlx::query_scalar("SELECT wa.mark_read('alice', $1, ARRAY[$2])").bind(&chat).bind(&hello).fetch_one(pool).await.unwrap();
    assert_eq!(finished(pool, job).await, json!({"receipts": 1, "marked": 1}));
    let read_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT read_at FROM wa.inbox WHERE session_id = 'alice' AND message_id = $1")
            .bind(&hello)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(read_at.is_some(), "alice's row is marked read");
    // Sending to alice's number, bob's client learned her LID (whatsapp-rust looks it
    // up before a first message and sends by it): bob's wa.contacts shows it, learned
    // from traffic, never checked.
    let alice_lid = alice.lid.as_deref().map(|l| format!("{}@lid", l.split(['@', ':']).next().unwrap_or_default()));
    let learned: (Option<String>, Option<bool>, bool) = common::eventually(WITHIN, "alice's LID in bob's contacts", || async {
        sqlx::query_as(
            "SELECT lid, on_whatsapp, lid_learned_at IS NOT NULL FROM wa.contacts WHERE session_id = 'bob' AND phone = $1",
        )
        .bind(A_PHONE)
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(learned, (alice_lid, None, true));
    common::eventually(WITHIN, "bob's message to turn read", || async {
        let (delivery, read_at): (String, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("SELECT delivery::text, read_at FROM wa.jobs WHERE session_id = 'bob' AND message_id = $1")
                .bind(&hello)
                .fetch_one(pool)
                .await
                .unwrap();
        (delivery == "read" && read_at.is_some()).then_some(())
    })
    .await;

    // Chat states: alice shows bob she is typing, then stops.
    for state in ["composing", "paused"] {
        let job: i64 = sqlx::query_scalar("SELECT wa.send_presence('alice', $1, $2)")
            .bind(B_PHONE)
            .bind(state)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(finished(pool, job).await, json!({"shown": true}));
        let note = notes.wait(WITHIN, "wa_chat_state", state, |n| n["session"] == "bob" && n["state"] == state).await;
        let (chat, sender, got): (String, String, String) =
            sqlx::query_as("SELECT chat, sender, state FROM wa.chat_states WHERE id = $1")
                .bind(note["id"].as_i64().unwrap())
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(got, state);
        assert!(chat == alice_jid || chat.ends_with("@lid"), "{chat}");
        assert!(sender == alice_jid || sender.ends_with("@lid"), "{sender}");
        assert_eq!(note.as_object().unwrap().len(), 3, "ids and the state only: {note}");
    }

    // Number checks: bob is on WhatsApp (with his LID), the stranger is not.
    let job: i64 = sqlx::query_scalar("SELECT wa.check_numbers('alice', ARRAY[$1, $2, $1])")
        .bind(format!("+{B_PHONE}"))
        .bind(STRANGER)
        .fetch_one(pool)
        .await
        .unwrap();
    let result = finished(pool, job).await;
    assert_eq!(result, json!({"checked": 2, "on_whatsapp": 1, "unanswered": []}));
    notes
        .wait(WITHIN, "wa_contacts", "the check's announcement", |n| n == &json!({"session": "alice", "job": job, "checked": 2}))
        .await;
    type Contact = (String, Option<bool>, Option<String>, Option<String>, bool);
    let rows: Vec<Contact> = sqlx::query_as(
        "SELECT phone, on_whatsapp, jid, lid, checked_at IS NOT NULL FROM wa.contacts WHERE session_id = 'alice' AND phone = ANY($1) ORDER BY phone",
    )
    .bind(vec![B_PHONE, STRANGER])
    .fetch_all(pool)
    .await
    .unwrap();
    // The session's own LID names its device (user:device@lid); contacts name the account.
    let bob_lid = bob.lid.as_deref().map(|l| format!("{}@lid", l.split(['@', ':']).next().unwrap_or_default()));
    assert!(bob_lid.is_some(), "bob's session knows its LID");
    assert_eq!(
        rows,
        vec![
            (B_PHONE.to_string(), Some(true), Some(format!("{B_PHONE}@s.whatsapp.net")), bob_lid, true),
            (STRANGER.to_string(), Some(false), None, None, true),
        ]
    );
    assert_eq!(alice.status, "connected");
}
