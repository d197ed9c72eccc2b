//! Answer buttons on Teams: an Adaptive Card with one `Action.Submit` per answer.
//!
//! Out: an [`OfferButtons`] becomes a card whose actions carry the typed answer
//! ([`ButtonAction::encode`]) in their `data` under [`ANSWER_KEY`]
//! (<https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-actions#adaptive-cards-actions>).
//!
//! In: pressing one makes Teams send the bot a `message` activity whose `value` is that
//! `data` and whose `replyToId` is the card's activity, from the person who pressed
//! (<https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-actions#actionsubmit>).
//! It comes through the same signed route as every activity, so it is checked like one; the
//! presser is who Teams says pressed, and access control and StackStorm judge them. A press
//! is acknowledged at once (the route answers 200); the outcome follows: accepted → the card
//! is replaced (`PUT …/activities/{id}`, Update Activity) by one that says who answered
//! what, without buttons; refused → the presser is told in their one-to-one chat with the
//! bot (Teams has no message only one person of a channel sees).
//!
//! A held command's card can also be spent without a press (a typed `!st2confirm`, an
//! expiry): its activity id, from the Bot Connector's answer to the post (a
//! ResourceResponse `{"id"}`), goes back to the dispatcher ([`OfferButtons::posted`]),
//! which later sends an accepted outcome naming it, and the card is replaced the same way.

use actix::Recipient;

use super::{
    platform::{Dest, Outgoing, Teams},
    render::{self, Outbound},
    wire::Press,
};
use crate::backends::{
    buttons::{ButtonOutcome, ButtonPressed, OfferButtons, PressOrigin, UseButtonPresses},
    connection::{Effects, Handles},
    webhook::WebhookRequest,
};

/// The connection's interactive state.
#[derive(Default)]
pub struct Interactions {
    presses: Option<Recipient<ButtonPressed>>,
    next_handle: u64,
}

fn plain(text: &str) -> Outbound<'_> {
    Outbound {
        text,
        extra: None,
        layout: None,
    }
}

impl Teams {
    /// A checked press: handed to the dispatcher as the presser's answer.
    pub(super) fn press(&mut self, press: Press) {
        let Some(presses) = self.interactive.presses.clone() else {
            tracing::warn!(connection = %self.name, "an answer button was pressed before the bridge was ready; ignored");
            return;
        };
        self.interactive.next_handle += 1;
        tracing::debug!(connection = %self.name, user = ?press.user.id, action = %press.action.describe(), "Teams answer button pressed");
        presses.do_send(ButtonPressed {
            user: press.user,
            room: press.room,
            room_name: press.room_name,
            org: press.org,
            action: press.action,
            origin: PressOrigin {
                message_id: press.card,
                handle: self.interactive.next_handle,
            },
        });
    }

    /// What an offer is sent as: the card, or the typed form where there can be none
    /// (no press recipient yet, or a card too big for one activity).
    fn offer_items(&self, offer: &OfferButtons) -> Vec<Outgoing> {
        let dest = Teams::dest(offer.target.clone());
        let card = self
            .interactive
            .presses
            .as_ref()
            .and_then(|_| render::button_card(&offer.text, &offer.buttons));
        match card {
            // Where the card went goes back to the dispatcher, which updates it when its
            // buttons are spent by a typed decision or an expiry.
            Some(activity) => vec![Outgoing {
                dest,
                activity,
                posted: offer.posted.clone(),
            }],
            None => self.items(dest, plain(&offer.fallback)),
        }
    }

    /// What an outcome is shown as. A press answered (or the dispatcher's handle 0: an
    /// offer spent by a typed decision or an expiry, whose card it names) replaces the card
    /// with the outcome, without actions.
    fn outcome_items(&self, outcome: &ButtonOutcome) -> Vec<Outgoing> {
        if !outcome.accepted {
            // Only the presser needs to know why not.
            return self.items(Dest::User(outcome.user.id.clone()), plain(&outcome.text));
        }
        match &outcome.origin.message_id {
            Some(card) => vec![Outgoing {
                dest: Dest::Update {
                    room: outcome.room.id.clone(),
                    thread: outcome.room.thread.clone(),
                    activity_id: card.clone(),
                },
                activity: render::answered_card(&outcome.text),
                posted: None,
            }],
            None => {
                let dest = Dest::Room {
                    id: outcome.room.id.clone(),
                    thread: outcome.room.thread.clone(),
                };
                self.items(dest, plain(&outcome.text))
            }
        }
    }
}

impl Handles<UseButtonPresses> for Teams {
    type Reply = ();

    fn handle(&mut self, msg: UseButtonPresses, _fx: &mut Effects<Self>) {
        self.interactive.presses = Some(msg.0);
    }
}

impl Handles<OfferButtons> for Teams {
    type Reply = ();

    fn handle(&mut self, msg: OfferButtons, fx: &mut Effects<Self>) {
        for item in self.offer_items(&msg) {
            fx.queue(item);
        }
    }
}

impl Handles<ButtonOutcome> for Teams {
    type Reply = ();

    fn handle(&mut self, msg: ButtonOutcome, fx: &mut Effects<Self>) {
        for item in self.outcome_items(&msg) {
            fx.queue(item);
        }
    }
}

crate::platform_messages!(Teams: UseButtonPresses, OfferButtons, ButtonOutcome, WebhookRequest);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        backends::{
            buttons::{Button, ButtonAction, InquiryAnswer},
            teams::{config::TeamsSettings, wire::ANSWER_KEY},
        },
        domain::message::{ChatUser, Room, RoomKind, Target},
    };

    fn teams() -> Teams {
        let s: TeamsSettings =
            serde_json::from_value(json!({"app_id": "a", "tenant_id": "t", "app_password": "p"}))
                .unwrap();
        Teams::new("teams".into(), s).unwrap()
    }

    fn answer() -> InquiryAnswer {
        InquiryAnswer {
            inquiry_id: "i1".into(),
            field: "continue".into(),
            value: json!(true),
        }
    }

    fn offer() -> OfferButtons {
        OfferButtons {
            target: Target::Room {
                id: "19:ops@thread.tacv2".into(),
                kind: RoomKind::Group,
                thread: Some("17".into()),
            },
            text: "Continue?".into(),
            fallback: "Continue? Answer with !st2answer i1 yes".into(),
            posted: None,
            buttons: vec![Button {
                label: "Yes".into(),
                action: ButtonAction::Answer(answer()),
            }],
        }
    }

    fn outcome(accepted: bool) -> ButtonOutcome {
        ButtonOutcome {
            user: ChatUser {
                connection: "teams".into(),
                id: "aad-alice".into(),
                name: "Alice".into(),
            },
            room: Room {
                connection: "teams".into(),
                id: "19:ops@thread.tacv2".into(),
                kind: RoomKind::Group,
                thread: Some("17".into()),
            },
            origin: PressOrigin {
                message_id: Some("card-1".into()),
                handle: 1,
            },
            accepted,
            text: "Alice answered continue=true".into(),
        }
    }

    #[actix_rt::test]
    async fn offers_are_cards_once_presses_have_somewhere_to_go() {
        let mut p = teams();
        let items = p.offer_items(&offer());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].activity["text"], json!(offer().fallback));
        let sink = actix::Actor::start(Sink).recipient();
        Handles::<UseButtonPresses>::handle(
            &mut p,
            UseButtonPresses(sink),
            &mut Effects::default(),
        );
        let items = p.offer_items(&offer());
        let action = &items[0].activity["attachments"][0]["content"]["actions"][0];
        assert_eq!(action["data"][ANSWER_KEY], json!(answer().encode()));
        assert_eq!(
            items[0].dest,
            Dest::Room {
                id: "19:ops@thread.tacv2".into(),
                thread: Some("17".into())
            }
        );
    }

    #[test]
    fn an_accepted_answer_replaces_the_card_and_a_refusal_goes_to_the_presser() {
        let p = teams();
        let items = p.outcome_items(&outcome(true));
        assert_eq!(
            items[0].dest,
            Dest::Update {
                room: "19:ops@thread.tacv2".into(),
                thread: Some("17".into()),
                activity_id: "card-1".into()
            }
        );
        assert!(render::readable_text(&items[0].activity).contains("Alice answered"));
        assert!(items[0].activity["attachments"][0]["content"]
            .get("actions")
            .is_none());
        let items = p.outcome_items(&outcome(false));
        assert_eq!(items[0].dest, Dest::User("aad-alice".into()));
    }

    struct Sink;
    impl actix::Actor for Sink {
        type Context = actix::Context<Self>;
    }
    impl actix::Handler<ButtonPressed> for Sink {
        type Result = ();
        fn handle(&mut self, _: ButtonPressed, _: &mut Self::Context) {}
    }
}
