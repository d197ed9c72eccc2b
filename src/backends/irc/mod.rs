//! The IRC backend (`backend = "irc"`).
//!
//! One TCP (optionally TLS) connection to one server. Registration lists the server's
//! capabilities (`CAP LS 302`), sends `PASS` (server password), `NICK` and `USER`, asks for
//! `server-time` and `message-tags` when offered and negotiates SASL PLAIN (`sasl` …
//! `AUTHENTICATE`) when configured, then `CAP END`; a nick collision (433) appends `_` and
//! retries. With `server-time`, channel messages a server replays at a join are told from
//! new ones (`history.rs`). After the welcome (001) the bot
//! joins its channels, rejoins one it is kicked from, and answers `PING` with `PONG`; a
//! silent server is pinged and, if still silent, dropped and reconnected with the shared
//! capped, jittered backoff.
//!
//! Identity: IRC has no stable account id without services, so a user's id is their
//! **nick** (`ChatUser.id == nick`): a user who changes nick is a different user to the
//! access rules, and someone who takes a freed nick gets its rights. Write access rules for
//! IRC with that in mind (registered nicks enforced by the network's services help). A
//! channel's id is its name (`#ops`); a private message is a direct room whose id is the
//! sender's nick, so replies go back to them as a private message. There are no threads and
//! no org.
//!
//! Inbound: `PRIVMSG` only (NOTICEs are never answered, per IRC convention). CTCP (ACTION,
//! VERSION, …), the bot's own messages, messages tagged `bot` (IRCv3) and nicks in
//! `ignore_nicks` are ignored. `nick: …`, `nick, …` and `@nick …` set `mentioned` and are
//! stripped; mIRC formatting codes are removed.
//!
//! Outbound: each line of a message is a separate `PRIVMSG`, split so that the whole line,
//! including the `:nick!user@host ` prefix the server adds when relaying it, fits 512 bytes.
//! Lines are sent through flood control (a burst of `flood_burst`, then one every
//! `send_interval_ms`). While disconnected they wait in a bounded queue (`queue_size`,
//! oldest dropped first and counted) and are sent, oldest first, after reconnecting. A
//! line counts as sent once the server answers a `PING` written after it (a server handles
//! a client's lines in order; `connection/confirming.rs`), and the next waits for that
//! answer: a line written into a link that dies before the server read it is sent again on
//! the next link instead of lost. With `message-tags`, each line carries a key (client tag
//! `+stormbridge/part`); where the server replays a channel's history at a join, the link is
//! up once the replay has come, and a line sent again that the replay shows is not sent.
//!
//! Files: `config.rs` (settings), `history.rs` (capabilities; replayed or new), `wire.rs` (CR LF lines, parsed with
//! `irc-proto`), `inbound.rs` (a `PRIVMSG` as a chat message), `text.rs` (splitting,
//! mentions, SASL), `platform.rs` (the [`Platform`](crate::backends::connection::Platform)).

pub mod config;
mod history;
/// A relayed `PRIVMSG` → a chat message (public for the property tests in `tests/it`).
pub mod inbound;
mod platform;
mod text;
/// Line framing of what the server sends (public for the property tests in `tests/it`).
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

pub use config::IrcSettings;
pub use platform::Irc;

/// An IRC connection: the shared connection actor running [`Irc`].
pub type IrcConnection = crate::backends::connection::Connection<Irc>;

/// IRC in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "irc",
    renamed_keys: config::RENAMED_KEYS,
    only_one: false,
    mention: crate::backends::mention::by_name,
    parse: config::parse,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<IrcSettings>(settings)?;
    let tls = if s.tls {
        Some(crate::tls::client_config(true, s.tls_ca_file.as_deref()).map_err(SetupError::new)?)
    } else {
        None
    };
    let queue = queue_policy(s);
    let wiring = start
        .wiring
        .with_reconnect(s.reconnect_initial_ms, s.reconnect_max_ms);
    let platform = Irc::new(wiring.name.clone(), s.clone(), tls);
    Ok(Started::plain(
        Connection::new(platform, wiring, queue).start(),
    ))
}

/// How this platform's connection queues and paces its messages (public for the pacing
/// benchmark).
pub fn queue_policy(s: &IrcSettings) -> QueuePolicy {
    // IRC servers count lines per connection: flood control paces them all alike.
    let pace = Pace {
        burst: s.flood_burst,
        interval: Duration::from_millis(s.send_interval_ms),
    };
    QueuePolicy::serial(s.queue_size, pace)
}
