//! Data for the store benchmark (`pgwa_bench::store`): many sessions with credentials and
//! keys, written in a few set-based statements. Its scratch database comes from
//! [`crate::bench::recreate_database_beside`], as the other benchmarks' do.

use sqlx::PgPool;
use whatsapp_rust::wacore::store::Device;

/// Sessions `bench-0001`.. with an auth document each, `prekeys` one-time prekeys and
/// `signal_sessions` 1 KB session records each, so lookups run against a realistic table
/// size. Returns the session ids.
pub async fn populate(pool: &PgPool, sessions: usize, prekeys: i32, signal_sessions: i32) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = (1..=sessions).map(|i| format!("bench-{i:04}")).collect();
    sqlx::query_scalar!(
        r#"SELECT count((wa.add_session(id, start => false)).id) AS "n!" FROM unnest($1::text[]) AS id"#,
        &ids[..]
    )
    .fetch_one(pool)
    .await?;
    let docs: Vec<serde_json::Value> = ids.iter().map(|_| crate::authdoc::to_document(&Device::new())).collect();
    sqlx::query!(
        "INSERT INTO wa.auth_state (session_id, creds) SELECT * FROM unnest($1::text[], $2::jsonb[])",
        &ids[..],
        &docs[..]
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "INSERT INTO wa.signal_prekeys (session_id, prekey_id, record, uploaded)
         SELECT s, k, decode(md5(s || k) || md5(k || s), 'hex'), true FROM unnest($1::text[]) s, generate_series(1, $2) k",
        &ids[..],
        prekeys
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "INSERT INTO wa.signal_sessions (session_id, address, record)
         SELECT s, '1555' || lpad(k::text, 7, '0') || '@c.us', decode(repeat(md5(s || k), 64), 'hex')
         FROM unnest($1::text[]) s, generate_series(1, $2) k",
        &ids[..],
        signal_sessions
    )
    .execute(pool)
    .await?;
    sqlx::query!("ANALYZE").execute(pool).await?;
    Ok(ids)
}
