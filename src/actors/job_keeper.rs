//! Every command is a job: the job keeper records it, keeps its status, and answers the
//! job commands (`!st2jobs`, `!st2job`, `!st2last`, `!st2logs`, `!st2tail`, `!st2cancel`,
//! and the admins' `!st2audit`, `!st2auditjob`, `!st2auditlogs`).
//!
//! The dispatcher records a job ([`RecordJob`]) while its request goes to StackStorm, then
//! reports the execution ids ([`JobStarted`]) or the refusal ([`JobEnded`]); commands that
//! never reach StackStorm (no alias matches, the access rules refuse them, a held command
//! is denied, aborted or expires) are recorded finished ([`RecordJob`] with a finished
//! status). StackStorm's chatops announcement does not carry an execution's status or
//! times, so the result tracker looks the execution up once its result is posted (one
//! `GET /api/v1/executions/{id}` per result, off the chat path) and reports it here
//! ([`ExecutionEnded`]: status, StackStorm's `start_timestamp`/`end_timestamp`, its
//! `web_url`), one store write per result. "Took" is StackStorm's end minus its start,
//! not when the bridge happened to learn it. Jobs whose result never came (the stream
//! and the tracker both missed it) are looked up when someone looks: before a list or a
//! job is shown, its unfinished executions are looked up (a few at a time). After a
//! restart the unfinished jobs are looked up once ([`Actor::started`]), so none stays
//! "running" forever.
//!
//! Privacy: `!st2job`, `!st2logs`, `!st2tail` show the asker's own jobs only; `!st2cancel`
//! an admin's too; the audit commands (admins only, enforced by the access gate) anyone's.
//! Calls to StackStorm are made as the asker ([`super::as_sender`]), so StackStorm's RBAC
//! judges them too. Old finished jobs are purged as new ones are recorded (no timer).
//!
//! The actor runs on its own arbiter: store calls block (SQLite).

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use actix::prelude::*;
use chrono::Utc;
use futures_util::{stream, StreamExt};

use super::{
    as_sender::call_as_sender,
    dispatcher::UseSessions,
    messages::{Deliver, RegisterConnection},
    result_tracker::{fetch_execution_state, LookupError},
    session_manager::SessionManager,
    status::{ActorState, StatusReporter},
    token_renewer::TokenRenewer,
};
use crate::{
    commands::jobs as view,
    domain::announcement::Layout,
    domain::message::{Room, Target},
    local::{run, CancelHandle, Invocation, LocalOutcome, LocalStatus},
    render::{
        replies::{Outcome, Replies},
        Templates,
    },
    st2::{
        client::{LocalClient, St2ClientFactory},
        executions::CancelOutcome,
        models::ExecutionState,
    },
    store::{
        jobs::{ExecutionReport, JobKind, JobQuery, JobRecord, JobStatus, JobStore, NewJob},
        model::UserKey,
    },
};

/// Executions looked up at the same time.
const LOOKUPS_IN_FLIGHT: usize = 4;
/// A job's status looked up less often than this is looked up again when shown.
const REFRESH_AFTER: Duration = Duration::from_secs(2);
/// How often old jobs are purged (checked when a job is recorded).
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Most output a tail posts in one message (the rest follows in the next).
const TAIL_CHUNK: usize = 3_000;

/// What the job keeper needs from the configuration.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// st2web's base address for execution links.
    pub web_url: Option<String>,
    /// The command prefix (`!st2`), for hints in replies.
    pub prefix: String,
    /// Finished jobs older than this are purged.
    pub retention: Duration,
    /// How often `!st2tail` looks for new output.
    pub tail_interval: Duration,
    /// How long one `!st2tail` follows a job at most.
    pub tail_limit: Duration,
    /// `[replies]` (a local command's success and failure).
    pub replies: std::sync::Arc<Replies>,
    /// Masks secrets in a local command's output before it is kept (`[redact]`).
    pub mask: std::sync::Arc<crate::redact::SecretMask>,
}

/// Records a new job; answers its id (`None` if the store failed: the command still runs).
#[derive(Debug, Message)]
#[rtype(result = "Option<u64>")]
pub struct RecordJob(pub NewJob);

/// StackStorm accepted a job's command: its execution ids.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct JobStarted {
    /// The job.
    pub id: u64,
    /// One per execution (several for `match_multiple`).
    pub execution_ids: Vec<String>,
}

/// A job ended without StackStorm running it (refused), or a local command ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct JobEnded {
    /// The job.
    pub id: u64,
    /// How it ended.
    pub status: JobStatus,
}

/// The result tracker learnt how an execution ended from StackStorm's API (after posting
/// its result, whether the result came announced or was fetched).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ExecutionEnded {
    /// The execution.
    pub execution_id: String,
    /// StackStorm's status word (`succeeded`, `failed`, …).
    pub status: String,
    /// StackStorm's `start_timestamp`.
    pub started_at: Option<chrono::DateTime<Utc>>,
    /// StackStorm's `end_timestamp`.
    pub ended_at: Option<chrono::DateTime<Utc>>,
    /// StackStorm's `web_url` for the execution.
    pub web_url: Option<String>,
}

impl ExecutionEnded {
    /// What StackStorm says of execution `execution_id` ([`ExecutionState`]; the times in
    /// ISO 8601 UTC).
    pub fn of(execution_id: &str, execution: &ExecutionState) -> Self {
        let time = |text: &Option<String>| {
            text.as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Self {
            execution_id: execution_id.to_owned(),
            status: execution.status().to_owned(),
            started_at: time(&execution.start_timestamp),
            ended_at: time(&execution.end_timestamp),
            web_url: execution.web_url.clone(),
        }
    }

    /// The store's report, if the status is one StackStorm uses.
    fn report(&self) -> Option<ExecutionReport> {
        Some(ExecutionReport {
            status: job_status_of(&self.status)?,
            started_at: self.started_at,
            ended_at: self.ended_at,
            web_url: self.web_url.clone(),
        })
    }
}

/// The job commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobVerb {
    /// `!st2jobs`
    Jobs,
    /// `!st2job <id>`
    Job,
    /// `!st2last`
    Last,
    /// `!st2logs <id> [page]`
    Logs,
    /// `!st2tail [id]`
    Tail,
    /// `!st2cancel <id>`
    Cancel,
    /// `!st2audit`
    Audit,
    /// `!st2auditjob <id>`
    AuditJob,
    /// `!st2auditlogs <id> [page]`
    AuditLogs,
}

impl JobVerb {
    /// The verb for a built-in word, if it is a job command.
    pub fn from_builtin(verb: &str) -> Option<Self> {
        Some(match verb {
            "jobs" => Self::Jobs,
            "job" => Self::Job,
            "last" => Self::Last,
            "logs" => Self::Logs,
            "tail" => Self::Tail,
            "cancel" => Self::Cancel,
            "audit" => Self::Audit,
            "auditjob" => Self::AuditJob,
            "auditlogs" => Self::AuditLogs,
            _ => return None,
        })
    }

    fn is_audit(self) -> bool {
        matches!(self, Self::Audit | Self::AuditJob | Self::AuditLogs)
    }
}

/// Who asks, and where the answer goes.
#[derive(Debug, Clone)]
pub struct Asker {
    /// Their key (`<connection>:<id>`).
    pub user: UserKey,
    /// Where they asked.
    pub room: Room,
    /// The message asked with (threads the answer).
    pub reply_to: Option<String>,
    /// Whether the access rules make them an administrator.
    pub admin: bool,
}

/// A job command from chat (already allowed by the access gate).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct JobCommand {
    /// Which.
    pub verb: JobVerb,
    /// Its arguments.
    pub args: String,
    /// Who asks.
    pub asker: Asker,
}

/// Runs a local command as a job (already allowed by the access gate).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RunLocal {
    /// The job to record.
    pub job: NewJob,
    /// What to run.
    pub invocation: Invocation,
    /// Who asked, and where the answers go.
    pub asker: Asker,
}

/// A `!st2tail` in progress.
#[derive(Debug, Clone)]
struct Tail {
    job: u64,
    asker: Asker,
    /// Bytes of output already posted.
    posted: usize,
    until: Instant,
}

/// The job keeper actor.
pub struct JobKeeper {
    settings: JobSettings,
    store: JobStore,
    client: LocalClient,
    renewer: Addr<TokenRenewer>,
    sessions: Option<Addr<SessionManager>>,
    templates: std::sync::Arc<Templates>,
    connections: BTreeMap<String, Recipient<Deliver>>,
    status: StatusReporter,
    /// When each unfinished job's executions were last looked up.
    looked_up: HashMap<u64, Instant>,
    /// Jobs being tailed (one tail per job).
    tails: HashMap<u64, SpawnHandle>,
    /// Local commands running, by job: how to stop each.
    local_runs: HashMap<u64, CancelHandle>,
    last_purge: Option<Instant>,
}

impl JobKeeper {
    /// A keeper over `store`.
    pub fn new(
        settings: JobSettings,
        store: JobStore,
        st2: St2ClientFactory,
        renewer: Addr<TokenRenewer>,
        templates: std::sync::Arc<Templates>,
        status: StatusReporter,
    ) -> Self {
        Self {
            settings,
            store,
            client: LocalClient::new(st2),
            renewer,
            sessions: None,
            templates,
            connections: BTreeMap::new(),
            status,
            looked_up: HashMap::new(),
            tails: HashMap::new(),
            local_runs: HashMap::new(),
            last_purge: None,
        }
    }

    fn reply(&self, asker: &Asker, text: String) {
        self.send(asker, text, None, None);
    }

    fn send(
        &self,
        asker: &Asker,
        text: String,
        extra: Option<serde_json::Value>,
        layout: Option<Layout>,
    ) {
        if text.trim().is_empty() {
            return;
        }
        match self.connections.get(&asker.room.connection) {
            Some(recipient) => recipient.do_send(Deliver {
                target: Target::reply_to(&asker.room),
                text,
                extra,
                reply_to: asker.reply_to.clone(),
                layout,
                receipt: None,
            }),
            None => {
                tracing::warn!(connection = %asker.room.connection, "no such chat connection; message dropped")
            }
        }
    }

    fn notice(&self, asker: &Asker, kind: &str, id: Option<u64>, reason: &str) {
        self.reply(asker, view::notice(&self.templates, kind, id, reason));
    }

    /// A store failure, logged; the caller reads it as "nothing there".
    fn logged<T>(what: &str, result: Result<T, crate::store::StoreError>) -> Option<T> {
        result
            .map_err(|e| tracing::error!(error = %e, "job store: could not {what}"))
            .ok()
    }

    fn purge_now_and_then(&mut self) {
        if self.last_purge.is_some_and(|at| at.elapsed() < PURGE_EVERY) {
            return;
        }
        self.last_purge = Some(Instant::now());
        let Ok(retention) = chrono::TimeDelta::from_std(self.settings.retention) else {
            return;
        };
        if let Some(purged) =
            Self::logged("purge old jobs", self.store.purge(Utc::now() - retention))
        {
            if purged > 0 {
                tracing::info!(purged, "purged finished jobs older than the retention");
            }
        }
    }

    /// Looks up the unfinished executions of `jobs` that were not looked up just now, then
    /// runs `then` (with the store updated).
    fn refresh<F>(&mut self, jobs: &[JobRecord], ctx: &mut Context<Self>, then: F)
    where
        F: FnOnce(&mut Self, &mut Context<Self>) + 'static,
    {
        let now = Instant::now();
        let mut lookups = Vec::new();
        for job in jobs.iter().filter(|j| !j.status.is_finished()) {
            if self
                .looked_up
                .get(&job.id)
                .is_some_and(|at| now.duration_since(*at) < REFRESH_AFTER)
            {
                continue;
            }
            self.looked_up.insert(job.id, now);
            for execution in &job.execution_ids {
                lookups.push((job.user.clone(), execution.clone()));
            }
        }
        if lookups.is_empty() {
            return then(self, ctx);
        }
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let sessions = self.sessions.clone();
        let fut = async move {
            stream::iter(lookups)
                .map(|(user, execution)| {
                    let (client, renewer, sessions) = (&client, &renewer, sessions.clone());
                    async move {
                        let found = fetch_execution_state(
                            client,
                            renewer,
                            sessions,
                            Some(user),
                            &execution,
                        )
                        .await;
                        (execution, found)
                    }
                })
                .buffer_unordered(LOOKUPS_IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
        };
        ctx.spawn(fut.into_actor(self).map(move |found, act, ctx| {
            let now = Utc::now();
            for (execution, lookup) in found {
                let report = match lookup {
                    Ok(value) => ExecutionEnded::of(&execution, &value).report(),
                    Err(LookupError::Gone) => Some(ExecutionReport::status(JobStatus::Unknown)),
                    Err(e) => {
                        tracing::debug!(execution_id = %execution, error = %e, "could not look up a job's execution");
                        None
                    }
                };
                if let Some(report) = report {
                    Self::logged(
                        "update a job's status",
                        act.store.report_execution(&execution, &report, now),
                    );
                }
            }
            act.looked_up
                .retain(|_, at| at.elapsed() < REFRESH_AFTER * 30);
            then(act, ctx);
        }));
    }

    /// The job `id` if the asker may see it (`audit`: any job), else tells them it does
    /// not exist for them (the same words whether it exists or not).
    fn visible_job(&self, asker: &Asker, id: u64, audit: bool) -> Option<JobRecord> {
        let job = Self::logged("read a job", self.store.get(id)).flatten();
        match job {
            Some(job) if audit || view::owned_by(&job, &asker.user) => Some(job),
            _ => {
                self.notice(asker, "not_found", Some(id), "");
                None
            }
        }
    }

    fn handle_list(&mut self, asker: Asker, args: &str, audit: bool, ctx: &mut Context<Self>) {
        let parsed = match view::list_args(args, audit) {
            Ok(p) => p,
            Err(e) => return self.notice(&asker, "usage", None, &e.0),
        };
        let query = JobQuery {
            user: if audit {
                parsed
                    .user
                    .as_deref()
                    .map(|u| view::audit_user(u, &asker.room.connection))
            } else {
                Some(asker.user.clone())
            },
            status: parsed.status,
            limit: parsed.limit,
            before_id: None,
        };
        // Statuses first (the unfinished ones among the newest), then the list as asked:
        // `--status failed` must see the failures just learnt.
        let unfinished = JobQuery {
            status: None,
            ..query.clone()
        };
        let candidates =
            Self::logged("list jobs", self.store.list(&unfinished)).unwrap_or_default();
        self.refresh(&candidates, ctx, move |act, _ctx| {
            let jobs = Self::logged("list jobs", act.store.list(&query)).unwrap_or_default();
            let text = view::list(
                &act.templates,
                &jobs,
                audit,
                &parsed,
                act.settings.web_url.as_deref(),
                &act.settings.prefix,
            );
            act.reply(&asker, text);
        });
    }

    fn handle_detail(
        &mut self,
        asker: Asker,
        job: JobRecord,
        audit: bool,
        ctx: &mut Context<Self>,
    ) {
        let id = job.id;
        let shown = job.clone();
        self.refresh(std::slice::from_ref(&shown), ctx, move |act, _ctx| {
            let job = Self::logged("read a job", act.store.get(id))
                .flatten()
                .unwrap_or(job);
            let text = view::detail(
                &act.templates,
                &job,
                audit,
                act.settings.web_url.as_deref(),
                &act.settings.prefix,
            );
            act.reply(&asker, text);
        });
    }

    /// The job's output: its own (local commands) or StackStorm's, read as the asker.
    fn output_of(
        &mut self,
        job: &JobRecord,
        asker: &Asker,
    ) -> impl std::future::Future<Output = Result<String, String>> + 'static {
        let local = matches!(job.kind, JobKind::Local { .. }).then(|| job.output.clone());
        let executions = job.execution_ids.clone();
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let sessions = self.sessions.clone();
        let user = asker.user.clone();
        let prefix = self.settings.prefix.clone();
        async move {
            if let Some(output) = local {
                return Ok(output);
            }
            let many = executions.len() > 1;
            let mut all = String::new();
            for execution in &executions {
                let output = call_as_sender(&renewer, sessions.clone(), user.clone(), |c| {
                    let (client, execution) = (&client, execution.as_str());
                    async move { client.execution_output(&c, execution, None).await }
                })
                .await
                .map_err(|e| e.user_message(&prefix))?;
                if many {
                    all.push_str(&format!("— execution {execution} —\n"));
                }
                all.push_str(&output);
            }
            Ok(all)
        }
    }

    fn handle_logs(&mut self, asker: Asker, args: &str, audit: bool, ctx: &mut Context<Self>) {
        let parsed = match view::logs_args(args) {
            Ok(p) => p,
            Err(e) => return self.notice(&asker, "usage", None, &e.0),
        };
        let Some(job) = self.visible_job(&asker, parsed.id, audit) else {
            return;
        };
        let fut = self.output_of(&job, &asker);
        ctx.spawn(fut.into_actor(self).map(move |output, act, _ctx| {
            let text = match output {
                // Masked whole, before it is cut into pages.
                Ok(output) => view::logs(
                    &act.templates,
                    &job,
                    &act.settings.mask.text(&output),
                    parsed.page,
                    &act.settings.prefix,
                ),
                Err(reason) => view::notice(&act.templates, "failed", Some(job.id), &reason),
            };
            act.reply(&asker, text);
        }));
    }

    fn handle_cancel(&mut self, asker: Asker, args: &str, ctx: &mut Context<Self>) {
        let id = match view::single_id(args, false) {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(e) => return self.notice(&asker, "usage", None, &e.0),
        };
        // Own jobs; admins any.
        let Some(job) = self.visible_job(&asker, id, asker.admin) else {
            return;
        };
        let shown = job.clone();
        self.refresh(std::slice::from_ref(&shown), ctx, move |act, ctx| {
            let job = Self::logged("read a job", act.store.get(id))
                .flatten()
                .unwrap_or(job);
            if job.status.is_finished() {
                return act.notice(&asker, "already_finished", Some(id), job.status.as_str());
            }
            if let JobKind::Local { .. } = job.kind {
                return match act.local_runs.get(&id) {
                    Some(run) => {
                        run.cancel();
                        tracing::info!(job = id, user = %asker.user.0, "local command cancel requested");
                        act.notice(&asker, "cancel_local", Some(id), "")
                    }
                    None => act.notice(
                        &asker,
                        "cancel_refused",
                        Some(id),
                        "it is not running in this bridge (it was started before a restart)",
                    ),
                };
            }
            if job.execution_ids.is_empty() {
                return act.notice(
                    &asker,
                    "cancel_refused",
                    Some(id),
                    "StackStorm has not started it yet; try again in a moment",
                );
            }
            let client = act.client.get();
            let renewer = act.renewer.clone();
            let sessions = act.sessions.clone();
            let user = asker.user.clone();
            let prefix = act.settings.prefix.clone();
            let executions = job.execution_ids.clone();
            let fut = async move {
                let mut outcomes = Vec::new();
                for execution in &executions {
                    let outcome = call_as_sender(&renewer, sessions.clone(), user.clone(), |c| {
                        let (client, execution) = (&client, execution.as_str());
                        async move { client.cancel_execution(&c, execution).await }
                    })
                    .await
                    .map_err(|e| e.user_message(&prefix));
                    outcomes.push(outcome);
                }
                outcomes
            };
            ctx.spawn(fut.into_actor(act).map(move |outcomes, act, _ctx| {
                act.cancelled(&asker, id, outcomes);
            }));
        });
    }

    /// Tells the asker how a cancel went (all executions of the job together).
    fn cancelled(&mut self, asker: &Asker, id: u64, outcomes: Vec<Result<CancelOutcome, String>>) {
        let mut refusals = Vec::new();
        let mut asked = 0;
        for outcome in outcomes {
            match outcome {
                Ok(CancelOutcome::AlreadyCanceled) => {}
                Ok(CancelOutcome::Canceling { .. }) => asked += 1,
                Ok(CancelOutcome::Refused { reason }) => refusals.push(reason),
                Err(reason) => refusals.push(reason),
            }
        }
        // Its status is looked up again when next shown.
        self.looked_up.remove(&id);
        tracing::info!(job = id, user = %asker.user.0, refused = refusals.len(), "job cancel requested");
        if !refusals.is_empty() {
            self.notice(asker, "cancel_refused", Some(id), &refusals.join("; "));
        } else if asked > 0 {
            self.notice(asker, "cancel_sent", Some(id), "");
        } else {
            let now = Utc::now();
            Self::logged(
                "mark a job canceled",
                self.store.set_status(id, JobStatus::Canceled, now),
            );
            self.notice(asker, "cancel_done", Some(id), "");
        }
    }

    fn handle_tail(&mut self, asker: Asker, args: &str, ctx: &mut Context<Self>) {
        let id = match view::single_id(args, true) {
            Ok(id) => id,
            Err(e) => return self.notice(&asker, "usage", None, &e.0),
        };
        let job = match id {
            Some(id) => self.visible_job(&asker, id, false),
            None => {
                let last =
                    Self::logged("read the last job", self.store.last_for(&asker.user)).flatten();
                if last.is_none() {
                    self.notice(&asker, "no_job", None, "");
                }
                last
            }
        };
        let Some(job) = job else {
            return;
        };
        if let Some(handle) = self.tails.remove(&job.id) {
            // A new tail replaces the old one (perhaps asked for in another room).
            ctx.cancel_future(handle);
        }
        let limit_min = self.settings.tail_limit.as_secs().div_ceil(60);
        self.notice(
            &asker,
            "tail_started",
            Some(job.id),
            &format!("for up to {limit_min} min"),
        );
        let tail = Tail {
            job: job.id,
            asker,
            posted: 0,
            until: Instant::now() + self.settings.tail_limit,
        };
        self.tail_step(tail, ctx);
    }

    /// One look at a tailed job: post the new output, then stop or look again later.
    fn tail_step(&mut self, mut tail: Tail, ctx: &mut Context<Self>) {
        let Some(job) = Self::logged("read a job", self.store.get(tail.job)).flatten() else {
            self.tails.remove(&tail.job);
            return;
        };
        let job_id = job.id;
        self.looked_up.remove(&job_id);
        let shown = job.clone();
        self.refresh(std::slice::from_ref(&shown), ctx, move |act, ctx| {
            let job = Self::logged("read a job", act.store.get(job_id))
                .flatten()
                .unwrap_or(job);
            let fut = act.output_of(&job, &tail.asker);
            let handle = ctx.spawn(fut.into_actor(act).map(move |output, act, ctx| {
                let finished = job.status.is_finished();
                match output {
                    Ok(output) => {
                        // While it runs, only up to a cut no secret straddles: masked in
                        // two posts, each half of one would pass unrecognised.
                        let end = if finished {
                            output.len()
                        } else {
                            crate::redact::pieces::settled_len(&output)
                        };
                        let start = floor_char_boundary(&output, tail.posted);
                        if end > start {
                            let new = act.settings.mask.text(&output[start..end]);
                            for chunk in chunks(&new, TAIL_CHUNK) {
                                act.reply(&tail.asker, format!("```\n{}\n```", chunk.trim_end()));
                            }
                            tail.posted = end;
                        }
                    }
                    Err(reason) => {
                        act.tails.remove(&job_id);
                        return act.notice(&tail.asker, "failed", Some(job_id), &reason);
                    }
                }
                if finished {
                    act.tails.remove(&job_id);
                    return act.notice(
                        &tail.asker,
                        "tail_ended",
                        Some(job_id),
                        &format!("finished: {}", job.status),
                    );
                }
                if Instant::now() >= tail.until {
                    act.tails.remove(&job_id);
                    return act.notice(
                        &tail.asker,
                        "tail_ended",
                        Some(job_id),
                        "is still running; I stopped following it",
                    );
                }
                let handle = ctx.run_later(act.settings.tail_interval, move |act, ctx| {
                    act.tail_step(tail, ctx)
                });
                act.tails.insert(job_id, handle);
            }));
            act.tails.insert(job_id, handle);
        });
    }
}

/// The largest char boundary at or below `at` (the output may have changed under us).
fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `text` in pieces of at most `max` bytes, cut at line ends where possible.
fn chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.trim().is_empty() {
        if rest.len() <= max {
            out.push(rest);
            break;
        }
        let mut end = floor_char_boundary(rest, max);
        if let Some(nl) = rest[..end].rfind('\n') {
            if nl > 0 {
                end = nl + 1;
            }
        }
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
    out
}

/// A job status for StackStorm's execution status (`st2common/constants/action.py`):
/// `None` for a word StackStorm does not use (left as it was).
fn job_status_of(st2: &str) -> Option<JobStatus> {
    Some(match st2 {
        "succeeded" => JobStatus::Succeeded,
        "failed" | "abandoned" => JobStatus::Failed,
        "timeout" => JobStatus::TimedOut,
        "canceled" => JobStatus::Canceled,
        "requested" | "scheduled" | "delayed" | "running" | "pending" | "paused" | "pausing"
        | "resuming" | "canceling" => JobStatus::Running,
        _ => return None,
    })
}

impl Actor for JobKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.status.state(ActorState::Up, None);
        // Jobs left unfinished by the last run: those that never reached StackStorm end as
        // unknown; the others are looked up.
        let unfinished =
            Self::logged("read unfinished jobs", self.store.unfinished()).unwrap_or_default();
        let now = Utc::now();
        let mut started = Vec::new();
        for job in unfinished {
            if job.execution_ids.is_empty() {
                Self::logged(
                    "end a job that never started",
                    self.store.set_status(job.id, JobStatus::Unknown, now),
                );
            } else {
                started.push(job);
            }
        }
        if !started.is_empty() {
            tracing::info!(
                jobs = started.len(),
                "looking up the jobs left running by the last run"
            );
            // Looked up again when shown: these may still be running.
            self.refresh(&started, ctx, |act, _| act.looked_up.clear());
        }
    }
}

impl Supervised for JobKeeper {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.status.restarted(None);
    }
}

impl Handler<RecordJob> for JobKeeper {
    type Result = Option<u64>;

    fn handle(&mut self, RecordJob(job): RecordJob, _ctx: &mut Self::Context) -> Option<u64> {
        self.purge_now_and_then();
        Self::logged("record a job", self.store.record(job, Utc::now()))
    }
}

impl Handler<JobStarted> for JobKeeper {
    type Result = ();

    fn handle(&mut self, msg: JobStarted, _ctx: &mut Self::Context) {
        Self::logged(
            "record a job's executions",
            self.store
                .set_executions(msg.id, &msg.execution_ids, Utc::now()),
        );
    }
}

impl Handler<JobEnded> for JobKeeper {
    type Result = ();

    fn handle(&mut self, msg: JobEnded, _ctx: &mut Self::Context) {
        Self::logged(
            "end a job",
            self.store.set_status(msg.id, msg.status, Utc::now()),
        );
    }
}

impl Handler<ExecutionEnded> for JobKeeper {
    type Result = ();

    fn handle(&mut self, msg: ExecutionEnded, _ctx: &mut Self::Context) {
        if let Some(report) = msg.report() {
            Self::logged(
                "update a job's status",
                self.store
                    .report_execution(&msg.execution_id, &report, Utc::now()),
            );
        }
    }
}

impl Handler<JobCommand> for JobKeeper {
    type Result = ();

    fn handle(&mut self, msg: JobCommand, ctx: &mut Self::Context) {
        self.status.activity();
        let JobCommand { verb, args, asker } = msg;
        let audit = verb.is_audit();
        match verb {
            JobVerb::Jobs | JobVerb::Audit => self.handle_list(asker, &args, audit, ctx),
            JobVerb::Job | JobVerb::AuditJob => {
                let id = match view::single_id(&args, false) {
                    Ok(Some(id)) => id,
                    Ok(None) => return,
                    Err(e) => return self.notice(&asker, "usage", None, &e.0),
                };
                if let Some(job) = self.visible_job(&asker, id, audit) {
                    self.handle_detail(asker, job, audit, ctx);
                }
            }
            JobVerb::Last => {
                match Self::logged("read the last job", self.store.last_for(&asker.user)).flatten()
                {
                    Some(job) => self.handle_detail(asker, job, false, ctx),
                    None => self.notice(&asker, "no_job", None, ""),
                }
            }
            JobVerb::Logs | JobVerb::AuditLogs => self.handle_logs(asker, &args, audit, ctx),
            JobVerb::Tail => self.handle_tail(asker, &args, ctx),
            JobVerb::Cancel => self.handle_cancel(asker, &args, ctx),
        }
    }
}

impl JobKeeper {
    /// A local command ended: its status, and its result in the room.
    fn local_ended(
        &mut self,
        id: u64,
        command: &str,
        asker: &Asker,
        outcome: LocalOutcome,
        tail: &str,
    ) {
        self.local_runs.remove(&id);
        let (status, how) = match &outcome.status {
            LocalStatus::Exited(0) => (JobStatus::Succeeded, "succeeded".to_owned()),
            LocalStatus::Exited(code) => {
                (JobStatus::Failed, format!("failed with exit code {code}"))
            }
            LocalStatus::Signalled(signal) => {
                (JobStatus::Failed, format!("was ended by signal {signal}"))
            }
            LocalStatus::TimedOut => (
                JobStatus::TimedOut,
                "ran past its timeout and was stopped".to_owned(),
            ),
            LocalStatus::Canceled => (JobStatus::Canceled, "was canceled".to_owned()),
            LocalStatus::FailedToStart(why) => {
                (JobStatus::Failed, format!("could not start: {why}"))
            }
            LocalStatus::Unknown(why) => (
                JobStatus::Unknown,
                format!("ended in an unknown way: {why}"),
            ),
        };
        Self::logged(
            "end a local job",
            self.store.set_status(id, status, Utc::now()),
        );
        tracing::info!(
            job = id,
            command,
            status = status.as_str(),
            "local command ended"
        );
        let data = serde_json::json!({
            "id": id,
            "command": command,
            "outcome": how,
            "succeeded": status == JobStatus::Succeeded,
            "took": format!("{:.1} s", outcome.duration.as_secs_f64()),
            "output": tail.trim_end(),
            "truncated": outcome.output_truncated,
            "command_prefix": self.settings.prefix,
        });
        let default = self.templates.render("local_result", &data);
        let kind = if status == JobStatus::Succeeded {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        if let Some(styled) = self.settings.replies.styled(kind, default, &data) {
            self.send(asker, styled.text, styled.extra, styled.layout);
        }
    }
}

impl Handler<RunLocal> for JobKeeper {
    type Result = ();

    fn handle(&mut self, msg: RunLocal, ctx: &mut Self::Context) {
        let RunLocal {
            job,
            invocation,
            asker,
        } = msg;
        let command = match &job.kind {
            JobKind::Local { command } => command.clone(),
            _ => String::new(),
        };
        self.purge_now_and_then();
        let Some(id) = Self::logged("record a job", self.store.record(job, Utc::now())) else {
            return self.notice(
                &asker,
                "failed",
                None,
                "the job could not be recorded, so it did not run",
            );
        };
        let cancel = CancelHandle::new();
        self.local_runs.insert(id, cancel.clone());
        self.notice(&asker, "local_started", Some(id), &command);
        let (sender, mut output) =
            tokio::sync::mpsc::unbounded_channel::<crate::local::OutputChunk>();
        let store = self.store.clone();
        let mask = self.settings.mask.clone();
        let fut = async move {
            // Output goes into the job as it comes (`!st2logs`, `!st2tail` read it there);
            // the end of it is posted with the result. Jobs are not sealed, so secrets are
            // masked before they are kept (see `store::jobs`), chunk by chunk.
            // A pipe hands output over in arbitrary pieces: each is masked only up to a cut
            // no secret straddles (`redact::pieces`); the rest waits for the next piece.
            let collect = async move {
                let mut tail = String::new();
                let mut pending = String::new();
                let keep = |piece: &str, tail: &mut String| {
                    let text = mask.text(piece);
                    if let Err(e) = store.append_output(id, &text, Utc::now()) {
                        tracing::error!(error = %e, "job store: could not keep a local command's output");
                    }
                    tail.push_str(&text);
                    if tail.len() > 2 * TAIL_CHUNK {
                        let cut = floor_char_boundary(tail, tail.len() - TAIL_CHUNK);
                        tail.drain(..cut);
                    }
                };
                while let Some(chunk) = output.recv().await {
                    pending.push_str(&chunk.text);
                    let settled = crate::redact::pieces::settled_len(&pending);
                    if settled > 0 {
                        keep(&pending[..settled], &mut tail);
                        pending.drain(..settled);
                    }
                }
                if !pending.is_empty() {
                    keep(&pending, &mut tail);
                }
                tail
            };
            futures_util::future::join(run(invocation, sender, cancel), collect).await
        };
        ctx.spawn(fut.into_actor(self).map(move |(outcome, tail), act, _ctx| {
            let start = floor_char_boundary(&tail, tail.len().saturating_sub(TAIL_CHUNK));
            act.local_ended(id, &command, &asker, outcome, &tail[start..]);
        }));
    }
}

impl Handler<RegisterConnection> for JobKeeper {
    type Result = ();

    fn handle(&mut self, msg: RegisterConnection, _ctx: &mut Self::Context) {
        self.connections.insert(msg.name, msg.recipient);
    }
}

impl Handler<UseSessions> for JobKeeper {
    type Result = ();

    fn handle(&mut self, msg: UseSessions, _ctx: &mut Self::Context) {
        self.sessions = Some(msg.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stackstorms_statuses_map_to_job_statuses() {
        assert_eq!(job_status_of("succeeded"), Some(JobStatus::Succeeded));
        assert_eq!(job_status_of("abandoned"), Some(JobStatus::Failed));
        assert_eq!(job_status_of("timeout"), Some(JobStatus::TimedOut));
        assert_eq!(job_status_of("canceling"), Some(JobStatus::Running));
        assert_eq!(job_status_of("nonsense"), None);
    }

    #[test]
    fn tail_chunks_cover_the_text_and_respect_the_limit() {
        let text: String = (0..500).map(|i| format!("line {i} ü\n")).collect();
        let parts = chunks(&text, 100);
        assert!(parts.iter().all(|p| p.len() <= 100));
        assert_eq!(parts.concat(), text);
        assert!(chunks("  \n", 10).is_empty());
        assert_eq!(floor_char_boundary("ü", 1), 0);
        assert_eq!(floor_char_boundary("abc", 10), 3);
    }
}
