//! The actors. Each owns one concern and talks to the others only through typed messages.
//!
//! Start order (see `app.rs`): `StatusRegistry` (actor states for `/ready` and `/actors`) → `TokenRenewer` (the
//! bridge's st2 credential) → `AliasCache` → `ResultTracker` (its own arbiter) →
//! `Dispatcher` → `StreamConsumer` → one chat connection actor per `[[chat]]` (under
//! `crate::backends`) → `LeaseKeeper` and `HeldRequestDrainer` (only with a Redis store:
//! which of the bridge processes runs each connection, and the requests held while none
//! did) → the HTTP server.
//!
//! ```text
//!  chat connection ──Inbound──▶ Dispatcher ──────aliasexecution──────▶ StackStorm
//!     ▲     ▲                    │ TrackCommand / CommandAccepted       │  │
//!     │     └──Deliver (ack)─────┘        ▼                              │  │
//!     └──────Deliver (result)──────── ResultTracker ◀─GET executions/{id}┘  │
//!                         AnnouncementReceived, StreamEstablished ▲         │
//!                                                      StreamConsumer ◀─SSE─┘
//!             Dispatcher reads AliasSnapshot ◀── AliasCache ◀─RefreshAliases─┘
//!            every st2 caller ──GetCredential / CredentialRejected──▶ TokenRenewer
//! ```
//!
//! Actors that hold a connection reconnect by themselves with a capped, jittered backoff
//! (the chat connections stop and are restarted by `actix::Supervisor`; the stream consumer
//! keeps running and replaces its connection). Every actor reports its state to the
//! `StatusRegistry`, which answers `/ready` and `/actors`.

pub mod acl_gate;
pub mod alias_cache;
pub mod as_sender;
pub mod dispatcher;
pub mod held_requests;
pub mod job_keeper;
pub mod lease_keeper;
pub mod messages;
pub mod notice_relay;
pub mod result_tracker;
pub mod session_manager;
pub mod status;
pub mod stream_consumer;
pub mod token_renewer;
