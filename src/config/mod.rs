//! Configuration: one TOML file, overridable from the environment, validated as a whole.
//!
//! Layers, lowest first: `config/default.toml` (embedded; it is also the documentation of
//! every key), the file given with `--config`, then `STORMBRIDGE__SECTION__KEY` variables.
//! Secrets may come from `*_file` keys instead. [`load`] returns either settings that
//! passed every check or the full list of problems, each naming its key.

mod load;
mod platform;
mod renamed;
mod validate;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;
use serde::Deserialize;

pub use load::{load, load_from_str, load_with_env, resolve_config_path, ConfigSource};
pub use platform::{ChatTable, PlatformSettings, Platforms};
pub use renamed::{Deprecation, Rename};
pub use validate::{ConfigError, Problem};

/// The embedded defaults, also shipped as `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[st2]`: where StackStorm is and how to talk to it.
    pub st2: St2Settings,
    /// `[bot]`: how the bot is addressed and how it answers.
    pub bot: BotSettings,
    /// `[auth]`: whose StackStorm identity commands run as.
    pub auth: AuthSettings,
    /// `[http]`: the health/metrics server.
    pub http: HttpSettings,
    /// `[store]`: where state that must survive a restart lives.
    pub store: StoreSettings,
    /// `[log]`: logging.
    pub log: LogSettings,
    /// `[supervisor]`: restart policy.
    pub supervisor: SupervisorSettings,
    /// `[results]`: how results owed to chat are tracked until delivered.
    pub results: ResultsSettings,
    /// `[jobs]`: how long jobs are kept, how `!st2tail` follows one.
    pub jobs: JobsSettings,
    /// `[[commands]]`: programs the bridge runs itself (none unless configured).
    pub local: LocalSettings,
    /// `[replies]`: the team's own words and styles for some outcomes, compiled.
    pub replies: std::sync::Arc<crate::render::replies::Replies>,
    /// `[[chat]]`: the chat connections, in file order.
    pub chat: Vec<ChatSettings>,
    /// `[access]`: who may run what, where (compiled).
    pub access: std::sync::Arc<crate::acl::AclPolicy>,
    /// `[redact]`: what is masked in every message the bridge sends, compiled.
    pub redact: std::sync::Arc<crate::redact::Redactor>,
    /// `[[chat]]` keys written under an old name (they still work; `check-config` warns).
    pub deprecations: Vec<Deprecation>,
}

/// `[st2]`.
#[derive(Debug, Clone)]
pub struct St2Settings {
    /// API base, e.g. `https://st2.example.com/api/v1`.
    pub api_url: String,
    /// Auth base, e.g. `https://st2.example.com/auth/v1`.
    pub auth_url: String,
    /// Stream base, e.g. `https://st2.example.com/stream/v1`.
    pub stream_url: String,
    /// st2web base for execution links, when set.
    pub web_url: Option<String>,
    /// Verify StackStorm's TLS certificate.
    pub verify_cert: bool,
    /// Extra CA bundle (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Route key sent as `notification_route`; results arrive as `st2.announcement__<route_key>`.
    pub route_key: String,
    /// More routes whose announcements are delivered (e.g. `chatops` for `chatops.post_message`).
    pub extra_routes: Vec<String>,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for one API request, body included.
    pub request_timeout: Duration,
    /// Period of the alias refresh; `None` when disabled.
    pub alias_refresh_interval: Option<Duration>,
    /// The largest alias list read as one answer; a larger one is read page by page
    /// (`alias_list_max_bytes`).
    pub alias_list_max_bytes: usize,
    /// The server's stream heartbeat period (st2's `stream.heartbeat`).
    pub stream_heartbeat: Duration,
    /// After this much complete silence a second stream is opened and replaces the first
    /// (make-before-break); `None`: never. Silence alone is normal on a busy StackStorm.
    pub stream_idle_refresh: Option<Duration>,
    /// TCP keepalive idle time on the stream's connection; `None`: off.
    pub stream_keepalive: Option<Duration>,
    /// TTL asked for the bridge's own token (username/password only).
    pub token_ttl: Option<u64>,
    /// Renew the bridge's token this long before it expires.
    pub token_renew_before: Duration,
    /// The bridge's own credential.
    pub credentials: BridgeCredential,
}

impl St2Settings {
    /// Every route whose announcements the bridge listens to: `route_key`, then
    /// `extra_routes`, without repeats.
    pub fn routes(&self) -> Vec<String> {
        let mut routes = vec![self.route_key.clone()];
        for r in &self.extra_routes {
            if !routes.contains(r) {
                routes.push(r.clone());
            }
        }
        routes
    }

    /// Route settings under which StackStorm's stock chatops rules can never deliver a
    /// result to the bridge, in plain words (shown by `check-config` and logged at start).
    ///
    /// The chatops pack (`contrib/chatops/rules`) has two rules: `notify` matches route
    /// `hubot` and posts with `post_message`'s default route `chatops`; `notify-errbot`
    /// matches `errbot` and posts on `errbot`. Any other route needs a rule of its own
    /// (`deploy/st2/notify_stormbridge.yaml`). Results still arrive without one — the bridge
    /// fetches finished executions from the API — but only after `[results] grace`.
    pub fn route_warnings(&self) -> Vec<String> {
        let routes = self.routes();
        let mut warnings = Vec::new();
        if self.route_key == "hubot" && !routes.iter().any(|r| r == "chatops") {
            warnings.push(
                "st2.route_key is \"hubot\": StackStorm's chatops.notify rule announces those results on the \"chatops\" route, which the bridge does not listen to; add \"chatops\" to st2.extra_routes".to_owned(),
            );
        }
        if self.route_key == "chatops" {
            warnings.push(
                "st2.route_key is \"chatops\": no stock StackStorm rule posts results for the \"chatops\" notification route (chatops.notify matches \"hubot\", chatops.notify-errbot \"errbot\"); use one of those, or install a rule like deploy/st2/notify_stormbridge.yaml for your route".to_owned(),
            );
        }
        for route in &self.extra_routes {
            if route == "hubot" {
                warnings.push(
                    "st2.extra_routes has \"hubot\": StackStorm never announces on that route (chatops.notify announces hubot's results on \"chatops\")".to_owned(),
                );
            }
        }
        warnings
    }
}

/// The bridge's own StackStorm credential: exactly one kind may be configured.
#[derive(Clone)]
pub enum BridgeCredential {
    /// Log in with username and password and keep the token renewed.
    Password {
        /// st2 username.
        username: String,
        /// st2 password.
        password: SecretString,
    },
    /// A static token (sent as `X-Auth-Token`); cannot be renewed.
    Token(SecretString),
    /// An API key (sent as `St2-Api-Key`); never expires.
    ApiKey(SecretString),
}

impl std::fmt::Debug for BridgeCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            Self::Token(_) => f.write_str("Token([redacted])"),
            Self::ApiKey(_) => f.write_str("ApiKey([redacted])"),
        }
    }
}

/// `[bot]`.
#[derive(Debug, Clone)]
pub struct BotSettings {
    /// Bot prefix (`!`).
    pub prefix: String,
    /// Plugin prefix (`st2`).
    pub plugin_prefix: String,
    /// The bot's name, used for mentions on text backends.
    pub name: String,
    /// Help entries per page.
    pub help_page_size: usize,
    /// Upper bound for `--limit` in help.
    pub help_max_page_size: usize,
    /// Directory of `.hbs` files overriding the embedded message templates.
    pub templates_dir: Option<PathBuf>,
    /// What StackStorm is told as the command's `user`.
    pub st2_user: St2UserField,
}

/// What the bridge sends StackStorm as `user` with each command (the execution's
/// `api_user`, and the `user` the chatops pack mentions and whispers to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum St2UserField {
    /// The platform's stable account id (Slack `U…`, a bare JID, a Matrix id): unique and
    /// unchanging, what access decisions and audit trails need.
    Id,
    /// The display name, for packs written for hubot that expect a name.
    Name,
}

/// `[auth]`.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Whose StackStorm identity commands run as.
    pub mode: AuthMode,
    /// Public base URL of this bridge (for login links); required in client-side mode.
    pub public_url: Option<String>,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// TTL asked for users' st2 tokens.
    pub user_token_ttl: u64,
    /// How long a login link works.
    pub link_ttl: Duration,
    /// Warn users this long before their StackStorm token expires.
    pub renew_warning: Duration,
    /// Login attempts allowed from one client address per window.
    pub login_attempts_per_address: u32,
    /// The window for `login_attempts_per_address`.
    pub login_attempt_window: Duration,
}

/// Whose st2 identity runs commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every command runs with the bridge's own credential; st2 records the chat user as `api_user`.
    Standalone,
    /// Each chat user runs commands with their own st2 credential.
    Clientside,
}

/// `[http]`.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address of the HTTP server.
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate chain and key (PEM), when set.
    pub tls: Option<HttpTls>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (login rate limits, logs).
    pub trusted_proxies: crate::http::forwarded::TrustedProxies,
    /// The bearer token of `POST /hubot/st2` and `/chatops/message` (`post_token` or
    /// `post_token_file`); `None`: those endpoints are off (404).
    pub post_token: Option<SecretString>,
}

/// TLS for the bridge's own HTTP server.
#[derive(Debug, Clone)]
pub struct HttpTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
}

/// `[store]`.
#[derive(Debug, Clone)]
pub enum StoreSettings {
    /// Sessions in memory: lost on restart.
    Memory,
    /// Sessions in an SQLite file, secrets sealed with the key.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Where the encryption key was found (for messages).
        key_source: String,
        /// The key.
        key: std::sync::Arc<crate::store::crypto::StoreKey>,
    },
    /// Everything in Redis, shared by every bridge that uses the same server and prefix.
    Redis {
        /// Where and how to reach it (the password read from its file or variable).
        options: crate::store::RedisOptions,
        /// How long a chat connection's lease lasts (`lease_ttl`).
        lease_ttl: Duration,
        /// Where the other bridge processes reach this one's HTTP server
        /// (`advertise_url`): a webhook or trigger call that reaches a process not running
        /// its connection is passed on to the one that does. `None`: answered 503 instead.
        advertise_url: Option<String>,
        /// Where the encryption key was found (for messages).
        key_source: String,
        /// The key.
        key: std::sync::Arc<crate::store::crypto::StoreKey>,
    },
}

impl StoreSettings {
    /// What the store keeps and where, for `check-config` and the start-up log: one line
    /// per kind of state.
    pub fn describe(&self) -> Vec<String> {
        const KEPT: &str = "chat users' sessions (credentials sealed), results owed to chat, \
                            commands waiting for a confirmation or approval, jobs, personal \
                            aliases and trigger tokens";
        match self {
            Self::Memory => vec![format!(
                "store: memory — {KEPT} live in this process and are lost when it stops"
            )],
            Self::Sqlite { path, .. } => vec![format!(
                "store: sqlite at {} — {KEPT} survive a restart; one bridge process per file",
                path.display()
            )],
            Self::Redis {
                options,
                lease_ttl,
                advertise_url,
                ..
            } => vec![
                format!(
                    "store: redis at {} (keys under {:?}) — {KEPT} survive a restart",
                    options.url, options.prefix
                ),
                format!(
                    "store: bridge processes sharing it run each chat connection one at a \
                     time (a lease of {} s): another takes a connection over within about {} s \
                     of its holder stopping",
                    lease_ttl.as_secs(),
                    (lease_ttl.as_secs() * 4).div_ceil(3)
                ),
                "store: a login in progress (the few seconds StackStorm takes to check the \
                 credentials) is held by the bridge process that serves it"
                    .to_owned(),
                match advertise_url {
                    Some(url) => format!(
                        "store: webhooks and trigger calls for a connection another process \
                         runs are passed on to it; the others reach this one at {url}; a \
                         webhook no process can take at the moment (a takeover) is held in \
                         Redis for the next holder"
                    ),
                    None => "store: webhooks for a connection another process runs are held \
                             in Redis for it (handled within about a second), trigger calls \
                             answered 503 with Retry-After: 1 (set advertise_url to pass both \
                             on at once)"
                        .to_owned(),
                },
            ],
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A tracing `EnvFilter` directive, e.g. `info` or `stormbridge=debug`.
    pub level: String,
    /// `pretty` or `json`.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[supervisor]`.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    /// First restart delay.
    pub restart_backoff_initial: Duration,
    /// Longest restart delay.
    pub restart_backoff_max: Duration,
}

/// `[results]`: the ledger of results owed to chat (see `domain::result_ledger`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsSettings {
    /// Most commands remembered at once, awaiting or recently given their result.
    pub max_pending: usize,
    /// A result not delivered within this long is given up, with a logged reason.
    pub pending_ttl: Duration,
    /// How long after an execution finished its announcement may still arrive before the
    /// result is fetched from StackStorm's API instead.
    pub grace: Duration,
    /// First look at a running execution through the API, counted from the command.
    pub first_check: Duration,
    /// Longest time between two looks at a running execution.
    pub max_check_interval: Duration,
    /// How long a delivered result's id is remembered, to drop a late duplicate.
    pub retention: Duration,
    /// Whether a message posted in a shared room mentions the person it is for (the user
    /// who ran the command), as hubot-stackstorm did.
    pub mention_user: bool,
}

/// `[jobs]`: the record of every command (see `actors::job_keeper`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsSettings {
    /// Finished jobs older than this are purged.
    pub retention: Duration,
    /// How often `!st2tail` looks for new output.
    pub tail_interval: Duration,
    /// How long one `!st2tail` follows a job at most.
    pub tail_limit: Duration,
}

/// `[[commands]]`: local commands (see [`crate::local`]).
#[derive(Debug, Clone, Default)]
pub struct LocalSettings {
    /// The validated commands; empty: local commands are off.
    pub commands: std::sync::Arc<crate::local::LocalCommands>,
    /// Environment variables that hold the bridge's secrets (`store.key_env`,
    /// `store.password_env`), kept from the commands' environment (with every
    /// `STORMBRIDGE_…` variable).
    pub secret_env: Vec<String>,
}

/// One `[[chat]]` connection.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Unique connection name; appears in ids as `<name>:<id>`.
    pub name: String,
    /// The platform's settings (read by the platform: see [`Platforms`]).
    pub backend: std::sync::Arc<dyn PlatformSettings>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::{load::load_with_env, *};

    const MINIMAL: &str = r#"
        [st2]
        api_url = "https://st2.example.com/api/v1"
        [st2.credentials]
        api_key = "k"
        [[chat]]
        name = "console"
        backend = "console"
    "#;

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        load_with_env(
            &ConfigSource::Text(text.into()),
            env,
            &crate::backends::registry::REGISTRY,
        )
    }

    fn keys(e: &ConfigError) -> Vec<&str> {
        e.problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn a_redis_store_is_checked_in_full() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("store.key");
        std::fs::write(&key_file, "11".repeat(32)).unwrap();
        let password_file = dir.path().join("redis.pw");
        std::fs::write(&password_file, "s3cret-pw\n").unwrap();
        let good = MINIMAL.replace(
            "[st2]",
            &format!(
                "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\n\
                 username = \"bridge\"\npassword_file = {:?}\nkey_file = {:?}\n[st2]",
                password_file.to_str().unwrap(),
                key_file.to_str().unwrap()
            ),
        );
        let s = load_text(&good, &[]).unwrap();
        let StoreSettings::Redis { options, .. } = &s.store else {
            panic!("{:?}", s.store);
        };
        assert_eq!(options.url, "redis://127.0.0.1:6379/0");
        assert_eq!(options.username.as_deref(), Some("bridge"));
        assert_eq!(options.prefix, "stormbridge:");
        let password = options
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned());
        assert_eq!(
            password.as_deref(),
            Some("s3cret-pw"),
            "read without its newline"
        );
        let described = s.store.describe().join("\n");
        assert!(described.contains("sessions"), "{described}");
        assert!(
            described.contains("redis at redis://127.0.0.1:6379/0"),
            "{described}"
        );
        assert!(!format!("{:?}", s.store).contains("s3cret-pw"));

        let bad = MINIMAL.replace(
            "[st2]",
            "[store]\nbackend = \"redis\"\nurl = \"redis://:s3cret-pw@127.0.0.1:6379\"\n\
             password_file = \"/nonexistent/pw\"\npassword_env = \"SB_REDIS_PW\"\n\
             tls_ca_file = \"/nonexistent/ca.pem\"\nprefix = \"\"\n[st2]",
        );
        let e = load_text(&bad, &[]).unwrap_err();
        let found = keys(&e);
        for key in [
            "store.url",
            "store.password_file",
            "store.tls_ca_file",
            "store.prefix",
            "store.key_file",
        ] {
            assert!(found.contains(&key), "{key} missing from {e}");
        }
        assert!(!e.to_string().contains("s3cret-pw"), "{e}");
        assert!(e.to_string().contains("password_file"), "{e}");

        for (url, says) in [
            ("", "needs `url`"),
            ("http://127.0.0.1:6379", "not a Redis URL scheme"),
            ("not a url", "not a URL"),
        ] {
            let text = MINIMAL.replace(
                "[st2]",
                &format!("[store]\nbackend = \"redis\"\nurl = {url:?}\n[st2]"),
            );
            let e = load_text(&text, &[]).unwrap_err();
            let url_problem = e.problems.iter().find(|p| p.key == "store.url");
            assert!(
                url_problem.is_some_and(|p| p.reason.contains(says)),
                "{url}: {e}"
            );
        }
    }

    #[test]
    fn an_advertised_address_is_an_http_url_of_a_redis_store_and_each_mistake_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("store.key");
        std::fs::write(&key_file, "11".repeat(32)).unwrap();
        let redis = |advertise: &str| {
            format!(
                "{MINIMAL}\n[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\n\
                 key_file = {:?}\nadvertise_url = {advertise:?}\n",
                key_file.to_str().unwrap()
            )
        };
        let s = load_text(&redis("http://10.0.0.5:3141/"), &[]).unwrap();
        let StoreSettings::Redis { advertise_url, .. } = &s.store else {
            panic!("a redis store")
        };
        assert_eq!(advertise_url.as_deref(), Some("http://10.0.0.5:3141"));
        assert!(s
            .store
            .describe()
            .iter()
            .any(|l| l.contains("passed on") && l.contains("http://10.0.0.5:3141")));
        for (bad, says) in [
            ("10.0.0.5:3141", "not a URL"),
            ("ftp://10.0.0.5/", "not http"),
            ("http://user:pw@10.0.0.5/", "credentials"),
            ("http://10.0.0.5/?a=b", "query"),
            ("http://10.0.0.5/#top", "fragment"),
        ] {
            let e = load_text(&redis(bad), &[]).unwrap_err();
            assert!(
                e.problems
                    .iter()
                    .any(|p| p.key == "store.advertise_url" && p.reason.contains(says)),
                "{bad}: {e}"
            );
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
        let e = load_text(
            &format!("{MINIMAL}\n[store]\nadvertise_url = \"http://10.0.0.5/\"\n"),
            &[],
        )
        .unwrap_err();
        assert!(
            e.problems.iter().any(|p| p.key == "store.advertise_url"),
            "{e}"
        );
    }

    #[test]
    fn durations_too_long_to_compute_are_refused_not_overflowed() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("store.key");
        std::fs::write(&key_file, "11".repeat(32)).unwrap();
        for (table, key) in [
            (
                format!("[jobs]\nretention_days = {}", i64::MAX),
                "jobs.retention_days",
            ),
            (
                format!(
                    "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\n\
                     key_file = {:?}\nlease_ttl = {}",
                    key_file.to_str().unwrap(),
                    i64::MAX
                ),
                "store.lease_ttl",
            ),
            (
                format!(
                    "[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\n\
                     key_file = {:?}\nlease_ttl = 2",
                    key_file.to_str().unwrap()
                ),
                "store.lease_ttl",
            ),
        ] {
            let e =
                load_text(&MINIMAL.replace("[st2]", &format!("{table}\n[st2]")), &[]).unwrap_err();
            assert_eq!(keys(&e), vec![key], "{e}");
        }
    }

    #[test]
    fn minimal_file_gets_documented_defaults_and_derived_urls() {
        let s = load_text(MINIMAL, &[]).unwrap();
        assert_eq!(s.st2.auth_url, "https://st2.example.com/auth/v1");
        assert_eq!(s.st2.stream_url, "https://st2.example.com/stream/v1");
        assert_eq!(s.st2.route_key, "stormbridge");
        assert_eq!(s.bot.prefix, "!");
        assert_eq!(s.bot.plugin_prefix, "st2");
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:3141");
        assert_eq!(s.st2.stream_idle_refresh, Some(Duration::from_secs(150)));
        assert_eq!(s.st2.routes(), vec!["stormbridge", "chatops"]);
        assert!(s.st2.route_warnings().is_empty());
        assert_eq!(s.results.max_pending, 10_000);
        assert!(matches!(s.st2.credentials, BridgeCredential::ApiKey(_)));
        assert_eq!(s.chat[0].backend.kind(), "console");
    }

    #[test]
    fn route_settings_that_can_never_receive_a_result_are_warned_about() {
        let hubot = MINIMAL.replace("[st2]", "[st2]\nroute_key = \"hubot\"\nextra_routes = []");
        let s = load_text(&hubot, &[]).unwrap();
        assert_eq!(s.st2.routes(), vec!["hubot"]);
        assert!(s.st2.route_warnings()[0].contains("add \"chatops\""));
        let fine = MINIMAL.replace("[st2]", "[st2]\nroute_key = \"hubot\"");
        assert!(load_text(&fine, &[])
            .unwrap()
            .st2
            .route_warnings()
            .is_empty());
        let chatops = MINIMAL.replace("[st2]", "[st2]\nroute_key = \"chatops\"");
        let s = load_text(&chatops, &[]).unwrap();
        assert_eq!(s.st2.routes(), vec!["chatops"]);
        assert_eq!(s.st2.route_warnings().len(), 1);
    }

    #[test]
    fn the_old_read_timeout_key_still_sets_the_idle_refresh() {
        let text = MINIMAL.replace("[st2]", "[st2]\nstream_read_timeout = 90");
        let s = load_text(&text, &[]).unwrap();
        assert_eq!(s.st2.stream_idle_refresh, Some(Duration::from_secs(90)));
        let off = MINIMAL.replace("[st2]", "[st2]\nstream_idle_refresh = 0");
        assert_eq!(load_text(&off, &[]).unwrap().st2.stream_idle_refresh, None);
    }

    #[test]
    fn direct_ports_are_derived_too() {
        let text = MINIMAL.replace("https://st2.example.com/api/v1", "http://st2:9101/v1");
        let s = load_text(&text, &[]).unwrap();
        assert_eq!(s.st2.auth_url, "http://st2:9100/v1");
        assert_eq!(s.st2.stream_url, "http://st2:9102/v1");
    }

    #[test]
    fn environment_overrides_the_file() {
        let s = load_text(
            MINIMAL,
            &[
                ("STORMBRIDGE__ST2__ROUTE_KEY", "errbot"),
                ("STORMBRIDGE__BOT__HELP_PAGE_SIZE", "7"),
                ("STORMBRIDGE__HTTP__LISTEN", "0.0.0.0:8080"),
            ],
        )
        .unwrap();
        assert_eq!(s.st2.route_key, "errbot");
        assert_eq!(s.bot.help_page_size, 7);
        assert_eq!(s.http.listen.port(), 8080);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let text = r#"
            [st2]
            api_url = "not a url"
            stream_read_timeout = 10
            [st2.credentials]
            api_key = "k"
            token = "t"
            [http]
            listen = "localhost"
            [access]
            admins = ["nocolon"]
            [[chat]]
            name = "x"
            backend = "telegraph"
        "#;
        let e = load_text(text, &[]).unwrap_err();
        let k = keys(&e);
        for expected in [
            "st2.api_url",
            "st2.stream_read_timeout",
            "st2.credentials",
            "http.listen",
            "access.admins[0]",
            "chat[0].backend",
        ] {
            assert!(k.contains(&expected), "missing {expected} in {k:?}");
        }
        let text = e.to_string();
        assert!(text.contains("exactly one credential"), "{text}");
        assert!(text.contains("telegraph"));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks_and_each_bad_entry_is_named() {
        let s = load_text(MINIMAL, &[]).unwrap();
        assert!(s.http.trusted_proxies.is_empty(), "none trusted by default");
        let text = format!(
            "{MINIMAL}\n[http]\ntrusted_proxies = [\"10.0.0.5\", \"10.1.0.0/16\", \"fd00::/8\"]\n"
        );
        let proxies = load_text(&text, &[]).unwrap().http.trusted_proxies;
        assert!(proxies.contains("10.1.200.3".parse().unwrap()));
        assert!(proxies.contains("10.0.0.5".parse().unwrap()));
        assert!(!proxies.contains("10.0.0.6".parse().unwrap()));
        assert!(proxies.contains("fd00::1".parse().unwrap()));
        let text = format!(
            "{MINIMAL}\n[http]\ntrusted_proxies = [\"10.0.0.5\", \"proxy.internal\", \"10.1.0.1/16\", \"0.0.0.0/0\"]\n"
        );
        let e = load_text(&text, &[]).unwrap_err();
        assert_eq!(
            keys(&e),
            vec![
                "http.trusted_proxies[1]",
                "http.trusted_proxies[2]",
                "http.trusted_proxies[3]"
            ],
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains("proxy.internal"), "{text}");
        assert!(text.contains("10.1.0.0/16"), "{text}");
        assert!(text.contains("trusts every address"), "{text}");
        let text = format!("{MINIMAL}\n[http]\ntrusted_proxies = \"10.0.0.5\"\n");
        assert!(keys(&load_text(&text, &[]).unwrap_err()).contains(&"http"));
    }

    #[test]
    fn the_post_token_comes_from_one_place_is_checked_and_never_shown() {
        let s = load_text(MINIMAL, &[]).unwrap();
        assert!(
            s.http.post_token.is_none(),
            "the endpoints are off by default"
        );
        let token = "0123456789abcdef-post";
        let inline = format!("{MINIMAL}\n[http]\npost_token = \"{token}\"\n");
        let s = load_text(&inline, &[]).unwrap();
        assert_eq!(s.http.post_token.as_ref().unwrap().expose_secret(), token);
        assert!(!format!("{s:?}").contains(token));
        let from_env = load_text(MINIMAL, &[("STORMBRIDGE__HTTP__POST_TOKEN", token)]).unwrap();
        assert!(from_env.http.post_token.is_some());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("post_token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        let in_file = format!(
            "{MINIMAL}\n[http]\npost_token_file = \"{}\"\n",
            file.display()
        );
        let s = load_text(&in_file, &[]).unwrap();
        assert_eq!(s.http.post_token.as_ref().unwrap().expose_secret(), token);

        let both = format!(
            "{MINIMAL}\n[http]\npost_token = \"{token}\"\npost_token_file = \"{}\"\n",
            file.display()
        );
        let e = load_text(&both, &[]).unwrap_err();
        assert_eq!(keys(&e), vec!["http.post_token"], "{e}");
        assert!(e.to_string().contains("post_token_file"), "{e}");
        let unreadable = in_file.replace(&file.display().to_string(), "/nonexistent/token");
        let e = load_text(&unreadable, &[]).unwrap_err();
        assert_eq!(keys(&e), vec!["http.post_token_file"], "{e}");
        let short = format!("{MINIMAL}\n[http]\npost_token = \"short\"\n");
        let e = load_text(&short, &[]).unwrap_err();
        assert_eq!(keys(&e), vec!["http.post_token"], "{e}");
        assert!(!e.to_string().contains("short\""), "{e}");
        let spaced = format!("{MINIMAL}\n[http]\npost_token = \"{token} {token}\"\n");
        let e = load_text(&spaced, &[]).unwrap_err();
        assert_eq!(keys(&e), vec!["http.post_token"], "{e}");
        assert!(!e.to_string().contains(token), "{e}");
    }

    #[test]
    fn unknown_keys_and_sections_are_errors() {
        let text = format!("{MINIMAL}\n[st2x]\na = 1\n");
        let e = load_text(&text, &[]).unwrap_err();
        assert!(keys(&e).contains(&"st2x"));
        let text = MINIMAL.replace("[st2.credentials]", "api_urll = \"x\"\n[st2.credentials]");
        let e = load_text(&text, &[]).unwrap_err();
        assert!(e.to_string().contains("api_urll"), "{e}");
    }

    #[test]
    fn jobs_replies_and_local_commands_are_checked_with_their_keys() {
        let text = format!(
            "{MINIMAL}\n[jobs]\nretention_days = 0\n[replies.ack]\ncolor = \"red\"\nmessages = [\"{{{{#if}}\"]\n\
             [[commands]]\nname = \"help\"\nexecutable = \"/nonexistent/x\"\nhelp = \"h\"\n"
        );
        let e = load_text(&text, &[]).unwrap_err();
        let keys = keys(&e);
        for key in [
            "jobs.retention_days",
            "replies.ack.color",
            "replies.ack.messages[0]",
            "commands[0].name",
            "commands[0].executable",
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
        let s = load_text(MINIMAL, &[]).unwrap();
        assert_eq!(s.jobs.retention, Duration::from_secs(90 * 86_400));
        assert!(
            s.local.commands.is_empty(),
            "local commands are off by default"
        );
    }

    #[test]
    fn secrets_come_from_files_and_never_show_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "hunter2-from-file\n").unwrap();
        let text = format!(
            r#"
            [st2]
            api_url = "https://st2.example.com/api/v1"
            [st2.credentials]
            username = "bot"
            password_file = "{}"
            [[chat]]
            name = "c"
            backend = "console"
        "#,
            file.display()
        );
        let s = load_text(&text, &[]).unwrap();
        match &s.st2.credentials {
            BridgeCredential::Password { username, password } => {
                assert_eq!(username, "bot");
                assert_eq!(password.expose_secret(), "hunter2-from-file");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!format!("{s:?}").contains("hunter2"));
        let missing = text.replace(&file.display().to_string(), "/nonexistent/pw");
        let e = load_text(&missing, &[]).unwrap_err();
        assert!(keys(&e).contains(&"st2.credentials.password_file"));
    }

    #[test]
    fn no_credential_and_no_chat_are_explained() {
        let e = load_text("[st2]\napi_url = \"http://h/api/v1\"\n", &[]).unwrap_err();
        let k = keys(&e);
        assert!(k.contains(&"st2.credentials"));
        assert!(k.contains(&"chat"));
    }
}
