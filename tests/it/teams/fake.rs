//! A fake of the Microsoft side of a Teams bot, built from Microsoft's published
//! references (each behaviour cites its page):
//!
//! - the Microsoft identity platform's token endpoint (client-credentials grant);
//! - the Bot Connector's OpenID metadata and its signing keys (JWKS);
//! - the Bot Connector service itself: it signs activities with its key, posts them to the
//!   bot's messaging endpoint, and takes the bot's replies (Send to Conversation, Reply to
//!   Activity, Update Activity, Create Conversation), with the REST API's error shape and
//!   Teams' rate limiting (429 + `Retry-After`) and message size limit.
//!
//! The test key pairs are fixed files (`tests/fixtures/teams/`, made with `openssl genrsa`);
//! the fake signs with `ring` directly, independently of the `jsonwebtoken` crate the bridge
//! checks with.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::fake_server::FakeServer;

pub const APP_ID: &str = "00000000-0000-4000-8000-00000000b07a";
pub const APP_PASSWORD: &str = "fake-client-secret-never-logged";
pub const TENANT: &str = "72f988bf-0000-4000-8000-0000000000e1";
/// The team's channel the tests speak in.
pub const CHANNEL: &str = "19:ops0000fake@thread.tacv2";
/// alice: her Teams id and her Microsoft Entra object id (what access rules name).
pub const ALICE: &str = "29:1alice-teams-id";
pub const ALICE_AAD: &str = "6b0e5d3c-0000-4000-8000-00000000a11c";
/// alice's one-to-one chat with the bot.
pub const ALICE_DM: &str = "a:1alice-one-to-one-chat";
/// bob, who has never spoken to the bot in a one-to-one chat.
pub const BOB: &str = "29:1bob-teams-id";
pub const BOB_AAD: &str = "6b0e5d3c-0000-4000-8000-0000000000b0";
pub const BOB_DM: &str = "a:1bob-one-to-one-chat";
/// Another bot in the channel.
pub const OTHER_BOT: &str = "28:11111111-0000-4000-8000-0000000000b1";

/// The test keys (`openssl genrsa -traditional 2048`).
pub const KEY_1: &str = include_str!("../../fixtures/teams/connector-key-1.pem");
pub const KEY_2: &str = include_str!("../../fixtures/teams/connector-key-2.pem");

/// The bot's own Teams id.
pub fn bot_id() -> String {
    format!("28:{APP_ID}")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

/// A key pair the fake signs with, under a key id.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pair: Arc<ring::signature::RsaKeyPair>,
}

impl SigningKey {
    pub fn new(pem: &str, kid: &str) -> Self {
        let pair = ring::signature::RsaKeyPair::from_der(&der(pem)).expect("an RSA key");
        Self {
            kid: kid.into(),
            pair: Arc::new(pair),
        }
    }

    /// The public key as a JWK with the Bot Connector's `endorsements`
    /// (https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication,
    /// "Step 3: Get the list of valid signing keys": the JWK format plus `endorsements`, the
    /// channels each key may sign for).
    pub fn jwk(&self) -> Value {
        let public = ring::signature::RsaPublicKeyComponents::<Vec<u8>>::from(self.pair.public());
        json!({"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
               "n": b64(&public.n), "e": b64(&public.e),
               "endorsements": ["msteams", "skype", "webchat"]})
    }

    /// A JWT over `claims`: RS256 (`RSASSA-PKCS1-v1_5` with SHA-256), `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid, "x5t": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut sig = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("signs");
        format!("{input}.{}", b64(&sig))
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The claims of a token the Bot Connector sends with an activity: issuer
/// `https://api.botframework.com`, audience the bot's app id, a validity period, and the
/// activity's service URL (the authentication page's "Step 4"; the tokens carry it as
/// `serviceurl`).
pub fn connector_claims(service_url: &str) -> Value {
    let now = unix_now();
    json!({"serviceurl": service_url, "nbf": now - 5, "exp": now + 3600,
           "iss": "https://api.botframework.com", "aud": APP_ID})
}

/// A Bot Connector call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// An activity the bot sent (or its latest version, after an update).
#[derive(Debug, Clone)]
pub struct Sent {
    /// The id the fake gave it.
    pub id: String,
    /// The conversation id, as the path named it (decoded).
    pub conversation: String,
    /// The activity it replies to (Reply to Activity), if any.
    pub reply_to: Option<String>,
    pub body: Value,
}

impl Sent {
    /// What a person reads: the text and the text of its cards' text blocks.
    pub fn text(&self) -> String {
        text_of(&self.body)
    }
}

/// The text of an activity: `text`, then every `TextBlock`'s `text` in its attachments.
pub fn text_of(activity: &Value) -> String {
    fn blocks(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if m.get("type").and_then(Value::as_str) == Some("TextBlock") {
                    out.push(
                        m.get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                    );
                    return;
                }
                m.values().for_each(|x| blocks(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| blocks(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(t) = activity["text"].as_str().filter(|t| !t.is_empty()) {
        out.push(t.to_owned());
    }
    blocks(&activity["attachments"], &mut out);
    out.join("\n")
}

struct State {
    addr: SocketAddr,
    /// Keys in the JWKS document.
    published: Vec<SigningKey>,
    /// The key activities are signed with.
    signing: SigningKey,
    /// App tokens handed out and still valid.
    tokens: HashSet<String>,
    token_requests: u32,
    keys_requests: u32,
    calls: Vec<Call>,
    sent: Vec<Sent>,
    created: Vec<Value>,
    /// Every endpoint answers 503 ([`FakeTeams::set_away`]).
    away: bool,
    window_armed: Option<Duration>,
    limited_until: Option<Instant>,
    next_id: u64,
}

/// The fake; stops when dropped.
pub struct FakeTeams {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    http: awc::Client,
    _server: FakeServer,
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    // The Bot Connector's ErrorResponse: `{"error": {"code", "message"}}`
    // (https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference#errorresponse-object).
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({"error": {"code": code, "message": message}}))
}

fn unavailable() -> HttpResponse {
    error(503, "ServiceUnavailable", "The service is unavailable.")
}

type Shared = web::Data<Arc<Mutex<State>>>;

/// `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant
/// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
/// "First case: Access token request with a shared secret"): a form with `client_id`,
/// `client_secret`, `scope` and `grant_type=client_credentials`; the answer
/// `{"token_type": "Bearer", "expires_in", "access_token"}`, or the error answer
/// `{"error", "error_description", "error_codes", …}` — `invalid_client` (401) for a wrong
/// secret, `unauthorized_client` (400) for an app the tenant does not have,
/// `invalid_scope` / `unsupported_grant_type` / `invalid_request` (400).
async fn token(
    state: Shared,
    tenant: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let mut s = state.lock();
    s.token_requests += 1;
    if s.away {
        return unavailable();
    }
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let refuse = |status: u16, code: &str, description: &str| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).json(
            json!({"error": code, "error_description": format!("{description}\r\nTrace ID: 0000\r\nCorrelation ID: 0000\r\nTimestamp: 2024-05-01 10:00:00Z"),
                   "error_codes": [7000215], "timestamp": "2024-05-01 10:00:00Z",
                   "trace_id": "0000", "correlation_id": "0000"}),
        )
    };
    if field("grant_type") != "client_credentials" {
        return refuse(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if field("scope") != "https://api.botframework.com/.default" {
        return refuse(
            400,
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        );
    }
    if tenant.as_str() != TENANT || field("client_id") != APP_ID {
        return refuse(
            400,
            "unauthorized_client",
            "AADSTS700016: Application was not found in the directory.",
        );
    }
    if field("client_secret") != APP_PASSWORD {
        return refuse(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let value = format!("fake-app-token-{}", uuid::Uuid::new_v4());
    s.tokens.insert(value.clone());
    HttpResponse::Ok().json(json!({"token_type": "Bearer", "expires_in": 3599,
                                   "ext_expires_in": 3599, "access_token": value}))
}

/// `GET /v1/.well-known/openidconfiguration`: the Bot Connector's OpenID metadata (the
/// authentication page's "Step 2"), pointing at this fake's keys.
async fn metadata(state: Shared) -> HttpResponse {
    let s = state.lock();
    if s.away {
        return unavailable();
    }
    HttpResponse::Ok().json(json!({
        "issuer": "https://api.botframework.com",
        "authorization_endpoint": "https://invalid.botframework.com",
        "jwks_uri": format!("http://{}/v1/.well-known/keys", s.addr),
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }))
}

/// `GET /v1/.well-known/keys`: the signing keys ("Step 3").
async fn keys(state: Shared) -> HttpResponse {
    let mut s = state.lock();
    s.keys_requests += 1;
    if s.away {
        return unavailable();
    }
    let keys: Vec<Value> = s.published.iter().map(SigningKey::jwk).collect();
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

/// Whether the request carries a valid app token ("Authenticate requests from your bot to
/// the Bot Connector service": `Authorization: Bearer <token>` on every call).
fn authorized(req: &HttpRequest, s: &State) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| s.tokens.contains(t))
}

/// A conversation the Bot Connector knows: the channel (and its reply chains) and the
/// people's one-to-one chats.
fn known_conversation(id: &str) -> bool {
    let channel = id.split(";messageid=").next().unwrap_or_default();
    channel == CHANNEL || id == ALICE_DM || id == BOB_DM
}

/// The checks every Bot Connector call goes through: the refusal, if any.
fn refusal(req: &HttpRequest, s: &mut State, body: &[u8]) -> Option<HttpResponse> {
    let record = |s: &mut State, status: u16| {
        s.calls.push(Call {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            status,
        })
    };
    if s.away {
        record(s, 503);
        return Some(unavailable());
    }
    if !authorized(req, s) {
        record(s, 401);
        return Some(error(
            401,
            "Unauthorized",
            "Authorization has been denied for this request.",
        ));
    }
    // Teams refuses messages over about 28 KB
    // (https://learn.microsoft.com/microsoftteams/platform/bots/how-to/format-your-bot-messages).
    if body.len() > 28 * 1024 {
        record(s, 413);
        return Some(error(
            413,
            "RequestEntityTooLarge",
            "The message is too large.",
        ));
    }
    // Teams rate-limits each bot per conversation and answers 429 Too Many Requests
    // (https://learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit): here a
    // window armed by the test, whose `Retry-After` is the seconds left, rounded up.
    if req.method() == actix_web::http::Method::POST && req.path().contains("/activities") {
        let now = Instant::now();
        if let Some(window) = s.window_armed.take() {
            s.limited_until = Some(now + window);
        }
        if let Some(left) = s.limited_until.filter(|u| *u > now).map(|u| u - now) {
            record(s, 429);
            return Some(HttpResponse::TooManyRequests()
                .insert_header((
                    "Retry-After",
                    (left.as_secs_f64().ceil() as u64).to_string(),
                ))
                .json(
                    json!({"error": {"code": "TooManyRequests", "message": "Too many requests."}}),
                ));
        }
    }
    record(s, 200);
    None
}

/// The body as a message activity, or `None` (answered 400 `BadArgument`).
fn activity_body(body: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|v| v["type"] == "message")
}

fn bad_activity() -> HttpResponse {
    error(400, "BadArgument", "The body is not a message activity.")
}

fn record_sent(
    s: &mut State,
    conversation: String,
    reply_to: Option<String>,
    body: Value,
) -> String {
    s.next_id += 1;
    let id = format!("17000000{:05}", s.next_id);
    s.sent.push(Sent {
        id: id.clone(),
        conversation,
        reply_to,
        body,
    });
    id
}

/// `POST /v3/conversations/{conversationId}/activities` (Send to Conversation) and
/// `POST /v3/conversations/{conversationId}/activities/{activityId}` (Reply to Activity):
/// the answer is a ResourceResponse `{"id"}`, 201 Created
/// (https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference#send-to-conversation);
/// an unknown conversation is 404 `ConversationNotFound`.
async fn send(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let conversation = req
        .match_info()
        .get("conversation")
        .unwrap_or_default()
        .to_owned();
    let reply_to = req.match_info().get("activity").map(str::to_owned);
    let mut s = state.lock();
    if let Some(answer) = refusal(&req, &mut s, &body) {
        return answer;
    }
    if !known_conversation(&conversation) {
        return error(404, "ConversationNotFound", "Conversation not found.");
    }
    let Some(activity) = activity_body(&body) else {
        return bad_activity();
    };
    let id = record_sent(&mut s, conversation, reply_to, activity);
    HttpResponse::Created().json(json!({ "id": id }))
}

/// `PUT /v3/conversations/{conversationId}/activities/{activityId}` (Update Activity): the
/// bot's activity is replaced; 200 with a ResourceResponse.
async fn update(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let conversation = req
        .match_info()
        .get("conversation")
        .unwrap_or_default()
        .to_owned();
    let id = req
        .match_info()
        .get("activity")
        .unwrap_or_default()
        .to_owned();
    let mut s = state.lock();
    if let Some(answer) = refusal(&req, &mut s, &body) {
        return answer;
    }
    let Some(activity) = activity_body(&body) else {
        return bad_activity();
    };
    match s
        .sent
        .iter_mut()
        .find(|x| x.id == id && x.conversation == conversation)
    {
        Some(sent) => {
            sent.body = activity;
            HttpResponse::Ok().json(json!({ "id": id }))
        }
        None => error(404, "ActivityNotFound", "Activity not found."),
    }
}

/// `POST /v3/conversations` (Create Conversation): for a one-to-one chat Teams wants the
/// bot, one member and the tenant (in `channelData.tenant.id`), and answers with the chat's
/// id — the existing one if the person already has a chat with the bot
/// (https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/send-proactive-messages,
/// "Create the conversation").
async fn create(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut s = state.lock();
    if let Some(answer) = refusal(&req, &mut s, &body) {
        return answer;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.created.push(v.clone());
    if v.pointer("/channelData/tenant/id").and_then(Value::as_str) != Some(TENANT) {
        return error(400, "BadArgument", "Tenant id is required.");
    }
    if v.pointer("/bot/id").and_then(Value::as_str) != Some(bot_id().as_str()) {
        return error(400, "BadArgument", "Bot id is not the bot's.");
    }
    let id = match v.pointer("/members/0/id").and_then(Value::as_str) {
        Some(ALICE) => ALICE_DM,
        Some(BOB) => BOB_DM,
        _ => return error(404, "NotFound", "Member not found."),
    };
    HttpResponse::Created().json(json!({ "id": id }))
}

impl FakeTeams {
    pub async fn start() -> Self {
        let key = SigningKey::new(KEY_1, "key-1");
        let state = Arc::new(Mutex::new(State {
            addr: "127.0.0.1:0".parse().expect("addr"),
            published: vec![key.clone()],
            signing: key,
            tokens: HashSet::new(),
            token_requests: 0,
            keys_requests: 0,
            calls: Vec::new(),
            sent: Vec::new(),
            created: Vec::new(),
            away: false,
            window_armed: None,
            limited_until: None,
            next_id: 0,
        }));
        let shared = state.clone();
        let server = FakeServer::start("fake-teams", move |app, _addr| {
            app.app_data(web::Data::new(shared.clone()))
                .route("/{tenant}/oauth2/v2.0/token", web::post().to(token))
                .route(
                    "/v1/.well-known/openidconfiguration",
                    web::get().to(metadata),
                )
                .route("/v1/.well-known/keys", web::get().to(keys))
                .route("/v3/conversations", web::post().to(create))
                .route(
                    "/v3/conversations/{conversation}/activities",
                    web::post().to(send),
                )
                .route(
                    "/v3/conversations/{conversation}/activities/{activity}",
                    web::post().to(send),
                )
                .route(
                    "/v3/conversations/{conversation}/activities/{activity}",
                    web::put().to(update),
                );
        });
        state.lock().addr = server.addr();
        Self {
            addr: server.addr(),
            state,
            http: awc::Client::default(),
            _server: server,
        }
    }

    /// The `serviceUrl` activities carry (with the trailing slash Teams gives it).
    pub fn service_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// A `[[chat]]` table for a connection named `teams` (plus `extra` keys).
    pub fn chat_toml(&self, extra: &str) -> String {
        format!(
            "[[chat]]\nname = \"teams\"\nbackend = \"teams\"\napp_id = \"{APP_ID}\"\napp_password = \"{APP_PASSWORD}\"\n\
             tenant_id = \"{TENANT}\"\ntoken_url = \"http://{addr}/{TENANT}/oauth2/v2.0/token\"\n\
             openid_metadata_url = \"http://{addr}/v1/.well-known/openidconfiguration\"\n\
             send_interval_ms = 0\nreconnect_initial_ms = 50\nreconnect_max_ms = 400\ncheck_interval_secs = 1\n{extra}\n",
            addr = self.addr
        )
    }

    fn next_id(&self) -> String {
        let mut s = self.state.lock();
        s.next_id += 1;
        format!("17100000{:05}", s.next_id)
    }

    /// A message activity from `from` (`(teams id, Entra object id, name)`) in
    /// `conversation`, as Teams sends it
    /// (https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/conversation-messages,
    /// "Receive a message"; the Activity object of the Bot Connector API reference).
    pub fn message(&self, conversation: &str, from: (&str, &str, &str), text: &str) -> Value {
        let (kind, is_group) = if conversation.starts_with("a:") {
            ("personal", false)
        } else {
            ("channel", true)
        };
        let mut from_account = json!({"id": from.0, "name": from.2});
        if !from.1.is_empty() {
            from_account["aadObjectId"] = json!(from.1);
        }
        let mut activity = json!({
            "type": "message",
            "id": self.next_id(),
            "timestamp": "2024-05-01T10:00:00.000Z",
            "localTimestamp": "2024-05-01T12:00:00.000+02:00",
            "serviceUrl": self.service_url(),
            "channelId": "msteams",
            "from": from_account,
            "conversation": {"isGroup": is_group, "conversationType": kind, "tenantId": TENANT, "id": conversation},
            "recipient": {"id": bot_id(), "name": "stormbridge"},
            "textFormat": "plain",
            "text": text,
            "locale": "en-US",
            "entities": [{"locale": "en-US", "country": "US", "platform": "Web", "timezone": "Europe/Berlin", "type": "clientInfo"}],
            "channelData": {"tenant": {"id": TENANT}},
        });
        if kind == "channel" {
            activity["conversation"]["name"] = json!("ops");
            activity["channelData"]["teamsChannelId"] = json!(CHANNEL);
            activity["channelData"]["teamsTeamId"] = json!("19:team0000fake@thread.tacv2");
            activity["channelData"]["channel"] = json!({"id": CHANNEL});
            activity["channelData"]["team"] = json!({"id": "19:team0000fake@thread.tacv2"});
        }
        // A mention of the bot: `<at>name</at>` in the text and a `mention` entity for the
        // bot's id ("Retrieve mentions",
        // https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/channel-and-group-conversations).
        if text.contains("<at>stormbridge</at>") {
            if let Some(e) = activity["entities"].as_array_mut() {
                e.push(json!({"type": "mention", "text": "<at>stormbridge</at>",
                              "mentioned": {"id": bot_id(), "name": "stormbridge"}}));
            }
        }
        activity
    }

    /// alice's message: a new post in the channel (its own reply chain's root), a reply in
    /// the chain under `thread`, or in her one-to-one chat.
    pub fn alice(&self, place: Place<'_>, text: &str) -> Value {
        let who = (ALICE, ALICE_AAD, "Alice Example");
        match place {
            Place::Channel => {
                let mut a = self.message(CHANNEL, who, text);
                let id = a["id"].as_str().unwrap_or_default().to_owned();
                a["conversation"]["id"] = json!(format!("{CHANNEL};messageid={id}"));
                a
            }
            Place::Thread(root) => {
                let mut a = self.message(&format!("{CHANNEL};messageid={root}"), who, text);
                a["replyToId"] = json!(root);
                a
            }
            Place::Direct => self.message(ALICE_DM, who, text),
        }
    }

    /// A token for `activity`, signed with the current signing key.
    pub fn token_for(&self, activity: &Value) -> String {
        let key = self.state.lock().signing.clone();
        key.sign(&connector_claims(
            activity["serviceUrl"].as_str().unwrap_or_default(),
        ))
    }

    /// The Bot Connector posts `activity` to the bot's messaging endpoint, signed
    /// ("Authenticate requests from the Bot Connector service to your bot": a bearer JWT on
    /// every request); the bot's answer.
    pub async fn deliver(&self, bridge: SocketAddr, activity: &Value) -> (u16, String) {
        let token = self.token_for(activity);
        self.post(bridge, Some(&token), activity.to_string()).await
    }

    /// Posts `body` to the bridge's messaging endpoint with `token` (or none).
    pub async fn post(
        &self,
        bridge: SocketAddr,
        token: Option<&str>,
        body: String,
    ) -> (u16, String) {
        let url = format!("http://{bridge}/api/teams/teams/messages");
        let mut req = self
            .http
            .post(url)
            .insert_header(("Content-Type", "application/json; charset=utf-8"))
            .timeout(Duration::from_secs(30));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut resp = req.send_body(body).await.expect("the bridge answers");
        let body = resp.body().await.expect("an answer body");
        (
            resp.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// Delivers `activity` and asserts it was accepted; its id.
    pub async fn deliver_ok(&self, bridge: SocketAddr, activity: Value) -> String {
        let (status, body) = self.deliver(bridge, &activity).await;
        assert_eq!(status, 200, "the bridge refused {activity}: {body}");
        activity["id"].as_str().unwrap_or_default().to_owned()
    }

    /// Microsoft rolls its keys: `pem` under `kid` is published (alongside the old ones) and
    /// signs from now on.
    pub fn roll_key(&self, pem: &str, kid: &str) {
        let key = SigningKey::new(pem, kid);
        let mut s = self.state.lock();
        s.published.push(key.clone());
        s.signing = key;
    }

    /// Every app token handed out so far stops working (a 401 from the Bot Connector).
    pub fn expire_tokens(&self) {
        self.state.lock().tokens.clear();
    }

    /// While `away`, every endpoint answers 503.
    pub fn set_away(&self, away: bool) {
        self.state.lock().away = away;
    }

    /// The next send opens a window of `window` in which every send gets a 429.
    pub fn rate_limit_window(&self, window: Duration) {
        self.state.lock().window_armed = Some(window);
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().sent.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().calls.clone()
    }

    pub fn created(&self) -> Vec<Value> {
        self.state.lock().created.clone()
    }

    pub fn token_requests(&self) -> u32 {
        self.state.lock().token_requests
    }

    pub fn keys_requests(&self) -> u32 {
        self.state.lock().keys_requests
    }

    /// Waits for an activity whose text contains `needle`.
    pub async fn sent_containing(&self, needle: &str) -> Sent {
        let ok = eventually!(
            crate::support::WAIT,
            self.sent().iter().any(|s| s.text().contains(needle))
        );
        assert!(
            ok,
            "no activity containing {needle:?}; sent: {:#?}",
            self.sent()
        );
        self.sent()
            .into_iter()
            .find(|s| s.text().contains(needle))
            .expect("found")
    }
}

/// Where alice speaks.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// A new post in the channel.
    Channel,
    /// A reply in the chain under this post.
    Thread(&'a str),
    /// Her one-to-one chat with the bot.
    Direct,
}
