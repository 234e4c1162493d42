//! The auth document codec: bytes revived from every form found in the wild, nested
//! anywhere; broken documents named by session and field path; round trips through
//! Postgres JSONB; property tests over arbitrary byte strings.

use pgwa_pg::authdoc::{self, AuthDocError, ByteForm, Problem, encode_as, from_document, revive, to_document};
use pgwa_pg::keys::{PgBackend, load_auth_document};
use pgwa_testkit::TestDb;
use proptest::prelude::*;
use serde_json::{Value, json};
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::traits::DeviceStore;

fn linked_device() -> Device {
    let mut d = Device::new();
    d.pn = Some("15550002222:7@s.whatsapp.net".parse().unwrap());
    d.lid = Some("100000012345678:7@lid".parse().unwrap());
    d.push_name = "Studio Bela".into();
    d.edge_routing_info = Some(vec![8, 2, 8, 5]);
    d.account = Some(std::sync::Arc::new(whatsapp_rust::waproto::whatsapp::ADVSignedDeviceIdentity {
        details: Some(vec![1; 40]),
        account_signature_key: Some(vec![2; 32]),
        account_signature: Some(vec![3; 64]),
        device_signature: Some(vec![4; 64]),
    }));
    d
}

/// Re-encodes every byte field of a document in `form` (the fields the format defines).
fn reencode(doc: &mut Value, form: ByteForm) {
    const BYTE_PATHS: &[&[&str]] = &[
        &["noise_key", "private"],
        &["noise_key", "public"],
        &["identity_key", "private"],
        &["identity_key", "public"],
        &["signed_pre_key", "private"],
        &["signed_pre_key", "public"],
        &["signed_pre_key", "signature"],
        &["adv_secret_key"],
        &["account", "details"],
        &["account", "account_signature_key"],
        &["account", "account_signature"],
        &["account", "device_signature"],
        &["edge_routing_info"],
    ];
    for path in BYTE_PATHS {
        let mut v = &mut *doc;
        for k in *path {
            v = v.get_mut(*k).unwrap();
        }
        let bytes = revive(v).unwrap();
        *v = encode_as(&bytes, form);
    }
}

#[test]
fn device_round_trips_in_every_byte_form() {
    let d = linked_device();
    let doc = to_document(&d);
    // Readable: named keys, base64 strings.
    assert!(doc["noise_key"]["public"].is_string());
    assert_eq!(doc["pn"], "15550002222:7@s.whatsapp.net");
    assert_eq!(doc["format"], authdoc::FORMAT);
    for form in ByteForm::ALL {
        let mut v = doc.clone();
        reencode(&mut v, form);
        let back = from_document("s1", &v).unwrap_or_else(|e| panic!("{form:?}: {e}"));
        assert_eq!(to_document(&back), doc, "{form:?}");
    }
}

#[test]
fn mixed_forms_in_one_document() {
    let doc = to_document(&linked_device());
    let mut v = doc.clone();
    let spk = revive(&v["signed_pre_key"]["signature"]).unwrap();
    v["signed_pre_key"]["signature"] = encode_as(&spk, ByteForm::BufferBase64);
    let n = revive(&v["noise_key"]["private"]).unwrap();
    v["noise_key"]["private"] = encode_as(&n, ByteForm::BufferArray);
    let a = revive(&v["adv_secret_key"]).unwrap();
    v["adv_secret_key"] = encode_as(&a, ByteForm::NumberArray);
    assert_eq!(to_document(&from_document("s1", &v).unwrap()), doc);
}

#[test]
fn public_keys_with_the_libsignal_prefix_are_accepted() {
    let doc = to_document(&linked_device());
    let mut v = doc.clone();
    let mut pk = revive(&v["identity_key"]["public"]).unwrap();
    pk.insert(0, 5);
    v["identity_key"]["public"] = encode_as(&pk, ByteForm::Base64);
    assert_eq!(to_document(&from_document("s1", &v).unwrap()), doc);
}

fn err(doc: &Value) -> AuthDocError {
    match from_document("tenant-42", doc) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn broken_documents_name_session_and_field() {
    let good = to_document(&linked_device());

    let mut v = good.clone();
    v["signed_pre_key"]["signature"] = encode_as(&[1; 63], ByteForm::Base64);
    let e = err(&v);
    assert_eq!((e.session.as_str(), e.path.as_str()), ("tenant-42", "signed_pre_key.signature"));
    assert_eq!(e.problem, Problem::WrongLength { expected: "64", found: 63 });
    assert!(e.to_string().contains("tenant-42") && e.to_string().contains("signed_pre_key.signature"));

    let mut v = good.clone();
    v["adv_secret_key"] = json!("not*base64!");
    let e = err(&v);
    assert_eq!((e.path.as_str(), e.problem.clone()), ("adv_secret_key", Problem::InvalidBase64));

    let mut v = good.clone();
    v["noise_key"].as_object_mut().unwrap().remove("private");
    let e = err(&v);
    assert_eq!((e.path.as_str(), e.problem.clone()), ("noise_key.private", Problem::Missing));

    let mut v = good.clone();
    v["registration_id"] = json!(true);
    let e = err(&v);
    assert_eq!(e.path, "registration_id");
    assert!(matches!(e.problem, Problem::WrongType { expected: "integer", found: "boolean" }));

    let mut v = good.clone();
    v["account"]["details"] = json!({"type": "Buffer", "data": [1, 2, 300]});
    let e = err(&v);
    assert_eq!((e.path.as_str(), e.problem.clone()), ("account.details", Problem::NotAByte { index: 2 }));

    let mut v = good.clone();
    v["identity_key"]["public"] = good["noise_key"]["public"].clone();
    let e = err(&v);
    assert_eq!(e.path, "identity_key.public");
    assert_eq!(e.problem, Problem::Invalid("does not match the private key"));

    let mut v = good.clone();
    v["pn"] = json!(12);
    assert_eq!(err(&v).path, "pn");

    let e = err(&json!([1, 2]));
    assert_eq!(e.path, "(root)");

    // Key material never appears in the message.
    let mut v = good.clone();
    v["noise_key"]["private"] = json!("QUJD");
    let msg = err(&v).to_string();
    assert!(!msg.contains("QUJD"), "{msg}");
}

#[test]
fn revive_edge_cases() {
    assert_eq!(revive(&json!("")).unwrap(), Vec::<u8>::new());
    assert_eq!(revive(&json!("AQID")).unwrap(), vec![1, 2, 3]);
    assert_eq!(revive(&json!("AQI")).unwrap(), vec![1, 2], "unpadded");
    assert_eq!(revive(&json!("-_8")).unwrap(), vec![0xfb, 0xff], "url-safe");
    assert_eq!(revive(&json!({"type": "Buffer", "data": "AQID"})).unwrap(), vec![1, 2, 3]);
    assert_eq!(revive(&json!({"0": 9, "1": 8})).unwrap(), vec![9, 8]);
    assert!(matches!(revive(&json!({"type": "Buffer", "data": 5})), Err(Problem::WrongType { .. })));
    assert!(matches!(revive(&json!([1, -1])), Err(Problem::NotAByte { index: 1 })));
    assert!(matches!(revive(&json!(3)), Err(Problem::WrongType { .. })));
    // normalize_buffers rewrites Buffer objects nested anywhere.
    let nested =
        json!({"a": [{"k": {"type": "Buffer", "data": [1, 2, 3]}}], "b": {"type": "Buffer", "data": "AQID"}, "n": [1, 2]});
    assert_eq!(authdoc::normalize_buffers(&nested).unwrap(), json!({"a": [{"k": "AQID"}], "b": "AQID", "n": [1, 2]}));
}

proptest! {
    #[test]
    fn any_bytes_round_trip_through_every_form(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for form in ByteForm::ALL {
            let v = encode_as(&bytes, form);
            prop_assert_eq!(revive(&v).unwrap(), bytes.clone(), "{:?}", form);
            // And through JSON text, as it travels through files and JSONB.
            let text = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(revive(&serde_json::from_str(&text).unwrap()).unwrap(), bytes.clone());
        }
    }

    #[test]
    fn buffers_nested_at_any_depth_are_revived(bytes in proptest::collection::vec(any::<u8>(), 0..64), depth in 0usize..6) {
        let mut v = encode_as(&bytes, ByteForm::BufferBase64);
        for i in 0..depth {
            v = if i % 2 == 0 { json!({ "k": v }) } else { json!([v]) };
        }
        let mut n = authdoc::normalize_buffers(&v).unwrap();
        for i in (0..depth).rev() {
            n = if i % 2 == 0 { n["k"].clone() } else { n[0].clone() };
        }
        prop_assert_eq!(revive(&n).unwrap(), bytes);
    }
}

#[tokio::test]
async fn stored_document_is_readable_in_sql_and_survives_jsonb() {
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('doc', start => false)").execute(&db.pool).await.unwrap();
    let b = PgBackend::offline(db.pool.clone(), "doc");
    let d = linked_device();
    b.save(&d).await.unwrap();
    let push: String = sqlx::query_scalar("SELECT creds->>'push_name' FROM wa.auth_state WHERE session_id = 'doc'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(push, "Studio Bela");
    let stored = load_auth_document(&db.pool, "doc").await.unwrap().unwrap();
    assert_eq!(stored, to_document(&d));

    // A document whose bytes went through Baileys' BufferJSON and JSONB loads as well.
    let mut baileys_style = stored.clone();
    reencode(&mut baileys_style, ByteForm::BufferBase64);
    sqlx::query("UPDATE wa.auth_state SET creds = $1 WHERE session_id = 'doc'")
        .bind(&baileys_style)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(to_document(&b.load().await.unwrap().unwrap()), to_document(&d));

    // A broken one fails to load, naming session and field, and is left as it was.
    let mut broken = stored.clone();
    broken["adv_secret_key"] = json!("@@@");
    sqlx::query("UPDATE wa.auth_state SET creds = $1 WHERE session_id = 'doc'").bind(&broken).execute(&db.pool).await.unwrap();
    let Err(e) = b.load().await else { panic!("a broken document must not load") };
    let src = std::error::Error::source(&e).unwrap().to_string();
    assert!(src.contains("doc") && src.contains("adv_secret_key"), "{src}");
    assert_eq!(load_auth_document(&db.pool, "doc").await.unwrap().unwrap(), broken);
    db.drop_now().await.unwrap();
}
