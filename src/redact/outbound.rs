//! The mask every outgoing chat message passes through: the [`Redactor`] with the secret
//! values of recent commands.
//!
//! The dispatcher learns a command's secret values when it runs it (the values it
//! extracted for the parameters StackStorm marks `secret: true`) and [`remember`]s them
//! before StackStorm hears of the command; each chat connection masks every message it
//! sends — acknowledgements, results, errors, replies, and the strings inside a result's
//! platform extras — with all values remembered. A value is forgotten after `keep`
//! (the time a result may take to arrive), so the list stays short; masking one
//! command's secret in another person's message is harmless, and safer.
//!
//! [`remember`]: SecretMask::remember

use std::{borrow::Cow, sync::Arc, time::Duration};

use serde_json::Value;

use super::Redactor;

/// Most secret values remembered at once (the oldest go first beyond it).
const MAX_VALUES: u64 = 10_000;

/// The redactor and the secret values to mask; shared by the dispatcher and every
/// connection.
pub struct SecretMask {
    redactor: Redactor,
    values: moka::sync::Cache<Arc<str>, ()>,
}

impl std::fmt::Debug for SecretMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        f.debug_struct("SecretMask")
            .field("redactor", &self.redactor)
            .field("values", &self.values.entry_count())
            .finish()
    }
}

impl SecretMask {
    /// Masks with `redactor`, remembering each secret value for `keep`.
    pub fn new(redactor: Redactor, keep: Duration) -> Self {
        Self {
            redactor,
            values: moka::sync::Cache::builder()
                .max_capacity(MAX_VALUES)
                .time_to_live(keep)
                .build(),
        }
    }

    /// Remembers secret values to mask from now on.
    pub fn remember(&self, values: impl IntoIterator<Item = String>) {
        for value in values {
            if !value.is_empty() {
                self.values.insert(Arc::from(value), ());
            }
        }
    }

    fn known(&self) -> Vec<Arc<str>> {
        self.values
            .iter()
            .map(|(k, ())| k.as_ref().clone())
            .collect()
    }

    /// `text` with every secret masked.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let known = self.known();
        let values: Vec<&str> = known.iter().map(|v| v.as_ref()).collect();
        self.redactor.redact(text, &values)
    }

    /// Masks every string inside `value` (a result's platform extras, Slack attachments).
    pub fn value(&self, value: &mut Value) {
        let known = self.known();
        let values: Vec<&str> = known.iter().map(|v| v.as_ref()).collect();
        fn walk(v: &mut Value, redactor: &Redactor, values: &[&str], depth: usize) {
            match v {
                Value::String(s) => {
                    if let Cow::Owned(masked) = redactor.redact(s, values) {
                        *s = masked;
                    }
                }
                Value::Array(items) if depth < 64 => {
                    items
                        .iter_mut()
                        .for_each(|i| walk(i, redactor, values, depth + 1));
                }
                Value::Object(map) if depth < 64 => {
                    map.values_mut()
                        .for_each(|i| walk(i, redactor, values, depth + 1));
                }
                _ => {}
            }
        }
        walk(value, &self.redactor, &values, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::RedactConfig;

    fn mask() -> SecretMask {
        SecretMask::new(
            Redactor::new(&RedactConfig::default()).expect("defaults compile"),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn remembered_values_are_masked_in_text_and_extras() {
        let mask = mask();
        assert_eq!(
            mask.text("password set to Hunter2-Secret"),
            "password set to Hunter2-Secret"
        );
        mask.remember(["Hunter2-Secret".to_owned(), String::new()]);
        let masked = mask.text("changed: Hunter2-Secret");
        assert!(!masked.contains("Hunter2"), "{masked}");
        let mut extra = serde_json::json!({"attachments": [{"text": "Hunter2-Secret", "n": 3}]});
        mask.value(&mut extra);
        assert!(!extra.to_string().contains("Hunter2"), "{extra}");
        assert!(!format!("{mask:?}").contains("Hunter2"));
    }

    #[test]
    fn token_shapes_are_masked_without_remembering_anything() {
        let masked = mask().text("token=ghp_abcdefghijklmnopqrstuvwxyz0123456789");
        assert!(!masked.contains("ghp_abcdef"), "{masked}");
    }
}
