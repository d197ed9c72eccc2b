//! Jobs: every chat command the bridge handles, with what became of it.
//!
//! A job is recorded when a command arrives ([`JobStore::record`] hands out a short id:
//! 1, 2, 3…, what users type in `!st2job 42`), then follows the command: StackStorm's
//! execution ids ([`JobStore::set_executions`]), who confirmed or approved it, its
//! status as StackStorm reports it ([`JobStore::set_status_by_execution`]) and, for
//! commands the bridge runs itself, their output ([`JobStore::append_output`]). Users
//! list their own jobs, admins everyone's ([`JobStore::list`]); after a restart the
//! bridge reconciles what was still unfinished ([`JobStore::unfinished`]).
//!
//! # Rules both backends keep
//!
//! * Ids are assigned by the store, increase, and are never reused, not even after a
//!   purge or (SQLite) a restart.
//! * A finished job never becomes unfinished again ([`JobStatus::is_finished`]); it may
//!   move to another finished status (StackStorm reporting `succeeded` for a job the
//!   bridge had given up on as timed out), keeping its first `finished_at`.
//! * A job with several executions (`match_multiple` aliases) is running while any of
//!   them is, and then takes the worst of their statuses (see [`JobStatus`]).
//! * Output is capped at [`MAX_JOB_OUTPUT`] bytes: the newest output is kept.
//! * Only finished jobs are purged; a job still running is kept however old it is.
//!
//! Jobs are not sealed: the caller masks secrets in the command text and parameters
//! before recording them (the redactor), so a job holds nothing a chat room did not see.
//!
//! # Backends
//!
//! The memory backend keeps at most [`MEMORY_MAX_JOBS`] jobs; past that the oldest
//! finished job among the 64 oldest is dropped (the oldest job of all if none of those has
//! finished). The SQLite
//! backend keeps jobs until [`JobStore::purge`] removes them. Calls block (SQLite I/O);
//! run them off the async executor.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    error::StoreError, model::UserKey, place::Place, redis::RedisBackend, sqlite::SqliteBackend,
};
use crate::domain::message::RoomKind;

/// Most bytes of output kept per job (64 KiB). Longer output loses its beginning.
pub const MAX_JOB_OUTPUT: usize = 64 * 1024;

/// Starts a job's output once earlier output was dropped to stay within
/// [`MAX_JOB_OUTPUT`] (the marker counts toward the cap).
pub const OUTPUT_DROPPED_MARKER: &str = "[earlier output dropped]\n";

/// Most jobs one [`JobStore::list`] returns.
pub const MAX_JOB_LIST: usize = 100;

/// Jobs the memory backend keeps; past that the oldest finished one is dropped.
pub const MEMORY_MAX_JOBS: usize = 10_000;

/// How many of the oldest jobs the memory backend looks at for a finished one to drop.
const EVICTION_LOOKAHEAD: usize = 64;

/// Where a job is in its life.
///
/// For a job with several executions the finished statuses rank, worst first: failed,
/// refused, timedout, canceled, unknown, succeeded; the job takes the worst of its
/// executions' statuses once all of them have finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Recorded; not sent to StackStorm yet (or waiting for a confirmation or approval).
    Requested,
    /// StackStorm (or the bridge, for a local command) is running it.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Canceled by someone, or never confirmed (aborted, withdrawn, or expired waiting).
    Canceled,
    /// Took too long.
    TimedOut,
    /// Nothing ran: no alias matched it, the access rules or StackStorm refused it, or an
    /// approver denied it.
    Refused,
    /// Unfinished at a restart, and StackStorm no longer knows it.
    Unknown,
}

impl JobStatus {
    /// Every status, in the order of the enum.
    pub const ALL: [JobStatus; 8] = [
        Self::Requested,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Canceled,
        Self::TimedOut,
        Self::Refused,
        Self::Unknown,
    ];

    /// True once nothing more will happen to the job.
    pub fn is_finished(self) -> bool {
        !matches!(self, Self::Requested | Self::Running)
    }

    /// The lowercase word users type in `--status` and the stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::TimedOut => "timedout",
            Self::Refused => "refused",
            Self::Unknown => "unknown",
        }
    }

    /// Rank among finished statuses when executions are combined: higher is worse.
    fn severity(self) -> u8 {
        match self {
            Self::Requested | Self::Running | Self::Succeeded => 0,
            Self::Unknown => 1,
            Self::Canceled => 2,
            Self::TimedOut => 3,
            Self::Refused => 4,
            Self::Failed => 5,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a job status (see [`JobStatus`]'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown job status; use one of: requested, running, succeeded, failed, canceled, \
     timedout, refused, unknown"
)]
pub struct UnknownStatus;

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    /// [`JobStatus::as_str`]'s words in any case, plus the spellings people type anyway
    /// (`cancelled`, `timed-out`, `timed_out`, `timeout`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim().to_ascii_lowercase();
        match word.as_str() {
            "cancelled" => return Ok(Self::Canceled),
            "timed-out" | "timed_out" | "timeout" => return Ok(Self::TimedOut),
            _ => {}
        }
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == word)
            .ok_or(UnknownStatus)
    }
}

/// What a chat command asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// A StackStorm action alias.
    Alias {
        /// The alias's `pack.name`.
        alias_ref: String,
    },
    /// A command the bridge runs itself (its output is captured in the job).
    Local {
        /// The local command's name.
        command: String,
    },
    /// One of the bridge's own chat commands (`help`, `session_start`, …), recorded when
    /// the access rules refuse it (built-ins that run are not jobs: they would bury the
    /// commands that matter in the audit).
    Builtin {
        /// The built-in command's verb.
        command: String,
    },
}

impl JobKind {
    /// `("alias" | "local" | "builtin", alias ref or command)`, as stored.
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::Alias { alias_ref } => ("alias", alias_ref),
            Self::Local { command } => ("local", command),
            Self::Builtin { command } => ("builtin", command),
        }
    }

    fn from_parts(kind: &str, target: String) -> Option<Self> {
        match kind {
            "alias" => Some(Self::Alias { alias_ref: target }),
            "local" => Some(Self::Local { command: target }),
            "builtin" => Some(Self::Builtin { command: target }),
            _ => None,
        }
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Assigned by the store: 1, 2, 3…, never reused.
    pub id: u64,
    /// Who ran it (`<connection>:<user id>`).
    pub user: UserKey,
    /// Their display name when they ran it.
    pub user_name: String,
    /// The chat connection it came from.
    pub connection: String,
    /// The room it was typed in.
    pub room_id: String,
    /// The room's display name, when known.
    pub room_name: Option<String>,
    /// Direct message or group room.
    pub room_kind: RoomKind,
    /// The thread it was typed in, on platforms with threads.
    pub thread: Option<String>,
    /// The command text, masked by the caller.
    pub text: String,
    /// What the command asked for.
    pub kind: JobKind,
    /// The parameters it ran with, masked by the caller.
    pub parameters: Map<String, Value>,
    /// StackStorm's execution ids, one per alias match (several for `match_multiple`).
    pub execution_ids: Vec<String>,
    /// Where it stands.
    pub status: JobStatus,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When anything about it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it first reached a finished status.
    pub finished_at: Option<DateTime<Utc>>,
    /// Who confirmed or approved it (display text).
    pub decided_by: Option<String>,
    /// Output the bridge captured itself (local commands), at most [`MAX_JOB_OUTPUT`]
    /// bytes.
    pub output: String,
    /// When StackStorm started its first execution (`start_timestamp`), once reported.
    pub run_started_at: Option<DateTime<Utc>>,
    /// When StackStorm ended its last execution (`end_timestamp`), once reported. With
    /// `run_started_at` this is how long it ran, whenever the bridge happened to learn it.
    pub run_ended_at: Option<DateTime<Utc>>,
    /// StackStorm's own link to each execution (`web_url`), by execution id.
    pub web_urls: BTreeMap<String, String>,
}

/// What StackStorm says of one execution (`GET /api/v1/executions/{id}`, see st2's
/// `st2common/models/api/execution.py`): its status and, when it has them, its times and
/// its link in st2web.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionReport {
    /// Its status.
    pub status: JobStatus,
    /// `start_timestamp`.
    pub started_at: Option<DateTime<Utc>>,
    /// `end_timestamp` (finished executions only).
    pub ended_at: Option<DateTime<Utc>>,
    /// `web_url`.
    pub web_url: Option<String>,
}

impl ExecutionReport {
    /// A status alone.
    pub fn status(status: JobStatus) -> Self {
        Self {
            status,
            started_at: None,
            ended_at: None,
            web_url: None,
        }
    }
}

/// A job's StackStorm start, end and execution links.
type RunInfo = (
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    BTreeMap<String, String>,
);

/// A job's run times and links after `report` about `execution_id`: the earliest start,
/// the latest end, the link added. `None` when nothing changes.
fn merged_run(
    started: Option<DateTime<Utc>>,
    ended: Option<DateTime<Utc>>,
    urls: &BTreeMap<String, String>,
    execution_id: &str,
    report: &ExecutionReport,
) -> Option<RunInfo> {
    let new_started = match (started, report.started_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let new_ended = match (ended, report.ended_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let url_changed = report
        .web_url
        .as_ref()
        .is_some_and(|u| urls.get(execution_id) != Some(u));
    if new_started == started && new_ended == ended && !url_changed {
        return None;
    }
    let mut urls = urls.clone();
    if let Some(u) = &report.web_url {
        urls.insert(execution_id.to_owned(), u.clone());
    }
    Some((new_started, new_ended, urls))
}

impl JobRecord {
    /// Takes `report` about `execution_id` into the run times and links; whether anything
    /// changed.
    fn merge_run(&mut self, execution_id: &str, report: &ExecutionReport) -> bool {
        let Some((started, ended, urls)) = merged_run(
            self.run_started_at,
            self.run_ended_at,
            &self.web_urls,
            execution_id,
            report,
        ) else {
            return false;
        };
        (self.run_started_at, self.run_ended_at, self.web_urls) = (started, ended, urls);
        true
    }
}

/// A job to record: everything the caller knows when the command arrives. The store
/// adds the id, the times and (later) execution ids and output.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Who runs it.
    pub user: UserKey,
    /// Their display name.
    pub user_name: String,
    /// The chat connection it came from.
    pub connection: String,
    /// The room it was typed in.
    pub room_id: String,
    /// The room's display name, when known.
    pub room_name: Option<String>,
    /// Direct message or group room.
    pub room_kind: RoomKind,
    /// The thread it was typed in.
    pub thread: Option<String>,
    /// The command text, already masked.
    pub text: String,
    /// What the command asks for.
    pub kind: JobKind,
    /// Its parameters, already masked.
    pub parameters: Map<String, Value>,
    /// Usually [`JobStatus::Requested`]; [`JobStatus::Refused`] or [`JobStatus::Canceled`]
    /// for a command that ends without running (a finished status sets `finished_at` to the
    /// recording time).
    pub status: JobStatus,
    /// Who confirmed or approved it, if that happened before it was recorded.
    pub decided_by: Option<String>,
}

/// Which jobs [`JobStore::list`] returns: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Only this user's jobs; `None` lists everyone's (admins' audit).
    pub user: Option<UserKey>,
    /// Only jobs with this status.
    pub status: Option<JobStatus>,
    /// How many at most; clamped to `1..=`[`MAX_JOB_LIST`].
    pub limit: usize,
    /// Only jobs older than this id (the next page after a list ending at it).
    pub before_id: Option<u64>,
}

impl Default for JobQuery {
    /// Everyone's ten newest jobs.
    fn default() -> Self {
        Self {
            user: None,
            status: None,
            limit: 10,
            before_id: None,
        }
    }
}

/// Where jobs are kept; cheap to clone, clones share the same jobs.
#[derive(Clone)]
pub struct JobStore {
    backend: Backend,
}

type Backend = Place<memory::Jobs>;

impl fmt::Debug for JobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.backend.debug("JobStore", f)
    }
}

impl JobStore {
    /// A store in this process's memory (see the module docs for its bound).
    pub fn memory() -> Self {
        Self {
            backend: Place::memory(),
        }
    }

    pub(super) fn sqlite(db: Arc<SqliteBackend>) -> Self {
        Self {
            backend: Place::Sqlite(db),
        }
    }

    pub(super) fn redis(db: Arc<RedisBackend>) -> Self {
        Self {
            backend: Place::Redis(db),
        }
    }

    /// Whether jobs survive a restart.
    pub fn is_persistent(&self) -> bool {
        self.backend.is_persistent()
    }

    /// Records a new job at `now` and returns its id.
    pub fn record(&self, job: NewJob, now: DateTime<Utc>) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().record(job, now)),
            Backend::Sqlite(db) => sqlite::record(db, &job, now),
            Backend::Redis(db) => in_redis::record(db, job, now),
        }
    }

    /// The job with this id.
    pub fn get(&self, id: u64) -> Result<Option<JobRecord>, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().get(id)),
            Backend::Sqlite(db) => sqlite::get(db, id),
            Backend::Redis(db) => in_redis::get(db, id),
        }
    }

    /// The job a StackStorm execution belongs to.
    pub fn by_execution(&self, execution_id: &str) -> Result<Option<JobRecord>, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().by_execution(execution_id)),
            Backend::Sqlite(db) => sqlite::by_execution(db, execution_id),
            Backend::Redis(db) => in_redis::by_execution(db, execution_id),
        }
    }

    /// Sets a job's execution ids (replacing earlier ones; duplicates are dropped). An id
    /// it already had keeps its status; a new one starts as requested. Returns whether
    /// the job exists; an execution id that belongs to another job is refused
    /// ([`StoreError::InvalidInput`]) and nothing changes.
    pub fn set_executions(
        &self,
        id: u64,
        execution_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut unique: Vec<String> = Vec::with_capacity(execution_ids.len());
        for e in execution_ids {
            if !unique.contains(e) {
                unique.push(e.clone());
            }
        }
        match &self.backend {
            Backend::Memory(m) => m.lock().set_executions(id, unique, now),
            Backend::Sqlite(db) => sqlite::set_executions(db, id, &unique, now),
            Backend::Redis(db) => in_redis::set_executions(db, id, &unique, now),
        }
    }

    /// Sets a job's status. A finished job never goes back to an unfinished status;
    /// reaching a finished status sets `finished_at`. Returns whether the status changed.
    pub fn set_status(
        &self,
        id: u64,
        status: JobStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().set_status(id, status, now)),
            Backend::Sqlite(db) => sqlite::set_status(db, id, status, now),
            Backend::Redis(db) => in_redis::set_status(db, id, status, now),
        }
    }

    /// Records the status of one execution and gives its job the combined status of all
    /// its executions (running while any is unfinished, then the worst; see
    /// [`JobStatus`]), never moving a finished job or execution back to unfinished.
    /// Returns the job's id, or `None` if no job has this execution (yet: the caller
    /// records execution ids with [`JobStore::set_executions`] first).
    pub fn set_status_by_execution(
        &self,
        execution_id: &str,
        status: JobStatus,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        self.report_execution(execution_id, &ExecutionReport::status(status), now)
    }

    /// [`JobStore::set_status_by_execution`] with StackStorm's times and link as well, in
    /// one write: the job keeps the earliest start and the latest end of its executions
    /// ([`JobRecord::run_started_at`], [`JobRecord::run_ended_at`]) and each execution's
    /// link ([`JobRecord::web_urls`]).
    pub fn report_execution(
        &self,
        execution_id: &str,
        report: &ExecutionReport,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().report_execution(execution_id, report, now)),
            Backend::Sqlite(db) => sqlite::report_execution(db, execution_id, report, now),
            Backend::Redis(db) => in_redis::report_execution(db, execution_id, report, now),
        }
    }

    /// Records who confirmed or approved a job. Returns whether the job exists.
    pub fn set_decided_by(
        &self,
        id: u64,
        decided_by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().set_decided_by(id, decided_by, now)),
            Backend::Sqlite(db) => sqlite::set_decided_by(db, id, decided_by, now),
            Backend::Redis(db) => in_redis::set_decided_by(db, id, decided_by, now),
        }
    }

    /// Appends output to a job, keeping the last [`MAX_JOB_OUTPUT`] bytes (see
    /// [`OUTPUT_DROPPED_MARKER`]). Returns whether the job exists.
    pub fn append_output(
        &self,
        id: u64,
        more: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().append_output(id, more, now)),
            Backend::Sqlite(db) => sqlite::append_output(db, id, more, now),
            Backend::Redis(db) => in_redis::append_output(db, id, more, now),
        }
    }

    /// The jobs `query` selects, newest first.
    pub fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let limit = query.limit.clamp(1, MAX_JOB_LIST);
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().list(query, limit)),
            Backend::Sqlite(db) => sqlite::list(db, query, limit),
            Backend::Redis(db) => in_redis::list(db, query, limit),
        }
    }

    /// `user`'s newest job.
    pub fn last_for(&self, user: &UserKey) -> Result<Option<JobRecord>, StoreError> {
        let query = JobQuery {
            user: Some(user.clone()),
            limit: 1,
            ..JobQuery::default()
        };
        Ok(self.list(&query)?.into_iter().next())
    }

    /// Every job not finished yet, oldest first (to reconcile with StackStorm after a
    /// restart).
    pub fn unfinished(&self) -> Result<Vec<JobRecord>, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().unfinished()),
            Backend::Sqlite(db) => sqlite::unfinished(db),
            Backend::Redis(db) => in_redis::unfinished(db),
        }
    }

    /// Removes the jobs that finished before `older_than`; unfinished jobs stay. Returns
    /// how many were removed. Call it periodically; SQLite removes them in batches of a
    /// few hundred, so commands recording jobs meanwhile wait milliseconds, not seconds.
    pub fn purge(&self, older_than: DateTime<Utc>) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().purge(older_than)),
            Backend::Sqlite(db) => sqlite::purge(db, older_than),
            Backend::Redis(db) => in_redis::purge(db, older_than),
        }
    }

    /// How many jobs are kept.
    pub fn count(&self) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().count()),
            Backend::Sqlite(db) => sqlite::count(db),
            Backend::Redis(db) => in_redis::count(db),
        }
    }
}

/// The status a job or execution at `current` takes when `next` is reported, or `None`
/// if it stays: never from finished back to unfinished.
fn transition(current: JobStatus, next: JobStatus) -> Option<JobStatus> {
    let allowed = !current.is_finished() || next.is_finished();
    (allowed && current != next).then_some(next)
}

/// The status of a job whose executions are at `statuses`: running while any is
/// unfinished, then the worst of them; `None` without executions.
fn combined(statuses: impl IntoIterator<Item = JobStatus>) -> Option<JobStatus> {
    let mut worst: Option<JobStatus> = None;
    for status in statuses {
        if !status.is_finished() {
            return Some(JobStatus::Running);
        }
        if worst.is_none_or(|w| status.severity() > w.severity()) {
            worst = Some(status);
        }
    }
    worst
}

/// `finished_at` after a status change to `next`: kept once set, set to `now` when the
/// job first finishes.
fn finished_at_after(
    finished_at: Option<DateTime<Utc>>,
    next: JobStatus,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    next.is_finished().then(|| finished_at.unwrap_or(now))
}

/// `existing` followed by `more`, cut to the last [`MAX_JOB_OUTPUT`] bytes (on a char
/// boundary, after [`OUTPUT_DROPPED_MARKER`]) when longer.
fn capped_output(existing: &str, more: &str) -> String {
    if existing.len() + more.len() <= MAX_JOB_OUTPUT {
        return format!("{existing}{more}");
    }
    // An output that was cut before starts with the marker; it is not output.
    let existing = existing
        .strip_prefix(OUTPUT_DROPPED_MARKER)
        .unwrap_or(existing);
    let keep = MAX_JOB_OUTPUT - OUTPUT_DROPPED_MARKER.len();
    let mut out = String::with_capacity(MAX_JOB_OUTPUT);
    out.push_str(OUTPUT_DROPPED_MARKER);
    if more.len() >= keep {
        out.push_str(tail(more, keep));
    } else {
        out.push_str(tail(existing, keep - more.len()));
        out.push_str(more);
    }
    out
}

/// The longest suffix of `text` of at most `max` bytes that starts on a char boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `RoomKind` from its stored word.
pub(super) fn parse_room_kind(word: &str) -> Option<RoomKind> {
    match word {
        "direct" => Some(RoomKind::Direct),
        "group" => Some(RoomKind::Group),
        _ => None,
    }
}

/// The memory backend: a bounded map kept in this process.
mod memory {
    use super::*;

    #[derive(Default)]
    pub(super) struct Jobs {
        last_id: u64,
        jobs: BTreeMap<u64, JobRecord>,
        /// Execution id → (its job's id, its own status).
        executions: HashMap<String, (u64, JobStatus)>,
    }

    impl Jobs {
        pub(super) fn record(&mut self, job: NewJob, now: DateTime<Utc>) -> u64 {
            if self.jobs.len() >= MEMORY_MAX_JOBS {
                self.drop_oldest();
            }
            self.last_id += 1;
            let id = self.last_id;
            self.jobs.insert(
                id,
                JobRecord {
                    id,
                    user: job.user,
                    user_name: job.user_name,
                    connection: job.connection,
                    room_id: job.room_id,
                    room_name: job.room_name,
                    room_kind: job.room_kind,
                    thread: job.thread,
                    text: job.text,
                    kind: job.kind,
                    parameters: job.parameters,
                    execution_ids: Vec::new(),
                    status: job.status,
                    created_at: now,
                    updated_at: now,
                    finished_at: job.status.is_finished().then_some(now),
                    decided_by: job.decided_by,
                    output: String::new(),
                    run_started_at: None,
                    run_ended_at: None,
                    web_urls: BTreeMap::new(),
                },
            );
            id
        }

        /// Makes room: the oldest finished job goes, or the oldest of all.
        fn drop_oldest(&mut self) {
            // A bounded look (every command records a job): among the oldest few, the
            // first finished; else the oldest of all.
            let victim = self
                .jobs
                .values()
                .take(EVICTION_LOOKAHEAD)
                .find(|j| j.status.is_finished())
                .or_else(|| self.jobs.values().next())
                .map(|j| j.id);
            if let Some(id) = victim {
                self.remove(id);
            }
        }

        fn remove(&mut self, id: u64) {
            if let Some(job) = self.jobs.remove(&id) {
                for e in &job.execution_ids {
                    self.executions.remove(e);
                }
            }
        }

        pub(super) fn get(&self, id: u64) -> Option<JobRecord> {
            self.jobs.get(&id).cloned()
        }

        pub(super) fn by_execution(&self, execution_id: &str) -> Option<JobRecord> {
            let (id, _) = self.executions.get(execution_id)?;
            self.get(*id)
        }

        pub(super) fn set_executions(
            &mut self,
            id: u64,
            execution_ids: Vec<String>,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            if !self.jobs.contains_key(&id) {
                return Ok(false);
            }
            if execution_ids
                .iter()
                .any(|e| self.executions.get(e).is_some_and(|(job, _)| *job != id))
            {
                return Err(another_jobs_execution());
            }
            let Some(job) = self.jobs.get_mut(&id) else {
                return Ok(false);
            };
            for old in &job.execution_ids {
                if !execution_ids.contains(old) {
                    self.executions.remove(old);
                }
            }
            for new in &execution_ids {
                self.executions
                    .entry(new.clone())
                    .or_insert((id, JobStatus::Requested));
            }
            job.execution_ids = execution_ids;
            job.updated_at = now;
            Ok(true)
        }

        pub(super) fn set_status(
            &mut self,
            id: u64,
            status: JobStatus,
            now: DateTime<Utc>,
        ) -> bool {
            self.jobs
                .get_mut(&id)
                .is_some_and(|job| apply_status(job, status, now))
        }

        pub(super) fn report_execution(
            &mut self,
            execution_id: &str,
            report: &ExecutionReport,
            now: DateTime<Utc>,
        ) -> Option<u64> {
            let status = report.status;
            let (id, own) = self.executions.get_mut(execution_id)?;
            let id = *id;
            let mut changed = transition(*own, status).is_some();
            if changed {
                *own = status;
            }
            let job = self.jobs.get_mut(&id)?;
            changed |= job.merge_run(execution_id, report);
            let executions = &self.executions;
            let all = combined(
                job.execution_ids
                    .iter()
                    .filter_map(|e| executions.get(e).map(|(_, s)| *s)),
            );
            let job_changed = all.is_some_and(|all| apply_status(job, all, now));
            if changed && !job_changed {
                job.updated_at = now;
            }
            Some(id)
        }

        pub(super) fn set_decided_by(&mut self, id: u64, who: &str, now: DateTime<Utc>) -> bool {
            let Some(job) = self.jobs.get_mut(&id) else {
                return false;
            };
            job.decided_by = Some(who.to_owned());
            job.updated_at = now;
            true
        }

        pub(super) fn append_output(&mut self, id: u64, more: &str, now: DateTime<Utc>) -> bool {
            let Some(job) = self.jobs.get_mut(&id) else {
                return false;
            };
            job.output = capped_output(&job.output, more);
            job.updated_at = now;
            true
        }

        pub(super) fn list(&self, query: &JobQuery, limit: usize) -> Vec<JobRecord> {
            let end = query.before_id.unwrap_or(u64::MAX);
            self.jobs
                .range(..end)
                .rev()
                .map(|(_, job)| job)
                .filter(|job| query.user.as_ref().is_none_or(|u| job.user == *u))
                .filter(|job| query.status.is_none_or(|s| job.status == s))
                .take(limit)
                .cloned()
                .collect()
        }

        pub(super) fn unfinished(&self) -> Vec<JobRecord> {
            self.jobs
                .values()
                .filter(|j| !j.status.is_finished())
                .cloned()
                .collect()
        }

        pub(super) fn purge(&mut self, older_than: DateTime<Utc>) -> usize {
            let old: Vec<u64> = self
                .jobs
                .values()
                .filter(|j| j.finished_at.is_some_and(|at| at < older_than))
                .map(|j| j.id)
                .collect();
            for id in &old {
                self.remove(*id);
            }
            old.len()
        }

        pub(super) fn count(&self) -> usize {
            self.jobs.len()
        }
    }

    /// Moves `job` to `next` if the rules allow; returns whether it changed.
    fn apply_status(job: &mut JobRecord, next: JobStatus, now: DateTime<Utc>) -> bool {
        let Some(next) = transition(job.status, next) else {
            return false;
        };
        job.status = next;
        job.finished_at = finished_at_after(job.finished_at, next, now);
        job.updated_at = now;
        true
    }
}

fn another_jobs_execution() -> StoreError {
    StoreError::InvalidInput {
        what: "an execution id already belongs to another job",
    }
}

/// The SQLite backend: tables `jobs` and `job_executions` (see `store::sqlite`).
mod sqlite {
    use rusqlite::Transaction;
    use rusqlite::{params, params_from_iter, types::Value as SqlValue, OptionalExtension, Row};

    use super::super::sqlite::{from_ms, ms};
    use super::*;

    const JOB_COLUMNS: &str = "id, user_key, user_name, connection, room_id, room_name, \
         room_kind, thread, text, kind, target, parameters, execution_ids, status, created_at, \
         updated_at, finished_at, decided_by, output, run_started_at, run_ended_at, web_urls";

    pub(super) fn record(
        db: &SqliteBackend,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (kind, target) = job.kind.parts();
        let parameters =
            serde_json::to_string(&job.parameters).map_err(|e| StoreError::Corrupt {
                what: format!("job parameters: {e}"),
            })?;
        db.write(|tx| {
            tx.execute(
            "INSERT INTO jobs (user_key, user_name, connection, room_id, room_name, room_kind, \
             thread, text, kind, target, parameters, execution_ids, status, created_at, \
             updated_at, finished_at, decided_by, output) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, '[]', ?12, ?13, ?13, ?14, ?15, '')",
            params![
                job.user.as_str(),
                job.user_name,
                job.connection,
                job.room_id,
                job.room_name,
                job.room_kind.as_str(),
                job.thread,
                job.text,
                kind,
                target,
                parameters,
                job.status.as_str(),
                ms(now),
                job.status.is_finished().then_some(ms(now)),
                job.decided_by,
            ],
        )?;
            id_from_row(tx.last_insert_rowid())
        })
    }

    pub(super) fn get(db: &SqliteBackend, id: u64) -> Result<Option<JobRecord>, StoreError> {
        let conn = db.conn.lock();
        let raw = conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                params![row_id(id)?],
                RawJob::from_row,
            )
            .optional()?;
        raw.map(RawJob::into_record).transpose()
    }

    pub(super) fn by_execution(
        db: &SqliteBackend,
        execution_id: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let conn = db.conn.lock();
        let raw = conn
            .query_row(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE id = \
                     (SELECT job_id FROM job_executions WHERE execution_id = ?1)"
                ),
                params![execution_id],
                RawJob::from_row,
            )
            .optional()?;
        raw.map(RawJob::into_record).transpose()
    }

    pub(super) fn set_executions(
        db: &SqliteBackend,
        id: u64,
        execution_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let job_id = row_id(id)?;
        db.write(|tx| {
            let Some(JobState {
                execution_ids: old, ..
            }) = job_state(tx, job_id)?
            else {
                return Ok(false);
            };
            for e in execution_ids {
                let owner: Option<i64> = tx
                    .query_row(
                        "SELECT job_id FROM job_executions WHERE execution_id = ?1",
                        params![e],
                        |r| r.get(0),
                    )
                    .optional()?;
                if owner.is_some_and(|owner| owner != job_id) {
                    return Err(another_jobs_execution());
                }
            }
            for e in old.iter().filter(|e| !execution_ids.contains(e)) {
                tx.execute(
                    "DELETE FROM job_executions WHERE execution_id = ?1",
                    params![e],
                )?;
            }
            for e in execution_ids {
                tx.execute(
                    "INSERT OR IGNORE INTO job_executions (execution_id, job_id, status) \
                 VALUES (?1, ?2, 'requested')",
                    params![e, job_id],
                )?;
            }
            tx.execute(
                "UPDATE jobs SET execution_ids = ?2, updated_at = ?3 WHERE id = ?1",
                params![job_id, json_ids(execution_ids)?, ms(now)],
            )?;
            Ok(true)
        })
    }

    pub(super) fn set_status(
        db: &SqliteBackend,
        id: u64,
        status: JobStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let job_id = row_id(id)?;
        db.write(|tx| {
            let Some(JobState {
                status: current,
                finished_at,
                ..
            }) = job_state(tx, job_id)?
            else {
                return Ok(false);
            };
            write_status(tx, job_id, current, finished_at, status, now)
        })
    }

    pub(super) fn report_execution(
        db: &SqliteBackend,
        execution_id: &str,
        report: &ExecutionReport,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let status = report.status;
        db.write(|tx| {
            let found: Option<(i64, String)> = tx
                .query_row(
                    "SELECT job_id, status FROM job_executions WHERE execution_id = ?1",
                    params![execution_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((job_id, own)) = found else {
                return Ok(None);
            };
            let mut own_changed = transition(parse_status(&own)?, status).is_some();
            if own_changed {
                tx.execute(
                    "UPDATE job_executions SET status = ?2 WHERE execution_id = ?1",
                    params![execution_id, status.as_str()],
                )?;
            }
            if report.started_at.is_some() || report.ended_at.is_some() || report.web_url.is_some()
            {
                let (started, ended, urls): (Option<i64>, Option<i64>, String) = tx.query_row(
                    "SELECT run_started_at, run_ended_at, web_urls FROM jobs WHERE id = ?1",
                    params![job_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let urls = parse_urls(&urls)?;
                let started = started.map(|t| from_ms(t, "run_started_at")).transpose()?;
                let ended = ended.map(|t| from_ms(t, "run_ended_at")).transpose()?;
                if let Some((started, ended, urls)) =
                    merged_run(started, ended, &urls, execution_id, report)
                {
                    tx.execute(
                        "UPDATE jobs SET run_started_at = ?2, run_ended_at = ?3, web_urls = ?4 \
                         WHERE id = ?1",
                        params![job_id, started.map(ms), ended.map(ms), json_urls(&urls)?],
                    )?;
                    own_changed = true;
                }
            }
            let Some(JobState {
                status: current,
                execution_ids,
                finished_at,
            }) = job_state(tx, job_id)?
            else {
                return Err(StoreError::Corrupt {
                    what: format!("execution {execution_id} belongs to a job that does not exist"),
                });
            };
            let mut statuses = Vec::with_capacity(execution_ids.len());
            for e in &execution_ids {
                let s: Option<String> = tx
                    .query_row(
                        "SELECT status FROM job_executions WHERE execution_id = ?1",
                        params![e],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(s) = s {
                    statuses.push(parse_status(&s)?);
                }
            }
            let job_changed = match combined(statuses) {
                Some(all) => write_status(tx, job_id, current, finished_at, all, now)?,
                None => false,
            };
            if own_changed && !job_changed {
                tx.execute(
                    "UPDATE jobs SET updated_at = ?2 WHERE id = ?1",
                    params![job_id, ms(now)],
                )?;
            }
            id_from_row(job_id).map(Some)
        })
    }

    pub(super) fn set_decided_by(
        db: &SqliteBackend,
        id: u64,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let job_id = row_id(id)?;
        db.write(|tx| {
            let n = tx.execute(
                "UPDATE jobs SET decided_by = ?2, updated_at = ?3 WHERE id = ?1",
                params![job_id, who, ms(now)],
            )?;
            Ok(n > 0)
        })
    }

    pub(super) fn append_output(
        db: &SqliteBackend,
        id: u64,
        more: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let job_id = row_id(id)?;
        db.write(|tx| {
            let existing: Option<String> = tx
                .query_row(
                    "SELECT output FROM jobs WHERE id = ?1",
                    params![job_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(existing) = existing else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE jobs SET output = ?2, updated_at = ?3 WHERE id = ?1",
                params![job_id, capped_output(&existing, more), ms(now)],
            )?;
            Ok(true)
        })
    }

    pub(super) fn list(
        db: &SqliteBackend,
        query: &JobQuery,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        // Fixed SQL fragments only; every value is bound.
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1");
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(user) = &query.user {
            sql.push_str(" AND user_key = ?");
            args.push(SqlValue::Text(user.as_str().to_owned()));
        }
        if let Some(status) = query.status {
            sql.push_str(" AND status = ?");
            args.push(SqlValue::Text(status.as_str().to_owned()));
        }
        if let Some(before) = query.before_id {
            sql.push_str(" AND id < ?");
            // Ids above i64::MAX cannot exist: every row is before them.
            args.push(SqlValue::Integer(i64::try_from(before).unwrap_or(i64::MAX)));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        args.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let conn = db.conn.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), RawJob::from_row)?;
        rows.map(|r| r?.into_record()).collect()
    }

    pub(super) fn unfinished(db: &SqliteBackend) -> Result<Vec<JobRecord>, StoreError> {
        let conn = db.conn.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE finished_at IS NULL ORDER BY id"
        ))?;
        let rows = stmt.query_map([], RawJob::from_row)?;
        rows.map(|r| r?.into_record()).collect()
    }

    /// Jobs `purge` removes per transaction: a command's writes wait for one batch at
    /// most, not for the whole purge (65,000 jobs take about half a second).
    const PURGE_BATCH: usize = 500;

    pub(super) fn purge(
        db: &SqliteBackend,
        older_than: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let limit = i64::try_from(PURGE_BATCH).unwrap_or(i64::MAX);
        let mut removed = 0;
        loop {
            // No index on `finished_at` (it would cost more than it saves): each batch
            // scans from the oldest job, and the oldest are the ones going.
            let batch = db.write(|tx| {
                let doomed: Vec<(i64, String)> = {
                    let mut stmt = tx.prepare(
                        "SELECT id, execution_ids FROM jobs WHERE finished_at < ?1 LIMIT ?2",
                    )?;
                    let rows = stmt.query_map(params![ms(older_than), limit], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                    rows.collect::<Result<_, _>>()?
                };
                for (id, execution_ids) in &doomed {
                    for e in parse_ids(execution_ids)? {
                        tx.prepare_cached("DELETE FROM job_executions WHERE execution_id = ?1")?
                            .execute(params![e])?;
                    }
                    tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?
                        .execute(params![id])?;
                }
                Ok(doomed.len())
            })?;
            removed += batch;
            if batch < PURGE_BATCH {
                return Ok(removed);
            }
        }
    }

    pub(super) fn count(db: &SqliteBackend) -> Result<usize, StoreError> {
        let n: i64 = db
            .conn
            .lock()
            .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))?;
        usize::try_from(n).map_err(|_| StoreError::Corrupt {
            what: "the job count is negative".to_owned(),
        })
    }

    /// What a status change needs to know of a job.
    struct JobState {
        status: JobStatus,
        execution_ids: Vec<String>,
        finished_at: Option<DateTime<Utc>>,
    }

    fn job_state(tx: &Transaction<'_>, job_id: i64) -> Result<Option<JobState>, StoreError> {
        let row: Option<(String, String, Option<i64>)> = tx
            .query_row(
                "SELECT status, execution_ids, finished_at FROM jobs WHERE id = ?1",
                params![job_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((status, ids, finished_at)) = row else {
            return Ok(None);
        };
        Ok(Some(JobState {
            status: parse_status(&status)?,
            execution_ids: parse_ids(&ids)?,
            finished_at: finished_at.map(|t| from_ms(t, "finished_at")).transpose()?,
        }))
    }

    /// Moves a job from `current` to `next` if the rules allow; returns whether it did.
    fn write_status(
        tx: &Transaction<'_>,
        job_id: i64,
        current: JobStatus,
        finished_at: Option<DateTime<Utc>>,
        next: JobStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let Some(next) = transition(current, next) else {
            return Ok(false);
        };
        tx.execute(
            "UPDATE jobs SET status = ?2, finished_at = ?3, updated_at = ?4 WHERE id = ?1",
            params![
                job_id,
                next.as_str(),
                finished_at_after(finished_at, next, now).map(ms),
                ms(now)
            ],
        )?;
        Ok(true)
    }

    fn row_id(id: u64) -> Result<i64, StoreError> {
        i64::try_from(id).map_err(|_| StoreError::InvalidInput {
            what: "job ids are below 2^63",
        })
    }

    fn id_from_row(id: i64) -> Result<u64, StoreError> {
        u64::try_from(id).map_err(|_| StoreError::Corrupt {
            what: "a job id is negative".to_owned(),
        })
    }

    fn json_ids(ids: &[String]) -> Result<String, StoreError> {
        serde_json::to_string(ids).map_err(|e| StoreError::Corrupt {
            what: format!("execution ids: {e}"),
        })
    }

    fn json_urls(urls: &BTreeMap<String, String>) -> Result<String, StoreError> {
        serde_json::to_string(urls).map_err(|e| StoreError::Corrupt {
            what: format!("execution links: {e}"),
        })
    }

    fn parse_urls(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
            what: format!("execution links of a job: {e}"),
        })
    }

    fn parse_ids(text: &str) -> Result<Vec<String>, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
            what: format!("execution ids of a job: {e}"),
        })
    }

    fn parse_status(word: &str) -> Result<JobStatus, StoreError> {
        JobStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == word)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("unknown job status {word:?}"),
            })
    }

    /// One `jobs` row as stored.
    struct RawJob {
        id: i64,
        user_key: String,
        user_name: String,
        connection: String,
        room_id: String,
        room_name: Option<String>,
        room_kind: String,
        thread: Option<String>,
        text: String,
        kind: String,
        target: String,
        parameters: String,
        execution_ids: String,
        status: String,
        created_at: i64,
        updated_at: i64,
        finished_at: Option<i64>,
        decided_by: Option<String>,
        output: String,
        run_started_at: Option<i64>,
        run_ended_at: Option<i64>,
        web_urls: String,
    }

    impl RawJob {
        /// Reads the columns in [`JOB_COLUMNS`] order.
        fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
            Ok(Self {
                id: r.get(0)?,
                user_key: r.get(1)?,
                user_name: r.get(2)?,
                connection: r.get(3)?,
                room_id: r.get(4)?,
                room_name: r.get(5)?,
                room_kind: r.get(6)?,
                thread: r.get(7)?,
                text: r.get(8)?,
                kind: r.get(9)?,
                target: r.get(10)?,
                parameters: r.get(11)?,
                execution_ids: r.get(12)?,
                status: r.get(13)?,
                created_at: r.get(14)?,
                updated_at: r.get(15)?,
                finished_at: r.get(16)?,
                decided_by: r.get(17)?,
                output: r.get(18)?,
                run_started_at: r.get(19)?,
                run_ended_at: r.get(20)?,
                web_urls: r.get(21)?,
            })
        }

        fn into_record(self) -> Result<JobRecord, StoreError> {
            let id = self.id;
            let corrupt = |what: &str| StoreError::Corrupt {
                what: format!("job {id}: {what}"),
            };
            Ok(JobRecord {
                id: id_from_row(id)?,
                user: UserKey(self.user_key),
                user_name: self.user_name,
                connection: self.connection,
                room_id: self.room_id,
                room_name: self.room_name,
                room_kind: parse_room_kind(&self.room_kind)
                    .ok_or_else(|| corrupt("unknown room kind"))?,
                thread: self.thread,
                text: self.text,
                kind: JobKind::from_parts(&self.kind, self.target)
                    .ok_or_else(|| corrupt("unknown kind"))?,
                parameters: serde_json::from_str(&self.parameters)
                    .map_err(|e| corrupt(&format!("parameters: {e}")))?,
                execution_ids: parse_ids(&self.execution_ids)?,
                status: parse_status(&self.status)?,
                created_at: from_ms(self.created_at, "created_at")?,
                updated_at: from_ms(self.updated_at, "updated_at")?,
                finished_at: self
                    .finished_at
                    .map(|t| from_ms(t, "finished_at"))
                    .transpose()?,
                decided_by: self.decided_by,
                output: self.output,
                run_started_at: self
                    .run_started_at
                    .map(|t| from_ms(t, "run_started_at"))
                    .transpose()?,
                run_ended_at: self
                    .run_ended_at
                    .map(|t| from_ms(t, "run_ended_at"))
                    .transpose()?,
                web_urls: parse_urls(&self.web_urls)?,
            })
        }
    }
}

/// The Redis backend (see `store::redis`). Keys, after the prefix:
///
/// * `jobs:seq`: the last id handed out (`INCR`: ids increase and are never reused);
/// * `job:<id>`: the job as JSON;
/// * `jobs:all`, `jobs:user:<user>`, `jobs:status:<status>`: sorted sets of ids (score =
///   id), newest last, for [`JobStore::list`]; `jobs:unfinished` likewise;
/// * `jobs:finished`: finished jobs' ids scored by `finished_at` (ms), for the purge;
/// * `jobs:exec`: hash execution id → `<job id> <execution status>`.
mod in_redis {
    use ::redis::{Connection, Pipeline};
    use serde::{Deserialize, Serialize};

    use super::super::redis::{from_json, get_json, to_json, watch, Fail, RedisBackend};
    use super::super::sqlite::{from_ms, ms};
    use super::*;

    /// A job as Redis keeps it.
    #[derive(Serialize, Deserialize)]
    struct Stored {
        id: u64,
        user: String,
        user_name: String,
        connection: String,
        room_id: String,
        room_name: Option<String>,
        room_kind: String,
        thread: Option<String>,
        text: String,
        kind: String,
        target: String,
        parameters: Map<String, Value>,
        execution_ids: Vec<String>,
        status: String,
        created_at: i64,
        updated_at: i64,
        finished_at: Option<i64>,
        decided_by: Option<String>,
        output: String,
        // Absent from jobs written before StackStorm's times were kept.
        #[serde(default)]
        run_started_at: Option<i64>,
        #[serde(default)]
        run_ended_at: Option<i64>,
        #[serde(default)]
        web_urls: BTreeMap<String, String>,
    }

    impl Stored {
        fn from_record(job: &JobRecord) -> Self {
            let (kind, target) = job.kind.parts();
            Self {
                id: job.id,
                user: job.user.as_str().to_owned(),
                user_name: job.user_name.clone(),
                connection: job.connection.clone(),
                room_id: job.room_id.clone(),
                room_name: job.room_name.clone(),
                room_kind: job.room_kind.as_str().to_owned(),
                thread: job.thread.clone(),
                text: job.text.clone(),
                kind: kind.to_owned(),
                target: target.to_owned(),
                parameters: job.parameters.clone(),
                execution_ids: job.execution_ids.clone(),
                status: job.status.as_str().to_owned(),
                created_at: ms(job.created_at),
                updated_at: ms(job.updated_at),
                finished_at: job.finished_at.map(ms),
                decided_by: job.decided_by.clone(),
                output: job.output.clone(),
                run_started_at: job.run_started_at.map(ms),
                run_ended_at: job.run_ended_at.map(ms),
                web_urls: job.web_urls.clone(),
            }
        }

        fn into_record(self) -> Result<JobRecord, StoreError> {
            let id = self.id;
            let corrupt = |what: &str| StoreError::Corrupt {
                what: format!("job {id}: {what}"),
            };
            Ok(JobRecord {
                id,
                user: UserKey(self.user),
                user_name: self.user_name,
                connection: self.connection,
                room_id: self.room_id,
                room_name: self.room_name,
                room_kind: parse_room_kind(&self.room_kind)
                    .ok_or_else(|| corrupt("unknown room kind"))?,
                thread: self.thread,
                text: self.text,
                kind: JobKind::from_parts(&self.kind, self.target)
                    .ok_or_else(|| corrupt("unknown kind"))?,
                parameters: self.parameters,
                execution_ids: self.execution_ids,
                status: parse_status(&self.status)?,
                created_at: from_ms(self.created_at, "created_at")?,
                updated_at: from_ms(self.updated_at, "updated_at")?,
                finished_at: self
                    .finished_at
                    .map(|t| from_ms(t, "finished_at"))
                    .transpose()?,
                decided_by: self.decided_by,
                output: self.output,
                run_started_at: self
                    .run_started_at
                    .map(|t| from_ms(t, "run_started_at"))
                    .transpose()?,
                run_ended_at: self
                    .run_ended_at
                    .map(|t| from_ms(t, "run_ended_at"))
                    .transpose()?,
                web_urls: self.web_urls,
            })
        }
    }

    fn parse_status(word: &str) -> Result<JobStatus, StoreError> {
        JobStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == word)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("unknown job status {word:?}"),
            })
    }

    fn job_key(db: &RedisBackend, id: u64) -> String {
        db.key_of(&format!("job:{id}"))
    }

    fn user_key(db: &RedisBackend, user: &str) -> String {
        db.key_of(&format!("jobs:user:{user}"))
    }

    fn status_key(db: &RedisBackend, status: JobStatus) -> String {
        db.key_of(&format!("jobs:status:{}", status.as_str()))
    }

    fn load(db: &RedisBackend, con: &mut Connection, id: u64) -> Result<Option<JobRecord>, Fail> {
        let stored: Option<Stored> = get_json(con, &job_key(db, id), || format!("job {id}"))?;
        Ok(stored.map(Stored::into_record).transpose()?)
    }

    /// Queues writing `job` back, moving it between the status indexes when its status
    /// changed from `before`.
    fn queue_save(
        db: &RedisBackend,
        pipe: &mut Pipeline,
        job: &JobRecord,
        before: JobStatus,
    ) -> Result<(), Fail> {
        pipe.cmd("SET")
            .arg(job_key(db, job.id))
            .arg(to_json(&Stored::from_record(job))?)
            .ignore();
        if before != job.status {
            pipe.cmd("ZREM")
                .arg(status_key(db, before))
                .arg(job.id)
                .ignore();
            queue_status_indexes(db, pipe, job);
        }
        Ok(())
    }

    /// Queues adding `job` to the indexes that depend on its status.
    fn queue_status_indexes(db: &RedisBackend, pipe: &mut Pipeline, job: &JobRecord) {
        pipe.cmd("ZADD")
            .arg(status_key(db, job.status))
            .arg(job.id)
            .arg(job.id)
            .ignore();
        if let Some(finished_at) = job.finished_at {
            pipe.cmd("ZREM")
                .arg(db.key_of("jobs:unfinished"))
                .arg(job.id)
                .ignore();
            pipe.cmd("ZADD")
                .arg(db.key_of("jobs:finished"))
                .arg(ms(finished_at))
                .arg(job.id)
                .ignore();
        } else {
            pipe.cmd("ZADD")
                .arg(db.key_of("jobs:unfinished"))
                .arg(job.id)
                .arg(job.id)
                .ignore();
        }
    }

    /// `<job id> <status>` of an execution, as kept in `jobs:exec`.
    fn parse_exec(value: &str) -> Result<(u64, JobStatus), StoreError> {
        let corrupt = || StoreError::Corrupt {
            what: format!("an execution's entry {value:?} is malformed"),
        };
        let (id, status) = value.split_once(' ').ok_or_else(corrupt)?;
        Ok((id.parse().map_err(|_| corrupt())?, parse_status(status)?))
    }

    fn exec_value(id: u64, status: JobStatus) -> String {
        format!("{id} {}", status.as_str())
    }

    /// Moves `job` to `next` if the rules allow; returns whether it changed.
    fn apply_status(job: &mut JobRecord, next: JobStatus, now: DateTime<Utc>) -> bool {
        let Some(next) = transition(job.status, next) else {
            return false;
        };
        job.status = next;
        job.finished_at = finished_at_after(job.finished_at, next, now);
        job.updated_at = now;
        true
    }

    pub(super) fn record(
        db: &RedisBackend,
        job: NewJob,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let seq = db.key_of("jobs:seq");
        db.run(|con| {
            let id: u64 = ::redis::cmd("INCR").arg(&seq).query(con)?;
            let record = JobRecord {
                id,
                user: job.user.clone(),
                user_name: job.user_name.clone(),
                connection: job.connection.clone(),
                room_id: job.room_id.clone(),
                room_name: job.room_name.clone(),
                room_kind: job.room_kind,
                thread: job.thread.clone(),
                text: job.text.clone(),
                kind: job.kind.clone(),
                parameters: job.parameters.clone(),
                execution_ids: Vec::new(),
                status: job.status,
                created_at: now,
                updated_at: now,
                finished_at: job.status.is_finished().then_some(now),
                decided_by: job.decided_by.clone(),
                output: String::new(),
                run_started_at: None,
                run_ended_at: None,
                web_urls: BTreeMap::new(),
            };
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            pipe.cmd("SET")
                .arg(job_key(db, id))
                .arg(to_json(&Stored::from_record(&record))?)
                .ignore();
            pipe.cmd("ZADD")
                .arg(db.key_of("jobs:all"))
                .arg(id)
                .arg(id)
                .ignore();
            pipe.cmd("ZADD")
                .arg(user_key(db, record.user.as_str()))
                .arg(id)
                .arg(id)
                .ignore();
            queue_status_indexes(db, &mut pipe, &record);
            pipe.exec(con)?;
            Ok(id)
        })
    }

    pub(super) fn get(db: &RedisBackend, id: u64) -> Result<Option<JobRecord>, StoreError> {
        db.run(|con| load(db, con, id))
    }

    pub(super) fn by_execution(
        db: &RedisBackend,
        execution_id: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        db.run(|con| {
            let entry: Option<String> = ::redis::cmd("HGET")
                .arg(db.key_of("jobs:exec"))
                .arg(execution_id)
                .query(con)?;
            match entry {
                Some(entry) => load(db, con, parse_exec(&entry)?.0),
                None => Ok(None),
            }
        })
    }

    pub(super) fn set_executions(
        db: &RedisBackend,
        id: u64,
        execution_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let exec = db.key_of("jobs:exec");
        db.atomically(&[job_key(db, id), exec.clone()], |con, pipe| {
            let Some(mut job) = load(db, con, id)? else {
                return Ok(false);
            };
            let mut keep = Vec::new();
            for e in execution_ids {
                let entry: Option<String> = ::redis::cmd("HGET").arg(&exec).arg(e).query(con)?;
                match entry.map(|v| parse_exec(&v)).transpose()? {
                    Some((owner, _)) if owner != id => {
                        return Err(Fail::Store(another_jobs_execution()))
                    }
                    Some(_) => keep.push(e),
                    None => {}
                }
            }
            for old in job
                .execution_ids
                .iter()
                .filter(|e| !execution_ids.contains(e))
            {
                pipe.cmd("HDEL").arg(&exec).arg(old).ignore();
            }
            for new in execution_ids.iter().filter(|e| !keep.contains(e)) {
                pipe.cmd("HSET")
                    .arg(&exec)
                    .arg(new)
                    .arg(exec_value(id, JobStatus::Requested))
                    .ignore();
            }
            let before = job.status;
            job.execution_ids = execution_ids.to_vec();
            job.updated_at = now;
            queue_save(db, pipe, &job, before)?;
            Ok(true)
        })
    }

    pub(super) fn set_status(
        db: &RedisBackend,
        id: u64,
        status: JobStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        db.atomically(&[job_key(db, id)], |con, pipe| {
            let Some(mut job) = load(db, con, id)? else {
                return Ok(false);
            };
            let before = job.status;
            if !apply_status(&mut job, status, now) {
                return Ok(false);
            }
            queue_save(db, pipe, &job, before)?;
            Ok(true)
        })
    }

    pub(super) fn report_execution(
        db: &RedisBackend,
        execution_id: &str,
        report: &ExecutionReport,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let status = report.status;
        let exec = db.key_of("jobs:exec");
        db.atomically(std::slice::from_ref(&exec), |con, pipe| {
            let entry: Option<String> = ::redis::cmd("HGET")
                .arg(&exec)
                .arg(execution_id)
                .query(con)?;
            let Some((id, own)) = entry.map(|v| parse_exec(&v)).transpose()? else {
                return Ok(None);
            };
            watch(con, &[job_key(db, id)])?;
            let Some(mut job) = load(db, con, id)? else {
                return Err(Fail::Store(StoreError::Corrupt {
                    what: format!("execution {execution_id} belongs to a job that does not exist"),
                }));
            };
            let own_changed = transition(own, status).is_some();
            let mut statuses = Vec::with_capacity(job.execution_ids.len());
            for e in &job.execution_ids {
                if e == execution_id {
                    statuses.push(if own_changed { status } else { own });
                    continue;
                }
                let entry: Option<String> = ::redis::cmd("HGET").arg(&exec).arg(e).query(con)?;
                if let Some(entry) = entry {
                    statuses.push(parse_exec(&entry)?.1);
                }
            }
            if own_changed {
                pipe.cmd("HSET")
                    .arg(&exec)
                    .arg(execution_id)
                    .arg(exec_value(id, status))
                    .ignore();
            }
            let before = job.status;
            let mut own_changed = own_changed;
            own_changed |= job.merge_run(execution_id, report);
            let job_changed =
                combined(statuses).is_some_and(|all| apply_status(&mut job, all, now));
            if own_changed && !job_changed {
                job.updated_at = now;
            }
            if own_changed || job_changed {
                queue_save(db, pipe, &job, before)?;
            }
            Ok(Some(id))
        })
    }

    /// Loads job `id`, lets `change` alter it, and writes it back; `false` if there is no
    /// such job.
    fn update(
        db: &RedisBackend,
        id: u64,
        change: impl Fn(&mut JobRecord),
    ) -> Result<bool, StoreError> {
        db.atomically(&[job_key(db, id)], |con, pipe| {
            let Some(mut job) = load(db, con, id)? else {
                return Ok(false);
            };
            let before = job.status;
            change(&mut job);
            queue_save(db, pipe, &job, before)?;
            Ok(true)
        })
    }

    pub(super) fn set_decided_by(
        db: &RedisBackend,
        id: u64,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        update(db, id, |job| {
            job.decided_by = Some(who.to_owned());
            job.updated_at = now;
        })
    }

    pub(super) fn append_output(
        db: &RedisBackend,
        id: u64,
        more: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        update(db, id, |job| {
            job.output = capped_output(&job.output, more);
            job.updated_at = now;
        })
    }

    /// Ids read per round trip while listing.
    const PAGE: usize = 200;

    pub(super) fn list(
        db: &RedisBackend,
        query: &JobQuery,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        // The narrowest index; a status asked for with a user is checked per job.
        let index = match (&query.user, query.status) {
            (Some(user), _) => user_key(db, user.as_str()),
            (None, Some(status)) => status_key(db, status),
            (None, None) => db.key_of("jobs:all"),
        };
        db.run(|con| {
            let mut out = Vec::new();
            // Exclusive upper bound on ids, newest first.
            let mut max = match query.before_id {
                Some(before) => format!("({before}"),
                None => "+inf".to_owned(),
            };
            loop {
                let ids: Vec<u64> = ::redis::cmd("ZREVRANGEBYSCORE")
                    .arg(&index)
                    .arg(&max)
                    .arg("-inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(PAGE)
                    .query(con)?;
                let Some(&last) = ids.last() else {
                    return Ok(out);
                };
                let keys: Vec<String> = ids.iter().map(|id| job_key(db, *id)).collect();
                let raws: Vec<Option<String>> = ::redis::cmd("MGET").arg(&keys).query(con)?;
                for raw in raws.into_iter().flatten() {
                    let stored: Stored = from_json(&raw, || "a job".to_owned())?;
                    let job = stored.into_record()?;
                    if query.status.is_none_or(|s| job.status == s) {
                        out.push(job);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
                if ids.len() < PAGE {
                    return Ok(out);
                }
                max = format!("({last}");
            }
        })
    }

    pub(super) fn unfinished(db: &RedisBackend) -> Result<Vec<JobRecord>, StoreError> {
        db.run(|con| {
            let ids: Vec<u64> = ::redis::cmd("ZRANGE")
                .arg(db.key_of("jobs:unfinished"))
                .arg(0)
                .arg(-1)
                .query(con)?;
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(PAGE) {
                let keys: Vec<String> = chunk.iter().map(|id| job_key(db, *id)).collect();
                let raws: Vec<Option<String>> = ::redis::cmd("MGET").arg(&keys).query(con)?;
                for raw in raws.into_iter().flatten() {
                    let stored: Stored = from_json(&raw, || "a job".to_owned())?;
                    out.push(stored.into_record()?);
                }
            }
            Ok(out)
        })
    }

    /// Jobs `purge` removes per transaction.
    const PURGE_BATCH: usize = 500;

    pub(super) fn purge(db: &RedisBackend, older_than: DateTime<Utc>) -> Result<usize, StoreError> {
        let finished = db.key_of("jobs:finished");
        let exec = db.key_of("jobs:exec");
        let mut removed = 0;
        loop {
            let batch = db.atomically(&[finished.clone(), exec.clone()], |con, pipe| {
                let ids: Vec<u64> = ::redis::cmd("ZRANGEBYSCORE")
                    .arg(&finished)
                    .arg("-inf")
                    .arg(format!("({}", ms(older_than)))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(PURGE_BATCH)
                    .query(con)?;
                let keys: Vec<String> = ids.iter().map(|id| job_key(db, *id)).collect();
                if keys.is_empty() {
                    return Ok(0);
                }
                watch(con, &keys)?;
                let raws: Vec<Option<String>> = ::redis::cmd("MGET").arg(&keys).query(con)?;
                for (id, raw) in ids.iter().zip(raws) {
                    if let Some(raw) = raw {
                        let stored: Stored = from_json(&raw, || format!("job {id}"))?;
                        let job = stored.into_record()?;
                        for e in &job.execution_ids {
                            pipe.cmd("HDEL").arg(&exec).arg(e).ignore();
                        }
                        pipe.cmd("ZREM")
                            .arg(user_key(db, job.user.as_str()))
                            .arg(id)
                            .ignore();
                        pipe.cmd("ZREM")
                            .arg(status_key(db, job.status))
                            .arg(id)
                            .ignore();
                    }
                    pipe.cmd("DEL").arg(job_key(db, *id)).ignore();
                    pipe.cmd("ZREM").arg(db.key_of("jobs:all")).arg(id).ignore();
                    pipe.cmd("ZREM").arg(&finished).arg(id).ignore();
                }
                Ok(ids.len())
            })?;
            removed += batch;
            if batch < PURGE_BATCH {
                return Ok(removed);
            }
        }
    }

    pub(super) fn count(db: &RedisBackend) -> Result<usize, StoreError> {
        db.run(|con| {
            let n: usize = ::redis::cmd("ZCARD")
                .arg(db.key_of("jobs:all"))
                .query(con)?;
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_from_their_words() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!("Cancelled".parse(), Ok(JobStatus::Canceled));
        assert_eq!(" timed-out".parse(), Ok(JobStatus::TimedOut));
        assert_eq!("FAILED".parse(), Ok(JobStatus::Failed));
        let err = "finished".parse::<JobStatus>().unwrap_err();
        assert!(err.to_string().contains("succeeded, failed"), "{err}");
    }

    #[test]
    fn executions_combine_into_the_worst_status() {
        use JobStatus::*;
        assert_eq!(combined([]), None);
        assert_eq!(combined([Succeeded, Running]), Some(Running));
        assert_eq!(combined([Succeeded, Requested, Failed]), Some(Running));
        assert_eq!(combined([Succeeded, Canceled]), Some(Canceled));
        assert_eq!(combined([Canceled, TimedOut, Succeeded]), Some(TimedOut));
        assert_eq!(combined([TimedOut, Failed, Canceled]), Some(Failed));
        assert_eq!(combined([Succeeded, Succeeded]), Some(Succeeded));
        assert_eq!(combined([Succeeded, Unknown]), Some(Unknown));
    }

    #[test]
    fn transitions_never_unfinish() {
        use JobStatus::*;
        assert_eq!(transition(Requested, Running), Some(Running));
        assert_eq!(transition(Running, Succeeded), Some(Succeeded));
        assert_eq!(transition(Succeeded, Running), None);
        assert_eq!(transition(Failed, Requested), None);
        assert_eq!(transition(TimedOut, Succeeded), Some(Succeeded));
        assert_eq!(transition(Running, Running), None);
    }

    #[test]
    fn output_is_capped_on_a_char_boundary() {
        assert_eq!(capped_output("ab", "cd"), "abcd");
        let big = "é".repeat(MAX_JOB_OUTPUT); // two bytes each
        let out = capped_output("start", &big);
        assert!(out.len() <= MAX_JOB_OUTPUT, "{}", out.len());
        assert!(out.starts_with(OUTPUT_DROPPED_MARKER));
        assert!(out[OUTPUT_DROPPED_MARKER.len()..].chars().all(|c| c == 'é'));
        // Appending again keeps one marker and the newest bytes.
        let again = capped_output(&out, "END");
        assert!(again.len() <= MAX_JOB_OUTPUT);
        assert_eq!(again.matches(OUTPUT_DROPPED_MARKER).count(), 1);
        assert!(again.ends_with("éEND"));
        // Just at the cap: nothing dropped.
        let exact = "x".repeat(MAX_JOB_OUTPUT - 1);
        assert_eq!(capped_output(&exact, "y").len(), MAX_JOB_OUTPUT);
        assert!(!capped_output(&exact, "y").starts_with(OUTPUT_DROPPED_MARKER));
    }
}
