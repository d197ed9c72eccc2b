//! The dispatcher's side of commands held for a decision ([`crate::confirm`]).
//!
//! A command the confirmation rules cover is held here instead of being sent: the room
//! is told what would run and the code to decide with. A decision is checked by
//! [`WaitingList::decide`] (who, where, in time); a command confirmed or approved goes
//! back through the access gate *as its sender, in its room* and then runs exactly as if
//! it had just been typed — the acknowledgement and the result thread under the original
//! message. The list is written through to the store, so a restart keeps what waits.
//! Expiry is a timer per held command, not a poll: an idle bridge stays idle.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use serde_json::json;

use super::{
    inquiries::press_subject,
    local::{HeldCommand, LocalRun, LOCAL_PACK},
    subject_of, Dispatcher, Next,
};
use crate::{
    acl::{CommandRef, Requirement},
    actors::{
        acl_gate::{DeciderRights, WhoCanDecide},
        messages::buttons::{
            Button, ButtonAction, ButtonOutcome, ButtonPressed, HeldDecision, OfferButtons,
            OfferPosted, OfferReceipt, PressOrigin,
        },
    },
    alias::index::{AliasMatch, Selection},
    confirm::{Decider, Need, Refusal, Verb, Waiting, WaitingList, CODE_LEN},
    domain::message::{ChatUser, InboundMessage, Room, RoomKind, Target},
    metrics::CommandOutcome,
    store::{
        jobs::{JobKind, JobStatus},
        WaitingStore,
    },
};

/// The held commands and where they are persisted.
pub(super) struct WaitingState {
    list: WaitingList,
    store: WaitingStore,
    /// Commands decided or expired before the platform said where their buttons went
    /// (a decision typed right after the offer): the offer is updated when it does.
    spent: std::collections::VecDeque<SpentOffer>,
}

/// An offer whose buttons are spent: which, where, and what it now says.
struct SpentOffer {
    /// The held command's code.
    code: String,
    room: Room,
    by: ChatUser,
    text: String,
}

/// Spent offers remembered at most; the platform's answer comes within seconds.
const MAX_SPENT: usize = 64;

impl WaitingState {
    /// Nothing held yet; [`Dispatcher::load_waiting`] reads what the store kept.
    pub(super) fn new(store: WaitingStore) -> Self {
        Self {
            list: WaitingList::default(),
            store,
            spent: std::collections::VecDeque::new(),
        }
    }
}

/// "2 minutes", "90 seconds", "1 hour".
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 3600 && secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Whether the alias asks for confirmation itself (`extra.stormbridge.confirm: true`).
pub(super) fn alias_asks_confirmation(found: &AliasMatch) -> bool {
    found
        .alias
        .extra
        .as_ref()
        .and_then(|e| e.pointer("/stormbridge/confirm"))
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}

/// The event word for a decision that was taken.
fn event_of(verb: Verb, by_sender: bool) -> &'static str {
    match verb {
        Verb::Confirm => "confirmed",
        Verb::Approve => "approved",
        Verb::Abort => "aborted",
        Verb::Deny if by_sender => "withdrawn",
        Verb::Deny => "denied",
    }
}

impl Dispatcher {
    /// Reads the commands the store kept (after a restart) and wakes up for their expiry.
    pub(super) fn load_waiting(&mut self, ctx: &mut Context<Self>) {
        let saved = match self.waiting.store.load() {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(error = %e, "the commands waiting for a decision could not be read from the store; they are not offered again");
                Vec::new()
            }
        };
        if !saved.is_empty() {
            tracing::info!(
                waiting = saved.len(),
                "commands still waiting for a decision"
            );
        }
        self.waiting.list = WaitingList::from_saved(saved);
        self.metrics.set_commands_waiting(self.waiting.list.len());
        if let Some(next) = self.waiting.list.next_expiry() {
            // Not before the chat connections are back: the rooms are told what expired.
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            self.schedule_sweep(wait.max(Duration::from_secs(5)), ctx);
        }
    }

    fn schedule_sweep(&self, after: Duration, ctx: &mut Context<Self>) {
        // A little past the deadline, so the sweep finds it due.
        ctx.run_later(after + Duration::from_millis(20), |act, ctx| {
            act.sweep_waiting(ctx)
        });
    }

    /// Removes what expired and tells each room; wakes up again for the next one.
    fn sweep_waiting(&mut self, ctx: &mut Context<Self>) {
        let now = Utc::now();
        for w in self.waiting.list.expire(now) {
            self.forget_waiting(&w.code);
            self.metrics.waiting_decision("expired");
            tracing::info!(code = %w.code, alias = %w.alias_ref, user = %w.sender.id, "a held command expired without a decision");
            let needed = match w.need {
                Need::Confirmation => "confirmed",
                Need::Approval { .. } => "approved",
            };
            let text = self.templates.render(
                "waiting_decided",
                &json!({
                    "code": w.code, "command": w.shown, "event": "expired", "runs": false,
                    "expired": true, "needed": needed,
                    "ttl": human(self.ttl_of(&w.need)), "by": "", "other": false,
                    "sender": w.sender.name, "reason": null,
                }),
            );
            self.retire_offer(&w, &w.sender, &text);
            self.send_to_origin(&w, text);
            self.record_held_end(&w, JobStatus::Canceled, None);
        }
        self.metrics.set_commands_waiting(self.waiting.list.len());
        if let Some(next) = self.waiting.list.next_expiry() {
            let wait = (next - now).to_std().unwrap_or_default();
            self.schedule_sweep(wait, ctx);
        }
    }

    fn ttl_of(&self, need: &Need) -> Duration {
        match need {
            Need::Confirmation => self.settings.confirm.ttl,
            Need::Approval { .. } => self.settings.confirm.approval_ttl,
        }
    }

    /// Drops a decided or expired command from the store (the list already dropped it).
    fn forget_waiting(&self, code: &str) {
        if let Err(e) = self.waiting.store.remove(code) {
            tracing::error!(error = %e, code, "a decided command could not be removed from the store; after a restart it would be offered again");
        }
    }

    /// Posts in the room (and thread) the held command was sent in.
    fn send_to_origin(&self, w: &Waiting, text: String) {
        self.send(
            &w.room.connection,
            Target::reply_to(&w.room),
            text,
            None,
            w.message_id.clone(),
        );
    }

    /// Updates the message that offered buttons for `w` to say `text`, its buttons gone:
    /// for a decision typed rather than pressed, and for an expiry (a press updates its
    /// own message). Only where the platform told where the offer went.
    fn retire_offer(&mut self, w: &Waiting, by: &ChatUser, text: &str) {
        let spent = SpentOffer {
            code: w.code.clone(),
            room: w.room.clone(),
            by: by.clone(),
            text: text.to_owned(),
        };
        self.spend_offer(spent, w.offer_message.clone());
    }

    fn spend_offer(&mut self, spent: SpentOffer, message_id: Option<String>) {
        let Some((_, outcomes)) = self.button_recipients(&spent.room.connection) else {
            return;
        };
        let Some(message_id) = message_id else {
            // Maybe not posted yet: updated when the platform says where it went.
            let waiting = &mut self.waiting.spent;
            if waiting.len() >= MAX_SPENT {
                waiting.pop_front();
            }
            waiting.push_back(spent);
            return;
        };
        outcomes.do_send(ButtonOutcome {
            user: spent.by,
            room: spent.room,
            // No press to answer: the handle of none.
            origin: PressOrigin {
                message_id: Some(message_id),
                handle: 0,
            },
            accepted: true,
            text: spent.text,
        });
    }

    /// Holds an allowed command until it is confirmed or approved. The action's secret
    /// parameters are looked up first, so the message saying what would run masks them.
    pub(super) fn hold(
        &mut self,
        msg: InboundMessage,
        text: String,
        held: HeldCommand,
        requirement: Requirement,
        ctx: &mut Context<Self>,
    ) {
        let HeldCommand::Alias(found) = &held else {
            // A local command has no StackStorm parameters to keep secret.
            return self.hold_now(msg, text, held, requirement, &[], ctx);
        };
        let names = self.secret_names(&found.alias.action_ref);
        ctx.spawn(
            names.into_actor(self).map(move |names, act, ctx| {
                act.hold_now(msg, text, held, requirement, &names, ctx)
            }),
        );
    }

    fn hold_now(
        &mut self,
        msg: InboundMessage,
        text: String,
        held: HeldCommand,
        requirement: Requirement,
        secret_names: &[String],
        ctx: &mut Context<Self>,
    ) {
        let mask = &self.settings.mask;
        let (alias_ref, pack, parameters): (String, String, Vec<(String, String)>) = match &held {
            HeldCommand::Alias(found) => {
                mask.remember(super::secret_values(found, secret_names));
                let parameters = found
                    .params
                    .first()
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| (k.clone(), mask.text(v).into_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    found.alias.reference.clone(),
                    found.alias.pack.clone(),
                    parameters,
                )
            }
            HeldCommand::Local { name, args } => (
                format!("{LOCAL_PACK}.{name}"),
                LOCAL_PACK.to_owned(),
                if args.is_empty() {
                    Vec::new()
                } else {
                    vec![(
                        "arguments".to_owned(),
                        mask.text(&args.join(" ")).into_owned(),
                    )]
                },
            ),
        };
        let shown = mask.text(&text).into_owned();
        let need = match (&requirement.approvers, requirement.rule) {
            (Some(approvers), Some(rule)) => Need::Approval {
                rule,
                approvers: approvers.clone(),
            },
            _ => Need::Confirmation,
        };
        let ttl = self.ttl_of(&need);
        let now = Utc::now();
        let code = self.waiting.list.new_code(|| {
            let bytes = *uuid::Uuid::new_v4().as_bytes();
            let mut code = [0u8; CODE_LEN];
            code.copy_from_slice(&bytes[..CODE_LEN]);
            code
        });
        let waiting = Waiting {
            code: code.clone(),
            need: need.clone(),
            sender: msg.user.clone(),
            room: msg.room.clone(),
            room_name: msg.room_name.clone(),
            org: msg.org.clone(),
            message_id: msg.message_id.clone(),
            text: text.clone(),
            shown: shown.clone(),
            alias_ref,
            pack,
            parameters,
            comment: requirement.comment.clone(),
            created_at: now,
            expires_at: now + chrono::TimeDelta::from_std(ttl).unwrap_or(chrono::TimeDelta::MAX),
            offer_message: None,
        };
        if let Err(refusal) = self.waiting.list.add(waiting.clone()) {
            self.metrics.command(CommandOutcome::Invalid);
            let reply = self.templates.render(
                "error",
                &json!({"command": text, "reason": refusal.to_string()}),
            );
            return self.reply(&msg, reply);
        }
        if let Err(e) = self.waiting.store.insert(&waiting) {
            // Held in memory all the same: only a restart would lose it.
            tracing::error!(error = %e, code = %code, "a held command could not be saved; a restart would forget it");
        }
        self.metrics.command(CommandOutcome::Held);
        self.metrics.waiting_decision("asked");
        self.metrics.set_commands_waiting(self.waiting.list.len());
        tracing::info!(code = %code, alias = %waiting.alias_ref, user = %msg.user.id, connection = %msg.room.connection, approval = requirement.needs_approval(), "command held for a decision");
        let prefix = self.command_prefix();
        let reply = self.templates.render(
            "waiting_ask",
            &json!({
                "code": code,
                "command": shown,
                "alias_ref": waiting.alias_ref,
                "parameters": waiting.parameters.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "sender": msg.user.name,
                "need_approval": requirement.needs_approval(),
                "approvers": requirement.approvers.as_deref().map(super::english_list).unwrap_or_default(),
                "approve_in_direct": self.settings.confirm.approve_in_direct,
                "comment": requirement.comment,
                "ttl": human(ttl),
                "confirm_command": format!("{prefix}confirm"),
                "abort_command": format!("{prefix}abort"),
                "approve_command": format!("{prefix}approve"),
                "deny_command": format!("{prefix}deny"),
            }),
        );
        match self.button_recipients(&msg.room.connection) {
            // Where buttons show, the same text carries them (the typed commands still work).
            Some((offers, _)) => {
                let decide = |label: &str, verb: Verb| Button {
                    label: label.to_owned(),
                    action: ButtonAction::Decide(HeldDecision {
                        code: code.clone(),
                        verb,
                    }),
                };
                let buttons = if requirement.needs_approval() {
                    vec![decide("Approve", Verb::Approve), decide("Deny", Verb::Deny)]
                } else {
                    vec![
                        decide("Confirm", Verb::Confirm),
                        decide("Abort", Verb::Abort),
                    ]
                };
                offers.do_send(OfferButtons {
                    target: Target::reply_to(&msg.room),
                    text: reply.clone(),
                    fallback: reply,
                    buttons,
                    posted: Some(OfferReceipt {
                        key: code.clone(),
                        to: ctx.address().recipient(),
                    }),
                });
            }
            None => self.reply(&msg, reply),
        }
        self.schedule_sweep(ttl, ctx);
    }

    /// `!st2confirm`, `!st2abort`, `!st2approve`, `!st2deny` `<code> [reason]`.
    pub(super) fn handle_decision(
        &mut self,
        msg: InboundMessage,
        verb: Verb,
        args: String,
        ctx: &mut Context<Self>,
    ) {
        let args = crate::domain::command::normalise_text(&args);
        let (code, reason) = match args.trim().split_once(char::is_whitespace) {
            Some((code, reason)) => (code.to_owned(), reason.trim().to_owned()),
            None => (args.trim().to_owned(), String::new()),
        };
        if code.is_empty() {
            self.metrics.command(CommandOutcome::Invalid);
            let prefix = self.command_prefix();
            let reply = format!(
                "usage: {prefix}{} <code>{} (`{prefix}pending` lists what waits)",
                verb.as_str(),
                if verb == Verb::Deny { " [reason]" } else { "" }
            );
            return self.reply(&msg, reply);
        }
        let held = code.clone();
        self.with_rights(
            subject_of(&msg),
            verb,
            &held,
            ctx,
            move |act, rights, ctx| {
                match act.take_decision(&msg.user, &msg.room, verb, &code, &reason, &rights) {
                    Err(refusal) => act.reply(&msg, refusal),
                    Ok((w, text)) => {
                        // The room it was asked in always hears; a decision taken elsewhere
                        // (a direct chat) is answered there too.
                        if !w.sent_in(&msg.room) {
                            act.reply(&msg, text.clone());
                        }
                        act.retire_offer(&w, &msg.user, &text);
                        act.send_to_origin(&w, text);
                        if verb.runs() {
                            act.run_decided(w, decided_by(&msg.user, verb), ctx);
                        }
                    }
                }
            },
        );
    }

    /// A press of a decision button: the access gate as the typed built-in for the
    /// presser, then the same decision; the outcome replaces the buttons (accepted) or is
    /// shown to the presser alone (refused).
    pub(super) fn on_decision_pressed(
        &mut self,
        press: ButtonPressed,
        decision: HeldDecision,
        outcomes: Recipient<ButtonOutcome>,
        ctx: &mut Context<Self>,
    ) {
        let verb = decision.verb;
        let typed = format!("{} {}", verb.as_str(), decision.code);
        tracing::info!(code = %decision.code, verb = verb.as_str(), user = %press.user.id, connection = %press.user.connection, "decision button pressed");
        self.authorize_press(
            press,
            verb.as_str(),
            typed,
            outcomes,
            ctx,
            move |act, press, outcomes, ctx| {
                let code = decision.code.clone();
                act.with_rights(
                    press_subject(&press),
                    verb,
                    &decision.code,
                    ctx,
                    move |act, rights, ctx| match act.take_decision(
                        &press.user,
                        &press.room,
                        verb,
                        &code,
                        "",
                        &rights,
                    ) {
                        Err(refusal) => outcomes.do_send(act.press_outcome(&press, false, refusal)),
                        Ok((w, text)) => {
                            outcomes.do_send(act.press_outcome(&press, true, text.clone()));
                            if !w.sent_in(&press.room) {
                                act.send_to_origin(&w, text);
                            }
                            if verb.runs() {
                                act.run_decided(w, decided_by(&press.user, verb), ctx);
                            }
                        }
                    },
                );
            },
        );
    }

    /// Runs `then` with what `subject` may decide on: asked of the gate only when the held
    /// command needs an approver's rights.
    fn with_rights(
        &mut self,
        subject: crate::acl::Subject,
        verb: Verb,
        code: &str,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, DeciderRights, &mut Context<Self>) + 'static,
    ) {
        let held = self
            .waiting
            .list
            .get(code)
            .filter(|w| matches!(w.need, Need::Approval { .. }))
            .filter(|_| matches!(verb, Verb::Approve | Verb::Deny))
            .map(|w| {
                let sender = super::subject_in(&w.sender, &w.room, &w.room_name, &w.org);
                let command = CommandRef::Alias {
                    alias_ref: w.alias_ref.clone(),
                    pack: w.pack.clone(),
                    text: w.text.clone(),
                };
                (sender, command)
            });
        if held.is_none() {
            return then(self, DeciderRights::default(), ctx);
        }
        let rights = self.gate.send(WhoCanDecide { subject, held });
        ctx.spawn(rights.into_actor(self).map(move |rights, act, ctx| {
            // Fails closed: no answer from the gate means no rights.
            then(act, rights.unwrap_or_default(), ctx)
        }));
    }

    /// Takes a decision: the held command and the text telling what was decided, or the
    /// text telling why not. Counts and logs either way.
    fn take_decision(
        &mut self,
        user: &ChatUser,
        room: &Room,
        verb: Verb,
        code: &str,
        reason: &str,
        rights: &DeciderRights,
    ) -> Result<(Waiting, String), String> {
        let is_approver = self.waiting.list.get(code).is_some_and(
            |w| matches!(&w.need, Need::Approval { rule, .. } if rights.approver_of.contains(rule)),
        );
        let decider = Decider {
            user,
            room,
            is_approver,
            approve_in_direct: self.settings.confirm.approve_in_direct,
        };
        // Kept for the job record should it turn out to have expired just now.
        let before = self.waiting.list.get(code).cloned();
        let decided = self.waiting.list.decide(code, verb, decider, Utc::now());
        self.metrics.set_commands_waiting(self.waiting.list.len());
        let w = match decided {
            Ok(w) => w,
            Err(refusal) => {
                if refusal == Refusal::Expired {
                    self.forget_waiting(&crate::confirm::normalise_code(code));
                    self.metrics.waiting_decision("expired");
                    if let Some(w) = &before {
                        self.record_held_end(w, JobStatus::Canceled, None);
                    }
                } else {
                    self.metrics.waiting_decision("refused");
                }
                self.metrics.command(CommandOutcome::Invalid);
                tracing::info!(code = %code, verb = verb.as_str(), user = %user.id, refusal = %refusal, "decision on a held command refused");
                return Err(self.templates.render(
                    "waiting_refused",
                    &json!({
                        "verb_command": format!("{}{}", self.command_prefix(), verb.as_str()),
                        "code": code,
                        "reason": refusal.to_string(),
                    }),
                ));
            }
        };
        self.forget_waiting(&w.code);
        self.metrics.command(CommandOutcome::Builtin);
        let by_sender = w.sent_by(user);
        let event = event_of(verb, by_sender);
        self.metrics.waiting_decision(event);
        tracing::info!(code = %w.code, alias = %w.alias_ref, sender = %w.sender.id, by = %user.id, event, "held command decided");
        if !verb.runs() {
            // Denied by an approver: refused; aborted or withdrawn by its sender: canceled.
            let status = if verb == Verb::Deny && !by_sender {
                JobStatus::Refused
            } else {
                JobStatus::Canceled
            };
            let who = if user.name.is_empty() {
                &user.id
            } else {
                &user.name
            };
            self.record_held_end(&w, status, Some(format!("{who} ({event})")));
        }
        let text = self.templates.render(
            "waiting_decided",
            &json!({
                "code": w.code, "command": w.shown, "event": event, "runs": verb.runs(),
                "expired": false, "needed": "", "ttl": "",
                "by": user.name, "other": !by_sender, "sender": w.sender.name,
                "reason": Some(reason).filter(|r| !r.is_empty()),
            }),
        );
        Ok((w, text))
    }

    /// Runs a confirmed or approved command as its sender, in its room: matched again
    /// (it must still be the same alias) and checked by the access rules again.
    fn run_decided(&mut self, w: Waiting, by: String, ctx: &mut Context<Self>) {
        let original = InboundMessage {
            user: w.sender.clone(),
            room: w.room.clone(),
            text: w.text.clone(),
            message_id: w.message_id.clone(),
            mentioned: false,
            room_name: w.room_name.clone(),
            org: w.org.clone(),
        };
        if w.pack == LOCAL_PACK {
            return self.run_decided_local(w, original, by, ctx);
        }
        let index = self.aliases.load();
        let found = match index.select(&w.text) {
            Selection::Matched(found) if found.alias.reference == w.alias_ref => found,
            _ => {
                tracing::warn!(code = %w.code, alias = %w.alias_ref, "a decided command no longer matches its alias; not run");
                let reason = format!(
                    "the alias list changed since it was asked, and it no longer matches {}. Nothing ran; send it again.",
                    w.alias_ref
                );
                let text = self
                    .templates
                    .render("error", &json!({"command": w.shown, "reason": reason}));
                return self.send_to_origin(&w, text);
            }
        };
        let command = CommandRef::Alias {
            alias_ref: found.alias.reference.clone(),
            pack: found.alias.pack.clone(),
            text: w.text.clone(),
        };
        self.authorize(
            original,
            command,
            Next::Execute {
                text: w.text,
                found,
                retried: false,
                decided: Some(by),
                wait: None,
            },
            ctx,
        );
    }

    /// A decided local command: found again by its text (it must still be the same
    /// command), checked by the access rules again, then run as its sender.
    fn run_decided_local(
        &mut self,
        w: Waiting,
        original: InboundMessage,
        by: String,
        ctx: &mut Context<Self>,
    ) {
        let commands = self.settings.local.commands.clone();
        let found = match commands.find(&w.text) {
            Some(Ok(found)) if format!("{LOCAL_PACK}.{}", found.command.name) == w.alias_ref => {
                found
            }
            _ => {
                tracing::warn!(code = %w.code, command = %w.alias_ref, "a decided local command is no longer configured as it was; not run");
                let reason = format!(
                    "{} is no longer configured as it was when it was asked. Nothing ran; send it again.",
                    w.alias_ref
                );
                let text = self
                    .templates
                    .render("error", &json!({"command": w.shown, "reason": reason}));
                return self.send_to_origin(&w, text);
            }
        };
        let command = CommandRef::Alias {
            alias_ref: w.alias_ref.clone(),
            pack: LOCAL_PACK.to_owned(),
            text: w.text.clone(),
        };
        let next = Next::Local(LocalRun {
            name: found.command.name.clone(),
            args: found.args,
            text: w.text,
            decided: Some(by),
            wait: None,
        });
        self.authorize(original, command, next, ctx);
    }

    /// `!st2pending`: what waits that this person may decide on (admins: everything).
    pub(super) fn handle_pending(&mut self, msg: InboundMessage, ctx: &mut Context<Self>) {
        let rights = self.gate.send(WhoCanDecide {
            subject: subject_of(&msg),
            held: None,
        });
        ctx.spawn(rights.into_actor(self).map(move |rights, act, _ctx| {
            let rights = rights.unwrap_or_default();
            let now = Utc::now();
            let items: Vec<serde_json::Value> = act
                .waiting
                .list
                .all()
                .into_iter()
                .filter(|w| w.expires_at > now)
                .filter(|w| {
                    rights.admin
                        || w.sent_by(&msg.user)
                        || matches!(&w.need, Need::Approval { rule, .. } if rights.approver_of.contains(rule))
                })
                .map(|w| {
                    let left = (w.expires_at - now).to_std().unwrap_or_default();
                    let room = match w.room.kind {
                        RoomKind::Direct => "a direct chat".to_owned(),
                        RoomKind::Group => w.room_name.clone().unwrap_or_else(|| w.room.id.clone()),
                    };
                    let (approval, approvers) = match &w.need {
                        Need::Approval { approvers, .. } => (true, super::english_list(approvers)),
                        Need::Confirmation => (false, String::new()),
                    };
                    json!({
                        "code": w.code, "command": w.shown, "sender": w.sender.name,
                        "room": room, "approval": approval, "approvers": approvers,
                        "left": human(Duration::from_secs(left.as_secs().max(1))),
                    })
                })
                .collect();
            act.metrics.command(CommandOutcome::Builtin);
            let text = act.templates.render("waiting_list", &json!({"items": items}));
            act.reply(&msg, text);
        }));
    }
}

/// Where an offer of decision buttons was posted: kept with the held command (and in the
/// store, so an expiry after a restart still updates it).
impl Handler<OfferPosted> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: OfferPosted, _ctx: &mut Self::Context) {
        let spent = &mut self.waiting.spent;
        if let Some(at) = spent.iter().position(|s| s.code == msg.key) {
            // Decided before the offer was even posted: its buttons go now.
            if let Some(offer) = spent.remove(at) {
                self.spend_offer(offer, Some(msg.message_id));
            }
            return;
        }
        let Some(w) = self
            .waiting
            .list
            .set_offer_message(&msg.key, msg.message_id)
        else {
            return;
        };
        if let Err(e) = self.waiting.store.insert(w) {
            tracing::warn!(error = %e, code = %w.code, "where a held command's buttons were posted could not be saved; after a restart they would stay when it is decided by typing");
        }
    }
}

impl Dispatcher {
    /// A held command that will not run (denied, aborted, expired) is a job too.
    fn record_held_end(&self, w: &Waiting, status: JobStatus, decided_by: Option<String>) {
        let kind = match w.alias_ref.strip_prefix(&format!("{LOCAL_PACK}.")) {
            Some(name) if w.pack == LOCAL_PACK => JobKind::Local {
                command: name.to_owned(),
            },
            _ => JobKind::Alias {
                alias_ref: w.alias_ref.clone(),
            },
        };
        self.record_unrun(
            &w.sender,
            &w.room,
            &w.room_name,
            &w.shown,
            kind,
            status,
            decided_by,
        );
    }
}

/// How a decision is recorded on the job: `alice (approved)`.
fn decided_by(user: &ChatUser, verb: Verb) -> String {
    let who = if user.name.is_empty() {
        &user.id
    } else {
        &user.name
    };
    let how = match verb {
        Verb::Approve => "approved",
        _ => "confirmed",
    };
    format!("{who} ({how})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(120)), "2 minutes");
        assert_eq!(human(Duration::from_secs(60)), "1 minute");
        assert_eq!(human(Duration::from_secs(90)), "90 seconds");
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(1)), "1 second");
    }
}
