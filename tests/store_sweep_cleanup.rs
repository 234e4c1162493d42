//! TTL sweeps in bounded batches, and the key_cleanup scopes.

use pgwa_pg::keys::PgBackend;
use pgwa_pg::keys::cleanup::{clear_app_state_keys, clear_peer_sessions, wipe_session_state};
use pgwa_pg::keys::sweep::{SweepOptions, sweep_expired};
use pgwa_testkit::TestDb;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::traits::*;

async fn session(pool: &sqlx::PgPool, id: &str) -> PgBackend {
    sqlx::query("SELECT wa.add_session($1, start => false)").bind(id).execute(pool).await.unwrap();
    PgBackend::offline(pool.clone(), id)
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM wa.{table}"))).fetch_one(pool).await.unwrap()
}

async fn exec(pool: &sqlx::PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(pool).await.unwrap();
}

#[tokio::test]
async fn sweep_deletes_only_expired_rows_in_batches() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    for s in ["s1", "s2"] {
        let b = session(pool, s).await;
        for i in 0..5 {
            b.store_sent_message("c@lid", &format!("old{i}"), b"p").await.unwrap();
            b.store_pending_inbound("c@lid", "c@lid", &format!("old{i}"), b"m").await.unwrap();
            b.save_base_key("c.0", &format!("old{i}"), b"k").await.unwrap();
        }
        b.store_sent_message("c@lid", "fresh", b"p").await.unwrap();
        b.store_pending_inbound("c@lid", "c@lid", "fresh", b"m").await.unwrap();
        b.save_base_key("c.0", "fresh", b"k").await.unwrap();
        let now = chrono::Utc::now().timestamp();
        let e = |id: &str, exp: i64| MsgSecretEntry {
            chat: "c@lid".into(),
            sender: "c@lid".into(),
            msg_id: id.into(),
            secret: [1; 32],
            expires_at: exp,
            message_ts: 0,
        };
        b.put_msg_secrets(vec![e("past", now - 10), e("future", now + 3600), e("never", 0)]).await.unwrap();
        // tc tokens: one fully stale, one with a live token, one with a live sender bucket.
        b.put_tc_token("stale@lid", &TcTokenEntry { token: b"t".to_vec(), token_timestamp: 1, sender_timestamp: Some(1) })
            .await
            .unwrap();
        b.put_tc_token("live@lid", &TcTokenEntry { token: b"t".to_vec(), token_timestamp: now, sender_timestamp: None })
            .await
            .unwrap();
        b.touch_tc_token_sender_timestamp("sender@lid", now).await.unwrap();
        let lid = |l: &str| LidPnMappingEntry {
            lid: l.into(),
            phone_number: format!("p{l}"),
            created_at: now,
            updated_at: now,
            learning_source: "usync".into(),
        };
        b.put_lid_mappings(&[lid("1"), lid("2"), lid("3")]).await.unwrap();
    }
    // Age what should expire (whatsapp-rust's TTLs: sent 2 h, pending 7 d; ours: base keys 1 d, LID 7 d).
    exec(pool, "UPDATE wa.sent_messages SET stored_at = stored_at - 7201 WHERE message_id LIKE 'old%'").await;
    exec(pool, "UPDATE wa.pending_inbound SET stored_at = stored_at - 8 * 86400 WHERE stanza_id LIKE 'old%'").await;
    exec(pool, "UPDATE wa.base_keys SET created_at = now() - interval '25 hours' WHERE message_id LIKE 'old%'").await;
    exec(pool, "UPDATE wa.lid_mappings SET stored_at = now() - interval '8 days' WHERE lid IN ('1', '2')").await;

    let opts = SweepOptions { batch: 3, ..SweepOptions::default() };
    assert_eq!(opts.lid_mapping_ttl, chrono::Duration::days(7));
    let counts = sweep_expired(pool, &opts).await.unwrap();
    assert_eq!(counts["sent_messages"], 10, "{counts}");
    assert_eq!(counts["pending_inbound"], 10);
    assert_eq!(counts["base_keys"], 10);
    assert_eq!(counts["msg_secrets"], 2);
    assert_eq!(counts["tc_tokens"], 2);
    assert_eq!(counts["lid_mappings"], 4);
    assert_eq!(count(pool, "sent_messages").await, 2);
    assert_eq!(count(pool, "pending_inbound").await, 2);
    assert_eq!(count(pool, "base_keys").await, 2);
    assert_eq!(count(pool, "msg_secrets").await, 4);
    assert_eq!(count(pool, "tc_tokens").await, 4);
    assert_eq!(count(pool, "lid_mappings").await, 2);

    // Nothing left to do: a second run deletes nothing.
    let again = sweep_expired(pool, &opts).await.unwrap();
    assert!(again.as_object().unwrap().values().all(|v| v == 0), "{again}");

    // max_batches bounds one run; the rest goes on the next.
    let b = PgBackend::offline(pool.clone(), "s1");
    for i in 0..7 {
        b.store_sent_message("c@lid", &format!("more{i}"), b"p").await.unwrap();
    }
    exec(pool, "UPDATE wa.sent_messages SET stored_at = stored_at - 7201 WHERE message_id LIKE 'more%'").await;
    let bounded = SweepOptions { batch: 2, max_batches: 2, ..SweepOptions::default() };
    assert_eq!(sweep_expired(pool, &bounded).await.unwrap()["sent_messages"], 4);
    assert_eq!(sweep_expired(pool, &bounded).await.unwrap()["sent_messages"], 3);
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn key_cleanup_scopes() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let b = session(pool, "s1").await;
    let other = session(pool, "s2").await;
    let now = chrono::Utc::now().timestamp();

    b.set_sync_key(b"k1", AppStateSyncKey { key_data: vec![1; 32], fingerprint: vec![], timestamp: 1 }).await.unwrap();
    b.set_sync_key(b"k2", AppStateSyncKey { key_data: vec![2; 32], fingerprint: vec![], timestamp: 2 }).await.unwrap();
    other.set_sync_key(b"k1", AppStateSyncKey { key_data: vec![1; 32], fingerprint: vec![], timestamp: 1 }).await.unwrap();
    // The peer under its phone number (two devices) and its LID, plus a bystander.
    b.put_lid_mapping(&LidPnMappingEntry {
        lid: "100000099".into(),
        phone_number: "15559990000".into(),
        created_at: now,
        updated_at: now,
        learning_source: "usync".into(),
    })
    .await
    .unwrap();
    let sessions: Vec<(std::sync::Arc<str>, Bytes)> =
        ["15559990000@c.us", "15559990000:3@c.us", "100000099:3@lid", "155599900001@c.us", "15551110000@c.us"]
            .iter()
            .map(|a| ((*a).into(), Bytes::from_static(b"r")))
            .collect();
    b.put_sessions_batch(&sessions).await.unwrap();
    other.put_session("15559990000@c.us", b"r").await.unwrap();
    b.put_identity("15559990000@c.us", [7; 32]).await.unwrap();
    b.save_base_key("15559990000:3@c.us.0", "M1", b"k").await.unwrap();
    b.set_sender_key_status("g@g.us", &[("15559990000:3@s.whatsapp.net", true), ("15551110000@s.whatsapp.net", true)])
        .await
        .unwrap();

    assert_eq!(clear_app_state_keys(pool, &holding(pool, "s1").await).await.unwrap(), 2);
    assert!(b.get_sync_key(b"k1").await.unwrap().is_none());
    assert!(other.get_sync_key(b"k1").await.unwrap().is_some(), "other sessions untouched");

    let n = clear_peer_sessions(pool, &holding(pool, "s1").await, "15559990000:3@s.whatsapp.net").await.unwrap();
    assert_eq!(n, 3 + 1 + 1, "3 sessions (PN devices and LID), 1 base key, 1 sender-key device row");
    assert!(!b.has_session("15559990000@c.us").await.unwrap());
    assert!(!b.has_session("100000099:3@lid").await.unwrap());
    assert!(b.has_session("155599900001@c.us").await.unwrap(), "a longer number sharing the prefix is another peer");
    assert!(b.has_session("15551110000@c.us").await.unwrap());
    assert_eq!(b.load_identity("15559990000@c.us").await.unwrap(), Some([7; 32]), "identity kept");
    assert_eq!(b.get_sender_key_devices("g@g.us").await.unwrap().len(), 1);
    assert!(other.has_session("15559990000@c.us").await.unwrap());

    sqlx::query("UPDATE wa.sessions SET owner_id = NULL WHERE id = 's1'").execute(pool).await.unwrap();
    b.save(&Device::new()).await.unwrap();
    b.store_sent_message("c@lid", "M", b"p").await.unwrap();
    let wiped = wipe_session_state(pool, &holding(pool, "s1").await).await.unwrap();
    assert!(wiped >= 6, "{wiped}");
    assert!(!b.exists().await.unwrap(), "auth document wiped");
    assert_eq!(b.get_all_lid_mappings().await.unwrap().len(), 0);
    assert!(!b.has_session("15551110000@c.us").await.unwrap());
    let row: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.sessions WHERE id = 's1'").fetch_one(pool).await.unwrap();
    assert_eq!(row, 1, "the session row stays");
    assert!(other.has_session("15559990000@c.us").await.unwrap());
    db.drop_now().await.unwrap();
}

/// A key_cleanup run by a worker that lost the lease deletes nothing.
#[tokio::test]
async fn fenced_cleanup_refuses_a_stale_worker() {
    use pgwa_core::fence::Fence;
    use pgwa_core::job::CleanupScope;
    use pgwa_pg::keys::cleanup::run_cleanup;
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let b = session(pool, "s1").await;
    b.save(&Device::new()).await.unwrap();
    let w = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO wa.workers (id, host, pid, version, max_sessions) VALUES ($1, 't', 1, 't', 1)")
        .bind(w)
        .execute(pool)
        .await
        .unwrap();
    let epoch: i64 =
        sqlx::query_scalar("UPDATE wa.sessions SET owner_id = $1, epoch = epoch + 1, lease_expires_at = now() + interval '1 hour' WHERE id = 's1' RETURNING epoch")
            .bind(w)
            .fetch_one(pool)
            .await
            .unwrap();
    let stale = Fence { worker: w, session: "s1".into(), epoch: epoch - 1 };
    let err = run_cleanup(pool, &stale, &CleanupScope::All).await.unwrap_err();
    assert!(err.downcast_ref::<pgwa_core::fence::LeaseLost>().is_some(), "{err:#}");
    assert!(b.exists().await.unwrap(), "nothing deleted");
    let scope: CleanupScope = serde_json::from_value(serde_json::json!({"scope": "peer", "jid": "1555@s.whatsapp.net"})).unwrap();
    assert_eq!(scope, CleanupScope::Peer { jid: "1555@s.whatsapp.net".into() });
    let n = run_cleanup(pool, &Fence { worker: w, session: "s1".into(), epoch }, &CleanupScope::All).await.unwrap();
    assert_eq!(n, 1);
    assert!(!b.exists().await.unwrap());
    db.drop_now().await.unwrap();
}

/// Takes the session's lease for a new worker, as a claim would: the fence its cleanup needs.
async fn holding(pool: &sqlx::PgPool, session: &str) -> pgwa_core::fence::Fence {
    let worker = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO wa.workers (id, host, pid, version, max_sessions) VALUES ($1, 't', 1, 't', 1)")
        .bind(worker)
        .execute(pool)
        .await
        .unwrap();
    let epoch: i64 = sqlx::query_scalar(
        "UPDATE wa.sessions SET owner_id = $2, epoch = epoch + 1, lease_expires_at = now() + interval '1 hour'
          WHERE id = $1 RETURNING epoch",
    )
    .bind(session)
    .bind(worker)
    .fetch_one(pool)
    .await
    .unwrap();
    pgwa_core::fence::Fence { worker, session: session.into(), epoch }
}

/// The wipe after a logout names every table that holds a session's keys: a key table
/// added later and forgotten there would survive the logout. Every wa table with a
/// session_id is a key table except the app's own records (jobs, inbox, and what the
/// session learned or received for the app: contacts, chat states, calls, media, groups).
#[tokio::test]
async fn the_wipe_names_every_key_table() {
    let db = TestDb::new().await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
          WHERE c.table_schema = 'wa' AND c.column_name = 'session_id' AND t.table_type = 'BASE TABLE'
            AND c.table_name NOT IN ('job_rows', 'inbox', 'contacts', 'chat_states', 'calls', 'media', 'groups', 'webhooks')
          ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(tables.len() >= 18, "{tables:?}");
    let wipe = pgwa_pg::keys::cleanup::WIPE;
    let mut named: Vec<String> =
        wipe.split("DELETE FROM wa.").skip(1).map(|rest| rest.split_whitespace().next().unwrap().to_string()).collect();
    named.sort();
    assert_eq!(named, tables, "queries/wipe_session_state.sql must delete from exactly the key tables");
    db.drop_now().await.unwrap();
}

/// A wipe is the last key write of its lease. whatsapp-rust writes sent copies and message
/// secrets from detached tasks, and the key store's lingering lane holds them up to 10 ms:
/// one queued just before a close_session's wipe would land after it, under a fence still
/// valid, and leave a row of the wiped device behind. Now it is wiped or refused, and
/// every key write of that epoch after the wipe is refused (combined lanes and single
/// statements alike); the next lease writes again.
#[tokio::test]
async fn no_key_write_outlives_a_wipe() {
    use pgwa_pg::keys::{Combiner, is_lease_lost};
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let w = pgwa_testkit::worker_row(pool).await.unwrap();
    let fence = pgwa_testkit::held_by(pool, "s1", w).await.unwrap();
    let b = PgBackend::fenced(pool.clone(), fence.clone()).combining(Combiner::new(pool.clone()));
    b.save(&Device::new()).await.unwrap();
    let rows = |table: &'static str| async move { pgwa_testkit::session_rows(pool, table, "s1").await.unwrap() };

    let late = tokio::spawn({
        let b = b.clone();
        async move { b.store_sent_message("c@lid", "M1", b"p").await }
    });
    tokio::task::yield_now().await;
    wipe_session_state(pool, &fence).await.unwrap();
    let late = late.await.unwrap();
    assert!(late.as_ref().err().is_none_or(is_lease_lost), "{late:?}");
    assert_eq!(rows("sent_messages").await, 0, "the sent copy queued before the wipe was wiped or refused");

    let secret = MsgSecretEntry::new(&"c@lid".parse().unwrap(), &"c@lid".parse().unwrap(), "M2", [1; 32], 0, 1);
    let refused = [
        b.store_sent_message("c@lid", "M2", b"p").await.unwrap_err(),
        b.put_msg_secrets(vec![secret]).await.map(drop).unwrap_err(),
        b.put_session("c.0", b"ratchet").await.unwrap_err(),
        b.save(&Device::new()).await.unwrap_err(),
    ];
    for err in &refused {
        assert!(is_lease_lost(err), "{err}");
    }
    for table in ["sent_messages", "msg_secrets", "signal_sessions", "auth_state"] {
        assert_eq!(rows(table).await, 0, "{table} written after the wipe");
    }

    let next = pgwa_testkit::take_over(pool, "s1", w).await.unwrap();
    let b = PgBackend::fenced(pool.clone(), next).combining(Combiner::new(pool.clone()));
    b.store_sent_message("c@lid", "M3", b"p").await.unwrap();
    b.save(&Device::new()).await.unwrap();
    assert_eq!((rows("sent_messages").await, rows("auth_state").await), (1, 1), "the next lease writes keys again");
    db.drop_now().await.unwrap();
}
