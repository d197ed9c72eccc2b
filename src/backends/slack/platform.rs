//! Slack as a [`Platform`]: Socket Mode envelopes (hello, acknowledgements, `disconnect`,
//! events, interactivity) as a state machine over the websocket; in Events API mode the
//! link is only the login, and events arrive as signed requests on its HTTP route ([`WebhookRequest`]).
//! Posts go out over the Web API.

use std::{collections::HashMap, sync::Arc, time::Duration};

use awc::ws::{Frame, Message};
use futures_util::{future::LocalBoxFuture, StreamExt};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{
    api::{self, Api, Dest, Outgoing},
    interactive::Interactions,
    normalise_text, render, signature, strip_mention,
    wire::{ApiEnvelope, AuthTest, ConnectionsOpen, ConversationsInfo, EventCallback, SocketFrame},
    SlackMode, SlackSettings, WhisperMode,
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{
        owed::{Attempt, OwedPart, Unanswered},
        websocket::{self, Incoming},
        ConnectionError, Effects, Handles, Link, Platform, Seen, Sending,
    },
    backends::webhook::{WebhookReply, WebhookRequest},
    domain::message::{ChatUser, InboundMessage, Room, RoomKind, Target},
};

/// Remembered event ids and message timestamps, to drop Slack's retries and the
/// `message` + `app_mention` pair one mention produces.
const SEEN_CAPACITY: usize = 512;

/// Largest Socket Mode frame accepted.
const MAX_FRAME: usize = 4 << 20;

/// The platform's own happenings.
pub enum Event {
    /// A message waited for its channel's name (`conversations.info`).
    Named {
        message: Box<InboundMessage>,
        name: Option<String>,
    },
    /// A post was sent: the direct channel it opened on the way (user, channel), and what
    /// the send learnt about a result part.
    Sent {
        dm: Option<(String, String)>,
        part: Option<Attempt>,
    },
    /// `chat.update` of an answered button message ended (`failed`: why not).
    Updated {
        failed: Option<String>,
        outcome: Box<crate::backends::buttons::ButtonOutcome>,
    },
}

/// What connecting learnt: the bot's identity, when it was asked (once per process).
pub struct Hello {
    auth: Option<AuthTest>,
}

/// A Slack workspace connection's state.
pub struct Slack {
    pub(super) name: String,
    pub(super) settings: SlackSettings,
    tls: Arc<rustls::ClientConfig>,
    http: Option<awc::Client>,
    identity: Option<AuthTest>,
    dm_channels: HashMap<String, String>,
    pub(super) room_names: HashMap<String, String>,
    /// The group channel each user last spoke to the bot in (for ephemeral whispers).
    last_room: HashMap<String, String>,
    seen: Seen,
    pub(super) interactive: Interactions,
    /// Result parts sent without an answer, looked for before they are sent again.
    unanswered: Unanswered,
}

impl Slack {
    /// The platform for connection `name`.
    pub fn new(name: String, settings: SlackSettings, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            name,
            settings,
            tls,
            http: None,
            identity: None,
            dm_channels: HashMap::new(),
            room_names: HashMap::new(),
            last_room: HashMap::new(),
            seen: Seen::new(SEEN_CAPACITY),
            interactive: Interactions::default(),
            unanswered: Unanswered::default(),
        }
    }

    pub(super) fn api(&mut self) -> Api {
        let client = crate::backends::rest::lazy_client(
            &mut self.http,
            &self.tls,
            crate::backends::rest::USER_AGENT,
        );
        Api {
            client,
            base: self.settings.api_url.clone(),
        }
    }

    /// True the first time `key` is seen (among the last [`SEEN_CAPACITY`]).
    pub(super) fn first_sighting(&mut self, key: String) -> bool {
        self.seen.insert(&key)
    }

    fn ack(envelope_id: &str, fx: &mut Effects<Self>) {
        let ack = json!({"envelope_id": envelope_id}).to_string();
        fx.write(Message::Text(ack.into()));
    }

    fn socket_frame(&mut self, frame: SocketFrame, fx: &mut Effects<Self>) {
        match frame {
            SocketFrame::Hello { num_connections } => {
                tracing::info!(connection = %self.name, ?num_connections, "Slack socket ready");
                fx.ready();
            }
            SocketFrame::Disconnect { reason } => {
                // The next socket opens first; this one works until then.
                fx.renew(format!("Slack asked to reconnect ({reason})"));
            }
            SocketFrame::EventsApi {
                envelope_id,
                payload,
            } => {
                tracing::debug!(connection = %self.name, envelope_id = %envelope_id, "Slack event received");
                Self::ack(&envelope_id, fx);
                self.event_callback(payload, fx);
            }
            SocketFrame::SlashCommands { envelope_id } => Self::ack(&envelope_id, fx),
            SocketFrame::Interactive {
                envelope_id,
                payload,
            } => {
                // Acknowledged first, like every envelope (Slack wants it within 3 s).
                Self::ack(&envelope_id, fx);
                self.on_interactive(payload, fx);
            }
            SocketFrame::Other => {}
        }
    }

    fn event_callback(&mut self, payload: Value, fx: &mut Effects<Self>) {
        fx.activity();
        if payload.get("type").and_then(Value::as_str) != Some("event_callback") {
            return;
        }
        let callback: EventCallback = match serde_json::from_value(payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(connection = %self.name, error = %e, "Slack event skipped");
                return;
            }
        };
        if let Some(id) = &callback.event_id {
            if !self.first_sighting(format!("event:{id}")) {
                return;
            }
        }
        let event = callback.event;
        tracing::debug!(connection = %self.name, kind = %event.kind, subtype = ?event.subtype, "Slack event");
        match event.kind.as_str() {
            "message" | "app_mention" => {
                let team = callback.team_id.or_else(|| event.team.clone());
                self.message(event, team, fx)
            }
            "channel_left" | "group_left" => {
                if let Some(channel) = event.channel.filter(|c| self.settings.channels.contains(c))
                {
                    tracing::warn!(connection = %self.name, channel = %channel, "removed from a configured channel; rejoining");
                    let api = self.api();
                    let bot = self.settings.bot_token.clone();
                    fx.detach(async move {
                        let join = json!({"channel": channel});
                        if let Err(e) = api
                            .call::<ApiEnvelope>("conversations.join", &bot, &join)
                            .await
                        {
                            tracing::warn!(channel = %channel, error = %e.describe(), "cannot rejoin Slack channel");
                        }
                    });
                }
            }
            _ => {}
        }
    }

    fn message(&mut self, event: super::wire::Event, team: Option<String>, fx: &mut Effects<Self>) {
        let Some(me) = self.identity.as_ref().map(|i| i.user_id.clone()) else {
            return;
        };
        // Edits, joins, deletions and bots (this one included) are not commands.
        if !matches!(
            event.subtype.as_deref(),
            None | Some("thread_broadcast" | "file_share")
        ) {
            return;
        }
        if event.bot_id.is_some() {
            return;
        }
        // A message without an author (or with a blank one) is nobody's command.
        let user = event.user.filter(|u| !u.trim().is_empty());
        let (Some(user), Some(channel), Some(ts)) = (user, event.channel, event.ts) else {
            return;
        };
        if user == me {
            return;
        }
        if !self.first_sighting(format!("msg:{channel}:{ts}")) {
            return;
        }
        let text = normalise_text(event.text.as_deref().unwrap_or_default());
        let (mentioned, text) = strip_mention(&text, &me);
        let kind = match event.channel_type.as_deref() {
            Some("im") => RoomKind::Direct,
            Some(_) => RoomKind::Group,
            None if channel.starts_with('D') => RoomKind::Direct,
            None => RoomKind::Group,
        };
        let name = event
            .user_profile
            .and_then(|p| {
                [p.display_name, p.real_name, p.name]
                    .into_iter()
                    .flatten()
                    .find(|n| !n.is_empty())
            })
            .unwrap_or_else(|| user.clone());
        let msg = InboundMessage {
            user: ChatUser {
                connection: self.name.clone(),
                id: user,
                name,
            },
            room: Room {
                connection: self.name.clone(),
                id: channel.clone(),
                kind,
                thread: event.thread_ts,
            },
            text: text.to_owned(),
            message_id: Some(ts),
            mentioned,
            room_name: None,
            org: team,
        };
        if kind == RoomKind::Direct {
            return fx.inbound(msg);
        }
        if self.settings.whispers == WhisperMode::Ephemeral {
            if self.last_room.len() >= 10_000 {
                self.last_room.clear();
            }
            self.last_room.insert(msg.user.id.clone(), channel.clone());
        }
        if let Some(room_name) = self.room_names.get(&channel) {
            let room_name = Some(room_name.clone());
            return fx.inbound(InboundMessage { room_name, ..msg });
        }
        let api = self.api();
        let bot = self.settings.bot_token.clone();
        tracing::debug!(connection = %self.name, channel = %channel, "looking up the channel name");
        fx.spawn(async move {
            let info = api
                .call::<ConversationsInfo>("conversations.info", &bot, &json!({"channel": channel}))
                .await;
            let name = match info {
                Ok(info) => info.channel.name,
                Err(e) => {
                    tracing::debug!(error = %e.describe(), "conversations.info failed; no room name");
                    None
                }
            };
            Event::Named {
                message: Box::new(msg),
                name,
            }
        });
    }
}

impl Platform for Slack {
    const KIND: &'static str = "slack";
    type Frame = Frame;
    type Write = Message;
    type Item = Outgoing;
    type Event = Event;
    type Hello = Hello;

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let api = self.api();
        // The websocket gets a client (and connection pool) of its own.
        let ws_client = awc::Client::builder()
            .connector(
                awc::Connector::new()
                    .rustls_0_23(self.tls.clone())
                    .timeout(Duration::from_secs(10)),
            )
            .finish();
        let bot = self.settings.bot_token.clone();
        let app = self.settings.app_token.clone();
        let socket_mode = self.settings.mode == SlackMode::Socket;
        let need_auth = self.identity.is_none();
        let channels = if need_auth {
            self.settings.channels.clone()
        } else {
            Vec::new()
        };
        Box::pin(async move {
            let auth = if need_auth {
                let auth: AuthTest = api
                    .call("auth.test", &bot, &json!({}))
                    .await
                    .map_err(|e| e.failure("auth.test"))?;
                for channel in &channels {
                    let join = json!({"channel": channel});
                    if let Err(e) = api
                        .call::<ApiEnvelope>("conversations.join", &bot, &join)
                        .await
                    {
                        tracing::warn!(channel = %channel, error = %e.describe(), "cannot join Slack channel");
                    }
                }
                Some(auth)
            } else {
                None
            };
            let hello = Hello { auth };
            match (socket_mode, app) {
                (true, Some(app)) => {
                    let open: ConnectionsOpen = api
                        .call("apps.connections.open", &app, &json!({}))
                        .await
                        .map_err(|e| e.failure("apps.connections.open"))?;
                    let socket = websocket::open(&ws_client, &open.url, MAX_FRAME).await?;
                    Ok(Link {
                        frames: socket.frames,
                        sink: Some(socket.sink),
                        hello,
                    })
                }
                // Events mode: logged in is all it takes; events come over HTTP.
                _ => Ok(Link {
                    frames: futures_util::stream::pending().boxed_local(),
                    sink: None,
                    hello,
                }),
            }
        })
    }

    fn opened(&mut self, hello: Hello, fx: &mut Effects<Self>) {
        if let Some(auth) = hello.auth {
            tracing::info!(connection = %self.name, bot_user = %auth.user_id, "Slack login ok");
            self.identity = Some(auth);
        }
        if self.settings.mode != SlackMode::Socket {
            fx.ready();
        }
    }

    fn frame(&mut self, frame: Frame, fx: &mut Effects<Self>) {
        match websocket::incoming(frame, fx) {
            Incoming::Text(text) => match serde_json::from_str::<SocketFrame>(&text) {
                Ok(frame) => self.socket_frame(frame, fx),
                Err(e) => {
                    tracing::warn!(connection = %self.name, error = %e, "unreadable Socket Mode frame");
                }
            },
            Incoming::Close(reason) => {
                tracing::info!(connection = %self.name, ?reason, "Slack closed the socket");
                fx.fail(websocket::closed(reason));
            }
            Incoming::Nothing => {}
        }
    }

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::Named { message, name } => {
                if let Some(n) = &name {
                    self.room_names.insert(message.room.id.clone(), n.clone());
                }
                fx.inbound(InboundMessage {
                    room_name: name,
                    ..*message
                });
            }
            Event::Sent { dm, part } => {
                if let Some((user, channel)) = dm {
                    self.dm_channels.insert(user, channel);
                }
                if let Some(attempt) = part {
                    self.unanswered.learn(attempt);
                }
            }
            Event::Updated { failed, outcome } => self.updated(failed, *outcome, fx),
        }
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        // A socket silent for `idle_timeout` is replaced; half-way, it is pinged (its pong
        // keeps a quiet but healthy socket from looking idle).
        (self.settings.mode == SlackMode::Socket).then(|| self.settings.idle_timeout / 2)
    }

    fn keepalive(&mut self, fx: &mut Effects<Self>) {
        fx.write(Message::Ping(bytes::Bytes::from_static(b"stormbridge")));
    }

    fn render(&mut self, msg: Deliver) -> Vec<Outgoing> {
        let (dest, thread) = match &msg.target {
            // `extra.slack.thread_response`: answer in a thread under the command even when the
            // command itself was said in the channel.
            Target::Room { id, thread, .. } => (
                Dest::Channel(id.clone()),
                thread.clone().or_else(|| {
                    render::wants_thread(msg.extra.as_ref())
                        .then(|| msg.reply_to.clone())
                        .flatten()
                }),
            ),
            Target::User { id } => match (self.settings.whispers, self.last_room.get(id)) {
                (WhisperMode::Ephemeral, Some(channel)) => (
                    Dest::Ephemeral {
                        channel: channel.clone(),
                        user: id.clone(),
                    },
                    None,
                ),
                _ => (Dest::User(id.clone()), None),
            },
        };
        let placeholder = match &dest {
            Dest::Channel(c) | Dest::Ephemeral { channel: c, .. } => c.clone(),
            Dest::User(u) => u.clone(),
        };
        let outbound = render::Outbound {
            text: &msg.text,
            extra: msg.extra.as_ref(),
            layout: msg.layout.as_ref(),
        };
        render::post_bodies(
            &placeholder,
            thread.as_deref(),
            outbound,
            &self.settings.results,
            self.settings.max_message_length,
        )
        .into_iter()
        .enumerate()
        .map(|(n, body)| {
            let part = OwedPart::of(msg.receipt.as_ref(), n);
            Outgoing {
                dest: dest.clone(),
                body: api::with_part_metadata(body, part.as_ref()),
                posted: None,
                part,
            }
        })
        .collect()
    }

    fn lane(&self, item: &Outgoing) -> String {
        // Slack's limit is per channel; a whisper is posted in its channel.
        match &item.dest {
            Dest::Channel(c) | Dest::Ephemeral { channel: c, .. } => format!("channel:{c}"),
            Dest::User(u) => format!("user:{u}"),
        }
    }

    fn send(&mut self, item: &Outgoing) -> Sending<Self> {
        if self.identity.is_none() {
            return Sending::NotNow;
        }
        let api = self.api();
        let bot = self.settings.bot_token.clone();
        let cached = match &item.dest {
            Dest::Channel(_) => None,
            Dest::User(u) | Dest::Ephemeral { user: u, .. } => self.dm_channels.get(u).cloned(),
        };
        let look_from = item
            .part
            .as_ref()
            .and_then(|p| self.unanswered.look_from(p));
        let item = item.clone();
        Sending::Call(Box::pin(async move {
            let started = chrono::Utc::now();
            let part = item.part.clone();
            let (outcome, dm) = api::send(api, bot, item, cached, look_from).await;
            let part = Attempt::after(part.as_ref(), started, &outcome);
            let event = (dm.is_some() || part.is_some()).then_some(Event::Sent { dm, part });
            (outcome, event)
        }))
    }
}

/// An Events API request: refused (401) unless signed with the connection's signing
/// secret within the time window; the URL verification handshake answered with its
/// challenge; an event acknowledged at once (Slack wants an answer within 3 seconds) and
/// handled like one from Socket Mode.
impl Handles<WebhookRequest> for Slack {
    type Reply = WebhookReply;

    fn handle(&mut self, request: WebhookRequest, fx: &mut Effects<Self>) -> WebhookReply {
        let Some(secret) = self.settings.signing_secret.as_ref() else {
            return WebhookReply::new(404, Value::Null);
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        if !signature::verify(
            secret.expose_secret().as_bytes(),
            request.headers.get("X-Slack-Request-Timestamp"),
            &request.body,
            request.headers.get("X-Slack-Signature"),
            now,
        ) {
            tracing::warn!(connection = %self.name, "Slack events request with a bad signature or timestamp refused");
            return WebhookReply::new(401, json!({"error": "invalid signature"}));
        }
        let Ok(value) = serde_json::from_slice::<Value>(&request.body) else {
            // Interactivity (button presses) comes to the Request URL as a form with one
            // field, `payload`, holding the JSON (api.slack.com/interactivity/handling,
            // "Request URL"), signed like events; it is acknowledged with an empty 200.
            return match interactive_payload(&request.body) {
                Some(payload) => {
                    self.on_interactive(payload, fx);
                    WebhookReply::ok()
                }
                None => WebhookReply::new(
                    400,
                    json!({"error": "body is neither an event (JSON) nor an interaction (form with payload)"}),
                ),
            };
        };
        if value.get("type").and_then(Value::as_str) == Some("url_verification") {
            let challenge = value.get("challenge").cloned().unwrap_or(Value::Null);
            return WebhookReply::new(200, json!({ "challenge": challenge }));
        }
        self.event_callback(value, fx);
        WebhookReply::ok()
    }
}

/// The `payload` field of an interactivity form, as JSON.
fn interactive_payload(body: &[u8]) -> Option<Value> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let (_, payload) = fields.into_iter().find(|(k, _)| k == "payload")?;
    serde_json::from_str(&payload).ok()
}

crate::platform_messages!(Slack: WebhookRequest);

#[cfg(test)]
mod tests {
    //! The Socket Mode state machine, frame by frame (api.slack.com/apis/socket-mode):
    //! `hello` opens, every envelope is acknowledged with its `envelope_id`, `disconnect`
    //! asks for a new socket.
    use super::*;
    use crate::backends::connection::End;

    const BOT: &str = "UBOT";

    fn slack(mode: &str) -> Slack {
        let settings = super::super::config::parse(json!({
            "mode": mode,
            "app_token": "xapp-1",
            "bot_token": "xoxb-1",
            "signing_secret": "s3cret",
        }))
        .unwrap();
        let tls = crate::tls::client_config(true, None).unwrap();
        Slack::new("sl".into(), settings, tls)
    }

    /// A platform whose socket just opened, logged in as [`BOT`].
    fn opened(mode: &str) -> (Slack, Effects<Slack>) {
        let mut p = slack(mode);
        let mut fx = Effects::default();
        let auth = AuthTest {
            user_id: BOT.into(),
            team_id: Some("T1".into()),
            bot_id: Some("BBOT".into()),
        };
        p.opened(Hello { auth: Some(auth) }, &mut fx);
        (p, fx)
    }

    fn frame(p: &mut Slack, v: Value) -> Effects<Slack> {
        let mut fx = Effects::default();
        p.frame(Frame::Text(v.to_string().into()), &mut fx);
        fx
    }

    /// An `events_api` envelope with a direct message from alice.
    fn dm(envelope: &str, event_id: &str, ts: &str, text: &str) -> Value {
        json!({
            "type": "events_api",
            "envelope_id": envelope,
            "payload": {
                "type": "event_callback",
                "team_id": "T1",
                "event_id": event_id,
                "event": {
                    "type": "message",
                    "channel": "D1",
                    "channel_type": "im",
                    "user": "UALICE",
                    "text": text,
                    "ts": ts,
                },
            },
        })
    }

    #[test]
    fn hello_opens_the_socket_and_disconnect_asks_for_a_new_one() {
        let (mut p, fx) = opened("socket");
        assert!(!fx.is_ready(), "not before Slack's hello");
        let fx = frame(&mut p, json!({"type": "hello", "num_connections": 1}));
        assert!(fx.is_ready());
        assert!(fx.ending().is_none());

        let fx = frame(
            &mut p,
            json!({"type": "disconnect", "reason": "refresh_requested"}),
        );
        assert!(
            matches!(fx.ending(), Some(End::Renew(why)) if why.contains("refresh_requested")),
            "{:?}",
            fx.ending()
        );
        assert!(!fx.is_ready());
    }

    #[test]
    fn an_envelope_is_acknowledged_and_its_message_handed_over_once() {
        let (mut p, _) = opened("socket");
        frame(&mut p, json!({"type": "hello"}));
        let fx = frame(
            &mut p,
            dm("env-1", "Ev1", "1700000000.000100", "<@UBOT> run date"),
        );
        assert_eq!(fx.written_json(), [json!({"envelope_id": "env-1"})]);
        let [m] = fx.messages() else {
            panic!("one message: {:?}", fx.messages());
        };
        assert_eq!(m.text, "run date", "the mention is stripped");
        assert!(m.mentioned);
        assert_eq!(m.user.id, "UALICE");
        assert_eq!(m.room.id, "D1");
        assert_eq!(m.room.kind, RoomKind::Direct);
        assert_eq!(m.message_id.as_deref(), Some("1700000000.000100"));
        assert_eq!(m.org.as_deref(), Some("T1"));

        // Slack retries an envelope (same event id, new envelope): acknowledged, not run again.
        let fx = frame(
            &mut p,
            dm("env-2", "Ev1", "1700000000.000100", "<@UBOT> run date"),
        );
        assert_eq!(fx.written_json(), [json!({"envelope_id": "env-2"})]);
        assert!(fx.messages().is_empty());

        // The bot's own message and another bot's are acknowledged and ignored.
        let mut own = dm("env-3", "Ev3", "1700000000.000300", "result");
        own["payload"]["event"]["user"] = json!(BOT);
        let fx = frame(&mut p, own);
        assert_eq!(fx.written_json(), [json!({"envelope_id": "env-3"})]);
        assert!(fx.messages().is_empty());
        let mut other = dm("env-4", "Ev4", "1700000000.000400", "!st2 run date");
        other["payload"]["event"]["bot_id"] = json!("BOTHER");
        assert!(frame(&mut p, other).messages().is_empty());

        // Envelopes the bridge does not use are acknowledged too.
        let fx = frame(
            &mut p,
            json!({"type": "slash_commands", "envelope_id": "env-5", "payload": {}}),
        );
        assert_eq!(fx.written_json(), [json!({"envelope_id": "env-5"})]);
    }

    #[test]
    fn a_closed_socket_fails_the_link_and_events_mode_is_ready_at_once() {
        let (mut p, _) = opened("socket");
        let mut fx = Effects::default();
        p.frame(Frame::Close(None), &mut fx);
        assert!(
            matches!(fx.ending(), Some(End::Fail(_))),
            "{:?}",
            fx.ending()
        );

        // Events mode: events come over HTTP; logged in is ready.
        let (p, fx) = opened("events");
        assert!(fx.is_ready());
        assert_eq!(p.keepalive_interval(), None, "no socket to watch");
        let (p, _) = opened("socket");
        assert_eq!(
            p.keepalive_interval(),
            Some(Duration::from_secs(60)),
            "pinged half-way to idle_timeout_secs"
        );
    }
}
