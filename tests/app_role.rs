//! The app role: it can use the SQL API and read results, never keys.

mod common;

use pgwa_testkit::TestDb;

#[tokio::test]
async fn the_app_role_enqueues_and_reads_but_cannot_read_keys() {
    let db = TestDb::new().await.unwrap();
    let login = common::roles::cluster_name(&db, "app");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {login} LOGIN IN ROLE pgwa_app"))).execute(&db.pool).await.unwrap();
    let url = db.url.replacen("postgres@", &format!("{login}@"), 1);
    let app = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();

    sqlx::query("SELECT wa.add_session('s1')").execute(&app).await.unwrap();
    let (job, _msg): (i64, String) =
        sqlx::query_as("SELECT * FROM wa.send_text('s1', '+15550000001', 'hi')").fetch_one(&app).await.unwrap();
    sqlx::query("INSERT INTO wa.jobs (session_id, kind) VALUES ('s1', 'reconnect')").execute(&app).await.unwrap();
    // The checks of a request run as the app: every helper they call must be granted to it.
    sqlx::query("SELECT wa.send_poll('s1', '+15550000001', 'Lunch?', ARRAY['pizza', 'sushi'], 2)").execute(&app).await.unwrap();
    sqlx::query("SELECT wa.send_media('s1', '+15550000001', 'voice', url => 'https://x.test/a', seconds => 3)")
        .execute(&app)
        .await
        .unwrap();
    let e = sqlx::query("SELECT wa.download_media('s1', 1)").execute(&app).await.unwrap_err();
    assert_eq!(common::sqlstate(&e), "WA013", "no such file, not a missing grant: {e}");
    sqlx::query("SELECT wa.cancel_job($1)").bind(job).execute(&app).await.unwrap();
    sqlx::query("SELECT wa.retry_job($1)").bind(job).execute(&app).await.unwrap();
    sqlx::query("SELECT wa.stop_session('s1')").execute(&app).await.unwrap();
    sqlx::query("SELECT wa.start_session('s1')").execute(&app).await.unwrap();
    let e = sqlx::query("UPDATE wa.sessions SET epoch = epoch + 1").execute(&app).await.unwrap_err();
    assert_eq!(common::sqlstate(&e), "42501", "an app must not touch the fencing epoch");
    let e = sqlx::query("UPDATE wa.jobs SET worker_id = NULL").execute(&app).await.unwrap_err();
    assert_eq!(common::sqlstate(&e), "42501");
    for view in ["wa.outbound", "wa.session_health", "wa.queue_stats", "wa.inbox", "wa.sessions"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {view}"))).execute(&app).await.unwrap();
    }
    let secret_tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
          WHERE schemaname = 'wa' AND (tablename LIKE 'signal_%' OR tablename LIKE 'app_state_%'
                OR tablename IN ('auth_state', 'sent_messages', 'msg_secrets', 'tc_tokens', 'pending_inbound', 'base_keys', 'sender_key_devices'))",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(secret_tables.contains(&"wa.auth_state".to_string()), "{secret_tables:?}");
    for t in &secret_tables {
        let e = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t} LIMIT 1"))).execute(&app).await.unwrap_err();
        assert_eq!(common::sqlstate(&e), "42501", "{t} must not be readable by pgwa_app");
    }
    app.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP OWNED BY {login}; DROP ROLE {login}"))).execute(&db.pool).await.unwrap();
}

/// A batch of messages as one `INSERT INTO wa.jobs ... SELECT` (README, "Jobs": many
/// messages at once): the app role may, each row is validated and normalized as
/// `wa.send_text` would, ids come back in the order given, and one bad row refuses the
/// whole statement with nothing inserted.
#[tokio::test]
async fn the_app_role_enqueues_a_batch_in_one_statement_all_or_nothing() {
    let db = TestDb::new().await.unwrap();
    let app = common::roles::Login::app(&db).await;
    sqlx::query("SELECT wa.add_session('s1')").execute(&app.pool).await.unwrap();
    let batch = |phones: &str| {
        format!(
            "INSERT INTO wa.jobs (session_id, kind, payload)
             SELECT 's1', 'send', jsonb_build_object('to', c.phone, 'text', 'Hi ' || c.name)
               FROM unnest({phones}, ARRAY['Ana', 'Bo', 'Cy']) WITH ORDINALITY AS c(phone, name, n)
              ORDER BY c.n
             RETURNING id, message_id, chat, payload->>'text'"
        )
    };
    let rows: Vec<(i64, String, String, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(batch("ARRAY['+1 555 000 0001', '15550000002@c.us', '(155) 5000-0003']")))
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let chats: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(chats, ["15550000001@s.whatsapp.net", "15550000002@s.whatsapp.net", "15550000003@s.whatsapp.net"]);
    assert_eq!(rows.iter().map(|r| r.3.as_str()).collect::<Vec<_>>(), ["Hi Ana", "Hi Bo", "Hi Cy"]);
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "ids follow the order given: {rows:?}");
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(ids.len(), 3, "each row gets its own message id: {rows:?}");
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state::text || '/' || delivery FROM wa.jobs ORDER BY id").fetch_all(&app.pool).await.unwrap();
    assert_eq!(states, ["available/queued"; 3]);

    let (code, msg) = common::fails(&app.pool, &batch("ARRAY['+15550000004', '12ab', '+15550000006']")).await;
    assert_eq!(code, "WA002", "{msg}");
    assert!(msg.starts_with("to: '12ab' is not a phone number"), "the field and the bad value named: {msg}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 3, "the refused batch left none of its rows, not even the good ones before the bad one");
    app.drop(&db).await;
}
