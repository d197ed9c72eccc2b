//! Reading the layers and turning them into raw, unvalidated sections.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;

use super::{
    platform::Platforms,
    validate::{validate, ConfigError, Problem},
    Settings, DEFAULT_TOML,
};

/// Where the configuration file comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file on disk.
    File(PathBuf),
    /// TOML text (the demo's embedded file, tests).
    Text(String),
}

/// Finds the configuration file: `--config`, then `STORMBRIDGE_CONFIG`, then `./stormbridge.toml`.
pub fn resolve_config_path(cli: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    if let Some(path) = cli {
        return Ok(path);
    }
    if let Some(path) = std::env::var_os("STORMBRIDGE_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let local = PathBuf::from("stormbridge.toml");
    if local.exists() {
        return Ok(local);
    }
    Err(ConfigError::single(
        "config",
        "no configuration file: pass --config PATH, set STORMBRIDGE_CONFIG, or create ./stormbridge.toml \
         (run `stormbridge demo` to try the bridge without one)",
    ))
}

/// Loads and validates the file at `path`, with `STORMBRIDGE__*` variables from the process
/// environment; `[[chat]]` tables are read by `platforms`.
pub fn load(path: &Path, platforms: &dyn Platforms) -> Result<Settings, ConfigError> {
    load_with_env(
        &ConfigSource::File(path.to_owned()),
        std::env::vars().collect(),
        platforms,
    )
}

/// Loads and validates TOML text, with `STORMBRIDGE__*` variables from the process
/// environment; `[[chat]]` tables are read by `platforms`.
pub fn load_from_str(toml: &str, platforms: &dyn Platforms) -> Result<Settings, ConfigError> {
    load_with_env(
        &ConfigSource::Text(toml.to_owned()),
        std::env::vars().collect(),
        platforms,
    )
}

/// Loads and validates with an explicit environment (tests must not touch the process's).
pub fn load_with_env(
    source: &ConfigSource,
    env: HashMap<String, String>,
    platforms: &dyn Platforms,
) -> Result<Settings, ConfigError> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    builder = match source {
        ConfigSource::File(path) => {
            if !path.exists() {
                return Err(ConfigError::single(
                    "config",
                    format!("configuration file {} does not exist", path.display()),
                ));
            }
            builder.add_source(File::from(path.as_path()).format(FileFormat::Toml))
        }
        ConfigSource::Text(text) => builder.add_source(File::from_str(text, FileFormat::Toml)),
    };
    let env: HashMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("STORMBRIDGE__"))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix("STORMBRIDGE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    let config = builder
        .build()
        .map_err(|e| ConfigError::single("config", e.to_string()))?;
    let raw = RawConfig::read(&config);
    validate(raw, platforms)
}

/// Every section as read, or the reason it could not be read. Sections are read one by one
/// so that a mistake in one does not hide mistakes in the others.
pub(super) struct RawConfig {
    pub st2: Result<RawSt2, Problem>,
    pub bot: Result<RawBot, Problem>,
    pub auth: Result<RawAuth, Problem>,
    pub http: Result<RawHttp, Problem>,
    pub store: Result<RawStore, Problem>,
    pub log: Result<RawLog, Problem>,
    pub supervisor: Result<RawSupervisor, Problem>,
    pub results: Result<RawResults, Problem>,
    pub jobs: Result<RawJobs, Problem>,
    pub replies: Result<crate::render::replies::RepliesConfig, Problem>,
    pub commands: Result<Vec<crate::local::LocalCommandConfig>, Problem>,
    pub chat: Result<Vec<serde_json::Value>, Problem>,
    pub access: Result<crate::acl::AccessConfig, Problem>,
    pub confirm: Result<crate::acl::ConfirmConfig, Problem>,
    pub redact: Result<crate::redact::RedactConfig, Problem>,
    pub unknown_sections: Vec<String>,
}

const SECTIONS: &[&str] = &[
    "st2",
    "bot",
    "auth",
    "http",
    "store",
    "log",
    "supervisor",
    "results",
    "jobs",
    "replies",
    "commands",
    "chat",
    "access",
    "confirm",
    "redact",
];

impl RawConfig {
    fn read(config: &Config) -> Self {
        fn section<T: serde::de::DeserializeOwned>(
            config: &Config,
            key: &str,
        ) -> Result<T, Problem> {
            config
                .get::<T>(key)
                .map_err(|e| Problem::new(key, clean_serde_message(&e.to_string())))
        }
        let unknown_sections = config
            .clone()
            .try_deserialize::<HashMap<String, serde_json::Value>>()
            .map(|top| {
                let mut unknown: Vec<String> = top
                    .into_keys()
                    .filter(|k| !SECTIONS.contains(&k.as_str()))
                    .collect();
                unknown.sort();
                unknown
            })
            .unwrap_or_default();
        let chat = match config.get::<serde_json::Value>("chat") {
            Ok(serde_json::Value::Array(items)) => Ok(items),
            Ok(_) => Err(Problem::new(
                "chat",
                "must be an array of tables: write each connection as [[chat]]",
            )),
            Err(config::ConfigError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(Problem::new("chat", e.to_string())),
        };
        Self {
            st2: section(config, "st2"),
            bot: section(config, "bot"),
            auth: section(config, "auth"),
            http: section(config, "http"),
            store: section(config, "store"),
            log: section(config, "log"),
            supervisor: section(config, "supervisor"),
            results: section(config, "results"),
            jobs: section(config, "jobs"),
            replies: match config.get::<crate::render::replies::RepliesConfig>("replies") {
                Err(config::ConfigError::NotFound(_)) => Ok(Default::default()),
                other => {
                    other.map_err(|e| Problem::new("replies", clean_serde_message(&e.to_string())))
                }
            },
            commands: match config.get::<Vec<crate::local::LocalCommandConfig>>("commands") {
                Err(config::ConfigError::NotFound(_)) => Ok(Vec::new()),
                other => {
                    other.map_err(|e| Problem::new("commands", clean_serde_message(&e.to_string())))
                }
            },
            chat,
            access: match config.get::<crate::acl::AccessConfig>("access") {
                Err(config::ConfigError::NotFound(_)) => Ok(crate::acl::AccessConfig::default()),
                other => {
                    other.map_err(|e| Problem::new("access", clean_serde_message(&e.to_string())))
                }
            },
            confirm: match config.get::<crate::acl::ConfirmConfig>("confirm") {
                Err(config::ConfigError::NotFound(_)) => Ok(crate::acl::ConfirmConfig::default()),
                other => {
                    other.map_err(|e| Problem::new("confirm", clean_serde_message(&e.to_string())))
                }
            },
            redact: match config.get::<crate::redact::RedactConfig>("redact") {
                Err(config::ConfigError::NotFound(_)) => Ok(crate::redact::RedactConfig::default()),
                other => {
                    other.map_err(|e| Problem::new("redact", clean_serde_message(&e.to_string())))
                }
            },
            unknown_sections,
        }
    }
}

fn clean_serde_message(message: &str) -> String {
    message.replace("\n", " ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSt2 {
    pub api_url: String,
    pub auth_url: String,
    pub stream_url: String,
    pub web_url: String,
    pub verify_cert: bool,
    pub ca_file: String,
    pub route_key: String,
    pub extra_routes: Vec<String>,
    pub connect_timeout: u64,
    pub request_timeout: u64,
    pub alias_refresh_interval: u64,
    pub alias_list_max_bytes: usize,
    pub stream_heartbeat: u64,
    pub stream_idle_refresh: u64,
    /// The old name of `stream_idle_refresh` (silence meant a dead stream then).
    #[serde(default)]
    pub stream_read_timeout: Option<u64>,
    pub stream_keepalive: u64,
    pub token_ttl: u64,
    pub token_renew_before: u64,
    #[serde(default)]
    pub credentials: RawCredentials,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub password_file: String,
    #[serde(default)]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub token_file: String,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    #[serde(default)]
    pub api_key_file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBot {
    pub prefix: String,
    pub plugin_prefix: String,
    pub name: String,
    pub help_page_size: usize,
    pub help_max_page_size: usize,
    pub templates_dir: String,
    pub st2_user: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub mode: String,
    pub public_url: String,
    pub session_ttl: u64,
    pub user_token_ttl: u64,
    pub link_ttl: u64,
    pub renew_warning: u64,
    pub login_attempts_per_address: u32,
    pub login_attempt_window: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub listen: String,
    pub tls_cert: String,
    pub tls_key: String,
    pub client_ca: String,
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub post_token: Option<SecretString>,
    #[serde(default)]
    pub post_token_file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub backend: String,
    pub path: String,
    pub key_file: String,
    pub key_env: String,
    pub url: String,
    pub username: String,
    pub password_file: String,
    pub password_env: String,
    pub tls_ca_file: String,
    pub prefix: String,
    pub lease_ttl: u64,
    pub advertise_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub level: String,
    pub format: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResults {
    pub max_pending: usize,
    pub pending_ttl: u64,
    pub grace: u64,
    pub first_check: u64,
    pub max_check_interval: u64,
    pub retention: u64,
    pub mention_user: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJobs {
    pub retention_days: u64,
    pub tail_interval_ms: u64,
    pub tail_limit: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSupervisor {
    pub restart_backoff_initial_ms: u64,
    pub restart_backoff_max_ms: u64,
}
