//! Turning a command's raw output bytes into text chunks: line-buffered, partial lines
//! flushed after a pause, capped in total, never split inside a UTF-8 character, and
//! converted lossily (invalid UTF-8 becomes U+FFFD, never a panic).

use std::time::Duration;

use tokio::{sync::mpsc::UnboundedSender, time::Instant};

/// How long an unterminated line waits for the rest of it before it is sent as it is.
pub const PARTIAL_LINE_FLUSH: Duration = Duration::from_millis(200);

/// An unterminated line this long is sent without waiting for its end.
const LONG_PARTIAL: usize = 8 * 1024;

/// A piece of a local command's output (stdout and stderr merged in the order the command
/// wrote them), as it arrived: whole lines, or a partial line after a
/// [`PARTIAL_LINE_FLUSH`] pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// The text, newlines included; invalid UTF-8 replaced by U+FFFD.
    pub text: String,
}

/// Collects output bytes and sends chunks through a channel; keeps at most the cap.
#[derive(Debug)]
pub(super) struct OutputBuffer {
    sink: UnboundedSender<OutputChunk>,
    /// Accepted bytes not sent yet: an unterminated line.
    pending: Vec<u8>,
    /// When `pending` became non-empty.
    pending_since: Option<Instant>,
    /// Bytes that may still be accepted.
    remaining: usize,
    /// Bytes read and thrown away past the cap.
    dropped: u64,
}

impl OutputBuffer {
    /// A buffer that keeps at most `cap` bytes in all and sends chunks to `sink`. Chunks
    /// that cannot be sent (the receiver is gone) are discarded.
    pub(super) fn new(cap: usize, sink: UnboundedSender<OutputChunk>) -> Self {
        Self {
            sink,
            pending: Vec::new(),
            pending_since: None,
            remaining: cap,
            dropped: 0,
        }
    }

    /// Takes bytes just read: what fits under the cap is kept, complete lines are sent.
    pub(super) fn push(&mut self, bytes: &[u8], now: Instant) {
        let take = bytes.len().min(self.remaining);
        self.dropped += (bytes.len() - take) as u64;
        if take == 0 {
            return;
        }
        self.remaining -= take;
        if self.pending.is_empty() {
            self.pending_since = Some(now);
        }
        self.pending.extend_from_slice(&bytes[..take]);
        if take < bytes.len() {
            // The cap cut the output: drop a character it split, rather than end in U+FFFD.
            let keep = complete_utf8_len(&self.pending);
            self.dropped += (self.pending.len() - keep) as u64;
            self.pending.truncate(keep);
        }
        if let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(last_newline + 1);
            let lines = std::mem::replace(&mut self.pending, rest);
            self.send(&lines);
            self.pending_since = (!self.pending.is_empty()).then_some(now);
        }
        if self.pending.len() >= LONG_PARTIAL {
            self.flush_partial(now);
        }
    }

    /// When the pending partial line is due to be sent, if there is one.
    pub(super) fn flush_due(&self) -> Option<Instant> {
        self.pending_since.map(|since| since + PARTIAL_LINE_FLUSH)
    }

    /// Sends the pending partial line, except for a trailing incomplete UTF-8 character
    /// (kept for the bytes that complete it).
    pub(super) fn flush_partial(&mut self, now: Instant) {
        let complete = complete_utf8_len(&self.pending);
        if complete > 0 {
            let rest = self.pending.split_off(complete);
            let text = std::mem::replace(&mut self.pending, rest);
            self.send(&text);
        }
        // What is left (at most an incomplete character) waits for another pause.
        self.pending_since = (!self.pending.is_empty()).then_some(now);
    }

    /// Sends whatever is pending (the output has ended) and says how many bytes were
    /// dropped past the cap.
    pub(super) fn finish(mut self) -> u64 {
        let pending = std::mem::take(&mut self.pending);
        self.send(&pending);
        self.dropped
    }

    fn send(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(bytes).into_owned();
        // A closed receiver means nobody reads the output any more; the command still runs
        // to its end (cancelling it is the caller's decision).
        let _ = self.sink.send(OutputChunk { text });
    }
}

/// The length of `bytes` without a trailing UTF-8 character that is cut short (a lead byte
/// followed by fewer continuation bytes than it announces). Invalid bytes are not this
/// function's business: they are counted as complete and become U+FFFD later.
pub(super) fn complete_utf8_len(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for its lead byte
        }
        let needed = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needed > back { n - back } else { n };
    }
    n
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    use super::*;

    fn buffer(cap: usize) -> (OutputBuffer, UnboundedReceiver<OutputChunk>) {
        let (tx, rx) = unbounded_channel();
        (OutputBuffer::new(cap, tx), rx)
    }

    fn drain(rx: &mut UnboundedReceiver<OutputChunk>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            out.push(chunk.text);
        }
        out
    }

    #[test]
    fn complete_lines_go_out_at_once_partial_lines_wait() {
        let (mut buf, mut rx) = buffer(1024);
        let t0 = Instant::now();
        buf.push(b"one\ntwo\nthr", t0);
        assert_eq!(drain(&mut rx), ["one\ntwo\n"]);
        assert_eq!(buf.flush_due(), Some(t0 + PARTIAL_LINE_FLUSH));
        buf.push(b"ee\nfo", t0 + Duration::from_millis(50));
        assert_eq!(drain(&mut rx), ["three\n"]);
        let t1 = t0 + Duration::from_millis(50);
        assert_eq!(buf.flush_due(), Some(t1 + PARTIAL_LINE_FLUSH));
        buf.flush_partial(t1 + PARTIAL_LINE_FLUSH);
        assert_eq!(drain(&mut rx), ["fo"]);
        assert_eq!(buf.flush_due(), None);
        buf.push(b"ur", t1);
        assert_eq!(buf.finish(), 0);
        assert_eq!(drain(&mut rx), ["ur"]);
    }

    #[test]
    fn the_cap_keeps_the_first_bytes_and_counts_the_rest() {
        let (mut buf, mut rx) = buffer(10);
        let t = Instant::now();
        buf.push(b"12345\n", t);
        buf.push(b"6789\nabcdef\n", t);
        buf.push(b"more\n", t);
        assert_eq!(buf.finish(), 13);
        assert_eq!(drain(&mut rx).concat(), "12345\n6789");
    }

    #[test]
    fn the_cap_does_not_split_a_character() {
        let (mut buf, mut rx) = buffer(5);
        // "ab" + "é" (2 bytes) + "€" (3 bytes): the cap falls inside the euro sign.
        buf.push("abé€".as_bytes(), Instant::now());
        assert_eq!(buf.finish(), 3);
        assert_eq!(drain(&mut rx), ["abé"]);
    }

    #[test]
    fn a_partial_flush_keeps_an_incomplete_character() {
        let (mut buf, mut rx) = buffer(100);
        let t = Instant::now();
        let euro = "€".as_bytes();
        buf.push(&[b'x', euro[0], euro[1]], t);
        buf.flush_partial(t);
        assert_eq!(drain(&mut rx), ["x"]);
        buf.push(&euro[2..], t);
        buf.push(b"\n", t);
        assert_eq!(drain(&mut rx), ["€\n"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let (mut buf, mut rx) = buffer(100);
        buf.push(b"a\xff\xfeb\n\xc3", Instant::now());
        buf.finish();
        assert_eq!(drain(&mut rx), ["a\u{FFFD}\u{FFFD}b\n", "\u{FFFD}"]);
    }

    #[test]
    fn a_long_partial_line_is_not_held_back() {
        let (mut buf, mut rx) = buffer(1 << 20);
        buf.push(&vec![b'x'; LONG_PARTIAL], Instant::now());
        assert_eq!(drain(&mut rx)[0].len(), LONG_PARTIAL);
        assert_eq!(buf.flush_due(), None);
    }

    #[test]
    fn a_closed_receiver_is_harmless() {
        let (mut buf, rx) = buffer(100);
        drop(rx);
        buf.push(b"line\n", Instant::now());
        assert_eq!(buf.finish(), 0);
    }

    #[test]
    fn complete_utf8_len_cases() {
        assert_eq!(complete_utf8_len(b""), 0);
        assert_eq!(complete_utf8_len(b"abc"), 3);
        let euro = "€".as_bytes();
        assert_eq!(complete_utf8_len(euro), 3);
        assert_eq!(complete_utf8_len(&euro[..2]), 0);
        assert_eq!(complete_utf8_len(&[b'a', euro[0]]), 1);
        assert_eq!(complete_utf8_len(b"a\x80\x80\x80\x80"), 5);
        assert_eq!(complete_utf8_len(b"a\xff"), 2);
    }
}
