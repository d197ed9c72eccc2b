//! The access-control gate: every command passes here before anything reaches StackStorm.
//!
//! The policy itself (rules, groups, globs, explain) is plain code in `crate::acl`; this
//! actor only owns the current compiled policy, swaps it atomically on reload (SIGHUP), and
//! counts and logs each decision with the rule that made it.

use std::sync::Arc;

use actix::prelude::*;

use super::status::{ActorState, StatusReporter};
use crate::{
    acl::{AclPolicy, CommandRef, Decision, DecisionReason, Explanation, Requirement, Subject},
    metrics::Metrics,
};

/// Asks whether `subject` may run `command`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Verdict")]
pub struct Authorize {
    /// Who and where.
    pub subject: Subject,
    /// What.
    pub command: CommandRef,
}

/// The gate's answer to [`Authorize`].
#[derive(Debug, Clone)]
pub struct Verdict {
    /// May it run?
    pub decision: Decision,
    /// What an allowed alias command must wait for first (`[[confirm.rules]]`).
    pub wait: Option<Requirement>,
}

impl Verdict {
    /// Whether the command may run (possibly after waiting).
    pub fn allowed(&self) -> bool {
        self.decision.allowed
    }
}

/// Asks what a person may decide on among waiting commands.
#[derive(Debug, Clone, Message)]
#[rtype(result = "DeciderRights")]
pub struct WhoCanDecide {
    /// The person, where they decide.
    pub subject: Subject,
    /// The held command being decided: its sender (where it was sent) and what it runs.
    pub held: Option<(Subject, CommandRef)>,
}

/// The answer to [`WhoCanDecide`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeciderRights {
    /// Whether they are an administrator (they see every waiting command).
    pub admin: bool,
    /// The `[[confirm.rules]]` indices they are an approver of.
    pub approver_of: Vec<usize>,
    /// Whether they may approve the held command asked about: by the approvers of the rule
    /// that covers it now (the configuration may have changed since it was asked); when
    /// no rule asks approval for it any more, administrators decide.
    pub approves_held: bool,
}

/// Asks for the full reasoning behind a decision (`!st2acl explain`).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Explanation")]
pub struct Explain {
    /// Who and where.
    pub subject: Subject,
    /// What.
    pub command: CommandRef,
}

/// Asks whether `subject` is an administrator.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct IsAdmin(pub Subject);

/// Replaces the policy (after a reload validated it).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ReplacePolicy(pub Arc<AclPolicy>);

/// The gate actor.
pub struct AclGate {
    policy: Arc<AclPolicy>,
    metrics: Metrics,
    status: StatusReporter,
}

impl AclGate {
    /// A gate enforcing `policy`.
    pub fn new(policy: Arc<AclPolicy>, metrics: Metrics, status: StatusReporter) -> Self {
        Self {
            policy,
            metrics,
            status,
        }
    }
}

impl Actor for AclGate {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.status.state(ActorState::Up, None);
    }
}

fn command_name(command: &CommandRef) -> String {
    match command {
        CommandRef::Alias { alias_ref, .. } => alias_ref.clone(),
        CommandRef::Builtin { verb, .. } => format!("builtin:{verb}"),
    }
}

impl Handler<Authorize> for AclGate {
    type Result = MessageResult<Authorize>;

    fn handle(&mut self, msg: Authorize, _ctx: &mut Self::Context) -> Self::Result {
        let decision = self.policy.evaluate(&msg.subject, &msg.command);
        let reason = match decision.reason {
            DecisionReason::Rule(_) => "rule",
            DecisionReason::Default => "default",
            DecisionReason::AdminFloor => "admin_floor",
            DecisionReason::SelfService => "self_service",
        };
        self.metrics.acl_decision(decision.allowed, reason);
        tracing::debug!(
            user = %format!("{}:{}", msg.subject.connection, msg.subject.user_id),
            room = %format!("{}:{}", msg.subject.connection, msg.subject.room_id),
            command = %command_name(&msg.command),
            allowed = decision.allowed,
            rule = ?decision.rule,
            reason,
            "access decision"
        );
        self.status.activity();
        let wait = (decision.allowed && matches!(msg.command, CommandRef::Alias { .. }))
            .then(|| self.policy.confirmation(&msg.subject, &msg.command))
            .flatten();
        MessageResult(Verdict { decision, wait })
    }
}

impl Handler<WhoCanDecide> for AclGate {
    type Result = MessageResult<WhoCanDecide>;

    fn handle(
        &mut self,
        WhoCanDecide { subject, held }: WhoCanDecide,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        let admin = self.policy.is_admin(&subject);
        let approves_held = held.is_some_and(|(sender, command)| {
            match self
                .policy
                .confirmation(&sender, &command)
                .filter(|r| r.needs_approval())
                .and_then(|r| r.rule)
            {
                Some(rule) => self.policy.is_approver(rule, &subject),
                None => admin,
            }
        });
        MessageResult(DeciderRights {
            admin,
            approver_of: self.policy.approver_rules(&subject),
            approves_held,
        })
    }
}

impl Handler<Explain> for AclGate {
    type Result = MessageResult<Explain>;

    fn handle(&mut self, msg: Explain, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.policy.explain(&msg.subject, &msg.command))
    }
}

impl Handler<IsAdmin> for AclGate {
    type Result = bool;

    fn handle(&mut self, msg: IsAdmin, _ctx: &mut Self::Context) -> bool {
        self.policy.is_admin(&msg.0)
    }
}

impl Handler<ReplacePolicy> for AclGate {
    type Result = ();

    fn handle(&mut self, msg: ReplacePolicy, _ctx: &mut Self::Context) {
        tracing::info!(rules = msg.0.rule_count(), "access rules replaced");
        self.policy = msg.0;
    }
}
