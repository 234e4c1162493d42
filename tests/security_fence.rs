//! One fence guards every write a worker makes for a session (keys, key wipes, session
//! state, inbox rows, job outcomes, the release), and it holds only while the lease is
//! live: a worker paused past its lease writes nothing, even before anyone takes the
//! session over, until its next renewal succeeds. Offline writers (the importer) cannot
//! touch a session a worker holds. docs/security.md, "What a lost lease stops".

use pgwa_core::fence::Fence;
use pgwa_core::job::CleanupScope;
use pgwa_core::wa::InboundMessage;
use pgwa_pg::keys::cleanup::run_cleanup;
use pgwa_pg::keys::{OfflineWriteRefused, PgBackend, is_lease_lost};
use pgwa_pg::{jobs, leases, sessions, workers};
use pgwa_testkit::TestDb;
use uuid::Uuid;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::traits::*;

async fn snapshot(pool: &sqlx::PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(E'\\n',
            (SELECT string_agg(to_jsonb(j)::text, E'\\n' ORDER BY id) FROM wa.jobs j),
            (SELECT (to_jsonb(s) - 'updated_at')::text FROM wa.sessions s WHERE id = 's1'),
            (SELECT count(*)::text FROM wa.inbox),
            (SELECT count(*)::text FROM wa.auth_state),
            (SELECT count(*)::text FROM wa.signal_sessions))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

fn inbound() -> InboundMessage {
    InboundMessage {
        chat: "15550000001@s.whatsapp.net".into(),
        sender: "15550000001@s.whatsapp.net".into(),
        message_id: "3EB0AAAAAAAAAAAAAAAA".into(),
        kind: "text".into(),
        text: Some("hi".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_worker_whose_lease_expired_writes_nothing_until_it_renews() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let me = Uuid::now_v7();
    workers::register(pool, &pgwa_pg::workers::Registration::new(me, "w", 10)).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(pool).await.unwrap();
    PgBackend::offline(pool.clone(), "s1").save(&Device::new()).await.unwrap();
    sqlx::query("SELECT wa.send_text('s1', '+15550000001', 'x')").execute(pool).await.unwrap();
    let held = leases::claim(pool, me, 30.0, 10).await.unwrap();
    let ids = vec!["s1".to_string()];
    let req = jobs::ClaimRequest { worker: me, held: &ids, connected: &ids, per_session: 10, sessionless: 0 };
    let claimed = jobs::claim(pool, &req).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let fence = Fence { worker: me, session: "s1".into(), epoch: held[0].epoch };
    let keys = PgBackend::fenced(pool.clone(), fence.clone());
    keys.put_session("a@lid", b"v1").await.unwrap();

    // Paused past the lease; nobody has taken the session over: owner and epoch still match.
    sqlx::query("UPDATE wa.sessions SET lease_expires_at = now() - interval '1 second'").execute(pool).await.unwrap();
    let before = snapshot(pool).await;
    assert!(is_lease_lost(&keys.put_session("a@lid", b"v2").await.unwrap_err()));
    assert!(is_lease_lost(&keys.delete_session("a@lid").await.unwrap_err()));
    assert!(is_lease_lost(&keys.save(&Device::new()).await.unwrap_err()));
    for scope in [CleanupScope::All, CleanupScope::AppStateKeys, CleanupScope::Peer { jid: "1@s.whatsapp.net".into() }] {
        let e = run_cleanup(pool, &fence, &scope).await.unwrap_err();
        assert!(e.downcast_ref::<pgwa_core::fence::LeaseLost>().is_some(), "{scope:?}: {e:#}");
    }
    assert!(!sessions::set_status(pool, &fence, pgwa_core::session::SessionStatus::Connected, None, None).await.unwrap());
    assert!(!sessions::mark_connected(pool, &fence, Some("1@s.whatsapp.net"), None).await.unwrap());
    assert!(!sessions::publish_qr(pool, &fence, "qr", chrono::Utc::now()).await.unwrap());
    assert!(!sessions::record_error(pool, &fence, "x").await.unwrap());
    assert!(!sessions::set_desired_stopped(pool, &fence, "x").await.unwrap());
    assert!(sessions::count_decrypt_failure(pool, &fence, true).await.unwrap().is_none());
    assert!(sessions::insert_inbound(pool, &fence, &inbound()).await.unwrap().is_none());
    assert_eq!(sessions::held(pool, &fence).await.unwrap(), Some(false));
    let recorded = jobs::complete(pool, me, &[claimed[0].job.id], &[serde_json::json!({})], &[None]).await.unwrap();
    assert!(recorded.is_empty(), "an outcome after the lease expired is not recorded");
    assert!(!leases::release(pool, me, "s1", fence.epoch, Some(pgwa_core::session::SessionStatus::Stopped), None).await.unwrap());
    assert_eq!(snapshot(pool).await, before, "a write went through an expired lease");

    // The renewal succeeds (nobody took it over), and then the same fence writes again.
    assert_eq!(leases::renew(pool, me, 30.0).await.unwrap().len(), 1);
    keys.put_session("a@lid", b"v3").await.unwrap();
    assert!(sessions::insert_inbound(pool, &fence, &inbound()).await.unwrap().is_some());
    assert_eq!(jobs::complete(pool, me, &[claimed[0].job.id], &[serde_json::json!({})], &[None]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn offline_writers_cannot_touch_a_held_session() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let me = Uuid::now_v7();
    workers::register(pool, &pgwa_pg::workers::Registration::new(me, "w", 10)).await.unwrap();
    sqlx::query("SELECT wa.add_session('s1')").execute(pool).await.unwrap();
    let offline = PgBackend::offline(pool.clone(), "s1");
    offline.put_session("a@lid", b"v1").await.unwrap();
    leases::claim(pool, me, 30.0, 10).await.unwrap();
    let before = snapshot(pool).await;
    let e = offline.put_session("a@lid", b"v2").await.unwrap_err();
    let source = std::error::Error::source(&e).expect("a cause");
    assert!(source.is::<OfflineWriteRefused>(), "{e:?}");
    assert!(source.to_string().contains("wa.stop_session"), "says what to do: {source}");
    assert!(offline.save(&Device::new()).await.is_err());
    assert_eq!(snapshot(pool).await, before);
    // Once the lease is gone (released or expired), offline writes are fine again.
    sqlx::query("UPDATE wa.sessions SET lease_expires_at = now() - interval '1 second'").execute(pool).await.unwrap();
    offline.put_session("a@lid", b"v3").await.unwrap();
}
