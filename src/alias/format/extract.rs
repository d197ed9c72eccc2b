//! Steps 4 and 5, matching: a [`CompiledFormat`] against a [`PreparedCommand`].
//!
//! `search` / `finditer` with the format's matcher, then defaults, then the
//! command's pair overrides, then the "No value supplied" check, in st2's order;
//! and [`extract_parameters`], st2's one-shot entry point. The matchers
//! themselves are built on first use and kept in one shared, bounded cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use super::chars::py_trim;
use super::command::{prepare, PreparedCommand};
use super::compile::{translate, Built, CompiledFormat};
use super::python_regex::{self as py, build_regex};
use super::snippets::with_snippets;
use super::ParseError;

/// How many formats keep their matcher built at once, shared by every index and reload.
/// A fancy-regex costs ~27 KB (the `memory` bench: 256 kept were 6.5 MiB of the 30 MiB a
/// process with 10,000 aliases may use), so keeping one per format used grew to hundreds
/// of MiB with thousands of aliases in use; rebuilding an evicted one costs ~50 µs, far
/// inside the 1 ms a command may take.
pub const MATCHERS_KEPT: u64 = 64;

/// A format's matcher, or why fancy-regex refused the translation.
pub(super) type Matcher = Arc<Result<Built, String>>;

/// The built matchers, by format text (equal texts share one), least used evicted first.
fn matchers() -> &'static moka::sync::Cache<Arc<str>, Matcher> {
    static CACHE: OnceLock<moka::sync::Cache<Arc<str>, Matcher>> = OnceLock::new();
    CACHE.get_or_init(|| moka::sync::Cache::new(MATCHERS_KEPT))
}

/// One match of a `match_multiple` format: its parameters and the text it matched.
pub type MatchWithText = (BTreeMap<String, String>, String);

impl CompiledFormat {
    /// Runs `f` with this format's matcher: the pinned one, else the shared cache's,
    /// built (and cached) when missing.
    fn with_regex<R>(
        &self,
        f: impl FnOnce(&Built) -> Result<R, ParseError>,
    ) -> Result<R, ParseError> {
        let matcher = match &self.pinned {
            Some(m) => m.clone(),
            None => matchers().get_with(self.source.clone(), || {
                Arc::new(with_snippets(|s| translate(s, &self.source)).and_then(
                    |(optional, _, pat)| {
                        let regex = build_regex(&py::emit(&pat))?;
                        Ok(Built::new(regex, &pat, optional))
                    },
                ))
            }),
        };
        match matcher.as_ref() {
            Ok(built) => f(built),
            Err(message) => Err(ParseError::InvalidFormat {
                format: self.source.to_string(),
                message: message.clone(),
            }),
        }
    }

    fn runtime(&self, cmd: &PreparedCommand, message: String) -> ParseError {
        ParseError::Runtime {
            command: cmd.original.clone(),
            format: self.source.to_string(),
            message,
        }
    }

    /// Step 5 for one regex match.
    fn assemble(
        &self,
        built: &Built,
        cmd: &PreparedCommand,
        caps: &fancy_regex::Captures<str>,
    ) -> Result<BTreeMap<String, String>, ParseError> {
        let mut result: HashMap<&str, Option<String>> = HashMap::new();
        for (idx, name) in &built.named_groups {
            result.insert(name, caps.get(*idx).map(|m| m.as_str().to_string()));
        }
        for (key, default) in &built.optional {
            let matched = result.get(&**key).cloned().flatten();
            let value = match matched {
                Some(v) if !v.is_empty() => v,
                _ => default.to_string(),
            };
            result.insert(key, Some(value));
        }
        for (key, value) in &cmd.pairs {
            result.insert(key.as_str(), Some(value.clone()));
        }
        if !self.source.is_empty()
            && py_trim(&cmd.stream).is_empty()
            && result
                .values()
                .all(|v| v.as_deref().unwrap_or("").is_empty())
        {
            return Err(ParseError::NoValue);
        }
        Ok(result
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect())
    }

    /// st2's `get_extracted_param_value`: `search` once, then defaults and pairs.
    pub fn extract(&self, cmd: &PreparedCommand) -> Result<BTreeMap<String, String>, ParseError> {
        if let Some(e) = &cmd.runtime_error {
            return Err(self.runtime(cmd, e.clone()));
        }
        self.with_regex(|built| match built.regex.captures(cmd.stream.as_str()) {
            Ok(Some(caps)) => self.assemble(built, cmd, &caps),
            Ok(None) => Err(ParseError::NoMatch {
                command: cmd.original.clone(),
                format: self.source.to_string(),
            }),
            Err(e) => Err(self.runtime(cmd, e.to_string())),
        })
    }

    /// Whether the format matches (st2's test in `match_command_to_alias`: the
    /// extraction raises no `ParseException`).
    pub fn is_match(&self, cmd: &PreparedCommand) -> Result<bool, ParseError> {
        match self.extract(cmd) {
            Ok(_) => Ok(true),
            Err(ParseError::NoMatch { .. }) | Err(ParseError::NoValue) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// st2's `get_multiple_extracted_param_value` (`match_multiple`): one dict per
    /// non-overlapping match, in order. No match gives an empty list, not an error,
    /// as in st2.
    pub fn extract_all(
        &self,
        cmd: &PreparedCommand,
    ) -> Result<Vec<BTreeMap<String, String>>, ParseError> {
        Ok(self
            .extract_all_with_text(cmd)?
            .into_iter()
            .map(|(params, _)| params)
            .collect())
    }

    /// [`CompiledFormat::extract_all`], each match with the text it matched (in the
    /// prepared stream: the command without its trailing `key=value` pairs).
    pub fn extract_all_with_text(
        &self,
        cmd: &PreparedCommand,
    ) -> Result<Vec<MatchWithText>, ParseError> {
        if let Some(e) = &cmd.runtime_error {
            return Err(self.runtime(cmd, e.clone()));
        }
        self.with_regex(|built| {
            let text = cmd.stream.as_str();
            let mut out = Vec::new();
            let mut pos = 0usize;
            let mut last_empty_at: Option<usize> = None;
            while pos <= text.len() {
                let caps = match built.regex.captures_from_pos(text, pos) {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => return Err(self.runtime(cmd, e.to_string())),
                };
                let Some(m) = caps.get(0) else { break };
                let (start, end) = (m.start(), m.end());
                if start == end && last_empty_at == Some(start) {
                    // Python forbids a second empty match at the same position: retry
                    // one character further on.
                    match text[pos..].chars().next() {
                        Some(ch) => {
                            pos += ch.len_utf8();
                            last_empty_at = None;
                            continue;
                        }
                        None => break,
                    }
                }
                out.push((
                    self.assemble(built, cmd, &caps)?,
                    text[start..end].to_owned(),
                ));
                if start == end {
                    last_empty_at = Some(end);
                } else {
                    last_empty_at = None;
                }
                pos = end;
            }
            Ok(out)
        })
    }
}

/// st2's `extract_parameters(format_str, param_stream, match_multiple)`.
///
/// Returns one map normally, one per match with `match_multiple` (possibly none: st2
/// returns an empty list rather than an error when nothing matches in that mode).
/// Values are strings; groups that did not participate are omitted (see the module
/// docs).
pub fn extract_parameters(
    format: &str,
    command: &str,
    match_multiple: bool,
) -> Result<Vec<BTreeMap<String, String>>, ParseError> {
    let f = CompiledFormat::compile_eager(format)?;
    let p = prepare(command);
    if match_multiple {
        f.extract_all(&p)
    } else {
        f.extract(&p).map(|m| vec![m])
    }
}
