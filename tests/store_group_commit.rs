//! Group commit of key writes (pgwa_pg::keys::Combiner): the per-message writes of many
//! sessions go in few statements, each write keeps its own session's fence, and nothing
//! of a fenced-out session is written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwa_pg::keys::{Combiner, PgBackend, is_lease_lost};
use pgwa_testkit::{TestDb, held_by, take_over};
use whatsapp_rust::Jid;
use whatsapp_rust::wacore::store::traits::*;

async fn worker(pool: &sqlx::PgPool) -> uuid::Uuid {
    pgwa_testkit::worker_row(pool).await.unwrap()
}

async fn count(pool: &sqlx::PgPool, table: &str, session: &str) -> i64 {
    pgwa_testkit::session_rows(pool, table, session).await.unwrap()
}

/// `n` sessions `<prefix>00`.. held by `w`, their fenced backends writing through `combiner`.
async fn held_backends(pool: &sqlx::PgPool, prefix: &str, n: usize, w: uuid::Uuid, combiner: &Arc<Combiner>) -> Vec<PgBackend> {
    let mut backends = Vec::new();
    for i in 0..n {
        let fence = held_by(pool, &format!("{prefix}{i:02}"), w).await.unwrap();
        backends.push(PgBackend::fenced(pool.clone(), fence).combining(combiner.clone()));
    }
    backends
}

fn secret(chat: &str, id: &str, byte: u8, expires_at: i64, message_ts: i64) -> MsgSecretEntry {
    let chat: Jid = chat.parse().unwrap();
    MsgSecretEntry::new(&chat, &chat, id, [byte; 32], expires_at, message_ts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_many_sessions_go_together_and_each_keeps_its_fence() {
    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let (w1, w2) = (worker(pool).await, worker(pool).await);
    let combiner = Combiner::new(pool.clone());
    let backends = held_backends(pool, "g", 20, w1, &combiner).await;
    // g00 is taken over after its backend was built: w1's writes for it are stale.
    take_over(pool, "g00", w2).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for b in &backends {
        for m in 0..10u8 {
            let b = b.clone();
            tasks.spawn(async move {
                let id = format!("M{m}");
                let results = [
                    b.put_msg_secrets(vec![secret("c@lid", &id, m, 100 + i64::from(m), 7)]).await.map(drop),
                    b.store_sent_message("c@lid", &id, &[m; 3]).await,
                    b.store_pending_inbound("c@lid", "s@lid", &id, &[m; 4]).await,
                    // Half the buffered rows are taken off again, once stored.
                    if m % 2 == 0 { b.delete_pending_inbound("c@lid", "s@lid", &id).await } else { Ok(()) },
                ];
                (b.session_id().to_owned(), results)
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (session, results) = done.unwrap();
        for r in results {
            match (session.as_str(), r) {
                ("g00", Err(e)) => assert!(is_lease_lost(&e), "{session}: {e:?}"),
                ("g00", Ok(())) => {} // an odd message's skipped delete
                (_, r) => r.unwrap_or_else(|e| panic!("{session}: {e:?}")),
            }
        }
    }

    assert_eq!(count(pool, "msg_secrets", "g00").await + count(pool, "sent_messages", "g00").await, 0);
    assert_eq!(count(pool, "pending_inbound", "g00").await, 0, "nothing of the stale session was written");
    for i in 1..20 {
        let s = format!("g{i:02}");
        assert_eq!(count(pool, "msg_secrets", &s).await, 10, "{s}");
        assert_eq!(count(pool, "sent_messages", &s).await, 10, "{s}");
        let kept: Vec<String> =
            sqlx::query_scalar("SELECT stanza_id FROM wa.pending_inbound WHERE session_id = $1 ORDER BY stanza_id")
                .bind(&s)
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(kept, ["M1", "M3", "M5", "M7", "M9"], "{s}: the stored rows whose delete came after them are gone");
    }
    let reader = PgBackend::offline(pool.clone(), "g07");
    assert_eq!(reader.get_msg_secret_with_ts("c@lid", "c@lid", "M3").await.unwrap(), Some((vec![3; 32], 7)));
    assert_eq!(reader.get_pending_inbound("c@lid", "s@lid", "M3").await.unwrap(), Some(vec![3; 4]));

    let counts = combiner.counts();
    assert_eq!(counts.writes, 20 * 10 * 3 + 20 * 5);
    assert!(counts.statements * 4 <= counts.writes, "700 concurrent writes should share statements: {counts:?}");
}

/// Two writes of one message's secret, however they are batched, end as the store
/// trait's merge rule says: "never expires" (0) wins, the later message time wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_of_one_secret_in_one_statement_merge_as_in_sequence() {
    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let w = worker(pool).await;
    let combiner = Combiner::new(pool.clone());
    let b = PgBackend::fenced(pool.clone(), held_by(pool, "merge", w).await.unwrap()).combining(combiner.clone());
    let (a, z) = tokio::join!(
        b.put_msg_secrets(vec![secret("c@lid", "X", 1, 0, 5)]),
        b.put_msg_secrets(vec![secret("c@lid", "X", 1, 500, 9), secret("c@lid", "X", 1, 600, 8)]),
    );
    assert_eq!((a.unwrap(), z.unwrap()), (1, 2));
    let (expires, ts): (i64, i64) =
        sqlx::query_as("SELECT expires_at, message_ts FROM wa.msg_secrets WHERE session_id = 'merge' AND msg_id = 'X'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((expires, ts), (0, 9));
}

/// Lease renewal locks a worker's session rows while combined writes share-lock several
/// of them: both take them in id order, so neither waits on the other in a cycle. The
/// sessions are created (and so laid out) in the reverse of their id order, the order an
/// index scan on the owner would lock them in. Deadlocks are detected after 20 ms here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_renewals_and_combined_writes_never_deadlock() {
    let db = TestDb::with_pool_size(2).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{}\" SET deadlock_timeout = '20ms'", db.name)))
        .execute(&db.pool)
        .await
        .unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect(&db.url).await.unwrap();
    let w = worker(&pool).await;
    let combiner = Combiner::new(pool.clone());
    let mut backends = Vec::new();
    for i in (0..40).rev() {
        let fence = held_by(&pool, &format!("d{i:02}"), w).await.unwrap();
        backends.push(PgBackend::fenced(pool.clone(), fence).combining(combiner.clone()));
    }
    let until = Instant::now() + Duration::from_secs(3);
    let renewals = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut n = 0;
            while Instant::now() < until {
                let held = pgwa_pg::leases::renew(&pool, w, 3600.0).await.expect("a renewal failed");
                assert_eq!(held.len(), 40);
                n += 1;
            }
            n
        }
    });
    let mut writers = tokio::task::JoinSet::new();
    for (t, b) in backends.into_iter().enumerate() {
        writers.spawn(async move {
            let mut m = 0u32;
            while Instant::now() < until {
                b.store_sent_message("c@lid", &format!("{t}-{m}"), b"p").await.expect("a combined write failed");
                m += 1;
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    assert!(renewals.await.unwrap() > 10, "renewals ran alongside the writes");
    let counts = combiner.counts();
    assert!(counts.writes > 100, "{counts:?}");
    assert_eq!(counts.deadlocks, 0, "combined writes lost deadlocks to lease renewals: {counts:?}");
}

/// A write Postgres refuses (a NUL byte in a message id, which a text column cannot hold)
/// fails alone: the other sessions' writes that shared its statement are made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_fails_only_its_own_write() {
    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let w = worker(pool).await;
    let combiner = Combiner::new(pool.clone());
    let mut backends = Vec::new();
    for i in 0..5 {
        backends
            .push(PgBackend::fenced(pool.clone(), held_by(pool, &format!("r{i}"), w).await.unwrap()).combining(combiner.clone()));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for m in 0..20 {
        for b in &backends {
            let b = b.clone();
            let id = if m == 10 && b.session_id() == "r2" { "bad\0id".to_owned() } else { format!("M{m}") };
            tasks.spawn(async move { (id.clone(), b.store_sent_message("c@lid", &id, b"p").await) });
        }
    }
    let mut failed = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (id, r) = done.unwrap();
        if let Err(e) = r {
            assert!(!is_lease_lost(&e), "{e:?}");
            failed.push(id);
        }
    }
    assert_eq!(failed, ["bad\0id"]);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.sent_messages").fetch_one(pool).await.unwrap();
    assert_eq!(stored, 99);
}

/// whatsapp-rust's write-behind flushes of Signal session records, from many sessions at
/// once, share statements (their own, apart from the per-message writes), each under its
/// session's fence; the last record written for an address is the one kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_records_of_many_sessions_go_together_and_each_keeps_its_fence() {
    use whatsapp_rust::bytes::Bytes;

    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let (w1, w2) = (worker(pool).await, worker(pool).await);
    let combiner = Combiner::new(pool.clone());
    let backends = held_backends(pool, "q", 20, w1, &combiner).await;
    take_over(pool, "q00", w2).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for b in &backends {
        let b = b.clone();
        tasks.spawn(async move {
            let mut results = Vec::new();
            // Each flush writes three contacts' records; a later flush rewrites them.
            for round in 0..5u8 {
                let records: Vec<(Arc<str>, Bytes)> =
                    (0..3u8).map(|c| (Arc::from(format!("c{c}@lid.0")), Bytes::from(vec![round, c]))).collect();
                results.push(b.put_sessions_batch(&records).await);
            }
            (b.session_id().to_owned(), results)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (session, results) = done.unwrap();
        for r in results {
            match (session.as_str(), r) {
                ("q00", Err(e)) => assert!(is_lease_lost(&e), "{session}: {e:?}"),
                (_, r) => r.unwrap_or_else(|e| panic!("{session}: {e:?}")),
            }
        }
    }

    assert_eq!(count(pool, "signal_sessions", "q00").await, 0, "nothing of the stale session was written");
    for i in 1..20 {
        let s = format!("q{i:02}");
        assert_eq!(count(pool, "signal_sessions", &s).await, 3, "{s}");
        let reader = PgBackend::offline(pool.clone(), &s);
        assert_eq!(reader.get_session("c1@lid.0").await.unwrap().as_deref(), Some(&[4u8, 1][..]), "{s}: the last round's record");
    }
    let counts = combiner.counts();
    assert_eq!(counts.writes, 20 * 5, "every flush went through the group commit: {counts:?}");
    assert!(counts.statements * 2 <= counts.writes, "100 concurrent flushes should share statements: {counts:?}");
}

/// Each lane keeps its connection between statements (no pool round trips); when that
/// connection was cut while it waited (a Postgres restart, a dropped link), the next
/// write goes through on a fresh one instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_its_lanes_connection_was_cut_goes_through_on_a_fresh_one() {
    use whatsapp_rust::bytes::Bytes;

    let db = TestDb::with_pool_size(4).await.unwrap();
    let pool = &db.pool;
    let combiner = Combiner::new(pool.clone());
    let b = held_backends(pool, "x", 1, worker(pool).await, &combiner).await.remove(0);
    let record = |byte: u8| [(Arc::from("c@lid.0"), Bytes::from(vec![byte]))];
    b.store_sent_message("c@lid", "M1", b"p").await.unwrap();
    b.put_sessions_batch(&record(1)).await.unwrap();

    let cut = pgwa_testkit::cut_connections(pool, "WITH fence AS%").await.unwrap();
    assert_eq!(cut, 2, "one held connection per lane");
    b.store_sent_message("c@lid", "M2", b"p").await.unwrap();
    b.put_sessions_batch(&record(2)).await.unwrap();

    assert_eq!(count(pool, "sent_messages", "x00").await, 2);
    let kept: Vec<u8> =
        sqlx::query_scalar("SELECT record FROM wa.signal_sessions WHERE session_id = 'x00'").fetch_one(pool).await.unwrap();
    assert_eq!(kept, [2]);
    let c = combiner.counts();
    assert_eq!((c.writes, c.statements), (4, 6), "each lane wrote once more, on a fresh connection: {c:?}");
    db.drop_now().await.unwrap();
}

async fn buffered_ids(pool: &sqlx::PgPool, session: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT stanza_id FROM wa.pending_inbound WHERE session_id = $1 ORDER BY stanza_id")
        .bind(session)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A session connection holds its inbound copies (wa.pending_inbound) in memory and
/// writes them before any other write of its keys: no ratchet is durable before the copy
/// of a message it decrypted, and a copy whose message the inbox stored first is never
/// written at all.
#[tokio::test]
async fn inbound_copies_are_written_before_the_next_key_write() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let w = worker(pool).await;
    let combiner = Combiner::new(pool.clone());
    let unbuffered = Arc::new(pgwa_pg::unbuffered::Unbuffered::default());
    let fence = held_by(pool, "h00", w).await.unwrap();
    let b = PgBackend::fenced(pool.clone(), fence).combining(combiner).unbuffered_by(unbuffered.clone());
    let (chat, sender) = ("c@lid", "s@lid");
    let copy = |id: &'static str| PendingInboundRow { chat, sender, id, message: id.as_bytes() };

    b.store_pending_inbound_batch(&[copy("A"), copy("B")]).await.unwrap();
    assert!(buffered_ids(pool, "h00").await.is_empty(), "held, not written");
    assert_eq!(b.get_pending_inbound(chat, sender, "B").await.unwrap(), Some(b"B".to_vec()), "a redelivery finds the copy");
    // The inbox stored A: its copy is dropped. A ratchet write (whatsapp-rust's
    // write-behind flush of Signal session records) writes B's first.
    unbuffered.cleared(chat, sender, "A").await;
    b.put_session("s.0", b"ratchet").await.unwrap();
    assert_eq!(buffered_ids(pool, "h00").await, ["B"]);
    // whatsapp-rust's delete after its hook: A was never written, B goes from the table.
    let keys = [PendingInboundKey { chat, sender, id: "A" }, PendingInboundKey { chat, sender, id: "B" }];
    b.delete_pending_inbound_batch(&keys).await.unwrap();
    assert!(buffered_ids(pool, "h00").await.is_empty());

    // A write of its own statement (a prekey's removal) goes after the copies too.
    b.store_pending_inbound_batch(&[copy("C")]).await.unwrap();
    b.remove_prekey(7).await.unwrap();
    assert_eq!(buffered_ids(pool, "h00").await, ["C"]);
}

/// Copy writes make no ratchet durable: while a batch is held, the next message's copy,
/// a delete of written copies, a sent copy and message secrets go out without writing the
/// held batch, so such a message waits for one commit, not two.
#[tokio::test]
async fn copy_writes_do_not_settle_the_held_copies() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let w = worker(pool).await;
    let unbuffered = Arc::new(pgwa_pg::unbuffered::Unbuffered::default());
    let fence = held_by(pool, "h02", w).await.unwrap();
    let b = PgBackend::fenced(pool.clone(), fence).combining(Combiner::new(pool.clone())).unbuffered_by(unbuffered);
    let (chat, sender) = ("c@lid", "s@lid");
    let copy = |id: &'static str| PendingInboundRow { chat, sender, id, message: id.as_bytes() };

    b.store_pending_inbound_batch(&[copy("A")]).await.unwrap();
    b.store_pending_inbound_batch(&[copy("B")]).await.unwrap();
    assert_eq!(buffered_ids(pool, "h02").await, ["B"], "A is held; B, written at once, did not write it");
    b.delete_pending_inbound_batch(&[PendingInboundKey { chat, sender, id: "B" }]).await.unwrap();
    b.store_sent_message("c@s.whatsapp.net", "S1", b"sent").await.unwrap();
    b.put_msg_secrets(vec![secret("c@s.whatsapp.net", "S1", 7, 0, 1)]).await.unwrap();
    assert!(buffered_ids(pool, "h02").await.is_empty(), "A is still held");
    assert_eq!(count(pool, "sent_messages", "h02").await, 1);
    assert_eq!(count(pool, "msg_secrets", "h02").await, 1);
    b.put_session("s.0", b"ratchet").await.unwrap();
    assert_eq!(buffered_ids(pool, "h02").await, ["A"], "a ratchet write writes it first");
}

/// When the held copies cannot be written (here the session was taken over), the key
/// write behind them is not made: a ratchet never gets ahead of its message's copy.
#[tokio::test]
async fn a_key_write_fails_when_the_copies_before_it_cannot_be_written() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    let (w1, w2) = (worker(pool).await, worker(pool).await);
    let unbuffered = Arc::new(pgwa_pg::unbuffered::Unbuffered::default());
    let fence = held_by(pool, "h01", w1).await.unwrap();
    let b = PgBackend::fenced(pool.clone(), fence).combining(Combiner::new(pool.clone())).unbuffered_by(unbuffered);
    let row = PendingInboundRow { chat: "c@lid", sender: "s@lid", id: "A", message: b"m" };
    b.store_pending_inbound_batch(&[row]).await.unwrap();
    take_over(pool, "h01", w2).await.unwrap();

    let err = b.put_session("s.0", b"ratchet").await.unwrap_err();
    assert!(is_lease_lost(&err), "{err}");
    assert_eq!(count(pool, "signal_sessions", "h01").await, 0);
    assert_eq!(b.get_pending_inbound("c@lid", "s@lid", "A").await.unwrap(), Some(b"m".to_vec()), "the copy is still held");
}

/// Row writes of wa.tc_tokens so far, counted by a trigger the test adds.
async fn token_writes(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT n FROM token_writes").fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn touches_of_one_contact_write_once_and_never_lose_a_newer_timestamp() {
    let db = TestDb::new().await.unwrap();
    let pool = &db.pool;
    for sql in [
        "CREATE TABLE token_writes (n bigint NOT NULL)",
        "INSERT INTO token_writes VALUES (0)",
        "CREATE FUNCTION count_token_write() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN UPDATE token_writes SET n = n + 1; RETURN NULL; END $$",
        "CREATE TRIGGER count_token_write AFTER INSERT OR UPDATE ON wa.tc_tokens
             FOR EACH ROW EXECUTE FUNCTION count_token_write()",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    let fence = held_by(pool, "touch", worker(pool).await).await.unwrap();
    let b = Arc::new(PgBackend::fenced(pool.clone(), fence));
    let sender_ts = || async {
        let ts: Option<i64> =
            sqlx::query_scalar("SELECT sender_ts FROM wa.tc_tokens WHERE session_id = 'touch' AND jid = 'c@lid'")
                .fetch_one(pool)
                .await
                .unwrap();
        ts
    };
    let touch_all = |stamps: Vec<i64>| {
        let tasks: Vec<_> = stamps
            .into_iter()
            .map(|ts| {
                let b = b.clone();
                tokio::spawn(async move { b.touch_tc_token_sender_timestamp("c@lid", ts).await })
            })
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        }
    };

    // A burst to a new contact: every send issued a token, every issuance touches.
    touch_all(vec![100; 50]).await;
    assert_eq!(token_writes(pool).await, 1, "fifty touches of one timestamp are one write");
    assert_eq!(sender_ts().await, Some(100));
    touch_all(vec![90, 100, 95]).await;
    assert_eq!(token_writes(pool).await, 1, "the row already holds them");
    touch_all((0..30).map(|i| 101 + i % 3).collect()).await;
    let n = token_writes(pool).await;
    assert!((2..=4).contains(&n), "three newer timestamps are at most three writes, made {}", n - 1);
    assert_eq!(sender_ts().await, Some(103), "the newest wins");

    // A put may lower the timestamp: a touch after it writes again.
    let low = TcTokenEntry { token: b"tok".to_vec(), token_timestamp: 7, sender_timestamp: Some(50) };
    b.put_tc_token("c@lid", &low).await.unwrap();
    assert_eq!(sender_ts().await, Some(50));
    b.touch_tc_token_sender_timestamp("c@lid", 103).await.unwrap();
    assert_eq!(sender_ts().await, Some(103), "a touch after a put is written");
    let read = b.get_tc_token("c@lid").await.unwrap().unwrap();
    assert_eq!((read.token, read.sender_timestamp), (b"tok".to_vec(), Some(103)), "the cache saw the touch");
    // So does a delete (the row is gone) and the expiry sweep.
    b.delete_tc_token("c@lid").await.unwrap();
    b.touch_tc_token_sender_timestamp("c@lid", 103).await.unwrap();
    assert_eq!(sender_ts().await, Some(103), "a touch after a delete makes the placeholder again");
    let before = token_writes(pool).await;
    b.delete_expired_tc_tokens(i64::MAX, i64::MAX).await.unwrap();
    b.touch_tc_token_sender_timestamp("c@lid", 103).await.unwrap();
    assert_eq!((token_writes(pool).await - before, sender_ts().await), (1, Some(103)), "after a sweep it writes again");
    db.drop_now().await.unwrap();
}
