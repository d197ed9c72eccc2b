//! Helpers shared by the access-control tests.

use serde::Deserialize;

use super::{AccessConfig, AclPolicy, AclProblem, CommandRef, RoomKind, Subject};

#[derive(Deserialize)]
struct Doc {
    access: AccessConfig,
}

/// Parses the `[access]` section out of TOML text.
pub(super) fn config(text: &str) -> AccessConfig {
    toml::from_str::<Doc>(text)
        .unwrap_or_else(|e| panic!("test TOML does not parse: {e}"))
        .access
}

/// Parses and compiles, failing the test on any problem.
pub(super) fn policy(text: &str) -> AclPolicy {
    AclPolicy::compile(&config(text)).unwrap_or_else(|problems| {
        panic!(
            "test policy does not compile:\n{}",
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Parses and compiles, expecting problems.
pub(super) fn problems(text: &str) -> Vec<AclProblem> {
    match AclPolicy::compile(&config(text)) {
        Ok(p) => panic!("expected problems, got a policy: {p:?}"),
        Err(problems) => problems,
    }
}

/// `user` is `<conn>:<id>`; `room` is `<conn>:<id>` (the kind says direct or group).
pub(super) fn subj(user: &str, room: &str, kind: RoomKind) -> Subject {
    let (conn, id) = user.split_once(':').expect("user is conn:id");
    let (_, room_id) = room.split_once(':').expect("room is conn:id");
    Subject {
        connection: conn.to_owned(),
        user_id: id.to_owned(),
        user_names: Vec::new(),
        room_id: room_id.to_owned(),
        room_name: None,
        room_kind: kind,
        org: None,
    }
}

/// A group-room subject.
pub(super) fn in_group(user: &str, room: &str) -> Subject {
    subj(user, room, RoomKind::Group)
}

/// A direct-conversation subject (the room id is made up from the user id).
pub(super) fn in_dm(user: &str) -> Subject {
    let (conn, id) = user.split_once(':').expect("user is conn:id");
    subj(user, &format!("{conn}:D-{id}"), RoomKind::Direct)
}

/// The same subject in organisation `org`.
pub(super) fn with_org(mut s: Subject, org: &str) -> Subject {
    s.org = Some(org.to_owned());
    s
}

/// An alias command; the pack is the part of the ref before the first '.'.
pub(super) fn alias(alias_ref: &str, text: &str) -> CommandRef {
    CommandRef::Alias {
        alias_ref: alias_ref.to_owned(),
        pack: alias_ref.split('.').next().unwrap_or_default().to_owned(),
        text: text.to_owned(),
    }
}

/// A built-in command whose text is the verb.
pub(super) fn builtin(verb: &str) -> CommandRef {
    CommandRef::Builtin {
        verb: verb.to_owned(),
        text: verb.to_owned(),
    }
}

/// Checks a table of (subject, command, expected allow) against `policy`, showing the
/// explanation of every row that disagrees.
pub(super) fn check_table(policy: &AclPolicy, table: &[(Subject, CommandRef, bool)]) {
    let mut failures = Vec::new();
    for (i, (s, c, want)) in table.iter().enumerate() {
        let got = policy.evaluate(s, c);
        let ex = policy.explain(s, c);
        assert_eq!(got, ex.decision, "row {i}: explain disagrees with evaluate");
        if got.allowed != *want {
            failures.push(format!(
                "row {i}: expected {}, got:\n{ex}",
                if *want { "allow" } else { "deny" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
