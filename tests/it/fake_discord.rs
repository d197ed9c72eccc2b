//! A fake Discord: the parts of API v10 and the gateway the bridge uses, with the JSON
//! shapes of Discord's developer documentation, on a random loopback port in its own thread.
//!
//! REST (`Authorization: Bot <token>`, else 401 `{"message": "401: Unauthorized", "code": 0}`):
//! `GET /gateway/bot`, `GET /users/@me`, `POST /users/@me/channels {recipient_id}` (the DM
//! channel, type 1), `POST /channels/{id}/messages` (`content` over 2000 characters → 400
//! code 50035; an unknown `message_reference.message_id` → 400 code 50035; 429 with a body
//! `{"message", "retry_after", "global"}`, `Retry-After` and `X-RateLimit-*` when told to).
//! Gateway `/gateway?v=10&encoding=json`: `Hello` (op 10), heartbeats (op 1) are ACKed
//! (op 11), `Identify` (op 2) → `READY` with `session_id` and `resume_gateway_url`, `Resume`
//! (op 6) → the missed dispatches and `RESUMED`, or op 9 `d = false` for an unknown session.
//! `MESSAGE_CREATE` goes to every session (buffered while it is disconnected), without
//! `guild_id` in DMs, and with an empty `content` when the session lacks the
//! message-content intent (unless the bot is mentioned), as Discord does.

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener},
    sync::Arc,
    time::Instant,
};

use actix_web::{dev::ServerHandle, web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The bridge's bot token.
pub const BOT_TOKEN: &str = "dc-bot-token-MTA.x9";
/// Discord's message length limit.
pub const MAX_CHARS: usize = 2000;
const MESSAGE_CONTENT: u64 = 1 << 15;

pub const GUILD: &str = "800000000000000001";
pub const GENERAL: &str = "800000000000000010";
pub const BOT: &str = "800000000000000100";
pub const ALICE: &str = "800000000000000200";
pub const OTHER_BOT: &str = "800000000000000300";

enum Cmd {
    Send(Value),
    Close,
}

struct Session {
    seq: u64,
    intents: u64,
    /// Dispatches (with `s`) kept for a resume.
    buffer: Vec<Value>,
    tx: Option<mpsc::UnboundedSender<Cmd>>,
}

/// A message the server accepted.
#[derive(Clone, Debug)]
pub struct Stored {
    pub msg: Value,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    next_id: u64,
    messages: Vec<Stored>,
    dms: HashMap<String, String>,
    sessions: HashMap<String, Session>,
    identifies: usize,
    resumes: usize,
    heartbeats: usize,
    invalidate_resumes: bool,
    refuse_gateway: bool,
    mute_acks: bool,
    gateway_attempts: usize,
    rate_limit_next: u32,
    retry_after: f64,
    rate_limited_at: Vec<Instant>,
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("9{:017}", self.next_id)
    }

    fn user(id: &str) -> Value {
        let (name, bot) = match id {
            BOT => ("stormbot", true),
            OTHER_BOT => ("otherbot", true),
            _ => ("alice", false),
        };
        let mut u = json!({"id": id, "username": name, "discriminator": "0", "global_name": name, "avatar": null});
        if bot {
            u["bot"] = json!(true);
        }
        u
    }

    fn dispatch_message(&mut self, msg: &Value) {
        for s in self.sessions.values_mut() {
            let mut d = msg.clone();
            let content = d["content"].as_str().unwrap_or_default().to_owned();
            if s.intents & MESSAGE_CONTENT == 0 && !content.contains(&format!("<@{BOT}>")) {
                d["content"] = json!("");
            }
            s.seq += 1;
            let ev = json!({"op": 0, "t": "MESSAGE_CREATE", "s": s.seq, "d": d});
            s.buffer.push(ev.clone());
            if let Some(tx) = &s.tx {
                if tx.send(Cmd::Send(ev)).is_err() {
                    s.tx = None;
                }
            }
        }
    }

    fn create(
        &mut self,
        author: &str,
        channel: &str,
        content: &str,
        reference: Option<Value>,
    ) -> Value {
        let id = self.id();
        let mut msg = json!({
            "id": id, "type": if reference.is_some() { 19 } else { 0 },
            "channel_id": channel, "author": State::user(author), "content": content,
            "timestamp": chrono_now(), "edited_timestamp": null, "tts": false,
            "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": false,
        });
        if channel == GENERAL {
            msg["guild_id"] = json!(GUILD);
        }
        if let Some(r) = reference {
            msg["message_reference"] = r;
        }
        self.messages.push(Stored {
            msg: msg.clone(),
            at: Instant::now(),
        });
        self.dispatch_message(&msg);
        msg
    }
}

fn chrono_now() -> String {
    "2026-11-23T21:00:00.000000+00:00".into()
}

fn err(status: u16, code: u64, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(json!({"message": message, "code": code}))
}

fn authorised(req: &HttpRequest) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bot {BOT_TOKEN}").as_str())
}

type Shared = Arc<Mutex<State>>;

async fn gateway_bot(req: HttpRequest, addr: web::Data<SocketAddr>) -> HttpResponse {
    if !authorised(&req) {
        return err(401, 0, "401: Unauthorized");
    }
    HttpResponse::Ok().json(json!({"url": format!("ws://{}/gateway", addr.get_ref()), "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}}))
}

async fn users_me(req: HttpRequest) -> HttpResponse {
    if !authorised(&req) {
        return err(401, 0, "401: Unauthorized");
    }
    HttpResponse::Ok().json(State::user(BOT))
}

async fn open_dm(req: HttpRequest, body: web::Json<Value>, st: web::Data<Shared>) -> HttpResponse {
    if !authorised(&req) {
        return err(401, 0, "401: Unauthorized");
    }
    let Some(user) = body.get("recipient_id").and_then(Value::as_str) else {
        return err(400, 50035, "Invalid Form Body");
    };
    let mut st = st.lock();
    let id = match st.dms.get(user) {
        Some(id) => id.clone(),
        None => {
            let id = st.id();
            st.dms.insert(user.to_owned(), id.clone());
            id
        }
    };
    HttpResponse::Ok().json(
        json!({"id": id, "type": 1, "last_message_id": null, "recipients": [State::user(user)]}),
    )
}

async fn create_message(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    st: web::Data<Shared>,
) -> HttpResponse {
    if !authorised(&req) {
        return err(401, 0, "401: Unauthorized");
    }
    let channel = path.into_inner();
    let mut st = st.lock();
    if st.rate_limit_next > 0 {
        st.rate_limit_next -= 1;
        st.rate_limited_at.push(Instant::now());
        let after = st.retry_after;
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", format!("{}", after.ceil() as u64)))
            .insert_header(("X-RateLimit-Limit", "5"))
            .insert_header(("X-RateLimit-Remaining", "0"))
            .insert_header(("X-RateLimit-Reset-After", format!("{after:.3}")))
            .insert_header(("X-RateLimit-Scope", "user"))
            .json(json!({"message": "You are being rate limited.", "retry_after": after, "global": false}));
    }
    if channel != GENERAL && !st.dms.values().any(|c| *c == channel) {
        return err(404, 10003, "Unknown Channel");
    }
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if content.is_empty() || content.chars().count() > MAX_CHARS {
        return err(400, 50035, "Invalid Form Body");
    }
    let reference = body.get("message_reference").cloned();
    if let Some(r) = &reference {
        let target = r
            .get("message_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !st
            .messages
            .iter()
            .any(|m| m.msg["id"] == target && m.msg["channel_id"] == channel.as_str())
        {
            return err(400, 50035, "Invalid Form Body");
        }
    }
    let msg = st.create(BOT, &channel, content, reference);
    HttpResponse::Ok()
        .insert_header(("X-RateLimit-Limit", "5"))
        .insert_header(("X-RateLimit-Remaining", "4"))
        .insert_header(("X-RateLimit-Reset-After", "1.000"))
        .json(msg)
}

async fn gateway(
    req: HttpRequest,
    body: web::Payload,
    st: web::Data<Shared>,
    addr: web::Data<SocketAddr>,
) -> Result<HttpResponse, actix_web::Error> {
    {
        let mut st = st.lock();
        st.gateway_attempts += 1;
        if st.refuse_gateway {
            return Ok(err(503, 0, "503: Service Unavailable"));
        }
    }
    let (resp, mut session, mut stream) = actix_ws::handle(&req, body)?;
    let st = st.get_ref().clone();
    let addr = *addr.get_ref();
    actix_rt::spawn(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
        let mut my_session: Option<String> = None;
        if session
            .text(
                json!({"op": 10, "d": {"heartbeat_interval": 1000}, "s": null, "t": null})
                    .to_string(),
            )
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(actix_ws::Message::Text(text))) => {
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let d = v.get("d").cloned().unwrap_or(Value::Null);
                        let out: Vec<Value> = match v.get("op").and_then(Value::as_u64) {
                            Some(1) => {
                                let mut s = st.lock();
                                s.heartbeats += 1;
                                if s.mute_acks {
                                    vec![]
                                } else {
                                    vec![json!({"op": 11, "d": null})]
                                }
                            }
                            Some(2) if d["token"] == BOT_TOKEN => {
                                let mut s = st.lock();
                                s.identifies += 1;
                                let id = format!("sess{}", s.id());
                                let intents = d["intents"].as_u64().unwrap_or(0);
                                s.sessions.insert(id.clone(), Session { seq: 1, intents, buffer: vec![], tx: Some(tx.clone()) });
                                my_session = Some(id.clone());
                                vec![json!({"op": 0, "t": "READY", "s": 1, "d": {"v": 10, "user": State::user(BOT),
                                    "guilds": [{"id": GUILD, "unavailable": true}], "session_id": id,
                                    "resume_gateway_url": format!("ws://{addr}/gateway"), "application": {"id": BOT, "flags": 0}}})]
                            }
                            Some(6) => {
                                let mut s = st.lock();
                                let id = d["session_id"].as_str().unwrap_or_default().to_owned();
                                let seq = d["seq"].as_u64().unwrap_or(0);
                                let invalidate = s.invalidate_resumes || d["token"] != BOT_TOKEN;
                                match s.sessions.get_mut(&id).filter(|_| !invalidate) {
                                    Some(sess) => {
                                        sess.tx = Some(tx.clone());
                                        let mut out: Vec<Value> = sess.buffer.iter().filter(|e| e["s"].as_u64().unwrap_or(0) > seq).cloned().collect();
                                        sess.seq += 1;
                                        out.push(json!({"op": 0, "t": "RESUMED", "s": sess.seq, "d": null}));
                                        s.resumes += 1;
                                        my_session = Some(id);
                                        out
                                    }
                                    None => {
                                        s.sessions.remove(&id);
                                        vec![json!({"op": 9, "d": false})]
                                    }
                                }
                            }
                            _ => {
                                // Not authenticated / bad payload: Discord closes with 4004/4002.
                                let _ = session.close(Some(actix_ws::CloseReason { code: actix_ws::CloseCode::Other(4004), description: Some("Authentication failed.".into()) })).await;
                                return;
                            }
                        };
                        for o in out {
                            if session.text(o.to_string()).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Ok(actix_ws::Message::Ping(b))) => {
                        if session.pong(&b).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Send(v)) => {
                        if session.text(v.to_string()).await.is_err() {
                            break;
                        }
                    }
                    Some(Cmd::Close) | None => break,
                },
            }
        }
        if let Some(id) = my_session {
            if let Some(s) = st.lock().sessions.get_mut(&id) {
                s.tx = None;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(resp)
}

/// The running fake.
pub struct FakeDiscord {
    addr: SocketAddr,
    state: Shared,
    handle: ServerHandle,
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(State {
            retry_after: 1.0,
            ..State::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake discord");
        let addr = listener.local_addr().expect("fake discord addr");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let data = web::Data::new(state.clone());
        let addr_data = web::Data::new(addr);
        std::thread::Builder::new()
            .name("fake-discord".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(addr_data.clone())
                            .app_data(web::JsonConfig::default().limit(1 << 20))
                            .route("/api/v10/gateway/bot", web::get().to(gateway_bot))
                            .route("/api/v10/users/@me", web::get().to(users_me))
                            .route("/api/v10/users/@me/channels", web::post().to(open_dm))
                            .route(
                                "/api/v10/channels/{id}/messages",
                                web::post().to(create_message),
                            )
                            .route("/gateway", web::get().to(gateway))
                            .route("/gateway/", web::get().to(gateway))
                            .default_service(web::to(|| async { err(404, 0, "404: Not Found") }))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("fake discord listens")
                    .run();
                    let _ = ready_tx.send(server.handle());
                    let _ = server.await;
                });
            })
            .expect("fake discord thread");
        let handle = ready_rx.recv().expect("fake discord started");
        FakeDiscord {
            addr,
            state,
            handle,
        }
    }

    /// The `[[chat]]` table for the bridge (gateway from `GET /gateway/bot`).
    pub fn chat_toml(&self, extra: &str) -> String {
        format!(
            "[[chat]]\nname = \"dc\"\nbackend = \"discord\"\napi_url = \"http://{}/api/v10\"\ntoken = \"{BOT_TOKEN}\"\nsend_interval_ms = 10\n{extra}\n",
            self.addr
        )
    }

    /// A user (or bot) writes in a channel; returns the message id.
    pub fn post_as(&self, author: &str, channel: &str, content: &str) -> String {
        let msg = self.state.lock().create(author, channel, content, None);
        msg["id"].as_str().unwrap_or_default().to_owned()
    }

    /// The DM channel between the bot and `user` (opened as a client would).
    pub fn dm_channel(&self, user: &str) -> String {
        let mut st = self.state.lock();
        if let Some(id) = st.dms.get(user) {
            return id.clone();
        }
        let id = st.id();
        st.dms.insert(user.to_owned(), id.clone());
        id
    }

    /// The bot's messages in `channel` containing `needle`.
    pub fn bot_messages(&self, channel: &str, needle: &str) -> Vec<Stored> {
        self.state
            .lock()
            .messages
            .iter()
            .filter(|m| {
                m.msg["author"]["id"] == BOT
                    && m.msg["channel_id"] == channel
                    && m.msg["content"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(needle)
            })
            .cloned()
            .collect()
    }

    pub fn rate_limit_next(&self, n: u32, retry_after: f64) {
        let mut st = self.state.lock();
        st.rate_limit_next = n;
        st.retry_after = retry_after;
    }

    pub fn rate_limited_at(&self) -> Vec<Instant> {
        self.state.lock().rate_limited_at.clone()
    }

    /// Closes every gateway connection (sessions stay resumable).
    pub fn drop_gateways(&self) {
        for s in self.state.lock().sessions.values_mut() {
            if let Some(tx) = s.tx.take() {
                let _ = tx.send(Cmd::Close);
            }
        }
    }

    /// Answers every later resume with op 9 `d = false`.
    pub fn invalidate_resumes(&self, on: bool) {
        self.state.lock().invalidate_resumes = on;
    }

    /// Stops (or resumes) ACKing heartbeats: a zombied connection.
    pub fn mute_acks(&self, on: bool) {
        self.state.lock().mute_acks = on;
    }

    /// Sends op 7 (Reconnect) on every open gateway connection.
    pub fn ask_reconnect(&self) {
        for s in self.state.lock().sessions.values() {
            if let Some(tx) = &s.tx {
                let _ = tx.send(Cmd::Send(json!({"op": 7, "d": null})));
            }
        }
    }

    /// Refuses (503) gateway connections while `on`.
    pub fn refuse_gateway(&self, on: bool) {
        self.state.lock().refuse_gateway = on;
    }

    pub fn gateway_attempts(&self) -> usize {
        self.state.lock().gateway_attempts
    }

    pub fn connected(&self) -> usize {
        self.state
            .lock()
            .sessions
            .values()
            .filter(|s| s.tx.is_some())
            .count()
    }

    pub fn identifies(&self) -> usize {
        self.state.lock().identifies
    }

    pub fn resumes(&self) -> usize {
        self.state.lock().resumes
    }

    pub fn heartbeats(&self) -> usize {
        self.state.lock().heartbeats
    }

    /// The intents of the newest session.
    pub fn intents(&self) -> Vec<u64> {
        self.state
            .lock()
            .sessions
            .values()
            .map(|s| s.intents)
            .collect()
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.drop_gateways();
        drop(self.handle.stop(false));
    }
}
