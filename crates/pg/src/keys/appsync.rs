//! AppSyncStore: app-state sync keys, collection versions, mutation MACs.

use std::collections::HashMap;

use async_trait::async_trait;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::{PgBackend, db_err, fenced, last_wins, ser_err};

#[async_trait]
impl AppSyncStore for PgBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        let row = sqlx::query!(
            "SELECT key_data, fingerprint, key_ts FROM wa.app_state_sync_keys WHERE session_id = $1 AND key_id = $2",
            &self.session,
            key_id
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|r| AppStateSyncKey { key_data: r.key_data, fingerprint: r.fingerprint, timestamp: r.key_ts }))
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        fenced!(
            self,
            "INSERT INTO wa.app_state_sync_keys (session_id, key_id, key_data, fingerprint, key_ts)
                 SELECT $1, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, key_id) DO UPDATE SET key_data = EXCLUDED.key_data,
                     fingerprint = EXCLUDED.fingerprint, key_ts = EXCLUDED.key_ts,
                     write_seq = nextval('wa.store_write_seq'), updated_at = now()",
            key_id.to_vec(),
            key.key_data,
            key.fingerprint,
            key.timestamp
        )
        .map(drop)
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        let v: Option<serde_json::Value> = sqlx::query_scalar!(
            "SELECT state FROM wa.app_state_versions WHERE session_id = $1 AND collection = $2",
            &self.session,
            name
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        match v {
            None => Ok(HashState::default()),
            Some(v) => serde_json::from_value(v).map_err(ser_err),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let version = state.version as i64;
        let json = serde_json::to_value(&state).map_err(ser_err)?;
        fenced!(
            self,
            "INSERT INTO wa.app_state_versions (session_id, collection, version, state)
                 SELECT $1, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, collection) DO UPDATE SET version = EXCLUDED.version,
                     state = EXCLUDED.state, updated_at = now()",
            name.to_string(),
            version,
            json
        )
        .map(drop)
    }

    async fn put_mutation_macs(&self, name: &str, version: u64, mutations: &[AppStateMutationMAC]) -> Result<()> {
        if mutations.is_empty() {
            return Ok(());
        }
        let rows = last_wins(mutations.iter().map(|m| (m.index_mac.clone(), m.value_mac.clone())));
        let (idx, vals): (Vec<Vec<u8>>, Vec<Vec<u8>>) = rows.into_iter().unzip();
        fenced!(
            self,
            "INSERT INTO wa.app_state_mutation_macs (session_id, collection, index_mac, value_mac, version)
                 SELECT $1, $4, i, v, $7 FROM unnest($5::bytea[], $6::bytea[]) AS u(i, v)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, collection, index_mac) DO UPDATE SET value_mac = EXCLUDED.value_mac,
                     version = EXCLUDED.version",
            name,
            &idx[..],
            &vals[..],
            version as i64
        )
        .map(drop)
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar!(
            "SELECT value_mac FROM wa.app_state_mutation_macs WHERE session_id = $1 AND collection = $2 AND index_mac = $3",
            &self.session,
            name,
            index_mac
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn get_mutation_macs(&self, name: &str, index_macs: &[[u8; 32]]) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<Vec<u8>> = index_macs.iter().map(|m| m.to_vec()).collect();
        let rows = sqlx::query!(
            "SELECT index_mac, value_mac FROM wa.app_state_mutation_macs
             WHERE session_id = $1 AND collection = $2 AND index_mac = ANY($3::bytea[])",
            &self.session,
            name,
            &wanted[..]
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            if let Ok(k) = <[u8; 32]>::try_from(r.index_mac.as_slice()) {
                out.insert(k, r.value_mac);
            }
        }
        Ok(out)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        fenced!(
            self,
            "DELETE FROM wa.app_state_mutation_macs
                 WHERE session_id = $1 AND collection = $4 AND index_mac = ANY($5::bytea[]) AND EXISTS (SELECT 1 FROM fence)",
            name.to_string(),
            index_macs
        )
        .map(drop)
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        fenced!(
            self,
            "DELETE FROM wa.app_state_mutation_macs WHERE session_id = $1 AND collection = $4 AND EXISTS (SELECT 1 FROM fence)",
            name.to_string()
        )
        .map(drop)
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar!(
            "SELECT key_id FROM wa.app_state_sync_keys WHERE session_id = $1 ORDER BY write_seq DESC LIMIT 1",
            &self.session
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }
}
