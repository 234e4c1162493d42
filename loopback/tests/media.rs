//! Media through the loopback CDN with real whatsapp-rust clients: `media_conn`, the
//! encrypted upload, an image message relayed to another account, and its download
//! and decryption there.

mod common;

use common::{link_new, new_store, start_server};
use whatsapp_rust::UploadOptions;
use whatsapp_rust::download::{DownloadUtils, MediaType};
use whatsapp_rust::media::{ImageOptions, image_message};
use whatsapp_rust::prelude::*;

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
    let (a, _) = link_new(&server, new_store(), "Alice", Some("15550007777")).await;
    let (mut b, _) = link_new(&server, new_store(), "Bob", Some("15550008888")).await;

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
