//! How text from outside (chat, StackStorm) is shown where one line must stay one line and
//! must not drive the reader's terminal: the console's output and the log.
//!
//! Characters that are escaped ([`needs_escape`]):
//!
//! - every control character (`char::is_control`: C0 U+0000–U+001F, DEL U+007F and C1
//!   U+0080–U+009F, so also the ESC that starts terminal escape sequences and the 8-bit CSI);
//! - the Unicode bidirectional controls (U+061C, U+200E, U+200F, the overrides and embeddings
//!   U+202A–U+202E and the isolates U+2066–U+2069), which reorder what the reader sees;
//! - the line and paragraph separators U+2028 and U+2029, which some viewers break lines at.
//!
//! They are written the way Rust's `{:?}` writes them, so that a log line reads the same
//! whether a value was formatted with `?` or `%`: `\0`, `\t`, `\n`, `\r`, and `\u{…}` with
//! the code point in lowercase hex for all others (`\u{1b}` for ESC, `\u{7f}`, `\u{9b}`,
//! `\u{202e}`). Everything else, any other Unicode text included, is written as it is.
//!
//! Two flavours share these rules:
//!
//! - [`escape_line`] (the console) also doubles every backslash, so the escaping is
//!   unambiguous and [`unescape_line`] reverses it exactly;
//! - [`escape_controls`] and [`ControlEscaper`] (the log) leave backslashes alone: most log
//!   values are `{:?}`-formatted and have escaped their own backslashes already, and doubling
//!   them again would make every path and regex in the log hard to read. What the log needs
//!   is that a line stays one line and carries no control sequence, and that holds.

use std::{borrow::Cow, fmt};

/// Whether `c` is shown escaped (see the module documentation).
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Writes the escaped form of `c` (which [`needs_escape`]).
fn write_escaped_char(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\0' => out.write_str("\\0"),
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        c => write!(out, "\\u{{{:x}}}", u32::from(c)),
    }
}

/// Writes `text` to `out` with every character that [`needs_escape`] escaped, and every
/// backslash doubled when `backslashes` is set. Plain runs are written in one piece.
fn escape_into(out: &mut impl fmt::Write, text: &str, backslashes: bool) -> fmt::Result {
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    let mut at = 0;
    while at < bytes.len() {
        // Printable ASCII is never escaped: step over it a byte at a time without decoding
        // characters (most text is ASCII; this loop was the console's largest own cost).
        let b = bytes[at];
        if (0x20..0x7f).contains(&b) && !(backslashes && b == b'\\') {
            at += 1;
            continue;
        }
        // `at` is a character boundary: only ASCII bytes and whole characters were stepped over.
        let Some(c) = text.get(at..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        let next = at + c.len_utf8();
        if needs_escape(c) || (backslashes && c == '\\') {
            out.write_str(&text[plain_from..at])?;
            if c == '\\' {
                out.write_str("\\\\")?;
            } else {
                write_escaped_char(out, c)?;
            }
            plain_from = next;
        }
        at = next;
    }
    out.write_str(&text[plain_from..])
}

/// Escapes a message onto one line for the console: `\` → `\\`, and every character that
/// [`needs_escape`] as the module documentation says (newline → `\n`, ESC → `\u{1b}`, …).
/// The result contains no control character and [`unescape_line`] gives `text` back.
pub fn escape_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Writing to a String cannot fail.
    let _ = escape_into(&mut out, text, true);
    out
}

/// Reverses [`escape_line`]: `\\`, `\0`, `\t`, `\n`, `\r` and `\u{hex}` are decoded; any other
/// backslash (which `escape_line` never writes) is kept as it is.
pub fn unescape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (decoded, used) = match after.as_bytes().first() {
            Some(b'\\') => (Some('\\'), 1),
            Some(b'0') => (Some('\0'), 1),
            Some(b't') => (Some('\t'), 1),
            Some(b'n') => (Some('\n'), 1),
            Some(b'r') => (Some('\r'), 1),
            Some(b'u') => match unicode_escape(after) {
                Some((c, used)) => (Some(c), used),
                None => (None, 0),
            },
            _ => (None, 0),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes `u{hex}` at the start of `s`: the character and how many bytes it took.
fn unicode_escape(s: &str) -> Option<(char, usize)> {
    let body = s.strip_prefix("u{")?;
    let end = body.find('}')?;
    let hex = &body[..end];
    if hex.is_empty() || hex.len() > 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
    Some((c, 2 + end + 1))
}

/// `text` with every character that [`needs_escape`] escaped; backslashes are left as they
/// are (the log's flavour). Borrows when there is nothing to escape.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let _ = escape_into(&mut out, text, false);
    Cow::Owned(out)
}

/// A [`fmt::Write`] that passes text on to `W` with [`escape_controls`] applied, so that any
/// `Display` or `Debug` output can be escaped as it is written, without a copy.
pub struct ControlEscaper<W>(pub W);

impl<W: fmt::Write> fmt::Write for ControlEscaper<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(&mut self.0, s, false)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// Every character below U+0100, the bidi controls and separators and their neighbours,
    /// and a few beyond (non-BMP, the replacement character, the last code point).
    fn interesting_chars() -> impl Iterator<Item = char> {
        (0u32..0x100)
            .chain(0x600..0x620)
            .chain(0x2000..0x2070)
            .chain([0xfeff, 0xfffd, 0x1f600, 0x10ffff])
            .filter_map(char::from_u32)
    }

    #[test]
    fn every_char_alone_and_in_company_round_trips_and_escapes_to_no_control() {
        let chars: Vec<char> = interesting_chars().collect();
        for &c in &chars {
            for s in [
                c.to_string(),
                format!("a{c}b"),
                format!("\\{c}"),
                format!("{c}\\"),
                format!("\\u{{{c}}}"),
                format!("{c}{c}"),
            ] {
                let escaped = escape_line(&s);
                assert!(
                    !escaped.chars().any(needs_escape),
                    "{s:?} escaped to {escaped:?}"
                );
                assert!(!escaped.chars().any(char::is_control), "{escaped:?}");
                assert_eq!(unescape_line(&escaped), s, "escaped as {escaped:?}");
                assert!(!escape_controls(&s).chars().any(needs_escape), "{s:?}");
            }
        }
        // Every pair, so that no escape can swallow or be completed by its neighbour.
        for &a in &chars {
            for &b in &chars {
                let s: String = [a, '\\', b, a, b].iter().collect();
                assert_eq!(unescape_line(&escape_line(&s)), s);
            }
        }
    }

    #[test]
    fn strings_that_look_like_escapes_round_trip() {
        for s in [
            "\\n",
            "\\\\n",
            "\\u{1b}",
            "\\u{",
            "\\u{}",
            "\\u{110000}",
            "\\u{d800}",
            "\\u{1234567}",
            "\\x1b",
            "\\",
            "\\\\",
            "line1\nline2 \\n literal\r\nend\\",
            "\u{1b}[31mred\u{1b}[0m",
            "",
        ] {
            let escaped = escape_line(s);
            assert_eq!(unescape_line(&escaped), s, "escaped as {escaped:?}");
        }
    }

    #[test]
    fn a_pseudo_random_sample_of_strings_round_trips() {
        // A small xorshift generator: no dependency, the same strings on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pool: Vec<char> = interesting_chars()
            .chain("\\u{}0123456789abcdefx é漢".chars())
            .collect();
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let s: String = (0..len)
                .map(|_| pool[(next() % pool.len() as u64) as usize])
                .collect();
            let escaped = escape_line(&s);
            assert!(!escaped.chars().any(char::is_control), "{escaped:?}");
            assert_eq!(unescape_line(&escaped), s, "escaped as {escaped:?}");
            // Character by character, as the rules say.
            let mut expected = String::new();
            for c in s.chars() {
                match c {
                    '\\' => expected.push_str("\\\\"),
                    c if needs_escape(c) => write_escaped_char(&mut expected, c).unwrap(),
                    c => expected.push(c),
                }
            }
            assert_eq!(escaped, expected, "{s:?}");
        }
    }

    #[test]
    fn escapes_are_written_like_rust_debug() {
        assert_eq!(escape_line("a\nb"), "a\\nb");
        assert_eq!(escape_line("\r\t\0"), "\\r\\t\\0");
        assert_eq!(escape_line("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(escape_line("\u{7f}\u{85}\u{9b}"), "\\u{7f}\\u{85}\\u{9b}");
        assert_eq!(
            escape_line("\u{202e}gnp.exe\u{2069}"),
            "\\u{202e}gnp.exe\\u{2069}"
        );
        assert_eq!(escape_line("a\\b"), "a\\\\b");
        for c in interesting_chars().filter(|&c| needs_escape(c)) {
            let debug = format!("{:?}", c.to_string());
            assert_eq!(
                escape_line(&c.to_string()),
                debug.trim_matches('"'),
                "{c:?}"
            );
        }
    }

    #[test]
    fn ordinary_text_is_left_as_it_is() {
        for s in [
            "plain ascii, \"quotes\" and 'apostrophes'",
            "café, naïve, 漢字, emoji 😀, Ωμέγα, עברית, العربية",
            "non-breaking\u{a0}space, soft\u{ad}hyphen, zero\u{200b}width",
        ] {
            assert_eq!(escape_line(s), s);
            assert!(matches!(escape_controls(s), Cow::Borrowed(_)));
        }
        // The log flavour keeps backslashes and escapes the same characters.
        assert_eq!(escape_controls("C:\\dir\n\u{1b}"), "C:\\dir\\n\\u{1b}");
        let mut out = String::new();
        let mut w = ControlEscaper(&mut out);
        let shown = "a\u{202e}b\\";
        assert!(write!(w, "{shown}|{:?}", "q\n").is_ok());
        assert_eq!(out, "a\\u{202e}b\\|\"q\\n\"");
    }

    #[test]
    fn the_escaped_set_is_exactly_controls_bidi_and_separators() {
        let escaped: Vec<u32> = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| needs_escape(c))
            .map(u32::from)
            .collect();
        let expected: Vec<u32> = (0..0x20)
            .chain(0x7f..0xa0)
            .chain([0x61c, 0x200e, 0x200f])
            .chain(0x2028..=0x202e)
            .chain(0x2066..=0x2069)
            .collect();
        assert_eq!(escaped, expected);
    }
}
