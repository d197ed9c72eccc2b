//! Python as Jinja2 shows it to st2's templates: what `{{ value }}` prints
//! (`str()`, with `repr()` inside containers, floats spelt like Python's),
//! `str.isprintable` and `str.isspace`, truthiness, type names and exception
//! texts, `int()`/`float()` of strings, and the `in` and `==` operators.
//!
//! No StackStorm source of its own: this is CPython's and Jinja2's behaviour
//! (undefined values as `jinja2.Undefined`/`StrictUndefined`), which every st2
//! template and filter relies on.

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, State, UndefinedBehavior};
use serde_json::Value;

use super::{to_jvalue, JValue, MAX_DEPTH};

// ---------------------------------------------------------------------------
// Undefined values (`jinja2.Undefined` and `StrictUndefined`)
// ---------------------------------------------------------------------------

/// Whether the environment is st2's strict one (`StrictUndefined`).
pub(super) fn strict(state: &State) -> bool {
    matches!(
        state.undefined_behavior(),
        UndefinedBehavior::Strict | UndefinedBehavior::SemiStrict
    )
}

/// The error `StrictUndefined` raises when an undefined value is used.
pub(super) fn undefined_error() -> Error {
    Error::new(ErrorKind::UndefinedError, "undefined value")
}

/// Fails with [`undefined_error`] when `value` is undefined in the strict
/// environment; passes otherwise.
pub(super) fn deny_strict_undefined(state: &State, value: &JValue) -> Result<(), Error> {
    if value.is_undefined() && strict(state) {
        return Err(undefined_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// `str()` and `repr()`
// ---------------------------------------------------------------------------

/// Python's `str()` of a template value (what Jinja2 prints for `{{ value }}`).
/// Undefined prints as an empty string, or is an error in the strict environment.
pub(super) fn py_str(state: &State, value: &JValue) -> Result<String, Error> {
    deny_strict_undefined(state, value)?;
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
pub(super) fn py_float(f: f64) -> String {
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
pub(super) fn py_str_repr(s: &str) -> String {
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
pub(super) fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str()` of a JSON value (for `render_values` of scalars and the
/// fallback summary).
pub(super) fn json_py_str(v: &Value) -> String {
    let mut out = String::new();
    let _ = write_py(&mut out, &to_jvalue(v), false, 0);
    out
}

// ---------------------------------------------------------------------------
// Truthiness, type names and exceptions
// ---------------------------------------------------------------------------

/// Python truthiness of a JSON value.
pub(crate) fn json_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's type name of a JSON value (for error texts).
pub(super) fn json_type_name(v: &Value) -> &'static str {
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
pub(super) fn py_type(v: &JValue) -> &'static str {
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

/// Python's `TypeError` with `msg`.
pub(super) fn type_error(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("TypeError: {}", msg.into()),
    )
}

/// Python's `ValueError` with `msg`.
pub(super) fn value_error(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("ValueError: {}", msg.into()),
    )
}

/// Python's `OverflowError` with `msg`.
pub(super) fn overflow_error(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("OverflowError: {}", msg.into()),
    )
}

// ---------------------------------------------------------------------------
// `int()` and `float()` of strings
// ---------------------------------------------------------------------------

/// Python's `int(text, base)` for a string (`' 42 '`, `'-1_000'`, `'0x1f'` with base 16).
pub(super) fn py_parse_int(text: &str, base: u32) -> Option<i128> {
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
pub(super) fn py_float_of(value: &JValue) -> Option<f64> {
    match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => py_parse_float(value.as_str().unwrap_or_default()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// `in` and `==`
// ---------------------------------------------------------------------------

/// Python's `item in container`.
pub(super) fn py_contains(state: &State, container: &JValue, item: &JValue) -> Result<bool, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
