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
use sqlx::PgPool;
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

/// Runs one table's DELETE of at most `opts.batch` rows (its last parameter) until a
/// batch comes back short or `opts.max_batches` ran; evaluates to the rows deleted. The
/// statements take SKIP LOCKED rows: a row a live session is writing right now is left
/// for the next run instead of making the sweep wait behind it.
macro_rules! in_batches {
    ($pool:expr, $opts:expr, $table:literal, $sql:tt $(, $arg:expr)*) => {{
        let opts: &SweepOptions = $opts;
        async {
            let mut total = 0u64;
            for _ in 0..opts.max_batches.max(1) {
                let n = sqlx::query!($sql $(, $arg)*, opts.batch).execute($pool).await?.rows_affected();
                total += n;
                if (n as i64) < opts.batch {
                    break;
                }
            }
            Ok::<u64, sqlx::Error>(total)
        }
        .await
        .with_context(|| format!("sweeping wa.{}", $table))?
    }};
}

/// Deletes expired rows of every store table; returns `{"sent_messages": n, ...}`.
pub async fn sweep_expired(pool: &PgPool, opts: &SweepOptions) -> anyhow::Result<Value> {
    anyhow::ensure!(opts.batch > 0, "sweep batch must be positive");
    let now = chrono::Utc::now().timestamp();
    let token_cutoff = tc_token_expiration_cutoff_with(&opts.tc_token);
    let sender_cutoff = sender_tc_token_expiration_cutoff_with(&opts.tc_token);
    let sent = now - opts.sent_message_ttl.num_seconds();
    let pending = now - opts.pending_inbound_ttl.num_seconds();
    let base_keys = chrono::Utc::now() - opts.base_key_ttl;
    let lid_mappings = chrono::Utc::now() - opts.lid_mapping_ttl;
    let counts = [
        (
            "sent_messages",
            in_batches!(
                pool,
                opts,
                "sent_messages",
                "DELETE FROM wa.sent_messages WHERE ctid IN (
                    SELECT ctid FROM wa.sent_messages WHERE stored_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                sent
            ),
        ),
        (
            "pending_inbound",
            in_batches!(
                pool,
                opts,
                "pending_inbound",
                "DELETE FROM wa.pending_inbound WHERE ctid IN (
                    SELECT ctid FROM wa.pending_inbound WHERE stored_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                pending
            ),
        ),
        (
            "msg_secrets",
            in_batches!(
                pool,
                opts,
                "msg_secrets",
                "DELETE FROM wa.msg_secrets WHERE ctid IN (
                    SELECT ctid FROM wa.msg_secrets WHERE expires_at <> 0 AND expires_at <= $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED)",
                now
            ),
        ),
        // A sequential scan per batch, on purpose: an index on these times would turn
        // every sender-timestamp write (one per message sent to a contact) into a non-HOT
        // update with new index entries, to spare a scan every 15 minutes (0.48 s at
        // 1.9 million tokens in a scratch database, 2026-11-27).
        (
            "tc_tokens",
            in_batches!(
                pool,
                opts,
                "tc_tokens",
                "DELETE FROM wa.tc_tokens WHERE ctid IN (
                    SELECT ctid FROM wa.tc_tokens
                     WHERE NOT (length(token) > 0 AND token_ts >= $1) AND NOT (sender_ts IS NOT NULL AND sender_ts >= $2)
                     LIMIT $3 FOR UPDATE SKIP LOCKED)",
                token_cutoff,
                sender_cutoff
            ),
        ),
        (
            "base_keys",
            in_batches!(
                pool,
                opts,
                "base_keys",
                "DELETE FROM wa.base_keys WHERE ctid IN (
                    SELECT ctid FROM wa.base_keys WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                base_keys
            ),
        ),
        (
            "lid_mappings",
            in_batches!(
                pool,
                opts,
                "lid_mappings",
                "DELETE FROM wa.lid_mappings WHERE ctid IN (
                    SELECT ctid FROM wa.lid_mappings WHERE stored_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                lid_mappings
            ),
        ),
    ];
    Ok(Value::Object(counts.into_iter().map(|(table, n)| (table.to_string(), json!(n))).collect::<Map<_, _>>()))
}
