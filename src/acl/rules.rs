//! The `[access]` configuration as written, and the checks that turn its entries into
//! typed patterns (or into [`AclProblem`]s naming the exact key).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use serde::{
    de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor},
    Deserialize, Deserializer,
};

use super::matcher::{self, is_glob};
use super::KNOWN_BUILTINS;

/// Allow or deny: a rule's `action`, and the policy's `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The command may run.
    Allow,
    /// The command may not run.
    Deny,
}

impl Default for Action {
    /// `Deny`: a policy with nothing configured lets nothing through.
    fn default() -> Self {
        Action::Deny
    }
}

impl Action {
    /// `allow` or `deny`, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Keys found in a table that are not part of the schema.
///
/// They are collected instead of failing deserialization at the first one, so that
/// [`AclPolicy::compile`](super::AclPolicy::compile) can report them together with every
/// other problem. A valid configuration has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnknownKeys(pub Vec<String>);

impl<'de> Deserialize<'de> for UnknownKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = UnknownKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(UnknownKeys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// Accepts `["a", "b"]` or a lone `"a"` for a list of strings.
pub(super) fn string_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;
    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_any(ListVisitor)
}

/// Accepts a table of group name → list of members (or one member).
fn group_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Vec<String>>, D::Error> {
    struct Members(Vec<String>);
    impl<'de> Deserialize<'de> for Members {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            string_list(deserializer).map(Members)
        }
    }
    let map = BTreeMap::<String, Members>::deserialize(deserializer)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// The `[access]` section.
///
/// `Default` is the empty policy: deny everything, no admins, no groups, no rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AccessConfig {
    /// What happens when no rule applies (`"allow"` or `"deny"`; `"deny"` when absent).
    pub default: Action,
    /// Administrators, as `<connection>:<user id>` globs.
    #[serde(deserialize_with = "string_list")]
    pub admins: Vec<String>,
    /// Named groups of users; members use the same syntax as a rule's `users`.
    #[serde(deserialize_with = "group_map")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// The rules, evaluated in order; the first that applies decides.
    pub rules: Vec<AccessRuleConfig>,
    /// Keys of `[access]` that are not part of the schema (reported by `compile`).
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// What a rule covers and for whom: the selectors `[[access.rules]]` and
/// `[[confirm.rules]]` share, under the same keys in both (each rule flattens this in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RuleSelectors {
    /// Alias refs (`pack.name`) this rule covers, as globs.
    #[serde(deserialize_with = "string_list")]
    pub aliases: Vec<String>,
    /// Packs whose aliases this rule covers, as globs.
    #[serde(deserialize_with = "string_list")]
    pub packs: Vec<String>,
    /// Globs on the command text after the prefixes.
    #[serde(deserialize_with = "string_list")]
    pub texts: Vec<String>,
    /// Who: `any`, `admins`, `@group`, `<conn>:<id>`, `<conn>:name:<name>`. Empty: anyone.
    #[serde(deserialize_with = "string_list")]
    pub users: Vec<String>,
    /// Where: `any`, `direct`, `group`, `<conn>:<id>`, `<conn>:name:<name>`. Empty: anywhere.
    #[serde(deserialize_with = "string_list")]
    pub rooms: Vec<String>,
    /// Connection names, as globs. Empty: any connection.
    #[serde(deserialize_with = "string_list")]
    pub connections: Vec<String>,
    /// Team / workspace / organisation ids, as globs. Empty: any (or none).
    #[serde(deserialize_with = "string_list")]
    pub orgs: Vec<String>,
}

/// One `[[access.rules]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AccessRuleConfig {
    /// What the rule covers and for whom. Flattened before `unknown`, so it takes its
    /// keys first and only the others are reported as unknown.
    #[serde(flatten)]
    pub selectors: RuleSelectors,
    /// Built-in verbs (no prefixes) this rule covers, as globs.
    #[serde(deserialize_with = "string_list")]
    pub builtins: Vec<String>,
    /// `allow` or `deny`. Required: a rule without one is reported by `compile`.
    pub action: Option<Action>,
    /// Why the rule exists; shown by explain.
    pub comment: Option<String>,
    /// Keys of this rule that are not part of the schema (reported by `compile`).
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

/// One thing wrong with an `[access]` section.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct AclProblem {
    /// The dotted key, e.g. `access.rules[2].users[0]` or `access.groups.oncall`.
    pub key: String,
    /// Why it is wrong, in words an operator can act on.
    pub reason: String,
}

impl AclProblem {
    pub(super) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Collects problems while the configuration is checked.
#[derive(Default)]
pub(super) struct Problems(pub Vec<AclProblem>);

impl Problems {
    pub(super) fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(AclProblem::new(key, reason));
    }
}

pub(super) const ACCESS_KEYS: &[&str] = &["default", "admins", "groups", "rules"];
pub(super) const RULE_KEYS: &[&str] = &[
    "aliases",
    "packs",
    "builtins",
    "texts",
    "users",
    "rooms",
    "connections",
    "orgs",
    "action",
    "comment",
];

/// Reports each unknown key under `prefix`, suggesting the closest known key.
pub(super) fn check_unknown(
    unknown: &UnknownKeys,
    prefix: &str,
    known: &[&str],
    problems: &mut Problems,
) {
    for key in &unknown.0 {
        let mut reason = format!("unknown key; expected one of {}", known.join(", "));
        if let Some(near) = closest(key, known) {
            reason = format!(
                "unknown key (did you mean `{near}`?); expected one of {}",
                known.join(", ")
            );
        }
        problems.push(format!("{prefix}.{key}"), reason);
    }
}

fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word: Vec<char> = word.to_lowercase().chars().take(64).collect();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.chars().collect::<Vec<_>>()), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// A `users` / group-member / `admins` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Who {
    /// `any`.
    Any,
    /// `admins`.
    Admins,
    /// `@name`.
    Group(String),
    /// `<conn>:<id>`.
    Id { conn: String, id: String },
    /// `<conn>:name:<name>`.
    Name { conn: String, name: String },
}

/// A `rooms` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Where {
    /// `any`.
    Any,
    /// `direct`.
    Direct,
    /// `group`.
    Group,
    /// `<conn>:<id>`.
    Id { conn: String, id: String },
    /// `<conn>:name:<name>`.
    Name { conn: String, name: String },
}

/// Checks the parts every entry shares: not empty, no stray whitespace.
fn check_text(entry: &str) -> Result<(), String> {
    if entry.is_empty() {
        return Err("empty entry".into());
    }
    if entry.trim() != entry {
        return Err(format!("{entry:?} has leading or trailing whitespace"));
    }
    Ok(())
}

/// Splits `<conn>:<rest>` and checks both globs; `rest` may be `name:<glob>`.
fn scoped(entry: &str, what: &str) -> Result<(String, bool, String), String> {
    let Some((conn, rest)) = entry.split_once(':') else {
        return Err(format!(
            "{entry:?} is not a valid entry: write <connection>:<{what} id>, \
             <connection>:name:<{what} name>{}",
            if what == "user" {
                ", @group, admins or any"
            } else {
                ", direct, group or any"
            }
        ));
    };
    if conn.is_empty() {
        return Err(format!("{entry:?} has an empty connection before ':'"));
    }
    if conn == "name" {
        return Err(format!(
            "{entry:?} has no connection: write <connection>:{entry} \
             (or *:{entry} for every connection)"
        ));
    }
    matcher::check_glob(conn, false).map_err(|e| format!("bad connection glob {conn:?}: {e}"))?;
    let (is_name, value) = match rest.strip_prefix("name:") {
        Some(name) => (true, name),
        None => (false, rest),
    };
    if value.is_empty() {
        return Err(format!(
            "{entry:?} has an empty {what} {} after ':'",
            if is_name { "name" } else { "id" }
        ));
    }
    matcher::check_glob(value, is_name).map_err(|e| format!("bad glob {value:?}: {e}"))?;
    Ok((conn.to_owned(), is_name, value.to_owned()))
}

/// Parses a `users` or group-member entry.
pub(super) fn parse_who(entry: &str) -> Result<Who, String> {
    check_text(entry)?;
    match entry {
        "any" => return Ok(Who::Any),
        "admins" => return Ok(Who::Admins),
        _ => {}
    }
    if let Some(group) = entry.strip_prefix('@') {
        check_group_name(group)?;
        return Ok(Who::Group(group.to_owned()));
    }
    let (conn, is_name, value) = scoped(entry, "user")?;
    Ok(if is_name {
        Who::Name { conn, name: value }
    } else {
        Who::Id { conn, id: value }
    })
}

/// Parses an `admins` entry: `<conn>:<id>` only.
pub(super) fn parse_admin(entry: &str) -> Result<(String, String), String> {
    check_text(entry)?;
    if entry.starts_with('@') || entry == "any" || entry == "admins" {
        return Err(format!(
            "{entry:?}: admins are listed one by one as <connection>:<user id>"
        ));
    }
    let Some((conn, rest)) = entry.split_once(':') else {
        return Err(format!(
            "{entry:?} is not a valid admin: write <connection>:<user id>"
        ));
    };
    if rest.starts_with("name:") {
        return Err(format!(
            "{entry:?}: admins are identified by user id, not display name \
             (anyone can choose a display name)"
        ));
    }
    match scoped(entry, "user")? {
        (c, false, id) if c == conn => Ok((c, id)),
        _ => Err(format!("{entry:?} is not a valid admin")),
    }
}

/// Parses a `rooms` entry.
pub(super) fn parse_where(entry: &str) -> Result<Where, String> {
    check_text(entry)?;
    match entry {
        "any" => return Ok(Where::Any),
        "direct" => return Ok(Where::Direct),
        "group" => return Ok(Where::Group),
        "admins" => return Err("\"admins\" is a users entry, not a room".into()),
        _ => {}
    }
    if entry.starts_with('@') {
        return Err(format!("{entry:?}: groups are users entries, not rooms"));
    }
    let (conn, is_name, value) = scoped(entry, "room")?;
    Ok(if is_name {
        Where::Name { conn, name: value }
    } else {
        Where::Id { conn, id: value }
    })
}

/// Checks an `aliases` entry: a glob on `pack.name`.
pub(super) fn check_alias_pattern(entry: &str) -> Result<(), String> {
    check_text(entry)?;
    if !entry.contains('.') && !is_glob(entry) {
        return Err(format!(
            "{entry:?} is not an alias ref (pack.name); for every alias of a pack write \
             packs = [{entry:?}] or aliases = [\"{entry}.*\"]"
        ));
    }
    matcher::check_glob(entry, false).map_err(|e| format!("bad glob {entry:?}: {e}"))
}

/// Checks a `packs` entry: a glob on a pack name.
pub(super) fn check_pack_pattern(entry: &str) -> Result<(), String> {
    check_text(entry)?;
    if entry.contains('.') && !is_glob(entry) {
        return Err(format!(
            "{entry:?} looks like an alias ref; pack names have no '.': \
             write aliases = [{entry:?}] for one alias"
        ));
    }
    matcher::check_glob(entry, false).map_err(|e| format!("bad glob {entry:?}: {e}"))
}

/// Checks a `builtins` entry: a glob that must name at least one known built-in.
pub(super) fn check_builtin_pattern(entry: &str) -> Result<(), String> {
    check_text(entry)?;
    let glob =
        matcher::compile_one(entry, false).map_err(|e| format!("bad glob {entry:?}: {e}"))?;
    if KNOWN_BUILTINS.iter().any(|b| glob.is_match(b)) {
        Ok(())
    } else {
        Err(format!(
            "{entry:?} matches no built-in command (write verbs without prefixes; known: {})",
            KNOWN_BUILTINS.join(", ")
        ))
    }
}

/// Checks a `texts` or `orgs` entry: any glob.
pub(super) fn check_plain_pattern(entry: &str) -> Result<(), String> {
    check_text(entry)?;
    matcher::check_glob(entry, false).map_err(|e| format!("bad glob {entry:?}: {e}"))
}

/// Checks a `connections` entry: a glob on a connection name (which has no ':').
pub(super) fn check_connection_pattern(entry: &str) -> Result<(), String> {
    check_text(entry)?;
    if entry.contains(':') {
        return Err(format!(
            "{entry:?}: connection names have no ':'; to name a room or user use rooms or users"
        ));
    }
    matcher::check_glob(entry, false).map_err(|e| format!("bad glob {entry:?}: {e}"))
}

/// Group names: ASCII letters, digits, `-` and `_`.
pub(super) fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty group name after '@'".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "group name {name:?} may only contain ASCII letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// The groups, with their members parsed, nesting followed and cycles reported.
pub(super) struct ResolvedGroups {
    /// Each valid group's members with nested groups expanded (no `Who::Group` left).
    flat: BTreeMap<String, Vec<Who>>,
    /// Groups that are defined (valid or not), so rules can tell "unknown" from "broken".
    defined: BTreeSet<String>,
}

impl ResolvedGroups {
    /// Parses and resolves `[access.groups]`, reporting problems under `access.groups.*`.
    pub(super) fn resolve(groups: &BTreeMap<String, Vec<String>>, problems: &mut Problems) -> Self {
        let defined: BTreeSet<String> = groups.keys().cloned().collect();
        let mut parsed: BTreeMap<&str, Vec<Who>> = BTreeMap::new();
        for (name, members) in groups {
            let key = format!("access.groups.{name}");
            if let Err(e) = check_group_name(name) {
                problems.push(&key, e);
            }
            let mut list = Vec::with_capacity(members.len());
            for (i, member) in members.iter().enumerate() {
                match parse_who(member) {
                    Ok(Who::Group(g)) if !defined.contains(&g) => problems.push(
                        format!("{key}[{i}]"),
                        format!("unknown group @{g}{}", defined_hint(&defined)),
                    ),
                    Ok(who) => list.push(who),
                    Err(e) => problems.push(format!("{key}[{i}]"), e),
                }
            }
            parsed.insert(name.as_str(), list);
        }

        // Cycles: depth-first search; each cycle is reported once, at its first group.
        let mut state: BTreeMap<&str, Visit> = BTreeMap::new();
        let mut in_cycle: BTreeSet<String> = BTreeSet::new();
        for name in parsed.keys() {
            let mut path = Vec::new();
            find_cycles(
                name,
                &parsed,
                &mut state,
                &mut path,
                &mut in_cycle,
                problems,
            );
        }

        let mut flat = BTreeMap::new();
        for name in parsed.keys() {
            if in_cycle.contains(*name) {
                continue;
            }
            let mut out = Vec::new();
            let mut seen = BTreeSet::new();
            flatten(name, &parsed, &mut seen, &mut out);
            flat.insert((*name).to_owned(), out);
        }
        ResolvedGroups { flat, defined }
    }

    /// Expands `who` into the entries it stands for. `Err` when `who` names an unknown
    /// group; `Ok(empty)` for a defined group that is broken (already reported).
    pub(super) fn expand(&self, who: Who) -> Result<Vec<Who>, String> {
        match who {
            Who::Group(g) => match self.flat.get(&g) {
                Some(members) => Ok(members.clone()),
                None if self.defined.contains(&g) => Ok(Vec::new()),
                None => Err(format!("unknown group @{g}{}", defined_hint(&self.defined))),
            },
            other => Ok(vec![other]),
        }
    }
}

fn defined_hint(defined: &BTreeSet<String>) -> String {
    if defined.is_empty() {
        " (no [access.groups] are defined)".to_owned()
    } else {
        format!(
            " (defined: {})",
            defined
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    Active,
    Done,
}

fn find_cycles<'a>(
    name: &'a str,
    parsed: &BTreeMap<&'a str, Vec<Who>>,
    state: &mut BTreeMap<&'a str, Visit>,
    path: &mut Vec<&'a str>,
    in_cycle: &mut BTreeSet<String>,
    problems: &mut Problems,
) {
    match state.get(name) {
        Some(Visit::Done) => return,
        Some(Visit::Active) => {
            let start = path.iter().position(|p| *p == name).unwrap_or(0);
            let cycle = &path[start..];
            let mut shown: Vec<String> = cycle.iter().map(|g| format!("@{g}")).collect();
            shown.push(format!("@{name}"));
            // Report at the cycle's first group in key order, so the key is stable.
            let first = cycle.iter().min().copied().unwrap_or(name);
            problems.push(
                format!("access.groups.{first}"),
                format!("groups form a cycle: {}", shown.join(" → ")),
            );
            in_cycle.extend(cycle.iter().map(|g| (*g).to_owned()));
            return;
        }
        None => {}
    }
    state.insert(name, Visit::Active);
    path.push(name);
    if let Some(members) = parsed.get(name) {
        for who in members {
            if let Who::Group(g) = who {
                if let Some((key, _)) = parsed.get_key_value(g.as_str()) {
                    find_cycles(key, parsed, state, path, in_cycle, problems);
                }
            }
        }
    }
    path.pop();
    state.insert(name, Visit::Done);
}

fn flatten(
    name: &str,
    parsed: &BTreeMap<&str, Vec<Who>>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Who>,
) {
    if !seen.insert(name.to_owned()) {
        return;
    }
    let Some(members) = parsed.get(name) else {
        return;
    };
    for who in members {
        match who {
            Who::Group(g) => flatten(g, parsed, seen, out),
            other => {
                if !out.contains(other) {
                    out.push(other.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{config, problems};
    use super::super::AclPolicy;
    use super::*;

    fn keys(problems: &[AclProblem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    fn reason<'a>(problems: &'a [AclProblem], key: &str) -> &'a str {
        problems
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.reason.as_str())
            .unwrap_or_else(|| panic!("no problem at {key}: {problems:#?}"))
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let found = problems(
            r#"
            [access]
            defualt = "allow"
            admins = ["console:alice"]

            [access.groups]
            a = ["@b"]
            b = ["@a"]
            oncall = ["console:bob"]

            [[access.rules]]
            aliases = ["core.*"]
            users = ["@ghosts"]
            action = "allow"

            [[access.rules]]
            users = ["any"]
            action = "allow"

            [[access.rules]]
            aliases = ["core.[local"]
            action = "deny"

            [[access.rules]]
            packs = ["ops"]

            [[access.rules]]
            packs = ["ops"]
            usres = ["console:bob"]
            action = "allow"

            [[access.rules]]
            aliases = ["core.local"]
            users = ["@oncall"]
            action = "allow"
            "#,
        );
        assert_eq!(
            keys(&found),
            [
                "access.defualt",
                "access.groups.a",
                "access.rules[0].users[0]",
                "access.rules[1]",
                "access.rules[2].aliases[0]",
                "access.rules[3].action",
                "access.rules[4].usres",
            ],
            "{found:#?}"
        );
        assert!(reason(&found, "access.defualt").contains("did you mean `default`"));
        assert_eq!(
            reason(&found, "access.groups.a"),
            "groups form a cycle: @a → @b → @a"
        );
        assert_eq!(
            reason(&found, "access.rules[0].users[0]"),
            "unknown group @ghosts (defined: a, b, oncall)"
        );
        assert!(reason(&found, "access.rules[1]").starts_with("empty rule"));
        assert_eq!(
            reason(&found, "access.rules[2].aliases[0]"),
            "bad glob \"core.[local\": unclosed character class; missing ']'"
        );
        assert!(reason(&found, "access.rules[3].action").starts_with("missing"));
        assert!(reason(&found, "access.rules[4].usres").contains("did you mean `users`"));
        // Display is `key: reason`.
        assert!(found[5]
            .to_string()
            .starts_with("access.rules[3].action: missing"));
    }

    #[test]
    fn malformed_entries_are_reported_one_by_one() {
        let found = problems(
            r#"
            [access]
            admins = ["bob", "slack:name:Boss", "@ops", "console:"]

            [access.groups]
            "bad name" = []
            c = ["@nope", "console:x", "x:name:"]
            self = ["@self"]

            [[access.rules]]
            aliases = ["core", "core.{a,b"]
            packs = ["core.local"]
            builtins = ["hlep", "session_*"]
            texts = ["", " deploy"]
            users = ["bob", ":x", "console:\\", "@", "@bad name", "name:Alice"]
            rooms = ["admins", "ops", "@g", "slack:name:"]
            connections = ["slack:C1", "slack-*"]
            action = "allow"
            "#,
        );
        assert_eq!(
            keys(&found),
            [
                "access.admins[0]",
                "access.admins[1]",
                "access.admins[2]",
                "access.admins[3]",
                "access.groups.bad name",
                "access.groups.c[0]",
                "access.groups.c[2]",
                "access.groups.self",
                "access.rules[0].aliases[0]",
                "access.rules[0].aliases[1]",
                "access.rules[0].packs[0]",
                "access.rules[0].builtins[0]",
                "access.rules[0].texts[0]",
                "access.rules[0].texts[1]",
                "access.rules[0].users[0]",
                "access.rules[0].users[1]",
                "access.rules[0].users[2]",
                "access.rules[0].users[3]",
                "access.rules[0].users[4]",
                "access.rules[0].users[5]",
                "access.rules[0].rooms[0]",
                "access.rules[0].rooms[1]",
                "access.rules[0].rooms[2]",
                "access.rules[0].rooms[3]",
                "access.rules[0].connections[0]",
            ],
            "{found:#?}"
        );
        assert!(reason(&found, "access.admins[1]").contains("not display name"));
        assert!(reason(&found, "access.groups.c[0]").starts_with("unknown group @nope"));
        assert_eq!(
            reason(&found, "access.groups.self"),
            "groups form a cycle: @self → @self"
        );
        assert!(reason(&found, "access.rules[0].aliases[0]").contains("packs = [\"core\"]"));
        assert!(reason(&found, "access.rules[0].aliases[1]").contains("unclosed alternate"));
        assert!(reason(&found, "access.rules[0].builtins[0]").contains("matches no built-in"));
        assert_eq!(reason(&found, "access.rules[0].texts[0]"), "empty entry");
        assert!(reason(&found, "access.rules[0].texts[1]").contains("whitespace"));
        assert!(reason(&found, "access.rules[0].users[2]").contains("dangling"));
        assert!(reason(&found, "access.rules[0].users[5]").contains("*:name:Alice"));
    }

    #[test]
    fn a_wrong_action_value_fails_to_parse() {
        let err = toml::from_str::<toml::Table>(
            "[access]\n[[access.rules]]\npacks = [\"x\"]\naction = \"permit\"\n",
        )
        .map(|t| {
            AccessConfig::deserialize(t["access"].clone())
                .expect_err("permit is not an action")
                .to_string()
        })
        .expect("valid TOML");
        assert!(err.contains("unknown variant `permit`"), "{err}");
    }

    /// The selectors are one struct flattened into both kinds of rule: a value of the
    /// wrong type is still refused by the selector's own reader (not taken for an unknown
    /// key), under the section's key as the configuration crate reports it.
    #[test]
    fn a_selector_of_the_wrong_type_is_refused_in_both_kinds_of_rule() {
        let base = "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"console\"\nbackend = \"console\"\n";
        for (section, rule) in [
            ("access", "packs = [\"x\"]\naction = \"allow\"\nusers = 5\n"),
            ("confirm", "packs = [\"x\"]\nusers = 5\n"),
        ] {
            let text = format!("{base}[[{section}.rules]]\n{rule}");
            let err = crate::config::load_with_env(
                &crate::config::ConfigSource::Text(text),
                Default::default(),
                &crate::backends::registry::REGISTRY,
            )
            .expect_err("users = 5 is not a list")
            .to_string();
            assert!(err.contains("string or a list of strings"), "{err}");
            assert!(err.contains(&format!("- {section}: ")), "{err}");
        }
    }

    #[test]
    fn unknown_keys_survive_as_values_of_any_shape() {
        let cfg = config(
            r#"
            [access]
            extra = { nested = [1, 2, { x = true }] }
            [[access.rules]]
            packs = ["x"]
            action = "allow"
            when = 2024-01-01T00:00:00Z
            "#,
        );
        assert_eq!(cfg.unknown.0, ["extra"]);
        assert_eq!(cfg.rules[0].unknown.0, ["when"]);
        let found = AclPolicy::compile(&cfg).expect_err("unknown keys are errors");
        assert_eq!(keys(&found), ["access.extra", "access.rules[0].when"]);
    }

    #[test]
    fn closest_key_suggestions() {
        assert_eq!(closest("rule", ACCESS_KEYS), Some("rules"));
        assert_eq!(closest("Action", RULE_KEYS), Some("action"));
        assert_eq!(closest("room", RULE_KEYS), Some("rooms"));
        assert_eq!(closest("zzzzzz", RULE_KEYS), None);
    }
}
