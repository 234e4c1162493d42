//! End to end, groups: a `pgwa run` worker (whatsapp-rust backend) links alice and bob
//! to the loopback WhatsApp Web server, and Paula uses a plain whatsapp-rust client.
//! Alice creates a group of the three; both sessions' wa.groups show it (bob's from the
//! server's notification); messages to the group reach everyone through sender keys,
//! both ways; admins promote, add (refusals answered one by one), remove and fetch the
//! invite link; bob leaves; a member who is not an admin is refused.

mod common;

use std::time::Duration;

use common::loopback::{Person, Worker, link_by_qr, start_server};
use pgwa_testkit::TestDb;
use serde_json::Value;
use sqlx::PgPool;
use whatsapp_rust::types::events::Event;

const A_PHONE: &str = "15550008181";
const B_PHONE: &str = "15550008282";
const P_PHONE: &str = "15550008383";
const WITHIN: Duration = Duration::from_secs(60);

/// The job's final state, result and last error, once it has one.
async fn finished(pool: &PgPool, job: i64) -> (String, Option<Value>, Option<String>) {
    common::eventually(WITHIN, &format!("job {job} to finish"), || async {
        let row: (String, Option<Value>, Option<String>) = sqlx::query_as(
            "SELECT state::text, result, errors->-1->>'error' FROM wa.jobs WHERE id = $1 AND state IN ('completed', 'dead', 'cancelled')",
        )
        .bind(job)
        .fetch_optional(pool)
        .await
        .unwrap()?;
        Some(row)
    })
    .await
}

async fn completed(pool: &PgPool, sql: &str) -> Value {
    let job: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap();
    let (state, result, error) = finished(pool, job).await;
    assert_eq!(state, "completed", "{sql}: {error:?}");
    result.expect("a completed group job has a result")
}

/// A session's view of the group: each member's phone and rank, sorted.
async fn members(pool: &PgPool, session: &str, group: &str) -> Option<Vec<(String, Option<String>)>> {
    let participants: Value =
        sqlx::query_scalar("SELECT participants FROM wa.groups WHERE session_id = $1 AND jid = $2 AND left_at IS NULL")
            .bind(session)
            .bind(group)
            .fetch_optional(pool)
            .await
            .unwrap()?;
    let mut out: Vec<(String, Option<String>)> = participants
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phone"].as_str().unwrap_or_default().to_string(), p["admin"].as_str().map(str::to_string)))
        .collect();
    out.sort();
    Some(out)
}

fn ranks(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    let mut v: Vec<_> = list.iter().map(|(p, a)| (p.to_string(), a.map(str::to_string))).collect();
    v.sort();
    v
}

async fn shows(pool: &PgPool, session: &str, group: &str, want: &[(String, Option<String>)], what: &str) {
    common::eventually(WITHIN, what, || async { (members(pool, session, group).await.as_deref() == Some(want)).then_some(()) })
        .await;
}

async fn inbox_row(pool: &PgPool, session: &str, message_id: &str) -> (String, String, Option<String>) {
    common::eventually(WITHIN, &format!("message {message_id} in {session}'s inbox"), || async {
        sqlx::query_as("SELECT chat, sender, text FROM wa.inbox WHERE session_id = $1 AND message_id = $2")
            .bind(session)
            .bind(message_id)
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_created_shared_written_to_and_managed_end_to_end() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, "alice", A_PHONE).await;
    link_by_qr(pool, &server, "bob", B_PHONE).await;
    let mut paula = Person::link(&server, "Paula", P_PHONE).await;

    // Alice creates the group: the job names it, and both sessions' wa.groups show it.
    let created =
        completed(pool, &format!("SELECT wa.create_group('alice', 'Saturday team', ARRAY['+{B_PHONE}', '{P_PHONE}'])")).await;
    let group = created["group"].as_str().unwrap().to_string();
    assert!(group.ends_with("@g.us"), "{created}");
    assert_eq!(created["participants"], 3);
    let all = ranks(&[(A_PHONE, Some("superadmin")), (B_PHONE, None), (P_PHONE, None)]);
    assert_eq!(members(pool, "alice", &group).await.as_deref(), Some(&all[..]));
    let (subject, creator): (String, Option<String>) =
        sqlx::query_as("SELECT subject, creator FROM wa.groups WHERE session_id = 'alice' AND jid = $1")
            .bind(&group)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((subject.as_str(), creator), ("Saturday team", Some(format!("{A_PHONE}@s.whatsapp.net"))));
    shows(pool, "bob", &group, &all, "the new group in bob's wa.groups").await;

    // A message to the group reaches bob's inbox and Paula's phone (sender keys).
    let (_, hello): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_text('alice', $1, 'Hello team')").bind(&group).fetch_one(pool).await.unwrap();
    let (chat, sender, text) = inbox_row(pool, "bob", &hello).await;
    assert_eq!((chat.as_str(), text.as_deref()), (group.as_str(), Some("Hello team")));
    assert!(sender.starts_with(A_PHONE), "the author is the sender: {sender}");
    let (paula_chat, paula_text) = paula
        .wait_for("alice's group message at Paula's phone", 60, |e| match e {
            Event::Messages(batch) => batch
                .iter()
                .find(|m| m.info.id == hello)
                .map(|m| (m.info.source.chat.to_string(), m.message.conversation.clone())),
            _ => None,
        })
        .await;
    assert_eq!((paula_chat.as_str(), paula_text.as_deref()), (group.as_str(), Some("Hello team")));
    // Delivered as soon as one member's phone says so.
    common::eventually(WITHIN, "alice's group message delivered", || async {
        let d: String = sqlx::query_scalar("SELECT delivery::text FROM wa.jobs WHERE message_id = $1")
            .bind(&hello)
            .fetch_one(pool)
            .await
            .unwrap();
        (d == "delivered" || d == "read").then_some(())
    })
    .await;

    // And back: bob writes to the group; alice's inbox has it under the group.
    let (_, reply): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_text('bob', $1, 'Hi all')").bind(&group).fetch_one(pool).await.unwrap();
    let (chat, sender, text) = inbox_row(pool, "alice", &reply).await;
    assert_eq!((chat.as_str(), text.as_deref()), (group.as_str(), Some("Hi all")));
    assert!(sender.starts_with(B_PHONE), "{sender}");

    // Promote bob: both views show him as admin.
    let promoted =
        completed(pool, &format!("SELECT wa.group_participants('alice', '{group}', 'promote', ARRAY['{B_PHONE}'])")).await;
    assert_eq!(promoted["changed"], serde_json::json!([format!("{B_PHONE}@s.whatsapp.net")]));
    let with_admin = ranks(&[(A_PHONE, Some("superadmin")), (B_PHONE, Some("admin")), (P_PHONE, None)]);
    assert_eq!(members(pool, "alice", &group).await.as_deref(), Some(&with_admin[..]));
    shows(pool, "bob", &group, &with_admin, "bob as admin in his own wa.groups").await;

    // Adding someone not on WhatsApp and someone already in: each refusal answered.
    let added =
        completed(pool, &format!("SELECT wa.group_participants('alice', '{group}', 'add', ARRAY['15550009999', '{B_PHONE}'])"))
            .await;
    assert_eq!(added["changed"], serde_json::json!([]));
    let refused: Vec<(String, String)> = added["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["participant"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    assert!(refused.contains(&("15550009999@s.whatsapp.net".into(), "not on WhatsApp".into())), "{added}");
    assert!(refused.contains(&(format!("{B_PHONE}@s.whatsapp.net"), "already a member".into())), "{added}");

    // Remove Paula: gone from both views.
    completed(pool, &format!("SELECT wa.group_participants('alice', '{group}', 'remove', ARRAY['{P_PHONE}'])")).await;
    let two = ranks(&[(A_PHONE, Some("superadmin")), (B_PHONE, Some("admin"))]);
    assert_eq!(members(pool, "alice", &group).await.as_deref(), Some(&two[..]));
    shows(pool, "bob", &group, &two, "Paula removed in bob's wa.groups").await;

    // The invite link: in the job's result and in wa.groups.
    let invite = completed(pool, &format!("SELECT wa.group_invite_link('alice', '{group}')")).await;
    let link = invite["invite_link"].as_str().unwrap().to_string();
    assert!(link.starts_with("https://chat.whatsapp.com/"), "{invite}");
    let stored: Option<String> = sqlx::query_scalar("SELECT invite_link FROM wa.groups WHERE session_id = 'alice' AND jid = $1")
        .bind(&group)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(link.as_str()));

    // Bob leaves: his row keeps the group with left_at; alice's loses him.
    completed(pool, &format!("SELECT wa.leave_group('bob', '{group}')")).await;
    let left: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT left_at FROM wa.groups WHERE session_id = 'bob' AND jid = $1")
            .bind(&group)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(left.is_some(), "bob's row says he left");
    shows(pool, "alice", &group, &ranks(&[(A_PHONE, Some("superadmin"))]), "bob gone from alice's group").await;

    // Bob is no longer an admin of it: refused for good, saying why.
    let job: i64 = sqlx::query_scalar("SELECT wa.group_invite_link('bob', $1)").bind(&group).fetch_one(pool).await.unwrap();
    let (state, _, error) = finished(pool, job).await;
    assert_eq!(state, "dead");
    assert!(error.as_deref().unwrap_or_default().contains("not an admin"), "{error:?}");
    paula.stop().await;
}
