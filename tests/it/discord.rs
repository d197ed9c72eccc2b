//! The Discord backend against a fake Discord (REST v10 + gateway).

use std::time::Duration;

use serde_json::json;

use crate::{
    fake_discord::{
        FakeDiscord, Stored, ALICE, BOT, BOT_TOKEN, GENERAL, GUILD, MAX_CHARS, OTHER_BOT,
    },
    support::{captured_logs, with_test_aliases, TestBridge, WAIT},
};

async fn dc_bridge() -> (FakeDiscord, TestBridge) {
    let fake = FakeDiscord::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    (fake, b)
}

async fn bot_msg(fake: &FakeDiscord, channel: &str, needle: &str) -> Stored {
    let mut found;
    let ok = eventually!(WAIT, {
        found = fake.bot_messages(channel, needle);
        !found.is_empty()
    });
    assert!(
        ok,
        "no bot message containing {needle:?} in {channel}: {:#?}",
        fake.bot_messages(channel, "")
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
async fn a_room_command_runs_and_the_result_replies_in_the_channel() {
    let (fake, b) = dc_bridge().await;
    assert!(
        fake.intents()
            .iter()
            .all(|i| i & (1 << 15) != 0 && i & (1 << 9) != 0 && i & (1 << 12) != 0),
        "identify asks for guild messages, DMs and message content: {:?}",
        fake.intents()
    );
    let cmd = fake.post_as(ALICE, GENERAL, "!st2 run date");
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.alias_ref, "core.run_local");
    assert_eq!(e.request["user"], ALICE, "st2 gets the Discord user id");
    assert_eq!(e.request["source_channel"], GENERAL);
    let ctx = &e.request["source_context"];
    assert_eq!(ctx["connection"], "dc");
    assert_eq!(ctx["room"], GENERAL);
    assert_eq!(ctx["room_kind"], "group");
    assert_eq!(ctx["user_id"], ALICE);
    let result = bot_msg(&fake, GENERAL, &format!("execution: {}", e.id)).await;
    assert!(
        result.msg["content"]
            .as_str()
            .unwrap_or_default()
            .contains("succeeded"),
        "{:?}",
        result.msg
    );
    assert_eq!(
        result.msg["message_reference"]["message_id"],
        cmd.as_str(),
        "a reply to the command"
    );
    assert_eq!(result.msg["guild_id"], GUILD);

    // A mention instead of the prefix (both mention forms).
    fake.post_as(ALICE, GENERAL, &format!("<@!{BOT}> !st2 run uptime"));
    let e2 = executions(&b, 2).await.remove(1);
    assert_eq!(e2.parameters.get("cmd").map(String::as_str), Some("uptime"));
    bot_msg(&fake, GENERAL, &format!("execution: {}", e2.id)).await;
}

#[actix_rt::test]
async fn a_direct_message_command_is_answered_in_the_dm() {
    let (fake, b) = dc_bridge().await;
    let dm = fake.dm_channel(ALICE);
    fake.post_as(ALICE, &dm, "!st2 run date");
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.request["user"], ALICE);
    assert_eq!(e.request["source_channel"], dm.as_str());
    assert_eq!(e.request["source_context"]["room_kind"], "direct");
    assert_eq!(e.request["source_context"]["connection"], "dc");
    let result = bot_msg(&fake, &dm, &format!("execution: {}", e.id)).await;
    assert!(result.msg.get("guild_id").is_none());
    assert!(
        fake.bot_messages(GENERAL, &e.id).is_empty(),
        "nothing leaks into the guild"
    );

    // A message to a user opens the DM channel through the API.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "just for you", "channel": format!("dc:{GENERAL}"), "user": ALICE, "whisper": true}),
    );
    bot_msg(&fake, &dm, "just for you").await;
    assert!(fake.bot_messages(GENERAL, "just for you").is_empty());
}

#[actix_rt::test]
async fn help_is_answered_in_the_channel() {
    let (fake, _b) = dc_bridge().await;
    fake.post_as(ALICE, GENERAL, "!st2help");
    let help = bot_msg(&fake, GENERAL, "[core]").await;
    assert!(
        help.msg["content"]
            .as_str()
            .unwrap_or_default()
            .contains("run {{cmd}}"),
        "{:?}",
        help.msg
    );
}

#[actix_rt::test]
async fn a_long_reply_arrives_complete_in_parts_within_2000_characters() {
    let (fake, b) = dc_bridge().await;
    let lines: Vec<String> = (0..100)
        .map(|i| format!("line {i:05} é {}", "x".repeat(60)))
        .collect();
    let long = lines.join("\n");
    assert!(long.chars().count() > 2 * MAX_CHARS);
    b.emulator.announce(
        "stormbridge",
        json!({"message": long, "channel": format!("dc:{GENERAL}")}),
    );
    assert!(
        eventually!(WAIT, fake.bot_messages(GENERAL, "line 00099").len() == 1),
        "the last part never arrived"
    );
    let parts: Vec<String> = fake
        .bot_messages(GENERAL, "line 0")
        .into_iter()
        .map(|m| m.msg["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(parts.len() >= 3, "{} parts", parts.len());
    for part in &parts {
        assert!(
            part.chars().count() <= MAX_CHARS,
            "{}",
            part.chars().count()
        );
    }
    let joined = parts.join("\n");
    let got: Vec<&str> = joined.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(got, lines, "every line once, in order");
}

#[actix_rt::test]
async fn a_429_with_retry_after_delays_and_then_delivers() {
    let (fake, b) = dc_bridge().await;
    fake.rate_limit_next(1, 0.8);
    b.emulator.announce(
        "stormbridge",
        json!({"message": "after the limit", "channel": format!("dc:{GENERAL}")}),
    );
    let msg = bot_msg(&fake, GENERAL, "after the limit").await;
    let limited = fake.rate_limited_at();
    assert_eq!(limited.len(), 1, "the first attempt was refused");
    let waited = msg.at.duration_since(limited[0]);
    assert!(
        waited >= Duration::from_millis(750),
        "retried after {waited:?}, before retry_after"
    );
    assert_eq!(fake.bot_messages(GENERAL, "after the limit").len(), 1);
}

#[actix_rt::test]
async fn a_dropped_gateway_resumes_and_loses_nothing() {
    let (fake, b) = dc_bridge().await;
    assert!(
        eventually!(WAIT, fake.heartbeats() >= 1),
        "the bridge heartbeats"
    );
    assert_eq!((fake.identifies(), fake.resumes()), (1, 0));
    fake.drop_gateways();
    // Written while the bridge is away: the resume replays it.
    fake.post_as(ALICE, GENERAL, "!st2 run date");
    b.emulator.announce(
        "stormbridge",
        json!({"message": "queued while away", "channel": format!("dc:{GENERAL}")}),
    );
    let e = executions(&b, 1).await.remove(0);
    assert_eq!(e.request["user"], ALICE);
    bot_msg(&fake, GENERAL, &format!("execution: {}", e.id)).await;
    bot_msg(&fake, GENERAL, "queued while away").await;
    assert!(fake.resumes() >= 1, "resumed the session");
    assert_eq!(fake.identifies(), 1, "no new identify");
    b.wait_ready(200).await;
    let actor = b.actor("chat:dc").await;
    assert!(actor["restarts"].as_u64().unwrap_or(0) >= 1, "{actor}");
    assert_eq!(
        fake.bot_messages(GENERAL, "queued while away").len(),
        1,
        "delivered once"
    );
    assert!(
        !captured_logs().contains(BOT_TOKEN),
        "the token is never logged"
    );
}

#[actix_rt::test]
async fn replies_are_held_while_the_gateway_is_down_and_delivered_after_the_resume() {
    let (fake, b) = dc_bridge().await;
    fake.refuse_gateway(true);
    fake.drop_gateways();
    let down = eventually!(WAIT, b.actor("chat:dc").await["state"] == "reconnecting");
    assert!(down, "{}", b.actor("chat:dc").await);
    b.wait_ready(503).await;
    b.emulator.announce(
        "stormbridge",
        json!({"message": "held while away", "channel": format!("dc:{GENERAL}")}),
    );
    let attempts = fake.gateway_attempts();
    assert!(eventually!(WAIT, fake.gateway_attempts() >= attempts + 2));
    assert!(
        fake.bot_messages(GENERAL, "held while away").is_empty(),
        "held while disconnected"
    );
    fake.refuse_gateway(false);
    bot_msg(&fake, GENERAL, "held while away").await;
    assert!(fake.resumes() >= 1);
    b.wait_ready(200).await;
    assert_eq!(fake.bot_messages(GENERAL, "held while away").len(), 1);
}

#[actix_rt::test]
async fn a_reconnect_request_or_missing_heartbeat_acks_lead_to_a_resume() {
    let (fake, b) = dc_bridge().await;
    fake.ask_reconnect();
    assert!(eventually!(WAIT, fake.resumes() >= 1), "op 7 → resume");
    b.wait_ready(200).await;

    fake.mute_acks(true);
    assert!(
        eventually!(WAIT, fake.resumes() >= 2),
        "a zombied connection (heartbeats without ACK) is replaced and resumed"
    );
    fake.mute_acks(false);
    b.wait_ready(200).await;
    assert_eq!(fake.identifies(), 1);
    fake.post_as(ALICE, GENERAL, "!st2 run date");
    let e = executions(&b, 1).await.remove(0);
    bot_msg(&fake, GENERAL, &format!("execution: {}", e.id)).await;
}

#[actix_rt::test]
async fn an_invalid_session_makes_the_bridge_identify_again() {
    let (fake, b) = dc_bridge().await;
    fake.invalidate_resumes(true);
    fake.drop_gateways();
    assert!(
        eventually!(Duration::from_secs(20), fake.identifies() >= 2),
        "identified again"
    );
    assert!(eventually!(WAIT, fake.connected() == 1));
    b.wait_ready(200).await;
    fake.post_as(ALICE, GENERAL, "!st2 run date");
    let e = executions(&b, 1).await.remove(0);
    bot_msg(&fake, GENERAL, &format!("execution: {}", e.id)).await;
}

#[actix_rt::test]
async fn messages_from_the_bridge_itself_or_other_bots_are_not_commands() {
    let (fake, b) = dc_bridge().await;
    fake.post_as(OTHER_BOT, GENERAL, "!st2 run date");
    fake.post_as(BOT, GENERAL, "!st2 run whoami");
    fake.post_as(ALICE, GENERAL, "!st2 run uptime");
    let e = executions(&b, 1).await.remove(0);
    bot_msg(&fake, GENERAL, &format!("execution: {}", e.id)).await;
    let all = b.emulator.executions();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].parameters.get("cmd").map(String::as_str),
        Some("uptime")
    );
    assert_eq!(all[0].request["user"], ALICE);
}
