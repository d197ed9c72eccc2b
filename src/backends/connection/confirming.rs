//! Messages written on a stream transport and waiting for the server to confirm them.
//!
//! A message written into a link that dies before the server read it leaves no trace on
//! the socket, so it counts as posted only once the server answers a ping written after it
//! (XMPP's XEP-0199 ping, IRC's `PING`): a server handles what one client sends in order,
//! so its answer means it handled every message written before the ping. One ping is out
//! at a time and confirms every message written before it; messages written while it is
//! out wait for the next, written as soon as it is answered. Under load one ping confirms
//! many messages, so the cost per message stays small. Each message carries a key of the
//! platform's choosing (XMPP: the part's key, to look for in the room's history; IRC: none)
//! that [`Confirmations::lost`] hands back. Pure bookkeeping, unit-tested without a server.

use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use tokio::sync::oneshot;

use super::{outbox::Outcome, ConnectionError};

/// What the queue waits for after writing a message whose outcome `told` will bring:
/// `Retry` too when the bookkeeping went away without a word.
pub fn confirmed(told: oneshot::Receiver<Outcome>) -> LocalBoxFuture<'static, Outcome> {
    Box::pin(async move { told.await.unwrap_or_else(|_| lost_link()) })
}

/// The outcome of a message the server did not confirm before the link ended.
fn lost_link() -> Outcome {
    Outcome::Retry(ConnectionError::Closed(Some(
        "the link ended before the server confirmed a message".into(),
    )))
}

/// A written message and whom to tell how it went.
#[derive(Debug)]
struct Waiting<K> {
    /// The message's key.
    key: K,
    tell: oneshot::Sender<Outcome>,
}

/// The ping out: its id, when it was written, and the messages written before it.
#[derive(Debug)]
struct Ping<K> {
    id: String,
    written: Instant,
    covers: Vec<Waiting<K>>,
}

/// The messages waiting for the server's word, each with a key of type `K`.
#[derive(Debug)]
pub struct Confirmations<K = String> {
    out: Option<Ping<K>>,
    /// Messages written since the ping out.
    next: Vec<Waiting<K>>,
}

impl<K> Default for Confirmations<K> {
    fn default() -> Self {
        Self {
            out: None,
            next: Vec::new(),
        }
    }
}

impl<K> Confirmations<K> {
    /// Message `key` was written: the outcome the queue waits for (for
    /// [`Sending::WriteConfirmed`](super::Sending::WriteConfirmed)), and whether a ping
    /// must follow it now (none is out): write it, then call [`Confirmations::pinged`].
    pub fn written(&mut self, key: K) -> (LocalBoxFuture<'static, Outcome>, bool) {
        let (tell, told) = oneshot::channel();
        self.next.push(Waiting { key, tell });
        (confirmed(told), self.out.is_none())
    }

    /// Ping `id` was written: it covers every message written so far.
    pub fn pinged(&mut self, id: String) {
        self.out = Some(Ping {
            id,
            written: Instant::now(),
            covers: std::mem::take(&mut self.next),
        });
    }

    /// The server answered `id` (a result or an error: either way it handled what came
    /// before). `None` when `id` is not the ping out; else whether messages wait for
    /// another ping, to be written now.
    pub fn answered(&mut self, id: &str) -> Option<bool> {
        if self.out.as_ref().is_none_or(|ping| ping.id != id) {
            return None;
        }
        for part in self.out.take().map(|ping| ping.covers).unwrap_or_default() {
            let _ = part.tell.send(Outcome::Sent { pause: None });
        }
        Some(!self.next.is_empty())
    }

    /// Whether the ping out has waited longer than `timeout` (a stream that flows but
    /// leaves it unanswered is broken: its messages would wait for ever).
    pub fn overdue(&self, timeout: Duration) -> bool {
        self.out
            .as_ref()
            .is_some_and(|ping| ping.written.elapsed() > timeout)
    }

    /// The link ended: every waiting message is to be sent again (told `Retry`); their
    /// keys, since the server may have some of them.
    pub fn lost(&mut self) -> Vec<K> {
        let covered = self.out.take().map(|ping| ping.covers).unwrap_or_default();
        covered
            .into_iter()
            .chain(self.next.drain(..))
            .map(|part| {
                let _ = part.tell.send(lost_link());
                part.key
            })
            .collect()
    }

    /// Moves the ping out back in time by `by` (tests of [`Confirmations::overdue`]).
    #[cfg(test)]
    pub fn age(&mut self, by: Duration) {
        if let Some(ping) = self.out.as_mut() {
            ping.written -= by;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    type Told = LocalBoxFuture<'static, Outcome>;

    fn part(c: &mut Confirmations<String>, key: &str) -> (bool, Told) {
        let (told, ping_now) = c.written(key.into());
        (ping_now, told)
    }

    fn sent(told: &mut Told) -> bool {
        matches!(told.now_or_never(), Some(Outcome::Sent { pause: None }))
    }

    fn waiting(told: &mut Told) -> bool {
        told.now_or_never().is_none()
    }

    #[test]
    fn one_ping_out_at_a_time_confirms_every_part_written_before_it() {
        let mut c = Confirmations::default();
        let (ping_now, mut a) = part(&mut c, "a");
        assert!(ping_now, "nothing out: a ping follows the first part");
        c.pinged("p1".into());
        let (ping_now, mut b) = part(&mut c, "b");
        assert!(!ping_now, "p1 is out");
        let (_, mut d) = part(&mut c, "d");
        assert_eq!(c.answered("other"), None);
        assert_eq!(c.answered("p1"), Some(true), "b and d wait for the next");
        assert!(sent(&mut a));
        assert!(waiting(&mut b) && waiting(&mut d));
        c.pinged("p2".into());
        assert_eq!(c.answered("p2"), Some(false));
        assert!(sent(&mut b) && sent(&mut d));
        assert_eq!(c.answered("p2"), None, "answered once");
    }

    #[test]
    fn a_lost_link_retries_every_waiting_part_and_names_them() {
        let mut c = Confirmations::default();
        let (_, mut a) = part(&mut c, "a");
        c.pinged("p1".into());
        let (_, mut b) = part(&mut c, "b");
        assert_eq!(c.lost(), ["a", "b"]);
        for told in [&mut a, &mut b] {
            assert!(matches!(told.now_or_never(), Some(Outcome::Retry(_))));
        }
        assert!(!c.overdue(Duration::ZERO), "nothing out any more");
        let (ping_now, _) = part(&mut c, "c");
        assert!(ping_now);
    }

    #[test]
    fn a_ping_out_too_long_is_overdue() {
        let mut c = Confirmations::default();
        assert!(!c.overdue(Duration::ZERO));
        let _ = part(&mut c, "a");
        c.pinged("p1".into());
        assert!(!c.overdue(Duration::from_secs(30)));
        c.age(Duration::from_secs(31));
        assert!(c.overdue(Duration::from_secs(30)));
    }
}
