//! Immutable alias index and command → alias selection.
//!
//! [`AliasIndex`] is built once per alias-list generation (the refresher swaps it in
//! through an `ArcSwap`); readers only call [`AliasIndex::select`] (stormbridge's
//! rule) or [`AliasIndex::st2_match`] (st2's own server rule, for the emulator).
//!
//! Both rules first gather every matching (alias, representation) pair exactly as
//! st2 does (two passes: aliases with a non-`match_multiple` format first, then
//! aliases with a `match_multiple` format). To stay in the microsecond range with
//! thousands of aliases, only a handful of regexes run per command. Candidates come
//! from lookups (binary searches over pattern ids sorted by the formats' own text, so the
//! tables hold no copies of it) on the literal text a match must start with
//! ([`CompiledFormat::index_key`]: the command's first word and each of its
//! prefixes ending in whitespace are looked up), from a per-first-character list for
//! prefixes that pin no whole word, and — for formats that start with a placeholder
//! or a regex construct — from a whole word the format requires somewhere
//! ([`CompiledFormat::required_token`]); case-insensitive formats have their own,
//! case-folded tables. Every candidate is then checked with
//! [`CompiledFormat::may_match`] (prefix and required literal) before its regex
//! runs. All of these are necessary conditions, so the prefilter never changes the
//! result; a test checks that against a brute-force scan.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::format::{is_py_space, prepare, CompiledFormat, ParseError, PreparedCommand};
use super::help::HelpEntry;
use super::model::{ActionAlias, AliasFormat};

/// Maximum number of "did you mean" suggestions.
const MAX_SUGGESTIONS: usize = 3;

/// The alias chosen for a command, with the parameters extracted from it.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasMatch {
    /// The matching alias.
    pub alias: Arc<ActionAlias>,
    /// The representation that matched; this is the `format` to send to
    /// `POST /api/v1/aliasexecution`.
    pub representation: String,
    /// The help text of that format entry (None for representation-only objects).
    pub display: Option<String>,
    /// Extracted parameters: one map normally; with `match_multiple`, one per match
    /// (st2 creates one execution per map). Values are strings; see
    /// [`crate::alias::format`] for how unmatched groups are represented.
    pub params: Vec<BTreeMap<String, String>>,
    /// With `match_multiple` and several matches: one command per match, each of which
    /// StackStorm's `POST /aliasexecution` (which runs the *first* match only) parses to
    /// exactly that match's parameters — the matched text and the command's trailing
    /// `key=value` pairs. Empty otherwise. `Err` names why the matches cannot be sent one
    /// by one (a match whose text alone parses differently).
    pub per_match: Result<Vec<String>, String>,
}

/// One of several equally specific matches, shown to the user to choose from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `pack.name` of the alias.
    pub alias_ref: String,
    /// Help text of the matching format entry, if it has one.
    pub display: Option<String>,
    /// The matching representation (useful when there is no display).
    pub representation: String,
}

/// Outcome of stormbridge's selection rule (ARCHITECTURE.md §3).
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// Exactly one match, or one strictly most specific match.
    Matched(AliasMatch),
    /// Several equally specific matches; ask the user, never guess.
    Ambiguous(Vec<Candidate>),
    /// Nothing matched; up to three close help entries ("did you mean").
    NoMatch {
        /// Closest help entries, best first.
        suggestions: Vec<HelpEntry>,
    },
}

/// An alias name that enabled aliases in several packs share.
///
/// `POST /api/v1/aliasexecution` names the alias by `name` alone and st2 runs the first
/// alias it finds with that name, in whichever pack, so a command for one of these may run
/// the other pack's alias. The bridge refuses to send such commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameCollision {
    /// The shared name.
    pub name: String,
    /// The packs with an alias of that name, sorted.
    pub packs: Vec<String>,
    /// Those of `packs` whose alias of that name is disabled.
    pub disabled: Vec<String>,
}

/// st2's `POST /api/v1/actionalias/match` failures, with st2's exact faultstrings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum St2MatchError {
    /// HTTP 400 `Command '<cmd>' matched no patterns`.
    #[error("Command '{0}' matched no patterns")]
    NoPatterns(String),
    /// HTTP 400 `Command '<cmd>' matched more than 1 pattern` (first pass).
    #[error("Command '{0}' matched more than 1 pattern")]
    MoreThanOne(String),
    /// HTTP 400 `Command '<cmd>' matched more than 1 (multi) pattern` (second pass).
    #[error("Command '{0}' matched more than 1 (multi) pattern")]
    MoreThanOneMulti(String),
    /// An enabled alias in the pass being evaluated has a format Python cannot
    /// compile: st2 raises `re.error` and answers **HTTP 500** (faultstring
    /// `Internal Server Error`) for every command that reaches that pass.
    #[error("Internal Server Error")]
    InvalidFormat {
        /// `pack.name` of the offending alias.
        alias_ref: String,
        /// The representation that does not compile.
        representation: String,
        /// Why.
        message: String,
    },
}

/// One (alias, representation) pair of an enabled alias.
#[derive(Debug)]
struct Pattern {
    alias: usize,
    format: Arc<CompiledFormat>,
    /// Index into the alias's `formats` (for the display text).
    format_idx: u32,
    match_multiple: bool,
    /// The alias takes part in st2's first / second pass.
    pass1: bool,
    pass2: bool,
    /// The `""` pattern st2 gives a format entry that is help text only
    /// ([`AliasFormat::is_help_only`]): st2's `/match` finds it, its `aliasexecution`
    /// never runs it, so [`AliasIndex::select`] leaves it out.
    help_only: bool,
}

#[derive(Debug)]
struct Broken {
    alias: usize,
    representation: String,
    message: String,
    pass1: bool,
    pass2: bool,
}

/// Precomputed "did you mean" data for one help entry.
#[derive(Debug)]
struct HelpWords {
    alias: u32,
    /// Index into the alias's `formats`.
    format: u32,
    /// First few lower-cased words of the display, joined by single spaces; a
    /// placeholder is [`PLACEHOLDER_WORD`]. One allocation per entry (a boxed word each
    /// was ~200 bytes an entry with 10,000 aliases).
    words: Box<str>,
}

/// A placeholder among [`HelpWords::words`]: it matches any word.
const PLACEHOLDER_WORD: &str = "\u{0}";

impl HelpWords {
    /// The words, `None` for a placeholder.
    fn words(&self) -> impl Iterator<Item = Option<&str>> {
        self.words
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(|w| (w != PLACEHOLDER_WORD).then_some(w))
    }

    /// The first word, unless it is a placeholder (or there is none).
    fn first_word(&self) -> Option<&str> {
        self.words().next().flatten()
    }
}

/// Pattern (or help) ids sorted by a text key derived from what they name, looked up by
/// binary search. The keys are not stored — they are the formats' own prefixes and words
/// — so a table costs 4 bytes an entry where a map of owned keys cost ~100.
#[derive(Debug, Default)]
struct SortedIds(Box<[u32]>);

impl SortedIds {
    /// Sorts `ids` by `key` (stably: ids with equal keys keep their order).
    fn new<'a>(mut ids: Vec<u32>, key: impl Fn(u32) -> &'a str) -> SortedIds {
        ids.sort_by(|a, b| key(*a).cmp(key(*b)));
        SortedIds(ids.into_boxed_slice())
    }

    /// The ids whose key is `wanted`.
    fn get<'a>(&self, wanted: &str, key: impl Fn(u32) -> &'a str) -> &[u32] {
        let start = self.0.partition_point(|&id| key(id) < wanted);
        let len = self.0[start..].partition_point(|&id| key(id) == wanted);
        &self.0[start..start + len]
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Lookups from a command's leading text to the formats it may match.
#[derive(Debug, Default)]
struct Keyed {
    /// Formats by [`CompiledFormat::index_key`].
    by_key: SortedIds,
    /// Most whitespace characters in any key (bounds the lookups per command).
    max_key_spaces: usize,
    /// Formats with a literal prefix that pins no key, by its first character.
    by_char: HashMap<char, Vec<u32>>,
}

impl Keyed {
    /// Indexes `ids` of `patterns`; returns the ids with no usable prefix at all.
    fn build(patterns: &[Pattern], ids: impl Iterator<Item = u32>) -> (Keyed, Vec<u32>) {
        let mut keyed = Keyed::default();
        let mut by_key = Vec::new();
        let mut rest = Vec::new();
        for id in ids {
            let f = &patterns[id as usize].format;
            if let Some(k) = f.index_key() {
                let spaces = k.chars().filter(|c| is_py_space(*c)).count();
                keyed.max_key_spaces = keyed.max_key_spaces.max(spaces);
                by_key.push(id);
            } else if let Some(c) = f.literal_prefix().chars().next() {
                keyed.by_char.entry(c).or_default().push(id);
            } else {
                rest.push(id);
            }
        }
        keyed.by_key = SortedIds::new(by_key, |id| index_key_of(patterns, id));
        (keyed, rest)
    }

    fn lookup<'a>(
        &'a self,
        patterns: &'a [Pattern],
        keys: impl Iterator<Item = &'a str>,
        first: Option<char>,
        mut add: impl FnMut(&[u32]),
    ) {
        for key in keys {
            add(self.by_key.get(key, |id| index_key_of(patterns, id)));
        }
        if let Some(v) = first.and_then(|c| self.by_char.get(&c)) {
            add(v);
        }
    }
}

/// The key [`Keyed::by_key`] sorts a pattern by.
fn index_key_of(patterns: &[Pattern], id: u32) -> &str {
    patterns[id as usize].format.index_key().unwrap_or("")
}

/// The key [`AliasIndex::by_token`] sorts a pattern by.
fn token_of(patterns: &[Pattern], id: u32) -> &str {
    patterns[id as usize].format.required_token().unwrap_or("")
}

/// An immutable, shareable snapshot of the alias list with compiled formats.
pub struct AliasIndex {
    aliases: Vec<Arc<ActionAlias>>,
    patterns: Vec<Pattern>,
    broken: Vec<Broken>,
    /// Prefilter for case-sensitive formats.
    exact: Keyed,
    /// Prefilter for case-insensitive formats (keys are case-folded).
    folded: Keyed,
    /// Formats without a usable literal prefix but with a required whole word,
    /// by that word (folded for case-insensitive formats, which go in `by_token_ci`).
    by_token: SortedIds,
    by_token_ci: SortedIds,
    /// Formats with nothing to index on: always tried.
    unkeyed: Vec<u32>,
    help: Vec<HelpWords>,
    /// Help entries by the first literal word of their display (lower case).
    help_by_first: SortedIds,
    /// Each distinct first word, as characters (for the edit-distance scan), with its
    /// entries' range in `help_by_first`.
    help_first_words: Vec<(Box<[char]>, std::ops::Range<usize>)>,
    /// Names shared across packs, sorted by name.
    collisions: Vec<NameCollision>,
}

impl std::fmt::Debug for AliasIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliasIndex")
            .field("aliases", &self.aliases.len())
            .field("patterns", &self.patterns.len())
            .field("broken", &self.broken.len())
            .field("unkeyed", &self.unkeyed.len())
            .field("collisions", &self.collisions.len())
            .finish()
    }
}

impl Default for AliasIndex {
    fn default() -> Self {
        AliasIndex::build(Vec::<ActionAlias>::new()).0
    }
}

/// A matching pattern found while gathering.
struct Hit {
    id: u32,
    params: BTreeMap<String, String>,
}

impl AliasIndex {
    /// Build an index. Every alias is kept (for listing, help and lookups by
    /// name); only enabled aliases with formats take part in matching. Formats that
    /// fail to compile are skipped, each with one warning naming the alias and the
    /// representation (st2 itself would fail every `/match` call with HTTP 500).
    pub fn build<A: Into<Arc<ActionAlias>>>(aliases: Vec<A>) -> (AliasIndex, Vec<String>) {
        Self::rebuild(aliases, None)
    }

    /// [`AliasIndex::build`], reusing the compiled formats of `previous` for the
    /// representations it already had: a periodic reload of an unchanged list of 10,000
    /// aliases then costs a lookup per format instead of ~0.9 s of compiling (and the
    /// allocation churn that comes with it).
    ///
    /// Aliases may come already in an `Arc` (the alias cache decodes them so): a list of
    /// 100,000 then never has a second copy of its items' structs in flight.
    pub fn rebuild<A: Into<Arc<ActionAlias>>>(
        aliases: Vec<A>,
        previous: Option<&AliasIndex>,
    ) -> (AliasIndex, Vec<String>) {
        let mut aliases: Vec<Arc<ActionAlias>> = aliases.into_iter().map(Into::into).collect();
        // The collect reuses the given list's buffer: for `ActionAlias`es that is 26 times
        // the room the pointers need.
        aliases.shrink_to_fit();
        let mut warnings = Vec::new();
        let mut patterns = Vec::new();
        let mut broken = Vec::new();
        let cache = compile_all(&aliases, previous);
        let mut help = Vec::new();
        for (ai, alias) in aliases.iter().enumerate() {
            if !alias.enabled {
                continue;
            }
            for (fi, f) in alias.formats.iter().enumerate() {
                if let Some(d) = f.display() {
                    help.push(HelpWords {
                        alias: ai as u32,
                        format: fi as u32,
                        words: display_words(d),
                    });
                }
            }
            let pass1 = alias.in_single_pass();
            let pass2 = alias.in_multi_pass();
            let per_format = alias
                .formats
                .iter()
                .enumerate()
                .flat_map(|(fi, f)| f.patterns().into_iter().map(move |p| (fi, p)));
            for (fi, p) in per_format {
                let compiled = match cache.get(p.representation) {
                    Some(c) => c.clone(),
                    None => compile_one(p.representation),
                };
                match compiled {
                    Ok(format) => patterns.push(Pattern {
                        alias: ai,
                        format,
                        format_idx: fi as u32,
                        match_multiple: p.match_multiple,
                        pass1,
                        pass2,
                        help_only: alias.formats[fi].is_help_only(),
                    }),
                    Err(message) => {
                        warnings.push(format!(
                            "alias {} format {:?} skipped: {message}",
                            alias.reference, p.representation
                        ));
                        broken.push(Broken {
                            alias: ai,
                            representation: p.representation.to_string(),
                            message,
                            pass1,
                            pass2,
                        });
                    }
                }
            }
        }
        // Built once, read for the index's whole life: no spare capacity.
        patterns.shrink_to_fit();
        help.shrink_to_fit();
        let ids = 0..patterns.len() as u32;
        let folded_ids = ids
            .clone()
            .filter(|&id| patterns[id as usize].format.is_case_insensitive());
        let exact_ids = ids.filter(|&id| !patterns[id as usize].format.is_case_insensitive());
        let (exact, exact_rest) = Keyed::build(&patterns, exact_ids);
        let (folded, folded_rest) = Keyed::build(&patterns, folded_ids);
        let has_token = |id: &u32| patterns[*id as usize].format.required_token().is_some();
        let (tokens, mut unkeyed): (Vec<u32>, Vec<u32>) =
            exact_rest.into_iter().partition(has_token);
        let by_token = SortedIds::new(tokens, |id| token_of(&patterns, id));
        let (tokens, folded_unkeyed): (Vec<u32>, Vec<u32>) =
            folded_rest.into_iter().partition(has_token);
        let by_token_ci = SortedIds::new(tokens, |id| token_of(&patterns, id));
        unkeyed.extend(folded_unkeyed);
        unkeyed.sort_unstable();
        let collisions = name_collisions(&aliases);
        let first_word = |i: u32| help[i as usize].first_word().unwrap_or("");
        let with_first_word =
            (0..help.len() as u32).filter(|&i| help[i as usize].first_word().is_some());
        let help_by_first = SortedIds::new(with_first_word.collect(), first_word);
        let mut help_first_words: Vec<(Box<[char]>, std::ops::Range<usize>)> = Vec::new();
        for (at, &i) in help_by_first.0.iter().enumerate() {
            match help_first_words.last_mut() {
                Some((_, range)) if first_word(help_by_first.0[range.start]) == first_word(i) => {
                    range.end = at + 1
                }
                _ => help_first_words.push((first_word(i).chars().collect(), at..at + 1)),
            }
        }
        (
            AliasIndex {
                aliases,
                patterns,
                broken,
                exact,
                folded,
                by_token,
                by_token_ci,
                unkeyed,
                help,
                help_first_words,
                help_by_first,
                collisions,
            },
            warnings,
        )
    }

    /// Alias names that enabled aliases in more than one pack share, sorted by name.
    pub fn name_collisions(&self) -> &[NameCollision] {
        &self.collisions
    }

    /// The collision `name` takes part in, if enabled aliases in several packs share it.
    pub fn name_collision(&self, name: &str) -> Option<&NameCollision> {
        self.collisions
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.collisions[i])
    }

    /// Number of aliases in the snapshot (enabled or not).
    pub fn len(&self) -> usize {
        self.aliases.len()
    }

    /// Whether the snapshot holds no alias at all.
    pub fn is_empty(&self) -> bool {
        self.aliases.is_empty()
    }

    /// Every alias, in the order given to [`AliasIndex::build`].
    pub fn aliases(&self) -> &[Arc<ActionAlias>] {
        &self.aliases
    }

    /// Number of compiled (alias, representation) patterns taking part in matching.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Ids of the patterns that can possibly match, ascending.
    fn candidates(&self, cmd: &PreparedCommand) -> Vec<u32> {
        let mut ids: Vec<u32> = Vec::new();
        let mut add = |v: &[u32]| {
            ids.extend(
                v.iter()
                    .copied()
                    .filter(|&id| self.patterns[id as usize].format.may_match(cmd)),
            )
        };
        add(&self.unkeyed);
        let patterns = &self.patterns;
        if !self.by_token.is_empty() {
            for t in cmd.tokens(false) {
                add(self.by_token.get(t, |id| token_of(patterns, id)));
            }
        }
        if !self.by_token_ci.is_empty() {
            for t in cmd.tokens(true) {
                add(self.by_token_ci.get(t, |id| token_of(patterns, id)));
            }
        }
        self.exact.lookup(
            patterns,
            cmd.index_keys(self.exact.max_key_spaces),
            cmd.trimmed().chars().next(),
            &mut add,
        );
        self.folded.lookup(
            patterns,
            cmd.folded_index_keys(self.folded.max_key_spaces),
            cmd.folded_trimmed().chars().next(),
            &mut add,
        );
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Every matching pattern (in alias/format order), plus warnings for patterns
    /// whose matching was abandoned. `all` disables the prefilter (tests).
    fn gather(&self, cmd: &PreparedCommand, all: bool) -> (Vec<Hit>, Vec<String>) {
        let ids: Vec<u32> = if all {
            (0..self.patterns.len() as u32).collect()
        } else {
            self.candidates(cmd)
        };
        let mut hits = Vec::new();
        let mut warnings = Vec::new();
        for id in ids {
            let p = &self.patterns[id as usize];
            match p.format.extract(cmd) {
                Ok(params) => hits.push(Hit { id, params }),
                Err(ParseError::NoMatch { .. }) | Err(ParseError::NoValue) => {}
                Err(e) => warnings.push(format!(
                    "alias {}: {e}; treated as no match",
                    self.aliases[p.alias].reference
                )),
            }
        }
        (hits, warnings)
    }

    fn to_match(&self, cmd: &PreparedCommand, hit: Hit) -> AliasMatch {
        let p = &self.patterns[hit.id as usize];
        let matches = if p.match_multiple {
            p.format.extract_all_with_text(cmd).unwrap_or_default()
        } else {
            Vec::new()
        };
        let (params, per_match) = if matches.len() > 1 {
            let per_match = per_match_commands(&p.format, cmd, &matches);
            (
                matches.into_iter().map(|(params, _)| params).collect(),
                per_match,
            )
        } else {
            (vec![hit.params], Ok(Vec::new()))
        };
        AliasMatch {
            alias: self.aliases[p.alias].clone(),
            representation: p.format.source().to_string(),
            display: self.display_of(p).map(str::to_string),
            params,
            per_match,
        }
    }

    /// stormbridge's selection rule (ARCHITECTURE.md §3); see
    /// [`AliasIndex::select_with_warnings`].
    pub fn select(&self, command: &str) -> Selection {
        self.select_with_warnings(command).0
    }

    /// [`AliasIndex::select`], also returning warnings about formats whose matching
    /// was abandoned (backtracking budget exceeded; treated as no match).
    ///
    /// Gathers all matching (alias, representation) pairs with st2's two passes.
    /// One → [`Selection::Matched`]. Several → the one with the most literal
    /// characters; when several share that maximum they are [`Selection::Ambiguous`]
    /// — unless they are formats of the *same* alias extracting identical parameters,
    /// where every choice would run the same execution, so the first is taken.
    /// None → [`Selection::NoMatch`] with up to three suggestions. The `""` pattern of a
    /// help-only format entry ([`AliasFormat::is_help_only`]) is never selected: StackStorm
    /// matches it but cannot run it.
    pub fn select_with_warnings(&self, command: &str) -> (Selection, Vec<String>) {
        let cmd = prepare(command);
        let (hits, warnings) = self.gather(&cmd, false);
        (self.rank(&cmd, hits), warnings)
    }

    fn rank(&self, cmd: &PreparedCommand, hits: Vec<Hit>) -> Selection {
        // A help-only entry's `""` pattern (a command of `key=value` pairs only) is one
        // StackStorm would refuse to run: sending it costs a request, an error the user
        // cannot act on and — as "Format string is not available" reads like a stale alias
        // — a reload of the whole alias list. Such a command matches nothing here.
        let (pass1, rest): (Vec<Hit>, Vec<Hit>) = hits
            .into_iter()
            .filter(|h| !self.patterns[h.id as usize].help_only)
            .partition(|h| self.patterns[h.id as usize].pass1);
        let mut pool = if pass1.is_empty() {
            rest.into_iter()
                .filter(|h| self.patterns[h.id as usize].pass2)
                .collect()
        } else {
            pass1
        };
        if pool.is_empty() {
            return Selection::NoMatch {
                suggestions: self.suggest(cmd),
            };
        }
        if pool.len() > 1 {
            let best = pool
                .iter()
                .map(|h| self.patterns[h.id as usize].format.literal_len())
                .max()
                .unwrap_or(0);
            pool.retain(|h| self.patterns[h.id as usize].format.literal_len() == best);
        }
        if pool.len() > 1 {
            let first = &pool[0];
            let first_alias = self.patterns[first.id as usize].alias;
            let same = pool.iter().all(|h| {
                let p = &self.patterns[h.id as usize];
                p.alias == first_alias && !p.match_multiple && h.params == first.params
            }) && !self.patterns[first.id as usize].match_multiple;
            if !same {
                return Selection::Ambiguous(
                    pool.iter()
                        .map(|h| {
                            let p = &self.patterns[h.id as usize];
                            Candidate {
                                alias_ref: self.aliases[p.alias].reference.clone(),
                                display: self.display_of(p).map(str::to_string),
                                representation: p.format.source().to_string(),
                            }
                        })
                        .collect(),
                );
            }
            pool.truncate(1);
        }
        match pool.pop() {
            Some(hit) => Selection::Matched(self.to_match(cmd, hit)),
            None => Selection::NoMatch {
                suggestions: Vec::new(),
            },
        }
    }

    /// st2's own `/match` semantics: no ranking. First pass (aliases with a
    /// non-`match_multiple` format): exactly one matching pair wins, more is an
    /// error. If none: second pass over aliases with a `match_multiple` format, same
    /// rule with the `(multi)` error; none → `matched no patterns`. An uncompilable
    /// format in an alias of a pass that runs yields
    /// [`St2MatchError::InvalidFormat`] (st2: HTTP 500).
    pub fn st2_match(&self, command: &str) -> Result<AliasMatch, St2MatchError> {
        let cmd = prepare(command);
        if let Some(b) = self.broken.iter().find(|b| b.pass1) {
            return Err(self.broken_error(b));
        }
        let (hits, _) = self.gather(&cmd, false);
        let (mut pass1, rest): (Vec<Hit>, Vec<Hit>) = hits
            .into_iter()
            .partition(|h| self.patterns[h.id as usize].pass1);
        match pass1.len() {
            0 => {}
            1 => {
                if let Some(h) = pass1.pop() {
                    return Ok(self.to_match(&cmd, h));
                }
            }
            _ => return Err(St2MatchError::MoreThanOne(command.to_string())),
        }
        if let Some(b) = self.broken.iter().find(|b| b.pass2) {
            return Err(self.broken_error(b));
        }
        let mut pass2: Vec<Hit> = rest
            .into_iter()
            .filter(|h| self.patterns[h.id as usize].pass2)
            .collect();
        match pass2.len() {
            0 => Err(St2MatchError::NoPatterns(command.to_string())),
            1 => match pass2.pop() {
                Some(h) => Ok(self.to_match(&cmd, h)),
                None => Err(St2MatchError::NoPatterns(command.to_string())),
            },
            _ => Err(St2MatchError::MoreThanOneMulti(command.to_string())),
        }
    }

    /// The display of a pattern's format entry (as st2 reports it: `None` only for
    /// objects without a display).
    fn display_of(&self, p: &Pattern) -> Option<&str> {
        match self.aliases[p.alias].formats.get(p.format_idx as usize)? {
            AliasFormat::Plain(s) => Some(s),
            AliasFormat::Object(o) => o.display.as_deref(),
        }
    }

    fn broken_error(&self, b: &Broken) -> St2MatchError {
        St2MatchError::InvalidFormat {
            alias_ref: self.aliases[b.alias].reference.clone(),
            representation: b.representation.clone(),
            message: b.message.clone(),
        }
    }

    /// Closest help entries for a command that matched nothing: entries whose
    /// display starts with the command's first word (case-insensitive), ranked by
    /// how many leading words agree (placeholders match any word), then entries
    /// whose first word is within a small edit distance of it. Deterministic: ties
    /// are broken by display, then pack.
    fn suggest(&self, cmd: &PreparedCommand) -> Vec<HelpEntry> {
        let words: Vec<String> = cmd
            .trimmed()
            .split(is_py_space)
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let Some(first) = words.first() else {
            return Vec::new();
        };
        // (exact-first-word score, edit distance, help index)
        let mut scored: Vec<(usize, usize, u32)> = Vec::new();
        let first_word = |i: u32| self.help[i as usize].first_word().unwrap_or("");
        for &i in self.help_by_first.get(first, first_word) {
            let mut score = 0;
            for (cw, d) in words.iter().zip(self.help[i as usize].words()) {
                match d {
                    Some(d) if d == cw => score += 2,
                    None => score += 1,
                    Some(_) => break,
                }
            }
            scored.push((score, 0, i));
        }
        let first_chars: Vec<char> = first.chars().collect();
        let max_dist = (first_chars.len() / 3).clamp(1, 3);
        let (mut prev, mut cur) = (Vec::new(), Vec::new());
        for (w, range) in &self.help_first_words {
            if w.len().abs_diff(first_chars.len()) > max_dist || **w == *first_chars {
                continue;
            }
            if let Some(d) = levenshtein_within(&first_chars, w, max_dist, &mut prev, &mut cur) {
                let ids = &self.help_by_first.0[range.clone()];
                scored.extend(ids.iter().map(|&i| (0, d, i)));
            }
        }
        let key = |i: u32| {
            let h = &self.help[i as usize];
            let a = &self.aliases[h.alias as usize];
            let d = a.formats.get(h.format as usize).and_then(|f| f.display());
            (d.unwrap_or(""), a.pack.as_str(), a.description.as_deref())
        };
        let better = |a: &(usize, usize, u32), b: &(usize, usize, u32)| {
            let (da, pa, _) = key(a.2);
            let (db, pb, _) = key(b.2);
            b.0.cmp(&a.0)
                .then(a.1.cmp(&b.1))
                .then_with(|| da.cmp(db))
                .then_with(|| pa.cmp(pb))
        };
        // Keep the best few distinct entries without sorting everything.
        let mut top: Vec<(usize, usize, u32)> = Vec::with_capacity(MAX_SUGGESTIONS + 1);
        for s in scored {
            if top.len() == MAX_SUGGESTIONS
                && top
                    .last()
                    .is_some_and(|w| better(&s, w) != std::cmp::Ordering::Less)
            {
                continue;
            }
            let e = key(s.2);
            if let Some(pos) = top.iter().position(|t| key(t.2) == e) {
                if better(&s, &top[pos]) == std::cmp::Ordering::Less {
                    top.remove(pos);
                } else {
                    continue;
                }
            }
            let at = top
                .iter()
                .position(|t| better(&s, t) == std::cmp::Ordering::Less)
                .unwrap_or(top.len());
            top.insert(at, s);
            top.truncate(MAX_SUGGESTIONS);
        }
        top.into_iter()
            .map(|(_, _, i)| {
                let (display, pack, description) = key(i);
                HelpEntry {
                    pack: pack.to_string(),
                    display: display.to_string(),
                    description: description.map(str::to_string),
                }
            })
            .collect()
    }
}

/// One command per match of a `match_multiple` format: the match's text plus the command's
/// trailing pairs, checked to parse (single mode, as `POST /aliasexecution` does) to exactly
/// that match's parameters.
fn per_match_commands(
    format: &CompiledFormat,
    cmd: &PreparedCommand,
    matches: &[(BTreeMap<String, String>, String)],
) -> Result<Vec<String>, String> {
    matches
        .iter()
        .map(|(params, text)| {
            let command = match cmd.pairs_text().trim() {
                "" => text.trim().to_owned(),
                pairs => format!("{} {pairs}", text.trim()),
            };
            match format.extract(&prepare(&command)) {
                Ok(again) if again == *params => Ok(command),
                _ => Err(format!(
                    "the match `{}` does not parse the same on its own",
                    text.trim()
                )),
            }
        })
        .collect()
}

/// Names shared by aliases of different packs, disabled ones included: `aliasexecution`
/// looks an alias up by name alone (`ActionAlias.get_by_name`, the first in the database,
/// disabled or not — st2api `controllers/v1/aliasexecution.py`), so it may run another
/// pack's alias, or refuse the command as "disabled" because another pack's alias of that
/// name is.
fn name_collisions(aliases: &[Arc<ActionAlias>]) -> Vec<NameCollision> {
    // Positions sorted by (name, pack): 4 bytes an alias, where a map of maps over 100,000
    // aliases was ~25 MB at the peak of a load.
    let mut order: Vec<u32> = (0..aliases.len() as u32).collect();
    let key = |i: &u32| {
        let a = &aliases[*i as usize];
        (a.name.as_str(), a.pack.as_str())
    };
    order.sort_unstable_by(|x, y| key(x).cmp(&key(y)));
    let mut collisions = Vec::new();
    for same_name in order.chunk_by(|x, y| key(x).0 == key(y).0) {
        // (pack, enabled), one per pack: a pack enabled if any of its aliases of that name is.
        let mut packs: Vec<(&str, bool)> = Vec::new();
        for i in same_name {
            let a = &aliases[*i as usize];
            match packs.last_mut() {
                Some((pack, enabled)) if *pack == a.pack => *enabled |= a.enabled,
                _ => packs.push((a.pack.as_str(), a.enabled)),
            }
        }
        if packs.len() > 1 {
            collisions.push(NameCollision {
                name: key(&same_name[0]).0.to_owned(),
                disabled: packs
                    .iter()
                    .filter(|(_, enabled)| !*enabled)
                    .map(|(p, _)| (*p).to_owned())
                    .collect(),
                packs: packs.into_iter().map(|(p, _)| p.to_owned()).collect(),
            });
        }
    }
    collisions
}

type Compiled = Result<Arc<CompiledFormat>, String>;

fn compile_one(representation: &str) -> Compiled {
    CompiledFormat::compile(representation)
        .map(Arc::new)
        .map_err(|e| match e {
            ParseError::InvalidFormat { message, .. } => message,
            other => other.to_string(),
        })
}

/// Compile every distinct representation of the enabled aliases, spread over the
/// available cores (each compile is tens of microseconds; 10,000 aliases is a
/// noticeable pause on one core).
fn compile_all<'a>(
    aliases: &'a [Arc<ActionAlias>],
    previous: Option<&AliasIndex>,
) -> HashMap<&'a str, Compiled> {
    let mut unique: Vec<&str> = aliases
        .iter()
        .filter(|a| a.enabled)
        .flat_map(|a| a.patterns().into_iter().map(|p| p.representation))
        .collect();
    unique.sort_unstable();
    unique.dedup();
    let mut known: HashMap<&'a str, Compiled> = HashMap::new();
    if let Some(previous) = previous {
        let compiled: HashMap<&str, Compiled> = previous
            .patterns
            .iter()
            .map(|p| (p.format.source(), Ok(p.format.clone())))
            .chain(
                previous
                    .broken
                    .iter()
                    .map(|b| (b.representation.as_str(), Err(b.message.clone()))),
            )
            .collect();
        unique.retain(|r| match compiled.get(*r) {
            Some(c) => {
                known.insert(*r, c.clone());
                false
            }
            None => true,
        });
    }
    let mut fresh = compile_fresh(unique);
    fresh.extend(known);
    fresh
}

/// Compiles `unique` representations, in parallel when there are many.
fn compile_fresh(unique: Vec<&str>) -> HashMap<&str, Compiled> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    if threads == 1 || unique.len() < 256 {
        return unique.into_iter().map(|r| (r, compile_one(r))).collect();
    }
    let chunk = unique.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = unique
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|r| (*r, compile_one(r)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = HashMap::with_capacity(unique.len());
        for (h, part) in handles.into_iter().zip(unique.chunks(chunk)) {
            match h.join() {
                Ok(v) => out.extend(v),
                // A panicking compile is a bug; fall back to compiling here so the
                // error (if any) surfaces as a warning rather than a lost format.
                Err(_) => out.extend(part.iter().map(|r| (*r, compile_one(r)))),
            }
        }
        out
    })
}

/// How many leading display words are kept for "did you mean" scoring.
const SUGGESTION_WORDS: usize = 4;

/// First lower-cased words of a display string, for [`HelpWords::words`]; `{{…}}`
/// placeholders and `<…>` argument markers become [`PLACEHOLDER_WORD`] (they match any
/// word).
fn display_words(display: &str) -> Box<str> {
    let mut text = String::with_capacity(display.len());
    let mut rest = display;
    while let Some(start) = rest.find("{{") {
        text.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                text.push_str(" \u{0} ");
                rest = &rest[start + end + 2..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    text.push_str(rest);
    text.split(is_py_space)
        .filter(|w| !w.is_empty())
        .take(SUGGESTION_WORDS)
        .map(|w| {
            if w == PLACEHOLDER_WORD || (w.starts_with('<') && w.ends_with('>')) {
                PLACEHOLDER_WORD.to_string()
            } else {
                w.to_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .into_boxed_str()
}

/// Levenshtein distance if it is at most `max`, else None.
#[cfg(test)]
fn bounded_levenshtein(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    levenshtein_within(&a, &b, max, &mut Vec::new(), &mut Vec::new())
}

/// Levenshtein distance of `a` and `b` if it is at most `max`, else None; the two
/// row buffers are reused across calls.
fn levenshtein_within(
    a: &[char],
    b: &[char],
    max: usize,
    prev: &mut Vec<usize>,
    cur: &mut Vec<usize>,
) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    prev.clear();
    prev.extend(0..=b.len());
    cur.clear();
    cur.resize(b.len() + 1, 0);
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(prev, cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alias::model::{AliasFormat, FormatObject, Representation};

    fn alias(pack: &str, name: &str, formats: Vec<AliasFormat>) -> ActionAlias {
        ActionAlias {
            name: name.into(),
            pack: pack.into(),
            reference: format!("{pack}.{name}"),
            action_ref: format!("{pack}.action"),
            description: Some(format!("{name} description")),
            formats,
            ..ActionAlias::default()
        }
    }

    fn plain(s: &str) -> AliasFormat {
        AliasFormat::Plain(s.into())
    }

    fn obj(display: Option<&str>, reps: &[&str], multi: bool) -> AliasFormat {
        AliasFormat::Object(Box::new(FormatObject {
            display: display.map(str::to_string),
            representation: Some(Representation::Many(
                reps.iter().map(|s| s.to_string()).collect(),
            )),
            match_multiple: multi,
        }))
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matched(sel: Selection) -> AliasMatch {
        match sel {
            Selection::Matched(m) => m,
            other => panic!("expected a match, got {other:?}"),
        }
    }

    /// The alias fixtures st2's own API tests use (st2tests/fixtures/aliases).
    fn st2_fixtures() -> AliasIndex {
        let (idx, warnings) = AliasIndex::build(vec![
            alias(
                "aliases",
                "alias1",
                vec![plain("Lorem ipsum {{param1}} dolor sit {{param2}} amet.")],
            ),
            alias(
                "aliases",
                "alias2",
                vec![obj(
                    Some("Help entry doesn't matter."),
                    &["Lorem ipsum {{param1}} dolor sit {{param3}} amet."],
                    false,
                )],
            ),
            alias(
                "aliases",
                "alias4",
                vec![obj(
                    Some("Help entry doesn't matter."),
                    &["Lorem ipsum {{param1}} dolor sit {{param4}} amet."],
                    false,
                )],
            ),
            alias("aliases", "alias5", vec![plain("lorem ipsum")]),
            alias(
                "aliases",
                "alias_with_undefined_jinja_in_ack_format",
                vec![plain("run {{cmd}} on {{hosts}}")],
            ),
            alias(
                "aliases",
                "alias_match_multiple_fixes1",
                vec![obj(
                    Some("fixes <issue_key>"),
                    &[r"(?:\b|^)fixes (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?:\b|$)"],
                    true,
                )],
            ),
            alias(
                "aliases",
                "alias_match_multiple_fixes2",
                vec![obj(
                    Some("fixes <issue_key>"),
                    &[r"(?:\b|^)fixes (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?:\b|$)"],
                    true,
                )],
            ),
            alias(
                "aliases",
                "alias_match_multiple",
                vec![obj(
                    Some("duplicate of <issue_key>"),
                    &[r"(?:\b|^)duplicate of (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?:\b|$)"],
                    true,
                )],
            ),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        idx
    }

    #[test]
    fn st2_match_semantics_on_st2_fixtures() {
        let idx = st2_fixtures();
        let e = idx.st2_match("hello donny").unwrap_err();
        assert_eq!(e.to_string(), "Command 'hello donny' matched no patterns");
        let cmd = "Lorem ipsum banana dolor sit pineapple amet.";
        let e = idx.st2_match(cmd).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Command '{cmd}' matched more than 1 pattern")
        );
        let m = idx.st2_match("run date on localhost").unwrap();
        assert_eq!(
            m.alias.reference,
            "aliases.alias_with_undefined_jinja_in_ack_format"
        );
        assert_eq!(m.representation, "run {{cmd}} on {{hosts}}");
        assert_eq!(m.display.as_deref(), Some("run {{cmd}} on {{hosts}}"));
        assert_eq!(
            m.params,
            vec![params(&[("cmd", "date"), ("hosts", "localhost")])]
        );
        let m = idx
            .st2_match(
                "JKROWLING-4 is a duplicate of JRRTOLKIEN-24 which is a duplicate of DRSEUSS-12",
            )
            .unwrap();
        assert_eq!(m.alias.name, "alias_match_multiple");
        assert_eq!(
            m.params,
            vec![
                params(&[("issue_key", "JRRTOLKIEN-24")]),
                params(&[("issue_key", "DRSEUSS-12")])
            ]
        );
        let cmd = "JKROWLING-4 fixes JRRTOLKIEN-24 which fixes DRSEUSS-12";
        assert_eq!(
            idx.st2_match(cmd).unwrap_err().to_string(),
            format!("Command '{cmd}' matched more than 1 (multi) pattern")
        );
        let m = idx.st2_match("lorem ipsum").unwrap();
        assert_eq!(m.alias.name, "alias5");
    }

    #[test]
    fn select_unique_match() {
        let idx = st2_fixtures();
        let m = matched(idx.select("run date on localhost"));
        assert_eq!(m.alias.name, "alias_with_undefined_jinja_in_ack_format");
        assert_eq!(
            m.params,
            vec![params(&[("cmd", "date"), ("hosts", "localhost")])]
        );
        // Trailing pairs are part of the parameters.
        let m = matched(idx.select("run date on localhost timeout=5"));
        assert_eq!(m.params[0]["timeout"], "5");
    }

    #[test]
    fn select_exact_tie_is_ambiguous() {
        let idx = st2_fixtures();
        match idx.select("Lorem ipsum banana dolor sit pineapple amet.") {
            Selection::Ambiguous(c) => {
                let refs: Vec<&str> = c.iter().map(|c| c.alias_ref.as_str()).collect();
                assert_eq!(refs, ["aliases.alias1", "aliases.alias2", "aliases.alias4"]);
                assert_eq!(c[1].display.as_deref(), Some("Help entry doesn't matter."));
                assert_eq!(
                    c[1].representation,
                    "Lorem ipsum {{param1}} dolor sit {{param3}} amet."
                );
            }
            other => panic!("{other:?}"),
        }
        // Multi pass: two equally specific multi aliases.
        match idx.select("JKROWLING-4 fixes JRRTOLKIEN-24 which fixes DRSEUSS-12") {
            Selection::Ambiguous(c) => assert_eq!(c.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn select_pass_two_match_multiple() {
        let idx = st2_fixtures();
        let m = matched(idx.select("X-1 is a duplicate of AB-2 and a duplicate of CD-3"));
        assert_eq!(m.alias.name, "alias_match_multiple");
        assert_eq!(m.display.as_deref(), Some("duplicate of <issue_key>"));
        assert_eq!(
            m.params,
            vec![
                params(&[("issue_key", "AB-2")]),
                params(&[("issue_key", "CD-3")])
            ]
        );
        // `POST /aliasexecution` runs the first match only: one command per match, each
        // parsing to its own parameters, trailing pairs kept.
        let m = matched(idx.select("X-1 is a duplicate of AB-2 and a duplicate of CD-3 prio=high"));
        let per_match = m.per_match.expect("each match on its own");
        assert_eq!(per_match.len(), 2);
        for (command, expected) in per_match.iter().zip(&m.params) {
            assert!(command.ends_with(" prio=high"), "{command}");
            let again = matched(idx.select(command));
            assert_eq!(&again.params[0], expected, "{command}");
        }
        // One match: nothing to split.
        let m = matched(idx.select("X-1 is a duplicate of AB-2"));
        assert_eq!(m.per_match, Ok(vec![]));
    }

    #[test]
    fn first_pass_wins_over_multi_pass() {
        let (idx, _) = AliasIndex::build(vec![
            alias(
                "p",
                "multi",
                vec![obj(None, &[r"(?:\b|^)deploy (?P<app>\w+)(?:\b|$)"], true)],
            ),
            alias("p", "single", vec![plain("please deploy {{app}}")]),
        ]);
        let m = matched(idx.select("please deploy web"));
        assert_eq!(m.alias.name, "single");
        assert_eq!(
            idx.st2_match("please deploy web").unwrap().alias.name,
            "single"
        );
        let m = matched(idx.select("now deploy web"));
        assert_eq!(m.alias.name, "multi");
        assert_eq!(m.params, vec![params(&[("app", "web")])]);
    }

    #[test]
    fn most_specific_wins() {
        let (idx, _) = AliasIndex::build(vec![
            alias("p", "short", vec![plain("alias4 fmt1 {{param1}}")]),
            alias(
                "p",
                "long",
                vec![plain("alias4 fmt1 {{param1}} word {{param2}}")],
            ),
        ]);
        let cmd = "alias4 fmt1 a word b";
        let m = matched(idx.select(cmd));
        assert_eq!(m.alias.name, "long");
        assert_eq!(m.params, vec![params(&[("param1", "a"), ("param2", "b")])]);
        // st2 itself refuses.
        assert!(matches!(
            idx.st2_match(cmd),
            Err(St2MatchError::MoreThanOne(_))
        ));
        assert_eq!(matched(idx.select("alias4 fmt1 a b")).alias.name, "short");
    }

    #[test]
    fn two_formats_of_one_alias() {
        // Both formats match with different parameters and equal specificity.
        let (idx, _) = AliasIndex::build(vec![alias(
            "p",
            "a",
            vec![plain("show {{what}} now"), plain("show {{what}} {{when}}")],
        )]);
        // Both match; "show {{what}} now" has 9 literal characters against 6.
        let m = matched(idx.select("show logs now"));
        assert_eq!(m.representation, "show {{what}} now");
        assert_eq!(m.params, vec![params(&[("what", "logs")])]);
        assert!(matches!(
            idx.st2_match("show logs now"),
            Err(St2MatchError::MoreThanOne(_))
        ));
        // Same alias, same parameters, equally specific: no real ambiguity.
        let (idx, _) = AliasIndex::build(vec![alias(
            "p",
            "b",
            vec![
                plain("list {{what}}"),
                obj(Some("ls <what>"), &["ls|list {{what}}"], false),
            ],
        )]);
        let m = matched(idx.select("list pods"));
        assert_eq!(m.representation, "list {{what}}");
        assert_eq!(m.params, vec![params(&[("what", "pods")])]);
        // Same alias, different parameters, equally specific: ambiguous.
        let (idx, _) = AliasIndex::build(vec![alias(
            "p",
            "c",
            vec![plain("get {{a}} {{b=x}}"), plain("get {{c}}")],
        )]);
        match idx.select("get one two") {
            Selection::Ambiguous(c) => assert_eq!(c.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_help_only_format_is_matched_by_st2_but_never_selected() {
        let (idx, _) = AliasIndex::build(vec![
            alias(
                "goonies",
                "watch",
                vec![obj(Some("Watch this."), &[], false)],
            ),
            alias("p", "pairs", vec![plain("")]),
        ]);
        // st2's /match sees two `""` patterns; only the plain one is a format string its
        // aliasexecution accepts.
        assert!(matches!(
            idx.st2_match("speed=fast"),
            Err(St2MatchError::MoreThanOne(_))
        ));
        let m = matched(idx.select("speed=fast"));
        assert_eq!(m.alias.reference, "p.pairs");
        assert_eq!(m.params, vec![params(&[("speed", "fast")])]);
        let (idx, _) = AliasIndex::build(vec![alias(
            "goonies",
            "watch",
            vec![obj(Some("Watch this."), &[], false)],
        )]);
        assert_eq!(
            idx.st2_match("speed=fast").map(|m| m.representation),
            Ok(String::new())
        );
        assert!(matches!(
            idx.select("speed=fast"),
            Selection::NoMatch { .. }
        ));
    }

    #[test]
    fn no_match_suggests_help_entries() {
        let (idx, _) = AliasIndex::build(vec![
            alias("ops", "deploy", vec![plain("deploy {{app}} to {{env}}")]),
            alias("ops", "deploy_status", vec![plain("deploy status")]),
            alias("ops", "restart", vec![plain("restart {{svc}}")]),
            alias("k8s", "get", vec![plain("get pods {{ns}}")]),
            {
                let mut a = alias("ops", "disabled", vec![plain("deploy everything")]);
                a.enabled = false;
                a
            },
        ]);
        match idx.select("deploy") {
            Selection::NoMatch { suggestions } => {
                let d: Vec<&str> = suggestions.iter().map(|s| s.display.as_str()).collect();
                assert_eq!(d, ["deploy status", "deploy {{app}} to {{env}}"]);
                assert_eq!(suggestions[1].pack, "ops");
                assert_eq!(
                    suggestions[1].description.as_deref(),
                    Some("deploy description")
                );
            }
            other => panic!("{other:?}"),
        }
        match idx.select("deploi web to prod") {
            Selection::NoMatch { suggestions } => {
                assert!(!suggestions.is_empty());
                assert!(suggestions.iter().all(|s| s.display.starts_with("deploy")));
            }
            other => panic!("{other:?}"),
        }
        match idx.select("restrat nginx") {
            Selection::NoMatch { suggestions } => {
                assert_eq!(suggestions[0].display, "restart {{svc}}");
            }
            other => panic!("{other:?}"),
        }
        match idx.select("completely unrelated") {
            Selection::NoMatch { suggestions } => assert!(suggestions.is_empty()),
            other => panic!("{other:?}"),
        }
        match idx.select("") {
            Selection::NoMatch { suggestions } => assert!(suggestions.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_shared_by_enabled_aliases_of_several_packs_are_collisions() {
        let mut disabled = alias("z", "status", vec![plain("status {{x}}")]);
        disabled.enabled = false;
        let (idx, warnings) = AliasIndex::build(vec![
            alias("web", "restart", vec![plain("restart web {{svc}}")]),
            alias("db", "restart", vec![plain("restart db {{svc}}")]),
            alias("app", "restart", vec![]),
            alias("web", "status", vec![plain("status web")]),
            disabled,
            alias("web", "deploy", vec![plain("deploy {{app}}")]),
            // The same alias listed twice is one alias, not a collision.
            alias("db", "backup", vec![plain("backup {{db}}")]),
            alias("db", "backup", vec![plain("backup {{db}}")]),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            idx.name_collisions(),
            &[
                NameCollision {
                    name: "restart".into(),
                    packs: vec!["app".into(), "db".into(), "web".into()],
                    disabled: vec![],
                },
                NameCollision {
                    name: "status".into(),
                    packs: vec!["web".into(), "z".into()],
                    disabled: vec!["z".into()],
                }
            ],
            "every alias counts, matchable or not, disabled too (st2 may pick it and refuse)"
        );
        assert_eq!(
            idx.name_collision("restart").map(|c| c.packs.len()),
            Some(3)
        );
        assert_eq!(
            idx.name_collision("status").map(|c| c.disabled.clone()),
            Some(vec!["z".to_owned()])
        );
        assert_eq!(idx.name_collision("deploy"), None);
        assert_eq!(idx.name_collision("backup"), None);
        assert_eq!(idx.name_collision("nothing"), None);
        // Matching itself is unchanged: the caller decides what to do with a collision.
        let m = matched(idx.select("restart db main"));
        assert_eq!(m.alias.reference, "db.restart");
    }

    #[test]
    fn collisions_are_sorted_by_name() {
        let (idx, _) = AliasIndex::build(vec![
            alias("b", "zeta", vec![]),
            alias("a", "zeta", vec![]),
            alias("b", "alpha", vec![]),
            alias("a", "alpha", vec![]),
            alias("a", "mid", vec![]),
        ]);
        let names: Vec<&str> = idx
            .name_collisions()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(idx.name_collision("zeta").unwrap().packs, ["a", "b"]);
        assert!(AliasIndex::default().name_collisions().is_empty());
    }

    #[test]
    fn disabled_aliases_are_skipped_but_listed() {
        let mut off = alias("p", "off", vec![plain("hello {{who}}")]);
        off.enabled = false;
        let (idx, _) = AliasIndex::build(vec![off, alias("p", "noformats", vec![])]);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.aliases()[0].name, "off");
        assert_eq!(idx.pattern_count(), 0);
        assert!(matches!(
            idx.select("hello world"),
            Selection::NoMatch { .. }
        ));
        assert!(matches!(
            idx.st2_match("hello world"),
            Err(St2MatchError::NoPatterns(_))
        ));
    }

    #[test]
    fn broken_formats_are_skipped_with_a_warning() {
        let (idx, warnings) = AliasIndex::build(vec![
            alias("p", "bad", vec![plain("bad {{a.b}}"), plain("good {{x}}")]),
            alias("p", "other", vec![plain("other {{y}}")]),
        ]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("p.bad") && warnings[0].contains("bad {{a.b}}"));
        assert!(
            warnings[0].contains("bad character in group name"),
            "{}",
            warnings[0]
        );
        assert_eq!(matched(idx.select("good 1")).params[0]["x"], "1");
        assert_eq!(matched(idx.select("other 2")).alias.name, "other");
        // st2 answers 500 for every command while such an alias is enabled.
        match idx.st2_match("other 2") {
            Err(St2MatchError::InvalidFormat {
                alias_ref,
                representation,
                ..
            }) => {
                assert_eq!(alias_ref, "p.bad");
                assert_eq!(representation, "bad {{a.b}}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rebuild_reuses_unchanged_formats_and_compiles_new_ones() {
        let list = || {
            vec![
                alias("p", "bad", vec![plain("bad {{a.b}}"), plain("good {{x}}")]),
                alias("p", "other", vec![plain("other {{y}}")]),
            ]
        };
        let (first, _) = AliasIndex::build(list());
        let mut changed = list();
        changed[1].formats = vec![plain("other {{y}} now")];
        let (second, warnings) = AliasIndex::rebuild(changed, Some(&first));
        assert_eq!(
            warnings.len(),
            1,
            "the broken format is still reported: {warnings:?}"
        );
        let by_source = |idx: &AliasIndex, source: &str| {
            idx.patterns
                .iter()
                .find(|p| p.format.source() == source)
                .map(|p| p.format.clone())
                .unwrap_or_else(|| panic!("no pattern {source}"))
        };
        assert!(Arc::ptr_eq(
            &by_source(&first, "good {{x}}"),
            &by_source(&second, "good {{x}}")
        ));
        assert_eq!(matched(second.select("good 1")).params[0]["x"], "1");
        assert_eq!(matched(second.select("other 2 now")).params[0]["y"], "2");
        assert!(matches!(
            second.select("other 2"),
            Selection::NoMatch { .. }
        ));
    }

    /// Small deterministic generator (xorshift) for the prefilter equivalence test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as usize
        }
        fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
            v[self.next() % v.len()]
        }
    }

    #[test]
    fn prefilter_never_changes_the_result() {
        let words = [
            "deploy",
            "get",
            "run",
            "status",
            "pods",
            "app",
            "on",
            "to",
            "the",
            "Deploy",
            "ſtatus",
            "web",
            "prod",
            "x",
            "{{a}}",
            "{{b=1}}",
            "{{ c = 'q' }}",
        ];
        let shapes: [fn(&str, &str, &str) -> String; 12] = [
            |a, b, c| format!("{a} {b} {c}"),
            |a, b, c| format!("{a} {b}{c}"),
            |a, b, _| format!("{a}{b}"),
            |a, b, c| format!("{{{{x}}}} {a} {b} {c}"),
            |a, b, _| format!("(?i){a} {b} {{{{y}}}}"),
            |a, b, _| format!(r"^\s*{a}\s+{b} (?P<z>\w+)"),
            |a, b, c| format!("{a}s? {b} {c}"),
            |a, b, _| format!("(?:{a}|{b}) {{{{w}}}}"),
            |a, _, _| format!(r"(?:\b|^){a} (?P<k>\S+)(?:\b|$)"),
            |a, b, c| format!("  {a}  {b} {c}."),
            |a, b, _| format!("{a} {{{{v}}}} {b}"),
            |a, _, _| a.to_string(),
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut aliases = Vec::new();
        for i in 0..300usize {
            let (a, b, c) = (rng.pick(&words), rng.pick(&words), rng.pick(&words));
            let shape = shapes[rng.next() % shapes.len()];
            let mut al = alias("p", &format!("a{i}"), vec![plain(&shape(a, b, c))]);
            if i.is_multiple_of(7) {
                al.formats = vec![obj(None, &[&shape(a, b, c)], true)];
            }
            aliases.push(al);
        }
        let (idx, _) = AliasIndex::build(aliases);
        let fill = [
            "web", "prod", "1", "'q r'", "x=1", "", " ", "\n", "DEPLOY", "ſ",
        ];
        let mut checked = 0;
        for _ in 0..800 {
            let n = rng.next() % 6;
            let mut cmd = String::new();
            for j in 0..n {
                if j > 0 {
                    cmd.push(' ');
                }
                let w = if rng.next().is_multiple_of(3) {
                    rng.pick(&fill)
                } else {
                    rng.pick(&words)
                };
                cmd.push_str(&w.replace("{{", "").replace("}}", ""));
            }
            let p = prepare(&cmd);
            let (fast, _) = idx.gather(&p, false);
            let (slow, _) = idx.gather(&p, true);
            let f: Vec<u32> = fast.iter().map(|h| h.id).collect();
            let s: Vec<u32> = slow.iter().map(|h| h.id).collect();
            assert_eq!(f, s, "prefilter changed the result for {cmd:?}");
            checked += s.len();
        }
        assert!(
            checked > 300,
            "generated commands matched too rarely ({checked})"
        );
    }

    #[test]
    fn snapshot_types_are_shareable_across_threads() {
        fn check<T: Send + Sync>() {}
        check::<AliasIndex>();
        check::<Selection>();
        check::<crate::alias::format::CompiledFormat>();
        check::<PreparedCommand>();
        let idx = Arc::new(st2_fixtures());
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let idx = idx.clone();
                std::thread::spawn(move || idx.st2_match("run date on localhost").is_ok())
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    }

    #[test]
    fn levenshtein_bound() {
        assert_eq!(bounded_levenshtein("deploy", "deploi", 2), Some(1));
        assert_eq!(bounded_levenshtein("restrat", "restart", 2), Some(2));
        assert_eq!(bounded_levenshtein("abc", "xyz", 2), None);
        assert_eq!(bounded_levenshtein("", "ab", 2), Some(2));
    }
}
