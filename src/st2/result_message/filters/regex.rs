//! st2's regex filters (`st2common/st2common/expressions/functions/regex.py`):
//! `regex_match`, `regex_search`, `regex_replace` and `regex_substring`, with
//! Python's `re` semantics (`py_re.rs`).

use minijinja::value::{Rest, Tuple, ValueOrKwargs};
use minijinja::{Error, ErrorKind, State};

use super::super::env::consume_fuel_for_bytes;
use super::super::py_re::{parse_replacement, py_matches, py_regex, regex_error, ReplPiece};
use super::super::python::{py_str, type_error};
use super::super::{JValue, MAX_OUTPUT_BYTES};
use super::{arg_int, arg_str, bind};

/// The required `pattern` argument, a `str`.
fn regex_pattern(filter: &str, v: Option<&JValue>) -> Result<String, Error> {
    match v {
        Some(p) => arg_str(filter, "pattern", p),
        None => Err(type_error(format!(
            "{filter}() missing required argument: 'pattern'"
        ))),
    }
}

/// `regex_match(value, pattern, ignorecase=False)`: `re.match` (anchored at start).
pub(super) fn filter_regex_match(
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
pub(super) fn filter_regex_search(
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

/// `regex_replace(value, pattern, replacement, ignorecase=False)`: `re.sub`.
pub(super) fn filter_regex_replace(
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
    consume_fuel_for_bytes(state, out.len())?;
    Ok(JValue::from(out))
}

/// `regex_substring(value, pattern, result_index=0, ignorecase=False)`:
/// `re.findall(pattern, value)[result_index]`.
pub(super) fn filter_regex_substring(
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
