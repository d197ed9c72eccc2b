//! `backend = "rocketchat"` settings.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Rocket.Chat's default `Message_MaxAllowedSize`, in characters: the server refuses a longer
/// message (`error-message-size-exceeded`). An administrator can raise it; so can
/// `max_message_length`.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 5000;

/// `backend = "rocketchat"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocketChatSettings {
    /// The server's base URL, e.g. `https://chat.example.com` (the REST API is under
    /// `/api/v1`, the realtime API at `/websocket`).
    pub server_url: String,
    /// The bot account's user id (`X-User-Id`; shown with its personal access token).
    pub user_id: String,
    /// The bot account's personal access token (set this or `token_file`).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// A file holding the token.
    #[serde(default)]
    pub token_file: String,
    /// Answer a command that is not in a thread in a new thread under it (`tmid` = the
    /// command's message); by default such answers go to the room.
    #[serde(default)]
    pub reply_in_thread: bool,
    /// Longer messages are split; the server's `Message_MaxAllowedSize` is 5000 by default.
    #[serde(default = "default_max_message_length")]
    pub max_message_length: usize,
    /// Outbound messages kept while disconnected or rate-limited; the oldest are dropped
    /// beyond this.
    #[serde(default = "crate::backends::defaults::queue_size")]
    pub queue_size: usize,
    /// How long ago a message said while no link listened may have been said and still run
    /// when the next link catches up, in seconds (0: any age).
    #[serde(default = "crate::backends::connection::position::max_command_age_secs")]
    pub max_command_age_secs: u64,
    /// Least gap between two messages once the first burst is spent, in milliseconds.
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
    /// Realtime ping period in seconds; twice this without any frame reconnects.
    #[serde(default = "default_ping_interval")]
    pub ping_interval_secs: u64,
    /// Verify the server's TLS certificate.
    #[serde(default = "crate::backends::defaults::enabled")]
    pub verify_cert: bool,
    /// A PEM file of extra CA certificates for the server.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

fn default_max_message_length() -> usize {
    DEFAULT_MAX_MESSAGE_CHARS
}
fn default_ping_interval() -> u64 {
    30
}

crate::platform_settings!(RocketChatSettings, "rocketchat");

impl RocketChatSettings {
    /// The settings' own checks, `(field, reason)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if super::endpoints(&self.server_url).is_none() {
            problems.push((
                "server_url",
                format!("`{}` must be an http:// or https:// URL", self.server_url),
            ));
        }
        let id = self.user_id.trim();
        if id.is_empty() || id.contains(char::is_whitespace) {
            problems.push((
                "user_id",
                "is required: the bot account's user id, shown with its personal access token"
                    .to_owned(),
            ));
        }
        if self.ping_interval_secs == 0 {
            problems.push(("ping_interval_secs", "must be at least 1".to_owned()));
        }
        problems
    }
}

/// Reads a `[[chat]]` table of `backend = "rocketchat"`: the server URL must be http(s), the
/// user id given, and exactly one of token/token_file set.
pub fn parse(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let mut s: RocketChatSettings = table.deserialize()?;
    let clean = table.check(s.problems());
    let token_file = std::mem::take(&mut s.token_file);
    s.token = table.secret("token", s.token.take(), &token_file);
    if s.token.is_none() && token_file.trim().is_empty() {
        table.problem(
            "token",
            "is required (or token_file): a personal access token",
        );
    }
    (clean && s.token.is_some()).then(|| std::sync::Arc::new(s) as _)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::config::{ConfigError, Settings};

    fn load(chat: &str) -> Result<Settings, ConfigError> {
        crate::config::load_from_str(
            &format!(
                "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"rc\"\nbackend = \"rocketchat\"\n{chat}\n"
            ),
            &crate::backends::registry::REGISTRY,
        )
    }

    fn rc(s: &Settings) -> &super::RocketChatSettings {
        s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::RocketChatSettings>()
            .expect("rocketchat")
    }

    fn keys(e: &ConfigError) -> Vec<String> {
        e.problems.iter().map(|p| p.key.clone()).collect()
    }

    #[test]
    fn a_full_table_loads_with_defaults() {
        let s = load(
            "server_url = \"https://chat.example.com\"\nuser_id = \"aobEdbYhXfu5hkeqG\"\ntoken = \"pat-s3cret\"",
        )
        .unwrap();
        let r = rc(&s);
        assert_eq!(s.chat[0].backend.kind(), "rocketchat");
        assert_eq!(r.user_id, "aobEdbYhXfu5hkeqG");
        assert_eq!(r.max_message_length, super::DEFAULT_MAX_MESSAGE_CHARS);
        assert_eq!(r.queue_size, crate::backends::defaults::queue_size());
        assert_eq!((r.reconnect_initial_ms, r.reconnect_max_ms), (None, None));
        assert!(r.verify_cert);
        assert_eq!(
            r.token.as_ref().map(|t| t.expose_secret().to_owned()),
            Some("pat-s3cret".to_owned())
        );
        assert!(
            !format!("{r:?}").contains("pat-s3cret"),
            "Debug hides the token"
        );
    }

    #[test]
    fn the_common_keys_are_read() {
        let s = load(
            "server_url = \"http://127.0.0.1:3000\"\nuser_id = \"u1\"\ntoken = \"t\"\nqueue_size = 7\nsend_interval_ms = 5\nmax_message_length = 300\nreconnect_initial_ms = 50\nreconnect_max_ms = 900\ntls_ca_file = \"/etc/ca.pem\"",
        )
        .unwrap();
        let r = rc(&s);
        assert_eq!(
            (
                r.queue_size,
                r.send_interval_ms,
                r.max_message_length,
                r.reconnect_initial_ms,
                r.reconnect_max_ms
            ),
            (7, 5, 300, Some(50), Some(900))
        );
        assert_eq!(
            r.tls_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
    }

    #[test]
    fn the_token_comes_from_a_file_and_exactly_one_source_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rc.token");
        std::fs::write(&path, "from-file\n").unwrap();
        let base = "server_url = \"http://127.0.0.1:3000\"\nuser_id = \"u1\"";
        let s = load(&format!("{base}\ntoken_file = \"{}\"", path.display())).unwrap();
        assert_eq!(
            rc(&s).token.as_ref().map(|t| t.expose_secret().to_owned()),
            Some("from-file".to_owned())
        );
        let e = load(&format!(
            "{base}\ntoken = \"a\"\ntoken_file = \"{}\"",
            path.display()
        ))
        .unwrap_err();
        assert!(keys(&e).contains(&"chat[0].token".to_owned()), "{e}");
        let e = load(base).unwrap_err();
        assert!(keys(&e).contains(&"chat[0].token".to_owned()), "{e}");
        let e = load(&format!("{base}\ntoken_file = \"/nonexistent/rc.token\"")).unwrap_err();
        assert!(keys(&e).contains(&"chat[0].token_file".to_owned()), "{e}");
    }

    #[test]
    fn bad_urls_missing_ids_and_unknown_keys_are_refused() {
        let e =
            load("server_url = \"chat.example.com\"\nuser_id = \"u1\"\ntoken = \"t\"").unwrap_err();
        assert!(keys(&e).contains(&"chat[0].server_url".to_owned()), "{e}");
        let e = load("server_url = \"https://chat\"\nuser_id = \" \"\ntoken = \"t\"").unwrap_err();
        assert!(keys(&e).contains(&"chat[0].user_id".to_owned()), "{e}");
        let e = load("server_url = \"https://chat\"\nuser_id = \"u\"\ntoken = \"t\"\nurl = \"x\"")
            .unwrap_err();
        assert!(keys(&e).contains(&"chat[0]".to_owned()), "{e}");
        let e = load("server_url = \"https://chat\"\ntoken = \"t\"").unwrap_err();
        assert!(keys(&e).contains(&"chat[0]".to_owned()), "{e}");
    }
}
