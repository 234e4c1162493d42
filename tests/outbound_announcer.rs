//! The worker's `wa_outbound` announcer (pgwa_worker::announcer): statuses recorded close
//! together go out in few NOTIFYs, none lost and in order, and a lone one is not held back.

use std::time::Duration;

use pgwa_pg::jobs::Recorded;
use pgwa_testkit::TestDb;
use pgwa_worker::announcer::{Announcer, GAP};
use sqlx::postgres::PgListener;

fn sent(id: i64) -> Recorded {
    Recorded {
        id,
        session_id: Some("s1".into()),
        message_id: Some(format!("M{id}")),
        delivery: Some("delivered".into()),
        dead: false,
    }
}

/// The job ids of each NOTIFY received until `n` jobs were announced.
async fn received(listener: &mut PgListener, n: usize) -> Vec<Vec<i64>> {
    let mut payloads = Vec::new();
    while payloads.iter().map(Vec::len).sum::<usize>() < n {
        let note =
            tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("an announcement within 5 s").unwrap();
        let v: serde_json::Value = serde_json::from_str(note.payload()).unwrap();
        assert_eq!((v["session"].as_str(), v["status"].as_str()), (Some("s1"), Some("delivered")), "{v}");
        payloads.push(v["jobs"].as_array().unwrap().iter().map(|j| j.as_i64().unwrap()).collect());
    }
    payloads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_recorded_close_together_are_announced_together_in_order() {
    let db = TestDb::new().await.unwrap();
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("wa_outbound").await.unwrap();
    let announcer = Announcer::spawn(db.pool.clone(), GAP);

    // A lone status after a quiet moment goes at once, alone.
    let t = std::time::Instant::now();
    announcer.announce(vec![sent(1)]);
    assert_eq!(received(&mut listener, 1).await, vec![vec![1]]);
    assert!(t.elapsed() < Duration::from_secs(1), "a lone status was held back {:?}", t.elapsed());

    // Forty receipts a millisecond apart (a worker under load): each used to be a NOTIFY
    // of its own, now they share one per GAP.
    let t = std::time::Instant::now();
    for id in 2..42 {
        announcer.announce(vec![sent(id)]);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let payloads = received(&mut listener, 40).await;
    let span = t.elapsed();
    let ids: Vec<i64> = payloads.concat();
    assert_eq!(ids, (2..42).collect::<Vec<_>>(), "every status once, in the order recorded");
    // At most one per GAP, and the first: over 40 ms or more of sends, a handful.
    let most = (span.as_secs_f64() / GAP.as_secs_f64()) as usize + 2;
    assert!(payloads.len() <= most, "{} NOTIFYs for 40 statuses over {span:?}: {payloads:?}", payloads.len());
}
