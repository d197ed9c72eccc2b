//! XMPP as a [`Platform`]: after the login (`client.rs`: STARTTLS, SASL PLAIN, bind),
//! presence, room joins, pings and self-pings (XEP-0199, XEP-0410), kicks and bans as a state
//! machine over the stanza stream.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures_util::{future::LocalBoxFuture, SinkExt, StreamExt};
use secrecy::SecretString;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{
    client::{self, join_xml, message_xml, Login},
    config::{Jid, XmppSettings},
    inbound::{inbound, Occupants, Who},
    wire::{escape, Element, Frame, Limit, Node, Skipped, XmlCodec, XmlError, MAX_STANZA},
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{ConnectionError, Effects, Link, Platform, Sending},
    domain::{
        chunk::{split_message, LengthUnit},
        message::{RoomKind, Target},
    },
};

/// Delay before rejoining a room we left involuntarily.
const REJOIN_AFTER: Duration = Duration::from_secs(2);

const NS_PING: &str = "urn:xmpp:ping";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// One queued `<message>`.
#[derive(Debug, Clone)]
pub struct Outbound {
    to: String,
    kind: &'static str,
    body: String,
}

/// The platform's own happenings.
pub enum Event {
    /// Time for the next round of pings.
    Ping,
    /// The pings with these ids had their time to be answered.
    PingDeadline(Vec<String>),
    /// Time to rejoin a room we left involuntarily.
    Rejoin(String),
}

/// An XMPP connection's state.
pub struct Xmpp {
    name: String,
    settings: XmppSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    online: bool,
    bare: String,
    nick: String,
    rooms: Vec<String>,
    ignore: Vec<String>,
    joined: HashSet<String>,
    /// Rooms asked for at log-in and not yet joined (or refused).
    joining: Vec<String>,
    occupants: Occupants,
    /// Outstanding pings by id, with the room for a MUC self-ping.
    pings: HashMap<String, Option<String>>,
    next_id: u64,
    /// Inbound stanzas skipped for being over a reader limit, since the bridge started
    /// (`skipped_stanzas` in `/actors`).
    skipped: u64,
}

impl Xmpp {
    /// The platform for connection `name`; `tls` is required unless the settings say
    /// `plaintext`.
    pub fn new(
        name: String,
        settings: XmppSettings,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let bare = settings.parsed_jid().map(|j| j.bare()).unwrap_or_default();
        let nick = settings.room_nick();
        let rooms = settings
            .rooms
            .iter()
            .filter_map(|r| Jid::parse(r).map(|j| j.bare()))
            .collect();
        let ignore = settings.ignore_jids.clone();
        Self {
            name,
            settings,
            tls,
            online: false,
            bare,
            nick,
            rooms,
            ignore,
            joined: HashSet::new(),
            joining: Vec::new(),
            occupants: Occupants::new(),
            pings: HashMap::new(),
            next_id: 0,
            skipped: 0,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("sb-{prefix}-{}", self.next_id)
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

    fn join(&mut self, room: &str, fx: &mut Effects<Self>) {
        fx.write(join_xml(room, &self.nick));
    }

    /// `text` as `<message>` bodies for `to`, split at `max_message_bytes`.
    fn messages(&self, to: String, kind: &'static str, text: &str) -> Vec<Outbound> {
        let cleaned: String = text.chars().filter(|c| *c != '\0').collect();
        split_message(&cleaned, self.settings.max_message_bytes, LengthUnit::Bytes)
            .into_iter()
            .filter(|body| !body.trim().is_empty())
            .map(|body| Outbound {
                to: to.clone(),
                kind,
                body,
            })
            .collect()
    }

    /// Pings the server and self-pings each joined room (XEP-0410), then checks the answers
    /// after `ping_timeout_secs`: an unanswered server ping drops the connection, an
    /// unanswered or failed self-ping rejoins the room. Timers, not polling: an idle
    /// connection wakes once per `ping_interval_secs`.
    fn ping(&mut self, fx: &mut Effects<Self>) {
        let interval = Duration::from_secs(self.settings.ping_interval_secs.max(1));
        let timeout = Duration::from_secs(self.settings.ping_timeout_secs.max(1));
        fx.after(interval, Event::Ping);
        let domain = self
            .settings
            .parsed_jid()
            .map(|j| j.domain)
            .unwrap_or_default();
        let id = self.id("ping");
        fx.write(format!(
            "<iq type='get' to='{}' id='{id}'><ping xmlns='{NS_PING}'/></iq>",
            escape(&domain)
        ));
        let mut sent = vec![id.clone()];
        self.pings.insert(id, None);
        for room in self.rooms.clone() {
            let id = self.id("selfping");
            fx.write(format!(
                "<iq type='get' to='{}/{}' id='{id}'><ping xmlns='{NS_PING}'/></iq>",
                escape(&room),
                escape(&self.nick)
            ));
            sent.push(id.clone());
            self.pings.insert(id, Some(room));
        }
        fx.after(timeout, Event::PingDeadline(sent));
    }

    /// The pings `ids` had their time: those still unanswered count as lost.
    fn ping_deadline(&mut self, ids: Vec<String>, fx: &mut Effects<Self>) {
        for id in ids {
            match self.pings.remove(&id) {
                Some(None) => {
                    let timeout = Duration::from_secs(self.settings.ping_timeout_secs.max(1));
                    return fx.fail(ConnectionError::Silent(timeout));
                }
                Some(Some(room)) => {
                    tracing::warn!(connection = %self.name, room = %room, "room self-ping unanswered; rejoining");
                    self.joined.remove(&room);
                    self.join(&room, fx);
                }
                None => {}
            }
        }
    }

    fn on_stanza(&mut self, e: Element, fx: &mut Effects<Self>) {
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
                    fx.inbound(m);
                }
            }
            "presence" => self.on_presence(&e, fx),
            "iq" => self.on_iq(&e, fx),
            "error" => {
                let condition = e
                    .elements()
                    .next()
                    .map(|c| c.local_name().to_owned())
                    .unwrap_or_default();
                fx.fail(ConnectionError::Closed(Some(format!(
                    "stream error from the server: {condition}"
                ))));
            }
            _ => {}
        }
    }

    /// A stanza the reader skipped for being over a limit: one warning, the count in
    /// `/actors`, and for a message to the bot a short answer saying it could not be read.
    fn on_skipped(&mut self, s: Skipped, fx: &mut Effects<Self>) {
        self.skipped += 1;
        tracing::warn!(
            connection = %self.name,
            element = ?log_prefix(&s.name),
            from = ?s.from.as_deref().map(log_prefix),
            limit = s.limit.as_str(),
            bytes = s.bytes,
            "skipped an inbound stanza over the reader's limit"
        );
        fx.detail("skipped_stanzas", serde_json::json!(self.skipped));
        if let Some((to, kind, text)) = self.too_big_answer(&s) {
            for item in self.messages(to, kind, &text) {
                fx.queue(item);
            }
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

    fn on_presence(&mut self, e: &Element, fx: &mut Effects<Self>) {
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
            return self.joined_one(&room, fx);
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
                fx.after(REJOIN_AFTER, Event::Rejoin(room));
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
            self.joined_one(&room, fx);
        }
    }

    /// Counts `room` (joined or refused) off the rooms joined at log-in; the link is up when
    /// none is left: a command said in a room before the bot is in it would not reach it.
    fn joined_one(&mut self, room: &str, fx: &mut Effects<Self>) {
        let before = self.joining.len();
        self.joining.retain(|r| r != room);
        if before > 0 && self.joining.is_empty() {
            fx.ready();
        }
    }

    fn on_iq(&mut self, e: &Element, fx: &mut Effects<Self>) {
        let id = e.attr("id").unwrap_or("").to_owned();
        let from = e.attr("from").map(str::to_owned);
        let to = from
            .as_deref()
            .map(|f| format!(" to='{}'", escape(f)))
            .unwrap_or_default();
        match e.attr("type").unwrap_or("") {
            "get" | "set" => {
                if e.child_ns("ping", NS_PING).is_some() {
                    fx.write(format!("<iq type='result' id='{}'{to}/>", escape(&id)));
                } else {
                    fx.write(format!(
                        "<iq type='error' id='{}'{to}><error type='cancel'><service-unavailable \
                         xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                        escape(&id)
                    ));
                }
            }
            kind => {
                let Some(room) = self.pings.remove(&id) else {
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
                    self.join(&room, fx);
                }
            }
        }
    }
}

impl Platform for Xmpp {
    const KIND: &'static str = "xmpp";
    type Frame = Result<Frame, XmlError>;
    type Write = String;
    type Item = Outbound;
    type Event = Event;
    type Hello = String;

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
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
            (_, _, Err(e)) => return Box::pin(async move { Err(ConnectionError::Protocol(e)) }),
            _ => {
                return Box::pin(async {
                    Err(ConnectionError::Protocol("bad jid or server".into()))
                })
            }
        };
        Box::pin(async move {
            let session = client::connect(&login).await?;
            let parts = session.stream.into_parts();
            let (r, w) = tokio::io::split(parts.io);
            // The codec goes along with the bytes read after the login: it holds the part
            // of a stanza that was already consumed from them.
            let mut reader = FramedRead::new(r, parts.codec);
            reader.read_buffer_mut().extend_from_slice(&parts.read_buf);
            // Reader errors are the platform's to answer (a stream error to the server).
            let frames = reader.map(Ok);
            let sink = FramedWrite::new(w, XmlCodec::default())
                .sink_map_err(|e| ConnectionError::network("writing to the server", e));
            Ok(Link {
                frames: frames.boxed_local(),
                sink: Some(Box::pin(sink)),
                hello: session.jid.bare(),
            })
        })
    }

    fn opened(&mut self, jid: String, fx: &mut Effects<Self>) {
        self.online = true;
        self.joined.clear();
        self.occupants.clear();
        self.pings.clear();
        tracing::info!(connection = %self.name, jid = %jid, "XMPP logged in");
        fx.write("<presence/>".into());
        for room in self.rooms.clone() {
            self.join(&room, fx);
        }
        let interval = Duration::from_secs(self.settings.ping_interval_secs.max(1));
        fx.after(interval, Event::Ping);
        self.joining = self.rooms.clone();
        if self.joining.is_empty() {
            fx.ready();
        }
    }

    fn frame(&mut self, frame: Result<Frame, XmlError>, fx: &mut Effects<Self>) {
        fx.activity();
        match frame {
            Ok(Frame::Stanza(e)) => self.on_stanza(e, fx),
            Ok(Frame::Skipped(s)) => self.on_skipped(s, fx),
            Ok(Frame::StreamOpen(_)) => {}
            Ok(Frame::StreamClose) => fx.fail(ConnectionError::Closed(Some(
                "the server closed the stream".into(),
            ))),
            Err(e) => match e.condition() {
                // XML the reader refuses (not well-formed, restricted, a stream header over
                // a limit; a stanza over one is skipped instead): say why to the server
                // (RFC 6120 §4.9), best effort, then close and reconnect.
                Some(condition) => {
                    fx.write(format!(
                        "<stream:error><{condition} xmlns='{NS_STREAM_ERRORS}'/></stream:error>\
                         </stream:stream>"
                    ));
                    fx.fail(ConnectionError::Protocol(format!(
                        "closed the stream: the server sent {e}"
                    )));
                }
                None => fx.fail(ConnectionError::network("reading from the server", e)),
            },
        }
    }

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::Ping => self.ping(fx),
            Event::PingDeadline(ids) => self.ping_deadline(ids, fx),
            Event::Rejoin(room) => {
                if self.online && !self.joined.contains(&room) {
                    self.join(&room, fx);
                }
            }
        }
    }

    fn closed(&mut self) {
        self.online = false;
    }

    fn render(&mut self, delivery: Deliver) -> Vec<Outbound> {
        let (id, user) = match delivery.target {
            Target::Room { id, .. } => (id, false),
            Target::User { id } => (id, true),
        };
        let Some(jid) = Jid::parse(&id) else {
            tracing::warn!(connection = %self.name, "not an XMPP address; message dropped");
            return Vec::new();
        };
        let bare = jid.bare();
        let (to, kind) = if !user && jid.resource.is_empty() && self.rooms.contains(&bare) {
            (bare, "groupchat")
        } else if jid.resource.is_empty() {
            (bare, "chat")
        } else {
            (id, "chat")
        };
        self.messages(to, kind, &delivery.text)
    }

    fn send(&mut self, m: &Outbound) -> Sending<Self> {
        let id = self.id("m");
        Sending::Write(vec![message_xml(&m.to, m.kind, &m.body, &id)])
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
