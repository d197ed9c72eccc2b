//! The binary's operator commands: check-config, parse, match, and start-up errors.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stormbridge"))
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .env_remove("STORMBRIDGE_CONFIG")
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn parse_prints_parameters_as_json() {
    let (code, out, err) = run(bin().args([
        "parse",
        "--format",
        "run {{cmd}} on {{hosts}}",
        "run uname -a on web1",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v, serde_json::json!({"cmd": "uname -a", "hosts": "web1"}));

    let (code, out, err) = run(bin().args([
        "parse",
        "--format",
        "run {{cmd}} on {{hosts}}",
        "walk the dog",
    ]));
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(
        err.trim(),
        "Command \"walk the dog\" doesn't match format string \"run {{cmd}} on {{hosts}}\""
    );
}

#[test]
fn match_selects_an_alias_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("aliases.json");
    std::fs::write(
        &file,
        serde_json::Value::Array(crate::support::test_aliases()).to_string(),
    )
    .expect("write");
    let (code, out, err) = run(bin()
        .args(["match", "--aliases"])
        .arg(&file)
        .arg("run date on web1"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["ref"], "core.run_remote");
    assert_eq!(v["name"], "run_remote");
    assert_eq!(v["format"], "run {{cmd}} on {{hosts}}");
    assert_eq!(
        v["params"],
        serde_json::json!({"cmd": "date", "hosts": "web1"})
    );

    let (code, _, err) = run(bin()
        .args(["match", "--aliases"])
        .arg(&file)
        .arg("restart nginx"));
    assert_eq!(code, 1);
    assert!(
        err.contains("a.restart_a") && err.contains("b.restart_b"),
        "{err}"
    );
    let (code, _, err) = run(bin()
        .args(["match", "--aliases"])
        .arg(&file)
        .arg("fly to the moon"));
    assert_eq!(code, 1);
    assert!(err.contains("matched no patterns"), "{err}");
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[st2]\napi_url = \"ftp://x\"\n[st2.credentials]\ntoken = \"a\"\napi_key = \"b\"\n[[chat]]\nname = \"c\"\nbackend = \"nope\"\n",
    )
    .expect("write");
    let (code, _, err) = run(bin().args(["check-config", "--config"]).arg(&bad));
    assert_eq!(code, 1);
    for key in ["st2.api_url", "st2.credentials", "chat[0].backend"] {
        assert!(err.contains(key), "{key} not in {err}");
    }
    assert!(
        !err.contains("\"a\"") && !err.contains("\"b\""),
        "secrets echoed: {err}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key_file = \"/dev/null\"\n[[chat]]\nname = \"c\"\nbackend = \"console\"\n",
    )
    .expect("write");
    let (code, _, err) = run(bin().args(["check-config", "--config"]).arg(&good));
    assert_eq!(code, 1, "an empty key file is a problem too");
    assert!(err.contains("api_key_file"), "{err}");
    std::fs::write(dir.path().join("key"), "k\n").expect("write");
    let text = std::fs::read_to_string(&good)
        .expect("read")
        .replace("/dev/null", &dir.path().join("key").display().to_string());
    std::fs::write(&good, text).expect("write");
    let (code, out, err) = run(bin().args(["check-config", "--config"]).arg(&good));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
    assert!(!out.contains("warning"), "{out}");

    // A route StackStorm's stock rules never announce to the bridge: valid, with a warning.
    let text = std::fs::read_to_string(&good).expect("read").replace(
        "[st2]\n",
        "[st2]\nroute_key = \"hubot\"\nextra_routes = []\n",
    );
    std::fs::write(&good, text).expect("write");
    let (code, out, err) = run(bin().args(["check-config", "--config"]).arg(&good));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("warning: st2.route_key is \"hubot\"") && out.contains("extra_routes"),
        "{out}"
    );
}

#[test]
fn run_with_a_bad_or_missing_config_exits_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run(bin().current_dir(dir.path()).arg("run"));
    assert_eq!(code, 1);
    assert!(
        err.contains("--config") && err.contains("STORMBRIDGE_CONFIG"),
        "{err}"
    );
    let (code, _, err) = run(bin().args(["run", "--config", "/nonexistent.toml"]));
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn the_shipped_example_config_is_valid_once_its_secret_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("st2-api-key");
    std::fs::write(&key, "0123456789abcdef\n").expect("write");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let (code, out, err) = run(bin()
        .args(["check-config", "--config", example])
        .env("STORMBRIDGE__ST2__CREDENTIALS__API_KEY_FILE", &key));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
    let (code, _, err) = run(bin().args(["check-config", "--config", example]));
    assert_eq!(code, 1, "without the secret file it must say so");
    assert!(err.contains("api_key_file"), "{err}");
}

#[test]
fn the_demo_answers_a_command_with_a_duration_people_can_read() {
    use std::io::{BufRead, Write};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let mut child = bin()
        .arg("demo")
        .env_remove("STORMBRIDGE_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().expect("stdin");
    let (exit_tx, exit_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    // As a user would: while the demo is still loading its aliases, it says so; ask again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    stdin.write_all(b"!st2 run date\n").expect("command typed");
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("Took ") => break Some(line),
            Ok(line) if line.contains("still loading") => {
                seen.push(line);
                stdin.write_all(b"!st2 run date\n").expect("command typed");
            }
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    // A real pack's result format (st2's `examples.remote_shell_cmd`): a `{% for %}` over
    // the remote runner's per-host result, with Jinja's whitespace control, rendered as
    // Jinja2 with st2's `trim_blocks` and `lstrip_blocks` renders it.
    stdin
        .write_all(b"!st2 shell hostname on web1,web2\n")
        .expect("command typed");
    let report = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("Ran *hostname*") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    // Ctrl-D: the demo stops at the end of its input.
    drop(stdin);
    let stopped = exit_rx.recv_timeout(Duration::from_secs(10)).is_ok();
    let result = result.unwrap_or_else(|| panic!("no result from the demo; saw {seen:#?}"));
    let report = report.unwrap_or_else(|| panic!("no per-host report; saw {seen:#?}"));
    assert_eq!(
        stormbridge::backends::console::unescape_line(&report),
        "[stormbridge] #demo: Demo User: Ran *hostname* on *2* hosts.\n\nPer host:\n\
         Host: *web1*\n    ---> stdout: web1\n    ---> stderr: \n\
         Host: *web2*\n    ---> stdout: web2\n    ---> stderr: \n",
        "{report}"
    );
    // StackStorm writes a duration under a second as microseconds ("Took 0.02μs"): the
    // demo's commands take long enough to read as seconds.
    let took = result
        .split("Took ")
        .nth(1)
        .and_then(|rest| rest.split(" to complete").next())
        .unwrap_or_default();
    assert!(
        took.ends_with('s') && !took.ends_with("μs") && took.len() <= 4,
        "Took {took}: {result}"
    );
    assert!(stopped, "the demo did not stop at the end of its input");
}

#[test]
fn check_config_warns_about_an_old_chat_key_and_refuses_both_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("old.toml");
    let base = "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"irc-main\"\nbackend = \"irc\"\nserver = \"irc.example.net\"\nnick = \"bot\"\n";
    std::fs::write(&file, format!("{base}queue_lines = 50\n")).expect("write");
    let (code, out, err) = run(bin().args(["check-config", "--config"]).arg(&file));
    assert_eq!(code, 0, "an old key still loads: {err}");
    assert!(out.contains("valid"), "{out}");
    let note = out
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("deprecated"))
        .unwrap_or_else(|| panic!("no deprecation note in {out}"));
    for name in ["irc-main", "`queue_lines`", "`queue_size`"] {
        assert!(note.contains(name), "{name} not in {note}");
    }

    std::fs::write(&file, format!("{base}queue_size = 50\n")).expect("write");
    let (code, out, err) = run(bin().args(["check-config", "--config"]).arg(&file));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("deprecated"), "{out}");

    std::fs::write(&file, format!("{base}queue_lines = 50\nqueue_size = 60\n")).expect("write");
    let (code, _, err) = run(bin().args(["check-config", "--config"]).arg(&file));
    assert_eq!(code, 1, "both names at once is an error");
    assert!(
        err.contains("chat[0].queue_lines") && err.contains("`queue_size`"),
        "{err}"
    );
}

/// `systemctl stop`, `docker stop` and Kubernetes send SIGTERM with the console's input
/// still open: the demo stops at once rather than waiting for another line.
#[test]
fn the_demo_stops_on_sigterm_with_its_input_still_open() {
    use std::io::{BufRead, Write};
    use std::process::Stdio;
    use std::time::Duration;

    let mut child = bin()
        .arg("demo")
        .env_remove("STORMBRIDGE_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let pid = child.id().to_string();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Up and reading: it answers a line (any answer will do).
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"!st2help\n").expect("typed");
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the demo answers");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let (exit_tx, exit_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = exit_tx.send(child.wait());
    });
    let stopped = exit_rx.recv_timeout(Duration::from_secs(10)).is_ok();
    drop(stdin);
    if !stopped {
        // Not stopped by the signal: end it, so the test leaves nothing running.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
    }
    assert!(stopped, "the demo ignored SIGTERM with its input open");
}
