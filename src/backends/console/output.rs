//! How a bot message is printed: one escaped line for pipes and tests, or, on a terminal,
//! the message's own lines with the continuation lines indented.

use crate::domain::escape::escape_line;

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
