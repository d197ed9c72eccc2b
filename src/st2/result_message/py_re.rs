//! Python's `re` module on `fancy-regex`, for st2's regex filters
//! (`st2common/expressions/functions/regex.py`, in `filters/regex.rs`).
//!
//! Patterns are translated from Python's syntax (`$`, `\Z`, `{,n}`, octal escapes,
//! inline flags, comment groups); matches are walked the way `re.finditer` and
//! `re.sub` walk them; `re.sub` replacement templates (`\1`, `\g<name>`, escapes)
//! are parsed with Python's rules. Every search has a backtracking budget.

use std::fmt::Write as _;

use minijinja::{Error, ErrorKind, State};

/// Backtracking budget of one regex search.
const REGEX_BACKTRACK_LIMIT: usize = 1_000_000;

/// Python's `re.error` with the message `e`.
pub(super) fn regex_error(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("re.error: {e}"))
}

/// Python's `$` outside multiline mode: end of text or before a final newline.
const PY_DOLLAR: &str = r"(?:\z|(?=\n\z))";

/// Whether a `{` at `chars[i]` starts a Python repetition (`{m}`, `{m,}`, `{,n}`,
/// `{m,n}`); returns its text in Rust syntax and the index after `}`.
fn py_quantifier(chars: &[char], i: usize) -> Option<(String, usize)> {
    let mut j = i + 1;
    let mut lo = String::new();
    while j < chars.len() && chars[j].is_ascii_digit() {
        lo.push(chars[j]);
        j += 1;
    }
    let mut hi: Option<String> = None;
    if j < chars.len() && chars[j] == ',' {
        j += 1;
        let mut h = String::new();
        while j < chars.len() && chars[j].is_ascii_digit() {
            h.push(chars[j]);
            j += 1;
        }
        hi = Some(h);
    }
    if j >= chars.len() || chars[j] != '}' {
        return None;
    }
    match (&lo, &hi) {
        (l, None) if l.is_empty() => None,
        (l, None) => Some((format!("{{{l}}}"), j + 1)),
        (l, Some(h)) if l.is_empty() && h.is_empty() => None,
        (l, Some(h)) => {
            let l = if l.is_empty() { "0" } else { l.as_str() };
            Some((format!("{{{l},{h}}}"), j + 1))
        }
    }
}

/// Rewrites a Python `re` pattern into fancy-regex syntax.
fn translate_py_regex(pattern: &str) -> Result<String, Error> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut multiline = false;
    let mut i = 0;
    // Global inline flags come first in Python 3.11+.
    if chars.len() > 2 && chars[0] == '(' && chars[1] == '?' {
        let mut j = 2;
        let mut flags = String::new();
        while j < chars.len() && "aiLmsux".contains(chars[j]) {
            flags.push(chars[j]);
            j += 1;
        }
        if j < chars.len() && chars[j] == ')' && !flags.is_empty() {
            if flags.contains('L') {
                return Err(regex_error(
                    "bad inline flag: cannot use 'locale' flag with a str pattern",
                ));
            }
            multiline = flags.contains('m');
            let kept: String = flags.chars().filter(|c| "imsx".contains(*c)).collect();
            if !kept.is_empty() {
                let _ = write!(out, "(?{kept})");
            }
            i = j + 1;
        }
    }
    let mut in_class = false;
    let mut class_start = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&n) = chars.get(i + 1) else {
                return Err(regex_error("bad escape (end of pattern)"));
            };
            i += 2;
            match n {
                'Z' if !in_class => out.push_str(r"\z"),
                'A' | 'b' | 'B' if !in_class => {
                    out.push('\\');
                    out.push(n);
                }
                'b' => out.push_str(r"\x08"),
                'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'n' | 'r' | 't' | 'f' | 'v' | 'a' => {
                    out.push('\\');
                    out.push(n);
                }
                'x' | 'u' | 'U' => {
                    let len = match n {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars.iter().skip(i).take(len).collect();
                    if hex.chars().count() != len || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        return Err(regex_error(format!("incomplete escape \\{n}{hex}")));
                    }
                    let code = u32::from_str_radix(&hex, 16).map_err(regex_error)?;
                    if char::from_u32(code).is_none() {
                        return Err(regex_error(format!("bad escape \\{n}{hex}")));
                    }
                    let _ = write!(out, "\\x{{{code:x}}}");
                    i += len;
                }
                '0'..='9' => {
                    // Octal escape, or a group reference outside classes.
                    let mut digits = String::from(n);
                    while digits.len() < 3 && i < chars.len() && chars[i].is_ascii_digit() {
                        digits.push(chars[i]);
                        i += 1;
                    }
                    let octal = n == '0'
                        || in_class
                        || (digits.len() == 3 && digits.chars().all(|d| ('0'..='7').contains(&d)));
                    if octal {
                        // Only octal digits belong to the escape.
                        let oct: String = digits
                            .chars()
                            .take_while(|d| ('0'..='7').contains(d))
                            .take(3)
                            .collect();
                        let consumed = oct.len().max(1);
                        i -= digits.len() - consumed;
                        let code = u32::from_str_radix(if oct.is_empty() { "0" } else { &oct }, 8)
                            .map_err(regex_error)?;
                        if code > 0o377 {
                            return Err(regex_error(format!(
                                "octal escape value \\{oct} outside of range 0-0o377"
                            )));
                        }
                        let _ = write!(out, "\\x{{{code:x}}}");
                    } else {
                        let group: String = digits.chars().take(2).collect();
                        i -= digits.len() - group.len();
                        let _ = write!(out, "\\{group}");
                    }
                }
                c if c.is_ascii_alphabetic() => {
                    return Err(regex_error(format!("bad escape \\{c}")));
                }
                '<' | '>' | '&' | '~' | '\'' | '"' | '`' | '%' | '@' | '!' | ',' | ';' | ':'
                | '=' | '_' | '/' => out.push(n),
                c if c.is_ascii() => {
                    out.push('\\');
                    out.push(c);
                }
                c => {
                    let _ = write!(out, "\\x{{{:x}}}", c as u32);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            match c {
                ']' if class_start => out.push_str(r"\]"),
                ']' => {
                    in_class = false;
                    out.push(']');
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '^' if class_start && out.ends_with('[') => {
                    out.push('^');
                    i += 1;
                    continue;
                }
                _ => out.push(c),
            }
            class_start = false;
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                class_start = true;
                out.push('[');
            }
            '$' if !multiline => out.push_str(PY_DOLLAR),
            '{' => match py_quantifier(&chars, i) {
                Some((q, next)) => {
                    out.push_str(&q);
                    i = next;
                    continue;
                }
                None => out.push_str(r"\{"),
            },
            '}' => out.push_str(r"\}"),
            '(' if chars.get(i + 1) == Some(&'?') && chars.get(i + 2) == Some(&'#') => {
                // Comment group: dropped.
                let mut j = i + 3;
                while j < chars.len() && chars[j] != ')' {
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(regex_error("missing ), unterminated comment"));
                }
                i = j + 1;
                continue;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                // Scoped flags `(?i:...)` / `(?-i:...)`: drop Python-only letters.
                let mut j = i + 2;
                let mut flags = String::new();
                while j < chars.len() && "aiLmsux-".contains(chars[j]) {
                    flags.push(chars[j]);
                    j += 1;
                }
                if !flags.is_empty() && j < chars.len() && chars[j] == ':' {
                    let kept: String = flags.chars().filter(|c| "imsx-".contains(*c)).collect();
                    let kept = kept.trim_end_matches('-');
                    out.push_str("(?");
                    out.push_str(kept);
                    out.push(':');
                    i = j + 1;
                    continue;
                }
                out.push('(');
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// Compiles a Python pattern (with `re.I` when `ignorecase`).
pub(super) fn py_regex(
    pattern: &str,
    ignorecase: bool,
    not_empty: bool,
) -> Result<fancy_regex::Regex, Error> {
    let translated = translate_py_regex(pattern)?;
    fancy_regex::RegexBuilder::new(&translated)
        .case_insensitive(ignorecase)
        .backtrack_limit(REGEX_BACKTRACK_LIMIT)
        .find_not_empty(not_empty)
        .build()
        .map_err(regex_error)
}

/// One match: its groups' spans (`None` for groups that did not take part).
pub(super) type Spans = Vec<Option<(usize, usize)>>;

/// The spans of every group of a match.
fn spans_of(caps: &fancy_regex::Captures<'_, str>) -> Spans {
    (0..caps.len())
        .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
        .collect()
}

/// All matches the way Python's `finditer`/`sub` walk the text: after an empty
/// match, the next match may not be empty at the same position.
pub(super) fn py_matches(
    state: &State,
    pattern: &str,
    ignorecase: bool,
    text: &str,
) -> Result<(fancy_regex::Regex, Vec<Spans>), Error> {
    let re = py_regex(pattern, ignorecase, false)?;
    let mut not_empty: Option<Option<fancy_regex::Regex>> = None;
    let mut found = Vec::new();
    let mut pos = 0usize;
    let mut must_advance = false;
    while pos <= text.len() {
        // Each match is kept until the filter is done: charge for it.
        state.consume_fuel(2)?;
        let mut caps = re.captures_from_pos(text, pos).map_err(regex_error)?;
        if must_advance {
            if let Some(c) = &caps {
                if c.get(0).is_some_and(|m| m.start() == pos && m.end() == pos) {
                    // Python retries at the same spot wanting a non-empty match,
                    // then moves on one character.
                    // A pattern that only ever matches empty has no non-empty
                    // variant (fancy-regex refuses to build it).
                    let ne_regex =
                        not_empty.get_or_insert_with(|| py_regex(pattern, ignorecase, true).ok());
                    let ne = ne_regex
                        .as_ref()
                        .and_then(|r| r.captures_from_pos(text, pos).ok().flatten())
                        .filter(|c| c.get(0).is_some_and(|m| m.start() == pos));
                    caps = match ne {
                        Some(c) => Some(c),
                        None => {
                            let Some(ch) = text[pos..].chars().next() else {
                                break;
                            };
                            re.captures_from_pos(text, pos + ch.len_utf8())
                                .map_err(regex_error)?
                        }
                    };
                }
            }
        }
        let Some(caps) = caps else { break };
        let spans = spans_of(&caps);
        let Some(Some((start, end))) = spans.first().copied() else {
            break;
        };
        must_advance = start == end;
        pos = end;
        found.push(spans);
    }
    Ok((re, found))
}

/// A parsed Python replacement template piece.
pub(super) enum ReplPiece {
    /// Literal text, escapes already resolved.
    Text(String),
    /// The text of a group (empty when the group did not take part).
    Group(usize),
}

/// Parses a Python `re.sub` replacement (`\1`, `\g<name>`, `\g<1>`, `\n`, ...).
pub(super) fn parse_replacement(
    repl: &str,
    re: &fancy_regex::Regex,
) -> Result<Vec<ReplPiece>, Error> {
    let groups = re.captures_len().saturating_sub(1);
    let check = |n: usize| -> Result<usize, Error> {
        if n > groups {
            Err(regex_error(format!("invalid group reference {n}")))
        } else {
            Ok(n)
        }
    };
    let chars: Vec<char> = repl.chars().collect();
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' {
            lit.push(c);
            i += 1;
            continue;
        }
        let Some(&n) = chars.get(i + 1) else {
            return Err(regex_error("bad escape (end of pattern)"));
        };
        i += 2;
        let group = match n {
            'g' => {
                if chars.get(i) != Some(&'<') {
                    return Err(regex_error("missing <"));
                }
                let mut j = i + 1;
                let mut name = String::new();
                while j < chars.len() && chars[j] != '>' {
                    name.push(chars[j]);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(regex_error("missing >, unterminated name"));
                }
                i = j + 1;
                if name.is_empty() {
                    return Err(regex_error("missing group name"));
                }
                if name.chars().all(|d| d.is_ascii_digit()) {
                    Some(check(name.parse().map_err(regex_error)?)?)
                } else {
                    let idx = re
                        .capture_names()
                        .position(|n| n == Some(name.as_str()))
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::InvalidOperation,
                                format!("IndexError: unknown group name '{name}'"),
                            )
                        })?;
                    Some(idx)
                }
            }
            '0' => {
                let mut oct = String::from("0");
                while oct.len() < 3 && i < chars.len() && ('0'..='7').contains(&chars[i]) {
                    oct.push(chars[i]);
                    i += 1;
                }
                let code = u32::from_str_radix(&oct, 8).map_err(regex_error)? & 0xff;
                lit.push(char::from_u32(code).unwrap_or('\0'));
                None
            }
            '1'..='9' => {
                let mut digits = String::from(n);
                if i < chars.len() && chars[i].is_ascii_digit() {
                    digits.push(chars[i]);
                    i += 1;
                    let all_octal = digits.chars().all(|d| ('0'..='7').contains(&d));
                    if all_octal && i < chars.len() && ('0'..='7').contains(&chars[i]) {
                        digits.push(chars[i]);
                        i += 1;
                        let code = u32::from_str_radix(&digits, 8).map_err(regex_error)?;
                        if code > 0o377 {
                            return Err(regex_error(format!(
                                "octal escape value \\{digits} outside of range 0-0o377"
                            )));
                        }
                        lit.push(char::from_u32(code).unwrap_or('\0'));
                        continue;
                    }
                }
                Some(check(digits.parse().map_err(regex_error)?)?)
            }
            'a' => {
                lit.push('\u{7}');
                None
            }
            'b' => {
                lit.push('\u{8}');
                None
            }
            'f' => {
                lit.push('\u{c}');
                None
            }
            'n' => {
                lit.push('\n');
                None
            }
            'r' => {
                lit.push('\r');
                None
            }
            't' => {
                lit.push('\t');
                None
            }
            'v' => {
                lit.push('\u{b}');
                None
            }
            '\\' => {
                lit.push('\\');
                None
            }
            c if c.is_ascii_alphabetic() => {
                return Err(regex_error(format!("bad escape \\{c}")));
            }
            c => {
                lit.push('\\');
                lit.push(c);
                None
            }
        };
        if let Some(g) = group {
            if !lit.is_empty() {
                pieces.push(ReplPiece::Text(std::mem::take(&mut lit)));
            }
            pieces.push(ReplPiece::Group(g));
        }
    }
    if !lit.is_empty() {
        pieces.push(ReplPiece::Text(lit));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_translation() {
        assert_eq!(
            translate_py_regex(r"a\Zb$").unwrap(),
            r"a\zb(?:\z|(?=\n\z))"
        );
        assert_eq!(translate_py_regex(r"(?m)^a$").unwrap(), r"(?m)^a$");
        assert_eq!(translate_py_regex(r"(?au)x").unwrap(), "x");
        assert_eq!(
            translate_py_regex(r"a{,3}b{2}c{x}").unwrap(),
            r"a{0,3}b{2}c\{x\}"
        );
        assert_eq!(translate_py_regex(r"[]a[&~]").unwrap(), r"[\]a\[\&\~]");
        assert_eq!(
            translate_py_regex(r"\101\0\1\<").unwrap(),
            r"\x{41}\x{0}\1<"
        );
        assert_eq!(translate_py_regex(r"a(?#note)b(?i:c)").unwrap(), "ab(?i:c)");
        assert!(translate_py_regex(r"\q").is_err());
        assert!(translate_py_regex("\\").is_err());
        assert!(translate_py_regex(r"(?L)x").is_err());
        assert!(translate_py_regex(r"\777").is_err());
    }
}
