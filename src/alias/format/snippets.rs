//! st2's own helper regexes (the "snippets"), translated to fancy-regex syntax.
//!
//! st2's `ActionAliasFormatParser` finds trailing `key=value` pairs and the
//! `{{name}}` / `{{name=default}}` placeholders with a handful of fixed regexes.
//! They are rebuilt here with Python's character classes ([`super::chars`]) and
//! shared by step 1 ([`super::command`]) and steps 2–3 ([`super::compile`]); each
//! thread keeps its own copy.

use std::sync::OnceLock;

use fancy_regex::{Regex, RegexBuilder};

use super::chars::{PY_NOT_SPACE, PY_SPACE};
use super::BACKTRACK_LIMIT;

#[derive(Clone)]
pub(super) struct Snippets {
    /// `.*?((pairs\s*)*)$` anchored at the start (re.match), DOTALL.
    pub(super) ending: Regex,
    /// `(?:^|\s+)key=(value)`, DOTALL (findall over the ending run).
    pub(super) pairs: Regex,
    /// `{{key=default}}`, DOTALL (findall over the format).
    pub(super) optional: Regex,
    /// `(\s*){{key=default}}`, no flags (re.sub over the format).
    pub(super) optional_sub: Regex,
    /// `(\s*){{key}}`, no flags (re.sub).
    pub(super) required_sub: Regex,
}

/// Run `f` with this thread's copy of the snippet regexes. Each thread gets its
/// own clone: a regex's match-state pool is cheap for its owner thread but
/// contended when threads share it (the parallel index build would serialise).
pub(super) fn with_snippets<R>(f: impl Fn(&Snippets) -> R) -> R {
    thread_local! {
        static LOCAL: Snippets = shared_snippets().clone();
    }
    // `try_with` fails only while the thread is being torn down.
    LOCAL
        .try_with(|s| f(s))
        .unwrap_or_else(|_| f(shared_snippets()))
}

fn shared_snippets() -> &'static Snippets {
    static S: OnceLock<Snippets> = OnceLock::new();
    S.get_or_init(|| {
        let ws = PY_SPACE;
        let nws = PY_NOT_SPACE;
        let key = format!(r"{ws}*({nws}+?){ws}*");
        let value = format!(r#"""|''|"(.+?)"|'(.+?)'|(\{{.+?\}})|({nws}+)"#);
        let ext_value = r#"""|''|"(.+?)"|'(.+?)'|(\{.+?\})|(.+?)"#;
        let pairs = format!(r"(?:\A|{ws}+){key}=({value})");
        // Python's `$` also matches before a final newline; for this pattern that
        // never changes the result (the greedy `\s*` inside the run consumes the
        // newline first), so `\z` keeps it a plain, delegated regex.
        let ending = format!(r"(?s)\A.*?(({pairs}{ws}*)*)\z");
        let default = format!(r"{ws}*={ws}*(?:{ext_value}){ws}*");
        let optional = format!(r"\{{\{{{key}{default}\}}\}}");
        let required = format!(r"\{{\{{{key}\}}\}}");
        let build = |p: &str| {
            RegexBuilder::new(p)
                .backtrack_limit(BACKTRACK_LIMIT)
                .build()
                .expect("constant st2 snippet regex must compile")
        };
        Snippets {
            ending: build(&ending),
            pairs: build(&format!("(?s){pairs}")),
            optional: build(&format!("(?s){optional}")),
            optional_sub: build(&format!(r"({ws}*){optional}")),
            required_sub: build(&format!(r"({ws}*){required}")),
        }
    })
}
