//! A fake Rocket.Chat server: the parts of the REST API and of the realtime API the bridge
//! uses, with the shapes Rocket.Chat's developer documentation publishes, on a random
//! loopback port in its own thread. Each behaviour names the page it follows.
//!
//! REST (`/api/v1`), every call authenticated by `X-User-Id` + `X-Auth-Token` (a personal
//! access token works as the auth token:
//! https://developer.rocket.chat/apidocs/authenticate-a-rest-client), else 401
//! `{"status": "error", "message": "You must be logged in to do this."}`. Errors are
//! `{"success": false, "error": "…", "errorType": "…"}` with 400
//! (https://developer.rocket.chat/apidocs, "Response format").
//!
//! - `GET /me` (https://developer.rocket.chat/apidocs/get-profile-information): the account.
//! - `GET /users.info?userId=` (https://developer.rocket.chat/apidocs/get-users-info):
//!   `{"user": {…}, "success": true}`.
//! - `POST /im.create {"username"}` (https://developer.rocket.chat/apidocs/create-dm):
//!   `{"room": {"_id", "rid", "t": "d", "usernames"}, "success": true}`; the direct room's
//!   id is its two members' ids together, as Rocket.Chat makes it.
//! - `POST /chat.postMessage {"roomId", "text", "tmid", "attachments", …}`
//!   (https://developer.rocket.chat/apidocs/post-message): `{"ts", "channel", "message",
//!   "success": true}`. Refused: a body with neither `roomId` nor `channel` or with a field
//!   the endpoint's schema does not have; an unknown room; a room the author is not in; a
//!   `tmid` that is no message of the room; a text over `Message_MaxAllowedSize` (5000,
//!   measured as JavaScript measures: UTF-16 units; "error-message-size-exceeded"). A reply
//!   in a thread updates the thread's first message (`tcount`, `tlm`), which the stream
//!   sends again, as Rocket.Chat does.
//! - `POST /chat.sendMessage {"message": {"_id", "rid", "msg", "tmid", "attachments", …}}`
//!   (https://developer.rocket.chat/apidocs/send-message): `{"message", "success": true}`,
//!   refused as `chat.postMessage` is (fields outside the schema's `message` object, an
//!   unknown room, …). A message whose `_id` the server already has is not posted again: the
//!   server's `sendMessage` returns early and the endpoint fails with 400, reading the
//!   message it did not make (`sendMessage` in `apps/meteor/app/lib/server/functions/
//!   sendMessage.ts`, `chat.sendMessage` in `apps/meteor/app/api/server/v1/chat.ts`,
//!   https://github.com/RocketChat/Rocket.Chat).
//! - `GET /chat.getMessage?msgId=` (https://developer.rocket.chat/apidocs/get-message):
//!   `{"message", "success": true}`, 400 `{"success": false}` for no such message.
//! - The REST rate limiter (https://developer.rocket.chat/apidocs, "Rate limiting";
//!   https://docs.rocket.chat/docs/rate-limiter): the bot account may bypass it (the `bot`
//!   role's `api-bypass-rate-limit`), so by default no `X-RateLimit-*` headers are sent.
//!   [`FakeRocketChat::rate_limit_window`] makes the next `chat.postMessage` open a window in
//!   which every one is answered 429 with `X-RateLimit-Limit`, `X-RateLimit-Remaining: 0`,
//!   `X-RateLimit-Reset` (milliseconds since the epoch) and `{"success": false, "error":
//!   "Error, too many requests. Please slow down. You must wait N seconds before trying
//!   this endpoint again. [error-too-many-requests]"}`;
//!   [`FakeRocketChat::exhaust_window_next`] answers successes with `Remaining: 0` and a
//!   reset, and then refuses sends before that reset.
//! - `GET /rooms.get?updatedSince=` (https://developer.rocket.chat/apidocs/get-rooms): the
//!   rooms the account is in, `{"update": [{"_id", "t", "name", "msgs", "lm", "lastMessage",
//!   "_updatedAt", …}], "remove": [], "success": true}`; with `updatedSince` (an ISO date)
//!   only those updated after it (a new message updates its room: its `lm`, `lastMessage`
//!   and `_updatedAt`), 400 `error-updatedSince-param-invalid` for a date that is none.
//! - `GET /chat.syncMessages?roomId=&lastUpdate=`
//!   (https://developer.rocket.chat/apidocs/sync-messages): `{"result": {"updated": [message],
//!   "deleted": []}, "success": true}`, every message of the room whose `_updatedAt` is after
//!   `lastUpdate` (a new one, an edit, a thread's first message when the thread is answered),
//!   newest first, all at once (with `lastUpdate` there is no page size); 400 without
//!   `roomId` (`error-roomId-param-not-provided`), without `lastUpdate`
//!   (`error-lastUpdate-param-not-provided`) or with one that is no date (the server names
//!   that `error-roomId-param-invalid`), and `error-not-allowed` for a room the account
//!   cannot read. The page gives the parameters and the answer; the order, the lack of a
//!   page size and the error codes are the server's (`chat.syncMessages` in
//!   `apps/meteor/app/api/server/v1/chat.ts`, `messages/get` in
//!   `apps/meteor/server/publications/messages.ts`, https://github.com/RocketChat/Rocket.Chat).
//!
//! Dates are EJSON `{"$date": ms}` on the realtime API and ISO strings on the REST API (the
//! examples of both pages above).
//!
//! Realtime API at `/websocket`, DDP (https://developer.rocket.chat/reference/api/realtime-api):
//! `{"server_id": "0"}` first; `connect` (version `"1"`) → `connected` with a session, any
//! other version → `failed`; `login` with `{"resume": token}`
//! (https://developer.rocket.chat/apidocs/login-realtime) → `result` with `id`, `token`,
//! `tokenExpires`, `type`, or an `error` (403, `Meteor.Error`); `sub` to
//! `stream-room-messages` with `__my_messages__`
//! (https://developer.rocket.chat/apidocs/stream-room-messages-realtime) → `ready`, or
//! `nosub` with an error before a login; `ping` → `pong` (with its `id`), and the server's
//! own `ping`s on demand, whose `pong`s are recorded. A message goes, as a `changed` event
//! whose `args` are the message (https://developer.rocket.chat/apidocs/message) and
//! `{roomParticipant, roomType, roomName}`, to every subscribed socket of a member of its
//! room — the author's too.
//!
//! Where the documentation shows an error's shape but not its words (a room the author is
//! not in, a `tmid` of another room, a subscription before the login), the words are the
//! fake's own, in that shape.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::fake_server::FakeServer;

/// The bot account's personal access token.
pub const BOT_TOKEN: &str = "rc-pat-7Qf3x9LmZ2a";
/// The bot account's user id (Rocket.Chat ids are 17 characters).
pub const BOT: &str = "B0tUser0000000001";
pub const ALICE: &str = "A1iceUser00000001";
pub const BOB: &str = "B0bUser0000000001";
pub const OTHER_BOT: &str = "0therB0t000000001";
/// `#general`, with everyone in it (Rocket.Chat's first channel has the id `GENERAL`).
pub const GENERAL: &str = "GENERAL";
/// A private group with alice and the bot.
pub const OPS: &str = "0psGr0up000000001";
/// `Message_MaxAllowedSize`'s default.
pub const MAX_ALLOWED_SIZE: usize = 5000;

#[derive(Clone)]
struct User {
    id: &'static str,
    username: &'static str,
    name: &'static str,
    /// Sends through an integration (its messages carry `bot`).
    integration: bool,
}

#[derive(Clone)]
struct Room {
    id: String,
    name: Option<String>,
    kind: &'static str,
    members: Vec<String>,
}

/// A message the server stored, and when.
#[derive(Clone, Debug)]
pub struct Stored {
    pub message: Value,
    pub at: Instant,
}

impl Stored {
    pub fn str(&self, key: &str) -> &str {
        self.message
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

enum WsCmd {
    Text(String),
    Close,
}

struct Socket {
    user: Option<String>,
    subscribed: bool,
    tx: mpsc::UnboundedSender<WsCmd>,
}

#[derive(Default)]
struct State {
    users: Vec<User>,
    /// Token → user id.
    tokens: HashMap<String, String>,
    rooms: Vec<Room>,
    messages: Vec<Stored>,
    sockets: HashMap<u64, Socket>,
    next_socket: u64,
    next_id: u64,
    refuse_ws: bool,
    refuse_login: bool,
    ws_attempts: usize,
    connects: usize,
    logins: usize,
    subs: usize,
    client_pings: usize,
    pongs: Vec<String>,
    /// The next `chat.postMessage` opens a rate-limit window this long.
    window_armed: Option<Duration>,
    /// Every `chat.postMessage` before this gets a 429.
    limited_until: Option<Instant>,
    rate_limited_at: Vec<Instant>,
    /// The next this many accepted sends say the window is used up, resetting in this long.
    exhaust_next: u32,
    exhaust_reset: Duration,
    requests: Vec<String>,
    /// `_id`s `chat.sendMessage` was given again (and posted nothing for).
    not_posted_again: Vec<String>,
    /// When the fake started (its rooms' creation).
    started_ms: u64,
}

struct Shared {
    state: Mutex<State>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// `X-RateLimit-Reset` for a window ending `left` from now: milliseconds since the epoch (the
/// server's `new Date().getTime() + timeToReset`), rounded up so that it is never earlier
/// than the fake's own reckoning.
fn reset_header(left: Duration) -> String {
    (now_ms() + left.as_millis() as u64 + 1).to_string()
}

/// JavaScript's `length`: what `Message_MaxAllowedSize` is compared with.
pub fn js_length(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The REST API's error answer.
fn failure(status: u16, error: &str, error_type: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(json!({"success": false, "error": error, "errorType": error_type}))
}

/// The answer to a request without valid credentials.
fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .json(json!({"status": "error", "message": "You must be logged in to do this."}))
}

/// A date as the REST API writes one: an ISO string with milliseconds.
fn iso(ms: u64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A message as the REST API answers with it: its dates ISO strings.
fn rest_message(message: &Value) -> Value {
    let mut m = message.clone();
    for key in ["ts", "_updatedAt", "editedAt", "tlm"] {
        if let Some(ms) = m.get(key).and_then(|d| d["$date"].as_u64()) {
            m[key] = json!(iso(ms));
        }
    }
    m
}

fn date_of(message: &Value, key: &str) -> u64 {
    message[key]["$date"].as_u64().unwrap_or_default()
}

/// What `chat.postMessage`'s schema takes when `roomId` names the room.
const POST_MESSAGE_FIELDS: &[&str] = &[
    "roomId",
    "text",
    "alias",
    "emoji",
    "avatar",
    "attachments",
    "tmid",
    "customFields",
    "parseUrls",
];

/// What `chat.sendMessage`'s `message` object takes (`isChatSendMessageProps` in
/// `packages/rest-typings`, https://github.com/RocketChat/Rocket.Chat).
const SEND_MESSAGE_FIELDS: &[&str] = &[
    "_id",
    "rid",
    "tmid",
    "msg",
    "alias",
    "emoji",
    "avatar",
    "attachments",
    "blocks",
    "customFields",
];

impl Shared {
    /// The account making request `what` (recorded) and the server's state; `None` for a
    /// request without valid credentials.
    fn request(
        &self,
        req: &HttpRequest,
        what: &str,
    ) -> Option<(String, parking_lot::MutexGuard<'_, State>)> {
        let me = self.auth(req)?;
        let mut st = self.state.lock();
        st.requests.push(what.into());
        Some((me, st))
    }

    /// Records a send request (`what`) and, inside a rate-limit window, its 429.
    fn limiter(&self, what: &str) -> Option<HttpResponse> {
        let mut st = self.state.lock();
        st.requests.push(what.into());
        let now = Instant::now();
        if let Some(window) = st.window_armed.take() {
            st.limited_until = Some(now + window);
        }
        let left = st.limited_until.filter(|u| *u > now).map(|u| u - now)?;
        st.rate_limited_at.push(now);
        let seconds = left.as_secs_f64().ceil() as u64;
        Some(HttpResponse::TooManyRequests()
            .insert_header(("X-RateLimit-Limit", "10"))
            .insert_header(("X-RateLimit-Remaining", "0"))
            .insert_header(("X-RateLimit-Reset", reset_header(left)))
            .json(json!({
                "success": false,
                "error": format!("Error, too many requests. Please slow down. You must wait {seconds} seconds before trying this endpoint again. [error-too-many-requests]"),
            })))
    }

    /// A send endpoint's answer: `body` of the message made, or the refusal.
    fn answer_send(
        &self,
        made: Result<Value, (u16, String, &'static str)>,
        body: impl FnOnce(Value) -> Value,
    ) -> HttpResponse {
        match made {
            Ok(message) => self.accepted().json(body(message)),
            Err((401, _, _)) => unauthorized(),
            Err((status, error, kind)) => failure(status, &error, kind),
        }
    }

    /// The answer to an accepted send: with a used-up window's headers while
    /// [`FakeRocketChat::exhaust_window_next`] asks for them.
    fn accepted(&self) -> actix_web::HttpResponseBuilder {
        let mut st = self.state.lock();
        let mut resp = HttpResponse::Ok();
        if st.exhaust_next > 0 {
            st.exhaust_next -= 1;
            let reset = st.exhaust_reset;
            st.limited_until = Some(Instant::now() + reset);
            resp.insert_header(("X-RateLimit-Limit", "10"))
                .insert_header(("X-RateLimit-Remaining", "0"))
                .insert_header(("X-RateLimit-Reset", reset_header(reset)));
        }
        resp
    }

    fn auth(&self, req: &HttpRequest) -> Option<String> {
        let header = |name: &str| req.headers().get(name)?.to_str().ok().map(str::to_owned);
        let (user, token) = (header("x-user-id")?, header("x-auth-token")?);
        let st = self.state.lock();
        (st.tokens.get(&token) == Some(&user)).then_some(user)
    }

    fn user_json(u: &User) -> Value {
        json!({
            "_id": u.id, "username": u.username, "name": u.name, "status": "online",
            "active": true, "type": if u.integration { "bot" } else { "user" },
            "roles": if u.integration { json!(["bot"]) } else { json!(["user"]) },
            "utcOffset": 0,
        })
    }

    fn new_id(st: &mut State) -> String {
        st.next_id += 1;
        format!("M{:016}", st.next_id)
    }

    /// Sends `message` to every subscribed socket of a member of `room`.
    fn broadcast(st: &mut State, room: &Room, message: &Value) {
        let mut meta = json!({"roomParticipant": true, "roomType": room.kind});
        if let Some(name) = &room.name {
            meta["roomName"] = json!(name);
        }
        let event = json!({
            "msg": "changed", "collection": "stream-room-messages", "id": "id",
            "fields": {"eventName": "__my_messages__", "args": [message, meta]},
        })
        .to_string();
        st.sockets.retain(|_, s| {
            let member = s.user.as_ref().is_some_and(|u| room.members.contains(u));
            !(s.subscribed && member) || s.tx.send(WsCmd::Text(event.clone())).is_ok()
        });
    }

    /// The direct room of two users, created if need be.
    fn direct_room(st: &mut State, a: &str, b: &str) -> Room {
        let mut ids = [a.to_owned(), b.to_owned()];
        ids.sort();
        let id = ids.concat();
        if let Some(room) = st.rooms.iter().find(|r| r.id == id) {
            return room.clone();
        }
        let room = Room {
            id,
            name: None,
            kind: "d",
            members: ids.to_vec(),
        };
        st.rooms.push(room.clone());
        room
    }

    /// Stores a message and streams it; `Err` is a REST error answer's status, error and type.
    fn create_message(
        &self,
        user_id: &str,
        rid: &str,
        text: &str,
        tmid: Option<&str>,
        attachments: Option<Value>,
        id: Option<&str>,
    ) -> Result<Value, (u16, String, &'static str)> {
        let mut st = self.state.lock();
        if let Some(id) = id.filter(|id| st.messages.iter().any(|m| m.str("_id") == *id)) {
            st.not_posted_again.push(id.to_owned());
            return Err((
                400,
                "Cannot read properties of undefined (reading 'starred')".to_owned(),
                "TypeError",
            ));
        }
        let user = st.users.iter().find(|u| u.id == user_id).cloned().ok_or((
            401,
            "You must be logged in to do this.".to_owned(),
            "unauthorized",
        ))?;
        let room = st.rooms.iter().find(|r| r.id == rid).cloned().ok_or((
            400,
            "The required \"roomId\" or \"channel\" param provided does not match any channel [error-room-not-found]".to_owned(),
            "error-room-not-found",
        ))?;
        if !room.members.iter().any(|m| m == user_id) {
            return Err((
                400,
                "You can't send messages because you are not in the room [error-not-allowed]"
                    .to_owned(),
                "error-not-allowed",
            ));
        }
        if js_length(text) > MAX_ALLOWED_SIZE {
            return Err((
                400,
                "Message size exceeds Message_MaxAllowedSize [error-message-size-exceeded]"
                    .to_owned(),
                "error-message-size-exceeded",
            ));
        }
        if let Some(tmid) = tmid {
            let root = st
                .messages
                .iter()
                .position(|m| m.str("_id") == tmid && m.str("rid") == rid)
                .ok_or((
                    400,
                    "Invalid thread [error-invalid-message]".to_owned(),
                    "error-invalid-message",
                ))?;
            // The thread's first message counts its replies, and is streamed again.
            let root_message = &mut st.messages[root].message;
            let count = root_message["tcount"].as_u64().unwrap_or(0) + 1;
            root_message["tcount"] = json!(count);
            root_message["tlm"] = json!({"$date": now_ms()});
            root_message["_updatedAt"] = json!({"$date": now_ms()});
            let updated = root_message.clone();
            Self::broadcast(&mut st, &room, &updated);
        }
        let now = now_ms();
        let id = match id {
            Some(id) => id.to_owned(),
            None => Self::new_id(&mut st),
        };
        let mut message = json!({
            "_id": id, "rid": rid, "msg": text, "ts": {"$date": now},
            "u": {"_id": user.id, "username": user.username, "name": user.name},
            "_updatedAt": {"$date": now}, "urls": [], "mentions": [], "channels": [], "md": [],
        });
        if let Some(tmid) = tmid {
            message["tmid"] = json!(tmid);
        }
        if let Some(attachments) = attachments {
            message["attachments"] = attachments;
        }
        if user.integration {
            message["bot"] = json!({"i": "integration-7"});
        }
        st.messages.push(Stored {
            message: message.clone(),
            at: Instant::now(),
        });
        Self::broadcast(&mut st, &room, &message);
        Ok(message)
    }
}

/// `GET /api/v1/me`: the authenticated account
/// (https://developer.rocket.chat/apidocs/get-profile-information).
async fn me(req: HttpRequest, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    let st = shared.state.lock();
    let user = st.users.iter().find(|u| u.id == me).cloned();
    drop(st);
    match user {
        Some(u) => {
            let mut v = Shared::user_json(&u);
            v["success"] = json!(true);
            HttpResponse::Ok().json(v)
        }
        None => unauthorized(),
    }
}

/// `GET /api/v1/users.info?userId=`: a user by id, `{"user", "success"}`
/// (https://developer.rocket.chat/apidocs/get-users-info).
async fn users_info(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some((_, st)) = shared.request(&req, "GET /api/v1/users.info") else {
        return unauthorized();
    };
    let wanted = query.get("userId").cloned().unwrap_or_default();
    match st.users.iter().find(|u| u.id == wanted) {
        Some(u) => HttpResponse::Ok().json(json!({"user": Shared::user_json(u), "success": true})),
        None => failure(400, "User not found.", "error-invalid-user"),
    }
}

/// `POST /api/v1/im.create {"username"}`: the direct room, `{"room": {"_id", "rid", "t",
/// "usernames"}, "success"}`; without `username` (or `usernames`) the schema's 400
/// (https://developer.rocket.chat/apidocs/create-dm).
async fn im_create(
    req: HttpRequest,
    body: web::Json<Value>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some((me, mut st)) = shared.request(&req, "POST /api/v1/im.create") else {
        return unauthorized();
    };
    let Some(username) = body.get("username").and_then(Value::as_str) else {
        return failure(
            400,
            "must have required property 'usernames'\n must have required property 'username'\n must match exactly one schema in oneOf [invalid-params]",
            "invalid-params",
        );
    };
    let Some(other) = st.users.iter().find(|u| u.username == username).cloned() else {
        return failure(
            400,
            "Failed to create direct message [error-invalid-user]",
            "error-invalid-user",
        );
    };
    let room = Shared::direct_room(&mut st, &me, other.id);
    let usernames: Vec<&str> = room
        .members
        .iter()
        .filter_map(|m| st.users.iter().find(|u| u.id == *m).map(|u| u.username))
        .collect();
    HttpResponse::Ok().json(json!({
        "room": {"_id": room.id, "rid": room.id, "t": "d", "usernames": usernames},
        "success": true,
    }))
}

/// `GET /api/v1/rooms.get?updatedSince=`: the rooms the account is in, those updated after
/// `updatedSince` if given (https://developer.rocket.chat/apidocs/get-rooms).
async fn rooms_get(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some((me, st)) = shared.request(&req, "GET /api/v1/rooms.get") else {
        return unauthorized();
    };
    let since = match query.get("updatedSince") {
        None => None,
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.timestamp_millis() as u64),
            Err(_) => {
                return failure(
                    400,
                    "The \"updatedSince\" query parameter must be a valid date.",
                    "error-updatedSince-param-invalid",
                )
            }
        },
    };
    let mut update = Vec::new();
    for room in st.rooms.iter().filter(|r| r.members.contains(&me)) {
        let messages: Vec<&Stored> = st
            .messages
            .iter()
            .filter(|m| m.str("rid") == room.id)
            .collect();
        let last = messages.iter().max_by_key(|m| date_of(&m.message, "ts"));
        let updated = messages
            .iter()
            .map(|m| date_of(&m.message, "_updatedAt"))
            .max()
            .unwrap_or(st.started_ms);
        if since.is_some_and(|since| updated <= since) {
            continue;
        }
        let mut v = json!({
            "_id": room.id, "t": room.kind, "msgs": messages.len(),
            "usersCount": room.members.len(), "_updatedAt": iso(updated),
        });
        if let Some(name) = &room.name {
            v["name"] = json!(name);
        }
        if let Some(last) = last {
            v["lm"] = json!(iso(date_of(&last.message, "ts")));
            v["lastMessage"] = rest_message(&last.message);
        }
        update.push(v);
    }
    HttpResponse::Ok().json(json!({"update": update, "remove": [], "success": true}))
}

/// `GET /api/v1/chat.syncMessages?roomId=&lastUpdate=`: the room's messages updated after
/// `lastUpdate`, newest first (https://developer.rocket.chat/apidocs/sync-messages).
async fn sync_messages(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some((me, st)) = shared.request(&req, "GET /api/v1/chat.syncMessages") else {
        return unauthorized();
    };
    let Some(rid) = query.get("roomId").filter(|r| !r.is_empty()) else {
        return failure(
            400,
            "The required \"roomId\" query param is missing.",
            "error-roomId-param-not-provided",
        );
    };
    let Some(since) = query.get("lastUpdate").filter(|t| !t.is_empty()) else {
        return failure(
            400,
            "The required \"lastUpdate\" query param is missing.",
            "error-lastUpdate-param-not-provided",
        );
    };
    let Ok(since) = chrono::DateTime::parse_from_rfc3339(since) else {
        return failure(
            400,
            "The \"lastUpdate\" query parameter must be a valid date.",
            "error-roomId-param-invalid",
        );
    };
    let since = since.timestamp_millis() as u64;
    if !st
        .rooms
        .iter()
        .any(|r| r.id == *rid && r.members.contains(&me))
    {
        return failure(400, "Not allowed [error-not-allowed]", "error-not-allowed");
    }
    let mut updated: Vec<&Stored> = st
        .messages
        .iter()
        .filter(|m| m.str("rid") == rid && date_of(&m.message, "_updatedAt") > since)
        .collect();
    updated.sort_by_key(|m| std::cmp::Reverse(date_of(&m.message, "ts")));
    let updated: Vec<Value> = updated.iter().map(|m| rest_message(&m.message)).collect();
    HttpResponse::Ok().json(json!({
        "result": {"updated": updated, "deleted": []},
        "success": true,
    }))
}

/// `POST /api/v1/chat.postMessage`: `{"ts", "channel", "message", "success"}`, with `tmid`
/// for a thread reply (https://developer.rocket.chat/apidocs/post-message); the rate
/// limiter's headers and 429 (https://developer.rocket.chat/apidocs, "Rate limiting").
async fn post_message(
    req: HttpRequest,
    body: web::Json<Value>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    if let Some(refused) = shared.limiter("POST /api/v1/chat.postMessage") {
        return refused;
    }
    let Some(fields) = body.as_object() else {
        return failure(400, "must be object [invalid-params]", "invalid-params");
    };
    if let Some(refused) = outside_schema(fields, POST_MESSAGE_FIELDS) {
        return refused;
    }
    let Some(rid) = fields.get("roomId").and_then(Value::as_str) else {
        return failure(
            400,
            "The 'roomId' or 'channel' property must be provided [error-room-id-param-not-provided]",
            "error-room-id-param-not-provided",
        );
    };
    let text = fields
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tmid = fields.get("tmid").and_then(Value::as_str);
    let made = shared.create_message(
        &me,
        rid,
        text,
        tmid,
        fields.get("attachments").cloned(),
        None,
    );
    shared.answer_send(
        made,
        |message| json!({"ts": now_ms(), "channel": rid, "message": message, "success": true}),
    )
}

/// `POST /api/v1/chat.sendMessage`: `{"message", "success"}`
/// (https://developer.rocket.chat/apidocs/send-message); see the module's notes for a
/// message whose `_id` is taken.
async fn send_message(
    req: HttpRequest,
    body: web::Json<Value>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    if let Some(refused) = shared.limiter("POST /api/v1/chat.sendMessage") {
        return refused;
    }
    let Some(message) = body.get("message").and_then(Value::as_object) else {
        return failure(
            400,
            "must have required property 'message' [invalid-params]",
            "invalid-params",
        );
    };
    if let Some(refused) = outside_schema(message, SEND_MESSAGE_FIELDS) {
        return refused;
    }
    let text = |k: &str| message.get(k).and_then(Value::as_str);
    let Some(rid) = text("rid") else {
        return failure(
            400,
            "must have required property 'rid' [invalid-params]",
            "invalid-params",
        );
    };
    let made = shared.create_message(
        &me,
        rid,
        text("msg").unwrap_or_default(),
        text("tmid"),
        message.get("attachments").cloned(),
        text("_id"),
    );
    shared.answer_send(made, |message| json!({"message": message, "success": true}))
}

/// The 400 of a body with a field its endpoint's schema does not have (the schemas have
/// `additionalProperties: false`).
fn outside_schema(
    fields: &serde_json::Map<String, Value>,
    schema: &[&str],
) -> Option<HttpResponse> {
    fields
        .keys()
        .any(|k| !schema.contains(&k.as_str()))
        .then(|| {
            failure(
                400,
                "must NOT have additional properties [invalid-params]",
                "invalid-params",
            )
        })
}

/// `GET /api/v1/chat.getMessage?msgId=`: `{"message", "success"}`, or 400 `{"success": false}`
/// (https://developer.rocket.chat/apidocs/get-message).
async fn get_message(
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some((_, st)) = shared.request(&req, "GET /api/v1/chat.getMessage") else {
        return unauthorized();
    };
    let wanted = query.get("msgId").cloned().unwrap_or_default();
    match st.messages.iter().find(|m| m.str("_id") == wanted) {
        Some(m) => {
            HttpResponse::Ok().json(json!({"message": rest_message(&m.message), "success": true}))
        }
        None => HttpResponse::BadRequest().json(json!({"success": false})),
    }
}

/// One DDP message from a client, answered on `session`: `connect`, `ping`, `login` with
/// `resume` (https://developer.rocket.chat/apidocs/login-realtime), `sub` to
/// `stream-room-messages` (https://developer.rocket.chat/apidocs/stream-room-messages-realtime).
async fn ddp(
    shared: &Shared,
    socket: u64,
    text: &str,
    session: &mut actix_ws::Session,
) -> Result<(), actix_ws::Closed> {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let reply = match v.get("msg").and_then(Value::as_str).unwrap_or_default() {
        "connect" => {
            let speaks_1 = v["version"] == "1";
            if speaks_1 {
                shared.state.lock().connects += 1;
                json!({"msg": "connected", "session": format!("S{socket:016}")})
            } else {
                json!({"msg": "failed", "version": "1"})
            }
        }
        "ping" => {
            shared.state.lock().client_pings += 1;
            match id {
                Value::Null => json!({"msg": "pong"}),
                id => json!({"msg": "pong", "id": id}),
            }
        }
        "pong" => {
            let got = id.as_str().unwrap_or_default().to_owned();
            shared.state.lock().pongs.push(got);
            return Ok(());
        }
        "method" if v["method"] == "login" => {
            let token = v
                .pointer("/params/0/resume")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut st = shared.state.lock();
            let user = st.tokens.get(token).cloned().filter(|_| !st.refuse_login);
            match user {
                Some(user) => {
                    st.logins += 1;
                    if let Some(s) = st.sockets.get_mut(&socket) {
                        s.user = Some(user.clone());
                    }
                    json!({"msg": "result", "id": id, "result": {
                        "id": user, "token": token, "tokenExpires": {"$date": now_ms() + 86_400_000}, "type": "resume",
                    }})
                }
                None => json!({"msg": "result", "id": id, "error": {
                    "isClientSafe": true, "error": 403,
                    "reason": "You've been logged out by the server. Please log in again.",
                    "message": "You've been logged out by the server. Please log in again. [403]",
                    "errorType": "Meteor.Error",
                }}),
            }
        }
        "method" => {
            let name = v["method"].as_str().unwrap_or_default();
            json!({"msg": "result", "id": id, "error": {
                "isClientSafe": true, "error": 404, "reason": format!("Method '{name}' not found"),
                "message": format!("Method '{name}' not found [404]"), "errorType": "Meteor.Error",
            }})
        }
        "sub" => {
            let mine = v["name"] == "stream-room-messages"
                && v.pointer("/params/0") == Some(&json!("__my_messages__"));
            let mut st = shared.state.lock();
            let logged_in = st.sockets.get(&socket).is_some_and(|s| s.user.is_some());
            if mine && logged_in {
                st.subs += 1;
                if let Some(s) = st.sockets.get_mut(&socket) {
                    s.subscribed = true;
                }
                json!({"msg": "ready", "subs": [id]})
            } else {
                json!({"msg": "nosub", "id": id, "error": {
                    "isClientSafe": true, "error": "not-allowed", "reason": "Not allowed",
                    "message": "Not allowed [not-allowed]", "errorType": "Meteor.Error",
                }})
            }
        }
        _ => return Ok(()),
    };
    session.text(reply.to_string()).await
}

/// The realtime API's websocket, `/websocket`
/// (https://developer.rocket.chat/reference/api/realtime-api).
async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Arc<Shared>>,
) -> Result<HttpResponse, actix_web::Error> {
    {
        let mut st = shared.state.lock();
        st.ws_attempts += 1;
        if st.refuse_ws {
            return Ok(HttpResponse::ServiceUnavailable().body("Service Unavailable"));
        }
    }
    let (resp, mut session, mut stream) = actix_ws::handle(&req, body)?;
    let shared = shared.get_ref().clone();
    actix_rt::spawn(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<WsCmd>();
        let socket = {
            let mut st = shared.state.lock();
            st.next_socket += 1;
            let n = st.next_socket;
            st.sockets.insert(
                n,
                Socket {
                    user: None,
                    subscribed: false,
                    tx,
                },
            );
            n
        };
        // Meteor's first message, before the client says anything.
        let mut open = session
            .text(json!({"server_id": "0"}).to_string())
            .await
            .is_ok();
        while open {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(actix_ws::Message::Text(text))) => {
                        open = ddp(&shared, socket, &text, &mut session).await.is_ok();
                    }
                    Some(Ok(actix_ws::Message::Ping(bytes))) => {
                        open = session.pong(&bytes).await.is_ok();
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => open = false,
                    Some(Ok(_)) => {}
                },
                cmd = rx.recv() => match cmd {
                    Some(WsCmd::Text(text)) => open = session.text(text).await.is_ok(),
                    Some(WsCmd::Close) | None => open = false,
                },
            }
        }
        shared.state.lock().sockets.remove(&socket);
        let _ = session.close(None).await;
    });
    Ok(resp)
}

/// The fake server; stops when dropped.
pub struct FakeRocketChat {
    server: FakeServer,
    shared: Arc<Shared>,
}

impl FakeRocketChat {
    pub async fn start() -> Self {
        let mut st = State {
            users: vec![
                User {
                    id: BOT,
                    username: "stormbot",
                    name: "Storm Bot",
                    integration: false,
                },
                User {
                    id: ALICE,
                    username: "alice",
                    name: "Alice A",
                    integration: false,
                },
                User {
                    id: BOB,
                    username: "bob",
                    name: "Bob B",
                    integration: false,
                },
                User {
                    id: OTHER_BOT,
                    username: "otherbot",
                    name: "Other Bot",
                    integration: true,
                },
            ],
            started_ms: now_ms(),
            ..State::default()
        };
        st.tokens.insert(BOT_TOKEN.into(), BOT.into());
        st.rooms.push(Room {
            id: GENERAL.into(),
            name: Some("general".into()),
            kind: "c",
            members: [BOT, ALICE, BOB, OTHER_BOT].map(str::to_owned).to_vec(),
        });
        st.rooms.push(Room {
            id: OPS.into(),
            name: Some("ops".into()),
            kind: "p",
            members: [BOT, ALICE].map(str::to_owned).to_vec(),
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
        });
        let data = web::Data::new(shared.clone());
        let server = FakeServer::start("fake-rocketchat", move |app, _| {
            app.app_data(data.clone())
                .app_data(web::JsonConfig::default().limit(4 << 20))
                .route("/api/v1/me", web::get().to(me))
                .route("/api/v1/users.info", web::get().to(users_info))
                .route("/api/v1/im.create", web::post().to(im_create))
                .route("/api/v1/chat.postMessage", web::post().to(post_message))
                .route("/api/v1/chat.sendMessage", web::post().to(send_message))
                .route("/api/v1/chat.getMessage", web::get().to(get_message))
                .route("/api/v1/rooms.get", web::get().to(rooms_get))
                .route("/api/v1/chat.syncMessages", web::get().to(sync_messages))
                .route("/websocket", web::get().to(websocket))
                .default_service(web::to(|| async {
                    failure(404, "Not found", "error-not-found")
                }));
        });
        FakeRocketChat { server, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The `[[chat]]` table for the bridge (`extra` lines appended).
    pub fn chat_toml(&self, extra: &str) -> String {
        format!(
            "[[chat]]\nname = \"rc\"\nbackend = \"rocketchat\"\nserver_url = \"{}\"\nuser_id = \"{BOT}\"\ntoken = \"{BOT_TOKEN}\"\nping_interval_secs = 2\nsend_interval_ms = 10\n{extra}\n",
            self.url()
        )
    }

    /// `user` says `text` in `rid` (in the thread `tmid`), as a client would; the message id.
    pub fn post_as(&self, user: &str, rid: &str, text: &str, tmid: Option<&str>) -> String {
        match self
            .shared
            .create_message(user, rid, text, tmid, None, None)
        {
            Ok(m) => m["_id"].as_str().unwrap_or_default().to_owned(),
            Err(e) => panic!("the fake refused the test's message: {e:?}"),
        }
    }

    /// The direct room of two users (created as `im.create` would).
    pub fn direct_room(&self, a: &str, b: &str) -> String {
        Shared::direct_room(&mut self.shared.state.lock(), a, b).id
    }

    /// `id`'s author edits it to `text`: the stream sends it again with `editedAt`.
    pub fn edit(&self, id: &str, text: &str) {
        let mut st = self.shared.state.lock();
        let Some(at) = st.messages.iter().position(|m| m.str("_id") == id) else {
            panic!("no message {id}");
        };
        let message = &mut st.messages[at].message;
        message["msg"] = json!(text);
        message["editedAt"] = json!({"$date": now_ms()});
        message["_updatedAt"] = json!({"$date": now_ms()});
        message["editedBy"] =
            json!({"_id": message["u"]["_id"], "username": message["u"]["username"]});
        let message = message.clone();
        let room = st
            .rooms
            .iter()
            .find(|r| r.id == message["rid"].as_str().unwrap_or_default())
            .cloned()
            .expect("the message's room");
        Shared::broadcast(&mut st, &room, &message);
    }

    /// A system message in `rid` (`t` as the message object's types: `uj` a user joined, …).
    pub fn system_message(&self, rid: &str, t: &str, user: &str) {
        let mut st = self.shared.state.lock();
        let u = st
            .users
            .iter()
            .find(|u| u.id == user)
            .cloned()
            .expect("a user");
        let room = st
            .rooms
            .iter()
            .find(|r| r.id == rid)
            .cloned()
            .expect("a room");
        let now = now_ms();
        let message = json!({
            "_id": Shared::new_id(&mut st), "rid": rid, "msg": u.username, "t": t,
            "ts": {"$date": now}, "u": {"_id": u.id, "username": u.username}, "_updatedAt": {"$date": now},
            "groupable": false,
        });
        st.messages.push(Stored {
            message: message.clone(),
            at: Instant::now(),
        });
        Shared::broadcast(&mut st, &room, &message);
    }

    /// Every message by the bot, oldest first.
    pub fn bot_messages(&self) -> Vec<Stored> {
        let st = self.shared.state.lock();
        st.messages
            .iter()
            .filter(|m| m.message["u"]["_id"] == BOT)
            .cloned()
            .collect()
    }

    /// The bot's messages in `rid` containing `needle`.
    pub fn bot_messages_containing(&self, rid: &str, needle: &str) -> Vec<Stored> {
        self.bot_messages()
            .into_iter()
            .filter(|m| m.str("rid") == rid && m.str("msg").contains(needle))
            .collect()
    }

    /// The `_id`s `chat.sendMessage` was given again, and posted nothing for.
    pub fn not_posted_again(&self) -> Vec<String> {
        self.shared.state.lock().not_posted_again.clone()
    }

    /// REST requests of the kinds recorded (`POST /api/v1/im.create`, …).
    pub fn requests(&self, what: &str) -> usize {
        self.shared
            .state
            .lock()
            .requests
            .iter()
            .filter(|r| *r == what)
            .count()
    }

    /// While true, websocket upgrades get 503.
    pub fn refuse_websockets(&self, refuse: bool) {
        self.shared.state.lock().refuse_ws = refuse;
    }

    /// Closes every websocket (a restart, a load balancer).
    pub fn drop_websockets(&self) {
        let st = self.shared.state.lock();
        for s in st.sockets.values() {
            let _ = s.tx.send(WsCmd::Close);
        }
    }

    /// While true, realtime logins are refused (the token was revoked for the realtime API).
    pub fn refuse_realtime_login(&self, refuse: bool) {
        self.shared.state.lock().refuse_login = refuse;
    }

    /// The server sends a `ping` with `id` on every socket.
    pub fn server_ping(&self, id: &str) {
        let st = self.shared.state.lock();
        let ping = json!({"msg": "ping", "id": id}).to_string();
        for s in st.sockets.values() {
            let _ = s.tx.send(WsCmd::Text(ping.clone()));
        }
    }

    /// The ids of the `pong`s the server got.
    pub fn pongs(&self) -> Vec<String> {
        self.shared.state.lock().pongs.clone()
    }

    /// `ping`s the server got from clients.
    pub fn client_pings(&self) -> usize {
        self.shared.state.lock().client_pings
    }

    pub fn ws_attempts(&self) -> usize {
        self.shared.state.lock().ws_attempts
    }

    /// Accepted `connect`s, realtime logins and `__my_messages__` subscriptions.
    pub fn handshakes(&self) -> (usize, usize, usize) {
        let st = self.shared.state.lock();
        (st.connects, st.logins, st.subs)
    }

    /// The next `chat.postMessage` opens a window of `window` in which every one gets a 429
    /// saying how long is left (in whole seconds, rounded up, and as the reset time): a
    /// client that waits as told is refused once, one that retries sooner again.
    pub fn rate_limit_window(&self, window: Duration) {
        self.shared.state.lock().window_armed = Some(window);
    }

    /// The next `n` accepted sends say the window is used up (`X-RateLimit-Remaining: 0`,
    /// resetting `reset` later); a send before that reset gets a 429.
    pub fn exhaust_window_next(&self, n: u32, reset: Duration) {
        let mut st = self.shared.state.lock();
        st.exhaust_next = n;
        st.exhaust_reset = reset;
    }

    pub fn rate_limited_at(&self) -> Vec<Instant> {
        self.shared.state.lock().rate_limited_at.clone()
    }
}

impl Drop for FakeRocketChat {
    fn drop(&mut self) {
        self.drop_websockets();
    }
}
