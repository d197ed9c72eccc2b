//! `POST /hubot/st2` and `POST /chatops/message`: workflows and other systems post into chat.
//!
//! st2chatops and err-stackstorm users have workflows (usually StackStorm's `core.http`)
//! pointed at their bot's own URL; the bridge serves both paths, so such a workflow only has
//! to change host and port and add a token. What the two clients really do, as read in
//! their sources:
//!
//! * hubot-stackstorm v0.13.0, `src/lib/stackstorm_api.js`, the `robot.router.post('/hubot/st2',
//!   …)` route: the body is the announcement payload itself, or has a field `payload` holding
//!   that payload as JSON text (how a form post carries it). hubot's web server (hubot
//!   `src/Robot.mjs`, `setupExpress`) reads JSON and `application/x-www-form-urlencoded`
//!   bodies up to `EXPRESS_LIMIT` (100 kB by default) and, only when `EXPRESS_USER` and
//!   `EXPRESS_PASSWORD` are set, demands HTTP Basic authentication. The route answers 200
//!   whatever happens: `{"status": "completed", "msg": "Message posted successfully"}`, or
//!   `{"status": "failed", "msg": "An error occurred …"}` when `payload` is not JSON. Its
//!   adapters (`src/lib/adapters/default.js`, `slack.js`) read `channel`, `message`, `user`,
//!   `whisper` and `extra`: with `whisper` and a `user` the message goes to the user, else to
//!   `channel`.
//! * err-stackstorm 2.3, `src/err-stackstorm/st2.py`, `chatops_message` (`@webhook(
//!   "/chatops/message")`), with errbot's `core_plugins/wsview.py`: the raw body is decoded as
//!   JSON whatever its declared content type (a body that is not JSON fails), the fields
//!   `channel`, `message`, `user`, `whisper` and `extra` are read, and the answer is 200
//!   `Delivered to chat backend.`. There is no authentication at all. Its chat adapters
//!   (`errst2lib/chat_adapters.py`, `post_message`) send to `user` when `whisper` and a user
//!   are given, else to `channel`, else to `user`.
//!
//! Here, both paths take both shapes: a JSON object, a form whose fields are the payload's,
//! or either with a `payload` field holding the payload (JSON text or, in JSON, an object).
//! A body labelled as a form (or not labelled) that starts with `{` is read as JSON, as
//! errbot does (`curl -d '{…}'` labels JSON as a form). Fields: `message` (required),
//! `channel` (may be `<connection>:<room>`), `user`, `whisper`, `extra`; any other field
//! (`context`, `route`, …) is ignored. A post is routed exactly as an announcement without a
//! chat context on route [`ROUTE`]: by `channel`, privately to `user` when `whisper`, with
//! StackStorm's `{~}` pretext convention and `extra` honoured (see
//! `domain::announcement::route` and the `ResultTracker`).
//!
//! Unlike either client, the endpoints are off unless `[http] post_token` (or
//! `post_token_file`) is set (404), and every post must carry `Authorization: Bearer <token>`;
//! HTTP Basic with the token as password (any user name) is accepted too, so a hubot URL with
//! `EXPRESS_USER:EXPRESS_PASSWORD@` in it keeps working once its password is the token. The
//! token is compared in constant time (`ring::hmac::verify` of the presented value against
//! the token's HMAC under a random key, so neither its bytes nor its length leak). A missing
//! and a wrong token get the same 401 with `WWW-Authenticate: Bearer`; after
//! [`MAX_FAILURES`] of them from one client address (behind a trusted proxy, the address it
//! forwards for) within [`FAILURE_WINDOW`], that address gets 429 with `Retry-After` until
//! the window ends, its token unchecked. Errors are 4xx with a JSON body `{"error": "…"}`
//! (plus `"field"` naming the field that is wrong, and hubot's `"status": "failed"` and
//! `"msg"` on `/hubot/st2`): 400 for a body or field that cannot be used, 413 over
//! [`MAX_BODY_BYTES`], 415 for a content type that is neither JSON nor a form. Success is
//! what each client answered, once the message is handed to the result tracker.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::Recipient;
use actix_web::{
    http::{
        header::{self, HeaderValue},
        ConnectionType, StatusCode,
    },
    web, HttpRequest, HttpResponse,
};
use base64::Engine as _;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::{
    body::{read_limited, BodyError},
    limiter::WindowLimiter,
    HttpState,
};
use crate::{
    actors::stream_consumer::AnnouncementReceived,
    domain::announcement::{self, Announcement},
};

/// Largest request body accepted (hubot's own limit is 100 kB; a chat message is far less).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Requests with a missing or wrong token accepted from one address per [`FAILURE_WINDOW`].
pub const MAX_FAILURES: u32 = 10;

/// The window of [`MAX_FAILURES`], counted from an address's first failure in it.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(600);

/// The route an HTTP post's announcement carries (in logs; it routes like any other).
pub const ROUTE: &str = "http";

/// Time allowed for the result tracker to take a post.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(10);

/// Which client's path a post came to: they differ only in what they answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/hubot/st2` (st2chatops).
    Hubot,
    /// `/chatops/message` (err-stackstorm).
    Errbot,
}

impl Endpoint {
    /// The path, for logs.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Hubot => "/hubot/st2",
            Endpoint::Errbot => "/chatops/message",
        }
    }

    /// What the client's own endpoint answered on success.
    fn success(self) -> HttpResponse {
        match self {
            Endpoint::Hubot => HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(json!({"status": "completed", "msg": "Message posted successfully"})),
            Endpoint::Errbot => HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .content_type("text/plain; charset=utf-8")
                .body("Delivered to chat backend."),
        }
    }

    /// An error answer: `{"error", "field"?}`, and hubot's `status`/`msg` on its path.
    fn refuse(self, status: StatusCode, error: &str, field: Option<&str>) -> HttpResponse {
        let mut body = Map::new();
        body.insert("error".into(), json!(error));
        if let Some(field) = field {
            body.insert("field".into(), json!(field));
        }
        if self == Endpoint::Hubot {
            body.insert("status".into(), json!("failed"));
            body.insert("msg".into(), json!(error));
        }
        HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Value::Object(body))
    }
}

/// The endpoints' state: off (404) without a token.
#[derive(Clone, Default)]
pub struct PostEndpoints(Option<Arc<Enabled>>);

struct Enabled {
    /// A random key, made at start.
    key: hmac::Key,
    /// The token's HMAC under `key`; the token itself is not kept.
    expected: hmac::Tag,
    /// The result tracker, which routes announcements.
    announcements: Recipient<AnnouncementReceived>,
    failures: FailureLimiter,
}

impl PostEndpoints {
    /// On when `token` is set and not empty; posts go to `announcements` (the result tracker).
    pub fn new(
        token: Option<&SecretString>,
        announcements: Recipient<AnnouncementReceived>,
    ) -> Self {
        let Some(token) = token.filter(|t| !t.expose_secret().is_empty()) else {
            return Self(None);
        };
        // The key only has to be unknown to clients; a fixed one would still compare in
        // constant time should the system's random source fail.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"stormbridge post_token"));
        let expected = hmac::sign(&key, token.expose_secret().as_bytes());
        tracing::info!(
            "POST /hubot/st2 and /chatops/message are on ([http] post_token set; bearer token required)"
        );
        Self(Some(Arc::new(Enabled {
            key,
            expected,
            announcements,
            failures: FailureLimiter::new(),
        })))
    }

    /// Whether the endpoints answer at all.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }
}

impl Enabled {
    /// Whether the request carries the token (bearer, or as a Basic password).
    fn authorised(&self, req: &HttpRequest) -> bool {
        presented_token(req)
            .is_some_and(|t| hmac::verify(&self.key, &t, self.expected.as_ref()).is_ok())
    }
}

/// The token a request presents: `Authorization: Bearer <token>`, or `Basic` with the token
/// as the password (the user name is not looked at). Schemes are case-insensitive.
pub(super) fn presented_token(req: &HttpRequest) -> Option<Zeroizing<Vec<u8>>> {
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let split = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = (&value[..split], value[split..].trim_ascii());
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return (!rest.is_empty()).then(|| Zeroizing::new(rest.to_vec()));
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?,
        );
        let colon = decoded.iter().position(|&b| b == b':')?;
        let password = &decoded[colon + 1..];
        return (!password.is_empty()).then(|| Zeroizing::new(password.to_vec()));
    }
    None
}

/// Requests with a missing or wrong token, counted per client address in fixed windows
/// (as the login page counts its attempts).
struct FailureLimiter(WindowLimiter<IpAddr>);

impl FailureLimiter {
    fn new() -> Self {
        Self(WindowLimiter::new(MAX_FAILURES, FAILURE_WINDOW))
    }

    /// How long `ip` is still refused, if it is.
    fn refused_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        self.0.refused_for(&ip.to_canonical(), now)
    }

    /// Counts one failure from `ip`; the failures in its window so far.
    fn failed(&self, ip: IpAddr, now: Instant) -> u32 {
        self.0.count(ip.to_canonical(), now)
    }
}

/// How a body is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` or `application/*+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// No `Content-Type`.
    Unlabelled,
}

/// The body's kind, or the unaccepted content type (for a 415).
fn body_kind(req: &HttpRequest) -> Result<BodyKind, String> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Unlabelled);
    };
    let text = value.to_str().map_err(|_| "(unreadable)".to_owned())?;
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" => Ok(BodyKind::Unlabelled),
        "application/json" => Ok(BodyKind::Json),
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        e if e.starts_with("application/") && e.ends_with("+json") => Ok(BodyKind::Json),
        _ => Err(essence.chars().take(100).collect()),
    }
}

/// A post, as read from either client's body.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// Where to post: a room, or `<connection>:<room>`.
    pub channel: Option<String>,
    /// The text (`{~}` convention not yet applied).
    pub message: String,
    /// The user to address, or to whisper to.
    pub user: Option<String>,
    /// Send privately to `user`.
    pub whisper: bool,
    /// Formatting hints (`extra.slack`, `extra.color`, …).
    pub extra: Option<Value>,
}

impl Post {
    /// The announcement this post is routed as: no chat context, route [`ROUTE`].
    pub fn into_announcement(self) -> Announcement {
        Announcement {
            route: ROUTE.to_owned(),
            message: self.message,
            channel: self.channel,
            user: self.user,
            whisper: self.whisper,
            context: None,
            foreign_context: false,
            extra: self.extra,
        }
    }
}

/// A field (or the body) that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadField {
    /// `body`, `payload`, `message`, `channel`, `user`, `whisper` or `extra`.
    pub field: &'static str,
    /// Why, in words a workflow author can act on.
    pub reason: String,
}

impl std::fmt::Display for BadField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> BadField {
    BadField {
        field,
        reason: reason.into(),
    }
}

/// The fields read; repeating one of them in a form is an error, other fields are ignored.
const FIELDS: &[&str] = &["payload", "channel", "message", "user", "whisper", "extra"];

/// Reads a post from a body of `kind` (see the module documentation for the shapes).
pub fn parse_post(kind: BodyKind, body: &[u8]) -> Result<Post, BadField> {
    let looks_like_json = matches!(body.trim_ascii_start().first(), Some(b'{' | b'['));
    let fields = match kind {
        BodyKind::Json => json_object(body)?,
        BodyKind::Form | BodyKind::Unlabelled if looks_like_json => json_object(body)?,
        BodyKind::Form | BodyKind::Unlabelled => form_fields(body)?,
    };
    let fields = unwrap_payload(fields)?;
    let message = match fields.get("message") {
        None | Some(Value::Null) => return Err(bad("message", "is required")),
        // Text that is empty once `{~}` is applied would be dropped, not posted.
        Some(Value::String(s)) if announcement::plain_text(s).trim().is_empty() => {
            return Err(bad("message", "is empty"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("message", "must be a string")),
    };
    let channel = name(&fields, "channel")?;
    let user = name(&fields, "user")?;
    let whisper = flag(&fields, "whisper")?;
    let extra = object(&fields, "extra")?;
    if channel.is_none() && user.is_none() {
        return Err(bad(
            "channel",
            "is required (or a user to send the message to)",
        ));
    }
    Ok(Post {
        channel,
        message,
        user,
        whisper,
        extra,
    })
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, BadField> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(bad("body", "must be a JSON object")),
        Err(e) => Err(bad("body", format!("is not valid JSON ({e})"))),
    }
}

fn form_fields(body: &[u8]) -> Result<Map<String, Value>, BadField> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
        bad(
            "body",
            "is neither JSON nor a form (application/x-www-form-urlencoded)",
        )
    })?;
    let mut fields = Map::new();
    for (key, value) in pairs {
        if let Some(known) = FIELDS.iter().copied().find(|f| *f == key) {
            if fields.contains_key(known) {
                return Err(bad(known, "is given more than once"));
            }
            fields.insert(key, Value::String(value));
        }
    }
    Ok(fields)
}

/// hubot's `payload`: the payload as JSON text (or, here, a JSON object) in a field of its
/// own; the other fields of the body are then ignored, as hubot ignores them.
fn unwrap_payload(mut fields: Map<String, Value>) -> Result<Map<String, Value>, BadField> {
    match fields.remove("payload") {
        None | Some(Value::Null) => Ok(fields),
        Some(Value::String(s)) if s.is_empty() => Ok(fields),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(inner)) => Ok(inner),
            Ok(_) => Err(bad("payload", "must be a JSON object")),
            Err(e) => Err(bad("payload", format!("is not valid JSON ({e})"))),
        },
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(bad(
            "payload",
            "must be a JSON object, or the JSON text of one",
        )),
    }
}

/// A room or user name: text (trimmed; empty is absent) or an integer id.
fn name(fields: &Map<String, Value>, field: &'static str) -> Result<Option<String>, BadField> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

/// A boolean: JSON `true`/`false`, or as a form writes it (`true`, `false`, `1`, `0`, `yes`,
/// `no`, `on`, `off`, empty). Anything else is refused rather than guessed: both clients
/// took the text `"false"` for true.
fn flag(fields: &Map<String, Value>, field: &'static str) -> Result<bool, BadField> {
    let refused = || bad(field, "must be true or false");
    match fields.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(refused()),
        },
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(refused()),
        },
        Some(_) => Err(refused()),
    }
}

/// An object: JSON, or its JSON text (how a form carries it); empty text is absent.
fn object(fields: &Map<String, Value>, field: &'static str) -> Result<Option<Value>, BadField> {
    let refused = || bad(field, "must be a JSON object");
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            _ => Err(refused()),
        },
        Some(_) => Err(refused()),
    }
}

/// `response`, closing the connection: the request's body was not (all) read, so the
/// connection cannot carry another request.
pub(super) fn closing(mut response: HttpResponse) -> HttpResponse {
    response
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    response
}

/// `POST /hubot/st2`.
pub async fn hubot(
    state: web::Data<HttpState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    post(Endpoint::Hubot, &state, &req, payload).await
}

/// `POST /chatops/message`.
pub async fn chatops_message(
    state: web::Data<HttpState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    post(Endpoint::Errbot, &state, &req, payload).await
}

/// Any other method on either path: 404 while the endpoints are off, else 405.
pub async fn other_method(state: web::Data<HttpState>) -> HttpResponse {
    if !state.post.is_enabled() {
        return HttpResponse::NotFound().finish();
    }
    closing(
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .json(json!({"error": "only POST is accepted here"})),
    )
}

async fn post(
    endpoint: Endpoint,
    state: &HttpState,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(on) = state.post.0.as_deref() else {
        return closing(HttpResponse::NotFound().finish());
    };
    let client = super::client_address(req, &state.trusted_proxies);
    let now = Instant::now();
    if let Some(wait) = client.and_then(|ip| on.failures.refused_for(ip, now)) {
        let mut response = endpoint.refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests with a missing or wrong token from this address; try again later",
            None,
        );
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return closing(response);
    }
    if !on.authorised(req) {
        let failures = client.map(|ip| on.failures.failed(ip, now));
        if failures == Some(MAX_FAILURES) {
            tracing::warn!(
                endpoint = endpoint.path(),
                client = ?client,
                "{MAX_FAILURES} posts with a missing or wrong token from one address; it is refused for {} s",
                FAILURE_WINDOW.as_secs()
            );
        } else {
            tracing::warn!(
                endpoint = endpoint.path(),
                client = ?client,
                "post refused: missing or wrong token"
            );
        }
        let mut response = endpoint.refuse(
            StatusCode::UNAUTHORIZED,
            "a valid token is required: send the header `Authorization: Bearer <token>` with the token of [http] post_token",
            None,
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"stormbridge\""),
        );
        return closing(response);
    }
    let kind = match body_kind(req) {
        Ok(kind) => kind,
        Err(given) => {
            return closing(endpoint.refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("content type `{given}` is not accepted: send application/json or application/x-www-form-urlencoded"),
                None,
            ))
        }
    };
    let body = match read_limited(req, payload, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let (status, error) = match e {
                BodyError::TooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body: larger than {MAX_BODY_BYTES} bytes"),
                ),
                BodyError::TooSlow => (
                    StatusCode::REQUEST_TIMEOUT,
                    "body: did not arrive in time".to_owned(),
                ),
                BodyError::Incomplete => (
                    StatusCode::BAD_REQUEST,
                    "body: could not be read".to_owned(),
                ),
            };
            return closing(endpoint.refuse(status, &error, Some("body")));
        }
    };
    let post = match parse_post(kind, &body) {
        Ok(post) => post,
        Err(bad) => {
            return endpoint.refuse(StatusCode::BAD_REQUEST, &bad.to_string(), Some(bad.field))
        }
    };
    let (channel, whisper, has_user) = (post.channel.clone(), post.whisper, post.user.is_some());
    let handed = on
        .announcements
        .send(AnnouncementReceived(post.into_announcement()))
        .timeout(HAND_OVER_TIMEOUT)
        .await;
    match handed {
        Ok(()) => {
            tracing::info!(
                endpoint = endpoint.path(),
                client = ?client,
                channel = ?channel,
                whisper,
                user = has_user,
                "message posted over HTTP handed over for delivery"
            );
            endpoint.success()
        }
        Err(e) => {
            tracing::warn!(endpoint = endpoint.path(), error = %e, "a message posted over HTTP could not be handed over");
            let mut response = endpoint.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the bridge could not take the message now; try again",
                None,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_post(body: Value) -> Result<Post, BadField> {
        parse_post(BodyKind::Json, body.to_string().as_bytes())
    }

    #[test]
    fn a_workflow_payload_is_read_as_it_is() {
        let post = json_post(json!({"channel": "slack:C1", "message": "hi{~}there", "user": "U1",
            "whisper": true, "extra": {"color": "red"}, "context": {"id": "1.2"}, "route": "chatops"}))
        .unwrap();
        assert_eq!(
            post,
            Post {
                channel: Some("slack:C1".into()),
                message: "hi{~}there".into(),
                user: Some("U1".into()),
                whisper: true,
                extra: Some(json!({"color": "red"})),
            }
        );
        let a = post.into_announcement();
        assert_eq!(a.route, ROUTE);
        assert_eq!(a.context, None);
        assert!(!a.foreign_context);
    }

    #[test]
    fn hubots_payload_field_is_unwrapped_from_forms_and_json() {
        let inner = json!({"channel": "ops", "message": "from a form"}).to_string();
        let form =
            serde_urlencoded::to_string([("payload", inner.as_str()), ("other", "x")]).unwrap();
        let post = parse_post(BodyKind::Form, form.as_bytes()).unwrap();
        assert_eq!(post.channel.as_deref(), Some("ops"));
        assert_eq!(post.message, "from a form");
        let post = json_post(json!({"payload": inner, "message": "ignored"})).unwrap();
        assert_eq!(post.message, "from a form");
        let post = json_post(json!({"payload": {"channel": "ops", "message": "object"}})).unwrap();
        assert_eq!(post.message, "object");
        let e = parse_post(BodyKind::Form, b"payload=%7Bnot").unwrap_err();
        assert_eq!(e.field, "payload");
        assert_eq!(
            json_post(json!({"payload": 3})).unwrap_err().field,
            "payload"
        );
    }

    #[test]
    fn plain_form_fields_and_json_labelled_as_a_form_are_read() {
        let post = parse_post(
            BodyKind::Form,
            b"channel=ops&message=hello+there&whisper=false&user=bob&extra=%7B%22color%22%3A%22red%22%7D",
        )
        .unwrap();
        assert_eq!(post.message, "hello there");
        assert!(!post.whisper);
        assert_eq!(post.extra, Some(json!({"color": "red"})));
        // curl -d '{…}' labels JSON as a form; errbot reads it as JSON, so does the bridge.
        let post = parse_post(BodyKind::Form, br#" {"channel": "ops", "message": "m"}"#).unwrap();
        assert_eq!(post.message, "m");
        let post = parse_post(BodyKind::Unlabelled, br#"{"user": "bob", "message": "m"}"#).unwrap();
        assert_eq!(post.user.as_deref(), Some("bob"));
        assert_eq!(
            parse_post(BodyKind::Form, b"channel=a&channel=b&message=m")
                .unwrap_err()
                .field,
            "channel"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let field = |body: Value| json_post(body).unwrap_err().field;
        assert_eq!(field(json!({"channel": "ops"})), "message");
        assert_eq!(field(json!({"channel": "ops", "message": "  "})), "message");
        assert_eq!(
            field(json!({"channel": "ops", "message": " {~} "})),
            "message"
        );
        assert_eq!(
            field(json!({"channel": "ops", "message": {"a": 1}})),
            "message"
        );
        assert_eq!(field(json!({"message": "m"})), "channel");
        assert_eq!(field(json!({"channel": ["a"], "message": "m"})), "channel");
        assert_eq!(
            field(json!({"channel": "ops", "user": true, "message": "m"})),
            "user"
        );
        assert_eq!(
            field(json!({"channel": "ops", "message": "m", "whisper": "maybe"})),
            "whisper"
        );
        assert_eq!(
            field(json!({"channel": "ops", "message": "m", "extra": [1]})),
            "extra"
        );
        assert_eq!(json_post(json!([1])).unwrap_err().field, "body");
        assert_eq!(
            parse_post(BodyKind::Json, b"{\"message\": ")
                .unwrap_err()
                .field,
            "body"
        );
        let e = json_post(json!({"channel": "ops"})).unwrap_err();
        assert_eq!(e.to_string(), "message: is required");
    }

    #[test]
    fn whisper_and_names_take_what_forms_and_chat_ids_look_like() {
        for (value, expected) in [
            (json!(true), true),
            (json!("TRUE"), true),
            (json!("1"), true),
            (json!(1), true),
            (json!(false), false),
            (json!("false"), false),
            (json!(""), false),
            (json!(0), false),
        ] {
            let post = json_post(json!({"user": "u", "message": "m", "whisper": value})).unwrap();
            assert_eq!(post.whisper, expected, "{value}");
        }
        let post = json_post(json!({"channel": 123456789012345678u64, "message": "m"})).unwrap();
        assert_eq!(post.channel.as_deref(), Some("123456789012345678"));
        let post = json_post(json!({"channel": "  ", "user": "u", "message": "m"})).unwrap();
        assert_eq!(post.channel, None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any body, labelled any way, is read or refused with a field named; a post read
        /// has a message and somewhere to go.
        #[test]
        fn any_body_is_read_or_refused_without_panicking(
            kind in proptest::sample::select(vec![BodyKind::Json, BodyKind::Form, BodyKind::Unlabelled]),
            real in proptest::sample::select(vec![
                r#"{"channel": "ops", "message": "m{~}x", "user": "u", "whisper": true, "extra": {"color": "red"}}"#,
                r#"payload=%7B%22channel%22%3A%22ops%22%2C%22message%22%3A%22m%22%7D"#,
                "channel=ops&message=m&whisper=1&extra=%7B%7D",
                r#"{"payload": "{\"user\": \"u\", \"message\": \"m\"}"}"#,
            ]),
            cut in 0usize..120,
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..16),
        ) {
            let mut body = real.as_bytes().to_vec();
            let at = cut.min(body.len());
            body.splice(at..at, noise);
            match parse_post(kind, &body) {
                Ok(post) => {
                    proptest::prop_assert!(!post.message.trim().is_empty());
                    proptest::prop_assert!(post.channel.is_some() || post.user.is_some());
                }
                Err(bad) => proptest::prop_assert!(
                    ["body", "payload", "message", "channel", "user", "whisper", "extra"]
                        .contains(&bad.field)
                ),
            }
        }
    }
}
