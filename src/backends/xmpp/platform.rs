//! XMPP as a [`Platform`]: after the login (`client.rs`: STARTTLS, SASL PLAIN, bind),
//! presence, room joins, pings and self-pings (XEP-0199, XEP-0410), kicks and bans as a state
//! machine over the stanza stream.

use crate::backends::connection::position::{catch_up_floor, now_ms};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures_util::{future::LocalBoxFuture, SinkExt, StreamExt};
use secrecy::SecretString;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{
    archive::{self, PageEnd},
    client::{self, join_since_xml, keyed_message_xml, message_xml, Login},
    config::{Jid, XmppSettings},
    history,
    inbound::{inbound, Occupants, Who},
    wire::{escape, Element, Frame, Limit, Node, Skipped, XmlCodec, XmlError, MAX_STANZA},
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{
        confirming::Confirmations, position::Position, ConnectionError, Effects, Link, Platform,
        PostedParts, Seen, Sending,
    },
    domain::{
        chunk::{split_message, LengthUnit},
        message::{RoomKind, Target},
    },
};

/// Delay before rejoining a room we left involuntarily.
const REJOIN_AFTER: Duration = Duration::from_secs(2);

/// How long after the bot's own presence in a room its join counts as done without the
/// room's subject, which XEP-0045 §7.2.16 has the room send after the history (a server
/// that sends none would otherwise hold the link back for good).
const SUBJECT_WAIT: Duration = Duration::from_secs(5);

/// How long the link waits for the archive's answer (XEP-0313) before it counts as read.
const ARCHIVE_WAIT: Duration = Duration::from_secs(10);

/// Keys of result parts found in the rooms' history as posted by the bot, remembered.
const OWN_PARTS: usize = 1024;

/// Room messages remembered by sender and id, to tell a room's history from what was
/// handed on already.
const SEEN_MESSAGES: usize = 4096;

const NS_PING: &str = "urn:xmpp:ping";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// Why the password could not be had.
#[derive(Debug, thiserror::Error)]
enum PasswordError {
    /// Neither `password` nor `password_file` (validation normally catches this).
    #[error("no password configured")]
    Missing,
    /// `password_file` could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// One queued `<message>`.
#[derive(Debug, Clone)]
pub struct Outbound {
    to: String,
    kind: &'static str,
    body: String,
    /// For a part of a result: its key ([`Receipt::part_key`]), sent as the message's id
    /// and origin-id.
    ///
    /// [`Receipt::part_key`]: crate::actors::messages::Receipt::part_key
    key: Option<String>,
    /// For a part of a result an earlier process may have posted without recording that
    /// (a holder that died, this bridge before a restart): when its command started (ms).
    inherited: Option<u64>,
}

/// The platform's own happenings.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// Time for the next round of room self-pings.
    Ping,
    /// The self-pings with these ids had their time to be answered.
    PingDeadline(Vec<String>),
    /// Time to rejoin a room we left involuntarily.
    Rejoin(String),
    /// [`SUBJECT_WAIT`] has passed since the bot's presence in this room.
    JoinSettled(String),
    /// [`ARCHIVE_WAIT`] has passed since the archive query with this id was sent.
    ArchiveSettled(String),
}

/// The reading of the bot's archive at a login (`archive.rs`).
#[derive(Debug)]
struct ArchiveRead {
    /// The query's id (and queryid).
    id: String,
    /// Since when (an XEP-0082 DateTime).
    start: String,
    /// Pages asked for so far.
    pages: usize,
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
    /// Outstanding room self-pings by id, with their room.
    pings: HashMap<String, String>,
    next_id: u64,
    /// Inbound stanzas skipped for being over a reader limit, since the bridge started
    /// (`skipped_stanzas` in `/actors`).
    skipped: u64,
    /// Since when the links listened, and per room when its newest message was handed on:
    /// where a join asks the room's history from (`history.rs`).
    position: Position,
    /// Per room, the time its last join asked the history from: older history is not
    /// handed on.
    history_since: HashMap<String, u64>,
    /// Room messages handed on, by sender and id.
    seen: Seen,
    /// Per room, the earliest start (ms) of a command whose result is owed there and may
    /// have been posted by an earlier process: the next join asks the history from then.
    owed_since: HashMap<String, u64>,
    /// Result parts the rooms' history or the archive showed the bot posted, and those
    /// written into a link that ended unconfirmed: such a part, owed again, is not posted a
    /// second time.
    posted: PostedParts,
    /// The earliest start (ms) of a command whose result is owed in a direct chat and may
    /// have been posted by an earlier process: the archive is read from then.
    owed_direct_since: Option<u64>,
    /// The archive being read, until its last page (or its error, or [`ARCHIVE_WAIT`]).
    archive: Option<ArchiveRead>,
    /// From the login until the rooms are joined and the archive read: then the link is up.
    settling: bool,
    /// Whether the server's lack of an archive was logged (once).
    told_no_archive: bool,
    /// Result parts written and waiting for the server to confirm them.
    confirming: Confirmations,
}

impl Xmpp {
    /// Who the bot is, as the mapping of inbound stanzas needs it.
    fn who(&self) -> Who<'_> {
        Who {
            connection: &self.name,
            bare: &self.bare,
            nick: &self.nick,
            rooms: &self.rooms,
            ignore: &self.ignore,
        }
    }

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
            position: Position::default(),
            history_since: HashMap::new(),
            seen: Seen::new(SEEN_MESSAGES),
            owed_since: HashMap::new(),
            posted: PostedParts::new(OWN_PARTS),
            owed_direct_since: None,
            archive: None,
            settling: false,
            told_no_archive: false,
            confirming: Confirmations::default(),
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("sb-{prefix}-{}", self.next_id)
    }

    /// The password, read from `password_file` on every connect (so a rotated file is
    /// picked up by the next reconnect).
    fn password(&self) -> Result<SecretString, PasswordError> {
        if let Some(p) = &self.settings.password {
            return Ok(p.clone());
        }
        let path = self
            .settings
            .password_file
            .as_ref()
            .ok_or(PasswordError::Missing)?;
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            PasswordError::Unreadable {
                path: path.clone(),
                source,
            }
        })?);
        Ok(SecretString::from(
            text.lines().next().unwrap_or("").to_owned(),
        ))
    }

    /// Joins `room`, asking for its history: since the position, once the links have
    /// listened (what was said while nobody listened is run first); and for the bot's own
    /// result parts, since [`history::OWN_PARTS_LOOKBACK_MS`] ago or the start of a command
    /// whose result is owed there, if earlier (an earlier process may have posted it without
    /// recording that). Older messages than the position are not commands.
    fn join(&mut self, room: &str, fx: &mut Effects<Self>) {
        let now = now_ms();
        let floor = catch_up_floor(now, self.settings.max_command_age_secs);
        let commands_from = self.position.since(room, floor).map(|since| {
            let listening = self.position.listening_since().unwrap_or_default();
            history::ask_from(since, listening).0
        });
        let owed_from = self.owed_since.get(room).copied();
        let from =
            history::ask_own_parts_from(now, owed_from).min(commands_from.unwrap_or(u64::MAX));
        self.history_since
            .insert(room.to_owned(), commands_from.unwrap_or(u64::MAX));
        fx.write(join_since_xml(room, &self.nick, &history::datetime(from)));
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
                key: None,
                inherited: None,
            })
            .collect()
    }

    /// Self-pings each configured room (XEP-0410), then checks the answers after
    /// `ping_timeout_secs`: an unanswered or failed self-ping rejoins the room. (The server
    /// itself is pinged on the connection's keepalive, [`Platform::keepalive`], when the
    /// stream is silent.) Timers, not polling: the connection wakes once per
    /// `ping_interval_secs`.
    fn self_ping(&mut self, fx: &mut Effects<Self>) {
        let timeout = Duration::from_secs(self.settings.ping_timeout_secs.max(1));
        fx.after(self.ping_interval(), Event::Ping);
        let mut sent = Vec::new();
        for room in self.rooms.clone() {
            let id = self.id("selfping");
            fx.write(format!(
                "<iq type='get' to='{}/{}' id='{id}'><ping xmlns='{NS_PING}'/></iq>",
                escape(&room),
                escape(&self.nick)
            ));
            sent.push(id.clone());
            self.pings.insert(id, room);
        }
        fx.after(timeout, Event::PingDeadline(sent));
    }

    fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.settings.ping_interval_secs.max(1))
    }

    /// The self-pings `ids` had their time: a room whose ping is still unanswered is
    /// rejoined.
    fn ping_deadline(&mut self, ids: Vec<String>, fx: &mut Effects<Self>) {
        for id in ids {
            if let Some(room) = self.pings.remove(&id) {
                tracing::warn!(connection = %self.name, room = %room, "room self-ping unanswered; rejoining");
                self.joined.remove(&room);
                self.join(&room, fx);
            }
        }
    }

    /// One item of the stream: a stanza, a stanza skipped for a limit, or the stream's
    /// end or a reader error.
    fn on_frame(&mut self, frame: Result<Frame, XmlError>, fx: &mut Effects<Self>) {
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

    fn on_stanza(&mut self, e: Element, fx: &mut Effects<Self>) {
        match e.local_name() {
            "message" => self.on_message(&e, fx),
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

    /// A `<message>`: a chat message for the dispatcher, unless it is not for the bot, or is
    /// a room's history (asked for at the join) or a direct message the server kept while
    /// no link was online, of a message handed on already or from before the catch-up.
    fn on_message(&mut self, e: &Element, fx: &mut Effects<Self>) {
        if let Some(read) = &self.archive {
            if let Some(archived) = archive::archived(e, &read.id, &self.bare) {
                for key in archive::own_part_keys(archived, &self.bare) {
                    self.posted.shown(&key);
                }
                return;
            }
        }
        if let Some(room) = self.subject_of(e) {
            return self.joined_one(&room, fx);
        }
        let keys = history::own_part_keys(e, &self.rooms, &self.nick);
        if !keys.is_empty() {
            for key in keys {
                self.posted.shown(&key);
            }
            return;
        }
        let stamp = self.caught_up_stamp(e);
        let live;
        let message = match stamp {
            Some(_) => {
                live = history::undelayed(e);
                &live
            }
            None => e,
        };
        let who = self.who();
        let Some(mut m) = inbound(&who, message, &self.occupants) else {
            return;
        };
        let key = history::message_key(message);
        match (&key, stamp) {
            (Some(key), Some(_)) if !self.seen.insert(key) => return,
            (None, Some(_)) if m.room.kind == RoomKind::Group => {
                tracing::debug!(connection = %self.name, "skipped a message of the room's history without an id: it cannot be told from one already run");
                return;
            }
            // A live message runs whatever its id (a client may reuse one); so does a
            // message from offline storage, which the server hands on once.
            (Some(key), _) => {
                self.seen.insert(key);
            }
            _ => {}
        }
        if m.room.kind == RoomKind::Group {
            self.position.note(&m.room.id, stamp.unwrap_or_else(now_ms));
        }
        if stamp.is_some() {
            tracing::debug!(connection = %self.name, room = %m.room.id, "a message said while the bridge was not listening");
        }
        m.message_id = Some(key.unwrap_or_else(|| self.id("in")));
        fx.inbound(m);
    }

    /// The next confirming ping, to write now: it covers the parts written since the last.
    fn confirming_ping(&mut self) -> String {
        let id = self.id("confirm");
        let ping = self.server_ping(&id);
        self.confirming.pinged(id);
        ping
    }

    /// A ping to the bot's own server (XEP-0199) with id `id`.
    fn server_ping(&self, id: &str) -> String {
        let domain = self
            .settings
            .parsed_jid()
            .map(|j| j.domain)
            .unwrap_or_default();
        format!(
            "<iq type='get' to='{}' id='{}'><ping xmlns='{NS_PING}'/></iq>",
            escape(&domain),
            escape(id)
        )
    }

    /// The room whose subject `e` is: a `groupchat` message from a configured room with a
    /// `<subject>` and no `<body>` (XEP-0045 §8.1), which a room sends last when the bot
    /// joins it, after the history (§7.2.16).
    fn subject_of(&self, e: &Element) -> Option<String> {
        if e.attr("type") != Some("groupchat")
            || e.child("subject").is_none()
            || e.child("body").is_some()
        {
            return None;
        }
        let room = Jid::parse(e.attr("from")?)?.bare();
        self.rooms.contains(&room).then_some(room)
    }

    /// The stamp of a message said while no link listened, to be run now: a room's history
    /// since its join asked from, or a direct message from the server's offline storage
    /// (`history::offline_stamp`) stamped no earlier than the links first listened (before
    /// that it was never a command to the bridge) and at most `max_command_age_secs` ago. `None`
    /// for a live message, and for one delayed otherwise (which is not run).
    fn caught_up_stamp(&self, e: &Element) -> Option<u64> {
        let from = e.attr("from").and_then(Jid::parse)?;
        let room = from.bare();
        if let Some(&asked) = self.history_since.get(&room) {
            let stamp = history::history_stamp(e, &room)?;
            return (e.attr("type") == Some("groupchat") && stamp >= asked).then_some(stamp);
        }
        let domain = self.bare.rsplit_once('@').map_or("", |(_, d)| d);
        let stamp = history::offline_stamp(e, domain)?;
        let listening = self.position.listening_since()?;
        let floor = listening.max(catch_up_floor(now_ms(), self.settings.max_command_age_secs))
            / 1_000
            * 1_000;
        (stamp >= floor).then_some(stamp)
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
        let who = self.who();
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
            // The join is done once the room's history is in, at its subject.
            if self.joining.contains(&room) {
                fx.after(SUBJECT_WAIT, Event::JoinSettled(room));
            }
        }
    }

    /// Counts `room` (joined or refused) off the rooms joined at log-in; the link is up when
    /// none is left: a command said in a room before the bot is in it would not reach it.
    fn joined_one(&mut self, room: &str, fx: &mut Effects<Self>) {
        self.joining.retain(|r| r != room);
        self.settle(fx);
    }

    /// The link is up once the rooms asked for at log-in are joined and the archive is read
    /// (a result part owed again must not be sent before what they show is known).
    fn settle(&mut self, fx: &mut Effects<Self>) {
        if self.settling && self.joining.is_empty() && self.archive.is_none() {
            self.settling = false;
            self.listening(fx);
        }
    }

    /// Asks the bot's archive (XEP-0313) for what it said lately, or since a command whose
    /// result is owed in a direct chat started, if earlier.
    fn read_archive(&mut self, fx: &mut Effects<Self>) {
        let id = self.id("mam");
        let start = history::datetime(history::ask_own_parts_from(
            now_ms(),
            self.owed_direct_since,
        ));
        fx.write(archive::query_xml(&id, &start, None));
        fx.after(ARCHIVE_WAIT, Event::ArchiveSettled(id.clone()));
        self.archive = Some(ArchiveRead {
            id,
            start,
            pages: 1,
        });
    }

    /// The answer to the archive query `read`: the next page, or the end of the reading.
    fn archive_answered(&mut self, mut read: ArchiveRead, e: &Element, fx: &mut Effects<Self>) {
        if e.attr("type") == Some("error") {
            if !self.told_no_archive {
                self.told_no_archive = true;
                tracing::info!(connection = %self.name, "the server keeps no message archive (XEP-0313): a result posted to a direct chat right before the bridge was killed may be posted again");
            }
        } else if let Some(PageEnd::More(last)) = archive::page_end(e) {
            if read.pages < archive::MAX_PAGES {
                read.pages += 1;
                fx.write(archive::query_xml(&read.id, &read.start, Some(&last)));
                self.archive = Some(read);
                return;
            }
        }
        self.settle(fx);
    }

    /// The link is up: from now on what it misses is asked for on the next link (a room's
    /// history, the server's offline storage of direct messages).
    fn listening(&mut self, fx: &mut Effects<Self>) {
        fx.ready();
        self.position.listening(now_ms());
    }

    fn on_iq(&mut self, e: &Element, fx: &mut Effects<Self>) {
        let id = e.attr("id").unwrap_or("").to_owned();
        // The answer to a confirming ping, even an error, means the server handled the
        // parts written before it (parts written since wait for the next ping); or it is
        // the archive's answer to its query.
        if matches!(e.attr("type"), Some("result" | "error")) {
            if let Some(more) = self.confirming.answered(&id) {
                if more {
                    let ping = self.confirming_ping();
                    fx.write(ping);
                }
                return;
            }
            if let Some(read) = self.archive.take_if(|read| read.id == id) {
                return self.archive_answered(read, e, fx);
            }
        }
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
                // The server's answer to a keepalive needs nothing more: it was a frame.
                let Some(room) = self.pings.remove(&id) else {
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
            (_, _, Err(e)) => {
                let error = ConnectionError::Protocol(e.to_string());
                return Box::pin(async move { Err(error) });
            }
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
        if !self.rooms.is_empty() {
            fx.after(self.ping_interval(), Event::Ping);
        }
        self.joining = self.rooms.clone();
        self.read_archive(fx);
        self.settling = true;
        self.settle(fx);
    }

    fn frame(&mut self, frame: Result<Frame, XmlError>, fx: &mut Effects<Self>) {
        fx.activity();
        self.on_frame(frame, fx);
        // A stream that flows but leaves a confirming ping unanswered is as broken as a
        // silent one (which the keepalive catches): its part would wait for ever.
        if self.confirming.overdue(self.keepalive_timeout()) {
            fx.fail(ConnectionError::Timeout(
                "the server's answer to the ping after a result part".into(),
            ));
        }
    }

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::Ping => self.self_ping(fx),
            Event::PingDeadline(ids) => self.ping_deadline(ids, fx),
            Event::Rejoin(room) => {
                if self.online && !self.joined.contains(&room) {
                    self.join(&room, fx);
                }
            }
            Event::ArchiveSettled(id) => {
                if self.archive.as_ref().is_some_and(|read| read.id == id) {
                    tracing::warn!(connection = %self.name, "the server did not answer the archive query (XEP-0313) in time; going on without it");
                    self.archive = None;
                    self.settle(fx);
                }
            }
            Event::JoinSettled(room) => {
                if self.online && self.joining.contains(&room) {
                    tracing::debug!(connection = %self.name, room = %room, "no subject from the room; counting it joined");
                    self.joined_one(&room, fx);
                }
            }
        }
    }

    fn closed(&mut self) {
        self.online = false;
        self.archive = None;
        self.settling = false;
        // Written, not confirmed: sent again on the next link, unless what the server
        // keeps shows it had them.
        for key in self.confirming.lost() {
            self.posted.unconfirmed(&key);
        }
    }

    /// Since when the links listened and per room when its newest message was handed on:
    /// the next holder's joins ask the rooms' history from there.
    fn resume_state(&self) -> Option<serde_json::Value> {
        self.position.state()
    }

    fn resume_from(&mut self, state: serde_json::Value) {
        self.position.resume_from(&state);
    }

    /// A stream silent for `ping_interval_secs` gets a server ping (XEP-0199); silent for
    /// `ping_timeout_secs` more, the link is lost.
    fn keepalive_interval(&self) -> Option<Duration> {
        Some(self.ping_interval())
    }

    fn keepalive_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.ping_timeout_secs.max(1))
    }

    fn keepalive(&mut self, fx: &mut Effects<Self>) {
        let id = self.id("ping");
        fx.write(self.server_ping(&id));
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
        let mut parts = self.messages(to, kind, &delivery.text);
        if let Some(receipt) = &delivery.receipt {
            let inherited = receipt
                .inherited
                .and_then(|at| u64::try_from(at.timestamp_millis()).ok());
            for (n, part) in parts.iter_mut().enumerate() {
                part.key = Some(receipt.part_key(n));
                part.inherited = inherited;
            }
            match (inherited, kind) {
                (Some(at), "groupchat") => {
                    let room = parts.first().map(|p| p.to.clone()).unwrap_or_default();
                    let earliest = self.owed_since.entry(room).or_insert(at);
                    *earliest = (*earliest).min(at);
                }
                (Some(at), _) => {
                    self.owed_direct_since = Some(
                        self.owed_direct_since
                            .map_or(at, |earliest| earliest.min(at)),
                    );
                }
                _ => {}
            }
        }
        parts
    }

    /// A destination is its bare address: a room, or a person whatever their client.
    fn lane(&self, m: &Outbound) -> String {
        m.to.split_once('/')
            .map_or(m.to.as_str(), |(bare, _)| bare)
            .to_owned()
    }

    /// A part of a result is confirmed by the server's answer to a ping written after it
    /// (`connection/confirming.rs`: one ping out at a time covers every part written before it).
    /// A part that an earlier process (or this one, on a link that ended before the
    /// answer) may have posted, and that the room's history or the bot's archive shows the
    /// bot posted, is not posted twice.
    fn send(&mut self, m: &Outbound) -> Sending<Self> {
        let Some(key) = &m.key else {
            let id = self.id("m");
            return Sending::Write(vec![message_xml(&m.to, m.kind, &m.body, &id)]);
        };
        if self.posted.already_posted(key, m.inherited.is_some()) {
            tracing::info!(connection = %self.name, to = %m.to, "a result part owed again is in the history or the archive already; not posting it twice");
            return Sending::Write(Vec::new());
        }
        let mut frames = vec![keyed_message_xml(&m.to, m.kind, &m.body, key)];
        let (confirmed, ping_now) = self.confirming.written(key.clone());
        if ping_now {
            frames.push(self.confirming_ping());
        }
        Sending::WriteConfirmed(frames, confirmed)
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

#[cfg(test)]
mod tests {
    //! The stanza state machine, stanza by stanza: joins (XEP-0045), pings (XEP-0199) and
    //! self-pings (XEP-0410), messages.
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::backends::connection::{outbox::Outcome, End};

    const ROOM: &str = "ops@conference.example.com";

    fn xmpp(rooms: &[&str]) -> Xmpp {
        let settings: XmppSettings = serde_json::from_value(serde_json::json!({
            "jid": "bot@example.com",
            "password": "pw",
            "rooms": rooms,
            "nick": "stormbot",
        }))
        .unwrap();
        Xmpp::new("xm".into(), settings, None)
    }

    /// `xml` as the reader hands it over.
    fn stanza(xml: &str) -> Frame {
        let mut buf = BytesMut::from(xml.as_bytes());
        XmlCodec::default().decode(&mut buf).unwrap().unwrap()
    }

    fn feed(p: &mut Xmpp, xml: &str) -> Effects<Xmpp> {
        let mut fx = Effects::default();
        p.frame(Ok(stanza(xml)), &mut fx);
        fx
    }

    fn event(p: &mut Xmpp, event: Event) -> Effects<Xmpp> {
        let mut fx = Effects::default();
        p.event(event, &mut fx);
        fx
    }

    fn opened(p: &mut Xmpp) -> Effects<Xmpp> {
        let mut fx = Effects::default();
        p.opened("bot@example.com".into(), &mut fx);
        fx
    }

    /// The room's presence of the bot itself: the join is done.
    fn self_presence() -> String {
        format!(
            "<presence from='{ROOM}/stormbot'><x xmlns='{NS_MUC_USER}'>\
             <item affiliation='member' role='participant'/><status code='110'/></x></presence>"
        )
    }

    /// The id of the `<iq>` written to `to`.
    fn iq_to(fx: &Effects<Xmpp>, to: &str) -> String {
        let iq = fx
            .written()
            .iter()
            .find(|w| w.starts_with("<iq") && w.contains(&format!("to='{to}'")))
            .unwrap_or_else(|| panic!("an iq to {to}: {:?}", fx.written()));
        let Frame::Stanza(e) = stanza(iq) else {
            panic!("{iq}");
        };
        assert!(e.child_ns("ping", NS_PING).is_some(), "{iq}");
        e.attr("id").unwrap().to_owned()
    }

    /// The room's subject, which it sends last when the bot joins (after the history).
    fn subject() -> String {
        format!("<message type='groupchat' from='{ROOM}'><subject/></message>")
    }

    /// The room's presence of the bot, then its subject: the join is done (and the archive
    /// read, if it still is).
    fn joined(p: &mut Xmpp) {
        feed(p, &self_presence());
        feed(p, &subject());
        archive_read(p);
    }

    /// The archive query's answer, when one is open: its only page, complete.
    fn archive_read(p: &mut Xmpp) -> Effects<Xmpp> {
        let Some(id) = p.archive.as_ref().map(|read| read.id.clone()) else {
            return Effects::default();
        };
        feed(
            p,
            &format!(
                "<iq type='result' id='{id}'><fin xmlns='{}' complete='true'/></iq>",
                archive::NS_MAM
            ),
        )
    }

    #[test]
    fn the_link_is_ready_once_the_rooms_are_joined() {
        let mut p = xmpp(&[ROOM]);
        let fx = opened(&mut p);
        assert_eq!(fx.written()[0], "<presence/>");
        assert!(
            fx.written()[1].starts_with(&format!("<presence to='{ROOM}/stormbot'>")),
            "{:?}",
            fx.written()
        );
        assert!(
            !fx.is_ready(),
            "a command said before the join would be lost"
        );
        // Someone else's presence is not the bot's join.
        let other = format!("<presence from='{ROOM}/alice'/>");
        assert!(!feed(&mut p, &other).is_ready());
        // The archive is read (it holds nothing): the room is still to be joined.
        assert!(!archive_read(&mut p).is_ready());
        // The bot is in, but the room's history comes next: the join is done at its subject.
        let fx = feed(&mut p, &self_presence());
        assert!(!fx.is_ready());
        assert_eq!(
            fx.timers(),
            [(SUBJECT_WAIT, Event::JoinSettled(ROOM.into()))]
        );
        // Another room's subject, or a message with a body, is not this room's.
        let other_room =
            "<message type='groupchat' from='dev@conference.example.com'><subject/></message>";
        assert!(!feed(&mut p, other_room).is_ready());
        let with_body = format!(
            "<message type='groupchat' from='{ROOM}/alice' id='x'><subject>s</subject><body>hi</body></message>"
        );
        assert!(!feed(&mut p, &with_body).is_ready());
        assert!(feed(&mut p, &subject()).is_ready());
        assert!(
            !event(&mut p, Event::JoinSettled(ROOM.into())).is_ready(),
            "counted once"
        );

        // A room that sends no subject is counted joined a while after the bot's presence.
        let mut p = xmpp(&[ROOM]);
        opened(&mut p);
        archive_read(&mut p);
        feed(&mut p, &self_presence());
        assert!(event(&mut p, Event::JoinSettled(ROOM.into())).is_ready());

        // No rooms: ready once the archive is read, or found missing (a server without
        // MAM answers the query with an error), or silent for too long; a refused room
        // does not hold the link back either.
        let mut p = xmpp(&[]);
        assert!(!opened(&mut p).is_ready());
        assert!(archive_read(&mut p).is_ready());
        let mut p = xmpp(&[]);
        opened(&mut p);
        let id = p.archive.as_ref().unwrap().id.clone();
        let no_mam = format!(
            "<iq type='error' id='{id}'><error type='cancel'><service-unavailable \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
        assert!(feed(&mut p, &no_mam).is_ready());
        let mut p = xmpp(&[]);
        opened(&mut p);
        let id = p.archive.as_ref().unwrap().id.clone();
        assert!(!event(&mut p, Event::ArchiveSettled("another".into())).is_ready());
        assert!(event(&mut p, Event::ArchiveSettled(id)).is_ready());
        let mut p = xmpp(&[ROOM]);
        opened(&mut p);
        archive_read(&mut p);
        let refused = format!("<presence from='{ROOM}/stormbot' type='error'/>");
        assert!(feed(&mut p, &refused).is_ready());
    }

    #[test]
    fn the_archive_is_read_page_by_page_for_the_bots_own_parts_in_direct_chats() {
        let mut p = xmpp(&[]);
        // A result owed to a direct chat since a command an hour ago: read from then.
        let started = now_ms() - 3_600_000;
        p.owed_direct_since = Some(started);
        let fx = opened(&mut p);
        let query = fx
            .written()
            .iter()
            .find(|w| w.contains(archive::NS_MAM))
            .expect("an archive query")
            .clone();
        let id = p.archive.as_ref().unwrap().id.clone();
        assert!(
            query.contains(&history::datetime(history::ask_own_parts_from(
                now_ms(),
                Some(started)
            ))),
            "{query}"
        );
        let archived = |wrapper_from: &str, from: &str, key: &str| {
            format!(
                "<message to='bot@example.com/r'{wrapper_from}><result xmlns='{}' queryid='{id}' id='x{key}'>\
                 <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:00Z'/>\
                 <message xmlns='jabber:client' from='{from}' to='alice@example.com' type='chat' id='{key}'>\
                 <body>result</body></message></forwarded></result></message>",
                archive::NS_MAM
            )
        };
        // The bot's own part, a forged one (the wrapper from alice), alice's message.
        assert!(feed(&mut p, &archived("", "bot@example.com/r1", "aaa"))
            .messages()
            .is_empty());
        feed(
            &mut p,
            &archived(" from='alice@example.com'", "bot@example.com/r1", "bbb"),
        );
        feed(&mut p, &archived("", "alice@example.com/phone", "ccc"));
        // The first page says there is more: the next is asked for after its last.
        let fx = feed(
            &mut p,
            &format!(
                "<iq type='result' id='{id}'><fin xmlns='{}'><set xmlns='http://jabber.org/protocol/rsm'>\
                 <last>x-page-1</last></set></fin></iq>",
                archive::NS_MAM
            ),
        );
        assert!(!fx.is_ready());
        assert!(
            fx.written()
                .iter()
                .any(|w| w.contains("<after>x-page-1</after>")),
            "{:?}",
            fx.written()
        );
        feed(&mut p, &archived("", "bot@example.com/r2", "ddd"));
        assert!(archive_read(&mut p).is_ready());

        let direct = |key: &str| Outbound {
            to: "alice@example.com".into(),
            kind: "chat",
            body: "result".into(),
            key: Some(key.into()),
            inherited: Some(started),
        };
        assert!(
            written_by(&mut p, &direct("aaa")).is_empty(),
            "posted already"
        );
        assert!(
            written_by(&mut p, &direct("ddd")).is_empty(),
            "on the second page"
        );
        assert_eq!(
            written_by(&mut p, &direct("bbb")).len(),
            1,
            "forged: no proof"
        );
        assert_eq!(
            written_by(&mut p, &direct("ccc")).len(),
            1,
            "alice's, not the bot's"
        );
    }

    #[test]
    fn a_silent_stream_gets_a_server_ping_on_the_keepalive() {
        let mut p = xmpp(&[]);
        opened(&mut p);
        assert_eq!(p.keepalive_interval(), Some(Duration::from_secs(60)));
        assert_eq!(p.keepalive_timeout(), Duration::from_secs(30));
        let mut fx = Effects::default();
        p.keepalive(&mut fx);
        let id = iq_to(&fx, "example.com");
        // The answer is a frame like any other: nothing left waiting, nothing failed.
        let fx = feed(
            &mut p,
            &format!("<iq type='result' from='example.com' id='{id}'/>"),
        );
        assert!(fx.ending().is_none() && fx.written().is_empty());
        assert!(p.pings.is_empty());
        // Without rooms there is nothing to self-ping: no timer.
        assert!(!opened(&mut xmpp(&[]))
            .timers()
            .iter()
            .any(|(_, e)| *e == Event::Ping));
    }

    #[test]
    fn an_unanswered_self_ping_rejoins_the_room_and_an_answered_one_does_not() {
        let mut p = xmpp(&[ROOM]);
        let fx = opened(&mut p);
        assert!(fx
            .timers()
            .iter()
            .any(|(d, e)| *e == Event::Ping && *d == Duration::from_secs(60)));
        joined(&mut p);

        let fx = event(&mut p, Event::Ping);
        let id = iq_to(&fx, &format!("{ROOM}/stormbot"));
        let deadline = fx
            .timers()
            .iter()
            .find_map(|(d, e)| match e {
                Event::PingDeadline(ids) => Some((*d, ids.clone())),
                _ => None,
            })
            .expect("a deadline for the answers");
        assert_eq!(deadline, (Duration::from_secs(30), vec![id.clone()]));
        assert!(fx.timers().iter().any(|(_, e)| matches!(e, Event::Ping)));
        let fx = event(&mut p, Event::PingDeadline(vec![id]));
        let [rejoin] = fx.written() else {
            panic!("one rejoin: {:?}", fx.written());
        };
        assert!(
            rejoin.starts_with(&format!("<presence to='{ROOM}/stormbot'>")),
            "rejoined: {rejoin}"
        );
        assert!(fx.ending().is_none(), "a room's silence is not the link's");

        let fx = event(&mut p, Event::Ping);
        let id = iq_to(&fx, &format!("{ROOM}/stormbot"));
        feed(
            &mut p,
            &format!("<iq type='result' from='{ROOM}/stormbot' id='{id}'/>"),
        );
        assert!(event(&mut p, Event::PingDeadline(vec![id]))
            .written()
            .is_empty());
    }

    #[test]
    fn room_messages_are_handed_over_and_the_servers_pings_answered() {
        let mut p = xmpp(&[ROOM]);
        opened(&mut p);
        joined(&mut p);
        let fx = feed(
            &mut p,
            &format!(
                "<message type='groupchat' from='{ROOM}/alice' id='m1'>\
                 <body>stormbot: run date</body></message>"
            ),
        );
        let [m] = fx.messages() else {
            panic!("one message: {:?}", fx.messages());
        };
        assert_eq!(m.text, "run date");
        assert!(m.mentioned);
        assert_eq!((m.room.id.as_str(), m.room.kind), (ROOM, RoomKind::Group));
        assert_eq!(m.user.name, "alice");
        // The room's reflection of the bot's own message is not a command.
        let own = format!(
            "<message type='groupchat' from='{ROOM}/stormbot'><body>result</body></message>"
        );
        assert!(feed(&mut p, &own).messages().is_empty());

        let fx = feed(
            &mut p,
            "<iq type='get' from='example.com' id='s1'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(
            fx.written(),
            ["<iq type='result' id='s1' to='example.com'/>".to_owned()]
        );

        let mut fx = Effects::default();
        p.frame(Ok(Frame::StreamClose), &mut fx);
        assert!(
            matches!(fx.ending(), Some(End::Fail(_))),
            "{:?}",
            fx.ending()
        );
    }

    fn said(from: &str, id: &str, text: &str, delay: &str) -> String {
        format!(
            "<message type='groupchat' from='{ROOM}/{from}' id='{id}'><body>{text}</body>{delay}</message>"
        )
    }

    fn delay(stamp_ms: u64) -> String {
        let stamp = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(stamp_ms as i64)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!("<delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{stamp}'/>")
    }

    fn texts(fx: &Effects<Xmpp>) -> Vec<String> {
        fx.messages().iter().map(|m| m.text.clone()).collect()
    }

    /// A part of a result: keyed; owed by an earlier process when `inherited`.
    fn part(key: &str, inherited: bool) -> Outbound {
        Outbound {
            to: ROOM.into(),
            kind: "groupchat",
            body: format!("result {key}"),
            key: Some(key.into()),
            inherited: inherited.then_some(now_ms() - 60_000),
        }
    }

    /// The messages `send` writes for `item` (without the confirming ping).
    fn written_by(p: &mut Xmpp, item: &Outbound) -> Vec<String> {
        match p.send(item) {
            Sending::Write(frames) | Sending::WriteConfirmed(frames, _) => frames
                .into_iter()
                .filter(|f| f.starts_with("<message"))
                .collect(),
            _ => panic!("not written"),
        }
    }

    #[test]
    fn a_result_part_owed_again_that_the_rooms_history_shows_is_not_posted_twice() {
        let mut p = xmpp(&[ROOM]);
        // A result owed since a command started an hour ago: the join goes back to it.
        let started = now_ms() - 3_600_000;
        p.owed_since.insert(ROOM.into(), started);
        let fx = opened(&mut p);
        assert!(history_since(&fx) <= started - history::SLACK_MS);
        feed(&mut p, &self_presence());
        // The history: the bot's own part (an earlier process posted it), and someone
        // else's message carrying the key of another part (not the bot's: no proof).
        let own = format!(
            "<message type='groupchat' from='{ROOM}/stormbot' id='aaa'><body>result aaa</body>\
             <origin-id xmlns='{}' id='aaa'/>{}</message>",
            history::NS_SID,
            delay(started + 1_000)
        );
        assert!(feed(&mut p, &own).messages().is_empty());
        assert!(feed(
            &mut p,
            &said("alice", "bbb", "result bbb", &delay(started + 2_000))
        )
        .messages()
        .is_empty());
        archive_read(&mut p);
        assert!(feed(&mut p, &subject()).is_ready());

        assert!(
            written_by(&mut p, &part("aaa", true)).is_empty(),
            "posted already"
        );
        let [sent] = &written_by(&mut p, &part("bbb", true))[..] else {
            panic!("one message");
        };
        let Frame::Stanza(e) = stanza(sent) else {
            panic!("{sent}");
        };
        assert_eq!(e.attr("id"), Some("bbb"));
        assert_eq!(
            e.child_ns("origin-id", history::NS_SID)
                .and_then(|o| o.attr("id")),
            Some("bbb")
        );
        // A part this process owes itself is posted whatever the history holds.
        assert_eq!(written_by(&mut p, &part("aaa", false)).len(), 1);
    }

    #[test]
    fn a_result_part_is_sent_when_the_server_answers_the_ping_after_it() {
        use futures_util::FutureExt;
        let mut p = xmpp(&[ROOM]);
        opened(&mut p);
        joined(&mut p);
        let Sending::WriteConfirmed(frames, confirmed) = p.send(&part("aaa", false)) else {
            panic!("a result part is confirmed");
        };
        let [message, ping] = &frames[..] else {
            panic!("the part, then a ping: {frames:?}");
        };
        assert!(message.starts_with("<message") && message.contains("id='aaa'"));
        let Frame::Stanza(ping) = stanza(ping) else {
            panic!("{ping}");
        };
        assert_eq!(ping.attr("to"), Some("example.com"));
        let id = ping.attr("id").unwrap().to_owned();
        let confirmed = confirmed.shared();
        assert!(
            confirmed.clone().now_or_never().is_none(),
            "not before the answer"
        );
        // Another iq's answer is not it; the server's answer (even an error) is.
        feed(&mut p, "<iq type='result' id='other'/>");
        assert!(confirmed.clone().now_or_never().is_none());
        feed(
            &mut p,
            &format!("<iq type='error' id='{id}' from='example.com'/>"),
        );
        assert!(matches!(
            confirmed.now_or_never(),
            Some(Outcome::Sent { pause: None })
        ));
        // Written into a link that ends before the answer: sent again on the next link,
        // unless the room's history shows the server had it.
        let Sending::WriteConfirmed(_, lost) = p.send(&part("bbb", false)) else {
            panic!("confirmed");
        };
        let Sending::WriteConfirmed(_, kept) = p.send(&part("ccc", false)) else {
            panic!("confirmed");
        };
        p.closed();
        assert!(matches!(lost.now_or_never(), Some(Outcome::Retry(_))));
        assert!(matches!(kept.now_or_never(), Some(Outcome::Retry(_))));
        opened(&mut p);
        feed(&mut p, &self_presence());
        let own = format!(
            "<message type='groupchat' from='{ROOM}/stormbot' id='ccc'><body>result ccc</body>{}</message>",
            delay(now_ms() - 1_000)
        );
        feed(&mut p, &own);
        feed(&mut p, &subject());
        assert!(archive_read(&mut p).is_ready());
        assert_eq!(
            written_by(&mut p, &part("bbb", false)).len(),
            1,
            "lost: sent again"
        );
        assert!(
            written_by(&mut p, &part("ccc", false)).is_empty(),
            "the server had it"
        );
        // A stream that flows while a ping after a part goes unanswered past the keepalive's
        // timeout is broken: the link ends (and the part is sent again on the next).
        let past = p.keepalive_timeout() + Duration::from_secs(1);
        p.confirming.age(past);
        assert!(feed(&mut p, "<iq type='result' id='other'/>")
            .ending()
            .is_some());
    }

    /// The `since` of the history a join in `fx` asks for, in ms.
    fn history_since(fx: &Effects<Xmpp>) -> u64 {
        let join = fx
            .written()
            .iter()
            .find(|w| w.starts_with(&format!("<presence to='{ROOM}/stormbot'>")))
            .unwrap_or_else(|| panic!("a join: {:?}", fx.written()));
        let Frame::Stanza(e) = stanza(join) else {
            panic!("{join}");
        };
        let since = e
            .child("x")
            .and_then(|x| x.child("history"))
            .and_then(|h| h.attr("since"))
            .unwrap_or_else(|| panic!("no history since: {join}"));
        chrono::DateTime::parse_from_rfc3339(since)
            .unwrap()
            .timestamp_millis() as u64
    }

    #[test]
    fn a_new_holder_asks_the_rooms_history_since_the_position_and_runs_it_once() {
        let mut p = xmpp(&[ROOM]);
        assert_eq!(p.resume_state(), None, "never in a room: nothing to resume");
        opened(&mut p);
        let before = now_ms();
        joined(&mut p);
        let listening = p.resume_state().expect("a position")["listening_since"]
            .as_u64()
            .unwrap();
        assert!((before..=now_ms()).contains(&listening));
        let fx = feed(&mut p, &said("alice", "a1", "!st2 run one", ""));
        assert_eq!(
            fx.messages()[0].message_id.as_deref(),
            Some("ops@conference.example.com/alice#a1")
        );
        let heard = p.resume_state().unwrap()["rooms"][ROOM].as_u64().unwrap();
        assert!(heard >= listening);

        // Another process takes the connection over: its join asks for what was said since
        // (a little earlier, to the second).
        let mut next = xmpp(&[ROOM]);
        next.resume_from(p.resume_state().unwrap());
        let fx = opened(&mut next);
        // The join asks from further back, for the bot's own result parts; commands only
        // from the position (a little earlier, to the second).
        let asked = history_since(&fx);
        assert!(
            asked <= now_ms() - history::OWN_PARTS_LOOKBACK_MS,
            "{asked}"
        );
        let since = next.history_since[ROOM];
        assert!(
            since <= heard && heard - since < history::SLACK_MS + 1_000,
            "{since} {heard}"
        );
        joined(&mut next);
        // The history: the message handed on already (the shared store knows it ran; this
        // process hands it on, and the store skips it), one said meanwhile, the bot's own,
        // one without an id, and one older than asked for.
        let fx = feed(
            &mut next,
            &said("alice", "a0", "!st2 run too old", &delay(since - 1_000)),
        );
        assert!(fx.messages().is_empty(), "older than asked for");
        let fx = feed(
            &mut next,
            &said("alice", "a1", "!st2 run one", &delay(heard)),
        );
        assert_eq!(texts(&fx), ["!st2 run one"]);
        let fx = feed(
            &mut next,
            &said("alice", "a2", "!st2 run two", &delay(heard + 1_000)),
        );
        assert_eq!(texts(&fx), ["!st2 run two"]);
        assert_eq!(
            fx.messages()[0].message_id.as_deref(),
            Some("ops@conference.example.com/alice#a2")
        );
        assert!(feed(
            &mut next,
            &said("stormbot", "b1", "a result", &delay(heard + 1_000))
        )
        .messages()
        .is_empty());
        let no_id = format!(
            "<message type='groupchat' from='{ROOM}/alice'><body>!st2 run anon</body>{}</message>",
            delay(heard + 1_000)
        );
        assert!(
            feed(&mut next, &no_id).messages().is_empty(),
            "cannot be told apart"
        );
        assert_eq!(
            next.resume_state().unwrap()["rooms"][ROOM].as_u64(),
            Some(heard.max(heard / 1_000 * 1_000 + 1_000)),
            "the position follows the history's stamps"
        );
        // Live messages flow; a delay that is not the room's history is not a command.
        let fx = feed(&mut next, &said("alice", "a3", "!st2 run three", ""));
        assert_eq!(texts(&fx), ["!st2 run three"]);
        let forwarded = said(
            "alice",
            "a4",
            "!st2 run old",
            "<delay xmlns='urn:xmpp:delay' from='alice@example.com' stamp='2024-01-01T00:00:00Z'/>",
        );
        assert!(feed(&mut next, &forwarded).messages().is_empty());

        // After a lost link the same process asks again from its own position, and what it
        // handed on already is not handed on again; a live message reusing an id still is.
        next.closed();
        opened(&mut next);
        let again = next.history_since[ROOM];
        assert!(again >= since);
        joined(&mut next);
        let fx = feed(
            &mut next,
            &said("alice", "a3", "!st2 run three", &delay(now_ms())),
        );
        assert!(fx.messages().is_empty(), "handed on already");
        let fx = feed(&mut next, &said("alice", "a3", "!st2 run three again", ""));
        assert_eq!(texts(&fx), ["!st2 run three again"]);
    }

    /// A direct message from alice as the server's offline storage hands it on.
    fn kept_offline(id: &str, text: &str, stamp_ms: u64, server: &str) -> String {
        let stamp = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(stamp_ms as i64)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!(
            "<message type='chat' from='alice@example.com/phone' id='{id}'><body>{text}</body>\
             <delay xmlns='urn:xmpp:delay' from='{server}' stamp='{stamp}'/></message>"
        )
    }

    #[test]
    fn direct_messages_kept_offline_while_nobody_listened_run_on_the_next_link() {
        // A first link: the server's offline storage holds what was said before the bridge
        // ever listened, which was never a command to it.
        let mut p = xmpp(&[]);
        opened(&mut p);
        assert!(archive_read(&mut p).is_ready());
        let long_ago = now_ms() - 3_600_000;
        let fx = feed(
            &mut p,
            &kept_offline("d0", "!st2 run before", long_ago, "example.com"),
        );
        assert!(fx.messages().is_empty(), "said before any link listened");
        let listening = p.resume_state().expect("a position")["listening_since"]
            .as_u64()
            .unwrap();

        // The next holder (or this process's next link): what the server kept since the
        // links listened runs, once, as the live message it was.
        let mut next = xmpp(&[]);
        next.resume_from(p.resume_state().unwrap());
        opened(&mut next);
        let fx = feed(
            &mut next,
            &kept_offline("d1", "!st2 run gap", now_ms(), "example.com"),
        );
        assert_eq!(texts(&fx), ["!st2 run gap"]);
        let m = &fx.messages()[0];
        assert_eq!(m.room.kind, RoomKind::Direct);
        assert_eq!(m.room.id, "alice@example.com");
        assert_eq!(m.message_id.as_deref(), Some("alice@example.com/phone#d1"));
        // Offline storage hands a message on once: one without an id runs too.
        let no_id =
            kept_offline("x", "!st2 run anon", now_ms(), "example.com").replace(" id='x'", "");
        assert_eq!(texts(&feed(&mut next, &no_id)), ["!st2 run anon"]);
        // From before the links listened (to the second), or beyond the catch-up window: not
        // run. A delay from anyone but the bot's server is no offline message.
        let fx = feed(
            &mut next,
            &kept_offline(
                "d2",
                "!st2 run early",
                listening / 1_000 * 1_000 - 1_000,
                "example.com",
            ),
        );
        assert!(fx.messages().is_empty());
        let stale = now_ms() - crate::backends::connection::position::MAX_CATCH_UP_MS - 2_000;
        let mut resumed = xmpp(&[]);
        resumed.resume_from(serde_json::json!({"listening_since": stale - 60_000, "rooms": {}}));
        opened(&mut resumed);
        let fx = feed(
            &mut resumed,
            &kept_offline("d3", "!st2 run stale", stale, "example.com"),
        );
        assert!(fx.messages().is_empty(), "older than the catch-up window");
        let fx = feed(
            &mut next,
            &kept_offline("d4", "!st2 run fwd", now_ms(), "alice@example.com"),
        );
        assert!(fx.messages().is_empty());
    }
}
