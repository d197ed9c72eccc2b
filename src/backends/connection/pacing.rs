//! Outbound pacing, free of actix and of the clock (every call takes `now`):
//!
//! - [`FloodGate`]: a token bucket of `burst` sends refilled at one per `interval` (IRC's and
//!   XMPP's flood control; a burst of 1 is a plain least gap between two sends).
//! - [`SlidingWindows`]: several sliding windows at once, each at most `count` sends in any
//!   `period` (Teams counts each conversation so: 7 per second, 8 per 2 s, 60 per 30 s and
//!   1800 per hour, all at once). One bucket can only approximate that: a burst small enough
//!   for the shortest window and a rate slow enough for the longest, which makes a burst of
//!   ten take three times what the windows allow.
//! - [`Limiter`]: either, as a destination's pacing.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// The token bucket.
#[derive(Debug, Clone)]
pub struct FloodGate {
    burst: f64,
    interval: Duration,
    tokens: f64,
    refilled: Instant,
}

impl FloodGate {
    /// A full bucket of `burst` lines (at least 1), refilled one per `interval`.
    pub fn new(burst: u32, interval: Duration, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            burst,
            interval: interval.max(Duration::from_millis(1)),
            tokens: burst,
            refilled: now,
        }
    }

    /// Takes one line's allowance at `now`; when there is none, how long until there is.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        let wait = self.peek(now);
        if wait.is_none() {
            self.tokens -= 1.0;
        }
        wait
    }

    /// Whether the bucket is full (nothing taken lately that pacing still remembers).
    pub fn is_full(&self) -> bool {
        self.tokens >= self.burst
    }

    /// Whether there is an allowance at `now` (`None`), or how long until there is, without
    /// taking it.
    pub fn peek(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.refilled);
        self.refilled = now;
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() / self.interval.as_secs_f64()).min(self.burst);
        if self.tokens >= 1.0 {
            None
        } else {
            let missing = 1.0 - self.tokens;
            Some(self.interval.mul_f64(missing).max(Duration::from_millis(1)))
        }
    }
}

/// One limit counted in a sliding window: at most `count` sends in any stretch of `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Sends allowed in any `period` (0 counts as 1: a window that allows nothing would
    /// hold the queue for good).
    pub count: u32,
    /// The window's length: a send counts against it until `period` after it.
    pub period: Duration,
}

impl Window {
    /// At most `count` sends in any `period`.
    pub const fn new(count: u32, period: Duration) -> Self {
        Self { count, period }
    }

    fn count(self) -> usize {
        self.count.max(1) as usize
    }
}

/// Several sliding windows at once: a send may go when, for every window, fewer than its
/// `count` sends went in the last `period`.
///
/// It remembers the instants of the latest sends, oldest first: at most the largest
/// window's count of them (no window looks further back in sends than that) and none older
/// than the longest period (no window looks further back in time).
#[derive(Debug, Clone)]
pub struct SlidingWindows {
    windows: &'static [Window],
    sent: VecDeque<Instant>,
    /// The largest count: how many sends are worth remembering.
    keep: usize,
    /// The longest period: how long a send is worth remembering.
    longest: Duration,
}

impl SlidingWindows {
    /// Windows with nothing sent yet. No windows at all: nothing is held back.
    pub fn new(windows: &'static [Window]) -> Self {
        Self {
            windows,
            sent: VecDeque::new(),
            keep: windows.iter().map(|w| w.count()).max().unwrap_or(0),
            longest: windows
                .iter()
                .map(|w| w.period)
                .max()
                .unwrap_or(Duration::ZERO),
        }
    }

    /// Takes one send's allowance at `now`; when a window is used up, how long until every
    /// window allows one more.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        let wait = self.peek(now);
        if wait.is_none() && self.keep > 0 {
            // Instants only grow; an earlier `now` (a caller's stale clock) counts as the
            // latest send so the order, which `peek` relies on, holds.
            let at = self.sent.back().map_or(now, |last| now.max(*last));
            self.sent.push_back(at);
            if self.sent.len() > self.keep {
                self.sent.pop_front();
            }
        }
        wait
    }

    /// Whether every window allows a send at `now` (`None`), or the exact time until they
    /// all do, without taking it.
    ///
    /// A window is used up when its `count`-th latest send is less than `period` ago; it
    /// allows one more once that send leaves it, `period` after it. Waiting for the latest
    /// such moment satisfies every window, since nothing is sent meanwhile.
    pub fn peek(&mut self, now: Instant) -> Option<Duration> {
        self.forget(now);
        let sent = &self.sent;
        self.windows
            .iter()
            .filter_map(|w| {
                let oldest_counted = sent[sent.len().checked_sub(w.count())?];
                let leaves = oldest_counted.checked_add(w.period)?;
                (leaves > now).then(|| leaves - now)
            })
            .max()
    }

    /// Whether no send is remembered: none within the longest window as of the last
    /// [`SlidingWindows::peek`] or [`SlidingWindows::take`], so forgetting these windows
    /// loses nothing.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Drops the sends that have left even the longest window.
    fn forget(&mut self, now: Instant) {
        while let Some(first) = self.sent.front() {
            match first.checked_add(self.longest) {
                Some(leaves) if leaves > now => break,
                _ => {
                    self.sent.pop_front();
                }
            }
        }
    }
}

/// A destination's pacing: a token bucket or sliding windows.
#[derive(Debug, Clone)]
pub enum Limiter {
    /// A token bucket.
    Bucket(FloodGate),
    /// Sliding windows at once.
    Windows(SlidingWindows),
}

impl Limiter {
    /// Takes one send's allowance at `now`; when there is none, how long until there is.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        match self {
            Limiter::Bucket(gate) => gate.take(now),
            Limiter::Windows(windows) => windows.take(now),
        }
    }

    /// Whether there is an allowance at `now` (`None`), or how long until there is, without
    /// taking it.
    pub fn peek(&mut self, now: Instant) -> Option<Duration> {
        match self {
            Limiter::Bucket(gate) => gate.peek(now),
            Limiter::Windows(windows) => windows.peek(now),
        }
    }

    /// Whether it remembers nothing that could still hold a send back (a full bucket, or no
    /// send within the longest window), as of the last `peek` or `take`: a destination whose
    /// pacing is rested can be forgotten and started afresh with its next message.
    pub fn is_rested(&self) -> bool {
        match self {
            Limiter::Bucket(gate) => gate.is_full(),
            Limiter::Windows(windows) => windows.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(gate: &mut FloodGate, now: Instant) -> bool {
        gate.take(now).is_none()
    }

    #[test]
    fn a_burst_then_one_line_per_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut gate = FloodGate::new(4, ms(500), t0);
        let sent = (0..10).filter(|_| taken(&mut gate, t0)).count();
        assert_eq!(sent, 4, "the burst");
        assert!(!taken(&mut gate, t0 + ms(400)));
        assert!(taken(&mut gate, t0 + ms(500)));
        assert!(!taken(&mut gate, t0 + ms(600)));
        assert!(taken(&mut gate, t0 + ms(1000)));
        // Idle time refills up to the burst, no further.
        let later = t0 + Duration::from_secs(60);
        let sent = (0..10).filter(|_| taken(&mut gate, later)).count();
        assert_eq!(sent, 4);
        // An empty bucket says how long until the next send.
        assert_eq!(gate.take(later), Some(ms(500)));
        assert_eq!(gate.take(later + ms(200)), Some(ms(300)));
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// Teams' per-conversation windows, as the tests' own copy (the platform's constant is
    /// checked against the documentation in the Teams module).
    const TEAMS: &[Window] = &[
        Window::new(7, SECOND),
        Window::new(8, Duration::from_secs(2)),
        Window::new(60, Duration::from_secs(30)),
        Window::new(1800, Duration::from_secs(3600)),
    ];

    /// Sends `n` messages each as soon as `take` allows, from `t0`; returns when each went.
    fn as_soon_as_allowed(
        n: usize,
        t0: Instant,
        mut take: impl FnMut(Instant) -> Option<Duration>,
    ) -> Vec<Duration> {
        let mut now = t0;
        let mut went = Vec::with_capacity(n);
        while went.len() < n {
            match take(now) {
                None => went.push(now - t0),
                Some(wait) => {
                    assert!(wait > Duration::ZERO, "a wait of nothing would spin");
                    now += wait;
                }
            }
        }
        went
    }

    #[test]
    fn seven_go_at_once_and_the_eighth_waits_for_the_one_second_window() {
        let t0 = Instant::now();
        let mut w = SlidingWindows::new(TEAMS);
        for _ in 0..7 {
            assert_eq!(w.take(t0), None);
        }
        assert_eq!(w.take(t0), Some(SECOND), "until the first seven leave it");
        assert_eq!(
            w.peek(t0 + Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(w.take(t0 + SECOND), None, "they left it: the 8th goes");
        // The 2 s window holds the 9th although the 1 s window has room.
        assert_eq!(w.take(t0 + SECOND), Some(SECOND));
        assert_eq!(w.take(t0 + 2 * SECOND), None);
    }

    #[test]
    fn the_wait_is_until_the_oldest_counted_send_leaves_its_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        const TWO_A_SECOND: &[Window] = &[Window::new(2, Duration::from_secs(1))];
        let mut w = SlidingWindows::new(TWO_A_SECOND);
        assert_eq!(w.take(t0), None);
        assert_eq!(w.take(t0 + ms(300)), None);
        assert_eq!(
            w.take(t0 + ms(500)),
            Some(ms(500)),
            "the send at 0 leaves at 1 s"
        );
        assert_eq!(w.take(t0 + ms(1000)), None);
        assert_eq!(
            w.take(t0 + ms(1000)),
            Some(ms(300)),
            "now the send at 300 ms is the oldest counted"
        );
    }

    #[test]
    fn the_sixty_first_in_thirty_seconds_waits_for_the_first_to_leave() {
        let t0 = Instant::now();
        let mut w = SlidingWindows::new(TEAMS);
        let went = as_soon_as_allowed(61, t0, |now| w.take(now));
        // 7 at once, one a second later, 7 more at 2 s, …: 8 per 2 s, until the 30 s
        // window has its 60 (the last four at 14 s).
        assert_eq!(went[6], Duration::ZERO);
        assert_eq!(went[7], SECOND);
        assert_eq!(went[8], 2 * SECOND);
        assert_eq!(went[59], Duration::from_secs(14));
        assert_eq!(
            went[60],
            Duration::from_secs(30),
            "the first send leaves the 30 s window"
        );
    }

    #[test]
    fn the_hour_window_holds_the_1801st_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut w = SlidingWindows::new(TEAMS);
        let went = as_soon_as_allowed(1801, t0, |now| w.take(now));
        assert!(went[1799] < Duration::from_secs(900), "{:?}", went[1799]);
        assert_eq!(
            went[1800],
            Duration::from_secs(3600),
            "the first send leaves the hour"
        );
        assert!(
            w.sent.len() <= 1800,
            "no more than the largest window's count"
        );
    }

    /// The case: a burst of ten replies in one conversation. The windows let the
    /// tenth go after 2 s; the single bucket that approximated them (a burst of 7, then one
    /// per 2.1 s) held it for 6.3 s.
    #[test]
    fn a_burst_of_ten_goes_in_two_seconds_where_the_single_bucket_took_six() {
        let t0 = Instant::now();
        let mut w = SlidingWindows::new(TEAMS);
        let windows = as_soon_as_allowed(10, t0, |now| w.take(now));
        assert_eq!(windows[9], 2 * SECOND);
        let mut bucket = FloodGate::new(7, Duration::from_millis(2100), t0);
        let single = as_soon_as_allowed(10, t0, |now| bucket.take(now));
        assert!(single[9] >= Duration::from_millis(6299), "{:?}", single[9]);
    }

    #[test]
    fn windows_are_forgotten_once_the_longest_has_passed() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut l = Limiter::Windows(SlidingWindows::new(TEAMS));
        assert!(l.is_rested());
        assert_eq!(l.take(t0), None);
        assert!(!l.is_rested());
        assert_eq!(l.peek(t0 + hour - Duration::from_millis(1)), None);
        assert!(!l.is_rested(), "the send still counts in the hour window");
        assert_eq!(l.peek(t0 + hour), None);
        assert!(l.is_rested());
        let mut b = Limiter::Bucket(FloodGate::new(2, SECOND, t0));
        assert_eq!(b.take(t0), None);
        assert!(!b.is_rested());
        b.peek(t0 + SECOND);
        assert!(b.is_rested(), "a full bucket");
    }

    #[test]
    fn no_windows_hold_nothing_and_remember_nothing() {
        let t0 = Instant::now();
        let mut w = SlidingWindows::new(&[]);
        assert!((0..100).all(|_| w.take(t0).is_none()));
        assert!(w.is_empty());
    }
}
