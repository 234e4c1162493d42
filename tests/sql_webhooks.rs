//! Webhooks in SQL (sql/08_webhooks.sql, migration 0029): the API refuses bad input by
//! name and writes nothing; each event queues one delivery per matching webhook in the
//! transaction of its change; a webhook's deliveries go one at a time, in order; a
//! tenant reaches only its own webhooks and deliveries, reads no secret, and cannot
//! forge or re-send a delivery; no secret appears in a job or a notification.

mod common;

use std::time::Duration;

use common::roles::Login;
use common::{complete_as_worker, fails};
use pgwa_testkit::TestDb;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

/// Every webhook row and the number of jobs, to check that a refused call wrote nothing.
async fn written(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(E'\\n', (SELECT count(*) FROM wa.jobs)::text,
                (SELECT string_agg(to_jsonb(h)::text, E'\\n' ORDER BY id) FROM wa.webhooks h))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Adds a webhook as the owner; returns its id.
async fn webhook(pool: &PgPool, args: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT id FROM wa.add_webhook({args})")))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("wa.add_webhook({args}): {e}"))
}

/// A message stored in the inbox, as the worker stores it (with a file's download keys,
/// which no webhook body may carry). Returns its row id.
async fn inbound(pool: &PgPool, session: &str, message_id: &str, text: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text, media)
         VALUES ($1, '15550000001@s.whatsapp.net', '15550000001@s.whatsapp.net', $2, 'text', $3,
                 '{\"media_key\": \"S0VZTUFURVJJQUw=\", \"direct_path\": \"/v/t62/x\", \"mimetype\": \"image/jpeg\"}')
         RETURNING id",
    )
    .bind(session)
    .bind(message_id)
    .bind(text)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// (webhook, type, state, waiting) of every delivery, oldest first, as the owner sees them.
async fn deliveries(pool: &PgPool) -> Vec<(i64, String, String, bool)> {
    sqlx::query_as(
        "SELECT (payload->>'webhook')::bigint, payload->>'type', state::text, chat LIKE '%:waiting'
           FROM wa.jobs WHERE kind = 'webhook' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The ids and states of one webhook's deliveries, oldest first.
async fn queue_of(pool: &PgPool, webhook: i64) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT id, state::text FROM wa.jobs WHERE kind = 'webhook' AND (payload->>'webhook')::bigint = $1 ORDER BY id",
    )
    .bind(webhook)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn kill(pool: &PgPool, job: i64) {
    sqlx::query("UPDATE wa.jobs SET state = 'running', attempts = 1, worker_id = gen_random_uuid() WHERE id = $1")
        .bind(job)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE wa.jobs SET state = 'dead', finished_at = now(), errors = '[{\"attempt\": 1, \"error\": \"HTTP 500\"}]'
          WHERE id = $1",
    )
    .bind(job)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_api_refuses_bad_input_by_name_and_writes_nothing() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('s1', start => false), wa.add_session('s2', start => false)").execute(pool).await.unwrap();
    let app = Login::app(&db).await;

    // Added by the app: a secret made for it, shown once, 32 random bytes in
    // Standard Webhooks' form; the events default to all four.
    let (id, secret, events, tenant): (i64, String, Vec<String>, String) = sqlx::query_as(
        "SELECT id, secret, events, tenant FROM wa.add_webhook('https://hooks.example.com/pgwa?k=1', description => 'crm')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let key_len: i32 =
        sqlx::query_scalar("SELECT length(decode(substr($1, 7), 'base64'))").bind(&secret).fetch_one(pool).await.unwrap();
    assert_eq!(key_len, 32);
    assert_eq!(events, ["inbox", "outbound", "session", "codes"]);
    assert_eq!(tenant, "default");
    let stored: String =
        sqlx::query_scalar("SELECT secret FROM wa.webhooks WHERE id = $1").bind(id).fetch_one(pool).await.unwrap();
    assert_eq!(stored, secret, "the secret shown is the one stored");
    // A secret given is kept; events are stored without repeats, in one order.
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (other, kept, events): (i64, String, Vec<String>) = sqlx::query_as(
        "SELECT id, secret, events FROM wa.add_webhook('http://10.0.0.5:8080/in', events => '{outbound,inbox,inbox}',
                                                         session => 's2', secret => $1)",
    )
    .bind(given)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(kept, given);
    assert_eq!(events, ["inbox", "outbound"]);

    let before = written(pool).await;
    let long_url = format!("SELECT wa.add_webhook('https://example.com/{}')", "a".repeat(2100));
    let cases: Vec<(String, &str, &str)> = vec![
        ("SELECT wa.add_webhook(NULL)".into(), "WA015", "url"),
        ("SELECT wa.add_webhook('')".into(), "WA015", "url"),
        ("SELECT wa.add_webhook('ftp://example.com/in')".into(), "WA015", "url"),
        ("SELECT wa.add_webhook('https://user:hunter2@example.com/in')".into(), "WA015", "url"),
        ("SELECT wa.add_webhook('https://example.com/in#top')".into(), "WA015", "url"),
        ("SELECT wa.add_webhook('https:///in')".into(), "WA015", "url"),
        ("SELECT wa.add_webhook('https://exa mple.com/in')".into(), "WA015", "url"),
        (long_url, "WA015", "url"),
        ("SELECT wa.add_webhook('https://example.com/', events => '{}')".into(), "WA015", "events"),
        ("SELECT wa.add_webhook('https://example.com/', events => NULL)".into(), "WA015", "events"),
        ("SELECT wa.add_webhook('https://example.com/', events => '{inbox,explode}')".into(), "WA015", "events"),
        ("SELECT wa.add_webhook('https://example.com/', events => ARRAY['inbox', NULL])".into(), "WA015", "events"),
        ("SELECT wa.add_webhook('https://example.com/', secret => 'whsec_c2hvcnRrZXk=')".into(), "WA015", "secret"),
        ("SELECT wa.add_webhook('https://example.com/', secret => 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')".into(), "WA015", "secret"),
        ("SELECT wa.add_webhook('https://example.com/', secret => 'whsec_' || repeat('QUFB', 30))".into(), "WA015", "secret"),
        (
            "SELECT wa.add_webhook('https://example.com/', secret => 'whsec_!!notbase64!!notbase64!!notbase64')".into(),
            "WA015",
            "secret",
        ),
        ("SELECT wa.add_webhook('https://example.com/', session => 'nope')".into(), "WA001", "session"),
        ("SELECT wa.add_webhook('https://example.com/', description => repeat('d', 501))".into(), "WA015", "description"),
        ("SELECT wa.add_webhook('https://example.com/', tenant => 'nope')".into(), "WA011", "tenant"),
        (format!("SELECT wa.update_webhook({id}, url => 'gopher://example.com/')"), "WA015", "url"),
        (format!("SELECT wa.update_webhook({id}, events => '{{}}')"), "WA015", "events"),
        (format!("SELECT wa.update_webhook({id}, session => 'nope')"), "WA001", "session"),
        (format!("SELECT wa.update_webhook({id}, session => 's1', all_sessions => true)"), "WA015", "session"),
        (format!("SELECT wa.update_webhook({id}, description => repeat('d', 501))"), "WA015", "description"),
        ("SELECT wa.update_webhook(999999, enabled => false)".into(), "WA016", "webhook"),
        ("SELECT wa.remove_webhook(999999)".into(), "WA016", "webhook"),
        ("SELECT wa.rotate_webhook_secret(999999)".into(), "WA016", "webhook"),
        (format!("SELECT wa.rotate_webhook_secret({id}, 'whsec_c2hvcnRrZXk=')"), "WA015", "secret"),
        ("INSERT INTO wa.webhooks (url) VALUES ('ftp://example.com/')".into(), "WA015", "url"),
        (format!("UPDATE wa.webhooks SET enabled = NULL WHERE id = {id}"), "WA015", "enabled"),
    ];
    for (sql, code, arg) in &cases {
        let (got, msg) = fails(&app.pool, sql).await;
        assert_eq!(&got, code, "{sql}: {msg}");
        assert!(msg.starts_with(&format!("{arg}:")), "{sql}: the message names {arg}: {msg}");
        for leak in ["hunter2", "c2hvcnRrZXk", "MfKQ9r8G", "QUFBQUFB", "notbase64"] {
            assert!(!msg.contains(leak), "{sql}: the message quotes a secret: {msg}");
        }
    }
    assert_eq!(written(pool).await, before, "nothing was written");

    // Updates: each argument given replaces its column, the rest stay.
    let (session, enabled, description, shown): (Option<String>, bool, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT session_id, enabled, description, secret FROM wa.update_webhook($1, session => 's1', enabled => false)",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((session.as_deref(), enabled, description.as_deref(), shown), (Some("s1"), false, Some("crm"), None));
    let (session, url, description): (Option<String>, String, Option<String>) = sqlx::query_as(
        "SELECT session_id, url, description FROM wa.update_webhook($1, all_sessions => true, description => '',
                                                                        url => 'https://hooks.example.com/v2')",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((session, url.as_str(), description), (None, "https://hooks.example.com/v2", None));

    // Rotation: a new secret, returned once, stored.
    let rotated: String = sqlx::query_scalar("SELECT wa.rotate_webhook_secret($1)").bind(id).fetch_one(&app.pool).await.unwrap();
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    let stored: String =
        sqlx::query_scalar("SELECT secret FROM wa.webhooks WHERE id = $1").bind(id).fetch_one(pool).await.unwrap();
    assert_eq!(stored, rotated);

    // Removal: the row goes, its undelivered deliveries are cancelled.
    sqlx::query("UPDATE wa.webhooks SET enabled = true WHERE id = $1").bind(id).execute(pool).await.unwrap();
    inbound(pool, "s1", "AAAA0001", "one").await;
    inbound(pool, "s1", "AAAA0002", "two").await;
    let n: i32 = sqlx::query_scalar("SELECT wa.remove_webhook($1)").bind(id).fetch_one(&app.pool).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(queue_of(pool, id).await.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), ["cancelled", "cancelled"]);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.webhooks").fetch_one(pool).await.unwrap();
    assert_eq!(left, 1, "only webhook {other} is left");
    app.drop(&db).await;
}

#[tokio::test]
async fn an_event_makes_one_delivery_per_matching_webhook() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let acme = common::roles::cluster_name(&db, "acme");
    sqlx::query("SELECT wa.add_tenant($1)").bind(&acme).execute(pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1', start => false), wa.add_session('s2', start => false)").execute(pool).await.unwrap();
    sqlx::query("INSERT INTO wa.sessions (id, tenant, desired) VALUES ('a1', $1, 'stopped')")
        .bind(&acme)
        .execute(pool)
        .await
        .unwrap();
    let all = webhook(pool, "'https://all.example.com/'").await;
    let only_s2 = webhook(pool, "'https://s2.example.com/', events => '{inbox}', session => 's2'").await;
    let off = webhook(pool, "'https://off.example.com/'").await;
    sqlx::query("SELECT wa.update_webhook($1, enabled => false)").bind(off).execute(pool).await.unwrap();
    let status_only = webhook(pool, "'https://status.example.com/', events => '{session}'").await;
    let acmes = webhook(pool, &format!("'https://acme.example.com/', tenant => '{acme}'")).await;

    let row = inbound(pool, "s1", "AAAA0001", "hello").await;
    assert_eq!(deliveries(pool).await, [(all, "inbox.received".to_string(), "available".to_string(), false)]);
    let payload: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM wa.jobs WHERE kind = 'webhook'").fetch_one(pool).await.unwrap();
    assert_eq!(payload["webhook"], all);
    assert_eq!(payload["type"], "inbox.received");
    assert!(payload["event_id"].as_str().unwrap().starts_with("msg_"), "{payload}");
    assert!(payload["timestamp"].as_str().unwrap().ends_with('Z'), "{payload}");
    let data = &payload["data"];
    assert_eq!((data["id"].as_i64(), data["session"].as_str()), (Some(row), Some("s1")));
    assert_eq!((data["message_id"].as_str(), data["text"].as_str()), (Some("AAAA0001"), Some("hello")), "the message itself");
    assert_eq!(data["media"], serde_json::json!({"mimetype": "image/jpeg"}), "no download keys in a webhook body");

    // s2: the tenant-wide webhook and the one filtered on s2, with one event id.
    sqlx::query("DELETE FROM wa.jobs WHERE kind = 'webhook'").execute(pool).await.unwrap();
    inbound(pool, "s2", "AAAA0002", "hi").await;
    let got = deliveries(pool).await;
    assert_eq!(got.iter().map(|d| d.0).collect::<Vec<_>>(), [all, only_s2]);
    let ids: Vec<String> = sqlx::query_scalar("SELECT DISTINCT payload->>'event_id' FROM wa.jobs WHERE kind = 'webhook'")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(ids.len(), 1, "one event, one id at every webhook");

    // Another tenant's session: its own webhook only.
    sqlx::query("DELETE FROM wa.jobs WHERE kind = 'webhook'").execute(pool).await.unwrap();
    inbound(pool, "a1", "AAAA0003", "for acme").await;
    assert_eq!(deliveries(pool).await.iter().map(|d| d.0).collect::<Vec<_>>(), [acmes]);

    // An edit of a stored message: inbox.changed with the new text.
    sqlx::query("DELETE FROM wa.jobs WHERE kind = 'webhook'").execute(pool).await.unwrap();
    sqlx::query(
        "UPDATE wa.inbox SET history = history || '[{\"kind\": \"edit\", \"id\": \"BBBB0001\"}]', text = 'hello again',
                edited_at = now() WHERE id = $1",
    )
    .bind(row)
    .execute(pool)
    .await
    .unwrap();
    let (kind, data): (String, serde_json::Value) =
        sqlx::query_as("SELECT payload->>'type', payload->'data' FROM wa.jobs WHERE kind = 'webhook'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), data["change"].as_str(), data["text"].as_str()),
        ("inbox.changed", Some("edit"), Some("hello again"))
    );

    // A send's delivery status: outbound.status, once per change.
    sqlx::query("DELETE FROM wa.jobs WHERE kind = 'webhook'").execute(pool).await.unwrap();
    let send: i64 =
        sqlx::query_scalar("SELECT job_id FROM wa.send_text('s1', '+15550000002', 'yo')").fetch_one(pool).await.unwrap();
    sqlx::query("UPDATE wa.jobs SET state = 'running', attempts = 1, worker_id = gen_random_uuid() WHERE id = $1")
        .bind(send)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE wa.jobs SET state = 'completed', finished_at = now(), delivery = 'sent', sent_at = now() WHERE id = $1")
        .bind(send)
        .execute(pool)
        .await
        .unwrap();
    let (kind, data): (String, serde_json::Value) =
        sqlx::query_as("SELECT payload->>'type', payload->'data' FROM wa.jobs WHERE kind = 'webhook'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(kind, "outbound.status");
    assert_eq!(
        (data["job"].as_i64(), data["status"].as_str(), data["previous"].as_str(), data["chat"].as_str()),
        (Some(send), Some("sent"), Some("queued"), Some("15550000002@s.whatsapp.net"))
    );

    // A status change and a QR code in one UPDATE: session.status first, then
    // session.qr, to the webhooks that take each.
    sqlx::query("DELETE FROM wa.jobs WHERE kind = 'webhook'").execute(pool).await.unwrap();
    sqlx::query(
        "UPDATE wa.sessions SET status = 'awaiting_qr', qr_code = '2@qr-one', qr_expires_at = now() + interval '20 seconds',
                qr_count = 1 WHERE id = 's1'",
    )
    .execute(pool)
    .await
    .unwrap();
    let got: Vec<(i64, String)> =
        sqlx::query_as("SELECT (payload->>'webhook')::bigint, payload->>'type' FROM wa.jobs WHERE kind = 'webhook' ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        got,
        [(all, "session.status".to_string()), (status_only, "session.status".to_string()), (all, "session.qr".to_string())]
    );
    let qr: String = sqlx::query_scalar("SELECT payload->'data'->>'qr' FROM wa.jobs WHERE payload->>'type' = 'session.qr'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(qr, "2@qr-one");

    // Nothing went to the disabled webhook, ever.
    assert!(queue_of(pool, off).await.is_empty());

    common::roles::drop_tenant(&db, &acme).await;
}

#[tokio::test]
async fn deliveries_of_one_webhook_go_one_at_a_time_in_order() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(pool).await.unwrap();
    let w = webhook(pool, "'https://in.example.com/', events => '{inbox}'").await;
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        inbound(pool, "s1", &format!("AAAA000{i}"), text).await;
    }
    let q = queue_of(pool, w).await;
    let ids: Vec<i64> = q.iter().map(|(id, _)| *id).collect();
    assert_eq!(q.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), ["available", "scheduled", "scheduled"]);
    // The claim and the promotion by time see the first only.
    let claimable: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE session_id IS NULL AND phase = 1").fetch_one(pool).await.unwrap();
    assert_eq!(claimable, 1);
    let due: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE phase = 0 AND run_at <= now() + interval '1 year'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(due, 0, "waiting deliveries are never due");

    // The first completes: the second goes, and the workers are woken.
    let mut wake = PgListener::connect_with(pool).await.unwrap();
    wake.listen("wa_jobs").await.unwrap();
    complete_as_worker(pool, ids[0], serde_json::json!({"status": 200})).await;
    assert_eq!(
        queue_of(pool, w).await.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["completed", "available", "scheduled"]
    );
    let n = tokio::time::timeout(Duration::from_secs(5), wake.recv()).await.expect("a wake-up").unwrap();
    assert_eq!(n.payload(), r#"{"sessions": [""]}"#);

    // The second dies: the third goes. Retried while the third is in flight, the second
    // waits, and goes right after it, before anything newer.
    kill(pool, ids[1]).await;
    assert_eq!(queue_of(pool, w).await.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), ["completed", "dead", "available"]);
    inbound(pool, "s1", "AAAA0009", "four").await;
    let state: String = sqlx::query_scalar("SELECT wa.retry_job($1)::text").bind(ids[1]).fetch_one(pool).await.unwrap();
    assert_eq!(state, "scheduled", "a retried delivery waits behind the one in flight");
    complete_as_worker(pool, ids[2], serde_json::json!({"status": 200})).await;
    assert_eq!(
        queue_of(pool, w).await.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["completed", "available", "completed", "scheduled"]
    );
    // A retry of a waiting delivery does not let it jump the queue.
    let fourth = queue_of(pool, w).await[3].0;
    let state: String = sqlx::query_scalar("SELECT wa.retry_job($1)::text").bind(fourth).fetch_one(pool).await.unwrap();
    assert_eq!(state, "scheduled");
    // Cancelling the one in flight lets the next go.
    sqlx::query("SELECT wa.cancel_job($1)").bind(ids[1]).execute(pool).await.unwrap();
    assert_eq!(
        queue_of(pool, w).await.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["completed", "cancelled", "completed", "available"]
    );

    // Two transactions crossing (one queues behind a delivery the other finishes without
    // seeing it) leave a delivery waiting with none released: the next event, or the
    // workers' periodic repair, sets it going.
    complete_as_worker(pool, fourth, serde_json::json!({"status": 200})).await;
    inbound(pool, "s1", "AAAA0010", "five").await;
    let fifth = queue_of(pool, w).await[4].0;
    sqlx::query("UPDATE wa.jobs SET state = 'scheduled', run_at = 'infinity', chat = chat || ':waiting' WHERE id = $1")
        .bind(fifth)
        .execute(pool)
        .await
        .unwrap();
    let released: i32 = sqlx::query_scalar("SELECT wa._webhooks_release_stalled()").fetch_one(pool).await.unwrap();
    assert_eq!(released, 1);
    assert_eq!(queue_of(pool, w).await[4].1, "available");
    sqlx::query("UPDATE wa.jobs SET state = 'scheduled', run_at = 'infinity', chat = chat || ':waiting' WHERE id = $1")
        .bind(fifth)
        .execute(pool)
        .await
        .unwrap();
    inbound(pool, "s1", "AAAA0011", "six").await;
    let q = queue_of(pool, w).await;
    assert_eq!((q[4].1.as_str(), q[5].1.as_str()), ("available", "scheduled"), "the stalled one goes first");
}

#[tokio::test]
async fn a_tenant_reaches_only_its_own_webhooks_and_never_a_secret() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let (acme, beta) = (common::roles::cluster_name(&db, "acme"), common::roles::cluster_name(&db, "beta"));
    for t in [&acme, &beta] {
        sqlx::query("SELECT wa.add_tenant($1)").bind(t).execute(pool).await.unwrap();
    }
    let a = Login::new(&db, "wha", Some(&format!("pgwa_t_{acme}"))).await;
    let b = Login::new(&db, "whb", Some(&format!("pgwa_t_{beta}"))).await;
    sqlx::query("SELECT wa.add_session('a1', start => false)").execute(&a.pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('b1', start => false)").execute(&b.pool).await.unwrap();
    let (aw, a_secret): (i64, String) =
        sqlx::query_as("SELECT id, secret FROM wa.add_webhook('https://acme.example.com/')").fetch_one(&a.pool).await.unwrap();
    let (bw, b_secret): (i64, String) =
        sqlx::query_as("SELECT id, secret FROM wa.add_webhook('https://beta.example.com/', session => 'b1')")
            .fetch_one(&b.pool)
            .await
            .unwrap();
    let tenants: Vec<String> = sqlx::query_scalar("SELECT tenant FROM wa.webhooks ORDER BY id").fetch_all(pool).await.unwrap();
    assert_eq!(tenants, [acme.clone(), beta.clone()], "each webhook is its adder's tenant's");
    inbound(pool, "a1", "AAAA0001", "for acme").await;
    inbound(pool, "a1", "AAAA0002", "for acme too").await;
    inbound(pool, "b1", "BBBB0001", "for beta").await;
    let a_first = queue_of(pool, aw).await[0].0;
    let b_first = queue_of(pool, bw).await[0].0;
    complete_as_worker(pool, a_first, serde_json::json!({"status": 200})).await;

    // Reads: acme sees its webhook and deliveries, no stored secret, nothing of beta's.
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM wa.webhooks").fetch_all(&a.pool).await.unwrap();
    assert_eq!(ids, [aw]);
    let seen: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT webhook FROM wa.webhook_deliveries").fetch_all(&a.pool).await.unwrap();
    assert_eq!(seen, [aw]);
    let jobs: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM wa.jobs WHERE kind = 'webhook' ORDER BY id").fetch_all(&a.pool).await.unwrap();
    assert_eq!(jobs.len(), 2, "its own deliveries only: {jobs:?}");
    for sql in ["SELECT secret FROM wa.webhooks", "SELECT * FROM wa.webhooks", "SELECT to_jsonb(h) FROM wa.webhooks h"] {
        let (code, _) = fails(&a.pool, sql).await;
        assert_eq!(code, "42501", "{sql}: no role but the owner reads a stored secret");
    }

    // Writes: acme cannot reach beta's webhook or session, forge a delivery, or re-send one.
    let before: String = sqlx::query_scalar(
        "SELECT concat_ws(E'\\n', (SELECT to_jsonb(h)::text FROM wa.webhooks h WHERE id = $1),
                (SELECT string_agg(to_jsonb(j)::text, E'\\n' ORDER BY id) FROM wa.jobs j WHERE kind = 'webhook'))",
    )
    .bind(bw)
    .fetch_one(pool)
    .await
    .unwrap();
    for (sql, code) in [
        (format!("SELECT wa.update_webhook({bw}, url => 'https://evil.example.com/')"), "WA016"),
        (format!("SELECT wa.rotate_webhook_secret({bw})"), "WA016"),
        (format!("SELECT wa.remove_webhook({bw})"), "WA016"),
        ("SELECT wa.add_webhook('https://evil.example.com/', session => 'b1')".to_string(), "WA001"),
        (format!("SELECT wa.add_webhook('https://evil.example.com/', tenant => '{beta}')"), "WA011"),
        (format!("INSERT INTO wa.webhooks (url, tenant) VALUES ('https://evil.example.com/', '{beta}')"), "42501"),
        (format!("SELECT wa.retry_job({b_first})"), "WA007"),
        (format!("SELECT wa.cancel_job({b_first})"), "WA007"),
        (
            format!(
                "INSERT INTO wa.jobs (kind, payload) VALUES ('webhook', \
                 '{{\"webhook\": {bw}, \"event_id\": \"msg_forged\", \"type\": \"inbox.received\", \"data\": {{}}}}')"
            ),
            "42501",
        ),
        (
            format!(
                "INSERT INTO wa.jobs (kind, payload) VALUES ('webhook', \
                 '{{\"webhook\": {aw}, \"event_id\": \"msg_forged\", \"type\": \"inbox.received\", \"data\": {{}}}}')"
            ),
            "42501",
        ),
        ("INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('a1', 'webhook', '{}')".to_string(), "WA005"),
        (format!("SELECT wa.enqueue(NULL, 'webhook', '{{\"webhook\": {aw}}}')"), "WA004"),
        // Its own completed delivery cannot be sent again, nor pointed elsewhere.
        (format!("UPDATE wa.jobs SET state = 'available' WHERE id = {a_first}"), "WA008"),
        (format!("SELECT wa.retry_job({a_first})"), "WA008"),
        (format!("UPDATE wa.jobs SET payload = '{{\"webhook\": {bw}}}' WHERE id = {a_first}"), "42501"),
        (format!("UPDATE wa.jobs SET chat = 'webhook:{bw}' WHERE id = {a_first}"), "42501"),
        ("SELECT wa._webhook_emit('x', 'b1', 'inbox', 'inbox.received', '{}')".to_string(), "42501"),
        (format!("SELECT wa._webhook_release({bw})"), "42501"),
    ] {
        let (got, msg) = fails(&a.pool, &sql).await;
        assert_eq!(got, code, "{sql}: {msg}");
    }
    for sql in [
        format!("UPDATE wa.webhooks SET url = 'https://evil.example.com/' WHERE id = {bw}"),
        format!("DELETE FROM wa.webhooks WHERE id = {bw}"),
        format!("UPDATE wa.jobs SET state = 'cancelled' WHERE id = {b_first}"),
    ] {
        let n = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&a.pool).await.unwrap().rows_affected();
        assert_eq!(n, 0, "{sql}");
    }
    let after: String = sqlx::query_scalar(
        "SELECT concat_ws(E'\\n', (SELECT to_jsonb(h)::text FROM wa.webhooks h WHERE id = $1),
                (SELECT string_agg(to_jsonb(j)::text, E'\\n' ORDER BY id) FROM wa.jobs j WHERE kind = 'webhook'))",
    )
    .bind(bw)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(after, before, "acme changed nothing");

    // Its own dead delivery it may retry (wa.retry_job, as for any job it owns).
    let a_second = queue_of(pool, aw).await[1].0;
    kill(pool, a_second).await;
    let state: String = sqlx::query_scalar("SELECT wa.retry_job($1)::text").bind(a_second).fetch_one(&a.pool).await.unwrap();
    assert_eq!(state, "available");

    // No secret in any job row.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM wa.jobs j WHERE strpos(j::text, substr($1, 7)) > 0 OR strpos(j::text, substr($2, 7)) > 0",
    )
    .bind(&a_secret)
    .bind(&b_secret)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);

    for l in [a, b] {
        l.drop(&db).await;
    }
    for t in [&acme, &beta] {
        common::roles::drop_tenant(&db, t).await;
    }
}

#[tokio::test]
async fn no_secret_in_notifications_and_removal_follows_the_session() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    sqlx::query("SELECT wa.add_session('s1', start => false), wa.add_session('s2', start => false)").execute(pool).await.unwrap();
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener
        .listen_all(["wa_jobs", "wa_inbox", "wa_session_status", "wa_link", "wa_job_cancel", "wa_outbound", "wa_sessions"])
        .await
        .unwrap();
    let (w, secret): (i64, String) =
        sqlx::query_as("SELECT id, secret FROM wa.add_webhook('https://in.example.com/', session => 's1')")
            .fetch_one(pool)
            .await
            .unwrap();
    inbound(pool, "s1", "AAAA0001", "one").await;
    inbound(pool, "s1", "AAAA0002", "two").await;
    sqlx::query("UPDATE wa.sessions SET status = 'awaiting_qr', qr_code = '2@qr', qr_expires_at = now() + interval '1 minute' WHERE id = 's1'")
        .execute(pool)
        .await
        .unwrap();
    let first = queue_of(pool, w).await[0].0;
    complete_as_worker(pool, first, serde_json::json!({"status": 200})).await;
    let rotated: String = sqlx::query_scalar("SELECT wa.rotate_webhook_secret($1)").bind(w).fetch_one(pool).await.unwrap();

    // The session cannot move to another tenant while the webhook filters on it.
    let other = common::roles::cluster_name(&db, "t");
    sqlx::query("SELECT wa.add_tenant($1)").bind(&other).execute(pool).await.unwrap();
    let (code, msg) = fails(pool, &format!("UPDATE wa.sessions SET tenant = '{other}' WHERE id = 's1'")).await;
    assert_eq!(code, "WA015", "{msg}");
    assert!(msg.starts_with("tenant:"), "{msg}");

    // Removing the session removes the webhook that filters on it, and cancels what it
    // had not delivered.
    sqlx::query("SELECT wa.remove_session('s1')").execute(pool).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.webhooks").fetch_one(pool).await.unwrap();
    assert_eq!(left, 0);
    let states: Vec<String> = queue_of(pool, w).await.into_iter().map(|(_, s)| s).collect();
    assert!(states[0] == "completed" && states[1..].iter().all(|s| s == "cancelled"), "{states:?}");

    let mut heard = Vec::new();
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(500), listener.try_recv()).await.map(|r| r.unwrap()) {
        heard.push(n.payload().to_owned());
    }
    assert!(!heard.is_empty(), "the changes were announced");
    for s in [&secret, &rotated] {
        let key = &s["whsec_".len()..];
        assert!(heard.iter().all(|p| !p.contains(key)), "a notification carried a secret: {heard:?}");
        let in_jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs j WHERE strpos(j::text, $1) > 0")
            .bind(key)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(in_jobs, 0, "a job row carried a secret");
    }
    common::roles::drop_tenant(&db, &other).await;
}
