//! Local commands in the dispatcher: recognised before alias matching (a configured name
//! as the first word), checked by the access rules as the alias `local.<name>` of the
//! pack `local`, held for a decision when a `[[confirm.rules]]` entry covers them, then
//! handed to the job keeper, which runs them ([`crate::local::run`]) as jobs.

use std::ffi::OsString;

use actix::prelude::*;
use serde_json::json;

use super::{Dispatcher, Next};
use crate::{
    acl::{CommandRef, Requirement},
    actors::job_keeper::{Asker, RunLocal},
    domain::message::InboundMessage,
    local::Invocation,
    metrics::CommandOutcome,
    render::replies::Outcome,
    store::{
        jobs::{JobKind, JobStatus, NewJob},
        model::UserKey,
    },
};

/// What a held command (`[confirm]`) will run once decided.
pub(super) enum HeldCommand {
    /// A StackStorm alias, as matched.
    Alias(crate::alias::index::AliasMatch),
    /// A local command and the user's arguments.
    Local { name: String, args: Vec<String> },
}

/// A local command on its way: found, then allowed, perhaps held, then run.
pub(super) struct LocalRun {
    /// Its configured name.
    pub name: String,
    /// The user's arguments.
    pub args: Vec<String>,
    /// The command text as typed (after expansion).
    pub text: String,
    /// Who confirmed or approved it, once decided.
    pub decided: Option<String>,
    /// What the confirmation rules say it waits for (from the gate's verdict).
    pub wait: Option<Requirement>,
}

/// The pack the access rules see local commands in: `packs = ["local"]`, or one by one
/// as `aliases = ["local.<name>"]`.
pub const LOCAL_PACK: &str = "local";

impl Dispatcher {
    /// Whether `text` names a local command; if so it is taken care of here (refused for
    /// its arguments, or sent through the access gate).
    pub(super) fn run_local(
        &mut self,
        msg: &InboundMessage,
        text: &str,
        ctx: &mut Context<Self>,
    ) -> bool {
        let commands = self.settings.local.commands.clone();
        let Some(found) = commands.find(text) else {
            return false;
        };
        match found {
            Err(refusal) => {
                self.metrics.command(CommandOutcome::Invalid);
                let data = json!({"command": text, "reason": refusal.to_string()});
                self.reply_as(msg, Outcome::Failure, "error", &data, None);
            }
            Ok(found) => {
                let name = found.command.name.clone();
                let command = CommandRef::Alias {
                    alias_ref: format!("{LOCAL_PACK}.{name}"),
                    pack: LOCAL_PACK.to_owned(),
                    text: text.to_owned(),
                };
                let next = Next::Local(LocalRun {
                    name,
                    args: found.args,
                    text: text.to_owned(),
                    decided: None,
                    wait: None,
                });
                self.authorize(msg.clone(), command, next, ctx);
            }
        }
        true
    }

    /// Starts an allowed local command as a job.
    pub(super) fn start_local(
        &mut self,
        msg: InboundMessage,
        run: LocalRun,
        ctx: &mut Context<Self>,
    ) {
        let LocalRun {
            name,
            args,
            text,
            decided,
            wait,
        } = run;
        let refuse = |act: &Self, reason: &str| {
            act.metrics.command(CommandOutcome::Invalid);
            let data = json!({"command": text, "reason": reason});
            act.reply_as(&msg, Outcome::Failure, "error", &data, None);
        };
        if let (Some(requirement), None) = (wait, &decided) {
            // It waits for its sender's confirmation or an approver, like an alias.
            return self.hold(
                msg,
                text,
                HeldCommand::Local { name, args },
                requirement,
                ctx,
            );
        }
        let Some(command) = self.settings.local.commands.get(&name).cloned() else {
            return refuse(self, "that local command is no longer configured");
        };
        let Some(jobs) = self.settings.jobs.clone() else {
            return refuse(self, "local commands run as jobs, and jobs are off here");
        };
        self.metrics.command(CommandOutcome::Executed);
        let strip: Vec<OsString> = self
            .settings
            .local
            .secret_env
            .iter()
            .map(OsString::from)
            .collect();
        let invocation = Invocation::new(&command, args, &strip);
        tracing::info!(command = %name, user = %msg.user.id, connection = %msg.room.connection, "running a local command");
        let job = NewJob {
            user: UserKey::new(&msg.user.connection, &msg.user.id),
            user_name: msg.user.name.clone(),
            connection: msg.room.connection.clone(),
            room_id: msg.room.id.clone(),
            room_name: msg.room_name.clone(),
            room_kind: msg.room.kind,
            thread: msg.room.thread.clone(),
            text: self.settings.mask.text(&text).into_owned(),
            kind: JobKind::Local { command: name },
            parameters: Default::default(),
            status: JobStatus::Running,
            decided_by: decided,
        };
        jobs.do_send(RunLocal {
            job,
            invocation,
            asker: Asker {
                user: UserKey::new(&msg.user.connection, &msg.user.id),
                room: msg.room,
                reply_to: msg.message_id,
                admin: false,
            },
        });
    }
}
