//! st2's time filter (`st2common/st2common/expressions/functions/time.py`):
//! `to_human_time_from_seconds`, quirks included.

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind};

use super::super::python::{overflow_error, py_float, py_type, value_error};
use super::super::JValue;

/// `to_human_time_from_seconds(seconds)`, with st2's quirks: values under one
/// second print as `<seconds>μs`, floats are rounded half to even, and the day
/// count is the day of the month of `datetime(1, 1, 1) + timedelta(seconds)`
/// minus one (months are dropped).
pub(super) fn filter_human_time(value: JValue) -> Result<JValue, Error> {
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
                return Err(overflow_error("cannot convert float infinity to integer"));
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

/// Whole seconds (at least 1) as `<y>y<d>d<h>h<m>m<s>s`, from the first part
/// that is not zero.
fn human_time_parts(seconds: i128) -> Result<String, Error> {
    let overflow = || overflow_error("date value out of range");
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
