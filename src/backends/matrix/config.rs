//! `backend = "matrix"` settings.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Matrix refuses events over 65536 bytes (the whole event, JSON-encoded). A body of this
/// size leaves room for its HTML rendering and the event's envelope.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16_000;

/// Which invitations the bot accepts by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AutoJoin {
    /// Never; the bot is only in `rooms` and rooms it was joined to by other means.
    None,
    /// Invitations to direct chats (`is_direct`), so people can message the bot (the default).
    #[default]
    Direct,
    /// Every invitation.
    All,
}

/// The `msgtype` of the bot's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MsgType {
    /// `m.notice`: the Matrix convention for bots, which other bots do not answer (the default).
    #[default]
    Notice,
    /// `m.text`, like a person's message.
    Text,
}

impl MsgType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgType::Notice => "m.notice",
            MsgType::Text => "m.text",
        }
    }
}

/// `backend = "matrix"`: one account on one homeserver (client-server API v3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixSettings {
    /// The homeserver's client API base URL, e.g. `https://matrix.example.org`.
    pub homeserver: String,
    /// The bot's user: `@stormbridge:example.org`, or the local part with `password`.
    #[serde(default)]
    pub user: Option<String>,
    /// The account password: the bot logs in at every start and reuses its device.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// A file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An access token instead of a password.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// A file whose first line is the access token.
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// The device id to log in as (password login); by default the one the server gave at the
    /// first login, kept in `state_file` (and in the store, for the process that takes the
    /// connection over).
    #[serde(default)]
    pub device_id: Option<String>,
    /// Rooms to join at every start and rejoin after a kick: ids (`!abc:example.org`) or
    /// aliases (`#ops:example.org`). Empty means: every room the bot is in.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Which invitations to accept: `none`, `direct` (default) or `all`.
    #[serde(default)]
    pub auto_join: AutoJoin,
    /// Where the sync position (and the device id) is kept, so that a restart carries on
    /// after the last message handled instead of replaying or skipping any. Without it, each
    /// start begins at "now".
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Commands older than this many seconds when the bot first sees them (sent while the
    /// bridge was down) are not run. 0 runs them whatever their age.
    #[serde(default = "default_max_command_age")]
    pub max_command_age_secs: u64,
    /// Answer a command that is not in a thread in a new thread under it; by default
    /// answers go to the room (a command said in a thread is always answered in it).
    #[serde(default)]
    pub reply_in_thread: bool,
    /// `notice` (default) or `text`.
    #[serde(default)]
    pub msgtype: MsgType,
    /// Users (`@bot:example.org`) whose messages are never commands: other bots that send
    /// `m.text`.
    #[serde(default)]
    pub ignore_users: Vec<String>,
    /// Largest message body in bytes; longer replies are split into several messages.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Messages kept while disconnected or rate-limited; the oldest are dropped (and
    /// counted) beyond this.
    #[serde(default = "crate::backends::defaults::queue_size")]
    pub queue_size: usize,
    /// Minimum gap between two messages, in milliseconds.
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
    /// How long the server may hold a `/sync` request open waiting for events, in seconds.
    #[serde(default = "default_sync_timeout")]
    pub sync_timeout_secs: u64,
    /// Verify the homeserver's TLS certificate.
    #[serde(default = "crate::backends::defaults::enabled")]
    pub verify_cert: bool,
    /// A PEM file of extra CA certificates for the homeserver.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
}

impl MatrixSettings {
    /// The homeserver base URL without a trailing slash, when it is http(s).
    pub fn base_url(&self) -> Option<String> {
        let url = url::Url::parse(self.homeserver.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return None;
        }
        Some(url.as_str().trim_end_matches('/').to_owned())
    }

    /// Whether the bot logs in with a password (else it uses an access token).
    pub fn uses_password(&self) -> bool {
        self.password.is_some() || self.password_file.is_some()
    }

    /// Problems with the settings, as `(key, message)`. Secret files are read by the
    /// config loader, which then clears the `*_file` keys.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.base_url().is_none() {
            out.push((
                "homeserver",
                format!("`{}` must be an http:// or https:// URL", self.homeserver),
            ));
        }
        let password = self.password.is_some() || self.password_file.is_some();
        let token = self.access_token.is_some() || self.access_token_file.is_some();
        if self.password.is_some() && self.password_file.is_some() {
            out.push((
                "password_file",
                "give `password` or `password_file`, not both".into(),
            ));
        }
        if self.access_token.is_some() && self.access_token_file.is_some() {
            out.push((
                "access_token_file",
                "give `access_token` or `access_token_file`, not both".into(),
            ));
        }
        match (password, token) {
            (false, false) => out.push((
                "password",
                "`password`, `password_file`, `access_token` or `access_token_file` is required"
                    .into(),
            )),
            (true, true) => out.push((
                "access_token",
                "give a password or an access token, not both".into(),
            )),
            (true, false) => match self.user.as_deref().map(str::trim) {
                None | Some("") => out.push(("user", "is required with a password".into())),
                Some(u) if u.starts_with('@') && parse_user_id(u).is_none() => out.push((
                    "user",
                    format!("`{u}` is not a Matrix user id like @bot:example.org"),
                )),
                Some(_) => {}
            },
            (false, true) => {
                if let Some(u) = self.user.as_deref().filter(|u| parse_user_id(u).is_none()) {
                    out.push((
                        "user",
                        format!("`{u}` is not a Matrix user id like @bot:example.org"),
                    ));
                }
            }
        }
        for room in &self.rooms {
            if !is_room_ref(room) {
                out.push((
                    "rooms",
                    format!(
                        "`{room}` is not a room id (!abc:example.org) or alias (#ops:example.org)"
                    ),
                ));
            }
        }
        for user in &self.ignore_users {
            if parse_user_id(user).is_none() {
                out.push((
                    "ignore_users",
                    format!("`{user}` is not a Matrix user id like @bot:example.org"),
                ));
            }
        }
        if self.max_message_bytes < 256 || self.max_message_bytes > 60_000 {
            out.push((
                "max_message_bytes",
                "must be between 256 and 60000 (Matrix events are limited to 64 KiB)".into(),
            ));
        }
        if self.queue_size == 0 {
            out.push(("queue_size", "must be at least 1".into()));
        }
        if self.sync_timeout_secs == 0 || self.sync_timeout_secs > 300 {
            out.push(("sync_timeout_secs", "must be between 1 and 300".into()));
        }
        out
    }
}

/// `(localpart, server)` of `@localpart:server`.
pub fn parse_user_id(id: &str) -> Option<(&str, &str)> {
    let (local, server) = id.strip_prefix('@')?.split_once(':')?;
    (!local.is_empty() && !server.is_empty() && !id.contains(char::is_whitespace))
        .then_some((local, server))
}

/// Whether `s` is a room id (`!opaque:server`, or just `!opaque` since room version 12) or
/// an alias (`#local:server`).
pub fn is_room_ref(s: &str) -> bool {
    if s.is_empty() || s.contains(char::is_whitespace) {
        return false;
    }
    if let Some(id) = s.strip_prefix('!') {
        return !id.is_empty() && !id.starts_with(':');
    }
    matches!(s.strip_prefix('#').and_then(|a| a.split_once(':')), Some((l, server)) if !l.is_empty() && !server.is_empty())
}

fn default_max_command_age() -> u64 {
    900
}
fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
fn default_sync_timeout() -> u64 {
    30
}

crate::platform_settings!(MatrixSettings, "matrix");

/// Reads a `[[chat]]` table of `backend = "matrix"`: the settings' own checks, then the
/// secret files are read.
pub fn parse(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let mut s: MatrixSettings = table.deserialize()?;
    if !table.check(s.problems()) {
        return None;
    }
    let path = |p: Option<std::path::PathBuf>| p.map(|p| p.display().to_string());
    let password_file = path(s.password_file.take()).unwrap_or_default();
    let token_file = path(s.access_token_file.take()).unwrap_or_default();
    s.password = table.secret("password", s.password.take(), &password_file);
    s.access_token = table.secret("access_token", s.access_token.take(), &token_file);
    (s.password.is_some() || s.access_token.is_some()).then(|| std::sync::Arc::new(s) as _)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::{ConfigError, Settings};

    fn load_from_str(text: &str) -> Result<Settings, ConfigError> {
        crate::config::load_from_str(text, &crate::backends::registry::REGISTRY)
    }

    fn load(chat: &str) -> Result<Settings, ConfigError> {
        load_from_str(&format!(
            "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n[[chat]]\nname = \"mx\"\nbackend = \"matrix\"\n{chat}\n"
        ))
    }

    fn keys(e: &ConfigError) -> Vec<String> {
        e.problems.iter().map(|p| p.key.clone()).collect()
    }

    fn matrix(s: &Settings) -> &MatrixSettings {
        s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<MatrixSettings>()
            .expect("matrix settings")
    }

    #[test]
    fn a_password_table_loads_with_defaults_and_hides_the_password() {
        let s = load("homeserver = \"https://matrix.example.org/\"\nuser = \"@bot:example.org\"\npassword = \"pa55-secret\"\nrooms = [\"#ops:example.org\", \"!abc:example.org\"]").unwrap();
        let m = matrix(&s);
        assert_eq!(s.chat[0].backend.kind(), "matrix");
        assert_eq!(m.base_url().as_deref(), Some("https://matrix.example.org"));
        assert_eq!(m.auto_join, AutoJoin::Direct);
        assert_eq!(m.msgtype, MsgType::Notice);
        assert_eq!(m.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert!(m.uses_password());
        assert!(!format!("{m:?}").contains("pa55-secret"));
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mx.token");
        std::fs::write(&path, "tok-from-file\n").unwrap();
        let s = load(&format!(
            "homeserver = \"http://127.0.0.1:8008\"\naccess_token_file = \"{}\"",
            path.display()
        ))
        .unwrap();
        let m = matrix(&s);
        assert_eq!(
            m.access_token.as_ref().map(|t| t.expose_secret()),
            Some("tok-from-file")
        );
        assert!(!m.uses_password());
        let e =
            load("homeserver = \"http://x\"\naccess_token_file = \"/nonexistent/t\"").unwrap_err();
        assert!(
            keys(&e).contains(&"chat[0].access_token_file".to_owned()),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let e = load("homeserver = \"matrix.example.org\"\nrooms = [\"ops\"]\nignore_users = [\"bob\"]\nmax_message_bytes = 10\nqueue_size = 0").unwrap_err();
        let k = keys(&e);
        for key in [
            "chat[0].homeserver",
            "chat[0].password",
            "chat[0].rooms",
            "chat[0].ignore_users",
            "chat[0].max_message_bytes",
            "chat[0].queue_size",
        ] {
            assert!(k.contains(&key.to_owned()), "{key} missing from {e}");
        }
        let e = load("homeserver = \"https://m\"\npassword = \"p\"").unwrap_err();
        assert!(keys(&e).contains(&"chat[0].user".to_owned()), "{e}");
        let e = load(
            "homeserver = \"https://m\"\nuser = \"bot\"\npassword = \"p\"\naccess_token = \"t\"",
        )
        .unwrap_err();
        assert!(keys(&e).contains(&"chat[0].access_token".to_owned()), "{e}");
        let e = load("homeserver = \"https://m\"\naccess_token = \"t\"\nromos = []").unwrap_err();
        assert!(keys(&e).contains(&"chat[0]".to_owned()), "{e}");
    }

    #[test]
    fn ids_and_aliases() {
        assert_eq!(
            parse_user_id("@bot:example.org"),
            Some(("bot", "example.org"))
        );
        assert_eq!(
            parse_user_id("@bot:localhost:8448"),
            Some(("bot", "localhost:8448"))
        );
        assert_eq!(parse_user_id("bot"), None);
        assert_eq!(parse_user_id("@:x"), None);
        assert!(is_room_ref("!abc:example.org"));
        assert!(is_room_ref("#ops:example.org"));
        assert!(!is_room_ref("ops"));
        assert!(!is_room_ref("#ops"));
        assert!(!is_room_ref("!:x"));
        assert!(
            is_room_ref("!OBx_ud-Z_UubjvHLw_hz09hRExguY9pLjAm3G62wYZs"),
            "room v12 ids have no server"
        );
        assert!(!is_room_ref("!"));
    }
}
