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
    /// Answer a command that is not in a thread in a new thread under it (`root_id` = the
    /// command's post); by default such answers go to the channel.
    #[serde(default)]
    pub reply_in_thread: bool,
    /// Longer messages are split; Mattermost refuses posts over 16383 characters.
    #[serde(default = "default_max_message_length")]
    pub max_message_length: usize,
    /// Outbound messages kept while disconnected or rate-limited; the oldest are dropped
    /// beyond this.
    #[serde(default = "crate::backends::defaults::queue_size")]
    pub queue_size: usize,
    /// Minimum gap between two posts, in milliseconds.
    #[serde(default = "crate::backends::defaults::send_interval_ms")]
    pub send_interval_ms: u64,
    /// `reconnect_initial_ms`: shortest reconnect delay in milliseconds (the `[supervisor]`
    /// value when not given).
    #[serde(default)]
    pub reconnect_initial_ms: Option<u64>,
    /// `reconnect_max_ms`: longest reconnect delay in milliseconds (the `[supervisor]` value
    /// when not given).
    #[serde(default)]
    pub reconnect_max_ms: Option<u64>,
    /// Websocket ping period in seconds; twice this without any frame reconnects.
    #[serde(default = "default_ping_interval")]
    pub ping_interval_secs: u64,
    /// Verify the server's TLS certificate.
    #[serde(default = "crate::backends::defaults::enabled")]
    pub verify_cert: bool,
    /// The bridge's HTTP server as the Mattermost server reaches it (e.g.
    /// `https://bridge.example.com:3141`): answer buttons for StackStorm inquiries make
    /// Mattermost POST presses to `<actions_url>/mattermost/actions/<connection name>`.
    /// Unset: no buttons; inquiries are answered by typing.
    #[serde(default)]
    pub actions_url: Option<String>,
}

fn default_max_message_length() -> usize {
    MAX_POST_CHARS
}
fn default_ping_interval() -> u64 {
    30
}

crate::platform_settings!(MattermostSettings, "mattermost");

/// Reads a `[[chat]]` table of `backend = "mattermost"`: the URL must be http(s) and
/// exactly one of token/token_file set.
pub fn parse(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let mut s: MattermostSettings = table.deserialize()?;
    if super::endpoints(&s.url).is_none() {
        table.problem(
            "url",
            format!("`{}` must be an http:// or https:// URL", s.url),
        );
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
    use secrecy::ExposeSecret;

    use crate::config::{ConfigError, Settings};

    fn load_from_str(text: &str) -> Result<Settings, ConfigError> {
        crate::config::load_from_str(text, &crate::backends::registry::REGISTRY)
    }

    fn load(chat: &str) -> Result<Settings, ConfigError> {
        load_from_str(&format!(
            "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"mm\"\nbackend = \"mattermost\"\n{chat}\n"
        ))
    }

    fn keys(e: &ConfigError) -> Vec<String> {
        e.problems.iter().map(|p| p.key.clone()).collect()
    }

    #[test]
    fn reconnect_keys_are_the_common_ones_and_default_to_the_supervisors() {
        let s = load("url = \"https://mm.example.com\"\ntoken = \"t\"\nreconnect_initial_ms = 50\nreconnect_max_ms = 900").unwrap();
        let mm = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::MattermostSettings>()
            .expect("mattermost");
        assert_eq!(
            (mm.reconnect_initial_ms, mm.reconnect_max_ms),
            (Some(50), Some(900))
        );
        let s = load("url = \"https://mm.example.com\"\ntoken = \"t\"").unwrap();
        let mm = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::MattermostSettings>()
            .expect("mattermost");
        assert_eq!((mm.reconnect_initial_ms, mm.reconnect_max_ms), (None, None));
    }

    #[test]
    fn a_full_table_loads_with_defaults() {
        let s = load("url = \"https://mm.example.com\"\ntoken = \"t0k3n-secret\"\nteam = \"ops\"\nchannels = [\"town-square\"]").unwrap();
        let Some(mm) = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::MattermostSettings>()
        else {
            panic!("not mattermost: {:?}", s.chat[0].backend);
        };
        assert_eq!(s.chat[0].backend.kind(), "mattermost");
        assert_eq!(mm.url, "https://mm.example.com");
        assert_eq!(mm.team.as_deref(), Some("ops"));
        assert_eq!(mm.channels, vec!["town-square".to_owned()]);
        assert_eq!(mm.max_message_length, super::MAX_POST_CHARS);
        assert_eq!(
            mm.token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
                .as_deref(),
            Some("t0k3n-secret")
        );
        assert!(
            !format!("{mm:?}").contains("t0k3n-secret"),
            "Debug hides the token"
        );
    }

    #[test]
    fn the_token_comes_from_a_file_and_exactly_one_source_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mm.token");
        std::fs::write(&path, "from-file\n").unwrap();
        let s = load(&format!(
            "url = \"http://127.0.0.1:8065\"\ntoken_file = \"{}\"",
            path.display()
        ))
        .unwrap();
        let Some(mm) = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::MattermostSettings>()
        else {
            panic!("not mattermost");
        };
        assert_eq!(
            mm.token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
                .as_deref(),
            Some("from-file")
        );

        let e = load(&format!(
            "url = \"http://x\"\ntoken = \"a\"\ntoken_file = \"{}\"",
            path.display()
        ))
        .unwrap_err();
        assert!(keys(&e).contains(&"chat[0].token".to_owned()), "{e}");
        let e = load("url = \"http://x\"").unwrap_err();
        assert!(keys(&e).contains(&"chat[0].token".to_owned()), "{e}");
        let e = load("url = \"http://x\"\ntoken_file = \"/nonexistent/mm.token\"").unwrap_err();
        assert!(keys(&e).contains(&"chat[0].token_file".to_owned()), "{e}");
    }

    #[test]
    fn bad_urls_and_unknown_keys_are_refused() {
        let e = load("url = \"mm.example.com\"\ntoken = \"t\"").unwrap_err();
        assert!(keys(&e).contains(&"chat[0].url".to_owned()), "{e}");
        let e = load("url = \"https://mm\"\ntoken = \"t\"\nchanels = []").unwrap_err();
        assert!(keys(&e).contains(&"chat[0]".to_owned()), "{e}");
    }
}
