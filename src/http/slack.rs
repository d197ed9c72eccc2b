//! `POST /slack/events/{connection}`: the Slack Events API endpoint.
//!
//! Every request must carry `X-Slack-Request-Timestamp` within five minutes of now and
//! `X-Slack-Signature` = `v0=` + hex(HMAC-SHA256(signing secret, `v0:{timestamp}:{body}`)),
//! compared in constant time; anything else is answered 401 and goes no further. The URL
//! verification handshake is answered with its challenge; events are handed to the
//! connection's actor and acknowledged at once (Slack wants an answer within 3 seconds).

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::HttpState;
use crate::backends::slack::SignedEvent;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;
/// How far a request timestamp may be from now, in seconds.
pub const WINDOW_SECS: i64 = 300;

/// Checks a Slack request signature. `now` is Unix seconds.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], signature: &str, now: i64) -> bool {
    let Ok(ts) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    // `abs_diff`: a timestamp near i64::MIN must not overflow the subtraction.
    if now.abs_diff(ts) > WINDOW_SECS.unsigned_abs() {
        return false;
    }
    let Some(hex) = signature.strip_prefix("v0=") else {
        return false;
    };
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut base = Vec::with_capacity(body.len() + 16);
    base.extend_from_slice(b"v0:");
    base.extend_from_slice(timestamp.trim().as_bytes());
    base.push(b':');
    base.extend_from_slice(body);
    // `ring::hmac::verify` compares in constant time.
    ring::hmac::verify(&key, &base, &tag).is_ok()
}

/// Signs like Slack does (for tests and tools).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut base = format!("v0:{timestamp}:").into_bytes();
    base.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &base);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// Lower-case hex as Slack writes it, and nothing else: `from_str_radix` alone would also
/// take `+f` for `0f` and upper-case digits, so one signature would have several spellings.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The handler.
pub async fn events(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<HttpState>,
) -> HttpResponse {
    let Some(endpoint) = state.slack_events.get(path.as_str()) else {
        return HttpResponse::NotFound().finish();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    if !verify(
        endpoint.signing_secret.expose_secret().as_bytes(),
        header(&req, "X-Slack-Request-Timestamp"),
        &body,
        header(&req, "X-Slack-Signature"),
        now,
    ) {
        tracing::warn!(connection = %path, "Slack events request with a bad signature or timestamp refused");
        return HttpResponse::Unauthorized().json(json!({"error": "invalid signature"}));
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": "body is not JSON"}));
    };
    if value.get("type").and_then(Value::as_str) == Some("url_verification") {
        let challenge = value.get("challenge").cloned().unwrap_or(Value::Null);
        return HttpResponse::Ok().json(json!({"challenge": challenge}));
    }
    endpoint.recipient.do_send(SignedEvent(value));
    HttpResponse::Ok().finish()
}

/// Body size limit for the route.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_check_secret_body_and_window() {
        let body = br#"{"type":"event_callback"}"#;
        let sig = sign(b"s3cret", "1700000000", body);
        assert!(verify(b"s3cret", "1700000000", body, &sig, 1_700_000_100));
        assert!(!verify(b"other", "1700000000", body, &sig, 1_700_000_100));
        assert!(!verify(b"s3cret", "1700000000", b"{}", &sig, 1_700_000_100));
        assert!(!verify(b"s3cret", "1700000000", body, &sig, 1_700_000_301));
        assert!(!verify(
            b"s3cret",
            "1700000000",
            body,
            "v0=zz",
            1_700_000_000
        ));
        assert!(!verify(b"s3cret", "soon", body, &sig, 1_700_000_000));
        assert!(!verify(b"s3cret", "1700000000", body, "é", 1_700_000_000));
    }
}
