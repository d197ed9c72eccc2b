//! Results that notify, as hubot-stackstorm's users know them (issue 12, point 7): a result
//! in a room mentions who ran the command; Slack shows a StackStorm message as hubot did (a
//! coloured attachment, the `{~}` pretext and the mention above it); `ack.extra` is
//! honoured; StackStorm's request id appears in error messages.

use serde_json::json;

use crate::slack::fake::{text_of, FakeSlack};
use crate::support::{captured_logs, with_test_aliases, TestBridge, WAIT};

const ALICE: &str = "U0ALICE";

#[actix_rt::test]
async fn a_result_in_a_room_mentions_who_ran_it_and_one_in_a_direct_message_does_not() {
    let mut b = TestBridge::start_with(with_test_aliases()).await;
    b.wait_ready(200).await;
    b.say("!st2 run uname").await;
    let id = eventually_execution(&b, 1).await;
    let line = b.line_containing(&format!("execution: {id}")).await;
    assert!(
        line.starts_with("[stormbridge] #ops: Alice: "),
        "the result is addressed to Alice: {line}"
    );
    b.say("/dm !st2 run whoami").await;
    let id = eventually_execution(&b, 2).await;
    let line = b.line_containing(&format!("execution: {id}")).await;
    assert!(!line.contains("Alice:"), "no mention in a DM: {line}");
}

#[actix_rt::test]
async fn mentions_can_be_turned_off() {
    let mut opts = with_test_aliases();
    opts.extra_toml = "[results]\nmention_user = false\n".into();
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b.say("!st2 run uname").await;
    let id = eventually_execution(&b, 1).await;
    let line = b.line_containing(&format!("execution: {id}")).await;
    assert!(!line.contains("Alice:"), "{line}");
}

async fn eventually_execution(b: &TestBridge, n: usize) -> String {
    let ok = eventually!(WAIT, b.emulator.executions().len() >= n);
    assert!(ok, "expected {n} executions");
    b.emulator.executions()[n - 1].id.clone()
}

async fn slack_bridge(aliases_extra: Vec<serde_json::Value>) -> (FakeSlack, TestBridge) {
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.emulator.aliases.extend(aliases_extra);
    opts.extra_toml = slack.socket_toml();
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    (slack, b)
}

#[actix_rt::test]
async fn on_slack_a_result_is_a_coloured_attachment_under_a_mention_of_who_ran_it() {
    let (slack, b) = slack_bridge(Vec::new()).await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run uname", None))
        .await;
    let id = eventually_execution(&b, 1).await;
    let ok = slack.post_containing(&format!("execution: {id}")).await;
    assert_eq!(ok["channel"], "C0OPS");
    assert_eq!(
        ok["text"],
        format!("<@{ALICE}>:"),
        "the mention notifies: {ok}"
    );
    let attachment = &ok["attachments"][0];
    assert_eq!(attachment["color"], "#dfdfdf", "hubot's success colour");
    assert!(
        attachment["text"]
            .as_str()
            .is_some_and(|t| t.contains("status : succeeded")),
        "{attachment}"
    );

    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 run false", None))
        .await;
    let id = eventually_execution(&b, 2).await;
    let failed = slack.post_containing(&format!("execution: {id}")).await;
    assert_eq!(failed["attachments"][0]["color"], "danger", "{failed}");
    assert!(text_of(&failed).contains("status : failed"));
}

#[actix_rt::test]
async fn on_slack_the_pretext_stays_above_the_attachment_and_extra_color_wins() {
    let (slack, b) = slack_bridge(Vec::new()).await;
    b.emulator.announce(
        "stormbridge",
        json!({"message": "Deploy finished{~}all 3 hosts updated", "channel": "slack:C0OPS",
               "user": ALICE, "extra": {"color": "#439FE0"}}),
    );
    let post = slack.post_containing("all 3 hosts updated").await;
    assert_eq!(post["text"], format!("<@{ALICE}>: Deploy finished"));
    assert_eq!(post["attachments"][0]["text"], "all 3 hosts updated");
    assert_eq!(post["attachments"][0]["color"], "#439FE0");
    // A whisper is not addressed.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "psst{~}secret", "channel": "slack:C0OPS", "user": ALICE, "whisper": true}),
    );
    let whisper = slack.post_containing("secret").await;
    assert!(!text_of(&whisper).contains("<@"), "{whisper}");
}

#[actix_rt::test]
async fn ack_extra_is_honoured_and_a_thread_response_ack_opens_a_thread() {
    let threaded = json!({
        "id": "opsthreaded", "name": "threaded", "pack": "ops", "ref": "ops.threaded",
        "uid": "action_alias:ops:threaded", "enabled": true, "action_ref": "core.local",
        "formats": ["threaded {{cmd}}"],
        "ack": {"format": "On it", "append_url": false,
                "extra": {"slack": {"thread_response": true}}}
    });
    let (slack, b) = slack_bridge(vec![threaded]).await;
    let event = slack.message_event("C0OPS", ALICE, "!st2 threaded uname", None);
    let ts = event["event"]["ts"].as_str().expect("event ts").to_owned();
    slack.push(event).await;
    let ack = slack.post_containing("On it").await;
    assert_eq!(
        ack["thread_ts"], ts,
        "the ack went under the command: {ack}"
    );
    drop(b);
}

#[actix_rt::test]
async fn an_error_message_carries_stackstorms_request_id() {
    let mut b = TestBridge::start_with(with_test_aliases()).await;
    b.wait_ready(200).await;
    // `core.local` has no parameter `env`: StackStorm refuses the execution with a 400.
    b.say("!st2 run uname env=prod").await;
    let reply = b.line_containing("couldn't run").await;
    let id = request_id_in(&reply);
    assert_eq!(id.len(), 36, "a uuid: {id}");
    // It is the bridge's own request id, which StackStorm kept: one id in both logs.
    let logs = captured_logs();
    assert!(logs.contains(id), "the bridge logged {id}");

    // The id shown is the one StackStorm answered with, not the one the bridge sent: behind
    // a proxy that sets its own request ids, StackStorm's logs know only the proxy's.
    b.emulator
        .set_request_id_override(Some("nginx-3f9c2a7e51d04b8c"));
    b.say("!st2 run uname env=staging").await;
    let reply = b
        .line_containing("couldn't run `run uname env=staging`")
        .await;
    assert_eq!(request_id_in(&reply), "nginx-3f9c2a7e51d04b8c", "{reply}");
}

fn request_id_in(reply: &str) -> &str {
    reply
        .split("StackStorm request id: ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no request id in {reply}"))
}
