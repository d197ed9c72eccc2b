//! Jinja, as st2 renders alias templates: `minijinja` set up like st2's
//! `get_jinja_environment` (`st2common/util/jinja.py`): `trim_blocks`,
//! `lstrip_blocks`, `Undefined` (lenient: `format_execution_result` asks for
//! `allow_undefined=True`) or `StrictUndefined` (ack formats and every
//! `render_values`), the `in` test, and st2's own filters that chat formats use
//! (`to_json_string`, `to_complex`, `json_escape`, `from_json_string`,
//! `to_human_time_from_seconds`, `regex_match`/`search`/`replace`/`substring`,
//! `basename`, `dirname`, `use_none`). Not modelled: `to_yaml_string`,
//! `from_yaml_string`, `jsonpath_query`, `decrypt_kv`, the `version_*` filters (a
//! template using one fails to render).
//!
//! Jinja2 builtins minijinja lacks or has differently are written here after
//! `jinja2/filters.py` (3.1): `truncate` (`leeway` 5), `wordcount` (`\w+`), `center`
//! and `dictsort` (items are `(key, value)` tuples), each taking its arguments by
//! position or keyword as Python does.
//!
//! Values print as Python's `str()` prints them (`True`, `None`, `{'a': 1}`, `2.0`,
//! `('k', 1)`, `100000000000000000000` for `10**20`: integers in full as far as
//! minijinja's `u128` reaches, where Python's are unbounded),
//! and `StrictUndefined`'s errors carry Jinja2's texts (`'x' is undefined`,
//! `'dict object' has no attribute 'y'`, `'…ActionExecutionAPI object' has no
//! attribute 'z'`), which st2 puts into acknowledgement messages. Python methods on
//! strings, dicts and lists come from `minijinja-contrib`'s `pycompat`; `six.iteritems`
//! is provided for `default.j2`-style templates. A render is bounded by fuel (st2 would
//! let the action time out).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{
    Enumerator, Kwargs, Object, ObjectRepr, Rest, Value as Mj, ValueKind, ValueOrKwargs,
};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};
use serde_json::{Map, Value};

use super::util::{py_float, py_json_dumps, py_repr, py_str, py_str_repr};

/// Why a render failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JinjaError {
    /// `jinja2.exceptions.UndefinedError`, with Jinja2's message.
    Undefined(String),
    /// Anything else (syntax errors, type errors, unknown filters, out of fuel).
    Other(String),
}

impl fmt::Display for JinjaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JinjaError::Undefined(m) | JinjaError::Other(m) => f.write_str(m),
        }
    }
}

/// An st2 API object passed to a template (not a dict): Jinja names its type in
/// errors and prints it as `BaseAPI.__str__` does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiType {
    /// `module.Class`, as Jinja's `object_type_repr` prints it.
    pub full: &'static str,
    /// `Class`, as `BaseAPI.__str__` prints it.
    pub short: &'static str,
}

/// `ActionExecutionAPI` (the `execution` of an ack template).
pub(crate) const EXECUTION_API: ApiType = ApiType {
    full: "st2common.models.api.execution.ActionExecutionAPI",
    short: "ActionExecutionAPI",
};
/// `ActionAliasAPI` (the `actionalias` of an ack template).
pub(crate) const ALIAS_API: ApiType = ApiType {
    full: "st2common.models.api.action.ActionAliasAPI",
    short: "ActionAliasAPI",
};
/// st2client's `ActionAlias` resource (the `alias` of a result template).
pub(crate) const CLIENT_ALIAS: ApiType = ApiType {
    full: "st2client.models.action_alias.ActionAlias",
    short: "ActionAlias",
};

/// One top-level template variable.
#[derive(Debug, Clone)]
pub(crate) struct Var {
    pub name: &'static str,
    pub value: Value,
    /// `Some` when st2 passes an object rather than a dict.
    pub api: Option<ApiType>,
}

impl Var {
    pub(crate) fn dict(name: &'static str, value: Value) -> Var {
        Var {
            name,
            value,
            api: None,
        }
    }

    pub(crate) fn api(name: &'static str, value: Value, api: ApiType) -> Var {
        Var {
            name,
            value,
            api: Some(api),
        }
    }
}

/// Extra names a context can have besides its variables.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extras {
    /// `six` (`format_execution_result` passes the module).
    pub six: bool,
    /// `st2kv` (immutable parameters): every key renders as an empty string, as a
    /// missing key of st2's `KeyValueLookup` does.
    pub st2kv: bool,
}

thread_local! {
    /// The message of the most recent undefined lookup in this thread's render.
    static LAST_MISS: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn record_miss(msg: String) {
    LAST_MISS.with(|m| *m.borrow_mut() = Some(msg));
}

/// Names the engine resolves itself after asking the context.
const ENGINE_NAMES: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "lipsum",
    "cycler",
    "joiner",
    "loop",
    "self",
    "varargs",
    "kwargs",
    "caller",
];

/// The template context: its variables; a missing one is recorded as Jinja's
/// `'name' is undefined`.
#[derive(Debug)]
struct Root {
    vars: BTreeMap<String, Mj>,
}

impl Object for Root {
    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        let name = key.as_str()?;
        let found = self.vars.get(name).cloned();
        if found.is_none() && !ENGINE_NAMES.contains(&name) {
            record_miss(format!("{} is undefined", py_str_repr(name)));
        }
        found
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.vars.keys().map(|k| Mj::from(k.as_str())).collect())
    }
}

/// A JSON mapping or list seen by a template (or an st2 API object).
#[derive(Debug)]
struct Node {
    value: Value,
    api: Option<ApiType>,
}

impl Node {
    fn type_repr(&self) -> String {
        match (&self.api, &self.value) {
            (Some(api), _) => format!("{} object", api.full),
            (None, Value::Array(_)) => "list object".into(),
            (None, _) => "dict object".into(),
        }
    }
}

fn wrap(value: &Value, api: Option<ApiType>) -> Mj {
    match value {
        Value::Object(_) | Value::Array(_) => Mj::from_object(Node {
            value: value.clone(),
            api,
        }),
        Value::Null => Mj::from(()),
        Value::Bool(b) => Mj::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Mj::from(i),
            (None, Some(u)) => Mj::from(u),
            _ => Mj::from(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Mj::from(s.as_str()),
    }
}

impl Object for Node {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.value {
            Value::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        let found = match (&self.value, key.kind()) {
            (Value::Object(m), ValueKind::String) => key.as_str().and_then(|k| m.get(k)),
            (Value::Array(a), ValueKind::Number) => key.as_i64().and_then(|i| {
                let len = i64::try_from(a.len()).ok()?;
                let i = if i < 0 { len + i } else { i };
                usize::try_from(i).ok().and_then(|i| a.get(i))
            }),
            _ => None,
        };
        match found {
            Some(v) => Some(wrap(v, None)),
            None => {
                // Jinja2's Undefined hint (`Undefined._undefined_message`).
                let msg = match key.as_str() {
                    Some(k) => format!(
                        "{} has no attribute {}",
                        py_str_repr(&self.type_repr()),
                        py_str_repr(k)
                    ),
                    None => format!("{} has no element {key}", self.type_repr()),
                };
                record_miss(msg);
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match &self.value {
            Value::Array(a) => Enumerator::Seq(a.len()),
            Value::Object(m) => {
                Enumerator::Values(m.keys().map(|k| Mj::from(k.as_str())).collect())
            }
            _ => Enumerator::Empty,
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.py_str())
    }
}

impl Node {
    /// Python's `str()` of the value (`BaseAPI.__str__` for API objects).
    fn py_str(&self) -> String {
        match (&self.api, &self.value) {
            (Some(api), Value::Object(m)) => {
                let attrs: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", py_repr(v)))
                    .collect();
                format!("{}[{}]", api.short, attrs.join(", "))
            }
            (_, v) => py_str(v),
        }
    }
}

/// `st2kv.<scope>.<key>…`: any attribute is another lookup; prints as `""`.
#[derive(Debug)]
struct KvLookup;

impl Object for KvLookup {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, _key: &Mj) -> Option<Mj> {
        Some(Mj::from_object(KvLookup))
    }

    fn render(self: &Arc<Self>, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// The `six` module, for `six.iteritems(d)` and friends.
#[derive(Debug)]
struct Six;

impl Object for Six {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Mj],
    ) -> Result<Mj, Error> {
        let py = match method {
            "iteritems" => "items",
            "iterkeys" => "keys",
            "itervalues" => "values",
            "text_type" | "string_types" => {
                return match args.first() {
                    Some(v) => Ok(Mj::from(py_text(v))),
                    None => Ok(Mj::from("")),
                }
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        };
        let Some(target) = args.first() else {
            return Err(Error::new(
                ErrorKind::MissingArgument,
                "six helper needs an argument",
            ));
        };
        if target.kind() != ValueKind::Map {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("'{}' object has no attribute '{py}'", py_type(target)),
            ));
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, target, py, &[])
    }
}

fn py_type(v: &Mj) -> &'static str {
    match v.kind() {
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        _ => "object",
    }
}

/// A minijinja value as JSON (Python's view of it).
fn to_json(v: &Mj) -> Value {
    if let Some(node) = v.downcast_object_ref::<Node>() {
        return node.value.clone();
    }
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Python's `str()` of a template value.
fn py_text(v: &Mj) -> String {
    if v.is_undefined() || v.downcast_object_ref::<KvLookup>().is_some() {
        return String::new();
    }
    if let Some(node) = v.downcast_object_ref::<Node>() {
        return node.py_str();
    }
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or("").to_string(),
        ValueKind::Plain | ValueKind::Invalid => v.to_string(),
        _ => {
            let mut out = String::new();
            write_py_repr(v, &mut out);
            out
        }
    }
}

/// Python's `repr()` of a template value, walking minijinja's own values (not their JSON
/// form): integers beyond 64 bits (`10**20`: Python's ints are unbounded, minijinja's reach
/// `u128`) print in full, and [`PyTuple`]s as tuples.
fn write_py_repr(v: &Mj, out: &mut String) {
    if let Some(node) = v.downcast_object_ref::<Node>() {
        match node.api {
            Some(_) => out.push_str(&node.py_str()),
            None => out.push_str(&py_repr(&node.value)),
        }
        return;
    }
    if let Some(t) = v.downcast_object_ref::<PyTuple>() {
        write_tuple(&t.0, out);
        return;
    }
    match v.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        // minijinja prints its integers (i64, i128, u128) in decimal, as Python does.
        ValueKind::Number if v.is_integer() => out.push_str(&v.to_string()),
        ValueKind::Number => out.push_str(&py_float(f64::try_from(v.clone()).unwrap_or(0.0))),
        ValueKind::String => out.push_str(&py_str_repr(v.as_str().unwrap_or(""))),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(items) = v.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_py_repr(&item, out);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(keys) = v.try_iter() {
                for (i, key) in keys.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_py_repr(&key, out);
                    out.push_str(": ");
                    write_py_repr(&v.get_item(&key).unwrap_or(Mj::UNDEFINED), out);
                }
            }
            out.push('}');
        }
        _ => out.push_str(&v.to_string()),
    }
}

fn write_tuple(items: &[Mj], out: &mut String) {
    out.push('(');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_py_repr(item, out);
    }
    // A 1-tuple is `(x,)`.
    if items.len() == 1 {
        out.push(',');
    }
    out.push(')');
}

/// A Python tuple (`dictsort`'s `(key, value)` items): a sequence for the template
/// (indexing, unpacking, `|list`), printed as `('k', 1)`.
#[derive(Debug)]
struct PyTuple(Vec<Mj>);

impl Object for PyTuple {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        let i = key.as_i64()?;
        let len = i64::try_from(self.0.len()).ok()?;
        let i = if i < 0 { len + i } else { i };
        usize::try_from(i).ok().and_then(|i| self.0.get(i).cloned())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_tuple(&self.0, &mut out);
        f.write_str(&out)
    }
}

/// Prints values as Python does; an undefined value is an error when strict.
fn py_formatter(
    out: &mut minijinja::Output<'_>,
    state: &mut State<'_, '_>,
    v: &Mj,
) -> Result<(), Error> {
    if v.is_undefined() && state.undefined_behavior() == UndefinedBehavior::Strict {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    out.write_str(&py_text(v))
        .map_err(|_| Error::new(ErrorKind::WriteFailure, "write failed"))
}

fn filter_error(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn to_json_string(value: &Mj, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item, key) = match separators.as_deref() {
        Some([a, b]) => (a.clone(), b.clone()),
        Some(_) => return Err(filter_error("separators must be a pair")),
        None => (",".to_string(), ": ".to_string()),
    };
    Ok(py_json_dumps(
        &to_json(value),
        indent,
        sort_keys.unwrap_or(false),
        &item,
        &key,
    ))
}

fn to_complex(value: &Mj) -> String {
    py_json_dumps(&to_json(value), None, false, ", ", ": ")
}

fn json_escape(value: &Mj) -> String {
    to_complex(value).trim_matches('"').to_string()
}

fn from_json_string(value: &Mj) -> Result<Mj, Error> {
    let v: Value = serde_json::from_str(&py_text(value))
        .map_err(|e| filter_error(format!("from_json_string: {e}")))?;
    Ok(wrap(&v, None))
}

fn to_human_time_from_seconds(value: &Mj) -> Result<String, Error> {
    super::template::human_time_of(&to_json(value))
        .ok_or_else(|| filter_error("to_human_time_from_seconds needs a number"))
}

fn regex(pattern: &str, ignorecase: bool) -> Result<fancy_regex::Regex, Error> {
    super::pyre::compile(pattern, if ignorecase { "i" } else { "" })
        .map_err(|e| filter_error(format!("re.error: {e}")))
}

fn ignorecase(kwargs: &Kwargs, positional: Option<bool>) -> Result<bool, Error> {
    let kw: Option<bool> = kwargs.get("ignorecase")?;
    kwargs.assert_all_used()?;
    Ok(kw.or(positional).unwrap_or(false))
}

fn regex_match(value: &Mj, pattern: &str, ic: Option<bool>, kwargs: Kwargs) -> Result<bool, Error> {
    let re = regex(&format!(r"\A(?:{pattern})"), ignorecase(&kwargs, ic)?)?;
    re.is_match(&py_text(value))
        .map_err(|e| filter_error(e.to_string()))
}

fn regex_search(
    value: &Mj,
    pattern: &str,
    ic: Option<bool>,
    kwargs: Kwargs,
) -> Result<bool, Error> {
    let re = regex(pattern, ignorecase(&kwargs, ic)?)?;
    re.is_match(&py_text(value))
        .map_err(|e| filter_error(e.to_string()))
}

/// Expand a Python `re.sub` template (`\1`, `\g<1>`, `\g<name>`, `\n`, `\\`).
fn expand(template: &str, caps: &fancy_regex::Captures<'_, str>, out: &mut String) {
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(d) if d.is_ascii_digit() => {
                let mut n = String::from(d);
                if let Some(d2) = chars.peek().filter(|c| c.is_ascii_digit()) {
                    n.push(*d2);
                    chars.next();
                }
                let i: usize = n.parse().unwrap_or(0);
                out.push_str(caps.get(i).map_or("", |m| m.as_str()));
            }
            Some('g') if chars.peek() == Some(&'<') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                let m = match name.parse::<usize>() {
                    Ok(i) => caps.get(i),
                    Err(_) => caps.name(&name),
                };
                out.push_str(m.map_or("", |m| m.as_str()));
            }
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
}

fn regex_replace(
    value: &Mj,
    pattern: &str,
    replacement: &str,
    ic: Option<bool>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let re = regex(pattern, ignorecase(&kwargs, ic)?)?;
    let text = py_text(value);
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(text.as_str()) {
        let caps = caps.map_err(|e| filter_error(e.to_string()))?;
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&text[last..m.start()]);
        expand(replacement, &caps, &mut out);
        last = m.end();
    }
    out.push_str(&text[last..]);
    Ok(out)
}

fn regex_substring(
    value: &Mj,
    pattern: &str,
    index: Option<i64>,
    ic: Option<bool>,
    kwargs: Kwargs,
) -> Result<Mj, Error> {
    let re = regex(pattern, ignorecase(&kwargs, ic)?)?;
    let text = py_text(value);
    // re.findall: the whole match, the group, or a tuple of the groups.
    let mut found: Vec<Mj> = Vec::new();
    for caps in re.captures_iter(text.as_str()) {
        let caps = caps.map_err(|e| filter_error(e.to_string()))?;
        let groups = caps.len() - 1;
        let text_of = |i: usize| caps.get(i).map_or("", |m| m.as_str()).to_string();
        found.push(match groups {
            0 => Mj::from(text_of(0)),
            1 => Mj::from(text_of(1)),
            n => Mj::from((1..=n).map(|i| Mj::from(text_of(i))).collect::<Vec<_>>()),
        });
    }
    let len = i64::try_from(found.len()).unwrap_or(i64::MAX);
    let i = index.unwrap_or(0);
    let i = if i < 0 { len + i } else { i };
    usize::try_from(i)
        .ok()
        .and_then(|i| found.get(i).cloned())
        .ok_or_else(|| filter_error("IndexError: list index out of range"))
}

fn basename(path: &Mj) -> String {
    let p = py_text(path);
    p.rsplit('/').next().unwrap_or("").to_string()
}

fn dirname(path: &Mj) -> String {
    // os.path.dirname: everything up to the last slash, trailing slashes stripped
    // unless it is all slashes.
    let p = py_text(path);
    let Some(i) = p.rfind('/') else {
        return String::new();
    };
    let head = &p[..=i];
    let trimmed = head.trim_end_matches('/');
    if trimmed.is_empty() {
        head.to_string()
    } else {
        trimmed.to_string()
    }
}

fn use_none(value: &Mj) -> Mj {
    if value.is_none() {
        Mj::from("%*****__%NONE%__*****%")
    } else {
        value.clone()
    }
}

// ----- Jinja2 builtins that minijinja lacks or has differently (jinja2/filters.py, 3.1) --

/// Python's binding of a filter's arguments: positional ones in order, then keywords;
/// `None` for the ones not given. Errors as Python's `TypeError`s would.
fn bind_args(
    filter: &str,
    names: &[&str],
    args: Rest<ValueOrKwargs>,
) -> Result<Vec<Option<Mj>>, Error> {
    let mut bound: Vec<Option<Mj>> = vec![None; names.len()];
    let mut kwargs = None;
    let mut positional = 0;
    for arg in args.into_values() {
        if arg.is_kwargs() {
            kwargs = Some(Kwargs::try_from(arg)?);
            continue;
        }
        let Some(slot) = bound.get_mut(positional) else {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!(
                    "TypeError: do_{filter}() takes at most {} arguments",
                    names.len() + 1
                ),
            ));
        };
        *slot = Some(arg);
        positional += 1;
    }
    if let Some(kwargs) = kwargs {
        for (i, name) in names.iter().enumerate() {
            if let Some(v) = kwargs.get::<Option<Mj>>(name)? {
                if bound[i].is_some() {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "TypeError: do_{filter}() got multiple values for argument '{name}'"
                        ),
                    ));
                }
                bound[i] = Some(v);
            }
        }
        kwargs.assert_all_used()?;
    }
    Ok(bound)
}

/// An `int` argument (Python would raise `TypeError` for anything else).
fn int_arg(v: Option<&Mj>, default: i64) -> Result<i64, Error> {
    match v {
        None => Ok(default),
        Some(v) if v.is_integer() => v.as_i64().ok_or_else(|| filter_error("OverflowError")),
        Some(v) => Err(filter_error(format!(
            "TypeError: '{}' object cannot be interpreted as an integer",
            py_type(v)
        ))),
    }
}

/// What `soft_str(value)` gives (Jinja2's `str()`): StrictUndefined refuses.
fn soft_str(state: &State<'_, '_>, v: &Mj) -> Result<String, Error> {
    if v.is_undefined() && state.undefined_behavior() == UndefinedBehavior::Strict {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    Ok(py_text(v))
}

/// `do_truncate(env, s, length=255, killwords=False, end='...', leeway=None)`; `leeway`
/// defaults to the `truncate.leeway` policy, 5 (st2's environment keeps Jinja2's
/// policies). Lengths count code points, as Python's `len` does.
fn truncate(state: &State<'_, '_>, value: &Mj, args: Rest<ValueOrKwargs>) -> Result<Mj, Error> {
    let a = bind_args("truncate", &["length", "killwords", "end", "leeway"], args)?;
    let length = int_arg(a[0].as_ref(), 255)?;
    let killwords = a[1].as_ref().is_some_and(Mj::is_true);
    let end = match &a[2] {
        None => "...".to_string(),
        Some(e) if e.kind() == ValueKind::String => e.as_str().unwrap_or("").to_string(),
        Some(e) => {
            return Err(filter_error(format!(
                "TypeError: object of type '{}' has no len()",
                py_type(e)
            )))
        }
    };
    let leeway = int_arg(a[3].as_ref(), 5)?;
    let end_len = i64::try_from(end.chars().count()).unwrap_or(i64::MAX);
    // `assert length >= len(end), f"expected length >= {len(end)}, got {length}"`
    if length < end_len {
        return Err(filter_error(format!(
            "AssertionError: expected length >= {end_len}, got {length}"
        )));
    }
    // `assert leeway >= 0, f"expected leeway >= 0, got {leeway}"`
    if leeway < 0 {
        return Err(filter_error(format!(
            "AssertionError: expected leeway >= 0, got {leeway}"
        )));
    }
    if value.is_undefined() {
        // `len(Undefined)` is 0: the value comes back as it is; StrictUndefined refuses.
        if state.undefined_behavior() == UndefinedBehavior::Strict {
            return Err(Error::from(ErrorKind::UndefinedError));
        }
        return Ok(value.clone());
    }
    let Some(s) = value.as_str() else {
        return Err(filter_error(format!(
            "TypeError: object of type '{}' has no len()",
            py_type(value)
        )));
    };
    let chars: Vec<char> = s.chars().collect();
    let len = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    if len <= length.saturating_add(leeway) {
        return Ok(value.clone());
    }
    let keep = usize::try_from(length - end_len)
        .unwrap_or(0)
        .min(chars.len());
    let head: String = chars[..keep].iter().collect();
    let result = if killwords {
        // `s[: length - len(end)] + end`
        head
    } else {
        // `s[: length - len(end)].rsplit(" ", 1)[0] + end`
        match head.rsplit_once(' ') {
            Some((before, _)) => before.to_string(),
            None => head,
        }
    };
    Ok(Mj::from(result + &end))
}

/// `do_wordcount(s)`: `len(_word_re.findall(soft_str(s)))` with `_word_re =
/// re.compile(r"\w+")`: runs of Python's word characters (alphanumerics, as
/// `str.isalnum` sees them, and `_`).
fn wordcount(state: &State<'_, '_>, value: &Mj) -> Result<usize, Error> {
    let text = soft_str(state, value)?;
    let mut count = 0;
    let mut in_word = false;
    for c in text.chars() {
        let word = c.is_alphanumeric() || c == '_';
        if word && !in_word {
            count += 1;
        }
        in_word = word;
    }
    Ok(count)
}

/// `do_center(value, width=80)`: `soft_str(value).center(width)`, with CPython's split of
/// the padding (`left = marg / 2 + (marg & width & 1)`, `unicode_center_impl`).
fn center(state: &State<'_, '_>, value: &Mj, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let a = bind_args("center", &["width"], args)?;
    let width = int_arg(a[0].as_ref(), 80)?;
    let text = soft_str(state, value)?;
    let len = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    if len >= width {
        return Ok(text);
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    let spaces = |n: i64| " ".repeat(usize::try_from(n).unwrap_or(0));
    Ok(format!("{}{text}{}", spaces(left), spaces(marg - left)))
}

/// `do_dictsort(value, case_sensitive=False, by='key', reverse=False)`:
/// `sorted(value.items(), key=..., reverse=reverse)`, a list of `(key, value)` tuples.
/// Strings compare lowercased unless `case_sensitive` (`ignore_case`: `value.lower()`).
fn dictsort(value: &Mj, args: Rest<ValueOrKwargs>) -> Result<Mj, Error> {
    let a = bind_args("dictsort", &["case_sensitive", "by", "reverse"], args)?;
    let case_sensitive = a[0].as_ref().is_some_and(Mj::is_true);
    let by_value = match a[1].as_ref().map(|b| b.as_str()) {
        None | Some(Some("key")) => false,
        Some(Some("value")) => true,
        Some(_) => {
            return Err(filter_error(
                "FilterArgumentError: You can only sort by either \"key\" or \"value\"",
            ))
        }
    };
    let reverse = a[2].as_ref().is_some_and(Mj::is_true);
    if value.kind() != ValueKind::Map {
        return Err(filter_error(format!(
            "AttributeError: '{}' object has no attribute 'items'",
            py_type(value)
        )));
    }
    let mut pairs: Vec<(Mj, Mj)> = value
        .try_iter()?
        .map(|k| {
            let v = value.get_item(&k).unwrap_or(Mj::UNDEFINED);
            (k, v)
        })
        .collect();
    let sort_key = |v: &Mj| -> Mj {
        match v.as_str() {
            Some(s) if !case_sensitive => Mj::from(s.to_lowercase()),
            _ => v.clone(),
        }
    };
    // Python's sort is stable, `reverse=True` included.
    pairs.sort_by(|x, y| {
        let (x, y) = if by_value { (&x.1, &y.1) } else { (&x.0, &y.0) };
        let o = sort_key(x).cmp(&sort_key(y));
        if reverse {
            o.reverse()
        } else {
            o
        }
    });
    Ok(Mj::from(
        pairs
            .into_iter()
            .map(|(k, v)| Mj::from_object(PyTuple(vec![k, v])))
            .collect::<Vec<_>>(),
    ))
}

/// Fuel for one render: plenty for chat formats, not for runaway loops.
const FUEL: u64 = 500_000;

fn environment(strict: bool) -> Environment<'static> {
    let mut env = Environment::new();
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_undefined_behavior(if strict {
        UndefinedBehavior::Strict
    } else {
        UndefinedBehavior::Lenient
    });
    env.set_fuel(Some(FUEL));
    env.set_formatter(py_formatter);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("to_json_string", to_json_string);
    env.add_filter("to_complex", to_complex);
    env.add_filter("json_escape", json_escape);
    env.add_filter("from_json_string", from_json_string);
    env.add_filter("to_human_time_from_seconds", to_human_time_from_seconds);
    env.add_filter("regex_match", regex_match);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_substring", regex_substring);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("use_none", use_none);
    env.add_filter("truncate", truncate);
    env.add_filter("wordcount", wordcount);
    env.add_filter("center", center);
    env.add_filter("dictsort", dictsort);
    env
}

fn root(vars: &[Var], extras: Extras, with_context: bool) -> Mj {
    let mut map = BTreeMap::new();
    if with_context {
        let whole: Map<String, Value> = vars
            .iter()
            .map(|v| (v.name.to_string(), v.value.clone()))
            .collect();
        map.insert("__context".to_string(), wrap(&Value::Object(whole), None));
    }
    for v in vars {
        map.insert(v.name.to_string(), wrap(&v.value, v.api));
    }
    if extras.six {
        map.insert("six".to_string(), Mj::from_object(Six));
    }
    if extras.st2kv {
        map.insert("st2kv".to_string(), Mj::from_object(KvLookup));
    }
    Mj::from_object(Root { vars: map })
}

fn render_with(env: &Environment<'_>, template: &str, ctx: &Mj) -> Result<String, JinjaError> {
    LAST_MISS.with(|m| *m.borrow_mut() = None);
    let result = env.render_str(template, ctx.clone());
    let miss = LAST_MISS.with(|m| m.borrow_mut().take());
    result.map_err(|e| match e.kind() {
        ErrorKind::UndefinedError => {
            JinjaError::Undefined(miss.unwrap_or_else(|| "undefined value".to_string()))
        }
        _ => JinjaError::Other(e.to_string()),
    })
}

/// `env.from_string(template).render(context)`.
pub(crate) fn render(
    template: &str,
    vars: &[Var],
    extras: Extras,
    strict: bool,
) -> Result<String, JinjaError> {
    render_with(&environment(strict), template, &root(vars, extras, false))
}

/// st2's `render_values(mapping, context)`: every value rendered with `__context`
/// added; lists and dicts go through their JSON text and are decoded again; a value
/// that does not change keeps its original type. Non-string scalars render from
/// their Python `str()`.
pub(crate) fn render_values(
    mapping: &Map<String, Value>,
    vars: &[Var],
    extras: Extras,
    strict: bool,
) -> Result<Map<String, Value>, JinjaError> {
    if mapping.is_empty() {
        return Ok(mapping.clone());
    }
    let env = environment(strict);
    let ctx = root(vars, extras, true);
    let mut out = Map::new();
    for (k, v) in mapping {
        let (text, containers) = match v {
            Value::Object(_) | Value::Array(_) => (py_json_dumps(v, None, false, ", ", ": "), true),
            Value::String(s) => (s.clone(), false),
            other => (py_str(other), false),
        };
        let rendered = render_with(&env, &text, &ctx)?;
        if rendered == text {
            out.insert(k.clone(), v.clone());
            continue;
        }
        let value = if containers {
            serde_json::from_str(&rendered)
                .map_err(|e| JinjaError::Other(format!("JSONDecodeError: {e}")))?
        } else {
            Value::String(rendered)
        };
        out.insert(k.clone(), value);
    }
    Ok(out)
}
