//! `!st2help [words] [--pack P] [--limit N] [--offset N]`: the commands a person can type,
//! by pack, one page at a time (template `help`; bad arguments: `unknown_command`).
//!
//! The filter is words, never a regular expression ([`help_matching_words`]): a chat user's
//! filter must not run as a pattern on the bridge.

use serde_json::{json, Value};

use super::{not_ready, Reply};
use crate::{
    alias::{help::help_matching_words, AliasIndex},
    render::Templates,
};

/// Arguments of `!st2help [filter] [--pack P] [--limit N] [--offset N]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HelpArgs {
    /// Words that must all occur in an entry (its display, description or pack).
    pub filter: Option<String>,
    /// Only this pack (exact match).
    pub pack: Option<String>,
    /// Page size; `None` means the configured default.
    pub limit: Option<usize>,
    /// Entries to skip.
    pub offset: usize,
}

/// Parses the help arguments; the error says which argument was wrong.
pub fn parse_help_args(args: &str) -> Result<HelpArgs, String> {
    let mut out = HelpArgs::default();
    let mut words = args.split_whitespace();
    let mut filter_words: Vec<String> = Vec::new();
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (word, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .map(str::to_owned)
                .or_else(|| words.next().map(str::to_owned))
                .ok_or_else(|| format!("`{name}` needs a value"))
        };
        match flag {
            "--pack" => out.pack = Some(value("--pack")?),
            "--filter" => filter_words.push(value("--filter")?),
            "--limit" => {
                let v = value("--limit")?;
                out.limit = Some(
                    v.parse()
                        .map_err(|_| format!("`--limit` takes a whole number, not `{v}`"))?,
                );
            }
            "--offset" => {
                let v = value("--offset")?;
                out.offset = v
                    .parse()
                    .map_err(|_| format!("`--offset` takes a whole number, not `{v}`"))?;
            }
            f if f.starts_with("--") => return Err(format!("unknown option `{f}`")),
            _ => filter_words.push(word.to_owned()),
        }
    }
    if !filter_words.is_empty() {
        out.filter = Some(filter_words.join(" "));
    }
    Ok(out)
}

/// Page sizes from the configuration (`bot.help_page_size`, `bot.help_max_page_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelpPaging {
    /// Entries on a page when `--limit` is not given.
    pub default_size: usize,
    /// The largest page `--limit` can ask for.
    pub max_size: usize,
}

/// The answer to `{prefix}help {args}`. `aliases` is `None` until the alias list was
/// loaded from StackStorm once. `prefix` is the bot and plugin prefixes together (`!st2`).
///
/// `local` are the local commands (`[[commands]]`: name and help), listed after the
/// aliases when no filter is given.
pub fn reply(
    templates: &Templates,
    aliases: Option<&AliasIndex>,
    prefix: &str,
    args: &str,
    paging: HelpPaging,
    local: &[(&str, &str)],
) -> Reply {
    let help_command = format!("{prefix}help");
    let parsed = match parse_help_args(args) {
        Ok(a) => a,
        Err(reason) => {
            return Reply::invalid(templates.render(
                "unknown_command",
                &json!({"command": format!("{help_command} {args}"), "reason": reason, "help_command": help_command}),
            ));
        }
    };
    let Some(index) = aliases else {
        return Reply::invalid(not_ready(templates));
    };
    let limit = parsed
        .limit
        .unwrap_or(paging.default_size)
        .clamp(1, paging.max_size);
    // Words, not a regex: a chat user's filter never runs as a pattern here.
    let page = help_matching_words(
        index.aliases(),
        parsed.filter.as_deref().unwrap_or(""),
        parsed.pack.as_deref(),
        limit,
        parsed.offset,
    );
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for entry in &page.entries {
        let item = json!({"display": entry.display, "description": entry.description});
        match groups.last_mut() {
            Some((pack, items)) if *pack == entry.pack => items.push(item),
            _ => groups.push((entry.pack.clone(), vec![item])),
        }
    }
    let first = parsed.offset + 1;
    let last = parsed.offset + page.entries.len();
    let mut filter_args = Vec::new();
    if let Some(f) = &parsed.filter {
        filter_args.push(f.clone());
    }
    if let Some(p) = &parsed.pack {
        filter_args.push(format!("--pack {p}"));
    }
    if parsed.limit.is_some() {
        filter_args.push(format!("--limit {limit}"));
    }
    Reply::answer(templates.render(
        "help",
        &json!({
            "groups": groups.into_iter().map(|(pack, entries)| json!({"pack": pack, "entries": entries})).collect::<Vec<_>>(),
            "command_prefix": prefix,
            "help_command": help_command,
            "filter_args": filter_args.join(" "),
            "first": first,
            "last": last,
            "available": page.available,
            "next_offset": (last < page.available).then_some(last),
            "local_commands": local.iter().map(|(name, help)| json!({"name": name, "help": help})).collect::<Vec<_>>(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{test_support::templates, ReplyKind};

    const PAGING: HelpPaging = HelpPaging {
        default_size: 3,
        max_size: 4,
    };

    /// Five displays in two packs (`core` first), one alias without a description.
    fn aliases() -> AliasIndex {
        let list = json!([
            {"name": "date", "pack": "core", "action_ref": "core.local", "description": "Prints the date",
             "formats": ["date on {{hosts}}"]},
            {"name": "run", "pack": "core", "action_ref": "core.remote", "description": "Runs a command",
             "formats": [{"display": "run <cmd> on <hosts>", "representation": ["run {{cmd}} on {{hosts}}"]},
                         "run {{cmd}}"]},
            {"name": "deploy", "pack": "ops", "action_ref": "ops.deploy",
             "formats": ["deploy {{app}}"]},
            {"name": "restart", "pack": "ops", "action_ref": "ops.restart", "description": "Restarts a service",
             "formats": ["restart {{service}}"]},
        ]);
        let (aliases, problems) = crate::alias::model::parse_alias_list(&list).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        AliasIndex::build(aliases).0
    }

    fn help(args: &str) -> Reply {
        reply(&templates(), Some(&aliases()), "!st2", args, PAGING, &[])
    }

    #[test]
    fn help_args_parse_flags_and_filter() {
        let a = parse_help_args("run --pack core --limit 5 --offset=10").unwrap();
        assert_eq!(a.filter.as_deref(), Some("run"));
        assert_eq!(a.pack.as_deref(), Some("core"));
        assert_eq!(a.limit, Some(5));
        assert_eq!(a.offset, 10);
        assert!(parse_help_args("--limit many")
            .unwrap_err()
            .contains("--limit"));
        assert!(parse_help_args("--bogus").unwrap_err().contains("--bogus"));
        assert!(parse_help_args("--pack")
            .unwrap_err()
            .contains("needs a value"));
    }

    #[test]
    fn the_first_page_groups_by_pack_and_offers_the_next() {
        let r = help("");
        assert_eq!(r.kind, ReplyKind::Answer);
        assert_eq!(
            r.text,
            "[core]\n\
             \x20   !st2 date on {{hosts}} — Prints the date\n\
             \x20   !st2 run <cmd> on <hosts> — Runs a command\n\
             \x20   !st2 run {{cmd}} — Runs a command\n\
             Showing 1–3 of 5. More: `!st2help --offset 3`\n\
             Inquiries: `!st2inquiries` lists the StackStorm inquiries waiting for your answer; \
             `!st2answer <id> key=value …` answers one.\n\
             Waiting commands: `!st2pending` lists the commands waiting for your confirmation or approval.\n\
             Jobs: `!st2jobs` lists yours, `!st2last` shows the newest, `!st2logs <n>`, \
             `!st2tail <n>`, `!st2cancel <n>`. Shortcuts: `!st2alias <name> <command>`, `!st2aliases`."
        );
    }

    #[test]
    fn the_last_page_has_no_more_link() {
        let r = help("--offset 3");
        assert_eq!(
            r.text,
            "[ops]\n\
             \x20   !st2 deploy {{app}}\n\
             \x20   !st2 restart {{service}} — Restarts a service\n\
             Showing 4–5 of 5.\n\
             Inquiries: `!st2inquiries` lists the StackStorm inquiries waiting for your answer; \
             `!st2answer <id> key=value …` answers one.\n\
             Waiting commands: `!st2pending` lists the commands waiting for your confirmation or approval.\n\
             Jobs: `!st2jobs` lists yours, `!st2last` shows the newest, `!st2logs <n>`, \
             `!st2tail <n>`, `!st2cancel <n>`. Shortcuts: `!st2alias <name> <command>`, `!st2aliases`."
        );
    }

    #[test]
    fn a_filter_is_words_and_is_repeated_as_typed_in_the_more_link() {
        let r = help("RUN --limit 1");
        assert_eq!(
            r.text,
            "[core]\n\
             \x20   !st2 run <cmd> on <hosts> — Runs a command\n\
             Showing 1–1 of 2. More: `!st2help RUN --limit 1 --offset 1`"
        );
        // Regex syntax is text: it matches nothing, and says what was looked for.
        assert_eq!(help(".*").text, "No commands found for `.*`.");
        assert_eq!(
            help("--pack ops service").text,
            "[ops]\n\
             \x20   !st2 restart {{service}} — Restarts a service\n\
             Showing 1–1 of 1."
        );
    }

    #[test]
    fn the_page_size_is_clamped_to_the_configured_largest() {
        let r = help("--limit 100");
        assert!(r.text.contains("Showing 1–4 of 5."), "{}", r.text);
        assert!(
            r.text.contains("More: `!st2help --limit 4 --offset 4`"),
            "{}",
            r.text
        );
        let r = help("--limit 0");
        assert!(r.text.contains("Showing 1–1 of 5."), "{}", r.text);
    }

    #[test]
    fn bad_arguments_say_what_was_wrong() {
        let r = help("--limit lots");
        assert_eq!(r.kind, ReplyKind::Invalid);
        assert_eq!(
            r.text,
            "I don't know `!st2help --limit lots` (`--limit` takes a whole number, not `lots`). See `!st2help`."
        );
        assert_eq!(
            help("--colour red").text,
            "I don't know `!st2help --colour red` (unknown option `--colour`). See `!st2help`."
        );
    }

    #[test]
    fn before_the_aliases_are_loaded_help_says_so() {
        let r = reply(&templates(), None, "!st2", "", PAGING, &[]);
        assert_eq!(r.kind, ReplyKind::Invalid);
        assert!(
            r.text.starts_with("I'm still loading the command list"),
            "{}",
            r.text
        );
        // Bad arguments are reported first, as before.
        let r = reply(&templates(), None, "!st2", "--offset x", PAGING, &[]);
        assert!(r.text.starts_with("I don't know"), "{}", r.text);
    }
}
