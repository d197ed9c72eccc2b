//! Step 1, the command: [`PreparedCommand`] and [`prepare`].
//!
//! st2 cuts the trailing `key=value` pairs off the command before matching any
//! format. That depends only on the command, so it is done once here and the
//! result is matched against every candidate format; the prepared command also
//! carries the keys and tokens the alias index's prefilter looks up.

use super::chars::{fold_char, is_py_space};
use super::snippets::{with_snippets, Snippets};
#[cfg(doc)]
use super::CompiledFormat;

/// A command after st2's format-independent step 1, computed once and matched
/// against any number of formats.
///
/// Holds the trailing `key=value` pairs (in order), the remaining text with st2's
/// global-replace quirk applied and one space padded at each end, and the first word
/// of that text (used by the alias index's prefilter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCommand {
    pub(super) original: String,
    pub(super) stream: String,
    /// `stream` with [`fold_char`] applied (prefilter of case-insensitive formats).
    pub(super) folded: String,
    pub(super) pairs: Vec<(String, String)>,
    /// The trailing run of pairs as it was written (empty when there is none).
    pairs_text: String,
    pub(super) runtime_error: Option<String>,
}

fn keys_of(t: &str, max_spaces: usize) -> impl Iterator<Item = &str> + '_ {
    let first = match t.find(is_py_space) {
        Some(i) => &t[..i],
        None => t,
    };
    std::iter::once(first).chain(
        t.char_indices()
            .filter(|(_, c)| is_py_space(*c))
            .take(max_spaces)
            .map(move |(i, c)| &t[..i + c.len_utf8()]),
    )
}

/// Run st2's step 1 on `command`: find the longest trailing run of `key=value`
/// tokens, collect the pairs, delete that run **everywhere** in the command (st2 uses
/// `str.replace`, so an identical earlier substring disappears too), and pad one space
/// at each end.
pub fn prepare(command: &str) -> PreparedCommand {
    with_snippets(|s| prepare_with(s, command))
}

fn prepare_with(s: &Snippets, command: &str) -> PreparedCommand {
    let mut pairs = Vec::new();
    let mut stream = command.to_string();
    let mut pairs_text = String::new();
    let mut runtime_error = None;
    // A pair needs an `=`; without one the trailing run is empty (fast path).
    let ending = if command.contains('=') {
        s.ending.captures(command)
    } else {
        Ok(None)
    };
    match ending {
        Ok(Some(caps)) => {
            if let Some(run) = caps.get(1).filter(|m| !m.as_str().is_empty()) {
                let run = run.as_str();
                pairs_text = run.to_string();
                for c in s.pairs.captures_iter(run) {
                    match c {
                        Ok(c) => {
                            let key = c.get(1).map(|m| m.as_str()).unwrap_or("");
                            let mut value = String::new();
                            for g in 3..=6 {
                                if let Some(m) = c.get(g) {
                                    value.push_str(m.as_str());
                                }
                            }
                            pairs.push((key.to_string(), value));
                        }
                        Err(e) => {
                            runtime_error = Some(e.to_string());
                            break;
                        }
                    }
                }
                stream = command.replace(run, "");
            }
        }
        Ok(None) => {}
        Err(e) => runtime_error = Some(e.to_string()),
    }
    let stream = format!(" {stream} ");
    PreparedCommand {
        original: command.to_string(),
        folded: stream.chars().map(fold_char).collect(),
        stream,
        pairs,
        pairs_text,
        runtime_error,
    }
}

impl PreparedCommand {
    /// The command exactly as given.
    pub fn original(&self) -> &str {
        &self.original
    }

    /// The text formats are matched against: pairs removed, one space each end.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The trailing run of `key=value` pairs exactly as written (empty when none).
    pub fn pairs_text(&self) -> &str {
        &self.pairs_text
    }

    /// The trailing `key=value` pairs, in command order (later duplicates win).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The stream without leading whitespace (Python's definition). Any format with
    /// a non-empty [`CompiledFormat::literal_prefix`] can only match when this starts
    /// with that prefix.
    pub fn trimmed(&self) -> &str {
        self.stream.trim_start_matches(is_py_space)
    }

    /// Lookup keys for [`CompiledFormat::index_key`]: the first word, then every
    /// prefix of [`Self::trimmed`] that ends with one of its first `max_spaces`
    /// whitespace characters.
    pub fn index_keys(&self, max_spaces: usize) -> impl Iterator<Item = &str> + '_ {
        keys_of(self.trimmed(), max_spaces)
    }

    /// [`Self::index_keys`] of the case-folded text, for case-insensitive formats.
    pub fn folded_index_keys(&self, max_spaces: usize) -> impl Iterator<Item = &str> + '_ {
        keys_of(self.folded_trimmed(), max_spaces)
    }

    /// Whitespace-separated tokens of the stream (case-folded when `folded`).
    pub fn tokens(&self, folded: bool) -> impl Iterator<Item = &str> + '_ {
        let s = if folded { &self.folded } else { &self.stream };
        s.split(is_py_space).filter(|t| !t.is_empty())
    }

    /// The case-folded stream without leading whitespace.
    pub fn folded_trimmed(&self) -> &str {
        self.folded.trim_start_matches(is_py_space)
    }

    /// The first whitespace-delimited word of [`Self::trimmed`] (may be empty).
    pub fn first_word(&self) -> &str {
        let t = self.trimmed();
        match t.find(is_py_space) {
            Some(i) => &t[..i],
            None => t,
        }
    }
}
