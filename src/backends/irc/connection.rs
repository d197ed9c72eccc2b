//! The IRC connection actor.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{io::WriteHandler, prelude::*};
use irc_proto::{CapSubCommand, Command, Message, Response};
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::FramedRead;

use super::{
    codec::{Incoming, IrcLines},
    config::IrcSettings,
    inbound::{inbound, Who},
    text::{irc_eq, outbound_texts, sasl_plain_chunks},
};
use crate::{
    actors::messages::{Deliver, Inbound},
    actors::status::{ActorState, Reconnect, StatusReporter},
    backends::connection::pacing::{FloodGate, LineQueue},
    domain::{backoff::Backoff, message::Target},
};

type Writer = actix::io::FramedWrite<String, Box<dyn AsyncWrite + Unpin>, IrcLines>;
type Reader = Box<dyn AsyncRead + Unpin>;

/// Longest nick tried after collisions before giving up on appending `_`.
const MAX_NICK_LEN: usize = 30;
/// Delay before rejoining a channel we were kicked from.
const REJOIN_AFTER: Duration = Duration::from_secs(2);
/// Time allowed from connecting to the server's welcome (001).
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the outbound queue is pumped.
const PUMP_EVERY: Duration = Duration::from_millis(50);

/// One queued outbound line.
#[derive(Debug, Clone)]
struct Outbound {
    target: String,
    text: String,
}

/// The IRC connection.
pub struct IrcConnection {
    name: String,
    settings: IrcSettings,
    dispatcher: Recipient<Inbound>,
    status: StatusReporter,
    /// When to connect again after a failure.
    reconnect: Reconnect,
    tls: Option<Arc<rustls::ClientConfig>>,
    writer: Option<Writer>,
    registered: bool,
    nick: String,
    queue: LineQueue<Outbound>,
    flood: FloodGate,
    last_read: Instant,
    ping_sent: bool,
    last_error: Option<String>,
    next_message_id: u64,
}

impl IrcConnection {
    /// A connection named `name`; it connects when started.
    pub fn new(
        name: String,
        settings: IrcSettings,
        dispatcher: Recipient<Inbound>,
        backoff: Backoff,
        tls: Option<Arc<rustls::ClientConfig>>,
        status: StatusReporter,
    ) -> Self {
        let backoff = match (
            settings.reconnect_backoff_initial_ms,
            settings.reconnect_backoff_max_ms,
        ) {
            (None, None) => backoff,
            (initial, max) => {
                let initial = Duration::from_millis(initial.unwrap_or(1000));
                let max = max.map_or(initial.max(Duration::from_secs(60)), Duration::from_millis);
                Backoff::new(initial, max)
            }
        };
        let nick = settings.nick.clone();
        let queue = LineQueue::new(settings.queue_lines);
        let flood = FloodGate::new(
            settings.flood_burst,
            Duration::from_millis(settings.flood_interval_ms),
            Instant::now(),
        );
        Self {
            name,
            settings,
            dispatcher,
            reconnect: Reconnect::new(status.name(), backoff),
            status,
            tls,
            writer: None,
            registered: false,
            nick,
            queue,
            flood,
            last_read: Instant::now(),
            ping_sent: false,
            last_error: None,
            next_message_id: 1,
        }
    }

    fn fail(&mut self, error: String, ctx: &mut Context<Self>) {
        tracing::warn!(connection = %self.name, error = %error, "IRC connection lost; reconnecting");
        self.last_error = Some(error);
        self.registered = false;
        if let Some(mut w) = self.writer.take() {
            w.close();
        }
        ctx.stop();
    }

    /// Sends a protocol line now, outside flood control (registration, PONG, JOIN).
    fn send_now(&mut self, command: Command) {
        if let Some(w) = self.writer.as_mut() {
            w.write(String::from(&command));
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let host = self.settings.server.clone();
        let port = self.settings.port();
        let timeout = self.settings.connect_timeout();
        let tls = self.tls.clone();
        let fut = async move {
            let tcp = tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| format!("connecting to {host}:{port} timed out"))?
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let halves: (Reader, Box<dyn AsyncWrite + Unpin>) = match tls {
                None => {
                    let (r, w) = tcp.into_split();
                    (Box::new(r), Box::new(w))
                }
                Some(config) => {
                    let name = rustls_pki_types::ServerName::try_from(host.clone())
                        .map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
                    let stream = tokio::time::timeout(
                        timeout,
                        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                    )
                    .await
                    .map_err(|_| format!("TLS handshake with {host}:{port} timed out"))?
                    .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
                    let (r, w) = tokio::io::split(stream);
                    (Box::new(r), Box::new(w))
                }
            };
            Ok::<_, String>(halves)
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok((reader, writer)) => {
                tracing::info!(connection = %act.name, "IRC connected; registering");
                act.last_read = Instant::now();
                act.ping_sent = false;
                ctx.add_stream(FramedRead::new(reader, IrcLines::default()));
                act.writer = Some(actix::io::FramedWrite::new(
                    writer,
                    IrcLines::default(),
                    ctx,
                ));
                act.register();
                ctx.run_later(REGISTRATION_TIMEOUT, |act, ctx| {
                    if !act.registered {
                        act.fail("the server did not complete registration".into(), ctx);
                    }
                });
            }
            Err(error) => act.fail(error, ctx),
        }));
    }

    fn register(&mut self) {
        self.nick = self.settings.nick.clone();
        if self.settings.sasl_username.is_some() {
            self.send_now(Command::CAP(
                None,
                CapSubCommand::REQ,
                None,
                Some("sasl".into()),
            ));
        }
        if let Some(password) = &self.settings.password {
            let pass = Command::PASS(password.expose_secret().to_owned());
            self.send_now(pass);
        }
        self.send_now(Command::NICK(self.nick.clone()));
        let user = self
            .settings
            .username
            .clone()
            .unwrap_or_else(|| self.settings.nick.clone());
        self.send_now(Command::USER(
            user,
            "0".into(),
            self.settings.realname.clone(),
        ));
    }

    fn join_channels(&mut self) {
        for channel in self.settings.channels.clone() {
            self.send_now(Command::JOIN(channel, None, None));
        }
    }

    fn enqueue(&mut self, target: String, text: &str) {
        for text in outbound_texts(&target, &self.settings.nick, text) {
            let line = Outbound {
                target: target.clone(),
                text,
            };
            if self.queue.push(line) {
                tracing::warn!(
                    connection = %self.name,
                    dropped = self.queue.dropped(),
                    "IRC outbound queue full; dropped the oldest line"
                );
            }
        }
        if !self.registered {
            tracing::debug!(
                connection = %self.name,
                queued = self.queue.len(),
                "IRC message queued while disconnected"
            );
        }
        self.status.outbound(self.queue.len(), self.queue.dropped());
    }

    /// Sends queued lines as flood control allows: a burst, then one per interval.
    fn pump(&mut self) {
        if !self.registered {
            return;
        }
        while !self.queue.is_empty() && self.flood.try_take(Instant::now()) {
            let Some(line) = self.queue.pop() else {
                break;
            };
            self.send_now(Command::PRIVMSG(line.target, line.text));
            self.status.activity();
            self.status.outbound(self.queue.len(), self.queue.dropped());
        }
    }

    fn keepalive(&mut self, ctx: &mut Context<Self>) {
        if self.writer.is_none() {
            return;
        }
        let after = Duration::from_secs(self.settings.ping_after_secs.max(1));
        let silent = self.last_read.elapsed();
        if silent > after * 2 {
            self.fail(
                format!("no data from the server for {} s", silent.as_secs()),
                ctx,
            );
        } else if silent > after && !self.ping_sent {
            self.ping_sent = true;
            self.send_now(Command::PING("stormbridge".into(), None));
        }
    }

    fn on_message(&mut self, msg: Message, ctx: &mut Context<Self>) {
        match msg.command {
            Command::PING(server, other) => self.send_now(Command::PONG(server, other)),
            Command::Response(Response::RPL_WELCOME, ref args) => {
                if let Some(nick) = args.first() {
                    self.nick = nick.clone();
                }
                self.registered = true;
                self.reconnect.connected();
                tracing::info!(connection = %self.name, nick = %self.nick, "IRC registered");
                self.status.state(ActorState::Up, None);
                self.join_channels();
                self.pump();
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
                self.send_now(Command::NICK(self.nick.clone()));
            }
            Command::Response(Response::ERR_ERRONEOUSNICKNAME, _) if !self.registered => {
                self.fail(format!("the server refused the nick `{}`", self.nick), ctx);
            }
            Command::Response(Response::ERR_PASSWDMISMATCH, _) => {
                self.fail("the server refused the password".into(), ctx);
            }
            Command::Response(
                Response::ERR_SASLFAIL | Response::ERR_SASLTOOLONG | Response::ERR_SASLABORT,
                _,
            ) => self.fail("SASL authentication failed".into(), ctx),
            Command::Response(Response::RPL_SASLSUCCESS, _) => {
                self.send_now(Command::CAP(None, CapSubCommand::END, None, None));
            }
            Command::CAP(_, CapSubCommand::ACK, ref a, ref b) => {
                let caps = format!(
                    "{} {}",
                    a.as_deref().unwrap_or(""),
                    b.as_deref().unwrap_or("")
                );
                if caps.split_whitespace().any(|c| c == "sasl") {
                    self.send_now(Command::AUTHENTICATE("PLAIN".into()));
                }
            }
            Command::CAP(_, CapSubCommand::NAK, _, _) => {
                self.send_now(Command::CAP(None, CapSubCommand::END, None, None));
                self.fail("the server does not offer SASL".into(), ctx);
            }
            Command::AUTHENTICATE(ref data) if data == "+" => self.send_sasl_plain(),
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
                let channel = channel.clone();
                ctx.run_later(REJOIN_AFTER, move |act, _| {
                    if act.registered {
                        act.send_now(Command::JOIN(channel, None, None));
                    }
                });
            }
            Command::ERROR(ref reason) => {
                let reason = reason.clone();
                self.fail(format!("server closed the link: {reason}"), ctx);
            }
            Command::PRIVMSG(..) => {
                let who = Who {
                    connection: &self.name,
                    nick: &self.nick,
                    base_nick: &self.settings.nick,
                    ignore_nicks: &self.settings.ignore_nicks,
                };
                if let Some(mut inbound) = inbound(&who, &msg) {
                    if inbound.message_id.is_none() {
                        self.next_message_id += 1;
                        inbound.message_id = Some(format!("irc-{}", self.next_message_id));
                    }
                    self.dispatcher.do_send(Inbound(inbound));
                }
            }
            _ => {}
        }
    }

    fn send_sasl_plain(&mut self) {
        let (Some(user), Some(password)) = (
            self.settings.sasl_username.clone(),
            self.settings.sasl_password.as_ref(),
        ) else {
            return;
        };
        for chunk in sasl_plain_chunks(&user, password.expose_secret()).iter() {
            self.send_now(Command::AUTHENTICATE(chunk.clone()));
        }
    }
}

impl Actor for IrcConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.registered = false;
        // From the start, so the queue's series read 0 instead of missing.
        self.status.outbound(self.queue.len(), self.queue.dropped());
        ctx.run_interval(PUMP_EVERY, |act, _| act.pump());
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.keepalive(ctx));
        ctx.run_later(self.reconnect.delay(), |act, ctx| act.connect(ctx));
    }
}

impl Supervised for IrcConnection {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.reconnect.restarting();
        self.registered = false;
        self.writer = None;
        self.status.restarted(self.last_error.take());
    }
}

impl WriteHandler<std::io::Error> for IrcConnection {
    fn error(&mut self, err: std::io::Error, ctx: &mut Self::Context) -> Running {
        self.fail(format!("write failed: {err}"), ctx);
        Running::Stop
    }
}

impl StreamHandler<Result<Incoming, std::io::Error>> for IrcConnection {
    fn handle(&mut self, item: Result<Incoming, std::io::Error>, ctx: &mut Self::Context) {
        self.last_read = Instant::now();
        self.ping_sent = false;
        self.status.activity();
        match item {
            Ok(Incoming::Message(msg)) => self.on_message(*msg, ctx),
            Ok(Incoming::Unparsed(why)) => {
                tracing::debug!(connection = %self.name, error = %why, "skipped an IRC line");
            }
            Err(e) => self.fail(format!("read failed: {e}"), ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.fail("the server closed the connection".into(), ctx);
    }
}

impl Handler<Deliver> for IrcConnection {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _ctx: &mut Self::Context) {
        let target = match msg.target {
            Target::Room { id, .. } | Target::User { id } => id,
        };
        if target.is_empty() || target.contains([' ', ',', '\r', '\n', '\0']) {
            tracing::warn!(connection = %self.name, "not an IRC target; message dropped");
            return;
        }
        self.enqueue(target, &msg.text);
        self.pump();
    }
}
