//! Fixed-window counters for rate limits: failed posts per client address, calls per
//! trigger token. Bounded: the least used keys are forgotten first, and entries expire once
//! their window is over.

use std::{
    hash::Hash,
    time::{Duration, Instant},
};

/// Counts events per key in fixed windows (a window starts at a key's first event in it)
/// and refuses a key that reached `limit` until its window ends.
pub struct WindowLimiter<K> {
    limit: u32,
    window: Duration,
    windows: moka::sync::Cache<K, (Instant, u32)>,
}

impl<K: Hash + Eq + Send + Sync + 'static> WindowLimiter<K> {
    /// `limit` events per `window` and key.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            // Re-inserting resets the time to live, so an entry always outlives its window.
            windows: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window)
                .build(),
        }
    }

    /// How long `key` is still refused, if it is.
    pub fn refused_for(&self, key: &K, now: Instant) -> Option<Duration> {
        refused_for(self.windows.get(key), now, self.limit, self.window)
    }

    /// Counts one event of `key`; the events in its window so far.
    pub fn count(&self, key: K, now: Instant) -> u32 {
        let entry = one_more(self.windows.get(&key), now, self.window);
        self.windows.insert(key, entry);
        entry.1
    }
}

/// With `entry` = (window start, events): how long until the window ends, when it holds
/// `limit` events or more.
fn refused_for(
    entry: Option<(Instant, u32)>,
    now: Instant,
    limit: u32,
    window: Duration,
) -> Option<Duration> {
    let (start, events) = entry?;
    let elapsed = now.saturating_duration_since(start);
    (elapsed < window && events >= limit).then(|| window - elapsed)
}

/// The window after one more event at `now` (a new window once the old one is over).
fn one_more(entry: Option<(Instant, u32)>, now: Instant, window: Duration) -> (Instant, u32) {
    match entry {
        Some((start, n)) if now.saturating_duration_since(start) < window => {
            (start, n.saturating_add(1))
        }
        _ => (now, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_in_fixed_windows() {
        let window = Duration::from_secs(600);
        let t0 = Instant::now();
        let mut entry = None;
        for _ in 0..3 {
            entry = Some(one_more(entry, t0, window));
        }
        assert_eq!(entry.map(|e| e.1), Some(3));
        assert_eq!(refused_for(entry, t0, 4, window), None);
        assert_eq!(refused_for(entry, t0, 3, window), Some(window));
        let later = t0 + Duration::from_secs(100);
        assert_eq!(
            refused_for(entry, later, 3, window),
            Some(Duration::from_secs(500))
        );
        let after = t0 + window;
        assert_eq!(refused_for(entry, after, 3, window), None);
        assert_eq!(one_more(entry, after, window), (after, 1));
    }

    #[test]
    fn a_key_at_its_limit_is_refused_and_others_are_not() {
        let limiter = WindowLimiter::new(2, Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(limiter.count("a", now), 1);
        assert!(limiter.refused_for(&"a", now).is_none());
        assert_eq!(limiter.count("a", now), 2);
        assert!(limiter.refused_for(&"a", now).is_some());
        assert!(limiter.refused_for(&"b", now).is_none());
    }
}
