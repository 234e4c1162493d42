//! Keeping key material out of Postgres's own log. A server that logs statements
//! (`log_min_duration_statement`, `log_statement`, their sampled variants) writes each
//! logged statement's bound parameters beside it, and the key store binds prekeys,
//! Signal sessions and the auth document as parameters: one slow upsert would copy a
//! session's private keys into the server log. pgwa's connections ask Postgres not to
//! (`log_parameter_max_length = 0`) wherever its user may set that; where it may not and
//! the server logs statements, the operator is told what to run.

use sqlx::PgConnection;
use sqlx::postgres::PgConnectOptions;

/// What the server does with logged statements' parameters, for this user. `logging`:
/// whether the server logs statements now (and so their parameters with them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLogging {
    /// `log_parameter_max_length` is 0 already: nothing is written.
    Off,
    /// It is not 0 and this user may set it: each connection is to start with it at 0.
    TurnOff { logging: bool },
    /// It is not 0 and this user may not set it.
    Exposed { logging: bool },
}

/// Reads the settings through `conn`, as the user the pool will connect as.
pub async fn check(conn: &mut PgConnection) -> sqlx::Result<ParamLogging> {
    // pg_settings holds values in base units ("25" for 25ms), which current_setting
    // would print with their unit.
    let r = sqlx::query!(
        r#"SELECT coalesce(max(CASE WHEN name = 'log_parameter_max_length' THEN setting::int END), -1) AS "max_len!",
                  has_parameter_privilege('log_parameter_max_length', 'SET') AS "may_set!",
                  coalesce(bool_or(CASE name
                      WHEN 'log_min_duration_statement' THEN setting::int >= 0
                      WHEN 'log_statement' THEN setting IN ('mod', 'all')
                      WHEN 'log_min_duration_sample' THEN setting::int >= 0
                           AND current_setting('log_statement_sample_rate')::float8 > 0
                      WHEN 'log_transaction_sample_rate' THEN setting::float8 > 0
                      ELSE false END), false) AS "logging!"
             FROM pg_settings
            WHERE name IN ('log_parameter_max_length', 'log_min_duration_statement', 'log_statement',
                           'log_min_duration_sample', 'log_transaction_sample_rate')"#
    )
    .fetch_one(conn)
    .await?;
    Ok(match (r.max_len, r.may_set) {
        (0, _) => ParamLogging::Off,
        (_, true) => ParamLogging::TurnOff { logging: r.logging },
        (_, false) => ParamLogging::Exposed { logging: r.logging },
    })
}

/// `opts` whose connections start with `log_parameter_max_length = 0` (a startup option:
/// no round trip, and every pool made from these options has it).
pub fn quiet(opts: PgConnectOptions) -> PgConnectOptions {
    opts.options([("log_parameter_max_length", "0")])
}

/// Tells the operator that Postgres may log `user`'s key material, why pgwa could not
/// stop it, and what to run.
pub fn warn_exposed(user: &str, why: &str) {
    tracing::warn!(
        "Postgres logs statements with their parameters, and pgwa's key store passes key material as parameters; \
         {why}: as a superuser, run ALTER ROLE \"{user}\" SET log_parameter_max_length = 0 (or GRANT SET ON \
         PARAMETER log_parameter_max_length TO \"{user}\") and restart pgwa"
    );
}
