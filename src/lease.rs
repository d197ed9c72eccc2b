//! Whether this bridge process may run a chat connection now: the [`Gate`] between the
//! lease keeper, which opens and closes it, and the connection, which checks it. Its own
//! module, so neither side imports the other (the connections re-export it as
//! `backends::connection::Gate`).
//!
//! One process runs every connection all the time ([`Gate::always`]). When several
//! processes share a Redis store, each connection is run by the one process holding its
//! lease (`actors::lease_keeper`): the gate opens when the lease is taken, stays open until
//! a deadline the keeper pushes forward with every renewal, and closes when the lease is
//! lost or not renewed in time. The connection checks the gate before it connects and
//! before every send — the deadline falls before the lease expires in Redis, so a process
//! cut off from Redis stops sending before another one can take over.

use std::{sync::Arc, time::Instant};

use futures_util::Stream;
use parking_lot::Mutex;
use tokio::sync::watch;

/// The gate of one connection; clones share it.
#[derive(Clone, Default)]
pub struct Gate {
    /// `None`: always open (one process).
    leased: Option<Arc<Leased>>,
}

/// A leased gate's state.
struct Leased {
    /// Open until then; `None`: closed.
    until: Mutex<Option<Instant>>,
    /// The latest opening (`true`) or closing (`false`).
    changes: watch::Sender<bool>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.leased {
            None => f.write_str("Gate(always)"),
            Some(l) => write!(f, "Gate(until {:?})", *l.until.lock()),
        }
    }
}

impl Gate {
    /// Always open: this process runs the connection.
    pub fn always() -> Self {
        Self::default()
    }

    /// Closed until [`Gate::open_until`].
    pub fn leased() -> Self {
        Self {
            leased: Some(Arc::new(Leased {
                until: Mutex::new(None),
                changes: watch::channel(false).0,
            })),
        }
    }

    /// Whether the connection is this process's to run (a lease, not yet lapsed).
    pub fn is_open(&self, now: Instant) -> bool {
        match &self.leased {
            None => true,
            Some(l) => l.until.lock().is_some_and(|until| now < until),
        }
    }

    /// Opens the gate (or keeps it open) until `until`.
    pub fn open_until(&self, until: Instant) {
        if let Some(l) = &self.leased {
            let was_open = l.until.lock().replace(until).is_some();
            if !was_open {
                l.changes.send_replace(true);
            }
        }
    }

    /// Closes the gate: the lease is gone.
    pub fn close(&self) {
        if let Some(l) = &self.leased {
            if l.until.lock().take().is_some() {
                l.changes.send_replace(false);
            }
        }
    }

    /// Where the gate stands after each change from now on (changes in between that
    /// nobody saw are skipped: only the latest state matters); `None` for a gate that is
    /// always open.
    pub fn changes(&self) -> Option<impl Stream<Item = bool> + Unpin + 'static> {
        let mut rx = self.leased.as_ref()?.changes.subscribe();
        rx.mark_unchanged();
        Some(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move {
                rx.changed().await.ok()?;
                let open = *rx.borrow_and_update();
                Some((open, rx))
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;

    #[test]
    fn an_unleased_gate_is_always_open() {
        let gate = Gate::always();
        assert!(gate.is_open(Instant::now()));
        gate.close();
        assert!(gate.is_open(Instant::now()));
        assert!(gate.changes().is_none());
    }

    #[test]
    fn a_leased_gate_is_open_until_its_deadline() {
        let gate = Gate::leased();
        let now = Instant::now();
        assert!(!gate.is_open(now));
        gate.open_until(now + Duration::from_secs(5));
        assert!(gate.is_open(now + Duration::from_secs(4)));
        assert!(
            !gate.is_open(now + Duration::from_secs(5)),
            "lapsed without a renewal"
        );
        gate.close();
        assert!(!gate.is_open(now));
    }

    #[tokio::test]
    async fn the_latest_opening_or_closing_is_told() {
        let gate = Gate::leased();
        let mut changes = gate.changes().unwrap();
        let now = Instant::now();
        gate.open_until(now + Duration::from_secs(5));
        assert_eq!(changes.next().await, Some(true));
        // A renewal is not a new opening; a second close is not news either.
        gate.open_until(now + Duration::from_secs(10));
        gate.close();
        gate.close();
        assert_eq!(changes.next().await, Some(false));
        // Changes nobody looked at in between: only where the gate stands counts.
        let clone = gate.clone();
        clone.open_until(now + Duration::from_secs(5));
        clone.close();
        clone.open_until(now + Duration::from_secs(5));
        assert_eq!(changes.next().await, Some(true), "clones share the gate");
    }
}
