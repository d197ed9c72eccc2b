//! The Matrix backend (`backend = "matrix"`): the client-server API v3 over HTTPS, tested
//! against a real Synapse.
//!
//! Login: with `user` + `password` the bot logs in (`m.login.password`) and keeps its
//! device id in `state_file`, so restarts reuse one device; the token lives in memory and
//! a refused token means a new login. With `access_token` it asks `whoami` who it is.
//!
//! Events: a `/sync` long poll with a filter (room messages, memberships, names; no
//! presence, typing or receipts). A batch's `next_batch` position is written to
//! `state_file` (off the actor thread, fsynced) before the batch's messages go to the
//! dispatcher; a restart carries on from there, so nothing said while the bridge was down is
//! skipped (though commands older than `max_command_age_secs` are not run) and nothing runs
//! twice — a crash between the write and the dispatch loses that batch's commands instead.
//! Without a state file, or on an account's first start, the bot starts at "now": its first sync is
//! read for the position and room state only. Every connection starts with a
//! `full_state` sync to learn room names.
//!
//! Rooms: `rooms` (ids or aliases) are joined at every connection and rejoined when the bot
//! is kicked; invitations are accepted per `auto_join` (direct chats by default). A room
//! is a direct chat when it is in the account's `m.direct` data; the bot adds the direct
//! chats it accepts or opens there (as clients do), so that holds across restarts. When
//! `rooms` is set, other group rooms are not listened to (unless `auto_join = "all"`).
//!
//! Identity: the user is the sender's user id (`@alice:example.org`), the room the room id
//! (`!abc:example.org`); a message in a thread carries the thread's root event id. A
//! leading `localpart:`, display name, `@localpart` or full user id sets `mentioned` and is
//! stripped, as does an `m.mentions` naming the bot. Not commands: the bot's own messages,
//! `m.notice` (the Matrix convention for bots), users in `ignore_users`, edits
//! (`m.replace`), and messages older than `max_command_age_secs`.
//!
//! Output: `m.notice` (or `m.text`) with the text as `body` and its markdown rendered as
//! HTML in `formatted_body`; in a thread, an `m.thread` relation with a reply fallback.
//! Messages are split at `max_message_bytes`, queued in a bounded queue (oldest dropped
//! first and counted) while disconnected or rate-limited, sent one at a time with a stable
//! transaction id (a retry never posts twice), and paused for a 429's `retry_after_ms`. A
//! message for a user goes to their direct chat, opened if there is none. Announcements
//! may name a room by alias (`matrix:#ops:example.org`).
//!
//! End-to-end encryption is not supported: the bot cannot read encrypted rooms. Use
//! unencrypted rooms for the bot.
//!
//! Files: `config.rs` (settings), `wire.rs` (sync and event shapes, typed), `api.rs`
//! (client-server calls), `state.rs` (the state file), `platform.rs` (the
//! [`Platform`](crate::backends::connection::Platform): the sync long poll is the link's
//! frame stream).

pub mod api;
pub mod config;
mod platform;
pub mod state;
pub mod wire;

use std::time::Duration;

use actix::Actor;

use crate::{
    backends::{
        connection::{Connection, Pace, QueuePolicy},
        registry::{self, PlatformSpec, SetupError, Start, Started},
    },
    config::PlatformSettings,
};

pub use config::MatrixSettings;
pub use platform::{Matrix, MatrixSetupError};

/// A Matrix connection: the shared connection actor running [`Matrix`].
pub type MatrixConnection = crate::backends::connection::Connection<Matrix>;

/// Matrix in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "matrix",
    renamed_keys: &[],
    only_one: false,
    mention: crate::backends::mention::by_name,
    parse: config::parse,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<MatrixSettings>(settings)?;
    let platform = Matrix::new(start.wiring.name.clone(), s.clone()).map_err(SetupError::new)?;
    let queue = queue_policy(s);
    let wiring = start
        .wiring
        .with_reconnect(s.reconnect_initial_ms, s.reconnect_max_ms);
    Ok(Started::plain(
        Connection::new(platform, wiring, queue).start(),
    ))
}

/// How this platform's connection queues and paces its messages (public for the pacing
/// benchmark).
pub fn queue_policy(s: &MatrixSettings) -> QueuePolicy {
    // Synapse limits messages per account (`rc_message`), not per room: one pace for the
    // connection, rooms sent to concurrently, a 429's `retry_after_ms` holding everything.
    QueuePolicy {
        capacity: s.queue_size,
        pace: Pace {
            burst: crate::backends::defaults::SEND_BURST,
            interval: Duration::from_millis(s.send_interval_ms),
        },
        per_destination: None,
        max_in_flight: crate::backends::defaults::MAX_IN_FLIGHT,
        limits_per_destination: false,
    }
}
