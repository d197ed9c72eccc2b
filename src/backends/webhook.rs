//! A platform's own HTTP endpoint on the bridge's server (Slack's Events API, Mattermost's
//! button presses, Teams' messaging endpoint, Webex's webhooks).
//!
//! The HTTP layer knows no platform: it looks the request's path up among the routes the
//! connections declared ([`HttpRoute`]), reads the body within the route's size limit and the
//! server's body timeout, and hands the connection a [`WebhookRequest`] of headers and raw
//! bytes. Everything platform-specific — signatures, tokens, the JSON's shape, what to
//! answer — is the connection's, which answers with a [`WebhookReply`].

use actix::{Message, MessageResponse, Recipient};
use bytes::Bytes;
use serde_json::Value;

/// A path on the bridge's HTTP server that one connection serves (POST only).
#[derive(Clone)]
pub struct HttpRoute {
    /// The exact path, e.g. `/slack/events/<connection>`.
    pub path: String,
    /// Largest body accepted; a larger one is answered 413 and never reaches the connection.
    pub max_body: usize,
    /// Where requests go.
    pub handler: Recipient<WebhookRequest>,
    /// Whether this process runs the connection now (requests answer 503 when not); the
    /// connection's own gate, set when the bridge starts it.
    pub gate: super::connection::Gate,
}

/// Every route the connections declared, by path, each with its connection's name: the
/// HTTP layer serves them, and the requests held for a connection's next holder are handed
/// over through them (`actors::held_requests`).
pub type Routes = std::sync::Arc<std::collections::HashMap<String, ConnectionRoute>>;

/// A path a chat connection serves.
pub struct ConnectionRoute {
    /// The connection's name.
    pub connection: String,
    /// What the connection declared.
    pub route: HttpRoute,
}

/// One request to a connection's route, body read in full.
#[derive(Debug, Clone, Message)]
#[rtype(result = "WebhookReply")]
pub struct WebhookRequest {
    /// The request's headers, names in lower case, values that are not text left out.
    pub headers: Headers,
    /// The body as sent.
    pub body: Bytes,
}

/// A request's headers.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of header `name` (any case), or `""`.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }
}

/// What the bridge answers: a status and a JSON body (`Value::Null`: no body).
#[derive(Debug, Clone, PartialEq, MessageResponse)]
pub struct WebhookReply {
    /// HTTP status.
    pub status: u16,
    /// JSON body, or `Null` for none.
    pub body: Value,
}

impl WebhookReply {
    /// `200 OK` with no body.
    pub fn ok() -> Self {
        Self::new(200, Value::Null)
    }

    /// `status` with `body`.
    pub fn new(status: u16, body: Value) -> Self {
        Self { status, body }
    }
}
