//! The command pipeline and the delivery of results.
//!
//! Inbound: prefix → built-in or alias → match against the alias snapshot (locally, in
//! microseconds; text that matches nothing never costs a StackStorm round trip) →
//! `POST /api/v1/aliasexecution` with the bridge's credential (re-login and one retry on a
//! 401) → acknowledgement in the same room and thread.
//!
//! Results are the `ResultTracker`'s: every command is registered there before its request
//! leaves ([`TrackCommand`]), and StackStorm's answer is reported after the acknowledgement
//! has been handed to the chat connection ([`CommandAccepted`] / [`CommandRefused`]), so a
//! result that beats the HTTP response still comes after its ack (err-stackstorm posts up
//! to 30% of results before their acks).
//!
//! Built-in commands (`help`, `reload`, `session_*`, `whoami`, `acl`) are read and answered
//! by [`crate::commands`]: the dispatcher only asks the actors involved and sends the text.

use std::{collections::BTreeMap, sync::Arc};

use actix::prelude::*;
use serde_json::{json, Value};

use super::{
    acl_gate::{AclGate, Authorize, Explain},
    alias_cache::{AliasSnapshot, ReloadAliases},
    result_tracker::{CommandAccepted, CommandRefused, ResultTracker, TrackCommand},
    session_manager::{
        CancelSession, EndSession, ListSessions, NoSession, NotifyUser, SessionManager,
        StartSession, UserCredential, UserCredentialRejected,
    },
    status::{ActorState, StatusReporter},
    token_renewer::{with_bridge_credential, BridgeCallError, DescribeIdentity, TokenRenewer},
};
use crate::{
    acl::{CommandRef, Subject},
    actors::messages::{Deliver, Inbound, RegisterConnection},
    alias::index::{AliasMatch, NameCollision, Selection},
    commands::{self, help::HelpPaging, reload::ReloadOutcome, session::ListedSession, ReplyKind},
    domain::{
        announcement::{SourceContext, BRIDGE_MARKER},
        command::{self, Command, Prefixes},
        message::{InboundMessage, Target},
        result_ledger::PendingResult,
    },
    metrics::{CommandOutcome, Metrics},
    render::Templates,
    st2::{
        client::{LocalClient, St2ClientFactory},
        models::{AliasExecutionRequest, AliasExecutionResult},
        St2Client, St2Error,
    },
    store::model::{SessionState, UserKey},
};

/// `!st2inquiries`, `!st2answer` and answer buttons.
mod inquiries;
/// Commands held for a confirmation or an approval: `!st2confirm`, `!st2abort`,
/// `!st2approve`, `!st2deny`, `!st2pending`.
mod waiting;

/// What the dispatcher needs from the configuration.
#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    /// Prefixes the bot answers to.
    pub prefixes: Prefixes,
    /// Route key sent as `notification_route`.
    pub route_key: String,
    /// st2web base for execution links.
    pub web_url: Option<String>,
    /// Default help page size.
    pub help_page_size: usize,
    /// Largest help page.
    pub help_max_page_size: usize,
    /// What StackStorm is told as the command's `user`.
    pub st2_user: crate::config::St2UserField,
    /// `[confirm]`'s timings and places.
    pub confirm: crate::acl::ConfirmSettings,
    /// Where held commands are persisted.
    pub waiting_store: crate::store::WaitingStore,
    /// Told the secret values of each command before it runs.
    pub mask: Arc<crate::redact::SecretMask>,
}

/// The dispatcher actor.
pub struct Dispatcher {
    settings: DispatcherSettings,
    client: LocalClient,
    metrics: Metrics,
    templates: Arc<Templates>,
    aliases: AliasSnapshot,
    renewer: Addr<TokenRenewer>,
    gate: Addr<AclGate>,
    sessions: Option<Addr<SessionManager>>,
    connections: BTreeMap<String, Recipient<Deliver>>,
    results: Addr<ResultTracker>,
    alias_cache: Recipient<ReloadAliases>,
    status: StatusReporter,
    inquiries: inquiries::InquiryState,
    waiting: waiting::WaitingState,
    /// The parameters StackStorm marks `secret: true`, by action ref (looked up once per
    /// action for a while: they change only when a pack is installed).
    secret_names: moka::sync::Cache<String, Arc<[String]>>,
}

impl Dispatcher {
    /// A dispatcher reading aliases from `aliases`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: DispatcherSettings,
        st2: St2ClientFactory,
        metrics: Metrics,
        templates: Arc<Templates>,
        aliases: AliasSnapshot,
        renewer: Addr<TokenRenewer>,
        gate: Addr<AclGate>,
        results: Addr<ResultTracker>,
        alias_cache: Recipient<ReloadAliases>,
        status: StatusReporter,
    ) -> Self {
        let waiting = waiting::WaitingState::new(settings.waiting_store.clone());
        Self {
            settings,
            client: LocalClient::new(st2),
            metrics,
            templates,
            aliases,
            renewer,
            gate,
            sessions: None,
            connections: BTreeMap::new(),
            results,
            alias_cache,
            status,
            inquiries: Default::default(),
            waiting,
            secret_names: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(600))
                .build(),
        }
    }

    fn command_prefix(&self) -> String {
        let p = &self.settings.prefixes;
        format!("{}{}", p.bot, p.plugin)
    }

    fn send(
        &self,
        connection: &str,
        target: Target,
        text: String,
        extra: Option<Value>,
        reply_to: Option<String>,
    ) {
        if text.trim().is_empty() {
            return;
        }
        match self.connections.get(connection) {
            Some(recipient) => recipient.do_send(Deliver {
                target,
                text,
                extra,
                reply_to,
                layout: None,
            }),
            None => tracing::warn!(connection, "no such chat connection; message dropped"),
        }
    }

    fn reply(&self, msg: &InboundMessage, text: String) {
        self.send(
            &msg.room.connection,
            Target::reply_to(&msg.room),
            text,
            None,
            msg.message_id.clone(),
        );
    }

    fn handle_help(&self, msg: &InboundMessage, args: &str) {
        let index = self.aliases.is_loaded().then(|| self.aliases.load());
        let paging = HelpPaging {
            default_size: self.settings.help_page_size,
            max_size: self.settings.help_max_page_size,
        };
        let reply = commands::help::reply(
            &self.templates,
            index.as_deref(),
            &self.command_prefix(),
            args,
            paging,
        );
        self.metrics.command(match reply.kind {
            ReplyKind::Answer => CommandOutcome::Builtin,
            ReplyKind::Invalid => CommandOutcome::Invalid,
        });
        self.reply(msg, reply.text);
    }

    /// Before the first alias load, "no match" would be a lie: say the list is loading.
    fn aliases_not_loaded(&self, msg: &InboundMessage) -> bool {
        if self.aliases.is_loaded() {
            return false;
        }
        self.metrics.command(CommandOutcome::Invalid);
        self.reply(msg, commands::not_ready(&self.templates));
        true
    }

    fn handle_run(&mut self, msg: InboundMessage, text: &str, ctx: &mut Context<Self>) {
        self.run_alias(msg, text, false, false, ctx);
    }

    /// `retried`: this is the one retry after StackStorm said the alias or its format no
    /// longer exists (the list was reloaded in between). `decided`: it was confirmed or
    /// approved, so it does not wait again.
    fn run_alias(
        &mut self,
        msg: InboundMessage,
        text: &str,
        retried: bool,
        decided: bool,
        ctx: &mut Context<Self>,
    ) {
        if self.aliases_not_loaded(&msg) {
            return;
        }
        let text = command::normalise_text(text);
        let index = self.aliases.load();
        match index.select(&text) {
            Selection::Matched(found) => {
                let command = CommandRef::Alias {
                    alias_ref: found.alias.reference.clone(),
                    pack: found.alias.pack.clone(),
                    text: text.clone(),
                };
                self.authorize(
                    msg,
                    command,
                    Next::Execute {
                        text,
                        found,
                        retried,
                        decided,
                        wait: None,
                    },
                    ctx,
                );
            }
            Selection::Ambiguous(candidates) => {
                self.metrics.command(CommandOutcome::Ambiguous);
                let reply = self.templates.render(
                    "ambiguous",
                    &json!({
                        "command": text,
                        "command_prefix": self.command_prefix(),
                        "candidates": candidates.iter().map(|c| json!({"display": c.display.as_deref().unwrap_or(&c.representation), "alias_ref": c.alias_ref})).collect::<Vec<_>>(),
                    }),
                );
                self.reply(&msg, reply);
            }
            Selection::NoMatch { suggestions } => {
                self.metrics.command(CommandOutcome::NoMatch);
                let reply = self.templates.render(
                    "no_match",
                    &json!({
                        "command": text,
                        "command_prefix": self.command_prefix(),
                        "help_command": format!("{}help", self.command_prefix()),
                        "suggestions": suggestions.iter().map(|s| json!({"display": s.display})).collect::<Vec<_>>(),
                    }),
                );
                self.reply(&msg, reply);
            }
        }
    }

    /// Runs a matched alias: one `POST /aliasexecution` — or, for a `match_multiple` format
    /// with several matches, one per match (StackStorm's `aliasexecution` runs only the
    /// first; its `match_and_execute`, which runs them all, takes no `source_context`, so
    /// results could not find their thread or be told apart). Every execution is registered
    /// with the result tracker first; one acknowledgement names them all.
    fn execute(
        &mut self,
        msg: InboundMessage,
        text: String,
        found: AliasMatch,
        retried: bool,
        decided: bool,
        ctx: &mut Context<Self>,
    ) {
        let commands = match &found.per_match {
            Ok(each) if !each.is_empty() => each.clone(),
            Ok(_) => vec![text.clone()],
            Err(why) => {
                self.metrics.command(CommandOutcome::Invalid);
                let reason = format!(
                    "StackStorm runs this alias once per match, but {why}, so the matches cannot be sent one by one; please send them as separate commands."
                );
                let reply = self
                    .templates
                    .render("error", &json!({"command": text, "reason": reason}));
                return self.reply(&msg, reply);
            }
        };
        let user = match self.settings.st2_user {
            crate::config::St2UserField::Id => msg.user.id.clone(),
            crate::config::St2UserField::Name => msg.user.name.clone(),
        };
        let jobs: Vec<(PendingResult, AliasExecutionRequest)> = commands
            .into_iter()
            .map(|command| {
                let request_id = uuid::Uuid::new_v4().to_string();
                let request = AliasExecutionRequest {
                    name: found.alias.name.clone(),
                    format: found.representation.clone(),
                    command,
                    user: user.clone(),
                    source_channel: msg.room.id.clone(),
                    notification_route: self.settings.route_key.clone(),
                    source_context: SourceContext {
                        bridge: BRIDGE_MARKER.to_owned(),
                        connection: msg.room.connection.clone(),
                        room: msg.room.id.clone(),
                        room_kind: msg.room.kind,
                        thread: msg.room.thread.clone(),
                        message_id: msg.message_id.clone(),
                        user_id: msg.user.id.clone(),
                        user_name: Some(msg.user.name.clone()).filter(|n| !n.is_empty()),
                        request_id: request_id.clone(),
                    },
                };
                let pending = PendingResult {
                    request_id,
                    execution_id: None,
                    context: request.source_context.clone(),
                    alias_ref: found.alias.reference.clone(),
                    alias_id: found.alias.id.clone(),
                    created_at: chrono::Utc::now(),
                    delivered_at: None,
                };
                (pending, request)
            })
            .collect();
        tracing::info!(
            alias = %found.alias.reference,
            user = %msg.user.id,
            connection = %msg.room.connection,
            request_id = %jobs.first().map(|(p, _)| p.request_id.as_str()).unwrap_or(""),
            executions = jobs.len(),
            "running alias"
        );
        let results = self.results.clone();
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let sessions = self.sessions.clone();
        let user_key = UserKey(format!("{}:{}", msg.user.connection, msg.user.id));
        // Known before StackStorm hears of the command, so its result is masked.
        let mask = self.settings.mask.clone();
        let secrets_to_learn = match self.secret_names.get(&found.alias.action_ref) {
            Some(names) => {
                mask.remember(secret_values(&found, &names));
                None
            }
            None => Some((self.secret_names(&found.alias.action_ref), found.clone())),
        };
        let fut = async move {
            if let Some((names, found)) = secrets_to_learn {
                mask.remember(secret_values(&found, &names.await));
            }
            let mut outcomes = Vec::with_capacity(jobs.len());
            for (pending, request) in jobs {
                let request_id = pending.request_id.clone();
                // Remembered (and persisted) before StackStorm hears of it: no restart after
                // the request left can forget that a result is owed.
                if results.send(TrackCommand(pending)).await.is_err() {
                    tracing::error!(
                        "the result tracker is not running; this command's result may be lost"
                    );
                }
                let outcome = execute_as(
                    &client,
                    &renewer,
                    sessions.clone(),
                    user_key.clone(),
                    &request,
                )
                .await;
                outcomes.push((request_id, outcome));
            }
            outcomes
        };
        ctx.spawn(fut.into_actor(self).map(move |outcomes, act, ctx| {
            let mut started = Vec::new();
            let mut failed = Vec::new();
            for (request_id, outcome) in outcomes {
                match outcome.map(|r| r.into_iter().next()) {
                    Ok(Some(result)) => started.push((request_id, result)),
                    Ok(None) => failed.push((
                        request_id,
                        ExecuteError::St2(St2Error::Decode("no execution in the answer".into())),
                    )),
                    Err(e) => failed.push((request_id, e)),
                }
            }
            for (request_id, _) in &failed {
                act.results.do_send(CommandRefused {
                    request_id: request_id.clone(),
                });
            }
            if started.is_empty() {
                let Some((request_id, error)) = failed.into_iter().next() else {
                    return;
                };
                if let ExecuteError::St2(e) = &error {
                    if !retried && alias_is_stale(e) {
                        // The alias (or this format of it) changed in StackStorm since the
                        // list was loaded: reload it now and match the command once more.
                        tracing::info!(error = %e, request_id = %request_id, "StackStorm no longer knows this alias or format; reloading aliases and retrying once");
                        let reload = act.alias_cache.send(ReloadAliases {
                            reason: "StackStorm refused a stale alias",
                        });
                        ctx.spawn(reload.into_actor(act).map(move |_, act, ctx| {
                            act.run_alias(msg, &text, true, decided, ctx);
                        }));
                        return;
                    }
                }
                act.refused(&msg, &text, &request_id, &error);
                return;
            }
            act.metrics.command(CommandOutcome::Executed);
            let results: Vec<AliasExecutionResult> =
                started.iter().map(|(_, r)| r.clone()).collect();
            if let Some(ack) = act.ack_text(&text, &found, &results) {
                // The alias's `ack.extra`, rendered by StackStorm (`thread_response`, colours).
                let extra = results.first().and_then(|r| r.extra.clone());
                act.send(
                    &msg.room.connection,
                    Target::reply_to(&msg.room),
                    ack,
                    extra,
                    msg.message_id.clone(),
                );
            }
            // The ack is queued at the connection: results may follow.
            for (request_id, result) in started {
                act.results.do_send(CommandAccepted {
                    request_id,
                    execution_id: result.execution.id,
                });
            }
            if let Some((request_id, error)) = failed.into_iter().next() {
                act.refused(&msg, &text, &request_id, &error);
            }
        }));
    }

    /// The names of `action_ref`'s secret parameters: cached, else asked of StackStorm with
    /// the bridge's credential (`GET /api/v1/actions/views/parameters/…`, RBAC
    /// `action_view`). A failed look-up masks by token shapes alone and is remembered as
    /// "none" for the cache's lifetime, so a missing permission costs one request per
    /// action, not one per command.
    fn secret_names(
        &mut self,
        action_ref: &str,
    ) -> impl std::future::Future<Output = Arc<[String]>> + 'static {
        let cached = self.secret_names.get(action_ref);
        let cache = self.secret_names.clone();
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let action_ref = action_ref.to_owned();
        async move {
            if let Some(names) = cached {
                return names;
            }
            let looked_up = with_bridge_credential(&renewer, |credential| {
                let (client, action_ref) = (&client, &action_ref);
                async move {
                    client
                        .action_secret_parameters(&credential, action_ref)
                        .await
                }
            })
            .await;
            let names: Arc<[String]> = match looked_up {
                Ok((names, _)) => names.into(),
                Err(e) => {
                    tracing::warn!(action = %action_ref, error = %e, "could not learn which parameters of this action are secret; its output is masked by token shapes only");
                    Arc::from([])
                }
            };
            cache.insert(action_ref, names.clone());
            names
        }
    }

    /// Tells the user why StackStorm did not run `text`.
    fn refused(&self, msg: &InboundMessage, text: &str, request_id: &str, e: &ExecuteError) {
        let session_start = format!("{}session_start <word>", self.command_prefix());
        let reason = match e {
            ExecuteError::St2(err) => err.user_message(),
            ExecuteError::Auth(_) => St2Error::Unauthorized(String::new()).user_message(),
            ExecuteError::NoSession(NoSession::Missing) => format!(
                "you have no StackStorm session, so I cannot run it as you. Send me `{session_start}` in a direct message and open the link (help works without one)."
            ),
            ExecuteError::NoSession(NoSession::Expired) => format!(
                "your StackStorm session has expired. Send me `{session_start}` in a direct message to start a new one."
            ),
            ExecuteError::UserRejected => format!(
                "StackStorm no longer accepts your session (it expired or was revoked), so it has ended. Send me `{session_start}` in a direct message to start a new one."
            ),
        };
        if matches!(e, ExecuteError::NoSession(_) | ExecuteError::UserRejected) {
            self.metrics.command(CommandOutcome::NoSession);
        } else {
            self.metrics.command(CommandOutcome::St2Error);
        }
        tracing::warn!(error = %e, request_id = %request_id, "alias execution failed");
        let text = self
            .templates
            .render("error", &json!({"command": text, "reason": reason}));
        self.reply(msg, text);
    }

    /// The acknowledgement, or `None` when the alias turned acks off (`ack.enabled: false`).
    fn ack_text(
        &self,
        command: &str,
        found: &AliasMatch,
        results: &[AliasExecutionResult],
    ) -> Option<String> {
        let first = results.first()?;
        // st2 returns the alias as it saw it; prefer its ack settings over the cached copy.
        let server_ack = first
            .actionalias
            .as_ref()
            .and_then(|a| a.ack.as_ref())
            .filter(|a| a.is_object());
        let flag = |key: &str| -> Option<bool> {
            match server_ack {
                Some(ack) => ack.get(key).and_then(Value::as_bool),
                None => found.alias.ack.as_ref().and_then(|ack| match key {
                    "enabled" => ack.enabled,
                    _ => ack.append_url,
                }),
            }
        };
        if flag("enabled") == Some(false) {
            return None;
        }
        // StackStorm builds `web_url` from its own host name, often an internal one: the
        // configured st2web address wins.
        let url = (flag("append_url") != Some(false))
            .then(|| {
                self.settings
                    .web_url
                    .as_ref()
                    .map(|w| format!("{w}/#/history/{}/general", first.execution.id))
                    .or_else(|| first.execution.web_url.clone())
            })
            .flatten();
        let ids: Vec<&str> = results.iter().map(|r| r.execution.id.as_str()).collect();
        Some(self.templates.render(
            "ack",
            &json!({
                "message": first.message,
                "command": command,
                "execution_id": first.execution.id,
                "execution_ids": ids,
                "multiple": ids.len() > 1,
                "count": ids.len(),
                "url": url,
            }),
        ))
    }

    /// `aliasexecution` names the alias by `name` alone and st2 takes the first alias of
    /// that name in any pack: sending the command could run another pack's alias, so the
    /// user is told why nothing runs. (Operators get one warning per load from the cache.)
    fn refuse_name_collision(
        &self,
        msg: &InboundMessage,
        text: &str,
        found: &AliasMatch,
        collision: &NameCollision,
    ) {
        self.metrics.command(CommandOutcome::AliasCollision);
        tracing::debug!(alias = %found.alias.reference, user = %msg.user.id, "not run: alias name shared by several packs");
        let reply = self.templates.render(
            "alias_collision",
            &json!({
                "command": text,
                "name": collision.name,
                "alias_ref": found.alias.reference,
                "packs": collision.packs,
                "pack_list": english_list(&collision.packs),
                "disabled": collision.disabled,
                "disabled_list": english_list(&collision.disabled),
            }),
        );
        self.reply(msg, reply);
    }
}

/// What to do once access control has allowed a command.
enum Next {
    Execute {
        text: String,
        found: AliasMatch,
        retried: bool,
        /// It was confirmed or approved already: it runs now, whatever it would wait for.
        decided: bool,
        /// What the confirmation rules say it waits for (filled in by the gate's verdict).
        wait: Option<crate::acl::Requirement>,
    },
    /// `confirm`, `abort`, `approve`, `deny` with their arguments.
    Decide(crate::confirm::Verb, String),
    /// `pending`.
    Pending,
    Reload,
    Help(String),
    Whoami,
    Acl(String),
    Session {
        verb: String,
        args: String,
    },
    Inquiry(inquiries::InquiryCommand),
}

/// `a`, `a and b`, `a, b and c`.
fn english_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// How the access rules see the sender of `msg`.
fn subject_of(msg: &InboundMessage) -> Subject {
    subject_in(&msg.user, &msg.room, &msg.room_name, &msg.org)
}

/// How the access rules see `user` in `room`.
fn subject_in(
    user: &crate::domain::message::ChatUser,
    room: &crate::domain::message::Room,
    room_name: &Option<String>,
    org: &Option<String>,
) -> Subject {
    Subject {
        connection: user.connection.clone(),
        user_id: user.id.clone(),
        user_names: vec![user.name.clone()],
        room_id: room.id.clone(),
        room_name: room_name.clone(),
        room_kind: room.kind,
        org: org.clone(),
    }
}

impl Dispatcher {
    /// Asks the gate, then continues with `next` or tells the user it was refused. If the
    /// gate cannot answer, the command is refused: access control fails closed.
    fn authorize(
        &mut self,
        msg: InboundMessage,
        command: CommandRef,
        next: Next,
        ctx: &mut Context<Self>,
    ) {
        let request = self.gate.send(Authorize {
            subject: subject_of(&msg),
            command: command.clone(),
        });
        ctx.spawn(request.into_actor(self).map(move |verdict, act, ctx| {
            if let Some(verdict) = verdict.ok().filter(|v| v.allowed()) {
                let next = match next {
                    Next::Execute {
                        text,
                        found,
                        retried,
                        decided,
                        ..
                    } => Next::Execute {
                        text,
                        found,
                        retried,
                        decided,
                        wait: verdict.wait,
                    },
                    other => other,
                };
                return act.proceed(msg, next, ctx);
            }
            act.metrics.command(CommandOutcome::Denied);
            let (shown, alias_ref) = match &command {
                CommandRef::Alias {
                    alias_ref, text, ..
                } => (text.clone(), Some(alias_ref.clone())),
                CommandRef::Builtin { text, .. } => {
                    (format!("{}{text}", act.command_prefix()), None)
                }
            };
            let text = act
                .templates
                .render("denied", &json!({"command": shown, "alias_ref": alias_ref}));
            act.reply(&msg, text);
        }));
    }

    fn proceed(&mut self, msg: InboundMessage, next: Next, ctx: &mut Context<Self>) {
        match next {
            Next::Execute {
                text,
                found,
                retried,
                decided,
                wait,
            } => {
                let index = self.aliases.load();
                if let Some(collision) = index.name_collision(&found.alias.name) {
                    return self.refuse_name_collision(&msg, &text, &found, collision);
                }
                let wait = wait.or_else(|| {
                    waiting::alias_asks_confirmation(&found).then(crate::acl::Requirement::by_alias)
                });
                match wait {
                    Some(requirement) if !decided => self.hold(msg, text, found, requirement, ctx),
                    _ => self.execute(msg, text, found, retried, decided, ctx),
                }
            }
            Next::Decide(verb, args) => self.handle_decision(msg, verb, args, ctx),
            Next::Pending => self.handle_pending(msg, ctx),
            Next::Help(args) => self.handle_help(&msg, &args),
            Next::Whoami => self.handle_whoami(msg, ctx),
            Next::Reload => self.handle_reload(msg, ctx),
            Next::Acl(args) => self.handle_acl(msg, &args, ctx),
            Next::Session { verb, args } => self.handle_session(msg, &verb, args, ctx),
            Next::Inquiry(command) => self.handle_inquiry(msg, command, ctx),
        }
    }

    /// `!st2reload` (admins): the alias list now, and how it went.
    fn handle_reload(&mut self, msg: InboundMessage, ctx: &mut Context<Self>) {
        self.metrics.command(CommandOutcome::Builtin);
        let reload = self.alias_cache.send(ReloadAliases {
            reason: "requested in chat",
        });
        ctx.spawn(reload.into_actor(self).map(move |answer, act, _ctx| {
            let outcome = match answer {
                Ok(Ok(aliases)) => ReloadOutcome::Reloaded { aliases },
                Ok(Err(e)) => ReloadOutcome::Failed(e),
                Err(_) => ReloadOutcome::NotAnswering,
            };
            act.reply(&msg, commands::reload::reply(&act.templates, &outcome));
        }));
    }

    /// `session_start`, `session_end`, `session_list`, `session_cancel`.
    fn handle_session(
        &mut self,
        msg: InboundMessage,
        verb: &str,
        args: String,
        ctx: &mut Context<Self>,
    ) {
        use commands::session;
        let prefix = self.command_prefix();
        let Some(sessions) = self.sessions.clone() else {
            self.metrics.command(CommandOutcome::Invalid);
            return self.reply(&msg, session::off(&self.templates));
        };
        let user = UserKey(format!("{}:{}", msg.user.connection, msg.user.id));
        self.metrics.command(CommandOutcome::Builtin);
        match verb {
            "session_start" => {
                let word = match session::start_word(&self.templates, &prefix, msg.room.kind, &args)
                {
                    Ok(word) => word,
                    Err(refusal) => return self.reply(&msg, refusal),
                };
                let request = sessions.send(StartSession {
                    user: msg.user.clone(),
                    word: secrecy::SecretString::from(word.to_owned()),
                });
                ctx.spawn(request.into_actor(self).map(move |result, act, _ctx| {
                    let t = &act.templates;
                    let text = match result {
                        Ok(Ok(link)) => session::started(
                            t,
                            &prefix,
                            secrecy::ExposeSecret::expose_secret(&link),
                        ),
                        Ok(Err(reason)) => session::start_refused(t, &prefix, &reason),
                        Err(_) => session::not_answering(t),
                    };
                    act.reply(&msg, text);
                }));
            }
            "session_end" => {
                let request = sessions.send(EndSession(user));
                ctx.spawn(request.into_actor(self).map(move |ended, act, _ctx| {
                    let text = match ended {
                        Ok(had_session) => session::ended(&act.templates, &prefix, had_session),
                        Err(_) => session::not_answering(&act.templates),
                    };
                    act.reply(&msg, text);
                }));
            }
            "session_list" => {
                let request = sessions.send(ListSessions);
                ctx.spawn(request.into_actor(self).map(move |list, act, _ctx| {
                    let text = match list {
                        Ok(list) => {
                            let listed: Vec<ListedSession> = list
                                .into_iter()
                                .map(|s| ListedSession {
                                    id: s.id.to_string(),
                                    user: s.user.0,
                                    active: s.state == SessionState::Active,
                                    created_at: s.created_at,
                                    expires_at: s.expires_at,
                                })
                                .collect();
                            session::list(&act.templates, &listed)
                        }
                        Err(_) => session::not_answering(&act.templates),
                    };
                    act.reply(&msg, text);
                }));
            }
            _ => {
                let id = match session::cancel_id(&self.templates, &prefix, &args) {
                    Ok(id) => id.to_owned(),
                    Err(usage) => return self.reply(&msg, usage),
                };
                let request = sessions.send(CancelSession(id.clone()));
                ctx.spawn(request.into_actor(self).map(move |cancelled, act, _ctx| {
                    let text = match cancelled {
                        Ok(existed) => session::cancelled(&act.templates, &prefix, &id, existed),
                        Err(_) => session::not_answering(&act.templates),
                    };
                    act.reply(&msg, text);
                }));
            }
        }
    }

    fn handle_whoami(&mut self, msg: InboundMessage, ctx: &mut Context<Self>) {
        let renewer = self.renewer.clone();
        let gate = self.gate.clone();
        let subject = subject_of(&msg);
        let fut = async move {
            let identity = renewer.send(DescribeIdentity).await.ok();
            let admin = gate
                .send(super::acl_gate::IsAdmin(subject))
                .await
                .unwrap_or(false);
            (identity, admin)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(identity, admin), act, _ctx| {
                    act.metrics.command(CommandOutcome::Builtin);
                    let text =
                        commands::whoami::reply(&act.templates, &msg, admin, identity.as_deref());
                    act.reply(&msg, text);
                }),
        );
    }

    /// `!st2acl explain <user> <room> <command text>`: `<user>` is `<connection>:<id>`,
    /// `<room>` is `<connection>:<id>` for a group room or `dm` for a direct message.
    fn handle_acl(&mut self, msg: InboundMessage, args: &str, ctx: &mut Context<Self>) {
        let request = commands::acl::explain_request(
            &self.templates,
            &self.settings.prefixes,
            args,
            &self.aliases.load(),
        );
        let (subject, command) = match request {
            Ok(v) => v,
            Err(usage) => {
                self.metrics.command(CommandOutcome::Invalid);
                return self.reply(&msg, usage);
            }
        };
        let request = self.gate.send(Explain { subject, command });
        ctx.spawn(request.into_actor(self).map(move |explanation, act, _ctx| {
            act.metrics.command(CommandOutcome::Builtin);
            let text = commands::acl::explained(&act.templates, explanation.ok().as_ref());
            act.reply(&msg, text);
        }));
    }
}

/// The values of a matched command's secret parameters (extracted from the text, and the
/// alias's immutable ones), to mask in everything the bridge posts.
fn secret_values(found: &AliasMatch, names: &[String]) -> Vec<String> {
    if names.is_empty() {
        return Vec::new();
    }
    let mut values = Vec::new();
    for params in &found.params {
        let map: serde_json::Map<String, Value> = params
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        values.extend(crate::st2::actions::secret_parameter_values(&map, names));
    }
    if let Some(fixed) = found
        .alias
        .immutable_parameters
        .as_deref()
        .and_then(Value::as_object)
    {
        values.extend(crate::st2::actions::secret_parameter_values(fixed, names));
    }
    values
}

/// StackStorm's answers for an alias the cached list has but StackStorm no longer has, or
/// whose format changed (st2api `controllers/v1/aliasexecution.py`, and st2's
/// `extract_parameters_for_action_alias_db`).
fn alias_is_stale(e: &St2Error) -> bool {
    match e {
        // `ActionAlias.get_by_name` raises StackStormDBObjectNotFoundError, which the router
        // turns into a 404 with its message; the controller's own text is for a `None`.
        St2Error::Api {
            status: 404,
            faultstring,
            ..
        } => {
            faultstring.starts_with("Unable to find the ActionAliasDB instance")
                || faultstring.starts_with("Unable to identify action alias with name")
        }
        St2Error::Api {
            status: 400,
            faultstring,
            ..
        } => {
            faultstring.starts_with("Format string \"")
                && faultstring.contains("is not available on the alias")
        }
        _ => false,
    }
}

#[derive(Debug, thiserror::Error)]
enum ExecuteError {
    #[error("no StackStorm credential: {0}")]
    Auth(String),
    #[error(transparent)]
    St2(#[from] St2Error),
    #[error("the user has {0}")]
    NoSession(NoSession),
    #[error("StackStorm rejected the user's session")]
    UserRejected,
}

/// Runs the alias execution with the right identity: the user's own session in client-side
/// mode (a 401 ends it: nothing here can renew a user's token), else the bridge's.
async fn execute_as(
    client: &St2Client,
    renewer: &Addr<TokenRenewer>,
    sessions: Option<Addr<SessionManager>>,
    user: UserKey,
    request: &AliasExecutionRequest,
) -> Result<Vec<AliasExecutionResult>, ExecuteError> {
    let Some(sessions) = sessions else {
        return execute_with_reauth(client, renewer, request).await;
    };
    let credential = sessions
        .send(UserCredential(user.clone()))
        .await
        .map_err(|_| ExecuteError::Auth("session service stopped".into()))?
        .map_err(ExecuteError::NoSession)?;
    match client.execute_alias(&credential, request).await {
        Err(St2Error::Unauthorized(_)) => {
            sessions.do_send(UserCredentialRejected(user));
            Err(ExecuteError::UserRejected)
        }
        other => Ok(other?),
    }
}

/// Runs the alias execution with the bridge's credential (one re-login and retry on a 401).
async fn execute_with_reauth(
    client: &St2Client,
    renewer: &Addr<TokenRenewer>,
    request: &AliasExecutionRequest,
) -> Result<Vec<AliasExecutionResult>, ExecuteError> {
    let (results, _) = with_bridge_credential(renewer, |credential| async move {
        client.execute_alias(&credential, request).await
    })
    .await
    .map_err(|e| match e {
        BridgeCallError::Auth(e) => ExecuteError::Auth(e.to_string()),
        BridgeCallError::St2(e) => ExecuteError::St2(e),
    })?;
    Ok(results)
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.load_waiting(ctx);
        self.status.state(ActorState::Up, None);
    }
}

impl Supervised for Dispatcher {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.status.restarted(None);
    }
}

/// Gives the dispatcher the session manager (client-side mode). Sent once at start-up: the
/// two need each other's addresses.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UseSessions(pub Addr<SessionManager>);

impl Handler<UseSessions> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: UseSessions, _ctx: &mut Self::Context) {
        self.sessions = Some(msg.0);
    }
}

impl Handler<NotifyUser> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: NotifyUser, _ctx: &mut Self::Context) {
        self.send(
            &msg.connection,
            Target::User { id: msg.user_id },
            msg.text,
            None,
            None,
        );
    }
}

impl Handler<RegisterConnection> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: RegisterConnection, _ctx: &mut Self::Context) {
        self.connections.insert(msg.name, msg.recipient);
    }
}

impl Handler<Inbound> for Dispatcher {
    type Result = ();

    fn handle(&mut self, Inbound(msg): Inbound, ctx: &mut Self::Context) {
        self.status.activity();
        let Some(parsed) = command::parse(
            &msg.text,
            msg.room.kind,
            msg.mentioned,
            &self.settings.prefixes,
        ) else {
            return;
        };
        let builtin = |verb: &str, args: String, next: Next| {
            let text = if args.is_empty() {
                verb.to_owned()
            } else {
                format!("{verb} {args}")
            };
            (
                CommandRef::Builtin {
                    verb: verb.to_owned(),
                    text,
                },
                next,
            )
        };
        let (command, next) = match parsed {
            Command::Run(text) if text.is_empty() => {
                builtin("help", String::new(), Next::Help(String::new()))
            }
            Command::Run(text) => return self.handle_run(msg, &text, ctx),
            Command::Builtin { verb, args } => match verb.as_str() {
                "help" => builtin("help", args.clone(), Next::Help(args)),
                "whoami" => builtin("whoami", args, Next::Whoami),
                "reload" => builtin("reload", args, Next::Reload),
                "acl" => builtin("acl", args.clone(), Next::Acl(args)),
                "inquiries" => builtin(
                    "inquiries",
                    args,
                    Next::Inquiry(inquiries::InquiryCommand::List),
                ),
                "answer" => builtin(
                    "answer",
                    args.clone(),
                    Next::Inquiry(inquiries::InquiryCommand::Answer(args)),
                ),
                "confirm" | "abort" | "approve" | "deny" => {
                    let Some(decision) = crate::confirm::Verb::from_builtin(&verb) else {
                        return;
                    };
                    builtin(&verb, args.clone(), Next::Decide(decision, args))
                }
                "pending" => builtin("pending", args, Next::Pending),
                "session_start" | "session_end" | "session_list" | "session_cancel" => {
                    let next = Next::Session {
                        verb: verb.clone(),
                        args: args.clone(),
                    };
                    // The shared word is not command text anyone should see again (logs, explain).
                    let shown = if verb == "session_start" {
                        String::new()
                    } else {
                        args
                    };
                    builtin(&verb, shown, next)
                }
                _ => {
                    self.metrics.command(CommandOutcome::Invalid);
                    let text = commands::unknown(&self.templates, &self.command_prefix(), &verb);
                    return self.reply(&msg, text);
                }
            },
        };
        self.authorize(msg, command, next, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_are_listed_as_a_sentence() {
        let list =
            |items: &[&str]| english_list(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(list(&[]), "");
        assert_eq!(list(&["a"]), "a");
        assert_eq!(list(&["a", "b"]), "a and b");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
    }
}
