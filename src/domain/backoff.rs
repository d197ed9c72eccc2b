//! Capped exponential backoff with full jitter, shared by every reconnecting actor.
//!
//! Full jitter spreads reconnects of many bridges after a StackStorm restart, instead of
//! having them all arrive on the same second (err-stackstorm sleeps a fixed 10 s).

use std::time::Duration;

/// Backoff state: the number of consecutive failures so far.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and never exceeding `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            failures: 0,
        }
    }

    /// This policy with a connection's own `reconnect_initial_ms` / `reconnect_max_ms`
    /// where given (a longest delay below the shortest is raised to it).
    pub fn overridden(&self, initial_ms: Option<u64>, max_ms: Option<u64>) -> Self {
        let initial = initial_ms.map_or(self.initial, Duration::from_millis);
        let max = max_ms.map_or(self.max.max(initial), Duration::from_millis);
        Self::new(initial, max)
    }

    /// Records a failure and returns how long to wait before the next attempt: a random
    /// duration between half the exponential step and the step itself.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        let low = millis / 2;
        Duration::from_millis(fastrand::u64(low..=millis.max(low)))
    }

    /// The upper bound for the next delay, without jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets past failures after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_may_override_either_bound() {
        let ms = Duration::from_millis;
        let base = Backoff::new(ms(1000), ms(60_000));
        let same = base.overridden(None, None);
        assert_eq!((same.initial, same.max), (ms(1000), ms(60_000)));
        let quick = base.overridden(Some(50), Some(200));
        assert_eq!((quick.initial, quick.max), (ms(50), ms(200)));
        let slow_start = base.overridden(Some(90_000), None);
        assert_eq!(
            (slow_start.initial, slow_start.max),
            (ms(90_000), ms(90_000))
        );
    }

    #[test]
    fn grows_exponentially_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            ceilings.push(b.ceiling());
            let d = b.next_delay();
            assert!(d <= *ceilings.last().unwrap());
            assert!(d >= *ceilings.last().unwrap() / 2);
        }
        assert_eq!(ceilings[0], Duration::from_millis(100));
        assert_eq!(ceilings[1], Duration::from_millis(200));
        assert_eq!(ceilings[7], Duration::from_secs(2));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }
}
