//! Explanations of decisions, and the one-line renderings they are made of.

use std::{borrow::Cow, fmt};

use super::rules::AccessRuleConfig;
use super::{CommandRef, Decision, RoomKind, Subject};

/// Values from chat are shown at most this many characters long.
const MAX_SHOWN: usize = 80;

/// Rule comments (from the operator) are shown at most this many characters long.
const MAX_COMMENT: usize = 300;

/// Why one rule before the deciding one did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRule {
    /// The rule's index.
    pub index: usize,
    /// Every condition that failed, joined by `; `
    /// (`alias core.local is not in aliases=[packs.*]`).
    pub reason: String,
}

impl fmt::Display for SkippedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}: {}", self.index, self.reason)
    }
}

/// A decision with its reasoning, for `!st2acl explain` and for tests of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The decision, identical to what `evaluate` returns.
    pub decision: Decision,
    /// Who and where, as one phrase (`console:bob in console:C1 (group)`).
    pub subject: String,
    /// What, as one phrase (`alias core.local "run date"`).
    pub command: String,
    /// The deciding rule as a line (`rule 2: allow aliases=[core.*] users=[@oncall]`),
    /// when a rule decided.
    pub rule_text: Option<String>,
    /// The deciding rule's `comment`, if it has one.
    pub comment: Option<String>,
    /// Why each rule before the deciding one (all rules, when none decided) did not apply.
    pub skipped: Vec<SkippedRule>,
    /// How the decision was reached, as one line (`decided by rule 2: …`,
    /// `no rule applied; decided by the default: deny`, or a floor).
    pub summary: String,
}

impl Explanation {
    /// The explanation as lines: the verdict, each skipped rule, how it was decided, and
    /// the deciding rule's comment.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.skipped.len() + 3);
        out.push(format!(
            "{}: {} {} run {}",
            self.decision.verb(),
            self.subject,
            if self.decision.allowed {
                "may"
            } else {
                "may not"
            },
            self.command
        ));
        out.extend(self.skipped.iter().map(|s| format!("  {s}")));
        out.push(format!("  {}", self.summary));
        if let Some(c) = &self.comment {
            out.push(format!("  why: {}", one_line(c, MAX_COMMENT)));
        }
        out
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.lines().iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(line)?;
        }
        Ok(())
    }
}

/// Shows a value from chat safely on one line: control characters escaped, long values
/// cut short.
pub(super) fn show(s: &str) -> Cow<'_, str> {
    one_line(s, MAX_SHOWN)
}

/// Control characters, and the bidirectional-text controls that can make a line read
/// differently from what it says.
fn risky(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` on one line of at most `max` characters (plus escapes and an ellipsis).
fn one_line(s: &str, max: usize) -> Cow<'_, str> {
    let long = s.chars().nth(max).is_some();
    if !long && !s.chars().any(risky) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max) + 4);
    for c in s.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if risky(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    if long {
        out.push('…');
    }
    Cow::Owned(out)
}

/// Shows a value in double quotes, escaped and cut short.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SHOWN) + 2);
    out.push('"');
    out.extend(s.chars().take(MAX_SHOWN).flat_map(char::escape_debug));
    if s.chars().nth(MAX_SHOWN).is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

/// One configured entry, quoted when it would be ambiguous in a `[a, b]` list.
fn entry(e: &str) -> Cow<'_, str> {
    if e.is_empty() || e.contains([' ', ',', '[', ']', '"']) || e.chars().any(char::is_control) {
        Cow::Owned(quoted(e))
    } else {
        Cow::Borrowed(e)
    }
}

/// `name=[a, b]`.
pub(super) fn list(name: &str, entries: &[String]) -> String {
    let parts: Vec<Cow<'_, str>> = entries.iter().map(|e| entry(e)).collect();
    format!("{name}=[{}]", parts.join(", "))
}

/// `allow aliases=[core.*] users=[@oncall] rooms=[group]`, lists in schema order.
pub(super) fn rule_text(rule: &AccessRuleConfig) -> String {
    let mut out = String::from(rule.action.map_or("(no action)", |a| a.as_str()));
    let lists: [(&str, &Vec<String>); 8] = [
        ("aliases", &rule.selectors.aliases),
        ("packs", &rule.selectors.packs),
        ("builtins", &rule.builtins),
        ("texts", &rule.selectors.texts),
        ("users", &rule.selectors.users),
        ("rooms", &rule.selectors.rooms),
        ("connections", &rule.selectors.connections),
        ("orgs", &rule.selectors.orgs),
    ];
    for (name, entries) in lists {
        if !entries.is_empty() {
            out.push(' ');
            out.push_str(&list(name, entries));
        }
    }
    out
}

/// `console:bob` or `console:bob (Bob)`.
pub(super) fn user(s: &Subject) -> String {
    let mut out = format!("{}:{}", show(&s.connection), show(&s.user_id));
    if !s.user_names.is_empty() {
        let names: Vec<Cow<'_, str>> = s.user_names.iter().map(|n| show(n)).collect();
        out.push_str(&format!(" ({})", names.join(", ")));
    }
    out
}

/// `console:C1 (group)` or `slack:C1 (ops, group)`.
pub(super) fn room(s: &Subject) -> String {
    let kind = match s.room_kind {
        RoomKind::Direct => "direct",
        RoomKind::Group => "group",
    };
    match &s.room_name {
        Some(name) => format!(
            "{}:{} ({}, {kind})",
            show(&s.connection),
            show(&s.room_id),
            show(name)
        ),
        None => format!("{}:{} ({kind})", show(&s.connection), show(&s.room_id)),
    }
}

/// `console:bob in console:C1 (group)`, plus the org where there is one.
pub(super) fn subject(s: &Subject) -> String {
    match &s.org {
        Some(org) => format!("{} in {} of org {}", user(s), room(s), show(org)),
        None => format!("{} in {}", user(s), room(s)),
    }
}

/// `alias core.local "run date"`, `builtin help "help core"`, or `builtin acl` when the
/// text is just the verb.
pub(super) fn command(c: &CommandRef) -> String {
    match c {
        CommandRef::Alias {
            alias_ref, text, ..
        } => format!("alias {} {}", show(alias_ref), quoted(text)),
        CommandRef::Builtin { verb, text } if text == verb => format!("builtin {}", show(verb)),
        CommandRef::Builtin { verb, text } => format!("builtin {} {}", show(verb), quoted(text)),
    }
}

/// A list a command could have been covered by: its name, its entries, and the value of
/// the command that was looked up in it (`pack core`).
type Tried<'a> = (&'static str, &'a Vec<String>, String);

/// Why a rule does not cover a command, naming the lists it does have.
pub(super) fn not_covered(c: &CommandRef, rule: &AccessRuleConfig) -> String {
    let (what, relevant): (String, Vec<Tried<'_>>) = match c {
        CommandRef::Alias {
            alias_ref,
            pack,
            text,
        } => (
            format!("alias {}", show(alias_ref)),
            vec![
                (
                    "aliases",
                    &rule.selectors.aliases,
                    format!("alias {}", show(alias_ref)),
                ),
                (
                    "packs",
                    &rule.selectors.packs,
                    format!("pack {}", show(pack)),
                ),
                (
                    "texts",
                    &rule.selectors.texts,
                    format!("text {}", quoted(text)),
                ),
            ],
        ),
        CommandRef::Builtin { verb, text } => (
            format!("builtin {}", show(verb)),
            vec![
                (
                    "builtins",
                    &rule.builtins,
                    format!("builtin {}", show(verb)),
                ),
                (
                    "texts",
                    &rule.selectors.texts,
                    format!("text {}", quoted(text)),
                ),
            ],
        ),
    };
    let present: Vec<_> = relevant.iter().filter(|(_, l, _)| !l.is_empty()).collect();
    match present.as_slice() {
        // Exactly one list could have covered it: name the value and the list.
        [(name, entries, value)] => format!("{value} is not in {}", list(name, entries)),
        // None could: the rule is about other kinds of command.
        [] => {
            let others: Vec<String> = [
                ("aliases", &rule.selectors.aliases),
                ("packs", &rule.selectors.packs),
                ("builtins", &rule.builtins),
                ("texts", &rule.selectors.texts),
            ]
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(n, l)| list(n, l))
            .collect();
            format!("{what} is not covered by {}", others.join(" "))
        }
        // Several could: name every value that was tried.
        several => {
            let extras: Vec<&str> = several
                .iter()
                .map(|(_, _, v)| v.as_str())
                .filter(|v| *v != what)
                .collect();
            let lists: Vec<String> = several.iter().map(|(n, l, _)| list(n, l)).collect();
            if extras.is_empty() {
                format!("{what} is not covered by {}", lists.join(" "))
            } else {
                format!(
                    "{what} ({}) is not covered by {}",
                    extras.join(", "),
                    lists.join(" ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{alias, builtin, in_dm, in_group, policy};
    use super::super::{DecisionReason, Subject};
    use super::*;

    const THREE_RULES: &str = r#"
        [access]
        default = "deny"
        admins = ["console:alice"]
        [access.groups]
        oncall = ["console:carol"]
        [[access.rules]]
        aliases = ["packs.*"]
        action = "allow"
        [[access.rules]]
        aliases = ["core.*"]
        users = ["@oncall"]
        rooms = ["group"]
        action = "allow"
        [[access.rules]]
        aliases = ["core.*"]
        rooms = ["group"]
        action = "deny"
        comment = "core commands only for on-call"
    "#;

    fn lines(ex: &Explanation) -> Vec<String> {
        ex.to_string().lines().map(str::to_owned).collect()
    }

    #[test]
    fn explain_names_the_deciding_rule_and_why_earlier_ones_did_not_apply() {
        let p = policy(THREE_RULES);
        let bob = in_group("console:bob", "console:ops");
        let ex = p.explain(&bob, &alias("core.local", "run date"));
        assert_eq!(ex.decision.reason, DecisionReason::Rule(2));
        assert_eq!(
            ex.rule_text.as_deref(),
            Some("rule 2: deny aliases=[core.*] rooms=[group]")
        );
        assert_eq!(
            lines(&ex),
            [
                "deny: console:bob in console:ops (group) may not run alias core.local \"run date\"",
                "  rule 0: alias core.local is not in aliases=[packs.*]",
                "  rule 1: user console:bob is not in users=[@oncall]",
                "  decided by rule 2: deny aliases=[core.*] rooms=[group]",
                "  why: core commands only for on-call",
            ]
        );

        let carol = in_group("console:carol", "console:ops");
        let ex = p.explain(&carol, &alias("core.local", "run date"));
        assert_eq!(
            lines(&ex),
            [
                "allow: console:carol in console:ops (group) may run alias core.local \"run date\"",
                "  rule 0: alias core.local is not in aliases=[packs.*]",
                "  decided by rule 1: allow aliases=[core.*] users=[@oncall] rooms=[group]",
            ]
        );
        assert_eq!(ex.comment, None);
    }

    #[test]
    fn explain_lists_every_rule_when_the_default_decides() {
        let p = policy(THREE_RULES);
        let mut bob = in_dm("console:bob");
        bob.user_names = vec!["Bob".into()];
        let ex = p.explain(&bob, &alias("core.local", "run date"));
        assert_eq!(ex.decision.reason, DecisionReason::Default);
        assert_eq!(
            lines(&ex),
            [
                "deny: console:bob (Bob) in console:D-bob (direct) may not run alias core.local \"run date\"",
                "  rule 0: alias core.local is not in aliases=[packs.*]",
                "  rule 1: room console:D-bob (direct) is not in rooms=[group]; user console:bob (Bob) is not in users=[@oncall]",
                "  rule 2: room console:D-bob (direct) is not in rooms=[group]",
                "  no rule applied; decided by the default: deny",
            ]
        );
    }

    #[test]
    fn explain_shows_the_floors() {
        let p = policy(THREE_RULES);
        let ex = p.explain(&in_dm("console:bob"), &builtin("acl"));
        assert_eq!(
            lines(&ex),
            [
                "deny: console:bob in console:D-bob (direct) may not run builtin acl",
                "  decided by the admin-only floor: acl is admin-only and console:bob is not an admin",
            ]
        );
        let ex = p.explain(&in_dm("console:alice"), &builtin("acl"));
        assert!(ex.decision.allowed);
        assert_eq!(ex.skipped.len(), 3);
        assert_eq!(
            ex.skipped[0].to_string(),
            "rule 0: builtin acl is not covered by aliases=[packs.*]"
        );
        assert_eq!(
            ex.summary,
            "no rule applied; decided by the admin-only floor: acl is admin-only and console:alice is an admin"
        );
    }

    #[test]
    fn coverage_reasons_name_the_lists_that_were_tried() {
        let p = policy(
            r#"
            [access]
            [[access.rules]]
            aliases = ["x.*"]
            packs = ["ops"]
            texts = ["deploy *"]
            action = "allow"
            [[access.rules]]
            packs = ["ops"]
            builtins = ["help"]
            action = "allow"
            [[access.rules]]
            texts = ["deploy *", "a, b"]
            connections = ["slack"]
            orgs = ["T1"]
            action = "allow"
            "#,
        );
        let s = in_group("console:bob", "console:ops");
        let ex = p.explain(&s, &alias("core.local", "run date"));
        let reasons: Vec<String> = ex.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                "rule 0: alias core.local (pack core, text \"run date\") is not covered by \
                 aliases=[x.*] packs=[ops] texts=[\"deploy *\"]",
                "rule 1: pack core is not in packs=[ops]",
                "rule 2: text \"run date\" is not in texts=[\"deploy *\", \"a, b\"]; \
                 connection console is not in connections=[slack]; \
                 there is no org here, and the rule needs orgs=[T1]",
            ]
        );
        let ex = p.explain(&s, &builtin("whoami"));
        assert_eq!(
            ex.skipped[0].to_string(),
            "rule 0: text \"whoami\" is not in texts=[\"deploy *\"]"
        );
        assert_eq!(
            ex.skipped[1].to_string(),
            "rule 1: builtin whoami is not in builtins=[help]"
        );
    }

    #[test]
    fn values_from_chat_are_escaped_and_cut_short() {
        let p = policy(THREE_RULES);
        let s = Subject {
            user_id: "evil\nrule 0: allow".into(),
            ..in_group("console:x", "console:ops")
        };
        let ex = p.explain(&s, &alias("core.local", &"y".repeat(500)));
        let shown = ex.to_string();
        assert_eq!(shown.lines().count(), ex.lines().len());
        assert!(shown.contains("console:evil\\nrule 0: allow"), "{shown}");
        assert!(
            shown.contains(&format!("\"{}…\"", "y".repeat(80))),
            "{shown}"
        );
        assert_eq!(show("plain"), "plain");
        assert_eq!(show("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(
            list("texts", &["a b".into(), "c".into()]),
            "texts=[\"a b\", c]"
        );
    }
}
