//! A chat connection's outbound queue.
//!
//! Platforms take one HTTP request or one written line per message, answer 429 with a
//! delay, and fail now and then; replies must still arrive complete and in order. The
//! bookkeeping for that is the same on every platform, so it lives here, free of actix and
//! HTTP: a bounded queue (oldest dropped first, so a long outage keeps the newest replies),
//! the one message in flight, the pacing (a token bucket: `burst` messages at once, then one
//! per interval), the pause a rate limit imposes and the backoff between retries.
//!
//! The connection actor drives it: it asks [`Outbox::next`] what to do, sends the item it
//! gets, and hands the result to [`Outbox::finish`], which says when to ask again. A
//! platform that wants to try an item again on its own terms (in a new direct chat, say)
//! puts it back with [`Outbox::put_back`].

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::{error::ConnectionError, pacing::FloodGate};
use crate::{
    actors::status::StatusReporter,
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
}

/// What the actor should do now, from [`Outbox::next`].
#[derive(Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// Send this item, then report how it went with [`Outbox::finish`].
    Send(T),
    /// A rate limit is in force: ask again after this long.
    Wait(Duration),
    /// Nothing to do: the queue is empty or a send is in flight. Whatever changes that
    /// (a new message, a finished send) pumps again, so no timer is needed.
    Idle,
}

/// How a send ended, in terms every platform shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The platform has the message; `pause` when its rate-limit headers say the window
    /// is used up, so the next send would only earn a 429.
    Sent {
        /// How long to hold the queue before the next send.
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

/// A connection's outbound queue; `T` is the platform's queued message.
#[derive(Debug)]
pub struct Outbox<T> {
    /// The connection's name, for logs.
    connection: String,
    /// The platform's word in log messages (`mattermost`, `discord`, `matrix`).
    platform: &'static str,
    capacity: usize,
    /// The pacing: `burst` sends at once, then one per `send_interval_ms`.
    pace: FloodGate,
    queue: VecDeque<T>,
    /// A send is under way (its item is with the sender until [`Outbox::finish`]).
    in_flight: bool,
    dropped: u64,
    paused_until: Option<Instant>,
    backoff: Backoff,
}

impl<T> Outbox<T> {
    /// An empty outbox for the connection `connection` on `platform`, keeping at most
    /// `capacity` messages (at least 1) and sending them at least `gap` apart.
    pub fn new(
        connection: impl Into<String>,
        platform: &'static str,
        capacity: usize,
        gap: Duration,
    ) -> Self {
        Self::paced(connection, platform, capacity, 1, gap)
    }

    /// An empty outbox that sends `burst` messages at once and then one per `interval`.
    pub fn paced(
        connection: impl Into<String>,
        platform: &'static str,
        capacity: usize,
        burst: u32,
        interval: Duration,
    ) -> Self {
        Self {
            connection: connection.into(),
            platform,
            capacity: capacity.max(1),
            pace: FloodGate::new(burst, interval, Instant::now()),
            queue: VecDeque::new(),
            in_flight: false,
            dropped: 0,
            paused_until: None,
            backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
        }
    }

    /// Puts a message that must be tried again first in line — unless the queue filled up
    /// meanwhile: then it is the oldest message, and goes as an overflow would.
    fn requeue(&mut self, item: T) {
        if self.queue.len() >= self.capacity {
            self.dropped += 1;
            tracing::warn!(
                connection = %self.connection,
                dropped_total = self.dropped,
                capacity = self.capacity,
                "{} outbound queue full; dropped the oldest message",
                self.platform
            );
            return;
        }
        self.queue.push_front(item);
    }

    /// Queues a message last; when the queue is full, the oldest waiting message is dropped
    /// (and counted, and logged), since the newest replies are the ones people wait for.
    pub fn push(&mut self, item: T) {
        while self.queue.len() >= self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
            tracing::warn!(
                connection = %self.connection,
                dropped_total = self.dropped,
                capacity = self.capacity,
                "{} outbound queue full; dropped the oldest message",
                self.platform
            );
        }
        self.queue.push_back(item);
    }

    /// Takes back the result of the send [`Outbox::next`] started and returns how long to
    /// wait before asking [`Outbox::next`] again (zero: ask now; the pacing is applied
    /// there). `item` is the message that was sent; it goes back to the front when it must
    /// be tried again, so order is kept.
    pub fn finish(&mut self, item: T, outcome: Outcome, now: Instant) -> Duration {
        self.in_flight = false;
        match outcome {
            Outcome::Sent { pause } => {
                self.backoff.reset();
                match pause {
                    Some(pause) => {
                        tracing::debug!(connection = %self.connection, pause_ms = pause.as_millis() as u64, "rate-limit window used up; pausing");
                        let pause = pause.min(MAX_RATE_WAIT);
                        self.paused_until = Some(now + pause);
                        pause
                    }
                    None => Duration::ZERO,
                }
            }
            Outcome::RateLimited(delay) => {
                let delay = delay.min(MAX_RATE_WAIT);
                tracing::info!(connection = %self.connection, delay_ms = delay.as_millis() as u64, "{} rate limit; retrying later", self.platform);
                self.requeue(item);
                self.paused_until = Some(now + delay);
                delay
            }
            Outcome::Retry(error) => {
                let delay = self.backoff.next_delay();
                tracing::warn!(connection = %self.connection, error = %error, delay_ms = delay.as_millis() as u64, "{} send failed; retrying", self.platform);
                self.requeue(item);
                // Nothing goes out before the retry: the order of replies is kept.
                self.paused_until = Some(now + delay);
                delay
            }
            Outcome::Rejected(error) => {
                tracing::warn!(connection = %self.connection, error = %error, "{} refused a message; dropped it", self.platform);
                Duration::ZERO
            }
        }
    }

    /// Ends the send in flight by putting `item` (perhaps changed by the actor) back at the
    /// front, without touching the backoff or the pause; returns zero (ask again now). For
    /// retries the platform decides on itself, e.g. in a new direct chat.
    pub fn put_back(&mut self, item: T) -> Duration {
        self.in_flight = false;
        self.requeue(item);
        Duration::ZERO
    }

    /// Messages waiting to be sent, not counting the one in flight.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Messages the platform does not have yet: the one in flight counts until it is sent.
    pub fn queued(&self) -> usize {
        self.queue.len() + usize::from(self.in_flight)
    }

    /// Messages dropped because the queue was full, since the connection was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sends the queue's figures to the registry (`/actors`, `/metrics`).
    pub fn report(&self, status: &mut StatusReporter) {
        status.outbound(self.queued(), self.dropped);
    }
}

impl<T> Outbox<T> {
    /// What to do at `now`: send the oldest message (it is in flight until
    /// [`Outbox::finish`]), wait out a rate limit, or nothing. The actor checks first that
    /// its connection is up.
    pub fn next(&mut self, now: Instant) -> Next<T> {
        if self.in_flight {
            return Next::Idle;
        }
        if let Some(until) = self.paused_until {
            if until > now {
                return Next::Wait(until - now);
            }
            self.paused_until = None;
        }
        if self.queue.is_empty() {
            return Next::Idle;
        }
        if let Some(wait) = self.pace.take(now) {
            return Next::Wait(wait);
        }
        match self.queue.pop_front() {
            Some(item) => {
                self.in_flight = true;
                Next::Send(item)
            }
            None => Next::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(40);

    /// An outbox whose pacing never bites in these tests (it has its own test).
    fn outbox(capacity: usize) -> Outbox<u32> {
        Outbox::paced("test", "test", capacity, 1000, GAP)
    }

    fn sent() -> Outcome {
        Outcome::Sent { pause: None }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let t0 = Instant::now();
        let mut o = Outbox::new("test", "test", 2, GAP);
        for i in 1..=4 {
            o.push(i);
        }
        assert_eq!((o.queued(), o.dropped()), (2, 2));
        assert_eq!(o.next(t0), Next::Send(3));
        assert_eq!(o.finish(3, sent(), t0), Duration::ZERO);
        assert_eq!(o.next(t0), Next::Wait(GAP), "paced");
        assert_eq!(o.next(t0 + GAP), Next::Send(4));
        assert_eq!(o.finish(4, sent(), t0 + GAP), Duration::ZERO);
        assert_eq!(o.next(t0 + GAP), Next::Idle);
        assert_eq!((o.queued(), o.dropped()), (0, 2));
    }

    #[test]
    fn a_retry_into_a_queue_that_filled_up_meanwhile_drops_the_retried_oldest() {
        let t0 = Instant::now();
        let mut o = outbox(2);
        o.push(1);
        assert_eq!(o.next(t0), Next::Send(1));
        o.push(2);
        o.push(3);
        o.finish(1, Outcome::Retry(ConnectionError::Protocol("x".into())), t0);
        assert_eq!((o.queued(), o.dropped()), (2, 1));
        assert_eq!(o.next(t0 + RETRY_MAX), Next::Send(2));
    }

    #[test]
    fn a_capacity_of_zero_still_keeps_one_message() {
        let mut o = outbox(0);
        o.push(1);
        o.push(2);
        assert_eq!((o.queued(), o.dropped()), (1, 1));
        assert_eq!(o.next(Instant::now()), Next::Send(2));
    }

    #[test]
    fn the_message_in_flight_counts_as_queued_but_not_against_capacity() {
        let t0 = Instant::now();
        let mut o = outbox(1);
        o.push(1);
        assert_eq!(o.next(t0), Next::Send(1));
        assert_eq!((o.waiting(), o.queued()), (0, 1));
        o.push(2);
        assert_eq!((o.waiting(), o.queued(), o.dropped()), (1, 2, 0));
    }

    #[test]
    fn one_send_at_a_time() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        o.push(1);
        o.push(2);
        assert_eq!(o.next(t0), Next::Send(1));
        assert_eq!(o.next(t0), Next::Idle, "1 is still in flight");
        o.finish(1, sent(), t0);
        assert_eq!(o.next(t0), Next::Send(2));
    }

    #[test]
    fn a_rate_limit_pauses_and_retries_the_same_message_first() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut o = outbox(5);
        o.push(1);
        o.push(2);
        assert_eq!(o.next(t0), Next::Send(1));
        assert_eq!(o.finish(1, Outcome::RateLimited(secs(3)), t0), secs(3));
        assert_eq!(o.queued(), 2);
        assert_eq!(o.next(t0 + secs(1)), Next::Wait(secs(2)));
        assert_eq!(o.next(t0 + secs(3)), Next::Send(1));
        // The pause is over for good once it has passed.
        o.finish(1, sent(), t0 + secs(3));
        assert_eq!(o.next(t0), Next::Send(2));
    }

    #[test]
    fn rate_limit_waits_are_capped() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        o.push(1);
        o.next(t0);
        let delay = o.finish(1, Outcome::RateLimited(Duration::from_secs(86_400)), t0);
        assert_eq!(delay, MAX_RATE_WAIT);
        assert_eq!(o.next(t0), Next::Wait(MAX_RATE_WAIT));
    }

    #[test]
    fn a_used_up_window_pauses_after_a_send() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut o = outbox(5);
        o.push(1);
        o.push(2);
        o.next(t0);
        let pause = Some(ms(500));
        assert_eq!(o.finish(1, Outcome::Sent { pause }, t0), ms(500));
        assert_eq!(o.next(t0 + GAP), Next::Wait(ms(500) - GAP));
        assert_eq!(o.next(t0 + ms(500)), Next::Send(2));
        o.finish(
            2,
            Outcome::Sent {
                pause: Some(Duration::MAX),
            },
            t0,
        );
        o.push(3);
        assert_eq!(o.next(t0), Next::Wait(MAX_RATE_WAIT));
    }

    #[test]
    fn failures_back_off_and_a_success_resets_the_backoff() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut o = outbox(5);
        o.push(1);
        o.push(2);
        let mut now = t0;
        let mut retry = |o: &mut Outbox<u32>| {
            assert_eq!(o.next(now), Next::Send(1), "the failed message stays first");
            let delay = o.finish(
                1,
                Outcome::Retry(ConnectionError::Protocol("HTTP 502".into())),
                now,
            );
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
        for _ in 0..10 {
            assert!(retry(&mut o) <= RETRY_MAX);
        }
        let now = now + RETRY_MAX;
        assert_eq!(o.queued(), 2);
        assert_eq!(o.next(now), Next::Send(1));
        o.finish(1, sent(), now);
        assert_eq!(o.next(now), Next::Send(2));
        let after_success = o.finish(
            2,
            Outcome::Retry(ConnectionError::Protocol("timeout".into())),
            now,
        );
        assert!((ms(125)..=ms(250)).contains(&after_success));
    }

    #[test]
    fn a_rejected_message_is_dropped_without_counting_as_an_overflow() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        o.push(1);
        o.push(2);
        o.next(t0);
        assert_eq!(
            o.finish(
                1,
                Outcome::Rejected(ConnectionError::Protocol("HTTP 403".into())),
                t0
            ),
            Duration::ZERO
        );
        assert_eq!((o.queued(), o.dropped()), (1, 0));
        assert_eq!(o.next(t0 + GAP), Next::Send(2));
    }

    #[test]
    fn put_back_retries_first_without_backoff_or_pause() {
        let t0 = Instant::now();
        let mut o = outbox(5);
        o.push(1);
        o.push(2);
        assert_eq!(o.next(t0), Next::Send(1));
        assert_eq!(o.put_back(10), Duration::ZERO);
        assert_eq!(o.queued(), 2);
        assert_eq!(o.next(t0), Next::Send(10));
        let delay = o.finish(
            10,
            Outcome::Retry(ConnectionError::Protocol("x".into())),
            t0,
        );
        assert!(delay <= RETRY_FIRST, "put_back left the backoff alone");
    }
}
