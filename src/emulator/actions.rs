//! Emulated action runs. Nothing is executed: each action produces a result shaped
//! like the one st2's runner would return, with clearly emulated content.
//!
//! * `core.local` / `core.local_sudo` (`cmd`) and `core.remote` / `core.remote_sudo`
//!   (`cmd`, `hosts`): a few commands are imitated (`date`, `echo …`, `hostname`,
//!   `whoami`, `uname`, `true`); `false` and `exit N` (N ≠ 0) fail with that return
//!   code; anything else succeeds with stdout `(emulated) <cmd>`.
//! * `core.echo` (`message`), `core.noop`, `core.http` (`url`).
//! * `ops.long_job` (`seconds`, runner `local-shell-cmd`): the one action that takes
//!   time. It prints `step i of N` every tick ([`LONG_JOB_TICK`] by default, so
//!   `N = 5 × seconds`), each line stored and streamed as it comes, and then succeeds
//!   with the local runner's result. See [`long_job_steps`]; `state.rs` runs it.
//! * `ops.set_password` (`user`, `password`): a Python action that prints the new
//!   password on stdout, as a careless real action would. StackStorm masks a `secret`
//!   parameter's value in the *parameters* it serves (`st2common/util/secrets.py`
//!   `mask_secret_parameters`), never in the *result*, so the chatops pack's
//!   `format_execution_result` announces it: the bridge's own masking (`crate::redact`)
//!   is what keeps it out of chat.
//! * any other action: a Python-action result echoing the parameters.

use serde_json::{json, Map, Value};

use super::util::py_str;

/// The action that runs for a while (`registry.rs` defines it).
pub(crate) const LONG_JOB: &str = "ops.long_job";

/// How often `ops.long_job` prints a line, unless a test changes it
/// ([`super::Emulator::set_long_job_tick`]).
pub(crate) const LONG_JOB_TICK: std::time::Duration = std::time::Duration::from_millis(200);

/// Lines `ops.long_job` prints per second of `seconds` at the default tick.
const LONG_JOB_STEPS_PER_SECOND: u64 = 5;

/// `seconds` when the execution does not carry it (the action's default, `registry.rs`).
const LONG_JOB_DEFAULT_SECONDS: u64 = 30;

/// How many lines (ticks) an `ops.long_job` execution with these parameters prints: five
/// per second of `seconds` (its default when absent; at least one line).
pub(crate) fn long_job_steps(params: &Map<String, Value>) -> u64 {
    let seconds = params
        .get("seconds")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .unwrap_or(LONG_JOB_DEFAULT_SECONDS);
    (seconds * LONG_JOB_STEPS_PER_SECOND).max(1)
}

/// Line `step` (1-based) of `total`, with its newline, as the local runner stores each
/// line it reads (`make_read_and_store_stream_func`, `st2common/runners/utils.py:149`,
/// keeps the `\n`).
pub(crate) fn long_job_line(step: u64, total: u64) -> String {
    format!("step {step} of {total}\n")
}

/// The local runner's result once the command has printed `stdout` and exited 0
/// (`contrib/runners/local_runner/local_runner/base.py:236-242`; `strip_shell_chars`
/// drops the trailing newline).
pub(crate) fn long_job_result(stdout: &str) -> Value {
    shell_result(0, stdout.strip_suffix('\n').unwrap_or(stdout))
}

/// The output records a finished run of a runner that streams its output would have
/// stored, as `(output_type, data)` in order: the local runner (`local-shell-cmd`) and
/// the Python runner (`python-script`) store every line of stdout, then of stderr (the
/// emulator has no interleaving to keep), each with its newline
/// (`store_execution_output_data`, `st2common/services/action.py:497`, called per line
/// read). Other runners store nothing here (the remote runner's per-host output is not
/// modelled).
pub(crate) fn output_lines(runner: &str, result: &Value) -> Vec<(&'static str, String)> {
    if !matches!(runner, "local-shell-cmd" | "python-script") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for kind in ["stdout", "stderr"] {
        let Some(text) = result.get(kind).and_then(Value::as_str) else {
            continue;
        };
        for line in text.split_inclusive('\n') {
            let mut line = line.to_string();
            if !line.ends_with('\n') {
                line.push('\n');
            }
            out.push((kind, line));
        }
    }
    out
}

fn param(params: &Map<String, Value>, key: &str) -> String {
    params.get(key).map(py_str).unwrap_or_default()
}

/// Strip one pair of matching surrounding quotes.
fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// Imitate a shell command: `(return_code, stdout)`.
fn shell(cmd: &str, host: &str) -> (i64, String) {
    let cmd = cmd.trim();
    let (word, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
    match word {
        "" | "true" => (0, String::new()),
        "false" => (1, String::new()),
        "exit" => (rest.trim().parse().unwrap_or(0), String::new()),
        "date" => (
            0,
            chrono::Utc::now()
                .format("%a %b %e %H:%M:%S UTC %Y")
                .to_string(),
        ),
        "echo" => (0, unquote(rest).to_string()),
        "hostname" => (0, host.to_string()),
        "whoami" => (0, "stanley".to_string()),
        "uname" => (0, "Linux".to_string()),
        _ => (0, format!("(emulated) {cmd}")),
    }
}

fn shell_result(rc: i64, stdout: &str) -> Value {
    json!({
        "failed": rc != 0,
        "succeeded": rc == 0,
        "return_code": rc,
        "stdout": stdout,
        "stderr": "",
    })
}

/// "Run" an action: `(succeeded, result)`.
pub(crate) fn run(action_ref: &str, params: &Map<String, Value>) -> (bool, Value) {
    match action_ref {
        "core.local" | "core.local_sudo" => {
            let (rc, out) = shell(&param(params, "cmd"), "st2-emulator");
            (rc == 0, shell_result(rc, &out))
        }
        "core.echo" => (true, shell_result(0, &param(params, "message"))),
        "core.remote" | "core.remote_sudo" => {
            let cmd = param(params, "cmd");
            let hosts_param = param(params, "hosts");
            let mut hosts: Vec<&str> = hosts_param
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect();
            if hosts.is_empty() {
                hosts.push("localhost");
            }
            let mut all_ok = true;
            let mut result = Map::new();
            for host in hosts {
                let (rc, out) = shell(&cmd, host);
                all_ok &= rc == 0;
                result.insert(host.to_string(), shell_result(rc, &out));
            }
            (all_ok, Value::Object(result))
        }
        "core.noop" => (true, shell_result(0, "")),
        "ops.set_password" => {
            let user = param(params, "user");
            (
                true,
                json!({
                    "exit_code": 0,
                    "result": format!("password of {user} changed"),
                    "stdout": format!("Changing the password of {user} to {}\n", param(params, "password")),
                    "stderr": "",
                }),
            )
        }
        "core.http" => (
            true,
            json!({
                "status_code": 200,
                "body": format!("(emulated) GET {}", param(params, "url")),
                "parsed": false,
                "headers": {"Content-Type": "text/plain"},
            }),
        ),
        other => (
            true,
            json!({
                "exit_code": 0,
                "result": {"emulated": true, "action": other, "parameters": params},
                "stdout": "",
                "stderr": "",
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn local_commands() {
        let (ok, r) = run("core.local", &p(&json!({"cmd": "date"})));
        assert!(ok);
        assert!(r["stdout"].as_str().unwrap_or("").contains(" UTC "));
        let (ok, r) = run("core.local", &p(&json!({"cmd": "false"})));
        assert!(!ok);
        assert_eq!(r["return_code"], 1);
        assert_eq!(r["failed"], true);
        let (ok, r) = run("core.local", &p(&json!({"cmd": "exit 3"})));
        assert!(!ok);
        assert_eq!(r["return_code"], 3);
        let (_, r) = run("core.local", &p(&json!({"cmd": "echo 'hi there'"})));
        assert_eq!(r["stdout"], "hi there");
        let (_, r) = run("core.local", &p(&json!({"cmd": "ls -la /tmp"})));
        assert_eq!(r["stdout"], "(emulated) ls -la /tmp");
    }

    #[test]
    fn remote_and_other() {
        let (ok, r) = run(
            "core.remote",
            &p(&json!({"cmd": "hostname", "hosts": "web1, web2"})),
        );
        assert!(ok);
        assert_eq!(r["web1"]["stdout"], "web1");
        assert_eq!(r["web2"]["stdout"], "web2");
        let (ok, r) = run("core.remote", &p(&json!({"cmd": "false", "hosts": "a"})));
        assert!(!ok);
        assert_eq!(r["a"]["return_code"], 1);
        let (ok, r) = run("ops.deploy", &p(&json!({"app": "web"})));
        assert!(ok);
        assert_eq!(r["result"]["parameters"]["app"], "web");
    }

    #[test]
    fn long_job_lines_and_result() {
        assert_eq!(long_job_steps(&p(&json!({"seconds": 2}))), 10);
        assert_eq!(long_job_steps(&p(&json!({"seconds": "3"}))), 15);
        assert_eq!(long_job_steps(&p(&json!({}))), 150);
        assert_eq!(long_job_line(1, 10), "step 1 of 10\n");
        let r = long_job_result("step 1 of 2\nstep 2 of 2\n");
        assert_eq!(r["stdout"], "step 1 of 2\nstep 2 of 2");
        assert_eq!(r["return_code"], 0);
        assert_eq!(r["succeeded"], true);
    }

    #[test]
    fn output_lines_of_streaming_runners() {
        let r = json!({"stdout": "a\nb", "stderr": "oops\n"});
        assert_eq!(
            output_lines("local-shell-cmd", &r),
            [
                ("stdout", "a\n".to_string()),
                ("stdout", "b\n".to_string()),
                ("stderr", "oops\n".to_string())
            ]
        );
        assert!(output_lines("local-shell-cmd", &json!({"stdout": ""})).is_empty());
        assert!(output_lines("http-request", &r).is_empty());
        assert!(output_lines("remote-shell-cmd", &r).is_empty());
    }

    #[test]
    fn set_password_echoes_the_password_like_a_careless_action() {
        let (ok, r) = run(
            "ops.set_password",
            &p(&json!({"user": "bob", "password": "hunter2-Secret"})),
        );
        assert!(ok);
        assert_eq!(
            r["stdout"],
            "Changing the password of bob to hunter2-Secret\n"
        );
        assert_eq!(r["exit_code"], 0);
    }
}
