//! Every SQL statement pgwa runs: the queue (`jobs`), sessions and leases, the WhatsApp
//! keys (`keys`, whatsapp-rust's storage backend), the importer, admin reads for the CLI
//! and HTTP, schedules, migrations. Only this crate talks to Postgres.

pub mod admin;
pub mod api;
pub mod authdoc;
mod batch_fences;
/// Statements only the benchmarks and `pgwa dev loopback`'s phone run: scratch databases,
/// bulk sessions and sends, the reads that time them, the phone's link codes.
pub mod bench;
pub mod calls;
mod connect;
pub mod connect_page;
pub mod console;
pub mod contacts;
mod group_commit;
pub mod groups;
pub mod held_conn;
pub mod import;
pub mod inbox;
pub mod jobs;
pub mod keys;
pub mod leases;
pub mod log_params;
pub mod maintenance;
pub mod media;
pub mod messages;
pub mod migrate;
pub mod notify;
pub mod outage;
pub mod polls;
pub mod receipts;
pub mod schedules;
pub mod sessions;
pub mod unbuffered;
pub mod webhooks;
pub mod workers;

/// A Postgres enum read as text (`col::text`) into its Rust enum (pgwa_core's pg_enum!).
pub(crate) fn enum_label<T: std::str::FromStr<Err = String>>(text: String) -> sqlx::Result<T> {
    text.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))
}

/// The pool and error types the other crates pass around; they never run SQL themselves.
pub use sqlx::{Error, PgPool};

pub use group_commit::WriteFailed;

pub use connect::{ConnectError, IfMissing, check_url, connect, connect_existing, connect_waiting, plain_on_this_host};

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

/// A small pool for the queue's own bookkeeping (claims, outcomes, promotions), set up
/// for its few hot statements:
/// * commits do not wait for the WAL flush. Losing the last few hundred milliseconds of
///   these in a Postgres crash is harmless: a lost claim leaves the job available, a lost
///   completion makes it run again with the same message id. It saves a disk flush per
///   claim and per outcome batch, and, set per connection, the BEGIN/SET/COMMIT round
///   trips a per-transaction setting would cost. Session state, keys and inbound
///   messages never go through this pool.
/// * plans are generic, made once per connection: planning the claim cost 0.7-1.4 ms,
///   more than running it at low load, and the generic plans of these statements are the
///   ones wanted at any batch size (index lookups driven by the arrays).
/// * sequential scans are off. A generic plan lives as long as its connection, and one
///   made while `wa.jobs` was empty (a fresh install, a worker started before the first
///   send) scanned the whole table in every claim's per-chat FIFO check, a table that
///   keeps finished jobs for the retention period. Every statement here has an index
///   made for it, so the planner is told to use one whatever the table's size.
/// * no JIT compilation: these statements touch a few rows through indexes, and a
///   compile (tens of milliseconds) would cost more than thousands of their runs. It
///   would be chosen if a plan ever carried the cost penalty of a disabled scan.
///
/// Behind a transaction-pooling PgBouncer (`poll_only`) a session-level SET would leak to
/// other clients, so there the main pool is used as is.
pub fn queue_pool(pool: &PgPool, poll_only: bool, max_connections: u32) -> PgPool {
    if poll_only {
        return pool.clone();
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::raw_sql("SET synchronous_commit = off; SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; SET jit = off")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// The URL without its password, for error messages and logs: the one in the user-info
/// part and a `password=` query parameter (which libpq and sqlx also accept).
pub fn redact(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "<unparseable url>".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { "***".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}
