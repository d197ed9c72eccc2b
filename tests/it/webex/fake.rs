//! A fake Webex: the parts of the REST API the bridge uses, shaped as Webex's published
//! reference describes them (each behaviour cites its page), on a random loopback port in
//! its own thread; and Webex's side of webhooks: when a person posts or presses a card
//! button, the fake delivers the webhook to the `targetUrl` the bot registered, signed as
//! Webex signs it.
//!
//! What it keeps: people (the bot, alice, bob, another bot), rooms (a group room "Ops" and
//! the 1:1 rooms the bot has), every message, the bot's webhooks, attachment actions, and
//! every API call with its status.

use std::{collections::HashMap, sync::Arc, time::Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use parking_lot::Mutex;
use serde_json::{json, Value};
use stormbridge::backends::webex::signature;

use crate::fake_server::FakeServer;

/// The bot's access token.
pub const BOT_TOKEN: &str = "wx-bot-token-5d1e";
/// The bot's display name (what a mention of it shows).
pub const BOT_NAME: &str = "StormBot";
/// Webex's limit on `text` / `markdown` ("Create a Message":
/// https://developer.webex.com/docs/api/v1/messages/create-a-message).
pub const MAX_MESSAGE_BYTES: usize = 7439;

/// A Webex id: base64 of `ciscospark://us/<KIND>/<uuid>`, as every Webex id is.
fn new_id(kind: &str) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(format!("ciscospark://us/{kind}/{}", uuid::Uuid::new_v4()))
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// One API call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// One webhook delivery the fake made (only ever to a loopback address), and the answer.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub target_url: String,
    pub status: u16,
}

#[derive(Clone)]
struct Person {
    id: String,
    email: String,
    name: String,
    bot: bool,
}

impl Person {
    /// As "Get Person Details" answers
    /// (https://developer.webex.com/docs/api/v1/people/get-person-details).
    fn json(&self) -> Value {
        json!({"id": self.id, "emails": [self.email], "displayName": self.name,
            "nickName": self.name, "firstName": self.name, "orgId": "T1JHL2Zha2U",
            "created": "2024-01-01T00:00:00.000Z", "type": if self.bot { "bot" } else { "person" }})
    }
}

#[derive(Clone)]
struct RoomRec {
    id: String,
    title: String,
    /// `direct` or `group`.
    kind: &'static str,
    members: Vec<String>,
}

#[derive(Default)]
struct State {
    people: Vec<Person>,
    rooms: Vec<RoomRec>,
    messages: Vec<Value>,
    /// Messages deleted ("Delete a Message"), as they were.
    deleted: Vec<Value>,
    webhooks: Vec<Value>,
    actions: Vec<Value>,
    calls: Vec<Call>,
    delivered: Vec<Delivered>,
    /// Every call answers 503 while set ([`FakeWebex::set_away`]).
    away: bool,
    /// The token is refused (401) while set.
    refuse_token: bool,
    /// The next `POST /messages` opens a rate-limit window this long.
    window_armed: Option<std::time::Duration>,
    limited_until: Option<Instant>,
    /// This many reads of a message or a card press (`GET /messages/{id}`,
    /// `GET /attachment/actions/{id}`) are answered 429 before they are served.
    reads_refused: usize,
}

impl State {
    fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    fn room(&self, id: &str) -> Option<&RoomRec> {
        self.rooms.iter().find(|r| r.id == id)
    }

    /// The 1:1 room of two people, made on first use (as posting to `toPersonId` does).
    fn direct_room(&mut self, a: &str, b: &str) -> String {
        if let Some(r) = self.rooms.iter().find(|r| {
            r.kind == "direct"
                && r.members.iter().any(|m| m == a)
                && r.members.iter().any(|m| m == b)
        }) {
            return r.id.clone();
        }
        let id = new_id("ROOM");
        self.rooms.push(RoomRec {
            id: id.clone(),
            title: String::new(),
            kind: "direct",
            members: vec![a.to_owned(), b.to_owned()],
        });
        id
    }
}

/// The fake server; stops when dropped.
pub struct FakeWebex {
    _server: FakeServer,
    state: Arc<Mutex<State>>,
    http: awc::Client,
    pub addr: std::net::SocketAddr,
    pub bot_id: String,
    pub alice_id: String,
    pub bob_id: String,
    pub other_bot_id: String,
    /// The group room "Ops": alice, bob, the bot and the other bot are in it.
    pub ops: String,
}

type Data = web::Data<Arc<Mutex<State>>>;

/// Webex's error body ("REST API Basics", API errors:
/// https://developer.webex.com/docs/basics): `message`, `errors` (each a `description`) and
/// the `trackingId` support asks for.
fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .insert_header(("TrackingID", "ROUTER_FAKE"))
        .json(
            json!({"message": message, "errors": [{"description": message}],
            "trackingId": format!("ROUTER_{}", uuid::Uuid::new_v4().simple())}),
        )
}

impl FakeWebex {
    pub async fn start() -> Self {
        let mut st = State::default();
        let person = |name: &str, email: &str, bot: bool| Person {
            id: new_id("PEOPLE"),
            email: email.into(),
            name: name.into(),
            bot,
        };
        let bot = person(BOT_NAME, "stormbot@webex.bot", true);
        let alice = person("Alice", "alice@example.com", false);
        let bob = person("Bob", "bob@example.com", false);
        let other = person("OtherBot", "otherbot@webex.bot", true);
        let ops = RoomRec {
            id: new_id("ROOM"),
            title: "Ops".into(),
            kind: "group",
            members: vec![
                bot.id.clone(),
                alice.id.clone(),
                bob.id.clone(),
                other.id.clone(),
            ],
        };
        let (bot_id, alice_id, bob_id, other_bot_id, ops_id) = (
            bot.id.clone(),
            alice.id.clone(),
            bob.id.clone(),
            other.id.clone(),
            ops.id.clone(),
        );
        st.people = vec![bot, alice, bob, other];
        st.rooms.push(ops);
        let state = Arc::new(Mutex::new(st));
        let shared = state.clone();
        let server = FakeServer::start("fake-webex", move |app, _addr| {
            app.app_data(web::Data::new(shared.clone()))
                .app_data(web::JsonConfig::default().limit(1 << 20))
                .route("/v1/{tail:.*}", web::route().to(api));
        });
        Self {
            addr: server.addr(),
            _server: server,
            state,
            http: awc::Client::default(),
            bot_id,
            alice_id,
            bob_id,
            other_bot_id,
            ops: ops_id,
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A `[[chat]]` table for connection `wx`, the bridge reachable at `public_url`.
    pub fn chat_toml(&self, public_url: &str, secret: &str, extra: &str) -> String {
        format!(
            "[[chat]]\nname = \"wx\"\nbackend = \"webex\"\ntoken = \"{BOT_TOKEN}\"\napi_url = \"{}\"\n\
             public_url = \"{public_url}\"\nwebhook_secret = \"{secret}\"\nsend_interval_ms = 0\n\
             check_interval_secs = 1\nreconnect_initial_ms = 50\nreconnect_max_ms = 400\n{extra}\n",
            self.api_url()
        )
    }

    /// The 1:1 room of the bot and `person` (made if there is none yet).
    pub fn direct_room(&self, person: &str) -> String {
        let bot = self.bot_id.clone();
        self.state.lock().direct_room(&bot, person)
    }

    // ----- What people do ------------------------------------------------------------------

    /// `author` posts `text` in `room` (as a reply to `parent`); `mention` puts a mention of
    /// the bot first, as a Webex client does when one types `@StormBot`. The message as
    /// "Get Message Details" shows it: `text`, and `html` with the mention as a
    /// `<spark-mention>` (https://developer.webex.com/docs/api/v1/messages/get-message-details).
    /// Webex then delivers the `messages`/`created` webhooks — in a group room only when the
    /// bot is mentioned ("Bots": in group spaces a bot only sees messages that mention it,
    /// https://developer.webex.com/docs/bots). The message's id.
    pub async fn post(
        &self,
        author: &str,
        room: &str,
        text: &str,
        parent: Option<&str>,
        mention: bool,
    ) -> String {
        let (msg, deliver) = {
            let mut st = self.state.lock();
            let author = st.person(author).cloned().expect("a known author");
            let kind = st.room(room).map_or("group", |r| r.kind);
            let (text, html, mentioned) = if mention {
                (
                    format!("{BOT_NAME} {text}"),
                    format!(
                        "<p><spark-mention data-object-type=\"person\" data-object-id=\"{}\">{BOT_NAME}</spark-mention> {}</p>",
                        self.bot_id,
                        html_escape(text)
                    ),
                    vec![self.bot_id.clone()],
                )
            } else {
                (
                    text.to_owned(),
                    format!("<p>{}</p>", html_escape(text)),
                    vec![],
                )
            };
            let mut msg = json!({"id": new_id("MESSAGE"), "roomId": room, "roomType": kind,
                "text": text, "html": html, "personId": author.id, "personEmail": author.email,
                "created": now()});
            if !mentioned.is_empty() {
                msg["mentionedPeople"] = json!(mentioned);
            }
            if let Some(p) = parent {
                msg["parentId"] = json!(p);
            }
            st.messages.push(msg.clone());
            (msg, kind == "direct" || mention)
        };
        if deliver {
            let data = json!({"id": msg["id"], "roomId": msg["roomId"], "roomType": msg["roomType"],
                "personId": msg["personId"], "personEmail": msg["personEmail"],
                "mentionedPeople": msg.get("mentionedPeople").cloned().unwrap_or(json!([])),
                "created": msg["created"]});
            self.deliver(
                "messages",
                data,
                msg["personId"].as_str().unwrap_or_default(),
            )
            .await;
        }
        msg["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Delivers the `messages`/`created` webhook for a message that already exists (the
    /// bot's own, say, which Webex also tells the bot about).
    pub async fn redeliver_message(&self, id: &str) {
        let msg = self
            .state
            .lock()
            .messages
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .expect("a known message");
        let data = json!({"id": msg["id"], "roomId": msg["roomId"], "roomType": msg["roomType"],
            "personId": msg["personId"], "personEmail": msg["personEmail"], "created": msg["created"]});
        self.deliver(
            "messages",
            data,
            msg["personId"].as_str().unwrap_or_default(),
        )
        .await;
    }

    /// `person` presses button `index` of the card on message `card`: Webex records an
    /// attachment action whose `inputs` are the button's `data` ("Get Attachment Action
    /// Details": https://developer.webex.com/docs/api/v1/attachment-actions/get-attachment-action-details)
    /// and delivers the `attachmentActions`/`created` webhook. The action's id.
    pub async fn press(&self, person: &str, card: &str, index: usize) -> String {
        let action = {
            let mut st = self.state.lock();
            let msg = st
                .messages
                .iter()
                .find(|m| m["id"] == card)
                .cloned()
                .expect("a known card message");
            let data = msg
                .pointer(&format!("/attachments/0/content/actions/{index}/data"))
                .cloned()
                .unwrap_or(json!({}));
            let action = json!({"id": new_id("ATTACHMENT_ACTION"), "type": "submit",
                "messageId": card, "inputs": data, "personId": person, "roomId": msg["roomId"],
                "created": now()});
            st.actions.push(action.clone());
            action
        };
        let data = json!({"id": action["id"], "type": "submit", "messageId": card,
            "personId": person, "roomId": action["roomId"], "created": action["created"]});
        self.deliver("attachmentActions", data, person).await;
        action["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Webex's side of a webhook ("Webhooks", https://developer.webex.com/docs/webhooks):
    /// a POST of JSON to each active webhook of this resource and event `created`, the body
    /// the webhook's fields and `data`, signed with the webhook's secret in
    /// `X-Spark-Signature` (hex HMAC-SHA1 of the body) when it has one.
    async fn deliver(&self, resource: &str, data: Value, actor: &str) {
        let hooks: Vec<Value> = self
            .state
            .lock()
            .webhooks
            .iter()
            .filter(|w| {
                w["resource"] == resource && w["event"] == "created" && w["status"] == "active"
            })
            .cloned()
            .collect();
        for hook in hooks {
            let target = hook["targetUrl"].as_str().unwrap_or_default().to_owned();
            // Tests send nothing off this machine: a target elsewhere (a webhook of someone
            // else's) stands for a server that is not here, and gets nothing.
            let loopback = url::Url::parse(&target)
                .is_ok_and(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")));
            if !loopback {
                continue;
            }
            let mut body = hook.clone();
            if let Some(o) = body.as_object_mut() {
                o.remove("secret");
            }
            body["orgId"] = json!("T1JHL2Zha2U");
            body["appId"] = json!("QVBQTElDQVRJT04vZmFrZQ");
            body["ownedBy"] = json!("creator");
            body["actorId"] = json!(actor);
            body["data"] = data.clone();
            let bytes = body.to_string();
            let mut req = self
                .http
                .post(target.as_str())
                .insert_header(("Content-Type", "application/json"))
                .insert_header(("User-Agent", "Webex webhook (fake)"))
                .timeout(std::time::Duration::from_secs(10));
            if let Some(secret) = hook["secret"].as_str().filter(|s| !s.is_empty()) {
                req = req.insert_header((
                    signature::HEADER,
                    signature::sign(secret.as_bytes(), bytes.as_bytes()),
                ));
            }
            let status = match req.send_body(bytes).await {
                Ok(resp) => resp.status().as_u16(),
                Err(_) => 0,
            };
            self.state.lock().delivered.push(Delivered {
                target_url: target,
                status,
            });
        }
    }

    // ----- What tests look at and arrange --------------------------------------------------

    /// Messages the bot posted, oldest first.
    pub fn bot_messages(&self) -> Vec<Value> {
        let st = self.state.lock();
        st.messages
            .iter()
            .filter(|m| m["personId"] == self.bot_id.as_str())
            .cloned()
            .collect()
    }

    /// Messages the bot deleted, as they were before, oldest first.
    pub fn deleted_messages(&self) -> Vec<Value> {
        self.state.lock().deleted.clone()
    }

    /// The bot's webhooks, as `GET /webhooks` lists them.
    pub fn webhooks(&self) -> Vec<Value> {
        self.state.lock().webhooks.clone()
    }

    /// A webhook of the bot's, as though made earlier (by hand, or by a bridge with other
    /// settings); its id.
    pub fn add_webhook(&self, name: &str, resource: &str, target: &str, secret: &str) -> String {
        let id = new_id("WEBHOOK");
        self.state
            .lock()
            .webhooks
            .push(json!({"id": id, "name": name, "targetUrl": target,
            "resource": resource, "event": "created", "secret": secret, "status": "active",
            "created": now(), "ownerId": "", "createdBy": self.bot_id}));
        id
    }

    /// Webex disables a webhook whose deliveries keep failing (`status: inactive`).
    pub fn disable_webhook(&self, id: &str) {
        if let Some(w) = self
            .state
            .lock()
            .webhooks
            .iter_mut()
            .find(|w| w["id"] == id)
        {
            w["status"] = json!("inactive");
        }
    }

    /// A webhook deleted by hand.
    pub fn remove_webhook(&self, id: &str) {
        self.state.lock().webhooks.retain(|w| w["id"] != id);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().calls.clone()
    }

    pub fn delivered(&self) -> Vec<Delivered> {
        self.state.lock().delivered.clone()
    }

    /// While `on`, every call answers 503 (Webex down, for the bridge).
    pub fn set_away(&self, on: bool) {
        self.state.lock().away = on;
    }

    /// While `on`, the bot's token is refused (401).
    pub fn refuse_token(&self, on: bool) {
        self.state.lock().refuse_token = on;
    }

    /// The next `POST /messages` opens a window of `window` in which every `POST /messages`
    /// is answered 429 with `Retry-After` = the whole seconds left, rounded up.
    pub fn rate_limit_window(&self, window: std::time::Duration) {
        self.state.lock().window_armed = Some(window);
    }

    /// The next `n` reads of a message or a card press are answered 429 with
    /// `Retry-After: 1`: Webex limits every endpoint, not only posting ("REST API Basics",
    /// Rate Limiting: https://developer.webex.com/docs/basics#rate-limiting).
    pub fn refuse_reads(&self, n: usize) {
        self.state.lock().reads_refused = n;
    }

    /// Reads of a message or a card press answered 429 so far.
    pub fn reads_limited(&self) -> usize {
        self.state
            .lock()
            .calls
            .iter()
            .filter(|c| c.method == "GET" && c.status == 429)
            .count()
    }

    /// `POST /messages` answered 429 so far.
    pub fn rate_limited(&self) -> usize {
        self.state
            .lock()
            .calls
            .iter()
            .filter(|c| c.method == "POST" && c.path == "/messages" && c.status == 429)
            .count()
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Every API call: authentication, the fake's switches, then the endpoint.
async fn api(
    req: HttpRequest,
    tail: web::Path<String>,
    body: web::Bytes,
    data: Data,
) -> HttpResponse {
    let path = format!("/{}", tail.into_inner());
    let method = req.method().as_str().to_owned();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = data.lock();
    let resp = answer(&mut st, &req, &method, &path, &json_body);
    st.calls.push(Call {
        method,
        path,
        status: resp.status().as_u16(),
    });
    resp
}

fn answer(
    st: &mut State,
    req: &HttpRequest,
    method: &str,
    path: &str,
    body: &Value,
) -> HttpResponse {
    if st.away {
        return error(503, "Service Unavailable");
    }
    // "Authentication credentials were missing or incorrect" (401, "REST API Basics").
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if token != Some(BOT_TOKEN) || st.refuse_token {
        return error(
            401,
            "The request requires a valid access token set in the Authorization request header.",
        );
    }
    let bot = st.people[0].clone();
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let is_read = matches!(
        (method, segs.as_slice()),
        ("GET", ["messages", _]) | ("GET", ["attachment", "actions", _])
    );
    if is_read && st.reads_refused > 0 {
        st.reads_refused -= 1;
        // "REST API Basics", Rate Limiting: 429 with the seconds to wait in Retry-After.
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .json(json!({"message": "Too Many Requests", "errors": [{"description": "Too Many Requests"}],
                "trackingId": "ROUTER_RATE"}));
    }
    match (method, segs.as_slice()) {
        // "Get My Own Details": https://developer.webex.com/docs/api/v1/people/get-my-own-details
        ("GET", ["people", "me"]) => HttpResponse::Ok().json(bot.json()),
        // "Get Person Details": https://developer.webex.com/docs/api/v1/people/get-person-details
        ("GET", ["people", id]) => match st.person(id) {
            Some(p) => HttpResponse::Ok().json(p.json()),
            None => error(404, "Person not found."),
        },
        // "Get Room Details": https://developer.webex.com/docs/api/v1/rooms/get-room-details
        ("GET", ["rooms", id]) => match st.room(id) {
            Some(r) if r.members.contains(&bot.id) => {
                HttpResponse::Ok().json(json!({
                "id": r.id, "title": r.title, "type": r.kind, "isLocked": false,
                "lastActivity": now(), "creatorId": bot.id, "created": "2024-01-01T00:00:00.000Z"}))
            }
            _ => error(404, "Could not find a room with provided ID."),
        },
        // "Get Message Details": https://developer.webex.com/docs/api/v1/messages/get-message-details
        ("GET", ["messages", id]) => {
            let msg = st.messages.iter().find(|m| m["id"] == *id).cloned();
            match msg {
                Some(m)
                    if st
                        .room(m["roomId"].as_str().unwrap_or_default())
                        .is_some_and(|r| r.members.contains(&bot.id)) =>
                {
                    HttpResponse::Ok().json(m)
                }
                _ => error(404, "Unable to retrieve content."),
            }
        }
        ("POST", ["messages"]) => create_message(st, &bot, body),
        // "Delete a Message": https://developer.webex.com/docs/api/v1/messages/delete-a-message
        // (by `messageId` in the path; 204 No Content). The message is gone for everyone, and
        // reading it again is 404. The fake lets the bot delete only its own messages, in a
        // room it is in (someone else's takes a moderator or a compliance officer).
        ("DELETE", ["messages", id]) => {
            let Some(at) = st.messages.iter().position(|m| {
                m["id"] == *id
                    && st
                        .room(m["roomId"].as_str().unwrap_or_default())
                        .is_some_and(|r| r.members.contains(&bot.id))
            }) else {
                return error(404, "Unable to retrieve content.");
            };
            if st.messages[at]["personId"] != bot.id.as_str() {
                return error(403, "Unable to delete the message: not its author.");
            }
            let gone = st.messages.remove(at);
            st.deleted.push(gone);
            HttpResponse::NoContent().finish()
        }
        // "Get Attachment Action Details":
        // https://developer.webex.com/docs/api/v1/attachment-actions/get-attachment-action-details
        ("GET", ["attachment", "actions", id]) => {
            match st.actions.iter().find(|a| a["id"] == *id) {
                Some(a) => HttpResponse::Ok().json(a),
                None => error(404, "Attachment action not found."),
            }
        }
        // "List Webhooks": https://developer.webex.com/docs/api/v1/webhooks/list-webhooks;
        // pages of `max` (default 100) linked by `Link: <…>; rel="next"` ("REST API
        // Basics", Pagination).
        ("GET", ["webhooks"]) => {
            let query: HashMap<String, String> =
                serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
            let max = query
                .get("max")
                .and_then(|m| m.parse::<usize>().ok())
                .filter(|m| *m > 0)
                .unwrap_or(100);
            let from = query
                .get("cursor")
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(0);
            let items: Vec<Value> = st.webhooks.iter().skip(from).take(max).cloned().collect();
            let mut resp = HttpResponse::Ok();
            if from + max < st.webhooks.len() {
                let host = req.connection_info().host().to_owned();
                resp.insert_header((
                    "Link",
                    format!(
                        "<http://{host}/v1/webhooks?max={max}&cursor={}>; rel=\"next\"",
                        from + max
                    ),
                ));
            }
            resp.json(json!({"items": items}))
        }
        // "Create a Webhook": https://developer.webex.com/docs/api/v1/webhooks/create-a-webhook
        // (`name`, `targetUrl`, `resource`, `event` required; `filter`, `secret` optional).
        ("POST", ["webhooks"]) => {
            let field = |k: &str| body[k].as_str().filter(|s| !s.is_empty());
            let (Some(name), Some(target), Some(resource), Some(event)) = (
                field("name"),
                field("targetUrl"),
                field("resource"),
                field("event"),
            ) else {
                return error(400, "name, targetUrl, resource and event are required.");
            };
            if !target.starts_with("http://") && !target.starts_with("https://") {
                return error(400, "targetUrl must be a URL.");
            }
            let hook = json!({"id": new_id("WEBHOOK"), "name": name, "targetUrl": target,
                "resource": resource, "event": event, "filter": body.get("filter").cloned().unwrap_or(Value::Null),
                "secret": body.get("secret").cloned().unwrap_or(Value::Null), "status": "active",
                "created": now(), "createdBy": bot.id, "ownedBy": "creator"});
            let mut hook = hook;
            if let Some(o) = hook.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            st.webhooks.push(hook.clone());
            HttpResponse::Ok().json(hook)
        }
        // "Update a Webhook": https://developer.webex.com/docs/api/v1/webhooks/update-a-webhook
        // (`name` and `targetUrl` required; `secret`, `status` optional).
        ("PUT", ["webhooks", id]) => {
            let field = |k: &str| {
                body[k]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            let (Some(name), Some(target)) = (field("name"), field("targetUrl")) else {
                return error(400, "name and targetUrl are required.");
            };
            let Some(hook) = st.webhooks.iter_mut().find(|w| w["id"] == *id) else {
                return error(404, "Webhook not found.");
            };
            hook["name"] = json!(name);
            hook["targetUrl"] = json!(target);
            if let Some(secret) = field("secret") {
                hook["secret"] = json!(secret);
            }
            if let Some(status) = field("status") {
                hook["status"] = json!(status);
            }
            HttpResponse::Ok().json(hook.clone())
        }
        // "Delete a Webhook": https://developer.webex.com/docs/api/v1/webhooks/delete-a-webhook
        // (204 No Content).
        ("DELETE", ["webhooks", id]) => {
            let before = st.webhooks.len();
            st.webhooks.retain(|w| w["id"] != *id);
            if st.webhooks.len() == before {
                error(404, "Webhook not found.")
            } else {
                HttpResponse::NoContent().finish()
            }
        }
        _ => error(404, "The requested resource could not be found."),
    }
}

/// "Create a Message" (https://developer.webex.com/docs/api/v1/messages/create-a-message):
/// one of `roomId`, `toPersonId`, `toPersonEmail`; `text` or `markdown` of at most 7439 bytes
/// (or a card); `parentId` a message of the room that is not itself a reply (Webex threads
/// have one level); at most one attachment, an Adaptive Card. A bot must be in the room.
/// Rate limits: 429 with `Retry-After` ("REST API Basics", Rate Limiting).
fn create_message(st: &mut State, bot: &Person, body: &Value) -> HttpResponse {
    let now_i = Instant::now();
    if let Some(window) = st.window_armed.take() {
        st.limited_until = Some(now_i + window);
    }
    if let Some(left) = st.limited_until.filter(|u| *u > now_i).map(|u| u - now_i) {
        let secs = left.as_secs_f64().ceil() as u64;
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", secs.to_string()))
            .json(json!({"message": "Too Many Requests", "errors": [{"description": "Too Many Requests"}],
                "trackingId": "ROUTER_RATE"}));
    }
    let field = |k: &str| {
        body[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let room_id = match (field("roomId"), field("toPersonId"), field("toPersonEmail")) {
        (Some(r), None, None) => r,
        (None, Some(p), None) => {
            if st.person(&p).is_none() {
                return error(404, "Person not found.");
            }
            st.direct_room(&bot.id, &p)
        }
        (None, None, Some(e)) => {
            let Some(p) = st
                .people
                .iter()
                .find(|p| p.email == e)
                .map(|p| p.id.clone())
            else {
                return error(404, "Person not found.");
            };
            st.direct_room(&bot.id, &p)
        }
        _ => {
            return error(
                400,
                "Exactly one of roomId, toPersonId or toPersonEmail is required.",
            )
        }
    };
    let Some(room) = st.room(&room_id).cloned() else {
        return error(404, "Could not find a room with provided ID.");
    };
    if !room.members.contains(&bot.id) {
        return error(403, "Unable to post message to room: not a member.");
    }
    let markdown = field("markdown");
    let text = field("text");
    let attachments = body.get("attachments").filter(|a| !a.is_null());
    if markdown.is_none() && text.is_none() && attachments.is_none() {
        return error(
            400,
            "Message must contain text, markdown, files or attachments.",
        );
    }
    if markdown
        .as_ref()
        .is_some_and(|m| m.len() > MAX_MESSAGE_BYTES)
        || text.as_ref().is_some_and(|t| t.len() > MAX_MESSAGE_BYTES)
    {
        return error(400, "Message length exceeds the maximum of 7439 bytes.");
    }
    if let Some(a) = attachments {
        let ok = a.as_array().is_some_and(|a| {
            a.len() == 1
                && a[0]["contentType"] == "application/vnd.microsoft.card.adaptive"
                && a[0]["content"]["type"] == "AdaptiveCard"
        });
        if !ok {
            return error(400, "Only one Adaptive Card attachment is supported.");
        }
    }
    let parent = field("parentId");
    if let Some(p) = &parent {
        let ok = st.messages.iter().any(|m| {
            m["id"] == p.as_str()
                && m["roomId"] == room_id.as_str()
                && m.get("parentId").is_none_or(Value::is_null)
        });
        if !ok {
            return error(
                400,
                "parentId must be a message of this room that is not a reply.",
            );
        }
    }
    let mut msg = json!({"id": new_id("MESSAGE"), "roomId": room_id, "roomType": room.kind,
        "personId": bot.id, "personEmail": bot.email, "created": now()});
    // The plain text of a Markdown message is its text with the markup as typed.
    msg["text"] = json!(text.clone().or(markdown.clone()).unwrap_or_default());
    if let Some(m) = markdown {
        msg["markdown"] = json!(m);
    }
    if let Some(p) = parent {
        msg["parentId"] = json!(p);
    }
    if let Some(a) = attachments {
        msg["attachments"] = a.clone();
    }
    if let Some(p) = field("toPersonId") {
        msg["toPersonId"] = json!(p);
    }
    st.messages.push(msg.clone());
    HttpResponse::Ok().json(msg)
}
