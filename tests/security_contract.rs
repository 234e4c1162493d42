//! The app contract under attack, as a hostile database user would try it: the app role
//! (`pgwa_app`) and a login with no grants at all, against a migrated database and, where
//! the attack needs one, a running worker. Each attack must be refused with a SQLSTATE
//! and leave every row as it was. docs/security.md lists them.

mod common;

use std::time::Duration;

use common::roles::{Login, refused, snapshot};
use common::{InProcess, eventually, fast_config};
use pgwa_testkit::TestDb;

async fn state_of(db: &TestDb, job: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap()
}

async fn wait_state(db: &TestDb, job: i64, want: &str) {
    eventually(Duration::from_secs(15), want, || async { (state_of(db, job).await == want).then_some(()) }).await;
}

/// Hole 1: a NOTIFY on the workers' cancel channel used to be trusted. Any login could
/// name job ids (they are sequential) and the worker dropped those jobs when it came to
/// them. A NOTIFY may only wake a worker; the row says whether a job was cancelled.
#[tokio::test]
async fn a_notify_cannot_cancel_a_job() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let worker = InProcess::start(fast_config(&db)).await;
    common::wait_connected(&db.pool, 1).await;
    let nobody = Login::nobody(&db).await;
    // Every id the next sends can get, and the ones of the running send below.
    for id in 1..=40 {
        let payload = format!(r#"{{"job": {id}, "session": "s1"}}"#);
        sqlx::query("SELECT pg_notify('wa_job_cancel', $1)").bind(&payload).execute(&nobody.pool).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut jobs = Vec::new();
    for i in 0..5 {
        let (id,): (i64,) = sqlx::query_as("SELECT job_id FROM wa.send_text('s1', '+15550000001', $1)")
            .bind(format!("hello {i}"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        jobs.push(id);
    }
    for id in &jobs {
        wait_state(&db, *id, "completed").await;
    }
    worker.stop().await;
    nobody.drop(&db).await;
}

/// Hole 4: with one UPDATE the app could put a completed send back to available and the
/// worker sent it a second time. Every other transition the API refuses is refused too.
#[tokio::test]
async fn the_app_cannot_move_a_job_where_the_api_would_not() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let (done,): (i64,) =
        sqlx::query_as("SELECT job_id FROM wa.send_text('s1', '+15550000001', 'once')").fetch_one(&db.pool).await.unwrap();
    let worker = InProcess::start(fast_config(&db)).await;
    wait_state(&db, done, "completed").await;
    worker.stop().await;
    let (queued,): (i64,) =
        sqlx::query_as("SELECT job_id FROM wa.send_text('s1', '+15550000002', 'later', run_at => now() + interval '1 day')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let app = Login::app(&db).await;
    let before = snapshot(&db.pool).await;
    for (sql, code) in [
        (format!("UPDATE wa.jobs SET state = 'available' WHERE id = {done}"), "WA008"),
        (format!("UPDATE wa.jobs SET state = 'scheduled' WHERE id = {done}"), "WA008"),
        (format!("UPDATE wa.jobs SET state = 'running' WHERE id = {queued}"), "WA008"),
        (format!("UPDATE wa.jobs SET state = 'completed' WHERE id = {queued}"), "WA008"),
        (format!("UPDATE wa.jobs SET state = 'dead' WHERE id = {queued}"), "WA008"),
        (format!("UPDATE wa.jobs SET cancel_requested_at = now() WHERE id = {queued}"), "WA008"),
        (format!("UPDATE wa.jobs SET state = 'cancelled' WHERE id = {done}"), "WA008"),
        (format!("UPDATE wa.jobs SET run_at = now() WHERE id = {queued}"), "WA008"),
        (format!("UPDATE wa.jobs SET delivery = 'read' WHERE id = {done}"), "WA008"),
        (format!("UPDATE wa.jobs SET payload = '{{\"to\":\"1@s.whatsapp.net\",\"text\":\"x\"}}' WHERE id = {queued}"), "42501"),
        (format!("UPDATE wa.jobs SET finished_at = NULL, result = NULL WHERE id = {done}"), "WA008"),
        (format!("UPDATE wa.jobs SET max_attempts = 1000 WHERE id = {queued}"), "WA008"),
        (format!("UPDATE wa.jobs SET attempts = 0, worker_id = NULL WHERE id = {done}"), "42501"),
        (format!("DELETE FROM wa.jobs WHERE id = {done}"), "42501"),
        // wa.jobs is a view (42809: not a table); the table under it is the workers'.
        ("TRUNCATE wa.jobs".to_string(), "42809"),
        ("TRUNCATE wa.job_rows".to_string(), "42501"),
        (format!("UPDATE wa.job_rows SET state = 'available' WHERE id = {done}"), "42501"),
        (format!("UPDATE wa.job_rows SET state = 'cancelled' WHERE id = {queued}"), "42501"),
        (format!("DELETE FROM wa.job_rows WHERE id = {done}"), "42501"),
        (format!("SELECT 1 FROM wa.jobs WHERE id = {queued} FOR UPDATE"), "42501"),
        (
            "INSERT INTO wa.job_rows (session_id, kind, state, worker_id) VALUES ('s1', 'reconnect', 'running', gen_random_uuid())"
                .to_string(),
            "42501",
        ),
        // Other ways to an UPDATE of the table than the view's trigger.
        (
            "INSERT INTO wa.jobs (session_id, kind, idempotency_key) VALUES ('s1', 'reconnect', 'k') \
             ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO UPDATE SET state = 'available'"
                .to_string(),
            "42501",
        ),
        (
            format!("MERGE INTO wa.job_rows j USING (SELECT {done} AS id) s ON j.id = s.id WHEN MATCHED THEN UPDATE SET state = 'available'"),
            "42501",
        ),
        (
            format!("MERGE INTO wa.jobs j USING (SELECT {done} AS id) s ON j.id = s.id WHEN MATCHED THEN UPDATE SET state = 'available'"),
            "0A000",
        ),
        // The view's trigger notes in a setting whether the writer is a worker: an app
        // that sets it first is still an app.
        (
            format!("SELECT set_config('pgwa.jobs_writer', 'worker', false); UPDATE wa.jobs SET state = 'available' WHERE id = {done}"),
            "WA008",
        ),
        (
            format!("SET pgwa.jobs_writer = 'worker'; UPDATE wa.jobs SET run_at = now() WHERE id = {queued}"),
            "WA008",
        ),
        (
            format!(
                "CREATE FUNCTION pg_temp.set_config(text, text, boolean) RETURNS text LANGUAGE sql AS 'SELECT $2'; \
                 CREATE FUNCTION pg_temp.pg_has_role(name, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'; \
                 SET search_path = pg_temp, pg_catalog; SET pgwa.jobs_writer = 'worker'; \
                 UPDATE wa.jobs SET state = 'available' WHERE id = {done}"
            ),
            "WA008",
        ),
        (
            "INSERT INTO wa.jobs (id, session_id, kind) OVERRIDING SYSTEM VALUE VALUES (1000000, 's1', 'reconnect')".to_string(),
            "42501",
        ),
        (
            "INSERT INTO wa.jobs (session_id, kind, state, worker_id) VALUES ('s1', 'reconnect', 'running', gen_random_uuid())"
                .to_string(),
            "42501",
        ),
        ("INSERT INTO wa.jobs (session_id, kind, attempts) VALUES ('s1', 'reconnect', 5)".to_string(), "42501"),
        ("UPDATE wa.inbox SET text = 'x'".to_string(), "42501"),
        ("UPDATE wa.policy SET bad_mac_limit = 1000".to_string(), "42501"),
        ("UPDATE wa.schedules SET enabled = false".to_string(), "42501"),
        ("SELECT wa._jobs_view_update()".to_string(), "42501"),
        ("SELECT wa._jobs_view_writer()".to_string(), "42501"),
        (format!("SELECT wa._webhook_retry_key(j, 'available', now()) FROM wa.job_rows j WHERE id = {done}"), "42501"),
    ] {
        assert_eq!(refused(&app.pool, &sql).await, code, "{sql}");
    }
    assert_eq!(snapshot(&db.pool).await, before, "a refused statement changed a row");
    // What the API allows stays possible with plain SQL, and means the same.
    sqlx::query("UPDATE wa.jobs SET state = 'cancelled' WHERE id = $1").bind(queued).execute(&app.pool).await.unwrap();
    let (delivery, finished): (String, bool) =
        sqlx::query_as("SELECT delivery::text, finished_at IS NOT NULL FROM wa.jobs WHERE id = $1")
            .bind(queued)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((delivery.as_str(), finished), ("failed", true), "a plain-SQL cancel is a full cancel");
    sqlx::query("SELECT wa.retry_job($1)").bind(queued).execute(&app.pool).await.unwrap();
    assert_eq!(state_of(&db, queued).await, "available");
    app.drop(&db).await;
}

/// Hole 4, sessions: the app could insert a session already "connected" with an owner, a
/// lease and a JID, or ban any session until infinity.
#[tokio::test]
async fn the_app_cannot_forge_session_state() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let app = Login::app(&db).await;
    let before = snapshot(&db.pool).await;
    for (sql, code) in [
        ("INSERT INTO wa.sessions (id, status) VALUES ('s2', 'connected')", "42501"),
        ("INSERT INTO wa.sessions (id, owner_id, lease_expires_at) VALUES ('s2', NULL, 'infinity')", "42501"),
        ("INSERT INTO wa.sessions (id, epoch) VALUES ('s2', 99)", "42501"),
        ("INSERT INTO wa.sessions (id, jid, qr_code) VALUES ('s2', '1@s.whatsapp.net', 'x')", "42501"),
        ("INSERT INTO wa.sessions (id, bad_mac_count) VALUES ('s2', 0)", "42501"),
        ("INSERT INTO wa.sessions (id) VALUES ('bad id!')", "WA009"),
        ("INSERT INTO wa.sessions (id, pair_phone) VALUES ('s2', '12')", "WA009"),
        ("INSERT INTO wa.sessions (id, metadata) VALUES ('s2', '[1]')", "WA009"),
        ("UPDATE wa.sessions SET status = 'banned', status_until = 'infinity'", "42501"),
        ("UPDATE wa.sessions SET status_until = 'infinity'", "42501"),
        ("UPDATE wa.sessions SET failed_connect_count = 1000", "42501"),
        ("UPDATE wa.sessions SET epoch = epoch + 1", "42501"),
        ("UPDATE wa.sessions SET owner_id = NULL", "42501"),
        // Would stop the worker's key writes until its next lease.
        ("UPDATE wa.sessions SET keys_wiped_epoch = epoch", "42501"),
        ("INSERT INTO wa.sessions (id, keys_wiped_epoch) VALUES ('s2', 1)", "42501"),
        ("SELECT wa._keys_open(s, 1) FROM wa.sessions s", "42501"),
        ("UPDATE wa.sessions SET qr_code = 'x', pair_code = 'y'", "42501"),
        ("UPDATE wa.sessions SET jid = '1@s.whatsapp.net'", "42501"),
        ("UPDATE wa.sessions SET metadata = '\"x\"'", "WA009"),
        ("UPDATE wa.sessions SET pair_phone = 'abc'", "WA009"),
        ("TRUNCATE wa.sessions CASCADE", "42501"),
    ] {
        assert_eq!(refused(&app.pool, sql).await, code, "{sql}");
    }
    assert_eq!(snapshot(&db.pool).await, before, "a refused statement changed a row");
    // Plain SQL can do what the API does, with the API's meaning.
    sqlx::query("UPDATE wa.sessions SET status = 'failed', status_until = 'infinity', failed_connect_count = 5 WHERE id = 's1'")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE wa.sessions SET desired = 'running' WHERE id = 's1'").execute(&app.pool).await.unwrap();
    let (status, until, fails): (String, Option<String>, i32) =
        sqlx::query_as("SELECT status::text, status_until::text, failed_connect_count FROM wa.sessions WHERE id = 's1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), until, fails), ("stopped", None, 0), "desired = running is wa.start_session");
    sqlx::query("INSERT INTO wa.sessions (id, pair_phone) VALUES ('s2', '+55 11 99999-8888')").execute(&app.pool).await.unwrap();
    let phone: String =
        sqlx::query_scalar("SELECT pair_phone FROM wa.sessions WHERE id = 's2'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(phone, "5511999998888");
    app.drop(&db).await;
}

/// Hole 5: schedule idempotency keys are predictable; an app pre-enqueued the next tick's
/// maintenance job with an unknown task and run_at = infinity, so the sweep never ran.
#[tokio::test]
async fn only_workers_enqueue_maintenance_and_unknown_tasks_are_refused() {
    let db = TestDb::new().await.unwrap();
    let app = Login::app(&db).await;
    let before = snapshot(&db.pool).await;
    let next = (chrono::Utc::now().timestamp() / 600 + 1) * 600;
    for sql in [
        format!(
            "SELECT wa.enqueue(NULL, 'maintenance', '{{\"task\": \"sweep_keys\"}}', idempotency_key => 'schedule:sweep_keys:{next}')"
        ),
        "INSERT INTO wa.jobs (session_id, kind, payload) VALUES (NULL, 'maintenance', '{\"task\": \"retention\"}')".into(),
    ] {
        assert_eq!(refused(&app.pool, &sql).await, "42501", "{sql}");
    }
    for task in ["\"nope\"", "null", "1", "\"\""] {
        let sql = format!("SELECT wa.enqueue(NULL, 'maintenance', '{{\"task\": {task}}}')");
        assert_eq!(refused(&db.pool, &sql).await, "WA006", "the owner too: {sql}");
    }
    assert_eq!(snapshot(&db.pool).await, before);
    sqlx::query("SELECT wa.enqueue(NULL, 'maintenance', '{\"task\": \"retention\"}')").execute(&db.pool).await.unwrap();
    app.drop(&db).await;
}

/// Hole 8: bounds on every argument, and errors that quote bad input only in part.
#[tokio::test]
async fn out_of_bounds_input_is_refused_and_not_echoed() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.reconnect('s1')").execute(&db.pool).await.unwrap();
    let app = Login::app(&db).await;
    let before = snapshot(&db.pool).await;
    let big = "x".repeat(1_000_000);
    let cases: Vec<(String, &str, &str)> = vec![
        ("SELECT wa.send_text('s1', '+15550000001', 'hi', run_at => 'infinity')".into(), "WA005", "run_at"),
        ("SELECT wa.send_text('s1', '+15550000001', 'hi', run_at => '294276-01-01')".into(), "WA005", "run_at"),
        ("SELECT wa.send_text('s1', '+15550000001', 'hi', run_at => now() + interval '2 years')".into(), "WA005", "run_at"),
        ("SELECT wa.send_text('s1', '+15550000001', 'hi', run_at => '-infinity')".into(), "WA005", "run_at"),
        ("INSERT INTO wa.jobs (session_id, kind, run_at) VALUES ('s1', 'reconnect', 'infinity')".into(), "WA005", "run_at"),
        (format!("SELECT wa.add_session('s2', metadata => jsonb_build_object('x', '{big}'))"), "WA009", "metadata"),
        (format!("SELECT wa.send_media('s1', '+15550000001', 'image', url => 'https://e.com/{big}')"), "WA006", "payload.url"),
        (format!("SELECT wa.send_media('s1', '+15550000001', 'document', url => 'https://e.com/a', file_name => '{big}')"), "WA006", "payload.file_name"),
        (format!("SELECT wa.send_media('s1', '+15550000001', 'image', url => 'https://e.com/a', mimetype => '{big}')"), "WA006", "payload.mimetype"),
        ("SELECT wa.send_media('s1', '+15550000001', 'image', url => 'https://e.com/a', mimetype => 'not a type')".into(), "WA006", "payload.mimetype"),
        (format!("SELECT wa.close_session('s1', reason => '{big}')"), "WA006", "payload.reason"),
        ("SELECT wa.enqueue('s1', 'send', '{\"to\": \"+15550000001\", \"type\": \"image\", \"url\": \"https://e.com/a\", \"caption\": 5}')".into(), "WA006", "payload.caption"),
        ("SELECT wa.enqueue('s1', 'send', '{\"to\": \"+15550000001\", \"type\": \"image\", \"url\": \"https://e.com/a\", \"mimetype\": [1]}')".into(), "WA006", "payload.mimetype"),
        ("SELECT wa.enqueue('s1', 'send', '{\"to\": \"+15550000001\", \"type\": \"document\", \"url\": \"https://e.com/a\", \"file_name\": {}}')".into(), "WA006", "payload.file_name"),
        ("SELECT wa.enqueue('s1', 'close_session', '{\"reason\": 5}')".into(), "WA006", "payload.reason"),
        (format!("SELECT wa.send_text('s1', '{big}', 'hi')"), "WA002", "recipient"),
        (format!("SELECT wa.send_text('s{big}', '+15550000001', 'hi')"), "WA001", "session"),
        (format!("SELECT wa.enqueue('s1', '{big}')"), "WA004", "kind"),
        (format!("SELECT wa.add_session('{big}')"), "WA009", "id"),
        (format!("SELECT wa.send_reaction('s1', '+15550000001', '{big}', 'x')"), "WA006", "payload.message_id"),
        (format!("SELECT wa.enqueue('s1', 'key_cleanup', '{{\"scope\": \"{big}\"}}')"), "WA006", "payload.scope"),
    ];
    for (sql, code, arg) in &cases {
        let e = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&app.pool).await.unwrap_err();
        let d = e.as_database_error().unwrap_or_else(|| panic!("{e}"));
        let short = &sql[..sql.len().min(120)];
        assert_eq!(d.code().as_deref(), Some(*code), "{short}: {}", d.message());
        assert!(d.message().starts_with(&format!("{arg}:")), "{short}: the message names {arg}: {}", d.message());
        assert!(d.message().len() < 400, "{short}: the error quotes {} bytes", d.message().len());
    }
    // A key that belongs to a job of another kind is a mistake, not the same request.
    sqlx::query("SELECT wa.enqueue('s1', 'reconnect', idempotency_key => 'k1')").execute(&db.pool).await.unwrap();
    let e = sqlx::query("SELECT wa.send_text('s1', '+15550000001', 'hi', idempotency_key => 'k1')")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert_eq!(common::sqlstate(&e), "WA005", "{e}");
    assert!(e.to_string().contains("idempotency_key"), "{e}");
    let after = snapshot(&db.pool).await;
    assert_eq!(after.lines().count(), before.lines().count() + 1, "only the owner's reconnect with key k1 was added");
    app.drop(&db).await;
}

/// Hole 9: wa_sessions announcements were statement-level, so they said {"session":null}.
#[tokio::test]
async fn wa_sessions_announcements_name_the_session() {
    let db = TestDb::new().await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("wa_sessions").await.unwrap();
    sqlx::query("SELECT wa.add_session('s1'), wa.add_session('s2', start => false)").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.stop_session('s1')").execute(&db.pool).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let n = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.unwrap().unwrap();
        got.push(serde_json::from_str::<serde_json::Value>(n.payload()).unwrap());
    }
    assert_eq!(
        got,
        vec![
            serde_json::json!({"session": "s1", "desired": "running"}),
            serde_json::json!({"session": "s2", "desired": "stopped"}),
            serde_json::json!({"session": "s1", "desired": "stopped"}),
        ]
    );
}

/// A login with no grants reaches nothing in schema wa (it can still NOTIFY, which the
/// first test shows is harmless).
#[tokio::test]
async fn a_role_with_no_grants_reaches_nothing() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let nobody = Login::nobody(&db).await;
    let before = snapshot(&db.pool).await;
    for sql in [
        "SELECT * FROM wa.jobs",
        "SELECT * FROM wa.job_rows",
        "UPDATE wa.jobs SET state = 'cancelled'",
        "UPDATE wa.job_rows SET state = 'cancelled'",
        "SELECT * FROM wa.sessions",
        "SELECT * FROM wa.auth_state",
        "SELECT wa.send_text('s1', '+15550000001', 'hi')",
        "SELECT wa.cancel_job(1)",
        "INSERT INTO wa.jobs (session_id, kind) VALUES ('s1', 'reconnect')",
        "UPDATE wa.sessions SET desired = 'stopped'",
    ] {
        assert_eq!(refused(&nobody.pool, sql).await, "42501", "{sql}");
    }
    assert_eq!(snapshot(&db.pool).await, before);
    nobody.drop(&db).await;
}
