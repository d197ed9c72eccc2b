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
        vec![
            "st2.actionalias__*",
            "st2.announcement__chatops",
            "st2.announcement__stormbridge"
        ],
        "its own route, the chatops route (chatops.post_message), alias changes"
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
async fn heartbeats_on_an_idle_bus_keep_the_stream_without_replacing_it() {
    // Heartbeat every 1 s, idle refresh after 3 s of silence (see support::settings_for);
    // nothing else happens on StackStorm's bus, so st2stream sends its heartbeats.
    let mut opts = with_test_aliases();
    opts.emulator.background_interval = None;
    let b = ready_bridge(opts).await;
    let connected_at = std::time::Instant::now();
    assert!(eventually!(
        Duration::from_secs(8),
        connected_at.elapsed() > Duration::from_secs(5)
    ));
    assert_eq!(
        b.emulator.stream_connects_total(),
        1,
        "heartbeats alone must not cause a replacement"
    );
    assert_eq!(b.metric("stormbridge_stream_refreshes_total").await, 0.0);
    assert_eq!(b.actor("stream_consumer").await["restarts"], 0);
}

#[actix_rt::test]
async fn a_silent_stream_is_replaced_only_by_one_stackstorm_greets() {
    let mut b = ready_bridge(with_test_aliases()).await;
    // Open, but nothing at all arrives: no greeting on new connections either.
    b.emulator.stall_streams(true);
    assert!(eventually!(
        Duration::from_secs(15),
        b.emulator.stream_connects_total() >= 2
    ));
    // The replacement was never greeted: the old connection was kept, no gap reported.
    assert!(eventually!(
        Duration::from_secs(15),
        b.emulator.stream_connections() == 1
    ));
    assert_eq!(b.metric("stormbridge_stream_refreshes_total").await, 0.0);
    b.emulator.stall_streams(false);
    // Once StackStorm talks again, a replacement is greeted and takes over; results flow
    // and each arrives once.
    assert!(eventually!(
        Duration::from_secs(20),
        b.metric("stormbridge_stream_refreshes_total").await >= 1.0
    ));
    b.emulator.announce(
        "stormbridge",
        json!({"message": "alive again", "channel": "ops"}),
    );
    b.line_containing("alive again").await;
    assert!(
        b.next_line_within(Duration::from_millis(500))
            .await
            .is_none(),
        "posted once: {:?}",
        b.seen
    );
    // `/actors` shows when the stream last carried an event.
    assert!(eventually!(
        WAIT,
        b.actor("stream_consumer").await["details"]["last_event"].is_string()
    ));
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
        "enabled": true, "formats": ["greet {{cmd}}"], "description": "say hello"}),
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

#[actix_rt::test]
async fn a_result_announced_while_the_stream_was_away_is_posted_once_with_stackstorms_text() {
    let mut b = ready_bridge(with_test_aliases()).await;
    // st2stream goes down behind nginx; the API stays up.
    b.emulator.set_stream_service(false);
    assert!(eventually!(WAIT, b.emulator.stream_connections() == 0));
    b.say("!st2 run uname -a").await;
    b.line_containing("Started").await;
    let id = b.emulator.executions()[0].id.clone();
    // StackStorm announced the result to nobody.
    assert!(eventually!(WAIT, !b.emulator.announcements().is_empty()));
    let (event, data) = b.emulator.announcements()[0].clone();
    assert_eq!(event, "st2.announcement__stormbridge");
    let announced = data["payload"]["message"]
        .as_str()
        .expect("announced text")
        .to_owned();
    assert!(announced.contains(&id), "{announced}");
    b.emulator.set_stream_service(true);
    // Once the stream is back, the bridge asks StackStorm and posts the very same text.
    let posted = b.line_containing(&format!("execution: {id}")).await;
    assert_eq!(
        posted,
        format!("[stormbridge] #ops: Alice: {announced}"),
        "the text the chatops pack rendered, addressed to who ran it"
    );
    assert_eq!(
        b.metric("stormbridge_results_delivered_total{source=\"reconciliation\"}")
            .await,
        1.0
    );
    // It never comes a second time.
    assert!(b.next_line_within(Duration::from_secs(2)).await.is_none());
}

#[actix_rt::test]
async fn announcements_on_the_shared_chatops_route_answer_their_own_bot_only() {
    let mut b = ready_bridge(with_test_aliases()).await;
    // st2chatops's command result: hubot's context, on the route both bots hear.
    b.emulator.announce(
        "chatops",
        json!({"message": "hubot's result", "channel": "ops", "user": "bob",
               "context": {"user": "bob", "room": "ops", "id": "1700000000.000300"}}),
    );
    // A workflow's chatops.post_message: no context at all.
    b.emulator.announce(
        "chatops",
        json!({"message": "deploy finished", "channel": "ops"}),
    );
    let line = b.line_containing("deploy finished").await;
    assert!(line.starts_with("[stormbridge] #ops: "), "{line}");
    assert!(
        b.seen.iter().all(|l| !l.contains("hubot's result")),
        "left to st2chatops: {:?}",
        b.seen
    );
    assert_eq!(
        b.metric("stormbridge_announcements_ignored_total{reason=\"other_bot\"}")
            .await,
        1.0
    );
}

#[actix_rt::test]
async fn a_result_the_alias_keeps_silent_stays_silent_after_a_gap() {
    let mut b = ready_bridge(with_test_aliases()).await;
    b.emulator.set_stream_service(false);
    assert!(eventually!(WAIT, b.emulator.stream_connections() == 0));
    // `fire` aliases have `result.enabled: false`: StackStorm posts nothing for them.
    b.say("!st2 fire date").await;
    b.line_containing("Started").await;
    b.emulator.set_stream_service(true);
    assert!(eventually!(WAIT, b.emulator.stream_connections() == 1));
    // The bridge looked it up after the gap and settled it without a word.
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_results_pending").await == 0.0
    ));
    assert!(
        b.next_line_within(Duration::from_secs(1)).await.is_none(),
        "{:?}",
        b.seen
    );
    assert_eq!(
        b.metric("stormbridge_results_delivered_total{source=\"reconciliation\"}")
            .await,
        0.0
    );
}

#[actix_rt::test]
async fn a_malformed_alias_list_keeps_the_last_good_one() {
    let mut b = ready_bridge(with_test_aliases()).await;
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_aliases").await == 8.0
    ));
    for broken in [
        "null",
        r#"{"faultstring": "Internal Server Error"}"#,
        "<html>502</html>",
    ] {
        b.emulator.set_alias_list_body(Some(broken));
        // An alias change on the stream makes the bridge reload.
        b.emulator.send_raw_event("st2.actionalias__update", "{}");
        assert!(
            eventually!(WAIT, {
                let cache = b.actor("alias_cache").await;
                cache["state"] == "degraded"
                    && cache["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("keeping the aliases loaded before"))
            }),
            "{broken}: {}",
            b.actor("alias_cache").await
        );
        assert_eq!(b.metric("stormbridge_aliases").await, 8.0, "{broken}");
        b.say("!st2 run date").await;
        b.line_containing("Started `run date`").await;
        b.emulator.set_alias_list_body(None);
        b.emulator.send_raw_event("st2.actionalias__update", "{}");
        assert!(eventually!(
            WAIT,
            b.actor("alias_cache").await["state"] == "up"
        ));
    }
}

#[actix_rt::test]
async fn an_admin_reloads_the_alias_list_on_demand() {
    let mut b = ready_bridge(with_test_aliases()).await;
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_aliases").await == 8.0
    ));
    // StackStorm's list changes without an event reaching the bridge.
    let mut list = crate::support::test_aliases();
    list.push(
        json!({"name": "greet", "pack": "hello", "ref": "hello.greet",
        "action_ref": "core.local", "enabled": true, "formats": ["greet {{cmd}}"]}),
    );
    b.emulator
        .set_alias_list_body(Some(&serde_json::Value::Array(list).to_string()));
    b.say("!st2reload").await;
    let reply = b.line_containing("Reloaded the command list").await;
    assert!(reply.contains("9 aliases"), "{reply}");
    assert_eq!(b.metric("stormbridge_aliases").await, 9.0);
}

#[actix_rt::test]
async fn a_command_for_an_alias_stackstorm_renamed_reloads_and_runs_the_new_one() {
    let mut opts = with_test_aliases();
    opts.emulator.aliases.push(
        json!({"name": "greet", "pack": "hello", "ref": "hello.greet",
        "action_ref": "core.local", "enabled": true, "formats": ["greet {{cmd}}"]}),
    );
    let mut b = ready_bridge(opts).await;
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_aliases").await == 9.0
    ));
    // Renamed in StackStorm while the bridge heard nothing (its stream stalled).
    b.emulator.stall_streams(true);
    let mut list = crate::support::test_aliases();
    list.push(
        json!({"name": "greet2", "pack": "hello", "ref": "hello.greet2",
        "action_ref": "core.local", "enabled": true, "formats": ["greet {{cmd}}"]}),
    );
    b.emulator.set_aliases(list);
    b.emulator.stall_streams(false);
    b.say("!st2 greet world").await;
    // StackStorm refuses the old name; the bridge reloads and runs the alias as it is now.
    b.line_containing("Started `greet world`").await;
    let executions = b.emulator.executions();
    assert_eq!(executions.len(), 1, "{executions:?}");
    assert_eq!(executions[0].alias_ref, "hello.greet2");
    assert!(
        b.seen.iter().all(|l| !l.contains("Sorry")),
        "no error shown: {:?}",
        b.seen
    );
}

/// `greet {{cmd}}` of pack `hello`, the way `with_test_aliases` has none.
fn greet(format: &str) -> serde_json::Value {
    json!({"name": "greet", "pack": "hello", "ref": "hello.greet",
    "action_ref": "core.local", "enabled": true, "formats": [format]})
}

const ALIAS_EXECUTIONS: &str =
    r#"stormbridge_st2_request_seconds_count{endpoint="aliasexecution"}"#;

/// A bridge with `greet {{cmd}}` loaded, whose stream StackStorm then stops serving (so no
/// alias change reaches it), and StackStorm's aliases with `greet` in `format` instead.
async fn greet_changed_unheard(format: &str) -> TestBridge {
    let mut opts = with_test_aliases();
    opts.emulator.aliases.push(greet("greet {{cmd}}"));
    let b = ready_bridge(opts).await;
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_aliases").await == 9.0
    ));
    b.emulator.set_stream_service(false);
    assert!(eventually!(WAIT, b.emulator.stream_connections() == 0));
    let mut list = crate::support::test_aliases();
    list.push(greet(format));
    b.emulator.set_aliases(list);
    b
}

#[actix_rt::test]
async fn a_format_stackstorm_no_longer_knows_reloads_the_list_and_runs_once() {
    // Same alias, its format given a default: StackStorm refuses the old format (400).
    let mut b = greet_changed_unheard("greet {{cmd=everyone}}").await;
    b.say("!st2 greet world").await;
    b.line_containing("Started `greet world`").await;
    let executions = b.emulator.executions();
    assert_eq!(executions.len(), 1, "{executions:?}");
    assert_eq!(executions[0].alias_ref, "hello.greet");
    assert_eq!(executions[0].request["format"], "greet {{cmd=everyone}}");
    // Refused once with the old format, then sent once with the new one.
    assert_eq!(b.metric(ALIAS_EXECUTIONS).await, 2.0);
    assert!(
        b.seen.iter().all(|l| !l.contains("Sorry")),
        "no error shown: {:?}",
        b.seen
    );
}

#[actix_rt::test]
async fn a_format_still_unknown_after_the_reload_is_retried_once_and_explained() {
    let mut b = greet_changed_unheard("greet {{cmd=everyone}}").await;
    // The list the bridge reads still has the old format (an out-of-date copy served in
    // front of st2api): the retry is refused as well.
    let mut stale = crate::support::test_aliases();
    stale.push(greet("greet {{cmd}}"));
    b.emulator
        .set_alias_list_body(Some(&serde_json::Value::Array(stale).to_string()));
    b.say("!st2 greet world").await;
    let reply = b.line_containing("couldn't run").await;
    assert!(
        reply.contains(r#"Format string "greet {{cmd}}" is not available on the alias "greet""#),
        "{reply}"
    );
    assert!(b.emulator.executions().is_empty());
    // The first attempt and exactly one retry, nothing more.
    assert!(b.next_line_within(Duration::from_secs(1)).await.is_none());
    assert_eq!(b.metric(ALIAS_EXECUTIONS).await, 2.0);
}

/// SIGHUP (`systemctl reload`) makes a running bridge binary read StackStorm's alias list
/// again: an alias added while no change event could reach it runs right after.
#[actix_rt::test]
async fn sighup_makes_the_bridge_binary_reload_its_aliases() {
    use std::io::{BufRead as _, Write as _};
    use std::process::{Command, Stdio};

    use crate::bridge_process::{binary_config, bridge_ready, scrape};

    crate::support::init_test_log();
    let emulator =
        stormbridge::emulator::Emulator::start(crate::crowd::CrowdOptions::default().emulator)
            .await
            .expect("emulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::support::free_port();
    let config = binary_config(dir.path(), &emulator, port, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stormbridge"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bridge binary starts");
    let pid = child.id().to_string();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut process = crate::support::Process::default();
    process.adopt(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx
                .send(stormbridge::backends::console::unescape_line(&line))
                .is_err()
            {
                break;
            }
        }
    });
    let mut say = |line: &str| {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("typed");
    };
    let line_containing = |needle: &str| -> String {
        let deadline = std::time::Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("the bridge printed no line containing {needle:?}");
    };
    assert!(bridge_ready(port).await, "the bridge became ready");
    let aliases = |port| async move { scrape(port, "stormbridge_aliases").await };
    let before = aliases(port).await.expect("alias count");

    // StackStorm gains an alias while its stream is down: the bridge hears nothing of it.
    emulator.set_stream_service(false);
    assert!(eventually!(WAIT, emulator.stream_connections() == 0));
    let mut list = stormbridge::emulator::demo_aliases();
    list.push(greet("greet {{cmd}}"));
    emulator.set_aliases(list);
    say("!st2 greet world");
    line_containing("No StackStorm command matches");

    let hup = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(hup.success());
    assert!(
        eventually!(WAIT, aliases(port).await == Some(before + 1.0)),
        "aliases after SIGHUP: {:?}",
        aliases(port).await
    );
    say("!st2 greet world");
    line_containing("Started `greet world`");
    let executions = emulator.executions();
    assert_eq!(executions.len(), 1, "{executions:?}");
    assert_eq!(executions[0].alias_ref, "hello.greet");
    drop(process);
}
