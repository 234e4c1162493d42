//! Writes an import inside the caller's transaction: the auth document, prekeys,
//! app-state sync keys and LID mappings, each as one statement.

use sqlx::PgConnection;
use whatsapp_rust::wacore::store::Device;

use super::baileys_keys::Converted;
use crate::authdoc;

pub async fn write(conn: &mut PgConnection, session: &str, device: &Device, c: &Converted) -> anyhow::Result<()> {
    sqlx::query!("INSERT INTO wa.auth_state (session_id, creds) VALUES ($1, $2)", session, authdoc::to_document(device))
        .execute(&mut *conn)
        .await?;
    let ids: Vec<i64> = c.prekeys.iter().map(|p| i64::from(p.0)).collect();
    let recs: Vec<&[u8]> = c.prekeys.iter().map(|p| p.1.as_slice()).collect();
    let up: Vec<bool> = c.prekeys.iter().map(|p| p.2).collect();
    sqlx::query!(
        "INSERT INTO wa.signal_prekeys (session_id, prekey_id, record, uploaded)
         SELECT $1, i, r, u FROM unnest($2::bigint[], $3::bytea[], $4::bool[]) AS x(i, r, u)",
        session,
        &ids[..],
        &recs[..] as &[&[u8]],
        &up[..]
    )
    .execute(&mut *conn)
    .await?;
    let kid: Vec<&[u8]> = c.sync_keys.iter().map(|k| k.0.as_slice()).collect();
    let data: Vec<&[u8]> = c.sync_keys.iter().map(|k| k.1.key_data.as_slice()).collect();
    let fps: Vec<&[u8]> = c.sync_keys.iter().map(|k| k.1.fingerprint.as_slice()).collect();
    let ts: Vec<i64> = c.sync_keys.iter().map(|k| k.1.timestamp).collect();
    // Ordered by key timestamp so the latest sync key is the newest one.
    sqlx::query!(
        "INSERT INTO wa.app_state_sync_keys (session_id, key_id, key_data, fingerprint, key_ts)
         SELECT $1, k, d, f, t FROM unnest($2::bytea[], $3::bytea[], $4::bytea[], $5::bigint[]) AS x(k, d, f, t)
         ORDER BY t
         ON CONFLICT (session_id, key_id) DO UPDATE SET key_data = EXCLUDED.key_data,
             fingerprint = EXCLUDED.fingerprint, key_ts = EXCLUDED.key_ts",
        session,
        &kid[..] as &[&[u8]],
        &data[..] as &[&[u8]],
        &fps[..] as &[&[u8]],
        &ts[..]
    )
    .execute(&mut *conn)
    .await?;
    let lids: Vec<&str> = c.lid_mappings.iter().map(|m| m.0.as_str()).collect();
    let pns: Vec<&str> = c.lid_mappings.iter().map(|m| m.1.as_str()).collect();
    let now = chrono::Utc::now().timestamp();
    sqlx::query!(
        "INSERT INTO wa.lid_mappings (session_id, lid, phone_number, created_at, updated_at, learning_source)
         SELECT $1, l, p, $4, $4, 'baileys_import' FROM unnest($2::text[], $3::text[]) AS x(l, p)
         ON CONFLICT (session_id, lid) DO UPDATE SET phone_number = EXCLUDED.phone_number",
        session,
        &lids[..] as &[&str],
        &pns[..] as &[&str],
        now
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
