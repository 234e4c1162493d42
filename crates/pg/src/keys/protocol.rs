//! ProtocolStore: sender-key device tracking, LID mappings, base keys, device lists and
//! group metadata here; tc tokens, sent messages and pending inbound delegate to
//! `ephemeral` (the rows the TTL sweeps expire).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore, TcTokenEntry,
};

use super::{PgBackend, db_err, fenced, last_wins, ser_err};

fn lid_row(r: PgRow) -> Result<LidPnMappingEntry> {
    Ok(LidPnMappingEntry {
        lid: r.try_get("lid").map_err(db_err)?,
        phone_number: r.try_get("phone_number").map_err(db_err)?,
        created_at: r.try_get("created_at").map_err(db_err)?,
        updated_at: r.try_get("updated_at").map_err(db_err)?,
        learning_source: r.try_get("learning_source").map_err(db_err)?,
    })
}

const LID_COLS: &str = "lid, phone_number, created_at, updated_at, learning_source";

#[async_trait]
impl ProtocolStore for PgBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let rows = sqlx::query(
            "SELECT device_jid, has_key FROM wa.sender_key_devices WHERE session_id = $1 AND group_jid = $2 ORDER BY device_jid",
        )
        .bind(&self.session)
        .bind(group_jid)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter().map(|r| Ok((r.try_get(0).map_err(db_err)?, r.try_get(1).map_err(db_err)?))).collect()
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows = last_wins(entries.iter().map(|(d, h)| (d.to_string(), *h)));
        let (devs, has): (Vec<String>, Vec<bool>) = rows.into_iter().unzip();
        let q = self
            .write(fenced!(
                "INSERT INTO wa.sender_key_devices (session_id, group_jid, device_jid, has_key)
                 SELECT $1, $4, d, h FROM unnest($5::text[], $6::bool[]) AS u(d, h)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, group_jid, device_jid) DO UPDATE SET has_key = EXCLUDED.has_key"
            ))
            .bind(group_jid.to_string())
            .bind(devs)
            .bind(has);
        self.run(q).await.map(drop)
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        let q = self
            .write(fenced!(
                "DELETE FROM wa.sender_key_devices WHERE session_id = $1 AND group_jid = $4 AND EXISTS (SELECT 1 FROM fence)"
            ))
            .bind(group_jid.to_string());
        self.run(q).await.map(drop)
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let devs: Vec<String> = device_jids.iter().map(|s| s.to_string()).collect();
        let q = self
            .write(fenced!(
                "DELETE FROM wa.sender_key_devices WHERE session_id = $1 AND device_jid = ANY($4::text[])
                 AND EXISTS (SELECT 1 FROM fence)"
            ))
            .bind(devs);
        self.run(q).await.map(drop)
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        let q = self.write(fenced!("DELETE FROM wa.sender_key_devices WHERE session_id = $1 AND EXISTS (SELECT 1 FROM fence)"));
        self.run(q).await.map(drop)
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        let sql = format!("SELECT {LID_COLS} FROM wa.lid_mappings WHERE session_id = $1 AND lid = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.session)
            .bind(lid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(lid_row).transpose()
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        // The most recently written LID for the phone, as whatsapp-rust's reverse index.
        let sql = format!(
            "SELECT {LID_COLS} FROM wa.lid_mappings WHERE session_id = $1 AND phone_number = $2 ORDER BY write_seq DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&self.session)
            .bind(phone)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(lid_row).transpose()
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
        let q = self
            .write(fenced!(
                "INSERT INTO wa.lid_mappings (session_id, lid, phone_number, created_at, updated_at, learning_source)
                 SELECT $1, l, p, c, u, s FROM unnest($4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[])
                     WITH ORDINALITY AS x(l, p, c, u, s, ord)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ORDER BY ord
                 ON CONFLICT (session_id, lid) DO UPDATE SET phone_number = EXCLUDED.phone_number,
                     created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
                     learning_source = EXCLUDED.learning_source,
                     write_seq = nextval('wa.store_write_seq'), stored_at = now()"
            ))
            .bind(lids)
            .bind(pns)
            .bind(created)
            .bind(updated)
            .bind(sources);
        self.run(q).await.map(drop)
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        let sql = format!("SELECT {LID_COLS} FROM wa.lid_mappings WHERE session_id = $1 ORDER BY lid");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&self.session).fetch_all(&self.pool).await.map_err(db_err)?;
        rows.into_iter().map(lid_row).collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        let q = self
            .write(fenced!(
                "INSERT INTO wa.base_keys (session_id, address, message_id, base_key)
                 SELECT $1, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, address, message_id) DO UPDATE SET base_key = EXCLUDED.base_key, created_at = now()"
            ))
            .bind(address.to_string())
            .bind(message_id.to_string())
            .bind(base_key.to_vec());
        self.run(q).await.map(drop)
    }

    async fn has_same_base_key(&self, address: &str, message_id: &str, current_base_key: &[u8]) -> Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM wa.base_keys WHERE session_id = $1 AND address = $2 AND message_id = $3 AND base_key = $4)",
        )
        .bind(&self.session)
        .bind(address)
        .bind(message_id)
        .bind(current_base_key)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        let q = self
            .write(fenced!(
                "DELETE FROM wa.base_keys WHERE session_id = $1 AND address = $4 AND message_id = $5 AND EXISTS (SELECT 1 FROM fence)"
            ))
            .bind(address.to_string())
            .bind(message_id.to_string());
        self.run(q).await.map(drop)
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
        let q = self
            .write(fenced!(
                "INSERT INTO wa.device_lists (session_id, user_id, record)
                 SELECT $1, u, r FROM unnest($4::text[], $5::jsonb[]) AS x(u, r)
                 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, user_id) DO UPDATE SET record = EXCLUDED.record, updated_at = now()"
            ))
            .bind(users)
            .bind(docs);
        self.run(q).await.map(drop)
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        let v: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT record FROM wa.device_lists WHERE session_id = $1 AND user_id = $2")
                .bind(&self.session)
                .bind(user)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        v.map(|v| serde_json::from_value(v).map_err(ser_err)).transpose()
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        let q = self
            .write(fenced!("DELETE FROM wa.device_lists WHERE session_id = $1 AND user_id = $4 AND EXISTS (SELECT 1 FROM fence)"))
            .bind(user.to_string());
        self.run(q).await.map(drop)
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT blob FROM wa.group_metadata WHERE session_id = $1 AND group_jid = $2")
            .bind(&self.session)
            .bind(group_jid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        let q = self
            .write(fenced!(
                "INSERT INTO wa.group_metadata (session_id, group_jid, blob)
                 SELECT $1, $4, $5 WHERE EXISTS (SELECT 1 FROM fence)
                 ON CONFLICT (session_id, group_jid) DO UPDATE SET blob = EXCLUDED.blob, updated_at = now()"
            ))
            .bind(group_jid.to_string())
            .bind(blob.to_vec());
        self.run(q).await.map(drop)
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        let q = self
            .write(fenced!(
                "DELETE FROM wa.group_metadata WHERE session_id = $1 AND group_jid = $4 AND EXISTS (SELECT 1 FROM fence)"
            ))
            .bind(group_jid.to_string());
        self.run(q).await.map(drop)
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
