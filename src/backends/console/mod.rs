//! The console backend: one user typing lines, every bot message printed as one line.
//!
//! Input: a plain line is said in the configured room; `/dm TEXT` is a direct message to
//! the bot; a line starting with `@<bot name>` mentions the bot. Output: one line per bot
//! message, `[<bot name>] <where>: <text>`, where `<where>` is `#room`, `#room (thread T)`
//! or `@user (dm)`, with newlines written as `\n` and backslashes as `\\` so that a
//! message is always exactly one line. The same actor drives the integration tests over an
//! in-memory pipe instead of stdin/stdout.

mod connection;

pub use connection::{ConsoleConnection, ConsoleIo};

/// Escapes a message onto one line: `\` → `\\`, newline → `\n`, carriage return → `\r`.
pub fn escape_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
    out
}

/// Reverses [`escape_line`].
pub fn unescape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_stays_on_one_line() {
        let text = "line1\nline2 \\n literal\r\nend\\";
        let escaped = escape_line(text);
        assert!(!escaped.contains('\n'));
        assert_eq!(unescape_line(&escaped), text);
    }
}
