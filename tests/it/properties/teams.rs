//! Teams: the activity parser and classifier (`stormbridge::backends::teams::wire`) and the
//! Bot Connector token check (`stormbridge::backends::teams::jwt`).
//!
//! * **Activities**: any body — real activities from Microsoft's documentation with fields
//!   deleted, retyped and oversized, identity fields damaged, bytes spliced in — is read or
//!   refused without panicking, in bounded time; a chat message always has a non-blank
//!   user (the sender's Entra object id, else their Teams id: never a bot), a room that is
//!   the conversation id up to `;messageid=`, the reply chain's root as its thread, and
//!   non-empty text.
//! * **Tokens**: any `Authorization` value and any token text is refused or accepted
//!   without panicking; a token the Bot Connector's key signed verifies, and one byte
//!   changed anywhere in it (header, claims or signature) makes it fail.

use base64::Engine;
use proptest::{prelude::*, sample::Index};
use serde_json::{json, Value};
use stormbridge::backends::teams::{
    jwt::{bearer, key_id, verify, KeySet},
    wire::{classify, split_conversation, Activity, Incoming},
};

use super::{
    check, mutated_json, mutated_json_text, odd_string, sane, timed, with_identity_damage,
};
use crate::teams::fake::{connector_claims, SigningKey, APP_ID, KEY_1};

const BOT: &str = "28:00000000-0000-4000-8000-00000000b07a";

/// A channel message, a reply in a chain, a one-to-one message, a card's button press and
/// a conversation update, as Teams sends them (conversation-messages, "Receive a message";
/// cards-actions, `Action.Submit`; conversation events, "Bot or user added").
fn seeds() -> Vec<Value> {
    let channel = json!({
        "text": "<at>stormbridge</at> st2 run date", "textFormat": "plain", "type": "message",
        "timestamp": "2024-05-01T10:00:00.000Z", "id": "1714557600000", "channelId": "msteams",
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "from": {"id": "29:1alice", "name": "Alice", "aadObjectId": "6b0e5d3c-0000-4000-8000-00000000a11c"},
        "conversation": {"isGroup": true, "conversationType": "channel", "tenantId": "t1",
                         "id": "19:ops@thread.tacv2;messageid=1714557600000", "name": "ops"},
        "recipient": {"id": BOT, "name": "stormbridge"},
        "entities": [{"mentioned": {"id": BOT, "name": "stormbridge"}, "text": "<at>stormbridge</at>", "type": "mention"},
                     {"locale": "en-US", "country": "US", "platform": "Web", "type": "clientInfo"}],
        "channelData": {"teamsChannelId": "19:ops@thread.tacv2", "teamsTeamId": "19:team@thread.tacv2",
                        "channel": {"id": "19:ops@thread.tacv2"}, "team": {"id": "19:team@thread.tacv2"},
                        "tenant": {"id": "t1"}},
    });
    let mut reply = channel.clone();
    reply["replyToId"] = json!("1714557600000");
    reply["id"] = json!("1714557611111");
    let mut direct = channel.clone();
    direct["conversation"] =
        json!({"conversationType": "personal", "tenantId": "t1", "id": "a:1dm"});
    direct["text"] = json!("!st2 run uptime");
    direct["entities"] = json!([]);
    let mut press = channel.clone();
    press.as_object_mut().map(|m| m.remove("text"));
    press["replyToId"] = json!("1714557622222");
    press["value"] = json!({"stormbridgeAnswer": "{\"i\":\"5f0e1d2c3b4a596877665544\",\"f\":\"approve\",\"v\":\"ship\"}"});
    let update = json!({
        "type": "conversationUpdate", "id": "f:1", "channelId": "msteams",
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "membersAdded": [{"id": BOT}], "recipient": {"id": BOT},
        "conversation": {"isGroup": true, "conversationType": "channel", "tenantId": "t1", "id": "19:ops@thread.tacv2"},
        "channelData": {"eventType": "teamMemberAdded", "tenant": {"id": "t1"}},
    });
    vec![channel, reply, direct, press, update]
}

const KEYS: &[&str] = &[
    "type",
    "id",
    "text",
    "from",
    "aadObjectId",
    "role",
    "recipient",
    "conversation",
    "conversationType",
    "isGroup",
    "tenantId",
    "entities",
    "mentioned",
    "value",
    "replyToId",
    "serviceUrl",
    "channelId",
    "channelData",
    "name",
];

#[test]
fn any_activity_body_reads_or_is_refused() {
    check(
        "teams::activity_text",
        256,
        mutated_json_text(seeds(), KEYS.to_vec()),
        |text| {
            let parsed = timed("reading an activity", || Activity::parse(text.as_bytes()))?;
            if let Some(a) = parsed {
                let _ = timed("classifying it", || classify(&a, "teams"))?;
            }
            Ok(())
        },
    );
}

#[test]
fn activities_map_to_sane_messages() {
    let docs = with_identity_damage(
        mutated_json(seeds(), KEYS.to_vec(), 5),
        vec![
            "/from/id",
            "/from/aadObjectId",
            "/conversation/id",
            "/recipient/id",
            "/from/role",
        ],
    );
    check("teams::classify", 512, docs, |doc| {
        let activity = Activity::from_value(&doc);
        let Ok(incoming) = timed("classifying", || classify(&activity, "teams"))? else {
            return Ok(());
        };
        prop_assert_eq!(doc["type"].as_str(), Some("message"));
        prop_assert!(!activity.from_a_bot(), "a bot's activity became a command");
        let (room, thread) = split_conversation(activity.conversation_id.trim());
        let (user, msg_room) = match &incoming {
            Incoming::Message(m) => {
                sane(m, "teams")?;
                prop_assert!(!m.text.trim().is_empty());
                (m.user.clone(), m.room.clone())
            }
            Incoming::Press(p) => (p.user.clone(), p.room.clone()),
        };
        let expected_user = [&activity.from.aad_object_id, &activity.from.id]
            .into_iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty());
        prop_assert_eq!(Some(user.id.as_str()), expected_user);
        prop_assert!(!msg_room.id.is_empty() && !msg_room.id.contains(";messageid="));
        prop_assert_eq!(msg_room.id.as_str(), room);
        prop_assert_eq!(msg_room.thread.as_deref(), thread);
        Ok(())
    });
}

/// A change to make to a token after signing.
#[derive(Debug, Clone)]
enum Tamper {
    Nothing,
    Byte(Index, u8),
    Cut(Index),
}

#[test]
fn only_the_signed_token_verifies() {
    let key = SigningKey::new(KEY_1, "key-1");
    let keys = KeySet::from_jwks(json!({"keys": [key.jwk()]}).to_string().as_bytes())
        .expect("the fake's JWKS reads");
    let service = "https://smba.trafficmanager.net/emea/";
    let token = key.sign(&connector_claims(service));
    let strategy = prop_oneof![
        1 => Just(Tamper::Nothing),
        6 => (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Tamper::Byte(i, x)),
        1 => any::<Index>().prop_map(Tamper::Cut),
    ];
    check("teams::token", 256, strategy, |tamper| {
        let mut t = token.clone().into_bytes();
        match tamper {
            Tamper::Nothing => {}
            Tamper::Byte(i, x) => {
                let i = i.index(t.len());
                t[i] ^= x;
            }
            Tamper::Cut(i) => t.truncate(i.index(t.len())),
        }
        let changed = t != token.as_bytes();
        let text = String::from_utf8_lossy(&t).into_owned();
        let ok = timed("checking a token", || {
            key_id(&text)
                .and_then(|kid| verify(&text, &kid, &keys, APP_ID))
                .and_then(|v| v.admits(service, "msteams"))
                .is_ok()
        })?;
        if changed {
            // Base64url has spare bits in its last character: a change there may decode to
            // the same bytes, and so to the same, still valid, token.
            let same = decoded(&text) == decoded(&token);
            prop_assert!(!ok || same, "a changed token verified: {text}");
        } else {
            prop_assert!(ok, "the genuine token was refused");
        }
        Ok(())
    });
}

/// A token's three parts, decoded.
fn decoded(token: &str) -> Vec<Option<Vec<u8>>> {
    token
        .split('.')
        .map(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .collect()
}

#[test]
fn any_header_or_token_text_is_refused_without_panicking() {
    let keys = KeySet::from_jwks(
        json!({"keys": [SigningKey::new(KEY_1, "key-1").jwk()]})
            .to_string()
            .as_bytes(),
    )
    .expect("keys");
    let texts = prop_oneof![
        odd_string(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}",
        Just("eyJhbGciOiJSUzI1NiIsImtpZCI6ImtleS0xIn0.e30.".to_owned()),
    ];
    check("teams::headers", 256, texts, |text| {
        let header = format!("Bearer {text}");
        let verdict = timed("reading a header and token", || {
            bearer(&header)
                .and_then(|t| key_id(t).map(|kid| (t, kid)))
                .and_then(|(t, kid)| verify(t, &kid, &keys, APP_ID))
                .is_ok()
        })?;
        prop_assert!(!verdict, "made-up text verified: {text:?}");
        Ok(())
    });
}
