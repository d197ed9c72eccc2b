//! The console's wire: input split into lines, where a bad line is a value, not the end
//! of input; and how a bot message is printed: one escaped line for pipes and tests, or, on
//! a terminal, the message's own lines with the continuation lines indented.
//!
//! `tokio_util`'s `LinesCodec` reports a line that is too long or not UTF-8 as an error, and
//! `FramedRead` ends the stream after any decoder error: one such line used to stop the
//! console for good. [`ConsoleLines`] hands such lines over as [`InputLine::TooLong`] and
//! [`InputLine::NotUtf8`] instead and goes on with the next line; only an I/O error of the
//! input itself ends it.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use crate::domain::escape::escape_line;

/// How much of a bad line is shown (in characters, escaped) in its warning.
const PREFIX_CHARS: usize = 32;

/// One line of console input.
#[derive(Debug, PartialEq, Eq)]
pub enum InputLine {
    /// A line of text, without its line ending (`\n` or `\r\n`).
    Text(String),
    /// A line longer than the limit, skipped; `prefix` is its beginning, escaped.
    TooLong { prefix: String },
    /// A line that is not valid UTF-8, skipped; `prefix` is its beginning, escaped (with
    /// U+FFFD for the bytes that are not UTF-8).
    NotUtf8 { prefix: String },
}

/// A line decoder that never fails on content (see the module documentation).
#[derive(Debug)]
pub struct ConsoleLines {
    max_length: usize,
    /// How far the current buffer is known to hold no newline.
    next_index: usize,
    /// The rest of an over-long line is being thrown away, up to its newline.
    discarding: bool,
}

impl ConsoleLines {
    /// Lines of at most `max_length` bytes (without the line ending) are accepted.
    pub fn new(max_length: usize) -> Self {
        Self {
            max_length,
            next_index: 0,
            discarding: false,
        }
    }
}

/// The short, escaped beginning of a bad line whose first bytes are `bytes` (`cut`: the line
/// goes on after them): at most [`PREFIX_CHARS`] characters, with `…` when there was more.
fn shown_prefix(bytes: &[u8], cut: bool) -> String {
    // Four bytes per character at most: enough to show PREFIX_CHARS characters.
    let head = &bytes[..bytes.len().min(PREFIX_CHARS * 4)];
    let cut = cut || head.len() < bytes.len();
    let head = if cut { without_cut_char(head) } else { head };
    let text = String::from_utf8_lossy(head);
    let mut chars = text.chars();
    let shown: String = chars.by_ref().take(PREFIX_CHARS).collect();
    let more = cut || chars.next().is_some();
    let mut out = escape_line(&shown);
    if more {
        out.push('…');
    }
    out
}

/// `bytes` without the UTF-8 character cut off at its end, if there is one (so that the cut
/// is not shown as a U+FFFD of its own).
fn without_cut_char(bytes: &[u8]) -> &[u8] {
    for back in 1..=bytes.len().min(3) {
        let at = bytes.len() - back;
        let b = bytes[at];
        if b & 0xc0 == 0x80 {
            continue; // a continuation byte: look further back for the lead byte
        }
        let needs = match b {
            0xf8.. => 1, // never a lead byte: not a cut character
            0xf0.. => 4,
            0xe0.. => 3,
            0xc0.. => 2,
            _ => 1,
        };
        return if needs > back { &bytes[..at] } else { bytes };
    }
    bytes
}

/// A complete line's bytes (line ending removed) as an [`InputLine`].
fn to_line(bytes: &[u8]) -> InputLine {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => InputLine::Text(text.to_owned()),
        Err(_) => InputLine::NotUtf8 {
            prefix: shown_prefix(bytes, false),
        },
    }
}

impl Decoder for ConsoleLines {
    type Item = InputLine;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<InputLine>, std::io::Error> {
        loop {
            if self.discarding {
                match buf.iter().position(|&b| b == b'\n') {
                    Some(at) => {
                        buf.advance(at + 1);
                        self.discarding = false;
                        self.next_index = 0;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                }
                continue;
            }
            // A newline within max_length + 1 bytes ends a line of at most max_length.
            let read_to = buf.len().min(self.max_length.saturating_add(1));
            let newline = buf[self.next_index..read_to]
                .iter()
                .position(|&b| b == b'\n');
            return Ok(match newline {
                Some(offset) => {
                    let line = buf.split_to(self.next_index + offset + 1);
                    self.next_index = 0;
                    Some(to_line(&line[..line.len() - 1]))
                }
                None if buf.len() > self.max_length => {
                    let prefix = shown_prefix(&buf[..read_to], true);
                    buf.advance(read_to);
                    self.next_index = 0;
                    self.discarding = true;
                    Some(InputLine::TooLong { prefix })
                }
                None => {
                    self.next_index = read_to;
                    None
                }
            });
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<InputLine>, std::io::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.next_index = 0;
        if self.discarding {
            self.discarding = false;
            buf.clear();
            return Ok(None);
        }
        if buf.is_empty() {
            return Ok(None);
        }
        // The last line, without a line ending.
        let line = buf.split();
        Ok(Some(to_line(&line)))
    }
}

/// Indent of a message's second and later lines on a terminal: they stand apart from the
/// `[bot] #room:` lines that start messages.
pub const CONTINUATION_INDENT: &str = "    ";

/// The output lines for `head` (the `[bot] #room:` part) and the message text `text`.
///
/// `terminal == false`: exactly one line, escaped as a whole (`\n` for a newline), which
/// `unescape_line` turns back into the message. `terminal == true`: each line of the
/// message escaped on its own (so no control character reaches the terminal), the first
/// after `head`, the rest indented by [`CONTINUATION_INDENT`]; trailing blank lines
/// dropped.
pub fn output_lines(head: &str, text: &str, terminal: bool) -> Vec<String> {
    if !terminal {
        return vec![escape_line(&format!("{head} {text}"))];
    }
    let text = text.trim_end_matches(['\n', '\r', ' ', '\t']);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let mut out = vec![format!("{} {}", escape_line(head), escape_line(first))
        .trim_end()
        .to_owned()];
    out.extend(lines.map(|l| {
        let l = escape_line(l);
        if l.is_empty() {
            String::new()
        } else {
            format!("{CONTINUATION_INDENT}{l}")
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(max: usize, chunks: &[&[u8]]) -> Vec<InputLine> {
        let mut codec = ConsoleLines::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Ok(Some(line)) = codec.decode(&mut buf) {
                out.push(line);
            }
        }
        while let Ok(Some(line)) = codec.decode_eof(&mut buf) {
            out.push(line);
        }
        out
    }

    fn text(s: &str) -> InputLine {
        InputLine::Text(s.to_owned())
    }

    #[test]
    fn lines_are_split_at_newlines_with_crlf_and_a_last_line_without_one() {
        assert_eq!(
            decode_all(100, &[b"one\r\ntw", b"o\n\nthree"]),
            vec![text("one"), text("two"), text(""), text("three")]
        );
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_accepted() {
        let line = "x".repeat(10);
        assert_eq!(
            decode_all(10, &[format!("{line}\n").as_bytes()]),
            vec![text(&line)]
        );
    }

    #[test]
    fn a_too_long_line_is_reported_once_and_the_next_line_is_read() {
        for chunks in [
            vec![b"0123456789abcdef\nnext\n".as_slice()],
            vec![b"0123456789a".as_slice(), b"bcd", b"ef\nnext\n"],
            vec![b"0123456789abc".as_slice(), b"def", b"\n", b"next"],
        ] {
            let lines = decode_all(10, &chunks);
            assert_eq!(lines.len(), 2, "{lines:?}");
            assert!(
                matches!(&lines[0], InputLine::TooLong { prefix } if prefix.starts_with("0123456789")),
                "{lines:?}"
            );
            assert_eq!(lines[1], text("next"));
        }
    }

    #[test]
    fn a_too_long_line_at_the_end_of_input_is_reported_and_input_ends() {
        let lines = decode_all(4, &[b"ok\n0123456789"]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0], text("ok"));
        assert!(matches!(lines[1], InputLine::TooLong { .. }));
    }

    #[test]
    fn an_invalid_utf8_line_is_reported_with_an_escaped_prefix_and_the_next_line_is_read() {
        let lines = decode_all(100, &[b"caf\xe9 \x1b[2J\xff\nnext\n"]);
        assert_eq!(
            lines,
            vec![
                InputLine::NotUtf8 {
                    prefix: "caf\u{fffd} \\u{1b}[2J\u{fffd}".into()
                },
                text("next")
            ]
        );
    }

    #[test]
    fn the_prefix_is_short_and_escaped() {
        let long = format!("\u{1b}]0;title\u{7}{}\n", "é".repeat(100));
        let lines = decode_all(50, &[long.as_bytes(), b"next\n"]);
        let InputLine::TooLong { prefix } = &lines[0] else {
            panic!("{lines:?}")
        };
        assert!(prefix.starts_with("\\u{1b}]0;title\\u{7}é"), "{prefix}");
        assert!(prefix.ends_with("é…"), "{prefix}");
        assert!(!prefix.contains('\u{fffd}'), "{prefix}");
        assert!(
            prefix.chars().filter(|&c| c == 'é').count() < 32,
            "{prefix}"
        );
        assert!(!prefix.chars().any(char::is_control));
        assert_eq!(lines[1], text("next"));
    }

    #[test]
    fn a_character_cut_at_the_end_of_a_prefix_is_left_out() {
        assert_eq!(without_cut_char("aé".as_bytes()), "aé".as_bytes());
        assert_eq!(without_cut_char(&"aé".as_bytes()[..2]), b"a");
        assert_eq!(without_cut_char(&"a😀".as_bytes()[..4]), b"a");
        assert_eq!(without_cut_char("a😀".as_bytes()), "a😀".as_bytes());
        assert_eq!(without_cut_char(b"ab\xff"), b"ab\xff");
        assert_eq!(without_cut_char(b""), b"");
        assert_eq!(shown_prefix("ab".as_bytes(), false), "ab");
        assert_eq!(shown_prefix("ab".as_bytes(), true), "ab…");
        let many = "😀".repeat(40);
        assert_eq!(
            shown_prefix(many.as_bytes(), false),
            format!("{}…", "😀".repeat(32))
        );
    }

    #[test]
    fn memory_stays_bounded_while_a_huge_line_is_thrown_away() {
        let mut codec = ConsoleLines::new(16);
        let mut buf = BytesMut::new();
        let mut reported = 0;
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'x'; 4096]);
            while let Ok(Some(line)) = codec.decode(&mut buf) {
                assert!(matches!(line, InputLine::TooLong { .. }));
                reported += 1;
            }
            assert!(buf.len() <= 4096, "{}", buf.len());
        }
        buf.extend_from_slice(b"tail\nnext\n");
        let mut rest = Vec::new();
        while let Ok(Some(line)) = codec.decode(&mut buf) {
            rest.push(line);
        }
        assert_eq!(reported, 1);
        assert_eq!(rest, vec![text("next")]);
    }

    use crate::domain::escape::unescape_line;

    #[test]
    fn a_pipe_gets_one_line_that_unescapes_to_the_message() {
        let out = output_lines("[b] #ops:", "a\nb\\c", false);
        assert_eq!(out, vec![r"[b] #ops: a\nb\\c"]);
        assert_eq!(unescape_line(&out[0]), "[b] #ops: a\nb\\c");
    }

    #[test]
    fn a_terminal_gets_the_lines_indented_and_nothing_that_drives_it() {
        let text =
            "\nAction core.local completed.\r\nstatus : succeeded\n\nstdout : \u{1b}[2Jx\n\n";
        let out = output_lines("[b] #ops: Alice:", text, true);
        assert_eq!(
            out,
            vec![
                "[b] #ops: Alice:",
                "    Action core.local completed.",
                "    status : succeeded",
                "",
                r"    stdout : \u{1b}[2Jx",
            ]
        );
        assert!(out.iter().all(|l| !l.chars().any(char::is_control)));
        assert_eq!(
            output_lines("[b] #ops:", "one line", true),
            vec!["[b] #ops: one line"]
        );
    }
}
