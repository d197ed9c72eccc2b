//! `backend = "irc"` settings.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Keys renamed to the name they have on every platform, as `(old, canonical)`: the old
/// name still loads (a deprecation note from `check-config`).
pub const RENAMED_KEYS: &[(&str, &str)] = &[
    ("queue_lines", "queue_size"),
    ("flood_interval_ms", "send_interval_ms"),
    ("reconnect_backoff_initial_ms", "reconnect_initial_ms"),
    ("reconnect_backoff_max_ms", "reconnect_max_ms"),
];

/// `backend = "irc"`: one connection to one IRC server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcSettings {
    /// Server host name or address.
    pub server: String,
    /// Server port; 6697 with TLS, 6667 without, when not given.
    #[serde(default)]
    pub port: Option<u16>,
    /// Connect with TLS (certificates checked against the web PKI roots or `tls_ca_file`).
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of extra CA certificates for TLS.
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// The bot's nick; on a collision `_` is appended and the registration retried.
    pub nick: String,
    /// The user name sent in `USER` (the nick when not given).
    #[serde(default)]
    pub username: Option<String>,
    /// The real name sent in `USER`.
    #[serde(default = "default_realname")]
    pub realname: String,
    /// Server password (`PASS`), if the server requires one.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// SASL PLAIN account; with `sasl_password`, authenticates before registration.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SASL PLAIN password.
    #[serde(default)]
    pub sasl_password: Option<SecretString>,
    /// Channels to join (and rejoin after a kick or reconnect), e.g. `["#ops"]`.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Nicks whose messages are never treated as commands (other bots, services).
    #[serde(default)]
    pub ignore_nicks: Vec<String>,
    /// Lines sent at once before flood control paces them.
    #[serde(default = "default_flood_burst")]
    pub flood_burst: u32,
    /// `send_interval_ms`: least gap between two lines once the burst is used, in
    /// milliseconds (old name `flood_interval_ms`).
    #[serde(
        rename = "send_interval_ms",
        alias = "flood_interval_ms",
        default = "default_flood_interval_ms"
    )]
    pub send_interval_ms: u64,
    /// `queue_size`: lines kept while disconnected; the oldest are dropped (and counted)
    /// beyond it (old name `queue_lines`).
    #[serde(
        rename = "queue_size",
        alias = "queue_lines",
        default = "crate::backends::defaults::queue_size"
    )]
    pub queue_size: usize,
    /// Whether a line counts as sent only once the server answers a `PING` written after
    /// it (a line written into a dying link is then sent again, not lost). Off for a server
    /// that does not answer a client's `PING`: a line then counts as sent once written.
    #[serde(default = "default_confirm_lines")]
    pub confirm_lines: bool,
    /// Seconds of silence from the server before a PING; twice that closes the connection.
    #[serde(default = "default_ping_after_secs")]
    pub ping_after_secs: u64,
    /// On a server that sends a channel's recent messages again at a join, with their
    /// times (`server-time`; InspIRCd's `chanhistory`), a new link runs what was said since
    /// the connection last heard the channel if said at most this many seconds ago (0: any
    /// age); older ones, and everything heard before, are not run again.
    #[serde(default = "crate::backends::connection::position::max_command_age_secs")]
    pub max_command_age_secs: u64,
    /// Seconds allowed for the TCP (and TLS) connection to open.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// `reconnect_initial_ms`: shortest reconnect delay in milliseconds (the `[supervisor]`
    /// value when not given; old name `reconnect_backoff_initial_ms`).
    #[serde(
        rename = "reconnect_initial_ms",
        alias = "reconnect_backoff_initial_ms",
        default
    )]
    pub reconnect_initial_ms: Option<u64>,
    /// `reconnect_max_ms`: longest reconnect delay in milliseconds (the `[supervisor]` value
    /// when not given; old name `reconnect_backoff_max_ms`).
    #[serde(
        rename = "reconnect_max_ms",
        alias = "reconnect_backoff_max_ms",
        default
    )]
    pub reconnect_max_ms: Option<u64>,
}

impl IrcSettings {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 6697 } else { 6667 })
    }

    /// Time allowed to connect.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs.max(1))
    }

    /// Problems with the settings, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.server.trim().is_empty() {
            out.push(("server", "is required".to_owned()));
        }
        if self.nick.is_empty() || !self.nick.chars().all(valid_nick_char) {
            out.push(("nick", format!("`{}` is not a valid IRC nick", self.nick)));
        }
        for ch in &self.channels {
            if !ch.starts_with(['#', '&', '+', '!'])
                || ch.len() < 2
                || ch.contains([' ', ',', '\x07', '\r', '\n', '\0'])
            {
                out.push(("channels", format!("`{ch}` is not a channel name")));
            }
        }
        if self.sasl_username.is_some() != self.sasl_password.is_some() {
            out.push((
                "sasl_username",
                "SASL needs both `sasl_username` and `sasl_password`".to_owned(),
            ));
        }
        if self.flood_burst == 0 {
            out.push(("flood_burst", "must be at least 1".to_owned()));
        }
        if self.queue_size == 0 {
            out.push(("queue_size", "must be at least 1".to_owned()));
        }
        out
    }
}

fn valid_nick_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-[]\\`^{}|_".contains(c)
}

fn default_realname() -> String {
    "stormbridge".into()
}
fn default_flood_burst() -> u32 {
    4
}
fn default_flood_interval_ms() -> u64 {
    500
}
fn default_confirm_lines() -> bool {
    true
}
fn default_ping_after_secs() -> u64 {
    120
}
fn default_connect_timeout_secs() -> u64 {
    10
}

crate::platform_settings!(IrcSettings, "irc");

/// Reads a `[[chat]]` table of `backend = "irc"`.
pub fn parse(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let settings: IrcSettings = table.deserialize()?;
    table
        .check(settings.problems())
        .then(|| std::sync::Arc::new(settings) as _)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use crate::config::{ConfigError, Settings};

    fn load_from_str(text: &str) -> Result<Settings, ConfigError> {
        crate::config::load_from_str(text, &crate::backends::registry::REGISTRY)
    }

    fn config(chat: &str) -> String {
        format!(
            "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n\
             [[chat]]\nname = \"irc\"\nbackend = \"irc\"\n{chat}"
        )
    }

    #[test]
    fn an_irc_connection_loads_with_defaults() {
        let s = load_from_str(&config(
            "server = \"irc.example.net\"\nnick = \"bot\"\nchannels = [\"#ops\"]\ntls = true\npassword = \"pw\"",
        ))
        .expect("valid");
        let Some(irc) = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::IrcSettings>()
        else {
            panic!("not irc")
        };
        assert_eq!(s.chat[0].backend.kind(), "irc");
        assert_eq!(irc.port(), 6697);
        assert_eq!(irc.flood_burst, 4);
        assert_eq!(irc.send_interval_ms, 500);
        assert!(irc.confirm_lines, "lines are confirmed unless switched off");
        assert_eq!(irc.channels, ["#ops"]);
        assert_eq!(irc.password.as_ref().map(|p| p.expose_secret()), Some("pw"));
        assert!(!format!("{irc:?}").contains("\"pw\""), "password in Debug");
    }

    #[test]
    fn bad_irc_settings_are_named() {
        let err = load_from_str(&config(
            "server = \"irc.example.net\"\nnick = \"bad nick\"\nchannels = [\"ops\"]\nsasl_username = \"u\"",
        ))
        .expect_err("invalid")
        .to_string();
        for key in ["chat[0].nick", "chat[0].channels", "chat[0].sasl_username"] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
        let err = load_from_str(&config("server = \"x\"\nnick = \"b\"\nnope = 1"))
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
