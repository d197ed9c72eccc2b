//! Talking to StackStorm: the HTTP client, credentials, wire models and the SSE parser (TLS
//! settings, shared with the chat platforms, are `crate::tls`).

pub mod actions;
pub mod client;
pub mod credential;
pub mod error;
pub mod executions;
pub mod inquiries;
pub mod models;
pub mod result_message;
pub mod sse;

pub use client::St2Client;
pub use credential::{Credential, CredentialKind};
pub use error::St2Error;
