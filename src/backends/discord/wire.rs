//! Discord gateway and REST shapes, and how a `MESSAGE_CREATE` maps to a chat message.
//! Pure functions, unit-tested without a server.
//!
//! Payloads are typed with `twilight-model`: the envelope ([`Payload`]) is read with its
//! `d` left as raw JSON, and `d` is read into the type its opcode or event names (twilight's
//! `Hello` and `Interaction`; [`Ready`] and [`ChatMessage`] here, for the reasons they
//! give) only when the connection needs it.
//! Outgoing `Identify`, `Resume` and `Heartbeat` are twilight's structs, serialized.

use serde::{Deserialize, Deserializer};
use serde_json::{value::RawValue, Value};
use twilight_model::{
    gateway::{
        payload::outgoing::{
            identify::{IdentifyInfo, IdentifyProperties},
            Heartbeat, Identify, Resume,
        },
        Capabilities, CloseCode, Intents, OpCode, ShardId,
    },
    id::{
        marker::{ChannelMarker, GuildMarker, MessageMarker, UserMarker, WebhookMarker},
        Id,
    },
};

use crate::domain::message::{ChatUser, InboundMessage, Room, RoomKind};

/// The intents the bridge identifies with: GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: Intents = Intents::GUILD_MESSAGES
    .union(Intents::DIRECT_MESSAGES)
    .union(Intents::MESSAGE_CONTENT);

/// A gateway payload: the envelope typed, `d` kept as the raw JSON text it came in (no
/// `Value` tree is built) until [`Payload::data`] reads it as the type the opcode or event
/// calls for.
#[derive(Debug, Clone, Deserialize)]
pub struct Payload<'a> {
    /// Opcode (an opcode twilight does not know makes the frame unreadable: the bridge has
    /// nothing to do with it anyway).
    pub op: OpCode,
    /// Data (`None` when absent or `null`).
    #[serde(borrow, default)]
    pub d: Option<&'a RawValue>,
    /// Sequence number (dispatches only).
    #[serde(default)]
    pub s: Option<u64>,
    /// Event name (dispatches only).
    #[serde(default)]
    pub t: Option<String>,
}

impl<'a> Payload<'a> {
    /// `d` read as `T` (an absent `d` reads as `null`).
    pub fn data<T: Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        match self.d {
            Some(raw) => T::deserialize(raw),
            None => T::deserialize(serde_json::Value::Null),
        }
    }
}

/// Parses a gateway text frame's envelope; `None` when it is not one (not JSON, no known
/// `op`, a `s` that is not a sequence number, a `t` that is not a name).
pub fn parse(text: &str) -> Option<Payload<'_>> {
    serde_json::from_str(text).ok()
}

/// What the bridge reads of `READY`'s `d`. Not twilight's `Ready`: its `user` is a
/// `CurrentUser`, which requires `mfa_enabled` (optional in Discord's user object, and not
/// sent by the integration tests' gateway), and it requires `guilds`, `application` and `v`,
/// which the bridge does not use. A `READY` without the three fields here is skipped like
/// any other unreadable payload (the READY deadline then reconnects).
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    /// For `Resume`.
    pub session_id: String,
    /// Where to resume.
    pub resume_gateway_url: String,
    /// The bot.
    pub user: ReadyUser,
}

/// `READY`'s `user`: the bot.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadyUser {
    /// The bot's user id.
    pub id: Id<UserMarker>,
}

fn frame<T: serde::Serialize>(payload: &T) -> String {
    // These payloads are plain structs of strings and numbers: serializing cannot fail.
    serde_json::to_string(payload).unwrap_or_default()
}

/// Op 1 with the last sequence number (or null).
pub fn heartbeat(seq: Option<u64>) -> String {
    frame(&Heartbeat::new(seq))
}

/// Op 2: a single, unsharded connection (shard `[0, 1]`) with [`INTENTS`].
pub fn identify(token: &str) -> String {
    frame(&Identify::new(IdentifyInfo {
        capabilities: Capabilities::empty(),
        compress: false,
        intents: INTENTS,
        // Discord's default (and minimum).
        large_threshold: 50,
        presence: None,
        properties: IdentifyProperties::new("stormbridge", "stormbridge", std::env::consts::OS),
        shard: Some(ShardId::ONE),
        token: token.to_owned(),
    }))
}

/// Op 6.
pub fn resume(token: &str, session_id: &str, seq: u64) -> String {
    frame(&Resume::new(seq, session_id, token))
}

/// What a gateway close code asks of the client (Discord's "Gateway Close Event Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterClose {
    /// Reconnect and resume the session (also for a close without a code).
    Resume,
    /// Reconnect with a new session: the old one cannot be resumed.
    Identify,
    /// Do not reconnect: the token, shard, API version or intents are wrong, and trying
    /// again would only burn the daily identify allowance.
    Stop,
}

/// How to go on after the gateway closed with `code` (0 = no code).
pub fn after_close(code: u16) -> AfterClose {
    match CloseCode::try_from(code) {
        // twilight's fatal codes: 4004 and 4010–4014.
        Ok(code) if !code.can_reconnect() => AfterClose::Stop,
        Ok(
            CloseCode::UnknownOpcode
            | CloseCode::NotAuthenticated
            | CloseCode::AlreadyAuthenticated
            | CloseCode::InvalidSequence
            | CloseCode::SessionTimedOut,
        ) => AfterClose::Identify,
        _ => AfterClose::Resume,
    }
}

/// Discord's name for a gateway close code, and for the codes that stop the connection,
/// what the operator should fix.
pub fn close_meaning(code: u16) -> &'static str {
    let Ok(code) = CloseCode::try_from(code) else {
        return "";
    };
    match code {
        CloseCode::UnknownError => "unknown error",
        CloseCode::UnknownOpcode => "unknown opcode",
        CloseCode::DecodeError => "decode error",
        CloseCode::NotAuthenticated => "not authenticated",
        CloseCode::AuthenticationFailed => "authentication failed: check the bot token",
        CloseCode::AlreadyAuthenticated => "already authenticated",
        CloseCode::InvalidSequence => "invalid seq",
        CloseCode::RateLimited => "rate limited",
        CloseCode::SessionTimedOut => "session timed out",
        CloseCode::InvalidShard => "invalid shard",
        CloseCode::ShardingRequired => {
            "sharding required: the bot is in too many guilds for one connection"
        }
        CloseCode::InvalidApiVersion => "invalid API version",
        CloseCode::InvalidIntents => "invalid intent(s)",
        CloseCode::DisallowedIntents => {
            "disallowed intent(s): enable the Message Content intent for the bot in the Developer Portal"
        }
        _ => "",
    }
}

/// How long to hold sends after a response whose `X-RateLimit-Remaining` is 0: its
/// `X-RateLimit-Reset-After` (seconds, with decimals).
pub fn window_pause(
    remaining: Option<&str>,
    reset_after: Option<&str>,
) -> Option<std::time::Duration> {
    if remaining?.trim() != "0" {
        return None;
    }
    let secs = reset_after?.trim().parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs.min(3600.0)))
}

/// The gateway URL with the version and encoding query.
pub fn gateway_query(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.contains('?') {
        base.to_owned()
    } else {
        format!("{base}/?v=10&encoding=json")
    }
}

/// What the connection knows when it maps a `MESSAGE_CREATE`.
pub struct Mapping<'a> {
    /// The `[[chat]]` name.
    pub connection: &'a str,
    /// The bot's user id (from `READY`).
    pub bot_id: &'a str,
    /// Channel ids to watch; empty = all.
    pub channels: &'a [String],
}

/// Why a message was not turned into a chat message (debug logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not a message: missing or unreadable fields (ids among them).
    Malformed,
    /// The bridge's own message.
    Own,
    /// Another bot, a system message or a webhook.
    Bot,
    /// A channel that is not watched.
    NotWatched,
    /// No text.
    Empty,
}

/// What the bridge reads of a `MESSAGE_CREATE`'s `d` (Discord's message object), with
/// twilight's snowflake ids. Not twilight's `channel::Message`: that requires every field of
/// the message object, down to each mentioned user's `public_flags` (optional in Discord's
/// user object) and every author's `discriminator`, neither of which the integration tests'
/// gateway always sends (a command mentioning the bot would be lost), and a message that
/// lacks any field the bridge never reads would be dropped as malformed. The fields read
/// here that Discord may leave out or send as `null` are optional, as they were when the
/// message was read with JSON pointers; the others are skipped unread.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// The message id (the thread answers reply to).
    pub id: Option<Id<MessageMarker>>,
    /// The room.
    pub channel_id: Id<ChannelMarker>,
    /// The organisation; absent in direct messages.
    pub guild_id: Option<Id<GuildMarker>>,
    /// Who wrote it.
    pub author: Author,
    /// Set when a webhook posted it.
    pub webhook_id: Option<Id<WebhookMarker>>,
    /// The text (empty without the message-content intent).
    pub content: Option<String>,
}

/// A message's author.
#[derive(Debug, Clone, Deserialize)]
pub struct Author {
    /// The user id.
    pub id: Id<UserMarker>,
    /// The user name.
    #[serde(rename = "username")]
    pub name: Option<String>,
    /// A bot account.
    pub bot: Option<bool>,
    /// Discord's own system user.
    pub system: Option<bool>,
}

/// Maps a `MESSAGE_CREATE`'s `d`, read as a [`ChatMessage`] from any deserializer (the
/// gateway's raw `d`, or a `serde_json::Value`), to a chat message; a `d` that is not a
/// message (no author or channel, an id that is not a snowflake, a field of the wrong type)
/// is [`Skip::Malformed`].
pub fn message_to_inbound<'de, D: Deserializer<'de>>(
    d: D,
    m: &Mapping<'_>,
) -> Result<InboundMessage, Skip> {
    let msg = ChatMessage::deserialize(d).map_err(|_| Skip::Malformed)?;
    map_message(&msg, m)
}

/// Maps a message to a chat message.
fn map_message(msg: &ChatMessage, m: &Mapping<'_>) -> Result<InboundMessage, Skip> {
    // Snowflakes are non-zero numbers: an empty or blank id never reads as one.
    let user_id = msg.author.id.to_string();
    if user_id == m.bot_id {
        return Err(Skip::Own);
    }
    let author = &msg.author;
    if author.bot == Some(true) || author.system == Some(true) || msg.webhook_id.is_some() {
        return Err(Skip::Bot);
    }
    let channel_id = msg.channel_id.to_string();
    let guild = msg.guild_id.map(|g| g.to_string());
    let kind = if guild.is_some() {
        RoomKind::Group
    } else {
        RoomKind::Direct
    };
    if kind == RoomKind::Group && !m.channels.is_empty() && !m.channels.contains(&channel_id) {
        return Err(Skip::NotWatched);
    }
    let content = msg.content.as_deref().unwrap_or_default();
    let (mentioned, text) = strip_mention(content, m.bot_id);
    if text.trim().is_empty() && !mentioned {
        return Err(Skip::Empty);
    }
    let name = match author.name.as_deref() {
        None | Some("") => user_id.clone(),
        Some(name) => name.to_owned(),
    };
    let message_id = msg.id.map(|id| id.to_string());
    Ok(InboundMessage {
        user: ChatUser {
            connection: m.connection.to_owned(),
            id: user_id,
            name,
        },
        room: Room {
            connection: m.connection.to_owned(),
            id: channel_id,
            kind,
            thread: message_id.clone(),
        },
        text: text.to_owned(),
        message_id,
        mentioned,
        room_name: None,
        org: guild,
    })
}

/// `<@ID> text` or `<@!ID> text` → `(true, "text")`.
pub fn strip_mention<'a>(content: &'a str, bot_id: &str) -> (bool, &'a str) {
    if bot_id.is_empty() {
        return (false, content);
    }
    let t = content.trim_start();
    for prefix in ["<@", "<@!"] {
        if let Some(rest) = t
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(bot_id))
            .and_then(|r| r.strip_prefix('>'))
        {
            return (true, rest.trim_start_matches([':', ',']).trim_start());
        }
    }
    (false, content)
}

/// Seconds from a 429 body's `retry_after`, else the `Retry-After` header.
pub fn retry_after(body: &[u8], header: Option<&str>) -> Option<std::time::Duration> {
    let from_body = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(Value::as_f64));
    let secs = from_body.or_else(|| header.and_then(|h| h.trim().parse::<f64>().ok()))?;
    (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    fn map(d: Value) -> Result<InboundMessage, Skip> {
        message_to_inbound(
            &d,
            &Mapping {
                connection: "dc",
                bot_id: "99",
                channels: &[],
            },
        )
    }

    #[test]
    fn guild_and_dm_messages_map_to_ids() {
        let m = map(json!({"id": "5", "channel_id": "7", "guild_id": "1",
            "author": {"id": "3", "username": "alice"}, "content": "<@!99> run date"}))
        .unwrap();
        assert!(m.mentioned);
        assert_eq!(m.text, "run date");
        assert_eq!((m.user.id.as_str(), m.room.id.as_str()), ("3", "7"));
        assert_eq!(m.room.kind, RoomKind::Group);
        assert_eq!(m.org.as_deref(), Some("1"));
        assert_eq!(m.room.thread.as_deref(), Some("5"));
        let m = map(json!({"id": "6", "channel_id": "8",
            "author": {"id": "3", "username": "alice"}, "content": "!st2 help"}))
        .unwrap();
        assert_eq!(m.room.kind, RoomKind::Direct);
        assert!(!m.mentioned && m.org.is_none());
    }

    #[test]
    fn bots_and_own_messages_are_skipped() {
        let own = json!({"id": "5", "channel_id": "7", "author": {"id": "99"}, "content": "x"});
        assert_eq!(map(own), Err(Skip::Own));
        let bot = json!({"id": "5", "channel_id": "7", "author": {"id": "4", "bot": true}, "content": "x"});
        assert_eq!(map(bot), Err(Skip::Bot));
        assert_eq!(map(json!({"content": "x"})), Err(Skip::Malformed));
        assert_eq!(strip_mention("<@98> x", "99"), (false, "<@98> x"));
        assert_eq!(strip_mention("<@99>: x", "99"), (true, "x"));
    }

    #[test]
    fn the_channel_allow_list_applies_to_guild_channels_only() {
        let channels = vec!["7".to_owned()];
        let m = Mapping {
            connection: "dc",
            bot_id: "99",
            channels: &channels,
        };
        let in_guild = |channel: &str| {
            json!({"id": "5", "channel_id": channel, "guild_id": "1",
                "author": {"id": "3", "username": "alice"}, "content": "!st2 run date"})
        };
        assert!(message_to_inbound(in_guild("7"), &m).is_ok());
        assert_eq!(
            message_to_inbound(in_guild("8"), &m).map(|_| ()),
            Err(Skip::NotWatched)
        );
        let dm = json!({"id": "5", "channel_id": "8", "author": {"id": "3"}, "content": "x"});
        assert!(message_to_inbound(&dm, &m).is_ok(), "DMs are always read");
        assert_eq!(
            message_to_inbound(
                json!({"channel_id": "7", "guild_id": "1", "author": {"id": "3"}, "content": "  "}),
                &m
            )
            .map(|_| ()),
            Err(Skip::Empty)
        );
    }

    #[test]
    fn ids_are_snowflakes() {
        let with = |author: Value, channel: Value| json!({"id": "5", "channel_id": channel, "author": author, "content": "x"});
        for id in [
            json!(""),
            json!(" "),
            json!("0"),
            json!("x"),
            json!(-1),
            json!(1.5),
            json!(null),
        ] {
            let msg = with(json!({"id": id}), json!("7"));
            assert_eq!(map(msg), Err(Skip::Malformed), "author {id}");
            let msg = with(json!({"id": "3"}), id.clone());
            assert_eq!(map(msg), Err(Skip::Malformed), "channel {id}");
        }
        // Discord sends ids as strings; a number reads as the same snowflake.
        let m = map(with(json!({"id": 3}), json!(7))).unwrap();
        assert_eq!(
            (m.user.id.as_str(), m.room.id.as_str(), m.user.name.as_str()),
            ("3", "7", "3")
        );
        let own = map(with(json!({"id": 99}), json!("7")));
        assert_eq!(own, Err(Skip::Own));
    }

    #[test]
    fn the_envelope_is_read_and_d_only_on_demand() {
        let p = parse(r#"{"op": 10, "d": {"heartbeat_interval": 45000}, "s": null, "t": null}"#)
            .unwrap();
        assert_eq!((p.op, p.s, p.t.as_deref()), (OpCode::Hello, None, None));
        let hello: twilight_model::gateway::payload::incoming::Hello = p.data().unwrap();
        assert_eq!(hello.heartbeat_interval, 45000);
        let p = parse(r#"{"op": 11}"#).unwrap();
        assert!(p.d.is_none() && p.data::<Option<bool>>().unwrap().is_none());
        let p = parse(r#"{"op": 0, "t": "READY", "s": 1, "d": {"session_id": "s1", "resume_gateway_url": "wss://r", "user": {"id": "42"}}}"#).unwrap();
        assert_eq!(
            (p.op, p.s, p.t.as_deref()),
            (OpCode::Dispatch, Some(1), Some("READY"))
        );
        let ready: Ready = p.data().unwrap();
        assert_eq!((ready.session_id.as_str(), ready.user.id.get()), ("s1", 42));
        // A `d` of the wrong shape is refused when it is read, not when the envelope is.
        let p = parse(r#"{"op": 0, "t": "READY", "s": 2, "d": {"user": {"id": ""}}}"#).unwrap();
        assert!(p.data::<Ready>().is_err() && p.s == Some(2));
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"op": 99}"#,
            r#"{"op": "0"}"#,
            r#"{"op": 0, "s": "1"}"#,
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn identify_resume_and_heartbeat_frames() {
        let v: Value = serde_json::from_str(&identify("t0k3n")).unwrap();
        assert_eq!(v["op"], 2);
        assert_eq!(v["d"]["token"], "t0k3n");
        assert_eq!(v["d"]["intents"], (1 << 9) | (1 << 12) | (1 << 15));
        assert_eq!(v["d"]["properties"]["browser"], "stormbridge");
        assert_eq!(v["d"]["properties"]["os"], std::env::consts::OS);
        assert_eq!(v["d"]["shard"], json!([0, 1]));
        let v: Value = serde_json::from_str(&resume("t0k3n", "s1", 7)).unwrap();
        assert_eq!(
            v,
            json!({"op": 6, "d": {"token": "t0k3n", "session_id": "s1", "seq": 7}})
        );
        let v: Value = serde_json::from_str(&heartbeat(Some(3))).unwrap();
        assert_eq!(v, json!({"op": 1, "d": 3}));
        let v: Value = serde_json::from_str(&heartbeat(None)).unwrap();
        assert_eq!(v, json!({"op": 1, "d": null}));
    }

    #[test]
    fn close_codes_follow_discords_table() {
        for code in [0, 1000, 1001, 1006, 4000, 4002, 4008] {
            assert_eq!(after_close(code), AfterClose::Resume, "{code}");
        }
        for code in [4001, 4003, 4005, 4007, 4009] {
            assert_eq!(after_close(code), AfterClose::Identify, "{code}");
        }
        for code in [4004, 4010, 4011, 4012, 4013, 4014] {
            assert_eq!(after_close(code), AfterClose::Stop, "{code}");
            assert!(!close_meaning(code).is_empty());
        }
    }

    #[test]
    fn webhooks_and_system_messages_are_not_commands() {
        let hook = json!({"id": "5", "channel_id": "7", "guild_id": "1", "webhook_id": "44",
            "author": {"id": "44", "username": "Captain Hook"}, "content": "!st2 run date"});
        assert_eq!(map(hook), Err(Skip::Bot));
        let system = json!({"id": "5", "channel_id": "7",
            "author": {"id": "643945264868098049", "system": true}, "content": "!st2 run date"});
        assert_eq!(map(system), Err(Skip::Bot));
    }

    #[test]
    fn a_used_up_window_pauses_until_its_reset() {
        assert_eq!(
            window_pause(Some("0"), Some("1.25")),
            Some(std::time::Duration::from_millis(1250))
        );
        assert_eq!(window_pause(Some("3"), Some("1.25")), None);
        assert_eq!(window_pause(Some("0"), None), None);
        assert_eq!(window_pause(None, Some("1")), None);
    }

    #[test]
    fn rate_limit_delays() {
        assert_eq!(
            retry_after(br#"{"retry_after": 0.25, "global": false}"#, Some("9")),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(b"", Some("2")),
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(retry_after(b"", None), None);
    }
}
