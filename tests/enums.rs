//! The Rust enums of pgwa-core and the Postgres enums of the schema list the same labels
//! in the same order: a label added on one side only fails here, not in production.

use pgwa_core::config::Backend;
use pgwa_core::job::{Delivery, JobKind, JobState};
use pgwa_core::session::{Desired, SessionStatus};
use pgwa_testkit::TestDb;

async fn labels(db: &TestDb, pg_type: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT enum_range(NULL::{pg_type})::text[]")))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn ours<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<String> {
    all.iter().map(|v| name(*v).to_owned()).collect()
}

#[tokio::test]
async fn rust_and_postgres_enums_match() {
    let db = TestDb::new().await.unwrap();
    let pairs = [
        (SessionStatus::PG_TYPE, ours(SessionStatus::ALL, SessionStatus::as_str)),
        (Desired::PG_TYPE, ours(Desired::ALL, Desired::as_str)),
        (JobKind::PG_TYPE, ours(JobKind::ALL, JobKind::as_str)),
        (JobState::PG_TYPE, ours(JobState::ALL, JobState::as_str)),
        (Delivery::PG_TYPE, ours(Delivery::ALL, Delivery::as_str)),
        (Backend::PG_TYPE, ours(Backend::ALL, Backend::as_str)),
    ];
    for (pg_type, rust) in pairs {
        assert_eq!(labels(&db, pg_type).await, rust, "{pg_type}: the Rust enum and the Postgres enum differ");
    }
}
