//! The connect page in headless Chromium against a real worker on the loopback WhatsApp
//! server: a salon owner opens the link, the phone scans the QR code read off the
//! screen, and the page says "connected" with the number; the same by pairing code,
//! in Russian; a link past its expiry shows INVALID_TOKEN. Screenshots of each page
//! are left in target/tmp/screenshots/.

mod common;

use std::time::Duration;

use common::browser::{Browser, free_port, read_qr};
use common::loopback::{Worker, session, start_server};
use pgwa_testkit::TestDb;
use sqlx::PgPool;

const QR_PHONE: &str = "15550007171";
const CODE_PHONE: &str = "15550007272";
/// Linking waits out whatsapp-rust's 10 s key-share grace; a debug build on 2 cores.
const LINK: Duration = Duration::from_secs(120);

async fn link(pool: &PgPool, session: &str) -> String {
    sqlx::query("SELECT wa.add_session($1)").bind(session).execute(pool).await.unwrap();
    sqlx::query_scalar("SELECT wa.connect_link($1)").bind(session).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_links_by_qr_and_by_pairing_code_from_the_page() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let port = free_port();
    sqlx::query("UPDATE wa.policy SET public_url = $1").bind(format!("http://127.0.0.1:{port}")).execute(pool).await.unwrap();
    let _worker = Worker::spawn_with(&db, &server, &[("PGWA_HTTP__LISTEN", format!("127.0.0.1:{port}"))]);
    let browser = Browser::start().await;

    // By QR: the code on the screen is the one the phone scans.
    browser.goto(&link(pool, "salon-qr").await).await;
    browser.wait_state("qr", LINK).await;
    assert!(browser.text("qr-view").await.contains("Linked devices"), "English by default");
    browser.screenshot("connect-qr").await;
    let seen = read_qr(&browser.element_screenshot("qr", "connect-qr-code").await).expect("a readable QR code on the page");
    assert!(seen.starts_with("2@"), "a WhatsApp linking code: {}…", &seen[..seen.len().min(6)]);
    let (status, body) = server.admin_post(&format!("/admin/scan?phone={QR_PHONE}"), &seen).await;
    assert_eq!(status, 200, "the phone could not link with the code read off the page: {body}");
    browser.wait_state("connected", LINK).await;
    let said = browser.text("connected-text").await;
    assert!(said.contains(&format!("+{QR_PHONE}")), "the page names the number: {said}");
    browser.screenshot("connect-connected").await;
    assert_eq!(session(pool, "salon-qr").await.status, "connected");

    // By pairing code, in Russian: the customer types the number, the page shows the code.
    browser.goto(&format!("{}?lang=ru", link(pool, "salon-code").await)).await;
    browser.wait_state("qr", LINK).await;
    assert_eq!(browser.text("pair-toggle").await, "Привязать по номеру телефона");
    browser.click("pair-toggle").await;
    browser.type_into("phone", "12ab").await;
    browser.click("pair-submit").await;
    browser.wait_state("error-INVALID_PHONE", Duration::from_secs(5)).await;
    assert!(browser.text("error-text").await.starts_with("Это не номер телефона"));
    browser.type_into("phone", &format!("+{CODE_PHONE}")).await;
    browser.click("pair-submit").await;
    browser.wait_state("pair_code", LINK).await;
    // Changing one's mind: back to QR codes, then the number again.
    assert_eq!(browser.text("pair-toggle").await, "Сканировать QR-код");
    browser.click("pair-toggle").await;
    browser.wait_state("qr", LINK).await;
    assert_eq!(session(pool, "salon-code").await.pair_code, None);
    browser.click("pair-toggle").await;
    browser.type_into("phone", &format!("+{CODE_PHONE}")).await;
    browser.click("pair-submit").await;
    browser.wait_state("pair_code", LINK).await;
    let shown = browser.text("code").await;
    browser.screenshot("connect-pair-code-ru").await;
    assert_eq!(shown.len(), 9, "ABCD-EFGH: {shown}");
    assert_eq!(session(pool, "salon-code").await.pair_code.as_deref(), Some(shown.replace('-', "").as_str()));
    let (status, body) = server.admin_post(&format!("/admin/pair-code?phone={CODE_PHONE}"), &shown.replace('-', "")).await;
    assert_eq!(status, 200, "the phone could not link with the code on the page: {body}");
    browser.wait_state("connected", LINK).await;
    assert!(browser.text("connected-text").await.contains(&format!("+{CODE_PHONE}")));
    assert_eq!(browser.text("connected-view").await.lines().nth(1), Some("Подключено"));

    // A link past its expiry.
    let key: Vec<u8> =
        sqlx::query_scalar("SELECT value FROM wa.secrets WHERE name = 'connect_link'").fetch_one(pool).await.unwrap();
    let expired = pgwa_worker::http::connect::token::sign(&key, "salon-qr", chrono::Utc::now().timestamp() - 60);
    browser.goto(&format!("http://127.0.0.1:{port}/connect/{expired}")).await;
    browser.wait_state("error-INVALID_TOKEN", Duration::from_secs(10)).await;
    assert_eq!(browser.text("error-text").await, "This link is not valid or has expired. Ask for a new link.");
    browser.screenshot("connect-invalid-token").await;
    browser.close().await;
}
