//! The Slack backend: events in over Socket Mode (a websocket opened with
//! `apps.connections.open`) or the Events API (signed HTTP POSTs to
//! `/slack/events/<connection>`, which also takes button presses), messages out over the Web API (`chat.postMessage`,
//! `conversations.open` for direct messages), with Slack's rate limits honoured.
//!
//! Identity: a user is `ChatUser{connection, id: "U…"}`, a room `Room{id: "C…"/"D…"}` with
//! the `thread_ts` of a threaded message as its thread, and the team id as `org`.
//!
//! Files: `config.rs` (settings), `wire.rs` (envelopes and events, typed), `api.rs` (Web
//! API calls), `render.rs` (hubot-style attachments), `platform.rs` (the
//! [`Platform`](crate::backends::connection::Platform)), `interactive.rs` (buttons),
//! `signature.rs` (the Events API's request signature), `resume.rs` (what a new Socket Mode
//! link reads back from `conversations.history` and `conversations.replies`: what was posted
//! while none listened).

pub mod api;
pub mod config;
mod interactive;
mod platform;
pub mod render;
pub mod resume;
pub mod signature;
pub mod wire;

use actix::prelude::*;

use crate::{
    backends::{
        connection::{Connection, DestinationPace, Pace, QueuePolicy},
        registry::{self, PlatformSpec, SetupError, Start, Started},
        webhook::HttpRoute,
    },
    config::PlatformSettings,
};

pub use config::{SlackMode, SlackSettings, WhisperMode};
pub use platform::Slack;

/// A Slack connection: the shared connection actor running [`Slack`].
pub type SlackConnection = crate::backends::connection::Connection<Slack>;

/// Where Events API requests for connection `name` arrive.
pub fn events_path(name: &str) -> String {
    format!("/slack/events/{name}")
}

/// Largest Events API request body accepted.
pub const MAX_EVENT_BODY: usize = 1 << 20;

/// Normalises what Slack clients type before matching: curly quotes become straight ones,
/// non-breaking and other odd spaces become plain spaces, Slack's `&amp;`/`&lt;`/`&gt;`
/// escapes are undone and `<https://x|label>` / `<mailto:a@b|a@b>` links become their text.
pub fn normalise_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let inner = &after[..end];
                if inner.starts_with('@') || inner.starts_with('#') || inner.starts_with('!') {
                    // User, channel and special mentions stay as Slack wrote them.
                    out.push('<');
                    out.push_str(inner);
                    out.push('>');
                } else {
                    let (target, label) = inner.split_once('|').unwrap_or((inner, inner));
                    let shown = if label.is_empty() { target } else { label };
                    out.push_str(shown.strip_prefix("mailto:").unwrap_or(shown));
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let out = out
        .replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{201C}', '\u{201D}'], "\"")
        .replace(['\u{00A0}', '\u{2007}', '\u{202F}', '\u{2009}'], " ");
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Strips a leading `<@BOTID>` (or `<@BOTID|name>`) mention. Returns whether it was there.
pub fn strip_mention<'a>(text: &'a str, bot_user_id: &str) -> (bool, &'a str) {
    let trimmed = text.trim_start();
    let Some(rest) = trimmed.strip_prefix("<@") else {
        return (false, text);
    };
    let Some(end) = rest.find('>') else {
        return (false, text);
    };
    let id = rest[..end].split('|').next().unwrap_or_default();
    if id != bot_user_id || bot_user_id.is_empty() {
        return (false, text);
    }
    let after = &rest[end + 1..];
    (true, after.trim_start_matches([':', ',']).trim_start())
}

/// Slack in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "slack",
    renamed_keys: config::RENAMED_KEYS,
    only_one: false,
    mention: crate::backends::mention::slack,
    parse: config::parse_table,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<SlackSettings>(settings)?;
    let name = start.wiring.name.clone();
    let gate = start.wiring.gate.clone();
    // Slack is the public service: web PKI roots, always verified.
    let tls = crate::tls::client_config(true, None).map_err(SetupError::new)?;
    let platform = Slack::new(name.clone(), s.clone(), tls);
    let queue = queue_policy(s);
    let wiring = start
        .wiring
        .with_reconnect(s.reconnect_initial_ms, s.reconnect_max_ms);
    let addr = Connection::new(platform, wiring, queue).start();
    // Answer buttons for StackStorm inquiries (presses come back as the presser).
    crate::backends::buttons::connect(&name, &addr, start.presses, start.buttons);
    let routes = s
        .signing_secret
        .is_some()
        .then(|| HttpRoute {
            path: events_path(&name),
            max_body: MAX_EVENT_BODY,
            gate,
            handler: addr.clone().recipient(),
        })
        .into_iter()
        .collect();
    Ok(Started {
        deliver: addr.recipient(),
        routes,
    })
}

/// How this platform's connection queues and paces its messages (public for the pacing
/// benchmark).
pub fn queue_policy(s: &SlackSettings) -> QueuePolicy {
    // Slack limits `chat.postMessage` per channel (about one message per second, short
    // bursts allowed: https://api.slack.com/methods/chat.postMessage#rate_limiting): each
    // channel paced on its own, channels sent to concurrently, a 429 holding its channel.
    QueuePolicy {
        capacity: s.queue_size,
        pace: Pace::unlimited(),
        per_destination: Some(DestinationPace::Bucket(Pace {
            burst: crate::backends::defaults::SEND_BURST.min(3),
            interval: s.send_interval,
        })),
        max_in_flight: crate::backends::defaults::MAX_IN_FLIGHT,
        limits_per_destination: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_punctuation_and_links_are_normalised() {
        assert_eq!(
            normalise_text("run \u{201C}echo \u{2018}hi\u{2019}\u{201D}\u{00A0}now"),
            "run \"echo 'hi'\" now"
        );
        assert_eq!(
            normalise_text("curl <https://example.com|example.com> &amp;&amp; echo &lt;x&gt;"),
            "curl example.com && echo <x>"
        );
        assert_eq!(normalise_text("mail <mailto:a@b.c|a@b.c>"), "mail a@b.c");
        assert_eq!(
            normalise_text("hi <@U1> <#C1|ops> <oops"),
            "hi <@U1> <#C1|ops> <oops"
        );
    }

    #[test]
    fn only_the_bots_own_mention_counts() {
        assert_eq!(
            strip_mention("<@UBOT> run date", "UBOT"),
            (true, "run date")
        );
        assert_eq!(strip_mention("  <@UBOT|bot>: run", "UBOT"), (true, "run"));
        assert_eq!(
            strip_mention("<@UOTHER> run", "UBOT"),
            (false, "<@UOTHER> run")
        );
        assert_eq!(strip_mention("<@UBOT", "UBOT"), (false, "<@UBOT"));
        assert_eq!(strip_mention("run <@UBOT>", "UBOT"), (false, "run <@UBOT>"));
    }
}
