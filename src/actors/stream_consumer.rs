//! The StackStorm event stream: where command results come from.
//!
//! One SSE connection to `GET {stream_url}/stream`, filtered to the configured routes'
//! `st2.announcement__<route>` events and `st2.actionalias__*`, read with a client that
//! takes close-delimited bodies (st2's stock nginx) and chunked ones (st2stream directly).
//!
//! **Silence is not death.** st2stream sends a bare newline on connect and then only after
//! `stream.heartbeat` seconds in which its *whole* message bus was idle
//! (`st2common/stream/listener.py`): on a busy install a filtered stream is silent for
//! minutes. So a quiet stream is never treated as failed. A dead connection is found by TCP
//! keepalive (`st2.stream_keepalive`); and after `st2.stream_idle_refresh` of complete silence
//! a *second* stream is opened and, once StackStorm greets it, replaces the first
//! (make-before-break): the old one is still read for [`DRAIN`], and an event that arrives
//! on both is passed on once ([`Overlap`]). The default refresh stays under the 200 s
//! `proxy_read_timeout` of st2's stock nginx `/stream/` location, so that proxy never cuts
//! a quiet stream.
//!
//! **A connection counts only once StackStorm greets it.** st2stream's first byte is its
//! newline. nginx answers a request for a stopped st2stream with `200 text/event-stream`,
//! `retry: 1000` and a closed connection (st2.conf's `@streamError`): such an answer, or any
//! stream that ends before the greeting, is a failed attempt and the backoff keeps growing.
//!
//! **Gaps are reported, not hidden.** The stream has no replay, so whenever a connection is
//! greeted after a gap (the first one after start included) — or replaces a silent one that
//! may have been dead — the result tracker is told ([`StreamEstablished`]) and asks
//! StackStorm about every result still owed.
//!
//! A malformed event is logged and skipped: it never ends the connection. The actor itself
//! never stops on a stream failure; it reconnects with a capped, jittered backoff and asks
//! the `TokenRenewer` for a fresh credential after a 401.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::{
    alias_cache::RefreshAliases,
    messages::Halt,
    status::{ActorState, StatusReporter},
    token_renewer::{current_credential, CredentialRejected, TokenRenewer},
};
use crate::{
    domain::{
        announcement::{self, Announcement},
        backoff::Backoff,
        stream_overlap::{Overlap, Side},
    },
    metrics::Metrics,
    st2::{
        client::{LocalClient, St2ClientFactory},
        sse::SseParser,
        St2Error,
    },
};

/// An announcement decoded from the stream, for the result tracker.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AnnouncementReceived(pub Announcement);

/// A stream connection was greeted by StackStorm after a gap (or replaced one that had
/// been silent): announcements may have been missed since the previous one.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StreamEstablished;

/// The stream is lost (or could not be opened): until a connection is greeted again no
/// announcement can arrive, so results owed are looked up through the API meanwhile.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct StreamLost;

/// Largest single event accepted (st2 results can be big; chat cannot show more anyway).
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// How long a replaced connection is still read, for events it received before its
/// replacement subscribed.
pub const DRAIN: Duration = Duration::from_secs(2);

const ANNOUNCEMENT_PREFIX: &str = "st2.announcement__";
const ALIAS_EVENT_PREFIX: &str = "st2.actionalias__";

/// Settings of the stream consumer.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Routes whose announcements are delivered.
    pub routes: Vec<String>,
    /// After this much silence, open a replacement; `None`: never.
    pub idle_refresh: Option<Duration>,
    /// A connection StackStorm has not greeted within this long is given up (st2stream
    /// greets at once; a stalled proxy or server never does).
    pub greeting_timeout: Duration,
}

impl StreamSettings {
    /// The `events=` filter: every route's announcements plus alias changes.
    pub fn events_filter(&self) -> String {
        let mut events: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("{ANNOUNCEMENT_PREFIX}{r}"))
            .collect();
        events.push(format!("{ALIAS_EVENT_PREFIX}*"));
        events.join(",")
    }
}

/// One piece of an open connection's body, tagged with the connection.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Chunk {
    conn: u64,
    item: ChunkItem,
}

#[derive(Debug)]
enum ChunkItem {
    Bytes(Bytes),
    Failed(String),
    End,
}

/// Why a connection is being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// There is none (start-up, or the last one was lost).
    Fresh,
    /// The current one has been silent for `idle_refresh`; it stays until this is greeted.
    Replace,
}

struct Conn {
    id: u64,
    handle: SpawnHandle,
    parser: SseParser,
    greeted: bool,
}

/// The stream actor.
pub struct StreamConsumer {
    settings: StreamSettings,
    client: LocalClient,
    metrics: Metrics,
    renewer: Addr<TokenRenewer>,
    announcements: Recipient<AnnouncementReceived>,
    established: Recipient<StreamEstablished>,
    lost: Recipient<StreamLost>,
    alias_changes: Recipient<RefreshAliases>,
    backoff: Backoff,
    status: StatusReporter,
    next_id: u64,
    /// The connection events are read from.
    active: Option<Conn>,
    /// A replacement opened for a silent `active`, not greeted yet.
    candidate: Option<Conn>,
    /// The replaced connection, read for [`DRAIN`] more.
    draining: Option<Conn>,
    /// While a replacement is being opened and the old connection drains: the old
    /// connection's id and the counts that pass each event once.
    overlap: Option<(u64, Overlap)>,
    /// A connection attempt is in flight.
    opening: bool,
    /// The last bytes on `active` (or when it was opened).
    last_bytes: Instant,
    idle_timer: Option<SpawnHandle>,
    /// After a failed replacement, the next one waits a whole idle period.
    refresh_not_before: Instant,
    last_event: Option<chrono::DateTime<chrono::Utc>>,
    greetings: u64,
    /// Told to stop ([`Halt`]): no connection is opened again.
    halted: bool,
}

impl StreamConsumer {
    /// A consumer; it connects when started.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: StreamSettings,
        st2: St2ClientFactory,
        metrics: Metrics,
        renewer: Addr<TokenRenewer>,
        announcements: Recipient<AnnouncementReceived>,
        established: Recipient<StreamEstablished>,
        lost: Recipient<StreamLost>,
        alias_changes: Recipient<RefreshAliases>,
        backoff: Backoff,
        status: StatusReporter,
    ) -> Self {
        Self {
            settings,
            client: LocalClient::new(st2),
            metrics,
            renewer,
            announcements,
            established,
            lost,
            alias_changes,
            backoff,
            status,
            next_id: 0,
            active: None,
            candidate: None,
            draining: None,
            overlap: None,
            opening: false,
            last_bytes: Instant::now(),
            idle_timer: None,
            refresh_not_before: Instant::now(),
            last_event: None,
            greetings: 0,
            halted: false,
        }
    }

    /// Opens a connection for `purpose`.
    fn open(&mut self, purpose: Purpose, ctx: &mut Context<Self>) {
        if self.opening || self.halted {
            return;
        }
        self.opening = true;
        let client = self.client.get();
        let renewer = self.renewer.clone();
        let events = self.settings.events_filter();
        let fut = async move {
            let credential = current_credential(&renewer)
                .await
                .map_err(|e| e.to_string())?;
            match client.open_stream(&credential, &events).await {
                Ok(body) => Ok(body),
                Err(St2Error::Unauthorized(fault)) => {
                    // Renew now so the next attempt (after the backoff) has a fresh token.
                    renewer.do_send(CredentialRejected {
                        generation: credential.generation(),
                    });
                    Err(format!("stream refused the credential: {fault}"))
                }
                Err(e) => Err(e.to_string()),
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.opening = false;
            match result {
                _ if act.halted => {}
                Ok(body) => act.opened(purpose, body, ctx),
                Err(error) => act.attempt_failed(purpose, error, ctx),
            }
        }));
    }

    fn opened(
        &mut self,
        purpose: Purpose,
        body: crate::st2::client::EventStream,
        ctx: &mut Context<Self>,
    ) {
        self.next_id += 1;
        let id = self.next_id;
        let chunks = body
            .map(move |item| Chunk {
                conn: id,
                item: match item {
                    Ok(bytes) => ChunkItem::Bytes(bytes),
                    Err(e) => ChunkItem::Failed(e),
                },
            })
            .chain(futures_util::stream::once(async move {
                Chunk {
                    conn: id,
                    item: ChunkItem::End,
                }
            }));
        let conn = Conn {
            id,
            handle: ctx.add_stream(chunks),
            parser: SseParser::new(MAX_EVENT_BYTES),
            greeted: false,
        };
        tracing::debug!(conn = id, ?purpose, "StackStorm stream opened");
        ctx.run_later(self.settings.greeting_timeout, move |act, ctx| {
            if act.conn_mut(id).is_some_and(|(c, _)| !c.greeted) {
                let handle = act.conn_mut(id).map(|(c, _)| c.handle);
                if let Some(handle) = handle {
                    ctx.cancel_future(handle);
                }
                act.ended(
                    id,
                    Some("StackStorm opened the stream but sent nothing".to_owned()),
                    ctx,
                );
            }
        });
        match purpose {
            Purpose::Replace if self.active.is_some() => self.candidate = Some(conn),
            _ => {
                self.active = Some(conn);
                self.last_bytes = Instant::now();
            }
        }
    }

    /// A connection attempt failed before any stream was open.
    fn attempt_failed(&mut self, purpose: Purpose, error: String, ctx: &mut Context<Self>) {
        match purpose {
            Purpose::Replace if self.active.is_some() => {
                tracing::warn!(error = %error, "could not open a replacement StackStorm stream; keeping the current one");
                self.overlap = None;
                self.replacement_failed(ctx);
            }
            _ => self.lost(error, ctx),
        }
    }

    /// No usable connection: report, then try again after the backoff.
    fn lost(&mut self, error: String, ctx: &mut Context<Self>) {
        tracing::warn!(error = %error, "StackStorm stream lost; reconnecting");
        self.lost.do_send(StreamLost);
        self.metrics.stream_reconnect();
        self.status.restarted(Some(error));
        let delay = self.backoff.next_delay();
        tracing::debug!(
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "reconnecting the stream after backoff"
        );
        ctx.run_later(delay, |act, ctx| {
            if act.active.is_none() {
                act.open(Purpose::Fresh, ctx);
            }
        });
    }

    /// Schedules the silence check of the active connection.
    fn arm_idle_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(refresh) = self.settings.idle_refresh else {
            return;
        };
        if let Some(old) = self.idle_timer.take() {
            ctx.cancel_future(old);
        }
        let wait = refresh.saturating_sub(self.last_bytes.elapsed()).max(
            self.refresh_not_before
                .saturating_duration_since(Instant::now()),
        );
        self.idle_timer = Some(ctx.run_later(wait, move |act, ctx| {
            act.idle_timer = None;
            if act.active.is_none() {
                return;
            }
            if act.last_bytes.elapsed() >= refresh && act.refresh_not_before <= Instant::now() {
                let silent = act.last_bytes.elapsed().as_secs();
                tracing::info!(
                    silent_s = silent,
                    "no bytes on the StackStorm stream for a while; opening a replacement before dropping it"
                );
                if let Some(old) = act.active.as_ref().map(|c| c.id) {
                    // From now on the old connection's events are counted, so that the
                    // replacement does not pass them on a second time.
                    act.overlap = Some((old, Overlap::new()));
                }
                act.open(Purpose::Replace, ctx);
            } else {
                act.arm_idle_timer(ctx);
            }
        }));
    }

    /// A replacement could not be opened or was never greeted: keep the current connection
    /// and try again after a whole idle period.
    fn replacement_failed(&mut self, ctx: &mut Context<Self>) {
        if let Some(refresh) = self.settings.idle_refresh {
            self.refresh_not_before = Instant::now() + refresh;
        }
        self.arm_idle_timer(ctx);
    }

    /// StackStorm greeted connection `id`.
    fn greeted(&mut self, id: u64, ctx: &mut Context<Self>) {
        self.backoff.reset();
        if self.candidate.as_ref().is_some_and(|c| c.id == id) {
            // The replacement is live: the old connection drains, then goes.
            if let (Some(new), Some(old)) = (self.candidate.take(), self.active.take()) {
                if let Some(previous) = self.draining.replace(old) {
                    ctx.cancel_future(previous.handle);
                }
                self.active = Some(new);
                self.metrics.stream_refresh();
                let draining = self.draining.as_ref().map(|c| c.id);
                ctx.run_later(DRAIN, move |act, ctx| {
                    if act.draining.as_ref().map(|c| c.id) == draining {
                        act.end_drain(ctx);
                    }
                });
            }
        }
        self.last_bytes = Instant::now();
        self.greetings += 1;
        self.metrics.stream_gap();
        self.status.state(ActorState::Up, None);
        tracing::info!("StackStorm stream connected");
        self.established.do_send(StreamEstablished);
        self.report_details();
        self.arm_idle_timer(ctx);
    }

    fn end_drain(&mut self, ctx: &mut Context<Self>) {
        if let Some(old) = self.draining.take() {
            ctx.cancel_future(old.handle);
            tracing::debug!(conn = old.id, "replaced StackStorm stream closed");
        }
        self.overlap = None;
    }

    fn handle_event(&mut self, name: &str, data: &str) {
        self.last_event = Some(chrono::Utc::now());
        self.report_details();
        if let Some(route) = name.strip_prefix(ANNOUNCEMENT_PREFIX) {
            match announcement::decode(route, data) {
                Ok(a) => {
                    tracing::debug!(route, "announcement received");
                    self.announcements.do_send(AnnouncementReceived(a));
                }
                Err(e) => {
                    self.metrics.announcement_dropped();
                    tracing::warn!(route, error = %e, "skipped a malformed announcement");
                }
            }
        } else if name.starts_with(ALIAS_EVENT_PREFIX) {
            self.alias_changes
                .do_send(RefreshAliases { reason: "stream" });
        } else {
            tracing::debug!(event = ?name, "ignored stream event");
        }
    }

    fn report_details(&mut self) {
        let last_event = self.last_event.map(|t| {
            serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        });
        self.status.details(vec![
            (
                "last_event".to_owned(),
                last_event.unwrap_or(serde_json::Value::Null),
            ),
            ("connections".to_owned(), serde_json::json!(self.greetings)),
        ]);
    }

    fn conn_mut(&mut self, id: u64) -> Option<(&mut Conn, Role)> {
        if let Some(c) = self.active.as_mut().filter(|c| c.id == id) {
            return Some((c, Role::Active));
        }
        if let Some(c) = self.candidate.as_mut().filter(|c| c.id == id) {
            return Some((c, Role::Candidate));
        }
        if let Some(c) = self.draining.as_mut().filter(|c| c.id == id) {
            return Some((c, Role::Draining));
        }
        None
    }

    fn bytes(&mut self, id: u64, chunk: &Bytes, ctx: &mut Context<Self>) {
        let Some((conn, role)) = self.conn_mut(id) else {
            return;
        };
        let first = !conn.greeted;
        // st2stream's first byte is its greeting newline; nginx's error page starts with
        // `retry:`. A complete event also proves it is StackStorm talking.
        let mut events = conn.parser.feed(chunk);
        let greeting = first
            && (chunk.first().is_some_and(|b| *b == b'\n' || *b == b'\r')
                || events.iter().any(Result::is_ok));
        if greeting {
            conn.greeted = true;
        }
        if role == Role::Active {
            self.last_bytes = Instant::now();
            self.status.activity();
        }
        if greeting && role != Role::Draining {
            self.greeted(id, ctx);
        }
        if self.conn_mut(id).is_some_and(|(_, r)| r == Role::Candidate) {
            // Not greeted yet: nothing from it counts (its greeting comes first anyway).
            events.clear();
        }
        let side = match &self.overlap {
            Some((old, _)) if *old == id => Side::Old,
            _ => Side::New,
        };
        for event in events {
            match event {
                Ok(event) => {
                    if let Some((_, overlap)) = self.overlap.as_mut() {
                        if !overlap.admit(side, &event.event, &event.data) {
                            self.metrics.announcement_ignored("overlap");
                            continue;
                        }
                    }
                    self.handle_event(&event.event, &event.data);
                }
                Err(e) => {
                    self.metrics.announcement_dropped();
                    tracing::warn!(error = %e, "skipped part of the stream");
                }
            }
        }
    }

    fn ended(&mut self, id: u64, error: Option<String>, ctx: &mut Context<Self>) {
        let Some((conn, role)) = self.conn_mut(id) else {
            return;
        };
        let greeted = conn.greeted;
        let reason = error.unwrap_or_else(|| {
            if greeted {
                "StackStorm closed the stream".to_owned()
            } else {
                "the stream ended before StackStorm greeted it (st2stream down behind its proxy?)"
                    .to_owned()
            }
        });
        match role {
            Role::Draining => {
                self.draining = None;
                self.overlap = None;
            }
            Role::Candidate => {
                self.candidate = None;
                self.overlap = None;
                tracing::warn!(error = %reason, "the replacement StackStorm stream failed; keeping the current one");
                self.replacement_failed(ctx);
            }
            Role::Active => {
                self.active = None;
                if let Some(timer) = self.idle_timer.take() {
                    ctx.cancel_future(timer);
                }
                if let Some(candidate) = self.candidate.take() {
                    // Its replacement is already open: it takes over (a gap is reported
                    // when StackStorm greets it).
                    self.active = Some(candidate);
                    self.last_bytes = Instant::now();
                    self.status.restarted(Some(reason));
                    return;
                }
                self.lost(reason, ctx);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Active,
    Candidate,
    Draining,
}

impl Actor for StreamConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.status.state(ActorState::Starting, None);
        self.open(Purpose::Fresh, ctx);
    }
}

impl Supervised for StreamConsumer {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.active = None;
        self.candidate = None;
        self.draining = None;
        self.overlap = None;
        self.opening = false;
        self.idle_timer = None;
        self.status.restarted(None);
    }
}

impl Handler<Halt> for StreamConsumer {
    type Result = ();

    /// Closes every connection and opens none again; an attempt in flight is dropped when
    /// it lands (`open` refuses, and its stream is cancelled here or never added).
    fn handle(&mut self, _msg: Halt, ctx: &mut Self::Context) {
        self.halted = true;
        for conn in [
            self.active.take(),
            self.candidate.take(),
            self.draining.take(),
        ]
        .into_iter()
        .flatten()
        {
            ctx.cancel_future(conn.handle);
        }
        if let Some(timer) = self.idle_timer.take() {
            ctx.cancel_future(timer);
        }
        self.overlap = None;
        tracing::debug!("StackStorm stream closed: the bridge is stopping");
    }
}

impl StreamHandler<Chunk> for StreamConsumer {
    fn handle(&mut self, chunk: Chunk, ctx: &mut Self::Context) {
        match chunk.item {
            ChunkItem::Bytes(bytes) => self.bytes(chunk.conn, &bytes, ctx),
            ChunkItem::Failed(e) => {
                self.ended(chunk.conn, Some(format!("stream read error: {e}")), ctx)
            }
            ChunkItem::End => self.ended(chunk.conn, None, ctx),
        }
    }

    /// Each connection ends with its own `End` item; the actor goes on.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}
