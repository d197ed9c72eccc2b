//! Why a chat connection failed, or why one message could not be sent: typed, so the
//! connection actor can tell a reason to reconnect from a reason to stop, and so `/actors`
//! and the logs say the same thing on every platform.
//!
//! The texts never carry a host's credentials or a token: platform errors name the request's
//! path and the platform's own error code and message.

use std::time::Duration;

/// What went wrong on a chat connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The network: connecting, reading or writing failed (`during` says which).
    #[error("{during}: {detail}")]
    Network {
        /// What the connection was doing (`connecting to irc.example.org:6697`).
        during: String,
        /// The transport's own error.
        detail: String,
    },
    /// An HTTP API answered with an error status.
    #[error("{request}: HTTP {status}{}", platform_detail(code, message))]
    Http {
        /// The method and path (`POST /api/v4/posts`: never the host, never a query).
        request: String,
        /// The HTTP status.
        status: u16,
        /// The platform's error code, when it sent one.
        code: Option<String>,
        /// The platform's error message, when it sent one.
        message: Option<String>,
    },
    /// The platform refused the bridge's credentials: reconnecting would only be refused
    /// again, so the connection stops (`down` in `/actors`) until the configuration is fixed.
    #[error("credentials refused: {0}")]
    Unauthorized(String),
    /// The platform answered something the bridge cannot use (bad JSON, a missing field, an
    /// unexpected frame at that point of the protocol).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The platform sent nothing for this long although it was asked to (pings, heartbeats).
    #[error("no data from the server for {} s", .0.as_secs())]
    Silent(Duration),
    /// A step of the handshake did not finish in time.
    #[error("{0} timed out")]
    Timeout(String),
    /// The server ended the connection (with its reason, when it gave one).
    #[error("the server closed the connection{}", reason_suffix(.0))]
    Closed(Option<String>),
    /// The platform asked the bridge to stop (a Discord close code that forbids
    /// reconnecting, an IRC `ERROR` after a ban, …).
    #[error("the server refused the connection for good: {0}")]
    Fatal(String),
}

impl ConnectionError {
    /// A network error while doing `during`.
    pub fn network(during: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Network {
            during: during.into(),
            detail: detail.to_string(),
        }
    }

    /// Whether the connection should stop rather than reconnect.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Unauthorized(_) | Self::Fatal(_))
    }
}

fn platform_detail(code: &Option<String>, message: &Option<String>) -> String {
    let mut out = String::new();
    for part in [code, message].into_iter().flatten() {
        if !part.is_empty() {
            out.push(' ');
            out.push_str(part);
        }
    }
    out
}

fn reason_suffix(reason: &Option<String>) -> String {
    match reason.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => format!(" ({r})"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_the_same_on_every_platform() {
        let http = ConnectionError::Http {
            request: "POST /api/v4/posts".into(),
            status: 403,
            code: Some("api.context.permissions.app_error".into()),
            message: Some("no".into()),
        };
        assert_eq!(
            http.to_string(),
            "POST /api/v4/posts: HTTP 403 api.context.permissions.app_error no"
        );
        let bare = ConnectionError::Http {
            request: "GET /x".into(),
            status: 502,
            code: None,
            message: None,
        };
        assert_eq!(bare.to_string(), "GET /x: HTTP 502");
        assert_eq!(
            ConnectionError::Closed(Some("1000 bye".into())).to_string(),
            "the server closed the connection (1000 bye)"
        );
        assert_eq!(
            ConnectionError::Closed(None).to_string(),
            "the server closed the connection"
        );
        assert_eq!(
            ConnectionError::Silent(Duration::from_secs(60)).to_string(),
            "no data from the server for 60 s"
        );
        assert!(ConnectionError::Unauthorized("x".into()).is_fatal());
        assert!(!ConnectionError::network("connecting", "refused").is_fatal());
    }
}
