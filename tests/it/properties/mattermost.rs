//! Mattermost websocket frames and `posted` events (`stormbridge::backends::mattermost::wire`).
//!
//! * Any frame text parses or is refused without panicking, in bounded time.
//! * Any `posted` event — real ones from Mattermost's API docs with fields deleted,
//!   retyped, oversized, the embedded post JSON damaged — maps to a message or a reason to
//!   skip it; a message always has the post's non-empty author as its user (never the bot),
//!   the post's channel as its room, and its text is the post's message, or what follows a
//!   leading mention of the bot.

use proptest::prelude::*;
use serde_json::{json, Value};
use stormbridge::backends::mattermost::wire::{
    parse_frame, posted_to_inbound, Mapping, Post, Skip, WsFrame,
};

use super::{check, mutated_json, mutated_json_text, sane, timed, with_identity_damage};

const BOT: &str = "b0tb0tb0tb0tb0tb0tb0tb0tb0";

/// A `posted` event as Mattermost sends it (the post is a JSON string inside `data`); the
/// post here is an object, turned into its string after mutation.
fn posted_seed() -> Value {
    json!({
        "event": "posted",
        "data": {
            "channel_display_name": "Town Square",
            "channel_name": "town-square",
            "channel_type": "O",
            "mentions": "[\"b0tb0tb0tb0tb0tb0tb0tb0tb0\"]",
            "post": {
                "id": "8tqp1aqn7fgo3nfe8uzj7ntwcr",
                "create_at": 1700000000000u64,
                "update_at": 1700000000000u64,
                "edit_at": 0,
                "delete_at": 0,
                "is_pinned": false,
                "user_id": "a1ic3a1ic3a1ic3a1ic3a1ic3a",
                "channel_id": "c0pschannel0000000000000ab",
                "root_id": "",
                "original_id": "",
                "message": "!st2 run date",
                "type": "",
                "props": {"from_bot": "false"},
                "hashtags": "",
                "pending_post_id": ""
            },
            "sender_name": "@alice",
            "set_online": true,
            "team_id": "t3amt3amt3amt3amt3amt3amt3"
        },
        "broadcast": {"omit_users": null, "user_id": "", "channel_id": "c0pschannel0000000000000ab", "team_id": ""},
        "seq": 7
    })
}

fn seeds() -> Vec<Value> {
    let mut dm = posted_seed();
    dm["data"]["channel_type"] = json!("D");
    dm["data"]["post"]["message"] = json!("@stormbridge st2 run uptime");
    dm["data"]["post"]["root_id"] = json!("r00tr00tr00tr00tr00tr00tr0");
    let mut bot = posted_seed();
    bot["data"]["post"]["user_id"] = json!(BOT);
    vec![
        posted_seed(),
        dm,
        bot,
        json!({"event": "hello", "data": {"server_version": "9.5.0"}, "broadcast": {}, "seq": 0}),
        json!({"status": "OK", "seq_reply": 1}),
        json!({"status": "FAIL", "seq_reply": 2, "error": {"id": "api.web_socket_router.bad_seq.app_error"}}),
        json!({"event": "user_removed", "data": {"channel_id": "c0pschannel0000000000000ab", "remover_id": "x"}, "broadcast": {"user_id": BOT}, "seq": 9}),
    ]
}

const KEYS: &[&str] = &[
    "event",
    "data",
    "post",
    "seq",
    "seq_reply",
    "status",
    "channel_type",
    "channel_name",
    "sender_name",
    "team_id",
    "user_id",
    "channel_id",
    "root_id",
    "message",
    "type",
    "props",
    "from_bot",
    "from_webhook",
    "id",
];

/// Turns a mutated `data.post` object back into the string Mattermost sends, mostly.
fn stringify_post(mut frame: Value, keep_object: bool) -> Value {
    if !keep_object {
        if let Some(post) = frame.pointer_mut("/data/post") {
            if post.is_object() {
                *post = Value::String(post.to_string());
            }
        }
    }
    frame
}

fn frames() -> impl Strategy<Value = Value> {
    let docs = with_identity_damage(
        mutated_json(seeds(), KEYS.to_vec(), 5),
        vec![
            "/data/post/user_id",
            "/data/post/channel_id",
            "/data/sender_name",
        ],
    );
    (docs, prop::bool::weighted(0.1)).prop_map(|(v, keep)| stringify_post(v, keep))
}

#[test]
fn any_frame_text_parses_or_is_refused() {
    let texts = mutated_json_text(
        seeds()
            .into_iter()
            .map(|v| stringify_post(v, false))
            .collect(),
        KEYS.to_vec(),
    );
    check("mattermost::frames", 256, texts, |text| {
        timed("parsing a frame", || parse_frame(&text))?;
        Ok(())
    });
}

#[test]
fn posted_events_map_to_sane_messages() {
    let strategy = (
        frames(),
        proptest::sample::select(vec![
            vec![],
            vec!["town-square".to_owned()],
            vec!["c0pschannel0000000000000ab".to_owned()],
        ]),
        any::<bool>(),
    );
    check(
        "mattermost::posted",
        256,
        strategy,
        |(frame, channels, reply_in_thread)| {
            let Some(WsFrame::Event { data, .. }) = parse_frame(&frame.to_string()) else {
                return Ok(());
            };
            let mapping = Mapping {
                connection: "mm",
                bot_id: BOT,
                bot_username: "stormbridge",
                team_id: Some("t3amt3amt3amt3amt3amt3amt3"),
                channels: &channels,
                reply_in_thread,
            };
            let Ok(msg) = timed("mapping a post", || posted_to_inbound(&data, &mapping))? else {
                return Ok(());
            };
            sane(&msg, "mm")?;
            // Read as the mapper reads it (a `Value` would refuse posts nested deeper than
            // serde_json's recursion limit in fields the mapper skips).
            let post: Post = data
                .get("post")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            prop_assert_eq!(&msg.user.id, &post.user_id);
            prop_assert_ne!(msg.user.id.as_str(), BOT);
            prop_assert_eq!(&msg.room.id, &post.channel_id);
            let message = post.message.as_str();
            if msg.mentioned {
                prop_assert!(message.ends_with(&msg.text), "{message:?} → {:?}", msg.text);
            } else {
                prop_assert_eq!(msg.text.as_str(), message);
            }
            Ok(())
        },
    );
}

#[test]
fn a_post_by_no_one_is_not_a_message() {
    // Found by `mattermost::posted`: a post whose `user_id` was blank (`" "`) became a
    // message from user `" "`.
    for user in ["", " ", "\t"] {
        let mut frame = posted_seed();
        frame["data"]["post"]["user_id"] = json!(user);
        let Some(WsFrame::Event { data, .. }) =
            parse_frame(&stringify_post(frame, false).to_string())
        else {
            panic!("not an event")
        };
        let mapping = Mapping {
            connection: "mm",
            bot_id: BOT,
            bot_username: "stormbridge",
            team_id: None,
            channels: &[],
            reply_in_thread: false,
        };
        assert_eq!(
            posted_to_inbound(&data, &mapping),
            Err(Skip::Malformed),
            "{user:?}"
        );
    }
}
