//! Key material stays out of Postgres's own log. A server that logs statements writes
//! their bound parameters too, and the key store binds keys as parameters; pgwa's
//! connections turn that off (`log_parameter_max_length = 0`) wherever their user may,
//! and where it may not, pgwa tells which (pgwa_pg::log_params).

use std::str::FromStr;

use pgwa_pg::log_params::{ParamLogging, check};
use pgwa_testkit::TestDb;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection};

async fn shown(db: impl sqlx::PgExecutor<'_>) -> String {
    sqlx::query_scalar("SHOW log_parameter_max_length").fetch_one(db).await.unwrap()
}

#[tokio::test]
async fn pools_do_not_let_postgres_log_parameters() {
    let db = TestDb::new().await.unwrap();
    // The tests' user is a superuser: it may set the parameter, so every pool sets it,
    // the queue's pool (built from the main pool's options) too.
    let pool = pgwa_pg::connect(&db.url, 2).await.unwrap();
    assert_eq!(shown(&pool).await, "0");
    assert_eq!(shown(&pgwa_pg::queue_pool(&pool, false, 1)).await, "0");
    // A plain connection of the same user shows the server's default: the pool did it.
    let mut plain = PgConnection::connect(&db.url).await.unwrap();
    assert_ne!(shown(&mut plain).await, "0", "the server's default already hides parameters: this test would prove nothing");
    assert!(matches!(check(&mut plain).await.unwrap(), ParamLogging::TurnOff { .. }));
    db.drop_now().await.unwrap();
}

/// A user without the privilege: warned about only while the server logs statements,
/// and handled as soon as a superuser grants it or sets the parameter for the role.
#[tokio::test]
async fn a_user_that_may_not_set_it_is_told_and_then_handled() {
    let db = TestDb::new().await.unwrap();
    let role = format!("pgwa_t_logparams_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let admin = |sql: String| {
        let pool = db.pool.clone();
        async move { sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await.unwrap() }
    };
    admin(format!("CREATE ROLE {role} LOGIN")).await;
    // Whatever the server's own settings, the role starts logging no statements.
    let quiet = [
        "log_min_duration_statement = -1",
        "log_statement = 'none'",
        "log_min_duration_sample = -1",
        "log_transaction_sample_rate = 0",
    ];
    for setting in quiet {
        admin(format!("ALTER ROLE {role} SET {setting}")).await;
    }
    let opts = PgConnectOptions::from_str(&db.url).unwrap().username(&role);
    let as_role = async || check(&mut opts.connect().await.unwrap()).await.unwrap();

    assert_eq!(as_role().await, ParamLogging::Exposed { logging: false });
    admin(format!("ALTER ROLE {role} SET log_min_duration_statement = 250")).await;
    assert_eq!(as_role().await, ParamLogging::Exposed { logging: true });
    admin(format!("ALTER ROLE {role} SET log_min_duration_statement = -1")).await;
    admin(format!("ALTER ROLE {role} SET log_statement = 'mod'")).await;
    assert_eq!(as_role().await, ParamLogging::Exposed { logging: true });

    // What the warning says to run, either way.
    admin(format!("GRANT SET ON PARAMETER log_parameter_max_length TO {role}")).await;
    assert_eq!(as_role().await, ParamLogging::TurnOff { logging: true });
    let url = opts.to_url_lossy().to_string();
    let pool = pgwa_pg::connect(&url, 1).await.unwrap();
    assert_eq!(shown(&pool).await, "0");
    pool.close().await;
    admin(format!("REVOKE SET ON PARAMETER log_parameter_max_length FROM {role}")).await;
    admin(format!("ALTER ROLE {role} SET log_parameter_max_length = 0")).await;
    assert_eq!(as_role().await, ParamLogging::Off);

    db.drop_now().await.unwrap();
    let mut server = PgConnection::connect(&format!("{}/postgres", pgwa_testkit::server_url())).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP ROLE {role}"))).execute(&mut server).await.unwrap();
}
