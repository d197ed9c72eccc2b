//! IRC lines from the server (`stormbridge::backends::irc::{codec, inbound}`).
//!
//! * **Framing**: any byte stream — real server lines with random tags, prefixes, params,
//!   CTCP, formatting codes, invalid UTF-8, lines near and over the length limit, bare CRs —
//!   decodes without an error or a panic, in bounded time, and the same whatever chunks it
//!   arrives in.
//! * **Mapping**: every decoded message maps to a chat message or nothing; a chat message
//!   comes from a `PRIVMSG` by a non-empty nick that is not the bot's or an ignored one, is
//!   not CTCP, and has non-blank text.
//! * **Round trip**: a `PRIVMSG` built from a nick, a target, tags and plain text comes out
//!   with that nick as user, the channel (or the sender, for a private message) as room, the
//!   `msgid` tag as message id, and exactly that text (or what follows a mention of the bot).

use bytes::BytesMut;
use irc_proto::{Command, Prefix};
use proptest::prelude::*;
use stormbridge::backends::irc::{
    inbound::{inbound, Who},
    wire::{Incoming, IrcLines, MAX_INBOUND_LINE},
};
use stormbridge::domain::message::RoomKind;
use tokio_util::codec::Decoder;

use super::{check, chunks, cuts, mutated_bytes, sane, timed};

const IGNORED: &str = "OtherBot";

fn who(ignore: &[String]) -> Who<'_> {
    Who {
        connection: "irc",
        nick: "stormbridge_",
        base_nick: "stormbridge",
        ignore_nicks: ignore,
    }
}

/// Lines as ngircd, Libera (with IRCv3 tags) and bouncers send them.
const LINES: &[&[u8]] = &[
    b":alice!a@host.example PRIVMSG #ops :!st2 run date\r\n",
    b":alice!~a@203.0.113.9 PRIVMSG stormbridge_ :st2 run uptime\r\n",
    b"@msgid=abc123;time=2024-05-01T12:00:00.000Z :bob!b@h PRIVMSG #ops :stormbridge_: st2 run x\r\n",
    b"@bot :helper!h@h PRIVMSG #ops :!st2 run tagged\r\n",
    b":alice!a@h PRIVMSG #ops :\x01ACTION waves\x01\r\n",
    b":alice!a@h PRIVMSG #ops :\x02bold\x02 \x0304,12colour\x03 text\r\n",
    b":alice!a@h NOTICE #ops :not a command\r\n",
    b":irc.example.net 001 stormbridge_ :Welcome to the network\r\n",
    b":irc.example.net 433 * stormbridge :Nickname is already in use\r\n",
    b"PING :irc.example.net\r\n",
    b":stormbridge_!s@h JOIN #ops\r\n",
    b":op!o@h KICK #ops stormbridge_ :bye\r\n",
    b"ERROR :Closing link\r\n",
    b":alice!a@h PRIVMSG #ops :caf\xc3\xa9 \xff\xfe not utf-8\r\n",
    b":alice!a@h PRIVMSG #ops :a b c d e f g h i j k l m n o p :q\n",
    b"\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b":",
    b"@",
    b"!",
    b"#",
    b";",
    b"=",
    b"\\",
    b"\x01",
    b"\x02",
    b"\x03",
    b"\x00",
    b"PRIVMSG",
    b"NOTICE",
    b"stormbridge_",
    b"OtherBot",
    b"@bot ",
    b"@msgid=",
    b" :",
    b"\xff",
];

/// A stream of lines, some mutated, sometimes with a line right at the length limit.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        6 => mutated_bytes(
            LINES.iter().map(|l| l.to_vec()).collect(),
            TOKENS.iter().map(|t| t.to_vec()).collect(),
            4,
        ),
        1 => (MAX_INBOUND_LINE - 3..MAX_INBOUND_LINE + 3, 0usize..3).prop_map(|(n, crs)| {
            let mut l = b":alice!a@h PRIVMSG #ops :".to_vec();
            l.resize(n, b'x');
            l.extend(std::iter::repeat_n(b'\r', crs));
            l.push(b'\n');
            l
        }),
        1 => (1usize..30_000).prop_map(|n| vec![b'y'; n]),
    ];
    proptest::collection::vec(line, 1..10).prop_map(|lines| lines.concat())
}

/// Decodes `parts` as they would arrive, then the end of the stream.
fn decode(parts: &[&[u8]]) -> Result<Vec<String>, String> {
    let mut codec = IrcLines::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        while let Some(item) = codec.decode(&mut buf).map_err(|e| e.to_string())? {
            out.push(format!("{item:?}"));
        }
        if buf.len() > 2 * MAX_INBOUND_LINE + 2 {
            return Err(format!("{} bytes buffered", buf.len()));
        }
    }
    while let Some(item) = codec.decode_eof(&mut buf).map_err(|e| e.to_string())? {
        out.push(format!("{item:?}"));
    }
    Ok(out)
}

#[test]
fn any_byte_stream_frames_the_same_in_any_chunks() {
    let strategy = (stream(), cuts(10));
    check("irc::framing", 256, strategy, |(bytes, cuts)| {
        let parts = chunks(&bytes, &cuts);
        let (whole, pieces) = timed("decoding lines twice", || {
            (decode(&[&bytes]), decode(&parts))
        })?;
        prop_assert!(whole.is_ok(), "{whole:?}");
        prop_assert_eq!(pieces, whole);
        Ok(())
    });
}

#[test]
fn decoded_messages_map_to_sane_chat_messages() {
    check("irc::inbound", 256, stream(), |bytes| {
        let ignore = vec![IGNORED.to_owned()];
        let mut codec = IrcLines::default();
        let mut buf = BytesMut::from(&bytes[..]);
        timed("decoding and mapping", || -> Result<(), TestCaseError> {
            while let Some(item) = codec
                .decode_eof(&mut buf)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
            {
                let Incoming::Message(msg) = item else {
                    continue;
                };
                let Some(m) = inbound(&who(&ignore), &msg) else {
                    continue;
                };
                sane(&m, "irc")?;
                let Command::PRIVMSG(_, text) = &msg.command else {
                    return Err(TestCaseError::fail(format!("not a PRIVMSG: {msg:?}")));
                };
                let Some(Prefix::Nickname(nick, _, _)) = &msg.prefix else {
                    return Err(TestCaseError::fail(format!("no nick: {msg:?}")));
                };
                prop_assert_eq!(&m.user.id, nick);
                let lower = nick.to_lowercase();
                prop_assert!(
                    lower != "stormbridge_" && lower != "stormbridge" && lower != "otherbot"
                );
                prop_assert!(!text.starts_with('\u{1}'), "CTCP mapped: {text:?}");
                prop_assert!(!m.text.trim().is_empty());
            }
            Ok(())
        })??;
        Ok(())
    });
}

#[test]
fn privmsg_round_trips() {
    let strategy = (
        "[A-Za-z\\[\\]\\\\`_^{|}][A-Za-z0-9\\[\\]\\\\`_^{|}-]{0,15}",
        prop_oneof![
            Just("#ops".to_owned()),
            Just("stormbridge_".to_owned()),
            "[#&][a-z0-9_-]{1,20}"
        ],
        proptest::option::of("[A-Za-z0-9-]{1,20}"),
        // Text without formatting codes or line ends, not blank, not CTCP.
        "[^\u{0}-\u{1f}\u{7f}]{0,60}[^\u{0}-\u{20}\u{7f}]",
        prop_oneof![
            Just(""),
            Just("stormbridge_: "),
            Just("@stormbridge_ "),
            Just("StormBridge_, ")
        ],
    );
    check(
        "irc::round_trip",
        256,
        strategy,
        |(nick, target, msgid, text, mention)| {
            let lower = nick.to_lowercase();
            prop_assume!(lower != "stormbridge_" && lower != "stormbridge" && lower != "otherbot");
            let tags = msgid
                .as_ref()
                .map(|id| format!("@msgid={id} "))
                .unwrap_or_default();
            let line =
                format!("{tags}:{nick}!user@host.example PRIVMSG {target} :{mention}{text}\r\n");
            let mut codec = IrcLines::default();
            let mut buf = BytesMut::from(line.as_bytes());
            let Some(Incoming::Message(msg)) = codec
                .decode(&mut buf)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
            else {
                return Err(TestCaseError::fail(format!("not decoded: {line:?}")));
            };
            let ignore = vec![IGNORED.to_owned()];
            let m = inbound(&who(&ignore), &msg);
            let stripped = if mention.is_empty() {
                text.as_str()
            } else {
                text.trim_start()
            };
            if stripped.trim().is_empty() {
                prop_assert!(m.is_none());
                return Ok(());
            }
            let Some(m) = m else {
                return Err(TestCaseError::fail(format!("no message for {line:?}")));
            };
            prop_assert_eq!(&m.user.id, &nick);
            prop_assert_eq!(m.message_id, msgid);
            if target.starts_with(['#', '&']) {
                prop_assert_eq!(&m.room.id, &target);
                prop_assert_eq!(m.room.kind, RoomKind::Group);
            } else {
                prop_assert_eq!(&m.room.id, &nick);
                prop_assert_eq!(m.room.kind, RoomKind::Direct);
            }
            prop_assert_eq!(m.mentioned, !mention.is_empty());
            prop_assert_eq!(m.text, stripped);
            Ok(())
        },
    );
}

#[test]
fn a_line_at_the_limit_reads_the_same_however_it_is_split() {
    // Found by `irc::framing`: a line of exactly MAX_INBOUND_LINE bytes ending in CR LF was
    // read when it arrived whole, and dropped as too long when the CR and the LF arrived in
    // different reads (the CR was counted while waiting for the LF).
    let mut line = b":alice!a@h PRIVMSG #ops :".to_vec();
    line.resize(MAX_INBOUND_LINE, b'x');
    line.extend_from_slice(b"\r\n");
    let at = line.len() - 1;
    let whole = decode(&[&line]);
    let split = decode(&[&line[..at], &line[at..]]);
    assert_eq!(split, whole);
}
