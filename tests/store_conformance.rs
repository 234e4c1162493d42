//! One suite over whatsapp-rust's reference InMemoryBackend and our PgBackend: the same
//! calls must give the same answers (round trips, overwrite, delete, batch, atomic take,
//! expiry). A difference is a bug in PgBackend.

use std::sync::Arc;

use pgwa_pg::keys::PgBackend;
use pgwa_testkit::TestDb;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::traits::*;
use whatsapp_rust::wacore::store::{Device, InMemoryBackend};

const ALICE: &str = "15550001111@s.whatsapp.net";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn signal<B: Backend>(b: &B) {
    // identities
    assert_eq!(b.load_identity("a@s.whatsapp.net").await.unwrap(), None);
    b.put_identity("a@s.whatsapp.net", [1; 32]).await.unwrap();
    b.put_identity("a@s.whatsapp.net", [2; 32]).await.unwrap();
    assert_eq!(b.load_identity("a@s.whatsapp.net").await.unwrap(), Some([2; 32]));
    b.put_identities_batch(&[("b:2@lid".into(), [3; 32]), ("c@lid".into(), [4; 32]), ("b:2@lid".into(), [5; 32])]).await.unwrap();
    assert_eq!(b.load_identity("b:2@lid").await.unwrap(), Some([5; 32]));
    b.delete_identity("a@s.whatsapp.net").await.unwrap();
    assert_eq!(b.load_identity("a@s.whatsapp.net").await.unwrap(), None);

    // sessions
    assert!(!b.has_session("15550001111:3@s.whatsapp.net").await.unwrap());
    b.put_session("15550001111:3@s.whatsapp.net", b"r1").await.unwrap();
    b.put_sessions_batch(&[
        ("15550001111:3@s.whatsapp.net".into(), Bytes::from_static(b"r2")),
        ("x@lid".into(), Bytes::from_static(b"x")),
    ])
    .await
    .unwrap();
    assert_eq!(b.get_session("15550001111:3@s.whatsapp.net").await.unwrap().unwrap(), Bytes::from_static(b"r2"));
    assert!(b.has_session("x@lid").await.unwrap());
    assert!(b.has_signal_state_for_user("15550001111").await.unwrap());
    assert!(b.has_signal_state_for_user("c").await.unwrap(), "identity alone counts");
    assert!(!b.has_signal_state_for_user("1555000111").await.unwrap(), "prefix of a user is not the user");
    b.delete_session("x@lid").await.unwrap();
    assert_eq!(b.get_session("x@lid").await.unwrap(), None);

    // prekeys
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 0);
    b.store_prekey(7, b"p7", false).await.unwrap();
    let batch: Vec<(u32, Bytes)> = (10..110).map(|i| (i, Bytes::from(format!("p{i}")))).collect();
    b.store_prekeys_batch(&batch, false).await.unwrap();
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 109);
    assert_eq!(b.load_prekey(50).await.unwrap().unwrap(), Bytes::from_static(b"p50"));
    let got = b.load_prekeys_batch(&[12, 999, 7]).await.unwrap();
    assert_eq!(got, vec![(12, Bytes::from_static(b"p12")), (7, Bytes::from_static(b"p7"))]);
    // A login's key-bundle check asks for all of them at once (read as one range in
    // Postgres): in the order asked, a repeated id twice, missing ones left out.
    let p = |i: u32| (i, Bytes::from(format!("p{i}")));
    let every: Vec<u32> = (10..110).rev().collect();
    let got = b.load_prekeys_batch(&every).await.unwrap();
    assert_eq!(got, every.iter().map(|&i| p(i)).collect::<Vec<_>>());
    let got = b.load_prekeys_batch(&[106, 111, 105, 106]).await.unwrap();
    assert_eq!(got, vec![p(106), p(105), p(106)]);
    b.remove_prekey(7).await.unwrap();
    b.mark_prekeys_uploaded(&[7, 12]).await.unwrap();
    assert_eq!(b.load_prekey(7).await.unwrap(), None, "mark_prekeys_uploaded must not resurrect a consumed key");
    b.store_prekey(12, b"p12b", true).await.unwrap();
    assert_eq!(b.load_prekey(12).await.unwrap().unwrap(), Bytes::from_static(b"p12b"));

    // signed prekeys
    b.store_signed_prekey(1, b"s1").await.unwrap();
    b.store_signed_prekey(2, b"s2").await.unwrap();
    b.store_signed_prekey(1, b"s1b").await.unwrap();
    assert_eq!(b.load_signed_prekey(1).await.unwrap(), Some(b"s1b".to_vec()));
    let mut all = b.load_all_signed_prekeys().await.unwrap();
    all.sort();
    assert_eq!(all, vec![(1, b"s1b".to_vec()), (2, b"s2".to_vec())]);
    b.remove_signed_prekey(2).await.unwrap();
    assert_eq!(b.load_signed_prekey(2).await.unwrap(), None);

    // sender keys
    let name = "120363000000000001@g.us:15550001111:2@s.whatsapp.net.0";
    b.put_sender_key(name, b"k1").await.unwrap();
    b.put_sender_keys_batch(&[(name.into(), Bytes::from_static(b"k2"))]).await.unwrap();
    assert_eq!(b.get_sender_key(name).await.unwrap(), Some(b"k2".to_vec()));
    b.delete_sender_key(name).await.unwrap();
    assert_eq!(b.get_sender_key(name).await.unwrap(), None);
}

async fn appsync<B: Backend>(b: &B) {
    assert_eq!(b.get_latest_sync_key_id().await.unwrap(), None);
    let key = |d: u8| AppStateSyncKey {
        key_data: vec![d; 32],
        fingerprint: vec![8, 1, 16, 2],
        timestamp: 1_700_000_000 + i64::from(d),
    };
    b.set_sync_key(b"k1", key(1)).await.unwrap();
    b.set_sync_key(b"k2", key(2)).await.unwrap();
    assert_eq!(b.get_latest_sync_key_id().await.unwrap(), Some(b"k2".to_vec()));
    b.set_sync_key(b"k1", key(3)).await.unwrap();
    assert_eq!(b.get_latest_sync_key_id().await.unwrap(), Some(b"k1".to_vec()), "latest means most recently set");
    let k = b.get_sync_key(b"k1").await.unwrap().unwrap();
    assert_eq!((k.key_data, k.fingerprint, k.timestamp), (vec![3; 32], vec![8, 1, 16, 2], 1_700_000_003));
    assert!(b.get_sync_key(b"nope").await.unwrap().is_none());

    assert_eq!(b.get_version("regular").await.unwrap().version, 0);
    let mut st = HashState { version: 42, hash: [9; 128], ..HashState::default() };
    st.index_value_map.insert("idx".into(), vec![1, 2, 3]);
    b.set_version("regular", st).await.unwrap();
    let got = b.get_version("regular").await.unwrap();
    assert_eq!((got.version, got.hash, got.index_value_map.get("idx").cloned()), (42, [9; 128], Some(vec![1, 2, 3])));

    let m = |i: u8, v: u8| AppStateMutationMAC { index_mac: vec![i; 32], value_mac: vec![v; 32] };
    b.put_mutation_macs("regular", 1, &[m(1, 10), m(2, 20), m(3, 30)]).await.unwrap();
    b.put_mutation_macs("regular", 2, &[m(2, 21)]).await.unwrap();
    b.put_mutation_macs("other", 1, &[m(1, 99)]).await.unwrap();
    assert_eq!(b.get_mutation_mac("regular", &[2; 32]).await.unwrap(), Some(vec![21; 32]));
    let many = b.get_mutation_macs("regular", &[[1; 32], [4; 32], [3; 32]]).await.unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many.get(&[3; 32]), Some(&vec![30; 32]));
    b.delete_mutation_macs("regular", &[vec![1; 32]]).await.unwrap();
    assert_eq!(b.get_mutation_mac("regular", &[1; 32]).await.unwrap(), None);
    b.clear_mutation_macs("regular").await.unwrap();
    assert_eq!(b.get_mutation_mac("regular", &[3; 32]).await.unwrap(), None);
    assert_eq!(b.get_mutation_mac("other", &[1; 32]).await.unwrap(), Some(vec![99; 32]), "clear is per collection");
}

async fn protocol<B: Backend>(b: &B) {
    let g = "120363000000000002@g.us";
    b.set_sender_key_status(g, &[("d1@lid", true), ("d2@lid", false)]).await.unwrap();
    b.set_sender_key_status(g, &[("d2@lid", true)]).await.unwrap();
    b.set_sender_key_status("g2@g.us", &[("d1@lid", true), ("d3@lid", true)]).await.unwrap();
    let mut devs = b.get_sender_key_devices(g).await.unwrap();
    devs.sort();
    assert_eq!(devs, vec![("d1@lid".to_string(), true), ("d2@lid".to_string(), true)]);
    b.delete_sender_key_device_rows(&["d1@lid"]).await.unwrap();
    assert_eq!(b.get_sender_key_devices(g).await.unwrap().len(), 1);
    assert_eq!(b.get_sender_key_devices("g2@g.us").await.unwrap(), vec![("d3@lid".to_string(), true)]);
    b.clear_sender_key_devices(g).await.unwrap();
    assert!(b.get_sender_key_devices(g).await.unwrap().is_empty());
    b.clear_all_sender_key_devices().await.unwrap();
    assert!(b.get_sender_key_devices("g2@g.us").await.unwrap().is_empty());

    let e = |lid: &str, pn: &str, t: i64| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: pn.into(),
        created_at: t,
        updated_at: t,
        learning_source: "usync".into(),
    };
    b.put_lid_mapping(&e("100", "555", 1)).await.unwrap();
    b.put_lid_mappings(&[e("200", "666", 2), e("300", "555", 3)]).await.unwrap();
    assert_eq!(b.get_lid_mapping("200").await.unwrap().unwrap().phone_number, "666");
    assert_eq!(b.get_pn_mapping("555").await.unwrap().unwrap().lid, "300", "most recent LID for a phone");
    b.put_lid_mapping(&e("100", "555", 4)).await.unwrap();
    assert_eq!(b.get_pn_mapping("555").await.unwrap().unwrap().lid, "100");
    let mut all: Vec<String> = b.get_all_lid_mappings().await.unwrap().into_iter().map(|m| m.lid).collect();
    all.sort();
    assert_eq!(all, ["100", "200", "300"]);
    assert!(b.get_pn_mapping("777").await.unwrap().is_none());

    b.save_base_key("a.0", "m1", b"base").await.unwrap();
    assert!(b.has_same_base_key("a.0", "m1", b"base").await.unwrap());
    assert!(!b.has_same_base_key("a.0", "m1", b"other").await.unwrap());
    b.delete_base_key("a.0", "m1").await.unwrap();
    assert!(!b.has_same_base_key("a.0", "m1", b"base").await.unwrap());

    let rec = |user: &str, n: u32| DeviceListRecord {
        user: user.into(),
        devices: (0..n).map(|d| DeviceInfo::new(d, Some(d))).collect(),
        timestamp: 5,
        phash: Some("2:abc".into()),
        raw_id: Some(7),
    };
    b.update_device_list(rec("555", 2)).await.unwrap();
    b.update_device_lists(vec![rec("555", 3), rec("666", 1)]).await.unwrap();
    let got = b.get_devices("555").await.unwrap().unwrap();
    assert_eq!((got.devices.len(), got.raw_id, got.phash.as_deref()), (3, Some(7), Some("2:abc")));
    b.delete_devices("555").await.unwrap();
    assert!(b.get_devices("555").await.unwrap().is_none());

    b.put_group_metadata(g, b"meta1").await.unwrap();
    b.put_group_metadata(g, b"meta2").await.unwrap();
    assert_eq!(b.get_group_metadata(g).await.unwrap(), Some(b"meta2".to_vec()));
    b.delete_group_metadata(g).await.unwrap();
    assert_eq!(b.get_group_metadata(g).await.unwrap(), None);
}

fn tc(e: Option<TcTokenEntry>) -> Option<(Vec<u8>, i64, Option<i64>)> {
    e.map(|e| (e.token, e.token_timestamp, e.sender_timestamp))
}

async fn tc_tokens<B: Backend>(b: &B) {
    b.touch_tc_token_sender_timestamp("t1@lid", 100).await.unwrap();
    assert_eq!(tc(b.get_tc_token("t1@lid").await.unwrap()), Some((vec![], 100, Some(100))), "placeholder");
    b.touch_tc_token_sender_timestamp("t1@lid", 50).await.unwrap();
    assert_eq!(tc(b.get_tc_token("t1@lid").await.unwrap()).unwrap().2, Some(100), "sender timestamp never regresses");
    b.store_received_tc_token("t1@lid", b"tok", 10).await.unwrap();
    assert_eq!(tc(b.get_tc_token("t1@lid").await.unwrap()), Some((b"tok".to_vec(), 10, Some(100))), "placeholder yields");
    b.store_received_tc_token("t1@lid", b"old", 5).await.unwrap();
    assert_eq!(tc(b.get_tc_token("t1@lid").await.unwrap()).unwrap().0, b"tok".to_vec(), "older token loses");
    b.store_received_tc_token("t1@lid", b"new", 20).await.unwrap();
    assert_eq!(tc(b.get_tc_token("t1@lid").await.unwrap()), Some((b"new".to_vec(), 20, Some(100))));
    b.put_tc_token("t2@lid", &TcTokenEntry { token: b"x".to_vec(), token_timestamp: 1000, sender_timestamp: None })
        .await
        .unwrap();
    b.put_tc_token("t3@lid", &TcTokenEntry { token: vec![], token_timestamp: 1, sender_timestamp: Some(5000) }).await.unwrap();
    let mut jids = b.get_all_tc_token_jids().await.unwrap();
    jids.sort();
    assert_eq!(jids, ["t1@lid", "t2@lid", "t3@lid"]);
    // t1: token 20 < 500 stale, sender 100 < 4000 stale -> gone; t2: token live; t3: sender live.
    assert_eq!(b.delete_expired_tc_tokens(500, 4000).await.unwrap(), 1);
    assert!(b.get_tc_token("t1@lid").await.unwrap().is_none());
    b.delete_tc_token("t2@lid").await.unwrap();
    assert_eq!(b.get_all_tc_token_jids().await.unwrap(), ["t3@lid"]);
}

async fn sent_and_pending<B: Backend + 'static>(b: Arc<B>) {
    b.store_sent_message(ALICE, "M1", b"payload1").await.unwrap();
    b.store_sent_message(ALICE, "M1", b"payload1b").await.unwrap();
    b.store_sent_message(ALICE, "M2", b"payload2").await.unwrap();
    // Eight concurrent takes of one message: exactly one gets it.
    let takes: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.take_sent_message(ALICE, "M1").await.unwrap() })
        })
        .collect();
    let mut got = vec![];
    for t in takes {
        if let Some(p) = t.await.unwrap() {
            got.push(p);
        }
    }
    assert_eq!(got, vec![b"payload1b".to_vec()]);
    assert_eq!(b.delete_expired_sent_messages(now() - 3600).await.unwrap(), 0);
    assert_eq!(b.delete_expired_sent_messages(now() + 10).await.unwrap(), 1);
    assert_eq!(b.take_sent_message(ALICE, "M2").await.unwrap(), None);

    b.store_pending_inbound(ALICE, ALICE, "S1", b"m1").await.unwrap();
    let rows = [
        PendingInboundRow { chat: "g@g.us", sender: ALICE, id: "S1", message: b"g1" },
        PendingInboundRow { chat: "g@g.us", sender: "b@lid", id: "S1", message: b"g2" },
    ];
    b.store_pending_inbound_batch(&rows).await.unwrap();
    assert_eq!(b.get_pending_inbound(ALICE, ALICE, "S1").await.unwrap(), Some(b"m1".to_vec()));
    assert_eq!(b.get_pending_inbound("g@g.us", "b@lid", "S1").await.unwrap(), Some(b"g2".to_vec()), "scoped by sender");
    b.delete_pending_inbound(ALICE, ALICE, "S1").await.unwrap();
    assert_eq!(b.get_pending_inbound(ALICE, ALICE, "S1").await.unwrap(), None);
    b.delete_pending_inbound_batch(&[PendingInboundKey { chat: "g@g.us", sender: ALICE, id: "S1" }]).await.unwrap();
    assert_eq!(b.get_pending_inbound("g@g.us", ALICE, "S1").await.unwrap(), None);
    assert_eq!(b.delete_expired_pending_inbound(now() - 3600).await.unwrap(), 0);
    assert_eq!(b.delete_expired_pending_inbound(now() + 10).await.unwrap(), 1);
}

async fn msg_secrets<B: Backend>(b: &B) {
    let e = |id: &str, s: u8, exp: i64, ts: i64| MsgSecretEntry {
        chat: ALICE.into(),
        sender: ALICE.into(),
        msg_id: id.into(),
        secret: [s; 32],
        expires_at: exp,
        message_ts: ts,
    };
    b.put_msg_secret(ALICE, ALICE, "never", &[1; 32]).await.unwrap();
    assert_eq!(b.put_msg_secrets(vec![e("a", 2, 100, 50), e("b", 3, 200, 0), e("a", 4, 150, 0)]).await.unwrap(), 3);
    assert_eq!(
        b.get_msg_secret_with_ts(ALICE, ALICE, "a").await.unwrap(),
        Some((vec![4; 32], 50)),
        "later deadline, known ts kept"
    );
    b.put_msg_secrets(vec![e("b", 5, 0, 70)]).await.unwrap();
    assert_eq!(b.get_msg_secret(ALICE, ALICE, "b").await.unwrap(), Some(vec![5; 32]));
    assert_eq!(b.get_msg_secret(ALICE, ALICE, "zzz").await.unwrap(), None);
    // a expires at 150; b became never (0 wins); "never" is never.
    assert_eq!(b.delete_expired_msg_secrets(149).await.unwrap(), 0);
    assert_eq!(b.delete_expired_msg_secrets(150).await.unwrap(), 1);
    assert!(b.get_msg_secret(ALICE, ALICE, "b").await.unwrap().is_some());
    assert!(b.get_msg_secret(ALICE, ALICE, "never").await.unwrap().is_some());
}

async fn device<B: Backend>(b: &B) {
    assert!(!b.exists().await.unwrap());
    assert!(b.load().await.unwrap().is_none());
    b.create().await.unwrap();
    assert!(b.exists().await.unwrap());
    let created = b.load().await.unwrap().unwrap();
    b.create().await.unwrap();
    let again = b.load().await.unwrap().unwrap();
    assert_eq!(pgwa_pg::authdoc::to_document(&created), pgwa_pg::authdoc::to_document(&again), "create never replaces");
    let mut d = Device::new();
    d.push_name = "Salon Aurora".into();
    d.pn = Some("15550001111:12@s.whatsapp.net".parse().unwrap());
    d.next_pre_key_id = 812;
    b.save(&d).await.unwrap();
    let back = b.load().await.unwrap().unwrap();
    assert_eq!(pgwa_pg::authdoc::to_document(&back), pgwa_pg::authdoc::to_document(&d));
}

async fn suite<B: Backend + 'static>(b: Arc<B>) {
    signal(&*b).await;
    appsync(&*b).await;
    protocol(&*b).await;
    tc_tokens(&*b).await;
    sent_and_pending(b.clone()).await;
    msg_secrets(&*b).await;
    device(&*b).await;
}

#[tokio::test]
async fn in_memory_reference() {
    suite(Arc::new(InMemoryBackend::new())).await;
}

#[tokio::test]
async fn postgres_backend() {
    let db = TestDb::new().await.unwrap();
    for s in ["conf", "neighbour"] {
        sqlx::query("SELECT wa.add_session($1, start => false)").bind(s).execute(&db.pool).await.unwrap();
    }
    // A neighbour session with rows of its own must be untouched by everything above.
    let neighbour = PgBackend::offline(db.pool.clone(), "neighbour");
    neighbour.put_session("15550001111:3@s.whatsapp.net", b"theirs").await.unwrap();
    neighbour.store_sent_message(ALICE, "M1", b"theirs").await.unwrap();
    let theirs: Vec<(u32, Bytes)> = (1..200).map(|i| (i, Bytes::from_static(b"theirs"))).collect();
    neighbour.store_prekeys_batch(&theirs, true).await.unwrap();

    suite(Arc::new(PgBackend::offline(db.pool.clone(), "conf"))).await;

    assert_eq!(neighbour.get_session("15550001111:3@s.whatsapp.net").await.unwrap().unwrap(), Bytes::from_static(b"theirs"));
    assert_eq!(neighbour.take_sent_message(ALICE, "M1").await.unwrap(), Some(b"theirs".to_vec()));
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn postgres_write_to_unknown_session_fails() {
    let db = TestDb::new().await.unwrap();
    let b = PgBackend::offline(db.pool.clone(), "ghost");
    let err = b.put_session("a@lid", b"x").await.unwrap_err();
    assert!(format!("{err:#}").contains("ghost") || std::error::Error::source(&err).unwrap().to_string().contains("ghost"));
    db.drop_now().await.unwrap();
}
