//! st2's path filters (`st2common/st2common/expressions/functions/path.py`):
//! `basename` and `dirname`, as Python's POSIX `os.path` computes them.

use minijinja::value::ValueKind;
use minijinja::{Error, State};

use super::super::python::{deny_strict_undefined, py_type, type_error};
use super::super::JValue;

/// The filter's input path: a string, as `os.path` requires.
fn path_arg(state: &State, filter: &str, value: &JValue) -> Result<String, Error> {
    deny_strict_undefined(state, value)?;
    match value.as_str() {
        Some(s) if value.kind() == ValueKind::String => Ok(s.to_string()),
        _ => Err(type_error(format!(
            "{filter}: expected str, bytes or os.PathLike object, not {}",
            py_type(value)
        ))),
    }
}

/// `basename(path)`: `os.path.basename` (POSIX).
pub(super) fn filter_basename(state: &State, value: JValue) -> Result<JValue, Error> {
    let p = path_arg(state, "basename", &value)?;
    let start = p.rfind('/').map_or(0, |i| i + 1);
    Ok(JValue::from(p[start..].to_string()))
}

/// `dirname(path)`: `os.path.dirname` (POSIX).
pub(super) fn filter_dirname(state: &State, value: JValue) -> Result<JValue, Error> {
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
