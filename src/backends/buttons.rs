//! Wiring a chat connection that shows buttons to the dispatcher.
//!
//! The button messages themselves (offers, presses, outcomes, what a button does) are
//! messages between actors and live in [`crate::actors::messages::buttons`]; they are
//! re-exported here so a platform folder names them from `backends::buttons` like the rest
//! of its kit.

use actix::prelude::*;

pub use crate::actors::messages::buttons::{
    Button, ButtonAction, ButtonOutcome, ButtonPressed, HeldDecision, InquiryAnswer, OfferButtons,
    OfferPosted, OfferReceipt, PressOrigin, RegisterButtons, UseButtonPresses,
};

/// Wires a connection that shows buttons to the dispatcher, both ways.
pub fn connect<A>(
    name: &str,
    connection: &Addr<A>,
    presses: Recipient<ButtonPressed>,
    register: Recipient<RegisterButtons>,
) where
    A: Actor<Context = Context<A>>
        + Handler<OfferButtons>
        + Handler<ButtonOutcome>
        + Handler<UseButtonPresses>,
{
    connection.do_send(UseButtonPresses(presses));
    register.do_send(RegisterButtons {
        name: name.to_owned(),
        offers: connection.clone().recipient(),
        outcomes: connection.clone().recipient(),
    });
}
