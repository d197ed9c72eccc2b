//! Discord gateway and REST shapes, and how a `MESSAGE_CREATE` maps to a chat message.
//! Pure functions, unit-tested without a server.

use serde_json::{json, Value};

use crate::domain::message::{ChatUser, InboundMessage, Room, RoomKind};

/// Gateway opcodes used by the bridge.
pub mod op {
    /// An event (`t`, `s`, `d`).
    pub const DISPATCH: u64 = 0;
    /// Heartbeat (both directions).
    pub const HEARTBEAT: u64 = 1;
    /// Identify.
    pub const IDENTIFY: u64 = 2;
    /// Resume.
    pub const RESUME: u64 = 6;
    /// Reconnect and resume.
    pub const RECONNECT: u64 = 7;
    /// Invalid session; `d` says whether it can be resumed.
    pub const INVALID_SESSION: u64 = 9;
    /// Hello (heartbeat interval).
    pub const HELLO: u64 = 10;
    /// Heartbeat ACK.
    pub const HEARTBEAT_ACK: u64 = 11;
}

/// GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT.
pub const INTENTS: u64 = (1 << 9) | (1 << 12) | (1 << 15);

/// A gateway payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// Opcode.
    pub op: u64,
    /// Data.
    pub d: Value,
    /// Sequence number (dispatches only).
    pub s: Option<u64>,
    /// Event name (dispatches only).
    pub t: Option<String>,
}

/// Parses a gateway text frame.
pub fn parse(text: &str) -> Option<Payload> {
    let v: Value = serde_json::from_str(text).ok()?;
    Some(Payload {
        op: v.get("op")?.as_u64()?,
        d: v.get("d").cloned().unwrap_or(Value::Null),
        s: v.get("s").and_then(Value::as_u64),
        t: v.get("t").and_then(Value::as_str).map(str::to_owned),
    })
}

/// Op 1 with the last sequence number (or null).
pub fn heartbeat(seq: Option<u64>) -> String {
    json!({"op": op::HEARTBEAT, "d": seq}).to_string()
}

/// Op 2.
pub fn identify(token: &str) -> String {
    json!({"op": op::IDENTIFY, "d": {
        "token": token,
        "intents": INTENTS,
        "properties": {"os": std::env::consts::OS, "browser": "stormbridge", "device": "stormbridge"},
    }})
    .to_string()
}

/// Op 6.
pub fn resume(token: &str, session_id: &str, seq: u64) -> String {
    json!({"op": op::RESUME, "d": {"token": token, "session_id": session_id, "seq": seq}})
        .to_string()
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
    match code {
        4004 | 4010..=4014 => AfterClose::Stop,
        4001 | 4003 | 4005 | 4007 | 4009 => AfterClose::Identify,
        _ => AfterClose::Resume,
    }
}

/// Discord's name for a gateway close code, and for the codes that stop the connection,
/// what the operator should fix.
pub fn close_meaning(code: u16) -> &'static str {
    match code {
        4000 => "unknown error",
        4001 => "unknown opcode",
        4002 => "decode error",
        4003 => "not authenticated",
        4004 => "authentication failed: check the bot token",
        4005 => "already authenticated",
        4007 => "invalid seq",
        4008 => "rate limited",
        4009 => "session timed out",
        4010 => "invalid shard",
        4011 => "sharding required: the bot is in too many guilds for one connection",
        4012 => "invalid API version",
        4013 => "invalid intent(s)",
        4014 => "disallowed intent(s): enable the Message Content intent for the bot in the Developer Portal",
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
    /// Missing ids.
    Malformed,
    /// The bridge's own message.
    Own,
    /// Another bot or a webhook.
    Bot,
    /// A channel that is not watched.
    NotWatched,
    /// No text.
    Empty,
}

fn s<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty())
}

/// Maps a `MESSAGE_CREATE`'s `d` to a chat message.
pub fn message_to_inbound(d: &Value, m: &Mapping<'_>) -> Result<InboundMessage, Skip> {
    let author = d.get("author").ok_or(Skip::Malformed)?;
    // A blank author id would be a user without an id.
    let user_id = s(author, "id").filter(|id| !id.trim().is_empty());
    let (Some(user_id), Some(channel_id)) = (user_id, s(d, "channel_id")) else {
        return Err(Skip::Malformed);
    };
    if user_id == m.bot_id {
        return Err(Skip::Own);
    }
    let is_bot = author.get("bot").and_then(Value::as_bool).unwrap_or(false)
        || author
            .get("system")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        || s(d, "webhook_id").is_some();
    if is_bot {
        return Err(Skip::Bot);
    }
    let guild = s(d, "guild_id");
    let kind = if guild.is_some() {
        RoomKind::Group
    } else {
        RoomKind::Direct
    };
    if kind == RoomKind::Group
        && !m.channels.is_empty()
        && !m.channels.iter().any(|c| c == channel_id)
    {
        return Err(Skip::NotWatched);
    }
    let content = s(d, "content").unwrap_or_default();
    let (mentioned, text) = strip_mention(content, m.bot_id);
    if text.trim().is_empty() && !mentioned {
        return Err(Skip::Empty);
    }
    let name = s(author, "username").unwrap_or(user_id).to_owned();
    let message_id = s(d, "id").map(str::to_owned);
    Ok(InboundMessage {
        user: ChatUser {
            connection: m.connection.to_owned(),
            id: user_id.to_owned(),
            name,
        },
        room: Room {
            connection: m.connection.to_owned(),
            id: channel_id.to_owned(),
            kind,
            thread: message_id.clone(),
        },
        text: text.to_owned(),
        message_id,
        mentioned,
        room_name: None,
        org: guild.map(str::to_owned),
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
        assert!(message_to_inbound(&in_guild("7"), &m).is_ok());
        assert_eq!(
            message_to_inbound(&in_guild("8"), &m).map(|_| ()),
            Err(Skip::NotWatched)
        );
        let dm = json!({"id": "5", "channel_id": "8", "author": {"id": "3"}, "content": "x"});
        assert!(message_to_inbound(&dm, &m).is_ok(), "DMs are always read");
        assert_eq!(
            message_to_inbound(&json!({"channel_id": "7", "guild_id": "1", "author": {"id": "3"}, "content": "  "}), &m)
                .map(|_| ()),
            Err(Skip::Empty)
        );
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
