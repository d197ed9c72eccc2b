//! Discord as a [`Platform`]: the gateway protocol (hello, heartbeats and their ACKs,
//! identify or resume, sequence numbers, op 7 and op 9, close codes) as a state machine,
//! messages over REST.

use std::{
    collections::HashMap,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use awc::ws::{Frame, Message};
use futures_util::future::LocalBoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{value::RawValue, Value};
use twilight_model::{
    application::interaction::Interaction,
    gateway::{payload::incoming as gateway_in, OpCode},
};

use super::{
    api::{Api, Outgoing, USER_AGENT},
    config::{DiscordSettings, MAX_MESSAGE_CHARS},
    interactive::Interactions,
    wire::{self, AfterClose, Mapping, Skip},
};
use crate::{
    actors::messages::Deliver,
    backends::connection::{
        outbox::Dest,
        websocket::{self, Incoming},
        ConnectionError, Effects, Link, Platform, Sending,
    },
    domain::chunk::{split_message, LengthUnit},
};

const MAX_FRAME: usize = 1 << 22;

/// Connections in a row to a session's `resume_gateway_url` that may fail before the
/// session is given up for a new identify.
pub const MAX_RESUME_FAILURES: u32 = 3;

/// Longest from an open gateway to `READY` or `RESUMED` (the connection's handshake
/// deadline).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The platform's own happenings.
pub enum Event {
    /// Time for a heartbeat of the chain started by the `n`th hello.
    Beat { interval: Duration, chain: u64 },
    /// The DM channel with a user, opened while sending.
    DirectChannel { user: String, channel: String },
}

/// What connecting learnt: the URL from `GET /gateway/bot`, when it was asked.
pub struct Hello {
    fetched_url: Option<String>,
}

/// Which URL a connection attempt used, to judge its failure.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    resuming: bool,
    cached_url: bool,
}

/// A Discord connection's gateway state.
pub struct Discord {
    pub(super) name: String,
    settings: DiscordSettings,
    token: SecretString,
    /// `Bot <token>`, made once rather than for every message.
    auth: Rc<str>,
    pub(super) api_base: Rc<str>,
    tls: Arc<rustls::ClientConfig>,
    pub(super) http: Option<awc::Client>,
    bot_id: Option<String>,
    ready: bool,
    /// The URL from `GET /gateway/bot`, kept for reconnects until a connection to it fails.
    gateway_url: Option<String>,
    session_id: Option<String>,
    resume_url: Option<String>,
    /// Connections to `resume_url` that failed in a row.
    resume_failures: u32,
    attempt: Option<Attempt>,
    seq: Option<u64>,
    acked: bool,
    /// The heartbeat chain in force (one per hello).
    beat_chain: u64,
    /// After an op 9 that cannot be resumed, no identify before this (Discord: 1–5 s).
    identify_at: Option<Instant>,
    dm_channels: HashMap<String, String>,
    pub(super) interactive: Interactions,
}

impl Discord {
    /// The platform for connection `name`.
    pub fn new(name: String, settings: DiscordSettings) -> Result<Self, DiscordSetupError> {
        let token = settings.token.clone().ok_or(DiscordSetupError::NoToken)?;
        let base_tls = crate::tls::client_config(settings.verify_cert, None)?;
        // Websockets need HTTP/1.1; never offer h2.
        let mut tls = (*base_tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            name,
            auth: format!("Bot {}", token.expose_secret()).into(),
            api_base: settings.api_url.trim().trim_end_matches('/').into(),
            settings,
            token,
            tls: Arc::new(tls),
            http: None,
            bot_id: None,
            ready: false,
            gateway_url: None,
            session_id: None,
            resume_url: None,
            resume_failures: 0,
            attempt: None,
            seq: None,
            acked: true,
            beat_chain: 0,
            identify_at: None,
            dm_channels: HashMap::new(),
            interactive: Interactions::default(),
        })
    }

    pub(super) fn client(&mut self) -> awc::Client {
        crate::backends::rest::lazy_client(&mut self.http, &self.tls, USER_AGENT)
    }

    pub(super) fn api(&mut self) -> Api {
        Api {
            client: self.client(),
            base: self.api_base.clone(),
            auth: self.auth.clone(),
        }
    }

    /// The next connection identifies instead of resuming, at the URL from
    /// `GET /gateway/bot` rather than `resume_gateway_url`.
    fn forget_session(&mut self) {
        self.session_id = None;
        self.resume_url = None;
        self.seq = None;
        self.resume_failures = 0;
    }

    /// A message's parts as queue items (the components go with the last part).
    pub(super) fn messages(
        &self,
        dest: Dest,
        reply_to: Option<String>,
        text: &str,
        components: Option<Value>,
    ) -> Vec<Outgoing> {
        let limit = match self.settings.max_message_length {
            0 => MAX_MESSAGE_CHARS,
            n => n.min(MAX_MESSAGE_CHARS),
        };
        let mut parts = split_message(text, limit, LengthUnit::Chars);
        let last = parts.pop().unwrap_or_default();
        let mut items: Vec<Outgoing> = parts
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(|part| Outgoing::new(dest.clone(), reply_to.clone(), part, None))
            .collect();
        if !last.trim().is_empty() || components.is_some() {
            items.push(Outgoing::new(dest, reply_to, last, components));
        }
        items
    }

    fn text_frame(&mut self, text: &str, fx: &mut Effects<Self>) {
        let Some(p) = wire::parse(text) else {
            tracing::debug!(connection = %self.name, "ignored an unrecognised gateway frame");
            return;
        };
        // The sequence number counts even when the dispatch's `d` is of no use.
        if let Some(s) = p.s {
            self.seq = Some(s);
        }
        match p.op {
            OpCode::Hello => {
                let Ok(hello) = p.data::<gateway_in::Hello>() else {
                    // No identify without it: the READY deadline reconnects.
                    tracing::debug!(connection = %self.name, "ignored a hello without a heartbeat interval");
                    return;
                };
                let interval = Duration::from_millis(hello.heartbeat_interval.max(100));
                self.acked = true;
                self.beat_chain += 1;
                // The first heartbeat after a random fraction of the interval (Discord's
                // jitter), then one per interval.
                let chain = self.beat_chain;
                fx.after(
                    interval.mul_f64(fastrand::f64()),
                    Event::Beat { interval, chain },
                );
                let token = self.token.expose_secret().to_owned();
                let frame = match (&self.session_id, self.seq) {
                    (Some(session), Some(seq)) => {
                        tracing::debug!(connection = %self.name, seq, "resuming the discord session");
                        wire::resume(&token, session, seq)
                    }
                    _ => wire::identify(&token),
                };
                fx.write(Message::Text(frame.into()));
            }
            OpCode::Heartbeat => fx.write(Message::Text(wire::heartbeat(self.seq).into())),
            OpCode::HeartbeatAck => self.acked = true,
            OpCode::Reconnect => fx.fail(ConnectionError::Closed(Some(
                "the gateway asked to reconnect (op 7)".into(),
            ))),
            OpCode::InvalidSession => {
                // `d` says whether the session can be resumed (anything but `true` counts as
                // no: the session is gone either way). Either way Discord wants a new
                // connection: resumable → `resume_gateway_url` and Resume; otherwise the
                // gateway URL and a fresh Identify, not before a random 1–5 s.
                let resumable = p.data::<bool>().unwrap_or(false);
                tracing::info!(connection = %self.name, resumable, "discord session invalid; connecting again");
                if !resumable {
                    self.forget_session();
                    let wait = Duration::from_millis(1000 + fastrand::u64(0..4000));
                    self.identify_at = Some(Instant::now() + wait);
                }
                fx.fail(ConnectionError::Protocol(format!(
                    "the gateway invalidated the session (op 9, resumable: {resumable})"
                )));
            }
            OpCode::Dispatch => match p.t.as_deref() {
                Some("READY") => match p.data::<wire::Ready>() {
                    Ok(ready) => {
                        self.session_id = Some(ready.session_id);
                        self.resume_url = Some(ready.resume_gateway_url);
                        self.bot_id = Some(ready.user.id.to_string());
                        self.up(fx);
                    }
                    // No session to resume or bot id to know its own messages by: the READY
                    // deadline reconnects and identifies again.
                    Err(error) => {
                        tracing::debug!(connection = %self.name, %error, "ignored a READY without session or user id")
                    }
                },
                Some("RESUMED") => self.up(fx),
                // Replayed dispatches arrive before RESUMED: take them once a session exists.
                Some("MESSAGE_CREATE") if self.session_id.is_some() => self.message(p.d, fx),
                Some("INTERACTION_CREATE") if self.session_id.is_some() => {
                    match p.data::<Interaction>() {
                        Ok(interaction) => self.interaction(&interaction, fx),
                        Err(error) => {
                            // Still acknowledged when its id and token can be read: Discord
                            // shows "interaction failed" to the presser otherwise.
                            tracing::debug!(connection = %self.name, %error, "an interaction the bridge cannot read; acknowledged and ignored");
                            if let Ok(bare) = p.data::<super::interactive::BareInteraction>() {
                                self.acknowledge(&bare, fx);
                            }
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn up(&mut self, fx: &mut Effects<Self>) {
        self.ready = true;
        self.resume_failures = 0;
        fx.ready();
    }

    /// A `MESSAGE_CREATE`'s `d`, read as a [`wire::ChatMessage`].
    fn message(&mut self, d: Option<&RawValue>, fx: &mut Effects<Self>) {
        let Some(bot_id) = self.bot_id.as_deref() else {
            return;
        };
        let mapping = Mapping {
            connection: &self.name,
            bot_id,
            channels: &self.settings.channels,
        };
        let inbound = match d {
            Some(d) => wire::message_to_inbound(d, &mapping),
            None => Err(Skip::Malformed),
        };
        match inbound {
            Ok(msg) => fx.inbound(msg),
            Err(skip) => tracing::debug!(connection = %self.name, ?skip, "ignored a message"),
        }
    }

    fn close(&mut self, code: u16, fx: &mut Effects<Self>) {
        let detail = match wire::close_meaning(code) {
            "" => format!("{code}"),
            meaning => format!("{code}: {meaning}"),
        };
        match wire::after_close(code) {
            // Discord says not to reconnect after these (wrong token, intents, shard or
            // version), and each retry would cost one of the day's identifies. Messages
            // stay queued; the operator fixes the configuration and restarts the bridge.
            AfterClose::Stop => {
                self.forget_session();
                fx.halt(ConnectionError::Fatal(format!(
                    "the gateway closed the connection ({detail})"
                )));
            }
            AfterClose::Identify => {
                self.forget_session();
                fx.fail(ConnectionError::Closed(Some(detail)));
            }
            AfterClose::Resume => fx.fail(ConnectionError::Closed(Some(detail))),
        }
    }
}

impl Platform for Discord {
    const KIND: &'static str = "discord";
    type Frame = Frame;
    type Write = Message;
    type Item = Outgoing;
    type Event = Event;
    type Hello = Hello;

    fn connect(&mut self) -> LocalBoxFuture<'static, Result<Link<Self>, ConnectionError>> {
        let api = self.api();
        // A resume goes to `resume_gateway_url`; a new session to the URL from
        // `GET /gateway/bot`, asked once and kept (or the configured one).
        let resume_url = self
            .resume_url
            .clone()
            .filter(|_| self.session_id.is_some());
        let cached = self
            .settings
            .gateway_url
            .clone()
            .or_else(|| self.gateway_url.clone());
        self.attempt = Some(Attempt {
            resuming: resume_url.is_some(),
            cached_url: resume_url.is_none() && self.gateway_url.is_some(),
        });
        let known = resume_url.or(cached);
        let identify_wait = self
            .identify_at
            .take()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        Box::pin(async move {
            if !identify_wait.is_zero() {
                tokio::time::sleep(identify_wait).await;
            }
            let (url, fetched) = match known {
                Some(url) => (url, false),
                None => (api.gateway_url().await?, true),
            };
            let socket = websocket::open(&api.client, &wire::gateway_query(&url), MAX_FRAME)
                .await
                .map_err(|e| match e {
                    ConnectionError::Network { detail, .. } => {
                        ConnectionError::network("connecting to the gateway", detail)
                    }
                    other => other,
                })?;
            Ok(Link {
                frames: socket.frames,
                sink: Some(socket.sink),
                hello: Hello {
                    fetched_url: fetched.then_some(url),
                },
            })
        })
    }

    fn connect_failed(&mut self, _error: &ConnectionError) {
        // Discord resumes only on `resume_gateway_url` ("should now only be used during the
        // connection" of the initial gateway URL: change log, Session-specific Gateway
        // Resume URLs). After a few failed tries the session is let go: a fresh identify on
        // the gateway URL brings a new resume URL. A cached gateway URL that fails is asked
        // again.
        match self.attempt.take() {
            Some(Attempt { resuming: true, .. }) => {
                self.resume_failures += 1;
                if self.resume_failures >= MAX_RESUME_FAILURES {
                    tracing::info!(connection = %self.name, "the session's resume URL stays unreachable; identifying anew");
                    self.forget_session();
                }
            }
            Some(Attempt {
                cached_url: true, ..
            }) => self.gateway_url = None,
            _ => {}
        }
    }

    fn opened(&mut self, hello: Hello, _fx: &mut Effects<Self>) {
        tracing::debug!(connection = %self.name, "discord gateway open");
        self.attempt = None;
        if let Some(url) = hello.fetched_url {
            self.gateway_url = Some(url);
        }
    }

    fn frame(&mut self, frame: Frame, fx: &mut Effects<Self>) {
        match websocket::incoming(frame, fx) {
            Incoming::Text(text) => self.text_frame(&text, fx),
            Incoming::Close(reason) => {
                let code = reason.as_ref().map(|r| u16::from(r.code)).unwrap_or(0);
                self.close(code, fx);
            }
            Incoming::Nothing => {}
        }
    }

    fn event(&mut self, event: Event, fx: &mut Effects<Self>) {
        match event {
            Event::Beat { interval, chain } if chain == self.beat_chain => {
                if !self.acked {
                    return fx.fail(ConnectionError::Protocol(
                        "no heartbeat ACK since the last heartbeat".into(),
                    ));
                }
                self.acked = false;
                fx.write(Message::Text(wire::heartbeat(self.seq).into()));
                fx.after(interval, Event::Beat { interval, chain });
            }
            Event::Beat { .. } => {}
            Event::DirectChannel { user, channel } => {
                self.dm_channels.insert(user, channel);
            }
        }
    }

    fn handshake_timeout(&self) -> Duration {
        READY_TIMEOUT
    }

    fn closed(&mut self) {
        // Dropped without a close frame: Discord ends the session only on a close with 1000
        // or 1001, so the next connection can resume it.
        self.ready = false;
    }

    /// The gateway session (id, last sequence number, resume URL) and the bot's own id
    /// (a RESUMED carries no user): another bridge process resumes it, and Discord replays
    /// the dispatches that came meanwhile.
    fn resume_state(&self) -> Option<Value> {
        Some(serde_json::json!({
            "session_id": self.session_id.as_ref()?,
            "seq": self.seq?,
            "resume_url": self.resume_url.as_ref()?,
            "bot_id": self.bot_id.as_ref()?,
        }))
    }

    fn resume_from(&mut self, state: Value) {
        let text = |key: &str| state.get(key).and_then(Value::as_str).map(str::to_owned);
        if let (Some(session), Some(seq), Some(url), Some(bot)) = (
            text("session_id"),
            state.get("seq").and_then(Value::as_u64),
            text("resume_url"),
            text("bot_id"),
        ) {
            self.session_id = Some(session);
            self.seq = Some(seq);
            self.resume_url = Some(url);
            self.bot_id = Some(bot);
        }
    }

    fn render(&mut self, delivery: Deliver) -> Vec<Outgoing> {
        let (dest, reply_to) = Dest::of(delivery.target);
        let items = self.messages(dest, reply_to, &delivery.text, None);
        match &delivery.receipt {
            // A result: its parts' nonces are the same in every bridge process.
            Some(receipt) => items
                .into_iter()
                .enumerate()
                .map(|(part, item)| item.with_stable_nonce(receipt.part_key(part)))
                .collect(),
            None => items,
        }
    }

    fn lane(&self, item: &Outgoing) -> String {
        item.dest.lane()
    }

    fn send(&mut self, item: &Outgoing) -> Sending<Self> {
        let cached_dm = match &item.dest {
            Dest::User(user) => self.dm_channels.get(user).cloned(),
            Dest::Room(_) => None,
        };
        let api = self.api();
        let item = item.clone();
        Sending::Call(Box::pin(async move {
            let (dm, outcome) = api.send(&item, cached_dm).await;
            let event = match (item.dest, dm) {
                (Dest::User(user), Some(channel)) => Some(Event::DirectChannel { user, channel }),
                _ => None,
            };
            (outcome, event)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::connection::End;

    /// A result of `text` owed under `id`, as the result tracker hands it over.
    fn result(id: &str, text: &str) -> Deliver {
        crate::actors::messages::test_support::owed_result(id, "C1", text)
    }

    #[actix_rt::test]
    async fn a_result_has_the_same_nonces_in_every_process_and_a_reply_fresh_ones() {
        let long = "x".repeat(2500);
        // Two processes (the holder that died, the one that took over) render one result.
        let (mut a, mut b) = (platform(), platform());
        let first = a.render(result("req-1", &long));
        let again = b.render(result("req-1", &long));
        assert_eq!(first.len(), 2, "split in two parts");
        let nonces = |items: &[Outgoing]| items.iter().map(|i| i.nonce.clone()).collect::<Vec<_>>();
        assert_eq!(nonces(&first), nonces(&again));
        assert_ne!(first[0].nonce, first[1].nonce);
        assert!(first.iter().all(|i| i.nonce.len() <= 25));
        // Another result, and a reply without a receipt: nonces of their own.
        let other = a.render(result("req-2", &long));
        assert_ne!(nonces(&other), nonces(&first));
        let mut reply = result("req-1", "hello");
        reply.receipt = None;
        let (r1, r2) = (a.render(reply.clone()), a.render(reply));
        assert_ne!(r1[0].nonce, r2[0].nonce);
    }

    fn platform() -> Discord {
        let settings: DiscordSettings =
            serde_json::from_value(serde_json::json!({"token": "t0k3n"})).unwrap();
        Discord::new("dc".into(), settings).unwrap()
    }

    fn text(p: &mut Discord, json: &str) -> Effects<Discord> {
        let mut fx = Effects::default();
        p.frame(Frame::Text(json.to_owned().into()), &mut fx);
        fx
    }

    #[test]
    fn another_process_resumes_the_gateway_session() {
        let mut p = platform();
        assert_eq!(p.resume_state(), None, "no session yet");
        text(&mut p, r#"{"op": 10, "d": {"heartbeat_interval": 45000}}"#);
        text(
            &mut p,
            r#"{"op": 0, "t": "READY", "s": 1, "d": {"session_id": "s1", "resume_gateway_url": "wss://resume", "user": {"id": "42"}}}"#,
        );
        text(&mut p, r#"{"op": 0, "t": "TYPING_START", "s": 7, "d": {}}"#);
        let mut next = platform();
        next.resume_from(p.resume_state().expect("a session to resume"));
        let fx = text(
            &mut next,
            r#"{"op": 10, "d": {"heartbeat_interval": 45000}}"#,
        );
        let resume = &fx.written_json()[0];
        assert_eq!(
            (resume["op"].as_u64(), resume["d"]["seq"].as_u64()),
            (Some(6), Some(7)),
            "a resume, not an identify"
        );
        assert_eq!(resume["d"]["session_id"], "s1");
        assert_eq!(next.bot_id.as_deref(), Some("42"), "knows its own messages");
        assert_eq!(next.resume_url.as_deref(), Some("wss://resume"));
    }

    #[test]
    fn hello_identifies_then_resumes_with_the_last_seq() {
        let mut p = platform();
        let fx = text(&mut p, r#"{"op": 10, "d": {"heartbeat_interval": 45000}}"#);
        assert_eq!(fx.written_json()[0]["op"], 2, "identify");
        assert!(matches!(fx.timers(), [(d, Event::Beat { .. })] if *d <= Duration::from_secs(45)));
        let fx = text(
            &mut p,
            r#"{"op": 0, "t": "READY", "s": 1, "d": {"session_id": "s1", "resume_gateway_url": "wss://resume", "user": {"id": "42"}}}"#,
        );
        assert!(fx.is_ready());
        text(&mut p, r#"{"op": 0, "t": "TYPING_START", "s": 7, "d": {}}"#);
        p.closed();
        let fx = text(&mut p, r#"{"op": 10, "d": {"heartbeat_interval": 45000}}"#);
        let resume = &fx.written_json()[0];
        assert_eq!(
            (resume["op"].as_u64(), resume["d"]["seq"].as_u64()),
            (Some(6), Some(7))
        );
        assert_eq!(resume["d"]["session_id"], "s1");
    }

    #[test]
    fn a_heartbeat_without_ack_fails_the_link_and_old_chains_stop() {
        let mut p = platform();
        text(&mut p, r#"{"op": 10, "d": {"heartbeat_interval": 1000}}"#);
        let beat = |p: &mut Discord, chain| {
            let mut fx = Effects::default();
            let interval = Duration::from_secs(1);
            p.event(Event::Beat { interval, chain }, &mut fx);
            fx
        };
        let fx = beat(&mut p, 1);
        assert_eq!(fx.written_json()[0]["op"], 1);
        assert!(fx.ending().is_none());
        let fx = beat(&mut p, 1);
        assert!(matches!(
            fx.ending(),
            Some(End::Fail(ConnectionError::Protocol(_)))
        ));
        // A second hello starts a new chain; beats of the first are ignored.
        text(&mut p, r#"{"op": 10, "d": {"heartbeat_interval": 1000}}"#);
        let fx = beat(&mut p, 1);
        assert!(fx.written().is_empty() && fx.ending().is_none());
    }

    #[test]
    fn close_codes_decide_between_resume_identify_and_stop() {
        let mut p = platform();
        text(
            &mut p,
            r#"{"op": 0, "t": "READY", "s": 1, "d": {"session_id": "s1", "resume_gateway_url": "wss://resume", "user": {"id": "42"}}}"#,
        );
        let mut fx = Effects::default();
        p.close(4000, &mut fx);
        assert!(matches!(fx.ending(), Some(End::Fail(_))));
        assert!(p.session_id.is_some(), "4000 resumes");
        let mut fx = Effects::default();
        p.close(4009, &mut fx);
        assert!(p.session_id.is_none(), "4009 identifies anew");
        let mut fx2 = Effects::default();
        p.close(4004, &mut fx2);
        assert!(matches!(
            fx2.ending(),
            Some(End::Halt(ConnectionError::Fatal(_)))
        ));
    }

    #[test]
    fn resume_url_failures_give_the_session_up_after_three() {
        let mut p = platform();
        text(
            &mut p,
            r#"{"op": 0, "t": "READY", "s": 1, "d": {"session_id": "s1", "resume_gateway_url": "wss://resume", "user": {"id": "42"}}}"#,
        );
        let err = ConnectionError::network("connecting", "refused");
        for _ in 0..MAX_RESUME_FAILURES {
            assert!(p.session_id.is_some());
            drop(p.connect());
            assert!(p.attempt.is_some_and(|a| a.resuming));
            p.connect_failed(&err);
        }
        assert!(p.session_id.is_none());
    }
}
