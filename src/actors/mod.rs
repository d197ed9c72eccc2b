//! The actors. Each owns one concern and talks to the others only through typed messages.
//!
//! Start order (see `app.rs`): `Supervisor` (the status registry) → `TokenRenewer` (the
//! bridge's st2 credential) → `AliasCache` → `Dispatcher` → `StreamConsumer` → one chat
//! connection actor per `[[chat]]` (under `crate::backends`) → the HTTP server.
//!
//! ```text
//!  chat connection ──Inbound──▶ Dispatcher ──aliasexecution──▶ StackStorm
//!        ▲                         │  ▲                             │
//!        └────────Deliver──────────┘  └──AnnouncementReceived── StreamConsumer ◀─SSE─┘
//!                                  reads AliasSnapshot ◀── AliasCache ◀─RefreshAliases─┘
//!            every st2 caller ──GetCredential / CredentialRejected──▶ TokenRenewer
//! ```
//!
//! Actors that hold a connection are run under `actix::Supervisor`: on failure they stop,
//! and their `started()` reconnects after a capped, jittered backoff. Every actor reports
//! its state to the `Supervisor` registry, which answers `/ready` and `/actors`.

pub mod acl_gate;
pub mod alias_cache;
pub mod dispatcher;
pub mod session_manager;
pub mod stream_consumer;
pub mod supervisor;
pub mod token_renewer;
