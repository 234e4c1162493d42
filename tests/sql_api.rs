//! The SQL API as apps use it: enqueue, validation with SQLSTATEs, idempotency,
//! transactions, plain INSERTs, cancel/retry, views and NOTIFY. No worker runs here.

mod common;

use common::{fails, jobs};
use pgwa_testkit::TestDb;

async fn db_with_session() -> TestDb {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    db
}

#[tokio::test]
async fn send_text_returns_ids_and_normalizes_the_recipient() {
    let db = db_with_session().await;
    let (job, msg): (i64, String) =
        sqlx::query_as("SELECT job_id, message_id FROM wa.send_text('s1', '+55 (11) 99999-8888', 'hi')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(msg.starts_with("3EB0") && msg.len() == 22, "{msg}");
    let (chat, state, delivery, kind, text): (String, String, String, String, String) =
        sqlx::query_as("SELECT chat, state::text, delivery::text, kind::text, payload->>'text' FROM wa.jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(chat, "5511999998888@s.whatsapp.net");
    assert_eq!((state.as_str(), delivery.as_str(), kind.as_str(), text.as_str()), ("available", "queued", "send", "hi"));
    let status: String =
        sqlx::query_scalar("SELECT status::text FROM wa.outbound WHERE job_id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
    assert_eq!(status, "queued");

    for (input, want) in [
        ("5511999998888@c.us", "5511999998888@s.whatsapp.net"),
        ("123456789@lid", "123456789@lid"),
        ("120363012345678901@g.us", "120363012345678901@g.us"),
        ("120363012345678901@newsletter", "120363012345678901@newsletter"),
    ] {
        let got: String = sqlx::query_scalar("SELECT wa.normalize_jid($1)").bind(input).fetch_one(&db.pool).await.unwrap();
        assert_eq!(got, want);
    }
}

/// wa.normalize_jid and wa._is_message_id test lengths apart from their patterns (bounded
/// repeats are slow in Postgres's regex engine); they must accept and refuse exactly what
/// the single patterns they replace did, at every length around each bound.
#[tokio::test]
async fn recipient_and_message_id_checks_keep_their_bounds() {
    let db = TestDb::new().await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::query(
        "CREATE FUNCTION pg_temp.norm(t text) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN RETURN wa.normalize_jid(t); EXCEPTION WHEN SQLSTATE 'WA002' THEN RETURN NULL; END $$",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    // Digit runs of 0 to 27 (leading 1 or 0), bare, with + and spacing, and under every
    // JID server, including groups of two runs; the expected value is the old function.
    let (inputs, accepted, wrong): (i64, i64, Vec<String>) = sqlx::query_as(
        r#"WITH runs AS (
               SELECT lead || repeat('7', n) AS r FROM generate_series(0, 26) n, unnest('{1,0}'::text[]) lead
               UNION ALL SELECT ''),
           inputs AS (
               SELECT r || sfx AS t FROM runs,
                      unnest('{"",@s.whatsapp.net,@c.us,@lid,@g.us,@newsletter,@S.WHATSAPP.NET}'::text[]) sfx
               UNION ALL SELECT '+' || r FROM runs
               UNION ALL SELECT ' +' || substr(r, 1, 2) || ' (' || substr(r, 3) || ') ' FROM runs
               UNION ALL SELECT a.r || '-' || b.r || '@g.us' FROM runs a, runs b),
           judged AS (
               SELECT t, pg_temp.norm(t) AS got,
                      CASE WHEN position('@' IN v) = 0 THEN
                                CASE WHEN regexp_replace(v, '[[:space:]().-]', '', 'g') ~ '^\+?[1-9][0-9]{6,14}$'
                                     THEN ltrim(regexp_replace(v, '[[:space:]().-]', '', 'g'), '+') || '@s.whatsapp.net' END
                           WHEN v ~ '^[1-9][0-9]{6,14}@(s\.whatsapp\.net|c\.us)$' THEN split_part(v, '@', 1) || '@s.whatsapp.net'
                           WHEN v ~ '^[0-9]{1,24}@lid$' OR v ~ '^[0-9]{5,24}(-[0-9]{5,24})?@g\.us$'
                                OR v ~ '^[0-9]{5,24}@newsletter$' THEN v END AS want
                 FROM inputs, lower(btrim(t)) v WHERE v <> '')
           SELECT count(*), count(got), coalesce(array_agg(t) FILTER (WHERE got IS DISTINCT FROM want), '{}') FROM judged"#,
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(wrong.is_empty(), "judged otherwise than before: {wrong:?}");
    assert!(inputs > 1000 && accepted > 100 && inputs - accepted > 100, "{inputs} inputs, {accepted} accepted");

    let (ids, ok, wrong): (i64, i64, Vec<String>) = sqlx::query_as(
        r#"WITH ids AS (SELECT repeat('aZ9', 30)::text AS base),
           cands AS (SELECT left(base, n) || tail AS t FROM ids, generate_series(0, 70) n,
                            unnest('{"",-,é,_," "}'::text[]) tail)
           SELECT count(*), count(*) FILTER (WHERE wa._is_message_id(t)),
                  coalesce(array_agg(t) FILTER (WHERE wa._is_message_id(t) IS DISTINCT FROM (t ~ '^[A-Za-z0-9]{8,64}$')), '{}')
             FROM cands"#,
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(wrong.is_empty(), "message ids judged otherwise than before: {wrong:?}");
    assert_eq!((ids, ok), (355, 57), "8 to 64 characters of letters and digits, and nothing else");
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_nothing() {
    let db = db_with_session().await;
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SELECT wa.send_text('s1', '+5511999998888', 'in a transaction')").execute(&mut *tx).await.unwrap();
    sqlx::query("SELECT wa.reconnect('s1')").execute(&mut *tx).await.unwrap();
    assert_eq!(common::count_in(&mut tx).await, 2);
    tx.rollback().await.unwrap();
    assert_eq!(jobs(&db.pool).await, 0);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_job() {
    let db = db_with_session().await;
    let first: (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_text('s1', '+5511999998888', 'one', idempotency_key => 'order-42')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let again: (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_text('s1', '+5511999998888', 'two', idempotency_key => 'order-42')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(first, again);
    assert_eq!(jobs(&db.pool).await, 1);

    // Concurrent inserts of one key from many connections still make one job.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            sqlx::query_scalar::<_, i64>("SELECT (wa.enqueue('s1', 'reconnect', idempotency_key => 'race')).id")
                .fetch_one(&pool)
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(jobs(&db.pool).await, 2);
    // Another session may reuse the key.
    sqlx::query("SELECT wa.add_session('s2')").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.enqueue('s2', 'reconnect', idempotency_key => 'race')").execute(&db.pool).await.unwrap();
    assert_eq!(jobs(&db.pool).await, 3);
}

#[tokio::test]
async fn bad_input_raises_a_documented_sqlstate_and_inserts_nothing() {
    let db = db_with_session().await;
    let long = "x".repeat(65_537);
    let cases: Vec<(String, &str, &str)> = vec![
        ("SELECT wa.send_text('nope', '+5511999998888', 'hi')".into(), "WA001", "session"),
        ("SELECT wa.send_text('s1', '12ab', 'hi')".into(), "WA002", "recipient"),
        ("SELECT wa.send_text('s1', '+0011999998888', 'hi')".into(), "WA002", "recipient"),
        ("SELECT wa.send_text('s1', '5511999998888:3@s.whatsapp.net', 'hi')".into(), "WA002", "recipient"),
        ("SELECT wa.send_text('s1', '', 'hi')".into(), "WA002", "recipient"),
        ("SELECT wa.send_text('s1', '+5511999998888', '   ')".into(), "WA003", "text"),
        ("SELECT wa.send_text('s1', '+5511999998888', NULL)".into(), "WA003", "body"),
        (format!("SELECT wa.send_text('s1', '+5511999998888', '{long}')"), "WA003", "text"),
        ("SELECT wa.enqueue('s1', 'explode')".into(), "WA004", "kind"),
        ("SELECT wa.enqueue('s1', 'reconnect', priority => -1)".into(), "WA005", "priority"),
        ("SELECT wa.enqueue('s1', 'reconnect', max_attempts => 0)".into(), "WA005", "max_attempts"),
        ("SELECT wa.enqueue('s1', 'reconnect', idempotency_key => '')".into(), "WA005", "idempotency_key"),
        ("SELECT wa.enqueue('s1', 'reconnect', '[1]')".into(), "WA006", "payload"),
        (
            "SELECT wa.enqueue('s1', 'send', '{\"to\": \"+5511999998888\", \"type\": \"hologram\"}')".into(),
            "WA006",
            "payload.type",
        ),
        ("SELECT wa.enqueue('s1', 'key_cleanup', '{\"scope\": \"everything\"}')".into(), "WA006", "payload.scope"),
        ("SELECT wa.enqueue('s1', 'key_cleanup', '{\"scope\": \"peer\"}')".into(), "WA002", "payload.peer"),
        ("SELECT wa.enqueue('s1', 'close_session', '{\"logout\": \"yes\"}')".into(), "WA006", "payload.logout"),
        ("SELECT wa.enqueue(NULL, 'maintenance', '{}')".into(), "WA006", "payload.task"),
        ("SELECT wa.enqueue('s1', 'maintenance', '{\"task\": \"retention\"}')".into(), "WA005", "session"),
        ("SELECT wa.enqueue(NULL, 'send', '{}')".into(), "WA001", "session"),
        ("SELECT wa.reconnect('nope')".into(), "WA001", "session"),
        ("SELECT wa.close_session('nope')".into(), "WA001", "session"),
        ("SELECT wa.cancel_job(424242)".into(), "WA007", "job"),
        ("SELECT wa.retry_job(424242)".into(), "WA007", "job"),
        ("SELECT wa.add_session('bad id!')".into(), "WA009", "id"),
        ("SELECT wa.add_session('ok', pair_phone => '12')".into(), "WA009", "pair_phone"),
        ("SELECT wa.add_session('ok', metadata => '[]')".into(), "WA009", "metadata"),
        ("SELECT wa.add_session('s1')".into(), "WA010", "id"),
        ("SELECT wa.start_session('nope')".into(), "WA001", "session"),
        ("SELECT wa.stop_session('nope')".into(), "WA001", "session"),
        ("SELECT wa.remove_session('nope')".into(), "WA001", "session"),
    ];
    for (sql, code, arg) in &cases {
        let (got, msg) = fails(&db.pool, sql).await;
        assert_eq!(&got, code, "{sql}: {msg}");
        assert!(msg.starts_with(&format!("{arg}:")), "{sql}: message should name {arg}: {msg}");
    }
    assert_eq!(jobs(&db.pool).await, 0);
    assert_eq!(common::count(&db.pool, "SELECT count(*) FROM wa.sessions").await, 1);
}

#[tokio::test]
async fn a_plain_insert_is_validated_and_normalized_too() {
    let db = db_with_session().await;
    let (state, chat, msg, attempts): (String, String, String, i16) = sqlx::query_as(
        "INSERT INTO wa.jobs (session_id, kind, payload, attempts, state)
         VALUES ('s1', 'send', '{\"to\": \"5511999998888\", \"text\": \"plain\"}', 7, 'available')
         RETURNING state::text, chat, message_id, attempts",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), chat.as_str(), attempts), ("available", "5511999998888@s.whatsapp.net", 0));
    assert_eq!(msg.len(), 22);
    let future: String = sqlx::query_scalar(
        "INSERT INTO wa.jobs (session_id, kind, run_at) VALUES ('s1', 'reconnect', now() + interval '1 hour') RETURNING state::text",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(future, "scheduled");
    let (code, _) =
        fails(&db.pool, "INSERT INTO wa.jobs (session_id, kind, state) VALUES ('s1', 'reconnect', 'completed')").await;
    assert_eq!(code, "WA005");
    let (code, _) =
        fails(&db.pool, "INSERT INTO wa.jobs (session_id, kind, payload) VALUES ('s1', 'send', '{\"text\": \"no recipient\"}')")
            .await;
    assert_eq!(code, "WA002");
    let (code, _) = fails(&db.pool, "INSERT INTO wa.jobs (session_id, kind) VALUES ('s1', 'bogus')").await;
    assert_eq!(code, "22P02", "an unknown kind is not a wa.job_kind");
    assert_eq!(jobs(&db.pool).await, 2);
}

#[tokio::test]
async fn cancel_and_retry_follow_the_job_state_machine() {
    let db = db_with_session().await;
    let id: i64 =
        sqlx::query_scalar("SELECT job_id FROM wa.send_text('s1', '+5511999998888', 'x')").fetch_one(&db.pool).await.unwrap();
    let s: String = sqlx::query_scalar("SELECT wa.cancel_job($1)::text").bind(id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(s, "cancelled");
    let s: String = sqlx::query_scalar("SELECT wa.cancel_job($1)::text").bind(id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(s, "cancelled", "cancelling twice is harmless");
    let d: String =
        sqlx::query_scalar("SELECT status::text FROM wa.outbound WHERE job_id = $1").bind(id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(d, "failed");
    let s: String = sqlx::query_scalar("SELECT wa.retry_job($1)::text").bind(id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(s, "available");
    let d: String =
        sqlx::query_scalar("SELECT status::text FROM wa.outbound WHERE job_id = $1").bind(id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(d, "queued");
    sqlx::query("UPDATE wa.jobs SET state = 'completed', finished_at = now() WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    let (code, msg) = fails(&db.pool, &format!("SELECT wa.retry_job({id})")).await;
    assert_eq!(code, "WA008", "{msg}");
    let (code, _) = fails(&db.pool, &format!("SELECT wa.cancel_job({id})")).await;
    assert_eq!(code, "WA008");
}

#[tokio::test]
async fn one_notify_per_session_and_transaction() {
    let db = db_with_session().await;
    sqlx::query("SELECT wa.add_session('s2')").execute(&db.pool).await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("wa_jobs").await.unwrap();
    sqlx::query("SELECT wa.send_text('s1', '+5511999998888', 'bulk ' || i) FROM generate_series(1, 1000) i")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO wa.jobs (session_id, kind, payload)
         SELECT 's' || (1 + i % 2), 'send', jsonb_build_object('to', '+5511999998888', 'text', 'bulk ' || i)
           FROM generate_series(1, 1000) i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // Scheduled for later: the workers' poll promotes it, nobody is woken now.
    sqlx::query("SELECT wa.send_text('s1', '+5511999998888', 'later', run_at => now() + interval '1 hour')")
        .execute(&db.pool)
        .await
        .unwrap();
    // Rolled back: no job, no wake-up.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SELECT wa.send_text('s2', '+5511999998888', 'undone')").execute(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(n)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), listener.try_recv()).await.map(|r| r.unwrap())
    {
        got.push(n.payload().to_owned());
    }
    // The first statement inserts 1,000 rows of one session: Postgres folds the identical
    // payloads into one per transaction. The INSERT ... SELECT covers two sessions: one
    // each. No message text in any.
    let one = |s: &str| format!(r#"{{"sessions" : ["{s}"]}}"#);
    if got.len() > 1 {
        got[1..].sort();
    }
    assert_eq!(got, vec![one("s1"), one("s1"), one("s2")], "{got:?}");
}

#[tokio::test]
async fn views_report_health_and_queue() {
    let db = db_with_session().await;
    sqlx::query("SELECT wa.send_text('s1', '+5511999998888', 'x') FROM generate_series(1, 3)").execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.reconnect('s1')").execute(&db.pool).await.unwrap();
    let (available, kind): (i64, String) =
        sqlx::query_as("SELECT available, kind::text FROM wa.queue_stats WHERE session = 's1' AND kind = 'send'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((available, kind.as_str()), (3, "send"));
    sqlx::query("UPDATE wa.sessions SET bad_mac_count = 3").execute(&db.pool).await.unwrap();
    let (healthy, bad_mac, limit): (bool, i32, i32) =
        sqlx::query_as("SELECT healthy, bad_mac_count, bad_mac_limit FROM wa.session_health WHERE session = 's1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((healthy, bad_mac, limit), (false, 3, 3));
}

#[tokio::test]
async fn reactions_and_media_are_validated() {
    let db = db_with_session().await;
    let (job, _): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_reaction('s1', '+15550000001', '3EB0ABCDEF0123456789AB', '👍')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let p: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
    assert_eq!((p["type"].as_str(), p["emoji"].as_str()), (Some("reaction"), Some("👍")));
    let (job, _): (i64, String) = sqlx::query_as(
        "SELECT * FROM wa.send_media('s1', '+15550000001', 'image', data => '\\x89504e470d0a1a0a'::bytea, caption => 'menu')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let p: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM wa.jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
    assert_eq!((p["type"].as_str(), p["data"].as_str()), (Some("image"), Some("iVBORw0KGgo=")));
    sqlx::query(
        "SELECT wa.send_media('s1', '+15550000001', 'document', url => 'https://example.com/menu.pdf', file_name => 'menu.pdf')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    for (sql, code, arg) in [
        ("SELECT wa.send_reaction('s1', '+15550000001', 'x', '👍')", "WA006", "payload.message_id"),
        ("SELECT wa.send_reaction('s1', '+15550000001', '3EB0ABCDEF0123456789AB', NULL)", "WA006", "payload.emoji"),
        ("SELECT wa.send_media('s1', '+15550000001', 'gif', url => 'https://x.test/a')", "WA006", "kind"),
        ("SELECT wa.send_media('s1', '+15550000001', 'image')", "WA006", "payload.data"),
        (
            "SELECT wa.send_media('s1', '+15550000001', 'image', data => '\\x00', url => 'https://x.test/a')",
            "WA006",
            "payload.data",
        ),
        ("SELECT wa.send_media('s1', '+15550000001', 'image', url => 'ftp://x.test/a')", "WA006", "payload.url"),
    ] {
        let (got, msg) = fails(&db.pool, sql).await;
        assert_eq!(got, code, "{sql}: {msg}");
        assert!(msg.starts_with(&format!("{arg}:")), "{sql}: {msg}");
    }
    assert_eq!(jobs(&db.pool).await, 3);
}

/// `wa.jobs` is a view of `wa.job_rows` (migration 0032) and shows every column of it,
/// in its order: a column added to the table and not to the view fails here.
#[tokio::test]
async fn wa_jobs_shows_every_column_of_wa_job_rows() {
    let db = TestDb::new().await.unwrap();
    let columns = |table: &'static str| {
        sqlx::query_scalar::<_, Vec<String>>(
            "SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns
              WHERE table_schema = 'wa' AND table_name = $1",
        )
        .bind(table)
        .fetch_one(&db.pool)
    };
    let (view, table) = (columns("jobs").await.unwrap(), columns("job_rows").await.unwrap());
    assert!(table.len() >= 25 && table.contains(&"phase".to_string()), "{table:?}");
    assert_eq!(view, table);
}

/// Waits until a statement of `login` waits on a row lock.
async fn waits_on_a_lock(db: &TestDb, login: &str) {
    common::eventually(std::time::Duration::from_secs(10), "a statement waiting on a row lock", || async {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                            WHERE usename = $1 AND datname = current_database() AND wait_event_type = 'Lock')",
        )
        .bind(login)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        waiting.then_some(())
    })
    .await;
}

/// A cancel that meets a job a worker claimed meanwhile (the claim commits while the
/// cancel waits on the row) asks that worker to drop it, as `wa.cancel_job` does for a
/// running job: it neither fails nor marks a running send cancelled under its worker.
/// Both ways: an app's plain UPDATE of `wa.jobs`, and `wa.cancel_job` as the owner (the
/// CLI's and the console's cancel), whose UPDATE of the view the trigger applies as a
/// worker's.
#[tokio::test]
async fn a_cancel_that_meets_a_claim_asks_the_worker_to_drop_the_job() {
    let db = db_with_session().await;
    let app = common::roles::Login::app(&db).await;
    let me: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&db.pool).await.unwrap();
    let cancels = [
        (
            &app.pool,
            app.name.as_str(),
            "WITH u AS (UPDATE wa.jobs SET state = 'cancelled' WHERE id = $1 RETURNING state) SELECT state::text FROM u",
        ),
        (&db.pool, me.as_str(), "SELECT wa.cancel_job($1)::text"),
    ];
    for (pool, login, cancel) in cancels {
        let (job,): (i64,) =
            sqlx::query_as("SELECT job_id FROM wa.send_text('s1', '+15550000001', 'x')").fetch_one(&db.pool).await.unwrap();
        let mut claim = db.pool.begin().await.unwrap();
        sqlx::query("UPDATE wa.job_rows SET state = 'running', attempts = 1, worker_id = gen_random_uuid() WHERE id = $1")
            .bind(job)
            .execute(&mut *claim)
            .await
            .unwrap();
        let (pool, sql) = (pool.clone(), cancel.to_string());
        let cancelled =
            tokio::spawn(
                async move { sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(job).fetch_all(&pool).await },
            );
        waits_on_a_lock(&db, login).await;
        claim.commit().await.unwrap();
        assert_eq!(cancelled.await.unwrap().unwrap(), vec!["running".to_string()], "{cancel}");
        let (state, asked): (String, bool) =
            sqlx::query_as("SELECT state::text, cancel_requested_at IS NOT NULL FROM wa.job_rows WHERE id = $1")
                .bind(job)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!((state.as_str(), asked), ("running", true), "{cancel}");
    }
    app.drop(&db).await;
}

/// A retry that meets another retry of the same dead job is not applied twice: the
/// second finds the job available and leaves it (one more attempt allowed, not two).
#[tokio::test]
async fn a_retry_that_meets_another_retry_changes_nothing_more() {
    let db = db_with_session().await;
    let (job,): (i64,) = sqlx::query_as("SELECT job_id FROM wa.send_text('s1', '+15550000001', 'x', max_attempts => 1)")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE wa.job_rows SET state = 'dead', attempts = 1, finished_at = now(), delivery = 'failed' WHERE id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .unwrap();
    let app = common::roles::Login::app(&db).await;
    let mut first = app.pool.begin().await.unwrap();
    let moved: String = sqlx::query_scalar("SELECT wa.retry_job($1)::text").bind(job).fetch_one(&mut *first).await.unwrap();
    assert_eq!(moved, "available");
    let (pool, login) = (app.pool.clone(), app.name.clone());
    let second =
        tokio::spawn(
            async move { sqlx::query_scalar::<_, String>("SELECT wa.retry_job($1)::text").bind(job).fetch_one(&pool).await },
        );
    waits_on_a_lock(&db, &login).await;
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap().unwrap(), "available");
    let (state, max_attempts): (String, i16) = sqlx::query_as("SELECT state::text, max_attempts FROM wa.jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!((state.as_str(), max_attempts), ("available", 2));
    app.drop(&db).await;
}

/// A worker's (the owner's) UPDATE of the view, as an older pgwa makes during a rolling
/// deploy, writes the columns it changed onto the row as it is when its lock is granted,
/// as an UPDATE of the table would: a change committed meanwhile to another column stays.
#[tokio::test]
async fn a_workers_update_of_the_view_keeps_a_change_made_meanwhile() {
    let db = db_with_session().await;
    let (job,): (i64,) =
        sqlx::query_as("SELECT job_id FROM wa.send_text('s1', '+15550000001', 'x')").fetch_one(&db.pool).await.unwrap();
    let mut other = db.pool.begin().await.unwrap();
    sqlx::query("UPDATE wa.job_rows SET priority = 7 WHERE id = $1").bind(job).execute(&mut *other).await.unwrap();
    let pool = db.pool.clone();
    let later = tokio::spawn(async move {
        sqlx::query_scalar::<_, i64>("UPDATE wa.jobs SET run_at = now() + interval '1 day' WHERE id = $1 RETURNING id")
            .bind(job)
            .fetch_all(&pool)
            .await
    });
    let me: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&db.pool).await.unwrap();
    waits_on_a_lock(&db, &me).await;
    other.commit().await.unwrap();
    assert_eq!(later.await.unwrap().unwrap(), vec![job]);
    let (priority, moved): (i16, bool) =
        sqlx::query_as("SELECT priority, run_at > now() + interval '1 hour' FROM wa.jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((priority, moved), (7, true));
}
