//! The Mattermost REST API v4 calls the bridge makes, and how their answers are classified.
//!
//! A part of a command's result is posted with its key in `props` ([`PART_PROP`]):
//! Mattermost de-duplicates a repeated `pending_post_id` for 30 seconds only
//! (`pendingPostIDsCacheTTL` in `server/channels/app/post.go`), shorter than a takeover can
//! take, so before posting a part that may be in the channel already (owed again after
//! another process, or sent before without an answer) the bridge reads the channel's posts
//! since then and posts only if the bot's post with that key is not among them.

use std::{rc::Rc, time::Duration};

use awc::http::{header::HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::wire;
use crate::backends::{
    connection::{outbox::Dest, outbox::Outcome, owed::OwedPart, ConnectionError},
    rest::{get_json, http_error, post_json, post_outcome},
};

/// One post waiting to be sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The channel, or the user whose direct channel it goes to.
    pub dest: Dest,
    /// The thread's root post.
    pub root_id: Option<String>,
    /// The text.
    pub message: String,
    /// `props` (attachments, buttons).
    pub props: Option<Value>,
    /// For an offer of buttons: whom to tell the new post's id.
    pub posted: Option<crate::backends::buttons::OfferReceipt>,
    /// For a part of a command's result: its key (in `props` too).
    pub part: Option<OwedPart>,
}

/// The `props` key holding a result part's key.
pub const PART_PROP: &str = "stormbridge_part";

impl Outgoing {
    /// Makes this post part `part` of an owed result (`None`: nobody owes it): its key goes
    /// into `props`.
    pub fn owed(mut self, part: Option<OwedPart>) -> Self {
        if let Some(p) = &part {
            let mut props = match self.props.take() {
                Some(Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            props.insert(PART_PROP.into(), Value::String(p.key.clone()));
            self.props = Some(Value::Object(props));
        }
        self.part = part;
        self
    }
}

/// The bot account, from `GET /users/me`.
#[derive(Debug, Clone)]
pub struct BotIdentity {
    /// The bot's user id.
    pub id: String,
    /// The bot's username (a leading `@username` is a mention).
    pub username: String,
}

/// An authenticated API client: `https://host/api/v4` and the bot token.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub client: awc::Client,
    /// `…/api/v4`.
    pub base: Rc<str>,
    /// The bot's access token.
    pub token: Rc<str>,
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

impl Api {
    async fn get(&self, path: &str) -> Result<Value, ConnectionError> {
        get_json(
            self.client
                .get(format!("{}{path}", self.base))
                .bearer_auth(&*self.token),
        )
        .await
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), ConnectionError> {
        post_json(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(&*self.token),
            body,
        )
        .await
    }

    /// The bot account. A refused token stops the connection.
    pub async fn me(&self) -> Result<BotIdentity, ConnectionError> {
        let me = self.get("/users/me").await.map_err(|e| match e {
            ConnectionError::Http { status: 401, .. } => {
                ConnectionError::Unauthorized(e.to_string())
            }
            other => other,
        })?;
        Ok(BotIdentity {
            id: str_of(&me, "id")
                .ok_or_else(|| ConnectionError::Protocol("GET /users/me returned no id".into()))?,
            username: str_of(&me, "username").unwrap_or_default(),
        })
    }

    /// A team's id from its name (or its id).
    pub async fn team_id(&self, team: &str) -> Result<String, ConnectionError> {
        let team_json = match self.get(&format!("/teams/name/{}", encode(team))).await {
            Ok(v) => v,
            Err(by_name) => self
                .get(&format!("/teams/{}", encode(team)))
                .await
                .map_err(|_| {
                    ConnectionError::Protocol(format!("team `{team}` not found: {by_name}"))
                })?,
        };
        str_of(&team_json, "id")
            .ok_or_else(|| ConnectionError::Protocol(format!("team `{team}` has no id")))
    }

    /// Resolves a configured channel (an id, or a name in `team_id`) and adds the bot to it.
    pub async fn join(
        &self,
        bot_id: &str,
        team_id: Option<&str>,
        entry: &str,
    ) -> Result<String, ConnectionError> {
        let by_id = if wire::looks_like_id(entry) {
            self.get(&format!("/channels/{entry}")).await.ok()
        } else {
            None
        };
        let channel = match (by_id, team_id) {
            (Some(c), _) => c,
            (None, Some(team)) => {
                self.get(&format!("/teams/{team}/channels/name/{}", encode(entry)))
                    .await?
            }
            (None, None) => {
                return Err(ConnectionError::Protocol(
                    "not a channel id, and channel names need `team`".into(),
                ))
            }
        };
        let id = str_of(&channel, "id")
            .ok_or_else(|| ConnectionError::Protocol("channel without an id".into()))?;
        let path = format!("/channels/{id}/members");
        let (status, _headers, body) = self.post(&path, &json!({"user_id": bot_id})).await?;
        if status.is_success() {
            Ok(id)
        } else {
            Err(http_error("POST", &path, status, &body))
        }
    }

    /// Replaces a post's `message` and `props` (`PUT /posts/{post_id}/patch`,
    /// https://developers.mattermost.com/api-documentation/#/operations/PatchPost): the
    /// bot edits its own post.
    pub async fn patch_post(&self, post_id: &str, body: &Value) -> Result<(), ConnectionError> {
        let path = format!("/posts/{}/patch", encode(post_id));
        let (status, _, bytes) = post_json(
            self.client
                .put(format!("{}{path}", self.base))
                .bearer_auth(&*self.token),
            body,
        )
        .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(http_error("PUT", &path, status, &bytes))
        }
    }

    /// Whether the bot posted part `key` in `channel_id` from `from` on: the channel's posts
    /// changed since then (`GET /channels/{channel_id}/posts?since=`, milliseconds,
    /// https://developers.mattermost.com/api-documentation/#/operations/GetPostsForChannel;
    /// replies in threads are among them), a `PostList` of `order` and `posts`.
    async fn already_posted(
        &self,
        bot_id: &str,
        channel_id: &str,
        key: &str,
        from: DateTime<Utc>,
    ) -> Result<bool, ConnectionError> {
        let list = self
            .get(&format!(
                "/channels/{}/posts?since={}",
                encode(channel_id),
                from.timestamp_millis().max(1)
            ))
            .await?;
        let found = list["posts"].as_object().is_some_and(|posts| {
            posts.values().any(|p| {
                p["user_id"].as_str() == Some(bot_id)
                    && p["props"][PART_PROP].as_str() == Some(key)
                    && p["delete_at"].as_i64().unwrap_or(0) == 0
            })
        });
        Ok(found)
    }

    /// Posts one message; returns the direct channel used on the way, if any. `look_from`:
    /// the post is a result part that may be in the channel already since then; it is
    /// posted only if it is not.
    pub async fn send_post(
        &self,
        bot_id: &str,
        item: &Outgoing,
        cached_dm: Option<String>,
        look_from: Option<DateTime<Utc>>,
    ) -> (Option<String>, Outcome) {
        let channel_id = match (&item.dest, cached_dm) {
            (Dest::Room(id), _) => id.clone(),
            (Dest::User(_), Some(channel)) => channel,
            (Dest::User(user), None) => {
                match self.post("/channels/direct", &json!([bot_id, user])).await {
                    Err(e) => return (None, Outcome::Retry(e)),
                    Ok((status, headers, body)) => {
                        if let Some(outcome) = classify("/channels/direct", status, &headers, &body)
                        {
                            return (None, outcome);
                        }
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        match str_of(&v, "id") {
                            Some(id) => id,
                            None => {
                                return (
                                    None,
                                    Outcome::Rejected(ConnectionError::Protocol(
                                        "POST /channels/direct returned no id".into(),
                                    )),
                                )
                            }
                        }
                    }
                }
            }
        };
        let dm = matches!(item.dest, Dest::User(_)).then(|| channel_id.clone());
        if let (Some(from), Some(part)) = (look_from, &item.part) {
            match self
                .already_posted(bot_id, &channel_id, &part.key, from)
                .await
            {
                Ok(true) => {
                    tracing::info!(
                        part = %part.key,
                        "this result part is in the channel already; not posted again"
                    );
                    return (dm, Outcome::Sent { pause: None });
                }
                Ok(false) => {}
                // The bot may not read this channel: post; a result lost is worse than one
                // possibly shown twice.
                Err(ConnectionError::Http { status, .. })
                    if (400..500).contains(&status) && status != 429 =>
                {
                    tracing::warn!(
                        status,
                        "cannot read the channel back to see whether this result part is there already; posting it"
                    )
                }
                Err(e) => return (dm, Outcome::Retry(e)),
            }
        }
        let mut body = json!({"channel_id": channel_id, "message": item.message});
        if let Some(root) = item.root_id.as_ref().filter(|r| !r.is_empty()) {
            body["root_id"] = Value::String(root.clone());
        }
        if let Some(props) = &item.props {
            body["props"] = props.clone();
        }
        let outcome = match self.post("/posts", &body).await {
            Err(e) => Outcome::Retry(e),
            Ok((status, headers, bytes)) => match classify("/posts", status, &headers, &bytes) {
                Some(failed) => failed,
                None => {
                    // The created post, with its `id`
                    // (https://developers.mattermost.com/api-documentation/#/operations/CreatePost).
                    if let Some(receipt) = &item.posted {
                        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        if let Some(id) = str_of(&v, "id") {
                            receipt.posted(id);
                        }
                    }
                    Outcome::Sent {
                        pause: rate_pause(&headers),
                    }
                }
            },
        };
        (dm, outcome)
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The outcome of an error answer; `None` for a success.
fn classify(path: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Outcome> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if status == StatusCode::TOO_MANY_REQUESTS {
        let delay = wire::retry_delay(
            header("retry-after"),
            header("x-ratelimit-reset"),
            now_unix(),
        )
        .unwrap_or(Duration::from_secs(1));
        return Some(Outcome::RateLimited(delay));
    }
    if status == StatusCode::UNAUTHORIZED {
        // The token passed `GET /users/me` at log-in: try again (a 401 there stops).
        return Some(Outcome::Retry(http_error("POST", path, status, body)));
    }
    post_outcome(path, status, body)
}

/// The pause after a success that used up the rate-limit window (`X-Ratelimit-Remaining: 0`).
fn rate_pause(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-ratelimit-remaining")?.trim() != "0" {
        return None;
    }
    wire::retry_delay(None, header("x-ratelimit-reset"), now_unix())
}
