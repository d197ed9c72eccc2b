//! Cross-field checks. Every problem is collected, so one run of `check-config` shows them all.

use std::{fmt, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use crate::{
    acl::AclPolicy,
    http::forwarded::{IpNet, TrustedProxies},
};

use secrecy::{ExposeSecret, SecretString};

use super::platform::{ChatTable, Platforms};
use super::renamed::{canonicalize, Deprecation};
use super::{
    load::{RawConfig, RawCredentials, RawSt2},
    AuthMode, AuthSettings, BotSettings, BridgeCredential, ChatSettings, HttpSettings, HttpTls,
    JobsSettings, LocalSettings, LogFormat, LogSettings, ResultsSettings, Settings, St2Settings,
    St2UserField, StoreSettings, SupervisorSettings,
};

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, e.g. `st2.api_url` or `chat[1].backend`.
    pub key: String,
    /// Why it is wrong, in words an operator can act on.
    pub reason: String,
}

impl Problem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, in file order where there is one.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// An error with one problem.
    pub fn single(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem::new(key, reason)],
        }
    }
}

impl ConfigError {
    /// All problems on one line, for logs.
    pub fn one_line(&self) -> String {
        self.problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.reason))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {}: {}", p.key, p.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

struct Checker {
    problems: Vec<Problem>,
    deprecations: Vec<Deprecation>,
}

impl Checker {
    fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem::new(key, reason));
    }

    fn take<T>(&mut self, r: Result<T, Problem>) -> Option<T> {
        r.map_err(|p| self.problems.push(p)).ok()
    }

    fn url(&mut self, key: &str, value: &str) -> Option<String> {
        match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                Some(value.trim_end_matches('/').to_owned())
            }
            Ok(_) => {
                self.push(
                    key,
                    format!("`{value}` must be an http:// or https:// URL with a host"),
                );
                None
            }
            Err(e) => {
                self.push(key, format!("`{value}` is not a URL ({e})"));
                None
            }
        }
    }

    fn positive(&mut self, key: &str, secs: u64) -> Duration {
        if secs == 0 {
            self.push(key, "must be at least 1 (seconds)");
        }
        Duration::from_secs(secs.max(1))
    }
}

pub(super) fn validate(raw: RawConfig, platforms: &dyn Platforms) -> Result<Settings, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
        deprecations: Vec::new(),
    };
    for section in &raw.unknown_sections {
        // TOML allows a quoted empty or blank key (`"" = 1`): name it so it can be found.
        let key = if section.trim().is_empty() {
            format!("{section:?} (a blank top-level key)")
        } else {
            section.clone()
        };
        c.push(
            key,
            "unknown section (known: st2, bot, auth, http, store, log, supervisor, results, jobs, replies, commands, access, confirm, redact, chat)",
        );
    }
    let st2 = c.take(raw.st2).and_then(|s| st2(&mut c, s));
    let bot = c.take(raw.bot).map(|b| {
        if b.prefix.is_empty() && b.plugin_prefix.is_empty() {
            c.push(
                "bot.prefix",
                "bot.prefix and bot.plugin_prefix cannot both be empty: the bot would answer every message",
            );
        }
        if b.plugin_prefix.chars().any(char::is_whitespace) {
            c.push("bot.plugin_prefix", "must not contain spaces");
        }
        if b.help_page_size == 0 || b.help_page_size > b.help_max_page_size {
            c.push(
                "bot.help_page_size",
                format!("must be between 1 and bot.help_max_page_size ({})", b.help_max_page_size),
            );
        }
        if b.help_max_page_size == 0 || b.help_max_page_size > 200 {
            c.push("bot.help_max_page_size", "must be between 1 and 200");
        }
        let templates_dir = non_empty(&b.templates_dir).map(PathBuf::from);
        if let Some(dir) = &templates_dir {
            if let Err(e) = crate::render::Templates::load(Some(dir)) {
                c.push("bot.templates_dir", e.to_string());
            }
        }
        let st2_user = match b.st2_user.as_str() {
            "id" => St2UserField::Id,
            "name" => St2UserField::Name,
            other => {
                c.push(
                    "bot.st2_user",
                    format!("`{other}` must be `id` (the platform's account id) or `name` (the display name)"),
                );
                St2UserField::Id
            }
        };
        BotSettings {
            prefix: b.prefix,
            plugin_prefix: b.plugin_prefix,
            name: b.name,
            help_page_size: b.help_page_size,
            help_max_page_size: b.help_max_page_size,
            templates_dir,
            st2_user,
        }
    });
    let auth = c.take(raw.auth).and_then(|a| {
        let mode = match a.mode.as_str() {
            "standalone" => AuthMode::Standalone,
            "clientside" => AuthMode::Clientside,
            other => {
                c.push(
                    "auth.mode",
                    format!("`{other}` is not a mode: use `standalone` or `clientside`"),
                );
                return None;
            }
        };
        let public_url = non_empty(&a.public_url).and_then(|u| c.url("auth.public_url", u));
        if mode == AuthMode::Clientside && non_empty(&a.public_url).is_none() {
            c.push(
                "auth.public_url",
                "is required with mode = \"clientside\": login links start with it (e.g. https://bridge.example.com)",
            );
        }
        if a.user_token_ttl == 0 {
            c.push("auth.user_token_ttl", "must be at least 1 (seconds)");
        }
        if a.login_attempts_per_address == 0 {
            c.push("auth.login_attempts_per_address", "must be at least 1");
        }
        Some(AuthSettings {
            mode,
            public_url,
            session_ttl: c.positive("auth.session_ttl", a.session_ttl),
            user_token_ttl: a.user_token_ttl,
            link_ttl: c.positive("auth.link_ttl", a.link_ttl),
            renew_warning: Duration::from_secs(a.renew_warning),
            login_attempts_per_address: a.login_attempts_per_address,
            login_attempt_window: c.positive("auth.login_attempt_window", a.login_attempt_window),
        })
    });
    let http = c.take(raw.http).and_then(|h| {
        let tls = match (non_empty(&h.tls_cert), non_empty(&h.tls_key)) {
            (Some(cert), Some(key)) => {
                let tls = HttpTls {
                    cert: PathBuf::from(cert),
                    key: PathBuf::from(key),
                    client_ca: non_empty(&h.client_ca).map(PathBuf::from),
                };
                if let Err(e) = crate::http::tls::server_config(&tls) {
                    c.push("http.tls_cert", e.to_string());
                }
                Some(tls)
            }
            (None, None) => {
                if non_empty(&h.client_ca).is_some() {
                    c.push("http.client_ca", "needs http.tls_cert and http.tls_key");
                }
                None
            }
            (Some(_), None) => {
                c.push(
                    "http.tls_key",
                    "http.tls_cert is set but http.tls_key is not",
                );
                None
            }
            (None, Some(_)) => {
                c.push(
                    "http.tls_cert",
                    "http.tls_key is set but http.tls_cert is not",
                );
                None
            }
        };
        let mut proxies = Vec::new();
        for (i, entry) in h.trusted_proxies.iter().enumerate() {
            let key = format!("http.trusted_proxies[{i}]");
            match entry.parse::<IpNet>() {
                Ok(net) if net.prefix() == 0 => c.push(
                    key,
                    format!("`{entry}` trusts every address: anyone could claim to be anyone in X-Forwarded-For; list your proxies' addresses"),
                ),
                Ok(net) => proxies.push(net),
                Err(reason) => c.push(key, reason),
            }
        }
        let trusted_proxies = TrustedProxies::new(proxies);
        let post_token = post_token(&mut c, h.post_token, &h.post_token_file);
        match h.listen.parse::<SocketAddr>() {
            Ok(listen) => Some(HttpSettings {
                listen,
                tls,
                trusted_proxies,
                post_token,
            }),
            Err(_) => {
                c.push(
                    "http.listen",
                    format!("`{}` is not an address like 127.0.0.1:3141", h.listen),
                );
                None
            }
        }
    });
    // The environment variables holding the store's secrets: local commands never see them.
    let secret_env: Vec<String> = raw
        .store
        .as_ref()
        .ok()
        .map(|s| {
            [&s.key_env, &s.password_env]
                .into_iter()
                .filter_map(|v| non_empty(v).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let store = c.take(raw.store).and_then(|s| match s.backend.as_str() {
        "memory" | "sqlite" if non_empty(&s.advertise_url).is_some() => {
            c.push(
                "store.advertise_url",
                "only bridge processes sharing a redis store pass requests to each other; \
                 remove it or use backend = \"redis\""
                    .to_owned(),
            );
            None
        }
        "memory" => Some(StoreSettings::Memory),
        "sqlite" => {
            let loaded = match (non_empty(&s.key_file), non_empty(&s.key_env)) {
                (Some(file), _) => {
                    crate::store::crypto::StoreKey::from_file(std::path::Path::new(file))
                        .map(|k| (k, format!("file {file}")))
                        .map_err(|e| ("store.key_file", e.to_string()))
                }
                (None, Some(var)) => crate::store::crypto::StoreKey::from_env(var)
                    .map(|k| (k, format!("environment variable {var}")))
                    .map_err(|e| ("store.key_env", e.to_string())),
                (None, None) => Err((
                    "store.key_file",
                    "the sqlite store needs an encryption key: set store.key_file or store.key_env"
                        .to_owned(),
                )),
            };
            match loaded {
                Ok((key, key_source)) => Some(StoreSettings::Sqlite {
                    path: PathBuf::from(&s.path),
                    key_source,
                    key: Arc::new(key),
                }),
                Err((key, reason)) => {
                    c.push(key, reason);
                    None
                }
            }
        }
        "redis" => {
            let problems = redis_store_problems(&s);
            if problems.is_empty() {
                let settings = redis_store(&s);
                if settings.is_none() {
                    c.push(
                        "store.backend",
                        "a Redis password, CA or key file changed while it was read; check again"
                            .to_owned(),
                    );
                }
                settings
            } else {
                for (key, reason) in problems {
                    c.push(key, reason);
                }
                None
            }
        }
        other => {
            c.push(
                "store.backend",
                format!("`{other}` is not a store: use `memory`, `sqlite` or `redis`"),
            );
            None
        }
    });
    let log = c.take(raw.log).and_then(|l| {
        if tracing_subscriber::EnvFilter::try_new(&l.level).is_err() {
            c.push(
                "log.level",
                format!(
                    "`{}` is not a log filter such as `info` or `stormbridge=debug`",
                    l.level
                ),
            );
        }
        let format = match l.format.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                c.push(
                    "log.format",
                    format!("`{other}` must be `pretty` or `json`"),
                );
                return None;
            }
        };
        Some(LogSettings {
            level: l.level,
            format,
        })
    });
    let supervisor = c.take(raw.supervisor).map(|s| {
        if s.restart_backoff_initial_ms == 0 {
            c.push(
                "supervisor.restart_backoff_initial_ms",
                "must be at least 1",
            );
        }
        if s.restart_backoff_max_ms < s.restart_backoff_initial_ms {
            c.push(
                "supervisor.restart_backoff_max_ms",
                "must not be smaller than supervisor.restart_backoff_initial_ms",
            );
        }
        SupervisorSettings {
            restart_backoff_initial: Duration::from_millis(s.restart_backoff_initial_ms.max(1)),
            restart_backoff_max: Duration::from_millis(s.restart_backoff_max_ms.max(1)),
        }
    });
    let results = c.take(raw.results).map(|r| {
        if r.max_pending == 0 {
            c.push("results.max_pending", "must be at least 1");
        }
        ResultsSettings {
            max_pending: r.max_pending.max(1),
            pending_ttl: c.positive("results.pending_ttl", r.pending_ttl),
            grace: Duration::from_secs(r.grace),
            first_check: c.positive("results.first_check", r.first_check),
            max_check_interval: c.positive("results.max_check_interval", r.max_check_interval),
            retention: c.positive("results.retention", r.retention),
            mention_user: r.mention_user,
        }
    });
    let jobs = c.take(raw.jobs).map(|j| {
        if !(1..=MAX_RETENTION_DAYS).contains(&j.retention_days) {
            c.push(
                "jobs.retention_days",
                format!("must be from 1 to {MAX_RETENTION_DAYS}"),
            );
        }
        if !(200..=60_000).contains(&j.tail_interval_ms) {
            c.push(
                "jobs.tail_interval_ms",
                "must be from 200 to 60000 (milliseconds)",
            );
        }
        JobsSettings {
            retention: Duration::from_secs(j.retention_days.clamp(1, MAX_RETENTION_DAYS) * 86_400),
            tail_interval: Duration::from_millis(j.tail_interval_ms.clamp(200, 60_000)),
            tail_limit: c.positive("jobs.tail_limit", j.tail_limit),
        }
    });
    let local = c.take(raw.commands).and_then(|commands| {
        match crate::local::LocalCommands::new(commands, crate::acl::KNOWN_BUILTINS) {
            Ok(commands) => Some(LocalSettings {
                commands: Arc::new(commands),
                secret_env,
            }),
            Err(errors) => {
                for p in errors.problems {
                    c.push(p.key(), p.error.to_string());
                }
                None
            }
        }
    });
    let replies =
        c.take(raw.replies)
            .and_then(|cfg| match crate::render::replies::Replies::new(&cfg) {
                Ok(replies) => Some(Arc::new(replies)),
                Err(problems) => {
                    for p in problems {
                        c.push(p.key, p.reason);
                    }
                    None
                }
            });
    let chat = c
        .take(raw.chat)
        .map(|items| chats(&mut c, items, platforms));
    let confirm = c.take(raw.confirm);
    let redact = c
        .take(raw.redact)
        .and_then(|cfg| match crate::redact::Redactor::new(&cfg) {
            Ok(redactor) => Some(Arc::new(redactor)),
            Err(problems) => {
                for p in problems {
                    c.push(p.key, p.reason);
                }
                None
            }
        });
    let access = c.take(raw.access).zip(confirm).and_then(|(cfg, confirm)| {
        match AclPolicy::compile_with_confirm(&cfg, &confirm) {
            Ok(policy) => Some(Arc::new(policy)),
            Err(problems) => {
                for p in problems {
                    c.push(p.key, p.reason);
                }
                None
            }
        }
    });
    match (
        st2, bot, auth, http, store, log, supervisor, results, jobs, local, replies, chat, access,
        redact,
    ) {
        (
            Some(st2),
            Some(bot),
            Some(auth),
            Some(http),
            Some(store),
            Some(log),
            Some(supervisor),
            Some(results),
            Some(jobs),
            Some(local),
            Some(replies),
            Some(chat),
            Some(access),
            Some(redact),
        ) if c.problems.is_empty() => Ok(Settings {
            st2,
            bot,
            auth,
            http,
            store,
            log,
            supervisor,
            results,
            jobs,
            local,
            replies,
            chat,
            access,
            redact,
            deprecations: c.deprecations,
        }),
        _ => Err(ConfigError {
            problems: c.problems,
        }),
    }
}

/// What is wrong with `[store]`'s Redis settings, as `(key, reason)`. Reads the password
/// and CA files and the key, as opening the store will; never shows the password.
fn redis_store_problems(s: &super::load::RawStore) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    let mut tls = false;
    match non_empty(&s.url).map(url::Url::parse) {
        None => problems.push((
            "store.url",
            "the redis store needs `url`, like redis://127.0.0.1:6379/0 or rediss://host:6380 \
             (TLS)"
                .to_owned(),
        )),
        Some(Err(e)) => problems.push((
            "store.url",
            format!("not a URL ({e}); use redis://host:port/db or rediss://host:port/db"),
        )),
        Some(Ok(url)) => {
            tls = url.scheme() == "rediss";
            if !matches!(url.scheme(), "redis" | "rediss") {
                problems.push((
                    "store.url",
                    format!(
                        "`{}:` is not a Redis URL scheme: use redis:// or rediss:// (TLS)",
                        url.scheme()
                    ),
                ));
            }
            if url.password().is_some() {
                // The URL is not repeated: it holds the password.
                problems.push((
                    "store.url",
                    "the URL holds a password; put it in store.password_file or \
                     store.password_env instead (and the ACL user in store.username)"
                        .to_owned(),
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                problems.push(("store.url", "the URL names no host".to_owned()));
            }
        }
    }
    match (non_empty(&s.password_file), non_empty(&s.password_env)) {
        (Some(_), Some(_)) => problems.push((
            "store.password_file",
            "set store.password_file or store.password_env, not both".to_owned(),
        )),
        (Some(file), None) => match std::fs::read_to_string(file) {
            Ok(text) if text.trim().is_empty() => {
                problems.push(("store.password_file", format!("{file} is empty")));
            }
            Ok(_) => {}
            Err(e) => problems.push(("store.password_file", format!("cannot read {file}: {e}"))),
        },
        (None, Some(var)) => {
            if std::env::var(var).map_or(true, |v| v.trim().is_empty()) {
                problems.push((
                    "store.password_env",
                    format!("the environment variable {var} is not set (or empty)"),
                ));
            }
        }
        (None, None) => {}
    }
    if non_empty(&s.username).is_some()
        && s.password_file.trim().is_empty()
        && s.password_env.trim().is_empty()
    {
        problems.push((
            "store.username",
            "an ACL user needs its password: set store.password_file or store.password_env"
                .to_owned(),
        ));
    }
    if let Some(file) = non_empty(&s.tls_ca_file) {
        if !tls {
            problems.push((
                "store.tls_ca_file",
                "a CA file only applies to TLS: use a rediss:// URL".to_owned(),
            ));
        }
        match std::fs::read_to_string(file) {
            Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
            Ok(_) => problems.push((
                "store.tls_ca_file",
                format!("{file} holds no PEM certificate"),
            )),
            Err(e) => problems.push(("store.tls_ca_file", format!("cannot read {file}: {e}"))),
        }
    }
    if let Some(url) = non_empty(&s.advertise_url) {
        if let Err(reason) = advertised(url) {
            problems.push(("store.advertise_url", reason));
        }
    }
    if !(3..=3600).contains(&s.lease_ttl) {
        problems.push((
            "store.lease_ttl",
            "from 3 to 3600 seconds: the holder renews every third of it".to_owned(),
        ));
    }
    let prefix = &s.prefix;
    if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problems.push((
            "store.prefix",
            "the key prefix must be non-empty, without spaces (default `stormbridge:`)".to_owned(),
        ));
    }
    let key = match (non_empty(&s.key_file), non_empty(&s.key_env)) {
        (Some(file), _) => crate::store::crypto::StoreKey::from_file(std::path::Path::new(file))
            .map(drop)
            .map_err(|e| ("store.key_file", e.to_string())),
        (None, Some(var)) => crate::store::crypto::StoreKey::from_env(var)
            .map(drop)
            .map_err(|e| ("store.key_env", e.to_string())),
        (None, None) => Err((
            "store.key_file",
            "the redis store needs an encryption key: set store.key_file or store.key_env"
                .to_owned(),
        )),
    };
    if let Err(problem) = key {
        problems.push(problem);
    }
    problems
}

/// The Redis store's settings, once [`redis_store_problems`] found nothing wrong: the
/// password and CA read from their files or variable, the key loaded.
fn redis_store(s: &super::load::RawStore) -> Option<StoreSettings> {
    let password = match (non_empty(&s.password_file), non_empty(&s.password_env)) {
        (Some(file), _) => Some(std::fs::read_to_string(file).ok()?),
        (None, Some(var)) => Some(std::env::var(var).ok()?),
        (None, None) => None,
    }
    .map(|p| secrecy::SecretString::from(p.trim_end_matches(['\r', '\n']).to_owned()));
    let tls_ca_pem = match non_empty(&s.tls_ca_file) {
        Some(file) => Some(std::fs::read(file).ok()?),
        None => None,
    };
    let (key, key_source) = match (non_empty(&s.key_file), non_empty(&s.key_env)) {
        (Some(file), _) => (
            crate::store::crypto::StoreKey::from_file(std::path::Path::new(file)).ok()?,
            format!("file {file}"),
        ),
        (None, Some(var)) => (
            crate::store::crypto::StoreKey::from_env(var).ok()?,
            format!("environment variable {var}"),
        ),
        (None, None) => return None,
    };
    Some(StoreSettings::Redis {
        lease_ttl: Duration::from_secs(s.lease_ttl),
        advertise_url: non_empty(&s.advertise_url).and_then(|u| advertised(u).ok()),
        options: crate::store::RedisOptions {
            url: s.url.trim().to_owned(),
            username: non_empty(&s.username).map(str::to_owned),
            password,
            tls_ca_pem,
            prefix: s.prefix.clone(),
        },
        key_source,
        key: Arc::new(key),
    })
}

/// `store.advertise_url` as the other bridge processes will use it (no trailing slash), or
/// why it cannot be one: an http(s) URL of this process's HTTP server with no credentials,
/// query or fragment (it is shown to the other processes through Redis, and each request
/// passed on goes to it with a path appended).
fn advertised(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url.trim())
        .map_err(|e| format!("not a URL ({e}); use http://<this process's address>:<port>"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "`{}:` is not http or https: the other bridge processes send HTTP requests there",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the URL must not hold credentials".to_owned());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("the URL must not have a query or a fragment".to_owned());
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// The smallest `st2.alias_list_max_bytes`: a list of a few dozen aliases fits.
const MIN_ALIAS_LIST_BYTES: usize = 64 * 1024;

/// The longest job history (`[jobs] retention_days`): a hundred years.
const MAX_RETENTION_DAYS: u64 = 36_500;

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

fn st2(c: &mut Checker, s: RawSt2) -> Option<St2Settings> {
    let api_url = c.url("st2.api_url", &s.api_url);
    let derived = |service: &str, port: &str| {
        api_url
            .as_deref()
            .and_then(|a| derive_url(a, service, port))
    };
    let mut service_url = |key: &str, value: &str, service: &str, port: &str| match non_empty(value)
    {
        Some(v) => c.url(key, v),
        None => {
            let d = derived(service, port);
            if d.is_none() && api_url.is_some() {
                c.push(
                    key,
                    "is not set and cannot be derived from st2.api_url (derivation works for …/api/v1 and :9101/v1)",
                );
            }
            d
        }
    };
    let auth_url = service_url("st2.auth_url", &s.auth_url, "auth", "9100");
    let stream_url = service_url("st2.stream_url", &s.stream_url, "stream", "9102");
    let web_url = non_empty(&s.web_url).and_then(|u| c.url("st2.web_url", u));
    let ca_file = non_empty(&s.ca_file).map(PathBuf::from);
    if let Some(path) = &ca_file {
        if let Err(e) = crate::tls::load_ca_file(path) {
            c.push("st2.ca_file", e.to_string());
        }
    }
    for (key, route) in std::iter::once(("st2.route_key".to_owned(), &s.route_key)).chain(
        s.extra_routes
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("st2.extra_routes[{i}]"), r)),
    ) {
        if route.is_empty()
            || !route
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
        {
            c.push(
                key,
                format!("`{route}` must be letters, digits, `_`, `-` or `.`"),
            );
        }
    }
    let stream_heartbeat = c.positive("st2.stream_heartbeat", s.stream_heartbeat);
    let (refresh_key, refresh) = match s.stream_read_timeout {
        Some(old) => ("st2.stream_read_timeout", old),
        None => ("st2.stream_idle_refresh", s.stream_idle_refresh),
    };
    let stream_idle_refresh = (refresh > 0).then(|| Duration::from_secs(refresh));
    if stream_idle_refresh.is_some_and(|r| r <= stream_heartbeat) {
        c.push(
            refresh_key,
            format!(
                "must be 0 (never) or longer than st2.stream_heartbeat ({} s), or every quiet stream would be replaced",
                stream_heartbeat.as_secs()
            ),
        );
    }
    let stream_keepalive =
        (s.stream_keepalive > 0).then(|| Duration::from_secs(s.stream_keepalive));
    let credentials = credentials(c, s.credentials);
    let token_renew_before = Duration::from_secs(s.token_renew_before);
    Some(St2Settings {
        api_url: api_url?,
        auth_url: auth_url?,
        stream_url: stream_url?,
        web_url,
        verify_cert: s.verify_cert,
        ca_file,
        route_key: s.route_key,
        extra_routes: s.extra_routes,
        connect_timeout: c.positive("st2.connect_timeout", s.connect_timeout),
        request_timeout: c.positive("st2.request_timeout", s.request_timeout),
        alias_list_max_bytes: if s.alias_list_max_bytes < MIN_ALIAS_LIST_BYTES {
            c.push(
                "st2.alias_list_max_bytes",
                format!(
                    "at least {MIN_ALIAS_LIST_BYTES} bytes (a larger list is read page by page)"
                ),
            );
            MIN_ALIAS_LIST_BYTES
        } else {
            s.alias_list_max_bytes
        },
        alias_refresh_interval: (s.alias_refresh_interval > 0)
            .then(|| Duration::from_secs(s.alias_refresh_interval)),
        stream_heartbeat,
        stream_idle_refresh,
        stream_keepalive,
        token_ttl: (s.token_ttl > 0).then_some(s.token_ttl),
        token_renew_before,
        credentials: credentials?,
    })
}

/// `…/api/v1` → `…/auth/v1`; `host:9101/v1` → `host:9100/v1`.
fn derive_url(api_url: &str, service: &str, port: &str) -> Option<String> {
    if let Some(base) = api_url.strip_suffix("/api/v1") {
        return Some(format!("{base}/{service}/v1"));
    }
    if let Some(base) = api_url.strip_suffix("/api") {
        return Some(format!("{base}/{service}/v1"));
    }
    let mut url = url::Url::parse(api_url).ok()?;
    if url.port() == Some(9101) {
        url.set_port(port.parse().ok()).ok()?;
        return Some(url.as_str().trim_end_matches('/').to_owned());
    }
    None
}

/// Reads a secret given inline or as a `*_file` key (never both).
fn secret(
    c: &mut Checker,
    key: &str,
    inline: Option<SecretString>,
    file: &str,
) -> Option<SecretString> {
    read_secret(key, inline, file)
        .map_err(|p| c.problems.push(p))
        .ok()
        .flatten()
}

/// A secret given inline (`key`) or in a file (`key_file`: its first line), never both;
/// `Ok(None)` when neither is set. Problems name the key that was set, never the secret.
pub(super) fn read_secret(
    key: &str,
    inline: Option<SecretString>,
    file: &str,
) -> Result<Option<SecretString>, Problem> {
    let inline = inline.filter(|s| !s.expose_secret().is_empty());
    match (inline, non_empty(file)) {
        (Some(_), Some(_)) => Err(Problem::new(
            key,
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(s), None) => Ok(Some(s)),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let value = text.trim_end_matches(['\r', '\n']).to_owned();
                if value.is_empty() {
                    Err(Problem::new(
                        format!("{key}_file"),
                        format!("{path} is empty"),
                    ))
                } else {
                    Ok(Some(SecretString::from(value)))
                }
            }
            Err(e) => Err(Problem::new(
                format!("{key}_file"),
                format!("cannot read {path}: {e}"),
            )),
        },
        (None, None) => Ok(None),
    }
}

/// Shortest `[http] post_token` accepted: it is all that guards posting into chat.
const MIN_POST_TOKEN_CHARS: usize = 16;

/// `[http] post_token` / `post_token_file`: at most one, and a token a bearer header can
/// carry (no spaces or control characters) that is not trivially guessed. Problems name the
/// key that was set; the token itself is never in them.
fn post_token(c: &mut Checker, inline: Option<SecretString>, file: &str) -> Option<SecretString> {
    let key = if non_empty(file).is_some() {
        "http.post_token_file"
    } else {
        "http.post_token"
    };
    let token = secret(c, "http.post_token", inline, file)?;
    let text = token.expose_secret();
    if text.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        c.push(
            key,
            "the token must not contain spaces or control characters (it is sent as `Authorization: Bearer <token>`)",
        );
        return None;
    }
    if text.chars().count() < MIN_POST_TOKEN_CHARS {
        c.push(
            key,
            format!("the token is too short: use at least {MIN_POST_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"),
        );
        return None;
    }
    Some(token)
}

/// Precedence is not guessed: configuring two kinds of credential is an error, because
/// err-stackstorm's documented and actual precedence disagree and operators got bitten.
fn credentials(c: &mut Checker, raw: RawCredentials) -> Option<BridgeCredential> {
    let password = secret(
        c,
        "st2.credentials.password",
        raw.password,
        &raw.password_file,
    );
    let token = secret(c, "st2.credentials.token", raw.token, &raw.token_file);
    let api_key = secret(c, "st2.credentials.api_key", raw.api_key, &raw.api_key_file);
    let username = non_empty(&raw.username).map(str::to_owned);
    let mut kinds = Vec::new();
    if username.is_some() || password.is_some() {
        kinds.push("username+password");
    }
    if token.is_some() {
        kinds.push("token");
    }
    if api_key.is_some() {
        kinds.push("api_key");
    }
    match kinds.as_slice() {
        [] => {
            c.push(
                "st2.credentials",
                "no credential: set one of username+password (or password_file), token (or token_file), api_key (or api_key_file)",
            );
            None
        }
        [_] => {
            if let Some(key) = api_key {
                Some(BridgeCredential::ApiKey(key))
            } else if let Some(token) = token {
                Some(BridgeCredential::Token(token))
            } else {
                match (username, password) {
                    (Some(username), Some(password)) => {
                        Some(BridgeCredential::Password { username, password })
                    }
                    (None, _) => {
                        c.push(
                            "st2.credentials.username",
                            "a password is set but no username",
                        );
                        None
                    }
                    (_, None) => {
                        c.push(
                            "st2.credentials.password",
                            "a username is set but no password (or password_file)",
                        );
                        None
                    }
                }
            }
        }
        several => {
            c.push(
                "st2.credentials",
                format!(
                    "configure exactly one credential, found {}",
                    several.join(" and ")
                ),
            );
            None
        }
    }
}

fn chats(
    c: &mut Checker,
    items: Vec<serde_json::Value>,
    platforms: &dyn Platforms,
) -> Vec<ChatSettings> {
    if items.is_empty() {
        c.push(
            "chat",
            "no chat connection: add at least one [[chat]] table",
        );
    }
    let mut out: Vec<ChatSettings> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("chat[{i}]");
        let serde_json::Value::Object(mut map) = item else {
            c.push(key, "must be a table");
            continue;
        };
        let name = match map.remove("name") {
            Some(serde_json::Value::String(n)) => n,
            _ => {
                c.push(
                    format!("{key}.name"),
                    "is required (a short unique name such as `slack-main`)",
                );
                continue;
            }
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch))
        {
            c.push(
                format!("{key}.name"),
                format!("`{name}` must be letters, digits, `_` or `-`"),
            );
        }
        if out.iter().any(|o| o.name == name) {
            c.push(
                format!("{key}.name"),
                format!("`{name}` is used by another connection"),
            );
        }
        let backend = match map.remove("backend") {
            Some(serde_json::Value::String(b)) => b,
            _ => {
                c.push(format!("{key}.backend"), "is required");
                continue;
            }
        };
        match canonicalize(&mut map, platforms.renamed_keys(&backend)) {
            Ok(used) => c
                .deprecations
                .extend(used.into_iter().map(|(old, new)| Deprecation {
                    connection: name.clone(),
                    old,
                    new,
                })),
            Err(both) => {
                for (old, problem) in both {
                    c.push(format!("{key}.{old}"), problem);
                }
                continue;
            }
        }
        let mut table = ChatTable::new(key.clone(), map);
        let parsed = platforms.parse(&backend, &mut table);
        c.problems.extend(table.into_problems());
        let settings = match parsed {
            Some(Some(settings)) => settings,
            Some(None) => continue,
            None => {
                let mut kinds = platforms.kinds();
                kinds.sort_unstable();
                c.push(
                    format!("{key}.backend"),
                    format!(
                        "`{backend}` is not available in this version (available: {})",
                        kinds.join(", ")
                    ),
                );
                continue;
            }
        };
        if platforms.only_one(&backend) && out.iter().any(|o| o.backend.kind() == backend) {
            c.push(
                "chat",
                format!("at most one {backend} connection: there is only one standard input"),
            );
        }
        out.push(ChatSettings {
            name,
            backend: settings,
        });
    }
    out
}
