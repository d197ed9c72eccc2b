//! The parse tree written out as a fancy-regex pattern that matches the same way.
//!
//! Python-only syntax is translated, a literal `{` that Python accepts is
//! escaped, `$` keeps Python's "end or before a final newline" meaning, and
//! `\s` / `\w` / `\b` keep Python's character definitions (the format
//! module's `chars`), under `(?a)` their ASCII ones.

use std::fmt::Write as _;

use super::super::chars::{
    ASCII_NOT_SPACE, ASCII_NOT_WORD, ASCII_SPACE, ASCII_WORD, PY_NOT_SPACE, PY_NOT_WORD, PY_SPACE,
    PY_WORD,
};
use super::{At, Cat, ClassItem, Node, Pattern, F_A, F_I, F_M, F_S};

// ----- emission as a fancy-regex pattern -----

/// Emit `pat` as a fancy-regex pattern with the same matching behaviour.
/// Capturing groups keep Python's numbering; names are kept out of the emitted
/// pattern (they are tracked in `Pattern::group_names`), so any Python
/// identifier works.
pub fn emit(pat: &Pattern) -> String {
    let mut out = String::from("(?s)");
    if pat.flags & F_I != 0 {
        out.push_str("(?i)");
    }
    emit_seq(&pat.seq, pat.flags, &mut out);
    out
}

fn emit_seq(seq: &[Node], flags: u8, out: &mut String) {
    for n in seq {
        emit_node(n, flags, out);
    }
}

fn push_lit(c: char, out: &mut String) {
    if c.is_alphanumeric() || c == '_' || c == ' ' {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

fn cat_str(cat: Cat, flags: u8) -> &'static str {
    let ascii = flags & F_A != 0;
    match (cat, ascii) {
        (Cat::Digit, false) => r"\d",
        (Cat::NotDigit, false) => r"\D",
        (Cat::Digit, true) => "[0-9]",
        (Cat::NotDigit, true) => "[^0-9]",
        (Cat::Space, false) => PY_SPACE,
        (Cat::NotSpace, false) => PY_NOT_SPACE,
        (Cat::Space, true) => ASCII_SPACE,
        (Cat::NotSpace, true) => ASCII_NOT_SPACE,
        (Cat::Word, false) => PY_WORD,
        (Cat::NotWord, false) => PY_NOT_WORD,
        (Cat::Word, true) => ASCII_WORD,
        (Cat::NotWord, true) => ASCII_NOT_WORD,
    }
}

fn emit_node(n: &Node, flags: u8, out: &mut String) {
    match n {
        Node::Lit(c) => push_lit(*c, out),
        Node::Any => {
            if flags & F_S != 0 {
                out.push('.');
            } else {
                out.push_str(r"[^\n]");
            }
        }
        Node::Class { negate, items } => {
            if !negate && items.len() == 1 {
                if let ClassItem::Cat(cat) = items[0] {
                    out.push_str(cat_str(cat, flags));
                    return;
                }
            }
            out.push('[');
            if *negate {
                out.push('^');
            }
            for i in items {
                match i {
                    ClassItem::Lit(c) => {
                        let _ = write!(out, "\\x{{{:X}}}", *c as u32);
                    }
                    ClassItem::Range(a, b) => {
                        let _ = write!(out, "\\x{{{:X}}}-\\x{{{:X}}}", *a as u32, *b as u32);
                    }
                    ClassItem::Cat(cat) => out.push_str(cat_str(*cat, flags)),
                }
            }
            out.push(']');
        }
        Node::At(a) => {
            let w = if flags & F_A != 0 {
                ASCII_WORD
            } else {
                PY_WORD
            };
            match a {
                At::Beginning if flags & F_M != 0 => out.push_str("(?m:^)"),
                At::Beginning | At::BeginningString => out.push_str(r"\A"),
                At::End if flags & F_M != 0 => out.push_str("(?m:$)"),
                At::End => out.push_str(r"(?=\n?\z)"),
                At::EndString => out.push_str(r"\z"),
                At::Boundary => {
                    let _ = write!(out, "(?:(?<={w})(?!{w})|(?<!{w})(?={w}))");
                }
                // Python's `\B` never matches in an empty string.
                At::NonBoundary => {
                    let _ = write!(out, "(?:(?!\\A\\z)(?:(?<={w})(?={w})|(?<!{w})(?!{w})))");
                }
            }
        }
        Node::Sub {
            group,
            add,
            del,
            body,
        } => {
            let inner = (flags | add) & !del;
            let case_change = (inner & F_I) != (flags & F_I);
            out.push_str(if group.is_some() { "(" } else { "(?:" });
            if case_change {
                out.push_str(if inner & F_I != 0 { "(?i:" } else { "(?-i:" });
            }
            emit_seq(body, inner, out);
            if case_change {
                out.push(')');
            }
            out.push(')');
        }
        Node::Branch(alts) => {
            out.push_str("(?:");
            for (i, a) in alts.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                emit_seq(a, flags, out);
            }
            out.push(')');
        }
        Node::Repeat {
            min,
            max,
            greedy,
            body,
        } if is_zero_width(body) => {
            // fancy-regex refuses to repeat a lookaround. For a zero-width body
            // Python's engine stops iterating after the first empty iteration,
            // so the repeat is "body once" (min >= 1) or "body or nothing".
            if *max == Some(0) {
                return;
            }
            out.push_str("(?:");
            if *min == 0 && !*greedy {
                out.push('|');
            }
            out.push_str("(?:");
            emit_seq(body, flags, out);
            out.push(')');
            if *min == 0 && *greedy {
                out.push('|');
            }
            out.push(')');
        }
        Node::Repeat {
            min,
            max,
            greedy,
            body,
        } => {
            out.push_str("(?:");
            emit_seq(body, flags, out);
            out.push(')');
            match (min, max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (m, None) => {
                    let _ = write!(out, "{{{m},}}");
                }
                (m, Some(x)) if m == x => {
                    let _ = write!(out, "{{{m}}}");
                }
                (m, Some(x)) => {
                    let _ = write!(out, "{{{m},{x}}}");
                }
            }
            if !greedy {
                out.push('?');
            }
        }
        Node::Assert {
            behind,
            negate,
            body,
        } => {
            out.push_str(match (behind, negate) {
                (false, false) => "(?=",
                (false, true) => "(?!",
                (true, false) => "(?<=",
                (true, true) => "(?<!",
            });
            emit_seq(body, flags, out);
            out.push(')');
        }
        Node::GroupRef(g) => {
            let _ = write!(out, "(?:\\{g})");
        }
        Node::GroupRefExists { group, yes, no } => {
            let _ = write!(out, "(?({group})");
            emit_seq(yes, flags, out);
            out.push('|');
            if let Some(no) = no {
                emit_seq(no, flags, out);
            }
            out.push(')');
        }
    }
}

/// Whether `seq` can only ever match the empty string (assertions only).
fn is_zero_width(seq: &[Node]) -> bool {
    seq.iter().all(|n| match n {
        Node::At(_) | Node::Assert { .. } => true,
        Node::Sub { body, .. } | Node::Repeat { body, .. } => is_zero_width(body),
        Node::Branch(alts) => alts.iter().all(|a| is_zero_width(a)),
        Node::GroupRefExists { yes, no, .. } => {
            is_zero_width(yes) && no.as_deref().is_none_or(is_zero_width)
        }
        _ => false,
    })
}
