//! Group commit of inbound messages (pgwa_pg::inbox::InboxWriter): the messages of many
//! sessions go in few statements, each keeps its own session's fence, a redelivery is
//! told apart from a new message, and a message Postgres refuses fails alone.

use std::sync::Arc;
use std::time::Duration;

use pgwa_core::fence::Fence;
use pgwa_core::wa::InboundMessage;
use pgwa_pg::WriteFailed;
use pgwa_pg::inbox::{InboxWriter, Stored};
use pgwa_testkit::{TestDb, held_by, take_over};
use serde_json::json;

type Answer = Result<Stored, WriteFailed>;

fn message(id: &str, text: &str) -> InboundMessage {
    InboundMessage {
        chat: "15550001111@s.whatsapp.net".into(),
        sender: "15550001111@s.whatsapp.net".into(),
        message_id: id.into(),
        kind: "text".into(),
        text: Some(text.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_many_sessions_are_stored_together_each_under_its_fence() {
    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let (w1, w2) = (pgwa_testkit::worker_row(pool).await.unwrap(), pgwa_testkit::worker_row(pool).await.unwrap());
    let writer = InboxWriter::new(pool.clone());
    let mut fences = Vec::new();
    for i in 0..10 {
        fences.push(held_by(pool, &format!("i{i:02}"), w1).await.unwrap());
    }
    // i00 changes hands after its connection's fence was taken: its messages are stale.
    take_over(pool, "i00", w2).await.unwrap();

    for round in ["first", "redelivered"] {
        let mut tasks = tokio::task::JoinSet::new();
        for f in &fences {
            for m in 0..10 {
                let (writer, f) = (writer.clone(), f.clone());
                tasks.spawn(async move {
                    let stored = writer.store(&f, Arc::new(message(&format!("M{m}"), "hi"))).await.unwrap();
                    (f.session, stored)
                });
            }
        }
        let mut ids = std::collections::HashSet::new();
        while let Some(done) = tasks.join_next().await {
            let (session, stored) = done.unwrap();
            match (session.as_str(), round, stored) {
                ("i00", _, Stored::FenceLost) => {}
                (_, "first", Stored::New(id)) => assert!(ids.insert(id), "row {id} answered twice"),
                (_, "redelivered", Stored::Known) => {}
                other => panic!("unexpected answer {other:?}"),
            }
        }
        assert!(round != "first" || ids.len() == 90, "{round}: {} new rows", ids.len());
    }
    let stored: Vec<(String, i64)> =
        sqlx::query_as("SELECT session_id, count(*) FROM wa.inbox GROUP BY 1 ORDER BY 1").fetch_all(pool).await.unwrap();
    assert_eq!(stored.len(), 9, "nothing of the fenced-out i00: {stored:?}");
    assert!(stored.iter().all(|(s, n)| s != "i00" && *n == 10), "{stored:?}");
    db.drop_now().await.unwrap();
}

/// Every column of the row, mentions (an array per row, carried as JSON) included, as
/// the single insert stores it; and one message twice in one statement is stored once.
#[tokio::test]
async fn a_batched_row_is_stored_whole_and_a_repeat_in_the_batch_is_known() {
    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let fence = held_by(pool, "s1", pgwa_testkit::worker_row(pool).await.unwrap()).await.unwrap();
    let writer = InboxWriter::new(pool.clone());
    let sent_at = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").unwrap().to_utc();
    let full = InboundMessage {
        kind: "image".into(),
        quoted_id: Some("Q1".into()),
        media: Some(json!({"mimetype": "image/png"})),
        data: Some(json!({"caption": "c"})),
        mentions: vec!["1@s.whatsapp.net".into(), "2@s.whatsapp.net".into()],
        raw: Some(json!({"message": {}})),
        sent_at: Some(sent_at),
        ..message("F1", "look")
    };

    // Held back behind an uncommitted row of another key, the first store keeps the
    // statement in flight while the rest queue up for one statement together.
    let (first, answers) = block_then_queue(&db, &writer, &fence, vec![full.clone(), full.clone(), message("F2", "x")]).await;
    assert!(matches!(first, Ok(Stored::New(_))), "{first:?}");
    let answers: Vec<Stored> = answers.into_iter().map(Result::unwrap).collect();
    assert!(matches!(answers[..], [Stored::New(_), Stored::Known, Stored::New(_)]), "{answers:?}");

    type InboxRow = (
        String,
        Option<String>,
        Option<String>,
        serde_json::Value,
        serde_json::Value,
        Vec<String>,
        serde_json::Value,
        chrono::DateTime<chrono::Utc>,
    );
    let row: InboxRow =
        sqlx::query_as("SELECT kind, text, quoted_id, media, data, mentions, raw, sent_at FROM wa.inbox WHERE message_id = 'F1'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(row.0, "image");
    assert_eq!((row.1.as_deref(), row.2.as_deref()), (Some("look"), Some("Q1")));
    assert_eq!((row.3, row.4), (json!({"mimetype": "image/png"}), json!({"caption": "c"})));
    assert_eq!(row.5, vec!["1@s.whatsapp.net".to_string(), "2@s.whatsapp.net".to_string()]);
    assert_eq!((row.6, row.7), (json!({"message": {}}), sent_at));
    let no_mentions: Option<Vec<String>> =
        sqlx::query_scalar("SELECT mentions FROM wa.inbox WHERE message_id = 'F2'").fetch_one(pool).await.unwrap();
    assert_eq!(no_mentions, None, "no mentions is NULL, as the single insert stores it");
    db.drop_now().await.unwrap();
}

/// A message Postgres refuses (a NUL in its text) fails alone: the other messages of
/// its statement, of this and other sessions, are stored.
#[tokio::test]
async fn a_message_postgres_refuses_fails_alone() {
    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let fence = held_by(pool, "s1", pgwa_testkit::worker_row(pool).await.unwrap()).await.unwrap();
    let writer = InboxWriter::new(pool.clone());
    let batch = vec![message("G1", "fine"), message("G2", "nul \0 inside"), message("G3", "fine too")];
    let (_, answers) = block_then_queue(&db, &writer, &fence, batch).await;
    assert!(matches!(answers[0], Ok(Stored::New(_))), "{answers:?}");
    let e = answers[1].as_ref().unwrap_err();
    assert!(e.to_string().contains("0x00"), "the refusal says why: {e}");
    assert!(matches!(answers[2], Ok(Stored::New(_))), "{answers:?}");
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wa.inbox WHERE message_id IN ('G1', 'G3')").fetch_one(pool).await.unwrap();
    assert_eq!(n, 2);
    db.drop_now().await.unwrap();
}

/// Stores a first message that waits on an uncommitted row of its own key (another
/// transaction's), queues `queued` behind it, lets the first go (the transaction rolls
/// back), and returns the answers.
async fn block_then_queue(
    db: &TestDb,
    writer: &Arc<InboxWriter>,
    fence: &Fence,
    queued: Vec<InboundMessage>,
) -> (Answer, Vec<Answer>) {
    let pool = &db.pool;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind) VALUES ($1, $2, $2, 'BLOCK', 'text')")
        .bind(&fence.session)
        .bind("15550001111@s.whatsapp.net")
        .execute(&mut *tx)
        .await
        .unwrap();
    let first = {
        let (writer, fence) = (writer.clone(), fence.clone());
        tokio::spawn(async move { writer.store(&fence, Arc::new(message("BLOCK", "first"))).await })
    };
    // The first statement is in flight once it waits on the row lock.
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()";
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar(waiting).fetch_one(pool).await.unwrap();
        if n > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut tasks = Vec::new();
    for m in queued {
        let (writer, fence) = (writer.clone(), fence.clone());
        tasks.push(tokio::spawn(async move { writer.store(&fence, Arc::new(m)).await }));
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // all of them queued
    tx.rollback().await.unwrap();
    let first = first.await.unwrap();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    (first, answers)
}

/// The writer keeps its connection between statements (no pool round trips); when that
/// connection was cut while it waited (a Postgres restart, a dropped link), the next
/// message is stored on a fresh one instead of failing, and batching goes on.
#[tokio::test]
async fn a_message_after_the_writers_connection_was_cut_is_stored_on_a_fresh_one() {
    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let fence = held_by(pool, "s1", pgwa_testkit::worker_row(pool).await.unwrap()).await.unwrap();
    let writer = InboxWriter::new(pool.clone());
    assert!(matches!(writer.store(&fence, Arc::new(message("C1", "before"))).await, Ok(Stored::New(_))));

    assert_eq!(pgwa_testkit::cut_connections(pool, "%wa._holds%").await.unwrap(), 1, "the writer's connection");
    assert!(matches!(writer.store(&fence, Arc::new(message("C2", "alone"))).await, Ok(Stored::New(_))));

    assert_eq!(pgwa_testkit::cut_connections(pool, "%wa._holds%").await.unwrap(), 1);
    let (first, rest) = block_then_queue(&db, &writer, &fence, vec![message("C3", "batched"), message("C4", "batched")]).await;
    assert!(first.is_ok(), "{first:?}");
    assert!(rest.iter().all(|a| matches!(a, Ok(Stored::New(_)))), "{rest:?}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.inbox WHERE message_id LIKE 'C%'").fetch_one(pool).await.unwrap();
    assert_eq!(n, 4);
    db.drop_now().await.unwrap();
}

/// Storing a message deletes its buffered copy (wa.pending_inbound, same session, chat,
/// sender and id) in the same statement: alone or batched, new or redelivered; other
/// buffered rows stay, and under a lost fence nothing is deleted.
#[tokio::test]
async fn storing_a_message_deletes_its_buffered_copy_under_the_fence() {
    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let (w1, w2) = (pgwa_testkit::worker_row(pool).await.unwrap(), pgwa_testkit::worker_row(pool).await.unwrap());
    let fence = held_by(pool, "s1", w1).await.unwrap();
    let stale = held_by(pool, "s2", w1).await.unwrap();
    take_over(pool, "s2", w2).await.unwrap();
    let writer = InboxWriter::new(pool.clone());
    let buffer = |session: &'static str, ids: &'static [&'static str]| async move {
        for id in ids {
            sqlx::query(
                "INSERT INTO wa.pending_inbound (session_id, chat, sender, stanza_id, message) VALUES ($1, $2, $2, $3, '\\x00')",
            )
            .bind(session)
            .bind("15550001111@s.whatsapp.net")
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
        }
    };
    let left = || async {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT session_id, stanza_id FROM wa.pending_inbound ORDER BY 1, 2").fetch_all(pool).await.unwrap();
        rows.iter().map(|(s, i)| format!("{s}/{i}")).collect::<Vec<_>>()
    };
    buffer("s1", &["D1", "D2", "D3", "OTHER"]).await;
    buffer("s2", &["D1"]).await;

    assert!(matches!(writer.store(&fence, Arc::new(message("D1", "alone"))).await, Ok(Stored::New(_))));
    assert_eq!(left().await, ["s1/D2", "s1/D3", "s1/OTHER", "s2/D1"]);
    let (first, rest) = block_then_queue(&db, &writer, &fence, vec![message("D2", "b"), message("D3", "b")]).await;
    assert!(first.is_ok() && rest.iter().all(|a| matches!(a, Ok(Stored::New(_)))), "{first:?} {rest:?}");
    assert_eq!(left().await, ["s1/OTHER", "s2/D1"], "the batch deleted its rows' copies, of its session only");

    buffer("s1", &["D1"]).await;
    assert!(matches!(writer.store(&fence, Arc::new(message("D1", "alone"))).await, Ok(Stored::Known)));
    assert_eq!(left().await, ["s1/OTHER", "s2/D1"], "a redelivery's copy is deleted too: the inbox has it");
    assert!(matches!(writer.store(&stale, Arc::new(message("D1", "stale"))).await, Ok(Stored::FenceLost)));
    assert_eq!(left().await, ["s1/OTHER", "s2/D1"], "a stale holder deletes nothing");
    db.drop_now().await.unwrap();
}
