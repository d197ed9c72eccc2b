//! Logging setup. Logs go to standard error: standard output belongs to the console backend.
//!
//! **A log line is one line and drives no terminal**, whatever text StackStorm or a chat user
//! put into its fields (a faultstring with a newline and a fake timestamp, an announcement
//! with ESC sequences, a chat message with a bidi override). This is done here, once, for
//! every call site:
//!
//! - `pretty`: field values, the message and span fields are written through
//!   [`EscapingFields`], which escapes every control character (tab as `\t`, newline as `\n`,
//!   ESC as `\u{1b}`, …) and every Unicode bidi control (`\u{202e}`, …) the way
//!   [`crate::domain::escape`] describes. Backslashes are not doubled: strings logged with `?`
//!   (or as `&str` fields) are `{:?}`-quoted and have escaped theirs already. The
//!   formatter's own ANSI colours (level, timestamp, field names) are kept on a terminal.
//! - `json`: the JSON encoder already escapes the C0 controls (`\n`, `\u001b`, …) but writes
//!   DEL, the C1 controls (the 8-bit CSI U+009B among them) and the bidi controls raw;
//!   [`JsonEscaping`] writes those as `\u…` JSON escapes too, which decode to the very same
//!   string, so consumers of the JSON see the original text.

use std::{fmt, io};

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    field::RecordFields,
    fmt::{
        format::{FormatFields, Writer},
        MakeWriter,
    },
    EnvFilter,
};

use crate::{
    config::{LogFormat, LogSettings},
    domain::escape::{needs_escape, ControlEscaper},
};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: journald, files and pipes get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (tests, the demo after a failed start) is harmless: keep the first.
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .with_writer(JsonEscaping(std::io::stderr))
            .try_init(),
        LogFormat::Pretty => builder
            .fmt_fields(EscapingFields)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

/// The `pretty` format's field formatter: `tracing_subscriber`'s default layout
/// (`message name=value name=value`, strings `{:?}`-quoted), with control characters and bidi
/// controls in the message, in every value and in span fields escaped.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapingFields;

impl<'writer> FormatFields<'writer> for EscapingFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// ANSI styles for field names, as `tracing_subscriber`'s default field formatter uses them.
const ITALIC: &str = "\u{1b}[3m";
const DIMMED: &str = "\u{1b}[2m";
const RESET: &str = "\u{1b}[0m";

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    /// Writes one field: `value` for the message, `name=value` for the others, with `value`
    /// (and, for good measure, the name) escaped as it is written.
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        self.result = self.write_field(field, value);
    }

    fn write_field(&mut self, field: &Field, value: fmt::Arguments<'_>) -> fmt::Result {
        use fmt::Write as _;
        if !self.empty {
            self.writer.write_char(' ')?;
        }
        self.empty = false;
        let name = field.name();
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            let ansi = self.writer.has_ansi_escapes();
            if ansi {
                self.writer.write_str(ITALIC)?;
            }
            ControlEscaper(&mut self.writer).write_str(name)?;
            if ansi {
                write!(self.writer, "{RESET}{DIMMED}={RESET}")?;
            } else {
                self.writer.write_char('=')?;
            }
        }
        ControlEscaper(&mut self.writer).write_fmt(value)
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match value.source() {
            Some(source) => self.field(
                field,
                format_args!("{value} {}.sources={}", field.name(), ErrorSources(source)),
            ),
            None => self.field(field, format_args!("{value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// An error's chain of sources, `[first, second]`.
struct ErrorSources<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorSources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut next = Some(self.0);
        while let Some(err) = next {
            list.entry(&format_args!("{err}"));
            next = err.source();
        }
        list.finish()
    }
}

/// A [`MakeWriter`] for the `json` format: writes DEL, the C1 controls, the bidi controls
/// and the line separators (everything [`needs_escape`] that the JSON encoder leaves raw) as
/// `\uXXXX` escapes. JSON has those characters only inside strings, where the escape means
/// the same character, so the JSON still decodes to the same values. The C0 controls are
/// the encoder's own job (it escapes all of them), and the final newline stays as it is.
#[derive(Debug, Clone, Copy)]
pub struct JsonEscaping<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for JsonEscaping<M> {
    type Writer = JsonEscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        JsonEscapingWriter::new(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        JsonEscapingWriter::new(self.0.make_writer_for(meta))
    }
}

/// The writer of [`JsonEscaping`].
#[derive(Debug)]
pub struct JsonEscapingWriter<W: io::Write> {
    inner: W,
    /// The start of a UTF-8 character cut off at the end of the last write.
    pending: Vec<u8>,
}

impl<W: io::Write> JsonEscapingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }
}

/// Appends `text` to `out` with every character that [`needs_escape`], except the newline
/// that ends a JSON log line, as a JSON `\uXXXX` escape (all of them are in the BMP).
fn escape_json_text(text: &str, out: &mut Vec<u8>) {
    let mut buf = [0u16; 2];
    for c in text.chars() {
        if c != '\n' && needs_escape(c) {
            for unit in c.encode_utf16(&mut buf) {
                out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
            }
        } else {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }
}

impl<W: io::Write> io::Write for JsonEscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(buf);
        let mut out = Vec::with_capacity(bytes.len() + 16);
        let mut rest = bytes.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    escape_json_text(text, &mut out);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` is UTF-8 by the error's word.
                    escape_json_text(&String::from_utf8_lossy(valid), &mut out);
                    match e.error_len() {
                        // Not UTF-8 at all (not from the JSON encoder): passed on as it is.
                        Some(len) => {
                            out.extend_from_slice(&after[..len]);
                            rest = &after[len..];
                        }
                        // A character cut at the end: kept for the next write.
                        None => {
                            self.pending = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.inner.write_all(&pending)?;
        }
        self.inner.flush()
    }
}

impl<W: io::Write> Drop for JsonEscapingWriter<W> {
    fn drop(&mut self) {
        // Only after a cut write that was never completed (the fmt layer writes whole lines).
        if !self.pending.is_empty() {
            let _ = self.inner.write_all(&self.pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use tracing::subscriber::with_default;

    use super::*;

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock()).into_owned()
        }
    }

    /// A faultstring from StackStorm that forges a log line.
    const FORGED_LINE: &str = "boom\n1999-01-01T00:00:00Z  INFO stormbridge: forged";
    /// An announcement that clears the screen, sets the window title and rings the bell, in
    /// 7-bit (ESC [) and 8-bit (U+009B) CSI.
    const TERMINAL_CONTROL: &str = "done\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{7f}\r";
    /// A chat message that shows reversed.
    const BIDI: &str = "deploy \u{202e}exe.txt\u{202c} \u{2066}x\u{2069}\u{2028}y";

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// Logs every hostile text every way a call site can: as the message, with `%`, `?`, as a
    /// `&str`, as an error, and in a span's fields. One event per hostile text and way.
    fn log_hostile_events() -> usize {
        let mut events = 0;
        for text in [FORGED_LINE, TERMINAL_CONTROL, BIDI] {
            let span = tracing::info_span!("command", text = %text, quoted = text);
            let _entered = span.enter();
            tracing::info!("st2 said: {text}");
            tracing::warn!(faultstring = %text, "request failed");
            tracing::warn!(faultstring = ?text, "request failed");
            tracing::warn!(faultstring = text, "request failed");
            let error = Failure(text, Some(Box::new(Failure(text, None))));
            tracing::error!(
                error = &error as &(dyn std::error::Error + 'static),
                "failed"
            );
            events += 5;
        }
        events
    }

    fn pretty(ansi: bool) -> (Buffer, impl tracing::Subscriber) {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(ansi)
            .fmt_fields(EscapingFields)
            .with_writer(move || writer.clone())
            .finish();
        (buf, subscriber)
    }

    fn json() -> (Buffer, impl tracing::Subscriber) {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(JsonEscaping(move || writer.clone()))
            .finish();
        (buf, subscriber)
    }

    /// The log is `events` lines, each ending in a newline, with no other control character
    /// and no bidi control.
    fn assert_one_clean_line_per_event(log: &str, events: usize) {
        assert!(log.ends_with('\n'), "{log}");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), events, "{log}");
        for line in lines {
            assert!(!line.chars().any(needs_escape), "{line:?}");
        }
        assert!(!log.contains("\n1999-01-01"), "a forged line: {log}");
    }

    #[test]
    fn pretty_log_lines_stay_one_line_without_control_characters() {
        let (buf, subscriber) = pretty(false);
        let events = with_default(subscriber, log_hostile_events);
        let log = buf.text();
        assert_one_clean_line_per_event(&log, events);
        // What was escaped can still be read.
        assert!(log.contains("st2 said: boom\\n1999-01-01T00:00:00Z  INFO stormbridge: forged"));
        assert!(log.contains("faultstring=done\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{9b}31m"));
        assert!(log.contains("faultstring=\"deploy \\u{202e}exe.txt\\u{202c}"));
        assert!(log.contains("command{text=boom\\n1999"), "{log}");
        assert!(log.contains("error=boom\\n1999"), "{log}");
        assert!(log.contains("error.sources=[boom\\n1999"), "{log}");
    }

    #[test]
    fn pretty_log_keeps_its_own_colours_on_a_terminal_but_not_the_fields() {
        let (buf, subscriber) = pretty(true);
        let events = with_default(subscriber, log_hostile_events);
        let log = buf.text();
        assert_eq!(log.lines().count(), events, "{log}");
        // The level is coloured and field names are italic, as before.
        assert!(log.contains("\u{1b}[32m INFO\u{1b}[0m"), "{log:?}");
        assert!(log.contains("\u{1b}[3mfaultstring\u{1b}[0m"), "{log:?}");
        // No escape sequence of the fields' own reaches the terminal.
        for line in log.lines() {
            let without_own_styles = line
                .split('\u{1b}')
                .skip(1)
                .all(|seq| seq.starts_with('[') && matches!(seq[1..].find('m'), Some(i) if i < 4));
            assert!(without_own_styles, "{line:?}");
            assert!(!line.contains("\u{1b}]0;"), "{line:?}");
            assert!(
                !line.chars().any(|c| needs_escape(c) && c != '\u{1b}'),
                "{line:?}"
            );
        }
    }

    #[test]
    fn json_log_lines_stay_one_line_without_control_characters_and_keep_the_text() {
        let (buf, subscriber) = json();
        let events = with_default(subscriber, log_hostile_events);
        let log = buf.text();
        assert_one_clean_line_per_event(&log, events);
        // Each line is JSON and decodes to exactly the text that was logged.
        let mut seen = Vec::new();
        for line in log.lines() {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if let Some(f) = value["fields"]["faultstring"].as_str() {
                seen.push(f.to_owned());
            }
            if value["fields"]["message"] == "failed" {
                let span_text = value["span"]["text"].as_str().unwrap_or_default();
                assert_eq!(value["span"]["quoted"], span_text, "{line}");
                let error = value["fields"]["error"].as_str().unwrap_or_default();
                // The JSON encoder records an error as its `Display`.
                assert_eq!(error, span_text, "{line}");
            }
        }
        for text in [FORGED_LINE, TERMINAL_CONTROL, BIDI] {
            assert!(seen.iter().any(|s| s == text), "{text:?} not in {seen:?}");
            assert!(seen.iter().any(|s| *s == format!("{text:?}")), "{seen:?}");
        }
    }

    #[test]
    fn ordinary_text_is_readable() {
        let (buf, subscriber) = pretty(false);
        with_default(subscriber, || {
            tracing::info!(
                user = "Zoë \"the admin\" O'Brien",
                room = %"#ops",
                path = %"C:\\stack\\storm",
                count = 3,
                "command from 漢字 user\twith a tab"
            );
        });
        let log = buf.text();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(
            log.contains(
                "command from 漢字 user\\twith a tab \
                 user=\"Zoë \\\"the admin\\\" O'Brien\" room=#ops path=C:\\stack\\storm count=3"
            ),
            "{log}"
        );
    }

    #[test]
    fn the_json_writer_keeps_cut_characters_whole() {
        let mut out = Buffer::default();
        {
            let mut w = JsonEscapingWriter::new(out.clone());
            let text = "a\u{9b}b\u{202e}c\u{e9}\n".as_bytes();
            for chunk in text.chunks(1) {
                assert!(io::Write::write_all(&mut w, chunk).is_ok());
            }
        }
        assert!(io::Write::flush(&mut out).is_ok());
        assert_eq!(out.text(), "a\\u009bb\\u202ec\u{e9}\n");
    }
}
