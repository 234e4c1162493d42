//! Where Baileys state is read from: a useMultiFileAuthState folder, or a table of rows.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::baileys_keys::{Entry, unfix_file_id};

/// Key types Baileys writes as `<type>-<id>.json`, longest first so that
/// `sender-key-memory-x` is not read as a `sender-key` named `memory-x`.
const KINDS: &[&str] =
    &["app-state-sync-version", "app-state-sync-key", "sender-key-memory", "lid-mapping", "sender-key", "pre-key", "session"];

/// creds.json and every key file of a folder. Unknown files become `unknown` entries
/// (skipped with a reason), unreadable JSON is an error naming the file.
pub fn read_folder(folder: &Path) -> anyhow::Result<(Value, Vec<Entry>)> {
    let creds_path = folder.join("creds.json");
    let creds = read_json(&creds_path)?;
    let mut entries = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .with_context(|| format!("reading folder {}", folder.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        if name == "creds.json" {
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else {
            entries.push(Entry { kind: "unknown".into(), id: name.clone(), value: Value::Null, origin: name });
            continue;
        };
        let (kind, id) =
            match KINDS.iter().find_map(|k| stem.strip_prefix(k).and_then(|r| r.strip_prefix('-')).map(|id| (*k, id))) {
                Some((k, id)) => (k.to_string(), unfix_file_id(id)),
                None => ("unknown".to_string(), stem.to_string()),
            };
        let value = if kind == "unknown" { Value::Null } else { read_json(&folder.join(&name))? };
        entries.push(Entry { kind, id, value, origin: name });
    }
    Ok((creds, entries))
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// A table of Baileys key-store rows, one row per (session, type, id), as most
/// Postgres/MySQL auth-state adapters keep them. The creds are the row whose type is
/// `creds` (its id is ignored).
#[derive(Debug, Clone)]
pub struct SqlSource {
    /// Table name, optionally schema-qualified (`public.baileys_keys`).
    pub table: String,
    /// Column holding the session (company) id; its value is `source_session`.
    pub session_column: String,
    pub type_column: String,
    pub id_column: String,
    /// json, jsonb or text holding JSON.
    pub value_column: String,
    /// The session id used in the source table (defaults to the target session).
    pub source_session: Option<String>,
}

impl SqlSource {
    pub fn table(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            session_column: "session_id".into(),
            type_column: "type".into(),
            id_column: "key_id".into(),
            value_column: "value".into(),
            source_session: None,
        }
    }
}

/// `"name"` or `"schema"."name"`, refusing anything that is not a plain identifier, so
/// the names given on the command line cannot inject SQL.
fn quote_ident(name: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    anyhow::ensure!(parts.len() <= 2, "{name:?}: expected table or schema.table");
    let mut out = Vec::new();
    for p in parts {
        let ok = !p.is_empty()
            && p.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        anyhow::ensure!(ok, "{name:?} is not a plain SQL identifier (letters, digits, _)");
        out.push(format!("\"{p}\""));
    }
    Ok(out.join("."))
}

pub async fn read_table(conn: &mut PgConnection, src: &SqlSource, session: &str) -> anyhow::Result<(Value, Vec<Entry>)> {
    let sql = format!(
        "SELECT {ty}::text, {id}::text, {val}::jsonb FROM {table} WHERE {sess}::text = $1 ORDER BY 1, 2",
        ty = quote_ident(&src.type_column)?,
        id = quote_ident(&src.id_column)?,
        val = quote_ident(&src.value_column)?,
        table = quote_ident(&src.table)?,
        sess = quote_ident(&src.session_column)?,
    );
    let source_session = src.source_session.as_deref().unwrap_or(session);
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(source_session)
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("reading Baileys rows from {}", src.table))?;
    let mut creds = None;
    let mut entries = Vec::new();
    for r in rows {
        let kind: String = r.try_get(0)?;
        let id: Option<String> = r.try_get(1)?;
        let value: Option<Value> = r.try_get(2)?;
        let id = id.unwrap_or_default();
        let origin = format!("{}[{kind} {id}]", src.table);
        if kind == "creds" {
            creds = value;
        } else {
            entries.push(Entry { kind, id, value: value.unwrap_or(Value::Null), origin });
        }
    }
    let creds = creds.with_context(|| format!("{} has no creds row for session {source_session}", src.table))?;
    Ok((creds, entries))
}
