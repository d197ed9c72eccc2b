//! The Discord backend against a fake Discord (REST v10 + gateway).

use std::time::Duration;

use serde_json::{json, Value};

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

fn announce(b: &TestBridge, text: &str) {
    b.emulator.announce(
        "stormbridge",
        json!({"message": text, "channel": format!("dc:{GENERAL}")}),
    );
}

/// `DiscordBot ($url, $versionNumber)`, the User-Agent Discord requires.
fn discord_user_agent(ua: &str) -> bool {
    ua.strip_prefix("DiscordBot (")
        .and_then(|rest| rest.split_once(", "))
        .is_some_and(|(url, version)| {
            url.starts_with("http") && version.len() > 1 && version.ends_with(')')
        })
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
    // In a channel the result mentions who ran the command, with Discord's user mention.
    assert!(
        result.msg["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("<@{ALICE}>: ")),
        "{:?}",
        result.msg
    );
    assert_eq!(
        result.msg["message_reference"]["message_id"],
        cmd.as_str(),
        "a reply to the command"
    );
    assert_eq!(result.msg["type"], 19, "{:?}", result.msg);
    assert_eq!(result.msg["referenced_message"]["id"], cmd.as_str());
    assert_eq!(result.msg["guild_id"], GUILD);
    let agents = fake.user_agents();
    assert!(
        !agents.is_empty() && agents.iter().all(|ua| discord_user_agent(ua)),
        "{agents:?}"
    );
    assert_eq!(fake.unauthorized(), 0, "Authorization: Bot <token>");
    let queries = fake.gateway_queries();
    assert!(
        queries
            .iter()
            .all(|q| q.contains("v=10") && q.contains("encoding=json")),
        "{queries:?}"
    );

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
    fake.rate_limit_next(1, 0.8, false);
    announce(&b, "after the limit");
    let msg = bot_msg(&fake, GENERAL, "after the limit").await;
    let limited = fake.rate_limited_at();
    assert_eq!(limited.len(), 1, "the first attempt was refused");
    let waited = msg.at.duration_since(limited[0]);
    assert!(
        waited >= Duration::from_millis(750),
        "retried after {waited:?}, before retry_after"
    );
    assert_eq!(fake.bot_messages(GENERAL, "after the limit").len(), 1);

    // The global limit's 429 carries no bucket headers, only the body and Retry-After.
    fake.rate_limit_next(1, 0.6, true);
    announce(&b, "after the global limit");
    let msg = bot_msg(&fake, GENERAL, "after the global limit").await;
    let limited = fake.rate_limited_at();
    assert_eq!(limited.len(), 2);
    let waited = msg.at.duration_since(limited[1]);
    assert!(
        waited >= Duration::from_millis(550),
        "retried after {waited:?}"
    );
}

#[actix_rt::test]
async fn a_used_up_rate_limit_window_holds_sends_until_it_resets() {
    let (fake, b) = dc_bridge().await;
    fake.message_bucket(2, Duration::from_millis(1500));
    for i in 1..=3 {
        announce(&b, &format!("window part {i}"));
    }
    let third = bot_msg(&fake, GENERAL, "window part 3").await;
    assert_eq!(fake.bot_messages(GENERAL, "window part").len(), 3);
    let used_up = fake.used_up_windows();
    assert!(!used_up.is_empty(), "a send got X-RateLimit-Remaining: 0");
    assert!(
        third.at >= used_up[0],
        "sent {:?} before the window reset",
        used_up[0].duration_since(third.at)
    );
    assert!(
        fake.rate_limited_at().is_empty(),
        "no 429: the bridge waited out X-RateLimit-Reset-After"
    );
}

#[actix_rt::test]
async fn a_dropped_gateway_resumes_and_loses_nothing() {
    let (fake, b) = dc_bridge().await;
    assert!(
        eventually!(WAIT, !fake.heartbeats().is_empty()),
        "the bridge heartbeats"
    );
    assert_eq!((fake.identifies().len(), fake.resumes().len()), (1, 0));
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
    let resumes = fake.resumes();
    assert!(!resumes.is_empty(), "resumed the session");
    assert!(
        resumes.iter().all(|r| r.path == "/resume"),
        "resumes go to resume_gateway_url: {resumes:?}"
    );
    assert_eq!(fake.identifies().len(), 1, "no new identify");
    assert_eq!(fake.gateway_bot_calls(), 1, "GET /gateway/bot once");
    b.wait_ready(200).await;
    // Heartbeats carry the last sequence number the bridge received.
    let mut last: Option<Value>;
    let in_step = eventually!(WAIT, {
        last = fake.heartbeats().last().cloned();
        fake.session_seq()
            .is_some_and(|seq| last == Some(json!(seq)))
    });
    assert!(
        in_step,
        "last heartbeat {last:?}, session at {:?}",
        fake.session_seq()
    );
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
    let identified = fake.identifies().len();
    fake.refuse_gateway(false);
    bot_msg(&fake, GENERAL, "held while away").await;
    // Back on the session (resumed) or, when the resume URL failed `MAX_RESUME_FAILURES`
    // times while refused (more tries fit in the outage on a loaded machine), on a new one.
    assert!(!fake.resumes().is_empty() || fake.identifies().len() > identified);
    b.wait_ready(200).await;
    assert_eq!(fake.bot_messages(GENERAL, "held while away").len(), 1);
}

#[actix_rt::test]
async fn a_reconnect_request_or_missing_heartbeat_acks_lead_to_a_resume() {
    let (fake, b) = dc_bridge().await;
    fake.ask_reconnect();
    assert!(
        eventually!(WAIT, !fake.resumes().is_empty()),
        "op 7 → resume"
    );
    b.wait_ready(200).await;

    fake.mute_acks(true);
    assert!(
        eventually!(WAIT, fake.resumes().len() >= 2),
        "a zombied connection (heartbeats without ACK) is replaced and resumed"
    );
    fake.mute_acks(false);
    b.wait_ready(200).await;
    assert_eq!(fake.identifies().len(), 1);
    let closes = fake.client_closes();
    assert!(
        !closes.iter().any(|c| matches!(c, Some(1000 | 1001))),
        "1000/1001 would end the session: {closes:?}"
    );
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
        eventually!(Duration::from_secs(20), fake.identifies().len() >= 2),
        "identified again"
    );
    let refused = fake.invalid_sessions();
    let again = fake.identifies()[1].clone();
    assert_eq!(refused.len(), 1, "one refused resume");
    assert!(
        again.at.duration_since(refused[0]) >= Duration::from_secs(1),
        "identified {:?} after op 9; Discord asks for 1–5 s",
        again.at.duration_since(refused[0])
    );
    assert_eq!(again.path, "/gateway", "a new session uses the gateway URL");
    assert_eq!(fake.gateway_bot_calls(), 1, "the gateway URL was kept");
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
    fake.post_as_webhook(GENERAL, "!st2 run hostname");
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

#[actix_rt::test]
async fn an_invalid_session_op_resumes_or_identifies_as_its_d_says() {
    let (fake, b) = dc_bridge().await;
    let attempts = fake.gateway_attempts();
    fake.invalidate_session(true);
    assert!(
        eventually!(WAIT, fake.resumes().len() == 1),
        "op 9 d=true → resume"
    );
    assert!(fake.gateway_attempts() > attempts, "on a new connection");
    assert_eq!(fake.resumes()[0].path, "/resume");
    assert_eq!(fake.identifies().len(), 1);
    b.wait_ready(200).await;

    fake.invalidate_session(false);
    assert!(
        eventually!(Duration::from_secs(20), fake.identifies().len() == 2),
        "op 9 d=false → identify"
    );
    let op9 = fake.invalid_sessions()[1];
    let again = fake.identifies()[1].clone();
    assert!(
        again.at.duration_since(op9) >= Duration::from_secs(1),
        "identified {:?} after op 9",
        again.at.duration_since(op9)
    );
    assert_eq!(again.path, "/gateway");
    assert_eq!(fake.resumes().len(), 1, "the session was not resumed");
    b.wait_ready(200).await;
    fake.post_as(ALICE, GENERAL, "!st2 run date");
    let e = executions(&b, 1).await.remove(0);
    bot_msg(&fake, GENERAL, &format!("execution: {}", e.id)).await;
}

#[actix_rt::test]
async fn a_disallowed_intent_close_stops_the_connection_without_retrying() {
    let fake = FakeDiscord::start().await;
    fake.refuse_message_content(true);
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("");
    let b = TestBridge::start_with(opts).await;
    let down = eventually!(WAIT, b.actor("chat:dc").await["state"] == "down");
    let actor = b.actor("chat:dc").await;
    assert!(down, "{actor}");
    assert!(
        actor["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("4014"),
        "{actor}"
    );
    b.wait_ready(503).await;
    // Discord: 4004 and 4010–4014 must not be retried. With the tests' 50–400 ms backoff
    // a retrying bridge would have connected again several times within this wait.
    let attempts = fake.gateway_attempts();
    assert!(
        !eventually!(Duration::from_secs(2), fake.gateway_attempts() > attempts),
        "connected again after 4014"
    );
    assert!(fake.identifies().is_empty());
    assert_eq!(b.actor("chat:dc").await["state"], "down");
}

#[actix_rt::test]
async fn a_refused_token_stops_every_request() {
    let (fake, b) = dc_bridge().await;
    fake.revoke_token();
    for i in 1..=3 {
        announce(&b, &format!("after the reset {i}"));
    }
    let down = eventually!(WAIT, b.actor("chat:dc").await["state"] == "down");
    let actor = b.actor("chat:dc").await;
    assert!(down, "{actor}");
    assert!(
        actor["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{actor}"
    );
    assert!(
        eventually!(WAIT, fake.connected() == 0),
        "the gateway connection is closed too"
    );
    let attempts = fake.gateway_attempts();
    assert!(
        !eventually!(Duration::from_secs(2), {
            fake.unauthorized() > 1 || fake.gateway_attempts() > attempts
        }),
        "requests after the 401: {} refused, {} gateway attempts",
        fake.unauthorized(),
        fake.gateway_attempts()
    );
    assert_eq!(fake.unauthorized(), 1, "one refused request, then none");
    assert!(fake.bot_messages(GENERAL, "after the reset").is_empty());
    assert!(
        eventually!(WAIT, b.actor("chat:dc").await["queued"] == 3),
        "the messages stay queued: {}",
        b.actor("chat:dc").await
    );
}

#[actix_rt::test]
async fn a_message_whose_answer_was_lost_is_sent_again_but_posted_once() {
    let (fake, b) = dc_bridge().await;
    // Discord made the message but its answer never came back (a 502 from its edge): the
    // bridge cannot tell, tries again, and the nonce makes Discord hand back the first one.
    fake.lose_answers(1);
    b.emulator.announce(
        "stormbridge",
        json!({"message": "exactly once", "channel": format!("dc:{GENERAL}")}),
    );
    assert!(
        eventually!(WAIT, fake.nonce_hits() == 1),
        "the send was tried again with the same nonce"
    );
    assert_eq!(fake.bot_messages(GENERAL, "exactly once").len(), 1);
    // Later messages get nonces of their own.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "and the next", "channel": format!("dc:{GENERAL}")}),
    );
    bot_msg(&fake, GENERAL, "and the next").await;
    assert_eq!(fake.nonce_hits(), 1);
}

#[actix_rt::test]
async fn a_resume_that_fails_once_is_tried_again_at_the_resume_url() {
    // Discord: resume only at `resume_gateway_url`; the initial gateway URL is for new
    // sessions (change log, "Session-specific Gateway Resume URLs").
    let (fake, b) = dc_bridge().await;
    fake.refuse_resumes(1);
    fake.drop_gateways();
    assert!(
        eventually!(WAIT, !fake.resumes().is_empty()),
        "resumed in the end: {:?}",
        fake.attempt_paths()
    );
    let paths = fake.attempt_paths();
    assert_eq!(
        paths,
        vec!["/gateway", "/resume", "/resume"],
        "the first connection, the refused resume, the resume again"
    );
    assert_eq!(fake.identifies().len(), 1, "no new identify");
    b.wait_ready(200).await;
    // A later op 7 (Reconnect) resumes at the resume URL too: the failed attempt did not
    // send the session back to the initial gateway URL.
    fake.ask_reconnect();
    assert!(
        eventually!(WAIT, fake.resumes().len() >= 2),
        "resumed after op 7: {:?}",
        fake.attempt_paths()
    );
    assert_eq!(
        fake.attempt_paths().last().map(String::as_str),
        Some("/resume"),
        "{:?}",
        fake.attempt_paths()
    );
    assert_eq!(fake.identifies().len(), 1, "still no new identify");
}

#[actix_rt::test]
async fn a_token_refused_by_get_gateway_bot_stops_the_connection() {
    let fake = FakeDiscord::start().await;
    fake.revoke_token();
    let mut opts = with_test_aliases();
    opts.extra_toml = fake.chat_toml("");
    let b = TestBridge::start_with(opts).await;
    let down = eventually!(WAIT, b.actor("chat:dc").await["state"] == "down");
    let actor = b.actor("chat:dc").await;
    assert!(down, "{actor}");
    assert!(
        actor["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused the bot token") && e.contains("401")),
        "{actor}"
    );
    assert!(
        !eventually!(Duration::from_secs(2), fake.unauthorized() > 1),
        "GET /gateway/bot was asked again after its 401: {} times",
        fake.unauthorized()
    );
    assert_eq!(fake.gateway_attempts(), 0);
}
