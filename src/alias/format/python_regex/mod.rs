//! A re-implementation of the parts of CPython's `sre_parse` (3.8–3.10) that
//! matter here: it accepts and rejects the same patterns, produces the same token
//! structure for anchor detection, and knows enough to emit an equivalent
//! fancy-regex pattern.
//!
//! The translator is self-contained: it knows nothing of st2's placeholders.
//! [`super::compile`] feeds it the pattern st2 would hand to `re.compile`, and
//! the help filter uses it directly through [`compile_python`].
//!
//! * this file — the parse tree (a subset of `sre_parse`'s token structure), the
//!   flag bits, and the entry points that turn a Python pattern into a regex;
//! * [`parse`](mod@parse) — the parser, with Python's error messages;
//! * [`emit`](mod@emit) — the parse tree written out as a fancy-regex pattern;
//! * [`analysis`] — what st2 and the alias index read off the tree: st2's anchor
//!   search, the literal prefix, the required literal, the specificity.

mod analysis;
mod emit;
mod parse;

use fancy_regex::{Regex, RegexBuilder};

pub use analysis::{literal_len, literal_prefix, required_literal, search_anchor};
pub use emit::emit;
pub use parse::parse;

use super::BACKTRACK_LIMIT;

// Flag bits of `Pattern::flags` and of a group's `add` / `del` (this module's own
// numbering; the comments name Python's flags).
pub const F_I: u8 = 1; // IGNORECASE
pub const F_L: u8 = 2; // LOCALE (always rejected for str patterns)
pub const F_M: u8 = 4; // MULTILINE
pub const F_S: u8 = 8; // DOTALL
pub const F_X: u8 = 16; // VERBOSE
pub const F_A: u8 = 32; // ASCII
pub const F_U: u8 = 64; // UNICODE
pub const F_T: u8 = 128; // TEMPLATE (no effect on matching here)

// ----- the parse tree -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cat {
    Digit,
    NotDigit,
    Space,
    NotSpace,
    Word,
    NotWord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassItem {
    Lit(char),
    Range(char, char),
    Cat(Cat),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Beginning,
    BeginningString,
    End,
    EndString,
    Boundary,
    NonBoundary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Lit(char),
    Any,
    Class {
        negate: bool,
        items: Vec<ClassItem>,
    },
    At(At),
    Sub {
        group: Option<usize>,
        add: u8,
        del: u8,
        body: Vec<Node>,
    },
    Branch(Vec<Vec<Node>>),
    Repeat {
        min: u32,
        max: Option<u32>,
        greedy: bool,
        body: Vec<Node>,
    },
    Assert {
        behind: bool,
        negate: bool,
        body: Vec<Node>,
    },
    GroupRef(usize),
    GroupRefExists {
        group: usize,
        yes: Vec<Node>,
        no: Option<Vec<Node>>,
    },
}

/// A parsed Python pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub seq: Vec<Node>,
    /// Global flags after parsing (compile flags + inline global flags).
    pub flags: u8,
    /// Name of each group, indexed by group number - 1.
    pub group_names: Vec<Option<String>>,
}

/// Compile a Python regular expression (exactly as Python's `re` accepts or rejects
/// it) into a fancy-regex that matches the same way, optionally with
/// `re.IGNORECASE`. Used for st2's help filter (`re.search(filter, display,
/// re.IGNORECASE)`); alias formats go through
/// [`CompiledFormat`](super::CompiledFormat). The error is Python's message for
/// invalid patterns.
pub fn compile_python(pattern: &str, ignorecase: bool) -> Result<Regex, String> {
    let flags = if ignorecase { F_I } else { 0 };
    let parsed = parse(pattern, flags)?;
    build_regex(&emit(&parsed))
}

pub(super) fn build_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map_err(|e| format!("cannot compile translated pattern: {e}"))
}
