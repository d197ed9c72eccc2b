//! A fake Slack: the Web API methods the bridge calls and Socket Mode, shaped like Slack's
//! published documentation (method answers, `hello`/`disconnect`/`events_api` frames,
//! envelope acks, `invalid_auth`, HTTP 429 with `Retry-After`, the history of what was
//! posted with its message metadata).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Instant,
};

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::fake_server::FakeServer;

pub const APP_TOKEN: &str = "xapp-1-A0TEST-1-secret";
pub const BOT_TOKEN: &str = "xoxb-test-bot-token";
pub const TEAM: &str = "T0TEAM";
pub const BOT_USER: &str = "U0BOT";
pub const BOT_ID: &str = "B0BOT";
pub const APP_ID: &str = "A0TEST";

/// One Web API call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub at: Instant,
    /// What the fake answered: HTTP status.
    pub status: u16,
}

struct Conn {
    id: u64,
    session: actix_ws::Session,
    open: bool,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    posts: Vec<Value>,
    /// The `ts` Slack gave each post, in the same order as `posts`.
    post_ts: Vec<String>,
    /// The `ts` of the people's messages ([`FakeSlack::message_event`]): roots of threads.
    user_ts: std::collections::HashSet<String>,
    /// The people's messages, by channel, as the history methods list them
    /// ([`FakeSlack::message_event`], [`FakeSlack::say_unheard`]).
    user_messages: Vec<(String, Value)>,
    /// `chat.postMessage` calls whose text contains this save the post and then answer 503,
    /// as when the answer is lost after Slack has the message, this many times
    /// ([`FakeSlack::lose_answers_to`]).
    lost_answers: Option<(String, u32)>,
    /// The history methods answer 503 while set ([`FakeSlack::fail_history`]).
    history_down: bool,
    /// `chat.update` bodies.
    updates: Vec<Value>,
    acks: Vec<String>,
    conns: Vec<Conn>,
    opened: u64,
    /// Events wait for a connection with at least this id (after a `disconnect`).
    min_conn: u64,
    pending: VecDeque<String>,
    /// When a connection said hello while an older one was still open.
    overlapped: bool,
    rate_limits: VecDeque<u64>,
    /// The next `chat.postMessage` opens a rate-limit window this long
    /// ([`FakeSlack::rate_limit_window`]).
    window_armed: Option<std::time::Duration>,
    /// Every `chat.postMessage` before this instant gets a 429.
    limited_until: Option<Instant>,
    /// Socket Mode connections are refused (503) while set ([`FakeSlack::refuse_sockets`]).
    refuse_sockets: bool,
    failures: u32,
    next_ts: u64,
    next_envelope: u64,
    dms: HashMap<String, String>,
    channels: HashMap<String, String>,
    joins: Vec<String>,
    /// Pings go unanswered (a half-dead link).
    muted: bool,
    /// When each envelope was pushed, and how long its ack took.
    pushed_at: HashMap<String, Instant>,
    ack_latency: HashMap<String, std::time::Duration>,
    /// Socket Mode URLs are single-use tickets.
    tickets: std::collections::HashSet<String>,
}

impl State {
    /// The next message timestamp: the wall clock's microseconds, as Slack's are (`oldest`
    /// in the history methods is a moment), later than every earlier one.
    fn next_ts(&mut self) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        self.next_ts = now.max(self.next_ts + 100);
        format!(
            "{}.{:06}",
            self.next_ts / 1_000_000,
            self.next_ts % 1_000_000
        )
    }

    /// The bot's posts and the people's messages in `channel` as the history methods list
    /// them (https://api.slack.com/methods/conversations.history, "Example response"):
    /// newest first, later than `oldest` (or from it on, `inclusive`), with `metadata` only
    /// when `include_all_metadata` is set; each with the thread it replies in, if any.
    fn history(
        &self,
        channel: &str,
        oldest: (u64, u64),
        inclusive: bool,
        metadata: bool,
    ) -> Vec<(Value, Option<String>)> {
        let after = |ts: &str| {
            let at = ts_key(ts);
            at > oldest || (inclusive && at == oldest)
        };
        let mut out: Vec<(Value, Option<String>)> = self
            .posts
            .iter()
            .zip(&self.post_ts)
            .filter(|(p, ts)| p["channel"] == channel && after(ts))
            .map(|(p, ts)| {
                let mut m = json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID,
                    "text": p["text"], "ts": ts});
                if let Some(thread) = p["thread_ts"].as_str() {
                    m["thread_ts"] = json!(thread);
                }
                if metadata && p.get("metadata").is_some() {
                    m["metadata"] = p["metadata"].clone();
                }
                (m, p["thread_ts"].as_str().map(str::to_owned))
            })
            .collect();
        out.extend(
            self.user_messages
                .iter()
                .filter(|(c, m)| c == channel && after(m["ts"].as_str().unwrap_or_default()))
                .map(|(_, m)| {
                    // A reply (not its thread's root) belongs to the thread.
                    let thread = m["thread_ts"]
                        .as_str()
                        .filter(|t| *t != m["ts"])
                        .map(str::to_owned);
                    (m.clone(), thread)
                }),
        );
        out.sort_by_key(|(m, _)| std::cmp::Reverse(ts_key(m["ts"].as_str().unwrap_or_default())));
        // A parent lists its thread: its own `ts` as `thread_ts`, `reply_count` and the
        // `ts` of its `latest_reply` (https://api.slack.com/messaging/retrieving#finding_threads).
        for (m, _) in out.iter_mut().filter(|(_, thread)| thread.is_none()) {
            let ts = m["ts"].as_str().unwrap_or_default().to_owned();
            let replies: Vec<&str> = self.replies_to(channel, &ts);
            if let Some(latest) = replies.iter().max_by_key(|r| ts_key(r)) {
                m["thread_ts"] = json!(ts);
                m["reply_count"] = json!(replies.len());
                m["latest_reply"] = json!(latest);
            }
        }
        out
    }

    /// The `ts` of every reply in `channel` in the thread under `root`.
    fn replies_to(&self, channel: &str, root: &str) -> Vec<&str> {
        let posts = self
            .posts
            .iter()
            .zip(&self.post_ts)
            .filter(|(p, _)| p["channel"] == channel && p["thread_ts"] == root)
            .map(|(_, ts)| ts.as_str());
        let said = self
            .user_messages
            .iter()
            .filter(|(c, m)| c == channel && m["thread_ts"] == root)
            .filter_map(|(_, m)| m["ts"].as_str());
        posts.chain(said).filter(|ts| *ts != root).collect()
    }
}

/// A `ts` (`seconds.micros`) as numbers, for exact comparison.
fn ts_key(ts: &str) -> (u64, u64) {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let micros = format!("{frac:0<6}");
    (
        secs.parse().unwrap_or(0),
        micros.get(..6).and_then(|m| m.parse().ok()).unwrap_or(0),
    )
}

/// A person's message as the history methods list it (no `channel`, no `channel_type`).
fn history_item(event: &Value) -> Value {
    let mut m = json!({"type": "message", "user": event["user"], "text": event["text"],
        "ts": event["ts"], "team": TEAM, "client_msg_id": event["client_msg_id"],
        "blocks": event["blocks"]});
    if let Some(t) = event["thread_ts"].as_str() {
        m["thread_ts"] = json!(t);
        m["parent_user_id"] = event["parent_user_id"].clone();
    }
    m
}

/// A page of `messages` as the history methods answer it: `limit` (default 100, at most
/// 999) from the `cursor` on, `has_more` and `response_metadata.next_cursor`.
fn history_page(messages: Vec<Value>, body: &Value) -> HttpResponse {
    let limit = body["limit"]
        .as_u64()
        .or_else(|| body["limit"].as_str().and_then(|l| l.parse().ok()))
        .unwrap_or(100)
        .clamp(1, 999) as usize;
    let from = body["cursor"]
        .as_str()
        .and_then(|c| c.strip_prefix("page:"))
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let page: Vec<Value> = messages.iter().skip(from).take(limit).cloned().collect();
    let has_more = from + limit < messages.len();
    let next = if has_more {
        format!("page:{}", from + limit)
    } else {
        String::new()
    };
    ok(json!({"messages": page, "has_more": has_more,
        "response_metadata": {"next_cursor": next}}))
}

pub struct FakeSlack {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    /// Stops the server when the fake is dropped.
    _server: FakeServer,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut s = state.lock();
            s.channels.insert("C0OPS".into(), "ops".into());
            s.channels.insert("C0DEV".into(), "dev".into());
        }
        let shared = state.clone();
        let server = FakeServer::start("fake-slack", move |app, addr| {
            app.app_data(web::Data::new((shared.clone(), addr)))
                .route("/api/{method}", web::post().to(api))
                .route("/link/", web::get().to(link));
        });
        Self {
            addr: server.addr(),
            state,
            _server: server,
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A `[[chat]]` table for a Socket Mode connection named `slack`.
    pub fn socket_toml(&self) -> String {
        format!(
            "[[chat]]\nname = \"slack\"\nbackend = \"slack\"\nmode = \"socket\"\napp_token = \"{APP_TOKEN}\"\n\
             bot_token = \"{BOT_TOKEN}\"\napi_url = \"{}\"\nchannels = [\"C0OPS\"]\nmax_message_length = 300\n\
             send_interval_ms = 0\nreconnect_initial_ms = 50\nreconnect_max_ms = 400\n",
            self.api_url()
        )
    }

    fn next_ts(&self) -> String {
        self.state.lock().next_ts()
    }

    /// The `event_callback` body for a message event, as the Events API documents it.
    pub fn message_event(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread: Option<&str>,
    ) -> Value {
        let ts = self.next_ts();
        let channel_type = if channel.starts_with('D') {
            "im"
        } else {
            "channel"
        };
        let mut event = json!({
            "type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
            "event_ts": ts, "channel_type": channel_type, "team": TEAM,
            "client_msg_id": uuid::Uuid::new_v4().to_string(),
            "blocks": [{"type": "rich_text", "block_id": "b1", "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}],
        });
        if let Some(t) = thread {
            event["thread_ts"] = json!(t);
            event["parent_user_id"] = json!(user);
        }
        self.record_said(channel, &event);
        callback(event)
    }

    /// Keeps a person's message in the channel's history.
    fn record_said(&self, channel: &str, event: &Value) {
        let mut s = self.state.lock();
        s.user_ts
            .insert(event["ts"].as_str().unwrap_or_default().to_owned());
        s.user_messages
            .push((channel.to_owned(), history_item(event)));
    }

    /// `user` says `text` in `channel` while no socket hears it: the message is in the
    /// channel's history, and no event is ever sent for it (Socket Mode replays nothing to
    /// a later connection); in `thread` (its root's `ts`), a reply there, listed by
    /// `conversations.replies` only. Returns its `ts`.
    pub fn say_unheard(
        &self,
        channel: &str,
        thread: Option<&str>,
        user: &str,
        text: &str,
    ) -> String {
        let event = self.message_event(channel, user, text, thread)["event"].clone();
        event["ts"].as_str().unwrap_or_default().to_owned()
    }

    /// A message posted by another app (`bot_message` subtype, `bot_id`).
    pub fn bot_event(&self, channel: &str, bot_id: &str, user: Option<&str>, text: &str) -> Value {
        let ts = self.next_ts();
        let mut event = json!({"type": "message", "subtype": "bot_message", "channel": channel,
            "bot_id": bot_id, "text": text, "ts": ts, "event_ts": ts, "channel_type": "channel",
            "username": "other-bot"});
        if let Some(u) = user {
            event["user"] = json!(u);
            event.as_object_mut().map(|m| m.remove("subtype"));
        }
        callback(event)
    }

    /// Sends an event over Socket Mode (held until a usable connection exists).
    pub async fn push(&self, payload: Value) -> String {
        self.push_envelope("events_api", payload).await
    }

    /// Sends an interaction payload over Socket Mode: an envelope of type `interactive`
    /// whose `payload` is what the Request URL would receive
    /// (https://api.slack.com/apis/socket-mode, "Interactivity").
    pub async fn push_interactive(&self, payload: Value) -> String {
        self.push_envelope("interactive", payload).await
    }

    /// A `block_actions` payload for `user` pressing the button `action` (an element of the
    /// bot's post, as posted) on the message `message_ts` in `channel`, shaped as
    /// https://api.slack.com/reference/interaction-payloads/block-actions-payload documents
    /// it: `user`, `container` (`type: message`, `message_ts`, `channel_id`, `thread_ts`),
    /// `team`, `channel`, `message`, `response_url`, `trigger_id` and `actions` (the
    /// element's `action_id`, `block_id`, `text`, `value`, `type`, plus `action_ts`).
    pub fn block_actions(
        &self,
        channel: &str,
        user: &str,
        message_ts: &str,
        thread_ts: Option<&str>,
        action: &Value,
    ) -> Value {
        let action_ts = self.next_ts();
        let mut container = json!({"type": "message", "message_ts": message_ts,
            "channel_id": channel, "is_ephemeral": false});
        let mut message = json!({"type": "message", "user": BOT_USER, "bot_id": BOT_ID,
            "ts": message_ts, "text": "(the bot's message)"});
        if let Some(t) = thread_ts {
            container["thread_ts"] = json!(t);
            message["thread_ts"] = json!(t);
        }
        json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": TEAM},
            "api_app_id": APP_ID, "token": "XXYYZZ",
            "container": container,
            "trigger_id": "1234567890123.1234567890123.abcdef0123456789abcdef0123456789",
            "team": {"id": TEAM, "domain": "fake"},
            "enterprise": null, "is_enterprise_install": false,
            "channel": {"id": channel, "name": self.state.lock().channels.get(channel).cloned().unwrap_or_else(|| "directmessage".into())},
            "message": message,
            "state": {"values": {}},
            "response_url": format!("https://hooks.slack.com/actions/{TEAM}/1/fake"),
            "actions": [{
                "action_id": action["action_id"], "block_id": "stormbridge_answer",
                "text": action["text"], "value": action["value"], "style": action["style"],
                "type": "button", "action_ts": action_ts,
            }],
        })
    }

    /// The `chat.update` bodies so far.
    pub fn updates(&self) -> Vec<Value> {
        self.state.lock().updates.clone()
    }

    /// Waits for a post whose text contains `needle`; returns it with the `ts` Slack gave it.
    pub async fn post_and_ts_containing(&self, needle: &str) -> (Value, String) {
        let post = self.post_containing(needle).await;
        let s = self.state.lock();
        let at = s.posts.iter().position(|p| *p == post).unwrap_or_default();
        (post, s.post_ts.get(at).cloned().unwrap_or_default())
    }

    async fn push_envelope(&self, kind: &str, payload: Value) -> String {
        let envelope_id = {
            let mut s = self.state.lock();
            s.next_envelope += 1;
            let id = format!("env-{}", s.next_envelope);
            s.pushed_at.insert(id.clone(), Instant::now());
            id
        };
        let mut frame = json!({"envelope_id": envelope_id, "payload": payload, "type": kind,
            "accepts_response_payload": false});
        if kind == "events_api" {
            frame["retry_attempt"] = json!(0);
            frame["retry_reason"] = json!("");
        }
        let frame = frame.to_string();
        let target = {
            let mut s = self.state.lock();
            let min = s.min_conn;
            match s.conns.iter().rev().find(|c| c.open && c.id >= min) {
                Some(c) => Some(c.session.clone()),
                None => {
                    s.pending.push_back(frame.clone());
                    None
                }
            }
        };
        if let Some(mut session) = target {
            if session.text(frame.clone()).await.is_err() {
                self.state.lock().pending.push_back(frame);
            }
        }
        envelope_id
    }

    /// Sends a text frame as is on the newest open connection.
    pub async fn push_raw(&self, frame: &str) {
        let target = {
            let s = self.state.lock();
            s.conns
                .iter()
                .rev()
                .find(|c| c.open)
                .map(|c| c.session.clone())
        };
        if let Some(mut session) = target {
            let _ = session.text(frame.to_owned()).await;
        }
    }

    /// Sends `disconnect` with `reason` on the newest connection; later events go to a newer one.
    pub async fn request_disconnect(&self, reason: &str) {
        let target = {
            let mut s = self.state.lock();
            let newest = s
                .conns
                .iter()
                .rev()
                .find(|c| c.open)
                .map(|c| (c.id, c.session.clone()));
            if let Some((id, _)) = &newest {
                s.min_conn = id + 1;
            }
            newest
        };
        if let Some((_, mut session)) = target {
            let frame = json!({"type": "disconnect", "reason": reason,
                "debug_info": {"host": "applink-fake-1"}});
            let _ = session.text(frame.to_string()).await;
        }
    }

    /// Closes every socket at once, as a server restart would.
    pub async fn drop_connections(&self) {
        let sessions: Vec<_> = {
            let mut s = self.state.lock();
            s.min_conn = s.opened + 1;
            s.conns
                .iter_mut()
                .filter(|c| c.open)
                .map(|c| {
                    c.open = false;
                    c.session.clone()
                })
                .collect()
        };
        for s in sessions {
            let _ = s.close(None).await;
        }
    }

    /// The next `chat.postMessage` calls answer 429 with these `Retry-After` seconds.
    pub fn rate_limit_next(&self, retry_after: u64) {
        self.state.lock().rate_limits.push_back(retry_after);
    }

    /// The next `chat.postMessage` opens a window of `window` in which every
    /// `chat.postMessage` gets a 429 whose `Retry-After` is the time left in whole seconds,
    /// rounded up: a client that waits as told is refused once, one that retries sooner is
    /// refused again.
    pub fn rate_limit_window(&self, window: std::time::Duration) {
        self.state.lock().window_armed = Some(window);
    }

    /// While `on`, Socket Mode connections are refused with a 503 (the Web API still
    /// answers), as when Slack's socket service is down; with [`FakeSlack::drop_connections`]
    /// the app is cut off until this is turned off again.
    pub fn refuse_sockets(&self, on: bool) {
        self.state.lock().refuse_sockets = on;
    }

    /// The next `n` `chat.postMessage` calls answer 503.
    pub fn fail_next_posts(&self, n: u32) {
        self.state.lock().failures = n;
    }

    /// The next `n` `chat.postMessage` calls whose text contains `needle` post the message
    /// and then answer 503: the sender cannot tell that Slack has it.
    pub fn lose_answers_to(&self, needle: &str, n: u32) {
        self.state.lock().lost_answers = Some((needle.into(), n));
    }

    /// While `down`, `conversations.history` and `conversations.replies` answer 503.
    pub fn fail_history(&self, down: bool) {
        self.state.lock().history_down = down;
    }

    /// Stops answering pings (and sends nothing): the link looks alive but is not.
    pub fn set_muted(&self, muted: bool) {
        self.state.lock().muted = muted;
    }

    pub fn posts(&self) -> Vec<Value> {
        self.state.lock().posts.clone()
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.state
            .lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Time from push to ack (measured from the push, so it includes any wait for a socket).
    pub fn ack_latency(&self, envelope_id: &str) -> Option<std::time::Duration> {
        self.state.lock().ack_latency.get(envelope_id).copied()
    }

    pub fn acks(&self) -> Vec<String> {
        self.state.lock().acks.clone()
    }

    pub fn connections_opened(&self) -> u64 {
        self.state.lock().opened
    }

    pub fn overlapped(&self) -> bool {
        self.state.lock().overlapped
    }

    pub fn open_connections(&self) -> usize {
        self.state.lock().conns.iter().filter(|c| c.open).count()
    }

    pub fn joins(&self) -> Vec<String> {
        self.state.lock().joins.clone()
    }

    /// Waits for a posted message whose text (or attachment text) contains `needle`.
    pub async fn post_containing(&self, needle: &str) -> Value {
        let ok = eventually!(
            crate::support::WAIT,
            self.posts().iter().any(|p| text_of(p).contains(needle))
        );
        assert!(
            ok,
            "no Slack post containing {needle:?}; posts: {:#?}",
            self.posts()
        );
        self.posts()
            .into_iter()
            .find(|p| text_of(p).contains(needle))
            .unwrap_or_default()
    }
}

/// The visible text of a posted body: `text` plus attachment texts.
pub fn text_of(body: &Value) -> String {
    let mut out = body["text"].as_str().unwrap_or_default().to_owned();
    if let Some(atts) = body["attachments"].as_array() {
        for a in atts {
            out.push_str(a["text"].as_str().unwrap_or_default());
        }
    }
    out
}

fn callback(event: Value) -> Value {
    json!({
        "token": "XXYYZZ", "team_id": TEAM, "context_team_id": TEAM, "api_app_id": APP_ID,
        "event": event, "type": "event_callback",
        "event_id": format!("Ev{}", uuid::Uuid::new_v4().simple()),
        "event_time": 1_700_000_000, "is_ext_shared_channel": false,
        "authorizations": [{"enterprise_id": null, "team_id": TEAM, "user_id": BOT_USER,
                            "is_bot": true, "is_enterprise_install": false}],
    })
}

type Data = web::Data<(Arc<Mutex<State>>, std::net::SocketAddr)>;

fn ok(mut v: Value) -> HttpResponse {
    v["ok"] = json!(true);
    HttpResponse::Ok().json(v)
}

fn err(code: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": false, "error": code}))
}

async fn api(
    req: HttpRequest,
    method: web::Path<String>,
    body: web::Bytes,
    data: Data,
) -> HttpResponse {
    let (state, addr) = (&data.0, data.1);
    let method = method.into_inner();
    tracing::debug!(method = %method, "fake slack: call");
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let json_body = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body: Value = if json_body {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        serde_urlencoded::from_bytes::<HashMap<String, String>>(&body)
            .map(|m| json!(m))
            .unwrap_or(Value::Null)
    };
    let mut s = state.lock();
    let record = |status: u16, s: &mut State| {
        s.calls.push(Call {
            method: method.clone(),
            body: body.clone(),
            at: Instant::now(),
            status,
        })
    };
    let wanted = if method == "apps.connections.open" {
        APP_TOKEN
    } else {
        BOT_TOKEN
    };
    if token.is_empty() {
        record(200, &mut s);
        return err("not_authed");
    }
    if token != wanted {
        record(200, &mut s);
        return err("invalid_auth");
    }
    if method == "chat.postMessage" {
        let now = Instant::now();
        if let Some(window) = s.window_armed.take() {
            s.limited_until = Some(now + window);
        }
        let window_left = s.limited_until.filter(|u| *u > now).map(|u| u - now);
        // A closed window: the seconds left, rounded up, as Slack's `Retry-After` says it.
        let limited = window_left
            .map(|left| left.as_secs_f64().ceil() as u64)
            .or_else(|| s.rate_limits.pop_front());
        if let Some(secs) = limited {
            record(429, &mut s);
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.to_string()))
                .json(json!({"ok": false, "error": "ratelimited"}));
        }
        if s.failures > 0 {
            s.failures -= 1;
            record(503, &mut s);
            return HttpResponse::ServiceUnavailable().finish();
        }
        let lose = match &mut s.lost_answers {
            Some((needle, n)) if *n > 0 && text_of(&body).contains(needle.as_str()) => {
                *n -= 1;
                true
            }
            _ => false,
        };
        if lose {
            record(503, &mut s);
            s.posts.push(body.clone());
            let ts = s.next_ts();
            s.post_ts.push(ts);
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    if s.history_down
        && matches!(
            method.as_str(),
            "conversations.history" | "conversations.replies"
        )
    {
        record(503, &mut s);
        return HttpResponse::ServiceUnavailable().finish();
    }
    record(200, &mut s);
    match method.as_str() {
        "auth.test" => ok(
            json!({"url": "https://fake.slack.com/", "team": "Fake", "user": "stormbridge",
            "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": false}),
        ),
        "apps.connections.open" => {
            let ticket = uuid::Uuid::new_v4().to_string();
            s.tickets.insert(ticket.clone());
            ok(json!({"url": format!("ws://{addr}/link/?ticket={ticket}&app_id={APP_ID}")}))
        }
        "conversations.join" => {
            let channel = body["channel"].as_str().unwrap_or_default().to_owned();
            match s.channels.get(&channel).cloned() {
                Some(name) => {
                    s.joins.push(channel.clone());
                    ok(json!({"channel": {"id": channel, "name": name, "is_channel": true}}))
                }
                None => err("channel_not_found"),
            }
        }
        "conversations.info" => {
            let channel = body["channel"].as_str().unwrap_or_default().to_owned();
            match s.channels.get(&channel) {
                Some(name) => ok(
                    json!({"channel": {"id": channel, "name": name, "is_channel": true,
                    "is_member": true}}),
                ),
                None => err("channel_not_found"),
            }
        }
        "conversations.open" => {
            let users = body["users"].as_str().unwrap_or_default().to_owned();
            if users.is_empty() || users.contains(',') {
                return err("user_not_found");
            }
            let id = format!("D{}", users.trim_start_matches('U'));
            s.dms.insert(users, id.clone());
            ok(json!({"channel": {"id": id}}))
        }
        "chat.postMessage" | "chat.postEphemeral" => {
            let channel = body["channel"].as_str().unwrap_or_default();
            let known = s.channels.contains_key(channel)
                || s.dms.values().any(|d| d == channel)
                || channel.starts_with('D');
            if !known {
                return err("channel_not_found");
            }
            if method == "chat.postEphemeral" {
                match body["user"].as_str() {
                    None | Some("") => return err("user_not_found"),
                    Some(u) if u.starts_with("U0GONE") => return err("user_not_in_channel"),
                    Some(_) => {}
                }
            }
            let text = body["text"].as_str().unwrap_or_default();
            if text.is_empty() && body.get("attachments").is_none() && body.get("blocks").is_none()
            {
                return err("no_text");
            }
            if text.chars().count() > 40_000 {
                return err("msg_too_long");
            }
            s.posts.push(body.clone());
            let ts = s.next_ts();
            s.post_ts.push(ts.clone());
            ok(json!({"channel": channel, "ts": ts,
                "message": {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": text, "ts": ts}}))
        }
        // https://api.slack.com/methods/conversations.history: a channel's messages
        // (replies in threads are not among them), `channel_not_found` for an unknown one.
        // https://api.slack.com/methods/conversations.replies: a thread (`ts` is its root;
        // `thread_not_found` for an unknown one), its replies later than `oldest`.
        "conversations.history" | "conversations.replies" => {
            let channel = body["channel"].as_str().unwrap_or_default().to_owned();
            if !s.channels.contains_key(&channel) && !channel.starts_with('D') {
                return err("channel_not_found");
            }
            let oldest = ts_key(body["oldest"].as_str().unwrap_or("0"));
            let flag = |k: &str| body[k] == true || body[k] == "true" || body[k] == "1";
            let metadata = flag("include_all_metadata");
            let history = s.history(&channel, oldest, flag("inclusive"), metadata);
            let messages = if method == "conversations.history" {
                history
                    .into_iter()
                    .filter(|(_, thread)| thread.is_none())
                    .map(|(m, _)| m)
                    .collect()
            } else {
                let root = body["ts"].as_str().unwrap_or_default().to_owned();
                if !s.user_ts.contains(&root) && !s.post_ts.contains(&root) {
                    return err("thread_not_found");
                }
                let mut replies: Vec<Value> = history
                    .into_iter()
                    .filter(|(_, thread)| thread.as_deref() == Some(root.as_str()))
                    .map(|(m, _)| m)
                    .collect();
                replies.reverse();
                replies
            };
            history_page(messages, &body)
        }
        // https://api.slack.com/methods/chat.update: `channel` and `ts` of the bot's own
        // message, and new `text`/`blocks`.
        "chat.update" => {
            let channel = body["channel"].as_str().unwrap_or_default().to_owned();
            let ts = body["ts"].as_str().unwrap_or_default().to_owned();
            if !s.channels.contains_key(&channel) && !channel.starts_with('D') {
                return err("channel_not_found");
            }
            if !s.post_ts.contains(&ts) {
                return err("message_not_found");
            }
            s.updates.push(body.clone());
            ok(json!({"channel": channel, "ts": ts, "text": body["text"]}))
        }
        _ => err("unknown_method"),
    }
}

async fn link(
    req: HttpRequest,
    payload: web::Payload,
    data: Data,
) -> actix_web::Result<HttpResponse> {
    let state = data.0.clone();
    let ticket = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("ticket="))
        .unwrap_or_default()
        .to_owned();
    if !state.lock().tickets.remove(&ticket) {
        return Ok(HttpResponse::Unauthorized().finish());
    }
    if state.lock().refuse_sockets {
        return Ok(HttpResponse::ServiceUnavailable().finish());
    }
    let (resp, mut session, mut stream) = actix_ws::handle(&req, payload)?;
    let (id, pending) = {
        let mut s = state.lock();
        s.opened += 1;
        let id = s.opened;
        if s.conns.iter().any(|c| c.open) {
            s.overlapped = true;
        }
        s.conns.push(Conn {
            id,
            session: session.clone(),
            open: true,
        });
        let pending: Vec<String> = if id >= s.min_conn {
            s.pending.drain(..).collect()
        } else {
            Vec::new()
        };
        (id, pending)
    };
    let hello = json!({"type": "hello", "num_connections": 1,
        "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": APP_ID}});
    let _ = session.text(hello.to_string()).await;
    for frame in pending {
        let _ = session.text(frame).await;
    }
    actix_rt::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                actix_ws::Message::Text(t) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&t) {
                        if let Some(e) = v["envelope_id"].as_str() {
                            let mut s = state.lock();
                            s.acks.push(e.to_owned());
                            if let Some(at) = s.pushed_at.get(e).copied() {
                                s.ack_latency.insert(e.to_owned(), at.elapsed());
                            }
                        }
                    }
                }
                actix_ws::Message::Ping(p) => {
                    let muted = state.lock().muted;
                    if !muted {
                        let _ = session.pong(&p).await;
                    }
                }
                actix_ws::Message::Close(_) => break,
                _ => {}
            }
        }
        let mut s = state.lock();
        if let Some(c) = s.conns.iter_mut().find(|c| c.id == id) {
            c.open = false;
        }
    });
    Ok(resp)
}
