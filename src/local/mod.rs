//! Local commands: programs the bridge runs itself, on its own host, when a chat user types
//! their name — for teams moving from Meeseeks-box, and for diagnostics when StackStorm is
//! down.
//!
//! They are **off by default**: nothing runs unless the operator declares `[[commands]]`
//! ([`config`]). A local command goes through the same access rules, confirmation, jobs
//! and templates as a StackStorm alias (that wiring lives in the dispatcher, not here).
//!
//! # No shell
//!
//! A local command is executed with fork/exec: the configured `executable`, its fixed
//! `args`, then the user's words split by [`args`]' small quoting rules. Nothing is ever
//! handed to a shell and nothing is expanded — `$HOME`, `*`, `;`, `|`, `` `…` `` reach the
//! program as typed. An operator who wants a shell must configure one explicitly
//! (`executable = "/bin/sh"`, `args = ["-c", "…"]`) and then owns what that means, which
//! is why `allow_arguments = false` exists.
//!
//! # Pieces
//!
//! * [`config`] — [`LocalCommandConfig`] (one `[[commands]]` entry), [`LocalCommands`]
//!   (the validated set) and [`LocalCommands::find`], which recognises a local command in
//!   the text after the prefixes.
//! * [`args`] — splitting the user's words into argv items.
//! * [`env`](mod@env) — the environment a command runs with: the bridge's, minus its own
//!   `STORMBRIDGE_…` variables, plus the command's `env`.
//! * [`runner`] — [`run`]: one run, output streamed as [`OutputChunk`]s through a channel,
//!   timeout and [`CancelHandle`] stopping the whole process group, a [`LocalOutcome`].
//!
//! # Using it
//!
//! ```no_run
//! # async fn demo(commands: stormbridge::local::LocalCommands) {
//! use stormbridge::local::{run, CancelHandle, Invocation};
//!
//! let Some(found) = commands.find("ping web1") else { return /* for StackStorm */ };
//! let found = match found {
//!     Ok(found) => found,
//!     Err(refusal) => { /* tell the user: {refusal} */ return; }
//! };
//! let invocation = Invocation::new(found.command, found.args, &[]);
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let cancel = CancelHandle::new(); // keep a clone with the job, for `cancel`
//! let outcome = run(invocation, tx, cancel).await; // spawn it on the arbiter in practice
//! while let Ok(chunk) = rx.try_recv() { /* append chunk.text to the job's output */ }
//! # let _ = outcome;
//! # }
//! ```
//!
//! Nothing here needs an actor or StackStorm; the runner works on any tokio runtime with
//! I/O and time enabled (actix's included).
//!
//! # Operating notes
//!
//! * Commands run as the bridge's user, with its privileges, on its host.
//! * Output reaches chat like any other message: it must pass the redactor
//!   ([`crate::redact`]) on its way.
//! * Processes a command started and left behind are stopped when it ends (see
//!   [`runner`]); something meant to outlive it must be detached (`setsid`, `systemd-run`).
//! * In a container, the bridge should not be PID 1 without an init (`docker run --init`,
//!   tini): orphans of local commands are reparented to PID 1, and only an init reaps them.

pub mod args;
pub mod config;
pub mod env;
#[cfg(unix)]
mod group;
pub mod output;
#[cfg(unix)]
pub mod runner;

#[cfg(all(test, unix))]
mod tests;

pub use args::{split_arguments, ArgumentError};
pub use config::{
    LocalCommandConfig, LocalCommands, LocalConfigError, LocalConfigErrors, LocalConfigProblem,
    LocalMatch,
};
pub use env::BRIDGE_ENV_PREFIX;
pub use output::OutputChunk;
#[cfg(unix)]
pub use runner::{run, CancelHandle, Invocation, LocalOutcome, LocalStatus, KILL_GRACE};
