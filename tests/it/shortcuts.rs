//! Personal aliases and the trigger API (issue 17): a user's own shortcuts, expanded
//! before matching and judged by the access rules on what they expand to; tokens made in a
//! direct chat that run one command over HTTP as their user, checked at call time, until
//! revoked.

use serde_json::{json, Value};

use crate::support::{with_test_aliases, Options, TestBridge, WAIT};

/// Deploys are for admins (alice) only.
fn options() -> Options {
    let mut o = with_test_aliases();
    o.access_toml.push_str(
        "[[access.rules]]\naliases = [\"ops.deploy\"]\nusers = [\"admins\"]\naction = \"allow\"\n\
         [[access.rules]]\naliases = [\"ops.deploy\"]\naction = \"deny\"\n",
    );
    o
}

#[actix_rt::test]
async fn personal_aliases_expand_for_their_owner_only_and_pass_the_rules() {
    let mut b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    b.say("!st2alias d run date").await;
    b.line_containing("Saved: `!st2 d` now runs `run date`")
        .await;
    b.say("!st2 d").await;
    b.line_containing("Started `run date`").await;
    assert_eq!(b.emulator.executions()[0].request["command"], "run date");
    // Words after the name are added at the end; the name is not case-sensitive.
    b.say("!st2alias DEP deploy").await;
    b.line_containing("Saved: `!st2 dep`").await;
    b.say("!st2 Dep web to prod").await;
    b.line_containing("Deployment").await;
    assert_eq!(
        b.emulator.executions()[1].request["command"],
        "deploy web to prod"
    );

    // Bob has no such aliases; his own expand to what the rules judge.
    b.say("/as bob !st2 d").await;
    b.line_containing("No StackStorm command matches `d`").await;
    b.say("/as bob !st2alias dep deploy").await;
    b.line_containing("Saved: `!st2 dep`").await;
    b.say("/as bob !st2 dep web to prod").await;
    b.line_containing("Access control does not allow").await;
    assert_eq!(b.emulator.executions().len(), 2, "bob's deploy never ran");

    // Built-in words are not names; a list and a removal.
    b.say("!st2alias jobs run date").await;
    b.line_containing("`jobs` is a built-in command word").await;
    b.say("!st2alias 1x run date").await;
    b.line_containing("start with a letter").await;
    b.say("!st2aliases").await;
    let list = b.line_containing("Your aliases:").await;
    assert!(
        list.contains("`d` → `run date`") && list.contains("`dep` → `deploy`"),
        "{list}"
    );
    b.say("!st2unalias d").await;
    b.line_containing("Removed your alias `d`").await;
    b.say("!st2unalias d").await;
    b.line_containing("You have no alias `d`").await;
}

/// One trigger call.
async fn trigger(b: &TestBridge, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://{}/api/v1/trigger", b.app.http_addr);
    let mut req = b.http.post(url).timeout(WAIT);
    if let Some(token) = token {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let sent = match body {
        Some(body) => req.send_json(&body).await,
        None => req.send().await,
    };
    let mut resp = sent.expect("http request");
    let body = resp.body().limit(1 << 20).await.expect("http body");
    (
        resp.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The token in a "created" reply.
async fn created_token(b: &mut TestBridge) -> String {
    let line = b.line_containing("Trigger token `").await;
    let token = line
        .split_whitespace()
        .find(|w| w.starts_with("sbt_"))
        .expect("a token")
        .to_owned();
    assert!(token.len() > 40, "{token}");
    token
}

#[actix_rt::test]
async fn a_trigger_token_runs_its_command_until_revoked() {
    let mut b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    // Made in a direct chat only.
    b.say("!st2token create run date").await;
    b.line_containing("made in a direct chat").await;
    b.say("/dm !st2token create frobnicate the widgets").await;
    b.line_containing("matches no single command").await;
    b.say("/dm !st2token create").await;
    b.line_containing("Use `!st2token create").await;
    b.say("/dm !st2token create run date").await;
    let token = created_token(&mut b).await;
    assert!(
        !crate::support::captured_logs().contains(&token),
        "a token is never logged"
    );

    // Called: it runs as alice, in her direct chat, with the words the caller adds.
    let (status, body) = trigger(&b, Some(&token), Some(json!({"text": "-u"}))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    b.line_containing("Started `run date -u`").await;
    let runs = b.emulator.executions();
    let run = runs.last().expect("an execution");
    assert_eq!(run.request["user"], "alice");
    assert_eq!(run.request["source_channel"], "alice");

    // Missing, wrong and malformed tokens: 401, the same each time.
    for bad in [None, Some("sbt_aaaaaaaa_nope"), Some("hello")] {
        let (status, body) = trigger(&b, bad, None).await;
        assert_eq!(status, 401, "{bad:?}: {body}");
    }
    let wrong = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(trigger(&b, Some(&wrong), None).await.0, 401);

    // Listed, revoked, refused afterwards.
    b.say("!st2tokens").await;
    let list = b.line_containing("Your trigger tokens:").await;
    let line = list
        .lines()
        .find(|l| l.contains("`run date`"))
        .unwrap_or_else(|| panic!("{list}"));
    let id = line.split('`').nth(1).expect("an id").to_owned();
    assert!(line.contains("used 1 times"), "{line}");
    b.say(&format!("/as bob !st2token revoke {id}")).await;
    b.line_containing(&format!("There is no trigger token `{id}`"))
        .await;
    b.say(&format!("!st2token revoke {id}")).await;
    b.line_containing("is revoked").await;
    let (status, _) = trigger(&b, Some(&token), None).await;
    assert_eq!(status, 401);
}

#[actix_rt::test]
async fn a_trigger_is_judged_when_called_and_refusals_are_said_in_the_room() {
    let mut b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    // Bob may make a token for a deploy (made is not run) …
    b.say("/as bob /dm !st2token create deploy web to prod")
        .await;
    let token = created_token(&mut b).await;
    // … but calling it is refused by the rules, visibly in his chat.
    let (status, body) = trigger(&b, Some(&token), None).await;
    assert_eq!(status, 403, "{body}");
    b.line_containing("Access control does not allow").await;
    assert!(b.emulator.executions().is_empty());
    let (status, body) = trigger(&b, Some(&token), Some(json!({"text": 5}))).await;
    assert_eq!(status, 400, "{body}");
    // The alias is removed from StackStorm: 404, and the chat is told.
    let without_deploy: Vec<Value> = crate::support::test_aliases()
        .into_iter()
        .filter(|a| a["ref"] != "ops.deploy")
        .collect();
    b.emulator.set_aliases(without_deploy);
    b.say("!st2reload").await;
    b.line_containing("Reloaded the command list").await;
    let (status, body) = trigger(&b, Some(&token), None).await;
    assert_eq!(status, 404, "{body}");
    b.line_containing("No StackStorm command matches `deploy web to prod`")
        .await;
    assert!(b.emulator.executions().is_empty());
}

#[actix_rt::test]
async fn replies_speak_in_the_teams_words_or_not_at_all() {
    let mut o = options();
    o.extra_toml.push_str(
        r#"
[replies.ack]
messages = ["On it: `{{command}}` (job #{{job_id}})"]
[replies.unknown]
style = "off"
[replies.unauthorised]
messages = ["Nope: {{command}}. {{default}}"]
"#,
    );
    let mut b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    b.say("!st2 run date").await;
    b.line_containing("On it: `run date` (job #1)").await;
    // No reply for an unknown command: the next message is the answer to the next command.
    b.say("!st2 frobnicate the widgets").await;
    b.say("/as bob !st2 deploy web to prod").await;
    let next = b.next_line().await;
    let next = if next.contains("execution: ") {
        b.next_line().await
    } else {
        next
    };
    assert!(
        next.contains("Nope: deploy web to prod. Access control does not allow"),
        "{next}"
    );
}

#[actix_rt::test]
async fn a_token_called_too_often_is_told_when_to_come_back() {
    use stormbridge::http::trigger::CALLS_PER_MINUTE;
    let mut b = TestBridge::start_with(options()).await;
    b.wait_ready(200).await;
    // A token whose calls the rules refuse: refused calls count too (the limit guards the
    // bridge and the room, not StackStorm alone), and nothing runs meanwhile.
    b.say("/as bob /dm !st2token create deploy web to prod")
        .await;
    let token = created_token(&mut b).await;
    for call in 0..CALLS_PER_MINUTE {
        let (status, body) = trigger(&b, Some(&token), None).await;
        assert_eq!(status, 403, "call {call}: {body}");
    }
    let url = format!("http://{}/api/v1/trigger", b.app.http_addr);
    let mut resp = b
        .http
        .post(url)
        .timeout(WAIT)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("http request");
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = resp.json().await.expect("a JSON body");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("more than {CALLS_PER_MINUTE} times in a minute")),
        "{body}"
    );
    assert!(!error.contains(&token[13..]), "the secret is never echoed");
    assert!(b.emulator.executions().is_empty());
    // Another token of the same user is not held back by this one's calls.
    b.say("/dm !st2token create run date").await;
    let other = created_token(&mut b).await;
    assert_eq!(trigger(&b, Some(&other), None).await.0, 202);
}

#[actix_rt::test]
async fn a_trigger_is_judged_in_the_workspace_it_was_made_in() {
    use crate::slack::fake::{text_of, FakeSlack, TEAM};
    let slack = FakeSlack::start().await;
    let mut o = with_test_aliases();
    o.extra_toml = slack.socket_toml();
    // Shell commands are not for this workspace: a deny scoped by `orgs`.
    o.access_toml.push_str(&format!(
        "[[access.rules]]\naliases = [\"core.*\"]\norgs = [\"{TEAM}\"]\naction = \"deny\"\n"
    ));
    let b = TestBridge::start_with(o).await;
    b.wait_ready(200).await;
    slack
        .push(slack.message_event("D0ALICE", "U0ALICE", "!st2 run date", None))
        .await;
    slack.post_containing("Access control does not allow").await;
    slack
        .push(slack.message_event("D0ALICE", "U0ALICE", "!st2token create run date", None))
        .await;
    let created = text_of(&slack.post_containing("Trigger token `").await);
    let at = created.find("sbt_").expect("a token");
    let token: String = created[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    // Called over HTTP, it is judged in the workspace it was made in, as the chat is: no
    // more permissive than typing it.
    let (status, body) = trigger(&b, Some(&token), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(b.emulator.executions().is_empty(), "nothing ran");
}
