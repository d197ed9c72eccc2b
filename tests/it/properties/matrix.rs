//! Matrix `/sync` responses and room messages (`stormbridge::backends::matrix::wire`).
//!
//! * Any `/sync` body — a real one (the spec's example shape: joined room with state and
//!   timeline, an invitation, a left room, `m.direct`) with fields deleted, retyped,
//!   oversized, or the text damaged — reads or is refused without panicking, in bounded
//!   time, and every helper that walks it (room names, invitations, kicks, own join,
//!   direct rooms) copes with what it holds.
//! * Every timeline event of it maps to a message or a reason to skip it; a message's user
//!   is the event's non-empty sender (never the bot or an ignored user), its id the event
//!   id, and its text the body (trimmed), or what follows a reply's quote or a leading
//!   address of the bot.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use stormbridge::backends::matrix::wire::{
    after_own_join, direct_rooms, error_code, invitation, message_to_inbound, removed_by_other,
    retry_delay, Mapping, RoomInfo, Skip, SyncResponse,
};

use super::{check, mutated_json, mutated_json_text, sane, timed, with_identity_damage};

const BOT: &str = "@stormbridge:example.org";

fn message(sender: &str, body: &str) -> Value {
    json!({
        "type": "m.room.message",
        "sender": sender,
        "event_id": "$143273582443PhrSn:example.org",
        "origin_server_ts": 1432735824653u64,
        "content": {"msgtype": "m.text", "body": body},
        "unsigned": {"age": 1234}
    })
}

fn sync_seed() -> Value {
    let mut reply = message(
        "@bob:example.org",
        "> <@alice:example.org> hi\n\nstormbridge: st2 run date",
    );
    reply["content"]["m.relates_to"] = json!({"m.in_reply_to": {"event_id": "$abc:example.org"}});
    let mut threaded = message("@alice:example.org", "!st2 run uptime");
    threaded["content"]["m.relates_to"] =
        json!({"rel_type": "m.thread", "event_id": "$root:example.org"});
    let mut edit = message("@alice:example.org", "* !st2 run edited");
    edit["content"]["m.new_content"] = json!({"msgtype": "m.text", "body": "!st2 run edited"});
    let mut mentions = message("@carol:example.org", "please st2 run whoami");
    mentions["content"]["m.mentions"] = json!({"user_ids": [BOT]});
    json!({
        "next_batch": "s72595_4483_1934",
        "account_data": {"events": [
            {"type": "m.direct", "content": {"@alice:example.org": ["!dm:example.org"]}}
        ]},
        "rooms": {
            "join": {
                "!ops:example.org": {
                    "state": {"events": [
                        {"type": "m.room.name", "state_key": "", "sender": "@alice:example.org", "content": {"name": "Ops"}},
                        {"type": "m.room.member", "state_key": "@alice:example.org", "sender": "@alice:example.org", "content": {"membership": "join", "displayname": "Alice"}}
                    ]},
                    "timeline": {"events": [
                        {"type": "m.room.member", "state_key": BOT, "sender": BOT, "content": {"membership": "join"}},
                        message("@alice:example.org", "!st2 run date"),
                        message(BOT, "Started"),
                        reply, threaded, edit, mentions,
                        {"type": "m.room.message", "sender": "@dave:example.org", "event_id": "$n:example.org", "content": {"msgtype": "m.notice", "body": "bot"}}
                    ], "limited": false, "prev_batch": "t34-23535_0_0"}
                },
                "!dm:example.org": {"timeline": {"events": [message("@alice:example.org", "st2 run hostname")]}}
            },
            "invite": {
                "!new:example.org": {"invite_state": {"events": [
                    {"type": "m.room.member", "state_key": BOT, "sender": "@alice:example.org", "content": {"membership": "invite", "is_direct": true}}
                ]}}
            },
            "leave": {
                "!gone:example.org": {"timeline": {"events": [
                    {"type": "m.room.member", "state_key": BOT, "sender": "@mod:example.org", "content": {"membership": "leave"}}
                ]}}
            }
        }
    })
}

const KEYS: &[&str] = &[
    "next_batch",
    "rooms",
    "join",
    "invite",
    "leave",
    "state",
    "timeline",
    "events",
    "type",
    "sender",
    "event_id",
    "content",
    "msgtype",
    "body",
    "m.relates_to",
    "rel_type",
    "m.in_reply_to",
    "m.new_content",
    "m.mentions",
    "user_ids",
    "state_key",
    "membership",
    "origin_server_ts",
    "unsigned",
    "prev_content",
    "account_data",
];

/// Everything the connection does with one sync batch, and the messages it would dispatch.
fn walk(batch: &SyncResponse) -> Result<(), TestCaseError> {
    let _ = direct_rooms(&batch.account_data);
    for invited in batch.rooms.invite.values() {
        let _ = invitation(invited, BOT);
    }
    for left in batch.rooms.leave.values() {
        let _ = removed_by_other(left, BOT);
    }
    let ignore = vec!["@otherbot:example.org".to_owned()];
    let names = vec!["StormBridge".to_owned(), "stormbridge".to_owned()];
    for (room_id, joined) in &batch.rooms.join {
        let mut info = RoomInfo::default();
        info.apply(joined.state.events.iter().chain(&joined.timeline.events));
        let members: HashMap<String, String> = info.member_names.clone();
        for direct in [false, true] {
            let mapping = Mapping {
                connection: "mx",
                bot_user_id: BOT,
                bot_names: &names,
                ignore_users: &ignore,
                direct,
                room_name: info.display(),
                member_names: &members,
                reply_in_thread: direct,
                now_ms: 1_432_735_830_000,
                max_age_ms: if direct { 0 } else { 60_000 },
            };
            for event in after_own_join(&joined.timeline.events, BOT) {
                let Ok(msg) = message_to_inbound(room_id, event, &mapping) else {
                    continue;
                };
                sane(&msg, "mx")?;
                prop_assert_eq!(Some(msg.user.id.as_str()), event["sender"].as_str());
                prop_assert!(msg.user.id != BOT && !ignore.contains(&msg.user.id));
                prop_assert_eq!(msg.message_id.as_deref(), event["event_id"].as_str());
                prop_assert_eq!(&msg.room.id, room_id);
                let body = event["content"]["body"].as_str().unwrap_or_default();
                prop_assert!(body.contains(&msg.text), "{body:?} → {:?}", msg.text);
                let plain = event["content"].get("m.relates_to").is_none()
                    && !body.to_lowercase().starts_with("stormbridge")
                    && !body.trim_start().starts_with('@');
                if plain {
                    prop_assert_eq!(msg.text.as_str(), body.trim());
                }
            }
        }
    }
    Ok(())
}

#[test]
fn any_sync_body_reads_or_is_refused() {
    check(
        "matrix::sync_text",
        128,
        mutated_json_text(vec![sync_seed()], KEYS.to_vec()),
        |text| {
            let batch = timed("reading a sync body", || {
                serde_json::from_str::<SyncResponse>(&text)
            })?;
            if let Ok(batch) = batch {
                timed("walking a sync batch", || walk(&batch))??;
            }
            let _ = error_code(text.as_bytes());
            let _ = retry_delay(text.as_bytes(), Some(&text));
            Ok(())
        },
    );
}

#[test]
fn timeline_events_map_to_sane_messages() {
    check(
        "matrix::timeline",
        256,
        with_identity_damage(
            mutated_json(vec![sync_seed()], KEYS.to_vec(), 6),
            vec![
                "/rooms/join/!ops:example.org/timeline/events/1/sender",
                "/rooms/join/!ops:example.org/timeline/events/1/event_id",
                "/rooms/join/!dm:example.org/timeline/events/0/sender",
            ],
        ),
        |doc| {
            let Ok(batch) = serde_json::from_value::<SyncResponse>(doc) else {
                return Ok(());
            };
            timed("mapping a sync batch", || walk(&batch))??;
            Ok(())
        },
    );
}

#[test]
fn a_message_from_no_one_is_not_a_message() {
    // Found by `matrix::timeline`: an event whose `sender` was `""` (then `" "`) became a
    // message from user `""`; an empty `event_id` is refused too (it would be a thread root).
    let names = Vec::new();
    let members = HashMap::new();
    let mapping = Mapping {
        connection: "mx",
        bot_user_id: BOT,
        bot_names: &names,
        ignore_users: &names,
        direct: false,
        room_name: None,
        member_names: &members,
        reply_in_thread: true,
        now_ms: 0,
        max_age_ms: 0,
    };
    for sender in ["", " ", "\n"] {
        let event = message(sender, "!st2 run date");
        assert_eq!(
            message_to_inbound("!ops:example.org", &event, &mapping),
            Err(Skip::Malformed),
            "{sender:?}"
        );
    }
    let mut event = message("@alice:example.org", "!st2 run date");
    event["event_id"] = json!("");
    assert_eq!(
        message_to_inbound("!ops:example.org", &event, &mapping),
        Err(Skip::Malformed)
    );
}
