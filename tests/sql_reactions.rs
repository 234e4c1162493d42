//! Reactions are kept on the message they react to: a reaction row stored in wa.inbox
//! (as the worker stores it) updates the reactions of the target, a message received
//! (wa.inbox) or sent (wa.outbound), in the same chat only. No worker runs
//! here: the rows are written as the worker writes them.

mod common;

use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;

const ANA: &str = "15550001111@s.whatsapp.net";
const ANA_LID: &str = "100000001@lid";
const BOB: &str = "15550002222@s.whatsapp.net";

/// Stores a reaction from `sender` in `chat` to `target`, sent `ago` seconds ago.
async fn react(pool: &PgPool, chat: &str, sender: &str, id: &str, target: &str, emoji: &str, ago: i32) {
    sqlx::query(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text, quoted_id, sent_at)
         VALUES ('s1', $1, $2, $3, 'reaction', $4, $5, now() - make_interval(secs => $6))",
    )
    .bind(chat)
    .bind(sender)
    .bind(id)
    .bind(emoji)
    .bind(target)
    .bind(ago)
    .execute(pool)
    .await
    .unwrap();
}

/// Who reacted to our message `id` (wa.outbound), and with what.
async fn on_sent(pool: &PgPool, id: &str) -> Value {
    let r: Value =
        sqlx::query_scalar("SELECT reactions FROM wa.outbound WHERE message_id = $1").bind(id).fetch_one(pool).await.unwrap();
    emojis(r)
}

fn emojis(r: Value) -> Value {
    Value::Object(r.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["emoji"].clone())).collect())
}

#[tokio::test]
async fn reactions_land_on_the_message_they_react_to_in_its_chat_only() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('s1')").execute(pool).await.unwrap();
    let sent: String = sqlx::query_scalar("SELECT message_id FROM wa.send_text('s1', $1, 'your booking')")
        .bind(ANA)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text) VALUES ('s1', $1, $1, 'IN000001', 'text', 'hi')",
    )
    .bind(ANA)
    .execute(pool)
    .await
    .unwrap();

    react(pool, ANA, ANA, "R0000001", &sent, "👍", 10).await;
    assert_eq!(on_sent(pool, &sent).await, json!({ANA: "👍"}));
    let entry: Value = sqlx::query_scalar("SELECT reactions->$2 FROM wa.outbound WHERE message_id = $1")
        .bind(&sent)
        .bind(ANA)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(entry["id"], "R0000001", "the reaction's own id is kept: {entry}");
    // A later reaction replaces it; a redelivered older one does not.
    react(pool, ANA, ANA, "R0000002", &sent, "❤️", 5).await;
    react(pool, ANA, ANA, "R0000003", &sent, "😀", 20).await;
    assert_eq!(on_sent(pool, &sent).await, json!({ANA: "❤️"}));
    // The same message id named from another chat: not this message.
    react(pool, BOB, BOB, "R0000004", &sent, "😡", 1).await;
    assert_eq!(on_sent(pool, &sent).await, json!({ANA: "❤️"}));
    // Ana's chat under her LID, once the session knows it, is her chat.
    sqlx::query("INSERT INTO wa.contacts (session_id, phone, jid, lid) VALUES ('s1', '15550001111', $1, $2)")
        .bind(ANA)
        .bind(ANA_LID)
        .execute(pool)
        .await
        .unwrap();
    react(pool, ANA_LID, ANA_LID, "R0000005", &sent, "🎉", 1).await;
    assert_eq!(on_sent(pool, &sent).await, json!({ANA: "❤️", ANA_LID: "🎉"}));
    // An empty emoji takes a reaction back.
    react(pool, ANA, ANA, "R0000006", &sent, "", 0).await;
    assert_eq!(on_sent(pool, &sent).await, json!({ANA_LID: "🎉"}));

    // On a message received: the inbox row's reactions.
    react(pool, ANA, ANA, "R0000007", "IN000001", "🙏", 0).await;
    let r: Value =
        sqlx::query_scalar("SELECT reactions FROM wa.inbox WHERE message_id = 'IN000001'").fetch_one(pool).await.unwrap();
    assert_eq!(emojis(r), json!({ANA: "🙏"}));
    // Every reaction keeps its own row too, as before.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.inbox WHERE kind = 'reaction'").fetch_one(pool).await.unwrap();
    assert_eq!(rows, 7);
}
