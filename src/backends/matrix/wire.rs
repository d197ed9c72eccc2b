//! Matrix client-server API shapes and the pure mappings between them and the bridge's
//! messages: the `/sync` response, a room message → [`InboundMessage`], a reply → event
//! content (markdown body with an HTML `formatted_body`, `m.thread` relation), and the
//! rate-limit delay of a 429.
//!
//! Events are kept as JSON values and read field by field, so one malformed event is
//! skipped instead of failing the whole sync batch.

use std::{collections::HashMap, time::Duration};

use serde::Deserialize;
use serde_json::{json, Value};

use super::config::MsgType;
use crate::domain::message::{ChatUser, InboundMessage, Room, RoomKind};

/// The largest event content sent with its HTML; beyond it the plain body goes alone.
/// (Synapse refuses whole events over 65536 bytes; this leaves room for the envelope.)
const MAX_CONTENT_BYTES: usize = 60_000;

/// A `/sync` response, only the parts the bridge reads. Every part below `next_batch` is
/// read leniently: a part that is not the documented shape counts as empty instead of
/// failing the batch, which would stall the connection on the same position for ever.
#[derive(Debug, Default, Deserialize)]
pub struct SyncResponse {
    /// The position to pass as `since` next time.
    pub next_batch: String,
    /// Rooms by membership.
    #[serde(default, deserialize_with = "lenient")]
    pub rooms: SyncRooms,
    /// The account's global account data (`m.direct`).
    #[serde(default, deserialize_with = "lenient")]
    pub account_data: EventList,
}

/// `rooms` of a sync response.
#[derive(Debug, Default, Deserialize)]
pub struct SyncRooms {
    /// Rooms the bot is in.
    #[serde(default, deserialize_with = "lenient_map")]
    pub join: HashMap<String, JoinedRoom>,
    /// Rooms the bot is invited to.
    #[serde(default, deserialize_with = "lenient_map")]
    pub invite: HashMap<String, InvitedRoom>,
    /// Rooms the bot left or was removed from.
    #[serde(default, deserialize_with = "lenient_map")]
    pub leave: HashMap<String, JoinedRoom>,
}

/// A joined (or left) room's state and new timeline events.
#[derive(Debug, Default, Deserialize)]
pub struct JoinedRoom {
    /// State before the timeline.
    #[serde(default, deserialize_with = "lenient")]
    pub state: EventList,
    /// New events.
    #[serde(default, deserialize_with = "lenient")]
    pub timeline: EventList,
}

/// An invitation: the stripped state the inviter shared.
#[derive(Debug, Default, Deserialize)]
pub struct InvitedRoom {
    /// Stripped state events, among them the bot's own `m.room.member` invite.
    #[serde(default, deserialize_with = "lenient")]
    pub invite_state: EventList,
}

/// `{"events": [...]}`.
#[derive(Debug, Default, Deserialize)]
pub struct EventList {
    /// The events, unparsed.
    #[serde(default, deserialize_with = "lenient")]
    pub events: Vec<Value>,
}

/// `T`, or its default when the value is not a `T`.
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// A map whose entries that are not a `T` are left out (one bad room, not all rooms).
fn lenient_map<'de, D, T>(d: D) -> Result<HashMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    let Value::Object(map) = v else {
        return Ok(HashMap::new());
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| serde_json::from_value(v).ok().map(|t| (k, t)))
        .collect())
}

/// The filter every `/sync` uses: room messages, memberships and names; no presence,
/// typing or receipts.
pub fn sync_filter() -> String {
    json!({
        "presence": {"not_types": ["*"]},
        "account_data": {"types": ["m.direct"]},
        "room": {
            "state": {
                "types": ["m.room.name", "m.room.canonical_alias", "m.room.member"],
                "lazy_load_members": true
            },
            "timeline": {
                "types": ["m.room.message", "m.room.member", "m.room.name", "m.room.canonical_alias"],
                "limit": 50
            },
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]}
        }
    })
    .to_string()
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The bot's invitation in an invited room's stripped state: `(inviter, is_direct)`.
pub fn invitation(room: &InvitedRoom, bot_user_id: &str) -> Option<(String, bool)> {
    room.invite_state.events.iter().find_map(|e| {
        let own_invite = str_at(e, "type") == Some("m.room.member")
            && str_at(e, "state_key") == Some(bot_user_id)
            && e.pointer("/content/membership").and_then(Value::as_str) == Some("invite");
        own_invite.then(|| {
            (
                str_at(e, "sender").unwrap_or_default().to_owned(),
                e.pointer("/content/is_direct").and_then(Value::as_bool) == Some(true),
            )
        })
    })
}

/// Whether a left room's events say the bot was removed by someone else (a kick or ban),
/// not that it left by itself.
pub fn removed_by_other(room: &JoinedRoom, bot_user_id: &str) -> bool {
    room.state
        .events
        .iter()
        .chain(&room.timeline.events)
        .rfind(|e| {
            str_at(e, "type") == Some("m.room.member")
                && str_at(e, "state_key") == Some(bot_user_id)
        })
        .is_some_and(|e| {
            matches!(
                e.pointer("/content/membership").and_then(Value::as_str),
                Some("leave" | "ban")
            ) && str_at(e, "sender") != Some(bot_user_id)
        })
}

/// The timeline events after the bot's own latest join, or all of them when the join is
/// not among them (it came before this batch).
pub fn after_own_join<'a>(timeline: &'a [Value], bot_user_id: &str) -> &'a [Value] {
    let join = timeline.iter().rposition(|e| {
        str_at(e, "type") == Some("m.room.member")
            && str_at(e, "state_key") == Some(bot_user_id)
            && e.pointer("/content/membership").and_then(Value::as_str) == Some("join")
            && e.pointer("/unsigned/prev_content/membership")
                .and_then(Value::as_str)
                != Some("join")
    });
    match join {
        Some(i) => &timeline[i + 1..],
        None => timeline,
    }
}

/// What the bridge knows of a room from its state events: its name, canonical alias and the
/// display names of the members it has seen (members are lazy-loaded: the senders of the
/// messages synced, not everyone in a big room).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomInfo {
    /// `m.room.name`.
    pub name: Option<String>,
    /// `m.room.canonical_alias`.
    pub alias: Option<String>,
    /// User id → display name, for members who set one.
    pub member_names: HashMap<String, String>,
}

impl RoomInfo {
    /// Applies the name, alias and membership state events among `events`.
    pub fn apply<'a>(&mut self, events: impl IntoIterator<Item = &'a Value>) {
        for e in events {
            let Some(state_key) = str_at(e, "state_key") else {
                continue;
            };
            let text = |key: &str| {
                e.pointer(&format!("/content/{key}"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_owned)
            };
            match str_at(e, "type") {
                Some("m.room.name") if state_key.is_empty() => self.name = text("name"),
                Some("m.room.canonical_alias") if state_key.is_empty() => {
                    self.alias = text("alias")
                }
                Some("m.room.member") => match (text("membership").as_deref(), text("displayname"))
                {
                    (Some("join"), Some(name)) => {
                        self.member_names.insert(state_key.to_owned(), name);
                    }
                    _ => {
                        self.member_names.remove(state_key);
                    }
                },
                _ => {}
            }
        }
    }

    /// What access rules' `name:` patterns and messages see: the name, else the alias.
    pub fn display(&self) -> Option<String> {
        self.name.clone().or_else(|| self.alias.clone())
    }
}

/// `m.direct` account data → the set of direct rooms per user.
pub fn direct_rooms(account_data: &EventList) -> Option<HashMap<String, Vec<String>>> {
    let event = account_data
        .events
        .iter()
        .rev()
        .find(|e| str_at(e, "type") == Some("m.direct"))?;
    Some(parse_direct(event.get("content")?))
}

/// The content of an `m.direct` event (`{"@user:hs": ["!room:hs", ...]}`).
pub fn parse_direct(content: &Value) -> HashMap<String, Vec<String>> {
    content
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(user, rooms)| {
                    let rooms = rooms
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    (user.clone(), rooms)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the mapping needs to know besides the event.
#[derive(Debug)]
pub struct Mapping<'a> {
    /// The `[[chat]]` connection name.
    pub connection: &'a str,
    /// The bot's user id.
    pub bot_user_id: &'a str,
    /// Names a message may start with to address the bot (localpart, display name).
    pub bot_names: &'a [String],
    /// Users whose messages are never commands.
    pub ignore_users: &'a [String],
    /// Whether the room is a direct chat.
    pub direct: bool,
    /// The room's display name.
    pub room_name: Option<String>,
    /// Display names of the room's members (for messages; identity is the user id).
    pub member_names: &'a HashMap<String, String>,
    /// Open a thread under a command said outside one.
    pub reply_in_thread: bool,
    /// Now, in milliseconds since the epoch.
    pub now_ms: u64,
    /// Messages older than this (ms) are not commands; 0 means no limit.
    pub max_age_ms: u64,
}

/// Why a timeline event is not a message for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not an `m.room.message`, or a redacted one.
    NotAMessage,
    /// Sent by the bot itself.
    OwnMessage,
    /// Sent by a user in `ignore_users`.
    IgnoredUser,
    /// `m.notice` (bots), `m.emote`, images…: only `m.text` can be a command.
    NotText,
    /// An edit of an earlier message: running it again would repeat the command.
    Edit,
    /// Older than `max_command_age_secs`.
    TooOld,
    /// Required fields are missing.
    Malformed,
}

/// Maps an `m.room.message` timeline event in `room_id` to an inbound message.
pub fn message_to_inbound(
    room_id: &str,
    event: &Value,
    m: &Mapping<'_>,
) -> Result<InboundMessage, Skip> {
    if str_at(event, "type") != Some("m.room.message") {
        return Err(Skip::NotAMessage);
    }
    // A blank sender would be a user without an id; an empty event id, a thread root that
    // does not exist.
    let sender = str_at(event, "sender")
        .filter(|s| !s.trim().is_empty())
        .ok_or(Skip::Malformed)?;
    let event_id = str_at(event, "event_id")
        .filter(|s| !s.is_empty())
        .ok_or(Skip::Malformed)?;
    if sender == m.bot_user_id {
        return Err(Skip::OwnMessage);
    }
    if m.ignore_users.iter().any(|u| u == sender) {
        return Err(Skip::IgnoredUser);
    }
    let content = event.get("content").ok_or(Skip::NotAMessage)?;
    let relates = content.get("m.relates_to");
    if relates.and_then(|r| str_at(r, "rel_type")) == Some("m.replace")
        || content.get("m.new_content").is_some()
    {
        return Err(Skip::Edit);
    }
    match str_at(content, "msgtype") {
        Some("m.text") => {}
        Some(_) => return Err(Skip::NotText),
        None => return Err(Skip::NotAMessage),
    }
    if m.max_age_ms > 0 {
        let sent = event
            .get("origin_server_ts")
            .and_then(Value::as_u64)
            .unwrap_or(m.now_ms);
        if m.now_ms.saturating_sub(sent) > m.max_age_ms {
            return Err(Skip::TooOld);
        }
    }
    let body = str_at(content, "body").ok_or(Skip::Malformed)?;
    let body = if relates.and_then(|r| r.get("m.in_reply_to")).is_some() {
        strip_reply_fallback(body)
    } else {
        body
    };
    let (text, prefixed) = strip_mention(body.trim(), m.bot_user_id, m.bot_names);
    let mentioned = prefixed
        || content
            .pointer("/m.mentions/user_ids")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(m.bot_user_id)));
    let thread = match relates {
        Some(r) if str_at(r, "rel_type") == Some("m.thread") => {
            str_at(r, "event_id").map(str::to_owned)
        }
        _ if m.reply_in_thread && !m.direct => Some(event_id.to_owned()),
        _ => None,
    };
    Ok(InboundMessage {
        user: ChatUser {
            connection: m.connection.to_owned(),
            id: sender.to_owned(),
            name: m
                .member_names
                .get(sender)
                .cloned()
                .unwrap_or_else(|| sender.to_owned()),
        },
        room: Room {
            connection: m.connection.to_owned(),
            id: room_id.to_owned(),
            kind: if m.direct {
                RoomKind::Direct
            } else {
                RoomKind::Group
            },
            thread,
        },
        text: text.to_owned(),
        message_id: Some(event_id.to_owned()),
        mentioned,
        room_name: m.room_name.clone(),
        org: None,
    })
}

/// Removes the quoted `> ` lines (and the blank line after them) that clients put before a
/// reply's own text.
fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") && !body.starts_with(">\n") {
        return body;
    }
    let mut rest = body;
    while rest.starts_with('>') {
        rest = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// Strips a leading address of the bot: its user id, `@localpart`, or one of its names,
/// followed by `:`, `,` or a space. Returns the rest and whether an address was found.
fn strip_mention<'a>(text: &'a str, bot_user_id: &str, names: &[String]) -> (&'a str, bool) {
    let localpart_at = bot_user_id.split(':').next().unwrap_or(bot_user_id);
    let candidates = std::iter::once(bot_user_id)
        .chain(std::iter::once(localpart_at))
        .chain(names.iter().map(String::as_str))
        .filter(|c| !c.is_empty());
    for candidate in candidates {
        let Some(head) = text.get(..candidate.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(candidate) {
            continue;
        }
        let rest = &text[candidate.len()..];
        let rest = match rest.chars().next() {
            Some(':' | ',') => &rest[1..],
            Some(c) if c.is_whitespace() => rest,
            _ => continue,
        };
        return (rest.trim_start(), true);
    }
    (text, false)
}

/// The content of a reply: `body` is the text as is (markdown source), `formatted_body` its
/// HTML rendering; in a thread, an `m.thread` relation with the reply fallback for clients
/// without threads.
pub fn message_content(
    text: &str,
    msgtype: MsgType,
    thread: Option<&str>,
    in_reply_to: Option<&str>,
) -> Value {
    let mut content = json!({
        "msgtype": msgtype.as_str(),
        "body": text,
        "format": "org.matrix.custom.html",
        "formatted_body": markdown_to_html(text),
    });
    if let Some(root) = thread {
        content["m.relates_to"] = json!({
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": true,
            "m.in_reply_to": {"event_id": in_reply_to.unwrap_or(root)},
        });
    }
    if content.to_string().len() > MAX_CONTENT_BYTES {
        if let Some(obj) = content.as_object_mut() {
            obj.remove("format");
            obj.remove("formatted_body");
        }
    }
    content
}

/// Markdown → HTML for `formatted_body`. Line breaks are kept (command output is mostly
/// plain lines), and raw HTML in the text is escaped rather than passed through: it comes
/// from command output, not from someone who meant it as markup.
pub fn markdown_to_html(text: &str) -> String {
    use pulldown_cmark::{html, Event, Options, Parser};
    let parser = Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES).map(
        |event| match event {
            Event::SoftBreak => Event::HardBreak,
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            other => other,
        },
    );
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    html::push_html(&mut out, parser);
    out.trim_end().to_owned()
}

/// A Matrix error body's `errcode` and `error`.
pub fn error_code(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    (
        str_at(&v, "errcode").unwrap_or_default().to_owned(),
        str_at(&v, "error").unwrap_or_default().to_owned(),
    )
}

/// How long a 429 asks to wait: the body's `retry_after_ms`, else `Retry-After` seconds,
/// else one second.
pub fn retry_delay(body: &[u8], retry_after_header: Option<&str>) -> Duration {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(ms) = v.get("retry_after_ms").and_then(Value::as_u64) {
        return Duration::from_millis(ms);
    }
    retry_after_header
        .and_then(|h| h.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "@stormbridge:example.org";

    fn mapping(direct: bool) -> Mapping<'static> {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        static IGNORE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        static MEMBERS: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
        Mapping {
            connection: "mx",
            bot_user_id: BOT,
            bot_names: NAMES.get_or_init(|| vec!["StormBridge".into(), "stormbridge".into()]),
            ignore_users: IGNORE.get_or_init(|| vec!["@otherbot:example.org".into()]),
            direct,
            room_name: Some("Ops".into()),
            member_names: MEMBERS
                .get_or_init(|| HashMap::from([("@alice:example.org".into(), "Alice".into())])),
            reply_in_thread: false,
            now_ms: 1_000_000,
            max_age_ms: 60_000,
        }
    }

    fn message(sender: &str, content: Value) -> Value {
        json!({
            "type": "m.room.message", "sender": sender, "event_id": "$ev1",
            "origin_server_ts": 999_000, "content": content,
        })
    }

    #[test]
    fn a_room_message_maps_to_user_room_and_event() {
        let e = message(
            "@alice:example.org",
            json!({"msgtype": "m.text", "body": "!st2 run date"}),
        );
        let m = message_to_inbound("!room:example.org", &e, &mapping(false)).unwrap();
        assert_eq!(m.user.id, "@alice:example.org");
        assert_eq!(m.user.name, "Alice");
        assert_eq!(m.user.connection, "mx");
        assert_eq!(m.room.id, "!room:example.org");
        assert_eq!(m.room.kind, RoomKind::Group);
        assert_eq!(m.room.thread, None);
        assert_eq!(m.text, "!st2 run date");
        assert_eq!(m.message_id.as_deref(), Some("$ev1"));
        assert_eq!(m.room_name.as_deref(), Some("Ops"));
        assert!(!m.mentioned);
        let d = message_to_inbound("!dm:example.org", &e, &mapping(true)).unwrap();
        assert_eq!(d.room.kind, RoomKind::Direct);
    }

    #[test]
    fn thread_messages_keep_their_thread_and_reply_in_thread_opens_one() {
        let e = message(
            "@alice:example.org",
            json!({"msgtype": "m.text", "body": "!st2 run date",
                   "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}),
        );
        let m = message_to_inbound("!r:x", &e, &mapping(false)).unwrap();
        assert_eq!(m.room.thread.as_deref(), Some("$root"));
        let plain = message(
            "@alice:example.org",
            json!({"msgtype": "m.text", "body": "!st2 run date"}),
        );
        let mut opts = mapping(false);
        opts.reply_in_thread = true;
        let m = message_to_inbound("!r:x", &plain, &opts).unwrap();
        assert_eq!(m.room.thread.as_deref(), Some("$ev1"));
        opts.direct = true;
        let m = message_to_inbound("!r:x", &plain, &opts).unwrap();
        assert_eq!(m.room.thread, None, "direct chats are not threaded");
    }

    #[test]
    fn mentions_are_recognised_and_stripped() {
        for body in [
            "StormBridge: st2 run date",
            "stormbridge, st2 run date",
            "@stormbridge:example.org st2 run date",
            "@stormbridge st2 run date",
        ] {
            let e = message(
                "@alice:example.org",
                json!({"msgtype": "m.text", "body": body}),
            );
            let m = message_to_inbound("!r:x", &e, &mapping(false)).unwrap();
            assert!(m.mentioned, "{body}");
            assert_eq!(m.text, "st2 run date", "{body}");
        }
        let e = message(
            "@alice:example.org",
            json!({"msgtype": "m.text", "body": "stormbridgeX run"}),
        );
        assert!(
            !message_to_inbound("!r:x", &e, &mapping(false))
                .unwrap()
                .mentioned
        );
        let e = message(
            "@alice:example.org",
            json!({"msgtype": "m.text", "body": "hey run date",
                   "m.mentions": {"user_ids": [BOT]}}),
        );
        assert!(
            message_to_inbound("!r:x", &e, &mapping(false))
                .unwrap()
                .mentioned
        );
    }

    #[test]
    fn bots_notices_edits_and_old_messages_are_not_commands() {
        let text = json!({"msgtype": "m.text", "body": "!st2 run date"});
        let m = mapping(false);
        assert_eq!(
            message_to_inbound("!r:x", &message(BOT, text.clone()), &m),
            Err(Skip::OwnMessage)
        );
        assert_eq!(
            message_to_inbound("!r:x", &message("@otherbot:example.org", text.clone()), &m),
            Err(Skip::IgnoredUser)
        );
        assert_eq!(
            message_to_inbound(
                "!r:x",
                &message(
                    "@bob:example.org",
                    json!({"msgtype": "m.notice", "body": "!st2 run date"})
                ),
                &m
            ),
            Err(Skip::NotText)
        );
        let edit = json!({"msgtype": "m.text", "body": "* !st2 run date",
            "m.new_content": {"msgtype": "m.text", "body": "!st2 run date"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$ev0"}});
        assert_eq!(
            message_to_inbound("!r:x", &message("@bob:example.org", edit), &m),
            Err(Skip::Edit)
        );
        let mut old = message("@bob:example.org", text);
        old["origin_server_ts"] = json!(1);
        assert_eq!(message_to_inbound("!r:x", &old, &m), Err(Skip::TooOld));
        let redacted =
            json!({"type": "m.room.message", "sender": "@bob:x", "event_id": "$e", "content": {}});
        assert_eq!(
            message_to_inbound("!r:x", &redacted, &m),
            Err(Skip::NotAMessage)
        );
        assert_eq!(
            message_to_inbound("!r:x", &json!({"type": "m.room.message"}), &m),
            Err(Skip::Malformed)
        );
        assert_eq!(
            message_to_inbound("!r:x", &json!("not an object"), &m),
            Err(Skip::NotAMessage)
        );
    }

    #[test]
    fn a_reply_fallback_quote_is_not_part_of_the_command() {
        let e = message(
            "@alice:example.org",
            json!({"msgtype": "m.text",
                   "body": "> <@bob:example.org> deploy failed\n> twice\n\n!st2 run date",
                   "m.relates_to": {"m.in_reply_to": {"event_id": "$q"}}}),
        );
        let m = message_to_inbound("!r:x", &e, &mapping(false)).unwrap();
        assert_eq!(m.text, "!st2 run date");
    }

    #[test]
    fn reply_content_has_html_and_a_thread_relation() {
        let c = message_content(
            "**done**\nline two <b>x</b>",
            MsgType::Notice,
            Some("$root"),
            Some("$cmd"),
        );
        assert_eq!(c["msgtype"], "m.notice");
        assert_eq!(c["body"], "**done**\nline two <b>x</b>");
        assert_eq!(c["format"], "org.matrix.custom.html");
        let html = c["formatted_body"].as_str().unwrap();
        assert!(html.contains("<strong>done</strong><br />"), "{html}");
        assert!(
            html.contains("&lt;b&gt;x&lt;/b&gt;"),
            "raw HTML is escaped: {html}"
        );
        assert_eq!(c["m.relates_to"]["rel_type"], "m.thread");
        assert_eq!(c["m.relates_to"]["event_id"], "$root");
        assert_eq!(c["m.relates_to"]["m.in_reply_to"]["event_id"], "$cmd");
        let plain = message_content("x", MsgType::Text, None, None);
        assert_eq!(plain["msgtype"], "m.text");
        assert!(plain.get("m.relates_to").is_none());
        let huge = "| a | b |\n|---|---|\n".to_owned() + &"| 1 | 2 |\n".repeat(5000);
        let c = message_content(&huge, MsgType::Notice, None, None);
        assert!(c.get("formatted_body").is_none(), "too big with HTML");
        assert_eq!(c["body"], huge.as_str());
    }

    #[test]
    fn sync_parts_are_read_leniently() {
        let raw = json!({
            "next_batch": "s72",
            "account_data": {"events": [{"type": "m.direct", "content": {"@alice:x": ["!dm:x"], "@bad:x": 5}}]},
            "rooms": {
                "join": {"!r:x": {"timeline": {"events": [
                    {"type": "m.room.name", "state_key": "", "content": {"name": "Ops"}},
                    42
                ]}, "state": {"events": [{"type": "m.room.canonical_alias", "state_key": "", "content": {"alias": "#ops:x"}}]}}},
                "invite": {"!i:x": {"invite_state": {"events": [
                    {"type": "m.room.member", "state_key": BOT, "sender": "@alice:x", "content": {"membership": "invite", "is_direct": true}}
                ]}}},
                "leave": {"!l:x": {"timeline": {"events": [
                    {"type": "m.room.member", "state_key": BOT, "sender": "@alice:x", "content": {"membership": "leave"}}
                ]}}, "!self:x": {"timeline": {"events": [
                    {"type": "m.room.member", "state_key": BOT, "sender": BOT, "content": {"membership": "leave"}}
                ]}}}
            }
        });
        let sync: SyncResponse = serde_json::from_value(raw).unwrap();
        assert_eq!(sync.next_batch, "s72");
        let direct = direct_rooms(&sync.account_data).unwrap();
        assert_eq!(direct["@alice:x"], vec!["!dm:x".to_owned()]);
        assert!(direct["@bad:x"].is_empty());
        let joined = &sync.rooms.join["!r:x"];
        let mut names = RoomInfo::default();
        names.apply(joined.state.events.iter().chain(&joined.timeline.events));
        assert_eq!(names.display().as_deref(), Some("Ops"));
        assert_eq!(names.alias.as_deref(), Some("#ops:x"));
        let member = |membership: &str, name: Option<&str>| json!({"type": "m.room.member", "state_key": "@alice:x", "content": {"membership": membership, "displayname": name}});
        names.apply([&member("join", Some("Alice A."))]);
        assert_eq!(names.member_names["@alice:x"], "Alice A.");
        names.apply([&member("join", None)]);
        assert!(
            names.member_names.is_empty(),
            "a removed display name is forgotten"
        );
        names.apply([&member("join", Some("A")), &member("leave", Some("A"))]);
        assert!(
            names.member_names.is_empty(),
            "members who left are forgotten"
        );
        assert_eq!(
            invitation(&sync.rooms.invite["!i:x"], BOT),
            Some(("@alice:x".into(), true))
        );
        assert!(removed_by_other(&sync.rooms.leave["!l:x"], BOT));
        assert!(!removed_by_other(&sync.rooms.leave["!self:x"], BOT));
    }

    #[test]
    fn messages_from_before_the_bots_join_are_history() {
        let msg = |id: &str| json!({"type": "m.room.message", "event_id": id, "sender": "@a:x", "content": {"msgtype": "m.text", "body": "!st2 run date"}});
        let join = json!({"type": "m.room.member", "state_key": BOT, "sender": BOT, "content": {"membership": "join"}});
        let profile_change = json!({"type": "m.room.member", "state_key": BOT, "sender": BOT,
            "content": {"membership": "join", "displayname": "new"},
            "unsigned": {"prev_content": {"membership": "join"}}});
        let timeline = vec![
            msg("$old"),
            join,
            msg("$new"),
            profile_change,
            msg("$newer"),
        ];
        let ids: Vec<_> = after_own_join(&timeline, BOT)
            .iter()
            .filter_map(|e| e["event_id"].as_str())
            .collect();
        assert_eq!(ids, ["$new", "$newer"]);
        let plain = vec![msg("$a"), msg("$b")];
        assert_eq!(after_own_join(&plain, BOT).len(), 2);
    }

    #[test]
    fn a_malformed_part_of_a_sync_batch_does_not_fail_the_batch() {
        let raw = json!({
            "next_batch": "s9",
            "account_data": "nonsense",
            "rooms": {
                "join": {
                    "!bad:x": 7,
                    "!odd:x": {"timeline": {"events": "not a list"}},
                    "!good:x": {"timeline": {"events": [{"type": "m.room.message"}]}}
                },
                "invite": [],
                "leave": {"!l:x": {"state": null}}
            }
        });
        let sync: SyncResponse = serde_json::from_value(raw).unwrap();
        assert_eq!(sync.next_batch, "s9");
        assert!(sync.account_data.events.is_empty());
        assert!(!sync.rooms.join.contains_key("!bad:x"));
        assert!(sync.rooms.join["!odd:x"].timeline.events.is_empty());
        assert_eq!(sync.rooms.join["!good:x"].timeline.events.len(), 1);
        assert!(sync.rooms.invite.is_empty());
        assert!(sync.rooms.leave.contains_key("!l:x"));
        assert!(
            serde_json::from_value::<SyncResponse>(json!({"rooms": {}})).is_err(),
            "no position, no batch"
        );
    }

    #[test]
    fn rate_limit_delays() {
        assert_eq!(
            retry_delay(
                br#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":4581}"#,
                Some("5")
            ),
            Duration::from_millis(4581)
        );
        assert_eq!(retry_delay(b"", Some("3")), Duration::from_secs(3));
        assert_eq!(retry_delay(b"<html>", None), Duration::from_secs(1));
        assert_eq!(
            error_code(br#"{"errcode":"M_FORBIDDEN","error":"nope"}"#),
            ("M_FORBIDDEN".into(), "nope".into())
        );
    }
}
