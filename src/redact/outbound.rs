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

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use serde_json::Value;

use super::Redactor;

/// Most secret values remembered at once (the oldest go first beyond it).
const MAX_VALUES: usize = 10_000;

/// One remembered value and when it is forgotten.
#[derive(Clone)]
struct Remembered {
    value: Arc<str>,
    until: Instant,
}

/// The redactor and the secret values to mask; shared by the dispatcher and every
/// connection. Reading (every outgoing message) takes no lock: the list is swapped whole
/// when a command adds values, which is rare by comparison.
pub struct SecretMask {
    redactor: Arc<Redactor>,
    keep: Duration,
    values: ArcSwap<Vec<Remembered>>,
    /// Serialises writers, so two commands' values never overwrite each other.
    writer: parking_lot::Mutex<()>,
}

impl std::fmt::Debug for SecretMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        f.debug_struct("SecretMask")
            .field("redactor", &self.redactor)
            .field("values", &self.values.load().len())
            .finish()
    }
}

impl SecretMask {
    /// Masks with `redactor`, remembering each secret value for `keep`.
    pub fn new(redactor: Arc<Redactor>, keep: Duration) -> Self {
        Self {
            redactor,
            keep,
            values: ArcSwap::from_pointee(Vec::new()),
            writer: parking_lot::Mutex::new(()),
        }
    }

    /// What replaces a secret (`[redact] mask`).
    pub fn mask_word(&self) -> &str {
        self.redactor.mask()
    }

    /// Remembers secret values to mask from now on (for `keep`; a value remembered again
    /// is kept longer).
    pub fn remember(&self, values: impl IntoIterator<Item = String>) {
        let fresh: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        if fresh.is_empty() {
            return;
        }
        let _writing = self.writer.lock();
        let now = Instant::now();
        let until = now + self.keep;
        let mut next: Vec<Remembered> = self
            .values
            .load()
            .iter()
            .filter(|r| r.until > now && !fresh.iter().any(|v| **v == *r.value))
            .cloned()
            .collect();
        next.extend(fresh.into_iter().map(|v| Remembered {
            value: Arc::from(v),
            until,
        }));
        if next.len() > MAX_VALUES {
            next.drain(..next.len() - MAX_VALUES);
        }
        self.values.store(Arc::new(next));
    }

    /// Runs `f` with the values remembered now.
    fn with_known<T>(&self, f: impl FnOnce(&[&str]) -> T) -> T {
        let list = self.values.load();
        if list.is_empty() {
            return f(&[]);
        }
        let now = Instant::now();
        let values: Vec<&str> = list
            .iter()
            .filter(|r| r.until > now)
            .map(|r| r.value.as_ref())
            .collect();
        f(&values)
    }

    /// `text` with every secret masked.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.with_known(|values| self.redactor.redact(text, values))
    }

    /// Masks every string inside `value` (a result's platform extras, Slack attachments).
    pub fn value(&self, value: &mut Value) {
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
        self.with_known(|values| walk(value, &self.redactor, values, 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::RedactConfig;

    fn mask() -> SecretMask {
        SecretMask::new(
            Arc::new(Redactor::new(&RedactConfig::default()).expect("defaults compile")),
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
    fn values_are_forgotten_after_their_time() {
        let mask = SecretMask::new(
            Arc::new(Redactor::new(&RedactConfig::default()).expect("defaults compile")),
            Duration::ZERO,
        );
        mask.remember(["Hunter2-Secret".to_owned()]);
        assert_eq!(mask.text("Hunter2-Secret"), "Hunter2-Secret");
        // A newer remember prunes what expired.
        mask.remember(["Other-Secret".to_owned()]);
        assert!(mask.values.load().len() <= 1);
    }

    #[test]
    fn token_shapes_are_masked_without_remembering_anything() {
        let masked = mask().text("token=ghp_abcdefghijklmnopqrstuvwxyz0123456789");
        assert!(!masked.contains("ghp_abcdef"), "{masked}");
    }
}
