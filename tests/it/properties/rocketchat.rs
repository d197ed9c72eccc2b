//! Rocket.Chat realtime frames and `stream-room-messages` events
//! (`stormbridge::backends::rocketchat::wire`).
//!
//! * Any frame text parses or is refused without panicking, in bounded time.
//! * Any `changed` event — real ones from Rocket.Chat's docs (the message object of
//!   https://developer.rocket.chat/apidocs/message in the `args` of a `stream-room-messages`
//!   event) with fields deleted, retyped and oversized — maps to a message or a reason to
//!   skip it; a message always has the message's non-empty author as its user (never the
//!   bot), the message's room as its room, and its text is the message's text, or what
//!   follows a leading mention of the bot.

use proptest::prelude::*;
use serde_json::{json, Value};
use stormbridge::backends::rocketchat::wire::{
    message_of, parse_frame, to_inbound, Ddp, Mapping, Skip,
};

use super::{check, mutated_json, mutated_json_text, sane, timed, with_identity_damage};

const BOT: &str = "b0tb0tb0tb0tb0tb0";

/// A `changed` event of `stream-room-messages` as the server streams it.
fn changed_seed() -> Value {
    json!({
        "msg": "changed",
        "collection": "stream-room-messages",
        "id": "id",
        "fields": {
            "eventName": "__my_messages__",
            "args": [
                {
                    "_id": "8gMsLe9ApZjo2D2iB",
                    "rid": "EhpNtqqrMXT4QWk3z",
                    "msg": "!st2 run date",
                    "ts": {"$date": "2023-02-09T13:35:59.484Z"},
                    "u": {"_id": "rYhzFRd2QZjNwAAXX", "username": "rodriq", "name": "Rodriq"},
                    "_updatedAt": {"$date": "2023-02-09T13:35:59.490Z"},
                    "urls": [],
                    "mentions": [],
                    "channels": [],
                    "md": [{"type": "PARAGRAPH", "value": [{"type": "PLAIN_TEXT", "value": "!st2 run date"}]}]
                },
                {"roomParticipant": true, "roomType": "c", "roomName": "general"}
            ]
        }
    })
}

fn seeds() -> Vec<Value> {
    let mut dm = changed_seed();
    dm["fields"]["args"][1] = json!({"roomParticipant": true, "roomType": "d"});
    dm["fields"]["args"][0]["msg"] = json!("@stormbridge st2 run uptime");
    let mut thread = changed_seed();
    thread["fields"]["args"][0]["tmid"] = json!("r00tr00tr00tr00t1");
    thread["fields"]["args"][1]["roomType"] = json!("p");
    let mut own = changed_seed();
    own["fields"]["args"][0]["u"]["_id"] = json!(BOT);
    let mut bot = changed_seed();
    bot["fields"]["args"][0]["bot"] = json!({"i": "js.SDK"});
    let mut system = changed_seed();
    system["fields"]["args"][0]["t"] = json!("uj");
    let mut edited = changed_seed();
    edited["fields"]["args"][0]["editedAt"] = json!({"$date": "2023-02-09T13:40:47.303Z"});
    edited["fields"]["args"][0]["editedBy"] =
        json!({"_id": "rYhzFRd2QZjNwAAXX", "username": "rodriq"});
    vec![
        changed_seed(),
        dm,
        thread,
        own,
        bot,
        system,
        edited,
        json!({"server_id": "0"}),
        json!({"msg": "connected", "session": "Jm4wdpDjzxNHvHtBs"}),
        json!({"msg": "ping", "id": "1"}),
        json!({"msg": "result", "id": "login-1", "result": {"id": BOT, "token": "x", "tokenExpires": {"$date": 1696417505309u64}, "type": "resume"}}),
        json!({"msg": "result", "id": "login-1", "error": {"error": 403, "reason": "User not found", "message": "User not found [403]", "errorType": "Meteor.Error"}}),
        json!({"msg": "ready", "subs": ["sub-2"]}),
        json!({"msg": "nosub", "id": "sub-2", "error": {"error": "not-allowed", "reason": "Not allowed"}}),
    ]
}

const KEYS: &[&str] = &[
    "msg",
    "collection",
    "fields",
    "eventName",
    "args",
    "_id",
    "rid",
    "u",
    "username",
    "tmid",
    "t",
    "editedAt",
    "bot",
    "roomType",
    "roomName",
    "id",
    "subs",
    "error",
    "result",
];

fn frames() -> impl Strategy<Value = Value> {
    with_identity_damage(
        mutated_json(seeds(), KEYS.to_vec(), 5),
        vec![
            "/fields/args/0/u/_id",
            "/fields/args/0/rid",
            "/fields/args/0/_id",
            "/fields/args/0/u/username",
        ],
    )
}

#[test]
fn any_frame_text_parses_or_is_refused() {
    check(
        "rocketchat::frames",
        256,
        mutated_json_text(seeds(), KEYS.to_vec()),
        |text| {
            timed("parsing a frame", || parse_frame(&text))?;
            Ok(())
        },
    );
}

#[test]
fn changed_events_map_to_sane_messages() {
    check(
        "rocketchat::changed",
        256,
        (frames(), any::<bool>()),
        |(frame, reply_in_thread)| {
            let Some(Ddp::Changed { collection, fields }) = parse_frame(&frame.to_string()) else {
                return Ok(());
            };
            let mapping = Mapping {
                connection: "rc",
                bot_id: BOT,
                bot_username: "stormbridge",
                reply_in_thread,
            };
            let Ok(msg) = timed("mapping a message", || {
                to_inbound(&collection, &fields, &mapping)
            })?
            else {
                return Ok(());
            };
            sane(&msg, "rc")?;
            // Read as the mapper reads it.
            let (message, _) = message_of(&collection, &fields).expect("it mapped");
            prop_assert_eq!(&msg.user.id, &message.u.id);
            prop_assert_ne!(msg.user.id.as_str(), BOT);
            prop_assert_eq!(&msg.room.id, &message.rid);
            prop_assert!(!msg.room.id.trim().is_empty());
            prop_assert_eq!(msg.message_id.as_deref(), Some(message.id.as_str()));
            prop_assert!(message.bot.is_none() || message.bot == Some(json!(false)));
            prop_assert!(message.t.as_deref().is_none_or(str::is_empty));
            prop_assert!(message.edited_at.is_none());
            if msg.mentioned {
                prop_assert!(
                    message.msg.ends_with(&msg.text),
                    "{:?} → {:?}",
                    message.msg,
                    msg.text
                );
            } else {
                prop_assert_eq!(msg.text.as_str(), message.msg.as_str());
            }
            Ok(())
        },
    );
}

#[test]
fn a_message_by_no_one_is_not_a_message() {
    for user in ["", " ", "\t"] {
        let mut frame = changed_seed();
        frame["fields"]["args"][0]["u"]["_id"] = json!(user);
        let Some(Ddp::Changed { collection, fields }) = parse_frame(&frame.to_string()) else {
            panic!("not a changed event")
        };
        let mapping = Mapping {
            connection: "rc",
            bot_id: BOT,
            bot_username: "stormbridge",
            reply_in_thread: false,
        };
        assert_eq!(
            to_inbound(&collection, &fields, &mapping),
            Err(Skip::Malformed),
            "{user:?}"
        );
    }
}
