//! `!st2acl explain <user> <room> <command text>` (admins): what the access rules decide for
//! someone, somewhere, and why. `<user>` is `<connection>:<id>`; `<room>` is
//! `<connection>:<id>` for a group room or `dm` for a direct message.
//!
//! Templates: `acl_usage` (the arguments were wrong), `acl_explain` (the explanation).

use serde_json::json;

use crate::{
    acl::{explain_subject, resolve_command, CommandRef, Explanation, Subject},
    alias::AliasIndex,
    domain::command::Prefixes,
    render::Templates,
};

/// Parses the arguments of `acl explain`: who, where, and what the command text would run
/// (an alias of `aliases`, or a built-in). The error says what is wrong.
pub fn parse_explain_args(
    args: &str,
    aliases: &AliasIndex,
    plugin_prefix: &str,
) -> Result<(Subject, CommandRef), String> {
    let mut words = args.split_whitespace();
    if words.next() != Some("explain") {
        return Err("the only acl command is `explain`".into());
    }
    let (Some(user), Some(room)) = (words.next(), words.next()) else {
        return Err("explain needs a user, a room and a command".into());
    };
    let text = words.collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Err("explain needs the command text to check".into());
    }
    let subject = explain_subject(user, room)?;
    let command = resolve_command(&text, aliases, plugin_prefix)?;
    Ok((subject, command))
}

/// What to explain for `{prefix}acl {args}`, or the reply saying what is wrong with it
/// (and how the command is written).
pub fn explain_request(
    templates: &Templates,
    prefixes: &Prefixes,
    args: &str,
    aliases: &AliasIndex,
) -> Result<(Subject, CommandRef), String> {
    parse_explain_args(args, aliases, &prefixes.plugin).map_err(|reason| {
        templates.render(
            "acl_usage",
            &json!({
                "reason": reason,
                "command_prefix": format!("{}{}", prefixes.bot, prefixes.plugin),
            }),
        )
    })
}

/// The explanation, or `None` when access control did not answer.
pub fn explained(templates: &Templates, explanation: Option<&Explanation>) -> String {
    templates.render(
        "acl_explain",
        &json!({
            "answered": explanation.is_some(),
            "allowed": explanation.map(|e| e.decision.allowed),
            "lines": explanation.map(Explanation::lines).unwrap_or_default(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        acl::{Decision, DecisionReason, SkippedRule},
        commands::test_support::templates,
    };

    fn aliases() -> AliasIndex {
        let list = serde_json::json!([{"name": "run", "pack": "core", "action_ref": "core.local",
            "formats": ["run {{cmd}}"]}]);
        let (aliases, _) = crate::alias::model::parse_alias_list(&list).unwrap_or_default();
        AliasIndex::build(aliases).0
    }

    fn st2() -> Prefixes {
        Prefixes {
            bot: "!".into(),
            plugin: "st2".into(),
        }
    }

    const USAGE: &str =
        "usage: !st2acl explain <connection>:<user id> <connection>:<room id>|dm <command text>";

    #[test]
    fn explain_arguments_are_checked() {
        let a = aliases();
        assert!(parse_explain_args("list", &a, "st2").is_err());
        assert!(parse_explain_args("explain slack:U1", &a, "st2").is_err());
        assert!(parse_explain_args("explain slack:U1 dm", &a, "st2").is_err());
        assert!(parse_explain_args("explain slack:U1 dm run ls", &a, "st2").is_ok());
    }

    #[test]
    fn a_request_names_who_where_and_what() {
        let (subject, command) = explain_request(
            &templates(),
            &st2(),
            "explain slack:U1 slack:C9 run ls",
            &aliases(),
        )
        .unwrap();
        assert_eq!(
            (subject.user_id.as_str(), subject.room_id.as_str()),
            ("U1", "C9")
        );
        assert!(
            matches!(command, CommandRef::Alias { ref alias_ref, .. } if alias_ref == "core.run")
        );
    }

    #[test]
    fn wrong_arguments_get_the_reason_and_the_usage() {
        let t = templates();
        let usage = |args| explain_request(&t, &st2(), args, &aliases()).unwrap_err();
        assert_eq!(
            usage("nobody"),
            format!("the only acl command is `explain`\n{USAGE}")
        );
        assert_eq!(
            usage("explain nobody"),
            format!("explain needs a user, a room and a command\n{USAGE}")
        );
        assert_eq!(
            usage("explain slack:U1 dm"),
            format!("explain needs the command text to check\n{USAGE}")
        );
        assert_eq!(
            usage("explain U1 dm run ls"),
            format!("`U1` must be written <connection>:<user id>\n{USAGE}")
        );
        assert_eq!(
            usage("explain slack:U1 dm fly away"),
            format!("`fly away` selects no single alias and is not a built-in command, so nothing would run\n{USAGE}")
        );
    }

    #[test]
    fn the_explanation_is_shown_line_by_line() {
        let e = Explanation {
            decision: Decision {
                allowed: false,
                rule: Some(1),
                reason: DecisionReason::Rule(1),
            },
            subject: "console:bob in console:ops (group)".into(),
            command: "alias core.run \"run ls\"".into(),
            rule_text: Some("rule 1: deny aliases=[core.*]".into()),
            comment: Some("no shell for bob".into()),
            skipped: vec![SkippedRule {
                index: 0,
                reason: "user console:bob is not in users=[@operators]".into(),
            }],
            summary: "decided by rule 1: deny aliases=[core.*]".into(),
        };
        let text = explained(&templates(), Some(&e));
        assert_eq!(
            text,
            "deny: console:bob in console:ops (group) may not run alias core.run \"run ls\"\n\
             \x20 rule 0: user console:bob is not in users=[@operators]\n\
             \x20 decided by rule 1: deny aliases=[core.*]\n\
             \x20 why: no shell for bob"
        );
        assert_eq!(text, e.to_string());
    }

    #[test]
    fn a_silent_gate_is_reported() {
        assert_eq!(
            explained(&templates(), None),
            "access control is not answering; try again"
        );
    }
}
