//! Webhook deliveries by real workers to a local receiver that checks every signature:
//! each event arrives, signed, in the order of the changes, after the receiver's first
//! refusals; and a worker killed in the middle of a delivery loses nothing (the one in
//! flight is sent again with the same webhook-id and body, which a receiver drops as a
//! repeat, as Standard Webhooks asks receivers to do).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use common::{InProcess, eventually, fast_config, spawn_worker};
use pgwa_core::fetch_policy::FetchAllow;
use pgwa_testkit::TestDb;
use pgwa_worker::webhook_signature::{key_of, sign};
use serde_json::Value;
use sqlx::PgPool;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    body: Value,
    answered: u16,
}

#[derive(Clone)]
struct Receiver {
    key: Arc<Vec<u8>>,
    got: Arc<Mutex<Vec<Got>>>,
    /// Requests still to refuse with 500.
    refuse: Arc<AtomicUsize>,
    /// How long each answer is held back (ms).
    hold_ms: Arc<AtomicU64>,
    /// Requests being held now.
    holding: Arc<AtomicUsize>,
    /// Answer 410 Gone to everything.
    gone: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    fn delivered(&self) -> Vec<Got> {
        self.got.lock().unwrap().iter().filter(|g| g.answered < 300).cloned().collect()
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let id = header("webhook-id");
    let timestamp: i64 = header("webhook-timestamp").parse().expect("a webhook-timestamp in seconds");
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 300, "a current timestamp");
    assert_eq!(header("webhook-signature"), sign(&r.key, &id, timestamp, &body), "the signature of {id} checks");
    assert_eq!(header("content-type"), "application/json");
    let body: Value = serde_json::from_slice(&body).expect("a JSON body");
    let refuse = r.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let answered = if r.gone.load(Ordering::SeqCst) {
        410
    } else if refuse {
        500
    } else {
        204
    };
    if answered == 204 {
        r.holding.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(r.hold_ms.load(Ordering::SeqCst))).await;
        r.holding.fetch_sub(1, Ordering::SeqCst);
    }
    r.got.lock().unwrap().push(Got { id, body, answered });
    StatusCode::from_u16(answered).unwrap()
}

/// A receiver on a free local port, and the secret it checks signatures with.
async fn receiver(refuse: usize) -> (Receiver, String, String) {
    let key: [u8; 32] = rand010::random();
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
    let r = Receiver {
        key: Arc::new(key_of(&secret).unwrap()),
        got: Arc::default(),
        refuse: Arc::new(AtomicUsize::new(refuse)),
        hold_ms: Arc::default(),
        holding: Arc::default(),
        gone: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook?source=pgwa", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url, secret)
}

async fn add_webhook(pool: &PgPool, url: &str, secret: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM wa.add_webhook($1, secret => $2)")
        .bind(url)
        .bind(secret)
        .fetch_one(pool)
        .await
        .expect("wa.add_webhook")
}

/// A message received by `session`, as its worker would store it.
async fn received(pool: &PgPool, session: &str, n: usize) {
    sqlx::query(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text)
         VALUES ($1, '15550000001@s.whatsapp.net', '15550000001@s.whatsapp.net', $2, 'text', $3)",
    )
    .bind(session)
    .bind(format!("IN{n:04}"))
    .bind(format!("message {n}"))
    .execute(pool)
    .await
    .unwrap();
}

/// The events queued for `webhook`, in the order of the changes: (event id, type).
async fn queued(pool: &PgPool, webhook: i64) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT payload->>'event_id', payload->>'type' FROM wa.jobs
          WHERE kind = 'webhook' AND (payload->>'webhook')::bigint = $1 ORDER BY id",
    )
    .bind(webhook)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn all_completed(pool: &PgPool) -> bool {
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE kind = 'webhook' AND state <> 'completed'")
        .fetch_one(pool)
        .await
        .unwrap();
    open == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_and_in_order_after_the_receivers_refusals() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let (r, url, secret) = receiver(3).await;
    let webhook = add_webhook(pool, &url, &secret).await;
    let mut cfg = fast_config(&db);
    cfg.webhooks.allow = FetchAllow::try_from(vec!["127.0.0.1".to_owned()]).unwrap();
    let w = InProcess::start(cfg).await;

    sqlx::query("SELECT wa.add_session('s1')").execute(pool).await.unwrap();
    common::wait_connected(pool, 1).await;
    let mut sent = Vec::new();
    for n in 0..5 {
        let id: String = sqlx::query_scalar("SELECT message_id FROM wa.send_text('s1', '+15550001111', $1)")
            .bind(format!("reminder {n}"))
            .fetch_one(pool)
            .await
            .unwrap();
        sent.push(id);
        received(pool, "s1", n).await;
    }
    eventually(Duration::from_secs(60), "every delivery to complete", || async {
        let q = queued(pool, webhook).await;
        // Two session changes (starting, connected), five received, five acked sends.
        (q.len() >= 12 && all_completed(pool).await).then_some(())
    })
    .await;

    let events = queued(pool, webhook).await;
    let got = r.delivered();
    let ids: Vec<&str> = got.iter().map(|g| g.id.as_str()).collect();
    let want: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, want, "each event once, in the order of the changes");
    let refused: Vec<Got> = r.got.lock().unwrap().iter().filter(|g| g.answered == 500).cloned().collect();
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|g| g.id == want[0]), "the first event was retried until taken; none overtook it");
    let errors: Value = sqlx::query_scalar("SELECT errors FROM wa.jobs WHERE kind = 'webhook' AND payload->>'event_id' = $1")
        .bind(want[0])
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(errors.to_string().contains("HTTP 500"), "{errors}");
    assert!(!errors.to_string().contains("source=pgwa"), "errors quote the URL without its query: {errors}");

    // The bodies carry the events themselves.
    let types: Vec<&str> = got.iter().map(|g| g.body["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"session.status"), "{types:?}");
    let texts: Vec<&str> =
        got.iter().filter(|g| g.body["type"] == "inbox.received").filter_map(|g| g.body["data"]["text"].as_str()).collect();
    assert_eq!(texts, ["message 0", "message 1", "message 2", "message 3", "message 4"]);
    let outbound: Vec<&str> = got
        .iter()
        .filter(|g| g.body["type"] == "outbound.status" && g.body["data"]["status"] == "sent")
        .filter_map(|g| g.body["data"]["message_id"].as_str())
        .collect();
    assert_eq!(outbound, sent.iter().map(String::as_str).collect::<Vec<_>>(), "each send's ack, in order");
    assert!(got.iter().all(|g| !g.body.to_string().contains(&secret[6..])), "no secret in a body");

    let metrics = common::http_get(w.http.unwrap(), "/metrics").await.1;
    let line = metrics.lines().find(|l| l.starts_with("pgwa_webhook_deliveries_total{result=\"delivered\"}")).unwrap();
    assert!(line.ends_with(&format!(" {}", got.len())), "{line}");
    assert!(metrics.contains("pgwa_webhook_delivery_seconds_count"), "the latency histogram");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_in_the_middle_of_a_delivery_loses_nothing() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let (r, url, secret) = receiver(0).await;
    r.hold_ms.store(150, Ordering::SeqCst);
    let webhook = add_webhook(pool, &url, &secret).await;
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(pool).await.unwrap();
    for n in 0..20 {
        received(pool, "s1", n).await;
    }
    let allow = [("PGWA_WEBHOOKS__ALLOW", r#"["127.0.0.1"]"#.to_owned())];
    let mut first = spawn_worker(&db, &allow);
    eventually(Duration::from_secs(30), "a few deliveries, and one held by the receiver", || async {
        (r.delivered().len() >= 5 && r.holding.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = spawn_worker(&db, &allow);
    eventually(Duration::from_secs(60), "every delivery to complete after the kill", || async {
        all_completed(pool).await.then_some(())
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    let events = queued(pool, webhook).await;
    assert_eq!(events.len(), 20);
    let got = r.delivered();
    let mut first_seen: Vec<&str> = Vec::new();
    let mut bodies: HashMap<&str, &Value> = HashMap::new();
    for g in &got {
        match bodies.get(g.id.as_str()) {
            Some(b) => assert_eq!(*b, &g.body, "a repeat carries the same body under the same webhook-id"),
            None => {
                first_seen.push(&g.id);
                bodies.insert(&g.id, &g.body);
            }
        }
    }
    let want: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(first_seen, want, "every event arrived, in order");
    assert!(got.len() - want.len() <= 1, "only the delivery in flight at the kill came again: {} extra", got.len() - want.len());
}

/// The app chose the URL: a receiver on a local address is refused unless
/// `webhooks.allow` lists it (here: one port of 127.0.0.1, not another), and the
/// refusal fails the delivery for good, saying what to do. A receiver that answers 410
/// Gone has its webhook turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_addresses_are_refused_and_a_gone_receiver_turns_its_webhook_off() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let (listed, listed_url, secret) = receiver(0).await;
    let (unlisted, unlisted_url, _) = receiver(0).await;
    listed.gone.store(true, Ordering::SeqCst);
    let gone = add_webhook(pool, &listed_url, &secret).await;
    let refused = add_webhook(pool, &unlisted_url, &secret).await;
    let port = url::Url::parse(&listed_url).unwrap().port().unwrap();
    let mut cfg = fast_config(&db);
    cfg.webhooks.allow = FetchAllow::try_from(vec![format!("127.0.0.1:{port}")]).unwrap();
    let w = InProcess::start(cfg).await;
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(pool).await.unwrap();
    received(pool, "s1", 1).await;

    let dead = |webhook: i64| async move {
        sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT state::text, last_error FROM wa.webhook_deliveries WHERE webhook = $1",
        )
        .bind(webhook)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let (state, error) = eventually(Duration::from_secs(30), "the unlisted receiver's delivery to die", || async {
        let (state, error) = dead(refused).await;
        (state == "dead").then_some((state, error))
    })
    .await;
    let error = error.unwrap();
    assert_eq!(state, "dead");
    assert!(error.contains("loopback") && error.contains("webhooks.allow"), "says why and what to do: {error}");
    assert!(!error.contains("source=pgwa"), "the URL's query is not quoted: {error}");
    assert!(unlisted.got.lock().unwrap().is_empty(), "no request reached the unlisted receiver");

    let error = eventually(Duration::from_secs(30), "the gone receiver's delivery to die", || async {
        let (state, error) = dead(gone).await;
        (state == "dead").then_some(error.unwrap())
    })
    .await;
    assert!(error.contains("410"), "{error}");
    let enabled: bool =
        sqlx::query_scalar("SELECT enabled FROM wa.webhooks WHERE id = $1").bind(gone).fetch_one(pool).await.unwrap();
    assert!(!enabled, "a receiver that answered 410 Gone gets no more events");
    assert_eq!(listed.got.lock().unwrap().len(), 1, "410 is not retried");
    let metrics = common::http_get(w.http.unwrap(), "/metrics").await.1;
    assert!(metrics.contains("pgwa_webhook_deliveries_total{result=\"refused\"} 1"), "the refusal is counted");
    w.stop().await;
}
