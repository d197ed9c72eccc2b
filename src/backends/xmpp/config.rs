//! `backend = "xmpp"` settings.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// STARTTLS is required; a server that does not offer it is an error (the default).
    #[default]
    Starttls,
    /// No TLS at all. Only accepted for a loopback `server` (a local test server).
    Plaintext,
}

/// Keys renamed to the name they have on every platform, as `(old, canonical)`: the old
/// name still loads (a deprecation note from `check-config`).
pub const RENAMED_KEYS: &[(&str, &str)] = &[
    ("queue_messages", "queue_size"),
    ("flood_interval_ms", "send_interval_ms"),
    ("reconnect_backoff_initial_ms", "reconnect_initial_ms"),
    ("reconnect_backoff_max_ms", "reconnect_max_ms"),
];

/// `backend = "xmpp"`: one client connection (one JID).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmppSettings {
    /// The bot's JID, `bot@example.com` (a resource, if given, is replaced by `resource`).
    pub jid: String,
    /// The account password.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// A file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `host:port` to connect to; the JID's domain on port 5222 when not given.
    #[serde(default)]
    pub server: Option<String>,
    /// `starttls` (default) or `plaintext` (loopback servers only).
    #[serde(default)]
    pub tls: TlsMode,
    /// A PEM file of extra CA certificates for STARTTLS.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// The resource to bind.
    #[serde(default = "default_resource")]
    pub resource: String,
    /// MUC rooms to join (and rejoin after a kick or reconnect), e.g. `ops@conference.example.com`.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// The nick in rooms (the JID's local part when not given).
    #[serde(default)]
    pub nick: Option<String>,
    /// Bare JIDs or room nicks whose messages are never treated as commands (other bots).
    #[serde(default)]
    pub ignore_jids: Vec<String>,
    /// Largest message body in bytes; longer replies are split into several messages.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Messages sent at once before pacing.
    #[serde(default = "default_burst")]
    pub flood_burst: u32,
    /// `send_interval_ms`: least gap between two messages once the burst is used, in
    /// milliseconds (old name `flood_interval_ms`).
    #[serde(
        rename = "send_interval_ms",
        alias = "flood_interval_ms",
        default = "default_interval"
    )]
    pub send_interval_ms: u64,
    /// `queue_size`: messages kept while disconnected; the oldest are dropped (and counted)
    /// beyond it (old name `queue_messages`).
    #[serde(
        rename = "queue_size",
        alias = "queue_messages",
        default = "crate::backends::defaults::queue_size"
    )]
    pub queue_size: usize,
    /// How long ago a direct message kept by the server, or one in a room's history said while no link listened may have been said and still run
    /// when the next link catches up, in seconds (0: any age).
    #[serde(default = "crate::backends::connection::position::max_command_age_secs")]
    pub max_command_age_secs: u64,
    /// Seconds between self-pings of each room, and of silence before the server is pinged.
    #[serde(default = "default_ping_interval")]
    pub ping_interval_secs: u64,
    /// Seconds a ping may go unanswered: a server ping, before the connection is treated as
    /// dead; a room's self-ping, before the room is rejoined.
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout_secs: u64,
    /// Seconds allowed to connect and log in.
    #[serde(default = "default_connect_timeout")]
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

/// A JID split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jid {
    /// Local part (may be empty for a server JID).
    pub local: String,
    /// Domain part.
    pub domain: String,
    /// Resource (may be empty).
    pub resource: String,
}

impl Jid {
    /// Splits `local@domain/resource`; `None` when there is no domain.
    pub fn parse(s: &str) -> Option<Self> {
        let (bare, resource) = match s.split_once('/') {
            Some((b, r)) => (b, r),
            None => (s, ""),
        };
        let (local, domain) = match bare.split_once('@') {
            Some(("", _)) => return None,
            Some((l, d)) => (l, d),
            None => ("", bare),
        };
        if domain.is_empty() || domain.contains(['@', ' ']) || local.contains(' ') {
            return None;
        }
        Some(Self {
            local: local.to_owned(),
            domain: domain.to_ascii_lowercase(),
            resource: resource.to_owned(),
        })
    }

    /// `local@domain` (or `domain`), lower-cased as XMPP compares them.
    pub fn bare(&self) -> String {
        if self.local.is_empty() {
            self.domain.clone()
        } else {
            format!("{}@{}", self.local.to_lowercase(), self.domain)
        }
    }
}

impl XmppSettings {
    /// The bot's JID.
    pub fn parsed_jid(&self) -> Option<Jid> {
        Jid::parse(&self.jid).filter(|j| !j.local.is_empty())
    }

    /// The nick used in rooms.
    pub fn room_nick(&self) -> String {
        self.nick.clone().unwrap_or_else(|| {
            self.parsed_jid()
                .map(|j| j.local)
                .unwrap_or_else(|| "stormbridge".into())
        })
    }

    /// `(host, port)` to connect to.
    pub fn endpoint(&self) -> Option<(String, u16)> {
        match &self.server {
            Some(s) => {
                let (host, port) = s.rsplit_once(':')?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Some((host.to_owned(), port.parse().ok()?))
            }
            None => self.parsed_jid().map(|j| (j.domain, 5222)),
        }
    }

    /// Time allowed to connect and log in.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs.max(1))
    }

    /// Problems with the settings, as `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.parsed_jid().is_none() {
            out.push((
                "jid",
                format!("`{}` is not a JID like bot@example.com", self.jid),
            ));
        }
        match (&self.password, &self.password_file) {
            (None, None) => out.push((
                "password",
                "`password` or `password_file` is required".into(),
            )),
            (Some(_), Some(_)) => out.push((
                "password_file",
                "give `password` or `password_file`, not both".into(),
            )),
            _ => {}
        }
        match self.endpoint() {
            None => out.push(("server", "must be host:port".into())),
            Some((host, _)) => {
                if self.tls == TlsMode::Plaintext && !is_loopback(&host) {
                    out.push((
                        "tls",
                        "`plaintext` is only allowed for a loopback server (127.0.0.1, ::1, localhost)".into(),
                    ));
                }
            }
        }
        for room in &self.rooms {
            if Jid::parse(room).is_none_or(|j| j.local.is_empty() || !j.resource.is_empty()) {
                out.push((
                    "rooms",
                    format!("`{room}` is not a room JID like ops@conference.example.com"),
                ));
            }
        }
        if self.room_nick().trim().is_empty() || self.room_nick().contains('/') {
            out.push(("nick", "is not a valid room nick".into()));
        }
        if self.max_message_bytes < 64 {
            out.push(("max_message_bytes", "must be at least 64".into()));
        }
        if self.queue_size == 0 {
            out.push(("queue_size", "must be at least 1".into()));
        }
        if self.flood_burst == 0 {
            out.push(("flood_burst", "must be at least 1".into()));
        }
        out
    }
}

/// Whether `host` is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn default_resource() -> String {
    "stormbridge".into()
}
fn default_max_message_bytes() -> usize {
    8000
}
/// XMPP servers shape each client connection's bytes themselves (ejabberd's `c2s_shaper`,
/// prosody's `limits`): the bridge's own pace only evens out large bursts.
fn default_burst() -> u32 {
    50
}
fn default_interval() -> u64 {
    20
}
fn default_ping_interval() -> u64 {
    60
}
fn default_ping_timeout() -> u64 {
    30
}
fn default_connect_timeout() -> u64 {
    20
}

crate::platform_settings!(XmppSettings, "xmpp");

/// Reads a `[[chat]]` table of `backend = "xmpp"`.
pub fn parse(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let settings: XmppSettings = table.deserialize()?;
    table
        .check(settings.problems())
        .then(|| std::sync::Arc::new(settings) as _)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, Settings};

    fn load_from_str(text: &str) -> Result<Settings, ConfigError> {
        crate::config::load_from_str(text, &crate::backends::registry::REGISTRY)
    }

    fn config(chat: &str) -> String {
        format!(
            "[st2]\napi_url = \"https://st2.example.com/api/v1\"\n[st2.credentials]\napi_key = \"k\"\n\
             [[chat]]\nname = \"x\"\nbackend = \"xmpp\"\n{chat}"
        )
    }

    #[test]
    fn an_xmpp_connection_loads_with_defaults() {
        let s = load_from_str(&config(
            "jid = \"bot@example.com\"\npassword = \"pw\"\nrooms = [\"ops@conference.example.com\"]",
        ))
        .expect("valid");
        let Some(x) = s.chat[0]
            .backend
            .as_any()
            .downcast_ref::<super::XmppSettings>()
        else {
            panic!("not xmpp")
        };
        assert_eq!(s.chat[0].backend.kind(), "xmpp");
        assert_eq!(x.tls, TlsMode::Starttls);
        assert_eq!(x.endpoint(), Some(("example.com".into(), 5222)));
        assert_eq!(x.room_nick(), "bot");
        assert!(!format!("{x:?}").contains("\"pw\""), "password in Debug");
    }

    #[test]
    fn plaintext_is_refused_for_a_remote_server_and_bad_settings_are_named() {
        let err = load_from_str(&config(
            "jid = \"nojid\"\ntls = \"plaintext\"\nserver = \"xmpp.example.com:5222\"\nrooms = [\"ops\"]",
        ))
        .expect_err("invalid")
        .to_string();
        for key in [
            "chat[0].jid",
            "chat[0].password",
            "chat[0].tls",
            "chat[0].rooms",
        ] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
        load_from_str(&config(
            "jid = \"b@localhost\"\npassword = \"p\"\ntls = \"plaintext\"\nserver = \"127.0.0.1:5222\"",
        ))
        .expect("plaintext on loopback");
    }

    #[test]
    fn jids_split_and_compare_bare() {
        let j = Jid::parse("Alice@Example.com/phone").expect("jid");
        assert_eq!(j.bare(), "alice@example.com");
        assert_eq!(j.resource, "phone");
        assert_eq!(
            Jid::parse("conference.example.com")
                .map(|j| j.bare())
                .as_deref(),
            Some("conference.example.com")
        );
        assert_eq!(Jid::parse("@x"), None);
        assert_eq!(Jid::parse("a@"), None);
    }
}
