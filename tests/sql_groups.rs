//! The SQL API of groups (wa.create_group, wa.group_participants, wa.group_invite_link,
//! wa.leave_group) and wa.groups: what each stores for the worker, bad input refused
//! with its SQLSTATE and the argument named (nothing inserted), who may read wa.groups
//! and hear wa_groups. No worker runs here.

mod common;

use common::roles::{Login, refused};
use common::{fails, refused_by_name};
use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;

const GROUP: &str = "120363000000000001@g.us";

async fn payload(pool: &PgPool, sql: &str) -> (String, i16, Value) {
    let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap();
    sqlx::query_as("SELECT kind::text, lane, payload FROM wa.jobs WHERE id = $1").bind(id).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn group_actions_are_stored_for_the_worker_in_one_normal_form() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('s1')").execute(pool).await.unwrap();

    let (kind, lane, p) = payload(
        pool,
        "SELECT wa.create_group('s1', 'Team', ARRAY['+1 555 000 1111', '15550002222@s.whatsapp.net', '15550001111'])",
    )
    .await;
    assert_eq!((kind.as_str(), lane), ("group", 1), "acts through the connection");
    assert_eq!(p, json!({"action": "create", "subject": "Team", "participants": ["15550001111", "15550002222"]}));

    for action in ["add", "remove", "promote", "demote"] {
        let (_, _, p) = payload(
            pool,
            &format!("SELECT wa.group_participants('s1', ' 120363000000000001@G.US ', '{action}', ARRAY['+15550003333'])"),
        )
        .await;
        assert_eq!(p, json!({"action": action, "group": GROUP, "participants": ["15550003333"]}));
    }
    let (_, _, p) = payload(pool, &format!("SELECT wa.group_invite_link('s1', '{GROUP}')")).await;
    assert_eq!(p, json!({"action": "invite_link", "group": GROUP}));
    let (_, _, p) = payload(pool, &format!("SELECT wa.leave_group('s1', '{GROUP}')")).await;
    assert_eq!(p, json!({"action": "leave", "group": GROUP}));

    // A plain INSERT gets the same checks and loses what no action uses.
    let (_, _, p) = payload(
        pool,
        &format!(
            "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'group', \
             '{{\"action\": \"leave\", \"group\": \"{GROUP}\", \"participants\": [\"x\"], \"subject\": 1}}') RETURNING id"
        ),
    )
    .await;
    assert_eq!(p, json!({"action": "leave", "group": GROUP}));
}

#[tokio::test]
async fn bad_group_actions_are_refused_by_name() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let long = format!("SELECT wa.create_group('s1', '{}', ARRAY['15550001111'])", "x".repeat(101));
    let too_many = "SELECT wa.create_group('s1', 'Big', ARRAY(SELECT (15550000000 + i)::text FROM generate_series(1, 1024) i))";
    refused_by_name(
        &db.pool,
        &[
            ("SELECT wa.create_group('nope', 'Team', ARRAY['15550001111'])", "WA001", "session"),
            ("SELECT wa.create_group('s1', '', ARRAY['15550001111'])", "WA006", "subject"),
            ("SELECT wa.create_group('s1', E' \\n', ARRAY['15550001111'])", "WA006", "subject"),
            ("SELECT wa.create_group('s1', NULL, ARRAY['15550001111'])", "WA006", "subject"),
            (&long, "WA006", "subject"),
            ("SELECT wa.create_group('s1', 'Team', ARRAY[]::text[])", "WA006", "participants"),
            ("SELECT wa.create_group('s1', 'Team', NULL)", "WA006", "participants"),
            ("SELECT wa.create_group('s1', 'Team', ARRAY['12ab'])", "WA002", "participants"),
            ("SELECT wa.create_group('s1', 'Team', ARRAY['120363000000000002@g.us'])", "WA002", "participants"),
            (too_many, "WA006", "participants"),
            ("SELECT wa.group_participants('s1', '120363000000000001@g.us', 'kick', ARRAY['15550001111'])", "WA006", "action"),
            ("SELECT wa.group_participants('s1', '120363000000000001@g.us', NULL, ARRAY['15550001111'])", "WA006", "action"),
            ("SELECT wa.group_participants('s1', '+15550001111', 'add', ARRAY['15550001111'])", "WA002", "group_jid"),
            ("SELECT wa.group_participants('s1', 'abc@g.us', 'add', ARRAY['15550001111'])", "WA002", "group_jid"),
            ("SELECT wa.group_participants('s1', NULL, 'add', ARRAY['15550001111'])", "WA002", "group_jid"),
            ("SELECT wa.group_participants('s1', '120363000000000001@g.us', 'add', ARRAY[]::text[])", "WA006", "participants"),
            ("SELECT wa.group_invite_link('s1', '15550001111@s.whatsapp.net')", "WA002", "group_jid"),
            ("SELECT wa.leave_group('s1', '')", "WA002", "group_jid"),
            ("SELECT wa.leave_group('nope', '120363000000000001@g.us')", "WA001", "session"),
            ("SELECT wa.enqueue('s1', 'group', '{\"action\": \"rename\"}')", "WA006", "action"),
            ("INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'group', '{}')", "WA006", "action"),
        ],
    )
    .await;
    let (code, msg) = fails(&db.pool, "SELECT wa.enqueue('s1', 'poke')").await;
    assert_eq!(code, "WA004");
    assert!(msg.contains("media_download, group"), "{msg}");
}

#[tokio::test]
async fn apps_read_only_their_own_groups_and_write_none() {
    let db = TestDb::new().await.unwrap();
    let acme = common::roles::cluster_name(&db, "acme");
    sqlx::query("SELECT wa.add_session('s1'), wa.add_tenant($1)").bind(&acme).execute(&db.pool).await.unwrap();
    let a = Login::new(&db, "ta", Some(&format!("pgwa_t_{acme}"))).await;
    let app = Login::app(&db).await;
    sqlx::query("SELECT wa.add_session('a1')").execute(&a.pool).await.unwrap();

    // The worker writes wa.groups; each row change is announced by id, without a JID.
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("wa_groups").await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO wa.groups (session_id, jid, subject, participants) VALUES
           ('s1', '120363000000000001@g.us', 'Ours', '[{\"jid\": \"15550001111@s.whatsapp.net\", \"phone\": \"15550001111\", \"admin\": null}]'),
           ('a1', '120363000000000002@g.us', 'Theirs', '[]')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let note: Value = serde_json::from_str(listener.recv().await.unwrap().payload()).unwrap();
    assert_eq!(note["session"], "s1");
    assert!(note["id"].is_i64() && note.get("left_at").is_some(), "{note}");
    assert!(!note.to_string().contains("@"), "no JID in the payload: {note}");

    for (login, session) in [(&a, "a1"), (&app, "s1")] {
        let seen: Vec<String> = sqlx::query_scalar("SELECT session_id FROM wa.groups").fetch_all(&login.pool).await.unwrap();
        assert_eq!(seen, [session], "wa.groups as {}", login.name);
        for sql in [
            "INSERT INTO wa.groups (session_id, jid, subject) VALUES ('s1', '120363000000000009@g.us', 'x')",
            "UPDATE wa.groups SET subject = 'x'",
            "UPDATE wa.groups SET left_at = now()",
            "DELETE FROM wa.groups",
        ] {
            assert_eq!(refused(&login.pool, sql).await, "42501", "{sql} as {}", login.name);
        }
        // The functions are the app's, for its own sessions only.
        let other = if session == "a1" { "s1" } else { "a1" };
        sqlx::query("SELECT wa.group_invite_link($1, '120363000000000001@g.us')")
            .bind(session)
            .execute(&login.pool)
            .await
            .unwrap();
        let e = sqlx::query("SELECT wa.leave_group($1, '120363000000000001@g.us')")
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
