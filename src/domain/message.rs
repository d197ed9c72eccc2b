//! Typed chat identity and messages shared by every backend and the dispatcher.
//!
//! Identity is carried as types end to end, never as a string that is parsed back later:
//! err-stackstorm's `str(identifier)` → `build_identifier` round trip is what broke its DMs.

use serde::{Deserialize, Serialize};

/// Whether a conversation is one-to-one with the bot or a shared room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// A direct (one-to-one) conversation with the bot.
    Direct,
    /// A channel, room or group chat.
    Group,
}

impl RoomKind {
    /// `direct` or `group`, the words access rules and messages use.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Direct => "direct",
            RoomKind::Group => "group",
        }
    }
}

/// A person on one chat connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatUser {
    /// Name of the configured `[[chat]]` connection the user was seen on.
    pub connection: String,
    /// The platform's stable account id (Slack `U…`, bare JID, …). This is what st2 sees.
    pub id: String,
    /// Display name, for messages only; never used to identify anyone.
    pub name: String,
}

/// Where a message was said, and where replies go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Room {
    /// Name of the configured `[[chat]]` connection.
    pub connection: String,
    /// The platform's room/channel id; for a direct conversation, the conversation id.
    pub id: String,
    /// Direct or group.
    pub kind: RoomKind,
    /// Thread the message belongs to, on platforms with threads.
    pub thread: Option<String>,
}

/// A message a chat connection received and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Who said it.
    pub user: ChatUser,
    /// Where it was said.
    pub room: Room,
    /// The text, with any leading mention of the bot already removed (see `mentioned`).
    pub text: String,
    /// The platform's id for this message, when it has one (used for threading replies).
    pub message_id: Option<String>,
    /// True when the message began by addressing the bot (an @-mention).
    pub mentioned: bool,
    /// The room's display name, where the platform has one.
    pub room_name: Option<String>,
    /// The team / workspace / organisation the room belongs to, where the platform has one.
    pub org: Option<String>,
}

/// Where an outbound message goes on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A room (group or direct), optionally inside a thread.
    Room {
        /// Room id on the platform.
        id: String,
        /// Direct or group.
        kind: RoomKind,
        /// Thread to reply in.
        thread: Option<String>,
    },
    /// A private message to one user (StackStorm's `whisper`).
    User {
        /// The user's platform id.
        id: String,
    },
}

impl Target {
    /// The reply target for a room a message came from, keeping its thread.
    pub fn reply_to(room: &Room) -> Self {
        Target::Room {
            id: room.id.clone(),
            kind: room.kind,
            thread: room.thread.clone(),
        }
    }
}
