//! Wire model of the items returned by st2's `GET /api/v1/actionalias`.
//!
//! st2 leaves null fields out of its responses, hand-written alias files (tests, the
//! `stormbridge match --aliases FILE` CLI) often omit more, and newer st2 versions may
//! add fields. So deserialisation is tolerant: unknown fields are ignored, `null` is
//! treated like an absent field everywhere, and only `name`, `pack`, `action_ref` are
//! required. One malformed item never spoils a whole list: see [`parse_alias_list`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One action alias, as st2 serves it (`ActionAliasAPI`).
///
/// Deserialisation goes through a lenient intermediate form:
/// * `ref` may be absent or null (common in hand-written JSON); it is then derived as
///   `"<pack>.<name>"`, which is exactly how st2 builds it.
/// * `enabled` absent or null means `true` (st2's default).
/// * `formats` absent or null means no formats.
///
/// Serialisation produces st2's shape again (`ref`, nulls left out), so an emulator can
/// hand these objects back. Read-only fields st2 derives (`uid`,
/// `action_alias:<pack>:<name>`) and `metadata_file` are not kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawActionAlias")]
pub struct ActionAlias {
    /// Mongo object id; absent in hand-written files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Alias name, unique only within its pack.
    pub name: String,
    /// Pack the alias belongs to.
    pub pack: String,
    /// `pack.name`; st2's key for the alias.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Free text shown in help.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Disabled aliases never match and are left out of help.
    pub enabled: bool,
    /// The action the alias runs.
    pub action_ref: String,
    /// The alias's formats: patterns and help strings.
    pub formats: Vec<AliasFormat>,
    /// Acknowledgement settings (`ack.enabled`, `ack.append_url` are client hints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<Box<AckSpec>>,
    /// Result-posting settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<ResultSpec>>,
    /// Free-form data for chat adapters (e.g. `extra.security.twofactor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<Value>>,
    /// Parameters the server adds (Jinja allowed); a command may not override them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable_parameters: Option<Box<Value>>,
}

impl Default for ActionAlias {
    fn default() -> Self {
        ActionAlias {
            id: None,
            name: String::new(),
            pack: String::new(),
            reference: String::new(),
            description: None,
            enabled: true,
            action_ref: String::new(),
            formats: Vec::new(),
            ack: None,
            result: None,
            extra: None,
            immutable_parameters: None,
        }
    }
}

/// One entry of an alias's `formats` list: a plain string (both help text and
/// pattern) or an object separating the help text (`display`) from the patterns
/// (`representation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AliasFormat {
    /// A plain string: it is the display and the only representation.
    Plain(String),
    /// The object form (boxed: a plain string is the common case, and the object is
    /// three times its size).
    Object(Box<FormatObject>),
}

/// The object form of a format entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FormatObject {
    /// Help text only; never matched against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Patterns; st2 accepts a bare string as a one-item list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representation: Option<Representation>,
    /// Extract one parameter set per match (st2's `finditer` mode). Null means false.
    #[serde(
        default,
        deserialize_with = "null_as_false",
        skip_serializing_if = "is_false"
    )]
    pub match_multiple: bool,
}

/// `representation`: st2 accepts a list of strings or one bare string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Representation {
    /// A bare string, treated as a one-item list.
    One(String),
    /// The documented list form.
    Many(Vec<String>),
}

/// `ack` settings of an alias.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AckSpec {
    /// Client hint: whether to post the acknowledgement at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Jinja template the server renders into `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Jinja values the server renders into `extra`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<Value>>,
    /// Client hint: append the execution's web URL to the acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append_url: Option<bool>,
}

// The `Value`s of an alias, and its `ack` and `result`, are boxed: most aliases have
// none, and an inline `Option<Value>` (an `IndexMap` with serde_json's `preserve_order`)
// costs ~70 bytes each across 10,000 aliases (the specs ~40 each).

/// `result` settings of an alias.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResultSpec {
    /// Whether the result is posted to chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Jinja template for the result message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Jinja values for adapter-specific extras.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<Value>>,
}

/// One (display, representation) pair of a format entry, after st2's
/// `normalise_alias_format_string` / `list_format_strings_from_aliases` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatPattern<'a> {
    /// Help text for this pattern, when there is any (`None` for representation-only objects).
    pub display: Option<&'a str>,
    /// The pattern text matched against commands.
    pub representation: &'a str,
    /// Whether parameters are extracted in `finditer` mode.
    pub match_multiple: bool,
}

impl AliasFormat {
    /// The help text of this entry, as st2's help listing uses it: a plain string is
    /// its own display; an object has its `display`. Empty strings count as none,
    /// because st2 tests them for truthiness.
    pub fn display(&self) -> Option<&str> {
        let d = match self {
            AliasFormat::Plain(s) => Some(s.as_str()),
            AliasFormat::Object(o) => o.display.as_deref(),
        };
        d.filter(|s| !s.is_empty())
    }

    /// Whether this entry is help text only: an object with a display and no
    /// representation. st2's matcher still gives it the pattern `""` (see
    /// [`AliasFormat::patterns`]), but its `aliasexecution` can never run that pattern:
    /// `ActionAliasDB.get_format_strings` (`st2common/models/db/actionalias.py`) lists such
    /// an entry as the object itself, so `""` is never one of the alias's format strings
    /// and the request is refused (`Format string "" is not available on the alias`).
    pub fn is_help_only(&self) -> bool {
        match self {
            AliasFormat::Plain(_) => false,
            AliasFormat::Object(o) => {
                let no_reps = match &o.representation {
                    None => true,
                    Some(Representation::One(s)) => s.is_empty(),
                    Some(Representation::Many(v)) => v.is_empty(),
                };
                no_reps && o.display.as_deref().is_some_and(|d| !d.is_empty())
            }
        }
    }

    /// Whether this entry has `match_multiple: true` (plain strings never do).
    pub fn match_multiple(&self) -> bool {
        match self {
            AliasFormat::Plain(_) => false,
            AliasFormat::Object(o) => o.match_multiple,
        }
    }

    /// The representations st2 matches for this entry, in order.
    ///
    /// Rules (st2 `normalise_alias_format_string` + `list_format_strings_from_aliases`):
    /// a plain string is one pattern; an object contributes its representation list
    /// (a bare string is a one-item list; an empty/absent one is an empty list); an
    /// object with a display but no representations contributes the single pattern
    /// `""`, which matches only a command made of `key=value` pairs (or nothing).
    pub fn patterns(&self) -> Vec<FormatPattern<'_>> {
        match self {
            AliasFormat::Plain(s) => vec![FormatPattern {
                display: Some(s.as_str()),
                representation: s.as_str(),
                match_multiple: false,
            }],
            AliasFormat::Object(o) => {
                let reps: Vec<&str> = match &o.representation {
                    None => Vec::new(),
                    Some(Representation::One(s)) if s.is_empty() => Vec::new(),
                    Some(Representation::One(s)) => vec![s.as_str()],
                    Some(Representation::Many(v)) => v.iter().map(String::as_str).collect(),
                };
                let display = o.display.as_deref();
                if reps.is_empty() {
                    match display {
                        Some(d) if !d.is_empty() => vec![FormatPattern {
                            display: Some(d),
                            representation: "",
                            match_multiple: false,
                        }],
                        _ => Vec::new(),
                    }
                } else {
                    reps.into_iter()
                        .map(|r| FormatPattern {
                            display,
                            representation: r,
                            match_multiple: o.match_multiple,
                        })
                        .collect()
                }
            }
        }
    }
}

impl ActionAlias {
    /// Every (display, representation) pair of this alias, in st2's order.
    pub fn patterns(&self) -> Vec<FormatPattern<'_>> {
        self.formats
            .iter()
            .flat_map(AliasFormat::patterns)
            .collect()
    }

    /// Whether st2's first matching pass considers this alias: it has at least one
    /// format whose `match_multiple` is not true (plain strings count).
    pub fn in_single_pass(&self) -> bool {
        self.formats.iter().any(|f| !f.match_multiple())
    }

    /// Whether st2's second (`match_multiple`) pass considers this alias.
    pub fn in_multi_pass(&self) -> bool {
        self.formats.iter().any(AliasFormat::match_multiple)
    }
}

fn null_as_false<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Lenient intermediate form; every field may be absent or null.
#[derive(Deserialize)]
struct RawActionAlias {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    pack: Option<String>,
    #[serde(default, rename = "ref")]
    reference: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    action_ref: Option<String>,
    #[serde(default)]
    formats: Option<Vec<AliasFormat>>,
    #[serde(default)]
    ack: Option<AckSpec>,
    #[serde(default)]
    result: Option<ResultSpec>,
    #[serde(default)]
    extra: Option<Value>,
    #[serde(default)]
    immutable_parameters: Option<Value>,
}

impl TryFrom<RawActionAlias> for ActionAlias {
    type Error = String;

    fn try_from(raw: RawActionAlias) -> Result<Self, String> {
        let name = raw.name.ok_or("missing field `name`")?;
        let pack = raw.pack.ok_or("missing field `pack`")?;
        let action_ref = raw.action_ref.ok_or("missing field `action_ref`")?;
        let reference = match raw.reference {
            Some(r) if !r.is_empty() => r,
            _ => format!("{pack}.{name}"),
        };
        Ok(ActionAlias {
            id: raw.id,
            name,
            pack,
            reference,
            description: raw.description,
            enabled: raw.enabled.unwrap_or(true),
            action_ref,
            formats: raw.formats.unwrap_or_default(),
            ack: raw.ack.map(Box::new),
            result: raw.result.map(Box::new),
            extra: raw.extra.filter(|v| !v.is_null()).map(Box::new),
            immutable_parameters: raw
                .immutable_parameters
                .filter(|v| !v.is_null())
                .map(Box::new),
        })
    }
}

/// Why a whole alias list was refused (as opposed to single items, which are skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasListError {
    /// StackStorm answered with an error object (`{"faultstring": …}`) instead of a list.
    #[error("StackStorm answered the alias list with an error: {0}")]
    Fault(String),
    /// The body is JSON but not an array (`null`, an object, …).
    #[error("expected a JSON array of action aliases, got {0}")]
    NotAList(&'static str),
    /// The body is not JSON at all.
    #[error("the alias list is not JSON: {0}")]
    NotJson(String),
}

/// Parse the body of `GET /api/v1/actionalias` (or a file of the same shape) from its
/// bytes, one item at a time: no JSON tree of the whole list is ever built, so the peak
/// memory of a large list stays close to the body plus the aliases.
///
/// Returns every item that parsed, in order, and one human-readable problem per item that
/// did not (naming its index and, when readable, its name). A malformed item is skipped,
/// never fatal: one bad alias must not take chat commands away from all the others. A body
/// that is not a list at all — `null`, StackStorm's `{"faultstring": …}` with a 200 — is an
/// error, so that the caller keeps the last good list instead of loading none.
pub fn parse_alias_list_bytes(
    body: &[u8],
) -> Result<(Vec<ActionAlias>, Vec<String>), AliasListError> {
    match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body) {
        Ok(items) => Ok(parse_items(items.into_iter().map(|raw| raw.get()))),
        Err(e) => Err(match serde_json::from_slice::<Value>(body) {
            Ok(v) => not_a_list(&v),
            Err(_) => AliasListError::NotJson(e.to_string()),
        }),
    }
}

/// [`parse_alias_list_bytes`] for a list already decoded (alias files, tests).
pub fn parse_alias_list(json: &Value) -> Result<(Vec<ActionAlias>, Vec<String>), AliasListError> {
    let Some(items) = json.as_array() else {
        return Err(not_a_list(json));
    };
    let mut aliases = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match ActionAlias::deserialize(item) {
            Ok(a) => aliases.push(a),
            Err(e) => problems.push(item_problem(i, item, &e)),
        }
    }
    Ok((aliases, problems))
}

fn parse_items<'a>(items: impl Iterator<Item = &'a str>) -> (Vec<ActionAlias>, Vec<String>) {
    let mut aliases = Vec::new();
    let mut problems = Vec::new();
    for (i, text) in items.enumerate() {
        match serde_json::from_str::<ActionAlias>(text) {
            Ok(a) => aliases.push(a),
            Err(e) => {
                let item = serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
                problems.push(item_problem(i, &item, &e));
            }
        }
    }
    (aliases, problems)
}

fn item_problem(i: usize, item: &Value, e: &serde_json::Error) -> String {
    let what = match item.get("name").and_then(Value::as_str) {
        Some(n) => format!("action alias #{i} (name {n:?})"),
        None => format!("action alias #{i}"),
    };
    // The position inside one item says nothing to an operator: drop it.
    let reason = e.to_string();
    let reason = match reason.rsplit_once(" at line ") {
        Some((r, position)) if position.contains(" column ") => r.to_owned(),
        _ => reason,
    };
    format!("{what} skipped: {reason}")
}

fn not_a_list(v: &Value) -> AliasListError {
    if let Some(fault) = v.get("faultstring").and_then(Value::as_str) {
        let fault: String = fault.chars().take(400).collect();
        return AliasListError::Fault(fault);
    }
    AliasListError::NotAList(match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_full_st2_item() {
        let v = json!([{
            "id": "5e1", "name": "deploy", "pack": "ops", "ref": "ops.deploy",
            "uid": "action_alias:ops:deploy", "description": "Deploy a thing",
            "enabled": true, "action_ref": "ops.deploy_action",
            "formats": ["deploy {{app}}", {"display": "deploy <app> to <env>",
                "representation": ["deploy {{app}} to {{env=staging}}"]},
                {"representation": "multi {{x}}", "match_multiple": true}],
            "ack": {"enabled": false, "format": "ok {{execution.id}}", "append_url": true},
            "result": {"format": "{{ execution.result }}"},
            "extra": {"slack": {"color": "red"}},
            "immutable_parameters": {"env": "prod"},
            "metadata_file": "aliases/deploy.yaml"
        }]);
        let (a, p) = parse_alias_list(&v).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(a.len(), 1);
        let a = &a[0];
        assert_eq!(a.reference, "ops.deploy");
        assert_eq!(a.formats.len(), 3);
        assert_eq!(a.ack.as_ref().and_then(|x| x.append_url), Some(true));
        let pats = a.patterns();
        assert_eq!(pats.len(), 3);
        assert_eq!(pats[1].display, Some("deploy <app> to <env>"));
        assert_eq!(pats[1].representation, "deploy {{app}} to {{env=staging}}");
        assert_eq!(pats[2].display, None);
        assert!(pats[2].match_multiple);
        assert!(a.in_single_pass() && a.in_multi_pass());
    }

    #[test]
    fn derives_ref_and_defaults() {
        let v = json!([{"name": "n", "pack": "p", "action_ref": "p.a",
            "enabled": null, "formats": null, "description": null, "ref": null}]);
        let (a, p) = parse_alias_list(&v).unwrap();
        assert!(p.is_empty());
        assert_eq!(a[0].reference, "p.n");
        assert!(a[0].enabled);
        assert!(a[0].formats.is_empty());
        let out = serde_json::to_value(&a[0]).unwrap();
        assert_eq!(out["ref"], "p.n");
        assert!(out.get("description").is_none());
    }

    #[test]
    fn bad_items_are_reported_not_fatal() {
        let v = json!([
            {"name": "ok", "pack": "p", "action_ref": "p.a", "formats": ["x"]},
            {"name": "nopack", "action_ref": "p.a"},
            {"name": "badformats", "pack": "p", "action_ref": "p.a", "formats": [1]},
            42
        ]);
        let (a, p) = parse_alias_list(&v).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(p.len(), 3);
        assert!(p[0].contains("#1") && p[0].contains("nopack"), "{}", p[0]);
        assert!(p[1].contains("#2") && p[1].contains("badformats"));
        assert!(p[2].contains("#3"));
        // The same from the wire, item by item.
        let (a2, p2) = parse_alias_list_bytes(v.to_string().as_bytes()).unwrap();
        assert_eq!((a2, p2), (a, p));
    }

    #[test]
    fn a_body_that_is_not_a_list_is_an_error_not_an_empty_list() {
        assert_eq!(
            parse_alias_list_bytes(br#"{"faultstring": "Internal Server Error"}"#),
            Err(AliasListError::Fault("Internal Server Error".into()))
        );
        assert_eq!(
            parse_alias_list_bytes(b"null"),
            Err(AliasListError::NotAList("null"))
        );
        assert!(matches!(
            parse_alias_list_bytes(b"[{\"name\": "),
            Err(AliasListError::NotJson(_))
        ));
        assert!(matches!(
            parse_alias_list(&json!({"faultstring": "x"})),
            Err(AliasListError::Fault(_))
        ));
        assert_eq!(parse_alias_list_bytes(b"[]"), Ok((vec![], vec![])));
    }

    #[test]
    fn display_only_and_empty_objects() {
        let f: Vec<AliasFormat> = serde_json::from_value(json!([
            {"display": "Watch this."},
            {"display": ""},
            {},
            {"representation": ""},
            {"representation": [], "display": "d"},
            {"representation": ["a", "b"], "match_multiple": null}
        ]))
        .unwrap();
        assert_eq!(f[0].patterns()[0].representation, "");
        assert!(f[1].patterns().is_empty());
        assert!(f[2].patterns().is_empty());
        assert!(f[3].patterns().is_empty());
        assert_eq!(f[4].patterns().len(), 1);
        assert_eq!(f[5].patterns().len(), 2);
        assert!(!f[5].match_multiple());
        assert_eq!(f[1].display(), None);
        let help_only: Vec<bool> = f.iter().map(AliasFormat::is_help_only).collect();
        assert_eq!(help_only, [true, false, false, false, true, false]);
    }
}
