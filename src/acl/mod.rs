//! Access control: who may run which command, where.
//!
//! The policy is evaluated on what actually runs — the StackStorm action alias a command
//! matched (`pack.name`), or the bridge's own built-in verb — never on the plugin-level
//! command name, which is what made per-alias rules impossible with Errbot's ACLs under
//! err-stackstorm (every alias there is the one command `St2:st2`).
//!
//! This module is plain code: no actor, no I/O. The `AclGate` actor owns an [`AclPolicy`]
//! and asks it [`AclPolicy::evaluate`] for each command and [`AclPolicy::explain`] for
//! `!st2acl explain`.
//!
//! # Configuration (`[access]`)
//!
//! ```toml
//! [access]
//! default = "deny"                         # "allow" | "deny"; "deny" when absent
//! admins = ["console:alice", "slack-main:U0123"]
//!
//! [access.groups]
//! oncall = ["slack-main:U1*", "console:bob", "@sre"]
//! sre = ["slack-main:name:Ada*"]
//!
//! [[access.rules]]
//! builtins = ["help", "whoami"]
//! action = "allow"
//! comment = "everyone may ask for help"
//!
//! [[access.rules]]
//! aliases = ["core.*", "packs.deploy"]    # alias refs, pack.name (globs)
//! packs = ["ops"]                         # pack names (globs)
//! texts = ["deploy * to prod*"]           # the command text after the prefixes (globs)
//! users = ["@oncall", "admins"]           # absent or empty: anyone
//! rooms = ["group", "slack-main:C123"]    # absent or empty: anywhere
//! connections = ["slack-*"]               # absent or empty: any connection
//! orgs = ["T0123"]                        # absent or empty: any organisation
//! action = "allow"                        # required
//! ```
//!
//! Every list also accepts a single string (`users = "console:bob"`).
//!
//! ## What a rule covers
//!
//! A rule covers a command when the command matches **at least one** entry of `aliases`
//! (the alias ref), `packs` (the alias's pack), `builtins` (a built-in verb, without any
//! prefix: `help`, `session_start`, …) or `texts` (the command text after the bot and
//! plugin prefixes, for aliases and built-ins alike). A rule must name at least one of the
//! four. It then applies when, in addition, each of its who/where lists that is present
//! matches: `users`, `rooms`, `connections` and `orgs`. Within one list any entry may match.
//!
//! ## Who (`users`, group members) and where (`rooms`)
//!
//! | entry | matches |
//! |---|---|
//! | `any` | everyone (in `rooms`: everywhere) |
//! | `admins` | anyone in `admins` (users and group members only) |
//! | `@group` | a member of `[access.groups] group` (nested groups are followed) |
//! | `<connection>:<id>` | the user's (room's) platform id on that connection |
//! | `<connection>:name:<name>` | one of the user's display names (the room's name) |
//! | `direct`, `group` | a direct conversation with the bot, a shared room (`rooms` only) |
//!
//! The connection part is everything before the first `:`, so ids that contain `:` (Matrix
//! `@alice:example.org`) work as they are: `matrix:@alice:example.org`. `admins` entries are
//! `<connection>:<id>` only: display names are chosen by their owners, so they never
//! make anyone an administrator. Prefer ids in `users` for the same reason; names are for
//! convenience where a platform's names are controlled.
//!
//! ## Globs and case
//!
//! Every pattern is a glob: `*` matches any run of characters, `?` one character (one
//! byte: for non-ASCII text use `*`), `[abc]` one of a set, `{a,b}` either alternative,
//! `\` escapes. A pattern must match the whole value. **Ids, alias refs, packs, built-ins,
//! texts, connections and orgs are matched case-sensitively; display names (users' and
//! rooms') case-insensitively.**
//!
//! ## Evaluation
//!
//! 1. The fixed floors: a built-in in [`ADMIN_ONLY_BUILTINS`] is denied to anyone who is
//!    not an admin, whatever the rules say ([`DecisionReason::AdminFloor`]); a built-in in
//!    [`ALWAYS_ALLOWED_BUILTINS`] (empty as shipped) is allowed to everyone.
//! 2. The rules, in order: the first rule that applies decides ([`DecisionReason::Rule`]).
//! 3. No rule applied: an admin running an admin-only built-in is allowed (the floor
//!    again, so administrators are never locked out of `!st2acl explain`); everything
//!    else gets `default` ([`DecisionReason::Default`]), except the built-ins that decide on
//!    waiting commands ([`SELF_SERVICE_BUILTINS`]), which are allowed
//!    ([`DecisionReason::SelfService`]).
//!
//! **Admins are not exempt from rules.** A deny rule that applies to an admin denies the
//! admin too; to give admins a way around a deny, put a rule with `users = ["admins"]`
//! before it. This keeps every decision visible in the rule list, and lets an operator
//! fence off even administrators (say, production deploys from a direct message).
//!
//! ## Validation
//!
//! [`AclPolicy::compile`] reports every problem at once, each with the exact key
//! (`access.rules[2].users[0]`, `access.groups.oncall`) and the reason: unknown keys,
//! missing `action`, a rule that covers nothing, malformed entries, bad globs, unknown or
//! cyclic groups, built-in patterns that name no built-in command.

mod confirm;
mod explain;
mod explain_args;
mod matcher;
mod policy;
mod rules;

#[cfg(test)]
mod examples;
#[cfg(test)]
mod test_support;

pub use confirm::{ConfirmConfig, ConfirmRuleConfig, ConfirmSettings, Requirement};
pub use explain::{Explanation, SkippedRule};
pub use explain_args::{explain_subject, resolve_command};
pub use policy::AclPolicy;
pub use rules::{AccessConfig, AccessRuleConfig, AclProblem, Action, RuleSelectors, UnknownKeys};

/// Built-in verbs that only admins may run, whatever the rules say.
///
/// For a non-admin they are denied before any rule is looked at. For an admin the rules
/// still apply (a deny rule can stop an admin); when none applies, the admin is allowed.
pub const ADMIN_ONLY_BUILTINS: &[&str] = &[
    "session_list",
    "session_cancel",
    "acl",
    "reload",
    "audit",
    "auditjob",
    "auditlogs",
];

/// Built-in verbs that everyone may run, whatever the rules say. Empty as shipped:
/// `help` and `whoami` are governed by the rules like everything else.
pub const ALWAYS_ALLOWED_BUILTINS: &[&str] = &[];

/// Built-in verbs that act only on the sender's own things: allowed when no rule applies,
/// whatever `default` says. The decisions on commands already waiting (`[confirm]`) act on
/// what their sender may decide — their own command (`confirm`, `abort`), or one they are
/// an approver of (`approve`, `deny`), and the command itself passes the rules again
/// before it runs. The job commands show and cancel the sender's own jobs (an admin may
/// cancel anyone's). Personal aliases are the sender's own, and what one expands to passes
/// the rules when it runs, as a trigger token's command does when it is called. A rule
/// can still deny them.
pub const SELF_SERVICE_BUILTINS: &[&str] = &[
    "confirm", "abort", "approve", "deny", "pending", "jobs", "job", "last", "logs", "tail",
    "cancel", "alias", "unalias", "aliases", "token", "tokens",
];

/// Every built-in verb the bridge knows (without prefixes). A `builtins` pattern that
/// matches none of these is a configuration error, since it can never cover anything.
pub const KNOWN_BUILTINS: &[&str] = &[
    "help",
    "whoami",
    "session_start",
    "session_end",
    "session_list",
    "session_cancel",
    "acl",
    "reload",
    "confirm",
    "abort",
    "approve",
    "deny",
    "pending",
    "jobs",
    "job",
    "last",
    "logs",
    "tail",
    "cancel",
    "audit",
    "auditjob",
    "auditlogs",
    "alias",
    "unalias",
    "aliases",
    "token",
    "tokens",
    "inquiry",
    "inquiries",
    "answer",
];

pub use crate::domain::message::RoomKind;

/// Who is asking, and where: everything the rules can look at about a person and a room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    /// Name of the configured chat connection (the part before `:` in rule entries).
    pub connection: String,
    /// The user's stable platform id on that connection.
    pub user_id: String,
    /// The user's display names (matched by `name:` entries, case-insensitively).
    pub user_names: Vec<String>,
    /// The room's platform id; for a direct conversation, the conversation's id.
    pub room_id: String,
    /// The room's name, where the platform has one.
    pub room_name: Option<String>,
    /// Direct conversation or shared room.
    pub room_kind: RoomKind,
    /// The team / workspace / organisation id, on platforms that have one.
    pub org: Option<String>,
}

/// What is being run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CommandRef {
    /// A StackStorm action alias the command text matched.
    Alias {
        /// The alias ref, `pack.name`.
        alias_ref: String,
        /// The alias's pack.
        pack: String,
        /// The command text after the bot and plugin prefixes.
        text: String,
    },
    /// One of the bridge's own commands.
    Builtin {
        /// The verb without prefixes: `help`, `session_start`, `acl`, …
        verb: String,
        /// The command text after the bot and plugin prefixes.
        text: String,
    },
}

impl CommandRef {
    /// The command text after the prefixes.
    pub fn text(&self) -> &str {
        match self {
            CommandRef::Alias { text, .. } | CommandRef::Builtin { text, .. } => text,
        }
    }
}

/// Why a command was allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionReason {
    /// The rule with this index (0-based, in file order) applied first.
    Rule(usize),
    /// No rule applied; the policy's `default` decided.
    Default,
    /// A fixed floor decided: an admin-only built-in (denied to non-admins, and allowed
    /// to admins when no rule applied), or an always-allowed built-in.
    AdminFloor,
    /// No rule applied to a built-in in [`SELF_SERVICE_BUILTINS`]: allowed.
    SelfService,
}

/// The answer to "may this subject run this command?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether the command may run.
    pub allowed: bool,
    /// The deciding rule's index; `None` when the default or a floor decided.
    pub rule: Option<usize>,
    /// Why.
    pub reason: DecisionReason,
}

impl Decision {
    /// `allow` or `deny`.
    pub fn verb(&self) -> &'static str {
        if self.allowed {
            "allow"
        } else {
            "deny"
        }
    }
}
