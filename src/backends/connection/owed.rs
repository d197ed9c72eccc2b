//! Result parts that may be in chat already, for platforms that cannot post idempotently
//! but whose history the bot can read (Slack, Mattermost).
//!
//! A part may be in chat without the bridge knowing in two ways: an earlier process posted
//! it and died before recording that (the result is then owed again, inherited, see
//! [`Receipt::inherited`]), or this process sent it and got no answer (a timeout, a dropped
//! connection, a 5xx after the platform had saved the post) and is about to send it again.
//! Each part of an owed result carries a key every process derives alike
//! ([`Receipt::part_key`]), which the platform stores with the post (Slack's message
//! metadata, Mattermost's `props`); before posting a part that may be there, the platform
//! looks for its key in the conversation from a little before the moment it could first
//! have been posted, and counts the part as posted when it finds it.
//!
//! [`Receipt::inherited`]: crate::actors::messages::Receipt::inherited
//! [`Receipt::part_key`]: crate::actors::messages::Receipt::part_key

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::outbox::Outcome;
use crate::actors::messages::Receipt;

/// How far before that moment the look goes: the bridge's clock and the platform's may
/// disagree by this much.
const CLOCK_MARGIN: TimeDelta = TimeDelta::minutes(5);

/// Parts remembered as unanswered at most; past it the oldest is forgotten (a part is sent
/// again within a backoff, so only the last few matter).
const UNANSWERED_CAPACITY: usize = 256;

/// One part of an owed result, as a platform's queued post carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedPart {
    /// The part's key ([`Receipt::part_key`](crate::actors::messages::Receipt::part_key)).
    pub key: String,
    /// Set when an earlier process may have posted it: when its command started.
    pub inherited: Option<DateTime<Utc>>,
}

impl OwedPart {
    /// Part `part` of the message `receipt` is for; `None` for a message nobody owes.
    pub fn of(receipt: Option<&Receipt>, part: usize) -> Option<OwedPart> {
        receipt.map(|r| OwedPart {
            key: r.part_key(part),
            inherited: r.inherited,
        })
    }
}

/// What one send of an owed part learnt, for [`Unanswered::learn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The part's key.
    key: String,
    /// When the send started.
    at: DateTime<Utc>,
    /// The platform answered: it has the part, or refused it for good.
    answered: bool,
}

impl Attempt {
    /// The send of `part` started at `at` that ended with `outcome`; `None` when there is
    /// nothing to learn (no part, or a rate limit: the platform took nothing).
    pub fn after(part: Option<&OwedPart>, at: DateTime<Utc>, outcome: &Outcome) -> Option<Self> {
        let answered = match outcome {
            Outcome::Sent { .. } | Outcome::Rejected(_) => true,
            Outcome::Retry(_) => false,
            Outcome::RateLimited(_) => return None,
        };
        part.map(|p| Attempt {
            key: p.key.clone(),
            at,
            answered,
        })
    }
}

/// The parts this process sent without learning whether the platform has them, and when
/// each was first sent.
#[derive(Debug, Default)]
pub struct Unanswered {
    first_sent: HashMap<String, DateTime<Utc>>,
}

impl Unanswered {
    /// Remembers that `key` was sent at `at` and no answer said whether it arrived.
    pub fn note(&mut self, key: &str, at: DateTime<Utc>) {
        if self.first_sent.len() >= UNANSWERED_CAPACITY && !self.first_sent.contains_key(key) {
            if let Some(oldest) = self
                .first_sent
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
            {
                self.first_sent.remove(&oldest);
            }
        }
        let first = self.first_sent.entry(key.to_owned()).or_insert(at);
        *first = (*first).min(at);
    }

    /// Forgets `key`: the platform answered (it has the part, or refused it for good).
    pub fn answered(&mut self, key: &str) {
        self.first_sent.remove(key);
    }

    /// Remembers or forgets the attempt's part by how it went.
    pub fn learn(&mut self, attempt: Attempt) {
        if attempt.answered {
            self.answered(&attempt.key);
        } else {
            self.note(&attempt.key, attempt.at);
        }
    }

    /// From when to look for `part` in the conversation before posting it; `None`: it
    /// cannot be there, post it.
    pub fn look_from(&self, part: &OwedPart) -> Option<DateTime<Utc>> {
        let unanswered = self.first_sent.get(&part.key).copied();
        let since = match (part.inherited, unanswered) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        since.map(|t| t - CLOCK_MARGIN)
    }

    /// How many parts are remembered.
    pub fn len(&self) -> usize {
        self.first_sent.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.first_sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    fn part(key: &str, inherited: Option<DateTime<Utc>>) -> OwedPart {
        OwedPart {
            key: key.into(),
            inherited,
        }
    }

    #[test]
    fn a_part_first_sent_here_and_answered_is_posted_without_looking() {
        let mut u = Unanswered::default();
        assert_eq!(u.look_from(&part("k", None)), None);
        u.note("k", at(10));
        u.answered("k");
        assert_eq!(u.look_from(&part("k", None)), None);
        assert!(u.is_empty());
    }

    #[test]
    fn an_unanswered_part_is_looked_for_from_before_its_first_attempt() {
        let mut u = Unanswered::default();
        u.note("k", at(10));
        u.note("k", at(40));
        assert_eq!(u.look_from(&part("k", None)), Some(at(10) - CLOCK_MARGIN));
        assert_eq!(u.look_from(&part("other", None)), None);
    }

    #[test]
    fn an_inherited_part_is_looked_for_from_before_its_command_started() {
        let mut u = Unanswered::default();
        assert_eq!(
            u.look_from(&part("k", Some(at(0)))),
            Some(at(0) - CLOCK_MARGIN)
        );
        u.note("k", at(30));
        assert_eq!(
            u.look_from(&part("k", Some(at(0)))),
            Some(at(0) - CLOCK_MARGIN),
            "the earlier of the two"
        );
    }

    #[test]
    fn past_its_capacity_the_oldest_unanswered_part_is_forgotten() {
        let mut u = Unanswered::default();
        for i in 0..=UNANSWERED_CAPACITY as i64 {
            u.note(&format!("k{i}"), at(i));
        }
        assert_eq!(u.len(), UNANSWERED_CAPACITY);
        assert_eq!(u.look_from(&part("k0", None)), None);
        assert!(u.look_from(&part("k1", None)).is_some());
    }

    #[test]
    fn a_send_without_an_answer_is_remembered_and_an_answer_or_a_refusal_forgets_it() {
        use crate::backends::connection::ConnectionError;
        let p = part("k", None);
        let mut u = Unanswered::default();
        let timeout = Outcome::Retry(ConnectionError::Protocol("timed out".into()));
        u.learn(Attempt::after(Some(&p), at(1), &timeout).expect("an attempt"));
        assert_eq!(u.look_from(&p), Some(at(1) - CLOCK_MARGIN));
        let limited = Outcome::RateLimited(std::time::Duration::from_secs(1));
        assert_eq!(
            Attempt::after(Some(&p), at(2), &limited),
            None,
            "nothing sent"
        );
        let refused = Outcome::Rejected(ConnectionError::Protocol("no such channel".into()));
        u.learn(Attempt::after(Some(&p), at(3), &refused).expect("an attempt"));
        assert_eq!(u.look_from(&p), None);
        let sent = Outcome::Sent { pause: None };
        assert_eq!(Attempt::after(None, at(4), &sent), None, "nobody owes it");
    }

    #[test]
    fn a_message_nobody_owes_has_no_parts_to_look_for() {
        assert_eq!(OwedPart::of(None, 0), None);
    }
}
