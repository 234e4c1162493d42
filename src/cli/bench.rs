//! `pgwa bench`: prints one JSON line of measured figures.

use clap::Args;

use super::log::say;
use pgwa_bench::jobs::{self, JobsBench};
use pgwa_bench::outcomes::{self, OutcomesBench};
use pgwa_core::config::Config;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Send jobs to enqueue and drain (in rate mode: how many to enqueue at that rate).
    #[arg(long, default_value_t = 100_000)]
    pub jobs: u64,
    /// Simulated sessions the jobs are spread over.
    #[arg(long, default_value_t = 50)]
    pub sessions: u32,
    /// Distinct recipients per session.
    #[arg(long, default_value_t = 200)]
    pub chats: u32,
    /// Steady mode: enqueue this many jobs per second, one per statement, and report latency.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Simulated time from send to server ack.
    #[arg(long, default_value_t = 0)]
    pub ack_latency_ms: u64,
    /// SQL run in the scratch database after its migrations, before the sends are
    /// enqueued: a schema variant to drain against the shipped one. Repeatable (applied
    /// in order); the paths are printed with the figures. crates/bench/sql has some.
    #[arg(long, value_name = "FILE")]
    pub schema_variant: Vec<std::path::PathBuf>,
}

pub async fn run(cfg: &Config, a: BenchArgs) -> anyhow::Result<()> {
    if a.jobs == 0 || a.sessions == 0 || a.chats == 0 || a.rate == Some(0) {
        anyhow::bail!("--jobs, --sessions, --chats and --rate must be above 0");
    }
    let mut variants = Vec::new();
    for path in &a.schema_variant {
        let sql = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--schema-variant: cannot read {}: {e}", path.display()))?;
        variants.push((path.display().to_string(), sql));
    }
    let b = JobsBench {
        jobs: a.jobs,
        sessions: a.sessions,
        chats: a.chats,
        rate: a.rate,
        ack_latency_ms: a.ack_latency_ms,
        schema_variants: variants,
    };
    let result = jobs::run(cfg, b).await?;
    say(result);
    Ok(())
}

#[derive(Args, Debug)]
pub struct OutcomesArgs {
    /// Sends queued, completed, then delivered and read, in each variant's run.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: u64,
    /// Sessions the sends are spread over.
    #[arg(long, default_value_t = 50)]
    pub sessions: u32,
    /// Rounds of all variants in turn.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Run only this variant (repeatable; default: all of them). `as_shipped` is the
    /// schema as it ships; BENCHMARKS.md says what each other one changes.
    #[arg(long = "variant", value_name = "NAME")]
    pub variants: Vec<String>,
}

pub async fn outcomes(cfg: &Config, a: OutcomesArgs) -> anyhow::Result<()> {
    if a.jobs == 0 || a.sessions == 0 || a.rounds == 0 {
        anyhow::bail!("--jobs, --sessions and --rounds must be above 0");
    }
    let b = OutcomesBench { jobs: a.jobs, sessions: a.sessions, rounds: a.rounds, only: a.variants };
    let result = outcomes::run(cfg, b).await?;
    say(result);
    Ok(())
}
