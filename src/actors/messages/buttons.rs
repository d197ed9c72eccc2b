//! Buttons, for chat platforms that show them (Slack, Mattermost, Discord, Teams, Webex):
//! answers to StackStorm inquiries, and decisions on commands held for a confirmation or
//! an approval ([`crate::confirm`]).
//!
//! The dispatcher offers buttons with [`OfferButtons`] to the connections that registered
//! for them ([`RegisterButtons`], sent at start-up by `backends::buttons::connect`, which
//! also gives the connection [`UseButtonPresses`]); every other connection
//! only ever gets text, which always says how to answer by typing. A press comes back as
//! [`ButtonPressed`], carrying the person who pressed — not the person who asked — so
//! access control and StackStorm judge the presser. The dispatcher reports the outcome
//! with [`ButtonOutcome`], and the connection shows it the platform's way (the buttons
//! replaced by who answered what, or a note only the presser sees).
//!
//! Everything is typed: a button carries a [`ButtonAction`] — the inquiry id, the field and
//! the JSON value it answers with, or the held command's code and the decision — and each
//! platform stores [`ButtonAction::encode`]'s compact text in its own button payload.
//!
//! These are messages between the dispatcher and the connections, so they live with the
//! actors: the dispatcher needs no platform code, and `backends::buttons` re-exports them
//! for the platforms.

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::message::{ChatUser, Room, Target};

/// What a button does when pressed: answer one field of one inquiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InquiryAnswer {
    /// The inquiry id.
    #[serde(rename = "i")]
    pub inquiry_id: String,
    /// The field answered.
    #[serde(rename = "f")]
    pub field: String,
    /// The value sent for it.
    #[serde(rename = "v")]
    pub value: Value,
}

impl InquiryAnswer {
    /// The compact JSON a platform stores in its button (Slack's `value`, Mattermost's
    /// `context`): short keys, because Slack allows 2000 characters and Discord 100.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads [`InquiryAnswer::encode`]'s text; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// `field=value`, as it would be typed.
    pub fn as_typed(&self) -> String {
        let value = crate::inquiry::schema::display_value(&self.value);
        format!(
            "{}={}",
            self.field,
            crate::inquiry::answer::quote_if_needed(&value)
        )
    }
}

/// What a decision button does: decide on the command held under a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDecision {
    /// The held command's code.
    #[serde(rename = "c")]
    pub code: String,
    /// The decision.
    #[serde(rename = "d")]
    pub verb: crate::confirm::Verb,
}

/// What pressing a button does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ButtonAction {
    /// Answer one field of an inquiry.
    Answer(InquiryAnswer),
    /// Confirm, abort, approve or deny a held command.
    Decide(HeldDecision),
}

impl ButtonAction {
    /// The compact JSON a platform stores in its button (Slack's `value`, Mattermost's
    /// `context`, Discord's `custom_id`): short keys, because Discord allows 100 characters.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads [`ButtonAction::encode`]'s text; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// Whether the button says yes (shown as the primary button): a `true` answer, a
    /// confirmation or an approval. No, abort and deny are shown as the danger button.
    pub fn is_affirmative(&self) -> bool {
        match self {
            ButtonAction::Answer(a) => a.value == Value::Bool(true),
            ButtonAction::Decide(d) => d.verb.runs(),
        }
    }

    /// For logs: `inquiry <id>` or `approve <code>`.
    pub fn describe(&self) -> String {
        match self {
            ButtonAction::Answer(a) => format!("inquiry {}", a.inquiry_id),
            ButtonAction::Decide(d) => format!("{} {}", d.verb.as_str(), d.code),
        }
    }
}

/// One button.
#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    /// The label.
    pub label: String,
    /// What pressing it does.
    pub action: ButtonAction,
}

/// A message with buttons. A connection that cannot show them (or not in its current
/// mode) sends `fallback` as plain text instead.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct OfferButtons {
    /// Room or user.
    pub target: Target,
    /// The text above the buttons.
    pub text: String,
    /// The whole message as text, for where buttons cannot be shown.
    pub fallback: String,
    /// The buttons, in order.
    pub buttons: Vec<Button>,
    /// Whom to tell where the offer was posted, for offers whose buttons may be spent by
    /// something other than a press (a typed decision, an expiry): the dispatcher then
    /// updates that message so the spent buttons go. A connection that cannot tell says
    /// nothing, and its buttons stay until pressed.
    pub posted: Option<OfferReceipt>,
}

/// Where a connection reports the message an offer became.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferReceipt {
    /// The dispatcher's name for the offer (a held command's code).
    pub key: String,
    /// Where the report goes.
    pub to: Recipient<OfferPosted>,
}

impl OfferReceipt {
    /// Reports that the offer became the platform's message `message_id`.
    pub fn posted(&self, message_id: String) {
        self.to.do_send(OfferPosted {
            key: self.key.clone(),
            message_id,
        });
    }
}

/// An offer was posted as the platform's message `message_id` (Slack's `ts`).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct OfferPosted {
    /// [`OfferReceipt::key`].
    pub key: String,
    /// The platform's id of the message with the buttons.
    pub message_id: String,
}

/// Where a press came from, so the connection can answer it in place: the platform's id of
/// the message that carried the buttons, and the connection's own handle for the press
/// (Slack's `response_url`, Discord's interaction token, Mattermost's waiting request),
/// which it keeps to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PressOrigin {
    /// The message with the buttons.
    pub message_id: Option<String>,
    /// The connection's key for this press.
    pub handle: u64,
}

/// Someone pressed a button.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct ButtonPressed {
    /// Who pressed it.
    pub user: ChatUser,
    /// Where: the room (and thread) of the message with the buttons.
    pub room: Room,
    /// The room's name, where known.
    pub room_name: Option<String>,
    /// The team / workspace, where the platform has one.
    pub org: Option<String>,
    /// What the button does.
    pub action: ButtonAction,
    /// How to answer the press.
    pub origin: PressOrigin,
}

/// How a press went, for the connection to show.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct ButtonOutcome {
    /// Who pressed.
    pub user: ChatUser,
    /// Where.
    pub room: Room,
    /// The press this answers.
    pub origin: PressOrigin,
    /// True when StackStorm accepted the answer: everyone should see it, and the buttons
    /// are spent. False: only the presser needs to know why not.
    pub accepted: bool,
    /// What to say.
    pub text: String,
}

/// Tells the dispatcher that connection `name` shows buttons.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterButtons {
    /// Connection name.
    pub name: String,
    /// Where offers go.
    pub offers: Recipient<OfferButtons>,
    /// Where outcomes go.
    pub outcomes: Recipient<ButtonOutcome>,
}

/// Gives a connection the address presses go to.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UseButtonPresses(pub Recipient<ButtonPressed>);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_round_trip_and_strangers_do_not_decode() {
        let a = InquiryAnswer {
            inquiry_id: "5f0e1d2c3b4a596877665544".into(),
            field: "continue".into(),
            value: json!(true),
        };
        let text = a.encode();
        assert!(text.len() < 100, "{text}");
        assert_eq!(InquiryAnswer::decode(&text), Some(a.clone()));
        assert_eq!(a.as_typed(), "continue=true");
        for stranger in ["", "{}", "approve", "{\"i\": 1}"] {
            assert_eq!(InquiryAnswer::decode(stranger), None, "{stranger}");
            assert_eq!(ButtonAction::decode(stranger), None, "{stranger}");
        }
        let action = ButtonAction::Answer(a);
        assert_eq!(ButtonAction::decode(&action.encode()), Some(action));
    }

    #[test]
    fn decisions_round_trip_short_enough_for_discord() {
        for verb in [
            crate::confirm::Verb::Confirm,
            crate::confirm::Verb::Abort,
            crate::confirm::Verb::Approve,
            crate::confirm::Verb::Deny,
        ] {
            let action = ButtonAction::Decide(HeldDecision {
                code: "abcde".into(),
                verb,
            });
            let text = action.encode();
            assert!(text.len() < 100, "{text}");
            assert_eq!(ButtonAction::decode(&text), Some(action.clone()));
            assert_eq!(action.is_affirmative(), verb.runs());
        }
    }
}
