//! Jinja2 builtin filters (`jinja2/filters.py`) that minijinja lacks or that
//! print values differently, written with Jinja2's behaviour: values are printed
//! with Python's `str()`, floats included. No StackStorm source: st2 uses Jinja2's
//! own builtins, so templates that work in st2 expect these.

use std::fmt::Write as _;

use minijinja::value::{Rest, ValueKind, ValueOrKwargs};
use minijinja::{Error, ErrorKind, State};

use super::super::py_json::{py_json_dumps, JsonOptions};
use super::super::python::{
    deny_strict_undefined, overflow_error, py_float_of, py_parse_int, py_space, py_str, py_type,
    strict, undefined_error, value_error,
};
use super::super::{JValue, MAX_OUTPUT_BYTES};
use super::{arg_int, arg_str, bind, json_indent};

/// Jinja2's `trim(value, chars=None)`: `str(value).strip(chars)`.
pub(super) fn filter_trim(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
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
pub(super) fn filter_string(state: &State, value: JValue) -> Result<JValue, Error> {
    if value.kind() == ValueKind::String {
        return Ok(value);
    }
    py_str(state, &value).map(JValue::from)
}

/// Jinja2's `join(value, d='', attribute=None)` with items printed by `str()`.
pub(super) fn filter_join(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
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
pub(super) fn filter_tojson(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
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

/// Jinja2's `int(value, default=0, base=10)`.
pub(super) fn filter_int(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
    let args = bind("int", &["default", "base"], rest)?;
    let default = args[0].clone().unwrap_or_else(|| JValue::from(0));
    let base = match &args[1] {
        Some(b) => u32::try_from(arg_int("int", "base", b)?)
            .ok()
            .filter(|b| (2..=36).contains(b))
            .ok_or_else(|| value_error("int() base must be >= 2 and <= 36, or 0"))?,
        None => 10,
    };
    deny_strict_undefined(state, &value)?;
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
        Some(f) if f.is_infinite() || f.abs() >= 1.7e38 => {
            Err(overflow_error("cannot convert float infinity to integer"))
        }
        #[allow(clippy::cast_possible_truncation)]
        Some(f) => Ok(JValue::from(f.trunc() as i128)),
        None => Ok(default),
    }
}

/// Jinja2's `float(value, default=0.0)`.
pub(super) fn filter_float(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
    let args = bind("float", &["default"], rest)?;
    deny_strict_undefined(state, &value)?;
    Ok(match py_float_of(&value) {
        Some(f) => JValue::from(f),
        None => args[0].clone().unwrap_or_else(|| JValue::from(0.0)),
    })
}

/// Jinja2's `wordcount(s)`: the number of `\w+` runs in `str(s)`.
pub(super) fn filter_wordcount(state: &State, value: JValue) -> Result<JValue, Error> {
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
pub(super) fn filter_truncate(
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
pub(super) fn filter_center(
    state: &State,
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
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
pub(super) fn filter_filesizeformat(
    value: JValue,
    rest: Rest<ValueOrKwargs>,
) -> Result<JValue, Error> {
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
pub(super) fn filter_escape(state: &State, value: JValue) -> Result<JValue, Error> {
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
pub(super) fn filter_urlencode(state: &State, value: JValue) -> Result<JValue, Error> {
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
