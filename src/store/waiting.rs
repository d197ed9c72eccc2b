//! Persistence of the commands waiting for a confirmation or an approval
//! ([`crate::confirm`]).
//!
//! The dispatcher keeps the list in memory and writes every change through to here, so a
//! restarted bridge still knows what waits (an approval asked before a restart can be
//! given after it). With the memory backend there is nothing to write to. A waiting
//! command holds the command text, which may carry a secret parameter, so each record is
//! sealed with the store key like a session's credential.

use std::sync::Arc;

use rusqlite::params;

use super::{
    crypto::{aad, OpenError},
    error::StoreError,
    sqlite::{ms, SqliteBackend},
};
use crate::confirm::Waiting;

/// Where waiting commands are persisted; cheap to clone.
#[derive(Clone)]
pub struct WaitingStore {
    sqlite: Option<Arc<SqliteBackend>>,
}

impl std::fmt::Debug for WaitingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitingStore")
            .field("persistent", &self.sqlite.is_some())
            .finish()
    }
}

fn record_aad(code: &str) -> Vec<u8> {
    aad(&["waiting_command", code])
}

impl WaitingStore {
    /// Nowhere: every write succeeds and nothing is loaded.
    pub fn none() -> Self {
        Self { sqlite: None }
    }

    pub(super) fn sqlite(backend: Arc<SqliteBackend>) -> Self {
        Self {
            sqlite: Some(backend),
        }
    }

    /// Whether entries survive a restart.
    pub fn is_persistent(&self) -> bool {
        self.sqlite.is_some()
    }

    /// Every command saved. A record that cannot be opened (another key, damage) is an
    /// error naming it: a waiting command is never silently dropped or silently run.
    pub fn load(&self) -> Result<Vec<Waiting>, StoreError> {
        let Some(db) = &self.sqlite else {
            return Ok(Vec::new());
        };
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
            let waiting: Waiting =
                serde_json::from_slice(&plain).map_err(|e| corrupt(&e.to_string()))?;
            out.push(waiting);
        }
        Ok(out)
    }

    /// Saves a command (replacing one with the same code).
    pub fn insert(&self, waiting: &Waiting) -> Result<(), StoreError> {
        let Some(db) = &self.sqlite else {
            return Ok(());
        };
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(waiting).map_err(|e| {
            StoreError::Corrupt {
                what: format!("waiting command {}: {e}", waiting.code),
            }
        })?);
        let sealed = db.key.seal(&record_aad(&waiting.code), &plain)?;
        db.conn.lock().execute(
            "INSERT OR REPLACE INTO waiting_commands (code, sealed, expires_at) VALUES (?1, ?2, ?3)",
            params![waiting.code, sealed, ms(waiting.expires_at)],
        )?;
        Ok(())
    }

    /// Forgets a command (decided or expired).
    pub fn remove(&self, code: &str) -> Result<(), StoreError> {
        let Some(db) = &self.sqlite else {
            return Ok(());
        };
        db.conn.lock().execute(
            "DELETE FROM waiting_commands WHERE code = ?1",
            params![code],
        )?;
        Ok(())
    }
}
