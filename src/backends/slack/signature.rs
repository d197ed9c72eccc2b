//! The Events API's request signature (<https://api.slack.com/authentication/verifying-requests-from-slack>):
//! every request must carry `X-Slack-Request-Timestamp` within five minutes of now and
//! `X-Slack-Signature` = `v0=` + hex(HMAC-SHA256(signing secret, `v0:{timestamp}:{body}`)),
//! compared in constant time.

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
    let Some(tag) = crate::backends::hex::decode(hex) else {
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
    format!("v0={}", crate::backends::hex::encode(tag.as_ref()))
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
