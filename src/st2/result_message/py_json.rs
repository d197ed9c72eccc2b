//! Python's `json.dumps` (with `ensure_ascii=True`), as st2's JSON filters
//! (`st2common/expressions/functions/data.py`: `to_json_string`, `to_complex`,
//! `json_escape`) and Jinja2's `tojson` call it: separators, `indent`,
//! `sort_keys`, Python's float spelling with `NaN`/`Infinity`, and Python's rules
//! for keys that are not strings.

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{Error, State};

use super::env::consume_fuel_for_bytes;
use super::python::{py_float, py_type, type_error, value_error};
use super::{JValue, MAX_DEPTH};

/// The `json.dumps` arguments the filters pass.
pub(super) struct JsonOptions {
    /// Between items (`separators[0]`).
    pub(super) item_sep: String,
    /// Between a key and its value (`separators[1]`).
    pub(super) key_sep: String,
    /// One level of indentation; `None` keeps everything on one line.
    pub(super) indent: Option<String>,
    /// `sort_keys`.
    pub(super) sort_keys: bool,
}

/// `json.dumps`' defaults: `", "` and `": "`, no indent, keys in their order.
pub(super) fn default_json_options() -> JsonOptions {
    JsonOptions {
        item_sep: ", ".to_string(),
        key_sep: ": ".to_string(),
        indent: None,
        sort_keys: false,
    }
}

/// Python's `json.dumps(value, ...)` with `ensure_ascii=True`.
pub(super) fn py_json_dumps(
    state: &State,
    value: &JValue,
    opts: &JsonOptions,
) -> Result<String, Error> {
    let mut out = String::new();
    write_json(state, &mut out, value, opts, 0)?;
    consume_fuel_for_bytes(state, out.len())?;
    Ok(out)
}

/// A mapping key as `json.dumps` writes it: strings as they are, `true`, `false`,
/// `null` and numbers spelt as JSON; other keys are a `TypeError`.
fn json_key(state: &State, key: &JValue) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_string()),
        ValueKind::None => Ok("null".to_string()),
        ValueKind::Number => {
            let mut s = String::new();
            write_json(state, &mut s, key, &default_json_options(), 0)?;
            Ok(s)
        }
        _ => Err(type_error(format!(
            "keys must be str, int, float, bool or None, not {}",
            py_type(key)
        ))),
    }
}

/// A JSON string with `ensure_ascii=True`: everything but printable ASCII as
/// `\uXXXX` escapes (surrogate pairs beyond the BMP).
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

/// The line break and indentation before an item at `level`, when indenting.
fn json_newline(out: &mut String, opts: &JsonOptions, level: usize) {
    if let Some(indent) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(indent);
        }
    }
}

/// Appends `value` as JSON at nesting `level`; deeper than `MAX_DEPTH` fails the
/// way Python's circular-reference check does.
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
