//! Splitting what a chat user typed after a local command's name into argv items.
//!
//! The rules are deliberately smaller than a shell's, and nothing here is ever given to a
//! shell:
//!
//! * whitespace outside quotes separates arguments (runs of it count as one separator);
//! * `"…"` and `'…'` group everything up to the matching quote, whitespace and the other
//!   quote character included, into the current argument; a quoted part joins the text
//!   right before and after it (`--msg="a b"` is the single argument `--msg=a b`), and an
//!   empty pair (`""`) is an empty argument;
//! * there are **no escapes**: a backslash is an ordinary character (paths, regexes). Put a
//!   `"` inside `'…'` and a `'` inside `"…"`;
//! * there is **no expansion** of any kind: `$HOME`, `~`, `*`, `?`, `` ` ``, `;`, `|`, `&`,
//!   `>` and `<` reach the program as the literal characters typed.
//!
//! Chat clients' typographic quotes (`“…”`, `‘…’`) are straightened by the dispatcher
//! ([`crate::domain::command::normalise_text`]) before the text gets here.

/// Why the text after a local command's name cannot be turned into arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    /// A `"` or `'` was opened and never closed.
    #[error("unterminated {quote} quote: close it, or put it inside the other kind of quotes")]
    UnterminatedQuote {
        /// The quote character left open.
        quote: char,
    },
    /// The text holds a NUL character, which no argv item can carry.
    #[error("arguments cannot contain a NUL character")]
    NulCharacter,
    /// The command was given arguments, and it is configured with `allow_arguments = false`.
    #[error("{command} takes no arguments")]
    NotAllowed {
        /// The local command's name.
        command: String,
    },
}

/// Splits `text` into arguments by the rules of this module.
///
/// `split_arguments("a 'b c' \"d'e\"")` is `["a", "b c", "d'e"]`; an empty or blank text
/// gives no arguments.
pub fn split_arguments(text: &str) -> Result<Vec<String>, ArgumentError> {
    if text.contains('\0') {
        return Err(ArgumentError::NulCharacter);
    }
    let mut args = Vec::new();
    // The argument being built; `None` between arguments (so `""` still yields one).
    let mut current: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let word = current.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(other) => word.push(other),
                        None => return Err(ArgumentError::UnterminatedQuote { quote: c }),
                    }
                }
            }
            c if c.is_whitespace() => {
                if let Some(word) = current.take() {
                    args.push(word);
                }
            }
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(word) = current {
        args.push(word);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        split_arguments(text).unwrap()
    }

    #[test]
    fn whitespace_separates_and_runs_collapse() {
        assert_eq!(split("a  b\tc\n d"), ["a", "b", "c", "d"]);
        assert!(split("").is_empty());
        assert!(split("   ").is_empty());
    }

    #[test]
    fn quotes_group_and_join_adjacent_text() {
        assert_eq!(split(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
        assert_eq!(
            split(r#"--msg="hello world" x"#),
            ["--msg=hello world", "x"]
        );
        assert_eq!(split(r#"a"b"'c'd"#), ["abcd"]);
        assert_eq!(split(r#"'say "hi"' "it's""#), [r#"say "hi""#, "it's"]);
    }

    #[test]
    fn empty_quotes_are_an_empty_argument() {
        assert_eq!(split(r#"a "" ''"#), ["a", "", ""]);
    }

    #[test]
    fn no_escapes_and_no_expansion() {
        assert_eq!(split(r"C:\temp a\ b"), [r"C:\temp", r"a\", "b"]);
        assert_eq!(
            split("$HOME ~ * ;rm `id` $(id) a|b >x"),
            ["$HOME", "~", "*", ";rm", "`id`", "$(id)", "a|b", ">x"]
        );
    }

    #[test]
    fn unterminated_quotes_are_refused() {
        assert_eq!(
            split_arguments(r#"a "b c"#),
            Err(ArgumentError::UnterminatedQuote { quote: '"' })
        );
        assert_eq!(
            split_arguments("it's"),
            Err(ArgumentError::UnterminatedQuote { quote: '\'' })
        );
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(split_arguments("a\0b"), Err(ArgumentError::NulCharacter));
    }

    #[test]
    fn non_ascii_is_kept() {
        assert_eq!(split("héllo 'wörld ✓'"), ["héllo", "wörld ✓"]);
    }
}
