//! The benchmarks' commands are `pgwa bench`, `pgwa bench-store` and `pgwa dev bench-*`;
//! nothing in the worker or the CLI's other commands runs these statements.
//!
//! The send statements are the benchmarks' hot paths: they take an executor, so a caller
//! holding a connection of its own (as an app's driver would) runs them on it directly.

use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, PgConnection, PgExecutor, PgPool};

// --- scratch databases ---

/// Recreates `<database>_<suffix>` next to the database of `database_url`; returns its
/// URL. Each benchmark run starts from an empty database this way, and never touches the
/// configured one. A scratch database someone is connected to is refused, not dropped
/// from under them: a worker left by an earlier run would reconnect to the new one of the
/// same name and take its sessions' leases.
pub async fn recreate_database_beside(database_url: &str, suffix: &str) -> anyhow::Result<String> {
    let opts = PgConnectOptions::from_str(database_url).context("database_url")?;
    let name = format!("{}_{suffix}", opts.get_database().unwrap_or("pgwa"));
    let mut admin = maintenance_connection(&opts).await?;
    let users = sqlx::query!(
        r#"SELECT count(*) AS "n!", string_agg(coalesce(nullif(application_name, ''), '?') || ' pid ' || pid, ', ') AS who
             FROM pg_stat_activity WHERE datname = $1"#,
        name
    )
    .fetch_one(&mut admin)
    .await?;
    if users.n > 0 {
        anyhow::bail!(
            "the scratch database {name} is in use ({}): a worker or bench from an earlier run may still be running \
             (pgrep -af pgwa); stop it, or drop the database, and run again",
            users.who.unwrap_or_default()
        );
    }
    for sql in [drop_sql(&name), format!("CREATE DATABASE \"{name}\"")] {
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut admin).await?;
    }
    let mut url = url::Url::parse(database_url).context("database_url")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Runs statements in a scratch database: a benchmark's own (schema variants, VACUUM) or
/// the variant files an operator gives `pgwa bench --schema-variant`, on a database the
/// benchmark made and drops.
pub async fn run_script(pool: &PgPool, script: &str) -> sqlx::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(script.to_owned())).execute(pool).await?;
    Ok(())
}

/// Records completions with a schema variant's own statement (`pgwa bench-outcomes`):
/// the parameters of `queries/complete.sql` (worker, job ids, results, server ack times),
/// a row per job recorded. Returns how many were.
pub async fn complete_with(
    pool: &PgPool,
    statement: &'static str,
    worker: uuid::Uuid,
    ids: &[i64],
    results: &[serde_json::Value],
    acked_at: &[Option<DateTime<Utc>>],
) -> sqlx::Result<usize> {
    Ok(sqlx::query(statement).bind(worker).bind(ids).bind(results).bind(acked_at).fetch_all(pool).await?.len())
}

/// Applies receipts with a schema variant's own statement (`pgwa bench-outcomes`): the
/// parameters of the worker's receipt statement (`receipts::apply`), a row per message
/// whose delivery moved. Returns how many did.
pub async fn receipts_with(pool: &PgPool, statement: &'static str, receipts: &[crate::receipts::Receipt]) -> sqlx::Result<usize> {
    let c = crate::receipts::columns(receipts);
    let q = sqlx::query(statement).bind(&c.sessions).bind(&c.workers).bind(&c.epochs).bind(&c.messages);
    Ok(q.bind(&c.statuses).bind(&c.delivered_at).bind(&c.read_at).fetch_all(pool).await?.len())
}

/// Drops the database of `scratch_url`, connecting through the server of `database_url`.
pub async fn drop_database(database_url: &str, scratch_url: &str) -> anyhow::Result<()> {
    let opts = PgConnectOptions::from_str(database_url).context("database_url")?;
    let name = PgConnectOptions::from_str(scratch_url)?.get_database().unwrap_or_default().to_string();
    let mut admin = maintenance_connection(&opts).await?;
    sqlx::raw_sql(AssertSqlSafe(drop_sql(&name))).execute(&mut admin).await?;
    Ok(())
}

/// A database cannot be dropped or created from a connection to itself: the `postgres`
/// maintenance database serves.
async fn maintenance_connection(opts: &PgConnectOptions) -> anyhow::Result<PgConnection> {
    opts.clone().database("postgres").connect().await.context("connecting to Postgres")
}

fn drop_sql(name: &str) -> String {
    format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
}

// --- the job-core benchmark (`pgwa bench`) ---

/// Sessions `<prefix>1` to `<prefix><n>`, started.
pub async fn add_sessions(pool: &PgPool, prefix: &str, n: u32) -> sqlx::Result<()> {
    sqlx::query_scalar!(r#"SELECT count((wa.add_session($1 || i)).id) AS "n!" FROM generate_series(1, $2) i"#, prefix, n as i32)
        .fetch_one(pool)
        .await?;
    Ok(())
}

/// Sends number `from` to `to` (inclusive) in one statement: send `i` goes from session
/// `bench-<1 + i % sessions>` (made by `add_sessions(pool, "bench-", sessions)`) to one
/// of `chats` numbers, so each session's sends spread over that many chats.
pub async fn enqueue_sends(db: impl PgExecutor<'_>, from: u64, to: u64, sessions: u32, chats: u32) -> sqlx::Result<()> {
    sqlx::query_scalar!(r#"SELECT count(wa.send_text('bench-' || (1 + i % $3), '+1555' || lpad(((i / $3) % $4)::text, 7, '0'), 'bench message ' || i)) AS "n!"
           FROM generate_series($1::bigint, $2::bigint) i"#, from as i64, to as i64, sessions as i64, chats as i64)
    .fetch_one(db)
    .await?;
    Ok(())
}

/// Sessions connected now.
pub async fn connected_count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM wa.sessions WHERE status = 'connected'"#).fetch_one(pool).await
}

/// Whether any job is still available or running. One probe per partial index (a bare
/// `phase < 2` matches neither predicate and would scan the table, competing with the
/// worker being measured).
pub async fn queue_busy(pool: &PgPool) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM wa.job_rows WHERE phase = 1) OR EXISTS (SELECT 1 FROM wa.job_rows WHERE phase = 0) AS "busy!""#
    )
    .fetch_one(pool)
    .await
}

/// Send jobs completed.
pub async fn completed_sends(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM wa.job_rows WHERE state = 'completed' AND kind = 'send'"#)
        .fetch_one(pool)
        .await
}

/// Median and 99th percentile of the send jobs' time from insert to finished, in ms.
pub async fn send_latency_percentiles(pool: &PgPool) -> sqlx::Result<(f64, f64)> {
    let r = sqlx::query!(
        r#"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS "p50!", percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS "p99!"
           FROM (SELECT extract(epoch FROM finished_at - created_at)::float8 * 1000 AS ms FROM wa.job_rows WHERE kind = 'send') t"#
    )
    .fetch_one(pool)
    .await?;
    Ok((r.p50, r.p99))
}

/// Where the median send job's time went, in ms, from the timestamps Postgres and the
/// worker recorded.
#[derive(Debug, Clone, Copy)]
pub struct StageMedians {
    /// Enqueue transaction start to claim statement start.
    pub to_claim: f64,
    /// Claim to the server's ack.
    pub to_ack: f64,
    /// Ack to the outcome statement's start.
    pub to_recorded: f64,
}

pub async fn stage_medians(pool: &PgPool) -> sqlx::Result<StageMedians> {
    sqlx::query_as!(
        StageMedians,
        r#"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM attempted_at - created_at)::float8 * 1000) AS "to_claim!",
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - attempted_at)::float8 * 1000) AS "to_ack!",
                percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - sent_at)::float8 * 1000) AS "to_recorded!"
           FROM wa.job_rows WHERE kind = 'send'"#
    )
    .fetch_one(pool)
    .await
}

/// Seconds from the first claim to the last outcome recorded, by Postgres's clock: the
/// drain without the worker's start (Graphile Worker's perf test reports its drain the
/// same way, its startup time subtracted).
pub async fn first_claim_to_last_outcome(pool: &PgPool) -> sqlx::Result<f64> {
    sqlx::query_scalar!(
        r#"SELECT extract(epoch FROM max(finished_at) - min(attempted_at))::float8 AS "s!" FROM wa.job_rows WHERE kind = 'send'"#
    )
    .fetch_one(pool)
    .await
}

// --- the loopback benchmarks (`pgwa dev bench-*`) ---

/// The database's clock, to compare with timestamps it writes.
pub async fn db_now(pool: &PgPool) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(pool).await
}

/// Sessions connected now whose connection was made at or after `since`.
pub async fn connected_since(pool: &PgPool, since: DateTime<Utc>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM wa.sessions WHERE status = 'connected' AND connected_at >= $1"#, since)
        .fetch_one(pool)
        .await
}

/// Rows in the inboxes of the sessions whose id is `LIKE session_like`.
pub async fn inbox_count(pool: &PgPool, session_like: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM wa.inbox WHERE session_id LIKE $1"#, session_like).fetch_one(pool).await
}

/// Sessions `s00001` to `s<n>`, started (the sessions benchmark).
pub async fn add_numbered_sessions(pool: &PgPool, n: i64) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        r#"SELECT count((wa.add_session('s' || lpad(i::text, 5, '0'))).id) AS "n!" FROM generate_series(1, $1::bigint) i"#,
        n
    )
    .fetch_one(pool)
    .await?;
    Ok(())
}

/// One message from each numbered session `s<i>` to each of the `k` sessions after it,
/// `s<i+1>` to `s<i+k>`, wrapping at `n` (the sessions benchmark's contacts); returns how
/// many were enqueued.
pub async fn send_ring(pool: &PgPool, n: i64, k: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"WITH s AS (SELECT wa.send_text(f.id, '+' || t.phone, 'hello ' || g)
                        FROM wa.sessions f, generate_series(1, $2::bigint) g,
                             LATERAL (SELECT phone FROM wa.sessions
                                       WHERE id = 's' || lpad(((substr(f.id, 2)::bigint - 1 + g) % $1::bigint + 1)::text, 5, '0')) t
                       WHERE f.id LIKE 's%')
         SELECT count(*) AS "n!" FROM s"#,
        n,
        k
    )
    .fetch_one(pool)
    .await
}

/// Session pairs `a0001`/`b0001` to `a<pairs>`/`b<pairs>`, started (the messages
/// benchmark: each `a` sends to its `b`).
pub async fn add_session_pairs(pool: &PgPool, pairs: i64) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        r#"SELECT count((wa.add_session(side || lpad(i::text, 4, '0'))).id) AS "n!"
             FROM generate_series(1, $1::bigint) i, unnest('{a,b}'::text[]) side"#,
        pairs
    )
    .fetch_one(pool)
    .await?;
    Ok(())
}

/// Pairs whose two sessions are held by different workers.
pub async fn pairs_across_workers(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM wa.sessions a JOIN wa.sessions b ON b.id = 'b' || substr(a.id, 2)
          WHERE a.id LIKE 'a%' AND a.owner_id IS DISTINCT FROM b.owner_id"#
    )
    .fetch_one(pool)
    .await
}

/// `per_pair` messages from each `a` session to its `b` in one statement; returns how
/// many were enqueued.
pub async fn send_burst(pool: &PgPool, per_pair: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"WITH s AS (SELECT wa.send_text(a.id, '+' || bs.phone, 'burst ' || g) FROM wa.sessions a
                      JOIN wa.sessions bs ON bs.id = 'b' || substr(a.id, 2), generate_series(1, $1::bigint) g
                     WHERE a.id LIKE 'a%')
         SELECT count(*) AS "n!" FROM s"#,
        per_pair
    )
    .fetch_one(pool)
    .await
}

/// The same burst as [`send_burst`] as one `INSERT INTO wa.jobs ... SELECT`, the way an
/// app enqueues a batch (the insert trigger validates each row as `wa.send_text` would).
pub async fn insert_burst(pool: &PgPool, per_pair: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"WITH s AS (INSERT INTO wa.jobs (session_id, kind, payload)
                      SELECT a.id, 'send', jsonb_build_object('type', 'text', 'to', '+' || bs.phone, 'text', 'burst ' || g)
                        FROM wa.sessions a JOIN wa.sessions bs ON bs.id = 'b' || substr(a.id, 2), generate_series(1, $1::bigint) g
                       WHERE a.id LIKE 'a%'
                      RETURNING 1)
         SELECT count(*) AS "n!" FROM s"#,
        per_pair
    )
    .fetch_one(pool)
    .await
}

/// Seconds from the first send job's insert to the last message in a `b` inbox.
pub async fn burst_span_secs(pool: &PgPool) -> sqlx::Result<f64> {
    sqlx::query_scalar!(
        r#"SELECT extract(epoch FROM (SELECT max(received_at) FROM wa.inbox WHERE session_id LIKE 'b%')
                               - (SELECT min(created_at) FROM wa.job_rows WHERE kind = 'send'))::float8 AS "secs!""#
    )
    .fetch_one(pool)
    .await
}

/// How far the server had written its write-ahead log, and the first transaction id not
/// yet finished (a snapshot's xmax), at one moment. Two marks give a stretch's Postgres
/// writes: WAL bytes, and transactions that wrote something and finished (a read-only
/// one takes no id and writes no commit record). Both count the whole server, as the CPU
/// figures count the whole machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteMark {
    pub wal_bytes: i64,
    pub xmax: i64,
}

/// What Postgres wrote between two [`WriteMark`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writes {
    pub wal_bytes: i64,
    pub write_transactions: i64,
}

impl WriteMark {
    /// What was written between `earlier` and this mark.
    pub fn since(&self, earlier: &Self) -> Writes {
        Writes { wal_bytes: self.wal_bytes - earlier.wal_bytes, write_transactions: self.xmax - earlier.xmax }
    }
}

/// The server's [`WriteMark`] now.
pub async fn write_mark(pool: &PgPool) -> sqlx::Result<WriteMark> {
    let r = sqlx::query!(
        r#"SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS "wal_bytes!",
                  pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS "xmax!""#
    )
    .fetch_one(pool)
    .await?;
    Ok(WriteMark { wal_bytes: r.wal_bytes, xmax: r.xmax })
}

/// Each `a` session with the phone number of its `b` (`+<digits>`), in order.
pub async fn pair_phones(pool: &PgPool) -> sqlx::Result<Vec<(String, String)>> {
    let rows = sqlx::query!(
        r#"SELECT a.id, '+' || bs.phone AS "phone!" FROM wa.sessions a JOIN wa.sessions bs ON bs.id = 'b' || substr(a.id, 2)
          WHERE a.id LIKE 'a%' ORDER BY a.id"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.phone)).collect())
}

/// Latency message number `i` from session `from` to `to`.
pub async fn send_latency_message(db: impl PgExecutor<'_>, from: &str, to: &str, i: i64) -> sqlx::Result<()> {
    sqlx::query_scalar!("SELECT wa.send_text($1, $2, 'latency ' || $3::bigint)", from, to, i).fetch_one(db).await?;
    Ok(())
}

/// One latency message as Postgres timed it, in ms: when its job was inserted (after the
/// run's first), and from then to the claim that took it and to its row in the `b` inbox.
#[derive(Debug, Clone)]
pub struct LatencyMessage {
    /// The sending session (`a<n>`), which names the pair.
    pub pair: String,
    pub sent_ms: f64,
    /// Enqueue transaction start to claim statement start: NOTIFY, wake-up, claim.
    pub to_claim_ms: f64,
    /// To the inbox transaction's start; past the claim: the claim's commit, encrypting,
    /// the server, decrypting and the receiver's buffered copy.
    pub to_inbox_ms: f64,
}

/// The latency messages in the order they were sent.
pub async fn latency_messages(pool: &PgPool) -> sqlx::Result<Vec<LatencyMessage>> {
    sqlx::query_as!(
        LatencyMessage,
        r#"SELECT j.session_id AS "pair!",
                  extract(epoch FROM j.created_at - min(j.created_at) OVER ())::float8 * 1000 AS "sent_ms!",
                  extract(epoch FROM j.attempted_at - j.created_at)::float8 * 1000 AS "to_claim_ms!",
                  extract(epoch FROM i.received_at - j.created_at)::float8 * 1000 AS "to_inbox_ms!"
             FROM wa.job_rows j JOIN wa.inbox i ON i.message_id = j.message_id AND i.session_id = 'b' || substr(j.session_id, 2)
            WHERE j.kind = 'send' AND j.payload->>'text' LIKE 'latency %'
            ORDER BY j.created_at, j.id"#
    )
    .fetch_all(pool)
    .await
}

/// A connection of its own that samples `pg_stat_activity` through a run (each
/// statement outside a transaction reads a fresh view of it).
pub struct ActivitySampler(PgConnection);

impl ActivitySampler {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let opts = PgConnectOptions::from_str(url).context("the scratch database's URL")?;
        Ok(Self(opts.connect().await.context("connecting the pg_stat_activity sampler")?))
    }

    /// The backends of this database waiting for a WAL flush (`IO:WALSync`) now, each
    /// as (pid, start of its statement), with the server's clock. A backend seen in one
    /// flush for tens of milliseconds is a disk that stalled.
    pub async fn wal_flush_waiters(&mut self) -> sqlx::Result<(DateTime<Utc>, Vec<(i32, DateTime<Utc>)>)> {
        let rows = sqlx::query!(
            r#"SELECT clock_timestamp() AS "at!", a.pid AS "pid?", a.query_start AS "query_start?"
                 FROM (SELECT 1) one
                 LEFT JOIN pg_stat_activity a ON a.datname = current_database() AND a.wait_event = 'WALSync'
                                             AND a.query_start IS NOT NULL"#
        )
        .fetch_all(&mut self.0)
        .await?;
        let at = rows.first().map(|r| r.at).unwrap_or_else(Utc::now);
        Ok((at, rows.into_iter().filter_map(|r| Some((r.pid?, r.query_start?))).collect()))
    }
}

// --- the loopback phone ---

/// Sessions showing a live QR code or pairing code now (published before the phone
/// listened).
pub async fn pending_link_codes(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT id FROM wa.sessions WHERE (qr_code IS NOT NULL AND qr_expires_at > now())
            OR (pair_code IS NOT NULL AND pair_code_expires_at > now())"
    )
    .fetch_all(pool)
    .await
}

/// What a phone needs to link a session: its live QR code, its live pairing code, and
/// the phone number the pairing code is for.
#[derive(Debug, Clone, Default)]
pub struct LinkCodes {
    pub qr_code: Option<String>,
    pub pair_code: Option<String>,
    pub pair_phone: Option<String>,
}

/// The link codes of `session`; None if there is no such session.
pub async fn link_codes(pool: &PgPool, session: &str) -> sqlx::Result<Option<LinkCodes>> {
    sqlx::query_as!(
        LinkCodes,
        r#"SELECT CASE WHEN qr_expires_at > now() THEN qr_code END AS "qr_code?",
                CASE WHEN pair_code_expires_at > now() THEN pair_code END AS "pair_code?", pair_phone
           FROM wa.sessions WHERE id = $1"#,
        session
    )
    .fetch_optional(pool)
    .await
}
