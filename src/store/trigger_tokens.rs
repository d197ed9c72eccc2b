//! Tokens of the trigger API: an alerting system presents one to `POST /api/v1/trigger`
//! to run one fixed chat command as the token's user, in the token's room.
//!
//! # Tokens and what is kept of them
//!
//! A token reads `sbt_<id>_<secret>`: `<id>` is a short public id (8 random characters
//! of lowercase base32) that users and admins see in lists and revoke by; `<secret>` is
//! 32 random bytes from the operating system (`ring::rand::SystemRandom`) in base64url,
//! 43 characters. [`TriggerTokenStore::create`] returns the whole token once, as a
//! `SecretString`; the store keeps only the SHA-256 of it. A salted, slow hash (as for
//! the shared word of a login) is not needed: the token carries 256 bits of entropy, so
//! nobody can guess one that hashes to a stored value, whatever the hash speed.
//!
//! [`TriggerTokenStore::verify`] looks the token up by its id and compares hashes in
//! constant time (through HMACs: `ring::constant_time` is deprecated); the id is no
//! secret, so looking it up leaks nothing. A user keeps at most [`MAX_TOKENS_PER_USER`]
//! tokens.
//!
//! # Revoked tokens
//!
//! A revoked token stays as a tombstone: it no longer works, counts toward no limit and
//! appears in no list, but a token presented later is told apart as
//! [`TokenRejected::Revoked`] (an alerting system nobody reconfigured) from a token
//! never issued. Its id is never handed out again.
//!
//! The command may carry a secret its user typed: the SQLite backend seals it with the
//! store key (bound to the token id and user), and `Debug` output leaves it out. No
//! `Debug` or error message ever shows a token's secret or hash.
//!
//! Calls block (SQLite I/O); run them off the async executor.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::{digest, hmac, rand::SystemRandom};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::{
    crypto::fill_random, error::StoreError, model::UserKey, place::Place, redis::RedisBackend,
    sqlite::SqliteBackend,
};
use crate::domain::message::RoomKind;

/// Most (unrevoked) trigger tokens one user keeps.
pub const MAX_TOKENS_PER_USER: usize = 20;

/// How every token starts.
pub const TOKEN_PREFIX: &str = "sbt_";

/// Characters of a token id (5 random bytes in base32).
pub const TOKEN_ID_CHARS: usize = 8;

const ID_BYTES: usize = 5;
const SECRET_BYTES: usize = 32;
/// 32 bytes in base64url without padding.
const SECRET_CHARS: usize = 43;
/// `sbt_` + id + `_` + secret.
const TOKEN_CHARS: usize = TOKEN_PREFIX.len() + TOKEN_ID_CHARS + 1 + SECRET_CHARS;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Fresh ids tried before giving up (a clash among 2^40 ids is already unlikely).
const ID_ATTEMPTS: usize = 8;

/// SHA-256 of a whole token: all the store keeps of it.
type TokenHash = [u8; 32];

/// One trigger token as stored (never its secret).
#[derive(Clone, PartialEq, Eq)]
pub struct TriggerToken {
    /// The public id (8 characters of lowercase base32).
    pub id: String,
    /// Whose command runs.
    pub user: UserKey,
    /// Their display name.
    pub user_name: String,
    /// The chat connection the command runs on.
    pub connection: String,
    /// The room the command runs in.
    pub room_id: String,
    /// The room's display name, when known.
    pub room_name: Option<String>,
    /// Direct message or group room.
    pub room_kind: RoomKind,
    /// The thread to answer in.
    pub thread: Option<String>,
    /// The organisation (workspace, team, tenant) the token was created in, for access
    /// rules scoped by `orgs`; `None` on platforms without one and for tokens created
    /// before it was kept.
    pub org: Option<String>,
    /// The chat command it runs.
    pub command: String,
    /// Who created it (the user, or an admin for them).
    pub created_by: UserKey,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last accepted.
    pub last_used_at: Option<DateTime<Utc>>,
    /// How often it was accepted.
    pub uses: u64,
}

impl fmt::Debug for TriggerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriggerToken")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("connection", &self.connection)
            .field("room_id", &self.room_id)
            .field("room_kind", &self.room_kind)
            .field("thread", &self.thread)
            .field("org", &self.org)
            .field(
                "command",
                &format_args!("[{} chars]", self.command.chars().count()),
            )
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("uses", &self.uses)
            .finish_non_exhaustive()
    }
}

/// A token to create: who runs what, where.
#[derive(Clone, PartialEq, Eq)]
pub struct NewTriggerToken {
    /// Whose command runs.
    pub user: UserKey,
    /// Their display name.
    pub user_name: String,
    /// The chat connection the command runs on.
    pub connection: String,
    /// The room the command runs in.
    pub room_id: String,
    /// The room's display name, when known.
    pub room_name: Option<String>,
    /// Direct message or group room.
    pub room_kind: RoomKind,
    /// The thread to answer in.
    pub thread: Option<String>,
    /// The organisation of the message that creates it.
    pub org: Option<String>,
    /// The chat command it runs (not empty).
    pub command: String,
    /// Who creates it.
    pub created_by: UserKey,
}

impl fmt::Debug for NewTriggerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewTriggerToken")
            .field("user", &self.user)
            .field("room_id", &self.room_id)
            .field(
                "command",
                &format_args!("[{} chars]", self.command.chars().count()),
            )
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

/// Why [`TriggerTokenStore::verify`] turned a presented token down. Only ids appear in
/// the messages (they are public); never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRejected {
    /// Not shaped like a stormbridge trigger token.
    #[error("not a stormbridge trigger token")]
    Malformed,
    /// No token has this id.
    #[error("no trigger token has the id {id}")]
    Unknown {
        /// The id presented.
        id: String,
    },
    /// The id exists but the secret is not its secret.
    #[error("wrong secret for trigger token {id}")]
    WrongSecret {
        /// The id presented.
        id: String,
    },
    /// A genuine token that was revoked.
    #[error("trigger token {id} was revoked")]
    Revoked {
        /// The token's id.
        id: String,
    },
    /// The store failed underneath.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where trigger tokens are kept; cheap to clone, clones share the same tokens.
#[derive(Clone)]
pub struct TriggerTokenStore {
    backend: Backend,
}

type Backend = Place<HashMap<String, Stored>>;

/// A token with what only the store sees.
#[derive(Clone)]
struct Stored {
    token: TriggerToken,
    hash: TokenHash,
    revoked: bool,
}

impl fmt::Debug for TriggerTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.backend.debug("TriggerTokenStore", f)
    }
}

impl TriggerTokenStore {
    /// A store in this process's memory.
    pub fn memory() -> Self {
        Self {
            backend: Place::memory(),
        }
    }

    pub(super) fn sqlite(db: Arc<SqliteBackend>) -> Self {
        Self {
            backend: Place::Sqlite(db),
        }
    }

    pub(super) fn redis(db: Arc<RedisBackend>) -> Self {
        Self {
            backend: Place::Redis(db),
        }
    }

    /// Whether tokens survive a restart.
    pub fn is_persistent(&self) -> bool {
        self.backend.is_persistent()
    }

    /// Creates a token at `now`; returns it and its whole text, which is shown once and
    /// kept nowhere. Refuses an empty command ([`StoreError::InvalidInput`]) and a token
    /// past [`MAX_TOKENS_PER_USER`] ([`StoreError::LimitReached`]).
    pub fn create(
        &self,
        new: NewTriggerToken,
        now: DateTime<Utc>,
    ) -> Result<(TriggerToken, SecretString), StoreError> {
        if new.command.trim().is_empty() {
            return Err(StoreError::InvalidInput {
                what: "the trigger command is empty",
            });
        }
        let mut token = TriggerToken {
            id: String::new(),
            user: new.user,
            user_name: new.user_name,
            connection: new.connection,
            room_id: new.room_id,
            room_name: new.room_name,
            room_kind: new.room_kind,
            thread: new.thread,
            org: new.org,
            command: new.command,
            created_by: new.created_by,
            created_at: now,
            last_used_at: None,
            uses: 0,
        };
        for _ in 0..ID_ATTEMPTS {
            token.id = new_id()?;
            let secret = new_token_text(&token.id)?;
            let hash = hash_of(&secret);
            let inserted = match &self.backend {
                Backend::Memory(m) => memory_insert(&mut m.lock(), &token, hash)?,
                Backend::Sqlite(db) => sqlite::insert(db, &token, &hash)?,
                Backend::Redis(db) => in_redis::insert(db, &token, &hash)?,
            };
            if inserted {
                return Ok((token, SecretString::from(secret.as_str())));
            }
        }
        Err(StoreError::Random)
    }

    /// Accepts a presented token if it is one of ours and not revoked, recording the use
    /// at `now`; returns the token as updated.
    pub fn verify(
        &self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<TriggerToken, TokenRejected> {
        let id = token_id(presented).ok_or(TokenRejected::Malformed)?;
        let found = match &self.backend {
            Backend::Memory(m) => m.lock().get(id).cloned(),
            Backend::Sqlite(db) => sqlite::lookup(db, id)?,
            Backend::Redis(db) => in_redis::lookup(db, id)?,
        };
        let Some(stored) = found else {
            return Err(TokenRejected::Unknown { id: id.to_owned() });
        };
        if !same_hash(&hash_of(presented), &stored.hash)? {
            return Err(TokenRejected::WrongSecret { id: id.to_owned() });
        }
        let revoked = || TokenRejected::Revoked { id: id.to_owned() };
        if stored.revoked {
            return Err(revoked());
        }
        let used = match &self.backend {
            Backend::Memory(m) => m.lock().get_mut(id).filter(|s| !s.revoked).map(|s| {
                s.token.uses = s.token.uses.saturating_add(1);
                s.token.last_used_at = Some(now);
                s.token.clone()
            }),
            // `lookup` opened the sealed command already; only the counters change.
            Backend::Sqlite(db) => sqlite::mark_used(db, id, now)?.then(|| TriggerToken {
                uses: stored.token.uses.saturating_add(1),
                last_used_at: Some(now),
                ..stored.token
            }),
            Backend::Redis(db) => in_redis::mark_used(db, id, now)?,
        };
        // Revoked between the look-up and now.
        used.ok_or_else(revoked)
    }

    /// `user`'s tokens, oldest first.
    pub fn list(&self, user: &UserKey) -> Result<Vec<TriggerToken>, StoreError> {
        self.listed(Some(user))
    }

    /// Every user's tokens (for admins), by user, then oldest first.
    pub fn list_all(&self) -> Result<Vec<TriggerToken>, StoreError> {
        self.listed(None)
    }

    fn listed(&self, user: Option<&UserKey>) -> Result<Vec<TriggerToken>, StoreError> {
        let mut tokens = match &self.backend {
            Backend::Memory(m) => m
                .lock()
                .values()
                .filter(|s| !s.revoked && user.is_none_or(|u| s.token.user == *u))
                .map(|s| s.token.clone())
                .collect(),
            Backend::Sqlite(db) => sqlite::list(db, user)?,
            Backend::Redis(db) => in_redis::list(db, user)?,
        };
        tokens.sort_by(|a, b| (&a.user, a.created_at, &a.id).cmp(&(&b.user, b.created_at, &b.id)));
        Ok(tokens)
    }

    /// Revokes a token; returns it, or `None` if no unrevoked token has this id.
    pub fn revoke(&self, id: &str, now: DateTime<Utc>) -> Result<Option<TriggerToken>, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().get_mut(id).filter(|s| !s.revoked).map(|s| {
                s.revoked = true;
                s.token.clone()
            })),
            Backend::Sqlite(db) => sqlite::revoke(db, id, now),
            Backend::Redis(db) => in_redis::revoke(db, id, now),
        }
    }
}

/// Adds a token unless its id is taken (then `false`: draw another), within the user's
/// limit.
fn memory_insert(
    all: &mut HashMap<String, Stored>,
    token: &TriggerToken,
    hash: TokenHash,
) -> Result<bool, StoreError> {
    if all.contains_key(&token.id) {
        return Ok(false);
    }
    let held = all
        .values()
        .filter(|s| !s.revoked && s.token.user == token.user)
        .count();
    if held >= MAX_TOKENS_PER_USER {
        return Err(too_many());
    }
    all.insert(
        token.id.clone(),
        Stored {
            token: token.clone(),
            hash,
            revoked: false,
        },
    );
    Ok(true)
}

fn too_many() -> StoreError {
    StoreError::LimitReached {
        what: "trigger tokens per user",
        limit: MAX_TOKENS_PER_USER,
    }
}

/// A fresh random token id.
fn new_id() -> Result<String, StoreError> {
    let mut raw = [0u8; ID_BYTES];
    fill_random(&mut raw)?;
    // 40 bits, five at a time, most significant first.
    let bits = raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Ok((0..TOKEN_ID_CHARS)
        .rev()
        .map(|i| char::from(BASE32[((bits >> (5 * i)) & 31) as usize]))
        .collect())
}

/// `sbt_<id>_<secret>` with a fresh secret, in a buffer wiped on drop.
fn new_token_text(id: &str) -> Result<Zeroizing<String>, StoreError> {
    let mut secret = Zeroizing::new([0u8; SECRET_BYTES]);
    fill_random(&mut secret[..])?;
    let mut text = Zeroizing::new(String::with_capacity(TOKEN_CHARS));
    text.push_str(TOKEN_PREFIX);
    text.push_str(id);
    text.push('_');
    URL_SAFE_NO_PAD.encode_string(&secret[..], &mut text);
    Ok(text)
}

/// The id of a presented token, if it has a token's shape.
fn token_id(presented: &str) -> Option<&str> {
    let bytes = presented.as_bytes();
    if bytes.len() != TOKEN_CHARS || !presented.starts_with(TOKEN_PREFIX) {
        return None;
    }
    let id_end = TOKEN_PREFIX.len() + TOKEN_ID_CHARS;
    let id = &bytes[TOKEN_PREFIX.len()..id_end];
    let secret = &bytes[id_end + 1..];
    let shaped = id.iter().all(|b| BASE32.contains(b))
        && bytes[id_end] == b'_'
        && secret
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    // All ASCII by now, so the slice is on char boundaries.
    shaped.then(|| &presented[TOKEN_PREFIX.len()..id_end])
}

fn hash_of(token: &str) -> TokenHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Compares two token hashes in constant time.
///
/// `ring::constant_time` is deprecated ("no promises regarding side channels"), so this
/// compares HMACs of both under a fresh random key with `ring::hmac::verify`, which is
/// constant-time and supported. Even a comparison that leaked timing would only leak
/// about HMAC values an attacker cannot predict, not about the stored hash.
fn same_hash(presented: &TokenHash, stored: &TokenHash) -> Result<bool, StoreError> {
    let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
        .map_err(|_| StoreError::Random)?;
    let tag = hmac::sign(&key, presented);
    Ok(hmac::verify(&key, stored, tag.as_ref()).is_ok())
}

/// The SQLite backend: table `trigger_tokens`, the command sealed.
mod sqlite {
    use rusqlite::{params, OptionalExtension, Row};

    use super::super::jobs::parse_room_kind;
    use super::super::sqlite::{from_ms, ms};
    use super::*;

    const TOKEN_COLUMNS: &str = "id, user_key, user_name, connection, room_id, room_name, \
         room_kind, thread, command, created_by, created_at, last_used_at, uses, hash, \
         revoked_at IS NOT NULL, org";

    /// Binds a sealed command to its token and user.
    fn aad_parts<'a>(id: &'a str, user: &'a UserKey) -> [&'a str; 3] {
        ["trigger_token", id, user.as_str()]
    }

    pub(super) fn insert(
        db: &SqliteBackend,
        token: &TriggerToken,
        hash: &TokenHash,
    ) -> Result<bool, StoreError> {
        let sealed = db.seal_text(&aad_parts(&token.id, &token.user), &token.command)?;
        db.write(|tx| {
            let taken = tx
                .query_row(
                    "SELECT 1 FROM trigger_tokens WHERE id = ?1",
                    params![token.id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if taken {
                return Ok(false);
            }
            let held: i64 = tx.query_row(
                "SELECT count(*) FROM trigger_tokens WHERE user_key = ?1 AND revoked_at IS NULL",
                params![token.user.as_str()],
                |r| r.get(0),
            )?;
            if usize::try_from(held).unwrap_or(usize::MAX) >= MAX_TOKENS_PER_USER {
                return Err(too_many());
            }
            tx.execute(
                "INSERT INTO trigger_tokens (id, hash, user_key, user_name, connection, room_id, \
             room_name, room_kind, thread, command, created_by, created_at, uses, org) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13)",
                params![
                    token.id,
                    &hash[..],
                    token.user.as_str(),
                    token.user_name,
                    token.connection,
                    token.room_id,
                    token.room_name,
                    token.room_kind.as_str(),
                    token.thread,
                    sealed,
                    token.created_by.as_str(),
                    ms(token.created_at),
                    token.org,
                ],
            )?;
            Ok(true)
        })
    }

    pub(super) fn lookup(db: &SqliteBackend, id: &str) -> Result<Option<Stored>, StoreError> {
        let raw = db
            .conn
            .lock()
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM trigger_tokens WHERE id = ?1"),
                params![id],
                RawToken::from_row,
            )
            .optional()?;
        raw.map(|r| r.into_stored(db)).transpose()
    }

    /// Counts one use of an unrevoked token; `false` if it is revoked or gone.
    pub(super) fn mark_used(
        db: &SqliteBackend,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        db.write(|tx| {
            let n = tx.execute(
                "UPDATE trigger_tokens SET uses = uses + 1, last_used_at = ?2 \
                 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, ms(now)],
            )?;
            Ok(n > 0)
        })
    }

    pub(super) fn list(
        db: &SqliteBackend,
        user: Option<&UserKey>,
    ) -> Result<Vec<TriggerToken>, StoreError> {
        let raws: Vec<RawToken> = {
            let conn = db.conn.lock();
            let mut stmt = conn.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM trigger_tokens \
                 WHERE revoked_at IS NULL AND (?1 IS NULL OR user_key = ?1)"
            ))?;
            let rows = stmt.query_map(params![user.map(UserKey::as_str)], RawToken::from_row)?;
            rows.collect::<Result<_, _>>()?
        };
        // Open the commands after releasing the connection.
        raws.into_iter()
            .map(|r| r.into_stored(db).map(|s| s.token))
            .collect()
    }

    pub(super) fn revoke(
        db: &SqliteBackend,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TriggerToken>, StoreError> {
        let raw = db.write(|tx| {
            let raw = tx
                .query_row(
                    &format!(
                        "SELECT {TOKEN_COLUMNS} FROM trigger_tokens \
                         WHERE id = ?1 AND revoked_at IS NULL"
                    ),
                    params![id],
                    RawToken::from_row,
                )
                .optional()?;
            if raw.is_some() {
                tx.execute(
                    "UPDATE trigger_tokens SET revoked_at = ?2 WHERE id = ?1",
                    params![id, ms(now)],
                )?;
            }
            Ok(raw)
        })?;
        raw.map(|r| r.into_stored(db).map(|s| s.token)).transpose()
    }

    /// One `trigger_tokens` row as stored (the command still sealed).
    struct RawToken {
        id: String,
        user_key: String,
        user_name: String,
        connection: String,
        room_id: String,
        room_name: Option<String>,
        room_kind: String,
        thread: Option<String>,
        sealed_command: String,
        created_by: String,
        created_at: i64,
        last_used_at: Option<i64>,
        uses: i64,
        hash: Vec<u8>,
        revoked: bool,
        org: Option<String>,
    }

    impl RawToken {
        /// Reads the columns in [`TOKEN_COLUMNS`] order.
        fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
            Ok(Self {
                id: r.get(0)?,
                user_key: r.get(1)?,
                user_name: r.get(2)?,
                connection: r.get(3)?,
                room_id: r.get(4)?,
                room_name: r.get(5)?,
                room_kind: r.get(6)?,
                thread: r.get(7)?,
                sealed_command: r.get(8)?,
                created_by: r.get(9)?,
                created_at: r.get(10)?,
                last_used_at: r.get(11)?,
                uses: r.get(12)?,
                hash: r.get(13)?,
                revoked: r.get(14)?,
                org: r.get(15)?,
            })
        }

        fn into_stored(self, db: &SqliteBackend) -> Result<Stored, StoreError> {
            let id = self.id;
            let corrupt = |what: &str| StoreError::Corrupt {
                what: format!("trigger token {id}: {what}"),
            };
            let user = UserKey(self.user_key);
            let command = db.open_text(&aad_parts(&id, &user), &self.sealed_command, || {
                format!("the command of trigger token {id}")
            })?;
            let hash: TokenHash = self
                .hash
                .try_into()
                .map_err(|_| corrupt("the hash is not 32 bytes"))?;
            Ok(Stored {
                token: TriggerToken {
                    room_kind: parse_room_kind(&self.room_kind)
                        .ok_or_else(|| corrupt("unknown room kind"))?,
                    uses: u64::try_from(self.uses).map_err(|_| corrupt("negative use count"))?,
                    id,
                    user,
                    user_name: self.user_name,
                    connection: self.connection,
                    room_id: self.room_id,
                    room_name: self.room_name,
                    thread: self.thread,
                    org: self.org,
                    command,
                    created_by: UserKey(self.created_by),
                    created_at: from_ms(self.created_at, "created_at")?,
                    last_used_at: self
                        .last_used_at
                        .map(|t| from_ms(t, "last_used_at"))
                        .transpose()?,
                },
                hash,
                revoked: self.revoked,
            })
        }
    }
}

/// The Redis backend. Keys, after the prefix: `trigger_token:<id>` the token as JSON (the
/// command sealed as in SQLite, the hash in hex, a revoked one kept as a tombstone);
/// `trigger_tokens:all` and `trigger_tokens:user:<user>` sets of unrevoked ids.
mod in_redis {
    use ::redis::Connection;
    use serde::{Deserialize, Serialize};

    use super::super::crypto::to_hex;
    use super::super::jobs::parse_room_kind;
    use super::super::redis::{get_json, to_json, Fail, RedisBackend};
    use super::super::sqlite::{from_ms, ms};
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Raw {
        id: String,
        hash: String,
        user: String,
        user_name: String,
        connection: String,
        room_id: String,
        room_name: Option<String>,
        room_kind: String,
        thread: Option<String>,
        sealed_command: String,
        created_by: String,
        created_at: i64,
        last_used_at: Option<i64>,
        uses: u64,
        revoked_at: Option<i64>,
        // Absent from tokens created before it was kept.
        #[serde(default)]
        org: Option<String>,
    }

    /// The same binding as SQLite's.
    fn aad_parts<'a>(id: &'a str, user: &'a UserKey) -> [&'a str; 3] {
        ["trigger_token", id, user.as_str()]
    }

    fn token_key(db: &RedisBackend, id: &str) -> String {
        db.key_of(&format!("trigger_token:{id}"))
    }

    fn user_set(db: &RedisBackend, user: &UserKey) -> String {
        db.key_of(&format!("trigger_tokens:user:{}", user.as_str()))
    }

    fn read(db: &RedisBackend, con: &mut Connection, id: &str) -> Result<Option<Raw>, Fail> {
        get_json(con, &token_key(db, id), || format!("trigger token {id}"))
    }

    pub(super) fn insert(
        db: &RedisBackend,
        token: &TriggerToken,
        hash: &TokenHash,
    ) -> Result<bool, StoreError> {
        let raw = Raw {
            id: token.id.clone(),
            hash: to_hex(hash),
            user: token.user.as_str().to_owned(),
            user_name: token.user_name.clone(),
            connection: token.connection.clone(),
            room_id: token.room_id.clone(),
            room_name: token.room_name.clone(),
            room_kind: token.room_kind.as_str().to_owned(),
            thread: token.thread.clone(),
            sealed_command: db.seal_text(&aad_parts(&token.id, &token.user), &token.command)?,
            created_by: token.created_by.as_str().to_owned(),
            created_at: ms(token.created_at),
            last_used_at: None,
            uses: 0,
            revoked_at: None,
            org: token.org.clone(),
        };
        let value = to_json(&raw)?;
        let key = token_key(db, &token.id);
        let mine = user_set(db, &token.user);
        db.atomically(&[key.clone(), mine.clone()], |con, pipe| {
            let taken: bool = ::redis::cmd("EXISTS").arg(&key).query(con)?;
            if taken {
                return Ok(false);
            }
            let held: usize = ::redis::cmd("SCARD").arg(&mine).query(con)?;
            if held >= MAX_TOKENS_PER_USER {
                return Err(Fail::Store(too_many()));
            }
            pipe.cmd("SET").arg(&key).arg(&value).ignore();
            pipe.cmd("SADD").arg(&mine).arg(&token.id).ignore();
            pipe.cmd("SADD")
                .arg(db.key_of("trigger_tokens:all"))
                .arg(&token.id)
                .ignore();
            Ok(true)
        })
    }

    pub(super) fn lookup(db: &RedisBackend, id: &str) -> Result<Option<Stored>, StoreError> {
        let raw = db.run(|con| read(db, con, id))?;
        raw.map(|r| into_stored(db, r)).transpose()
    }

    /// Counts one use of an unrevoked token; returns it as updated, `None` if it is
    /// revoked or gone.
    pub(super) fn mark_used(
        db: &RedisBackend,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TriggerToken>, StoreError> {
        let key = token_key(db, id);
        let raw = db.atomically(std::slice::from_ref(&key), |con, pipe| {
            let Some(mut raw) = read(db, con, id)? else {
                return Ok(None);
            };
            if raw.revoked_at.is_some() {
                return Ok(None);
            }
            raw.uses = raw.uses.saturating_add(1);
            raw.last_used_at = Some(ms(now));
            pipe.cmd("SET").arg(&key).arg(to_json(&raw)?).ignore();
            Ok(Some(raw))
        })?;
        raw.map(|r| into_stored(db, r).map(|s| s.token)).transpose()
    }

    pub(super) fn list(
        db: &RedisBackend,
        user: Option<&UserKey>,
    ) -> Result<Vec<TriggerToken>, StoreError> {
        let set = match user {
            Some(user) => user_set(db, user),
            None => db.key_of("trigger_tokens:all"),
        };
        let raws: Vec<Option<String>> = db.run(|con| {
            let ids: Vec<String> = ::redis::cmd("SMEMBERS").arg(&set).query(con)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|id| token_key(db, id)).collect();
            Ok(::redis::cmd("MGET").arg(&keys).query(con)?)
        })?;
        let mut out = Vec::with_capacity(raws.len());
        for text in raws.into_iter().flatten() {
            let raw: Raw = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
                what: format!("a trigger token: {e}"),
            })?;
            if raw.revoked_at.is_none() {
                out.push(into_stored(db, raw)?.token);
            }
        }
        Ok(out)
    }

    pub(super) fn revoke(
        db: &RedisBackend,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TriggerToken>, StoreError> {
        let key = token_key(db, id);
        let raw = db.atomically(std::slice::from_ref(&key), |con, pipe| {
            let Some(mut raw) = read(db, con, id)? else {
                return Ok(None);
            };
            if raw.revoked_at.is_some() {
                return Ok(None);
            }
            raw.revoked_at = Some(ms(now));
            pipe.cmd("SET").arg(&key).arg(to_json(&raw)?).ignore();
            pipe.cmd("SREM")
                .arg(user_set(db, &UserKey(raw.user.clone())))
                .arg(id)
                .ignore();
            pipe.cmd("SREM")
                .arg(db.key_of("trigger_tokens:all"))
                .arg(id)
                .ignore();
            Ok(Some(raw))
        })?;
        raw.map(|r| into_stored(db, r).map(|s| s.token)).transpose()
    }

    fn into_stored(db: &RedisBackend, raw: Raw) -> Result<Stored, StoreError> {
        let id = raw.id;
        let corrupt = |what: &str| StoreError::Corrupt {
            what: format!("trigger token {id}: {what}"),
        };
        let user = UserKey(raw.user);
        let command = db.open_text(&aad_parts(&id, &user), &raw.sealed_command, || {
            format!("the command of trigger token {id}")
        })?;
        let hash = from_hex(&raw.hash).ok_or_else(|| corrupt("the hash is not 32 bytes of hex"))?;
        Ok(Stored {
            token: TriggerToken {
                room_kind: parse_room_kind(&raw.room_kind)
                    .ok_or_else(|| corrupt("unknown room kind"))?,
                uses: raw.uses,
                user,
                user_name: raw.user_name,
                connection: raw.connection,
                room_id: raw.room_id,
                room_name: raw.room_name,
                thread: raw.thread,
                org: raw.org,
                command,
                created_by: UserKey(raw.created_by),
                created_at: from_ms(raw.created_at, "created_at")?,
                last_used_at: raw
                    .last_used_at
                    .map(|t| from_ms(t, "last_used_at"))
                    .transpose()?,
                id,
            },
            hash,
            revoked: raw.revoked_at.is_some(),
        })
    }

    fn from_hex(text: &str) -> Option<TokenHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn tokens_have_the_documented_shape() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), TOKEN_ID_CHARS);
        let text = new_token_text(&id).unwrap();
        assert_eq!(text.len(), TOKEN_CHARS);
        assert!(text.starts_with(&format!("sbt_{id}_")));
        assert_eq!(token_id(&text), Some(id.as_str()));
        assert_ne!(
            *new_token_text(&id).unwrap(),
            *text,
            "fresh secret each time"
        );
        let secret = SecretString::from(text.as_str());
        assert_eq!(token_id(secret.expose_secret()), Some(id.as_str()));
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        let good = new_token_text("abcdefgh").unwrap();
        assert!(token_id(&good).is_some());
        for bad in [
            String::new(),
            "sbt_".into(),
            good.replacen("sbt_", "sbx_", 1),
            good[..good.len() - 1].into(),
            format!("{}A", &*good),
            good.replacen("abcdefgh", "ABCDEFGH", 1),
            good.replacen("abcdefgh_", "abcdefgh-", 1),
            format!("{}é", &good[..good.len() - 2]),
            format!("{}=", &good[..good.len() - 1]),
        ] {
            assert_eq!(token_id(&bad), None, "{bad}");
        }
    }

    #[test]
    fn hashes_compare_in_constant_time_helper() {
        let a = hash_of("sbt_a");
        let mut b = a;
        assert!(same_hash(&a, &b).unwrap());
        b[31] ^= 1;
        assert!(!same_hash(&a, &b).unwrap());
        b = a;
        b[0] ^= 0x80;
        assert!(!same_hash(&a, &b).unwrap());
    }
}
