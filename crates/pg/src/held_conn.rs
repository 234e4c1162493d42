//! A queue connection that one loop keeps from statement to statement.
//!
//! sqlx pings a pooled connection (a round trip) when it goes back to the pool and again
//! when it is taken out, so every claim and every outcome batch through the pool cost
//! three round trips instead of one, and woke the Postgres backend three times. At low
//! load, where each statement carries one job, that was a third of the claim loop's time.
//! The loop keeps its connection until a statement on it fails, then lets it go (the pool
//! closes it if it is broken) and takes a fresh one for the next statement.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

pub struct HeldConn {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl HeldConn {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, conn: None }
    }

    pub async fn conn(&mut self) -> sqlx::Result<&mut PgConnection> {
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
}
