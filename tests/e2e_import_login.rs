//! End to end: a Baileys session imported with pgwa's importer logs in to the loopback
//! WhatsApp Web server with a real `pgwa run` worker, without a QR code or a pairing
//! code, and works as a device: it sends a message a QR-linked session receives.
//!
//! The loopback server only knows devices that linked through it, so the test first
//! tells it about the imported one (`POST /admin/adopt`, `pgwa_loopback::adopt`) with the
//! keys of the fixture's creds.json, as the phone would have linked it before. See
//! docs/loopback.md.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::loopback::{Notifications, Worker, link_by_qr, session, start_server, wait_status};
use pgwa_testkit::TestDb;
use serde_json::{Value, json};
use whatsapp_rust::waproto::whatsapp as wa;

const AURORA_PHONE: &str = "15551230000";
const AURORA_LID: &str = "100000012340000";
const AURORA_DEVICE: u16 = 21;
const B_PHONE: &str = "15550009999";

/// A login on two cores with a debug build: generous, but bounded.
const LOGIN: Duration = Duration::from_secs(120);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/baileys/linked")
}

fn bytes(creds: &Value, pointer: &str) -> Vec<u8> {
    let v = creds.pointer(pointer).unwrap_or_else(|| panic!("creds.json has no {pointer}"));
    pgwa_pg::authdoc::revive(v).unwrap_or_else(|e| panic!("creds.json {pointer}: {e:?}"))
}

/// What the phone knew of the device it linked, from Baileys' creds.json: the user and
/// device of `me.id`/`me.lid`, the noise key it logs in with, its Signal identity and
/// signed prekey, and its ADV identity (`account`), protobuf-encoded as WhatsApp has it.
fn adopted_device(creds: &Value) -> Value {
    let me_id = creds["me"]["id"].as_str().unwrap();
    let me_lid = creds["me"]["lid"].as_str().unwrap();
    let (user, device) = me_id.split_once('@').unwrap().0.split_once(':').unwrap();
    let lid_user = me_lid.split_once(':').unwrap().0;
    assert_eq!((user, device, lid_user), (AURORA_PHONE, AURORA_DEVICE.to_string().as_str(), AURORA_LID));
    let account = wa::ADVSignedDeviceIdentity {
        details: Some(bytes(creds, "/account/details")),
        account_signature_key: Some(bytes(creds, "/account/accountSignatureKey")),
        account_signature: Some(bytes(creds, "/account/accountSignature")),
        device_signature: Some(bytes(creds, "/account/deviceSignature")),
    };
    json!({
        "phone": user,
        "lid": lid_user,
        "device": AURORA_DEVICE,
        "push_name": creds["me"]["name"],
        // Baileys keeps X25519 public keys raw (32 bytes); the server also takes the
        // 33-byte 0x05-prefixed form.
        "noise_static": bytes(creds, "/noiseKey/public"),
        "identity": bytes(creds, "/signedIdentityKey/public"),
        "registration_id": creds["registrationId"],
        "signed_prekey_id": creds["signedPreKey"]["keyId"],
        "signed_prekey": bytes(creds, "/signedPreKey/keyPair/public"),
        "signed_prekey_sig": bytes(creds, "/signedPreKey/signature"),
        "signed_identity": whatsapp_rust::waproto::codec::adv_signed_device_identity_to_vec(&account),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_baileys_session_logs_in_without_a_qr_and_sends() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let notes = Notifications::listen(&db.url, &["wa_link", "wa_inbox"]).await;

    let summary = pgwa_pg::import::import_baileys_folder(pool, "aurora", &fixture(), false).await.expect("the Baileys import");
    assert_eq!(summary.imported["creds"], 1);
    let imported = session(pool, "aurora").await;
    assert_eq!((imported.status.as_str(), imported.qr_count), ("stopped", 0), "imported, not started: {imported:?}");
    assert_eq!(imported.phone.as_deref(), Some(AURORA_PHONE), "the import records who the session is");
    assert_eq!(imported.jid.as_deref(), Some("15551230000:21@s.whatsapp.net"));
    assert_eq!(imported.lid.as_deref(), Some("100000012340000:21@lid"));

    let server = start_server().await;
    let creds: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("creds.json")).unwrap()).unwrap();
    let (status, body) = server.admin_post("/admin/adopt", &adopted_device(&creds).to_string()).await;
    assert_eq!(status, 200, "the server refused to adopt the imported device: {body}");
    let adopted: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(adopted["jid"], "15551230000:21@s.whatsapp.net");
    assert_eq!(adopted["lid"], "100000012340000:21@lid");
    let stats = &server.shared.stats;
    assert_eq!(stats.logins.load(Relaxed), 0);

    let _worker = Worker::spawn(&db, &server);
    sqlx::query("SELECT wa.start_session('aurora')").execute(pool).await.unwrap();
    let row = wait_status(pool, "aurora", "connected", LOGIN).await;

    // Logged in as the imported device: no QR, no pairing code, no new device.
    assert_eq!(row.phone.as_deref(), Some(AURORA_PHONE));
    assert_eq!(row.jid.as_deref(), Some("15551230000:21@s.whatsapp.net"));
    assert_eq!(row.lid.as_deref(), Some("100000012340000:21@lid"));
    assert_eq!(row.qr_count, 0, "an imported session shows no QR");
    assert!(row.qr_code.is_none() && row.pair_code.is_none(), "no QR or pairing code published: {row:?}");
    assert!(row.last_error.is_none(), "no error recorded: {:?}", row.last_error);
    assert!(notes.on("wa_link").is_empty(), "no wa_link NOTIFY: {:?}", notes.on("wa_link"));
    assert!(stats.logins.load(Relaxed) >= 1, "the server counted a login");
    assert_eq!(stats.refused_logins.load(Relaxed), 0, "no login was refused");
    let handshakes = stats.xx_handshakes.load(Relaxed) + stats.ik_handshakes.load(Relaxed);
    assert_eq!(handshakes, stats.logins.load(Relaxed), "every connection was a login, none a registration");
    {
        let inner = server.shared.lock();
        assert!(inner.pending.is_empty(), "no client asked to be linked (registration)");
        let account = inner.dir.account(AURORA_PHONE).unwrap();
        assert_eq!(account.devices.keys().copied().collect::<Vec<_>>(), [AURORA_DEVICE], "no new device was linked");
        assert!(inner.online.contains_key(&(AURORA_PHONE.to_string(), AURORA_DEVICE)), "the imported device is online");
        let keys = &account.devices[&AURORA_DEVICE].keys;
        assert_eq!(keys.identity.as_slice(), bytes(&creds, "/signedIdentityKey/public"), "the same Signal identity");
    }

    common::eventually(Duration::from_secs(30), "the imported device to upload one-time prekeys", || async {
        let inner = server.shared.lock();
        let n = inner.dir.device(AURORA_PHONE, AURORA_DEVICE).map_or(0, |d| d.keys.prekeys.len());
        (n > 0).then_some(())
    })
    .await;

    // It works as a device: a message to a QR-linked session arrives in its inbox.
    link_by_qr(pool, &server, "b", B_PHONE).await;
    let logins_before_send = stats.logins.load(Relaxed);
    let (job_id, message_id): (i64, String) = sqlx::query_as("SELECT job_id, message_id FROM wa.send_text('aurora', $1, 'hi')")
        .bind(format!("+{B_PHONE}"))
        .fetch_one(pool)
        .await
        .unwrap();
    let (chat, sender, text): (String, String, Option<String>) =
        common::eventually(Duration::from_secs(60), "aurora's message in b's wa.inbox", || async {
            sqlx::query_as("SELECT chat, sender, text FROM wa.inbox WHERE session_id = 'b' AND message_id = $1")
                .bind(&message_id)
                .fetch_optional(pool)
                .await
                .unwrap()
        })
        .await;
    assert_eq!(text.as_deref(), Some("hi"));
    assert_eq!(chat, format!("{AURORA_PHONE}@s.whatsapp.net"), "a 1:1 chat is the sender's number");
    assert!(sender.starts_with(AURORA_PHONE), "sent by the imported account: {sender}");
    notes.wait(Duration::from_secs(5), "wa_inbox", "b's wa_inbox NOTIFY", |p| p["session"] == "b").await;
    common::eventually(Duration::from_secs(30), "aurora's send to be delivered", || async {
        let status: String = sqlx::query_scalar("SELECT status::text FROM wa.outbound WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(pool)
            .await
            .unwrap();
        (status == "delivered").then_some(())
    })
    .await;
    let aurora = session(pool, "aurora").await;
    assert_eq!((aurora.status.as_str(), aurora.qr_count), ("connected", 0), "still the imported device: {aurora:?}");
    assert_eq!(stats.logins.load(Relaxed), logins_before_send, "no reconnect while sending");
    assert_eq!(stats.refused_logins.load(Relaxed), 0);
}
