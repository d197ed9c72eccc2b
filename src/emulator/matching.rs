//! st2's alias matching, ported for the emulator from st2's Python — independent of
//! the bridge's own matcher (`crate::alias`), so that an integration test catches a
//! matching bug in either.
//!
//! * [`extract_parameters`] is `ActionAliasFormatParser`
//!   (`st2common/models/utils/action_alias_utils.py`): the trailing `key=value` pairs
//!   found with its `ending` regex and cut from the command with a **global**
//!   `str.replace`, one space added at each end, `{{k=default}}` collected with
//!   `re.findall` (DOTALL) and both placeholder kinds substituted with `re.sub` (no
//!   DOTALL), `^\s*`/`\s*$` added unless `search_regex_tokens` finds an anchor, then
//!   `search` (or `finditer` for `match_multiple`), `groupdict()`, defaults for empty
//!   optionals, the pairs on top, and "No value supplied and no default value found.".
//! * [`list_format_strings`] is `list_format_strings_from_aliases` with
//!   `normalise_alias_format_string`, and [`get_matching_alias`] is
//!   `get_matching_alias` with `match_command_to_alias`
//!   (`st2common/util/actionalias_matching.py`): two passes, no ranking, "matched more
//!   than 1 pattern" even within one alias.

use std::sync::{Arc, OnceLock};

use fancy_regex::{Captures, Regex};
use serde_json::{Map, Value};

use super::aliases::{Alias, AliasSet};
use super::pyre::{self, PyReError, Token};

/// Why a command does not parse against a format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// `ParseException`: `Command "<cmd>" doesn't match format string "<format>"`.
    NoMatch { command: String, format: String },
    /// `ParseException`: `No value supplied and no default value found.`
    NoValue,
    /// `re.error` (or another exception st2 does not catch): HTTP 500.
    Regex(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NoMatch { command, format } => write!(
                f,
                "Command \"{command}\" doesn't match format string \"{format}\""
            ),
            ParseError::NoValue => f.write_str("No value supplied and no default value found."),
            ParseError::Regex(e) => write!(f, "regex error: {e}"),
        }
    }
}

impl From<PyReError> for ParseError {
    fn from(e: PyReError) -> Self {
        ParseError::Regex(e.0)
    }
}

/// Extracted parameters, in `groupdict()` order then pair order; an unmatched group is
/// `null`, everything else a string.
pub(crate) type Params = Map<String, Value>;

// The snippets of `generate_snippets`, as Python patterns.
const KEY: &str = r"\s*(\S+?)\s*";
const VALUE: &str = r#"""|\'\'|"(.+?)"|\'(.+?)\'|({.+?})|(\S+)"#;
const EXT_VALUE: &str = r#"""|\'\'|"(.+?)"|\'(.+?)\'|({.+?})|(.+?)"#;
/// What each placeholder becomes (`\1`: the whitespace before it, `\2`: its key).
const PARAM_MATCH: &str = r#"\1["\']?(?P<\2>(?:(?<=\').+?(?=\')|(?<=").+?(?=")|{.+?}|.+?))["\']?"#;

fn pairs_snippet() -> String {
    format!(r"(?:^|\s+){KEY}=({VALUE})")
}

fn optional_snippet() -> String {
    let default = format!(r"\s*=\s*(?:{EXT_VALUE})\s*");
    format!("{{{{{KEY}{default}}}}}")
}

fn required_snippet() -> String {
    format!("{{{{{KEY}}}}}")
}

struct Snippets {
    /// `re.match(ending, stream, re.DOTALL)`.
    ending: Regex,
    /// `re.findall(pairs, ..., re.DOTALL)`.
    pairs: Regex,
    /// `re.findall(optional, format, re.DOTALL)`.
    optional: Regex,
    /// `re.sub(r"(\s*)" + optional, ...)` (no flags).
    optional_sub: Regex,
    /// `re.sub(r"(\s*)" + required, ...)` (no flags).
    required_sub: Regex,
}

fn snippets() -> Result<&'static Snippets, ParseError> {
    static SNIPPETS: OnceLock<Result<Snippets, PyReError>> = OnceLock::new();
    let built = SNIPPETS.get_or_init(|| {
        let ending = format!(r".*?(({}\s*)*)$", pairs_snippet());
        Ok(Snippets {
            // re.match anchors at the start.
            ending: pyre::compile(&format!(r"\A(?:{ending})"), "s")?,
            pairs: pyre::compile(&pairs_snippet(), "s")?,
            optional: pyre::compile(&optional_snippet(), "s")?,
            optional_sub: pyre::compile(&format!(r"(\s*){}", optional_snippet()), "")?,
            required_sub: pyre::compile(&format!(r"(\s*){}", required_snippet()), "")?,
        })
    });
    built.as_ref().map_err(|e| ParseError::Regex(e.0.clone()))
}

fn group<'t>(caps: &Captures<'t, str>, i: usize) -> &'t str {
    caps.get(i).map_or("", |m| m.as_str())
}

/// Python's `str.strip()` emptiness test.
fn py_blank(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// `re.sub(regex, template, text)` for a template using `\1` and `\2` only (other
/// backslashes stay: Python keeps unknown non-letter escapes such as `\'`).
fn py_sub(regex: &Regex, template: &str, text: &str) -> Result<String, ParseError> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut last = 0;
    for caps in regex.captures_iter(text) {
        let caps = caps.map_err(|e| ParseError::Regex(e.to_string()))?;
        let Some(whole) = caps.get(0) else { continue };
        out.push_str(&text[last..whole.start()]);
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    chars.next();
                    out.push_str(group(&caps, d as usize));
                    continue;
                }
            }
            out.push(c);
        }
        last = whole.end();
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// One `ActionAliasFormatParser(format, command)`.
struct FormatParser {
    format: String,
    original: String,
    /// The command without its trailing pairs, padded with a space at each end.
    stream: String,
    kv_pairs: Vec<(String, String)>,
    optional: Vec<(String, String)>,
    regex: Regex,
}

impl FormatParser {
    fn new(format: &str, command: &str) -> Result<FormatParser, ParseError> {
        let s = snippets()?;
        // 1. Trailing key=value pairs, cut with a global replace.
        let mut kv_pairs = Vec::new();
        let mut stream = command.to_string();
        let ending = s
            .ending
            .captures(command)
            .map_err(|e| ParseError::Regex(e.to_string()))?;
        if let Some(run) = ending.as_ref().and_then(|c| c.get(1)).map(|m| m.as_str()) {
            if !run.is_empty() {
                for caps in s.pairs.captures_iter(run) {
                    let caps = caps.map_err(|e| ParseError::Regex(e.to_string()))?;
                    let value: String = (3..=6).map(|i| group(&caps, i)).collect();
                    kv_pairs.push((group(&caps, 1).to_string(), value));
                }
                stream = stream.replace(run, "");
            }
        }
        let stream = format!(" {stream} ");
        // 2. Optional parameters and their defaults.
        let mut optional = Vec::new();
        for caps in s.optional.captures_iter(format) {
            let caps = caps.map_err(|e| ParseError::Regex(e.to_string()))?;
            let default: String = (2..=5).map(|i| group(&caps, i)).collect();
            optional.push((group(&caps, 1).to_string(), default));
        }
        // 3. The format as a regex.
        let reg = py_sub(&s.optional_sub, &format!("(?:{PARAM_MATCH})?"), format)?;
        let mut reg = py_sub(&s.required_sub, PARAM_MATCH, &reg)?;
        let tokens = pyre::parse(&reg, "s")?.tokens;
        if !pyre::search_regex_tokens(&[Token::AtBeginning, Token::AtBeginningString], &tokens) {
            reg = format!(r"^\s*{reg}");
        }
        if !pyre::search_regex_tokens(&[Token::AtEnd, Token::AtEndString], &tokens) {
            reg.push_str(r"\s*$");
        }
        let regex = pyre::compile(&reg, "s")?;
        Ok(FormatParser {
            format: format.to_string(),
            original: command.to_string(),
            stream,
            kv_pairs,
            optional,
            regex,
        })
    }

    /// 5. `match_params_in_stream`.
    fn params(&self, caps: &Captures<'_, str>) -> Result<Params, ParseError> {
        let mut result = Params::new();
        for (i, name) in self.regex.capture_names().enumerate() {
            if let Some(name) = name {
                let v = caps
                    .get(i)
                    .map_or(Value::Null, |m| Value::String(m.as_str().to_string()));
                result.insert(name.to_string(), v);
            }
        }
        for (key, default) in &self.optional {
            // `result[param[0]]`: a key the substitution did not make is a KeyError.
            let Some(matched) = result.get(key) else {
                return Err(ParseError::Regex(format!("KeyError: {key:?}")));
            };
            let value = match matched {
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => default.clone(),
            };
            result.insert(key.clone(), Value::String(value));
        }
        for (key, value) in &self.kv_pairs {
            result.insert(key.clone(), Value::String(value.clone()));
        }
        let any_value = result
            .values()
            .any(|v| v.as_str().is_some_and(|s| !s.is_empty()));
        if !self.format.is_empty() && py_blank(&self.stream) && !any_value {
            return Err(ParseError::NoValue);
        }
        Ok(result)
    }

    fn no_match(&self) -> ParseError {
        ParseError::NoMatch {
            command: self.original.clone(),
            format: self.format.clone(),
        }
    }

    /// `get_extracted_param_value`: `search`.
    fn extract(&self) -> Result<Params, ParseError> {
        let caps = self
            .regex
            .captures(self.stream.as_str())
            .map_err(|e| ParseError::Regex(e.to_string()))?;
        match caps {
            Some(c) => self.params(&c),
            None => Err(self.no_match()),
        }
    }

    /// `get_multiple_extracted_param_value`: `finditer` (no match: an empty list).
    fn extract_multiple(&self) -> Result<Vec<Params>, ParseError> {
        let mut out = Vec::new();
        for caps in py_finditer(&self.regex, self.stream.as_str())? {
            out.push(self.params(&caps)?);
        }
        Ok(out)
    }
}

/// `pattern.finditer(text)` as CPython 3.7+ runs it (st2's
/// `get_multiple_extracted_param_value`, `st2common/models/utils/action_alias_utils.py`
/// line 208 in v3.9.0, calls `self._regex.finditer`): each search starts where the last
/// match ended, and an empty match *is* reported right after a non-empty one (`sre`'s
/// scanner, `Modules/_sre/sre.c`, "empty matches adjacent to a previous non-empty match
/// are allowed" since 3.7); only after an empty match must the next one not be empty at
/// the same position (`must_advance`). fancy-regex's own iterator skips that adjacent
/// empty match, so a format that can match nothing (an empty alternative: `a |`) gave
/// one parameter set fewer than st2.
///
/// Not modelled: where `sre` backtracks at that position into a *non-empty* alternative
/// the pattern ranks below an empty one, this looks on from the next character instead.
fn py_finditer<'t>(regex: &Regex, text: &'t str) -> Result<Vec<Captures<'t, str>>, ParseError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut must_advance = false;
    while pos <= text.len() {
        let found = regex
            .captures_from_pos(text, pos)
            .map_err(|e| ParseError::Regex(e.to_string()))?;
        let Some(caps) = found else { break };
        let Some(whole) = caps.get(0) else { break };
        let (start, end) = (whole.start(), whole.end());
        if must_advance && start == pos && end == pos {
            match text[pos..].chars().next() {
                Some(c) => {
                    pos += c.len_utf8();
                    must_advance = false;
                    continue;
                }
                None => break,
            }
        }
        must_advance = start == end;
        pos = end;
        out.push(caps);
    }
    Ok(out)
}

/// `extract_parameters(format_str, param_stream, match_multiple)`: one parameter set,
/// or (with `match_multiple`) one per match.
pub(crate) fn extract_parameters(
    format: &str,
    command: &str,
    match_multiple: bool,
) -> Result<Vec<Params>, ParseError> {
    let parser = FormatParser::new(format, command)?;
    if match_multiple {
        parser.extract_multiple()
    } else {
        parser.extract().map(|p| vec![p])
    }
}

/// One pattern of `list_format_strings_from_aliases`.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    pub alias: Arc<Alias>,
    pub display: Option<String>,
    pub representation: String,
    /// The `match_multiple` key; `None` for the `""` pattern of a display-only format,
    /// which st2 builds without that key (`match_and_execute` then fails with a
    /// `KeyError`: HTTP 500).
    pub match_multiple: Option<bool>,
}

/// `normalise_alias_format_string`: `(display, representations, match_multiple)`.
fn normalise(format: &Value) -> (Option<String>, Vec<String>, bool) {
    match format {
        Value::String(s) => (Some(s.clone()), vec![s.clone()], false),
        Value::Object(o) => {
            let display = o.get("display").and_then(Value::as_str).map(str::to_owned);
            let reps = match o.get("representation") {
                Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            let multiple = o.get("match_multiple").is_some_and(super::util::py_truthy);
            (display, reps, multiple)
        }
        _ => (None, Vec::new(), false),
    }
}

/// `list_format_strings_from_aliases`.
pub(crate) fn list_format_strings(aliases: &[Arc<Alias>]) -> Vec<Pattern> {
    let mut patterns = Vec::new();
    for alias in aliases {
        for f in &alias.formats {
            let (display, reps, multiple) = normalise(f);
            if display.as_deref().is_some_and(|d| !d.is_empty()) && reps.is_empty() {
                patterns.push(Pattern {
                    alias: alias.clone(),
                    display,
                    representation: String::new(),
                    match_multiple: None,
                });
            } else {
                for r in reps {
                    patterns.push(Pattern {
                        alias: alias.clone(),
                        display: display.clone(),
                        representation: r,
                        match_multiple: Some(multiple),
                    });
                }
            }
        }
    }
    patterns
}

/// `match_command_to_alias`: every pattern of every alias the command parses against
/// (a `ParseException` skips the pattern; a regex error is raised).
pub(crate) fn match_command_to_alias(
    command: &str,
    aliases: &[Arc<Alias>],
) -> Result<Vec<Pattern>, String> {
    let mut results = Vec::new();
    for alias in aliases {
        for p in list_format_strings(std::slice::from_ref(alias)) {
            match extract_parameters(&p.representation, command, false) {
                Ok(_) => results.push(p),
                Err(ParseError::Regex(e)) => return Err(e),
                Err(_) => {}
            }
        }
    }
    Ok(results)
}

/// Why `get_matching_alias` found no single pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MatchError {
    /// `ActionAliasAmbiguityException` (HTTP 400) with its message.
    Ambiguous(String),
    /// An exception st2 does not catch (HTTP 500).
    Internal(String),
}

/// Whether a format item is what MongoDB finds with `formats__match_multiple=None` or
/// `=False`: a string (no such field), or an object whose `match_multiple` is
/// missing, `null` or `false`.
fn single_pass_format(f: &Value) -> bool {
    match f {
        Value::Object(o) => matches!(
            o.get("match_multiple"),
            None | Some(Value::Null) | Some(Value::Bool(false))
        ),
        _ => true,
    }
}

/// `get_matching_alias`: pass 1 over enabled aliases with a format not marked
/// `match_multiple: true`, pass 2 over enabled aliases with one that is; each pass
/// tests **all** formats of its aliases.
pub(crate) fn get_matching_alias(set: &AliasSet, command: &str) -> Result<Pattern, MatchError> {
    let pass1: Vec<Arc<Alias>> = set
        .db
        .iter()
        .filter(|a| a.enabled && a.formats.iter().any(single_pass_format))
        .cloned()
        .collect();
    let mut matches = match_command_to_alias(command, &pass1).map_err(MatchError::Internal)?;
    if matches.len() > 1 {
        return Err(MatchError::Ambiguous(format!(
            "Command '{command}' matched more than 1 pattern"
        )));
    }
    if matches.is_empty() {
        let pass2: Vec<Arc<Alias>> = set
            .db
            .iter()
            .filter(|a| {
                a.enabled
                    && a.formats
                        .iter()
                        .any(|f| f.get("match_multiple") == Some(&Value::Bool(true)))
            })
            .cloned()
            .collect();
        matches = match_command_to_alias(command, &pass2).map_err(MatchError::Internal)?;
        if matches.len() > 1 {
            return Err(MatchError::Ambiguous(format!(
                "Command '{command}' matched more than 1 (multi) pattern"
            )));
        }
        if matches.is_empty() {
            return Err(MatchError::Ambiguous(format!(
                "Command '{command}' matched no patterns"
            )));
        }
    }
    matches
        .into_iter()
        .next()
        .ok_or_else(|| MatchError::Internal("no match".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(format: &str, command: &str) -> Result<Params, ParseError> {
        extract_parameters(format, command, false).map(|mut v| v.remove(0))
    }

    /// Expected values from st2's `ActionAliasFormatParser` on CPython 3.11.
    #[test]
    fn finditer_reports_an_empty_match_right_after_a_non_empty_one() {
        let all = extract_parameters("{{i='it'}} |", r#"{"k": "v"} |"#, true).unwrap();
        let values: Vec<&Value> = all.iter().map(|p| &p["i"]).collect();
        assert_eq!(values, [r#"{"k": "v"}"#, "it", "it"]);
        assert_eq!(extract_parameters("|", "|", true).unwrap().len(), 3);
    }

    #[test]
    fn word_characters_are_pythons() {
        assert!(matches!(
            one(r"tag (?P<t>\w+)", "tag cafe\u{301}"),
            Err(ParseError::NoMatch { .. })
        ));
        assert_eq!(
            one(r"tag (?P<t>\w+)\W*", "tag cafe\u{301}").unwrap()["t"],
            "cafe"
        );
        assert_eq!(
            one(r"say (?P<w>.+?)\b.*", "say cafe\u{301}s").unwrap()["w"],
            "cafe"
        );
        let p = one(r"say (?P<w>[\w]+)(?P<rest>\B.*)", "say ab\u{301}c").unwrap();
        assert_eq!(
            (&p["w"], &p["rest"]),
            (&json_str("a"), &json_str("b\u{301}c "))
        );
        assert_eq!(one(r"tag (?P<t>\w+)", "tag café").unwrap()["t"], "café");
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}
