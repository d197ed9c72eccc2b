//! The command pipeline and the delivery of results.
//!
//! Inbound: prefix → built-in or alias → match against the alias snapshot (locally, in
//! microseconds; text that matches nothing never costs a StackStorm round trip) →
//! `POST /api/v1/aliasexecution` with the bridge's credential (re-login and one retry on a
//! 401) → acknowledgement in the same room and thread.
//!
//! Results are the `ResultTracker`'s: every command is registered there before its request
//! leaves ([`TrackCommand`]), its execution id is persisted there before the acknowledgement
//! goes out ([`RecordExecution`]), and StackStorm's answer is reported after the
//! acknowledgement has been handed to the chat connection ([`CommandAccepted`] /
//! [`CommandRefused`]), so a
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
    as_sender::{call_as_sender, SenderCallError},
    job_keeper::{Asker, JobCommand, JobEnded, JobKeeper, JobStarted, JobVerb, RecordJob},
    result_tracker::{
        CommandAccepted, CommandRefused, RecordExecution, ResultTracker, TrackCommand,
    },
    session_manager::{
        CancelSession, EndSession, ListSessions, NotifyUser, SessionManager, StartSession,
    },
    status::{ActorState, StatusReporter},
    token_renewer::{with_bridge_credential, DescribeIdentity, TokenRenewer},
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
    render::{replies::Outcome, Templates},
    st2::{
        client::{LocalClient, St2ClientFactory},
        models::{AliasExecutionRequest, AliasExecutionResult},
        St2Error,
    },
    store::{
        jobs::{JobKind, JobStatus, NewJob},
        model::{SessionState, UserKey},
    },
};

/// `!st2inquiries`, `!st2answer` and answer buttons.
mod inquiries;
/// Local commands (`[[commands]]`): matched before aliases, run by the job keeper.
mod local;
/// Personal aliases: expansion, `!st2alias`, `!st2unalias`, `!st2aliases`.
mod personal;
/// The trigger API: `!st2token`, `!st2tokens`, and commands triggered over HTTP.
pub mod triggers;
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
    /// Where every command is recorded as a job (`None`: not recorded, as in unit tests).
    pub jobs: Option<Addr<JobKeeper>>,
    /// Where users' personal aliases are kept.
    pub personal_aliases: crate::store::PersonalAliasStore,
    /// `[[commands]]`: programs the bridge runs itself.
    pub local: crate::config::LocalSettings,
    /// `[replies]`: the team's own words and styles for some outcomes.
    pub replies: Arc<crate::render::replies::Replies>,
    /// Where the trigger API's tokens are kept.
    pub trigger_tokens: crate::store::TriggerTokenStore,
    /// `[auth] public_url`: where the bridge is reached (shown with a new trigger token).
    pub public_url: Option<String>,
    /// The results owed survive a restart (a persistent store): each command's execution
    /// id is written there before its acknowledgement goes out. Without a store there is
    /// nothing to write, and the acknowledgement does not wait.
    pub persistent_results: bool,
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
    /// Users' personal aliases, as read from the store.
    personal: moka::sync::Cache<UserKey, personal::Aliases>,
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
            personal: personal::cache(),
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
                receipt: None,
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

    /// Replies with the built-in template `template` for an outcome `[replies]` may
    /// reword, restyle or silence. `extra` is StackStorm's (an ack's `ack.extra`); a card's
    /// colour is added to it.
    fn reply_as(
        &self,
        msg: &InboundMessage,
        outcome: Outcome,
        template: &str,
        data: &Value,
        extra: Option<Value>,
    ) {
        let default = self.templates.render(template, data);
        let Some(styled) = self.settings.replies.styled(outcome, default, data) else {
            return;
        };
        let extra = match (extra, styled.extra) {
            (Some(Value::Object(mut theirs)), Some(Value::Object(ours))) => {
                for (k, v) in ours {
                    theirs.entry(k).or_insert(v);
                }
                Some(Value::Object(theirs))
            }
            (theirs, ours) => theirs.or(ours),
        };
        if styled.text.trim().is_empty() {
            return;
        }
        match self.connections.get(&msg.room.connection) {
            Some(recipient) => recipient.do_send(Deliver {
                target: Target::reply_to(&msg.room),
                text: styled.text,
                extra,
                reply_to: msg.message_id.clone(),
                layout: styled.layout,
                receipt: None,
            }),
            None => {
                tracing::warn!(connection = %msg.room.connection, "no such chat connection; message dropped")
            }
        }
    }

    fn handle_help(&self, msg: &InboundMessage, args: &str) {
        let index = self.aliases.is_loaded().then(|| self.aliases.load());
        let paging = HelpPaging {
            default_size: self.settings.help_page_size,
            max_size: self.settings.help_max_page_size,
        };
        let local: Vec<(&str, &str)> = self
            .settings
            .local
            .commands
            .iter()
            .map(|c| (c.name.as_str(), c.help.as_str()))
            .collect();
        let reply = commands::help::reply(
            &self.templates,
            index.as_deref(),
            &self.command_prefix(),
            args,
            paging,
            &local,
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
        let text = command::normalise_text(&self.expand_personal(&msg, text));
        if self.run_local(&msg, &text, ctx) {
            return;
        }
        self.run_alias(msg, &text, false, None, ctx);
    }

    /// `retried`: this is the one retry after StackStorm said the alias or its format no
    /// longer exists (the list was reloaded in between). `decided`: who confirmed or
    /// approved it (for the job record), so it does not wait again.
    fn run_alias(
        &mut self,
        msg: InboundMessage,
        text: &str,
        retried: bool,
        decided: Option<String>,
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
                let data = json!({
                    "command": text,
                    "command_prefix": self.command_prefix(),
                    "help_command": format!("{}help", self.command_prefix()),
                    "suggestions": suggestions.iter().map(|s| json!({"display": s.display})).collect::<Vec<_>>(),
                });
                self.reply_as(&msg, Outcome::Unknown, "no_match", &data, None);
                // No alias: the job names none.
                self.record_unrun(
                    &msg.user,
                    &msg.room,
                    &msg.room_name,
                    &text,
                    JobKind::Alias {
                        alias_ref: String::new(),
                    },
                    JobStatus::Refused,
                    None,
                );
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
        decided: Option<String>,
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
        let persistent_results = self.settings.persistent_results;
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let sessions = self.sessions.clone();
        let user_key = UserKey(format!("{}:{}", msg.user.connection, msg.user.id));
        // Known before StackStorm hears of the command, so its result is masked.
        let mask = self.settings.mask.clone();
        let secret_names = self.secret_names(&found.alias.action_ref);
        let record = self.settings.jobs.clone().map(|jobs| {
            let job = NewJob {
                user: user_key.clone(),
                user_name: msg.user.name.clone(),
                connection: msg.room.connection.clone(),
                room_id: msg.room.id.clone(),
                room_name: msg.room_name.clone(),
                room_kind: msg.room.kind,
                thread: msg.room.thread.clone(),
                text: text.clone(),
                kind: JobKind::Alias {
                    alias_ref: found.alias.reference.clone(),
                },
                parameters: Default::default(),
                status: JobStatus::Requested,
                decided_by: decided.clone(),
            };
            (jobs, job)
        });
        let matched = found.clone();
        let fut = async move {
            let names = secret_names.await;
            mask.remember(secret_values(&matched, &names));
            // The job is recorded (secrets masked) while the request goes out, never before
            // it: the result tracker's record is what makes the command survive a crash,
            // and nothing may delay it.
            let job_id = record.map(|(jobs, mut job)| {
                job.text = mask.text(&job.text).into_owned();
                job.parameters = masked_parameters(&matched, &names, &mask);
                jobs.send(RecordJob(job))
            });
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
                let outcome =
                    call_as_sender(&renewer, sessions.clone(), user_key.clone(), |credential| {
                        let (client, request) = (&client, &request);
                        async move { client.execute_alias(&credential, request).await }
                    })
                    .await;
                // Persisted before the acknowledgement goes out: a bridge killed after
                // saying "started" still knows which execution's result it owes.
                let execution_id = outcome
                    .as_ref()
                    .ok()
                    .filter(|_| persistent_results)
                    .and_then(|r| r.first())
                    .map(|r| r.execution.id.clone());
                if let Some(execution_id) = execution_id {
                    let recorded = RecordExecution {
                        request_id: request_id.clone(),
                        execution_id,
                    };
                    if results.send(recorded).await.is_err() {
                        tracing::error!(
                            "the result tracker is not running; this command's result may be lost"
                        );
                    }
                }
                outcomes.push((request_id, outcome));
            }
            let job_id = match job_id {
                Some(recorded) => recorded.await.ok().flatten(),
                None => None,
            };
            (job_id, outcomes)
        };
        ctx.spawn(fut.into_actor(self).map(move |(job_id, outcomes), act, ctx| {
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
            if let (Some(jobs), Some(id)) = (&act.settings.jobs, job_id) {
                if started.is_empty() {
                    jobs.do_send(JobEnded {
                        id,
                        status: JobStatus::Refused,
                    });
                } else {
                    jobs.do_send(JobStarted {
                        id,
                        execution_ids: started.iter().map(|(_, r)| r.execution.id.clone()).collect(),
                    });
                }
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
            if let Some(data) = act.ack_data(&text, &found, &results, job_id) {
                // The alias's `ack.extra`, rendered by StackStorm (`thread_response`, colours).
                let extra = results.first().and_then(|r| r.extra.clone());
                act.reply_as(&msg, Outcome::Ack, "ack", &data, extra);
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
        let reason = e.user_message(&self.command_prefix());
        if e.is_session_problem() {
            self.metrics.command(CommandOutcome::NoSession);
        } else {
            self.metrics.command(CommandOutcome::St2Error);
        }
        tracing::warn!(error = %e, request_id = %request_id, "alias execution failed");
        let data = json!({"command": text, "reason": reason});
        self.reply_as(msg, Outcome::Failure, "error", &data, None);
    }

    /// The acknowledgement's template data, or `None` when the alias turned acks off
    /// (`ack.enabled: false`).
    fn ack_data(
        &self,
        command: &str,
        found: &AliasMatch,
        results: &[AliasExecutionResult],
        job_id: Option<u64>,
    ) -> Option<Value> {
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
        Some(json!({
            "message": first.message,
            "command": command,
            "execution_id": first.execution.id,
            "execution_ids": ids,
            "multiple": ids.len() > 1,
            "count": ids.len(),
            "url": url,
            "job_id": job_id,
        }))
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
        decided: Option<String>,
        /// What the confirmation rules say it waits for (filled in by the gate's verdict).
        wait: Option<crate::acl::Requirement>,
    },
    /// `confirm`, `abort`, `approve`, `deny` with their arguments.
    Decide(crate::confirm::Verb, String),
    /// `pending`.
    Pending,
    /// `jobs`, `job`, `last`, `logs`, `tail`, `cancel` and the audit commands.
    Jobs(JobVerb, String),
    /// `alias`, `unalias`, `aliases`.
    Personal(personal::PersonalCommand),
    /// A local command, with the user's arguments.
    Local(local::LocalRun),
    /// `token create|revoke …`.
    Token(String),
    /// `tokens [all]`.
    Tokens(String),
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
                    Next::Local(run) => Next::Local(local::LocalRun {
                        wait: verdict.wait,
                        ..run
                    }),
                    other => other,
                };
                return act.proceed(msg, next, ctx);
            }
            act.denied(&msg, &command);
        }));
    }

    /// Tells `msg`'s sender that the access rules refused `command`.
    fn denied(&self, msg: &InboundMessage, command: &CommandRef) {
        self.metrics.command(CommandOutcome::Denied);
        let (shown, alias_ref) = match command {
            CommandRef::Alias {
                alias_ref, text, ..
            } => (text.clone(), Some(alias_ref.clone())),
            CommandRef::Builtin { text, .. } => (format!("{}{text}", self.command_prefix()), None),
        };
        let data = json!({"command": shown, "alias_ref": alias_ref});
        self.reply_as(msg, Outcome::Unauthorised, "denied", &data, None);
        let kind = match command {
            CommandRef::Alias {
                alias_ref, pack, ..
            } if pack == local::LOCAL_PACK => JobKind::Local {
                command: alias_ref
                    .strip_prefix(&format!("{}.", local::LOCAL_PACK))
                    .unwrap_or(alias_ref)
                    .to_owned(),
            },
            CommandRef::Alias { alias_ref, .. } => JobKind::Alias {
                alias_ref: alias_ref.clone(),
            },
            CommandRef::Builtin { verb, .. } => JobKind::Builtin {
                command: verb.clone(),
            },
        };
        let text = match command {
            CommandRef::Alias { text, .. } => text.clone(),
            CommandRef::Builtin { .. } => shown,
        };
        self.record_unrun(
            &msg.user,
            &msg.room,
            &msg.room_name,
            &text,
            kind,
            JobStatus::Refused,
            None,
        );
    }

    /// Records a command that ends without running — no alias matches it, the access rules
    /// refuse it, a held command is denied, aborted or expires — as a finished job, so the
    /// audit (`!st2audit`) shows what was asked and refused, not only what ran. One message
    /// to the job keeper; the text is masked first, like every job's.
    #[allow(clippy::too_many_arguments)]
    fn record_unrun(
        &self,
        user: &crate::domain::message::ChatUser,
        room: &crate::domain::message::Room,
        room_name: &Option<String>,
        text: &str,
        kind: JobKind,
        status: JobStatus,
        decided_by: Option<String>,
    ) {
        let Some(jobs) = &self.settings.jobs else {
            return;
        };
        jobs.do_send(RecordJob(NewJob {
            user: UserKey::new(&user.connection, &user.id),
            user_name: user.name.clone(),
            connection: room.connection.clone(),
            room_id: room.id.clone(),
            room_name: room_name.clone(),
            room_kind: room.kind,
            thread: room.thread.clone(),
            text: self.settings.mask.text(text).into_owned(),
            kind,
            parameters: Default::default(),
            status,
            decided_by,
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
                    Some(requirement) if decided.is_none() => self.hold(
                        msg,
                        text,
                        local::HeldCommand::Alias(found),
                        requirement,
                        ctx,
                    ),
                    _ => self.execute(msg, text, found, retried, decided, ctx),
                }
            }
            Next::Decide(verb, args) => self.handle_decision(msg, verb, args, ctx),
            Next::Pending => self.handle_pending(msg, ctx),
            Next::Jobs(verb, args) => self.handle_jobs(msg, verb, args, ctx),
            Next::Personal(command) => self.handle_personal(msg, command, ctx),
            Next::Local(run) => self.start_local(msg, run, ctx),
            Next::Token(args) => self.handle_token(msg, args, ctx),
            Next::Tokens(args) => self.handle_tokens(msg, args, ctx),
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

    /// The job commands: answered by the job keeper, told whether the asker is an admin
    /// (admins may cancel anyone's job).
    fn handle_jobs(
        &mut self,
        msg: InboundMessage,
        verb: JobVerb,
        args: String,
        ctx: &mut Context<Self>,
    ) {
        let Some(jobs) = self.settings.jobs.clone() else {
            self.metrics.command(CommandOutcome::Invalid);
            return self.reply(&msg, "Jobs are not recorded here.".to_owned());
        };
        self.metrics.command(CommandOutcome::Builtin);
        let admin = self.gate.send(super::acl_gate::IsAdmin(subject_of(&msg)));
        ctx.spawn(admin.into_actor(self).map(move |admin, _act, _ctx| {
            jobs.do_send(JobCommand {
                verb,
                args,
                asker: Asker {
                    user: UserKey::new(&msg.user.connection, &msg.user.id),
                    room: msg.room,
                    reply_to: msg.message_id,
                    admin: admin.unwrap_or(false),
                },
            });
        }));
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

/// The parameters a job records: the first match's (one per execution with
/// `match_multiple`; the text shows the rest), secret ones by name and every remembered
/// secret value masked.
fn masked_parameters(
    found: &AliasMatch,
    names: &[String],
    mask: &crate::redact::SecretMask,
) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for (key, value) in found.params.first().into_iter().flatten() {
        let shown = if names.iter().any(|n| n == key) {
            mask.mask_word().to_owned()
        } else {
            mask.text(value).into_owned()
        };
        out.insert(key.clone(), Value::String(shown));
    }
    out
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

/// Why a command did not start.
type ExecuteError = SenderCallError;

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
                "alias" => builtin(
                    "alias",
                    args.clone(),
                    Next::Personal(personal::PersonalCommand::Define(args)),
                ),
                "unalias" => builtin(
                    "unalias",
                    args.clone(),
                    Next::Personal(personal::PersonalCommand::Remove(args)),
                ),
                "token" => builtin("token", args.clone(), Next::Token(args)),
                "tokens" => builtin("tokens", args.clone(), Next::Tokens(args)),
                "aliases" => builtin(
                    "aliases",
                    args,
                    Next::Personal(personal::PersonalCommand::List),
                ),
                other if JobVerb::from_builtin(other).is_some() => {
                    let Some(job_verb) = JobVerb::from_builtin(other) else {
                        return;
                    };
                    builtin(other, args.clone(), Next::Jobs(job_verb, args))
                }
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
