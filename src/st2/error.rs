//! Errors from StackStorm calls, and how they are said to a chat user.

use std::time::Duration;

/// What went wrong talking to StackStorm.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum St2Error {
    /// 401: the credential was missing, expired or unknown.
    #[error("StackStorm rejected the credential: {0}")]
    Unauthorized(String),
    /// Any other error status, with st2's `faultstring`.
    #[error("StackStorm answered {status}: {faultstring}")]
    Api {
        /// HTTP status.
        status: u16,
        /// st2's `faultstring`, or a short description when the body had none.
        faultstring: String,
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
    /// `faultstring` when present, never the raw body.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
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
            }
        }
    }

    /// The sentence a chat user sees: plain words, no body dump, no stack trace.
    pub fn user_message(&self) -> String {
        match self {
            St2Error::Unauthorized(_) => {
                "StackStorm refused the bridge's credentials. An administrator needs to check the bridge's StackStorm login.".into()
            }
            St2Error::Api { status: 403, faultstring } => {
                format!("StackStorm says you are not allowed to do that ({faultstring}).")
            }
            St2Error::Api { status: 404, faultstring } => {
                format!("StackStorm could not find what this command needs: {faultstring}")
            }
            St2Error::Api { status, faultstring } if *status < 500 => {
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
        let e = St2Error::from_response(400, br#"{"faultstring": "Command \"x\" doesn't match"}"#);
        assert!(e.user_message().contains("doesn't match"));
        let e = St2Error::from_response(500, b"<html>Traceback (most recent call last)</html>");
        assert!(!e.user_message().contains("Traceback"));
        assert!(!e.to_string().contains("Traceback"));
        assert!(matches!(
            St2Error::from_response(401, b"{}"),
            St2Error::Unauthorized(_)
        ));
    }

    #[test]
    fn an_unavailable_api_is_not_called_an_internal_error() {
        let e = St2Error::from_response(
            503,
            br#"{ "faultstring": "Nginx is unable to reach st2api. Make sure service is running." }"#,
        );
        assert!(
            e.user_message().contains("unavailable"),
            "{}",
            e.user_message()
        );
        assert!(!St2Error::from_response(500, b"{}")
            .user_message()
            .contains("unavailable"));
    }

    #[test]
    fn long_faultstrings_are_cut() {
        let long = format!(r#"{{"faultstring": "{}"}}"#, "x".repeat(5000));
        let e = St2Error::from_response(400, long.as_bytes());
        assert!(e.to_string().len() < 600);
    }
}
