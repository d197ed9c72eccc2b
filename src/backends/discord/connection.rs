//! The Discord connection actor: gateway websocket for events, REST for messages.

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
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::{
    config::{DiscordSettings, MAX_MESSAGE_CHARS},
    wire::{self, op, AfterClose, Mapping},
};
use crate::{
    actors::messages::{Deliver, Inbound},
    actors::status::{ActorState, Reconnect, StatusReporter},
    backends::connection::outbox::{Dest, Next, Outbox, Outcome},
    backends::connection::ConnectionError,
    backends::rest::{api_error, post_json},
    domain::{
        backoff::Backoff,
        chunk::{split_message, LengthUnit},
    },
};

/// Answer buttons (message components out, `INTERACTION_CREATE` in).
#[path = "interactive.rs"]
mod interactive;

type WsSink = Pin<Box<dyn futures_util::Sink<Message, Error = WsProtocolError>>>;

const MAX_FRAME: usize = 1 << 22;

#[derive(Debug, Clone)]
struct Outgoing {
    dest: Dest,
    reply_to: Option<String>,
    content: String,
    /// Message components (answer buttons), when the message has any.
    components: Option<Value>,
    /// Sent with `enforce_nonce`, so a send that is tried again after its answer was lost
    /// (a timeout, a restart mid-request) returns the message Discord already made instead
    /// of posting it twice (Create Message, `nonce` and `enforce_nonce`:
    /// https://discord.com/developers/docs/resources/message#create-message).
    nonce: String,
}

impl Outgoing {
    /// A message for `dest`, with a fresh nonce: Discord takes up to 25 characters; 20
    /// random alphanumerics never repeat in the few minutes Discord remembers them.
    fn new(
        dest: Dest,
        reply_to: Option<String>,
        content: String,
        components: Option<Value>,
    ) -> Self {
        Outgoing {
            dest,
            reply_to,
            content,
            components,
            nonce: (0..20).map(|_| fastrand::alphanumeric()).collect(),
        }
    }
}

/// The Discord connection.
pub struct DiscordConnection {
    name: String,
    settings: DiscordSettings,
    token: SecretString,
    api: Rc<str>,
    tls: Arc<rustls::ClientConfig>,
    dispatcher: Recipient<Inbound>,
    status: StatusReporter,
    /// When to connect again after a failure.
    reconnect: Reconnect,
    http: Option<awc::Client>,
    bot_id: Option<String>,
    sink: Option<SinkWrite<Message, WsSink>>,
    /// The gateway's read half, cancelled when the connection stops for good.
    stream: Option<SpawnHandle>,
    ready: bool,
    /// The URL from `GET /gateway/bot`, kept for reconnects until a connection to it fails.
    gateway_url: Option<String>,
    session_id: Option<String>,
    resume_url: Option<String>,
    /// Connections to `resume_url` that failed in a row.
    resume_failures: u32,
    seq: Option<u64>,
    acked: bool,
    heartbeat: Option<SpawnHandle>,
    last_error: Option<String>,
    /// After an op 9 that cannot be resumed, no identify before this (Discord: 1–5 s).
    identify_at: Option<Instant>,
    /// Why the connection stopped for good (a close code Discord says not to reconnect
    /// after, or a refused token): it no longer connects nor sends.
    halted: Option<String>,
    outbox: Outbox<Outgoing>,
    dm_channels: HashMap<String, String>,
    interactive: interactive::Interactions,
}

/// Why a connection could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DiscordSetupError {
    /// No token (validation normally catches this).
    #[error("discord connection has no token")]
    NoToken,
    /// TLS settings failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl DiscordConnection {
    /// A connection named `name`; it connects when started.
    pub fn new(
        name: String,
        settings: DiscordSettings,
        dispatcher: Recipient<Inbound>,
        status: StatusReporter,
        backoff: Backoff,
    ) -> Result<Self, DiscordSetupError> {
        let token = settings.token.clone().ok_or(DiscordSetupError::NoToken)?;
        let base_tls = crate::tls::client_config(settings.verify_cert, None)?;
        let mut tls = (*base_tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let outbox = Outbox::new(
            name.clone(),
            "discord",
            settings.queue_size,
            Duration::from_millis(settings.send_interval_ms),
        );
        Ok(Self {
            name,
            api: settings.api_url.trim().trim_end_matches('/').into(),
            settings,
            token,
            tls: Arc::new(tls),
            dispatcher,
            reconnect: Reconnect::new(status.name(), backoff),
            status,
            http: None,
            bot_id: None,
            sink: None,
            stream: None,
            ready: false,
            gateway_url: None,
            session_id: None,
            resume_url: None,
            resume_failures: 0,
            seq: None,
            acked: true,
            heartbeat: None,
            last_error: None,
            identify_at: None,
            halted: None,
            outbox,
            dm_channels: HashMap::new(),
            interactive: Default::default(),
        })
    }

    fn client(&self) -> awc::Client {
        crate::backends::rest::http_client(
            self.tls.clone(),
            concat!(
                "DiscordBot (https://github.com/stormbridge, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ),
        )
    }

    /// Drops the connection and reconnects after the backoff (the actor restarts).
    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.halted.is_some() {
            return;
        }
        if self.sink.is_none() && !self.ready && self.last_error.is_some() {
            return;
        }
        tracing::warn!(connection = %self.name, error = %error, "discord connection failed; reconnecting");
        self.last_error = Some(error);
        self.ready = false;
        // The connection is dropped without a close frame: Discord ends the session only on
        // a close with 1000 or 1001, so the next connection can resume it.
        if let Some(mut sink) = self.sink.take() {
            sink.close();
        }
        ctx.stop();
    }

    /// Stops for good: Discord says not to reconnect after this (wrong token, intents,
    /// shard or version), and each retry would cost one of the day's identifies. Messages
    /// stay queued; the operator fixes the configuration and restarts the bridge.
    fn halt(&mut self, error: String, ctx: &mut Context<Self>) {
        tracing::error!(connection = %self.name, error = %error, "discord connection stopped; not reconnecting until the bridge is restarted");
        self.halted = Some(error.clone());
        self.ready = false;
        self.forget_session();
        if let Some(h) = self.heartbeat.take() {
            ctx.cancel_future(h);
        }
        if let Some(h) = self.stream.take() {
            ctx.cancel_future(h);
        }
        if let Some(mut sink) = self.sink.take() {
            sink.close();
        }
        self.status.state(ActorState::Down, Some(error.clone()));
        self.last_error = Some(error);
    }

    /// The next connection identifies instead of resuming, at the URL from
    /// `GET /gateway/bot` rather than `resume_gateway_url`.
    fn forget_session(&mut self) {
        self.session_id = None;
        self.resume_url = None;
        self.seq = None;
        self.resume_failures = 0;
    }

    fn auth(&self) -> String {
        format!("Bot {}", self.token.expose_secret())
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(client) = self.http.clone() else {
            return;
        };
        let api = self.api.clone();
        let auth: Rc<str> = self.auth().into();
        // A resume goes to `resume_gateway_url`; a new session to the URL from
        // `GET /gateway/bot`, asked once and kept (or the configured one).
        let resume_url = self
            .resume_url
            .clone()
            .filter(|_| self.session_id.is_some());
        let known = resume_url.clone().or_else(|| {
            self.settings
                .gateway_url
                .clone()
                .or_else(|| self.gateway_url.clone())
        });
        let fut = async move {
            let (url, fetched) = match known {
                Some(u) => (u, false),
                None => (gateway_bot_url(&client, &api, &auth).await?, true),
            };
            let connected = client
                .ws(wire::gateway_query(&url))
                .max_frame_size(MAX_FRAME)
                .connect()
                .await
                .map(|(_resp, framed)| framed)
                .map_err(|e| format!("gateway connect failed: {e}"));
            Ok::<_, ConnectError>((url, fetched, connected))
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok((url, fetched, Err(error))) => {
                        // Discord resumes only on `resume_gateway_url` ("should now only be used
                        // during the connection" of the initial gateway URL: change log,
                        // Session-specific Gateway Resume URLs). After a few failed tries the
                        // session is let go: a fresh identify on the gateway URL brings a new
                        // resume URL. A cached gateway URL that fails is asked again.
                        if resume_url.as_deref() == Some(url.as_str()) {
                            act.resume_failures += 1;
                            if act.resume_failures >= MAX_RESUME_FAILURES {
                                tracing::info!(connection = %act.name, "the session's resume URL stays unreachable; identifying anew");
                                act.forget_session();
                            }
                        } else if !fetched {
                            act.gateway_url = None;
                        }
                        act.fail(error, ctx);
                    }
                    Ok((url, fetched, Ok(framed))) => {
                        tracing::debug!(connection = %act.name, "discord gateway open");
                        if fetched {
                            act.gateway_url = Some(url);
                        }
                        let (sink, stream) = framed.split();
                        let sink: WsSink = Box::pin(sink);
                        act.sink = Some(SinkWrite::new(sink, ctx));
                        act.stream = Some(ctx.add_stream(stream));
                        ctx.run_later(Duration::from_secs(30), |act, ctx| {
                            if act.sink.is_some() && !act.ready {
                                act.fail("no READY/RESUMED from the gateway in 30 s".into(), ctx);
                            }
                        });
                    }
                    // Discord: a refused token is not retried (each try counts towards the
                    // invalid-request limit); the README promises `down`.
                    Err(ConnectError::Unauthorized(error)) => {
                        act.halt(format!("the API refused the bot token ({error})"), ctx)
                    }
                    Err(ConnectError::Other(error)) => act.fail(error, ctx),
                }),
        );
    }

    fn write(&mut self, text: String) {
        if let Some(sink) = self.sink.as_mut() {
            if sink.write(Message::Text(text.into())).is_err() {
                tracing::debug!(connection = %self.name, "websocket sink closed");
            }
        }
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        if !self.acked {
            self.fail("no heartbeat ACK since the last heartbeat".into(), ctx);
            return;
        }
        self.acked = false;
        self.write(wire::heartbeat(self.seq));
    }

    fn handle_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let Some(p) = wire::parse(text) else {
            tracing::debug!(connection = %self.name, "ignored an unrecognised gateway frame");
            return;
        };
        if let Some(s) = p.s {
            self.seq = Some(s);
        }
        match p.op {
            op::HELLO => {
                let interval =
                    p.d.get("heartbeat_interval")
                        .and_then(Value::as_u64)
                        .unwrap_or(41_250)
                        .max(100);
                let interval = Duration::from_millis(interval);
                self.acked = true;
                if let Some(h) = self.heartbeat.take() {
                    ctx.cancel_future(h);
                }
                let first = interval.mul_f64(fastrand::f64());
                ctx.run_later(first, move |act, ctx| {
                    if act.sink.is_none() {
                        return;
                    }
                    act.beat(ctx);
                    act.heartbeat = Some(ctx.run_interval(interval, |act, ctx| act.beat(ctx)));
                });
                let token = self.token.expose_secret().to_owned();
                match (&self.session_id, self.seq) {
                    (Some(session), Some(seq)) => {
                        tracing::debug!(connection = %self.name, seq, "resuming the discord session");
                        let frame = wire::resume(&token, session, seq);
                        self.write(frame);
                    }
                    _ => self.write(wire::identify(&token)),
                }
            }
            op::HEARTBEAT => self.write(wire::heartbeat(self.seq)),
            op::HEARTBEAT_ACK => self.acked = true,
            op::RECONNECT => self.fail("gateway asked to reconnect".into(), ctx),
            op::INVALID_SESSION => {
                // `d` says whether the session can be resumed. Either way Discord wants a
                // new connection: resumable → `resume_gateway_url` and Resume; otherwise
                // the gateway URL and a fresh Identify, not before a random 1–5 s.
                let resumable = p.d.as_bool().unwrap_or(false);
                tracing::info!(connection = %self.name, resumable, "discord session invalid; connecting again");
                if !resumable {
                    self.forget_session();
                    let wait = Duration::from_millis(1000 + fastrand::u64(0..4000));
                    self.identify_at = Some(Instant::now() + wait);
                }
                self.fail(
                    format!("gateway invalidated the session (op 9, resumable: {resumable})"),
                    ctx,
                );
            }
            op::DISPATCH => match p.t.as_deref() {
                Some("READY") => {
                    self.session_id =
                        p.d.get("session_id")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                    self.resume_url =
                        p.d.get("resume_gateway_url")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                    self.bot_id =
                        p.d.pointer("/user/id")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                    self.up(ctx);
                }
                Some("RESUMED") => self.up(ctx),
                // Replayed dispatches arrive before RESUMED: take them once a session exists.
                Some("MESSAGE_CREATE") if self.session_id.is_some() => self.handle_message(&p.d),
                Some("INTERACTION_CREATE") if self.session_id.is_some() => {
                    self.handle_interaction(&p.d, ctx)
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn up(&mut self, ctx: &mut Context<Self>) {
        self.ready = true;
        self.last_error = None;
        self.reconnect.connected();
        self.status.state(ActorState::Up, None);
        tracing::info!(connection = %self.name, queued = self.outbox.waiting(), "discord connected");
        self.pump(ctx);
    }

    fn handle_message(&mut self, d: &Value) {
        let Some(bot_id) = self.bot_id.as_deref() else {
            return;
        };
        let mapping = Mapping {
            connection: &self.name,
            bot_id,
            channels: &self.settings.channels,
        };
        match wire::message_to_inbound(d, &mapping) {
            Ok(msg) => {
                self.status.activity();
                self.dispatcher.do_send(Inbound(msg));
            }
            Err(skip) => tracing::debug!(connection = %self.name, ?skip, "ignored a message"),
        }
    }

    fn schedule_pump(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(delay, |act, ctx| act.pump(ctx));
    }

    /// Sends the next queued message unless one is in flight, the gateway is down or a rate
    /// limit is in force.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if !self.ready {
            return;
        }
        let Some(client) = self.http.clone() else {
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
        let auth: Rc<str> = self.auth().into();
        let fut = async move {
            let result = send(&client, &api, &auth, &item, cached_dm).await;
            (item, result)
        };
        ctx.spawn(fut.into_actor(self).map(|(item, result), act, ctx| {
            let (dm, outcome) = match result {
                Ok(sent) => sent,
                Err(Unauthorized(error)) => {
                    // Discord: stop making requests once the token is refused (401s count
                    // towards the invalid-request limit). The message waits with the rest.
                    act.outbox.put_back(item);
                    act.outbox.report(&mut act.status);
                    act.halt(format!("the API refused the bot token ({error})"), ctx);
                    return;
                }
            };
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

fn classify(
    status: StatusCode,
    headers: &awc::http::header::HeaderMap,
    body: &[u8],
) -> Option<Outcome> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let header = headers.get("retry-after").and_then(|v| v.to_str().ok());
        let delay = wire::retry_after(body, header).unwrap_or(Duration::from_secs(1));
        return Some(Outcome::RateLimited(delay));
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Some(Outcome::Retry(ConnectionError::Protocol(api_error(
            status, body,
        ))));
    }
    if !status.is_success() {
        return Some(Outcome::Rejected(ConnectionError::Protocol(api_error(
            status, body,
        ))));
    }
    None
}

/// A response's "rate-limit window used up" pause (`X-RateLimit-Remaining: 0`).
fn rate_pause(headers: &awc::http::header::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    wire::window_pause(
        header("x-ratelimit-remaining"),
        header("x-ratelimit-reset-after"),
    )
}

/// A 401: the token is no longer valid.
struct Unauthorized(String);

/// Connections in a row to a session's `resume_gateway_url` that may fail before the
/// session is given up for a new identify.
const MAX_RESUME_FAILURES: u32 = 3;

/// Why the gateway could not be reached.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    /// `GET /gateway/bot` answered 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Anything else; tried again with backoff.
    #[error("{0}")]
    Other(String),
}

impl From<String> for ConnectError {
    fn from(e: String) -> Self {
        ConnectError::Other(e)
    }
}

/// `GET /gateway/bot`: the URL new sessions connect to.
async fn gateway_bot_url(
    client: &awc::Client,
    api: &str,
    auth: &str,
) -> Result<String, ConnectError> {
    let mut resp = client
        .get(format!("{api}/gateway/bot"))
        .insert_header(("Authorization", auth))
        .send()
        .await
        .map_err(|e| ConnectError::Other(format!("GET /gateway/bot: {e}")))?;
    let body = resp
        .body()
        .limit(64 * 1024)
        .await
        .map_err(|e| ConnectError::Other(format!("GET /gateway/bot: {e}")))?;
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED {
        return Err(ConnectError::Unauthorized(api_error(status, &body)));
    }
    if !status.is_success() {
        return Err(ConnectError::Other(format!(
            "GET /gateway/bot: {}",
            api_error(status, &body)
        )));
    }
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("url").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| ConnectError::Other("GET /gateway/bot returned no url".into()))
}

/// Sends one message (opening the DM channel first if needed); the DM channel it used, and
/// how it went.
async fn send(
    client: &awc::Client,
    api: &str,
    auth: &str,
    item: &Outgoing,
    cached_dm: Option<String>,
) -> Result<(Option<String>, Outcome), Unauthorized> {
    let mut dm_pause = None;
    let channel_id = match (&item.dest, cached_dm) {
        (Dest::Room(id), _) => id.clone(),
        (Dest::User(_), Some(channel)) => channel,
        (Dest::User(user), None) => {
            let url = format!("{api}/users/@me/channels");
            match post_json(
                client.post(&url).insert_header(("Authorization", auth)),
                &json!({"recipient_id": user}),
            )
            .await
            {
                Err(e) => return Ok((None, Outcome::Retry(e))),
                Ok((status, headers, body)) => {
                    if status == StatusCode::UNAUTHORIZED {
                        return Err(Unauthorized(api_error(status, &body)));
                    }
                    if let Some(outcome) = classify(status, &headers, &body) {
                        return Ok((None, outcome));
                    }
                    dm_pause = rate_pause(&headers);
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    match v.get("id").and_then(Value::as_str) {
                        Some(id) => id.to_owned(),
                        None => {
                            return Ok((
                                None,
                                Outcome::Rejected(ConnectionError::Protocol(
                                    "POST /users/@me/channels returned no id".into(),
                                )),
                            ))
                        }
                    }
                }
            }
        }
    };
    let mut body = json!({"content": item.content, "allowed_mentions": {"parse": []},
                          "nonce": item.nonce, "enforce_nonce": true});
    if let Some(components) = &item.components {
        body["components"] = components.clone();
    }
    if let Some(reply) = item.reply_to.as_ref().filter(|r| !r.is_empty()) {
        body["message_reference"] =
            json!({"message_id": reply, "channel_id": channel_id, "fail_if_not_exists": false});
    }
    let url = format!("{api}/channels/{channel_id}/messages");
    let outcome = match post_json(
        client.post(&url).insert_header(("Authorization", auth)),
        &body,
    )
    .await
    {
        Err(e) => Outcome::Retry(e),
        Ok((status, _, bytes)) if status == StatusCode::UNAUTHORIZED => {
            return Err(Unauthorized(api_error(status, &bytes)));
        }
        Ok((status, headers, bytes)) => {
            classify(status, &headers, &bytes).unwrap_or(Outcome::Sent {
                pause: rate_pause(&headers).max(dm_pause),
            })
        }
    };
    Ok((
        match &item.dest {
            Dest::User(_) => Some(channel_id),
            Dest::Room(_) => None,
        },
        outcome,
    ))
}

impl Actor for DiscordConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.ready = false;
        self.sink = None;
        self.stream = None;
        self.heartbeat = None;
        if let Some(reason) = &self.halted {
            self.status.state(ActorState::Down, Some(reason.clone()));
            return;
        }
        // A send cut off by the restart goes first again.
        self.outbox.restore();
        // From the start, so the queue's series read 0 instead of missing.
        self.outbox.report(&mut self.status);
        self.http = Some(self.client());
        let backoff = self.reconnect.delay();
        let identify_wait = self
            .identify_at
            .take()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        ctx.run_later(backoff.max(identify_wait), |act, ctx| act.connect(ctx));
    }
}

impl Supervised for DiscordConnection {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.reconnect.restarting();
        self.sink = None;
        self.ready = false;
        self.status.restarted(self.last_error.take());
    }
}

impl WriteHandler<WsProtocolError> for DiscordConnection {
    fn error(&mut self, err: WsProtocolError, ctx: &mut Self::Context) -> Running {
        self.fail(format!("websocket write failed: {err}"), ctx);
        Running::Stop
    }

    /// The writer ends when the connection is dropped; stopping the actor (the default)
    /// would reconnect even after [`DiscordConnection::halt`].
    fn finished(&mut self, ctx: &mut Self::Context) {
        self.fail("gateway websocket writer closed".into(), ctx);
    }
}

impl StreamHandler<Result<Frame, WsProtocolError>> for DiscordConnection {
    fn handle(&mut self, item: Result<Frame, WsProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(Frame::Text(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.handle_text(text, ctx),
                Err(_) => tracing::debug!(connection = %self.name, "ignored a non-UTF-8 frame"),
            },
            Ok(Frame::Ping(payload)) => {
                if let Some(sink) = self.sink.as_mut() {
                    let _ = sink.write(Message::Pong(payload));
                }
            }
            Ok(Frame::Close(reason)) => {
                let code = reason.as_ref().map(|r| u16::from(r.code)).unwrap_or(0);
                let error = match wire::close_meaning(code) {
                    "" => format!("gateway closed the websocket ({code})"),
                    meaning => format!("gateway closed the websocket ({code}: {meaning})"),
                };
                match wire::after_close(code) {
                    AfterClose::Stop => return self.halt(error, ctx),
                    AfterClose::Identify => self.forget_session(),
                    AfterClose::Resume => {}
                }
                self.fail(error, ctx);
            }
            Ok(_) => {}
            Err(e) => self.fail(format!("websocket read failed: {e}"), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.fail("gateway websocket ended".into(), ctx);
    }
}

impl Handler<Deliver> for DiscordConnection {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let (dest, reply_to) = Dest::of(msg.target);
        let limit = match self.settings.max_message_length {
            0 => MAX_MESSAGE_CHARS,
            n => n.min(MAX_MESSAGE_CHARS),
        };
        for part in split_message(&msg.text, limit, LengthUnit::Chars) {
            if part.trim().is_empty() {
                continue;
            }
            self.outbox
                .push(Outgoing::new(dest.clone(), reply_to.clone(), part, None));
            self.outbox.report(&mut self.status);
        }
        self.pump(ctx);
    }
}
