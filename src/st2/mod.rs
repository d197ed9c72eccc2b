//! Talking to StackStorm: the HTTP client, credentials, wire models, the SSE parser and TLS.

pub mod client;
pub mod credential;
pub mod error;
pub mod inquiries;
pub mod models;
pub mod result_message;
pub mod sse;
pub mod tls;

pub use client::St2Client;
pub use credential::{Credential, CredentialKind};
pub use error::St2Error;
