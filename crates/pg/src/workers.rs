//! Worker registration and heartbeats.

use sqlx::PgPool;
use uuid::Uuid;

use pgwa_core::config::Backend;

/// A worker as it registers.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: Uuid,
    pub host: String,
    pub max_sessions: u32,
    /// Its WhatsApp side, shown with every session it holds (wa.session_health.backend).
    pub backend: Backend,
}

impl Registration {
    /// A whatsapp-rust worker: what tests that register workers by hand stand for.
    pub fn new(id: Uuid, host: &str, max_sessions: u32) -> Self {
        Self { id, host: host.into(), max_sessions, backend: Backend::Whatsapp }
    }
}

pub async fn register(pool: &PgPool, r: &Registration) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO wa.workers (id, host, pid, version, max_sessions, backend)
         VALUES ($1, $2, $3, $4, $5, $6::text::wa.whatsapp_backend)",
        r.id,
        r.host,
        std::process::id() as i32,
        env!("CARGO_PKG_VERSION"),
        r.max_sessions as i32,
        r.backend.as_str(),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Returns false if the row is gone (reaped while this worker was paused): the caller
/// registers again.
pub async fn heartbeat(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let n = sqlx::query!("UPDATE wa.workers SET heartbeat_at = now() WHERE id = $1", id).execute(pool).await?;
    Ok(n.rows_affected() == 1)
}

pub async fn mark_stopping(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("UPDATE wa.workers SET stopping_at = now() WHERE id = $1", id).execute(pool).await?;
    Ok(())
}

pub async fn deregister(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM wa.workers WHERE id = $1", id).execute(pool).await?;
    Ok(())
}

/// Deletes workers whose heartbeat is older than `older_than_secs` (their sessions were
/// taken over long ago). Returns how many.
pub async fn reap_dead(pool: &PgPool, older_than_secs: f64) -> sqlx::Result<u64> {
    let n = sqlx::query!("DELETE FROM wa.workers WHERE heartbeat_at < now() - make_interval(secs => $1)", older_than_secs)
        .execute(pool)
        .await?;
    Ok(n.rows_affected())
}
