//! Personal aliases: `!st2alias <name> <command text>`, `!st2unalias <name>`,
//! `!st2aliases`. Each user's own shortcuts, expanded before matching: `!st2 <name> [more
//! words]` runs `<command text> [more words]`, and the access rules judge what it expands
//! to. One level only (an expansion is not expanded again), so no loop is possible.
//! Built-in commands are never shadowed: their words cannot be names.

use std::collections::BTreeMap;

use serde_json::json;

use crate::{acl::KNOWN_BUILTINS, render::Templates};

/// Splits `!st2alias`'s arguments into a name and the command text (a leading command
/// prefix on the text, as people paste it, is dropped).
pub fn define_args<'a>(args: &'a str, prefix: &str) -> Result<(&'a str, &'a str), String> {
    let args = args.trim();
    let (name, text) = args
        .split_once(char::is_whitespace)
        .map(|(n, t)| (n, t.trim()))
        .unwrap_or((args, ""));
    if name.is_empty() || text.is_empty() {
        return Err(format!(
            "Give a name and the command it stands for: `{prefix}alias web1date run date on web1`, then `{prefix} web1date`."
        ));
    }
    let text = text
        .strip_prefix(prefix)
        .map(str::trim_start)
        .unwrap_or(text);
    if text.is_empty() {
        return Err("The command text is empty.".to_owned());
    }
    Ok((name, text))
}

/// Whether `name` is a built-in word (which an alias must not take).
pub fn is_builtin_word(name: &str) -> bool {
    let lower = name.to_lowercase();
    KNOWN_BUILTINS.contains(&lower.as_str())
}

/// The text `text` stands for under `aliases` (names lowercased), or `None` when its first
/// word is no alias of the user's.
pub fn expand(aliases: &BTreeMap<String, String>, text: &str) -> Option<String> {
    let text = text.trim();
    let (first, rest) = text
        .split_once(char::is_whitespace)
        .map(|(f, r)| (f, r.trim()))
        .unwrap_or((text, ""));
    let body = aliases.get(&first.to_lowercase())?;
    Some(if rest.is_empty() {
        body.clone()
    } else {
        format!("{body} {rest}")
    })
}

/// A reply about personal aliases: `kind` is `saved`, `replaced`, `removed`, `not_found`,
/// `list` or `invalid`.
pub fn reply(
    templates: &Templates,
    kind: &str,
    prefix: &str,
    name: &str,
    text: &str,
    list: &[(String, String)],
) -> String {
    templates.render(
        "personal_aliases",
        &json!({
            kind: true,
            "name": name,
            "text": text,
            "command_prefix": prefix,
            "aliases": list.iter().map(|(n, t)| json!({"name": n, "text": t})).collect::<Vec<_>>(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_need_a_name_and_a_text() {
        assert_eq!(
            define_args("d run date on web1", "!st2").unwrap(),
            ("d", "run date on web1")
        );
        assert_eq!(
            define_args("d   !st2 run date", "!st2").unwrap(),
            ("d", "run date")
        );
        assert!(define_args("d", "!st2").is_err());
        assert!(define_args("", "!st2").is_err());
        assert!(define_args("d !st2", "!st2").is_err());
    }

    #[test]
    fn expansion_takes_the_first_word_and_keeps_the_rest() {
        let mut a = BTreeMap::new();
        a.insert("d".to_owned(), "run date on".to_owned());
        assert_eq!(expand(&a, "d web1").as_deref(), Some("run date on web1"));
        assert_eq!(expand(&a, "D").as_deref(), Some("run date on"));
        assert_eq!(expand(&a, "date web1"), None);
        assert_eq!(expand(&a, ""), None);
    }

    #[test]
    fn builtin_words_are_reserved() {
        assert!(is_builtin_word("help"));
        assert!(is_builtin_word("Jobs"));
        assert!(!is_builtin_word("deploy"));
    }
}
