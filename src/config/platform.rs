//! What configuration knows of chat platforms: only this interface. Each `[[chat]]` table
//! is read by its platform (through [`Platforms`], which `crate::backends::registry`
//! implements and the caller passes in), so configuration imports no platform code and a
//! new platform needs no change here.

use std::{any::Any, fmt, sync::Arc};

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{renamed::Rename, validate::Problem};

/// A platform's validated settings for one connection.
pub trait PlatformSettings: fmt::Debug + Send + Sync + Any {
    /// The `backend = "…"` name.
    fn kind(&self) -> &'static str;
    /// The settings as their own type (for the platform that made them).
    fn as_any(&self) -> &dyn Any;
}

/// The chat platforms this build knows.
pub trait Platforms {
    /// Their `backend = "…"` names.
    fn kinds(&self) -> Vec<&'static str>;
    /// Keys of platform `kind` that were renamed, `(old, canonical)`.
    fn renamed_keys(&self, kind: &str) -> &'static [Rename];
    /// Whether a configuration may have only one connection of `kind` (the console: there
    /// is one standard input).
    fn only_one(&self, kind: &str) -> bool;
    /// Reads `table` as platform `kind`'s settings; `None` for an unknown `kind` (the
    /// caller reports it) and `Some(None)` when the table has problems (reported in it).
    fn parse(&self, kind: &str, table: &mut ChatTable)
        -> Option<Option<Arc<dyn PlatformSettings>>>;
}

/// One `[[chat]]` table as a platform reads it: its keys (without `name` and `backend`),
/// and the problems found in it, each under `chat[<n>].<key>`.
pub struct ChatTable {
    key: String,
    map: Map<String, Value>,
    problems: Vec<Problem>,
}

impl ChatTable {
    /// The table `chat[<n>]` (`key`) with these keys.
    pub(super) fn new(key: String, map: Map<String, Value>) -> Self {
        Self {
            key,
            map,
            problems: Vec::new(),
        }
    }

    /// The problems found, for the configuration's list.
    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// The table as `T`; a shape error (unknown key, wrong type) is one problem for the
    /// whole table.
    pub fn deserialize<T: DeserializeOwned>(&mut self) -> Option<T> {
        let map = std::mem::take(&mut self.map);
        serde_json::from_value(Value::Object(map))
            .map_err(|e| {
                self.problems
                    .push(Problem::new(self.key.clone(), e.to_string()))
            })
            .ok()
    }

    /// A problem with the table's `field`.
    pub fn problem(&mut self, field: &str, reason: impl Into<String>) {
        self.problems
            .push(Problem::new(format!("{}.{field}", self.key), reason));
    }

    /// A problem with the table as a whole.
    pub fn table_problem(&mut self, reason: impl Into<String>) {
        self.problems.push(Problem::new(self.key.clone(), reason));
    }

    /// Reports a platform's own field checks; true when there were none.
    pub fn check(&mut self, problems: Vec<(&'static str, String)>) -> bool {
        let clean = problems.is_empty();
        for (field, reason) in problems {
            self.problem(field, reason);
        }
        clean
    }

    /// A secret given inline (`field`) or in a file (`field_file`, its first line), never
    /// both; `None` (with a problem when something was wrong) otherwise.
    pub fn secret(
        &mut self,
        field: &str,
        inline: Option<SecretString>,
        file: &str,
    ) -> Option<SecretString> {
        let key = format!("{}.{field}", self.key);
        super::validate::read_secret(&key, inline, file)
            .map_err(|p| self.problems.push(p))
            .ok()
            .flatten()
    }
}
