//! Action aliases: st2's alias wire model, an exact port of st2's alias format
//! parser, stormbridge's alias selection over an immutable index, and st2's help
//! listing.
//!
//! * [`model`] — serde model of `GET /api/v1/actionalias` items, tolerant parsing
//!   of whole lists ([`parse_alias_list`]).
//! * [`format`](mod@format) — st2's `ActionAliasFormatParser` (Python-regex formats with
//!   `{{param}}` placeholders), every quirk included, on `fancy-regex`.
//! * [`index`] — [`AliasIndex`]: an immutable snapshot with a literal-prefix
//!   prefilter; [`AliasIndex::select`] applies stormbridge's rule (unique match,
//!   else most specific, else ask), [`AliasIndex::st2_match`] st2's own.
//! * [`help`](mod@help) — st2's help listing with its filter and paging semantics.

pub mod format;
pub mod help;
pub mod index;
pub mod model;

pub use format::{extract_parameters, prepare, CompiledFormat, ParseError, PreparedCommand};
pub use help::{help, HelpEntry, HelpError, HelpPage};
pub use index::{AliasIndex, AliasMatch, Candidate, NameCollision, Selection, St2MatchError};
pub use model::{
    parse_alias_list, parse_alias_list_bytes, AckSpec, ActionAlias, AliasFormat, AliasListError,
    FormatObject, FormatPattern, Representation, ResultSpec,
};
