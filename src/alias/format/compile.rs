//! Steps 2 and 3, the format: [`CompiledFormat`] and its compile-time analyses.
//!
//! st2 collects the optional placeholders with their defaults, substitutes every
//! placeholder with its exact replacement text, asks Python's parser whether the
//! result is anchored and adds `^\s*` / `\s*$` if not. This file does the same
//! with the translator in `super::python_regex`, and derives what the alias index
//! needs (literal prefix, index key, required literal, specificity). Matching a
//! compiled format against a command is in [`super::extract`].

use std::sync::Arc;

use fancy_regex::Regex;

use super::chars::is_py_space;
use super::command::PreparedCommand;
use super::extract::Matcher;
#[cfg(doc)]
use super::extract::MATCHERS_KEPT;
use super::python_regex::{self as py, build_regex};
use super::snippets::{with_snippets, Snippets};
use super::ParseError;

/// Text st2 substitutes for a placeholder (the `param_match` replacement).
fn param_match(ws: &str, key: &str) -> String {
    format!(r#"{ws}["\']?(?P<{key}>(?:(?<=\').+?(?=\')|(?<=").+?(?=")|{{.+?}}|.+?))["\']?"#)
}

/// Python `re.sub` with a callback, over a pattern whose matches are never empty.
fn sub_all(
    re: &Regex,
    text: &str,
    mut rep: impl FnMut(&fancy_regex::Captures<str>) -> String,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() * 2);
    let mut last = 0;
    for c in re.captures_iter(text) {
        let c = c.map_err(|e| e.to_string())?;
        let Some(m) = c.get(0) else { continue };
        out.push_str(&text[last..m.start()]);
        out.push_str(&rep(&c));
        last = m.end();
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// An alias format (one representation) compiled once and matched against any
/// number of [`PreparedCommand`]s.
///
/// [`CompiledFormat::compile`] does all of st2's validation and the analyses the
/// index needs (literal prefix, required literal, specificity) and checks that
/// fancy-regex accepts the translation; the fancy-regex matcher itself is built on
/// the first match attempt and kept among the [`MATCHERS_KEPT`] most used ones, so an
/// index of 10,000 aliases only pays for the formats commands actually reach, and
/// never for more than that many at once.
#[derive(Debug, Clone)]
pub struct CompiledFormat {
    pub(super) source: Arc<str>,
    /// The matcher built at compile time ([`CompiledFormat::compile_eager`]), kept with
    /// the format instead of in the shared cache.
    pub(super) pinned: Option<Matcher>,
    // What the index needs, as exact-size boxes: 10,000 aliases keep ~15,000 of these.
    // What only matching needs (group names, defaults) lives in the matcher.
    literal_prefix: Literal,
    prefix_word_complete: bool,
    required_literal: Literal,
    /// Prefix and required literal are folded (global `(?i)`).
    case_insensitive: bool,
    literal_len: u32,
}

impl CompiledFormat {
    /// Compile `format` with st2's steps 2 and 3.
    ///
    /// Fails with [`ParseError::InvalidFormat`] exactly where st2 raises `re.error`
    /// (bad placeholder names such as `{{a.b}}` or `{{a=}}`, duplicate names, invalid
    /// Python regex syntax), and additionally when fancy-regex rejects the
    /// translated pattern (e.g. nesting deeper than it supports). Should building
    /// the matcher still fail on first use, matching reports the same variant.
    pub fn compile(format: &str) -> Result<Self, ParseError> {
        with_snippets(|s| Self::compile_with(s, format, false))
    }

    /// [`CompiledFormat::compile`], also building the matcher right away: for a
    /// format that is about to be used (one-shot parsing), this saves translating
    /// it twice.
    pub fn compile_eager(format: &str) -> Result<Self, ParseError> {
        with_snippets(|s| Self::compile_with(s, format, true))
    }

    fn compile_with(s: &Snippets, format: &str, eager: bool) -> Result<Self, ParseError> {
        let invalid = |message: String| ParseError::InvalidFormat {
            format: format.to_string(),
            message,
        };
        let (optional, tokens, pat) = translate(s, format).map_err(invalid)?;
        let (literal_prefix, prefix_word_complete) = py::literal_prefix(&pat);
        let literal_len = py::literal_len(&tokens.seq);
        let required_literal = py::required_literal(&pat);
        let pinned = if eager {
            let regex = build_regex(&py::emit(&pat)).map_err(invalid)?;
            Some(Arc::new(Ok(Built::new(regex, &pat, optional))))
        } else {
            // The matcher is built on first use, and the translated text is not kept
            // (it is the largest part of a compiled format; it is re-derived). The
            // translation is checked there too: Python's syntax was checked above, and a
            // translation fancy-regex refuses (nesting beyond its limits) is reported by
            // the first command that reaches the format, as the same `InvalidFormat`.
            // Checking it here for every format cost a third of loading 10,000 aliases.
            None
        };
        Ok(CompiledFormat {
            source: format.into(),
            pinned,
            required_literal: Literal::new(format, required_literal),
            case_insensitive: pat.flags & py::F_I != 0,
            literal_prefix: Literal::new(format, literal_prefix),
            prefix_word_complete,
            literal_len: u32::try_from(literal_len).unwrap_or(u32::MAX),
        })
    }
}

/// A literal a format's analysis derived: most often a piece of the format's own text
/// (`deploy ` of `deploy {{app}}`), then kept as its place there rather than a copy.
#[derive(Debug, Clone)]
enum Literal {
    /// `source[start..end]`.
    Span(u32, u32),
    /// Not in the text as such (escapes, case folding).
    Owned(Box<str>),
}

impl Literal {
    fn new(source: &str, text: String) -> Literal {
        let span = source.find(text.as_str()).and_then(|start| {
            let start = u32::try_from(start).ok()?;
            let end = u32::try_from(text.len()).ok()?.checked_add(start)?;
            Some(Literal::Span(start, end))
        });
        span.unwrap_or_else(|| Literal::Owned(text.into_boxed_str()))
    }

    fn get<'a>(&'a self, source: &'a str) -> &'a str {
        match self {
            Literal::Span(start, end) => source.get(*start as usize..*end as usize).unwrap_or(""),
            Literal::Owned(text) => text,
        }
    }
}

/// A format's matcher and what reading its matches needs: built together on first use.
#[derive(Debug)]
pub(super) struct Built {
    pub(super) regex: Regex,
    /// (group index, name) of every named group.
    pub(super) named_groups: Box<[(usize, Box<str>)]>,
    /// (name, default) of every `{{name=default}}`, in format order.
    pub(super) optional: Box<[(Box<str>, Box<str>)]>,
}

impl Built {
    pub(super) fn new(regex: Regex, pat: &py::Pattern, optional: OptionalParams) -> Built {
        Built {
            regex,
            named_groups: pat
                .group_names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.as_ref().map(|n| (i + 1, n.as_str().into())))
                .collect(),
            optional: optional
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        }
    }
}

/// (name, default) pairs of the optional placeholders.
pub(super) type OptionalParams = Vec<(String, String)>;

/// st2's steps 2 and 3: the optional placeholders with their defaults, Python's
/// parse of the substituted pattern (what the anchor search inspects), and the
/// parse of the final pattern with the anchors st2 adds.
pub(super) fn translate(
    s: &Snippets,
    format: &str,
) -> Result<(OptionalParams, py::Pattern, py::Pattern), String> {
    // Every snippet below needs a literal `{{`; skip them all when there is none.
    let has_placeholder = format.contains("{{");
    // Step 2: optional placeholders and their defaults (findall, DOTALL).
    let mut optional = Vec::new();
    let scan = if has_placeholder { format } else { "" };
    for c in s.optional.captures_iter(scan) {
        let c = c.map_err(|e| e.to_string())?;
        let key = c.get(1).map(|m| m.as_str()).unwrap_or("").to_string();
        let mut default = String::new();
        for g in 2..=5 {
            if let Some(m) = c.get(g) {
                default.push_str(m.as_str());
            }
        }
        optional.push((key, default));
    }
    // Step 3: textual substitution into a Python pattern.
    let reg = sub_all(&s.optional_sub, format, |c| {
        let ws = c.get(1).map(|m| m.as_str()).unwrap_or("");
        let key = c.get(2).map(|m| m.as_str()).unwrap_or("");
        format!("(?:{})?", param_match(ws, key))
    })?;
    let reg = sub_all(&s.required_sub, &reg, |c| {
        let ws = c.get(1).map(|m| m.as_str()).unwrap_or("");
        let key = c.get(2).map(|m| m.as_str()).unwrap_or("");
        param_match(ws, key)
    })?;
    // Anchor decision on Python's parse of the substituted pattern.
    let tokens = py::parse(&reg, py::F_S)?;
    let mut full = String::with_capacity(reg.len() + 8);
    if !py::search_anchor(&tokens.seq, &[py::At::Beginning, py::At::BeginningString]) {
        full.push_str(r"^\s*");
    }
    full.push_str(&reg);
    if !py::search_anchor(&tokens.seq, &[py::At::End, py::At::EndString]) {
        full.push_str(r"\s*$");
    }
    let pat = py::parse(&full, py::F_S)?;
    Ok((optional, tokens, pat))
}

impl CompiledFormat {
    /// The format string as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A literal prefix that the command must start with (after its leading
    /// whitespace) for any match; empty when none can be derived safely (no anchor
    /// at the start, a placeholder or regex construct first, multiline mode, …).
    /// For a globally case-insensitive format it is ASCII-only and case-folded, to
    /// be compared with [`PreparedCommand::folded_trimmed`].
    pub fn literal_prefix(&self) -> &str {
        self.literal_prefix.get(&self.source)
    }

    /// Hash key for the alias index, when the literal prefix allows one: the prefix
    /// up to and including its last whitespace character (`"get pods "` for
    /// `get pods {{x}}`), or, for a prefix without whitespace that is known to be a
    /// complete first word (`status`, `status {{x=1}}`), that word. A command can
    /// only match if one of its [`PreparedCommand::index_keys`] equals this key.
    pub fn index_key(&self) -> Option<&str> {
        let p = self.literal_prefix();
        match p.char_indices().rfind(|(_, c)| is_py_space(*c)) {
            Some((i, c)) => Some(&p[..i + c.len_utf8()]),
            None if self.prefix_word_complete && !p.is_empty() => Some(p),
            None => None,
        }
    }

    /// The longest run of literal characters every match must contain (folded for
    /// case-insensitive formats; may be empty).
    pub fn required_literal(&self) -> &str {
        self.required_literal.get(&self.source)
    }

    /// The longest word of [`Self::required_literal`] that has whitespace on both
    /// sides inside it: any matching command has this word as one of its
    /// whitespace-separated tokens ([`PreparedCommand::tokens`]). Used to index
    /// formats that have no literal prefix (e.g. `{{who}} cross the {{what}}`).
    pub fn required_token(&self) -> Option<&str> {
        let lit = self.required_literal();
        let mut best: Option<&str> = None;
        let mut start: Option<usize> = None;
        for (i, c) in lit.char_indices() {
            if is_py_space(c) {
                if let Some(st) = start.filter(|&st| st < i) {
                    let w = &lit[st..i];
                    if best.is_none_or(|b| w.len() > b.len()) {
                        best = Some(w);
                    }
                }
                start = Some(i + c.len_utf8());
            }
        }
        best
    }

    /// Cheap necessary condition for a match: the command starts with the literal
    /// prefix and contains the required literal. `false` means the regex cannot
    /// match; `true` means it has to be run.
    pub fn may_match(&self, cmd: &PreparedCommand) -> bool {
        let (stream, trimmed) = if self.case_insensitive {
            (cmd.folded.as_str(), cmd.folded_trimmed())
        } else {
            (cmd.stream.as_str(), cmd.trimmed())
        };
        trimmed.starts_with(self.literal_prefix()) && stream.contains(self.required_literal())
    }

    /// Whether [`Self::literal_prefix`], [`Self::required_literal`] and
    /// [`Self::index_key`] are case-folded (the format is globally case-insensitive);
    /// such keys must be looked up with [`PreparedCommand::folded_index_keys`].
    pub fn is_case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    /// Number of literal characters every match of the format consumes; the
    /// tie-break for "most specific format wins".
    pub fn literal_len(&self) -> usize {
        self.literal_len as usize
    }

    /// The fancy-regex pattern this format is translated to (for diagnostics;
    /// recomputed on each call).
    pub fn translated(&self) -> Result<String, ParseError> {
        with_snippets(|s| translate(s, &self.source))
            .map(|(_, _, pat)| py::emit(&pat))
            .map_err(|message| ParseError::InvalidFormat {
                format: self.source.to_string(),
                message,
            })
    }
}
