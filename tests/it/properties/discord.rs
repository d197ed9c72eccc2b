//! Discord gateway payloads and `MESSAGE_CREATE` (`stormbridge::backends::discord::wire`).
//!
//! * Any gateway text parses or is refused without panicking, in bounded time; so does any
//!   429 body and `Retry-After` header, whose delay is never negative or past an hour.
//! * Any `MESSAGE_CREATE` — the documented example with fields deleted, retyped,
//!   oversized — maps to a message or a reason to skip it; a message's user is the author's
//!   non-empty id (never the bot, never a bot or webhook author), its room the channel, its
//!   text the content or what follows a leading mention of the bot. Ids are compared as the
//!   snowflakes they denote: they are read as `twilight_model` ids, numbers (Discord sends
//!   them as strings; twilight reads both).

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};
use stormbridge::backends::discord::wire::{message_to_inbound, parse, retry_after, Mapping, Skip};

use super::{
    check, mutated_json, mutated_json_text, odd_string, sane, timed, with_identity_damage,
};

const BOT: &str = "1000000000000000999";

fn message_create() -> Value {
    json!({
        "op": 0,
        "t": "MESSAGE_CREATE",
        "s": 42,
        "d": {
            "id": "1100000000000000001",
            "channel_id": "1000000000000000002",
            "guild_id": "1000000000000000003",
            "author": {
                "id": "1000000000000000004",
                "username": "alice",
                "global_name": "Alice",
                "discriminator": "0",
                "avatar": null,
                "bot": false
            },
            "member": {"roles": [], "joined_at": "2024-01-01T00:00:00.000000+00:00"},
            "content": "!st2 run date",
            "timestamp": "2024-05-01T12:00:00.000000+00:00",
            "edited_timestamp": null,
            "tts": false,
            "mention_everyone": false,
            "mentions": [],
            "attachments": [],
            "embeds": [],
            "pinned": false,
            "type": 0
        }
    })
}

fn seeds() -> Vec<Value> {
    let mut dm = message_create();
    dm["d"].as_object_mut().map(|d| d.remove("guild_id"));
    dm["d"]["content"] = json!(format!("<@!{BOT}> st2 run uptime"));
    let mut webhook = message_create();
    webhook["d"]["webhook_id"] = json!("1000000000000000005");
    vec![
        message_create(),
        dm,
        webhook,
        json!({"op": 10, "d": {"heartbeat_interval": 41250}, "s": null, "t": null}),
        json!({"op": 0, "t": "READY", "s": 1, "d": {"session_id": "abc", "resume_gateway_url": "wss://g.example", "user": {"id": BOT, "bot": true}}}),
        json!({"op": 9, "d": false}),
        json!({"op": 11}),
    ]
}

const KEYS: &[&str] = &[
    "op",
    "t",
    "s",
    "d",
    "id",
    "channel_id",
    "guild_id",
    "author",
    "bot",
    "system",
    "webhook_id",
    "content",
    "username",
];

/// The snowflake a JSON id denotes, read as twilight reads it (a string or a number, not 0).
fn snowflake(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        v => v.as_u64(),
    }
    .filter(|n| *n != 0)
}

#[test]
fn the_seed_messages_are_messages() {
    // Otherwise every mutation of them would be `Malformed` and the property below vacuous.
    let mapping = Mapping {
        connection: "dc",
        bot_id: BOT,
        channels: &[],
    };
    let seeds = seeds();
    assert!(message_to_inbound(&seeds[0]["d"], &mapping).is_ok());
    assert!(message_to_inbound(&seeds[1]["d"], &mapping).is_ok_and(|m| m.mentioned));
    assert_eq!(message_to_inbound(&seeds[2]["d"], &mapping), Err(Skip::Bot));
}

#[test]
fn any_gateway_text_parses_or_is_refused() {
    check(
        "discord::gateway",
        256,
        mutated_json_text(seeds(), KEYS.to_vec()),
        |text| {
            timed("parsing a payload", || parse(&text))?;
            Ok(())
        },
    );
}

#[test]
fn rate_limit_delays_are_bounded() {
    let bodies = mutated_json_text(
        vec![
            json!({"message": "You are being rate limited.", "retry_after": 0.5, "global": false}),
            json!({"retry_after": 1e300}),
        ],
        vec!["retry_after", "global"],
    );
    let header = proptest::option::of(prop_oneof![
        odd_string(),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("-1".to_owned()),
        Just("1e309".to_owned()),
        "[0-9.e+-]{1,8}",
    ]);
    check(
        "discord::retry_after",
        256,
        (bodies, header),
        |(body, header)| {
            let delay = timed("reading a 429", || {
                retry_after(body.as_bytes(), header.as_deref())
            })?;
            if let Some(d) = delay {
                prop_assert!(d <= Duration::from_secs(3600), "{d:?}");
            }
            Ok(())
        },
    );
}

#[test]
fn message_create_maps_to_sane_messages() {
    let strategy = (
        with_identity_damage(
            mutated_json(seeds(), KEYS.to_vec(), 5),
            vec!["/d/author/id", "/d/channel_id", "/d/author/username"],
        ),
        proptest::sample::select(vec![vec![], vec!["1000000000000000002".to_owned()]]),
    );
    check(
        "discord::message_create",
        256,
        strategy,
        |(frame, channels)| {
            let text = frame.to_string();
            let Some(payload) = parse(&text) else {
                return Ok(());
            };
            let Some(raw) = payload.d else {
                return Ok(());
            };
            let mapping = Mapping {
                connection: "dc",
                bot_id: BOT,
                channels: &channels,
            };
            // The `d` that was sent (read back from `raw` it could exceed serde_json's
            // nesting limit for a `Value`, which the typed reading does not need).
            let d = &frame["d"];
            let Ok(msg) = timed("mapping a message", || message_to_inbound(raw, &mapping))? else {
                return Ok(());
            };
            sane(&msg, "dc")?;
            prop_assert_eq!(
                msg.user.id.parse::<u64>().ok(),
                snowflake(&d["author"]["id"])
            );
            prop_assert_ne!(msg.user.id.as_str(), BOT);
            prop_assert!(
                d["author"]["bot"] != json!(true)
                    && d["webhook_id"].as_str().unwrap_or("").is_empty()
            );
            prop_assert_eq!(msg.room.id.parse::<u64>().ok(), snowflake(&d["channel_id"]));
            let content = d["content"].as_str().unwrap_or_default();
            if msg.mentioned {
                prop_assert!(content.ends_with(&msg.text), "{content:?} → {:?}", msg.text);
            } else {
                prop_assert_eq!(msg.text.as_str(), content);
            }
            Ok(())
        },
    );
}

#[test]
fn a_message_by_no_one_is_not_a_message() {
    // Found by `discord::message_create`: an author id of `" "` became a user `" "`.
    for id in ["", " ", "\u{a0}"] {
        let mut frame = message_create();
        frame["d"]["author"]["id"] = json!(id);
        let mapping = Mapping {
            connection: "dc",
            bot_id: BOT,
            channels: &[],
        };
        assert_eq!(
            message_to_inbound(&frame["d"], &mapping),
            Err(Skip::Malformed),
            "{id:?}"
        );
    }
}
