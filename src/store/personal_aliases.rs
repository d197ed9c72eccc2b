//! Personal aliases: `!st2alias <name> <command text>` saves a command under a short
//! name for one user, who then runs it by that name.
//!
//! Names are case-insensitive: they are checked and lowercased by [`valid_alias_name`]
//! (1–32 characters of `a-z`, `0-9`, `_`, `.`, `-`, starting with a letter). A user keeps
//! at most [`MAX_PERSONAL_ALIASES`]; a text is at most [`MAX_ALIAS_TEXT_CHARS`]
//! characters. The text is a command as its user typed it and may carry a secret, so
//! the SQLite backend seals it with the store key (bound to its user and name, like a
//! session's credential), and `Debug` output leaves it out.
//!
//! Calls block (SQLite I/O); run them off the async executor.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{
    error::StoreError, model::UserKey, place::Place, redis::RedisBackend, sqlite::SqliteBackend,
};

/// Most personal aliases one user keeps.
pub const MAX_PERSONAL_ALIASES: usize = 100;

/// Longest alias name, in characters.
pub const MAX_ALIAS_NAME_CHARS: usize = 32;

/// Longest alias text, in characters.
pub const MAX_ALIAS_TEXT_CHARS: usize = 1_000;

/// One user's saved command.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalAlias {
    /// Whose it is.
    pub user: UserKey,
    /// Its name, lowercase.
    pub name: String,
    /// The command it stands for.
    pub text: String,
    /// When this text was saved under the name.
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for PersonalAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The text may hold a secret the user typed.
        f.debug_struct("PersonalAlias")
            .field("user", &self.user)
            .field("name", &self.name)
            .field(
                "text",
                &format_args!("[{} chars]", self.text.chars().count()),
            )
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What [`PersonalAliasStore::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The user had no alias of that name.
    Created,
    /// An alias of that name got the new text.
    Replaced,
}

/// Why a name cannot be an alias name; the message is meant for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing was given.
    #[error("an alias name cannot be empty")]
    Empty,
    /// Longer than [`MAX_ALIAS_NAME_CHARS`].
    #[error("an alias name is at most 32 characters long")]
    TooLong,
    /// The first character is not a letter.
    #[error("an alias name must start with a letter")]
    NotALetterFirst,
    /// A character outside `a-z`, `0-9`, `_`, `.`, `-`.
    #[error("an alias name may only contain letters a-z, digits, '_', '.' and '-' (not {0:?})")]
    BadCharacter(char),
}

/// Checks an alias name and returns it lowercased (the form stored and compared).
pub fn valid_alias_name(name: &str) -> Result<String, NameError> {
    let mut chars = name.chars();
    let first = chars.next().ok_or(NameError::Empty)?;
    if name.chars().count() > MAX_ALIAS_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if !first.is_ascii_alphabetic() {
        return Err(NameError::NotALetterFirst);
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(NameError::BadCharacter(bad));
    }
    Ok(name.to_ascii_lowercase())
}

/// Where personal aliases are kept; cheap to clone, clones share the same aliases.
#[derive(Clone)]
pub struct PersonalAliasStore {
    backend: Backend,
}

/// Memory backend: user → name → (text, created_at).
type MemoryAliases = HashMap<UserKey, BTreeMap<String, (String, DateTime<Utc>)>>;

type Backend = Place<MemoryAliases>;

impl fmt::Debug for PersonalAliasStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.backend.debug("PersonalAliasStore", f)
    }
}

impl PersonalAliasStore {
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

    /// Whether aliases survive a restart.
    pub fn is_persistent(&self) -> bool {
        self.backend.is_persistent()
    }

    /// Saves `text` as `user`'s alias `name`, replacing an alias of that name.
    ///
    /// Refuses an invalid name or a text that is empty or longer than
    /// [`MAX_ALIAS_TEXT_CHARS`] ([`StoreError::InvalidInput`]; check the name with
    /// [`valid_alias_name`] first for a message to show), and a new alias past
    /// [`MAX_PERSONAL_ALIASES`] ([`StoreError::LimitReached`]).
    pub fn set(
        &self,
        user: &UserKey,
        name: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<SetOutcome, StoreError> {
        let name = valid_alias_name(name).map_err(|_| StoreError::InvalidInput {
            what: "the alias name is not valid",
        })?;
        if text.trim().is_empty() {
            return Err(StoreError::InvalidInput {
                what: "the alias text is empty",
            });
        }
        if text.chars().count() > MAX_ALIAS_TEXT_CHARS {
            return Err(StoreError::InvalidInput {
                what: "the alias text is longer than 1,000 characters",
            });
        }
        match &self.backend {
            Backend::Memory(m) => {
                let mut all = m.lock();
                let mine = all.entry(user.clone()).or_default();
                let outcome = if mine.contains_key(&name) {
                    SetOutcome::Replaced
                } else if mine.len() >= MAX_PERSONAL_ALIASES {
                    return Err(too_many());
                } else {
                    SetOutcome::Created
                };
                mine.insert(name, (text.to_owned(), now));
                Ok(outcome)
            }
            Backend::Sqlite(db) => sqlite::set(db, user, &name, text, now),
            Backend::Redis(db) => in_redis::set(db, user, &name, text, now),
        }
    }

    /// Removes `user`'s alias `name` (any case). Returns whether it existed.
    pub fn remove(&self, user: &UserKey, name: &str) -> Result<bool, StoreError> {
        let Ok(name) = valid_alias_name(name) else {
            return Ok(false);
        };
        match &self.backend {
            Backend::Memory(m) => {
                let mut all = m.lock();
                let Some(mine) = all.get_mut(user) else {
                    return Ok(false);
                };
                let removed = mine.remove(&name).is_some();
                if mine.is_empty() {
                    all.remove(user);
                }
                Ok(removed)
            }
            Backend::Sqlite(db) => sqlite::remove(db, user, &name),
            Backend::Redis(db) => in_redis::remove(db, user, &name),
        }
    }

    /// `user`'s alias `name` (any case).
    pub fn get(&self, user: &UserKey, name: &str) -> Result<Option<PersonalAlias>, StoreError> {
        let Ok(name) = valid_alias_name(name) else {
            return Ok(None);
        };
        match &self.backend {
            Backend::Memory(m) => Ok(m.lock().get(user).and_then(|mine| {
                mine.get(&name)
                    .map(|(text, created_at)| alias(user, &name, text, *created_at))
            })),
            Backend::Sqlite(db) => sqlite::get(db, user, &name),
            Backend::Redis(db) => in_redis::get(db, user, &name),
        }
    }

    /// All of `user`'s aliases, sorted by name.
    pub fn list(&self, user: &UserKey) -> Result<Vec<PersonalAlias>, StoreError> {
        match &self.backend {
            Backend::Memory(m) => Ok(m
                .lock()
                .get(user)
                .map(|mine| {
                    mine.iter()
                        .map(|(name, (text, created_at))| alias(user, name, text, *created_at))
                        .collect()
                })
                .unwrap_or_default()),
            Backend::Sqlite(db) => sqlite::list(db, user),
            Backend::Redis(db) => in_redis::list(db, user),
        }
    }
}

fn alias(user: &UserKey, name: &str, text: &str, created_at: DateTime<Utc>) -> PersonalAlias {
    PersonalAlias {
        user: user.clone(),
        name: name.to_owned(),
        text: text.to_owned(),
        created_at,
    }
}

fn too_many() -> StoreError {
    StoreError::LimitReached {
        what: "personal aliases per user",
        limit: MAX_PERSONAL_ALIASES,
    }
}

/// The SQLite backend: table `personal_aliases`, the text sealed.
mod sqlite {
    use rusqlite::{params, OptionalExtension};

    use super::super::sqlite::{from_ms, ms};
    use super::*;

    /// Binds a sealed text to its user and name: moved to another row, it fails to open.
    fn aad_parts<'a>(user: &'a UserKey, name: &'a str) -> [&'a str; 3] {
        ["personal_alias", user.as_str(), name]
    }

    fn what(user: &UserKey, name: &str) -> String {
        format!("personal alias {name} of {user}")
    }

    pub(super) fn set(
        db: &SqliteBackend,
        user: &UserKey,
        name: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<SetOutcome, StoreError> {
        // Seal before taking the connection: others need not wait for it.
        let sealed = db.seal_text(&aad_parts(user, name), text)?;
        db.write(|tx| {
            let exists = tx
                .query_row(
                    "SELECT 1 FROM personal_aliases WHERE user_key = ?1 AND name = ?2",
                    params![user.as_str(), name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                let count: i64 = tx.query_row(
                    "SELECT count(*) FROM personal_aliases WHERE user_key = ?1",
                    params![user.as_str()],
                    |r| r.get(0),
                )?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_PERSONAL_ALIASES {
                    return Err(too_many());
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO personal_aliases (user_key, name, sealed, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
                params![user.as_str(), name, sealed, ms(now)],
            )?;
            Ok(if exists {
                SetOutcome::Replaced
            } else {
                SetOutcome::Created
            })
        })
    }

    pub(super) fn remove(
        db: &SqliteBackend,
        user: &UserKey,
        name: &str,
    ) -> Result<bool, StoreError> {
        db.write(|tx| {
            let n = tx.execute(
                "DELETE FROM personal_aliases WHERE user_key = ?1 AND name = ?2",
                params![user.as_str(), name],
            )?;
            Ok(n > 0)
        })
    }

    pub(super) fn get(
        db: &SqliteBackend,
        user: &UserKey,
        name: &str,
    ) -> Result<Option<PersonalAlias>, StoreError> {
        let row: Option<(String, i64)> = db
            .conn
            .lock()
            .query_row(
                "SELECT sealed, created_at FROM personal_aliases \
                 WHERE user_key = ?1 AND name = ?2",
                params![user.as_str(), name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(sealed, created_at)| opened(db, user, name.to_owned(), &sealed, created_at))
            .transpose()
    }

    pub(super) fn list(
        db: &SqliteBackend,
        user: &UserKey,
    ) -> Result<Vec<PersonalAlias>, StoreError> {
        let rows: Vec<(String, String, i64)> = {
            let conn = db.conn.lock();
            let mut stmt = conn.prepare(
                "SELECT name, sealed, created_at FROM personal_aliases \
                 WHERE user_key = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map(params![user.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        // Open after releasing the connection.
        rows.into_iter()
            .map(|(name, sealed, created_at)| opened(db, user, name, &sealed, created_at))
            .collect()
    }

    fn opened(
        db: &SqliteBackend,
        user: &UserKey,
        name: String,
        sealed: &str,
        created_at: i64,
    ) -> Result<PersonalAlias, StoreError> {
        let text = db.open_text(&aad_parts(user, &name), sealed, || what(user, &name))?;
        Ok(PersonalAlias {
            user: user.clone(),
            name,
            text,
            created_at: from_ms(created_at, "created_at")?,
        })
    }
}

/// The Redis backend: hash `personal_aliases:<user>` (after the prefix), name → JSON
/// `{sealed, created_at}`, the text sealed as in SQLite.
mod in_redis {
    use serde::{Deserialize, Serialize};

    use super::super::redis::{from_json, to_json, Fail, RedisBackend};
    use super::super::sqlite::{from_ms, ms};
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Stored {
        sealed: String,
        created_at: i64,
    }

    /// The same binding as SQLite's: moved to another user or name, it fails to open.
    fn aad_parts<'a>(user: &'a UserKey, name: &'a str) -> [&'a str; 3] {
        ["personal_alias", user.as_str(), name]
    }

    fn hash_key(db: &RedisBackend, user: &UserKey) -> String {
        db.key_of(&format!("personal_aliases:{}", user.as_str()))
    }

    pub(super) fn set(
        db: &RedisBackend,
        user: &UserKey,
        name: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<SetOutcome, StoreError> {
        let sealed = db.seal_text(&aad_parts(user, name), text)?;
        let value = to_json(&Stored {
            sealed,
            created_at: ms(now),
        })?;
        let key = hash_key(db, user);
        db.atomically(std::slice::from_ref(&key), |con, pipe| {
            let exists: bool = ::redis::cmd("HEXISTS").arg(&key).arg(name).query(con)?;
            if !exists {
                let count: usize = ::redis::cmd("HLEN").arg(&key).query(con)?;
                if count >= MAX_PERSONAL_ALIASES {
                    return Err(Fail::Store(too_many()));
                }
            }
            pipe.cmd("HSET").arg(&key).arg(name).arg(&value).ignore();
            Ok(if exists {
                SetOutcome::Replaced
            } else {
                SetOutcome::Created
            })
        })
    }

    pub(super) fn remove(
        db: &RedisBackend,
        user: &UserKey,
        name: &str,
    ) -> Result<bool, StoreError> {
        db.run(|con| {
            let n: usize = ::redis::cmd("HDEL")
                .arg(hash_key(db, user))
                .arg(name)
                .query(con)?;
            Ok(n > 0)
        })
    }

    pub(super) fn get(
        db: &RedisBackend,
        user: &UserKey,
        name: &str,
    ) -> Result<Option<PersonalAlias>, StoreError> {
        let raw: Option<String> = db.run(|con| {
            Ok(::redis::cmd("HGET")
                .arg(hash_key(db, user))
                .arg(name)
                .query(con)?)
        })?;
        raw.map(|raw| opened(db, user, name.to_owned(), &raw))
            .transpose()
    }

    pub(super) fn list(
        db: &RedisBackend,
        user: &UserKey,
    ) -> Result<Vec<PersonalAlias>, StoreError> {
        let all: std::collections::BTreeMap<String, String> =
            db.run(|con| Ok(::redis::cmd("HGETALL").arg(hash_key(db, user)).query(con)?))?;
        all.into_iter()
            .map(|(name, raw)| opened(db, user, name, &raw))
            .collect()
    }

    fn opened(
        db: &RedisBackend,
        user: &UserKey,
        name: String,
        raw: &str,
    ) -> Result<PersonalAlias, StoreError> {
        let what = || format!("personal alias {name} of {user}");
        let stored: Stored = from_json(raw, what).map_err(|e| match e {
            Fail::Store(e) => e,
            Fail::Redis(e) => super::super::redis::redis_error(&e),
        })?;
        let text = db.open_text(&aad_parts(user, &name), &stored.sealed, what)?;
        Ok(PersonalAlias {
            user: user.clone(),
            name,
            text,
            created_at: from_ms(stored.created_at, "created_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_lowercased() {
        assert_eq!(
            valid_alias_name("Deploy-Prod_2.x"),
            Ok("deploy-prod_2.x".into())
        );
        assert_eq!(valid_alias_name("a"), Ok("a".into()));
        assert_eq!(valid_alias_name(&"a".repeat(32)), Ok("a".repeat(32)));
        assert_eq!(valid_alias_name(""), Err(NameError::Empty));
        assert_eq!(valid_alias_name(&"a".repeat(33)), Err(NameError::TooLong));
        assert_eq!(valid_alias_name("1st"), Err(NameError::NotALetterFirst));
        assert_eq!(valid_alias_name("_x"), Err(NameError::NotALetterFirst));
        assert_eq!(valid_alias_name("éclair"), Err(NameError::NotALetterFirst));
        assert_eq!(
            valid_alias_name("two words"),
            Err(NameError::BadCharacter(' '))
        );
        assert_eq!(
            valid_alias_name("caf\u{e9}"),
            Err(NameError::BadCharacter('é'))
        );
        let message = NameError::BadCharacter('!').to_string();
        assert!(message.contains("may only contain"), "{message}");
    }

    #[test]
    fn debug_leaves_the_text_out() {
        let a = alias(
            &UserKey::new("chat", "U1"),
            "x",
            "deploy hunter2",
            Utc::now(),
        );
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("[14 chars]"), "{dbg}");
    }
}
