//! `backend = "discord"` settings.

use secrecy::SecretString;
use serde::Deserialize;

/// Discord's limit on a message's `content`, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// `backend = "discord"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSettings {
    /// The bot token (set this or `token_file`; validation resolves the file).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// A file holding the token.
    #[serde(default)]
    pub token_file: String,
    /// REST API base URL.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Gateway URL; by default asked from `GET /gateway/bot`.
    #[serde(default)]
    pub gateway_url: Option<String>,
    /// Channel ids to watch; empty means every channel the bot can read. Direct messages
    /// are always read.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Longer messages are split; Discord refuses messages over 2000 characters.
    #[serde(default = "default_max_message_length")]
    pub max_message_length: usize,
    /// Outbound messages kept while disconnected or rate-limited; the oldest are dropped
    /// beyond this.
    #[serde(default = "crate::backends::defaults::queue_size")]
    pub queue_size: usize,
    /// Minimum gap between two messages, in milliseconds.
    /// Least gap between two messages to one channel once its burst of 5 is used, in
    /// milliseconds (Discord's channel message route allows about 5 per 5 s).
    #[serde(default = "default_send_interval_ms")]
    pub send_interval_ms: u64,
    /// `reconnect_initial_ms`: shortest reconnect delay in milliseconds (the `[supervisor]`
    /// value when not given).
    #[serde(default)]
    pub reconnect_initial_ms: Option<u64>,
    /// `reconnect_max_ms`: longest reconnect delay in milliseconds (the `[supervisor]` value
    /// when not given).
    #[serde(default)]
    pub reconnect_max_ms: Option<u64>,
    /// Verify TLS certificates.
    #[serde(default = "crate::backends::defaults::enabled")]
    pub verify_cert: bool,
}

fn default_api_url() -> String {
    "https://discord.com/api/v10".into()
}
fn default_max_message_length() -> usize {
    MAX_MESSAGE_CHARS
}

/// An http(s) URL with a host.
pub fn http_url_ok(s: &str) -> bool {
    url::Url::parse(s.trim())
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false)
}

/// A ws(s) URL with a host.
pub fn ws_url_ok(s: &str) -> bool {
    url::Url::parse(s.trim())
        .map(|u| matches!(u.scheme(), "ws" | "wss") && u.host_str().is_some())
        .unwrap_or(false)
}

crate::platform_settings!(DiscordSettings, "discord");

fn default_send_interval_ms() -> u64 {
    1000
}

/// Reads a `[[chat]]` table of `backend = "discord"`: http(s) API URL, ws(s) gateway URL,
/// exactly one of token/token_file.
pub fn parse(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let mut s: DiscordSettings = table.deserialize()?;
    if !http_url_ok(&s.api_url) {
        table.problem(
            "api_url",
            format!("`{}` must be an http:// or https:// URL", s.api_url),
        );
        return None;
    }
    if let Some(g) = s.gateway_url.as_deref().filter(|g| !ws_url_ok(g)) {
        table.problem(
            "gateway_url",
            format!("`{g}` must be a ws:// or wss:// URL"),
        );
        return None;
    }
    let token_file = std::mem::take(&mut s.token_file);
    s.token = table.secret("token", s.token.take(), &token_file);
    if s.token.is_none() && token_file.trim().is_empty() {
        table.problem("token", "is required (or token_file)");
    }
    s.token.is_some().then(|| std::sync::Arc::new(s) as _)
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, Settings};

    fn load_from_str(text: &str) -> Result<Settings, ConfigError> {
        crate::config::load_from_str(text, &crate::backends::registry::REGISTRY)
    }

    fn load(chat: &str) -> Result<Settings, ConfigError> {
        load_from_str(&format!(
            "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"dc\"\nbackend = \"discord\"\n{chat}\n"
        ))
    }

    #[test]
    fn defaults_and_refusals() {
        let s = load("token = \"s3cret-tok\"\nchannels = [\"42\"]").unwrap();
        let Some(d) = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::DiscordSettings>()
        else {
            panic!("not discord");
        };
        assert_eq!(s.chat[0].backend.kind(), "discord");
        assert_eq!(d.api_url, "https://discord.com/api/v10");
        assert_eq!(d.max_message_length, super::MAX_MESSAGE_CHARS);
        assert!(!format!("{d:?}").contains("s3cret-tok"));
        assert!(load("api_url = \"http://x\"").is_err(), "token required");
        assert!(load("token = \"t\"\napi_url = \"x\"").is_err());
        assert!(load("token = \"t\"\ngateway_url = \"http://x\"").is_err());
        assert!(load("token = \"t\"\nchanels = []").is_err());
    }
}
