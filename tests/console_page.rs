//! The operator console in headless Chromium against a real worker on the loopback
//! WhatsApp server: the operator signs in with the admin token, sees the linked
//! session, retries a dead send with a click (and the message reaches the other
//! phone), opens a new number's QR code, which a phone scans off the screen, and sees
//! that session turn connected without reloading. A wrong token is answered on the
//! sign-in form. Screenshots go to target/tmp/screenshots/.

mod common;

use std::time::Duration;

use common::browser::{Browser, free_port, read_qr};
use common::eventually;
use common::loopback::{Worker, arrives, link_by_qr, start_server, wait_status};
use fantoccini::Locator;
use pgwa_testkit::TestDb;
use sqlx::PgPool;

const ADMIN: &str = "console-admin-s3cret";
const SALON: &str = "15550008181";
const CUSTOMER: &str = "15550008282";
const NEWCOMER: &str = "15550008383";
const LINK: Duration = Duration::from_secs(120);
const PAGE: Duration = Duration::from_secs(20);

/// A text from `from` to `to` left dead as if its attempts ran out: queued for later so
/// no worker takes it first, then marked dead by hand (as the owner).
async fn dead_send(pool: &PgPool, from: &str, to: &str, text: &str) -> (i64, String) {
    let (id, message_id): (i64, String) =
        sqlx::query_as("SELECT job_id, message_id FROM wa.send_text($1, $2, $3, run_at => now() + interval '1 day')")
            .bind(from)
            .bind(format!("+{to}"))
            .bind(text)
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query(
        "UPDATE wa.jobs SET state = 'dead', finished_at = now(), delivery = 'failed',
                errors = jsonb_build_array(jsonb_build_object('attempt', 1, 'error', 'no server ack within 30 s (timeout)'))
          WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await
    .unwrap();
    (id, message_id)
}

/// The text of the first element matching `css`, or None while there is none.
async fn css_text(browser: &Browser, css: &str) -> Option<String> {
    let e = browser.client.find(Locator::Css(css)).await.ok()?;
    e.text().await.ok()
}

/// Clicks the first element matching `css`. The console redraws its tables at each
/// refresh, so an element found may be replaced before the click lands: find again.
async fn click_css(browser: &Browser, css: &str) {
    eventually(PAGE, &format!("a click on {css}"), || async {
        let e = browser.client.find(Locator::Css(css)).await.ok()?;
        e.click().await.ok()
    })
    .await
}

/// Waits until the page shows `want` in the first element matching `css`.
async fn shows(browser: &Browser, css: &str, want: &str, within: Duration) {
    eventually(within, &format!("{css} to show {want:?}"), || async {
        css_text(browser, css).await.filter(|t| t.contains(want)).map(|_| ())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_dead_send_and_links_a_number_from_the_console() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let port = free_port();
    let _worker = Worker::spawn_with(
        &db,
        &server,
        &[("PGWA_HTTP__LISTEN", format!("127.0.0.1:{port}")), ("PGWA_HTTP__ADMIN_TOKEN", ADMIN.to_string())],
    );
    link_by_qr(pool, &server, "salon", SALON).await;
    link_by_qr(pool, &server, "customer", CUSTOMER).await;
    let (dead, message_id) = dead_send(pool, "salon", CUSTOMER, "Your booking is confirmed").await;

    let browser = Browser::start_sized(1400, 1000).await;
    let console = format!("http://127.0.0.1:{port}/console");
    browser.goto(&console).await;
    browser.wait_state("signed-out", PAGE).await;

    // A wrong token stays on the sign-in form, with the server's reason.
    browser.type_into("token", "not-the-token").await;
    browser.click("sign-in").await;
    shows(&browser, "#sign-in-error", "wrong admin token", PAGE).await;
    assert_eq!(browser.state().await, "signed-out");

    browser.type_into("token", ADMIN).await;
    browser.click("sign-in").await;
    browser.wait_state("ready", PAGE).await;
    shows(&browser, "tr[data-session='salon'] .badge", "connected", PAGE).await;
    let row = css_text(&browser, "tr[data-session='salon']").await.unwrap();
    assert!(row.contains(&format!("+{SALON}")), "the session's row names its number: {row}");
    shows(&browser, &format!("tr[data-job='{dead}']"), "timeout", PAGE).await;
    browser.screenshot("console-dead-job").await;

    // Retry by a click: the job runs again and the message reaches the customer.
    click_css(&browser, &format!("tr[data-job='{dead}'] button[data-action='retry']")).await;
    shows(&browser, "#notice", &format!("Job {dead}: runs again"), PAGE).await;
    arrives(pool, "customer", &message_id, "Your booking is confirmed").await;
    eventually(LINK, "the retried job to complete", || async {
        let s: String =
            sqlx::query_scalar("SELECT state::text FROM wa.jobs WHERE id = $1").bind(dead).fetch_one(pool).await.unwrap();
        (s == "completed").then_some(())
    })
    .await;
    eventually(PAGE, "the dead job to leave the dead list", || async {
        css_text(&browser, &format!("tr[data-job='{dead}']")).await.is_none().then_some(())
    })
    .await;

    // A new number: its QR code opens from its row, a phone scans it off the screen,
    // and the row turns connected by itself (no reload).
    sqlx::query("SELECT wa.add_session('newcomer')").execute(pool).await.unwrap();
    let qr_button = "tr[data-session='newcomer'] button[data-action='qr']";
    eventually(LINK, "the newcomer's QR button", || async {
        browser.client.find(Locator::Css(qr_button)).await.ok().map(|_| ())
    })
    .await;
    click_css(&browser, qr_button).await;
    let code = eventually(PAGE, "a readable QR code in the dialog", || async {
        let png = browser.element_screenshot("qr-img", "console-qr-code").await;
        read_qr(&png)
    })
    .await;
    assert!(code.starts_with("2@"), "a WhatsApp linking code");
    browser.screenshot("console-qr").await;
    let (status, body) = server.admin_post(&format!("/admin/scan?phone={NEWCOMER}"), &code).await;
    assert_eq!(status, 200, "the phone could not link with the code read off the console: {body}");
    browser.click("qr-close").await;
    wait_status(pool, "newcomer", "connected", LINK).await;
    shows(&browser, "tr[data-session='newcomer'] .badge", "connected", PAGE).await;
    shows(&browser, "tr[data-session='newcomer']", &format!("+{NEWCOMER}"), PAGE).await;
    browser.screenshot("console").await;
    browser.close().await;
}
