//! The StackStorm stream: reconnects, heartbeats, read timeouts, malformed events.

use std::time::Duration;

use serde_json::json;

use crate::support::{with_test_aliases, Options, TestBridge, WAIT};

async fn ready_bridge(opts: Options) -> TestBridge {
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    assert!(eventually!(WAIT, b.emulator.stream_connections() == 1));
    b
}

#[actix_rt::test]
async fn subscribes_only_to_its_routes_and_alias_changes() {
    let mut opts = with_test_aliases();
    opts.extra_toml = "".into();
    let b = ready_bridge(opts).await;
    let filter = b.emulator.stream_event_filter().expect("events= was sent");
    let mut parts: Vec<&str> = filter.split(',').collect();
    parts.sort_unstable();
    assert_eq!(
        parts,
        vec!["st2.actionalias__*", "st2.announcement__stormbridge"]
    );
}

#[actix_rt::test]
async fn a_stream_dropped_by_the_server_reconnects_and_delivers_the_next_announcement() {
    let mut b = ready_bridge(with_test_aliases()).await;
    let connects = b.emulator.stream_connects_total();
    b.emulator.drop_streams();
    assert!(eventually!(
        WAIT,
        b.emulator.stream_connects_total() > connects && b.emulator.stream_connections() == 1
    ));
    b.emulator.announce(
        "stormbridge",
        json!({"message": "after the drop", "channel": "ops"}),
    );
    b.line_containing("after the drop").await;
    assert!(b.metric("stormbridge_stream_reconnects_total").await >= 1.0);
    let actor = b.actor("stream_consumer").await;
    assert!(actor["restarts"].as_u64().unwrap_or(0) >= 1, "{actor}");
}

#[actix_rt::test]
async fn heartbeats_keep_a_quiet_stream_open_but_total_silence_reconnects() {
    // Heartbeat every 1 s, read timeout 3 s (see support::settings_for).
    let mut b = ready_bridge(with_test_aliases()).await;
    let connected_at = std::time::Instant::now();
    // Quiet but alive: let more than a read timeout pass on heartbeats alone.
    assert!(eventually!(
        Duration::from_secs(8),
        connected_at.elapsed() > Duration::from_secs(4)
    ));
    assert_eq!(
        b.emulator.stream_connects_total(),
        1,
        "heartbeats alone must not cause a reconnect"
    );
    assert_eq!(b.actor("stream_consumer").await["restarts"], 0);

    // A silent dead connection: open, but nothing at all arrives.
    b.emulator.stall_streams(true);
    assert!(eventually!(
        Duration::from_secs(15),
        b.emulator.stream_connects_total() >= 2
    ));
    b.emulator.stall_streams(false);
    let actor = b.actor("stream_consumer").await;
    assert!(
        actor["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("read timeout"),
        "{actor}"
    );
    b.wait_ready(200).await;
    assert!(eventually!(WAIT, b.emulator.stream_connections() >= 1));
    // The fresh connection (after the stall ended) delivers again.
    assert!(eventually!(Duration::from_secs(15), {
        b.emulator.announce(
            "stormbridge",
            json!({"message": "alive again", "channel": "ops"}),
        );
        b.next_line_within(Duration::from_millis(300))
            .await
            .is_some_and(|l| l.contains("alive again"))
    }));
}

#[actix_rt::test]
async fn malformed_events_are_skipped_without_dropping_the_connection() {
    let mut b = ready_bridge(with_test_aliases()).await;
    b.emulator
        .send_raw_event("st2.announcement__stormbridge", "{not json at all");
    b.emulator.send_raw_event(
        "st2.announcement__stormbridge",
        r#"{"payload": {"channel": "ops"}}"#,
    );
    b.emulator
        .send_raw_event("st2.announcement__stormbridge", r#"["a list"]"#);
    b.emulator.announce(
        "stormbridge",
        json!({"message": "good one", "channel": "ops"}),
    );
    let line = b.line_containing("good one").await;
    assert!(line.starts_with("[stormbridge] #ops"), "{line}");
    assert_eq!(
        b.metric("stormbridge_announcements_dropped_total").await,
        3.0
    );
    assert_eq!(b.emulator.stream_connects_total(), 1);
}

#[actix_rt::test]
async fn malformed_alias_json_is_skipped_and_good_aliases_still_work() {
    let mut opts = with_test_aliases();
    opts.emulator.aliases.push(json!("not an alias"));
    opts.emulator
        .aliases
        .push(json!({"name": 5, "formats": "x"}));
    opts.emulator.aliases.push(
        json!({"name": "badfmt", "pack": "p", "ref": "p.badfmt", "action_ref": "core.local",
        "enabled": true, "formats": ["broken {{a.b}}"]}),
    );
    let mut b = ready_bridge(opts).await;
    let cache = b.actor("alias_cache").await;
    assert_eq!(cache["state"], "up", "{cache}");
    assert!(
        cache["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("skipped"),
        "{cache}"
    );
    b.say("!st2 run date").await;
    b.line_containing("Started").await;
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn alias_changes_on_the_stream_reload_the_cache() {
    let mut b = ready_bridge(with_test_aliases()).await;
    b.say("!st2 greet world").await;
    b.line_containing("No StackStorm command matches").await;
    let mut aliases = crate::support::test_aliases();
    aliases.push(
        json!({"name": "greet", "pack": "hello", "ref": "hello.greet", "action_ref": "core.local",
        "enabled": true, "formats": ["greet {{who}}"], "description": "say hello"}),
    );
    b.emulator.set_aliases(aliases);
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_aliases").await == 9.0
    ));
    b.say("!st2 greet world").await;
    b.line_containing("Started `greet world`").await;
    assert_eq!(b.emulator.executions()[0].alias_ref, "hello.greet");
}
