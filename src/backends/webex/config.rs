//! `backend = "webex"` settings.

use secrecy::SecretString;
use serde::Deserialize;

/// Webex's limit on a message's `text` or `markdown`, in bytes ("Create a Message":
/// <https://developer.webex.com/docs/api/v1/messages/create-a-message>).
pub const MAX_MESSAGE_BYTES: usize = 7439;

/// The REST API's base URL.
pub const DEFAULT_API_URL: &str = "https://webexapis.com/v1";

/// `backend = "webex"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebexSettings {
    /// The bot's access token (set this or `token_file`; validation resolves the file).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// A file holding the token.
    #[serde(default)]
    pub token_file: String,
    /// REST API base URL, without a trailing slash.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The bridge's HTTP server as Webex reaches it (e.g. `https://bridge.example.com`):
    /// the bridge registers `<public_url>/webex/events/<connection>` as its webhooks'
    /// `targetUrl`.
    #[serde(default)]
    pub public_url: String,
    /// The secret Webex signs every webhook delivery with (`X-Spark-Signature`); every
    /// replica of the bridge must have the same one (set this or `webhook_secret_file`).
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    /// A file holding the webhook secret.
    #[serde(default)]
    pub webhook_secret_file: String,
    /// Answer a command that is not in a thread in a new thread under it (`parentId` = the
    /// command's message); by default such answers go to the room.
    #[serde(default)]
    pub reply_in_thread: bool,
    /// Longer messages are split; Webex refuses messages over 7439 bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Outbound messages kept while disconnected or rate-limited; the oldest are dropped
    /// beyond this.
    #[serde(default = "crate::backends::defaults::queue_size")]
    pub queue_size: usize,
    /// Least gap between two messages to one room once its burst of 3 is used, in
    /// milliseconds.
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
    /// How often the bridge checks its webhooks with Webex (re-creating or re-enabling what
    /// is missing or disabled), in seconds; a check that cannot reach Webex reconnects.
    #[serde(default = "default_check_interval_secs")]
    pub check_interval_secs: u64,
    /// Verify TLS certificates.
    #[serde(default = "crate::backends::defaults::enabled")]
    pub verify_cert: bool,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.into()
}
fn default_max_message_bytes() -> usize {
    MAX_MESSAGE_BYTES
}
fn default_send_interval_ms() -> u64 {
    1000
}
fn default_check_interval_secs() -> u64 {
    60
}

crate::platform_settings!(WebexSettings, "webex");

impl WebexSettings {
    /// The message-size limit in force: the configured one, never above Webex's.
    pub fn message_limit(&self) -> usize {
        match self.max_message_bytes {
            0 => MAX_MESSAGE_BYTES,
            n => n.min(MAX_MESSAGE_BYTES),
        }
    }
}

/// An http(s) URL with a host.
fn http_url_ok(s: &str) -> bool {
    url::Url::parse(s.trim())
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false)
}

/// Reads a `[[chat]]` table of `backend = "webex"`: http(s) API and public URLs, exactly one
/// of token/token_file and of webhook_secret/webhook_secret_file.
pub fn parse(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let mut s: WebexSettings = table.deserialize()?;
    let mut ok = true;
    if !http_url_ok(&s.api_url) {
        table.problem(
            "api_url",
            format!("`{}` must be an http:// or https:// URL", s.api_url),
        );
        ok = false;
    }
    if s.public_url.trim().is_empty() {
        table.problem(
            "public_url",
            "is required: the bridge's HTTP server as Webex reaches it (webhooks are sent there)",
        );
        ok = false;
    } else if !http_url_ok(&s.public_url) || s.public_url.contains(['?', '#']) {
        table.problem(
            "public_url",
            format!(
                "`{}` must be an http:// or https:// URL without a query",
                s.public_url
            ),
        );
        ok = false;
    }
    if s.check_interval_secs == 0 {
        table.problem("check_interval_secs", "must be at least 1");
        ok = false;
    }
    let token_file = std::mem::take(&mut s.token_file);
    s.token = table.secret("token", s.token.take(), &token_file);
    if s.token.is_none() && token_file.trim().is_empty() {
        table.problem("token", "is required (or token_file)");
    }
    let secret_file = std::mem::take(&mut s.webhook_secret_file);
    s.webhook_secret = table.secret("webhook_secret", s.webhook_secret.take(), &secret_file);
    if s.webhook_secret.is_none() && secret_file.trim().is_empty() {
        table.problem(
            "webhook_secret",
            "is required (or webhook_secret_file): Webex signs its webhooks with it",
        );
    }
    s.api_url = s.api_url.trim().trim_end_matches('/').to_owned();
    s.public_url = s.public_url.trim().trim_end_matches('/').to_owned();
    (ok && s.token.is_some() && s.webhook_secret.is_some()).then(|| std::sync::Arc::new(s) as _)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::config::{ConfigError, Settings};

    fn load(chat: &str) -> Result<Settings, ConfigError> {
        crate::config::load_from_str(
            &format!(
                "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"wx\"\nbackend = \"webex\"\n{chat}\n"
            ),
            &crate::backends::registry::REGISTRY,
        )
    }

    fn keys(e: &ConfigError) -> Vec<String> {
        e.problems.iter().map(|p| p.key.clone()).collect()
    }

    const BASE: &str = "token = \"t0k3n-secret\"\nwebhook_secret = \"hook-s3cret\"\npublic_url = \"https://bridge.example.com/\"";

    #[test]
    fn a_minimal_table_loads_with_defaults_and_hides_its_secrets() {
        let s = load(BASE).unwrap();
        let w = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::WebexSettings>()
            .expect("webex");
        assert_eq!(s.chat[0].backend.kind(), "webex");
        assert_eq!(w.api_url, "https://webexapis.com/v1");
        assert_eq!(w.public_url, "https://bridge.example.com");
        assert_eq!(w.message_limit(), super::MAX_MESSAGE_BYTES);
        assert_eq!(w.check_interval_secs, 60);
        assert!(!w.reply_in_thread);
        assert_eq!(
            w.webhook_secret.as_ref().map(|s| s.expose_secret()),
            Some("hook-s3cret")
        );
        let shown = format!("{w:?}");
        assert!(!shown.contains("t0k3n-secret") && !shown.contains("hook-s3cret"));
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        let secret = dir.path().join("secret");
        std::fs::write(&token, "from-file\n").unwrap();
        std::fs::write(&secret, "hook-from-file\n").unwrap();
        let s = load(&format!(
            "token_file = \"{}\"\nwebhook_secret_file = \"{}\"\npublic_url = \"http://127.0.0.1:3141\"",
            token.display(),
            secret.display()
        ))
        .unwrap();
        let w = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::WebexSettings>()
            .expect("webex");
        assert_eq!(
            w.token.as_ref().map(|t| t.expose_secret()),
            Some("from-file")
        );
        assert_eq!(
            w.webhook_secret.as_ref().map(|t| t.expose_secret()),
            Some("hook-from-file")
        );
    }

    #[test]
    fn missing_or_bad_settings_are_named() {
        let e = load("public_url = \"https://b.example.com\"").unwrap_err();
        let k = keys(&e);
        assert!(k.contains(&"chat[0].token".to_owned()), "{e}");
        assert!(k.contains(&"chat[0].webhook_secret".to_owned()), "{e}");
        let e = load("token = \"t\"\nwebhook_secret = \"s\"").unwrap_err();
        assert_eq!(keys(&e), ["chat[0].public_url"], "{e}");
        let e = load(&format!("{BASE}\napi_url = \"webexapis.com\"")).unwrap_err();
        assert_eq!(keys(&e), ["chat[0].api_url"], "{e}");
        let e =
            load("token = \"t\"\nwebhook_secret = \"s\"\npublic_url = \"ftp://x\"").unwrap_err();
        assert_eq!(keys(&e), ["chat[0].public_url"], "{e}");
        let e = load(&format!("{BASE}\ncheck_interval_secs = 0")).unwrap_err();
        assert_eq!(keys(&e), ["chat[0].check_interval_secs"], "{e}");
        let e = load(&format!("{BASE}\nwebhook_secrets = \"x\"")).unwrap_err();
        assert_eq!(keys(&e), ["chat[0]"], "{e}");
        let e = load(&format!("{BASE}\nmax_message_length = 100")).unwrap_err();
        assert!(e.to_string().contains("max_message_bytes"), "{e}");
    }
}
