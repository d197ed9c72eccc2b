//! The access-control gate end to end: console → gate → (never) StackStorm.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use crate::support::{config_toml, with_test_aliases, Options, TestBridge, WAIT};

const RULES: &str = r#"
[access]
default = "deny"
admins = ["console:alice"]
[access.groups]
operators = ["console:alice"]
[[access.rules]]
builtins = ["help", "whoami", "acl"]
action = "allow"
[[access.rules]]
packs = ["core"]
users = ["@operators"]
rooms = ["group"]
action = "allow"
comment = "operators run core aliases in rooms"
"#;

fn with_rules(rules: &str) -> Options {
    let mut o = with_test_aliases();
    o.access_toml = rules.into();
    o
}

#[actix_rt::test]
async fn a_denied_command_never_reaches_stackstorm() {
    let mut b = TestBridge::start_with(with_rules(RULES)).await;
    b.wait_ready(200).await;
    b.say("!st2 deploy web to prod").await;
    let reply = b.line_containing("Access control").await;
    assert!(
        reply.contains("`deploy web to prod` (ops.deploy)"),
        "{reply}"
    );
    assert!(
        !reply.contains("rule"),
        "the user is not told which rule: {reply}"
    );
    // Allowed in a room, not in a DM (rooms = ["group"]).
    b.say("/dm st2 run date").await;
    let reply = b.line_containing("Access control").await;
    assert!(reply.starts_with("[stormbridge] @alice (dm)"), "{reply}");
    assert!(
        b.emulator.executions().is_empty(),
        "nothing denied may reach st2"
    );

    b.say("!st2 run date").await;
    b.line_containing("Started `run date`").await;
    assert_eq!(b.emulator.executions().len(), 1);
    assert_eq!(
        b.metric("stormbridge_acl_decisions_total{decision=\"deny\",reason=\"default\"}")
            .await,
        2.0
    );
    assert_eq!(
        b.metric("stormbridge_commands_total{outcome=\"denied\"}")
            .await,
        2.0
    );
}

#[actix_rt::test]
async fn default_deny_without_rules_refuses_even_help() {
    let mut b = TestBridge::start_with(with_rules("[access]\ndefault = \"deny\"\n")).await;
    b.wait_ready(200).await;
    b.say("!st2help").await;
    let reply = b.line_containing("Access control").await;
    assert!(reply.contains("!st2help"), "{reply}");
}

#[actix_rt::test]
async fn whoami_shows_the_ids_rules_use_and_the_st2_identity() {
    let mut b = TestBridge::start_with(with_rules(RULES)).await;
    b.wait_ready(200).await;
    b.say("!st2whoami").await;
    let reply = b.line_containing("You are").await;
    for expected in [
        "`console:alice` (Alice)",
        "`console:ops`",
        "group room",
        "administrator",
        "`console:name:Alice`",
        "`st2admin` (the bridge's own login)",
        "api_user `alice`",
    ] {
        assert!(
            reply.contains(expected),
            "{expected:?} missing from {reply}"
        );
    }
}

#[actix_rt::test]
async fn explain_is_for_admins_and_names_the_deciding_rule() {
    let mut b = TestBridge::start_with(with_rules(RULES)).await;
    b.wait_ready(200).await;
    b.say("!st2acl explain console:bob console:ops run date")
        .await;
    let reply = b.line_containing("console:bob").await;
    assert!(reply.starts_with("[stormbridge] #ops: deny"), "{reply}");
    assert!(
        reply.contains("rule 0:"),
        "why rule 0 did not apply: {reply}"
    );
    assert!(
        reply.contains("rule 1:") && reply.contains("@operators"),
        "{reply}"
    );

    b.say("!st2acl explain console:alice console:ops run date")
        .await;
    let reply = b.line_containing("console:alice").await;
    assert!(
        reply.contains("allow") && reply.contains("rule 1"),
        "{reply}"
    );
    assert!(
        reply.contains("operators run core aliases in rooms"),
        "the rule's comment: {reply}"
    );

    b.say("!st2acl explain nobody").await;
    let reply = b.line_containing("usage").await;
    assert!(reply.contains("<connection>:<user id>"), "{reply}");

    // Not an admin: the admin-only floor holds even though rule 0 allows `acl`.
    let mut opts = with_rules(&RULES.replace("admins = [\"console:alice\"]", "admins = []"));
    opts.emulator.aliases = crate::support::test_aliases();
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    b.say("!st2acl explain console:bob console:ops run date")
        .await;
    b.line_containing("Access control does not allow").await;
}

#[actix_rt::test]
async fn reloading_the_alias_list_is_for_admins_only() {
    // No admin, and a rule that would allow `reload`: the admin-only floor still holds.
    let rules = RULES
        .replace("admins = [\"console:alice\"]", "admins = []")
        .replace(
            "builtins = [\"help\", \"whoami\", \"acl\"]",
            "builtins = [\"help\", \"whoami\", \"acl\", \"reload\"]",
        );
    let mut b = TestBridge::start_with(with_rules(&rules)).await;
    b.wait_ready(200).await;
    assert!(eventually!(
        WAIT,
        b.metric("stormbridge_aliases").await == 8.0
    ));
    // StackStorm's list changed without an event reaching the bridge: a reload would show it.
    let mut list = crate::support::test_aliases();
    list.push(
        serde_json::json!({"name": "greet", "pack": "hello", "ref": "hello.greet",
        "action_ref": "core.local", "enabled": true, "formats": ["greet {{cmd}}"]}),
    );
    b.emulator
        .set_alias_list_body(Some(&serde_json::Value::Array(list).to_string()));
    b.say("!st2reload").await;
    let reply = b.line_containing("Access control").await;
    assert!(reply.contains("!st2reload"), "{reply}");
    assert!(
        b.next_line_within(Duration::from_secs(1)).await.is_none(),
        "{:?}",
        b.seen
    );
    assert_eq!(b.metric("stormbridge_aliases").await, 8.0, "not reloaded");
}

#[actix_rt::test]
async fn reload_swaps_valid_rules_and_keeps_old_ones_on_a_bad_file() {
    let opts = with_rules(RULES);
    let mut b = TestBridge::start_with(opts).await;
    b.wait_ready(200).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stormbridge.toml");
    let allow_ops = RULES.replace("packs = [\"core\"]", "packs = [\"core\", \"ops\"]");
    std::fs::write(&path, config_toml(&b.emulator, &with_rules(&allow_ops))).expect("write");
    assert_eq!(b.app.reload_access(&path).await.expect("valid"), 2);
    b.say("!st2 deploy web to prod").await;
    b.line_containing("Deployment").await;

    std::fs::write(
        &path,
        config_toml(&b.emulator, &with_rules(&format!("{RULES}\n[[access.rules]]\nusers = [\"@ghosts\"]\npacks = [\"x\"]\naction = \"allow\"\n"))),
    )
    .expect("write");
    let err = b.app.reload_access(&path).await.expect_err("invalid");
    assert!(err.to_string().contains("access.rules[2]"), "{err}");
    b.say("!st2 deploy web to staging").await;
    b.line_containing("Deployment").await;
}

#[test]
fn acl_explain_on_the_command_line_exits_0_allow_1_deny() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("stormbridge.toml");
    std::fs::write(
        &config,
        format!("[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n{RULES}\n[[chat]]\nname = \"console\"\nbackend = \"console\"\n"),
    )
    .expect("write");
    let aliases = dir.path().join("aliases.json");
    std::fs::write(
        &aliases,
        serde_json::Value::Array(crate::support::test_aliases()).to_string(),
    )
    .expect("write");
    let run = |user: &str, room: &str, command: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_stormbridge"))
            .args(["acl-explain", "--config"])
            .arg(&config)
            .args(["--user", user, "--room", room, "--aliases"])
            .arg(&aliases)
            .arg(command)
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run("console:alice", "console:ops", "run date");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("allow"), "{out}");
    let (code, out, _) = run("console:bob", "console:ops", "run date");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("rule 1:"), "{out}");
    let (code, out, _) = run("console:alice", "dm", "run date");
    assert_eq!(code, Some(1), "{out}");
    let (code, _, err) = run("alice", "console:ops", "run date");
    assert_eq!(code, Some(2));
    assert!(err.contains("<connection>:<user id>"), "{err}");
}

/// SIGHUP on the real binary: a valid file is applied, an invalid one is refused and logged.
#[test]
fn sighup_reloads_the_access_rules_of_a_running_bridge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("stormbridge.toml");
    let base = "[st2]\napi_url = \"http://127.0.0.1:9/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[http]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"info\"\n[[chat]]\nname = \"console\"\nbackend = \"console\"\n";
    std::fs::write(&config, format!("{base}{RULES}")).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stormbridge"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| -> String {
        let deadline = std::time::Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no log line containing {needle:?}");
    };
    let hup = |pid: u32| {
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    wait_for("stormbridge started");
    std::fs::write(
        &config,
        format!("{base}{RULES}\n[[access.rules]]\ntexts = [\"*\"]\naction = \"deny\"\n"),
    )
    .expect("write");
    hup(child.id());
    let line = wait_for("access rules reloaded");
    assert!(line.contains("rules=3"), "{line}");
    std::fs::write(
        &config,
        format!("{base}{RULES}\n[[access.rules]]\naction = \"allow\"\n"),
    )
    .expect("write");
    hup(child.id());
    let line = wait_for("keeping the old access rules");
    assert!(line.contains("access.rules[2]"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}
