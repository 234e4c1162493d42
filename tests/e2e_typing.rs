//! End to end, "type before sending" (`pacing.typing_ms_per_char`): a pgwa session's send
//! to a person shows "typing..." for a time that grows with the text, then "paused", and
//! only then the message arrives. The person is a plain whatsapp-rust client linked to
//! the loopback server, which relays chat states as WhatsApp's server does.

mod common;

use std::time::{Duration, Instant};

use common::loopback::{Person, Worker, link_by_qr, start_server};
use pgwa_testkit::TestDb;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::presence::ChatPresence;

const A_PHONE: &str = "15550008181";
const PERSON: &str = "15550008282";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_types_for_a_while_before_the_message_arrives() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let typing = [
        ("PGWA_PACING__ENABLED", "true".to_string()),
        ("PGWA_PACING__SESSION_PER_MINUTE", "6000".to_string()),
        ("PGWA_PACING__RECIPIENT_PER_MINUTE", "6000".to_string()),
        ("PGWA_PACING__TYPING_MS_PER_CHAR", "100".to_string()),
        ("PGWA_PACING__TYPING_MAX_MS", "1500".to_string()),
    ];
    let _worker = Worker::spawn_with(&db, &server, &typing);
    link_by_qr(pool, &server, "alice", A_PHONE).await;
    let mut person = Person::link(&server, "Frank", PERSON).await;
    let alice = format!("{A_PHONE}@s.whatsapp.net");

    // 30 characters at 100 ms each would be 3 s: the cap makes it 1.5 s.
    let text = "your table is ready, welcome!!";
    let (_, message_id): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_text('alice', $1, $2)").bind(PERSON).bind(text).fetch_one(pool).await.unwrap();

    let state_from_alice = |want: ChatPresence| {
        let alice = alice.clone();
        move |e: &Event| match e {
            Event::ChatPresence(p)
                if p.source.sender.to_string() == alice && std::mem::discriminant(&p.state) == std::mem::discriminant(&want) =>
            {
                Some(Instant::now())
            }
            _ => None,
        }
    };
    let composing = person.wait_for("alice typing", 60, state_from_alice(ChatPresence::Composing)).await;
    let paused = person.wait_for("alice pausing", 10, state_from_alice(ChatPresence::Paused)).await;
    let arrived = person
        .wait_for("the message after the typing", 30, |e| match e {
            Event::Messages(batch) => batch.iter().any(|m| m.info.id == message_id).then(Instant::now),
            _ => None,
        })
        .await;
    let typed = paused - composing;
    assert!(
        typed >= Duration::from_millis(1400) && typed < Duration::from_millis(2900),
        "typing lasts the text's time, capped at 1.5 s: {typed:?}"
    );
    assert!(arrived >= paused, "the message comes after the typing ends");
    person.stop().await;
}
