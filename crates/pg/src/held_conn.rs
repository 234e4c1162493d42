//! A connection that one loop keeps from statement to statement.
//!
//! sqlx pings a pooled connection (a round trip) when it goes back to the pool and again
//! when it is taken out, so every claim and every outcome batch through the pool cost
//! three round trips instead of one, and woke the Postgres backend three times; so did
//! every group-committed key write and inbox insert. At low load, where each statement
//! carries one job, that was a third of the claim loop's time. The loop keeps its
//! connection until a statement on it fails, then lets it go (the pool closes it if it
//! is broken) and takes a fresh one for the next statement.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool, Postgres};

pub struct HeldConn {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
    /// The connection last handed out had served statements before.
    reused: bool,
}

impl HeldConn {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, conn: None, reused: false }
    }

    /// A connection of its own, to `pool`'s database with its options but outside it (a
    /// pool of one, opened at first use): a writer that always holds one then takes
    /// nothing from the connections `pool`'s other users share.
    pub fn beside(pool: &PgPool) -> Self {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with((*pool.connect_options()).clone());
        Self::new(own)
    }

    pub async fn conn(&mut self) -> sqlx::Result<&mut PgConnection> {
        self.reused = self.conn.is_some();
        let conn = match self.conn.take() {
            Some(c) => c,
            None => self.pool.acquire().await?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// A statement failed: the connection may be broken; the next one is fresh.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    /// A statement on the connection failed with `e`: lets the connection go, and says
    /// whether to run the statement once more on a fresh one. That is when `e` says the
    /// link was lost and the connection had served before: it may have died while it
    /// waited (a Postgres restart, a dropped link), which the pool's ping would have
    /// caught. Only for statements that may run twice.
    pub fn failed(&mut self, e: &sqlx::Error) -> bool {
        let again = self.reused && self.conn.is_some() && crate::outage::is_unreachable(e);
        self.reset();
        again
    }
}

/// Runs `$statement`, an expression of the connection `$conn`, on `$db`'s held
/// connection, and once more on a fresh one when [`HeldConn::failed`] says so; `$writer`
/// names the loop in the log line. Only for statements that may run twice (upserts,
/// deduplicated inserts, deletes). A macro, not a method taking an async closure: the
/// group-commit writers' futures must be `Send`, which such a closure's is not known to
/// be.
macro_rules! run_held {
    ($db:expr, $writer:expr, |$conn:ident| $statement:expr) => {{
        let db: &mut $crate::held_conn::HeldConn = $db;
        loop {
            let done = match db.conn().await {
                Ok($conn) => $statement.await,
                Err(e) => Err(e),
            };
            match done {
                Err(e) if db.failed(&e) => {
                    tracing::debug!(error = %e, "{}'s connection was lost; running its statement again", $writer)
                }
                done => break done,
            }
        }
    }};
}
pub(crate) use run_held;
