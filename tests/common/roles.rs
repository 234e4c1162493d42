//! Database users for the security tests: an app login (member of `pgwa_app`) and a login
//! with no grants at all, each with its own pool. Roles are cluster-wide, so each gets a
//! name unique to its test database and is dropped by `drop`.

use pgwa_testkit::TestDb;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

/// `<tag>_<the test database's last 8 characters>`: a name for something cluster-wide (a
/// role, a tenant) that no other test database's run can hold.
pub fn cluster_name(db: &TestDb, tag: &str) -> String {
    format!("{tag}_{}", &db.name[db.name.len() - 8..])
}

pub struct Login {
    pub name: String,
    pub pool: PgPool,
}

impl Login {
    /// A login role created `IN ROLE member_of` (none: no grants at all).
    pub async fn new(db: &TestDb, tag: &str, member_of: Option<&str>) -> Login {
        let name = cluster_name(db, tag);
        let grant = member_of.map(|r| format!(" IN ROLE {r}")).unwrap_or_default();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE ROLE {name} LOGIN{grant}"))).execute(&db.pool).await.unwrap();
        let url = db.url.replacen("postgres@", &format!("{name}@"), 1);
        let pool = PgPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
        Login { name, pool }
    }

    pub async fn app(db: &TestDb) -> Login {
        Login::new(db, "app", Some("pgwa_app")).await
    }

    pub async fn nobody(db: &TestDb) -> Login {
        Login::new(db, "nobody", None).await
    }

    pub async fn drop(self, db: &TestDb) {
        self.pool.close().await;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name))).execute(&db.pool).await.unwrap();
    }
}

/// Removes tenant `name` (its sessions and its row) and drops its role, `pgwa_t_<name>`:
/// the role is cluster-wide and outlives the test database, where it would be left for
/// good and refuse (WA010) a later test's tenant of that name.
pub async fn drop_tenant(db: &TestDb, name: &str) {
    sqlx::query("DELETE FROM wa.sessions WHERE tenant = $1").bind(name).execute(&db.pool).await.unwrap();
    sqlx::query("DELETE FROM wa.tenants WHERE name = $1").bind(name).execute(&db.pool).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP ROLE pgwa_t_{name}"))).execute(&db.pool).await.unwrap();
}

/// Tenants `acme_<suffix>` and `beta_<suffix>` (names of this database's own: tenant
/// roles are cluster-wide), with one stopped session each, `acme-1` and `beta-1`.
/// Returns the two names, for `Login::new(.., pgwa_t_<name>)` and `drop_tenant`.
pub async fn two_tenants(db: &TestDb) -> [String; 2] {
    let names = [cluster_name(db, "acme"), cluster_name(db, "beta")];
    sqlx::query("SELECT wa.add_tenant($1), wa.add_tenant($2)").bind(&names[0]).bind(&names[1]).execute(&db.pool).await.unwrap();
    sqlx::query("INSERT INTO wa.sessions (id, tenant, desired) VALUES ('acme-1', $1, 'stopped'), ('beta-1', $2, 'stopped')")
        .bind(&names[0])
        .bind(&names[1])
        .execute(&db.pool)
        .await
        .unwrap();
    names
}

/// The SQLSTATE of a statement that must fail.
pub async fn refused(pool: &PgPool, sql: &str) -> String {
    match sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(pool).await {
        Ok(_) => panic!("accepted, must be refused: {sql}"),
        Err(e) => super::sqlstate(&e),
    }
}

/// A snapshot of every row an attack could change, to compare before and after.
pub async fn snapshot(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(E'\\n',
            (SELECT string_agg(to_jsonb(j)::text, E'\\n' ORDER BY id) FROM wa.jobs j),
            (SELECT string_agg((to_jsonb(s) - 'updated_at' - 'lease_expires_at')::text, E'\\n' ORDER BY id) FROM wa.sessions s),
            (SELECT string_agg(to_jsonb(i)::text, E'\\n' ORDER BY id) FROM wa.inbox i))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}
