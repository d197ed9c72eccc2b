//! The Slack Web API calls the bridge makes (`auth.test`, `apps.connections.open`,
//! `conversations.*`, `chat.postMessage`, `chat.postEphemeral`, `chat.update`), and how
//! their answers are classified.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::wire::{ApiEnvelope, ConversationsOpen};
use crate::backends::connection::{outbox::Outcome, ConnectionError};

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
/// `(user, channel)`.
pub async fn send(
    api: Api,
    bot: SecretString,
    mut item: Outgoing,
    dm_cached: Option<String>,
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
