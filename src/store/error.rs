//! Error types of the session store.
//!
//! Every message here is shown to operators (start-up errors) or, for
//! [`LinkError`], turned into a reply on the login page. None of them may
//! carry a secret: no token, API key, store key, shared word or link id is
//! ever interpolated, only paths, session ids (which are not secrets: admins
//! see them in `list`) and fixed reasons.

use std::path::PathBuf;

/// Everything that can go wrong in the store itself (configuration, key,
/// database, crypto). See the module docs for the no-secrets rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store key is not configured where the operator said it would be
    /// (for example the environment variable is unset).
    #[error("store key is missing: {origin}")]
    KeyMissing {
        /// Where the key was looked for, e.g. `environment variable STORMBRIDGE_STORE_KEY`.
        origin: String,
    },

    /// The key file exists in the configuration but cannot be read.
    #[error("cannot read store key file {}: {error}", path.display())]
    KeyUnreadable {
        /// The key file.
        path: PathBuf,
        /// Why reading failed (the I/O error says nothing about the content).
        error: std::io::Error,
    },

    /// The key material is present but unusable (wrong length, not hex or
    /// base64, all zeros).
    #[error(
        "store key from {origin} is invalid: {reason}; expected 64 hex characters \
         or the base64 encoding of 32 random bytes (e.g. `openssl rand -hex 32`)"
    )]
    KeyInvalid {
        /// Where the key came from.
        origin: String,
        /// Which check failed; a fixed text, never the key material.
        reason: &'static str,
    },

    /// The database was created with another key. Refusing to open it is
    /// the only safe choice: decrypting with the wrong key yields nothing,
    /// and silently starting over would look like random log-outs.
    #[error(
        "the store key does not match the database {}: it was created with a different key \
         (database key id {expected}, configured key id {given}); supply the original key, \
         or move the database aside to start with an empty store",
        path.display()
    )]
    WrongKey {
        /// The database file.
        path: PathBuf,
        /// Key id recorded in the database (a short, one-way fingerprint).
        expected: String,
        /// Key id of the configured key.
        given: String,
    },

    /// The database was written by a newer stormbridge; we must not guess
    /// at its schema.
    #[error(
        "the session database {} has schema version {found}, but this stormbridge only \
         knows versions up to {supported}; upgrade stormbridge or use another file",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// Highest version this build understands.
        supported: i64,
    },

    /// The file is not a stormbridge session store (not SQLite at all, or
    /// another application's database).
    #[error("{} is not a stormbridge session database: {reason}", path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: &'static str,
    },

    /// File-system error around the database file.
    #[error("cannot create or access the session database {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },

    /// Error reported by SQLite. rusqlite messages hold SQL with
    /// placeholders, never bound values, so no secret can leak through here.
    #[error("session database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// Error talking to Redis (connecting, authenticating, a command). redis-rs messages
    /// name commands and server replies, never argument values or the password.
    #[error("redis store error: {what}")]
    Redis {
        /// What failed.
        what: String,
    },

    /// Redis could not be reached: the connection was refused, timed out, dropped or its
    /// name did not resolve. Unlike [`StoreError::Redis`] (refused credentials, a failed
    /// command), trying again later may succeed.
    #[error("redis store error: {what}")]
    RedisUnreachable {
        /// What failed.
        what: String,
    },

    /// The Redis key prefix was first used with another store key (see
    /// [`StoreError::WrongKey`]).
    #[error(
        "the store key does not match the Redis store at {place} (prefix {prefix:?}): it was \
         first used with a different key (stored key id {expected}, configured key id \
         {given}); supply the original key, or use another prefix to start with an empty store"
    )]
    RedisWrongKey {
        /// `host:port` of the server.
        place: String,
        /// The key prefix.
        prefix: String,
        /// Key id recorded in Redis.
        expected: String,
        /// Key id of the configured key.
        given: String,
    },

    /// A stored row does not have the expected shape.
    #[error("session database content is invalid: {what}")]
    Corrupt {
        /// Which value was wrong (a description, not the value).
        what: String,
    },

    /// A sealed value failed authentication: it was altered, moved to
    /// another row, or sealed with another key.
    #[error("cannot decrypt the {field} of session {session_id}: authentication failed")]
    Decrypt {
        /// The session the value belongs to.
        session_id: String,
        /// Which field.
        field: &'static str,
    },

    /// The operating system's random number generator failed. Nothing
    /// sensible can be done without randomness, so this is reported rather
    /// than papered over.
    #[error("the system random number generator failed")]
    Random,

    /// Encryption itself failed (only possible for absurdly large inputs).
    #[error("encrypting a session secret failed")]
    Crypto,

    /// The caller passed an unusable argument.
    #[error("invalid argument: {what}")]
    InvalidInput {
        /// Which argument and why.
        what: &'static str,
    },

    /// A user already has as many of something as they may keep (personal aliases,
    /// trigger tokens).
    #[error("the limit of {limit} {what} is reached")]
    LimitReached {
        /// What is limited, e.g. `personal aliases per user`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },

    /// `complete_link` got a claim that is no longer valid.
    #[error(
        "the login claim is no longer valid (it timed out, a newer link replaced it, \
         or the session was ended); start a new session"
    )]
    StaleClaim,
}

/// Why a login link cannot be used. The web handler maps these to replies;
/// none of them deletes or changes an existing active session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// No such link (never existed, replaced by a newer one, cancelled, or
    /// purged long after it expired).
    #[error("unknown login link")]
    Unknown,
    /// The link's lifetime is over.
    #[error("this login link has expired; start a new session")]
    Expired,
    /// The link was already used for a successful login (single use).
    #[error("this login link has already been used; start a new session")]
    Used,
    /// The shared word did not match; the attempt was counted.
    #[error("wrong shared word ({attempts_left} attempts left)")]
    WrongWord {
        /// Attempts still allowed on this link.
        attempts_left: u32,
    },
    /// The attempt budget of this link is spent.
    #[error("too many failed attempts with this login link; start a new session")]
    TooManyAttempts,
    /// Another login with this link is being validated right now (or raced
    /// this one); the attempt was not charged.
    #[error("a login with this link is already in progress")]
    Busy,
    /// The store failed underneath.
    #[error(transparent)]
    Store(#[from] StoreError),
}
