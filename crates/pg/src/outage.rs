//! Riding out a database outage (a restart, a failover, a dropped network) where
//! giving up would cost more than waiting: an inbound message whose durable copy cannot
//! be written is never acknowledged, and whatsapp-rust's ratchet has already moved past
//! it, so a redelivery could no longer be decrypted. Only errors that say "Postgres is
//! not answering" are waited out; a statement Postgres refused fails at once.

use std::future::Future;
use std::time::Duration;

use pgwa_core::backoff::Backoff;
use tokio::time::Instant;

/// Pauses between attempts: 100 ms doubling to 2 s (never past the limit).
const PAUSES: Backoff = Backoff::doubling(Duration::from_millis(100), Duration::from_secs(2));

/// Whether `e` means Postgres could not be reached or dropped the connection, as opposed
/// to refusing the statement. SQLSTATE class 08 (connection exception), 57P01-57P03
/// (shutting down, crashed, starting up) and 53300 (too many connections) count.
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::WorkerCrashed => true,
        E::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")),
        _ => false,
    }
}

/// Like [`is_unreachable`], for an error that carries a `sqlx::Error` somewhere in its
/// source chain (the whatsapp-rust store errors box it).
pub fn caused_by_unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(s) = e.downcast_ref::<sqlx::Error>() {
            return is_unreachable(s);
        }
        cur = e.source();
    }
    false
}

/// Runs `op` until it succeeds, fails with an error `unreachable` does not accept, or
/// `limit` has passed since the first failure (then the last error is returned). Logs
/// once when the wait starts and once when it ends, naming `what`.
pub async fn wait_out<T, E, F, Fut>(limit: Duration, what: &str, unreachable: impl Fn(&E) -> bool, mut op: F) -> Result<T, E>
where
    E: std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut started: Option<Instant> = None;
    for pause in PAUSES.delays() {
        match op().await {
            Ok(v) => {
                if let Some(t) = started {
                    tracing::info!(waited_ms = t.elapsed().as_millis() as u64, "database answers again: {what} succeeded");
                }
                return Ok(v);
            }
            Err(e) if unreachable(&e) => {
                let since = *started.get_or_insert_with(|| {
                    tracing::warn!(error = %chain(&e), limit_ms = limit.as_millis() as u64, "database unreachable: {what} waits for it");
                    Instant::now()
                });
                if since.elapsed() >= limit {
                    return Err(e);
                }
                tokio::time::sleep(pause.min(limit.saturating_sub(since.elapsed()))).await;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the pauses never run out")
}

/// The error and its sources, "outer: inner: ...": the store's errors say only
/// "database operation error" at the top.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn io_error() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"))
    }

    #[test]
    fn connection_errors_are_unreachable_and_refusals_are_not() {
        assert!(is_unreachable(&io_error()));
        assert!(is_unreachable(&sqlx::Error::PoolTimedOut));
        assert!(!is_unreachable(&sqlx::Error::RowNotFound));
        assert!(!is_unreachable(&sqlx::Error::PoolClosed), "a closed pool is a shutdown, not an outage");
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(io_error());
        assert!(caused_by_unreachable(boxed.as_ref()));
        let other: Box<dyn std::error::Error + Send + Sync> = Box::new(std::fmt::Error);
        assert!(!caused_by_unreachable(other.as_ref()));
    }

    // On tokio's paused clock: the waits take no real time, and their lengths are exact.

    #[tokio::test(start_paused = true)]
    async fn waits_while_unreachable_then_succeeds() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let r: Result<u32, sqlx::Error> = wait_out(Duration::from_secs(60), "a test write", is_unreachable, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n < 4 { Err(io_error()) } else { Ok(n) }
        })
        .await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(start.elapsed(), Duration::from_millis(100 + 200 + 400), "three growing pauses");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_limit_and_never_retries_a_refusal() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let r: Result<(), sqlx::Error> = wait_out(Duration::from_secs(1), "a test write", is_unreachable, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(io_error())
        })
        .await;
        assert!(r.is_err());
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "gave up after {took:?}");
        assert!(calls.load(Ordering::SeqCst) > 3, "it retried while waiting");
        // Exactly: pauses of 100, 200 and 400 ms, then the 300 ms left of the limit.
        assert_eq!((took, calls.load(Ordering::SeqCst)), (Duration::from_secs(1), 5));

        let refused = AtomicU32::new(0);
        let r: Result<(), sqlx::Error> = wait_out(Duration::from_secs(5), "a test write", is_unreachable, || async {
            refused.fetch_add(1, Ordering::SeqCst);
            Err(sqlx::Error::RowNotFound)
        })
        .await;
        assert!(r.is_err());
        assert_eq!(refused.load(Ordering::SeqCst), 1, "a refused statement is not retried");
    }
}
