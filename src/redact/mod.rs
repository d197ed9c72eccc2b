//! Secrets kept out of chat: every message the bridge sends is passed through a
//! [`Redactor`] first, which masks values that look like secrets.
//!
//! # Why
//!
//! ChatOps puts command output in rooms many people read, and rooms are logged, searched
//! and exported. StackStorm masks parameters marked `secret: true` in its API answers, but
//! not what an action *prints*: a careless action that echoes a password, a `curl -v` that
//! shows an `Authorization` header, or an environment dump with `AWS_SECRET_ACCESS_KEY`
//! reaches chat verbatim. The bridge is the last place that can stop it.
//!
//! # What is masked
//!
//! Each masked part is replaced, verbatim, by [`RedactConfig::mask`] (default
//! [`DEFAULT_MASK`], `[redacted]`: plain ASCII, readable in every chat platform, not a
//! Markdown or mrkdwn control sequence on its own). Only the secret itself is replaced —
//! the key, header name, user name or URL around it stays, so the message still says what
//! was hidden.
//!
//! 1. **Known secret values**: every occurrence (exact substring) of the values passed to
//!    [`Redactor::redact`] — typically the values of the parameters StackStorm marks
//!    `secret: true` for the action the command ran (`St2Client::action_secret_parameters`
//!    names them). Values shorter than [`RedactConfig::min_secret_len`] characters are
//!    ignored: masking `a` or `no` everywhere would wreck the text and protect nothing.
//!    Overlapping values mask the union of their occurrences.
//! 2. **Operator patterns** ([`RedactConfig::patterns`]): regexes (fancy-regex syntax, a
//!    superset of the `regex` crate's); a capture group named `secret` masks only that
//!    group, otherwise the whole match is masked.
//! 3. **Built-in token shapes** ([`RedactConfig::shapes`]):
//!    - private key blocks, `-----BEGIN … PRIVATE KEY-----` to `-----END … PRIVATE
//!      KEY-----` (RSA, EC, DSA, OpenSSH, PKCS#8, encrypted, PGP `… PRIVATE KEY BLOCK`),
//!      whole; an unterminated block masks to the end of the text;
//!    - `Authorization: <scheme> <credentials>` (the credentials), and a bare
//!      `Bearer <token>` when the token looks like one (16+ characters, not a plain
//!      lower-case word);
//!    - AWS access key ids (`AKIA`/`ASIA` + 16 upper-case letters or digits, not part of
//!      a longer word), and AWS secret keys when labelled (`aws_secret_access_key = …`,
//!      through the key-value rule);
//!    - GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack tokens
//!      (`xoxa-`, `xoxb-`, `xoxe-`, `xoxp-`, `xoxr-`, `xoxs-`, `xapp-`), Slack webhook URLs
//!      (the path after `hooks.slack.com/services/`), Google API keys (`AIza…`), JSON web
//!      tokens (three base64url segments, the first starting `eyJ`);
//!    - labelled secrets, `key=value`, `key: value`, `key => value`, `"key": "value"`,
//!      `'key': 'value'` and `\"key\": \"value\"` (JSON inside JSON), where the key *ends*
//!      with `password`, `passwd`, `passphrase`, `secret`, `token`, `api_key`/`api-key`/
//!      `apikey`, `access_key`, `private_key`, `credential(s)` or `_pwd`, in any case: the
//!      value is masked, the key kept. This covers StackStorm's own `St2-Api-Key: …`,
//!      `X-Auth-Token: …`, `ST2_AUTH_TOKEN=…` and `api_key=…`. Quoted values are masked
//!      whole (spaces included, escapes honoured); a bare value ends at whitespace, a
//!      quote, a backtick, `,`, `;`, `&`, `<` or `>`;
//!    - command-line flags `--password …`, `--token …`, `--secret …`, `--api-key …`,
//!      `--access-key …`, `--passphrase …` (the next word);
//!    - URLs with credentials, `scheme://user:password@host` (the password only).
//!
//! # What is deliberately not masked
//!
//! False positives hide what operators need to read, and train them to turn the feature
//! off, so the shapes are narrow:
//!
//! - hexadecimal ids of any length (git SHAs, st2's 24-hex execution ids, UUIDs, hashes),
//!   dates, host names, st2 action refs (`core.local`), Slack mentions (`<@U123>`), URLs
//!   without credentials, and base64-looking words: high entropy alone is not a secret;
//! - a key word without a separator: `password reset instructions sent`, `the token was
//!   rotated`, `set password for {{user}}`; and keys that merely contain a key word
//!   (`token_count=3`, `max_tokens=4096`, `password_policy=strict`);
//! - values that are not secrets after a secret-sounding key: `secret: true` (st2's own
//!   parameter metadata), `true`/`false`/`null`/`none`/`yes`/`no`, placeholders
//!   (`{{ password }}`, `${TOKEN}`, `%(pw)s`), URLs (`Reset your password: https://…`), and
//!   values already masked (`********`, st2's mask, or the configured mask: redacting twice
//!   changes nothing);
//! - `Bearer` followed by an ordinary word: `Bearer of bad news` passes unchanged (a bare
//!   `Bearer` needs a 16+ character token that is not all lower-case letters; after
//!   `Authorization:` with a scheme, any value is masked);
//! - public material: `-----BEGIN CERTIFICATE-----`, `-----BEGIN PUBLIC KEY-----`.
//!
//! Known over-masking, accepted: prose such as `Enter your password: then press enter`
//! masks `then`; a bare value swallows trailing punctuation (`password=abc).` masks
//! `abc).`).
//!
//! # Cost
//!
//! This runs on every outgoing message. The built-in shapes and the operator patterns
//! are one [`fancy_regex::RegexSet`]: a single multi-pattern DFA scan finds the earliest
//! candidate, so text with no candidate at all costs one linear pass and comes back as
//! [`Cow::Borrowed`] (the text is never copied unless something is masked). The built-in patterns use no fancy features (no
//! look-around, no `\b`; boundaries are checked in code), so they stay in the DFA engine.
//! Known values are plain substring searches. Before the scan, one Aho-Corasick pass
//! looks for the literal words the built-in shapes need (`passw`, `token`, `bearer`,
//! `ghp_`, `eyj`, …, [`shapes::TRIGGERS`]); ordinary output has none and skips the scan
//! (measured in `cargo bench --bench delivery -- mask`).
//!
//! # Safety
//!
//! Only byte ranges reported by the regex engine and by `str::match_indices` are
//! replaced, so a UTF-8 character is never split. Nothing panics on any input. If an
//! operator pattern with fancy features fails at run time (fancy-regex's backtracking
//! limit), the redactor fails closed: everything from the point of failure to the end of
//! the text is masked. This module never logs, and never keeps, the text it masks.

mod outbound;
pub mod pieces;
mod shapes;

pub use outbound::SecretMask;

#[cfg(test)]
mod corpus;

use std::{borrow::Cow, fmt, ops::Range, sync::Arc};

use fancy_regex::{Regex, RegexInput, RegexSet, RegexSetMatch, RegexSetOptions};
use serde::Deserialize;

use self::shapes::{Check, SHAPES};

/// The most memory each of the scan's two lazy DFAs may keep, per thread that masks text.
/// fancy-regex's default is 64 MiB each, and the DFAs' states grow with the variety of the
/// text scanned, not with its amount (random ids and tokens are new text every time): 1,000
/// people logging in grew them to 8.4 MB over the bridge's threads, 1,000 different texts
/// full of secrets to 12 MB, and a long-running bridge would keep growing them towards the
/// cap. Bounded, a cache is cleared when full and, when that happens too often, the search
/// is finished by the NFA engine: those 1,000 texts take 31 ms to mask instead of 1.9
/// (`cargo bench --bench delivery -- mask`; 2 MiB is no faster), and text without one of
/// the trigger words is not scanned at all.
const SCAN_CACHE_BYTES: usize = 512 * 1024;

/// The default mask: plain ASCII, so it survives every platform's escaping unchanged.
pub const DEFAULT_MASK: &str = "[redacted]";

/// The default [`RedactConfig::min_secret_len`].
pub const DEFAULT_MIN_SECRET_LEN: usize = 4;

/// The shortest bare `Bearer` token, or `Authorization:` value without a scheme, that is
/// masked (see the module docs: `Bearer of bad news` is not a secret).
const MIN_BARE_TOKEN_CHARS: usize = 16;

/// The shortest `Authorization:` value without a scheme that is masked.
const MIN_SCHEMELESS_AUTHORIZATION_CHARS: usize = 8;

/// The `redact` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactConfig {
    /// Whether anything is masked at all (default `true`). Off, [`Redactor::redact`]
    /// returns every text unchanged, known secret values included.
    pub enabled: bool,
    /// Extra regexes from the operator (fancy-regex syntax). A capture group named
    /// `secret` masks only that group; otherwise the whole match is masked. A pattern
    /// that matches the empty string is refused (it would mask nothing, everywhere).
    pub patterns: Vec<String>,
    /// Whether the built-in token shapes are masked (default `true`; see the module docs).
    pub shapes: bool,
    /// What replaces each secret (default [`DEFAULT_MASK`], `[redacted]`). Inserted
    /// verbatim: no platform escaping is applied to it here. Must not be empty nor hold
    /// control characters.
    pub mask: String,
    /// Known secret values shorter than this many characters are not masked (default
    /// [`DEFAULT_MIN_SECRET_LEN`], 4): masking `a` or `no` everywhere would wreck the
    /// text. At least 1.
    pub min_secret_len: usize,
}

impl Default for RedactConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            patterns: Vec::new(),
            shapes: true,
            mask: DEFAULT_MASK.to_owned(),
            min_secret_len: DEFAULT_MIN_SECRET_LEN,
        }
    }
}

/// A setting [`Redactor::new`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct RedactProblem {
    /// The setting, as written in the configuration: `redact.patterns[2]`,
    /// `redact.mask`, `redact.min_secret_len`.
    pub key: String,
    /// Why it was refused (for an operator; never holds a secret).
    pub reason: String,
}

impl RedactProblem {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// What one pattern of the set is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A built-in shape: its secret groups and check.
    Shape {
        groups: &'static [&'static str],
        check: Check,
    },
    /// An operator pattern (its `secret` group, or the whole match).
    Operator,
}

/// Masks secrets in outgoing text (see the module docs). Build it once from the
/// configuration and share it (`Arc<Redactor>`): it is `Send + Sync` and
/// [`Redactor::redact`] takes `&self`.
pub struct Redactor {
    enabled: bool,
    mask: String,
    min_secret_len: usize,
    /// The built-in shapes (when on) followed by the operator patterns; `None` when
    /// there are none.
    set: Option<RegexSet>,
    /// What each pattern of `set` is, by index.
    kinds: Vec<Kind>,
    /// The words one of the built-in shapes needs (see [`shapes::TRIGGERS`]): text with
    /// none of them skips the scan. `None` with operator patterns, which can match
    /// anything.
    triggers: Option<aho_corasick::AhoCorasick>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("enabled", &self.enabled)
            .field("mask", &self.mask)
            .field("min_secret_len", &self.min_secret_len)
            .field("patterns", &self.kinds.len())
            .finish()
    }
}

impl Redactor {
    /// Builds a redactor, or says every setting that is wrong (`redact.patterns[i]` for
    /// each regex that does not compile or matches the empty string, `redact.mask`,
    /// `redact.min_secret_len`).
    pub fn new(config: &RedactConfig) -> Result<Redactor, Vec<RedactProblem>> {
        Self::with_scan_cache(config, SCAN_CACHE_BYTES)
    }

    /// [`Redactor::new`] with `scan_cache` bytes for each of the scan's lazy DFAs.
    fn with_scan_cache(
        config: &RedactConfig,
        scan_cache: usize,
    ) -> Result<Redactor, Vec<RedactProblem>> {
        let mut problems = Vec::new();
        if config.mask.is_empty() {
            problems.push(RedactProblem::new("redact.mask", "must not be empty"));
        } else if config.mask.chars().any(char::is_control) {
            problems.push(RedactProblem::new(
                "redact.mask",
                "must not contain control characters (line breaks, tabs, escapes)",
            ));
        }
        if config.min_secret_len == 0 {
            problems.push(RedactProblem::new(
                "redact.min_secret_len",
                "must be at least 1 (an empty value would match everywhere)",
            ));
        }
        let mut regexes: Vec<Arc<Regex>> = Vec::new();
        let mut kinds = Vec::new();
        if config.shapes {
            for shape in SHAPES {
                match Regex::new(shape.pattern) {
                    Ok(re) => {
                        regexes.push(Arc::new(re));
                        kinds.push(Kind::Shape {
                            groups: shape.groups,
                            check: shape.check,
                        });
                    }
                    // Unreachable (a unit test compiles every shape); said, not panicked.
                    Err(e) => problems.push(RedactProblem::new(
                        "redact.shapes",
                        format!("built-in shape `{}` does not compile: {e}", shape.name),
                    )),
                }
            }
        }
        for (i, pattern) in config.patterns.iter().enumerate() {
            let key = format!("redact.patterns[{i}]");
            match Regex::new(pattern) {
                Ok(re) => {
                    if re.is_match("").unwrap_or(false) {
                        problems.push(RedactProblem::new(
                            key,
                            "matches the empty string, so it would mask nothing everywhere; make it require at least one character",
                        ));
                    } else {
                        regexes.push(Arc::new(re));
                        kinds.push(Kind::Operator);
                    }
                }
                Err(e) => problems.push(RedactProblem::new(
                    key,
                    format!("not a valid regular expression: {e}"),
                )),
            }
        }
        let set = if regexes.is_empty() || !problems.is_empty() {
            None
        } else {
            let options = RegexSetOptions::default()
                .meta_hybrid_cache_capacity(scan_cache)
                .overlapping_dfa_cache_capacity(scan_cache);
            match RegexSet::from_regexes(regexes, options) {
                Ok(set) => Some(set),
                Err(e) => {
                    problems.push(RedactProblem::new(
                        "redact.patterns",
                        format!("the patterns cannot be combined into one scan: {e}"),
                    ));
                    None
                }
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let triggers = if config.patterns.is_empty() {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(shapes::TRIGGERS)
                .ok()
        } else {
            None
        };
        Ok(Redactor {
            enabled: config.enabled,
            mask: config.mask.clone(),
            min_secret_len: config.min_secret_len,
            set,
            kinds,
            triggers,
        })
    }

    /// The mask each secret is replaced with.
    pub fn mask(&self) -> &str {
        &self.mask
    }

    /// `text` with every secret masked: each occurrence of the `secret_values` at least
    /// [`RedactConfig::min_secret_len`] characters long (and of each one's trimmed form),
    /// operator patterns and built-in shapes (see the module docs). Overlapping and
    /// adjacent secrets become one mask. [`Cow::Borrowed`] when nothing was masked.
    pub fn redact<'a>(&self, text: &'a str, secret_values: &[&str]) -> Cow<'a, str> {
        if !self.enabled || text.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut ranges: Vec<Range<usize>> = Vec::new();
        self.value_ranges(text, secret_values, &mut ranges);
        self.pattern_ranges(text, &mut ranges);
        if ranges.is_empty() {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(splice(text, ranges, &self.mask))
        }
    }

    /// Whether [`Redactor::redact`] would leave `text` unchanged.
    pub fn is_clean(&self, text: &str, secret_values: &[&str]) -> bool {
        matches!(self.redact(text, secret_values), Cow::Borrowed(_))
    }

    /// The occurrences of the known values, longest value first.
    fn value_ranges(&self, text: &str, values: &[&str], ranges: &mut Vec<Range<usize>>) {
        let mut wanted: Vec<&str> = values
            .iter()
            .flat_map(|v| [*v, v.trim()])
            .filter(|v| !v.is_empty() && v.chars().count() >= self.min_secret_len)
            .collect();
        if wanted.is_empty() {
            return;
        }
        // Longest first; equal values once.
        wanted.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        wanted.dedup();
        for value in wanted {
            ranges.extend(
                text.match_indices(value)
                    .map(|(at, found)| at..at + found.len()),
            );
        }
    }

    /// The ranges the patterns mask. At each position where some pattern matches, every
    /// pattern matching there is considered; the scan then goes on after the shortest
    /// accepted match (or just past a refused one's start, or its secret's start, so a
    /// refused long match is not rescanned at every offset).
    fn pattern_ranges(&self, text: &str, ranges: &mut Vec<Range<usize>>) {
        let Some(set) = &self.set else {
            return;
        };
        if let Some(triggers) = &self.triggers {
            // A URL's credentials are the one shape without a word of its own.
            let url_credentials = text.contains("://") && text.contains('@');
            if !url_credentials && !triggers.is_match(text) {
                return;
            }
        }
        let mut pos = 0;
        while pos < text.len() {
            let found = match set.find_input(RegexInput::new(text).from_pos(pos)) {
                Ok(Some(found)) => found,
                Ok(None) => return,
                Err(_) => {
                    // Fail closed (see the module docs).
                    ranges.push(pos..text.len());
                    return;
                }
            };
            let start = found.start();
            let mut resume: Option<usize> = None;
            let mut refused_resume = next_char(text, start);
            for item in found {
                let m = match item {
                    Ok(m) => m,
                    Err(_) => {
                        ranges.push(start..text.len());
                        return;
                    }
                };
                let (secret, accepted) = self.judge(text, &m);
                if accepted {
                    if !secret.is_empty() {
                        ranges.push(secret);
                    }
                    let end = m.end().max(next_char(text, start));
                    resume = Some(resume.map_or(end, |r| r.min(end)));
                } else if secret.start > refused_resume {
                    refused_resume = secret.start;
                }
            }
            pos = resume.unwrap_or(refused_resume);
        }
    }

    /// The secret part of a match, and whether it is to be masked.
    fn judge(&self, text: &str, m: &RegexSetMatch<'_, str>) -> (Range<usize>, bool) {
        let whole = m.start()..m.end();
        let Some(kind) = self.kinds.get(m.pattern()) else {
            return (whole, true);
        };
        let caps = m.captures();
        let (groups, check): (&[&str], Check) = match kind {
            Kind::Shape { groups, check } => (groups, *check),
            Kind::Operator => (&["secret"], Check::Always),
        };
        let secret = groups
            .iter()
            .find_map(|g| caps.name(g))
            .map_or(whole.clone(), |g| g.start()..g.end());
        let value = text.get(secret.clone()).unwrap_or("");
        let accepted = match check {
            Check::Always => true,
            Check::Bounded => shapes::bounded(text, whole.start, whole.end),
            Check::BareBearer => {
                shapes::starts_word(text, whole.start)
                    && shapes::looks_like_token(value, MIN_BARE_TOKEN_CHARS)
            }
            Check::Authorization => {
                !shapes::is_placeholder(value, &self.mask)
                    && (caps.name("scheme").is_some()
                        || shapes::looks_like_token(value, MIN_SCHEMELESS_AUTHORIZATION_CHARS))
            }
            Check::Value => !shapes::is_placeholder(value, &self.mask),
        };
        (secret, accepted)
    }
}

/// The byte index just past the character starting at `at` (or the end).
fn next_char(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|rest| rest.chars().next())
        .map_or(text.len(), |c| at + c.len_utf8())
}

/// `text` with each of `ranges` (merged where they overlap or touch) replaced by `mask`.
fn splice(text: &str, mut ranges: Vec<Range<usize>>, mask: &str) -> String {
    ranges.sort_unstable_by_key(|r| (r.start, r.end));
    let mut out = String::with_capacity(text.len() + mask.len() * ranges.len());
    let mut copied = 0;
    let mut current: Option<Range<usize>> = None;
    let flush = |r: Range<usize>, out: &mut String, copied: &mut usize| {
        // Ranges come from the regex engine and `match_indices`: char boundaries.
        if let Some(before) = text.get(*copied..r.start) {
            out.push_str(before);
            out.push_str(mask);
            *copied = r.end;
        }
    };
    for r in ranges {
        if r.is_empty() {
            continue;
        }
        current = match current {
            Some(c) if r.start <= c.end => Some(c.start..c.end.max(r.end)),
            Some(c) => {
                flush(c, &mut out, &mut copied);
                Some(r)
            }
            None => Some(r),
        };
    }
    if let Some(c) = current {
        flush(c, &mut out, &mut copied);
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn redactor() -> Redactor {
        match Redactor::new(&RedactConfig::default()) {
            Ok(r) => r,
            Err(p) => panic!("the default configuration is refused: {p:?}"),
        }
    }

    /// Text of great variety outgrows the scan's bounded DFA caches (`SCAN_CACHE_BYTES`;
    /// 1,000 texts like these grow unbounded ones to about 12 MB): the caches are cleared
    /// and the NFA finishes the searches, and every text is masked exactly as with caches
    /// that never fill, in particular not masked to its end as a failed search would be.
    #[test]
    fn a_full_scan_cache_masks_exactly_as_an_unbounded_one() {
        let config = RedactConfig::default();
        let (small, unbounded) = match (
            Redactor::with_scan_cache(&config, 64 * 1024),
            Redactor::with_scan_cache(&config, 256 * 1024 * 1024),
        ) {
            (Ok(small), Ok(unbounded)) => (small, unbounded),
            _ => panic!("the default configuration is refused"),
        };
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut masked_somewhere = 0;
        for i in 0..2_000 {
            let text = format!(
                "user{i}: token {:016x}{:016x} set; see https://bridge.test/login/{:x} \
                 (password={:x}, api_key={:012x}) for web{i}",
                next(),
                next(),
                next(),
                next() & 0xffff_ffff,
                next() & 0xffff_ffff_ffff
            );
            let (a, b) = (small.redact(&text, &[]), unbounded.redact(&text, &[]));
            assert_eq!(a, b, "masked differently: {text}");
            assert!(a.ends_with(&format!(" for web{i}")), "masked too much: {a}");
            masked_somewhere += usize::from(a.contains("[redacted]"));
        }
        assert_eq!(masked_somewhere, 2_000, "every text has a secret to mask");
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Redactor>();
    }

    #[test]
    fn the_configuration_reads_with_defaults_and_refuses_unknown_keys() {
        let c: RedactConfig = toml::from_str("").unwrap();
        assert_eq!(c, RedactConfig::default());
        assert!(c.enabled && c.shapes);
        assert_eq!(c.mask, "[redacted]");
        assert_eq!(c.min_secret_len, 4);
        let c: RedactConfig =
            toml::from_str("patterns = ['ticket-(?P<secret>[0-9]+)']\nmask = '***'").unwrap();
        assert_eq!(c.patterns.len(), 1);
        assert!(toml::from_str::<RedactConfig>("masks = 'x'").is_err());
    }

    #[test]
    fn bad_settings_are_named() {
        let problems = Redactor::new(&RedactConfig {
            patterns: vec!["ok-[0-9]+".into(), "(".into(), "x*".into()],
            mask: String::new(),
            min_secret_len: 0,
            ..RedactConfig::default()
        })
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "redact.mask",
                "redact.min_secret_len",
                "redact.patterns[1]",
                "redact.patterns[2]"
            ]
        );
        assert!(problems[2]
            .to_string()
            .starts_with("redact.patterns[1]: not a valid"));
        let problems = Redactor::new(&RedactConfig {
            mask: "a\nb".into(),
            ..RedactConfig::default()
        })
        .unwrap_err();
        assert_eq!(problems[0].key, "redact.mask");
    }

    #[test]
    fn known_values_mask_longest_first_and_short_ones_are_ignored() {
        let r = redactor();
        assert_eq!(
            r.redact("user bob pw hunter2 and hunter2!", &["hunter2"]),
            "user bob pw [redacted] and [redacted]!"
        );
        // Overlapping values: the union is masked, as one.
        assert_eq!(
            r.redact("xx abcdefgh yy", &["abcd", "cdefgh"]),
            "xx [redacted] yy"
        );
        // Too short, empty or only blanks: ignored.
        assert!(r.is_clean("a b c abc", &["abc", "", "   "]));
        // A value with surrounding blanks masks its trimmed form too.
        assert_eq!(r.redact("pw s3cret!", &[" s3cret! "]), "pw [redacted]");
        // Non-ASCII values and text.
        assert_eq!(
            r.redact("mot de passe: «ünïcødé»", &["ünïcødé"])
                .matches("[redacted]")
                .count(),
            1
        );
    }

    #[test]
    fn operator_patterns_mask_their_secret_group_or_the_whole_match() {
        let r = Redactor::new(&RedactConfig {
            patterns: vec![
                r"ticket-(?P<secret>[0-9]{4,})".into(),
                r"INTERNAL-[A-Z]{3}".into(),
                r"(?<=pin )[0-9]{4}".into(),
            ],
            ..RedactConfig::default()
        })
        .unwrap();
        assert_eq!(
            r.redact("see ticket-12345 and INTERNAL-ABC, pin 1234", &[]),
            "see ticket-[redacted] and [redacted], pin [redacted]"
        );
        assert!(r.is_clean("ticket-12 INTERNAL-AB", &[]));
    }

    #[test]
    fn disabled_or_shapeless_redactors() {
        let off = Redactor::new(&RedactConfig {
            enabled: false,
            ..RedactConfig::default()
        })
        .unwrap();
        assert!(off.is_clean("password=hunter2 hunter2", &["hunter2"]));
        let no_shapes = Redactor::new(&RedactConfig {
            shapes: false,
            mask: "***".into(),
            ..RedactConfig::default()
        })
        .unwrap();
        assert_eq!(no_shapes.mask(), "***");
        assert!(no_shapes.is_clean("password=hunter2", &[]));
        assert_eq!(
            no_shapes.redact("password=hunter2", &["hunter2"]),
            "password=***"
        );
    }

    #[test]
    fn masking_twice_changes_nothing() {
        let r = redactor();
        for text in [
            "password=hunter2 token: 'abc def' Authorization: Bearer abcdefghij",
            "https://bob:pw1234@db.example.com/x AKIAABCDEFGHIJKLMNOP",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
        ] {
            let once = r.redact(text, &[]).into_owned();
            assert_ne!(once, text);
            assert_eq!(r.redact(&once, &[]), once, "{text}");
        }
    }

    #[test]
    fn ranges_never_split_characters() {
        let r = redactor();
        let text = "ключ password=пароль🔑 и token=\"秘密 值\" ✓";
        let out = r.redact(text, &["пароль"]);
        assert_eq!(out, "ключ password=[redacted] и token=\"[redacted]\" ✓");
    }

    #[test]
    fn a_refused_long_match_is_not_rescanned_at_every_offset() {
        // Regression guard for quadratic time: many refused candidates in a row.
        let r = redactor();
        let text = "secret: true ".repeat(5000) + &"Bearer of bad news ".repeat(5000);
        let started = std::time::Instant::now();
        assert!(r.is_clean(&text, &[]));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    /// Text built from these words has no candidate for any shape.
    const PLAIN_WORDS: &[&str] = &[
        "deploy",
        "web1",
        "to",
        "prod",
        "the",
        "was",
        "rotated",
        "5f1d2a3b4c5d6e7f8a9b0c1d",
        "core.local",
        "<@U123>",
        "2024-05-01T10:00:00Z",
        "ok",
        "é",
        "日本",
        "\n",
        "-",
        "*bold*",
        "`code`",
        "https://example.com/x",
        "env=prod",
        "a1b2",
    ];

    /// Pieces of the built-in shapes, whole and broken, for the pre-check property.
    const SHAPE_PIECES: &[&str] = &[
        "password=hunter22",
        "PassWord: \"two words\"",
        "api-key",
        "Authorization: Basic dXNlcjpwYXNz",
        "Bearer abcdefghijklmnop1234",
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "xoxb-1234567890-abcdefghij",
        "https://user:pa55@host/x",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        "-----BEGIN RSA PRIVATE KEY-----",
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
        "hooks.slack.com/services/T0/B0/xyz",
        "--token abc123",
        "db_pwd=x9",
        "credentials: s3cr3t",
        "deploy web to prod",
        "5f1d2a3b4c5d6e7f8a9b0c1d",
        "key",
        "pass",
        "@",
        "://",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any text, any values: no panic, and the output never contains a known value
        /// of at least `min_secret_len` characters. (Values are drawn from characters
        /// the mask does not use, so a value cannot reappear out of a mask and the text
        /// next to it.)
        #[test]
        fn known_values_never_survive(
            text in "(?s).{0,200}",
            values in proptest::collection::vec("[A-Z0-9@#%!é]{0,12}", 0..4),
            insert_at in 0usize..200,
        ) {
            let r = redactor();
            // Put the values into the text too, so they are found.
            let mut text = text;
            let at = text.char_indices().map(|(i, _)| i).nth(insert_at).unwrap_or(text.len());
            text.insert_str(at, &values.concat());
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let out = r.redact(&text, &refs);
            for v in &values {
                if v.chars().count() >= 4 {
                    prop_assert!(!out.contains(v.as_str()), "{v:?} survived in {out:?}");
                }
            }
        }

        /// Arbitrary text never panics, and masking a masked text changes nothing more
        /// than the first pass did for known values.
        #[test]
        fn any_text_is_handled(text in "(?s).{0,300}") {
            let r = redactor();
            let out = r.redact(&text, &[]);
            prop_assert!(out.len() <= text.len() + text.len() * DEFAULT_MASK.len() + 1);
        }

        /// The pre-check never changes the outcome: text made of shape-like pieces is
        /// masked exactly as a full scan masks it.
        #[test]
        fn the_pre_check_skips_only_text_the_scan_would_leave(
            pieces in proptest::collection::vec(proptest::sample::select(SHAPE_PIECES), 0..12),
            filler in "[ a-zA-Z0-9=:_./@-]{0,20}",
        ) {
            let text = pieces.join(&filler);
            let quick = redactor();
            let mut full = redactor();
            full.triggers = None;
            prop_assert_eq!(quick.redact(&text, &[]), full.redact(&text, &[]), "{:?}", text);
        }

        /// Text without any candidate comes back borrowed.
        #[test]
        fn plain_text_is_borrowed(words in proptest::collection::vec(proptest::sample::select(PLAIN_WORDS), 0..40)) {
            let text = words.join(" ");
            let r = redactor();
            prop_assert!(matches!(r.redact(&text, &[]), Cow::Borrowed(_)), "{text:?}");
        }
    }
}
