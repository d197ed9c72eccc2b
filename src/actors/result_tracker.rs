//! Every command's result reaches chat, once.
//!
//! The dispatcher registers each command here before it asks StackStorm to run it
//! ([`TrackCommand`]), then reports StackStorm's answer ([`CommandAccepted`] with the
//! execution id, or [`CommandRefused`]). Results come from two places:
//!
//! * the event stream's announcements ([`AnnouncementReceived`]), which carry the command's
//!   `source_context` back, and
//! * StackStorm's API: after every gap in the stream ([`StreamEstablished`]), every `[results]
//!   grace` while the stream is down ([`StreamLost`]), and whenever an execution has finished
//!   and its announcement is later than `[results] grace`, the
//!   execution is fetched (`GET /api/v1/executions/{id}`) and its result rendered exactly as
//!   the chatops pack's `format_execution_result` would have (`st2::result_message`), then
//!   posted to the room and thread the command came from. Rendering locally — rather than
//!   asking StackStorm to announce again by running `chatops.post_result` — works while the
//!   stream is down (which is when it is needed), creates no executions in StackStorm's
//!   history, needs no permission to run chatops actions, and cannot be lost a second time.
//!
//! Both paths pass through the ledger (`domain::result_ledger`), which hands each result
//! over once. An announcement that arrives while its command's request is still in flight is
//! held until the dispatcher has delivered the acknowledgement, so the ack always comes
//! first. The ledger is written through to the store, so a restarted bridge still owes
//! (and only owes) what it owed: a result counts as delivered in the store only once its
//! chat connection says the platform has it ([`Posted`]), so one still waiting in a
//! connection's queue (a chat outage, a rate limit) when the bridge stops is posted by the
//! next start. Announcements that answer another bot's command on a
//! shared route are left to that bot.
//!
//! Once a command's result is posted, its execution is looked up once (announcements carry
//! no status or times) and the job keeper told how it ended ([`ExecutionEnded`]): one
//! request and one message per result, so no job stays "running" until someone looks.
//! When `[replies] success`/`failure` reword results, that look-up comes first and the
//! result is posted in the team's words (`{{default}}` is StackStorm's text).
//!
//! The actor runs on its own arbiter: store writes and result rendering never hold up the
//! dispatcher or the chat connections. No timer runs while nothing is owed.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    alias_cache::AliasSnapshot,
    dispatcher::UseSessions,
    job_keeper::ExecutionEnded,
    lease_keeper::ConnectionLease,
    messages::{Deliver, Halt, Posted, Receipt, RegisterConnection},
    session_manager::{SessionManager, UserCredential},
    status::{ActorState, StatusReporter},
    stream_consumer::{AnnouncementReceived, StreamEstablished, StreamLost},
    token_renewer::{with_bridge_credential, BridgeCallError, TokenRenewer},
};
use crate::{
    domain::{
        announcement::{self, Announcement, Delivery, SourceContext},
        mention::{self, MentionFn},
        result_ledger::{
            CheckOutcome, CheckVerdict, Claim, Expired, ExpiryReason, Ledger, LedgerSettings,
            PendingResult,
        },
    },
    metrics::{Metrics, ResultSource},
    render::{
        replies::{Outcome, Replies},
        Templates,
    },
    st2::{
        client::{LocalClient, St2ClientFactory},
        models::ExecutionState,
        result_message::ResultFormatter,
        St2Error,
    },
    store::{model::UserKey, ResultStore},
};

/// Most executions looked up at the same time.
const MAX_CHECKS_IN_FLIGHT: usize = 8;

/// StackStorm's completed execution statuses (`st2common/constants/action.py`).
const COMPLETED: &[&str] = &["succeeded", "failed", "timeout", "canceled", "abandoned"];

/// A command is about to be sent to StackStorm: remember it. Answered once it is recorded
/// (and persisted), so a restart after the request left cannot forget it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct TrackCommand(pub PendingResult);

/// StackStorm accepted the command: its execution id, persisted before the
/// acknowledgement goes out (answered once written), so a bridge killed after saying
/// "started" still owes the result of that execution after a restart. Held results stay
/// held until [`CommandAccepted`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RecordExecution {
    /// The bridge's request id.
    pub request_id: String,
    /// StackStorm's execution id.
    pub execution_id: String,
}

/// StackStorm accepted the command, and its acknowledgement is queued: results may follow.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CommandAccepted {
    /// The bridge's request id.
    pub request_id: String,
    /// StackStorm's execution id.
    pub execution_id: String,
}

/// StackStorm refused the command, or it could not be sent: no result will come.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CommandRefused {
    /// The bridge's request id.
    pub request_id: String,
}

/// Every chat connection has been registered: messages held for connections not known
/// yet (notices about results owed before a restart) can go now.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ConnectionsRegistered;

/// What the tracker needs from the configuration.
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    /// The ledger's limits and timings.
    pub ledger: LedgerSettings,
    /// Connection names in config order (where announcements without context go).
    pub connection_order: Vec<String>,
    /// Address room messages to the person they are for (`[results] mention_user`).
    pub mention_user: bool,
    /// Connections are leased among bridge processes sharing the store: the tracker owes
    /// only the results of connections this process holds ([`ConnectionLease`]), and
    /// loads them from the store when it takes a connection over, not at start.
    pub leased: bool,
    /// `[replies]`: `success` and `failure` reword StackStorm's results too.
    pub replies: Arc<Replies>,
}

/// The tracker actor.
pub struct ResultTracker {
    ledger: Ledger,
    connection_order: Vec<String>,
    store: ResultStore,
    client: LocalClient,
    renewer: Addr<TokenRenewer>,
    sessions: Option<Addr<SessionManager>>,
    /// Told the final status of every execution looked up (the job records').
    jobs: Option<Recipient<ExecutionEnded>>,
    aliases: AliasSnapshot,
    formatter: ResultFormatter,
    templates: Arc<Templates>,
    metrics: Metrics,
    status: StatusReporter,
    connections: BTreeMap<String, Recipient<Deliver>>,
    /// How each connection's platform writes a mention.
    mentions: BTreeMap<String, MentionFn>,
    mention_user: bool,
    /// Announcements held until their command's acknowledgement is out.
    held: HashMap<String, Vec<Delivery>>,
    /// The pending wake-up and when it fires.
    wake: Option<(DateTime<Utc>, SpawnHandle)>,
    /// Whether the store is failing (warned once per stretch of failures).
    store_failing: bool,
    /// Messages for connections not registered yet, until [`ConnectionsRegistered`]; each
    /// with whether it is a result the store owes.
    early: Option<Vec<(Delivery, bool)>>,
    /// The tracker's own address, for connections' receipts (set when started).
    me: Option<Recipient<Posted>>,
    /// With leased connections: those this process holds now (`None`: all of them).
    held_connections: Option<std::collections::BTreeSet<String>>,
    replies: Arc<Replies>,
    /// Told to stop ([`Halt`]): nothing more is looked up or posted; what is owed stays
    /// owed in the store for the next process.
    halted: bool,
}

impl ResultTracker {
    /// A tracker; it loads what the store remembers when started.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: TrackerSettings,
        store: ResultStore,
        st2: St2ClientFactory,
        renewer: Addr<TokenRenewer>,
        jobs: Option<Recipient<ExecutionEnded>>,
        aliases: AliasSnapshot,
        templates: Arc<Templates>,
        metrics: Metrics,
        status: StatusReporter,
    ) -> Self {
        Self {
            ledger: Ledger::new(settings.ledger),
            connection_order: settings.connection_order,
            store,
            client: LocalClient::new(st2),
            renewer,
            sessions: None,
            jobs,
            aliases,
            formatter: ResultFormatter::new(),
            templates,
            metrics,
            status,
            connections: BTreeMap::new(),
            mentions: BTreeMap::new(),
            mention_user: settings.mention_user,
            held: HashMap::new(),
            wake: None,
            store_failing: false,
            early: Some(Vec::new()),
            me: None,
            held_connections: settings.leased.then(std::collections::BTreeSet::new),
            replies: settings.replies,
            halted: false,
        }
    }

    fn stored<E: std::fmt::Display>(&mut self, what: &str, result: Result<(), E>) {
        match result {
            Ok(()) if self.store_failing => {
                self.store_failing = false;
                tracing::info!("the result store works again");
            }
            Ok(()) => {}
            Err(e) if !self.store_failing => {
                self.store_failing = true;
                tracing::error!(error = %e, what, "cannot write to the result store; results owed are kept in memory only until it works again");
            }
            Err(_) => {}
        }
    }

    fn report(&mut self) {
        let pending = self.ledger.pending();
        self.metrics.set_results_pending(pending);
        self.status.details(vec![
            ("results_pending".to_owned(), json!(pending)),
            ("results_remembered".to_owned(), json!(self.ledger.len())),
        ]);
    }

    /// Whether this process runs `connection` now (always, unless connections are leased).
    fn runs(&self, connection: &str) -> bool {
        self.held_connections
            .as_ref()
            .is_none_or(|held| held.contains(connection))
    }

    /// Loads what the store owes `connection` (all connections: `None`) into the ledger:
    /// at start, or when this process takes a connection over.
    fn restore(&mut self, connection: Option<&str>) {
        let records = match self.store.load() {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the results owed from the store; they may never be posted");
                return;
            }
        };
        let records: Vec<_> = records
            .into_iter()
            .filter(|r| connection.is_none_or(|c| r.context.connection == c))
            .filter(|r| self.ledger.get(&r.request_id).is_none())
            .collect();
        let count = records.len();
        let (given_up, forgotten) = self.ledger.restore(records, Utc::now());
        for expired in given_up {
            self.given_up(expired);
        }
        let removed = self.store.remove(&forgotten);
        self.stored("forget delivered results", removed);
        if count > 0 {
            tracing::info!(
                owed = self.ledger.pending(),
                connection = connection.unwrap_or("*"),
                "results owed before will be looked up in StackStorm"
            );
        }
    }

    /// Marks a result delivered in the store: it is not owed after a restart.
    fn mark_delivered(&mut self, request_id: &str) {
        let stored = self.store.set_delivered(request_id, Some(Utc::now()));
        self.stored("mark a result delivered", stored);
    }

    /// Hands a message to its chat connection. `owed`: it is a command's result, which the
    /// store keeps owing until the connection says the platform has it.
    fn send(&mut self, d: Delivery, owed: bool) {
        if self.halted {
            return;
        }
        // A result carries a receipt whatever the store: besides the store's record, it
        // gives each part the key that lets a platform post it once (an idempotency key, a
        // key to look for before posting again) and asks the platform to confirm it.
        let owed_id = d.request_id.clone().filter(|_| owed);
        if d.text.trim().is_empty() {
            if let Some(id) = owed_id {
                self.mark_delivered(&id);
            }
            return;
        }
        if let Some(early) = self.early.as_mut() {
            if !self.connections.contains_key(&d.connection) {
                early.push((d, owed));
                return;
            }
        }
        match self.connections.get(&d.connection) {
            Some(recipient) => {
                self.metrics.announcement_delivered();
                let mention = d
                    .addressee
                    .as_ref()
                    .filter(|_| self.mention_user)
                    .and_then(|who| self.mentions.get(&d.connection).and_then(|m| m(who)));
                let (mut text, mut layout) = (d.text, d.layout);
                if let Some(m) = &mention {
                    text = mention::addressed(m, &text);
                    if let Some(layout) = layout.as_mut() {
                        layout.pretext =
                            mention::addressed(m, &layout.pretext).trim_end().to_owned();
                    }
                }
                let receipt = owed_id.map(|id| Receipt {
                    inherited: self.ledger.inherited(&id),
                    // A store that keeps nothing has nothing to record.
                    to: self.me.clone().filter(|_| self.store.is_persistent()),
                    id,
                });
                recipient.do_send(Deliver {
                    target: d.target,
                    text,
                    extra: d.extra,
                    reply_to: d.reply_to,
                    layout,
                    receipt,
                });
            }
            None => {
                self.metrics.announcement_dropped();
                tracing::warn!(connection = %d.connection, "no such chat connection; message dropped");
                // Owing it after a restart would only drop it again.
                if let Some(id) = owed_id {
                    self.mark_delivered(&id);
                }
            }
        }
    }

    /// Delivers a command's result that the ledger has just marked delivered (in memory:
    /// the store follows when the connection has posted it).
    fn deliver_result(&mut self, d: Delivery, source: ResultSource) {
        self.metrics.result_delivered(source);
        self.send(d, true);
    }

    /// A message to the room and thread a command came from.
    fn to_origin(&self, context: &SourceContext, text: String) -> Option<Delivery> {
        let a = Announcement {
            route: String::new(),
            message: text,
            channel: Some(context.room.clone()),
            user: Some(context.user_id.clone()),
            whisper: false,
            context: Some(context.clone()),
            foreign_context: false,
            extra: None,
        };
        // The bridge's own words: plain text, not laid out as a StackStorm result.
        announcement::route(&a, &self.connection_order)
            .ok()
            .map(|d| Delivery { layout: None, ..d })
    }

    /// Tells the user a result will not come, and why; logs it.
    fn given_up(&mut self, expired: Expired) {
        let Expired { record, reason } = expired;
        self.metrics.result_expired(reason.label());
        let ttl_hours = self.ledger.settings().pending_ttl.as_secs().div_ceil(3600);
        let why = match reason {
            ExpiryReason::Ttl => format!("no result came within {ttl_hours} h"),
            ExpiryReason::Overflow => {
                "too many commands were awaiting their results at once".to_owned()
            }
            ExpiryReason::Gone => "StackStorm no longer has the execution".to_owned(),
            ExpiryReason::UnknownOutcome => {
                "I was restarted while sending it to StackStorm".to_owned()
            }
        };
        tracing::warn!(
            request_id = %record.request_id,
            execution_id = record.execution_id.as_deref().unwrap_or("-"),
            alias = %record.alias_ref,
            reason = reason.label(),
            "giving up on a command's result: {why}"
        );
        let removed = self.store.remove(std::slice::from_ref(&record.request_id));
        self.stored("forget a result", removed);
        let text = self.templates.render(
            "result_lost",
            &json!({
                "alias": record.alias_ref,
                "execution_id": record.execution_id,
                "reason": why,
                "unknown_outcome": reason == ExpiryReason::UnknownOutcome,
            }),
        );
        if let Some(d) = self.to_origin(&record.context, text) {
            self.send(d, false);
        }
    }

    /// Sets the timer for the ledger's next due time (none when nothing is owed).
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let next = self.ledger.next_wakeup();
        match (next, &self.wake) {
            (None, None) => {}
            (Some(t), Some((at, _))) if *at <= t => {}
            _ => {
                if let Some((_, handle)) = self.wake.take() {
                    ctx.cancel_future(handle);
                }
                if let Some(t) = next {
                    let wait = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    let handle = ctx.run_later(wait, |act, ctx| {
                        act.wake = None;
                        act.tick(ctx);
                    });
                    self.wake = Some((t, handle));
                }
            }
        }
    }

    /// Expiries, then due checks, then the next timer.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let (given_up, forgotten) = self.ledger.expire(Utc::now());
        for expired in given_up {
            self.given_up(expired);
        }
        let removed = self.store.remove(&forgotten);
        self.stored("forget delivered results", removed);
        self.run_checks(ctx);
        self.report();
        self.schedule(ctx);
    }

    /// Looks up every execution due for a check (a few at a time).
    fn run_checks(&mut self, ctx: &mut Context<Self>) {
        if self.halted {
            return;
        }
        let room = MAX_CHECKS_IN_FLIGHT.saturating_sub(self.ledger.checks_in_flight());
        if room == 0 {
            return;
        }
        for (request_id, execution_id) in self.ledger.due_checks(Utc::now(), room) {
            let client = self.client.get();
            let renewer = self.renewer.clone();
            let sessions = self.sessions.clone();
            let user = self
                .ledger
                .get(&request_id)
                .map(|r| UserKey::new(&r.context.connection, &r.context.user_id));
            let fut = async move {
                fetch_execution(&client, &renewer, sessions, user, &execution_id).await
            };
            ctx.spawn(fut.into_actor(self).map(move |found, act, ctx| {
                act.checked(&request_id, found, ctx);
            }));
        }
    }

    fn checked(
        &mut self,
        request_id: &str,
        found: Result<Value, LookupError>,
        ctx: &mut Context<Self>,
    ) {
        let now = Utc::now();
        let (outcome, execution) = match found {
            Ok(execution) => {
                let state = ExecutionState::of(&execution);
                if COMPLETED.contains(&state.status()) {
                    let execution_id = self
                        .ledger
                        .get(request_id)
                        .and_then(|r| r.execution_id.clone())
                        .unwrap_or_default();
                    let ended = ExecutionEnded::of(&execution_id, &state);
                    let ended_at = ended.ended_at;
                    if let Some(jobs) = self.jobs.as_ref().filter(|_| !execution_id.is_empty()) {
                        jobs.do_send(ended);
                    }
                    let ended = ended_at;
                    (CheckOutcome::Finished { ended }, Some(execution))
                } else {
                    (CheckOutcome::Running, None)
                }
            }
            Err(LookupError::Gone) => (CheckOutcome::Gone, None),
            Err(e) => {
                tracing::debug!(request_id, error = %e, "could not look up an execution; trying again later");
                (CheckOutcome::Failed, None)
            }
        };
        match self.ledger.checked(request_id, outcome, now) {
            CheckVerdict::Deliver => {
                if let (Some(record), Some(execution)) =
                    (self.ledger.get(request_id).cloned(), execution)
                {
                    self.deliver_rendered(&record, &execution);
                }
            }
            CheckVerdict::Expired(expired) => self.given_up(*expired),
            CheckVerdict::Wait | CheckVerdict::Stale => {}
        }
        self.run_checks(ctx);
        self.report();
        self.schedule(ctx);
    }

    /// Renders a finished execution's result as the chatops pack would and posts it.
    fn deliver_rendered(&mut self, record: &PendingResult, execution: &Value) {
        let index = self.aliases.load();
        let alias_id = execution
            .pointer("/context/action_alias_ref/id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| record.alias_id.clone());
        let alias = index
            .aliases()
            .iter()
            .find(|a| alias_id.is_some() && a.id == alias_id)
            .or_else(|| {
                index
                    .aliases()
                    .iter()
                    .find(|a| a.reference == record.alias_ref)
            })
            .and_then(|a| serde_json::to_value(&**a).ok());
        let (message, extra) = match self.formatter.format(execution, alias.as_ref()) {
            Ok(m) if !m.enabled => {
                tracing::debug!(request_id = %record.request_id, "the alias's results are disabled; nothing posted");
                self.mark_delivered(&record.request_id);
                return;
            }
            Ok(m) => (m.message, m.extra),
            Err(e) => {
                tracing::warn!(alias = %record.alias_ref, error = %e, "the alias's result format cannot be rendered here; posting StackStorm's default result text instead");
                (self.formatter.default_message(execution), None)
            }
        };
        let a = Announcement {
            route: String::new(),
            message,
            channel: Some(record.context.room.clone()),
            user: Some(record.context.user_id.clone()),
            whisper: false,
            context: Some(record.context.clone()),
            foreign_context: false,
            extra: extra.filter(|x| !x.is_null() && x != &json!({})),
        };
        match announcement::route(&a, &self.connection_order) {
            Ok(d) => {
                tracing::info!(
                    request_id = %record.request_id,
                    execution_id = record.execution_id.as_deref().unwrap_or("-"),
                    "result delivered from StackStorm's API (its announcement was missed or late)"
                );
                let d = self.reworded(d, &record.alias_ref, &ExecutionState::of(execution));
                self.deliver_result(d, ResultSource::Reconciliation);
            }
            Err(e) => {
                self.metrics.announcement_dropped();
                tracing::warn!(error = %e, "a result could not be routed");
            }
        }
    }

    /// Releases announcements held for `request_id` now that its acknowledgement is out.
    fn release(&mut self, request_id: &str, ctx: &mut Context<Self>) {
        for d in self.held.remove(request_id).unwrap_or_default() {
            if self.ledger.delivered_held(request_id, Utc::now()) {
                self.deliver_announced(request_id, d, ctx);
            } else {
                self.metrics.result_duplicate();
            }
        }
    }

    /// Whether `[replies]` rewords StackStorm's results (then a result waits for its
    /// execution's status before it is posted).
    fn rewords_results(&self) -> bool {
        self.replies.rewords(Outcome::Success) || self.replies.rewords(Outcome::Failure)
    }

    /// Posts an announced result, and looks its execution up once (announcements carry no
    /// status or times) for the job keeper, and for `[replies]` when it rewords results:
    /// then the result waits for the look-up (posted as announced if it fails).
    fn deliver_announced(&mut self, request_id: &str, d: Delivery, ctx: &mut Context<Self>) {
        let record = self.ledger.get(request_id).cloned();
        let Some((record, execution_id)) =
            record.and_then(|r| r.execution_id.clone().map(|e| (r, e)))
        else {
            return self.deliver_result(d, ResultSource::Stream);
        };
        let waiting = if self.rewords_results() {
            Some(d)
        } else {
            self.deliver_result(d, ResultSource::Stream);
            if self.jobs.is_none() {
                return;
            }
            None
        };
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let sessions = self.sessions.clone();
        let user = UserKey::new(&record.context.connection, &record.context.user_id);
        let fut = async move {
            fetch_execution_state(&client, &renewer, sessions, Some(user), &execution_id)
                .await
                .map(|execution| (execution_id, execution))
        };
        ctx.spawn(fut.into_actor(self).map(move |found, act, _ctx| {
            let execution = match found {
                Ok((execution_id, execution)) => {
                    if let Some(jobs) = &act.jobs {
                        jobs.do_send(ExecutionEnded::of(&execution_id, &execution));
                    }
                    Some(execution)
                }
                Err(e) => {
                    tracing::debug!(request_id = %record.request_id, error = %e, "could not look up a delivered result's execution; its job is looked up when shown");
                    None
                }
            };
            if let Some(d) = waiting {
                let d = match &execution {
                    Some(execution) => act.reworded(d, &record.alias_ref, execution),
                    None => d,
                };
                act.deliver_result(d, ResultSource::Stream);
            }
        }));
    }

    /// A result in the team's words when `[replies] success`/`failure` (by the execution's
    /// status) says so: `{{default}}` is StackStorm's text; `off` posts nothing (the
    /// result still counts as delivered).
    fn reworded(&self, d: Delivery, alias_ref: &str, execution: &ExecutionState) -> Delivery {
        let status = execution.status();
        let succeeded = status == "succeeded";
        let outcome = if succeeded {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        if !self.replies.rewords(outcome) {
            return d;
        }
        let ended = ExecutionEnded::of("", execution);
        let took = ended
            .started_at
            .zip(ended.ended_at)
            .map(|(from, to)| crate::commands::jobs::duration(from, to));
        let data = json!({
            "message": d.text,
            "status": status,
            "succeeded": succeeded,
            "alias": alias_ref,
            "execution_id": execution.id,
            "took": took,
            "url": ended.web_url,
        });
        match self.replies.styled(outcome, d.text.clone(), &data) {
            Some(styled) => Delivery {
                text: styled.text,
                layout: styled.layout,
                extra: styled.extra,
                ..d
            },
            // An empty text is not posted, and marked delivered.
            None => Delivery {
                text: String::new(),
                ..d
            },
        }
    }
}

/// Why an execution could not be looked up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupError {
    /// StackStorm has no such execution (404).
    #[error("StackStorm has no such execution")]
    Gone,
    /// Anything else; the look-up is tried again later.
    #[error("{0}")]
    Failed(String),
}

/// `GET /api/v1/executions/{id}`, whole: its result is to be rendered.
pub(crate) async fn fetch_execution(
    client: &crate::st2::St2Client,
    renewer: &Addr<TokenRenewer>,
    sessions: Option<Addr<SessionManager>>,
    user: Option<UserKey>,
    id: &str,
) -> Result<Value, LookupError> {
    fetch_as(renewer, sessions, user, |credential| async move {
        client.get_execution(&credential, id).await
    })
    .await
}

/// How execution `id` stands (status, times, link), without its result.
pub(crate) async fn fetch_execution_state(
    client: &crate::st2::St2Client,
    renewer: &Addr<TokenRenewer>,
    sessions: Option<Addr<SessionManager>>,
    user: Option<UserKey>,
    id: &str,
) -> Result<ExecutionState, LookupError> {
    fetch_as(renewer, sessions, user, |credential| async move {
        client.get_execution_state(&credential, id).await
    })
    .await
}

/// An execution look-up (`get`) with the bridge's credential; when RBAC lets only its owner
/// see a user's execution (403), as that user (client-side mode).
async fn fetch_as<T, F, Fut>(
    renewer: &Addr<TokenRenewer>,
    sessions: Option<Addr<SessionManager>>,
    user: Option<UserKey>,
    get: F,
) -> Result<T, LookupError>
where
    F: Fn(crate::st2::Credential) -> Fut,
    Fut: std::future::Future<Output = Result<T, St2Error>>,
{
    let by_bridge = with_bridge_credential(renewer, &get)
        .await
        .map(|(execution, _)| execution);
    let error = match by_bridge {
        Ok(execution) => return Ok(execution),
        Err(BridgeCallError::St2(e)) => e,
        Err(e) => return Err(LookupError::Failed(e.to_string())),
    };
    let error = match (error, sessions, user) {
        (St2Error::Api { status: 403, .. }, Some(sessions), Some(user)) => {
            match sessions.send(UserCredential(user)).await {
                Ok(Ok(credential)) => match get(credential).await {
                    Ok(execution) => return Ok(execution),
                    Err(e) => e,
                },
                _ => {
                    return Err(LookupError::Failed(
                        "StackStorm refused the bridge, and the user has no session".into(),
                    ))
                }
            }
        }
        (e, _, _) => e,
    };
    match error {
        St2Error::Api { status: 404, .. } => Err(LookupError::Gone),
        e => Err(LookupError::Failed(e.to_string())),
    }
}

impl Actor for ResultTracker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.me = Some(ctx.address().recipient());
        // With leased connections, what is owed is loaded connection by connection as
        // this process takes them over.
        if self.held_connections.is_none() {
            self.restore(None);
        }
        self.status.state(ActorState::Up, None);
        self.report();
        self.schedule(ctx);
    }
}

impl Supervised for ResultTracker {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.wake = None;
        self.status.restarted(None);
    }
}

impl Handler<Halt> for ResultTracker {
    type Result = ();

    fn handle(&mut self, _msg: Halt, ctx: &mut Self::Context) {
        self.halted = true;
        if let Some((_, handle)) = self.wake.take() {
            ctx.cancel_future(handle);
        }
    }
}

impl Handler<RegisterConnection> for ResultTracker {
    type Result = ();

    fn handle(&mut self, msg: RegisterConnection, _ctx: &mut Self::Context) {
        self.mentions.insert(msg.name.clone(), msg.mention);
        self.connections.insert(msg.name, msg.recipient);
    }
}

impl Handler<UseSessions> for ResultTracker {
    type Result = ();

    fn handle(&mut self, msg: UseSessions, _ctx: &mut Self::Context) {
        self.sessions = Some(msg.0);
    }
}

impl Handler<ConnectionsRegistered> for ResultTracker {
    type Result = ();

    fn handle(&mut self, _msg: ConnectionsRegistered, _ctx: &mut Self::Context) {
        for (d, owed) in self.early.take().unwrap_or_default() {
            self.send(d, owed);
        }
    }
}

impl Handler<TrackCommand> for ResultTracker {
    type Result = ();

    fn handle(&mut self, TrackCommand(record): TrackCommand, ctx: &mut Self::Context) {
        let stored = self.store.insert(&record);
        self.stored("remember a command", stored);
        for expired in self.ledger.start(record) {
            self.given_up(expired);
        }
        self.report();
        self.schedule(ctx);
    }
}

impl Handler<RecordExecution> for ResultTracker {
    type Result = ();

    fn handle(&mut self, msg: RecordExecution, _ctx: &mut Self::Context) {
        let stored = self.store.set_execution(&msg.request_id, &msg.execution_id);
        self.stored("record an execution id", stored);
    }
}

impl Handler<CommandAccepted> for ResultTracker {
    type Result = ();

    fn handle(&mut self, msg: CommandAccepted, ctx: &mut Self::Context) {
        // The store has the execution id already ([`RecordExecution`]).
        self.ledger
            .accept(&msg.request_id, &msg.execution_id, Utc::now());
        self.release(&msg.request_id, ctx);
        self.run_checks(ctx);
        self.report();
        self.schedule(ctx);
    }
}

impl Handler<CommandRefused> for ResultTracker {
    type Result = ();

    fn handle(&mut self, msg: CommandRefused, ctx: &mut Self::Context) {
        if self.ledger.refuse(&msg.request_id).is_some() {
            let removed = self.store.remove(std::slice::from_ref(&msg.request_id));
            self.stored("forget a refused command", removed);
        }
        // Nothing should be held for a refused command; if StackStorm announced anyway,
        // say it rather than lose it.
        for d in self.held.remove(&msg.request_id).unwrap_or_default() {
            self.send(d, false);
        }
        self.report();
        self.schedule(ctx);
    }
}

impl Handler<AnnouncementReceived> for ResultTracker {
    type Result = ();

    fn handle(&mut self, AnnouncementReceived(a): AnnouncementReceived, ctx: &mut Self::Context) {
        self.status.activity();
        if a.foreign_context {
            self.metrics.announcement_ignored("other_bot");
            tracing::debug!(route = %a.route, "announcement answers another bot's command; left to it");
            return;
        }
        let delivery = match announcement::route(&a, &self.connection_order) {
            Ok(d) => d,
            Err(e) => {
                self.metrics.announcement_dropped();
                tracing::warn!(route = %a.route, error = %e, "announcement could not be delivered");
                return;
            }
        };
        if !self.runs(&delivery.connection) {
            // Another bridge process runs that connection and posts it.
            self.metrics.announcement_ignored("not_held");
            return;
        }
        let Some(request_id) = a.context.as_ref().map(|c| c.request_id.clone()) else {
            // Not a command's result (a workflow's chatops.post_message): post it as it is.
            self.send(delivery, false);
            return;
        };
        match self.ledger.claim(&request_id, Utc::now()) {
            Claim::Deliver => self.deliver_announced(&request_id, delivery, ctx),
            Claim::Unknown => self.deliver_result(delivery, ResultSource::Stream),
            Claim::Hold => self.held.entry(request_id).or_default().push(delivery),
            Claim::Duplicate => {
                self.metrics.result_duplicate();
                tracing::debug!(request_id = %request_id, "a result already posted arrived again; dropped");
            }
        }
        self.report();
        self.schedule(ctx);
    }
}

impl Handler<ConnectionLease> for ResultTracker {
    type Result = ();

    fn handle(&mut self, msg: ConnectionLease, ctx: &mut Self::Context) {
        let Some(held) = self.held_connections.as_mut() else {
            return;
        };
        if msg.held {
            held.insert(msg.connection.clone());
            self.restore(Some(&msg.connection));
            // Whatever finished while nobody ran the connection is looked up now.
            self.ledger.gap(Utc::now());
            self.run_checks(ctx);
        } else {
            held.remove(&msg.connection);
            let forgotten = self.ledger.forget_connection(&msg.connection);
            tracing::info!(connection = %msg.connection, forgotten, "the results owed to a connection another bridge process runs now are its to post");
        }
        self.report();
        self.schedule(ctx);
    }
}

impl Handler<Posted> for ResultTracker {
    type Result = ();

    fn handle(&mut self, Posted(request_id): Posted, _ctx: &mut Self::Context) {
        self.mark_delivered(&request_id);
    }
}

impl Handler<StreamLost> for ResultTracker {
    type Result = ();

    fn handle(&mut self, _msg: StreamLost, ctx: &mut Self::Context) {
        self.ledger.outage(Utc::now());
        self.schedule(ctx);
    }
}

impl Handler<StreamEstablished> for ResultTracker {
    type Result = ();

    fn handle(&mut self, _msg: StreamEstablished, ctx: &mut Self::Context) {
        // Announcements published while the stream was away are gone: ask StackStorm.
        self.ledger.gap(Utc::now());
        self.run_checks(ctx);
        self.report();
        self.schedule(ctx);
    }
}
