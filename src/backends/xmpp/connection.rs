//! The XMPP connection actor.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{io::WriteHandler, prelude::*};
use secrecy::SecretString;
use tokio::io::WriteHalf;
use tokio_util::codec::FramedRead;

use super::{
    client::{self, join_xml, message_xml, Io, Login},
    config::{Jid, XmppSettings},
    inbound::{inbound, Occupants, Who},
    xml::{escape, Element, Frame, Limit, Node, Skipped, XmlCodec, XmlError, MAX_STANZA},
};
use crate::{
    actors::messages::{Deliver, Inbound},
    actors::status::{ActorState, Reconnect, StatusReporter},
    backends::connection::pacing::{FloodGate, LineQueue},
    domain::{
        backoff::Backoff,
        chunk::{split_message, LengthUnit},
        message::{RoomKind, Target},
    },
};

type Writer = actix::io::FramedWrite<String, WriteHalf<Box<dyn Io>>, XmlCodec>;

/// How often the outbound queue is pumped.
const PUMP_EVERY: Duration = Duration::from_millis(50);
/// Delay before rejoining a room we left involuntarily.
const REJOIN_AFTER: Duration = Duration::from_secs(2);

const NS_PING: &str = "urn:xmpp:ping";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

#[derive(Debug, Clone)]
struct Outbound {
    to: String,
    kind: &'static str,
    body: String,
}

/// The XMPP connection.
pub struct XmppConnection {
    name: String,
    settings: XmppSettings,
    dispatcher: Recipient<Inbound>,
    status: StatusReporter,
    /// When to connect again after a failure.
    reconnect: Reconnect,
    tls: Option<Arc<rustls::ClientConfig>>,
    writer: Option<Writer>,
    online: bool,
    bare: String,
    nick: String,
    rooms: Vec<String>,
    ignore: Vec<String>,
    joined: HashSet<String>,
    occupants: Occupants,
    queue: LineQueue<Outbound>,
    flood: FloodGate,
    /// Outstanding pings by id: when sent, and the room for a MUC self-ping.
    pings: HashMap<String, (Instant, Option<String>)>,
    last_ping: Instant,
    last_error: Option<String>,
    next_id: u64,
    /// Inbound stanzas skipped for being over a reader limit, since the bridge started
    /// (`skipped_stanzas` in `/actors`).
    skipped: u64,
}

impl XmppConnection {
    /// A connection named `name`; it connects when started. `tls` is required unless the
    /// settings say `plaintext`.
    pub fn new(
        name: String,
        settings: XmppSettings,
        dispatcher: Recipient<Inbound>,
        backoff: Backoff,
        tls: Option<Arc<rustls::ClientConfig>>,
        status: StatusReporter,
    ) -> Self {
        let backoff = match (settings.reconnect_initial_ms, settings.reconnect_max_ms) {
            (None, None) => backoff,
            (initial, max) => {
                let initial = Duration::from_millis(initial.unwrap_or(1000));
                let max = max.map_or(initial.max(Duration::from_secs(60)), Duration::from_millis);
                Backoff::new(initial, max)
            }
        };
        let bare = settings.parsed_jid().map(|j| j.bare()).unwrap_or_default();
        let nick = settings.room_nick();
        let rooms = settings
            .rooms
            .iter()
            .filter_map(|r| Jid::parse(r).map(|j| j.bare()))
            .collect();
        let ignore = settings.ignore_jids.clone();
        let queue = LineQueue::new(settings.queue_size);
        let flood = FloodGate::new(
            settings.flood_burst,
            Duration::from_millis(settings.send_interval_ms),
            Instant::now(),
        );
        Self {
            name,
            settings,
            dispatcher,
            reconnect: Reconnect::new(status.name(), backoff),
            status,
            tls,
            writer: None,
            online: false,
            bare,
            nick,
            rooms,
            ignore,
            joined: HashSet::new(),
            occupants: Occupants::new(),
            queue,
            flood,
            pings: HashMap::new(),
            last_ping: Instant::now(),
            last_error: None,
            next_id: 0,
            skipped: 0,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("sb-{prefix}-{}", self.next_id)
    }

    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        tracing::warn!(connection = %self.name, error = %error, "XMPP connection lost; reconnecting");
        self.last_error = Some(error);
        self.online = false;
        if let Some(mut w) = self.writer.take() {
            w.close();
        }
        ctx.stop();
    }

    fn send_now(&mut self, xml: String) {
        if let Some(w) = self.writer.as_mut() {
            w.write(xml);
        }
    }

    fn password(&self) -> Result<SecretString, String> {
        if let Some(p) = &self.settings.password {
            return Ok(p.clone());
        }
        let path = self
            .settings
            .password_file
            .as_ref()
            .ok_or("no password configured")?;
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        );
        Ok(SecretString::from(
            text.lines().next().unwrap_or("").to_owned(),
        ))
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let login = match (
            self.settings.endpoint(),
            self.settings.parsed_jid(),
            self.password(),
        ) {
            (Some((host, port)), Some(jid), Ok(password)) => Login {
                host,
                port,
                jid,
                password,
                resource: self.settings.resource.clone(),
                tls: self.settings.tls,
                tls_config: self.tls.clone(),
                timeout: self.settings.connect_timeout(),
            },
            (_, _, Err(e)) => return self.fail(e, ctx),
            _ => return self.fail("bad jid or server".into(), ctx),
        };
        let fut = async move { client::connect(&login).await };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok(session) => {
                let parts = session.stream.into_parts();
                let (r, w) = tokio::io::split(parts.io);
                // The codec goes along with the bytes read after the login: it holds the
                // part of a stanza that was already consumed from them.
                let mut reader = FramedRead::new(r, parts.codec);
                reader.read_buffer_mut().extend_from_slice(&parts.read_buf);
                ctx.add_stream(reader);
                act.writer = Some(actix::io::FramedWrite::new(w, XmlCodec::default(), ctx));
                act.online = true;
                act.reconnect.connected();
                act.joined.clear();
                act.occupants.clear();
                act.pings.clear();
                act.last_ping = Instant::now();
                tracing::info!(connection = %act.name, jid = %session.jid.bare(), "XMPP logged in");
                act.send_now("<presence/>".into());
                for room in act.rooms.clone() {
                    act.join(&room);
                }
                act.status.state(ActorState::Up, None);
                act.pump();
            }
            Err(error) => act.fail(error, ctx),
        }));
    }

    fn join(&mut self, room: &str) {
        let xml = join_xml(room, &self.nick);
        self.send_now(xml);
    }

    fn enqueue(&mut self, to: String, kind: &'static str, text: &str) {
        let cleaned: String = text.chars().filter(|c| *c != '\0').collect();
        for body in split_message(&cleaned, self.settings.max_message_bytes, LengthUnit::Bytes) {
            if body.trim().is_empty() {
                continue;
            }
            let item = Outbound {
                to: to.clone(),
                kind,
                body,
            };
            if self.queue.push(item) {
                tracing::warn!(
                    connection = %self.name,
                    dropped = self.queue.dropped(),
                    "XMPP outbound queue full; dropped the oldest message"
                );
            }
        }
        if !self.online {
            tracing::debug!(connection = %self.name, queued = self.queue.len(), "XMPP message queued while disconnected");
        }
        self.status.outbound(self.queue.len(), self.queue.dropped());
    }

    fn pump(&mut self) {
        if !self.online {
            return;
        }
        while !self.queue.is_empty() && self.flood.try_take(Instant::now()) {
            let Some(m) = self.queue.pop() else {
                break;
            };
            let id = self.id("m");
            self.send_now(message_xml(&m.to, m.kind, &m.body, &id));
            self.status.activity();
            self.status.outbound(self.queue.len(), self.queue.dropped());
        }
    }

    /// Pings the server and self-pings each joined room (XEP-0410); an unanswered server
    /// ping drops the connection, an unanswered or failed self-ping rejoins the room.
    fn keepalive(&mut self, ctx: &mut Context<Self>) {
        if !self.online {
            return;
        }
        let timeout = Duration::from_secs(self.settings.ping_timeout_secs.max(1));
        let mut rejoin = Vec::new();
        let mut dead = false;
        self.pings.retain(|_, (sent, room)| {
            if sent.elapsed() <= timeout {
                return true;
            }
            match room {
                Some(r) => rejoin.push(r.clone()),
                None => dead = true,
            }
            false
        });
        if dead {
            return self.fail(
                format!(
                    "the server did not answer a ping within {} s",
                    timeout.as_secs()
                ),
                ctx,
            );
        }
        for room in rejoin {
            tracing::warn!(connection = %self.name, room = %room, "room self-ping unanswered; rejoining");
            self.joined.remove(&room);
            self.join(&room);
        }
        let interval = Duration::from_secs(self.settings.ping_interval_secs.max(1));
        if self.last_ping.elapsed() < interval {
            return;
        }
        self.last_ping = Instant::now();
        let domain = self
            .settings
            .parsed_jid()
            .map(|j| j.domain)
            .unwrap_or_default();
        let id = self.id("ping");
        self.send_now(format!(
            "<iq type='get' to='{}' id='{id}'><ping xmlns='{NS_PING}'/></iq>",
            escape(&domain)
        ));
        self.pings.insert(id, (Instant::now(), None));
        for room in self.rooms.clone() {
            let id = self.id("selfping");
            self.send_now(format!(
                "<iq type='get' to='{}/{}' id='{id}'><ping xmlns='{NS_PING}'/></iq>",
                escape(&room),
                escape(&self.nick)
            ));
            self.pings.insert(id, (Instant::now(), Some(room)));
        }
    }

    fn on_stanza(&mut self, e: Element, ctx: &mut Context<Self>) {
        match e.local_name() {
            "message" => {
                let who = Who {
                    connection: &self.name,
                    bare: &self.bare,
                    nick: &self.nick,
                    rooms: &self.rooms,
                    ignore: &self.ignore,
                };
                if let Some(mut m) = inbound(&who, &e, &self.occupants) {
                    if m.message_id.is_none() {
                        m.message_id = Some(self.id("in"));
                    }
                    self.dispatcher.do_send(Inbound(m));
                }
            }
            "presence" => self.on_presence(&e, ctx),
            "iq" => self.on_iq(&e),
            "error" => {
                let condition = e
                    .elements()
                    .next()
                    .map(|c| c.local_name().to_owned())
                    .unwrap_or_default();
                self.fail(format!("stream error from the server: {condition}"), ctx);
            }
            _ => {}
        }
    }

    /// A stanza the reader skipped for being over a limit: one warning, the count in
    /// `/actors`, and for a message to the bot a short answer saying it could not be read.
    fn on_skipped(&mut self, s: Skipped) {
        self.skipped += 1;
        tracing::warn!(
            connection = %self.name,
            element = ?log_prefix(&s.name),
            from = ?s.from.as_deref().map(log_prefix),
            limit = s.limit.as_str(),
            bytes = s.bytes,
            "skipped an inbound stanza over the reader's limit"
        );
        self.status.details(vec![(
            "skipped_stanzas".to_owned(),
            serde_json::json!(self.skipped),
        )]);
        if let Some((to, kind, text)) = self.too_big_answer(&s) {
            self.enqueue(to, kind, &text);
            self.pump();
        }
    }

    /// Where and what to answer a skipped stanza: only a `<message>` of type `chat`,
    /// `normal` or `groupchat` (or none) from a user the bot would take a command from (not
    /// itself, not an ignored JID or nick, in a direct chat or a configured room), judged
    /// from its start tag's `from` and `type` alone, as `inbound` judges a read message.
    fn too_big_answer(&self, s: &Skipped) -> Option<(String, &'static str, String)> {
        if local_name(&s.name) != "message" {
            return None;
        }
        if !matches!(
            s.kind.as_deref(),
            None | Some("chat" | "normal" | "groupchat")
        ) {
            return None;
        }
        let from = Jid::parse(s.from.as_deref()?)?;
        if from.local.is_empty() {
            return None;
        }
        let mut attrs = vec![("from".to_owned(), s.from.clone()?)];
        if let Some(kind) = &s.kind {
            attrs.push(("type".to_owned(), kind.clone()));
        }
        // A stand-in with the same sender and type, for the same judgement.
        let stand_in = Element {
            name: "message".into(),
            ns: String::new(),
            attrs,
            children: vec![Node::Element(Element {
                name: "body".into(),
                children: vec![Node::Text("-".into())],
                ..Element::default()
            })],
        };
        let who = Who {
            connection: &self.name,
            bare: &self.bare,
            nick: &self.nick,
            rooms: &self.rooms,
            ignore: &self.ignore,
        };
        let m = inbound(&who, &stand_in, &self.occupants)?;
        let why = match s.limit {
            Limit::Size => format!(
                "your message was too large to read ({} KiB; the limit is {} KiB)",
                s.bytes.div_ceil(1024),
                MAX_STANZA / 1024
            ),
            Limit::Depth | Limit::Nodes => {
                "your message was too complex to read (too deeply nested or too many parts)"
                    .to_owned()
            }
        };
        Some(match m.room.kind {
            RoomKind::Group => (
                m.room.id,
                "groupchat",
                format!("{}: sorry, {why}.", m.user.name),
            ),
            RoomKind::Direct => (m.room.id, "chat", format!("Sorry, {why}.")),
        })
    }

    fn on_presence(&mut self, e: &Element, ctx: &mut Context<Self>) {
        let Some(from) = e.attr("from").and_then(Jid::parse) else {
            return;
        };
        let room = from.bare();
        if !self.rooms.contains(&room) || from.resource.is_empty() {
            return;
        }
        let kind = e.attr("type").unwrap_or("available");
        if kind == "error" {
            tracing::warn!(connection = %self.name, room = %room, "the room refused the join; retrying on the next self-ping");
            return;
        }
        let x = e.child_ns("x", NS_MUC_USER);
        let codes: Vec<&str> = x
            .map(|x| {
                x.elements()
                    .filter(|c| c.local_name() == "status")
                    .filter_map(|c| c.attr("code"))
                    .collect()
            })
            .unwrap_or_default();
        let is_self = codes.contains(&"110") || from.resource == self.nick;
        let key = (room.clone(), from.resource.clone());
        if kind == "unavailable" {
            self.occupants.remove(&key);
            if is_self {
                self.joined.remove(&room);
                if codes.contains(&"301") {
                    tracing::warn!(connection = %self.name, room = %room, "banned from the room; not rejoining");
                    return;
                }
                tracing::warn!(connection = %self.name, room = %room, "left the room involuntarily; rejoining");
                ctx.run_later(REJOIN_AFTER, move |act, _| {
                    if act.online && !act.joined.contains(&room) {
                        act.join(&room);
                    }
                });
            }
            return;
        }
        if let Some(real) = x
            .and_then(|x| x.child("item"))
            .and_then(|i| i.attr("jid"))
            .and_then(Jid::parse)
        {
            self.occupants.insert(key, real.bare());
        }
        if is_self && self.joined.insert(room.clone()) {
            tracing::info!(connection = %self.name, room = %room, "joined the room");
        }
    }

    fn on_iq(&mut self, e: &Element) {
        let id = e.attr("id").unwrap_or("").to_owned();
        let from = e.attr("from").map(str::to_owned);
        let to = from
            .as_deref()
            .map(|f| format!(" to='{}'", escape(f)))
            .unwrap_or_default();
        match e.attr("type").unwrap_or("") {
            "get" | "set" => {
                if e.child_ns("ping", NS_PING).is_some() {
                    self.send_now(format!("<iq type='result' id='{}'{to}/>", escape(&id)));
                } else {
                    self.send_now(format!(
                        "<iq type='error' id='{}'{to}><error type='cancel'><service-unavailable \
                         xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                        escape(&id)
                    ));
                }
            }
            kind => {
                let Some((_, room)) = self.pings.remove(&id) else {
                    return;
                };
                let Some(room) = room else {
                    return;
                };
                if kind != "error" {
                    self.joined.insert(room);
                    return;
                }
                let condition = e
                    .child("error")
                    .and_then(|err| err.elements().next())
                    .map(|c| c.local_name().to_owned())
                    .unwrap_or_default();
                // XEP-0410: these mean the occupant exists (the client just lacks ping).
                if condition != "service-unavailable" && condition != "feature-not-implemented" {
                    tracing::warn!(connection = %self.name, room = %room, condition = %condition, "not in the room any more; rejoining");
                    self.joined.remove(&room);
                    self.join(&room);
                }
            }
        }
    }
}

impl Actor for XmppConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.online = false;
        // From the start, so the queue's series read 0 instead of missing.
        self.status.outbound(self.queue.len(), self.queue.dropped());
        ctx.run_interval(PUMP_EVERY, |act, _| act.pump());
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.keepalive(ctx));
        ctx.run_later(self.reconnect.delay(), |act, ctx| act.connect(ctx));
    }
}

impl Supervised for XmppConnection {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.reconnect.restarting();
        self.online = false;
        self.writer = None;
        self.status.restarted(self.last_error.take());
    }
}

impl WriteHandler<std::io::Error> for XmppConnection {
    fn error(&mut self, err: std::io::Error, ctx: &mut Self::Context) -> Running {
        self.fail(format!("write failed: {err}"), ctx);
        Running::Stop
    }
}

impl StreamHandler<Result<Frame, XmlError>> for XmppConnection {
    fn handle(&mut self, item: Result<Frame, XmlError>, ctx: &mut Self::Context) {
        self.status.activity();
        match item {
            Ok(Frame::Stanza(e)) => self.on_stanza(e, ctx),
            Ok(Frame::Skipped(s)) => self.on_skipped(s),
            Ok(Frame::StreamOpen(_)) => {}
            Ok(Frame::StreamClose) => self.fail("the server closed the stream".into(), ctx),
            Err(e) => match e.condition() {
                // XML the reader refuses (not well-formed, restricted, a stream header over
                // a limit; a stanza over one is skipped instead): say why to the server
                // (RFC 6120 §4.9), best effort, then close and reconnect.
                Some(condition) => {
                    self.send_now(format!(
                        "<stream:error><{condition} xmlns='{NS_STREAM_ERRORS}'/></stream:error>\
                         </stream:stream>"
                    ));
                    self.fail(format!("closed the stream: the server sent {e}"), ctx);
                }
                None => self.fail(format!("read failed: {e}"), ctx),
            },
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        if self.online {
            self.fail("the server closed the connection".into(), ctx);
        }
    }
}

impl Handler<Deliver> for XmppConnection {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) {
        let (id, user) = match msg.target {
            Target::Room { id, .. } => (id, false),
            Target::User { id } => (id, true),
        };
        let Some(jid) = Jid::parse(&id) else {
            tracing::warn!(connection = %self.name, "not an XMPP address; message dropped");
            return;
        };
        let bare = jid.bare();
        let (to, kind) = if !user && jid.resource.is_empty() && self.rooms.contains(&bare) {
            (bare, "groupchat")
        } else if jid.resource.is_empty() {
            (bare, "chat")
        } else {
            (id, "chat")
        };
        self.enqueue(to, kind, &msg.text);
        self.pump();
    }
}

/// The local part of an element name (`stream:error` → `error`).
fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// At most the first 64 characters of a value from the wire, for a log line (which writes
/// it escaped, with `Debug`).
fn log_prefix(value: &str) -> &str {
    value
        .char_indices()
        .nth(64)
        .map_or(value, |(at, _)| &value[..at])
}
