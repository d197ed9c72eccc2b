//! Python's character definitions, shared by every step of the port.
//!
//! st2 runs on Python, so "whitespace", "word character" and case folding must
//! mean what they mean in CPython's `re` and `str`, not what they mean in Rust:
//! the helpers here are used when preparing a command ([`super::command`]), when
//! translating a pattern (`super::python_regex`) and by the alias index's
//! prefilter, and the constants spell Python's `\s` / `\w` classes in
//! fancy-regex syntax for the emitted patterns.

/// Python's `str.isspace()` (what `\s` matches in a str pattern): Unicode
/// White_Space plus the ASCII information separators U+001C..U+001F.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `str.strip()`-style trim with Python's whitespace definition.
pub(crate) fn py_trim(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Case folding used by the prefilter of case-insensitive formats: ASCII letters
/// are lower-cased, and the only two non-ASCII characters whose simple case folding
/// is an ASCII letter (U+017F LONG S, U+212A KELVIN SIGN) map to it. Comparing folded
/// command text with a folded ASCII literal is therefore a safe necessary condition.
pub(crate) fn fold_char(c: char) -> char {
    match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    }
}

pub(super) fn fold_char_if(c: char, fold: bool) -> char {
    if fold {
        fold_char(c)
    } else {
        c
    }
}

/// Approximation of Python's `str.isidentifier()` (group names).
pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

// Python character definitions, written in fancy-regex syntax.
pub(super) const PY_SPACE: &str = r"[\s\x{1C}-\x{1F}]";
pub(super) const PY_NOT_SPACE: &str = r"[^\s\x{1C}-\x{1F}]";
pub(super) const PY_WORD: &str = r"[\p{L}\p{N}_]";
pub(super) const PY_NOT_WORD: &str = r"[^\p{L}\p{N}_]";
pub(super) const ASCII_SPACE: &str = r"[\t\n\x{0B}\x{0C}\r ]";
pub(super) const ASCII_NOT_SPACE: &str = r"[^\t\n\x{0B}\x{0C}\r ]";
pub(super) const ASCII_WORD: &str = r"[0-9A-Za-z_]";
pub(super) const ASCII_NOT_WORD: &str = r"[^0-9A-Za-z_]";
