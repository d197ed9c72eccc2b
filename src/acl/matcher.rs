//! Precompiled glob matchers: one [`GlobSet`] per list, so a decision costs a handful of
//! set lookups and no allocation (except lower-casing a display name that has capitals).

use std::borrow::Cow;

use globset::{Candidate, Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

/// Characters that make a pattern a glob rather than a literal.
pub(super) fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// Builds one glob with the module's options. Names are lower-cased by the caller's
/// choice (`fold`), because globset's own case folding is ASCII-only.
fn build(pattern: &str, fold: bool) -> Result<Glob, globset::Error> {
    let folded;
    let pattern = if fold {
        folded = pattern.to_lowercase();
        folded.as_str()
    } else {
        pattern
    };
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(false)
        .build()
}

/// Checks that `pattern` is a valid glob; the error says why not.
pub(super) fn check_glob(pattern: &str, fold: bool) -> Result<(), String> {
    build(pattern, fold)
        .map(|_| ())
        .map_err(|e| e.kind().to_string())
}

/// Compiles one glob into a matcher (used for validation).
pub(super) fn compile_one(pattern: &str, fold: bool) -> Result<GlobMatcher, String> {
    build(pattern, fold)
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

/// Lower-cases `s` for matching against folded patterns, borrowing when already lower.
pub(super) fn fold(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// A set of globs on one value, matched as a whole.
#[derive(Debug, Clone)]
pub(super) struct PatternSet {
    set: GlobSet,
}

impl PatternSet {
    /// Compiles `patterns` (already checked one by one).
    pub(super) fn new<'a>(
        patterns: impl IntoIterator<Item = &'a str>,
        fold: bool,
    ) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            builder.add(build(p, fold).map_err(|e| e.kind().to_string())?);
        }
        builder
            .build()
            .map(|set| PatternSet { set })
            .map_err(|e| e.kind().to_string())
    }

    /// Whether any pattern matches the whole of `value`.
    pub(super) fn is_match(&self, value: &str) -> bool {
        self.set
            .is_match_candidate(&Candidate::from_bytes(value.as_bytes()))
    }
}

/// How a connection glob is matched: literally when it has no wildcard.
#[derive(Debug, Clone)]
enum ConnMatch {
    Any,
    Exact(String),
    Glob(Box<GlobMatcher>),
}

impl ConnMatch {
    fn new(pattern: &str) -> Result<Self, String> {
        Ok(if pattern == "*" {
            ConnMatch::Any
        } else if !is_glob(pattern) {
            ConnMatch::Exact(pattern.to_owned())
        } else {
            ConnMatch::Glob(Box::new(compile_one(pattern, false)?))
        })
    }

    fn is_match(&self, connection: &str) -> bool {
        match self {
            ConnMatch::Any => true,
            ConnMatch::Exact(c) => c == connection,
            ConnMatch::Glob(g) => {
                g.is_match_candidate(&Candidate::from_bytes(connection.as_bytes()))
            }
        }
    }
}

/// `<connection glob>:<value glob>` pairs, grouped by connection glob so that each
/// connection pattern is tested once and its values with one set lookup.
#[derive(Debug, Clone, Default)]
pub(super) struct ScopedSet {
    groups: Vec<(ConnMatch, PatternSet)>,
    fold: bool,
}

impl ScopedSet {
    /// Compiles pairs of (connection glob, value glob); `fold` makes values
    /// case-insensitive (display names).
    pub(super) fn new(pairs: &[(String, String)], fold: bool) -> Result<Self, String> {
        let mut by_conn: Vec<(&str, Vec<&str>)> = Vec::new();
        for (conn, value) in pairs {
            match by_conn.iter_mut().find(|(c, _)| c == conn) {
                Some((_, values)) => values.push(value),
                None => by_conn.push((conn, vec![value])),
            }
        }
        let mut groups = Vec::with_capacity(by_conn.len());
        for (conn, values) in by_conn {
            groups.push((ConnMatch::new(conn)?, PatternSet::new(values, fold)?));
        }
        Ok(ScopedSet { groups, fold })
    }

    /// Whether `connection`:`value` matches any pair.
    pub(super) fn is_match(&self, connection: &str, value: &str) -> bool {
        if self.groups.is_empty() {
            return false;
        }
        let value = if self.fold {
            fold(value)
        } else {
            Cow::Borrowed(value)
        };
        self.groups
            .iter()
            .any(|(conn, set)| conn.is_match(connection) && set.is_match(&value))
    }

    /// Whether `connection` with any of `values` matches any pair.
    pub(super) fn is_match_any<'a>(
        &self,
        connection: &str,
        values: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        if self.groups.is_empty() {
            return false;
        }
        values.into_iter().any(|v| self.is_match(connection, v))
    }
}
