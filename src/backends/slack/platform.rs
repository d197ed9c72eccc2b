//! Slack as a [`Platform`]: Socket Mode envelopes (hello, acknowledgements, `disconnect`,
//! events, interactivity) as a state machine over the websocket; in Events API mode the
//! link is only the login, and events arrive as signed requests on its HTTP route ([`WebhookRequest`]).
//! Posts go out over the Web API.
//!
//! Socket Mode replays nothing to a new socket (https://api.slack.com/apis/connections/socket):
//! the platform keeps a [`Position`] (since when its links listened, and per channel and per
//! thread the `ts` of the newest message handed on), saved for the next holder through
//! [`Platform::resume_state`], and each new link asks `conversations.history` (and
//! `conversations.replies`) what was posted from there on before it hands on live messages
//! ([`super::resume`]).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use awc::ws::{Frame, Message};
use futures_util::{future::LocalBoxFuture, StreamExt};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{
    api::{self, Api, ApiError, Dest, Outgoing},
    interactive::Interactions,
    normalise_text, render,
    resume::{self, Position},
    signature, strip_mention,
    wire::{ApiEnvelope, AuthTest, ConnectionsOpen, ConversationsInfo, EventCallback, SocketFrame},
    SlackMode, SlackSettings, WhisperMode,
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{
        owed::{Attempt, OwedPart, Unanswered},
        position::{catch_up_floor, now_ms},
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

/// Live messages held back while a catch-up runs (they go after what it finds); beyond that
/// the oldest are dropped, and logged.
const HELD_MESSAGES: usize = 1024;

/// Longest a catch-up may take, waits for Slack's rate limit included: what it has not read
/// by then is not caught up (a warning says so), and the live messages held meanwhile go on.
const CATCH_UP_BUDGET: Duration = Duration::from_secs(30);

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
    /// Catch-up `round` read what was posted from the position on (live `message` events'
    /// shape, oldest first, with their `ts` in milliseconds) and the names of the channels
    /// it was posted in.
    CaughtUp {
        round: u64,
        missed: Vec<(u64, Value)>,
        names: Vec<(String, Option<String>)>,
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
    /// Socket Mode: since when the links listened, and per channel the `ts` (ms) of the
    /// newest message handed on: what the next link (this process's, or the next holder's)
    /// catches up from.
    position: Position,
    /// The catch-up under way (its round), if one is: live messages are held meanwhile.
    catching_up: Option<u64>,
    rounds: u64,
    /// Live messages held during a catch-up (kept across a lost link: they go after the
    /// next link's catch-up).
    held: VecDeque<InboundMessage>,
    /// Slack asked for a new socket (`disconnect`): the old one works until the new one is
    /// open, so the new one's hello has nothing to catch up (unless connecting failed).
    renewing: bool,
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
            position: Position::default(),
            catching_up: None,
            rounds: 0,
            held: VecDeque::new(),
            renewing: false,
        }
    }

    fn socket_mode(&self) -> bool {
        self.settings.mode == SlackMode::Socket
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
                self.listening(fx);
            }
            SocketFrame::Disconnect { reason } => {
                // The next socket opens first; this one works until then.
                self.renewing = true;
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

    /// A live `message` (or `app_mention`) event: handed on, or held while a catch-up runs.
    fn message(&mut self, event: super::wire::Event, team: Option<String>, fx: &mut Effects<Self>) {
        let Some(msg) = self.map(event, team) else {
            return;
        };
        if self.catching_up.is_some() {
            if self.held.len() >= HELD_MESSAGES {
                self.held.pop_front();
                tracing::warn!(connection = %self.name, "too many messages while catching up; the oldest held one was dropped");
            }
            self.held.push_back(msg);
            return;
        }
        self.hand_on(msg, fx);
    }

    /// A message event as a chat message; `None` for what is not a command (edits, joins,
    /// deletions, bots and the bridge itself, messages without an author). Live and
    /// caught-up messages alike; the message id is the message's `ts`.
    fn map(&self, event: super::wire::Event, team: Option<String>) -> Option<InboundMessage> {
        let me = self.identity.as_ref().map(|i| i.user_id.clone())?;
        // Edits, joins, deletions and bots (this one included) are not commands.
        if !matches!(
            event.subtype.as_deref(),
            None | Some("thread_broadcast" | "file_share")
        ) {
            return None;
        }
        if event.bot_id.is_some() {
            return None;
        }
        // A message without an author (or with a blank one) is nobody's command.
        let user = event.user.filter(|u| !u.trim().is_empty());
        let (Some(user), Some(channel), Some(ts)) = (user, event.channel, event.ts) else {
            return None;
        };
        if user == me {
            return None;
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
        Some(InboundMessage {
            user: ChatUser {
                connection: self.name.clone(),
                id: user,
                name,
            },
            room: Room {
                connection: self.name.clone(),
                id: channel,
                kind,
                thread: event.thread_ts,
            },
            text: text.to_owned(),
            message_id: Some(ts),
            mentioned,
            room_name: None,
            org: team,
        })
    }

    /// Hands `msg` on unless it was already (by channel and `ts`: Slack's retries, the
    /// `message` + `app_mention` pair of one mention, a message both live and caught up);
    /// a group channel's name is looked up first when not known. False when skipped.
    fn hand_on(&mut self, msg: InboundMessage, fx: &mut Effects<Self>) -> bool {
        let ts = msg.message_id.clone().unwrap_or_default();
        if !self.first_sighting(format!("msg:{}:{ts}", msg.room.id)) {
            return false;
        }
        if msg.room.kind == RoomKind::Direct {
            self.deliver(msg, fx);
            return true;
        }
        let channel = msg.room.id.clone();
        if self.settings.whispers == WhisperMode::Ephemeral {
            if self.last_room.len() >= 10_000 {
                self.last_room.clear();
            }
            self.last_room.insert(msg.user.id.clone(), channel.clone());
        }
        if let Some(room_name) = self.room_names.get(&channel) {
            let room_name = Some(room_name.clone());
            self.deliver(InboundMessage { room_name, ..msg }, fx);
            return true;
        }
        let api = self.api();
        let bot = self.settings.bot_token.clone();
        tracing::debug!(connection = %self.name, channel = %channel, "looking up the channel name");
        fx.spawn(async move {
            let name = channel_name(&api, &bot, &channel).await;
            Event::Named {
                message: Box::new(msg),
                name,
            }
        });
        true
    }

    /// Gives `msg` to the dispatcher and, in Socket Mode, moves the position to it.
    fn deliver(&mut self, msg: InboundMessage, fx: &mut Effects<Self>) {
        if self.socket_mode() {
            if let Some(ts) = msg.message_id.as_deref() {
                if let Some(ms) = resume::ts_ms(ts) {
                    self.position.note(&msg.room.id, ms);
                    // Its thread: a reply's, or the one that may grow under a message said
                    // outside a thread (people follow up on a command in its thread).
                    let root = msg.room.thread.as_deref().unwrap_or(ts);
                    self.position
                        .note_thread(&resume::thread_key(&msg.room.id, root), ms);
                }
            }
        }
        fx.inbound(msg);
    }

    /// A socket said hello: the first link marks when the links started listening; a later
    /// one (after a lost link, or the next holder's) catches up first.
    fn listening(&mut self, fx: &mut Effects<Self>) {
        if !self.position.is_known() {
            self.position.listening(now_ms());
        }
        // After Slack's own refresh nothing was missed: the old socket heard everything
        // until this one opened. (Slack refreshes sockets every few hours; reading every
        // recent channel back each time would cost calls and hold live messages.)
        let refreshed = std::mem::take(&mut self.renewing);
        let floor = catch_up_floor(now_ms(), self.settings.max_command_age_secs);
        let rooms = resume::rooms_to_fetch(&self.position, floor);
        if rooms.is_empty() || refreshed {
            self.catching_up = None;
            for msg in std::mem::take(&mut self.held) {
                self.hand_on(msg, fx);
            }
            return;
        }
        self.rounds += 1;
        let round = self.rounds;
        self.catching_up = Some(round);
        let api = self.api();
        let bot = self.settings.bot_token.clone();
        let name = self.name.clone();
        let known: HashSet<String> = self.room_names.keys().cloned().collect();
        tracing::debug!(connection = %self.name, channels = rooms.len(), "reading what was posted while no link listened");
        fx.spawn(async move {
            let deadline = tokio::time::Instant::now() + CATCH_UP_BUDGET;
            let (missed, names) = fetch_missed(&api, &bot, &name, rooms, known, deadline).await;
            Event::CaughtUp {
                round,
                missed,
                names,
            }
        });
    }

    /// Catch-up `round` came back: what it found goes first, oldest first, then the live
    /// messages held meanwhile.
    fn caught_up(
        &mut self,
        round: u64,
        missed: Vec<(u64, Value)>,
        names: Vec<(String, Option<String>)>,
        fx: &mut Effects<Self>,
    ) {
        if self.catching_up != Some(round) {
            return;
        }
        self.catching_up = None;
        for (channel, name) in names {
            if let Some(name) = name {
                self.room_names.insert(channel, name);
            }
        }
        let default_team = self.identity.as_ref().and_then(|i| i.team_id.clone());
        let mut handed = 0;
        for (_, event) in missed {
            let event: super::wire::Event = match serde_json::from_value(event) {
                Ok(event) => event,
                Err(e) => {
                    tracing::debug!(connection = %self.name, error = %e, "a caught-up Slack message skipped");
                    continue;
                }
            };
            let team = event.team.clone().or_else(|| default_team.clone());
            if let Some(msg) = self.map(event, team) {
                handed += usize::from(self.hand_on(msg, fx));
            }
        }
        if handed > 0 {
            tracing::info!(connection = %self.name, messages = handed, "caught up with what was posted while no link listened");
        }
        for msg in std::mem::take(&mut self.held) {
            self.hand_on(msg, fx);
        }
    }
}

/// A channel's name (`conversations.info`), `None` when Slack does not say.
async fn channel_name(api: &Api, bot: &secrecy::SecretString, channel: &str) -> Option<String> {
    let info = api
        .call::<ConversationsInfo>("conversations.info", bot, &json!({"channel": channel}))
        .await;
    match info {
        Ok(info) => info.channel.name,
        Err(e) => {
            tracing::debug!(error = %e.describe(), "conversations.info failed; no room name");
            None
        }
    }
}

/// What was posted in `rooms` (each from its point on), oldest first as live events, and the
/// names of the group channels it was posted in that are not `known`, all by `deadline`. A
/// channel that cannot be read (a missing `*:history` scope, the bot removed, a rate limit
/// longer than the time left) is skipped with a warning; the link is up meanwhile.
async fn fetch_missed(
    api: &Api,
    bot: &secrecy::SecretString,
    name: &str,
    rooms: Vec<(resume::Place, u64)>,
    mut known: HashSet<String>,
    deadline: tokio::time::Instant,
) -> (Vec<(u64, Value)>, Vec<(String, Option<String>)>) {
    let mut fetched = Vec::new();
    let mut rooms = std::collections::VecDeque::from(rooms);
    // Threads found from their parents in a channel's read-back, read after the rest.
    let mut found_threads = 0;
    while let Some((place, since)) = rooms.pop_front() {
        let channel = place.channel().to_owned();
        let read = api::posted_since(api, bot, &place, since, deadline);
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(messages)) => {
                if matches!(place, resume::Place::Channel(_)) {
                    for thread in resume::threads_answered(&channel, since, &messages) {
                        if found_threads < resume::THREADS_READ
                            && !rooms.iter().any(|(p, _)| *p == thread.0)
                        {
                            found_threads += 1;
                            rooms.push_back(thread);
                        }
                    }
                }
                fetched.extend(messages.into_iter().map(|m| (channel.clone(), since, m)));
            }
            Ok(Err(ApiError::Slack(e))) if e == "thread_not_found" => {
                tracing::debug!(connection = %name, "a thread to catch up is gone");
            }
            Ok(Err(e)) => {
                tracing::warn!(connection = %name, channel = %channel, error = %e.describe(), "could not read what was posted in a Slack channel while no link listened; commands said there meanwhile are not run (the bot needs the channels:history, groups:history, im:history and mpim:history scopes)");
            }
            Err(_) => {
                tracing::warn!(connection = %name, "reading what was posted while no link listened took too long; the rest is not caught up");
                break;
            }
        }
    }
    let missed = resume::missed(fetched);
    let mut names = Vec::new();
    for (_, event) in &missed {
        let Some(channel) = event["channel"].as_str() else {
            continue;
        };
        if channel.starts_with('D') || !known.insert(channel.to_owned()) {
            continue;
        }
        let lookup = channel_name(api, bot, channel);
        match tokio::time::timeout_at(deadline, lookup).await {
            Ok(found) => names.push((channel.to_owned(), found)),
            Err(_) => break,
        }
    }
    (missed, names)
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
                self.deliver(
                    InboundMessage {
                        room_name: name,
                        ..*message
                    },
                    fx,
                );
            }
            Event::Sent { dm, part } => {
                if let Some((user, channel)) = dm {
                    self.dm_channels.insert(user, channel);
                }
                if let Some(attempt) = part {
                    self.unanswered.learn(attempt);
                }
            }
            Event::CaughtUp {
                round,
                missed,
                names,
            } => self.caught_up(round, missed, names, fx),
            Event::Updated { failed, outcome } => self.updated(failed, *outcome, fx),
        }
    }

    fn connect_failed(&mut self, _error: &ConnectionError) {
        // The renewal did not open: the old socket is gone too, and the next link may
        // have missed messages.
        self.renewing = false;
    }

    fn closed(&mut self) {
        // The position has not moved past what the catch-up under way would have found: the
        // next link's catch-up reads it again. Held live messages stay, to go after it.
        self.catching_up = None;
    }

    /// Socket Mode: since when the links listened and per channel the `ts` (ms) of the
    /// newest message handed on; the next holder reads what was posted from there on.
    /// Events API mode: nothing (Slack retries an unanswered event by itself).
    fn resume_state(&self) -> Option<Value> {
        self.socket_mode().then(|| self.position.state()).flatten()
    }

    fn resume_from(&mut self, state: Value) {
        if self.socket_mode() {
            self.position.resume_from(&state);
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

    /// A `message` event in channel C0OPS from alice.
    fn in_channel(envelope: &str, ts: &str, text: &str) -> Value {
        let mut v = dm(envelope, &format!("Ev{envelope}"), ts, text);
        v["payload"]["event"]["channel"] = json!("C0OPS");
        v["payload"]["event"]["channel_type"] = json!("channel");
        v
    }

    fn texts(fx: &Effects<Slack>) -> Vec<&str> {
        fx.messages().iter().map(|m| m.text.as_str()).collect()
    }

    #[test]
    fn the_position_follows_what_is_handed_on_and_a_new_link_catches_up_before_live_messages() {
        let (fresh, _) = opened("socket");
        assert_eq!(
            fresh.resume_state(),
            None,
            "never listened: nothing to resume"
        );
        let (mut p, _) = opened("socket");
        p.room_names.insert("C0OPS".into(), "ops".into());
        let before = now_ms();
        frame(&mut p, json!({"type": "hello"}));
        assert_eq!(p.catching_up, None, "a first link has nothing to catch up");
        let since = p.resume_state().expect("listening")["listening_since"]
            .as_u64()
            .unwrap();
        assert!(since >= before);
        // Points are the newest `ts` handed on per channel, in ms (Slack's are the wall clock).
        let t = |ms: u64| format!("{}.{:03}123", ms / 1000, ms % 1000);
        let t1 = t(since + 10);
        let t2 = t(since + 20);
        let fx = frame(&mut p, in_channel("e1", &t1, "!st2 run one"));
        assert_eq!(texts(&fx), ["!st2 run one"]);
        assert_eq!(fx.messages()[0].message_id.as_deref(), Some(t1.as_str()));
        frame(&mut p, dm("e2", "Ev2", &t2, "!st2 run two"));
        let state = p.resume_state().unwrap();
        assert_eq!(
            state["rooms"],
            json!({"C0OPS": since + 10, "D1": since + 20})
        );
        // And per thread: each one's own, where follow-ups may come.
        let thread = |c: &str, ts: &str| resume::thread_key(c, ts);
        assert_eq!(
            state["threads"],
            json!({thread("C0OPS", &t1): since + 10, thread("D1", &t2): since + 20})
        );

        // The next holder resumes from there: its first hello reads both channels back.
        let (mut next, _) = opened("socket");
        next.room_names.insert("C0OPS".into(), "ops".into());
        next.resume_from(state.clone());
        assert_eq!(
            next.resume_state(),
            Some(state.clone()),
            "kept until it moves"
        );
        let fx = frame(&mut next, json!({"type": "hello"}));
        assert!(fx.is_ready(), "replies need not wait for the catch-up");
        let round = next.catching_up.expect("a catch-up under way");
        // A live message while catching up waits for what was posted before it.
        let t4 = t(since + 40);
        let fx = frame(&mut next, in_channel("e4", &t4, "!st2 run live"));
        assert_eq!(
            fx.written_json(),
            [json!({"envelope_id": "e4"})],
            "acknowledged at once"
        );
        assert!(fx.messages().is_empty(), "held");
        // What conversations.history had, as the catch-up hands it over (newest first in;
        // `resume::missed` sorts): the one handed on before, one said meanwhile, and the
        // live one, read back too.
        let h = |ts: &str, text: &str| json!({"type": "message", "user": "UALICE", "text": text, "ts": ts, "team": "T1"});
        let t3 = t(since + 30);
        let missed = resume::missed(vec![
            ("C0OPS".into(), since + 10, h(&t4, "!st2 run live")),
            ("C0OPS".into(), since + 10, h(&t3, "!st2 run away")),
            ("C0OPS".into(), since + 10, h(&t1, "!st2 run one")),
            ("D1".into(), since + 20, h(&t2, "!st2 run two")),
        ]);
        // An older round (a link lost meanwhile) is ignored.
        let mut fx = Effects::default();
        next.event(
            Event::CaughtUp {
                round: round + 7,
                missed: missed.clone(),
                names: Vec::new(),
            },
            &mut fx,
        );
        assert!(fx.messages().is_empty());
        let mut fx = Effects::default();
        next.event(
            Event::CaughtUp {
                round,
                missed,
                names: Vec::new(),
            },
            &mut fx,
        );
        // In this process nothing was seen yet: all of them, oldest first, each with the
        // id the live event had (the shared store skips those another process ran), then
        // the held live one once.
        assert_eq!(
            texts(&fx),
            [
                "!st2 run one",
                "!st2 run two",
                "!st2 run away",
                "!st2 run live"
            ]
        );
        let ids: Vec<_> = fx
            .messages()
            .iter()
            .map(|m| m.message_id.clone().unwrap())
            .collect();
        assert_eq!(ids, [t1.clone(), t2.clone(), t3.clone(), t4.clone()]);
        let away = &fx.messages()[2];
        assert_eq!(away.room.id, "C0OPS");
        assert_eq!(away.room.kind, RoomKind::Group);
        assert_eq!(away.room_name.as_deref(), Some("ops"));
        assert_eq!(away.org.as_deref(), Some("T1"));
        assert_eq!(fx.messages()[1].room.kind, RoomKind::Direct);
        assert_eq!(next.catching_up, None);
        let moved = next.resume_state().unwrap();
        assert_eq!(
            moved["rooms"],
            json!({"C0OPS": since + 40, "D1": since + 20})
        );
        assert_eq!(
            moved["threads"],
            json!({thread("C0OPS", &t1): since + 10, thread("D1", &t2): since + 20,
                thread("C0OPS", &t3): since + 30, thread("C0OPS", &t4): since + 40})
        );

        // Slack's own refresh: the old socket works until the new one says hello, so
        // nothing was missed and nothing is read back; a refresh whose connect failed is a
        // lost link.
        frame(
            &mut next,
            json!({"type": "disconnect", "reason": "refresh_requested"}),
        );
        next.closed();
        let fx = frame(&mut next, json!({"type": "hello"}));
        assert!(fx.is_ready());
        assert_eq!(next.catching_up, None, "a refresh reads nothing back");
        frame(
            &mut next,
            json!({"type": "disconnect", "reason": "refresh_requested"}),
        );
        next.connect_failed(&ConnectionError::Timeout("connecting".into()));
        next.closed();
        frame(&mut next, json!({"type": "hello"}));
        assert!(
            next.catching_up.is_some(),
            "a failed refresh is a lost link"
        );

        // A lost link in the same process: what was handed on is not handed on again.
        next.closed();
        let fx = frame(&mut next, json!({"type": "hello"}));
        assert!(fx.is_ready());
        let round = next.catching_up.expect("caught up again");
        let mut fx = Effects::default();
        let again = resume::missed(vec![
            ("C0OPS".into(), since + 40, h(&t4, "!st2 run live")),
            (
                "C0OPS".into(),
                since + 40,
                json!({"type": "message", "subtype": "bot_message", "bot_id": "BOTHER", "text": "!st2 run bot", "ts": t(since + 41)}),
            ),
            (
                "C0OPS".into(),
                since + 40,
                json!({"type": "message", "user": BOT, "text": "result", "ts": t(since + 42)}),
            ),
            (
                "C0OPS".into(),
                since + 40,
                json!({"type": "message", "subtype": "channel_join", "user": "UALICE", "text": "joined", "ts": t(since + 43)}),
            ),
        ]);
        next.event(
            Event::CaughtUp {
                round,
                missed: again,
                names: Vec::new(),
            },
            &mut fx,
        );
        assert!(fx.messages().is_empty(), "{:?}", texts(&fx));
    }

    #[test]
    fn a_lost_link_keeps_held_messages_and_stale_or_unknown_rooms_are_not_caught_up() {
        let (mut p, _) = opened("socket");
        p.room_names.insert("C0OPS".into(), "ops".into());
        // A position whose only point is older than the catch-up window.
        let old = now_ms() - resume::MAX_CATCH_UP_MS - 60_000;
        p.resume_from(json!({"listening_since": old - 1, "rooms": {"C0OPS": old}}));
        let fx = frame(&mut p, json!({"type": "hello"}));
        assert!(fx.is_ready());
        assert_eq!(p.catching_up, None, "nothing recent to read back");
        // Unless `max_command_age_secs` reaches that far back (0: any age).
        for age in [0, resume::MAX_CATCH_UP_MS / 1000 + 120] {
            let (mut far, _) = opened("socket");
            far.settings.max_command_age_secs = age;
            far.resume_from(json!({"listening_since": old - 1, "rooms": {"C0OPS": old}}));
            frame(&mut far, json!({"type": "hello"}));
            assert!(far.catching_up.is_some(), "max_command_age_secs = {age}");
        }
        // A recent point: a catch-up starts; a live message is held, and the link is lost.
        let recent = now_ms() - 1_000;
        let (mut q, _) = opened("socket");
        q.room_names.insert("C0OPS".into(), "ops".into());
        q.resume_from(json!({"listening_since": recent - 1, "rooms": {"C0OPS": recent}}));
        frame(&mut q, json!({"type": "hello"}));
        assert!(q.catching_up.is_some());
        let ts = format!("{}.{:03}000", (recent + 5) / 1000, (recent + 5) % 1000);
        assert!(frame(&mut q, in_channel("e1", &ts, "!st2 run held"))
            .messages()
            .is_empty());
        q.closed();
        assert_eq!(q.catching_up, None);
        // The next link catches up again; its answer lets the held message go.
        frame(&mut q, json!({"type": "hello"}));
        let round = q.catching_up.expect("a new round");
        let mut fx = Effects::default();
        q.event(
            Event::CaughtUp {
                round,
                missed: Vec::new(),
                names: Vec::new(),
            },
            &mut fx,
        );
        assert_eq!(texts(&fx), ["!st2 run held"]);

        // Events API mode keeps no position: Slack retries by itself.
        let (mut e, _) = opened("events");
        e.resume_from(json!({"listening_since": recent, "rooms": {"C0OPS": recent}}));
        assert_eq!(e.resume_state(), None);
    }
}
