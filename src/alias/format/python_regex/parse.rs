//! The parser: CPython's `sre_parse` (3.8–3.10), re-implemented.
//!
//! It accepts and rejects exactly the patterns Python does, with Python's error
//! messages (an invalid format is reported with them), resolves inline flags the way those
//! versions do (global flags anywhere apply to the whole pattern, `(?x)` restarts
//! the parse in verbose mode), and records group names, group widths for
//! look-behinds, and the global flags in the [`Pattern`] it returns.

use std::collections::HashMap;

use super::super::chars::is_identifier;
use super::{At, Cat, ClassItem, Node, Pattern, F_A, F_I, F_L, F_M, F_S, F_T, F_U, F_X};

/// Nesting depth the Python-pattern parser accepts (deeper input is rejected
/// instead of risking the stack).
const MAX_NESTING: usize = 100;

const MAXREPEAT: u64 = u32::MAX as u64;

fn flag_bit(c: char) -> Option<u8> {
    Some(match c {
        'i' => F_I,
        'L' => F_L,
        'm' => F_M,
        's' => F_S,
        'x' => F_X,
        'a' => F_A,
        'u' => F_U,
        't' => F_T,
        _ => return None,
    })
}

enum Fail {
    Error(String),
    RestartVerbose,
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Error(s)
    }
}

type PResult<T> = Result<T, Fail>;

struct Parser {
    src: Vec<char>,
    pos: usize,
    flags: u8,
    group_names: Vec<Option<String>>,
    names: HashMap<String, usize>,
    open: Vec<usize>,
    widths: HashMap<usize, (u64, u64)>,
    lookbehind_groups: Option<usize>,
    cond_refs: Vec<usize>,
}

/// Parse `pattern` the way `sre_parse.parse(pattern, flags)` does.
pub fn parse(pattern: &str, flags: u8) -> Result<Pattern, String> {
    let mut verbose = flags & F_X != 0;
    let mut flags = flags;
    loop {
        let mut p = Parser {
            src: pattern.chars().collect(),
            pos: 0,
            flags,
            group_names: Vec::new(),
            names: HashMap::new(),
            open: Vec::new(),
            widths: HashMap::new(),
            lookbehind_groups: None,
            cond_refs: Vec::new(),
        };
        match p.parse_all(verbose) {
            Ok(seq) => {
                let mut fl = p.flags;
                if fl & F_L != 0 {
                    return Err("cannot use LOCALE flag with a str pattern".into());
                }
                if fl & F_A != 0 && fl & F_U != 0 {
                    return Err("ASCII and UNICODE flags are incompatible".into());
                }
                if fl & F_A == 0 {
                    fl |= F_U;
                }
                let ngroups = p.group_names.len();
                if let Some(g) = p.cond_refs.iter().find(|&&g| g > ngroups) {
                    return Err(format!("invalid group reference {g}"));
                }
                return Ok(Pattern {
                    seq,
                    flags: fl,
                    group_names: p.group_names,
                });
            }
            Err(Fail::Error(e)) => return Err(e),
            Err(Fail::RestartVerbose) => {
                if verbose {
                    return Err("internal error: verbose restart loop".into());
                }
                verbose = true;
                flags |= F_X;
            }
        }
    }
}

impl Parser {
    fn err<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err(Fail::Error(format!(
            "{} at position {}",
            msg.into(),
            self.pos.min(self.src.len())
        )))
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.pos).copied()
    }

    /// Whether the next *token* is exactly `c` (a backslash pair is one token).
    fn next_is(&self, c: char) -> bool {
        self.peek() == Some(c) && c != '\\'
    }

    fn eat(&mut self, c: char) -> bool {
        if self.next_is(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Next token as text: one char, or a backslash with the char after it.
    fn get_token(&mut self) -> PResult<Option<String>> {
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        self.pos += 1;
        if c == '\\' {
            match self.peek() {
                Some(d) => {
                    self.pos += 1;
                    Ok(Some(format!("\\{d}")))
                }
                None => self.err("bad escape (end of pattern)"),
            }
        } else {
            Ok(Some(c.to_string()))
        }
    }

    fn get_until(&mut self, term: char, what: &str) -> PResult<String> {
        let mut result = String::new();
        loop {
            let Some(tok) = self.get_token()? else {
                if result.is_empty() {
                    return self.err(format!("missing {what}"));
                }
                return self.err(format!("missing {term}, unterminated name"));
            };
            if tok.len() == term.len_utf8() && tok.starts_with(term) {
                if result.is_empty() {
                    return self.err(format!("missing {what}"));
                }
                return Ok(result);
            }
            result.push_str(&tok);
        }
    }

    fn check_group(&self, gid: usize) -> bool {
        gid >= 1 && gid <= self.group_names.len() && !self.open.contains(&gid)
    }

    fn check_lookbehind_group(&self, gid: usize) -> PResult<()> {
        if let Some(lb) = self.lookbehind_groups {
            if !self.check_group(gid) {
                return self.err("cannot refer to an open group");
            }
            if gid > lb {
                return self.err("cannot refer to group defined in the same lookbehind subpattern");
            }
        }
        Ok(())
    }

    fn parse_all(&mut self, verbose: bool) -> PResult<Vec<Node>> {
        let seq = self.parse_sub(verbose, 0)?;
        if self.peek().is_some() {
            return self.err("unbalanced parenthesis");
        }
        Ok(seq)
    }

    fn parse_sub(&mut self, verbose: bool, nested: usize) -> PResult<Vec<Node>> {
        if nested > MAX_NESTING {
            return self.err("pattern too deeply nested");
        }
        let mut items = vec![self.parse_seq(verbose, nested + 1)?];
        while self.eat('|') {
            items.push(self.parse_seq(verbose, nested + 1)?);
        }
        if items.len() == 1 {
            return Ok(items.pop().unwrap_or_default());
        }
        let mut out = Vec::new();
        // Common prefix of all branches moves out of the branch (sre_parse does
        // this, and it changes what the anchor search sees).
        while let Some(first) = items[0].first().cloned() {
            if !items.iter().all(|it| it.first() == Some(&first)) {
                break;
            }
            for it in items.iter_mut() {
                it.remove(0);
            }
            out.push(first);
        }
        // Branches of single literals / positive classes become one class.
        let mut set = Vec::new();
        let mut all_simple = true;
        for it in &items {
            if it.len() != 1 {
                all_simple = false;
                break;
            }
            match &it[0] {
                Node::Lit(c) => set.push(ClassItem::Lit(*c)),
                Node::Class {
                    negate: false,
                    items,
                } => set.extend(items.iter().copied()),
                _ => {
                    all_simple = false;
                    break;
                }
            }
        }
        if all_simple {
            let mut uniq: Vec<ClassItem> = Vec::new();
            for i in set {
                if !uniq.contains(&i) {
                    uniq.push(i);
                }
            }
            out.push(Node::Class {
                negate: false,
                items: uniq,
            });
        } else {
            out.push(Node::Branch(items));
        }
        Ok(out)
    }

    fn parse_seq(&mut self, verbose: bool, nested: usize) -> PResult<Vec<Node>> {
        if nested > MAX_NESTING {
            return self.err("pattern too deeply nested");
        }
        let mut seq: Vec<Node> = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            self.pos += 1;
            if verbose {
                if matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}') {
                    continue;
                }
                if c == '#' {
                    loop {
                        let tok = self.get_token()?;
                        match tok {
                            None => break,
                            Some(t) if t == "\n" => break,
                            Some(_) => {}
                        }
                    }
                    continue;
                }
            }
            match c {
                '\\' => {
                    let n = self.parse_escape()?;
                    seq.push(n);
                }
                '[' => {
                    let n = self.parse_class()?;
                    seq.push(n);
                }
                '*' | '+' | '?' | '{' => {
                    let (min, max) = match c {
                        '?' => (0u64, Some(1u64)),
                        '*' => (0, None),
                        '+' => (1, None),
                        _ => {
                            let here = self.pos;
                            if self.next_is('}') {
                                seq.push(Node::Lit('{'));
                                continue;
                            }
                            let mut lo = String::new();
                            let mut hi = String::new();
                            while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                                lo.push(d);
                                self.pos += 1;
                            }
                            if self.eat(',') {
                                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                                    hi.push(d);
                                    self.pos += 1;
                                }
                            } else {
                                hi = lo.clone();
                            }
                            if !self.eat('}') {
                                seq.push(Node::Lit('{'));
                                self.pos = here;
                                continue;
                            }
                            let min = if lo.is_empty() {
                                0
                            } else {
                                match lo.parse::<u64>() {
                                    Ok(v) if v < MAXREPEAT => v,
                                    _ => return self.err("the repetition number is too large"),
                                }
                            };
                            let max = if hi.is_empty() {
                                None
                            } else {
                                match hi.parse::<u64>() {
                                    Ok(v) if v < MAXREPEAT => {
                                        if v < min {
                                            return self.err("min repeat greater than max repeat");
                                        }
                                        Some(v)
                                    }
                                    _ => return self.err("the repetition number is too large"),
                                }
                            };
                            (min, max)
                        }
                    };
                    let item = match seq.pop() {
                        None | Some(Node::At(_)) => return self.err("nothing to repeat"),
                        Some(Node::Repeat { .. }) => return self.err("multiple repeat"),
                        Some(n) => n,
                    };
                    let body = match item {
                        Node::Sub {
                            group: None,
                            add: 0,
                            del: 0,
                            body,
                        } => body,
                        other => vec![other],
                    };
                    let greedy = !self.eat('?');
                    seq.push(Node::Repeat {
                        min: min as u32,
                        max: max.map(|m| m as u32),
                        greedy,
                        body,
                    });
                }
                '.' => seq.push(Node::Any),
                '^' => seq.push(Node::At(At::Beginning)),
                '$' => seq.push(Node::At(At::End)),
                '(' => {
                    if let Some(n) = self.parse_group(verbose, nested)? {
                        seq.push(n);
                    }
                }
                other => seq.push(Node::Lit(other)),
            }
        }
        Ok(seq)
    }

    /// After `(`; returns None for constructs that add no node (comments,
    /// global flags).
    fn parse_group(&mut self, verbose: bool, nested: usize) -> PResult<Option<Node>> {
        let mut capture = true;
        let mut name: Option<String> = None;
        let mut add = 0u8;
        let mut del = 0u8;
        if self.eat('?') {
            let Some(ch) = self.peek() else {
                return self.err("unexpected end of pattern");
            };
            self.pos += 1;
            match ch {
                'P' => {
                    if self.eat('<') {
                        let n = self.get_until('>', "group name")?;
                        if !is_identifier(&n) {
                            return self.err(format!("bad character in group name '{n}'"));
                        }
                        name = Some(n);
                    } else if self.eat('=') {
                        let n = self.get_until(')', "group name")?;
                        if !is_identifier(&n) {
                            return self.err(format!("bad character in group name '{n}'"));
                        }
                        let Some(&gid) = self.names.get(&n) else {
                            return self.err(format!("unknown group name '{n}'"));
                        };
                        if !self.check_group(gid) {
                            return self.err("cannot refer to an open group");
                        }
                        self.check_lookbehind_group(gid)?;
                        return Ok(Some(Node::GroupRef(gid)));
                    } else {
                        return match self.peek() {
                            None => self.err("unexpected end of pattern"),
                            Some(c) => self.err(format!("unknown extension ?P{c}")),
                        };
                    }
                }
                ':' => capture = false,
                '#' => loop {
                    match self.get_token()? {
                        None => return self.err("missing ), unterminated comment"),
                        Some(t) if t == ")" => return Ok(None),
                        Some(_) => {}
                    }
                },
                '=' | '!' | '<' => {
                    let mut behind = false;
                    let mut kind = ch;
                    if ch == '<' {
                        let Some(c2) = self.peek() else {
                            return self.err("unexpected end of pattern");
                        };
                        self.pos += 1;
                        if c2 != '=' && c2 != '!' {
                            return self.err(format!("unknown extension ?<{c2}"));
                        }
                        behind = true;
                        kind = c2;
                    }
                    let saved = self.lookbehind_groups;
                    if behind && saved.is_none() {
                        self.lookbehind_groups = Some(self.group_names.len());
                    }
                    let body = self.parse_sub(verbose, nested + 1)?;
                    if behind && saved.is_none() {
                        self.lookbehind_groups = None;
                    }
                    if !self.eat(')') {
                        return self.err("missing ), unterminated subpattern");
                    }
                    if behind {
                        let (lo, hi) = self.width(&body);
                        if lo != hi {
                            return self.err("look-behind requires fixed-width pattern");
                        }
                    }
                    return Ok(Some(Node::Assert {
                        behind,
                        negate: kind == '!',
                        body,
                    }));
                }
                '(' => {
                    let cond = self.get_until(')', "group name")?;
                    let gid = if is_identifier(&cond) {
                        match self.names.get(&cond) {
                            Some(&g) => g,
                            None => return self.err(format!("unknown group name '{cond}'")),
                        }
                    } else {
                        if cond.is_empty() || !cond.chars().all(|c| c.is_ascii_digit()) {
                            return self.err(format!("bad character in group name '{cond}'"));
                        }
                        let g = match cond.parse::<usize>() {
                            Ok(g) if g < (1 << 30) => g,
                            _ => return self.err(format!("invalid group reference {cond}")),
                        };
                        if g == 0 {
                            return self.err("bad group number");
                        }
                        self.cond_refs.push(g);
                        g
                    };
                    self.check_lookbehind_group(gid)?;
                    let yes = self.parse_seq(verbose, nested + 1)?;
                    let no = if self.eat('|') {
                        let n = self.parse_seq(verbose, nested + 1)?;
                        if self.next_is('|') {
                            return self.err("conditional backref with more than two branches");
                        }
                        Some(n)
                    } else {
                        None
                    };
                    if !self.eat(')') {
                        return self.err("missing ), unterminated subpattern");
                    }
                    return Ok(Some(Node::GroupRefExists {
                        group: gid,
                        yes,
                        no,
                    }));
                }
                c if flag_bit(c).is_some() || c == '-' => match self.parse_flags(c)? {
                    None => {
                        if self.flags & F_X != 0 && !verbose {
                            return Err(Fail::RestartVerbose);
                        }
                        return Ok(None);
                    }
                    Some((a, d)) => {
                        add = a;
                        del = d;
                        capture = false;
                    }
                },
                c => return self.err(format!("unknown extension ?{c}")),
            }
        }
        let group = if capture {
            let gid = self.group_names.len() + 1;
            if let Some(n) = &name {
                if let Some(&old) = self.names.get(n) {
                    return self.err(format!(
                        "redefinition of group name '{n}' as group {gid}; was group {old}"
                    ));
                }
                self.names.insert(n.clone(), gid);
            }
            self.group_names.push(name);
            self.open.push(gid);
            Some(gid)
        } else {
            None
        };
        let sub_verbose = (verbose || add & F_X != 0) && del & F_X == 0;
        let body = self.parse_sub(sub_verbose, nested + 1)?;
        if !self.eat(')') {
            return self.err("missing ), unterminated subpattern");
        }
        if let Some(gid) = group {
            self.open.retain(|&g| g != gid);
            let w = self.width(&body);
            self.widths.insert(gid, w);
        }
        Ok(Some(Node::Sub {
            group,
            add,
            del,
            body,
        }))
    }

    /// `_parse_flags`; `None` means global flags `(?imsx)`.
    fn parse_flags(&mut self, first: char) -> PResult<Option<(u8, u8)>> {
        let mut add = 0u8;
        let mut del = 0u8;
        let mut ch = Some(first);
        if first != '-' {
            loop {
                let Some(c) = ch else {
                    return self.err("missing -, : or )");
                };
                let Some(bit) = flag_bit(c) else {
                    return self.err(if c.is_alphabetic() {
                        "unknown flag"
                    } else {
                        "missing -, : or )"
                    });
                };
                if bit == F_L {
                    return self.err("bad inline flags: cannot use 'L' flag with a str pattern");
                }
                add |= bit;
                let types = add & (F_A | F_L | F_U);
                if bit & (F_A | F_L | F_U) != 0 && types != bit {
                    return self.err("bad inline flags: flags 'a', 'u' and 'L' are incompatible");
                }
                ch = self.peek();
                if ch.is_some() {
                    self.pos += 1;
                }
                match ch {
                    None => return self.err("missing -, : or )"),
                    Some(')') | Some('-') | Some(':') => break,
                    _ => {}
                }
            }
        }
        if ch == Some(')') {
            self.flags |= add;
            return Ok(None);
        }
        if ch == Some('-') {
            let c = self.peek();
            if c.is_some() {
                self.pos += 1;
            }
            let Some(c) = c else {
                return self.err("missing flag");
            };
            let mut c = c;
            if flag_bit(c).is_none() {
                return self.err(if c.is_alphabetic() {
                    "unknown flag"
                } else {
                    "missing flag"
                });
            }
            loop {
                let Some(bit) = flag_bit(c) else {
                    return self.err(if c.is_alphabetic() {
                        "unknown flag"
                    } else {
                        "missing :"
                    });
                };
                if bit & (F_A | F_L | F_U) != 0 {
                    return self.err("bad inline flags: cannot turn off flags 'a', 'u' and 'L'");
                }
                del |= bit;
                let Some(n) = self.peek() else {
                    return self.err("missing :");
                };
                self.pos += 1;
                if n == ':' {
                    break;
                }
                c = n;
            }
        }
        if add & F_T != 0 {
            return self.err("bad inline flags: cannot turn on global flag");
        }
        if del & F_T != 0 {
            return self.err("bad inline flags: cannot turn off global flag");
        }
        if add & del != 0 {
            return self.err("bad inline flags: flag turned on and off");
        }
        Ok(Some((add, del)))
    }

    fn parse_escape(&mut self) -> PResult<Node> {
        let Some(c) = self.peek() else {
            return self.err("bad escape (end of pattern)");
        };
        self.pos += 1;
        let cls = |cat| Node::Class {
            negate: false,
            items: vec![ClassItem::Cat(cat)],
        };
        Ok(match c {
            'A' => Node::At(At::BeginningString),
            'Z' => Node::At(At::EndString),
            'b' => Node::At(At::Boundary),
            'B' => Node::At(At::NonBoundary),
            'd' => cls(Cat::Digit),
            'D' => cls(Cat::NotDigit),
            's' => cls(Cat::Space),
            'S' => cls(Cat::NotSpace),
            'w' => cls(Cat::Word),
            'W' => cls(Cat::NotWord),
            '0' => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                Node::Lit(self.to_char(v)?)
            }
            '1'..='9' => {
                let mut digits = c.to_string();
                if let Some(d2) = self.peek().filter(char::is_ascii_digit) {
                    self.pos += 1;
                    digits.push(d2);
                    let d1_oct = c.is_digit(8);
                    let d2_oct = d2.is_digit(8);
                    if let Some(d3) = self.peek().filter(|d| d.is_digit(8)) {
                        if d1_oct && d2_oct {
                            self.pos += 1;
                            digits.push(d3);
                            let v = u32::from_str_radix(&digits, 8).unwrap_or(u32::MAX);
                            if v > 0o377 {
                                return self.err(format!(
                                    "octal escape value \\{digits} outside of range 0-0o377"
                                ));
                            }
                            return Ok(Node::Lit(self.to_char(v)?));
                        }
                    }
                }
                let gid: usize = digits.parse().unwrap_or(usize::MAX);
                if gid <= self.group_names.len() {
                    if !self.check_group(gid) {
                        return self.err("cannot refer to an open group");
                    }
                    self.check_lookbehind_group(gid)?;
                    Node::GroupRef(gid)
                } else {
                    return self.err(format!("invalid group reference {digits}"));
                }
            }
            _ => Node::Lit(self.simple_escape(c, false)?),
        })
    }

    /// Escapes shared by both contexts (`\x`, `\u`, `\n`, punctuation…).
    fn simple_escape(&mut self, c: char, in_class: bool) -> PResult<char> {
        let v = match c {
            'a' => 7,
            'b' if in_class => 8,
            'f' => 12,
            'n' => 10,
            'r' => 13,
            't' => 9,
            'v' => 11,
            '\\' => 92,
            'x' | 'u' | 'U' => {
                let n = match c {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut hex = String::new();
                for _ in 0..n {
                    match self.peek().filter(char::is_ascii_hexdigit) {
                        Some(h) => {
                            hex.push(h);
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                if hex.len() != n {
                    return self.err(format!("incomplete escape \\{c}{hex}"));
                }
                let v = u32::from_str_radix(&hex, 16).unwrap_or(u32::MAX);
                if c == 'U' && v > 0x10FFFF {
                    return self.err(format!("bad escape \\{c}{hex}"));
                }
                v
            }
            'N' => return self.err("bad escape \\N (named Unicode escapes are not supported)"),
            c if c.is_ascii_alphabetic() => return self.err(format!("bad escape \\{c}")),
            c if c.is_ascii_digit() => return self.err(format!("bad escape \\{c}")),
            c => c as u32,
        };
        self.to_char(v)
    }

    fn to_char(&self, v: u32) -> PResult<char> {
        match char::from_u32(v) {
            Some(c) => Ok(c),
            None => self.err(format!(
                "escape U+{v:04X} is a lone surrogate, which is not supported"
            )),
        }
    }

    fn class_escape(&mut self) -> PResult<ClassItem> {
        let Some(c) = self.peek() else {
            return self.err("bad escape (end of pattern)");
        };
        self.pos += 1;
        Ok(match c {
            'd' => ClassItem::Cat(Cat::Digit),
            'D' => ClassItem::Cat(Cat::NotDigit),
            's' => ClassItem::Cat(Cat::Space),
            'S' => ClassItem::Cat(Cat::NotSpace),
            'w' => ClassItem::Cat(Cat::Word),
            'W' => ClassItem::Cat(Cat::NotWord),
            '0'..='7' => {
                let mut v = c.to_digit(8).unwrap_or(0);
                let mut digits = c.to_string();
                for _ in 0..2 {
                    match self.peek().filter(|d| d.is_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d.to_digit(8).unwrap_or(0);
                            digits.push(d);
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                if v > 0o377 {
                    return self.err(format!(
                        "octal escape value \\{digits} outside of range 0-0o377"
                    ));
                }
                ClassItem::Lit(self.to_char(v)?)
            }
            _ => ClassItem::Lit(self.simple_escape(c, true)?),
        })
    }

    fn parse_class(&mut self) -> PResult<Node> {
        let negate = self.eat('^');
        let mut items: Vec<ClassItem> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated character set");
            };
            self.pos += 1;
            if c == ']' && !items.is_empty() {
                break;
            }
            let (tok, code1) = if c == '\\' {
                let start = self.pos - 1;
                let it = self.class_escape()?;
                (self.src[start..self.pos].iter().collect::<String>(), it)
            } else {
                (c.to_string(), ClassItem::Lit(c))
            };
            if self.eat('-') {
                let Some(c2) = self.peek() else {
                    return self.err("unterminated character set");
                };
                self.pos += 1;
                if c2 == ']' {
                    items.push(code1);
                    items.push(ClassItem::Lit('-'));
                    break;
                }
                let (tok2, code2) = if c2 == '\\' {
                    let start = self.pos - 1;
                    let it = self.class_escape()?;
                    (self.src[start..self.pos].iter().collect::<String>(), it)
                } else {
                    (c2.to_string(), ClassItem::Lit(c2))
                };
                match (code1, code2) {
                    (ClassItem::Lit(lo), ClassItem::Lit(hi)) if lo <= hi => {
                        items.push(ClassItem::Range(lo, hi));
                    }
                    _ => return self.err(format!("bad character range {tok}-{tok2}")),
                }
            } else {
                items.push(code1);
            }
        }
        let mut uniq: Vec<ClassItem> = Vec::new();
        for i in items {
            if !uniq.contains(&i) {
                uniq.push(i);
            }
        }
        if !negate && uniq.len() == 1 {
            if let ClassItem::Lit(c) = uniq[0] {
                return Ok(Node::Lit(c));
            }
        }
        Ok(Node::Class {
            negate,
            items: uniq,
        })
    }

    /// `SubPattern.getwidth()`: (min, max) characters, max capped at MAXREPEAT.
    fn width(&self, seq: &[Node]) -> (u64, u64) {
        let mut lo = 0u64;
        let mut hi = 0u64;
        for n in seq {
            let (i, j) = match n {
                Node::Lit(_) | Node::Any | Node::Class { .. } => (1, 1),
                Node::At(_) | Node::Assert { .. } => (0, 0),
                Node::Sub { body, .. } => self.width(body),
                Node::Branch(alts) => {
                    let mut i = MAXREPEAT - 1;
                    let mut j = 0;
                    for a in alts {
                        let (l, h) = self.width(a);
                        i = i.min(l);
                        j = j.max(h);
                    }
                    (i, j)
                }
                Node::Repeat { min, max, body, .. } => {
                    let (i, j) = self.width(body);
                    let m = max.map(u64::from).unwrap_or(MAXREPEAT);
                    (i.saturating_mul(u64::from(*min)), j.saturating_mul(m))
                }
                Node::GroupRef(g) => self.widths.get(g).copied().unwrap_or((0, MAXREPEAT)),
                Node::GroupRefExists { yes, no, .. } => {
                    let (mut i, mut j) = self.width(yes);
                    match no {
                        Some(no) => {
                            let (l, h) = self.width(no);
                            i = i.min(l);
                            j = j.max(h);
                        }
                        None => i = 0,
                    }
                    (i, j)
                }
            };
            lo = lo.saturating_add(i);
            hi = hi.saturating_add(j);
        }
        (lo.min(MAXREPEAT - 1), hi.min(MAXREPEAT))
    }
}
