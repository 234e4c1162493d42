//! Importers of auth state from other WhatsApp libraries, so a number that is already
//! linked moves to pgwa without scanning a QR code again.
//!
//! Baileys: a useMultiFileAuthState folder ([`import_baileys_folder`]) or a table of
//! key-store rows ([`import_baileys_sql`], columns described on [`SqlSource`]). An import
//! runs in one transaction: everything is converted first, then written; any error (a
//! bad document names the file and field) rolls everything back. `dry_run` does the
//! same work and rolls back at the end.

mod baileys_creds;
mod baileys_keys;
mod source;
mod write;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sqlx::PgPool;

pub use baileys_keys::Entry;
pub use source::SqlSource;

/// What an import did (or would do, on a dry run).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportSummary {
    pub session: String,
    pub dry_run: bool,
    /// The session row was created by this import (stopped; start it with wa.start_session).
    pub session_created: bool,
    /// Counts per kind: creds, pre-key, app-state-sync-key, lid-mapping.
    pub imported: BTreeMap<String, u64>,
    /// (file or row, why it was not imported)
    pub skipped: Vec<(String, String)>,
    /// Phone number and LID of the linked device, when creds.json had them.
    pub pn: Option<String>,
    pub lid: Option<String>,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run { "would import (dry run, nothing written)" } else { "imported" };
        writeln!(f, "session {}: {verb}", self.session)?;
        if let Some(pn) = &self.pn {
            writeln!(f, "  linked as {pn}{}", self.lid.as_deref().map(|l| format!(" / {l}")).unwrap_or_default())?;
        }
        if self.session_created {
            writeln!(f, "  session row created (stopped); start it with SELECT wa.start_session('{}')", self.session)?;
        }
        for (kind, n) in &self.imported {
            writeln!(f, "  {kind}: {n}")?;
        }
        if !self.skipped.is_empty() {
            writeln!(f, "  skipped {}:", self.skipped.len())?;
            for (what, why) in &self.skipped {
                writeln!(f, "    {what}: {why}")?;
            }
        }
        Ok(())
    }
}

/// Imports a Baileys useMultiFileAuthState folder (creds.json, pre-key-*.json,
/// app-state-sync-key-*.json, lid-mapping-*.json; session-*.json and sender keys are
/// skipped with the reason).
pub async fn import_baileys_folder(pool: &PgPool, session: &str, folder: &Path, dry_run: bool) -> anyhow::Result<ImportSummary> {
    let (creds, entries) = source::read_folder(folder)?;
    import(pool, session, creds, entries, dry_run).await
}

/// Imports Baileys state kept as rows of a table (see [`SqlSource`]).
pub async fn import_baileys_sql(pool: &PgPool, session: &str, src: &SqlSource, dry_run: bool) -> anyhow::Result<ImportSummary> {
    let mut conn = pool.acquire().await?;
    let (creds, entries) = source::read_table(&mut conn, src, session).await?;
    drop(conn);
    import(pool, session, creds, entries, dry_run).await
}

async fn import(pool: &PgPool, session: &str, creds: Value, entries: Vec<Entry>, dry_run: bool) -> anyhow::Result<ImportSummary> {
    // Convert everything before touching the database.
    let device = baileys_creds::device_from_creds(session, &creds).map_err(|e| anyhow::Error::new(e).context("creds"))?;
    let first_unuploaded = device.first_unupload_pre_key_id.max(1);
    let mut conv = baileys_keys::Converted::default();
    for e in &entries {
        conv.add(session, e, first_unuploaded)?;
    }
    conv.dedup();
    let mut skipped = conv.skipped.clone();
    if device.pn.is_none() {
        skipped.push(("creds.json me.id".into(), "missing: the number was never linked, it will need a QR scan".into()));
    }
    for field in baileys_creds::IGNORED_FIELDS {
        if creds.get(field).is_some_and(|v| !v.is_null()) {
            skipped.push((format!("creds.json {field}"), "no counterpart in whatsapp-rust".into()));
        }
    }

    let mut tx = pool.begin().await?;
    // Keys written under a running session would be overwritten by its client or mix
    // with what it is linking: like every offline writer, the import waits for no holder.
    let held =
        sqlx::query_scalar!(r#"SELECT NOT wa._unheld(s) AS "held!" FROM wa.sessions s WHERE s.id = $1 FOR UPDATE"#, session)
            .fetch_optional(&mut *tx)
            .await?;
    anyhow::ensure!(
        held != Some(true),
        "session {session} is held by a worker; nothing imported (stop it with `pgwa session stop {session}` or \
         wa.stop_session, wait until wa.session_health shows held = false, then import again)"
    );
    let exists = held.is_some();
    if !exists {
        sqlx::query_scalar!(r#"SELECT (wa.add_session($1, start => false)).id AS "id!""#, session).fetch_one(&mut *tx).await?;
    }
    let has_creds: bool =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM wa.auth_state WHERE session_id = $1) AS "exists!""#, session)
            .fetch_one(&mut *tx)
            .await?;
    anyhow::ensure!(
        !has_creds,
        "session {session} already has credentials; nothing imported (wipe them first with a key_cleanup job of scope all)"
    );
    write::write(&mut tx, session, &device, &conv).await?;
    // Who the session is, as a QR or code link records it (mark_paired): an imported
    // session never pairs, and a login only refreshes jid, so phone and lid stayed NULL.
    sqlx::query!(
        "UPDATE wa.sessions SET jid = coalesce($2, jid), lid = coalesce($3, lid), phone = coalesce($4, phone),
                push_name = coalesce($5, push_name)
          WHERE id = $1",
        session,
        device.pn.as_ref().map(|j| j.to_string()),
        device.lid.as_ref().map(|j| j.to_string()),
        device.pn.as_ref().map(|j| j.user.to_string()).filter(|u| !u.is_empty()),
        Some(device.push_name.clone()).filter(|n| !n.is_empty())
    )
    .execute(&mut *tx)
    .await?;
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    let imported = BTreeMap::from([
        ("creds".to_string(), 1),
        ("pre-key".to_string(), conv.prekeys.len() as u64),
        ("app-state-sync-key".to_string(), conv.sync_keys.len() as u64),
        ("lid-mapping".to_string(), conv.lid_mappings.len() as u64),
    ]);
    Ok(ImportSummary {
        session: session.to_string(),
        dry_run,
        session_created: !exists,
        imported,
        skipped,
        pn: device.pn.as_ref().map(|j| j.to_string()),
        lid: device.lid.as_ref().map(|j| j.to_string()),
    })
}
