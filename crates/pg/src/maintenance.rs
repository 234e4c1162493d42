//! Retention: finished jobs are deleted in bounded batches, so a sweep never holds long
//! locks on the hot job table or bloats WAL in one giant statement.

use sqlx::PgPool;

use pgwa_core::config::RetentionConfig;

/// Deletes, batch by batch: completed jobs other than sends after `completed_hours`;
/// completed and cancelled sends (the message history) after `sends_days`; dead jobs
/// after `dead_days`. Returns how many of each.
pub async fn sweep_jobs(pool: &PgPool, cfg: &RetentionConfig) -> sqlx::Result<serde_json::Value> {
    let batch = cfg.batch as i64;
    let mut counts = serde_json::Map::new();
    for rule in [Rule::Completed, Rule::Sends, Rule::Dead] {
        let mut total = 0u64;
        loop {
            let n = rule.delete_batch(pool, cfg, batch).await?;
            total += n;
            if n < batch as u64 {
                break;
            }
        }
        counts.insert(rule.name().into(), total.into());
    }
    Ok(serde_json::Value::Object(counts))
}

/// The retention statements by rule name, each taking $1 seconds kept and $2 batch:
/// public so tests can check what they read.
pub const RETENTION: [(&str, &str); 3] = [
    ("completed", include_str!("../queries/retention_completed.sql")),
    ("sends", include_str!("../queries/retention_sends.sql")),
    ("dead", include_str!("../queries/retention_dead.sql")),
];

/// In `RETENTION`'s order.
#[derive(Clone, Copy)]
enum Rule {
    /// Completed and cancelled jobs other than sends.
    Completed,
    /// Completed and cancelled sends: the outbound message history.
    Sends,
    Dead,
}

impl Rule {
    /// The rule's name as `RETENTION` gives it (declared in the same order).
    fn name(self) -> &'static str {
        RETENTION[self as usize].0
    }

    /// Deletes at most `batch` of the rule's jobs finished before its retention, oldest
    /// first. Each rule reads only its own part of the finished jobs (migration 0033).
    async fn delete_batch(self, pool: &PgPool, cfg: &RetentionConfig, batch: i64) -> sqlx::Result<u64> {
        let done = match self {
            Rule::Completed => {
                sqlx::query_file!("queries/retention_completed.sql", cfg.completed_hours as f64 * 3600.0, batch)
                    .execute(pool)
                    .await?
            }
            Rule::Sends => {
                sqlx::query_file!("queries/retention_sends.sql", cfg.sends_days as f64 * 86400.0, batch).execute(pool).await?
            }
            Rule::Dead => {
                sqlx::query_file!("queries/retention_dead.sql", cfg.dead_days as f64 * 86400.0, batch).execute(pool).await?
            }
        };
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::{RETENTION, Rule};

    /// A rule is named, and its statement checked by the plan tests, by its place in `RETENTION`.
    #[test]
    fn each_rule_finds_its_own_statement_in_retention() {
        for rule in [Rule::Completed, Rule::Sends, Rule::Dead] {
            let (name, sql) = RETENTION[rule as usize];
            let own = match rule {
                Rule::Completed => include_str!("../queries/retention_completed.sql"),
                Rule::Sends => include_str!("../queries/retention_sends.sql"),
                Rule::Dead => include_str!("../queries/retention_dead.sql"),
            };
            assert_eq!(sql, own, "RETENTION's entry {name} holds another rule's statement");
            assert_eq!(rule.name(), name);
        }
    }
}
