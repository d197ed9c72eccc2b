//! Data types of the session store, shared by both backends.
//!
//! Secrets live only in [`StoredCredential::secret`] (a `SecretString`,
//! wiped on drop). Every type here has a `Debug` that prints no secret, so
//! sessions can be logged or put in error contexts safely.

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::pbkdf2;
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::crypto::{fill_random, to_hex};
use super::error::StoreError;

/// Session ids: 128 random bits as 32 hex digits. Not secret (admins see
/// them in `list` and pass them to `cancel`), and never usable to log in.
pub type SessionId = String;

/// A chat user across all connections: `<connection>:<user id>`, e.g.
/// `slack-main:U024BE7LH`. The connection name comes first so that user ids
/// that contain `:` (Matrix, XMPP) stay unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey(pub String);

impl UserKey {
    /// Builds the key from a connection name and the platform's user id.
    pub fn new(connection: &str, user_id: &str) -> Self {
        Self(format!("{connection}:{user_id}"))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// A login link was issued and not used yet.
    Pending,
    /// Credentials were validated and stored; commands run with them.
    Active,
}

impl SessionState {
    /// Stable name used in the database and in admin output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "active" => Some(Self::Active),
            _ => None,
        }
    }
}

/// Which st2 header the stored secret goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A user token (from username/password or pasted): `X-Auth-Token`.
    Token,
    /// An API key: `St2-Api-Key`.
    ApiKey,
}

impl CredentialKind {
    /// Stable name used in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::ApiKey => "api_key",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "token" => Some(Self::Token),
            "api_key" => Some(Self::ApiKey),
            _ => None,
        }
    }
}

/// A validated st2 credential of one chat user.
#[derive(Clone)]
pub struct StoredCredential {
    /// Token or API key.
    pub kind: CredentialKind,
    /// The token or API key itself. Sealed at rest in SQLite, wiped from
    /// memory on drop, redacted in `Debug`.
    pub secret: SecretString,
    /// The st2 user this credential authenticates as (from st2's answer).
    pub st2_user: String,
    /// When st2 stops accepting it (`expiry` of a token); `None` for API
    /// keys, which do not expire.
    pub expires_at: Option<DateTime<Utc>>,
}

impl StoredCredential {
    /// True if st2 would already reject it as expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

impl fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredential")
            .field("kind", &self.kind)
            .field("secret", &"[redacted]")
            .field("st2_user", &self.st2_user)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The unused login link of a pending session.
#[derive(Debug, Clone)]
pub struct PendingLink {
    /// SHA-256 (hex) of the link id. The id itself is only ever in the
    /// user's DM, so a database leak does not yield usable links.
    pub link_hash: String,
    /// After this the link is refused with `Expired`.
    pub expires_at: DateTime<Utc>,
    /// Salted hash of the shared word the user gave with `session_start`.
    pub word_hash: WordHash,
}

/// One chat user's session.
///
/// A user has at most one `Pending` and at most one `Active` session at a
/// time: a new `session_start` replaces the pending one but leaves the active
/// one alone until the new link is completed, at which point the new session
/// becomes active and the old active one is removed.
#[derive(Debug, Clone)]
pub struct Session {
    /// Random id (see [`SessionId`]).
    pub id: SessionId,
    /// Owner.
    pub user: UserKey,
    /// Pending or active.
    pub state: SessionState,
    /// When `session_start` created it.
    pub created_at: DateTime<Utc>,
    /// Active: when the session ends (activation time + `session_ttl`;
    /// absolute, use does not extend it). Pending: `created_at +
    /// session_ttl`, which only carries the TTL until activation re-dates it.
    pub expires_at: DateTime<Utc>,
    /// The login link, while pending.
    pub link: Option<PendingLink>,
    /// The st2 credential, once active.
    pub credential: Option<StoredCredential>,
    /// Attempts spent on the link (wrong words and credentials st2 refused).
    pub attempts: u32,
}

impl Session {
    /// When this session stops being useful: for a pending session the
    /// link's expiry, for an active one the earlier of the session's and the
    /// credential's expiry.
    pub fn effective_expiry(&self) -> DateTime<Utc> {
        effective_expiry(
            self.state,
            self.expires_at,
            self.link.as_ref().map(|l| l.expires_at),
            self.credential.as_ref().and_then(|c| c.expires_at),
        )
    }

    /// The secret-free view used by `list`.
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            id: self.id.clone(),
            user: self.user.clone(),
            state: self.state,
            created_at: self.created_at,
            expires_at: self.effective_expiry(),
        }
    }
}

/// [`Session::effective_expiry`] from bare fields (the SQLite backend lists
/// sessions without loading, let alone decrypting, whole rows).
pub(crate) fn effective_expiry(
    state: SessionState,
    expires_at: DateTime<Utc>,
    link_expires_at: Option<DateTime<Utc>>,
    cred_expires_at: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    match state {
        SessionState::Pending => link_expires_at.unwrap_or(expires_at),
        SessionState::Active => match cred_expires_at {
            Some(cred) if cred < expires_at => cred,
            _ => expires_at,
        },
    }
}

/// What `list` shows about a session: never a secret, hash or link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Session id (what `cancel` takes).
    pub id: SessionId,
    /// Owner.
    pub user: UserKey,
    /// Pending or active.
    pub state: SessionState,
    /// When `session_start` created it.
    pub created_at: DateTime<Utc>,
    /// See [`Session::effective_expiry`].
    pub expires_at: DateTime<Utc>,
}

/// PBKDF2 rounds for new word hashes. The word guards a short-lived,
/// unguessable link with an attempt limit, so the hash only has to resist
/// offline guessing for the link's lifetime; 100k rounds of HMAC-SHA-256
/// cost ~50 ms per login. Stored with each hash so it can be raised later.
const PBKDF2_ROUNDS: u32 = 100_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
const WORD_HASH_SCHEME: &str = "pbkdf2-sha256";

/// Salted PBKDF2-HMAC-SHA256 hash of the shared word.
///
/// 128-bit random salt (err-stackstorm used 8 hex characters, i.e. 32 bits),
/// verified in constant time with `ring::pbkdf2::verify`.
#[derive(Clone)]
pub struct WordHash {
    rounds: NonZeroU32,
    salt: [u8; SALT_LEN],
    hash: [u8; HASH_LEN],
}

impl WordHash {
    /// Hashes `word` with a fresh random salt.
    ///
    /// Fails only if the operating system's random number generator does.
    pub fn new(word: &str) -> Result<Self, StoreError> {
        let rounds = NonZeroU32::new(PBKDF2_ROUNDS).ok_or(StoreError::Crypto)?;
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let mut hash = [0u8; HASH_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &salt,
            word.as_bytes(),
            &mut hash,
        );
        Ok(Self { rounds, salt, hash })
    }

    /// True if `word` is the hashed word. Constant time in the word.
    pub fn verify(&self, word: &str) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.rounds,
            &self.salt,
            word.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }

    /// `pbkdf2-sha256$<rounds>$<salt b64>$<hash b64>`, as stored in SQLite.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{WORD_HASH_SCHEME}${}${}${}",
            self.rounds,
            STANDARD_NO_PAD.encode(self.salt),
            STANDARD_NO_PAD.encode(self.hash)
        )
    }

    /// Inverse of [`WordHash::encode`]; `None` for anything malformed.
    pub(crate) fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('$');
        let (Some(WORD_HASH_SCHEME), Some(rounds), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(Self {
            rounds: rounds.parse().ok()?,
            salt: STANDARD_NO_PAD.decode(salt).ok()?.try_into().ok()?,
            hash: STANDARD_NO_PAD.decode(hash).ok()?.try_into().ok()?,
        })
    }
}

impl fmt::Debug for WordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not the word, but it is what an offline guesser
        // needs, so it stays out of logs too.
        f.debug_struct("WordHash")
            .field("scheme", &WORD_HASH_SCHEME)
            .field("rounds", &self.rounds)
            .finish_non_exhaustive()
    }
}

/// Bytes of randomness in a link id: 192 bits, well above the 128 needed to
/// be unguessable, and a multiple of 3 so base64 has no padding.
const LINK_ID_BYTES: usize = 24;

/// A fresh login link id: 192 random bits, base64url without padding (32
/// characters), safe in a URL path. Returned as a secret because whoever
/// holds it can attempt the login.
///
/// Fails only if the operating system's random number generator does.
pub fn new_link_id() -> Result<SecretString, StoreError> {
    let mut raw = Zeroizing::new([0u8; LINK_ID_BYTES]);
    fill_random(&mut raw[..])?;
    let mut text = Zeroizing::new([0u8; LINK_ID_BYTES * 4 / 3]);
    let len = URL_SAFE_NO_PAD
        .encode_slice(&raw[..], &mut text[..])
        .map_err(|_| StoreError::Crypto)?;
    let id = std::str::from_utf8(&text[..len]).map_err(|_| StoreError::Crypto)?;
    // `From<&str>` allocates exactly once at the right size; the stack
    // buffers above are wiped on drop.
    Ok(SecretString::from(id))
}

/// SHA-256 of a link id, lower-case hex. This is what the store keeps and
/// looks links up by.
pub fn link_hash(id: &str) -> String {
    to_hex(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()).as_ref())
}

/// A fresh random session id (see [`SessionId`]).
pub(crate) fn new_session_id() -> Result<SessionId, StoreError> {
    let mut raw = [0u8; 16];
    fill_random(&mut raw)?;
    Ok(to_hex(&raw))
}

/// Proof that a link was presented with the right shared word, held by the
/// web handler while it validates the credentials with st2. Pass it to
/// `complete_link` on success or `release_claim` on failure; it cannot be
/// copied or forged (private fields), and it is only valid in this process.
#[derive(Debug)]
pub struct LinkClaim {
    pub(crate) user: UserKey,
    pub(crate) session_id: SessionId,
    pub(crate) link_hash: String,
    pub(crate) claim_no: u64,
}

impl LinkClaim {
    /// The chat user the link belongs to.
    pub fn user(&self) -> &UserKey {
        &self.user
    }

    /// The pending session the link belongs to.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn word_hash_verifies_and_round_trips() {
        let h = WordHash::new("correct horse").unwrap();
        assert!(h.verify("correct horse"));
        assert!(!h.verify("correct hors"));
        assert!(!h.verify(""));
        let again = WordHash::decode(&h.encode()).unwrap();
        assert!(again.verify("correct horse"));
        assert!(!again.verify("wrong"));
        // Fresh salt each time.
        assert_ne!(h.encode(), WordHash::new("correct horse").unwrap().encode());
        assert!(WordHash::decode("sha256$1$aa$bb").is_none());
        assert!(WordHash::decode("pbkdf2-sha256$0$AAAAAAAAAAAAAAAAAAAAAA$x").is_none());
        let dbg = format!("{h:?}");
        assert!(!dbg.contains(&STANDARD_NO_PAD.encode(h.hash)), "{dbg}");
    }

    #[test]
    fn link_ids_are_random_url_safe_and_hashed() {
        let a = new_link_id().unwrap();
        let b = new_link_id().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 32);
        assert!(a
            .expose_secret()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let h = link_hash(a.expose_secret());
        assert_eq!(h.len(), 64);
        assert_ne!(h, link_hash(b.expose_secret()));
        assert_eq!(
            link_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(new_session_id().unwrap().len(), 32);
    }

    #[test]
    fn credential_debug_is_redacted() {
        let c = StoredCredential {
            kind: CredentialKind::Token,
            secret: SecretString::from("s3cr3t-token"),
            st2_user: "alice".into(),
            expires_at: None,
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("alice"));
    }
}
