//! /health and /metrics of a running worker.

mod common;

use std::time::Duration;

use common::{InProcess, eventually, fast_config, http_get, wait_connected};
use pgwa_testkit::TestDb;

#[tokio::test]
async fn health_reports_counts_and_metrics_are_prometheus_text() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('tenant-secret-name')").execute(&db.pool).await.unwrap();
    let w = InProcess::start(fast_config(&db)).await;
    let addr = w.http.expect("http enabled");
    wait_connected(&db.pool, 1).await;
    sqlx::query("SELECT wa.send_text('tenant-secret-name', '+15550000001', 'x') FROM generate_series(1, 3)")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("SELECT wa.enqueue('tenant-secret-name', 'send', '{\"to\": \"+15550000002\", \"text\": \"x\", \"sim\": {\"fail\": \"no\"}}')")
        .execute(&db.pool)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the jobs to finish", || async {
        (common::count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE finished_at IS NULL").await == 0).then_some(())
    })
    .await;

    let (code, body) = http_get(addr, "/health").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["database"]["reachable"], true);
    assert_eq!(v["sessions"]["held"], 1);
    assert_eq!(v["sessions"]["by_status"]["connected"], 1);
    assert!(v["memory"]["rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(!body.contains("tenant-secret-name"), "health must not expose tenant data: {body}");
    // A simulated worker says so, here and in the status of every session it holds.
    assert_eq!(v["whatsapp"]["backend"], "simulated", "{body}");
    assert!(v["whatsapp"]["warning"].as_str().unwrap().contains("reach nobody"), "{body}");
    let backend: Option<String> =
        sqlx::query_scalar("SELECT backend::text FROM wa.session_health").fetch_one(&db.pool).await.unwrap();
    assert_eq!(backend.as_deref(), Some("simulated"));
    // Awaited: the worker renews its 1.5 s lease while the CLI runs.
    let list = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgwa"))
        .args(["session", "list"])
        .env("PGWA_DATABASE_URL", &db.url)
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("connected (simulated)"), "{list}");

    let (code, text) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "pgwa_sessions{status=\"connected\"} 1",
        "pgwa_active_connections 1",
        "pgwa_jobs_total{kind=\"send\",outcome=\"completed\"}",
        "pgwa_jobs_total{kind=\"send\",outcome=\"dead\"}",
        "pgwa_messages_sent_total",
        "pgwa_job_duration_seconds_bucket{kind=\"send\"",
        "pgwa_queue_depth{state=\"available\"} 0",
        "pgwa_errors_total{kind=\"job\"}",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // Database unreachable (connections refused): 503.
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", pgwa_testkit::server_url())).await.unwrap();
    let block = |allow: bool| {
        let (admin, name) = (admin.clone(), db.name.clone());
        async move {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}")))
                .execute(&admin)
                .await
                .unwrap();
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(&name)
                .execute(&admin)
                .await
                .unwrap();
        }
    };
    block(false).await;
    let (code, body) = http_get(addr, "/health").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"reachable\":false"), "{body}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", db.name)))
        .execute(&admin)
        .await
        .unwrap();
    w.token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), w.handle).await;
}

/// A GET with `Authorization: Bearer <token>`: (status code, body).
async fn get_with_bearer(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// The QR endpoints take the admin token from the Authorization header only: a token in
/// the URL is refused even when right (URLs land in access logs and browser history),
/// a wrong one too, and neither serves the image.
#[tokio::test]
async fn the_qr_endpoints_need_the_admin_token_in_the_header() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s1', start => false)").execute(&db.pool).await.unwrap();
    let mut cfg = fast_config(&db);
    let w = InProcess::start(cfg.clone()).await;
    let (code, body) = get_with_bearer(w.http.unwrap(), "/sessions/s1/qr.svg", "anything").await;
    assert_eq!(code, 404, "off without a token: {body}");
    assert!(body.contains("http.admin_token"));
    w.stop().await;

    cfg.http.admin_token = Some("s3cret".into());
    let w = InProcess::start(cfg).await;
    let addr = w.http.unwrap();
    let (code, _) = get_with_bearer(addr, "/sessions/s1/qr.svg", "s3cret").await;
    assert_eq!(code, 404, "no QR published yet");
    // What a worker does while linking.
    sqlx::query("UPDATE wa.sessions SET qr_code = '2@abc,def,ghi', qr_expires_at = now() + interval '1 minute' WHERE id = 's1'")
        .execute(&db.pool)
        .await
        .unwrap();

    let (code, body) = http_get(addr, "/sessions/s1/qr.svg").await;
    assert_eq!((code, body.contains("<svg")), (401, false), "no token: {body}");
    for wrong in ["wrong!", "s3cre", "s3cret2", ""] {
        let (code, body) = get_with_bearer(addr, "/sessions/s1/qr.svg", wrong).await;
        assert_eq!((code, body.contains("<svg")), (401, false), "token {wrong:?}: {body}");
        assert!(body.contains("Authorization: Bearer"), "the refusal says how to authenticate: {body}");
    }
    // The right token in the URL: refused, nothing served, and told to use the header.
    for path in ["/sessions/s1/qr.svg?token=s3cret", "/sessions/s1/qr.png?token=s3cret"] {
        let (code, body) = http_get(addr, path).await;
        assert_eq!(code, 401, "{path}: {body}");
        assert!(!body.contains("<svg") && !body.contains("PNG"), "{path} served the image: {body}");
        assert!(body.contains("Authorization: Bearer") && body.contains("URL"), "{path}: {body}");
    }
    // Even with the right header too: a URL that carries the token is never accepted.
    let (code, _) = get_with_bearer(addr, "/sessions/s1/qr.svg?token=s3cret", "s3cret").await;
    assert_eq!(code, 401, "a token in the URL is refused even beside a right header");
    // Nothing changed: the code is still waiting for its scan.
    let still: Option<String> =
        sqlx::query_scalar("SELECT qr_code FROM wa.sessions WHERE id = 's1'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(still.as_deref(), Some("2@abc,def,ghi"));

    let (code, body) = get_with_bearer(addr, "/sessions/s1/qr.svg", "s3cret").await;
    assert_eq!(code, 200);
    assert!(body.contains("<svg"), "{body}");
    let (code, body) = get_with_bearer(addr, "/sessions/s1/qr.png", "s3cret").await;
    assert_eq!(code, 200);
    assert!(body.contains("PNG"));
    sqlx::query("UPDATE wa.sessions SET qr_expires_at = now() - interval '1 second'").execute(&db.pool).await.unwrap();
    let (code, _) = get_with_bearer(addr, "/sessions/s1/qr.png", "s3cret").await;
    assert_eq!(code, 404, "an expired QR is not served");
    w.stop().await;
}

/// A tenant's token serves its own sessions' QR codes only; another tenant's session
/// answers like one with no code, so its existence is not revealed either.
#[tokio::test]
async fn a_tenant_token_serves_only_that_tenants_qr_codes() {
    let db = TestDb::new().await.unwrap();
    let t = common::roles::cluster_name(&db, "qr");
    sqlx::query("SELECT wa.add_tenant($1)").bind(&t).execute(&db.pool).await.unwrap();
    sqlx::query("SELECT wa.add_session('mine', start => false), wa.add_session('theirs', start => false)")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE wa.sessions SET tenant = $1 WHERE id = 'mine'").bind(&t).execute(&db.pool).await.unwrap();
    sqlx::query("UPDATE wa.sessions SET qr_code = '2@abc,def,ghi', qr_expires_at = now() + interval '1 minute'")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut cfg = fast_config(&db);
    cfg.http.tenant_tokens.insert(t.clone(), "tenant-secret".into());
    cfg.http.tenant_tokens.insert("other".into(), "other-secret".into());
    let w = InProcess::start(cfg).await;
    let addr = w.http.unwrap();
    let (code, body) = get_with_bearer(addr, "/sessions/mine/qr.svg", "tenant-secret").await;
    assert_eq!((code, body.contains("<svg")), (200, true), "{body}");
    let (code, body) = get_with_bearer(addr, "/sessions/theirs/qr.svg", "tenant-secret").await;
    assert_eq!((code, body.contains("<svg")), (404, false), "another tenant's session: {body}");
    let (code, _) = get_with_bearer(addr, "/sessions/mine/qr.svg", "other-secret").await;
    assert_eq!(code, 404, "a token of another tenant");
    let (code, _) = get_with_bearer(addr, "/sessions/mine/qr.svg", "tenant-secre").await;
    assert_eq!(code, 401);
    w.stop().await;
    common::roles::drop_tenant(&db, &t).await;
}

/// A worker that has seen no event yet already exposes every series the Grafana
/// dashboard (ecosystem/grafana) queries, at zero, each with a `# HELP` line: panels show
/// 0, not "No data". Its own process, because the recorder is per process and the other
/// tests here have recorded events in this one.
#[tokio::test]
async fn a_fresh_worker_exposes_every_dashboard_series_at_zero_with_help() {
    let db = TestDb::new().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = common::spawn_worker(&db, &[("PGWA_HTTP__LISTEN", addr.to_string())]);
    let text = eventually(Duration::from_secs(20), "/metrics to answer", || async {
        let up = tokio::net::TcpStream::connect(addr).await.is_ok();
        if !up {
            return None;
        }
        let (code, text) = http_get(addr, "/metrics").await;
        (code == 200).then_some(text)
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();

    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ecosystem/grafana/pgwa-dashboard.json")).unwrap();
    let mut names: Vec<&str> = dashboard
        .match_indices("pgwa_")
        .map(|(i, _)| {
            let rest = &dashboard[i..];
            &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())]
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        // A histogram has no sample before its first observation (job durations).
        if name.ends_with("_bucket") {
            continue;
        }
        let sample = text.lines().find(|l| l.starts_with(name) && !l.starts_with('#'));
        assert!(sample.is_some(), "the dashboard queries {name}, which a fresh worker does not expose:\n{text}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no # HELP line:\n{text}");
    }
    for zero in [
        "pgwa_errors_total{kind=\"job\"} 0",
        "pgwa_messages_received_total 0",
        "pgwa_qr_codes_total 0",
        "pgwa_reconnects_failed_total 0",
    ] {
        assert!(text.contains(zero), "missing {zero}:\n{text}");
    }
    db.drop_now().await.unwrap();
}
