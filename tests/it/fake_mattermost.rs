//! A fake Mattermost server: the parts of API v4 the bridge uses, with Mattermost's
//! published JSON shapes, on a random loopback port in its own thread.
//!
//! REST: `GET /users/me`, `GET /teams/name/{name}`, `GET /teams/{id}`,
//! `POST /channels/direct`, `POST /posts` (401 without the bearer token, 400 for a missing
//! channel, a message over 16383 characters or an unknown `root_id`, 403 for a channel the
//! author is not in, 429 with `Retry-After` and `X-Ratelimit-*` when told to).
//! `GET /channels/{id}/posts?since=` (a `PostList` of the channel's posts changed after that
//! moment, replies included; 403 for a channel the reader is not in).
//! Websocket `/api/v4/websocket`: `authentication_challenge` → `{"status":"OK","seq_reply":n}`
//! then `hello` with a `connection_id`; events carry a per-connection `seq` from 0. A client
//! reconnecting with `?connection_id=…&sequence_number=…` resumes: it gets the events it
//! missed (from a per-connection buffer) and no new `hello`. A `posted` event goes to every
//! authenticated connection of a channel member, with `data.post` as a JSON string. Posts
//! by bot accounts get `props.from_bot = "true"`, as on a real server.
//!
//! Interactive message buttons
//! (https://developers.mattermost.com/integrate/plugins/interactive-messages/): a post's
//! `props.attachments[].actions[].integration` (`url`, `context`) stays on the server — the
//! API's answer and the `posted` event carry the post without it, as the server's
//! `Post.StripActionIntegrations` does. [`FakeMattermost::press`] is a user pressing a
//! button: the server POSTs `{user_id, user_name, channel_id, channel_name, team_id,
//! team_domain, post_id, trigger_id, type, data_source, context}` (its
//! `PostActionIntegrationRequest`) to the integration's `url`, then applies the answer:
//! `update` replaces the post's `message` (and its `props`, when given), `ephemeral_text`
//! is shown to the presser only.

use std::{collections::HashMap, sync::Arc, time::Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::fake_server::FakeServer;

/// The bridge's bot token.
pub const BOT_TOKEN: &str = "mm-bot-token-7f3c9a";
/// Mattermost's post length limit (runes).
pub const MAX_POST_CHARS: usize = 16383;

#[derive(Clone)]
struct User {
    id: String,
    username: String,
    is_bot: bool,
}

#[derive(Clone)]
struct Channel {
    id: String,
    team_id: String,
    name: String,
    display_name: String,
    kind: &'static str,
    members: Vec<String>,
}

/// A post the server accepted, and when.
#[derive(Clone, Debug)]
pub struct StoredPost {
    pub post: Value,
    pub at: Instant,
}

impl StoredPost {
    pub fn str(&self, key: &str) -> &str {
        self.post
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Status, error id and message of an API error.
type ApiError = (u16, &'static str, &'static str);

enum WsCmd {
    /// An event, `seq` already set.
    Event(Value),
    Close,
}

/// Events kept per connection for a resume (Mattermost's "dead queue").
const DEAD_QUEUE: usize = 128;

/// A websocket connection id's state; it outlives the socket so that a client can resume
/// with `?connection_id=…&sequence_number=…` and get the events it missed.
struct Conn {
    user_id: String,
    next_seq: u64,
    buffer: std::collections::VecDeque<Value>,
    tx: Option<mpsc::UnboundedSender<WsCmd>>,
}

impl Conn {
    fn deliver(&mut self, mut event: Value) {
        event["seq"] = json!(self.next_seq);
        self.next_seq += 1;
        self.buffer.push_back(event.clone());
        if self.buffer.len() > DEAD_QUEUE {
            self.buffer.pop_front();
        }
        if let Some(tx) = &self.tx {
            if tx.send(WsCmd::Event(event)).is_err() {
                self.tx = None;
            }
        }
    }

    /// Events from `seq` on, if they are all still buffered.
    fn since(&self, seq: u64) -> Option<Vec<Value>> {
        if seq == self.next_seq {
            return Some(Vec::new());
        }
        let first = self.buffer.front()?.get("seq")?.as_u64()?;
        (seq >= first && seq < self.next_seq).then(|| {
            self.buffer
                .iter()
                .filter(|e| e["seq"].as_u64().is_some_and(|s| s >= seq))
                .cloned()
                .collect()
        })
    }
}

#[derive(Default)]
struct State {
    users: Vec<User>,
    tokens: HashMap<String, String>,
    channels: Vec<Channel>,
    posts: Vec<StoredPost>,
    conns: HashMap<String, Conn>,
    resumes: usize,
    ignore_auth: bool,
    exhaust_window_next: u32,
    refuse_ws: bool,
    ws_attempts: usize,
    ws_auths: usize,
    rate_limit_next: u32,
    /// The next `POST /posts` opens a rate-limit window this long
    /// ([`FakeMattermost::rate_limit_window`]).
    window_armed: Option<std::time::Duration>,
    /// Every `POST /posts` before this instant gets a 429.
    limited_until: Option<Instant>,
    retry_after_secs: u64,
    rate_limited_at: Vec<Instant>,
    requests: Vec<String>,
    /// `(user id, text)` of each ephemeral message an integration answered with.
    ephemerals: Vec<(String, String)>,
    /// `POST /posts` whose message contains this create the post and then answer 503, this
    /// many times: the answer is lost after the server saved the post
    /// ([`FakeMattermost::lose_answers_to`]).
    lost_answers: Option<(String, u32)>,
}

/// The post as clients see it: action integrations (`url`, `context`) removed.
fn strip_action_integrations(mut post: Value) -> Value {
    if let Some(attachments) = post
        .pointer_mut("/props/attachments")
        .and_then(Value::as_array_mut)
    {
        for attachment in attachments {
            if let Some(actions) = attachment.get_mut("actions").and_then(Value::as_array_mut) {
                for action in actions {
                    if let Some(a) = action.as_object_mut() {
                        a.remove("integration");
                    }
                }
            }
        }
    }
    post
}

struct Shared {
    state: Mutex<State>,
    team_id: String,
    team_name: String,
}

/// The fake server; stops when dropped.
pub struct FakeMattermost {
    server: FakeServer,
    shared: Arc<Shared>,
    pub bot_id: String,
    pub alice_id: String,
    /// A second person, in `town-square` too.
    pub bob_id: String,
    pub other_bot_id: String,
    /// `town-square`, a public channel of the team with alice and the bot in it.
    pub town_square: String,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..26].to_owned()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Mattermost's answer to a missing or unknown token.
fn unauthorized() -> HttpResponse {
    mm_error(
        401,
        "api.context.session_expired.app_error",
        "Invalid or expired session, please login again.",
    )
}

fn mm_error(status: u16, id: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default()).json(
        json!({"id": id, "message": message, "detailed_error": "", "request_id": new_id(), "status_code": status}),
    )
}

impl Shared {
    fn auth(&self, req: &HttpRequest) -> Option<String> {
        let header = req.headers().get("authorization")?.to_str().ok()?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))?;
        self.state.lock().tokens.get(token).cloned()
    }

    fn user_json(u: &User) -> Value {
        json!({
            "id": u.id, "create_at": 1, "update_at": 1, "delete_at": 0, "username": u.username,
            "auth_data": "", "auth_service": "", "email": format!("{}@example.com", u.username),
            "nickname": "", "first_name": "", "last_name": "", "position": "", "roles": "system_user",
            "locale": "en", "is_bot": u.is_bot,
        })
    }

    fn team_json(&self) -> Value {
        json!({
            "id": self.team_id, "create_at": 1, "update_at": 1, "delete_at": 0,
            "display_name": "Ops Team", "name": self.team_name, "description": "", "email": "",
            "type": "O", "company_name": "", "allowed_domains": "", "invite_id": "",
            "allow_open_invite": false,
        })
    }

    fn channel_json(c: &Channel) -> Value {
        json!({
            "id": c.id, "create_at": 1, "update_at": 1, "delete_at": 0, "team_id": c.team_id,
            "type": c.kind, "display_name": c.display_name, "name": c.name, "header": "",
            "purpose": "", "last_post_at": 0, "total_msg_count": 0, "extra_update_at": 0,
            "creator_id": "",
        })
    }

    fn direct_channel(&self, a: &str, b: &str) -> Option<Channel> {
        let mut st = self.state.lock();
        if !st.users.iter().any(|u| u.id == a) || !st.users.iter().any(|u| u.id == b) {
            return None;
        }
        let mut ids = [a.to_owned(), b.to_owned()];
        ids.sort();
        let name = format!("{}__{}", ids[0], ids[1]);
        if let Some(c) = st.channels.iter().find(|c| c.name == name) {
            return Some(c.clone());
        }
        let c = Channel {
            id: new_id(),
            team_id: String::new(),
            name,
            display_name: String::new(),
            kind: "D",
            members: ids.to_vec(),
        };
        st.channels.push(c.clone());
        Some(c)
    }

    /// Stores a post and broadcasts `posted`; `Err` is an API error response.
    fn create_post(
        &self,
        user_id: &str,
        channel_id: &str,
        message: &str,
        root_id: &str,
        mut props: serde_json::Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let mut st = self.state.lock();
        let Some(user) = st.users.iter().find(|u| u.id == user_id).cloned() else {
            return Err((
                401,
                "api.context.session_expired.app_error",
                "Invalid or expired session, please login again.",
            ));
        };
        let Some(channel) = st.channels.iter().find(|c| c.id == channel_id).cloned() else {
            return Err((
                400,
                "api.context.invalid_body_param.app_error",
                "Invalid or missing channel_id in request body.",
            ));
        };
        if !channel.members.contains(&user.id) {
            return Err((
                403,
                "api.context.permissions.app_error",
                "You do not have the appropriate permissions.",
            ));
        }
        if message.chars().count() > MAX_POST_CHARS {
            return Err((400, "model.post.is_valid.msg.app_error", "Invalid message."));
        }
        if !root_id.is_empty()
            && !st
                .posts
                .iter()
                .any(|p| p.str("id") == root_id && p.str("channel_id") == channel_id)
        {
            return Err((
                400,
                "api.post.create_post.root_id.app_error",
                "Invalid RootId parameter.",
            ));
        }
        if user.is_bot {
            props.insert("from_bot".into(), json!("true"));
        }
        let now = now_ms();
        let post = json!({
            "id": new_id(), "create_at": now, "update_at": now, "edit_at": 0, "delete_at": 0,
            "is_pinned": false, "user_id": user.id, "channel_id": channel.id, "root_id": root_id,
            "original_id": "", "message": message, "type": "", "props": props, "hashtags": "",
            "pending_post_id": "", "reply_count": 0, "metadata": {},
        });
        st.posts.push(StoredPost {
            post: post.clone(),
            at: Instant::now(),
        });
        let post = strip_action_integrations(post);
        let event = json!({
            "event": "posted",
            "data": {
                "channel_display_name": channel.display_name,
                "channel_name": channel.name,
                "channel_type": channel.kind,
                "post": post.to_string(),
                "sender_name": format!("@{}", user.username),
                "set_online": true,
                "team_id": channel.team_id,
            },
            "broadcast": {"omit_users": null, "user_id": "", "channel_id": channel.id, "team_id": "",
                          "connection_id": "", "omit_connection_id": ""},
        });
        for conn in st.conns.values_mut() {
            if channel.members.contains(&conn.user_id) {
                conn.deliver(event.clone());
            }
        }
        Ok(post)
    }
}

async fn users_me(req: HttpRequest, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    let st = shared.state.lock();
    match st.users.iter().find(|u| u.id == me) {
        Some(u) => HttpResponse::Ok().json(Shared::user_json(u)),
        None => mm_error(
            404,
            "app.user.missing_account.const",
            "Unable to find the user.",
        ),
    }
}

async fn team_by_name(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if shared.auth(&req).is_none() {
        return unauthorized();
    }
    if *path == shared.team_name {
        HttpResponse::Ok().json(shared.team_json())
    } else {
        mm_error(
            404,
            "app.team.get_by_name.missing.app_error",
            "Unable to find the existing team.",
        )
    }
}

async fn team_by_id(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if shared.auth(&req).is_none() {
        return unauthorized();
    }
    if *path == shared.team_id {
        HttpResponse::Ok().json(shared.team_json())
    } else {
        mm_error(
            404,
            "app.team.get.find.app_error",
            "Unable to find the existing team.",
        )
    }
}

async fn channels_direct(
    req: HttpRequest,
    body: web::Json<Vec<String>>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    shared
        .state
        .lock()
        .requests
        .push("POST /channels/direct".into());
    if body.len() != 2 || !body.contains(&me) {
        return mm_error(
            400,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing user_ids in request body.",
        );
    }
    match shared.direct_channel(&body[0], &body[1]) {
        Some(c) => HttpResponse::Created().json(Shared::channel_json(&c)),
        None => mm_error(
            400,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing user_ids in request body.",
        ),
    }
}

async fn channel_by_id(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    let st = shared.state.lock();
    match readable_channel(&st, &path, &me) {
        Ok(c) => HttpResponse::Ok().json(Shared::channel_json(c)),
        Err(refused) => *refused,
    }
}

/// Channel `id` if `user` may read it (`read_channel`: a member, or anyone in a public
/// channel); else Mattermost's 403, or its 404 for a channel it does not know.
fn readable_channel<'a>(
    st: &'a State,
    id: &str,
    user: &str,
) -> Result<&'a Channel, Box<HttpResponse>> {
    match st.channels.iter().find(|c| c.id == id) {
        Some(c) if c.kind == "O" || c.members.iter().any(|m| m == user) => Ok(c),
        Some(_) => Err(Box::new(mm_error(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        ))),
        None => Err(Box::new(mm_error(
            404,
            "app.channel.get.existing.app_error",
            "Unable to find the existing channel.",
        ))),
    }
}

/// `GET /api/v4/channels/{channel_id}/posts?since=…`
/// (https://developers.mattermost.com/api-documentation/#/operations/GetPostsForChannel):
/// with `since` (Unix milliseconds), the channel's posts created or changed after it, replies
/// in threads among them, as a `PostList` (`order`, newest first, and `posts` by id); needs
/// `read_channel` (a member, or anyone in a public channel).
async fn channel_posts(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    let mut st = shared.state.lock();
    st.requests.push("GET /channels/posts".into());
    if let Err(refused) = readable_channel(&st, &path, &me) {
        return *refused;
    }
    let since = query
        .get("since")
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    let mut order = Vec::new();
    let mut posts = serde_json::Map::new();
    for p in st.posts.iter().rev() {
        let changed = p.post["update_at"].as_i64().unwrap_or(0);
        if p.str("channel_id") == path.as_str() && changed > since {
            order.push(json!(p.str("id")));
            posts.insert(
                p.str("id").to_owned(),
                strip_action_integrations(p.post.clone()),
            );
        }
    }
    HttpResponse::Ok().json(json!({"order": order, "posts": posts,
        "next_post_id": "", "prev_post_id": "", "has_next": false}))
}

async fn channel_by_name(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    let (team, name) = path.into_inner();
    let st = shared.state.lock();
    match st
        .channels
        .iter()
        .find(|c| c.team_id == team && c.name == name)
    {
        Some(c) if c.kind == "O" || c.members.contains(&me) => {
            HttpResponse::Ok().json(Shared::channel_json(c))
        }
        _ => mm_error(
            404,
            "app.channel.get_by_name.missing.app_error",
            "Channel does not exist.",
        ),
    }
}

async fn add_member(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    let user = body
        .get("user_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut st = shared.state.lock();
    st.requests
        .push(format!("POST /channels/{}/members", path.as_str()));
    let Some(c) = st.channels.iter_mut().find(|c| c.id == *path) else {
        return mm_error(
            404,
            "app.channel.get.existing.app_error",
            "Unable to find the existing channel.",
        );
    };
    if c.kind != "O" || user != me {
        return mm_error(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        );
    }
    if !c.members.contains(&user) {
        c.members.push(user.clone());
    }
    HttpResponse::Created().json(json!({
        "channel_id": c.id, "user_id": user, "roles": "channel_user", "last_viewed_at": 0,
        "msg_count": 0, "mention_count": 0, "notify_props": {}, "last_update_at": now_ms(),
    }))
}

async fn create_post(
    req: HttpRequest,
    body: web::Json<Value>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    {
        let mut st = shared.state.lock();
        st.requests.push("POST /posts".into());
        let now = Instant::now();
        if let Some(window) = st.window_armed.take() {
            st.limited_until = Some(now + window);
        }
        let window_left = st.limited_until.filter(|u| *u > now).map(|u| u - now);
        if st.rate_limit_next > 0 || window_left.is_some() {
            if window_left.is_none() {
                st.rate_limit_next -= 1;
            }
            st.rate_limited_at.push(now);
            // A closed window: the seconds left, rounded up, as Mattermost's headers say it.
            let retry =
                window_left.map_or(st.retry_after_secs, |left| left.as_secs_f64().ceil() as u64);
            return HttpResponse::TooManyRequests()
                .insert_header(("X-Ratelimit-Limit", "10"))
                .insert_header(("X-Ratelimit-Remaining", "0"))
                .insert_header(("X-Ratelimit-Reset", retry.to_string()))
                .insert_header(("Retry-After", retry.to_string()))
                .content_type("text/plain; charset=utf-8")
                .body("limit exceeded\n");
        }
    }
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default();
    let props = body
        .get("props")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let created = shared.create_post(
        &me,
        field("channel_id"),
        field("message"),
        field("root_id"),
        props,
    );
    let mut st = shared.state.lock();
    if let (Ok(_), Some((needle, n))) = (&created, &mut st.lost_answers) {
        if *n > 0 && field("message").contains(needle.as_str()) {
            *n -= 1;
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    drop(st);
    match created {
        Ok(post) => {
            let mut st = shared.state.lock();
            let remaining = if st.exhaust_window_next > 0 {
                st.exhaust_window_next -= 1;
                "0"
            } else {
                "9"
            };
            let reset = st.retry_after_secs.to_string();
            HttpResponse::Created()
                .insert_header(("X-Ratelimit-Limit", "10"))
                .insert_header(("X-Ratelimit-Remaining", remaining))
                .insert_header(("X-Ratelimit-Reset", reset))
                .json(post)
        }
        Err((status, id, message)) => mm_error(status, id, message),
    }
}

/// `PUT /api/v4/posts/{post_id}/patch`: the given fields of a post replaced, here
/// `message` and `props`; only its author may patch it without further permissions
/// (https://developers.mattermost.com/api-documentation/#/operations/PatchPost:
/// "Must have the `edit_post` permission", which a user holds for their own posts).
async fn patch_post(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let Some(me) = shared.auth(&req) else {
        return unauthorized();
    };
    let mut st = shared.state.lock();
    st.requests.push("PUT /posts/patch".into());
    let Some(p) = st.posts.iter_mut().find(|p| p.str("id") == path.as_str()) else {
        return mm_error(404, "app.post.get.app_error", "Unable to get the post.");
    };
    if p.str("user_id") != me {
        return mm_error(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        );
    }
    if let Some(message) = body.get("message") {
        p.post["message"] = message.clone();
    }
    if let Some(props) = body.get("props") {
        p.post["props"] = props.clone();
    }
    p.post["edit_at"] = json!(now_ms());
    HttpResponse::Ok().json(p.post.clone())
}

async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Arc<Shared>>,
) -> Result<HttpResponse, actix_web::Error> {
    {
        let mut st = shared.state.lock();
        st.ws_attempts += 1;
        if st.refuse_ws {
            return Ok(mm_error(
                503,
                "app.server.unavailable",
                "Server is restarting.",
            ));
        }
    }
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let wanted_id = query.get("connection_id").cloned().unwrap_or_default();
    let wanted_seq: Option<u64> = query.get("sequence_number").and_then(|s| s.parse().ok());
    let (resp, mut session, mut stream) = actix_ws::handle(&req, body)?;
    let shared = shared.get_ref().clone();
    actix_rt::spawn(async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<WsCmd>();
        let mut tx = Some(tx);
        let mut conn_id: Option<String> = None;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(actix_ws::Message::Text(text))) => {
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let n = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
                        let action = v.get("action").and_then(Value::as_str).unwrap_or_default();
                        let not_authenticated = json!({"status": "FAIL", "seq_reply": n, "error": {"id": "api.web_socket_router.not_authenticated.app_error", "message": "Not authenticated."}});
                        if action == "authentication_challenge" && shared.state.lock().ignore_auth {
                            continue;
                        }
                        let reply = if action == "authentication_challenge" {
                            let token = v.pointer("/data/token").and_then(Value::as_str).unwrap_or_default();
                            let mut st = shared.state.lock();
                            let user = st.tokens.get(token).cloned();
                            match (user, tx.take()) {
                                (Some(user_id), Some(sender)) => {
                                    st.ws_auths += 1;
                                    let resumable = st.conns.get(&wanted_id).filter(|c| c.user_id == user_id)
                                        .and_then(|c| wanted_seq.and_then(|seq| c.since(seq)));
                                    match resumable {
                                        Some(missed) => {
                                            st.resumes += 1;
                                            for e in missed {
                                                let _ = sender.send(WsCmd::Event(e));
                                            }
                                            if let Some(c) = st.conns.get_mut(&wanted_id) {
                                                c.tx = Some(sender);
                                            }
                                            conn_id = Some(wanted_id.clone());
                                        }
                                        None => {
                                            let id = new_id();
                                            let mut c = Conn { user_id, next_seq: 0, buffer: Default::default(), tx: Some(sender) };
                                            c.deliver(json!({"event": "hello", "data": {"server_version": "10.5.0.fake", "connection_id": id}, "broadcast": {"omit_users": null, "user_id": c.user_id, "channel_id": "", "team_id": ""}}));
                                            st.conns.insert(id.clone(), c);
                                            conn_id = Some(id);
                                        }
                                    }
                                    json!({"status": "OK", "seq_reply": n})
                                }
                                _ => not_authenticated,
                            }
                        } else if conn_id.is_none() {
                            not_authenticated
                        } else {
                            json!({"status": "OK", "seq_reply": n})
                        };
                        if session.text(reply.to_string()).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(actix_ws::Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                cmd = rx.recv(), if conn_id.is_some() => match cmd {
                    Some(WsCmd::Event(v)) => {
                        if session.text(v.to_string()).await.is_err() {
                            break;
                        }
                    }
                    Some(WsCmd::Close) | None => break,
                },
            }
        }
        if let Some(id) = conn_id {
            if let Some(c) = shared.state.lock().conns.get_mut(&id) {
                c.tx = None;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(resp)
}

impl FakeMattermost {
    pub async fn start() -> Self {
        let team_id = new_id();
        let (bot_id, alice_id, other_bot_id) = (new_id(), new_id(), new_id());
        let bob_id = new_id();
        let town_square = new_id();
        let mut st = State {
            retry_after_secs: 1,
            ..State::default()
        };
        st.users = vec![
            User {
                id: bot_id.clone(),
                username: "stormbot".into(),
                is_bot: true,
            },
            User {
                id: alice_id.clone(),
                username: "alice".into(),
                is_bot: false,
            },
            User {
                id: bob_id.clone(),
                username: "bob".into(),
                is_bot: false,
            },
            User {
                id: other_bot_id.clone(),
                username: "otherbot".into(),
                is_bot: true,
            },
        ];
        st.tokens.insert(BOT_TOKEN.into(), bot_id.clone());
        st.channels.push(Channel {
            id: town_square.clone(),
            team_id: team_id.clone(),
            name: "town-square".into(),
            display_name: "Town Square".into(),
            kind: "O",
            members: vec![
                bot_id.clone(),
                alice_id.clone(),
                other_bot_id.clone(),
                bob_id.clone(),
            ],
        });
        st.channels.push(Channel {
            id: new_id(),
            team_id: team_id.clone(),
            name: "ops-alerts".into(),
            display_name: "Ops Alerts".into(),
            kind: "O",
            members: vec![alice_id.clone()],
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            team_id,
            team_name: "ops-team".into(),
        });
        let data = web::Data::new(shared.clone());
        let server = FakeServer::start("fake-mattermost", move |app, _| {
            app.app_data(data.clone())
                .app_data(web::JsonConfig::default().limit(4 << 20))
                .route("/api/v4/users/me", web::get().to(users_me))
                .route("/api/v4/teams/name/{name}", web::get().to(team_by_name))
                .route("/api/v4/teams/{id}", web::get().to(team_by_id))
                .route("/api/v4/channels/direct", web::post().to(channels_direct))
                .route("/api/v4/posts", web::post().to(create_post))
                .route("/api/v4/posts/{id}/patch", web::put().to(patch_post))
                .route("/api/v4/channels/{id}", web::get().to(channel_by_id))
                .route("/api/v4/channels/{id}/posts", web::get().to(channel_posts))
                .route(
                    "/api/v4/teams/{team}/channels/name/{name}",
                    web::get().to(channel_by_name),
                )
                .route("/api/v4/channels/{id}/members", web::post().to(add_member))
                .route("/api/v4/websocket", web::get().to(websocket))
                .default_service(web::to(|| async {
                    mm_error(
                        404,
                        "api.context.404.app_error",
                        "Sorry, we could not find the page.",
                    )
                }));
        });
        FakeMattermost {
            server,
            shared,
            bot_id,
            alice_id,
            other_bot_id,
            bob_id,
            town_square,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The `[[chat]]` table for the bridge.
    pub fn chat_toml(&self, extra: &str) -> String {
        format!(
            "[[chat]]\nname = \"mm\"\nbackend = \"mattermost\"\nurl = \"{}\"\ntoken = \"{BOT_TOKEN}\"\nteam = \"ops-team\"\nping_interval_secs = 2\nsend_interval_ms = 10\n{extra}\n",
            self.url()
        )
    }

    /// A user posts (as the web app would); returns the post id.
    pub fn post_as(&self, user_id: &str, channel_id: &str, message: &str, root_id: &str) -> String {
        match self
            .shared
            .create_post(user_id, channel_id, message, root_id, Default::default())
        {
            Ok(post) => post["id"].as_str().unwrap_or_default().to_owned(),
            Err(e) => panic!("fake refused the test's post: {e:?}"),
        }
    }

    /// `ops-alerts`: a public channel with alice in it but not the bot.
    pub fn ops_alerts(&self) -> String {
        let st = self.shared.state.lock();
        st.channels
            .iter()
            .find(|c| c.name == "ops-alerts")
            .map(|c| c.id.clone())
            .unwrap_or_default()
    }

    pub fn is_member(&self, user: &str, channel: &str) -> bool {
        let st = self.shared.state.lock();
        st.channels
            .iter()
            .any(|c| c.id == channel && c.members.iter().any(|m| m == user))
    }

    /// Removes a user from a channel, with Mattermost's two `user_removed` events.
    pub fn remove_from_channel(&self, user: &str, channel: &str) {
        let mut st = self.shared.state.lock();
        let Some(c) = st.channels.iter_mut().find(|c| c.id == channel) else {
            return;
        };
        c.members.retain(|m| m != user);
        let members = c.members.clone();
        let remover = self.alice_id.clone();
        for s in st.conns.values_mut() {
            let event = if s.user_id == user {
                json!({"event": "user_removed", "data": {"channel_id": channel, "remover_id": remover},
                       "broadcast": {"omit_users": null, "user_id": user, "channel_id": "", "team_id": ""}})
            } else if members.contains(&s.user_id) {
                json!({"event": "user_removed", "data": {"user_id": user, "remover_id": remover},
                       "broadcast": {"omit_users": null, "user_id": "", "channel_id": channel, "team_id": ""}})
            } else {
                continue;
            };
            s.deliver(event);
        }
    }

    /// Every open websocket skips one `seq` before its next event (events were lost).
    pub fn skip_a_seq(&self) {
        for c in self.shared.state.lock().conns.values_mut() {
            if c.tx.is_some() {
                c.next_seq += 1;
            }
        }
    }

    /// Makes the bridge's account a plain user (no `from_bot` on its posts).
    pub fn make_bridge_a_plain_user(&self) {
        let mut st = self.shared.state.lock();
        if let Some(u) = st.users.iter_mut().find(|u| u.id == self.bot_id) {
            u.is_bot = false;
        }
    }

    /// The direct channel between two users (created like `POST /channels/direct`).
    pub fn direct_channel(&self, a: &str, b: &str) -> String {
        self.shared.direct_channel(a, b).expect("users exist").id
    }

    /// `user_id` presses the action `action_id` of the post `post_id`, as the web app's
    /// button does: the server's request to the integration, and the answer applied.
    /// Returns the integration's HTTP status and answer.
    pub async fn press(&self, user_id: &str, post_id: &str, action_id: &str) -> (u16, Value) {
        let (request, url) = {
            let st = self.shared.state.lock();
            let post = st
                .posts
                .iter()
                .find(|p| p.str("id") == post_id)
                .map(|p| p.post.clone())
                .expect("the pressed post exists");
            let action = post["props"]["attachments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
                .find(|a| a["id"] == action_id)
                .expect("the pressed action exists");
            let channel = st
                .channels
                .iter()
                .find(|c| c.id == post["channel_id"].as_str().unwrap_or_default())
                .cloned()
                .expect("the post's channel");
            let user = st
                .users
                .iter()
                .find(|u| u.id == user_id)
                .cloned()
                .expect("the presser exists");
            let request = json!({
                "user_id": user.id, "user_name": user.username,
                "channel_id": channel.id, "channel_name": channel.name,
                "team_id": channel.team_id, "team_domain": if channel.team_id.is_empty() { "" } else { self.shared.team_name.as_str() },
                "post_id": post_id, "trigger_id": new_id(), "type": "button", "data_source": "",
                "context": action["integration"]["context"],
            });
            let url = action["integration"]["url"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (request, url)
        };
        self.post_action(&url, &request, user_id, post_id).await
    }

    /// Sends `request` to an integration `url` as the server would, for `post_id`, and
    /// applies the answer; also used to forge requests the real server would never send.
    pub async fn post_action(
        &self,
        url: &str,
        request: &Value,
        user_id: &str,
        post_id: &str,
    ) -> (u16, Value) {
        let mut resp = awc::Client::default()
            .post(url)
            .send_json(request)
            .await
            .expect("the integration answers");
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        let mut st = self.shared.state.lock();
        if status == 200 {
            if let Some(update) = answer.get("update").filter(|u| u.is_object()) {
                if let Some(p) = st.posts.iter_mut().find(|p| p.str("id") == post_id) {
                    if let Some(message) = update.get("message") {
                        p.post["message"] = message.clone();
                    }
                    if let Some(props) = update.get("props") {
                        p.post["props"] = props.clone();
                    }
                    p.post["edit_at"] = json!(now_ms());
                }
            }
            if let Some(text) = answer["ephemeral_text"].as_str().filter(|t| !t.is_empty()) {
                st.ephemerals.push((user_id.to_owned(), text.to_owned()));
            }
        }
        (status, answer)
    }

    /// `(user id, text)` of the ephemeral messages shown so far.
    pub fn ephemerals(&self) -> Vec<(String, String)> {
        self.shared.state.lock().ephemerals.clone()
    }

    /// The stored post (with its integrations, as the server keeps it).
    pub fn post(&self, id: &str) -> Option<Value> {
        let st = self.shared.state.lock();
        st.posts
            .iter()
            .find(|p| p.str("id") == id)
            .map(|p| p.post.clone())
    }

    /// Every post by the bot, oldest first.
    pub fn bot_posts(&self) -> Vec<StoredPost> {
        let st = self.shared.state.lock();
        st.posts
            .iter()
            .filter(|p| p.str("user_id") == self.bot_id)
            .cloned()
            .collect()
    }

    /// The bot's posts in `channel` containing `needle`.
    pub fn bot_posts_containing(&self, channel: &str, needle: &str) -> Vec<StoredPost> {
        self.bot_posts()
            .into_iter()
            .filter(|p| p.str("channel_id") == channel && p.str("message").contains(needle))
            .collect()
    }

    /// The next `n` `POST /posts` whose message contains `needle` create the post and then
    /// answer 503: the sender cannot tell that the server has it.
    pub fn lose_answers_to(&self, needle: &str, n: u32) {
        self.shared.state.lock().lost_answers = Some((needle.into(), n));
    }

    /// The requests the server saw of this kind (`"POST /posts"`, `"GET /channels/posts"`).
    pub fn requests_of(&self, kind: &str) -> usize {
        self.shared
            .state
            .lock()
            .requests
            .iter()
            .filter(|r| *r == kind)
            .count()
    }

    /// The next `n` `POST /posts` get 429 with `Retry-After: secs`.
    pub fn rate_limit_next_posts(&self, n: u32, secs: u64) {
        let mut st = self.shared.state.lock();
        st.rate_limit_next = n;
        st.retry_after_secs = secs;
    }

    /// The next `n` accepted posts say the window is used up (`X-Ratelimit-Remaining: 0`,
    /// `X-Ratelimit-Reset: secs`).
    pub fn exhaust_window_next_posts(&self, n: u32, secs: u64) {
        let mut st = self.shared.state.lock();
        st.exhaust_window_next = n;
        st.retry_after_secs = secs;
    }

    /// The next `POST /posts` opens a window of `window` in which every `POST /posts` gets a
    /// 429 whose `Retry-After` (and `X-Ratelimit-Reset`) is the time left, in whole seconds
    /// rounded up: a client that waits as told is refused once, one that retries sooner is
    /// refused again.
    pub fn rate_limit_window(&self, window: std::time::Duration) {
        self.shared.state.lock().window_armed = Some(window);
    }

    pub fn rate_limited_at(&self) -> Vec<Instant> {
        self.shared.state.lock().rate_limited_at.clone()
    }

    /// Closes every websocket (as a server restart or a load balancer would).
    pub fn drop_websockets(&self) {
        let mut st = self.shared.state.lock();
        for c in st.conns.values_mut() {
            if let Some(tx) = c.tx.take() {
                let _ = tx.send(WsCmd::Close);
            }
        }
    }

    /// Forgets every connection id, as a server restart does: nothing can be resumed.
    pub fn forget_connections(&self) {
        self.drop_websockets();
        self.shared.state.lock().conns.clear();
    }

    /// Reconnects that resumed a connection id (and got the missed events).
    pub fn resumes(&self) -> usize {
        self.shared.state.lock().resumes
    }

    /// While true, authentication challenges get no answer (a stuck server).
    pub fn ignore_auth(&self, ignore: bool) {
        self.shared.state.lock().ignore_auth = ignore;
    }

    /// While true, websocket upgrades get 503.
    pub fn refuse_websockets(&self, refuse: bool) {
        self.shared.state.lock().refuse_ws = refuse;
    }

    pub fn ws_attempts(&self) -> usize {
        self.shared.state.lock().ws_attempts
    }

    pub fn ws_auths(&self) -> usize {
        self.shared.state.lock().ws_auths
    }
}

impl Drop for FakeMattermost {
    fn drop(&mut self) {
        // The server stops after this, when `server` is dropped.
        self.drop_websockets();
    }
}
