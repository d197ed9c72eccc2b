//! The Slack backend against a fake Slack (tests/it/slack/fake.rs): commands in over Socket
//! Mode or the Events API, executions at the st2 emulator, results back as Web API posts.

/// The fake Slack (also used by `properties::slack`).
pub(crate) mod fake;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use self::fake::{text_of, FakeSlack, APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER, TEAM};
use crate::{
    bridge_process::{owed_in_sqlite, sqlite_store_toml},
    support::{captured_logs, with_test_aliases, TestBridge, WAIT},
};

const ALICE: &str = "U0ALICE";

async fn socket_bridge() -> (FakeSlack, TestBridge) {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = slack.socket_toml();
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    assert_eq!(b.actor("chat:slack").await["state"], "up");
    (slack, b)
}

async fn execution_count(b: &TestBridge, n: usize) {
    let ok = eventually!(WAIT, b.emulator.executions().len() >= n);
    assert!(
        ok,
        "expected {n} executions, got {:?}",
        b.emulator.executions().len()
    );
}

#[actix_rt::test]
async fn room_command_runs_and_the_result_lands_in_the_same_channel_and_thread() {
    let (slack, b) = socket_bridge().await;
    assert_eq!(slack.joins(), vec!["C0OPS"], "configured channel joined");

    let env = slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run \u{201C}date\u{201D}", None))
        .await;
    execution_count(&b, 1).await;
    let e = &b.emulator.executions()[0];
    assert_eq!(e.alias_ref, "core.run_local");
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("date"));
    assert_eq!(e.request["user"], ALICE);
    assert_eq!(e.request["source_channel"], "C0OPS");
    let ctx = &e.request["source_context"];
    assert_eq!(ctx["connection"], "slack");
    assert_eq!(ctx["room"], "C0OPS");
    assert_eq!(ctx["room_kind"], "group");
    assert_eq!(ctx["user_id"], ALICE);
    assert!(ctx["thread"].is_null(), "{ctx}");
    let result = slack.post_containing(&format!("execution: {}", e.id)).await;
    assert_eq!(result["channel"], "C0OPS");
    assert!(result.get("thread_ts").is_none(), "{result}");
    assert!(slack.acks().contains(&env), "envelope acknowledged");
    let latency = slack.ack_latency(&env).expect("ack timed");
    assert!(
        latency < Duration::from_secs(3),
        "ack after {latency:?}, past Slack's deadline"
    );

    // A mention in a thread: the command runs and both replies stay in that thread.
    let thread = "1700000000.000042";
    slack
        .push(slack.message_event(
            "C0OPS",
            ALICE,
            &format!("<@{BOT_USER}> st2 run uptime"),
            Some(thread),
        ))
        .await;
    execution_count(&b, 2).await;
    let e = &b.emulator.executions()[1];
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("uptime"));
    assert_eq!(e.request["source_context"]["thread"], thread);
    let ack = slack.post_containing("Started `run uptime`").await;
    assert_eq!(ack["thread_ts"], thread, "{ack}");
    let result = slack.post_containing(&format!("execution: {}", e.id)).await;
    assert_eq!(result["thread_ts"], thread, "{result}");
    assert_eq!(result["channel"], "C0OPS");

    // Removed from a configured channel: the bot joins it again.
    slack
        .push(
            json!({"type": "event_callback", "team_id": TEAM, "event_id": "EvLEFT",
                     "event": {"type": "channel_left", "channel": "C0OPS", "actor_id": ALICE}}),
        )
        .await;
    let rejoined = eventually!(WAIT, slack.joins().len() == 2);
    assert!(rejoined, "joins: {:?}", slack.joins());

    let logs = captured_logs();
    assert!(
        !logs.contains(BOT_TOKEN) && !logs.contains(APP_TOKEN),
        "a token was logged"
    );
}

#[actix_rt::test]
async fn direct_message_command_is_answered_in_the_direct_conversation() {
    let (slack, b) = socket_bridge().await;
    slack
        .push(slack.message_event("D0ALICE", ALICE, "!st2 run whoami", None))
        .await;
    execution_count(&b, 1).await;
    let e = &b.emulator.executions()[0];
    assert_eq!(e.request["user"], ALICE);
    assert_eq!(e.request["source_channel"], "D0ALICE");
    assert_eq!(e.request["source_context"]["room_kind"], "direct");
    let result = slack.post_containing(&format!("execution: {}", e.id)).await;
    assert_eq!(result["channel"], "D0ALICE");

    // A whisper to a user opens the direct conversation first.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "psst", "channel": "slack:C0OPS", "user": "U0BOB", "whisper": true}),
    );
    let post = slack.post_containing("psst").await;
    assert_eq!(post["channel"], "D0BOB");
    assert_eq!(slack.calls("conversations.open")[0].body["users"], "U0BOB");
}

#[actix_rt::test]
async fn help_is_posted_in_the_channel() {
    let (slack, _b) = socket_bridge().await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2help", None))
        .await;
    let help = slack.post_containing("[core]").await;
    assert_eq!(help["channel"], "C0OPS");
    assert!(text_of(&help).contains("!st2 run {{cmd}}"), "{help}");
}

#[actix_rt::test]
async fn long_messages_arrive_complete_in_parts_and_extra_slack_is_rendered() {
    let (slack, b) = socket_bridge().await;
    let lines: Vec<String> = (0..30)
        .map(|i| format!("line {i:02} {}", "x".repeat(30)))
        .collect();
    let long = lines.join("\n");
    b.emulator.announce(
        "stormbridge",
        json!({"message": long, "channel": "slack:C0OPS"}),
    );
    let ok = eventually!(
        WAIT,
        slack.posts().iter().any(|p| text_of(p).contains("line 29"))
    );
    assert!(ok, "last part never arrived: {:#?}", slack.posts());
    let parts: Vec<String> = slack.posts().iter().map(text_of).collect();
    assert!(parts.len() >= 4, "{} parts", parts.len());
    assert!(parts.iter().all(|p| p.chars().count() <= 300), "{parts:#?}");
    assert_eq!(parts.join("\n"), long, "nothing lost or reordered");

    b.emulator.announce(
        "stormbridge",
        json!({"message": "deployed", "channel": "slack:C0OPS",
               "extra": {"color": "#36a64f", "slack": {"title": "Deploy", "thread_response": true}}}),
    );
    let post = slack.post_containing("deployed").await;
    let att = &post["attachments"][0];
    assert_eq!(att["color"], "#36a64f");
    assert_eq!(att["title"], "Deploy");
    assert!(att.get("thread_response").is_none(), "{post}");
}

#[actix_rt::test]
async fn a_429_with_retry_after_delays_and_then_delivers() {
    let (slack, b) = socket_bridge().await;
    slack.rate_limit_next(1);
    b.emulator.announce(
        "stormbridge",
        json!({"message": "after the limit", "channel": "slack:C0OPS"}),
    );
    b.emulator.announce(
        "stormbridge",
        json!({"message": "and in order", "channel": "slack:C0OPS"}),
    );
    slack.post_containing("and in order").await;
    let calls = slack.calls("chat.postMessage");
    assert_eq!(calls[0].status, 429);
    assert_eq!(calls[1].status, 200);
    assert_eq!(
        text_of(&calls[1].body),
        "after the limit",
        "the limited message is retried first"
    );
    let waited = calls[1].at.duration_since(calls[0].at);
    assert!(
        waited >= Duration::from_millis(950),
        "retried after only {waited:?}"
    );
    let texts: Vec<String> = slack.posts().iter().map(text_of).collect();
    assert_eq!(texts, vec!["after the limit", "and in order"]);
}

#[actix_rt::test]
async fn refresh_requested_opens_the_next_socket_first_and_loses_nothing() {
    let (slack, b) = socket_bridge().await;
    assert_eq!(slack.connections_opened(), 1);
    slack.request_disconnect("refresh_requested").await;
    // Sent at once: the fake holds it for the next connection, as Slack moves traffic there.
    let env = slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run after-refresh", None))
        .await;
    execution_count(&b, 1).await;
    assert_eq!(
        b.emulator.executions()[0]
            .parameters
            .get("cmd")
            .map(String::as_str),
        Some("after-refresh")
    );
    assert!(slack.acks().contains(&env));
    assert_eq!(slack.connections_opened(), 2);
    assert!(
        slack.overlapped(),
        "the new socket was opened before the old one was closed"
    );
    let closed = eventually!(WAIT, slack.open_connections() == 1);
    assert!(
        closed,
        "the old socket is closed once the new one says hello"
    );
    assert_eq!(b.actor("chat:slack").await["state"], "up");

    // A `warning` is handled the same way.
    slack.request_disconnect("warning").await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run after-warning", None))
        .await;
    execution_count(&b, 2).await;
    assert_eq!(slack.connections_opened(), 3);
}

#[actix_rt::test]
async fn dropped_sockets_reconnect_and_queued_messages_are_delivered() {
    let (slack, b) = socket_bridge().await;
    slack.drop_connections().await;
    let env = slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run while-down", None))
        .await;
    // The Web API is down too for a while: the result waits in the bridge's queue.
    slack.fail_next_posts(3);
    execution_count(&b, 1).await;
    let id = b.emulator.executions()[0].id.clone();
    let result = slack.post_containing(&format!("execution: {id}")).await;
    assert_eq!(result["channel"], "C0OPS");
    assert!(slack.acks().contains(&env));
    assert!(slack.connections_opened() >= 2);
    let failed = slack
        .calls("chat.postMessage")
        .iter()
        .filter(|c| c.status == 503)
        .count();
    assert_eq!(failed, 3, "the failures were retried, not skipped");
    let texts: Vec<String> = slack.posts().iter().map(text_of).collect();
    let ack_at = texts
        .iter()
        .position(|t| t.contains("Started"))
        .expect("ack posted");
    let result_at = texts
        .iter()
        .position(|t| t.contains(&format!("execution: {id}")))
        .expect("result posted");
    assert!(ack_at < result_at, "queue order kept: {texts:#?}");
    b.wait_ready(200).await;
    assert!(
        b.actor("chat:slack").await["restarts"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
}

/// Socket Mode replays nothing to a new socket (https://api.slack.com/apis/connections/socket):
/// after a lost link the bridge reads `conversations.history` of the channels it heard last
/// from the newest message it handed on there, so a command said while no socket listened
/// runs once, and one it had run already does not run again.
#[actix_rt::test]
async fn a_command_said_while_the_socket_was_down_runs_once_when_it_is_back() {
    let (slack, b) = socket_bridge().await;
    let ran = |marker: &str| {
        b.emulator
            .executions()
            .iter()
            .filter(|e| e.parameters.get("cmd").is_some_and(|c| c == marker))
            .count()
    };
    let results_of = |marker: &str| {
        let ids: Vec<String> = b
            .emulator
            .executions()
            .iter()
            .filter(|e| e.parameters.get("cmd").is_some_and(|c| c == marker))
            .map(|e| e.id.clone())
            .collect();
        slack
            .posts()
            .iter()
            .filter(|p| {
                ids.iter()
                    .any(|id| text_of(p).contains(&format!("execution: {id}")))
            })
            .count()
    };
    let first = slack.message_event("C0OPS", ALICE, "!st2 run sl-first", None);
    let first_ts = first["event"]["ts"].as_str().unwrap().to_owned();
    slack.push(first).await;
    assert!(
        eventually!(WAIT, results_of("sl-first") == 1),
        "first result"
    );

    slack.refuse_sockets(true);
    slack.drop_connections().await;
    let down = eventually!(WAIT, b.actor("chat:slack").await["state"] == "reconnecting");
    assert!(down, "{}", b.actor("chat:slack").await);
    // Said while no socket is open: in the channel's history, never sent as an event.
    slack.say_unheard("C0OPS", None, ALICE, "!st2 run sl-away");
    // And a follow-up in the thread under the first command.
    slack.say_unheard("C0OPS", Some(&first_ts), ALICE, "!st2 run sl-thread");
    // And a command in a thread started meanwhile, under a message the bridge never saw.
    let question = slack.say_unheard("C0OPS", None, ALICE, "a question for the team");
    slack.say_unheard("C0OPS", Some(&question), ALICE, "!st2 run sl-new-thread");
    let opened = slack.connections_opened();
    slack.refuse_sockets(false);
    assert!(
        eventually!(WAIT, slack.connections_opened() > opened),
        "a new socket"
    );
    // And one once it is back.
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run sl-back", None))
        .await;

    let all = [
        "sl-first",
        "sl-away",
        "sl-thread",
        "sl-new-thread",
        "sl-back",
    ];
    assert!(
        eventually!(WAIT, all.iter().all(|m| results_of(m) >= 1)),
        "every command ran and its result was posted: {:?}; posts: {:#?}",
        all.map(|m| (m, ran(m), results_of(m))),
        slack.posts().iter().map(text_of).collect::<Vec<_>>()
    );
    // A copy would have been handed on before `sl-back` (what the catch-up finds goes
    // first), and so have run by now: every command ran once and was answered once.
    for marker in all {
        assert_eq!(ran(marker), 1, "{marker} ran once");
        assert_eq!(results_of(marker), 1, "{marker}'s result was posted once");
    }
    // Asked from the newest message handed on in the channel, inclusive.
    let reads = slack.calls("conversations.history");
    let read = reads
        .iter()
        .find(|c| c.body["channel"] == "C0OPS" && c.body.get("include_all_metadata").is_none())
        .expect("the channel read back");
    assert_eq!(read.body["inclusive"], true, "{}", read.body);
    assert!(read.body["oldest"].as_str().is_some(), "{}", read.body);
    // The thread is read back too, and its result answered in it.
    let threads = slack.calls("conversations.replies");
    assert!(
        threads.iter().any(|c| c.body["channel"] == "C0OPS"
            && c.body["ts"] == first_ts.as_str()
            && c.body["inclusive"] == true
            && c.body.get("include_all_metadata").is_none()),
        "the thread read back: {threads:?}"
    );
    let in_thread = slack
        .posts()
        .iter()
        .any(|p| p["thread_ts"] == first_ts.as_str() && text_of(p).contains("sl-thread"));
    assert!(in_thread, "sl-thread answered in its thread");
    let in_new_thread = slack
        .posts()
        .iter()
        .any(|p| p["thread_ts"] == question.as_str() && text_of(p).contains("sl-new-thread"));
    assert!(in_new_thread, "sl-new-thread answered in its thread");
    assert_eq!(b.actor("chat:slack").await["state"], "up");
    let logs = captured_logs();
    assert!(
        !logs.contains(BOT_TOKEN) && !logs.contains(APP_TOKEN),
        "a token was logged"
    );
}

#[actix_rt::test]
async fn bots_and_the_bridge_itself_are_not_obeyed() {
    let (slack, b) = socket_bridge().await;
    slack
        .push(slack.bot_event("C0OPS", "B0OTHER", None, "!st2 run from-other-bot"))
        .await;
    // An app posting as its bot user: a user id, a bot_id and no subtype.
    slack
        .push(slack.bot_event("C0OPS", "B0OTHER", Some("U0OTHERBOT"), "!st2 run from-app"))
        .await;
    slack
        .push(slack.bot_event("C0OPS", BOT_ID, Some(BOT_USER), "!st2 run from-myself"))
        .await;
    let mut own = slack.message_event("C0OPS", BOT_USER, "!st2 run own-user", None);
    own["event"].as_object_mut().map(|e| e.remove("bot_id"));
    slack.push(own).await;
    let edit = json!({"type": "event_callback", "team_id": TEAM, "event_id": "EvEDIT",
        "event": {"type": "message", "subtype": "message_changed", "channel": "C0OPS",
                  "ts": "1700000001.000001", "message": {"user": ALICE, "text": "!st2 run edited"}}});
    slack.push(edit).await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run from-alice", None))
        .await;
    execution_count(&b, 1).await;
    // Give any wrongly accepted message the same time to show up.
    slack.post_containing("Started `run from-alice`").await;
    let cmds: Vec<String> = b
        .emulator
        .executions()
        .iter()
        .filter_map(|e| e.parameters.get("cmd").cloned())
        .collect();
    assert_eq!(cmds, vec!["from-alice"]);
    let all_acked = eventually!(WAIT, slack.acks().len() == 6);
    assert!(
        all_acked,
        "every envelope is acknowledged, obeyed or not: {:?}",
        slack.acks()
    );
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The signing secret of the Events API connection (Slack's documentation's example).
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A bridge with one Slack connection in Events API mode (`slackev`), ready, and the URL
/// Slack posts events and presses to.
async fn events_bridge(
    slack: &FakeSlack,
    mut opts: crate::support::Options,
) -> (TestBridge, String) {
    opts.extra_toml = format!(
        "[[chat]]\nname = \"slackev\"\nbackend = \"slack\"\nmode = \"events\"\nbot_token = \"{BOT_TOKEN}\"\n\
         signing_secret = \"{SIGNING_SECRET}\"\napi_url = \"{}\"\nsend_interval_ms = 0\n",
        slack.api_url()
    );
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let url = format!("http://{}/slack/events/slackev", b.app.http_addr);
    (b, url)
}

#[actix_rt::test]
async fn events_api_mode_takes_signed_button_presses_at_the_same_request_url() {
    let slack = FakeSlack::start().await;
    let secret = SIGNING_SECRET;
    let mut opts = with_test_aliases();
    opts.access_toml
        .push_str("[confirm]\n[[confirm.rules]]\naliases = [\"ops.deploy\"]\n");
    let (b, url) = events_bridge(&slack, opts).await;
    let post = |content_type: &'static str, body: String, sign_as: Option<String>| {
        let ts = now().to_string();
        let sig = stormbridge::backends::slack::signature::sign(
            secret.as_bytes(),
            &ts,
            sign_as.unwrap_or_else(|| body.clone()).as_bytes(),
        );
        let req = b
            .http
            .post(url.clone())
            .insert_header(("Content-Type", content_type))
            .insert_header(("X-Slack-Request-Timestamp", ts))
            .insert_header(("X-Slack-Signature", sig));
        async move {
            req.send_body(body)
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    let event = slack
        .message_event("C0OPS", ALICE, "!st2 deploy web to prod", None)
        .to_string();
    assert_eq!(post("application/json", event, None).await, 200);
    let (offer, ts) = slack
        .post_and_ts_containing("needs your confirmation")
        .await;
    let confirm = offer["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["text"]["text"] == "Confirm")
        .unwrap_or_else(|| panic!("no Confirm button in {offer:#}"));
    let form = |payload: &Value| {
        serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form")
    };
    let press = form(&slack.block_actions("C0OPS", ALICE, &ts, None, &confirm));
    // A press signed for other bytes is refused, and runs nothing.
    let forged = post(
        "application/x-www-form-urlencoded",
        press.clone(),
        Some("payload=%7B%7D".into()),
    )
    .await;
    assert_eq!(forged, 401);
    assert!(b.emulator.executions().is_empty());
    assert_eq!(
        post("application/x-www-form-urlencoded", press, None).await,
        200
    );
    execution_count(&b, 1).await;
    let updated = eventually!(WAIT, !slack.updates().is_empty());
    assert!(updated, "the buttons were not replaced");
    assert!(
        text_of(&slack.updates()[0]).contains("confirmed"),
        "{:?}",
        slack.updates()
    );
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn events_api_mode_verifies_signatures_and_answers_the_challenge() {
    let slack = FakeSlack::start().await;
    let secret = SIGNING_SECRET;
    let (b, url) = events_bridge(&slack, with_test_aliases()).await;
    let post = |body: String, ts: String, sig: String| {
        let req = b
            .http
            .post(url.clone())
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Slack-Request-Timestamp", ts))
            .insert_header(("X-Slack-Signature", sig));
        async move {
            let mut resp = req.send_body(body).await.expect("events request");
            let body = resp.body().await.expect("body");
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    let sign = |ts: &str, body: &str| {
        stormbridge::backends::slack::signature::sign(secret.as_bytes(), ts, body.as_bytes())
    };

    let challenge = json!({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}).to_string();
    let ts = now().to_string();
    let (status, body) = post(challenge.clone(), ts.clone(), sign(&ts, &challenge)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let forged = slack
        .message_event("C0OPS", ALICE, "!st2 run forged", None)
        .to_string();
    let (status, _) = post(forged.clone(), ts.clone(), sign(&ts, "{}")).await;
    assert_eq!(status, 401, "bad signature");
    let (status, _) = post(forged.clone(), ts.clone(), "v0=".into()).await;
    assert_eq!(status, 401, "empty signature");
    let stale = (now() - 600).to_string();
    let (status, _) = post(forged.clone(), stale.clone(), sign(&stale, &forged)).await;
    assert_eq!(status, 401, "stale timestamp, even correctly signed");

    let good = slack
        .message_event("C0DEV", ALICE, "!st2 run signed", None)
        .to_string();
    let (status, _) = post(good.clone(), ts.clone(), sign(&ts, &good)).await;
    assert_eq!(status, 200);
    // Slack's retry of the same event is not run twice.
    let (status, _) = post(good.clone(), ts.clone(), sign(&ts, &good)).await;
    assert_eq!(status, 200);
    execution_count(&b, 1).await;
    let e = &b.emulator.executions()[0];
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("signed"));
    assert_eq!(e.request["source_context"]["connection"], "slackev");
    let result = slack.post_containing(&format!("execution: {}", e.id)).await;
    assert_eq!(result["channel"], "C0DEV");
    assert_eq!(
        b.emulator.executions().len(),
        1,
        "forged requests never reached st2"
    );
}

#[actix_rt::test]
async fn a_refused_bot_token_keeps_the_connection_out_of_ready() {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = slack.socket_toml().replace(BOT_TOKEN, "xoxb-revoked");
    let b = TestBridge::start_with(opts).await;
    let retried = eventually!(WAIT, slack.calls("auth.test").len() >= 2);
    assert!(retried, "login retried with backoff");
    b.wait_ready(503).await;
    let actor = b.actor("chat:slack").await;
    assert_eq!(actor["state"], "reconnecting", "{actor}");
    assert!(
        actor["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid_auth"),
        "{actor}"
    );
    assert!(
        !actor.to_string().contains("xoxb-revoked"),
        "token leaked: {actor}"
    );
    assert!(slack.calls("apps.connections.open").is_empty());
}

#[actix_rt::test]
async fn a_full_outbound_queue_drops_the_oldest_and_delivers_the_rest_in_order() {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = slack.socket_toml().replace(
        "reconnect_max_ms = 400",
        "reconnect_max_ms = 400\nqueue_capacity = 3",
    );
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    // Slack is failing: "m0" is tried and kept at the head while the rest queue up.
    slack.fail_next_posts(1000);
    for i in 0..6 {
        b.emulator.announce(
            "stormbridge",
            json!({"message": format!("m{i}"), "channel": "slack:C0OPS"}),
        );
    }
    let tried = eventually!(WAIT, slack.calls("chat.postMessage").len() >= 2);
    assert!(tried);
    slack.fail_next_posts(0);
    let delivered = eventually!(WAIT, slack.posts().iter().any(|p| text_of(p) == "m5"));
    assert!(delivered, "{:#?}", slack.posts());
    let texts: Vec<String> = slack.posts().iter().map(text_of).collect();
    assert_eq!(texts, vec!["m3", "m4", "m5"], "oldest dropped, order kept");
}

#[actix_rt::test]
async fn ephemeral_whispers_go_to_the_users_channel_or_fall_back_to_a_dm() {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = slack.socket_toml() + "whispers = \"ephemeral\"\n";
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    for user in [ALICE, "U0GONE"] {
        slack
            .push(slack.message_event("C0OPS", user, "!st2 run hi", None))
            .await;
    }
    execution_count(&b, 2).await;
    for user in [ALICE, "U0GONE", "U0CAROL"] {
        b.emulator.announce(
            "stormbridge",
            json!({"message": format!("secret for {user}"), "channel": "slack:C0OPS", "user": user, "whisper": true}),
        );
    }
    // Alice spoke in C0OPS: an ephemeral message there.
    let post = slack.post_containing(&format!("secret for {ALICE}")).await;
    assert_eq!(post["channel"], "C0OPS");
    assert_eq!(post["user"], ALICE);
    let eph = slack.calls("chat.postEphemeral");
    assert!(eph
        .iter()
        .any(|c| c.body["user"] == ALICE && c.status == 200));
    // Slack refuses (user left the channel): a direct message instead.
    let post = slack.post_containing("secret for U0GONE").await;
    assert_eq!(post["channel"], "D0GONE");
    // Never seen in a channel: a direct message.
    let post = slack.post_containing("secret for U0CAROL").await;
    assert_eq!(post["channel"], "D0CAROL");
    assert!(post.get("user").is_none(), "{post}");
}

#[actix_rt::test]
async fn a_silent_socket_is_replaced() {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = slack.socket_toml() + "idle_timeout_secs = 1\n";
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    // Pongs keep a healthy idle socket open past the timeout.
    let replaced_early = eventually!(Duration::from_millis(1600), slack.connections_opened() > 1);
    assert!(
        !replaced_early,
        "a ponging socket is kept past the idle timeout"
    );
    slack.set_muted(true);
    let replaced = eventually!(WAIT, slack.connections_opened() >= 2);
    assert!(replaced, "the silent socket was never replaced");
    slack.set_muted(false);
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run after-silence", None))
        .await;
    execution_count(&b, 1).await;
}

#[actix_rt::test]
async fn access_rules_see_the_workspace_and_the_channel_name() {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = slack.socket_toml();
    opts.access_toml = format!(
        "[access]\ndefault = \"deny\"\n[[access.rules]]\naliases = [\"core.*\"]\n\
         orgs = [\"{TEAM}\"]\nrooms = [\"slack:name:ops\"]\nusers = [\"slack:{ALICE}\"]\naction = \"allow\"\n"
    );
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    slack
        .push(slack.message_event("C0DEV", ALICE, "!st2 run in-dev", None))
        .await;
    let denied = slack.post_containing("").await;
    assert_eq!(denied["channel"], "C0DEV", "{denied}");
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run in-ops", None))
        .await;
    execution_count(&b, 1).await;
    let cmds: Vec<String> = b
        .emulator
        .executions()
        .iter()
        .filter_map(|e| e.parameters.get("cmd").cloned())
        .collect();
    assert_eq!(cmds, vec!["in-ops"], "allowed only in #ops of the team");
}

#[actix_rt::test]
async fn malformed_frames_and_events_are_skipped_without_harm() {
    let (slack, b) = socket_bridge().await;
    slack.push_raw("not json at all").await;
    slack.push_raw(r#"{"type": "events_api"}"#).await;
    slack.push_raw(r#"{"type": "something_new", "x": 1}"#).await;
    slack
        .push(json!({"type": "event_callback", "event": {"no": "type"}}))
        .await;
    slack
        .push(json!({"type": "event_callback", "team_id": TEAM,
        "event": {"type": "message", "channel": "C0OPS", "text": "!st2 run no-user", "ts": "1.2"}}))
        .await;
    slack.push(json!(["an", "array"])).await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run still-fine", None))
        .await;
    execution_count(&b, 1).await;
    let cmds: Vec<String> = b
        .emulator
        .executions()
        .iter()
        .filter_map(|e| e.parameters.get("cmd").cloned())
        .collect();
    assert_eq!(cmds, vec!["still-fine"]);
    assert_eq!(slack.connections_opened(), 1, "no reconnect needed");
    assert_eq!(b.actor("chat:slack").await["state"], "up");
}

#[actix_rt::test]
async fn thread_response_answers_in_a_thread_under_a_command_said_in_the_channel() {
    let (slack, b) = socket_bridge().await;
    // `fire` aliases post no result of their own (result.enabled: false), so the results
    // below are the only ones; each command's context is used once (a second result for
    // the same command would be dropped as a duplicate).
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 fire uptime", None))
        .await;
    execution_count(&b, 1).await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 fire date", None))
        .await;
    execution_count(&b, 2).await;
    let e = b.emulator.executions()[0].clone();
    let second = b.emulator.executions()[1].clone();
    let context = e.request["source_context"].clone();
    let command_ts = context["message_id"]
        .as_str()
        .expect("message id")
        .to_owned();
    assert!(
        context["thread"].is_null(),
        "said in the channel: {context}"
    );
    // What chatops.post_result sends for an alias whose result asks for a thread.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "threaded result", "channel": "C0OPS", "user": ALICE, "whisper": false,
               "context": context, "extra": {"slack": {"thread_response": true, "color": "#00ff00"}}}),
    );
    let post = slack.post_containing("threaded result").await;
    assert_eq!(post["channel"], "C0OPS");
    assert_eq!(post["thread_ts"], command_ts.as_str(), "{post}");
    // Without the hint, the same kind of result stays in the channel.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "plain result", "channel": "C0OPS", "context": second.request["source_context"]}),
    );
    let post = slack.post_containing("plain result").await;
    assert!(post.get("thread_ts").is_none(), "{post}");
}

// ----- Decision buttons: spent offers, abort, expiry, threads ------------------------------

/// A Socket Mode bridge whose `ops.deploy` waits for its sender's confirmation, within
/// `ttl_secs`.
async fn confirm_bridge(ttl_secs: u64) -> (FakeSlack, TestBridge) {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.extra_toml = slack.socket_toml();
    opts.access_toml.push_str(&format!(
        "[confirm]\nttl_secs = {ttl_secs}\n[[confirm.rules]]\naliases = [\"ops.deploy\"]\n"
    ));
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    assert_eq!(b.actor("chat:slack").await["state"], "up");
    (slack, b)
}

/// The code in an offer: the word after `!st2confirm `.
fn held_code(offer: &Value) -> String {
    crate::support::held_code(&text_of(offer), "!st2confirm")
}

/// The button labelled `label` of an offer.
fn decision_button(offer: &Value, label: &str) -> Value {
    crate::inquiries::button(offer, label)
}

/// Whether a posted or updated message still shows buttons.
fn has_buttons(body: &Value) -> bool {
    body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|b| b["type"] == "actions")
}

/// Waits for the `chat.update` of the message `ts`; returns it.
async fn update_of(slack: &FakeSlack, ts: &str) -> Value {
    let found = eventually!(WAIT, slack.updates().iter().any(|u| u["ts"] == ts));
    assert!(
        found,
        "the offer {ts} was never updated: {:#?}",
        slack.updates()
    );
    slack
        .updates()
        .into_iter()
        .find(|u| u["ts"] == ts)
        .expect("the update")
}

#[actix_rt::test]
async fn a_typed_confirmation_takes_the_spent_buttons_off_the_offer() {
    let (slack, b) = confirm_bridge(60).await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 deploy web to prod", None))
        .await;
    let (offer, ts) = slack
        .post_and_ts_containing("needs your confirmation")
        .await;
    assert!(has_buttons(&offer), "{offer:#}");
    let code = held_code(&offer);

    // Typed, not pressed: the offer must not keep buttons that now do nothing.
    slack
        .push(slack.message_event("C0OPS", ALICE, &format!("!st2confirm {code}"), None))
        .await;
    execution_count(&b, 1).await;
    let update = update_of(&slack, &ts).await;
    assert!(!has_buttons(&update), "{update:#}");
    assert!(text_of(&update).contains("confirmed"), "{update:#}");
    // The typed command is still answered where it was typed.
    slack.post_containing("confirmed: running it").await;
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn an_expired_offer_loses_its_buttons_and_an_aborted_one_never_runs() {
    let (slack, b) = confirm_bridge(1).await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 deploy web to prod", None))
        .await;
    let (offer, ts) = slack
        .post_and_ts_containing("needs your confirmation")
        .await;
    let confirm = decision_button(&offer, "Confirm");
    let update = update_of(&slack, &ts).await;
    assert!(!has_buttons(&update), "{update:#}");
    assert!(
        text_of(&update).contains("was not confirmed within"),
        "{update:#}"
    );
    // A press that beat the update to the screen runs nothing.
    slack
        .push_interactive(slack.block_actions("C0OPS", ALICE, &ts, None, &confirm))
        .await;
    crate::inquiries::ephemeral_to(&slack, ALICE, "nothing is waiting").await;

    // Abort by button: the offer says so, nothing runs, and confirming later finds nothing.
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 deploy api to staging", None))
        .await;
    let (offer, ts) = slack.post_and_ts_containing("deploy api to staging").await;
    let code = held_code(&offer);
    let abort = decision_button(&offer, "Abort");
    assert!(
        abort.get("style").is_none(),
        "abort is not the primary button"
    );
    slack
        .push_interactive(slack.block_actions("C0OPS", ALICE, &ts, None, &abort))
        .await;
    let update = update_of(&slack, &ts).await;
    assert!(!has_buttons(&update), "{update:#}");
    assert!(text_of(&update).contains("aborted"), "{update:#}");
    slack
        .push(slack.message_event("C0OPS", ALICE, &format!("!st2confirm {code}"), None))
        .await;
    slack.post_containing("nothing is waiting").await;
    assert!(b.emulator.executions().is_empty(), "nothing ran");
}

#[actix_rt::test]
async fn an_offer_posted_after_its_command_expired_arrives_without_live_buttons() {
    let (slack, b) = confirm_bridge(1).await;
    // Slack holds the channel's posts back longer than the command waits: the command
    // expires before the bridge learns where its offer went.
    slack.rate_limit_next(3);
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 deploy web to prod", None))
        .await;
    let (_, ts) = slack
        .post_and_ts_containing("needs your confirmation")
        .await;
    let update = update_of(&slack, &ts).await;
    assert!(!has_buttons(&update), "{update:#}");
    assert!(
        text_of(&update).contains("was not confirmed within"),
        "{update:#}"
    );
    assert!(b.emulator.executions().is_empty(), "nothing ran");
}

#[actix_rt::test]
async fn a_press_in_a_thread_keeps_the_offer_and_the_outcome_in_the_thread() {
    let (slack, b) = confirm_bridge(60).await;
    let parent = "1700000000.000100";
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 deploy web to prod", Some(parent)))
        .await;
    let (offer, ts) = slack
        .post_and_ts_containing("needs your confirmation")
        .await;
    assert_eq!(offer["thread_ts"], parent, "the offer goes into the thread");
    let confirm = decision_button(&offer, "Confirm");
    slack
        .push_interactive(slack.block_actions("C0OPS", ALICE, &ts, Some(parent), &confirm))
        .await;
    execution_count(&b, 1).await;
    let update = update_of(&slack, &ts).await;
    assert!(text_of(&update).contains("confirmed"), "{update:#}");
    assert!(!has_buttons(&update), "{update:#}");
    // What the run says (its acknowledgement and result) goes into the thread too.
    let result = slack.post_containing("Deployment").await;
    assert_eq!(result["thread_ts"], parent, "{result:#}");
    let outside: Vec<Value> = slack
        .posts()
        .into_iter()
        .filter(|p| p["thread_ts"] != parent)
        .collect();
    assert!(
        outside.is_empty(),
        "posted outside the thread: {outside:#?}"
    );
    assert_eq!(b.emulator.executions().len(), 1);
}

/// A Socket Mode bridge keeping what it owes in SQLite under `dir` (results carry receipts
/// only with a store that keeps owed results, as replicas and restarts need).
fn stored_options(slack: &FakeSlack, dir: &std::path::Path) -> crate::support::Options {
    let mut opts = with_test_aliases();
    opts.extra_toml = slack.socket_toml() + &sqlite_store_toml(dir);
    opts
}

/// The posts whose visible text contains `needle`.
fn posts_containing(slack: &FakeSlack, needle: &str) -> Vec<Value> {
    slack
        .posts()
        .into_iter()
        .filter(|p| text_of(p).contains(needle))
        .collect()
}

/// Issue 18: Slack has no idempotency key for `chat.postMessage`. A result part goes out with
/// message metadata naming it; when Slack saved the post but the answer was lost (a 503, a
/// timeout), the bridge reads the channel back before sending it again, finds the part and
/// counts it as posted: the channel shows the result once, and nothing stays owed.
#[actix_rt::test]
async fn a_result_whose_answer_was_lost_is_found_in_the_channel_and_not_posted_again() {
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let b = TestBridge::start_with(stored_options(&slack, dir.path())).await;
    b.wait_ready(200).await;
    slack.lose_answers_to("execution: ", 1);
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run echo answer-lost", None))
        .await;
    execution_count(&b, 1).await;
    let id = b.emulator.executions()[0].id.clone();
    let result = slack.post_containing(&format!("execution: {id}")).await;
    assert_eq!(result["metadata"]["event_type"], "stormbridge_result_part");
    let key = result["metadata"]["event_payload"]["part"]
        .as_str()
        .unwrap_or_default();
    assert!(
        key.len() == 24 && key.chars().all(|c| c.is_ascii_hexdigit()),
        "{result}"
    );
    let settled = eventually!(
        WAIT,
        owed_in_sqlite(dir.path()).await == Some(0)
            && !slack.calls("conversations.history").is_empty()
    );
    assert!(settled, "the result is still owed");
    let looked = &slack.calls("conversations.history")[0].body;
    assert_eq!(looked["channel"], "C0OPS");
    assert_eq!(looked["include_all_metadata"], true);
    let posted = posts_containing(&slack, &format!("execution: {id}"));
    assert_eq!(
        posted.len(),
        1,
        "the result was posted {} times",
        posted.len()
    );

    // A result whose post was answered is posted without looking back.
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run echo answered", None))
        .await;
    execution_count(&b, 2).await;
    let second = b.emulator.executions()[1].id.clone();
    slack.post_containing(&format!("execution: {second}")).await;
    assert_eq!(slack.calls("conversations.history").len(), 1);
}

/// Issue 18: a bridge killed after Slack saved a result part, before it learnt so, leaves
/// the result owed in its store; the next start (or the next holder of the connection) finds
/// the part in the thread it went to and posts nothing. Reading the history failing meanwhile
/// keeps the result owed rather than posting it blindly.
#[actix_rt::test]
async fn a_result_owed_again_after_a_kill_is_found_in_its_thread_and_posted_once() {
    use crate::bridge_process::{binary_config, bridge_ready, BridgeProcess};
    let emulator =
        stormbridge::emulator::Emulator::start(crate::crowd::CrowdOptions::default().emulator)
            .await
            .expect("emulator starts");
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::free_port();
    let config = binary_config(dir.path(), &emulator, port, &slack.socket_toml());
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let mut bridge = BridgeProcess::start(&config, &seen);
    assert!(bridge_ready(port).await, "the bridge became ready");
    slack.lose_answers_to("execution: ", 1);
    slack.fail_history(true);
    let command = slack.message_event("C0OPS", ALICE, "!st2 run echo owed-again", None);
    let root = command["event"]["ts"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reply = slack.message_event("C0OPS", ALICE, "!st2 run echo owed-again", Some(&root));
    slack.push(reply).await;
    let ran = eventually!(WAIT, emulator.executions().len() == 1);
    assert!(ran, "StackStorm ran the command");
    let needle = format!("execution: {}", emulator.executions()[0].id);
    let result = slack.post_containing(&needle).await;
    assert_eq!(result["thread_ts"], root.as_str());
    let tried = eventually!(WAIT, !slack.calls("conversations.replies").is_empty());
    assert!(tried, "the bridge did not look in the thread");
    assert_eq!(owed_in_sqlite(dir.path()).await, Some(1));

    bridge.process.kill();
    slack.fail_history(false);
    let _next = BridgeProcess::start(&config, &seen);
    assert!(bridge_ready(port).await, "the bridge restarted");
    let settled = eventually!(
        Duration::from_secs(30),
        owed_in_sqlite(dir.path()).await == Some(0)
    );
    assert!(settled, "the result is still owed after the restart");
    let posted = posts_containing(&slack, &needle);
    assert_eq!(
        posted.len(),
        1,
        "the result was posted {} times",
        posted.len()
    );
    let looked = slack
        .calls("conversations.replies")
        .into_iter()
        .rfind(|c| c.status == 200)
        .map(|c| c.body)
        .unwrap_or_default();
    assert_eq!(looked["ts"], root.as_str(), "{looked}");
    assert_eq!(looked["include_all_metadata"], true, "{looked}");
}
