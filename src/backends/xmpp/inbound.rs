//! A `<message>` stanza as an [`InboundMessage`], or nothing when it is not for the bot.

use std::collections::HashMap;

use super::{config::Jid, wire::Element};
use crate::domain::message::{ChatUser, InboundMessage, Room, RoomKind};

/// Who the bot is on this connection.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The `[[chat]]` name.
    pub connection: &'a str,
    /// The bot's bare JID (lower-case).
    pub bare: &'a str,
    /// The bot's nick in rooms.
    pub nick: &'a str,
    /// Configured room JIDs (lower-case).
    pub rooms: &'a [String],
    /// Bare JIDs or room nicks never treated as commands.
    pub ignore: &'a [String],
}

/// Real bare JIDs of room occupants, by `(room, nick)`, where the room exposes them.
pub type Occupants = HashMap<(String, String), String>;

/// Strips a leading `nick: `, `nick, ` or `@nick ` (case-insensitive).
pub fn strip_mention<'t>(text: &'t str, nick: &str) -> Option<&'t str> {
    let t = text.trim_start();
    let t2 = t.strip_prefix('@').unwrap_or(t);
    let head = t2.get(..nick.len())?;
    if !head.eq_ignore_ascii_case(nick) && head.to_lowercase() != nick.to_lowercase() {
        return None;
    }
    let rest = &t2[nick.len()..];
    let rest = if t2.len() != t.len() {
        rest.strip_prefix([':', ',']).unwrap_or(rest)
    } else {
        rest.strip_prefix([':', ','])?
    };
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(rest.trim_start())
}

fn ignored(who: &Who<'_>, ids: &[&str]) -> bool {
    who.ignore
        .iter()
        .any(|i| ids.iter().any(|id| i.eq_ignore_ascii_case(id)))
}

/// The sender of a room (or room-private) message: the occupant's real bare JID when the
/// room exposes it, else `room@conference/nick`; with that occupant JID. `None` for the bot
/// itself and ignored senders.
fn occupant_user(
    who: &Who<'_>,
    room: &str,
    nick: &str,
    occupants: &Occupants,
) -> Option<(ChatUser, String)> {
    if nick.is_empty() || nick == who.nick {
        return None;
    }
    let occupant = format!("{room}/{nick}");
    let id = occupants
        .get(&(room.to_owned(), nick.to_owned()))
        .cloned()
        .unwrap_or_else(|| occupant.clone());
    if id == who.bare || ignored(who, &[&id, nick, &occupant]) {
        return None;
    }
    let user = ChatUser {
        connection: who.connection.to_owned(),
        id,
        name: nick.to_owned(),
    };
    Some((user, occupant))
}

/// The message for the dispatcher, or `None` for: errors, messages without a body, room
/// history (delayed), the bot's own messages (including a room's reflection of them),
/// ignored senders, and empty text.
///
/// Identity: in a direct chat the user id is the sender's bare JID (never the resource) and
/// the room id is that bare JID too. In a room (MUC) the room id is the room's bare JID and
/// the user id is the occupant's real bare JID when the room exposes it (non-anonymous
/// rooms, or the bot is a moderator), else `room@conference/nick`.
pub fn inbound(who: &Who<'_>, msg: &Element, occupants: &Occupants) -> Option<InboundMessage> {
    if msg.local_name() != "message" {
        return None;
    }
    let kind = msg.attr("type").unwrap_or("normal");
    if kind == "error" || msg.child("delay").is_some() {
        return None;
    }
    let body = msg.child("body")?.text();
    let from = Jid::parse(msg.attr("from")?)?;
    let bare = from.bare();
    let connection = who.connection.to_owned();
    let is_room = who.rooms.contains(&bare);
    let (user, room, room_name) = if kind == "groupchat" || is_room {
        // A room message, or a private message from a room occupant (answered privately,
        // to the occupant).
        let (user, occupant) = occupant_user(who, &bare, &from.resource, occupants)?;
        let (id, room_kind) = if kind == "groupchat" {
            (bare.clone(), RoomKind::Group)
        } else {
            (occupant, RoomKind::Direct)
        };
        let room_name = (room_kind == RoomKind::Group).then_some(bare);
        let room = Room {
            connection,
            id,
            kind: room_kind,
            thread: None,
        };
        (user, room, room_name)
    } else {
        if bare == who.bare || ignored(who, &[&bare]) {
            return None;
        }
        let user = ChatUser {
            connection: connection.clone(),
            id: bare.clone(),
            name: from.local.clone(),
        };
        let room = Room {
            connection,
            id: bare,
            kind: RoomKind::Direct,
            thread: None,
        };
        (user, room, None)
    };
    let (mentioned, text) = match strip_mention(&body, who.nick) {
        Some(rest) => (true, rest.to_owned()),
        None => (false, body.clone()),
    };
    if text.trim().is_empty() {
        return None;
    }
    Some(InboundMessage {
        user,
        room,
        text,
        message_id: msg.attr("id").map(str::to_owned),
        mentioned,
        room_name,
        org: None,
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::backends::xmpp::wire::{Frame, XmlCodec};

    fn parse(xml: &str, occupants: &Occupants) -> Option<InboundMessage> {
        let rooms = vec!["ops@conference.localhost".to_owned()];
        let ignore = vec!["otherbot@localhost".to_owned(), "helper".to_owned()];
        let who = Who {
            connection: "x",
            bare: "bot@localhost",
            nick: "stormbot",
            rooms: &rooms,
            ignore: &ignore,
        };
        let decoded = XmlCodec::default().decode(&mut BytesMut::from(xml));
        let Some(Frame::Stanza(e)) = decoded.expect("xml") else {
            panic!("not a stanza")
        };
        inbound(&who, &e, occupants)
    }

    #[test]
    fn direct_and_room_messages_map_to_users_and_rooms() {
        let none = Occupants::new();
        let m = parse("<message from='Alice@localhost/phone' type='chat' id='m1'><body>!st2 run date</body></message>", &none)
            .expect("direct");
        assert_eq!(m.user.id, "alice@localhost");
        assert_eq!(m.room.id, "alice@localhost");
        assert_eq!(m.room.kind, RoomKind::Direct);
        assert_eq!(m.message_id.as_deref(), Some("m1"));
        assert_eq!(m.room_name, None);

        let m = parse("<message from='ops@conference.localhost/alice' type='groupchat'><body>stormbot: st2 run x</body></message>", &none)
            .expect("room");
        assert_eq!(m.user.id, "ops@conference.localhost/alice");
        assert_eq!(m.room.id, "ops@conference.localhost");
        assert_eq!(m.room.kind, RoomKind::Group);
        assert_eq!(m.room_name.as_deref(), Some("ops@conference.localhost"));
        assert!(m.mentioned);
        assert_eq!(m.text, "st2 run x");

        let mut known = Occupants::new();
        known.insert(
            ("ops@conference.localhost".into(), "alice".into()),
            "alice@localhost".into(),
        );
        let m = parse("<message from='ops@conference.localhost/alice' type='groupchat'><body>@stormbot run x</body></message>", &known)
            .expect("room, real jid");
        assert_eq!(m.user.id, "alice@localhost");
        assert!(m.mentioned);
        assert_eq!(m.text, "run x");
    }

    #[test]
    fn own_bots_history_errors_and_bodyless_messages_are_not_inbound() {
        let none = Occupants::new();
        for xml in [
            "<message from='ops@conference.localhost/stormbot' type='groupchat'><body>!st2 run own</body></message>",
            "<message from='bot@localhost/other' type='chat'><body>!st2 run own</body></message>",
            "<message from='otherbot@localhost/r' type='chat'><body>!st2 run bot</body></message>",
            "<message from='ops@conference.localhost/helper' type='groupchat'><body>!st2 run bot</body></message>",
            "<message from='ops@conference.localhost/alice' type='groupchat'><delay xmlns='urn:xmpp:delay'/><body>!st2 old</body></message>",
            "<message from='alice@localhost/r' type='error'><body>!st2 run x</body></message>",
            "<message from='alice@localhost/r' type='chat'><composing/></message>",
            "<message from='ops@conference.localhost' type='groupchat'><body>room says</body></message>",
            "<message from='alice@localhost/r' type='chat'><body>stormbot:</body></message>",
        ] {
            assert_eq!(parse(xml, &none), None, "{xml}");
        }
    }

    #[test]
    fn mentions() {
        assert_eq!(strip_mention("StormBot, hi", "stormbot"), Some("hi"));
        assert_eq!(strip_mention("@stormbot hi", "stormbot"), Some("hi"));
        assert_eq!(strip_mention("stormbotx: hi", "stormbot"), None);
        assert_eq!(strip_mention("stormbot hi", "stormbot"), None);
        assert_eq!(strip_mention("é", "stormbot"), None);
    }
}
