//! The queue's hot statements (claim, completions, failures) are planned once per queue
//! connection, usually while `wa.jobs` is empty (a fresh install, a worker started
//! before the first send), and the plans are kept for the connection's life. They must
//! stay index-driven whatever the table holds later: a claim plan that scanned the
//! table, or joined the batch with its chats by comparing every pair, cost 0.5 s per
//! claim of 2,000 jobs whose chats were busy. The claim's per-chat FIFO is checked with
//! the plan, with a send that another transaction holds, and against a model of the rule
//! over random queues.

use pgwa_testkit::TestDb;
use rand010::rngs::StdRng;
use rand010::{RngExt, SeedableRng};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Connection, Postgres};

const WORKER: &str = "00000000-0000-0000-0000-0000000000aa";

/// Every plan node, depth first.
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        nodes(child, out);
    }
}

async fn exec(conn: &mut PoolConnection<Postgres>, sql: String) {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut **conn).await.unwrap();
}

/// The plan's nodes, after checking that no node reads `wa.jobs` (or anything) from
/// end to end and that no join compares every pair of its inputs.
async fn checked_plan(conn: &mut PoolConnection<Postgres>, what: &str, execute: &str) -> Vec<Value> {
    let explain = format!("EXPLAIN (FORMAT JSON) {execute}");
    let plan: Value = sqlx::query_scalar(AssertSqlSafe(explain)).fetch_one(&mut **conn).await.unwrap();
    let mut all = Vec::new();
    nodes(&plan[0]["Plan"], &mut all);
    let text = plan.to_string();
    for n in &all {
        let kind = n["Node Type"].as_str().unwrap_or_default();
        assert_ne!(kind, "Seq Scan", "{what}: scans {} sequentially: {text}", n["Relation Name"]);
        assert!(
            !(kind == "Nested Loop" && n.get("Join Filter").is_some()),
            "{what}: compares every pair of a join instead of looking rows up ({}): {text}",
            n["Join Filter"]
        );
    }
    all
}

/// A scratch database in which a new worker holds every session `setup` added (SQL run
/// first, which may also queue their jobs), `sessions` of them; and the worker's id.
async fn leased(setup: &'static str, sessions: usize) -> (TestDb, uuid::Uuid) {
    use pgwa_pg::{leases, workers};
    let db = TestDb::new().await.unwrap();
    let me = uuid::Uuid::now_v7();
    workers::register(&db.pool, &workers::Registration::new(me, "w", 10)).await.unwrap();
    sqlx::raw_sql(setup).execute(&db.pool).await.unwrap();
    assert_eq!(leases::claim(&db.pool, me, 300.0, 10).await.unwrap().len(), sessions, "the worker leases every session");
    (db, me)
}

/// Prepares the claim on `conn` as `claim`, the statement the worker runs.
async fn prepare_claim(conn: &mut PoolConnection<Postgres>) {
    exec(conn, format!("PREPARE claim(uuid, text[], text[], bigint, bigint, text[]) AS {}", pgwa_pg::jobs::CLAIM)).await;
}

/// The prepared claim by `worker` of up to `per_session` jobs from each of `sessions`
/// (held and connected) and `sessionless` jobs of no session, of every kind.
fn execute_claim(worker: &str, sessions: &[&str], per_session: i64, sessionless: i64) -> String {
    let kinds: Vec<&str> = pgwa_core::job::JobKind::ALL.iter().map(|k| k.as_str()).collect();
    let (sessions, kinds) = (sessions.join(","), kinds.join(","));
    format!("EXECUTE claim('{worker}', '{{{sessions}}}', '{{{sessions}}}', {per_session}, {sessionless}, '{{{kinds}}}')")
}

#[tokio::test]
async fn queue_plans_made_on_an_empty_table_stay_index_driven() {
    let db = TestDb::new().await.unwrap();
    let queue = pgwa_pg::queue_pool(&db.pool, false, 1);
    let mut conn = queue.acquire().await.unwrap();
    // With worker.poll_only these statements run on the main pool, whose prepared
    // statements Postgres may switch to a generic plan after a few runs; force it, the
    // worst case.
    let mut plain = db.pool.acquire().await.unwrap();
    exec(&mut plain, "SET plan_cache_mode = force_generic_plan".into()).await;
    let claim = execute_claim(WORKER, &["s1"], 5000, 2);

    // The plans are made and cached while the table is empty, as a new worker's are.
    // (Autovacuum is off for the table, so no ANALYZE replans them behind the test's
    // back; the ALTER comes first because it too would replan.)
    sqlx::raw_sql("ALTER TABLE wa.job_rows SET (autovacuum_enabled = false)").execute(&db.pool).await.unwrap();
    let empty: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.jobs").fetch_one(&db.pool).await.unwrap();
    assert_eq!(empty, 0);
    for c in [&mut conn, &mut plain] {
        prepare_claim(c).await;
        exec(c, format!("PREPARE complete(uuid, bigint[], jsonb[], timestamptz[]) AS {}", pgwa_pg::jobs::COMPLETE)).await;
        exec(c, format!("PREPARE fail(uuid, bigint[], text[], bigint[], bool[]) AS {}", pgwa_pg::jobs::FAIL)).await;
        exec(c, claim.clone()).await;
        exec(c, format!("EXECUTE complete('{WORKER}', '{{}}', '{{}}', '{{}}')")).await;
        exec(c, format!("EXECUTE fail('{WORKER}', '{{}}', '{{}}', '{{}}', '{{}}')")).await;
    }

    // Then a backlog arrives: 3,000 sends over 300 chats, one in seven of them running
    // (the busy chats, whose later sends the FIFO check must hold back).
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO wa.workers (id, host, pid, version, max_sessions) VALUES ('{WORKER}', 'test', 1, 'test', 10);
         SELECT wa.add_session('s1');
         UPDATE wa.sessions SET owner_id = '{WORKER}', epoch = 3, lease_expires_at = now() + interval '1 hour';
         SELECT count(wa.send_text('s1', '+1555' || lpad((i % 300)::text, 7, '0'), 'm' || i)) FROM generate_series(1, 3000) i;
         UPDATE wa.job_rows SET state = 'running', attempts = 1, worker_id = '{WORKER}', epoch = 3 WHERE id % 7 = 0;"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let (running, n): (String, i64) = sqlx::query_as("SELECT array_agg(id)::text, count(*) FROM wa.jobs WHERE state = 'running'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let complete = format!(
        "EXECUTE complete('{WORKER}', '{running}', array_fill('{{}}'::jsonb, ARRAY[{n}]), array_fill(now(), ARRAY[{n}]))"
    );
    let fail = format!(
        "EXECUTE fail('{WORKER}', '{running}', array_fill('e'::text, ARRAY[{n}]), array_fill(0::bigint, ARRAY[{n}]), array_fill(false, ARRAY[{n}]))"
    );

    for (name, c) in [("queue connection", &mut conn), ("pool connection", &mut plain)] {
        let plan = checked_plan(c, &format!("{name}: the claim"), &claim).await;
        assert!(
            plan.iter().any(|n| n["Index Name"] == "jobs_chat" && n["Index Cond"].as_str().is_some_and(|c| c.contains("chat ="))),
            "{name}: the FIFO check does not look the candidate's chat up in jobs_chat: {plan:?}"
        );
        // The lock and the update fetch each candidate at the address it was read from.
        let by_address = plan.iter().filter(|n| n["Node Type"] == "Tid Scan" && n["Relation Name"] == "job_rows").count();
        assert!(by_address >= 2, "{name}: the claim's lock and update do not go by the rows' addresses: {plan:?}");
        for (what, execute) in [("completions", &complete), ("failures", &fail)] {
            let plan = checked_plan(c, &format!("{name}: recording {what}"), execute).await;
            assert!(
                plan.iter().any(|n| n["Index Name"] == "jobs_pkey"),
                "{name}: recording {what} does not look the jobs up by primary key: {plan:?}"
            );
        }
    }
    drop(plain);

    // The same claim plan still keeps per-chat FIFO: every available send is a
    // candidate (the share is 5,000), and exactly those with no running send before them
    // in their chat are taken.
    let mut tx = conn.begin().await.unwrap();
    let expected: Vec<i64> = sqlx::query_scalar(
        "SELECT r.id FROM wa.jobs r WHERE r.state = 'available'
            AND NOT EXISTS (SELECT 1 FROM wa.jobs k WHERE k.chat = r.chat AND k.state = 'running' AND k.id < r.id)
          ORDER BY r.id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let available: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE state = 'available'").fetch_one(&mut *tx).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(claim)).execute(&mut *tx).await.unwrap();
    let claimed: Vec<i64> = sqlx::query_scalar("SELECT id FROM wa.jobs WHERE attempted_at IS NOT NULL ORDER BY id")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    // Each claimed job carries its session's epoch, which fences its outcome.
    let epochs: Vec<Option<i64>> = sqlx::query_scalar("SELECT DISTINCT epoch FROM wa.jobs WHERE attempted_at IS NOT NULL")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(epochs, [Some(3)], "claimed jobs must carry the session's epoch");
    assert!(!expected.is_empty() && (expected.len() as i64) < available, "the data must have free and blocked chats");
    assert_eq!(claimed, expected);
    drop(conn);
    db.drop_now().await.unwrap();
}

/// The claim locks only what passed the FIFO check; a send it could not lock (another
/// transaction holds it, as a cancel would) still holds back the later sends of its chat,
/// while other chats go. Once released, the chat goes in order.
#[tokio::test]
async fn a_send_held_by_another_transaction_still_holds_back_its_chat() {
    use pgwa_pg::jobs;
    let (db, me) = leased("SELECT wa.add_session('s1')", 1).await;
    let pool = &db.pool;
    let send = |to: &'static str| async move {
        sqlx::query_scalar::<_, i64>("SELECT job_id FROM wa.send_text('s1', $1, 'x')").bind(to).fetch_one(pool).await.unwrap()
    };
    let a = [send("+15550000001").await, send("+15550000001").await, send("+15550000001").await];
    let b = [send("+15550000002").await, send("+15550000002").await];
    let ids = vec!["s1".to_string()];
    let req = jobs::ClaimRequest { worker: me, held: &ids, connected: &ids, per_session: 10, sessionless: 0 };

    let mut other = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM wa.jobs WHERE id = $1 FOR UPDATE").bind(a[0]).execute(&mut *other).await.unwrap();
    let mut claimed: Vec<i64> = jobs::claim(pool, &req).await.unwrap().into_iter().map(|c| c.job.id).collect();
    claimed.sort();
    assert_eq!(claimed, b, "the first send of chat 1 is held elsewhere: its later sends wait, chat 2 goes");
    other.rollback().await.unwrap();

    let mut claimed: Vec<i64> = jobs::claim(pool, &req).await.unwrap().into_iter().map(|c| c.job.id).collect();
    claimed.sort();
    assert_eq!(claimed, a, "released, chat 1 goes whole, in one claim");
    db.drop_now().await.unwrap();
}

/// A claim reads a bounded number of buffers per job it takes, whatever the statistics
/// the plan was made with: here they say every send is unfinished and all go to one
/// number (ten sessions' backlog to one support number, queued before the first
/// ANALYZE), which made the per-candidate FIFO probes go by primary key from the
/// table's first row (149 buffers a job here, 0.7 s for the claim of 1,000). The chat's
/// stops are one bounded probe per chat.
#[tokio::test]
async fn a_claim_reads_a_bounded_number_of_buffers_per_job_whatever_the_statistics() {
    let (db, me) = leased(
        "SELECT wa.add_session('s' || i) FROM generate_series(0, 9) i;
         SELECT count(wa.send_text('s' || i, '+15550000001', 'm' || n)) FROM generate_series(0, 9) i, generate_series(1, 500) n;
         ANALYZE wa.job_rows;",
        10,
    )
    .await;
    let pool = &db.pool;

    let mut conn = pool.acquire().await.unwrap();
    exec(&mut conn, "SET plan_cache_mode = force_generic_plan".into()).await;
    prepare_claim(&mut conn).await;
    let sessions: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let sessions: Vec<&str> = sessions.iter().map(String::as_str).collect();
    let execute = execute_claim(&me.to_string(), &sessions, 100, 0);
    exec(&mut conn, "BEGIN".into()).await;
    let plan: Value = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}")))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let claimed: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM wa.jobs WHERE state = 'running' ORDER BY id").fetch_all(&mut *conn).await.unwrap();
    exec(&mut conn, "ROLLBACK".into()).await;

    let first_hundreds: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY session_id ORDER BY id) AS n FROM wa.jobs) j
          WHERE n <= 100 ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(claimed, first_hundreds, "each session's first 100 sends, and nothing else");
    let buffers =
        plan[0]["Plan"]["Shared Hit Blocks"].as_i64().unwrap() + plan[0]["Plan"]["Shared Read Blocks"].as_i64().unwrap();
    let per_job = buffers as f64 / claimed.len() as f64;
    assert!(per_job <= 20.0, "the claim read {buffers} buffers for {} jobs ({per_job:.1} a job): {plan}", claimed.len());
    drop(conn);
    db.drop_now().await.unwrap();
}

/// A chat found busy at its first candidate is dropped whole there: the claim does not
/// also read its stops (the unfinished sends between its candidates), which only a chat
/// found free needs.
#[tokio::test]
async fn a_busy_chat_costs_the_claim_no_probe_for_its_stops() {
    use pgwa_pg::jobs;
    let (db, me) = leased(
        "SELECT wa.add_session('s1');
         SELECT count(wa.send_text('s1', '+15550000001', 'm' || n)) FROM generate_series(1, 10) n;",
        1,
    )
    .await;
    let pool = &db.pool;
    let ids = vec!["s1".to_string()];
    let req = jobs::ClaimRequest { worker: me, held: &ids, connected: &ids, per_session: 1, sessionless: 0 };
    assert_eq!(jobs::claim(pool, &req).await.unwrap().len(), 1, "the chat's first send runs");

    let mut conn = pool.acquire().await.unwrap();
    prepare_claim(&mut conn).await;
    let execute = execute_claim(&me.to_string(), &["s1"], 100, 0);
    exec(&mut conn, "BEGIN".into()).await;
    let plan: Value = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN (ANALYZE, FORMAT JSON) {execute}")))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM wa.jobs WHERE state = 'running'").fetch_one(&mut *conn).await.unwrap();
    exec(&mut conn, "ROLLBACK".into()).await;
    assert_eq!(running, 1, "the busy chat's nine later sends wait");

    let mut all = Vec::new();
    nodes(&plan[0]["Plan"], &mut all);
    // The stops probe is the one read of wa.job_rows bounded on both sides by a chat's
    // candidates (`k.id > h.id AND k.id < h.last`).
    let stops: Vec<&Value> = all
        .iter()
        .filter(|n| {
            let conds = format!("{} {}", n["Index Cond"].as_str().unwrap_or_default(), n["Filter"].as_str().unwrap_or_default());
            n["Relation Name"] == "job_rows" && conds.contains("(id > h") && conds.contains("(id < h")
        })
        .collect();
    assert!(!stops.is_empty(), "no stops probe found in the plan: {plan}");
    for n in stops {
        assert_eq!(n["Actual Loops"], 0, "the stops of a busy chat were read: {plan}");
    }
    drop(conn);
    db.drop_now().await.unwrap();
}

/// A job as the model sees it.
#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    session_id: String,
    chat: Option<String>,
    state: String,
    lane: i16,
    priority: i16,
}

/// What the claim must take, from the rule stated on `jobs::claim`: per session the
/// first `per_session` available jobs of each lane by (priority, id), the send lane only
/// for connected sessions; of those, a job of a chat goes only if every unfinished send
/// of its chat queued before it (available, running or retrying) is taken with it.
fn model(rows: &[Row], held: &[String], connected: &[String], per_session: usize) -> Vec<i64> {
    let mut cand = std::collections::HashSet::new();
    for s in held {
        for lane in [0, 1] {
            if lane == 1 && !connected.contains(s) {
                continue;
            }
            let mut avail: Vec<&Row> =
                rows.iter().filter(|r| &r.session_id == s && r.lane == lane && r.state == "available").collect();
            avail.sort_by_key(|r| (r.priority, r.id));
            cand.extend(avail.iter().take(per_session).map(|r| r.id));
        }
    }
    let unfinished = |r: &Row| matches!(r.state.as_str(), "available" | "running" | "retryable");
    let mut taken: Vec<i64> = rows
        .iter()
        .filter(|x| cand.contains(&x.id))
        .filter(|x| {
            x.chat.is_none()
                || rows.iter().all(|k| {
                    !(k.session_id == x.session_id && k.chat == x.chat && k.id < x.id && unfinished(k)) || cand.contains(&k.id)
                })
        })
        .map(|x| x.id)
        .collect();
    taken.sort();
    taken
}

/// The claim takes exactly what the FIFO rule allows, over random queues: sessions with
/// one to five chats, sends of mixed priorities, some scheduled for later, some running,
/// retrying, finished, dead or cancelled, control jobs beside them, sessions connected or
/// not, and per-session limits from 1 to 1,000; analyzed now and then, so the claim runs
/// on plans made with different statistics.
#[tokio::test]
async fn the_claim_takes_what_the_fifo_rule_allows_in_random_queues() {
    use pgwa_pg::jobs;
    let (db, me) = leased("SELECT wa.add_session('s' || i) FROM generate_series(1, 3) i", 3).await;
    let pool = &db.pool;
    let held: Vec<String> = (1..=3).map(|i| format!("s{i}")).collect();
    // Seeded: the queues are random, but every run of the test sees the same ones.
    let mut rng: StdRng = SeedableRng::seed_from_u64(20261129);
    for queue in 0..40 {
        sqlx::query("DELETE FROM wa.job_rows").execute(pool).await.unwrap();
        for s in &held {
            let chats = 1 + rng.random_range(0..5u64);
            for _ in 0..rng.random_range(0..40u64) {
                if rng.random_range(0..6u64) == 0 {
                    sqlx::query("SELECT wa.enqueue($1, 'reconnect', priority => $2)")
                        .bind(s)
                        .bind(rng.random_range(0..3u64) as i32 * 50)
                        .execute(pool)
                        .await
                        .unwrap();
                    continue;
                }
                let to = format!("+1555000000{}", rng.random_range(0..chats));
                let later = rng.random_range(0..10u64) == 0;
                sqlx::query(
                    "SELECT wa.send_text($1, $2, 'm', run_at => CASE WHEN $3 THEN now() + interval '1 hour' END,
                                         priority => $4)",
                )
                .bind(s)
                .bind(to)
                .bind(later)
                .bind([100, 100, 100, 0, 500][rng.random_range(0..5u64) as usize])
                .execute(pool)
                .await
                .unwrap();
            }
        }
        // Some jobs moved on: as a worker, a retry or the end of a job would leave them.
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM wa.job_rows WHERE state = 'available' ORDER BY id").fetch_all(pool).await.unwrap();
        for id in ids {
            let set = match rng.random_range(0..10u64) {
                0 => "state = 'running', worker_id = $2, attempts = 1, attempted_at = now()",
                1 => "state = 'retryable', attempts = 1, run_at = now() + interval '1 hour'",
                2 => "state = 'completed', attempts = 1, finished_at = now()",
                3 => "state = 'dead', attempts = 1, finished_at = now()",
                4 => "state = 'cancelled', finished_at = now()",
                _ => continue,
            };
            sqlx::query(AssertSqlSafe(format!("UPDATE wa.job_rows SET {set} WHERE id = $1")))
                .bind(id)
                .bind(me)
                .execute(pool)
                .await
                .unwrap();
        }
        if queue % 10 == 9 {
            sqlx::query("ANALYZE wa.job_rows").execute(pool).await.unwrap();
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, session_id, chat, state::text AS state, lane, priority FROM wa.job_rows WHERE session_id IS NOT NULL",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let connected: Vec<String> = held.iter().filter(|_| rng.random_range(0..4u64) != 0).cloned().collect();
        for per_session in [1, 2, 5, 20, 1000] {
            let req = jobs::ClaimRequest { worker: me, held: &held, connected: &connected, per_session, sessionless: 0 };
            let mut tx = pool.begin().await.unwrap();
            let mut got: Vec<i64> = jobs::claim(&mut *tx, &req).await.unwrap().into_iter().map(|c| c.job.id).collect();
            tx.rollback().await.unwrap();
            got.sort();
            let want = model(&rows, &held, &connected, per_session as usize);
            assert_eq!(got, want, "queue {queue}, {per_session} per session, connected {connected:?}");
        }
    }
    db.drop_now().await.unwrap();
}
