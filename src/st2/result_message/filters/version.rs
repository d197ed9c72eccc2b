//! st2's version filters (`st2common/st2common/expressions/functions/version.py`)
//! with python-semver 3's semantics: parsing (`Version.parse`), comparison
//! (`Version.compare`, `Version.match`) and bumps.

use minijinja::value::ValueKind;
use minijinja::{Error, State};

use super::super::python::{
    deny_strict_undefined, py_str, py_str_repr, py_type, type_error, value_error,
};
use super::super::JValue;

/// A semantic version, as python-semver's `Version` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SemVer {
    /// Major part.
    major: u128,
    /// Minor part.
    minor: u128,
    /// Patch part.
    patch: u128,
    /// Text after `-`, if any.
    prerelease: Option<String>,
    /// Text after `+`, if any (ignored when comparing).
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

/// python-semver's error for text that is not a version.
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

/// Whether a prerelease or build identifier is valid: alphanumerics and `-`;
/// numeric prerelease identifiers may not have a leading zero.
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

/// The filter's input version: a string, parsed.
fn semver_arg(state: &State, value: &JValue) -> Result<SemVer, Error> {
    deny_strict_undefined(state, value)?;
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

/// An optional prerelease/build part given to `Version()`: `None` or its `str()`.
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
    /// All digits.
    Num(u128),
    /// Anything else.
    Text(&'a str),
}

/// The dot-separated parts of a prerelease string.
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

/// `Version.parse(value).compare(other)`.
fn version_compare(state: &State, value: &JValue, other: &JValue) -> Result<i64, Error> {
    let a = semver_arg(state, value)?;
    let b = semver_other(state, other)?;
    Ok(semver_compare(&a, &b))
}

/// `version_compare(value, pattern)`.
pub(super) fn filter_version_compare(
    state: &State,
    value: JValue,
    other: JValue,
) -> Result<JValue, Error> {
    version_compare(state, &value, &other).map(JValue::from)
}

/// `version_more_than(value, pattern)`.
pub(super) fn filter_version_more_than(
    state: &State,
    value: JValue,
    other: JValue,
) -> Result<JValue, Error> {
    Ok(JValue::from(version_compare(state, &value, &other)? == 1))
}

/// `version_less_than(value, pattern)`.
pub(super) fn filter_version_less_than(
    state: &State,
    value: JValue,
    other: JValue,
) -> Result<JValue, Error> {
    Ok(JValue::from(version_compare(state, &value, &other)? == -1))
}

/// `version_equal(value, pattern)`.
pub(super) fn filter_version_equal(
    state: &State,
    value: JValue,
    other: JValue,
) -> Result<JValue, Error> {
    Ok(JValue::from(version_compare(state, &value, &other)? == 0))
}

/// `version_match(value, pattern)`: `Version.match` with `<`, `>`, `<=`, `>=`,
/// `==`, `!=` or a bare version.
pub(super) fn filter_version_match(
    state: &State,
    value: JValue,
    pattern: JValue,
) -> Result<JValue, Error> {
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

/// `Version.bump_major`/`bump_minor`/`bump_patch` (`which` 0, 1 or 2): the
/// bumped part plus one, lower parts zero, prerelease and build dropped.
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
pub(super) fn filter_version_bump_major(state: &State, value: JValue) -> Result<JValue, Error> {
    bump(state, &value, 0)
}

/// `version_bump_minor(value)`.
pub(super) fn filter_version_bump_minor(state: &State, value: JValue) -> Result<JValue, Error> {
    bump(state, &value, 1)
}

/// `version_bump_patch(value)`.
pub(super) fn filter_version_bump_patch(state: &State, value: JValue) -> Result<JValue, Error> {
    bump(state, &value, 2)
}

/// `version_strip_patch(value)`: `major.minor`.
pub(super) fn filter_version_strip_patch(state: &State, value: JValue) -> Result<JValue, Error> {
    let v = semver_arg(state, &value)?;
    Ok(JValue::from(format!("{}.{}", v.major, v.minor)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
