//! Outbound pacing: a bounded queue of lines and flood control, a token bucket of `burst`
//! lines refilled at one per `interval`.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Lines waiting to be sent, oldest first; beyond `capacity` the oldest are dropped.
#[derive(Debug)]
pub struct LineQueue<T> {
    lines: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> LineQueue<T> {
    /// An empty queue of at most `capacity` lines (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Appends a line; returns true when the oldest line was dropped to make room.
    pub fn push(&mut self, line: T) -> bool {
        let full = self.lines.len() >= self.capacity;
        if full {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
        full
    }

    /// The oldest line.
    pub fn pop(&mut self) -> Option<T> {
        self.lines.pop_front()
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The bucket.
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

    /// Takes one line's allowance at `now`, if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.take(now).is_none()
    }

    /// Takes one line's allowance at `now`; when there is none, how long until there is.
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.refilled);
        self.refilled = now;
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() / self.interval.as_secs_f64()).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            let missing = 1.0 - self.tokens;
            Some(self.interval.mul_f64(missing).max(Duration::from_millis(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_keeps_order_and_drops_the_oldest_when_full() {
        let mut q = LineQueue::new(3);
        assert!(!q.push(1) && !q.push(2) && !q.push(3));
        assert!(q.push(4));
        assert!(q.push(5));
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.len(), 3);
        assert_eq!(
            (q.pop(), q.pop(), q.pop(), q.pop()),
            (Some(3), Some(4), Some(5), None)
        );
        assert!(q.is_empty());
    }

    #[test]
    fn a_burst_then_one_line_per_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut gate = FloodGate::new(4, ms(500), t0);
        let sent = (0..10).filter(|_| gate.try_take(t0)).count();
        assert_eq!(sent, 4, "the burst");
        assert!(!gate.try_take(t0 + ms(400)));
        assert!(gate.try_take(t0 + ms(500)));
        assert!(!gate.try_take(t0 + ms(600)));
        assert!(gate.try_take(t0 + ms(1000)));
        // Idle time refills up to the burst, no further.
        let later = t0 + Duration::from_secs(60);
        let sent = (0..10).filter(|_| gate.try_take(later)).count();
        assert_eq!(sent, 4);
    }
}
