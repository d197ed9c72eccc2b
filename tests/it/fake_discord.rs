//! A fake Discord: the parts of API v10 and the gateway the bridge uses, with the shapes and
//! rules of Discord's developer documentation (github.com/discord/discord-api-docs), on a
//! random loopback port in its own thread.
//!
//! REST (`Authorization: Bot <token>`, else 401 `{"message": "401: Unauthorized", "code": 0}`;
//! every request's `User-Agent` is recorded): `GET /gateway/bot`, `POST /users/@me/channels
//! {recipient_id}` (the DM channel, type 1), `POST /channels/{id}/messages`: an unknown
//! channel → 404 code 10003, no `content` → 400 code 50006, over 2000 characters → 400 code
//! 50035, a `message_reference` to an unknown message → 400 code 50035 unless
//! `fail_if_not_exists` is false (then a plain message); a reply is type 19 with the
//! `referenced_message`. Each channel is a rate-limit bucket (`limit` messages per window,
//! default 5 a second): answers carry `X-RateLimit-Limit`, `-Remaining`, `-Reset`,
//! `-Reset-After` and `-Bucket`, and a send on a used-up window gets a 429 (`Retry-After`,
//! scope `user`, body `{"message", "retry_after", "global"}`); 429s can also be forced, per
//! route or global (`X-RateLimit-Global`, scope `global`, no bucket headers).
//!
//! Gateway (`/gateway/` from `GET /gateway/bot`, `resume_gateway_url` `/resume`; a `v` other
//! than 10 closes with 4012): `Hello` (op 10), heartbeats (op 1) are ACKed (op 11) and their
//! `d` recorded; `Identify` (op 2) → `READY` with `session_id` and `resume_gateway_url`, or a
//! close: 4004 bad token, 4005 second identify, 4001 no `properties`, 4013 unknown intents,
//! 4014 a privileged intent the app may not use; `Resume` (op 6) → the missed dispatches and
//! `RESUMED`, op 9 `d = false` for an unknown session, 4007 for a `seq` ahead of the
//! session's; other payloads before identifying → 4003, unknown opcodes → 4001, bad JSON →
//! 4002. A client close with 1000 or 1001 ends the session (others keep it resumable). Op 7
//! and op 9 (`d` either way) can be sent on demand.
//! `MESSAGE_CREATE` goes to every session with the intent for it (guild messages / direct
//! messages; buffered while it is disconnected), with `guild_id`, `member` and `mentions`
//! in guilds, and an empty `content` when the session lacks the message-content intent,
//! except in DMs, for the bot's own messages and when the bot is mentioned, as Discord does.
//!
//! Interactions (https://discord.com/developers/docs/interactions/receiving-and-responding):
//! [`FakeDiscord::press`] sends `INTERACTION_CREATE` (type 3 `MESSAGE_COMPONENT`, `data` with
//! the button's `custom_id` and `component_type` 2, the presser in `member.user` in the
//! guild or `user` in a DM, `token`, `message`) to every session, whatever its intents.
//! `POST /interactions/{id}/{token}/callback` needs no bot token; an unknown id or token, or
//! one more than 3 s old, gets 404 code 10062 "Unknown interaction", a second callback 400
//! code 40060. After a callback, the token (15 minutes) edits the original message
//! (`PATCH /webhooks/{application_id}/{token}/messages/@original`: for a component's
//! interaction, the message the button is on) and sends follow-ups (`POST
//! /webhooks/{application_id}/{token}`; `flags` 64 makes one ephemeral: only the presser
//! sees it, so it is recorded and not posted in the channel).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix_web::{error::InternalError, web, HttpRequest, HttpResponse, HttpResponseBuilder};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::fake_server::FakeServer;

/// The bridge's bot token.
pub const BOT_TOKEN: &str = "dc-bot-token-MTA.x9";
/// Discord's message length limit.
pub const MAX_CHARS: usize = 2000;
const GUILD_MESSAGES: u64 = 1 << 9;
const DIRECT_MESSAGES: u64 = 1 << 12;
const MESSAGE_CONTENT: u64 = 1 << 15;
/// How long Create Message remembers a nonce ("the past few minutes").
const NONCE_MEMORY: Duration = Duration::from_secs(300);
/// Every intent the documentation lists (bits 0–25).
const KNOWN_INTENTS: u64 = (1 << 26) - 1;
/// `X-RateLimit-Bucket` of the create-message route (one hash for every channel; the
/// counts are per channel, the top-level resource).
const MESSAGE_BUCKET: &str = "3f5a1c0e2b7d4a6f9e8c1b2a3d4e5f60";

pub const GUILD: &str = "800000000000000001";
pub const GENERAL: &str = "800000000000000010";
pub const BOT: &str = "800000000000000100";
pub const ALICE: &str = "800000000000000200";
pub const OTHER_BOT: &str = "800000000000000300";
const HOOK: &str = "800000000000000400";
pub const BOB: &str = "800000000000000500";
/// The bot's application id (interactions and their webhooks name it).
pub const APPLICATION: &str = "800000000000000600";

/// One interaction the fake created.
#[derive(Clone, Debug)]
pub struct Interaction {
    pub id: String,
    pub token: String,
    pub channel: String,
    /// The message the pressed button is on.
    pub message_id: String,
    pub at: Instant,
    /// The callback the bot answered with, and when.
    pub callback: Option<(Value, Instant)>,
}

/// A follow-up message sent with an interaction's token.
#[derive(Clone, Debug)]
pub struct Followup {
    pub interaction: String,
    pub body: Value,
    pub ephemeral: bool,
}

enum Cmd {
    Send(Value),
    /// Op 9 with this `d`; a non-resumable one ends the session.
    Invalidate(bool),
    Close,
}

struct Session {
    seq: u64,
    intents: u64,
    /// Dispatches (with `s`) kept for a resume.
    buffer: Vec<Value>,
    tx: Option<mpsc::UnboundedSender<Cmd>>,
}

/// A message the server accepted, as its `MESSAGE_CREATE` carries it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub msg: Value,
    pub at: Instant,
}

/// An identify or resume the gateway accepted.
#[derive(Clone, Debug)]
pub struct Handshake {
    pub at: Instant,
    /// `/gateway` or `/resume`.
    pub path: String,
}

struct Window {
    used: u32,
    resets: Instant,
}

#[derive(Default)]
struct State {
    next_id: u64,
    messages: Vec<Stored>,
    /// Create Message calls answered with an earlier message of the same nonce.
    nonce_hits: usize,
    /// Messages still to be created and then answered 502 ([`FakeDiscord::lose_answers`]).
    lost_answers: usize,
    dms: HashMap<String, String>,
    sessions: HashMap<String, Session>,
    identifies: Vec<Handshake>,
    resumes: Vec<Handshake>,
    heartbeats: Vec<Value>,
    invalid_sessions: Vec<Instant>,
    client_closes: Vec<Option<u16>>,
    gateway_queries: Vec<String>,
    gateway_bot_calls: usize,
    invalidate_resumes: bool,
    refuse_gateway: bool,
    /// Connections to the resume URL still to refuse ([`FakeDiscord::refuse_resumes`]).
    refused_resumes: usize,
    /// The path of every gateway connection attempt (`/gateway` or `/resume`), in order.
    attempt_paths: Vec<String>,
    mute_acks: bool,
    no_message_content: bool,
    gateway_attempts: usize,
    token_revoked: bool,
    user_agents: Vec<String>,
    unauthorized: usize,
    forced_429: u32,
    forced_global: bool,
    forced_retry_after: f64,
    /// The next message send opens a rate-limit window this long
    /// ([`FakeDiscord::rate_limit_window`]).
    window_armed: Option<Duration>,
    /// Every message send before this instant gets a 429.
    closed_until: Option<Instant>,
    rate_limited_at: Vec<Instant>,
    limit: u32,
    window: Duration,
    windows: HashMap<String, Window>,
    /// When each window a send used up resets.
    used_up: Vec<Instant>,
    interactions: Vec<Interaction>,
    followups: Vec<Followup>,
    /// `(message id, body)` of each edit of an original interaction message.
    edits: Vec<(String, Value)>,
}

fn user(id: &str) -> Value {
    let (name, bot) = match id {
        BOT => ("stormbot", true),
        OTHER_BOT => ("otherbot", true),
        ALICE => ("alice", false),
        BOB => ("bob", false),
        _ => ("someone", false),
    };
    let mut u = json!({"id": id, "username": name, "discriminator": "0", "global_name": name, "avatar": null});
    if bot {
        u["bot"] = json!(true);
    }
    u
}

fn member() -> Value {
    json!({"roles": [], "joined_at": "2026-01-01T00:00:00.000000+00:00", "nick": null,
        "premium_since": null, "deaf": false, "mute": false, "flags": 0, "pending": false})
}

/// The ids of `<@ID>` and `<@!ID>` mentions in `content`.
fn mentioned_ids(content: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for part in content.split("<@").skip(1) {
        let part = part.strip_prefix('!').unwrap_or(part);
        if let Some((id, _)) = part.split_once('>') {
            if !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !ids.iter().any(|i| i == id)
            {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("9{:017}", self.next_id)
    }

    /// Sends a dispatch to every session (interactions need no intent).
    fn dispatch_any(&mut self, t: &str, d: &Value) {
        for s in self.sessions.values_mut() {
            s.seq += 1;
            let ev = json!({"op": 0, "t": t, "s": s.seq, "d": d});
            s.buffer.push(ev.clone());
            if let Some(tx) = &s.tx {
                if tx.send(Cmd::Send(ev)).is_err() {
                    s.tx = None;
                }
            }
        }
    }

    fn dispatch_message(&mut self, event: &Value) {
        let guild = event.get("guild_id").is_some();
        let author = event["author"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let bot_mentioned = event["mentions"]
            .as_array()
            .is_some_and(|m| m.iter().any(|u| u["id"] == BOT));
        for s in self.sessions.values_mut() {
            let needed = if guild {
                GUILD_MESSAGES
            } else {
                DIRECT_MESSAGES
            };
            if s.intents & needed == 0 {
                continue;
            }
            let mut d = event.clone();
            let content_allowed =
                s.intents & MESSAGE_CONTENT != 0 || !guild || author == BOT || bot_mentioned;
            if !content_allowed {
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

    /// Stores and dispatches a message; returns it as the REST API does (without the
    /// `MESSAGE_CREATE` extras).
    fn create(
        &mut self,
        author: Value,
        webhook: Option<&str>,
        channel: &str,
        content: &str,
        reference: Option<&Value>,
    ) -> Value {
        let id = self.id();
        let in_guild = channel == GENERAL;
        let mentions: Vec<Value> = mentioned_ids(content)
            .iter()
            .map(|id| {
                let mut u = user(id);
                if in_guild {
                    u["member"] = member();
                }
                u
            })
            .collect();
        let mut msg = json!({
            "id": id, "type": if reference.is_some() { 19 } else { 0 },
            "channel_id": channel, "author": author, "content": content,
            "timestamp": "2026-11-23T21:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
            "mention_everyone": false, "mentions": mentions, "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": false, "flags": 0,
        });
        if let Some(hook) = webhook {
            msg["webhook_id"] = json!(hook);
        }
        if let Some(target) = reference {
            let mut r = json!({"type": 0, "message_id": target["id"], "channel_id": channel});
            if in_guild {
                r["guild_id"] = json!(GUILD);
            }
            msg["message_reference"] = r;
            let mut referenced = target.clone();
            for extra in ["guild_id", "member"] {
                if let Some(o) = referenced.as_object_mut() {
                    o.remove(extra);
                }
            }
            msg["referenced_message"] = referenced;
        }
        let mut event = msg.clone();
        if in_guild {
            event["guild_id"] = json!(GUILD);
            if webhook.is_none() {
                event["member"] = member();
            }
        }
        self.messages.push(Stored {
            msg: event.clone(),
            at: Instant::now(),
        });
        self.dispatch_message(&event);
        msg
    }
}

fn err(status: u16, code: u64, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(json!({"message": message, "code": code}))
}

/// 400 code 50035 with Discord's per-field `errors`.
fn form_error(field: &str, code: &str, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"message": "Invalid Form Body", "code": 50035,
        "errors": {field: {"_errors": [{"code": code, "message": message}]}}}))
}

type Shared = Arc<Mutex<State>>;

/// Records the request and checks its token: the 401 for a refused one.
fn refused(req: &HttpRequest, st: &mut State) -> Option<HttpResponse> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    st.user_agents.push(header("user-agent"));
    if st.token_revoked || header("authorization") != format!("Bot {BOT_TOKEN}") {
        st.unauthorized += 1;
        return Some(err(401, 0, "401: Unauthorized"));
    }
    None
}

/// Seconds rounded up to the millisecond, as the rate-limit headers give them.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).ceil() / 1000.0
}

fn bucket_headers(b: &mut HttpResponseBuilder, limit: u32, remaining: u32, reset_after: Duration) {
    let reset = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + reset_after;
    b.insert_header(("X-RateLimit-Limit", limit.to_string()))
        .insert_header(("X-RateLimit-Remaining", remaining.to_string()))
        .insert_header(("X-RateLimit-Reset", format!("{:.3}", reset.as_secs_f64())))
        .insert_header((
            "X-RateLimit-Reset-After",
            format!("{:.3}", secs(reset_after)),
        ))
        .insert_header(("X-RateLimit-Bucket", MESSAGE_BUCKET));
}

fn too_many(st: &mut State, retry_after: Duration, global: bool, limit: u32) -> HttpResponse {
    st.rate_limited_at.push(Instant::now());
    let retry = secs(retry_after);
    let mut b = HttpResponse::TooManyRequests();
    b.insert_header(("Retry-After", format!("{}", retry.ceil() as u64)));
    if global {
        b.insert_header(("X-RateLimit-Global", "true"))
            .insert_header(("X-RateLimit-Scope", "global"));
    } else {
        bucket_headers(&mut b, limit, 0, retry_after);
        b.insert_header(("X-RateLimit-Scope", "user"));
    }
    b.json(
        json!({"message": "You are being rate limited.", "retry_after": retry, "global": global}),
    )
}

async fn gateway_bot(
    req: HttpRequest,
    st: web::Data<Shared>,
    addr: web::Data<SocketAddr>,
) -> HttpResponse {
    let mut st = st.lock();
    if let Some(refused) = refused(&req, &mut st) {
        return refused;
    }
    st.gateway_bot_calls += 1;
    HttpResponse::Ok().json(json!({"url": format!("ws://{}/gateway/", addr.get_ref()), "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}}))
}

async fn open_dm(req: HttpRequest, body: web::Json<Value>, st: web::Data<Shared>) -> HttpResponse {
    let mut st = st.lock();
    if let Some(refused) = refused(&req, &mut st) {
        return refused;
    }
    let Some(recipient) = body.get("recipient_id").and_then(Value::as_str) else {
        return form_error(
            "recipient_id",
            "BASE_TYPE_REQUIRED",
            "This field is required",
        );
    };
    let id = match st.dms.get(recipient) {
        Some(id) => id.clone(),
        None => {
            let id = st.id();
            st.dms.insert(recipient.to_owned(), id.clone());
            id
        }
    };
    HttpResponse::Ok().json(
        json!({"id": id, "type": 1, "last_message_id": null, "flags": 0, "recipients": [user(recipient)]}),
    )
}

async fn create_message(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    st: web::Data<Shared>,
) -> HttpResponse {
    let mut st = st.lock();
    if let Some(refused) = refused(&req, &mut st) {
        return refused;
    }
    let channel = path.into_inner();
    if st.forced_429 > 0 {
        st.forced_429 -= 1;
        let (after, global, limit) = (st.forced_retry_after, st.forced_global, st.limit);
        return too_many(&mut st, Duration::from_secs_f64(after), global, limit);
    }
    if channel != GENERAL && !st.dms.values().any(|c| *c == channel) {
        return err(404, 10003, "Unknown Channel");
    }
    let now = Instant::now();
    if let Some(window) = st.window_armed.take() {
        st.closed_until = Some(now + window);
    }
    if let Some(left) = st.closed_until.filter(|u| *u > now).map(|u| u - now) {
        let limit = st.limit;
        return too_many(&mut st, left, false, limit);
    }
    let (limit, window) = (st.limit, st.window);
    let w = st.windows.entry(channel.clone()).or_insert(Window {
        used: 0,
        resets: now,
    });
    if now >= w.resets {
        *w = Window {
            used: 0,
            resets: now + window,
        };
    }
    if w.used >= limit {
        let left = w.resets - now;
        return too_many(&mut st, left, false, limit);
    }
    w.used += 1;
    let (remaining, resets) = (limit - w.used, w.resets);
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if content.is_empty() {
        return err(400, 50006, "Cannot send an empty message");
    }
    if content.chars().count() > MAX_CHARS {
        return form_error(
            "content",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 2000 or fewer in length.",
        );
    }
    let mut reference = None;
    if let Some(r) = body.get("message_reference") {
        let Some(target_id) = r.get("message_id").and_then(Value::as_str) else {
            return form_error(
                "message_reference",
                "BASE_TYPE_REQUIRED",
                "This field is required",
            );
        };
        let target = st
            .messages
            .iter()
            .find(|m| m.msg["id"] == target_id && m.msg["channel_id"] == channel.as_str())
            .map(|m| m.msg.clone());
        match target {
            Some(t) => reference = Some(t),
            None if r.get("fail_if_not_exists") == Some(&json!(false)) => {}
            None => {
                return form_error(
                    "message_reference",
                    "REPLIES_UNKNOWN_MESSAGE",
                    "Unknown message",
                )
            }
        }
    }
    // Create Message (https://discord.com/developers/docs/resources/message#create-message):
    // `nonce` is at most 25 characters; with `enforce_nonce`, a message the same author made
    // with the same nonce in the past few minutes is returned and no new one is created.
    let nonce = match body.get("nonce") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if n.chars().count() <= 25 => Some(n.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return form_error(
                "nonce",
                "BASE_TYPE_MAX_LENGTH",
                "Must be 25 or fewer in length.",
            )
        }
    };
    let enforce = body.get("enforce_nonce").and_then(Value::as_bool) == Some(true);
    if let (Some(n), true) = (&nonce, enforce) {
        let recent = st
            .messages
            .iter()
            .find(|m| {
                m.msg["author"]["id"] == BOT
                    && m.msg["nonce"].as_str() == Some(n.as_str())
                    && m.at.elapsed() < NONCE_MEMORY
            })
            .map(|m| m.msg.clone());
        if let Some(existing) = recent {
            st.nonce_hits += 1;
            return HttpResponse::Ok().json(existing);
        }
    }
    let mut msg = st.create(user(BOT), None, &channel, content, reference.as_ref());
    if let Some(n) = &nonce {
        msg["nonce"] = json!(n);
        if let Some(stored) = st.messages.last_mut() {
            stored.msg["nonce"] = json!(n);
        }
    }
    if let Some(components) = body.get("components") {
        msg["components"] = components.clone();
        if let Some(stored) = st.messages.last_mut() {
            stored.msg["components"] = components.clone();
        }
    }
    if remaining == 0 {
        st.used_up.push(resets);
    }
    if st.lost_answers > 0 {
        st.lost_answers -= 1;
        return HttpResponse::BadGateway().body("<html>502 Bad Gateway</html>");
    }
    let mut b = HttpResponse::Ok();
    bucket_headers(
        &mut b,
        limit,
        remaining,
        resets.saturating_duration_since(now),
    );
    b.json(msg)
}

fn close_code(code: u16, why: &str) -> Option<actix_ws::CloseReason> {
    Some(actix_ws::CloseReason {
        code: actix_ws::CloseCode::Other(code),
        description: Some(why.into()),
    })
}

/// What the gateway does with a client payload.
enum Reply {
    Send(Vec<Value>),
    Close(u16, &'static str),
}

fn identify(
    st: &Shared,
    d: &Value,
    tx: &mpsc::UnboundedSender<Cmd>,
    path: &str,
    addr: SocketAddr,
) -> (Reply, Option<String>) {
    let mut s = st.lock();
    if d["token"] != BOT_TOKEN || s.token_revoked {
        return (Reply::Close(4004, "Authentication failed."), None);
    }
    let props = &d["properties"];
    if !["os", "browser", "device"]
        .iter()
        .all(|k| props[k].is_string())
    {
        return (Reply::Close(4001, "Invalid payload."), None);
    }
    let Some(intents) = d["intents"].as_u64().filter(|i| i & !KNOWN_INTENTS == 0) else {
        return (Reply::Close(4013, "Invalid intent(s)."), None);
    };
    if s.no_message_content && intents & MESSAGE_CONTENT != 0 {
        return (Reply::Close(4014, "Disallowed intent(s)."), None);
    }
    s.identifies.push(Handshake {
        at: Instant::now(),
        path: path.to_owned(),
    });
    let id = format!("sess{}", s.id());
    let ready = json!({"op": 0, "t": "READY", "s": 1, "d": {"v": 10, "user": user(BOT),
        "guilds": [{"id": GUILD, "unavailable": true}], "session_id": id,
        "resume_gateway_url": format!("ws://{addr}/resume"), "application": {"id": BOT, "flags": 0}}});
    s.sessions.insert(
        id.clone(),
        Session {
            seq: 1,
            intents,
            buffer: vec![],
            tx: Some(tx.clone()),
        },
    );
    (Reply::Send(vec![ready]), Some(id))
}

fn resume(
    st: &Shared,
    d: &Value,
    tx: &mpsc::UnboundedSender<Cmd>,
    path: &str,
) -> (Reply, Option<String>) {
    let mut s = st.lock();
    if d["token"] != BOT_TOKEN || s.token_revoked {
        return (Reply::Close(4004, "Authentication failed."), None);
    }
    let id = d["session_id"].as_str().unwrap_or_default().to_owned();
    let seq = d["seq"].as_u64().unwrap_or(0);
    if s.invalidate_resumes {
        s.sessions.remove(&id);
    }
    let Some(sess) = s.sessions.get_mut(&id) else {
        s.invalid_sessions.push(Instant::now());
        return (
            Reply::Send(vec![json!({"op": 9, "d": false, "s": null, "t": null})]),
            None,
        );
    };
    if seq > sess.seq {
        s.sessions.remove(&id);
        return (Reply::Close(4007, "Invalid seq."), None);
    }
    sess.tx = Some(tx.clone());
    let mut out: Vec<Value> = sess
        .buffer
        .iter()
        .filter(|e| e["s"].as_u64().unwrap_or(0) > seq)
        .cloned()
        .collect();
    sess.seq += 1;
    out.push(json!({"op": 0, "t": "RESUMED", "s": sess.seq, "d": null}));
    s.resumes.push(Handshake {
        at: Instant::now(),
        path: path.to_owned(),
    });
    (Reply::Send(out), Some(id))
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
        st.gateway_queries.push(req.query_string().to_owned());
        let resume = req.path().starts_with("/resume");
        st.attempt_paths
            .push(if resume { "/resume" } else { "/gateway" }.to_owned());
        if st.refuse_gateway {
            return Ok(err(503, 0, "503: Service Unavailable"));
        }
        if resume && st.refused_resumes > 0 {
            st.refused_resumes -= 1;
            return Ok(err(503, 0, "503: Service Unavailable"));
        }
    }
    let version_ok = req.query_string().split('&').any(|kv| kv == "v=10");
    let path = if req.path().starts_with("/resume") {
        "/resume"
    } else {
        "/gateway"
    };
    let (resp, mut session, mut stream) = actix_ws::handle(&req, body)?;
    let st = st.get_ref().clone();
    let addr = *addr.get_ref();
    actix_rt::spawn(async move {
        if !version_ok {
            let _ = session
                .close(close_code(4012, "Invalid API version."))
                .await;
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
        let mut my_session: Option<String> = None;
        let hello = json!({"op": 10, "d": {"heartbeat_interval": 1000}, "s": null, "t": null});
        if session.text(hello.to_string()).await.is_err() {
            return;
        }
        let mut close = None;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(actix_ws::Message::Text(text))) => {
                        let Ok(v) = serde_json::from_str::<Value>(&text) else {
                            close = close_code(4002, "Error while decoding payload.");
                            break;
                        };
                        let d = v.get("d").cloned().unwrap_or(Value::Null);
                        let reply = match v.get("op").and_then(Value::as_u64) {
                            Some(1) => {
                                let mut s = st.lock();
                                s.heartbeats.push(d);
                                if s.mute_acks {
                                    Reply::Send(vec![])
                                } else {
                                    Reply::Send(vec![json!({"op": 11, "d": null, "s": null, "t": null})])
                                }
                            }
                            Some(2 | 6) if my_session.is_some() => Reply::Close(4005, "Already authenticated."),
                            Some(2) => {
                                let (reply, id) = identify(&st, &d, &tx, path, addr);
                                my_session = id;
                                reply
                            }
                            Some(6) => {
                                let (reply, id) = resume(&st, &d, &tx, path);
                                my_session = id;
                                reply
                            }
                            Some(3 | 4 | 8 | 31) if my_session.is_none() => Reply::Close(4003, "Not authenticated."),
                            Some(3 | 4 | 8 | 31) => Reply::Send(vec![]),
                            _ => Reply::Close(4001, "Unknown opcode."),
                        };
                        match reply {
                            Reply::Send(out) => {
                                for o in out {
                                    if session.text(o.to_string()).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Reply::Close(code, why) => {
                                close = close_code(code, why);
                                break;
                            }
                        }
                    }
                    Some(Ok(actix_ws::Message::Ping(b))) => {
                        if session.pong(&b).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(actix_ws::Message::Close(reason))) => {
                        let code = reason.map(|r| u16::from(r.code));
                        let mut s = st.lock();
                        s.client_closes.push(code);
                        // Discord: closing with 1000 or 1001 invalidates the session.
                        if matches!(code, Some(1000 | 1001)) {
                            if let Some(id) = my_session.take() {
                                s.sessions.remove(&id);
                            }
                        }
                        break;
                    }
                    None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Send(v)) => {
                        if session.text(v.to_string()).await.is_err() {
                            break;
                        }
                    }
                    Some(Cmd::Invalidate(resumable)) => {
                        {
                            let mut s = st.lock();
                            s.invalid_sessions.push(Instant::now());
                            if let Some(id) = my_session.take() {
                                if resumable {
                                    if let Some(sess) = s.sessions.get_mut(&id) {
                                        sess.tx = None;
                                    }
                                } else {
                                    s.sessions.remove(&id);
                                }
                            }
                        }
                        let op9 = json!({"op": 9, "d": resumable, "s": null, "t": null});
                        if session.text(op9.to_string()).await.is_err() {
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
        let _ = session.close(close).await;
    });
    Ok(resp)
}

/// The running fake.
pub struct FakeDiscord {
    server: FakeServer,
    state: Shared,
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(State {
            forced_retry_after: 1.0,
            limit: 5,
            window: Duration::from_secs(1),
            ..State::default()
        }));
        let data = web::Data::new(state.clone());
        let server = FakeServer::start("fake-discord", move |app, addr| {
            // Discord answers a body that is not JSON with 50035.
            let json = web::JsonConfig::default()
                .limit(1 << 20)
                .error_handler(|e, _| {
                    InternalError::from_response(
                        e,
                        form_error("_body", "INVALID_JSON", "Invalid JSON body"),
                    )
                    .into()
                });
            app.app_data(data.clone())
                .app_data(web::Data::new(addr))
                .app_data(json)
                .route("/api/v10/gateway/bot", web::get().to(gateway_bot))
                .route("/api/v10/users/@me/channels", web::post().to(open_dm))
                .route(
                    "/api/v10/channels/{id}/messages",
                    web::post().to(create_message),
                )
                .route(
                    "/api/v10/channels/{channel}/messages/{id}",
                    web::patch().to(edit_message),
                )
                .route(
                    "/api/v10/interactions/{id}/{token}/callback",
                    web::post().to(interaction_callback),
                )
                .route(
                    "/api/v10/webhooks/{app}/{token}/messages/@original",
                    web::patch().to(edit_original),
                )
                .route("/api/v10/webhooks/{app}/{token}", web::post().to(followup))
                .route("/gateway", web::get().to(gateway))
                .route("/gateway/", web::get().to(gateway))
                .route("/resume", web::get().to(gateway))
                .route("/resume/", web::get().to(gateway))
                .default_service(web::to(|| async { err(404, 0, "404: Not Found") }));
        });
        FakeDiscord { server, state }
    }

    /// The `[[chat]]` table for the bridge (gateway from `GET /gateway/bot`).
    pub fn chat_toml(&self, extra: &str) -> String {
        format!(
            "[[chat]]\nname = \"dc\"\nbackend = \"discord\"\napi_url = \"http://{}/api/v10\"\ntoken = \"{BOT_TOKEN}\"\nsend_interval_ms = 10\n{extra}\n",
            self.server.addr()
        )
    }

    /// A user (or bot) writes in a channel; returns the message id.
    pub fn post_as(&self, author: &str, channel: &str, content: &str) -> String {
        let msg = self
            .state
            .lock()
            .create(user(author), None, channel, content, None);
        msg["id"].as_str().unwrap_or_default().to_owned()
    }

    /// A webhook posts in a channel: its author is the webhook (no `bot` flag), the message
    /// carries `webhook_id`.
    pub fn post_as_webhook(&self, channel: &str, content: &str) {
        let author = json!({"id": HOOK, "username": "Captain Hook", "avatar": null});
        self.state
            .lock()
            .create(author, Some(HOOK), channel, content, None);
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

    /// `presser` presses the button `custom_id` on the bot's message `message` (as stored):
    /// an `INTERACTION_CREATE` on the gateway. Returns the interaction id.
    pub fn press(&self, presser: &str, message: &Value, custom_id: &str) -> String {
        let mut st = self.state.lock();
        let id = st.id();
        let token = format!("aW50ZXJhY3Rpb246{}", uuid::Uuid::new_v4().simple());
        let channel = message["channel_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut shown = message.clone();
        for extra in ["guild_id", "member"] {
            if let Some(o) = shown.as_object_mut() {
                o.remove(extra);
            }
        }
        let mut d = json!({
            "id": id, "application_id": APPLICATION, "type": 3, "version": 1,
            "data": {"custom_id": custom_id, "component_type": 2},
            "channel_id": channel, "channel": {"id": channel, "type": if channel == GENERAL { 0 } else { 1 }},
            "token": token, "message": shown, "app_permissions": "0", "locale": "en-US",
            "entitlements": [], "authorizing_integration_owners": {}, "attachment_size_limit": 8388608,
        });
        if channel == GENERAL {
            d["guild_id"] = json!(GUILD);
            d["guild_locale"] = json!("en-US");
            d["context"] = json!(0);
            let mut m = member();
            m["user"] = user(presser);
            m["permissions"] = json!("0");
            d["member"] = m;
        } else {
            d["context"] = json!(1);
            d["user"] = user(presser);
        }
        st.interactions.push(Interaction {
            id: id.clone(),
            token,
            channel,
            message_id: message["id"].as_str().unwrap_or_default().to_owned(),
            at: Instant::now(),
            callback: None,
        });
        st.dispatch_any("INTERACTION_CREATE", &d);
        id
    }

    /// The interactions so far, with their callbacks.
    pub fn interactions(&self) -> Vec<Interaction> {
        self.state.lock().interactions.clone()
    }

    /// The follow-ups so far.
    pub fn followups(&self) -> Vec<Followup> {
        self.state.lock().followups.clone()
    }

    /// The edits of original interaction messages so far.
    pub fn edits(&self) -> Vec<(String, Value)> {
        self.state.lock().edits.clone()
    }

    /// The next `n` message sends get a 429 asking to wait `retry_after` seconds; `global`
    /// makes it the global limit's 429.
    pub fn rate_limit_next(&self, n: u32, retry_after: f64, global: bool) {
        let mut st = self.state.lock();
        st.forced_429 = n;
        st.forced_retry_after = retry_after;
        st.forced_global = global;
    }

    /// The next message send opens a window of `window` in which every message send gets a
    /// 429 whose `retry_after` is the time left: a client that waits as told is refused
    /// once, one that retries sooner is refused again.
    pub fn rate_limit_window(&self, window: Duration) {
        self.state.lock().window_armed = Some(window);
    }

    /// Every message by `author`, in every channel, oldest first.
    pub fn messages_by(&self, author: &str) -> Vec<Stored> {
        self.state
            .lock()
            .messages
            .iter()
            .filter(|m| m.msg["author"]["id"] == author)
            .cloned()
            .collect()
    }

    /// Each channel takes `limit` messages per `window`.
    pub fn message_bucket(&self, limit: u32, window: Duration) {
        let mut st = self.state.lock();
        st.limit = limit;
        st.window = window;
        st.windows.clear();
    }

    /// When each 429 was sent.
    pub fn rate_limited_at(&self) -> Vec<Instant> {
        self.state.lock().rate_limited_at.clone()
    }

    /// For each send that used up its window (`X-RateLimit-Remaining: 0`), when the window
    /// resets.
    pub fn used_up_windows(&self) -> Vec<Instant> {
        self.state.lock().used_up.clone()
    }

    /// From now on the token is refused: REST answers 401 and identify/resume close with
    /// 4004. Open gateway connections stay (the moment between a token reset and Discord
    /// ending the sessions).
    pub fn revoke_token(&self) {
        self.state.lock().token_revoked = true;
    }

    /// REST requests refused with 401.
    pub fn unauthorized(&self) -> usize {
        self.state.lock().unauthorized
    }

    /// The `User-Agent` of every REST request.
    pub fn user_agents(&self) -> Vec<String> {
        self.state.lock().user_agents.clone()
    }

    /// Closes every gateway connection without a close code (sessions stay resumable).
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

    /// Sends op 9 with `d = resumable` on every open gateway connection; a non-resumable
    /// one ends the session.
    pub fn invalidate_session(&self, resumable: bool) {
        for s in self.state.lock().sessions.values() {
            if let Some(tx) = &s.tx {
                let _ = tx.send(Cmd::Invalidate(resumable));
            }
        }
    }

    /// When each op 9 was sent.
    pub fn invalid_sessions(&self) -> Vec<Instant> {
        self.state.lock().invalid_sessions.clone()
    }

    /// Stops (or resumes) ACKing heartbeats: a zombied connection.
    pub fn mute_acks(&self, on: bool) {
        self.state.lock().mute_acks = on;
    }

    /// Refuses the message-content intent (not enabled for the app): identify → 4014.
    pub fn refuse_message_content(&self, on: bool) {
        self.state.lock().no_message_content = on;
    }

    /// Sends op 7 (Reconnect) on every open gateway connection.
    pub fn ask_reconnect(&self) {
        for s in self.state.lock().sessions.values() {
            if let Some(tx) = &s.tx {
                let _ = tx.send(Cmd::Send(json!({"op": 7, "d": null, "s": null, "t": null})));
            }
        }
    }

    /// Refuses (503) gateway connections while `on`.
    /// The next `n` connections to the resume URL are refused with a 503.
    pub fn refuse_resumes(&self, n: usize) {
        self.state.lock().refused_resumes = n;
    }

    /// The path of every gateway connection attempt so far (`/gateway` or `/resume`).
    pub fn attempt_paths(&self) -> Vec<String> {
        self.state.lock().attempt_paths.clone()
    }

    pub fn refuse_gateway(&self, on: bool) {
        self.state.lock().refuse_gateway = on;
    }

    pub fn gateway_attempts(&self) -> usize {
        self.state.lock().gateway_attempts
    }

    /// The query string of every gateway connection.
    pub fn gateway_queries(&self) -> Vec<String> {
        self.state.lock().gateway_queries.clone()
    }

    pub fn gateway_bot_calls(&self) -> usize {
        self.state.lock().gateway_bot_calls
    }

    pub fn connected(&self) -> usize {
        self.state
            .lock()
            .sessions
            .values()
            .filter(|s| s.tx.is_some())
            .count()
    }

    pub fn identifies(&self) -> Vec<Handshake> {
        self.state.lock().identifies.clone()
    }

    pub fn resumes(&self) -> Vec<Handshake> {
        self.state.lock().resumes.clone()
    }

    /// Create Message calls answered with the message an earlier call with the same nonce
    /// made (`enforce_nonce`).
    pub fn nonce_hits(&self) -> usize {
        self.state.lock().nonce_hits
    }

    /// The next `n` messages are created but answered with a 502, as when Discord's edge
    /// loses the answer of a request that went through.
    pub fn lose_answers(&self, n: usize) {
        self.state.lock().lost_answers = n;
    }

    /// The `d` of every heartbeat.
    pub fn heartbeats(&self) -> Vec<Value> {
        self.state.lock().heartbeats.clone()
    }

    /// The last sequence number sent on the connected session.
    pub fn session_seq(&self) -> Option<u64> {
        self.state
            .lock()
            .sessions
            .values()
            .find(|s| s.tx.is_some())
            .map(|s| s.seq)
    }

    /// The close codes of the closes the client sent (`None`: no code).
    pub fn client_closes(&self) -> Vec<Option<u16>> {
        self.state.lock().client_closes.clone()
    }

    /// The intents of every session.
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
        // The server stops after this, when `server` is dropped.
        self.drop_gateways();
    }
}

/// The interaction behind an id and token, if it can still be answered.
fn interaction_index(st: &State, id: Option<&str>, token: &str) -> Option<usize> {
    st.interactions
        .iter()
        .position(|i| i.token == token && id.is_none_or(|id| i.id == id))
}

fn unknown_interaction() -> HttpResponse {
    err(404, 10062, "Unknown interaction")
}

/// `POST /interactions/{id}/{token}/callback`: within 3 s, once.
async fn interaction_callback(
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
    st: web::Data<Shared>,
) -> HttpResponse {
    let (id, token) = path.into_inner();
    let mut st = st.lock();
    let Some(at) = interaction_index(&st, Some(&id), &token) else {
        return unknown_interaction();
    };
    let i = &mut st.interactions[at];
    if i.at.elapsed() > Duration::from_secs(3) {
        return unknown_interaction();
    }
    if i.callback.is_some() {
        return err(400, 40060, "Interaction has already been acknowledged.");
    }
    match body.get("type").and_then(Value::as_u64) {
        Some(4..=7) => {}
        _ => {
            return form_error(
                "type",
                "BASE_TYPE_CHOICES",
                "Value must be one of {4, 5, 6, 7}.",
            )
        }
    }
    i.callback = Some((body.into_inner(), Instant::now()));
    HttpResponse::NoContent().finish()
}

/// The interaction for a webhook call: known, acknowledged, under 15 minutes old.
fn acked_interaction(st: &State, app: &str, token: &str) -> Option<usize> {
    if app != APPLICATION {
        return None;
    }
    interaction_index(st, None, token).filter(|&at| {
        let i = &st.interactions[at];
        i.callback.is_some() && i.at.elapsed() < Duration::from_secs(15 * 60)
    })
}

/// `PATCH /webhooks/{application_id}/{token}/messages/@original`.
async fn edit_original(
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
    st: web::Data<Shared>,
) -> HttpResponse {
    let (app, token) = path.into_inner();
    let mut st = st.lock();
    let Some(at) = acked_interaction(&st, &app, &token) else {
        return unknown_interaction();
    };
    let message_id = st.interactions[at].message_id.clone();
    let Some(stored) = st
        .messages
        .iter_mut()
        .find(|m| m.msg["id"] == message_id.as_str())
    else {
        return err(404, 10008, "Unknown Message");
    };
    for key in ["content", "components"] {
        if let Some(v) = body.get(key) {
            stored.msg[key] = v.clone();
        }
    }
    stored.msg["edited_timestamp"] = json!("2026-11-23T21:00:01.000000+00:00");
    let edited = stored.msg.clone();
    st.edits.push((message_id, body.into_inner()));
    HttpResponse::Ok().json(edited)
}

/// `PATCH /channels/{channel_id}/messages/{message_id}` (Edit Message,
/// https://discord.com/developers/docs/resources/message#edit-message): the bot's own
/// message gets new `content` and `components`; another author's message is 403 50005
/// "Cannot edit a message authored by another user"; an unknown one 404 10008.
async fn edit_message(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
    st: web::Data<Shared>,
) -> HttpResponse {
    let mut st = st.lock();
    if let Some(refused) = refused(&req, &mut st) {
        return refused;
    }
    let (channel, message_id) = path.into_inner();
    let Some(stored) = st
        .messages
        .iter_mut()
        .find(|m| m.msg["id"] == message_id.as_str() && m.msg["channel_id"] == channel.as_str())
    else {
        return err(404, 10008, "Unknown Message");
    };
    if stored.msg["author"]["id"] != BOT {
        return err(403, 50005, "Cannot edit a message authored by another user");
    }
    for key in ["content", "components"] {
        if let Some(v) = body.get(key) {
            stored.msg[key] = v.clone();
        }
    }
    stored.msg["edited_timestamp"] = json!("2026-11-23T21:00:01.000000+00:00");
    let edited = stored.msg.clone();
    st.edits.push((message_id, body.into_inner()));
    HttpResponse::Ok().json(edited)
}

/// `POST /webhooks/{application_id}/{token}`: a follow-up; an ephemeral one is recorded only.
async fn followup(
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
    st: web::Data<Shared>,
) -> HttpResponse {
    let (app, token) = path.into_inner();
    let mut st = st.lock();
    let Some(at) = acked_interaction(&st, &app, &token) else {
        return unknown_interaction();
    };
    let content = body["content"].as_str().unwrap_or_default().to_owned();
    if content.is_empty() {
        return err(400, 50006, "Cannot send an empty message");
    }
    let ephemeral = body["flags"].as_u64().is_some_and(|f| f & 64 != 0);
    let interaction = st.interactions[at].id.clone();
    let channel = st.interactions[at].channel.clone();
    st.followups.push(Followup {
        interaction,
        body: body.into_inner(),
        ephemeral,
    });
    let mut msg = if ephemeral {
        let id = st.id();
        json!({"id": id, "channel_id": channel, "content": content, "flags": 64})
    } else {
        st.create(user(BOT), None, &channel, &content, None)
    };
    msg["webhook_id"] = json!(APPLICATION);
    HttpResponse::Ok().json(msg)
}
