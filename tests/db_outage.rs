//! Postgres stops answering while an inbound message is being stored. The message's
//! buffered copy (whatsapp-rust's pending-inbound row) and its inbox row must wait for
//! the database, not fail: a failed buffer write leaves a message that a redelivery can
//! no longer recover (the ratchet moved past it). The outage is a gate in front of the
//! real Postgres that drops every connection until it opens.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pgwa_core::fence::Fence;
use pgwa_core::wa::InboundMessage;
use pgwa_pg::keys::PgBackend;
use pgwa_testkit::TestDb;
use pgwa_wa::rust::inbound::InboxHook;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::{TcpListener, TcpStream};
use whatsapp_rust::wacore::store::traits::{PendingInboundRow, ProtocolStore};

/// A TCP gate on 127.0.0.1 in front of the local Postgres: closed, it accepts and drops
/// every connection (what a client sees while Postgres restarts); open, it forwards.
struct Gate {
    port: u16,
    open: Arc<AtomicBool>,
}

impl Gate {
    async fn closed() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(false));
        let is_open = open.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
                    }
                });
            }
        });
        Gate { port, open }
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// A pool on `db` through the gate; it connects lazily, so it is built while closed.
    fn pool(&self, db: &TestDb) -> PgPool {
        let opts: PgConnectOptions = db.url.parse::<PgConnectOptions>().unwrap().host("127.0.0.1").port(self.port);
        PgPoolOptions::new().max_connections(2).acquire_timeout(Duration::from_millis(500)).connect_lazy_with(opts)
    }
}

fn message(id: &str) -> InboundMessage {
    InboundMessage {
        chat: "15550001111@s.whatsapp.net".into(),
        sender: "15550001111@s.whatsapp.net".into(),
        message_id: id.into(),
        kind: "text".into(),
        text: Some("during the outage".into()),
        ..Default::default()
    }
}

fn hook(pool: PgPool, fence: Fence, outage_wait: Duration) -> InboxHook {
    let writer = pgwa_pg::inbox::InboxWriter::new(pool.clone());
    InboxHook { pool, writer, fence, unbuffered: Default::default(), attempts: 3, pause: Duration::from_millis(10), outage_wait }
}

async fn count(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM wa.{table}"))).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn the_inbox_hook_waits_for_the_database_and_then_stores_once() {
    let db = TestDb::new().await.unwrap();
    let fence = common::held_s1(&db).await;
    let gate = Gate::closed().await;
    let hook = hook(gate.pool(&db), fence, Duration::from_secs(60));

    let commit = tokio::spawn(async move { hook.commit(vec![message("OUT1")]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!commit.is_finished(), "the hook gave up during the outage instead of waiting");
    assert_eq!(count(&db, "inbox").await, 0);

    gate.open();
    let stored = tokio::time::timeout(Duration::from_secs(15), commit).await.expect("stored once the database answers");
    assert_eq!(stored.unwrap().unwrap(), 1);
    assert_eq!(count(&db, "inbox").await, 1);
}

#[tokio::test]
async fn the_inbox_hook_fails_after_its_outage_wait_and_names_what_failed() {
    let db = TestDb::new().await.unwrap();
    let fence = common::held_s1(&db).await;
    let gate = Gate::closed().await;
    let hook = hook(gate.pool(&db), fence, Duration::from_millis(300));

    let err = tokio::time::timeout(Duration::from_secs(10), hook.commit(vec![message("OUT2")]))
        .await
        .expect("the hook gives up after its outage wait")
        .unwrap_err();
    assert!(format!("{err:#}").contains("storing an inbound message in wa.inbox"), "{err:#}");
    assert_eq!(count(&db, "inbox").await, 0);
}

#[tokio::test]
async fn the_pending_inbound_buffer_waits_for_the_database_when_asked_to() {
    let db = TestDb::new().await.unwrap();
    let fence = common::held_s1(&db).await;
    let gate = Gate::closed().await;
    let row = [PendingInboundRow { chat: "c@s.whatsapp.net", sender: "c@s.whatsapp.net", id: "P1", message: b"m" }];

    // Without a wait (the default, e.g. for the CLI's imports) it fails at once.
    let plain = PgBackend::fenced(gate.pool(&db), fence.clone());
    let err = tokio::time::timeout(Duration::from_secs(10), plain.store_pending_inbound_batch(&row))
        .await
        .expect("a backend without an outage wait fails by itself");
    assert!(err.is_err());

    let waiting = PgBackend::fenced(gate.pool(&db), fence.clone()).waiting_out_outages(Duration::from_secs(60));
    let store = tokio::spawn(async move { waiting.store_pending_inbound_batch(&row).await.map_err(|e| e.to_string()) });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!store.is_finished(), "the buffer write gave up during the outage instead of waiting");
    gate.open();
    tokio::time::timeout(Duration::from_secs(15), store).await.expect("buffered once the database answers").unwrap().unwrap();
    assert_eq!(count(&db, "pending_inbound").await, 1);
}
