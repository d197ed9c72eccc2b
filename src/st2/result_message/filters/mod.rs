//! The filters and tests of st2's Jinja environment (`st2common/util/jinja.py`:
//! `get_filters` and the `in` test), added to an environment by [`register`], and
//! the Python-style argument binding they share.
//!
//! One file per st2 module in `st2common/st2common/expressions/functions/`:
//! `data.rs`, `path.rs`, `time.rs`, `version.rs` and `regex.rs`. `jinja2.rs` holds
//! the Jinja2 builtins replaced because minijinja lacks them or prints values
//! differently. The st2 filters this module cannot reproduce (`to_yaml_string`,
//! `from_yaml_string`, `jsonpath_query`, `decrypt_kv`) are registered as stubs
//! whose error carries [`UNSUPPORTED_MARK`], which `env.rs` turns into
//! `ResultMessageError::UnsupportedFilter`.

mod data;
mod jinja2;
mod path;
mod regex;
mod time;
mod version;

use minijinja::value::{Kwargs, Rest, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State};

use super::python::{py_contains, py_type, type_error};
use super::JValue;

/// Marker in error details raised by st2 filters that this module cannot reproduce.
pub(super) const UNSUPPORTED_MARK: &str = "unsupported st2 filter: ";

/// Adds st2's filters and tests to `env`, with the Jinja2 builtins that must print
/// like Python.
pub(super) fn register(env: &mut Environment<'_>) {
    // Jinja2 builtins that must stringify like Python.
    env.add_filter("trim", jinja2::filter_trim);
    env.add_filter("string", jinja2::filter_string);
    env.add_filter("join", jinja2::filter_join);
    env.add_filter("tojson", jinja2::filter_tojson);
    env.add_filter("int", jinja2::filter_int);
    env.add_filter("float", jinja2::filter_float);
    env.add_filter("wordcount", jinja2::filter_wordcount);
    env.add_filter("truncate", jinja2::filter_truncate);
    env.add_filter("center", jinja2::filter_center);
    env.add_filter("filesizeformat", jinja2::filter_filesizeformat);
    env.add_filter("escape", jinja2::filter_escape);
    env.add_filter("e", jinja2::filter_escape);
    env.add_filter("urlencode", jinja2::filter_urlencode);
    env.add_test("in", test_in);

    // st2's filters (st2common/util/jinja.py get_filters).
    env.add_filter("to_json_string", data::filter_to_json_string);
    env.add_filter("from_json_string", data::filter_from_json_string);
    env.add_filter("json_escape", data::filter_json_escape);
    env.add_filter("to_complex", data::filter_to_complex);
    env.add_filter("use_none", data::filter_use_none);
    env.add_filter("regex_match", regex::filter_regex_match);
    env.add_filter("regex_replace", regex::filter_regex_replace);
    env.add_filter("regex_search", regex::filter_regex_search);
    env.add_filter("regex_substring", regex::filter_regex_substring);
    env.add_filter("to_human_time_from_seconds", time::filter_human_time);
    env.add_filter("version_compare", version::filter_version_compare);
    env.add_filter("version_more_than", version::filter_version_more_than);
    env.add_filter("version_less_than", version::filter_version_less_than);
    env.add_filter("version_equal", version::filter_version_equal);
    env.add_filter("version_match", version::filter_version_match);
    env.add_filter("version_bump_major", version::filter_version_bump_major);
    env.add_filter("version_bump_minor", version::filter_version_bump_minor);
    env.add_filter("version_bump_patch", version::filter_version_bump_patch);
    env.add_filter("version_strip_patch", version::filter_version_strip_patch);
    env.add_filter("basename", path::filter_basename);
    env.add_filter("dirname", path::filter_dirname);
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
}

/// The `in` test st2 adds: Python's `item in container`.
fn test_in(state: &State, item: &JValue, container: &JValue) -> Result<bool, Error> {
    py_contains(state, container, item)
}

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

/// A filter argument that must be a `str`.
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
