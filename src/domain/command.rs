//! Recognising commands addressed to the bot: the bot prefix (`!`), a mention, or plain
//! text in a direct message, followed by the plugin prefix (`st2`).
//!
//! `!st2 run date` runs an alias; `!st2help …` (prefix glued to a verb, err-stackstorm's
//! naming) is a built-in command.

use super::message::RoomKind;

/// The prefixes a bot answers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefixes {
    /// Bot prefix, `!` by default. May be empty when the plugin prefix is set.
    pub bot: String,
    /// Plugin prefix, `st2` by default. May be empty (st2chatops-style `!run date`).
    pub plugin: String,
}

/// What a chat message asks of the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run an action alias: the text after the prefixes.
    Run(String),
    /// A built-in command: its verb (`help`) and the rest of the line.
    Builtin {
        /// The verb glued to the plugin prefix, e.g. `help` for `!st2help`.
        verb: String,
        /// Everything after the verb, trimmed.
        args: String,
    },
}

/// Built-in verbs this version knows. Anything else glued to the plugin prefix is reported
/// as an unknown command rather than sent to StackStorm.
pub const BUILTIN_VERBS: &[&str] = &["help"];

/// Parses a message into a command, or `None` when it is not addressed to the bot.
///
/// Addressed means: it starts with the bot prefix, or the connection saw a mention of the
/// bot, or it was said in a direct message.
pub fn parse(text: &str, kind: RoomKind, mentioned: bool, prefixes: &Prefixes) -> Option<Command> {
    let text = text.trim();
    let body = if mentioned {
        strip_bot_prefix(text, &prefixes.bot).unwrap_or(text)
    } else if let Some(rest) = strip_bot_prefix(text, &prefixes.bot) {
        rest
    } else if kind == RoomKind::Direct {
        text
    } else {
        return None;
    };
    let body = body.trim_start();
    if prefixes.plugin.is_empty() {
        return Some(split_builtin(body).unwrap_or_else(|| Command::Run(body.trim().to_owned())));
    }
    let rest = body.strip_prefix(prefixes.plugin.as_str())?;
    if rest.is_empty() || rest.starts_with(char::is_whitespace) {
        return Some(Command::Run(rest.trim().to_owned()));
    }
    let verb_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (verb, args) = rest.split_at(verb_end);
    Some(Command::Builtin {
        verb: verb.to_owned(),
        args: args.trim().to_owned(),
    })
}

fn strip_bot_prefix<'a>(text: &'a str, bot: &str) -> Option<&'a str> {
    if bot.is_empty() {
        return None;
    }
    text.strip_prefix(bot)
}

/// With an empty plugin prefix, a known built-in verb as the first word is a built-in.
fn split_builtin(body: &str) -> Option<Command> {
    let verb_end = body.find(char::is_whitespace).unwrap_or(body.len());
    let (verb, args) = body.split_at(verb_end);
    BUILTIN_VERBS.contains(&verb).then(|| Command::Builtin {
        verb: verb.to_owned(),
        args: args.trim().to_owned(),
    })
}

/// Straightens typographic quotes and non-breaking spaces that chat clients substitute, so
/// that `run "ls -la"` typed on a phone matches like it does in a terminal.
pub fn normalise_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{201C}' | '\u{201D}' => '"',
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{00A0}' => ' ',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st2() -> Prefixes {
        Prefixes {
            bot: "!".into(),
            plugin: "st2".into(),
        }
    }

    #[test]
    fn bot_prefix_then_plugin_prefix_runs_an_alias() {
        assert_eq!(
            parse("!st2 run date on web1", RoomKind::Group, false, &st2()),
            Some(Command::Run("run date on web1".into()))
        );
    }

    #[test]
    fn glued_verb_is_a_builtin() {
        assert_eq!(
            parse("!st2help --pack core", RoomKind::Group, false, &st2()),
            Some(Command::Builtin {
                verb: "help".into(),
                args: "--pack core".into()
            })
        );
    }

    #[test]
    fn room_chatter_without_prefix_is_ignored_but_dm_is_not() {
        assert_eq!(parse("st2 run date", RoomKind::Group, false, &st2()), None);
        assert_eq!(
            parse("st2 run date", RoomKind::Direct, false, &st2()),
            Some(Command::Run("run date".into()))
        );
        assert_eq!(parse("hello there", RoomKind::Direct, false, &st2()), None);
    }

    #[test]
    fn mention_addresses_the_bot() {
        assert_eq!(
            parse("st2 run date", RoomKind::Group, true, &st2()),
            Some(Command::Run("run date".into()))
        );
    }

    #[test]
    fn other_words_starting_with_the_plugin_prefix_are_builtins_not_runs() {
        assert_eq!(
            parse("!st2x", RoomKind::Group, false, &st2()),
            Some(Command::Builtin {
                verb: "x".into(),
                args: String::new()
            })
        );
        assert_eq!(parse("!other", RoomKind::Group, false, &st2()), None);
    }

    #[test]
    fn empty_plugin_prefix_runs_everything_after_the_bot_prefix() {
        let p = Prefixes {
            bot: "!".into(),
            plugin: String::new(),
        };
        assert_eq!(
            parse("!run date", RoomKind::Group, false, &p),
            Some(Command::Run("run date".into()))
        );
        assert_eq!(
            parse("!help core", RoomKind::Group, false, &p),
            Some(Command::Builtin {
                verb: "help".into(),
                args: "core".into()
            })
        );
    }

    #[test]
    fn typographic_quotes_are_straightened() {
        assert_eq!(
            normalise_text("run \u{201C}ls -la\u{201D}\u{00A0}on \u{2018}h\u{2019}"),
            "run \"ls -la\" on 'h'"
        );
    }
}
