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

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{
    error::StoreError,
    sqlite::{from_ms, ms, SqliteBackend},
};
use crate::domain::{announcement::SourceContext, result_ledger::PendingResult};

/// Where the ledger is persisted; cheap to clone.
#[derive(Clone)]
pub struct ResultStore {
    sqlite: Option<Arc<SqliteBackend>>,
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

    /// Every entry saved, oldest first.
    pub fn load(&self) -> Result<Vec<PendingResult>, StoreError> {
        let Some(db) = &self.sqlite else {
            return Ok(Vec::new());
        };
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

    /// Saves a new entry (replacing one with the same request id).
    pub fn insert(&self, record: &PendingResult) -> Result<(), StoreError> {
        let Some(db) = &self.sqlite else {
            return Ok(());
        };
        let context = serde_json::to_string(&record.context).map_err(|e| StoreError::Corrupt {
            what: format!("pending result {}: context: {e}", record.request_id),
        })?;
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

    /// Records StackStorm's execution id for a command.
    pub fn set_execution(&self, request_id: &str, execution_id: &str) -> Result<(), StoreError> {
        let Some(db) = &self.sqlite else {
            return Ok(());
        };
        db.conn.lock().execute(
            "UPDATE pending_results SET execution_id = ?2 WHERE request_id = ?1",
            params![request_id, execution_id],
        )?;
        Ok(())
    }

    /// Records that a command's result was delivered (`None`: it was not after all).
    pub fn set_delivered(
        &self,
        request_id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let Some(db) = &self.sqlite else {
            return Ok(());
        };
        db.conn.lock().execute(
            "UPDATE pending_results SET delivered_at = ?2 WHERE request_id = ?1",
            params![request_id, at.map(ms)],
        )?;
        Ok(())
    }

    /// Forgets entries.
    pub fn remove(&self, request_ids: &[String]) -> Result<(), StoreError> {
        let Some(db) = &self.sqlite else {
            return Ok(());
        };
        if request_ids.is_empty() {
            return Ok(());
        }
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
