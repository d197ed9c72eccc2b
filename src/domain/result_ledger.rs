//! Which commands still owe their user a result, and what to do about each.
//!
//! StackStorm's event stream has no replay: an announcement published while the bridge is
//! not connected (a proxy cut the stream, st2stream restarted, the bridge restarted) is gone.
//! So every command the bridge starts is remembered here until its result has been handed to
//! its chat connection — from the stream, or, after a gap or when the announcement is late,
//! fetched from StackStorm's API and rendered the way the chatops pack would have. A result
//! is never handed over twice: both paths go through [`Ledger::claim`], keyed by the
//! bridge's request id (which the announcement carries back in its `context`), and delivered
//! entries are remembered for a retention period so a late duplicate is recognised.
//!
//! An entry's life: **starting** (the `aliasexecution` request is in flight; announcements
//! for it are held so the acknowledgement goes first) → **running** (StackStorm answered
//! with the execution id) → **delivered** (kept only to drop duplicates) → pruned. An entry
//! that never gets a result expires after `pending_ttl` with a reason; when more than
//! `max_entries` are remembered, delivered ones are forgotten first, then the oldest pending.
//!
//! Pure bookkeeping: no actix, no I/O, time passed in. The `ResultTracker` actor owns one.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};

use super::announcement::SourceContext;

/// What the bridge remembers of one command awaiting its result (this is what is persisted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingResult {
    /// The bridge's id for the command; announcements carry it in `context.request_id`.
    pub request_id: String,
    /// StackStorm's execution id, once `aliasexecution` answered.
    pub execution_id: Option<String>,
    /// Where the command came from (connection, room, thread, message, user).
    pub context: SourceContext,
    /// `pack.name` of the alias that ran.
    pub alias_ref: String,
    /// The alias's StackStorm id, when known (the chatops pack finds the alias by it).
    pub alias_id: Option<String>,
    /// When the command was started.
    pub created_at: DateTime<Utc>,
    /// When its result was posted (its chat connection said the platform has it).
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The request to StackStorm is in flight.
    Starting,
    /// StackStorm runs it; the result has not been delivered.
    Running,
    /// The result was delivered; kept to recognise duplicates.
    Delivered,
}

impl PendingResult {
    /// The entry's stage.
    pub fn stage(&self) -> Stage {
        match (&self.delivered_at, &self.execution_id) {
            (Some(_), _) => Stage::Delivered,
            (None, Some(_)) => Stage::Running,
            (None, None) => Stage::Starting,
        }
    }
}

/// Limits and timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    /// Most entries remembered (pending and delivered together).
    pub max_entries: usize,
    /// An undelivered entry older than this expires.
    pub pending_ttl: Duration,
    /// How long a delivered entry is remembered to drop duplicates.
    pub retention: Duration,
    /// How long after an execution finished its announcement may still come; after that
    /// the result is fetched and delivered from the API.
    pub grace: Duration,
    /// First check of a running execution, counted from its start.
    pub first_check: Duration,
    /// Longest wait between two checks of a running execution.
    pub max_check_interval: Duration,
}

/// What to do with an announcement that carries one of the bridge's request ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Deliver it; the entry is now delivered.
    Deliver,
    /// Its command's request is still in flight: hold it until [`Ledger::accept`] or
    /// [`Ledger::refuse`], so the acknowledgement goes first.
    Hold,
    /// Its result was already delivered: drop it.
    Duplicate,
    /// Not a command this ledger knows (started before a restart without a persistent
    /// store, or by another bridge sharing the route): deliver it as it is.
    Unknown,
}

/// Why an entry was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryReason {
    /// No result within `pending_ttl`.
    Ttl,
    /// Too many entries; the oldest pending one made room.
    Overflow,
    /// StackStorm no longer knows the execution.
    Gone,
    /// The bridge stopped while the request was in flight: whether StackStorm started the
    /// command is unknown.
    UnknownOutcome,
}

impl ExpiryReason {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ttl => "ttl",
            Self::Overflow => "overflow",
            Self::Gone => "gone",
            Self::UnknownOutcome => "unknown_outcome",
        }
    }
}

/// An entry given up, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The entry as it was.
    pub record: PendingResult,
    /// Why.
    pub reason: ExpiryReason,
}

/// What a check of an execution found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The execution finished (at `ended`, when StackStorm said).
    Finished {
        /// `end_timestamp`.
        ended: Option<DateTime<Utc>>,
    },
    /// Still running.
    Running,
    /// StackStorm has no such execution (404).
    Gone,
    /// The check failed (StackStorm unreachable, 5xx, …); try again later.
    Failed,
}

/// What to do after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckVerdict {
    /// Render and deliver the result now; the entry is now delivered.
    Deliver,
    /// Nothing now; it is checked again later.
    Wait,
    /// The entry is given up.
    Expired(Box<Expired>),
    /// The entry was delivered (or removed) meanwhile: drop what the check found.
    Stale,
}

#[derive(Debug)]
struct Entry {
    record: PendingResult,
    /// When to check it next (running entries only).
    next_check: Option<DateTime<Utc>>,
    /// Checks that found it unfinished or failed, for the backoff.
    checks: u32,
    /// A check is in flight.
    checking: bool,
    /// The stream had a gap since it started: a finished execution's announcement may be
    /// lost, so deliver it as soon as a check finds it finished (no grace).
    after_gap: bool,
    /// The entry's key in [`Ledger::wakeups`], when it has one.
    wake: Option<DateTime<Utc>>,
    /// Restored from the store: an earlier process (a holder that died, this bridge before a
    /// restart) may have posted its result without recording it ([`Ledger::inherited`]).
    inherited: bool,
}

/// The ledger; see the module docs.
///
/// Every operation on one entry is O(log n): entries are kept by request id, and the next
/// moment each needs attention (a check, its expiry, the end of its retention) is kept in
/// an ordered index, so the timer, the due checks and the expiries never scan the whole
/// ledger (which holds up to `max_entries`, 10,000 by default, at a steady command rate).
#[derive(Debug)]
pub struct Ledger {
    settings: LedgerSettings,
    entries: HashMap<String, Entry>,
    by_execution: HashMap<String, String>,
    /// `(when, request id)` of every entry that will need attention.
    wakeups: BTreeSet<(DateTime<Utc>, String)>,
    /// Entries whose result was delivered.
    delivered: usize,
    /// Entries with a check in flight.
    checking: usize,
    /// The stream is down: no announcement can arrive, so running executions are looked at
    /// every `grace` instead of backing off, and finished ones are delivered at once.
    outage: bool,
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Ledger {
    /// An empty ledger.
    pub fn new(settings: LedgerSettings) -> Self {
        Self {
            settings,
            entries: HashMap::new(),
            by_execution: HashMap::new(),
            wakeups: BTreeSet::new(),
            delivered: 0,
            checking: 0,
            outage: false,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &LedgerSettings {
        &self.settings
    }

    /// Entries whose result has not been delivered.
    pub fn pending(&self) -> usize {
        self.entries.len() - self.delivered
    }

    /// Every entry remembered, delivered ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `request_id`.
    pub fn get(&self, request_id: &str) -> Option<&PendingResult> {
        self.entries.get(request_id).map(|e| &e.record)
    }

    /// When `request_id`'s command was started, if its entry was restored from the store
    /// rather than started by this process: its result may be in chat already (an earlier
    /// process posted it and died before recording that), and a platform that can look
    /// should look for it there, from that moment on, before posting it again.
    pub fn inherited(&self, request_id: &str) -> Option<DateTime<Utc>> {
        self.entries
            .get(request_id)
            .filter(|e| e.inherited)
            .map(|e| e.record.created_at)
    }

    /// The request id of `execution_id`.
    pub fn request_of(&self, execution_id: &str) -> Option<&str> {
        self.by_execution.get(execution_id).map(String::as_str)
    }

    /// When `entry` next needs attention: the end of its retention once delivered, else its
    /// next check or its expiry, whichever comes first; nothing while a check is in flight.
    fn wake_time(&self, entry: &Entry) -> Option<DateTime<Utc>> {
        if entry.checking {
            return None;
        }
        Some(match entry.record.delivered_at {
            Some(at) => at + delta(self.settings.retention),
            None => {
                let expiry = entry.record.created_at + delta(self.settings.pending_ttl);
                entry.next_check.map_or(expiry, |c| c.min(expiry))
            }
        })
    }

    /// Brings `request_id`'s key in the wake-up index up to date after a change.
    fn reindex(&mut self, request_id: &str) {
        let Some(entry) = self.entries.get(request_id) else {
            return;
        };
        let wake = self.wake_time(entry);
        if wake == entry.wake {
            return;
        }
        if let Some(old) = entry.wake {
            self.wakeups.remove(&(old, request_id.to_owned()));
        }
        if let Some(new) = wake {
            self.wakeups.insert((new, request_id.to_owned()));
        }
        if let Some(entry) = self.entries.get_mut(request_id) {
            entry.wake = wake;
        }
    }

    fn insert(&mut self, entry: Entry) {
        let id = entry.record.request_id.clone();
        if entry.record.stage() == Stage::Delivered {
            self.delivered += 1;
        }
        if let Some(exec) = &entry.record.execution_id {
            self.by_execution.insert(exec.clone(), id.clone());
        }
        if let Some(old) = self.entries.insert(id.clone(), entry) {
            // The same request id again (a restore over a start): forget the old one's keys.
            if old.record.stage() == Stage::Delivered {
                self.delivered -= 1;
            }
            if old.checking {
                self.checking -= 1;
            }
            if let Some(w) = old.wake {
                self.wakeups.remove(&(w, id.clone()));
            }
        }
        self.reindex(&id);
    }

    fn remove(&mut self, request_id: &str) -> Option<PendingResult> {
        let entry = self.entries.remove(request_id)?;
        if let Some(id) = &entry.record.execution_id {
            self.by_execution.remove(id);
        }
        if let Some(w) = entry.wake {
            self.wakeups.remove(&(w, request_id.to_owned()));
        }
        if entry.record.stage() == Stage::Delivered {
            self.delivered -= 1;
        }
        if entry.checking {
            self.checking -= 1;
        }
        Some(entry.record)
    }

    /// Forgets every entry of the chat connection `connection` without giving anything up:
    /// another bridge process runs the connection now and owes its results. Returns how
    /// many were forgotten.
    pub fn forget_connection(&mut self, connection: &str) -> usize {
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.record.context.connection == connection)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.remove(id);
        }
        ids.len()
    }

    /// Marks a running entry delivered at `now`.
    fn deliver(&mut self, request_id: &str, now: DateTime<Utc>) {
        if let Some(entry) = self.entries.get_mut(request_id) {
            if entry.record.delivered_at.is_none() {
                entry.record.delivered_at = Some(now);
                entry.next_check = None;
                self.delivered += 1;
            }
        }
        self.reindex(request_id);
    }

    /// Loads entries saved before a restart. Starting ones cannot be resumed (whether
    /// StackStorm got the request is unknown): they come back as [`Expired`] with
    /// [`ExpiryReason::UnknownOutcome`]. Running ones are checked as after a gap. Returns
    /// the entries given up and the ids of delivered ones past their retention, as
    /// [`Ledger::expire`] does.
    pub fn restore(
        &mut self,
        records: Vec<PendingResult>,
        now: DateTime<Utc>,
    ) -> (Vec<Expired>, Vec<String>) {
        let mut expired = Vec::new();
        for record in records {
            match record.stage() {
                Stage::Starting => expired.push(Expired {
                    record,
                    reason: ExpiryReason::UnknownOutcome,
                }),
                stage => {
                    let running = stage == Stage::Running;
                    self.insert(Entry {
                        record,
                        next_check: running.then_some(now),
                        checks: 0,
                        checking: false,
                        after_gap: running,
                        wake: None,
                        inherited: true,
                    });
                }
            }
        }
        let (given_up, forgotten) = self.expire(now);
        expired.extend(given_up);
        (expired, forgotten)
    }

    /// Remembers a command whose request is about to be sent. Returns what had to be given
    /// up to make room (see the module docs).
    pub fn start(&mut self, record: PendingResult) -> Vec<Expired> {
        let mut given_up = Vec::new();
        if self.entries.len() >= self.settings.max_entries.max(1) {
            given_up.extend(self.make_room());
        }
        let after_gap = self.outage;
        self.insert(Entry {
            record,
            next_check: None,
            checks: 0,
            checking: false,
            after_gap,
            wake: None,
            inherited: false,
        });
        given_up
    }

    /// Frees a tenth of the ledger (at least one entry): the delivered entries whose
    /// retention ends first, then — only if that is not enough — the oldest pending ones.
    /// In batches, so a ledger kept full by a steady command rate does not search for a
    /// victim on every command.
    fn make_room(&mut self) -> Vec<Expired> {
        let want = (self.settings.max_entries / 10).max(1);
        let delivered: Vec<String> = self
            .wakeups
            .iter()
            .filter(|(_, id)| {
                self.entries
                    .get(id)
                    .is_some_and(|e| e.record.delivered_at.is_some())
            })
            .take(want)
            .map(|(_, id)| id.clone())
            .collect();
        for id in &delivered {
            self.remove(id);
        }
        if !delivered.is_empty() {
            return Vec::new();
        }
        let oldest = self
            .entries
            .values()
            .min_by_key(|e| e.record.created_at)
            .map(|e| e.record.request_id.clone());
        oldest
            .and_then(|id| self.remove(&id))
            .map(|record| Expired {
                record,
                reason: ExpiryReason::Overflow,
            })
            .into_iter()
            .collect()
    }

    /// StackStorm accepted the command as `execution_id`. Its first check is scheduled:
    /// at once if the stream had a gap while the request was in flight, after `grace`
    /// while the stream is down, else `first_check` after the command.
    pub fn accept(&mut self, request_id: &str, execution_id: &str, now: DateTime<Utc>) {
        let first_check = delta(self.settings.first_check);
        let grace = delta(self.settings.grace.max(Duration::from_secs(1)));
        let outage = self.outage;
        let Some(entry) = self.entries.get_mut(request_id) else {
            return;
        };
        if entry.record.execution_id.is_none() {
            entry.record.execution_id = Some(execution_id.to_owned());
        }
        if entry.record.stage() == Stage::Running {
            entry.next_check = Some(if outage {
                now + grace
            } else if entry.after_gap {
                now
            } else {
                entry.record.created_at + first_check
            });
        }
        self.by_execution
            .insert(execution_id.to_owned(), request_id.to_owned());
        self.reindex(request_id);
    }

    /// StackStorm refused the command (or it could not be sent): nothing will come.
    pub fn refuse(&mut self, request_id: &str) -> Option<PendingResult> {
        self.remove(request_id)
    }

    /// An announcement for `request_id` arrived from the stream.
    pub fn claim(&mut self, request_id: &str, now: DateTime<Utc>) -> Claim {
        let Some(entry) = self.entries.get(request_id) else {
            return Claim::Unknown;
        };
        match entry.record.stage() {
            Stage::Starting => Claim::Hold,
            Stage::Delivered => Claim::Duplicate,
            Stage::Running => {
                self.deliver(request_id, now);
                Claim::Deliver
            }
        }
    }

    /// A held announcement of `request_id` was released after its acknowledgement: the
    /// entry is delivered. `false` when it already was (drop the announcement).
    pub fn delivered_held(&mut self, request_id: &str, now: DateTime<Utc>) -> bool {
        match self.entries.get(request_id) {
            Some(entry) if entry.record.delivered_at.is_none() => {
                self.deliver(request_id, now);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// The stream is lost: until [`Ledger::gap`] says it is back, nothing can be announced
    /// to the bridge, so running executions are looked at every `grace` and finished ones
    /// delivered at once.
    pub fn outage(&mut self, now: DateTime<Utc>) {
        self.outage = true;
        let soon = now + delta(self.settings.grace.max(Duration::from_secs(1)));
        let ids: Vec<String> = self.entries.keys().cloned().collect();
        for id in ids {
            if let Some(entry) = self.entries.get_mut(&id) {
                if entry.record.stage() != Stage::Delivered {
                    entry.after_gap = true;
                }
                if entry.record.stage() == Stage::Running {
                    entry.next_check = Some(entry.next_check.map_or(soon, |t| t.min(soon)));
                }
            }
            self.reindex(&id);
        }
    }

    /// The stream came back after a gap (or was replaced after a long silence): every
    /// running execution is checked now, and one that finished is delivered without waiting
    /// for an announcement that may have been lost. Commands still starting are checked as
    /// soon as StackStorm answers.
    pub fn gap(&mut self, now: DateTime<Utc>) {
        self.outage = false;
        let ids: Vec<String> = self.entries.keys().cloned().collect();
        for id in ids {
            if let Some(entry) = self.entries.get_mut(&id) {
                match entry.record.stage() {
                    Stage::Running => {
                        entry.after_gap = true;
                        entry.next_check = Some(now);
                    }
                    Stage::Starting => entry.after_gap = true,
                    Stage::Delivered => {}
                }
            }
            self.reindex(&id);
        }
    }

    /// Executions due for a check now, as `(request id, execution id)`; each is marked as
    /// being checked until [`Ledger::checked`] is called for it.
    pub fn due_checks(&mut self, now: DateTime<Utc>, limit: usize) -> Vec<(String, String)> {
        let due: Vec<String> = self
            .wakeups
            .iter()
            .take_while(|(t, _)| *t <= now)
            .filter(|(_, id)| {
                self.entries.get(id).is_some_and(|e| {
                    !e.checking
                        && e.record.stage() == Stage::Running
                        && e.next_check.is_some_and(|t| t <= now)
                })
            })
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.checking = true;
                self.checking += 1;
                if let Some(exec) = entry.record.execution_id.clone() {
                    out.push((id.clone(), exec));
                }
            }
            self.reindex(&id);
        }
        out
    }

    /// Checks in flight.
    pub fn checks_in_flight(&self) -> usize {
        self.checking
    }

    /// What a check of `request_id` found, and what to do about it.
    pub fn checked(
        &mut self,
        request_id: &str,
        outcome: CheckOutcome,
        now: DateTime<Utc>,
    ) -> CheckVerdict {
        let grace = delta(self.settings.grace);
        let outage = self.outage;
        let Some(entry) = self.entries.get_mut(request_id) else {
            return CheckVerdict::Stale;
        };
        if std::mem::take(&mut entry.checking) {
            self.checking -= 1;
        }
        if entry.record.stage() != Stage::Running {
            self.reindex(request_id);
            return CheckVerdict::Stale;
        }
        let verdict = match outcome {
            CheckOutcome::Finished { ended } => {
                let due = ended.map_or(now, |t| t + grace);
                if entry.after_gap || due <= now {
                    self.deliver(request_id, now);
                    return CheckVerdict::Deliver;
                }
                // Finished a moment ago: its announcement is probably on its way.
                entry.next_check = Some(due);
                CheckVerdict::Wait
            }
            CheckOutcome::Running | CheckOutcome::Failed => {
                entry.checks = entry.checks.saturating_add(1);
                let step = if outage {
                    self.settings.grace
                } else {
                    self.settings
                        .first_check
                        .saturating_mul(2u32.saturating_pow(entry.checks.min(16)))
                };
                let step = step
                    .min(self.settings.max_check_interval)
                    .max(Duration::from_secs(1));
                entry.next_check = Some(now + delta(step));
                CheckVerdict::Wait
            }
            CheckOutcome::Gone => {
                return match self.remove(request_id) {
                    Some(record) => CheckVerdict::Expired(Box::new(Expired {
                        record,
                        reason: ExpiryReason::Gone,
                    })),
                    None => CheckVerdict::Stale,
                };
            }
        };
        self.reindex(request_id);
        verdict
    }

    /// Gives up undelivered entries older than `pending_ttl` and forgets delivered ones
    /// older than `retention`: returns the entries given up and the request ids forgotten.
    pub fn expire(&mut self, now: DateTime<Utc>) -> (Vec<Expired>, Vec<String>) {
        let ttl = delta(self.settings.pending_ttl);
        let retention = delta(self.settings.retention);
        let mut gone = Vec::new();
        let mut forget = Vec::new();
        for (_, id) in self.wakeups.iter().take_while(|(t, _)| *t <= now) {
            let Some(entry) = self.entries.get(id) else {
                continue;
            };
            match entry.record.delivered_at {
                Some(at) if at + retention <= now => forget.push(id.clone()),
                None if !entry.checking && entry.record.created_at + ttl <= now => {
                    gone.push(id.clone());
                }
                _ => {}
            }
        }
        for id in &forget {
            self.remove(id);
        }
        let given_up = gone
            .into_iter()
            .filter_map(|id: String| self.remove(&id))
            .map(|record| Expired {
                record,
                reason: ExpiryReason::Ttl,
            })
            .collect();
        (given_up, forget)
    }

    /// When something is next due: a check, an expiry or a retention end. `None` when the
    /// ledger is empty (no timer needed).
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.wakeups.first().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{announcement::BRIDGE_MARKER, message::RoomKind};

    fn settings() -> LedgerSettings {
        LedgerSettings {
            max_entries: 3,
            pending_ttl: Duration::from_secs(3600),
            retention: Duration::from_secs(600),
            grace: Duration::from_secs(30),
            first_check: Duration::from_secs(60),
            max_check_interval: Duration::from_secs(600),
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    fn record(id: &str, at: DateTime<Utc>) -> PendingResult {
        PendingResult {
            request_id: id.into(),
            execution_id: None,
            context: SourceContext {
                bridge: BRIDGE_MARKER.into(),
                connection: "console".into(),
                room: "ops".into(),
                room_kind: RoomKind::Group,
                thread: None,
                message_id: None,
                user_id: "alice".into(),
                user_name: None,
                request_id: id.into(),
            },
            alias_ref: "demo.date".into(),
            alias_id: None,
            created_at: at,
            delivered_at: None,
        }
    }

    #[test]
    fn a_result_is_claimed_once_and_its_duplicate_is_recognised() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        assert_eq!(l.claim("r1", t0()), Claim::Hold, "request still in flight");
        l.accept("r1", "e1", t0());
        assert_eq!(l.claim("r1", t0()), Claim::Deliver);
        assert_eq!(l.claim("r1", t0()), Claim::Duplicate);
        assert_eq!(l.claim("other", t0()), Claim::Unknown);
        assert_eq!(l.pending(), 0);
        assert_eq!(l.len(), 1, "remembered for duplicates");
    }

    #[test]
    fn a_connection_passed_on_is_forgotten_with_nothing_given_up() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        l.accept("r1", "e1", t0());
        let mut other = record("r2", t0());
        other.context.connection = "slack".into();
        l.start(other);
        l.accept("r2", "e2", t0());
        assert_eq!(l.forget_connection("console"), 1);
        assert_eq!(l.pending(), 1);
        assert!(l.get("r1").is_none() && l.request_of("e1").is_none());
        assert_eq!(l.claim("r1", t0()), Claim::Unknown);
        assert_eq!(l.claim("r2", t0()), Claim::Deliver);
        let (given_up, _) = l.expire(t0() + secs(10 * 86_400));
        assert!(given_up.iter().all(|e| e.record.request_id != "r1"));
    }

    #[test]
    fn a_held_result_released_after_the_ack_counts_as_delivered_once() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        assert_eq!(l.claim("r1", t0()), Claim::Hold);
        l.accept("r1", "e1", t0());
        assert!(l.delivered_held("r1", t0()));
        assert!(
            !l.delivered_held("r1", t0()),
            "a second copy is a duplicate"
        );
        assert_eq!(l.claim("r1", t0()), Claim::Duplicate);
    }

    #[test]
    fn a_check_delivers_a_finished_execution_only_after_the_grace_unless_there_was_a_gap() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        l.accept("r1", "e1", t0());
        assert!(l.due_checks(t0() + secs(59), 10).is_empty());
        let due = l.due_checks(t0() + secs(60), 10);
        assert_eq!(due, vec![("r1".to_owned(), "e1".to_owned())]);
        // Finished 10 s ago: the announcement may still come.
        let ended = Some(t0() + secs(50));
        assert_eq!(
            l.checked("r1", CheckOutcome::Finished { ended }, t0() + secs(60)),
            CheckVerdict::Wait
        );
        assert_eq!(l.next_wakeup(), Some(t0() + secs(80)));
        assert!(!l.due_checks(t0() + secs(80), 10).is_empty());
        assert_eq!(
            l.checked("r1", CheckOutcome::Finished { ended }, t0() + secs(80)),
            CheckVerdict::Deliver
        );
        assert_eq!(l.claim("r1", t0() + secs(81)), Claim::Duplicate);

        // After a gap, no grace.
        l.start(record("r2", t0()));
        l.accept("r2", "e2", t0());
        l.gap(t0() + secs(5));
        assert_eq!(l.due_checks(t0() + secs(5), 10).len(), 1);
        assert_eq!(
            l.checked(
                "r2",
                CheckOutcome::Finished {
                    ended: Some(t0() + secs(4))
                },
                t0() + secs(5)
            ),
            CheckVerdict::Deliver
        );
    }

    #[test]
    fn while_the_stream_is_down_executions_are_looked_at_every_grace_and_delivered_at_once() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        l.accept("r1", "e1", t0());
        l.outage(t0() + secs(1));
        assert_eq!(
            l.next_wakeup(),
            Some(t0() + secs(31)),
            "grace, not first_check"
        );
        l.start(record("r2", t0() + secs(2)));
        l.accept("r2", "e2", t0() + secs(2));
        assert_eq!(l.due_checks(t0() + secs(31), 10).len(), 1);
        assert_eq!(
            l.checked("r1", CheckOutcome::Running, t0() + secs(31)),
            CheckVerdict::Wait
        );
        assert_eq!(l.next_wakeup(), Some(t0() + secs(32)), "r2 after grace");
        assert_eq!(l.due_checks(t0() + secs(32), 10).len(), 1);
        assert_eq!(
            l.checked(
                "r2",
                CheckOutcome::Finished {
                    ended: Some(t0() + secs(30))
                },
                t0() + secs(32)
            ),
            CheckVerdict::Deliver,
            "no announcement can come: no grace"
        );
        assert_eq!(
            l.next_wakeup(),
            Some(t0() + secs(61)),
            "r1 again after grace"
        );
        // Back: the usual backoff resumes after the gap's immediate look.
        l.gap(t0() + secs(40));
        assert_eq!(l.due_checks(t0() + secs(40), 10).len(), 1);
        assert_eq!(
            l.checked("r1", CheckOutcome::Running, t0() + secs(40)),
            CheckVerdict::Wait
        );
        assert!(l.next_wakeup() > Some(t0() + secs(100)));
    }

    #[test]
    fn a_gap_while_the_request_was_in_flight_checks_it_as_soon_as_it_is_accepted() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        l.gap(t0() + secs(1));
        l.accept("r1", "e1", t0() + secs(2));
        assert_eq!(l.due_checks(t0() + secs(2), 10).len(), 1);
    }

    #[test]
    fn the_stream_winning_a_race_with_a_check_makes_the_check_stale() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        l.accept("r1", "e1", t0());
        l.gap(t0());
        assert_eq!(l.due_checks(t0(), 10).len(), 1);
        assert_eq!(l.due_checks(t0(), 10).len(), 0, "not twice while in flight");
        assert_eq!(l.claim("r1", t0()), Claim::Deliver);
        assert_eq!(
            l.checked("r1", CheckOutcome::Finished { ended: None }, t0()),
            CheckVerdict::Stale
        );
    }

    #[test]
    fn unfinished_executions_are_checked_with_growing_intervals() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        l.accept("r1", "e1", t0());
        let mut now = t0() + secs(60);
        let mut waits = Vec::new();
        for _ in 0..5 {
            assert_eq!(l.due_checks(now, 10).len(), 1);
            assert_eq!(
                l.checked("r1", CheckOutcome::Running, now),
                CheckVerdict::Wait
            );
            let next = l.next_wakeup().unwrap_or(now);
            waits.push((next - now).num_seconds());
            now = next;
        }
        assert_eq!(waits, vec![120, 240, 480, 600, 600]);
    }

    #[test]
    fn gone_executions_and_old_entries_expire_with_a_reason() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        l.accept("r1", "e1", t0());
        l.gap(t0());
        l.due_checks(t0(), 10);
        match l.checked("r1", CheckOutcome::Gone, t0()) {
            CheckVerdict::Expired(e) => assert_eq!(e.reason, ExpiryReason::Gone),
            other => panic!("{other:?}"),
        }
        l.start(record("r2", t0()));
        l.accept("r2", "e2", t0());
        assert!(l.expire(t0() + secs(3599)).0.is_empty());
        let (expired, _) = l.expire(t0() + secs(3600));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].reason, ExpiryReason::Ttl);
        assert!(l.is_empty());
        assert_eq!(l.next_wakeup(), None, "no timer when nothing is owed");
    }

    #[test]
    fn delivered_entries_are_forgotten_after_the_retention() {
        let mut l = Ledger::new(settings());
        l.start(record("r1", t0()));
        l.accept("r1", "e1", t0());
        assert_eq!(l.claim("r1", t0()), Claim::Deliver);
        assert_eq!(l.next_wakeup(), Some(t0() + secs(600)));
        assert_eq!(l.expire(t0() + secs(600)), (vec![], vec!["r1".to_owned()]));
        assert!(l.is_empty());
        assert_eq!(l.request_of("e1"), None);
    }

    #[test]
    fn a_full_ledger_forgets_delivered_entries_first_then_the_oldest_pending() {
        let mut l = Ledger::new(settings());
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            l.start(record(id, t0() + secs(i as i64)));
            l.accept(id, &format!("e{id}"), t0());
        }
        assert_eq!(l.claim("b", t0()), Claim::Deliver);
        assert!(
            l.start(record("d", t0() + secs(9))).is_empty(),
            "b made room"
        );
        let given_up = l.start(record("e", t0() + secs(10)));
        assert_eq!(given_up.len(), 1);
        assert_eq!(given_up[0].record.request_id, "a");
        assert_eq!(given_up[0].reason, ExpiryReason::Overflow);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn a_restart_resumes_running_entries_and_reports_requests_that_were_in_flight() {
        let mut l = Ledger::new(settings());
        let mut running = record("r1", t0());
        running.execution_id = Some("e1".into());
        let mut delivered = record("r2", t0());
        delivered.execution_id = Some("e2".into());
        delivered.delivered_at = Some(t0());
        let starting = record("r3", t0());
        let (expired, _) = l.restore(vec![running, delivered, starting], t0() + secs(1));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].reason, ExpiryReason::UnknownOutcome);
        assert_eq!(l.due_checks(t0() + secs(1), 10).len(), 1);
        assert_eq!(l.claim("r2", t0()), Claim::Duplicate);
    }

    #[test]
    fn only_a_restored_entry_says_its_result_may_be_in_chat_already() {
        let mut l = Ledger::new(settings());
        let mut running = record("r1", t0());
        running.execution_id = Some("e1".into());
        l.restore(vec![running], t0() + secs(5));
        l.start(record("r2", t0() + secs(6)));
        l.accept("r2", "e2", t0() + secs(6));
        assert_eq!(l.claim("r1", t0() + secs(7)), Claim::Deliver);
        assert_eq!(l.inherited("r1"), Some(t0()), "since the command started");
        assert_eq!(l.inherited("r2"), None, "this process started it");
        assert_eq!(l.inherited("unknown"), None);
    }

    /// The indexes and counters agree with the entries themselves.
    fn assert_consistent(l: &Ledger) {
        let delivered = l
            .entries
            .values()
            .filter(|e| e.record.delivered_at.is_some())
            .count();
        assert_eq!(l.pending(), l.entries.len() - delivered);
        assert_eq!(
            l.checks_in_flight(),
            l.entries.values().filter(|e| e.checking).count()
        );
        let expected: Option<DateTime<Utc>> =
            l.entries.values().filter_map(|e| l.wake_time(e)).min();
        assert_eq!(l.next_wakeup(), expected);
        assert_eq!(
            l.wakeups.len(),
            l.entries
                .values()
                .filter(|e| l.wake_time(e).is_some())
                .count()
        );
        for e in l.entries.values() {
            assert_eq!(e.wake, l.wake_time(e), "{}", e.record.request_id);
        }
    }

    #[test]
    fn random_operations_keep_the_time_index_and_counters_exact() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..30 {
            let mut l = Ledger::new(LedgerSettings {
                max_entries: 12,
                ..settings()
            });
            let mut now = t0();
            for step in 0..300 {
                now += secs(rng.i64(0..40));
                let id = format!("r{}", rng.usize(0..20));
                match rng.u8(0..10) {
                    0 => {
                        l.start(record(&id, now));
                    }
                    1 => l.accept(&id, &format!("e{id}"), now),
                    2 => {
                        l.claim(&id, now);
                    }
                    3 => {
                        l.refuse(&id);
                    }
                    4 => {
                        l.due_checks(now, 3);
                    }
                    5 => {
                        let outcome = match rng.u8(0..4) {
                            0 => CheckOutcome::Running,
                            1 => CheckOutcome::Failed,
                            2 => CheckOutcome::Gone,
                            _ => CheckOutcome::Finished {
                                ended: Some(now - secs(5)),
                            },
                        };
                        l.checked(&id, outcome, now);
                    }
                    6 => l.gap(now),
                    7 => l.outage(now),
                    8 => {
                        l.expire(now);
                    }
                    _ => {
                        l.delivered_held(&id, now);
                    }
                }
                assert_consistent(&l);
                assert!(l.len() <= 12, "step {step}");
            }
        }
    }
}
