//! `!st2whoami`: who the bridge thinks the person is, in which room, how access rules name
//! them, and which StackStorm identity their commands run as (template `whoami`).

use serde_json::json;

use crate::{domain::message::InboundMessage, render::Templates};

/// Said for the StackStorm identity when the token renewer cannot tell.
pub const UNKNOWN_IDENTITY: &str = "the bridge's credential";

/// The reply to `msg` (a `whoami`). `admin`: the sender is an access-control admin;
/// `st2_identity`: how the bridge's StackStorm credential describes itself (`None` when it
/// could not be asked).
pub fn reply(
    templates: &Templates,
    msg: &InboundMessage,
    admin: bool,
    st2_identity: Option<&str>,
) -> String {
    let connection = &msg.user.connection;
    templates.render(
        "whoami",
        &json!({
            "user": format!("{connection}:{}", msg.user.id),
            "user_id": msg.user.id,
            "user_name": msg.user.name,
            "connection": connection,
            "room": format!("{}:{}", msg.room.connection, msg.room.id),
            "room_name": msg.room_name,
            "room_kind": msg.room.kind.as_str(),
            "org": msg.org,
            "admin": admin,
            "st2_identity": st2_identity.unwrap_or(UNKNOWN_IDENTITY),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        commands::test_support::templates,
        domain::message::{ChatUser, Room, RoomKind},
    };

    fn message(kind: RoomKind, room_name: Option<&str>, org: Option<&str>) -> InboundMessage {
        InboundMessage {
            user: ChatUser {
                connection: "slack".into(),
                id: "U1".into(),
                name: "alice".into(),
            },
            room: Room {
                connection: "slack".into(),
                id: "C9".into(),
                kind,
                thread: None,
            },
            text: "!st2whoami".into(),
            message_id: None,
            mentioned: false,
            room_name: room_name.map(str::to_owned),
            org: org.map(str::to_owned),
        }
    }

    #[test]
    fn a_group_room_with_names_and_an_admin() {
        let msg = message(RoomKind::Group, Some("ops"), Some("T1"));
        assert_eq!(
            reply(&templates(), &msg, true, Some("StackStorm user `chatops`")),
            "You are `slack:U1` (alice) in `slack:C9` (ops), a group room of organisation `T1`; \
             you are an administrator.\n\
             Access rules match you as `slack:U1` or `slack:name:alice`, and this room as \
             `slack:C9` or `slack:name:ops` or `group`.\n\
             Commands run in StackStorm as StackStorm user `chatops`; StackStorm records you as \
             api_user `U1`."
        );
    }

    #[test]
    fn a_direct_message_without_names_or_identity() {
        let msg = message(RoomKind::Direct, None, None);
        assert_eq!(
            reply(&templates(), &msg, false, None),
            "You are `slack:U1` (alice) in `slack:C9`, a direct room.\n\
             Access rules match you as `slack:U1` or `slack:name:alice`, and this room as \
             `slack:C9` or `direct`.\n\
             Commands run in StackStorm as the bridge's credential; StackStorm records you as \
             api_user `U1`."
        );
    }
}
