//! st2's data filters (`st2common/st2common/expressions/functions/data.py`):
//! `to_json_string`, `to_complex`, `json_escape`, `from_json_string` and
//! `use_none`. `to_yaml_string`, `from_yaml_string` and `jsonpath_query` are not
//! reproduced (see `filters/mod.rs`).

use minijinja::value::{Rest, ValueKind, ValueOrKwargs};
use minijinja::{Error, ErrorKind, State};
use serde_json::Value;

use super::super::env::consume_fuel_for_bytes;
use super::super::py_json::{default_json_options, py_json_dumps, JsonOptions};
use super::super::python::{py_str, value_error};
use super::super::{to_jvalue, JValue};
use super::{bind, json_indent};

/// `to_json_string(value, indent=None, sort_keys=False, separators=(",", ": "))`.
pub(super) fn filter_to_json_string(
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

/// `to_complex(value)`: `json.dumps(value)`.
pub(super) fn filter_to_complex(state: &State, value: JValue) -> Result<JValue, Error> {
    py_json_dumps(state, &value, &default_json_options()).map(JValue::from)
}

/// `json_escape(value)`: `json.dumps(value).strip('"')`.
pub(super) fn filter_json_escape(state: &State, value: JValue) -> Result<JValue, Error> {
    let text = py_json_dumps(state, &value, &default_json_options())?;
    Ok(JValue::from(text.trim_matches('"').to_string()))
}

/// `from_json_string(value)`: parse `str(value)` as JSON (strict, like orjson).
pub(super) fn filter_from_json_string(state: &State, value: JValue) -> Result<JValue, Error> {
    let text = py_str(state, &value)?;
    consume_fuel_for_bytes(state, text.len())?;
    let parsed: Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("JSONDecodeError: {e}")))?;
    Ok(to_jvalue(&parsed))
}

/// What st2's `use_none` filter turns `None` into.
const NONE_MAGIC_VALUE: &str = "%*****__%NONE%__*****%";

/// `use_none(value)`: `None` becomes st2's magic string.
pub(super) fn filter_use_none(value: JValue) -> JValue {
    if value.is_none() {
        JValue::from(NONE_MAGIC_VALUE)
    } else {
        value
    }
}
