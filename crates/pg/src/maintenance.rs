//! Retention: finished jobs are deleted in bounded batches, so a sweep never holds long
//! locks on the hot job table or bloats WAL in one giant statement.

use sqlx::PgPool;

use pgwa_core::config::RetentionConfig;

/// Deletes, batch by batch: completed jobs other than sends after `completed_hours`;
/// completed and cancelled sends (the message history) after `sends_days`; dead jobs
/// after `dead_days`. Returns how many of each.
pub async fn sweep_jobs(pool: &PgPool, cfg: &RetentionConfig) -> sqlx::Result<serde_json::Value> {
    let rules: [(&str, &str, f64); 3] = [
        ("completed", "state IN ('completed', 'cancelled') AND kind <> 'send'", cfg.completed_hours as f64 * 3600.0),
        ("sends", "state IN ('completed', 'cancelled') AND kind = 'send'", cfg.sends_days as f64 * 86400.0),
        ("dead", "state = 'dead'", cfg.dead_days as f64 * 86400.0),
    ];
    let mut counts = serde_json::Map::new();
    for (name, predicate, age_secs) in rules {
        let sql = format!(
            "DELETE FROM wa.jobs WHERE id IN (
                 SELECT id FROM wa.jobs
                  WHERE finished_at < now() - make_interval(secs => $1) AND {predicate}
                  LIMIT $2)"
        );
        let mut total = 0u64;
        loop {
            let n = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(age_secs)
                .bind(cfg.batch as i64)
                .execute(pool)
                .await?
                .rows_affected();
            total += n;
            if n < cfg.batch as u64 {
                break;
            }
        }
        counts.insert(name.into(), total.into());
    }
    Ok(serde_json::Value::Object(counts))
}
