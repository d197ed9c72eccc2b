//! The ids of the chat messages (and button presses) a connection handled lately, so one the
//! platform delivers twice runs once: Slack's retries and its `message` + `app_mention`
//! pair for one mention, a Webex webhook sent again, a Rocket.Chat message streamed again
//! when its thread gets a reply. Bounded: past its capacity the oldest id is forgotten
//! (repeats come soon after the first delivery).

use std::collections::{HashSet, VecDeque};

/// A bounded set of ids, oldest forgotten first.
#[derive(Debug)]
pub struct Seen {
    capacity: usize,
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Seen {
    /// Remembers up to `capacity` ids (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            ids: HashSet::new(),
        }
    }

    /// Remembers `id`: true the first time it comes (among the last `capacity` ids), false
    /// when it was remembered already.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned());
        true
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Result parts that may be in chat already, on a platform that shows the bot its own
/// earlier messages with their keys when a link starts (an XMPP room's history and the
/// message archive, an IRC channel's history replayed at a join): a part written into a link
/// that ended before the server confirmed it, or owed by an earlier process, is not posted
/// again once that history shows it.
#[derive(Debug)]
pub struct PostedParts {
    /// Keys the history showed the bot posted.
    shown: Seen,
    /// Keys written into a link that ended before the server confirmed them.
    unconfirmed: Seen,
}

impl PostedParts {
    /// Remembers up to `capacity` keys of each kind.
    pub fn new(capacity: usize) -> Self {
        Self {
            shown: Seen::new(capacity),
            unconfirmed: Seen::new(capacity),
        }
    }

    /// The history shows the bot posted part `key`.
    pub fn shown(&mut self, key: &str) {
        self.shown.insert(key);
    }

    /// Part `key` was written into a link that ended before the server confirmed it.
    pub fn unconfirmed(&mut self, key: &str) {
        self.unconfirmed.insert(key);
    }

    /// Whether part `key` (owed by an earlier process when `inherited`) is in chat already:
    /// it may have been posted, and the history shows it was. A part neither written nor
    /// inherited is posted whatever the history shows.
    pub fn already_posted(&self, key: &str, inherited: bool) -> bool {
        (inherited || self.unconfirmed.contains(key)) && self.shown.contains(key)
    }
}

/// The key a chat message is taken by in the shared store (so that one process runs it): its
/// room's id and its platform id. A platform id may be unique only within its room: Slack's
/// `ts` is "guaranteed unique within the context of a channel or conversation"
/// (https://api.slack.com/messaging/retrieving), so two channels may hold the same one. The
/// room's length comes first, so no room and id run together into another pair's key.
pub fn taken_key(room: &str, id: &str) -> String {
    format!("{}:{room}{id}", room.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_posted_already_only_if_it_may_have_been_and_the_history_shows_it() {
        let mut parts = PostedParts::new(8);
        parts.shown("a");
        assert!(!parts.already_posted("a", false), "never written here");
        assert!(
            parts.already_posted("a", true),
            "owed by an earlier process"
        );
        parts.unconfirmed("a");
        parts.unconfirmed("b");
        assert!(parts.already_posted("a", false));
        assert!(!parts.already_posted("b", false), "not in the history");
    }

    #[test]
    fn a_message_is_taken_by_its_room_and_its_id() {
        // Slack: one `ts` in two channels is two messages.
        let ts = "1700000000.000100";
        assert_ne!(taken_key("C0OPS", ts), taken_key("C0DEV", ts));
        assert_eq!(taken_key("C0OPS", ts), taken_key("C0OPS", ts));
        // Room and id never run together into another pair's key.
        assert_ne!(taken_key("ab", "c"), taken_key("a", "bc"));
    }

    #[test]
    fn an_id_counts_once_until_it_is_the_oldest_past_capacity() {
        let mut seen = Seen::new(3);
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"), "a repeat is not new");
        assert!(seen.insert("b"));
        assert!(seen.insert("c"));
        assert!(!seen.insert("a"), "still remembered at capacity");
        assert_eq!(seen.len(), 3);
        // A fourth id pushes out the oldest, and only it.
        assert!(seen.insert("d"));
        assert_eq!(seen.len(), 3, "bounded");
        assert!(!seen.insert("b") && !seen.insert("c") && !seen.insert("d"));
        assert!(seen.insert("a"), "forgotten once it was the oldest");
        // `a` came back, so `b` is the oldest now.
        assert!(seen.insert("b"));
    }

    #[test]
    fn a_zero_capacity_still_catches_an_immediate_repeat() {
        let mut seen = Seen::new(0);
        assert!(seen.is_empty());
        assert!(seen.insert("x"));
        assert!(!seen.insert("x"));
        assert!(seen.insert("y"));
        assert!(seen.insert("x"));
    }
}
