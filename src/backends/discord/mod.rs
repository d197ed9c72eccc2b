//! The Discord backend (`backend = "discord"`): gateway websocket for events, REST API v10
//! for messages, a bot token (`Authorization: Bot …`, `User-Agent: DiscordBot (url, version)`).
//!
//! Gateway (`?v=10&encoding=json`): the server's `Hello` (op 10) gives the heartbeat
//! interval; the first heartbeat (op 1, `d` = last sequence) goes after a random fraction of
//! it, then one every interval, and one at once when the gateway asks (op 1); a heartbeat
//! without an ACK (op 11) since the previous one means a zombie connection and reconnects.
//! A fresh session sends `Identify` (op 2) with the guild-messages, direct-messages and
//! message-content intents to the URL from `GET /gateway/bot` (asked once, kept until a
//! connection to it fails); after a drop the connection sends `Resume` (op 6) with the
//! `session_id` from `READY` and the last `s`, to `resume_gateway_url`. `Reconnect` (op 7)
//! reconnects and resumes; `Invalid Session` (op 9) reconnects and resumes when `d` is true,
//! else forgets the session and identifies on a new connection after a random 1–5 s.
//! Connections are dropped without a close frame (a 1000/1001 close would end the session).
//! Close codes follow Discord's table: 4001/4003/4005/4007/4009 start a new session, 4004
//! and 4010–4014 stop the connection for good (state `down`, no retries: they would only
//! burn the day's identifies), the rest resume. Every other failure opens a new link after a
//! capped, jittered backoff.
//!
//! Identity: the user is the author's snowflake, the room the `channel_id` (a thread is its
//! own channel), the thread the command's message id (answers reply to it with
//! `message_reference`), and the organisation the `guild_id` (absent for direct messages).
//! A leading `<@BOTID>` or `<@!BOTID>` sets `mentioned` and is stripped. The bot's own
//! messages, other bots' (`author.bot`), system messages and webhooks (`webhook_id`) are
//! ignored.
//!
//! Output: `POST /channels/{id}/messages` (`allowed_mentions` empty, so replies ping no one);
//! a message to a user opens (and caches) the DM channel with `POST /users/@me/channels`.
//! Messages are split at 2000 characters and go through a bounded queue, one at a time, held
//! while the gateway is down, paused on 429 (`retry_after` in the body, else `Retry-After`)
//! and when `X-RateLimit-Remaining` reaches 0 (`X-RateLimit-Reset-After`). A 401 stops the
//! connection like a 4004: Discord asks for no more requests with a refused token.
//!
//! Payloads are typed with `twilight-model`: the envelope (`op` as twilight's `OpCode`, `s`,
//! `t`) is read with `d` left raw, and `d` is read as the type its opcode or event calls for
//! (`Hello`, `Interaction`; a small `Ready` and `ChatMessage` of the bridge's own, which read
//! only the fields the bridge uses); `Identify`, `Resume` and `Heartbeat` are twilight's
//! structs; close codes are `CloseCode`s. A frame, or a `d`, that does not read as its type
//! is skipped with a debug log, never fatal (a dispatch whose `d` is skipped still counts
//! its `s`).
//!
//! Files: `config.rs` (settings), `wire.rs` (gateway payloads, typed), `api.rs` (REST
//! calls), `platform.rs` (the [`Platform`](crate::backends::connection::Platform)),
//! `interactive.rs` (buttons).

pub mod api;
pub mod config;
mod interactive;
mod platform;
pub mod wire;

use std::time::Duration;

use actix::Actor;

use crate::{
    backends::{
        connection::{Connection, DestinationPace, Pace, QueuePolicy},
        registry::{self, PlatformSpec, SetupError, Start, Started},
    },
    config::PlatformSettings,
};

pub use config::DiscordSettings;
pub use platform::{Discord, DiscordSetupError, MAX_RESUME_FAILURES};

/// A Discord connection: the shared connection actor running [`Discord`].
pub type DiscordConnection = crate::backends::connection::Connection<Discord>;

/// Discord in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "discord",
    renamed_keys: &[],
    only_one: false,
    mention: crate::backends::mention::discord,
    parse: config::parse,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<DiscordSettings>(settings)?;
    let name = start.wiring.name.clone();
    let platform = Discord::new(name.clone(), s.clone()).map_err(SetupError::new)?;
    let queue = queue_policy(s);
    let wiring = start
        .wiring
        .with_reconnect(s.reconnect_initial_ms, s.reconnect_max_ms);
    let addr = Connection::new(platform, wiring, queue).start();
    // Answer buttons for StackStorm inquiries (presses come back as the presser).
    crate::backends::buttons::connect(&name, &addr, start.presses, start.buttons);
    Ok(Started::plain(addr))
}

/// How this platform's connection queues and paces its messages (public for the pacing
/// benchmark).
pub fn queue_policy(s: &DiscordSettings) -> QueuePolicy {
    // Discord limits each route (a channel's messages: about 5 per 5 s, told in the
    // `X-RateLimit-*` headers) and the bot as a whole (50 requests per second): each channel
    // paced on its own and held by its own 429s, channels sent to concurrently, the whole
    // connection kept below the global limit.
    QueuePolicy {
        capacity: s.queue_size,
        pace: Pace {
            burst: 50,
            interval: Duration::from_millis(20),
        },
        per_destination: Some(DestinationPace::Bucket(Pace {
            burst: 5,
            interval: Duration::from_millis(s.send_interval_ms),
        })),
        max_in_flight: crate::backends::defaults::MAX_IN_FLIGHT,
        limits_per_destination: true,
    }
}
