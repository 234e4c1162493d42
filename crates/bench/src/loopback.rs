//! What the loopback benchmarks share: a scratch database, the loopback WhatsApp server
//! and its phone in this process, and real `pgwa run` worker processes pointed at it,
//! measured from the outside through /proc (so the figures are the worker's alone, not
//! the server's or the phone's).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinHandle;

use pgwa_pg::PgPool;
use pgwa_pg::bench as sql;

pub use crate::worker_proc::WorkerProc;

/// Progress goes to stderr: stdout carries the one JSON line of figures.
pub fn progress(msg: impl std::fmt::Display) {
    eprintln!("bench: {msg}");
}

pub struct Harness {
    pub server: pgwa_loopback::Server,
    pub url: String,
    pub pool: PgPool,
    phone: JoinHandle<()>,
}

impl Harness {
    /// Migrates the scratch database at `url` (`crate::in_scratch_db` makes and drops
    /// it) and starts the loopback server and the phone that answers in it.
    pub async fn start(url: String) -> Result<Self> {
        let pool = pgwa_pg::connect(&url, 4).await?;
        pgwa_pg::migrate::migrate(&pool).await?;
        let server =
            pgwa_loopback::Server::start(pgwa_loopback::Config::default()).await.context("starting the loopback server")?;
        let phone = tokio::spawn(crate::phone::play_phone(pool.clone(), server.shared.clone(), false));
        Ok(Self { server, url, pool, phone })
    }

    /// A `pgwa run` process (this binary) on the whatsapp-rust backend against the
    /// loopback server, with `extra` configuration on top.
    pub fn spawn_worker(&self, extra: &[(&str, String)]) -> Result<WorkerProc> {
        let exe = std::env::current_exe().context("locating the pgwa binary")?;
        // BENCH_WORKER_WRAP runs each worker under a profiler, e.g. "heaptrack -o /tmp/w":
        // attaching one to a running worker fails on some hosts. (Not PGWA_*: the
        // configuration refuses keys it does not know there.)
        let wrap = std::env::var("BENCH_WORKER_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let mut cmd = match wrap.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(wrap).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(["run", "--no-migrate"])
            .env_remove("DATABASE_URL")
            .env("PGWA_DATABASE_URL", &self.url)
            .env("PGWA_WHATSAPP__BACKEND", "whatsapp")
            .env("PGWA_WHATSAPP__RUST__WS_URL", self.server.ws_url())
            .env("PGWA_WHATSAPP__RUST__VERSION", "[2, 3000, 0]")
            .env("PGWA_HTTP__ENABLED", "false")
            // BENCH_WORKER_LOG raises the workers' log filter (e.g. "warn,pgwa_worker=debug")
            // to see inside a run; by default their logging costs nothing measurable.
            .env("PGWA_LOG__FILTER", std::env::var("BENCH_WORKER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        WorkerProc::spawn(cmd, exe)
    }

    /// The database's clock, to compare with timestamps it writes.
    pub async fn db_now(&self) -> Result<chrono::DateTime<chrono::Utc>> {
        Ok(sql::db_now(&self.pool).await?)
    }

    /// Waits until `n` sessions have connected since `since` (database time); returns
    /// how long that took. Prints progress every 5 s.
    pub async fn wait_connected(&self, n: i64, since: chrono::DateTime<chrono::Utc>, within: Duration) -> Result<Duration> {
        let start = Instant::now();
        let mut shown = Instant::now();
        loop {
            let up = sql::connected_since(&self.pool, since).await?;
            if up >= n {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                bail!("only {up} of {n} sessions connected after {} s", within.as_secs());
            }
            if shown.elapsed() >= Duration::from_secs(5) {
                progress(format!("{up} of {n} sessions connected after {:.0} s", start.elapsed().as_secs_f64()));
                shown = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until `session_like` sessions' inboxes hold `n` rows; prints progress.
    ///
    /// Each count reads the whole of those inboxes, in the Postgres the measured workers
    /// share: it sleeps half the time the rows seen so far say the rest needs, between
    /// 20 ms and 1 s, which is a few counts a burst instead of one every 100 ms. The
    /// figures do not depend on it: a burst's span is read from the rows' timestamps.
    pub async fn wait_inbox(&self, session_like: &str, n: i64, within: Duration) -> Result<()> {
        let start = Instant::now();
        let mut shown = Instant::now();
        let first = sql::inbox_count(&self.pool, session_like).await?;
        let mut got = first;
        loop {
            if got >= n {
                return Ok(());
            }
            if start.elapsed() > within {
                bail!("only {got} of {n} messages arrived after {} s", within.as_secs());
            }
            if shown.elapsed() >= Duration::from_secs(5) {
                progress(format!("{got} of {n} messages arrived"));
                shown = Instant::now();
            }
            tokio::time::sleep(next_count_in(got - first, n - got, start.elapsed())).await;
            got = sql::inbox_count(&self.pool, session_like).await?;
        }
    }

    /// Stops the phone, then closes the pool: the other way round, the phone's next
    /// read found the pool closed and said so on stderr.
    pub async fn close(&mut self) {
        self.phone.abort();
        let _ = (&mut self.phone).await;
        self.pool.close().await;
    }
}

/// Half the time `left` rows need at the pace `arrived` rows took `spent`, within
/// 20 ms..1 s (the shortest while nothing has arrived to tell the pace).
fn next_count_in(arrived: i64, left: i64, spent: Duration) -> Duration {
    let (least, most) = (Duration::from_millis(20), Duration::from_secs(1));
    if arrived <= 0 {
        return least;
    }
    spent.mul_f64(left.max(0) as f64 / arrived as f64 / 2.0).clamp(least, most)
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.phone.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::next_count_in;
    use std::time::Duration;

    #[test]
    fn counts_come_closer_as_the_rows_near_the_goal() {
        let ms = Duration::from_millis;
        assert_eq!(next_count_in(0, 5000, ms(300)), ms(20), "no pace known yet");
        assert_eq!(next_count_in(1000, 4000, ms(500)), ms(1000), "capped at a second");
        assert_eq!(next_count_in(4000, 1000, ms(2000)), ms(250));
        assert_eq!(next_count_in(4990, 10, ms(5000)), ms(20), "floored near the end");
    }
}
