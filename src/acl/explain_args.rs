//! The arguments of an explain request (`!st2acl explain …` and `stormbridge acl-explain`):
//! who, where, and what the command text would run.

use super::{CommandRef, Subject, KNOWN_BUILTINS};
use crate::{
    alias::index::{AliasIndex, Selection},
    domain::{command, message::RoomKind},
};

/// Builds the subject for `user` (`<connection>:<id>`) in `room` (`<connection>:<id>` or `dm`).
pub fn explain_subject(user: &str, room: &str) -> Result<Subject, String> {
    let (connection, user_id) = user
        .split_once(':')
        .filter(|(c, u)| !c.is_empty() && !u.is_empty())
        .ok_or_else(|| format!("`{user}` must be written <connection>:<user id>"))?;
    let (room_id, room_kind) = if room == "dm" || room == "direct" {
        (user_id.to_owned(), RoomKind::Direct)
    } else {
        let (room_connection, room_id) = room
            .split_once(':')
            .filter(|(c, r)| !c.is_empty() && !r.is_empty())
            .ok_or_else(|| format!("`{room}` must be written <connection>:<room id>, or `dm`"))?;
        if room_connection != connection {
            return Err(format!(
                "`{user}` and `{room}` are on different connections"
            ));
        }
        (room_id.to_owned(), RoomKind::Group)
    };
    Ok(Subject {
        connection: connection.to_owned(),
        user_id: user_id.to_owned(),
        user_names: Vec::new(),
        room_id,
        room_name: None,
        room_kind,
        org: None,
    })
}

/// What `text` would run: the alias it selects, or a built-in verb (`help`, `st2help`, …).
pub fn resolve_command(
    text: &str,
    aliases: &AliasIndex,
    plugin_prefix: &str,
) -> Result<CommandRef, String> {
    let normalised = command::normalise_text(text);
    if let Selection::Matched(found) = aliases.select(&normalised) {
        return Ok(CommandRef::Alias {
            alias_ref: found.alias.reference.clone(),
            pack: found.alias.pack.clone(),
            text: normalised,
        });
    }
    let first = normalised.split_whitespace().next().unwrap_or_default();
    let verb = first.strip_prefix(plugin_prefix).unwrap_or(first);
    if KNOWN_BUILTINS.contains(&verb) {
        return Ok(CommandRef::Builtin {
            verb: verb.to_owned(),
            text: normalised
                .strip_prefix(plugin_prefix)
                .unwrap_or(&normalised)
                .to_owned(),
        });
    }
    Err(format!(
        "`{text}` selects no single alias and is not a built-in command, so nothing would run"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases() -> AliasIndex {
        let list = serde_json::json!([{"name": "run", "pack": "core", "action_ref": "core.local",
            "formats": ["run {{cmd}}"]}]);
        let (aliases, _) = crate::alias::model::parse_alias_list(&list).unwrap_or_default();
        AliasIndex::build(aliases).0
    }

    #[test]
    fn subjects_for_rooms_and_direct_messages() {
        let s = explain_subject("slack:U1", "slack:C9").unwrap();
        assert_eq!(
            (s.user_id.as_str(), s.room_id.as_str(), s.room_kind),
            ("U1", "C9", RoomKind::Group)
        );
        let s = explain_subject("slack:U1", "dm").unwrap();
        assert_eq!((s.room_id.as_str(), s.room_kind), ("U1", RoomKind::Direct));
        assert!(explain_subject("U1", "dm")
            .unwrap_err()
            .contains("<connection>:<user id>"));
        assert!(explain_subject("slack:U1", "irc:#ops")
            .unwrap_err()
            .contains("different connections"));
    }

    #[test]
    fn command_text_resolves_to_an_alias_or_a_builtin() {
        let a = aliases();
        assert!(matches!(resolve_command("run date", &a, "st2"),
            Ok(CommandRef::Alias { ref alias_ref, .. }) if alias_ref == "core.run"));
        assert!(matches!(resolve_command("st2help --pack x", &a, "st2"),
            Ok(CommandRef::Builtin { ref verb, .. }) if verb == "help"));
        assert!(matches!(resolve_command("session_list", &a, "st2"),
            Ok(CommandRef::Builtin { ref verb, .. }) if verb == "session_list"));
        assert!(resolve_command("fly away", &a, "st2")
            .unwrap_err()
            .contains("nothing would run"));
    }
}
