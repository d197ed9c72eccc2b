//! StackStorm announcements (`st2.announcement__<route>` stream events) and where they go.
//!
//! The bridge sends a [`SourceContext`] with every alias execution; the chatops pack hands it
//! back as the announcement's `context`, which is how a result finds its connection, room
//! and thread again. Announcements without it (a workflow calling `chatops.post_message`)
//! are routed by `channel`, optionally written `<connection>:<room>`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mention::Addressee;
use super::message::{RoomKind, Target};

/// The marker the bridge puts in `source_context.bridge`, so its own context is recognised.
pub const BRIDGE_MARKER: &str = "stormbridge";

/// The chat envelope sent to st2 as `source_context` and returned in announcements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceContext {
    /// Always [`BRIDGE_MARKER`].
    pub bridge: String,
    /// Configured connection name.
    pub connection: String,
    /// Room id the command came from.
    pub room: String,
    /// Direct or group.
    pub room_kind: RoomKind,
    /// Thread the command was said in, if any.
    #[serde(default)]
    pub thread: Option<String>,
    /// Platform message id of the command, if any.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The requesting user's platform id.
    pub user_id: String,
    /// The requesting user's display name, to address results to them by name where the
    /// platform mentions people by name. Absent in contexts older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The bridge's own id for this command; ties the result to its acknowledgement.
    pub request_id: String,
}

/// A decoded announcement payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// Route key the event was published on.
    pub route: String,
    /// Message text (StackStorm's `{~}` pretext convention still applied).
    pub message: String,
    /// Target channel as st2 knows it.
    pub channel: Option<String>,
    /// User to address (the `user` sent with the command).
    pub user: Option<String>,
    /// Deliver privately to `user`.
    pub whisper: bool,
    /// The bridge's own context, when the announcement answers one of its commands.
    pub context: Option<SourceContext>,
    /// The announcement carries a chat context that is not the bridge's: it answers another
    /// bot's command (st2chatops shares the `chatops` route), and that bot posts it.
    pub foreign_context: bool,
    /// Platform-specific formatting hints (`extra.slack`, `extra.color`, …).
    pub extra: Option<Value>,
}

/// Why an announcement could not be decoded. The event is logged and skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnouncementError {
    /// The event data was not JSON.
    #[error("announcement data is not JSON: {0}")]
    NotJson(String),
    /// The JSON had no `payload` object.
    #[error("announcement has no `payload` object")]
    NoPayload,
    /// The payload had no `message`.
    #[error("announcement payload has no `message`")]
    NoMessage,
    /// No chat connection is configured to deliver to.
    #[error("no chat connection to deliver to")]
    NoConnection,
    /// Neither a channel nor a user to deliver to.
    #[error("announcement names neither a channel nor a user")]
    NoDestination,
}

/// Decodes the `data` line of an `st2.announcement__<route>` event.
///
/// The usual shape (a string message, the bridge's own context or none) is read straight
/// into typed fields; anything else goes the general way, through a JSON value.
pub fn decode(route: &str, data: &str) -> Result<Announcement, AnnouncementError> {
    match decode_usual(route, data) {
        Some(announcement) => Ok(announcement),
        None => decode_any(route, data),
    }
}

/// An announcement event in the shape StackStorm's chatops pack publishes for the bridge's
/// commands, read without building a JSON value (that was most of the stream consumer's
/// work per announcement). Deserialising fails, and [`decode_any`] takes over, for any other
/// shape: a message that is not a string, a context that is not the bridge's, a duplicate key.
#[derive(Deserialize)]
struct UsualEvent {
    payload: UsualPayload,
}

/// The payload of an [`UsualEvent`].
#[derive(Deserialize)]
struct UsualPayload {
    message: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    whisper: Option<bool>,
    #[serde(default)]
    context: Option<ObjectOnly<SourceContext>>,
    #[serde(default)]
    extra: Option<Value>,
}

/// A struct read only from a JSON object: serde reads a struct from an array too, which
/// [`decode_any`] does not accept as a context.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = ObjectOnly<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// [`decode`]'s typed way; `None` when the event is not in the usual shape.
fn decode_usual(route: &str, data: &str) -> Option<Announcement> {
    let payload = serde_json::from_str::<UsualEvent>(data).ok()?.payload;
    let context = match payload.context {
        Some(ObjectOnly(c)) if c.bridge == BRIDGE_MARKER => Some(c),
        Some(_) => return None,
        None => None,
    };
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Some(Announcement {
        route: route.to_owned(),
        message: payload.message,
        channel: non_empty(payload.channel),
        user: non_empty(payload.user),
        whisper: payload.whisper.unwrap_or(false),
        context,
        foreign_context: false,
        extra: payload.extra.filter(|v| !v.is_null()),
    })
}

/// [`decode`]'s general way, for any JSON.
fn decode_any(route: &str, data: &str) -> Result<Announcement, AnnouncementError> {
    let value: Value =
        serde_json::from_str(data).map_err(|e| AnnouncementError::NotJson(e.to_string()))?;
    let payload = value
        .get("payload")
        .and_then(Value::as_object)
        .ok_or(AnnouncementError::NoPayload)?;
    let message = match payload.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => return Err(AnnouncementError::NoMessage),
        // `core.announcement` allows an object message; show it rather than drop it.
        Some(other) => other.to_string(),
    };
    let text_field = |key: &str| {
        payload
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let raw_context = payload
        .get("context")
        .filter(|c| c.as_object().is_some_and(|o| !o.is_empty()));
    let context = raw_context
        .cloned()
        .and_then(|c| serde_json::from_value::<SourceContext>(c).ok())
        .filter(|c| c.bridge == BRIDGE_MARKER);
    let foreign_context = raw_context.is_some() && context.is_none();
    Ok(Announcement {
        route: route.to_owned(),
        message,
        channel: text_field("channel"),
        user: text_field("user"),
        whisper: payload
            .get("whisper")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        context,
        foreign_context,
        extra: payload.get("extra").filter(|v| !v.is_null()).cloned(),
    })
}

/// A message ready to hand to one chat connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The configured connection name.
    pub connection: String,
    /// Room or user on that connection.
    pub target: Target,
    /// Plain text to send.
    pub text: String,
    /// Formatting hints for platforms that can use them.
    pub extra: Option<Value>,
    /// The command this answers, when it answers one.
    pub request_id: Option<String>,
    /// The platform id of the command's message, when the context carries it.
    pub reply_to: Option<String>,
    /// The message as StackStorm laid it out (`{~}`), for platforms that show attachments;
    /// `None` for the bridge's own notices, which are plain text.
    pub layout: Option<Layout>,
    /// Who to mention: the person the message is for, when it goes to a shared room.
    pub addressee: Option<Addressee>,
}

/// A StackStorm message split at its `{~}` the way hubot-stackstorm's Slack adapter laid
/// it out (`utils.splitMessage`, `messaging_handler/slack.js`): the pretext above a
/// coloured attachment holding the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// The text before `{~}`; empty without one.
    pub pretext: String,
    /// The text after `{~}`, or all of it without one. Empty: there is no attachment.
    pub body: String,
    /// Whether the message reports a failed execution, for the attachment's colour.
    pub failed: bool,
}

impl Layout {
    /// Splits `message` at its first `{~}`.
    pub fn of(message: &str) -> Layout {
        let (pretext, body) = message.split_once("{~}").unwrap_or(("", message));
        Layout {
            pretext: pretext.trim_end().to_owned(),
            body: body.trim_start().trim_end().to_owned(),
            failed: reports_failure(message),
        }
    }
}

/// Whether a result message says its execution did not succeed. hubot looked for StackStorm's
/// default format's `status : failed`; a timed-out or abandoned execution failed too.
pub fn reports_failure(message: &str) -> bool {
    ["status : failed", "status : timeout", "status : abandoned"]
        .iter()
        .any(|s| message.contains(s))
}

/// Decides where an announcement goes among the configured connections (in config order).
pub fn route(a: &Announcement, connections: &[String]) -> Result<Delivery, AnnouncementError> {
    let known = |name: &str| connections.iter().any(|c| c == name);
    let ctx = a.context.as_ref().filter(|c| known(&c.connection));
    let (connection, channel) = match (ctx, a.channel.as_deref()) {
        (Some(c), channel) => (c.connection.clone(), channel.map(str::to_owned)),
        (None, Some(ch)) => match ch.split_once(':') {
            Some((conn, room)) if known(conn) => (conn.to_owned(), Some(room.to_owned())),
            _ => (first(connections)?, Some(ch.to_owned())),
        },
        (None, None) => (first(connections)?, None),
    };
    // A whisper answering one of the bridge's commands goes to the account that ran it (the
    // `user` StackStorm hands back may be a display name: `bot.st2_user = "name"`).
    let whisper_to = ctx.map(|c| c.user_id.clone()).or_else(|| a.user.clone());
    let whispered = a.whisper && whisper_to.is_some();
    let target = if let (true, Some(user)) = (a.whisper, whisper_to) {
        Target::User { id: user }
    } else if let Some(c) = ctx.filter(|c| channel.as_deref().is_none_or(|ch| ch == c.room)) {
        Target::Room {
            id: c.room.clone(),
            kind: c.room_kind,
            thread: c.thread.clone(),
        }
    } else if let Some(ch) = channel {
        Target::Room {
            id: ch,
            kind: RoomKind::Group,
            thread: None,
        }
    } else if let Some(user) = a.user.as_ref() {
        Target::User { id: user.clone() }
    } else {
        return Err(AnnouncementError::NoDestination);
    };
    // hubot addressed every message it posted in a room to the announcement's `user`.
    let in_group_room = matches!(
        target,
        Target::Room {
            kind: RoomKind::Group,
            ..
        }
    );
    let addressee = (in_group_room && !whispered)
        .then(|| match ctx {
            Some(c) => Some(Addressee {
                id: c.user_id.clone(),
                name: c.user_name.clone(),
            }),
            None => a.user.clone().map(|id| Addressee { id, name: None }),
        })
        .flatten();
    Ok(Delivery {
        connection,
        target,
        text: plain_text(&a.message),
        extra: a.extra.clone(),
        request_id: a.context.as_ref().map(|c| c.request_id.clone()),
        reply_to: a.context.as_ref().and_then(|c| c.message_id.clone()),
        layout: Some(Layout::of(&a.message)),
        addressee,
    })
}

fn first(connections: &[String]) -> Result<String, AnnouncementError> {
    connections
        .first()
        .cloned()
        .ok_or(AnnouncementError::NoConnection)
}

/// Applies StackStorm's `{~}` convention for platforms without attachments: pretext and
/// attachment text joined by a newline; a trailing `{~}` means all plain text.
pub fn plain_text(message: &str) -> String {
    match message.split_once("{~}") {
        Some((pretext, text)) if text.trim().is_empty() => pretext.trim_end().to_owned(),
        Some((pretext, text)) if pretext.trim().is_empty() => text.trim_start().to_owned(),
        Some((pretext, text)) => format!("{}\n{}", pretext.trim_end(), text.trim_start()),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"bridge": "stormbridge", "connection": "slack", "room": "C1", "room_kind": "group",
               "thread": "171.5", "message_id": "171.5", "user_id": "U1", "request_id": "r1"})
    }

    fn conns() -> Vec<String> {
        vec!["console".into(), "slack".into()]
    }

    #[test]
    fn result_goes_back_to_the_room_and_thread_of_the_command() {
        let data = json!({"payload": {"message": "done", "channel": "C1", "user": "U1",
                          "whisper": false, "context": ctx(), "extra": null}, "trace_context": null});
        let a = decode("stormbridge", &data.to_string()).unwrap();
        let d = route(&a, &conns()).unwrap();
        assert_eq!(d.connection, "slack");
        assert_eq!(
            d.target,
            Target::Room {
                id: "C1".into(),
                kind: RoomKind::Group,
                thread: Some("171.5".into())
            }
        );
        assert_eq!(d.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn whisper_goes_to_the_user() {
        let data = json!({"payload": {"message": "psst", "channel": "C1", "user": "U1", "whisper": true, "context": ctx()}});
        let d = route(&decode("r", &data.to_string()).unwrap(), &conns()).unwrap();
        assert_eq!(d.target, Target::User { id: "U1".into() });
        assert_eq!(d.connection, "slack");
    }

    #[test]
    fn foreign_announcement_is_routed_by_channel() {
        let data = json!({"payload": {"message": "hi", "channel": "slack:C9"}});
        let d = route(&decode("r", &data.to_string()).unwrap(), &conns()).unwrap();
        assert_eq!(d.connection, "slack");
        assert_eq!(
            d.target,
            Target::Room {
                id: "C9".into(),
                kind: RoomKind::Group,
                thread: None
            }
        );
        let data = json!({"payload": {"message": "hi", "channel": "ops"}});
        let d = route(&decode("r", &data.to_string()).unwrap(), &conns()).unwrap();
        assert_eq!(d.connection, "console");
    }

    #[test]
    fn another_bots_context_is_recognised_and_an_empty_one_is_none() {
        let hubot = json!({"payload": {"message": "m", "channel": "C1",
            "context": {"user": "bob", "room": "C1", "id": "1700.1"}}});
        let a = decode("chatops", &hubot.to_string()).unwrap();
        assert!(a.foreign_context);
        assert_eq!(a.context, None);
        for context in [json!({}), json!(null)] {
            let data = json!({"payload": {"message": "m", "channel": "C1", "context": context}});
            assert!(
                !decode("chatops", &data.to_string())
                    .unwrap()
                    .foreign_context
            );
        }
        let ours = json!({"payload": {"message": "m", "context": ctx()}});
        assert!(!decode("x", &ours.to_string()).unwrap().foreign_context);
    }

    #[test]
    fn the_typed_way_agrees_with_the_general_one_or_stands_aside() {
        let mut other = ctx();
        other["bridge"] = json!("another");
        let mut extra_context = ctx();
        extra_context["later_field"] = json!(1);
        let samples = [
            json!({"payload": {"message": "done", "channel": "C1", "user": "U1",
                   "whisper": false, "context": ctx(), "extra": null}}),
            json!({"payload": {"message": "m", "channel": "", "user": null, "whisper": null,
                   "context": extra_context, "extra": {"color": "red"}}, "trace_context": null}),
            json!({"payload": {"message": "m"}}),
            json!({"payload": {"message": {"a": 1}, "channel": "C1"}}),
            json!({"payload": {"message": "m", "channel": 5, "whisper": "yes"}}),
            json!({"payload": {"message": "m", "context": {}}}),
            json!({"payload": {"message": "m", "context": other}}),
            json!({"payload": {"message": "m", "context": ["stormbridge", "c", "r", "group",
                   null, null, "u", null, "q"]}}),
            json!({"payload": {"message": null}}),
            json!({"payload": "m"}),
        ];
        let mut typed = 0;
        for sample in samples {
            let data = sample.to_string();
            if let Some(usual) = decode_usual("r", &data) {
                typed += 1;
                assert_eq!(Ok(usual), decode_any("r", &data), "{data}");
            }
            assert_eq!(decode("r", &data), decode_any("r", &data), "{data}");
        }
        assert_eq!(typed, 3, "the usual shapes take the typed way");
        let twice = r#"{"payload": {"message": "a", "message": "b"}}"#;
        assert_eq!(decode_usual("r", twice), None);
        assert_eq!(decode("r", twice).unwrap().message, "b");
    }

    /// A JSON value of some kind for a payload field (absent: `None`).
    fn any_field() -> impl proptest::strategy::Strategy<Value = Option<Value>> {
        use proptest::prelude::*;
        let mut other = ctx();
        other["bridge"] = json!("hubot");
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!(""))),
            "[a-z:{}~ ]{0,8}".prop_map(|s| Some(json!(s))),
            any::<bool>().prop_map(|b| Some(json!(b))),
            Just(Some(json!(7))),
            Just(Some(json!({}))),
            Just(Some(json!(["stormbridge"]))),
            Just(Some(ctx())),
            Just(Some(other)),
            Just(Some(json!({"slack": {"color": "red"}}))),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever each payload field holds, `decode` answers as the general way does.
        #[test]
        fn decoding_any_payload_agrees_with_the_general_way(
            fields in proptest::collection::vec(any_field(), 6),
            payload_is_object in proptest::prelude::any::<bool>(),
        ) {
            let names = ["message", "channel", "user", "whisper", "context", "extra"];
            let payload: serde_json::Map<String, Value> = names
                .iter()
                .zip(fields)
                .filter_map(|(name, v)| v.map(|v| (name.to_string(), v)))
                .collect();
            let payload = if payload_is_object { Value::Object(payload) } else { json!([payload]) };
            let data = json!({"payload": payload, "trace_context": null}).to_string();
            proptest::prop_assert_eq!(decode("r", &data), decode_any("r", &data));
        }
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        assert!(matches!(
            decode("r", "{not json"),
            Err(AnnouncementError::NotJson(_))
        ));
        assert_eq!(decode("r", "[]"), Err(AnnouncementError::NoPayload));
        assert_eq!(
            decode("r", r#"{"payload": {"channel": "x"}}"#),
            Err(AnnouncementError::NoMessage)
        );
        let a = decode("r", r#"{"payload": {"message": "m"}}"#).unwrap();
        assert_eq!(route(&a, &[]), Err(AnnouncementError::NoConnection));
    }

    #[test]
    fn a_room_message_is_addressed_to_its_user_and_a_whisper_or_dm_is_not() {
        let data = json!({"payload": {"message": "done", "channel": "C1", "user": "U1",
                          "whisper": false, "context": ctx()}});
        let d = route(&decode("r", &data.to_string()).unwrap(), &conns()).unwrap();
        assert_eq!(d.addressee.map(|a| a.id).as_deref(), Some("U1"));
        let data = json!({"payload": {"message": "psst", "user": "U1", "whisper": true, "context": ctx()}});
        let d = route(&decode("r", &data.to_string()).unwrap(), &conns()).unwrap();
        assert_eq!(d.addressee, None);
        let mut dm = ctx();
        dm["room_kind"] = json!("direct");
        let data = json!({"payload": {"message": "done", "channel": "C1", "context": dm}});
        let d = route(&decode("r", &data.to_string()).unwrap(), &conns()).unwrap();
        assert_eq!(d.addressee, None);
        // A workflow's own announcement names its user as text.
        let data = json!({"payload": {"message": "hi", "channel": "slack:C9", "user": "bob"}});
        let d = route(&decode("r", &data.to_string()).unwrap(), &conns()).unwrap();
        assert_eq!(d.addressee.map(|a| a.id).as_deref(), Some("bob"));
    }

    #[test]
    fn layout_splits_at_the_first_marker_and_notes_failures() {
        let l = Layout::of("Ran it {~} status : failed\nmore");
        assert_eq!(
            (l.pretext.as_str(), l.body.as_str(), l.failed),
            ("Ran it", "status : failed\nmore", true)
        );
        let l = Layout::of("all body");
        assert_eq!(
            (l.pretext.as_str(), l.body.as_str(), l.failed),
            ("", "all body", false)
        );
        assert_eq!(Layout::of("all pretext{~}").body, "");
    }

    #[test]
    fn pretext_convention() {
        assert_eq!(plain_text("pre{~}body"), "pre\nbody");
        assert_eq!(plain_text("all plain{~}"), "all plain");
        assert_eq!(plain_text("{~}body"), "body");
        assert_eq!(plain_text("none"), "none");
    }
}
