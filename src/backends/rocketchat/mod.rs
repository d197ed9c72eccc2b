//! The Rocket.Chat backend (`backend = "rocketchat"`): the realtime API for events, the REST
//! API for messages, both with the bot account's personal access token.
//!
//! Connecting: `GET /api/v1/me` with `X-User-Id` and `X-Auth-Token` checks the credentials
//! and learns the bot's username (a 401 stops the connection: `down`), then the websocket
//! `<server_url>/websocket` speaks DDP (https://developer.rocket.chat/reference/api/realtime-api):
//! `connect` (version 1) → `connected`; `login` with `{"resume": <token>}` (the realtime
//! API takes a personal access token there: https://developer.rocket.chat/apidocs/login-realtime)
//! → `result`; `sub` to `stream-room-messages` with `__my_messages__`, every message of every
//! room the bot is in (https://developer.rocket.chat/apidocs/stream-room-messages-realtime)
//! → `ready`, and the link is up. A refused login or subscription stops the connection
//! (`down`); the server's DDP rate limiter (`too-many-requests`) only delays it. The server's
//! `ping` is answered with a `pong`; the bridge pings on the shared keepalive timer
//! (`ping_interval_secs`) and a link silent for twice that is lost. Every lost link is
//! opened again after a capped, jittered backoff, with `connect`, `login` and `sub` again;
//! replies wait in the queue meanwhile.
//!
//! Catching up: the stream replays nothing to a new subscription, so the connection keeps
//! its position (since when its links have listened, and per room the `ts` of the newest
//! message handed on; with `[store] backend = "redis"` it is saved for the next holder of
//! the connection). Every link after the first, this process's after a lost link or the
//! next holder's after a takeover, once subscribed asks the REST API what was posted from
//! there on (`GET /api/v1/rooms.get?updatedSince=`, https://developer.rocket.chat/apidocs/get-rooms,
//! then `GET /api/v1/chat.syncMessages?roomId=&lastUpdate=` for each room with newer
//! messages, https://developer.rocket.chat/apidocs/sync-messages), no further back than 10
//! minutes, and hands those on first, oldest first, holding the live messages meanwhile. A
//! message already handed on (by this process, or by another as the shared store records)
//! is not run again. A catch-up the server refuses for now (a server error, the rate
//! limiter) drops the link to try again; one it refuses outright is given up, logged.
//! Details in `resume.rs`.
//!
//! Inbound: `changed` messages of `stream-room-messages`, whose `args` are the message and
//! the room's type and name (`c` channel, `p` private group, `d` direct; livechat rooms are
//! left alone). Identity: the user is the message's `u._id` (named by `u.username`), the
//! room its `rid`, the thread its `tmid`. A leading `@<bot username>` sets `mentioned` and
//! is stripped. Skipped: the bot's own messages, other bots' (a `bot` field), system
//! messages (a `t`), edits (`editedAt`), and a message seen already (the stream sends a
//! message again when its thread gets a reply, a reaction or a link preview).
//!
//! Output: `POST /api/v1/chat.postMessage` with `roomId`, `text` and `tmid` for a thread
//! reply (https://developer.rocket.chat/apidocs/post-message: its change log documents
//! `tmid` since 2.4.1); a part of a result that the store keeps owing goes with
//! `chat.sendMessage` instead, under an `_id` every bridge process derives alike, so that
//! a holder taking over cannot post it twice (`api::SEND_MESSAGE`); a message to a user
//! first finds the user's username (`GET /api/v1/users.info`) and opens the direct room with
//! `POST /api/v1/im.create` (https://developer.rocket.chat/apidocs/create-dm, which takes a
//! username), whose id is kept. Messages are split
//! at the server's `Message_MaxAllowedSize` (5000 by default, counted as JavaScript counts:
//! UTF-16 units) or `max_message_length`; `extra.rocketchat` becomes `attachments`.
//!
//! Rate limits: the REST API's limiter allows each endpoint 10 calls per 60 s from one
//! client by default ("Default number calls to the rate limiter",
//! https://docs.rocket.chat/docs/rate-limiter) unless the account may bypass it (the `bot`
//! role may, by default). Its answers say where the window stands (`X-RateLimit-Limit`,
//! `-Remaining`, `-Reset` in milliseconds since the epoch): a send that leaves none pauses
//! the queue until the reset, and a 429 is tried again after the seconds its `error` names.
//!
//! Answer buttons for StackStorm inquiries: none. Rocket.Chat's message-attachment buttons
//! open a URL in the presser's browser or post a text as the presser; neither calls the
//! bridge with who pressed (interactive blocks that do need a Rocket.Chat App installed on
//! the server), so inquiries are answered by typing, as the listing says.
//!
//! Files: `config.rs` (settings), `wire.rs` (DDP and messages, typed), `api.rs` (REST
//! calls), `resume.rs` (the position and what a catch-up keeps), `platform.rs` (the
//! [`Platform`](crate::backends::connection::Platform)).

pub mod api;
pub mod config;
mod platform;
pub mod resume;
pub mod wire;

use std::time::Duration;

use actix::Actor;

use crate::{
    backends::{
        connection::{Connection, Pace, QueuePolicy},
        registry::{self, PlatformSpec, SetupError, Start, Started},
    },
    config::PlatformSettings,
    domain::mention::Addressee,
};

pub use config::RocketChatSettings;
pub use platform::{endpoints, RocketChat, RocketChatSetupError};

/// A Rocket.Chat connection: the shared connection actor running [`RocketChat`].
pub type RocketChatConnection = Connection<RocketChat>;

/// Calls the REST API's limiter allows each endpoint per window by default
/// (`API_Enable_Rate_Limiter_Limit_Calls_Default`).
pub const RATE_LIMIT_CALLS: u32 = 10;

/// Rocket.Chat in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "rocketchat",
    renamed_keys: &[],
    only_one: false,
    mention,
    parse: config::parse,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<RocketChatSettings>(settings)?;
    let platform =
        RocketChat::new(start.wiring.name.clone(), s.clone()).map_err(SetupError::new)?;
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
pub fn queue_policy(s: &RocketChatSettings) -> QueuePolicy {
    // The REST limiter counts calls per endpoint and client, not per room: one pace for the
    // connection, its burst the limiter's default allowance, then `send_interval_ms` apart;
    // rooms are sent to concurrently. A window used up (`X-RateLimit-Remaining: 0`) or a 429
    // holds every room until the reset. An account that bypasses the limiter gets no such
    // headers and is held by the pace alone.
    QueuePolicy {
        capacity: s.queue_size,
        pace: Pace {
            burst: RATE_LIMIT_CALLS,
            interval: Duration::from_millis(s.send_interval_ms),
        },
        per_destination: None,
        max_in_flight: crate::backends::defaults::MAX_IN_FLIGHT,
        limits_per_destination: false,
    }
}

/// Rocket.Chat: `@username` (user ids notify nobody, so without a username there is no
/// mention); never `@all` or `@here`, which notify a whole room.
pub fn mention(who: &Addressee) -> Option<String> {
    let name = who.name.as_deref()?;
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !["all", "here"].contains(&name.to_ascii_lowercase().as_str());
    plain.then(|| format!("@{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(id: &str, name: Option<&str>) -> Addressee {
        Addressee {
            id: id.into(),
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn mentions_are_usernames_and_never_the_whole_room() {
        assert_eq!(
            mention(&who("aobEdbYhXfu5hkeqG", Some("alice.b"))).as_deref(),
            Some("@alice.b")
        );
        assert_eq!(mention(&who("aobEdbYhXfu5hkeqG", None)), None);
        assert_eq!(mention(&who("x", Some("here"))), None);
        assert_eq!(mention(&who("x", Some("All"))), None);
        assert_eq!(mention(&who("x", Some("two words"))), None);
    }

    #[test]
    fn the_queue_follows_the_rest_limiter() {
        let s: RocketChatSettings = serde_json::from_value(serde_json::json!({
            "server_url": "https://chat.example.com", "user_id": "u", "token": "t",
        }))
        .unwrap();
        let q = queue_policy(&s);
        assert_eq!(q.pace.burst, RATE_LIMIT_CALLS);
        assert_eq!(q.pace.interval, Duration::from_millis(s.send_interval_ms));
        assert!(
            !q.limits_per_destination,
            "the limiter counts the account's calls"
        );
        assert_eq!(q.per_destination, None);
        assert_eq!(q.capacity, s.queue_size);
    }
}
