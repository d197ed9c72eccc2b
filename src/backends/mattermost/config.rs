//! `backend = "mattermost"` settings.

use secrecy::SecretString;
use serde::Deserialize;

/// Mattermost's limit on a post's `message`, in characters (runes).
pub const MAX_POST_CHARS: usize = 16383;

/// `backend = "mattermost"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostSettings {
    /// Server base URL, e.g. `https://mm.example.com` (the API is under `/api/v4`).
    pub url: String,
    /// The bot's access token (set this or `token_file`; validation resolves the file).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// A file holding the token.
    #[serde(default)]
    pub token_file: String,
    /// Team name or id; its id is the organisation of messages without a team (DMs).
    #[serde(default)]
    pub team: Option<String>,
    /// Channel ids or names to watch; empty means every channel the bot is in. Direct
    /// messages are always read.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Longer messages are split; Mattermost refuses posts over 16383 characters.
    #[serde(default = "default_max_message_length")]
    pub max_message_length: usize,
    /// Outbound messages kept while disconnected or rate-limited; the oldest are dropped
    /// beyond this.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Minimum gap between two posts, in milliseconds.
    #[serde(default = "default_send_interval_ms")]
    pub send_interval_ms: u64,
    /// Websocket ping period in seconds; twice this without any frame reconnects.
    #[serde(default = "default_ping_interval")]
    pub ping_interval_secs: u64,
    /// Verify the server's TLS certificate.
    #[serde(default = "default_true")]
    pub verify_cert: bool,
}

fn default_max_message_length() -> usize {
    MAX_POST_CHARS
}
fn default_queue_size() -> usize {
    1000
}
fn default_send_interval_ms() -> u64 {
    100
}
fn default_ping_interval() -> u64 {
    30
}
fn default_true() -> bool {
    true
}
