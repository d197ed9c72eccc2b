//! The compiled policy: evaluation, admin checks and explain.

use std::fmt;

use super::confirm::{
    ConfirmConfig, ConfirmRuleConfig, ConfirmSettings, Requirement, CONFIRM_KEYS, CONFIRM_RULE_KEYS,
};
use super::explain::{self, Explanation, SkippedRule};
use super::matcher::{PatternSet, ScopedSet};
use super::rules::{
    self, check_unknown, AccessConfig, AccessRuleConfig, AclProblem, Action, Problems,
    ResolvedGroups, Where, Who, ACCESS_KEYS, RULE_KEYS,
};
use super::{
    CommandRef, Decision, DecisionReason, RoomKind, Subject, ADMIN_ONLY_BUILTINS,
    ALWAYS_ALLOWED_BUILTINS, SELF_SERVICE_BUILTINS,
};

/// A compiled, immutable access policy. Cheap to share (`Send + Sync`); build a new one to
/// change the rules.
pub struct AclPolicy {
    default: Action,
    admins: ScopedSet,
    admin_entries: Vec<String>,
    group_names: Vec<String>,
    rules: Vec<CompiledRule>,
    confirm: Vec<ConfirmRule>,
    confirm_settings: ConfirmSettings,
}

/// One compiled `[[confirm.rules]]` entry: an access rule's selectors, and who approves.
struct ConfirmRule {
    selector: CompiledRule,
    approvers: Option<WhoMatcher>,
    /// `approvers` as written, for messages.
    approver_entries: Vec<String>,
}

/// `users` of one rule (or nothing, for anyone).
#[derive(Debug)]
struct WhoMatcher {
    any: bool,
    admins: bool,
    ids: ScopedSet,
    names: ScopedSet,
}

impl WhoMatcher {
    fn is_match(&self, s: &Subject, policy: &AclPolicy) -> bool {
        self.any
            || self.ids.is_match(&s.connection, &s.user_id)
            || self
                .names
                .is_match_any(&s.connection, s.user_names.iter().map(String::as_str))
            || (self.admins && policy.is_admin(s))
    }
}

/// `rooms` of one rule.
#[derive(Debug)]
struct WhereMatcher {
    any: bool,
    direct: bool,
    group: bool,
    ids: ScopedSet,
    names: ScopedSet,
}

impl WhereMatcher {
    fn is_match(&self, s: &Subject) -> bool {
        self.any
            || match s.room_kind {
                RoomKind::Direct => self.direct,
                RoomKind::Group => self.group,
            }
            || self.ids.is_match(&s.connection, &s.room_id)
            || s.room_name
                .as_deref()
                .is_some_and(|n| self.names.is_match(&s.connection, n))
    }
}

struct CompiledRule {
    action: Action,
    comment: Option<String>,
    aliases: Option<PatternSet>,
    packs: Option<PatternSet>,
    builtins: Option<PatternSet>,
    texts: Option<PatternSet>,
    users: Option<WhoMatcher>,
    rooms: Option<WhereMatcher>,
    connections: Option<PatternSet>,
    orgs: Option<PatternSet>,
    /// The rule as written, for explain.
    source: AccessRuleConfig,
    /// `allow aliases=[…] users=[…]`.
    text: String,
}

fn matches(set: &Option<PatternSet>, value: &str) -> bool {
    set.as_ref().is_some_and(|s| s.is_match(value))
}

impl CompiledRule {
    fn covers(&self, c: &CommandRef) -> bool {
        match c {
            CommandRef::Alias {
                alias_ref,
                pack,
                text,
            } => {
                matches(&self.aliases, alias_ref)
                    || matches(&self.packs, pack)
                    || matches(&self.texts, text)
            }
            CommandRef::Builtin { verb, text } => {
                matches(&self.builtins, verb) || matches(&self.texts, text)
            }
        }
    }

    fn connection_ok(&self, s: &Subject) -> bool {
        self.connections
            .as_ref()
            .is_none_or(|set| set.is_match(&s.connection))
    }

    fn org_ok(&self, s: &Subject) -> bool {
        self.orgs
            .as_ref()
            .is_none_or(|set| s.org.as_deref().is_some_and(|o| set.is_match(o)))
    }

    fn room_ok(&self, s: &Subject) -> bool {
        self.rooms.as_ref().is_none_or(|r| r.is_match(s))
    }

    fn user_ok(&self, s: &Subject, policy: &AclPolicy) -> bool {
        self.users.as_ref().is_none_or(|u| u.is_match(s, policy))
    }

    fn applies(&self, s: &Subject, c: &CommandRef, policy: &AclPolicy) -> bool {
        self.covers(c)
            && self.connection_ok(s)
            && self.org_ok(s)
            && self.room_ok(s)
            && self.user_ok(s, policy)
    }

    /// Every reason this rule does not apply (empty when it does).
    fn why_not(&self, s: &Subject, c: &CommandRef, policy: &AclPolicy) -> Vec<String> {
        let src = &self.source.selectors;
        let mut out = Vec::new();
        if !self.covers(c) {
            out.push(explain::not_covered(c, &self.source));
        }
        if !self.connection_ok(s) {
            out.push(format!(
                "connection {} is not in {}",
                explain::show(&s.connection),
                explain::list("connections", &src.connections)
            ));
        }
        if !self.org_ok(s) {
            out.push(match &s.org {
                Some(org) => format!(
                    "org {} is not in {}",
                    explain::show(org),
                    explain::list("orgs", &src.orgs)
                ),
                None => format!(
                    "there is no org here, and the rule needs {}",
                    explain::list("orgs", &src.orgs)
                ),
            });
        }
        if !self.room_ok(s) {
            out.push(format!(
                "room {} is not in {}",
                explain::room(s),
                explain::list("rooms", &src.rooms)
            ));
        }
        if !self.user_ok(s, policy) {
            out.push(format!(
                "user {} is not in {}",
                explain::user(s),
                explain::list("users", &src.users)
            ));
        }
        out
    }
}

/// Compiles a list of plain patterns, reporting each bad entry at `key.name[i]`.
fn pattern_list(
    key: &str,
    name: &str,
    entries: &[String],
    check: fn(&str) -> Result<(), String>,
    problems: &mut Problems,
) -> Option<PatternSet> {
    if entries.is_empty() {
        return None;
    }
    let mut ok = true;
    for (i, e) in entries.iter().enumerate() {
        if let Err(reason) = check(e) {
            problems.push(format!("{key}.{name}[{i}]"), reason);
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    match PatternSet::new(entries.iter().map(String::as_str), false) {
        Ok(set) => Some(set),
        Err(reason) => {
            problems.push(format!("{key}.{name}"), reason);
            None
        }
    }
}

fn scoped(key: &str, pairs: &[(String, String)], fold: bool, problems: &mut Problems) -> ScopedSet {
    ScopedSet::new(pairs, fold).unwrap_or_else(|reason| {
        problems.push(key, reason);
        ScopedSet::default()
    })
}

fn compile_users(
    key: &str,
    field: &str,
    entries: &[String],
    groups: &ResolvedGroups,
    problems: &mut Problems,
) -> Option<WhoMatcher> {
    if entries.is_empty() {
        return None;
    }
    let (mut any, mut admins) = (false, false);
    let (mut ids, mut names) = (Vec::new(), Vec::new());
    for (i, entry) in entries.iter().enumerate() {
        let expanded = rules::parse_who(entry).and_then(|who| groups.expand(who));
        match expanded {
            Ok(list) => {
                for who in list {
                    match who {
                        Who::Any => any = true,
                        Who::Admins => admins = true,
                        Who::Id { conn, id } => ids.push((conn, id)),
                        Who::Name { conn, name } => names.push((conn, name)),
                        Who::Group(_) => {} // groups come back expanded
                    }
                }
            }
            Err(reason) => problems.push(format!("{key}.{field}[{i}]"), reason),
        }
    }
    Some(WhoMatcher {
        any,
        admins,
        ids: scoped(&format!("{key}.{field}"), &ids, false, problems),
        names: scoped(&format!("{key}.{field}"), &names, true, problems),
    })
}

fn compile_rooms(key: &str, entries: &[String], problems: &mut Problems) -> Option<WhereMatcher> {
    if entries.is_empty() {
        return None;
    }
    let (mut any, mut direct, mut group) = (false, false, false);
    let (mut ids, mut names) = (Vec::new(), Vec::new());
    for (i, entry) in entries.iter().enumerate() {
        match rules::parse_where(entry) {
            Ok(Where::Any) => any = true,
            Ok(Where::Direct) => direct = true,
            Ok(Where::Group) => group = true,
            Ok(Where::Id { conn, id }) => ids.push((conn, id)),
            Ok(Where::Name { conn, name }) => names.push((conn, name)),
            Err(reason) => problems.push(format!("{key}.rooms[{i}]"), reason),
        }
    }
    Some(WhereMatcher {
        any,
        direct,
        group,
        ids: scoped(&format!("{key}.rooms"), &ids, false, problems),
        names: scoped(&format!("{key}.rooms"), &names, true, problems),
    })
}

fn compile_rule(
    key: String,
    rule: &AccessRuleConfig,
    groups: &ResolvedGroups,
    problems: &mut Problems,
) -> Option<CompiledRule> {
    let before = problems.0.len();
    check_unknown(&rule.unknown, &key, RULE_KEYS, problems);
    if rule.action.is_none() {
        problems.push(
            format!("{key}.action"),
            "missing: every rule needs action = \"allow\" or action = \"deny\"",
        );
    }
    if rule.selectors.aliases.is_empty()
        && rule.selectors.packs.is_empty()
        && rule.builtins.is_empty()
        && rule.selectors.texts.is_empty()
    {
        problems.push(
            &key,
            "empty rule: it covers no command; give at least one of aliases, packs, builtins or texts",
        );
    }
    let compiled = CompiledRule {
        action: rule.action.unwrap_or_default(),
        comment: rule.comment.clone(),
        aliases: pattern_list(
            &key,
            "aliases",
            &rule.selectors.aliases,
            rules::check_alias_pattern,
            problems,
        ),
        packs: pattern_list(
            &key,
            "packs",
            &rule.selectors.packs,
            rules::check_pack_pattern,
            problems,
        ),
        builtins: pattern_list(
            &key,
            "builtins",
            &rule.builtins,
            rules::check_builtin_pattern,
            problems,
        ),
        texts: pattern_list(
            &key,
            "texts",
            &rule.selectors.texts,
            rules::check_plain_pattern,
            problems,
        ),
        users: compile_users(&key, "users", &rule.selectors.users, groups, problems),
        rooms: compile_rooms(&key, &rule.selectors.rooms, problems),
        connections: pattern_list(
            &key,
            "connections",
            &rule.selectors.connections,
            rules::check_connection_pattern,
            problems,
        ),
        orgs: pattern_list(
            &key,
            "orgs",
            &rule.selectors.orgs,
            rules::check_plain_pattern,
            problems,
        ),
        text: explain::rule_text(rule),
        source: AccessRuleConfig {
            unknown: Default::default(),
            ..rule.clone()
        },
    };
    (problems.0.len() == before).then_some(compiled)
}

impl AclPolicy {
    /// Checks and compiles `[access]`. On failure, returns every problem found, each with
    /// its exact key (`access.rules[2].users[0]`, `access.groups.oncall`) and the reason.
    pub fn compile(cfg: &AccessConfig) -> Result<AclPolicy, Vec<AclProblem>> {
        Self::compile_with_confirm(cfg, &ConfirmConfig::default())
    }

    /// Checks and compiles `[access]` and `[confirm]` together (confirmation rules name
    /// the access groups). Every problem of both is reported.
    pub fn compile_with_confirm(
        cfg: &AccessConfig,
        confirm: &ConfirmConfig,
    ) -> Result<AclPolicy, Vec<AclProblem>> {
        let mut problems = Problems::default();
        check_unknown(&cfg.unknown, "access", ACCESS_KEYS, &mut problems);

        let mut admin_pairs = Vec::with_capacity(cfg.admins.len());
        for (i, entry) in cfg.admins.iter().enumerate() {
            match rules::parse_admin(entry) {
                Ok(pair) => admin_pairs.push(pair),
                Err(reason) => problems.push(format!("access.admins[{i}]"), reason),
            }
        }
        let admins = scoped("access.admins", &admin_pairs, false, &mut problems);

        let groups = ResolvedGroups::resolve(&cfg.groups, &mut problems);

        let rules: Vec<CompiledRule> = cfg
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                compile_rule(format!("access.rules[{i}]"), r, &groups, &mut problems)
            })
            .collect();
        let (confirm_rules, confirm_settings) = compile_confirm(confirm, &groups, &mut problems);

        if !problems.0.is_empty() {
            return Err(problems.0);
        }
        Ok(AclPolicy {
            default: cfg.default,
            admins,
            admin_entries: cfg.admins.clone(),
            group_names: cfg.groups.keys().cloned().collect(),
            rules,
            confirm: confirm_rules,
            confirm_settings,
        })
    }

    /// What `command` from `subject` must wait for, if anything: the first
    /// `[[confirm.rules]]` entry that applies.
    pub fn confirmation(&self, subject: &Subject, command: &CommandRef) -> Option<Requirement> {
        let (index, rule) = self
            .confirm
            .iter()
            .enumerate()
            .find(|(_, r)| r.selector.applies(subject, command, self))?;
        Some(Requirement {
            rule: Some(index),
            approvers: rule
                .approvers
                .is_some()
                .then(|| rule.approver_entries.clone()),
            comment: rule.selector.comment.clone(),
        })
    }

    /// Whether `approver` is among the approvers of confirmation rule `rule` (`false`
    /// for a rule without approvers, or past the end). Whether the approver is the
    /// sender is the caller's check.
    pub fn is_approver(&self, rule: usize, approver: &Subject) -> bool {
        self.confirm
            .get(rule)
            .and_then(|r| r.approvers.as_ref())
            .is_some_and(|who| who.is_match(approver, self))
    }

    /// The confirmation rules `approver` is an approver of.
    pub fn approver_rules(&self, approver: &Subject) -> Vec<usize> {
        (0..self.confirm.len())
            .filter(|&i| self.is_approver(i, approver))
            .collect()
    }

    /// `[confirm]`'s timings.
    pub fn confirm_settings(&self) -> ConfirmSettings {
        self.confirm_settings
    }

    /// Whether `subject` is listed in `admins` (by connection and user id).
    pub fn is_admin(&self, subject: &Subject) -> bool {
        self.admins.is_match(&subject.connection, &subject.user_id)
    }

    /// How many rules the policy has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// What happens when no rule applies.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// One line describing rule `index` as explain shows it
    /// (`rule 2: allow aliases=[core.*] users=[@oncall]`), or `None` past the end.
    pub fn describe_rule(&self, index: usize) -> Option<String> {
        self.rules
            .get(index)
            .map(|r| format!("rule {index}: {}", r.text))
    }

    /// The floor that decides before any rule, if one does.
    fn floor_before_rules(&self, s: &Subject, c: &CommandRef) -> Option<Decision> {
        let CommandRef::Builtin { verb, .. } = c else {
            return None;
        };
        if ADMIN_ONLY_BUILTINS.contains(&verb.as_str()) && !self.is_admin(s) {
            return Some(floor(false));
        }
        if ALWAYS_ALLOWED_BUILTINS.contains(&verb.as_str()) {
            return Some(floor(true));
        }
        None
    }

    /// The decision when no rule applied.
    fn fallback(&self, c: &CommandRef) -> Decision {
        if is_admin_only(c) {
            // Only admins get this far with an admin-only built-in.
            return floor(true);
        }
        if matches!(c, CommandRef::Builtin { verb, .. } if SELF_SERVICE_BUILTINS.contains(&verb.as_str()))
        {
            return Decision {
                allowed: true,
                rule: None,
                reason: DecisionReason::SelfService,
            };
        }
        Decision {
            allowed: self.default == Action::Allow,
            rule: None,
            reason: DecisionReason::Default,
        }
    }

    /// May `subject` run `command`? Floors first, then the first rule that applies, then
    /// the default.
    pub fn evaluate(&self, subject: &Subject, command: &CommandRef) -> Decision {
        if let Some(d) = self.floor_before_rules(subject, command) {
            return d;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.applies(subject, command, self) {
                return Decision {
                    allowed: rule.action == Action::Allow,
                    rule: Some(i),
                    reason: DecisionReason::Rule(i),
                };
            }
        }
        self.fallback(command)
    }

    /// The same decision as [`evaluate`](Self::evaluate), with the reasoning: the deciding
    /// rule and its text, and why each earlier rule did not apply.
    pub fn explain(&self, subject: &Subject, command: &CommandRef) -> Explanation {
        let mut ex = Explanation {
            decision: floor(false),
            subject: explain::subject(subject),
            command: explain::command(command),
            rule_text: None,
            comment: None,
            skipped: Vec::new(),
            summary: String::new(),
        };
        if let Some(d) = self.floor_before_rules(subject, command) {
            ex.decision = d;
            let verb = explain::show(builtin_verb(command));
            ex.summary = if d.allowed {
                format!("decided by the floor: {verb} is always allowed")
            } else {
                format!(
                    "decided by the admin-only floor: {verb} is admin-only and {} is not an admin",
                    explain::user(subject)
                )
            };
            return ex;
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let reasons = rule.why_not(subject, command, self);
            if reasons.is_empty() {
                ex.decision = Decision {
                    allowed: rule.action == Action::Allow,
                    rule: Some(i),
                    reason: DecisionReason::Rule(i),
                };
                let text = format!("rule {i}: {}", rule.text);
                ex.summary = format!("decided by {text}");
                ex.rule_text = Some(text);
                ex.comment = rule.comment.clone();
                return ex;
            }
            ex.skipped.push(SkippedRule {
                index: i,
                reason: reasons.join("; "),
            });
        }
        ex.decision = self.fallback(command);
        ex.summary = if ex.decision.reason == DecisionReason::AdminFloor {
            format!(
                "no rule applied; decided by the admin-only floor: {} is admin-only and {} is an admin",
                explain::show(builtin_verb(command)),
                explain::user(subject)
            )
        } else if ex.decision.reason == DecisionReason::SelfService {
            format!(
                "no rule applied; {} decides only on waiting commands its sender may decide on, so it is allowed",
                explain::show(builtin_verb(command)),
            )
        } else {
            format!(
                "no rule applied; decided by the default: {}",
                self.default.as_str()
            )
        };
        ex
    }
}

/// Checks and compiles `[confirm]`, reporting problems under `confirm.*`.
fn compile_confirm(
    cfg: &ConfirmConfig,
    groups: &ResolvedGroups,
    problems: &mut Problems,
) -> (Vec<ConfirmRule>, ConfirmSettings) {
    check_unknown(&cfg.unknown, "confirm", CONFIRM_KEYS, problems);
    // A day at most: a request nobody decides on should not linger for a week.
    const MAX_TTL: u64 = 86_400;
    for (key, secs) in [
        ("confirm.ttl_secs", cfg.ttl_secs),
        ("confirm.approval_ttl_secs", cfg.approval_ttl_secs),
    ] {
        if !(1..=MAX_TTL).contains(&secs) {
            problems.push(key, format!("must be between 1 and {MAX_TTL} (seconds)"));
        }
    }
    let rules = cfg
        .rules
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| compile_confirm_rule(i, rule, groups, problems))
        .collect();
    let settings = ConfirmSettings {
        ttl: std::time::Duration::from_secs(cfg.ttl_secs),
        approval_ttl: std::time::Duration::from_secs(cfg.approval_ttl_secs),
        approve_in_direct: cfg.approve_in_direct,
    };
    (rules, settings)
}

fn compile_confirm_rule(
    index: usize,
    rule: &ConfirmRuleConfig,
    groups: &ResolvedGroups,
    problems: &mut Problems,
) -> Option<ConfirmRule> {
    let key = format!("confirm.rules[{index}]");
    let before = problems.0.len();
    check_unknown(&rule.unknown, &key, CONFIRM_RULE_KEYS, problems);
    // The selectors are an access rule's; `action` has no meaning here.
    let as_access = AccessRuleConfig {
        selectors: rule.selectors.clone(),
        action: Some(Action::Allow),
        comment: rule.comment.clone(),
        ..Default::default()
    };
    let select = &rule.selectors;
    if select.aliases.is_empty() && select.packs.is_empty() && select.texts.is_empty() {
        problems.push(
            &key,
            "empty rule: it covers no command; give at least one of aliases, packs or texts",
        );
        return None;
    }
    let selector = compile_rule(key.clone(), &as_access, groups, problems)?;
    let approvers = compile_users(&key, "approvers", &rule.approvers, groups, problems);
    if approvers.as_ref().is_some_and(|a| a.any) {
        problems.push(
            format!("{key}.approvers"),
            "\"any\" would let anyone approve; name the people or a group",
        );
    }
    (problems.0.len() == before).then_some(ConfirmRule {
        selector,
        approvers,
        approver_entries: rule.approvers.clone(),
    })
}

fn builtin_verb(c: &CommandRef) -> &str {
    match c {
        CommandRef::Builtin { verb, .. } => verb,
        CommandRef::Alias { alias_ref, .. } => alias_ref,
    }
}

fn is_admin_only(c: &CommandRef) -> bool {
    matches!(c, CommandRef::Builtin { verb, .. } if ADMIN_ONLY_BUILTINS.contains(&verb.as_str()))
}

fn floor(allowed: bool) -> Decision {
    Decision {
        allowed,
        rule: None,
        reason: DecisionReason::AdminFloor,
    }
}

impl fmt::Debug for AclPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclPolicy")
            .field("default", &self.default)
            .field("admins", &self.admin_entries)
            .field("groups", &self.group_names)
            .field(
                "rules",
                &self
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| format!("rule {i}: {}", r.text))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        alias, builtin, check_table, config, in_dm, in_group, policy, subj, with_org,
    };
    use super::*;

    #[test]
    fn policy_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<AclPolicy>();
    }

    #[test]
    fn the_default_config_denies_everything() {
        let p = AclPolicy::compile(&AccessConfig::default()).expect("default compiles");
        assert_eq!(p.rule_count(), 0);
        assert_eq!(p.default_action(), Action::Deny);
        let d = p.evaluate(&in_dm("console:alice"), &builtin("help"));
        assert_eq!(
            d,
            Decision {
                allowed: false,
                rule: None,
                reason: DecisionReason::Default
            }
        );
        assert!(!p.is_admin(&in_dm("console:alice")));
    }

    #[test]
    fn default_allow_and_default_deny() {
        let allow = policy("[access]\ndefault = \"allow\"\n");
        let deny = policy("[access]\ndefault = \"deny\"\n");
        let absent = policy("[access]\n");
        let s = in_group("slack:U1", "slack:C1");
        let c = alias("core.local", "run date");
        assert!(allow.evaluate(&s, &c).allowed);
        assert!(!deny.evaluate(&s, &c).allowed);
        assert!(!absent.evaluate(&s, &c).allowed);
        assert_eq!(allow.evaluate(&s, &c).reason, DecisionReason::Default);
    }

    #[test]
    fn the_first_rule_that_applies_wins() {
        let deny_first = policy(
            r#"
            [access]
            [[access.rules]]
            aliases = ["core.local"]
            action = "deny"
            [[access.rules]]
            packs = ["core"]
            action = "allow"
            "#,
        );
        let s = in_group("console:bob", "console:ops");
        let d = deny_first.evaluate(&s, &alias("core.local", "run date"));
        assert_eq!(
            d,
            Decision {
                allowed: false,
                rule: Some(0),
                reason: DecisionReason::Rule(0)
            }
        );
        let d = deny_first.evaluate(&s, &alias("core.remote", "run date on x"));
        assert_eq!((d.allowed, d.rule), (true, Some(1)));

        let allow_first = policy(
            r#"
            [access]
            [[access.rules]]
            packs = ["core"]
            action = "allow"
            [[access.rules]]
            aliases = ["core.local"]
            action = "deny"
            "#,
        );
        let d = allow_first.evaluate(&s, &alias("core.local", "run date"));
        assert_eq!((d.allowed, d.rule), (true, Some(0)));
    }

    #[test]
    fn groups_nest() {
        let p = policy(
            r#"
            [access]
            [access.groups]
            oncall = ["slack:U1*", "@sre"]
            sre = ["console:bob", "@leads"]
            leads = ["console:name:Carol*"]
            [[access.rules]]
            packs = ["ops"]
            users = ["@oncall"]
            action = "allow"
            "#,
        );
        let carol = {
            let mut s = in_dm("console:c0");
            s.user_names = vec!["Carol Danvers".into()];
            s
        };
        check_table(
            &p,
            &[
                (in_dm("slack:U123"), alias("ops.restart", "restart"), true),
                (in_dm("console:bob"), alias("ops.restart", "restart"), true),
                (carol, alias("ops.restart", "restart"), true),
                (
                    in_dm("console:dave"),
                    alias("ops.restart", "restart"),
                    false,
                ),
                (in_dm("slack:U2"), alias("ops.restart", "restart"), false),
                // The group's id glob is scoped to its connection.
                (
                    in_dm("console:U123"),
                    alias("ops.restart", "restart"),
                    false,
                ),
            ],
        );
    }

    #[test]
    fn an_empty_group_matches_nobody_while_absent_users_match_anyone() {
        let p = policy(
            r#"
            [access]
            [access.groups]
            nobody = []
            [[access.rules]]
            aliases = ["a.one"]
            users = ["@nobody"]
            action = "allow"
            [[access.rules]]
            aliases = ["a.two"]
            users = []
            action = "allow"
            "#,
        );
        let s = in_dm("console:bob");
        assert!(!p.evaluate(&s, &alias("a.one", "one")).allowed);
        assert!(p.evaluate(&s, &alias("a.two", "two")).allowed);
    }

    #[test]
    fn names_are_case_insensitive_and_ids_case_sensitive() {
        let p = policy(
            r#"
            [access]
            [[access.rules]]
            packs = ["x"]
            users = ["slack:name:alice*", "console:bob", "matrix:name:émile"]
            rooms = ["slack:name:OPS-*", "console:*", "matrix:*"]
            action = "allow"
            "#,
        );
        let alice = |names: &[&str], room: Option<&str>| {
            let mut s = in_group("slack:U9", "slack:C9");
            s.user_names = names.iter().map(|n| (*n).to_owned()).collect();
            s.room_name = room.map(str::to_owned);
            s
        };
        let emile = {
            let mut s = in_group("matrix:@e:example.org", "matrix:!r:example.org");
            s.user_names = vec!["ÉMILE".into()];
            s
        };
        let c = alias("x.y", "y");
        check_table(
            &p,
            &[
                (alice(&["Alice Smith"], Some("ops-eu")), c.clone(), true),
                (
                    alice(&["someone", "ALICE"], Some("Ops-EU")),
                    c.clone(),
                    true,
                ),
                (alice(&["Bob"], Some("ops-eu")), c.clone(), false),
                (alice(&["Alice"], Some("dev")), c.clone(), false),
                (alice(&["Alice"], None), c.clone(), false),
                (alice(&[], Some("ops")), c.clone(), false),
                (in_group("console:bob", "console:r"), c.clone(), true),
                (in_group("console:Bob", "console:r"), c.clone(), false),
                (in_group("console:BOB", "console:r"), c.clone(), false),
                (emile, c.clone(), true),
            ],
        );
        // A name entry never matches an id, nor an id entry a name.
        let mut named_bob = in_group("console:U42", "console:r");
        named_bob.user_names = vec!["bob".into()];
        assert!(!p.evaluate(&named_bob, &c).allowed);
        let mut id_alice = in_group("slack:alice", "slack:C1");
        id_alice.room_name = Some("ops-1".into());
        assert!(!p.evaluate(&id_alice, &c).allowed);
    }

    #[test]
    fn star_and_question_mark_globs() {
        let p = policy(
            r#"
            [access]
            [[access.rules]]
            aliases = ["packs.deploy_?", "core.*"]
            users = ["slack-*:U1?3"]
            action = "allow"
            "#,
        );
        let u = |id: &str| in_dm(id);
        check_table(
            &p,
            &[
                (u("slack-main:U123"), alias("core.local", "x"), true),
                (u("slack-eu:U1x3"), alias("core.remote_sudo", "x"), true),
                (u("slack-main:U1234"), alias("core.local", "x"), false),
                (u("slack-main:U13"), alias("core.local", "x"), false),
                (u("slack:U123"), alias("core.local", "x"), false),
                (u("slack-main:U123"), alias("packs.deploy_a", "x"), true),
                (u("slack-main:U123"), alias("packs.deploy_ab", "x"), false),
                (u("slack-main:U123"), alias("packs.deploy", "x"), false),
                (u("slack-main:U123"), alias("corex.local", "x"), false),
            ],
        );
    }

    #[test]
    fn ids_containing_colons_and_slashes_match_exactly() {
        let p = policy(
            r#"
            [access]
            [[access.rules]]
            packs = ["x"]
            users = ["matrix:@alice:example.org", "xmpp:bob@example.org/*"]
            action = "allow"
            "#,
        );
        let c = alias("x.y", "y");
        check_table(
            &p,
            &[
                (in_dm("matrix:@alice:example.org"), c.clone(), true),
                (in_dm("matrix:@alice:example.org.evil"), c.clone(), false),
                (in_dm("matrix-2:@alice:example.org"), c.clone(), false),
                (in_dm("xmpp:bob@example.org/phone"), c.clone(), true),
                (in_dm("xmpp:bob@example.org"), c.clone(), false),
            ],
        );
    }

    #[test]
    fn admin_only_builtins_have_a_floor() {
        let p = policy(
            r#"
            [access]
            default = "deny"
            admins = ["console:alice", "slack-*:UADM*"]
            [[access.rules]]
            builtins = ["session_*", "acl", "help", "reload", "audit*"]
            action = "allow"
            comment = "tries to open admin commands to everyone"
            "#,
        );
        let bob = in_dm("console:bob");
        let alice = in_dm("console:alice");
        for verb in ADMIN_ONLY_BUILTINS {
            let d = p.evaluate(&bob, &builtin(verb));
            assert_eq!(
                d,
                Decision {
                    allowed: false,
                    rule: None,
                    reason: DecisionReason::AdminFloor
                },
                "{verb}"
            );
            let d = p.evaluate(&alice, &builtin(verb));
            assert_eq!(
                (d.allowed, d.reason),
                (true, DecisionReason::Rule(0)),
                "{verb}"
            );
        }
        // Rules still govern the other built-ins for everyone.
        assert!(p.evaluate(&bob, &builtin("session_start")).allowed);
        assert!(p.evaluate(&bob, &builtin("help")).allowed);
        assert!(!p.evaluate(&bob, &builtin("whoami")).allowed);
        assert!(p.is_admin(&in_dm("slack-main:UADM1")));
        assert!(!p.is_admin(&in_dm("slack-main:UADX")));
    }

    #[test]
    fn admins_reach_admin_builtins_without_a_rule_but_not_past_a_deny_rule() {
        let p = policy(
            r#"
            [access]
            default = "deny"
            admins = ["console:alice"]
            [[access.rules]]
            builtins = ["session_cancel"]
            rooms = ["group"]
            action = "deny"
            comment = "no revoking in public"
            "#,
        );
        let alice_dm = in_dm("console:alice");
        let alice_room = in_group("console:alice", "console:ops");
        let d = p.evaluate(&alice_dm, &builtin("acl"));
        assert_eq!(
            d,
            Decision {
                allowed: true,
                rule: None,
                reason: DecisionReason::AdminFloor
            }
        );
        assert!(p.evaluate(&alice_dm, &builtin("session_cancel")).allowed);
        let d = p.evaluate(&alice_room, &builtin("session_cancel"));
        assert_eq!((d.allowed, d.rule), (false, Some(0)));
        // Not admin-only: the default decides, admin or not.
        assert!(!p.evaluate(&alice_dm, &builtin("help")).allowed);
    }

    #[test]
    fn admins_are_not_exempt_from_deny_rules() {
        let p = policy(
            r#"
            [access]
            default = "allow"
            admins = ["console:alice"]
            [[access.rules]]
            packs = ["prod"]
            rooms = ["direct"]
            action = "deny"
            [[access.rules]]
            packs = ["break_glass"]
            users = ["admins"]
            action = "allow"
            [[access.rules]]
            packs = ["break_glass"]
            action = "deny"
            "#,
        );
        check_table(
            &p,
            &[
                (
                    in_dm("console:alice"),
                    alias("prod.deploy", "deploy"),
                    false,
                ),
                (
                    in_group("console:alice", "console:ops"),
                    alias("prod.deploy", "deploy"),
                    true,
                ),
                (
                    in_dm("console:alice"),
                    alias("break_glass.open", "open"),
                    true,
                ),
                (
                    in_dm("console:bob"),
                    alias("break_glass.open", "open"),
                    false,
                ),
            ],
        );
    }

    #[test]
    fn org_and_connection_scoping() {
        let p = policy(
            r#"
            [access]
            [[access.rules]]
            packs = ["ops"]
            connections = ["slack-*"]
            orgs = ["T01*", "E99"]
            action = "allow"
            [[access.rules]]
            packs = ["local"]
            connections = ["console"]
            action = "allow"
            "#,
        );
        let s = |user: &str, org: Option<&str>| {
            let s = in_dm(user);
            match org {
                Some(o) => with_org(s, o),
                None => s,
            }
        };
        let ops = alias("ops.restart", "restart");
        check_table(
            &p,
            &[
                (s("slack-main:U1", Some("T0123")), ops.clone(), true),
                (s("slack-eu:U1", Some("E99")), ops.clone(), true),
                (s("slack-main:U1", Some("T0999")), ops.clone(), false),
                (s("slack-main:U1", None), ops.clone(), false),
                (s("mattermost:U1", Some("T0123")), ops.clone(), false),
                (s("console:U1", None), alias("local.x", "x"), true),
                (s("console-2:U1", None), alias("local.x", "x"), false),
            ],
        );
    }

    #[test]
    fn direct_and_group_rooms() {
        let p = policy(
            r#"
            [access]
            [[access.rules]]
            builtins = ["session_start", "token"]
            rooms = ["direct"]
            action = "allow"
            [[access.rules]]
            packs = ["chat"]
            rooms = ["group"]
            action = "allow"
            [[access.rules]]
            packs = ["ops"]
            rooms = ["slack:C1", "slack:name:ops-*", "direct"]
            action = "allow"
            "#,
        );
        let named = |id: &str, name: &str| {
            let mut s = in_group("slack:U1", id);
            s.room_name = Some(name.into());
            s
        };
        check_table(
            &p,
            &[
                (in_dm("slack:U1"), builtin("session_start"), true),
                (
                    in_group("slack:U1", "slack:C1"),
                    builtin("session_start"),
                    false,
                ),
                (
                    in_group("slack:U1", "slack:C1"),
                    alias("chat.say", "say"),
                    true,
                ),
                (in_dm("slack:U1"), alias("chat.say", "say"), false),
                (in_group("slack:U1", "slack:C1"), alias("ops.x", "x"), true),
                (named("slack:C2", "ops-eu"), alias("ops.x", "x"), true),
                (named("slack:C3", "dev"), alias("ops.x", "x"), false),
                (in_dm("slack:U1"), alias("ops.x", "x"), true),
                // A direct conversation's id is a room id like any other.
                (
                    subj("slack:U1", "slack:C1", RoomKind::Direct),
                    alias("ops.x", "x"),
                    true,
                ),
            ],
        );
    }

    #[test]
    fn text_globs_cover_aliases_and_builtins() {
        let p = policy(
            r#"
            [access]
            default = "allow"
            [[access.rules]]
            texts = ["deploy * to prod*", "*--force*"]
            users = ["@releasers"]
            action = "allow"
            [[access.rules]]
            texts = ["deploy * to prod*", "*--force*"]
            action = "deny"
            [access.groups]
            releasers = ["console:rita"]
            "#,
        );
        let deploy = |t: &str| alias("packs.deploy", t);
        check_table(
            &p,
            &[
                (
                    in_dm("console:bob"),
                    deploy("deploy web to production"),
                    false,
                ),
                (
                    in_dm("console:rita"),
                    deploy("deploy web to production"),
                    true,
                ),
                (in_dm("console:bob"), deploy("deploy web to staging"), true),
                (in_dm("console:bob"), deploy("deploy a/b to prod/eu"), false),
                (in_dm("console:bob"), deploy("Deploy web to prod"), true),
                (in_dm("console:bob"), builtin("help"), true),
                (
                    in_dm("console:bob"),
                    CommandRef::Builtin {
                        verb: "session_end".into(),
                        text: "session_end --force".into(),
                    },
                    false,
                ),
            ],
        );
    }

    #[test]
    fn lists_accept_a_single_string() {
        let p = policy(
            r#"
            [access]
            admins = "console:alice"
            [access.groups]
            solo = "console:bob"
            [[access.rules]]
            aliases = "core.local"
            users = "@solo"
            action = "allow"
            "#,
        );
        assert!(p.is_admin(&in_dm("console:alice")));
        assert!(
            p.evaluate(&in_dm("console:bob"), &alias("core.local", "x"))
                .allowed
        );
    }

    #[test]
    fn the_documented_example_config_compiles() {
        let p = policy(
            r#"
            [access]
            default = "deny"
            admins = ["console:alice", "slack-main:U0123"]
            [access.groups]
            oncall = ["slack-main:U1*", "console:bob", "@sre"]
            sre = ["slack-main:name:Ada*"]
            [[access.rules]]
            builtins = ["help", "whoami"]
            action = "allow"
            comment = "everyone may ask for help"
            [[access.rules]]
            aliases  = ["core.*", "packs.deploy"]
            packs    = ["ops"]
            builtins = ["help", "session_*"]
            texts    = ["deploy * to prod*"]
            users    = ["@oncall", "admins", "any", "console:carol", "slack-main:name:Alice*"]
            rooms    = ["direct", "group", "slack-main:C123", "slack-main:name:ops-*"]
            connections = ["slack-*"]
            orgs     = ["T0123"]
            action   = "allow"
            comment  = "why this rule exists"
            "#,
        );
        assert_eq!(p.rule_count(), 2);
        assert_eq!(
            p.describe_rule(0).as_deref(),
            Some("rule 0: allow builtins=[help, whoami]")
        );
        assert_eq!(p.describe_rule(2), None);
        let dbg = format!("{p:?}");
        assert!(dbg.contains("AclPolicy"), "{dbg}");
        assert!(
            dbg.contains("rule 1: allow aliases=[core.*, packs.deploy]"),
            "{dbg}"
        );
        let s = with_org(in_group("slack-main:U0123", "slack-main:C9"), "T0123");
        assert!(p.evaluate(&s, &alias("ops.x", "x")).allowed);
    }

    #[test]
    fn access_config_reads_from_serde_defaults() {
        let cfg = config("[access]\n");
        assert_eq!(cfg, AccessConfig::default());
    }

    #[test]
    fn odd_inputs_never_panic() {
        let p = policy(
            r#"
            [access]
            admins = ["*:*"]
            [access.groups]
            g = ["*:name:*", "x:?"]
            [[access.rules]]
            aliases = ["*"]
            texts = ["*\u0000*", "é?"]
            users = ["@g"]
            rooms = ["*:name:*", "*:*"]
            orgs = ["*"]
            action = "deny"
            "#,
        );
        let long = "x".repeat(100_000);
        let weird = [
            "",
            ":",
            "::",
            "\u{0}",
            "\n\r\t",
            "é",
            "ÉÉÉ",
            "İ",
            "\u{202e}rtl",
            long.as_str(),
        ];
        for a in weird {
            for b in weird {
                let s = Subject {
                    connection: a.into(),
                    user_id: b.into(),
                    user_names: vec![a.into(), b.into()],
                    room_id: b.into(),
                    room_name: Some(a.into()),
                    room_kind: RoomKind::Group,
                    org: Some(b.into()),
                };
                for c in [
                    CommandRef::Alias {
                        alias_ref: a.into(),
                        pack: b.into(),
                        text: a.into(),
                    },
                    CommandRef::Builtin {
                        verb: b.into(),
                        text: a.into(),
                    },
                ] {
                    let d = p.evaluate(&s, &c);
                    let ex = p.explain(&s, &c);
                    assert_eq!(d, ex.decision);
                    let shown = ex.to_string();
                    assert!(shown.len() < 4_000, "explanations stay short");
                    assert!(
                        shown.lines().count() == ex.lines().len(),
                        "values from chat never add lines: {shown:?}"
                    );
                }
            }
        }
    }
}
