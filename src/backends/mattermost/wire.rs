//! Mattermost API v4 shapes: websocket frames, posts, and how they map to chat messages.
//! Pure functions, so that the mapping is unit-tested without a server.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::domain::message::{ChatUser, InboundMessage, Room, RoomKind};

/// A frame from `/api/v4/websocket`: either an event or a reply to one of our actions.
#[derive(Debug, Clone, PartialEq)]
pub enum WsFrame {
    /// A server event (`hello`, `posted`, …) with the server's sequence number.
    Event {
        /// Event name.
        event: String,
        /// Server sequence number (0 for the first event of a connection).
        seq: Option<u64>,
        /// Event data.
        data: Value,
        /// Who the event was sent to (`user_id`, `channel_id`, `team_id`).
        broadcast: Value,
    },
    /// A reply to an action we sent (`seq_reply` is our `seq`).
    Reply {
        /// `OK` or `FAIL`.
        status: String,
        /// Our action's sequence number.
        seq_reply: u64,
        /// Error details on `FAIL`.
        error: Option<Value>,
    },
}

/// Parses a text frame; `None` for anything that is neither an event nor a reply.
pub fn parse_frame(text: &str) -> Option<WsFrame> {
    let v: Value = serde_json::from_str(text).ok()?;
    if let Some(event) = v.get("event").and_then(Value::as_str) {
        return Some(WsFrame::Event {
            event: event.to_owned(),
            seq: v.get("seq").and_then(Value::as_u64),
            data: v.get("data").cloned().unwrap_or(Value::Null),
            broadcast: v.get("broadcast").cloned().unwrap_or(Value::Null),
        });
    }
    let seq_reply = v.get("seq_reply").and_then(Value::as_u64)?;
    Some(WsFrame::Reply {
        status: v
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        seq_reply,
        error: v.get("error").cloned(),
    })
}

/// The `authentication_challenge` action.
pub fn auth_challenge(seq: u64, token: &str) -> String {
    json!({"seq": seq, "action": "authentication_challenge", "data": {"token": token}}).to_string()
}

/// `user_removed`: the channel a user was removed from, when that user is `bot_id`. The
/// removed user's own copy names the channel in `data.channel_id` and the user in
/// `broadcast.user_id`; the copy for the channel names them the other way round.
pub fn removed_from(data: &Value, broadcast: &Value, bot_id: &str) -> Option<String> {
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
    };
    let user = s(data, "user_id").or_else(|| s(broadcast, "user_id"))?;
    if user != bot_id {
        return None;
    }
    s(data, "channel_id").or_else(|| s(broadcast, "channel_id"))
}

/// Mattermost ids are 26 lowercase letters and digits.
pub fn looks_like_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A post as the API returns it (the fields the bridge uses).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Post {
    /// Post id.
    #[serde(default)]
    pub id: String,
    /// Author.
    #[serde(default)]
    pub user_id: String,
    /// Channel.
    #[serde(default)]
    pub channel_id: String,
    /// Thread root; empty when the post is not a reply.
    #[serde(default)]
    pub root_id: String,
    /// Text.
    #[serde(default)]
    pub message: String,
    /// Empty for user posts; `system_*` for system messages.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// `from_bot`, `from_webhook`, `attachments`, …
    #[serde(default)]
    pub props: Map<String, Value>,
}

impl Post {
    /// Posted by a bot account, an integration or the system, not by a person.
    pub fn is_automated(&self) -> bool {
        let truthy = |key: &str| match self.props.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        };
        truthy("from_bot") || truthy("from_webhook") || !self.kind.is_empty()
    }
}

/// What the connection knows when it maps a `posted` event.
pub struct Mapping<'a> {
    /// The `[[chat]]` name.
    pub connection: &'a str,
    /// The bot's user id (`GET /users/me`).
    pub bot_id: &'a str,
    /// The bot's username, for `@mentions`.
    pub bot_username: &'a str,
    /// The configured team's id, the organisation of posts without one.
    pub team_id: Option<&'a str>,
    /// Channel ids or names to watch; empty = all.
    pub channels: &'a [String],
    /// Start a thread under a command that is not in one.
    pub reply_in_thread: bool,
}

/// Why a `posted` event was not turned into a message (for debug logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// `data.post` is missing or not a post.
    Malformed,
    /// The bridge's own post.
    Own,
    /// A bot, webhook or system post.
    Automated,
    /// A channel that is not watched.
    NotWatched,
    /// No text.
    Empty,
}

/// Maps a `posted` event's `data` to a chat message.
pub fn posted_to_inbound(data: &Value, m: &Mapping<'_>) -> Result<InboundMessage, Skip> {
    let post: Post = data
        .get("post")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or(Skip::Malformed)?;
    // A blank author would be a user without an id.
    if post.channel_id.is_empty() || post.user_id.trim().is_empty() {
        return Err(Skip::Malformed);
    }
    if post.user_id == m.bot_id {
        return Err(Skip::Own);
    }
    if post.is_automated() {
        return Err(Skip::Automated);
    }
    let str_field = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let kind = match str_field("channel_type") {
        Some("D") => RoomKind::Direct,
        _ => RoomKind::Group,
    };
    let channel_name = str_field("channel_name");
    if kind == RoomKind::Group
        && !m.channels.is_empty()
        && !m
            .channels
            .iter()
            .any(|c| *c == post.channel_id || Some(c.as_str()) == channel_name)
    {
        return Err(Skip::NotWatched);
    }
    let (mentioned, text) = strip_mention(&post.message, m.bot_username);
    if text.trim().is_empty() && !mentioned {
        return Err(Skip::Empty);
    }
    let name = str_field("sender_name")
        .map(|s| s.trim_start_matches('@').to_owned())
        .unwrap_or_else(|| post.user_id.clone());
    let room_name = match kind {
        RoomKind::Direct => None,
        RoomKind::Group => channel_name.map(str::to_owned),
    };
    let org = str_field("team_id")
        .map(str::to_owned)
        .or_else(|| m.team_id.map(str::to_owned));
    Ok(InboundMessage {
        user: ChatUser {
            connection: m.connection.to_owned(),
            id: post.user_id.clone(),
            name,
        },
        room: Room {
            connection: m.connection.to_owned(),
            id: post.channel_id.clone(),
            kind,
            thread: match (post.root_id.is_empty(), m.reply_in_thread) {
                (false, _) => Some(post.root_id.clone()),
                (true, true) => Some(post.id.clone()).filter(|id| !id.is_empty()),
                (true, false) => None,
            },
        },
        text: text.to_owned(),
        message_id: Some(post.id.clone()).filter(|id| !id.is_empty()),
        mentioned,
        room_name,
        org,
    })
}

/// `@bot text` → `(true, "text")`; the mention must be a whole word at the start.
pub fn strip_mention<'a>(message: &'a str, bot_username: &str) -> (bool, &'a str) {
    let trimmed = message.trim_start();
    if bot_username.is_empty() {
        return (false, message);
    }
    let Some(rest) = trimmed.strip_prefix('@') else {
        return (false, message);
    };
    let Some(head) = rest.get(..bot_username.len()) else {
        return (false, message);
    };
    if !head.eq_ignore_ascii_case(bot_username) {
        return (false, message);
    }
    let after = &rest[bot_username.len()..];
    if after.is_empty() || after.starts_with([' ', ':', ',', '\n', '\t']) {
        (true, after.trim_start_matches([':', ',']).trim_start())
    } else {
        (false, message)
    }
}

/// `props` for a post from a StackStorm `extra`: `extra.mattermost.attachments` is sent as
/// it is; other `extra.mattermost` fields make one attachment (with `extra.color` as its
/// colour unless it sets its own).
pub fn props_from_extra(extra: Option<&Value>) -> Option<Value> {
    let mm = extra?.get("mattermost")?.as_object()?;
    if let Some(attachments) = mm.get("attachments").filter(|a| a.is_array()) {
        return Some(json!({ "attachments": attachments }));
    }
    let mut attachment = mm.clone();
    if !attachment.contains_key("color") {
        if let Some(color) = extra.and_then(|e| e.get("color")).filter(|c| c.is_string()) {
            attachment.insert("color".into(), color.clone());
        }
    }
    if attachment.is_empty() {
        return None;
    }
    Some(json!({ "attachments": [attachment] }))
}

/// How long a rate-limited response asks us to wait: `Retry-After` (seconds), else
/// `X-Ratelimit-Reset` (seconds until the window resets; a Unix time is also understood).
pub fn retry_delay(
    retry_after: Option<&str>,
    reset: Option<&str>,
    now_unix: u64,
) -> Option<Duration> {
    let secs = |v: Option<&str>| {
        v.and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
    };
    if let Some(s) = secs(retry_after) {
        return Some(Duration::from_secs_f64(s.min(3600.0)));
    }
    let reset = secs(reset)?;
    let wait = if reset > 1_000_000_000.0 {
        (reset - now_unix as f64).max(0.0)
    } else {
        reset
    };
    Some(Duration::from_secs_f64(wait.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping<'a>(channels: &'a [String]) -> Mapping<'a> {
        Mapping {
            connection: "mm",
            bot_id: "bot1",
            bot_username: "stormbot",
            team_id: Some("team1"),
            channels,
            reply_in_thread: false,
        }
    }

    fn event(post: Value, channel_type: &str) -> Value {
        json!({
            "channel_display_name": "Town Square", "channel_name": "town-square",
            "channel_type": channel_type, "post": post.to_string(),
            "sender_name": "@alice", "team_id": if channel_type == "D" { "" } else { "team2" },
        })
    }

    #[test]
    fn a_channel_post_maps_to_user_room_thread_and_team() {
        let data = event(
            json!({"id": "p1", "user_id": "u1", "channel_id": "c1", "root_id": "r1", "message": "@StormBot: !st2 run date", "type": "", "props": {}}),
            "O",
        );
        let m = posted_to_inbound(&data, &mapping(&[])).unwrap();
        assert_eq!(m.user.id, "u1");
        assert_eq!(m.user.name, "alice");
        assert_eq!(m.room.id, "c1");
        assert_eq!(m.room.kind, RoomKind::Group);
        assert_eq!(m.room.thread.as_deref(), Some("r1"));
        assert_eq!(m.text, "!st2 run date");
        assert!(m.mentioned);
        assert_eq!(m.room_name.as_deref(), Some("town-square"));
        assert_eq!(m.org.as_deref(), Some("team2"));
        assert_eq!(m.message_id.as_deref(), Some("p1"));
    }

    #[test]
    fn reply_in_thread_starts_a_thread_under_the_command() {
        let data = event(
            json!({"id": "p1", "user_id": "u1", "channel_id": "c1", "root_id": "", "message": "!st2 run date"}),
            "O",
        );
        let mut m = mapping(&[]);
        assert_eq!(posted_to_inbound(&data, &m).unwrap().room.thread, None);
        m.reply_in_thread = true;
        assert_eq!(
            posted_to_inbound(&data, &m).unwrap().room.thread.as_deref(),
            Some("p1")
        );
    }

    #[test]
    fn direct_messages_use_the_configured_team_and_are_always_read() {
        let data = event(
            json!({"id": "p1", "user_id": "u1", "channel_id": "d1", "root_id": "", "message": "hi"}),
            "D",
        );
        let watched = vec!["other".to_owned()];
        let m = posted_to_inbound(&data, &mapping(&watched)).unwrap();
        assert_eq!(m.room.kind, RoomKind::Direct);
        assert_eq!(m.room.thread, None);
        assert_eq!(m.room_name, None);
        assert_eq!(m.org.as_deref(), Some("team1"));
    }

    #[test]
    fn own_bot_system_and_unwatched_posts_are_skipped() {
        let post = |user: &str, props: Value, kind: &str| {
            event(
                json!({"id": "p", "user_id": user, "channel_id": "c1", "message": "!st2 run date", "type": kind, "props": props}),
                "O",
            )
        };
        let all: Vec<String> = vec![];
        assert_eq!(
            posted_to_inbound(&post("bot1", json!({}), ""), &mapping(&all)).unwrap_err(),
            Skip::Own
        );
        assert_eq!(
            posted_to_inbound(&post("u2", json!({"from_bot": "true"}), ""), &mapping(&all))
                .unwrap_err(),
            Skip::Automated
        );
        assert_eq!(
            posted_to_inbound(
                &post("u2", json!({"from_webhook": "true"}), ""),
                &mapping(&all)
            )
            .unwrap_err(),
            Skip::Automated
        );
        assert_eq!(
            posted_to_inbound(
                &post("u2", json!({}), "system_join_channel"),
                &mapping(&all)
            )
            .unwrap_err(),
            Skip::Automated
        );
        let watched = vec!["c9".to_owned(), "town-square".to_owned()];
        assert!(posted_to_inbound(&post("u2", json!({}), ""), &mapping(&watched)).is_ok());
        let watched = vec!["c9".to_owned()];
        assert_eq!(
            posted_to_inbound(&post("u2", json!({}), ""), &mapping(&watched)).unwrap_err(),
            Skip::NotWatched
        );
        assert_eq!(
            posted_to_inbound(&json!({"post": "not json"}), &mapping(&all)).unwrap_err(),
            Skip::Malformed
        );
        assert_eq!(
            posted_to_inbound(&json!({}), &mapping(&all)).unwrap_err(),
            Skip::Malformed
        );
    }

    #[test]
    fn mentions_must_be_whole_words() {
        assert_eq!(strip_mention("@stormbot run", "stormbot"), (true, "run"));
        assert_eq!(strip_mention("@stormbot", "stormbot"), (true, ""));
        assert_eq!(
            strip_mention("@stormbotx run", "stormbot"),
            (false, "@stormbotx run")
        );
        assert_eq!(
            strip_mention("hi @stormbot", "stormbot"),
            (false, "hi @stormbot")
        );
        assert_eq!(strip_mention("@é", "stormbot"), (false, "@é"));
    }

    #[test]
    fn frames_parse() {
        assert_eq!(
            parse_frame(r#"{"status":"OK","seq_reply":1}"#),
            Some(WsFrame::Reply {
                status: "OK".into(),
                seq_reply: 1,
                error: None
            })
        );
        match parse_frame(
            r#"{"event":"hello","data":{"server_version":"9"},"broadcast":{},"seq":0}"#,
        ) {
            Some(WsFrame::Event { event, seq, .. }) => {
                assert_eq!(event, "hello");
                assert_eq!(seq, Some(0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_frame("nonsense"), None);
        assert_eq!(parse_frame("{}"), None);
    }

    #[test]
    fn extra_becomes_attachments() {
        assert_eq!(props_from_extra(None), None);
        assert_eq!(props_from_extra(Some(&json!({"slack": {}}))), None);
        let p = props_from_extra(Some(
            &json!({"color": "#f00", "mattermost": {"title": "T"}}),
        ))
        .unwrap();
        assert_eq!(p, json!({"attachments": [{"title": "T", "color": "#f00"}]}));
        let p = props_from_extra(Some(
            &json!({"mattermost": {"attachments": [{"text": "x"}]}}),
        ))
        .unwrap();
        assert_eq!(p, json!({"attachments": [{"text": "x"}]}));
    }

    #[test]
    fn removals_of_the_bot_are_recognised() {
        let own = removed_from(
            &json!({"channel_id": "c1", "remover_id": "u9"}),
            &json!({"user_id": "bot1"}),
            "bot1",
        );
        assert_eq!(own.as_deref(), Some("c1"));
        let room = removed_from(
            &json!({"user_id": "bot1", "remover_id": "u9"}),
            &json!({"channel_id": "c2"}),
            "bot1",
        );
        assert_eq!(room.as_deref(), Some("c2"));
        assert_eq!(
            removed_from(
                &json!({"user_id": "u2"}),
                &json!({"channel_id": "c2"}),
                "bot1"
            ),
            None
        );
        assert!(looks_like_id("abcdefghijklmnopqrstuvwxyz"));
        assert!(!looks_like_id("town-square"));
    }

    #[test]
    fn retry_delays() {
        assert_eq!(
            retry_delay(Some("2"), Some("9"), 0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_delay(None, Some("3"), 0),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_delay(None, Some("1700000005"), 1_700_000_000),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_delay(Some("soon"), None, 0), None);
        assert_eq!(retry_delay(Some("-1"), None, 0), None);
    }
}
