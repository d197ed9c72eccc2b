//! The platform contract: what differs from one chat platform to the next.
//!
//! A [`Platform`] is a protocol state machine with no actix in it: the connection actor
//! ([`super::Connection`]) opens the transport the platform describes, feeds it every frame,
//! timer and finished background call, and carries out the [`Effects`] it asks for (write a
//! frame, hand a chat message to the dispatcher, declare the link up, fail, stop). So a
//! platform's handshake, heartbeats, resume and sequence numbers are tested by calling its
//! methods and reading the effects, and everything the platforms share — reconnecting with
//! backoff, the status report, the outbound queue and its pacing, silence detection — is
//! written once, in the actor.

use std::time::Duration;

use futures_util::{future::LocalBoxFuture, stream::LocalBoxStream, Sink};

use super::{error::ConnectionError, outbox::Outcome};
use crate::{actors::messages::Deliver, domain::message::InboundMessage};

/// Longest from an open transport to the platform's "ready", unless the platform says
/// otherwise ([`Platform::handshake_timeout`]).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// A sink for the frames a platform writes on its transport.
pub type FrameSink<W> = std::pin::Pin<Box<dyn Sink<W, Error = ConnectionError>>>;

/// An open transport, as [`Platform::connect`] returns it.
pub struct Link<P: Platform> {
    /// Frames from the server, until the connection ends (an error or the end of the
    /// stream fails the link).
    pub frames: LocalBoxStream<'static, Result<P::Frame, ConnectionError>>,
    /// Where frames to the server go; `None` for a platform that only reads from its
    /// transport (Matrix's sync long-poll) and sends everything over HTTP.
    pub sink: Option<FrameSink<P::Write>>,
    /// What the platform learnt while connecting (its own account, a session id), given
    /// back to it in [`Platform::opened`].
    pub hello: P::Hello,
}

/// How one queued item is sent.
pub enum Sending<P: Platform> {
    /// Written on the transport: sent as soon as written (the console, XMPP's messages
    /// other than results, IRC with `confirm_lines = false`).
    Write(Vec<P::Write>),
    /// Written on the transport, then confirmed (XMPP's results, IRC's lines): the platform
    /// asks the server for something it answers only after handling what came before on
    /// the same stream (XMPP's ping, IRC's `PING`; `confirming.rs`), and `confirmed` gives
    /// the outcome (`Sent` at the answer, `Retry` when the link ends first), which the
    /// queue waits for as for a call. A message written into a link that dies before the
    /// server read it is then sent again, first in its lane, rather than lost.
    WriteConfirmed(Vec<P::Write>, LocalBoxFuture<'static, Outcome>),
    /// An HTTP call, whose outcome the queue waits for; the event, if any, goes to
    /// [`Platform::event`] first (a direct channel opened on the way, say).
    Call(LocalBoxFuture<'static, (Outcome, Option<P::Event>)>),
    /// Not sendable now (the link went away meanwhile): the item goes back to the front.
    NotNow,
}

/// What the platform asks the connection actor to do; collected during one call into the
/// platform and carried out right after it, in order: writes, then inbound messages, then
/// the change of state.
pub struct Effects<P: Platform> {
    pub(super) writes: Vec<P::Write>,
    pub(super) inbound: Vec<InboundMessage>,
    pub(super) queued: Vec<P::Item>,
    pub(super) tasks: Vec<LocalBoxFuture<'static, P::Event>>,
    pub(super) detached: Vec<LocalBoxFuture<'static, ()>>,
    pub(super) timers: Vec<(Duration, P::Event)>,
    pub(super) details: Vec<(String, serde_json::Value)>,
    pub(super) ready: bool,
    pub(super) end: Option<End>,
    pub(super) activity: bool,
}

/// How a link ends, when the platform says it should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Lost: reconnect after the backoff.
    Fail(ConnectionError),
    /// Refused for good: stop, report `down`.
    Halt(ConnectionError),
    /// The server asked for a new connection (Slack's `disconnect`, Discord's op 7): open
    /// one at once, without counting a failure.
    Renew(String),
}

impl<P: Platform> Default for Effects<P> {
    fn default() -> Self {
        Self {
            writes: Vec::new(),
            inbound: Vec::new(),
            queued: Vec::new(),
            tasks: Vec::new(),
            detached: Vec::new(),
            timers: Vec::new(),
            details: Vec::new(),
            ready: false,
            end: None,
            activity: false,
        }
    }
}

impl<P: Platform> Effects<P> {
    /// Writes a frame on the transport (protocol frames: pongs, heartbeats, handshakes;
    /// chat messages go through the queue, [`Effects::queue`]).
    pub fn write(&mut self, frame: P::Write) {
        self.writes.push(frame);
    }

    /// Hands a chat message to the dispatcher.
    pub fn inbound(&mut self, message: InboundMessage) {
        self.activity = true;
        self.inbound.push(message);
    }

    /// Queues an outbound item last, as a delivery's items are.
    pub fn queue(&mut self, item: P::Item) {
        self.queued.push(item);
    }

    /// Runs `task` in the background and gives its event to [`Platform::event`].
    pub fn spawn(&mut self, task: impl std::future::Future<Output = P::Event> + 'static) {
        self.tasks.push(Box::pin(task));
    }

    /// Runs `task` in the background for its own sake (an acknowledgement, a logged call).
    pub fn detach(&mut self, task: impl std::future::Future<Output = ()> + 'static) {
        self.detached.push(Box::pin(task));
    }

    /// Gives `event` to [`Platform::event`] after `delay`, unless the link ends first.
    pub fn after(&mut self, delay: Duration, event: P::Event) {
        self.timers.push((delay, event));
    }

    /// Shows `key: value` in the connection's `/actors` entry (a platform's own figures).
    pub fn detail(&mut self, key: &str, value: serde_json::Value) {
        self.details.push((key.to_owned(), value));
    }

    /// The handshake is done: the link is up, the queue may send.
    pub fn ready(&mut self) {
        self.ready = true;
    }

    /// Something happened on the platform: `/actors` shows the connection as active.
    pub fn activity(&mut self) {
        self.activity = true;
    }

    /// The link is lost; reconnect after the backoff.
    pub fn fail(&mut self, error: ConnectionError) {
        self.end.get_or_insert(End::Fail(error));
    }

    /// The platform refused the bridge for good; stop.
    pub fn halt(&mut self, error: ConnectionError) {
        self.end = Some(End::Halt(error));
    }

    /// Open a new link now, as the server asked (`why` is logged).
    pub fn renew(&mut self, why: impl Into<String>) {
        self.end.get_or_insert(End::Renew(why.into()));
    }

    /// Frames written so far (for tests of a platform's state machine).
    pub fn written(&self) -> &[P::Write] {
        &self.writes
    }

    /// Text frames written so far, as JSON (for tests of a websocket platform).
    #[cfg(test)]
    pub fn written_json(&self) -> Vec<serde_json::Value>
    where
        P: Platform<Write = awc::ws::Message>,
    {
        self.writes
            .iter()
            .map(|m| match m {
                awc::ws::Message::Text(t) => serde_json::from_str(t).expect("a JSON text frame"),
                other => panic!("not text: {other:?}"),
            })
            .collect()
    }

    /// Chat messages handed over so far (for tests).
    pub fn messages(&self) -> &[InboundMessage] {
        &self.inbound
    }

    /// Whether the link was declared up (for tests).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// How the link ends, if it does (for tests).
    pub fn ending(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Timers asked for (for tests).
    pub fn timers(&self) -> &[(Duration, P::Event)] {
        &self.timers
    }
}

/// One chat platform, as the connection actor drives it.
pub trait Platform: Sized + Unpin + 'static {
    /// The platform's name in logs (`mattermost`).
    const KIND: &'static str;
    /// A frame read from the transport: a websocket frame, an IRC line, a sync response.
    type Frame: 'static;
    /// A frame written on the transport.
    type Write: Unpin + 'static;
    /// One outbound message in the queue (one post, one line).
    type Item: Clone + Unpin + 'static;
    /// The platform's own happenings: timers it set, background calls it made.
    type Event: 'static;
    /// What connecting learnt, for [`Platform::opened`].
    type Hello: 'static;

    /// Opens a new link: resolves, connects, logs in as far as that takes HTTP calls.
    /// Called at start and after every failure, once the backoff has passed.
    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>>;

    /// The attempt [`Platform::connect`] started failed (before the link opened).
    fn connect_failed(&mut self, error: &ConnectionError) {
        let _ = error;
    }

    /// The transport is open: start the handshake (or, when there is none, call
    /// [`Effects::ready`]).
    fn opened(&mut self, hello: Self::Hello, fx: &mut Effects<Self>);

    /// A frame arrived.
    fn frame(&mut self, frame: Self::Frame, fx: &mut Effects<Self>);

    /// A timer or background call of the platform's finished.
    fn event(&mut self, event: Self::Event, fx: &mut Effects<Self>) {
        let _ = (event, fx);
    }

    /// The link ended (failed, halted or renewed): forget what belonged to it.
    fn closed(&mut self) {}

    /// Where the link stands, for another bridge process to resume it after taking the
    /// connection over (Mattermost: the websocket's connection id and sequence number, so
    /// the server replays what came meanwhile). `None`: nothing to resume (the default).
    fn resume_state(&self) -> Option<serde_json::Value> {
        None
    }

    /// Takes over `state`, saved by [`Platform::resume_state`] in the process that ran the
    /// connection before, ahead of connecting.
    fn resume_from(&mut self, state: serde_json::Value) {
        let _ = state;
    }

    /// Longest from an open transport to [`Effects::ready`]: a server that never finishes
    /// the handshake (no `hello`, no authentication answer, no `READY`) has the link dropped
    /// and reconnected after the backoff, like any lost link.
    fn handshake_timeout(&self) -> Duration {
        HANDSHAKE_TIMEOUT
    }

    /// How long a link may be silent before the actor calls [`Platform::keepalive`] (once
    /// per silent stretch); silent for [`Platform::keepalive_timeout`] more, the link is
    /// lost. `None`: the platform watches its link itself (Discord's heartbeats, Matrix's
    /// long poll).
    fn keepalive_interval(&self) -> Option<Duration> {
        None
    }

    /// How long after the keepalive the link may stay silent before it is lost; the
    /// keepalive interval again unless a platform says otherwise (XMPP's
    /// `ping_timeout_secs`).
    fn keepalive_timeout(&self) -> Duration {
        self.keepalive_interval().unwrap_or_default()
    }

    /// Keep the link alive (write a ping).
    fn keepalive(&mut self, fx: &mut Effects<Self>) {
        let _ = fx;
    }

    /// A delivery as queue items: rendered the platform's way, split at its limit.
    fn render(&mut self, delivery: Deliver) -> Vec<Self::Item>;

    /// The destination lane of an item: items of one lane go out in order, one at a time;
    /// different lanes may go out concurrently (as the connection's `QueuePolicy` allows).
    /// One lane for everything unless a platform says otherwise.
    fn lane(&self, item: &Self::Item) -> String {
        let _ = item;
        String::new()
    }

    /// Sends one item; called only while the link is up, in queue order, as fast as the
    /// queue's pacing allows.
    fn send(&mut self, item: &Self::Item) -> Sending<Self>;
}

/// A platform that also handles message `M` (buttons, webhooks), through the connection.
/// The connection forwards it with [`crate::platform_messages!`].
pub trait Handles<M: actix::Message>: Platform {
    /// The answer: `()`, or a future for one that takes time (an actix `ResponseFuture`).
    type Reply;
    /// Answers `message`; effects as for any other call.
    fn handle(&mut self, message: M, fx: &mut Effects<Self>) -> Self::Reply;
}
