//! The built-in token shapes: one pattern per shape, each with the capture group(s) holding
//! the part to mask and a check that every match must pass before anything is masked.
//!
//! The patterns deliberately avoid `\b` and look-around: they run in fancy-regex's
//! delegated (DFA) engine, and boundaries are checked in plain code instead (a Unicode
//! `\b` makes the lazy DFA give up on non-ASCII text). They also avoid open-ended prefixes
//! (a key-value match starts at the key word itself, not at the start of `DB_PASSWORD`), so
//! that a refused match never makes the scanner retry the same text at every offset.

/// What a match must satisfy to be masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Always masked (a private key block).
    Always,
    /// Not glued to letters or digits on either side (`xAKIA…` is part of a longer word).
    Bounded,
    /// A bare `Bearer <token>`: the token must look like one (see [`looks_like_token`]),
    /// and `Bearer` must start a word.
    BareBearer,
    /// `Authorization: [scheme] <credentials>`: with a scheme, any real value; without
    /// one, it must look like a token (see [`looks_like_token`]).
    Authorization,
    /// A labelled value (`password=…`, `--token …`, a URL's password): masked unless it
    /// is a placeholder or already masked (see [`is_placeholder`]).
    Value,
}

/// One built-in shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// A name for tests and docs.
    pub name: &'static str,
    /// The regex (Rust `regex` syntax, no fancy features).
    pub pattern: &'static str,
    /// The groups holding the secret, tried in order; when none took part, the whole
    /// match is the secret.
    pub groups: &'static [&'static str],
    /// What a match must satisfy.
    pub check: Check,
}

/// The key words whose value is a secret in `key=value` / `key: value` text. A key
/// matches when it *ends* with one of them (`DB_PASSWORD`, `X-Auth-Token`,
/// `St2-Api-Key`, `aws_secret_access_key`), not when it merely contains one
/// (`token_count`, `password_policy`, `max_tokens` are not secrets).
macro_rules! key_words {
    () => {
        r"(?i:passw(?:or)?d|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|[_-]pwd)"
    };
}

/// The built-in shapes, in priority order (at one position, every matching shape masks).
pub(crate) const SHAPES: &[Shape] = &[
    Shape {
        name: "private key block",
        // The whole PEM/OpenSSH/PGP block; an unterminated one masks to the end of the
        // text (a message cut by a length limit must not show the key's first lines).
        pattern: r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)",
        groups: &[],
        check: Check::Always,
    },
    Shape {
        name: "authorization header",
        pattern: r#"(?i:authorization)\\?["']?[ \t]*[:=][ \t]*\\?["']?(?:(?P<scheme>(?i:bearer|basic|token|bot|digest|negotiate))[ \t]+)?(?P<secret>[^\s"'`,;<>\\]+)"#,
        groups: &["secret"],
        check: Check::Authorization,
    },
    Shape {
        name: "bearer token",
        pattern: r"(?i:bearer)[ \t]+(?P<secret>[A-Za-z0-9\-._~+/]+=*)",
        groups: &["secret"],
        check: Check::BareBearer,
    },
    Shape {
        name: "AWS access key id",
        pattern: r"(?:AKIA|ASIA)[A-Z0-9]{16}",
        groups: &[],
        check: Check::Bounded,
    },
    Shape {
        name: "GitHub token",
        pattern: r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}",
        groups: &[],
        check: Check::Bounded,
    },
    Shape {
        name: "Slack token",
        pattern: r"xox[abeprs]-[A-Za-z0-9-]{10,}|xapp-[0-9]+-[A-Za-z0-9-]{10,}",
        groups: &[],
        check: Check::Bounded,
    },
    Shape {
        name: "Slack webhook URL",
        pattern: r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/\-]+)",
        groups: &["secret"],
        check: Check::Always,
    },
    Shape {
        name: "Google API key",
        pattern: r"AIza[0-9A-Za-z_\-]{35}",
        groups: &[],
        check: Check::Bounded,
    },
    Shape {
        name: "JSON web token",
        pattern: r"eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        groups: &[],
        check: Check::Bounded,
    },
    Shape {
        name: "URL credentials",
        pattern: r#"[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s:/?#@"'<>|]+:(?P<secret>[^\s/?#@"'<>|]+)@"#,
        groups: &["secret"],
        check: Check::Value,
    },
    Shape {
        name: "command-line secret flag",
        pattern: r#"--(?i:passw(?:or)?d|passphrase|secret|token|api-key|access-key)[ \t]+(?P<secret>[^\s"'`\-][^\s"'`]*)"#,
        groups: &["secret"],
        check: Check::Value,
    },
    // Order does not matter: every shape matching at a position masks its own part, and
    // the scan resumes after the shortest accepted match (`Authorization: Bearer …` is
    // masked by the header shape, whose match already covers the token).
    Shape {
        name: "secret key-value pair",
        // A key word, an optional closing quote (JSON, Python reprs, JSON escaped inside
        // JSON), `=`, `=>` or `:`, then a value that is `\"escaped\"`, `"double-quoted"`
        // (with `\"` escapes), `'single-quoted'` or bare (up to whitespace, a quote, a
        // backtick, `,`, `;`, `&`, `<` or `>`).
        pattern: concat!(
            key_words!(),
            r#"\\?["']?[ \t]*(?:=>?|:)[ \t]*(?:\\"(?P<edq>[^"\\\r\n]*)\\"|"(?P<dq>(?:[^"\\\r\n]|\\.)*)"|'(?P<sq>(?:[^'\\\r\n]|\\.)*)'|(?P<bare>[^\s"'`,;&<>]+))"#
        ),
        groups: &["edq", "dq", "sq", "bare"],
        check: Check::Value,
    },
];

/// Whether the byte before `start` and the byte at `end` are not ASCII letters or digits.
pub(crate) fn bounded(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    let before = start
        .checked_sub(1)
        .and_then(|i| bytes.get(i))
        .is_some_and(u8::is_ascii_alphanumeric);
    let after = bytes.get(end).is_some_and(u8::is_ascii_alphanumeric);
    !before && !after
}

/// Whether the byte before `start` is not an ASCII letter or digit.
pub(crate) fn starts_word(text: &str, start: usize) -> bool {
    !start
        .checked_sub(1)
        .and_then(|i| text.as_bytes().get(i))
        .is_some_and(u8::is_ascii_alphanumeric)
}

/// A bare credential (after `Bearer`, or after `Authorization:` without a scheme) looks
/// like a token when it has at least `min` characters and is not a plain lower-case word:
/// `Bearer of bad news` and `Bearer internationalization` stay, `Bearer 3f9a…`,
/// `Bearer eyJ…` and `Bearer AbCdEf…` go. (Random 16+ character tokens are all lower-case
/// letters with negligible probability.)
pub(crate) fn looks_like_token(value: &str, min: usize) -> bool {
    value.chars().count() >= min && !value.chars().all(|c| c.is_ascii_lowercase())
}

/// Values that are not secrets even after a secret-sounding key: empty, the opening of a
/// structure, YAML/JSON/Python literals (`secret: true` is st2's own parameter metadata), something already masked
/// (`********` is st2's mask, `mask` is ours, so masking twice changes nothing), template
/// placeholders (`{{ password }}`, `${TOKEN}`, `%(pw)s`), and URLs (`Reset your password:
/// https://…`).
pub(crate) fn is_placeholder(value: &str, mask: &str) -> bool {
    let v = value.trim();
    if v.is_empty() || v == mask || v.chars().all(|c| c == '*' || c == '•') {
        return true;
    }
    // The start of a structure (`"password": {"type": …}`) is not a value.
    if matches!(v, "{" | "[" | "(" | "{}" | "[]" | "()") {
        return true;
    }
    // `"secret": true}}`: a bare value runs into the closing brackets after it.
    let lower = v.trim_end_matches(['}', ']', ')']).to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "true" | "false" | "null" | "none" | "nil" | "yes" | "no" | "undefined"
    ) || v.starts_with("{{")
        || v.starts_with("${")
        || v.starts_with("%(")
        || lower.starts_with("http://")
        || lower.starts_with("https://")
}

/// Literal words (matched ignoring ASCII case) at least one of which every built-in
/// shape's match contains, so that text without any of them cannot hold a shape — the
/// redactor's pre-check. URL credentials (`://` and `@`) are checked apart. Keep in step
/// with [`SHAPES`]: the corpus's true positives fail if a shape's word is missing.
pub(super) const TRIGGERS: &[&str] = &[
    // labelled secrets, flags and the key-value rule
    "passw",
    "passp",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "private",
    "credential",
    "pwd",
    // headers
    "authorization",
    "bearer",
    // token shapes
    "akia",
    "asia",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "xapp-",
    "hooks.slack.com",
    "aiza",
    "eyj",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_compiles_without_fancy_features() {
        for s in SHAPES {
            let re = fancy_regex::Regex::new(s.pattern);
            assert!(re.is_ok(), "{}: {:?}", s.name, re.err());
        }
    }

    #[test]
    fn boundaries_and_token_looks() {
        assert!(bounded("x AKIA y", 2, 6));
        assert!(!bounded("xAKIA y", 1, 5));
        assert!(!bounded("x AKIAy", 2, 6));
        assert!(bounded("AKIA", 0, 4));
        assert!(starts_word("Bearer", 0));
        assert!(!starts_word("xBearer", 1));
        assert!(!looks_like_token("internationalization", 16));
        assert!(looks_like_token("0123456789abcdef", 16));
        assert!(!looks_like_token("0123456789abcde", 16));
        assert!(is_placeholder("********", "[redacted]"));
        assert!(is_placeholder("[redacted]", "[redacted]"));
        assert!(is_placeholder("True", "[redacted]"));
        assert!(is_placeholder("{{password}}", "[redacted]"));
        assert!(!is_placeholder("hunter2", "[redacted]"));
    }
}
