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
//!
//! # Layout
//!
//! * `mod.rs`: the public API: [`ResultFormatter`] (what `format_execution_result.py`
//!   does with an execution and its alias), [`ResultMessage`], [`ResultMessageError`]
//!   and the limits.
//! * `default_template.rs`: [`DEFAULT_TEMPLATE`], the pack's `default.j2`.
//! * `env.rs`: st2's Jinja environment (`st2common/util/jinja.py`), rendering within
//!   the fuel and output limits, and how errors are classified.
//! * `python.rs`, `py_json.rs`, `py_re.rs`, `six.rs`: the Python that templates see:
//!   `str()`/`repr()` and other builtins, `json.dumps`, `re`, and the `six` module.
//! * `filters/`: st2's filters, one file per `st2common/expressions/functions/*.py`
//!   module, and the Jinja2 builtins replaced so they print values like Python.
//! * `tests/`: goldens produced by Jinja2 3.1.6 in st2's environment.

mod default_template;
mod env;
mod filters;
mod py_json;
mod py_re;
mod python;
mod six;
#[cfg(test)]
mod tests;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

pub use default_template::DEFAULT_TEMPLATE;
/// Python's truthiness of a JSON value (how StackStorm reads flags such as `required`).
pub(crate) use python::json_truthy;

use env::{build_env, render_compiled, render_source};
use python::{json_py_str, json_type_name};
use six::Six;

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

/// Name used in errors for the default template.
const DEFAULT_NAME: &str = "chatops default template";

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
        let alias_id = execution
            .get("context")
            .and_then(|c| c.get("action_alias_ref"))
            .and_then(|r| r.get("id"));
        let alias = alias.filter(|_| alias_id.is_some_and(json_truthy));

        let mut ctx = base_context(execution);
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
        let context = JValue::from_pairs(base_context(execution));
        match self.render_default(context) {
            Ok(text) => text,
            Err(_) => plain_summary(execution),
        }
    }

    /// Renders [`DEFAULT_TEMPLATE`], compiled once by [`Self::new`].
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
        render_compiled(DEFAULT_NAME, &template, context)
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

/// The variables every template gets: `six` and the `execution`.
fn base_context(execution: &Value) -> Vec<(&'static str, JValue)> {
    vec![
        ("six", JValue::from_object(Six)),
        ("execution", execution_value(execution)),
    ]
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
