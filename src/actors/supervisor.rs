//! The registry of actor states behind `/ready` and `/actors`.
//!
//! Restarting is done by `actix::Supervisor` around each connection-holding actor; this
//! actor is where they all report what state they are in, how often they restarted, their
//! last error and last activity. It never reaches into another actor: it only listens.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use actix::prelude::*;
use serde::Serialize;

use crate::metrics::Metrics;

/// What an actor is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorState {
    /// Not yet ready.
    Starting,
    /// Working.
    Up,
    /// Working with a problem (e.g. serving a stale alias list).
    Degraded,
    /// Lost its connection; reconnecting after a backoff.
    Reconnecting,
    /// Not working.
    Down,
}

/// One actor's entry in `/actors`.
#[derive(Debug, Clone, Serialize)]
pub struct ActorStatus {
    /// Actor name, e.g. `stream_consumer` or `chat:console`.
    pub name: String,
    /// Current state.
    pub state: ActorState,
    /// Restarts since the bridge started.
    pub restarts: u32,
    /// The most recent error, already free of secrets.
    pub last_error: Option<String>,
    /// When it last did something, RFC 3339.
    pub last_activity: Option<String>,
    /// Whether `/ready` waits for this actor to be up.
    pub required_for_ready: bool,
}

/// A state change reported by an actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ReportStatus {
    /// Which actor.
    pub name: String,
    /// New state, if it changed.
    pub state: Option<ActorState>,
    /// The actor restarted.
    pub restarted: bool,
    /// An error to record.
    pub error: Option<String>,
    /// Mark activity now.
    pub activity: bool,
    /// Whether `/ready` depends on it (sent with the first report).
    pub required_for_ready: bool,
}

/// Asks for the health snapshot.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "HealthReport")]
pub struct Health;

/// The answer to [`Health`].
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct HealthReport {
    /// True when every required actor is up.
    pub ready: bool,
    /// Every actor, by name.
    pub actors: Vec<ActorStatus>,
}

/// The registry actor.
pub struct Supervisor {
    statuses: BTreeMap<String, ActorStatus>,
    metrics: Metrics,
}

impl Supervisor {
    /// An empty registry.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            statuses: BTreeMap::new(),
            metrics,
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Reports arrive from every actor; give the mailbox room for bursts at start-up.
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<ReportStatus> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ReportStatus, _ctx: &mut Self::Context) {
        let entry = self
            .statuses
            .entry(msg.name.clone())
            .or_insert_with(|| ActorStatus {
                name: msg.name.clone(),
                state: ActorState::Starting,
                restarts: 0,
                last_error: None,
                last_activity: None,
                required_for_ready: msg.required_for_ready,
            });
        entry.required_for_ready |= msg.required_for_ready;
        if let Some(state) = msg.state {
            if state != entry.state {
                tracing::info!(actor = %msg.name, from = ?entry.state, to = ?state, "actor state changed");
            }
            entry.state = state;
        }
        if msg.restarted {
            entry.restarts = entry.restarts.saturating_add(1);
        }
        if let Some(error) = msg.error {
            entry.last_error = Some(error);
        }
        if msg.activity || msg.state.is_some() {
            entry.last_activity =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        if let Some(conn) = msg.name.strip_prefix("chat:") {
            self.metrics
                .set_connection_up(conn, entry.state == ActorState::Up);
        } else if msg.name == "stream_consumer" {
            self.metrics
                .set_connection_up("st2_stream", entry.state == ActorState::Up);
        }
    }
}

impl Handler<Health> for Supervisor {
    type Result = HealthReport;

    fn handle(&mut self, _msg: Health, _ctx: &mut Self::Context) -> HealthReport {
        let actors: Vec<ActorStatus> = self.statuses.values().cloned().collect();
        let ready = !actors.is_empty()
            && actors
                .iter()
                .filter(|a| a.required_for_ready)
                .all(|a| a.state == ActorState::Up);
        HealthReport { ready, actors }
    }
}

/// An actor's handle for reporting to the registry. Activity reports are throttled so a
/// busy actor does not flood the registry's mailbox.
#[derive(Clone)]
pub struct StatusReporter {
    name: String,
    registry: Recipient<ReportStatus>,
    required_for_ready: bool,
    last_activity: Option<Instant>,
}

const ACTIVITY_REPORT_EVERY: Duration = Duration::from_secs(1);

impl StatusReporter {
    /// A reporter for `name`, announcing it to the registry as starting.
    pub fn new(
        name: impl Into<String>,
        registry: Recipient<ReportStatus>,
        required_for_ready: bool,
    ) -> Self {
        let reporter = Self {
            name: name.into(),
            registry,
            required_for_ready,
            last_activity: None,
        };
        reporter.send(Some(ActorState::Starting), false, None, false);
        reporter
    }

    /// The actor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn send(
        &self,
        state: Option<ActorState>,
        restarted: bool,
        error: Option<String>,
        activity: bool,
    ) {
        self.registry.do_send(ReportStatus {
            name: self.name.clone(),
            state,
            restarted,
            error,
            activity,
            required_for_ready: self.required_for_ready,
        });
    }

    /// Reports a new state, with the error that caused it if any.
    pub fn state(&self, state: ActorState, error: Option<String>) {
        self.send(Some(state), false, error, false);
    }

    /// Reports a restart.
    pub fn restarted(&self, error: Option<String>) {
        self.send(Some(ActorState::Reconnecting), true, error, false);
    }

    /// Reports activity, at most once a second.
    pub fn activity(&mut self) {
        let now = Instant::now();
        if self
            .last_activity
            .is_none_or(|t| now.duration_since(t) >= ACTIVITY_REPORT_EVERY)
        {
            self.last_activity = Some(now);
            self.send(None, false, None, true);
        }
    }
}
