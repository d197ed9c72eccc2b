//! The small part of Jinja that st2 aliases use in practice, and the chatops pack's
//! `default.j2` result template rendered the way st2's Jinja environment renders it.
//!
//! Supported: `{{ dotted.path }}` expressions (`a.b`, `a.0`, `a['b']`, `a[0]`) with
//! whitespace tolerance and `{{-`/`-}}` whitespace control, `{# comments #}`, values
//! printed the way Python's `str()` prints them, Jinja's removal of one trailing
//! newline, and `StrictUndefined` error texts (`'x' is undefined`,
//! `'dict object' has no attribute 'y'`). Anything else inside `{{ }}` and every
//! `{% %}` statement is left in the output unchanged.

use std::fmt::Write as _;

use chrono::{Datelike, Timelike};
use serde_json::Value;

use super::util::{py_float, py_str, py_truthy};

/// One top-level variable of a render context.
pub(crate) struct Var<'a> {
    /// Variable name as used in templates.
    pub name: &'a str,
    /// Its value.
    pub value: &'a Value,
    /// Python type name Jinja reports for a missing attribute of the top-level object
    /// (st2 passes API objects, not dicts, to some templates).
    pub type_name: Option<&'static str>,
}

/// A render context: variables, plus whether `st2kv.*` lookups exist (they render
/// as empty strings, like st2's `KeyValueLookup` for a missing key).
pub(crate) struct Context<'a> {
    pub vars: Vec<Var<'a>>,
    pub st2kv: bool,
}

/// Type name st2's Jinja reports for attributes missing on an execution.
pub(crate) const EXECUTION_API: &str = "st2common.models.api.execution.ActionExecutionAPI";
/// Type name st2's Jinja reports for attributes missing on an alias.
pub(crate) const ALIAS_API: &str = "st2common.models.api.action.ActionAliasAPI";

enum Step {
    Attr(String),
    Index(i64),
}

enum Lookup<'a> {
    Found(&'a Value),
    Empty,
    Undefined(String),
}

/// Render `template`. With `strict`, an undefined value is an error carrying Jinja's
/// message; otherwise it renders as an empty string.
pub(crate) fn render(template: &str, ctx: &Context<'_>, strict: bool) -> Result<String, String> {
    let mut src = template.replace("\r\n", "\n").replace('\r', "\n");
    if src.ends_with('\n') {
        src.pop();
    }
    let mut out = String::with_capacity(src.len());
    let mut rest = src.as_str();
    let mut strip_next = false;
    loop {
        let next_expr = rest.find("{{");
        let next_comment = rest.find("{#");
        let (pos, is_comment) = match (next_expr, next_comment) {
            (None, None) => {
                push_literal(&mut out, rest, strip_next);
                break;
            }
            (Some(e), None) => (e, false),
            (None, Some(c)) => (c, true),
            (Some(e), Some(c)) => {
                if c < e {
                    (c, true)
                } else {
                    (e, false)
                }
            }
        };
        let close = if is_comment { "#}" } else { "}}" };
        let after_open = &rest[pos + 2..];
        let Some(end) = after_open.find(close) else {
            push_literal(&mut out, rest, strip_next);
            break;
        };
        let inner = &after_open[..end];
        let strip_before = inner.starts_with('-');
        let strip_after = inner.ends_with('-') && inner.len() > 1 || inner == "-";
        let literal = &rest[..pos];
        push_literal(&mut out, literal, strip_next);
        if strip_before {
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
        }
        strip_next = strip_after;
        let whole = &rest[pos..pos + 2 + end + 2];
        rest = &after_open[end + 2..];
        if is_comment {
            continue;
        }
        let expr = inner.strip_prefix('-').unwrap_or(inner);
        let expr = if strip_after {
            expr.strip_suffix('-').unwrap_or(expr)
        } else {
            expr
        };
        match parse_path(expr) {
            None => out.push_str(whole),
            Some((name, steps)) => match lookup(ctx, &name, &steps) {
                Lookup::Found(v) => out.push_str(&py_str(v)),
                Lookup::Empty => {}
                Lookup::Undefined(msg) => {
                    if strict {
                        return Err(msg);
                    }
                }
            },
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, text: &str, strip_leading: bool) {
    if strip_leading {
        out.push_str(text.trim_start());
    } else {
        out.push_str(text);
    }
}

fn parse_path(expr: &str) -> Option<(String, Vec<Step>)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    let ident = |i: &mut usize| -> Option<String> {
        let start = *i;
        if *i < chars.len() && (chars[*i].is_alphabetic() || chars[*i] == '_') {
            *i += 1;
            while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            Some(chars[start..*i].iter().collect())
        } else {
            None
        }
    };
    let name = ident(&mut i)?;
    let mut steps = Vec::new();
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        match chars[i] {
            '.' => {
                i += 1;
                skip_ws(&mut i);
                if i < chars.len() && chars[i].is_ascii_digit() {
                    let start = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    let n: String = chars[start..i].iter().collect();
                    steps.push(Step::Index(n.parse().ok()?));
                } else {
                    steps.push(Step::Attr(ident(&mut i)?));
                }
            }
            '[' => {
                i += 1;
                skip_ws(&mut i);
                if i >= chars.len() {
                    return None;
                }
                let q = chars[i];
                if q == '\'' || q == '"' {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != q {
                        i += 1;
                    }
                    if i >= chars.len() {
                        return None;
                    }
                    let key: String = chars[start..i].iter().collect();
                    i += 1;
                    steps.push(Step::Attr(key));
                } else {
                    let start = i;
                    if i < chars.len() && chars[i] == '-' {
                        i += 1;
                    }
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    let n: String = chars[start..i].iter().collect();
                    steps.push(Step::Index(n.parse().ok()?));
                }
                skip_ws(&mut i);
                if i >= chars.len() || chars[i] != ']' {
                    return None;
                }
                i += 1;
            }
            _ => return None,
        }
    }
    Some((name, steps))
}

fn type_repr(v: &Value, type_name: Option<&'static str>) -> String {
    if let Some(t) = type_name {
        return format!("'{t} object'");
    }
    match v {
        Value::Null => "'None'".to_string(),
        Value::Bool(_) => "'bool object'".to_string(),
        Value::Number(n) if n.is_f64() => "'float object'".to_string(),
        Value::Number(_) => "'int object'".to_string(),
        Value::String(_) => "'str object'".to_string(),
        Value::Array(_) => "'list object'".to_string(),
        Value::Object(_) => "'dict object'".to_string(),
    }
}

fn lookup<'a>(ctx: &'a Context<'a>, name: &str, steps: &[Step]) -> Lookup<'a> {
    if ctx.st2kv && name == "st2kv" {
        return Lookup::Empty;
    }
    let Some(var) = ctx.vars.iter().find(|v| v.name == name) else {
        return Lookup::Undefined(format!("'{name}' is undefined"));
    };
    let mut cur = var.value;
    let mut type_name = var.type_name;
    for step in steps {
        let next = match (step, cur) {
            (Step::Attr(k), Value::Object(m)) => m.get(k),
            (Step::Index(n), Value::Array(a)) => {
                let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
                let idx = if *n < 0 { len + n } else { *n };
                usize::try_from(idx).ok().and_then(|i| a.get(i))
            }
            (Step::Index(n), Value::Object(m)) => m.get(&n.to_string()),
            _ => None,
        };
        let Some(v) = next else {
            let what = match step {
                Step::Attr(k) => format!("'{k}'"),
                Step::Index(n) => n.to_string(),
            };
            return Lookup::Undefined(format!(
                "{} has no attribute {what}",
                type_repr(cur, type_name)
            ));
        };
        cur = v;
        type_name = None;
    }
    Lookup::Found(cur)
}

/// st2's `to_human_time_from_seconds` filter (`3m5s`, `0.5μs` for under a second).
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

/// Keys of `map` in st2's order: `preferred` first (as st2's runners build their
/// results), then the rest sorted.
fn ordered<'a>(
    map: &'a serde_json::Map<String, Value>,
    preferred: &[&str],
) -> Vec<(&'a str, &'a Value)> {
    let mut out: Vec<(&str, &Value)> = preferred
        .iter()
        .filter_map(|k| map.get_key_value(*k).map(|(k, v)| (k.as_str(), v)))
        .collect();
    for (k, v) in map {
        if !preferred.contains(&k.as_str()) {
            out.push((k.as_str(), v));
        }
    }
    out
}

/// The `serialize` macro of `default.j2`.
fn serialize(items: &[(&str, &Value)], prefix: &str, out: &mut String) {
    for (key, value) in items {
        out.push_str(prefix);
        out.push_str(key);
        out.push_str(" : ");
        match value {
            Value::Object(m) => {
                out.push('\n');
                let inner = ordered(m, &[]);
                serialize(&inner, &format!("{prefix}  "), out);
            }
            Value::String(s) if s.trim().lines().count() > 1 => {
                out.push_str("      \n");
                out.push_str(prefix);
                out.push_str("  ");
                out.push_str(s.trim());
                out.push('\n');
            }
            other => {
                out.push_str(py_str(other).trim());
                out.push('\n');
            }
        }
    }
}

const LOCAL_ORDER: &[&str] = &[
    "failed",
    "succeeded",
    "return_code",
    "stdout",
    "stderr",
    "error",
];

fn select<'a>(
    map: &'a serde_json::Map<String, Value>,
    order: &[&str],
    keep: &[&str],
) -> Vec<(&'a str, &'a Value)> {
    ordered(map, order)
        .into_iter()
        .filter(|(k, v)| keep.contains(k) && py_truthy(v))
        .collect()
}

/// The text chatops' `format_execution_result` produces from `default.j2` for an
/// execution (st2's Jinja environment: `trim_blocks`, `lstrip_blocks`).
pub(crate) fn default_result_message(execution: &Value) -> String {
    let field = |k: &str| execution.get(k).cloned().unwrap_or(Value::Null);
    let action_ref = execution
        .get("action")
        .and_then(|a| a.get("ref"))
        .map(py_str)
        .unwrap_or_default();
    let mut out = String::new();
    out.push('\n');
    let _ = writeln!(out, "Action {action_ref} completed.");
    let _ = writeln!(out, "status : {}", py_str(&field("status")));
    let _ = write!(out, "execution: {}\n\n", py_str(&field("id")));
    let web_url = field("web_url");
    if py_truthy(&web_url) {
        let _ = writeln!(out, "web_url: {}", py_str(&web_url));
    }
    out.push('\n');
    let elapsed = field("elapsed_seconds");
    if py_truthy(&elapsed) {
        if let Some(secs) = elapsed.as_f64() {
            let _ = writeln!(out, "Took {} to complete.", human_time(secs));
        }
    }
    out.push('\n');
    let result = field("result");
    if py_truthy(&result) {
        out.push_str("result :\n--------\n");
        let runner = execution
            .get("runner")
            .and_then(|r| r.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match (&result, runner) {
            (
                Value::Object(m),
                "run-python" | "python-script" | "windows-cmd" | "windows-script",
            ) => {
                let keep = ["result", "stdout", "stderr", "exit_code"];
                serialize(
                    &select(m, &["exit_code", "result", "stderr", "stdout"], &keep),
                    "",
                    &mut out,
                );
                out.push('\n');
            }
            (Value::Object(m), "remote-shell-cmd" | "remote-shell-script") => {
                for (host, value) in ordered(m, &[]) {
                    out.push_str(host);
                    out.push_str(" : \n");
                    if let Value::Object(hm) = value {
                        let keep = ["stdout", "stderr", "return_code", "error"];
                        serialize(&select(hm, LOCAL_ORDER, &keep), "  ", &mut out);
                    }
                    out.push('\n');
                }
            }
            (Value::Object(m), "local-shell-cmd" | "local-shell-script") => {
                let keep = ["stdout", "stderr", "return_code", "error"];
                serialize(&select(m, LOCAL_ORDER, &keep), "", &mut out);
                out.push('\n');
            }
            // http-request and every other runner: the whole mapping.
            (Value::Object(m), _) => {
                serialize(&ordered(m, &[]), "", &mut out);
                out.push('\n');
            }
            (other, _) => {
                out.push_str(&py_str(other));
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(execution: &'a Value, alias: &'a Value) -> Context<'a> {
        Context {
            vars: vec![
                Var {
                    name: "execution",
                    value: execution,
                    type_name: Some(EXECUTION_API),
                },
                Var {
                    name: "actionalias",
                    value: alias,
                    type_name: Some(ALIAS_API),
                },
            ],
            st2kv: false,
        }
    }

    #[test]
    fn renders_dotted_paths_with_whitespace() {
        let e = json!({"id": "abc", "parameters": {"cmd": "date", "n": 3, "l": ["x", "y"]}});
        let a = json!({"name": "run"});
        let c = ctx(&e, &a);
        assert_eq!(
            render(
                "id={{execution.id}} {{ execution.parameters.cmd }}",
                &c,
                true
            )
            .unwrap(),
            "id=abc date"
        );
        assert_eq!(
            render("{{ execution['parameters'][\"n\"] }} {{ execution.parameters.l[1] }} {{execution.parameters.l.0}}", &c, true).unwrap(),
            "3 y x"
        );
        assert_eq!(
            render("{{ execution.parameters }}", &c, true).unwrap(),
            "{'cmd': 'date', 'l': ['x', 'y'], 'n': 3}"
        );
        assert_eq!(
            render("a {{- actionalias.name -}}  b\n", &c, true).unwrap(),
            "arunb"
        );
        assert_eq!(render("x{# note #}y", &c, true).unwrap(), "xy");
        assert_eq!(
            render("{{ execution.id | upper }}", &c, true).unwrap(),
            "{{ execution.id | upper }}"
        );
        assert_eq!(
            render("{% if x %}y{% endif %}", &c, true).unwrap(),
            "{% if x %}y{% endif %}"
        );
        assert_eq!(
            render("unterminated {{ x", &c, true).unwrap(),
            "unterminated {{ x"
        );
    }

    #[test]
    fn strict_undefined_messages() {
        let e = json!({"id": "abc", "parameters": {"cmd": "date"}, "list": [1]});
        let a = json!({});
        let c = ctx(&e, &a);
        assert_eq!(
            render("{{ foo }}", &c, true).unwrap_err(),
            "'foo' is undefined"
        );
        assert_eq!(
            render("{{ foo.bar }}", &c, true).unwrap_err(),
            "'foo' is undefined"
        );
        assert_eq!(
            render("{{ execution.nope }}", &c, true).unwrap_err(),
            "'st2common.models.api.execution.ActionExecutionAPI object' has no attribute 'nope'"
        );
        assert_eq!(
            render("{{ execution.parameters.nope }}", &c, true).unwrap_err(),
            "'dict object' has no attribute 'nope'"
        );
        assert_eq!(
            render("{{ execution.list[3] }}", &c, true).unwrap_err(),
            "'list object' has no attribute 3"
        );
        assert_eq!(render("x{{ foo }}y", &c, false).unwrap(), "xy");
    }

    #[test]
    fn human_times() {
        assert_eq!(human_time(0.021), "0.021\u{3bc}s");
        assert_eq!(human_time(2.5), "2s");
        assert_eq!(human_time(65.0), "1m5s");
        assert_eq!(human_time(3725.4), "1h2m5s");
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
}
