//! The HTTP calls of a Teams connection, and how their answers are classified:
//!
//! - the app token, by the OAuth 2.0 client-credentials grant on the tenant's token
//!   endpoint (scope `https://api.botframework.com/.default`), cached until five minutes
//!   before it expires and fetched again once when the Bot Connector answers 401
//!   (<https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication>,
//!   "Authenticate requests from your bot to the Bot Connector service"); the token endpoint
//!   refusing the app's credentials (400 or 401, `invalid_client`, `unauthorized_client`,
//!   …) stops the connection;
//! - the Bot Connector's OpenID metadata and the keys at its `jwks_uri` (same page,
//!   "Authenticate requests from the Bot Connector service to your bot");
//! - the Bot Connector's conversation calls on the activity's `serviceUrl`
//!   (<https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference>):
//!   `POST /v3/conversations/{conversationId}/activities` (Send to Conversation),
//!   `POST /v3/conversations/{conversationId}/activities/{activityId}` (Reply to Activity),
//!   `PUT /v3/conversations/{conversationId}/activities/{activityId}` (Update Activity) and
//!   `POST /v3/conversations` (Create Conversation, for a one-to-one chat). Errors come as
//!   `{"error": {"code", "message"}}`; 429 carries `Retry-After`, and Teams asks for 412,
//!   502 and 504 to be retried like it
//!   (<https://learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit>).
//!
//! Errors name a request's path, never its host, a token or the app password.

use std::{
    rc::Rc,
    time::{Duration, Instant},
};

use awc::http::{header::HeaderMap, StatusCode};
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::jwt::{KeySet, OpenIdMetadata};
use crate::backends::{
    connection::{outbox::Outcome, ConnectionError},
    rest::post_outcome,
};

/// The scope of app tokens for the Bot Connector.
pub const SCOPE: &str = "https://api.botframework.com/.default";

/// A token is fetched again this long before it expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Largest answer read.
const MAX_BODY: usize = 1 << 20;

/// Characters left as they are in a conversation id or activity id in a path (what
/// JavaScript's `encodeURIComponent` leaves, as the Bot Framework SDKs do).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// A path segment, encoded.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// What the calls need to know.
pub struct Endpoints {
    /// The app id (client id).
    pub app_id: String,
    /// The client secret.
    pub app_password: SecretString,
    /// The token endpoint.
    pub token_url: String,
    /// The OpenID metadata.
    pub metadata_url: String,
}

/// The client and the endpoints.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub client: awc::Client,
    /// Where and who.
    pub endpoints: Rc<Endpoints>,
}

/// An app token.
#[derive(Clone)]
pub struct AppToken {
    value: Rc<str>,
    expires_at: Instant,
}

impl std::fmt::Debug for AppToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AppToken {
    /// A token with this value, valid for `lifetime` from now.
    pub fn new(value: &str, lifetime: Duration) -> Self {
        Self {
            value: value.into(),
            expires_at: Instant::now() + lifetime,
        }
    }

    /// Whether it is still good at `now` (not within [`RENEW_BEFORE`] of expiring).
    pub fn fresh_at(&self, now: Instant) -> bool {
        now + RENEW_BEFORE < self.expires_at
    }
}

/// The connection's app token, shared by its calls: one fetch at a time, every call after
/// it uses the token it got.
#[derive(Default)]
pub struct Tokens {
    slot: tokio::sync::Mutex<Option<AppToken>>,
}

impl Tokens {
    /// A fresh token: the cached one, or a new one.
    pub async fn get(&self, api: &Api) -> Result<Rc<str>, ConnectionError> {
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| t.fresh_at(Instant::now())) {
            return Ok(t.value.clone());
        }
        let token = api.fetch_token().await?;
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    /// A new token after `refused` was answered 401 (unless another call already got one).
    pub async fn renew(&self, api: &Api, refused: &str) -> Result<Rc<str>, ConnectionError> {
        {
            let mut slot = self.slot.lock().await;
            if slot.as_ref().is_some_and(|t| &*t.value == refused) {
                *slot = None;
            }
        }
        self.get(api).await
    }
}

/// The first line of an error description, short.
fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

/// The Bot Connector's `{"error": {"code", "message"}}` as a typed error.
pub fn connector_error(request: String, status: StatusCode, body: &[u8]) -> ConnectionError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| {
        v.pointer(&format!("/error/{name}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(first_line)
    };
    ConnectionError::Http {
        request,
        status: status.as_u16(),
        code: field("code"),
        message: field("message"),
    }
}

/// A `Retry-After` value: seconds, or an HTTP date.
pub fn retry_after(value: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// What the queue does with the answer to a send; `None` for a success.
pub fn classify(
    request: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Outcome> {
    let error = || connector_error(request.to_owned(), status, body);
    match status.as_u16() {
        429 => {
            let header = headers.get("retry-after").and_then(|v| v.to_str().ok());
            let wait = retry_after(header, chrono::Utc::now()).unwrap_or(Duration::from_secs(1));
            Some(Outcome::RateLimited(wait))
        }
        401 => Some(Outcome::Retry(ConnectionError::Unauthorized(format!(
            "the Bot Connector refused a freshly fetched app token ({})",
            error()
        )))),
        412 | 502 | 504 => Some(Outcome::Retry(error())),
        s if (200..300).contains(&s) => None,
        _ => post_outcome(request, status, body).map(|o| match o {
            Outcome::Retry(_) => Outcome::Retry(error()),
            Outcome::Rejected(_) => Outcome::Rejected(error()),
            other => other,
        }),
    }
}

/// An HTTP method of the Bot Connector calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// One answer: status, headers, body.
pub type Answer = (StatusCode, HeaderMap, Bytes);

/// `{serviceUrl}` without its trailing slash.
fn base(service_url: &str) -> &str {
    service_url.trim().trim_end_matches('/')
}

impl Api {
    async fn read<S>(
        during: &str,
        sent: Result<awc::ClientResponse<S>, awc::error::SendRequestError>,
    ) -> Result<Answer, ConnectionError>
    where
        S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    {
        let mut resp = sent.map_err(|e| ConnectionError::network(during.to_owned(), e))?;
        let body = resp
            .body()
            .limit(MAX_BODY)
            .await
            .map_err(|e| ConnectionError::network(during.to_owned(), e))?;
        Ok((resp.status(), resp.headers().clone(), body))
    }

    fn path_of(url: &str) -> String {
        url::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_else(|_| "?".into())
    }

    /// A new app token. The endpoint refusing the app's credentials stops the connection.
    pub async fn fetch_token(&self) -> Result<AppToken, ConnectionError> {
        let e = &self.endpoints;
        let path = Self::path_of(&e.token_url);
        let during = format!("POST {path}");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", e.app_id.as_str()),
            ("client_secret", e.app_password.expose_secret()),
            ("scope", SCOPE),
        ];
        let sent = self.client.post(&e.token_url).send_form(&form).await;
        let (status, _, body) = Self::read(&during, sent).await?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if matches!(status.as_u16(), 400 | 401) {
            // The Microsoft identity platform's error answer: `error`, `error_description`.
            let code = v["error"].as_str().unwrap_or("refused");
            let description = first_line(v["error_description"].as_str().unwrap_or_default());
            return Err(ConnectionError::Unauthorized(format!(
                "the token endpoint refused app_id/app_password for tenant_id ({code}: {description})"
            )));
        }
        if !status.is_success() {
            return Err(ConnectionError::Http {
                request: during,
                status: status.as_u16(),
                code: v["error"].as_str().map(str::to_owned),
                message: v["error_description"].as_str().map(first_line),
            });
        }
        let token = v["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ConnectionError::Protocol(format!("{during}: no access_token")))?;
        // `expires_in` is seconds, a number (v2) or a string (v1).
        let lifetime = v["expires_in"]
            .as_u64()
            .or_else(|| v["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3599);
        Ok(AppToken::new(token, Duration::from_secs(lifetime)))
    }

    async fn get_bytes(&self, url: &str) -> Result<Bytes, ConnectionError> {
        let during = format!("GET {}", Self::path_of(url));
        let sent = self.client.get(url).send().await;
        let (status, _, body) = Self::read(&during, sent).await?;
        if !status.is_success() {
            return Err(ConnectionError::Http {
                request: during,
                status: status.as_u16(),
                code: None,
                message: None,
            });
        }
        Ok(body)
    }

    /// The Bot Connector's signing keys: the OpenID metadata, then its `jwks_uri`.
    pub async fn fetch_keys(&self) -> Result<KeySet, ConnectionError> {
        let meta = self.get_bytes(&self.endpoints.metadata_url).await?;
        let meta = OpenIdMetadata::parse(&meta).map_err(ConnectionError::Protocol)?;
        let keys = self.get_bytes(&meta.jwks_uri).await?;
        KeySet::from_jwks(&keys).map_err(ConnectionError::Protocol)
    }

    /// One call to the Bot Connector with the app token; a 401 fetches a new token and
    /// tries once more.
    pub async fn connector(
        &self,
        tokens: &Tokens,
        method: Method,
        url: &str,
        body: &Value,
    ) -> Result<Answer, ConnectionError> {
        let during = format!("{} {}", method.name(), Self::path_of(url));
        let send = |token: Rc<str>| {
            let req = match method {
                Method::Post => self.client.post(url),
                Method::Put => self.client.put(url),
            };
            let during = during.clone();
            async move { Self::read(&during, req.bearer_auth(&*token).send_json(body).await).await }
        };
        let token = tokens.get(self).await?;
        let answer = send(token.clone()).await?;
        if answer.0 != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        tracing::debug!(request = %during, "the Bot Connector refused the app token; fetching a new one");
        let token = tokens.renew(self, &token).await?;
        send(token).await
    }
}

/// One Bot Connector call a queued item makes, its destination resolved.
#[derive(Debug, Clone)]
pub enum Call {
    /// Send to a conversation, or reply in a reply chain (`reply_to`).
    Post {
        service_url: String,
        conversation: String,
        reply_to: Option<String>,
        activity: Value,
    },
    /// Replace an activity the bot sent.
    Update {
        service_url: String,
        conversation: String,
        activity_id: String,
        activity: Value,
    },
    /// Open the one-to-one chat with a person, then send in it.
    Direct {
        service_url: String,
        bot_id: String,
        member: String,
        tenant_id: String,
        activity: Value,
    },
}

/// What carrying out a [`Call`] came to.
#[derive(Debug)]
pub struct Done {
    /// What the queue does next.
    pub outcome: Outcome,
    /// The one-to-one conversation opened on the way.
    pub opened: Option<String>,
    /// The id of the activity a post created: the ResourceResponse `{"id"}` that Send to
    /// Conversation and Reply to Activity answer with (API reference, above).
    pub activity_id: Option<String>,
}

impl Done {
    fn of(outcome: Outcome) -> Self {
        Self {
            outcome,
            opened: None,
            activity_id: None,
        }
    }
}

/// The `id` of a ResourceResponse.
fn resource_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Carries out `call`.
pub async fn send(api: Api, tokens: Rc<Tokens>, call: Call) -> Done {
    // A failed call is tried again; one refused for good (the app's credentials) stops the
    // connection, which the queue does for a fatal error.
    let outcome = |request: &str, answer: Result<Answer, ConnectionError>| match answer {
        Err(e) => Done::of(Outcome::Retry(e)),
        Ok((status, headers, body)) => match classify(request, status, &headers, &body) {
            Some(failed) => Done::of(failed),
            None => Done {
                outcome: Outcome::Sent { pause: None },
                opened: None,
                activity_id: resource_id(&body),
            },
        },
    };
    match call {
        Call::Post {
            service_url,
            conversation,
            reply_to,
            activity,
        } => {
            let mut path = format!("/v3/conversations/{}/activities", segment(&conversation));
            if let Some(id) = reply_to.filter(|r| !r.is_empty()) {
                path.push('/');
                path.push_str(&segment(&id));
            }
            let url = format!("{}{path}", base(&service_url));
            let answer = api.connector(&tokens, Method::Post, &url, &activity).await;
            outcome(&format!("POST {path}"), answer)
        }
        Call::Update {
            service_url,
            conversation,
            activity_id,
            activity,
        } => {
            let path = format!(
                "/v3/conversations/{}/activities/{}",
                segment(&conversation),
                segment(&activity_id)
            );
            let url = format!("{}{path}", base(&service_url));
            let answer = api.connector(&tokens, Method::Put, &url, &activity).await;
            outcome(&format!("PUT {path}"), answer)
        }
        Call::Direct {
            service_url,
            bot_id,
            member,
            tenant_id,
            activity,
        } => {
            let path = "/v3/conversations";
            let body = json!({
                "bot": {"id": bot_id},
                "members": [{"id": member}],
                "isGroup": false,
                "tenantId": tenant_id,
                "channelData": {"tenant": {"id": tenant_id}},
            });
            let url = format!("{}{path}", base(&service_url));
            let answer = api.connector(&tokens, Method::Post, &url, &body).await;
            let conversation = match answer {
                Ok((status, headers, bytes)) => {
                    if let Some(o) = classify("POST /v3/conversations", status, &headers, &bytes) {
                        return Done::of(o);
                    }
                    match resource_id(&bytes) {
                        Some(id) => id,
                        None => {
                            return Done::of(Outcome::Rejected(ConnectionError::Protocol(
                                "POST /v3/conversations returned no conversation id".into(),
                            )))
                        }
                    }
                }
                Err(e) => return outcome(path, Err(e)),
            };
            let post = Call::Post {
                service_url,
                conversation: conversation.clone(),
                reply_to: None,
                activity,
            };
            let done = Box::pin(send(api, tokens, post)).await;
            Done {
                opened: Some(conversation),
                ..done
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_rate_limit_page_asks() {
        let h = HeaderMap::new();
        let mut limited = HeaderMap::new();
        limited.insert(
            awc::http::header::RETRY_AFTER,
            awc::http::header::HeaderValue::from_static("3"),
        );
        let ok = |s: u16| StatusCode::from_u16(s).unwrap();
        assert_eq!(classify("POST /x", ok(201), &h, b"{}"), None);
        assert_eq!(
            classify("POST /x", ok(429), &limited, b""),
            Some(Outcome::RateLimited(Duration::from_secs(3)))
        );
        assert_eq!(
            classify("POST /x", ok(429), &h, b""),
            Some(Outcome::RateLimited(Duration::from_secs(1)))
        );
        for retried in [412, 500, 502, 503, 504] {
            assert!(
                matches!(classify("POST /x", ok(retried), &h, b""), Some(Outcome::Retry(e)) if !e.is_fatal()),
                "{retried}"
            );
        }
        assert!(matches!(
            classify("POST /x", ok(401), &h, b""),
            Some(Outcome::Retry(e)) if e.is_fatal()
        ));
        let body =
            br#"{"error": {"code": "ConversationNotFound", "message": "Conversation not found."}}"#;
        let Some(Outcome::Rejected(e)) =
            classify("POST /v3/conversations/x/activities", ok(404), &h, body)
        else {
            panic!("404 is refused for good")
        };
        assert_eq!(
            e.to_string(),
            "POST /v3/conversations/x/activities: HTTP 404 ConversationNotFound Conversation not found."
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after(Some("2"), now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(Some("0.5"), now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:10 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(retry_after(Some("-1"), now), None);
        assert_eq!(retry_after(Some("soon"), now), None);
        assert_eq!(retry_after(None, now), None);
    }

    #[test]
    fn ids_in_paths_are_encoded_like_the_sdks_do() {
        assert_eq!(
            segment("19:ops@thread.tacv2;messageid=17"),
            "19%3Aops%40thread.tacv2%3Bmessageid%3D17"
        );
        assert_eq!(segment("a:1x-y_z"), "a%3A1x-y_z");
        assert_eq!(
            base("https://smba.trafficmanager.net/emea/"),
            "https://smba.trafficmanager.net/emea"
        );
    }

    #[test]
    fn tokens_are_fresh_until_five_minutes_before_they_expire() {
        let t = AppToken::new("secret-token", Duration::from_secs(3600));
        let now = Instant::now();
        assert!(t.fresh_at(now));
        assert!(!t.fresh_at(now + Duration::from_secs(3600) - RENEW_BEFORE));
        assert!(!format!("{t:?}").contains("secret-token"));
    }
}
