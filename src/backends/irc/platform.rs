//! IRC as a [`Platform`]: registration (capabilities, PASS or SASL PLAIN, NICK, USER, nick
//! collisions), PING/PONG, joins and rejoins as a state machine over one TCP (or TLS)
//! connection; each `PRIVMSG` confirmed by the server's `PONG` to a `PING` written after it;
//! channel messages a server replays at a join told apart from new ones (`history.rs`).

use std::{sync::Arc, time::Duration};

use futures_util::{future::LocalBoxFuture, SinkExt, StreamExt};
use irc_proto::{CapSubCommand, Command, Message, Response};
use secrecy::ExposeSecret;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{
    config::IrcSettings,
    history::{channel_key, judge, request, server_time_ms, CapListing, Heard, Request},
    inbound::{inbound, Who},
    text::{irc_eq, is_channel, outbound_texts, sasl_plain_chunks},
    wire::{Incoming, IrcLines},
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{
        confirming::Confirmations,
        position::{catch_up_floor, now_ms, Position},
        tcp, ConnectionError, Effects, Link, Platform, PostedParts, Seen, Sending,
    },
    domain::message::Target,
};

/// Longest nick tried after collisions before giving up on appending `_`.
const MAX_NICK_LEN: usize = 30;
/// Delay before rejoining a channel we were kicked from.
const REJOIN_AFTER: Duration = Duration::from_secs(2);
/// How the token of a confirming `PING` starts (the keepalive's is `stormbridge`).
const CONFIRM_TOKEN: &str = "stormbridge-c";
/// Message ids (`msgid`) remembered, so a message a join replays after it was handed on
/// runs once: more than a channel's history holds (InspIRCd's `+H` keeps at most 50 lines
/// by default).
const SEEN_MESSAGES: usize = 1024;

/// One queued `PRIVMSG`.
#[derive(Debug, Clone)]
pub struct Line {
    target: String,
    text: String,
    /// The line's key, sent as the client tag [`PART_TAG`] where the server takes
    /// `message-tags`. For a line of a result, one every bridge process derives alike
    /// ([`Receipt::part_key`](crate::actors::messages::Receipt::part_key) of its line
    /// number); for other lines, one of this process.
    key: Option<String>,
    /// The result was owed by an earlier process, which may have posted this line.
    inherited: bool,
}

/// The client-only tag (IRCv3 `message-tags`) a line of a result carries its key in. A
/// server that replays a channel's history replays it too (InspIRCd's `chanhistory`), so a
/// new link finds which lines of a result the channel already has.
const PART_TAG: &str = "+stormbridge/part";
/// The token of the `PING` written after the joins when history may be replayed: the
/// server answers it after the replay, and the link is up then.
const SETTLE_TOKEN: &str = "stormbridge-settled";

/// The platform's own happenings.
pub enum Event {
    /// Time to rejoin a channel we were kicked from.
    Rejoin(String),
}

/// An IRC connection's state.
pub struct Irc {
    name: String,
    settings: IrcSettings,
    tls: Option<Arc<rustls::ClientConfig>>,
    registered: bool,
    /// Channels asked for at registration and not yet joined (or refused).
    joining: Vec<String>,
    nick: String,
    next_message_id: u64,
    /// Lines written and waiting for the `PONG` to a `PING` written after them: a server
    /// handles a client's lines in order, so the answer means it had them. A line written
    /// into a link that ends first is sent again on the next link instead of lost.
    confirming: Confirmations<Option<String>>,
    /// The number in the next confirming `PING`'s token.
    next_confirm: u64,
    /// The server's capability listing, as it arrives.
    listing: CapListing,
    /// Whether the server tags every message with its time (`server-time`) on this link.
    server_time: bool,
    /// Per channel, the time of the newest message heard, and when the first link joined:
    /// what a join replays up to there is not run again (`history.rs`). Kept across links
    /// and handed to the next holder of the connection.
    position: Position,
    /// The `msgid`s of the messages handed on lately.
    seen: Seen,
    /// Whether the server takes client tags (`message-tags`) on this link.
    message_tags: bool,
    /// Whether the link waits for the answer to [`SETTLE_TOKEN`] before it is up.
    settling: bool,
    /// Lines the channels' replayed history shows the bot posted, and lines written into a
    /// link that ended before the server confirmed them.
    posted: PostedParts,
    /// The random part of this process's keys for lines that are not part of a result.
    line_prefix: u64,
    /// The number in the next such key.
    next_line: u64,
}

impl Irc {
    /// The platform for connection `name`; `tls` when the connection is secured.
    pub fn new(
        name: String,
        settings: IrcSettings,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let nick = settings.nick.clone();
        Self {
            name,
            settings,
            tls,
            registered: false,
            joining: Vec::new(),
            nick,
            next_message_id: 1,
            confirming: Confirmations::default(),
            next_confirm: 1,
            listing: CapListing::default(),
            server_time: false,
            position: Position::default(),
            seen: Seen::new(SEEN_MESSAGES),
            message_tags: false,
            settling: false,
            posted: PostedParts::new(SEEN_MESSAGES),
            line_prefix: fastrand::u64(..),
            next_line: 0,
        }
    }

    /// A key for a line that is not part of a result: this process's own (`l`, a random
    /// prefix drawn at start, a counter), never one a result's line has (24 hex digits).
    fn line_key(&mut self) -> String {
        self.next_line += 1;
        format!("l{}-{}", self.line_prefix, self.next_line)
    }

    /// The time a message was said (its `time` tag), when the server tags messages.
    fn said_at(&self, msg: &Message) -> Option<u64> {
        if !self.server_time {
            return None;
        }
        tag_value(msg, "time").as_deref().and_then(server_time_ms)
    }

    /// Asks for the capabilities wanted of the whole listing `offered`.
    fn negotiate(&mut self, offered: &std::collections::BTreeSet<String>, fx: &mut Effects<Self>) {
        match request(offered, self.settings.sasl_username.is_some()) {
            Request::Caps(caps) => {
                let req = Command::CAP(None, CapSubCommand::REQ, None, Some(caps.join(" ")));
                Self::send(fx, req);
            }
            Request::Nothing => Self::send(fx, Command::CAP(None, CapSubCommand::END, None, None)),
            // No `CAP END`: it would let the server finish registering the bot (NICK and
            // USER are sent) without the authentication it was configured to use.
            Request::NoSasl => fx.fail(ConnectionError::Protocol(
                "the server does not offer SASL".into(),
            )),
        }
    }

    /// The next confirming `PING`: it covers every line written since the last.
    fn confirming_ping(&mut self) -> String {
        let token = format!("{CONFIRM_TOKEN}{}", self.next_confirm);
        self.next_confirm += 1;
        let ping = String::from(&Command::PING(token.clone(), None));
        self.confirming.pinged(token);
        ping
    }

    fn send(fx: &mut Effects<Self>, command: Command) {
        fx.write(String::from(&command));
    }

    fn register(&mut self, fx: &mut Effects<Self>) {
        self.nick = self.settings.nick.clone();
        // The server holds the registration until `CAP END` (a server that does not know
        // `CAP` answers 421 and registers the bot at `USER`).
        Self::send(
            fx,
            Command::CAP(None, CapSubCommand::LS, Some("302".into()), None),
        );
        if let Some(password) = &self.settings.password {
            Self::send(fx, Command::PASS(password.expose_secret().to_owned()));
        }
        Self::send(fx, Command::NICK(self.nick.clone()));
        let user = self
            .settings
            .username
            .clone()
            .unwrap_or_else(|| self.settings.nick.clone());
        Self::send(
            fx,
            Command::USER(user, "0".into(), self.settings.realname.clone()),
        );
    }

    fn message(&mut self, msg: Message, fx: &mut Effects<Self>) {
        match msg.command {
            Command::PING(server, other) => Self::send(fx, Command::PONG(server, other)),
            // `PONG <server> :<token>` (RFC 2812 §3.7.3); some servers answer `PONG :<token>`.
            Command::PONG(ref first, ref second) => {
                let token = second.as_deref().unwrap_or(first);
                if self.settling && token == SETTLE_TOKEN {
                    self.settling = false;
                    fx.ready();
                    return;
                }
                if self.confirming.answered(token) == Some(true) {
                    let ping = self.confirming_ping();
                    fx.write(ping);
                }
            }
            Command::Response(Response::RPL_WELCOME, ref args) => {
                if let Some(nick) = args.first() {
                    self.nick = nick.clone();
                }
                self.registered = true;
                tracing::info!(connection = %self.name, nick = %self.nick, "IRC registered");
                // Up once the channels are joined (or refused): IRC keeps no history, so a
                // command said before the join would never be seen.
                self.joining = self.settings.channels.clone();
                for channel in &self.settings.channels {
                    Self::send(fx, Command::JOIN(channel.clone(), None, None));
                }
                self.joined_one(None, fx);
            }
            Command::JOIN(ref channel, _, _)
                if msg.source_nickname().is_some_and(|n| irc_eq(n, &self.nick)) =>
            {
                // The first join is where the connection starts listening: what a join
                // replays from before it is not run (by the server's clock when it tags).
                if let Some(at) = self.said_at(&msg) {
                    self.position.listening(at);
                } else if self.server_time {
                    self.position.listening(now_ms());
                }
                self.joined_one(Some(channel), fx);
            }
            Command::Response(
                Response::ERR_NOSUCHCHANNEL
                | Response::ERR_TOOMANYCHANNELS
                | Response::ERR_CHANNELISFULL
                | Response::ERR_INVITEONLYCHAN
                | Response::ERR_BANNEDFROMCHAN
                | Response::ERR_BADCHANNELKEY,
                ref args,
            ) => {
                // `<nick> <channel> :<reason>`
                if let Some(channel) = args.get(1) {
                    tracing::warn!(connection = %self.name, channel = %channel, reason = %args.last().cloned().unwrap_or_default(), "the server refused to let the bot join a channel");
                    self.joined_one(Some(channel), fx);
                }
            }
            Command::Response(
                Response::ERR_NICKNAMEINUSE
                | Response::ERR_NICKCOLLISION
                | Response::ERR_UNAVAILRESOURCE,
                _,
            ) if !self.registered => {
                if self.nick.len() < MAX_NICK_LEN {
                    self.nick.push('_');
                } else {
                    let keep: String = self.settings.nick.chars().take(MAX_NICK_LEN - 4).collect();
                    self.nick = format!("{keep}{:04}", fastrand::u16(..10000));
                }
                tracing::info!(connection = %self.name, nick = %self.nick, "IRC nick in use; trying another");
                Self::send(fx, Command::NICK(self.nick.clone()));
            }
            Command::Response(Response::ERR_ERRONEOUSNICKNAME, _) if !self.registered => {
                fx.fail(ConnectionError::Protocol(format!(
                    "the server refused the nick `{}`",
                    self.nick
                )));
            }
            Command::Response(Response::ERR_PASSWDMISMATCH, _) => fx.fail(
                ConnectionError::Protocol("the server refused the password".into()),
            ),
            Command::Response(
                Response::ERR_SASLFAIL | Response::ERR_SASLTOOLONG | Response::ERR_SASLABORT,
                _,
            ) => fx.fail(ConnectionError::Protocol(
                "SASL authentication failed".into(),
            )),
            Command::Response(Response::RPL_SASLSUCCESS, _) => {
                Self::send(fx, Command::CAP(None, CapSubCommand::END, None, None));
            }
            // `CAP * LS * :caps` (more lines follow) or `CAP * LS :caps` (the last).
            Command::CAP(_, CapSubCommand::LS, ref a, ref b) => {
                let (more, caps) = match (a.as_deref(), b.as_deref()) {
                    (Some("*"), Some(caps)) => (true, caps),
                    (Some(caps), _) => (false, caps),
                    (None, caps) => (false, caps.unwrap_or("")),
                };
                if let Some(offered) = self.listing.line(more, caps) {
                    self.negotiate(&offered, fx);
                }
            }
            Command::CAP(_, CapSubCommand::ACK, ref a, ref b) => {
                let caps = format!(
                    "{} {}",
                    a.as_deref().unwrap_or(""),
                    b.as_deref().unwrap_or("")
                );
                let acked = |name: &str| caps.split_whitespace().any(|c| c == name);
                self.server_time = acked("server-time");
                self.message_tags = acked("message-tags");
                if acked("sasl") {
                    Self::send(fx, Command::AUTHENTICATE("PLAIN".into()));
                } else {
                    Self::send(fx, Command::CAP(None, CapSubCommand::END, None, None));
                }
            }
            Command::CAP(_, CapSubCommand::NAK, _, _) => {
                if self.settings.sasl_username.is_some() {
                    // No `CAP END`: it would let the server finish registering the bot
                    // without the authentication it was configured to use. Closing is the
                    // answer.
                    fx.fail(ConnectionError::Protocol(
                        "the server refused the SASL capability".into(),
                    ));
                } else {
                    // Only optional capabilities were asked for: register without them.
                    Self::send(fx, Command::CAP(None, CapSubCommand::END, None, None));
                }
            }
            Command::Response(Response::ERR_UNKNOWNCOMMAND, ref args)
                if args.get(1).is_some_and(|c| c.eq_ignore_ascii_case("CAP"))
                    && self.settings.sasl_username.is_some() =>
            {
                fx.fail(ConnectionError::Protocol(
                    "the server does not offer SASL (it does not know `CAP`)".into(),
                ));
            }
            Command::AUTHENTICATE(ref data) if data == "+" => self.sasl_plain(fx),
            Command::NICK(ref new)
                if msg.source_nickname().is_some_and(|n| irc_eq(n, &self.nick)) =>
            {
                self.nick = new.clone();
            }
            Command::KICK(ref channel, ref who, _)
                if irc_eq(who, &self.nick)
                    && self.settings.channels.iter().any(|c| irc_eq(c, channel)) =>
            {
                tracing::warn!(connection = %self.name, channel = %channel, "kicked; rejoining");
                fx.after(REJOIN_AFTER, Event::Rejoin(channel.clone()));
            }
            Command::ERROR(ref reason) => fx.fail(ConnectionError::Closed(Some(reason.clone()))),
            Command::PRIVMSG(ref target, _) => {
                if msg.source_nickname().is_some_and(|n| irc_eq(n, &self.nick)) {
                    if let Some(key) = tag_value(&msg, PART_TAG) {
                        self.posted.shown(&key);
                    }
                }
                let msgid = tag_value(&msg, "msgid");
                if is_channel(target) {
                    if let Some(at) = self.said_at(&msg) {
                        let key = channel_key(target);
                        let floor = catch_up_floor(now_ms(), self.settings.max_command_age_secs);
                        // InspIRCd replays times to the second (`.000Z`): such a message
                        // may be from any moment of that second. With a `msgid` to tell a
                        // repeat by, it is judged by the second's end (a repeat is then
                        // caught by its id); without one, by its start.
                        let latest = if at % 1000 == 0 && msgid.is_some() {
                            at + 999
                        } else {
                            at
                        };
                        match judge(&self.position, &key, latest, floor) {
                            Heard::New => self.position.note(&key, at),
                            Heard::Before => {
                                tracing::debug!(connection = %self.name, channel = %target, "a message said before the connection last heard the channel (a replay): not run again");
                                return;
                            }
                            Heard::TooOld => {
                                self.position.note(&key, at);
                                tracing::info!(connection = %self.name, channel = %target, "a message said while no link listened, longer ago than max_command_age_secs: not run");
                                return;
                            }
                        }
                    }
                }
                let who = Who {
                    connection: &self.name,
                    nick: &self.nick,
                    base_nick: &self.settings.nick,
                    ignore_nicks: &self.settings.ignore_nicks,
                };
                if let Some(mut message) = inbound(&who, &msg) {
                    if msgid.as_deref().is_some_and(|id| !self.seen.insert(id)) {
                        tracing::debug!(connection = %self.name, "a message handed on already (a replay): not run again");
                        return;
                    }
                    if message.message_id.is_none() {
                        self.next_message_id += 1;
                        message.message_id = Some(format!("irc-{}", self.next_message_id));
                    }
                    fx.inbound(message);
                }
            }
            _ => {}
        }
    }

    /// Counts `channel` (joined or refused) off the channels joined at registration; the
    /// link is up when none is left.
    fn joined_one(&mut self, channel: Option<&str>, fx: &mut Effects<Self>) {
        let before = self.joining.len();
        if let Some(channel) = channel {
            self.joining.retain(|c| !irc_eq(c, channel));
        }
        if self.registered && self.joining.is_empty() && (before > 0 || channel.is_none()) {
            if self.message_tags && self.server_time && !self.settings.channels.is_empty() {
                // The server replays a channel's history right after the join: what the
                // bot posted is in it. Up once that has come (the answer to a `PING`
                // written now comes after it), so a result line sent again is first
                // looked for there.
                self.settling = true;
                Self::send(fx, Command::PING(SETTLE_TOKEN.into(), None));
            } else {
                fx.ready();
            }
        }
    }

    fn sasl_plain(&mut self, fx: &mut Effects<Self>) {
        let (Some(user), Some(password)) = (
            self.settings.sasl_username.clone(),
            self.settings.sasl_password.as_ref(),
        ) else {
            return;
        };
        for chunk in sasl_plain_chunks(&user, password.expose_secret()).iter() {
            Self::send(fx, Command::AUTHENTICATE(chunk.clone()));
        }
    }
}

/// The value of tag `name` of `msg`, if it has one.
fn tag_value(msg: &Message, name: &str) -> Option<String> {
    msg.tags
        .as_ref()?
        .iter()
        .find(|t| t.0 == name)
        .and_then(|t| t.1.clone())
}

impl Platform for Irc {
    const KIND: &'static str = "irc";
    type Frame = Incoming;
    type Write = String;
    type Item = Line;
    type Event = Event;
    type Hello = ();

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let host = self.settings.server.clone();
        let port = self.settings.port();
        let timeout = self.settings.connect_timeout();
        let tls = self.tls.clone();
        Box::pin(async move {
            let stream = tcp::connect(&host, port, timeout).await?;
            let stream: Box<dyn tcp::Stream> = match tls {
                None => Box::new(stream),
                Some(config) => Box::new(tcp::tls(stream, &host, config, timeout).await?),
            };
            let (reader, writer) = tokio::io::split(stream);
            let frames = FramedRead::new(reader, IrcLines::default())
                .map(|r| r.map_err(|e| ConnectionError::network("reading from the server", e)));
            let sink = FramedWrite::new(writer, IrcLines::default())
                .sink_map_err(|e| ConnectionError::network("writing to the server", e));
            Ok(Link {
                frames: frames.boxed_local(),
                sink: Some(Box::pin(sink)),
                hello: (),
            })
        })
    }

    fn opened(&mut self, _hello: (), fx: &mut Effects<Self>) {
        tracing::info!(connection = %self.name, "IRC connected; registering");
        self.register(fx);
    }

    fn frame(&mut self, frame: Incoming, fx: &mut Effects<Self>) {
        fx.activity();
        match frame {
            Incoming::Message(msg) => self.message(*msg, fx),
            Incoming::Unparsed(why) => {
                tracing::debug!(connection = %self.name, error = %why, "skipped an IRC line");
            }
        }
        // A server that talks but leaves a confirming PING unanswered is as broken as a
        // silent one (which the keepalive catches): the lines behind it would wait for ever.
        if self.confirming.overdue(self.keepalive_timeout()) {
            fx.fail(ConnectionError::Timeout(
                "the server's answer to the PING after a message".into(),
            ));
        }
    }

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::Rejoin(channel) if self.registered => {
                Self::send(fx, Command::JOIN(channel, None, None));
            }
            Event::Rejoin(_) => {}
        }
    }

    /// Per channel, the newest message heard, and when the first link joined; nothing
    /// before the first join on a server that tags messages with their time.
    fn resume_state(&self) -> Option<serde_json::Value> {
        self.position.state()
    }

    fn resume_from(&mut self, state: serde_json::Value) {
        self.position.resume_from(&state);
    }

    fn closed(&mut self) {
        self.registered = false;
        self.server_time = false;
        self.message_tags = false;
        self.settling = false;
        self.listing = CapListing::default();
        // Written, not confirmed: sent again on the next link, unless the channel's
        // replayed history shows the server had them.
        for key in self.confirming.lost().into_iter().flatten() {
            self.posted.unconfirmed(&key);
        }
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.settings.ping_after_secs.max(1)))
    }

    fn keepalive(&mut self, fx: &mut Effects<Self>) {
        Self::send(fx, Command::PING("stormbridge".into(), None));
    }

    fn render(&mut self, delivery: Deliver) -> Vec<Line> {
        let target = match delivery.target {
            Target::Room { id, .. } | Target::User { id } => id,
        };
        if target.is_empty() || target.contains([' ', ',', '\r', '\n', '\0']) {
            tracing::warn!(connection = %self.name, "not an IRC target; message dropped");
            return Vec::new();
        }
        let receipt = delivery.receipt.as_ref();
        outbound_texts(&target, &self.settings.nick, &delivery.text)
            .into_iter()
            .enumerate()
            .map(|(n, text)| Line {
                target: target.clone(),
                text,
                key: Some(match receipt {
                    Some(r) => r.part_key(n),
                    None => self.line_key(),
                }),
                inherited: receipt.is_some_and(|r| r.inherited.is_some()),
            })
            .collect()
    }

    /// A line counts as sent once the server answers a `PING` written after it (one out at
    /// a time covers every line written before it). Waiting for that answer also keeps the
    /// bridge from piling lines into a server's flood control: at most the lines behind one
    /// `PING` are in its hands. With `confirm_lines = false` a line counts as sent once
    /// written.
    fn send(&mut self, line: &Line) -> Sending<Self> {
        if let Some(key) = &line.key {
            if self.posted.already_posted(key, line.inherited) {
                tracing::info!(connection = %self.name, "a line owed again is in the channel's history already; not posting it twice");
                return Sending::Write(Vec::new());
            }
        }
        let privmsg = String::from(&Command::PRIVMSG(line.target.clone(), line.text.clone()));
        let privmsg = match &line.key {
            // Keys are letters, digits and `-`: nothing to escape in a tag value.
            Some(key) if self.message_tags => format!("@{PART_TAG}={key} {privmsg}"),
            _ => privmsg,
        };
        let mut frames = vec![privmsg];
        if !self.settings.confirm_lines {
            return Sending::Write(frames);
        }
        let (confirmed, ping_now) = self.confirming.written(line.key.clone());
        if ping_now {
            frames.push(self.confirming_ping());
        }
        Sending::WriteConfirmed(frames, confirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::connection::outbox::Outcome;

    fn platform() -> Irc {
        let settings: IrcSettings = serde_json::from_value(serde_json::json!({
            "server": "irc.example.net", "nick": "bot", "channels": ["#ops"],
        }))
        .unwrap();
        Irc::new("irc".into(), settings, None)
    }

    /// A platform configured to authenticate with SASL PLAIN.
    fn sasl_platform() -> Irc {
        let settings: IrcSettings = serde_json::from_value(serde_json::json!({
            "server": "irc.example.net", "nick": "bot", "channels": ["#ops"],
            "sasl_username": "bot", "sasl_password": "pw",
        }))
        .unwrap();
        Irc::new("irc".into(), settings, None)
    }

    fn line(p: &mut Irc, text: &str) -> Effects<Irc> {
        let mut fx = Effects::default();
        let msg: Message = text.parse().unwrap();
        p.frame(Incoming::Message(Box::new(msg)), &mut fx);
        fx
    }

    #[test]
    fn registration_retries_a_taken_nick_and_joins_after_the_welcome() {
        let mut p = platform();
        let mut fx = Effects::default();
        p.opened((), &mut fx);
        assert_eq!(
            fx.written(),
            ["CAP LS 302", "NICK bot", "USER bot 0 * stormbridge"]
        );
        // ngircd offers only `multi-prefix`, which the bot does not want.
        let fx = line(&mut p, ":srv CAP * LS :multi-prefix");
        assert_eq!(fx.written(), ["CAP END"]);
        let fx = line(&mut p, ":srv 433 * bot :Nickname is already in use");
        assert_eq!(fx.written(), ["NICK bot_"]);
        let fx = line(&mut p, ":srv 001 bot_ :Welcome");
        assert!(!fx.is_ready(), "not before the channel is joined");
        assert_eq!(fx.written(), ["JOIN #ops"]);
        let fx = line(&mut p, ":bot_!b@h JOIN #ops");
        assert!(fx.is_ready());
        let fx = line(&mut p, "PING :srv");
        assert_eq!(fx.written(), ["PONG srv"]);
    }

    #[test]
    fn sasl_the_server_does_not_offer_ends_the_link_unregistered() {
        let mut p = sasl_platform();
        let mut fx = Effects::default();
        p.opened((), &mut fx);
        assert_eq!(fx.written()[0], "CAP LS 302");
        let fx = line(&mut p, ":srv CAP * LS :multi-prefix server-time");
        assert!(fx.ending().is_some());
        // `CAP END` would have the server register the bot, unauthenticated.
        assert!(fx.written().is_empty(), "{:?}", fx.written());

        // Offered, then refused.
        let mut fx = Effects::default();
        p.closed();
        p.opened((), &mut fx);
        let fx = line(&mut p, ":srv CAP * LS :sasl=PLAIN");
        assert_eq!(fx.written(), ["CAP REQ sasl"]);
        let fx = line(&mut p, ":srv CAP * NAK :sasl");
        assert!(fx.ending().is_some());
        assert!(fx.written().is_empty(), "{:?}", fx.written());

        // A server that does not know `CAP` would register the bot at `USER`.
        let mut fx = Effects::default();
        p.closed();
        p.opened((), &mut fx);
        let fx = line(&mut p, ":srv 421 * CAP :Unknown command");
        assert!(fx.ending().is_some());
    }

    #[test]
    fn sasl_with_other_capabilities_ends_the_negotiation_after_authenticating() {
        let mut p = sasl_platform();
        p.opened((), &mut Effects::default());
        assert!(
            line(&mut p, ":srv CAP * LS * :sasl=PLAIN,EXTERNAL multi-prefix")
                .written()
                .is_empty()
        );
        let fx = line(&mut p, ":srv CAP * LS :server-time message-tags batch");
        assert_eq!(fx.written(), ["CAP REQ :server-time message-tags sasl"]);
        let fx = line(&mut p, ":srv CAP * ACK :server-time message-tags sasl");
        assert_eq!(fx.written(), ["AUTHENTICATE PLAIN"]);
        assert!(p.server_time);
        let fx = line(&mut p, ":srv 903 bot :SASL authentication successful");
        assert_eq!(fx.written(), ["CAP END"]);
    }

    /// A platform registered on a server that offers `server-time` and `message-tags`, in
    /// #ops since `joined` (the server's time of its JOIN).
    fn registered_with_server_time(joined: &str) -> Irc {
        let mut p = platform();
        p.opened((), &mut Effects::default());
        let fx = line(&mut p, ":srv CAP * LS :server-time message-tags batch");
        assert_eq!(fx.written(), ["CAP REQ :server-time message-tags"]);
        let fx = line(&mut p, ":srv CAP * ACK :server-time message-tags");
        assert_eq!(fx.written(), ["CAP END"]);
        line(
            &mut p,
            "@time=2026-12-05T10:00:00.000Z :srv 001 bot :Welcome",
        );
        let fx = line(&mut p, &format!("@time={joined} :bot!b@h JOIN #ops"));
        // Up once the history a join replays has come: after the answer to a PING.
        assert!(!fx.is_ready());
        assert_eq!(fx.written(), [format!("PING {SETTLE_TOKEN}")]);
        let fx = line(&mut p, &format!(":srv PONG srv :{SETTLE_TOKEN}"));
        assert!(fx.is_ready());
        p
    }

    /// A new link of `p` registering with `server-time` and joining #ops at `joined`.
    fn rejoin(p: &mut Irc, joined: &str) {
        p.opened((), &mut Effects::default());
        line(p, ":srv CAP * LS :server-time message-tags");
        line(p, ":srv CAP * ACK :server-time message-tags");
        line(p, ":srv 001 bot :Welcome");
        line(p, &format!("@time={joined} :bot!b@h JOIN #ops"));
    }

    /// Line `n` of a result whose receipt is `id`.
    fn result_line(id: &str, n: usize, text: &str, inherited: bool) -> Line {
        let receipt = crate::actors::messages::Receipt {
            id: id.into(),
            to: None,
            inherited: None,
        };
        Line {
            target: "#ops".into(),
            text: text.into(),
            key: Some(receipt.part_key(n)),
            inherited,
        }
    }

    #[test]
    fn a_result_line_the_replayed_history_shows_is_not_sent_again() {
        let mut p = registered_with_server_time(&ago(10));
        let first = result_line("req-1", 0, "stdout : one", false);
        let key = first.key.clone().unwrap();
        let Sending::WriteConfirmed(frames, _confirmed) = p.send(&first) else {
            panic!("written, then confirmed")
        };
        assert_eq!(
            frames,
            [
                format!("@{PART_TAG}={key} PRIVMSG #ops :stdout : one"),
                "PING stormbridge-c1".to_owned()
            ]
        );
        let second = result_line("req-1", 1, "the last line", false);
        let _second_confirmed = p.send(&second);
        // The link ends before the server's answer: both go back to the queue.
        p.closed();
        rejoin(&mut p, &ago(1));
        // The replay shows the first (the server had it), not the second.
        let own = |text: &str, key: &str| {
            format!(
                "@time={};batch=1;{PART_TAG}={key} :bot!b@h PRIVMSG #ops :{text}",
                ago(5)
            )
        };
        line(&mut p, &own("stdout : one", &key));
        assert!(matches!(p.send(&first), Sending::Write(frames) if frames.is_empty()));
        assert!(
            matches!(p.send(&second), Sending::WriteConfirmed(frames, _) if frames[0].ends_with("the last line"))
        );
        // A line this process never wrote is sent even though the replay shows its key.
        let fresh = result_line("req-2", 0, "stdout : two", false);
        line(&mut p, &own("stdout : two", fresh.key.as_deref().unwrap()));
        assert!(matches!(p.send(&fresh), Sending::WriteConfirmed(..)));
        // One owed by an earlier process is looked for in the replay too.
        let inherited = result_line("req-2", 0, "stdout : two", true);
        assert!(matches!(p.send(&inherited), Sending::Write(frames) if frames.is_empty()));
    }

    /// A server time `secs_ago` seconds before `now`, at 123 ms into its second (a replay
    /// of InspIRCd's would be at 0 ms).
    fn before(now: i64, secs_ago: i64) -> String {
        chrono::DateTime::from_timestamp(now - secs_ago, 123_000_000)
            .expect("a time")
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }

    /// The server's time `secs_ago` seconds ago.
    fn ago(secs_ago: i64) -> String {
        before(chrono::Utc::now().timestamp(), secs_ago)
    }

    fn said(p: &mut Irc, time: &str, msgid: &str, text: &str) -> Vec<InboundText> {
        line(
            p,
            &format!("@time={time};msgid={msgid} :alice!a@h PRIVMSG #Ops :{text}"),
        )
        .messages()
        .iter()
        .map(|m| (m.text.clone(), m.message_id.clone()))
        .collect()
    }

    type InboundText = (String, Option<String>);

    #[test]
    fn what_a_join_replays_from_before_the_first_join_is_not_run() {
        let now = chrono::Utc::now().timestamp();
        let at = |secs_ago| before(now, secs_ago);
        let mut p = registered_with_server_time(&at(60));
        // InspIRCd's chanhistory replays the channel's last lines after the JOIN.
        assert!(said(&mut p, &at(120), "m1", "!st2 run old").is_empty());
        assert!(said(&mut p, &at(60), "m2", "!st2 run at the join").is_empty());
        assert_eq!(
            said(&mut p, &at(30), "m3", "!st2 run new"),
            [("!st2 run new".to_owned(), Some("m3".to_owned()))]
        );

        // The link is lost; meanwhile alice says one more. The rejoin replays all of it.
        p.closed();
        rejoin(&mut p, &at(5));
        assert!(said(&mut p, &at(120), "m1", "!st2 run old").is_empty());
        assert!(said(&mut p, &at(30), "m3", "!st2 run new").is_empty());
        assert_eq!(
            said(&mut p, &at(10), "m4", "!st2 run during the outage"),
            [(
                "!st2 run during the outage".to_owned(),
                Some("m4".to_owned())
            )]
        );

        // The next holder of the connection starts from the same point.
        let mut next = platform();
        next.resume_from(p.resume_state().expect("a point to hand on"));
        rejoin(&mut next, &at(1));
        assert!(said(&mut next, &at(10), "m4", "!st2 run during the outage").is_empty());
        assert_eq!(said(&mut next, &at(2), "m5", "!st2 run x").len(), 1);
    }

    #[test]
    fn replays_to_the_second_are_told_apart_by_msgid() {
        // A minute ago, to the second (within max_command_age_secs whenever the test runs).
        let second = chrono::Utc::now().timestamp() - 60;
        let at = |secs: i64, ms: u32| {
            chrono::DateTime::from_timestamp(second + secs, ms * 1_000_000)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        let mut p = registered_with_server_time(&at(0, 0));
        assert_eq!(said(&mut p, &at(4, 678), "m1", "!st2 run a").len(), 1);
        // The same message replayed, to the second: run once.
        assert!(said(&mut p, &at(4, 0), "m1", "!st2 run a").is_empty());
        // Another said in that second after it: run.
        assert_eq!(said(&mut p, &at(4, 0), "m2", "!st2 run b").len(), 1);
        // Earlier seconds are replays.
        assert!(said(&mut p, &at(3, 0), "m0", "!st2 run c").is_empty());
    }

    #[test]
    fn a_replayed_command_older_than_max_command_age_is_not_run() {
        let mut p = platform();
        p.resume_from(serde_json::json!({"listening_since": 0, "rooms": {}}));
        rejoin(&mut p, &ago(0));
        assert!(said(&mut p, &ago(3_600), "m1", "!st2 run stale").is_empty());
        assert_eq!(said(&mut p, &ago(60), "m2", "!st2 run fresh").len(), 1);
    }

    #[test]
    fn without_server_time_every_message_is_live_and_nothing_is_handed_on() {
        let mut p = platform();
        p.opened((), &mut Effects::default());
        line(&mut p, ":srv CAP * LS :multi-prefix");
        line(&mut p, ":srv 001 bot :Welcome");
        line(&mut p, ":bot!b@h JOIN #ops");
        let fx = line(&mut p, ":alice!a@h PRIVMSG #ops :!st2 run date");
        assert_eq!(fx.messages().len(), 1);
        assert_eq!(p.resume_state(), None);
    }

    /// The frames `line` is written as, and the outcome the queue waits for.
    fn sent(p: &mut Irc, text: &str) -> (Vec<String>, LocalBoxFuture<'static, Outcome>) {
        let line = Line {
            target: "#ops".into(),
            text: text.into(),
            key: None,
            inherited: false,
        };
        match p.send(&line) {
            Sending::WriteConfirmed(frames, confirmed) => (frames, confirmed),
            _ => panic!("a line is written, then confirmed"),
        }
    }

    #[test]
    fn a_line_counts_as_sent_at_the_pong_after_it_and_is_sent_again_if_the_link_ends_first() {
        use futures_util::FutureExt;
        let mut p = platform();
        line(&mut p, ":srv 001 bot :Welcome");
        let (frames, mut first) = sent(&mut p, "one");
        assert_eq!(frames, ["PRIVMSG #ops one", "PING stormbridge-c1"]);
        let (frames, second) = sent(&mut p, "two");
        assert_eq!(frames, ["PRIVMSG #ops two"], "one PING out at a time");
        assert!((&mut first).now_or_never().is_none());

        let fx = line(&mut p, ":srv PONG srv :stormbridge");
        assert!(
            fx.written().is_empty(),
            "the keepalive's answer confirms nothing"
        );
        assert!((&mut first).now_or_never().is_none());
        let fx = line(&mut p, ":srv PONG srv :stormbridge-c1");
        assert!(matches!(
            first.now_or_never(),
            Some(Outcome::Sent { pause: None })
        ));
        assert_eq!(
            fx.written(),
            ["PING stormbridge-c2"],
            "for the line written since"
        );

        // A server that answers with the token alone (`PONG :<token>`) confirms too.
        let fx = line(&mut p, "PONG :stormbridge-c2");
        assert!(fx.written().is_empty(), "nothing written since");
        assert!(matches!(
            second.now_or_never(),
            Some(Outcome::Sent { pause: None })
        ));

        let (_, third) = sent(&mut p, "three");
        p.closed();
        assert!(matches!(third.now_or_never(), Some(Outcome::Retry(_))));
    }

    #[test]
    fn with_confirm_lines_off_a_line_counts_as_sent_once_written() {
        let mut p = platform();
        p.settings.confirm_lines = false;
        line(&mut p, ":srv 001 bot :Welcome");
        let line = Line {
            target: "#ops".into(),
            text: "one".into(),
            key: None,
            inherited: false,
        };
        assert!(matches!(p.send(&line), Sending::Write(frames) if frames == ["PRIVMSG #ops one"]));
    }

    #[test]
    fn a_server_that_talks_but_leaves_the_confirming_ping_unanswered_ends_the_link() {
        let mut p = platform();
        line(&mut p, ":srv 001 bot :Welcome");
        let _waiting = sent(&mut p, "one");
        assert!(line(&mut p, ":op!o@h PRIVMSG #ops :hi").ending().is_none());
        p.confirming
            .age(p.keepalive_timeout() + Duration::from_secs(1));
        assert!(line(&mut p, ":op!o@h PRIVMSG #ops :hi").ending().is_some());
    }

    #[test]
    fn a_refused_channel_does_not_keep_the_link_down() {
        let mut p = platform();
        line(&mut p, ":srv 001 bot :Welcome");
        let fx = line(&mut p, ":srv 474 bot #ops :Cannot join channel (+b)");
        assert!(fx.is_ready());
    }

    #[test]
    fn a_kick_rejoins_later_and_error_fails_the_link() {
        let mut p = platform();
        line(&mut p, ":srv 001 bot :Welcome");
        let fx = line(&mut p, ":op!o@h KICK #ops bot :out");
        assert!(
            matches!(fx.timers(), [(d, Event::Rejoin(c))] if *d == REJOIN_AFTER && c == "#ops")
        );
        let fx = line(&mut p, "ERROR :Closing link");
        assert!(fx.ending().is_some());
    }
}
