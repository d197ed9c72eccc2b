//! Errors from StackStorm calls, and how they are said to a chat user.

use std::time::Duration;

/// What went wrong talking to StackStorm.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum St2Error {
    /// 401: the credential was missing, expired or unknown.
    #[error("StackStorm rejected the credential: {0}")]
    Unauthorized(String),
    /// Any other error status, with st2's `faultstring`.
    #[error("StackStorm answered {status}: {faultstring}{}", request_id_suffix(.request_id))]
    Api {
        /// HTTP status.
        status: u16,
        /// st2's `faultstring`, or a short description when the body had none.
        faultstring: String,
        /// The answer's `X-Request-ID` (st2's `RequestIDMiddleware` echoes the one the bridge
        /// sent, or makes one up): what an operator searches st2's logs for.
        request_id: Option<String>,
    },
    /// No answer in time.
    #[error("StackStorm did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The connection failed.
    #[error("cannot reach StackStorm: {0}")]
    Connect(String),
    /// The answer was not what the API documents.
    #[error("unexpected answer from StackStorm: {0}")]
    Decode(String),
}

/// Longest faultstring shown in chat; st2 sometimes puts whole schema dumps in it.
const MAX_FAULT_CHARS: usize = 400;

impl St2Error {
    /// Builds the error for a non-success status from the response body: st2's
    /// `faultstring` when present, never the raw body; `request_id` is the answer's
    /// `X-Request-ID` header.
    pub fn from_response(status: u16, body: &[u8], request_id: Option<&str>) -> Self {
        let fault = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("faultstring")
                    .and_then(|f| f.as_str())
                    .map(str::to_owned)
            })
            .map(|f| truncate(&f, MAX_FAULT_CHARS))
            .unwrap_or_else(|| format!("HTTP {status} without an error message"));
        if status == 401 {
            St2Error::Unauthorized(fault)
        } else {
            St2Error::Api {
                status,
                faultstring: fault,
                request_id: request_id.map(clean_request_id).filter(|id| !id.is_empty()),
            }
        }
    }

    /// An API error the bridge decides itself (no answer, so no request id).
    pub fn api(status: u16, faultstring: impl Into<String>) -> Self {
        St2Error::Api {
            status,
            faultstring: faultstring.into(),
            request_id: None,
        }
    }

    /// StackStorm's request id for this error, when it answered with one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            St2Error::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The sentence a chat user sees: plain words, no body dump, no stack trace; ends with
    /// StackStorm's request id when there is one, for the operator the user asks.
    pub fn user_message(&self) -> String {
        let message = self.plain_user_message();
        match self.request_id() {
            Some(id) => format!("{message} (StackStorm request id: {id})"),
            None => message,
        }
    }

    fn plain_user_message(&self) -> String {
        match self {
            St2Error::Unauthorized(_) => {
                "StackStorm refused the bridge's credentials. An administrator needs to check the bridge's StackStorm login.".into()
            }
            St2Error::Api { status: 403, faultstring, .. } => {
                format!("StackStorm says you are not allowed to do that ({faultstring}).")
            }
            St2Error::Api { status: 404, faultstring, .. } => {
                format!("StackStorm could not find what this command needs: {faultstring}")
            }
            St2Error::Api { status, faultstring, .. } if *status < 500 => {
                format!("StackStorm did not accept the command: {faultstring}")
            }
            // What a proxy says when st2api is down or restarting (st2's nginx answers 503
            // "Nginx is unable to reach st2api"): nothing ran.
            St2Error::Api { status: 502..=504, .. } => {
                "StackStorm's API is unavailable right now (it may be restarting), so nothing was run. Please try again in a moment.".into()
            }
            St2Error::Api { .. } => {
                "StackStorm had an internal error running this command; its API logs have the details.".into()
            }
            St2Error::Timeout(d) => format!(
                "StackStorm did not answer within {} seconds. The command may or may not have started; check the execution history before retrying.",
                d.as_secs()
            ),
            St2Error::Connect(_) => "I cannot reach StackStorm right now. Please try again in a moment.".into(),
            St2Error::Decode(_) => {
                "StackStorm answered in a way I did not understand; the bridge log has the details.".into()
            }
        }
    }
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    request_id
        .as_deref()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}

/// A request id as shown: printable ASCII only and short (it comes from the network).
fn clean_request_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(MAX_REQUEST_ID_CHARS)
        .collect()
}

/// Longest request id kept (st2's are UUIDs, 36 characters).
const MAX_REQUEST_ID_CHARS: usize = 64;

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faultstring_is_used_and_raw_bodies_are_not() {
        let e = St2Error::from_response(
            400,
            br#"{"faultstring": "Command \"x\" doesn't match"}"#,
            None,
        );
        assert!(e.user_message().contains("doesn't match"));
        let e =
            St2Error::from_response(500, b"<html>Traceback (most recent call last)</html>", None);
        assert!(!e.user_message().contains("Traceback"));
        assert!(!e.to_string().contains("Traceback"));
        assert!(matches!(
            St2Error::from_response(401, b"{}", None),
            St2Error::Unauthorized(_)
        ));
    }

    #[test]
    fn an_unavailable_api_is_not_called_an_internal_error() {
        let e = St2Error::from_response(
            503,
            br#"{ "faultstring": "Nginx is unable to reach st2api. Make sure service is running." }"#,
            None,
        );
        assert!(
            e.user_message().contains("unavailable"),
            "{}",
            e.user_message()
        );
        assert!(!St2Error::from_response(500, b"{}", None)
            .user_message()
            .contains("unavailable"));
    }

    #[test]
    fn long_faultstrings_are_cut() {
        let long = format!(r#"{{"faultstring": "{}"}}"#, "x".repeat(5000));
        let e = St2Error::from_response(400, long.as_bytes(), None);
        assert!(e.to_string().len() < 600);
    }

    #[test]
    fn the_request_id_reaches_the_user_and_the_log_clean() {
        let e =
            St2Error::from_response(400, br#"{"faultstring": "bad"}"#, Some("5f0c\u{1b}[31m-id"));
        assert_eq!(e.request_id(), Some("5f0c[31m-id"));
        assert!(e
            .user_message()
            .ends_with("(StackStorm request id: 5f0c[31m-id)"));
        assert!(e.to_string().contains("request id 5f0c[31m-id"));
        assert_eq!(
            St2Error::from_response(401, b"{}", Some("x")).request_id(),
            None
        );
        assert_eq!(
            St2Error::from_response(400, b"{}", Some(" ")).request_id(),
            None
        );
    }
}
