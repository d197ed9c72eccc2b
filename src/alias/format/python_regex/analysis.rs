//! What st2 and the alias index read off a parsed pattern.
//!
//! * [`search_anchor`] — st2's `search_regex_tokens`, which decides whether `^\s*`
//!   and `\s*$` are added (quirks included: only the *second* branch of an
//!   alternation is searched);
//! * [`literal_prefix`], [`required_literal`], [`literal_len`] — the prefilter keys
//!   and the "most specific format" measure of the alias index.

#[cfg(doc)]
use super::super::chars::fold_char;
use super::super::chars::{fold_char_if, is_py_space};
use super::{At, Cat, ClassItem, Node, Pattern, F_I, F_M};

// ----- anchor search (st2's `search_regex_tokens`) -----

/// Whether any node in `seq` is one of `wanted`, recursing into groups and into
/// the **second** branch of alternations only, never into repeats or lookarounds.
pub fn search_anchor(seq: &[Node], wanted: &[At]) -> bool {
    seq.iter().any(|n| match n {
        Node::Sub { body, .. } => search_anchor(body, wanted),
        Node::Branch(alts) => alts.get(1).is_some_and(|b| search_anchor(b, wanted)),
        Node::At(a) => wanted.contains(a),
        _ => false,
    })
}

// ----- analyses for the index -----

fn is_space_class(n: &Node) -> bool {
    match n {
        Node::Lit(c) => is_py_space(*c),
        Node::Class {
            negate: false,
            items,
        } => items.iter().all(|i| match i {
            ClassItem::Cat(Cat::Space) => true,
            ClassItem::Lit(c) => is_py_space(*c),
            _ => false,
        }),
        _ => false,
    }
}

fn linearize<'a>(seq: &'a [Node], out: &mut Vec<&'a Node>) {
    for n in seq {
        match n {
            Node::Sub {
                add: 0,
                del: 0,
                body,
                ..
            } => linearize(body, out),
            other => out.push(other),
        }
    }
}

/// (prefix, word_complete): literal text every match must begin with once
/// leading whitespace of the subject is skipped, and whether that prefix
/// contains a whole first word (followed by whitespace or by the end of the
/// pattern's required text).
///
/// For a case-insensitive pattern the prefix is ASCII-only and folded with
/// [`fold_char`] (it stops at the first non-ASCII literal).
pub fn literal_prefix(pat: &Pattern) -> (String, bool) {
    let ci = pat.flags & F_I != 0;
    let mut lin = Vec::new();
    linearize(&pat.seq, &mut lin);
    let mut i = 0;
    match lin.first() {
        Some(Node::At(At::BeginningString)) => i += 1,
        Some(Node::At(At::Beginning)) if pat.flags & F_M == 0 => i += 1,
        _ => return (String::new(), false),
    }
    // Whitespace-only constructs before the first literal.
    while let Some(n) = lin.get(i) {
        let skip = match n {
            Node::Repeat { body, .. } => body.len() == 1 && is_space_class(&body[0]),
            Node::Lit(c) => is_py_space(*c),
            _ => false,
        };
        if !skip {
            break;
        }
        i += 1;
    }
    let mut prefix = String::new();
    let mut truncated = false;
    while let Some(Node::Lit(c)) = lin.get(i) {
        if ci && !c.is_ascii() {
            truncated = true;
            break;
        }
        prefix.push(fold_char_if(*c, ci));
        i += 1;
    }
    if prefix.is_empty() {
        return (prefix, false);
    }
    if prefix.chars().any(is_py_space) {
        return (prefix, true);
    }
    if truncated {
        return (prefix, false);
    }
    // The word is complete when whatever follows must start with whitespace
    // or end the subject.
    let complete = pat.flags & F_M == 0 && space_or_end(&lin[i..]);
    (prefix, complete)
}

/// Conservative: every way of matching `rest` starts with a whitespace
/// character or is at the end of the subject (Python `$` also allows a final
/// newline, which is whitespace too).
fn space_or_end(rest: &[&Node]) -> bool {
    let Some((first, tail)) = rest.split_first() else {
        return false;
    };
    match first {
        Node::At(At::End) | Node::At(At::EndString) => true,
        n if is_space_class(n) => true,
        Node::Repeat { min, body, .. } => {
            let mut b = Vec::new();
            linearize(body, &mut b);
            if *min >= 1 {
                space_or_end(&b)
            } else {
                space_or_end(&b) && space_or_end(tail)
            }
        }
        _ => false,
    }
}

/// The longest run of consecutive literal characters on the mandatory path of
/// the pattern (ASCII-only and folded for case-insensitive patterns).
pub fn required_literal(pat: &Pattern) -> String {
    let ci = pat.flags & F_I != 0;
    let mut lin = Vec::new();
    linearize(&pat.seq, &mut lin);
    let mut best = String::new();
    let mut cur = String::new();
    for n in lin {
        match n {
            Node::Lit(c) if !ci || c.is_ascii() => cur.push(fold_char_if(*c, ci)),
            _ => {
                if cur.chars().count() > best.chars().count() {
                    best = std::mem::take(&mut cur);
                }
                cur.clear();
            }
        }
    }
    if cur.chars().count() > best.chars().count() {
        best = cur;
    }
    best
}

/// Literal characters every match must contain (for "most specific" ranking).
pub fn literal_len(seq: &[Node]) -> usize {
    seq.iter()
        .map(|n| match n {
            Node::Lit(_) => 1,
            Node::Sub { body, .. } => literal_len(body),
            Node::Repeat { min, body, .. } => {
                literal_len(body).saturating_mul(*min as usize).min(1 << 20)
            }
            Node::Branch(alts) => alts.iter().map(|a| literal_len(a)).min().unwrap_or(0),
            _ => 0,
        })
        .fold(0usize, |a, b| a.saturating_add(b))
}
