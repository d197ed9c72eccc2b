//! A small action registry: the actions an alias may run, their runners' parameters,
//! and what st2 does with an alias execution's parameters before the action is
//! scheduled (`st2api/controllers/v1/aliasexecution.py` `_schedule_execution`):
//!
//! 1. the action must exist: `Action with ref "<r>" not found ` (404; st2's trailing
//!    space included);
//! 2. `cast_params` (`st2common/models/utils/action_param_utils.py`) casts each value
//!    to its type, with the runner's and the action's parameter specs merged by a
//!    *shallow* `dict.update`, using `st2common/util/casts.py` and the controller's
//!    `array` override (split on `,`, each piece stripped); a failure is a 400
//!    `Failed to cast value "…" (type: str) for parameter "p" of type "integer": …`;
//! 3. `create_request` (`st2common/services/action.py`) validates the parameters
//!    against the schema built from the *deep*-merged specs
//!    (`get_schema_for_action_parameters`: `additionalProperties: false`) with st2's
//!    `CustomValidator` — a 400 carrying `str(ValidationError)` — then refuses an
//!    immutable parameter (`Override of immutable parameter(s) ['sudo'] is
//!    unsupported.`).
//!
//! Built in (specs from `contrib/core/actions/*.yaml` and `contrib/runners/*/runner.yaml`):
//! `core.local`, `core.local_sudo`, `core.remote`, `core.remote_sudo`, `core.echo`,
//! `core.noop`, `core.http`, `core.ask`, and the demo packs' `ops.deploy` (`app`,
//! `env`), `ops.restart_service` (`service`, `hosts`) and `ops.set_password` (`user`,
//! `password`, the latter `secret: true`), Python actions made up for the demo, and
//! `ops.long_job` (`seconds`, a `local-shell-cmd` action that runs for that long).
//! [`super::EmulatorConfig::actions`] adds more, as items shaped like st2's
//! `GET /api/v1/actions` (`pack`, `name`, `runner_type`, `parameters`, `enabled`).

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::jsonschema;
use super::util::{py_repr, py_str, stable_object_id};

/// One registered action.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    pub reference: String,
    pub pack: String,
    pub name: String,
    pub runner: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// The action's own parameter specs.
    pub parameters: Map<String, Value>,
    /// What its specs and its runner's come to, worked out on first use: an action
    /// never changes once registered, and scheduling needs these for every execution.
    derived: OnceLock<Derived>,
}

/// An action's specs merged with its runner's, the ways st2 merges them.
#[derive(Debug, Clone)]
struct Derived {
    /// [`Action::parameters_view`].
    view: Map<String, Value>,
    /// The runner's specs shallow-updated with the action's (`cast_params`).
    cast_specs: Map<String, Value>,
    /// [`parameters_schema`] after `modify_schema_allow_default_none`, as `create_request`
    /// validates against it.
    schema: Value,
    /// The parameters whose merged spec says `secret: true`.
    secret: Vec<String>,
}

impl Action {
    /// `action:<pack>:<name>`, the uid st2's RBAC errors name.
    pub(crate) fn uid(&self) -> String {
        format!("action:{}:{}", self.pack, self.name)
    }

    /// The action's Mongo id: the one every execution's `action.id` carries.
    pub(crate) fn id(&self) -> String {
        stable_object_id(&format!("action:{}", self.reference))
    }

    /// `ActionAPI.from_model` (`st2common/models/api/action.py`), as
    /// `GET /api/v1/actions/{ref_or_id}` serves it: the action's *own* `parameters` (not
    /// merged with the runner's), `runner_type` as the runner's name, `tags` a list.
    pub(crate) fn api_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id()));
        m.insert("ref".into(), json!(self.reference));
        m.insert("uid".into(), json!(self.uid()));
        m.insert("name".into(), json!(self.name));
        m.insert("pack".into(), json!(self.pack));
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        m.insert("enabled".into(), json!(self.enabled));
        m.insert("entry_point".into(), json!(""));
        m.insert("runner_type".into(), json!(self.runner));
        m.insert("parameters".into(), Value::Object(self.parameters.clone()));
        m.insert("output_schema".into(), json!({}));
        m.insert("tags".into(), json!([]));
        m.insert(
            "metadata_file".into(),
            json!(format!("actions/{}.yaml", self.name)),
        );
        Value::Object(m)
    }

    /// `get_params_view(action_db, runner_db, merged_only=True)`
    /// (`st2common/models/utils/action_param_utils.py`), what
    /// `GET /api/v1/actions/views/parameters/{ref_or_id}` serves under `parameters`: for
    /// each parameter of the runner or the action, the union of both specs'
    /// keys, the action's value winning where both set one, except `immutable`, which is
    /// the runner's `or` the action's (`_merge_param_meta_values`). So a runner's
    /// `secret: true` (`sudo_password`, `password`, `private_key`) stays secret unless the
    /// action's spec overrides `secret`.
    pub(crate) fn parameters_view(&self) -> &Map<String, Value> {
        &self.derived().view
    }

    /// The parameters whose merged spec (runner and action) says `secret: true`, which
    /// st2 masks in every execution it serves.
    pub(crate) fn secret_parameters(&self) -> &[String] {
        &self.derived().secret
    }

    fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| {
            let runner = runner_parameters(&self.runner);
            let view = self.merge_view(runner);
            let secret = view
                .iter()
                .filter(|(_, spec)| spec.get("secret") == Some(&Value::Bool(true)))
                .map(|(name, _)| name.clone())
                .collect();
            // parameters_schema.update(runner); parameters_schema.update(action): shallow.
            let mut cast_specs = runner.clone();
            for (k, v) in &self.parameters {
                cast_specs.insert(k.clone(), v.clone());
            }
            Derived {
                view,
                cast_specs,
                schema: jsonschema::allow_default_none(&parameters_schema(self, runner)),
                secret,
            }
        })
    }

    /// The view merged from the runner's specs and the action's.
    fn merge_view(&self, runner: &Map<String, Value>) -> Map<String, Value> {
        let mut names: Vec<&String> = runner.keys().collect();
        names.extend(self.parameters.keys().filter(|k| !runner.contains_key(*k)));
        let mut out = Map::new();
        for name in names {
            let empty = Map::new();
            let r = runner
                .get(name)
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            let a = self
                .parameters
                .get(name)
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            let mut merged = r.clone();
            for (k, v) in a {
                let value = if k == "immutable" && r.contains_key(k) {
                    // `runner_meta.get(key, False) or action_meta.get(key, False)`
                    match r.get(k) {
                        Some(rv) if super::util::py_truthy(rv) => rv.clone(),
                        _ => v.clone(),
                    }
                } else {
                    v.clone()
                };
                merged.insert(k.clone(), value);
            }
            out.insert(name.clone(), Value::Object(merged));
        }
        out
    }

    fn from_json(v: &Value) -> Option<Action> {
        let (pack, name) = match (v.get("pack"), v.get("name"), v.get("ref")) {
            (Some(Value::String(p)), Some(Value::String(n)), _) => (p.clone(), n.clone()),
            (_, _, Some(Value::String(r))) => {
                let (p, n) = r.split_once('.')?;
                (p.to_string(), n.to_string())
            }
            _ => return None,
        };
        Some(Action {
            reference: format!("{pack}.{name}"),
            runner: v
                .get("runner_type")
                .and_then(Value::as_str)
                .unwrap_or("python-script")
                .to_string(),
            description: v
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            parameters: v
                .get("parameters")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            pack,
            name,
            derived: OnceLock::new(),
        })
    }
}

/// The registry.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    actions: Vec<Action>,
}

impl Registry {
    /// The built-in actions plus `extra` (an extra action replaces a built-in one with
    /// the same ref).
    pub(crate) fn new(extra: &[Value]) -> Registry {
        let mut actions: Vec<Action> = builtin().iter().filter_map(Action::from_json).collect();
        for v in extra {
            match Action::from_json(v) {
                Some(a) => {
                    actions.retain(|b| b.reference != a.reference);
                    actions.push(a);
                }
                None => tracing::debug!("st2 emulator: action item without pack and name skipped"),
            }
        }
        Registry { actions }
    }

    pub(crate) fn get(&self, reference: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.reference == reference)
    }

    /// The action `GET /api/v1/actions/{ref_or_id}` finds: by ref when `key` contains a
    /// `.` (`ResourceReference.is_resource_reference`), else by id.
    pub(crate) fn get_by_ref_or_id(&self, key: &str) -> Option<&Action> {
        if key.contains('.') {
            self.get(key)
        } else {
            self.actions.iter().find(|a| a.id() == key)
        }
    }
}

/// What `_schedule_execution` refuses, with st2's status and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// `Action with ref "<r>" not found ` (`StackStormDBObjectNotFoundError`: 404).
pub(crate) fn not_found(reference: &str) -> Refusal {
    refuse(404, format!("Action with ref \"{reference}\" not found "))
}

/// Cast, validate and check immutability, as st2 does before scheduling: the
/// parameters to store, or st2's refusal.
pub(crate) fn prepare(
    action: &Action,
    params: Map<String, Value>,
) -> Result<Map<String, Value>, Refusal> {
    let runner = runner_parameters(&action.runner);
    let derived = action.derived();
    let params = cast_params(&derived.cast_specs, params)?;
    if !action.enabled {
        return Err(refuse(
            400,
            format!(
                "Unable to execute. Action \"{}\" is disabled.",
                action.reference
            ),
        ));
    }
    if let Err(e) = jsonschema::validate_nullable(&Value::Object(params.clone()), &derived.schema) {
        return Err(refuse(400, e.verbose()));
    }
    let immutable: Vec<&String> = params
        .keys()
        .filter(|k| {
            let flag = |specs: &Map<String, Value>| {
                specs
                    .get(k.as_str())
                    .and_then(|s| s.get("immutable"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            flag(&action.parameters) || flag(runner)
        })
        .collect();
    if !immutable.is_empty() {
        let list = Value::Array(
            immutable
                .iter()
                .map(|k| Value::String((*k).clone()))
                .collect(),
        );
        return Err(refuse(
            400,
            format!(
                "Override of immutable parameter(s) {} is unsupported.",
                py_repr(&list)
            ),
        ));
    }
    Ok(params)
}

/// `get_schema_for_action_parameters`: runner specs deep-updated with the action's,
/// an empty spec meaning any type.
pub(crate) fn parameters_schema(action: &Action, runner: &Map<String, Value>) -> Value {
    let mut merged = runner.clone();
    for (k, v) in &action.parameters {
        match (merged.get_mut(k), v) {
            (Some(Value::Object(base)), Value::Object(over)) => {
                for (kk, vv) in over {
                    base.insert(kk.clone(), vv.clone());
                }
            }
            _ => {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    if merged.is_empty() {
        return json!({});
    }
    let any = json!({"anyOf": [{"type": "array"}, {"type": "boolean"}, {"type": "integer"},
        {"type": "number"}, {"type": "object"}, {"type": "string"}]});
    let properties: Map<String, Value> = merged
        .into_iter()
        .map(|(k, v)| {
            let empty = v.as_object().is_none_or(Map::is_empty);
            (k, if empty { any.clone() } else { v })
        })
        .collect();
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("additionalProperties".into(), json!(false));
    schema.insert("title".into(), json!(action.name));
    if let Some(d) = &action.description {
        schema.insert("description".into(), json!(d));
    }
    Value::Object(schema)
}

/// `cast_params` with the controller's `array` override.
fn cast_params(
    specs: &Map<String, Value>,
    mut params: Map<String, Value>,
) -> Result<Map<String, Value>, Refusal> {
    let keys: Vec<String> = params.keys().cloned().collect();
    for k in keys {
        let Some(spec) = specs
            .get(&k)
            .filter(|s| s.as_object().is_some_and(|o| !o.is_empty()))
        else {
            continue;
        };
        let ty = match spec.get("type") {
            None | Some(Value::Null) => continue,
            Some(Value::String(t)) => t.clone(),
            Some(other) => {
                // `CASTS.get(<list>)`: unhashable, raised outside the cast's try.
                let what = if other.is_array() { "list" } else { "dict" };
                return Err(refuse(500, format!("unhashable type: '{what}'")));
            }
        };
        let Some(value) = params.get(&k).cloned() else {
            continue;
        };
        let cast = match ty.as_str() {
            "array" => cast_array(&value),
            "object" => cast_object(&value),
            "boolean" => cast_boolean(&value),
            "integer" => cast_integer(&value),
            "number" => cast_number(&value),
            "string" => cast_string(&value),
            _ => continue,
        };
        match cast {
            Ok(v) => {
                params.insert(k, v);
            }
            Err(e) => {
                return Err(refuse(
                    400,
                    format!(
                        "Failed to cast value \"{}\" (type: {}) for parameter \"{k}\" of type \"{ty}\": {e}. Perhaps the value is of an invalid type?",
                        py_str(&value),
                        py_type(&value)
                    ),
                ));
            }
        }
    }
    Ok(params)
}

fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// st2's magic string for `None` (`use_none`).
const NONE_MAGIC: &str = "%*****__%NONE%__*****%";

fn cast_none(v: &Value) -> Value {
    match v {
        Value::String(s) if s == NONE_MAGIC => Value::Null,
        other => other.clone(),
    }
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn cast_array(v: &Value) -> Result<Value, String> {
    match v {
        Value::Array(_) => Ok(v.clone()),
        Value::String(s) => Ok(Value::Array(
            s.split(',')
                .map(|p| Value::String(py_strip(p).to_string()))
                .collect(),
        )),
        other => Err(format!(
            "'{}' object has no attribute 'split'",
            py_type(other)
        )),
    }
}

fn cast_object(v: &Value) -> Result<Value, String> {
    match cast_none(v) {
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(parsed) => Ok(parsed),
            Err(_) => literal_eval(&s),
        },
        other => Ok(other),
    }
}

fn cast_boolean(v: &Value) -> Result<Value, String> {
    match cast_none(v) {
        Value::String(s) => literal_eval(&capitalize(&s)),
        other => Ok(other),
    }
}

/// Python's `str.capitalize()`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

fn cast_integer(v: &Value) -> Result<Value, String> {
    match cast_none(v) {
        Value::String(s) => parse_int(&s)
            .map(Value::from)
            .ok_or_else(|| format!("invalid literal for int() with base 10: {}", py_repr(v))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Value::from(i)),
            #[allow(clippy::cast_possible_truncation)]
            None => Ok(Value::from(n.as_f64().unwrap_or(0.0).trunc() as i64)),
        },
        Value::Bool(b) => Ok(Value::from(i64::from(b))),
        other => Err(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            py_type(&other)
        )),
    }
}

fn cast_number(v: &Value) -> Result<Value, String> {
    match cast_none(v) {
        Value::String(s) => parse_float(&s)
            .map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
            .ok_or_else(|| format!("could not convert string to float: {}", py_repr(v))),
        Value::Number(n) => Ok(serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
            .map_or(Value::Null, Value::Number)),
        Value::Bool(b) => Ok(json!(if b { 1.0 } else { 0.0 })),
        other => Err(format!(
            "float() argument must be a string or a real number, not '{}'",
            py_type(&other)
        )),
    }
}

fn cast_string(v: &Value) -> Result<Value, String> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::String(_) => Ok(cast_none(v)),
        other => Err(format!(
            "Value \"{}\" must either be a string or None. Got \"{}\".",
            py_str(other),
            py_type(other)
        )),
    }
}

/// Digits with single underscores between them (Python's numeric literal rule).
fn digits_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('_')
        && !s.ends_with('_')
        && !s.contains("__")
        && s.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// Python's `int(str)`.
fn parse_int(s: &str) -> Option<i64> {
    let t = py_strip(s);
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if !digits_ok(body) {
        return None;
    }
    let n: i64 = body.replace('_', "").parse().ok()?;
    Some(if neg { -n } else { n })
}

/// Python's `float(str)`.
fn parse_float(s: &str) -> Option<f64> {
    let t = py_strip(s);
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        return lower.parse().ok();
    }
    let ok = t
        .chars()
        .all(|c| c.is_ascii_digit() || "+-._eE".contains(c))
        && !t.contains("__")
        && !t.starts_with('_')
        && !t.ends_with('_');
    if !ok {
        return None;
    }
    t.replace('_', "").parse().ok()
}

/// `ast.literal_eval` for the literals a chat command can carry (numbers, strings,
/// `True`/`False`/`None`, lists, tuples, dicts). A bare name fails as Python's does
/// (`malformed node or string on line 1: <ast.Name object at 0x…>`; the address is
/// made up), anything else as a syntax error.
pub(crate) fn literal_eval(s: &str) -> Result<Value, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut p = Lit { c: &chars, i: 0 };
    p.ws();
    if p.i >= chars.len() {
        return Err("invalid syntax (<unknown>, line 0)".into());
    }
    let v = p.value()?;
    p.ws();
    if p.i < chars.len() {
        return Err(SYNTAX.into());
    }
    Ok(v)
}

const SYNTAX: &str = "invalid syntax (<unknown>, line 1)";
const NAME: &str = "malformed node or string on line 1: <ast.Name object at 0x7f5e1c2b3d90>";

struct Lit<'a> {
    c: &'a [char],
    i: usize,
}

impl Lit<'_> {
    fn ws(&mut self) {
        while self.c.get(self.i).is_some_and(|c| c.is_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        match self.peek() {
            Some('[') => {
                self.i += 1;
                Ok(Value::Array(self.items(']')?))
            }
            Some('(') => {
                self.i += 1;
                Ok(Value::Array(self.items(')')?))
            }
            Some('{') => {
                self.i += 1;
                self.dict()
            }
            Some(q @ ('\'' | '"')) => self.string(q),
            Some(c) if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.i += 1;
                }
                let word: String = self.c[start..self.i].iter().collect();
                match word.as_str() {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::Null),
                    _ => Err(NAME.into()),
                }
            }
            _ => Err(SYNTAX.into()),
        }
    }

    fn items(&mut self, close: char) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(out);
            }
            out.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(',') => self.i += 1,
                Some(c) if c == close => {}
                _ => return Err(SYNTAX.into()),
            }
        }
    }

    fn dict(&mut self) -> Result<Value, String> {
        let mut out = Map::new();
        loop {
            self.ws();
            if self.peek() == Some('}') {
                self.i += 1;
                return Ok(Value::Object(out));
            }
            let key = self.value()?;
            self.ws();
            if self.peek() != Some(':') {
                return Err(SYNTAX.into());
            }
            self.i += 1;
            let value = self.value()?;
            out.insert(py_str(&key), value);
            self.ws();
            match self.peek() {
                Some(',') => self.i += 1,
                Some('}') => {}
                _ => return Err(SYNTAX.into()),
            }
        }
    }

    fn string(&mut self, q: char) -> Result<Value, String> {
        self.i += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => {
                    return Err(
                        "unterminated string literal (detected at line 1) (<unknown>, line 1)"
                            .into(),
                    )
                }
                Some(c) if c == q => {
                    self.i += 1;
                    return Ok(Value::String(s));
                }
                Some('\\') => {
                    self.i += 1;
                    let c = self.peek().unwrap_or('\\');
                    self.i += 1;
                    s.push(match c {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                }
                Some(c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "+-._".contains(c))
        {
            self.i += 1;
        }
        let text: String = self.c[start..self.i].iter().collect();
        if let Some(i) = parse_int(&text) {
            return Ok(Value::from(i));
        }
        match parse_float(&text) {
            Some(f) if f.is_finite() => Ok(json!(f)),
            _ => Err(SYNTAX.into()),
        }
    }
}

/// The parameters of a runner (`contrib/runners/*/runner.yaml`), built once.
pub(crate) fn runner_parameters(runner: &str) -> &'static Map<String, Value> {
    static RUNNERS: OnceLock<Vec<(&'static str, Map<String, Value>)>> = OnceLock::new();
    static NONE: OnceLock<Map<String, Value>> = OnceLock::new();
    RUNNERS
        .get_or_init(|| {
            KNOWN_RUNNERS
                .iter()
                .map(|&name| (name, runner_parameters_of(name)))
                .collect()
        })
        .iter()
        .find(|(name, _)| *name == runner)
        .map_or_else(|| NONE.get_or_init(Map::new), |(_, specs)| specs)
}

/// The runners whose parameters [`runner_parameters`] knows.
const KNOWN_RUNNERS: [&str; 5] = [
    "local-shell-cmd",
    "remote-shell-cmd",
    "http-request",
    "python-script",
    "inquirer",
];

fn runner_parameters_of(runner: &str) -> Map<String, Value> {
    let v = match runner {
        "local-shell-cmd" => json!({
            "cmd": {"description": "Arbitrary Linux command to be executed on the host.", "type": "string"},
            "cwd": {"description": "Working directory where the command will be executed in", "type": "string"},
            "env": {"description": "Environment variables which will be available to the command(e.g. key1=val1,key2=val2)", "type": "object"},
            "kwarg_op": {"default": "--", "description": "Operator to use in front of keyword args i.e. \"--\" or \"-\".", "type": "string"},
            "sudo": {"default": false, "description": "The command will be executed with sudo.", "type": "boolean"},
            "sudo_password": {"default": null, "description": "Sudo password. To be used when passwordless sudo is not allowed.", "type": "string", "secret": true, "required": false},
            "timeout": {"default": 60, "description": "Action timeout in seconds. Action will get killed if it doesn't finish in timeout seconds.", "type": "integer"}
        }),
        "remote-shell-cmd" => json!({
            "bastion_host": {"description": "The host SSH connections will be proxied through. Note: This connection is made using the same parameters as the final connection.", "required": false, "type": "string"},
            "cmd": {"description": "Arbitrary Linux command to be executed on the remote host(s).", "type": "string"},
            "cwd": {"default": "/tmp", "description": "Working directory where the script will be executed in", "type": "string"},
            "dir": {"default": "/tmp", "description": "The working directory where the script will be copied to on the remote host.", "immutable": true, "type": "string"},
            "env": {"description": "Environment variables which will be available to the command(e.g. key1=val1,key2=val2)", "type": "object"},
            "hosts": {"description": "A comma delimited string of a list of hosts where the remote command will be executed. For example: example1.com,example2.com,example3.com:5555", "required": true, "type": "string"},
            "kwarg_op": {"default": "--", "description": "Operator to use in front of keyword args i.e. \"--\" or \"-\".", "type": "string"},
            "parallel": {"default": false, "description": "Default to parallel execution.", "immutable": true, "type": "boolean"},
            "passphrase": {"description": "Passphrase for the private key, if needed.", "required": false, "secret": true, "type": "string"},
            "password": {"description": "Password used to log in. If not provided, private key from the config file is used.", "required": false, "secret": true, "type": "string"},
            "port": {"description": "SSH port. If not specified as part of the hosts list, default port will be used (22).", "required": false, "type": "integer"},
            "private_key": {"description": "Private key material or path to the private key file on disk used to log in.", "required": false, "secret": true, "type": "string"},
            "sudo": {"default": false, "description": "The remote command will be executed with sudo.", "type": "boolean"},
            "sudo_password": {"default": null, "description": "Sudo password. To be used when passwordless sudo is not allowed.", "type": "string", "required": false, "secret": true},
            "timeout": {"default": 60, "description": "Action timeout in seconds. Action will get killed if it doesn't finish in timeout seconds.", "type": "integer"},
            "username": {"description": "Username used to log-in. If not provided, default username from config is used.", "required": false, "type": "string"}
        }),
        "http-request" => json!({
            "allow_redirects": {"default": false, "description": "Set to True if POST/PUT/DELETE redirect following is allowed.", "type": "boolean"},
            "cookies": {"description": "Optional cookies to send with the request.", "type": "object"},
            "headers": {"description": "HTTP headers for the request.", "type": "object"},
            "http_proxy": {"description": "URL of HTTP proxy to use (e.g. http://10.10.1.10:3128).", "type": "string"},
            "https_proxy": {"description": "URL of HTTPS proxy to use (e.g. http://10.10.1.10:3128).", "type": "string"},
            "password": {"description": "Password required by basic authentication.", "type": "string", "secret": true},
            "url": {"description": "URL to the HTTP endpoint.", "required": true, "type": "string"},
            "username": {"description": "Username required by basic authentication.", "type": "string"},
            "verify_ssl_cert": {"default": true, "description": "Certificate for HTTPS request is verified by default using requests CA bundle which comes from Mozilla. Verification using a custom CA bundle is not yet supported. Set to False to skip verification.", "type": "boolean"}
        }),
        "python-script" => json!({
            "debug": {"description": "Enable runner debug mode.", "type": "boolean", "required": false, "default": false},
            "content_version": {"description": "Git revision of the pack content to use for this action execution (git commit sha / tag / branch). Only applies to packs which are git repositories.", "type": "string", "required": false},
            "env": {"description": "Environment variables which will be available to the script.", "type": "object"},
            "timeout": {"default": 600, "description": "Action timeout in seconds. Action will get killed if it doesn't finish in timeout seconds.", "type": "integer"},
            "log_level": {"description": "Default log level for Python runner actions.", "type": "string", "default": "DEBUG", "enum": ["AUDIT", "CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]}
        }),
        "inquirer" => json!({
            "schema": {"default": {"title": "response_data", "type": "object", "properties": {"continue": {"type": "boolean", "description": "Would you like to continue the workflow?", "required": true}}}, "required": true, "description": "A JSON schema that will be used to validate the response data", "type": "object"},
            "route": {"default": "", "required": false, "description": "An arbitrary value for allowing rules to route to proper notification channel", "type": "string"},
            "roles": {"default": [], "required": false, "description": "A list of roles that are permitted to respond to the action (if nothing provided, all are permitted) - REQUIRES RBAC FEATURES", "type": "array"},
            "users": {"default": [], "required": false, "description": "A list of usernames that are permitted to respond to the action (if nothing provided, all are permitted)", "type": "array"},
            "ttl": {"default": 1440, "required": true, "description": "Time (in minutes) to wait before timing out the inquiry if no response is received", "type": "integer"}
        }),
        _ => json!({}),
    };
    v.as_object().cloned().unwrap_or_default()
}

/// The built-in actions, as `GET /api/v1/actions` items.
fn builtin() -> Vec<Value> {
    let cmd = |what: &str| json!({"description": format!("Arbitrary Linux command to be executed on the {what}."), "required": true, "type": "string"});
    vec![
        json!({"pack": "core", "name": "local", "runner_type": "local-shell-cmd",
               "description": "Action that executes an arbitrary Linux command on the localhost.",
               "parameters": {"cmd": cmd("local host"), "sudo": {"immutable": true}}}),
        json!({"pack": "core", "name": "local_sudo", "runner_type": "local-shell-cmd",
               "description": "Action that executes an arbitrary Linux command on the localhost.",
               "parameters": {"cmd": cmd("local host"), "sudo": {"default": true, "immutable": true}}}),
        json!({"pack": "core", "name": "remote", "runner_type": "remote-shell-cmd",
               "description": "Action to execute arbitrary linux command remotely.",
               "parameters": {"cmd": cmd("remote host(s)"), "sudo": {"immutable": true}}}),
        json!({"pack": "core", "name": "remote_sudo", "runner_type": "remote-shell-cmd",
               "description": "Action to execute arbitrary linux command remotely.",
               "parameters": {"cmd": cmd("remote host(s)"), "sudo": {"default": true, "immutable": true}}}),
        json!({"pack": "core", "name": "echo", "runner_type": "local-shell-cmd",
               "description": "Action that executes the Linux echo command on the localhost.",
               "parameters": {
                   "message": {"description": "The message that the command will echo.", "type": "string", "required": true},
                   "cmd": {"description": "Arbitrary Linux command to be executed on the local host.", "required": true, "type": "string", "default": "echo \"{{message}}\"", "immutable": true},
                   "kwarg_op": {"immutable": true},
                   "sudo": {"default": false, "immutable": true},
                   "sudo_password": {"immutable": true}}}),
        json!({"pack": "core", "name": "noop", "runner_type": "noop",
               "description": "Action that does nothing", "parameters": {}}),
        json!({"pack": "core", "name": "http", "runner_type": "http-request",
               "description": "Action that performs an http request.",
               "parameters": {
                   "auth": {"description": "Auth string to be used. This can be like 'x-auth-token=XYZ'.", "type": "string"},
                   "body": {"description": "Body to send with the request", "type": "string"},
                   "file_content": {"description": "Magic attribute which is automatically populated when file_path is specified", "type": "string"},
                   "file_content_type": {"description": "Optional content type for the uploaded file", "type": "string"},
                   "file_name": {"description": "Magic attribute which is automatically populated when file_path is specified", "type": "string"},
                   "file_path": {"description": "Path to the file to upload", "type": "string"},
                   "headers": {"description": "HTTP headers to use with the request.", "type": "object"},
                   "method": {"description": "HTTP method to use.", "type": "string",
                              "enum": ["HEAD", "GET", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "PURGE"]},
                   "params": {"description": "Query params to be used with the HTTP request.", "type": "object"},
                   "timeout": {"default": 60, "description": "Timeout for the HTTP request.", "type": "number"}}}),
        json!({"pack": "core", "name": "ask", "runner_type": "inquirer",
               "description": "Action for initiating an Inquiry (usually in a workflow)"}),
        json!({"pack": "ops", "name": "deploy", "runner_type": "python-script",
               "description": "Deploy an application to an environment (demo action)",
               "parameters": {
                   "app": {"description": "Application to deploy.", "type": "string", "required": true},
                   "env": {"description": "Environment to deploy to.", "type": "string", "default": "staging"}}}),
        json!({"pack": "ops", "name": "restart_service", "runner_type": "python-script",
               "description": "Restart a service on some hosts (demo action)",
               "parameters": {
                   "service": {"description": "Service to restart.", "type": "string", "required": true},
                   "hosts": {"description": "Comma-separated hosts.", "type": "string", "required": true}}}),
        // A secret parameter an alias can pass (`demo::set_password_alias`); its emulated
        // output echoes the password, as a careless real action would (`actions.rs`).
        json!({"pack": "ops", "name": "set_password", "runner_type": "python-script",
               "description": "Set a user's password (demo action; its output echoes the password)",
               "parameters": {
                   "user": {"description": "User whose password is set.", "type": "string", "required": true},
                   "password": {"description": "The new password.", "type": "string", "required": true, "secret": true}}}),
        // The action that takes time, for cancelling and tailing (`demo::long_job_alias`,
        // `actions.rs`): a `local-shell-cmd` action as a pack would write it, its command
        // immutable, its runner timeout above the longest run `seconds` allows.
        json!({"pack": "ops", "name": "long_job", "runner_type": "local-shell-cmd",
               "description": "Print `step i of N` five times a second for `seconds` seconds, then succeed (demo action)",
               "parameters": {
                   "seconds": {"description": "How long the job runs.", "type": "integer", "default": 30, "minimum": 1, "maximum": 3600},
                   "cmd": {"type": "string", "immutable": true,
                           "default": "n=$(({{ seconds }} * 5)); for i in $(seq $n); do echo \"step $i of $n\"; sleep 0.2; done"},
                   "timeout": {"default": 3660, "immutable": true},
                   "sudo": {"default": false, "immutable": true},
                   "sudo_password": {"immutable": true},
                   "kwarg_op": {"immutable": true}}}),
    ]
}
