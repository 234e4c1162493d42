//! Outbound pacing: sends wait for the session's and the recipient's token buckets.

mod common;

use std::time::Duration;

use common::{InProcess, eventually, fast_config};
use pgwa_testkit::TestDb;

async fn spread_of_six_sends(per_session: u32, per_recipient: u32, same_chat: bool) -> Duration {
    let db = TestDb::new().await.unwrap();
    let mut cfg = fast_config(&db);
    cfg.pacing = pgwa_core::config::PacingConfig {
        enabled: true,
        session_per_minute: per_session,
        session_burst: 1,
        recipient_per_minute: per_recipient,
        recipient_burst: 1,
        ..Default::default()
    };
    sqlx::query("SELECT wa.add_session('s1')").execute(&db.pool).await.unwrap();
    let to = if same_chat { "'+15550000001'" } else { "'+1555000000' || i" };
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT wa.send_text('s1', {to}, 'm' || i) FROM generate_series(1, 6) i")))
        .execute(&db.pool)
        .await
        .unwrap();
    let w = InProcess::start(cfg).await;
    let spread: f64 = eventually(Duration::from_secs(20), "six sends", || async {
        sqlx::query_scalar::<_, Option<f64>>(
            "SELECT extract(epoch FROM max(sent_at) - min(sent_at))::float8 FROM wa.jobs HAVING count(*) FILTER (WHERE state = 'completed') = 6",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap()
        .flatten()
    })
    .await;
    w.stop().await;
    Duration::from_secs_f64(spread)
}

#[tokio::test]
async fn a_session_sends_no_faster_than_its_rate() {
    // 600 per minute = one every 100 ms after a burst of 1: six sends span >= 500 ms.
    let spread = spread_of_six_sends(600, 60_000, false).await;
    assert!(spread >= Duration::from_millis(450), "six sends to six chats took {spread:?}");
}

#[tokio::test]
async fn one_recipient_is_paced_on_its_own_bucket() {
    let spread = spread_of_six_sends(60_000, 600, true).await;
    assert!(spread >= Duration::from_millis(450), "six sends to one chat took {spread:?}");
    let unpaced = spread_of_six_sends(60_000, 60_000, false).await;
    assert!(unpaced < Duration::from_millis(300), "without pressure on the buckets sends go at once: {unpaced:?}");
}

/// How long a send types before it goes out, and what it shows.
#[test]
fn typing_grows_with_the_text_up_to_its_cap() {
    use pgwa_core::wa::ChatState;
    use pgwa_worker::pacing::Pacing;
    use serde_json::json;
    let cfg =
        |per_char| pgwa_core::config::PacingConfig { typing_ms_per_char: per_char, typing_max_ms: 3000, ..Default::default() };
    let off = Pacing::new(&cfg(0));
    assert_eq!(off.typing(&json!({"type": "text", "text": "hello"})), None, "off by default");
    let p = Pacing::new(&cfg(50));
    assert_eq!(p.typing(&json!({"text": "hello"})), Some((ChatState::Composing, Duration::from_millis(250))));
    assert_eq!(
        p.typing(&json!({"type": "text", "text": "x".repeat(1000)})),
        Some((ChatState::Composing, Duration::from_secs(3)))
    );
    assert_eq!(p.typing(&json!({"type": "image", "caption": "menu"})), Some((ChatState::Composing, Duration::from_millis(200))));
    assert_eq!(p.typing(&json!({"type": "voice", "seconds": 2})), Some((ChatState::Recording, Duration::from_secs(2))));
    assert_eq!(p.typing(&json!({"type": "image"})), None, "no caption, nothing to type");
    for quiet in ["reaction", "location", "edit", "revoke", "sticker"] {
        assert_eq!(p.typing(&json!({"type": quiet, "text": "x"})), None, "{quiet}");
    }
}
