//! Python regular expressions (st2's alias formats are raw Python `re` patterns) run
//! on `fancy-regex`, a backtracking engine with the same leftmost-first priority order.
//!
//! This module does two things with a Python pattern, in one walk over it:
//!
//! * it builds the part of `sre_parse`'s token tree that st2's `search_regex_tokens`
//!   looks at (`st2common/models/utils/action_alias_utils.py`): anchors (`AT`),
//!   groups (`SUBPATTERN`) and alternations (`BRANCH`); everything else is opaque;
//! * it translates the pattern to `fancy-regex` syntax, only where the two dialects
//!   differ: a `{` that does not start a valid `{m,n}` quantifier is a literal in Python
//!   (`\{` here), `{,n}` means `{0,n}`, `$` (not multi-line) matches at the end or before
//!   a final newline, `\Z` is the absolute end (`\z`), `\s`/`\S` include `\x1c`–`\x1f`
//!   (Python's `str.isspace`), `\w`/`\W`/`\b`/`\B` use Python's word characters
//!   (`str.isalnum` and `_`: no combining marks), `\uXXXX`/`\UXXXXXXXX`/octal escapes
//!   become `\x{…}`, an escaped punctuation character is that character (`\<` is not a
//!   word boundary), a `[` or `&&`/`~~` inside a class is literal, and global inline flags
//!   (`(?i)`, allowed only at the very start, as in Python 3.11) apply to the whole
//!   pattern.
//!
//! It also raises what `re.compile` raises where st2 depends on it: a group name that
//! is not a Python identifier (`{{a.b}}` becomes `(?P<a.b>…)`), a name defined twice, a
//! bad escape, unbalanced parentheses, a repeat of nothing. Not modelled: `(?x)` met
//! after the start, `\N{…}`, the `a` and `L` flags, conditional groups' details.

use std::fmt::Write as _;

/// What `re.compile` would raise (`re.error`); st2 turns it into an HTTP 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PyReError(pub String);

impl std::fmt::Display for PyReError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tokens of `sre_parse.parse` that st2's anchor search distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// `(AT, AT_BEGINNING)`: `^`.
    AtBeginning,
    /// `(AT, AT_BEGINNING_STRING)`: `\A`.
    AtBeginningString,
    /// `(AT, AT_END)`: `$`.
    AtEnd,
    /// `(AT, AT_END_STRING)`: `\Z`.
    AtEndString,
    /// `(SUBPATTERN, …)`: any group that is not a lookaround, repeated or atomic.
    Subpattern(Vec<Token>),
    /// `(BRANCH, (None, [alternatives]))`.
    Branch(Vec<Vec<Token>>),
    /// Anything else (literals, classes, repeats, lookarounds, other anchors).
    Other,
}

/// A parsed Python pattern: its tokens and its `fancy-regex` translation.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub tokens: Vec<Token>,
    pub rust: String,
}

/// `Python \s` as a class item: Unicode whitespace plus the four separators.
const PY_SPACE_ITEMS: &str = r"\s\x1c-\x1f";

/// Python's `\w` as a class item: `_` and what `str.isalnum()` accepts, i.e. letters and
/// numbers (`Modules/_sre/sre.c`, `SRE_UNI_IS_WORD`: `Py_UNICODE_ISALNUM(ch) || ch ==
/// '_'`), as st2 compiles formats with Python's `re` (`re.compile(reg, re.DOTALL)`,
/// `st2common/models/utils/action_alias_utils.py` line 158 in v3.9.0). Rust's `\w` also
/// counts combining marks (`\p{M}`), so `\w+` took `e\u{301}` whole where Python stops
/// before the accent, and `\b` sat elsewhere.
const PY_WORD_ITEMS: &str = r"\p{L}\p{N}_";

/// Parse a Python pattern compiled with `flags`, in `fancy-regex` letters (`"s"` for
/// `re.DOTALL`, `"i"` for `re.IGNORECASE`, `""` for none).
pub(crate) fn parse(pattern: &str, flags: &str) -> Result<Parsed, PyReError> {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
        out: String::with_capacity(pattern.len() + 16),
        groups: 0,
        names: Vec::new(),
        flags: String::new(),
        verbose: false,
        multiline: false,
    };
    // Global flags found anywhere apply to the whole pattern: find them first.
    p.prescan_global_flags();
    let tokens = p.parse_sub(0)?;
    if p.pos < p.chars.len() {
        return Err(PyReError(format!(
            "unbalanced parenthesis at position {}",
            p.pos
        )));
    }
    let mut flags = flags.to_string();
    for c in p.flags.chars() {
        if !flags.contains(c) {
            flags.push(c);
        }
    }
    let rust = if flags.is_empty() {
        p.out
    } else {
        format!("(?{flags}){}", p.out)
    };
    Ok(Parsed { tokens, rust })
}

/// Compile a Python pattern with `flags` (see [`parse`]) for `fancy-regex`.
///
/// Like Python's `re.compile`, which keeps the last `re._MAXCACHE` (512) patterns it
/// compiled (`Lib/re/__init__.py`, `_compile`), compiled patterns are cached: st2 compiles an
/// alias's format on every `match` and `aliasexecution`, and Python does not pay for it.
pub(crate) fn compile(pattern: &str, flags: &str) -> Result<fancy_regex::Regex, PyReError> {
    /// Python's `re._MAXCACHE`.
    const MAX_CACHE: usize = 512;
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<(String, String), fancy_regex::Regex>> =
            Default::default();
    }
    let key = (pattern.to_owned(), flags.to_owned());
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(hit);
    }
    let parsed = parse(pattern, flags)?;
    let regex = fancy_regex::Regex::new(&parsed.rust).map_err(|e| PyReError(e.to_string()))?;
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= MAX_CACHE {
            // Python drops the oldest entry; any one will do for a cache.
            if let Some(old) = cache.keys().next().cloned() {
                cache.remove(&old);
            }
        }
        cache.insert(key, regex.clone());
    });
    Ok(regex)
}

/// st2's `search_regex_tokens`: whether any of `needles` is at the top level or in a
/// group, recursively; of an alternation only the **second** branch is searched.
pub(crate) fn search_regex_tokens(needles: &[Token], tokens: &[Token]) -> bool {
    tokens.iter().any(|t| match t {
        Token::Subpattern(inner) => search_regex_tokens(needles, inner),
        Token::Branch(alternatives) => alternatives
            .get(1)
            .is_some_and(|alt| search_regex_tokens(needles, alt)),
        other => needles.contains(other),
    })
}

/// Python's `str.isidentifier()` (close enough: letters, digits, `_`).
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Characters that need a backslash to be literal in `fancy-regex` outside a class.
fn rust_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    out: String,
    groups: usize,
    names: Vec<String>,
    /// Global inline flags, in `fancy-regex` letters.
    flags: String,
    verbose: bool,
    multiline: bool,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn err(&self, msg: &str) -> PyReError {
        PyReError(format!("{msg} at position {}", self.pos))
    }

    /// Find global flag groups (`(?imsx)`, not followed by `:`), outside classes.
    fn prescan_global_flags(&mut self) {
        let mut i = 0;
        let mut in_class = false;
        let c = &self.chars;
        while i < c.len() {
            match c[i] {
                '\\' => i += 1,
                '[' if !in_class => {
                    in_class = true;
                    if c.get(i + 1) == Some(&'^') {
                        i += 1;
                    }
                    if c.get(i + 1) == Some(&']') {
                        i += 1;
                    }
                }
                ']' if in_class => in_class = false,
                '(' if !in_class && c.get(i + 1) == Some(&'?') => {
                    let mut j = i + 2;
                    let mut letters = String::new();
                    while j < c.len() && "aiLmsux".contains(c[j]) {
                        letters.push(c[j]);
                        j += 1;
                    }
                    if !letters.is_empty() && c.get(j) == Some(&')') {
                        for l in letters.chars() {
                            match l {
                                'x' => self.verbose = true,
                                'm' => self.multiline = true,
                                _ => {}
                            }
                            if "imsx".contains(l) && !self.flags.contains(l) {
                                self.flags.push(l);
                            }
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// `_parse_sub`: alternatives up to `)` or the end.
    fn parse_sub(&mut self, depth: usize) -> Result<Vec<Token>, PyReError> {
        let mut alternatives = Vec::new();
        loop {
            alternatives.push(self.parse_seq(depth)?);
            if self.peek() == Some('|') {
                self.pos += 1;
                self.out.push('|');
                continue;
            }
            break;
        }
        if alternatives.len() == 1 {
            return Ok(alternatives.pop().unwrap_or_default());
        }
        Ok(vec![Token::Branch(alternatives)])
    }

    /// One alternative: items and their repeats.
    fn parse_seq(&mut self, depth: usize) -> Result<Vec<Token>, PyReError> {
        let mut items: Vec<Token> = Vec::new();
        // Whether the last item can be repeated (and was not repeated yet).
        let mut last_repeatable = false;
        let mut last_repeated = false;
        while let Some(c) = self.peek() {
            if self.verbose {
                if c.is_whitespace() {
                    self.pos += 1;
                    continue;
                }
                if c == '#' {
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '\n' {
                            break;
                        }
                    }
                    continue;
                }
            }
            match c {
                '|' => break,
                ')' => {
                    if depth == 0 {
                        return Err(self.err("unbalanced parenthesis"));
                    }
                    break;
                }
                '*' | '+' | '?' => {
                    self.repeat(c, &mut items, last_repeatable, last_repeated)?;
                    last_repeated = true;
                    continue;
                }
                '{' => {
                    if let Some(q) = self.quantifier() {
                        self.check_repeat(last_repeatable, last_repeated)?;
                        self.pos += q.0;
                        self.out.push_str(&q.1);
                        self.repeat_suffix();
                        if let Some(last) = items.last_mut() {
                            *last = Token::Other;
                        }
                        last_repeated = true;
                        continue;
                    }
                    self.pos += 1;
                    self.out.push_str("\\{");
                    items.push(Token::Other);
                }
                '^' => {
                    self.pos += 1;
                    self.out.push('^');
                    items.push(Token::AtBeginning);
                    last_repeatable = false;
                    last_repeated = false;
                    continue;
                }
                '$' => {
                    self.pos += 1;
                    self.out
                        .push_str(if self.multiline { "$" } else { r"(?=\n?\z)" });
                    items.push(Token::AtEnd);
                    last_repeatable = false;
                    last_repeated = false;
                    continue;
                }
                '.' => {
                    self.pos += 1;
                    self.out.push('.');
                    items.push(Token::Other);
                }
                '[' => {
                    self.pos += 1;
                    self.class()?;
                    items.push(Token::Other);
                }
                '(' => {
                    self.pos += 1;
                    let at_start = depth == 0 && items.is_empty();
                    match self.group(depth, at_start)? {
                        Some(t) => {
                            items.push(t);
                            last_repeatable = true;
                            last_repeated = false;
                        }
                        None => {
                            // A comment or global flags: nothing to repeat here.
                            last_repeatable = false;
                            last_repeated = false;
                        }
                    }
                    continue;
                }
                '\\' => {
                    self.pos += 1;
                    let (t, repeatable) = self.escape()?;
                    items.push(t);
                    last_repeatable = repeatable;
                    last_repeated = false;
                    continue;
                }
                other => {
                    self.pos += 1;
                    if self.verbose && other.is_whitespace() {
                        continue;
                    }
                    if rust_meta(other) {
                        self.out.push('\\');
                    }
                    self.out.push(other);
                    items.push(Token::Other);
                }
            }
            last_repeatable = true;
            last_repeated = false;
        }
        Ok(items)
    }

    fn check_repeat(&self, repeatable: bool, repeated: bool) -> Result<(), PyReError> {
        if repeated {
            return Err(self.err("multiple repeat"));
        }
        if !repeatable {
            return Err(self.err("nothing to repeat"));
        }
        Ok(())
    }

    fn repeat(
        &mut self,
        c: char,
        items: &mut [Token],
        repeatable: bool,
        repeated: bool,
    ) -> Result<(), PyReError> {
        self.check_repeat(repeatable, repeated)?;
        self.pos += 1;
        self.out.push(c);
        self.repeat_suffix();
        if let Some(last) = items.last_mut() {
            *last = Token::Other;
        }
        Ok(())
    }

    /// A lazy (`?`) or possessive (`+`) mark after a repeat.
    fn repeat_suffix(&mut self) {
        if let Some(c @ ('?' | '+')) = self.peek() {
            self.pos += 1;
            self.out.push(c);
        }
    }

    /// A valid Python `{m,n}` quantifier at the current `{`: its length and its
    /// `fancy-regex` text; `None` when the `{` is a literal.
    fn quantifier(&self) -> Option<(usize, String)> {
        let mut i = self.pos + 1;
        if self.chars.get(i) == Some(&'}') {
            return None;
        }
        let mut lo = String::new();
        while let Some(c) = self.chars.get(i).filter(|c| c.is_ascii_digit()) {
            lo.push(*c);
            i += 1;
        }
        let hi = if self.chars.get(i) == Some(&',') {
            i += 1;
            let mut hi = String::new();
            while let Some(c) = self.chars.get(i).filter(|c| c.is_ascii_digit()) {
                hi.push(*c);
                i += 1;
            }
            Some(hi)
        } else {
            None
        };
        if self.chars.get(i) != Some(&'}') {
            return None;
        }
        let lo = if lo.is_empty() { "0".to_string() } else { lo };
        let text = match hi {
            None => format!("{{{lo}}}"),
            Some(h) => format!("{{{lo},{h}}}"),
        };
        Some((i + 1 - self.pos, text))
    }

    /// After `(`: a group, a lookaround, a comment or flags. `None` when nothing was
    /// produced (comments, global flags).
    fn group(&mut self, depth: usize, at_start: bool) -> Result<Option<Token>, PyReError> {
        if self.peek() != Some('?') {
            self.groups += 1;
            self.out.push('(');
            let inner = self.parse_sub(depth + 1)?;
            self.close()?;
            return Ok(Some(Token::Subpattern(inner)));
        }
        self.pos += 1;
        match self.peek() {
            Some(':') => {
                self.pos += 1;
                self.out.push_str("(?:");
                let inner = self.parse_sub(depth + 1)?;
                self.close()?;
                Ok(Some(Token::Subpattern(inner)))
            }
            Some('P') if self.peek_at(1) == Some('<') => {
                self.pos += 2;
                let name = self.read_until('>', "missing >, unterminated name")?;
                if !is_identifier(&name) {
                    return Err(self.err(&format!("bad character in group name '{name}'")));
                }
                if self.names.contains(&name) {
                    return Err(self.err(&format!("redefinition of group name '{name}'")));
                }
                self.names.push(name.clone());
                self.groups += 1;
                let _ = write!(self.out, "(?P<{name}>");
                let inner = self.parse_sub(depth + 1)?;
                self.close()?;
                Ok(Some(Token::Subpattern(inner)))
            }
            Some('P') if self.peek_at(1) == Some('=') => {
                self.pos += 2;
                let name = self.read_until(')', "missing ), unterminated name")?;
                if !self.names.contains(&name) {
                    return Err(self.err(&format!("unknown group name '{name}'")));
                }
                let _ = write!(self.out, "(?P={name})");
                Ok(Some(Token::Other))
            }
            Some(c @ ('=' | '!')) => {
                self.pos += 1;
                let _ = write!(self.out, "(?{c}");
                self.parse_sub(depth + 1)?;
                self.close()?;
                Ok(Some(Token::Other))
            }
            Some('<') if matches!(self.peek_at(1), Some('=' | '!')) => {
                let c = self.peek_at(1).unwrap_or('=');
                self.pos += 2;
                let _ = write!(self.out, "(?<{c}");
                self.parse_sub(depth + 1)?;
                self.close()?;
                Ok(Some(Token::Other))
            }
            Some('>') => {
                self.pos += 1;
                self.out.push_str("(?>");
                self.parse_sub(depth + 1)?;
                self.close()?;
                Ok(Some(Token::Other))
            }
            Some('#') => {
                self.read_until(')', "missing ), unterminated comment")?;
                Ok(None)
            }
            Some('(') => {
                self.pos += 1;
                let cond = self.read_until(')', "missing ), unterminated name")?;
                let _ = write!(self.out, "(?({cond})");
                self.parse_sub(depth + 1)?;
                self.close()?;
                Ok(Some(Token::Other))
            }
            Some(c) if "aiLmsux-".contains(c) => {
                let mut on = String::new();
                while let Some(c) = self.peek().filter(|c| "aiLmsux".contains(*c)) {
                    on.push(c);
                    self.pos += 1;
                }
                let mut off = String::new();
                if self.peek() == Some('-') {
                    self.pos += 1;
                    while let Some(c) = self.peek().filter(|c| "imsx".contains(*c)) {
                        off.push(c);
                        self.pos += 1;
                    }
                    if off.is_empty() {
                        return Err(self.err("missing flag"));
                    }
                }
                match self.peek() {
                    Some(')') if off.is_empty() => {
                        // Global flags (collected by the prescan): Python 3.11 accepts them
                        // only at the very start of the pattern.
                        if !at_start {
                            return Err(self.err("global flags not at the start of the expression"));
                        }
                        self.pos += 1;
                        Ok(None)
                    }
                    Some(':') => {
                        self.pos += 1;
                        let on: String = on.chars().filter(|c| "imsx".contains(*c)).collect();
                        if on.is_empty() && off.is_empty() {
                            self.out.push_str("(?:");
                        } else if off.is_empty() {
                            let _ = write!(self.out, "(?{on}:");
                        } else {
                            let _ = write!(self.out, "(?{on}-{off}:");
                        }
                        let inner = self.parse_sub(depth + 1)?;
                        self.close()?;
                        Ok(Some(Token::Subpattern(inner)))
                    }
                    _ => Err(self.err("missing -, : or )")),
                }
            }
            Some(c) => Err(self.err(&format!("unknown extension ?{c}"))),
            None => Err(self.err("unexpected end of pattern")),
        }
    }

    fn close(&mut self) -> Result<(), PyReError> {
        if self.peek() != Some(')') {
            return Err(self.err("missing ), unterminated subpattern"));
        }
        self.pos += 1;
        self.out.push(')');
        Ok(())
    }

    fn read_until(&mut self, end: char, msg: &str) -> Result<String, PyReError> {
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err(msg)),
                Some(c) if c == end => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// Exactly `n` hex digits.
    fn hex(&mut self, n: usize, what: char) -> Result<u32, PyReError> {
        let mut s = String::new();
        for _ in 0..n {
            match self.peek().filter(char::is_ascii_hexdigit) {
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
                None => return Err(self.err(&format!("incomplete escape \\{what}{s}"))),
            }
        }
        u32::from_str_radix(&s, 16).map_err(|_| self.err("bad escape"))
    }

    /// Octal digits after a `\0` or a 3-digit octal escape.
    fn octal(&mut self, first: char, max_more: usize) -> u32 {
        let mut v = first.to_digit(8).unwrap_or(0);
        for _ in 0..max_more {
            match self.peek().and_then(|c| c.to_digit(8)) {
                Some(d) => {
                    v = v * 8 + d;
                    self.pos += 1;
                }
                None => break,
            }
        }
        v
    }

    /// An escape outside a class (after the backslash), and whether it can be
    /// repeated (anchors cannot).
    fn escape(&mut self) -> Result<(Token, bool), PyReError> {
        let Some(c) = self.peek() else {
            return Err(self.err("bad escape (end of pattern)"));
        };
        self.pos += 1;
        let token = match c {
            'A' => {
                self.out.push_str("\\A");
                return Ok((Token::AtBeginningString, false));
            }
            'Z' => {
                self.out.push_str("\\z");
                return Ok((Token::AtEndString, false));
            }
            // Python's boundaries, between its word characters and the rest.
            'b' => {
                let w = PY_WORD_ITEMS;
                let _ = write!(self.out, "(?:(?<=[{w}])(?![{w}])|(?<![{w}])(?=[{w}]))");
                return Ok((Token::Other, false));
            }
            'B' => {
                let w = PY_WORD_ITEMS;
                let _ = write!(self.out, "(?:(?<=[{w}])(?=[{w}])|(?<![{w}])(?![{w}]))");
                return Ok((Token::Other, false));
            }
            'w' => {
                let _ = write!(self.out, "[{PY_WORD_ITEMS}]");
                Token::Other
            }
            'W' => {
                let _ = write!(self.out, "[^{PY_WORD_ITEMS}]");
                Token::Other
            }
            'd' | 'D' | 'n' | 't' | 'r' | 'f' | 'v' | 'a' => {
                self.out.push('\\');
                self.out.push(c);
                Token::Other
            }
            's' => {
                let _ = write!(self.out, "[{PY_SPACE_ITEMS}]");
                Token::Other
            }
            'S' => {
                let _ = write!(self.out, "[^{PY_SPACE_ITEMS}]");
                Token::Other
            }
            'x' => {
                let v = self.hex(2, 'x')?;
                let _ = write!(self.out, "\\x{{{v:X}}}");
                Token::Other
            }
            'u' => {
                let v = self.hex(4, 'u')?;
                let _ = write!(self.out, "\\x{{{v:X}}}");
                Token::Other
            }
            'U' => {
                let v = self.hex(8, 'U')?;
                let _ = write!(self.out, "\\x{{{v:X}}}");
                Token::Other
            }
            '0' => {
                let v = self.octal('0', 2);
                let _ = write!(self.out, "\\x{{{v:X}}}");
                Token::Other
            }
            '1'..='9' => {
                // Three octal digits are an octal escape; otherwise a group reference.
                let d1 = self.peek();
                let d2 = self.peek_at(1);
                if c <= '3'
                    && d1.is_some_and(|d| d.is_digit(8))
                    && d2.is_some_and(|d| d.is_digit(8))
                {
                    let v = self.octal(c, 2);
                    let _ = write!(self.out, "\\x{{{v:X}}}");
                } else {
                    let mut n = String::from(c);
                    if let Some(d) = d1.filter(char::is_ascii_digit) {
                        n.push(d);
                        self.pos += 1;
                    }
                    let group: usize = n.parse().unwrap_or(usize::MAX);
                    if group > self.groups {
                        return Err(self.err(&format!("invalid group reference {n}")));
                    }
                    let _ = write!(self.out, "\\{n}");
                }
                Token::Other
            }
            c if c.is_ascii_alphabetic() => {
                return Err(self.err(&format!("bad escape \\{c}")));
            }
            c => {
                if rust_meta(c) {
                    self.out.push('\\');
                } else if c.is_whitespace() && self.verbose {
                    let _ = write!(self.out, "\\x{{{:X}}}", c as u32);
                    return Ok((Token::Other, true));
                }
                self.out.push(c);
                Token::Other
            }
        };
        Ok((token, true))
    }

    /// A character class (after the `[`).
    fn class(&mut self) -> Result<(), PyReError> {
        self.out.push('[');
        if self.peek() == Some('^') {
            self.pos += 1;
            self.out.push('^');
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated character set"));
            };
            self.pos += 1;
            match c {
                ']' if !first => {
                    self.out.push(']');
                    return Ok(());
                }
                '\\' => self.class_escape()?,
                '[' | ']' | '&' | '~' | '^' => {
                    self.out.push('\\');
                    self.out.push(c);
                }
                c if c.is_whitespace() && self.verbose => {
                    let _ = write!(self.out, "\\x{{{:X}}}", c as u32);
                }
                c => self.out.push(c),
            }
            first = false;
        }
    }

    fn class_escape(&mut self) -> Result<(), PyReError> {
        let Some(c) = self.peek() else {
            return Err(self.err("bad escape (end of pattern)"));
        };
        self.pos += 1;
        match c {
            's' => self.out.push_str(PY_SPACE_ITEMS),
            'S' => {
                let _ = write!(self.out, "[^{PY_SPACE_ITEMS}]");
            }
            'w' => self.out.push_str(PY_WORD_ITEMS),
            'W' => {
                let _ = write!(self.out, "[^{PY_WORD_ITEMS}]");
            }
            'd' | 'D' | 'n' | 't' | 'r' | 'f' | 'v' | 'a' => {
                self.out.push('\\');
                self.out.push(c);
            }
            'b' => self.out.push_str("\\x{8}"),
            'x' => {
                let v = self.hex(2, 'x')?;
                let _ = write!(self.out, "\\x{{{v:X}}}");
            }
            'u' => {
                let v = self.hex(4, 'u')?;
                let _ = write!(self.out, "\\x{{{v:X}}}");
            }
            'U' => {
                let v = self.hex(8, 'U')?;
                let _ = write!(self.out, "\\x{{{v:X}}}");
            }
            '0'..='7' => {
                let v = self.octal(c, 2);
                let _ = write!(self.out, "\\x{{{v:X}}}");
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(self.err(&format!("bad escape \\{c}")));
            }
            c => {
                if c.is_ascii_punctuation() {
                    self.out.push('\\');
                }
                self.out.push(c);
            }
        }
        Ok(())
    }
}
