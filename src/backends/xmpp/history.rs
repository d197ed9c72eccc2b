//! Catching up after a link another bridge process held, or this process's own lost link.
//! Direct messages said meanwhile come from the server's offline storage at the next
//! link's presence ([`offline_stamp`]). In a room (MUC) the join asks the room for its history since the connection's
//! [`Position`](crate::backends::connection::position::Position) in that room
//! (XEP-0045 §7.2.15, `<history since='…'/>` in the join presence:
//! https://xmpp.org/extensions/xep-0045.html#enter-managehistory), and the room sends what
//! it kept before the live messages, each marked with a delay from the room (XEP-0203
//! `<delay xmlns='urn:xmpp:delay' from='<room>' stamp='…'/>`,
//! https://xmpp.org/extensions/xep-0203.html). Pure functions, unit-tested without a server.
//!
//! Times: a live message carries none, so the position of a room is this process's clock
//! when its newest message was handed on, and the room's history is stamped by the
//! server's clock, to the second (XEP-0082 DateTime). The join asks from [`SLACK_MS`]
//! earlier: clocks a few seconds apart lose nothing, and the messages asked for twice are
//! told apart by their sender and id (this process remembers the ids it handed on, and
//! the shared store those any process ran). A history message without an id cannot be told
//! from one already run, so it is skipped.
//!
//! A room keeps only so much history (prosody: the last 20 messages, in memory, for as long
//! as the room exists): more messages than that while no process listened are not all
//! caught up.

use chrono::{DateTime, SecondsFormat, Utc};

use super::wire::{Element, Node};

/// How much earlier than the position the room's history is asked from.
pub const SLACK_MS: u64 = 5_000;

const NS_DELAY: &str = "urn:xmpp:delay";

/// Where a join asks the room's history from for a position of `since` (ms): [`SLACK_MS`]
/// earlier but not before `listening` (what was said before any link listened was never a
/// command to the bridge), down to the whole second (the history's stamps have no finer
/// part); the time (ms) and its XEP-0082 DateTime.
pub fn ask_from(since: u64, listening: u64) -> (u64, String) {
    let at = since.saturating_sub(SLACK_MS).max(listening) / 1_000 * 1_000;
    (at, datetime(at))
}

/// Time `ms` as an XEP-0082 DateTime, to the second.
pub fn datetime(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How far back every join asks a room's history for the bot's own result parts: a holder
/// killed between posting a part and recording it did so at most a takeover's time ago
/// (seconds), or a restart's.
pub const OWN_PARTS_LOOKBACK_MS: u64 = 10 * 60 * 1_000;

/// Where a join at `now` (ms) asks a room's history from for the bot's own result parts
/// ([`own_part_keys`]): [`OWN_PARTS_LOOKBACK_MS`] ago, or from a little before `owed_since`
/// (when the command of a result owed in the room started), if earlier; to the second.
pub fn ask_own_parts_from(now: u64, owed_since: Option<u64>) -> u64 {
    let lookback = now.saturating_sub(OWN_PARTS_LOOKBACK_MS);
    let owed = owed_since.map_or(u64::MAX, |ms| ms.saturating_sub(SLACK_MS));
    lookback.min(owed) / 1_000 * 1_000
}

/// XEP-0359's origin-id, which a server keeps with the message (in a room's history too):
/// https://xmpp.org/extensions/xep-0359.html#origin-id
pub const NS_SID: &str = "urn:xmpp:sid:0";

/// The keys of a result part the bot itself posted, from a `message` of the history of one
/// of `rooms` sent by the bot's `nick` there: the message's id and its origin-id
/// (XEP-0359), which the bridge sets to the part's key. Empty for any other message (live,
/// someone else's, another room's). Cheap for the messages that are none of these: every
/// message goes through it.
pub fn own_part_keys(message: &Element, rooms: &[String], nick: &str) -> Vec<String> {
    if message.attr("type") != Some("groupchat") {
        return Vec::new();
    }
    let Some((bare, resource)) = message.attr("from").and_then(|from| from.split_once('/')) else {
        return Vec::new();
    };
    let in_history = rooms
        .iter()
        .find(|room| room.eq_ignore_ascii_case(bare))
        .is_some_and(|room| history_stamp(message, room).is_some());
    if resource != nick || !in_history {
        return Vec::new();
    }
    part_keys(message)
}

/// The keys a message the bot sent carries: its id and its origin-id (XEP-0359), which the
/// bridge sets to the key of the result part it is.
pub fn part_keys(message: &Element) -> Vec<String> {
    let origin = message
        .child_ns("origin-id", NS_SID)
        .and_then(|o| o.attr("id"));
    [message.attr("id"), origin]
        .into_iter()
        .flatten()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The time (ms) of a message from `room`'s history: the stamp of its delay, when the room
/// put it there (a delay from anyone else is no history of this room's). `None` for a
/// message without one, or with a stamp that is no date.
pub fn history_stamp(message: &Element, room: &str) -> Option<u64> {
    let delay = message.child_ns("delay", NS_DELAY)?;
    if !delay
        .attr("from")
        .is_some_and(|from| from.eq_ignore_ascii_case(room))
    {
        return None;
    }
    let stamp = DateTime::parse_from_rfc3339(delay.attr("stamp")?).ok()?;
    u64::try_from(stamp.timestamp_millis()).ok()
}

/// The time (ms) of a direct message the server kept while the bot had no online resource
/// and hands on at its next initial presence (offline storage, XEP-0160
/// https://xmpp.org/extensions/xep-0160.html: marked with a delay from the server,
/// `<delay xmlns='urn:xmpp:delay' from='<domain>' stamp='…'/>`; prosody's `mod_offline`
/// does exactly that, stamped to the second). `None` for a room's message, an error, or a
/// delay from anyone other than the bot's own server `domain` (a client's forwarded or
/// re-sent message is no offline message).
pub fn offline_stamp(message: &Element, domain: &str) -> Option<u64> {
    if matches!(message.attr("type"), Some("groupchat" | "error")) {
        return None;
    }
    history_stamp(message, domain)
}

/// `message` without its delay: as the live message it once was.
pub fn undelayed(message: &Element) -> Element {
    let mut live = message.clone();
    live.children.retain(|node| match node {
        Node::Element(e) => !(e.local_name() == "delay" && e.ns == NS_DELAY),
        Node::Text(_) => true,
    });
    live
}

/// A room message's id for telling it apart, the same live and in the history: its sender
/// (the occupant's JID) and the id its client gave it (RFC 6120 §8.1.3 leaves ids to each
/// client, so two senders may pick the same). `None` without an id.
pub fn message_key(message: &Element) -> Option<String> {
    let id = message.attr("id").filter(|id| !id.trim().is_empty())?;
    let from = message.attr("from")?;
    Some(format!("{from}#{id}"))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::backends::xmpp::wire::{Frame, XmlCodec};

    const ROOM: &str = "ops@conference.localhost";

    fn parse(xml: &str) -> Element {
        let decoded = XmlCodec::default().decode(&mut BytesMut::from(xml));
        let Some(Frame::Stanza(e)) = decoded.expect("xml") else {
            panic!("not a stanza")
        };
        e
    }

    #[test]
    fn the_history_is_asked_from_a_little_earlier_to_the_second() {
        // 2024-01-01T00:00:10.700Z
        let (at, stamp) = ask_from(1_704_067_210_700, 0);
        assert_eq!(stamp, "2024-01-01T00:00:05Z");
        assert_eq!(at, 1_704_067_205_000);
        assert_eq!(ask_from(3_000, 0), (0, "1970-01-01T00:00:00Z".to_owned()));
        // Not before the links first listened (to the second).
        assert_eq!(
            ask_from(1_704_067_210_700, 1_704_067_208_300),
            (1_704_067_208_000, "2024-01-01T00:00:08Z".to_owned())
        );
    }

    #[test]
    fn only_the_rooms_own_delay_makes_history() {
        let history = parse(&format!(
            "<message type='groupchat' from='{ROOM}/alice' id='a1'><body>!st2 run date</body>\
             <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='2024-01-01T00:00:07Z'/></message>"
        ));
        assert_eq!(history_stamp(&history, ROOM), Some(1_704_067_207_000));
        assert_eq!(
            history_stamp(&history, "OPS@conference.localhost"),
            Some(1_704_067_207_000),
            "JIDs' domains and local parts are case-insensitive"
        );
        // Another room's, or a client's own (a forwarded message): not this room's history.
        assert_eq!(history_stamp(&history, "dev@conference.localhost"), None);
        for delay in [
            "<delay xmlns='urn:xmpp:delay' from='alice@localhost' stamp='2024-01-01T00:00:07Z'/>",
            "<delay xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:07Z'/>",
            "<delay xmlns='urn:xmpp:delay' from='ops@conference.localhost' stamp='yesterday'/>",
            "<delay xmlns='jabber:x:delay' from='ops@conference.localhost' stamp='2024-01-01T00:00:07Z'/>",
            "",
        ] {
            let m = parse(&format!(
                "<message type='groupchat' from='{ROOM}/alice' id='a1'><body>x</body>{delay}</message>"
            ));
            assert_eq!(history_stamp(&m, ROOM), None, "{delay}");
        }
        // Without its delay it reads as the live message did.
        let live = undelayed(&history);
        assert!(live.child("delay").is_none());
        assert_eq!(
            live.child("body").map(Element::text).as_deref(),
            Some("!st2 run date")
        );
        assert_eq!(live.attr("id"), Some("a1"));
    }

    #[test]
    fn only_the_servers_own_delay_on_a_direct_message_makes_it_an_offline_message() {
        // As prosody's mod_offline hands it on at the bot's initial presence.
        let kept = |kind: &str, from: &str| {
            parse(&format!(
                "<message {kind} from='alice@localhost/phone' to='stormbot@localhost' id='d1'>\
                 <body>!st2 run date</body>\
                 <delay xmlns='urn:xmpp:delay' from='{from}' stamp='2024-01-01T00:00:07Z'/></message>"
            ))
        };
        for kind in ["type='chat'", "type='normal'", ""] {
            assert_eq!(
                offline_stamp(&kept(kind, "localhost"), "localhost"),
                Some(1_704_067_207_000),
                "{kind}"
            );
        }
        assert_eq!(
            offline_stamp(&kept("type='chat'", "LOCALHOST"), "localhost"),
            Some(1_704_067_207_000)
        );
        // A room's message or an error is never one; nor a delay from another server or a
        // client.
        assert_eq!(
            offline_stamp(&kept("type='groupchat'", "localhost"), "localhost"),
            None
        );
        assert_eq!(
            offline_stamp(&kept("type='error'", "localhost"), "localhost"),
            None
        );
        assert_eq!(
            offline_stamp(&kept("type='chat'", "example.org"), "localhost"),
            None
        );
        assert_eq!(
            offline_stamp(&kept("type='chat'", "alice@localhost"), "localhost"),
            None
        );
    }

    #[test]
    fn a_message_is_known_by_its_sender_and_id() {
        let m = |from: &str, id: &str| {
            parse(&format!(
                "<message type='groupchat' from='{from}' {id}><body>x</body></message>"
            ))
        };
        assert_eq!(
            message_key(&m(&format!("{ROOM}/alice"), "id='7'")).as_deref(),
            Some("ops@conference.localhost/alice#7")
        );
        assert_ne!(
            message_key(&m(&format!("{ROOM}/alice"), "id='7'")),
            message_key(&m(&format!("{ROOM}/bob"), "id='7'")),
            "two clients may pick the same id"
        );
        assert_eq!(message_key(&m(&format!("{ROOM}/alice"), "")), None);
        assert_eq!(message_key(&m(&format!("{ROOM}/alice"), "id=' '")), None);
    }

    #[test]
    fn the_bots_own_parts_are_known_by_id_and_origin_id_only_from_the_rooms_history() {
        let m = |from: &str, kind: &str, extra: &str| {
            parse(&format!(
                "<message type='{kind}' from='{from}' id='k1'><body>x</body>\
                 <origin-id xmlns='{NS_SID}' id='k2'/>{extra}</message>"
            ))
        };
        let history =
            format!("<delay xmlns='{NS_DELAY}' from='{ROOM}' stamp='2024-01-01T00:00:07Z'/>");
        let bot = format!("{ROOM}/stormbot");
        let rooms = [ROOM.to_owned()];
        assert_eq!(
            own_part_keys(&m(&bot, "groupchat", &history), &rooms, "stormbot"),
            ["k1", "k2"]
        );
        // Live (the room's reflection of what this process just sent), someone else's,
        // another room's history, a private message: none.
        assert!(own_part_keys(&m(&bot, "groupchat", ""), &rooms, "stormbot").is_empty());
        let alice = format!("{ROOM}/alice");
        assert!(own_part_keys(&m(&alice, "groupchat", &history), &rooms, "stormbot").is_empty());
        assert!(own_part_keys(
            &m(&bot, "groupchat", &history),
            &["dev@conference.localhost".to_owned()],
            "stormbot"
        )
        .is_empty());
        assert!(own_part_keys(&m(&bot, "chat", &history), &rooms, "stormbot").is_empty());
    }

    #[test]
    fn the_history_for_own_parts_goes_back_the_lookback_or_to_the_owed_command() {
        let now = 1_704_067_207_500;
        assert_eq!(ask_own_parts_from(now, None), 1_704_066_607_000);
        assert_eq!(
            ask_own_parts_from(now, Some(now - 3_600_000)),
            (now - 3_600_000 - SLACK_MS) / 1_000 * 1_000,
            "an owed command older than the lookback"
        );
        assert_eq!(
            ask_own_parts_from(now, Some(now - 1_000)),
            1_704_066_607_000,
            "a recent one is within the lookback"
        );
    }
}
