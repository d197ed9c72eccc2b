//! Rocket.Chat's wire shapes: the realtime API's DDP messages (what the server sends, what
//! the bridge writes), the message object of `stream-room-messages` events and how one
//! becomes an [`InboundMessage`], the outgoing message's text and attachments, and the REST
//! rate-limit answers. Pure functions, unit- and property-tested without a server.
//!
//! References: the realtime API (https://developer.rocket.chat/reference/api/realtime-api),
//! its login method (https://developer.rocket.chat/apidocs/login-realtime), the
//! `stream-room-messages` subscription
//! (https://developer.rocket.chat/apidocs/stream-room-messages-realtime), the message object
//! (https://developer.rocket.chat/apidocs/message) and the REST API's rate limiting
//! (https://developer.rocket.chat/apidocs, "Rate limiting").

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::{
    chunk::{split_message, LengthUnit},
    message::{ChatUser, InboundMessage, Room, RoomKind},
};

/// The subscription that carries every message of every room the bot is in.
pub const MY_MESSAGES: &str = "__my_messages__";
/// The collection its events arrive in.
pub const ROOM_MESSAGES: &str = "stream-room-messages";

/// An error object in a DDP `result` or `nosub` (a `Meteor.Error`: `error` is a code, a
/// number or a word, `reason` and `message` the words).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DdpError {
    /// `error`: `403`, `too-many-requests`, `not-allowed`, …
    pub error: String,
    /// `reason`, when given.
    pub reason: Option<String>,
}

impl DdpError {
    fn of(v: &Value) -> Self {
        let error = match v.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let reason = ["reason", "message"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned);
        Self { error, reason }
    }

    /// The error in a few words (never a token: the server does not echo it).
    pub fn describe(&self) -> String {
        match (&self.reason, self.error.is_empty()) {
            (Some(reason), true) => reason.clone(),
            (Some(reason), false) => format!("{reason} ({})", self.error),
            (None, false) => self.error.clone(),
            (None, true) => "no detail".to_owned(),
        }
    }

    /// The server's DDP rate limiter refused the call: worth trying again later.
    pub fn is_rate_limit(&self) -> bool {
        self.error == "too-many-requests"
    }
}

/// A DDP message from the server, as far as the bridge cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Ddp {
    /// `{"server_id": "0"}`, which Meteor sends before anything else.
    ServerId,
    /// `connected`: the `connect` was accepted.
    Connected {
        /// The DDP session id.
        session: String,
    },
    /// `failed`: the server speaks no DDP version the bridge offered.
    Failed {
        /// The version the server would speak.
        version: Option<String>,
    },
    /// `ping`: must be answered with a `pong` (with the same `id`), or the server closes the
    /// connection.
    Ping {
        /// The ping's id, if it had one.
        id: Option<String>,
    },
    /// `pong`: the answer to the bridge's keepalive.
    Pong,
    /// `result`: the answer to a method call.
    Result {
        /// The call's id.
        id: String,
        /// The error, when the call failed.
        error: Option<DdpError>,
        /// The result, when it succeeded.
        result: Value,
    },
    /// `ready`: these subscriptions are live.
    Ready {
        /// Their ids.
        subs: Vec<String>,
    },
    /// `nosub`: a subscription was refused (or ended).
    NoSub {
        /// Its id.
        id: String,
        /// Why, when the server said.
        error: Option<DdpError>,
    },
    /// `changed` in a collection: a stream event.
    Changed {
        /// The collection (`stream-room-messages`).
        collection: String,
        /// `fields`: `eventName` and `args`.
        fields: Value,
    },
    /// `error`: the server could not read what the bridge sent.
    Error {
        /// Its reason.
        reason: String,
    },
    /// Any other DDP message (`added`, `updated`, `removed`, …), by its `msg`.
    Other(String),
}

/// Parses a text frame; `None` for anything that is not a DDP message.
pub fn parse_frame(text: &str) -> Option<Ddp> {
    let v: Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object()?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(msg) = s("msg") else {
        return obj.contains_key("server_id").then_some(Ddp::ServerId);
    };
    Some(match msg.as_str() {
        "connected" => Ddp::Connected {
            session: s("session").unwrap_or_default(),
        },
        "failed" => Ddp::Failed {
            version: s("version"),
        },
        "ping" => Ddp::Ping { id: s("id") },
        "pong" => Ddp::Pong,
        "result" => Ddp::Result {
            id: s("id")?,
            error: obj.get("error").filter(|e| !e.is_null()).map(DdpError::of),
            result: obj.get("result").cloned().unwrap_or(Value::Null),
        },
        "ready" => Ddp::Ready {
            subs: obj
                .get("subs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        },
        "nosub" => Ddp::NoSub {
            id: s("id")?,
            error: obj.get("error").filter(|e| !e.is_null()).map(DdpError::of),
        },
        "changed" => Ddp::Changed {
            collection: s("collection").unwrap_or_default(),
            fields: obj.get("fields").cloned().unwrap_or(Value::Null),
        },
        "error" => Ddp::Error {
            reason: s("reason").unwrap_or_else(|| "no reason given".to_owned()),
        },
        other => Ddp::Other(other.to_owned()),
    })
}

/// `connect`, the first message on a new socket: DDP version 1, the only one offered.
pub fn connect() -> String {
    json!({"msg": "connect", "version": "1", "support": ["1"]}).to_string()
}

/// `login` with `resume`: the realtime API takes a personal access token there.
pub fn login_resume(id: &str, token: &str) -> String {
    json!({"msg": "method", "method": "login", "id": id, "params": [{"resume": token}]}).to_string()
}

/// The subscription to every message of the bot's rooms.
pub fn subscribe_my_messages(id: &str) -> String {
    json!({"msg": "sub", "id": id, "name": ROOM_MESSAGES, "params": [MY_MESSAGES, false]})
        .to_string()
}

/// The answer to the server's `ping`.
pub fn pong(id: Option<&str>) -> String {
    match id {
        Some(id) => json!({"msg": "pong", "id": id}),
        None => json!({"msg": "pong"}),
    }
    .to_string()
}

/// The bridge's keepalive.
pub fn ping(id: &str) -> String {
    json!({"msg": "ping", "id": id}).to_string()
}

/// The author of a message (`u`).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Author {
    /// User id.
    #[serde(default, rename = "_id")]
    pub id: String,
    /// Username (what `@mentions` use).
    #[serde(default)]
    pub username: String,
}

/// A message as the stream carries it (the fields the bridge uses).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Message {
    /// Message id.
    #[serde(default, rename = "_id")]
    pub id: String,
    /// Room id.
    #[serde(default)]
    pub rid: String,
    /// Text.
    #[serde(default)]
    pub msg: String,
    /// Author.
    #[serde(default)]
    pub u: Author,
    /// The thread's first message, for a message in a thread.
    #[serde(default)]
    pub tmid: Option<String>,
    /// The type of a system message (`uj`, `ul`, `au`, `rm`, …); none for what people say.
    #[serde(default)]
    pub t: Option<String>,
    /// Set once the message was edited (the stream sends the edited message again).
    #[serde(default, rename = "editedAt")]
    pub edited_at: Option<Value>,
    /// Set on messages sent by a bot or an integration.
    #[serde(default)]
    pub bot: Option<Value>,
}

/// The event's second argument: about the room the message is in.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RoomMeta {
    /// `c` (channel), `p` (private group), `d` (direct), `l` (livechat).
    #[serde(default, rename = "roomType")]
    pub room_type: Option<String>,
    /// The room's name.
    #[serde(default, rename = "roomName")]
    pub room_name: Option<String>,
}

/// What the connection knows when it maps a message.
pub struct Mapping<'a> {
    /// The `[[chat]]` name.
    pub connection: &'a str,
    /// The bot's user id.
    pub bot_id: &'a str,
    /// The bot's username, for `@mentions`.
    pub bot_username: &'a str,
    /// Start a thread under a command that is not in one.
    pub reply_in_thread: bool,
}

/// Why a stream event was not turned into a message (for debug logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not an event of `stream-room-messages`.
    NotMessages,
    /// No message in it, or one without an id, a room or an author.
    Malformed,
    /// The bridge's own message.
    Own,
    /// A bot's or an integration's message.
    Bot,
    /// A system message (someone joined, a topic changed, …).
    System,
    /// An edit of an earlier message.
    Edited,
    /// A livechat room (its visitors are no accounts).
    Livechat,
    /// No text.
    Empty,
}

/// The message and room of a `changed` event of `stream-room-messages` (`fields.args`).
pub fn message_of(collection: &str, fields: &Value) -> Result<(Message, RoomMeta), Skip> {
    if collection != ROOM_MESSAGES {
        return Err(Skip::NotMessages);
    }
    let args = fields
        .get("args")
        .and_then(Value::as_array)
        .ok_or(Skip::Malformed)?;
    let first = args.first().ok_or(Skip::Malformed)?;
    let message = Message::deserialize(first).map_err(|_| Skip::Malformed)?;
    let meta = args
        .get(1)
        .and_then(|m| RoomMeta::deserialize(m).ok())
        .unwrap_or_default();
    Ok((message, meta))
}

/// Maps a `changed` event of `stream-room-messages` to a chat message.
pub fn to_inbound(
    collection: &str,
    fields: &Value,
    m: &Mapping<'_>,
) -> Result<InboundMessage, Skip> {
    let (message, meta) = message_of(collection, fields)?;
    // A blank author or room would be a user or room without an id.
    if message.id.trim().is_empty()
        || message.rid.trim().is_empty()
        || message.u.id.trim().is_empty()
    {
        return Err(Skip::Malformed);
    }
    if message.u.id == m.bot_id {
        return Err(Skip::Own);
    }
    if message
        .bot
        .as_ref()
        .is_some_and(|b| !matches!(b, Value::Bool(false)))
    {
        return Err(Skip::Bot);
    }
    if message.t.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(Skip::System);
    }
    if message.edited_at.is_some() {
        return Err(Skip::Edited);
    }
    let kind = match meta.room_type.as_deref() {
        Some("d") => RoomKind::Direct,
        Some("l") => return Err(Skip::Livechat),
        Some(_) => RoomKind::Group,
        // A direct room's id is its two members' ids together.
        None if !m.bot_id.is_empty()
            && message.rid.len() > m.bot_id.len()
            && message.rid.contains(m.bot_id) =>
        {
            RoomKind::Direct
        }
        None => RoomKind::Group,
    };
    let (mentioned, text) = strip_mention(&message.msg, m.bot_username);
    if text.trim().is_empty() && !mentioned {
        return Err(Skip::Empty);
    }
    let thread = match message.tmid.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(tmid) => Some(tmid.to_owned()),
        None if m.reply_in_thread => Some(message.id.clone()),
        None => None,
    };
    let name = match message.u.username.trim() {
        "" => message.u.id.clone(),
        username => username.to_owned(),
    };
    let room_name = match kind {
        RoomKind::Direct => None,
        RoomKind::Group => meta.room_name.filter(|n| !n.trim().is_empty()),
    };
    Ok(InboundMessage {
        user: ChatUser {
            connection: m.connection.to_owned(),
            id: message.u.id.clone(),
            name,
        },
        room: Room {
            connection: m.connection.to_owned(),
            id: message.rid.clone(),
            kind,
            thread,
        },
        text: text.to_owned(),
        message_id: Some(message.id),
        mentioned,
        room_name,
        org: None,
    })
}

/// `@bot text` → `(true, "text")`; the mention must be a whole word at the start (followed
/// by the end, a space, `:` or `,`), the username compared without regard to case.
pub fn strip_mention<'a>(message: &'a str, bot_username: &str) -> (bool, &'a str) {
    if bot_username.is_empty() {
        return (false, message);
    }
    let Some(rest) = message.trim_start().strip_prefix('@') else {
        return (false, message);
    };
    let Some(head) = rest.get(..bot_username.len()) else {
        return (false, message);
    };
    if !head.eq_ignore_ascii_case(bot_username) {
        return (false, message);
    }
    let after = &rest[bot_username.len()..];
    match after.chars().next() {
        None => (true, ""),
        Some(c) if c.is_whitespace() || c == ':' || c == ',' => {
            (true, after.trim_start_matches([':', ',']).trim_start())
        }
        Some(_) => (false, message),
    }
}

/// A string's length as the server measures it (JavaScript's `length`: UTF-16 code units).
pub fn js_length(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` in parts the server takes: at most `limit` UTF-16 code units each (characters
/// outside the Basic Multilingual Plane count two), split on line breaks and spaces where
/// it can be. A `limit` of 0 means unlimited.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    for part in split_message(text, limit, LengthUnit::Chars) {
        push_within(part, limit, &mut parts);
    }
    parts
}

fn push_within(part: String, limit: usize, parts: &mut Vec<String>) {
    let units = js_length(&part);
    let chars = part.chars().count();
    if limit == 0 || units <= limit || chars <= 1 {
        parts.push(part);
        return;
    }
    // Too many characters that count two: split again, at fewer characters.
    let fewer = (limit * chars / units).clamp(1, chars - 1);
    let smaller = split_message(&part, fewer, LengthUnit::Chars);
    if smaller.iter().any(|s| s.chars().count() >= chars) {
        // No progress (a tiny limit, a code fence reopened): cut by the server's measure.
        cut_within(&part, limit, parts);
        return;
    }
    for s in smaller {
        push_within(s, limit, parts);
    }
}

/// `text` cut into runs of at most `limit` UTF-16 units, a character wider than that alone.
fn cut_within(text: &str, limit: usize, parts: &mut Vec<String>) {
    let mut current = String::new();
    let mut units = 0;
    for c in text.chars() {
        let width = c.len_utf16();
        if units + width > limit && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
            units = 0;
        }
        current.push(c);
        units += width;
    }
    if !current.is_empty() {
        parts.push(current);
    }
}

/// `attachments` for a message from a StackStorm `extra`: `extra.rocketchat.attachments`
/// as it is; other `extra.rocketchat` fields make one attachment (with `extra.color` as its
/// colour unless it sets its own).
pub fn attachments_from_extra(extra: Option<&Value>) -> Option<Value> {
    let rc = extra?.get("rocketchat")?.as_object()?;
    if let Some(attachments) = rc.get("attachments").filter(|a| a.is_array()) {
        return Some(attachments.clone());
    }
    let mut attachment = rc.clone();
    if !attachment.contains_key("color") {
        if let Some(color) = extra.and_then(|e| e.get("color")).filter(|c| c.is_string()) {
            attachment.insert("color".into(), color.clone());
        }
    }
    (!attachment.is_empty()).then(|| json!([attachment]))
}

/// Longest wait read from a rate-limit answer (a skewed clock must not silence the bridge).
const MAX_WAIT_SECS: f64 = 3600.0;

/// How long a 429 asks to wait: `Retry-After` (seconds) if a proxy sent one, else the
/// seconds the error text names ("You must wait 53 seconds before trying this endpoint
/// again"), else until `X-RateLimit-Reset`.
pub fn retry_delay(
    retry_after: Option<&str>,
    error_text: Option<&str>,
    reset: Option<&str>,
    now_ms: u64,
) -> Option<Duration> {
    let secs = retry_after
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .or_else(|| error_text.and_then(seconds_named));
    match secs {
        Some(s) => Some(Duration::from_secs_f64(s.min(MAX_WAIT_SECS))),
        None => until_reset(reset?, now_ms),
    }
}

/// The pause after a success that used up the rate-limit window (`X-RateLimit-Remaining`
/// 0 or less): until `X-RateLimit-Reset`.
pub fn window_pause(remaining: Option<&str>, reset: Option<&str>, now_ms: u64) -> Option<Duration> {
    let remaining: f64 = remaining?.trim().parse().ok()?;
    if remaining > 0.0 {
        return None;
    }
    until_reset(reset?, now_ms)
}

/// `X-RateLimit-Reset` as a wait: Rocket.Chat sends the reset time in milliseconds since
/// the epoch; seconds since the epoch and a number of seconds are understood too.
pub fn until_reset(reset: &str, now_ms: u64) -> Option<Duration> {
    let v: f64 = reset
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    let now = now_ms as f64;
    let secs = if v > 1e12 {
        (v - now) / 1000.0
    } else if v > 1e9 {
        v - now / 1000.0
    } else {
        v
    };
    Some(Duration::from_secs_f64(secs.clamp(0.0, MAX_WAIT_SECS)))
}

/// `N` in "… wait N seconds …".
fn seconds_named(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("wait ")? + "wait ".len();
    let rest = &lower[at..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let after = rest[digits.len()..].trim_start();
    if !after.starts_with("second") {
        return None;
    }
    digits.parse::<f64>().ok().filter(|s| s.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "b0tb0tb0tb0tb0tb0";

    fn mapping() -> Mapping<'static> {
        Mapping {
            connection: "rc",
            bot_id: BOT,
            bot_username: "stormbot",
            reply_in_thread: false,
        }
    }

    /// A `changed` event as https://developer.rocket.chat/apidocs/stream-room-messages-realtime
    /// streams it: the message object, then the room's type and name.
    fn event(message: Value, meta: Value) -> (String, Value) {
        (
            ROOM_MESSAGES.to_owned(),
            json!({"eventName": MY_MESSAGES, "args": [message, meta]}),
        )
    }

    fn message(text: &str) -> Value {
        json!({
            "_id": "8gMsLe9ApZjo2D2iB", "rid": "EhpNtqqrMXT4QWk3z", "msg": text,
            "ts": {"$date": 1_675_949_759_484u64},
            "u": {"_id": "rYhzFRd2QZjNwAAXX", "username": "rodriq", "name": "Rodriq"},
            "_updatedAt": {"$date": 1_675_949_759_490u64}, "urls": [], "mentions": [], "channels": [],
        })
    }

    fn map(message: Value, meta: Value) -> Result<InboundMessage, Skip> {
        let (collection, fields) = event(message, meta);
        to_inbound(&collection, &fields, &mapping())
    }

    #[test]
    fn frames_of_the_realtime_api_parse() {
        assert_eq!(parse_frame(r#"{"server_id":"0"}"#), Some(Ddp::ServerId));
        assert_eq!(
            parse_frame(r#"{"msg":"connected","session":"Jm4wdpDjzxNHvHtBs"}"#),
            Some(Ddp::Connected {
                session: "Jm4wdpDjzxNHvHtBs".into()
            })
        );
        assert_eq!(
            parse_frame(r#"{"msg":"failed","version":"1"}"#),
            Some(Ddp::Failed {
                version: Some("1".into())
            })
        );
        assert_eq!(
            parse_frame(r#"{"msg":"ping"}"#),
            Some(Ddp::Ping { id: None })
        );
        assert_eq!(
            parse_frame(r#"{"msg":"ping","id":"7"}"#),
            Some(Ddp::Ping {
                id: Some("7".into())
            })
        );
        assert_eq!(parse_frame(r#"{"msg":"pong","id":"k1"}"#), Some(Ddp::Pong));
        // https://developer.rocket.chat/apidocs/login-realtime: success and error.
        match parse_frame(
            r#"{"msg":"result","id":"42","result":{"id":"3Dw26TXWxvi8gwfgM","token":"x","tokenExpires":{"$date":1696417505309},"type":"resume"}}"#,
        ) {
            Some(Ddp::Result {
                id,
                error: None,
                result,
            }) => {
                assert_eq!(id, "42");
                assert_eq!(result["id"], "3Dw26TXWxvi8gwfgM");
            }
            other => panic!("{other:?}"),
        }
        match parse_frame(
            r#"{"msg":"result","id":"42","error":{"error":403,"reason":"Incorrect password","message":"Incorrect password [403]","errorType":"Meteor.Error"}}"#,
        ) {
            Some(Ddp::Result { error: Some(e), .. }) => {
                assert_eq!(e.error, "403");
                assert_eq!(e.describe(), "Incorrect password (403)");
                assert!(!e.is_rate_limit());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_frame(r#"{"msg":"ready","subs":["89494"]}"#),
            Some(Ddp::Ready {
                subs: vec!["89494".into()]
            })
        );
        match parse_frame(
            r#"{"msg":"nosub","id":"s1","error":{"error":"not-allowed","reason":"Not allowed"}}"#,
        ) {
            Some(Ddp::NoSub { id, error: Some(e) }) => {
                assert_eq!(id, "s1");
                assert_eq!(e.describe(), "Not allowed (not-allowed)");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_frame(r#"{"msg":"added","collection":"users","id":"x","fields":{}}"#),
            Some(Ddp::Other("added".into()))
        );
        assert!(matches!(
            parse_frame(r#"{"msg":"error","reason":"Bad request"}"#),
            Some(Ddp::Error { .. })
        ));
        assert_eq!(parse_frame("not json"), None);
        assert_eq!(parse_frame("[]"), None);
        assert_eq!(parse_frame("{}"), None);
        assert_eq!(
            parse_frame(r#"{"msg":"result"}"#),
            None,
            "a result needs its id"
        );
    }

    #[test]
    fn what_the_bridge_writes_is_what_the_docs_show() {
        let v: Value = serde_json::from_str(&connect()).unwrap();
        assert_eq!(
            v,
            json!({"msg": "connect", "version": "1", "support": ["1"]})
        );
        let v: Value = serde_json::from_str(&login_resume("login-1", "pat")).unwrap();
        assert_eq!(
            v,
            json!({"msg": "method", "method": "login", "id": "login-1", "params": [{"resume": "pat"}]})
        );
        let v: Value = serde_json::from_str(&subscribe_my_messages("sub-1")).unwrap();
        assert_eq!(
            v,
            json!({"msg": "sub", "id": "sub-1", "name": "stream-room-messages", "params": ["__my_messages__", false]})
        );
        assert_eq!(pong(None), r#"{"msg":"pong"}"#);
        let v: Value = serde_json::from_str(&pong(Some("7"))).unwrap();
        assert_eq!(v, json!({"msg": "pong", "id": "7"}));
        let v: Value = serde_json::from_str(&ping("k1")).unwrap();
        assert_eq!(v, json!({"msg": "ping", "id": "k1"}));
    }

    #[test]
    fn a_channel_message_maps_to_user_room_and_name() {
        let m = map(
            message("@StormBot: !st2 run date"),
            json!({"roomParticipant": true, "roomType": "c", "roomName": "general"}),
        )
        .unwrap();
        assert_eq!(m.user.id, "rYhzFRd2QZjNwAAXX");
        assert_eq!(m.user.name, "rodriq");
        assert_eq!(m.user.connection, "rc");
        assert_eq!(m.room.id, "EhpNtqqrMXT4QWk3z");
        assert_eq!(m.room.kind, RoomKind::Group);
        assert_eq!(m.room.thread, None);
        assert_eq!(m.text, "!st2 run date");
        assert!(m.mentioned);
        assert_eq!(m.room_name.as_deref(), Some("general"));
        assert_eq!(m.message_id.as_deref(), Some("8gMsLe9ApZjo2D2iB"));
        assert_eq!(m.org, None);
    }

    #[test]
    fn private_groups_direct_rooms_and_threads() {
        let private = map(
            message("!st2 run date"),
            json!({"roomType": "p", "roomName": "ops"}),
        )
        .unwrap();
        assert_eq!(private.room.kind, RoomKind::Group);
        assert_eq!(private.room_name.as_deref(), Some("ops"));

        let direct = map(
            message("st2 run date"),
            json!({"roomType": "d", "roomName": "rodriq"}),
        )
        .unwrap();
        assert_eq!(direct.room.kind, RoomKind::Direct);
        assert_eq!(
            direct.room_name, None,
            "a direct room has no name of its own"
        );

        // Without the room's type, a room whose id holds the bot's is the direct one.
        let mut dm = message("st2 run date");
        dm["rid"] = json!(format!("rYhzFRd2QZjNwAAXX{BOT}"));
        assert_eq!(map(dm, json!({})).unwrap().room.kind, RoomKind::Direct);
        assert_eq!(
            map(message("x"), json!({})).unwrap().room.kind,
            RoomKind::Group
        );

        let mut threaded = message("!st2 run date");
        threaded["tmid"] = json!("r00tr00tr00tr00t1");
        let m = map(threaded, json!({"roomType": "c"})).unwrap();
        assert_eq!(m.room.thread.as_deref(), Some("r00tr00tr00tr00t1"));

        let (collection, fields) = event(message("!st2 run date"), json!({"roomType": "c"}));
        let m = to_inbound(
            &collection,
            &fields,
            &Mapping {
                reply_in_thread: true,
                ..mapping()
            },
        )
        .unwrap();
        assert_eq!(
            m.room.thread.as_deref(),
            Some("8gMsLe9ApZjo2D2iB"),
            "a new thread under the command"
        );
    }

    #[test]
    fn own_bot_system_edited_livechat_and_empty_messages_are_skipped() {
        let c = json!({"roomType": "c"});
        let mut own = message("!st2 run date");
        own["u"]["_id"] = json!(BOT);
        assert_eq!(map(own, c.clone()).unwrap_err(), Skip::Own);
        let mut bot = message("!st2 run date");
        bot["bot"] = json!({"i": "js.SDK"});
        assert_eq!(map(bot, c.clone()).unwrap_err(), Skip::Bot);
        let mut not_bot = message("!st2 run date");
        not_bot["bot"] = json!(false);
        assert!(map(not_bot, c.clone()).is_ok());
        let mut joined = message("rodriq");
        joined["t"] = json!("uj");
        assert_eq!(map(joined, c.clone()).unwrap_err(), Skip::System);
        let mut edited = message("!st2 run date");
        edited["editedAt"] = json!({"$date": 1_675_949_999_000u64});
        edited["editedBy"] = json!({"_id": "rYhzFRd2QZjNwAAXX", "username": "rodriq"});
        assert_eq!(map(edited, c.clone()).unwrap_err(), Skip::Edited);
        assert_eq!(
            map(message("hi"), json!({"roomType": "l"})).unwrap_err(),
            Skip::Livechat
        );
        assert_eq!(map(message("  "), c.clone()).unwrap_err(), Skip::Empty);
        assert!(map(message("@stormbot"), c.clone()).unwrap().mentioned);
        let mut no_author = message("x");
        no_author["u"]["_id"] = json!(" ");
        assert_eq!(map(no_author, c.clone()).unwrap_err(), Skip::Malformed);
        let mut wrong_type = message("x");
        wrong_type["msg"] = json!(12);
        assert_eq!(map(wrong_type, c.clone()).unwrap_err(), Skip::Malformed);
        assert_eq!(
            to_inbound("stream-notify-user", &json!({}), &mapping()).unwrap_err(),
            Skip::NotMessages
        );
        assert_eq!(
            to_inbound(ROOM_MESSAGES, &json!({"args": []}), &mapping()).unwrap_err(),
            Skip::Malformed
        );
    }

    #[test]
    fn mentions_must_be_whole_words_at_the_start() {
        assert_eq!(strip_mention("@stormbot run", "stormbot"), (true, "run"));
        assert_eq!(strip_mention("  @StormBot, run", "stormbot"), (true, "run"));
        assert_eq!(strip_mention("@stormbot", "stormbot"), (true, ""));
        assert_eq!(
            strip_mention("@stormbot.x run", "stormbot"),
            (false, "@stormbot.x run")
        );
        assert_eq!(
            strip_mention("@stormbotx run", "stormbot"),
            (false, "@stormbotx run")
        );
        assert_eq!(
            strip_mention("hi @stormbot", "stormbot"),
            (false, "hi @stormbot")
        );
        assert_eq!(strip_mention("@é", "stormbot"), (false, "@é"));
        assert_eq!(strip_mention("@x", ""), (false, "@x"));
    }

    #[test]
    fn parts_fit_the_servers_measure() {
        assert_eq!(split("short", 5000), vec!["short".to_owned()]);
        assert_eq!(split("anything", 0), vec!["anything".to_owned()]);
        // Emoji count two: 30 of them are 60 units, so a limit of 25 needs three parts.
        let emoji = "😀".repeat(30);
        let parts = split(&emoji, 25);
        assert!(parts.iter().all(|p| js_length(p) <= 25), "{parts:?}");
        assert_eq!(parts.concat(), emoji);
        let words = (0..200)
            .map(|i| format!("w{i}😀"))
            .collect::<Vec<_>>()
            .join(" ");
        let parts = split(&words, 40);
        assert!(parts.iter().all(|p| js_length(p) <= 40), "{parts:?}");
        let got: Vec<&str> = parts.iter().flat_map(|p| p.split_whitespace()).collect();
        let sent: Vec<&str> = words.split_whitespace().collect();
        assert_eq!(got, sent);
        // Absurd limits end, and keep every character.
        for limit in [1, 2, 3] {
            let text = "😀a😀\n```\n😀😀 b 😀\n```";
            let parts = split(text, limit);
            assert!(
                parts.iter().all(|p| js_length(p) <= limit.max(2)),
                "{limit}: {parts:?}"
            );
            let kept: String = parts
                .concat()
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '`')
                .collect();
            assert_eq!(kept, "😀a😀😀😀b😀", "{limit}");
        }
    }

    #[test]
    fn extra_becomes_attachments() {
        assert_eq!(attachments_from_extra(None), None);
        assert_eq!(attachments_from_extra(Some(&json!({"slack": {}}))), None);
        assert_eq!(
            attachments_from_extra(Some(
                &json!({"color": "#f00", "rocketchat": {"title": "T"}})
            )),
            Some(json!([{"title": "T", "color": "#f00"}]))
        );
        assert_eq!(
            attachments_from_extra(Some(
                &json!({"rocketchat": {"attachments": [{"text": "x"}]}})
            )),
            Some(json!([{"text": "x"}]))
        );
    }

    #[test]
    fn rate_limit_waits() {
        let now = 1_700_000_000_000;
        let text = "Error, too many requests. Please slow down. You must wait 53 seconds before trying this endpoint again. [error-too-many-requests]";
        assert_eq!(
            retry_delay(None, Some(text), Some("1700000010000"), now),
            Some(Duration::from_secs(53)),
            "the server's own words first: they do not depend on its clock"
        );
        assert_eq!(
            retry_delay(Some("2"), Some(text), None, now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_delay(None, Some("slow down"), Some("1700000002500"), now),
            Some(Duration::from_millis(2500)),
            "X-RateLimit-Reset is in milliseconds since the epoch"
        );
        assert_eq!(
            retry_delay(None, None, Some("1699999999000"), now),
            Some(Duration::ZERO),
            "a reset in the past"
        );
        assert_eq!(
            retry_delay(None, None, Some("1700000005"), now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_delay(None, None, Some("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_delay(Some("soon"), Some("wait a minute"), None, now),
            None
        );
        assert_eq!(
            retry_delay(None, None, Some("9e99"), now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            window_pause(Some("0"), Some("1700000001000"), now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(window_pause(Some("3"), Some("1700000001000"), now), None);
        assert_eq!(window_pause(None, Some("1700000001000"), now), None);
        assert_eq!(window_pause(Some("0"), None, now), None);
    }
}
