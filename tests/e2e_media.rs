//! End to end, media: a `pgwa run` worker (whatsapp-rust backend) sends an image and a
//! document with `wa.send_media` through the loopback WhatsApp Web server, which plays
//! WhatsApp's CDN too. The sender's client uploads the encrypted file, the message is
//! relayed, and the recipient session stores kind and media metadata in wa.inbox. The
//! test then opens the bytes the server stored with the media key from that inbox row
//! (whatsapp-rust's own media decryption): the file that arrives is the file sent. See
//! docs/loopback.md.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::loopback::{Notifications, Worker, link_by_qr, session, start_server};
use common::media_files;
use pgwa_testkit::TestDb;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use whatsapp_rust::download::{DownloadUtils, MediaType};
use whatsapp_rust::http::{HttpClient, HttpRequest, UreqHttpClient};

const A_PHONE: &str = "15550001212";
const B_PHONE: &str = "15550003434";

/// A small valid PNG (3x2, RGBA).
fn png() -> Vec<u8> {
    let pixels: Vec<u8> = (0..3 * 2 * 4).map(|i| (i * 37 % 256) as u8).collect();
    let img = image::RgbaImage::from_raw(3, 2, pixels).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn b64(media: &Value, field: &str) -> Vec<u8> {
    B64.decode(media[field].as_str().unwrap_or_else(|| panic!("media.{field} missing: {media}"))).unwrap()
}

/// Waits for `message_id` in bob's inbox: (kind, text, media).
async fn inbox_row(pool: &PgPool, message_id: &str) -> (String, Option<String>, Value) {
    common::eventually(Duration::from_secs(60), "the media message in bob's wa.inbox", || async {
        sqlx::query_as("SELECT kind, text, media FROM wa.inbox WHERE session_id = 'bob' AND message_id = $1")
            .bind(message_id)
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await
}

/// A's send job completes on the server ack and the row becomes delivered on B's receipt.
async fn wait_delivered(pool: &PgPool, job_id: i64) {
    let (state, status, last_error): (String, String, Option<String>) =
        common::eventually(Duration::from_secs(60), "the media send to be delivered", || async {
            let r: (String, String, Option<String>) =
                sqlx::query_as("SELECT job_state::text, status::text, last_error FROM wa.outbound WHERE job_id = $1")
                    .bind(job_id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert!(r.0 != "dead", "the media send died: {:?}", r.2);
            (r.0 == "completed" && r.1 == "delivered").then_some(r)
        })
        .await;
    assert_eq!((state.as_str(), status.as_str()), ("completed", "delivered"), "{last_error:?}");
}

/// The ciphertext the loopback CDN holds for `media`, checked against its hashes and
/// opened with its media key; also fetched over the server's download route.
async fn open_stored(server: &pgwa_loopback::Server, media: &Value, media_type: MediaType) -> Vec<u8> {
    let direct_path = media["direct_path"].as_str().unwrap_or_else(|| panic!("no direct_path: {media}"));
    let blob = server.shared.media.blob(direct_path).unwrap_or_else(|| panic!("the server holds no file at {direct_path}"));
    assert_eq!(Sha256::digest(&blob.bytes).to_vec(), b64(media, "file_enc_sha256"), "file_enc_sha256 is the stored file's");

    let url = format!("http://{}{direct_path}?auth={}", server.addr, server.shared.media.auth);
    let fetched = UreqHttpClient::new().execute(HttpRequest::get(url)).await.expect("GET the direct path");
    assert_eq!(fetched.status_code, 200);
    assert_eq!(fetched.body, blob.bytes, "the download route serves the stored bytes");

    let plain = DownloadUtils::verify_and_decrypt(&blob.bytes, &b64(media, "media_key"), media_type).expect("MAC and decryption");
    assert_eq!(Sha256::digest(&plain).to_vec(), b64(media, "file_sha256"), "file_sha256 is the plaintext's");
    plain
}

/// A loopback HTTP server answering every request with the test's PNG, counting them.
struct FileServer {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FileServer {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let body = png();
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            }
        });
        Self { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A sends an image (bytes, with a caption) and a document to B; B's inbox rows carry
/// kind, caption and media metadata, and the files the server stored open with the
/// media keys in those rows to exactly the bytes A sent. Then an image from an allowed
/// URL arrives, and one from a URL the worker's configuration does not allow dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_and_a_document_arrive_and_open_with_the_inbox_media_key() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let notes = Notifications::listen(&db.url, &["wa_inbox"]).await;
    // Media URLs: the worker fetches only public addresses unless allowed, so this one
    // loopback file server is listed in its configuration, and nothing else.
    let cdn = FileServer::start().await;
    let elsewhere = FileServer::start().await;
    let allow = format!("[\"127.0.0.1:{}\"]", cdn.port);
    let _worker = Worker::spawn_with(&db, &server, &[("PGWA_WHATSAPP__RUST__MEDIA_FETCH_ALLOW", allow)]);
    link_by_qr(pool, &server, "alice", A_PHONE).await;
    link_by_qr(pool, &server, "bob", B_PHONE).await;

    // Image.
    let image = png();
    let (job_id, message_id): (i64, String) = sqlx::query_as(
        "SELECT job_id, message_id FROM wa.send_media('alice', $1, 'image', data => $2, caption => 'a small picture')",
    )
    .bind(B_PHONE)
    .bind(&image)
    .fetch_one(pool)
    .await
    .unwrap();
    let (kind, text, media) = inbox_row(pool, &message_id).await;
    assert_eq!(kind, "image");
    assert_eq!(text.as_deref(), Some("a small picture"), "the caption is the row's text");
    assert_eq!(media["mimetype"], "image/png", "{media}");
    assert_eq!(media["caption"], "a small picture");
    assert_eq!(media["file_length"], image.len(), "{media}");
    assert!(media["direct_path"].as_str().is_some_and(|p| p.starts_with("/v/image/")), "{media}");
    assert_eq!(media["url"], format!("https://{}{}", server.addr, media["direct_path"].as_str().unwrap()));
    assert_eq!(b64(&media, "media_key").len(), 32);
    notes
        .wait(Duration::from_secs(5), "wa_inbox", "the wa_inbox NOTIFY", |p| p["session"] == "bob" && p["kind"] == "image")
        .await;
    wait_delivered(pool, job_id).await;
    assert_eq!(open_stored(&server, &media, MediaType::Image).await, image, "B's media key opens A's image");

    // Document.
    let document = b"quarterly numbers\n1,2,3\n".repeat(50);
    let (job_id, message_id): (i64, String) = sqlx::query_as(
        "SELECT job_id, message_id FROM wa.send_media('alice', $1, 'document', data => $2,
                mimetype => 'text/csv', file_name => 'numbers.csv')",
    )
    .bind(B_PHONE)
    .bind(&document)
    .fetch_one(pool)
    .await
    .unwrap();
    let (kind, _, media) = inbox_row(pool, &message_id).await;
    assert_eq!(kind, "document");
    assert_eq!((media["mimetype"].as_str(), media["file_name"].as_str()), (Some("text/csv"), Some("numbers.csv")), "{media}");
    assert!(media["direct_path"].as_str().is_some_and(|p| p.starts_with("/v/document/")), "{media}");
    wait_delivered(pool, job_id).await;
    assert_eq!(open_stored(&server, &media, MediaType::Document).await, document, "B's media key opens A's document");

    // An image from the allowed URL arrives as the bytes the file server holds.
    let (job_id, message_id): (i64, String) =
        sqlx::query_as("SELECT job_id, message_id FROM wa.send_media('alice', $1, 'image', url => $2)")
            .bind(B_PHONE)
            .bind(format!("http://127.0.0.1:{}/pic.png?sig=abc", cdn.port))
            .fetch_one(pool)
            .await
            .unwrap();
    let (kind, _, media) = inbox_row(pool, &message_id).await;
    assert_eq!(kind, "image");
    wait_delivered(pool, job_id).await;
    assert_eq!(open_stored(&server, &media, MediaType::Image).await, image, "the fetched image arrives");
    assert_eq!(cdn.hits(), 1);

    // Another loopback port is not allowed: the send dies at once, nothing is fetched or
    // uploaded, and the error names payload.url without the URL's query.
    let (job_id,): (i64,) = sqlx::query_as("SELECT job_id FROM wa.send_media('alice', $1, 'image', url => $2)")
        .bind(B_PHONE)
        .bind(format!("http://127.0.0.1:{}/latest/meta-data?token=SECRET", elsewhere.port))
        .fetch_one(pool)
        .await
        .unwrap();
    let error: String = common::eventually(Duration::from_secs(60), "the refused media send to die", || async {
        let r: (String, Option<String>) = sqlx::query_as("SELECT job_state::text, last_error FROM wa.outbound WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(pool)
            .await
            .unwrap();
        (r.0 == "dead").then_some(r.1.unwrap_or_default())
    })
    .await;
    assert!(error.contains("payload.url") && error.contains("loopback") && !error.contains("SECRET"), "{error}");
    assert_eq!(elsewhere.hits(), 0, "the refused address was never connected to");

    assert_eq!(server.shared.media.count(), 3, "one upload per delivered send");
    for id in ["alice", "bob"] {
        assert_eq!(session(pool, id).await.last_error, None, "{id} recorded an error");
    }
}

/// A sends a video, a voice note and a sticker to B: B's rows carry kind, length,
/// waveform and size, and each stored file opens with B's media key to the bytes sent
/// (video and voice on the server's video and audio paths, the sticker on the image one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_a_voice_note_and_a_sticker_arrive_and_open() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, "alice", A_PHONE).await;
    link_by_qr(pool, &server, "bob", B_PHONE).await;

    let send = |kind: &'static str, data: Vec<u8>, extra: &'static str| async move {
        let sql = format!("SELECT job_id, message_id FROM wa.send_media('alice', $1, '{kind}', data => $2{extra})");
        let ids: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(B_PHONE).bind(data).fetch_one(pool).await.unwrap();
        ids
    };

    let video = media_files::mp4();
    let (job, id) = send("video", video.clone(), ", caption => 'the salon', seconds => 12").await;
    let (kind, text, media) = inbox_row(pool, &id).await;
    assert_eq!((kind.as_str(), text.as_deref(), media["seconds"].as_u64()), ("video", Some("the salon"), Some(12)), "{media}");
    assert!(media["direct_path"].as_str().is_some_and(|p| p.starts_with("/v/video/")), "{media}");
    wait_delivered(pool, job).await;
    assert_eq!(open_stored(&server, &media, MediaType::Video).await, video);

    // No length given: the worker reads it from the Ogg file.
    let voice = media_files::ogg_opus(4);
    let (job, id) = send("voice", voice.clone(), ", waveform => '\\x00326400'::bytea").await;
    let (kind, _, media) = inbox_row(pool, &id).await;
    assert_eq!((kind.as_str(), media["ptt"].as_bool(), media["seconds"].as_u64()), ("voice", Some(true), Some(4)), "{media}");
    assert_eq!((media["waveform"].as_str(), media["mimetype"].as_str()), (Some("ADJkAA=="), Some("audio/ogg; codecs=opus")));
    assert!(media["direct_path"].as_str().is_some_and(|p| p.starts_with("/v/audio/")), "{media}");
    wait_delivered(pool, job).await;
    assert_eq!(open_stored(&server, &media, MediaType::Audio).await, voice);

    let sticker = media_files::webp(512, 512);
    let (job, id) = send("sticker", sticker.clone(), "").await;
    let (kind, _, media) = inbox_row(pool, &id).await;
    assert_eq!((kind.as_str(), media["width"].as_u64(), media["is_animated"].as_bool()), ("sticker", Some(512), Some(false)));
    assert!(media["direct_path"].as_str().is_some_and(|p| p.starts_with("/v/image/")), "{media}");
    wait_delivered(pool, job).await;
    assert_eq!(open_stored(&server, &media, MediaType::Sticker).await, sticker);
}

/// Bob's file of `message_id` as the worker stored it: (media_status, wa.media bytes).
async fn stored_file(pool: &PgPool, message_id: &str, status: &str) -> (i64, Option<Vec<u8>>) {
    common::eventually(Duration::from_secs(60), &format!("bob's file {status}"), || async {
        let r: Option<(i64, Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT i.id, i.media_status, m.data FROM wa.inbox i LEFT JOIN wa.media m ON m.inbox_id = i.id
              WHERE i.session_id = 'bob' AND i.message_id = $1",
        )
        .bind(message_id)
        .fetch_optional(pool)
        .await
        .unwrap();
        r.filter(|r| r.1.as_deref() == Some(status)).map(|r| (r.0, r.2))
    })
    .await
}

async fn send_file(pool: &PgPool, kind: &str, data: &[u8]) -> String {
    sqlx::query_scalar("SELECT message_id FROM wa.send_media('alice', $1, $2, data => $3, mimetype => 'text/csv')")
        .bind(B_PHONE)
        .bind(kind)
        .bind(data)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn send_image(pool: &PgPool, image: &[u8]) -> String {
    sqlx::query_scalar("SELECT message_id FROM wa.send_media('alice', $1, 'image', data => $2)")
        .bind(B_PHONE)
        .bind(image)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// With wa.policy.media_download = 'postgres', the worker downloads each file bob
/// receives, checks it and keeps it in wa.media; a file over media_max_bytes is marked
/// too_large and not fetched; with the policy off, wa.download_media fetches one on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_files_are_kept_in_postgres_when_the_policy_says_so() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    sqlx::query("UPDATE wa.policy SET media_download = 'postgres', media_max_bytes = 4000").execute(pool).await.unwrap();
    let _worker = Worker::spawn(&db, &server);
    link_by_qr(pool, &server, "alice", A_PHONE).await;
    link_by_qr(pool, &server, "bob", B_PHONE).await;

    let image = png();
    let message_id = send_image(pool, &image).await;
    let (id, data) = stored_file(pool, &message_id, "stored").await;
    assert_eq!(data.as_deref(), Some(&image[..]), "the image, as sent");
    let (size, sha, mimetype): (i64, Vec<u8>, Option<String>) =
        sqlx::query_as("SELECT size, sha256, mimetype FROM wa.media WHERE inbox_id = $1").bind(id).fetch_one(pool).await.unwrap();
    assert_eq!((size, mimetype.as_deref()), (image.len() as i64, Some("image/png")));
    assert_eq!(sha, <sha2::Sha256 as sha2::Digest>::digest(&image).to_vec());

    let document = b"day,slots\nsat,3\n".repeat(20);
    let (_, data) = stored_file(pool, &send_file(pool, "document", &document).await, "stored").await;
    assert_eq!(data.as_deref(), Some(&document[..]));

    let big = b"x".repeat(5000);
    let (_, data) = stored_file(pool, &send_file(pool, "document", &big).await, "too_large").await;
    assert_eq!(data, None, "a file over the limit is not kept");

    // Policy off: nothing is fetched by itself; wa.download_media fetches on demand.
    sqlx::query("UPDATE wa.policy SET media_download = 'off'").execute(pool).await.unwrap();
    let later = send_file(pool, "document", &document).await;
    let (_, _, media) = inbox_row(pool, &later).await;
    assert!(media["direct_path"].is_string());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE kind = 'media_download' AND payload->>'inbox_id' = (SELECT id::text FROM wa.inbox WHERE message_id = $1)")
        .bind(&later)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "with the policy off, no download is queued");
    let id: i64 = sqlx::query_scalar("SELECT id FROM wa.inbox WHERE session_id = 'bob' AND message_id = $1")
        .bind(&later)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query("SELECT wa.download_media('bob', $1)").bind(id).execute(pool).await.unwrap();
    let (_, data) = stored_file(pool, &later, "stored").await;
    assert_eq!(data.as_deref(), Some(&document[..]));
    // Another session's row, or a text: refused by name.
    let (code, msg) = common::fails(pool, &format!("SELECT wa.download_media('alice', {id})")).await;
    assert_eq!(code, "WA013", "{msg}");
    assert!(msg.starts_with("inbox_id:"), "{msg}");
}

/// With wa.policy.media_download = 's3', the worker puts each file bob receives in the
/// object store its configuration names (a local S3 server here), and wa.media says
/// where, with its size and SHA-256 but not its bytes. The object holds the file as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_files_go_to_an_s3_store_when_the_policy_says_so() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let server = start_server().await;
    let s3 = common::s3::S3Server::start().await;
    sqlx::query("UPDATE wa.policy SET media_download = 's3'").execute(pool).await.unwrap();
    let _worker = Worker::spawn_with(&db, &server, &s3.worker_env());
    link_by_qr(pool, &server, "alice", A_PHONE).await;
    link_by_qr(pool, &server, "bob", B_PHONE).await;

    let image = png();
    let message_id = send_image(pool, &image).await;
    let (id, data) = stored_file(pool, &message_id, "stored").await;
    assert_eq!(data, None, "the bytes are in the store, not in Postgres");
    let (storage, location, size, sha): (String, Option<String>, i64, Vec<u8>) =
        sqlx::query_as("SELECT storage, location, size, sha256 FROM wa.media WHERE inbox_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    let location = location.expect("wa.media says where the file is");
    assert_eq!(storage, "s3");
    assert_eq!(location, format!("s3://{}/inbound/bob/{id}", common::s3::BUCKET));
    assert_eq!((size, sha), (image.len() as i64, <sha2::Sha256 as sha2::Digest>::digest(&image).to_vec()));
    assert_eq!(s3.read(&location).await, image, "the object is the image as sent");
}
