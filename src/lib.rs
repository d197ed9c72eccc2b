//! stormbridge: a ChatOps bridge between chat platforms and StackStorm.
//!
//! People type `!st2 run date on web1` in chat; the bridge matches it against StackStorm's
//! action aliases with StackStorm's exact semantics ([`alias`]), runs it through the
//! StackStorm API ([`st2`]), acknowledges, and posts the result StackStorm announces on its
//! event stream back into the same room and thread.
//!
//! The running system is a set of actix actors ([`actors`]) exchanging typed messages, one
//! connection actor per chat platform ([`backends`]), and an HTTP server for operators
//! ([`http`]). Parsing, matching, routing and formatting are plain code in [`domain`],
//! [`alias`] and [`render`], tested without a runtime. [`app`] wires it all together.
//! [`emulator`] is a test double of StackStorm's API for tests and `stormbridge demo`.

pub mod acl;
pub mod actors;
pub mod alias;
pub mod app;
pub mod backends;
pub mod cli;
pub mod commands;
pub mod config;
pub mod confirm;
pub mod domain;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod http;
pub mod inquiry;
pub mod lease;
pub mod local;
pub mod metrics;
pub mod redact;
pub mod render;
pub mod st2;
pub mod store;
pub mod telemetry;
pub mod tls;
