//! Polls in Postgres: wa.send_poll's checks (SQLSTATE, the argument named, nothing
//! inserted), the poll's secret kept across attempts and out of apps' reach, and
//! wa.poll_results counting each voter's latest vote. No worker runs here: votes are
//! written as the worker writes them.

mod common;

use common::refused_by_name;
use common::roles::{Login, refused};
use pgwa_core::fence::Fence;
use pgwa_testkit::TestDb;
use serde_json::{Value, json};

const CHAT: &str = "15550001111@s.whatsapp.net";

#[tokio::test]
async fn polls_are_checked_at_enqueue() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let (job, _): (i64, String) = sqlx::query_as("SELECT * FROM wa.send_poll('s1', '+15550001111', 'Day?', ARRAY['Sat', 'Sun'])")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let p: Value = sqlx::query_scalar("SELECT payload FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
    assert_eq!(p, json!({"type": "poll", "to": CHAT, "question": "Day?", "options": ["Sat", "Sun"], "selectable_count": 1}));
    let thirteen = "SELECT wa.send_poll('s1', '+15550001111', 'Q', ARRAY(SELECT 'o' || i FROM generate_series(1, 13) i))";
    refused_by_name(
        &db.pool,
        &[
            ("SELECT wa.send_poll('s1', '+15550001111', ' ', ARRAY['a', 'b'])", "WA006", "question"),
            ("SELECT wa.send_poll('s1', '+15550001111', NULL, ARRAY['a', 'b'])", "WA006", "question"),
            ("SELECT wa.send_poll('s1', '+15550001111', 'Q', ARRAY['a'])", "WA006", "options"),
            ("SELECT wa.send_poll('s1', '+15550001111', 'Q', NULL)", "WA006", "options"),
            (thirteen, "WA006", "options"),
            ("SELECT wa.send_poll('s1', '+15550001111', 'Q', ARRAY['a', 'a'])", "WA006", "options"),
            ("SELECT wa.send_poll('s1', '+15550001111', 'Q', ARRAY['a', ''])", "WA006", "options"),
            ("SELECT wa.send_poll('s1', '+15550001111', 'Q', ARRAY['a', 'b'], 3)", "WA006", "selectable_count"),
            ("SELECT wa.send_poll('s1', '+15550001111', 'Q', ARRAY['a', 'b'], -1)", "WA006", "selectable_count"),
            (
                "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'send', '{\"type\": \"poll\", \"to\": \"+15550001111\", \"question\": \"Q\", \"options\": [\"a\", \"b\"], \"selectable_count\": 1.5}')",
                "WA006",
                "selectable_count",
            ),
            (
                "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'send', '{\"type\": \"poll\", \"to\": \"+15550001111\", \"question\": \"Q\", \"options\": [\"a\", \"b\"], \"selectable_count\": \"1\"}')",
                "WA006",
                "selectable_count",
            ),
            ("SELECT wa.send_poll('s1', 'nobody', 'Q', ARRAY['a', 'b'])", "WA002", "to"),
        ],
    )
    .await;
    // Any number of picks (0) and a plain INSERT without a count (1) are fine.
    sqlx::query("SELECT wa.send_poll('s1', '+15550001111', 'Q', ARRAY['a', 'b', 'c'], 0)").execute(&db.pool).await.unwrap();
    let n: Value = sqlx::query_scalar(
        "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'send', '{\"type\": \"poll\", \"to\": \"+15550001111\", \"question\": \"Q\", \"options\": [\"a\", \"b\"]}') RETURNING payload->'selectable_count'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(n, json!(1));
}

#[tokio::test]
async fn a_polls_secret_is_made_once_kept_from_apps_and_fenced() {
    let db = TestDb::new().await.unwrap();
    let f = common::held_s1(&db).await;
    let (job, poll): (i64, String) = sqlx::query_as("SELECT * FROM wa.send_poll('s1', $1, 'Day?', ARRAY['Sat', 'Sun'])")
        .bind(CHAT)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let first = pgwa_pg::polls::secret(&db.pool, &f, CHAT, &poll, &[1u8; 32]).await.unwrap();
    assert_eq!(first, Some(vec![1u8; 32]));
    // A retry makes another, but the first one is what the recipient may hold: kept.
    let retry = pgwa_pg::polls::secret(&db.pool, &f, CHAT, &poll, &[2u8; 32]).await.unwrap();
    assert_eq!(retry, first);
    let sent = pgwa_pg::polls::sent_poll(&db.pool, "s1", &poll).await.unwrap().expect("the poll is known");
    assert_eq!((sent.options, sent.secret), (vec!["Sat".to_string(), "Sun".to_string()], vec![1u8; 32]));
    // A worker that lost the lease gets nothing and writes nothing.
    let stale = Fence { epoch: f.epoch - 1, ..f.clone() };
    let other = sqlx::query_scalar::<_, String>("SELECT message_id FROM wa.send_poll('s1', $1, 'Q', ARRAY['a', 'b'])")
        .bind(CHAT)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(pgwa_pg::polls::secret(&db.pool, &stale, CHAT, &other, &[3u8; 32]).await.unwrap(), None);
    assert!(pgwa_pg::polls::sent_poll(&db.pool, "s1", &other).await.unwrap().is_none());
    // The app sees the poll, never its secret.
    let app = Login::app(&db).await;
    let payload: Value =
        sqlx::query_scalar("SELECT payload FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&app.pool).await.unwrap();
    assert!(!payload.to_string().contains("secret"), "{payload}");
    assert_eq!(refused(&app.pool, "SELECT secret FROM wa.msg_secrets").await, "42501");
    app.drop(&db).await;
}

#[tokio::test]
async fn poll_results_count_each_voters_latest_vote() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let poll: String = sqlx::query_scalar("SELECT message_id FROM wa.send_poll('s1', $1, 'Day?', ARRAY['Sat', 'Sun'], 0)")
        .bind(CHAT)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let vote = |voter: &'static str, id: &'static str, ago: i32, data: Value| {
        let (pool, poll) = (db.pool.clone(), poll.clone());
        async move {
            sqlx::query(
                "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, quoted_id, data, sent_at)
                 VALUES ('s1', $1, $1, $2, 'poll_vote', $3, $4, now() - make_interval(secs => $5))",
            )
            .bind(voter)
            .bind(id)
            .bind(poll)
            .bind(data)
            .bind(ago)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    let (ana, bob, cy) = ("1@s.whatsapp.net", "2@s.whatsapp.net", "3@s.whatsapp.net");
    vote(ana, "V1", 30, json!({"options": ["Sat"]})).await;
    vote(ana, "V2", 20, json!({"options": ["Sat", "Sun"]})).await; // changed: both
    vote(bob, "V3", 20, json!({"options": ["Sun"]})).await;
    vote(bob, "V4", 10, json!({"options": []})).await; // withdrawn
    vote(cy, "V5", 20, json!({"options": ["Sun"]})).await;
    vote(cy, "V6", 10, json!({"error": "the vote could not be opened"})).await; // does not mask V5
    let rows: Vec<(String, i64, Vec<String>)> =
        sqlx::query_as("SELECT option, votes, voters FROM wa.poll_results WHERE poll_id = $1 ORDER BY position")
            .bind(&poll)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![("Sat".to_string(), 1, vec![ana.to_string()]), ("Sun".to_string(), 2, vec![ana.to_string(), cy.to_string()])]
    );
}
