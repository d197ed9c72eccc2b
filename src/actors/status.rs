//! The registry of actor states behind `/ready` and `/actors`.
//!
//! Restarting is done by `actix::Supervisor` around each connection-holding actor; this
//! actor is where they all report what state they are in, how often they restarted, their
//! last error and last activity, and (chat connections) how full their outbound queue is.
//! It never reaches into another actor: it only listens.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use parking_lot::Mutex;
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
    /// Messages waiting in its outbound queue; only for actors that keep one and reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<usize>,
    /// Messages its full outbound queue dropped (oldest first) since the bridge started;
    /// only for actors that reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// Messages written into a link that ended before the server confirmed them, and sent
    /// again on the next link, since the bridge started (IRC and XMPP; on IRC, where no
    /// history can be checked, each may have been said twice); only for actors that
    /// reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resent: Option<u64>,
    /// Figures particular to the actor (the stream's last event time, the results still
    /// owed, …), as it last reported them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, serde_json::Value>,
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
    /// New outbound-queue figures, from [`StatusReporter::outbound`].
    pub outbound: Option<OutboundReport>,
    /// Actor-specific figures to record, from [`StatusReporter::details`].
    pub details: Vec<(String, serde_json::Value)>,
}

/// An actor's outbound-queue figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundReport {
    /// Messages waiting to be sent.
    pub queued: usize,
    /// Messages dropped because the queue was full, since the actor was created.
    pub dropped_total: u64,
    /// Messages sent again after their link ended before the server confirmed them, since
    /// the actor was created.
    pub resent_total: u64,
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
pub struct StatusRegistry {
    statuses: BTreeMap<String, ActorStatus>,
    metrics: Metrics,
}

impl StatusRegistry {
    /// An empty registry.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            statuses: BTreeMap::new(),
            metrics,
        }
    }

    fn entry(&mut self, name: &str, required_for_ready: bool) -> &mut ActorStatus {
        let entry = self
            .statuses
            .entry(name.to_owned())
            .or_insert_with(|| ActorStatus {
                name: name.to_owned(),
                state: ActorState::Starting,
                restarts: 0,
                last_error: None,
                last_activity: None,
                required_for_ready,
                queued: None,
                dropped: None,
                resent: None,
                details: BTreeMap::new(),
            });
        entry.required_for_ready |= required_for_ready;
        entry
    }

    fn record_outbound(&mut self, name: &str, report: OutboundReport) {
        let entry = self.entry(name, false);
        let dropped = grown(
            entry.dropped.replace(report.dropped_total),
            report.dropped_total,
        );
        let resent = grown(
            entry.resent.replace(report.resent_total),
            report.resent_total,
        );
        entry.queued = Some(report.queued);
        let connection = name.strip_prefix("chat:").unwrap_or(name);
        self.metrics
            .set_chat_outbound_queued(connection, report.queued);
        self.metrics.chat_outbound_dropped(connection, dropped);
        self.metrics.chat_outbound_resent(connection, resent);
    }
}

impl Actor for StatusRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Reports arrive from every actor; give the mailbox room for bursts at start-up.
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<ReportStatus> for StatusRegistry {
    type Result = ();

    fn handle(&mut self, msg: ReportStatus, _ctx: &mut Self::Context) {
        let entry = self.entry(&msg.name, msg.required_for_ready);
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
        entry.details.extend(msg.details);
        let up = entry.state == ActorState::Up;
        if let Some(outbound) = msg.outbound {
            self.record_outbound(&msg.name, outbound);
        }
        if let Some(conn) = msg.name.strip_prefix("chat:") {
            self.metrics.set_connection_up(conn, up);
        } else if msg.name == "stream_consumer" {
            self.metrics.set_connection_up("st2_stream", up);
        }
    }
}

impl Handler<Health> for StatusRegistry {
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

/// An actor's handle for reporting to the registry. Activity and outbound-queue reports
/// are throttled so a busy actor does not flood the registry's mailbox.
#[derive(Clone)]
pub struct StatusReporter {
    name: String,
    registry: Recipient<ReportStatus>,
    required_for_ready: bool,
    last_activity: Option<Instant>,
    /// Shared with the delayed task that sends figures the throttle held back.
    outbound: Arc<Mutex<OutboundThrottle>>,
    /// Likewise for actor-specific details.
    details: Arc<Mutex<DetailsThrottle>>,
}

/// Actor-specific details: at most one report per second, the latest value of each held
/// back until the window ends (so `/actors` is never left stale).
#[derive(Debug, Default)]
struct DetailsThrottle {
    sent_at: Option<Instant>,
    held: Vec<(String, serde_json::Value)>,
    flush_scheduled: bool,
}

impl DetailsThrottle {
    fn hold(&mut self, details: Vec<(String, serde_json::Value)>) {
        for (key, value) in details {
            match self.held.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => self.held.push((key, value)),
            }
        }
    }
}

const ACTIVITY_REPORT_EVERY: Duration = Duration::from_secs(1);
const OUTBOUND_REPORT_EVERY: Duration = Duration::from_secs(1);
const DETAILS_REPORT_EVERY: Duration = Duration::from_secs(1);

/// What to do with new outbound figures.
#[derive(Debug, PartialEq, Eq)]
enum Offer {
    /// Send them now.
    Send,
    /// Hold them; when `flush_after` is set, nothing will send them yet, so schedule a flush.
    Hold { flush_after: Option<Duration> },
    /// The registry already has them.
    Unchanged,
}

/// At most one report per window, except that a new drop total is sent at once; figures
/// held back are sent when the window ends, so the registry never keeps a stale depth
/// (e.g. a queue that filled up in a burst and then sat still while disconnected).
#[derive(Debug, Default)]
struct OutboundThrottle {
    sent: Option<OutboundReport>,
    sent_at: Option<Instant>,
    held: Option<OutboundReport>,
    flush_scheduled: bool,
}

impl OutboundThrottle {
    fn offer(&mut self, figures: OutboundReport, now: Instant) -> Offer {
        if self.sent == Some(figures) {
            self.held = None;
            return Offer::Unchanged;
        }
        let totals_changed = self.sent.is_none_or(|s| {
            s.dropped_total != figures.dropped_total || s.resent_total != figures.resent_total
        });
        let since = self.sent_at.map(|t| now.saturating_duration_since(t));
        if totals_changed || since.is_none_or(|d| d >= OUTBOUND_REPORT_EVERY) {
            self.mark_sent(figures, now);
            return Offer::Send;
        }
        self.held = Some(figures);
        if self.flush_scheduled {
            return Offer::Hold { flush_after: None };
        }
        self.flush_scheduled = true;
        Offer::Hold {
            flush_after: Some(OUTBOUND_REPORT_EVERY.saturating_sub(since.unwrap_or_default())),
        }
    }

    /// The held figures, now due (the scheduled flush ran).
    fn flush(&mut self, now: Instant) -> Option<OutboundReport> {
        self.flush_scheduled = false;
        let figures = self.held.take()?;
        self.mark_sent(figures, now);
        Some(figures)
    }

    fn mark_sent(&mut self, figures: OutboundReport, now: Instant) {
        self.sent = Some(figures);
        self.sent_at = Some(now);
        self.held = None;
    }
}

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
            outbound: Arc::default(),
            details: Arc::default(),
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
            outbound: None,
            details: Vec::new(),
        });
    }

    /// Records actor-specific figures shown in `/actors`. Cheap to call on every change:
    /// at most one report a second reaches the registry, and the latest figures always do.
    pub fn details(&self, details: Vec<(String, serde_json::Value)>) {
        let now = Instant::now();
        let mut throttle = self.details.lock();
        let since = throttle.sent_at.map(|t| now.saturating_duration_since(t));
        if since.is_none_or(|d| d >= DETAILS_REPORT_EVERY) {
            throttle.sent_at = Some(now);
            throttle.hold(details);
            let due = std::mem::take(&mut throttle.held);
            drop(throttle);
            self.registry
                .do_send(details_status(&self.name, self.required_for_ready, due));
            return;
        }
        throttle.hold(details);
        if std::mem::replace(&mut throttle.flush_scheduled, true) {
            return;
        }
        drop(throttle);
        let wait = DETAILS_REPORT_EVERY.saturating_sub(since.unwrap_or_default());
        let (shared, registry, name, required) = (
            Arc::clone(&self.details),
            self.registry.clone(),
            self.name.clone(),
            self.required_for_ready,
        );
        let flush = async move {
            tokio::time::sleep(wait).await;
            let due = {
                let mut throttle = shared.lock();
                throttle.flush_scheduled = false;
                throttle.sent_at = Some(Instant::now());
                std::mem::take(&mut throttle.held)
            };
            registry.do_send(details_status(&name, required, due));
        };
        if !actix_rt::Arbiter::try_current().is_some_and(|a| a.spawn(flush)) {
            // No arbiter to wait on (not the case inside the bridge): send them now.
            let due = {
                let mut throttle = self.details.lock();
                throttle.flush_scheduled = false;
                std::mem::take(&mut throttle.held)
            };
            self.registry
                .do_send(details_status(&self.name, self.required_for_ready, due));
        }
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

    /// Reports the outbound queue's figures. Cheap enough to call on every enqueue, drop
    /// and send: unchanged figures cost nothing, a new drop or resend total is sent at once,
    /// other changes at most once a second (the latest figures always arrive, at the end of
    /// that second).
    pub fn outbound(&mut self, figures: OutboundReport) {
        let offer = self.outbound.lock().offer(figures, Instant::now());
        match offer {
            Offer::Send => self.send_outbound(figures),
            Offer::Hold {
                flush_after: Some(delay),
            } => self.schedule_flush(delay),
            Offer::Hold { flush_after: None } | Offer::Unchanged => {}
        }
    }

    fn send_outbound(&self, figures: OutboundReport) {
        self.registry.do_send(outbound_status(
            &self.name,
            self.required_for_ready,
            figures,
        ));
    }

    fn schedule_flush(&self, delay: Duration) {
        let throttle = Arc::clone(&self.outbound);
        let registry = self.registry.clone();
        let report = {
            let name = self.name.clone();
            let required = self.required_for_ready;
            move |figures| outbound_status(&name, required, figures)
        };
        // A task of its own, not the actor's context: the figures must arrive even if the
        // actor is stopped and restarted (a lost connection) before the window ends.
        let flush = async move {
            tokio::time::sleep(delay).await;
            let due = throttle.lock().flush(Instant::now());
            if let Some(figures) = due {
                registry.do_send(report(figures));
            }
        };
        let scheduled = actix_rt::Arbiter::try_current().is_some_and(|a| a.spawn(flush));
        if !scheduled {
            // No arbiter to wait on (not the case inside the bridge): better early than never.
            let due = self.outbound.lock().flush(Instant::now());
            if let Some(figures) = due {
                self.send_outbound(figures);
            }
        }
    }
}

fn details_status(
    name: &str,
    required_for_ready: bool,
    details: Vec<(String, serde_json::Value)>,
) -> ReportStatus {
    ReportStatus {
        name: name.to_owned(),
        state: None,
        restarted: false,
        error: None,
        activity: false,
        required_for_ready,
        outbound: None,
        details,
    }
}

/// How much a running total grew since it was last `previous`. Connection actors keep their
/// queue across restarts, so a total only grows; should an actor ever be rebuilt and count
/// from zero again, all of its new total is new, and an exported counter must not go down.
fn grown(previous: Option<u64>, total: u64) -> u64 {
    total.checked_sub(previous.unwrap_or(0)).unwrap_or(total)
}

fn outbound_status(name: &str, required_for_ready: bool, figures: OutboundReport) -> ReportStatus {
    ReportStatus {
        name: name.to_owned(),
        state: None,
        restarted: false,
        error: None,
        activity: false,
        required_for_ready,
        outbound: Some(figures),
        details: Vec::new(),
    }
}

/// When a supervised connection connects: at once on its first start, after a capped,
/// jittered backoff on every restart. `actix::Supervisor` restarts a stopped actor at once,
/// so without this wait a server that refuses connections would be hammered in a loop.
#[derive(Debug, Clone)]
pub struct Reconnect {
    actor: String,
    backoff: crate::domain::backoff::Backoff,
    restarting: bool,
}

impl Reconnect {
    /// For the actor named `actor` (its `/actors` name), with its backoff policy.
    pub fn new(actor: impl Into<String>, backoff: crate::domain::backoff::Backoff) -> Self {
        Self {
            actor: actor.into(),
            backoff,
            restarting: false,
        }
    }

    /// Call from `Supervised::restarting`: the next start waits.
    pub fn restarting(&mut self) {
        self.restarting = true;
    }

    /// Call once connected: the next failure waits the shortest delay again.
    pub fn connected(&mut self) {
        self.backoff.reset();
    }

    /// Consecutive failed connections since the last success.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Call from `Actor::started`: how long to wait before connecting (zero on a first
    /// start; the next backoff step, logged, after a restart).
    pub fn delay(&mut self) -> Duration {
        if !std::mem::take(&mut self.restarting) {
            return Duration::ZERO;
        }
        let delay = self.backoff.next_delay();
        tracing::debug!(actor = %self.actor, delay_ms = delay.as_millis() as u64, "reconnecting after backoff");
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(queued: usize, dropped_total: u64) -> OutboundReport {
        OutboundReport {
            queued,
            dropped_total,
            resent_total: 0,
        }
    }

    #[test]
    fn the_outbound_throttle_sends_drops_at_once_and_holds_the_rest_for_the_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = OutboundThrottle::default();
        assert_eq!(t.offer(figures(0, 0), t0), Offer::Send, "the first report");
        assert_eq!(t.offer(figures(0, 0), t0 + ms(10)), Offer::Unchanged);
        assert_eq!(
            t.offer(figures(1, 0), t0 + ms(100)),
            Offer::Hold {
                flush_after: Some(ms(900))
            },
            "a depth change inside the window waits for its end"
        );
        assert_eq!(
            t.offer(figures(2, 0), t0 + ms(200)),
            Offer::Hold { flush_after: None },
            "one flush is enough"
        );
        assert_eq!(t.flush(t0 + ms(1000)), Some(figures(2, 0)), "the latest");
        assert_eq!(t.flush(t0 + ms(1001)), None);

        assert_eq!(
            t.offer(figures(2, 1), t0 + ms(1100)),
            Offer::Send,
            "a new drop total never waits"
        );
        assert_eq!(
            t.offer(figures(3, 1), t0 + ms(1200)),
            Offer::Hold {
                flush_after: Some(ms(900))
            }
        );
        assert_eq!(
            t.offer(figures(3, 2), t0 + ms(1300)),
            Offer::Send,
            "a drop while figures are held sends the latest at once"
        );
        assert_eq!(t.flush(t0 + ms(2100)), None, "nothing left to flush");
        assert_eq!(
            t.offer(figures(2, 2), t0 + ms(2400)),
            Offer::Send,
            "after the window a change goes out at once"
        );
        // Back to what the registry has before the flush: nothing to send.
        assert!(matches!(
            t.offer(figures(1, 2), t0 + ms(2500)),
            Offer::Hold { .. }
        ));
        assert_eq!(t.offer(figures(2, 2), t0 + ms(2600)), Offer::Unchanged);
        assert_eq!(t.flush(t0 + ms(3400)), None);
    }

    async fn actor(registry: &Addr<StatusRegistry>, name: &str) -> ActorStatus {
        let report = registry.send(Health).await.expect("registry answers");
        report
            .actors
            .into_iter()
            .find(|a| a.name == name)
            .expect("actor listed")
    }

    #[actix_rt::test]
    async fn outbound_figures_reach_actors_and_metrics() {
        let metrics = Metrics::new();
        let registry = StatusRegistry::new(metrics.clone()).start();
        let mut reporter = StatusReporter::new("chat:mm", registry.clone().recipient(), true);
        let _other = StatusReporter::new("alias_cache", registry.clone().recipient(), true);
        reporter.outbound(figures(1, 0));
        reporter.outbound(figures(2, 0));
        reporter.outbound(figures(2, 1));

        let mm = actor(&registry, "chat:mm").await;
        assert_eq!((mm.queued, mm.dropped), (Some(2), Some(1)));
        let text = metrics.render();
        assert!(
            text.contains(r#"stormbridge_chat_outbound_dropped_total{connection="mm"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"stormbridge_chat_outbound_queued{connection="mm"} 2"#));

        // A resend is sent at once too, like a drop.
        reporter.outbound(OutboundReport {
            resent_total: 3,
            ..figures(2, 1)
        });
        let mm = actor(&registry, "chat:mm").await;
        assert_eq!(mm.resent, Some(3));
        assert!(metrics
            .render()
            .contains(r#"stormbridge_chat_outbound_resent_total{connection="mm"} 3"#));

        let json = serde_json::to_value(actor(&registry, "alias_cache").await).unwrap();
        assert!(
            json.get("queued").is_none() && json.get("dropped").is_none(),
            "only actors with a queue show one: {json}"
        );
        let json = serde_json::to_value(mm).unwrap();
        assert_eq!(
            (
                json["queued"].as_u64(),
                json["dropped"].as_u64(),
                json["resent"].as_u64()
            ),
            (Some(2), Some(1), Some(3))
        );

        // Drained inside the throttle window: the registry still learns it, at the window's end.
        reporter.outbound(figures(0, 1));
        let deadline = Instant::now() + Duration::from_secs(5);
        while actor(&registry, "chat:mm").await.queued != Some(0) {
            assert!(Instant::now() < deadline, "the held depth was never sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(metrics
            .render()
            .contains(r#"stormbridge_chat_outbound_queued{connection="mm"} 0"#));
    }

    #[actix_rt::test]
    async fn the_dropped_counter_never_goes_down() {
        let metrics = Metrics::new();
        let registry = StatusRegistry::new(metrics.clone()).start();
        let report = |dropped_total| outbound_status("chat:irc", true, figures(0, dropped_total));
        registry.send(report(3)).await.unwrap();
        registry.send(report(5)).await.unwrap();
        // A rebuilt actor starting again from zero.
        registry.send(report(1)).await.unwrap();
        assert_eq!(actor(&registry, "chat:irc").await.dropped, Some(1));
        assert!(metrics
            .render()
            .contains(r#"stormbridge_chat_outbound_dropped_total{connection="irc"} 6"#));
    }

    #[test]
    fn reconnects_wait_only_after_a_restart_and_back_off_until_connected() {
        use crate::domain::backoff::Backoff;
        let mut r = Reconnect::new(
            "chat:x",
            Backoff::new(Duration::from_millis(100), Duration::from_millis(400)),
        );
        assert_eq!(r.delay(), Duration::ZERO, "first start connects at once");
        r.restarting();
        let first = r.delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        assert_eq!(r.delay(), Duration::ZERO, "one wait per restart");
        for _ in 0..5 {
            r.restarting();
            assert!(r.delay() <= Duration::from_millis(400), "capped");
        }
        assert_eq!(r.failures(), 6);
        r.connected();
        assert_eq!(r.failures(), 0);
    }
}
