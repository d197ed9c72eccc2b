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
    wire::{self, op, Mapping},
};
use crate::{
    actors::supervisor::{ActorState, Reconnect, StatusReporter},
    backends::outbox::{Next, Outbox, Outcome},
    backends::rest::{api_error, get_json, post_json},
    backends::{Deliver, Inbound},
    domain::{
        backoff::Backoff,
        chunk::{split_message, LengthUnit},
        message::Target,
    },
};

type WsSink = Pin<Box<dyn futures_util::Sink<Message, Error = WsProtocolError>>>;

const MAX_FRAME: usize = 1 << 22;

#[derive(Debug, Clone, PartialEq)]
enum Dest {
    Channel(String),
    User(String),
}

#[derive(Debug, Clone)]
struct Outgoing {
    dest: Dest,
    reply_to: Option<String>,
    content: String,
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
    ready: bool,
    session_id: Option<String>,
    resume_url: Option<String>,
    seq: Option<u64>,
    acked: bool,
    heartbeat: Option<SpawnHandle>,
    last_error: Option<String>,
    outbox: Outbox<Outgoing>,
    dm_channels: HashMap<String, String>,
}

/// Why a connection could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DiscordSetupError {
    /// No token (validation normally catches this).
    #[error("discord connection has no token")]
    NoToken,
    /// TLS settings failed.
    #[error(transparent)]
    Tls(#[from] crate::st2::tls::TlsError),
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
        let base_tls = crate::st2::tls::client_config(settings.verify_cert, None)?;
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
            ready: false,
            session_id: None,
            resume_url: None,
            seq: None,
            acked: true,
            heartbeat: None,
            last_error: None,
            outbox,
            dm_channels: HashMap::new(),
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

    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        if self.sink.is_none() && !self.ready && self.last_error.is_some() {
            return;
        }
        tracing::warn!(connection = %self.name, error = %error, "discord connection failed; reconnecting");
        self.last_error = Some(error);
        self.ready = false;
        if let Some(mut sink) = self.sink.take() {
            sink.close();
        }
        ctx.stop();
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
        let resuming = self.session_id.is_some();
        let url = self
            .resume_url
            .clone()
            .filter(|_| resuming)
            .or_else(|| self.settings.gateway_url.clone());
        let fut = async move {
            let url = match url {
                Some(u) => u,
                None => {
                    let v = get_json(
                        client
                            .get(format!("{api}/gateway/bot"))
                            .insert_header(("Authorization", &*auth)),
                    )
                    .await?;
                    v.get("url")
                        .and_then(Value::as_str)
                        .ok_or("GET /gateway/bot returned no url")?
                        .to_owned()
                }
            };
            let (_resp, framed) = client
                .ws(wire::gateway_query(&url))
                .max_frame_size(MAX_FRAME)
                .connect()
                .await
                .map_err(|e| format!("gateway connect failed: {e}"))?;
            Ok::<_, String>(framed)
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok(framed) => {
                tracing::debug!(connection = %act.name, "discord gateway open");
                let (sink, stream) = framed.split();
                let sink: WsSink = Box::pin(sink);
                act.sink = Some(SinkWrite::new(sink, ctx));
                ctx.add_stream(stream);
                ctx.run_later(Duration::from_secs(30), |act, ctx| {
                    if act.sink.is_some() && !act.ready {
                        act.fail("no READY/RESUMED from the gateway in 30 s".into(), ctx);
                    }
                });
            }
            Err(error) => act.fail(error, ctx),
        }));
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
                let resumable = p.d.as_bool().unwrap_or(false);
                if !resumable {
                    self.session_id = None;
                    self.resume_url = None;
                    self.seq = None;
                }
                // Discord asks for a wait of 1–5 s before identifying again.
                let wait = Duration::from_millis(1000 + fastrand::u64(0..4000));
                tracing::info!(connection = %self.name, resumable, "discord session invalid; starting again");
                ctx.run_later(wait, |act, _ctx| {
                    if act.sink.is_none() {
                        return;
                    }
                    let token = act.token.expose_secret().to_owned();
                    match (&act.session_id, act.seq) {
                        (Some(session), Some(seq)) => {
                            let frame = wire::resume(&token, session, seq);
                            act.write(frame);
                        }
                        _ => act.write(wire::identify(&token)),
                    }
                });
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
            Dest::Channel(_) => None,
        };
        let api = self.api.clone();
        let auth: Rc<str> = self.auth().into();
        let fut = async move {
            let (dm, outcome) = send(&client, &api, &auth, &item, cached_dm).await;
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
    let secs = header("x-ratelimit-reset-after")?
        .trim()
        .parse::<f64>()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

async fn send(
    client: &awc::Client,
    api: &str,
    auth: &str,
    item: &Outgoing,
    cached_dm: Option<String>,
) -> (Option<String>, Outcome) {
    let channel_id = match (&item.dest, cached_dm) {
        (Dest::Channel(id), _) => id.clone(),
        (Dest::User(_), Some(channel)) => channel,
        (Dest::User(user), None) => {
            let url = format!("{api}/users/@me/channels");
            match post_json(
                client.post(&url).insert_header(("Authorization", auth)),
                &json!({"recipient_id": user}),
            )
            .await
            {
                Err(e) => return (None, Outcome::Retry(e)),
                Ok((status, headers, body)) => {
                    if let Some(outcome) = classify(status, &headers, &body) {
                        return (None, outcome);
                    }
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    match v.get("id").and_then(Value::as_str) {
                        Some(id) => id.to_owned(),
                        None => {
                            return (
                                None,
                                Outcome::Rejected("POST /users/@me/channels returned no id".into()),
                            )
                        }
                    }
                }
            }
        }
    };
    let mut body = json!({"content": item.content, "allowed_mentions": {"parse": []}});
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
        Ok((status, headers, bytes)) => {
            classify(status, &headers, &bytes).unwrap_or(Outcome::Sent {
                pause: rate_pause(&headers),
            })
        }
    };
    (
        match &item.dest {
            Dest::User(_) => Some(channel_id),
            Dest::Channel(_) => None,
        },
        outcome,
    )
}

impl Actor for DiscordConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.ready = false;
        self.sink = None;
        self.heartbeat = None;
        // A send cut off by the restart goes first again.
        self.outbox.restore();
        // From the start, so the queue's series read 0 instead of missing.
        self.outbox.report(&mut self.status);
        self.http = Some(self.client());
        ctx.run_later(self.reconnect.delay(), |act, ctx| act.connect(ctx));
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
                // 4004 authentication failed, 4010–4014 bad shard/version/intents: no resume
                // can fix those, but a new identify after the backoff may (rotated token).
                if matches!(code, 4004 | 4007 | 4009 | 4010..=4014) {
                    self.session_id = None;
                    self.seq = None;
                }
                self.fail(format!("gateway closed the websocket ({code})"), ctx);
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
        let (dest, reply_to) = match msg.target {
            Target::Room { id, thread, .. } => (Dest::Channel(id), thread),
            Target::User { id } => (Dest::User(id), None),
        };
        let limit = match self.settings.max_message_length {
            0 => MAX_MESSAGE_CHARS,
            n => n.min(MAX_MESSAGE_CHARS),
        };
        for part in split_message(&msg.text, limit, LengthUnit::Chars) {
            if part.trim().is_empty() {
                continue;
            }
            self.outbox.push(Outgoing {
                dest: dest.clone(),
                reply_to: reply_to.clone(),
                content: part,
            });
            self.outbox.report(&mut self.status);
        }
        self.pump(ctx);
    }
}
