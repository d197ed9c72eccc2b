//! The one connection actor every chat platform runs on.
//!
//! It owns what is the same everywhere: connecting and reconnecting with backoff (a refused
//! credential stops instead), the handshake deadline, silence detection and keepalives, the
//! bounded outbound queue and its pacing, the status report (`/ready`, `/actors`,
//! `/metrics`), `Deliver` in and `Inbound` out. The [`Platform`] it drives owns the rest.
//!
//! Each open link has a number (its generation); frames, timers and write failures of an
//! older link are ignored, so a link that is replaced or lost can never act on the new one.
//! The actor never restarts: a lost link is dropped and a new one opened, and the queue —
//! including a message whose send was under way — carries over.

use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::{future::LocalBoxFuture, SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::{
    error::ConnectionError,
    handoff::{off_thread, Handoff},
    outbox::{Next, Outbox, Outcome, QueuePolicy},
    platform::{Effects, End, Link, Platform, Sending},
    seen::taken_key,
};
use crate::{
    actors::{
        messages::{Deliver, Inbound, Receipt},
        status::{ActorState, StatusReporter},
    },
    domain::backoff::Backoff,
    lease::Gate,
};

/// Longest a connection attempt (resolving, connecting, HTTP log-in calls) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// What every connection is given besides its platform.
pub struct Wiring {
    /// The connection's name (`[[chat]] name`).
    pub name: String,
    /// Where chat messages go.
    pub dispatcher: Recipient<Inbound>,
    /// Its entry in `/actors`.
    pub status: StatusReporter,
    /// The reconnect policy.
    pub backoff: Backoff,
    /// What every outgoing message is masked with (secrets kept out of chat).
    pub mask: std::sync::Arc<crate::redact::SecretMask>,
    /// Whether this process may run the connection now ([`Gate::always`] for one process).
    pub gate: Gate,
    /// What the processes taking turns at the connection pass on (leased connections).
    pub handoff: Option<std::sync::Arc<dyn Handoff>>,
}

impl Wiring {
    /// With a connection's own `reconnect_initial_ms` / `reconnect_max_ms` where given.
    pub fn with_reconnect(mut self, initial_ms: Option<u64>, max_ms: Option<u64>) -> Self {
        self.backoff = self.backoff.overridden(initial_ms, max_ms);
        self
    }
}

/// The open transport of the current link.
struct OpenLink<P: Platform> {
    /// Frames for the writer task, each with whom to tell once it is flushed; dropping it
    /// closes the sink.
    writer: Option<mpsc::UnboundedSender<(P::Write, Option<Receipt>)>>,
    /// The frame reader, cancelled when the link is dropped.
    reader: SpawnHandle,
    /// When the last frame arrived.
    last_frame: Instant,
    /// A keepalive went out since the last frame.
    pinged: bool,
}

/// The gate opened (`true`) or closed.
struct GateChanged(bool);

impl Message for GateChanged {
    type Result = ();
}

/// An item of a link's frame stream, tagged with its generation.
struct LinkItem<P: Platform>(u64, Option<Result<P::Frame, ConnectionError>>);

impl<P: Platform> Message for LinkItem<P> {
    type Result = ();
}

/// A message in the outbound queue, with whom to tell once the platform has it.
struct Queued<I> {
    item: I,
    /// Only on the last part of a delivery: the whole message has left when it has.
    receipt: Option<Receipt>,
}

impl<I> Queued<I> {
    /// A part nobody waits for (a protocol message, or not the last part).
    fn bare(item: I) -> Self {
        Self {
            item,
            receipt: None,
        }
    }

    /// Tells whoever waits for this part that it has left.
    fn posted(&mut self) {
        if let Some(receipt) = self.receipt.take() {
            receipt.posted();
        }
    }
}

/// A chat connection: a platform and the machinery around it.
pub struct Connection<P: Platform> {
    platform: P,
    name: String,
    dispatcher: Recipient<Inbound>,
    status: StatusReporter,
    backoff: Backoff,
    outbox: Outbox<Queued<P::Item>>,
    mask: std::sync::Arc<crate::redact::SecretMask>,
    /// The number of the current (or next) link.
    generation: u64,
    link: Option<OpenLink<P>>,
    /// A connection attempt is under way.
    connecting: bool,
    /// The current link finished its handshake.
    up: bool,
    /// Refused for good: no more attempts.
    halted: bool,
    /// When the next scheduled pump runs, if one is scheduled.
    pump_at: Option<Instant>,
    /// Whether this process may run the connection now.
    gate: Gate,
    /// What is passed on to the next holder of a leased connection.
    handoff: Option<std::sync::Arc<dyn Handoff>>,
    /// The resume state last saved (or being saved), and a newer one waiting for that save.
    resume_saved: Option<serde_json::Value>,
    resume_next: Option<serde_json::Value>,
    resume_saving: bool,
}

impl<P: Platform> Connection<P> {
    /// A connection running `platform`; it connects when started.
    pub fn new(platform: P, wiring: Wiring, queue: QueuePolicy) -> Self {
        let outbox = Outbox::new(wiring.name.clone(), P::KIND, queue);
        Self {
            platform,
            name: wiring.name,
            dispatcher: wiring.dispatcher,
            status: wiring.status,
            backoff: wiring.backoff,
            outbox,
            mask: wiring.mask,
            generation: 0,
            link: None,
            connecting: false,
            up: false,
            halted: false,
            pump_at: None,
            gate: wiring.gate,
            handoff: wiring.handoff,
            resume_saved: None,
            resume_next: None,
            resume_saving: false,
        }
    }

    /// Runs `f` on the platform and carries out the effects it asked for.
    pub fn with_platform<R>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut P, &mut Effects<P>) -> R,
    ) -> R {
        let mut fx = Effects::default();
        let out = f(&mut self.platform, &mut fx);
        self.apply(fx, ctx);
        out
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.halted || self.connecting || !self.gate.is_open(Instant::now()) {
            return;
        }
        self.connecting = true;
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, self.platform.connect());
        ctx.spawn(attempt.into_actor(self).map(|result, act, ctx| {
            act.connecting = false;
            match result {
                Ok(Ok(link)) => act.open(link, ctx),
                Ok(Err(error)) => {
                    act.platform.connect_failed(&error);
                    act.end(End::Fail(error), ctx);
                }
                Err(_) => {
                    let error = ConnectionError::Timeout("connecting".into());
                    act.platform.connect_failed(&error);
                    act.end(End::Fail(error), ctx);
                }
            }
        }));
    }

    fn open(&mut self, link: Link<P>, ctx: &mut Context<Self>) {
        if self.halted || !self.gate.is_open(Instant::now()) {
            // Halted, or the lease went while connecting: the new link is not used.
            return;
        }
        // A renewal replaces a working link only now that the new one is open.
        self.drop_link(ctx);
        let generation = self.generation;
        let frames = link
            .frames
            .map(move |frame| LinkItem::<P>(generation, Some(frame)))
            .chain(futures_util::stream::once(async move {
                LinkItem(generation, None)
            }));
        let reader = ctx.add_stream(frames);
        let writer = link.sink.map(|mut sink| {
            let (tx, mut rx) = mpsc::unbounded_channel::<(P::Write, Option<Receipt>)>();
            let pump = async move {
                let mut flushed = Vec::new();
                while let Some((frame, receipt)) = rx.recv().await {
                    flushed.extend(receipt);
                    sink.feed(frame).await?;
                    // Whatever else is waiting goes in the same flush.
                    while let Ok((frame, receipt)) = rx.try_recv() {
                        flushed.extend(receipt);
                        sink.feed(frame).await?;
                    }
                    sink.flush().await?;
                    // Out of the bridge: whoever waits for these is told. (A receipt lost
                    // with a failed link leaves its message owed.)
                    for receipt in flushed.drain(..) {
                        receipt.posted();
                    }
                }
                let _ = sink.close().await;
                Ok::<_, ConnectionError>(())
            };
            ctx.spawn(pump.into_actor(self).map(move |result, act, ctx| {
                if let Err(error) = result {
                    if act.generation == generation {
                        act.end(End::Fail(error), ctx);
                    }
                }
            }));
            tx
        });
        self.link = Some(OpenLink {
            writer,
            reader,
            last_frame: Instant::now(),
            pinged: false,
        });
        let handshake = self.platform.handshake_timeout();
        ctx.run_later(handshake, move |act, ctx| {
            if act.generation == generation && act.link.is_some() && !act.up {
                let step = format!("the {} handshake ({} s)", P::KIND, handshake.as_secs());
                act.end(End::Fail(ConnectionError::Timeout(step)), ctx);
            }
        });
        self.watch_link(generation, ctx);
        let hello = link.hello;
        self.with_platform(ctx, |p, fx| p.opened(hello, fx));
    }

    /// Forgets the current link: its reader stops, its writer closes, its timers lapse.
    fn drop_link(&mut self, ctx: &mut Context<Self>) {
        if let Some(link) = self.link.take() {
            ctx.cancel_future(link.reader);
            self.platform.closed();
        }
        self.generation += 1;
        self.up = false;
    }

    fn end(&mut self, end: End, ctx: &mut Context<Self>) {
        match end {
            End::Fail(error) if !error.is_fatal() => {
                let delay = self.backoff.next_delay();
                tracing::warn!(connection = %self.name, error = %error, retry_in_ms = delay.as_millis() as u64, "{} connection lost; reconnecting", P::KIND);
                self.drop_link(ctx);
                self.status.restarted(Some(error.to_string()));
                ctx.run_later(delay, |act, ctx| act.connect(ctx));
            }
            End::Fail(error) | End::Halt(error) => {
                tracing::error!(connection = %self.name, error = %error, "{} connection stopped; fix the configuration and restart the bridge", P::KIND);
                self.drop_link(ctx);
                self.halted = true;
                self.status.state(ActorState::Down, Some(error.to_string()));
            }
            End::Renew(why) => {
                tracing::info!(connection = %self.name, reason = %why, "{} asked for a new connection", P::KIND);
                // The current link keeps working until the new one is open.
                self.connect(ctx);
            }
        }
    }

    fn apply(&mut self, fx: Effects<P>, ctx: &mut Context<Self>) {
        let Effects {
            writes,
            inbound,
            queued,
            tasks,
            detached,
            timers,
            details,
            ready,
            end,
            activity,
        } = fx;
        if !details.is_empty() {
            self.status.details(details);
        }
        for frame in writes {
            self.write(frame, None);
        }
        if activity {
            self.status.activity();
        }
        self.dispatch(inbound, ctx);
        for task in tasks {
            ctx.spawn(task.into_actor(self).map(|event, act, ctx| {
                act.with_platform(ctx, |p, fx| p.event(event, fx));
            }));
        }
        for task in detached {
            ctx.spawn(task.into_actor(self));
        }
        let generation = self.generation;
        for (delay, event) in timers {
            ctx.run_later(delay, move |act, ctx| {
                if act.generation == generation && act.link.is_some() {
                    act.with_platform(ctx, |p, fx| p.event(event, fx));
                }
            });
        }
        let mut pump = !queued.is_empty();
        for item in queued {
            let lane = self.platform.lane(&item);
            self.outbox.push(&lane, Queued::bare(item));
        }
        if ready && !self.up && self.link.is_some() && end.is_none() {
            self.up = true;
            self.backoff.reset();
            self.status.state(ActorState::Up, None);
            tracing::info!(connection = %self.name, queued = self.outbox.waiting(), "{} connected", P::KIND);
            pump = true;
        }
        match end {
            Some(end) => self.end(end, ctx),
            None if pump => self.pump(ctx),
            None => {}
        }
        self.outbox.report(&mut self.status);
        self.save_resume(ctx);
    }

    /// Hands chat messages to the dispatcher, in order. On a leased connection each is
    /// first taken in the shared store by its platform id, so one the platform delivers
    /// again after a takeover runs once; meanwhile the actor waits (order is kept).
    fn dispatch(
        &mut self,
        inbound: Vec<crate::domain::message::InboundMessage>,
        ctx: &mut Context<Self>,
    ) {
        if inbound.is_empty() {
            return;
        }
        let Some(handoff) = self.handoff.clone() else {
            for message in inbound {
                self.dispatcher.do_send(Inbound(message));
            }
            return;
        };
        let ids: Vec<String> = inbound
            .iter()
            .filter_map(|m| Some(taken_key(&m.room.id, m.message_id.as_deref()?)))
            .collect();
        let name = self.name.clone();
        let take = off_thread(handoff, move |h| h.first_to_take(&name, &ids));
        ctx.wait(take.into_actor(self).map(move |taken, act, _ctx| {
            let taken = taken.unwrap_or_else(|e| {
                // Running a message twice is better than not at all.
                tracing::warn!(connection = %act.name, error = %e, "could not record chat messages as taken; running them anyway");
                Vec::new()
            });
            let mut taken = taken.into_iter();
            for message in inbound {
                let first = match message.message_id {
                    Some(_) => taken.next().unwrap_or(true),
                    None => true,
                };
                if first {
                    act.dispatcher.do_send(Inbound(message));
                } else {
                    tracing::debug!(connection = %act.name, "a chat message another bridge process already ran came again; skipped");
                }
            }
        }));
    }

    /// Saves where the link stands for the next holder when it moved (one save at a time;
    /// the newest state waiting goes next).
    fn save_resume(&mut self, ctx: &mut Context<Self>) {
        let Some(handoff) = self.handoff.clone() else {
            return;
        };
        if !self.up {
            return;
        }
        let Some(state) = self.platform.resume_state() else {
            return;
        };
        if self.resume_saved.as_ref() == Some(&state) || self.resume_next.as_ref() == Some(&state) {
            return;
        }
        if self.resume_saving {
            self.resume_next = Some(state);
            return;
        }
        self.resume_saving = true;
        self.resume_saved = Some(state.clone());
        let name = self.name.clone();
        let save = off_thread(handoff, move |h| h.save_resume(&name, &state.to_string()));
        ctx.spawn(save.into_actor(self).map(|saved, act, ctx| {
            act.resume_saving = false;
            if let Err(e) = saved {
                tracing::debug!(connection = %act.name, error = %e, "could not save where the link stands for the next holder");
                act.resume_saved = None;
            }
            if let Some(next) = act.resume_next.take() {
                if act.resume_saved.as_ref() != Some(&next) {
                    act.save_resume(ctx);
                }
            }
        }));
    }

    /// Loads where the last holder's link stood and connects from there.
    fn take_over(&mut self, ctx: &mut Context<Self>) {
        let Some(handoff) = self.handoff.clone() else {
            return self.connect(ctx);
        };
        let name = self.name.clone();
        let load = off_thread(handoff, move |h| h.load_resume(&name));
        ctx.spawn(load.into_actor(self).map(|loaded, act, ctx| {
            match loaded {
                Ok(Some(text)) => match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(state) => {
                        act.resume_saved = Some(state.clone());
                        act.platform.resume_from(state);
                    }
                    Err(e) => tracing::warn!(connection = %act.name, error = %e, "the last holder's resume state is not JSON; starting afresh"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(connection = %act.name, error = %e, "could not load where the last holder's link stood; starting afresh"),
            }
            act.connect(ctx);
        }));
    }

    /// Hands `frame` to the link's writer; `receipt` is told once it is flushed.
    fn write(&mut self, frame: P::Write, receipt: Option<Receipt>) {
        let sent = self
            .link
            .as_ref()
            .and_then(|link| link.writer.as_ref())
            .is_some_and(|writer| writer.send((frame, receipt)).is_ok());
        if !sent {
            tracing::debug!(connection = %self.name, "no open link; a protocol frame was not written");
        }
    }

    fn schedule_pump(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        let at = Instant::now() + delay;
        if self.pump_at.is_some_and(|scheduled| scheduled <= at) {
            return;
        }
        self.pump_at = Some(at);
        ctx.run_later(delay, |act, ctx| {
            act.pump_at = None;
            act.pump(ctx);
        });
    }

    /// Sends what the queue and its pacing allow now: one message per destination at a
    /// time, several destinations at once where the policy allows.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.up {
            let now = Instant::now();
            // The fence: nothing goes out once the lease may have passed to another process.
            if !self.gate.is_open(now) {
                break;
            }
            let (lane, mut queued) = match self.outbox.next(now) {
                Next::Send(lane, queued) => (lane, queued),
                Next::Wait(delay) => {
                    self.schedule_pump(delay, ctx);
                    break;
                }
                Next::Idle => break,
            };
            match self.platform.send(&queued.item) {
                Sending::Write(frames) => {
                    // The receipt goes with the last frame: told once it is flushed to the
                    // link, which is as far as the bridge can know it was posted.
                    let mut receipt = queued.receipt.take();
                    let mut frames = frames.into_iter().peekable();
                    while let Some(frame) = frames.next() {
                        let last = frames.peek().is_none();
                        self.write(frame, if last { receipt.take() } else { None });
                    }
                    // No frames at all: nothing to wait for.
                    if let Some(receipt) = receipt {
                        receipt.posted();
                    }
                    self.status.activity();
                    self.outbox
                        .finish(&lane, queued, Outcome::Sent { pause: None }, now);
                }
                Sending::NotNow => {
                    self.outbox.put_back(&lane, queued);
                    break;
                }
                Sending::WriteConfirmed(frames, confirmed) => {
                    for frame in frames {
                        self.write(frame, None);
                    }
                    self.status.activity();
                    let call = async move { (confirmed.await, None) };
                    let written_on = Some(self.generation);
                    self.await_outcome(lane, queued, Box::pin(call), written_on, ctx);
                }
                Sending::Call(call) => self.await_outcome(lane, queued, call, None, ctx),
            }
        }
        self.outbox.report(&mut self.status);
    }

    /// Waits for the outcome of sending `queued` (a call, or a confirmation of what was
    /// written on link `written_on`), then finishes it in its lane and sends on.
    fn await_outcome(
        &mut self,
        lane: String,
        mut queued: Queued<P::Item>,
        call: LocalBoxFuture<'static, (Outcome, Option<P::Event>)>,
        written_on: Option<u64>,
        ctx: &mut Context<Self>,
    ) {
        ctx.spawn(
            call.into_actor(self)
                .map(move |(outcome, event), act, ctx| {
                    if let Some(event) = event {
                        act.with_platform(ctx, |p, fx| p.event(event, fx));
                    }
                    // Written on a link that ended before the server confirmed it: first in
                    // its lane again, for the next link (`Outbox::resend`).
                    let link_ended = written_on.is_some_and(|g| g != act.generation);
                    if link_ended && matches!(&outcome, Outcome::Retry(e) if !e.is_fatal()) {
                        act.outbox.resend(&lane, queued);
                        act.outbox.report(&mut act.status);
                        act.pump(ctx);
                        return;
                    }
                    if matches!(outcome, Outcome::Sent { .. }) {
                        act.status.activity();
                    }
                    // Credentials refused while sending: the message stays first in the queue, and
                    // the connection stops like a refused log-in.
                    let refused = match &outcome {
                        Outcome::Retry(error) if error.is_fatal() => Some(error.clone()),
                        _ => None,
                    };
                    // Accepted, or refused for good: either way nobody waits any longer. A retried
                    // message keeps its receipt.
                    if matches!(outcome, Outcome::Sent { .. } | Outcome::Rejected(_)) {
                        queued.posted();
                    }
                    let wait = act.outbox.finish(&lane, queued, outcome, Instant::now());
                    if let Some(error) = refused {
                        act.end(End::Halt(error), ctx);
                    }
                    act.outbox.report(&mut act.status);
                    if wait.is_zero() {
                        act.pump(ctx);
                    } else {
                        act.schedule_pump(wait, ctx);
                    }
                }),
        );
    }

    /// Watches the link `generation` for silence without polling: one wakeup when the link
    /// could first be silent for the keepalive interval. Then, if frames came meanwhile, the
    /// next wakeup is an interval after the last one; if not, a keepalive goes out and the
    /// wakeup after that is when silence would pass the interval plus the keepalive's
    /// timeout, which loses the link.
    fn watch_link(&mut self, generation: u64, ctx: &mut Context<Self>) {
        let Some(interval) = self.platform.keepalive_interval() else {
            return;
        };
        let lost_after = interval + self.platform.keepalive_timeout();
        let Some(link) = self.link.as_ref().filter(|_| self.generation == generation) else {
            return;
        };
        let silent = link.last_frame.elapsed();
        let wake = if silent > lost_after {
            return self.end(End::Fail(ConnectionError::Silent(silent)), ctx);
        } else if silent >= interval {
            if !link.pinged {
                if let Some(link) = self.link.as_mut() {
                    link.pinged = true;
                }
                self.with_platform(ctx, |p, fx| p.keepalive(fx));
            }
            lost_after - silent + Duration::from_millis(1)
        } else {
            interval - silent
        };
        ctx.run_later(wake, move |act, ctx| act.watch_link(generation, ctx));
    }
}

impl<P: Platform> Actor for Connection<P> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // From the start, so the queue's series read 0 instead of missing.
        self.outbox.report(&mut self.status);
        if let Some(changes) = self.gate.changes() {
            ctx.add_stream(changes.map(GateChanged));
            // Ready to take over: a standby is not a failure.
            self.status.state(ActorState::Up, None);
            self.status
                .details(vec![("lease".to_owned(), serde_json::json!("standby"))]);
        }
        self.connect(ctx);
    }
}

impl<P: Platform> StreamHandler<GateChanged> for Connection<P> {
    fn handle(&mut self, GateChanged(open): GateChanged, ctx: &mut Self::Context) {
        let lease = if open { "held" } else { "standby" };
        self.status
            .details(vec![("lease".to_owned(), serde_json::json!(lease))]);
        if open {
            tracing::info!(connection = %self.name, "{} connection's lease taken; connecting", P::KIND);
            self.backoff.reset();
            self.take_over(ctx);
        } else {
            tracing::warn!(connection = %self.name, dropped = self.outbox.queued(), "{} connection's lease lost; another bridge process runs it now", P::KIND);
            self.drop_link(ctx);
            // What waits here is another process's to send now: results are still owed in
            // the store (their receipts never fire), and the new holder posts them.
            self.outbox.clear();
            self.status.state(ActorState::Up, None);
            self.outbox.report(&mut self.status);
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl<P: Platform> StreamHandler<LinkItem<P>> for Connection<P> {
    fn handle(&mut self, LinkItem(generation, item): LinkItem<P>, ctx: &mut Self::Context) {
        if generation != self.generation {
            return;
        }
        match item {
            Some(Ok(frame)) => {
                if let Some(link) = self.link.as_mut() {
                    link.last_frame = Instant::now();
                    link.pinged = false;
                }
                self.with_platform(ctx, |p, fx| p.frame(frame, fx));
            }
            Some(Err(error)) => self.end(End::Fail(error), ctx),
            None => self.end(End::Fail(ConnectionError::Closed(None)), ctx),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // The end of each link's stream arrives as an item (above), tagged with its link.
    }
}

impl<P: Platform> Handler<Deliver> for Connection<P> {
    type Result = ();

    fn handle(&mut self, mut delivery: Deliver, ctx: &mut Self::Context) {
        if !self.gate.is_open(Instant::now()) {
            // Another bridge process runs the connection: it posts (results stay owed in
            // the store until it has).
            tracing::debug!(connection = %self.name, "not this process's connection now; message left to its holder");
            return;
        }
        // Before any platform formatting: what leaves the bridge has its secrets masked.
        if let std::borrow::Cow::Owned(masked) = self.mask.text(&delivery.text) {
            delivery.text = masked;
        }
        if let Some(extra) = delivery.extra.as_mut() {
            self.mask.value(extra);
        }
        // The platform sees the receipt too: its id names the message across processes
        // (a platform that takes a client-chosen id derives it from there).
        let mut receipt = delivery.receipt.clone();
        let mut parts = self.platform.render(delivery).into_iter().peekable();
        while let Some(item) = parts.next() {
            let lane = self.platform.lane(&item);
            let receipt = if parts.peek().is_none() {
                receipt.take()
            } else {
                None
            };
            self.outbox.push(&lane, Queued { item, receipt });
        }
        // Nothing to send (an empty message): nothing to wait for.
        if let Some(receipt) = receipt {
            receipt.posted();
        }
        if !self.up {
            tracing::debug!(connection = %self.name, queued = self.outbox.waiting(), "reply queued while disconnected");
        }
        self.pump(ctx);
    }
}

/// Forwards messages a platform handles ([`super::Handles`]) through its connection:
/// `platform_messages!(Mattermost: OfferButtons, ActionRequest);`.
#[macro_export]
macro_rules! platform_messages {
    ($platform:ty : $($message:ty),+ $(,)?) => {
        $(
            impl ::actix::Handler<$message> for $crate::backends::connection::Connection<$platform> {
                type Result = <$platform as $crate::backends::connection::Handles<$message>>::Reply;

                fn handle(&mut self, message: $message, ctx: &mut ::actix::Context<Self>) -> Self::Result {
                    self.with_platform(ctx, |platform, fx| {
                        <$platform as $crate::backends::connection::Handles<$message>>::handle(platform, message, fx)
                    })
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    //! The actor around a toy line protocol: `hello` finishes the handshake, `say TEXT` is a
    //! chat message, `bye` asks for a new link; deliveries go out as `post TEXT` and the
    //! keepalive as `ping`. Each test drives links the actor opened and reads what it wrote,
    //! what reached the dispatcher and what `/actors` says.
    use std::{cell::RefCell, rc::Rc, sync::Arc};

    use futures_util::future::LocalBoxFuture;

    use super::*;
    use crate::{
        actors::status::{ActorStatus, Health, StatusRegistry},
        domain::message::{ChatUser, InboundMessage, Room, RoomKind},
        metrics::Metrics,
        redact::{RedactConfig, Redactor, SecretMask},
    };

    /// The test's side of the links.
    #[derive(Default)]
    struct Wire {
        /// The server end of each link opened, oldest first.
        servers: Vec<mpsc::UnboundedSender<Result<String, ConnectionError>>>,
        /// Frames written on any link, with when.
        written: Vec<(String, Instant)>,
        /// When each link opened.
        opened: Vec<Instant>,
        /// Whom to tell how each confirmed item went (`c:LANE:TEXT` items).
        confirming: Vec<tokio::sync::oneshot::Sender<Outcome>>,
    }

    struct Lines {
        wire: Rc<RefCell<Wire>>,
        handshake: Duration,
        keepalive: Option<(Duration, Duration)>,
    }

    impl Platform for Lines {
        const KIND: &'static str = "lines";
        type Frame = String;
        type Write = String;
        type Item = String;
        type Event = ();
        type Hello = ();

        fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let mut wire = self.wire.borrow_mut();
            wire.servers.push(tx);
            wire.opened.push(Instant::now());
            let frames = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            let written = self.wire.clone();
            let sink = futures_util::sink::unfold((), move |(), frame: String| {
                written.borrow_mut().written.push((frame, Instant::now()));
                async { Ok::<_, ConnectionError>(()) }
            });
            Box::pin(async move {
                Ok(Link {
                    frames: frames.boxed_local(),
                    sink: Some(Box::pin(sink)),
                    hello: (),
                })
            })
        }

        fn opened(&mut self, _hello: (), _fx: &mut Effects<Self>) {}

        fn frame(&mut self, frame: String, fx: &mut Effects<Self>) {
            match frame.split_once(' ') {
                _ if frame == "hello" => fx.ready(),
                _ if frame == "bye" => fx.renew("the server said bye"),
                Some(("say", text)) => fx.inbound(InboundMessage {
                    user: ChatUser {
                        connection: "t".into(),
                        id: "alice".into(),
                        name: "alice".into(),
                    },
                    room: Room {
                        connection: "t".into(),
                        id: "room".into(),
                        kind: RoomKind::Group,
                        thread: None,
                    },
                    text: text.into(),
                    message_id: None,
                    mentioned: false,
                    room_name: None,
                    org: None,
                }),
                _ => {}
            }
        }

        fn handshake_timeout(&self) -> Duration {
            self.handshake
        }

        fn keepalive_interval(&self) -> Option<Duration> {
            self.keepalive.map(|(interval, _)| interval)
        }

        fn keepalive_timeout(&self) -> Duration {
            self.keepalive
                .map(|(_, timeout)| timeout)
                .unwrap_or_default()
        }

        fn keepalive(&mut self, fx: &mut Effects<Self>) {
            fx.write("ping".into());
        }

        fn render(&mut self, delivery: Deliver) -> Vec<String> {
            vec![delivery.text]
        }

        /// `c:LANE:TEXT` goes to lane `LANE`; everything else to one lane.
        fn lane(&self, item: &String) -> String {
            item.strip_prefix("c:")
                .and_then(|rest| rest.split(':').next())
                .unwrap_or_default()
                .to_owned()
        }

        /// `c:…` items are confirmed by the test ([`Running::confirm_all`]), or told to go
        /// again when their link ends.
        fn send(&mut self, item: &String) -> Sending<Self> {
            let frames = vec![format!("post {item}")];
            if !item.starts_with("c:") {
                return Sending::Write(frames);
            }
            let (tell, told) = tokio::sync::oneshot::channel();
            self.wire.borrow_mut().confirming.push(tell);
            Sending::WriteConfirmed(frames, super::super::confirming::confirmed(told))
        }

        fn closed(&mut self) {
            for tell in self.wire.borrow_mut().confirming.drain(..) {
                let _ = tell.send(Outcome::Retry(ConnectionError::Closed(None)));
            }
        }
    }

    /// Collects what reaches the dispatcher.
    struct Dispatcher(Rc<RefCell<Vec<String>>>);

    impl Actor for Dispatcher {
        type Context = Context<Self>;
    }

    impl Handler<Inbound> for Dispatcher {
        type Result = ();

        fn handle(&mut self, Inbound(m): Inbound, _ctx: &mut Context<Self>) {
            self.0.borrow_mut().push(m.text);
        }
    }

    struct Running {
        wire: Rc<RefCell<Wire>>,
        inbound: Rc<RefCell<Vec<String>>>,
        registry: Addr<StatusRegistry>,
        connection: Addr<Connection<Lines>>,
    }

    impl Running {
        fn start(handshake: Duration, keepalive: Option<(Duration, Duration)>) -> Self {
            Self::start_with(handshake, keepalive, 1)
        }

        /// With up to `in_flight` lanes sending at once.
        fn start_with(
            handshake: Duration,
            keepalive: Option<(Duration, Duration)>,
            in_flight: usize,
        ) -> Self {
            let wire = Rc::new(RefCell::new(Wire::default()));
            let inbound = Rc::new(RefCell::new(Vec::new()));
            let registry = StatusRegistry::new(Metrics::new()).start();
            let redactor = Arc::new(Redactor::new(&RedactConfig::default()).unwrap());
            let wiring = Wiring {
                name: "t".into(),
                dispatcher: Dispatcher(inbound.clone()).start().recipient(),
                status: StatusReporter::new("chat:t", registry.clone().recipient(), true),
                backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(20)),
                mask: Arc::new(SecretMask::new(redactor, Duration::from_secs(60))),
                gate: Gate::always(),
                handoff: None,
            };
            let platform = Lines {
                wire: wire.clone(),
                handshake,
                keepalive,
            };
            let queue = QueuePolicy {
                max_in_flight: in_flight,
                ..QueuePolicy::serial(100, super::super::outbox::Pace::unlimited())
            };
            let connection = Connection::new(platform, wiring, queue).start();
            Self {
                wire,
                inbound,
                registry,
                connection,
            }
        }

        fn links(&self) -> usize {
            self.wire.borrow().servers.len()
        }

        /// Sends `frame` from the server end of the newest link.
        fn server_says(&self, frame: &str) {
            let wire = self.wire.borrow();
            let server = wire.servers.last().expect("a link");
            server.send(Ok(frame.to_owned())).expect("the link is read");
        }

        /// The server confirms every confirmed item written so far.
        fn confirm_all(&self) {
            for tell in self.wire.borrow_mut().confirming.drain(..) {
                let _ = tell.send(Outcome::Sent { pause: None });
            }
        }

        fn written(&self) -> Vec<String> {
            self.wire
                .borrow()
                .written
                .iter()
                .map(|(w, _)| w.clone())
                .collect()
        }

        async fn status(&self) -> ActorStatus {
            let report = self.registry.send(Health).await.unwrap();
            report
                .actors
                .into_iter()
                .find(|a| a.name == "chat:t")
                .expect("listed")
        }

        /// Waits until the connection's status in the registry satisfies `done`, for a
        /// bounded time.
        async fn status_until(&self, what: &str, done: impl Fn(&ActorStatus) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !done(&self.status().await) {
                assert!(Instant::now() < deadline, "timed out waiting: {what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Waits until `done` holds, for a bounded time.
    async fn until(what: &str, done: impl FnMut() -> bool) {
        until_within(Duration::from_secs(10), what, done).await;
    }

    /// Waits until `done` holds, for at most `limit`.
    async fn until_within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn deliver(text: &str) -> Deliver {
        crate::actors::messages::test_support::room_message("room", text)
    }

    #[actix_rt::test]
    async fn a_handshake_that_never_finishes_is_dropped_and_retried_after_the_backoff() {
        let t = Running::start(Duration::from_millis(50), None);
        until("two links given up on", || t.links() >= 3).await;
        let status = t.status().await;
        assert_eq!(status.state, ActorState::Reconnecting);
        assert!(status.restarts >= 2, "{status:?}");
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("the lines handshake (0 s) timed out")),
            "{status:?}"
        );
        // The platform's own deadline, not a fixed one: well under a second apart.
        let opened = t.wire.borrow().opened.clone();
        assert!(opened[1] - opened[0] < Duration::from_secs(1), "{opened:?}");

        // A server that finishes the handshake in time keeps its link.
        let links = t.links();
        t.server_says("hello");
        t.status_until("up", |s| s.state == ActorState::Up).await;
        assert_eq!(
            t.links(),
            links,
            "the link that finished its handshake is kept"
        );
    }

    #[actix_rt::test]
    async fn messages_flow_both_ways_and_deliveries_wait_for_the_handshake() {
        let t = Running::start(Duration::from_secs(60), None);
        until("a link", || t.links() == 1).await;
        t.connection.do_send(deliver("queued while connecting"));
        t.server_says("say before ready");
        until("the frame read", || !t.inbound.borrow().is_empty()).await;
        assert!(
            t.written().is_empty(),
            "nothing is sent before the handshake"
        );

        t.server_says("hello");
        until("the queue sent", || !t.written().is_empty()).await;
        assert_eq!(t.written(), ["post queued while connecting"]);
        t.connection.do_send(deliver("second"));
        t.server_says("say hi");
        until("both ways", || {
            t.written().len() == 2 && t.inbound.borrow().len() == 2
        })
        .await;
        assert_eq!(t.written()[1], "post second");
        assert_eq!(*t.inbound.borrow(), ["before ready", "hi"]);
    }

    #[actix_rt::test]
    async fn a_renewal_opens_a_new_link_without_counting_a_failure() {
        let t = Running::start(Duration::from_secs(60), None);
        until("a link", || t.links() == 1).await;
        t.server_says("hello");
        t.server_says("bye");
        until("a second link", || t.links() == 2).await;
        t.server_says("hello");
        t.connection.do_send(deliver("on the new link"));
        until("sent", || !t.written().is_empty()).await;
        let status = t.status().await;
        assert_eq!(status.restarts, 0, "{status:?}");
        assert_eq!(status.state, ActorState::Up);
    }

    #[actix_rt::test]
    async fn a_silent_link_is_pinged_then_dropped_after_the_keepalive_timeout() {
        let interval = Duration::from_millis(30);
        let timeout = Duration::from_millis(300);
        let t = Running::start(Duration::from_secs(60), Some((interval, timeout)));
        until("a link", || t.links() == 1).await;
        t.server_says("hello");
        until("a second link", || t.links() == 2).await;
        let silent_after_ping = {
            let wire = t.wire.borrow();
            let pinged = wire
                .written
                .iter()
                .find(|(w, _)| w == "ping")
                .map(|(_, at)| *at)
                .expect("a keepalive before the link was dropped");
            wire.opened[1] - pinged
        };
        assert!(
            silent_after_ping >= timeout - Duration::from_millis(30),
            "the ping had its timeout to be answered, not {silent_after_ping:?}"
        );
        let status = t.status().await;
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("no data from the server")),
            "{status:?}"
        );
    }

    /// XMPP's result parts wait for the server's confirmation while other destinations send
    /// on. A link lost meanwhile leaves each waiting part to go again, first in its
    /// destination, on the next link, and promptly: the link's end is not a failed send, so
    /// it adds no send backoff per part (forty of them would have added up to the outbox's
    /// longest pause, 7.5–15 s with its jitter; the parts go again within milliseconds of
    /// the handshake, and the test allows 5 s).
    #[actix_rt::test]
    async fn parts_a_lost_link_left_unconfirmed_go_again_first_and_promptly_on_the_next_link() {
        const LANES: usize = 40;
        let t = Running::start_with(Duration::from_secs(60), None, LANES);
        until("a link", || t.links() == 1).await;
        t.server_says("hello");
        for n in 0..LANES {
            t.connection.do_send(deliver(&format!("c:{n}:first")));
            t.connection.do_send(deliver(&format!("c:{n}:second")));
        }
        let firsts = |written: &[String]| {
            written
                .iter()
                .filter(|w| w.starts_with("post c:") && w.ends_with(":first"))
                .count()
        };
        until("every destination's first part written at once", || {
            firsts(&t.written()) == LANES
        })
        .await;
        assert!(
            !t.written().iter().any(|w| w.ends_with(":second")),
            "a destination's next part waits for the confirmation of the last"
        );

        // The link ends before the server confirmed any.
        t.wire.borrow().servers[0]
            .send(Err(ConnectionError::Closed(None)))
            .expect("the link is read");
        until("a second link", || t.links() == 2).await;
        let before = t.written().len();
        t.server_says("hello");
        until_within(
            Duration::from_secs(5),
            "every first part written again",
            || firsts(&t.written()[before..]) == LANES,
        )
        .await;
        t.confirm_all();
        until("then every second part", || {
            t.written()[before..]
                .iter()
                .filter(|w| w.ends_with(":second"))
                .count()
                == LANES
        })
        .await;
        t.status_until(
            "each part sent again is counted in /actors (and /metrics)",
            |s| s.resent == Some(LANES as u64),
        )
        .await;
        let again = t.written()[before..].to_vec();
        for n in 0..LANES {
            let at = |text: &str| {
                again
                    .iter()
                    .position(|w| *w == format!("post c:{n}:{text}"))
            };
            assert!(
                at("first") < at("second"),
                "in order in lane {n}: {again:?}"
            );
        }
    }
}
