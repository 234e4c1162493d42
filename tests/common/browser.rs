//! Headless Chromium (Debian's chromium and chromium-driver, which tests/setup.sh
//! installs) driven through chromedriver's WebDriver with fantoccini. Screenshots go to
//! `target/tmp/screenshots/` as the tests' artifacts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::eventually;

pub struct Browser {
    driver: Child,
    pub client: Client,
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// A phone-sized window (the connect page's reader).
    pub async fn start() -> Self {
        Self::start_sized(600, 900).await
    }

    /// A window of `width` x `height` CSS pixels.
    pub async fn start_sized(width: u32, height: u32) -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (bash tests/setup.sh installs chromium-driver)");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}"), "--hide-scrollbars"],
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let client = eventually(Duration::from_secs(30), "chromedriver to start a browser", || {
            let (caps, url) = (caps.clone(), url.clone());
            async move {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                ClientBuilder::new(connector).capabilities(caps).connect(&url).await.ok()
            }
        })
        .await;
        Self { driver, client }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The page's `#app[data-state]`.
    pub async fn state(&self) -> String {
        let v = self.client.execute("return document.getElementById('app').getAttribute('data-state')", vec![]).await;
        v.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// Waits for `#app[data-state] = state`, failing early on an error state not asked for.
    pub async fn wait_state(&self, state: &str, within: Duration) {
        eventually(within, &format!("the page to show {state}"), || async {
            let now = self.state().await;
            if now != state && now.starts_with("error-") && !state.starts_with("error-") {
                let text = self.text("error-text").await;
                self.screenshot(&format!("failed-waiting-for-{state}")).await;
                panic!(
                    "the page shows {now} ({text}) while waiting for {state}; see the screenshot in {}",
                    screenshots().display()
                );
            }
            (now == state).then_some(())
        })
        .await
    }

    pub async fn text(&self, id: &str) -> String {
        let e = self.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
        e.text().await.unwrap_or_default()
    }

    pub async fn click(&self, id: &str) {
        self.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}")).click().await.unwrap();
    }

    /// Replaces what input `#id` holds with `text`, typed.
    pub async fn type_into(&self, id: &str, text: &str) {
        let e = self.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// A PNG of the whole window, saved as `<name>.png` among the test artifacts.
    pub async fn screenshot(&self, name: &str) -> Vec<u8> {
        let png = self.client.screenshot().await.expect("a screenshot");
        save(name, &png);
        png
    }

    /// A PNG of element `#id`, saved as `<name>.png`.
    pub async fn element_screenshot(&self, id: &str, name: &str) -> Vec<u8> {
        let e = self.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
        let png = e.screenshot().await.expect("an element screenshot");
        save(name, &png);
        png
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

pub fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

fn save(name: &str, png: &[u8]) {
    let dir = screenshots();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The text of the QR code in a PNG, as a phone's camera would read it.
pub fn read_qr(png: &[u8]) -> Option<String> {
    let img = image::load_from_memory(png).ok()?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    grids.first()?.decode().ok().map(|(_, text)| text)
}
