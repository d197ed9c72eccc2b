//! XMPP streams and `<message>` stanzas (`stormbridge::backends::xmpp::{xml, inbound}`).
//!
//! * **Framing**: any byte stream — a real prosody session (header, features, chat and
//!   groupchat messages, presence, iq, comments, CDATA) with random attributes, entities,
//!   nesting, prefixed names and namespaces, invalid UTF-8 and cuts spliced in — decodes
//!   into the same frames, and fails (if it fails) at the same frame with the same reason,
//!   whatever chunks it arrives in; in bounded time, without a panic, and with no more
//!   buffered than the stanza size limit.
//! * **Mapping**: every stanza maps to a chat message or nothing; a chat message has a
//!   non-empty user who is not the bot or an ignored sender, and non-blank text that is
//!   the body's text or what follows a mention of the bot's nick.
//! * **Round trip**: a message stanza built with the bridge's own `escape` from a sender,
//!   a type, an id and any body text decodes and maps back to that sender (as a bare JID or
//!   room occupant), id and text.

use std::collections::HashMap;

use bytes::BytesMut;
use proptest::prelude::*;
use stormbridge::backends::xmpp::{
    inbound::{inbound, Occupants, Who},
    wire::{escape, Frame, XmlCodec, MAX_STANZA},
};
use stormbridge::domain::message::RoomKind;
use tokio_util::codec::Decoder;

use super::{check, chunks, cuts, mutated_bytes, sane, timed};

const ROOM: &str = "ops@conference.localhost";

fn with_who<T>(f: impl FnOnce(&Who<'_>) -> T) -> T {
    let rooms = vec![ROOM.to_owned()];
    let ignore = vec!["otherbot@localhost".to_owned(), "helper".to_owned()];
    f(&Who {
        connection: "x",
        bare: "bot@localhost",
        nick: "stormbot",
        rooms: &rooms,
        ignore: &ignore,
    })
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='6ebc1a4e' from='localhost' version='1.0' xml:lang='en'>";

/// Stanzas as prosody sends them.
const STANZAS: &[&str] = &[
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
     <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
    "<message from='Alice@localhost/phone' to='bot@localhost/bridge' type='chat' id='m1'>\
     <body>!st2 run date</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<message from='ops@conference.localhost/alice' type='groupchat' id='m2'><body>stormbot: st2 run x &amp; y &lt;z&gt;</body></message>",
    "<message from='ops@conference.localhost/alice' type='groupchat'><body>old</body>\
     <delay xmlns='urn:xmpp:delay' from='ops@conference.localhost' stamp='2024-01-01T00:00:00Z'/></message>",
    "<message from='ops@conference.localhost/bob' type='chat'><body>@stormbot st2 run whoami</body>\
     <x xmlns='http://jabber.org/protocol/muc#user'/></message>",
    "<message from=\"carol@localhost\" type=\"normal\"><body><![CDATA[1 < 2 & 3]]> &#233;t&#xE9; <!-- note --></body></message>",
    "<message type='error' from='x@localhost'><error type='cancel'>\
     <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    "<presence from='ops@conference.localhost/alice'><x xmlns='http://jabber.org/protocol/muc#user'>\
     <item jid='alice@localhost/phone' affiliation='member' role='participant'/></x></presence>",
    "<iq type='get' id='ping1' from='localhost' to='bot@localhost/bridge'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>bot@localhost/bridge</jid></bind></iq>",
    "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    "\n  ",
];

const TOKENS: &[&str] = &[
    "<",
    ">",
    "/>",
    "</",
    "'",
    "\"",
    "=",
    " ",
    "&amp;",
    "&lt;",
    "&#233;",
    "&#x1F4A9;",
    "&#xD800;",
    "&#0;",
    "&bogus;",
    "&",
    ";",
    "<body>",
    "</body>",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version='1.0'?>",
    " xmlns='jabber:client'",
    " a:b='c'",
    " x=\"'\"",
    "<x:y>",
    "</x:y>",
    "<delay/>",
    "stormbot: ",
    "</stream:stream>",
    "<stream:stream>",
    "\u{0}",
    "\u{fffe}",
];

/// A session: the header, stanzas (some mutated, maybe deeply nested), maybe the close.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let stanza = prop_oneof![
        6 => mutated_bytes(
            STANZAS.iter().map(|s| s.as_bytes().to_vec()).collect(),
            TOKENS.iter().map(|t| t.as_bytes().to_vec()).collect(),
            3,
        ),
        1 => (1usize..300).prop_map(|depth| {
            format!("{}x{}", "<a b='c'>".repeat(depth), "</a>".repeat(depth)).into_bytes()
        }),
    ];
    (
        any::<bool>(),
        proptest::collection::vec(stanza, 0..8),
        any::<bool>(),
    )
        .prop_map(|(header, stanzas, close)| {
            let mut out = if header {
                HEADER.as_bytes().to_vec()
            } else {
                Vec::new()
            };
            out.extend(stanzas.concat());
            if close {
                out.extend_from_slice(b"</stream:stream>");
            }
            out
        })
}

/// Frames decoded from `parts`, up to the first error (and that error).
fn decode(parts: &[&[u8]]) -> (Vec<Frame>, Option<String>) {
    let mut codec = XmlCodec;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        if buf.len() > MAX_STANZA + 64 * 1024 {
            return (out, Some(format!("{} bytes buffered", buf.len())));
        }
    }
    (out, None)
}

#[test]
fn any_stream_frames_the_same_in_any_chunks() {
    check(
        "xmpp::framing",
        192,
        (stream(), cuts(8)),
        |(bytes, cuts)| {
            let parts = chunks(&bytes, &cuts);
            let (whole, pieces) = timed("decoding a stream twice", || {
                (decode(&[&bytes]), decode(&parts))
            })?;
            prop_assert_eq!(pieces, whole);
            Ok(())
        },
    );
}

#[test]
fn many_small_stanzas_in_one_read_are_not_one_big_stanza() {
    // Found by reading more than MAX_STANZA bytes of small stanzas at once: the limit was
    // checked against everything buffered, so a busy stream failed with "a stanza larger
    // than the limit" although no stanza was.
    let stanza =
        "<message from='alice@localhost/p' type='chat'><body>!st2 run date</body></message>";
    let mut bytes = HEADER.as_bytes().to_vec();
    while bytes.len() <= MAX_STANZA + 1024 {
        bytes.extend_from_slice(stanza.as_bytes());
    }
    let whole = decode(&[&bytes]);
    let pieces: Vec<&[u8]> = bytes.chunks(16 * 1024).collect();
    let read_by_read = decode(&pieces);
    assert_eq!(whole.1, None, "decoding failed: {:?}", whole.1);
    assert_eq!(whole, read_by_read);
    // A single stanza over the limit is skipped to its end, and the next one is read.
    let mut big = b"<message><body>".to_vec();
    big.resize(MAX_STANZA + 10, b'x');
    big.extend_from_slice(b"</body></message><presence/>");
    let (frames, error) = decode(&[&big]);
    assert_eq!(error, None);
    assert!(
        matches!(frames.as_slice(), [Frame::Skipped(_), Frame::Stanza(_)]),
        "{frames:?}"
    );
}

#[test]
fn stanzas_map_to_sane_messages() {
    check("xmpp::inbound", 256, stream(), |bytes| {
        let (frames, _) = timed("decoding a stream", || decode(&[&bytes]))?;
        let occupants: Occupants = HashMap::from([(
            (ROOM.to_owned(), "alice".to_owned()),
            "alice@localhost".to_owned(),
        )]);
        for frame in frames {
            let Frame::Stanza(e) = frame else { continue };
            let Some(m) = timed("mapping a stanza", || {
                with_who(|w| inbound(w, &e, &occupants))
            })?
            else {
                continue;
            };
            sane(&m, "x")?;
            prop_assert!(m.user.id != "bot@localhost");
            let from = e.attr("from").unwrap_or_default();
            if from.to_lowercase().starts_with(&format!("{ROOM}/")) {
                prop_assert!(
                    m.user.name != "stormbot",
                    "the bot's own room message: {e:?}"
                );
            }
            prop_assert!(!["otherbot@localhost", "helper"].contains(&m.user.id.as_str()));
            prop_assert!(!m.text.trim().is_empty());
            let body = e.child("body").map(|b| b.text()).unwrap_or_default();
            prop_assert!(body.ends_with(&m.text), "{body:?} → {:?}", m.text);
        }
        Ok(())
    });
}

/// A body: any text, often with XML's special characters.
fn body_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        proptest::collection::vec(
            proptest::sample::select(vec![
                "<", ">", "&", "'", "\"", "]]>", "&amp;", " ", "x", "é", "\t", "\r"
            ]),
            0..12
        )
        .prop_map(|v| v.concat()),
    ]
}

#[test]
fn message_stanzas_round_trip() {
    let strategy = (
        prop_oneof![
            // Direct chat: local@domain/resource.
            ("[A-Za-z0-9._-]{1,10}", "[a-z0-9.-]{1,12}", "[^/]{0,10}")
                .prop_map(|(l, d, r)| (format!("{l}@{d}/{r}"), false)),
            // Room occupant.
            "[^/\u{0}-\u{1f}\u{fffe}\u{ffff}]{1,12}"
                .prop_map(|nick| (format!("{ROOM}/{nick}"), true)),
        ],
        proptest::option::of("[ -~]{1,20}"),
        body_text(),
        any::<bool>(),
    );
    check(
        "xmpp::round_trip",
        256,
        strategy,
        |((from, in_room), id, text, quote)| {
            let bare = from
                .split_once('/')
                .map_or(from.as_str(), |(b, _)| b)
                .to_lowercase();
            prop_assume!(
                in_room
                    || (bare != ROOM && bare != "bot@localhost" && bare != "otherbot@localhost")
            );
            let kind = if in_room { "groupchat" } else { "chat" };
            let q = if quote { '"' } else { '\'' };
            let id_attr = id
                .as_ref()
                .map(|i| format!(" id={q}{}{q}", escape(i)))
                .unwrap_or_default();
            let xml = format!(
                "<message from={q}{}{q} type={q}{kind}{q}{id_attr}><body>{}</body></message>",
                escape(&from),
                escape(&text)
            );
            let (frames, error) = decode(&[xml.as_bytes()]);
            prop_assert_eq!(error, None, "{}", xml);
            let Some(Frame::Stanza(e)) = frames.into_iter().next() else {
                return Err(TestCaseError::fail(format!("no stanza from {xml}")));
            };
            // What survives: XML cannot carry most control characters.
            let kept: String = escape(&text)
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&apos;", "'")
                .replace("&quot;", "\"");
            prop_assert_eq!(e.child("body").map(|b| b.text()), Some(kept.clone()));
            prop_assert_eq!(e.attr("id"), id.as_deref());
            let m = with_who(|w| inbound(w, &e, &HashMap::new()));
            let nick = from.rsplit_once('/').map(|(_, n)| n).unwrap_or_default();
            let lower = kept.trim_start().to_lowercase();
            if kept.trim().is_empty()
                || lower.starts_with("stormbot")
                || lower.starts_with("@stormbot")
                || (in_room && (nick == "stormbot" || nick.eq_ignore_ascii_case("helper")))
            {
                return Ok(());
            }
            let Some(m) = m else {
                return Err(TestCaseError::fail(format!("no message from {xml}")));
            };
            prop_assert_eq!(&m.text, &kept);
            prop_assert_eq!(m.message_id.as_deref(), id.as_deref());
            if in_room {
                prop_assert_eq!(m.room.kind, RoomKind::Group);
                prop_assert_eq!(m.room.id.as_str(), ROOM);
                prop_assert_eq!(m.user.id, from);
            } else {
                prop_assert_eq!(m.room.kind, RoomKind::Direct);
                let (bare, _) = from.split_once('/').unwrap_or((&from, ""));
                let (local, domain) = bare.split_once('@').unwrap_or(("", bare));
                prop_assert_eq!(m.user.id, format!("{}@{}", local.to_lowercase(), domain));
            }
            Ok(())
        },
    );
}
