//! Answer buttons on Webex: Adaptive Cards ("Buttons and Cards",
//! <https://developer.webex.com/docs/api/guides/cards>).
//!
//! Out: an [`OfferButtons`] becomes a message with one attachment of `contentType`
//! `application/vnd.microsoft.card.adaptive` whose `content` is an `AdaptiveCard`: the
//! question as a `TextBlock`, and one `Action.Submit` per answer whose `data` carries the
//! typed answer ([`ButtonAction::encode`]) under [`ANSWER_KEY`]. The message's `markdown`
//! is the text form, which clients that cannot show cards (and notifications) show instead.
//!
//! In: a press makes Webex create an attachment action and deliver an
//! `attachmentActions`/`created` webhook, signed like every delivery, naming only its id.
//! The bridge reads the action (`GET /attachment/actions/{id}`: `personId`, `roomId`,
//! `messageId` and `inputs`, the pressed button's `data`) with the bot's token, so who
//! pressed is Webex's word, not the request's; and the card's message
//! (`GET /messages/{id}`) for the room's kind and thread. The press goes to the dispatcher as
//! [`ButtonPressed`] by the presser, and access control and StackStorm judge it as if the
//! presser had typed the answer (which is all anyone could make a button say through the
//! API's "Create an Attachment Action").
//!
//! Outcome: an accepted answer is posted in the card's thread for everyone, a refused one
//! (another press of spent buttons, access control saying no) goes to the presser alone, in
//! their 1:1 room with the bot (Webex has no message only one member of a room sees).
//!
//! A held command's card (a confirmation or an approval) is decided once, by a press, a
//! typed `!st2confirm`/`!st2approve`/…, or its expiry; its buttons then do nothing. Webex
//! cannot edit a message with attachments ("Edit a Message"), so the card is deleted
//! ("Delete a Message") and the outcome said where it was (in the room itself when the
//! card started the thread). Its message id comes from the answer to its post; it goes to
//! the dispatcher ([`OfferButtons::posted`]), which names it in the outcome of a decision
//! without a press (whose text the dispatcher says in the room itself), and is kept here to know which cards are held commands'. An inquiry's
//! card stays: its thread is where the answers are said.

use std::collections::VecDeque;

use serde_json::{json, Value};

use super::{
    api::Outgoing,
    platform::{Event, Webex},
    wire::{self, DeliveryData, Me, Message},
};
use crate::{
    backends::{
        buttons::{
            ButtonAction, ButtonOutcome, ButtonPressed, OfferButtons, PressOrigin, UseButtonPresses,
        },
        connection::{outbox::Dest, ConnectionError, Effects, Handles},
    },
    domain::message::{ChatUser, Room, RoomKind},
};

/// The key of the answer in a button's `data` (and so in the action's `inputs`).
pub const ANSWER_KEY: &str = "stormbridge_answer";

/// Longest button title, in characters.
const MAX_TITLE: usize = 80;

/// Held commands' cards remembered (the newest): held commands expire within minutes, so
/// an older card is long decided.
const MAX_HELD_CARDS: usize = 512;

/// The connection's interactive state.
#[derive(Default)]
pub struct Interactions {
    presses: Option<actix::Recipient<ButtonPressed>>,
    next_handle: u64,
    /// The message ids of held commands' cards still up, oldest first.
    held_cards: VecDeque<String>,
}

impl Interactions {
    /// A held command's card was posted as `message_id`.
    pub fn card_posted(&mut self, message_id: String) {
        if self.held_cards.len() >= MAX_HELD_CARDS {
            self.held_cards.pop_front();
        }
        self.held_cards.push_back(message_id);
    }

    /// Whether `message_id` is a held command's card still up; it is forgotten.
    fn take_held_card(&mut self, message_id: &str) -> bool {
        let at = self.held_cards.iter().position(|id| id == message_id);
        at.and_then(|at| self.held_cards.remove(at)).is_some()
    }
}

/// A press, as read back from Webex.
pub struct Press {
    /// `GET /attachment/actions/{id}`.
    action: Result<Value, ConnectionError>,
    /// The card's message, where it could be read.
    card: Option<Message>,
    /// The presser's name, where known.
    name: Option<String>,
}

/// What a press says, read from the action and its card.
#[derive(Debug, Clone, PartialEq)]
pub struct PressRead {
    /// Who pressed.
    pub person_id: String,
    /// Where.
    pub room_id: String,
    /// The card's message.
    pub message_id: String,
    /// The answer the button carries.
    pub action: ButtonAction,
    /// The room's kind (a group room when the card could not be read).
    pub kind: RoomKind,
    /// The card's thread: its parent, or the card itself.
    pub thread: Option<String>,
}

/// The Adaptive Card for `offer`, its text cut to `limit` bytes.
pub fn card(offer: &OfferButtons, limit: usize) -> Value {
    let actions: Vec<Value> = offer
        .buttons
        .iter()
        .map(|b| {
            let title: String = b.label.chars().take(MAX_TITLE).collect();
            let style = if b.action.is_affirmative() {
                "positive"
            } else {
                "default"
            };
            json!({"type": "Action.Submit", "title": title, "style": style,
                   "data": {ANSWER_KEY: b.action.encode()}})
        })
        .collect();
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.2",
        "body": [{"type": "TextBlock", "text": wire::truncate(&offer.text, limit), "wrap": true}],
        "actions": actions,
    })
}

/// Reads an attachment action (and its card's message); `None` when it is not a press of
/// one of the bridge's buttons, or names no person or room.
pub fn read_press(action: &Value, card: Option<&Message>) -> Option<PressRead> {
    let text = |key: &str| {
        action
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let answer = action
        .pointer(&format!("/inputs/{ANSWER_KEY}"))
        .and_then(Value::as_str)
        .and_then(ButtonAction::decode)?;
    let person_id = text("personId")?;
    let room_id = text("roomId")?;
    let message_id = text("messageId").unwrap_or_default();
    let card = card.filter(|c| c.id == message_id && !message_id.is_empty());
    let kind = match card.map(|c| c.room_type.as_str()) {
        Some("direct") => RoomKind::Direct,
        _ => RoomKind::Group,
    };
    let thread = card.map(|c| {
        c.parent_id
            .clone()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| c.id.clone())
    });
    Some(PressRead {
        person_id,
        room_id,
        message_id,
        action: answer,
        kind,
        thread,
    })
}

impl Webex {
    /// An `attachmentActions` delivery: the press is read back from Webex in the background.
    pub(super) fn on_press(&mut self, data: DeliveryData, me: &Me, fx: &mut Effects<Self>) {
        if data.id.trim().is_empty() || me.is(&data.person_id) {
            return;
        }
        if self.interactive.presses.is_none() {
            tracing::debug!(connection = %self.name, "a Webex card press before the dispatcher is wired; ignored");
            return;
        }
        if !self.first_sighting(format!("press:{}", data.id)) {
            return;
        }
        let known = self.people.get(&data.person_id).cloned();
        let api = self.api();
        fx.spawn(async move {
            let action = api.action(&data.id).await;
            let (mut card, mut name) = (None, known);
            if let Ok(a) = &action {
                if let Some(id) = a.get("messageId").and_then(Value::as_str) {
                    card = api.message(id).await.ok();
                }
                if name.is_none() {
                    if let Some(person) = a.get("personId").and_then(Value::as_str) {
                        name = api.person(person).await.ok().map(|p| p.shown_name());
                    }
                }
            }
            Event::Pressed(Box::new(Press { action, card, name }))
        });
    }

    /// A press read back: to the dispatcher, as the presser's.
    pub(super) fn pressed(&mut self, press: Press, fx: &mut Effects<Self>) {
        let action = match press.action {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(connection = %self.name, error = %e, "cannot read a Webex card press; it is skipped");
                return;
            }
        };
        let Some(read) = read_press(&action, press.card.as_ref()) else {
            tracing::debug!(connection = %self.name, "a Webex card press that is not an answer button; ignored");
            return;
        };
        if self.me.as_ref().is_some_and(|me| me.is(&read.person_id)) {
            return;
        }
        let Some(presses) = self.interactive.presses.clone() else {
            return;
        };
        fx.activity();
        let name = press.name.unwrap_or_else(|| read.person_id.clone());
        Self::remember(&mut self.people, read.person_id.clone(), name.clone());
        self.interactive.next_handle += 1;
        tracing::debug!(connection = %self.name, user = %read.person_id, action = %read.action.describe(), "Webex answer button pressed");
        let room_name = match read.kind {
            RoomKind::Group => self.room_names.get(&read.room_id).cloned(),
            RoomKind::Direct => None,
        };
        presses.do_send(ButtonPressed {
            user: ChatUser {
                connection: self.name.clone(),
                id: read.person_id,
                name,
            },
            room: Room {
                connection: self.name.clone(),
                id: read.room_id,
                kind: read.kind,
                thread: read.thread,
            },
            room_name,
            org: None,
            action: read.action,
            origin: PressOrigin {
                message_id: Some(read.message_id).filter(|m| !m.is_empty()),
                handle: self.interactive.next_handle,
            },
        });
    }
}

impl Handles<UseButtonPresses> for Webex {
    type Reply = ();

    fn handle(&mut self, msg: UseButtonPresses, _fx: &mut Effects<Self>) {
        self.interactive.presses = Some(msg.0);
    }
}

impl Handles<OfferButtons> for Webex {
    type Reply = ();

    fn handle(&mut self, msg: OfferButtons, fx: &mut Effects<Self>) {
        let (dest, parent_id) = Dest::of(msg.target.clone());
        if self.interactive.presses.is_none() || msg.buttons.is_empty() {
            for item in self.items(dest, parent_id, &msg.fallback) {
                fx.queue(item);
            }
            return;
        }
        let limit = self.settings.message_limit();
        let parent_id = parent_id.filter(|_| matches!(dest, Dest::Room(_)));
        fx.queue(Outgoing {
            dest,
            parent_id,
            markdown: wire::truncate(&msg.fallback, limit).to_owned(),
            card: Some(card(&msg, limit)),
            posted: msg.posted.clone(),
            delete: None,
        });
    }
}

impl Handles<ButtonOutcome> for Webex {
    type Reply = ();

    fn handle(&mut self, msg: ButtonOutcome, fx: &mut Effects<Self>) {
        // No press (handle 0): a held command decided by typing or expired, whose outcome
        // the dispatcher says in the room itself; only its card is left to take down.
        let unpressed = msg.origin.handle == 0;
        let spent_card =
            msg.origin.message_id.clone().filter(|card| {
                msg.accepted && (self.interactive.take_held_card(card) || unpressed)
            });
        if let Some(card) = &spent_card {
            fx.queue(Outgoing::deletion(msg.room.id.clone(), card.clone()));
        }
        if unpressed {
            return;
        }
        let (dest, parent_id) = if msg.accepted || msg.room.kind == RoomKind::Direct {
            // A thread the deleted card started is said in the room itself.
            let thread = msg
                .room
                .thread
                .clone()
                .filter(|t| Some(t) != spent_card.as_ref());
            (Dest::Room(msg.room.id.clone()), thread)
        } else {
            (Dest::User(msg.user.id.clone()), None)
        };
        for item in self.items(dest, parent_id, &msg.text) {
            fx.queue(item);
        }
    }
}

crate::platform_messages!(Webex: UseButtonPresses, OfferButtons, ButtonOutcome);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::buttons::Button;
    use crate::backends::buttons::{ButtonAction, InquiryAnswer};
    use crate::domain::message::Target;

    fn answer(value: Value) -> InquiryAnswer {
        InquiryAnswer {
            inquiry_id: "5f0e1d2c3b4a596877665544".into(),
            field: "continue".into(),
            value,
        }
    }

    #[test]
    fn an_offer_is_an_adaptive_card_of_submit_buttons() {
        let offer = OfferButtons {
            target: Target::Room {
                id: "R".into(),
                kind: RoomKind::Group,
                thread: None,
            },
            text: "Continue the deploy?".into(),
            fallback: "Continue the deploy? Answer with `!st2 answer …`".into(),
            posted: None,
            buttons: vec![
                Button {
                    label: "yes".into(),
                    action: ButtonAction::Answer(answer(json!(true))),
                },
                Button {
                    label: "no".into(),
                    action: ButtonAction::Answer(answer(json!(false))),
                },
            ],
        };
        let c = card(&offer, 7439);
        assert_eq!(c["type"], "AdaptiveCard");
        assert_eq!(c["body"][0]["text"], "Continue the deploy?");
        let actions = c["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0]["type"], "Action.Submit");
        assert_eq!(actions[0]["title"], "yes");
        assert_eq!(actions[0]["style"], "positive");
        assert_eq!(actions[1]["style"], "default");
        let data = actions[1]["data"][ANSWER_KEY].as_str().unwrap();
        assert_eq!(InquiryAnswer::decode(data), Some(answer(json!(false))));
        assert_eq!(card(&offer, 8)["body"][0]["text"], "Continue");
    }

    fn action(inputs: Value) -> Value {
        // As "Get Attachment Action Details" documents it.
        json!({"id": "A1", "type": "submit", "messageId": "CARD", "personId": "ALICE",
               "roomId": "R1", "inputs": inputs, "created": "2024-01-01T00:00:00.000Z"})
    }

    #[test]
    fn a_press_reads_who_where_and_what() {
        let encoded = answer(json!(true)).encode();
        let card_msg = Message::parse(&json!({"id": "CARD", "roomId": "R1", "roomType": "group",
            "personId": "BOT", "text": "Continue?"}))
        .unwrap();
        let read = read_press(&action(json!({ANSWER_KEY: encoded})), Some(&card_msg)).unwrap();
        assert_eq!(read.person_id, "ALICE");
        assert_eq!(read.room_id, "R1");
        assert_eq!(read.action, ButtonAction::Answer(answer(json!(true))));
        assert_eq!(read.kind, RoomKind::Group);
        assert_eq!(read.thread.as_deref(), Some("CARD"));
        // A card in a thread answers in that thread; in a 1:1 room it is direct.
        let threaded = Message::parse(&json!({"id": "CARD", "roomId": "R1", "roomType": "direct",
            "parentId": "ROOT"}))
        .unwrap();
        let read = read_press(&action(json!({ANSWER_KEY: encoded})), Some(&threaded)).unwrap();
        assert_eq!(read.thread.as_deref(), Some("ROOT"));
        assert_eq!(read.kind, RoomKind::Direct);
        // Without the card: a group room, no thread.
        let read = read_press(&action(json!({ANSWER_KEY: encoded})), None).unwrap();
        assert_eq!((read.kind, read.thread), (RoomKind::Group, None));
        // Not one of the bridge's buttons, or no presser.
        assert_eq!(read_press(&action(json!({"Name": "x"})), None), None);
        assert_eq!(
            read_press(&action(json!({ANSWER_KEY: "approve"})), None),
            None
        );
        let mut anonymous = action(json!({ANSWER_KEY: encoded}));
        anonymous["personId"] = json!("");
        assert_eq!(read_press(&anonymous, None), None);
    }
}
