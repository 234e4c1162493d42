//! TTL sweeps across all sessions, in bounded batches so no single DELETE holds locks
//! on a hot table for long. Run by the job core's scheduled maintenance job; each call
//! returns the counts per table for the job result.
//!
//! TTLs follow whatsapp-rust 0.7 where it defines them: sent messages 2 h
//! (`CacheConfig::sent_message_ttl_secs`), pending inbound 7 days
//! (`keepalive::PENDING_INBOUND_TTL_SECS`), msg secrets by their own `expires_at`,
//! tc tokens by its bucket windows (`TcTokenConfig`, 4 x 7 days). It defines none for
//! retry base keys (we keep them 1 day) or LID mappings (the seeds keep 7 days).

use anyhow::Context;
use chrono::Duration;
use serde_json::{Map, Value, json};
use sqlx::{AssertSqlSafe, PgPool};
use whatsapp_rust::wacore::iq::tctoken::{
    TcTokenConfig, sender_tc_token_expiration_cutoff_with, tc_token_expiration_cutoff_with,
};

#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// LID<->phone mappings not rewritten for this long are dropped (seed default 7 days).
    pub lid_mapping_ttl: Duration,
    /// Sent-message payloads kept for retry receipts (whatsapp-rust: 2 hours).
    pub sent_message_ttl: Duration,
    /// Inbound messages buffered before the durability hook committed (whatsapp-rust: 7 days).
    pub pending_inbound_ttl: Duration,
    /// Retry base keys (collision detection for one message's retries): 1 day.
    pub base_key_ttl: Duration,
    /// Trusted-contact token windows (whatsapp-rust's defaults unless the server said otherwise).
    pub tc_token: TcTokenConfig,
    /// Rows per DELETE statement.
    pub batch: i64,
    /// Upper bound on statements per table per call, so one sweep has a bounded run time;
    /// what is left is taken by the next run.
    pub max_batches: i64,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            lid_mapping_ttl: Duration::days(7),
            sent_message_ttl: Duration::hours(2),
            pending_inbound_ttl: Duration::days(7),
            base_key_ttl: Duration::days(1),
            tc_token: TcTokenConfig::default(),
            batch: 1000,
            max_batches: 1000,
        }
    }
}

/// Deletes expired rows of every store table; returns `{"sent_messages": n, ...}`.
pub async fn sweep_expired(pool: &PgPool, opts: &SweepOptions) -> anyhow::Result<Value> {
    anyhow::ensure!(opts.batch > 0, "sweep batch must be positive");
    let now = chrono::Utc::now().timestamp();
    let token_cutoff = tc_token_expiration_cutoff_with(&opts.tc_token);
    let sender_cutoff = sender_tc_token_expiration_cutoff_with(&opts.tc_token);
    // (table, condition on the table's own columns); $1 is the cutoff (bigint seconds or
    // timestamptz), $2 the second tc cutoff where used.
    let plan: [(&str, &str, Cutoff); 6] = [
        ("sent_messages", "stored_at < $1", Cutoff::Unix(now - opts.sent_message_ttl.num_seconds())),
        ("pending_inbound", "stored_at < $1", Cutoff::Unix(now - opts.pending_inbound_ttl.num_seconds())),
        ("msg_secrets", "expires_at <> 0 AND expires_at <= $1", Cutoff::Unix(now)),
        (
            "tc_tokens",
            "NOT (length(token) > 0 AND token_ts >= $1) AND NOT (sender_ts IS NOT NULL AND sender_ts >= $2)",
            Cutoff::Pair(token_cutoff, sender_cutoff),
        ),
        ("base_keys", "created_at < $1", Cutoff::Time(chrono::Utc::now() - opts.base_key_ttl)),
        ("lid_mappings", "stored_at < $1", Cutoff::Time(chrono::Utc::now() - opts.lid_mapping_ttl)),
    ];
    let mut counts = Map::new();
    for (table, cond, cutoff) in plan {
        let n = sweep_table(pool, table, cond, cutoff, opts).await.with_context(|| format!("sweeping wa.{table}"))?;
        counts.insert(table.to_string(), json!(n));
    }
    Ok(Value::Object(counts))
}

#[derive(Clone, Copy)]
enum Cutoff {
    Unix(i64),
    Pair(i64, i64),
    Time(chrono::DateTime<chrono::Utc>),
}

async fn sweep_table(pool: &PgPool, table: &str, cond: &str, cutoff: Cutoff, opts: &SweepOptions) -> anyhow::Result<u64> {
    // SKIP LOCKED: a row a live session is writing right now is left for the next run
    // instead of making the sweep wait behind it.
    let limit = if matches!(cutoff, Cutoff::Pair(..)) { "$3" } else { "$2" };
    let sql = format!(
        "DELETE FROM wa.{table} WHERE ctid IN (SELECT ctid FROM wa.{table} WHERE {cond} LIMIT {limit} FOR UPDATE SKIP LOCKED)"
    );
    let mut total = 0u64;
    for _ in 0..opts.max_batches.max(1) {
        let q = sqlx::query(AssertSqlSafe(sql.clone()));
        let q = match cutoff {
            Cutoff::Unix(t) => q.bind(t),
            Cutoff::Pair(a, b) => q.bind(a).bind(b),
            Cutoff::Time(t) => q.bind(t),
        };
        let n = q.bind(opts.batch).execute(pool).await?.rows_affected();
        total += n;
        if (n as i64) < opts.batch {
            break;
        }
    }
    Ok(total)
}
