//! Persistence of the commands waiting for a confirmation or an approval
//! ([`crate::confirm`]).
//!
//! The dispatcher keeps the list in memory and writes every change through to here, so a
//! restarted bridge still knows what waits (an approval asked before a restart can be
//! given after it). With the memory backend there is nothing to write to. A waiting
//! command holds the command text, which may carry a secret parameter, so each record is
//! sealed with the store key like a session's credential.
//!
//! In Redis (see `store::redis`), after the prefix: `waiting:<code>` is the sealed record
//! and `waiting` the set of codes.

use std::sync::Arc;

use rusqlite::params;

use super::{
    crypto::{aad, OpenError},
    error::StoreError,
    redis::RedisBackend,
    sqlite::{ms, SqliteBackend},
};
use crate::confirm::Waiting;

/// Where the records go.
#[derive(Clone)]
enum Backend {
    Sqlite(Arc<SqliteBackend>),
    Redis(Arc<RedisBackend>),
}

/// Where waiting commands are persisted; cheap to clone.
#[derive(Clone)]
pub struct WaitingStore {
    backend: Option<Backend>,
}

impl std::fmt::Debug for WaitingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingStore")
            .field("persistent", &self.is_persistent())
            .finish()
    }
}

/// What a record is sealed for (the same in both backends).
const AAD_TABLE: &str = "waiting_command";

fn record_aad(code: &str) -> Vec<u8> {
    aad(&[AAD_TABLE, code])
}

/// A record's plaintext: the waiting command as JSON.
fn plaintext(waiting: &Waiting) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
    serde_json::to_vec(waiting)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| StoreError::Corrupt {
            what: format!("waiting command {}: {e}", waiting.code),
        })
}

/// Reads an opened record, naming it (never its contents) when it does not parse.
fn parse(code: &str, plain: &[u8]) -> Result<Waiting, StoreError> {
    serde_json::from_slice(plain).map_err(|e| StoreError::Corrupt {
        what: format!("waiting command {code}: {e}"),
    })
}

impl WaitingStore {
    /// Nowhere: every write succeeds and nothing is loaded.
    pub fn none() -> Self {
        Self { backend: None }
    }

    pub(super) fn sqlite(backend: Arc<SqliteBackend>) -> Self {
        Self {
            backend: Some(Backend::Sqlite(backend)),
        }
    }

    pub(super) fn redis(backend: Arc<RedisBackend>) -> Self {
        Self {
            backend: Some(Backend::Redis(backend)),
        }
    }

    /// Whether entries survive a restart.
    pub fn is_persistent(&self) -> bool {
        self.backend.is_some()
    }

    /// Every command saved. A record that cannot be opened (another key, damage) is an
    /// error naming it: a waiting command is never silently dropped or silently run.
    pub fn load(&self) -> Result<Vec<Waiting>, StoreError> {
        match &self.backend {
            None => Ok(Vec::new()),
            Some(Backend::Sqlite(db)) => load_sqlite(db),
            Some(Backend::Redis(db)) => {
                let index = db.key_of("waiting");
                let sealed: Vec<(String, Option<String>)> = db.run(|con| {
                    let codes: Vec<String> = ::redis::cmd("SMEMBERS").arg(&index).query(con)?;
                    if codes.is_empty() {
                        return Ok(Vec::new());
                    }
                    let keys: Vec<String> = codes.iter().map(|c| record_key(db, c)).collect();
                    let values: Vec<Option<String>> = ::redis::cmd("MGET").arg(&keys).query(con)?;
                    Ok(codes.into_iter().zip(values).collect())
                })?;
                // A code whose record is gone was decided between the two reads.
                sealed
                    .into_iter()
                    .filter_map(|(code, sealed)| sealed.map(|s| (code, s)))
                    .map(|(code, sealed)| {
                        let plain = db.open_text(&[AAD_TABLE, &code], &sealed, || {
                            format!("waiting command {code}")
                        })?;
                        parse(&code, plain.as_bytes())
                    })
                    .collect()
            }
        }
    }

    /// Saves a command (replacing one with the same code).
    pub fn insert(&self, waiting: &Waiting) -> Result<(), StoreError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        let plain = plaintext(waiting)?;
        match backend {
            Backend::Sqlite(db) => {
                let sealed = db.key.seal(&record_aad(&waiting.code), &plain)?;
                db.conn.lock().execute(
                    "INSERT OR REPLACE INTO waiting_commands (code, sealed, expires_at) VALUES (?1, ?2, ?3)",
                    params![waiting.code, sealed, ms(waiting.expires_at)],
                )?;
                Ok(())
            }
            Backend::Redis(db) => {
                let sealed = db.key.seal(&record_aad(&waiting.code), &plain)?;
                let (key, index) = (record_key(db, &waiting.code), db.key_of("waiting"));
                db.run(|con| {
                    ::redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg(&key)
                        .arg(&sealed)
                        .ignore()
                        .cmd("SADD")
                        .arg(&index)
                        .arg(&waiting.code)
                        .ignore()
                        .exec(con)?;
                    Ok(())
                })
            }
        }
    }

    /// Forgets a command (decided or expired).
    pub fn remove(&self, code: &str) -> Result<(), StoreError> {
        match &self.backend {
            None => Ok(()),
            Some(Backend::Sqlite(db)) => {
                db.conn.lock().execute(
                    "DELETE FROM waiting_commands WHERE code = ?1",
                    params![code],
                )?;
                Ok(())
            }
            Some(Backend::Redis(db)) => {
                let (key, index) = (record_key(db, code), db.key_of("waiting"));
                db.run(|con| {
                    ::redis::pipe()
                        .atomic()
                        .cmd("DEL")
                        .arg(&key)
                        .ignore()
                        .cmd("SREM")
                        .arg(&index)
                        .arg(code)
                        .ignore()
                        .exec(con)?;
                    Ok(())
                })
            }
        }
    }
}

/// `<prefix>waiting:<code>`.
fn record_key(db: &RedisBackend, code: &str) -> String {
    db.key_of(&format!("waiting:{code}"))
}

fn load_sqlite(db: &SqliteBackend) -> Result<Vec<Waiting>, StoreError> {
    let conn = db.conn.lock();
    let mut stmt = conn.prepare("SELECT code, sealed FROM waiting_commands")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (code, sealed) = row?;
        let corrupt = |why: &str| StoreError::Corrupt {
            what: format!("waiting command {code}: {why}"),
        };
        let plain = db
            .key
            .open(&record_aad(&code), &sealed)
            .map_err(|e| match e {
                OpenError::KeyMismatch { .. } => corrupt("sealed with another key"),
                OpenError::Authentication => corrupt("does not authenticate"),
                OpenError::Malformed => corrupt("malformed"),
            })?;
        out.push(parse(&code, &plain)?);
    }
    Ok(out)
}
