//! The parts of Slack's wire format the bridge reads, hand-rolled with serde. Unknown fields
//! are ignored and every field that Slack may leave out is optional, so a new field or a
//! surprising event never fails a whole frame.

use serde::Deserialize;
use serde_json::Value;

/// Every Web API answer: `{"ok": bool, "error": "…"}` plus the method's own fields.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiEnvelope {
    /// Whether the call worked.
    #[serde(default)]
    pub ok: bool,
    /// Slack's error code when it did not (`invalid_auth`, `ratelimited`, …).
    #[serde(default)]
    pub error: Option<String>,
}

/// `auth.test`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthTest {
    /// The bot's user id (`U…`); messages mentioning `<@user_id>` address the bot.
    #[serde(default)]
    pub user_id: String,
    /// The workspace id (`T…`).
    #[serde(default)]
    pub team_id: Option<String>,
    /// The bot id (`B…`); messages carrying it are the bot's own.
    #[serde(default)]
    pub bot_id: Option<String>,
}

/// `apps.connections.open`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionsOpen {
    /// The `wss://` URL to connect to.
    pub url: String,
}

/// `conversations.open`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConversationsOpen {
    /// The direct-message channel.
    pub channel: ChannelRef,
}

/// `conversations.info`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConversationsInfo {
    /// The channel.
    pub channel: ChannelRef,
}

/// A channel object, reduced to what the bridge uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelRef {
    /// `C…`, `G…` or `D…`.
    pub id: String,
    /// Channel name, without `#`.
    #[serde(default)]
    pub name: Option<String>,
}

/// A page of `conversations.history` or `conversations.replies`
/// (https://api.slack.com/methods/conversations.history: `messages`, `has_more`,
/// `response_metadata.next_cursor`), its messages read as `M`.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<M> {
    /// The messages, newest first (a thread's root first in `conversations.replies`).
    #[serde(default = "Vec::new")]
    pub messages: Vec<M>,
    /// More messages match than this page holds.
    #[serde(default)]
    pub has_more: bool,
    /// Where the next page starts.
    #[serde(default)]
    pub response_metadata: Option<ResponseMetadata>,
}

impl<M> Page<M> {
    /// The cursor of the next page, when there is one.
    pub fn next_cursor(&self) -> Option<&str> {
        self.response_metadata
            .as_ref()
            .map(|m| m.next_cursor.as_str())
            .filter(|c| self.has_more && !c.is_empty())
    }
}

/// A page read with `include_all_metadata`, each message reduced to its metadata (looking
/// for a result part's key).
pub type MessagePage = Page<PagedMessage>;

/// A page as the catch-up reads it: the messages whole, to be mapped as live `message`
/// events are.
pub type HistoryPage = Page<Value>;

/// Pagination of a Web API answer.
#[derive(Debug, Clone, Deserialize)]
pub struct ResponseMetadata {
    /// Empty on the last page.
    #[serde(default)]
    pub next_cursor: String,
}

/// A message of a history page, reduced to its metadata.
#[derive(Debug, Clone, Deserialize)]
pub struct PagedMessage {
    /// The app metadata posted with it (https://api.slack.com/metadata/using).
    #[serde(default)]
    pub metadata: Option<MessageMetadata>,
}

/// Message metadata: an event type and a free-form payload.
#[derive(Debug, Clone, Deserialize)]
pub struct MessageMetadata {
    /// The poster's name for the kind of event.
    #[serde(default)]
    pub event_type: String,
    /// The payload.
    #[serde(default)]
    pub event_payload: Value,
}

/// One Socket Mode frame.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SocketFrame {
    /// The connection is ready.
    Hello {
        /// How many connections this app has open.
        #[serde(default)]
        num_connections: Option<u32>,
    },
    /// Slack will close this connection; open another first.
    Disconnect {
        /// `refresh_requested`, `warning`, `link_disabled`, …
        #[serde(default)]
        reason: String,
    },
    /// An Events API event, to acknowledge with its envelope id.
    EventsApi {
        /// What to acknowledge.
        envelope_id: String,
        /// The `event_callback` body, as the Events API would POST it.
        payload: Value,
    },
    /// Slash commands: acknowledged, not used.
    SlashCommands {
        /// What to acknowledge.
        envelope_id: String,
    },
    /// Interactivity payloads (button presses): acknowledged, then read.
    Interactive {
        /// What to acknowledge.
        envelope_id: String,
        /// The interaction payload (`block_actions`, …).
        #[serde(default)]
        payload: Value,
    },
    /// Anything else.
    #[serde(other)]
    Other,
}

/// An Events API callback body (`type = "event_callback"`).
#[derive(Debug, Clone, Deserialize)]
pub struct EventCallback {
    /// Workspace id.
    #[serde(default)]
    pub team_id: Option<String>,
    /// Unique per event; Slack retries with the same id.
    #[serde(default)]
    pub event_id: Option<String>,
    /// The inner event.
    pub event: Event,
}

/// An inner event, reduced to the message fields.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `message`, `app_mention`, `channel_left`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `bot_message`, `message_changed`, … (absent for a plain user message).
    #[serde(default)]
    pub subtype: Option<String>,
    /// Channel id.
    #[serde(default)]
    pub channel: Option<String>,
    /// `channel`, `group`, `im` or `mpim`.
    #[serde(default)]
    pub channel_type: Option<String>,
    /// Author's user id.
    #[serde(default)]
    pub user: Option<String>,
    /// Present on messages posted by a bot or app.
    #[serde(default)]
    pub bot_id: Option<String>,
    /// Message text.
    #[serde(default)]
    pub text: Option<String>,
    /// Message timestamp (its id).
    #[serde(default)]
    pub ts: Option<String>,
    /// Parent message timestamp, for a threaded message.
    #[serde(default)]
    pub thread_ts: Option<String>,
    /// Team of the author.
    #[serde(default)]
    pub team: Option<String>,
    /// User profile as sent with messages, when present.
    #[serde(default)]
    pub user_profile: Option<UserProfile>,
}

/// The `user_profile` object on message events.
#[derive(Debug, Clone, Deserialize)]
pub struct UserProfile {
    /// Display name, may be empty.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Real name.
    #[serde(default)]
    pub real_name: Option<String>,
    /// Username.
    #[serde(default)]
    pub name: Option<String>,
}
