//! Rocket.Chat as a [`Platform`]: the realtime API (DDP over a websocket) as a state
//! machine — `connect`, `login` with the personal access token, the `__my_messages__`
//! subscription, pings both ways — and messages sent over REST.

use crate::backends::connection::position::{catch_up_floor, now_ms};
use std::{collections::HashMap, rc::Rc, sync::Arc, time::Duration};

use awc::ws::{Frame, Message};
use futures_util::future::LocalBoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{
    api::{self, Api, Me, Outgoing},
    config::{RocketChatSettings, DEFAULT_MAX_MESSAGE_CHARS},
    resume::{self, Position, RoomInfo},
    wire::{self, Ddp, Mapping},
};
use crate::{
    actors::messages::{Deliver, Receipt},
    backends::connection::{
        outbox::Dest,
        websocket::{self, Incoming},
        ConnectionError, Effects, Link, Platform, Seen, Sending,
    },
};

/// Largest websocket frame accepted (a message of several thousand characters, JSON-escaped,
/// with its metadata, fits many times over).
const MAX_FRAME: usize = 1 << 20;

/// Message ids remembered to tell a new message from an update of one already handled: the
/// stream sends a message again when its thread gets a reply, a reaction or a link preview.
const SEEN_MESSAGES: usize = 4096;

/// Live messages held back while a catch-up runs (they go after what it finds); beyond that
/// the oldest are dropped, and logged.
const HELD_MESSAGES: usize = 1024;

/// Why a connection could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RocketChatSetupError {
    /// `server_url` is not an http(s) URL.
    #[error("rocketchat server_url `{0}` must be an http:// or https:// URL")]
    Url(String),
    /// No token (validation normally catches this).
    #[error("rocketchat connection has no token")]
    NoToken,
    /// TLS settings failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// `https://host/x` → (`https://host/x/api/v1`, `wss://host/x/websocket`). `None` for
/// anything but an http(s) URL with a host and no query, fragment or credentials.
pub fn endpoints(base: &str) -> Option<(String, String)> {
    let url = url::Url::parse(base.trim()).ok()?;
    let ws_scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        _ => return None,
    };
    url.host_str()?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let base = url.as_str().trim_end_matches('/');
    let rest = base.split_once("://").map(|(_, r)| r)?;
    Some((
        format!("{base}/api/v1"),
        format!("{ws_scheme}://{rest}/websocket"),
    ))
}

/// The platform's own happenings.
pub enum Event {
    /// The direct room with a user, opened (or found) while sending.
    DirectRoom { user: String, room: String },
    /// Catch-up `round` fetched what was posted since the last holder's position (as
    /// `stream-room-messages` events' fields, oldest first, with their `ts`).
    CaughtUp {
        round: u64,
        missed: Result<Vec<(u64, Value)>, ConnectionError>,
    },
}

/// What connecting learnt.
pub struct Hello {
    me: Me,
}

/// Where the realtime handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `connect` sent, waiting for `connected`.
    Connecting,
    /// `login` sent, waiting for its `result`.
    LoggingIn,
    /// `sub` sent, waiting for `ready`.
    Subscribing,
    /// Subscribed: messages arrive.
    Up,
}

/// A Rocket.Chat connection's protocol state.
pub struct RocketChat {
    name: String,
    settings: RocketChatSettings,
    token: SecretString,
    /// The headers the API calls send, made once rather than for every message.
    user_header: Rc<str>,
    token_header: Rc<str>,
    api_base: Rc<str>,
    ws_url: String,
    tls: Arc<rustls::ClientConfig>,
    http: Option<awc::Client>,
    me: Option<Me>,
    stage: Stage,
    /// DDP ids handed out on this link.
    calls: u64,
    login_id: String,
    sub_id: String,
    /// Direct rooms by user id.
    dm_rooms: HashMap<String, String>,
    seen: Seen,
    /// Since when the links listened, and per room the newest message handed on: what the
    /// next link (this process's, or the next holder's) catches up from.
    position: Position,
    /// The catch-up under way (its round), if one is: live messages are held meanwhile.
    catching_up: Option<u64>,
    rounds: u64,
    /// Live messages held during a catch-up, with their `ts`.
    held: std::collections::VecDeque<(Option<u64>, crate::domain::message::InboundMessage)>,
}

impl RocketChat {
    /// The platform for connection `name`.
    pub fn new(name: String, settings: RocketChatSettings) -> Result<Self, RocketChatSetupError> {
        let (api_base, ws_url) = endpoints(&settings.server_url)
            .ok_or_else(|| RocketChatSetupError::Url(settings.server_url.clone()))?;
        let token = settings
            .token
            .clone()
            .ok_or(RocketChatSetupError::NoToken)?;
        let base_tls =
            crate::tls::client_config(settings.verify_cert, settings.tls_ca_file.as_deref())?;
        // Websockets need HTTP/1.1; never offer h2.
        let mut tls = (*base_tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            name,
            user_header: settings.user_id.trim().into(),
            token_header: token.expose_secret().into(),
            token,
            settings,
            api_base: api_base.into(),
            ws_url,
            tls: Arc::new(tls),
            http: None,
            me: None,
            stage: Stage::Connecting,
            calls: 0,
            login_id: String::new(),
            sub_id: String::new(),
            dm_rooms: HashMap::new(),
            seen: Seen::new(SEEN_MESSAGES),
            position: Position::default(),
            catching_up: None,
            rounds: 0,
            held: Default::default(),
        })
    }

    fn api(&mut self) -> Api {
        let client = crate::backends::rest::lazy_client(
            &mut self.http,
            &self.tls,
            crate::backends::rest::USER_AGENT,
        );
        Api {
            client,
            base: self.api_base.clone(),
            user_id: self.user_header.clone(),
            token: self.token_header.clone(),
        }
    }

    /// A DDP id for this link: `<what>-<n>`.
    fn next_id(&mut self, what: &str) -> String {
        self.calls += 1;
        format!("{what}-{}", self.calls)
    }

    fn write(fx: &mut Effects<Self>, text: String) {
        fx.write(Message::Text(text.into()));
    }

    /// The text of a delivery as messages, split within the server's limit.
    fn messages(
        &self,
        dest: Dest,
        tmid: Option<String>,
        text: &str,
        mut attachments: Option<Value>,
        receipt: Option<&Receipt>,
    ) -> Vec<Outgoing> {
        let limit = match self.settings.max_message_length {
            0 => DEFAULT_MAX_MESSAGE_CHARS,
            n => n,
        };
        let mut out = Vec::new();
        for part in wire::split(text, limit) {
            if part.trim().is_empty() && attachments.is_none() {
                continue;
            }
            out.push(Outgoing {
                dest: dest.clone(),
                tmid: tmid.clone(),
                text: part,
                attachments: attachments.take(),
                // A result's parts: ids every bridge process gives alike.
                key: receipt.map(|r| r.part_key(out.len())),
            });
        }
        out
    }

    fn ddp(&mut self, text: &str, fx: &mut Effects<Self>) {
        let Some(message) = wire::parse_frame(text) else {
            tracing::debug!(connection = %self.name, "ignored a websocket frame that is not DDP");
            return;
        };
        match message {
            Ddp::Connected { .. } if self.stage == Stage::Connecting => {
                self.login_id = self.next_id("login");
                let login = wire::login_resume(&self.login_id, self.token.expose_secret());
                Self::write(fx, login);
                self.stage = Stage::LoggingIn;
            }
            Ddp::Failed { version } => fx.halt(ConnectionError::Fatal(format!(
                "the server speaks no DDP version the bridge offers (1); it would speak {}",
                version.as_deref().unwrap_or("none")
            ))),
            Ddp::Ping { id } => Self::write(fx, wire::pong(id.as_deref())),
            Ddp::Result { id, error, result }
                if self.stage == Stage::LoggingIn && id == self.login_id =>
            {
                self.logged_in(error, &result, fx);
            }
            Ddp::Ready { subs }
                if self.stage == Stage::Subscribing && subs.contains(&self.sub_id) =>
            {
                self.stage = Stage::Up;
                fx.ready();
                if self.position.is_known() {
                    self.catch_up(fx);
                } else {
                    self.position.listening(now_ms());
                }
            }
            Ddp::NoSub { id, error } if !self.sub_id.is_empty() && id == self.sub_id => {
                let why = error.map_or_else(|| "no reason given".to_owned(), |e| e.describe());
                if self.stage == Stage::Subscribing {
                    // Nothing could ever be heard: stop rather than knock again.
                    fx.halt(ConnectionError::Fatal(format!(
                        "the subscription to the bot's messages was refused: {why}"
                    )));
                } else {
                    fx.fail(ConnectionError::Protocol(format!(
                        "the server ended the subscription to the bot's messages: {why}"
                    )));
                }
            }
            Ddp::Changed { collection, fields }
                if matches!(self.stage, Stage::Subscribing | Stage::Up) =>
            {
                self.changed(&collection, &fields, fx);
            }
            Ddp::Error { reason } => fx.fail(ConnectionError::Protocol(format!(
                "the server could not read a realtime message: {reason}"
            ))),
            Ddp::ServerId
            | Ddp::Pong
            | Ddp::Connected { .. }
            | Ddp::Result { .. }
            | Ddp::Ready { .. }
            | Ddp::NoSub { .. }
            | Ddp::Changed { .. }
            | Ddp::Other(_) => {}
        }
    }

    fn logged_in(&mut self, error: Option<wire::DdpError>, result: &Value, fx: &mut Effects<Self>) {
        match error {
            Some(e) if e.is_rate_limit() => fx.fail(ConnectionError::Protocol(format!(
                "the realtime login was refused for now: {}",
                e.describe()
            ))),
            Some(e) => fx.halt(ConnectionError::Unauthorized(format!(
                "the realtime login with the personal access token was refused: {}",
                e.describe()
            ))),
            None => {
                let id = result.get("id").and_then(Value::as_str);
                let me = self.me.as_ref().map(|m| m.id.as_str());
                if id.is_some() && id != me {
                    tracing::warn!(connection = %self.name, "the token logged in as another account than user_id; messages are sent as user_id");
                }
                self.sub_id = self.next_id("sub");
                Self::write(fx, wire::subscribe_my_messages(&self.sub_id));
                self.stage = Stage::Subscribing;
            }
        }
    }

    /// A message event's fields as a chat message (`None`: skipped, logged), with its `ts`.
    fn map(
        &self,
        collection: &str,
        fields: &Value,
    ) -> Option<(Option<u64>, crate::domain::message::InboundMessage)> {
        let me = self.me.as_ref()?;
        let mapping = Mapping {
            connection: &self.name,
            bot_id: &me.id,
            bot_username: &me.username,
            reply_in_thread: self.settings.reply_in_thread,
        };
        match wire::to_inbound(collection, fields, &mapping) {
            Ok(message) => {
                let ts = fields.pointer("/args/0/ts").and_then(resume::date_ms);
                Some((ts, message))
            }
            Err(skip) => {
                tracing::debug!(connection = %self.name, ?skip, "ignored a stream event");
                None
            }
        }
    }

    fn changed(&mut self, collection: &str, fields: &Value, fx: &mut Effects<Self>) {
        let Some((ts, message)) = self.map(collection, fields) else {
            return;
        };
        // Before `ready` too: a catch-up follows, and what it finds goes first.
        let held = self.catching_up.is_some()
            || (self.stage == Stage::Subscribing && self.position.is_known());
        if held {
            if self.held.len() >= HELD_MESSAGES {
                self.held.pop_front();
                tracing::warn!(connection = %self.name, "too many messages while catching up; the oldest held one was dropped");
            }
            self.held.push_back((ts, message));
            return;
        }
        self.hand_on(ts, message, fx);
    }

    /// Hands `message` on unless it was already, and moves the position to it.
    fn hand_on(
        &mut self,
        ts: Option<u64>,
        message: crate::domain::message::InboundMessage,
        fx: &mut Effects<Self>,
    ) {
        let id = message.message_id.clone().unwrap_or_default();
        if !self.seen.insert(&id) {
            tracing::debug!(connection = %self.name, "ignored an update of a message already handled");
            return;
        }
        if let Some(ts) = ts {
            self.position.note(&message.room.id, ts);
        }
        fx.inbound(message);
    }

    /// Asks the REST API what was posted since the position (the last link's, this
    /// process's or the last holder's); live messages are held until it answers.
    fn catch_up(&mut self, fx: &mut Effects<Self>) {
        self.rounds += 1;
        let round = self.rounds;
        self.catching_up = Some(round);
        let floor = catch_up_floor(now_ms(), self.settings.max_command_age_secs);
        let position = self.position.clone();
        let api = self.api();
        let name = self.name.clone();
        tracing::debug!(connection = %self.name, "fetching what was posted since the last link");
        fx.spawn(async move {
            let missed = fetch_missed(&api, &name, &position, floor).await;
            Event::CaughtUp { round, missed }
        });
    }

    fn caught_up(
        &mut self,
        round: u64,
        missed: Result<Vec<(u64, Value)>, ConnectionError>,
        fx: &mut Effects<Self>,
    ) {
        if self.catching_up != Some(round) {
            return;
        }
        self.catching_up = None;
        let held = std::mem::take(&mut self.held);
        match missed {
            Ok(missed) => {
                if !missed.is_empty() {
                    tracing::info!(connection = %self.name, messages = missed.len(), "caught up with what was posted while the connection was not listening");
                }
                for (ts, fields) in missed {
                    if let Some((_, message)) = self.map(wire::ROOM_MESSAGES, &fields) {
                        self.hand_on(Some(ts), message, fx);
                    }
                }
            }
            Err(error) if api::catch_up_retryable(&error) => {
                // The position has not moved: the next link's catch-up fetches the held
                // messages again.
                fx.fail(error);
                return;
            }
            Err(error) => {
                tracing::warn!(connection = %self.name, %error, "could not fetch what was posted while the connection was not listening; those messages are not run");
            }
        }
        for (ts, message) in held {
            self.hand_on(ts, message, fx);
        }
    }
}

/// What was posted from `position` on (never before `floor`), oldest first. A room that
/// cannot be read (left since `rooms.get` listed it) is skipped; anything worth another
/// try fails the whole catch-up, to be done again on the next link.
async fn fetch_missed(
    api: &Api,
    name: &str,
    position: &Position,
    floor: u64,
) -> Result<Vec<(u64, Value)>, ConnectionError> {
    let Some(oldest) = position.oldest(floor) else {
        return Ok(Vec::new());
    };
    let rooms: Vec<RoomInfo> = api
        .rooms_changed_since(&resume::from_on(oldest))
        .await?
        .iter()
        .filter_map(RoomInfo::of)
        .collect();
    let to_fetch = resume::rooms_to_fetch(position, &rooms, floor);
    let mut fetched = Vec::new();
    for (room, since) in &to_fetch {
        match api.messages_since(&room.id, &resume::from_on(*since)).await {
            Ok(messages) => fetched.extend(messages.into_iter().map(|m| (m, *since, room))),
            Err(error) if api::catch_up_retryable(&error) => return Err(error),
            Err(error) => {
                tracing::warn!(connection = %name, room = %room.id, %error, "could not fetch what was posted in a room while the connection was not listening; skipped");
            }
        }
    }
    Ok(resume::missed(fetched))
}

impl Platform for RocketChat {
    const KIND: &'static str = "rocketchat";
    type Frame = Frame;
    type Write = Message;
    type Item = Outgoing;
    type Event = Event;
    type Hello = Hello;

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let api = self.api();
        let ws_url = self.ws_url.clone();
        Box::pin(async move {
            // The credentials first: a refused token stops here, before any websocket.
            let me = api.me().await?;
            let socket = websocket::open(&api.client, &ws_url, MAX_FRAME).await?;
            Ok(Link {
                frames: socket.frames,
                sink: Some(socket.sink),
                hello: Hello { me },
            })
        })
    }

    fn opened(&mut self, hello: Hello, fx: &mut Effects<Self>) {
        tracing::debug!(connection = %self.name, bot = %hello.me.username, "rocketchat websocket open; connecting");
        self.me = Some(hello.me);
        self.stage = Stage::Connecting;
        self.calls = 0;
        self.login_id.clear();
        self.sub_id.clear();
        Self::write(fx, wire::connect());
    }

    fn frame(&mut self, frame: Frame, fx: &mut Effects<Self>) {
        match websocket::incoming(frame, fx) {
            Incoming::Text(text) => self.ddp(&text, fx),
            Incoming::Close(reason) => fx.fail(websocket::closed(reason)),
            Incoming::Nothing => {}
        }
    }

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::DirectRoom { user, room } => {
                self.dm_rooms.insert(user, room);
            }
            Event::CaughtUp { round, missed } => self.caught_up(round, missed, fx),
        }
    }

    fn closed(&mut self) {
        self.stage = Stage::Connecting;
        // The next link catches up from the position, which has not moved past what was
        // held: it fetches those again.
        self.catching_up = None;
        self.held.clear();
    }

    /// Since when the links listened and per room the `ts` of the newest message handed
    /// on: the next holder fetches what was posted from there on.
    fn resume_state(&self) -> Option<Value> {
        self.position.state()
    }

    fn resume_from(&mut self, state: Value) {
        self.position.resume_from(&state);
    }

    /// The realtime `connect`, `login` and subscription finish within a ping interval, or
    /// the link is dropped and retried.
    fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.ping_interval_secs.max(1))
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.settings.ping_interval_secs.max(1)))
    }

    fn keepalive(&mut self, fx: &mut Effects<Self>) {
        let id = self.next_id("ping");
        Self::write(fx, wire::ping(&id));
    }

    fn render(&mut self, delivery: Deliver) -> Vec<Outgoing> {
        let attachments = wire::attachments_from_extra(delivery.extra.as_ref());
        let (dest, tmid) = Dest::of(delivery.target);
        self.messages(
            dest,
            tmid,
            &delivery.text,
            attachments,
            delivery.receipt.as_ref(),
        )
    }

    fn lane(&self, item: &Outgoing) -> String {
        item.dest.lane()
    }

    fn send(&mut self, item: &Outgoing) -> Sending<Self> {
        let cached_dm = match &item.dest {
            Dest::User(user) => self.dm_rooms.get(user).cloned(),
            Dest::Room(_) => None,
        };
        let api = self.api();
        let item = item.clone();
        Sending::Call(Box::pin(async move {
            let (opened, outcome) = api.send(&item, cached_dm).await;
            let event = match (item.dest, opened) {
                (Dest::User(user), Some(room)) => Some(Event::DirectRoom { user, room }),
                _ => None,
            };
            (outcome, event)
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        backends::connection::End,
        domain::message::{RoomKind, Target},
    };

    const BOT: &str = "b0tb0tb0tb0tb0tb0";

    #[test]
    fn endpoints_follow_the_scheme_and_path() {
        assert_eq!(
            endpoints("https://chat.example.com/"),
            Some((
                "https://chat.example.com/api/v1".into(),
                "wss://chat.example.com/websocket".into()
            ))
        );
        assert_eq!(
            endpoints("http://127.0.0.1:3000/chat"),
            Some((
                "http://127.0.0.1:3000/chat/api/v1".into(),
                "ws://127.0.0.1:3000/chat/websocket".into()
            ))
        );
        assert_eq!(endpoints("ftp://x"), None);
        assert_eq!(endpoints("chat.example.com"), None);
        assert_eq!(endpoints("https://bot:pw@chat.example.com"), None);
        assert_eq!(endpoints("https://chat.example.com/?x=1"), None);
    }

    fn settings() -> RocketChatSettings {
        serde_json::from_value(json!({
            "server_url": "http://127.0.0.1:3000",
            "user_id": BOT,
            "token": "pat-t0k3n",
            "ping_interval_secs": 30,
            "max_message_length": 100,
        }))
        .unwrap()
    }

    fn frame(p: &mut RocketChat, v: Value) -> Effects<RocketChat> {
        let mut fx = Effects::default();
        p.frame(Frame::Text(v.to_string().into()), &mut fx);
        fx
    }

    /// A platform whose link just opened.
    fn opened() -> (RocketChat, Effects<RocketChat>) {
        let mut p = RocketChat::new("rc".into(), settings()).unwrap();
        let mut fx = Effects::default();
        p.opened(
            Hello {
                me: Me {
                    id: BOT.into(),
                    username: "stormbot".into(),
                },
            },
            &mut fx,
        );
        (p, fx)
    }

    /// A platform through the whole handshake.
    fn up() -> RocketChat {
        let (mut p, _) = opened();
        frame(&mut p, json!({"msg": "connected", "session": "s1"}));
        let login = p.login_id.clone();
        frame(
            &mut p,
            json!({"msg": "result", "id": login, "result": {"id": BOT, "token": "x", "type": "resume"}}),
        );
        let sub = p.sub_id.clone();
        let fx = frame(&mut p, json!({"msg": "ready", "subs": [sub]}));
        assert!(fx.is_ready());
        p
    }

    #[test]
    fn connect_login_subscribe_then_ready() {
        let (mut p, fx) = opened();
        assert_eq!(
            fx.written_json(),
            [json!({"msg": "connect", "version": "1", "support": ["1"]})]
        );
        assert_eq!(
            p.handshake_timeout(),
            Duration::from_secs(30),
            "the handshake is due within a ping interval"
        );
        assert!(!fx.is_ready());

        let fx = frame(&mut p, json!({"server_id": "0"}));
        assert!(fx.written().is_empty() && fx.ending().is_none());

        let fx = frame(
            &mut p,
            json!({"msg": "connected", "session": "Jm4wdpDjzxNHvHtBs"}),
        );
        let sent = fx.written_json();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["msg"], "method");
        assert_eq!(sent[0]["method"], "login");
        assert_eq!(sent[0]["params"], json!([{"resume": "pat-t0k3n"}]));
        let login = sent[0]["id"].as_str().unwrap().to_owned();
        assert!(!fx.is_ready());

        // A result for another call is not the login's.
        let fx = frame(
            &mut p,
            json!({"msg": "result", "id": "other", "result": {}}),
        );
        assert!(fx.written().is_empty());

        let fx = frame(
            &mut p,
            json!({"msg": "result", "id": login, "result": {"id": BOT, "token": "x", "tokenExpires": {"$date": 1696417505309u64}, "type": "resume"}}),
        );
        let sent = fx.written_json();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["msg"], "sub");
        assert_eq!(sent[0]["name"], "stream-room-messages");
        assert_eq!(sent[0]["params"], json!(["__my_messages__", false]));
        let sub = sent[0]["id"].as_str().unwrap().to_owned();
        assert!(!fx.is_ready());

        let fx = frame(&mut p, json!({"msg": "ready", "subs": ["someone-else"]}));
        assert!(!fx.is_ready());
        let fx = frame(&mut p, json!({"msg": "ready", "subs": [sub]}));
        assert!(fx.is_ready());
        assert!(fx.ending().is_none());
    }

    #[test]
    fn the_servers_ping_is_answered_and_the_bridge_pings_on_the_keepalive() {
        let mut p = up();
        let fx = frame(&mut p, json!({"msg": "ping"}));
        assert_eq!(fx.written_json(), [json!({"msg": "pong"})]);
        let fx = frame(&mut p, json!({"msg": "ping", "id": "abc"}));
        assert_eq!(fx.written_json(), [json!({"msg": "pong", "id": "abc"})]);
        assert_eq!(p.keepalive_interval(), Some(Duration::from_secs(30)));
        let mut fx = Effects::default();
        p.keepalive(&mut fx);
        let sent = fx.written_json();
        assert_eq!(sent[0]["msg"], "ping");
        assert!(sent[0]["id"].is_string());
        // Before the handshake too: the server closes a socket that does not answer.
        let (mut p, _) = opened();
        let fx = frame(&mut p, json!({"msg": "ping"}));
        assert_eq!(fx.written_json(), [json!({"msg": "pong"})]);
        // A websocket ping is answered at that level.
        let mut fx = Effects::default();
        p.frame(Frame::Ping(bytes::Bytes::from_static(b"x")), &mut fx);
        assert!(matches!(fx.written(), [Message::Pong(b)] if &b[..] == b"x"));
    }

    #[test]
    fn a_refused_login_or_subscription_halts_and_a_busy_server_fails() {
        let (mut p, _) = opened();
        frame(&mut p, json!({"msg": "connected", "session": "s"}));
        let login = p.login_id.clone();
        let fx = frame(
            &mut p,
            json!({"msg": "result", "id": login, "error": {"isClientSafe": true, "error": 403, "reason": "You've been logged out by the server. Please log in again.", "message": "You've been logged out by the server. Please log in again. [403]", "errorType": "Meteor.Error"}}),
        );
        assert!(
            matches!(fx.ending(), Some(End::Halt(ConnectionError::Unauthorized(e))) if e.contains("logged out")),
            "{:?}",
            fx.ending()
        );
        assert!(!fx.is_ready());

        let (mut p, _) = opened();
        frame(&mut p, json!({"msg": "connected", "session": "s"}));
        let login = p.login_id.clone();
        let fx = frame(
            &mut p,
            json!({"msg": "result", "id": login, "error": {"error": "too-many-requests", "reason": "Error, too many requests. Please slow down. You must wait 10 seconds before trying again.", "details": {"timeToReset": 9000}}}),
        );
        assert!(
            matches!(fx.ending(), Some(End::Fail(ConnectionError::Protocol(_)))),
            "{:?}",
            fx.ending()
        );

        let (mut p, _) = opened();
        frame(&mut p, json!({"msg": "connected", "session": "s"}));
        let login = p.login_id.clone();
        frame(
            &mut p,
            json!({"msg": "result", "id": login, "result": {"id": BOT}}),
        );
        let sub = p.sub_id.clone();
        let fx = frame(
            &mut p,
            json!({"msg": "nosub", "id": sub, "error": {"isClientSafe": true, "error": "not-allowed", "reason": "Not allowed", "message": "Not allowed [not-allowed]", "errorType": "Meteor.Error"}}),
        );
        assert!(
            matches!(fx.ending(), Some(End::Halt(ConnectionError::Fatal(e))) if e.contains("Not allowed")),
            "{:?}",
            fx.ending()
        );

        // Once up, a subscription the server ends is a lost link, not a refusal.
        let mut p = up();
        let sub = p.sub_id.clone();
        let fx = frame(&mut p, json!({"msg": "nosub", "id": sub}));
        assert!(
            matches!(fx.ending(), Some(End::Fail(_))),
            "{:?}",
            fx.ending()
        );

        // A nosub for nothing the bridge asked for is no refusal.
        let (mut p, _) = opened();
        let fx = frame(&mut p, json!({"msg": "nosub", "id": ""}));
        assert!(fx.ending().is_none());

        let (mut p, _) = opened();
        let fx = frame(&mut p, json!({"msg": "failed", "version": "pre2"}));
        assert!(matches!(
            fx.ending(),
            Some(End::Halt(ConnectionError::Fatal(_)))
        ));
    }

    #[test]
    fn a_close_fails_the_link() {
        // (A handshake that stalls is the connection actor's deadline: `handshake_timeout`.)
        let mut p = up();
        let mut fx = Effects::default();
        p.frame(Frame::Close(None), &mut fx);
        assert!(matches!(
            fx.ending(),
            Some(End::Fail(ConnectionError::Closed(None)))
        ));
        // The next link starts the handshake afresh.
        p.closed();
        let mut fx = Effects::default();
        p.opened(
            Hello {
                me: Me {
                    id: BOT.into(),
                    username: "stormbot".into(),
                },
            },
            &mut fx,
        );
        assert_eq!(fx.written_json()[0]["msg"], "connect");
        let fx = frame(&mut p, json!({"msg": "connected", "session": "s2"}));
        assert_eq!(fx.written_json()[0]["method"], "login");
    }

    fn changed(message: Value, room_type: &str) -> Value {
        json!({
            "msg": "changed", "collection": "stream-room-messages", "id": "id",
            "fields": {"eventName": "__my_messages__", "args": [message, {"roomParticipant": true, "roomType": room_type, "roomName": "general"}]},
        })
    }

    #[test]
    fn messages_become_inbound_once_and_updates_are_not_commands_again() {
        let mut p = up();
        let message = json!({
            "_id": "m1", "rid": "GENERAL", "msg": "@stormbot st2 run date",
            "u": {"_id": "a11cea11cea11cea1", "username": "alice", "name": "Alice"},
            "ts": {"$date": 1}, "_updatedAt": {"$date": 1},
        });
        let fx = frame(&mut p, changed(message.clone(), "c"));
        let got = fx.messages();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].user.id, "a11cea11cea11cea1");
        assert_eq!(got[0].user.name, "alice");
        assert_eq!(got[0].room.id, "GENERAL");
        assert_eq!(got[0].room.kind, RoomKind::Group);
        assert_eq!(got[0].text, "st2 run date");
        assert!(got[0].mentioned);

        // The same message again (its thread got a reply): not a new command.
        let mut update = message;
        update["tcount"] = json!(1);
        let fx = frame(&mut p, changed(update, "c"));
        assert!(fx.messages().is_empty());

        // Before the subscription, nothing is heard.
        let (mut early, _) = opened();
        let fx = frame(
            &mut early,
            changed(
                json!({"_id": "m2", "rid": "GENERAL", "msg": "x", "u": {"_id": "a", "username": "a"}}),
                "c",
            ),
        );
        assert!(fx.messages().is_empty());
    }

    /// Takes `p` through a new link's handshake; the effects of its `ready`.
    fn handshake(p: &mut RocketChat) -> Effects<RocketChat> {
        p.closed();
        let mut fx = Effects::default();
        p.opened(
            Hello {
                me: Me {
                    id: BOT.into(),
                    username: "stormbot".into(),
                },
            },
            &mut fx,
        );
        frame(p, json!({"msg": "connected", "session": "s"}));
        let login = p.login_id.clone();
        frame(
            p,
            json!({"msg": "result", "id": login, "result": {"id": BOT}}),
        );
        let sub = p.sub_id.clone();
        frame(p, json!({"msg": "ready", "subs": [sub]}))
    }

    fn posted(id: &str, rid: &str, user: &str, text: &str, ts: u64) -> Value {
        json!({
            "_id": id, "rid": rid, "msg": text, "ts": {"$date": ts}, "_updatedAt": {"$date": ts},
            "u": {"_id": user, "username": user},
        })
    }

    /// What `chat.syncMessages` found, as the catch-up hands it over.
    fn missed(messages: &[(Value, &str)]) -> Vec<(u64, Value)> {
        messages
            .iter()
            .map(|(m, kind)| {
                let ts = m["ts"]["$date"].as_u64().unwrap();
                (
                    ts,
                    json!({"args": [m, {"roomParticipant": true, "roomType": kind}]}),
                )
            })
            .collect()
    }

    fn ids(fx: &Effects<RocketChat>) -> Vec<String> {
        fx.messages()
            .iter()
            .map(|m| m.message_id.clone().unwrap_or_default())
            .collect()
    }

    /// The rooms part of `p`'s resume state.
    fn rooms(p: &RocketChat) -> Value {
        p.resume_state().map_or(Value::Null, |s| s["rooms"].clone())
    }

    #[test]
    fn the_position_follows_what_is_handed_on_and_a_new_holder_catches_up_before_live_messages() {
        let fresh = RocketChat::new("rc".into(), settings()).unwrap();
        assert_eq!(
            fresh.resume_state(),
            None,
            "never listened: nothing to resume"
        );
        let before = now_ms();
        let mut p = up();
        // Listening since the first subscription, nothing handed on yet: a next holder
        // would fetch every room from then on.
        let since = p.resume_state().expect("a position")["listening_since"]
            .as_u64()
            .expect("since when it listened");
        assert!((before..=now_ms()).contains(&since), "{since}");
        assert_eq!(rooms(&p), json!({}));
        assert_eq!(p.catching_up, None, "a first link has nothing to catch up");
        frame(
            &mut p,
            changed(
                posted("m1", "GENERAL", "alice", "!st2 run date", 1_000),
                "c",
            ),
        );
        // The bot's own and other bots' messages do not move it.
        frame(
            &mut p,
            changed(posted("m2", "GENERAL", BOT, "done", 2_000), "c"),
        );
        assert_eq!(rooms(&p), json!({"GENERAL": 1_000}));
        let state = p.resume_state().unwrap();

        // Another process takes the connection over from that state.
        let mut next = RocketChat::new("rc".into(), settings()).unwrap();
        next.resume_from(state);
        assert_eq!(next.resume_state(), p.resume_state(), "kept until it moves");
        let fx = handshake(&mut next);
        assert!(fx.is_ready(), "replies need not wait for the catch-up");
        let round = next.catching_up.expect("a catch-up under way");
        // A live message while catching up waits for what was posted before it.
        let fx = frame(
            &mut next,
            changed(
                posted("m5", "GENERAL", "alice", "!st2 run live", 5_000),
                "c",
            ),
        );
        assert!(fx.messages().is_empty());
        let mut fx = Effects::default();
        next.event(
            Event::CaughtUp {
                round,
                missed: Ok(missed(&[
                    // The last one handed on comes again (points are inclusive): the
                    // shared store knows it was taken.
                    (
                        posted("m1", "GENERAL", "alice", "!st2 run date", 1_000),
                        "c",
                    ),
                    (posted("m3", "GENERAL", "alice", "!st2 run gap", 3_000), "c"),
                    (posted("m4", "GENERAL", BOT, "a reply", 3_500), "c"),
                    (
                        posted("m5", "GENERAL", "alice", "!st2 run live", 5_000),
                        "c",
                    ),
                ])),
            },
            &mut fx,
        );
        assert_eq!(
            ids(&fx),
            ["m1", "m3", "m5"],
            "in order, once each, the bot's own skipped"
        );
        assert_eq!(fx.messages()[1].text, "!st2 run gap");
        assert_eq!(rooms(&next), json!({"GENERAL": 5_000}));
        assert_eq!(next.catching_up, None);
        // Done: live messages flow again.
        let fx = frame(
            &mut next,
            changed(
                posted("m6", "GENERAL", "alice", "!st2 run after", 6_000),
                "c",
            ),
        );
        assert_eq!(ids(&fx), ["m6"]);
        assert_eq!(rooms(&next), json!({"GENERAL": 6_000}));

        // A lost link of its own is caught up the same way, from where it stood; what the
        // stream sends before `ready` waits for that catch-up too.
        next.closed();
        let mut fx = Effects::default();
        next.opened(
            Hello {
                me: Me {
                    id: BOT.into(),
                    username: "stormbot".into(),
                },
            },
            &mut fx,
        );
        frame(&mut next, json!({"msg": "connected", "session": "s"}));
        let login = next.login_id.clone();
        frame(
            &mut next,
            json!({"msg": "result", "id": login, "result": {"id": BOT}}),
        );
        let early = frame(
            &mut next,
            changed(
                posted("m8", "GENERAL", "alice", "!st2 run early", 8_000),
                "c",
            ),
        );
        assert!(early.messages().is_empty());
        let sub = next.sub_id.clone();
        frame(&mut next, json!({"msg": "ready", "subs": [sub]}));
        let again = next.catching_up.expect("caught up after a lost link");
        assert_ne!(again, round);
        let mut fx = Effects::default();
        next.event(
            Event::CaughtUp {
                round: again,
                missed: Ok(missed(&[
                    (
                        posted("m6", "GENERAL", "alice", "!st2 run after", 6_000),
                        "c",
                    ),
                    (
                        posted("m7", "GENERAL", "alice", "!st2 run down", 7_000),
                        "c",
                    ),
                ])),
            },
            &mut fx,
        );
        assert_eq!(
            ids(&fx),
            ["m7", "m8"],
            "m6 was handed on by this process already"
        );
    }

    #[test]
    fn a_catch_up_that_fails_for_now_is_done_again_on_the_next_link() {
        let state = json!({"listening_since": 500, "rooms": {"GENERAL": 1_000}});
        let mut p = RocketChat::new("rc".into(), settings()).unwrap();
        p.resume_from(state.clone());
        handshake(&mut p);
        let round = p.catching_up.unwrap();
        frame(
            &mut p,
            changed(
                posted("m5", "GENERAL", "alice", "!st2 run live", 5_000),
                "c",
            ),
        );
        let mut fx = Effects::default();
        let busy = ConnectionError::Http {
            request: "GET /api/v1/chat.syncMessages".into(),
            status: 429,
            code: None,
            message: None,
        };
        p.event(
            Event::CaughtUp {
                round,
                missed: Err(busy),
            },
            &mut fx,
        );
        assert!(
            matches!(fx.ending(), Some(End::Fail(_))),
            "{:?}",
            fx.ending()
        );
        assert!(fx.messages().is_empty(), "the next catch-up fetches it");
        assert_eq!(p.resume_state(), Some(state.clone()));
        // The answer of a link that is gone is not taken for the new link's.
        handshake(&mut p);
        let again = p.catching_up.expect("caught up again");
        assert_ne!(again, round);
        let mut fx = Effects::default();
        p.event(
            Event::CaughtUp {
                round,
                missed: Ok(Vec::new()),
            },
            &mut fx,
        );
        assert_eq!(p.catching_up, Some(again));

        // A refusal (a server without the endpoint) gives up and lets live messages through.
        frame(
            &mut p,
            changed(
                posted("m6", "GENERAL", "alice", "!st2 run live", 6_000),
                "c",
            ),
        );
        let mut fx = Effects::default();
        let refused = ConnectionError::Http {
            request: "GET /api/v1/rooms.get".into(),
            status: 404,
            code: None,
            message: None,
        };
        p.event(
            Event::CaughtUp {
                round: again,
                missed: Err(refused),
            },
            &mut fx,
        );
        assert!(fx.ending().is_none());
        assert_eq!(ids(&fx), ["m6"]);
        assert_eq!(p.catching_up, None);

        // A state that is no position is nothing to resume: the link listens from now on.
        let mut q = RocketChat::new("rc".into(), settings()).unwrap();
        q.resume_from(json!({"connection_id": "x"}));
        handshake(&mut q);
        assert_eq!(q.catching_up, None);
        assert_eq!(rooms(&q), json!({}));
    }

    #[test]
    fn retryable_catch_up_errors_are_the_transient_ones() {
        let http = |status| ConnectionError::Http {
            request: "GET /api/v1/rooms.get".into(),
            status,
            code: None,
            message: None,
        };
        for status in [408, 429, 500, 502, 503] {
            assert!(api::catch_up_retryable(&http(status)), "{status}");
        }
        for status in [400, 401, 403, 404] {
            assert!(!api::catch_up_retryable(&http(status)), "{status}");
        }
        assert!(!api::catch_up_retryable(&ConnectionError::Protocol(
            "bad JSON".into()
        )));
    }

    fn deliver(target: Target, text: &str) -> Deliver {
        Deliver {
            target,
            text: text.into(),
            extra: None,
            reply_to: None,
            layout: None,
            receipt: None,
        }
    }

    #[test]
    fn deliveries_split_and_keep_their_thread() {
        let (mut p, _) = opened();
        let long = (0..60)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let items = p.render(deliver(
            Target::Room {
                id: "GENERAL".into(),
                kind: RoomKind::Group,
                thread: Some("t1".into()),
            },
            &long,
        ));
        assert!(items.len() >= 3, "{items:?}");
        assert!(items.iter().all(|i| wire::js_length(&i.text) <= 100));
        assert!(items.iter().all(|i| i.tmid.as_deref() == Some("t1")));
        assert!(items.iter().all(|i| p.lane(i) == "room:GENERAL"));
        let items = p.render(deliver(Target::User { id: "u1".into() }, "psst"));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].dest, Dest::User("u1".into()));
        assert_eq!(items[0].tmid, None);
        assert!(p
            .render(deliver(Target::User { id: "u1".into() }, " \n"))
            .is_empty());
    }
}
