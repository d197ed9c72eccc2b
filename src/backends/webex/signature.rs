//! The signature of Webex's webhook deliveries
//! (<https://developer.webex.com/docs/webhooks>, "Handling Requests from Webex" and "Auth"):
//! a webhook created with a `secret` is delivered with `X-Spark-Signature`, the hex
//! HMAC-SHA1 of the raw request body keyed with that secret. It is compared in constant
//! time, as the lower-case hex Webex writes and nothing else, so one signature has one
//! spelling.

use ring::hmac;

/// The header Webex signs its deliveries in.
pub const HEADER: &str = "X-Spark-Signature";

fn key(secret: &[u8]) -> hmac::Key {
    // Webex chose SHA-1 for this signature; ring keeps HMAC-SHA1 for such legacy uses.
    hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret)
}

/// Whether `signature` is Webex's signature of `body` under `secret`.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(tag) = crate::backends::hex::decode(signature.trim()) else {
        return false;
    };
    // `ring::hmac::verify` compares in constant time.
    hmac::verify(&key(secret), body, &tag).is_ok()
}

/// Signs like Webex does (for tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    crate::backends::hex::encode(hmac::sign(&key(secret), body).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_signature_verifies() {
        // HMAC-SHA1 of "hello" under "key", as Python's `hmac.new(b"key", b"hello",
        // hashlib.sha1).hexdigest()` (what Webex's guide uses) gives it.
        let sig = sign(b"key", b"hello");
        assert_eq!(sig, "b34ceac4516ff23a143e61d79d0fa7a4fbe5f266");
        assert!(verify(b"key", b"hello", &sig));
    }

    #[test]
    fn anything_else_is_refused() {
        let body = br#"{"resource":"messages","event":"created","data":{"id":"M1"}}"#;
        let sig = sign(b"s3cret", body);
        assert!(verify(b"s3cret", body, &sig));
        assert!(verify(b"s3cret", body, &format!(" {sig} ")));
        assert!(!verify(b"other", body, &sig), "another secret");
        assert!(!verify(b"s3cret", b"{}", &sig), "another body");
        assert!(!verify(b"s3cret", body, ""), "no signature");
        assert!(
            !verify(b"s3cret", body, &sig.to_uppercase()),
            "one spelling"
        );
        assert!(!verify(b"s3cret", body, &sig[..38]), "cut short");
        assert!(!verify(b"s3cret", body, &format!("{sig}00")), "too long");
        assert!(!verify(b"s3cret", body, "sha1=zz"), "not hex");
        assert!(!verify(b"s3cret", body, "é"), "not ASCII");
        let sha256 = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret"),
            body,
        );
        let hex: String = sha256.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!verify(b"s3cret", body, &hex), "another algorithm");
    }
}
