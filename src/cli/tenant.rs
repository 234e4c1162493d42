//! `pgwa tenant ...`: tenants and their roles (sql/07_tenants.sql, docs/security.md).

use clap::Subcommand;
use pgwa_pg::PgPool;

use super::log;
use super::table::{self, Col};
use pgwa_pg::admin;

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Add a tenant and its Postgres role; grant the role to the tenant app's login.
    Add {
        /// 1 to 40 of a-z 0-9 _, starting with a letter.
        name: String,
    },
    /// List tenants with their roles and session counts.
    List {
        /// One JSON array of objects instead of the table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: TenantCmd, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        TenantCmd::Add { name } => {
            let role = admin::add_tenant(pool, &name).await?;
            log::say(format!("added tenant {name}; its role is {role}"));
            log::say(format!("let an app in: CREATE ROLE {name}_app LOGIN PASSWORD '...' IN ROLE {role};"));
            log::say(format!("(or GRANT {role} TO an existing login); it will see only {name}'s sessions"));
            Ok(())
        }
        TenantCmd::List { json } => {
            let rows = admin::tenants(pool).await?;
            let cols = [Col::Left("TENANT"), Col::Left("ROLE"), Col::Right("SESSIONS")];
            table::print(&rows, json, &cols, "tenant", |t| vec![t.name.clone(), t.role.clone(), t.sessions.to_string()])
        }
    }
}
