//! The operator console's HTTP side against a worker on the simulated WhatsApp side:
//! only the admin token in the header opens it, its answers hold no secret, each action
//! does what the SQL API does with the same errors (SQLSTATE and status), and the event
//! stream names sessions as they change. The page in a real browser is
//! tests/console_page.rs.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{InProcess, dead_send, fast_config};
use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use sqlx::PgPool;

const ADMIN: &str = "s3cret-admin";
const TENANT: &str = "t3nant-token";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(addr: SocketAddr) -> Self {
        Self { base: format!("http://{addr}"), http: reqwest::Client::new() }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let mut r = self.http.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b.to_owned());
        }
        let r = r.send().await.expect("the worker answers");
        let status = r.status().as_u16();
        assert_eq!(r.headers().get("cache-control").map(|v| v.to_str().unwrap()), Some("no-store"), "{path}");
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, Some(ADMIN), None).await
    }

    async fn post(&self, path: &str, body: Option<&str>) -> (u16, Value) {
        self.call("POST", path, Some(ADMIN), body).await
    }
}

async fn job_state(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = $1").bind(id).fetch_one(pool).await.unwrap()
}

async fn start(db: &TestDb, admin: Option<&str>) -> InProcess {
    let mut cfg = fast_config(db);
    cfg.http.admin_token = admin.map(str::to_owned);
    cfg.http.tenant_tokens.insert("acme".into(), TENANT.into());
    InProcess::start(cfg).await
}

/// Only `Authorization: Bearer <admin token>` opens the API: not a tenant's token (its
/// reach is one tenant, the console's is all), not a token in the URL, not a wrong one;
/// and a refused action changes nothing. Without an admin token the console is off.
#[tokio::test]
async fn only_the_admin_token_in_the_header_opens_the_console() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(pool).await.unwrap();
    let dead = dead_send(pool, "s1", "timeout").await;

    let w = start(&db, None).await;
    let api = Api::new(w.http.unwrap());
    let (code, body) = api.call("GET", "/console/api/overview", Some(TENANT), None).await;
    assert_eq!(code, 404, "off without http.admin_token, whatever tenant tokens exist: {body}");
    assert!(body["error"].as_str().unwrap().contains("http.admin_token"), "{body}");
    w.stop().await;

    let w = start(&db, Some(ADMIN)).await;
    let api = Api::new(w.http.unwrap());
    let right = Some(ADMIN);
    for (method, path) in [
        ("GET", "/console/api/overview"),
        ("GET", "/console/api/jobs?state=dead"),
        ("POST", &*format!("/console/api/jobs/{dead}/retry")),
        ("POST", "/console/api/jobs/retry"),
        ("POST", "/console/api/sessions/s1/start"),
        ("GET", "/console/api/events"),
    ] {
        let body = (method == "POST").then_some("{}");
        for (token, status, why) in [
            (None, 401, "no token"),
            (Some("wrong"), 401, "a wrong token"),
            (Some(&ADMIN[..ADMIN.len() - 1]), 401, "the token's prefix"),
            (Some(TENANT), 403, "a tenant's token"),
        ] {
            let (code, answer) = api.call(method, path, token, body).await;
            assert_eq!(code, status, "{method} {path} with {why}: {answer}");
            assert!(answer["error"].as_str().unwrap().contains("admin_token"), "the refusal says what is needed: {answer}");
        }
        let in_url = if path.contains('?') { format!("{path}&token={ADMIN}") } else { format!("{path}?token={ADMIN}") };
        let (code, answer) = api.call(method, &in_url, right, body).await;
        assert_eq!(code, 401, "{method} {in_url}: a token in the URL is refused even beside the right header: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("URL"), "{answer}");
    }
    assert_eq!(job_state(pool, dead).await, "dead", "no refused call retried the job");
    let desired: String =
        sqlx::query_scalar("SELECT desired::text FROM wa.sessions WHERE id = 's1'").fetch_one(pool).await.unwrap();
    assert_eq!(desired, "stopped", "no refused call started the session");

    // The page itself is a shell anyone may load: no data in it, nothing may frame it,
    // and only its own script runs.
    let r = reqwest::get(format!("{}/console", api.base)).await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let html = r.text().await.unwrap();
    assert!(html.contains("/console/console.js") && !html.contains("s1"), "a shell without data");
    for asset in ["console.js", "console.css"] {
        let r = reqwest::get(format!("{}/console/{asset}", api.base)).await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    assert_eq!(reqwest::get(format!("{}/console/nope.js", api.base)).await.unwrap().status(), 404);
    w.stop().await;
}

/// The overview shows sessions with their health, owner and lease, the queue and the
/// workers, and never the QR code's text (the page asks the QR endpoint for the image).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_sessions_queue_and_workers_without_secrets() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('salon-1'), wa.add_session('salon-2', start => false)").execute(pool).await.unwrap();
    let w = start(&db, Some(ADMIN)).await;
    let api = Api::new(w.http.unwrap());
    common::wait_connected(pool, 1).await;
    dead_send(pool, "salon-2", "recipient is not on WhatsApp").await;
    let secret_qr = "2@do-not-show-this-code,abc,def";
    sqlx::query("UPDATE wa.sessions SET qr_code = $1, qr_expires_at = now() + interval '1 minute' WHERE id = 'salon-2'")
        .bind(secret_qr)
        .execute(pool)
        .await
        .unwrap();

    let (code, o) = api.get("/console/api/overview").await;
    assert_eq!(code, 200, "{o}");
    assert!(!o.to_string().contains("do-not-show-this-code"), "the QR code's text is not in the overview");
    let sessions = o["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let s1 = &sessions[0];
    assert_eq!(
        (s1["session"].as_str(), s1["status"].as_str(), s1["healthy"].as_bool()),
        (Some("salon-1"), Some("connected"), Some(true))
    );
    assert_eq!(s1["worker_id"], json!(w.id.to_string()), "owned by the worker that answers");
    assert!(s1["worker_host"].is_string() && s1["lease_expires_at"].is_string(), "{s1}");
    assert_eq!((s1["bad_mac_count"].as_i64(), s1["bad_mac_limit"].as_i64()), (Some(0), Some(3)));
    let s2 = &sessions[1];
    assert_eq!(
        (s2["session"].as_str(), s2["has_qr"].as_bool(), s2["held"].as_bool()),
        (Some("salon-2"), Some(true), Some(false))
    );
    assert!(s2["lease_expires_at"].is_null(), "no lease shown for a session nobody holds");
    assert_eq!(o["by_status"]["connected"], 1);
    let dead_row = o["queue"].as_array().unwrap().iter().find(|q| q["session"] == "salon-2").expect("salon-2's queue row");
    assert_eq!((dead_row["kind"].as_str(), dead_row["dead"].as_i64()), (Some("send"), Some(1)));
    let workers = o["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!((workers[0]["id"].as_str(), workers[0]["sessions"].as_i64()), (Some(&*w.id.to_string()), Some(1)));
    assert!(workers[0]["heartbeat_age_secs"].as_f64().unwrap() < 5.0);
    assert!(o["kinds"].as_array().unwrap().contains(&json!("send")));

    // The search narrows the sessions shown; the counts stay whole.
    let (_, o) = api.get("/console/api/overview?q=ON-2").await;
    let ids: Vec<&str> = o["sessions"].as_array().unwrap().iter().map(|s| s["session"].as_str().unwrap()).collect();
    assert_eq!(ids, ["salon-2"]);
    assert_eq!(o["by_status"]["connected"], 1);
    let (_, o) = api.get("/console/api/overview?limit=1").await;
    assert_eq!(o["sessions"].as_array().unwrap().len(), 1);
    w.stop().await;
}

/// Retry and cancel, one job or many by a filter, and the session actions: each as the
/// SQL API does it, its errors with their SQLSTATE and a status, nothing moved by a
/// refused call.
#[tokio::test]
async fn actions_follow_the_sql_api_and_its_errors() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('s1', start => false), wa.add_session('s2', start => false)").execute(pool).await.unwrap();
    let w = start(&db, Some(ADMIN)).await;
    let api = Api::new(w.http.unwrap());
    let a = dead_send(pool, "s1", "no server ack within 30 s (timeout)").await;
    let b = dead_send(pool, "s1", "recipient is not on WhatsApp").await;
    let c = dead_send(pool, "s2", "Timeout waiting for the socket").await;

    // Lists by filter, with bad filters named.
    let (code, j) = api.get("/console/api/jobs?state=dead&error=TIMEOUT").await;
    assert_eq!(code, 200, "{j}");
    let ids: Vec<i64> = j["jobs"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [c, a], "newest first, the error matched without case");
    let (_, j) = api.get("/console/api/jobs?state=dead&session=s1&kind=send").await;
    assert_eq!(j["jobs"].as_array().unwrap().len(), 2);
    for (path, field) in [("/console/api/jobs?state=gone", "state:"), ("/console/api/jobs?kind=explode", "kind:")] {
        let (code, e) = api.get(path).await;
        assert_eq!(code, 400, "{path}: {e}");
        assert!(e["error"].as_str().unwrap().starts_with(field), "{path}: {e}");
    }

    // One job.
    let (code, r) = api.post(&format!("/console/api/jobs/{a}/retry"), None).await;
    assert_eq!((code, r["state"].as_str()), (200, Some("available")), "{r}");
    assert_eq!(job_state(pool, a).await, "available");
    let (code, r) = api.post(&format!("/console/api/jobs/{a}/cancel"), None).await;
    assert_eq!((code, r["state"].as_str()), (200, Some("cancelled")), "{r}");
    let (code, r) = api.post(&format!("/console/api/jobs/{a}/cancel"), None).await;
    assert_eq!((code, r["state"].as_str()), (200, Some("cancelled")), "cancelling twice is no error: {r}");
    sqlx::query("UPDATE wa.jobs SET state = 'completed', finished_at = now(), delivery = 'sent' WHERE id = $1")
        .bind(b)
        .execute(pool)
        .await
        .unwrap();
    let (code, e) = api.post(&format!("/console/api/jobs/{b}/retry"), None).await;
    assert_eq!((code, e["sqlstate"].as_str()), (409, Some("WA008")), "a completed send is never sent twice: {e}");
    let (code, e) = api.post("/console/api/jobs/987654321/retry", None).await;
    assert_eq!((code, e["sqlstate"].as_str()), (404, Some("WA007")), "{e}");
    let (code, e) = api.post("/console/api/jobs/12abc/retry", None).await;
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().starts_with("job:"), "{e}");
    let (code, _) = api.post(&format!("/console/api/jobs/{c}/explode"), None).await;
    assert_eq!(code, 404);

    // Many by a filter: a misspelt field is refused, not read as "no filter".
    let (code, e) = api.post("/console/api/jobs/retry", Some(r#"{"sesion": "s1"}"#)).await;
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("sesion"), "names the field: {e}");
    assert_eq!(job_state(pool, c).await, "dead", "nothing moved");
    let (code, e) = api.post("/console/api/jobs/cancel", Some("{}")).await;
    assert_eq!((code, e["sqlstate"].as_str()), (400, Some("WA005")), "a bare cancel would cancel the whole queue: {e}");
    let (code, e) = api.post("/console/api/jobs/retry", Some(r#"{"state": "completed"}"#)).await;
    assert_eq!((code, e["sqlstate"].as_str()), (400, Some("WA005")), "{e}");
    let (code, e) = api.post("/console/api/jobs/retry", Some(r#"{"max_jobs": 0}"#)).await;
    assert_eq!((code, e["sqlstate"].as_str()), (400, Some("WA005")), "{e}");
    let (code, e) = api.post("/console/api/jobs/retry", Some("not json")).await;
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap().starts_with("body:"), "{e}");
    let (code, r) = api.post("/console/api/jobs/retry", Some(r#"{"session": "s2", "error_contains": "timeout"}"#)).await;
    assert_eq!((code, r["jobs"].as_i64()), (200, Some(1)), "{r}");
    assert_eq!(job_state(pool, c).await, "available");
    let (code, r) = api.post("/console/api/jobs/cancel", Some(r#"{"session": "s2", "state": "available"}"#)).await;
    assert_eq!((code, r["jobs"].as_i64()), (200, Some(1)), "{r}");
    assert_eq!(job_state(pool, c).await, "cancelled");

    // Sessions.
    let (code, e) = api.post("/console/api/sessions/nope/start", None).await;
    assert_eq!((code, e["sqlstate"].as_str()), (404, Some("WA001")), "{e}");
    assert!(e["error"].as_str().unwrap().starts_with("session:"), "{e}");
    let (code, _) = api.post("/console/api/sessions/s1/explode", None).await;
    assert_eq!(code, 404);
    let (code, r) = api.post("/console/api/sessions/s1/reconnect", None).await;
    assert_eq!(code, 200, "{r}");
    let kind: String = sqlx::query_scalar("SELECT kind::text FROM wa.jobs WHERE id = $1")
        .bind(r["job"].as_i64().expect("the reconnect job's id"))
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(kind, "reconnect");
    let (code, r) = api.post("/console/api/sessions/s1/close", None).await;
    assert_eq!(code, 200, "{r}");
    let reason: String = sqlx::query_scalar("SELECT payload->>'reason' FROM wa.jobs WHERE id = $1")
        .bind(r["job"].as_i64().unwrap())
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(reason, "closed from the console");
    for (action, desired) in [("start", "running"), ("stop", "stopped")] {
        let (code, r) = api.post(&format!("/console/api/sessions/s2/{action}"), None).await;
        assert_eq!(code, 200, "{action}: {r}");
        let now: String =
            sqlx::query_scalar("SELECT desired::text FROM wa.sessions WHERE id = 's2'").fetch_one(pool).await.unwrap();
        assert_eq!(now, desired, "{action}");
    }
    w.stop().await;
}

/// The event stream names each session whose state changes, as its NOTIFY arrives.
#[tokio::test]
async fn the_event_stream_names_sessions_as_they_change() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(pool).await.unwrap();
    let w = start(&db, Some(ADMIN)).await;
    let base = format!("http://{}", w.http.unwrap());
    let mut r = reqwest::Client::new().get(format!("{base}/console/api/events")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    // The worker's LISTEN is up once a NOTIFY it sends itself comes back; until then
    // a start may go unseen, so start it and stop it until one is named.
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            sqlx::query("SELECT wa.start_session('s1')").execute(pool).await.unwrap();
            if let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_millis(500), r.chunk()).await.map(Result::unwrap) {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen.contains("event: session\ndata: s1\n") {
                    return;
                }
            }
            sqlx::query("SELECT wa.stop_session('s1')").execute(pool).await.unwrap();
        }
    })
    .await;
    assert!(found.is_ok(), "no event named s1: {seen:?}");
    w.stop().await;
}
