//! Mattermost as a [`Platform`]: the websocket protocol (authentication challenge, `seq`
//! numbers, resume by `connection_id`) as a state machine, posts over REST.

use std::{collections::HashMap, collections::HashSet, rc::Rc, sync::Arc, time::Duration};

use awc::ws::{Frame, Message};
use futures_util::future::LocalBoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{
    api::{Api, BotIdentity, Outgoing},
    config::{MattermostSettings, MAX_POST_CHARS},
    interactive::Interactions,
    wire::{self, Mapping, WsFrame},
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{
        outbox::Dest,
        owed::{Attempt, OwedPart, Unanswered},
        websocket::{self, Incoming},
        ConnectionError, Effects, Link, Platform, Sending,
    },
    domain::chunk::{split_message, LengthUnit},
};

/// Largest websocket frame accepted (a post of 16383 characters, JSON-escaped, fits).
const MAX_FRAME: usize = 1 << 20;

/// Why a connection could not be created.
#[derive(Debug, thiserror::Error)]
pub enum MattermostSetupError {
    /// `url` is not an http(s) URL.
    #[error("mattermost url `{0}` must be an http:// or https:// URL")]
    Url(String),
    /// No token (validation normally catches this).
    #[error("mattermost connection has no token")]
    NoToken,
    /// `actions_url` is not an http(s) URL.
    #[error("mattermost actions_url `{0}` must be an http:// or https:// URL (the bridge's HTTP server as Mattermost reaches it)")]
    ActionsUrl(String),
    /// TLS settings failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// `https://host/x` → (`https://host/x/api/v4`, `wss://host/x/api/v4/websocket`).
pub fn endpoints(base: &str) -> Option<(String, String)> {
    let url = url::Url::parse(base.trim()).ok()?;
    let ws_scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        _ => return None,
    };
    url.host_str()?;
    let base = url.as_str().trim_end_matches('/');
    let api = format!("{base}/api/v4");
    let rest = base.split_once("://").map(|(_, r)| r)?;
    Some((api, format!("{ws_scheme}://{rest}/api/v4/websocket")))
}

/// The platform's own happenings.
pub enum Event {
    /// Channels joined (their ids).
    Joined(Vec<String>),
    /// A post was sent: the direct channel with a user opened (or found) on the way (user,
    /// channel), and what the send learnt about a result part.
    Sent {
        dm: Option<(String, String)>,
        part: Option<Attempt>,
    },
}

/// What connecting learnt.
pub struct Hello {
    bot: BotIdentity,
    team_id: Option<String>,
}

/// A Mattermost connection's protocol state.
pub struct Mattermost {
    pub(super) name: String,
    pub(super) settings: MattermostSettings,
    token: SecretString,
    /// The token as the API calls send it, made once rather than for every post.
    bearer: Rc<str>,
    api_base: Rc<str>,
    ws_url: String,
    tls: Arc<rustls::ClientConfig>,
    http: Option<awc::Client>,
    pub(super) bot: Option<BotIdentity>,
    pub(super) team_id: Option<String>,
    authenticated: bool,
    auth_seq: u64,
    /// The server's id for our websocket connection (from `hello`), to resume it.
    connection_id: Option<String>,
    /// The `seq` the next server event must have.
    server_seq: u64,
    dm_channels: HashMap<String, String>,
    /// Ids of the configured channels, once resolved (to rejoin after a removal).
    joined: HashSet<String>,
    pub(super) interactive: Interactions,
    /// Result parts sent without an answer, looked for before they are sent again.
    unanswered: Unanswered,
}

impl Mattermost {
    /// The platform for connection `name`.
    pub fn new(name: String, settings: MattermostSettings) -> Result<Self, MattermostSetupError> {
        let (api_base, ws_url) = endpoints(&settings.url)
            .ok_or_else(|| MattermostSetupError::Url(settings.url.clone()))?;
        let token = settings
            .token
            .clone()
            .ok_or(MattermostSetupError::NoToken)?;
        if let Some(actions) = &settings.actions_url {
            let ok = url::Url::parse(actions.trim())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return Err(MattermostSetupError::ActionsUrl(actions.clone()));
            }
        }
        let base_tls = crate::tls::client_config(settings.verify_cert, None)?;
        // Websockets need HTTP/1.1; never offer h2.
        let mut tls = (*base_tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            name,
            settings,
            bearer: token.expose_secret().into(),
            token,
            api_base: api_base.into(),
            ws_url,
            tls: Arc::new(tls),
            http: None,
            bot: None,
            team_id: None,
            authenticated: false,
            auth_seq: 0,
            connection_id: None,
            server_seq: 0,
            dm_channels: HashMap::new(),
            joined: HashSet::new(),
            interactive: Interactions::default(),
            unanswered: Unanswered::default(),
        })
    }

    pub(super) fn api(&mut self) -> Api {
        let client = crate::backends::rest::lazy_client(
            &mut self.http,
            &self.tls,
            crate::backends::rest::USER_AGENT,
        );
        Api {
            client,
            base: self.api_base.clone(),
            token: self.bearer.clone(),
        }
    }

    /// The text of a message as posts, split at the server's limit (or the configured one).
    pub(super) fn posts(
        &self,
        dest: Dest,
        root_id: Option<String>,
        text: &str,
        mut props: Option<Value>,
    ) -> Vec<Outgoing> {
        let limit = match self.settings.max_message_length {
            0 => MAX_POST_CHARS,
            n => n.min(MAX_POST_CHARS),
        };
        let mut posts = Vec::new();
        for part in split_message(text, limit, LengthUnit::Chars) {
            if part.trim().is_empty() && props.is_none() {
                continue;
            }
            posts.push(Outgoing {
                dest: dest.clone(),
                root_id: root_id.clone(),
                message: part,
                props: props.take(),
                posted: None,
                part: None,
            });
        }
        posts
    }

    fn text_frame(&mut self, text: &str, fx: &mut Effects<Self>) {
        match wire::parse_frame(text) {
            Some(WsFrame::Reply {
                status,
                seq_reply,
                error,
            }) if seq_reply == self.auth_seq && !self.authenticated => {
                if status == "OK" {
                    self.authenticated = true;
                    fx.ready();
                    self.join(self.settings.channels.clone(), fx);
                } else {
                    let detail = error
                        .as_ref()
                        .and_then(|e| e.get("id").or_else(|| e.get("message")))
                        .and_then(Value::as_str)
                        .unwrap_or("no detail")
                        .to_owned();
                    // The token passed `GET /users/me` a moment ago: try again.
                    fx.fail(ConnectionError::Protocol(format!(
                        "websocket authentication refused ({detail})"
                    )));
                }
            }
            Some(WsFrame::Reply { .. }) => {}
            Some(WsFrame::Event {
                event,
                seq,
                data,
                broadcast,
            }) => {
                if event == "hello" {
                    let id = data
                        .get("connection_id")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty());
                    if id.is_none() || id != self.connection_id.as_deref() {
                        if self.connection_id.is_some() {
                            tracing::info!(connection = %self.name, "mattermost started a new websocket connection; events sent while disconnected were not replayed");
                        }
                        self.server_seq = 0;
                        self.connection_id = id.map(str::to_owned);
                    }
                }
                let gap = match seq {
                    Some(seq) if seq != self.server_seq => Some((self.server_seq, seq)),
                    _ => None,
                };
                if let Some(seq) = seq {
                    self.server_seq = seq + 1;
                }
                match event.as_str() {
                    "posted" if self.authenticated => self.posted(&data, fx),
                    "user_removed" if self.authenticated => {
                        let bot_id = self.bot.as_ref().map(|b| b.id.clone()).unwrap_or_default();
                        if let Some(channel) = wire::removed_from(&data, &broadcast, &bot_id) {
                            if self.joined.contains(&channel) {
                                tracing::info!(connection = %self.name, channel = %channel, "removed from a configured channel; rejoining");
                                self.join(vec![channel], fx);
                            }
                        }
                    }
                    _ => {}
                }
                if let Some((expected, got)) = gap {
                    // Events in between were lost; a fresh connection is the only resync.
                    self.connection_id = None;
                    self.server_seq = 0;
                    fx.fail(ConnectionError::Protocol(format!(
                        "missed websocket events (expected seq {expected}, got {got})"
                    )));
                }
            }
            None => {
                tracing::debug!(connection = %self.name, "ignored an unrecognised websocket frame");
            }
        }
    }

    fn posted(&mut self, data: &Value, fx: &mut Effects<Self>) {
        let Some(bot) = self.bot.as_ref() else {
            return;
        };
        let mapping = Mapping {
            connection: &self.name,
            bot_id: &bot.id,
            bot_username: &bot.username,
            team_id: self.team_id.as_deref(),
            channels: &self.settings.channels,
            reply_in_thread: self.settings.reply_in_thread,
        };
        match wire::posted_to_inbound(data, &mapping) {
            Ok(msg) => fx.inbound(msg),
            Err(skip) => tracing::debug!(connection = %self.name, ?skip, "ignored a post"),
        }
    }

    /// Joins the given channels (ids or names; names need `team`) so their posts arrive.
    fn join(&mut self, channels: Vec<String>, fx: &mut Effects<Self>) {
        let Some(bot) = self.bot.clone() else {
            return;
        };
        if channels.is_empty() {
            return;
        }
        let api = self.api();
        let team_id = self.team_id.clone();
        let name = self.name.clone();
        fx.spawn(async move {
            let mut joined = Vec::new();
            for entry in channels {
                match api.join(&bot.id, team_id.as_deref(), &entry).await {
                    Ok(id) => {
                        tracing::debug!(connection = %name, channel = %entry, "joined channel");
                        joined.push(id);
                    }
                    Err(e) => {
                        tracing::warn!(connection = %name, channel = %entry, error = %e, "cannot join channel");
                    }
                }
            }
            Event::Joined(joined)
        });
    }
}

impl Platform for Mattermost {
    const KIND: &'static str = "mattermost";
    type Frame = Frame;
    type Write = Message;
    type Item = Outgoing;
    type Event = Event;
    type Hello = Hello;

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let api = self.api();
        // Reliable websockets: the server replays what we missed if it still can.
        let ws_url = format!(
            "{}?connection_id={}&sequence_number={}",
            self.ws_url,
            encode(self.connection_id.as_deref().unwrap_or_default()),
            self.server_seq
        );
        let team = self
            .settings
            .team
            .clone()
            .filter(|_| self.team_id.is_none());
        Box::pin(async move {
            let bot = api.me().await?;
            let team_id = match team {
                Some(team) => Some(api.team_id(&team).await?),
                None => None,
            };
            let socket = websocket::open(&api.client, &ws_url, MAX_FRAME).await?;
            Ok(Link {
                frames: socket.frames,
                sink: Some(socket.sink),
                hello: Hello { bot, team_id },
            })
        })
    }

    fn opened(&mut self, hello: Hello, fx: &mut Effects<Self>) {
        tracing::debug!(connection = %self.name, bot = %hello.bot.username, "mattermost websocket open; authenticating");
        self.bot = Some(hello.bot);
        if hello.team_id.is_some() {
            self.team_id = hello.team_id;
        }
        // Action sequence numbers start at 1 on every connection.
        self.auth_seq = 1;
        let challenge = wire::auth_challenge(self.auth_seq, self.token.expose_secret());
        fx.write(Message::Text(challenge.into()));
    }

    fn frame(&mut self, frame: Frame, fx: &mut Effects<Self>) {
        match websocket::incoming(frame, fx) {
            Incoming::Text(text) => self.text_frame(&text, fx),
            Incoming::Close(reason) => fx.fail(websocket::closed(reason)),
            Incoming::Nothing => {}
        }
    }

    fn event(&mut self, event: Event, _fx: &mut Effects<Self>) {
        match event {
            Event::Joined(ids) => self.joined.extend(ids),
            Event::Sent { dm, part } => {
                if let Some((user, channel)) = dm {
                    self.dm_channels.insert(user, channel);
                }
                if let Some(attempt) = part {
                    self.unanswered.learn(attempt);
                }
            }
        }
    }

    /// The authentication challenge is answered within a ping interval, or the link is
    /// dropped and retried.
    fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.ping_interval_secs.max(1))
    }

    fn closed(&mut self) {
        self.authenticated = false;
    }

    /// The websocket's connection id and the next sequence number: another bridge process
    /// that resumes with them gets the events that came meanwhile (the server keeps them in
    /// its dead queue for a while).
    fn resume_state(&self) -> Option<Value> {
        let id = self.connection_id.as_ref()?;
        Some(serde_json::json!({"connection_id": id, "sequence_number": self.server_seq}))
    }

    fn resume_from(&mut self, state: Value) {
        let id = state.get("connection_id").and_then(Value::as_str);
        let seq = state.get("sequence_number").and_then(Value::as_u64);
        if let (Some(id), Some(seq)) = (id, seq) {
            self.connection_id = Some(id.to_owned());
            self.server_seq = seq;
        }
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.settings.ping_interval_secs.max(1)))
    }

    fn keepalive(&mut self, fx: &mut Effects<Self>) {
        fx.write(Message::Ping(bytes::Bytes::new()));
    }

    fn render(&mut self, delivery: Deliver) -> Vec<Outgoing> {
        let props = wire::props_from_extra(delivery.extra.as_ref());
        let (dest, root_id) = Dest::of(delivery.target);
        let receipt = delivery.receipt.as_ref();
        self.posts(dest, root_id, &delivery.text, props)
            .into_iter()
            .enumerate()
            .map(|(n, post)| post.owed(OwedPart::of(receipt, n)))
            .collect()
    }

    fn lane(&self, item: &Outgoing) -> String {
        item.dest.lane()
    }

    fn send(&mut self, item: &Outgoing) -> Sending<Self> {
        let Some(bot) = self.bot.clone() else {
            return Sending::NotNow;
        };
        let cached_dm = match &item.dest {
            Dest::User(user) => self.dm_channels.get(user).cloned(),
            Dest::Room(_) => None,
        };
        let api = self.api();
        let look_from = item
            .part
            .as_ref()
            .and_then(|p| self.unanswered.look_from(p));
        let item = item.clone();
        Sending::Call(Box::pin(async move {
            let started = chrono::Utc::now();
            let (dm, outcome) = api.send_post(&bot.id, &item, cached_dm, look_from).await;
            let dm = match (item.dest, dm) {
                (Dest::User(user), Some(channel)) => Some((user, channel)),
                _ => None,
            };
            let part = Attempt::after(item.part.as_ref(), started, &outcome);
            let event = (dm.is_some() || part.is_some()).then_some(Event::Sent { dm, part });
            (outcome, event)
        }))
    }
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_scheme_and_path() {
        assert_eq!(
            endpoints("https://mm.example.com/"),
            Some((
                "https://mm.example.com/api/v4".into(),
                "wss://mm.example.com/api/v4/websocket".into()
            ))
        );
        assert_eq!(
            endpoints("http://127.0.0.1:8065/chat"),
            Some((
                "http://127.0.0.1:8065/chat/api/v4".into(),
                "ws://127.0.0.1:8065/chat/api/v4/websocket".into()
            ))
        );
        assert_eq!(endpoints("ftp://x"), None);
        assert_eq!(endpoints("not a url"), None);
    }

    fn platform() -> Mattermost {
        let settings: MattermostSettings = serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:8065",
            "token": "t0k3n",
            "ping_interval_secs": 30,
        }))
        .unwrap();
        let mut p = Mattermost::new("mm".into(), settings).unwrap();
        let mut fx = Effects::default();
        p.opened(
            Hello {
                bot: BotIdentity {
                    id: "bot1".into(),
                    username: "stormbridge".into(),
                },
                team_id: None,
            },
            &mut fx,
        );
        p
    }

    fn text(p: &mut Mattermost, json: &str) -> Effects<Mattermost> {
        let mut fx = Effects::default();
        p.frame(Frame::Text(json.to_owned().into()), &mut fx);
        fx
    }

    #[test]
    fn the_challenge_opens_the_link_and_a_refusal_fails_it() {
        let mut p = platform();
        let fx = text(&mut p, r#"{"status": "OK", "seq_reply": 1}"#);
        assert!(fx.is_ready());
        let mut p = platform();
        let fx = text(
            &mut p,
            r#"{"status": "FAIL", "seq_reply": 1, "error": {"id": "api.web_socket_router.not_authenticated.app_error"}}"#,
        );
        assert!(!fx.is_ready());
        assert!(matches!(
            fx.ending(),
            Some(crate::backends::connection::End::Fail(
                ConnectionError::Protocol(_)
            ))
        ));
    }

    #[test]
    fn a_gap_in_seq_starts_afresh_and_hello_resets_the_count() {
        let mut p = platform();
        text(&mut p, r#"{"status": "OK", "seq_reply": 1}"#);
        let fx = text(
            &mut p,
            r#"{"event": "hello", "seq": 0, "data": {"connection_id": "c1"}, "broadcast": {}}"#,
        );
        assert!(fx.ending().is_none());
        assert_eq!(p.connection_id.as_deref(), Some("c1"));
        let fx = text(
            &mut p,
            r#"{"event": "typing", "seq": 1, "data": {}, "broadcast": {}}"#,
        );
        assert!(fx.ending().is_none());
        let fx = text(
            &mut p,
            r#"{"event": "typing", "seq": 3, "data": {}, "broadcast": {}}"#,
        );
        assert!(matches!(
            fx.ending(),
            Some(crate::backends::connection::End::Fail(
                ConnectionError::Protocol(_)
            ))
        ));
        assert_eq!(p.connection_id, None, "the next connection does not resume");
    }

    #[test]
    fn another_process_resumes_where_the_link_stood() {
        let mut p = platform();
        assert_eq!(p.resume_state(), None, "nothing to resume before a hello");
        text(
            &mut p,
            r#"{"event": "hello", "seq": 0, "data": {"connection_id": "c1"}, "broadcast": {}}"#,
        );
        text(
            &mut p,
            r#"{"event": "typing", "seq": 1, "data": {}, "broadcast": {}}"#,
        );
        let state = p.resume_state().expect("a link to resume");
        let mut next = platform();
        next.resume_from(state);
        assert_eq!(next.connection_id.as_deref(), Some("c1"));
        assert_eq!(next.server_seq, 2, "the next event it expects");
        // A state from elsewhere that is not one changes nothing.
        next.resume_from(serde_json::json!({"connection_id": 7}));
        assert_eq!(next.connection_id.as_deref(), Some("c1"));
    }

    #[test]
    fn pings_are_answered_and_a_close_fails_the_link() {
        let mut p = platform();
        let mut fx = Effects::default();
        p.frame(Frame::Ping(bytes::Bytes::from_static(b"x")), &mut fx);
        assert!(matches!(fx.written(), [Message::Pong(b)] if &b[..] == b"x"));
        let mut fx = Effects::default();
        p.frame(Frame::Close(None), &mut fx);
        assert!(matches!(
            fx.ending(),
            Some(crate::backends::connection::End::Fail(
                ConnectionError::Closed(None)
            ))
        ));
    }
}
