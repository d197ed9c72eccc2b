//! The console backend: one user typing lines, every bot message printed as one line.
//!
//! Input: a plain line is said in the configured room; `/dm TEXT` is a direct message to
//! the bot; `/as <user id> TEXT` is said by another person (id and name `<user id>`; it
//! combines with `/dm`), so one console can try a four-eyes approval; a line starting
//! with `@<bot name>` mentions the bot. A line longer than 64 KiB
//! or not valid UTF-8 is skipped with a warning (on the console and in the log, showing only
//! a short escaped prefix of it), and the lines after it are read as usual.
//!
//! Output: one line per bot message, `[<bot name>] <where>: <text>`, where `<where>` is
//! `#room`, `#room (thread T)` or `@user (dm)`. On a terminal (standard output is a tty) a
//! multi-line message is printed as its lines instead, the later ones indented, each line
//! escaped on its own (see [`wire::output_lines`]). Otherwise (pipes, files, the tests)
//! the whole line is written through [`escape_line`]: newlines as `\n`, backslashes as `\\`, and every other control character
//! and Unicode bidi control as `\t`, `\r`, `\0` or `\u{…}` (see [`crate::domain::escape`]), so
//! a message is always exactly one line, cannot drive the operator's terminal, and
//! [`unescape_line`] gives it back exactly. The same actor drives the integration tests over
//! an in-memory pipe instead of stdin/stdout.
//!
//! Files: `config.rs` (settings), `wire.rs` (line framing that survives bad lines, and
//! terminal output), `platform.rs` (the
//! [`Platform`](crate::backends::connection::Platform)).

pub mod config;
mod platform;
pub mod wire;

use actix::Actor;

use crate::{
    backends::{
        connection::{Connection, Pace, QueuePolicy},
        registry::{self, PlatformSpec, SetupError, Start, Started},
    },
    config::PlatformSettings,
};

pub use crate::domain::escape::{escape_line, unescape_line};
pub use config::ConsoleSettings;
pub use platform::{Console, ConsoleIo};

/// The console connection: the shared connection actor running [`Console`].
pub type ConsoleConnection = crate::backends::connection::Connection<Console>;

/// The console in the platform registry.
pub const SPEC: PlatformSpec = PlatformSpec {
    kind: "console",
    renamed_keys: &[],
    only_one: true,
    mention: crate::backends::mention::by_name,
    parse: config::parse,
    start,
};

fn start(settings: &dyn PlatformSettings, start: Start) -> Result<Started, SetupError> {
    let s = registry::settings::<ConsoleSettings>(settings)?;
    let io = start.console.unwrap_or_else(ConsoleIo::stdio);
    let platform = Console::new(start.wiring.name.clone(), s.clone(), start.bot_name, io);
    let queue = queue_policy(s);
    Ok(Started::plain(
        Connection::new(platform, start.wiring, queue).start(),
    ))
}

/// How this platform's connection queues and paces its messages (public for the pacing
/// benchmark).
pub fn queue_policy(_settings: &ConsoleSettings) -> QueuePolicy {
    // A local terminal: no limit but the queue's.
    QueuePolicy::serial(crate::backends::defaults::queue_size(), Pace::unlimited())
}
