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

/// Each line `reader` gives, as it comes (a thread reads until the end).
fn lines_of(reader: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `stormbridge demo` (no configuration file, warnings only) with its input on a pipe.
fn spawn_demo(stdout: std::process::Stdio, stderr: std::process::Stdio) -> std::process::Child {
    bin()
        .arg("demo")
        .env_remove("STORMBRIDGE_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("demo starts")
}

/// Whether `child` ends within `limit`; if it does not, it is killed (so the test leaves
/// nothing running).
// A plain test thread, no arbiter: a short poll bounds the wait.
#[allow(clippy::disallowed_methods)]
fn ends_within(mut child: std::process::Child, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
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
    use std::io::Write;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let mut child = spawn_demo(Stdio::piped(), Stdio::null());
    let rx = lines_of(child.stdout.take().expect("stdout"));
    let mut stdin = child.stdin.take().expect("stdin");
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
    let stopped = ends_within(child, Duration::from_secs(10));
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
    use std::io::Write;
    use std::process::Stdio;
    use std::time::Duration;

    let mut child = spawn_demo(Stdio::piped(), Stdio::null());
    let pid = child.id().to_string();
    let rx = lines_of(child.stdout.take().expect("stdout"));
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
    let stopped = ends_within(child, Duration::from_secs(10));
    drop(stdin);
    assert!(stopped, "the demo ignored SIGTERM with its input open");
}

/// The port the demo's banner (on its standard error) says its StackStorm emulator is on.
fn emulator_port_of_demo(stderr: &std::sync::mpsc::Receiver<String>) -> u16 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = stderr
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no emulator address in the demo's banner: {seen:#?}"));
        if let Some(rest) = line.split("EMULATOR at http://127.0.0.1:").nth(1) {
            let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
            return port.parse().expect("a port");
        }
        seen.push(line);
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`, waiting up to 10 s for the
/// answer to become `expected`; the last answer.
// A plain test thread, no arbiter: a short poll bounds the wait.
#[allow(clippy::disallowed_methods)]
fn port_open_becomes(port: u16, expected: bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if open == expected || std::time::Instant::now() >= deadline {
            return open;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The demo's StackStorm emulator is a process of its own: it ends with the demo, whether
/// the demo reaches the end of its input or is killed outright (nothing is left running).
#[test]
fn the_demos_emulator_ends_with_the_demo_even_when_the_demo_is_killed() {
    use std::process::Stdio;
    use std::time::Duration;

    for killed in [false, true] {
        let mut demo = spawn_demo(Stdio::null(), Stdio::piped());
        let stderr = lines_of(demo.stderr.take().expect("stderr"));
        let port = emulator_port_of_demo(&stderr);
        assert!(port_open_becomes(port, true), "the emulator is not up");
        let stdin = demo.stdin.take().expect("stdin");
        if killed {
            demo.kill().expect("SIGKILL sent");
        }
        drop(stdin);
        assert!(
            ends_within(demo, Duration::from_secs(10)),
            "the demo did not end"
        );
        assert!(
            !port_open_becomes(port, false),
            "the emulator outlived the demo (killed: {killed})"
        );
    }
}

/// `stormbridge emulator` alone: its first line is its address, it signs st2's default
/// admin in as the help says, and it ends at the end of its input.
#[test]
fn the_emulator_alone_says_its_address_signs_st2admin_in_and_ends_with_its_input() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::time::Duration;

    let mut emulator = bin()
        .arg("emulator")
        .env_remove("STORMBRIDGE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("emulator starts");
    let stdout = lines_of(emulator.stdout.take().expect("stdout"));
    let address = stdout
        .recv_timeout(Duration::from_secs(30))
        .expect("the emulator says its address");
    let port: u16 = address
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("not an address: {address:?}"))
        .parse()
        .expect("a port");
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout set");
    // st2admin:Ch@ngeMe
    http.write_all(
        b"POST /auth/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Authorization: Basic c3QyYWRtaW46Q2hAbmdlTWU=\r\nContent-Length: 0\r\n\
          Connection: close\r\n\r\n",
    )
    .expect("request sent");
    let mut answer = String::new();
    let _ = http.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("\"token\""), "{answer}");
    drop(emulator.stdin.take());
    assert!(
        ends_within(emulator, Duration::from_secs(10)),
        "the emulator did not end with its input"
    );
}
