//! The contract suite (issue 13, point 5): one set of cases every chat platform must pass,
//! against its fake or its real server.
//!
//! - `harness.rs`: the [`harness::Contract`] trait a platform adapter implements (act as a
//!   user or another bot, read what the bot posted and where, take the server away, trip
//!   the rate limit) and the helpers the cases share.
//! - `cases.rs`: the cases, written once against the trait, and the runner that reports
//!   each case as passed, skipped (with the adapter's reason) or failed.
//! - `relay.rs`: a TCP relay that makes a real server unavailable to the bridge.
//! - one file per platform: its adapter and its test, which starts the server (or fake)
//!   and one bridge once and runs every case on them in turn.

mod cases;
mod harness;
pub(crate) mod relay;

mod console;
mod discord;
mod irc;
mod matrix;
mod mattermost;
mod rocketchat;
mod slack;
mod teams;
mod webex;
mod xmpp;
