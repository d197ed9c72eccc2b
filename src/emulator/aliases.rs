//! The emulator's own model of st2's action aliases: what `ActionAliasDB` holds
//! (`st2common/models/db/actionalias.py`) and what its API schema lets in
//! (`ActionAliasAPI`, `st2common/models/api/action.py`), in "DB order".
//!
//! **DB order.** st2 queries aliases without a sort (`ActionAlias.query(...)`,
//! `ActionAlias.get_by_name`), so MongoDB returns them in natural order: the order
//! they were inserted, for a collection nobody compacted. The emulator models that
//! order as the order of [`super::EmulatorConfig::aliases`] (or of the list given to
//! [`super::Emulator::set_aliases`]). Only list endpoints sort (`pack`, then `name`).
//!
//! Items that st2 would not have registered (not an object, no string `name`, `pack`
//! or `action_ref`, `formats` not a list of strings and format objects) are served
//! verbatim by `GET /api/v1/actionalias` but are not in the "DB": they are never
//! matched, found by name or executed.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::util::stable_object_id;

/// One alias as st2 stores it.
#[derive(Debug, Clone)]
pub(crate) struct Alias {
    /// The item exactly as served.
    pub raw: Value,
    /// Its Mongo id (`id`, or one derived from the ref).
    pub id: String,
    pub name: String,
    pub pack: String,
    /// `pack.name` (st2 computes it; a served `ref` is ignored).
    pub reference: String,
    pub enabled: bool,
    pub action_ref: String,
    pub description: Option<String>,
    /// The `formats` items (strings and objects), as stored.
    pub formats: Vec<Value>,
    pub ack: Option<Map<String, Value>>,
    pub result: Option<Map<String, Value>>,
    pub immutable_parameters: Option<Map<String, Value>>,
}

impl Alias {
    /// The alias st2 would have registered from `item`, or why it would not.
    pub(crate) fn from_json(item: &Value) -> Result<Alias, String> {
        let Value::Object(m) = item else {
            return Err("not an object".into());
        };
        let text = |k: &str| -> Result<String, String> {
            match m.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(format!("'{k}' is not a string")),
            }
        };
        let name = text("name")?;
        let pack = text("pack")?;
        let action_ref = text("action_ref")?;
        let enabled = match m.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("'enabled' is not a boolean".into()),
        };
        let formats = match m.get("formats") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                for f in items {
                    valid_format(f)?;
                }
                items.clone()
            }
            Some(_) => return Err("'formats' is not a list".into()),
        };
        let object = |k: &str| -> Result<Option<Map<String, Value>>, String> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(o)) => Ok(Some(o.clone())),
                Some(_) => Err(format!("'{k}' is not an object")),
            }
        };
        let reference = format!("{pack}.{name}");
        let id = match m.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => stable_object_id(&reference),
        };
        Ok(Alias {
            raw: item.clone(),
            id,
            description: m
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ack: object("ack")?,
            result: object("result")?,
            immutable_parameters: object("immutable_parameters")?,
            name,
            pack,
            reference,
            enabled,
            action_ref,
            formats,
        })
    }

    /// `ActionAliasDB.get_format_strings()`: plain strings, and the items of every
    /// truthy `representation` (Python's `list.extend`: a bare-string representation
    /// adds its characters, one by one). An object without a representation adds
    /// itself, which no format string can equal (left out here).
    pub(crate) fn format_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.formats {
            match f {
                Value::String(s) => out.push(s.clone()),
                Value::Object(o) => match o.get("representation") {
                    Some(Value::Array(items)) if !items.is_empty() => {
                        out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    Some(Value::String(s)) if !s.is_empty() => {
                        out.extend(s.chars().map(String::from));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        out
    }
}

/// A format item as `ActionAliasAPI`'s schema accepts it: a string, or an object whose
/// `display` is a string and whose `representation` is a list of strings (a bare
/// string is tolerated: `normalise_alias_format_string` handles it).
fn valid_format(f: &Value) -> Result<(), String> {
    match f {
        Value::String(_) => Ok(()),
        Value::Object(o) => {
            match o.get("display") {
                None | Some(Value::String(_)) => {}
                Some(_) => return Err("a format's 'display' is not a string".into()),
            }
            match o.get("representation") {
                None | Some(Value::String(_)) => Ok(()),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
                Some(_) => Err("a format's 'representation' is not a list of strings".into()),
            }
        }
        _ => Err("a format is neither a string nor an object".into()),
    }
}

/// The aliases: the served items, verbatim, and the ones st2 would hold, in DB order.
pub(crate) struct AliasSet {
    pub raw: Vec<Value>,
    pub db: Vec<Arc<Alias>>,
    by_id: HashMap<String, usize>,
}

impl AliasSet {
    pub(crate) fn build(raw: Vec<Value>) -> AliasSet {
        let mut db: Vec<Arc<Alias>> = Vec::new();
        let mut by_id = HashMap::new();
        for item in &raw {
            match Alias::from_json(item) {
                Ok(a) => {
                    // `pack` is `unique_with` `name`: a second one would not register.
                    if db.iter().any(|b| b.reference == a.reference) {
                        tracing::debug!(alias = %a.reference, "st2 emulator: duplicate alias not registered");
                        continue;
                    }
                    by_id.entry(a.id.clone()).or_insert(db.len());
                    db.push(Arc::new(a));
                }
                Err(why) => {
                    tracing::debug!(problem = %why, "st2 emulator: alias item st2 would not register");
                }
            }
        }
        AliasSet { raw, db, by_id }
    }

    /// `ActionAlias.get_by_name(name)`: the first alias in DB order with that name,
    /// whatever its pack, disabled ones included.
    pub(crate) fn get_by_name(&self, name: &str) -> Option<Arc<Alias>> {
        self.db.iter().find(|a| a.name == name).cloned()
    }

    /// The alias with this id (`format_execution_result` looks it up by id).
    pub(crate) fn get_by_id(&self, id: &str) -> Option<Arc<Alias>> {
        self.by_id.get(id).and_then(|i| self.db.get(*i)).cloned()
    }

    /// The DB's aliases sorted as list endpoints sort them (`pack`, then `name`).
    pub(crate) fn sorted(&self) -> Vec<Arc<Alias>> {
        let mut v = self.db.clone();
        v.sort_by(|a, b| (&a.pack, &a.name).cmp(&(&b.pack, &b.name)));
        v
    }
}

/// One entry of `GET /api/v1/actionalias/help`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HelpEntry {
    pub pack: String,
    pub display: String,
    pub description: String,
}

/// Why `generate_helpstring_result` failed (both are HTTP 500 on st2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HelpError {
    /// The filter is not a valid Python regex (`re.error`).
    BadFilter(String),
    /// An alias on the page has no `description`: st2 rebuilds `ActionAliasAPI` objects
    /// from the list's JSON, which leaves out unset fields, and `alias.description` then
    /// raises `AttributeError`.
    NoDescription(String),
}

/// st2's `generate_helpstring_result` (`st2common/util/actionalias_helpstring.py`)
/// over `aliases` (sorted by pack and name, as the controller's `_get_all` gives them):
/// `(available, entries)`.
pub(crate) fn help(
    aliases: &[Arc<Alias>],
    filter: Option<&str>,
    pack: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(usize, Vec<HelpEntry>), HelpError> {
    // re.search(filter or "", display, flags=re.IGNORECASE)
    let re =
        super::pyre::compile(filter.unwrap_or(""), "i").map_err(|e| HelpError::BadFilter(e.0))?;
    let mut count: usize = 0;
    let mut matches = Vec::new();
    let as_count = |c: usize| i64::try_from(c).unwrap_or(i64::MAX);
    for alias in aliases {
        if !alias.enabled {
            continue;
        }
        if pack.is_some_and(|p| !p.is_empty() && p != alias.pack) {
            continue;
        }
        for f in &alias.formats {
            let display = match f {
                Value::String(s) => Some(s.as_str()),
                Value::Object(o) => o.get("display").and_then(Value::as_str),
                _ => None,
            };
            let Some(display) = display.filter(|d| !d.is_empty()) else {
                continue;
            };
            if !re.is_match(display).unwrap_or(false) {
                continue;
            }
            let c = as_count(count);
            let skip = (offset == 0 && limit > 0 && c >= limit)
                || (offset > 0 && limit == 0 && c < offset)
                || (offset > 0 && limit > 0 && (c < offset || c >= offset + limit));
            if skip {
                count += 1;
                continue;
            }
            let Some(description) = alias.description.clone() else {
                return Err(HelpError::NoDescription(alias.reference.clone()));
            };
            matches.push(HelpEntry {
                pack: alias.pack.clone(),
                display: display.to_string(),
                description,
            });
            count += 1;
        }
    }
    Ok((count, matches))
}
