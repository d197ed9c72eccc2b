//! `[confirm]`: which commands wait for a confirmation or a second person's approval.
//!
//! A confirmation rule uses the selectors of an access rule (`aliases`, `packs`, `texts`,
//! and the who/where lists `users`, `rooms`, `connections`, `orgs`), without `action`:
//! the command it covers is not refused, it waits. Without `approvers` the person who
//! sent it confirms it (`!st2confirm <code>`); with `approvers` someone else from that
//! list must approve it (`!st2approve <code>`). The first rule that applies decides, as
//! with access rules. An alias can also ask for confirmation itself with
//! `extra.stormbridge.confirm: true` (checked by the dispatcher, which has the alias).
//!
//! ```toml
//! [confirm]
//! ttl_secs = 120              # how long a confirmation waits
//! approval_ttl_secs = 1800    # how long an approval waits
//! approve_in_direct = false   # approvals typed in a direct chat with the bot count
//!
//! [[confirm.rules]]
//! packs = ["packs"]
//! comment = "installing or removing packs changes every node"
//!
//! [[confirm.rules]]
//! texts = ["deploy * prod*"]
//! approvers = ["@leads"]
//! comment = "production deploys need a second pair of eyes"
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::rules::{string_list, RuleSelectors, UnknownKeys};

/// The `[confirm]` section as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ConfirmConfig {
    /// Seconds a confirmation waits for its sender.
    pub ttl_secs: u64,
    /// Seconds an approval waits for an approver.
    pub approval_ttl_secs: u64,
    /// Whether an approval typed in a direct chat with the bot counts (otherwise only in
    /// the room the command was sent in).
    pub approve_in_direct: bool,
    /// The rules, in order; the first that applies decides.
    pub rules: Vec<ConfirmRuleConfig>,
    /// Keys of `[confirm]` that are not part of the schema (reported by `compile`).
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

impl Default for ConfirmConfig {
    /// Two minutes to confirm, half an hour to approve, approvals in the room only, and no
    /// rules (nothing waits unless an alias asks for it).
    fn default() -> Self {
        Self {
            ttl_secs: 120,
            approval_ttl_secs: 1800,
            approve_in_direct: false,
            rules: Vec::new(),
            unknown: UnknownKeys::default(),
        }
    }
}

/// One `[[confirm.rules]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ConfirmRuleConfig {
    /// What the rule covers and for whom: an access rule's selectors (without `builtins`:
    /// built-in commands never wait). Flattened before `unknown`, which gets the rest.
    #[serde(flatten)]
    pub selectors: RuleSelectors,
    /// Who may approve (same syntax as `users`); empty: the sender confirms it themself.
    #[serde(deserialize_with = "string_list")]
    pub approvers: Vec<String>,
    /// Why the rule exists; shown with the request.
    pub comment: Option<String>,
    /// Keys of this rule that are not part of the schema (reported by `compile`).
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

pub(super) const CONFIRM_KEYS: &[&str] = &[
    "ttl_secs",
    "approval_ttl_secs",
    "approve_in_direct",
    "rules",
];
pub(super) const CONFIRM_RULE_KEYS: &[&str] = &[
    "aliases",
    "packs",
    "texts",
    "users",
    "rooms",
    "connections",
    "orgs",
    "approvers",
    "comment",
];

/// The timing and place settings of `[confirm]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmSettings {
    /// How long a confirmation waits.
    pub ttl: Duration,
    /// How long an approval waits.
    pub approval_ttl: Duration,
    /// Whether approvals typed in a direct chat with the bot count.
    pub approve_in_direct: bool,
}

impl Default for ConfirmSettings {
    fn default() -> Self {
        let c = ConfirmConfig::default();
        Self {
            ttl: Duration::from_secs(c.ttl_secs),
            approval_ttl: Duration::from_secs(c.approval_ttl_secs),
            approve_in_direct: c.approve_in_direct,
        }
    }
}

/// What a command must wait for before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The deciding `[[confirm.rules]]` index; `None` when the alias asked for it.
    pub rule: Option<usize>,
    /// `None`: the sender confirms. `Some`: someone else from these entries approves
    /// (as written, for messages).
    pub approvers: Option<Vec<String>>,
    /// The rule's comment.
    pub comment: Option<String>,
}

impl Requirement {
    /// What an alias's own `extra.stormbridge.confirm: true` asks for.
    pub fn by_alias() -> Self {
        Self {
            rule: None,
            approvers: None,
            comment: None,
        }
    }

    /// Whether another person must approve.
    pub fn needs_approval(&self) -> bool {
        self.approvers.is_some()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::super::test_support::{alias, config, in_group};
    use super::*;
    use crate::acl::{AclPolicy, AclProblem};

    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        confirm: ConfirmConfig,
    }

    fn compile(text: &str) -> Result<AclPolicy, Vec<AclProblem>> {
        let confirm = toml::from_str::<Doc>(text).expect("TOML").confirm;
        AclPolicy::compile_with_confirm(&config(text), &confirm)
    }

    const POLICY: &str = r#"
        [access]
        default = "allow"
        [access.groups]
        leads = ["chat:bob", "chat:carol"]
        [confirm]
        ttl_secs = 30
        [[confirm.rules]]
        packs = ["packs"]
        comment = "packs change every node"
        [[confirm.rules]]
        texts = ["deploy * to prod*"]
        users = ["chat:alice", "chat:bob"]
        approvers = ["@leads"]
    "#;

    #[test]
    fn the_first_rule_that_applies_decides_what_a_command_waits_for() {
        let policy = compile(POLICY).expect("compiles");
        let alice = in_group("chat:alice", "chat:ops");
        let dave = in_group("chat:dave", "chat:ops");
        let packs = policy
            .confirmation(&alice, &alias("packs.uninstall", "pack uninstall x"))
            .expect("packs wait");
        assert_eq!(packs.rule, Some(0));
        assert!(!packs.needs_approval());
        assert_eq!(packs.comment.as_deref(), Some("packs change every node"));
        let deploy = policy
            .confirmation(&alice, &alias("ops.deploy", "deploy web to prod"))
            .expect("prod deploys wait");
        assert_eq!(deploy.approvers, Some(vec!["@leads".to_owned()]));
        // `users` narrows the rule: dave's deploys are not held; staging never is.
        assert_eq!(
            policy.confirmation(&dave, &alias("ops.deploy", "deploy web to prod")),
            None
        );
        assert_eq!(
            policy.confirmation(&alice, &alias("ops.deploy", "deploy web to staging")),
            None
        );
        assert_eq!(policy.confirm_settings().ttl, Duration::from_secs(30));
        assert_eq!(
            policy.confirm_settings().approval_ttl,
            Duration::from_secs(1800)
        );
    }

    #[test]
    fn approvers_come_from_the_access_groups() {
        let policy = compile(POLICY).expect("compiles");
        assert!(policy.is_approver(1, &in_group("chat:carol", "chat:x")));
        assert!(!policy.is_approver(1, &in_group("chat:alice", "chat:x")));
        assert!(
            !policy.is_approver(0, &in_group("chat:carol", "chat:x")),
            "rule 0 has no approvers"
        );
        assert!(!policy.is_approver(9, &in_group("chat:carol", "chat:x")));
        assert_eq!(
            policy.approver_rules(&in_group("chat:bob", "chat:x")),
            vec![1]
        );
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let problems = compile(
            r#"
            [access.groups]
            leads = ["chat:bob"]
            [confirm]
            ttl_secs = 0
            colour = "red"
            [[confirm.rules]]
            approvers = ["@leads"]
            [[confirm.rules]]
            packs = ["packs"]
            approvers = ["any"]
            [[confirm.rules]]
            aliases = ["ops.deploy"]
            approvers = ["@nobody"]
            action = "allow"
            "#,
        )
        .expect_err("problems");
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "confirm.colour",
            "confirm.ttl_secs",
            "confirm.rules[0]",
            "confirm.rules[1].approvers",
            "confirm.rules[2].approvers[0]",
            "confirm.rules[2].action",
        ] {
            assert!(keys.contains(&key), "{key} missing from {problems:?}");
        }
    }

    #[test]
    fn no_confirm_section_holds_nothing() {
        let policy = compile("[access]\ndefault = \"allow\"\n").expect("compiles");
        let alice = in_group("chat:alice", "chat:ops");
        assert_eq!(
            policy.confirmation(&alice, &alias("packs.uninstall", "x")),
            None
        );
        assert_eq!(policy.confirm_settings(), ConfirmSettings::default());
    }
}
