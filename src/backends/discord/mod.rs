//! The Discord backend (`backend = "discord"`): gateway websocket for events, REST API v10
//! for messages, a bot token (`Authorization: Bot …`).
//!
//! Gateway: the server's `Hello` (op 10) gives the heartbeat interval; the first heartbeat
//! (op 1, `d` = last sequence) goes after a random fraction of it, then one every interval;
//! a heartbeat without an ACK (op 11) since the previous one means a zombie connection and
//! reconnects. A fresh session sends `Identify` (op 2) with the guild-messages,
//! direct-messages and message-content intents; after a drop the connection sends `Resume`
//! (op 6) with the `session_id` from `READY` and the last `s`, to `resume_gateway_url`.
//! `Reconnect` (op 7) reconnects and resumes; `Invalid Session` (op 9) with `d = false`
//! forgets the session and identifies again. Every failure stops the actor and
//! `actix::Supervisor` restarts it after a capped, jittered backoff.
//!
//! Identity: the user is the author's snowflake, the room the `channel_id` (a thread is its
//! own channel), the thread the command's message id (answers reply to it with
//! `message_reference`), and the organisation the `guild_id` (absent for direct messages).
//! A leading `<@BOTID>` or `<@!BOTID>` sets `mentioned` and is stripped. The bot's own
//! messages and other bots' (`author.bot`) are ignored.
//!
//! Output: `POST /channels/{id}/messages`; a message to a user opens (and caches) the DM
//! channel with `POST /users/@me/channels`. Messages are split at 2000 characters and go
//! through a bounded queue, one at a time, held while the gateway is down and paused on
//! 429 (`retry_after` in the body, else `Retry-After`) and when `X-RateLimit-Remaining`
//! reaches 0 (`X-RateLimit-Reset-After`).

pub mod config;
mod connection;
pub mod wire;

pub use config::DiscordSettings;
pub use connection::{DiscordConnection, DiscordSetupError};
