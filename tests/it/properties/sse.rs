//! StackStorm's event stream: `stormbridge::st2::sse::SseParser`.
//!
//! * **Round trip**: a transcript of events (with comments, heartbeats, unknown fields and
//!   every line ending SSE allows, mixed) parses back to exactly its events.
//! * **Chunking is invisible**: any byte stream — transcripts with garbage, invalid UTF-8 and
//!   overlong lines spliced in — fed in any chunks gives the same events and problems as fed
//!   whole, with any event size limit.
//! * **Memory is bounded by the event size limit**, whatever arrives (no line end for ever,
//!   endless data lines): the parser's state (seen through its `Debug` form, the only public
//!   view of its buffers) stays within a constant factor of the limit, and every event it
//!   emits is within the limit.

use proptest::prelude::*;
use stormbridge::st2::sse::{SseError, SseEvent, SseParser};

use super::{check, chunks, cuts, mutated_bytes, timed};

/// One item of a transcript.
#[derive(Debug, Clone)]
enum Item {
    /// An event: optional name, data lines (none: nothing is dispatched).
    Event(Option<String>, Vec<String>),
    /// `: comment`.
    Comment(String),
    /// A blank line on its own (st2's heartbeat).
    Heartbeat,
    /// A field the parser ignores (`id:`, `retry:`, unknown), inside an event.
    Ignored(String, String),
}

/// Text without line ends (a field value).
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            r#"{"payload": {"message": "done", "channel": "ops"}}"#.to_owned(),
            r#"{"id": "5f1", "status": "succeeded", "result": {"stdout": "a: b"}}"#.to_owned(),
            "st2.announcement__stormbridge".to_owned(),
            "st2.execution__update".to_owned(),
            " leading space kept after the first".to_owned(),
            "data: inside a value".to_owned(),
            "".to_owned(),
            ":".to_owned(),
        ]),
        3 => "[^\r\n]{0,40}",
        1 => any::<String>().prop_map(|s| s.replace(['\r', '\n'], "")),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        6 => (proptest::option::of(value()), proptest::collection::vec(value(), 0..4))
            .prop_map(|(e, d)| Item::Event(e, d)),
        1 => "[^\r\n]{0,20}".prop_map(Item::Comment),
        2 => Just(Item::Heartbeat),
        1 => (
            prop_oneof![Just("id".to_owned()), Just("retry".to_owned()), "[a-z]{1,6}"],
            value()
        )
            .prop_filter("not a field the parser reads", |(f, _)| f != "event" && f != "data")
            .prop_map(|(f, v)| Item::Ignored(f, v)),
    ]
}

/// Writes `items` with line ends picked from `ends` (cycled): LF, CR, CR LF.
fn render(items: &[Item], ends: &[u8]) -> Vec<u8> {
    let mut lines: Vec<String> = Vec::new();
    for item in items {
        match item {
            Item::Event(name, data) => {
                if let Some(n) = name {
                    lines.push(format!("event: {n}"));
                }
                for d in data {
                    lines.push(format!("data: {d}"));
                }
                lines.push(String::new());
            }
            Item::Comment(c) => lines.push(format!(":{c}")),
            Item::Heartbeat => lines.push(String::new()),
            Item::Ignored(f, v) => lines.push(format!("{f}: {v}")),
        }
    }
    let mut out = Vec::new();
    let mut previous_cr = false;
    for (i, line) in lines.iter().enumerate() {
        out.extend_from_slice(line.as_bytes());
        let mut end: &[u8] = match ends.get(i % ends.len().max(1)).copied().unwrap_or(0) % 3 {
            0 => b"\n",
            1 => b"\r",
            _ => b"\r\n",
        };
        // A CR then an empty line ended by LF would read as one CR LF: keep them apart.
        if previous_cr && line.is_empty() && end == b"\n" {
            end = b"\r\n";
        }
        previous_cr = end == b"\r";
        out.extend_from_slice(end);
    }
    out
}

/// What the transcript says (events without data dispatch nothing).
fn expected(items: &[Item]) -> Vec<SseEvent> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(name, data) if !data.is_empty() => Some(SseEvent {
                event: name.clone().unwrap_or_else(|| "message".into()),
                data: data.join("\n"),
            }),
            _ => None,
        })
        .collect()
}

#[test]
fn transcripts_round_trip_with_any_line_ends() {
    let strategy = (
        proptest::collection::vec(item(), 0..12),
        proptest::collection::vec(any::<u8>(), 1..8),
    );
    check("sse::round_trip", 256, strategy, |(items, ends)| {
        let bytes = render(&items, &ends);
        let out = timed("parsing a transcript", || {
            SseParser::new(1 << 20).feed(&bytes)
        })?;
        let problems: Vec<&SseError> = out.iter().filter_map(|r| r.as_ref().err()).collect();
        prop_assert!(problems.is_empty(), "problems: {problems:?}");
        let events: Vec<SseEvent> = out.into_iter().filter_map(Result::ok).collect();
        prop_assert_eq!(events, expected(&items));
        Ok(())
    });
}

/// Transcripts, then byte-level damage: garbage, invalid UTF-8, overlong lines, stray CRs.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let seeds = (
        proptest::collection::vec(item(), 0..8),
        proptest::collection::vec(any::<u8>(), 1..4),
    )
        .prop_map(|(items, ends)| render(&items, &ends));
    let tokens: Vec<Vec<u8>> = [
        &b"\n"[..],
        b"\r",
        b"\r\n",
        b"\n\n",
        b"data:",
        b"data: x",
        b"event:",
        b": keepalive",
        b"\xff\xfe",
        b"\xc3",
        b"retry: 1000",
    ]
    .iter()
    .map(|t| t.to_vec())
    .collect();
    seeds.prop_flat_map(move |seed| mutated_bytes(vec![seed], tokens.clone(), 8))
}

/// Feeds `chunks` one after another, collecting everything.
fn feed_all(max: usize, parts: &[&[u8]]) -> Vec<Result<SseEvent, SseError>> {
    let mut p = SseParser::new(max);
    parts.iter().flat_map(|c| p.feed(c)).collect()
}

#[test]
fn any_chunking_gives_what_the_whole_gives() {
    let strategy = (
        stream(),
        prop_oneof![1usize..64, 64usize..4096, Just(1usize << 20)],
        cuts(12),
    );
    check("sse::chunking", 256, strategy, |(bytes, max, cuts)| {
        let parts = chunks(&bytes, &cuts);
        let (whole, pieces) = timed("parsing a stream twice", || {
            (feed_all(max, &[&bytes]), feed_all(max, &parts))
        })?;
        prop_assert_eq!(&pieces, &whole, "chunks {:?}", parts.len());
        // Byte by byte too: every partial state.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(feed_all(max, &singles), whole);
        Ok(())
    });
}

/// The parser's buffers, measured through its `Debug` form: every byte of a buffer shows
/// as at most 10 characters there (`255, ` for line bytes, `\u{10ffff}` for text).
fn state_size(p: &SseParser) -> usize {
    format!("{p:?}").len()
}

#[test]
fn memory_stays_within_the_event_size_limit() {
    let strategy = (
        1usize..512,
        prop_oneof![
            // Never a line end.
            (1usize..200_000).prop_map(|n| vec![b'x'; n]),
            // Endless data lines of one event (never a blank line).
            (1usize..5_000).prop_map(|n| b"data: 0123456789\n".repeat(n)),
            // An endless event name line after data.
            (1usize..100_000).prop_map(|n| {
                let mut v = b"data: a\nevent: ".to_vec();
                v.extend(std::iter::repeat_n(b'e', n));
                v
            }),
            stream(),
        ],
        cuts(16),
    );
    check(
        "sse::bounded_memory",
        128,
        strategy,
        |(max, bytes, cuts)| {
            // Three buffers (line, event name, data) of at most `max` bytes each, 10 characters a
            // byte at most in Debug form, plus the field names.
            let bound = 3 * 10 * (max + 1) + 400;
            let mut p = SseParser::new(max);
            let mut largest = 0;
            timed("feeding a stream", || -> Result<(), TestCaseError> {
                for part in chunks(&bytes, &cuts) {
                    for event in p.feed(part).into_iter().flatten() {
                        // (`message`, the name of an event without one, is not input.)
                        prop_assert!(
                            event.data.len() <= max
                                && (event.event.len() <= max || event.event == "message"),
                            "{event:?} over the limit {max}"
                        );
                    }
                    largest = largest.max(state_size(&p));
                }
                Ok(())
            })??;
            prop_assert!(
                largest <= bound,
                "parser state grew to {largest} (bound {bound}) with limit {max}"
            );
            // And it still parses after whatever came before.
            let after = p.feed(b"\n\n\nevent: ok\ndata: fine\n\n");
            prop_assert!(
                after.contains(&Ok(SseEvent {
                    event: "ok".into(),
                    data: "fine".into()
                })) || max < 10,
                "no event after recovery: {after:?}"
            );
            Ok(())
        },
    );
}
