//! What operators see of a chat connection's outbound queue: its depth and its drops, in
//! `/actors` and `/metrics`.

use serde_json::json;

use crate::{
    fake_mattermost::FakeMattermost,
    support::{with_test_aliases, TestBridge, WAIT},
};

const DROPPED: &str = r#"stormbridge_chat_outbound_dropped_total{connection="mm"}"#;
const QUEUED: &str = r#"stormbridge_chat_outbound_queued{connection="mm"}"#;

#[actix_rt::test]
async fn an_overflowing_outbound_queue_shows_in_actors_and_metrics() {
    let fake = FakeMattermost::start().await;
    let town = fake.town_square.clone();
    // The chat server is down from the start: everything for it has to wait in the queue.
    fake.refuse_websockets(true);
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("queue_size = 2");
    let b = TestBridge::start_with(opts).await;

    // Announcements sent before the stream is connected would be lost, not queued.
    let streaming = eventually!(WAIT, b.actor("stream_consumer").await["state"] == "up");
    assert!(streaming, "{}", b.actor("stream_consumer").await);
    let reported = eventually!(WAIT, b.actor("chat:mm").await["queued"] == 0);
    assert!(reported, "{}", b.actor("chat:mm").await);
    let (_, metrics) = b.get("/metrics").await;
    assert!(
        metrics.contains(&format!("{DROPPED} 0")) && metrics.contains(&format!("{QUEUED} 0")),
        "both series exist before anything is dropped: {metrics}"
    );
    assert_eq!(
        b.actor("chat:console").await["queued"],
        0,
        "every connection runs on the same queue, the console's included"
    );

    for i in 1..=3 {
        b.emulator.announce(
            "stormbridge",
            json!({"message": format!("overflow {i}"), "channel": format!("mm:{town}")}),
        );
    }
    let overflowed = eventually!(WAIT, {
        let mm = b.actor("chat:mm").await;
        mm["queued"] == 2 && mm["dropped"] == 1
    });
    assert!(overflowed, "{}", b.actor("chat:mm").await);
    assert_ne!(b.actor("chat:mm").await["state"], "up");
    let exported = eventually!(
        WAIT,
        b.metric(DROPPED).await == 1.0 && b.metric(QUEUED).await == 2.0
    );
    let (_, metrics) = b.get("/metrics").await;
    assert!(exported, "{metrics}");
    assert!(metrics.contains("# TYPE stormbridge_chat_outbound_dropped counter"));
    assert!(metrics.contains("# TYPE stormbridge_chat_outbound_queued gauge"));

    // The server comes back: the queue drains, the drop count stays.
    fake.refuse_websockets(false);
    let delivered = eventually!(
        WAIT,
        !fake.bot_posts_containing(&town, "overflow 3").is_empty()
    );
    assert!(delivered, "the queued messages are sent");
    assert!(!fake.bot_posts_containing(&town, "overflow 2").is_empty());
    assert!(fake.bot_posts_containing(&town, "overflow 1").is_empty());
    let drained = eventually!(WAIT, {
        let mm = b.actor("chat:mm").await;
        mm["queued"] == 0 && b.metric(QUEUED).await == 0.0
    });
    assert!(drained, "{}", b.actor("chat:mm").await);
    assert_eq!(b.actor("chat:mm").await["dropped"], 1);
    assert_eq!(b.metric(DROPPED).await, 1.0);
}
