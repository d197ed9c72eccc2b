//! The store key and sealing of secrets at rest.
//!
//! Secrets (st2 tokens, API keys) are sealed with XChaCha20-Poly1305. Its
//! 192-bit nonces are large enough to draw at random for every write without
//! any counter state, which matters because the SQLite file may be copied,
//! restored from backup or written by successive processes. Each sealed value
//! is bound by associated data to its row (session id, user) and column, so a
//! value cannot be moved to another user or field without failing
//! authentication.
//!
//! Sealed text format: `v1:<key id>:<nonce base64url>:<ciphertext+tag base64url>`.
//! The key id is a short one-way fingerprint of the key; it lets us tell
//! "wrong key" apart from "damaged value" and leaves room for key rotation.
//!
//! Randomness (nonces, salts, link and session ids) comes from
//! `ring::rand::SystemRandom`, i.e. the operating system, because ring is
//! already in the binary through rustls.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretBox};
use zeroize::Zeroizing;

use super::error::StoreError;

/// Length of the store key in bytes (256 bits).
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Largest key file we read; a key is 64 characters plus whitespace.
const MAX_KEY_FILE_LEN: usize = 1024;
const SEALED_VERSION: &str = "v1";
/// Domain separation for the key fingerprint, so the key id can never equal
/// some other hash of the key.
const KEY_ID_LABEL: &[u8] = b"stormbridge session store key id v1\0";
/// HKDF salt of keys derived from the store key ([`StoreKey::derive_hmac_key`]), so
/// they are apart from any other use of the key.
const DERIVE_SALT: &[u8] = b"stormbridge derived key v1";
/// Prefix of every associated-data string, for the same reason.
const AAD_LABEL: &[u8] = b"stormbridge/store/v1";

/// The 256-bit key that seals secrets in the SQLite store.
///
/// The operator provides it by file ([`StoreKey::from_file`]) or environment
/// variable ([`StoreKey::from_env`]), as 64 hex characters or the base64
/// encoding of 32 bytes (`openssl rand -hex 32` makes one). It must never
/// live in the same file as the database. The bytes sit in a heap box that is
/// zeroed on drop, and `Debug` shows only the key id.
///
/// Deciding that a key is *required* (the `sqlite` store is configured but no
/// key source is) is the caller's job: report it as a start-up error, never
/// fall back to storing plaintext.
pub struct StoreKey {
    bytes: SecretBox<[u8; KEY_LEN]>,
    id: String,
}

impl StoreKey {
    /// Reads the key from a file holding 64 hex characters or base64 of 32
    /// bytes. Surrounding whitespace (a trailing newline) is ignored.
    pub fn from_file(path: &Path) -> Result<Self, StoreError> {
        let unreadable = |error: std::io::Error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                StoreError::KeyMissing {
                    origin: format!("key file {} does not exist", path.display()),
                }
            } else {
                StoreError::KeyUnreadable {
                    path: path.to_path_buf(),
                    error,
                }
            }
        };
        let origin = format!("key file {}", path.display());
        // Read at most a little more than any valid key file, so pointing
        // the setting at a large file (or a device) fails fast.
        let mut raw = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN + 1));
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_KEY_FILE_LEN as u64 + 1).read_to_end(&mut raw))
            .map_err(unreadable)?;
        if raw.len() > MAX_KEY_FILE_LEN {
            return Err(StoreError::KeyInvalid {
                origin,
                reason: "the file is larger than 1 KiB",
            });
        }
        let text = std::str::from_utf8(&raw).map_err(|_| StoreError::KeyInvalid {
            origin: origin.clone(),
            reason: "the file is not text",
        })?;
        Self::parse(&origin, text)
    }

    /// Reads the key from an environment variable holding 64 hex characters
    /// or base64 of 32 bytes.
    pub fn from_env(var: &str) -> Result<Self, StoreError> {
        let origin = format!("environment variable {var}");
        match std::env::var(var) {
            Ok(value) => {
                let value = Zeroizing::new(value);
                Self::parse(&origin, &value)
            }
            Err(std::env::VarError::NotPresent) => Err(StoreError::KeyMissing {
                origin: format!("{origin} is not set"),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(StoreError::KeyInvalid {
                origin,
                reason: "the value is not valid text",
            }),
        }
    }

    /// Parses key text (64 hex characters, or base64 — standard or URL-safe,
    /// padded or not — of exactly 32 bytes). `origin` names the source for
    /// error messages; the text itself never appears in an error.
    pub fn parse(origin: &str, text: &str) -> Result<Self, StoreError> {
        let invalid = |reason| StoreError::KeyInvalid {
            origin: origin.to_owned(),
            reason,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        let key = init_key(|out| {
            if text.bytes().all(|b| b.is_ascii_hexdigit()) {
                // All hex digits: treat as hex, even though short strings
                // like this also happen to be valid base64.
                if text.len() != 2 * KEY_LEN {
                    return Err(invalid("it looks like hex but is not 64 characters long"));
                }
                for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
                    *slot = (hex_val(pair[0]) << 4) | hex_val(pair[1]);
                }
                return Ok(());
            }
            // Decode into a scratch buffer that is larger than any valid key
            // so an over-long input is detected, and zeroed afterwards.
            let mut scratch = Zeroizing::new([0u8; 2 * KEY_LEN]);
            let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode_slice(text, &mut scratch[..]).ok());
            match decoded {
                Some(KEY_LEN) => {
                    out.copy_from_slice(&scratch[..KEY_LEN]);
                    Ok(())
                }
                Some(n) if n < KEY_LEN => Err(invalid("it is shorter than 32 bytes")),
                Some(_) => Err(invalid("it is longer than 32 bytes")),
                None if text.len() < 43 => Err(invalid("it is too short")),
                None => Err(invalid("it is neither hex nor base64")),
            }
        })?;
        if key.expose_secret().iter().all(|&b| b == 0) {
            return Err(invalid("it is all zeros"));
        }
        Ok(Self::from_secret(key))
    }

    /// Makes a fresh random key (for tests and for a future
    /// `generate-key` command).
    pub fn generate() -> Result<Self, StoreError> {
        let key = init_key(|out| fill_random(out))?;
        Ok(Self::from_secret(key))
    }

    /// The key id: first 8 hex digits of SHA-256 over a fixed label and the
    /// key. Safe to show; it cannot be turned back into the key.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    fn from_secret(bytes: SecretBox<[u8; KEY_LEN]>) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(KEY_ID_LABEL);
        ctx.update(bytes.expose_secret());
        let id = to_hex(&ctx.finish().as_ref()[..4]);
        Self { bytes, id }
    }

    /// An HMAC-SHA256 key for one use of the bridge's, derived from this key with
    /// HKDF-SHA256 (RFC 5869): the same store key gives the same derived key in every
    /// process and after every restart, and a derived key (which may be held elsewhere)
    /// tells nothing about the store key or any other derived key. `purpose` names the use
    /// and what it is bound to (a connection's name), its parts separated by the caller.
    /// `None` only if HKDF refuses the length, which for one hash it never does.
    pub fn derive_hmac_key(&self, purpose: &[&[u8]]) -> Option<ring::hmac::Key> {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, DERIVE_SALT);
        let prk = salt.extract(self.bytes.expose_secret());
        let okm = prk.expand(purpose, ring::hmac::HMAC_SHA256).ok()?;
        Some(ring::hmac::Key::from(okm))
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, StoreError> {
        // The cipher copies the key and (with the `zeroize` feature) wipes
        // its copy on drop; it only lives for one seal/open.
        XChaCha20Poly1305::new_from_slice(self.bytes.expose_secret())
            .map_err(|_| StoreError::Crypto)
    }

    /// Seals `plaintext`, binding it to `aad` (see [`aad`]).
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let ciphertext = self
            .cipher()?
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Crypto)?;
        Ok(format!(
            "{SEALED_VERSION}:{}:{}:{}",
            self.id,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        ))
    }

    /// Opens a value made by [`StoreKey::seal`] with the same `aad`.
    pub(crate) fn open(&self, aad: &[u8], sealed: &str) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let mut parts = sealed.split(':');
        let (Some(version), Some(key_id), Some(nonce), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(OpenError::Malformed);
        };
        if version != SEALED_VERSION {
            return Err(OpenError::Malformed);
        }
        if key_id != self.id {
            return Err(OpenError::KeyMismatch {
                found: key_id.to_owned(),
            });
        }
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(OpenError::Malformed)?;
        let ciphertext = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| OpenError::Malformed)?;
        let cipher = self.cipher().map_err(|_| OpenError::Authentication)?;
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Authentication)
    }
}

impl Clone for StoreKey {
    fn clone(&self) -> Self {
        let bytes = SecretBox::init_with_mut(|out: &mut [u8; KEY_LEN]| {
            out.copy_from_slice(self.bytes.expose_secret());
        });
        Self {
            bytes,
            id: self.id.clone(),
        }
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKey")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why [`StoreKey::open`] failed; mapped to a [`StoreError`] by the caller,
/// which knows which row and field it was reading.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Not in the `v1:…` format.
    Malformed,
    /// Sealed under a key with another id.
    KeyMismatch {
        /// Key id found in the sealed value.
        found: String,
    },
    /// Right key id, but the tag does not verify (tampered or moved value).
    Authentication,
}

/// Builds associated data from parts, each length-prefixed so that
/// `("ab", "c")` and `("a", "bc")` can never collide.
pub(crate) fn aad(parts: &[&str]) -> Vec<u8> {
    let mut out = AAD_LABEL.to_vec();
    for part in parts {
        // Parts are ids and field names, far below 4 GiB; saturate rather
        // than panic if that assumption were ever broken.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Builds key bytes in place on the heap (never on the stack), so a failed
/// or finished construction leaves no copy behind: the box is zeroed on drop.
fn init_key(
    fill: impl FnOnce(&mut [u8; KEY_LEN]) -> Result<(), StoreError>,
) -> Result<SecretBox<[u8; KEY_LEN]>, StoreError> {
    let mut result = Ok(());
    let key = SecretBox::init_with_mut(|out: &mut [u8; KEY_LEN]| result = fill(out));
    result.map(|()| key)
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), StoreError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| StoreError::Random)
}

/// Lower-case hex encoding.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Value of one hex digit; callers check `is_ascii_hexdigit` first.
fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parses_hex_and_all_base64_flavours_to_the_same_key() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let from_hex = StoreKey::parse("test", &format!("  {HEX}\n")).unwrap();
        for text in [
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
            HEX.to_uppercase(),
        ] {
            let key = StoreKey::parse("test", &text).unwrap();
            assert_eq!(key.key_id(), from_hex.key_id(), "{text}");
            assert_eq!(key.bytes.expose_secret(), from_hex.bytes.expose_secret());
        }
    }

    #[test]
    fn rejects_bad_keys_with_clear_messages() {
        let cases = [
            ("", "empty"),
            ("   \n", "empty"),
            ("abcd", "not 64 characters"),
            (&HEX[..62], "not 64 characters"),
            (&format!("{HEX}00"), "not 64 characters"),
            ("xyz", "too short"),
            (&STANDARD.encode([7u8; 16]), "shorter than 32 bytes"),
            (&STANDARD.encode([7u8; 40]), "longer than 32 bytes"),
            (
                "this is definitely not a key, it is a sentence!!",
                "neither hex nor base64",
            ),
            (&"0".repeat(64), "all zeros"),
        ];
        for (text, reason) in cases {
            let err = StoreKey::parse("test source", text).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, StoreError::KeyInvalid { .. }),
                "{text:?}: {msg}"
            );
            assert!(msg.contains(reason), "{text:?}: {msg}");
            assert!(msg.contains("test source"), "{msg}");
            if text.len() > 8 {
                assert!(!msg.contains(text.trim()), "key text leaked: {msg}");
            }
        }
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.key");
        std::fs::write(&good, format!("{HEX}\n")).unwrap();
        assert!(StoreKey::from_file(&good).is_ok());

        let missing = StoreKey::from_file(&dir.path().join("nope.key")).unwrap_err();
        assert!(
            matches!(missing, StoreError::KeyMissing { .. }),
            "{missing}"
        );
        assert!(missing.to_string().contains("does not exist"));

        let garbage = dir.path().join("garbage.key");
        std::fs::write(&garbage, [0xffu8, 0xfe, 0x00, 0x12, 0x80]).unwrap();
        let err = StoreKey::from_file(&garbage).unwrap_err();
        assert!(matches!(err, StoreError::KeyInvalid { .. }), "{err}");

        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b'a'; 5000]).unwrap();
        let err = StoreKey::from_file(&big).unwrap_err();
        assert!(err.to_string().contains("larger than 1 KiB"), "{err}");

        let short = dir.path().join("short.key");
        std::fs::write(&short, "deadbeef").unwrap();
        let err = StoreKey::from_file(&short).unwrap_err();
        assert!(err.to_string().contains("not 64 characters"), "{err}");
        assert!(!err.to_string().contains("deadbeef"), "{err}");
    }

    #[test]
    fn key_from_environment() {
        let missing = StoreKey::from_env("STORMBRIDGE_TEST_SURELY_UNSET_STORE_KEY").unwrap_err();
        assert!(matches!(missing, StoreError::KeyMissing { .. }));
        assert!(missing.to_string().contains("is not set"), "{missing}");
        // PATH is always set and never a key: the garbage path, without
        // mutating the process environment from a multi-threaded test.
        let garbage = StoreKey::from_env("PATH").unwrap_err();
        assert!(
            matches!(garbage, StoreError::KeyInvalid { .. }),
            "{garbage}"
        );
    }

    #[test]
    fn seal_round_trip_and_binding() {
        let key = StoreKey::generate().unwrap();
        let aad1 = aad(&["s1", "credential", "slack:U1"]);
        let sealed = key.seal(&aad1, b"tok-123").unwrap();
        assert!(sealed.starts_with(&format!("v1:{}:", key.key_id())));
        assert!(!sealed.contains("tok-123"));
        assert_eq!(&key.open(&aad1, &sealed).unwrap()[..], b"tok-123");
        // Same plaintext, fresh nonce: different text.
        assert_ne!(sealed, key.seal(&aad1, b"tok-123").unwrap());
        // Moved to another row or user: authentication fails.
        let moved = aad(&["s1", "credential", "slack:U2"]);
        assert!(matches!(
            key.open(&moved, &sealed),
            Err(OpenError::Authentication)
        ));
        // Length prefixes keep part boundaries apart.
        assert_ne!(aad(&["ab", "c"]), aad(&["a", "bc"]));
        // Another key: recognised by its id, never decrypted.
        let other = StoreKey::generate().unwrap();
        assert!(matches!(
            other.open(&aad1, &sealed),
            Err(OpenError::KeyMismatch { .. })
        ));
        // Tampering.
        let mut tampered = sealed.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(key.open(&aad1, &tampered).is_err());
        assert!(matches!(
            key.open(&aad1, "v2:x:y:z"),
            Err(OpenError::Malformed)
        ));
        assert!(matches!(
            key.open(&aad1, "plaintext"),
            Err(OpenError::Malformed)
        ));
    }

    #[test]
    fn derived_keys_are_stable_per_key_and_purpose() {
        let sign = |key: &StoreKey, purpose: &[&[u8]]| {
            let k = key.derive_hmac_key(purpose).unwrap();
            ring::hmac::sign(&k, b"press").as_ref().to_vec()
        };
        let key = StoreKey::parse("t", HEX).unwrap();
        let again = StoreKey::parse("t", HEX).unwrap();
        let a: &[&[u8]] = &[b"buttons\0", b"mm"];
        // The same key (another process, after a restart) derives the same key.
        assert_eq!(sign(&key, a), sign(&again, a));
        // Another purpose or connection, or another store key: another key.
        assert_ne!(sign(&key, a), sign(&key, &[b"buttons\0", b"mm2"]));
        assert_ne!(sign(&key, a), sign(&StoreKey::generate().unwrap(), a));
    }

    #[test]
    fn debug_shows_only_the_key_id() {
        let key = StoreKey::parse("t", HEX).unwrap();
        let dbg = format!("{key:?} {:?}", key.clone());
        assert!(dbg.contains(key.key_id()));
        assert!(!dbg.contains("0a0b0c"), "{dbg}");
        assert!(!dbg.contains("[0, 1, 2"), "{dbg}");
    }
}
