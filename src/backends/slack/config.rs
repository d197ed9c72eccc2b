//! `backend = "slack"` settings: parsed from the `[[chat]]` table, secrets read from inline
//! values or `*_file` paths, checked before the bridge starts.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// How Slack events reach the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    /// Socket Mode: the bridge opens a websocket (`apps.connections.open`, app token).
    Socket,
    /// Events API: Slack POSTs to `/slack/events/<connection>` (signed with the signing secret).
    Events,
}

/// How a private message (StackStorm's `whisper`) to a user is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhisperMode {
    /// A direct message (`conversations.open` + `chat.postMessage`).
    Dm,
    /// `chat.postEphemeral` in the channel the user last spoke to the bot in; a direct
    /// message when there is none or Slack refuses (user not in the channel).
    Ephemeral,
}

/// Validated settings of one Slack connection.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// Socket Mode or Events API.
    pub mode: SlackMode,
    /// App-level token (`xapp-…`), Socket Mode only.
    pub app_token: Option<SecretString>,
    /// Bot token (`xoxb-…`) for the Web API.
    pub bot_token: SecretString,
    /// Signing secret, Events API only.
    pub signing_secret: Option<SecretString>,
    /// Web API base URL, without a trailing slash.
    pub api_url: String,
    /// Channel ids the bot joins at start and rejoins when removed.
    pub channels: Vec<String>,
    /// How whispers are sent.
    pub whispers: WhisperMode,
    /// Longest message part, in characters.
    pub max_message_length: usize,
    /// Most messages waiting to be sent; the oldest is dropped past it.
    pub queue_size: usize,
    /// Least time between two Web API posts (Slack allows about one per second per channel).
    pub send_interval: Duration,
    /// How long ago a message said while no Socket Mode link listened may have been said and
    /// still run when the next link catches up, in seconds (0: any age).
    pub max_command_age_secs: u64,
    /// `reconnect_initial_ms`: shortest reconnect delay in milliseconds (the `[supervisor]`
    /// value when not given, as on every platform).
    pub reconnect_initial_ms: Option<u64>,
    /// `reconnect_max_ms`: longest reconnect delay in milliseconds (the `[supervisor]` value
    /// when not given).
    pub reconnect_max_ms: Option<u64>,
    /// A socket silent for this long (no event, no ping) is reconnected.
    pub idle_timeout: Duration,
    /// How StackStorm's messages without `extra.slack` look.
    pub results: ResultStyle,
}

/// How a StackStorm message without `extra.slack` is shown (hubot-stackstorm's Slack
/// adapter: `ST2_SLACK_SUCCESS_COLOR`, `ST2_SLACK_FAIL_COLOR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultStyle {
    /// As hubot did: the text after `{~}` in an attachment coloured by outcome, the pretext
    /// (and mention) above it. Off: plain text.
    pub attachments: bool,
    /// Attachment colour of a result that did not fail (a hex code or good/warning/danger).
    pub success_color: String,
    /// Attachment colour of a failed, timed-out or abandoned execution's result.
    pub failure_color: String,
}

impl Default for ResultStyle {
    fn default() -> Self {
        ResultStyle {
            attachments: true,
            success_color: default_success_color(),
            failure_color: default_failure_color(),
        }
    }
}

/// Keys renamed to the name they have on every platform, as `(old, canonical)`: the old
/// name still loads (a deprecation note from `check-config`).
pub const RENAMED_KEYS: &[(&str, &str)] = &[("queue_capacity", "queue_size")];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "default_mode")]
    mode: SlackMode,
    app_token: Option<SecretString>,
    #[serde(default)]
    app_token_file: String,
    bot_token: Option<SecretString>,
    #[serde(default)]
    bot_token_file: String,
    signing_secret: Option<SecretString>,
    #[serde(default)]
    signing_secret_file: String,
    #[serde(default = "default_api_url")]
    api_url: String,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default = "default_whispers")]
    whispers: WhisperMode,
    #[serde(default = "default_max_len")]
    max_message_length: usize,
    #[serde(
        rename = "queue_size",
        alias = "queue_capacity",
        default = "crate::backends::defaults::queue_size"
    )]
    queue_size: usize,
    #[serde(default = "default_send_interval")]
    send_interval_ms: u64,
    #[serde(default = "crate::backends::connection::position::max_command_age_secs")]
    max_command_age_secs: u64,
    #[serde(default)]
    reconnect_initial_ms: Option<u64>,
    #[serde(default)]
    reconnect_max_ms: Option<u64>,
    #[serde(default = "default_idle")]
    idle_timeout_secs: u64,
    #[serde(default = "crate::backends::defaults::enabled")]
    result_attachments: bool,
    #[serde(default = "default_success_color")]
    success_color: String,
    #[serde(default = "default_failure_color")]
    failure_color: String,
}

fn default_mode() -> SlackMode {
    SlackMode::Socket
}
fn default_whispers() -> WhisperMode {
    WhisperMode::Dm
}
fn default_api_url() -> String {
    "https://slack.com/api".into()
}
fn default_max_len() -> usize {
    4000
}
fn default_send_interval() -> u64 {
    1000
}
fn default_idle() -> u64 {
    120
}
/// hubot-stackstorm's defaults (`ST2_SLACK_SUCCESS_COLOR` `dfdfdf`, a light grey, and
/// `ST2_SLACK_FAIL_COLOR` `danger`, Slack's red).
fn default_success_color() -> String {
    "#dfdfdf".into()
}
fn default_failure_color() -> String {
    "danger".into()
}

/// A colour Slack takes for an attachment: `good`, `warning`, `danger` or a hex code
/// (https://api.slack.com/reference/messaging/attachments#fields, `color`). hubot's
/// `dfdfdf` without `#` is accepted and given one.
fn colour(key: &str, value: &str, problems: &mut Vec<String>) -> String {
    let v = value.trim();
    if matches!(v, "good" | "warning" | "danger") {
        return v.to_owned();
    }
    let hex = v.strip_prefix('#').unwrap_or(v);
    if matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return format!("#{hex}");
    }
    problems.push(format!(
        "{key}: `{value}` is not a colour Slack knows (good, warning, danger or a hex code like #439FE0)"
    ));
    String::new()
}

fn secret(
    key: &str,
    inline: Option<SecretString>,
    file: &str,
) -> Result<Option<SecretString>, String> {
    let inline = inline.filter(|s| !s.expose_secret().is_empty());
    match (inline, file.trim()) {
        (Some(_), f) if !f.is_empty() => Err(format!("set either {key} or {key}_file, not both")),
        (Some(s), _) => Ok(Some(s)),
        (None, "") => Ok(None),
        (None, path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let value = text.trim_end_matches(['\r', '\n']).to_owned();
                if value.is_empty() {
                    Err(format!("{key}_file: {path} is empty"))
                } else {
                    Ok(Some(SecretString::from(value)))
                }
            }
            Err(e) => Err(format!("{key}_file: cannot read {path}: {e}")),
        },
    }
}

/// Parses and checks a `[[chat]]` table (without `name` and `backend`). Every problem is
/// returned, so the operator fixes them in one go.
pub fn parse(table: serde_json::Value) -> Result<SlackSettings, Vec<String>> {
    let raw: Raw = serde_json::from_value(table).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    let mut take =
        |r: Result<Option<SecretString>, String>| r.map_err(|e| problems.push(e)).ok().flatten();
    let app_token = take(secret("app_token", raw.app_token, &raw.app_token_file));
    let bot_token = take(secret("bot_token", raw.bot_token, &raw.bot_token_file));
    let signing_secret = take(secret(
        "signing_secret",
        raw.signing_secret,
        &raw.signing_secret_file,
    ));
    if bot_token.is_none() {
        problems.push("bot_token (or bot_token_file) is required: the xoxb- bot token".into());
    }
    match raw.mode {
        SlackMode::Socket if app_token.is_none() => problems.push(
            "mode = \"socket\" needs app_token (or app_token_file): the xapp- app-level token"
                .into(),
        ),
        SlackMode::Events if signing_secret.is_none() => {
            problems.push("mode = \"events\" needs signing_secret (or signing_secret_file)".into())
        }
        _ => {}
    }
    let api_url = match url::Url::parse(&raw.api_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            raw.api_url.trim_end_matches('/').to_owned()
        }
        _ => {
            problems.push(format!(
                "api_url: `{}` must be an http:// or https:// URL",
                raw.api_url
            ));
            String::new()
        }
    };
    if raw.max_message_length < 100 {
        problems.push("max_message_length must be at least 100".into());
    }
    if raw.queue_size == 0 {
        problems.push("queue_size must be at least 1".into());
    }
    if raw.idle_timeout_secs == 0 {
        problems.push("idle_timeout_secs must be at least 1".into());
    }
    let results = ResultStyle {
        attachments: raw.result_attachments,
        success_color: colour("success_color", &raw.success_color, &mut problems),
        failure_color: colour("failure_color", &raw.failure_color, &mut problems),
    };
    match (problems.is_empty(), bot_token) {
        (true, Some(bot_token)) => Ok(SlackSettings {
            mode: raw.mode,
            app_token,
            bot_token,
            signing_secret,
            api_url,
            channels: raw.channels,
            whispers: raw.whispers,
            max_message_length: raw.max_message_length,
            queue_size: raw.queue_size,
            send_interval: Duration::from_millis(raw.send_interval_ms),
            max_command_age_secs: raw.max_command_age_secs,
            reconnect_initial_ms: raw.reconnect_initial_ms,
            reconnect_max_ms: raw.reconnect_max_ms,
            idle_timeout: Duration::from_secs(raw.idle_timeout_secs),
            results,
        }),
        _ => Err(problems),
    }
}

crate::platform_settings!(SlackSettings, "slack");

/// Reads a `[[chat]]` table of `backend = "slack"`.
pub fn parse_table(
    table: &mut crate::config::ChatTable,
) -> Option<std::sync::Arc<dyn crate::config::PlatformSettings>> {
    let raw: serde_json::Value = table.deserialize()?;
    match parse(raw) {
        Ok(settings) => Some(std::sync::Arc::new(settings)),
        Err(problems) => {
            for p in problems {
                table.table_problem(p);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn socket_mode_needs_both_tokens_and_events_mode_a_secret() {
        let errs = parse(json!({"mode": "socket", "bot_token": "xoxb-1"})).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("app_token")), "{errs:?}");
        let errs = parse(json!({"mode": "events", "bot_token": "xoxb-1"})).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("signing_secret")),
            "{errs:?}"
        );
        let s = parse(json!({"app_token": "xapp-1", "bot_token": "xoxb-1",
                             "api_url": "http://127.0.0.1:9/api/"}))
        .unwrap();
        assert_eq!(s.mode, SlackMode::Socket);
        assert_eq!(s.api_url, "http://127.0.0.1:9/api");
        assert!(parse(json!({"bot_token": "x", "app_token": "y", "bogus": 1})).is_err());
    }

    #[test]
    fn reconnect_keys_default_to_the_supervisors_as_on_every_platform() {
        let base = json!({"app_token": "xapp-1", "bot_token": "xoxb-1"});
        let s = parse(base.clone()).unwrap();
        assert_eq!((s.reconnect_initial_ms, s.reconnect_max_ms), (None, None));
        let mut t = base;
        t["reconnect_initial_ms"] = json!(50);
        t["reconnect_max_ms"] = json!(900);
        let s = parse(t).unwrap();
        assert_eq!(
            (s.reconnect_initial_ms, s.reconnect_max_ms),
            (Some(50), Some(900))
        );
    }

    #[test]
    fn result_colours_are_checked_and_hubots_bare_hex_accepted() {
        let base = json!({"app_token": "xapp-1", "bot_token": "xoxb-1"});
        let s = parse(base.clone()).unwrap();
        assert_eq!(s.results, ResultStyle::default());
        let mut t = base.clone();
        t["success_color"] = json!("dfdfdf");
        t["failure_color"] = json!("warning");
        let s = parse(t).unwrap();
        assert_eq!(
            (
                s.results.success_color.as_str(),
                s.results.failure_color.as_str()
            ),
            ("#dfdfdf", "warning")
        );
        let mut t = base;
        t["failure_color"] = json!("red; drop");
        let errs = parse(t).unwrap_err();
        assert!(errs[0].starts_with("failure_color"), "{errs:?}");
    }

    #[test]
    fn secrets_come_from_files_but_not_from_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bot");
        std::fs::write(&path, "xoxb-file\n").unwrap();
        let s = parse(json!({"app_token": "xapp-1", "bot_token_file": path})).unwrap();
        assert_eq!(s.bot_token.expose_secret(), "xoxb-file");
        let errs = parse(json!({"app_token": "xapp-1", "bot_token": "a", "bot_token_file": path}))
            .unwrap_err();
        assert!(errs[0].contains("not both"), "{errs:?}");
    }
}
