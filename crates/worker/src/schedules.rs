//! Runs wa.schedules with apalis-cron: one tick stream per enabled schedule, rebuilt when
//! the table changes. Every worker fires every tick; the idempotency key makes it one
//! job. A tick missed while no worker was running (next_run_at in the past) is fired
//! once on start, so nothing is skipped.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use apalis_cron::CronScheduler;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::Shared;
use pgwa_pg::schedules::{self, Schedule};

/// Parses standard 5-field cron by adding a seconds field; 6 or 7 fields are taken as is.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 { format!("0 {}", expr.trim()) } else { expr.trim().to_owned() };
    cron::Schedule::from_str(&full).map_err(|e| format!("cron: cannot parse {expr:?}: {e}"))
}

pub async fn run(shared: Arc<Shared>) {
    let mut running: HashMap<String, (Schedule, JoinHandle<()>)> = HashMap::new();
    loop {
        match schedules::enabled(&shared.pool).await {
            Ok(wanted) => reconcile(&shared, &mut running, wanted).await,
            Err(e) => tracing::warn!(error = %e, "reading wa.schedules failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shared.wake_schedules.notified() => {}
            _ = shared.stopping.cancelled() => break,
        }
    }
    for (_, (_, handle)) in running {
        handle.abort();
    }
}

async fn reconcile(shared: &Arc<Shared>, running: &mut HashMap<String, (Schedule, JoinHandle<()>)>, wanted: Vec<Schedule>) {
    let names: Vec<&str> = wanted.iter().map(|s| s.name.as_str()).collect();
    running.retain(|name, (_, h)| {
        let keep = names.contains(&name.as_str());
        if !keep {
            h.abort();
        }
        keep
    });
    for s in wanted {
        let same =
            running.get(&s.name).is_some_and(|(old, _)| old.cron == s.cron && old.task == s.task && old.payload == s.payload);
        if same {
            continue;
        }
        if let Some((_, h)) = running.remove(&s.name) {
            h.abort();
        }
        let cron = match parse_cron(&s.cron) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(schedule = %s.name, error = %e, "schedule cannot run");
                let _ = schedules::set_error(&shared.pool, &s.name, &e).await;
                continue;
            }
        };
        if let Some(missed) = s.next_run_at.filter(|t| *t < Utc::now() - chrono::Duration::seconds(5)) {
            let next = cron.upcoming(Utc).next();
            if let Err(e) = schedules::fire(&shared.pool, &s, missed, next).await {
                tracing::warn!(schedule = %s.name, error = %e, "firing a missed tick failed");
            }
        }
        let handle = tokio::spawn(drive(shared.clone(), s.clone(), cron));
        running.insert(s.name.clone(), (s, handle));
    }
}

async fn drive(shared: Arc<Shared>, s: Schedule, cron: cron::Schedule) {
    let mut ticks = Box::pin(CronScheduler::new(cron.clone()).into_stream());
    while let Some(tick) = ticks.next().await {
        let tick = match tick {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(schedule = %s.name, error = %e, "cron tick error");
                continue;
            }
        };
        let Some(at) = DateTime::<Utc>::from_timestamp(tick.get_timestamp() as i64, 0) else { continue };
        let next = cron.after(&at).next();
        match schedules::fire(&shared.pool, &s, at, next).await {
            Ok(job) => tracing::debug!(schedule = %s.name, job, "schedule fired"),
            Err(e) => tracing::warn!(schedule = %s.name, error = %e, "firing the schedule failed"),
        }
    }
}
