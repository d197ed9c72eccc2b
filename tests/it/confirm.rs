//! Dangerous commands held for a decision (`[confirm]`), end to end on a text-only
//! platform (the console; `/as <id>` speaks as someone else): nothing reaches StackStorm
//! before the right person decides, in the right place, in time; a decided command runs
//! exactly once, as its sender, in its thread.

use crate::support::{held_code, with_test_aliases, Options, TestBridge};

const ACCESS: &str = r#"
[access]
default = "allow"
admins = ["console:alice"]
[access.groups]
leads = ["console:alice", "console:bob"]
"#;

fn with_confirm(confirm: &str) -> Options {
    let mut o = with_test_aliases();
    o.access_toml = format!("{ACCESS}\n{confirm}");
    o
}

const CONFIRM_DEPLOYS: &str = r#"
[confirm]
ttl_secs = 60
[[confirm.rules]]
aliases = ["ops.deploy"]
comment = "deploys change running systems"
"#;

const APPROVE_PROD: &str = r#"
[confirm]
approval_ttl_secs = 60
[[confirm.rules]]
texts = ["deploy * to prod*"]
approvers = ["@leads"]
comment = "production needs a second pair of eyes"
"#;

/// Alice's `!st2 deploy web to prod` in town square, held for approval: the offer posted.
async fn approval_offer(fake: &crate::fake_mattermost::FakeMattermost) -> serde_json::Value {
    fake.post_as(
        &fake.alice_id,
        &fake.town_square,
        "!st2 deploy web to prod",
        "",
    );
    let offered = eventually!(
        crate::support::WAIT,
        !fake
            .bot_posts_containing(&fake.town_square, "waits for approval")
            .is_empty()
    );
    assert!(offered, "no offer: {:#?}", fake.bot_posts());
    fake.bot_posts_containing(&fake.town_square, "waits for approval")
        .remove(0)
        .post
}

#[actix_rt::test]
async fn a_confirmed_command_runs_once_and_only_for_its_sender_in_its_room() {
    let mut b = TestBridge::start_with(with_confirm(CONFIRM_DEPLOYS)).await;
    b.wait_ready(200).await;
    b.say("!st2 deploy web to prod").await;
    let ask = b.line_containing("needs your confirmation").await;
    assert!(ask.contains("ops.deploy"), "{ask}");
    assert!(ask.contains("app=web") && ask.contains("env=prod"), "{ask}");
    assert!(ask.contains("deploys change running systems"), "{ask}");
    let code = held_code(&ask, "!st2confirm");
    assert!(b.emulator.executions().is_empty(), "nothing ran yet");

    // Someone else, or the sender elsewhere, cannot confirm it.
    b.say(&format!("/as bob !st2confirm {code}")).await;
    let refused = b.line_containing("Not done").await;
    assert!(refused.contains("only the person who sent it"), "{refused}");
    b.say(&format!("/dm !st2confirm {code}")).await;
    let refused = b.line_containing("Not done").await;
    assert!(refused.contains("in the room it was sent in"), "{refused}");
    assert!(b.emulator.executions().is_empty());

    b.say(&format!("!st2confirm {}", code.to_uppercase())).await;
    let decided = b.line_containing("confirmed").await;
    assert!(decided.contains("running it"), "{decided}");
    b.line_containing("Deployment").await;
    let runs = b.emulator.executions();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].alias_ref, "ops.deploy");
    assert_eq!(runs[0].request["user"], "alice");

    // A second confirmation (a double press) finds nothing and runs nothing.
    b.say(&format!("!st2confirm {code}")).await;
    let refused = b.line_containing("Not done").await;
    assert!(refused.contains("nothing is waiting"), "{refused}");
    assert_eq!(b.emulator.executions().len(), 1);
    assert_eq!(
        b.metric("stormbridge_waiting_decisions_total{event=\"asked\"}")
            .await,
        1.0
    );
    assert_eq!(
        b.metric("stormbridge_waiting_decisions_total{event=\"confirmed\"}")
            .await,
        1.0
    );
    assert_eq!(
        b.metric("stormbridge_waiting_decisions_total{event=\"refused\"}")
            .await,
        3.0
    );
    // Other aliases are not held.
    b.say("!st2 run date").await;
    b.line_containing("Started `run date`").await;
}

#[actix_rt::test]
async fn aborted_and_expired_commands_never_reach_stackstorm() {
    let mut b = TestBridge::start_with(with_confirm(
        &CONFIRM_DEPLOYS.replace("ttl_secs = 60", "ttl_secs = 1"),
    ))
    .await;
    b.wait_ready(200).await;
    b.say("!st2 deploy web to prod").await;
    let ask = b.line_containing("needs your confirmation").await;
    let expired = held_code(&ask, "!st2confirm");
    let gone = b.line_containing("was not confirmed within").await;
    assert!(gone.contains(&expired), "{gone}");
    b.say(&format!("!st2confirm {expired}")).await;
    b.line_containing("nothing is waiting").await;

    b.say("!st2 deploy api to staging").await;
    let ask = b.line_containing("needs your confirmation").await;
    let aborted = held_code(&ask, "!st2abort");
    b.say(&format!("/as bob !st2abort {aborted}")).await;
    b.line_containing("only the person who sent it can abort")
        .await;
    b.say(&format!("!st2abort {aborted}")).await;
    let line = b.line_containing("aborted").await;
    assert!(line.contains("did not run"), "{line}");
    b.say(&format!("!st2confirm {aborted}")).await;
    b.line_containing("nothing is waiting").await;
    assert!(b.emulator.executions().is_empty());
    assert_eq!(
        b.metric("stormbridge_waiting_decisions_total{event=\"expired\"}")
            .await,
        1.0
    );
    assert_eq!(b.metric("stormbridge_commands_waiting").await, 0.0);
}

#[actix_rt::test]
async fn approval_needs_another_member_of_the_group_and_tells_the_room() {
    let mut b = TestBridge::start_with(with_confirm(APPROVE_PROD)).await;
    b.wait_ready(200).await;
    b.say("!st2 deploy web to prod").await;
    let ask = b.line_containing("waits for approval").await;
    assert!(ask.contains("@leads"), "{ask}");
    let code = held_code(&ask, "!st2approve");

    b.say(&format!("!st2approve {code}")).await;
    b.line_containing("cannot approve your own command").await;
    b.say(&format!("/as carol !st2approve {code}")).await;
    b.line_containing("not one of its approvers").await;
    b.say(&format!("/as bob /dm !st2approve {code}")).await;
    b.line_containing("must be decided in the room").await;
    assert!(b.emulator.executions().is_empty());

    // Carol may list nothing; bob sees it.
    b.say("/as carol !st2pending").await;
    b.line_containing("Nothing you can decide on").await;
    b.say("/as bob !st2pending").await;
    let listed = b.line_containing("Waiting for a decision").await;
    assert!(listed.contains(&code), "{listed}");

    b.say(&format!("/as bob !st2approve {code}")).await;
    let decided = b.line_containing("approved by bob").await;
    assert!(decided.contains("running it for Alice"), "{decided}");
    b.line_containing("Deployment").await;
    let runs = b.emulator.executions();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].request["user"], "alice",
        "it runs as its sender, not as the approver"
    );

    // Staging is not covered: it runs straight away.
    b.say("!st2 deploy web to staging").await;
    b.line_containing("Deployment").await;

    // A denial says who and why.
    b.say("!st2 deploy db to prod").await;
    let code = held_code(&b.line_containing("waits for approval").await, "!st2deny");
    b.say(&format!("/as bob !st2deny {code} not during the freeze"))
        .await;
    let denied = b.line_containing("denied by bob").await;
    assert!(denied.contains("not during the freeze"), "{denied}");
    assert_eq!(b.emulator.executions().len(), 2);
}

#[actix_rt::test]
async fn approval_in_a_direct_chat_when_configured() {
    let mut b = TestBridge::start_with(with_confirm(
        &APPROVE_PROD.replace("[confirm]", "[confirm]\napprove_in_direct = true"),
    ))
    .await;
    b.wait_ready(200).await;
    b.say("!st2 deploy web to prod").await;
    let code = held_code(
        &b.line_containing("waits for approval").await,
        "!st2approve",
    );
    b.say(&format!("/as bob /dm !st2approve {code}")).await;
    // The approver hears it in the direct chat, the room hears it too.
    let first = b.line_containing("approved by bob").await;
    let second = b.line_containing("approved by bob").await;
    let both = format!("{first}\n{second}");
    assert!(
        both.contains("@bob (dm)") && both.contains("#ops"),
        "{both}"
    );
    b.line_containing("Deployment").await;
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn a_pending_approval_survives_a_restart_and_access_is_checked_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    std::fs::write(&key, "3c".repeat(32)).expect("key file");
    let options = |deny_deploys: bool| {
        let mut o = with_confirm(APPROVE_PROD);
        if deny_deploys {
            o.access_toml
                .push_str("[[access.rules]]\naliases = [\"ops.deploy\"]\naction = \"deny\"\n");
        }
        o.extra_toml.push_str(&format!(
            "[store]\nbackend = \"sqlite\"\npath = \"{}\"\nkey_file = \"{}\"\n",
            dir.path().join("state.db").display(),
            key.display()
        ));
        o
    };
    let mut b = TestBridge::start_with(options(false)).await;
    b.wait_ready(200).await;
    b.say("!st2 deploy hunter22 to prod").await;
    let first = held_code(
        &b.line_containing("waits for approval").await,
        "!st2approve",
    );
    b.say("!st2 deploy db to prod").await;
    let second = held_code(
        &b.line_containing("waits for approval").await,
        "!st2approve",
    );
    let raw = std::fs::read(dir.path().join("state.db")).expect("db");
    assert!(
        !String::from_utf8_lossy(&raw).contains("hunter22"),
        "the held command text is sealed at rest"
    );

    // Restarted: the approval still waits, and runs as its sender.
    b.app.stop().await;
    let TestBridge { emulator, .. } = b;
    let mut b = TestBridge::start_with_emulator(emulator, options(false)).await;
    b.wait_ready(200).await;
    b.say(&format!("/as bob !st2approve {first}")).await;
    b.line_containing("approved by bob").await;
    b.line_containing("Deployment").await;
    let runs = b.emulator.executions();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].request["user"], "alice");

    // Restarted with deploys now denied: the approval is taken, the rules refuse the run.
    b.app.stop().await;
    let TestBridge { emulator, .. } = b;
    let mut b = TestBridge::start_with_emulator(emulator, options(true)).await;
    b.wait_ready(200).await;
    b.say(&format!("/as bob !st2approve {second}")).await;
    b.line_containing("approved by bob").await;
    b.line_containing("Access control does not allow").await;
    assert_eq!(
        b.emulator.executions().len(),
        1,
        "denied commands never run"
    );
}

#[actix_rt::test]
async fn an_alias_can_ask_for_confirmation_itself() {
    let mut o = with_confirm("");
    o.emulator.aliases.push(serde_json::json!({
        "id": "opsreboot", "name": "reboot", "pack": "ops", "ref": "ops.reboot",
        "uid": "action_alias:ops:reboot", "enabled": true, "action_ref": "core.local",
        "formats": ["reboot {{cmd}}"], "extra": {"stormbridge": {"confirm": true}},
    }));
    let mut b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    b.say("!st2 reboot web1").await;
    let code = held_code(
        &b.line_containing("needs your confirmation").await,
        "!st2confirm",
    );
    assert!(b.emulator.executions().is_empty());
    b.say(&format!("!st2confirm {code}")).await;
    b.line_containing("confirmed").await;
    b.line_containing("Started").await;
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn a_secret_never_reaches_chat_not_in_a_prompt_nor_in_a_result() {
    let mut o = with_confirm("[confirm]\n[[confirm.rules]]\naliases = [\"ops.set_password\"]\n");
    o.emulator
        .aliases
        .push(stormbridge::emulator::set_password_alias());
    let mut b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    // StackStorm marks the action's `password` secret; the action prints it anyway.
    b.say("!st2 set password for bob to Hunter2-Secret").await;
    let ask = b.line_containing("needs your confirmation").await;
    assert!(ask.contains("user=bob"), "{ask}");
    assert!(ask.contains("password=[redacted]"), "{ask}");
    let code = held_code(&ask, "!st2confirm");
    b.say(&format!("!st2confirm {code}")).await;
    b.line_containing("Setting the password of bob").await;
    let result = b.line_containing("succeeded").await;
    assert!(result.contains("[redacted]"), "{result}");
    let runs = b.emulator.executions();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].parameters.get("password").map(String::as_str),
        Some("Hunter2-Secret"),
        "StackStorm gets the real value"
    );
    // Token shapes are masked in any output, whatever the action.
    b.say("!st2 run echo token=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB")
        .await;
    let echoed = b.line_containing("token=").await;
    assert!(echoed.contains("token=[redacted]"), "{echoed}");
    let leaked: Vec<&String> = b
        .seen
        .iter()
        .filter(|l| l.contains("Hunter2-Secret") || l.contains("ghp_0123"))
        .collect();
    assert!(leaked.is_empty(), "secrets reached chat: {leaked:?}");
    assert!(
        !crate::support::captured_logs().contains("Hunter2-Secret"),
        "a secret was logged"
    );
}

#[actix_rt::test]
async fn on_slack_a_button_approves_as_the_presser_once_and_refuses_the_sender() {
    use crate::{
        inquiries::{button, ephemeral_to, slack_bridge, ALICE, BOB},
        slack::fake::FakeSlack,
        support::WAIT,
    };
    let slack = FakeSlack::start().await;
    let mut opts = with_test_aliases();
    opts.access_toml = format!(
        "[access]\ndefault = \"allow\"\n[access.groups]\nleads = [\"slack:{ALICE}\", \"slack:{BOB}\"]\n\
         [confirm]\n[[confirm.rules]]\ntexts = [\"deploy * to prod*\"]\napprovers = [\"@leads\"]\n"
    );
    let b = slack_bridge(opts, &slack).await;
    slack
        .push(slack.message_event("C0OPS", ALICE, "!st2 deploy web to prod", None))
        .await;
    let (offer, ts) = slack.post_and_ts_containing("waits for approval").await;
    let approve = button(&offer, "Approve");
    assert_eq!(approve["style"], "primary");
    button(&offer, "Deny");
    assert!(b.emulator.executions().is_empty());

    // The sender presses Approve: refused, told privately, nothing runs.
    slack
        .push_interactive(slack.block_actions("C0OPS", ALICE, &ts, None, &approve))
        .await;
    ephemeral_to(&slack, ALICE, "cannot approve your own command").await;
    assert!(b.emulator.executions().is_empty());
    assert!(slack.updates().is_empty(), "the buttons stay");

    // Another lead approves: the buttons give way to who approved, and it runs once.
    slack
        .push_interactive(slack.block_actions("C0OPS", BOB, &ts, None, &approve))
        .await;
    let ran = eventually!(WAIT, b.emulator.executions().len() == 1);
    assert!(ran, "the approved command never reached StackStorm");
    let updated = eventually!(WAIT, !slack.updates().is_empty());
    assert!(updated, "the button message was not updated");
    let text = slack.updates()[0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(text.contains("approved by"), "{text}");
    assert_eq!(b.emulator.executions()[0].request["user"], ALICE);

    // A second press on the spent message runs nothing.
    slack
        .push_interactive(slack.block_actions("C0OPS", BOB, &ts, None, &approve))
        .await;
    ephemeral_to(&slack, BOB, "nothing is waiting").await;
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn on_discord_only_the_sender_confirms_with_a_button() {
    use crate::{
        fake_discord::{FakeDiscord, ALICE, BOB, GENERAL},
        inquiries::{discord_button, discord_message},
        support::WAIT,
    };
    let fake = FakeDiscord::start().await;
    let mut opts = with_confirm(CONFIRM_DEPLOYS);
    opts.extra_toml = fake.chat_toml("");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    fake.post_as(ALICE, GENERAL, "!st2 deploy web to prod");
    let offer = discord_message(&fake, GENERAL, "needs your confirmation").await;
    let confirm = discord_button(&offer, "Confirm");
    discord_button(&offer, "Abort");

    // Bob presses Confirm: only he is told why not; nothing runs, the buttons stay.
    let pressed = fake.press(BOB, &offer, &confirm);
    let refused = eventually!(
        WAIT,
        fake.followups().iter().any(|f| f.interaction == pressed)
    );
    assert!(refused, "no follow-up for bob's press");
    let followup = fake
        .followups()
        .into_iter()
        .find(|f| f.interaction == pressed)
        .expect("bob's follow-up");
    assert!(followup.ephemeral, "{:?}", followup.body);
    assert!(
        followup.body["content"]
            .as_str()
            .unwrap_or_default()
            .contains("only the person who sent it"),
        "{:?}",
        followup.body
    );
    assert!(b.emulator.executions().is_empty());
    assert!(fake.edits().is_empty());

    // Alice confirms: it runs once, and the message says so with its buttons gone.
    fake.press(ALICE, &offer, &confirm);
    let ran = eventually!(WAIT, b.emulator.executions().len() == 1);
    assert!(ran, "the confirmed command never reached StackStorm");
    let updated = discord_message(&fake, GENERAL, "confirmed").await;
    assert_eq!(updated["id"], offer["id"]);
    assert_eq!(updated["components"], serde_json::json!([]));
    fake.press(ALICE, &offer, &confirm);
    let again = eventually!(WAIT, fake.followups().len() >= 2);
    assert!(again, "the second press was not answered");
    assert_eq!(
        b.emulator.executions().len(),
        1,
        "a second press runs nothing"
    );
}

#[actix_rt::test]
async fn on_discord_a_typed_abort_takes_the_buttons_off_the_offer() {
    use crate::{
        fake_discord::{FakeDiscord, ALICE, BOT, GENERAL},
        inquiries::{discord_button, discord_message},
        support::WAIT,
    };
    let fake = FakeDiscord::start().await;
    let mut opts = with_confirm(CONFIRM_DEPLOYS);
    opts.extra_toml = fake.chat_toml("");
    let b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    fake.post_as(ALICE, GENERAL, "!st2 deploy web to prod");
    let offer = discord_message(&fake, GENERAL, "needs your confirmation").await;
    discord_button(&offer, "Confirm");
    let code = held_code(offer["content"].as_str().unwrap_or_default(), "!st2abort");

    // Typed, not pressed: the offer must not keep buttons that now do nothing.
    fake.post_as(ALICE, GENERAL, &format!("!st2abort {code}"));
    let offer_now = || {
        fake.messages_by(BOT)
            .into_iter()
            .find(|m| m.msg["id"] == offer["id"])
            .expect("the offer")
            .msg
    };
    let spent = eventually!(WAIT, offer_now()["components"] == serde_json::json!([]));
    assert!(spent, "the buttons stayed: {:#}", offer_now());
    let content = offer_now()["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(content.contains("aborted"), "{content}");
    assert!(b.emulator.executions().is_empty());
}

#[actix_rt::test]
async fn after_a_restart_the_approvers_are_those_the_rules_name_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    std::fs::write(&key, "5d".repeat(32)).expect("key file");
    let options = |approvers: &str| {
        let mut o = with_confirm(&APPROVE_PROD.replace("@leads", approvers));
        o.extra_toml.push_str(&format!(
            "[store]\nbackend = \"sqlite\"\npath = \"{}\"\nkey_file = \"{}\"\n",
            dir.path().join("state.db").display(),
            key.display()
        ));
        o
    };
    let mut b = TestBridge::start_with(options("@leads")).await;
    b.wait_ready(200).await;
    b.say("!st2 deploy web to prod").await;
    let code = held_code(
        &b.line_containing("waits for approval").await,
        "!st2approve",
    );
    b.app.stop().await;
    let TestBridge { emulator, .. } = b;
    // The approvers changed while it waited: bob no longer is one, carol is.
    let mut b = TestBridge::start_with_emulator(emulator, options("console:carol")).await;
    b.wait_ready(200).await;
    b.say(&format!("/as bob !st2approve {code}")).await;
    b.line_containing("not one of its approvers").await;
    assert!(b.emulator.executions().is_empty());
    b.say(&format!("/as carol !st2approve {code}")).await;
    b.line_containing("approved by carol").await;
    b.line_containing("Deployment").await;
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn on_mattermost_a_button_offered_before_a_restart_approves_after_it_once() {
    use crate::{fake_mattermost::FakeMattermost, support::WAIT};

    let fake = FakeMattermost::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    std::fs::write(&key, "7e".repeat(32)).expect("key file");
    // Mattermost posts presses to the URL in the button: the bridge keeps its port.
    let port = crate::support::free_port();
    let options = || {
        let mut o = with_test_aliases();
        o.http_toml = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
        o.access_toml = format!(
            "[access]\ndefault = \"allow\"\n[access.groups]\nleads = [\"mm:{}\", \"mm:{}\"]\n{}",
            fake.alice_id, fake.bob_id, APPROVE_PROD
        );
        o.extra_toml = format!(
            "{}[store]\nbackend = \"sqlite\"\npath = \"{}\"\nkey_file = \"{}\"\n",
            fake.chat_toml(&format!("actions_url = \"http://127.0.0.1:{port}\"")),
            dir.path().join("state.db").display(),
            key.display()
        );
        o
    };
    let b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    let offer = approval_offer(&fake).await;
    let actions = offer["props"]["attachments"][0]["actions"].clone();
    assert_eq!(actions[0]["name"], "Approve", "{offer:#}");
    assert_eq!(actions[1]["name"], "Deny", "{offer:#}");
    let post_id = offer["id"].as_str().unwrap_or_default().to_owned();

    // The requester's own press is refused, privately; the buttons stay.
    let (status, answer) = fake.press(&fake.alice_id, &post_id, "answer0").await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["ephemeral_text"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot approve your own command"),
        "{answer}"
    );
    assert!(b.emulator.executions().is_empty());

    // Restarted on the same store: the offer's buttons still carry a valid token.
    b.app.stop().await;
    let TestBridge { emulator, .. } = b;
    let b = TestBridge::start_with_emulator(emulator, options()).await;
    b.wait_ready(200).await;
    let (status, answer) = fake.press(&fake.bob_id, &post_id, "answer0").await;
    assert_eq!(status, 200, "a button from before the restart: {answer}");
    let ran = eventually!(WAIT, b.emulator.executions().len() == 1);
    assert!(ran, "the approved command never reached StackStorm");
    let post = fake.post(&post_id).expect("the offer");
    let message = post["message"].as_str().unwrap_or_default();
    assert!(message.contains("approved by bob"), "{post:#}");
    assert_eq!(
        post["props"],
        serde_json::json!({}),
        "the buttons are spent"
    );
    let deployed = eventually!(
        WAIT,
        !fake
            .bot_posts_containing(&fake.town_square, "Deployment")
            .is_empty()
    );
    assert!(deployed, "no result: {:#?}", fake.bot_posts());
    assert_eq!(b.emulator.executions().len(), 1, "it ran once");
}

#[actix_rt::test]
async fn on_mattermost_a_typed_denial_takes_the_buttons_off_the_offer() {
    use crate::{fake_mattermost::FakeMattermost, support::WAIT};

    let fake = FakeMattermost::start().await;
    let port = crate::support::free_port();
    let mut o = with_test_aliases();
    o.http_toml = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    o.access_toml = format!(
        "[access]\ndefault = \"allow\"\n[access.groups]\nleads = [\"mm:{}\"]\n{APPROVE_PROD}",
        fake.bob_id
    );
    o.extra_toml = fake.chat_toml(&format!("actions_url = \"http://127.0.0.1:{port}\""));
    let b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    let offer = approval_offer(&fake).await;
    assert!(
        offer["props"]["attachments"][0]["actions"].is_array(),
        "{offer:#}"
    );
    let post_id = offer["id"].as_str().unwrap_or_default().to_owned();
    let code = held_code(offer["message"].as_str().unwrap_or_default(), "!st2deny");

    // Typed, not pressed: the offer must not keep buttons that now do nothing.
    fake.post_as(
        &fake.bob_id,
        &fake.town_square,
        &format!("!st2deny {code} not today"),
        "",
    );
    let spent = eventually!(
        WAIT,
        fake.post(&post_id)
            .is_some_and(|p| p["props"] == serde_json::json!({}))
    );
    let post = fake.post(&post_id).expect("the offer");
    assert!(spent, "the buttons stayed: {post:#}");
    let message = post["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("denied by bob") && message.contains("not today"),
        "{post:#}"
    );
    assert!(b.emulator.executions().is_empty());
}
