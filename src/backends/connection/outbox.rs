//! A chat connection's outbound queue.
//!
//! Platforms take one HTTP request or one written line per message, answer 429 with a
//! delay, and fail now and then; replies must still arrive complete and in order. The
//! bookkeeping for that is the same on every platform, so it lives here, free of actix and
//! HTTP.
//!
//! Messages wait in one lane per destination (a channel, a direct chat): each lane sends in
//! order, one message at a time, while different destinations send concurrently (up to
//! `max_in_flight`), because the platforms limit posting per channel (Slack, Discord) and
//! a busy room must not hold up the others. Pacing is a token bucket for the whole
//! connection (what the server counts: IRC lines, Mattermost's per-user limit, Discord's
//! global limit) and, where the platform limits each channel, one per lane: a token bucket,
//! or sliding windows where the platform counts several at once (Teams). The queue is
//! bounded as a whole: when it is full the oldest message, in whichever lane, is dropped
//! (and counted), since the newest replies are the ones people wait for. A 429 pauses the
//! lane (or the whole connection, where the platform's limit is per account); a network or
//! server error pauses the whole connection for a backoff, and the message stays first in
//! its lane.
//!
//! The connection actor drives it: it asks [`Outbox::next`] what to do, sends the item it
//! gets, and hands the result to [`Outbox::finish`], which says when to ask again.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use super::{
    error::ConnectionError,
    pacing::{FloodGate, Limiter, SlidingWindows, Window},
};
use crate::{
    actors::status::{OutboundReport, StatusReporter},
    domain::{backoff::Backoff, message::Target},
};

/// Longest wait a rate limit can impose before the next attempt: a server asking for more
/// (or a reset header read against a skewed clock) must not silence the bridge for hours.
pub const MAX_RATE_WAIT: Duration = Duration::from_secs(300);

/// First retry delay after a failed send; short, because most failures are one-off.
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest retry delay: a platform that is down for long is still tried every few seconds,
/// so queued replies go out soon after it is back.
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Where a queued message goes on a REST platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A room or channel id (Matrix also takes an alias, resolved when sent).
    Room(String),
    /// A user: their direct conversation with the bot, found or opened when sent.
    User(String),
}

impl Dest {
    /// The destination of a delivery and the thread to answer in (none for a user).
    pub fn of(target: Target) -> (Dest, Option<String>) {
        match target {
            Target::Room { id, thread, .. } => (Dest::Room(id), thread),
            Target::User { id } => (Dest::User(id), None),
        }
    }

    /// The lane key of this destination.
    pub fn lane(&self) -> String {
        match self {
            Dest::Room(id) => format!("room:{id}"),
            Dest::User(id) => format!("user:{id}"),
        }
    }
}

/// A token bucket's shape: `burst` sends at once, then one per `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Sends allowed at once.
    pub burst: u32,
    /// One more send per this long.
    pub interval: Duration,
}

impl Pace {
    /// One send per `interval`, no burst.
    pub fn every(interval: Duration) -> Self {
        Self { burst: 1, interval }
    }

    /// No pacing worth the name: for a local terminal.
    pub fn unlimited() -> Self {
        Self {
            burst: u32::MAX,
            interval: Duration::from_millis(1),
        }
    }

    fn gate(self, now: Instant) -> FloodGate {
        FloodGate::new(self.burst, self.interval, now)
    }
}

/// How each destination is paced, where the platform limits each channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationPace {
    /// A token bucket (Slack, Discord, Webex).
    Bucket(Pace),
    /// Sliding windows, all at once: a send goes when every window has room (Teams' four
    /// per-conversation limits).
    Windows(&'static [Window]),
}

impl From<Pace> for DestinationPace {
    fn from(pace: Pace) -> Self {
        DestinationPace::Bucket(pace)
    }
}

impl DestinationPace {
    fn limiter(self, now: Instant) -> Limiter {
        match self {
            DestinationPace::Bucket(pace) => Limiter::Bucket(pace.gate(now)),
            DestinationPace::Windows(windows) => Limiter::Windows(SlidingWindows::new(windows)),
        }
    }
}

/// How a connection's queue sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Messages kept while down or rate-limited, in all lanes together (`queue_size`).
    pub capacity: usize,
    /// Pacing of the whole connection.
    pub pace: Pace,
    /// Pacing of each destination, where the platform limits each channel.
    pub per_destination: Option<DestinationPace>,
    /// Sends under way at once, to different destinations (1: strictly one at a time).
    pub max_in_flight: usize,
    /// A 429 (or a used-up window) holds only its destination (the platform limits each
    /// channel); otherwise the whole connection (the platform limits the account).
    pub limits_per_destination: bool,
}

impl QueuePolicy {
    /// One message at a time, `pace` apart: the policy of a platform that counts
    /// everything the connection sends (IRC lines, XMPP stanzas).
    pub fn serial(capacity: usize, pace: Pace) -> Self {
        Self {
            capacity,
            pace,
            per_destination: None,
            max_in_flight: 1,
            limits_per_destination: false,
        }
    }
}

/// What the actor should do now, from [`Outbox::next`].
#[derive(Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// Send this item of this lane, then report how it went with [`Outbox::finish`].
    Send(String, T),
    /// Nothing may go out before this long (pacing or a rate limit).
    Wait(Duration),
    /// Nothing to do: the queue is empty or everything sendable is in flight. Whatever
    /// changes that (a new message, a finished send) pumps again, so no timer is needed.
    Idle,
}

/// How a send ended, in terms every platform shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The platform has the message; `pause` when its rate-limit headers say the window
    /// is used up, so the next send would only earn a 429.
    Sent {
        /// How long to hold the lane (or the connection) before the next send.
        pause: Option<Duration>,
    },
    /// 429: send the same message again after the delay.
    RateLimited(Duration),
    /// Network error or a server error: send the same message again after a backoff.
    Retry(ConnectionError),
    /// The platform refused the message for good (forbidden, unknown channel, …): drop it
    /// rather than block everything behind it.
    Rejected(ConnectionError),
}

/// One destination's messages.
#[derive(Debug)]
struct Lane<T> {
    /// Waiting messages with their sequence numbers (the oldest overall is dropped first).
    queue: VecDeque<(u64, T)>,
    /// A send of this lane is under way.
    busy: bool,
    /// This destination's own pacing, where there is one.
    pace: Option<Limiter>,
    /// A rate limit of this destination.
    paused_until: Option<Instant>,
}

/// A connection's outbound queue; `T` is the platform's queued message.
#[derive(Debug)]
pub struct Outbox<T> {
    /// The connection's name, for logs.
    connection: String,
    /// The platform's word in log messages (`mattermost`, `discord`, `matrix`).
    platform: &'static str,
    policy: QueuePolicy,
    lanes: HashMap<String, Lane<T>>,
    /// Lanes in the order they are served (round robin).
    order: VecDeque<String>,
    /// The whole connection's pacing.
    pace: FloodGate,
    /// A rate limit or retry backoff of the whole connection.
    paused_until: Option<Instant>,
    backoff: Backoff,
    /// After a 429 for the whole account: the server's delay, kept as the gap between sends
    /// (one at a time) until the queue is empty, so the next sends do not earn 429s too.
    careful: Option<Duration>,
    waiting: usize,
    in_flight: usize,
    dropped: u64,
    /// Messages sent again after their link ended unconfirmed ([`Outbox::resend`]).
    resent: u64,
    next_seq: u64,
}

impl<T> Outbox<T> {
    /// An empty outbox for the connection `connection` on `platform`.
    pub fn new(connection: impl Into<String>, platform: &'static str, policy: QueuePolicy) -> Self {
        let policy = QueuePolicy {
            capacity: policy.capacity.max(1),
            max_in_flight: policy.max_in_flight.max(1),
            ..policy
        };
        Self {
            connection: connection.into(),
            platform,
            pace: policy.pace.gate(Instant::now()),
            policy,
            lanes: HashMap::new(),
            order: VecDeque::new(),
            paused_until: None,
            backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
            careful: None,
            waiting: 0,
            in_flight: 0,
            dropped: 0,
            resent: 0,
            next_seq: 0,
        }
    }

    fn lane(&mut self, key: &str) -> &mut Lane<T> {
        if !self.lanes.contains_key(key) {
            let pace = self
                .policy
                .per_destination
                .map(|p| p.limiter(Instant::now()));
            self.lanes.insert(
                key.to_owned(),
                Lane {
                    queue: VecDeque::new(),
                    busy: false,
                    pace,
                    paused_until: None,
                },
            );
            if !self.order.iter().any(|k| k == key) {
                self.order.push_back(key.to_owned());
            }
        }
        self.lanes.get_mut(key).expect("just inserted")
    }

    /// Forgets every waiting message (not those in flight), and the pauses and pacing of
    /// lanes with nothing in flight: the connection passed to another bridge process.
    pub fn clear(&mut self) {
        self.lanes.retain(|_, lane| {
            lane.queue.clear();
            lane.busy
        });
        self.order.retain(|key| self.lanes.contains_key(key));
        self.waiting = 0;
    }

    /// Drops the oldest waiting message of all lanes (and counts and logs it).
    fn drop_oldest(&mut self) {
        let oldest = self
            .lanes
            .iter()
            .filter_map(|(k, l)| l.queue.front().map(|(seq, _)| (*seq, k.clone())))
            .min();
        if let Some((_, key)) = oldest {
            if let Some(lane) = self.lanes.get_mut(&key) {
                lane.queue.pop_front();
                self.waiting -= 1;
            }
            self.dropped += 1;
            tracing::warn!(
                connection = %self.connection,
                dropped_total = self.dropped,
                capacity = self.policy.capacity,
                "{} outbound queue full; dropped the oldest message",
                self.platform
            );
        }
    }

    /// Queues a message last in its destination's lane; when the queue is full, the oldest
    /// waiting message is dropped (and counted, and logged).
    pub fn push(&mut self, lane: &str, item: T) {
        while self.waiting >= self.policy.capacity {
            self.drop_oldest();
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.lane(lane).queue.push_back((seq, item));
        self.waiting += 1;
    }

    /// Puts a message that must be tried again first in its lane — unless the queue filled
    /// up meanwhile: then it is the oldest message, and goes as an overflow would.
    fn requeue(&mut self, lane: &str, item: T) {
        if self.waiting >= self.policy.capacity {
            self.dropped += 1;
            tracing::warn!(
                connection = %self.connection,
                dropped_total = self.dropped,
                capacity = self.policy.capacity,
                "{} outbound queue full; dropped the oldest message",
                self.platform
            );
            return;
        }
        // The oldest sequence number: it is older than anything queued after it.
        self.lane(lane).queue.push_front((0, item));
        self.waiting += 1;
    }

    /// Ends a send: the lane may send again. An empty lane is forgotten (its key in the
    /// round robin lapses at its next turn) once its pacing remembers nothing that still
    /// counts — a refilled bucket; sliding windows with no send left in the longest (an hour
    /// on Teams), since forgetting a counted send could let a later burst exceed them: a
    /// room that spoke once costs nothing after that.
    fn done(&mut self, lane: &str) {
        if let Some(l) = self.lanes.get_mut(lane) {
            if std::mem::take(&mut l.busy) {
                self.in_flight -= 1;
            }
            let idle = l.queue.is_empty()
                && l.paused_until.is_none()
                && l.pace.as_ref().is_none_or(Limiter::is_rested);
            if idle {
                self.lanes.remove(lane);
            }
        }
    }

    /// Holds `lane`, or the whole connection where the platform limits the account, until
    /// `until`.
    fn pause(&mut self, lane: &str, until: Instant) {
        if self.policy.limits_per_destination {
            if let Some(l) = self.lanes.get_mut(lane) {
                l.paused_until = Some(until);
            }
        } else {
            self.paused_until = Some(until);
        }
    }

    /// Takes back the result of a send [`Outbox::next`] started and returns how long to
    /// wait before asking [`Outbox::next`] again (zero: ask now; pacing is applied there).
    /// `item` is the message that was sent; it goes back to the front of its lane when it
    /// must be tried again, so order is kept.
    pub fn finish(&mut self, lane: &str, item: T, outcome: Outcome, now: Instant) -> Duration {
        self.done(lane);
        match outcome {
            Outcome::Sent { pause } => {
                self.backoff.reset();
                if self.waiting == 0 && self.in_flight == 0 {
                    self.careful = None;
                }
                let pause = match (pause, self.careful) {
                    (Some(p), Some(c)) => Some(p.max(c)),
                    (p, c) => p.or(c),
                };
                match pause {
                    Some(pause) => {
                        tracing::debug!(connection = %self.connection, pause_ms = pause.as_millis() as u64, "rate-limit window used up; pausing");
                        let pause = pause.min(MAX_RATE_WAIT);
                        self.pause(lane, now + pause);
                        pause
                    }
                    None => Duration::ZERO,
                }
            }
            Outcome::RateLimited(delay) => {
                let delay = delay.min(MAX_RATE_WAIT);
                tracing::info!(connection = %self.connection, delay_ms = delay.as_millis() as u64, "{} rate limit; retrying later", self.platform);
                self.requeue(lane, item);
                self.pause(lane, now + delay);
                if !self.policy.limits_per_destination {
                    // Refused again while careful: the gap was too short, widen it.
                    self.careful = Some(match self.careful {
                        Some(gap) => gap.max(delay).mul_f64(1.1).min(MAX_RATE_WAIT),
                        None => delay,
                    });
                }
                delay
            }
            Outcome::Retry(error) => {
                let delay = self.backoff.next_delay();
                tracing::warn!(connection = %self.connection, error = %error, delay_ms = delay.as_millis() as u64, "{} send failed; retrying", self.platform);
                self.requeue(lane, item);
                // Nothing goes out before the retry: the platform is failing, and the
                // order of replies is kept.
                self.paused_until = Some(now + delay);
                delay
            }
            Outcome::Rejected(error) => {
                tracing::warn!(connection = %self.connection, error = %error, "{} refused a message; dropped it", self.platform);
                Duration::ZERO
            }
        }
    }

    /// Ends a send by putting `item` (perhaps changed) back first in its lane, without
    /// touching the backoff or the pauses; returns zero (ask again now).
    pub fn put_back(&mut self, lane: &str, item: T) -> Duration {
        self.done(lane);
        self.requeue(lane, item);
        Duration::ZERO
    }

    /// Messages waiting to be sent, not counting those in flight.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Messages the platform does not have yet: those in flight count until they are sent.
    pub fn queued(&self) -> usize {
        self.waiting + self.in_flight
    }

    /// Messages dropped because the queue was full, since the connection was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Messages sent again after their link ended before the server confirmed them, since
    /// the connection was created.
    pub fn resent(&self) -> u64 {
        self.resent
    }

    /// Ends the send of `item`, written on a link that ended before the server confirmed
    /// it, by putting it back first in its lane for the next link, counted, without the
    /// send backoff (the reconnect has its own, and every lane waiting on that link is told
    /// at once: one backoff step each would add up to a long pause); returns zero.
    pub fn resend(&mut self, lane: &str, item: T) -> Duration {
        self.resent += 1;
        tracing::debug!(connection = %self.connection, "a message the server had not confirmed when the link ended goes again on the next link");
        self.put_back(lane, item)
    }

    /// Sends the queue's figures to the registry (`/actors`, `/metrics`).
    pub fn report(&self, status: &mut StatusReporter) {
        status.outbound(OutboundReport {
            queued: self.queued(),
            dropped_total: self.dropped,
            resent_total: self.resent,
        });
    }

    /// What to do at `now`: send the oldest message of the next lane that may send (it is
    /// in flight until [`Outbox::finish`]), wait for pacing or a rate limit, or nothing.
    /// The actor checks first that its connection is up, and asks again after each send.
    pub fn next(&mut self, now: Instant) -> Next<T> {
        let max_in_flight = if self.careful.is_some() {
            1
        } else {
            self.policy.max_in_flight
        };
        if self.waiting == 0 || self.in_flight >= max_in_flight {
            return Next::Idle;
        }
        if let Some(until) = self.paused_until {
            if until > now {
                return Next::Wait(until - now);
            }
            self.paused_until = None;
        }
        let mut soonest: Option<Duration> = None;
        let wait_for = |d: Duration, soonest: &mut Option<Duration>| {
            *soonest = Some(soonest.map_or(d, |s| s.min(d)));
        };
        for _ in 0..self.order.len() {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            let Some(lane) = self.lanes.get_mut(&key) else {
                continue;
            };
            if lane.queue.is_empty() && !lane.busy {
                let paced_out = lane.pace.as_mut().is_none_or(|p| {
                    p.peek(now);
                    p.is_rested()
                });
                if paced_out && lane.paused_until.is_none_or(|u| u <= now) {
                    // Nothing left to remember: its key lapses here, and comes back with
                    // its next message.
                    self.lanes.remove(&key);
                    continue;
                }
            }
            self.order.push_back(key.clone());
            if lane.busy || lane.queue.is_empty() {
                continue;
            }
            if let Some(until) = lane.paused_until {
                if until > now {
                    wait_for(until - now, &mut soonest);
                    continue;
                }
                lane.paused_until = None;
            }
            if let Some(wait) = lane.pace.as_mut().and_then(|p| p.peek(now)) {
                wait_for(wait, &mut soonest);
                continue;
            }
            if let Some(wait) = self.pace.take(now) {
                // The connection's own pace holds every lane alike.
                return Next::Wait(wait);
            }
            if let Some(p) = lane.pace.as_mut() {
                p.take(now);
            }
            let Some((_, item)) = lane.queue.pop_front() else {
                continue;
            };
            lane.busy = true;
            self.waiting -= 1;
            self.in_flight += 1;
            return Next::Send(key, item);
        }
        match soonest {
            Some(wait) => Next::Wait(wait),
            None => Next::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(40);

    fn err(text: &str) -> ConnectionError {
        ConnectionError::Protocol(text.into())
    }

    /// One lane, one message at a time, pacing that never bites (it has its own tests).
    fn outbox(capacity: usize) -> Outbox<u32> {
        Outbox::new(
            "test",
            "test",
            QueuePolicy::serial(
                capacity,
                Pace {
                    burst: 1000,
                    interval: GAP,
                },
            ),
        )
    }

    /// Several lanes at once: `max_in_flight`, a pace per lane, and whether a 429 holds only
    /// its lane; the connection itself unpaced.
    fn concurrent(
        max_in_flight: usize,
        per_destination: Option<DestinationPace>,
        limits_per_destination: bool,
    ) -> Outbox<u32> {
        Outbox::new(
            "test",
            "test",
            QueuePolicy {
                max_in_flight,
                per_destination,
                limits_per_destination,
                ..QueuePolicy::serial(10, Pace::unlimited())
            },
        )
    }

    fn sent() -> Outcome {
        Outcome::Sent { pause: None }
    }

    fn send(o: &mut Outbox<u32>, now: Instant) -> u32 {
        match o.next(now) {
            Next::Send(_, item) => item,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let t0 = Instant::now();
        let mut o = Outbox::new("test", "test", QueuePolicy::serial(2, Pace::every(GAP)));
        for i in 1..=4 {
            o.push("a", i);
        }
        assert_eq!((o.queued(), o.dropped()), (2, 2));
        assert_eq!(send(&mut o, t0), 3);
        assert_eq!(o.finish("a", 3, sent(), t0), Duration::ZERO);
        assert_eq!(o.next(t0), Next::Wait(GAP), "paced");
        assert_eq!(send(&mut o, t0 + GAP), 4);
        o.finish("a", 4, sent(), t0 + GAP);
        assert_eq!(o.next(t0 + GAP), Next::Idle);
        assert_eq!((o.queued(), o.dropped()), (0, 2));
    }

    #[test]
    fn the_oldest_message_of_any_lane_is_the_one_dropped() {
        let t0 = Instant::now();
        let mut o = outbox(3);
        o.push("a", 1);
        o.push("b", 2);
        o.push("a", 3);
        o.push("b", 4);
        assert_eq!(o.dropped(), 1);
        let mut seen = Vec::new();
        while let Next::Send(lane, item) = o.next(t0) {
            seen.push(item);
            o.finish(&lane, item, sent(), t0);
        }
        seen.sort_unstable();
        assert_eq!(seen, [2, 3, 4]);
    }

    #[test]
    fn a_retry_into_a_queue_that_filled_up_meanwhile_drops_the_retried_oldest() {
        let t0 = Instant::now();
        let mut o = outbox(2);
        o.push("a", 1);
        assert_eq!(send(&mut o, t0), 1);
        o.push("a", 2);
        o.push("a", 3);
        o.finish("a", 1, Outcome::Retry(err("x")), t0);
        assert_eq!((o.queued(), o.dropped()), (2, 1));
        assert_eq!(send(&mut o, t0 + RETRY_MAX), 2);
    }

    #[test]
    fn the_message_in_flight_counts_as_queued_but_not_against_capacity() {
        let t0 = Instant::now();
        let mut o = outbox(1);
        o.push("a", 1);
        assert_eq!(send(&mut o, t0), 1);
        assert_eq!((o.waiting(), o.queued()), (0, 1));
        o.push("a", 2);
        assert_eq!((o.waiting(), o.queued(), o.dropped()), (1, 2, 0));
    }

    #[test]
    fn one_send_at_a_time_per_lane_and_lanes_send_concurrently() {
        let t0 = Instant::now();
        let mut o = concurrent(4, Some(Pace::every(Duration::from_secs(1)).into()), true);
        o.push("a", 1);
        o.push("a", 2);
        o.push("b", 3);
        assert_eq!(o.next(t0), Next::Send("a".into(), 1));
        assert_eq!(
            o.next(t0),
            Next::Send("b".into(), 3),
            "b does not wait for a"
        );
        assert_eq!(o.next(t0), Next::Idle, "a's 2 waits for 1");
        o.finish("a", 1, sent(), t0);
        assert_eq!(
            o.next(t0),
            Next::Wait(Duration::from_secs(1)),
            "a's pace: one per second"
        );
        assert_eq!(
            o.next(t0 + Duration::from_secs(1)),
            Next::Send("a".into(), 2)
        );
    }

    #[test]
    fn at_most_max_in_flight_sends_at_once() {
        let t0 = Instant::now();
        let mut o = concurrent(2, None, false);
        for (lane, item) in [("a", 1), ("b", 2), ("c", 3)] {
            o.push(lane, item);
        }
        assert!(matches!(o.next(t0), Next::Send(..)));
        assert!(matches!(o.next(t0), Next::Send(..)));
        assert_eq!(o.next(t0), Next::Idle);
        assert_eq!(o.queued(), 3);
    }

    #[test]
    fn a_rate_limit_holds_only_its_lane_where_the_platform_limits_each_channel() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut o = concurrent(4, None, true);
        o.push("a", 1);
        o.push("a", 2);
        o.push("b", 3);
        assert_eq!(o.next(t0), Next::Send("a".into(), 1));
        assert_eq!(o.finish("a", 1, Outcome::RateLimited(secs(3)), t0), secs(3));
        assert_eq!(o.next(t0), Next::Send("b".into(), 3), "b is not limited");
        o.finish("b", 3, sent(), t0);
        assert_eq!(o.next(t0 + secs(1)), Next::Wait(secs(2)));
        assert_eq!(
            o.next(t0 + secs(3)),
            Next::Send("a".into(), 1),
            "1 again, first"
        );
    }

    #[test]
    fn a_rate_limit_holds_everything_where_the_platform_limits_the_account() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut o = outbox(5);
        o.push("a", 1);
        o.push("b", 2);
        assert_eq!(send(&mut o, t0), 1);
        assert_eq!(o.finish("a", 1, Outcome::RateLimited(secs(3)), t0), secs(3));
        assert_eq!(o.queued(), 2);
        assert_eq!(o.next(t0 + secs(1)), Next::Wait(secs(2)));
        let first = send(&mut o, t0 + secs(3));
        assert!(first == 1 || first == 2);
    }

    #[test]
    fn after_an_account_wide_429_sends_go_one_at_a_time_at_the_servers_pace() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut o = concurrent(4, None, false);
        for (lane, item) in [("a", 1), ("b", 2), ("c", 3)] {
            o.push(lane, item);
        }
        assert_eq!(o.next(t0), Next::Send("a".into(), 1));
        o.finish("a", 1, Outcome::RateLimited(secs(5)), t0);
        let t1 = t0 + secs(5);
        let first = send(&mut o, t1);
        assert_eq!(o.next(t1), Next::Idle, "one at a time now");
        let lane = ["a", "b", "c"][first as usize - 1];
        assert_eq!(
            o.finish(lane, first, sent(), t1),
            secs(5),
            "the server's gap"
        );
        assert_eq!(o.next(t1 + secs(1)), Next::Wait(secs(4)));
    }

    #[test]
    fn rate_limit_waits_are_capped() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        o.push("a", 1);
        send(&mut o, t0);
        let delay = o.finish(
            "a",
            1,
            Outcome::RateLimited(Duration::from_secs(86_400)),
            t0,
        );
        assert_eq!(delay, MAX_RATE_WAIT);
        assert_eq!(o.next(t0), Next::Wait(MAX_RATE_WAIT));
    }

    #[test]
    fn a_used_up_window_pauses_after_a_send() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut o = outbox(5);
        o.push("a", 1);
        o.push("a", 2);
        send(&mut o, t0);
        let pause = Some(ms(500));
        assert_eq!(o.finish("a", 1, Outcome::Sent { pause }, t0), ms(500));
        assert_eq!(o.next(t0 + GAP), Next::Wait(ms(500) - GAP));
        assert_eq!(send(&mut o, t0 + ms(500)), 2);
        o.finish(
            "a",
            2,
            Outcome::Sent {
                pause: Some(Duration::MAX),
            },
            t0,
        );
        o.push("a", 3);
        assert_eq!(o.next(t0), Next::Wait(MAX_RATE_WAIT));
    }

    #[test]
    fn a_message_sent_again_after_its_link_ended_goes_first_at_once_and_is_counted() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        o.push("a", 1);
        o.push("a", 2);
        assert_eq!(send(&mut o, t0), 1);
        assert_eq!(o.resend("a", 1), Duration::ZERO);
        // No backoff, unlike a failed send: it goes again at once, still first.
        assert_eq!(send(&mut o, t0), 1);
        assert_eq!((o.resent(), o.queued()), (1, 2));
    }

    #[test]
    fn failures_back_off_hold_everything_and_a_success_resets_the_backoff() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut o = outbox(5);
        o.push("a", 1);
        o.push("a", 2);
        let mut now = t0;
        let mut retry = |o: &mut Outbox<u32>| {
            assert_eq!(send(o, now), 1, "the failed message stays first");
            let delay = o.finish("a", 1, Outcome::Retry(err("HTTP 502")), now);
            assert_eq!(
                o.next(now),
                Next::Wait(delay),
                "nothing overtakes the retry"
            );
            now += delay;
            delay
        };
        let first = retry(&mut o);
        assert!((ms(125)..=ms(250)).contains(&first), "{first:?}");
        let second = retry(&mut o);
        assert!((ms(250)..=ms(500)).contains(&second), "{second:?}");
        let now = now + RETRY_MAX;
        assert_eq!(o.queued(), 2);
        assert_eq!(send(&mut o, now), 1);
        o.finish("a", 1, sent(), now);
        assert_eq!(send(&mut o, now), 2);
        let after_success = o.finish("a", 2, Outcome::Retry(err("timeout")), now);
        assert!((ms(125)..=ms(250)).contains(&after_success));
    }

    #[test]
    fn a_rejected_message_is_dropped_without_counting_as_an_overflow() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        o.push("a", 1);
        o.push("a", 2);
        send(&mut o, t0);
        assert_eq!(
            o.finish("a", 1, Outcome::Rejected(err("HTTP 403")), t0),
            Duration::ZERO
        );
        assert_eq!((o.queued(), o.dropped()), (1, 0));
        assert_eq!(send(&mut o, t0 + GAP), 2);
    }

    #[test]
    fn put_back_retries_first_without_backoff_or_pause() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        o.push("a", 1);
        o.push("a", 2);
        assert_eq!(send(&mut o, t0), 1);
        assert_eq!(o.put_back("a", 10), Duration::ZERO);
        assert_eq!(o.queued(), 2);
        assert_eq!(send(&mut o, t0), 10);
        let delay = o.finish("a", 10, Outcome::Retry(err("x")), t0);
        assert!(delay <= RETRY_FIRST, "put_back left the backoff alone");
    }

    /// Two windows, as Teams counts a conversation (shortened): 3 per second, 4 per 2 s.
    const WINDOWS: &[Window] = &[
        Window::new(3, Duration::from_secs(1)),
        Window::new(4, Duration::from_secs(2)),
    ];

    /// Sends and finishes the next message of whichever lane may send at `now`.
    fn send_one(o: &mut Outbox<u32>, now: Instant) -> Next<u32> {
        let next = o.next(now);
        if let Next::Send(lane, item) = &next {
            o.finish(lane, *item, sent(), now);
        }
        next
    }

    #[test]
    fn sliding_windows_pace_each_lane_on_its_own() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut o = concurrent(4, Some(DestinationPace::Windows(WINDOWS)), true);
        for item in 1..=6 {
            o.push("a", item);
        }
        for item in 1..=3 {
            assert_eq!(send_one(&mut o, t0), Next::Send("a".into(), item));
        }
        assert_eq!(o.next(t0), Next::Wait(secs(1)), "the 1 s window is used up");
        o.push("b", 10);
        assert_eq!(
            send_one(&mut o, t0),
            Next::Send("b".into(), 10),
            "b has its own"
        );
        assert_eq!(send_one(&mut o, t0 + secs(1)), Next::Send("a".into(), 4));
        assert_eq!(
            o.next(t0 + secs(1)),
            Next::Wait(secs(1)),
            "the 2 s window holds the 5th although the 1 s window has room"
        );
        assert_eq!(send_one(&mut o, t0 + secs(2)), Next::Send("a".into(), 5));
        assert_eq!(send_one(&mut o, t0 + secs(2)), Next::Send("a".into(), 6));
    }

    #[test]
    fn a_rate_limit_still_holds_a_lane_paced_by_windows() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut o = concurrent(4, Some(DestinationPace::Windows(WINDOWS)), true);
        o.push("a", 1);
        o.push("b", 2);
        assert_eq!(o.next(t0), Next::Send("a".into(), 1));
        assert_eq!(o.finish("a", 1, Outcome::RateLimited(secs(5)), t0), secs(5));
        assert_eq!(send_one(&mut o, t0), Next::Send("b".into(), 2));
        assert_eq!(
            o.next(t0 + secs(1)),
            Next::Wait(secs(4)),
            "the windows have room; Retry-After holds the conversation"
        );
        assert_eq!(send_one(&mut o, t0 + secs(5)), Next::Send("a".into(), 1));
    }

    #[test]
    fn a_lane_paced_by_windows_is_forgotten_once_its_longest_window_passed() {
        let t0 = Instant::now();
        let mut o = concurrent(4, Some(DestinationPace::Windows(WINDOWS)), true);
        o.push("a", 1);
        send_one(&mut o, t0);
        assert_eq!(o.next(t0), Next::Idle);
        assert!(o.lanes.contains_key("a"), "its send still counts for 2 s");
        o.push("b", 2);
        send_one(&mut o, t0 + Duration::from_secs(2));
        assert_eq!(o.next(t0 + Duration::from_secs(2)), Next::Idle);
        assert!(!o.lanes.contains_key("a"), "nothing of it counts any more");
    }

    #[test]
    fn idle_lanes_are_forgotten() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        for lane in ["a", "b", "c"] {
            o.push(lane, 1);
            let item = send(&mut o, t0);
            o.finish(lane, item, sent(), t0);
        }
        assert_eq!(o.next(t0), Next::Idle);
        assert!(
            o.lanes.is_empty(),
            "{:?}",
            o.lanes.keys().collect::<Vec<_>>()
        );
    }
}
