//! Tenants: each tenant's role sees and changes only its own sessions, jobs, inbox rows,
//! outbound rows and codes, through tables, views and API alike; the default tenant
//! (pgwa_app) is one of them. Attacks come from another tenant's login.

mod common;

use common::roles::{Login, refused};
use pgwa_testkit::TestDb;

async fn one(pool: &sqlx::PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(pool).await.unwrap()
}

/// Every row of tenant beta's session b1, to check that nothing changed.
async fn beta_rows(db: &TestDb) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(E'\\n',
            (SELECT (to_jsonb(s) - 'updated_at')::text FROM wa.sessions s WHERE id = 'b1'),
            (SELECT string_agg(to_jsonb(j)::text, E'\\n' ORDER BY id) FROM wa.jobs j WHERE session_id = 'b1'),
            (SELECT string_agg(to_jsonb(i)::text, E'\\n' ORDER BY id) FROM wa.inbox i WHERE session_id = 'b1'))",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_tenant_sees_and_changes_only_its_own_sessions() {
    let db = TestDb::new().await.unwrap();
    let (acme, beta) = (common::roles::cluster_name(&db, "acme"), common::roles::cluster_name(&db, "beta"));
    for t in [&acme, &beta] {
        let role: String = sqlx::query_scalar("SELECT wa.add_tenant($1)").bind(t).fetch_one(&db.pool).await.unwrap();
        assert_eq!(role, format!("pgwa_t_{t}"));
    }
    let a = Login::new(&db, "ta", Some(&format!("pgwa_t_{acme}"))).await;
    let b = Login::new(&db, "tb", Some(&format!("pgwa_t_{beta}"))).await;
    let d = Login::app(&db).await;
    sqlx::query("SELECT wa.add_session('a1')").execute(&a.pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('b1', pair_phone => '15550000009')").execute(&b.pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('d1')").execute(&d.pool).await.unwrap();
    assert_eq!(
        one(&db.pool, "SELECT id || ':' || tenant FROM wa.sessions ORDER BY id").await,
        [format!("a1:{acme}"), format!("b1:{beta}"), "d1:default".to_string()]
    );
    let (bjob,): (i64,) =
        sqlx::query_as("SELECT job_id FROM wa.send_text('b1', '+15550000001', 'secret', run_at => now() + interval '1 hour')")
            .fetch_one(&b.pool)
            .await
            .unwrap();
    sqlx::query("SELECT wa.send_text('a1', '+15550000001', 'mine')").execute(&a.pool).await.unwrap();
    sqlx::query(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text)
         VALUES ('b1', '1@s.whatsapp.net', '1@s.whatsapp.net', 'M1', 'text', 'for beta only')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE wa.sessions SET qr_code = 'beta-qr' WHERE id = 'b1'").execute(&db.pool).await.unwrap();

    // Reads: every table and view an app reads shows acme its own rows only.
    for (sql, want) in [
        ("SELECT id FROM wa.sessions", vec!["a1"]),
        ("SELECT session FROM wa.session_health", vec!["a1"]),
        ("SELECT DISTINCT session_id FROM wa.jobs", vec!["a1"]),
        ("SELECT DISTINCT session FROM wa.outbound", vec!["a1"]),
        ("SELECT DISTINCT session FROM wa.queue_stats", vec!["a1"]),
        ("SELECT session_id FROM wa.inbox", vec![]),
        ("SELECT qr_code FROM wa.sessions WHERE qr_code IS NOT NULL", vec![]),
        ("SELECT name FROM wa.tenants", vec![acme.as_str()]),
    ] {
        assert_eq!(one(&a.pool, sql).await, want, "{sql}");
    }
    assert_eq!(one(&d.pool, "SELECT id FROM wa.sessions").await, ["d1"], "the default tenant is a tenant too");

    // Writes: acme cannot reach beta's session by any door; nothing of beta's changes.
    let before = beta_rows(&db).await;
    let acme_jobs = one(&db.pool, "SELECT count(*)::text FROM wa.job_rows WHERE session_id = 'a1'").await;
    for (sql, code) in [
        ("SELECT wa.send_text('b1', '+15550000001', 'hi')".to_string(), "WA001"),
        ("INSERT INTO wa.jobs (session_id, kind) VALUES ('b1', 'reconnect')".to_string(), "WA001"),
        // A batch that hides beta's session among acme's own.
        (
            "INSERT INTO wa.jobs (session_id, kind) SELECT s, 'reconnect' FROM unnest(ARRAY['a1', 'b1', 'a1']) s".to_string(),
            "WA001",
        ),
        ("SELECT wa.reconnect('b1')".to_string(), "WA001"),
        ("SELECT wa.close_session('b1', wipe => true)".to_string(), "WA001"),
        ("SELECT wa.stop_session('b1')".to_string(), "WA001"),
        ("SELECT wa.start_session('b1')".to_string(), "WA001"),
        ("SELECT wa.remove_session('b1')".to_string(), "WA001"),
        (format!("SELECT wa.cancel_job({bjob})"), "WA007"),
        (format!("SELECT wa.retry_job({bjob})"), "WA007"),
        (format!("INSERT INTO wa.sessions (id, tenant) VALUES ('x1', '{beta}')"), "42501"),
        ("SELECT wa.add_tenant('evil')".to_string(), "42501"),
        ("INSERT INTO wa.tenants (name, role) VALUES ('evil', 'pgwa_app')".to_string(), "42501"),
    ] {
        assert_eq!(refused(&a.pool, &sql).await, code, "{sql}");
    }
    for sql in [
        "UPDATE wa.sessions SET desired = 'stopped' WHERE id = 'b1'".to_string(),
        "DELETE FROM wa.sessions WHERE id = 'b1'".to_string(),
        format!("UPDATE wa.jobs SET state = 'cancelled' WHERE id = {bjob}"),
    ] {
        let n = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&a.pool).await.unwrap().rows_affected();
        assert_eq!(n, 0, "{sql}");
    }
    assert_eq!(beta_rows(&db).await, before, "another tenant changed beta's rows");
    assert_eq!(
        one(&db.pool, "SELECT count(*)::text FROM wa.job_rows WHERE session_id = 'a1'").await,
        acme_jobs,
        "a refused batch left none of its own rows"
    );

    // A login in two tenants must say which one a new session belongs to.
    let both = Login::new(&db, "tab", Some(&format!("pgwa_t_{acme}, pgwa_t_{beta}"))).await;
    assert_eq!(refused(&both.pool, "SELECT wa.add_session('ab1')").await, "WA011");
    sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO wa.sessions (id, tenant) VALUES ('ab1', '{beta}')")))
        .execute(&both.pool)
        .await
        .unwrap();
    for l in [a, b, d, both] {
        l.drop(&db).await;
    }
    for t in [&acme, &beta] {
        common::roles::drop_tenant(&db, t).await;
    }
}

#[tokio::test]
async fn bad_tenant_names_are_refused() {
    let db = TestDb::new().await.unwrap();
    for bad in ["", "Acme", "1acme", "a-b", "a b; DROP ROLE x", &"a".repeat(41)] {
        let e = sqlx::query("SELECT wa.add_tenant($1)").bind(bad).execute(&db.pool).await.unwrap_err();
        assert_eq!(common::sqlstate(&e), "WA012", "{bad:?}");
    }
    let e = sqlx::query("SELECT wa.add_tenant('default')").execute(&db.pool).await.unwrap_err();
    assert_eq!(common::sqlstate(&e), "WA010");
}

/// Roles are cluster-wide, so a second pgwa database on the same cluster (a second
/// deployment, or staging beside production) adding a tenant of the same name must not
/// take over the first one's role: a login granted it for one database would be that
/// tenant in the other too. Nor may a role someone else made become a tenant's.
#[tokio::test]
async fn a_tenant_role_serves_one_database_only() {
    let (one, two) = (TestDb::new().await.unwrap(), TestDb::new().await.unwrap());
    let name = common::roles::cluster_name(&one, "shared");
    let add = async |db: &TestDb| -> String {
        sqlx::query_scalar("SELECT wa.add_tenant($1)").bind(&name).fetch_one(&db.pool).await.unwrap()
    };
    assert_eq!(add(&one).await, format!("pgwa_t_{name}"));

    let (code, msg) = common::fails(&two.pool, &format!("SELECT wa.add_tenant('{name}')")).await;
    assert_eq!(code, "WA010", "{msg}");
    assert!(msg.starts_with(&format!("name: role pgwa_t_{name} already exists")), "{msg}");
    let tenants: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wa.tenants WHERE name = $1").bind(&name).fetch_one(&two.pool).await.unwrap();
    assert_eq!(tenants, 0, "nothing written in the second database");

    // Re-adding in the database that made the role is fine (a tenant removed by hand).
    sqlx::query("DELETE FROM wa.tenants WHERE name = $1").bind(&name).execute(&one.pool).await.unwrap();
    assert_eq!(add(&one).await, format!("pgwa_t_{name}"));
    common::roles::drop_tenant(&one, &name).await;

    // A role of that name made by someone else is not adopted, nor given pgwa_api.
    let foreign = common::roles::cluster_name(&one, "other");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE pgwa_t_{foreign} LOGIN"))).execute(&one.pool).await.unwrap();
    let (code, msg) = common::fails(&one.pool, &format!("SELECT wa.add_tenant('{foreign}')")).await;
    assert_eq!(code, "WA010", "{msg}");
    let api: bool = sqlx::query_scalar("SELECT pg_has_role($1, 'pgwa_api', 'MEMBER')")
        .bind(format!("pgwa_t_{foreign}"))
        .fetch_one(&one.pool)
        .await
        .unwrap();
    assert!(!api, "a refused role must not be granted pgwa_api");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE pgwa_t_{foreign}"))).execute(&one.pool).await.unwrap();
}

/// A tenant whose role was made before roles were marked gets the mark when a newer SQL
/// API is applied, so removing and re-adding it by hand still works.
#[tokio::test]
async fn unmarked_tenant_roles_are_marked_on_upgrade() {
    let db = TestDb::new().await.unwrap();
    let name = common::roles::cluster_name(&db, "old");
    sqlx::query("SELECT wa.add_tenant($1)").bind(&name).execute(&db.pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("COMMENT ON ROLE pgwa_t_{name} IS NULL"))).execute(&db.pool).await.unwrap();
    sqlx::query("UPDATE wa.sql_api SET version = version - 1").execute(&db.pool).await.unwrap();
    assert!(pgwa_pg::migrate::migrate(&db.pool).await.unwrap().sql_api_applied);
    let mark: Option<String> = sqlx::query_scalar("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1")
        .bind(format!("pgwa_t_{name}"))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(mark, Some(format!("pgwa tenant {name} of database {}", db.name)));
    sqlx::query("DELETE FROM wa.tenants WHERE name = $1").bind(&name).execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.add_tenant($1)").bind(&name).execute(&db.pool).await.unwrap();
    common::roles::drop_tenant(&db, &name).await;
}
