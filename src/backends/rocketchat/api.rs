//! The Rocket.Chat REST API calls the bridge makes, and how their answers are classified.
//!
//! Every call carries `X-User-Id` and `X-Auth-Token` (the bot's user id and personal access
//! token: https://developer.rocket.chat/apidocs/authenticate-a-rest-client). Errors come as
//! `{"success": false, "error": "…", "errorType": "…"}` with a 4xx status; a refused token
//! is a 401; the rate limiter answers 429 with `X-RateLimit-Limit`, `-Remaining` and
//! `-Reset` (milliseconds since the epoch) and says in `error` how many seconds to wait
//! (https://developer.rocket.chat/apidocs, "Rate limiting").

use crate::backends::connection::position::now_ms;
use std::{rc::Rc, time::Duration};

use awc::{
    http::{header::HeaderMap, StatusCode},
    ClientRequest,
};
use bytes::Bytes;
use serde_json::{json, Value};

use super::wire;
use crate::backends::{
    connection::{outbox::Dest, outbox::Outcome, ConnectionError},
    rest::post_outcome,
};

/// Largest API answer read.
const MAX_BODY: usize = 1 << 20;

/// Largest answer of a catch-up call: `chat.syncMessages` with `lastUpdate` answers every
/// message of the room since then at once (it has no page size), so several minutes of a
/// busy room must fit.
const MAX_CATCH_UP_BODY: usize = 16 << 20;

/// Sends a message: https://developer.rocket.chat/apidocs/post-message (`roomId`, `text`,
/// `attachments`, and `tmid` for a reply in a thread).
pub const POST_MESSAGE: &str = "/chat.postMessage";
/// Sends a message with an `_id` of the sender's choosing (a result's part):
/// https://developer.rocket.chat/apidocs/send-message (`{"message": {"_id", "rid", "msg",
/// "tmid", "attachments"}}`). The server posts nothing for an `_id` it already has: its
/// `sendMessage` returns early when the id exists, and the endpoint then fails (400) reading
/// the message it did not make (`apps/meteor/app/lib/server/functions/sendMessage.ts`,
/// `chat.sendMessage` in `apps/meteor/app/api/server/v1/chat.ts`,
/// https://github.com/RocketChat/Rocket.Chat).
pub const SEND_MESSAGE: &str = "/chat.sendMessage";
/// One message by id: https://developer.rocket.chat/apidocs/get-message (`{"message"}`, 400
/// when there is none).
pub const GET_MESSAGE: &str = "/chat.getMessage";
/// Opens (or finds) the direct room with a user: https://developer.rocket.chat/apidocs/create-dm.
pub const CREATE_DM: &str = "/im.create";
/// The account the credentials belong to:
/// https://developer.rocket.chat/apidocs/get-profile-information.
pub const ME: &str = "/me";
/// A user's profile by id: https://developer.rocket.chat/apidocs/get-users-info.
pub const USERS_INFO: &str = "/users.info";
/// The rooms the account is in, those changed since `updatedSince` (an ISO date):
/// https://developer.rocket.chat/apidocs/get-rooms (`{"update": [room], "remove": [id]}`).
pub const ROOMS_GET: &str = "/rooms.get";
/// A room's messages updated since `lastUpdate` (an ISO date):
/// https://developer.rocket.chat/apidocs/sync-messages (`{"result": {"updated": [message],
/// "deleted": [..]}}`).
pub const SYNC_MESSAGES: &str = "/chat.syncMessages";

/// One message waiting to be sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The room, or the user whose direct room it goes to.
    pub dest: Dest,
    /// The thread's first message.
    pub tmid: Option<String>,
    /// The text.
    pub text: String,
    /// `attachments`.
    pub attachments: Option<Value>,
    /// For a part of a result: the message's `_id`, the same in every bridge process
    /// ([`Receipt::part_key`]), so that a holder that takes the connection over and posts a
    /// part its predecessor posted but had not recorded as posted makes no second message.
    ///
    /// [`Receipt::part_key`]: crate::actors::messages::Receipt::part_key
    pub key: Option<String>,
}

/// The bot account, from `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// The account's user id.
    pub id: String,
    /// Its username (a leading `@username` is a mention).
    pub username: String,
}

/// An authenticated API client: `https://host/api/v1`, the user id and the token.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub client: awc::Client,
    /// `…/api/v1`.
    pub base: Rc<str>,
    /// `X-User-Id`.
    pub user_id: Rc<str>,
    /// `X-Auth-Token`.
    pub token: Rc<str>,
}

/// The typed error of an error answer: Rocket.Chat's `errorType` as the code, its `error`
/// (or `message`) as the message.
pub fn api_error(method: &str, path: &str, status: StatusCode, body: &[u8]) -> ConnectionError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    };
    ConnectionError::Http {
        request: format!("{method} /api/v1{path}"),
        status: status.as_u16(),
        code: text("errorType"),
        message: text("error").or_else(|| text("message")),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The outcome of an answer to `method path`; `None` for a success the caller reads.
pub fn classify(
    method: &str,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Outcome> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let delay = wire::retry_delay(
            header(headers, "retry-after"),
            v.get("error").and_then(Value::as_str),
            header(headers, "x-ratelimit-reset"),
            now_ms(),
        )
        .unwrap_or(Duration::from_secs(1));
        return Some(Outcome::RateLimited(delay));
    }
    if status == StatusCode::UNAUTHORIZED {
        // The token was revoked since the connection logged in: the message stays first in
        // the queue and the connection stops.
        return Some(Outcome::Retry(ConnectionError::Unauthorized(
            api_error(method, path, status, body).to_string(),
        )));
    }
    if !status.is_success() {
        // Server errors and timeouts are tried again, anything else is refused for good
        // (the shared rule), with Rocket.Chat's own error words.
        return post_outcome(path, status, body).map(|outcome| match outcome {
            Outcome::Retry(_) => Outcome::Retry(api_error(method, path, status, body)),
            Outcome::Rejected(_) => Outcome::Rejected(api_error(method, path, status, body)),
            other => other,
        });
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if v.get("success") == Some(&Value::Bool(false)) {
        return Some(Outcome::Rejected(api_error(method, path, status, body)));
    }
    None
}

/// Whether a catch-up that failed with `error` is worth another try on the next link (the
/// network, a server error, the rate limiter), rather than given up (an endpoint the server
/// does not have, a refusal).
pub fn catch_up_retryable(error: &ConnectionError) -> bool {
    match error {
        ConnectionError::Http { status, .. } => matches!(*status, 408 | 429) || *status >= 500,
        ConnectionError::Protocol(_) => false,
        other => !other.is_fatal(),
    }
}

impl Api {
    fn authorized(&self, req: ClientRequest) -> ClientRequest {
        req.insert_header(("X-User-Id", &*self.user_id))
            .insert_header(("X-Auth-Token", &*self.token))
    }

    async fn get_raw(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<(StatusCode, HeaderMap, Bytes), ConnectionError> {
        self.get_limited(path, query, MAX_BODY).await
    }

    /// [`Api::get_raw`] reading at most `limit` bytes of the answer.
    async fn get_limited(
        &self,
        path: &str,
        query: &[(&str, &str)],
        limit: usize,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ConnectionError> {
        let during = || format!("GET /api/v1{path}");
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&serde_urlencoded::to_string(query).unwrap_or_default());
        }
        let mut resp = self
            .authorized(self.client.get(url))
            .send()
            .await
            .map_err(|e| ConnectionError::network(during(), e))?;
        let body = resp.body().limit(limit).await.map_err(|e| match e {
            // Asking again would get as much again.
            awc::error::PayloadError::Overflow => ConnectionError::Protocol(format!(
                "{}: an answer larger than {limit} bytes",
                during()
            )),
            e => ConnectionError::network(during(), e),
        })?;
        Ok((resp.status(), resp.headers().clone(), body))
    }

    async fn get(&self, path: &str) -> Result<Value, ConnectionError> {
        let (status, _, body) = self.get_raw(path, &[]).await?;
        if !status.is_success() {
            return Err(api_error("GET", path, status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ConnectionError::Protocol(format!("GET /api/v1{path}: bad JSON: {e}")))
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ConnectionError> {
        crate::backends::rest::post_json(
            self.authorized(self.client.post(format!("{}{path}", self.base))),
            body,
        )
        .await
    }

    /// The bot account. A refused token stops the connection.
    pub async fn me(&self) -> Result<Me, ConnectionError> {
        let me = self.get(ME).await.map_err(|e| match e {
            ConnectionError::Http { status: 401, .. } => {
                ConnectionError::Unauthorized(e.to_string())
            }
            other => other,
        })?;
        let text = |k: &str| {
            me.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        Ok(Me {
            id: text("_id").ok_or_else(|| {
                ConnectionError::Protocol("GET /api/v1/me returned no _id".into())
            })?,
            username: text("username").unwrap_or_default(),
        })
    }

    /// A catch-up's GET with `query` whose JSON answer is read; an error status is a typed
    /// error.
    async fn get_query(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, ConnectionError> {
        let (status, _, body) = self.get_limited(path, query, MAX_CATCH_UP_BODY).await?;
        if !status.is_success() {
            return Err(api_error("GET", path, status, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ConnectionError::Protocol(format!("GET /api/v1{path}: bad JSON: {e}")))
    }

    /// The rooms the account is in that changed since `since` (an ISO date).
    pub async fn rooms_changed_since(&self, since: &str) -> Result<Vec<Value>, ConnectionError> {
        let v = self
            .get_query(ROOMS_GET, &[("updatedSince", since)])
            .await?;
        Ok(v.get("update")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// The messages of room `rid` updated since `since` (an ISO date).
    pub async fn messages_since(
        &self,
        rid: &str,
        since: &str,
    ) -> Result<Vec<Value>, ConnectionError> {
        let v = self
            .get_query(SYNC_MESSAGES, &[("roomId", rid), ("lastUpdate", since)])
            .await?;
        Ok(v.pointer("/result/updated")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// The username of the user with id `user_id`, `None` when there is no such user.
    async fn username_of(&self, user_id: &str) -> Result<Option<String>, Outcome> {
        let (status, headers, body) = self
            .get_raw(USERS_INFO, &[("userId", user_id)])
            .await
            .map_err(Outcome::Retry)?;
        if status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if let Some(outcome) = classify("GET", USERS_INFO, status, &headers, &body) {
            return Err(outcome);
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(v.pointer("/user/username")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned))
    }

    /// The direct room with `user` (an id; a name that is no user's id is taken for a
    /// username), opened if need be.
    pub async fn direct_room(&self, user: &str) -> Result<String, Outcome> {
        let username = self
            .username_of(user)
            .await?
            .unwrap_or_else(|| user.to_owned());
        let (status, headers, body) = self
            .post(CREATE_DM, &json!({"username": username}))
            .await
            .map_err(Outcome::Retry)?;
        if let Some(outcome) = classify("POST", CREATE_DM, status, &headers, &body) {
            return Err(outcome);
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        ["/room/rid", "/room/_id"]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str))
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                Outcome::Rejected(ConnectionError::Protocol(
                    "POST /api/v1/im.create returned no room id".into(),
                ))
            })
    }

    /// Sends one message; returns the direct room used on the way, if one was opened.
    pub async fn send(
        &self,
        item: &Outgoing,
        cached_dm: Option<String>,
    ) -> (Option<String>, Outcome) {
        let (rid, opened) = match (&item.dest, cached_dm) {
            (Dest::Room(id), _) => (id.clone(), None),
            (Dest::User(_), Some(rid)) => (rid, None),
            (Dest::User(user), None) => match self.direct_room(user).await {
                Ok(rid) => (rid.clone(), Some(rid)),
                Err(outcome) => return (None, outcome),
            },
        };
        let (path, body) = message_body(item, &rid);
        let outcome = match self.post(path, &body).await {
            Err(e) => Outcome::Retry(e),
            Ok((status, headers, bytes)) => {
                let sent = || Outcome::Sent {
                    pause: wire::window_pause(
                        header(&headers, "x-ratelimit-remaining"),
                        header(&headers, "x-ratelimit-reset"),
                        now_ms(),
                    ),
                };
                match classify("POST", path, status, &headers, &bytes) {
                    None => sent(),
                    // Refused: maybe because the message is there already.
                    Some(Outcome::Rejected(e)) => match &item.key {
                        Some(key) if self.has_message(key, &rid).await => {
                            tracing::info!(message = %key, "a result part was posted already (by this connection's last holder); not posted again");
                            sent()
                        }
                        _ => Outcome::Rejected(e),
                    },
                    Some(other) => other,
                }
            }
        };
        (opened, outcome)
    }

    /// Whether the server has a message with id `id` in room `rid` (`chat.getMessage`).
    async fn has_message(&self, id: &str, rid: &str) -> bool {
        let Ok((status, _, body)) = self.get_raw(GET_MESSAGE, &[("msgId", id)]).await else {
            return false;
        };
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").cloned())
            .unwrap_or(Value::Null);
        status.is_success() && message["_id"] == id && message["rid"] == rid
    }
}

/// The endpoint and body that send `item` to room `rid`: `chat.sendMessage` with the item's
/// `_id` when it has one, else `chat.postMessage` (whose fields name the room and the text
/// differently).
fn message_body(item: &Outgoing, rid: &str) -> (&'static str, Value) {
    let (room, text) = match item.key {
        Some(_) => ("rid", "msg"),
        None => ("roomId", "text"),
    };
    let mut fields = serde_json::Map::new();
    fields.insert(room.into(), json!(rid));
    fields.insert(text.into(), json!(item.text));
    if let Some(tmid) = item.tmid.as_ref().filter(|t| !t.trim().is_empty()) {
        fields.insert("tmid".into(), json!(tmid));
    }
    if let Some(attachments) = &item.attachments {
        fields.insert("attachments".into(), attachments.clone());
    }
    match &item.key {
        Some(key) => {
            fields.insert("_id".into(), json!(key));
            (SEND_MESSAGE, json!({ "message": fields }))
        }
        None => (POST_MESSAGE, Value::Object(fields)),
    }
}

#[cfg(test)]
mod tests {
    use awc::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
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
    fn answers_are_classified() {
        let none = HeaderMap::new();
        assert_eq!(
            classify(
                "POST",
                POST_MESSAGE,
                StatusCode::OK,
                &none,
                br#"{"success":true,"message":{}}"#
            ),
            None
        );
        // The rate limiter's answer: the seconds it names.
        let reset = (now_ms() + 30_000).to_string();
        let limited = classify(
            "POST",
            POST_MESSAGE,
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[
                ("x-ratelimit-limit", "10".into()),
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset),
            ]),
            br#"{"success":false,"error":"Error, too many requests. Please slow down. You must wait 2 seconds before trying this endpoint again. [error-too-many-requests]"}"#,
        );
        assert_eq!(limited, Some(Outcome::RateLimited(Duration::from_secs(2))));
        match classify(
            "POST",
            POST_MESSAGE,
            StatusCode::UNAUTHORIZED,
            &none,
            br#"{"status":"error","message":"You must be logged in to do this."}"#,
        ) {
            Some(Outcome::Retry(e)) => {
                assert!(e.is_fatal(), "{e}");
                assert!(e.to_string().contains("You must be logged in"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        match classify(
            "POST",
            POST_MESSAGE,
            StatusCode::BAD_REQUEST,
            &none,
            br#"{"success":false,"error":"Message size exceeds Message_MaxAllowedSize [error-message-size-exceeded]","errorType":"error-message-size-exceeded"}"#,
        ) {
            Some(Outcome::Rejected(e)) => assert_eq!(
                e.to_string(),
                "POST /api/v1/chat.postMessage: HTTP 400 error-message-size-exceeded Message size exceeds Message_MaxAllowedSize [error-message-size-exceeded]"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(
                "POST",
                POST_MESSAGE,
                StatusCode::BAD_GATEWAY,
                &none,
                b"<html>"
            ),
            Some(Outcome::Retry(_))
        ));
        assert!(matches!(
            classify(
                "POST",
                POST_MESSAGE,
                StatusCode::OK,
                &none,
                br#"{"success":false,"error":"x"}"#
            ),
            Some(Outcome::Rejected(_))
        ));
    }
}
