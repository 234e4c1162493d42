//! `pgwa session import-baileys`: move a number linked with Baileys to pgwa without
//! scanning a QR code again.

use std::path::PathBuf;

use clap::Args;
use pgwa_pg::PgPool;

use pgwa_pg::import::{SqlSource, import_baileys_folder, import_baileys_sql};

/// Import a Baileys auth state: a useMultiFileAuthState folder, or rows of a table.
///
/// Example: pgwa session import-baileys salon-aurora ./auth_info_baileys --dry-run
#[derive(Args, Debug)]
pub struct ImportBaileysArgs {
    /// The pgwa session to import into (created stopped if missing).
    pub session: String,
    /// A useMultiFileAuthState folder (creds.json, pre-key-*.json, ...).
    #[arg(required_unless_present = "from_sql", conflicts_with = "from_sql")]
    pub folder: Option<PathBuf>,
    /// Read from this table (or schema.table) of key-store rows instead of a folder.
    #[arg(long, value_name = "TABLE")]
    pub from_sql: Option<String>,
    /// Column of the source table holding the session (company) id.
    #[arg(long, default_value = "session_id", requires = "from_sql")]
    pub session_column: String,
    /// Column holding the key type (creds, pre-key, app-state-sync-key, lid-mapping, ...).
    #[arg(long, default_value = "type", requires = "from_sql")]
    pub type_column: String,
    /// Column holding the key id.
    #[arg(long, default_value = "key_id", requires = "from_sql")]
    pub id_column: String,
    /// Column holding the value (json, jsonb or text).
    #[arg(long, default_value = "value", requires = "from_sql")]
    pub value_column: String,
    /// The session id as written in the source table, when it differs.
    #[arg(long, requires = "from_sql")]
    pub source_session: Option<String>,
    /// Convert and check everything, print the summary, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(args: ImportBaileysArgs, pool: &PgPool) -> anyhow::Result<()> {
    let summary = match (&args.folder, &args.from_sql) {
        (Some(folder), None) => import_baileys_folder(pool, &args.session, folder, args.dry_run).await?,
        (None, Some(table)) => {
            let src = SqlSource {
                table: table.clone(),
                session_column: args.session_column.clone(),
                type_column: args.type_column.clone(),
                id_column: args.id_column.clone(),
                value_column: args.value_column.clone(),
                source_session: args.source_session.clone(),
            };
            import_baileys_sql(pool, &args.session, &src, args.dry_run).await?
        }
        _ => anyhow::bail!("give either a folder or --from-sql TABLE"),
    };
    super::log::out(&summary.to_string())
}
