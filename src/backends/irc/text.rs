//! Pure IRC text helpers: outbound line splitting, mention stripping, nick comparison.

use crate::domain::chunk::{split_message, LengthUnit};

/// The protocol's line limit, CR LF included (RFC 1459 §2.3).
pub const MAX_LINE: usize = 512;

/// What the server adds in front of our line when relaying it, budgeted conservatively:
/// `:` nick `!` user (≤ 10 + `~`) `@` host (≤ 63) and a space.
fn relay_prefix_len(nick: &str) -> usize {
    1 + nick.len().max(16) + 8 + 1 + 11 + 1 + 63 + 1
}

/// Bytes of text that fit in one `PRIVMSG <target> :<text>` from `nick`.
pub fn text_budget(target: &str, nick: &str) -> usize {
    let fixed = "PRIVMSG ".len() + target.len() + " :".len() + "\r\n".len();
    MAX_LINE
        .saturating_sub(fixed + relay_prefix_len(nick))
        .max(16)
}

/// `text` as IRC message texts for `target`: one per line, each split to fit the line limit,
/// control characters that would break the protocol removed, empty lines skipped.
pub fn outbound_texts(target: &str, nick: &str, text: &str) -> Vec<String> {
    let budget = text_budget(target, nick);
    let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\0').collect();
    let mut out = Vec::new();
    for line in cleaned.split('\n') {
        if line.trim().is_empty() {
            continue;
        }
        for part in split_message(line, budget, LengthUnit::Bytes) {
            for piece in part.split('\n') {
                if !piece.trim().is_empty() {
                    out.push(piece.to_owned());
                }
            }
        }
    }
    out
}

/// The `AUTHENTICATE` arguments for SASL PLAIN: base64 of `user\0user\0password` in chunks
/// of 400 bytes, followed by `+` when the last chunk is exactly 400 bytes (or it is empty).
pub fn sasl_plain_chunks(user: &str, password: &str) -> zeroize::Zeroizing<Vec<String>> {
    use base64::Engine as _;
    let mut raw = zeroize::Zeroizing::new(Vec::with_capacity(user.len() * 2 + password.len() + 2));
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    let encoded = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*raw));
    let mut chunks: Vec<String> = encoded
        .as_bytes()
        .chunks(400)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    if encoded.len() % 400 == 0 {
        chunks.push("+".into());
    }
    zeroize::Zeroizing::new(chunks)
}

/// IRC's case-insensitive comparison (rfc1459 case mapping).
pub fn irc_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.chars().map(fold).eq(b.chars().map(fold))
}

/// One character in RFC 1459 case mapping (`[]\~` are the upper case of `{}|^`).
pub(super) fn fold(c: char) -> char {
    match c {
        '[' => '{',
        ']' => '}',
        '\\' => '|',
        '~' => '^',
        c => c.to_ascii_lowercase(),
    }
}

/// Whether a message target is a channel.
pub fn is_channel(target: &str) -> bool {
    target.starts_with(['#', '&', '+', '!'])
}

/// Whether the text is a CTCP request or reply (ACTION, VERSION, …).
pub fn is_ctcp(text: &str) -> bool {
    text.starts_with('\x01')
}

/// Removes mIRC formatting codes (bold, colours, reset, …).
pub fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x02' | '\x0f' | '\x16' | '\x1d' | '\x1e' | '\x1f' | '\x11' => {}
            '\x03' => {
                // Up to two digits of foreground, then optionally `,` and two of background.
                for _ in 0..2 {
                    if chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                }
                let mut look = chars.clone();
                if look.next() == Some(',') && look.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                    for _ in 0..2 {
                        if chars.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                        }
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// If `text` starts by addressing `nick` (`nick: …`, `nick, …`, `@nick …`), the rest.
pub fn strip_mention<'a>(text: &'a str, nick: &str) -> Option<&'a str> {
    let t = text.trim_start();
    let t = t.strip_prefix('@').unwrap_or(t);
    let head = t.get(..nick.len())?;
    if !irc_eq(head, nick) {
        return None;
    }
    let rest = &t[nick.len()..];
    if rest.is_empty() {
        return Some("");
    }
    if rest.starts_with([':', ',']) || rest.starts_with(char::is_whitespace) {
        return Some(rest.trim_start_matches([':', ',']).trim_start());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_fits_512_bytes_with_the_relay_prefix() {
        let nick = "stormbridge";
        let target = "#operations";
        let text = "é".repeat(700) + "\n" + &"word ".repeat(300) + "\n\n```\ncode\n```";
        let texts = outbound_texts(target, nick, &text);
        assert!(texts.len() > 4);
        // The longest prefix a server could add for this nick.
        let prefix = format!(":{nick}!~{}@{} ", "u".repeat(10), "h".repeat(63));
        for t in &texts {
            let line = format!("{prefix}PRIVMSG {target} :{t}\r\n");
            assert!(line.len() <= MAX_LINE, "{} bytes", line.len());
            assert!(!t.contains(['\n', '\r']));
        }
        let joined: String = texts.concat();
        assert_eq!(joined.matches('é').count(), 700);
        assert_eq!(joined.matches("word").count(), 300);
        assert!(texts.iter().any(|t| t == "code"));
    }

    #[test]
    fn mentions_are_recognised_case_insensitively() {
        assert_eq!(
            strip_mention("StormBridge: run x", "stormbridge"),
            Some("run x")
        );
        assert_eq!(
            strip_mention("@stormbridge run x", "stormbridge"),
            Some("run x")
        );
        assert_eq!(
            strip_mention("stormbridge, help", "stormbridge"),
            Some("help")
        );
        assert_eq!(strip_mention("stormbridgeX hi", "stormbridge"), None);
        assert_eq!(strip_mention("hi stormbridge", "stormbridge"), None);
        assert_eq!(strip_mention("é", "stormbridge"), None);
        assert!(irc_eq("Bot[1]", "bot{1}"));
    }

    #[test]
    fn sasl_plain_payload_is_chunked_at_400_bytes() {
        let chunks = sasl_plain_chunks("bot", "pw");
        assert_eq!(chunks.as_slice(), ["Ym90AGJvdABwdw==".to_owned()]);
        // 3 + 1 + 3 + 1 + 292 = 300 bytes → exactly 400 base64 characters, then `+`.
        let chunks = sasl_plain_chunks("bot", &"x".repeat(292));
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].len(), 400);
        assert_eq!(chunks[1], "+");
        let chunks = sasl_plain_chunks("bot", &"x".repeat(400));
        assert_eq!(chunks.len(), 2);
        assert!(chunks[1].len() < 400 && chunks[1] != "+");
    }

    #[test]
    fn formatting_and_ctcp() {
        assert_eq!(
            strip_formatting("\x02bold\x02 \x0304,12red\x03 x\x0f"),
            "bold red x"
        );
        assert_eq!(strip_formatting("\x033"), "");
        assert!(is_ctcp("\x01ACTION waves\x01"));
        assert!(!is_ctcp("!st2 run"));
    }
}
