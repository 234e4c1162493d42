//! End to end: real `pgwa run` worker processes (whatsapp-rust backend, keys in
//! Postgres) against the loopback WhatsApp Web server running in this test process.
//! Everything an app does goes through SQL (`wa.add_session`, `wa.send_text`, the
//! tables and views) and LISTEN; the test plays the phones through the loopback admin
//! endpoint. See docs/loopback.md.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::loopback::{Notifications, Worker, session, start_server, wait_status};
use pgwa_testkit::TestDb;
use serde_json::Value;
use sqlx::PgPool;

const A_PHONE: &str = "15550001111";
const B_PHONE: &str = "15550002222";

/// Linking waits out whatsapp-rust's 10 s key-share grace after pairing, and the debug
/// build on two cores is slow: generous, but bounded.
const LINK: Duration = Duration::from_secs(120);

fn session_is(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |p| p["session"] == id
}

/// Links `id` by QR: waits for the worker to publish the code in wa.sessions (and the
/// wa_link NOTIFY), scans it on phone `phone`, waits for connected.
async fn link_by_qr(pool: &PgPool, server: &pgwa_loopback::Server, notes: &Notifications, id: &str, phone: &str) {
    sqlx::query("SELECT wa.add_session($1)").bind(id).execute(pool).await.unwrap();
    let qr = common::eventually(LINK, "the worker to publish a QR code", || async {
        let row = session(pool, id).await;
        row.qr_code.filter(|_| row.status == "awaiting_qr")
    })
    .await;
    assert!(qr.split(',').count() >= 4, "a WhatsApp QR string is ref,noise key,identity key,adv secret: {qr:?}");
    let note = notes
        .wait(Duration::from_secs(5), "wa_link", "the QR NOTIFY on wa_link", |p| p["session"] == id && p["kind"] == "qr")
        .await;
    assert!(note["expires_at"].is_string(), "the wa_link payload carries the expiry: {note}");
    assert!(!note.to_string().contains(&qr), "the code itself never travels in a NOTIFY payload");

    let (status, body) = server.admin_post(&format!("/admin/scan?phone={phone}"), &qr).await;
    assert_eq!(status, 200, "the phone could not scan the QR: {body}");
    let linked: Value = serde_json::from_str(&body).unwrap();
    let row = wait_status(pool, id, "connected", LINK).await;
    assert_eq!(row.phone.as_deref(), Some(phone));
    assert_eq!(row.jid.as_deref(), linked["jid"].as_str(), "the stored JID is the linked device's");
    assert!(row.jid.as_deref().unwrap().starts_with(&format!("{phone}:")), "a companion device JID: {:?}", row.jid);
    assert_eq!(row.lid.as_deref(), linked["lid"].as_str(), "the LID is stored");
    assert!(row.qr_code.is_none(), "the QR code is cleared once linked");
}

/// Links `id` by pairing code: the worker publishes the code, the phone types it.
async fn link_by_pair_code(pool: &PgPool, server: &pgwa_loopback::Server, notes: &Notifications, id: &str, phone: &str) {
    sqlx::query("SELECT wa.add_session($1, pair_phone => $2)").bind(id).bind(format!("+{phone}")).execute(pool).await.unwrap();
    let code = common::eventually(LINK, "the worker to publish a pairing code", || async {
        let row = session(pool, id).await;
        row.pair_code.filter(|_| row.status == "awaiting_pair_code")
    })
    .await;
    assert_eq!(code.len(), 8, "a pairing code has 8 characters: {code:?}");
    notes
        .wait(Duration::from_secs(5), "wa_link", "the pair code NOTIFY", |p| p["session"] == id && p["kind"] == "pair_code")
        .await;
    assert_eq!(session(pool, id).await.qr_count, 0, "linking by code shows no QR");

    let (status, body) = server.admin_post(&format!("/admin/pair-code?phone={phone}"), &code).await;
    assert_eq!(status, 200, "the phone could not enter the code: {body}");
    let row = wait_status(pool, id, "connected", LINK).await;
    assert_eq!(row.phone.as_deref(), Some(phone));
    assert!(row.jid.as_deref().unwrap_or_default().starts_with(&format!("{phone}:")), "a companion device JID: {:?}", row.jid);
    assert!(row.lid.is_some(), "the LID is stored");
    assert!(row.pair_code.is_none(), "the pairing code is cleared once linked");
}

/// Sends `text` from `from` to `to_phone` with wa.send_text and checks the whole path:
/// B's inbox row and its NOTIFY, A's outbound row sent then delivered, and the
/// wa_outbound NOTIFYs. Returns the message id.
async fn send_and_check(
    pool: &PgPool,
    notes: &Notifications,
    from: &str,
    from_phone: &str,
    to: &str,
    to_phone: &str,
    text: &str,
) -> String {
    let (job_id, message_id): (i64, String) = sqlx::query_as("SELECT job_id, message_id FROM wa.send_text($1, $2, $3)")
        .bind(from)
        .bind(to_phone)
        .bind(text)
        .fetch_one(pool)
        .await
        .unwrap();

    let (inbox_id, chat, sender, kind, got): (i64, String, String, String, Option<String>) =
        common::eventually(Duration::from_secs(60), "the message in the recipient's wa.inbox", || async {
            sqlx::query_as("SELECT id, chat, sender, kind, text FROM wa.inbox WHERE session_id = $1 AND message_id = $2")
                .bind(to)
                .bind(&message_id)
                .fetch_optional(pool)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(got.as_deref(), Some(text));
    assert_eq!(kind, "text");
    assert_eq!(chat, format!("{from_phone}@s.whatsapp.net"), "a 1:1 chat is the sender's number");
    assert!(sender.starts_with(&format!("{from_phone}:")) || sender.starts_with(&format!("{from_phone}@")), "sender {sender}");
    let note = notes
        .wait(Duration::from_secs(5), "wa_inbox", "the wa_inbox NOTIFY", |p| p["session"] == to && p["id"] == inbox_id)
        .await;
    assert_eq!(note["kind"], "text");
    assert!(!note.to_string().contains(text), "message text never travels in a NOTIFY payload");

    // Sent on the server ack, delivered on the recipient's receipt.
    let (state, sent_at): (String, Option<chrono::DateTime<chrono::Utc>>) =
        common::eventually(Duration::from_secs(30), "the send job to complete", || async {
            let r: (String, Option<chrono::DateTime<chrono::Utc>>) =
                sqlx::query_as("SELECT job_state::text, sent_at FROM wa.outbound WHERE job_id = $1")
                    .bind(job_id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            (r.0 == "completed").then_some(r)
        })
        .await;
    assert_eq!(state, "completed");
    assert!(sent_at.is_some(), "sent_at is set by the server ack");
    let delivered_at: chrono::DateTime<chrono::Utc> =
        common::eventually(Duration::from_secs(30), "the outbound row to become delivered", || async {
            let r: (String, Option<chrono::DateTime<chrono::Utc>>) =
                sqlx::query_as("SELECT status::text, delivered_at FROM wa.outbound WHERE job_id = $1")
                    .bind(job_id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            (r.0 == "delivered").then_some(r.1).flatten()
        })
        .await;
    assert!(delivered_at >= sent_at.unwrap() - chrono::Duration::seconds(2), "delivered after sent");
    // The sender's copy for retry receipts is written behind the send (the client's cache
    // of recent sends answers retries meanwhile), but it is written.
    common::eventually(Duration::from_secs(10), "the sent copy in the sender's wa.sent_messages", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.sent_messages WHERE session_id = $1 AND message_id = $2")
            .bind(from)
            .bind(&message_id)
            .fetch_one(pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    // The app hears of both changes: "sent" from the completion (on the server ack) and
    // "delivered" from the receipt. Not necessarily in that order: the completion's
    // NOTIFY is a statement of its own after the outcome commits, so the receipt's can
    // come first; and the receipt can even overtake the completion write (outcomes are
    // batched), then the row goes queued -> delivered and the completion announces
    // "delivered" too (sent_at is filled all the same). Apps read the row when told.
    let ours =
        |p: &Value| p["session"] == from && p["message_ids"].as_array().is_some_and(|ids| ids.iter().any(|i| i == &message_id));
    let statuses = || -> Vec<String> {
        notes.on("wa_outbound").iter().filter(|p| ours(p)).map(|p| p["status"].as_str().unwrap_or_default().to_owned()).collect()
    };
    common::eventually(Duration::from_secs(5), "two wa_outbound NOTIFYs for the message", || {
        let n = statuses().len();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    let mut seen = statuses();
    seen.sort();
    assert!(
        seen == ["delivered", "sent"] || seen == ["delivered", "delivered"],
        "wa_outbound NOTIFYs for {message_id}: {:?}",
        statuses()
    );
    message_id
}

/// a. QR link, b. pair-code link, c. A -> B and B -> A through `wa.send_text`,
/// d. a worker restart: both sessions come back by login (no QR, no code) and still
/// exchange messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_by_qr_and_pair_code_send_and_survive_a_worker_restart() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let notes = Notifications::listen(&db.url, &["wa_link", "wa_inbox", "wa_outbound", "wa_session_status"]).await;
    let worker = Worker::spawn(&db, &server);

    // a. QR, scanned by A's phone.
    link_by_qr(pool, &server, &notes, "alice", A_PHONE).await;
    notes
        .wait(Duration::from_secs(5), "wa_session_status", "connected NOTIFY", |p| {
            p["session"] == "alice" && p["status"] == "connected"
        })
        .await;
    // b. Pairing code, typed on B's phone.
    link_by_pair_code(pool, &server, &notes, "bob", B_PHONE).await;
    assert!(notes.on("wa_link").iter().filter(|p| session_is("bob")(p)).all(|p| p["kind"] == "pair_code"));

    // c. Messages both ways, then a reply quoting A's message and a reaction to it.
    let first = send_and_check(pool, &notes, "alice", A_PHONE, "bob", B_PHONE, "hello from A").await;
    send_and_check(pool, &notes, "bob", B_PHONE, "alice", A_PHONE, "hello back from B").await;
    let (_, reply): (i64, String) =
        sqlx::query_as("SELECT job_id, message_id FROM wa.send_text('bob', $1, 'a reply', reply_to => $2)")
            .bind(A_PHONE)
            .bind(&first)
            .fetch_one(pool)
            .await
            .unwrap();
    let (_, reaction): (i64, String) = sqlx::query_as("SELECT job_id, message_id FROM wa.send_reaction('bob', $1, $2, '👍')")
        .bind(A_PHONE)
        .bind(&first)
        .fetch_one(pool)
        .await
        .unwrap();
    for (id, kind, text) in [(&reply, "text", "a reply"), (&reaction, "reaction", "👍")] {
        let got: (String, Option<String>, Option<String>) =
            common::eventually(Duration::from_secs(60), &format!("the {kind} in A's inbox"), || async {
                sqlx::query_as("SELECT kind, text, quoted_id FROM wa.inbox WHERE session_id = 'alice' AND message_id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .unwrap()
            })
            .await;
        assert_eq!((got.0.as_str(), got.1.as_deref(), got.2.as_deref()), (kind, Some(text), Some(first.as_str())), "the {kind}");
    }
    // The reaction is also on A's message, keyed by who reacted.
    let reactions: serde_json::Value =
        sqlx::query_scalar("SELECT reactions FROM wa.outbound WHERE session = 'alice' AND message_id = $1")
            .bind(&first)
            .fetch_one(pool)
            .await
            .unwrap();
    let (who, what) = reactions.as_object().and_then(|r| r.iter().next()).expect("one reaction on A's message");
    assert!(who.starts_with(B_PHONE) || who.ends_with("@lid"), "{reactions}");
    assert_eq!((what["emoji"].as_str(), what["id"].as_str()), (Some("👍"), Some(reaction.as_str())), "{reactions}");

    // d. Restart: SIGTERM releases the leases; the next worker logs both in from the keys
    // in Postgres, with IK handshakes and no new QR or pairing code.
    let stats = &server.shared.stats;
    let (xx, ik, qr_before) =
        (stats.xx_handshakes.load(Relaxed), stats.ik_handshakes.load(Relaxed), session(pool, "alice").await.qr_count);
    let epochs = (session(pool, "alice").await.epoch, session(pool, "bob").await.epoch);
    worker.terminate().await;
    let _worker = Worker::spawn(&db, &server);
    for id in ["alice", "bob"] {
        let row = common::eventually(LINK, "the session to come back connected after the restart", || async {
            let row = session(pool, id).await;
            assert!(row.qr_code.is_none() && row.pair_code.is_none(), "{id} was asked to link again: {row:?}");
            (row.status == "connected" && row.epoch > if id == "alice" { epochs.0 } else { epochs.1 }).then_some(row)
        })
        .await;
        assert!(row.jid.is_some());
    }
    assert_eq!(session(pool, "alice").await.qr_count, qr_before, "no QR after the restart");
    assert_eq!(stats.xx_handshakes.load(Relaxed), xx, "no registration handshake after the restart");
    assert!(stats.ik_handshakes.load(Relaxed) >= ik + 2, "both sessions logged in again with IK");
    send_and_check(pool, &notes, "alice", A_PHONE, "bob", B_PHONE, "still there after the restart").await;
    for id in ["alice", "bob"] {
        // E.g. a linked pair-code session must not ask for a new code at login.
        assert_eq!(session(pool, id).await.last_error, None, "{id} recorded an error");
    }
}

/// Forced off by the server: a dropped socket reconnects by itself, a 429 too but after a
/// backoff; a stream conflict (another client took the number) parks the session as
/// `conflict` and it never reconnects; a 401 (device removed) parks it as `logged_out`
/// with its keys wiped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicks_drop_and_429_reconnect_conflict_stays_down_401_logs_out() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let notes = Notifications::listen(&db.url, &["wa_link", "wa_session_status"]).await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, &notes, "carol", "15550003333").await;
    link_by_qr(pool, &server, &notes, "dave", "15550004444").await;
    let stats = &server.shared.stats;

    let carol = session(pool, "carol").await.jid.unwrap();

    // A dropped socket (no stream error) is not terminal: whatsapp-rust reconnects, the
    // status goes reconnecting -> connected, by login (no QR).
    let logins = stats.logins.load(Relaxed);
    let (status, body) = server.admin_post(&format!("/admin/kick?jid={carol}&reason=close"), "").await;
    assert_eq!(status, 204, "kick failed: {body}");
    notes
        .wait(Duration::from_secs(30), "wa_session_status", "carol reconnecting", |p| {
            p["session"] == "carol" && p["status"] == "reconnecting"
        })
        .await;
    notes
        .wait(Duration::from_secs(60), "wa_session_status", "carol connected again", |p| {
            p["session"] == "carol" && p["status"] == "connected" && p["previous"] == "reconnecting"
        })
        .await;
    assert_eq!(stats.logins.load(Relaxed), logins + 1, "one login brought it back");
    assert!(session(pool, "carol").await.qr_code.is_none());

    // 429 (rate limited): whatsapp-rust reconnects by itself after an extended backoff,
    // not at once, and with one login, not a storm.
    let logins = stats.logins.load(Relaxed);
    let kicked = std::time::Instant::now();
    let (status, body) = server.admin_post(&format!("/admin/kick?jid={carol}&reason=429"), "").await;
    assert_eq!(status, 204, "kick failed: {body}");
    wait_status(pool, "carol", "reconnecting", Duration::from_secs(30)).await;
    wait_status(pool, "carol", "connected", Duration::from_secs(90)).await;
    let waited = kicked.elapsed();
    assert!(waited >= Duration::from_secs(3), "reconnected {waited:?} after a 429: no backoff");
    assert_eq!(stats.logins.load(Relaxed), logins + 1, "one login after the backoff");

    let logins = stats.logins.load(Relaxed);
    let (status, body) = server.admin_post(&format!("/admin/kick?jid={carol}&reason=replaced"), "").await;
    assert_eq!(status, 204, "kick failed: {body}");
    let row = wait_status(pool, "carol", "conflict", Duration::from_secs(30)).await;
    assert!(row.status_reason.unwrap_or_default().contains("another client"));
    common::eventually(Duration::from_secs(10), "the worker to release carol", || async {
        let owner: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT owner_id FROM wa.sessions WHERE id = 'carol'").fetch_one(pool).await.unwrap();
        owner.is_none().then_some(())
    })
    .await;
    // No reconnect loop: for several seconds no login reaches the server and the status
    // stays put (dave's connection is untouched).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(stats.logins.load(Relaxed), logins, "a replaced session must not log in again");
    assert_eq!(session(pool, "carol").await.status, "conflict");
    assert_eq!(session(pool, "dave").await.status, "connected");

    let dave = session(pool, "dave").await.jid.unwrap();
    let (status, body) = server.admin_post(&format!("/admin/kick?jid={dave}&reason=401"), "").await;
    assert_eq!(status, 204, "kick failed: {body}");
    wait_status(pool, "dave", "logged_out", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stats.logins.load(Relaxed), logins, "a logged-out session must not log in again");
    assert_eq!(stats.refused_logins.load(Relaxed), 0, "nor even try");
    assert_eq!(session(pool, "dave").await.status, "logged_out");
    // The removed device's identity is dead: its keys are wiped, so the next start links
    // anew. A replaced session keeps its keys (its device is still linked).
    common::eventually(Duration::from_secs(10), "dave's keys to be wiped", || async {
        (auth_docs(pool, "dave").await == 0).then_some(())
    })
    .await;
    assert_eq!(auth_docs(pool, "carol").await, 1, "conflict keeps the keys");
}

async fn auth_docs(pool: &PgPool, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM wa.auth_state WHERE session_id = $1").bind(id).fetch_one(pool).await.unwrap()
}

/// The other end is a person on a plain whatsapp-rust client: A's outbound row goes
/// sent -> delivered -> read when the person reads it (pgwa itself never sends read
/// receipts), the person's reply lands in A's wa.inbox, and a message the server nacks
/// ends dead with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_reads_and_replies_and_a_nacked_send_dies() {
    use whatsapp_rust::types::events::Event;

    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let notes = Notifications::listen(&db.url, &["wa_link", "wa_inbox", "wa_outbound"]).await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, &notes, "erin", "15550005555").await;
    let mut person = common::loopback::Person::link(&server, "Frank", "15550006666").await;

    let (job_id, message_id): (i64, String) =
        sqlx::query_as("SELECT job_id, message_id FROM wa.send_text('erin', '+1 555 000 6666', 'your table is ready')")
            .fetch_one(pool)
            .await
            .unwrap();
    let text = person
        .wait_for("the person to receive the message", 60, |e| match e {
            Event::Messages(batch) => {
                batch.iter().find_map(|m| (m.info.id == message_id).then(|| m.message.conversation.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(text.as_deref(), Some("your table is ready"));
    let status_of = |job_id: i64| async move {
        sqlx::query_as::<_, (String, Option<chrono::DateTime<chrono::Utc>>, Option<chrono::DateTime<chrono::Utc>>)>(
            "SELECT status::text, delivered_at, read_at FROM wa.outbound WHERE job_id = $1",
        )
        .bind(job_id)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    common::eventually(Duration::from_secs(30), "delivered", || async {
        (status_of(job_id).await.0 == "delivered").then_some(())
    })
    .await;

    let erin: whatsapp_rust::Jid = "15550005555@s.whatsapp.net".parse().unwrap();
    person.client().mark_as_read(&erin, None, &[message_id.as_str()]).await.expect("the person marks it read");
    let (_, delivered_at, read_at) =
        common::eventually(Duration::from_secs(30), "read", || async { Some(status_of(job_id).await).filter(|r| r.0 == "read") })
            .await;
    assert!(delivered_at.is_some() && read_at.is_some() && read_at >= delivered_at, "{delivered_at:?} {read_at:?}");
    notes
        .wait(Duration::from_secs(5), "wa_outbound", "the wa_outbound NOTIFY for read", |p| {
            p["session"] == "erin"
                && p["status"] == "read"
                && p["message_ids"].as_array().is_some_and(|ids| ids.iter().any(|i| i == &message_id))
        })
        .await;

    // The reply, from a client pgwa did not build, through pgwa's inbound path.
    let reply = person.client().send_text(erin, "thanks, on my way").await.expect("the person replies").message_id;
    let (sender, got): (String, Option<String>) =
        common::eventually(Duration::from_secs(30), "the reply in wa.inbox", || async {
            sqlx::query_as("SELECT sender, text FROM wa.inbox WHERE session_id = 'erin' AND message_id = $1")
                .bind(&reply)
                .fetch_optional(pool)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(got.as_deref(), Some("thanks, on my way"));
    assert!(sender.starts_with("15550006666"), "sender {sender}");

    // A nack: the server refuses one message (a send still returns Ok in whatsapp-rust;
    // pgwa waits for the ack event). The job is dead with the code, the row failed,
    // and nothing reaches the person. Scheduled a moment ahead so the refusal is armed
    // before the worker sends it.
    let (job_id, message_id): (i64, String) = sqlx::query_as(
        "SELECT job_id, message_id FROM wa.send_text('erin', '15550006666', 'refused', run_at => now() + interval '2 seconds')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let (status, body) = server.admin_post(&format!("/admin/nack?id={message_id}&code=479"), "").await;
    assert_eq!(status, 204, "arming the nack failed: {body}");
    let (state, delivery, error): (String, String, Option<String>) =
        common::eventually(Duration::from_secs(30), "the nacked send to end", || async {
            let r: (String, String, Option<String>) =
                sqlx::query_as("SELECT job_state::text, status::text, last_error FROM wa.outbound WHERE job_id = $1")
                    .bind(job_id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            matches!(r.0.as_str(), "dead" | "completed").then_some(r)
        })
        .await;
    assert_eq!((state.as_str(), delivery.as_str()), ("dead", "failed"), "a nack is a permanent refusal");
    assert!(error.as_deref().is_some_and(|e| e.contains("479")), "the nack code is kept: {error:?}");
    let leaked = person
        .try_wait_for("anything with the refused id", 2, |e| match e {
            Event::Messages(batch) => batch.iter().any(|m| m.info.id == message_id).then_some(()),
            _ => None,
        })
        .await;
    assert!(leaked.is_none(), "a refused message must not be relayed");
    person.stop().await;
}

/// After the server logged the device out (401), `wa.start_session` is the documented
/// way back ("re-link needed"): the session offers a new QR rather than log in with the
/// dead identity again, and links as a new device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_session_links_again_after_start_session() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let notes = Notifications::listen(&db.url, &["wa_link"]).await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, &notes, "gina", "15550007777").await;
    let jid = session(pool, "gina").await.jid.unwrap();
    let (status, body) = server.admin_post(&format!("/admin/kick?jid={jid}&reason=401"), "").await;
    assert_eq!(status, 204, "kick failed: {body}");
    let row = wait_status(pool, "gina", "logged_out", Duration::from_secs(30)).await;
    let qr_count = row.qr_count;
    // Released first: a start_session between the status write and the release is
    // overwritten by the release (a race of its own, reported, not tested here).
    common::eventually(Duration::from_secs(10), "the worker to release gina", || async {
        let owner: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT owner_id FROM wa.sessions WHERE id = 'gina'").fetch_one(pool).await.unwrap();
        owner.is_none().then_some(())
    })
    .await;

    sqlx::query("SELECT wa.start_session('gina')").execute(pool).await.unwrap();
    let refused = server.shared.stats.refused_logins.load(Relaxed);
    let qr = common::eventually(LINK, "a new QR code for the logged-out session", || async {
        let row = session(pool, "gina").await;
        assert!(
            server.shared.stats.refused_logins.load(Relaxed) == refused,
            "the dead identity tried to log in again (status {}, {:?})",
            row.status,
            row.status_reason
        );
        row.qr_code.filter(|_| row.qr_count > qr_count)
    })
    .await;
    let (status, body) = server.admin_post("/admin/scan?phone=15550007777", &qr).await;
    assert_eq!(status, 200, "the phone could not scan the new QR: {body}");
    let row = wait_status(pool, "gina", "connected", LINK).await;
    assert_ne!(row.jid.as_deref(), Some(jid.as_str()), "linked again as a new companion device");
}
