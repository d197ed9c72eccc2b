//! The messages between the dispatcher (and the result tracker) and the chat connections:
//! a connection sends [`Inbound`] for each chat message it receives and handles [`Deliver`]
//! for each message to post. They live with the actors, so the actors need no platform code
//! and every platform depends on the same two types. [`buttons`] holds the messages of
//! connections that show buttons (offers, presses, outcomes).

pub mod buttons;

use actix::prelude::*;
use serde_json::Value;

use crate::domain::{
    announcement::Layout,
    message::{InboundMessage, Target},
};

/// Registers a chat connection's delivery address with the dispatcher and the result
/// tracker.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterConnection {
    /// Connection name.
    pub name: String,
    /// Where its messages go.
    pub recipient: Recipient<Deliver>,
    /// How its platform writes a mention (the tracker mentions who ran a command).
    pub mention: crate::domain::mention::MentionFn,
}

/// A normalised chat message for the dispatcher.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Inbound(pub InboundMessage);

/// A message for a connection to send. The connection splits it to its platform's limit.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct Deliver {
    /// Room or user.
    pub target: Target,
    /// Plain text.
    pub text: String,
    /// Platform formatting hints from StackStorm (`extra`), for platforms that use them.
    pub extra: Option<Value>,
    /// The platform id of the message this answers (the command), when known: lets a platform
    /// open a thread under it (Slack's `extra.slack.thread_response`).
    pub reply_to: Option<String>,
    /// For a message StackStorm composed (a result, an announcement): its `{~}` layout, with
    /// any mention in the pretext, for platforms that show it as hubot did (Slack's coloured
    /// attachment). `text` is the same message as plain text. `None` for the bridge's own
    /// replies.
    pub layout: Option<Layout>,
    /// Whom to tell once the platform has the whole message (a command's result, which the
    /// store keeps owing until then, so one still queued when the bridge stops is posted by
    /// the next start).
    pub receipt: Option<Receipt>,
}

/// Asks a connection to say when a [`Deliver`] has left the bridge.
#[derive(Clone)]
pub struct Receipt {
    /// What the sender calls the message (a command's request id).
    pub id: String,
    /// Told [`Posted`] when the last part of the message was accepted by the platform (or
    /// refused by it for good: sending it again would not help either); `None` when nobody
    /// records it (a store that keeps nothing), the receipt then only keying and
    /// confirming the parts.
    pub to: Option<Recipient<Posted>>,
    /// Set when the result was owed by an earlier process (a holder that died, this bridge
    /// before a restart), which may have posted it without recording that: the moment its
    /// command started. A platform without idempotent posting, but whose history the bot can
    /// read, looks there from that moment on for a part carrying [`Receipt::part_key`]
    /// before posting it again.
    pub inherited: Option<chrono::DateTime<chrono::Utc>>,
}

impl Receipt {
    /// Says the message has left.
    pub fn posted(self) {
        if let Some(to) = self.to {
            to.do_send(Posted(self.id));
        }
    }

    /// A key for part `part` of this message that every bridge process derives alike (24 hex
    /// characters, from the message's id): platforms that post idempotently by a client-chosen
    /// key (Discord's nonce, Matrix's transaction id) then give a holder that took a
    /// connection over, and posts a result its predecessor posted but had not recorded as
    /// posted, the earlier message back instead of a second one.
    pub fn part_key(&self, part: usize) -> String {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("stormbridge-result:{}:{part}", self.id).as_bytes(),
        );
        digest.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Receipt").field(&self.id).finish()
    }
}

impl PartialEq for Receipt {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// What platform tests need of these messages.
#[cfg(test)]
pub(crate) mod test_support {
    use actix::Actor as _;

    use super::{Deliver, Posted, Receipt};
    use crate::domain::message::{RoomKind, Target};

    /// Takes [`Posted`] and does nothing with it.
    struct Sink;

    impl actix::Actor for Sink {
        type Context = actix::Context<Self>;
    }

    impl actix::Handler<Posted> for Sink {
        type Result = ();
        fn handle(&mut self, _: Posted, _: &mut Self::Context) {}
    }

    /// A message of `text` for room `room`, owed to no one.
    pub(crate) fn room_message(room: &str, text: &str) -> Deliver {
        Deliver {
            target: Target::Room {
                id: room.into(),
                kind: RoomKind::Group,
                thread: None,
            },
            text: text.into(),
            extra: None,
            reply_to: None,
            layout: None,
            receipt: None,
        }
    }

    /// A result of `text` for room `room`, owed under `id`, as the result tracker hands it
    /// over (needs an actix system).
    pub(crate) fn owed_result(id: &str, room: &str, text: &str) -> Deliver {
        Deliver {
            receipt: Some(Receipt {
                id: id.into(),
                to: Some(Sink.start().recipient()),
                inherited: None,
            }),
            ..room_message(room, text)
        }
    }
}

/// A message sent with a [`Receipt`] has left the bridge; the receipt's id.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct Posted(pub String);

/// The bridge is stopping ([`crate::app::RunningApp::stop`]): the receiver reads nothing more
/// from StackStorm and posts nothing more, as a stopped process would not. The actor itself
/// ends with the actix system.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Halt;
