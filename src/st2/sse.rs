//! An incremental Server-Sent Events parser for StackStorm's stream.
//!
//! Bytes go in as they arrive; whole events come out. Buffers are bounded, so a server that
//! never ends a line cannot exhaust memory: the oversized event is reported and skipped.
//! st2 sends no `id:` or `retry:` lines and its heartbeat is a bare blank line, which
//! dispatches nothing here (liveness is tracked on bytes, by the stream consumer).

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// A problem with part of the stream; the parser continues after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or event grew past the limit and was dropped.
    #[error("stream event larger than {0} bytes was skipped")]
    TooLarge(usize),
    /// A line was not UTF-8 and was dropped.
    #[error("stream line is not UTF-8 and was skipped")]
    NotUtf8,
}

/// The longest line buffer kept between lines; a longer line's buffer is freed with it.
const KEPT_LINE_CAPACITY: usize = 64 * 1024;

/// The parser state.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    skipping_line: bool,
    poisoned_event: bool,
    last_was_cr: bool,
    max_event_bytes: usize,
}

impl SseParser {
    /// A parser that drops events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            event: None,
            data: None,
            skipping_line: false,
            poisoned_event: false,
            last_was_cr: false,
            max_event_bytes,
        }
    }

    /// Feeds a chunk and returns the events (and problems) it completed, in order.
    ///
    /// A line's bytes are found with `memchr` and copied a run at a time: an announcement
    /// carries a command's whole output, and byte by byte its reading cost more than
    /// anything else the stream consumer does.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Result<SseEvent, SseError>> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(&first) = rest.first() {
            // CR LF ends one line, not two.
            if std::mem::take(&mut self.last_was_cr) && first == b'\n' {
                rest = &rest[1..];
                continue;
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(at) => {
                    self.extend_line(&rest[..at], &mut out);
                    self.last_was_cr = rest[at] == b'\r';
                    self.end_line(&mut out);
                    rest = &rest[at + 1..];
                }
                None => {
                    self.extend_line(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    /// Adds `bytes` to the current line, unless that makes it larger than the limit (the
    /// line, and its event, are then dropped).
    fn extend_line(&mut self, bytes: &[u8], out: &mut Vec<Result<SseEvent, SseError>>) {
        if self.skipping_line || bytes.is_empty() {
            return;
        }
        if self.line.len() + bytes.len() > self.max_event_bytes {
            self.line.clear();
            self.skipping_line = true;
            self.poisoned_event = true;
            out.push(Err(SseError::TooLarge(self.max_event_bytes)));
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Vec<Result<SseEvent, SseError>>) {
        self.skipping_line = false;
        let raw = std::mem::take(&mut self.line);
        self.take_line(&raw, out);
        // The buffer is kept for the next line, unless an unusually long one grew it.
        if raw.capacity() <= KEPT_LINE_CAPACITY {
            self.line = raw;
            self.line.clear();
        }
    }

    fn take_line(&mut self, raw: &[u8], out: &mut Vec<Result<SseEvent, SseError>>) {
        if raw.is_empty() {
            self.dispatch(out);
            return;
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            if !self.poisoned_event {
                out.push(Err(SseError::NotUtf8));
            }
            self.poisoned_event = true;
            return;
        };
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                let data = match self.data.as_mut() {
                    Some(existing) => {
                        existing.push('\n');
                        existing
                    }
                    None => self.data.insert(String::with_capacity(value.len())),
                };
                if data.len() + value.len() > self.max_event_bytes {
                    if !self.poisoned_event {
                        out.push(Err(SseError::TooLarge(self.max_event_bytes)));
                    }
                    self.poisoned_event = true;
                    data.clear();
                } else {
                    data.push_str(value);
                }
            }
            // st2 never sends these; a future server might. Nothing to do with them here.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Result<SseEvent, SseError>>) {
        let event = self.event.take();
        let data = self.data.take();
        if std::mem::take(&mut self.poisoned_event) {
            return;
        }
        if let Some(data) = data {
            out.push(Ok(SseEvent {
                event: event.unwrap_or_else(|| "message".into()),
                data,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(p: &mut SseParser, s: &str) -> Vec<SseEvent> {
        p.feed(s.as_bytes())
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    }

    #[test]
    fn parses_st2_events_and_ignores_heartbeats() {
        let mut p = SseParser::new(1024);
        let got = events(
            &mut p,
            "\nevent: st2.announcement__x\ndata: {\"a\":1}\n\n\n\nevent: e2\ndata: 2\n\n",
        );
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: "st2.announcement__x".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "e2".into(),
                    data: "2".into()
                }
            ]
        );
    }

    #[test]
    fn events_split_across_chunks_at_every_byte() {
        let text = "event: a\r\ndata: line1\r\ndata: line2\r\n\r\n";
        let mut p = SseParser::new(1024);
        let mut got = Vec::new();
        for b in text.as_bytes() {
            got.extend(p.feed(&[*b]).into_iter().filter_map(Result::ok));
        }
        assert_eq!(
            got,
            vec![SseEvent {
                event: "a".into(),
                data: "line1\nline2".into()
            }]
        );
    }

    #[test]
    fn oversized_and_invalid_events_are_skipped_and_parsing_continues() {
        let mut p = SseParser::new(16);
        let mut input = format!("event: big\ndata: {}\n\n", "x".repeat(100)).into_bytes();
        input.extend_from_slice(b"event: bad\ndata: \xff\xfe\n\n");
        input.extend_from_slice(b"event: ok\ndata: fine\n\n");
        let out = p.feed(&input);
        assert!(out.contains(&Err(SseError::TooLarge(16))));
        assert!(out.contains(&Err(SseError::NotUtf8)));
        let ok: Vec<_> = out.into_iter().filter_map(Result::ok).collect();
        assert_eq!(
            ok,
            vec![SseEvent {
                event: "ok".into(),
                data: "fine".into()
            }]
        );
    }

    #[test]
    fn comments_are_ignored() {
        let mut p = SseParser::new(64);
        assert!(events(&mut p, ": keepalive\n\n").is_empty());
    }
}
