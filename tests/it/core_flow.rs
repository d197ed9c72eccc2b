//! The core path through the console: command → StackStorm → acknowledgement → result.

use serde_json::json;

use crate::support::{with_test_aliases, TestBridge, WAIT};

async fn ready_bridge() -> TestBridge {
    let b = TestBridge::start_with(with_test_aliases()).await;
    b.wait_ready(200).await;
    b
}

#[actix_rt::test]
async fn command_runs_and_its_result_comes_back_to_the_same_room() {
    let mut b = ready_bridge().await;
    b.say("!st2 run date").await;
    let ack = b.line_containing("Started").await;
    assert!(ack.starts_with("[stormbridge] #ops: "), "{ack}");
    let exec = b.emulator.executions();
    assert_eq!(exec.len(), 1);
    let e = &exec[0];
    assert!(ack.contains(&e.id), "ack names the execution: {ack}");
    assert!(
        ack.contains(&format!("https://st2.test/#/history/{}/general", e.id)),
        "{ack}"
    );
    assert_eq!(e.alias_ref, "core.run_local");
    assert_eq!(e.parameters.get("cmd").map(String::as_str), Some("date"));
    assert_eq!(e.request["name"], "run_local");
    assert_eq!(e.request["format"], "run {{cmd}}");
    assert_eq!(e.request["command"], "run date");
    assert_eq!(
        e.request["user"], "alice",
        "st2 gets the account id, not the display name"
    );
    assert_eq!(e.request["source_channel"], "ops");
    assert_eq!(e.request["notification_route"], "stormbridge");
    let ctx = &e.request["source_context"];
    assert_eq!(ctx["connection"], "console");
    assert_eq!(ctx["room"], "ops");
    assert_eq!(ctx["room_kind"], "group");
    assert_eq!(ctx["user_id"], "alice");
    assert_eq!(e.st2_user, "st2admin");
    let result = b.line_containing(&format!("execution: {}", e.id)).await;
    assert!(result.starts_with("[stormbridge] #ops: "), "{result}");
    assert!(result.contains("succeeded"), "{result}");
}

/// The flow above, over both ways StackStorm frames its answers: close-delimited (behind
/// st2's nginx, every other test) and chunked/sized (st2's services reached directly).
#[actix_rt::test]
async fn commands_and_results_work_with_either_framing() {
    use stormbridge::emulator::Framing;
    for framing in [Framing::Nginx, Framing::Direct] {
        let mut opts = with_test_aliases();
        opts.emulator.framing = framing;
        let mut b = TestBridge::start_with(opts).await;
        b.wait_ready(200).await;
        b.say("!st2 run date").await;
        b.line_containing("Started").await;
        let id = b.emulator.executions()[0].id.clone();
        let result = b.line_containing(&format!("execution: {id}")).await;
        assert!(result.contains("succeeded"), "{framing:?}: {result}");
        b.say("!st2help").await;
        b.line_containing("run {{cmd}} — run_local description")
            .await;
        assert_eq!(
            b.metric("stormbridge_results_delivered_total{source=\"stream\"}")
                .await,
            1.0,
            "{framing:?}"
        );
    }
}

#[actix_rt::test]
async fn the_most_specific_alias_wins_and_ties_are_asked_not_guessed() {
    let mut b = ready_bridge().await;
    b.say("!st2 run uptime on web1").await;
    b.line_containing("Started").await;
    let e = &b.emulator.executions()[0];
    assert_eq!(e.alias_ref, "core.run_remote");
    assert_eq!(e.parameters.get("hosts").map(String::as_str), Some("web1"));

    b.say("!st2 restart nginx").await;
    let reply = b.line_containing("more than one").await;
    assert!(
        reply.contains("a.restart_a") && reply.contains("b.restart_b"),
        "{reply}"
    );
    assert_eq!(
        b.emulator.executions().len(),
        1,
        "nothing ran for the ambiguous command"
    );
}

#[actix_rt::test]
async fn ack_variants_follow_the_alias() {
    let mut b = ready_bridge().await;
    // ack.format: st2's rendered message, and append_url false.
    b.say("!st2 deploy web to prod").await;
    let ack = b.line_containing("Deployment").await;
    let id = b.emulator.executions()[0].id.clone();
    assert!(ack.contains(&format!("Deployment {id} queued")), "{ack}");
    assert!(!ack.contains("https://"), "{ack}");
    assert_eq!(
        b.emulator.executions()[0]
            .parameters
            .get("env")
            .map(String::as_str),
        Some("prod")
    );
    b.line_containing(&format!("execution: {id}")).await;

    // append_url false on the fallback line.
    b.say("!st2 nolink ls").await;
    let ack = b.line_containing("Started `nolink ls`").await;
    assert!(!ack.contains("https://"), "{ack}");
    let id = b.emulator.executions()[1].id.clone();
    b.line_containing(&format!("execution: {id}")).await;

    // ack.enabled false: no acknowledgement, the result still arrives and comes first.
    b.say("!st2 quiet ls").await;
    assert!(eventually!(WAIT, b.emulator.executions().len() == 3));
    let id = b.emulator.executions()[2].id.clone();
    let next = b.next_line().await;
    assert!(
        next.contains(&format!("execution: {id}")),
        "expected the result, got {next}"
    );
}

#[actix_rt::test]
async fn ack_is_delivered_before_a_result_that_beats_the_http_response() {
    let mut b = ready_bridge().await;
    b.emulator.set_announce_before_response(true);
    for i in 0..5 {
        b.say(&format!("!st2 run echo {i}")).await;
        let first = b.next_line().await;
        assert!(
            first.contains("Started"),
            "ack must come first, got {first}"
        );
        let second = b.next_line().await;
        assert!(
            second.contains("execution: "),
            "then the result, got {second}"
        );
    }
}

#[actix_rt::test]
async fn help_is_grouped_by_pack_paginated_and_filterable() {
    let mut b = ready_bridge().await;
    b.say("!st2help").await;
    let help = b.line_containing("[core]").await;
    assert!(
        help.contains("!st2 run {{cmd}} — run_local description"),
        "{help}"
    );
    assert!(
        help.contains("[ops]") && help.contains("deploy <app> [to <env>]"),
        "{help}"
    );
    assert!(help.contains("of 8"), "{help}");

    b.say("!st2help --pack ops").await;
    let help = b.line_containing("[ops]").await;
    assert!(!help.contains("[core]"), "{help}");

    b.say("!st2help RUN").await;
    let help = b.line_containing("Showing").await;
    assert!(
        help.contains("run {{cmd}} on {{hosts}}") && !help.contains("deploy"),
        "{help}"
    );

    // Filters are words, never regular expressions: a pattern that would backtrack for
    // minutes over the alias displays is plain text that occurs nowhere, and `.*` is too.
    b.say(&format!("!st2help ({})+$", "r?".repeat(40))).await;
    let reply = b.line_containing("No commands found").await;
    assert!(reply.contains("r?r?r?"), "{reply}");
    b.say("!st2help .*").await;
    b.line_containing("No commands found for `.*`").await;
    b.say("!st2help run hosts").await;
    let help = b.line_containing("Showing").await;
    assert!(
        help.contains("Showing 1–1 of 1"),
        "every word must occur: {help}"
    );

    b.say("!st2help --limit 3").await;
    let help = b.line_containing("Showing").await;
    assert!(help.contains("Showing 1–3 of 8"), "{help}");
    assert!(help.contains("!st2help --limit 3 --offset 3"), "{help}");

    b.say("!st2help --limit lots").await;
    let reply = b.line_containing("--limit").await;
    assert!(reply.contains("whole number"), "{reply}");
    assert!(b.emulator.executions().is_empty());
}

#[actix_rt::test]
async fn unknown_commands_get_suggestions_and_never_reach_st2() {
    let mut b = ready_bridge().await;
    b.say("!st2 deploi web").await;
    let reply = b.line_containing("No StackStorm command matches").await;
    assert!(reply.contains("deploi web"), "{reply}");
    assert!(reply.contains("!st2help"), "{reply}");
    b.say("!st2frobnicate").await;
    let reply = b.line_containing("I don't know").await;
    assert!(reply.contains("!st2frobnicate"), "{reply}");
    b.say("just chatting in the room").await;
    b.say("!st2 run true").await;
    let next = b.next_line().await;
    assert!(
        next.contains("Started"),
        "room chatter got no reply; next was {next}"
    );
    assert_eq!(b.emulator.executions().len(), 1);
}

#[actix_rt::test]
async fn direct_messages_and_mentions_need_no_bot_prefix() {
    let mut b = ready_bridge().await;
    b.say("/dm st2 run whoami").await;
    let ack = b.line_containing("Started").await;
    assert!(ack.starts_with("[stormbridge] @alice (dm): "), "{ack}");
    let e = b.emulator.executions()[0].clone();
    assert_eq!(e.request["source_context"]["room_kind"], "direct");
    let result = b.line_containing(&format!("execution: {}", e.id)).await;
    assert!(
        result.starts_with("[stormbridge] @alice (dm): "),
        "{result}"
    );

    b.say("@stormbridge st2 run hostname").await;
    let ack = b.line_containing("Started `run hostname`").await;
    assert!(ack.starts_with("[stormbridge] #ops: "), "{ack}");
}

#[actix_rt::test]
async fn st2_errors_are_explained_in_plain_words() {
    let mut b = ready_bridge().await;
    b.emulator
        .fail_next_execution(400, "Immutable arguments cannot be overriden: hosts");
    b.say("!st2 run date").await;
    let reply = b.line_containing("Sorry").await;
    assert!(
        reply.contains(
            "StackStorm did not accept the command: Immutable arguments cannot be overriden: hosts"
        ),
        "{reply}"
    );
    b.emulator.fail_next_execution(500, "Internal Server Error");
    b.say("!st2 run date").await;
    let reply = b.line_containing("Sorry").await;
    assert!(reply.contains("internal error"), "{reply}");
    assert!(!reply.contains("faultstring"), "{reply}");
}

#[actix_rt::test]
async fn a_401_mid_run_logs_in_again_and_retries_once() {
    let mut b = ready_bridge().await;
    let logins = b.emulator.login_count();
    b.emulator.revoke_all_tokens();
    b.say("!st2 run date").await;
    let ack = b.line_containing("Started").await;
    assert_eq!(b.emulator.executions().len(), 1, "retried once, run once");
    // No 401 in the answer (the execution's random hex id may hold those digits).
    let id = b.emulator.executions()[0].id.clone();
    assert!(!ack.replace(&id, "").contains("401"), "{ack}");
    // The command's 401 logs in again; the event stream, holding the same revoked token,
    // may meet its own 401 later and log in once more.
    let again = b.emulator.login_count() - logins;
    assert!(
        (1..=2).contains(&again),
        "{again} logins after the revocation"
    );
    b.line_containing(&format!("execution: {id}")).await;
}

#[actix_rt::test]
async fn announcements_keep_threads_whispers_and_are_split_to_the_limit() {
    let mut opts = with_test_aliases();
    opts.console_toml = "max_message_length = 40".into();
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let context = json!({"bridge": "stormbridge", "connection": "console", "room": "ops",
        "room_kind": "group", "thread": "t-42", "message_id": "m1", "user_id": "alice", "request_id": "r-1"});
    b.emulator.announce(
        "stormbridge",
        json!({"message": "in the thread", "channel": "ops", "user": "alice", "whisper": false, "context": context}),
    );
    let line = b.line_containing("in the thread").await;
    assert!(
        line.starts_with("[stormbridge] #ops (thread t-42): "),
        "{line}"
    );

    b.emulator.announce(
        "stormbridge",
        json!({"message": "for your eyes only", "channel": "ops", "user": "alice", "whisper": true}),
    );
    let line = b.line_containing("for your eyes only").await;
    assert!(line.starts_with("[stormbridge] @alice (dm): "), "{line}");

    let long: String = (0..12).map(|i| format!("word{i:02} ")).collect();
    b.emulator.announce(
        "stormbridge",
        json!({"message": long.trim(), "channel": "ops"}),
    );
    let mut text = String::new();
    while !text.contains("word11") {
        let line = b.next_line().await;
        let part = line
            .strip_prefix("[stormbridge] #ops: ")
            .expect("room line");
        assert!(
            part.chars().count() <= 40,
            "part longer than the limit: {part:?}"
        );
        text.push_str(part);
    }
    for i in 0..12 {
        assert!(text.contains(&format!("word{i:02}")), "{text}");
    }
}

#[actix_rt::test]
async fn metrics_count_what_happened() {
    let mut b = ready_bridge().await;
    b.say("!st2 run date").await;
    let id = {
        b.line_containing("Started").await;
        b.emulator.executions()[0].id.clone()
    };
    b.line_containing(&format!("execution: {id}")).await;
    b.say("!st2 nothing matches this").await;
    b.line_containing("No StackStorm command").await;
    assert_eq!(
        b.metric("stormbridge_commands_total{outcome=\"executed\"}")
            .await,
        1.0
    );
    assert_eq!(
        b.metric("stormbridge_commands_total{outcome=\"no_match\"}")
            .await,
        1.0
    );
    assert_eq!(
        b.metric("stormbridge_announcements_delivered_total").await,
        1.0
    );
    assert_eq!(b.metric("stormbridge_aliases").await, 8.0);
    assert_eq!(
        b.metric("stormbridge_connection_up{connection=\"console\"}")
            .await,
        1.0
    );
    let (_, body) = b.get("/metrics").await;
    assert!(
        body.contains("stormbridge_st2_request_seconds_bucket{le=")
            || body.contains("stormbridge_st2_request_seconds_bucket{endpoint="),
        "{body}"
    );
}

#[actix_rt::test]
async fn the_configured_web_url_wins_over_the_one_stackstorm_builds() {
    // StackStorm builds each execution's `web_url` from its own host name (here the
    // emulator's `https://st2.test`); operators configure the address people can reach.
    let opts = with_test_aliases();
    let emulator = stormbridge::emulator::Emulator::start(opts.emulator.clone())
        .await
        .expect("emulator");
    let mut settings = crate::support::settings_for(&emulator, &opts);
    settings.st2.web_url = Some("https://stackstorm.example.org".into());
    let mut b = TestBridge::start_with_settings(emulator, settings).await;
    b.wait_ready(200).await;
    b.say("!st2 run date").await;
    let ack = b.line_containing("Started").await;
    let id = b.emulator.executions()[0].id.clone();
    assert!(
        ack.contains(&format!(
            "https://stackstorm.example.org/#/history/{id}/general"
        )),
        "{ack}"
    );
    assert!(!ack.contains("st2.test"), "{ack}");
}

#[actix_rt::test]
async fn stackstorm_can_be_told_display_names_and_whispers_still_reach_the_account() {
    let opts = with_test_aliases();
    let emulator = stormbridge::emulator::Emulator::start(opts.emulator.clone())
        .await
        .expect("emulator");
    let mut settings = crate::support::settings_for(&emulator, &opts);
    settings.bot.st2_user = stormbridge::config::St2UserField::Name;
    let mut b = TestBridge::start_with_settings(emulator, settings).await;
    b.wait_ready(200).await;
    b.say("!st2 fire date").await;
    b.line_containing("Started").await;
    let e = b.emulator.executions()[0].clone();
    assert_eq!(
        e.request["user"], "Alice",
        "the display name, as configured"
    );
    assert_eq!(e.request["source_context"]["user_id"], "alice");
    // A whisper StackStorm addresses to that name reaches the account that ran the command.
    b.emulator.announce(
        "stormbridge",
        json!({"message": "just for you", "channel": "ops", "user": "Alice", "whisper": true,
               "context": e.request["source_context"]}),
    );
    let line = b.line_containing("just for you").await;
    assert!(line.starts_with("[stormbridge] @alice (dm)"), "{line}");
}

#[actix_rt::test]
async fn a_match_multiple_alias_runs_once_per_match_and_every_result_comes_back() {
    // st2's own fixture: `match_multiple` finds every "duplicate of KEY" in the command.
    let mut opts = with_test_aliases();
    opts.emulator.aliases.push(json!({
        "id": "jiradup", "name": "dup", "pack": "jira", "ref": "jira.dup",
        "action_ref": "jira.mark_duplicate", "enabled": true,
        "formats": [{"display": "duplicate of <issue_key>", "match_multiple": true,
            "representation": [r"(?:\b|^)duplicate of (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?:\b|$)"]}]
    }));
    opts.emulator.actions.push(json!({
        "pack": "jira", "name": "mark_duplicate", "runner_type": "python-script",
        "parameters": {"issue_key": {"type": "string", "required": true}}
    }));
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b.say("!st2 X-1 is a duplicate of AB-2 and a duplicate of CD-3")
        .await;
    let ack = b.line_containing("Started 2 executions").await;
    let executions = b.emulator.executions();
    assert_eq!(executions.len(), 2, "{executions:?}");
    let keys: Vec<&str> = executions
        .iter()
        .map(|e| e.parameters.get("issue_key").map_or("", String::as_str))
        .collect();
    assert_eq!(keys, ["AB-2", "CD-3"]);
    for e in &executions {
        assert!(ack.contains(&e.id), "{ack}");
        b.line_containing(&format!("execution: {}", e.id)).await;
    }
    // Each execution carries its own context: the two results are told apart.
    assert_ne!(
        executions[0].request["source_context"]["request_id"],
        executions[1].request["source_context"]["request_id"]
    );
}

#[actix_rt::test]
async fn a_match_multiple_alias_whose_match_does_not_stand_alone_is_refused_with_the_reason() {
    // Each key is found only when " is a duplicate" follows it (a lookahead): sent on its
    // own, as one `aliasexecution` per match must send it, a match no longer matches, so
    // StackStorm would not run what the person asked for.
    let mut opts = with_test_aliases();
    opts.emulator.aliases.push(json!({
        "id": "jiradup2", "name": "dup_of", "pack": "jira", "ref": "jira.dup_of",
        "action_ref": "jira.mark_duplicate", "enabled": true,
        "formats": [{"display": "<issue_key> is a duplicate", "match_multiple": true,
            "representation": [r"(?:\b|^)(?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?= is a duplicate)(?:\b|$)"]}]
    }));
    opts.emulator.actions.push(json!({
        "pack": "jira", "name": "mark_duplicate", "runner_type": "python-script",
        "parameters": {"issue_key": {"type": "string", "required": true}}
    }));
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b.say("!st2 AB-2 is a duplicate and CD-3 is a duplicate")
        .await;
    let reply = b.line_containing("couldn't run").await;
    assert!(
        reply.contains("the match `AB-2` does not parse the same on its own")
            && reply.contains("send them as separate commands"),
        "{reply}"
    );
    assert!(b.emulator.executions().is_empty(), "nothing was run");
}
