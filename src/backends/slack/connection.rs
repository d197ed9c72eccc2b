//! The Slack connection actor.
//!
//! Inbound: in Socket Mode it keeps one websocket (`apps.connections.open` with the app
//! token), acknowledges every envelope as soon as it arrives, and on `disconnect` opens the
//! next connection before letting the old one go; a lost socket is reopened after a capped,
//! jittered backoff. In Events mode the HTTP route hands it verified [`SignedEvent`]s.
//!
//! Outbound: every message becomes one or more `chat.postMessage` bodies in a bounded FIFO
//! queue. One post is in flight at a time, at least `send_interval` apart; a 429 pauses the
//! queue for `Retry-After`, a network or server error for a backoff, and the message stays
//! at the head of the queue until Slack accepts or refuses it.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{io::SinkWrite, prelude::*};
use awc::{error::WsProtocolError, ws};
use futures_util::{stream, Sink, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{
    normalise_text, render, strip_mention,
    wire::{
        ApiEnvelope, AuthTest, ConnectionsOpen, ConversationsInfo, ConversationsOpen, Event,
        EventCallback, SocketFrame,
    },
    SignedEvent, SlackMode, SlackSettings, WhisperMode,
};
use crate::{
    actors::messages::{Deliver, Inbound},
    actors::status::{ActorState, StatusReporter},
    domain::{
        backoff::Backoff,
        message::{ChatUser, InboundMessage, Room, RoomKind, Target},
    },
};

/// Answer buttons (Block Kit out, `block_actions` in).
#[path = "interactive.rs"]
mod interactive;

type WsSink = Pin<Box<dyn Sink<ws::Message, Error = WsProtocolError>>>;

/// Remembered event ids and message timestamps, to drop Slack's retries and the
/// `message` + `app_mention` pair one mention produces.
const SEEN_CAPACITY: usize = 512;

enum SocketEvent {
    Frame(u64, Result<ws::Frame, WsProtocolError>),
    Closed(u64),
}

impl Message for SocketEvent {
    type Result = ();
}

struct Socket {
    sink: SinkWrite<ws::Message, WsSink>,
    last_seen: Instant,
}

/// Where a queued post goes.
#[derive(Debug, Clone)]
enum Dest {
    Channel(String),
    /// A user id; the direct-message channel is opened (once) with `conversations.open`.
    User(String),
    /// `chat.postEphemeral` to `user` in `channel`, a direct message if Slack refuses.
    Ephemeral {
        channel: String,
        user: String,
    },
}

#[derive(Debug, Clone)]
struct Outgoing {
    seq: u64,
    dest: Dest,
    body: Value,
}

enum SendOutcome {
    Sent { dm: Option<(String, String)> },
    RateLimited(Duration),
    Rejected(String),
    Failed(String),
}

/// Why a Web API call failed.
#[derive(Debug)]
enum ApiError {
    /// 429: wait this long.
    RateLimited(Duration),
    /// Slack answered `ok: false`; retrying will not help (except `ratelimited`).
    Slack(String),
    /// Network, 5xx, or an unreadable answer; worth retrying.
    Transport(String),
}

/// One Slack workspace connection.
pub struct SlackConnection {
    name: String,
    settings: SlackSettings,
    dispatcher: Recipient<Inbound>,
    status: StatusReporter,
    tls: Arc<rustls::ClientConfig>,
    http: Option<awc::Client>,
    identity: Option<AuthTest>,
    backoff: Backoff,
    send_backoff: Backoff,
    generation: u64,
    sockets: HashMap<u64, Socket>,
    current: Option<u64>,
    connecting: bool,
    queue: VecDeque<Outgoing>,
    sending: bool,
    pump_scheduled: bool,
    paused_until: Option<Instant>,
    last_send: Option<Instant>,
    dropped: u64,
    next_seq: u64,
    dm_channels: HashMap<String, String>,
    room_names: HashMap<String, String>,
    /// The group channel each user last spoke to the bot in (for ephemeral whispers).
    last_room: HashMap<String, String>,
    seen: VecDeque<String>,
    seen_set: HashSet<String>,
    interactive: interactive::Interactions,
}

impl SlackConnection {
    /// A connection named `name`; it connects when started.
    pub fn new(
        name: String,
        settings: SlackSettings,
        dispatcher: Recipient<Inbound>,
        tls: Arc<rustls::ClientConfig>,
        status: StatusReporter,
    ) -> Self {
        let backoff = Backoff::new(settings.reconnect_initial, settings.reconnect_max);
        Self {
            name,
            dispatcher,
            status,
            tls,
            http: None,
            identity: None,
            send_backoff: backoff.clone(),
            backoff,
            settings,
            generation: 0,
            sockets: HashMap::new(),
            current: None,
            connecting: false,
            queue: VecDeque::new(),
            sending: false,
            pump_scheduled: false,
            paused_until: None,
            last_send: None,
            dropped: 0,
            next_seq: 0,
            dm_channels: HashMap::new(),
            room_names: HashMap::new(),
            last_room: HashMap::new(),
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
            interactive: Default::default(),
        }
    }

    fn client(&mut self) -> awc::Client {
        if let Some(c) = &self.http {
            return c.clone();
        }
        let client =
            crate::backends::rest::http_client(self.tls.clone(), crate::backends::rest::USER_AGENT);
        self.http = Some(client.clone());
        client
    }

    fn api(&mut self) -> Api {
        Api {
            client: self.client(),
            base: self.settings.api_url.clone(),
        }
    }

    /// Logs in (`auth.test`) and, in Socket Mode, opens a websocket.
    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting {
            return;
        }
        self.connecting = true;
        self.generation += 1;
        let generation = self.generation;
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
        let fut = async move {
            let auth = if need_auth {
                let auth: AuthTest = api
                    .call("auth.test", &bot, &json!({}))
                    .await
                    .map_err(|e| format!("auth.test: {}", e.describe()))?;
                for channel in &channels {
                    if let Err(e) = api
                        .call::<ApiEnvelope>(
                            "conversations.join",
                            &bot,
                            &json!({"channel": channel}),
                        )
                        .await
                    {
                        tracing::warn!(channel = %channel, error = %e.describe(), "cannot join Slack channel");
                    }
                }
                Some(auth)
            } else {
                None
            };
            let framed = match (socket_mode, app) {
                (true, Some(app)) => {
                    let open: ConnectionsOpen = api
                        .call("apps.connections.open", &app, &json!({}))
                        .await
                        .map_err(|e| format!("apps.connections.open: {}", e.describe()))?;
                    let (_, framed) = ws_client
                        .ws(open.url.as_str())
                        .max_frame_size(4 << 20)
                        .connect()
                        .await
                        .map_err(|e| format!("websocket: {e}"))?;
                    Some(framed)
                }
                _ => None,
            };
            Ok::<_, String>((auth, framed))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.connecting = false;
            match res {
                Ok((auth, framed)) => {
                    if let Some(auth) = auth {
                        tracing::info!(connection = %act.name, bot_user = %auth.user_id, "Slack login ok");
                        act.identity = Some(auth);
                    }
                    match framed {
                        Some(framed) => {
                            let (sink, stream) = framed.split();
                            let sink: WsSink = Box::pin(sink);
                            act.sockets.insert(
                                generation,
                                Socket {
                                    sink: SinkWrite::new(sink, ctx),
                                    last_seen: Instant::now(),
                                },
                            );
                            let events = stream
                                .map(move |f| SocketEvent::Frame(generation, f))
                                .chain(stream::once(async move { SocketEvent::Closed(generation) }));
                            ctx.add_stream(events);
                        }
                        None => {
                            // Events mode: logged in is all it takes.
                            act.backoff.reset();
                            act.status.state(ActorState::Up, None);
                        }
                    }
                    act.pump(ctx);
                }
                Err(e) => act.connect_failed(e, ctx),
            }
        }));
    }

    fn connect_failed(&mut self, error: String, ctx: &mut Context<Self>) {
        tracing::warn!(connection = %self.name, error = %error, "Slack connection failed");
        if self.current.is_none() {
            self.status
                .state(ActorState::Reconnecting, Some(error.clone()));
        }
        self.schedule_reconnect(ctx);
    }

    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>) {
        let delay = self.backoff.next_delay();
        tracing::info!(connection = %self.name, delay_ms = delay.as_millis() as u64, "Slack reconnect scheduled");
        ctx.run_later(delay, |act, ctx| {
            act.status.restarted(None);
            act.connect(ctx)
        });
    }

    fn socket_closed(&mut self, generation: u64, ctx: &mut Context<Self>) {
        self.sockets.remove(&generation);
        if self.current == Some(generation) {
            self.current = None;
        }
        let pending = self.connecting || self.sockets.contains_key(&self.generation);
        if self.current.is_none() && !pending {
            tracing::warn!(connection = %self.name, "Slack socket lost; reconnecting");
            self.status
                .state(ActorState::Reconnecting, Some("socket closed".into()));
            self.schedule_reconnect(ctx);
        }
    }

    fn send_frame(&mut self, generation: u64, text: String) {
        if let Some(s) = self.sockets.get_mut(&generation) {
            if s.sink.write(ws::Message::Text(text.into())).is_err() {
                tracing::warn!(connection = %self.name, "Slack socket closed before an ack");
            }
        }
    }

    fn on_frame(&mut self, generation: u64, frame: ws::Frame, ctx: &mut Context<Self>) {
        match frame {
            ws::Frame::Text(bytes) => {
                let frame: SocketFrame = match serde_json::from_slice(&bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(connection = %self.name, error = %e, "unreadable Socket Mode frame");
                        return;
                    }
                };
                self.on_socket_frame(generation, frame, ctx);
            }
            ws::Frame::Ping(p) => {
                if let Some(s) = self.sockets.get_mut(&generation) {
                    let _ = s.sink.write(ws::Message::Pong(p));
                }
            }
            ws::Frame::Close(reason) => {
                tracing::info!(connection = %self.name, ?reason, "Slack closed the socket");
                if let Some(mut s) = self.sockets.remove(&generation) {
                    s.sink.close();
                }
                self.socket_closed(generation, ctx);
            }
            _ => {}
        }
    }

    fn on_socket_frame(&mut self, generation: u64, frame: SocketFrame, ctx: &mut Context<Self>) {
        match frame {
            SocketFrame::Hello { num_connections } => {
                tracing::info!(connection = %self.name, ?num_connections, "Slack socket ready");
                if generation == self.generation {
                    self.current = Some(generation);
                    let old: Vec<u64> = self
                        .sockets
                        .keys()
                        .copied()
                        .filter(|g| *g != generation)
                        .collect();
                    for g in old {
                        if let Some(mut s) = self.sockets.remove(&g) {
                            s.sink.close();
                        }
                    }
                    self.backoff.reset();
                    self.status.state(ActorState::Up, None);
                }
            }
            SocketFrame::Disconnect { reason } => {
                tracing::info!(connection = %self.name, reason = %reason, "Slack asked to reconnect; opening the next socket first");
                if self.current == Some(generation) {
                    self.connect(ctx);
                }
            }
            SocketFrame::EventsApi {
                envelope_id,
                payload,
            } => {
                tracing::debug!(connection = %self.name, generation, envelope_id = %envelope_id, "Slack event received");
                self.send_frame(generation, json!({"envelope_id": envelope_id}).to_string());
                self.on_event_callback(payload, ctx);
            }
            SocketFrame::SlashCommands { envelope_id } => {
                self.send_frame(generation, json!({"envelope_id": envelope_id}).to_string());
            }
            SocketFrame::Interactive {
                envelope_id,
                payload,
            } => {
                // Acknowledged first, like every envelope (Slack wants it within 3 s).
                self.send_frame(generation, json!({"envelope_id": envelope_id}).to_string());
                self.on_interactive(payload, ctx);
            }
            SocketFrame::Other => {}
        }
    }

    /// True the first time `key` is seen (among the last [`SEEN_CAPACITY`]).
    fn first_sighting(&mut self, key: String) -> bool {
        if self.seen_set.contains(&key) {
            return false;
        }
        if self.seen.len() >= SEEN_CAPACITY {
            if let Some(old) = self.seen.pop_front() {
                self.seen_set.remove(&old);
            }
        }
        self.seen_set.insert(key.clone());
        self.seen.push_back(key);
        true
    }

    fn on_event_callback(&mut self, payload: Value, ctx: &mut Context<Self>) {
        self.status.activity();
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
                self.on_message(event, team, ctx)
            }
            "channel_left" | "group_left" => {
                if let Some(channel) = event.channel.filter(|c| self.settings.channels.contains(c))
                {
                    tracing::warn!(connection = %self.name, channel = %channel, "removed from a configured channel; rejoining");
                    let api = self.api();
                    let bot = self.settings.bot_token.clone();
                    actix_rt::spawn(async move {
                        if let Err(e) = api
                            .call::<ApiEnvelope>(
                                "conversations.join",
                                &bot,
                                &json!({"channel": channel}),
                            )
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

    fn on_message(&mut self, event: Event, team: Option<String>, ctx: &mut Context<Self>) {
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
            self.dispatcher.do_send(Inbound(msg));
            return;
        }
        if self.settings.whispers == WhisperMode::Ephemeral {
            if self.last_room.len() >= 10_000 {
                self.last_room.clear();
            }
            self.last_room.insert(msg.user.id.clone(), channel.clone());
        }
        if let Some(room_name) = self.room_names.get(&channel) {
            let msg = InboundMessage {
                room_name: Some(room_name.clone()),
                ..msg
            };
            self.dispatcher.do_send(Inbound(msg));
            return;
        }
        let api = self.api();
        let bot = self.settings.bot_token.clone();
        tracing::debug!(connection = %self.name, channel = %channel, "looking up the channel name");
        let fut = async move {
            api.call::<ConversationsInfo>("conversations.info", &bot, &json!({"channel": channel}))
                .await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            let room_name = match res {
                Ok(info) => info.channel.name,
                Err(e) => {
                    tracing::debug!(error = %e.describe(), "conversations.info failed; no room name");
                    None
                }
            };
            if let Some(n) = &room_name {
                act.room_names.insert(msg.room.id.clone(), n.clone());
            }
            act.dispatcher.do_send(Inbound(InboundMessage { room_name, ..msg }));
        }));
    }

    fn enqueue(&mut self, item: Outgoing) {
        if self.queue.len() >= self.settings.queue_size {
            self.queue.pop_front();
            self.dropped += 1;
            tracing::warn!(
                connection = %self.name,
                dropped_total = self.dropped,
                capacity = self.settings.queue_size,
                "Slack outbound queue full; oldest message dropped"
            );
        }
        self.queue.push_back(item);
        // The message being sent stays at the head, so it counts until Slack has it.
        self.status.outbound(self.queue.len(), self.dropped);
    }

    /// Sends the head of the queue when the rate limits allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.sending || self.queue.is_empty() || self.identity.is_none() {
            return;
        }
        let now = Instant::now();
        let mut ready_at = now;
        if let Some(t) = self.paused_until {
            ready_at = ready_at.max(t);
        }
        if let Some(t) = self.last_send {
            ready_at = ready_at.max(t + self.settings.send_interval);
        }
        if ready_at > now {
            if !self.pump_scheduled {
                self.pump_scheduled = true;
                ctx.run_later(ready_at - now, |act, ctx| {
                    act.pump_scheduled = false;
                    act.pump(ctx);
                });
            }
            return;
        }
        let Some(item) = self.queue.front().cloned() else {
            return;
        };
        self.sending = true;
        let api = self.api();
        let bot = self.settings.bot_token.clone();
        let cached = match &item.dest {
            Dest::Channel(_) => None,
            Dest::User(u) | Dest::Ephemeral { user: u, .. } => self.dm_channels.get(u).cloned(),
        };
        let seq = item.seq;
        let fut = async move { send(api, bot, item, cached).await };
        ctx.spawn(fut.into_actor(self).map(move |outcome, act, ctx| {
            act.sending = false;
            act.last_send = Some(Instant::now());
            // The head may have been dropped by an overflow while it was in flight.
            let head_is_sent = act.queue.front().map(|f| f.seq) == Some(seq);
            match outcome {
                SendOutcome::Sent { dm } => {
                    if head_is_sent {
                        act.queue.pop_front();
                    }
                    act.send_backoff.reset();
                    act.paused_until = None;
                    if let Some((user, channel)) = dm {
                        act.dm_channels.insert(user, channel);
                    }
                    act.status.activity();
                }
                SendOutcome::RateLimited(wait) => {
                    tracing::warn!(connection = %act.name, wait_ms = wait.as_millis() as u64, "Slack rate limit; waiting");
                    act.paused_until = Some(Instant::now() + wait);
                }
                SendOutcome::Rejected(error) => {
                    if head_is_sent {
                        act.queue.pop_front();
                    }
                    tracing::warn!(connection = %act.name, error = %error, "Slack refused a message; dropped");
                }
                SendOutcome::Failed(error) => {
                    let wait = act.send_backoff.next_delay();
                    tracing::warn!(connection = %act.name, error = %error, wait_ms = wait.as_millis() as u64, "Slack post failed; will retry");
                    act.paused_until = Some(Instant::now() + wait);
                }
            }
            act.status.outbound(act.queue.len(), act.dropped);
            act.pump(ctx);
        }));
    }

    fn check_idle(&mut self, ctx: &mut Context<Self>) {
        let limit = self.settings.idle_timeout;
        // A socket that went quiet, or a new one that never said hello, is given up.
        let silent: Vec<u64> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.last_seen.elapsed() > limit)
            .map(|(g, _)| *g)
            .collect();
        for generation in silent {
            tracing::warn!(connection = %self.name, generation, "Slack socket silent too long; reconnecting");
            if let Some(mut s) = self.sockets.remove(&generation) {
                s.sink.close();
            }
            self.socket_closed(generation, ctx);
        }
        if let Some(s) = self.current.and_then(|g| self.sockets.get_mut(&g)) {
            // Our own ping: its pong keeps a quiet but healthy socket from looking idle.
            let _ = s
                .sink
                .write(ws::Message::Ping(bytes::Bytes::from_static(b"stormbridge")));
        }
    }
}

async fn send(
    api: Api,
    bot: SecretString,
    mut item: Outgoing,
    dm_cached: Option<String>,
) -> SendOutcome {
    if let Dest::Ephemeral { channel, user } = item.dest.clone() {
        let mut body = item.body.clone();
        if let Some(b) = body.as_object_mut() {
            b.insert("channel".into(), Value::String(channel));
            b.insert("user".into(), Value::String(user.clone()));
        }
        match api
            .call::<ApiEnvelope>("chat.postEphemeral", &bot, &body)
            .await
        {
            Ok(_) => return SendOutcome::Sent { dm: None },
            Err(ApiError::Slack(e))
                if matches!(
                    e.as_str(),
                    "user_not_in_channel" | "channel_not_found" | "not_in_channel" | "is_archived"
                ) =>
            {
                tracing::info!(error = %e, "ephemeral whisper refused; sending a direct message");
                item.dest = Dest::User(user);
            }
            Err(e) => return e.outcome(),
        }
    }
    let mut dm = None;
    let channel = match &item.dest {
        Dest::Channel(c) => c.clone(),
        Dest::User(user) | Dest::Ephemeral { user, .. } => match dm_cached {
            Some(c) => c,
            None => match api
                .call::<ConversationsOpen>("conversations.open", &bot, &json!({"users": user}))
                .await
            {
                Ok(open) => {
                    dm = Some((user.clone(), open.channel.id.clone()));
                    open.channel.id
                }
                Err(e) => return e.outcome(),
            },
        },
    };
    if let Some(body) = item.body.as_object_mut() {
        body.insert("channel".into(), Value::String(channel));
    }
    match api
        .call::<ApiEnvelope>("chat.postMessage", &bot, &item.body)
        .await
    {
        Ok(_) => SendOutcome::Sent { dm },
        Err(e) => e.outcome(),
    }
}

impl ApiError {
    fn describe(&self) -> String {
        match self {
            ApiError::RateLimited(d) => format!("rate limited for {} ms", d.as_millis()),
            ApiError::Slack(e) => e.clone(),
            ApiError::Transport(e) => e.clone(),
        }
    }

    fn outcome(self) -> SendOutcome {
        match self {
            ApiError::RateLimited(d) => SendOutcome::RateLimited(d),
            ApiError::Slack(e) if e == "ratelimited" => {
                SendOutcome::RateLimited(Duration::from_secs(1))
            }
            ApiError::Slack(e) => SendOutcome::Rejected(e),
            ApiError::Transport(e) => SendOutcome::Failed(e),
        }
    }
}

/// A Web API client bound to this thread.
#[derive(Clone)]
struct Api {
    client: awc::Client,
    base: String,
}

impl Api {
    /// POSTs a JSON body to `method` with `token`; Slack's `ok: false` is an error.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        token: &SecretString,
        body: &Value,
    ) -> Result<T, ApiError> {
        let url = format!("{}/{method}", self.base);
        let mut resp = self
            .client
            .post(url)
            .insert_header(("Authorization", format!("Bearer {}", token.expose_secret())))
            .send_json(body)
            .await
            .map_err(|e| ApiError::Transport(format!("{method}: {e}")))?;
        let status = resp.status();
        if status.as_u16() == 429 {
            let secs = resp
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(ApiError::RateLimited(Duration::from_secs(secs.min(3600))));
        }
        if !status.is_success() {
            return Err(ApiError::Transport(format!("{method}: HTTP {status}")));
        }
        let bytes = resp
            .body()
            .limit(4 << 20)
            .await
            .map_err(|e| ApiError::Transport(format!("{method}: {e}")))?;
        let envelope: ApiEnvelope = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Transport(format!("{method}: unreadable answer: {e}")))?;
        if !envelope.ok {
            return Err(ApiError::Slack(
                envelope.error.unwrap_or_else(|| "unknown_error".into()),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Transport(format!("{method}: unexpected answer: {e}")))
    }
}

impl Actor for SlackConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.status.state(ActorState::Starting, None);
        // From the start, so the queue's series read 0 instead of missing.
        self.status.outbound(self.queue.len(), self.dropped);
        self.connect(ctx);
        let every = (self.settings.idle_timeout / 4).max(Duration::from_millis(250));
        ctx.run_interval(every, |act, ctx| act.check_idle(ctx));
    }
}

impl StreamHandler<SocketEvent> for SlackConnection {
    fn handle(&mut self, item: SocketEvent, ctx: &mut Self::Context) {
        match item {
            SocketEvent::Frame(generation, frame) => {
                let Some(socket) = self.sockets.get_mut(&generation) else {
                    return;
                };
                socket.last_seen = Instant::now();
                match frame {
                    Ok(frame) => self.on_frame(generation, frame, ctx),
                    Err(e) => {
                        tracing::warn!(connection = %self.name, error = %e, "Slack socket error");
                        self.sockets.remove(&generation);
                        self.socket_closed(generation, ctx);
                    }
                }
            }
            SocketEvent::Closed(generation) => {
                if self.sockets.contains_key(&generation) {
                    self.socket_closed(generation, ctx);
                }
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // Each socket's stream ends with `Closed`; the actor lives on.
    }
}

impl actix::io::WriteHandler<WsProtocolError> for SlackConnection {
    fn error(&mut self, err: WsProtocolError, _ctx: &mut Self::Context) -> Running {
        tracing::warn!(connection = %self.name, error = %err, "Slack socket write failed");
        Running::Continue
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        // A socket's writer closed (the default would stop the whole actor).
    }
}

impl Handler<SignedEvent> for SlackConnection {
    type Result = ();

    fn handle(&mut self, msg: SignedEvent, ctx: &mut Self::Context) {
        self.on_event_callback(msg.0, ctx);
    }
}

impl Handler<Deliver> for SlackConnection {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
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
        for body in render::post_bodies(
            &placeholder,
            thread.as_deref(),
            outbound,
            &self.settings.results,
            self.settings.max_message_length,
        ) {
            self.next_seq += 1;
            self.enqueue(Outgoing {
                seq: self.next_seq,
                dest: dest.clone(),
                body,
            });
        }
        self.pump(ctx);
    }
}
