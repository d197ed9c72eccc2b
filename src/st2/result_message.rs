//! The chat message StackStorm's chatops pack would post for a finished execution.
//!
//! # Why this exists
//!
//! When a chat command's execution finishes, StackStorm announces the result itself:
//! the chatops pack's rule starts `chatops.post_result`, whose first step,
//! `chatops.format_execution_result`, renders the text with Jinja and hands it to
//! `chatops.post_message`. The bridge hears that announcement on the event stream.
//! The stream has no replay, so an announcement sent while the bridge was
//! disconnected is lost. The bridge then fetches the execution
//! (`GET /api/v1/executions/{id}`) and uses this module to build **the same text**
//! the pack would have built.
//!
//! # What it mirrors
//!
//! * `contrib/chatops/actions/format_execution_result.py`: the alias (looked up by
//!   `execution.context.action_alias_ref.id`) controls the message. With
//!   `result.enabled: false` nothing is rendered. Otherwise `result.format`, or the
//!   pack's default template, is rendered with the variables `execution` (the
//!   execution without `trigger`, `trigger_type`, `trigger_instance` and `liveaction`),
//!   `alias` and `six`. `result.extra` goes through `render_values`.
//! * `contrib/chatops/actions/templates/default.j2`: [`DEFAULT_TEMPLATE`] is a
//!   template written for this module that renders the same text.
//! * `st2common/st2common/util/jinja.py`: the environment is set up the same way:
//!   `trim_blocks`, `lstrip_blocks`, no kept trailing newline, undefined values as
//!   `jinja2.Undefined` (printing gives an empty string, looking up an attribute of
//!   one is an error), st2's filters and the `in` test. `render_values` uses a strict
//!   environment (`StrictUndefined`), like st2.
//! * `st2common/st2common/expressions/functions/*.py`: st2's filters are written
//!   here in Rust with the same results (see [`ResultFormatter`] for the list).
//!
//! Values are printed the way Jinja2 prints Python objects (`str()`): `{'a': 1}`,
//! `['x', 'y']`, `True`, `None`, `1e-05`.
//!
//! The emulator (`crate::emulator`) has its own hand-written model of the default
//! template. It is kept separate on purpose, so each can be checked against the
//! other and against real Jinja2.
//!
//! # Limits
//!
//! Every render has a fuel budget ([`FUEL`]), so a template that loops forever
//! returns an error instead of stalling the caller. Output is capped at
//! [`MAX_OUTPUT_BYTES`].
//!
//! # Known differences from Jinja2
//!
//! * `x.items`, `x.keys`, `x.get` and so on *without a call* give the mapping's
//!   entry of that name. Jinja2 gives Python's bound method. Templates that work
//!   in st2 use `x['items']`, which behaves the same in both.
//! * The `~` operator and minijinja's own filters (`upper`, `replace`, ...) print
//!   floats in exponent form as `1e-5` rather than Python's `1e-05`. `{{ }}`,
//!   `trim`, `string`, `join` and st2's filters print them like Python.
//! * Macro calls may nest about 60 deep (minijinja's recursion limit), so the
//!   default template gives up on results nested deeper than that. Jinja2 (Python's
//!   recursion limit) manages about 150 levels.
//! * Python's `%` operator on strings (`'%s items' % n`) is an error; the
//!   `format` filter (`'%s items' | format(n)`) works in both.
//! * Regular expressions use `fancy-regex`, with patterns translated from Python's
//!   syntax. The ASCII flag `(?a)` is ignored.

use std::cell::Cell;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Object, ObjectRepr, Rest, Tuple, ValueKind, ValueOrKwargs};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use serde_json::Value;

/// Template value type (minijinja's), named apart from `serde_json::Value`.
type JValue = minijinja::Value;

/// Fuel for one render: roughly the number of template instructions (plus one per
/// 64 bytes of data created). Enough for results with tens of thousands of keys.
pub const FUEL: u64 = 2_000_000;

/// Largest message (or rendered `extra` value) a render may produce, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// Deepest nesting printed or serialised by this module's own code.
const MAX_DEPTH: usize = 200;

/// Execution fields `format_execution_result` leaves out of the template's
/// `execution`.
const EXCLUDED_FIELDS: [&str; 4] = ["trigger", "trigger_type", "trigger_instance", "liveaction"];

/// What st2's `use_none` filter turns `None` into.
const NONE_MAGIC_VALUE: &str = "%*****__%NONE%__*****%";

/// Marker in error details raised by st2 filters that this module cannot reproduce.
const UNSUPPORTED_MARK: &str = "unsupported st2 filter: ";

/// Name used in errors for the default template.
const DEFAULT_NAME: &str = "chatops default template";

/// A template that renders the same text as the chatops pack's `default.j2` in
/// st2's Jinja environment (trim_blocks, lstrip_blocks). Written for this module:
/// every tag trims the whitespace around it and newlines are spelt out.
pub const DEFAULT_TEMPLATE: &str = r#"{#- One "name : value" line per pair; mappings nest two spaces deeper. -#}
{%- macro pairs_text(pairs, pad='') -%}
  {%- for name, item in pairs -%}
    {{- pad }}{{ name }} : {% if item is mapping -%}
      {{- '\n' }}{{ pairs_text(six.iteritems(item), pad ~ '  ') -}}
    {%- elif item is string and (item | trim).split('\n') | length > 1 -%}
      {{- '      \n' }}{{ pad }}  {{ item | trim }}{{ '\n' -}}
    {%- else -%}
      {{- item | trim }}{{ '\n' -}}
    {%- endif -%}
  {%- endfor -%}
{%- endmacro -%}
{%- set wanted_shell = ['stdout', 'stderr', 'return_code', 'error'] -%}
{{ '\n' }}Action {{ execution.action.ref }} completed.{{ '\n' -}}
status : {{ execution.status }}{{ '\n' -}}
execution: {{ execution.id }}{{ '\n\n' -}}
{%- if execution.web_url -%}
  web_url: {{ execution.web_url }}{{ '\n' -}}
{%- endif -%}
{{ '\n' -}}
{%- if execution.elapsed_seconds -%}
  Took {{ execution.elapsed_seconds | to_human_time_from_seconds }} to complete.{{ '\n' -}}
{%- endif -%}
{{ '\n' -}}
{%- if execution.result -%}
  result :{{ '\n' }}--------{{ '\n' -}}
  {%- set runner_name = execution.runner['name'] -%}
  {%- if runner_name in ['http-request'] -%}
    {{ '  ' }}{{ pairs_text(six.iteritems(execution.result)) }}{{ '\n' -}}
  {%- elif runner_name in ['python-script', 'windows-cmd', 'windows-script'] -%}
    {{ pairs_text(six.iteritems(execution.result)
                  | selectattr('0', 'in', ['result', 'stdout', 'stderr', 'exit_code'])
                  | selectattr('1')) }}{{ '\n' -}}
  {%- elif runner_name in ['remote-shell-cmd', 'remote-shell-script'] -%}
    {%- for host, host_result in six.iteritems(execution.result) -%}
      {{ host }} : {{ '\n' }}{{ pairs_text(six.iteritems(host_result)
                                           | selectattr('0', 'in', wanted_shell)
                                           | selectattr('1'), '  ') }}{{ '\n' -}}
    {%- endfor -%}
  {%- elif runner_name in ['local-shell-cmd', 'local-shell-script'] -%}
    {{ pairs_text(six.iteritems(execution.result)
                  | selectattr('0', 'in', wanted_shell)
                  | selectattr('1')) }}{{ '\n' -}}
  {%- elif execution.result is mapping -%}
    {{ pairs_text(six.iteritems(execution.result)) }}{{ '\n' -}}
  {%- else -%}
    {{ execution.result }}{{ '\n' -}}
  {%- endif -%}
{%- endif -%}
"#;

/// What `format_execution_result` returns for an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultMessage {
    /// `false` when the alias has `result.enabled: false`: st2 posts nothing.
    pub enabled: bool,
    /// The rendered message (empty when not enabled).
    pub message: String,
    /// The alias's rendered `result.extra`, when it has one.
    pub extra: Option<Value>,
}

/// Why a result message could not be rendered. `template` names the template:
/// `<alias ref> result.format`, `<alias ref> result.extra.<key>` or the default.
#[derive(Debug, thiserror::Error)]
pub enum ResultMessageError {
    /// The template does not parse (st2 raises `TemplateSyntaxError`).
    #[error("{template}: template syntax error: {message}")]
    Syntax {
        /// Which template.
        template: String,
        /// minijinja's description.
        message: String,
    },
    /// Rendering failed where Jinja2 raises too (undefined attribute chains, type
    /// errors, bad filter arguments, ...).
    #[error("{template}: render error: {message}")]
    Render {
        /// Which template.
        template: String,
        /// What went wrong.
        message: String,
    },
    /// The template calls an st2 filter this module cannot reproduce faithfully.
    #[error("{template}: st2 filter `{filter}` is not supported by stormbridge")]
    UnsupportedFilter {
        /// Which template.
        template: String,
        /// The filter's name.
        filter: String,
    },
    /// The render used up its fuel ([`FUEL`]).
    #[error("{template}: template did too much work (fuel exhausted)")]
    TooExpensive {
        /// Which template.
        template: String,
    },
    /// The output grew past [`MAX_OUTPUT_BYTES`].
    #[error("{template}: output larger than {limit} bytes")]
    OutputTooLarge {
        /// Which template.
        template: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The alias's `result` section has a shape st2 cannot use (st2 raises too),
    /// or a rendered `extra` list/dict is no longer JSON.
    #[error("{template}: {message}")]
    InvalidAlias {
        /// Which template.
        template: String,
        /// What is wrong.
        message: String,
    },
}

/// Renders result messages the way the chatops pack does. Build it once and reuse
/// it; it holds the compiled default template and both Jinja environments.
pub struct ResultFormatter {
    /// `jinja2.Undefined` environment (messages).
    lenient: Environment<'static>,
    /// `StrictUndefined` environment (`render_values` for `result.extra`).
    strict: Environment<'static>,
    /// Whether [`DEFAULT_TEMPLATE`] compiled (it always does; checked by tests).
    default_ok: bool,
}

impl Default for ResultFormatter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ResultFormatter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultFormatter")
            .field("default_ok", &self.default_ok)
            .finish_non_exhaustive()
    }
}

impl ResultFormatter {
    /// Builds the environments (st2's settings, filters and tests) and compiles the
    /// default template.
    ///
    /// Supported st2 filters: `to_json_string`, `from_json_string`, `json_escape`,
    /// `to_complex`, `use_none`, `regex_match`, `regex_replace`, `regex_search`,
    /// `regex_substring`, `to_human_time_from_seconds`, `version_compare`,
    /// `version_more_than`, `version_less_than`, `version_equal`, `version_match`,
    /// `version_bump_major`, `version_bump_minor`, `version_bump_patch`,
    /// `version_strip_patch`, `basename`, `dirname`.
    ///
    /// Jinja2 builtins that minijinja lacks or that print differently are provided
    /// with Jinja2's behaviour: `trim`, `string`, `join`, `tojson`, `int`, `float`,
    /// `escape`/`e`, `urlencode`, `wordcount`, `truncate`, `center`,
    /// `filesizeformat`.
    ///
    /// `to_yaml_string`, `from_yaml_string`, `jsonpath_query` and `decrypt_kv` give
    /// [`ResultMessageError::UnsupportedFilter`] when a render calls them.
    #[must_use]
    pub fn new() -> Self {
        let mut lenient = build_env(UndefinedBehavior::Lenient);
        let strict = build_env(UndefinedBehavior::Strict);
        let default_ok = lenient
            .add_template_owned("default", DEFAULT_TEMPLATE)
            .is_ok();
        Self {
            lenient,
            strict,
            default_ok,
        }
    }

    /// Renders the message for `execution`, as `format_execution_result` would.
    ///
    /// `execution`: the JSON of `GET /api/v1/executions/{id}` (key order as
    /// received; default-template output follows the mapping's order).
    /// `alias`: the alias object (as `GET /api/v1/actionalias` returns it) when
    /// known. Like st2, the alias is only used when the execution's
    /// `context.action_alias_ref.id` is set.
    ///
    /// # Errors
    ///
    /// Whenever st2's action would fail (template syntax errors, undefined
    /// attribute chains, type errors, ...), plus fuel/size limits and unsupported
    /// filters. [`Self::default_message`] gives a fallback text.
    pub fn format(
        &self,
        execution: &Value,
        alias: Option<&Value>,
    ) -> Result<ResultMessage, ResultMessageError> {
        let exec_value = execution_value(execution);
        let alias_id = execution
            .get("context")
            .and_then(|c| c.get("action_alias_ref"))
            .and_then(|r| r.get("id"));
        let alias = alias.filter(|_| alias_id.is_some_and(json_truthy));

        let mut ctx: Vec<(&str, JValue)> =
            vec![("six", JValue::from_object(Six)), ("execution", exec_value)];
        let mut format_source: Option<&Value> = None;
        let mut extra_source: Option<&Value> = None;
        let mut enabled = true;
        let mut alias_name = String::from("alias");
        if let Some(alias) = alias {
            alias_name = alias_label(alias);
            ctx.push(("alias", to_jvalue(alias)));
            if let Some(result) = alias.get("result").filter(|r| json_truthy(r)) {
                let Some(section) = result.as_object() else {
                    return Err(ResultMessageError::InvalidAlias {
                        template: format!("{alias_name} result"),
                        message: "`result` is not a mapping".to_string(),
                    });
                };
                if !section.get("enabled").is_none_or(json_truthy) {
                    enabled = false;
                } else {
                    format_source = section.get("format");
                    extra_source = section.get("extra");
                }
            }
        }
        if !enabled {
            return Ok(ResultMessage {
                enabled: false,
                message: String::new(),
                extra: None,
            });
        }
        let context = JValue::from_pairs(ctx.iter().cloned());
        let extra = match extra_source {
            Some(extra) => Some(self.render_values(extra, &ctx, &alias_name)?),
            None => None,
        };
        let message = match format_source {
            Some(Value::String(source)) => {
                let name = format!("{alias_name} result.format");
                render_source(&self.lenient, &name, source, context)?
            }
            Some(other) => {
                return Err(ResultMessageError::InvalidAlias {
                    template: format!("{alias_name} result.format"),
                    message: format!(
                        "`result.format` must be a string, not {}",
                        json_type_name(other)
                    ),
                })
            }
            None => self.render_default(context)?,
        };
        Ok(ResultMessage {
            enabled: true,
            message,
            extra,
        })
    }

    /// The default template's text for this execution, ignoring any alias (a
    /// fallback when the alias's own format fails). If even the default template
    /// fails (st2 would post nothing then), a plain summary of action, status and
    /// id is returned.
    #[must_use]
    pub fn default_message(&self, execution: &Value) -> String {
        let context = JValue::from_pairs([
            ("six", JValue::from_object(Six)),
            ("execution", execution_value(execution)),
        ]);
        match self.render_default(context) {
            Ok(text) => text,
            Err(_) => plain_summary(execution),
        }
    }

    fn render_default(&self, context: JValue) -> Result<String, ResultMessageError> {
        let template = if self.default_ok {
            self.lenient.get_template("default").ok()
        } else {
            None
        };
        let Some(template) = template else {
            return Err(ResultMessageError::Syntax {
                template: DEFAULT_NAME.to_string(),
                message: "default template did not compile".to_string(),
            });
        };
        render_capped(&template, context).map_err(|e| classify(DEFAULT_NAME, &e))
    }

    /// st2's `render_values(mapping, context)`: strings are rendered; dicts and lists
    /// are rendered through their compact JSON text and parsed back; values whose
    /// text does not change keep their original value and type; `__context` holds
    /// the whole context. Uses the strict environment, as st2 does.
    fn render_values(
        &self,
        extra: &Value,
        ctx: &[(&str, JValue)],
        alias_name: &str,
    ) -> Result<Value, ResultMessageError> {
        if !json_truthy(extra) {
            return Ok(extra.clone());
        }
        let Some(mapping) = extra.as_object() else {
            return Err(ResultMessageError::InvalidAlias {
                template: format!("{alias_name} result.extra"),
                message: format!(
                    "`result.extra` must be a mapping, not {}",
                    json_type_name(extra)
                ),
            });
        };
        let inner = JValue::from_pairs(ctx.iter().cloned());
        let mut super_ctx: Vec<(&str, JValue)> = vec![("__context", inner)];
        super_ctx.extend(ctx.iter().cloned());
        let context = JValue::from_pairs(super_ctx);
        let mut out = serde_json::Map::new();
        for (key, value) in mapping {
            let name = format!("{alias_name} result.extra.{key}");
            let (source, from_json) = match value {
                Value::Object(_) | Value::Array(_) => (serde_json::to_string(value), true),
                Value::String(s) => (Ok(s.clone()), false),
                other => (Ok(json_py_str(other)), false),
            };
            let source = source.map_err(|e| ResultMessageError::InvalidAlias {
                template: name.clone(),
                message: e.to_string(),
            })?;
            let rendered = render_source(&self.strict, &name, &source, context.clone())?;
            let new_value = if rendered == source {
                value.clone()
            } else if from_json {
                serde_json::from_str(&rendered).map_err(|e| ResultMessageError::InvalidAlias {
                    template: name.clone(),
                    message: format!("rendered value is not JSON any more: {e}"),
                })?
            } else {
                Value::String(rendered)
            };
            out.insert(key.clone(), new_value);
        }
        Ok(Value::Object(out))
    }
}

/// A short name for an alias in error texts: its `ref`, `pack.name` or id.
fn alias_label(alias: &Value) -> String {
    if let Some(r) = alias.get("ref").and_then(Value::as_str) {
        return format!("alias {r}");
    }
    match (
        alias.get("pack").and_then(Value::as_str),
        alias.get("name").and_then(Value::as_str),
    ) {
        (Some(p), Some(n)) => format!("alias {p}.{n}"),
        (None, Some(n)) => format!("alias {n}"),
        _ => match alias.get("id").and_then(Value::as_str) {
            Some(id) => format!("alias {id}"),
            None => "alias".to_string(),
        },
    }
}

/// A JSON value as a template value (maps keep their order).
fn to_jvalue<T: serde::Serialize>(value: &T) -> JValue {
    JValue::from(minijinja::value::Serde(value))
}

/// The execution as the template sees it: the API document without the fields
/// `format_execution_result` excludes.
fn execution_value(execution: &Value) -> JValue {
    match execution {
        Value::Object(map) => {
            let kept: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !EXCLUDED_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            to_jvalue(&kept)
        }
        other => to_jvalue(other),
    }
}

/// A last-resort text when the default template cannot render.
fn plain_summary(execution: &Value) -> String {
    let field = |path: &[&str]| {
        let mut cur = execution;
        for p in path {
            match cur.get(p) {
                Some(v) => cur = v,
                None => return String::new(),
            }
        }
        json_py_str(cur)
    };
    format!(
        "\nAction {} completed.\nstatus : {}\nexecution: {}\n",
        field(&["action", "ref"]),
        field(&["status"]),
        field(&["id"])
    )
}

// ---------------------------------------------------------------------------
// Environment and rendering
// ---------------------------------------------------------------------------

fn build_env(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(false)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_undefined_behavior(undefined);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(|out, state, value| {
        let text = py_str(state, value)?;
        out.write_str(&text)
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write output"))
    });
    env.add_global("six", JValue::from_object(Six));

    // Jinja2 builtins that must stringify like Python.
    env.add_filter("trim", filter_trim);
    env.add_filter("string", filter_string);
    env.add_filter("join", filter_join);
    env.add_filter("tojson", filter_tojson);
    env.add_filter("int", filter_int);
    env.add_filter("float", filter_float);
    env.add_filter("wordcount", filter_wordcount);
    env.add_filter("truncate", filter_truncate);
    env.add_filter("center", filter_center);
    env.add_filter("filesizeformat", filter_filesizeformat);
    env.add_filter("escape", filter_escape);
    env.add_filter("e", filter_escape);
    env.add_filter("urlencode", filter_urlencode);
    env.add_test("in", test_in);

    // st2's filters (st2common/util/jinja.py get_filters).
    env.add_filter("to_json_string", filter_to_json_string);
    env.add_filter("from_json_string", filter_from_json_string);
    env.add_filter("json_escape", filter_json_escape);
    env.add_filter("to_complex", filter_to_complex);
    env.add_filter("use_none", filter_use_none);
    env.add_filter("regex_match", filter_regex_match);
    env.add_filter("regex_replace", filter_regex_replace);
    env.add_filter("regex_search", filter_regex_search);
    env.add_filter("regex_substring", filter_regex_substring);
    env.add_filter("to_human_time_from_seconds", filter_human_time);
    env.add_filter("version_compare", filter_version_compare);
    env.add_filter("version_more_than", filter_version_more_than);
    env.add_filter("version_less_than", filter_version_less_than);
    env.add_filter("version_equal", filter_version_equal);
    env.add_filter("version_match", filter_version_match);
    env.add_filter("version_bump_major", filter_version_bump_major);
    env.add_filter("version_bump_minor", filter_version_bump_minor);
    env.add_filter("version_bump_patch", filter_version_bump_patch);
    env.add_filter("version_strip_patch", filter_version_strip_patch);
    env.add_filter("basename", filter_basename);
    env.add_filter("dirname", filter_dirname);
    for name in [
        "to_yaml_string",
        "from_yaml_string",
        "jsonpath_query",
        "decrypt_kv",
    ] {
        env.add_filter(
            name,
            move |_: Rest<ValueOrKwargs>| -> Result<JValue, Error> {
                Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{UNSUPPORTED_MARK}{name}"),
                ))
            },
        );
    }
    env
}

/// Compiles and renders `source` under `name`, mapping errors.
fn render_source(
    env: &Environment<'static>,
    name: &str,
    source: &str,
    context: JValue,
) -> Result<String, ResultMessageError> {
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| classify_error(name, &e))?;
    render_capped(&template, context).map_err(|e| classify(name, &e))
}

/// An `io::Write` that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct CappedWriter<'a> {
    buf: Vec<u8>,
    overflowed: &'a Cell<bool>,
}

impl io::Write for CappedWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > MAX_OUTPUT_BYTES {
            self.overflowed.set(true);
            return Err(io::Error::other("output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Errors of one render, before they get a template name.
enum RenderFailure {
    Engine(Error),
    TooLarge,
}

fn render_capped(
    template: &minijinja::Template<'_, '_>,
    context: JValue,
) -> Result<String, RenderFailure> {
    let overflowed = Cell::new(false);
    let mut writer = CappedWriter {
        buf: Vec::new(),
        overflowed: &overflowed,
    };
    let result = template.render_captured_to(context, &mut writer);
    if overflowed.get() {
        return Err(RenderFailure::TooLarge);
    }
    result.map_err(RenderFailure::Engine)?;
    String::from_utf8(writer.buf).map_err(|_| {
        RenderFailure::Engine(Error::new(
            ErrorKind::WriteFailure,
            "output is not valid UTF-8",
        ))
    })
}

/// Turns a render failure into a [`ResultMessageError`] for template `name`.
fn classify(name: &str, failure: &RenderFailure) -> ResultMessageError {
    match failure {
        RenderFailure::Engine(e) => classify_error(name, e),
        RenderFailure::TooLarge => ResultMessageError::OutputTooLarge {
            template: name.to_string(),
            limit: MAX_OUTPUT_BYTES,
        },
    }
}

/// Turns a minijinja error into a [`ResultMessageError`] for template `name`.
fn classify_error(name: &str, error: &Error) -> ResultMessageError {
    let template = name.to_string();
    // A filter's error may be wrapped; look through the chain.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut out_of_fuel = false;
    while let Some(err) = cur {
        if let Some(e) = err.downcast_ref::<Error>() {
            if e.kind() == ErrorKind::OutOfFuel {
                out_of_fuel = true;
            }
            if let Some(filter) = e.detail().and_then(|d| d.strip_prefix(UNSUPPORTED_MARK)) {
                return ResultMessageError::UnsupportedFilter {
                    template,
                    filter: filter.to_string(),
                };
            }
        }
        cur = err.source();
    }
    if out_of_fuel {
        return ResultMessageError::TooExpensive { template };
    }
    let message = describe(error);
    if error.kind() == ErrorKind::SyntaxError {
        ResultMessageError::Syntax { template, message }
    } else {
        ResultMessageError::Render { template, message }
    }
}

/// One line: the error, its line number and its causes.
fn describe(err: &Error) -> String {
    let mut text = match err.detail() {
        Some(d) => format!("{}: {d}", err.kind()),
        None => err.kind().to_string(),
    };
    if let Some(line) = err.line() {
        let _ = write!(text, " (line {line})");
    }
    let mut cur = std::error::Error::source(err);
    while let Some(cause) = cur {
        let _ = write!(text, "; {cause}");
        cur = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------
// Python-style printing
// ---------------------------------------------------------------------------

fn strict(state: &State) -> bool {
    matches!(
        state.undefined_behavior(),
        UndefinedBehavior::Strict | UndefinedBehavior::SemiStrict
    )
}

fn undefined_error() -> Error {
    Error::new(ErrorKind::UndefinedError, "undefined value")
}

/// Python's `str()` of a template value (what Jinja2 prints for `{{ value }}`).
/// Undefined prints as an empty string, or is an error in the strict environment.
fn py_str(state: &State, value: &JValue) -> Result<String, Error> {
    if value.is_undefined() && strict(state) {
        return Err(undefined_error());
    }
    let mut out = String::new();
    write_py(&mut out, value, false, 0)?;
    Ok(out)
}

/// Python's `str()`/`repr()` of `value` appended to `out`.
fn write_py(out: &mut String, value: &JValue, repr: bool, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "maximum recursion depth exceeded while getting the repr of an object",
        ));
    }
    match value.kind() {
        ValueKind::Undefined => {
            if repr {
                out.push_str("Undefined");
            }
        }
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => {
            if value.is_integer() {
                let _ = write!(out, "{value}");
            } else {
                out.push_str(&py_float(f64::try_from(value.clone()).unwrap_or(f64::NAN)));
            }
        }
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if repr {
                out.push_str(&py_str_repr(s));
            } else {
                out.push_str(s);
            }
        }
        ValueKind::Map => {
            out.push('{');
            if let Some(pairs) = value.as_object().and_then(|o| o.try_iter_pairs()) {
                for (i, (k, v)) in pairs.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_py(out, &k, true, depth + 1)?;
                    out.push_str(": ");
                    write_py(out, &v, true, depth + 1)?;
                }
            }
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let tuple = value.is_tuple();
            out.push(if tuple { '(' } else { '[' });
            let mut count = 0usize;
            if let Ok(items) = value.try_iter() {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_py(out, &item, true, depth + 1)?;
                    count += 1;
                }
            }
            if tuple {
                if count == 1 {
                    out.push(',');
                }
                out.push(')');
            } else {
                out.push(']');
            }
        }
        ValueKind::Invalid => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("invalid value: {value}"),
            ))
        }
        _ => {
            let _ = write!(out, "{value}");
        }
    }
    Ok(())
}

/// Python's `repr()` of a float: shortest round-trip digits, exponent form below
/// 1e-4 and from 1e16 (`1e-05`, `1e+16`), `.0` on whole numbers.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // `{:e}` gives the shortest digits that round-trip, like Python's repr.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            let zeros = usize::try_from(-exp - 1).unwrap_or(0);
            out.extend(std::iter::repeat_n('0', zeros));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
    out
}

/// Whether Python's `str.isprintable()` holds for `c` (repr escapes the rest).
/// Covers control, separator, format, private-use and noncharacter code points;
/// unassigned code points are treated as printable.
fn py_printable(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if u < 0x20 || (0x7f..=0xa0).contains(&u) || u == 0xad {
        return false;
    }
    !(matches!(
        u,
        0x0600..=0x0605
            | 0x061c
            | 0x06dd
            | 0x070f
            | 0x0890..=0x0891
            | 0x08e2
            | 0x1680
            | 0x180e
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x2066..=0x206f
            | 0x3000
            | 0xd800..=0xf8ff
            | 0xfdd0..=0xfdef
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
            | 0xf0000..=0x10ffff
    ) || (u & 0xfffe) == 0xfffe)
}

/// Python's `repr()` of a string.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !py_printable(c) => {
                let u = c as u32;
                if u <= 0xff {
                    let _ = write!(out, "\\x{u:02x}");
                } else if u <= 0xffff {
                    let _ = write!(out, "\\u{u:04x}");
                } else {
                    let _ = write!(out, "\\U{u:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isspace()` for one character (`strip()` removes these).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str()` of a JSON value (for `render_values` of scalars and the
/// fallback summary).
fn json_py_str(v: &Value) -> String {
    let mut out = String::new();
    let _ = write_py(&mut out, &to_jvalue(v), false, 0);
    out
}

/// Python truthiness of a JSON value.
fn json_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn json_type_name(v: &Value) -> &'static str {
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

/// Python's type name of a template value (for error texts).
fn py_type(v: &JValue) -> &'static str {
    match v.kind() {
        ValueKind::Undefined => "Undefined",
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq if v.is_tuple() => "tuple",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        ValueKind::Iterable => "generator",
        _ => "object",
    }
}

fn type_error(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("TypeError: {}", msg.into()),
    )
}

fn value_error(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("ValueError: {}", msg.into()),
    )
}

// ---------------------------------------------------------------------------
// `six`
// ---------------------------------------------------------------------------

/// The `six` module as templates use it: `six.iteritems(d)` and friends.
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
        args: &[JValue],
    ) -> Result<JValue, Error> {
        let [value] = args else {
            return Err(type_error(format!(
                "{method}() takes 1 positional argument but {} were given",
                args.len()
            )));
        };
        match method {
            "iteritems" | "iterkeys" | "itervalues" | "viewitems" | "viewkeys" | "viewvalues" => {
                mapping_view(state, value, method)
            }
            "text_type" | "u" => py_str(state, value).map(JValue::from),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("module 'six' has no attribute '{method}'"),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<module 'six'>")
    }
}

/// `six.iteritems(d)` (and keys/values): the mapping's pairs in order, as
/// `(key, value)` tuples. Anything but a mapping is an error, as in Python.
fn mapping_view(state: &State, value: &JValue, method: &str) -> Result<JValue, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("undefined value has no attribute 'items' (six.{method})"),
        ));
    }
    let pairs = match value.kind() {
        ValueKind::Map => value.as_object().and_then(|o| o.try_iter_pairs()),
        _ => None,
    };
    let Some(pairs) = pairs else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "AttributeError: '{}' object has no attribute 'items'",
                py_type(value)
            ),
        ));
    };
    let mut items = Vec::new();
    for (k, v) in pairs {
        state.consume_fuel(1)?;
        items.push(match method {
            "iterkeys" | "viewkeys" => k,
            "itervalues" | "viewvalues" => v,
            _ => JValue::from(Tuple::from([k, v])),
        });
    }
    Ok(JValue::from(items))
}

// ---------------------------------------------------------------------------
// Argument binding (Python's positional-or-keyword parameters)
// ---------------------------------------------------------------------------

/// Binds a filter's extra arguments to `params` like a Python call would.
fn bind(
    filter: &str,
    params: &[&str],
    rest: Rest<ValueOrKwargs>,
) -> Result<Vec<Option<JValue>>, Error> {
    let mut out: Vec<Option<JValue>> = vec![None; params.len()];
    let mut pos = 0usize;
    for value in rest.into_values() {
        if value.is_kwargs() {
            let kwargs = Kwargs::try_from(value)?;
            let names: Vec<String> = kwargs.args().map(str::to_string).collect();
            for name in names {
                let Some(idx) = params.iter().position(|p| *p == name) else {
                    return Err(type_error(format!(
                        "{filter}() got an unexpected keyword argument '{name}'"
                    )));
                };
                if out[idx].is_some() {
                    return Err(type_error(format!(
                        "{filter}() got multiple values for argument '{name}'"
                    )));
                }
                out[idx] = Some(kwargs.get::<JValue>(&name)?);
            }
        } else {
            if pos >= params.len() {
                return Err(type_error(format!(
                    "{filter}() takes {} positional arguments but more were given",
                    params.len() + 1
                )));
            }
            out[pos] = Some(value);
            pos += 1;
        }
    }
    Ok(out)
}

fn arg_str(filter: &str, name: &str, v: &JValue) -> Result<String, Error> {
    match v.as_str() {
        Some(s) if v.kind() == ValueKind::String => Ok(s.to_string()),
        _ => Err(type_error(format!(
            "{filter}(): {name} must be str, not {}",
            py_type(v)
        ))),
    }
}

/// Python's `int` value of an int or bool argument.
fn arg_int(filter: &str, name: &str, v: &JValue) -> Result<i64, Error> {
    match v.kind() {
        ValueKind::Bool => Ok(i64::from(v.is_true())),
        ValueKind::Number if v.is_integer() => v.as_i64().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{filter}(): {name} is too large"),
            )
        }),
        _ => Err(type_error(format!(
            "{filter}(): {name} must be an integer, not {}",
            py_type(v)
        ))),
    }
}

// ---------------------------------------------------------------------------
// Jinja2 builtins that print values
// ---------------------------------------------------------------------------

/// Jinja2's `trim(value, chars=None)`: `str(value).strip(chars)`.
fn filter_trim(state: &State, value: JValue, rest: Rest<ValueOrKwargs>) -> Result<JValue, Error> {
    let args = bind("trim", &["chars"], rest)?;
    let text = py_str(state, &value)?;
    let trimmed = match args[0].as_ref().filter(|c| !c.is_none()) {
        Some(chars) => {
            let chars: Vec<char> = arg_str("trim", "chars", chars)?.chars().collect();
            text.trim_matches(|c| chars.contains(&c)).to_string()
        }
        None => text.trim_matches(py_space).to_string(),
    };
    Ok(JValue::from(trimmed))
}

/// Jinja2's `string(value)`: Python's `str()`.
fn filter_string(state: &State, value: JValue) -> Result<JValue, Error> {
    if value.kind() == ValueKind::String {
        return Ok(value);
    }
    py_str(state, &value).map(JValue::from)
}

/// Jinja2's `join(value, d='', attribute=None)` with items printed by `str()`.
fn filter_join(state: &State, value: JValue, rest: Rest<ValueOrKwargs>) -> Result<JValue, Error> {
    let args = bind("join", &["d", "attribute"], rest)?;
    let sep = match &args[0] {
        Some(d) => py_str(state, d)?,
        None => String::new(),
    };
    let attribute = match &args[1] {
        Some(a) if !a.is_none() => Some(py_str(state, a)?),
        _ => None,
    };
    if value.is_undefined() {
        if strict(state) {
            return Err(undefined_error());
        }
        return Ok(JValue::from(""));
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        state.consume_fuel(1)?;
        if i > 0 {
            out.push_str(&sep);
        }
        let item = match &attribute {
            Some(path) => lookup_path(&item, path)?,
            None => item,
        };
        out.push_str(&py_str(state, &item)?);
    }
    Ok(JValue::from(out))
}

/// Jinja2's attribute path lookup (`'a.0.b'`, digits index).
fn lookup_path(value: &JValue, path: &str) -> Result<JValue, Error> {
    let mut cur = value.clone();
    for part in path.split('.') {
        cur = match part.parse::<i64>() {
            Ok(n) => cur.get_item(&JValue::from(n))?,
            Err(_) => cur.get_attr(part)?,
        };
    }
    Ok(cur)
}

/// Jinja2's `tojson(value, indent=None)`: `json.dumps(sort_keys=True)` with `<`,
/// `>`, `&` and `'` escaped.
fn filter_tojson(state: &State, value: JValue, rest: Rest<ValueOrKwargs>) -> Result<JValue, Error> {
    let args = bind("tojson", &["indent"], rest)?;
    let indent = json_indent(args[0].as_ref())?;
    let opts = JsonOptions {
        item_sep: if indent.is_some() { "," } else { ", " }.to_string(),
        key_sep: ": ".to_string(),
        indent,
        sort_keys: true,
    };
    let text = py_json_dumps(state, &value, &opts)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027");
    Ok(JValue::from_safe_string(text))
}

/// Python's `int(text, base)` for a string (`' 42 '`, `'-1_000'`, `'0x1f'` with base 16).
fn py_parse_int(text: &str, base: u32) -> Option<i128> {
    let t = text.trim_matches(py_space);
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let lower = digits.to_ascii_lowercase();
    let digits = match base {
        16 => lower.strip_prefix("0x").unwrap_or(&lower),
        8 => lower.strip_prefix("0o").unwrap_or(&lower),
        2 => lower.strip_prefix("0b").unwrap_or(&lower),
        _ => lower.as_str(),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let n = i128::from_str_radix(&clean, base).ok()?;
    Some(if neg { -n } else { n })
}

/// Python's `float(text)` for a string.
fn py_parse_float(text: &str) -> Option<f64> {
    let t = text.trim_matches(py_space);
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if matches!(unsigned, "inf" | "infinity" | "nan") {
        return lower.replace("infinity", "inf").parse().ok();
    }
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    if clean
        .chars()
        .any(|c| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
    {
        return None;
    }
    clean.parse().ok()
}

/// Python's `float(value)` for a template value, `None` where Python raises
/// `TypeError`/`ValueError`.
fn py_float_of(value: &JValue) -> Option<f64> {
    match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => py_parse_float(value.as_str().unwrap_or_default()),
        _ => None,
    }
}

/// Jinja2's `int(value, default=0, base=10)`.
fn filter_int(state: &State, value: JValue, rest: Rest<ValueOrKwargs>) -> Result<JValue, Error> {
    let args = bind("int", &["default", "base"], rest)?;
    let default = args[0].clone().unwrap_or_else(|| JValue::from(0));
    let base = match &args[1] {
        Some(b) => u32::try_from(arg_int("int", "base", b)?)
            .ok()
            .filter(|b| (2..=36).contains(b))
            .ok_or_else(|| value_error("int() base must be >= 2 and <= 36, or 0"))?,
        None => 10,
    };
    if value.is_undefined() && strict(state) {
        return Err(undefined_error());
    }
    let direct = match value.kind() {
        ValueKind::Bool => Some(i128::from(value.is_true())),
        ValueKind::Number if value.is_integer() => i128::try_from(value.clone()).ok(),
        ValueKind::String => py_parse_int(value.as_str().unwrap_or_default(), base),
        _ => None,
    };
    if let Some(n) = direct {
        return Ok(JValue::from(n));
    }
    match py_float_of(&value) {
        Some(f) if f.is_nan() => Err(value_error("cannot convert float NaN to integer")),
        Some(f) if f.is_infinite() || f.abs() >= 1.7e38 => Err(Error::new(
            ErrorKind::InvalidOperation,
            "OverflowError: cannot convert float infinity to integer",
        )),
        #[allow(clippy::cast_possible_truncation)]
        Some(f) => Ok(JValue::from(f.trunc() as i128)),
        None => Ok(default),
    }
}

/// Jinja2's `float(value, default=0.0)`.
fn filter_float(state: &State, value: JValue, rest: Rest<ValueOrKwargs>) -> Result<JValue, Error> {
    let args = bind("float", &["default"], rest)?;
    if value.is_undefined() && strict(state) {
        return Err(undefined_error());
    }
    Ok(match py_float_of(&value) {
        Some(f) => JValue::from(f),
        None => args[0].clone().unwrap_or_else(|| JValue::from(0.0)),
    })
}

/// Jinja2's `wordcount(s)`: the number of `\w+` runs in `str(s)`.
fn filter_wordcount(state: &State, value: JValue) -> Result<JValue, Error> {
    let text = py_str(state, &value)?;
    let mut count = 0usize;
    let mut in_word = false;
    for c in text.chars() {
        let word = c.is_alphanumeric() || c == '_';
        if word && !in_word {
            count += 1;
        }
        in_word = word;
    }
    Ok(JValue::from(count))
}

/// Jinja2's `truncate(s, length=255, killwords=False, end='...', leeway=5)`.
fn filter_truncate(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
    let args = bind("truncate", &["length", "killwords", "end", "leeway"], rest)?;
    let length = match &args[0] {
        Some(v) => arg_int("truncate", "length", v)?,
        None => 255,
    };
    let killwords = args[1].as_ref().is_some_and(JValue::is_true);
    let end = match &args[2] {
        Some(v) => py_str(state, v)?,
        None => "...".to_string(),
    };
    let leeway = match args[3].as_ref().filter(|v| !v.is_none()) {
        Some(v) => arg_int("truncate", "leeway", v)?,
        None => 5,
    };
    let end_len = i64::try_from(end.chars().count()).unwrap_or(i64::MAX);
    if length < end_len {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("AssertionError: expected length >= {end_len}, got {length}"),
        ));
    }
    if leeway < 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("AssertionError: expected leeway >= 0, got {leeway}"),
        ));
    }
    let text = py_str(state, &value)?;
    let chars: Vec<char> = text.chars().collect();
    let len = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    if len <= length.saturating_add(leeway) {
        return Ok(JValue::from(text));
    }
    let keep = usize::try_from(length - end_len).unwrap_or(0);
    let head: String = chars.iter().take(keep).collect();
    let head = if killwords {
        head
    } else {
        match head.rsplit_once(' ') {
            Some((before, _)) => before.to_string(),
            None => head,
        }
    };
    Ok(JValue::from(head + &end))
}

/// Jinja2's `center(value, width=80)`: Python's `str.center`.
fn filter_center(state: &State, value: JValue, rest: Rest<ValueOrKwargs>) -> Result<JValue, Error> {
    let args = bind("center", &["width"], rest)?;
    let width = match &args[0] {
        Some(v) => arg_int("center", "width", v)?,
        None => 80,
    };
    let text = py_str(state, &value)?;
    let len = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    if width <= len {
        return Ok(JValue::from(text));
    }
    let width = width.min(i64::try_from(MAX_OUTPUT_BYTES).unwrap_or(i64::MAX));
    let margin = width - len;
    let left = margin / 2 + (margin & width & 1);
    let right = margin - left;
    let pad = |n: i64| " ".repeat(usize::try_from(n).unwrap_or(0));
    Ok(JValue::from(format!("{}{text}{}", pad(left), pad(right))))
}

/// Jinja2's `filesizeformat(value, binary=False)`.
fn filter_filesizeformat(value: JValue, rest: Rest<ValueOrKwargs>) -> Result<JValue, Error> {
    let args = bind("filesizeformat", &["binary"], rest)?;
    let binary = args[0].as_ref().is_some_and(JValue::is_true);
    let Some(bytes) = py_float_of(&value) else {
        return Err(value_error(format!(
            "could not convert {} to float",
            py_type(&value)
        )));
    };
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let prefixes = if binary {
        ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    } else {
        ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    };
    if bytes == 1.0 {
        return Ok(JValue::from("1 Byte"));
    }
    if bytes < base {
        #[allow(clippy::cast_possible_truncation)]
        let whole = bytes.trunc() as i128;
        return Ok(JValue::from(format!("{whole} Bytes")));
    }
    let mut unit = base;
    let mut prefix = prefixes[0];
    for (i, p) in prefixes.iter().enumerate() {
        unit = base.powi(i32::try_from(i).unwrap_or(0) + 2);
        prefix = p;
        if bytes < unit {
            break;
        }
    }
    Ok(JValue::from(format!("{:.1} {prefix}", base * bytes / unit)))
}

/// Jinja2's `escape` (markupsafe): `&`, `<`, `>`, `"` and `'` become entities;
/// strings already marked safe pass through.
fn filter_escape(state: &State, value: JValue) -> Result<JValue, Error> {
    if value.is_safe() {
        return Ok(value);
    }
    let text = py_str(state, &value)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Ok(JValue::from_safe_string(out))
}

/// Python's `urllib.parse.quote_from_bytes` of UTF-8 text (`safe` kept as is);
/// query-string parts turn `%20` into `+`.
fn url_quote(text: &str, for_qs: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'.' | b'-' | b'~')
            || (!for_qs && b == b'/')
        {
            out.push(char::from(b));
        } else if for_qs && b == b' ' {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Jinja2's `urlencode`: a string (or scalar) is quoted keeping `/`; a mapping or
/// a sequence of pairs becomes `k=v&k=v`.
fn filter_urlencode(state: &State, value: JValue) -> Result<JValue, Error> {
    let pairs: Vec<(JValue, JValue)> = match value.kind() {
        ValueKind::Map => value
            .as_object()
            .and_then(|o| o.try_iter_pairs())
            .map(Iterator::collect)
            .unwrap_or_default(),
        ValueKind::Seq | ValueKind::Iterable => {
            let mut pairs = Vec::new();
            for item in value.try_iter()? {
                let parts: Vec<JValue> = match item.kind() {
                    ValueKind::Seq | ValueKind::String => item.try_iter()?.collect(),
                    _ => Vec::new(),
                };
                let [k, v] = <[JValue; 2]>::try_from(parts)
                    .map_err(|_| value_error("urlencode needs a mapping or a sequence of pairs"))?;
                pairs.push((k, v));
            }
            pairs
        }
        ValueKind::Undefined if !strict(state) => Vec::new(),
        _ => return Ok(JValue::from(url_quote(&py_str(state, &value)?, false))),
    };
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&url_quote(&py_str(state, k)?, true));
        out.push('=');
        out.push_str(&url_quote(&py_str(state, v)?, true));
    }
    Ok(JValue::from(out))
}

/// The `in` test st2 adds: Python's `item in container`.
fn test_in(state: &State, item: &JValue, container: &JValue) -> Result<bool, Error> {
    py_contains(state, container, item)
}

fn py_contains(state: &State, container: &JValue, item: &JValue) -> Result<bool, Error> {
    match container.kind() {
        ValueKind::Undefined => {
            if strict(state) {
                Err(undefined_error())
            } else {
                Ok(false)
            }
        }
        ValueKind::String => match (container.as_str(), item.as_str()) {
            (Some(hay), Some(needle)) if item.kind() == ValueKind::String => {
                Ok(hay.contains(needle))
            }
            _ => Err(type_error(format!(
                "'in <string>' requires string as left operand, not {}",
                py_type(item)
            ))),
        },
        ValueKind::Map | ValueKind::Seq | ValueKind::Iterable => {
            for candidate in container.try_iter()? {
                state.consume_fuel(1)?;
                if py_eq(&candidate, item) {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        _ => Err(type_error(format!(
            "argument of type '{}' is not iterable",
            py_type(container)
        ))),
    }
}

/// Python's `==` (bools compare as the integers 0 and 1).
fn py_eq(a: &JValue, b: &JValue) -> bool {
    let as_num = |v: &JValue| match v.kind() {
        ValueKind::Bool => Some(JValue::from(i64::from(v.is_true()))),
        ValueKind::Number => Some(v.clone()),
        _ => None,
    };
    match (as_num(a), as_num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------
// JSON (Python's json.dumps)
// ---------------------------------------------------------------------------

struct JsonOptions {
    item_sep: String,
    key_sep: String,
    indent: Option<String>,
    sort_keys: bool,
}

/// Python's `indent` argument: `None`, an int (spaces; negative means none) or a
/// string.
fn json_indent(v: Option<&JValue>) -> Result<Option<String>, Error> {
    let Some(v) = v else { return Ok(None) };
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => Ok(None),
        ValueKind::String => Ok(Some(v.as_str().unwrap_or_default().to_string())),
        ValueKind::Bool | ValueKind::Number if v.is_integer() || v.kind() == ValueKind::Bool => {
            let n = arg_int("json.dumps", "indent", v)?;
            Ok(Some(
                " ".repeat(usize::try_from(n.clamp(0, 64)).unwrap_or(0)),
            ))
        }
        _ => Err(type_error(format!(
            "can't multiply sequence by non-int of type '{}'",
            py_type(v)
        ))),
    }
}

/// Python's `json.dumps(value, ...)` with `ensure_ascii=True`.
fn py_json_dumps(state: &State, value: &JValue, opts: &JsonOptions) -> Result<String, Error> {
    let mut out = String::new();
    write_json(state, &mut out, value, opts, 0)?;
    state.consume_fuel(u64::try_from(out.len() / 64).unwrap_or(u64::MAX))?;
    Ok(out)
}

fn json_key(state: &State, key: &JValue) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_string()),
        ValueKind::None => Ok("null".to_string()),
        ValueKind::Number => {
            let mut s = String::new();
            write_json(
                state,
                &mut s,
                key,
                &JsonOptions {
                    item_sep: String::new(),
                    key_sep: String::new(),
                    indent: None,
                    sort_keys: false,
                },
                0,
            )?;
            Ok(s)
        }
        _ => Err(type_error(format!(
            "keys must be str, int, float, bool or None, not {}",
            py_type(key)
        ))),
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn json_newline(out: &mut String, opts: &JsonOptions, level: usize) {
    if let Some(indent) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

fn write_json(
    state: &State,
    out: &mut String,
    value: &JValue,
    opts: &JsonOptions,
    level: usize,
) -> Result<(), Error> {
    if level > MAX_DEPTH {
        return Err(value_error("Circular reference detected"));
    }
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if value.is_integer() {
                let _ = write!(out, "{value}");
            } else {
                let f = f64::try_from(value.clone()).unwrap_or(f64::NAN);
                if f.is_nan() {
                    out.push_str("NaN");
                } else if f.is_infinite() {
                    out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    out.push_str(&py_float(f));
                }
            }
        }
        ValueKind::String => write_json_str(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<JValue> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                json_newline(out, opts, level + 1);
                write_json(state, out, item, opts, level + 1)?;
            }
            json_newline(out, opts, level);
            out.push(']');
        }
        ValueKind::Map => {
            let mut pairs: Vec<(String, JValue)> = Vec::new();
            if let Some(iter) = value.as_object().and_then(|o| o.try_iter_pairs()) {
                for (k, v) in iter {
                    pairs.push((json_key(state, &k)?, v));
                }
            }
            if opts.sort_keys {
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            if pairs.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                json_newline(out, opts, level + 1);
                write_json_str(out, k);
                out.push_str(&opts.key_sep);
                write_json(state, out, v, opts, level + 1)?;
            }
            json_newline(out, opts, level);
            out.push('}');
        }
        _ => {
            return Err(type_error(format!(
                "Object of type {} is not JSON serializable",
                py_type(value)
            )))
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// st2 filters: data.py
// ---------------------------------------------------------------------------

/// `to_json_string(value, indent=None, sort_keys=False, separators=(",", ": "))`.
fn filter_to_json_string(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
    let args = bind(
        "to_json_string",
        &["indent", "sort_keys", "separators"],
        rest,
    )?;
    let indent = json_indent(args[0].as_ref())?;
    let sort_keys = args[1].as_ref().is_some_and(JValue::is_true);
    let (item_sep, key_sep) = match &args[2] {
        None => (",".to_string(), ": ".to_string()),
        Some(v) if v.is_none() => (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        ),
        Some(v) => {
            let parts: Vec<JValue> = match v.kind() {
                ValueKind::Seq => v.try_iter()?.collect(),
                _ => Vec::new(),
            };
            match parts.as_slice() {
                [a, b] if a.kind() == ValueKind::String && b.kind() == ValueKind::String => (
                    a.as_str().unwrap_or_default().to_string(),
                    b.as_str().unwrap_or_default().to_string(),
                ),
                _ => {
                    return Err(value_error(
                        "separators must be an (item_separator, key_separator) pair of strings",
                    ))
                }
            }
        }
    };
    let opts = JsonOptions {
        item_sep,
        key_sep,
        indent,
        sort_keys,
    };
    py_json_dumps(state, &value, &opts).map(JValue::from)
}

fn default_json_options() -> JsonOptions {
    JsonOptions {
        item_sep: ", ".to_string(),
        key_sep: ": ".to_string(),
        indent: None,
        sort_keys: false,
    }
}

/// `to_complex(value)`: `json.dumps(value)`.
fn filter_to_complex(state: &State, value: JValue) -> Result<JValue, Error> {
    py_json_dumps(state, &value, &default_json_options()).map(JValue::from)
}

/// `json_escape(value)`: `json.dumps(value).strip('"')`.
fn filter_json_escape(state: &State, value: JValue) -> Result<JValue, Error> {
    let text = py_json_dumps(state, &value, &default_json_options())?;
    Ok(JValue::from(text.trim_matches('"').to_string()))
}

/// `from_json_string(value)`: parse `str(value)` as JSON (strict, like orjson).
fn filter_from_json_string(state: &State, value: JValue) -> Result<JValue, Error> {
    let text = py_str(state, &value)?;
    state.consume_fuel(u64::try_from(text.len() / 64).unwrap_or(u64::MAX))?;
    let parsed: Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("JSONDecodeError: {e}")))?;
    Ok(to_jvalue(&parsed))
}

/// `use_none(value)`: `None` becomes st2's magic string.
fn filter_use_none(value: JValue) -> JValue {
    if value.is_none() {
        JValue::from(NONE_MAGIC_VALUE)
    } else {
        value
    }
}

// ---------------------------------------------------------------------------
// st2 filters: path.py
// ---------------------------------------------------------------------------

fn path_arg(state: &State, filter: &str, value: &JValue) -> Result<String, Error> {
    if value.is_undefined() && strict(state) {
        return Err(undefined_error());
    }
    match value.as_str() {
        Some(s) if value.kind() == ValueKind::String => Ok(s.to_string()),
        _ => Err(type_error(format!(
            "{filter}: expected str, bytes or os.PathLike object, not {}",
            py_type(value)
        ))),
    }
}

/// `basename(path)`: `os.path.basename` (POSIX).
fn filter_basename(state: &State, value: JValue) -> Result<JValue, Error> {
    let p = path_arg(state, "basename", &value)?;
    let start = p.rfind('/').map_or(0, |i| i + 1);
    Ok(JValue::from(p[start..].to_string()))
}

/// `dirname(path)`: `os.path.dirname` (POSIX).
fn filter_dirname(state: &State, value: JValue) -> Result<JValue, Error> {
    let p = path_arg(state, "dirname", &value)?;
    let end = p.rfind('/').map_or(0, |i| i + 1);
    let head = &p[..end];
    let out = if !head.is_empty() && !head.chars().all(|c| c == '/') {
        head.trim_end_matches('/')
    } else {
        head
    };
    Ok(JValue::from(out.to_string()))
}

// ---------------------------------------------------------------------------
// st2 filters: time.py
// ---------------------------------------------------------------------------

/// `to_human_time_from_seconds(seconds)`, with st2's quirks: values under one
/// second print as `<seconds>μs`, floats are rounded half to even, and the day
/// count is the day of the month of `datetime(1, 1, 1) + timedelta(seconds)`
/// minus one (months are dropped).
fn filter_human_time(value: JValue) -> Result<JValue, Error> {
    let seconds: i128 = match value.kind() {
        ValueKind::Bool => i128::from(value.is_true()),
        ValueKind::Number if value.is_integer() => i128::try_from(value.clone())
            .map_err(|_| Error::new(ErrorKind::InvalidOperation, "OverflowError"))?,
        ValueKind::Number => {
            let f = f64::try_from(value.clone()).unwrap_or(f64::NAN);
            if f == 0.0 {
                return Ok(JValue::from("0s"));
            }
            if f < 1.0 {
                return Ok(JValue::from(format!("{}\u{3bc}s", py_float(f))));
            }
            if f.is_nan() {
                return Err(value_error("cannot convert float NaN to integer"));
            }
            if f.is_infinite() || f > 1e30 {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "OverflowError: cannot convert float infinity to integer",
                ));
            }
            #[allow(clippy::cast_possible_truncation)]
            let rounded = f.round_ties_even() as i128;
            rounded
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "AssertionError: to_human_time_from_seconds needs an int or float, not {}",
                    py_type(&value)
                ),
            ))
        }
    };
    if seconds == 0 {
        return Ok(JValue::from("0s"));
    }
    if seconds < 1 {
        return Ok(JValue::from(format!("{seconds}\u{3bc}s")));
    }
    Ok(JValue::from(human_time_parts(seconds)?))
}

fn human_time_parts(seconds: i128) -> Result<String, Error> {
    let overflow = || {
        Error::new(
            ErrorKind::InvalidOperation,
            "OverflowError: date value out of range",
        )
    };
    let days = i32::try_from(seconds / 86_400).map_err(|_| overflow())?;
    let rem = seconds % 86_400;
    // datetime(1, 1, 1) is day 1 of the common era.
    let date =
        chrono::NaiveDate::from_num_days_from_ce_opt(days.checked_add(1).ok_or_else(overflow)?)
            .filter(|d| chrono::Datelike::year(d) <= 9999)
            .ok_or_else(overflow)?;
    let parts = [
        i128::from(chrono::Datelike::year(&date) - 1),
        i128::from(chrono::Datelike::day(&date) - 1),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    ];
    let units = ["y", "d", "h", "m", "s"];
    let Some(first) = parts.iter().position(|p| *p != 0) else {
        return Ok("0s".to_string());
    };
    let mut out = String::new();
    for (p, u) in parts[first..].iter().zip(&units[first..]) {
        let _ = write!(out, "{p}{u}");
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// st2 filters: version.py (python-semver 3 semantics)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct SemVer {
    major: u128,
    minor: u128,
    patch: u128,
    prerelease: Option<String>,
    build: Option<String>,
}

impl std::fmt::Display for SemVer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(p) = self.prerelease.as_deref().filter(|p| !p.is_empty()) {
            write!(f, "-{p}")?;
        }
        if let Some(b) = self.build.as_deref().filter(|b| !b.is_empty()) {
            write!(f, "+{b}")?;
        }
        Ok(())
    }
}

fn semver_invalid(text: &str) -> Error {
    value_error(format!("{text} is not valid SemVer string"))
}

/// A numeric part: `0` or digits without a leading zero.
fn semver_number(part: &str) -> Option<u128> {
    if part.is_empty()
        || !part.bytes().all(|b| b.is_ascii_digit())
        || (part.len() > 1 && part.starts_with('0'))
    {
        return None;
    }
    part.parse().ok()
}

fn semver_identifier_ok(id: &str, numeric_leading_zero_ok: bool) -> bool {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    numeric_leading_zero_ok
        || !id.bytes().all(|b| b.is_ascii_digit())
        || id == "0"
        || !id.starts_with('0')
}

/// `semver.Version.parse(text)` (Python's `$` also accepts one trailing newline).
fn semver_parse(text: &str) -> Result<SemVer, Error> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let (rest, build) = match body.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (body, None),
    };
    let (core, prerelease) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    let [major, minor, patch] = nums.as_slice() else {
        return Err(semver_invalid(text));
    };
    let (Some(major), Some(minor), Some(patch)) = (
        semver_number(major),
        semver_number(minor),
        semver_number(patch),
    ) else {
        return Err(semver_invalid(text));
    };
    if let Some(p) = prerelease {
        if !p.split('.').all(|id| semver_identifier_ok(id, false)) {
            return Err(semver_invalid(text));
        }
    }
    if let Some(b) = build {
        if !b.split('.').all(|id| semver_identifier_ok(id, true)) {
            return Err(semver_invalid(text));
        }
    }
    Ok(SemVer {
        major,
        minor,
        patch,
        prerelease: prerelease.map(str::to_string),
        build: build.map(str::to_string),
    })
}

fn semver_arg(state: &State, value: &JValue) -> Result<SemVer, Error> {
    if value.is_undefined() && strict(state) {
        return Err(undefined_error());
    }
    match value.as_str() {
        Some(s) if value.kind() == ValueKind::String => semver_parse(s),
        _ => Err(type_error(format!(
            "not expecting type '<class '{}'>'",
            py_type(value)
        ))),
    }
}

/// `int()` of a version part given as a number or a numeric string.
fn semver_int(v: &JValue) -> Result<u128, Error> {
    let n: Option<i128> = match v.kind() {
        ValueKind::Bool => Some(i128::from(v.is_true())),
        ValueKind::Number if v.is_integer() => i128::try_from(v.clone()).ok(),
        ValueKind::Number => {
            let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
            #[allow(clippy::cast_possible_truncation)]
            f.is_finite().then_some(f.trunc() as i128)
        }
        ValueKind::String => v.as_str().and_then(|s| s.trim().parse().ok()),
        _ => None,
    };
    match n {
        Some(n) if n >= 0 => u128::try_from(n).map_err(|_| value_error("negative version part")),
        Some(_) => Err(value_error("A version can only be positive.")),
        None => Err(value_error(format!(
            "invalid literal for int(): {}",
            py_type(v)
        ))),
    }
}

fn semver_opt_str(state: &State, v: Option<JValue>) -> Result<Option<String>, Error> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => py_str(state, &v).map(Some),
    }
}

/// The `other` side of `Version.compare`: a string, a list/tuple of parts or a
/// mapping of part names.
fn semver_other(state: &State, other: &JValue) -> Result<SemVer, Error> {
    match other.kind() {
        ValueKind::String => semver_parse(other.as_str().unwrap_or_default()),
        ValueKind::Seq => {
            let parts: Vec<JValue> = other.try_iter()?.collect();
            if parts.is_empty() || parts.len() > 5 {
                return Err(type_error(
                    "Version() takes from 1 to 5 positional arguments",
                ));
            }
            let get = |i: usize| parts.get(i).cloned();
            Ok(SemVer {
                major: semver_int(&parts[0])?,
                minor: get(1).map_or(Ok(0), |v| semver_int(&v))?,
                patch: get(2).map_or(Ok(0), |v| semver_int(&v))?,
                prerelease: semver_opt_str(state, get(3))?,
                build: semver_opt_str(state, get(4))?,
            })
        }
        ValueKind::Map => {
            let names = ["major", "minor", "patch", "prerelease", "build"];
            if let Some(keys) = other.as_object().and_then(|o| o.try_iter()) {
                for k in keys {
                    if !k.as_str().is_some_and(|k| names.contains(&k)) {
                        return Err(type_error(format!(
                            "Version() got an unexpected keyword argument {}",
                            py_str(state, &k)?
                        )));
                    }
                }
            }
            let get = |k: &str| other.get_attr(k).ok().filter(|v| !v.is_undefined());
            let Some(major) = get("major") else {
                return Err(type_error("Version() missing required argument: 'major'"));
            };
            Ok(SemVer {
                major: semver_int(&major)?,
                minor: get("minor").map_or(Ok(0), |v| semver_int(&v))?,
                patch: get("patch").map_or(Ok(0), |v| semver_int(&v))?,
                prerelease: semver_opt_str(state, get("prerelease"))?,
                build: semver_opt_str(state, get("build"))?,
            })
        }
        _ => Err(type_error(format!(
            "Expected str, bytes, dict, tuple, list, or Version instance, but got <class '{}'>",
            py_type(other)
        ))),
    }
}

/// One dot-separated prerelease part: numeric parts sort before text parts.
enum PrePart<'a> {
    Num(u128),
    Text(&'a str),
}

fn prerelease_parts(s: Option<&str>) -> Vec<PrePart<'_>> {
    s.unwrap_or("")
        .split('.')
        .map(|p| {
            if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) {
                p.parse().map_or(PrePart::Text(p), PrePart::Num)
            } else {
                PrePart::Text(p)
            }
        })
        .collect()
}

/// python-semver's `_nat_cmp` of two prerelease strings.
fn semver_nat_cmp(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (pa, pb) = (prerelease_parts(a), prerelease_parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (x, y) {
            (PrePart::Num(x), PrePart::Num(y)) => x.cmp(y),
            (PrePart::Num(_), PrePart::Text(_)) => Ordering::Less,
            (PrePart::Text(_), PrePart::Num(_)) => Ordering::Greater,
            (PrePart::Text(x), PrePart::Text(y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

/// `Version.compare`: -1, 0 or 1.
fn semver_compare(a: &SemVer, b: &SemVer) -> i64 {
    use std::cmp::Ordering;
    let core = (a.major, a.minor, a.patch).cmp(&(b.major, b.minor, b.patch));
    let ord = if core != Ordering::Equal {
        core
    } else {
        let rc = semver_nat_cmp(a.prerelease.as_deref(), b.prerelease.as_deref());
        let empty = |p: &Option<String>| p.as_deref().is_none_or(str::is_empty);
        if rc == Ordering::Equal {
            Ordering::Equal
        } else if empty(&a.prerelease) {
            Ordering::Greater
        } else if empty(&b.prerelease) {
            Ordering::Less
        } else {
            rc
        }
    };
    match ord {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

fn version_compare(state: &State, value: &JValue, other: &JValue) -> Result<i64, Error> {
    let a = semver_arg(state, value)?;
    let b = semver_other(state, other)?;
    Ok(semver_compare(&a, &b))
}

/// `version_compare(value, pattern)`.
fn filter_version_compare(state: &State, value: JValue, other: JValue) -> Result<JValue, Error> {
    version_compare(state, &value, &other).map(JValue::from)
}

/// `version_more_than(value, pattern)`.
fn filter_version_more_than(state: &State, value: JValue, other: JValue) -> Result<JValue, Error> {
    Ok(JValue::from(version_compare(state, &value, &other)? == 1))
}

/// `version_less_than(value, pattern)`.
fn filter_version_less_than(state: &State, value: JValue, other: JValue) -> Result<JValue, Error> {
    Ok(JValue::from(version_compare(state, &value, &other)? == -1))
}

/// `version_equal(value, pattern)`.
fn filter_version_equal(state: &State, value: JValue, other: JValue) -> Result<JValue, Error> {
    Ok(JValue::from(version_compare(state, &value, &other)? == 0))
}

/// `version_match(value, pattern)`: `Version.match` with `<`, `>`, `<=`, `>=`,
/// `==`, `!=` or a bare version.
fn filter_version_match(state: &State, value: JValue, pattern: JValue) -> Result<JValue, Error> {
    let version = semver_arg(state, &value)?;
    let Some(expr) = pattern
        .as_str()
        .filter(|_| pattern.kind() == ValueKind::String)
    else {
        return Err(type_error(format!(
            "'{}' object is not subscriptable",
            py_type(&pattern)
        )));
    };
    let (op, rest) = if let Some(op) = ["<=", ">=", "==", "!="]
        .into_iter()
        .find(|op| expr.starts_with(op))
    {
        (op, &expr[2..])
    } else if let Some(rest) = expr.strip_prefix('<') {
        ("<", rest)
    } else if let Some(rest) = expr.strip_prefix('>') {
        (">", rest)
    } else if expr.starts_with(|c: char| c.is_ascii_digit()) {
        ("==", expr)
    } else {
        return Err(value_error(format!(
            "match_expr parameter should be in format <op><ver>, where <op> is one of \
             ['<', '>', '==', '<=', '>=', '!=']. You provided: {}",
            py_str_repr(expr)
        )));
    };
    let cmp = semver_compare(&version, &semver_parse(rest)?);
    let ok = match op {
        "<" => cmp == -1,
        ">" => cmp == 1,
        "<=" => cmp <= 0,
        ">=" => cmp >= 0,
        "!=" => cmp != 0,
        _ => cmp == 0,
    };
    Ok(JValue::from(ok))
}

fn bump(state: &State, value: &JValue, which: usize) -> Result<JValue, Error> {
    let v = semver_arg(state, value)?;
    let overflow = || value_error("version part too large");
    let next = match which {
        0 => SemVer {
            major: v.major.checked_add(1).ok_or_else(overflow)?,
            minor: 0,
            patch: 0,
            prerelease: None,
            build: None,
        },
        1 => SemVer {
            major: v.major,
            minor: v.minor.checked_add(1).ok_or_else(overflow)?,
            patch: 0,
            prerelease: None,
            build: None,
        },
        _ => SemVer {
            major: v.major,
            minor: v.minor,
            patch: v.patch.checked_add(1).ok_or_else(overflow)?,
            prerelease: None,
            build: None,
        },
    };
    Ok(JValue::from(next.to_string()))
}

/// `version_bump_major(value)`.
fn filter_version_bump_major(state: &State, value: JValue) -> Result<JValue, Error> {
    bump(state, &value, 0)
}

/// `version_bump_minor(value)`.
fn filter_version_bump_minor(state: &State, value: JValue) -> Result<JValue, Error> {
    bump(state, &value, 1)
}

/// `version_bump_patch(value)`.
fn filter_version_bump_patch(state: &State, value: JValue) -> Result<JValue, Error> {
    bump(state, &value, 2)
}

/// `version_strip_patch(value)`: `major.minor`.
fn filter_version_strip_patch(state: &State, value: JValue) -> Result<JValue, Error> {
    let v = semver_arg(state, &value)?;
    Ok(JValue::from(format!("{}.{}", v.major, v.minor)))
}

// ---------------------------------------------------------------------------
// st2 filters: regex.py (Python `re` semantics on fancy-regex)
// ---------------------------------------------------------------------------

/// Backtracking budget of one regex search.
const REGEX_BACKTRACK_LIMIT: usize = 1_000_000;

fn regex_error(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("re.error: {e}"))
}

/// Python's `$` outside multiline mode: end of text or before a final newline.
const PY_DOLLAR: &str = r"(?:\z|(?=\n\z))";

/// Whether a `{` at `chars[i]` starts a Python repetition (`{m}`, `{m,}`, `{,n}`,
/// `{m,n}`); returns its text in Rust syntax and the index after `}`.
fn py_quantifier(chars: &[char], i: usize) -> Option<(String, usize)> {
    let mut j = i + 1;
    let mut lo = String::new();
    while j < chars.len() && chars[j].is_ascii_digit() {
        lo.push(chars[j]);
        j += 1;
    }
    let mut hi: Option<String> = None;
    if j < chars.len() && chars[j] == ',' {
        j += 1;
        let mut h = String::new();
        while j < chars.len() && chars[j].is_ascii_digit() {
            h.push(chars[j]);
            j += 1;
        }
        hi = Some(h);
    }
    if j >= chars.len() || chars[j] != '}' {
        return None;
    }
    match (&lo, &hi) {
        (l, None) if l.is_empty() => None,
        (l, None) => Some((format!("{{{l}}}"), j + 1)),
        (l, Some(h)) if l.is_empty() && h.is_empty() => None,
        (l, Some(h)) => {
            let l = if l.is_empty() { "0" } else { l.as_str() };
            Some((format!("{{{l},{h}}}"), j + 1))
        }
    }
}

/// Rewrites a Python `re` pattern into fancy-regex syntax.
fn translate_py_regex(pattern: &str) -> Result<String, Error> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut multiline = false;
    let mut i = 0;
    // Global inline flags come first in Python 3.11+.
    if chars.len() > 2 && chars[0] == '(' && chars[1] == '?' {
        let mut j = 2;
        let mut flags = String::new();
        while j < chars.len() && "aiLmsux".contains(chars[j]) {
            flags.push(chars[j]);
            j += 1;
        }
        if j < chars.len() && chars[j] == ')' && !flags.is_empty() {
            if flags.contains('L') {
                return Err(regex_error(
                    "bad inline flag: cannot use 'locale' flag with a str pattern",
                ));
            }
            multiline = flags.contains('m');
            let kept: String = flags.chars().filter(|c| "imsx".contains(*c)).collect();
            if !kept.is_empty() {
                let _ = write!(out, "(?{kept})");
            }
            i = j + 1;
        }
    }
    let mut in_class = false;
    let mut class_start = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&n) = chars.get(i + 1) else {
                return Err(regex_error("bad escape (end of pattern)"));
            };
            i += 2;
            match n {
                'Z' if !in_class => out.push_str(r"\z"),
                'A' | 'b' | 'B' if !in_class => {
                    out.push('\\');
                    out.push(n);
                }
                'b' => out.push_str(r"\x08"),
                'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'n' | 'r' | 't' | 'f' | 'v' | 'a' => {
                    out.push('\\');
                    out.push(n);
                }
                'x' | 'u' | 'U' => {
                    let len = match n {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars.iter().skip(i).take(len).collect();
                    if hex.chars().count() != len || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        return Err(regex_error(format!("incomplete escape \\{n}{hex}")));
                    }
                    let code = u32::from_str_radix(&hex, 16).map_err(regex_error)?;
                    if char::from_u32(code).is_none() {
                        return Err(regex_error(format!("bad escape \\{n}{hex}")));
                    }
                    let _ = write!(out, "\\x{{{code:x}}}");
                    i += len;
                }
                '0'..='9' => {
                    // Octal escape, or a group reference outside classes.
                    let mut digits = String::from(n);
                    while digits.len() < 3 && i < chars.len() && chars[i].is_ascii_digit() {
                        digits.push(chars[i]);
                        i += 1;
                    }
                    let octal = n == '0'
                        || in_class
                        || (digits.len() == 3 && digits.chars().all(|d| ('0'..='7').contains(&d)));
                    if octal {
                        // Only octal digits belong to the escape.
                        let oct: String = digits
                            .chars()
                            .take_while(|d| ('0'..='7').contains(d))
                            .take(3)
                            .collect();
                        let consumed = oct.len().max(1);
                        i -= digits.len() - consumed;
                        let code = u32::from_str_radix(if oct.is_empty() { "0" } else { &oct }, 8)
                            .map_err(regex_error)?;
                        if code > 0o377 {
                            return Err(regex_error(format!(
                                "octal escape value \\{oct} outside of range 0-0o377"
                            )));
                        }
                        let _ = write!(out, "\\x{{{code:x}}}");
                    } else {
                        let group: String = digits.chars().take(2).collect();
                        i -= digits.len() - group.len();
                        let _ = write!(out, "\\{group}");
                    }
                }
                c if c.is_ascii_alphabetic() => {
                    return Err(regex_error(format!("bad escape \\{c}")));
                }
                '<' | '>' | '&' | '~' | '\'' | '"' | '`' | '%' | '@' | '!' | ',' | ';' | ':'
                | '=' | '_' | '/' => out.push(n),
                c if c.is_ascii() => {
                    out.push('\\');
                    out.push(c);
                }
                c => {
                    let _ = write!(out, "\\x{{{:x}}}", c as u32);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            match c {
                ']' if class_start => out.push_str(r"\]"),
                ']' => {
                    in_class = false;
                    out.push(']');
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '^' if class_start && out.ends_with('[') => {
                    out.push('^');
                    i += 1;
                    continue;
                }
                _ => out.push(c),
            }
            class_start = false;
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                class_start = true;
                out.push('[');
            }
            '$' if !multiline => out.push_str(PY_DOLLAR),
            '{' => match py_quantifier(&chars, i) {
                Some((q, next)) => {
                    out.push_str(&q);
                    i = next;
                    continue;
                }
                None => out.push_str(r"\{"),
            },
            '}' => out.push_str(r"\}"),
            '(' if chars.get(i + 1) == Some(&'?') && chars.get(i + 2) == Some(&'#') => {
                // Comment group: dropped.
                let mut j = i + 3;
                while j < chars.len() && chars[j] != ')' {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(regex_error("missing ), unterminated comment"));
                }
                i = j + 1;
                continue;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                // Scoped flags `(?i:...)` / `(?-i:...)`: drop Python-only letters.
                let mut j = i + 2;
                let mut flags = String::new();
                while j < chars.len() && "aiLmsux-".contains(chars[j]) {
                    flags.push(chars[j]);
                    j += 1;
                }
                if !flags.is_empty() && j < chars.len() && chars[j] == ':' {
                    let kept: String = flags.chars().filter(|c| "imsx-".contains(*c)).collect();
                    let kept = kept.trim_end_matches('-');
                    out.push_str("(?");
                    out.push_str(kept);
                    out.push(':');
                    i = j + 1;
                    continue;
                }
                out.push('(');
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// Compiles a Python pattern (with `re.I` when `ignorecase`).
fn py_regex(pattern: &str, ignorecase: bool, not_empty: bool) -> Result<fancy_regex::Regex, Error> {
    let translated = translate_py_regex(pattern)?;
    fancy_regex::RegexBuilder::new(&translated)
        .case_insensitive(ignorecase)
        .backtrack_limit(REGEX_BACKTRACK_LIMIT)
        .find_not_empty(not_empty)
        .build()
        .map_err(regex_error)
}

/// One match: its groups' spans (`None` for groups that did not take part).
type Spans = Vec<Option<(usize, usize)>>;

fn spans_of(caps: &fancy_regex::Captures<'_, str>) -> Spans {
    (0..caps.len())
        .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
        .collect()
}

/// All matches the way Python's `finditer`/`sub` walk the text: after an empty
/// match, the next match may not be empty at the same position.
fn py_matches(
    state: &State,
    pattern: &str,
    ignorecase: bool,
    text: &str,
) -> Result<(fancy_regex::Regex, Vec<Spans>), Error> {
    let re = py_regex(pattern, ignorecase, false)?;
    let mut not_empty: Option<Option<fancy_regex::Regex>> = None;
    let mut found = Vec::new();
    let mut pos = 0usize;
    let mut must_advance = false;
    while pos <= text.len() {
        // Each match is kept until the filter is done: charge for it.
        state.consume_fuel(2)?;
        let mut caps = re.captures_from_pos(text, pos).map_err(regex_error)?;
        if must_advance {
            if let Some(c) = &caps {
                if c.get(0).is_some_and(|m| m.start() == pos && m.end() == pos) {
                    // Python retries at the same spot wanting a non-empty match,
                    // then moves on one character.
                    // A pattern that only ever matches empty has no non-empty
                    // variant (fancy-regex refuses to build it).
                    let ne_regex =
                        not_empty.get_or_insert_with(|| py_regex(pattern, ignorecase, true).ok());
                    let ne = ne_regex
                        .as_ref()
                        .and_then(|r| r.captures_from_pos(text, pos).ok().flatten())
                        .filter(|c| c.get(0).is_some_and(|m| m.start() == pos));
                    caps = match ne {
                        Some(c) => Some(c),
                        None => {
                            let Some(ch) = text[pos..].chars().next() else {
                                break;
                            };
                            re.captures_from_pos(text, pos + ch.len_utf8())
                                .map_err(regex_error)?
                        }
                    };
                }
            }
        }
        let Some(caps) = caps else { break };
        let spans = spans_of(&caps);
        let Some(Some((start, end))) = spans.first().copied() else {
            break;
        };
        must_advance = start == end;
        pos = end;
        found.push(spans);
    }
    Ok((re, found))
}

fn regex_pattern(filter: &str, v: Option<&JValue>) -> Result<String, Error> {
    match v {
        Some(p) => arg_str(filter, "pattern", p),
        None => Err(type_error(format!(
            "{filter}() missing required argument: 'pattern'"
        ))),
    }
}

/// `regex_match(value, pattern, ignorecase=False)`: `re.match` (anchored at start).
fn filter_regex_match(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
    let args = bind("regex_match", &["pattern", "ignorecase"], rest)?;
    let pattern = regex_pattern("regex_match", args[0].as_ref())?;
    let ignorecase = args[1].as_ref().is_some_and(JValue::is_true);
    let text = py_str(state, &value)?;
    let re = py_regex(&pattern, ignorecase, false)?;
    // The leftmost match starts at 0 whenever a match at 0 exists.
    let m = re.find(&text).map_err(regex_error)?;
    Ok(JValue::from(m.is_some_and(|m| m.start() == 0)))
}

/// `regex_search(value, pattern, ignorecase=False)`: `re.search`.
fn filter_regex_search(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
    let args = bind("regex_search", &["pattern", "ignorecase"], rest)?;
    let pattern = regex_pattern("regex_search", args[0].as_ref())?;
    let ignorecase = args[1].as_ref().is_some_and(JValue::is_true);
    let text = py_str(state, &value)?;
    let re = py_regex(&pattern, ignorecase, false)?;
    Ok(JValue::from(re.find(&text).map_err(regex_error)?.is_some()))
}

/// A parsed Python replacement template piece.
enum ReplPiece {
    Text(String),
    Group(usize),
}

/// Parses a Python `re.sub` replacement (`\1`, `\g<name>`, `\g<1>`, `\n`, ...).
fn parse_replacement(repl: &str, re: &fancy_regex::Regex) -> Result<Vec<ReplPiece>, Error> {
    let groups = re.captures_len().saturating_sub(1);
    let check = |n: usize| -> Result<usize, Error> {
        if n > groups {
            Err(regex_error(format!("invalid group reference {n}")))
        } else {
            Ok(n)
        }
    };
    let chars: Vec<char> = repl.chars().collect();
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' {
            lit.push(c);
            i += 1;
            continue;
        }
        let Some(&n) = chars.get(i + 1) else {
            return Err(regex_error("bad escape (end of pattern)"));
        };
        i += 2;
        let group = match n {
            'g' => {
                if chars.get(i) != Some(&'<') {
                    return Err(regex_error("missing <"));
                }
                let mut j = i + 1;
                let mut name = String::new();
                while j < chars.len() && chars[j] != '>' {
                    name.push(chars[j]);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(regex_error("missing >, unterminated name"));
                }
                i = j + 1;
                if name.is_empty() {
                    return Err(regex_error("missing group name"));
                }
                if name.chars().all(|d| d.is_ascii_digit()) {
                    Some(check(name.parse().map_err(regex_error)?)?)
                } else {
                    let idx = re
                        .capture_names()
                        .position(|n| n == Some(name.as_str()))
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::InvalidOperation,
                                format!("IndexError: unknown group name '{name}'"),
                            )
                        })?;
                    Some(idx)
                }
            }
            '0' => {
                let mut oct = String::from("0");
                while oct.len() < 3 && i < chars.len() && ('0'..='7').contains(&chars[i]) {
                    oct.push(chars[i]);
                    i += 1;
                }
                let code = u32::from_str_radix(&oct, 8).map_err(regex_error)? & 0xff;
                lit.push(char::from_u32(code).unwrap_or('\0'));
                None
            }
            '1'..='9' => {
                let mut digits = String::from(n);
                if i < chars.len() && chars[i].is_ascii_digit() {
                    digits.push(chars[i]);
                    i += 1;
                    let all_octal = digits.chars().all(|d| ('0'..='7').contains(&d));
                    if all_octal && i < chars.len() && ('0'..='7').contains(&chars[i]) {
                        digits.push(chars[i]);
                        i += 1;
                        let code = u32::from_str_radix(&digits, 8).map_err(regex_error)?;
                        if code > 0o377 {
                            return Err(regex_error(format!(
                                "octal escape value \\{digits} outside of range 0-0o377"
                            )));
                        }
                        lit.push(char::from_u32(code).unwrap_or('\0'));
                        continue;
                    }
                }
                Some(check(digits.parse().map_err(regex_error)?)?)
            }
            'a' => {
                lit.push('\u{7}');
                None
            }
            'b' => {
                lit.push('\u{8}');
                None
            }
            'f' => {
                lit.push('\u{c}');
                None
            }
            'n' => {
                lit.push('\n');
                None
            }
            'r' => {
                lit.push('\r');
                None
            }
            't' => {
                lit.push('\t');
                None
            }
            'v' => {
                lit.push('\u{b}');
                None
            }
            '\\' => {
                lit.push('\\');
                None
            }
            c if c.is_ascii_alphabetic() => {
                return Err(regex_error(format!("bad escape \\{c}")));
            }
            c => {
                lit.push('\\');
                lit.push(c);
                None
            }
        };
        if let Some(g) = group {
            if !lit.is_empty() {
                pieces.push(ReplPiece::Text(std::mem::take(&mut lit)));
            }
            pieces.push(ReplPiece::Group(g));
        }
    }
    if !lit.is_empty() {
        pieces.push(ReplPiece::Text(lit));
    }
    Ok(pieces)
}

/// `regex_replace(value, pattern, replacement, ignorecase=False)`: `re.sub`.
fn filter_regex_replace(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
    let args = bind(
        "regex_replace",
        &["pattern", "replacement", "ignorecase"],
        rest,
    )?;
    let pattern = regex_pattern("regex_replace", args[0].as_ref())?;
    let Some(replacement) = args[1].as_ref() else {
        return Err(type_error(
            "regex_replace() missing required argument: 'replacement'",
        ));
    };
    let replacement = arg_str("regex_replace", "replacement", replacement)?;
    let ignorecase = args[2].as_ref().is_some_and(JValue::is_true);
    let text = py_str(state, &value)?;
    let (re, matches) = py_matches(state, &pattern, ignorecase, &text)?;
    let pieces = parse_replacement(&replacement, &re)?;
    let mut out = String::with_capacity(text.len());
    let mut last = 0usize;
    for spans in &matches {
        let Some(Some((start, end))) = spans.first().copied() else {
            continue;
        };
        out.push_str(&text[last..start]);
        for piece in &pieces {
            match piece {
                ReplPiece::Text(t) => out.push_str(t),
                ReplPiece::Group(g) => {
                    if let Some(Some((s, e))) = spans.get(*g) {
                        out.push_str(&text[*s..*e]);
                    }
                }
            }
        }
        last = end;
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "regex_replace result too large",
            ));
        }
    }
    out.push_str(&text[last..]);
    state.consume_fuel(u64::try_from(out.len() / 64).unwrap_or(u64::MAX))?;
    Ok(JValue::from(out))
}

/// `regex_substring(value, pattern, result_index=0, ignorecase=False)`:
/// `re.findall(pattern, value)[result_index]`.
fn filter_regex_substring(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
    let args = bind(
        "regex_substring",
        &["pattern", "result_index", "ignorecase"],
        rest,
    )?;
    let pattern = regex_pattern("regex_substring", args[0].as_ref())?;
    let index = match &args[1] {
        Some(v) => arg_int("regex_substring", "result_index", v)?,
        None => 0,
    };
    let ignorecase = args[2].as_ref().is_some_and(JValue::is_true);
    let text = py_str(state, &value)?;
    let (re, matches) = py_matches(state, &pattern, ignorecase, &text)?;
    let len = i64::try_from(matches.len()).unwrap_or(i64::MAX);
    let idx = if index < 0 { len + index } else { index };
    let Some(spans) = usize::try_from(idx).ok().and_then(|i| matches.get(i)) else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "IndexError: list index out of range",
        ));
    };
    let group_text = |g: usize| -> JValue {
        match spans.get(g) {
            Some(Some((s, e))) => JValue::from(&text[*s..*e]),
            _ => JValue::from(""),
        }
    };
    let groups = re.captures_len().saturating_sub(1);
    Ok(match groups {
        0 => group_text(0),
        1 => group_text(1),
        n => JValue::from(Tuple::from((1..=n).map(group_text).collect::<Vec<_>>())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a golden case ended in Jinja2.
    enum ErrKind {
        Render,
        Syntax,
        /// A rendered `extra` list/dict that is no longer JSON.
        Invalid,
    }

    enum Expect {
        /// Rendered: message, and `extra` as compact JSON.
        Ok(&'static str, Option<&'static str>),
        /// `result.enabled: false`.
        Disabled,
        /// Jinja2 raised (the Python exception text is kept for reference).
        Err(ErrKind, &'static str),
        /// A documented difference: `~` prints floats in exponent form the Rust way.
        KnownDifference {
            jinja2: &'static str,
            ours: &'static str,
        },
    }

    /// Execution documents (as `GET /api/v1/executions/{id}` returns them).
    const EXECUTIONS: &[(&str, &str)] = &[
        (
            "days",
            r##"{"id": "65a1f733e4b0a1b2c3d4e6aa", "action": {"ref": "ops.long_job"}, "runner": {"name": "local-shell-cmd"}, "status": "timeout", "elapsed_seconds": 3456000.5, "result": {"failed": true, "succeeded": false, "return_code": -9, "stdout": "step 1\nstep 2\n", "stderr": "", "error": "Action failed to complete in 3456000 seconds"}, "context": {"user": "leo"}, "web_url": ""}"##,
        ),
        (
            "empty_result",
            r##"{"id": "65a1f711e4b0a1b2c3d4e688", "action": {"ref": "core.noop"}, "runner": {"name": "noop"}, "status": "succeeded", "elapsed_seconds": 0, "result": {}, "context": {"user": "judy"}}"##,
        ),
        (
            "http",
            r##"{"id": "65a1f4dde4b0a1b2c3d4e644", "action": {"ref": "core.http"}, "runner": {"name": "http-request"}, "status": "succeeded", "elapsed_seconds": 0.75, "parameters": {"url": "https://api.example.com/v1/status", "method": "GET"}, "result": {"status_code": 200, "body": {"service": "billing", "healthy": true, "checks": [{"name": "db", "ok": true}, {"name": "queue", "ok": false, "lag": 12.5}], "note": null}, "parsed": true, "headers": {"Content-Type": "application/json", "X-Request-Id": "abc-123"}}, "context": {"user": "frank", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261508", "name": "http_status"}}, "web_url": "https://st2.example.com/#/history/65a1f4dde4b0a1b2c3d4e644/general"}"##,
        ),
        (
            "integer_elapsed_small",
            r##"{"id": "65a1f777e4b0a1b2c3d4e6ee", "action": {"ref": "core.local"}, "runner": {"name": "local-shell-cmd"}, "status": "succeeded", "elapsed_seconds": 1e-05, "result": {"return_code": 0, "stdout": "x", "stderr": "", "succeeded": true, "failed": false}, "context": {"user": "pat"}}"##,
        ),
        (
            "list_result",
            r##"{"id": "65a1f700e4b0a1b2c3d4e677", "action": {"ref": "mypack.list_hosts"}, "runner": {"name": "action-chain"}, "status": "succeeded", "elapsed_seconds": 7200, "result": ["web1", "web2", {"db": 1}, true, null, 2.0], "context": {"user": "ivan"}}"##,
        ),
        (
            "local_fail",
            r##"{"id": "65a1f1d3e4b0a1b2c3d4e600", "action": {"ref": "core.local_sudo"}, "runner": {"name": "local-shell-script"}, "status": "failed", "elapsed_seconds": 3.5, "parameters": {"cmd": "systemctl restart nginx"}, "result": {"failed": true, "succeeded": false, "return_code": 1, "stdout": "", "stderr": "Job for nginx.service failed because the control process exited with error code.\nSee \"systemctl status nginx.service\" and \"journalctl -xe\" for details.\n"}, "context": {"user": "bob", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261505", "name": "restart"}}, "web_url": "https://st2.example.com/#/history/65a1f1d3e4b0a1b2c3d4e600/general"}"##,
        ),
        (
            "local_ok",
            r##"{"id": "65a1f0c2e4b0a1b2c3d4e5f6", "action": {"ref": "core.local", "name": "local", "pack": "core", "runner_type": "local-shell-cmd"}, "runner": {"name": "local-shell-cmd", "runner_module": "local_runner"}, "liveaction": {"id": "65a1f0c2e4b0a1b2c3d4e5f5", "action": "core.local"}, "status": "succeeded", "start_timestamp": "2024-01-13T02:14:58.123456Z", "end_timestamp": "2024-01-13T02:14:58.335790Z", "elapsed_seconds": 0.212334, "parameters": {"cmd": "uptime; df -h /"}, "result": {"failed": false, "succeeded": true, "return_code": 0, "stdout": " 02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /", "stderr": ""}, "context": {"user": "alice", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261504", "name": "run_local"}, "api_user": "alice", "source_channel": "ops"}, "log": [{"status": "requested", "timestamp": "2024-01-13T02:14:58.100000Z"}], "web_url": "https://st2.example.com/#/history/65a1f0c2e4b0a1b2c3d4e5f6/general"}"##,
        ),
        (
            "no_result",
            r##"{"id": "65a1f722e4b0a1b2c3d4e699", "action": {"ref": "core.pause"}, "runner": {"name": "local-shell-cmd"}, "status": "canceled", "context": {"user": "ken"}}"##,
        ),
        (
            "orquesta",
            r##"{"id": "65a1f5eee4b0a1b2c3d4e655", "action": {"ref": "ops.deploy"}, "runner": {"name": "orquesta"}, "status": "succeeded", "elapsed_seconds": 93784.2, "parameters": {"app": "shop", "version": "2.4.0"}, "result": {"output": {"deployed": ["web-1", "web-2"], "summary": "Deployed shop 2.4.0 to 2 hosts\nAll health checks passed", "rollback": false, "stats": {"duration": 312, "retries": 0}}, "errors": []}, "context": {"user": "grace", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261509", "name": "deploy"}}, "web_url": "https://st2.example.com/#/history/65a1f5eee4b0a1b2c3d4e655/general"}"##,
        ),
        (
            "python_ok",
            r##"{"id": "65a1f3bbe4b0a1b2c3d4e622", "action": {"ref": "examples.isprime"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 1.4999, "parameters": {"value": 7}, "result": {"exit_code": 0, "result": {"prime": true, "value": 7, "factors": [], "checked_by": "trial division", "ratio": 0.5}, "stderr": "st2.actions.python.PrimeChecker: DEBUG    value=7\n", "stdout": "checking 7\nit is prime"}, "context": {"user": "dave", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261507", "name": "isprime"}}, "web_url": "https://st2.example.com/#/history/65a1f3bbe4b0a1b2c3d4e622/general"}"##,
        ),
        (
            "python_scalar",
            r##"{"id": "65a1f3cce4b0a1b2c3d4e633", "action": {"ref": "packs.get_version"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 2, "parameters": {}, "result": {"exit_code": 0, "result": "3.8.1", "stderr": "", "stdout": ""}, "context": {"user": "erin"}}"##,
        ),
        (
            "remote_nonmap",
            r##"{"id": "65a1f766e4b0a1b2c3d4e6dd", "action": {"ref": "core.remote"}, "runner": {"name": "remote-shell-cmd"}, "status": "failed", "elapsed_seconds": 1, "result": {"web1": "unexpected string"}, "context": {"user": "olga"}}"##,
        ),
        (
            "remote_two",
            r##"{"id": "65a1f2aae4b0a1b2c3d4e611", "action": {"ref": "core.remote"}, "runner": {"name": "remote-shell-cmd"}, "status": "failed", "elapsed_seconds": 65.5, "parameters": {"cmd": "uname -r", "hosts": "web1,web2"}, "result": {"web1.example.com": {"failed": false, "succeeded": true, "return_code": 0, "stdout": "5.15.0-91-generic", "stderr": ""}, "web2.example.com": {"failed": true, "succeeded": false, "return_code": 255, "stdout": "", "stderr": "ssh: connect to host web2.example.com port 22: Connection refused\nretrying...", "error": "Failed to connect to host."}}, "context": {"user": "carol", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261506", "name": "remote_run"}}}"##,
        ),
        (
            "string_result",
            r##"{"id": "65a1f6ffe4b0a1b2c3d4e666", "action": {"ref": "mypack.greet"}, "runner": {"name": "noop-like"}, "status": "succeeded", "parameters": {"name": "Zoë"}, "result": "Hello, Zoë! ✓ ünïcödé «ok»", "context": {"user": "heidi"}}"##,
        ),
        (
            "tricky",
            r##"{"id": "65a1f755e4b0a1b2c3d4e6cc", "action": {"ref": "mypack.tricky"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 0.5, "result": {"stdout": "it's \"quoted\"\ttab", "result": {"nested": {"list": [1, "two", {"three": 3}], "quote": "it's", "both": "it's \"x\"", "uni": "Zoë ✓", "nl": "a\nb", "empty": "", "zero": 0, "f": 1e-05, "big": 1e+16, "neg": -0.0}}, "exit_code": 0, "stderr": ""}, "context": {"user": "nick", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261510", "name": "tricky"}}}"##,
        ),
        (
            "years",
            r##"{"id": "65a1f744e4b0a1b2c3d4e6bb", "action": {"ref": "ops.forever"}, "runner": {"name": "windows-cmd"}, "status": "succeeded", "elapsed_seconds": 31626061, "result": {"exit_code": 0, "result": null, "stdout": "  padded output  ", "stderr": "warning: one\nwarning: two"}, "context": {"user": "mia"}}"##,
        ),
        (
            "python_scalar_alias",
            r##"{"id": "65a1f3cce4b0a1b2c3d4e633", "action": {"ref": "packs.get_version"}, "runner": {"name": "python-script"}, "status": "succeeded", "elapsed_seconds": 2, "parameters": {}, "result": {"exit_code": 0, "result": "3.8.1", "stderr": "", "stdout": ""}, "context": {"user": "erin", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261599", "name": "x"}}}"##,
        ),
        (
            "list_result_alias",
            r##"{"id": "65a1f700e4b0a1b2c3d4e677", "action": {"ref": "mypack.list_hosts"}, "runner": {"name": "action-chain"}, "status": "succeeded", "elapsed_seconds": 7200, "result": ["web1", "web2", {"db": 1}, true, null, 2.0], "context": {"user": "ivan", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261599", "name": "x"}}}"##,
        ),
        (
            "string_result_alias",
            r##"{"id": "65a1f6ffe4b0a1b2c3d4e666", "action": {"ref": "mypack.greet"}, "runner": {"name": "noop-like"}, "status": "succeeded", "parameters": {"name": "Zoë"}, "result": "Hello, Zoë! ✓ ünïcödé «ok»", "context": {"user": "heidi", "action_alias_ref": {"id": "5f0d9e8c7b6a594837261599", "name": "x"}}}"##,
        ),
    ];

    /// Aliases whose `result` sections the goldens use.
    const ALIASES: &[(&str, &str)] = &[
        (
            "stdout",
            r##"{"id": "5f0d9e8c7b6a594837261500", "name": "stdout", "pack": "ops", "ref": "ops.stdout", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.stdout }}"}}"##,
        ),
        (
            "status_branch",
            r##"{"id": "5f0d9e8c7b6a594837261501", "name": "status_branch", "pack": "ops", "ref": "ops.status_branch", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% if execution.status == 'succeeded' %}\n:white_check_mark: `{{ execution.parameters.cmd }}` finished in {{ execution.elapsed_seconds | to_human_time_from_seconds }}\n```\n{{ execution.result.stdout }}\n```\n{% else %}\n:x: `{{ execution.parameters.cmd }}` failed (rc={{ execution.result.return_code }})\n    {{ execution.result.stderr | trim }}\n{% endif %}\n"}}"##,
        ),
        (
            "json_all",
            r##"{"id": "5f0d9e8c7b6a594837261502", "name": "json_all", "pack": "ops", "ref": "ops.json_all", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "Result: {{ execution.result | to_json_string }}"}}"##,
        ),
        (
            "json_inner",
            r##"{"id": "5f0d9e8c7b6a594837261503", "name": "json_inner", "pack": "ops", "ref": "ops.json_inner", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.result | to_json_string }}\n---\n{{ execution.result.result | to_json_string(indent=2, sort_keys=True) }}\n---\n{{ execution.result.result | to_complex }}\n{{ execution.result.result | to_json_string(indent=0) }}|{{ execution.result | to_json_string(separators=[',', ':']) }}|{{ execution.result.result | tojson }}"}}"##,
        ),
        (
            "per_host",
            r##"{"id": "5f0d9e8c7b6a594837261504", "name": "per_host", "pack": "ops", "ref": "ops.per_host", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% for host, r in six.iteritems(execution.result) %}\n*{{ host }}* rc={{ r.return_code }}{% if r.error %} ({{ r.error }}){% endif %}\n\n  {% for line in (r.stdout ~ r.stderr).split('\\n') if line %}\n  > {{ line }}\n  {% endfor %}\n{% endfor %}\nDone: {{ execution.result | length }} hosts"}}"##,
        ),
        (
            "undefined_chain",
            r##"{"id": "5f0d9e8c7b6a594837261505", "name": "undefined_chain", "pack": "ops", "ref": "ops.undefined_chain", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "Value: {{ execution.result.missing.deeper }}"}}"##,
        ),
        (
            "undefined_soft",
            r##"{"id": "5f0d9e8c7b6a594837261506", "name": "undefined_soft", "pack": "ops", "ref": "ops.undefined_soft", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "[{{ execution.nothing }}][{{ alias.nothing }}][{{ nothing }}][{{ execution.result.nothing }}]{% if execution.nothing %}yes{% else %}no{% endif %}|{{ execution.nothing | default('dflt') }}|{% for x in nothing %}{{ x }}{% endfor %}|{{ nothing | length }}"}}"##,
        ),
        (
            "py_print",
            r##"{"id": "5f0d9e8c7b6a594837261507", "name": "py_print", "pack": "ops", "ref": "ops.py_print", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.parameters }} | {{ execution.result }} | {{ execution.result.exit_code == 0 }} | {{ none }} | {{ execution.result.result.note }} | {{ [1, 'a', none, true, 2.5] }} | {{ execution.elapsed_seconds }} | {{ execution.result.result.factors }} | {{ execution.result.result.ratio * 2 }} | {{ 7 / 2 }} | {{ 7 // 2 }} | {{ execution.result.result.value + 1 }}"}}"##,
        ),
        (
            "regex",
            r##"{"id": "5f0d9e8c7b6a594837261508", "name": "regex", "pack": "ops", "ref": "ops.regex", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.stdout | regex_replace('(\\\\w+) (\\\\d)', '\\\\2-\\\\1') }}\n{{ execution.result.stdout | regex_search('prime') }} {{ execution.result.stdout | regex_search('PRIME') }} {{ execution.result.stdout | regex_search('PRIME', ignorecase=True) }}\n{{ execution.result.stdout | regex_match('checking') }} {{ execution.result.stdout | regex_match('it') }}\n{{ execution.result.stdout | regex_substring('(\\\\w+) (\\\\d)') }} {{ execution.result.stdout | regex_substring('\\\\w+', 2) }} {{ execution.result.stdout | regex_substring('(\\\\w)(\\\\w)', -1) }}\n{{ execution.result.exit_code | regex_replace('^0$', 'zero') }} {{ 'aaa' | regex_replace('a*', '-') }} {{ 'abxd' | regex_replace('x*', '-') }} {{ 'a.b.c' | regex_replace('\\\\.', '\\\\n') }}|{{ 'line\\n' | regex_search('line$') }}|{{ 'Hello World' | regex_replace('(?P<first>\\\\w+) (?P<second>\\\\w+)', '\\\\g<second> \\\\g<first>') }}"}}"##,
        ),
        (
            "versions",
            r##"{"id": "5f0d9e8c7b6a594837261509", "name": "versions", "pack": "ops", "ref": "ops.versions", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.result | version_bump_minor }} {{ execution.result.result | version_bump_major }} {{ execution.result.result | version_bump_patch }} {{ execution.result.result | version_strip_patch }} {{ '1.2.3-rc.1+b5' | version_compare('1.2.3') }} {{ '1.2.3' | version_compare('1.2.3-rc.1') }} {{ '1.2.3-rc.2' | version_compare('1.2.3-rc.10') }} {{ '1.2.3-alpha' | version_compare('1.2.3-alpha.1') }} {{ '1.2.3-alpha.beta' | version_compare('1.2.3-alpha.1') }} {{ '2.0.0' | version_more_than('1.9.9') }} {{ '2.0.0' | version_less_than('10.0.0') }} {{ '1.0.0+a' | version_equal('1.0.0+b') }} {{ '2.0.0' | version_match('>=1.0.0') }} {{ '2.0.0' | version_match('!=2.0.0') }} {{ '2.0.0' | version_match('2.0.0') }} {{ '1.2.3-rc.1+build.7' | version_bump_patch }}"}}"##,
        ),
        (
            "bad_version",
            r##"{"id": "5f0d9e8c7b6a594837261510", "name": "bad_version", "pack": "ops", "ref": "ops.bad_version", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ 'v1.2' | version_bump_minor }}"}}"##,
        ),
        (
            "misc",
            r##"{"id": "5f0d9e8c7b6a594837261511", "name": "misc", "pack": "ops", "ref": "ops.misc", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ '/var/log/nginx/error.log' | basename }} {{ '/var/log/nginx/error.log' | dirname }} {{ 'dir/' | basename }}|{{ '/' | dirname }} {{ '//a//b//' | dirname }} {{ 'file' | dirname }}|{{ none | use_none }} {{ 'x' | use_none }} {{ 'say \"hi\"\\n\\tüber' | json_escape }} {{ '{\"a\": [1, 2], \"b\": {\"c\": null}}' | from_json_string }} {{ ('{\"k\": \"v\"}' | from_json_string).k }} {{ 3725 | to_human_time_from_seconds }} {{ 0.25 | to_human_time_from_seconds }} {{ 59.5 | to_human_time_from_seconds }} {{ 60.5 | to_human_time_from_seconds }} {{ 2678400 | to_human_time_from_seconds }} {{ -3 | to_human_time_from_seconds }} {{ true | to_human_time_from_seconds }}"}}"##,
        ),
        (
            "extra",
            r##"{"id": "5f0d9e8c7b6a594837261512", "name": "extra", "pack": "ops", "ref": "ops.extra", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.status }}", "extra": {"slack": {"color": "{% if execution.status == 'succeeded' %}good{% else %}danger{% endif %}", "fields": [{"title": "Action", "value": "{{ execution.action.ref }}", "short": true}, {"title": "Static", "value": "unchanged"}], "count": 3}, "title": "Run {{ execution.id }}", "static": "plain text", "flag": true, "num": 42, "none": null, "nl": "trailing\n", "ctx": "{{ __context.execution.status }}/{{ alias.name }}", "list": ["{{ execution.status }}", 1], "plain_list": ["a", 2]}}}"##,
        ),
        (
            "extra_strict",
            r##"{"id": "5f0d9e8c7b6a594837261513", "name": "extra_strict", "pack": "ops", "ref": "ops.extra_strict", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "ok", "extra": {"bad": "{{ execution.nothing }}"}}}"##,
        ),
        (
            "disabled",
            r##"{"id": "5f0d9e8c7b6a594837261514", "name": "disabled", "pack": "ops", "ref": "ops.disabled", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"enabled": false, "format": "{{ never.rendered.here }}"}}"##,
        ),
        (
            "syntax_error",
            r##"{"id": "5f0d9e8c7b6a594837261515", "name": "syntax_error", "pack": "ops", "ref": "ops.syntax_error", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% if execution.status %}oops"}}"##,
        ),
        (
            "uses_alias",
            r##"{"id": "5f0d9e8c7b6a594837261516", "name": "uses_alias", "pack": "ops", "ref": "ops.uses_alias", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ alias.name }} ({{ alias.ref }}) ran {{ execution.action.ref }} for {{ execution.context.user }}; formats={{ alias.formats }}; {{ alias.result.format | length }}"}}"##,
        ),
        (
            "whitespace",
            r##"{"id": "5f0d9e8c7b6a594837261517", "name": "whitespace", "pack": "ops", "ref": "ops.whitespace", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "Report for {{ execution.id }}\n  {# a comment line #}\n  {% for k in ['a', 'b'] %}\n    item {{ k }}\n  {% endfor %}\n  {%- if true %}\n trimmed-left\n  {%- endif %}\n\n{% raw %}{{ not rendered }}{% endraw %}\n{{ execution.status | upper }}   {{- ' glued' }}\nend\n"}}"##,
        ),
        (
            "builtins",
            r##"{"id": "5f0d9e8c7b6a594837261518", "name": "builtins", "pack": "ops", "ref": "ops.builtins", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.body.checks | map(attribute='name') | join(', ') }}|{{ execution.result.body.checks | selectattr('ok') | list | length }}|{{ execution.result.headers | dictsort | first }}|{{ execution.result.body.healthy | string }}|{{ [true, none, 1.5] | join(',') }}|{{ execution.result.body | tojson }}|{{ execution.result.status_code | int + 1 }}|{{ '%s-%d' | format('x', 3) }}|{{ execution.result.body.service | title }} {{ execution.result.body.service | capitalize }} {{ execution.result.body.service | replace('bill', 'sell') }}|{{ execution.result.headers.keys() | list }}|{{ execution.result.body.get('service') }} {{ execution.result.body.get('nope', 'd') }}|{{ execution.result.body.checks[1].lag | round }}|{{ execution.result.body.checks | last }}|{{ 'a,b,,c'.split(',') }}|{{ '  x  '.strip() }}|{{ execution.result.body.service.upper() }}|{{ execution.result.body.service.startswith('bil') }}|{{ 'k' in execution.result.body }} {{ 'service' in execution.result.body }}|{{ execution.result.body | length }}"}}"##,
        ),
        (
            "items_loop",
            r##"{"id": "5f0d9e8c7b6a594837261519", "name": "items_loop", "pack": "ops", "ref": "ops.items_loop", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% for k, v in execution.result.items() %}{{ k }}: {{ v }}\n{% endfor %}{% for k, v in six.iteritems(execution.result.body) if v is not mapping %}[{{ loop.index }}:{{ k }}={{ v | trim }}]{% endfor %}"}}"##,
        ),
        (
            "iteritems_list",
            r##"{"id": "5f0d9e8c7b6a594837261520", "name": "iteritems_list", "pack": "ops", "ref": "ops.iteritems_list", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% for k, v in six.iteritems(execution.result) %}{{ k }}{% endfor %}"}}"##,
        ),
        (
            "runtime_type_error",
            r##"{"id": "5f0d9e8c7b6a594837261521", "name": "runtime_type_error", "pack": "ops", "ref": "ops.runtime_type_error", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.stdout + 1 }}"}}"##,
        ),
        (
            "not_callable",
            r##"{"id": "5f0d9e8c7b6a594837261522", "name": "not_callable", "pack": "ops", "ref": "ops.not_callable", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result.stdout() }}"}}"##,
        ),
        (
            "concat",
            r##"{"id": "5f0d9e8c7b6a594837261523", "name": "concat", "pack": "ops", "ref": "ops.concat", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ 'rc=' ~ execution.result.exit_code ~ ' ok=' ~ (execution.result.exit_code == 0) ~ ' r=' ~ execution.result.result }}"}}"##,
        ),
        (
            "format_not_str",
            r##"{"id": "5f0d9e8c7b6a594837261524", "name": "format_not_str", "pack": "ops", "ref": "ops.format_not_str", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": ""}}"##,
        ),
        (
            "json_unicode",
            r##"{"id": "5f0d9e8c7b6a594837261525", "name": "json_unicode", "pack": "ops", "ref": "ops.json_unicode", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{{ execution.result | to_json_string }}|{{ execution.result | to_complex }}|{{ execution.result | json_escape }}|{{ execution.parameters | to_json_string(indent=1) }}"}}"##,
        ),
        (
            "big_loop",
            r##"{"id": "5f0d9e8c7b6a594837261526", "name": "big_loop", "pack": "ops", "ref": "ops.big_loop", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}"}}"##,
        ),
        (
            "macro_recursion",
            r##"{"id": "5f0d9e8c7b6a594837261527", "name": "macro_recursion", "pack": "ops", "ref": "ops.macro_recursion", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "{% macro walk(v, d=0) %}{% if v is mapping %}{% for k, x in six.iteritems(v) %}{{ ' ' * d }}{{ k }}:\n{{ walk(x, d + 2) }}{% endfor %}{% elif v is sequence and v is not string %}{% for x in v %}{{ walk(x, d) }}{% endfor %}{% else %}{{ ' ' * d }}{{ v }}\n{% endif %}{% endmacro %}{{ walk(execution.result) }}"}}"##,
        ),
        (
            "extra_breaks_json",
            r##"{"id": "5f0d9e8c7b6a594837261528", "name": "extra_breaks_json", "pack": "ops", "ref": "ops.extra_breaks_json", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "ok", "extra": {"fields": [{"value": "{{ execution.result.stderr }}"}]}}}"##,
        ),
        (
            "extra_empty",
            r##"{"id": "5f0d9e8c7b6a594837261529", "name": "extra_empty", "pack": "ops", "ref": "ops.extra_empty", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"format": "ok", "extra": {}}}"##,
        ),
        (
            "enabled_null",
            r##"{"id": "5f0d9e8c7b6a594837261500", "name": "enabled_null", "pack": "ops", "ref": "ops.enabled_null", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"enabled": null, "format": "x"}}"##,
        ),
        (
            "result_empty",
            r##"{"id": "5f0d9e8c7b6a594837261500", "name": "result_empty", "pack": "ops", "ref": "ops.result_empty", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {}}"##,
        ),
        (
            "extra_only",
            r##"{"id": "5f0d9e8c7b6a594837261532", "name": "extra_only", "pack": "ops", "ref": "ops.extra_only", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"extra": {"where": "{{ execution.context.user }}@{{ execution.context.source_channel }}", "n": 1.5}}}"##,
        ),
        (
            "enabled_true_explicit",
            r##"{"id": "5f0d9e8c7b6a594837261500", "name": "enabled_true_explicit", "pack": "ops", "ref": "ops.enabled_true_explicit", "action_ref": "core.local", "formats": ["run {{cmd}}"], "enabled": true, "result": {"enabled": true, "format": "{{ execution.status }}!"}}"##,
        ),
    ];

    /// (execution, alias, expected). Produced by Jinja2 3.1.6 running st2's
    /// format_execution_result logic and default.j2 in st2's environment.
    const GOLDENS: &[(&str, Option<&str>, Expect)] = &[
        ("days", None, Expect::Ok("\nAction ops.long_job completed.\nstatus : timeout\nexecution: 65a1f733e4b0a1b2c3d4e6aa\n\n\nTook 9d0h0m0s to complete.\n\nresult :\n--------\nreturn_code : -9\nstdout :       \n  step 1\nstep 2\nerror : Action failed to complete in 3456000 seconds\n\n", None)),
        ("empty_result", None, Expect::Ok("\nAction core.noop completed.\nstatus : succeeded\nexecution: 65a1f711e4b0a1b2c3d4e688\n\n\n\n", None)),
        ("http", None, Expect::Ok("\nAction core.http completed.\nstatus : succeeded\nexecution: 65a1f4dde4b0a1b2c3d4e644\n\nweb_url: https://st2.example.com/#/history/65a1f4dde4b0a1b2c3d4e644/general\n\nTook 0.75μs to complete.\n\nresult :\n--------\n  status_code : 200\nbody : \n  service : billing\n  healthy : True\n  checks : [{'name': 'db', 'ok': True}, {'name': 'queue', 'ok': False, 'lag': 12.5}]\n  note : None\nparsed : True\nheaders : \n  Content-Type : application/json\n  X-Request-Id : abc-123\n\n", None)),
        ("integer_elapsed_small", None, Expect::Ok("\nAction core.local completed.\nstatus : succeeded\nexecution: 65a1f777e4b0a1b2c3d4e6ee\n\n\nTook 1e-05μs to complete.\n\nresult :\n--------\nstdout : x\n\n", None)),
        ("list_result", None, Expect::Ok("\nAction mypack.list_hosts completed.\nstatus : succeeded\nexecution: 65a1f700e4b0a1b2c3d4e677\n\n\nTook 2h0m0s to complete.\n\nresult :\n--------\n['web1', 'web2', {'db': 1}, True, None, 2.0]\n", None)),
        ("local_fail", None, Expect::Ok("\nAction core.local_sudo completed.\nstatus : failed\nexecution: 65a1f1d3e4b0a1b2c3d4e600\n\nweb_url: https://st2.example.com/#/history/65a1f1d3e4b0a1b2c3d4e600/general\n\nTook 4s to complete.\n\nresult :\n--------\nreturn_code : 1\nstderr :       \n  Job for nginx.service failed because the control process exited with error code.\nSee \"systemctl status nginx.service\" and \"journalctl -xe\" for details.\n\n", None)),
        ("local_ok", None, Expect::Ok("\nAction core.local completed.\nstatus : succeeded\nexecution: 65a1f0c2e4b0a1b2c3d4e5f6\n\nweb_url: https://st2.example.com/#/history/65a1f0c2e4b0a1b2c3d4e5f6/general\n\nTook 0.212334μs to complete.\n\nresult :\n--------\nstdout :       \n  02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /\n\n", None)),
        ("no_result", None, Expect::Ok("\nAction core.pause completed.\nstatus : canceled\nexecution: 65a1f722e4b0a1b2c3d4e699\n\n\n\n", None)),
        ("orquesta", None, Expect::Ok("\nAction ops.deploy completed.\nstatus : succeeded\nexecution: 65a1f5eee4b0a1b2c3d4e655\n\nweb_url: https://st2.example.com/#/history/65a1f5eee4b0a1b2c3d4e655/general\n\nTook 1d2h3m4s to complete.\n\nresult :\n--------\noutput : \n  deployed : ['web-1', 'web-2']\n  summary :       \n    Deployed shop 2.4.0 to 2 hosts\nAll health checks passed\n  rollback : False\n  stats : \n    duration : 312\n    retries : 0\nerrors : []\n\n", None)),
        ("python_ok", None, Expect::Ok("\nAction examples.isprime completed.\nstatus : succeeded\nexecution: 65a1f3bbe4b0a1b2c3d4e622\n\nweb_url: https://st2.example.com/#/history/65a1f3bbe4b0a1b2c3d4e622/general\n\nTook 1s to complete.\n\nresult :\n--------\nresult : \n  prime : True\n  value : 7\n  factors : []\n  checked_by : trial division\n  ratio : 0.5\nstderr : st2.actions.python.PrimeChecker: DEBUG    value=7\nstdout :       \n  checking 7\nit is prime\n\n", None)),
        ("python_scalar", None, Expect::Ok("\nAction packs.get_version completed.\nstatus : succeeded\nexecution: 65a1f3cce4b0a1b2c3d4e633\n\n\nTook 2s to complete.\n\nresult :\n--------\nresult : 3.8.1\n\n", None)),
        ("remote_nonmap", None, Expect::Err(ErrKind::Render, "AttributeError: 'str' object has no attribute 'items'")),
        ("remote_two", None, Expect::Ok("\nAction core.remote completed.\nstatus : failed\nexecution: 65a1f2aae4b0a1b2c3d4e611\n\n\nTook 1m6s to complete.\n\nresult :\n--------\nweb1.example.com : \n  stdout : 5.15.0-91-generic\n\nweb2.example.com : \n  return_code : 255\n  stderr :       \n    ssh: connect to host web2.example.com port 22: Connection refused\nretrying...\n  error : Failed to connect to host.\n\n", None)),
        ("string_result", None, Expect::Ok("\nAction mypack.greet completed.\nstatus : succeeded\nexecution: 65a1f6ffe4b0a1b2c3d4e666\n\n\n\nresult :\n--------\nHello, Zoë! ✓ ünïcödé «ok»\n", None)),
        ("tricky", None, Expect::Ok("\nAction mypack.tricky completed.\nstatus : succeeded\nexecution: 65a1f755e4b0a1b2c3d4e6cc\n\n\nTook 0.5μs to complete.\n\nresult :\n--------\nstdout : it's \"quoted\"\ttab\nresult : \n  nested : \n    list : [1, 'two', {'three': 3}]\n    quote : it's\n    both : it's \"x\"\n    uni : Zoë ✓\n    nl :       \n      a\nb\n    empty : \n    zero : 0\n    f : 1e-05\n    big : 1e+16\n    neg : -0.0\n\n", None)),
        ("years", None, Expect::Ok("\nAction ops.forever completed.\nstatus : succeeded\nexecution: 65a1f744e4b0a1b2c3d4e6bb\n\n\nTook 1y1d1h1m1s to complete.\n\nresult :\n--------\nstdout : padded output\nstderr :       \n  warning: one\nwarning: two\n\n", None)),
        ("python_scalar_alias", None, Expect::Ok("\nAction packs.get_version completed.\nstatus : succeeded\nexecution: 65a1f3cce4b0a1b2c3d4e633\n\n\nTook 2s to complete.\n\nresult :\n--------\nresult : 3.8.1\n\n", None)),
        ("list_result_alias", None, Expect::Ok("\nAction mypack.list_hosts completed.\nstatus : succeeded\nexecution: 65a1f700e4b0a1b2c3d4e677\n\n\nTook 2h0m0s to complete.\n\nresult :\n--------\n['web1', 'web2', {'db': 1}, True, None, 2.0]\n", None)),
        ("string_result_alias", None, Expect::Ok("\nAction mypack.greet completed.\nstatus : succeeded\nexecution: 65a1f6ffe4b0a1b2c3d4e666\n\n\n\nresult :\n--------\nHello, Zoë! ✓ ünïcödé «ok»\n", None)),
        ("local_ok", Some("stdout"), Expect::Ok(" 02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /", None)),
        ("python_ok", Some("stdout"), Expect::Ok("checking 7\nit is prime", None)),
        ("list_result", Some("stdout"), Expect::Ok("\nAction mypack.list_hosts completed.\nstatus : succeeded\nexecution: 65a1f700e4b0a1b2c3d4e677\n\n\nTook 2h0m0s to complete.\n\nresult :\n--------\n['web1', 'web2', {'db': 1}, True, None, 2.0]\n", None)),
        ("string_result", Some("stdout"), Expect::Ok("\nAction mypack.greet completed.\nstatus : succeeded\nexecution: 65a1f6ffe4b0a1b2c3d4e666\n\n\n\nresult :\n--------\nHello, Zoë! ✓ ünïcödé «ok»\n", None)),
        ("local_ok", Some("status_branch"), Expect::Ok(":white_check_mark: `uptime; df -h /` finished in 0.212334μs\n```\n 02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /\n```\n", None)),
        ("local_fail", Some("status_branch"), Expect::Ok(":x: `systemctl restart nginx` failed (rc=1)\n    Job for nginx.service failed because the control process exited with error code.\nSee \"systemctl status nginx.service\" and \"journalctl -xe\" for details.\n", None)),
        ("http", Some("json_all"), Expect::Ok("Result: {\"status_code\": 200,\"body\": {\"service\": \"billing\",\"healthy\": true,\"checks\": [{\"name\": \"db\",\"ok\": true},{\"name\": \"queue\",\"ok\": false,\"lag\": 12.5}],\"note\": null},\"parsed\": true,\"headers\": {\"Content-Type\": \"application/json\",\"X-Request-Id\": \"abc-123\"}}", None)),
        ("local_ok", Some("json_all"), Expect::Ok("Result: {\"failed\": false,\"succeeded\": true,\"return_code\": 0,\"stdout\": \" 02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\\nFilesystem      Size  Used Avail Use% Mounted on\\n/dev/sda1        40G   12G   26G  32% /\",\"stderr\": \"\"}", None)),
        ("string_result", Some("json_all"), Expect::Ok("\nAction mypack.greet completed.\nstatus : succeeded\nexecution: 65a1f6ffe4b0a1b2c3d4e666\n\n\n\nresult :\n--------\nHello, Zoë! ✓ ünïcödé «ok»\n", None)),
        ("list_result", Some("json_all"), Expect::Ok("\nAction mypack.list_hosts completed.\nstatus : succeeded\nexecution: 65a1f700e4b0a1b2c3d4e677\n\n\nTook 2h0m0s to complete.\n\nresult :\n--------\n['web1', 'web2', {'db': 1}, True, None, 2.0]\n", None)),
        ("python_ok", Some("json_inner"), Expect::Ok("{\"prime\": true,\"value\": 7,\"factors\": [],\"checked_by\": \"trial division\",\"ratio\": 0.5}\n---\n{\n  \"checked_by\": \"trial division\",\n  \"factors\": [],\n  \"prime\": true,\n  \"ratio\": 0.5,\n  \"value\": 7\n}\n---\n{\"prime\": true, \"value\": 7, \"factors\": [], \"checked_by\": \"trial division\", \"ratio\": 0.5}\n{\n\"prime\": true,\n\"value\": 7,\n\"factors\": [],\n\"checked_by\": \"trial division\",\n\"ratio\": 0.5\n}|{\"exit_code\":0,\"result\":{\"prime\":true,\"value\":7,\"factors\":[],\"checked_by\":\"trial division\",\"ratio\":0.5},\"stderr\":\"st2.actions.python.PrimeChecker: DEBUG    value=7\\n\",\"stdout\":\"checking 7\\nit is prime\"}|{\"checked_by\": \"trial division\", \"factors\": [], \"prime\": true, \"ratio\": 0.5, \"value\": 7}", None)),
        ("tricky", Some("json_inner"), Expect::Ok("{\"nested\": {\"list\": [1,\"two\",{\"three\": 3}],\"quote\": \"it's\",\"both\": \"it's \\\"x\\\"\",\"uni\": \"Zo\\u00eb \\u2713\",\"nl\": \"a\\nb\",\"empty\": \"\",\"zero\": 0,\"f\": 1e-05,\"big\": 1e+16,\"neg\": -0.0}}\n---\n{\n  \"nested\": {\n    \"big\": 1e+16,\n    \"both\": \"it's \\\"x\\\"\",\n    \"empty\": \"\",\n    \"f\": 1e-05,\n    \"list\": [\n      1,\n      \"two\",\n      {\n        \"three\": 3\n      }\n    ],\n    \"neg\": -0.0,\n    \"nl\": \"a\\nb\",\n    \"quote\": \"it's\",\n    \"uni\": \"Zo\\u00eb \\u2713\",\n    \"zero\": 0\n  }\n}\n---\n{\"nested\": {\"list\": [1, \"two\", {\"three\": 3}], \"quote\": \"it's\", \"both\": \"it's \\\"x\\\"\", \"uni\": \"Zo\\u00eb \\u2713\", \"nl\": \"a\\nb\", \"empty\": \"\", \"zero\": 0, \"f\": 1e-05, \"big\": 1e+16, \"neg\": -0.0}}\n{\n\"nested\": {\n\"list\": [\n1,\n\"two\",\n{\n\"three\": 3\n}\n],\n\"quote\": \"it's\",\n\"both\": \"it's \\\"x\\\"\",\n\"uni\": \"Zo\\u00eb \\u2713\",\n\"nl\": \"a\\nb\",\n\"empty\": \"\",\n\"zero\": 0,\n\"f\": 1e-05,\n\"big\": 1e+16,\n\"neg\": -0.0\n}\n}|{\"stdout\":\"it's \\\"quoted\\\"\\ttab\",\"result\":{\"nested\":{\"list\":[1,\"two\",{\"three\":3}],\"quote\":\"it's\",\"both\":\"it's \\\"x\\\"\",\"uni\":\"Zo\\u00eb \\u2713\",\"nl\":\"a\\nb\",\"empty\":\"\",\"zero\":0,\"f\":1e-05,\"big\":1e+16,\"neg\":-0.0}},\"exit_code\":0,\"stderr\":\"\"}|{\"nested\": {\"big\": 1e+16, \"both\": \"it\\u0027s \\\"x\\\"\", \"empty\": \"\", \"f\": 1e-05, \"list\": [1, \"two\", {\"three\": 3}], \"neg\": -0.0, \"nl\": \"a\\nb\", \"quote\": \"it\\u0027s\", \"uni\": \"Zo\\u00eb \\u2713\", \"zero\": 0}}", None)),
        ("remote_two", Some("per_host"), Expect::Ok("*web1.example.com* rc=0\n  > 5.15.0-91-generic\n*web2.example.com* rc=255 (Failed to connect to host.)\n  > ssh: connect to host web2.example.com port 22: Connection refused\n  > retrying...\nDone: 2 hosts", None)),
        ("local_ok", Some("undefined_chain"), Expect::Err(ErrKind::Render, "UndefinedError: 'dict object' has no attribute 'missing'")),
        ("local_ok", Some("undefined_soft"), Expect::Ok("[][][][]no|dflt||0", None)),
        ("python_ok", Some("py_print"), Expect::Ok("{'value': 7} | {'exit_code': 0, 'result': {'prime': True, 'value': 7, 'factors': [], 'checked_by': 'trial division', 'ratio': 0.5}, 'stderr': 'st2.actions.python.PrimeChecker: DEBUG    value=7\\n', 'stdout': 'checking 7\\nit is prime'} | True | None |  | [1, 'a', None, True, 2.5] | 1.4999 | [] | 1.0 | 3.5 | 3 | 8", None)),
        ("tricky", Some("py_print"), Expect::Err(ErrKind::Render, "UndefinedError: 'dict object' has no attribute 'ratio'")),
        ("python_ok", Some("regex"), Expect::Ok("7-checking\nit is prime\nTrue False True\nTrue False\n('checking', '7') it ('i', 'm')\nzero -- -a-b--d- a\nb\nc|True|World Hello", None)),
        ("python_scalar_alias", Some("versions"), Expect::Ok("3.9.0 4.0.0 3.8.2 3.8 -1 1 -1 -1 1 True True True True False True 1.2.4", None)),
        ("local_ok", Some("bad_version"), Expect::Err(ErrKind::Render, "ValueError: v1.2 is not valid SemVer string")),
        ("local_ok", Some("misc"), Expect::Ok("error.log /var/log/nginx |/ //a//b |%*****__%NONE%__*****% x say \\\"hi\\\"\\n\\t\\u00fcber {'a': [1, 2], 'b': {'c': None}} v 1h2m5s 0.25μs 1m0s 1m0s 0s -3μs 1s", None)),
        ("local_ok", Some("extra"), Expect::Ok("succeeded", Some("{\"slack\":{\"color\":\"good\",\"fields\":[{\"title\":\"Action\",\"value\":\"core.local\",\"short\":true},{\"title\":\"Static\",\"value\":\"unchanged\"}],\"count\":3},\"title\":\"Run 65a1f0c2e4b0a1b2c3d4e5f6\",\"static\":\"plain text\",\"flag\":true,\"num\":42,\"none\":null,\"nl\":\"trailing\",\"ctx\":\"succeeded/extra\",\"list\":[\"succeeded\",1],\"plain_list\":[\"a\",2]}"))),
        ("local_fail", Some("extra"), Expect::Ok("failed", Some("{\"slack\":{\"color\":\"danger\",\"fields\":[{\"title\":\"Action\",\"value\":\"core.local_sudo\",\"short\":true},{\"title\":\"Static\",\"value\":\"unchanged\"}],\"count\":3},\"title\":\"Run 65a1f1d3e4b0a1b2c3d4e600\",\"static\":\"plain text\",\"flag\":true,\"num\":42,\"none\":null,\"nl\":\"trailing\",\"ctx\":\"failed/extra\",\"list\":[\"failed\",1],\"plain_list\":[\"a\",2]}"))),
        ("local_ok", Some("extra_strict"), Expect::Err(ErrKind::Render, "UndefinedError: 'dict object' has no attribute 'nothing'")),
        ("local_ok", Some("disabled"), Expect::Disabled),
        ("local_ok", Some("syntax_error"), Expect::Err(ErrKind::Syntax, "TemplateSyntaxError: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.")),
        ("local_ok", Some("uses_alias"), Expect::Ok("uses_alias (ops.uses_alias) ran core.local for alice; formats=['run {{cmd}}']; 163", None)),
        ("local_ok", Some("whitespace"), Expect::Ok("Report for 65a1f0c2e4b0a1b2c3d4e5f6\n    item a\n    item b\n trimmed-left\n{{ not rendered }}SUCCEEDED glued\nend", None)),
        ("http", Some("builtins"), Expect::Ok("db, queue|1|('Content-Type', 'application/json')|True|True,None,1.5|{\"checks\": [{\"name\": \"db\", \"ok\": true}, {\"lag\": 12.5, \"name\": \"queue\", \"ok\": false}], \"healthy\": true, \"note\": null, \"service\": \"billing\"}|201|x-3|Billing Billing selling|['Content-Type', 'X-Request-Id']|billing d|12.0|{'name': 'queue', 'ok': False, 'lag': 12.5}|['a', 'b', '', 'c']|x|BILLING|True|False True|4", None)),
        ("http", Some("items_loop"), Expect::Ok("status_code: 200\nbody: {'service': 'billing', 'healthy': True, 'checks': [{'name': 'db', 'ok': True}, {'name': 'queue', 'ok': False, 'lag': 12.5}], 'note': None}\nparsed: True\nheaders: {'Content-Type': 'application/json', 'X-Request-Id': 'abc-123'}\n[1:service=billing][2:healthy=True][3:checks=[{'name': 'db', 'ok': True}, {'name': 'queue', 'ok': False, 'lag': 12.5}]][4:note=None]", None)),
        ("list_result_alias", Some("iteritems_list"), Expect::Err(ErrKind::Render, "AttributeError: 'list' object has no attribute 'items'")),
        ("local_ok", Some("runtime_type_error"), Expect::Err(ErrKind::Render, "TypeError: can only concatenate str (not \"int\") to str")),
        ("local_ok", Some("not_callable"), Expect::Err(ErrKind::Render, "TypeError: 'str' object is not callable")),
        ("python_ok", Some("concat"), Expect::Ok("rc=0 ok=True r={'prime': True, 'value': 7, 'factors': [], 'checked_by': 'trial division', 'ratio': 0.5}", None)),
        ("tricky", Some("concat"), Expect::KnownDifference {
            jinja2: "rc=0 ok=True r={'nested': {'list': [1, 'two', {'three': 3}], 'quote': \"it's\", 'both': 'it\\'s \"x\"', 'uni': 'Zoë ✓', 'nl': 'a\\nb', 'empty': '', 'zero': 0, 'f': 1e-05, 'big': 1e+16, 'neg': -0.0}}",
            ours: "rc=0 ok=True r={'nested': {'list': [1, 'two', {'three': 3}], 'quote': \"it's\", 'both': 'it\\'s \"x\"', 'uni': 'Zoë ✓', 'nl': 'a\\nb', 'empty': '', 'zero': 0, 'f': 1e-5, 'big': 1e16, 'neg': -0.0}}",
        }),
        ("local_ok", Some("format_not_str"), Expect::Ok("", None)),
        ("string_result_alias", Some("json_unicode"), Expect::Ok("\"Hello, Zo\\u00eb! \\u2713 \\u00fcn\\u00efc\\u00f6d\\u00e9 \\u00abok\\u00bb\"|\"Hello, Zo\\u00eb! \\u2713 \\u00fcn\\u00efc\\u00f6d\\u00e9 \\u00abok\\u00bb\"|Hello, Zo\\u00eb! \\u2713 \\u00fcn\\u00efc\\u00f6d\\u00e9 \\u00abok\\u00bb|{\n \"name\": \"Zo\\u00eb\"\n}", None)),
        ("tricky", Some("json_unicode"), Expect::Err(ErrKind::Render, "TypeError: Object of type Undefined is not JSON serializable")),
        ("orquesta", Some("macro_recursion"), Expect::Ok("output:\n  deployed:\n    web-1\n    web-2\n  summary:\n    Deployed shop 2.4.0 to 2 hosts\nAll health checks passed\n  rollback:\n    False\n  stats:\n    duration:\n      312\n    retries:\n      0\nerrors:\n", None)),
        ("http", Some("macro_recursion"), Expect::Ok("status_code:\n  200\nbody:\n  service:\n    billing\n  healthy:\n    True\n  checks:\n    name:\n      db\n    ok:\n      True\n    name:\n      queue\n    ok:\n      False\n    lag:\n      12.5\n  note:\n    None\nparsed:\n  True\nheaders:\n  Content-Type:\n    application/json\n  X-Request-Id:\n    abc-123\n", None)),
        ("local_fail", Some("extra_breaks_json"), Expect::Err(ErrKind::Invalid, "JSONDecodeError: unexpected control character in string: line 1 column 92 (char 91)")),
        ("local_ok", Some("extra_breaks_json"), Expect::Ok("ok", Some("{\"fields\":[{\"value\":\"\"}]}"))),
        ("local_ok", Some("extra_empty"), Expect::Ok("ok", Some("{}"))),
        ("local_ok", Some("enabled_null"), Expect::Disabled),
        ("local_ok", Some("result_empty"), Expect::Ok("\nAction core.local completed.\nstatus : succeeded\nexecution: 65a1f0c2e4b0a1b2c3d4e5f6\n\nweb_url: https://st2.example.com/#/history/65a1f0c2e4b0a1b2c3d4e5f6/general\n\nTook 0.212334μs to complete.\n\nresult :\n--------\nstdout :       \n  02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /\n\n", None)),
        ("local_ok", Some("extra_only"), Expect::Ok("\nAction core.local completed.\nstatus : succeeded\nexecution: 65a1f0c2e4b0a1b2c3d4e5f6\n\nweb_url: https://st2.example.com/#/history/65a1f0c2e4b0a1b2c3d4e5f6/general\n\nTook 0.212334μs to complete.\n\nresult :\n--------\nstdout :       \n  02:14:58 up 12 days,  3:01,  1 user,  load average: 0.08, 0.03, 0.01\nFilesystem      Size  Used Avail Use% Mounted on\n/dev/sda1        40G   12G   26G  32% /\n\n", Some("{\"where\":\"alice@ops\",\"n\":1.5}"))),
        ("local_ok", Some("enabled_true_explicit"), Expect::Ok("succeeded!", None)),
    ];

    /// Context of [`EXPRESSIONS`].
    const EXPRESSION_CONTEXT: &str = r##"{"s": "Hello World 42", "n": 3, "f": 2.5, "t": true, "z": null, "l": ["a", "b", 3], "d": {"b": 2, "a": 1, "nested": {"x": [1.0, 1e-07]}}, "path": "/opt/stackstorm/packs/core/actions/local.yaml", "uni": "naïve ☃ \u0007 \u00a0 \u200b \ud83d\ude00", "ml": "  line one\n\tline two  \n", "v": "1.10.0-beta.2+exp.sha.5114f85", "big": 12345678901234567890, "neg": -7, "tiny": 0.0001, "tinier": 0.00001234, "huge": 1.5e300, "ws": "\u001c x \u001f"}"##;

    /// (template, Ok(output) or Err(Python exception)) from Jinja2 3.1.6 in st2's environment.
    const EXPRESSIONS: &[(&str, Result<&str, &str>)] = &[
        ("{{ s }}|{{ n }}|{{ f }}|{{ t }}|{{ z }}|{{ l }}|{{ d }}", Ok("Hello World 42|3|2.5|True|None|['a', 'b', 3]|{'b': 2, 'a': 1, 'nested': {'x': [1.0, 1e-07]}}")),
        ("{{ big }} {{ neg }} {{ tiny }} {{ tinier }} {{ huge }} {{ -0.0 }} {{ 1.0 }} {{ 100000000000000000.0 }} {{ 123456789012345.6 }}", Ok("12345678901234567890 -7 0.0001 1.234e-05 1.5e+300 -0.0 1.0 1e+17 123456789012345.6")),
        ("{{ uni }}|{{ [uni] }}|{{ {'k': uni} }}", Ok("naïve ☃ \u{7} \u{a0} \u{200b} 😀|['naïve ☃ \\x07 \\xa0 \\u200b 😀']|{'k': 'naïve ☃ \\x07 \\xa0 \\u200b 😀'}")),
        ("{{ [\"it's\", 'say \"x\"', 'both \\' \"', \"back\\\\slash\", \"tab\\t\"] }}", Ok("[\"it's\", 'say \"x\"', 'both \\' \"', 'back\\\\slash', 'tab\\t']")),
        ("{{ (1,) }} {{ (1, 'a') }} {{ () }}", Ok("(1,) (1, 'a') ()")),
        ("{{ ml | trim }}|{{ ws | trim }}|{{ 'xxhixx' | trim('x') }}|{{ l | trim }}|{{ d | trim }}|{{ n | trim }}|{{ z | trim }}", Ok("line one\n\tline two|x|hi|['a', 'b', 3]|{'b': 2, 'a': 1, 'nested': {'x': [1.0, 1e-07]}}|3|None")),
        ("{{ l | join(', ') }}|{{ l | join }}|{{ [t, z, f] | join('-') }}|{{ d | join('/') }}|{{ 'abc' | join('.') }}|{{ [{'a': 1}] | join }}|{{ [{'a': 'x'}, {'a': 'y'}] | join(',', attribute='a') }}", Ok("a, b, 3|ab3|True-None-2.5|b/a/nested|a.b.c|{'a': 1}|x,y")),
        ("{{ d | string }}|{{ t | string }}|{{ f | string }}|{{ tinier | string }}", Ok("{'b': 2, 'a': 1, 'nested': {'x': [1.0, 1e-07]}}|True|2.5|1.234e-05")),
        ("{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ '<a href=\"x\">&\\'' | tojson }}", Ok("{\"a\": 1, \"b\": 2, \"nested\": {\"x\": [1.0, 1e-07]}}|{\n  \"a\": 1,\n  \"b\": 2,\n  \"nested\": {\n    \"x\": [\n      1.0,\n      1e-07\n    ]\n  }\n}|\"\\u003ca href=\\\"x\\\"\\u003e\\u0026\\u0027\"")),
        ("{{ d | to_json_string }}|{{ d | to_json_string(indent=4) }}|{{ d | to_json_string(sort_keys=True) }}|{{ l | to_json_string(indent='--') }}|{{ d | to_json_string(2, True) }}|{{ [] | to_json_string(indent=2) }}|{{ {} | to_json_string(indent=2) }}|{{ d | to_json_string(separators=None) }}|{{ d | to_json_string(indent=2, separators=None) }}", Ok("{\"b\": 2,\"a\": 1,\"nested\": {\"x\": [1.0,1e-07]}}|{\n    \"b\": 2,\n    \"a\": 1,\n    \"nested\": {\n        \"x\": [\n            1.0,\n            1e-07\n        ]\n    }\n}|{\"a\": 1,\"b\": 2,\"nested\": {\"x\": [1.0,1e-07]}}|[\n--\"a\",\n--\"b\",\n--3\n]|{\n  \"a\": 1,\n  \"b\": 2,\n  \"nested\": {\n    \"x\": [\n      1.0,\n      1e-07\n    ]\n  }\n}|[]|{}|{\"b\": 2, \"a\": 1, \"nested\": {\"x\": [1.0, 1e-07]}}|{\n  \"b\": 2,\n  \"a\": 1,\n  \"nested\": {\n    \"x\": [\n      1.0,\n      1e-07\n    ]\n  }\n}")),
        ("{{ uni | to_json_string }}|{{ huge | to_json_string }}|{{ tinier | to_complex }}|{{ {1: 'a', 2.5: 'b', true: 'c', none: 'd'} | to_json_string }}", Ok("\"na\\u00efve \\u2603 \\u0007 \\u00a0 \\u200b \\ud83d\\ude00\"|1.5e+300|1.234e-05|{\"1\": \"c\",\"2.5\": \"b\",\"null\": \"d\"}")),
        ("{{ s | json_escape }}|{{ '\"quoted\"' | json_escape }}|{{ d | json_escape }}|{{ n | json_escape }}", Ok("Hello World 42|\\\"quoted\\|{\"b\": 2, \"a\": 1, \"nested\": {\"x\": [1.0, 1e-07]}}|3")),
        ("{{ '[1, 2.5, \"x\", null, true, {\"a\": {}}]' | from_json_string }}|{{ ('{\"k\": [1, 2]}' | from_json_string).k[1] }}|{{ 7 | from_json_string }}", Ok("[1, 2.5, 'x', None, True, {'a': {}}]|2|7")),
        ("{{ z | use_none }}|{{ n | use_none }}|{{ nothing | use_none }}", Ok("%*****__%NONE%__*****%|3|")),
        ("{{ path | basename }}|{{ path | dirname }}|{{ '' | basename }}|{{ '' | dirname }}|{{ 'a/b/' | dirname }}|{{ '///' | dirname }}|{{ '/x' | dirname }}", Ok("local.yaml|/opt/stackstorm/packs/core/actions|||a/b|///|/")),
        ("{{ 0 | to_human_time_from_seconds }} {{ 0.0 | to_human_time_from_seconds }} {{ 0.999 | to_human_time_from_seconds }} {{ 1 | to_human_time_from_seconds }} {{ 1.5 | to_human_time_from_seconds }} {{ 2.5 | to_human_time_from_seconds }} {{ 59 | to_human_time_from_seconds }} {{ 3600 | to_human_time_from_seconds }} {{ 86399 | to_human_time_from_seconds }} {{ 86400 | to_human_time_from_seconds }} {{ 2592000 | to_human_time_from_seconds }} {{ 5184000 | to_human_time_from_seconds }} {{ 31535999 | to_human_time_from_seconds }} {{ 31536000 | to_human_time_from_seconds }} {{ 63072000 | to_human_time_from_seconds }} {{ 126230400 | to_human_time_from_seconds }} {{ 315537897599 | to_human_time_from_seconds }} {{ -0.5 | to_human_time_from_seconds }} {{ tinier | to_human_time_from_seconds }} {{ false | to_human_time_from_seconds }}", Ok("0s 0s 0.999μs 1s 2s 2s 59s 1h0m0s 23h59m59s 1d0h0m0s 30d0h0m0s 1d0h0m0s 30d23h59m59s 1y0d0h0m0s 2y0d0h0m0s 4y0d0h0m0s 9998y30d23h59m59s -0.5μs 1.234e-05μs 0s")),
        ("{{ 315537897600 | to_human_time_from_seconds }}", Err("OverflowError: date value out of range")),
        ("{{ '5' | to_human_time_from_seconds }}", Err("AssertionError: ")),
        ("{{ nothing | to_human_time_from_seconds }}", Err("AssertionError: ")),
        ("{{ s | regex_match('hello') }} {{ s | regex_match('hello', true) }} {{ s | regex_match('World') }} {{ s | regex_search('wor', ignorecase=True) }} {{ n | regex_match('3') }} {{ z | regex_search('None') }} {{ nothing | regex_search('^$') }}", Ok("False True False True True True True")),
        ("{{ s | regex_replace('o', '0') }}|{{ s | regex_replace('(\\\\w+) (\\\\w+)', '\\\\2 \\\\1') }}|{{ s | regex_replace('\\\\d+$', '[\\\\g<0>]') }}|{{ s | regex_replace('l+', '\\\\n') }}|{{ s | regex_replace('(?P<w>o)', '<\\\\g<w>>') }}|{{ s | regex_replace('x*', '.') }}|{{ 'a-b' | regex_replace('-', '\\\\-') }}|{{ 'ab' | regex_replace('(a)|(b)', '[\\\\1\\\\2]') }}|{{ 'aaa' | regex_replace('a{2}', 'X') }}|{{ 'a{b}' | regex_replace('{b}', 'B') }}|{{ 'a{,2}' | regex_replace('a{,2}', 'Q') }}|{{ 'x$y' | regex_replace('\\\\$', 'D') }}|{{ 'line\\n' | regex_replace('$', 'E') }}|{{ 'AbC' | regex_replace('[a-c]', '_', ignorecase=True) }}|{{ 'a.b' | regex_replace('[.]', ',') }}|{{ 'tab\\there' | regex_replace('\\\\t', ' ') }}|{{ 'x' | regex_replace('x', '\\\\101') }}|{{ 'x' | regex_replace('(?i)X', 'y') }}|{{ 'a]b' | regex_replace('[]]', 'R') }}|{{ 'a<b>' | regex_replace('\\\\<b\\\\>', 'T') }}|{{ 'ab' | regex_replace('(?#comment)b', 'C') }}|{{ 'end\\n\\n' | regex_replace('d$', 'D') }}|{{ 'xy' | regex_replace('y\\\\Z', 'Z') }}", Ok("Hell0 W0rld 42|World Hello 42|Hello World [42]|He\no Wor\nd 42|Hell<o> W<o>rld 42|.H.e.l.l.o. .W.o.r.l.d. .4.2.|a\\-b|[a][b]|Xa|aB|QQ{Q,Q2Q}Q|xDy|lineE\nE|___|a,b|tab here|A|y|aRb|aT|aC|end\n\n|xZ")),
        ("{{ s | regex_substring('\\\\d+') }}|{{ s | regex_substring('(\\\\w)(\\\\w)', 1) }}|{{ s | regex_substring('o', -1) }}|{{ s | regex_substring('(?P<a>l)(o)?', 2) }}|{{ s | regex_substring('\\\\w+', result_index=1) }}", Ok("42|('l', 'l')|o|('l', '')|World")),
        ("{{ s | regex_substring('zzz') }}", Err("IndexError: list index out of range")),
        ("{{ s | regex_replace('(', 'x') }}", Err("error: missing ), unterminated subpattern at position 0")),
        ("{{ s | regex_replace('o', '\\\\q') }}", Err("error: bad escape \\q at position 0")),
        ("{{ s | regex_replace('o', '\\\\3') }}", Err("error: invalid group reference 3 at position 1")),
        ("{{ s | regex_search('\\\\p') }}", Err("error: bad escape \\p at position 0")),
        ("{{ v | version_bump_major }} {{ v | version_bump_minor }} {{ v | version_bump_patch }} {{ v | version_strip_patch }} {{ v | version_compare('1.10.0') }} {{ v | version_compare('1.10.0-beta.10') }} {{ v | version_compare('1.10.0-beta') }} {{ '1.0.0-alpha' | version_compare('1.0.0-alpha.1') }} {{ '1.0.0-alpha.1' | version_compare('1.0.0-alpha.beta') }} {{ '1.0.0-beta.11' | version_compare('1.0.0-rc.1') }} {{ '1.0.0' | version_compare([1, 0, 0]) }} {{ '1.0.0' | version_compare({'major': 2}) }} {{ '1.2.3' | version_match('<1.2.4') }} {{ '1.2.3' | version_match('<=1.2.3') }} {{ '1.2.3' | version_match('>1.2.3') }} {{ '1.2.3' | version_match('==1.2.3') }} {{ '0.0.0' | version_equal('0.0.0+x') }}", Ok("2.0.0 1.11.0 1.10.1 1.10 -1 -1 1 -1 -1 -1 0 -1 True True False True True")),
        ("{{ '1.2' | version_compare('1.2.0') }}", Err("ValueError: 1.2 is not valid SemVer string")),
        ("{{ '1.2.3' | version_match('~1.2.3') }}", Err("ValueError: match_expr parameter should be in format <op><ver>, where <op> is one of ['<', '>', '==', '<=', '>=', '!=']. You provided: '~1.2.3'")),
        ("{{ '01.2.3' | version_bump_major }}", Err("ValueError: 01.2.3 is not valid SemVer string")),
        ("{{ '1.2.3-01' | version_bump_major }}", Err("ValueError: 1.2.3-01 is not valid SemVer string")),
        ("{{ '1.2.3-0a.01a' | version_strip_patch }}", Ok("1.2")),
        ("{{ 3 | version_bump_major }}", Err("TypeError: not expecting type '<class 'int'>'")),
        ("{{ d.nested.x }} {{ d['nested']['x'][1] }} {{ l[-1] }} {{ l | length }} {{ d | length }} {{ s | length }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}", Ok("[1.0, 1e-07] 1e-07 3 3 3 14 ['b', 'a', 'nested'] [2, 1, {'x': [1.0, 1e-07]}] [('b', 2), ('a', 1), ('nested', {'x': [1.0, 1e-07]})]")),
        ("{{ 'a' in l }} {{ 'z' in l }} {{ 'b' in d }} {{ 'World' in s }} {{ l | select('in', ['a', 3]) | list }} {{ [1, 2] | select('in', [true]) | list }}", Ok("True False True True ['a', 3] [1]")),
        ("{% for k, v in six.iteritems(d) %}{{ k }}={{ v }};{% endfor %}|{% for k in six.iterkeys(d) %}{{ k }}{% endfor %}|{{ six.iteritems(d) | selectattr('1', 'mapping') | list }}|{{ six.iteritems(d) | selectattr('0', 'in', ['a', 'b']) | map(attribute='1') | list }}", Ok("b=2;a=1;nested={'x': [1.0, 1e-07]};|banested|[('nested', {'x': [1.0, 1e-07]})]|[2, 1]")),
        ("{{ six.iteritems(l) }}", Err("AttributeError: 'list' object has no attribute 'items'")),
        ("{{ nothing.attr }}", Err("UndefinedError: 'nothing' is undefined")),
        ("{{ nothing | length }} {{ nothing | default('x') }} {{ nothing is defined }} {{ d.nothing is defined }} {{ nothing | string }}|{{ nothing | trim }}|{{ nothing | join(',') }}|", Ok("0 x False False |||")),
        ("{{ d.nothing.deeper }}", Err("UndefinedError: 'dict object' has no attribute 'nothing'")),
        ("{{ l[10] }}|{{ d['zzz'] }}|{{ s.nothing }}", Ok("||")),
        ("{{ n + s }}", Err("TypeError: unsupported operand type(s) for +: 'int' and 'str'")),
        ("{{ n ~ s }} {{ t ~ z }} {{ l ~ '' }}", Ok("3Hello World 42 TrueNone ['a', 'b', 3]")),
        ("{{ s.split() }} {{ s.lower() }} {{ s.replace('o', '0', 1) }} {{ s.startswith('Hell') }} {{ s.find('W') }} {{ ml.splitlines() }} {{ '-'.join(l[:2]) }} {{ s.count('l') }} {{ s.upper().isupper() }} {{ s.title() }} {{ 'a,b'.split(',', 1) }} {{ ' x '.lstrip() }}", Ok("['Hello', 'World', '42'] hello world 42 Hell0 World 42 True 6 ['  line one', '\\tline two  '] a-b 3 True Hello World 42 ['a', 'b'] x ")),
        ("{{ d | dictsort }} {{ l | first }} {{ l | last }} {{ [3, 1, 2] | sort }} {{ [1, 2, 2] | unique | list }} {{ [1, 2] | sum }} {{ [4, 9] | max }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 7 | round }} {{ -2.5 | abs }} {{ '42' | int }} {{ '4.5' | float }} {{ 'x' | int }} {{ n | float }}", Ok("[('a', 1), ('b', 2), ('nested', {'x': [1.0, 1e-07]})] a 3 [1, 2, 3] [1, 2] 3 9 2.57 2.0 4.0 7 2.5 42 4.5 0 3.0")),
        ("{{ s | upper }} {{ s | lower }} {{ s | title }} {{ s | capitalize }} {{ s | replace('l', 'L') }} {{ s | wordcount }}", Ok("HELLO WORLD 42 hello world 42 Hello World 42 Hello world 42 HeLLo WorLd 42 3")),
        ("{{ s | truncate(8) }}", Ok("Hello...")),
        ("{{ 'a\\nb' | indent(2) }}|{{ 'x' | center(5) }}|{{ l | batch(2) | list }}|{{ l | reverse | list }}|{{ range(3) | list }}|{{ loop }}", Ok("a\n  b|  x  |[['a', 'b'], [3]]|[3, 'b', 'a']|[0, 1, 2]|")),
        ("{{ '%s=%d' | format('a', 5) }} {{ '{}-{}'.format('a', 'b') }} {{ \"%.2f\" | format(f) }}", Ok("a=5 a-b 2.50")),
        ("{{ d | items | list }}", Ok("[('b', 2), ('a', 1), ('nested', {'x': [1.0, 1e-07]})]")),
        ("{{ l | map('upper') | list }}", Ok("['A', 'B', '3']")),
        ("{{ n is number }} {{ s is string }} {{ d is mapping }} {{ l is sequence }} {{ z is none }} {{ n is odd }} {{ n is divisibleby 3 }}", Ok("True True True True True True True")),
        ("{% set x = {'a': [1, {'b': none}]} %}{{ x }}{% set y = x.a %}{{ y | length }}{% if x.a[1].b is none %}N{% endif %}", Ok("{'a': [1, {'b': None}]}2N")),
        ("{% macro m(a, b='d') %}{{ a }}{{ b }}{% if a < 3 %}{{ m(a + 1) }}{% endif %}{% endmacro %}{{ m(1) }}|{{ m(1, b='x') | trim }}", Ok("1d2d3d|1x2d3d")),
        ("{{ 10 / 4 }} {{ 10 // 4 }} {{ 10 % 4 }} {{ 2 ** 10 }} {{ 1e3 }} {{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 2 ** 0.5 }} {{ 10 / 2 }} {{ -7 // 2 }} {{ 7 % -3 }}", Ok("2.5 2 2 1024 1000.0 0.30000000000000004 0.3333333333333333 1.4142135623730951 5.0 -4 -2")),
        ("{{ 'abc'[1:] }} {{ l[::-1] }} {{ s[:5] }} {{ 'x' * 3 }}", Ok("bc [3, 'b', 'a'] Hello xxx")),
        ("{{ '<a href=\"x\">&\\'/' | e }}|{{ d | escape }}|{{ z | e }}|{{ ('<b>' | safe) | e }}|{{ s | urlencode }}|{{ 'a/b c&d=é~_.-' | urlencode }}|{{ {'q': 'a b', 'n': 3} | urlencode }}|{{ [('x', '1/2'), ('y', none)] | urlencode }}|{{ 5 | urlencode }}", Ok("&lt;a href=&#34;x&#34;&gt;&amp;&#39;/|{&#39;b&#39;: 2, &#39;a&#39;: 1, &#39;nested&#39;: {&#39;x&#39;: [1.0, 1e-07]}}|None|<b>|Hello%20World%2042|a/b%20c%26d%3D%C3%A9~_.-|q=a+b&n=3|x=1%2F2&y=None|5")),
        ("{{ '%s items' % n }}", Ok("3 items")),
        ("{{ d.b == 2 and n > 2 or false }} {{ not t }} {{ n if t else 'no' }} {{ 'no' if z }}|", Ok("True False 3 |")),
    ];

    /// Renders `template` with the expression context the way `format` renders an
    /// alias format (lenient environment, `six` available).
    fn render_expression(
        f: &ResultFormatter,
        template: &str,
    ) -> Result<String, ResultMessageError> {
        let ctx: Value = serde_json::from_str(EXPRESSION_CONTEXT).unwrap();
        let mut pairs: Vec<(String, JValue)> = vec![("six".to_string(), JValue::from_object(Six))];
        for (k, v) in ctx.as_object().unwrap() {
            pairs.push((k.clone(), to_jvalue(v)));
        }
        render_source(
            &f.lenient,
            "expression",
            template,
            JValue::from_pairs(pairs),
        )
    }

    #[test]
    fn expressions_match_jinja2() {
        let f = ResultFormatter::new();
        let mut failures = Vec::new();
        for (template, expect) in EXPRESSIONS {
            let got = render_expression(&f, template);
            // Python's `%` string formatting operator has no minijinja counterpart.
            if template.contains("' % ") {
                assert!(got.is_err(), "{template}: {got:?}");
                continue;
            }
            match (expect, &got) {
                (Ok(want), Ok(out)) if want == out => {}
                (Err(_), Err(_)) => {}
                _ => failures.push(format!("{template}\n  want {expect:?}\n  got  {got:?}")),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} differ:\n{}",
            failures.len(),
            EXPRESSIONS.len(),
            failures.join("\n")
        );
    }

    fn execution(name: &str) -> Value {
        let (_, text) = EXECUTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no execution {name}"));
        serde_json::from_str(text).unwrap()
    }

    fn alias(name: &str) -> Value {
        let (_, text) = ALIASES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no alias {name}"));
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn goldens_match_jinja2_byte_for_byte() {
        let f = ResultFormatter::new();
        let mut failures = Vec::new();
        for (exec_name, alias_name, expect) in GOLDENS {
            let e = execution(exec_name);
            let a = alias_name.map(alias);
            let got = f.format(&e, a.as_ref());
            let label = format!("{exec_name} / {alias_name:?}");
            match (expect, &got) {
                (Expect::Ok(message, extra), Ok(r)) => {
                    if !r.enabled || r.message != *message {
                        failures.push(format!(
                            "{label}: message\n  want {message:?}\n  got  {:?}",
                            r.message
                        ));
                    }
                    let got_extra = r.extra.as_ref().map(|x| serde_json::to_string(x).unwrap());
                    if got_extra.as_deref() != *extra {
                        failures.push(format!(
                            "{label}: extra\n  want {extra:?}\n  got  {got_extra:?}"
                        ));
                    }
                }
                (Expect::Disabled, Ok(r)) if !r.enabled && r.message.is_empty() => {}
                (Expect::KnownDifference { jinja2, ours }, Ok(r)) => {
                    assert_ne!(jinja2, ours);
                    if r.message != *ours {
                        failures.push(format!("{label}: got {:?}", r.message));
                    }
                }
                (Expect::Err(ErrKind::Render, _), Err(ResultMessageError::Render { .. }))
                | (Expect::Err(ErrKind::Syntax, _), Err(ResultMessageError::Syntax { .. }))
                | (
                    Expect::Err(ErrKind::Invalid, _),
                    Err(ResultMessageError::InvalidAlias { .. }),
                ) => {}
                (Expect::Err(_, python), other) => {
                    failures.push(format!("{label}: Jinja2 raised {python}, got {other:?}"));
                }
                (_, other) => failures.push(format!("{label}: got {other:?}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn default_message_matches_goldens() {
        let f = ResultFormatter::new();
        for (exec_name, alias_name, expect) in GOLDENS {
            if alias_name.is_some() {
                continue;
            }
            let e = execution(exec_name);
            match expect {
                Expect::Ok(message, _) => {
                    assert_eq!(f.default_message(&e), *message, "{exec_name}")
                }
                // st2 fails; the fallback is a plain summary.
                _ => assert!(
                    f.default_message(&e).starts_with("\nAction "),
                    "{exec_name}"
                ),
            }
        }
    }

    fn alias_with(result: Value) -> Value {
        serde_json::json!({"id": "a1", "name": "probe", "pack": "ops", "ref": "ops.probe", "result": result})
    }

    fn with_alias_ref(mut e: Value) -> Value {
        if let Some(map) = e.as_object_mut() {
            map.insert(
                "context".into(),
                serde_json::json!({"action_alias_ref": {"id": "a1"}}),
            );
        }
        e
    }

    fn render_format(
        f: &ResultFormatter,
        format: &str,
        e: &Value,
    ) -> Result<String, ResultMessageError> {
        let a = alias_with(serde_json::json!({"format": format}));
        f.format(&with_alias_ref(e.clone()), Some(&a))
            .map(|r| r.message)
    }

    #[test]
    fn default_template_compiles_and_formatter_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ResultFormatter>();
        let f = ResultFormatter::default();
        assert!(f.default_ok);
        assert!(format!("{f:?}").contains("ResultFormatter"));
    }

    #[test]
    fn runaway_templates_are_stopped() {
        let f = ResultFormatter::new();
        let e = execution("local_ok");
        let start = std::time::Instant::now();
        let err = render_format(
            &f,
            alias("big_loop")["result"]["format"].as_str().unwrap(),
            &e,
        )
        .unwrap_err();
        assert!(
            matches!(err, ResultMessageError::TooExpensive { .. }),
            "{err:?}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        let err = render_format(
            &f,
            "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
            &e,
        )
        .unwrap_err();
        assert!(matches!(err, ResultMessageError::Render { .. }), "{err:?}");
        let err = render_format(&f, "{% set s = 'x' * 1000000000 %}{{ s }}", &e).unwrap_err();
        assert!(
            matches!(err, ResultMessageError::TooExpensive { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn output_is_capped() {
        let f = ResultFormatter::new();
        let e = execution("local_ok");
        let err = render_format(
            &f,
            "{% for i in range(40000) %}{{ 'x' * 40 }}{% endfor %}",
            &e,
        )
        .unwrap_err();
        assert!(
            matches!(err, ResultMessageError::OutputTooLarge { limit, .. } if limit == MAX_OUTPUT_BYTES),
            "{err:?}"
        );
        let ok = render_format(
            &f,
            "{% for i in range(1000) %}{{ 'x' * 40 }}{% endfor %}",
            &e,
        )
        .unwrap();
        assert_eq!(ok.len(), 40_000);
    }

    #[test]
    fn unsupported_filters_are_named() {
        let f = ResultFormatter::new();
        let e = execution("local_ok");
        for (filter, call) in [
            ("to_yaml_string", "execution.result | to_yaml_string"),
            ("from_yaml_string", "'a: 1' | from_yaml_string"),
            (
                "jsonpath_query",
                "execution.result | jsonpath_query('$.stdout')",
            ),
            ("decrypt_kv", "'x' | decrypt_kv"),
        ] {
            let err = render_format(&f, &format!("x {{{{ {call} }}}}"), &e).unwrap_err();
            match err {
                ResultMessageError::UnsupportedFilter {
                    filter: got,
                    template,
                } => {
                    assert_eq!(got, filter);
                    assert_eq!(template, "alias ops.probe result.format");
                }
                other => panic!("{filter}: {other:?}"),
            }
        }
        // Only when actually called.
        assert_eq!(
            render_format(
                &f,
                "{% if false %}{{ 1 | to_yaml_string }}{% endif %}ok",
                &e
            )
            .unwrap(),
            "ok"
        );
    }

    #[test]
    fn alias_rules_follow_format_execution_result() {
        let f = ResultFormatter::new();
        let e = execution("local_ok");
        let default = f.default_message(&e);
        // No alias ref on the execution: the alias is not consulted.
        let mut no_ref = e.clone();
        no_ref["context"] = serde_json::json!({"user": "x"});
        let a = alias_with(serde_json::json!({"format": "custom"}));
        assert_eq!(f.format(&no_ref, Some(&a)).unwrap().message, default);
        // Alias ref but alias unknown: default template.
        assert_eq!(f.format(&e, None).unwrap().message, default);
        // Disabled: nothing rendered, even a broken format or extra.
        for enabled in [
            serde_json::json!(false),
            serde_json::json!(0),
            serde_json::json!(""),
        ] {
            let a = alias_with(
                serde_json::json!({"enabled": enabled, "format": "{% broken", "extra": {"k": "{{ nope.x }}"}}),
            );
            let r = f.format(&e, Some(&a)).unwrap();
            assert_eq!(
                r,
                ResultMessage {
                    enabled: false,
                    message: String::new(),
                    extra: None
                }
            );
        }
        // A non-string format or a non-mapping extra/result is an error, as in st2.
        for result in [
            serde_json::json!({"format": 5}),
            serde_json::json!({"extra": ["a"]}),
            serde_json::json!("yes"),
        ] {
            let err = f.format(&e, Some(&alias_with(result.clone()))).unwrap_err();
            assert!(
                matches!(err, ResultMessageError::InvalidAlias { .. }),
                "{result}: {err:?}"
            );
        }
        // Errors name the template.
        let err = f
            .format(
                &e,
                Some(&alias_with(
                    serde_json::json!({"format": "{{ execution.x.y }}"}),
                )),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("alias ops.probe result.format: "),
            "{err}"
        );
        let err = f
            .format(
                &e,
                Some(&alias_with(
                    serde_json::json!({"extra": {"k": "{{ nope }}"}}),
                )),
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("alias ops.probe result.extra.k: "),
            "{err}"
        );
    }

    #[test]
    fn extra_keeps_untouched_values_and_types() {
        let f = ResultFormatter::new();
        let e = execution("local_ok");
        let a = alias_with(serde_json::json!({"extra": {
            "n": 1.0, "big": 1e16, "b": false, "z": null, "s": "plain", "l": [1.0, "{{ 1 + 1 }}"],
            "d": {"k": "{{ execution.status | upper }}", "u": "ünï"}, "t": "{{ execution.elapsed_seconds }}",
            "ctx": "{{ __context.alias.name }}", "raw": "{% raw %}{{ x }}{% endraw %}"
        }}));
        let r = f.format(&e, Some(&a)).unwrap();
        assert_eq!(
            serde_json::to_string(&r.extra.unwrap()).unwrap(),
            r#"{"n":1.0,"big":1e+16,"b":false,"z":null,"s":"plain","l":[1.0,"2"],"d":{"k":"SUCCEEDED","u":"ünï"},"t":"0.212334","ctx":"probe","raw":"{{ x }}"}"#
        );
    }

    #[test]
    fn python_printing() {
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(1.5e16), "1.5e+16");
        assert_eq!(py_float(1e15), "1000000000000000.0");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_float(-2.0), "-2.0");
        assert_eq!(py_float(123.456), "123.456");
        assert_eq!(py_float(f64::NAN), "nan");
        assert_eq!(py_float(f64::NEG_INFINITY), "-inf");
        assert_eq!(py_float(5e-324), "5e-324");
        assert_eq!(py_float(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(py_str_repr("a'b"), "\"a'b\"");
        assert_eq!(py_str_repr("a'b\""), "'a\\'b\"'");
        assert_eq!(
            py_str_repr("\u{7f}\u{85}\u{a0}\u{ad}é\u{200b}\u{e000}\u{1f600}"),
            "'\\x7f\\x85\\xa0\\xadé\\u200b\\ue000\u{1f600}'"
        );
        assert!(py_space('\u{1c}') && py_space('\u{a0}') && !py_space('x'));
    }

    #[test]
    fn regex_translation() {
        assert_eq!(
            translate_py_regex(r"a\Zb$").unwrap(),
            r"a\zb(?:\z|(?=\n\z))"
        );
        assert_eq!(translate_py_regex(r"(?m)^a$").unwrap(), r"(?m)^a$");
        assert_eq!(translate_py_regex(r"(?au)x").unwrap(), "x");
        assert_eq!(
            translate_py_regex(r"a{,3}b{2}c{x}").unwrap(),
            r"a{0,3}b{2}c\{x\}"
        );
        assert_eq!(translate_py_regex(r"[]a[&~]").unwrap(), r"[\]a\[\&\~]");
        assert_eq!(
            translate_py_regex(r"\101\0\1\<").unwrap(),
            r"\x{41}\x{0}\1<"
        );
        assert_eq!(translate_py_regex(r"a(?#note)b(?i:c)").unwrap(), "ab(?i:c)");
        assert!(translate_py_regex(r"\q").is_err());
        assert!(translate_py_regex("\\").is_err());
        assert!(translate_py_regex(r"(?L)x").is_err());
        assert!(translate_py_regex(r"\777").is_err());
    }

    #[test]
    fn semver_rules() {
        assert!(semver_parse("1.2.3-rc.1+build.5").is_ok());
        assert!(semver_parse("1.2.3\n").is_ok());
        for bad in [
            "1.2",
            "v1.2.3",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-a..b",
            "01.2.3",
            "1.2.3-01",
            "1.2.3 ",
        ] {
            assert!(semver_parse(bad).is_err(), "{bad}");
        }
        let v = |s| semver_parse(s).unwrap();
        assert_eq!(semver_compare(&v("1.0.0-alpha"), &v("1.0.0")), -1);
        assert_eq!(semver_compare(&v("1.0.0-2"), &v("1.0.0-10")), -1);
        assert_eq!(semver_compare(&v("1.0.0-a"), &v("1.0.0-1")), 1);
        assert_eq!(semver_compare(&v("1.0.0+a"), &v("1.0.0+b")), 0);
    }

    #[test]
    fn human_time_quirks() {
        let h = |v: JValue| filter_human_time(v).map(|v| v.to_string());
        assert_eq!(h(JValue::from(0.021)).unwrap(), "0.021\u{3bc}s");
        assert_eq!(h(JValue::from(-5)).unwrap(), "-5\u{3bc}s");
        assert_eq!(h(JValue::from(65.5)).unwrap(), "1m6s");
        assert_eq!(h(JValue::from(66.5)).unwrap(), "1m6s");
        // 40 days: the 10th of February, so "9d" (months are dropped).
        assert_eq!(h(JValue::from(40 * 86_400)).unwrap(), "9d0h0m0s");
        // Year 1 has 365 days.
        assert_eq!(h(JValue::from(365 * 86_400)).unwrap(), "1y0d0h0m0s");
        assert_eq!(h(JValue::from(366 * 86_400)).unwrap(), "1y1d0h0m0s");
        assert!(h(JValue::from(f64::NAN)).is_err());
        assert!(h(JValue::from(f64::INFINITY)).is_err());
        assert!(h(JValue::from(i64::MAX)).is_err());
        assert!(h(JValue::from("5")).is_err());
        assert!(h(JValue::UNDEFINED).is_err());
    }

    /// Small deterministic generator for the fuzz-ish tests.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(self.0 >> 33).unwrap()
        }
    }

    #[test]
    fn garbage_templates_never_panic() {
        const PIECES: &[&str] = &[
            "{{",
            "}}",
            "{%",
            "%}",
            "{#",
            "#}",
            "-",
            " ",
            "\n",
            "'",
            "\"",
            "(",
            ")",
            "[",
            "]",
            "|",
            "execution",
            ".result",
            ".stdout",
            "six.iteritems(",
            "for ",
            "in ",
            "if ",
            "endif",
            "endfor",
            "macro ",
            "endmacro",
            "set ",
            "=",
            "~",
            "+",
            "*",
            "/",
            "0",
            "1e309",
            "-1",
            "to_json_string",
            "regex_replace('(', ')')",
            "regex_substring('x*', -1)",
            "to_human_time_from_seconds",
            "version_match('>')",
            "trim",
            "join",
            "tojson",
            "from_json_string",
            "basename",
            "int",
            "truncate(1)",
            "center(99999999)",
            "é",
            "\u{0}",
            "loop",
            "range(99999)",
            "selectattr('0')",
            "items()",
            "none",
            "true",
            "raw",
            "endraw",
        ];
        let f = ResultFormatter::new();
        let docs = [
            execution("tricky"),
            execution("remote_two"),
            execution("http"),
            serde_json::json!(null),
        ];
        let mut rng = Lcg(7);
        for i in 0..3000 {
            let n = 1 + rng.next() % 14;
            let src: String = (0..n).map(|_| PIECES[rng.next() % PIECES.len()]).collect();
            let doc = &docs[i % docs.len()];
            let _ = render_format(&f, &src, doc);
            let a =
                alias_with(serde_json::json!({"extra": {"k": src.clone(), "l": [src.clone()]}}));
            let _ = f.format(&with_alias_ref(doc.clone()), Some(&a));
        }
    }

    #[test]
    fn odd_documents_never_panic() {
        let f = ResultFormatter::new();
        let mut deep = serde_json::json!("leaf");
        for _ in 0..300 {
            deep = serde_json::json!({"k": deep, "l": [1]});
        }
        let docs = [
            serde_json::json!(null),
            serde_json::json!(5),
            serde_json::json!("text"),
            serde_json::json!([1, 2]),
            serde_json::json!({}),
            serde_json::json!({"context": null}),
            serde_json::json!({"context": {"action_alias_ref": "x"}}),
            serde_json::json!({"result": {"a": 1}, "runner": "not a mapping"}),
            serde_json::json!({"result": {"a": 1}}),
            serde_json::json!({"result": [1], "runner": {"name": 7}, "elapsed_seconds": "12"}),
            serde_json::json!({"result": {"h": 5}, "runner": {"name": "remote-shell-cmd"}}),
            serde_json::json!({"elapsed_seconds": 1e300, "result": true}),
            serde_json::json!({"elapsed_seconds": -1, "result": u64::MAX, "status": f64::MAX}),
            serde_json::json!({"result": deep.clone(), "runner": {"name": "orquesta"}}),
            serde_json::json!({"result": {"items": [1], "keys": {"values": null}}, "runner": {"name": "http-request"}}),
        ];
        for doc in &docs {
            let _ = f.default_message(doc);
            let _ = f.format(doc, None);
            let _ = f.format(
                doc,
                Some(&serde_json::json!({"result": {"format": "{{ execution }}"}})),
            );
            let _ = render_format(&f, "{{ execution | to_json_string }}{{ execution | tojson }}{{ execution.result | trim }}", doc);
        }
        // Deep nesting is refused cleanly rather than overflowing the stack.
        assert!(render_format(
            &f,
            "{{ execution.result }}",
            &serde_json::json!({"result": deep})
        )
        .is_err());
    }
}
