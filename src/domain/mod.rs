//! Pure logic with no actix and no I/O: identity, command parsing, announcement routing,
//! the ledger of results still owed,
//! message splitting and backoff. Everything here is unit-tested without a runtime.

pub mod announcement;
pub mod backoff;
pub mod chunk;
pub mod command;
pub mod escape;
pub mod mention;
pub mod message;
pub mod result_ledger;
pub mod stream_overlap;
