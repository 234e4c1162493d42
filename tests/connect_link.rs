//! `wa.connect_link` and the connect page's HTTP side, against a worker on the simulated
//! WhatsApp side: who may make a link, what a link grants, each error with its status,
//! the rate limits, and the headers that keep the token where it belongs. The page in a
//! real browser, linking for real, is tests/connect_page.rs.

mod common;

use std::time::Duration;

use common::roles::Login;
use common::{InProcess, eventually, fails, fast_config};
use pgwa_testkit::TestDb;
use pgwa_worker::http::connect::token;
use serde_json::Value;
use sqlx::PgPool;

async fn link(pool: &PgPool, session: &str) -> String {
    sqlx::query_scalar("SELECT wa.connect_link($1)").bind(session).fetch_one(pool).await.expect("wa.connect_link")
}

/// The link's path on `base` (the worker's real address, where public_url says 8080).
fn on(base: &str, link: &str) -> String {
    let path = &link[link.find("/connect/").expect("a connect link")..];
    format!("{base}{path}")
}

async fn key(pool: &PgPool) -> Vec<u8> {
    sqlx::query_scalar("SELECT value FROM wa.secrets WHERE name = 'connect_link'").fetch_one(pool).await.unwrap()
}

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = reqwest::get(url).await.expect("GET");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

async fn state(url: &str) -> (u16, Value) {
    let (status, _, body) = get(&format!("{url}/state")).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")))
}

async fn post(url: &str, body: &str) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body = r.text().await.unwrap();
    (status, retry, serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}")))
}

/// Who may make a link, and for how long: bad input named by SQLSTATE, another
/// tenant's session as unknown, the key out of every app's reach.
#[tokio::test]
async fn links_are_made_for_visible_sessions_only_and_the_key_stays_with_the_owner() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('salon-1', start => false)").execute(pool).await.unwrap();
    let (code, msg) = fails(pool, "SELECT wa.connect_link('salon-1')").await;
    assert_eq!(code, "WA014", "{msg}");
    assert!(msg.starts_with("public_url:"), "{msg}");
    sqlx::query("UPDATE wa.policy SET public_url = 'https://wa.example.com/'").execute(pool).await.unwrap();
    for (sql, state, arg) in [
        ("SELECT wa.connect_link('salon-1', interval '30 seconds')", "WA005", "ttl:"),
        ("SELECT wa.connect_link('salon-1', interval '8 days')", "WA005", "ttl:"),
        ("SELECT wa.connect_link('salon-1', NULL)", "WA005", "ttl:"),
        ("SELECT wa.connect_link('nope')", "WA001", "session:"),
        ("UPDATE wa.policy SET public_url = 'javascript:alert(1)'", "23514", ""),
    ] {
        let (code, msg) = fails(pool, sql).await;
        assert_eq!(code, state, "{sql}: {msg}");
        assert!(msg.starts_with(arg), "{sql}: {msg}");
    }

    let made = link(pool, "salon-1").await;
    let tok = made.strip_prefix("https://wa.example.com/connect/").expect("public_url, once slash, then the token");
    // Rust reads what SQL signed, and signs the same bytes.
    let grant = token::verify(&key(pool).await, tok, chrono::Utc::now().timestamp()).expect("a valid token");
    assert_eq!(grant.session, "salon-1");
    let ttl = grant.expires - chrono::Utc::now().timestamp();
    assert!((14 * 60..=15 * 60).contains(&ttl), "15 minutes by default: {ttl} s");
    assert_eq!(token::sign(&key(pool).await, "salon-1", grant.expires), tok);

    // Tenants: acme's login links acme's session; beta's is unknown to it.
    let [t_acme, t_beta] = common::roles::two_tenants(&db).await;
    let acme = Login::new(&db, "acme", Some(&format!("pgwa_t_{t_acme}"))).await;
    assert!(link(&acme.pool, "acme-1").await.contains("/connect/"));
    for other in ["beta-1", "salon-1"] {
        let (code, msg) = fails(&acme.pool, &format!("SELECT wa.connect_link('{other}')")).await;
        assert_eq!(code, "WA001", "acme must not link {other}: {msg}");
    }
    // An app reads neither the key nor signs with it; nobody calls anything.
    let app = Login::app(&db).await;
    assert!(link(&app.pool, "salon-1").await.contains("/connect/"));
    for sql in [
        "SELECT value FROM wa.secrets",
        "SELECT wa._hmac_sha256('k', 'm')",
        "SELECT wa.rotate_connect_key()",
        "UPDATE wa.policy SET public_url = 'https://evil.example'",
    ] {
        assert_eq!(common::roles::refused(&app.pool, sql).await, "42501", "the app role: {sql}");
        assert_eq!(common::roles::refused(&acme.pool, sql).await, "42501", "a tenant: {sql}");
    }
    let nobody = Login::nobody(&db).await;
    assert_eq!(common::roles::refused(&nobody.pool, "SELECT wa.connect_link('salon-1')").await, "42501");
    for l in [acme, app, nobody] {
        l.drop(&db).await;
    }
    for t in [&t_acme, &t_beta] {
        common::roles::drop_tenant(&db, t).await;
    }

    // The HMAC is RFC 2104's (RFC 4231 test case 2).
    let mac: String = sqlx::query_scalar("SELECT encode(wa._hmac_sha256('Jefe', 'what do ya want for nothing?'), 'hex')")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/// Each state of a session reaches the page with the marketplace's error and HTTP
/// status; the token grants its own session only and stops at its expiry or at a key
/// rotation; the page's headers keep the token out of referrers, caches and frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_answers_each_state_with_its_status_and_a_token_grants_one_session() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let w = InProcess::start(fast_config(&db)).await;
    let base = format!("http://{}", w.http.expect("http enabled"));
    sqlx::query("UPDATE wa.policy SET public_url = 'http://pgwa.test:8080'").execute(pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('live'), wa.add_session('parked', start => false)").execute(pool).await.unwrap();
    let live = on(&base, &link(pool, "live").await);

    // The page itself: its first state inside, and the headers.
    let (status, headers, html) = get(&live).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<script id=\"initial\" type=\"application/json\">{"), "{html}");
    for (name, want) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(want), "{name}");
    }
    let csp = headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let (status, _, js) = get(&format!("{base}/assets/connect.js")).await;
    assert!(status == 200 && js.contains("EventSource"), "the script is served from the binary");
    // The simulated side connects at once: the page says so, with the number.
    let connected = eventually(Duration::from_secs(10), "the page to show connected", || async {
        let (status, s) = state(&live).await;
        (s["state"] == "connected").then_some((status, s))
    })
    .await;
    assert_eq!(connected.0, 200);
    // A bad number is refused whatever the state, connected too.
    let (status, _, s) = post(&format!("{live}/pair"), r#"{"phone": "12ab"}"#).await;
    assert_eq!((status, s["error"].as_str()), (400, Some("INVALID_PHONE")), "{s}");

    // Stopped before it was ever linked: the codes ran out (410), and the page may ask
    // for a new round, which starts the session.
    let parked = on(&base, &link(pool, "parked").await);
    let (status, s) = state(&parked).await;
    assert_eq!((status, s["error"].as_str()), (410, Some("QR_EXPIRED")), "{s}");
    let (status, _, s) = post(&format!("{parked}/restart"), "").await;
    assert_eq!((status, s["state"].as_str()), (200, Some("waiting")), "{s}");
    let desired: String =
        sqlx::query_scalar("SELECT desired::text FROM wa.sessions WHERE id = 'parked'").fetch_one(pool).await.unwrap();
    assert_eq!(desired, "running");

    // A bad number for a pairing code: 400, nothing written.
    let (status, _, s) = post(&format!("{parked}/pair"), r#"{"phone": "12ab"}"#).await;
    assert_eq!((status, s["error"].as_str()), (400, Some("INVALID_PHONE")), "{s}");
    let (status, _, s) = post(&format!("{parked}/pair"), "not json").await;
    assert_eq!(status, 400, "{s}");
    let pair: Option<String> =
        sqlx::query_scalar("SELECT pair_phone FROM wa.sessions WHERE id = 'parked'").fetch_one(pool).await.unwrap();
    assert_eq!(pair, None);

    // Failed, logged out: CONNECTION_FAILED (500), with a retry.
    sqlx::query("SELECT wa.add_session('broken', start => false)").execute(pool).await.unwrap();
    sqlx::query("UPDATE wa.sessions SET status = 'logged_out' WHERE id = 'broken'").execute(pool).await.unwrap();
    let broken = on(&base, &link(pool, "broken").await);
    let (status, s) = state(&broken).await;
    assert_eq!((status, s["error"].as_str()), (500, Some("CONNECTION_FAILED")), "{s}");

    // Tokens: touched, for another session, expired, or from before a rotation: 401.
    let k = key(pool).await;
    let (_, tok) = live.rsplit_once('/').unwrap();
    let (payload, sig) = tok.split_once('.').unwrap();
    let later = chrono::Utc::now().timestamp() + 600;
    let forged = [
        format!("{base}/connect/{payload}.{}", sig.chars().rev().collect::<String>()),
        format!("{base}/connect/{}.{sig}", token::sign(&k, "parked", later).split_once('.').unwrap().0),
        format!("{base}/connect/{}", token::sign(&k, "live", chrono::Utc::now().timestamp() - 1)),
        format!("{base}/connect/{}", token::sign(b"another key of thirty-two bytes!", "live", later)),
        format!("{base}/connect/garbage"),
    ];
    for url in &forged {
        let (status, s) = state(url).await;
        assert_eq!((status, s["error"].as_str()), (401, Some("INVALID_TOKEN")), "{url}: {s}");
        let (status, _, html) = get(url).await;
        assert_eq!(status, 401, "the page too: {url}");
        assert!(html.contains("INVALID_TOKEN"), "{html}");
        let (status, _, _) = post(&format!("{url}/restart"), "").await;
        assert_eq!(status, 401, "and its actions: {url}");
    }
    sqlx::query("SELECT wa.rotate_connect_key()").execute(pool).await.unwrap();
    assert_eq!(state(&live).await.0, 401, "a rotation voids every link handed out");
    let fresh = on(&base, &link(pool, "live").await);
    assert_eq!(state(&fresh).await.0, 200, "a link made after the rotation works at once");

    // Signed before the rotation: 401. Removed: 404. The database away: 503 (here: the
    // key's table is gone).
    assert_eq!(state(&broken).await.0, 401, "signed before the rotation");
    sqlx::query("SELECT wa.remove_session('broken')").execute(pool).await.unwrap();
    let gone = format!("{base}/connect/{}", token::sign(&key(pool).await, "broken", later));
    let (status, s) = state(&gone).await;
    assert_eq!((status, s["error"].as_str()), (404, Some("SESSION_NOT_FOUND")), "{s}");
    sqlx::query("ALTER TABLE wa.secrets RENAME TO secrets_away").execute(pool).await.unwrap();
    let (status, s) = state(&forged[4]).await;
    sqlx::query("ALTER TABLE wa.secrets_away RENAME TO secrets").execute(pool).await.unwrap();
    assert_eq!((status, s["error"].as_str()), (503, Some("DB_ERROR")), "{s}");
    w.stop().await;
}

/// A script hammering the page from one address, or a customer pressing "get code"
/// again and again: 429 with Retry-After, and the page's own status says how long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_sessions_over_their_rate_wait() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let mut cfg = fast_config(&db);
    cfg.http.connect_requests_per_minute = 8;
    let w = InProcess::start(cfg).await;
    let base = format!("http://{}", w.http.expect("http enabled"));
    sqlx::query("UPDATE wa.policy SET public_url = 'http://pgwa.test'").execute(pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(pool).await.unwrap();
    let url = on(&base, &link(pool, "s1").await);

    // Three restarts pass (the burst), the fourth waits about six minutes (10 an hour).
    for _ in 0..3 {
        assert_eq!(post(&format!("{url}/restart"), "").await.0, 200);
    }
    let (status, retry, s) = post(&format!("{url}/restart"), "").await;
    assert_eq!((status, s["error"].as_str()), (429, Some("RATE_LIMIT")), "{s}");
    let wait: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((300..=360).contains(&wait) && s["retry_after"] == wait, "{wait} s, {s}");

    // Four requests so far from this address; four more pass, the ninth waits.
    for _ in 0..4 {
        assert_ne!(state(&url).await.0, 429);
    }
    let (status, s) = state(&url).await;
    assert_eq!((status, s["error"].as_str()), (429, Some("RATE_LIMIT")), "{s}");
    assert!(s["retry_after"].as_u64().is_some_and(|w| (1..=8).contains(&w)), "{s}");
    w.stop().await;
}

/// A page's Server-Sent Events, one JSON state at a time.
struct Events {
    response: reqwest::Response,
    seen: String,
}

impl Events {
    async fn open(url: &str) -> Self {
        let response = reqwest::get(format!("{url}/events")).await.unwrap();
        assert_eq!(response.headers().get("content-type").unwrap(), "text/event-stream");
        Self { response, seen: String::new() }
    }

    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.seen.find("\n\n") {
                let event: String = self.seen.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).unwrap();
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk()).await.expect("an event within 10 s");
            self.seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("the stream stays open")));
        }
    }

    /// The states up to `last`, which must come within a few.
    async fn until(&mut self, last: &str) -> Vec<Value> {
        let mut states = vec![];
        while states.last() != Some(&Value::from(last)) {
            states.push(self.next().await["state"].clone());
            assert!(states.len() <= 3, "waiting at most, then {last}: {states:?}");
        }
        states
    }
}

/// The page follows its session as Server-Sent Events: the first state at once, the
/// next as soon as the row changes; from any worker, the session's holder or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_each_new_state_from_any_worker() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let workers = [InProcess::start(fast_config(&db)).await, InProcess::start(fast_config(&db)).await];
    sqlx::query("UPDATE wa.policy SET public_url = 'http://pgwa.test'").execute(pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(pool).await.unwrap();
    let made = link(pool, "s1").await;
    let mut pages = Vec::new();
    for w in &workers {
        let mut page = Events::open(&on(&format!("http://{}", w.http.expect("http enabled")), &made)).await;
        assert_eq!(page.next().await["error"], "QR_EXPIRED");
        pages.push(page);
    }
    sqlx::query("SELECT wa.start_session('s1')").execute(pool).await.unwrap();
    for page in &mut pages {
        page.until("connected").await;
    }
    let owner: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT owner_id FROM wa.sessions WHERE id = 's1'").fetch_one(pool).await.unwrap();
    assert_eq!(workers.iter().filter(|w| Some(w.id) == owner).count(), 1, "one worker holds it, both pages follow it");
    for w in workers {
        w.stop().await;
    }
}
