//! The messages between the dispatcher (and the result tracker) and the chat connections:
//! a connection sends [`Inbound`] for each chat message it receives and handles [`Deliver`]
//! for each message to post. They live with the actors, so the actors need no platform code
//! and every platform depends on the same two types.

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
}
