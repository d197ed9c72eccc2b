//! Bot Framework activities as Teams sends them to the bot, read leniently, and what the
//! bridge makes of them: a chat message, an answer-button press, or nothing.
//!
//! The fields are those of the Activity schema
//! (<https://learn.microsoft.com/azure/bot-service/rest-api/bot-framework-rest-connector-api-reference#activity-object>)
//! and the Teams additions
//! (<https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/conversation-messages>):
//! `type`, `id`, `serviceUrl`, `channelId`, `from` (`id`, `name`, `aadObjectId`, `role`),
//! `recipient` (the bot), `conversation` (`id`, `conversationType` `personal` / `groupChat` /
//! `channel`, `tenantId`, `name`), `text`, `entities` (`mention`s), `channelData` (`tenant`,
//! `team`, `channel`), `replyToId` and `value` (what an Adaptive Card's `Action.Submit`
//! sends). A field of the wrong type counts as missing: one odd field never costs the whole
//! activity. Pure functions, tested without a server.
//!
//! Identity: the user is the person's Microsoft Entra object id (`from.aadObjectId`), or
//! their Teams id (`from.id`, `29:…`) where Teams gives none; the room is the conversation
//! id, a channel's reply chain its thread: in a channel every post is the root of a reply
//! chain, and its conversation id is `<channel id>;messageid=<root post id>`, so the room is
//! the part before `;messageid=` and the thread the part after. The organisation is the
//! tenant.

use serde_json::Value;

use crate::{
    backends::buttons::ButtonAction,
    domain::message::{ChatUser, InboundMessage, Room, RoomKind},
};

/// The key of an `Action.Submit`'s `data` that carries an answer button's answer.
pub const ANSWER_KEY: &str = "stormbridgeAnswer";

/// What separates a channel's id from the root post of a reply chain in a conversation id.
const THREAD_MARK: &str = ";messageid=";

/// A channel account (`from`, `recipient`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// The Teams id (`29:…` for people, `28:…` for bots).
    pub id: String,
    /// The display name.
    pub name: String,
    /// The Microsoft Entra object id, for people.
    pub aad_object_id: String,
    /// `user` or `bot`, where given.
    pub role: String,
}

/// An activity, as far as the bridge reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// `message`, `conversationUpdate`, `invoke`, …
    pub kind: String,
    /// The activity's id (a message id in Teams).
    pub id: String,
    /// Where replies for this conversation go.
    pub service_url: String,
    /// `msteams` for Teams.
    pub channel_id: String,
    /// The sender.
    pub from: Account,
    /// The bot.
    pub recipient: Account,
    /// The conversation id (with `;messageid=` in a channel's reply chain).
    pub conversation_id: String,
    /// `personal`, `groupChat` or `channel`.
    pub conversation_type: String,
    /// Whether the conversation has more than two members (older activities say only this).
    pub is_group: Option<bool>,
    /// The conversation's name, where Teams gives one.
    pub conversation_name: String,
    /// The tenant (`conversation.tenantId`, else `channelData.tenant.id`).
    pub tenant_id: String,
    /// The text.
    pub text: String,
    /// `entities`.
    pub entities: Vec<Value>,
    /// The activity this one answers (for a card's button press: the card's activity).
    pub reply_to_id: String,
    /// An `Action.Submit`'s data.
    pub value: Option<Value>,
}

fn text_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_default()
}

fn account(v: &Value, key: &str) -> Account {
    let at = |field: &str| text_at(v, &format!("/{key}/{field}"));
    Account {
        id: at("id"),
        name: at("name"),
        aad_object_id: at("aadObjectId"),
        role: at("role"),
    }
}

impl Activity {
    /// Reads an activity from its JSON; `None` when the body is not a JSON object.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        v.is_object().then(|| Self::from_value(&v))
    }

    /// Reads an activity from a JSON object (missing or mistyped fields are empty).
    pub fn from_value(v: &Value) -> Self {
        let tenant = [
            text_at(v, "/conversation/tenantId"),
            text_at(v, "/channelData/tenant/id"),
        ]
        .into_iter()
        .find(|t| !t.trim().is_empty())
        .unwrap_or_default();
        Activity {
            kind: text_at(v, "/type"),
            id: text_at(v, "/id"),
            service_url: text_at(v, "/serviceUrl"),
            channel_id: text_at(v, "/channelId"),
            from: account(v, "from"),
            recipient: account(v, "recipient"),
            conversation_id: text_at(v, "/conversation/id"),
            conversation_type: text_at(v, "/conversation/conversationType"),
            is_group: v.pointer("/conversation/isGroup").and_then(Value::as_bool),
            conversation_name: text_at(v, "/conversation/name"),
            tenant_id: tenant,
            text: text_at(v, "/text"),
            entities: v
                .get("entities")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            reply_to_id: text_at(v, "/replyToId"),
            value: v.get("value").filter(|x| !x.is_null()).cloned(),
        }
    }

    /// Whether the conversation is a one-to-one chat with the bot.
    pub fn is_personal(&self) -> bool {
        match self.conversation_type.as_str() {
            "personal" => true,
            "" => self.is_group == Some(false),
            _ => false,
        }
    }

    /// The person's id as the bridge knows them: the Entra object id, else the Teams id.
    pub fn user_key(&self) -> Option<&str> {
        [&self.from.aad_object_id, &self.from.id]
            .into_iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
    }

    /// Whether a bot sent it (another bot, or this one).
    pub fn from_a_bot(&self) -> bool {
        self.from.role.eq_ignore_ascii_case("bot")
            || self.from.id.starts_with("28:")
            || (!self.from.id.is_empty() && self.from.id == self.recipient.id)
    }
}

/// A conversation id as room and thread: `19:x@thread.tacv2;messageid=17` is the channel
/// `19:x@thread.tacv2` and the reply chain under post `17`.
pub fn split_conversation(id: &str) -> (&str, Option<&str>) {
    match id.split_once(THREAD_MARK) {
        Some((room, thread)) if !thread.is_empty() => (room, Some(thread)),
        Some((room, _)) => (room, None),
        None => (id, None),
    }
}

/// The conversation id of a room's thread (the reverse of [`split_conversation`]).
pub fn join_conversation(room: &str, thread: Option<&str>) -> String {
    match thread {
        Some(t) if !t.is_empty() => format!("{room}{THREAD_MARK}{t}"),
        _ => room.to_owned(),
    }
}

/// The text with the bot's own mentions taken out, and whether there was one. A mention is
/// an entity of type `mention` whose `mentioned.id` is the bot's (`recipient.id`); its
/// `text` (`<at>name</at>`) is what stands in the message
/// (<https://learn.microsoft.com/microsoftteams/platform/bots/how-to/conversations/channel-and-group-conversations>,
/// "Retrieve mentions").
pub fn strip_mentions(activity: &Activity) -> (bool, String) {
    let mut text = activity.text.clone();
    let mut mentioned = false;
    for entity in &activity.entities {
        let is_bot_mention = entity.get("type").and_then(Value::as_str) == Some("mention")
            && !activity.recipient.id.is_empty()
            && entity.pointer("/mentioned/id").and_then(Value::as_str)
                == Some(activity.recipient.id.as_str());
        if !is_bot_mention {
            continue;
        }
        mentioned = true;
        if let Some(tag) = entity
            .get("text")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            text = text.replace(tag, " ");
        }
    }
    (mentioned, normalise(&text))
}

/// What Teams clients type, made plain before matching: non-breaking spaces (also as
/// `&nbsp;`) become spaces, typographic quotes straight ones, and the ends are trimmed (with a
/// `:` or `,` left behind a removed mention).
pub fn normalise(text: &str) -> String {
    let text = text
        .replace("&nbsp;", " ")
        .replace(['\u{00A0}', '\u{2007}', '\u{202F}', '\u{2009}'], " ")
        .replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{201C}', '\u{201D}'], "\"");
    text.trim().trim_start_matches([':', ',']).trim().to_owned()
}

/// Why an activity is not a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a `message` activity (conversation updates, typing, invokes, …).
    NotAMessage,
    /// Sent by a bot (another, or this one).
    FromABot,
    /// No sender id, or no conversation.
    NoIdentity,
    /// Nothing to read (an attachment only, or only the mention).
    Empty,
}

/// Someone pressed one of the bridge's answer buttons.
#[derive(Debug, Clone, PartialEq)]
pub struct Press {
    /// Who pressed.
    pub user: ChatUser,
    /// The room (and thread) of the card.
    pub room: Room,
    /// The room's name, where known.
    pub room_name: Option<String>,
    /// The tenant.
    pub org: Option<String>,
    /// What the button answers.
    pub action: ButtonAction,
    /// The card's activity id (`replyToId`), to replace it once answered.
    pub card: Option<String>,
}

/// What a message activity is to the bridge.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A chat message.
    Message(InboundMessage),
    /// A press of an answer button.
    Press(Press),
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

/// What `activity` is on connection `connection`.
pub fn classify(activity: &Activity, connection: &str) -> Result<Incoming, Skip> {
    if activity.kind != "message" {
        return Err(Skip::NotAMessage);
    }
    if activity.from_a_bot() {
        return Err(Skip::FromABot);
    }
    let (Some(user_id), Some((room_id, thread))) = (
        activity.user_key(),
        Some(split_conversation(activity.conversation_id.trim())).filter(|(r, _)| !r.is_empty()),
    ) else {
        return Err(Skip::NoIdentity);
    };
    let kind = if activity.is_personal() {
        RoomKind::Direct
    } else {
        RoomKind::Group
    };
    let user = ChatUser {
        connection: connection.to_owned(),
        id: user_id.to_owned(),
        name: non_empty(&activity.from.name).unwrap_or_else(|| user_id.to_owned()),
    };
    let room = Room {
        connection: connection.to_owned(),
        id: room_id.to_owned(),
        kind,
        thread: thread.map(str::to_owned),
    };
    let room_name = non_empty(&activity.conversation_name).filter(|_| kind == RoomKind::Group);
    let org = non_empty(&activity.tenant_id);
    if let Some(answer) = activity
        .value
        .as_ref()
        .and_then(|v| v.get(ANSWER_KEY))
        .and_then(Value::as_str)
        .and_then(ButtonAction::decode)
    {
        return Ok(Incoming::Press(Press {
            user,
            room,
            room_name,
            org,
            action: answer,
            card: non_empty(&activity.reply_to_id),
        }));
    }
    let (mentioned, text) = strip_mentions(activity);
    if text.is_empty() {
        return Err(Skip::Empty);
    }
    Ok(Incoming::Message(InboundMessage {
        user,
        room,
        text,
        message_id: non_empty(&activity.id),
        mentioned,
        room_name,
        org,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::backends::buttons::InquiryAnswer;

    /// A channel message as Teams sends it (conversation-messages, "Example of a message
    /// activity"; the mention entity as "Retrieve mentions" shows it).
    fn channel_message() -> Value {
        json!({
            "text": "<at>stormbridge</at> st2 run date",
            "textFormat": "plain",
            "type": "message",
            "timestamp": "2024-05-01T10:00:00.000Z",
            "localTimestamp": "2024-05-01T12:00:00.000+02:00",
            "id": "1714557600000",
            "channelId": "msteams",
            "serviceUrl": "https://smba.trafficmanager.net/emea/",
            "from": {"id": "29:1alice", "name": "Alice Example", "aadObjectId": "6b0e5d3c-0000-4000-8000-00000000a11c"},
            "conversation": {"isGroup": true, "conversationType": "channel", "tenantId": "72f988bf-0000-0000-0000-000000000001",
                             "id": "19:ops0@thread.tacv2;messageid=1714557600000", "name": "ops"},
            "recipient": {"id": "28:00000000-0000-0000-0000-0000000000a1", "name": "stormbridge"},
            "entities": [
                {"mentioned": {"id": "28:00000000-0000-0000-0000-0000000000a1", "name": "stormbridge"},
                 "text": "<at>stormbridge</at>", "type": "mention"},
                {"locale": "en-US", "country": "US", "platform": "Web", "type": "clientInfo"}
            ],
            "channelData": {"teamsChannelId": "19:ops0@thread.tacv2", "teamsTeamId": "19:team0@thread.tacv2",
                            "channel": {"id": "19:ops0@thread.tacv2"}, "team": {"id": "19:team0@thread.tacv2"},
                            "tenant": {"id": "72f988bf-0000-0000-0000-000000000001"}},
            "locale": "en-US"
        })
    }

    fn read(v: &Value) -> Result<Incoming, Skip> {
        classify(&Activity::from_value(v), "teams")
    }

    #[test]
    fn a_channel_message_names_the_person_the_channel_and_the_reply_chain() {
        let Ok(Incoming::Message(m)) = read(&channel_message()) else {
            panic!("not a message");
        };
        assert_eq!(m.user.id, "6b0e5d3c-0000-4000-8000-00000000a11c");
        assert_eq!(m.user.name, "Alice Example");
        assert_eq!(m.room.id, "19:ops0@thread.tacv2");
        assert_eq!(m.room.thread.as_deref(), Some("1714557600000"));
        assert_eq!(m.room.kind, RoomKind::Group);
        assert_eq!(m.text, "st2 run date");
        assert!(m.mentioned);
        assert_eq!(m.room_name.as_deref(), Some("ops"));
        assert_eq!(
            m.org.as_deref(),
            Some("72f988bf-0000-0000-0000-000000000001")
        );
        assert_eq!(m.message_id.as_deref(), Some("1714557600000"));
    }

    #[test]
    fn a_personal_chat_is_direct_and_has_no_thread() {
        let mut v = channel_message();
        v["conversation"] =
            json!({"conversationType": "personal", "tenantId": "t1", "id": "a:1dm-alice"});
        v["text"] = json!("!st2 run date\n");
        v["entities"] = json!([]);
        let Ok(Incoming::Message(m)) = read(&v) else {
            panic!("not a message");
        };
        assert_eq!(
            (m.room.id.as_str(), m.room.thread.as_deref()),
            ("a:1dm-alice", None)
        );
        assert_eq!(m.room.kind, RoomKind::Direct);
        assert_eq!(m.text, "!st2 run date");
        assert!(!m.mentioned);
        assert_eq!(m.room_name, None);
        // Older activities only say `isGroup`.
        v["conversation"] = json!({"isGroup": false, "id": "a:1dm-alice"});
        assert!(matches!(read(&v), Ok(Incoming::Message(m)) if m.room.kind == RoomKind::Direct));
    }

    #[test]
    fn only_the_bots_own_mention_is_stripped() {
        let mut v = channel_message();
        v["text"] = json!("<at>Bob</at> <at>stormbridge</at>: st2 run date");
        v["entities"] = json!([
            {"type": "mention", "mentioned": {"id": "29:bob", "name": "Bob"}, "text": "<at>Bob</at>"},
            {"type": "mention", "mentioned": {"id": "28:00000000-0000-0000-0000-0000000000a1"}, "text": "<at>stormbridge</at>"}
        ]);
        let Ok(Incoming::Message(m)) = read(&v) else {
            panic!()
        };
        assert_eq!(m.text, "<at>Bob</at>  : st2 run date");
        v["entities"] = json!([{"type": "mention", "mentioned": {"id": "29:bob"}, "text": "<at>stormbridge</at>"}]);
        let Ok(Incoming::Message(m)) = read(&v) else {
            panic!()
        };
        assert!(!m.mentioned);
        assert!(m.text.contains("<at>stormbridge</at>"));
        v["text"] = json!("\u{201C}st2\u{00A0}run&nbsp;date\u{201D}");
        assert!(matches!(read(&v), Ok(Incoming::Message(m)) if m.text == "\"st2 run date\""));
    }

    #[test]
    fn bots_updates_and_blank_messages_are_skipped() {
        let mut v = channel_message();
        v["from"] = json!({"id": "28:other-bot", "name": "other"});
        assert_eq!(read(&v), Err(Skip::FromABot));
        v["from"] = json!({"id": "29:x", "role": "bot"});
        assert_eq!(read(&v), Err(Skip::FromABot));
        v["from"] = json!({"id": "28:00000000-0000-0000-0000-0000000000a1"});
        assert_eq!(read(&v), Err(Skip::FromABot));
        let mut v = channel_message();
        v["type"] = json!("conversationUpdate");
        assert_eq!(read(&v), Err(Skip::NotAMessage));
        let mut v = channel_message();
        v["text"] = json!("<at>stormbridge</at>");
        assert_eq!(read(&v), Err(Skip::Empty));
        let mut v = channel_message();
        v["from"] = json!({"id": " ", "aadObjectId": 7});
        assert_eq!(read(&v), Err(Skip::NoIdentity));
        let mut v = channel_message();
        v["conversation"] = json!({"id": ";messageid=1"});
        assert_eq!(read(&v), Err(Skip::NoIdentity));
        assert_eq!(Activity::parse(b"[1]"), None);
        assert_eq!(Activity::parse(b"{"), None);
    }

    #[test]
    fn a_submit_with_an_answer_is_a_press_by_the_presser() {
        let answer = InquiryAnswer {
            inquiry_id: "5f0e1d2c3b4a596877665544".into(),
            field: "continue".into(),
            value: json!(true),
        };
        let mut v = channel_message();
        v["text"] = Value::Null;
        v["replyToId"] = json!("1714557611111");
        v["value"] = json!({ ANSWER_KEY: answer.encode() });
        let Ok(Incoming::Press(p)) = read(&v) else {
            panic!("not a press")
        };
        assert_eq!(p.action, ButtonAction::Answer(answer));
        assert_eq!(p.user.id, "6b0e5d3c-0000-4000-8000-00000000a11c");
        assert_eq!(p.card.as_deref(), Some("1714557611111"));
        assert_eq!(p.room.thread.as_deref(), Some("1714557600000"));
        // A submit that is not one of the bridge's answers is a (blank) message.
        v["value"] = json!({"other": 1});
        assert_eq!(read(&v), Err(Skip::Empty));
    }

    #[test]
    fn conversation_ids_split_and_join() {
        assert_eq!(
            split_conversation("19:a@thread.tacv2;messageid=42"),
            ("19:a@thread.tacv2", Some("42"))
        );
        assert_eq!(split_conversation("a:1x"), ("a:1x", None));
        assert_eq!(split_conversation("19:a;messageid="), ("19:a", None));
        assert_eq!(
            join_conversation("19:a@thread.tacv2", Some("42")),
            "19:a@thread.tacv2;messageid=42"
        );
        assert_eq!(join_conversation("a:1x", None), "a:1x");
    }
}
