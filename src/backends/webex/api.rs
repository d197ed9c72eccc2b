//! The Webex REST API calls the bridge makes (<https://developer.webex.com/docs/api/v1/>),
//! with the bot's token as `Authorization: Bearer`, and how their answers are classified.
//!
//! Errors name the method and path (never the host, a query or the token) and Webex's own
//! `message` and `trackingId` from its error body (`{message, errors: [{description}],
//! trackingId}`, "REST API Basics": <https://developer.webex.com/docs/basics>).

use std::{rc::Rc, time::Duration};

use awc::http::{header::HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::wire::{self, Message, Person, Step, Wanted, Webhook};
use crate::backends::{
    buttons::OfferReceipt,
    connection::{outbox::Dest, outbox::Outcome, ConnectionError},
};

/// Largest answer read.
const MAX_BODY: usize = 1 << 20;

/// Pages of `GET /webhooks` read at most (100 webhooks a page).
const MAX_PAGES: usize = 20;

/// A 429 without a usable `Retry-After`: wait this long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Tries at reading what a webhook only names (a message, a card press). Webex sends a
/// webhook once, so a read refused for a moment (429, 423, a 5xx, the network) is tried
/// again rather than the command or the press being lost.
const FETCH_TRIES: u32 = 4;

/// The first wait between two tries of a read after a 5xx or a network error; doubled each
/// time.
const FETCH_BACKOFF: Duration = Duration::from_millis(500);

/// The longest `Retry-After` a read waits for: beyond it the command is stale by the time
/// it could run, and the read gives up with the error.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);

/// One message waiting to be sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// A room, or a person (their 1:1 room with the bot).
    pub dest: Dest,
    /// The thread's first message, for a reply in a thread.
    pub parent_id: Option<String>,
    /// The text, as Markdown.
    pub markdown: String,
    /// An Adaptive Card (answer buttons), sent as the message's attachment.
    pub card: Option<Value>,
    /// For a held command's card: whom to tell the posted message's id, so that the card
    /// can be taken down when its buttons are spent.
    pub posted: Option<OfferReceipt>,
    /// When set, this item takes that message of the room down ("Delete a Message":
    /// <https://developer.webex.com/docs/api/v1/messages/delete-a-message>) instead of
    /// posting: a card whose buttons are spent, which Webex cannot edit.
    pub delete: Option<String>,
}

impl Outgoing {
    /// An item that deletes the bot's message `message_id` in `room`.
    pub fn deletion(room: String, message_id: String) -> Self {
        Self {
            dest: Dest::Room(room),
            parent_id: None,
            markdown: String::new(),
            card: None,
            posted: None,
            delete: Some(message_id),
        }
    }
}

/// An authenticated API client.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub client: awc::Client,
    /// The API's base URL (`https://webexapis.com/v1`).
    pub base: Rc<str>,
    /// The bot's token.
    pub token: Rc<str>,
}

/// A path segment (an id) as it goes into a URL.
pub fn encode(segment: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

/// The typed error for an error answer to `method path`.
pub fn api_error(method: &Method, path: &str, status: StatusCode, body: &[u8]) -> ConnectionError {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        errors: Vec<ErrorDetail>,
        #[serde(default)]
        tracking_id: Option<String>,
    }
    #[derive(Deserialize, Default)]
    struct ErrorDetail {
        #[serde(default)]
        description: Option<String>,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed
        .message
        .filter(|m| !m.trim().is_empty())
        .or_else(|| parsed.errors.into_iter().find_map(|e| e.description));
    let message = match (message, parsed.tracking_id.filter(|t| !t.is_empty())) {
        (Some(m), Some(t)) => Some(format!("{m} (trackingId {t})")),
        (None, Some(t)) => Some(format!("(trackingId {t})")),
        (m, None) => m,
    };
    ConnectionError::Http {
        request: format!("{method} {}", path.split('?').next().unwrap_or_default()),
        status: status.as_u16(),
        code: None,
        message,
    }
}

/// A 401 is the token refused: the connection stops rather than retry.
fn refused_token(e: ConnectionError) -> ConnectionError {
    match e {
        ConnectionError::Http { status: 401, .. } => ConnectionError::Unauthorized(e.to_string()),
        other => other,
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The `rel="next"` URL of a `Link` header (RFC 5988, how Webex paginates lists).
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"))
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_owned()
            })
    })
}

impl Api {
    /// Sends `method url` (with `body` as JSON); the status, headers and body, whatever the
    /// status. `path` names the request in errors.
    async fn call(
        &self,
        method: Method,
        url: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ConnectionError> {
        let during = || format!("{method} {}", path.split('?').next().unwrap_or_default());
        let req = self
            .client
            .request(method.clone(), url)
            .bearer_auth(&*self.token);
        let sent = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        let mut resp = sent.map_err(|e| ConnectionError::network(during(), e))?;
        let bytes = resp
            .body()
            .limit(MAX_BODY)
            .await
            .map_err(|e| ConnectionError::network(during(), e))?;
        Ok((resp.status(), resp.headers().clone(), bytes))
    }

    /// `method path` whose answer must be a success; its JSON body (`Null` for none).
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ConnectionError> {
        let url = format!("{}{path}", self.base);
        let (status, _, bytes) = self.call(method.clone(), &url, path, body).await?;
        success_json(&method, path, status, &bytes)
    }

    /// `GET path` whose answer must be a success, tried again while Webex asks the bridge
    /// to wait (429 or 423 with `Retry-After`, "REST API Basics") or fails for a moment (a
    /// 5xx, the network), up to [`FETCH_TRIES`] times.
    async fn fetch(&self, path: &str) -> Result<Value, ConnectionError> {
        let url = format!("{}{path}", self.base);
        let mut backoff = FETCH_BACKOFF;
        for attempt in 1.. {
            let answer = self.call(Method::GET, &url, path, None).await;
            let wait = match &answer {
                Ok((status, headers, _)) => retry_wait(*status, headers, backoff),
                Err(ConnectionError::Network { .. }) => Some(backoff),
                Err(_) => None,
            };
            match wait {
                Some(wait) if attempt < FETCH_TRIES && wait <= MAX_FETCH_WAIT => {
                    tracing::debug!(request = %format!("GET {}", path.split('?').next().unwrap_or_default()), attempt, wait_ms = wait.as_millis() as u64, "Webex read refused for now; trying again");
                    actix_rt::time::sleep(wait).await;
                    backoff *= 2;
                }
                _ => {
                    let (status, _, bytes) = answer?;
                    return success_json(&Method::GET, path, status, &bytes);
                }
            }
        }
        unreachable!("the loop above returns")
    }

    /// The bot (`GET /people/me`). A refused token stops the connection.
    pub async fn me(&self) -> Result<Person, ConnectionError> {
        let v = self
            .expect(Method::GET, "/people/me", None)
            .await
            .map_err(refused_token)?;
        let me = Person::deserialize(&v)
            .map_err(|e| ConnectionError::Protocol(format!("GET /people/me: {e}")))?;
        if me.id.trim().is_empty() {
            return Err(ConnectionError::Protocol(
                "GET /people/me returned no id".into(),
            ));
        }
        Ok(me)
    }

    /// A person (`GET /people/{id}`).
    pub async fn person(&self, id: &str) -> Result<Person, ConnectionError> {
        let v = self
            .expect(Method::GET, &format!("/people/{}", encode(id)), None)
            .await?;
        Person::deserialize(&v).map_err(|e| ConnectionError::Protocol(format!("GET /people: {e}")))
    }

    /// A message (`GET /messages/{id}`): what a `messages` webhook only names.
    pub async fn message(&self, id: &str) -> Result<Message, ConnectionError> {
        let v = self.fetch(&format!("/messages/{}", encode(id))).await?;
        Message::parse(&v)
            .ok_or_else(|| ConnectionError::Protocol("GET /messages: not a message".into()))
    }

    /// A room's title (`GET /rooms/{id}`), where it has one.
    pub async fn room_title(&self, id: &str) -> Result<Option<String>, ConnectionError> {
        let v = self
            .expect(Method::GET, &format!("/rooms/{}", encode(id)), None)
            .await?;
        Ok(v.get("title")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned))
    }

    /// A card press (`GET /attachment/actions/{id}`): who pressed, where, and the inputs
    /// (the pressed `Action.Submit`'s `data`).
    pub async fn action(&self, id: &str) -> Result<Value, ConnectionError> {
        self.fetch(&format!("/attachment/actions/{}", encode(id)))
            .await
    }

    /// Every webhook of the bot (`GET /webhooks`, following `Link: rel="next"` within the
    /// API's own host only, so the token goes nowhere else).
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, ConnectionError> {
        let mut out = Vec::new();
        let mut url = format!("{}/webhooks?max=100", self.base);
        for _ in 0..MAX_PAGES {
            let (status, headers, bytes) = self.call(Method::GET, &url, "/webhooks", None).await?;
            if !status.is_success() {
                return Err(refused_token(api_error(
                    &Method::GET,
                    "/webhooks",
                    status,
                    &bytes,
                )));
            }
            #[derive(Deserialize)]
            struct Page {
                #[serde(default)]
                items: Vec<Webhook>,
            }
            let page: Page = serde_json::from_slice(&bytes)
                .map_err(|e| ConnectionError::Protocol(format!("GET /webhooks: bad JSON: {e}")))?;
            out.extend(page.items);
            match next_link(&headers) {
                Some(next) if next.starts_with(&format!("{}/", self.base)) => url = next,
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Brings the bot's webhooks to what `wanted` says ([`wire::plan`]); the steps taken.
    pub async fn reconcile(&self, wanted: &Wanted<'_>) -> Result<Vec<Step>, ConnectionError> {
        let existing = self.webhooks().await?;
        let steps = wire::plan(&existing, wanted);
        for step in &steps {
            let done = match step {
                Step::Create { resource, event } => {
                    let body = json!({"name": wanted.name, "targetUrl": wanted.target_url,
                        "resource": resource, "event": event, "secret": wanted.secret});
                    self.expect(Method::POST, "/webhooks", Some(&body)).await
                }
                Step::Update { id } => {
                    let body = json!({"name": wanted.name, "targetUrl": wanted.target_url,
                        "secret": wanted.secret, "status": "active"});
                    self.expect(
                        Method::PUT,
                        &format!("/webhooks/{}", encode(id)),
                        Some(&body),
                    )
                    .await
                }
                Step::Delete { id } => {
                    match self
                        .expect(Method::DELETE, &format!("/webhooks/{}", encode(id)), None)
                        .await
                    {
                        // Gone already (another replica was quicker): as good as deleted.
                        Err(ConnectionError::Http { status: 404, .. }) => Ok(Value::Null),
                        other => other,
                    }
                }
            };
            done.map_err(refused_token)?;
        }
        Ok(steps)
    }

    /// Carries out one item: posts a message (`POST /messages`) or deletes one. The
    /// outcome, whether Webex could not be reached at all, and the id of a posted message.
    pub async fn send(&self, item: &Outgoing) -> (Outcome, bool, Option<String>) {
        if let Some(id) = &item.delete {
            let path = format!("/messages/{}", encode(id));
            let url = format!("{}{path}", self.base);
            return match self
                .call(Method::DELETE, &url, "/messages/{id}", None)
                .await
            {
                Err(e) => (Outcome::Retry(e), true, None),
                // Already gone (deleted by a moderator, or by an earlier try whose answer
                // was lost): what the deletion was for is done.
                Ok((StatusCode::NOT_FOUND, _, _)) => (Outcome::Sent { pause: None }, false, None),
                Ok((status, headers, bytes)) => (
                    classify(&Method::DELETE, "/messages/{id}", status, &headers, &bytes),
                    false,
                    None,
                ),
            };
        }
        let mut body = json!({"markdown": item.markdown});
        match &item.dest {
            Dest::Room(room) => body["roomId"] = json!(room),
            // StackStorm may name a person by email; Webex takes either.
            Dest::User(user) if user.contains('@') => body["toPersonEmail"] = json!(user),
            Dest::User(user) => body["toPersonId"] = json!(user),
        }
        if let Some(parent) = item.parent_id.as_ref().filter(|p| !p.is_empty()) {
            body["parentId"] = json!(parent);
        }
        if let Some(card) = &item.card {
            body["attachments"] = json!([{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": card,
            }]);
        }
        let url = format!("{}/messages", self.base);
        match self
            .call(Method::POST, &url, "/messages", Some(&body))
            .await
        {
            Err(e) => (Outcome::Retry(e), true, None),
            Ok((status, headers, bytes)) => {
                let outcome = classify(&Method::POST, "/messages", status, &headers, &bytes);
                // The created message, whose `id` a held command's card is taken down by.
                let id = matches!(outcome, Outcome::Sent { .. })
                    .then(|| serde_json::from_slice::<Value>(&bytes).ok())
                    .flatten()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
                    .filter(|id| !id.is_empty());
                (outcome, false, id)
            }
        }
    }
}

/// An answer's JSON body when its status is a success (`Null` for no body), else the
/// typed error.
fn success_json(
    method: &Method,
    path: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<Value, ConnectionError> {
    if !status.is_success() {
        return Err(api_error(method, path, status, bytes));
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ConnectionError::Protocol(format!("{method} {path}: bad JSON: {e}")))
}

/// How long to wait before reading again after `status`: Webex's `Retry-After` for 429 and
/// 423, `backoff` for a server error, `None` when trying again cannot help.
fn retry_wait(status: StatusCode, headers: &HeaderMap, backoff: Duration) -> Option<Duration> {
    asked_to_wait(status, headers).or_else(|| status.is_server_error().then_some(backoff))
}

/// The wait Webex names for a 429, and for 423 Locked, in `Retry-After` ("REST API
/// Basics"); `None` for any other status.
fn asked_to_wait(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::LOCKED {
        return None;
    }
    let header = headers.get("retry-after").and_then(|v| v.to_str().ok());
    Some(wire::retry_after(header, now_unix()).unwrap_or(DEFAULT_RETRY_AFTER))
}

/// What the queue does with the answer to `method path` (`POST /messages`, `DELETE
/// /messages/{id}`).
pub fn classify(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Outcome {
    if let Some(wait) = asked_to_wait(status, headers) {
        return Outcome::RateLimited(wait);
    }
    let error = || api_error(method, path, status, body);
    if status == StatusCode::UNAUTHORIZED {
        // The message stays first in the queue, and the connection stops.
        return Outcome::Retry(ConnectionError::Unauthorized(error().to_string()));
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Outcome::Retry(error());
    }
    if !status.is_success() {
        return Outcome::Rejected(error());
    }
    Outcome::Sent { pause: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Outcome {
        classify(&Method::POST, "/messages", status, headers, body)
    }
    use awc::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn answers_to_a_post_are_classified() {
        assert_eq!(
            post_answer(StatusCode::OK, &HeaderMap::new(), b"{}"),
            Outcome::Sent { pause: None }
        );
        assert_eq!(
            post_answer(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("retry-after", "3")]),
                b""
            ),
            Outcome::RateLimited(Duration::from_secs(3))
        );
        assert_eq!(
            post_answer(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b""),
            Outcome::RateLimited(DEFAULT_RETRY_AFTER)
        );
        assert_eq!(
            post_answer(StatusCode::LOCKED, &headers(&[("retry-after", "2")]), b""),
            Outcome::RateLimited(Duration::from_secs(2))
        );
        assert!(matches!(
            post_answer(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b""),
            Outcome::Retry(ConnectionError::Unauthorized(_))
        ));
        assert!(matches!(
            post_answer(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b""),
            Outcome::Retry(ConnectionError::Http { status: 502, .. })
        ));
        let body = br#"{"message": "Unable to post message to room", "errors": [{"description": "Unable to post message to room"}], "trackingId": "ROUTER_1"}"#;
        match post_answer(StatusCode::FORBIDDEN, &HeaderMap::new(), body) {
            Outcome::Rejected(e) => assert_eq!(
                e.to_string(),
                "POST /messages: HTTP 403 Unable to post message to room (trackingId ROUTER_1)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_keep_webexs_words_and_never_a_query() {
        let e = api_error(
            &Method::GET,
            "/webhooks?max=100",
            StatusCode::BAD_REQUEST,
            br#"{"errors": [{"description": "bad max"}]}"#,
        );
        assert_eq!(e.to_string(), "GET /webhooks: HTTP 400 bad max");
        let e = api_error(
            &Method::GET,
            "/people/me",
            StatusCode::BAD_GATEWAY,
            b"<html>",
        );
        assert_eq!(e.to_string(), "GET /people/me: HTTP 502");
        assert!(matches!(
            refused_token(api_error(
                &Method::GET,
                "/people/me",
                StatusCode::UNAUTHORIZED,
                b""
            )),
            ConnectionError::Unauthorized(_)
        ));
    }

    #[test]
    fn ids_are_encoded_and_next_links_read() {
        assert_eq!(encode("Y2lz+a/b=="), "Y2lz%2Ba%2Fb%3D%3D");
        assert_eq!(encode("abc-_.~"), "abc-_.~");
        let h = headers(&[(
            "link",
            "<https://webexapis.com/v1/webhooks?max=100&cursor=abc>; rel=\"next\"",
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://webexapis.com/v1/webhooks?max=100&cursor=abc")
        );
        let h = headers(&[("link", "<https://x/prev>; rel=\"prev\"")]);
        assert_eq!(next_link(&h), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }
}
