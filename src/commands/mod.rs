//! The bridge's built-in chat commands, as plain code: reading their arguments and composing
//! their replies. Every reply text comes from a handlebars template ([`crate::render`]), so an
//! operator can reword any of them with a file in `bot.templates_dir`.
//!
//! * [`help`](mod@help) — `!st2help [words] [--pack P] [--limit N] [--offset N]`.
//! * [`reload`] — `!st2reload`.
//! * [`session`] — `!st2session_start <word>`, `_end`, `_list`, `_cancel <id>`.
//! * [`whoami`] — `!st2whoami`.
//! * [`acl`] — `!st2acl explain <user> <room> <command text>`.
//! * [`jobs`] — `!st2jobs`, `!st2job`, `!st2logs`, `!st2cancel`, the audit commands.
//! * [`personal`] — `!st2alias`, `!st2unalias`, `!st2aliases`.
//! * [`triggers`] — `!st2token create|revoke`, `!st2tokens`.
//!
//! Nothing here runs an actor or talks to StackStorm: the dispatcher asks the actors
//! (sessions, alias cache, access control, token renewer) and hands their typed answers to
//! these functions for the text. This module uses [`crate::render`], [`crate::alias`],
//! [`crate::domain`] and [`crate::acl`], and never `crate::actors` or `crate::backends`.

pub mod acl;
pub mod help;
pub mod jobs;
pub mod personal;
pub mod reload;
pub mod session;
pub mod triggers;
pub mod whoami;

use serde_json::json;

use crate::render::Templates;

/// A reply, and whether the command was carried out as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What the chat user sees.
    pub text: String,
    /// Answered, or refused for its arguments (or because it cannot be answered yet).
    pub kind: ReplyKind,
}

/// Whether a built-in command was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// The command did what it was asked.
    Answer,
    /// It was not carried out: bad arguments, or the bridge is not ready for it yet.
    Invalid,
}

impl Reply {
    fn answer(text: String) -> Self {
        Self {
            text,
            kind: ReplyKind::Answer,
        }
    }

    fn invalid(text: String) -> Self {
        Self {
            text,
            kind: ReplyKind::Invalid,
        }
    }
}

/// A verb glued to the plugin prefix that is no built-in command (`!st2frobnicate`).
/// `prefix` is the bot prefix and the plugin prefix together (`!st2`).
pub fn unknown(templates: &Templates, prefix: &str, verb: &str) -> String {
    templates.render(
        "unknown_command",
        &json!({
            "command": format!("{prefix}{verb}"),
            "reason": null,
            "help_command": format!("{prefix}help"),
        }),
    )
}

/// Before the first alias load: the command list is still loading (saying "no match" or
/// "no commands" then would be a lie).
pub fn not_ready(templates: &Templates) -> String {
    templates.render("not_ready", &json!({}))
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::render::Templates;

    /// The embedded templates, as the bridge ships them.
    pub fn templates() -> Templates {
        Templates::load(None).expect("the embedded templates compile")
    }
}

#[cfg(test)]
mod tests {
    use super::{test_support::templates, *};

    #[test]
    fn an_unknown_verb_points_to_help() {
        assert_eq!(
            unknown(&templates(), "!st2", "frobnicate"),
            "I don't know `!st2frobnicate`. See `!st2help`."
        );
    }

    #[test]
    fn an_operator_can_reword_a_built_in_reply() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("session_end.hbs"),
            "{{#if ended}}Bye.{{else}}Nothing to end.{{/if}}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(session::ended(&t, "!st2", true), "Bye.");
        assert_eq!(session::ended(&t, "!st2", false), "Nothing to end.");
        // The others keep their built-in text.
        assert_eq!(
            session::not_answering(&t),
            "The session service is not answering; please try again."
        );
    }

    #[test]
    fn before_the_first_load_the_list_is_loading() {
        assert_eq!(
            not_ready(&templates()),
            "I'm still loading the command list from StackStorm; please try again in a few seconds."
        );
    }
}
