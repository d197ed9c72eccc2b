//! Where a connection's links stand, for a platform whose server replays nothing to a new
//! link but can be asked what was posted since a time (Rocket.Chat's REST API, an XMPP
//! room's history, Slack's history methods): since when its links have listened, and per
//! room (and per thread, for Slack) the time of the newest message handed on. A new link (this process's after a lost one, or the next holder's
//! after a takeover, through [`Platform::resume_state`](super::Platform::resume_state))
//! asks from there on. Pure, unit-tested here; each platform decides what its times are.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Now, in milliseconds since the Unix epoch: the clock positions are kept in.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Rooms whose point is kept: beyond that the oldest points are forgotten (such a room is
/// then caught up from no later than its point: the listening start moves back to it).
pub const MAX_ROOMS: usize = 64;

/// How far back a catch-up reaches by default, in milliseconds (`max_command_age_secs` of
/// Slack, Rocket.Chat and XMPP): a takeover takes seconds, so a point older than this is
/// from an outage of every bridge process, and commands posted then are likely stale.
pub const MAX_CATCH_UP_MS: u64 = 10 * 60 * 1000;

/// The default `max_command_age_secs` of the platforms that catch up ([`MAX_CATCH_UP_MS`]).
pub fn max_command_age_secs() -> u64 {
    MAX_CATCH_UP_MS / 1000
}

/// The earliest time (ms) a message caught up at `now` may have been said to run:
/// `max_age_secs` back, or any time when it is 0.
pub fn catch_up_floor(now: u64, max_age_secs: u64) -> u64 {
    match max_age_secs {
        0 => 0,
        secs => now.saturating_sub(secs.saturating_mul(1000)),
    }
}

/// Threads whose point is kept (Slack's): beyond that the oldest are forgotten. Apart from
/// the rooms, so a busy room's threads never push a quiet room's point out.
pub const MAX_THREADS: usize = 64;

/// Where a connection's links stand: since when they have listened, per room the time
/// (milliseconds since the epoch) of the newest message handed on (bounded by
/// [`MAX_ROOMS`]), and per thread likewise, for a platform whose threads are read apart
/// (bounded by [`MAX_THREADS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// When the first link listened (this process's clock): what was posted since in a
    /// room without a point of its own was heard, and either handed on or skipped.
    listening_since: Option<u64>,
    rooms: BTreeMap<String, u64>,
    threads: BTreeMap<String, u64>,
}

impl Position {
    /// The state another process saved (`{"listening_since": <ms>, "rooms": {"<rid>": <ts
    /// ms>}, "threads": {"<key>": <ts ms>}}`, threads optional); anything else is no position.
    pub fn from_state(state: &Value) -> Self {
        let mut position = Self {
            listening_since: state.get("listening_since").and_then(Value::as_u64),
            rooms: BTreeMap::new(),
            threads: BTreeMap::new(),
        };
        if let Some(rooms) = state.get("rooms").and_then(Value::as_object) {
            for (rid, ts) in rooms {
                if let Some(ts) = ts.as_u64() {
                    position.note(rid, ts);
                }
            }
        }
        if let Some(threads) = state.get("threads").and_then(Value::as_object) {
            for (key, ts) in threads {
                if let Some(ts) = ts.as_u64() {
                    position.note_thread(key, ts);
                }
            }
        }
        position
    }

    /// Takes over the position another process saved (`state`, as [`Position::from_state`]
    /// reads it) when it knows anything; otherwise keeps this one.
    pub fn resume_from(&mut self, state: &Value) {
        let position = Self::from_state(state);
        if position.is_known() {
            *self = position;
        }
    }

    /// The state to save; `None` before the first link listened.
    pub fn state(&self) -> Option<Value> {
        self.is_known().then(|| {
            let mut state = json!({ "rooms": self.rooms });
            if !self.threads.is_empty() {
                state["threads"] = json!(self.threads);
            }
            if let Some(since) = self.listening_since {
                state["listening_since"] = json!(since);
            }
            state
        })
    }

    /// Whether there is anything to resume from.
    pub fn is_known(&self) -> bool {
        self.listening_since.is_some() || !self.rooms.is_empty()
    }

    /// When the first link listened, if one did.
    pub fn listening_since(&self) -> Option<u64> {
        self.listening_since
    }

    /// A first link subscribed at `now`, with nothing to resume from.
    pub fn listening(&mut self, now: u64) {
        self.listening_since.get_or_insert(now);
    }

    /// A message of room `rid` of time `ts` was handed on.
    pub fn note(&mut self, rid: &str, ts: u64) {
        if let Some(forgotten) = note_bounded(&mut self.rooms, rid, ts, MAX_ROOMS) {
            // The forgotten room is caught up from no later than its point.
            let since = self.listening_since.get_or_insert(forgotten);
            *since = (*since).min(forgotten);
        }
    }

    /// A message of the thread `key` (the platform's name for it) of time `ts` was handed on.
    /// Past [`MAX_THREADS`] the thread with the oldest point is forgotten (not caught up).
    pub fn note_thread(&mut self, key: &str, ts: u64) {
        note_bounded(&mut self.threads, key, ts, MAX_THREADS);
    }

    /// The rooms' points, by room id.
    pub fn rooms(&self) -> &BTreeMap<String, u64> {
        &self.rooms
    }

    /// The threads' points, by key.
    pub fn threads(&self) -> &BTreeMap<String, u64> {
        &self.threads
    }

    /// Where room `rid` is caught up from (inclusive): its own point, else since when the
    /// links listened (everything heard there since was skipped), never before `floor`.
    /// `None` without a position.
    pub fn since(&self, rid: &str, floor: u64) -> Option<u64> {
        let since = self
            .rooms
            .get(rid)
            .copied()
            .or(self.listening_since)
            .or_else(|| self.rooms.values().min().copied())?;
        Some(since.max(floor))
    }

    /// The earliest point of all (what `rooms.get` is asked from), never before `floor`.
    pub fn oldest(&self, floor: u64) -> Option<u64> {
        self.rooms
            .values()
            .copied()
            .chain(self.listening_since)
            .min()
            .map(|ts| ts.max(floor))
    }
}

/// Moves `key`'s point in `points` up to `ts`; past `most` points, forgets the oldest and
/// returns its point.
fn note_bounded(
    points: &mut BTreeMap<String, u64>,
    key: &str,
    ts: u64,
    most: usize,
) -> Option<u64> {
    let at = points.entry(key.to_owned()).or_default();
    *at = (*at).max(ts);
    if points.len() <= most {
        return None;
    }
    let (oldest, point) = points
        .iter()
        .min_by_key(|(_, ts)| **ts)
        .map(|(key, ts)| (key.clone(), *ts))?;
    points.remove(&oldest);
    Some(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_kept_apart_from_rooms_and_bounded_on_their_own() {
        let mut p = Position::default();
        p.listening(10);
        p.note("QUIET", 20);
        for n in 0..(MAX_THREADS as u64 + 5) {
            p.note_thread(&format!("BUSY/{n}"), 100 + n);
        }
        assert_eq!(p.threads().len(), MAX_THREADS);
        assert!(
            !p.threads().contains_key("BUSY/0"),
            "the oldest thread went"
        );
        assert_eq!(
            p.since("QUIET", 0),
            Some(20),
            "a quiet room keeps its point"
        );
        let state = p.state().unwrap();
        assert_eq!(state["rooms"], json!({"QUIET": 20}));
        assert_eq!(Position::from_state(&state), p, "through the shared store");
        // A position without threads saves none (the state other platforms keep).
        let mut q = Position::default();
        q.note("R", 5);
        assert!(q.state().unwrap().get("threads").is_none());
    }

    #[test]
    fn the_catch_up_floor_is_the_age_limit_back_or_none() {
        assert_eq!(catch_up_floor(1_000_000, 600), 400_000);
        assert_eq!(catch_up_floor(1_000_000, 0), 0, "0: any age");
        assert_eq!(catch_up_floor(5_000, 600), 0, "never before the epoch");
        assert_eq!(max_command_age_secs(), 600);
    }

    #[test]
    fn the_position_keeps_the_newest_per_room_and_stays_small() {
        let mut p = Position::default();
        assert_eq!(p.state(), None, "never listened: nothing to resume");
        assert_eq!(p.since("GENERAL", 0), None);
        assert_eq!(p.oldest(0), None);
        p.listening(50);
        p.listening(70);
        assert_eq!(
            p.since("GENERAL", 0),
            Some(50),
            "the first link's start is kept"
        );
        p.note("GENERAL", 100);
        p.note("GENERAL", 90);
        p.note("OPS", 200);
        assert_eq!(p.since("GENERAL", 0), Some(100));
        // A room nothing was handed on from: since the links listened.
        assert_eq!(p.since("QUIET", 0), Some(50));
        // Never before the floor.
        assert_eq!(p.since("GENERAL", 150), Some(150));
        assert_eq!(p.oldest(0), Some(50));
        assert_eq!(p.oldest(60), Some(60));
        // It survives the trip through the shared store.
        let state = p.state().unwrap();
        assert_eq!(
            state,
            json!({"listening_since": 50, "rooms": {"GENERAL": 100, "OPS": 200}})
        );
        assert_eq!(Position::from_state(&state), p);
        assert_eq!(
            Position::from_state(&json!({"rooms": 7})),
            Position::default()
        );
        assert_eq!(Position::from_state(&json!("x")).state(), None);
        // A state without a start (rooms only): a room without a point from the oldest.
        let rooms_only = Position::from_state(&json!({"rooms": {"A": 300, "B": 400}}));
        assert_eq!(rooms_only.since("C", 0), Some(300));

        // Bounded: the rooms with the oldest points are forgotten first, and a forgotten
        // room is caught up from no later than its point.
        let mut q = Position::default();
        for n in 0..(MAX_ROOMS as u64 + 10) {
            q.note(&format!("R{n}"), 1_000 + n);
        }
        let state = q.state().unwrap();
        let rooms = state["rooms"].as_object().unwrap();
        assert_eq!(rooms.len(), MAX_ROOMS);
        assert!(!rooms.contains_key("R0") && !rooms.contains_key("R9"));
        assert!(rooms.contains_key(&format!("R{}", MAX_ROOMS + 9)));
        assert_eq!(q.since("R0", 0), Some(1_000));
        assert_eq!(q.since("R9", 0), Some(1_000));
    }
}
