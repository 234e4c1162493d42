use pgwa_testkit::TestDb;

#[tokio::test]
async fn migrates_and_clones() {
    let db = TestDb::new().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM wa.policy").fetch_one(&db.pool).await.unwrap();
    assert_eq!(n, 1);
}
