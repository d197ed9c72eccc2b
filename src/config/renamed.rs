//! `[[chat]]` keys that were renamed so that one name means one thing on every platform.
//!
//! The canonical names: `queue_size` (outbound messages kept while disconnected or
//! rate-limited), `send_interval_ms` (least gap between two sends), `max_message_length` (a
//! limit in characters), `max_message_bytes` (a limit in bytes: Matrix, XMPP), and
//! `reconnect_initial_ms` / `reconnect_max_ms` (reconnect backoff). Each platform lists its old
//! names in its `config.rs` (`RENAMED_KEYS`). An old name still loads — its table is rewritten
//! to the new name before it is deserialized, so serde never sees which one was used — and is
//! recorded as a [`Deprecation`], which `check-config` prints as a warning. Both names in one
//! table is an error naming both.

use std::fmt;

use serde_json::{Map, Value};

/// A `[[chat]]` key given under its old name: it still works, `check-config` warns about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    /// The connection's `name`.
    pub connection: String,
    /// The key as written in the file.
    pub old: &'static str,
    /// The name to write instead.
    pub new: &'static str,
}

impl fmt::Display for Deprecation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[[chat]] `{}`: `{}` is deprecated, use `{}` (same meaning; the old name still works for now)",
            self.connection, self.old, self.new
        )
    }
}

/// A renamed key, `(old, canonical)`.
pub type Rename = (&'static str, &'static str);

/// Rewrites old key names in `table` to their canonical names. Returns the `(old, new)` pairs
/// that were rewritten, or, for every key given under both names, `(old key, problem)`.
pub(super) fn canonicalize(
    table: &mut Map<String, Value>,
    renamed: &'static [Rename],
) -> Result<Vec<Rename>, Vec<(&'static str, String)>> {
    let mut used = Vec::new();
    let mut both = Vec::new();
    for &(old, new) in renamed {
        if !table.contains_key(old) {
            continue;
        }
        if table.contains_key(new) {
            both.push((
                old,
                format!("`{old}` and `{new}` are the same setting (`{old}` is the old name): keep only `{new}`"),
            ));
        } else if let Some(v) = table.remove(old) {
            table.insert(new.to_owned(), v);
            used.push((old, new));
        }
    }
    if both.is_empty() {
        Ok(used)
    } else {
        Err(both)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn old_names_are_rewritten_and_both_at_once_is_refused() {
        let renamed: &[Rename] = &[("queue_lines", "queue_size")];
        let mut t = map(json!({"queue_lines": 7, "nick": "bot"}));
        assert_eq!(
            canonicalize(&mut t, renamed).unwrap(),
            vec![("queue_lines", "queue_size")]
        );
        assert_eq!(t, map(json!({"queue_size": 7, "nick": "bot"})));
        let mut t = map(json!({"queue_lines": 7, "queue_size": 8}));
        let e = canonicalize(&mut t, renamed).unwrap_err();
        assert_eq!(e[0].0, "queue_lines");
        assert!(e[0].1.contains("`queue_size`"), "{e:?}");
    }
}
