//! The trigger API in the dispatcher: `!st2token create|revoke`, `!st2tokens`, and
//! [`Trigger`], a token's command run over HTTP (`crate::http::trigger`) as its user in its
//! room — matched and checked by the access rules at call time like a typed command, and
//! answered with what happened so the HTTP side can say 202, 403 or 404.

use actix::prelude::*;
use chrono::Utc;

use super::{subject_of, Dispatcher, Next};
use crate::{
    acl::CommandRef,
    actors::acl_gate::{Authorize, IsAdmin},
    alias::index::Selection,
    commands::triggers::{self, TokenCommand, TokenReply},
    domain::{
        command,
        message::{ChatUser, InboundMessage, Room, RoomKind},
    },
    metrics::CommandOutcome,
    store::{
        model::UserKey,
        trigger_tokens::{NewTriggerToken, TriggerToken},
    },
};

/// Runs a trigger token's command (its text, plus `extra` words) as its user in its room.
#[derive(Debug, Message)]
#[rtype(result = "TriggerOutcome")]
pub struct Trigger {
    /// The verified token.
    pub token: TriggerToken,
    /// Words the caller adds to the command (may be empty).
    pub extra: String,
}

/// What became of a triggered command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerOutcome {
    /// It runs (or waits for a confirmation or approval in the room: `held`).
    Accepted {
        /// Held for a decision.
        held: bool,
    },
    /// The access rules refused it (the room is told).
    Denied,
    /// It matches no single alias any more (the room is told).
    NoMatch,
    /// The token's chat connection is not configured any more.
    NoConnection,
    /// The alias list is not loaded yet.
    NotReady,
}

impl Dispatcher {
    /// `!st2token create|revoke …`.
    pub(super) fn handle_token(
        &mut self,
        msg: InboundMessage,
        args: String,
        ctx: &mut Context<Self>,
    ) {
        let prefix = self.command_prefix();
        let url = self.trigger_url();
        let store = self.settings.trigger_tokens.clone();
        let command = match triggers::token_args(&args, &prefix) {
            Ok(c) => c,
            Err(usage) => return self.reply(&msg, self.token_invalid(&usage)),
        };
        let user = UserKey::new(&msg.user.connection, &msg.user.id);
        match command {
            TokenCommand::Create(text) => {
                if msg.room.kind != RoomKind::Direct {
                    self.metrics.command(CommandOutcome::Invalid);
                    let text =
                        triggers::reply(&self.templates, &prefix, &url, TokenReply::DirectOnly);
                    return self.reply(&msg, text);
                }
                // It must name a command now (access is checked when it is used).
                if self.aliases_not_loaded(&msg) {
                    return;
                }
                let text = command::normalise_text(&text);
                if !matches!(self.aliases.load().select(&text), Selection::Matched(_)) {
                    let why = format!("`{text}` matches no single command, so a token for it would never work; `{prefix}help` lists them.");
                    return self.reply(&msg, self.token_invalid(&why));
                }
                let new = NewTriggerToken {
                    user: user.clone(),
                    user_name: msg.user.name.clone(),
                    connection: msg.room.connection.clone(),
                    room_id: msg.room.id.clone(),
                    room_name: msg.room_name.clone(),
                    room_kind: msg.room.kind,
                    thread: msg.room.thread.clone(),
                    // Access rules scoped by `orgs` judge the token's calls as they would
                    // judge the person typing it where it was created.
                    org: msg.org.clone(),
                    command: text,
                    created_by: user,
                };
                let create = tokio::task::spawn_blocking(move || store.create(new, Utc::now()));
                ctx.spawn(create.into_actor(self).map(move |created, act, _ctx| {
                    let text = match created {
                        Ok(Ok((token, secret))) => {
                            act.metrics.command(CommandOutcome::Builtin);
                            tracing::info!(token = %token.id, user = %msg.user.id, "trigger token created");
                            triggers::reply(
                                &act.templates,
                                &prefix,
                                &url,
                                TokenReply::Created {
                                    token: &token,
                                    secret: secrecy::ExposeSecret::expose_secret(&secret),
                                },
                            )
                        }
                        Ok(Err(e)) => act.token_invalid(&format!("The token was not created: {e}.")),
                        Err(_) => act.token_invalid("The token was not created."),
                    };
                    act.reply(&msg, text);
                }));
            }
            TokenCommand::Revoke(id) => {
                let admin = self.gate.send(IsAdmin(subject_of(&msg)));
                ctx.spawn(admin.into_actor(self).map(move |admin, act, ctx| {
                    let admin = admin.unwrap_or(false);
                    let owned = store
                        .list(&user)
                        .map(|mine| mine.iter().any(|t| t.id == id))
                        .unwrap_or(false);
                    if !owned && !admin {
                        // The same words whether it exists or not.
                        let text = triggers::reply(&act.templates, &prefix, &url, TokenReply::NotFound(&id));
                        act.metrics.command(CommandOutcome::Invalid);
                        return act.reply(&msg, text);
                    }
                    let revoke = tokio::task::spawn_blocking(move || store.revoke(&id, Utc::now()).map(|t| (id, t)));
                    ctx.spawn(revoke.into_actor(act).map(move |revoked, act, _ctx| {
                        let text = match revoked {
                            Ok(Ok((_, Some(token)))) => {
                                act.metrics.command(CommandOutcome::Builtin);
                                tracing::info!(token = %token.id, by = %msg.user.id, "trigger token revoked");
                                triggers::reply(&act.templates, &prefix, &url, TokenReply::Revoked(&token))
                            }
                            Ok(Ok((id, None))) => {
                                act.metrics.command(CommandOutcome::Invalid);
                                triggers::reply(&act.templates, &prefix, &url, TokenReply::NotFound(&id))
                            }
                            Ok(Err(e)) => act.token_invalid(&format!("The token was not revoked: {e}.")),
                            Err(_) => act.token_invalid("The token was not revoked."),
                        };
                        act.reply(&msg, text);
                    }));
                }));
            }
        }
    }

    /// `!st2tokens` (own), `!st2tokens all` (admins: everyone's).
    pub(super) fn handle_tokens(
        &mut self,
        msg: InboundMessage,
        args: String,
        ctx: &mut Context<Self>,
    ) {
        let all = args.trim() == "all";
        let admin = self.gate.send(IsAdmin(subject_of(&msg)));
        ctx.spawn(admin.into_actor(self).map(move |admin, act, _ctx| {
            let prefix = act.command_prefix();
            let url = act.trigger_url();
            let store = &act.settings.trigger_tokens;
            if all && !admin.unwrap_or(false) {
                act.metrics.command(CommandOutcome::Invalid);
                let text = triggers::reply(
                    &act.templates,
                    &prefix,
                    &url,
                    TokenReply::Invalid("Only admins can list everyone's tokens."),
                );
                return act.reply(&msg, text);
            }
            let listed = if all {
                store.list_all()
            } else {
                store.list(&UserKey::new(&msg.user.connection, &msg.user.id))
            };
            let list = listed.unwrap_or_else(|e| {
                tracing::error!(error = %e, "could not list trigger tokens");
                Vec::new()
            });
            act.metrics.command(CommandOutcome::Builtin);
            let text = triggers::reply(
                &act.templates,
                &prefix,
                &url,
                TokenReply::List { tokens: &list, all },
            );
            act.reply(&msg, text);
        }));
    }

    /// A refusal of a token command, counted.
    fn token_invalid(&self, reason: &str) -> String {
        self.metrics.command(CommandOutcome::Invalid);
        triggers::reply(
            &self.templates,
            &self.command_prefix(),
            &self.trigger_url(),
            TokenReply::Invalid(reason),
        )
    }

    /// Where the trigger API is published (for the hint shown with a new token).
    fn trigger_url(&self) -> String {
        match &self.settings.public_url {
            Some(base) => format!("{}/api/v1/trigger", base.trim_end_matches('/')),
            None => "http(s)://<this bridge>/api/v1/trigger".to_owned(),
        }
    }
}

/// The message a token's call stands for.
fn triggered_message(token: &TriggerToken, extra: &str) -> InboundMessage {
    let user_id = token
        .user
        .0
        .strip_prefix(&format!("{}:", token.connection))
        .unwrap_or(&token.user.0)
        .to_owned();
    let text = if extra.trim().is_empty() {
        token.command.clone()
    } else {
        format!("{} {}", token.command, extra.trim())
    };
    InboundMessage {
        user: ChatUser {
            connection: token.connection.clone(),
            id: user_id,
            name: token.user_name.clone(),
        },
        room: Room {
            connection: token.connection.clone(),
            id: token.room_id.clone(),
            kind: token.room_kind,
            thread: token.thread.clone(),
        },
        text,
        message_id: None,
        mentioned: false,
        room_name: token.room_name.clone(),
        org: token.org.clone(),
    }
}

impl Handler<Trigger> for Dispatcher {
    type Result = ResponseActFuture<Self, TriggerOutcome>;

    fn handle(&mut self, trigger: Trigger, ctx: &mut Self::Context) -> Self::Result {
        let msg = triggered_message(&trigger.token, &trigger.extra);
        let ready = |outcome| Box::pin(actix::fut::ready(outcome)) as Self::Result;
        if !self.connections.contains_key(&msg.room.connection) {
            return ready(TriggerOutcome::NoConnection);
        }
        if !self.aliases.is_loaded() {
            return ready(TriggerOutcome::NotReady);
        }
        tracing::info!(token = %trigger.token.id, user = %msg.user.id, connection = %msg.room.connection, "command triggered over HTTP");
        let text = command::normalise_text(&msg.text);
        let found = match self.aliases.load().select(&text) {
            Selection::Matched(found) => found,
            _ => {
                // Said in the room as a typed command would be: no match, or which one.
                self.run_alias(msg, &text, false, None, ctx);
                return ready(TriggerOutcome::NoMatch);
            }
        };
        let command = CommandRef::Alias {
            alias_ref: found.alias.reference.clone(),
            pack: found.alias.pack.clone(),
            text: text.clone(),
        };
        let verdict = self.gate.send(Authorize {
            subject: subject_of(&msg),
            command: command.clone(),
        });
        Box::pin(verdict.into_actor(self).map(move |verdict, act, ctx| {
            match verdict.ok().filter(|v| v.allowed()) {
                Some(verdict) => {
                    let held = verdict.wait.is_some();
                    act.proceed(
                        msg,
                        Next::Execute {
                            text,
                            found,
                            retried: false,
                            decided: None,
                            wait: verdict.wait,
                        },
                        ctx,
                    );
                    TriggerOutcome::Accepted { held }
                }
                None => {
                    act.denied(&msg, &command);
                    TriggerOutcome::Denied
                }
            }
        }))
    }
}
