//! The SQL API of the actions that are not messages (wa.mark_read, wa.send_presence,
//! wa.check_numbers) and the tables they fill: what each stores for the worker, bad input
//! refused with its SQLSTATE and the argument named (nothing inserted), who may read
//! wa.contacts, wa.chat_states, wa.calls and wa.media, the store's LID mappings copied to wa.contacts, and
//! how the claim treats the new kinds. No worker runs here.

mod common;

use common::roles::{Login, refused};
use common::{fails, refused_by_name};
use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const CHAT: &str = "15550001111@s.whatsapp.net";

async fn db_with_inbox() -> TestDb {
    let db = TestDb::new().await.unwrap();
    sqlx::raw_sql(
        "SELECT wa.add_session('s1'), wa.add_session('s2');
         INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text) VALUES
           ('s1', '15550001111@s.whatsapp.net', '15550001111@s.whatsapp.net', 'AAAA0001', 'text', 'one'),
           ('s1', '15550001111@s.whatsapp.net', '15550001111@s.whatsapp.net', 'AAAA0002', 'text', 'two'),
           ('s1', '15550002222@s.whatsapp.net', '15550002222@s.whatsapp.net', 'BBBB0001', 'text', 'other chat'),
           ('s2', '15550001111@s.whatsapp.net', '15550001111@s.whatsapp.net', 'CCCC0001', 'text', 'other session');",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

#[derive(sqlx::FromRow, Debug)]
struct Job {
    kind: String,
    payload: Value,
    lane: i16,
    priority: i16,
    chat: Option<String>,
    message_id: Option<String>,
}

async fn job(pool: &PgPool, id: i64) -> Job {
    sqlx::query_as("SELECT kind::text, payload, lane, priority, chat, message_id FROM wa.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn id(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn read_marks_chat_states_and_number_checks_are_stored_for_the_worker() {
    let db = db_with_inbox().await;
    let pool = &db.pool;

    let j = job(pool, id(pool, "SELECT wa.mark_read('s1', '+1 555 000 1111', ARRAY['AAAA0002', 'AAAA0001', 'AAAA0002'])").await)
        .await;
    assert_eq!((j.kind.as_str(), j.lane, j.chat, j.message_id), ("mark_read", 1, None, None));
    assert_eq!(j.payload, json!({"chat": CHAT, "message_ids": ["AAAA0001", "AAAA0002"]}));

    let j = job(pool, id(pool, "SELECT wa.send_presence('s1', '+15550001111', 'composing')").await).await;
    assert_eq!(
        (j.kind.as_str(), j.lane, j.priority, &j.payload["chat"], &j.payload["state"]),
        ("presence", 1, 50, &json!(CHAT), &json!("composing"))
    );
    let expires: chrono::DateTime<chrono::Utc> = serde_json::from_value(j.payload["expires_at"].clone()).unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(50) && left <= chrono::Duration::seconds(60), "a minute to show it: {left}");

    let j = job(
        pool,
        id(pool, "SELECT wa.check_numbers('s1', ARRAY['+55 (11) 98888-7777', '15550001111@s.whatsapp.net', '5511988887777'])")
            .await,
    )
    .await;
    assert_eq!((j.kind.as_str(), j.lane), ("check_numbers", 1));
    assert_eq!(j.payload, json!({"phones": ["5511988887777", "15550001111"]}));

    // Through wa.enqueue and a plain INSERT: the same checks, the same normal form.
    let j = job(
        pool,
        id(pool, "SELECT (wa.enqueue('s1', 'presence', '{\"chat\": \"+15550001111\", \"state\": \"recording\"}')).id").await,
    )
    .await;
    assert_eq!(j.payload["chat"], json!(CHAT));
    let j = job(pool, id(pool, "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'check_numbers', '{\"phones\": [\"+15550003333\"]}') RETURNING id").await).await;
    assert_eq!(j.payload, json!({"phones": ["15550003333"]}));
    // A caller cannot stretch a chat state's life past its minute.
    let j = job(pool, id(pool, "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'presence', '{\"chat\": \"+15550001111\", \"state\": \"paused\", \"expires_at\": \"2100-01-01T00:00:00Z\"}') RETURNING id").await).await;
    assert!(j.payload["expires_at"].as_str().unwrap() < "2100", "{}", j.payload);
}

#[tokio::test]
async fn bad_read_marks_chat_states_and_number_checks_are_refused_by_name() {
    let db = db_with_inbox().await;
    let thousand_and_one = "SELECT wa.check_numbers('s1', ARRAY(SELECT (15550000000 + i)::text FROM generate_series(1, 1001) i))";
    refused_by_name(
        &db.pool,
        &[
            ("SELECT wa.mark_read('s1', '+15550001111', ARRAY['AAAA0009'])", "WA013", "message_ids"),
            // Another chat's message, another session's, a message it sent: not this chat's inbox.
            ("SELECT wa.mark_read('s1', '+15550001111', ARRAY['AAAA0001', 'BBBB0001'])", "WA013", "message_ids"),
            ("SELECT wa.mark_read('s1', '+15550001111', ARRAY['CCCC0001'])", "WA013", "message_ids"),
            ("SELECT wa.mark_read('s1', '+15550001111', ARRAY['x'])", "WA006", "message_ids"),
            ("SELECT wa.mark_read('s1', '+15550001111', ARRAY[]::text[])", "WA006", "message_ids"),
            ("SELECT wa.mark_read('s1', '+15550001111', NULL)", "WA006", "message_ids"),
            ("SELECT wa.mark_read('s1', 'nobody', ARRAY['AAAA0001'])", "WA002", "chat"),
            ("SELECT wa.mark_read('nope', '+15550001111', ARRAY['AAAA0001'])", "WA001", "session"),
            ("SELECT wa.send_presence('s1', '+15550001111', 'typing')", "WA006", "state"),
            ("SELECT wa.send_presence('s1', '+15550001111', NULL)", "WA006", "state"),
            ("SELECT wa.send_presence('s1', NULL, 'paused')", "WA002", "chat"),
            ("SELECT wa.check_numbers('s1', ARRAY[]::text[])", "WA006", "phones"),
            ("SELECT wa.check_numbers('s1', NULL)", "WA006", "phones"),
            ("SELECT wa.check_numbers('s1', ARRAY['12ab'])", "WA002", "phones"),
            ("SELECT wa.check_numbers('s1', ARRAY['120363000000000001@g.us'])", "WA002", "phones"),
            ("SELECT wa.check_numbers('s1', ARRAY['123@lid'])", "WA002", "phones"),
            (thousand_and_one, "WA006", "phones"),
            ("SELECT wa.enqueue('s1', 'presence', '{\"chat\": \"+15550001111\", \"state\": 1}')", "WA006", "state"),
            (
                "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'check_numbers', '{\"phones\": \"15550001111\"}')",
                "WA006",
                "phones",
            ),
        ],
    )
    .await;
    let (code, msg) = fails(&db.pool, "SELECT wa.enqueue('s1', 'poke')").await;
    assert_eq!(code, "WA004");
    assert!(msg.contains("mark_read, presence, check_numbers"), "{msg}");
}

#[tokio::test]
async fn apps_read_only_their_own_contacts_chat_states_and_calls_and_write_none() {
    let db = db_with_inbox().await;
    let acme = common::roles::cluster_name(&db, "acme");
    sqlx::query("SELECT wa.add_tenant($1)").bind(&acme).execute(&db.pool).await.unwrap();
    let a = Login::new(&db, "ta", Some(&format!("pgwa_t_{acme}"))).await;
    let app = Login::app(&db).await;
    sqlx::query("SELECT wa.add_session('a1')").execute(&a.pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO wa.contacts (session_id, phone, jid, on_whatsapp) VALUES ('s1', '15550001111', '15550001111@s.whatsapp.net', true),
                                                                              ('a1', '15550004444', NULL, false);
         INSERT INTO wa.chat_states (session_id, chat, sender, state) VALUES ('s1', 'c@s.whatsapp.net', 'c@s.whatsapp.net', 'composing'),
                                                                               ('a1', 'd@s.whatsapp.net', 'd@s.whatsapp.net', 'paused');
         INSERT INTO wa.calls (session_id, call_id, caller, video, offered_at, status) VALUES
           ('s1', 'C1', 'c@s.whatsapp.net', false, now(), 'rejected'), ('a1', 'C2', 'd@s.whatsapp.net', true, now(), 'offered');
         INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind) VALUES ('a1', 'd@s.whatsapp.net', 'd@s.whatsapp.net', 'DDDD0001', 'image');
         INSERT INTO wa.media (inbox_id, session_id, size, sha256, data)
           SELECT id, session_id, 1, '\\x00', '\\x00' FROM wa.inbox WHERE message_id IN ('AAAA0001', 'DDDD0001');",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    for (login, session) in [(&a, "a1"), (&app, "s1")] {
        for table in ["wa.contacts", "wa.chat_states", "wa.calls", "wa.media"] {
            let seen: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT session_id FROM {table}")))
                .fetch_all(&login.pool)
                .await
                .unwrap();
            assert_eq!(seen, [session], "{table} as {}", login.name);
        }
        for sql in [
            "INSERT INTO wa.contacts (session_id, phone, on_whatsapp) VALUES ('s1', '15550009999', true)",
            "UPDATE wa.contacts SET on_whatsapp = true",
            "DELETE FROM wa.contacts",
            "UPDATE wa.chat_states SET state = 'paused'",
            "UPDATE wa.calls SET status = 'offered'",
            "UPDATE wa.media SET data = '\\x01'",
            "UPDATE wa.policy SET media_download = 'postgres'",
            "UPDATE wa.policy SET reject_calls = false",
            "INSERT INTO wa.lid_mappings (session_id, lid, phone_number, created_at, updated_at, learning_source) VALUES ('s1', '1', '2', 0, 0, 'x')",
            "SELECT * FROM wa.lid_mappings",
        ] {
            assert_eq!(refused(&login.pool, sql).await, "42501", "{sql} as {}", login.name);
        }
        // A tenant's read receipts name only its own sessions' messages.
        let other = if session == "a1" { "s1" } else { "a1" };
        let e = sqlx::query("SELECT wa.mark_read($1, '+15550001111', ARRAY['AAAA0001'])")
            .bind(other)
            .execute(&login.pool)
            .await
            .unwrap_err();
        assert_eq!(common::sqlstate(&e), "WA001", "{other} as {}", login.name);
    }
    a.drop(&db).await;
    app.drop(&db).await;
    common::roles::drop_tenant(&db, &acme).await;
}

#[tokio::test]
async fn lid_mappings_the_store_learns_show_in_contacts() {
    let db = db_with_inbox().await;
    let pool = &db.pool;
    let put = |lid: &'static str| {
        sqlx::query(
            "INSERT INTO wa.lid_mappings (session_id, lid, phone_number, created_at, updated_at, learning_source)
             VALUES ('s1', $1, '15550001111', 1, 1, 'usync')
             ON CONFLICT (session_id, lid) DO UPDATE SET updated_at = EXCLUDED.updated_at + 1, write_seq = nextval('wa.store_write_seq')",
        )
        .bind(lid)
        .execute(pool)
    };
    put("100000001").await.unwrap();
    let read = || async {
        sqlx::query_as::<_, (String, Option<String>, Option<String>, Option<bool>, chrono::DateTime<chrono::Utc>)>(
            "SELECT phone, jid, lid, on_whatsapp, updated_at FROM wa.contacts WHERE session_id = 's1'",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    };
    let first = read().await;
    assert_eq!(first.len(), 1);
    let (phone, jid, lid, on, at) = first[0].clone();
    assert_eq!(
        (phone.as_str(), jid.as_deref(), lid.as_deref(), on),
        ("15550001111", Some("15550001111@s.whatsapp.net"), Some("100000001@lid"), None),
        "learned, never checked"
    );
    // The store re-writes a known mapping often: that costs no contacts write.
    put("100000001").await.unwrap();
    assert_eq!(read().await[0].4, at, "an unchanged mapping leaves the contact alone");
    // A new LID for the number replaces the old one.
    put("100000002").await.unwrap();
    assert_eq!(read().await[0].2.as_deref(), Some("100000002@lid"));
}

#[tokio::test]
async fn the_claim_takes_connection_jobs_only_while_connected_and_only_kinds_it_knows() {
    let db = db_with_inbox().await;
    let pool = &db.pool;
    let worker = Uuid::new_v4();
    sqlx::query("INSERT INTO wa.workers (id, host, pid, version, max_sessions) VALUES ($1, 'test', 1, 'test', 10)")
        .bind(worker)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE wa.sessions SET owner_id = $1, epoch = 1, lease_expires_at = now() + interval '1 hour' WHERE id = 's1'")
        .bind(worker)
        .execute(pool)
        .await
        .unwrap();
    let check = id(pool, "SELECT wa.check_numbers('s1', ARRAY['15550001111'])").await;
    let presence = id(pool, "SELECT wa.send_presence('s1', '15550001111', 'composing')").await;
    let reconnect = id(pool, "SELECT wa.reconnect('s1')").await;
    let claim = |connected: &'static [&'static str], kinds: &'static [&'static str]| async move {
        let rows = sqlx::query(pgwa_pg::jobs::CLAIM)
            .bind(worker)
            .bind(vec!["s1"])
            .bind(connected)
            .bind(100i64)
            .bind(0i64)
            .bind(kinds)
            .fetch_all(pool)
            .await
            .unwrap();
        rows.iter().map(|r| sqlx::Row::get::<i64, _>(r, "id")).collect::<Vec<i64>>()
    };
    let all: Vec<&str> = pgwa_core::job::JobKind::ALL.iter().map(|k| k.as_str()).collect();
    let all: &'static [&'static str] = Box::leak(all.into_boxed_slice());
    // Disconnected: the control job only.
    assert_eq!(claim(&[], all).await, [reconnect]);
    // Connected, by a worker that does not know check_numbers (an older pgwa): not that one.
    assert_eq!(claim(&["s1"], &["send", "reconnect", "presence"]).await, [presence]);
    assert_eq!(claim(&["s1"], all).await, [check]);
}
