//! The Discord REST API v10 calls the bridge makes, and how their answers are classified.

use std::{rc::Rc, time::Duration};

use awc::http::{header::HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::wire;
use crate::backends::{
    connection::{
        outbox::{Dest, Outcome},
        ConnectionError,
    },
    rest::{http_error, post_json, post_outcome},
};

/// The User-Agent Discord asks bots for.
pub const USER_AGENT: &str = concat!(
    "DiscordBot (https://github.com/stormbridge, ",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// One message waiting to be sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The channel, or the user whose DM channel it goes to.
    pub dest: Dest,
    /// The message it replies to.
    pub reply_to: Option<String>,
    /// The text.
    pub content: String,
    /// Message components (answer buttons), when the message has any.
    pub components: Option<Value>,
    /// Sent with `enforce_nonce`, so a send that is tried again after its answer was lost
    /// (a timeout, a dropped connection mid-request) returns the message Discord already
    /// made instead of posting it twice (Create Message, `nonce` and `enforce_nonce`:
    /// https://discord.com/developers/docs/resources/message#create-message).
    pub nonce: String,
    /// For an offer of buttons: whom to tell the new message's id.
    pub posted: Option<crate::backends::buttons::OfferReceipt>,
}

impl Outgoing {
    /// A message for `dest`, with a fresh nonce: Discord takes up to 25 characters; 20
    /// random alphanumerics never repeat in the few minutes Discord remembers them.
    pub fn new(
        dest: Dest,
        reply_to: Option<String>,
        content: String,
        components: Option<Value>,
    ) -> Self {
        Outgoing {
            dest,
            reply_to,
            content,
            components,
            nonce: (0..20).map(|_| fastrand::alphanumeric()).collect(),
            posted: None,
        }
    }
}

impl Outgoing {
    /// Gives this item the nonce `key` ([`Receipt::part_key`]), with `enforce_nonce`: Discord
    /// answers a repeated nonce with the message it made the first time ("the past few
    /// minutes"; a takeover takes seconds).
    ///
    /// [`Receipt::part_key`]: crate::actors::messages::Receipt::part_key
    pub fn with_stable_nonce(mut self, key: String) -> Self {
        // 24 hex characters: within Discord's 25.
        self.nonce = key;
        self
    }
}

/// An authenticated API client.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub client: awc::Client,
    /// `https://discord.com/api/v10` (or the configured `api_url`).
    pub base: Rc<str>,
    /// `Bot <token>`.
    pub auth: Rc<str>,
}

/// A 401: Discord wants no more requests with a refused token.
fn refused(method: &'static str, path: &str, status: StatusCode, body: &[u8]) -> ConnectionError {
    ConnectionError::Unauthorized(format!(
        "the API refused the bot token ({})",
        http_error(method, path, status, body)
    ))
}

impl Api {
    /// `GET /gateway/bot`: the URL new sessions connect to. A 401 is
    /// [`ConnectionError::Unauthorized`]: the connection stops.
    pub async fn gateway_url(&self) -> Result<String, ConnectionError> {
        let path = "/gateway/bot";
        let mut resp = self
            .client
            .get(format!("{}{path}", self.base))
            .insert_header(("Authorization", &*self.auth))
            .send()
            .await
            .map_err(|e| ConnectionError::network(format!("GET {path}"), e))?;
        let body = resp
            .body()
            .limit(64 * 1024)
            .await
            .map_err(|e| ConnectionError::network(format!("GET {path}"), e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(refused("GET", path, status, &body));
        }
        if !status.is_success() {
            return Err(http_error("GET", path, status, &body));
        }
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("url").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| ConnectionError::Protocol("GET /gateway/bot returned no url".into()))
    }

    /// Sends one message (opening the DM channel first if needed): the DM channel it used,
    /// and how it went. A 401 is a retry with [`ConnectionError::Unauthorized`]: the
    /// message stays first in the queue and the connection stops.
    pub async fn send(
        &self,
        item: &Outgoing,
        cached_dm: Option<String>,
    ) -> (Option<String>, Outcome) {
        let mut dm_pause = None;
        let channel_id = match (&item.dest, cached_dm) {
            (Dest::Room(id), _) => id.clone(),
            (Dest::User(_), Some(channel)) => channel,
            (Dest::User(user), None) => {
                let path = "/users/@me/channels";
                match post_json(
                    self.client
                        .post(format!("{}{path}", self.base))
                        .insert_header(("Authorization", &*self.auth)),
                    &json!({"recipient_id": user}),
                )
                .await
                {
                    Err(e) => return (None, Outcome::Retry(e)),
                    Ok((status, headers, body)) => {
                        if let Some(outcome) = classify(path, status, &headers, &body) {
                            return (None, outcome);
                        }
                        dm_pause = rate_pause(&headers);
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        match v.get("id").and_then(Value::as_str) {
                            Some(id) => id.to_owned(),
                            None => {
                                return (
                                    None,
                                    Outcome::Rejected(ConnectionError::Protocol(
                                        "POST /users/@me/channels returned no id".into(),
                                    )),
                                )
                            }
                        }
                    }
                }
            }
        };
        let mut body = json!({"content": item.content, "allowed_mentions": {"parse": []},
                              "nonce": item.nonce, "enforce_nonce": true});
        if let Some(components) = &item.components {
            body["components"] = components.clone();
        }
        if let Some(reply) = item.reply_to.as_ref().filter(|r| !r.is_empty()) {
            body["message_reference"] =
                json!({"message_id": reply, "channel_id": channel_id, "fail_if_not_exists": false});
        }
        let path = format!("/channels/{channel_id}/messages");
        let outcome = match post_json(
            self.client
                .post(format!("{}{path}", self.base))
                .insert_header(("Authorization", &*self.auth)),
            &body,
        )
        .await
        {
            Err(e) => Outcome::Retry(e),
            Ok((status, headers, bytes)) => match classify(&path, status, &headers, &bytes) {
                Some(failed) => failed,
                None => {
                    // The created message, with its `id` (Create Message, above).
                    if let Some(receipt) = &item.posted {
                        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        if let Some(id) = v.get("id").and_then(Value::as_str) {
                            receipt.posted(id.to_owned());
                        }
                    }
                    Outcome::Sent {
                        pause: rate_pause(&headers).max(dm_pause),
                    }
                }
            },
        };
        let dm = matches!(item.dest, Dest::User(_)).then_some(channel_id);
        (dm, outcome)
    }

    /// Replaces the bot's own message's `content` and `components`
    /// (`PATCH /channels/{channel_id}/messages/{message_id}`, Edit Message:
    /// https://discord.com/developers/docs/resources/message#edit-message).
    pub async fn edit_message(
        &self,
        channel_id: &str,
        message_id: &str,
        body: &Value,
    ) -> Result<(), ConnectionError> {
        let path = format!("/channels/{channel_id}/messages/{message_id}");
        let (status, _, bytes) = post_json(
            self.client
                .patch(format!("{}{path}", self.base))
                .insert_header(("Authorization", &*self.auth)),
            body,
        )
        .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(http_error("PATCH", &path, status, &bytes))
        }
    }
}

/// The outcome of an error answer; `None` for a success.
fn classify(path: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Outcome> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let header = headers.get("retry-after").and_then(|v| v.to_str().ok());
        let delay = wire::retry_after(body, header).unwrap_or(Duration::from_secs(1));
        return Some(Outcome::RateLimited(delay));
    }
    if status == StatusCode::UNAUTHORIZED {
        return Some(Outcome::Retry(refused("POST", path, status, body)));
    }
    post_outcome(path, status, body)
}

/// A response's "rate-limit window used up" pause (`X-RateLimit-Remaining: 0`).
fn rate_pause(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    wire::window_pause(
        header("x-ratelimit-remaining"),
        header("x-ratelimit-reset-after"),
    )
}
