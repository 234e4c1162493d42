//! End to end, polls: a `pgwa run` worker (whatsapp-rust backend) links alice and bob to
//! the loopback WhatsApp Web server, and a person uses a plain whatsapp-rust client.
//! Alice's poll reaches bob's wa.inbox with its question and options; the person votes
//! on another of her polls (encrypted with the poll's secret, as WhatsApp clients vote),
//! changes the vote, and alice's wa.poll_results counts the latest one.

mod common;

use std::time::Duration;

use common::loopback::{Person, Worker, link_by_qr, start_server};
use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::Event;

const A_PHONE: &str = "15550007171";
const B_PHONE: &str = "15550007272";
const P_PHONE: &str = "15550007373";
const WITHIN: Duration = Duration::from_secs(60);

/// Alice's results for `poll`: (option, votes, voters), in the poll's order.
async fn results(pool: &PgPool, poll: &str) -> Vec<(String, i64, Vec<String>)> {
    sqlx::query_as("SELECT option, votes, voters FROM wa.poll_results WHERE session = 'alice' AND poll_id = $1 ORDER BY position")
        .bind(poll)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_reaches_the_other_session_and_votes_are_opened_and_counted() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, "alice", A_PHONE).await;
    link_by_qr(pool, &server, "bob", B_PHONE).await;
    let mut person = Person::link(&server, "Paula", P_PHONE).await;

    // A poll to another pgwa session: its inbox shows the question and options.
    let (_, to_bob): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_poll('alice', $1, 'Which day suits you?', ARRAY['Saturday', 'Sunday'])")
            .bind(B_PHONE)
            .fetch_one(pool)
            .await
            .unwrap();
    let (kind, text, data): (String, Option<String>, Option<Value>) =
        common::eventually(WITHIN, "the poll in bob's inbox", || async {
            sqlx::query_as("SELECT kind, text, data FROM wa.inbox WHERE session_id = 'bob' AND message_id = $1")
                .bind(&to_bob)
                .fetch_optional(pool)
                .await
                .unwrap()
        })
        .await;
    assert_eq!((kind.as_str(), text.as_deref()), ("poll", Some("Which day suits you?")));
    assert_eq!(data, Some(json!({"question": "Which day suits you?", "options": ["Saturday", "Sunday"], "selectable_count": 1})));

    // A poll to the person, who votes as WhatsApp clients do.
    let (_, poll): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_poll('alice', $1, 'Which day suits you?', ARRAY['Saturday', 'Sunday', 'Monday'])")
            .bind(P_PHONE)
            .fetch_one(pool)
            .await
            .unwrap();
    let (secret, chat) = person
        .wait_for("the poll at the person's client", 60, |e| match e {
            Event::Messages(batch) => batch.iter().find(|m| m.info.id == poll).map(|m| {
                let secret = m.message.message_context_info.as_option().and_then(|c| c.message_secret.clone());
                (secret.expect("the poll carries its secret"), m.info.source.chat.clone())
            }),
            _ => None,
        })
        .await;
    assert_eq!(secret.len(), 32);
    let alice: Jid = format!("{A_PHONE}@s.whatsapp.net").parse().unwrap();
    let vote = |options: &'static [&'static str]| {
        let (client, secret, chat, alice, poll) = (person.client(), secret.clone(), chat.clone(), alice.clone(), poll.clone());
        async move {
            let picked: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            client.polls().vote(chat, &poll, &alice, &secret, &picked).await.expect("the person votes");
        }
    };
    vote(&["Sunday"]).await;
    let voter = common::eventually(WITHIN, "the vote counted in alice's results", || async {
        let r = results(pool, &poll).await;
        (r[1].1 == 1).then(|| r[1].2[0].clone())
    })
    .await;
    assert!(voter.starts_with(P_PHONE) || voter.ends_with("@lid"), "{voter}");
    assert_eq!(
        results(pool, &poll).await,
        vec![
            ("Saturday".to_string(), 0, vec![]),
            ("Sunday".to_string(), 1, vec![voter.clone()]),
            ("Monday".to_string(), 0, vec![]),
        ]
    );
    // The vote's row keeps the options picked, never the sealed payload.
    let (data, raw): (Value, Value) =
        sqlx::query_as("SELECT data, raw FROM wa.inbox WHERE session_id = 'alice' AND kind = 'poll_vote' AND quoted_id = $1")
            .bind(&poll)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(data, json!({"options": ["Sunday"]}));
    assert!(!raw.to_string().contains("enc_payload"), "{raw}");

    // A changed vote replaces the earlier one.
    vote(&["Saturday"]).await;
    common::eventually(WITHIN, "the changed vote", || async {
        let r = results(pool, &poll).await;
        (r[0].1 == 1 && r[1].1 == 0).then_some(())
    })
    .await;
    person.stop().await;
}
