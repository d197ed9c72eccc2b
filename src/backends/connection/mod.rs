//! The connection skeleton every chat platform plugs into.
//!
//! - [`platform`]: the contract — a [`Platform`] is the platform's protocol as a state
//!   machine (connect, frames in, effects out, render and send one item), free of actix.
//! - [`actor`]: the one [`Connection`] actor that runs any platform: reconnect with backoff,
//!   handshake deadline, keepalive and silence, the outbound queue and pacing, status.
//! - [`outbox`] and [`pacing`]: the queue and its pacing (token buckets, sliding windows),
//!   tested without actix.
//! - [`websocket`]: the websocket transport the event-pushing platforms share.
//! - [`Gate`] (from [`crate::lease`]): whether this process may run the connection now (a
//!   lease, when several bridge processes share the work).
//! - [`handoff`]: what the processes taking turns at a connection pass on (where the link
//!   stood, which messages ran).
//! - [`seen`]: the ids of the chat messages handled lately, so a redelivered one runs once.
//! - [`owed`]: result parts that may be in chat already (sent without an answer, or owed
//!   again after another process), for platforms that look before posting them again.
//! - [`position`]: where the links stood in time, for platforms that are asked what was
//!   posted since then.
//! - [`confirming`]: messages written on a stream and waiting for the server's answer to a
//!   ping after them, so one written into a dying link is sent again, not lost.
//! - [`error`]: typed connection errors.
//!
//! `docs/adding-a-platform.md` shows how a platform folder fills the contract in.

pub mod actor;
pub mod confirming;
pub mod error;
pub mod handoff;
pub mod outbox;
pub mod owed;
pub mod pacing;
pub mod platform;
pub mod position;
pub mod seen;
pub mod tcp;
pub mod websocket;

pub use crate::lease::Gate;
pub use actor::{Connection, Wiring};
pub use error::ConnectionError;
pub use handoff::{Handoff, HandoffError};
pub use outbox::{DestinationPace, Pace, QueuePolicy};
pub use pacing::Window;
pub use platform::{Effects, End, Handles, Link, Platform, Sending};
pub use seen::{PostedParts, Seen};
