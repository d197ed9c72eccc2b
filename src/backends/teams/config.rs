//! `backend = "teams"` settings: the bot's Microsoft Entra app registration (single tenant),
//! where Microsoft's token and key endpoints are, and the common queue and reconnect keys.

use secrecy::SecretString;
use serde::Deserialize;

/// Microsoft's sign-in endpoint for a tenant's client-credentials grant; `{tenant}` is
/// replaced by `tenant_id`
/// (<https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-authentication>,
/// "Step 1: Request an access token from the Microsoft Entra ID account login service").
pub const TOKEN_URL_TEMPLATE: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";

/// The Bot Connector's OpenID metadata document (same page, "Step 2: Get the OpenID
/// metadata document").
pub const OPENID_METADATA_URL: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";

/// Longest text part, in characters, that fits one activity of [`super::MAX_ACTIVITY_BYTES`]
/// whatever the characters are (four UTF-8 bytes each at most, plus the activity's own
/// fields).
pub const MAX_TEXT_CHARS: usize = 6500;

/// `backend = "teams"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsSettings {
    /// The bot's Microsoft App ID (the app registration's client id): the audience of the
    /// Bot Connector's tokens and the client of the bridge's own.
    pub app_id: String,
    /// The app registration's client secret (set this or `app_password_file`).
    #[serde(default)]
    pub app_password: Option<SecretString>,
    /// A file holding the client secret.
    #[serde(default)]
    pub app_password_file: String,
    /// The Microsoft Entra tenant of the (single-tenant) app registration: a GUID or a
    /// domain such as `contoso.onmicrosoft.com`.
    pub tenant_id: String,
    /// Where app tokens come from; by default Microsoft's endpoint for `tenant_id`.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The Bot Connector's OpenID metadata (its `jwks_uri` lists the keys that sign the
    /// requests Teams sends to the bridge).
    #[serde(default = "default_openid_metadata_url")]
    pub openid_metadata_url: String,
    /// Longer messages are split (characters); at most [`MAX_TEXT_CHARS`].
    #[serde(default = "default_max_message_length")]
    pub max_message_length: usize,
    /// Outbound messages kept while disconnected or rate-limited; the oldest are dropped
    /// beyond this.
    #[serde(default = "crate::backends::defaults::queue_size")]
    pub queue_size: usize,
    /// Unset (the default): each conversation is paced by Teams' documented windows (7 per
    /// second, 8 per 2 s, 60 per 30 s, 1800 per hour). Set: a single pace instead, a burst of
    /// 7 and then one message per this many milliseconds to each conversation (2100 keeps
    /// to all four windows at any length, at about a third of their speed for a burst).
    #[serde(default)]
    pub send_interval_ms: Option<u64>,
    /// `reconnect_initial_ms`: shortest reconnect delay in milliseconds (the `[supervisor]`
    /// value when not given).
    #[serde(default)]
    pub reconnect_initial_ms: Option<u64>,
    /// `reconnect_max_ms`: longest reconnect delay in milliseconds (the `[supervisor]` value
    /// when not given).
    #[serde(default)]
    pub reconnect_max_ms: Option<u64>,
    /// How often the connection reads the OpenID metadata and keys again (and so checks
    /// that Microsoft's endpoints answer), in seconds; a failed check marks it down until
    /// a reconnect succeeds.
    #[serde(default = "default_check_interval_secs")]
    pub check_interval_secs: u64,
    /// StackStorm's results (without `extra.teams`) as Adaptive Cards; off: plain text.
    #[serde(default = "crate::backends::defaults::enabled")]
    pub result_cards: bool,
    /// Where the `serviceUrl` of each conversation and person heard from is kept, so that
    /// results and whispers still reach them after a restart (Teams tells a bot where to
    /// reply only in the activities it sends). Unset: kept in memory only.
    #[serde(default)]
    pub state_file: Option<std::path::PathBuf>,
}

impl TeamsSettings {
    /// The token endpoint: `token_url`, or Microsoft's for `tenant_id`.
    pub fn token_endpoint(&self) -> String {
        match self.token_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.to_owned(),
            _ => TOKEN_URL_TEMPLATE.replace("{tenant}", self.tenant_id.trim()),
        }
    }
}

fn default_openid_metadata_url() -> String {
    OPENID_METADATA_URL.into()
}
fn default_max_message_length() -> usize {
    MAX_TEXT_CHARS
}
fn default_check_interval_secs() -> u64 {
    300
}

/// An http(s) URL with a host.
pub fn http_url_ok(s: &str) -> bool {
    url::Url::parse(s.trim())
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false)
}

/// A tenant id as it can stand in the token URL's path: a GUID or a domain name.
fn tenant_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
}

/// The settings' own checks, as `(key, reason)`.
fn problems(s: &TeamsSettings) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if s.app_id.trim().is_empty() {
        out.push((
            "app_id",
            "is required: the bot's Microsoft App ID (its app registration's client id)".into(),
        ));
    }
    if !tenant_ok(s.tenant_id.trim()) {
        out.push((
            "tenant_id",
            format!(
                "`{}` is not a tenant id (a GUID, or a domain such as contoso.onmicrosoft.com)",
                s.tenant_id
            ),
        ));
    }
    if let Some(url) = s.token_url.as_deref().filter(|u| !http_url_ok(u)) {
        out.push((
            "token_url",
            format!("`{url}` must be an http:// or https:// URL"),
        ));
    }
    if !http_url_ok(&s.openid_metadata_url) {
        out.push((
            "openid_metadata_url",
            format!(
                "`{}` must be an http:// or https:// URL",
                s.openid_metadata_url
            ),
        ));
    }
    if !(100..=MAX_TEXT_CHARS).contains(&s.max_message_length) {
        out.push((
            "max_message_length",
            format!("must be between 100 and {MAX_TEXT_CHARS} (characters)"),
        ));
    }
    if s.queue_size == 0 {
        out.push(("queue_size", "must be at least 1".into()));
    }
    if s.check_interval_secs == 0 {
        out.push(("check_interval_secs", "must be at least 1".into()));
    }
    out
}

crate::platform_settings!(TeamsSettings, "teams");

/// Reads a `[[chat]]` table of `backend = "teams"`: app id, tenant and exactly one of
/// `app_password` / `app_password_file`; URLs http(s).
pub fn parse(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let mut s: TeamsSettings = table.deserialize()?;
    let clean = table.check(problems(&s));
    let file = std::mem::take(&mut s.app_password_file);
    s.app_password = table.secret("app_password", s.app_password.take(), &file);
    if s.app_password.is_none() && file.trim().is_empty() {
        table.problem(
            "app_password",
            "is required (or app_password_file): the app registration's client secret",
        );
    }
    (clean && s.app_password.is_some()).then(|| std::sync::Arc::new(s) as _)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::TeamsSettings;
    use crate::config::{ConfigError, Settings};

    fn load(chat: &str) -> Result<Settings, ConfigError> {
        crate::config::load_from_str(
            &format!(
                "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"teams\"\nbackend = \"teams\"\n{chat}\n"
            ),
            &crate::backends::registry::REGISTRY,
        )
    }

    fn teams(s: &Settings) -> &TeamsSettings {
        s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<TeamsSettings>()
            .expect("teams settings")
    }

    fn keys(e: &ConfigError) -> Vec<String> {
        e.problems.iter().map(|p| p.key.clone()).collect()
    }

    const BASE: &str = "app_id = \"00000000-0000-0000-0000-0000000000a1\"\ntenant_id = \"contoso.onmicrosoft.com\"\napp_password = \"s3cret-pw\"";

    #[test]
    fn a_minimal_table_loads_with_microsofts_endpoints() {
        let s = load(BASE).unwrap();
        let t = teams(&s);
        assert_eq!(
            t.token_endpoint(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(t.openid_metadata_url, super::OPENID_METADATA_URL);
        assert_eq!(t.max_message_length, super::MAX_TEXT_CHARS);
        assert_eq!(t.send_interval_ms, None, "Teams' own windows");
        assert!(t.result_cards);
        assert!(!format!("{t:?}").contains("s3cret-pw"), "Debug hides it");
        let s = load(&format!("{BASE}\ntoken_url = \"http://127.0.0.1:9/t\"")).unwrap();
        assert_eq!(teams(&s).token_endpoint(), "http://127.0.0.1:9/t");
    }

    #[test]
    fn the_password_comes_from_exactly_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        let table = format!(
            "app_id = \"a\"\ntenant_id = \"t\"\napp_password_file = \"{}\"",
            path.display()
        );
        let s = load(&table).unwrap();
        assert_eq!(
            teams(&s).app_password.as_ref().unwrap().expose_secret(),
            "from-file"
        );
        let e = load(&format!("{table}\napp_password = \"x\"")).unwrap_err();
        assert!(keys(&e).contains(&"chat[0].app_password".into()), "{e}");
        let e = load("app_id = \"a\"\ntenant_id = \"t\"").unwrap_err();
        assert!(keys(&e).contains(&"chat[0].app_password".into()), "{e}");
    }

    #[test]
    fn bad_values_are_named_by_key() {
        let e = load("app_id = \"\"\ntenant_id = \"a/b\"\napp_password = \"p\"\ntoken_url = \"ftp://x\"\nopenid_metadata_url = \"nope\"\nmax_message_length = 99999\ncheck_interval_secs = 0").unwrap_err();
        let k = keys(&e);
        for key in [
            "app_id",
            "tenant_id",
            "token_url",
            "openid_metadata_url",
            "max_message_length",
            "check_interval_secs",
        ] {
            assert!(k.contains(&format!("chat[0].{key}")), "{key}: {e}");
        }
        let e = load(&format!("{BASE}\napp_secret = \"x\"")).unwrap_err();
        assert!(keys(&e).contains(&"chat[0]".into()), "{e}");
    }
}
