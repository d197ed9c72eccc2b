//! The chatops pack's `default.j2` result template (`contrib/chatops/actions/templates/`),
//! rendered by hand the way st2's Jinja environment renders it (verified against
//! Jinja2 goldens), and st2's `to_human_time_from_seconds`. Alias `result.format`s and
//! acknowledgements are rendered by `jinja.rs`; this second, independent rendering of
//! the default template is kept on purpose.

use std::fmt::Write as _;

use chrono::{Datelike, Timelike};
use serde_json::Value;

use super::util::{py_float, py_str, py_truthy};

/// st2's `to_human_time_from_seconds` filter for a float (`3m5s`, `0.5μs` for
/// under a second; floats are rounded half to even).
pub(crate) fn human_time(seconds: f64) -> String {
    if seconds == 0.0 {
        return "0s".to_string();
    }
    if seconds < 1.0 {
        return format!("{}\u{3bc}s", py_float(seconds));
    }
    // Python's round(): half to even.
    #[allow(clippy::cast_possible_truncation)]
    let total = seconds.round_ties_even() as i64;
    human_time_whole(total)
}

/// The filter for a JSON number: Python keeps ints and floats apart (`-5μs`, not
/// `-5.0μs`).
pub(crate) fn human_time_of(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(human_time_whole(i64::from(*b))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(human_time_whole(i)),
            None => n.as_f64().map(human_time),
        },
        _ => None,
    }
}

/// Whole seconds: `datetime(1, 1, 1) + timedelta(seconds)` read back as years,
/// day of the month minus one (months are dropped, as in st2), hours, minutes and
/// seconds.
fn human_time_whole(total: i64) -> String {
    if total == 0 {
        return "0s".to_string();
    }
    if total < 1 {
        return format!("{total}\u{3bc}s");
    }
    let base = chrono::NaiveDate::from_ymd_opt(1, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let Some(base) = base else {
        return format!("{total}s");
    };
    let Some(t) = chrono::TimeDelta::try_seconds(total).and_then(|d| base.checked_add_signed(d))
    else {
        return format!("{total}s");
    };
    let parts = [
        i64::from(t.year() - 1),
        i64::from(t.day() - 1),
        i64::from(t.hour()),
        i64::from(t.minute()),
        i64::from(t.second()),
    ];
    let Some(first) = parts.iter().position(|p| *p != 0) else {
        return "0s".to_string();
    };
    let units = ["y", "d", "h", "m", "s"];
    let mut out = String::new();
    for (p, u) in parts[first..].iter().zip(&units[first..]) {
        let _ = write!(out, "{p}{u}");
    }
    out
}

/// Python's `str.strip()`: Unicode whitespace plus the separators `\x1c`-`\x1f`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// `six.iteritems(map)` followed by default.j2's `selectattr('0', 'in', keep)` and
/// `selectattr('1')`: the kept keys with truthy values, in the mapping's order
/// (st2 iterates the dict it decoded from JSON, which keeps the document's order).
fn kept_pairs<'a>(
    map: &'a serde_json::Map<String, Value>,
    keep: &[&str],
) -> Vec<(&'a str, &'a Value)> {
    map.iter()
        .filter(|(k, v)| keep.contains(&k.as_str()) && py_truthy(v))
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

/// Every pair of `map`, in the mapping's order.
fn all_pairs(map: &serde_json::Map<String, Value>) -> Vec<(&str, &Value)> {
    map.iter().map(|(k, v)| (k.as_str(), v)).collect()
}

/// The `serialize` macro of `default.j2`: `key : value` lines, mappings nested two
/// spaces deeper, multi-line strings (after `trim`) on their own indented line.
fn serialize(items: &[(&str, &Value)], prefix: &str, out: &mut String) {
    for (key, value) in items {
        out.push_str(prefix);
        out.push_str(key);
        out.push_str(" : ");
        match value {
            Value::Object(m) => {
                out.push('\n');
                serialize(&all_pairs(m), &format!("{prefix}  "), out);
            }
            Value::String(s) if py_strip(s).split('\n').count() > 1 => {
                out.push_str("      \n");
                out.push_str(prefix);
                out.push_str("  ");
                out.push_str(py_strip(s));
                out.push('\n');
            }
            other => {
                out.push_str(py_strip(&py_str(other)));
                out.push('\n');
            }
        }
    }
}

/// Result keys default.j2 shows for the shell runners.
const SHELL_KEYS: &[&str] = &["stdout", "stderr", "return_code", "error"];
/// Result keys default.j2 shows for the Python and Windows runners.
const PYTHON_KEYS: &[&str] = &["result", "stdout", "stderr", "exit_code"];

/// The text chatops' `format_execution_result` produces from `default.j2` for an
/// execution (st2's Jinja environment: `trim_blocks`, `lstrip_blocks`).
///
/// Where Jinja2 raises (a runner-specific branch meeting a result that is not a
/// mapping, a missing `runner`), st2 posts nothing; this model then falls back to
/// printing the value, as the generic branch would.
/// The top-level attributes of the execution [`default_result_message`] reads: an
/// announcement without a template of its own serialises only these.
pub(crate) const DEFAULT_MESSAGE_READS: [&str; 7] = [
    "action",
    "status",
    "id",
    "web_url",
    "elapsed_seconds",
    "result",
    "runner",
];

pub(crate) fn default_result_message(execution: &Value) -> String {
    // A missing field is Jinja's Undefined, which prints as an empty string.
    let text = |v: Option<&Value>| v.map(py_str).unwrap_or_default();
    let action_ref = text(execution.get("action").and_then(|a| a.get("ref")));
    let mut out = String::new();
    out.push('\n');
    let _ = writeln!(out, "Action {action_ref} completed.");
    let _ = writeln!(out, "status : {}", text(execution.get("status")));
    let _ = write!(out, "execution: {}\n\n", text(execution.get("id")));
    if let Some(web_url) = execution.get("web_url").filter(|v| py_truthy(v)) {
        let _ = writeln!(out, "web_url: {}", py_str(web_url));
    }
    out.push('\n');
    if let Some(elapsed) = execution.get("elapsed_seconds").filter(|v| py_truthy(v)) {
        if let Some(took) = human_time_of(elapsed) {
            let _ = writeln!(out, "Took {took} to complete.");
        }
    }
    out.push('\n');
    let Some(result) = execution.get("result").filter(|v| py_truthy(v)) else {
        return out;
    };
    out.push_str("result :\n--------\n");
    let runner = execution
        .get("runner")
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match (result, runner) {
        (Value::Object(m), "http-request") => {
            // default.j2 indents this branch's first line by two spaces.
            out.push_str("  ");
            serialize(&all_pairs(m), "", &mut out);
            out.push('\n');
        }
        (Value::Object(m), "python-script" | "windows-cmd" | "windows-script") => {
            serialize(&kept_pairs(m, PYTHON_KEYS), "", &mut out);
            out.push('\n');
        }
        (Value::Object(m), "remote-shell-cmd" | "remote-shell-script") => {
            for (host, value) in m {
                out.push_str(host);
                out.push_str(" : \n");
                if let Value::Object(hm) = value {
                    serialize(&kept_pairs(hm, SHELL_KEYS), "  ", &mut out);
                }
                out.push('\n');
            }
        }
        (Value::Object(m), "local-shell-cmd" | "local-shell-script") => {
            serialize(&kept_pairs(m, SHELL_KEYS), "", &mut out);
            out.push('\n');
        }
        // Every other runner: the whole mapping.
        (Value::Object(m), _) => {
            serialize(&all_pairs(m), "", &mut out);
            out.push('\n');
        }
        (other, _) => {
            out.push_str(&py_str(other));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_times() {
        assert_eq!(human_time(0.021), "0.021\u{3bc}s");
        assert_eq!(human_time(2.5), "2s");
        assert_eq!(human_time(65.0), "1m5s");
        assert_eq!(human_time(3725.4), "1h2m5s");
    }

    #[test]
    fn the_default_message_reads_only_the_attributes_it_lists() {
        // Every attribute an execution is served with; the message from only the listed
        // ones must be the message from all of them.
        let full = json!({"id": "abc", "action": {"ref": "core.remote", "runner_type": "remote-shell-cmd"},
            "runner": {"name": "remote-shell-cmd", "enabled": true},
            "liveaction": {"id": "l1", "action": "core.remote", "parameters": {"cmd": "x"}},
            "status": "failed", "start_timestamp": "2026-12-04T08:00:00.000000Z",
            "end_timestamp": "2026-12-04T08:00:02.500000Z", "elapsed_seconds": 2.5,
            "parameters": {"cmd": "x", "hosts": "web1"}, "context": {"user": "alice"},
            "notify": {"on_complete": {"routes": ["chatops"]}},
            "result": {"web1": {"stdout": "hi", "return_code": 1}}, "result_size": 40,
            "web_url": "https://st2/#/history/abc/general",
            "log": [{"status": "requested", "timestamp": "2026-12-04T08:00:00.000000Z"}]});
        let Value::Object(all) = &full else {
            unreachable!()
        };
        let only: serde_json::Map<String, Value> = all
            .iter()
            .filter(|(k, _)| DEFAULT_MESSAGE_READS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(only.len(), DEFAULT_MESSAGE_READS.len());
        assert_eq!(
            default_result_message(&Value::Object(only)),
            default_result_message(&full)
        );
    }

    // Expected texts were produced with Jinja2 3.1 rendering st2's default.j2 with
    // trim_blocks and lstrip_blocks, as format_execution_result does.
    #[test]
    fn default_template_local_success() {
        let e = json!({"id": "abc", "action": {"ref": "core.local"}, "status": "succeeded",
            "runner": {"name": "local-shell-cmd"}, "elapsed_seconds": 0.021,
            "result": {"failed": false, "succeeded": true, "return_code": 0,
                       "stdout": "Mon Nov 23 20:10:00 UTC 2026", "stderr": ""}});
        assert_eq!(
            default_result_message(&e),
            "\nAction core.local completed.\nstatus : succeeded\nexecution: abc\n\n\nTook 0.021\u{3bc}s to complete.\n\nresult :\n--------\nstdout : Mon Nov 23 20:10:00 UTC 2026\n\n"
        );
    }

    #[test]
    fn default_template_failure_with_url_and_multiline() {
        let e = json!({"id": "abc", "action": {"ref": "core.local"}, "status": "failed",
            "runner": {"name": "local-shell-cmd"}, "elapsed_seconds": 2.5,
            "web_url": "https://st2/#/history/abc/general",
            "result": {"failed": true, "succeeded": false, "return_code": 1, "stdout": "", "stderr": "boom\nline2"}});
        assert_eq!(
            default_result_message(&e),
            "\nAction core.local completed.\nstatus : failed\nexecution: abc\n\nweb_url: https://st2/#/history/abc/general\n\nTook 2s to complete.\n\nresult :\n--------\nreturn_code : 1\nstderr :       \n  boom\nline2\n\n"
        );
    }

    #[test]
    fn default_template_remote_and_generic() {
        let e = json!({"id": "abc", "action": {"ref": "core.remote"}, "status": "succeeded",
            "runner": {"name": "remote-shell-cmd"}, "elapsed_seconds": 65,
            "result": {"web1": {"failed": false, "succeeded": true, "return_code": 0, "stdout": "hi", "stderr": ""},
                       "web2": {"failed": false, "succeeded": true, "return_code": 0, "stdout": "a\nb", "stderr": ""}}});
        assert_eq!(
            default_result_message(&e),
            "\nAction core.remote completed.\nstatus : succeeded\nexecution: abc\n\n\nTook 1m5s to complete.\n\nresult :\n--------\nweb1 : \n  stdout : hi\n\nweb2 : \n  stdout :       \n    a\nb\n\n"
        );
        let e = json!({"id": "i", "action": {"ref": "x.y"}, "status": "succeeded", "runner": {"name": "noop"},
            "result": {"a": {"b": {"c": "deep", "d": "x\ny"}, "e": 2}, "f": "  padded  ", "g": "multi\n  line\n",
                       "h": true, "i": null, "j": [1, "a"], "k": {}}});
        assert_eq!(
            default_result_message(&e),
            "\nAction x.y completed.\nstatus : succeeded\nexecution: i\n\n\n\nresult :\n--------\na : \n  b : \n    c : deep\n    d :       \n      x\ny\n  e : 2\nf : padded\ng :       \n  multi\n  line\nh : True\ni : None\nj : [1, 'a']\nk : \n\n"
        );
        let e = json!({"id": "i", "action": {"ref": "x.y"}, "status": "succeeded", "runner": {"name": "noop"}, "result": "just a string"});
        assert_eq!(
            default_result_message(&e),
            "\nAction x.y completed.\nstatus : succeeded\nexecution: i\n\n\n\nresult :\n--------\njust a string\n"
        );
        let e = json!({"id": "i", "action": {"ref": "x.y"}, "status": "succeeded", "runner": {"name": "python-script"},
            "result": {"exit_code": 0, "result": {"x": 1}, "stderr": "", "stdout": "out"}});
        assert_eq!(
            default_result_message(&e),
            "\nAction x.y completed.\nstatus : succeeded\nexecution: i\n\n\n\nresult :\n--------\nresult : \n  x : 1\nstdout : out\n\n"
        );
        let e = json!({"id": "abc", "action": {"ref": "core.local"}, "status": "succeeded", "runner": {"name": "local-shell-cmd"}});
        assert_eq!(
            default_result_message(&e),
            "\nAction core.local completed.\nstatus : succeeded\nexecution: abc\n\n\n\n"
        );
    }

    /// Execution documents and what Jinja2 3.1.6 renders from st2's `default.j2` for
    /// them in st2's environment (`None`: Jinja2 raises, st2 posts nothing).
    const DEFAULT_J2_GOLDENS: &[(&str, Option<&str>)] = &[
        (
            r##"{"id": "65a1f733e4b0a1b2c3d4e6aa", "action": {"ref": "ops.long_job"}, "runner": {"name": "local-shell-cmd"}, "status": "timeout", "elapsed_seconds": 3456000.5, "result": {"failed": true, "succeeded": false, "return_code": -9, "stdout": "step 1\nstep 2\n", "stderr": "", "error": "Action failed to complete in 3456000 seconds"}, "context": {"user": "leo"}, "web_url": ""}"##,
            Some("\nAction ops.long_job completed.\nstatus : timeout\nexecution: 65a1f733e4b0a1b2c3d4e6aa\n\n\nTook 9d0h0m0s to complete.\n\nresult :\n--------\nreturn_code : -9\nstdout :       \n  step 1\nstep 2\nerror : Action failed to complete in 3456000 seconds\n\n"),
        ),
        (
            r##"{"id": "65a1f711e4b0a1b2c3d4e688", "action": {"ref": "core.noop"}, "runner": {"name": "noop"}, "status": "succeeded", "elapsed_seconds": 0, "result": {}, "context": {"user": "judy"}}"##,
            Some("\nAction core.noop completed.\nstatus : succeeded\nexecution: 65a1f711e4b0a1b2c3d4e688\n\n\n\n"),
        ),
        (
            r##"{"id": "65a1f4dde4b0a1b2c3d4e644", "action": {"ref": "core.http"}, "runner": {"name": "http-request"}, "status": "succeeded", "elapsed_seconds": 0.75, "parameters": {"url": "https://api.example.com/v1/status", "method": "GET"}, "result": {"status_code": 200, "body": {"service": "billing", "healthy": true, "checks": [{"name": "db", "ok": true}, {"name": "queue", "ok": false, "lag": 12.5}], "note": null}, "parsed": true, "headers": {"Content-Type": "application/json", "X-Request-Id": "abc-123"}}, "context": {"user": "frank", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261508", "name": "http_status"}}, "web_url": "https://st2.example.com/#/history/65a1f4dde4b0a1b2c3d4e644/general"}"##,
            Some("\nAction core.http completed.\nstatus : succeeded\nexecution: 65a1f4dde4b0a1b2c3d4e644\n\nweb_url: https://st2.example.com/#/history/65a1f4dde4b0a1b2c3d4e644/general\n\nTook 0.75μs to complete.\n\nresult :\n--------\n  status_code : 200\nbody : \n  service : billing\n  healthy : True\n  checks : [{'name': 'db', 'ok': True}, {'name': 'queue', 'ok': False, 'lag': 12.5}]\n  note : None\nparsed : True\nheaders : \n  Content-Type : application/json\n  X-Request-Id : abc-123\n\n"),
        ),
        (
            r##"{"id": "65a1f777e4b0a1b2c3d4e6ee", "action": {"ref": "core.local"}, "runner": {"name": "local-shell-cmd"}, "status": "succeeded", "elapsed_seconds": 1e-05, "result": {"return_code": 0, "stdout": "x", "stderr": "", "succeeded": true, "failed": false}, "context": {"user": "pat"}}"##,
            Some("\nAction core.local completed.\nstatus : succeeded\nexecution: 65a1f777e4b0a1b2c3d4e6ee\n\n\nTook 1e-05μs to complete.\n\nresult :\n--------\nstdout : x\n\n"),
        ),
        (
            r##"{"id": "65a1f700e4b0a1b2c3d4e677", "action": {"ref": "mypack.list_hosts"}, "runner": {"name": "action-chain"}, "status": "succeeded", "elapsed_seconds": 7200, "result": ["web1", "web2", {"db": 1}, true, null, 2.0], "context": {"user": "ivan"}}"##,
            Some("\nAction mypack.list_hosts completed.\nstatus : succeeded\nexecution: 65a1f700e4b0a1b2c3d4e677\n\n\nTook 2h0m0s to complete.\n\nresult :\n--------\n['web1', 'web2', {'db': 1}, True, None, 2.0]\n"),
        ),
        (
            r##"{"id": "65a1f1d3e4b0a1b2c3d4e600", "action": {"ref": "core.local_sudo"}, "runner": {"name": "local-shell-script"}, "status": "failed", "elapsed_seconds": 3.5, "parameters": {"cmd": "systemctl restart nginx"}, "result": {"failed": true, "succeeded": false, "return_code": 1, "stdout": "", "stderr": "Job for nginx.service failed because the control process exited with error code.\nSee \"systemctl status nginx.service\" and \"journalctl -xe\" for details.\n"}, "context": {"user": "bob", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261505", "name": "restart"}}, "web_url": "https://st2.example.com/#/history/65a1f1d3e4b0a1b2c3d4e600/general"}"##,
            Some("\nAction core.local_sudo completed.\nstatus : failed\nexecution: 65a1f1d3e4b0a1b2c3d4e600\n\nweb_url: https://st2.example.com/#/history/65a1f1d3e4b0a1b2c3d4e600/general\n\nTook 4s to complete.\n\nresult :\n--------\nreturn_code : 1\nstderr :       \n  Job for nginx.service failed because the control process exited with error code.\nSee \"systemctl status nginx.service\" and \"journalctl -xe\" for details.\n\n"),
        ),
        (
            r##"{"id": "65a1f0c2e4b0a1b2c3d4e5f6", "action": {"ref": "core.local", "name": "local", "pack": "core", "runner_type": "local-shell-cmd"}, "runner": {"name": "local-shell-cmd", "runner_module": "local_runner"}, "liveaction": {"id": "65a1f0c2e4b0a1b2c3d4e5f5", "action": "core.local"}, "status": "succeeded", "start_timestamp": "2024-01-13T02:14:58.123456Z", "end_timestamp": "2024-01-13T02:14:58.335790Z", "elapsed_seconds": 0.212334, "parameters": {"cmd": "uptime; df -h /"}, "result": {"failed": false, "succeeded": true, "return_code": 0, "stdout": " 02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /", "stderr": ""}, "context": {"user": "alice", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261504", "name": "run_local"}, "api_user": "alice", "source_channel": "ops"}, "log": [{"status": "requested", "timestamp": "2024-01-13T02:14:58.100000Z"}], "web_url": "https://st2.example.com/#/history/65a1f0c2e4b0a1b2c3d4e5f6/general"}"##,
            Some("\nAction core.local completed.\nstatus : succeeded\nexecution: 65a1f0c2e4b0a1b2c3d4e5f6\n\nweb_url: https://st2.example.com/#/history/65a1f0c2e4b0a1b2c3d4e5f6/general\n\nTook 0.212334μs to complete.\n\nresult :\n--------\nstdout :       \n  02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /\n\n"),
        ),
        (
            r##"{"id": "65a1f722e4b0a1b2c3d4e699", "action": {"ref": "core.pause"}, "runner": {"name": "local-shell-cmd"}, "status": "canceled", "context": {"user": "ken"}}"##,
            Some("\nAction core.pause completed.\nstatus : canceled\nexecution: 65a1f722e4b0a1b2c3d4e699\n\n\n\n"),
        ),
        (
            r##"{"id": "65a1f5eee4b0a1b2c3d4e655", "action": {"ref": "ops.deploy"}, "runner": {"name": "orquesta"}, "status": "succeeded", "elapsed_seconds": 93784.2, "parameters": {"app": "shop", "version": "2.4.0"}, "result": {"output": {"deployed": ["web-1", "web-2"], "summary": "Deployed shop 2.4.0 to 2 hosts\nAll health checks passed", "rollback": false, "stats": {"duration": 312, "retries": 0}}, "errors": []}, "context": {"user": "grace", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261509", "name": "deploy"}}, "web_url": "https://st2.example.com/#/history/65a1f5eee4b0a1b2c3d4e655/general"}"##,
            Some("\nAction ops.deploy completed.\nstatus : succeeded\nexecution: 65a1f5eee4b0a1b2c3d4e655\n\nweb_url: https://st2.example.com/#/history/65a1f5eee4b0a1b2c3d4e655/general\n\nTook 1d2h3m4s to complete.\n\nresult :\n--------\noutput : \n  deployed : ['web-1', 'web-2']\n  summary :       \n    Deployed shop 2.4.0 to 2 hosts\nAll health checks passed\n  rollback : False\n  stats : \n    duration : 312\n    retries : 0\nerrors : []\n\n"),
        ),
        (
            r##"{"id": "65a1f3bbe4b0a1b2c3d4e622", "action": {"ref": "examples.isprime"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 1.4999, "parameters": {"value": 7}, "result": {"exit_code": 0, "result": {"prime": true, "value": 7, "factors": [], "checked_by": "trial division", "ratio": 0.5}, "stderr": "st2.actions.python.PrimeChecker: DEBUG    value=7\n", "stdout": "checking 7\nit is prime"}, "context": {"user": "dave", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261507", "name": "isprime"}}, "web_url": "https://st2.example.com/#/history/65a1f3bbe4b0a1b2c3d4e622/general"}"##,
            Some("\nAction examples.isprime completed.\nstatus : succeeded\nexecution: 65a1f3bbe4b0a1b2c3d4e622\n\nweb_url: https://st2.example.com/#/history/65a1f3bbe4b0a1b2c3d4e622/general\n\nTook 1s to complete.\n\nresult :\n--------\nresult : \n  prime : True\n  value : 7\n  factors : []\n  checked_by : trial division\n  ratio : 0.5\nstderr : st2.actions.python.PrimeChecker: DEBUG    value=7\nstdout :       \n  checking 7\nit is prime\n\n"),
        ),
        (
            r##"{"id": "65a1f3cce4b0a1b2c3d4e633", "action": {"ref": "packs.get_version"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 2, "parameters": {}, "result": {"exit_code": 0, "result": "3.8.1", "stderr": "", "stdout": ""}, "context": {"user": "erin"}}"##,
            Some("\nAction packs.get_version completed.\nstatus : succeeded\nexecution: 65a1f3cce4b0a1b2c3d4e633\n\n\nTook 2s to complete.\n\nresult :\n--------\nresult : 3.8.1\n\n"),
        ),
        (
            r##"{"id": "65a1f766e4b0a1b2c3d4e6dd", "action": {"ref": "core.remote"}, "runner": {"name": "remote-shell-cmd"}, "status": "failed", "elapsed_seconds": 1, "result": {"web1": "unexpected string"}, "context": {"user": "olga"}}"##,
            None,
        ),
        (
            r##"{"id": "65a1f2aae4b0a1b2c3d4e611", "action": {"ref": "core.remote"}, "runner": {"name": "remote-shell-cmd"}, "status": "failed", "elapsed_seconds": 65.5, "parameters": {"cmd": "uname -r", "hosts": "web1,web2"}, "result": {"web1.example.com": {"failed": false, "succeeded": true, "return_code": 0, "stdout": "5.15.0-91-generic", "stderr": ""}, "web2.example.com": {"failed": true, "succeeded": false, "return_code": 255, "stdout": "", "stderr": "ssh: connect to host web2.example.com port 22: Connection refused\nretrying...", "error": "Failed to connect to host."}}, "context": {"user": "carol", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261506", "name": "remote_run"}}}"##,
            Some("\nAction core.remote completed.\nstatus : failed\nexecution: 65a1f2aae4b0a1b2c3d4e611\n\n\nTook 1m6s to complete.\n\nresult :\n--------\nweb1.example.com : \n  stdout : 5.15.0-91-generic\n\nweb2.example.com : \n  return_code : 255\n  stderr :       \n    ssh: connect to host web2.example.com port 22: Connection refused\nretrying...\n  error : Failed to connect to host.\n\n"),
        ),
        (
            r##"{"id": "65a1f6ffe4b0a1b2c3d4e666", "action": {"ref": "mypack.greet"}, "runner": {"name": "noop-like"}, "status": "succeeded", "parameters": {"name": "Zoë"}, "result": "Hello, Zoë! ✓ ünïcödé «ok»", "context": {"user": "heidi"}}"##,
            Some("\nAction mypack.greet completed.\nstatus : succeeded\nexecution: 65a1f6ffe4b0a1b2c3d4e666\n\n\n\nresult :\n--------\nHello, Zoë! ✓ ünïcödé «ok»\n"),
        ),
        (
            r##"{"id": "65a1f755e4b0a1b2c3d4e6cc", "action": {"ref": "mypack.tricky"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 0.5, "result": {"stdout": "it's \"quoted\"\ttab", "result": {"nested": {"list": [1, "two", {"three": 3}], "quote": "it's", "both": "it's \"x\"", "uni": "Zoë ✓", "nl": "a\nb", "empty": "", "zero": 0, "f": 1e-05, "big": 1e+16, "neg": -0.0}}, "exit_code": 0, "stderr": ""}, "context": {"user": "nick", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261510", "name": "tricky"}}}"##,
            Some("\nAction mypack.tricky completed.\nstatus : succeeded\nexecution: 65a1f755e4b0a1b2c3d4e6cc\n\n\nTook 0.5μs to complete.\n\nresult :\n--------\nstdout : it's \"quoted\"\ttab\nresult : \n  nested : \n    list : [1, 'two', {'three': 3}]\n    quote : it's\n    both : it's \"x\"\n    uni : Zoë ✓\n    nl :       \n      a\nb\n    empty : \n    zero : 0\n    f : 1e-05\n    big : 1e+16\n    neg : -0.0\n\n"),
        ),
        (
            r##"{"id": "65a1f744e4b0a1b2c3d4e6bb", "action": {"ref": "ops.forever"}, "runner": {"name": "windows-cmd"}, "status": "succeeded", "elapsed_seconds": 31626061, "result": {"exit_code": 0, "result": null, "stdout": "  padded output  ", "stderr": "warning: one\nwarning: two"}, "context": {"user": "mia"}}"##,
            Some("\nAction ops.forever completed.\nstatus : succeeded\nexecution: 65a1f744e4b0a1b2c3d4e6bb\n\n\nTook 1y1d1h1m1s to complete.\n\nresult :\n--------\nstdout : padded output\nstderr :       \n  warning: one\nwarning: two\n\n"),
        ),
        (
            r##"{"id": "x", "action": {"ref": "a.b"}, "status": "succeeded", "result": {"k": {}, "e": "", "n": 0, "s": "a\n\n", "t": "\n x \n y \n", "u": "\u001c one \u001d", "w": "  \n  ", "lst": [{"a": 1}], "f": 1.5e-07}, "runner": {"name": "orquesta"}, "context": {}}"##,
            Some("\nAction a.b completed.\nstatus : succeeded\nexecution: x\n\n\n\nresult :\n--------\nk : \ne : \nn : 0\ns : a\nt :       \n  x \n y\nu : one\nw : \nlst : [{'a': 1}]\nf : 1.5e-07\n\n"),
        ),
        (
            r##"{"id": "x", "action": {"ref": "a.b"}, "status": "succeeded", "result": {"stdout": "", "stderr": "", "return_code": 0}, "runner": {"name": "local-shell-cmd"}, "context": {}}"##,
            Some("\nAction a.b completed.\nstatus : succeeded\nexecution: x\n\n\n\nresult :\n--------\n\n"),
        ),
        (
            r##"{"id": "x", "action": {"ref": "a.b"}, "status": "succeeded", "result": {"h": {"stdout": "o", "succeeded": true}}, "runner": {"name": "remote-shell-script"}, "context": {}, "elapsed_seconds": 86400}"##,
            Some("\nAction a.b completed.\nstatus : succeeded\nexecution: x\n\n\nTook 1d0h0m0s to complete.\n\nresult :\n--------\nh : \n  stdout : o\n\n"),
        ),
        (
            r##"{"id": "x", "action": {"ref": "a.b"}, "status": "succeeded", "result": {"stderr": "e", "exit_code": 2, "result": [1]}, "runner": {"name": "windows-script"}, "context": {}, "elapsed_seconds": -3}"##,
            Some("\nAction a.b completed.\nstatus : succeeded\nexecution: x\n\n\nTook -3μs to complete.\n\nresult :\n--------\nstderr : e\nexit_code : 2\nresult : [1]\n\n"),
        ),
        (
            r##"{"id": "x", "action": {"ref": null}, "result": {"stdout": "py", "exit_code": 1}, "runner": {"name": "run-python"}, "context": {}}"##,
            Some("\nAction None completed.\nstatus : \nexecution: x\n\n\n\nresult :\n--------\nstdout : py\nexit_code : 1\n\n"),
        ),
        (
            r##"{"id": "x", "action": {}, "result": [1], "runner": {}, "context": {}, "elapsed_seconds": true}"##,
            Some("\nAction  completed.\nstatus : \nexecution: x\n\n\nTook 1s to complete.\n\nresult :\n--------\n[1]\n"),
        ),
        (
            r##"{"id": "x", "result": {"a": 1}, "context": {}}"##,
            None,
        ),
        (
            r##"{"result": 5, "runner": {"name": "http-request"}}"##,
            None,
        ),
    ];

    #[test]
    fn default_template_matches_jinja2_goldens() {
        for (doc, expected) in DEFAULT_J2_GOLDENS {
            let e: Value = serde_json::from_str(doc).unwrap();
            let got = default_result_message(&e);
            match expected {
                Some(want) => assert_eq!(&got, want, "{doc}"),
                // Jinja2 raises here; the model still answers with some text.
                None => assert!(got.starts_with("\nAction "), "{doc}"),
            }
        }
    }
}
