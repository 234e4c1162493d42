//! Baileys import from a useMultiFileAuthState folder and from a table of rows, on
//! fixtures written in Baileys' own formats (tests/fixtures/baileys/generate.py).

use std::path::{Path, PathBuf};

use pgwa_pg::import::{SqlSource, import_baileys_folder, import_baileys_sql};
use pgwa_pg::keys::PgBackend;
use pgwa_testkit::TestDb;
use serde_json::Value;
use whatsapp_rust::wacore::store::traits::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/baileys").join(name)
}

fn creds_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("linked/creds.json")).unwrap()).unwrap()
}

async fn count(pool: &sqlx::PgPool, table: &str, session: &str) -> i64 {
    pgwa_testkit::session_rows(pool, table, session).await.unwrap()
}

/// What a correct import of the `linked` fixture leaves in the store.
async fn assert_linked_imported(pool: &sqlx::PgPool, session: &str) {
    let b = PgBackend::offline(pool.clone(), session);
    let d = b.load().await.unwrap().expect("device");
    let creds = creds_json();
    assert_eq!(d.pn.as_ref().unwrap().to_string(), "15551230000:21@s.whatsapp.net");
    assert_eq!(d.lid.as_ref().unwrap().to_string(), "100000012340000:21@lid");
    assert_eq!(d.push_name, "Salon Aurora");
    assert_eq!(d.registration_id as u64, creds["registrationId"].as_u64().unwrap());
    let noise_pub = pgwa_pg::authdoc::revive(&creds["noiseKey"]["public"]).unwrap();
    assert_eq!(d.noise_key.public_key.public_key_bytes(), noise_pub.as_slice());
    assert_eq!(d.adv_secret_key.to_vec(), pgwa_pg::authdoc::revive(&creds["advSecretKey"]).unwrap());
    let details = pgwa_pg::authdoc::revive(&creds["account"]["details"]).unwrap();
    assert_eq!(d.account.as_ref().unwrap().details.as_deref(), Some(details.as_slice()));
    assert_eq!((d.next_pre_key_id, d.first_unupload_pre_key_id, d.signed_pre_key_id), (6, 4, 1));

    assert_eq!(count(pool, "signal_prekeys", session).await, 5);
    let uploaded: Vec<i64> =
        sqlx::query_scalar("SELECT prekey_id FROM wa.signal_prekeys WHERE session_id = $1 AND uploaded ORDER BY 1")
            .bind(session)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(uploaded, [1, 2, 3], "ids below firstUnuploadedPreKeyId are on the server");
    let rec = b.load_prekey(2).await.unwrap().unwrap();
    let parsed = whatsapp_rust::wacore::libsignal::protocol::PreKeyRecord::deserialize(&rec).unwrap();
    assert_eq!(u32::from(parsed.id().unwrap()), 2);

    let key = b.get_sync_key(&[0, 0, 0xfc, 0xff, 0x9d, 0x18]).await.unwrap().expect("key id with '/' in its file name");
    assert_eq!((key.key_data.len(), key.timestamp), (32, 1_731_000_000_000));
    assert!(!key.fingerprint.is_empty());
    assert!(b.get_sync_key(&[0, 0, 0, 0, 0x9d, 0x17]).await.unwrap().is_some());

    assert_eq!(b.get_lid_mapping("100000012340001").await.unwrap().unwrap().phone_number, "15551230001");
    assert_eq!(b.get_pn_mapping("15551230002").await.unwrap().unwrap().lid, "100000012340002");
    assert_eq!(b.get_all_lid_mappings().await.unwrap().len(), 2, "forward and _reverse are one mapping");
}

#[tokio::test]
async fn folder_import_dry_run_then_real() {
    let db = TestDb::new().await.unwrap();
    let dry = import_baileys_folder(&db.pool, "aurora", &fixture("linked"), true).await.unwrap();
    assert!(dry.dry_run && dry.session_created);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM wa.sessions WHERE id = 'aurora')").fetch_one(&db.pool).await.unwrap();
    assert!(!exists, "a dry run writes nothing, not even the session row");

    let s = import_baileys_folder(&db.pool, "aurora", &fixture("linked"), false).await.unwrap();
    assert_eq!(s.imported["creds"], 1);
    assert_eq!(s.imported["pre-key"], 5);
    assert_eq!(s.imported["app-state-sync-key"], 2);
    assert_eq!(s.imported["lid-mapping"], 2);
    let skipped: Vec<&str> = s.skipped.iter().map(|(w, _)| w.as_str()).collect();
    for f in [
        "session-15551230001.0.json",
        "sender-key-120363000000000001@g.us--15551230001--0.json",
        "sender-key-memory-120363000000000001@g.us.json",
        "app-state-sync-version-regular.json",
        "creds.json signalIdentities",
    ] {
        assert!(skipped.contains(&f), "{f} should be skipped with a reason: {skipped:?}");
    }
    assert!(s.skipped.iter().all(|(_, why)| !why.is_empty()));
    assert_eq!(dry.imported, s.imported, "the dry run reports what the real run does");
    let text = s.to_string();
    assert!(text.contains("aurora") && text.contains("pre-key: 5"), "{text}");
    assert_linked_imported(&db.pool, "aurora").await;

    // Importing again would overwrite credentials: refused, nothing changed.
    let before: Value =
        sqlx::query_scalar("SELECT creds FROM wa.auth_state WHERE session_id = 'aurora'").fetch_one(&db.pool).await.unwrap();
    let err = import_baileys_folder(&db.pool, "aurora", &fixture("linked"), false).await.unwrap_err();
    assert!(err.to_string().contains("already has credentials"), "{err:#}");
    let after: Value =
        sqlx::query_scalar("SELECT creds FROM wa.auth_state WHERE session_id = 'aurora'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(before, after);
    assert_eq!(count(&db.pool, "signal_prekeys", "aurora").await, 5);
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn bad_document_names_field_and_writes_nothing() {
    let db = TestDb::new().await.unwrap();
    let err = import_baileys_folder(&db.pool, "broken", &fixture("broken-signature"), false).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("broken") && msg.contains("signedPreKey.signature") && msg.contains("64"), "{msg}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.sessions").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 0, "nothing written, not even the session");

    // A bad key file after a good creds.json: the file is named, nothing is written.
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(fixture("linked")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    std::fs::write(dir.path().join("pre-key-9.json"), r#"{"private":{"type":"Buffer","data":"%%%"},"public":"AAAA"}"#).unwrap();
    let msg = format!("{:#}", import_baileys_folder(&db.pool, "aurora", dir.path(), false).await.unwrap_err());
    assert!(msg.contains("pre-key-9.json") && msg.contains("private") && msg.contains("base64"), "{msg}");
    assert_eq!(count(&db.pool, "auth_state", "aurora").await, 0);
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn sql_table_import() {
    let db = TestDb::new().await.unwrap();
    // A table as Baileys Postgres adapters keep it, with its own column names.
    sqlx::query("CREATE TABLE public.wa_keys (company_id text, key_type text, key_id text, value jsonb)")
        .execute(&db.pool)
        .await
        .unwrap();
    let insert = |kind: String, id: String, value: Value| {
        let pool = db.pool.clone();
        async move {
            sqlx::query("INSERT INTO public.wa_keys VALUES ('tenant-7', $1, $2, $3)")
                .bind(kind)
                .bind(id)
                .bind(value)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    insert("creds".into(), "creds".into(), creds_json()).await;
    for f in std::fs::read_dir(fixture("linked")).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        let stem = name.strip_suffix(".json").unwrap();
        let value: Value = serde_json::from_str(&std::fs::read_to_string(fixture("linked").join(&name)).unwrap()).unwrap();
        for kind in ["pre-key", "app-state-sync-key", "lid-mapping"] {
            if let Some(id) = stem.strip_prefix(kind).and_then(|r| r.strip_prefix('-')) {
                // Rows hold the raw id (no file-name escaping).
                insert(kind.into(), id.replace("__", "/"), value.clone()).await;
            }
        }
    }
    insert("session".into(), "15551230001.0".into(), serde_json::json!({"_sessions": {}})).await;

    let src = SqlSource {
        session_column: "company_id".into(),
        type_column: "key_type".into(),
        source_session: Some("tenant-7".into()),
        ..SqlSource::table("public.wa_keys")
    };
    let s = import_baileys_sql(&db.pool, "aurora", &src, false).await.unwrap();
    assert_eq!(s.imported["pre-key"], 5);
    assert_eq!(s.skipped.iter().filter(|(w, _)| w.contains("session")).count(), 1);
    assert_linked_imported(&db.pool, "aurora").await;

    // Names that are not plain identifiers are refused before any SQL runs.
    let bad = SqlSource { table: "wa_keys; DROP TABLE x".into(), ..src.clone() };
    assert!(import_baileys_sql(&db.pool, "other", &bad, true).await.is_err());
    db.drop_now().await.unwrap();
}

/// An import into a session a worker holds would race its client for the keys: refused,
/// nothing written, and the error says how to get there.
#[tokio::test]
async fn an_import_into_a_held_session_is_refused() {
    let db = TestDb::new().await.unwrap();
    let worker = uuid::Uuid::now_v7();
    pgwa_pg::workers::register(&db.pool, &pgwa_pg::workers::Registration::new(worker, "w", 10)).await.unwrap();
    sqlx::query("SELECT wa.add_session('aurora')").execute(&db.pool).await.unwrap();
    pgwa_pg::leases::claim(&db.pool, worker, 30.0, 10).await.unwrap();
    let err = import_baileys_folder(&db.pool, "aurora", &fixture("linked"), false).await.unwrap_err();
    assert!(format!("{err:#}").contains("held by a worker") && format!("{err:#}").contains("session stop"), "{err:#}");
    assert_eq!(count(&db.pool, "auth_state", "aurora").await, 0);
    assert_eq!(count(&db.pool, "signal_prekeys", "aurora").await, 0);
}
