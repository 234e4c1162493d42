//! `pgwa dev ...` as the command line reads it, in every build: a build without the
//! `loopback` feature (every release build) still knows the command, so it can say how to
//! get it instead of "unrecognized subcommand".

#[derive(clap::Subcommand, Debug)]
pub enum DevCmd {
    /// Run a loopback WhatsApp server, a phone that links every new session, and a worker.
    Loopback {
        /// Port of the loopback server on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 5222)]
        port: u16,
    },
    /// Benchmark: one worker process holding many linked sessions (memory per session,
    /// idle CPU, restart bring-up). Prints one JSON line; uses `<database>_bench`.
    BenchSessions {
        #[arg(long, default_value_t = 1000)]
        sessions: u32,
        /// Seconds of idle to measure CPU over.
        #[arg(long, default_value_t = 30)]
        idle_secs: u64,
        /// The worker's connection stagger; without it, the configuration's
        /// `worker.connect_per_sec` (its default included), so the restart is measured as
        /// deployed.
        #[arg(long)]
        connect_per_sec: Option<u32>,
        /// Before memory is measured, each session messages this many of the others (and is
        /// messaged by as many), so each holds Signal sessions with 2 x this many contacts.
        #[arg(long, default_value_t = 0)]
        contacts: u32,
    },
    /// Benchmark: messages A -> B through two worker processes and Postgres (throughput
    /// of a burst, latency from wa.send_text to B's inbox at a steady rate). Prints one
    /// JSON line; uses `<database>_bench`.
    BenchMessages {
        #[arg(long, default_value_t = 10)]
        pairs: u32,
        #[arg(long, default_value_t = 5000)]
        messages: u64,
        #[arg(long, default_value_t = 50)]
        rate: u32,
        #[arg(long, default_value_t = 1000)]
        latency_messages: u64,
        /// Rounds of both runs (keys in Postgres, keys in memory), alternating which goes
        /// first; the figures printed on top are the round with the median burst ratio.
        #[arg(long, default_value_t = 1)]
        rounds: u32,
        /// Also write every latency message of every run to this CSV file (round,
        /// key_store, sent_ms, pair, to_claim_ms, to_inbox_ms), to see when the slow
        /// ones came.
        #[arg(long)]
        timeline: Option<std::path::PathBuf>,
        /// How the burst is enqueued, in one statement either way: a `wa.send_text` call
        /// per message, or one `INSERT INTO wa.jobs ... SELECT` of them all.
        #[arg(long, value_enum, default_value_t = BurstEnqueue::SendText)]
        enqueue: BurstEnqueue,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BurstEnqueue {
    SendText,
    Insert,
}

impl DevCmd {
    pub fn is_bench(&self) -> bool {
        !matches!(self, DevCmd::Loopback { .. })
    }
}

/// What a build without the `loopback` feature answers to `pgwa dev ...`.
#[cfg_attr(feature = "loopback", allow(dead_code))]
pub fn not_in_this_build() -> anyhow::Error {
    anyhow::anyhow!(
        "`pgwa dev` is not in this build: it needs the `loopback` feature, which release builds leave out on \
         purpose (it skips the check of WhatsApp's certificate, so such a build connects only to a server on this \
         machine). To try pgwa offline, run it from a checkout: `cargo run --features loopback -- dev loopback`, \
         or install such a build: `cargo install --path . --features loopback`"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_missing_command_says_how_to_get_it() {
        let e = super::not_in_this_build().to_string();
        assert!(e.contains("--features loopback -- dev loopback") && e.contains("release builds"), "{e}");
    }
}
