//! The Mattermost connection actor: websocket for events, REST for posts.

use std::{
    collections::HashMap,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{
    io::{SinkWrite, WriteHandler},
    prelude::*,
};
use awc::{
    error::WsProtocolError,
    http::StatusCode,
    ws::{Frame, Message},
};
use bytes::Bytes;
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::{
    config::{MattermostSettings, MAX_POST_CHARS},
    wire::{self, Mapping, WsFrame},
};
use crate::{
    actors::messages::{Deliver, Inbound},
    actors::status::{ActorState, Reconnect, StatusReporter},
    backends::outbox::{Dest, Next, Outbox, Outcome},
    backends::rest::{api_error, get_json, post_json},
    domain::{
        backoff::Backoff,
        chunk::{split_message, LengthUnit},
    },
};

/// Answer buttons (interactive message buttons out, their presses in over HTTP).
#[path = "interactive.rs"]
mod interactive;

pub use interactive::{ActionRequest, ActionResponse, ACTIONS_PATH};

type WsSink = Pin<Box<dyn futures_util::Sink<Message, Error = WsProtocolError>>>;

/// Largest websocket frame accepted (a post of 16383 characters, JSON-escaped, fits).
const MAX_FRAME: usize = 1 << 20;

/// One post waiting to be sent.
#[derive(Debug, Clone)]
struct Outgoing {
    dest: Dest,
    root_id: Option<String>,
    message: String,
    props: Option<Value>,
}

/// The bot account, from `GET /users/me`.
#[derive(Debug, Clone)]
struct BotIdentity {
    id: String,
    username: String,
}

/// The Mattermost connection.
pub struct MattermostConnection {
    name: String,
    settings: MattermostSettings,
    token: SecretString,
    api: Rc<str>,
    ws_url: String,
    tls: Arc<rustls::ClientConfig>,
    dispatcher: Recipient<Inbound>,
    status: StatusReporter,
    /// When to connect again after a failure.
    reconnect: Reconnect,
    http: Option<awc::Client>,
    bot: Option<BotIdentity>,
    team_id: Option<String>,
    sink: Option<SinkWrite<Message, WsSink>>,
    authenticated: bool,
    next_action_seq: u64,
    auth_seq: u64,
    /// The server's id for our websocket connection (from `hello`), to resume it.
    connection_id: Option<String>,
    /// The `seq` the next server event must have.
    server_seq: u64,
    last_frame: Instant,
    last_error: Option<String>,
    outbox: Outbox<Outgoing>,
    dm_channels: HashMap<String, String>,
    /// Ids of the configured channels, once resolved (to rejoin after a removal).
    joined: std::collections::HashSet<String>,
    interactive: interactive::Interactions,
}

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

impl MattermostConnection {
    /// A connection named `name`; it connects when started.
    pub fn new(
        name: String,
        settings: MattermostSettings,
        dispatcher: Recipient<Inbound>,
        status: StatusReporter,
        backoff: Backoff,
    ) -> Result<Self, MattermostSetupError> {
        let (api, ws_url) = endpoints(&settings.url)
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
        let outbox = Outbox::new(
            name.clone(),
            "mattermost",
            settings.queue_size,
            Duration::from_millis(settings.send_interval_ms),
        );
        Ok(Self {
            name,
            settings,
            token,
            api: api.into(),
            ws_url,
            tls: Arc::new(tls),
            dispatcher,
            reconnect: Reconnect::new(status.name(), backoff),
            status,
            http: None,
            bot: None,
            team_id: None,
            sink: None,
            authenticated: false,
            next_action_seq: 1,
            auth_seq: 0,
            connection_id: None,
            server_seq: 0,
            last_frame: Instant::now(),
            last_error: None,
            outbox,
            dm_channels: HashMap::new(),
            joined: Default::default(),
            interactive: Default::default(),
        })
    }

    fn client(&self) -> awc::Client {
        crate::backends::rest::http_client(self.tls.clone(), crate::backends::rest::USER_AGENT)
    }

    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.sink.is_none() && !self.authenticated && self.last_error.is_some() {
            // Already failing; the restart is under way.
            return;
        }
        tracing::warn!(connection = %self.name, error = %error, "mattermost connection failed; reconnecting");
        self.last_error = Some(error);
        self.authenticated = false;
        if let Some(mut sink) = self.sink.take() {
            sink.close();
        }
        ctx.stop();
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(client) = self.http.clone() else {
            return;
        };
        let api = self.api.clone();
        // Reliable websockets: the server replays what we missed if it still can.
        let ws_url = format!(
            "{}?connection_id={}&sequence_number={}",
            self.ws_url,
            encode(self.connection_id.as_deref().unwrap_or_default()),
            self.server_seq
        );
        let token: Rc<str> = self.token.expose_secret().into();
        let team = self
            .settings
            .team
            .clone()
            .filter(|_| self.team_id.is_none());
        let fut = async move {
            let me = get_json(client.get(format!("{api}/users/me")).bearer_auth(&*token)).await?;
            let bot = BotIdentity {
                id: str_of(&me, "id").ok_or("GET /users/me returned no id")?,
                username: str_of(&me, "username").unwrap_or_default(),
            };
            let team_id = match team {
                Some(team) => Some(resolve_team(&client, &api, &token, &team).await?),
                None => None,
            };
            let (_resp, framed) = client
                .ws(ws_url)
                .max_frame_size(MAX_FRAME)
                .connect()
                .await
                .map_err(|e| format!("websocket connect failed: {e}"))?;
            Ok::<_, String>((bot, team_id, framed))
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok((bot, team_id, framed)) => {
                tracing::debug!(connection = %act.name, bot = %bot.username, "mattermost websocket open; authenticating");
                act.bot = Some(bot);
                if team_id.is_some() {
                    act.team_id = team_id;
                }
                let (sink, stream) = framed.split();
                let sink: WsSink = Box::pin(sink);
                act.sink = Some(SinkWrite::new(sink, ctx));
                ctx.add_stream(stream);
                act.last_frame = Instant::now();
                // Action sequence numbers start at 1 on every connection.
                act.auth_seq = 1;
                act.next_action_seq = 2;
                let challenge = wire::auth_challenge(act.auth_seq, act.token.expose_secret());
                act.write(Message::Text(challenge.into()));
                let limit = Duration::from_secs(act.settings.ping_interval_secs.max(1));
                ctx.run_later(limit, move |act, ctx| {
                    if act.sink.is_some() && !act.authenticated {
                        act.fail(
                            format!("no answer to the authentication challenge in {} s", limit.as_secs()),
                            ctx,
                        );
                    }
                });
            }
            Err(error) => act.fail(error, ctx),
        }));
    }

    fn write(&mut self, msg: Message) {
        if let Some(sink) = self.sink.as_mut() {
            if sink.write(msg).is_err() {
                tracing::debug!(connection = %self.name, "websocket sink closed");
            }
        }
    }

    fn handle_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match wire::parse_frame(text) {
            Some(WsFrame::Reply {
                status,
                seq_reply,
                error,
            }) if seq_reply == self.auth_seq && !self.authenticated => {
                if status == "OK" {
                    self.authenticated = true;
                    self.last_error = None;
                    self.reconnect.connected();
                    self.status.state(ActorState::Up, None);
                    tracing::info!(connection = %self.name, queued = self.outbox.waiting(), "mattermost connected");
                    self.join(self.settings.channels.clone(), ctx);
                    self.pump(ctx);
                } else {
                    let detail = error
                        .as_ref()
                        .and_then(|e| e.get("id").or_else(|| e.get("message")))
                        .and_then(Value::as_str)
                        .unwrap_or("no detail")
                        .to_owned();
                    self.fail(format!("websocket authentication refused ({detail})"), ctx);
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
                    "posted" if self.authenticated => self.handle_posted(&data),
                    "user_removed" if self.authenticated => {
                        let bot_id = self.bot.as_ref().map(|b| b.id.clone()).unwrap_or_default();
                        if let Some(channel) = wire::removed_from(&data, &broadcast, &bot_id) {
                            if self.joined.contains(&channel) {
                                tracing::info!(connection = %self.name, channel = %channel, "removed from a configured channel; rejoining");
                                self.join(vec![channel], ctx);
                            }
                        }
                    }
                    "hello" => {
                        tracing::debug!(connection = %self.name, "mattermost hello");
                    }
                    _ => {}
                }
                if let Some((expected, got)) = gap {
                    // Events in between were lost; a fresh connection is the only resync.
                    self.connection_id = None;
                    self.server_seq = 0;
                    self.fail(
                        format!("missed websocket events (expected seq {expected}, got {got})"),
                        ctx,
                    );
                }
            }
            None => {
                tracing::debug!(connection = %self.name, "ignored an unrecognised websocket frame");
            }
        }
    }

    fn handle_posted(&mut self, data: &Value) {
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
            Ok(msg) => {
                self.status.activity();
                self.dispatcher.do_send(Inbound(msg));
            }
            Err(skip) => {
                tracing::debug!(connection = %self.name, ?skip, "ignored a post");
            }
        }
    }

    /// Joins the given channels (ids or names; names need `team`) so their posts arrive.
    fn join(&mut self, channels: Vec<String>, ctx: &mut Context<Self>) {
        let (Some(client), Some(bot)) = (self.http.clone(), self.bot.clone()) else {
            return;
        };
        if channels.is_empty() {
            return;
        }
        let api = self.api.clone();
        let token: Rc<str> = self.token.expose_secret().into();
        let team_id = self.team_id.clone();
        let name = self.name.clone();
        let fut = async move {
            let mut joined = Vec::new();
            for entry in channels {
                match join_channel(&client, &api, &token, &bot.id, team_id.as_deref(), &entry).await
                {
                    Ok(id) => {
                        tracing::debug!(connection = %name, channel = %entry, "joined channel");
                        joined.push(id);
                    }
                    Err(e) => {
                        tracing::warn!(connection = %name, channel = %entry, error = %e, "cannot join channel");
                    }
                }
            }
            joined
        };
        ctx.spawn(fut.into_actor(self).map(|joined, act, _ctx| {
            act.joined.extend(joined);
        }));
    }

    fn schedule_pump(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(delay, |act, ctx| act.pump(ctx));
    }

    /// Sends the next queued post unless one is in flight, the websocket is down or a rate
    /// limit is in force.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.authenticated {
            return;
        }
        let (Some(client), Some(bot)) = (self.http.clone(), self.bot.clone()) else {
            return;
        };
        let item = match self.outbox.next(Instant::now()) {
            Next::Send(item) => item,
            Next::Wait(delay) => return self.schedule_pump(delay, ctx),
            Next::Idle => return,
        };
        let cached_dm = match &item.dest {
            Dest::User(user) => self.dm_channels.get(user).cloned(),
            Dest::Room(_) => None,
        };
        let api = self.api.clone();
        let token: Rc<str> = self.token.expose_secret().into();
        let fut = async move {
            let (dm, outcome) = send_post(&client, &api, &token, &bot.id, &item, cached_dm).await;
            (item, dm, outcome)
        };
        ctx.spawn(fut.into_actor(self).map(|(item, dm, outcome), act, ctx| {
            if let (Dest::User(user), Some(channel)) = (&item.dest, dm) {
                act.dm_channels.insert(user.clone(), channel);
            }
            if matches!(outcome, Outcome::Sent { .. }) {
                act.status.activity();
            }
            let next = act.outbox.finish(item, outcome, Instant::now());
            act.outbox.report(&mut act.status);
            act.schedule_pump(next, ctx);
        }));
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A team's id from its name (or its id).
async fn resolve_team(
    client: &awc::Client,
    api: &str,
    token: &str,
    team: &str,
) -> Result<String, String> {
    let by_name = get_json(
        client
            .get(format!("{api}/teams/name/{}", encode(team)))
            .bearer_auth(token),
    )
    .await;
    let team_json = match by_name {
        Ok(v) => v,
        Err(by_name_err) => get_json(
            client
                .get(format!("{api}/teams/{}", encode(team)))
                .bearer_auth(token),
        )
        .await
        .map_err(|_| format!("team `{team}` not found: {by_name_err}"))?,
    };
    str_of(&team_json, "id").ok_or_else(|| format!("team `{team}` has no id"))
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// Resolves a configured channel to its id and adds the bot to it.
async fn join_channel(
    client: &awc::Client,
    api: &str,
    token: &str,
    bot_id: &str,
    team_id: Option<&str>,
    entry: &str,
) -> Result<String, String> {
    let by_id = if wire::looks_like_id(entry) {
        get_json(
            client
                .get(format!("{api}/channels/{entry}"))
                .bearer_auth(token),
        )
        .await
        .ok()
    } else {
        None
    };
    let channel = match (by_id, team_id) {
        (Some(c), _) => c,
        (None, Some(team)) => {
            get_json(
                client
                    .get(format!(
                        "{api}/teams/{team}/channels/name/{}",
                        encode(entry)
                    ))
                    .bearer_auth(token),
            )
            .await?
        }
        (None, None) => return Err("not a channel id, and channel names need `team`".into()),
    };
    let id = str_of(&channel, "id").ok_or("channel without an id")?;
    let url = format!("{api}/channels/{id}/members");
    let (status, _headers, body) = post_json(
        client.post(&url).bearer_auth(token),
        &json!({"user_id": bot_id}),
    )
    .await?;
    if status.is_success() {
        Ok(id)
    } else {
        Err(format!(
            "POST /channels/{id}/members: {}",
            api_error(status, &body)
        ))
    }
}

fn classify(
    status: StatusCode,
    headers: &awc::http::header::HeaderMap,
    body: &[u8],
) -> Option<Outcome> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let delay = wire::retry_delay(header("retry-after"), header("x-ratelimit-reset"), now_unix)
            .unwrap_or(Duration::from_secs(1));
        return Some(Outcome::RateLimited(delay));
    }
    if status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::REQUEST_TIMEOUT
    {
        return Some(Outcome::Retry(api_error(status, body)));
    }
    if !status.is_success() {
        return Some(Outcome::Rejected(api_error(status, body)));
    }
    None
}

fn rate_pause(headers: &awc::http::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-ratelimit-remaining")?.trim() != "0" {
        return None;
    }
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    wire::retry_delay(None, header("x-ratelimit-reset"), now_unix)
}

/// Posts one message; returns the direct channel opened on the way, if any.
async fn send_post(
    client: &awc::Client,
    api: &str,
    token: &str,
    bot_id: &str,
    item: &Outgoing,
    cached_dm: Option<String>,
) -> (Option<String>, Outcome) {
    let channel_id = match (&item.dest, cached_dm) {
        (Dest::Room(id), _) => id.clone(),
        (Dest::User(_), Some(channel)) => channel,
        (Dest::User(user), None) => {
            let url = format!("{api}/channels/direct");
            match post_json(client.post(&url).bearer_auth(token), &json!([bot_id, user])).await {
                Err(e) => return (None, Outcome::Retry(e)),
                Ok((status, headers, body)) => {
                    if let Some(outcome) = classify(status, &headers, &body) {
                        return (None, outcome);
                    }
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    match str_of(&v, "id") {
                        Some(id) => id,
                        None => {
                            return (
                                None,
                                Outcome::Rejected("POST /channels/direct returned no id".into()),
                            )
                        }
                    }
                }
            }
        }
    };
    let mut body = json!({"channel_id": channel_id, "message": item.message});
    if let Some(root) = item.root_id.as_ref().filter(|r| !r.is_empty()) {
        body["root_id"] = Value::String(root.clone());
    }
    if let Some(props) = &item.props {
        body["props"] = props.clone();
    }
    let outcome = match post_json(
        client.post(format!("{api}/posts")).bearer_auth(token),
        &body,
    )
    .await
    {
        Err(e) => Outcome::Retry(e),
        Ok((status, headers, bytes)) => {
            classify(status, &headers, &bytes).unwrap_or(Outcome::Sent {
                pause: rate_pause(&headers),
            })
        }
    };
    (
        match &item.dest {
            Dest::User(_) => Some(channel_id),
            Dest::Room(_) => None,
        },
        outcome,
    )
}

impl Actor for MattermostConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.authenticated = false;
        self.sink = None;
        // A send cut off by the restart goes first again.
        self.outbox.restore();
        // From the start, so the queue's series read 0 instead of missing.
        self.outbox.report(&mut self.status);
        self.http = Some(self.client());
        let ping = Duration::from_secs(self.settings.ping_interval_secs.max(1));
        ctx.run_interval(ping, move |act, ctx| {
            if act.sink.is_none() {
                return;
            }
            if act.last_frame.elapsed() > ping * 2 {
                let silent = act.last_frame.elapsed().as_secs();
                act.fail(format!("no websocket frames for {silent} s"), ctx);
            } else {
                act.write(Message::Ping(Bytes::new()));
            }
        });
        ctx.run_later(self.reconnect.delay(), |act, ctx| act.connect(ctx));
    }
}

impl Supervised for MattermostConnection {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.reconnect.restarting();
        self.sink = None;
        self.authenticated = false;
        self.status.restarted(self.last_error.take());
    }
}

impl WriteHandler<WsProtocolError> for MattermostConnection {
    fn error(&mut self, err: WsProtocolError, ctx: &mut Self::Context) -> Running {
        self.fail(format!("websocket write failed: {err}"), ctx);
        Running::Stop
    }
}

impl StreamHandler<Result<Frame, WsProtocolError>> for MattermostConnection {
    fn handle(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Self::Context) {
        self.last_frame = Instant::now();
        match item {
            Ok(Frame::Text(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.handle_text(text, ctx),
                Err(_) => {
                    tracing::debug!(connection = %self.name, "ignored a non-UTF-8 text frame")
                }
            },
            Ok(Frame::Ping(payload)) => self.write(Message::Pong(payload)),
            Ok(Frame::Close(reason)) => {
                let reason = reason
                    .map(|r| format!("{:?} {}", r.code, r.description.unwrap_or_default()))
                    .unwrap_or_default();
                self.fail(
                    format!("server closed the websocket {reason}")
                        .trim()
                        .to_owned(),
                    ctx,
                );
            }
            Ok(_) => {}
            Err(e) => self.fail(format!("websocket read failed: {e}"), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.fail("websocket ended".into(), ctx);
    }
}

impl Handler<Deliver> for MattermostConnection {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let props = wire::props_from_extra(msg.extra.as_ref());
        let (dest, root_id) = Dest::of(msg.target);
        let limit = match self.settings.max_message_length {
            0 => MAX_POST_CHARS,
            n => n.min(MAX_POST_CHARS),
        };
        let mut props = props;
        for part in split_message(&msg.text, limit, LengthUnit::Chars) {
            if part.trim().is_empty() && props.is_none() {
                continue;
            }
            self.outbox.push(Outgoing {
                dest: dest.clone(),
                root_id: root_id.clone(),
                message: part,
                props: props.take(),
            });
            self.outbox.report(&mut self.status);
        }
        self.pump(ctx);
    }
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
}
