//! Chat platforms, one module each, all shaped the same way: a connection actor that turns
//! platform events into [`Inbound`] messages for the dispatcher and handles [`Deliver`]
//! (both in `crate::actors::messages`).

pub mod buttons;
pub mod connection;
pub mod console;
pub mod defaults;
pub mod discord;
pub mod hex;
pub mod irc;
pub mod matrix;
pub mod mattermost;
pub mod mention;
pub mod registry;
pub mod rest;
pub mod rocketchat;
pub mod slack;
pub mod state_file;
pub mod teams;
pub mod webex;
pub mod webhook;
pub mod xmpp;

pub use crate::actors::messages::{Deliver, Inbound};
