//! ProtocolStore: sender-key device tracking, LID mappings, base keys, device lists and
//! group metadata here; tc tokens, sent messages and pending inbound delegate to
//! `ephemeral` (the rows the TTL sweeps expire).

use async_trait::async_trait;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore, TcTokenEntry,
};

use super::{PgBackend, db_err, fenced, last_wins, ser_err};

#[async_trait]
impl ProtocolStore for PgBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let rows = sqlx::query!(
            "SELECT device_jid, has_key FROM wa.sender_key_devices WHERE session_id = $1 AND group_jid = $2 ORDER BY device_jid",
            &self.session,
            group_jid
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|r| (r.device_jid, r.has_key)).collect())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = last_wins(entries.iter().map(|(d, h)| (d.to_string(), *h)));
        let (devs, has): (Vec<String>, Vec<bool>) = rows.into_iter().unzip();
        fenced!(
            self,
            "INSERT INTO wa.sender_key_devices (session_id, group_jid, device_jid, has_key)
                 SELECT $1, $4, d, h FROM unnest($5::text[], $6::bool[]) AS u(d, h)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, group_jid, device_jid) DO UPDATE SET has_key = EXCLUDED.has_key",
            group_jid,
            &devs[..],
            &has[..]
        )
        .map(drop)
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        fenced!(
            self,
            "DELETE FROM wa.sender_key_devices WHERE session_id = $1 AND group_jid = $4 AND EXISTS (SELECT 1 FROM fence)",
            group_jid.to_string()
        )
        .map(drop)
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        fenced!(
            self,
            "DELETE FROM wa.sender_key_devices WHERE session_id = $1 AND device_jid = ANY($4::text[])
                 AND EXISTS (SELECT 1 FROM fence)",
            device_jids as &[&str]
        )
        .map(drop)
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        fenced!(self, "DELETE FROM wa.sender_key_devices WHERE session_id = $1 AND EXISTS (SELECT 1 FROM fence)").map(drop)
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        sqlx::query_as!(
            LidPnMappingEntry,
            "SELECT lid, phone_number, created_at, updated_at, learning_source
               FROM wa.lid_mappings WHERE session_id = $1 AND lid = $2",
            &self.session,
            lid
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        // The most recently written LID for the phone, as whatsapp-rust's reverse index.
        sqlx::query_as!(
            LidPnMappingEntry,
            "SELECT lid, phone_number, created_at, updated_at, learning_source
               FROM wa.lid_mappings WHERE session_id = $1 AND phone_number = $2 ORDER BY write_seq DESC LIMIT 1",
            &self.session,
            phone
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = last_wins(entries.iter().map(|e| (e.lid.clone(), e)));
        let lids: Vec<String> = rows.iter().map(|(l, _)| l.clone()).collect();
        let pns: Vec<String> = rows.iter().map(|(_, e)| e.phone_number.clone()).collect();
        let created: Vec<i64> = rows.iter().map(|(_, e)| e.created_at).collect();
        let updated: Vec<i64> = rows.iter().map(|(_, e)| e.updated_at).collect();
        let sources: Vec<String> = rows.iter().map(|(_, e)| e.learning_source.clone()).collect();
        fenced!(
            self,
            "INSERT INTO wa.lid_mappings (session_id, lid, phone_number, created_at, updated_at, learning_source)
                 SELECT $1, l, p, c, u, s FROM unnest($4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[])
                     WITH ORDINALITY AS x(l, p, c, u, s, ord)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ORDER BY ord
                 ON CONFLICT (session_id, lid) DO UPDATE SET phone_number = EXCLUDED.phone_number,
                     created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
                     learning_source = EXCLUDED.learning_source,
                     write_seq = nextval('wa.store_write_seq'), stored_at = now()",
            &lids[..],
            &pns[..],
            &created[..],
            &updated[..],
            &sources[..]
        )
        .map(drop)
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        sqlx::query_as!(
            LidPnMappingEntry,
            "SELECT lid, phone_number, created_at, updated_at, learning_source
               FROM wa.lid_mappings WHERE session_id = $1 ORDER BY lid",
            &self.session
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        fenced!(
            self,
            "INSERT INTO wa.base_keys (session_id, address, message_id, base_key)
                 SELECT $1, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, address, message_id) DO UPDATE SET base_key = EXCLUDED.base_key, created_at = now()",
            address.to_string(),
            message_id.to_string(),
            base_key.to_vec()
        )
        .map(drop)
    }

    async fn has_same_base_key(&self, address: &str, message_id: &str, current_base_key: &[u8]) -> Result<bool> {
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM wa.base_keys WHERE session_id = $1 AND address = $2 AND message_id = $3 AND base_key = $4) AS "exists!""#, &self.session, address, message_id, current_base_key)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        fenced!(
            self,
            "DELETE FROM wa.base_keys WHERE session_id = $1 AND address = $4 AND message_id = $5 AND EXISTS (SELECT 1 FROM fence)",
            address.to_string(),
            message_id.to_string()
        ).map(drop)
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut users = Vec::with_capacity(records.len());
        let mut docs = Vec::with_capacity(records.len());
        for (user, rec) in last_wins(records.into_iter().map(|r| (r.user.clone(), r))) {
            users.push(user);
            docs.push(serde_json::to_value(&rec).map_err(ser_err)?);
        }
        fenced!(
            self,
            "INSERT INTO wa.device_lists (session_id, user_id, record)
                 SELECT $1, u, r FROM unnest($4::text[], $5::jsonb[]) AS x(u, r)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, user_id) DO UPDATE SET record = EXCLUDED.record, updated_at = now()",
            &users[..],
            &docs[..]
        )
        .map(drop)
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        let v: Option<serde_json::Value> =
            sqlx::query_scalar!("SELECT record FROM wa.device_lists WHERE session_id = $1 AND user_id = $2", &self.session, user)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        v.map(|v| serde_json::from_value(v).map_err(ser_err)).transpose()
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        fenced!(
            self,
            "DELETE FROM wa.device_lists WHERE session_id = $1 AND user_id = $4 AND EXISTS (SELECT 1 FROM fence)",
            user.to_string()
        )
        .map(drop)
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar!(
            "SELECT blob FROM wa.group_metadata WHERE session_id = $1 AND group_jid = $2",
            &self.session,
            group_jid
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        fenced!(
            self,
            "INSERT INTO wa.group_metadata (session_id, group_jid, blob)
                 SELECT $1, $4, $5 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, group_jid) DO UPDATE SET blob = EXCLUDED.blob, updated_at = now()",
            group_jid.to_string(),
            blob.to_vec()
        )
        .map(drop)
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        fenced!(
            self,
            "DELETE FROM wa.group_metadata WHERE session_id = $1 AND group_jid = $4 AND EXISTS (SELECT 1 FROM fence)",
            group_jid.to_string()
        )
        .map(drop)
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.tc_get(jid).await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.tc_put(jid, entry).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.tc_delete(jid).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.tc_all_jids().await
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        self.tc_delete_expired(token_cutoff, sender_cutoff).await
    }

    async fn touch_tc_token_sender_timestamp(&self, jid: &str, sender_timestamp: i64) -> Result<()> {
        self.tc_touch_sender(jid, sender_timestamp).await
    }

    async fn store_received_tc_token(&self, jid: &str, token: &[u8], token_timestamp: i64) -> Result<()> {
        self.tc_store_received(jid, token, token_timestamp).await
    }

    async fn store_sent_message(&self, chat_jid: &str, message_id: &str, payload: &[u8]) -> Result<()> {
        self.sent_store(chat_jid, message_id, payload).await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.sent_take(chat_jid, message_id).await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.sent_delete_expired(cutoff_timestamp).await
    }

    async fn store_pending_inbound(&self, chat: &str, sender: &str, id: &str, message: &[u8]) -> Result<()> {
        self.pending_store(&[PendingInboundRow { chat, sender, id, message }]).await
    }

    async fn get_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        self.pending_get(chat, sender, id).await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.pending_delete(&[PendingInboundKey { chat, sender, id }]).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.pending_delete_expired(cutoff_timestamp).await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        self.pending_store(rows).await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        self.pending_delete(keys).await
    }
}
