//! A relayed `PRIVMSG` as an [`InboundMessage`], or nothing when it is not for the bot.

use irc_proto::{Command, Message, Prefix};

use super::text::{irc_eq, is_channel, is_ctcp, strip_formatting, strip_mention};
use crate::domain::message::{ChatUser, InboundMessage, Room, RoomKind};

/// Who the bot is on this connection.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The `[[chat]]` name.
    pub connection: &'a str,
    /// The nick the server gave the bot (after any collision fallback).
    pub nick: &'a str,
    /// The configured nick.
    pub base_nick: &'a str,
    /// Nicks never treated as commands.
    pub ignore_nicks: &'a [String],
}

/// The message for the dispatcher, or `None` for: anything but `PRIVMSG`, server
/// messages, the bot's own messages, ignored nicks, senders tagged `bot`/`draft/bot`
/// (IRCv3), CTCP, and empty text. `message_id` is the IRCv3 `msgid` tag when present.
pub fn inbound(who: &Who<'_>, msg: &Message) -> Option<InboundMessage> {
    let Command::PRIVMSG(target, text) = &msg.command else {
        return None;
    };
    let Some(Prefix::Nickname(sender, _, _)) = &msg.prefix else {
        return None;
    };
    if sender.is_empty() || irc_eq(sender, who.nick) || irc_eq(sender, who.base_nick) {
        return None;
    }
    if who.ignore_nicks.iter().any(|n| irc_eq(n, sender)) {
        return None;
    }
    let tag = |name: &str| {
        msg.tags
            .as_ref()
            .and_then(|tags| tags.iter().find(|t| t.0 == name))
    };
    if tag("bot").is_some() || tag("draft/bot").is_some() || is_ctcp(text) {
        return None;
    }
    let text = strip_formatting(text);
    let connection = who.connection.to_owned();
    let (room, room_name) = if is_channel(target) {
        let room = Room {
            connection: connection.clone(),
            id: target.clone(),
            kind: RoomKind::Group,
            thread: None,
        };
        (room, Some(target.clone()))
    } else {
        let room = Room {
            connection: connection.clone(),
            id: sender.clone(),
            kind: RoomKind::Direct,
            thread: None,
        };
        (room, None)
    };
    let (mentioned, text) = match strip_mention(&text, who.nick) {
        Some(rest) => (true, rest.to_owned()),
        None => (false, text.clone()),
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(InboundMessage {
        user: ChatUser {
            connection,
            id: sender.clone(),
            name: sender.clone(),
        },
        room,
        text,
        message_id: tag("msgid").and_then(|t| t.1.clone()),
        mentioned,
        room_name,
        org: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Option<InboundMessage> {
        let ignore = vec!["OtherBot".to_owned()];
        let who = Who {
            connection: "irc",
            nick: "stormbridge_",
            base_nick: "stormbridge",
            ignore_nicks: &ignore,
        };
        let msg: Message = line.parse().expect("a valid line");
        inbound(&who, &msg)
    }

    #[test]
    fn channel_and_private_messages_map_to_rooms_and_users() {
        let m = parse(":alice!a@h PRIVMSG #ops :!st2 run date").expect("channel message");
        assert_eq!(m.user.id, "alice");
        assert_eq!(m.user.connection, "irc");
        assert_eq!(m.room.id, "#ops");
        assert_eq!(m.room.kind, RoomKind::Group);
        assert_eq!(m.room_name.as_deref(), Some("#ops"));
        assert_eq!(m.text, "!st2 run date");
        assert!(!m.mentioned);
        assert_eq!(m.org, None);

        let m = parse(":alice!a@h PRIVMSG stormbridge_ :st2 run date").expect("private message");
        assert_eq!(m.room.id, "alice");
        assert_eq!(m.room.kind, RoomKind::Direct);
        assert_eq!(m.room_name, None);

        let m = parse("@msgid=abc :alice!a@h PRIVMSG #ops :Stormbridge_: \x02st2\x02 run x")
            .expect("mention");
        assert!(m.mentioned);
        assert_eq!(m.text, "st2 run x");
        assert_eq!(m.message_id.as_deref(), Some("abc"));
    }

    #[test]
    fn bots_ctcp_notices_and_server_messages_are_not_inbound() {
        for line in [
            ":stormbridge_!b@h PRIVMSG #ops :!st2 run own",
            ":StormBridge!b@h PRIVMSG #ops :!st2 run own-base-nick",
            ":otherbot!b@h PRIVMSG #ops :!st2 run ignored",
            "@bot :helper!b@h PRIVMSG #ops :!st2 run tagged",
            "@draft/bot :helper!b@h PRIVMSG #ops :!st2 run tagged",
            ":alice!a@h PRIVMSG #ops :\x01ACTION !st2 run ctcp\x01",
            ":alice!a@h PRIVMSG stormbridge_ :\x01VERSION\x01",
            ":alice!a@h NOTICE #ops :!st2 run notice",
            ":irc.test PRIVMSG #ops :!st2 run server",
            ":alice!a@h PRIVMSG #ops :stormbridge_:",
        ] {
            assert_eq!(parse(line), None, "{line}");
        }
    }
}
