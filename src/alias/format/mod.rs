//! Exact port of st2's alias format parser (`ActionAliasFormatParser` in
//! `st2common/models/utils/action_alias_utils.py`), on top of `fancy-regex`.
//!
//! An alias format is a *Python* regular expression with `{{name}}` and
//! `{{name=default}}` placeholders. st2 turns it into a regex by textual substitution,
//! decides whether to add `^\s*` / `\s*$` by inspecting Python's own parse tree, and
//! matches the command after cutting off trailing `key=value` pairs. Every one of
//! those steps has quirks that users' formats rely on (see `st2-protocol.md` §3), so
//! this module reproduces them step by step:
//!
//! 1. [`prepare`]: trailing pairs are found with st2's own regexes and removed with a
//!    *global* string replace; one space is added at each end. This depends only on
//!    the command, so it is done once per command and shared by all formats.
//! 2. [`CompiledFormat::compile`]: optional placeholders are collected, placeholders
//!    are substituted with st2's exact replacement text, and the resulting Python
//!    pattern is parsed by a small re-implementation of Python's `sre_parse` (the
//!    `python_regex` module). That parse tree drives the anchor decision (including
//!    the quirk that only the *second* branch of an alternation is searched), and is
//!    then emitted as an equivalent `fancy-regex` pattern: Python-only syntax is
//!    translated, literal `{` that Python accepts is escaped, `$` keeps Python's
//!    "end or before a final newline" meaning, `\s`/`\w`/`\b` keep Python's
//!    character definitions.
//! 3. [`CompiledFormat::extract`] / [`CompiledFormat::extract_all`]: `search` /
//!    `finditer`, then defaults, then pair overrides, then the
//!    "No value supplied" check, in st2's order.
//!
//! # Representation of `None`
//! st2 returns a dict in which a named group that did not take part in the match is
//! `None` (this only happens for named groups written by hand in the format, or
//! placeholders nested inside optional regex constructs; optional placeholders always
//! fall back to their default string). Here every value is a `String` and such
//! `None` entries are **omitted from the map**. Empty strings (`key=""`) are kept.
//!
//! # Which Python
//! st2 3.x runs on Python 3.8–3.10, and this port follows those versions' `re`:
//! inline global flags such as `(?i)` apply to the whole pattern wherever they
//! appear (st2 prepends `^\s*` *before* a leading `(?i)`, which Python 3.11 would
//! reject), and 3.11-only syntax (atomic groups, possessive quantifiers) is an error.
//!
//! # Verification
//! Besides the unit tests (st2's own parser tests and the protocol quirks), the
//! port was checked differentially against st2's parser running on CPython: about
//! 100,000 generated (format, command) pairs, realistic and random-regex, agree
//! except for the cases listed below.
//!
//! # Known, documented differences from CPython
//! * Captures of a group *inside a repeated group* can differ when iterations may
//!   match the empty string or nested quantifiers are lazy (Python stops a repeat at
//!   its first empty iteration and keeps the last iteration's capture; Rust's engine
//!   may split iterations differently). The overall match is the same in the cases
//!   seen; st2 placeholders are never repeated unless the user writes so.
//! * `\N{NAME}` escapes are rejected (no Unicode name table).
//! * Lone surrogate escapes (`\ud800`) are rejected (Rust strings cannot hold them).
//! * Case-insensitive matching uses Unicode simple case folding (as Rust's regex
//!   does), also under `(?a)` where Python folds ASCII only.
//! * A match that exceeds the backtracking budget is reported as
//!   [`ParseError::Runtime`] instead of running for minutes.
//!
//! # Layout
//! * `chars` — Python's whitespace, word and case-folding definitions;
//! * `snippets` — st2's own helper regexes (pairs, placeholders);
//! * `command` — step 1, [`PreparedCommand`] and [`prepare`];
//! * `python_regex` — the translator from Python's `re` syntax (parser, emitter,
//!   analyses), also behind [`compile_python`];
//! * `compile` — steps 2 and 3, [`CompiledFormat`] and its analyses;
//! * `extract` — steps 4 and 5, matching and [`extract_parameters`];
//! * `tests` with `cpython_corpus.jsonl`, the differential corpus.

mod chars;
mod command;
mod compile;
mod extract;
mod python_regex;
mod snippets;
#[cfg(test)]
mod tests;

pub(crate) use chars::is_py_space;
pub use command::{prepare, PreparedCommand};
pub use compile::CompiledFormat;
pub use extract::{extract_parameters, MatchWithText, MATCHERS_KEPT};
pub use python_regex::compile_python;

/// Backtracking budget for one regex execution. Python has no limit; a runaway user
/// pattern would stall the bridge, so past this the attempt is abandoned.
const BACKTRACK_LIMIT: usize = 200_000;

/// Errors from parsing a command against an alias format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// st2's `ParseException` for a command that does not match; Display is st2's
    /// exact text (double quotes), using the original command.
    #[error("Command \"{command}\" doesn't match format string \"{format}\"")]
    NoMatch {
        /// The command as given (before pair removal and padding).
        command: String,
        /// The format string.
        format: String,
    },
    /// st2's other `ParseException`: non-empty format, blank command, every value empty.
    #[error("No value supplied and no default value found.")]
    NoValue,
    /// The format cannot be compiled (e.g. `{{a.b}}`, `{{a=}}`, a name used twice,
    /// an invalid Python regex). st2 raises `re.error` here and answers HTTP 500 for
    /// every command; stormbridge reports it once and skips the format.
    #[error("invalid alias format \"{format}\": {message}")]
    InvalidFormat {
        /// The format string.
        format: String,
        /// What is wrong, in Python's words where possible.
        message: String,
    },
    /// The regex engine gave up (backtracking budget exceeded). Callers treat this
    /// as "no match" and surface a warning.
    #[error("matching command \"{command}\" against format \"{format}\" was abandoned: {message}")]
    Runtime {
        /// The command as given.
        command: String,
        /// The format string.
        format: String,
        /// The engine's reason.
        message: String,
    },
}
