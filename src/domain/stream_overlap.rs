//! Events seen twice while two stream connections overlap.
//!
//! When the bridge replaces a silent stream (make-before-break), the new connection is open
//! before the old one is dropped, so for a moment every event StackStorm publishes reaches
//! both. Results of the bridge's own commands are de-duplicated by request id downstream;
//! this handles everything else (announcements without the bridge's context, alias
//! changes). The old connection may still carry events published before the new one
//! subscribed, and a workflow may legitimately announce the same text twice, so this counts
//! rather than remembers: an event is passed on when its connection has now seen it more
//! often than the other one has. The two connections receive the same bus in the same
//! order, so this passes each publication exactly once.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
};

/// Which of the two overlapping connections an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The connection being replaced.
    Old,
    /// Its replacement.
    New,
}

/// Per-event counts for one overlap; see the module docs.
#[derive(Debug, Default)]
pub struct Overlap {
    counts: HashMap<u64, (u32, u32)>,
}

impl Overlap {
    /// A fresh overlap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the event `name` + `data` arriving on `side` is new (pass it on) or a copy of
    /// one the other side already passed on (drop it).
    pub fn admit(&mut self, side: Side, name: &str, data: &str) -> bool {
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        data.hash(&mut h);
        let (old, new) = self.counts.entry(h.finish()).or_default();
        match side {
            Side::Old => {
                *old += 1;
                *old > *new
            }
            Side::New => {
                *new += 1;
                *new > *old
            }
        }
    }

    /// Distinct events seen during the overlap.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_publication_passes_once_whichever_side_delivers_it_first() {
        let mut o = Overlap::new();
        // Published before the new connection subscribed: only the old one has it.
        assert!(o.admit(Side::Old, "a", "1"));
        // Published during the overlap: both have it, in either order.
        assert!(o.admit(Side::New, "b", "2"));
        assert!(!o.admit(Side::Old, "b", "2"));
        assert!(o.admit(Side::Old, "c", "3"));
        assert!(!o.admit(Side::New, "c", "3"));
    }

    #[test]
    fn a_repeated_announcement_is_passed_as_often_as_it_was_published() {
        let mut o = Overlap::new();
        // The same text announced twice; each copy reaches both connections.
        assert!(o.admit(Side::New, "x", "same"));
        assert!(o.admit(Side::New, "x", "same"));
        assert!(!o.admit(Side::Old, "x", "same"));
        assert!(!o.admit(Side::Old, "x", "same"));
        assert!(o.admit(Side::Old, "x", "same"), "a third publication");
        assert_eq!(o.len(), 1);
    }
}
