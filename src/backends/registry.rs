//! The platform registry: every chat platform this build knows, one line each in
//! [`PLATFORMS`]. A platform's folder gives a [`PlatformSpec`]: how to read its `[[chat]]`
//! table (for configuration, which knows no platform: it asks [`REGISTRY`] through
//! `config::Platforms`), how to mention a user, and how to start a connection.

use std::sync::Arc;

use actix::Recipient;

use super::{
    buttons::{ButtonPressed, RegisterButtons},
    connection::Wiring,
    console::ConsoleIo,
    webhook::HttpRoute,
};
use crate::{
    actors::messages::Deliver,
    config::{ChatTable, PlatformSettings, Platforms, Rename},
    domain::mention::MentionFn,
};

/// What a platform's folder tells the registry.
pub struct PlatformSpec {
    /// The `backend = "…"` name.
    pub kind: &'static str,
    /// Keys renamed to their common name, `(old, canonical)`: the old name still loads.
    pub renamed_keys: &'static [Rename],
    /// At most one connection of this kind (the console: one standard input).
    pub only_one: bool,
    /// How a message in a shared room mentions a user.
    pub mention: MentionFn,
    /// Reads and checks a `[[chat]]` table; `None` when it has problems (reported in it).
    pub parse: fn(&mut ChatTable) -> Option<Arc<dyn PlatformSettings>>,
    /// Starts a connection with settings `parse` made.
    pub start: fn(&dyn PlatformSettings, Start) -> Result<Started, SetupError>,
}

/// The platforms, one line each.
pub const PLATFORMS: &[PlatformSpec] = &[
    super::console::SPEC,
    super::discord::SPEC,
    super::irc::SPEC,
    super::matrix::SPEC,
    super::mattermost::SPEC,
    super::rocketchat::SPEC,
    super::slack::SPEC,
    super::teams::SPEC,
    super::webex::SPEC,
    super::xmpp::SPEC,
];

/// What starting a connection is given.
pub struct Start {
    /// The connection's name, dispatcher, status entry and default reconnect policy.
    pub wiring: Wiring,
    /// The bot's name (`[bot] name`).
    pub bot_name: String,
    /// The console's input and output (for a console connection).
    pub console: Option<ConsoleIo>,
    /// Where button presses go (for platforms with buttons).
    pub presses: Recipient<ButtonPressed>,
    /// Where a platform with buttons registers for them.
    pub buttons: Recipient<RegisterButtons>,
    /// The key a platform that signs its own buttons (Mattermost) signs them with:
    /// derived from the store key and the connection's name, so buttons offered before a
    /// restart still work after it; `None` without a persistent store (a random key then).
    pub button_key: Option<ring::hmac::Key>,
}

/// A started connection.
pub struct Started {
    /// Where messages for it go.
    pub deliver: Recipient<Deliver>,
    /// The paths the bridge's HTTP server serves for it (Slack's Events API, Mattermost's
    /// button presses, …).
    pub routes: Vec<HttpRoute>,
}

impl Started {
    /// A connection with no HTTP route.
    pub fn plain<P: super::connection::Platform>(
        addr: actix::Addr<super::connection::Connection<P>>,
    ) -> Self {
        Self {
            deliver: addr.recipient(),
            routes: Vec::new(),
        }
    }
}

/// Why a connection could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

impl SetupError {
    /// From any platform's setup error.
    pub fn new(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// The settings a platform's `start` was given, as its own type.
pub fn settings<T: 'static>(s: &dyn PlatformSettings) -> Result<&T, SetupError> {
    s.as_any().downcast_ref::<T>().ok_or_else(|| {
        SetupError(format!(
            "settings of `{}` given to another platform",
            s.kind()
        ))
    })
}

/// The registry of [`PLATFORMS`], as configuration sees it.
pub struct Registry;

/// The registry.
pub static REGISTRY: Registry = Registry;

impl Registry {
    /// The spec of platform `kind`.
    pub fn spec(&self, kind: &str) -> Option<&'static PlatformSpec> {
        PLATFORMS.iter().find(|p| p.kind == kind)
    }

    /// Starts the connection `settings` describe.
    pub fn start(
        &self,
        settings: &dyn PlatformSettings,
        start: Start,
    ) -> Result<Started, SetupError> {
        let spec = self
            .spec(settings.kind())
            .ok_or_else(|| SetupError(format!("no platform `{}`", settings.kind())))?;
        (spec.start)(settings, start)
    }
}

impl Platforms for Registry {
    fn kinds(&self) -> Vec<&'static str> {
        PLATFORMS.iter().map(|p| p.kind).collect()
    }

    fn renamed_keys(&self, kind: &str) -> &'static [Rename] {
        self.spec(kind).map_or(&[], |p| p.renamed_keys)
    }

    fn only_one(&self, kind: &str) -> bool {
        self.spec(kind).is_some_and(|p| p.only_one)
    }

    fn parse(
        &self,
        kind: &str,
        table: &mut ChatTable,
    ) -> Option<Option<Arc<dyn PlatformSettings>>> {
        self.spec(kind).map(|p| (p.parse)(table))
    }
}

/// Makes a platform's settings type [`PlatformSettings`] of kind `$kind`.
#[macro_export]
macro_rules! platform_settings {
    ($settings:ty, $kind:literal) => {
        impl $crate::config::PlatformSettings for $settings {
            fn kind(&self) -> &'static str {
                $kind
            }

            fn as_any(&self) -> &dyn ::std::any::Any {
                self
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, Deprecation, Settings};

    const MINIMAL: &str = r#"
        [st2]
        api_url = "https://st2.example.com/api/v1"
        [st2.credentials]
        api_key = "k"
        [[chat]]
        name = "console"
        backend = "console"
    "#;

    fn load_text(text: &str, _env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        crate::config::load_with_env(
            &crate::config::ConfigSource::Text(text.into()),
            Default::default(),
            &REGISTRY,
        )
    }

    fn keys(e: &ConfigError) -> Vec<&str> {
        e.problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn every_rename_targets_a_canonical_name() {
        const CANONICAL: &[&str] = &[
            "queue_size",
            "send_interval_ms",
            "max_message_length",
            "max_message_bytes",
            "reconnect_initial_ms",
            "reconnect_max_ms",
        ];
        for p in PLATFORMS {
            for (old, new) in p.renamed_keys {
                assert!(CANONICAL.contains(new), "{}: {old} -> {new}", p.kind);
                assert!(!CANONICAL.contains(old), "{}: {old} -> {new}", p.kind);
            }
        }
    }

    #[test]
    fn kinds_are_unique_and_an_unknown_one_is_named_with_the_list() {
        let mut kinds = REGISTRY.kinds();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), PLATFORMS.len());
        let text = MINIMAL.replace("backend = \"console\"", "backend = \"telegraph\"");
        let e = load_text(&text, &[]).unwrap_err();
        assert_eq!(keys(&e), ["chat[0].backend"]);
        assert!(e.to_string().contains("console, discord, irc"), "{e}");
    }

    /// Each platform's renamed keys: the old name loads the same value as the new one and
    /// yields a deprecation naming both; the new name yields none; both at once is an error.
    #[test]
    fn renamed_chat_keys_load_under_old_names_with_a_deprecation() {
        type Read = fn(&dyn PlatformSettings) -> u64;
        let irc: &str = "server = \"irc.example.net\"\nnick = \"bot\"";
        let xmpp: &str = "jid = \"bot@example.com\"\npassword = \"pw\"";
        let slack: &str = "app_token = \"xapp-1\"\nbot_token = \"xoxb-1\"";
        let cases: &[(&str, &str, &str, &str, Read)] = &[
            ("irc", irc, "queue_lines", "queue_size", |b| {
                settings::<crate::backends::irc::IrcSettings>(b)
                    .unwrap()
                    .queue_size as u64
            }),
            ("irc", irc, "flood_interval_ms", "send_interval_ms", |b| {
                settings::<crate::backends::irc::IrcSettings>(b)
                    .unwrap()
                    .send_interval_ms
            }),
            (
                "irc",
                irc,
                "reconnect_backoff_initial_ms",
                "reconnect_initial_ms",
                |b| {
                    settings::<crate::backends::irc::IrcSettings>(b)
                        .unwrap()
                        .reconnect_initial_ms
                        .unwrap()
                },
            ),
            (
                "irc",
                irc,
                "reconnect_backoff_max_ms",
                "reconnect_max_ms",
                |b| {
                    settings::<crate::backends::irc::IrcSettings>(b)
                        .unwrap()
                        .reconnect_max_ms
                        .unwrap()
                },
            ),
            ("xmpp", xmpp, "queue_messages", "queue_size", |b| {
                settings::<crate::backends::xmpp::XmppSettings>(b)
                    .unwrap()
                    .queue_size as u64
            }),
            ("xmpp", xmpp, "flood_interval_ms", "send_interval_ms", |b| {
                settings::<crate::backends::xmpp::XmppSettings>(b)
                    .unwrap()
                    .send_interval_ms
            }),
            (
                "xmpp",
                xmpp,
                "reconnect_backoff_initial_ms",
                "reconnect_initial_ms",
                |b| {
                    settings::<crate::backends::xmpp::XmppSettings>(b)
                        .unwrap()
                        .reconnect_initial_ms
                        .unwrap()
                },
            ),
            (
                "xmpp",
                xmpp,
                "reconnect_backoff_max_ms",
                "reconnect_max_ms",
                |b| {
                    settings::<crate::backends::xmpp::XmppSettings>(b)
                        .unwrap()
                        .reconnect_max_ms
                        .unwrap()
                },
            ),
            ("slack", slack, "queue_capacity", "queue_size", |b| {
                settings::<crate::backends::slack::SlackSettings>(b)
                    .unwrap()
                    .queue_size as u64
            }),
        ];
        let head = MINIMAL.replace("name = \"console\"\n        backend = \"console\"", "");
        let text = |backend: &str, base: &str, extra: &str| {
            format!("{head}name = \"conn\"\nbackend = \"{backend}\"\n{base}\n{extra}\n")
        };
        for &(backend, base, old, new, read) in cases {
            let s = load_text(&text(backend, base, &format!("{old} = 4321")), &[])
                .unwrap_or_else(|e| panic!("{backend} {old}: {e}"));
            assert_eq!(read(s.chat[0].backend.as_ref()), 4321, "{backend} {old}");
            assert_eq!(
                s.deprecations,
                vec![Deprecation {
                    connection: "conn".into(),
                    old,
                    new
                }],
                "{backend} {old}"
            );
            let note = s.deprecations[0].to_string();
            assert!(note.contains(&format!("`{old}`")) && note.contains(&format!("`{new}`")));

            let s = load_text(&text(backend, base, &format!("{new} = 4321")), &[]).unwrap();
            assert_eq!(read(s.chat[0].backend.as_ref()), 4321, "{backend} {new}");
            assert!(s.deprecations.is_empty(), "{backend} {new}");

            let both = format!("{old} = 1\n{new} = 2");
            let e = load_text(&text(backend, base, &both), &[]).unwrap_err();
            assert_eq!(keys(&e), vec![format!("chat[0].{old}").as_str()], "{e}");
            let reason = &e.problems[0].reason;
            assert!(reason.contains(&format!("`{new}`")), "{reason}");
        }
    }

    /// A limit in bytes keeps its own name: `max_message_length` is characters everywhere.
    #[test]
    fn byte_limits_are_not_renamed_to_the_character_limit() {
        let head = MINIMAL.replace("name = \"console\"\n        backend = \"console\"", "");
        let xmpp = format!(
            "{head}name = \"x\"\nbackend = \"xmpp\"\njid = \"b@example.com\"\npassword = \"p\"\nmax_message_length = 500\n"
        );
        let e = load_text(&xmpp, &[]).unwrap_err();
        assert!(e.to_string().contains("max_message_bytes"), "{e}");
    }
}
