//! The Slack Web API calls the bridge makes (`auth.test`, `apps.connections.open`,
//! `conversations.*`, `chat.postMessage`, `chat.postEphemeral`, `chat.update`), and how
//! their answers are classified.
//!
//! A part of a command's result is posted with message metadata naming it
//! ([`RESULT_PART_EVENT`], its [`OwedPart`] key): Slack has no idempotency key for
//! `chat.postMessage`, so before posting a part that may be in the channel already (owed
//! again after another process, or sent before without an answer) the bridge reads the
//! channel (or the thread) back with `include_all_metadata` and posts only if the key is not
//! there.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::resume;
use super::wire::{ApiEnvelope, ConversationsOpen, HistoryPage, MessagePage};
use crate::backends::connection::{outbox::Outcome, owed::OwedPart, ConnectionError};

/// The `metadata.event_type` of a result part's post; `event_payload.part` is its key.
pub const RESULT_PART_EVENT: &str = "stormbridge_result_part";

/// Messages read per history page when looking for a part, and pages read at most: a part
/// posted further back than 2,000 messages is not looked for (the channel moved on; posting
/// it again is the lesser harm than never posting it).
const HISTORY_PAGE: u32 = 200;
const HISTORY_PAGES: usize = 10;

/// Where a queued post goes.
#[derive(Debug, Clone)]
pub enum Dest {
    /// A channel (or a DM channel) id.
    Channel(String),
    /// A user id; the direct-message channel is opened (once) with `conversations.open`.
    User(String),
    /// `chat.postEphemeral` to `user` in `channel`, a direct message if Slack refuses.
    Ephemeral {
        /// The channel the user last spoke to the bot in.
        channel: String,
        /// The user.
        user: String,
    },
}

/// One post waiting to be sent: its destination and its `chat.postMessage` body (whose
/// `channel` is filled in when sent).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Where it goes.
    pub dest: Dest,
    /// The body.
    pub body: Value,
    /// For an offer of buttons: whom to tell the posted message's `ts`.
    pub posted: Option<crate::backends::buttons::OfferReceipt>,
    /// For a part of a command's result: its key (in the body's metadata too).
    pub part: Option<OwedPart>,
}

/// Adds the metadata naming `part` to a `chat.postMessage` body.
pub fn with_part_metadata(mut body: Value, part: Option<&OwedPart>) -> Value {
    if let (Some(part), Some(fields)) = (part, body.as_object_mut()) {
        fields.insert(
            "metadata".into(),
            json!({"event_type": RESULT_PART_EVENT, "event_payload": {"part": part.key}}),
        );
    }
    body
}

/// Slack's timestamp for a moment (`seconds.microseconds`).
fn slack_ts(at: DateTime<Utc>) -> String {
    format!("{}.{:06}", at.timestamp(), at.timestamp_subsec_micros())
}

/// Whether a message carrying part `key` in its metadata was posted in `channel` (in the
/// thread under `thread`, when given) from `from` on.
async fn already_posted(
    api: &Api,
    token: &SecretString,
    channel: &str,
    thread: Option<&str>,
    key: &str,
    from: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let mut args = json!({
        "channel": channel,
        "oldest": slack_ts(from),
        "limit": HISTORY_PAGE,
        "include_all_metadata": true,
    });
    // A thread's replies are not in `conversations.history`, only in the thread.
    let method = match thread {
        Some(ts) => {
            args["ts"] = json!(ts);
            "conversations.replies"
        }
        None => "conversations.history",
    };
    for _ in 0..HISTORY_PAGES {
        let page: MessagePage = api.call(method, token, &args).await?;
        let found = page
            .messages
            .iter()
            .filter_map(|m| m.metadata.as_ref())
            .any(|m| {
                m.event_type == RESULT_PART_EVENT && m.event_payload["part"].as_str() == Some(key)
            });
        if found {
            return Ok(true);
        }
        match page.next_cursor() {
            Some(cursor) => args["cursor"] = json!(cursor),
            None => return Ok(false),
        }
    }
    Ok(false)
}

/// What was posted in `place` from `since` (milliseconds, inclusive) on: a channel's
/// messages, newest first as Slack lists them (`conversations.history` with `oldest` and
/// `inclusive`; https://api.slack.com/methods/conversations.history), or a thread's, its root
/// first (`conversations.replies` with `ts` too; https://api.slack.com/methods/conversations.replies;
/// both Tier 3), following
/// `response_metadata.next_cursor` for at most [`resume::HISTORY_PAGES`] pages. A 429 (or
/// Slack's `ratelimited`) is waited out as `Retry-After` says, unless that would pass
/// `deadline`: then it is the error, and the catch-up gives up on what is left.
pub async fn posted_since(
    api: &Api,
    token: &SecretString,
    place: &resume::Place,
    since: u64,
    deadline: tokio::time::Instant,
) -> Result<Vec<Value>, ApiError> {
    let mut args = json!({
        "channel": place.channel(),
        "oldest": resume::oldest(since),
        "inclusive": true,
        "limit": resume::HISTORY_PAGE,
    });
    let method = match place {
        resume::Place::Channel(_) => "conversations.history",
        resume::Place::Thread { root, .. } => {
            args["ts"] = json!(root);
            "conversations.replies"
        }
    };
    let mut messages = Vec::new();
    let mut pages = 0;
    while pages < resume::HISTORY_PAGES {
        let page: HistoryPage = match api.call(method, token, &args).await {
            Ok(page) => page,
            Err(error) => {
                let wait = match &error {
                    ApiError::RateLimited(wait) => *wait,
                    ApiError::Slack(e) if e == "ratelimited" => Duration::from_secs(1),
                    _ => return Err(error),
                };
                if tokio::time::Instant::now() + wait > deadline {
                    return Err(error);
                }
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        pages += 1;
        let next = page.next_cursor().map(str::to_owned);
        messages.extend(page.messages);
        match next {
            Some(cursor) => args["cursor"] = json!(cursor),
            None => break,
        }
    }
    Ok(messages)
}

/// The part of `chat.postMessage`'s answer the bridge reads: the new message's `ts`
/// (https://api.slack.com/methods/chat.postMessage, "Example response").
#[derive(Debug, serde::Deserialize)]
struct PostedMessage {
    #[serde(default)]
    ts: Option<String>,
}

/// Why a Web API call failed.
#[derive(Debug)]
pub enum ApiError {
    /// 429: wait this long.
    RateLimited(Duration),
    /// Slack answered `ok: false`; retrying will not help (except `ratelimited`).
    Slack(String),
    /// Network, 5xx, or an unreadable answer; worth retrying.
    Transport(String),
}

impl ApiError {
    /// The error as text, for logs.
    pub fn describe(&self) -> String {
        match self {
            ApiError::RateLimited(d) => format!("rate limited for {} ms", d.as_millis()),
            ApiError::Slack(e) => e.clone(),
            ApiError::Transport(e) => e.clone(),
        }
    }

    /// What the queue does after a send failed this way.
    pub fn outcome(self) -> Outcome {
        match self {
            ApiError::RateLimited(d) => Outcome::RateLimited(d),
            ApiError::Slack(e) if e == "ratelimited" => {
                Outcome::RateLimited(Duration::from_secs(1))
            }
            ApiError::Slack(e) => Outcome::Rejected(ConnectionError::Protocol(format!(
                "Slack refused the message: {e}"
            ))),
            ApiError::Transport(e) => {
                Outcome::Retry(ConnectionError::network("posting to Slack", e))
            }
        }
    }

    /// The error as the failure of a connection attempt (`what` names the call). A
    /// refused token is tried again with backoff: a revoked token may be restored.
    pub fn failure(self, what: &str) -> ConnectionError {
        ConnectionError::Protocol(format!("{what}: {}", self.describe()))
    }
}

/// A Web API client bound to this thread.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client.
    pub client: awc::Client,
    /// `https://slack.com/api` (or the configured `api_url`).
    pub base: String,
}

impl Api {
    /// POSTs a JSON body to `method` with `token`; Slack's `ok: false` is an error.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        token: &SecretString,
        body: &Value,
    ) -> Result<T, ApiError> {
        let url = format!("{}/{method}", self.base);
        let mut resp = self
            .client
            .post(url)
            .insert_header(("Authorization", format!("Bearer {}", token.expose_secret())))
            .send_json(body)
            .await
            .map_err(|e| ApiError::Transport(format!("{method}: {e}")))?;
        let status = resp.status();
        if status.as_u16() == 429 {
            let secs = resp
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(ApiError::RateLimited(Duration::from_secs(secs.min(3600))));
        }
        if !status.is_success() {
            return Err(ApiError::Transport(format!("{method}: HTTP {status}")));
        }
        let bytes = resp
            .body()
            .limit(4 << 20)
            .await
            .map_err(|e| ApiError::Transport(format!("{method}: {e}")))?;
        let envelope: ApiEnvelope = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Transport(format!("{method}: unreadable answer: {e}")))?;
        if !envelope.ok {
            return Err(ApiError::Slack(
                envelope.error.unwrap_or_else(|| "unknown_error".into()),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Transport(format!("{method}: unexpected answer: {e}")))
    }
}

/// Sends one post (opening the direct channel, or falling back from an ephemeral whisper to
/// a direct message, on the way): how it went, and the direct channel it opened, if any, as
/// `(user, channel)`. `look_from`: the post is a result part that may be in the channel
/// already since then; it is posted only if it is not.
pub async fn send(
    api: Api,
    bot: SecretString,
    mut item: Outgoing,
    dm_cached: Option<String>,
    look_from: Option<DateTime<Utc>>,
) -> (Outcome, Option<(String, String)>) {
    if let Dest::Ephemeral { channel, user } = item.dest.clone() {
        let mut body = item.body.clone();
        if let Some(b) = body.as_object_mut() {
            b.insert("channel".into(), Value::String(channel));
            b.insert("user".into(), Value::String(user.clone()));
        }
        match api
            .call::<ApiEnvelope>("chat.postEphemeral", &bot, &body)
            .await
        {
            Ok(_) => return (Outcome::Sent { pause: None }, None),
            Err(ApiError::Slack(e))
                if matches!(
                    e.as_str(),
                    "user_not_in_channel" | "channel_not_found" | "not_in_channel" | "is_archived"
                ) =>
            {
                tracing::info!(error = %e, "ephemeral whisper refused; sending a direct message");
                item.dest = Dest::User(user);
            }
            Err(e) => return (e.outcome(), None),
        }
    }
    let mut dm = None;
    let channel = match &item.dest {
        Dest::Channel(c) => c.clone(),
        Dest::User(user) | Dest::Ephemeral { user, .. } => match dm_cached {
            Some(c) => c,
            None => match api
                .call::<ConversationsOpen>("conversations.open", &bot, &json!({"users": user}))
                .await
            {
                Ok(open) => {
                    dm = Some((user.clone(), open.channel.id.clone()));
                    open.channel.id
                }
                Err(e) => return (e.outcome(), None),
            },
        },
    };
    if let (Some(from), Some(part)) = (look_from, &item.part) {
        let thread = item.body["thread_ts"].as_str();
        match already_posted(&api, &bot, &channel, thread, &part.key, from).await {
            Ok(true) => {
                tracing::info!(
                    part = %part.key,
                    "this result part is in the channel already; not posted again"
                );
                return (Outcome::Sent { pause: None }, dm);
            }
            Ok(false) => {}
            // The bot may not read this conversation's history (a missing `*:history`
            // scope): post; a result lost is worse than one possibly shown twice. (Slack's
            // `ratelimited` is a wait, as below.)
            Err(ApiError::Slack(e)) if e != "ratelimited" => tracing::warn!(
                error = %e,
                "cannot read the conversation back to see whether this result part is there already; posting it (the bot needs the channels:history, groups:history and im:history scopes)"
            ),
            Err(e) => return (e.outcome(), dm),
        }
    }
    if let Some(body) = item.body.as_object_mut() {
        body.insert("channel".into(), Value::String(channel));
    }
    match api
        .call::<PostedMessage>("chat.postMessage", &bot, &item.body)
        .await
    {
        Ok(posted) => {
            if let (Some(receipt), Some(ts)) = (&item.posted, posted.ts) {
                receipt.posted(ts);
            }
            (Outcome::Sent { pause: None }, dm)
        }
        Err(e) => (e.outcome(), None),
    }
}
