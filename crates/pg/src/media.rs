//! Inbound files kept in Postgres or an object store (wa.media), written by the
//! session's holder.

use sqlx::PgPool;

use pgwa_core::fence::Fence;

/// What downloading an inbox row's file needs, and the size limit it is held to.
pub struct InboxFile {
    pub kind: String,
    pub media: serde_json::Value,
    pub max_bytes: i64,
    /// Already in wa.media (a job run twice).
    pub stored: bool,
    /// wa.policy.media_download now: `s3` sends the file to the object store, anything
    /// else (`postgres`, or `off` for a download asked for by wa.download_media) keeps
    /// it in wa.media.
    pub target: String,
}

/// Where a stored file is: its bytes, or its place in the object store.
pub enum Kept<'a> {
    Bytes(&'a [u8]),
    Object { location: &'a str, size: i64 },
}

pub async fn inbox_file(pool: &PgPool, session: &str, inbox_id: i64) -> sqlx::Result<Option<InboxFile>> {
    let r = sqlx::query!(
        r#"SELECT i.kind, i.media AS "media!", p.media_max_bytes AS "max_bytes!", p.media_download AS "target!",
                  EXISTS (SELECT 1 FROM wa.media m WHERE m.inbox_id = i.id) AS "stored!"
             FROM wa.inbox i CROSS JOIN wa.policy p WHERE i.id = $2 AND i.session_id = $1 AND i.media IS NOT NULL"#,
        session,
        inbox_id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(r.map(|r| InboxFile { kind: r.kind, media: r.media, max_bytes: r.max_bytes, stored: r.stored, target: r.target }))
}

/// Records the file (its bytes, or where the object store has it) and marks its row
/// `stored`. False when the fence refused.
pub async fn store(
    pool: &PgPool,
    f: &Fence,
    inbox_id: i64,
    mimetype: Option<&str>,
    kept: Kept<'_>,
    sha256: &[u8],
) -> sqlx::Result<bool> {
    let (data, location, size) = match kept {
        Kept::Bytes(b) => (Some(b), None, b.len() as i64),
        Kept::Object { location, size } => (None, Some(location), size),
    };
    let held = sqlx::query_scalar!(
        r#"WITH held AS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3)),
           stored AS (
             INSERT INTO wa.media (inbox_id, session_id, mimetype, size, sha256, data, storage, location)
             SELECT $4, $1, $5, $6, $7, $8, CASE WHEN $9::text IS NULL THEN 'postgres' ELSE 's3' END, $9
              WHERE EXISTS (SELECT 1 FROM held)
             ON CONFLICT (inbox_id) DO NOTHING
             RETURNING inbox_id),
           marked AS (
             UPDATE wa.inbox SET media_status = 'stored'
              WHERE id = $4 AND session_id = $1 AND EXISTS (SELECT 1 FROM held)
             RETURNING id)
           SELECT EXISTS (SELECT 1 FROM held) AND EXISTS (SELECT 1 FROM marked) AS "held!""#,
        &f.session,
        f.worker,
        f.epoch,
        inbox_id,
        mimetype,
        size,
        sha256,
        data,
        location,
    )
    .fetch_one(pool)
    .await?;
    Ok(held)
}

/// Marks a row's file `too_large` or `failed`. False when the fence refused.
pub async fn mark(pool: &PgPool, f: &Fence, inbox_id: i64, status: &str) -> sqlx::Result<bool> {
    let n = sqlx::query!(
        "UPDATE wa.inbox SET media_status = $5
          WHERE id = $4 AND session_id = $1
            AND EXISTS (SELECT 1 FROM wa.sessions s WHERE s.id = $1 AND wa._holds(s, $2, $3))",
        &f.session,
        f.worker,
        f.epoch,
        inbox_id,
        status,
    )
    .execute(pool)
    .await?;
    Ok(n.rows_affected() == 1)
}
