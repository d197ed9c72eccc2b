//! Persistence of the results owed to chat (`domain::result_ledger`).
//!
//! The `ResultTracker` actor keeps its ledger in memory and writes every change through
//! to here, so a restarted bridge knows which commands still owe their user a result and
//! which results it already posted. With the memory backend there is nothing to write to:
//! the ledger's own memory is all there is, and a restart forgets it.
//!
//! Nothing secret is stored: the command's chat coordinates, its alias and StackStorm's
//! execution id (not the command text, which may carry parameters someone would rather
//! not keep).
//!
//! In Redis (see `store::redis`), after the prefix: `result:<request id>` is the entry as
//! JSON, and `results` a sorted set of request ids scored by creation time (ms), which
//! gives the oldest-first order a restart loads them in.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{
    error::StoreError,
    redis::{from_json, get_json, to_json, RedisBackend},
    sqlite::{from_ms, ms, SqliteBackend},
};
use crate::domain::{announcement::SourceContext, result_ledger::PendingResult};

/// Where the entries go.
#[derive(Clone)]
enum Backend {
    Sqlite(Arc<SqliteBackend>),
    Redis(Arc<RedisBackend>),
}

/// Where the ledger is persisted; cheap to clone.
#[derive(Clone)]
pub struct ResultStore {
    backend: Option<Backend>,
}

impl std::fmt::Debug for ResultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultStore")
            .field("persistent", &self.is_persistent())
            .finish()
    }
}

impl ResultStore {
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

    /// Every entry saved, oldest first.
    pub fn load(&self) -> Result<Vec<PendingResult>, StoreError> {
        match &self.backend {
            None => Ok(Vec::new()),
            Some(Backend::Sqlite(db)) => in_sqlite::load(db),
            Some(Backend::Redis(db)) => in_redis::load(db),
        }
    }

    /// Saves a new entry (replacing one with the same request id).
    pub fn insert(&self, record: &PendingResult) -> Result<(), StoreError> {
        match &self.backend {
            None => Ok(()),
            Some(Backend::Sqlite(db)) => in_sqlite::insert(db, record),
            Some(Backend::Redis(db)) => in_redis::insert(db, record),
        }
    }

    /// Records StackStorm's execution id for a command.
    pub fn set_execution(&self, request_id: &str, execution_id: &str) -> Result<(), StoreError> {
        match &self.backend {
            None => Ok(()),
            Some(Backend::Sqlite(db)) => in_sqlite::set_execution(db, request_id, execution_id),
            Some(Backend::Redis(db)) => in_redis::update(db, request_id, |r| {
                r.execution_id = Some(execution_id.to_owned());
            }),
        }
    }

    /// Records that a command's result was posted (`None`: it was not after all).
    pub fn set_delivered(
        &self,
        request_id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            None => Ok(()),
            Some(Backend::Sqlite(db)) => in_sqlite::set_delivered(db, request_id, at),
            Some(Backend::Redis(db)) => in_redis::update(db, request_id, |r| {
                r.delivered_at_ms = at.map(ms);
            }),
        }
    }

    /// Forgets entries.
    pub fn remove(&self, request_ids: &[String]) -> Result<(), StoreError> {
        if request_ids.is_empty() {
            return Ok(());
        }
        match &self.backend {
            None => Ok(()),
            Some(Backend::Sqlite(db)) => in_sqlite::remove(db, request_ids),
            Some(Backend::Redis(db)) => in_redis::remove(db, request_ids),
        }
    }
}

/// The context as JSON, for either backend.
fn context_json(record: &PendingResult) -> Result<String, StoreError> {
    serde_json::to_string(&record.context).map_err(|e| StoreError::Corrupt {
        what: format!("pending result {}: context: {e}", record.request_id),
    })
}

/// The SQLite backend: the `pending_results` table (see `store::sqlite`).
mod in_sqlite {
    use super::*;

    pub(super) fn load(db: &SqliteBackend) -> Result<Vec<PendingResult>, StoreError> {
        let conn = db.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT request_id, execution_id, context, alias_ref, alias_id, created_at, \
             delivered_at FROM pending_results ORDER BY created_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (request_id, execution_id, context, alias_ref, alias_id, created, delivered) = row?;
            let context: SourceContext =
                serde_json::from_str(&context).map_err(|e| StoreError::Corrupt {
                    what: format!("pending result {request_id}: context: {e}"),
                })?;
            out.push(PendingResult {
                request_id,
                execution_id,
                context,
                alias_ref,
                alias_id,
                created_at: from_ms(created, "created_at")?,
                delivered_at: delivered.map(|d| from_ms(d, "delivered_at")).transpose()?,
            });
        }
        Ok(out)
    }

    pub(super) fn insert(db: &SqliteBackend, record: &PendingResult) -> Result<(), StoreError> {
        let context = context_json(record)?;
        db.conn.lock().execute(
            "INSERT OR REPLACE INTO pending_results (request_id, execution_id, context, \
             alias_ref, alias_id, created_at, delivered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                record.request_id,
                record.execution_id,
                context,
                record.alias_ref,
                record.alias_id,
                ms(record.created_at),
                record.delivered_at.map(ms),
            ],
        )?;
        Ok(())
    }

    pub(super) fn set_execution(
        db: &SqliteBackend,
        request_id: &str,
        execution_id: &str,
    ) -> Result<(), StoreError> {
        db.conn.lock().execute(
            "UPDATE pending_results SET execution_id = ?2 WHERE request_id = ?1",
            params![request_id, execution_id],
        )?;
        Ok(())
    }

    pub(super) fn set_delivered(
        db: &SqliteBackend,
        request_id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        db.conn.lock().execute(
            "UPDATE pending_results SET delivered_at = ?2 WHERE request_id = ?1",
            params![request_id, at.map(ms)],
        )?;
        Ok(())
    }

    pub(super) fn remove(db: &SqliteBackend, request_ids: &[String]) -> Result<(), StoreError> {
        let mut conn = db.conn.lock();
        let tx = conn.transaction()?;
        for id in request_ids {
            tx.execute(
                "DELETE FROM pending_results WHERE request_id = ?1",
                params![id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The Redis backend (keys in the module docs).
mod in_redis {
    use super::*;

    /// An entry as Redis keeps it (the domain type stays free of serde).
    #[derive(Serialize, Deserialize)]
    pub(super) struct Entry {
        pub(super) execution_id: Option<String>,
        pub(super) context: SourceContext,
        pub(super) alias_ref: String,
        pub(super) alias_id: Option<String>,
        pub(super) created_at_ms: i64,
        pub(super) delivered_at_ms: Option<i64>,
    }

    fn entry_key(db: &RedisBackend, request_id: &str) -> String {
        db.key_of(&format!("result:{request_id}"))
    }

    fn what(request_id: &str) -> impl Fn() -> String + '_ {
        move || format!("pending result {request_id}")
    }

    pub(super) fn load(db: &RedisBackend) -> Result<Vec<PendingResult>, StoreError> {
        let index = db.key_of("results");
        db.run(|con| {
            let ids: Vec<String> = ::redis::cmd("ZRANGE")
                .arg(&index)
                .arg(0)
                .arg(-1)
                .query(con)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|id| entry_key(db, id)).collect();
            let values: Vec<Option<String>> = ::redis::cmd("MGET").arg(&keys).query(con)?;
            let mut out = Vec::new();
            // An id whose entry is gone was removed between the two reads: skipped.
            for (request_id, text) in ids.into_iter().zip(values) {
                let Some(text) = text else { continue };
                let entry: Entry = from_json(&text, what(&request_id))?;
                out.push(PendingResult {
                    execution_id: entry.execution_id,
                    context: entry.context,
                    alias_ref: entry.alias_ref,
                    alias_id: entry.alias_id,
                    created_at: from_ms(entry.created_at_ms, "created_at")?,
                    delivered_at: entry
                        .delivered_at_ms
                        .map(|d| from_ms(d, "delivered_at"))
                        .transpose()?,
                    request_id,
                });
            }
            Ok(out)
        })
    }

    pub(super) fn insert(db: &RedisBackend, record: &PendingResult) -> Result<(), StoreError> {
        let entry = Entry {
            execution_id: record.execution_id.clone(),
            context: record.context.clone(),
            alias_ref: record.alias_ref.clone(),
            alias_id: record.alias_id.clone(),
            created_at_ms: ms(record.created_at),
            delivered_at_ms: record.delivered_at.map(ms),
        };
        let text = to_json(&entry)?;
        let (key, index) = (entry_key(db, &record.request_id), db.key_of("results"));
        db.run(|con| {
            ::redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(&text)
                .ignore()
                .cmd("ZADD")
                .arg(&index)
                .arg(entry.created_at_ms)
                .arg(&record.request_id)
                .ignore()
                .exec(con)?;
            Ok(())
        })
    }

    /// Changes an entry, if there still is one (as SQLite's `UPDATE … WHERE`).
    pub(super) fn update(
        db: &RedisBackend,
        request_id: &str,
        change: impl Fn(&mut Entry),
    ) -> Result<(), StoreError> {
        let key = entry_key(db, request_id);
        db.atomically(std::slice::from_ref(&key), |con, pipe| {
            let Some(mut entry) = get_json::<Entry>(con, &key, what(request_id))? else {
                return Ok(());
            };
            change(&mut entry);
            pipe.cmd("SET").arg(&key).arg(to_json(&entry)?).ignore();
            Ok(())
        })
    }

    pub(super) fn remove(db: &RedisBackend, request_ids: &[String]) -> Result<(), StoreError> {
        let keys: Vec<String> = request_ids.iter().map(|id| entry_key(db, id)).collect();
        let index = db.key_of("results");
        db.run(|con| {
            ::redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&keys)
                .ignore()
                .cmd("ZREM")
                .arg(&index)
                .arg(request_ids)
                .ignore()
                .exec(con)?;
            Ok(())
        })
    }
}
