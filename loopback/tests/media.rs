//! Media through the loopback CDN with real whatsapp-rust clients: `media_conn`, the
//! encrypted upload, an image message relayed to another account, and its download
//! and decryption there.

mod common;

use common::{new_store, start_server};
use pgwa_loopback::{Server, TestClient};
use whatsapp_rust::TokioRuntime;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::download::{DownloadUtils, MediaType};
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse, UreqHttpClient};
use whatsapp_rust::media::{ImageOptions, image_message};
use whatsapp_rust::prelude::*;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::wacore::net::StreamingHttpResponse;
use whatsapp_rust::{UploadOptions, anyhow};

/// whatsapp-rust asks media hosts over https; the loopback CDN has no TLS.
struct PlainHttp(UreqHttpClient);

fn plain(mut request: HttpRequest) -> HttpRequest {
    if let Some(rest) = request.url.strip_prefix("https://127.0.0.1:") {
        request.url = format!("http://127.0.0.1:{rest}");
    }
    request
}

#[whatsapp_rust::async_trait]
impl HttpClient for PlainHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        self.0.execute(plain(request)).await
    }

    fn supports_streaming(&self) -> bool {
        true
    }

    fn execute_streaming(&self, request: HttpRequest) -> anyhow::Result<StreamingHttpResponse> {
        self.0.execute_streaming(plain(request))
    }
}

/// Like `common::link_new`, with the plain-http client.
async fn link(server: &Server, name: &str, phone: &str) -> TestClient {
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let bot = Bot::builder()
        .with_backend_arc(new_store())
        .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(server.ws_url()))
        .with_http_client(PlainHttp(UreqHttpClient::new()))
        .with_runtime(TokioRuntime)
        .with_version(pgwa_loopback::test_client::VERSION)
        .with_push_name(name)
        .skip_history_sync()
        .on_event(move |event, _client| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        })
        .build()
        .await
        .expect("whatsapp-rust client builds");
    let mut client = TestClient { handle: bot.spawn(), events };
    let qr = client
        .wait_for("PairingQrCode", 20, |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await;
    let (status, body) = server.admin_post(&format!("/admin/scan?phone={phone}"), &qr).await;
    assert_eq!(status, 200, "admin scan failed: {body}");
    client.wait_for("Connected after pairing", 60, |e| matches!(e, Event::Connected(_)).then_some(())).await;
    client
}

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49,
    0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_uploaded_relayed_and_downloaded() {
    let server = start_server().await;
    let a = link(&server, "Alice", "15550007777").await;
    let mut b = link(&server, "Bob", "15550008888").await;

    // media_conn: our auth token and this server as the one host.
    let conn = a.client().refresh_media_conn(true).await.expect("media_conn answered");
    assert_eq!(conn.auth, server.shared.media.auth);
    assert_eq!(conn.hosts.iter().map(|h| h.hostname.clone()).collect::<Vec<_>>(), [server.addr.to_string()]);

    let upload = a.client().upload(PNG.to_vec(), MediaType::Image, UploadOptions::default()).await.expect("A uploads");
    assert_eq!(upload.url, format!("https://{}{}", server.addr, upload.direct_path));
    assert_eq!(upload.file_length, PNG.len() as u64);
    // The server holds ciphertext only; the media key the sender keeps opens it.
    let blob = server.shared.media.blob(&upload.direct_path).expect("the server stored the upload");
    assert_eq!(blob.kind, "image");
    assert_ne!(blob.bytes, PNG);
    let opened = DownloadUtils::verify_and_decrypt(&blob.bytes, &upload.media_key, MediaType::Image).expect("decrypts");
    assert_eq!(opened, PNG);

    let message = image_message(
        upload,
        ImageOptions { caption: Some("a pixel".into()), mimetype: Some("image/png".into()), ..Default::default() },
    );
    let to: Jid = "15550008888@s.whatsapp.net".parse().unwrap();
    let id = a.client().send_message(to, message).await.expect("A sends the image").message_id;
    let image = b
        .wait_for("B receives the image", 30, |e| match e {
            Event::Messages(batch) => {
                batch.iter().find(|m| m.info.id == id).and_then(|m| m.message.image_message.as_option().cloned())
            }
            _ => None,
        })
        .await;
    assert_eq!(image.caption.as_deref(), Some("a pixel"));
    let downloaded = b.client().download(&image).await.expect("B downloads the image");
    assert_eq!(downloaded, PNG);
    assert_eq!(server.shared.media.count(), 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_need_the_auth_token_and_a_matching_hash() {
    let server = start_server().await;
    let (status, _) = server.admin_post("/mms/image/abc?auth=wrong&token=abc", "x").await;
    assert_eq!(status, 401, "a wrong auth token is refused as an auth error (the client refreshes media_conn)");
    let auth = &server.shared.media.auth;
    let (status, body) = server.admin_post(&format!("/mms/image/abc?auth={auth}&token=abc"), "x").await;
    assert_eq!(status, 400, "the token must be the body's SHA-256: {body}");
    let (status, _) = server.admin_post(&format!("/v/image/1_x.enc?auth={auth}"), "").await;
    assert_eq!(status, 405, "downloads are GETs");
    assert_eq!(server.shared.media.count(), 0);
}
