//! DeviceStore: the session's credentials as the JSONB auth document (wa.auth_state).

use async_trait::async_trait;
use sqlx::PgPool;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::DeviceStore;

use super::{PgBackend, db_err, fenced};
use crate::authdoc;

/// The raw auth document of a session, if any (for tools and the bench).
pub async fn load_auth_document(pool: &PgPool, session: &str) -> anyhow::Result<Option<serde_json::Value>> {
    Ok(sqlx::query_scalar!("SELECT creds FROM wa.auth_state WHERE session_id = $1", session).fetch_optional(pool).await?)
}

/// Writes a device as the session's auth document, unfenced (importers, tests); a
/// worker holding the session goes through [`PgBackend`]'s `save` instead.
pub async fn save_auth_document(pool: &PgPool, session: &str, device: &Device) -> anyhow::Result<()> {
    PgBackend::offline(pool.clone(), session).save(device).await?;
    Ok(())
}

#[async_trait]
impl DeviceStore for PgBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        let doc = authdoc::to_document(device);
        fenced!(
            self,
            "INSERT INTO wa.auth_state (session_id, creds) SELECT $1, $4 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id) DO UPDATE SET creds = EXCLUDED.creds, updated_at = now()",
            doc
        )
        .map(drop)
    }

    async fn load(&self) -> Result<Option<Device>> {
        let doc = sqlx::query_scalar!("SELECT creds FROM wa.auth_state WHERE session_id = $1", self.session)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match doc {
            None => Ok(None),
            Some(doc) => {
                authdoc::from_document(&self.session, &doc).map(Some).map_err(|e| StoreError::Serialization(Box::new(e)))
            }
        }
    }

    async fn exists(&self) -> Result<bool> {
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM wa.auth_state WHERE session_id = $1) AS "exists!""#, self.session)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    /// One device per session: materializes fresh credentials when there are none (so
    /// `exists` is true afterwards, as in whatsapp-rust's own stores) and never replaces
    /// existing ones. The id is always 1.
    async fn create(&self) -> Result<i32> {
        let doc = authdoc::to_document(&Device::new());
        fenced!(
            self,
            "INSERT INTO wa.auth_state (session_id, creds) SELECT $1, $4 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id) DO NOTHING",
            doc
        )?;
        Ok(1)
    }

    async fn resource_report(&self) -> whatsapp_rust::wacore::stats::StorageResourceReport {
        // Rows live in Postgres, not in this process.
        whatsapp_rust::wacore::stats::StorageResourceReport { memory_bytes: Some(0), ..Default::default() }
    }
}
