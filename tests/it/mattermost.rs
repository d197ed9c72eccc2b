//! The Mattermost backend against a fake Mattermost server (API v4 + websocket).

use std::time::Duration;

use serde_json::json;

use crate::{
    fake_mattermost::{FakeMattermost, StoredPost, BOT_TOKEN, MAX_POST_CHARS},
    support::{captured_logs, with_test_aliases, TestBridge, WAIT},
};

async fn mm_bridge() -> (FakeMattermost, TestBridge) {
    let fake = FakeMattermost::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    (fake, b)
}

/// The first bot post in `channel` containing `needle`; panics after `WAIT`.
async fn bot_post(fake: &FakeMattermost, channel: &str, needle: &str) -> StoredPost {
    let mut found;
    let ok = eventually!(WAIT, {
        found = fake.bot_posts_containing(channel, needle);
        !found.is_empty()
    });
    assert!(
        ok,
        "no bot post containing {needle:?} in {channel}; bot posts: {:#?}",
        fake.bot_posts()
            .iter()
            .map(|p| p.post.clone())
            .collect::<Vec<_>>()
    );
    found.remove(0)
}

async fn executions(b: &TestBridge, n: usize) -> Vec<stormbridge::emulator::ExecutionRecord> {
    let ok = eventually!(WAIT, b.emulator.executions().len() >= n);
    assert!(
        ok,
        "expected {n} executions, got {:?}",
        b.emulator.executions()
    );
    b.emulator.executions()
}

#[actix_rt::test]
async fn a_room_command_runs_and_the_result_comes_back_to_the_room_and_thread() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();

    fake.post_as(&fake.alice_id, &town, "!st2 run date", "");
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.alias_ref, "core.run_local");
    assert_eq!(
        e.request["user"],
        fake.alice_id.as_str(),
        "st2 gets the Mattermost user id"
    );
    assert_eq!(e.request["source_channel"], town.as_str());
    let ctx = &e.request["source_context"];
    assert_eq!(ctx["connection"], "mm");
    assert_eq!(ctx["room"], town.as_str());
    assert_eq!(ctx["room_kind"], "group");
    assert_eq!(ctx["user_id"], fake.alice_id.as_str());
    assert!(ctx["thread"].is_null(), "{ctx}");
    let ack = bot_post(&fake, &town, "Started").await;
    assert!(ack.str("message").contains(&e.id), "{:?}", ack.post);
    let result = bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
    assert!(
        result.str("message").contains("succeeded"),
        "{:?}",
        result.post
    );
    // In a channel the result mentions who ran the command by username.
    assert!(
        result.str("message").starts_with("@alice: "),
        "{:?}",
        result.post
    );
    assert_eq!(
        result.str("root_id"),
        "",
        "not threaded when the command was not"
    );

    // In a thread: the result goes to the same thread (root_id).
    let root = fake.post_as(&fake.alice_id, &town, "deploy discussion", "");
    fake.post_as(&fake.alice_id, &town, "@stormbot !st2 run uptime", &root);
    let e2 = executions(&b, 2).await.remove(1);
    assert_eq!(e2.parameters.get("cmd").map(String::as_str), Some("uptime"));
    assert_eq!(e2.request["source_context"]["thread"], root.as_str());
    let result = bot_post(&fake, &town, &format!("execution: {}", e2.id)).await;
    assert_eq!(result.str("root_id"), root, "{:?}", result.post);
    assert_eq!(result.str("channel_id"), town);
}

#[actix_rt::test]
async fn a_direct_message_command_is_answered_in_the_direct_channel() {
    let (fake, b) = mm_bridge().await;
    let dm = fake.direct_channel(&fake.alice_id, &fake.bot_id);
    fake.post_as(&fake.alice_id, &dm, "!st2 run date", "");
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.request["user"], fake.alice_id.as_str());
    assert_eq!(e.request["source_channel"], dm.as_str());
    assert_eq!(e.request["source_context"]["room_kind"], "direct");
    assert_eq!(e.request["source_context"]["connection"], "mm");
    let result = bot_post(&fake, &dm, &format!("execution: {}", e.id)).await;
    assert!(
        result.str("message").contains("succeeded"),
        "{:?}",
        result.post
    );
    assert!(
        fake.bot_posts_containing(&fake.town_square, &e.id)
            .is_empty(),
        "nothing leaks into the room"
    );
}

#[actix_rt::test]
async fn help_is_answered_in_the_room() {
    let (fake, _b) = mm_bridge().await;
    fake.post_as(&fake.alice_id, &fake.town_square, "!st2help", "");
    let help = bot_post(&fake, &fake.town_square, "[core]").await;
    assert!(
        help.str("message").contains("run {{cmd}}"),
        "{:?}",
        help.post
    );
}

#[actix_rt::test]
async fn a_long_reply_arrives_complete_in_parts_within_the_limit() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    let lines: Vec<String> = (0..500)
        .map(|i| format!("line {i:05} é {}", "x".repeat(80)))
        .collect();
    let long = lines.join("\n");
    assert!(long.chars().count() > 2 * MAX_POST_CHARS);
    b.emulator.announce(
        "stormbridge",
        json!({"message": long, "channel": format!("mm:{town}")}),
    );
    let ok = eventually!(WAIT, {
        fake.bot_posts_containing(&town, "line 00499").len() == 1
    });
    assert!(ok, "the last part never arrived");
    let parts: Vec<String> = fake
        .bot_posts()
        .into_iter()
        .filter(|p| p.str("message").contains("line 0"))
        .map(|p| p.str("message").to_owned())
        .collect();
    assert!(parts.len() >= 3, "{} parts", parts.len());
    for part in &parts {
        assert!(part.chars().count() <= MAX_POST_CHARS, "{}", part.len());
    }
    let joined = parts.join("\n");
    let got: Vec<&str> = joined.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(got, lines, "every line once, in order");
}

#[actix_rt::test]
async fn a_429_with_retry_after_delays_and_then_delivers() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    fake.rate_limit_next_posts(1, 1);
    b.emulator.announce(
        "stormbridge",
        json!({"message": "after the limit", "channel": format!("mm:{town}")}),
    );
    let post = bot_post(&fake, &town, "after the limit").await;
    let limited = fake.rate_limited_at();
    assert_eq!(limited.len(), 1, "the first attempt was refused");
    let waited = post.at.duration_since(limited[0]);
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?}, before Retry-After"
    );
    assert_eq!(fake.bot_posts_containing(&town, "after the limit").len(), 1);
}

#[actix_rt::test]
async fn a_dropped_websocket_reconnects_and_delivers_what_was_queued() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    let auths = fake.ws_auths();
    fake.refuse_websockets(true);
    fake.drop_websockets();
    let down = eventually!(WAIT, b.actor("chat:mm").await["state"] == "reconnecting");
    assert!(down, "{}", b.actor("chat:mm").await);
    b.wait_ready(503).await;

    b.emulator.announce(
        "stormbridge",
        json!({"message": "queued while away", "channel": format!("mm:{town}")}),
    );
    // Give the bridge two reconnect attempts in which it could have (wrongly) sent.
    let attempts = fake.ws_attempts();
    assert!(eventually!(WAIT, fake.ws_attempts() >= attempts + 2));
    assert!(
        fake.bot_posts_containing(&town, "queued while away")
            .is_empty(),
        "held while disconnected"
    );

    fake.refuse_websockets(false);
    let post = bot_post(&fake, &town, "queued while away").await;
    assert_eq!(post.str("channel_id"), town);
    assert!(
        fake.ws_auths() > auths,
        "re-authenticated on the new socket"
    );
    b.wait_ready(200).await;
    let actor = b.actor("chat:mm").await;
    assert!(actor["restarts"].as_u64().unwrap_or(0) >= 1, "{actor}");

    // The new connection receives commands.
    fake.post_as(&fake.alice_id, &town, "!st2 run date", "");
    let e = executions(&b, 1).await.remove(0);
    bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
    assert_eq!(
        fake.bot_posts_containing(&town, "queued while away").len(),
        1,
        "delivered once"
    );
    assert!(
        !captured_logs().contains(BOT_TOKEN),
        "the token is never logged"
    );
}

#[actix_rt::test]
async fn posts_by_the_bridge_itself_or_other_bots_are_not_commands() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    fake.post_as(&fake.other_bot_id, &town, "!st2 run date", "");
    fake.post_as(&fake.bot_id, &town, "!st2 run whoami", "");
    fake.post_as(&fake.alice_id, &town, "!st2 run uptime", "");
    let e = executions(&b, 1).await.remove(0);
    bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
    let all = b.emulator.executions();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].parameters.get("cmd").map(String::as_str),
        Some("uptime")
    );
    assert_eq!(all[0].request["user"], fake.alice_id.as_str());
}

#[actix_rt::test]
async fn extra_mattermost_becomes_attachments_and_whispers_open_a_direct_channel() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    b.emulator.announce(
        "stormbridge",
        json!({
            "message": "deploy finished",
            "channel": format!("mm:{town}"),
            "extra": {"color": "#00ff00", "mattermost": {"title": "Deploy", "fields": [{"title": "env", "value": "prod", "short": true}]}},
        }),
    );
    let post = bot_post(&fake, &town, "deploy finished").await;
    let attachment = &post.post["props"]["attachments"][0];
    assert_eq!(attachment["title"], "Deploy", "{:?}", post.post);
    assert_eq!(attachment["color"], "#00ff00");
    assert_eq!(attachment["fields"][0]["value"], "prod");

    b.emulator.announce(
        "stormbridge",
        json!({"message": "just for you", "channel": format!("mm:{town}"), "user": fake.alice_id, "whisper": true}),
    );
    let dm = fake.direct_channel(&fake.alice_id, &fake.bot_id);
    let post = bot_post(&fake, &dm, "just for you").await;
    assert_eq!(post.str("channel_id"), dm);
    assert!(fake.bot_posts_containing(&town, "just for you").is_empty());
}

#[actix_rt::test]
async fn a_plain_user_account_still_ignores_its_own_posts() {
    let (fake, b) = mm_bridge().await;
    fake.make_bridge_a_plain_user();
    let town = fake.town_square.clone();
    fake.post_as(&fake.bot_id, &town, "!st2 run whoami", "");
    fake.post_as(&fake.alice_id, &town, "!st2 run uptime", "");
    let e = executions(&b, 1).await.remove(0);
    let result = bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
    assert!(
        result.post["props"].get("from_bot").is_none(),
        "{:?}",
        result.post
    );
    let all = b.emulator.executions();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].parameters.get("cmd").map(String::as_str),
        Some("uptime")
    );
}

#[actix_rt::test]
async fn configured_channels_are_joined_watched_and_rejoined_after_a_removal() {
    let fake = FakeMattermost::start().await;
    let alerts = fake.ops_alerts();
    assert!(!fake.is_member(&fake.bot_id, &alerts));
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml(r#"channels = ["ops-alerts"]"#);
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    assert!(
        eventually!(WAIT, fake.is_member(&fake.bot_id, &alerts)),
        "the bot joined ops-alerts"
    );

    // Only the configured channel is watched.
    fake.post_as(&fake.alice_id, &fake.town_square, "!st2 run whoami", "");
    fake.post_as(&fake.alice_id, &alerts, "!st2 run date", "");
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.request["source_channel"], alerts.as_str());
    bot_post(&fake, &alerts, &format!("execution: {}", e.id)).await;
    assert_eq!(b.emulator.executions().len(), 1);

    fake.remove_from_channel(&fake.bot_id, &alerts);
    assert!(!fake.is_member(&fake.bot_id, &alerts));
    assert!(
        eventually!(WAIT, fake.is_member(&fake.bot_id, &alerts)),
        "the bot rejoined after being removed"
    );
}

#[actix_rt::test]
async fn a_gap_in_event_seq_reconnects_and_re_authenticates() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    let auths = fake.ws_auths();
    fake.skip_a_seq();
    fake.post_as(&fake.alice_id, &town, "!st2 run date", "");
    assert!(
        eventually!(WAIT, fake.ws_auths() > auths),
        "a seq gap makes the bridge reconnect"
    );
    b.wait_ready(200).await;
    let actor = b.actor("chat:mm").await;
    assert!(actor["restarts"].as_u64().unwrap_or(0) >= 1, "{actor}");
    let e = executions(&b, 1).await.remove(0);
    bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
}

#[actix_rt::test]
async fn the_outbound_queue_is_bounded_and_keeps_the_newest() {
    let fake = FakeMattermost::start().await;
    let town = fake.town_square.clone();
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("queue_size = 2");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    fake.refuse_websockets(true);
    fake.drop_websockets();
    b.wait_ready(503).await;
    for i in 1..=4 {
        b.emulator.announce(
            "stormbridge",
            json!({"message": format!("overflow {i}"), "channel": format!("mm:{town}")}),
        );
    }
    assert!(
        eventually!(WAIT, captured_logs().contains("dropped_total=2")),
        "two overflows are logged"
    );
    fake.refuse_websockets(false);
    let last = bot_post(&fake, &town, "overflow 4").await;
    let third = bot_post(&fake, &town, "overflow 3").await;
    assert!(third.at <= last.at, "oldest first");
    assert!(fake.bot_posts_containing(&town, "overflow 1").is_empty());
    assert!(fake.bot_posts_containing(&town, "overflow 2").is_empty());
}

#[actix_rt::test]
async fn a_command_posted_while_disconnected_is_replayed_when_the_connection_resumes() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    fake.refuse_websockets(true);
    fake.drop_websockets();
    b.wait_ready(503).await;
    fake.post_as(&fake.alice_id, &town, "!st2 run date", "");
    fake.refuse_websockets(false);
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.request["user"], fake.alice_id.as_str());
    assert!(
        fake.resumes() >= 1,
        "resumed with connection_id and sequence_number"
    );
    bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
}

#[actix_rt::test]
async fn after_a_server_restart_a_fresh_connection_starts_its_seq_again() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    let auths = fake.ws_auths();
    fake.forget_connections();
    assert!(eventually!(WAIT, fake.ws_auths() > auths), "reconnected");
    b.wait_ready(200).await;
    assert_eq!(fake.resumes(), 0, "nothing to resume after a restart");
    fake.post_as(&fake.alice_id, &town, "!st2 run date", "");
    let e = executions(&b, 1).await.remove(0);
    bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
    assert_eq!(
        fake.ws_auths(),
        auths + 1,
        "the new connection's hello reset the expected seq (no spurious gap)"
    );
}

#[actix_rt::test]
async fn reply_in_thread_answers_under_the_command_post() {
    let fake = FakeMattermost::start().await;
    let town = fake.town_square.clone();
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("reply_in_thread = true");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let command = fake.post_as(&fake.alice_id, &town, "!st2 run date", "");
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.request["source_context"]["thread"], command.as_str());
    let result = bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
    assert_eq!(result.str("root_id"), command);
}

#[actix_rt::test]
async fn an_unanswered_authentication_challenge_times_out_and_retries() {
    let fake = FakeMattermost::start().await;
    fake.ignore_auth(true);
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("");
    let b = TestBridge::start_with(opts).await;
    // ping_interval_secs = 2 in the tests: two attempts take a few seconds.
    assert!(
        eventually!(WAIT, fake.ws_attempts() >= 2),
        "the bridge gave up on the silent socket and tried again"
    );
    b.wait_ready(503).await;
    let actor = b.actor("chat:mm").await;
    assert!(
        actor["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("mattermost handshake") && e.contains("timed out")),
        "{actor}"
    );
    fake.ignore_auth(false);
    b.wait_ready(200).await;
}

#[actix_rt::test]
async fn an_exhausted_rate_limit_window_pauses_until_it_resets() {
    let (fake, b) = mm_bridge().await;
    let town = fake.town_square.clone();
    fake.exhaust_window_next_posts(1, 1);
    for text in ["window first", "window second"] {
        b.emulator.announce(
            "stormbridge",
            json!({"message": text, "channel": format!("mm:{town}")}),
        );
    }
    let first = bot_post(&fake, &town, "window first").await;
    let second = bot_post(&fake, &town, "window second").await;
    let gap = second.at.duration_since(first.at);
    assert!(
        gap >= Duration::from_millis(900),
        "the second post waited for X-Ratelimit-Reset, not {gap:?}"
    );
    assert!(fake.rate_limited_at().is_empty(), "no 429 was needed");
}

/// Issue 18: Mattermost de-duplicates a repeated post for 30 seconds only. A result part goes
/// out with its key in `props`; when the server saved the post but the answer was lost (a
/// 503, a timeout), the bridge reads the channel's posts since before the first attempt,
/// finds the part and counts it as posted: the result shows once, and nothing stays owed.
#[actix_rt::test]
async fn a_result_whose_answer_was_lost_is_found_in_the_channel_and_not_posted_again() {
    use crate::bridge_process::{owed_in_sqlite, sqlite_store_toml};
    let fake = FakeMattermost::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("") + &sqlite_store_toml(dir.path());
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let town = fake.town_square.clone();
    fake.lose_answers_to("execution: ", 1);
    fake.post_as(&fake.alice_id, &town, "!st2 run echo mm-answer-lost", "");
    let e = executions(&b, 1).await.remove(0);
    let needle = format!("execution: {}", e.id);
    let result = bot_post(&fake, &town, &needle).await;
    let key = result.post["props"]["stormbridge_part"]
        .as_str()
        .unwrap_or_default();
    assert!(
        key.len() == 24 && key.chars().all(|c| c.is_ascii_hexdigit()),
        "{:?}",
        result.post
    );
    let settled = eventually!(
        WAIT,
        owed_in_sqlite(dir.path()).await == Some(0) && fake.requests_of("GET /channels/posts") >= 1
    );
    assert!(settled, "the result is still owed");
    let posted = fake.bot_posts_containing(&town, &needle).len();
    assert_eq!(posted, 1, "the result was posted {posted} times");

    // A result whose post was answered is posted without reading the channel.
    fake.post_as(&fake.alice_id, &town, "!st2 run echo mm-answered", "");
    let e = executions(&b, 2).await.remove(1);
    bot_post(&fake, &town, &format!("execution: {}", e.id)).await;
    assert_eq!(fake.requests_of("GET /channels/posts"), 1);
}
