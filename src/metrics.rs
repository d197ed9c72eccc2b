//! Prometheus metrics, one registry per running bridge (so tests can run several bridges
//! in one process and read each one's numbers).

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// How a chat command ended, the `outcome` label of `stormbridge_commands_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// An execution was created.
    Executed,
    /// StackStorm refused or failed the request.
    St2Error,
    /// No alias matched.
    NoMatch,
    /// Several aliases matched equally; the user was asked.
    Ambiguous,
    /// The alias's name is shared by several packs and StackStorm might run the wrong one,
    /// so nothing was sent.
    AliasCollision,
    /// A built-in command was answered.
    Builtin,
    /// The command was malformed or unknown.
    Invalid,
    /// Access control refused it.
    Denied,
    /// Client-side mode, and the user has no usable session.
    NoSession,
    /// Held for a confirmation or an approval (`[confirm]`).
    Held,
}

impl CommandOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::St2Error => "st2_error",
            Self::NoMatch => "no_match",
            Self::Ambiguous => "ambiguous",
            Self::AliasCollision => "alias_collision",
            Self::Builtin => "builtin",
            Self::Invalid => "invalid",
            Self::Denied => "denied",
            Self::NoSession => "no_session",
            Self::Held => "held",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AclLabels {
    decision: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Where a delivered result came from, the `source` label of
/// `stormbridge_results_delivered_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultSource {
    /// StackStorm's announcement on the event stream.
    Stream,
    /// Fetched from the API and rendered by the bridge (the announcement was lost or late).
    Reconciliation,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeldLabels {
    connection: String,
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
}

struct Inner {
    registry: Registry,
    commands: Family<OutcomeLabels, Counter>,
    announcements_delivered: Counter,
    announcements_dropped: Counter,
    stream_reconnects: Counter,
    stream_gaps: Counter,
    stream_refreshes: Counter,
    results_delivered: Family<SourceLabels, Counter>,
    results_duplicates: Counter,
    results_expired: Family<ReasonLabels, Counter>,
    results_pending: Gauge,
    announcements_ignored: Family<ReasonLabels, Counter>,
    st2_request_seconds: Family<EndpointLabels, Histogram>,
    aliases: Gauge,
    connection_up: Family<ConnectionLabels, Gauge>,
    chat_outbound_dropped: Family<ConnectionLabels, Counter>,
    chat_outbound_resent: Family<ConnectionLabels, Counter>,
    chat_outbound_queued: Family<ConnectionLabels, Gauge>,
    connection_lease_held: Family<ConnectionLabels, Gauge>,
    store_reachable: Family<StoreLabels, Gauge>,
    webhooks_held: Family<HeldLabels, Counter>,
    acl_decisions: Family<AclLabels, Counter>,
    waiting_decisions: Family<EventLabels, Counter>,
    commands_waiting: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

/// The bridge's metrics; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 15,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric described.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("stormbridge");
        let commands = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "commands",
            "Chat commands handled, by outcome",
            commands.clone(),
        );
        let announcements_delivered = Counter::default();
        registry.register(
            "announcements_delivered",
            "StackStorm announcements handed to a chat connection",
            announcements_delivered.clone(),
        );
        let announcements_dropped = Counter::default();
        registry.register(
            "announcements_dropped",
            "Stream events that could not be decoded or routed (logged, skipped)",
            announcements_dropped.clone(),
        );
        let stream_reconnects = Counter::default();
        registry.register(
            "stream_reconnects",
            "Times the StackStorm stream connection was reopened after a failure",
            stream_reconnects.clone(),
        );
        let stream_gaps = Counter::default();
        registry.register(
            "stream_gaps",
            "Times the StackStorm stream was lost or replaced, so announcements may have been missed (results owed are then fetched from the API)",
            stream_gaps.clone(),
        );
        let stream_refreshes = Counter::default();
        registry.register(
            "stream_refreshes",
            "Times a silent stream was replaced by a new one opened before it was dropped",
            stream_refreshes.clone(),
        );
        let results_delivered = Family::<SourceLabels, Counter>::default();
        registry.register(
            "results_delivered",
            "Command results handed to chat, by source: stream (StackStorm's announcement) or reconciliation (fetched from the API after a gap or a late announcement)",
            results_delivered.clone(),
        );
        let results_duplicates = Counter::default();
        registry.register(
            "results_duplicates",
            "Second copies of a command's result that were dropped instead of posted",
            results_duplicates.clone(),
        );
        let results_expired = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "results_expired",
            "Commands whose result was given up, by reason (ttl, overflow, gone, unknown_outcome)",
            results_expired.clone(),
        );
        let waiting_decisions = Family::<EventLabels, Counter>::default();
        registry.register(
            "waiting_decisions",
            "Commands held for a confirmation or an approval, by event (asked, confirmed, approved, aborted, denied, expired, refused: a decision someone was not allowed to take)",
            waiting_decisions.clone(),
        );
        let commands_waiting = Gauge::default();
        registry.register(
            "commands_waiting",
            "Commands waiting for a confirmation or an approval",
            commands_waiting.clone(),
        );
        let results_pending = Gauge::default();
        registry.register(
            "results_pending",
            "Commands whose result has not been delivered yet",
            results_pending.clone(),
        );
        let announcements_ignored = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "announcements_ignored",
            "Announcements left alone on purpose, by reason (other_bot: the result of another bot's command on a shared route; overlap: a copy seen on both streams while one replaced the other)",
            announcements_ignored.clone(),
        );
        let st2_request_seconds = Family::<EndpointLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "st2_request_seconds",
            "Latency of StackStorm API requests, by endpoint",
            st2_request_seconds.clone(),
        );
        let aliases = Gauge::default();
        registry.register("aliases", "Action aliases in the cache", aliases.clone());
        let connection_up = Family::<ConnectionLabels, Gauge>::default();
        registry.register(
            "connection_up",
            "1 when a connection (chat or the StackStorm stream) is up, 0 when not",
            connection_up.clone(),
        );
        let chat_outbound_dropped = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "chat_outbound_dropped",
            "Outbound chat messages dropped, oldest first, because a connection's queue was full",
            chat_outbound_dropped.clone(),
        );
        let chat_outbound_resent = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "chat_outbound_resent",
            "Outbound chat messages written into a link that ended before the server confirmed them, sent again on the next (IRC, XMPP)",
            chat_outbound_resent.clone(),
        );
        let chat_outbound_queued = Family::<ConnectionLabels, Gauge>::default();
        registry.register(
            "chat_outbound_queued",
            "Outbound chat messages waiting in a connection's queue (disconnected or rate-limited)",
            chat_outbound_queued.clone(),
        );
        let connection_lease_held = Family::<ConnectionLabels, Gauge>::default();
        registry.register(
            "connection_lease_held",
            "With the Redis store: 1 when this process holds a chat connection's lease (it runs the connection), 0 when it stands by; summed over the processes, 1 per connection",
            connection_lease_held.clone(),
        );
        let store_reachable = Family::<StoreLabels, Gauge>::default();
        registry.register(
            "store_reachable",
            "1 while the shared store answers, 0 while it does not (Redis: read from the leases' calls, every lease_ttl / 3 seconds; chat connections stop when it stays unreachable)",
            store_reachable.clone(),
        );
        let webhooks_held = Family::<HeldLabels, Counter>::default();
        registry.register(
            "webhooks_held",
            "With the Redis store: a platform's requests that came while no process could take them, by event (held in Redis for the connection's next holder; refused: too many or too large, answered 503; handled by the holder; dropped: too old or unreadable)",
            webhooks_held.clone(),
        );
        let acl_decisions = Family::<AclLabels, Counter>::default();
        registry.register(
            "acl_decisions",
            "Access-control decisions, by decision and by what decided (rule, default, admin_floor)",
            acl_decisions.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            commands,
            announcements_delivered,
            announcements_dropped,
            stream_reconnects,
            stream_gaps,
            stream_refreshes,
            results_delivered,
            results_duplicates,
            results_expired,
            results_pending,
            announcements_ignored,
            st2_request_seconds,
            aliases,
            connection_up,
            chat_outbound_dropped,
            chat_outbound_resent,
            chat_outbound_queued,
            connection_lease_held,
            store_reachable,
            webhooks_held,
            acl_decisions,
            waiting_decisions,
            commands_waiting,
        }))
    }

    /// Counts a command by outcome.
    pub fn command(&self, outcome: CommandOutcome) {
        self.0
            .commands
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts a delivered announcement.
    pub fn announcement_delivered(&self) {
        self.0.announcements_delivered.inc();
    }

    /// Counts a stream event that was skipped.
    pub fn announcement_dropped(&self) {
        self.0.announcements_dropped.inc();
    }

    /// Counts a gap in the stream's coverage.
    pub fn stream_gap(&self) {
        self.0.stream_gaps.inc();
    }

    /// Counts a make-before-break replacement of a silent stream.
    pub fn stream_refresh(&self) {
        self.0.stream_refreshes.inc();
    }

    /// Counts a command result handed to chat.
    pub fn result_delivered(&self, source: ResultSource) {
        let source = match source {
            ResultSource::Stream => "stream",
            ResultSource::Reconciliation => "reconciliation",
        };
        self.0
            .results_delivered
            .get_or_create(&SourceLabels { source })
            .inc();
    }

    /// Counts a dropped second copy of a result.
    pub fn result_duplicate(&self) {
        self.0.results_duplicates.inc();
    }

    /// Counts an event of a command held for a decision (`asked`, `confirmed`, …).
    pub fn waiting_decision(&self, event: &'static str) {
        self.0
            .waiting_decisions
            .get_or_create(&EventLabels { event })
            .inc();
    }

    /// Sets the number of commands waiting for a decision.
    pub fn set_commands_waiting(&self, waiting: usize) {
        self.0
            .commands_waiting
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    /// Counts a result given up.
    pub fn result_expired(&self, reason: &'static str) {
        self.0
            .results_expired
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Sets the number of results still owed.
    pub fn set_results_pending(&self, pending: usize) {
        self.0
            .results_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    /// Counts an announcement left alone on purpose.
    pub fn announcement_ignored(&self, reason: &'static str) {
        self.0
            .announcements_ignored
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a stream reconnect.
    pub fn stream_reconnect(&self) {
        self.0.stream_reconnects.inc();
    }

    /// Records the latency of one StackStorm request.
    pub fn st2_request(&self, endpoint: &'static str, elapsed: Duration) {
        self.0
            .st2_request_seconds
            .get_or_create(&EndpointLabels { endpoint })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the alias count.
    pub fn set_aliases(&self, count: usize) {
        self.0.aliases.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Marks a connection up or down.
    pub fn set_connection_up(&self, connection: &str, up: bool) {
        self.0
            .connection_up
            .get_or_create(&ConnectionLabels {
                connection: connection.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Records whether this process holds `connection`'s lease (Redis store).
    pub fn set_connection_lease_held(&self, connection: &str, held: bool) {
        self.0
            .connection_lease_held
            .get_or_create(&ConnectionLabels {
                connection: connection.to_owned(),
            })
            .set(i64::from(held));
    }

    /// Counts a request held for `connection`'s next holder, by `event` (`held`, `refused`,
    /// `handled`, `dropped`).
    pub fn webhook_held(&self, connection: &str, event: &'static str) {
        self.0
            .webhooks_held
            .get_or_create(&HeldLabels {
                connection: connection.to_owned(),
                event,
            })
            .inc();
    }

    /// Records whether the shared store (`"redis"`) answers.
    pub fn set_store_reachable(&self, store: &'static str, reachable: bool) {
        self.0
            .store_reachable
            .get_or_create(&StoreLabels { store })
            .set(i64::from(reachable));
    }

    /// Adds `count` messages dropped from a chat connection's full outbound queue (0 still
    /// creates the series, so it reads 0 rather than missing before the first drop).
    pub fn chat_outbound_dropped(&self, connection: &str, count: u64) {
        self.0
            .chat_outbound_dropped
            .get_or_create(&ConnectionLabels {
                connection: connection.to_owned(),
            })
            .inc_by(count);
    }

    /// Counts `count` messages a chat connection sent again after their link ended before
    /// the server confirmed them.
    pub fn chat_outbound_resent(&self, connection: &str, count: u64) {
        self.0
            .chat_outbound_resent
            .get_or_create(&ConnectionLabels {
                connection: connection.to_owned(),
            })
            .inc_by(count);
    }

    /// Sets how many messages wait in a chat connection's outbound queue.
    pub fn set_chat_outbound_queued(&self, connection: &str, queued: usize) {
        self.0
            .chat_outbound_queued
            .get_or_create(&ConnectionLabels {
                connection: connection.to_owned(),
            })
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
    }

    /// Counts an access-control decision.
    pub fn acl_decision(&self, allowed: bool, reason: &'static str) {
        self.0
            .acl_decisions
            .get_or_create(&AclLabels {
                decision: if allowed { "allow" } else { "deny" },
                reason,
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.0.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new();
        m.command(CommandOutcome::Executed);
        m.st2_request("aliasexecution", Duration::from_millis(3));
        m.set_connection_up("console", true);
        m.set_aliases(7);
        let text = m.render();
        assert!(
            text.contains(r#"stormbridge_commands_total{outcome="executed"} 1"#),
            "{text}"
        );
        assert!(text.contains("stormbridge_aliases 7"));
        assert!(text.contains(r#"stormbridge_connection_up{connection="console"} 1"#));
        assert!(text.contains("stormbridge_st2_request_seconds_bucket"));
        assert!(text.contains("stormbridge_stream_reconnects_total 0"));
    }

    #[test]
    fn outbound_queue_series_per_connection() {
        let m = Metrics::new();
        m.chat_outbound_dropped("mm", 0);
        m.set_chat_outbound_queued("mm", 2);
        let text = m.render();
        assert!(
            text.contains(r#"stormbridge_chat_outbound_dropped_total{connection="mm"} 0"#),
            "a connection that never dropped reads 0: {text}"
        );
        assert!(text.contains("# TYPE stormbridge_chat_outbound_dropped counter"));
        assert!(text.contains("# TYPE stormbridge_chat_outbound_queued gauge"));
        m.chat_outbound_dropped("mm", 3);
        m.chat_outbound_dropped("mm", 1);
        m.chat_outbound_dropped("irc", 1);
        m.set_chat_outbound_queued("mm", 0);
        let text = m.render();
        assert!(text.contains(r#"stormbridge_chat_outbound_dropped_total{connection="mm"} 4"#));
        assert!(text.contains(r#"stormbridge_chat_outbound_dropped_total{connection="irc"} 1"#));
        assert!(text.contains(r#"stormbridge_chat_outbound_queued{connection="mm"} 0"#));
    }

    #[test]
    fn lease_and_store_series_appear_only_once_a_shared_store_sets_them() {
        let m = Metrics::new();
        let text = m.render();
        assert!(
            !text.contains("stormbridge_store_reachable{"),
            "a bridge without Redis shows no reachability to alert on: {text}"
        );
        m.set_connection_lease_held("mm", true);
        m.set_connection_lease_held("irc", false);
        m.set_store_reachable("redis", false);
        let text = m.render();
        assert!(text.contains(r#"stormbridge_connection_lease_held{connection="mm"} 1"#));
        assert!(text.contains(r#"stormbridge_connection_lease_held{connection="irc"} 0"#));
        assert!(text.contains(r#"stormbridge_store_reachable{store="redis"} 0"#));
    }
}
