//! Outbound pacing: a token bucket of `burst` sends refilled at one per `interval` (IRC's
//! and XMPP's flood control; a burst of 1 is a plain least gap between two sends).

use std::time::{Duration, Instant};

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
}
