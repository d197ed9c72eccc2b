//! The XMPP backend (`backend = "xmpp"`).
//!
//! A client of its own (`client.rs`) rather than tokio-xmpp: only a small subset is
//! needed (stream negotiation, STARTTLS over the crate's existing rustls/ring stack, SASL
//! PLAIN, resource binding, presence, MUC join, message and ping stanzas), and it keeps the
//! dependency tree free of a second TLS/crypto stack. The stream's XML is read with
//! quick-xml (`xml.rs`), incrementally and in time linear in a stanza's size.
//!
//! Limits on what the server sends: a stanza of at most 1 MiB, elements nested at most 32
//! deep, at most 16,384 elements, attributes and text nodes in a stanza. A stanza past a
//! limit is skipped, and the stream stays open: the reader drops it as it arrives (keeping
//! no more than a read of it, and counting its depth rather than building it), logs one
//! warning (its element, sender, the limit and its size; none of its content), counts it
//! in `/actors` (`details.skipped_stanzas`), and, when it was a message to the bot from a
//! user it would take a command from (judged from the stanza's `from` and `type`, the part
//! read before the limit), answers that the message was too large (or complex) to read.
//! Only XML that is not well-formed, XML that XMPP forbids (a DTD), or a stream header past
//! a limit makes the bridge send a stream error, close the stream and reconnect (with
//! backoff), with the connection's last error saying why. See `wire.rs` for the details.
//!
//! Security: STARTTLS is required by default (certificates checked against the web PKI
//! roots or `tls_ca_file`); a server that does not offer it is refused. The certificate must
//! carry the JID's domain (RFC 6120 §13.7.2.1), which is also the SNI name, whatever `server`
//! connects to. A refused certificate is reported in plain words as the connection's last
//! error (not trusted, not valid for the domain, expired). `tls = "plaintext"` is accepted
//! only for a loopback server, for local test servers.
//!
//! Identity: in a direct chat the user id is the sender's **bare JID** (never the resource)
//! and the room id is that bare JID, so replies go back as a direct chat. In a room (MUC)
//! the room id is the room's bare JID, and the user id is the occupant's real bare JID when
//! the room exposes it (non-anonymous rooms), else `room@conference.example.com/nick` —
//! anyone can take a free nick in a semi-anonymous room, so write access rules for such
//! rooms with that in mind. There are no threads and no org.
//!
//! Inbound: `<message>` with a `<body>`; errors, delayed messages (`<delay>`: forwards, old
//! offline storage) other than the caught-up ones below, the bot's own messages
//! (including the room's reflection of them) and senders in `ignore_jids` (bare JIDs or
//! room nicks — XMPP has no bot flag) are ignored. `nick: `, `nick, ` and `@nick ` set
//! `mentioned` and are stripped. A message is known by its sender's JID and its id.
//!
//! Catching up: a room sends an occupant only what is said while it is in the room, so the
//! connection keeps its position (since when its links have listened, and per room when
//! its newest message was handed on; with `[store] backend = "redis"` it is saved for the
//! next holder of the connection). Every join after the first (a rejoin, a lost link, the
//! next holder's after a takeover) asks the room for its history since then (XEP-0045
//! §7.2.15 `<history since='…'/>`, a few seconds earlier for clocks that differ; no further
//! back than 10 minutes), and hands on what the room sends before the live messages —
//! except a message handed on already (by this process, or by another as the shared store
//! records) and one without an id, which cannot be told from one. A room keeps only so
//! much history (prosody: its last 20 messages, while the room exists). A direct message
//! to the bot while it had no resource online is kept by the server (offline storage,
//! XEP-0160) and handed on at the next link's presence with a delay from the server: it is
//! run when it was said since the links first listened and within those 10 minutes (from
//! before, it was never a command to the bridge, or is stale). See `history.rs`.
//!
//! Results posted once: each part of a result carries a key every bridge process derives
//! alike, as its id and origin-id (XEP-0359). Every join asks the room's history for the
//! last 10 minutes too (or back to the start of a command whose result is owed there), and
//! the join counts as done at the room's subject, which comes after the history (XEP-0045
//! §7.2.16; or 5 s after the bot's presence without one). A part owed again by an earlier
//! process (a holder killed between posting it and recording that) that the history shows
//! the bot posted is not posted again. For direct chats every login reads the account's
//! message archive the same way (MAM, XEP-0313, `archive.rs`; the link is up once it is
//! read, or the server said it keeps none, or 10 s passed); without one, that window
//! stays open there.
//!
//! Liveness: a stream silent for `ping_interval_secs` gets a server ping (XEP-0199, the
//! connection's keepalive), and one still silent `ping_timeout_secs` later is dropped and
//! reconnected; every `ping_interval_secs` each room is self-pinged (XEP-0410), and a failed
//! or unanswered self-ping rejoins the room, as does being kicked.
//!
//! Outbound: bodies are split with `split_message` to `max_message_bytes`, paced (a burst of
//! `flood_burst`, then one per `send_interval_ms`), and queued while disconnected in a
//! bounded queue (`queue_size`, oldest dropped first and counted), sent oldest first
//! after reconnecting. A part of a result counts as posted once the server answers a ping
//! (XEP-0199) written after it, which it does only once it has handled the part (a
//! stream's stanzas are handled in order; one ping out at a time covers every part written
//! before it, `connection/confirming.rs`). Each destination's messages go in order, the
//! next once the last is confirmed; other destinations go on meanwhile (up to 64 wait at
//! once), so under load one ping confirms the parts of many. A part written into a link that ends first is sent again on
//! the next link, unless the room's history or the archive shows the server had it.
//! (Stream Management, XEP-0198, would do the same with acks; a ping works on every
//! server.)
//!
//! Files: `config.rs` (settings), `wire.rs` (a bounded XML stanza reader on
//! quick-xml), `client.rs` (the login), `inbound.rs` (a `<message>` as a chat message),
//! `history.rs` (a room's history at a join), `archive.rs` (the account's message
//! archive at a login), `platform.rs` (the
//! [`Platform`](crate::backends::connection::Platform)).

pub mod archive;
pub mod client;
pub mod config;
pub mod history;
/// A `<message>` stanza → a chat message (public for the property tests in `tests/it`).
pub mod inbound;
mod platform;
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

pub use config::XmppSettings;
pub use platform::Xmpp;

/// An XMPP connection: the shared connection actor running [`Xmpp`].
pub type XmppConnection = crate::backends::connection::Connection<Xmpp>;

/// XMPP in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "xmpp",
    renamed_keys: config::RENAMED_KEYS,
    only_one: false,
    mention: crate::backends::mention::by_name,
    parse: config::parse,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<XmppSettings>(settings)?;
    let tls = match s.tls {
        config::TlsMode::Starttls => Some(
            crate::tls::client_config(true, s.tls_ca_file.as_deref()).map_err(SetupError::new)?,
        ),
        config::TlsMode::Plaintext => None,
    };
    let queue = queue_policy(s);
    let wiring = start
        .wiring
        .with_reconnect(s.reconnect_initial_ms, s.reconnect_max_ms);
    let platform = Xmpp::new(wiring.name.clone(), s.clone(), tls);
    Ok(Started::plain(
        Connection::new(platform, wiring, queue).start(),
    ))
}

/// How this platform's connection queues and paces its messages (public for the pacing
/// benchmark).
pub fn queue_policy(s: &XmppSettings) -> QueuePolicy {
    // The server shapes the connection's bytes itself; the pace only evens out bursts.
    let pace = Pace {
        burst: s.flood_burst,
        interval: Duration::from_millis(s.send_interval_ms),
    };
    // Destinations go on while parts sent to others wait for the server's answer to the
    // ping after them (one ping then covers many); each destination's messages go in order.
    QueuePolicy {
        max_in_flight: CONFIRMING_AT_ONCE,
        ..QueuePolicy::serial(s.queue_size, pace)
    }
}

/// Destinations whose result part may wait for the server's confirmation at once.
const CONFIRMING_AT_ONCE: usize = 64;
