//! The small JSON-over-HTTPS helpers the REST-based backends share (Mattermost, Discord; the
//! client builder also Slack and Matrix):
//! bounded bodies, errors that name the path (never the host or a token), and the platform's
//! own error code and message when it sends one.

use std::{sync::Arc, time::Duration};

use actix_web::http::StatusCode;
use awc::{http::header::HeaderMap, ClientRequest};
use bytes::Bytes;
use serde_json::Value;

use super::connection::{outbox::Outcome, ConnectionError};

/// The User-Agent the bridge sends to chat platforms (Discord asks for its own form).
pub const USER_AGENT: &str = concat!("stormbridge/", env!("CARGO_PKG_VERSION"));

/// An HTTP client for a platform's API: the given TLS settings, 10 s to connect, 30 s per
/// request unless a request says otherwise (a long poll does), and `user_agent`.
pub fn http_client(tls: Arc<rustls::ClientConfig>, user_agent: &'static str) -> awc::Client {
    let connector = awc::Connector::new()
        .rustls_0_23(tls)
        .timeout(Duration::from_secs(10));
    awc::Client::builder()
        .connector(connector)
        .timeout(Duration::from_secs(30))
        .add_default_header(("User-Agent", user_agent))
        .finish()
}

/// The connection's API client from `slot`, made there on first use with `tls` and
/// `user_agent` (an awc client belongs to the runtime it is made on, and a platform is built
/// before its connection actor runs).
pub fn lazy_client(
    slot: &mut Option<awc::Client>,
    tls: &Arc<rustls::ClientConfig>,
    user_agent: &'static str,
) -> awc::Client {
    slot.get_or_insert_with(|| http_client(tls.clone(), user_agent))
        .clone()
}

/// Largest API response read.
const MAX_BODY: usize = 1 << 20;

/// The platform's error code (`code`, or Mattermost's `id`) and message from a JSON error
/// body.
fn code_and_message(body: &[u8]) -> (Option<String>, Option<String>) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = match v.get("code").or_else(|| v.get("id")) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let message = v.get("message").and_then(Value::as_str).map(str::to_owned);
    (code, message)
}

/// `HTTP <status> <code or id> <message>` from a platform's JSON error body.
pub fn api_error(status: StatusCode, body: &[u8]) -> String {
    let (code, message) = code_and_message(body);
    format!(
        "HTTP {} {} {}",
        status.as_u16(),
        code.unwrap_or_default(),
        message.unwrap_or_default()
    )
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ")
}

/// The typed error for an error answer to `method path`.
pub fn http_error(
    method: &'static str,
    path: &str,
    status: StatusCode,
    body: &[u8],
) -> ConnectionError {
    let (code, message) = code_and_message(body);
    ConnectionError::Http {
        request: format!("{method} {path}"),
        status: status.as_u16(),
        code,
        message,
    }
}

/// What the queue does with the answer to `POST path`, for every status but 429 (which each
/// platform reads its own way): a server error or a timeout is tried again, any other error
/// is refused for good, a success is `None`.
pub fn post_outcome(path: &str, status: StatusCode, body: &[u8]) -> Option<Outcome> {
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Some(Outcome::Retry(http_error("POST", path, status, body)));
    }
    if !status.is_success() {
        return Some(Outcome::Rejected(http_error("POST", path, status, body)));
    }
    None
}

/// Sends `req` (already carrying its authorization) and decodes a JSON success body.
pub async fn get_json(req: ClientRequest) -> Result<Value, ConnectionError> {
    let path = req.get_uri().path().to_owned();
    let during = || format!("GET {path}");
    let mut resp = req
        .send()
        .await
        .map_err(|e| ConnectionError::network(during(), e))?;
    let body = resp
        .body()
        .limit(MAX_BODY)
        .await
        .map_err(|e| ConnectionError::network(during(), e))?;
    if !resp.status().is_success() {
        return Err(http_error("GET", &path, resp.status(), &body));
    }
    serde_json::from_slice(&body)
        .map_err(|e| ConnectionError::Protocol(format!("GET {path}: bad JSON: {e}")))
}

/// Sends `body` with `req`; the caller classifies the status (429s, retries, rejections).
pub async fn post_json(
    req: ClientRequest,
    body: &Value,
) -> Result<(StatusCode, HeaderMap, Bytes), ConnectionError> {
    let path = req.get_uri().path().to_owned();
    let during = || format!("POST {path}");
    let mut resp = req
        .send_json(body)
        .await
        .map_err(|e| ConnectionError::network(during(), e))?;
    let bytes = resp
        .body()
        .limit(MAX_BODY)
        .await
        .map_err(|e| ConnectionError::network(during(), e))?;
    Ok((resp.status(), resp.headers().clone(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_error_codes_and_messages_are_kept() {
        let d = api_error(
            StatusCode::BAD_REQUEST,
            br#"{"code": 50035, "message": "Invalid Form Body"}"#,
        );
        assert_eq!(d, "HTTP 400 50035 Invalid Form Body");
        let m = api_error(
            StatusCode::FORBIDDEN,
            br#"{"id": "api.context.permissions.app_error", "message": "no"}"#,
        );
        assert_eq!(m, "HTTP 403 api.context.permissions.app_error no");
        assert_eq!(api_error(StatusCode::BAD_GATEWAY, b"<html>"), "HTTP 502");
    }
}
