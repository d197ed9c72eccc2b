//! Chat users' sessions in Redis: the session operations of
//! [`super::sqlite::SqliteBackend`], with the same signatures and rules, on
//! [`RedisBackend`].
//!
//! # Keys (after the prefix)
//!
//! * `session:<id>`: the session as JSON, the fields of an SQLite `sessions` row
//!   ([`RawSession`]): the credential sealed with the store key exactly as SQLite seals it
//!   (bound to the session id and the user, see [`credential_aad`]), the shared word only
//!   as its encoded PBKDF2 hash, the link only as its SHA-256. Nothing in it is in clear
//!   that SQLite keeps sealed or hashed;
//! * `sessions`: set of every session id, for listing and purging;
//! * `session_user:<user key>`: hash `pending` → id and `active` → id, at most one of each
//!   per user (what SQLite's unique index on `(user_key, state)` ensures);
//! * `session_link:<link hash>` → the id of the pending session carrying that link;
//! * `used_link:<link hash>` → the link's expiry (ms) once it completed a login, so replays
//!   read `Used` rather than `Unknown`. A purge at or after that expiry removes it; its TTL
//!   (the link's remaining life plus [`USED_LINK_GRACE`]) only makes Redis drop it by
//!   itself should no bridge purge any more;
//! * `used_links`: sorted set of those link hashes scored by the link's expiry (ms): the
//!   purge finds them by the time it is given, not by Redis's clock.
//!
//! # Guarantees
//!
//! Every change that touches several keys or reads before it writes is one optimistic
//! transaction ([`RedisBackend::atomically`]), so two bridges sharing the Redis keep the
//! rules SQLite's transactions keep: [`RedisBackend::charge_attempt`] is a compare-and-set
//! on the watched record, so an attempt cannot be spent twice; of two activations of the
//! same link only the first `EXEC` finds the session still pending, the other gets `None`
//! (a stale claim). Reads that follow an index to a record run the same way (with nothing
//! to write), so they never see a record and an index from different moments.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::{Connection, Pipeline};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::error::StoreError;
use super::model::{
    effective_expiry, PendingLink, Session, SessionState, SessionSummary, StoredCredential, UserKey,
};
use super::redis::{to_json, watch, Fail, RedisBackend};
use super::sqlite::{credential_aad, decode_word_hash, from_ms, ms, RawSession};
use super::{activated, LinkLookup};

/// How much longer than its link Redis keeps a used-link marker by itself (its TTL). Longer
/// than the day the bridge keeps expired entries before purging them, so the TTL never
/// removes a marker before a purge would; it only cleans up after bridges that stopped.
const USED_LINK_GRACE: Duration = Duration::from_secs(2 * 24 * 3600);

impl RedisBackend {
    /// `<p>session:<id>`.
    fn session_key(&self, id: &str) -> String {
        self.key_of(&format!("session:{id}"))
    }

    /// `<p>sessions`.
    fn sessions_key(&self) -> String {
        self.key_of("sessions")
    }

    /// `<p>session_user:<user key>`.
    fn session_user_key(&self, user: &str) -> String {
        self.key_of(&format!("session_user:{user}"))
    }

    /// `<p>session_link:<link hash>`.
    fn session_link_key(&self, link_hash: &str) -> String {
        self.key_of(&format!("session_link:{link_hash}"))
    }

    /// `<p>used_link:<link hash>`.
    fn used_link_key(&self, link_hash: &str) -> String {
        self.key_of(&format!("used_link:{link_hash}"))
    }

    /// `<p>used_links`.
    fn used_links_key(&self) -> String {
        self.key_of("used_links")
    }

    /// Reads `session:<id>`; `None` if it does not exist.
    fn load_session(&self, con: &mut Connection, id: &str) -> Result<Option<RawSession>, Fail> {
        let text: Option<String> = ::redis::cmd("GET").arg(self.session_key(id)).query(con)?;
        Ok(text.map(|text| parse_record(id, &text)).transpose()?)
    }

    /// Queues removing session `raw` and what points at it: its link, its id in `sessions`,
    /// and its user's index entry if `indexed` (that entry still names it).
    fn queue_remove(&self, pipe: &mut Pipeline, raw: &RawSession, indexed: Option<&str>) {
        pipe.cmd("DEL").arg(self.session_key(&raw.id)).ignore();
        pipe.cmd("SREM")
            .arg(self.sessions_key())
            .arg(&raw.id)
            .ignore();
        if let Some(link_hash) = &raw.link_hash {
            pipe.cmd("DEL")
                .arg(self.session_link_key(link_hash))
                .ignore();
        }
        if let Some(field) = indexed {
            pipe.cmd("HDEL")
                .arg(self.session_user_key(&raw.user_key))
                .arg(field)
                .ignore();
        }
    }

    /// `user`'s session in `state`, following `session_user:<user>` to the record in one
    /// optimistic read.
    fn user_session(
        &self,
        user: &UserKey,
        state: SessionState,
    ) -> Result<Option<RawSession>, StoreError> {
        let user_key = self.session_user_key(user.as_str());
        self.atomically(std::slice::from_ref(&user_key), |con, _| {
            let id: Option<String> = ::redis::cmd("HGET")
                .arg(&user_key)
                .arg(state.as_str())
                .query(con)?;
            let Some(id) = id else {
                return Ok(None);
            };
            watch(con, &[self.session_key(&id)])?;
            match self.load_session(con, &id)? {
                Some(raw) if raw.user_key == user.as_str() && state_of(&raw)? == state => {
                    Ok(Some(raw))
                }
                Some(_) => Err(Fail::Store(StoreError::Corrupt {
                    what: format!(
                        "session {id} is indexed as a {} session of {user} but is not one",
                        state.as_str()
                    ),
                })),
                None => Ok(None),
            }
        })
    }

    /// Opens a record's credential with the store key. The key check at start-up proved
    /// the key is this prefix's, so a credential sealed with another one is a corrupt
    /// record, not a wrong key.
    fn open_session(&self, raw: RawSession) -> Result<Session, StoreError> {
        let id = raw.id.clone();
        raw.open(&self.key, |found| StoreError::Corrupt {
            what: format!("the credential of session {id} is sealed with another key ({found})"),
        })
    }

    /// Stores `session` as `user`'s pending session, replacing their previous pending one
    /// (their active one is left alone).
    pub(crate) fn insert_pending(&self, session: &Session) -> Result<(), StoreError> {
        let link = session.link.as_ref().ok_or(StoreError::InvalidInput {
            what: "a pending session needs a link",
        })?;
        let record = to_json(&pending_record(session, link))?;
        let user_key = self.session_user_key(session.user.as_str());
        let pending = SessionState::Pending.as_str();
        self.atomically(std::slice::from_ref(&user_key), |con, pipe| {
            let old: Option<String> = ::redis::cmd("HGET")
                .arg(&user_key)
                .arg(pending)
                .query(con)?;
            if let Some(old) = old.filter(|old| *old != session.id) {
                watch(con, &[self.session_key(&old)])?;
                if let Some(raw) = self.load_session(con, &old)? {
                    // The hash entry is overwritten below.
                    self.queue_remove(pipe, &raw, None);
                }
            }
            pipe.cmd("SET")
                .arg(self.session_key(&session.id))
                .arg(&record)
                .ignore();
            pipe.cmd("SET")
                .arg(self.session_link_key(&link.link_hash))
                .arg(&session.id)
                .ignore();
            pipe.cmd("HSET")
                .arg(&user_key)
                .arg(pending)
                .arg(&session.id)
                .ignore();
            pipe.cmd("SADD")
                .arg(self.sessions_key())
                .arg(&session.id)
                .ignore();
            Ok(())
        })
    }

    /// What is known about `link_hash`: the pending session carrying it, a completed login,
    /// or nothing.
    pub(crate) fn find_link(&self, link_hash: &str) -> Result<LinkLookup, StoreError> {
        let link_key = self.session_link_key(link_hash);
        let (pending, used) = self.atomically(std::slice::from_ref(&link_key), |con, _| {
            let id: Option<String> = ::redis::cmd("GET").arg(&link_key).query(con)?;
            if let Some(id) = id {
                watch(con, &[self.session_key(&id)])?;
                let raw = self.load_session(con, &id)?;
                if let Some(raw) = raw.filter(|raw| carries(raw, link_hash)) {
                    return Ok((Some(raw), false));
                }
            }
            let used: bool = ::redis::cmd("EXISTS")
                .arg(self.used_link_key(link_hash))
                .query(con)?;
            Ok((None, used))
        })?;
        let Some(raw) = pending else {
            return Ok(if used {
                LinkLookup::Used
            } else {
                LinkLookup::Unknown
            });
        };
        let (Some(expires_at), Some(word_hash)) = (raw.link_expires_at, &raw.word_hash) else {
            return Err(StoreError::Corrupt {
                what: format!("pending session {} has no link expiry or word hash", raw.id),
            });
        };
        Ok(LinkLookup::Pending {
            link: PendingLink {
                link_hash: link_hash.to_owned(),
                expires_at: from_ms(expires_at, "link_expires_at")?,
                word_hash: decode_word_hash(word_hash, &raw.id)?,
            },
            user: UserKey(raw.user_key),
            attempts: raw.attempts,
            session_id: raw.id,
        })
    }

    /// Adds one attempt if the link is still pending with `seen` attempts: a
    /// compare-and-set on the watched record, so it holds across bridges too.
    pub(crate) fn charge_attempt(
        &self,
        session_id: &str,
        link_hash: &str,
        seen: u32,
    ) -> Result<bool, StoreError> {
        let key = self.session_key(session_id);
        self.atomically(std::slice::from_ref(&key), |con, pipe| {
            let Some(mut raw) = self.load_session(con, session_id)? else {
                return Ok(false);
            };
            if !carries(&raw, link_hash) || raw.attempts != seen {
                return Ok(false);
            }
            raw.attempts = seen.saturating_add(1);
            pipe.cmd("SET").arg(&key).arg(to_json(&raw)?).ignore();
            Ok(true)
        })
    }

    /// Turns the pending session `session_id` (if it still carries `link_hash`) into its
    /// user's active session with `credential`, replacing their previous active session,
    /// and records the link as used until its expiry. `None` if it is no longer pending
    /// with that link (replaced, cancelled, or completed by another claim).
    pub(crate) fn activate(
        &self,
        session_id: &str,
        link_hash: &str,
        credential: StoredCredential,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.session_key(session_id);
        let pending_field = SessionState::Pending.as_str();
        let active_field = SessionState::Active.as_str();
        self.atomically(std::slice::from_ref(&key), |con, pipe| {
            let Some(raw) = self.load_session(con, session_id)? else {
                return Ok(None);
            };
            if !carries(&raw, link_hash) {
                return Ok(None);
            }
            let user_key = self.session_user_key(&raw.user_key);
            watch(con, std::slice::from_ref(&user_key))?;
            let index: HashMap<String, String> =
                ::redis::cmd("HGETALL").arg(&user_key).query(con)?;
            // A pending record has no credential: nothing is decrypted here.
            let pending = self.open_session(raw)?;
            let sealed = self.key.seal(
                &credential_aad(&pending.id, &pending.user),
                credential.secret.expose_secret().as_bytes(),
            )?;
            let link_expiry = pending.link.as_ref().map_or(now, |l| l.expires_at);
            // Cloned because a conflicting transaction runs this again.
            let session = activated(&pending, credential.clone(), now);
            let record = to_json(&active_record(&session, &credential, sealed))?;

            // The previous active session goes only now, in the transaction that installs
            // the new one: until here a failed or abandoned login left it alone.
            if let Some(old) = index.get(active_field).filter(|old| *old != session_id) {
                pipe.cmd("DEL").arg(self.session_key(old)).ignore();
                pipe.cmd("SREM").arg(self.sessions_key()).arg(old).ignore();
            }
            if index.get(pending_field).is_some_and(|id| id == session_id) {
                pipe.cmd("HDEL").arg(&user_key).arg(pending_field).ignore();
            }
            pipe.cmd("HSET")
                .arg(&user_key)
                .arg(active_field)
                .arg(session_id)
                .ignore();
            pipe.cmd("SET").arg(&key).arg(record).ignore();
            pipe.cmd("DEL")
                .arg(self.session_link_key(link_hash))
                .ignore();
            pipe.cmd("SET")
                .arg(self.used_link_key(link_hash))
                .arg(ms(link_expiry))
                .arg("PX")
                .arg(used_link_ttl_ms(link_expiry, now))
                .ignore();
            pipe.cmd("ZADD")
                .arg(self.used_links_key())
                .arg(ms(link_expiry))
                .arg(link_hash)
                .ignore();
            Ok(Some(session))
        })
    }

    /// `user`'s active session (live or expired but not purged), its credential opened.
    pub(crate) fn active_session(&self, user: &UserKey) -> Result<Option<Session>, StoreError> {
        // Decrypted after the connection is given back.
        self.user_session(user, SessionState::Active)?
            .map(|raw| self.open_session(raw))
            .transpose()
    }

    /// Whether `user` has an active session record (nothing is decrypted).
    pub(crate) fn has_active(&self, user: &UserKey) -> Result<bool, StoreError> {
        Ok(self.user_session(user, SessionState::Active)?.is_some())
    }

    /// Removes `user`'s pending and active sessions; whether there was one.
    pub(crate) fn remove_user(&self, user: &UserKey) -> Result<bool, StoreError> {
        let user_key = self.session_user_key(user.as_str());
        self.atomically(std::slice::from_ref(&user_key), |con, pipe| {
            let index: HashMap<String, String> =
                ::redis::cmd("HGETALL").arg(&user_key).query(con)?;
            let mut removed = false;
            for id in index.values() {
                watch(con, &[self.session_key(id)])?;
                if let Some(raw) = self.load_session(con, id)? {
                    // The whole hash goes below.
                    self.queue_remove(pipe, &raw, None);
                    removed = true;
                }
            }
            pipe.cmd("DEL").arg(&user_key).ignore();
            Ok(removed)
        })
    }

    /// Removes one session by id; whether it existed.
    pub(crate) fn remove(&self, session_id: &str) -> Result<bool, StoreError> {
        let key = self.session_key(session_id);
        self.atomically(std::slice::from_ref(&key), |con, pipe| {
            let Some(raw) = self.load_session(con, session_id)? else {
                return Ok(false);
            };
            let field = self.indexed_field(con, &raw)?;
            self.queue_remove(pipe, &raw, field);
            Ok(true)
        })
    }

    /// `raw`'s field in its user's hash if that still names it (the hash is watched from
    /// here on, so the answer holds until the transaction's `EXEC`).
    fn indexed_field(
        &self,
        con: &mut Connection,
        raw: &RawSession,
    ) -> Result<Option<&'static str>, Fail> {
        let field = state_of(raw)?.as_str();
        let user_key = self.session_user_key(&raw.user_key);
        watch(con, std::slice::from_ref(&user_key))?;
        let indexed: Option<String> = ::redis::cmd("HGET").arg(&user_key).arg(field).query(con)?;
        Ok((indexed.as_deref() == Some(raw.id.as_str())).then_some(field))
    }

    /// Every session's summary. Only the records' plain fields are read: listing never
    /// decrypts anything.
    pub(crate) fn summaries(&self) -> Result<Vec<SessionSummary>, StoreError> {
        let set = self.sessions_key();
        // Watching the set makes the ids and the records one snapshot (`MGET` is atomic).
        let texts = self.atomically(std::slice::from_ref(&set), |con, _| {
            let ids: Vec<String> = ::redis::cmd("SMEMBERS").arg(&set).query(con)?;
            self.load_all(con, ids)
        })?;
        texts
            .iter()
            .filter_map(|(id, text)| text.as_ref().map(|text| parse_record(id, text)))
            .map(|raw| summary(&raw?))
            .collect()
    }

    /// `(id, record)` of each of `ids` (`None` for a record that does not exist).
    fn load_all(
        &self,
        con: &mut Connection,
        ids: Vec<String>,
    ) -> Result<Vec<(String, Option<String>)>, Fail> {
        if ids.is_empty() {
            // `MGET` wants at least one key.
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.session_key(id)).collect();
        let texts: Vec<Option<String>> = ::redis::cmd("MGET").arg(&keys).query(con)?;
        Ok(ids.into_iter().zip(texts).collect())
    }

    /// Removes pending sessions whose link expired by `now`, active ones past their or
    /// their credential's expiry, and used-link markers past the link's expiry. Returns the
    /// number of sessions removed.
    pub(crate) fn purge(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let now_ms = ms(now);
        let set = self.sessions_key();
        let used = self.used_links_key();
        // Only the records it removes (and their users' hashes) are watched: a bridge
        // charging an attempt on a live link elsewhere does not make the purge start over.
        self.atomically(&[], |con, pipe| {
            let ids: Vec<String> = ::redis::cmd("SMEMBERS").arg(&set).query(con)?;
            let mut removed = 0;
            for (id, text) in self.load_all(con, ids)? {
                let Some(text) = text else {
                    // Left by a change made outside stormbridge; nothing to count.
                    pipe.cmd("SREM").arg(&set).arg(&id).ignore();
                    continue;
                };
                if !expired(&parse_record(&id, &text)?, now_ms)? {
                    continue;
                }
                // Read again under WATCH: it may have changed since the `MGET`.
                watch(con, &[self.session_key(&id)])?;
                let Some(raw) = self.load_session(con, &id)? else {
                    continue;
                };
                if !expired(&raw, now_ms)? {
                    continue;
                }
                let field = self.indexed_field(con, &raw)?;
                self.queue_remove(pipe, &raw, field);
                removed += 1;
            }
            let links: Vec<String> = ::redis::cmd("ZRANGEBYSCORE")
                .arg(&used)
                .arg("-inf")
                .arg(now_ms)
                .query(con)?;
            if !links.is_empty() {
                for link_hash in &links {
                    pipe.cmd("DEL").arg(self.used_link_key(link_hash)).ignore();
                }
                pipe.cmd("ZREM").arg(&used).arg(&links).ignore();
            }
            Ok(removed)
        })
    }
}

/// Parses the record of session `id`. The error names the session and where the JSON is
/// wrong, never serde's message: that can quote a value (a sealed credential, a word hash).
fn parse_record(id: &str, text: &str) -> Result<RawSession, StoreError> {
    let raw: RawSession = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: format!(
            "the record of session {id} is not a valid session ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })?;
    if raw.id != id {
        return Err(StoreError::Corrupt {
            what: format!("the record of session {id} holds another session's id"),
        });
    }
    Ok(raw)
}

/// A record's state.
fn state_of(raw: &RawSession) -> Result<SessionState, StoreError> {
    SessionState::parse(&raw.state).ok_or_else(|| StoreError::Corrupt {
        what: format!("session {} has an unknown state", raw.id),
    })
}

/// True if `raw` is a pending session carrying link `link_hash`.
fn carries(raw: &RawSession, link_hash: &str) -> bool {
    raw.state == SessionState::Pending.as_str() && raw.link_hash.as_deref() == Some(link_hash)
}

/// Whether a purge at `now_ms` removes `raw` (the rule of SQLite's purge).
fn expired(raw: &RawSession, now_ms: i64) -> Result<bool, StoreError> {
    Ok(match state_of(raw)? {
        SessionState::Pending => raw.link_expires_at.is_some_and(|t| t <= now_ms),
        SessionState::Active => {
            raw.expires_at <= now_ms || raw.cred_expires_at.is_some_and(|t| t <= now_ms)
        }
    })
}

/// `raw`'s summary, from its plain fields only.
fn summary(raw: &RawSession) -> Result<SessionSummary, StoreError> {
    let state = state_of(raw)?;
    let expires_at = from_ms(raw.expires_at, "expires_at")?;
    let link_expires_at = raw
        .link_expires_at
        .map(|t| from_ms(t, "link_expires_at"))
        .transpose()?;
    let cred_expires_at = raw
        .cred_expires_at
        .map(|t| from_ms(t, "cred_expires_at"))
        .transpose()?;
    Ok(SessionSummary {
        id: raw.id.clone(),
        user: UserKey(raw.user_key.clone()),
        state,
        created_at: from_ms(raw.created_at, "created_at")?,
        expires_at: effective_expiry(state, expires_at, link_expires_at, cred_expires_at),
    })
}

/// The record of pending `session` with `link`.
fn pending_record(session: &Session, link: &PendingLink) -> RawSession {
    RawSession {
        id: session.id.clone(),
        user_key: session.user.as_str().to_owned(),
        state: SessionState::Pending.as_str().to_owned(),
        created_at: ms(session.created_at),
        expires_at: ms(session.expires_at),
        link_hash: Some(link.link_hash.clone()),
        link_expires_at: Some(ms(link.expires_at)),
        word_hash: Some(link.word_hash.encode()),
        attempts: session.attempts,
        cred_kind: None,
        cred_secret: None,
        cred_st2_user: None,
        cred_expires_at: None,
    }
}

/// The record of active `session` with `credential`, whose secret is written only as
/// `sealed`.
fn active_record(session: &Session, credential: &StoredCredential, sealed: String) -> RawSession {
    RawSession {
        id: session.id.clone(),
        user_key: session.user.as_str().to_owned(),
        state: SessionState::Active.as_str().to_owned(),
        created_at: ms(session.created_at),
        expires_at: ms(session.expires_at),
        link_hash: None,
        link_expires_at: None,
        word_hash: None,
        attempts: 0,
        cred_kind: Some(credential.kind.as_str().to_owned()),
        cred_secret: Some(sealed),
        cred_st2_user: Some(credential.st2_user.clone()),
        cred_expires_at: credential.expires_at.map(ms),
    }
}

/// The used-link marker's TTL in ms: the link's remaining life (from `now`, the time the
/// caller gave, so it does not depend on how Redis's clock compares) plus
/// [`USED_LINK_GRACE`].
fn used_link_ttl_ms(link_expiry: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let grace = i64::try_from(USED_LINK_GRACE.as_millis()).unwrap_or(i64::MAX);
    (link_expiry - now)
        .num_milliseconds()
        .max(0)
        .saturating_add(grace)
}
