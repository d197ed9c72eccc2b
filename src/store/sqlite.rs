//! SQLite backend: sessions survive restarts; secrets are sealed at rest.
//!
//! One connection behind a `parking_lot::Mutex` (SQLite serialises writers
//! anyway, and the bridge's session traffic is tiny). WAL journal mode,
//! `PRAGMA user_version` migrations, parameterised statements only.
//!
//! The WAL is copied into the database file (checkpointed) by a thread of its
//! own with a second connection, nudged every [`WRITES_PER_CHECKPOINT`] writes
//! made through [`SqliteBackend::write`]. SQLite's automatic checkpoint would
//! run inside whichever commit crosses its threshold, and add 5–40 ms to that
//! command every few dozen (every chat command writes its job); it stays on only
//! as a backstop at [`WAL_BACKSTOP_PAGES`].
//!
//! # Schema (v1, plus v2's `pending_results`, v3's `waiting_commands`, v4's jobs,
//! personal aliases and trigger tokens, and v5's columns)
//!
//! ```sql
//! CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
//!   -- 'key_check': sealed constant proving the key; 'key_id'; 'created_at'
//! CREATE TABLE sessions (
//!   id TEXT PRIMARY KEY, user_key TEXT NOT NULL,
//!   state TEXT NOT NULL CHECK (state IN ('pending','active')),
//!   created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,   -- ms since epoch
//!   link_hash TEXT UNIQUE, link_expires_at INTEGER, word_hash TEXT,  -- pending only
//!   attempts INTEGER NOT NULL DEFAULT 0,
//!   cred_kind TEXT, cred_secret TEXT, cred_st2_user TEXT, cred_expires_at INTEGER, -- active only
//!   ...CHECKs tie the link columns to 'pending' and the credential columns to 'active'
//! ) STRICT;
//! CREATE UNIQUE INDEX sessions_user_state ON sessions (user_key, state);
//! CREATE TABLE used_links (link_hash TEXT PRIMARY KEY, used_at INTEGER NOT NULL,
//!                          expires_at INTEGER NOT NULL) STRICT;
//! -- v2
//! CREATE TABLE pending_results (request_id TEXT PRIMARY KEY, execution_id TEXT,
//!   context TEXT NOT NULL,   -- the command's SourceContext as JSON (no secrets)
//!   alias_ref TEXT NOT NULL, alias_id TEXT,
//!   created_at INTEGER NOT NULL, delivered_at INTEGER) STRICT;
//! -- v3
//! CREATE TABLE waiting_commands (code TEXT PRIMARY KEY,
//!   sealed TEXT NOT NULL,    -- the waiting command as JSON, sealed (its text may hold secrets)
//!   expires_at INTEGER NOT NULL) STRICT;
//! -- v4 (see `store::jobs`, `store::personal_aliases`, `store::trigger_tokens`)
//! CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a purge
//!   user_key TEXT NOT NULL, user_name TEXT NOT NULL, connection TEXT NOT NULL,
//!   room_id TEXT NOT NULL, room_name TEXT, room_kind TEXT NOT NULL, thread TEXT,
//!   text TEXT NOT NULL,              -- masked by the caller, like `parameters`: not sealed
//!   kind TEXT NOT NULL, target TEXT NOT NULL,   -- 'alias' + alias ref, 'local'/'builtin' + command
//!   parameters TEXT NOT NULL,        -- JSON object
//!   execution_ids TEXT NOT NULL,     -- JSON array, in StackStorm's order
//!   status TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
//!   finished_at INTEGER, decided_by TEXT, output TEXT NOT NULL) STRICT;
//! CREATE INDEX jobs_user ON jobs (user_key, id);        -- a user's jobs, newest first
//! CREATE INDEX jobs_unfinished ON jobs (id) WHERE finished_at IS NULL;  -- stays small
//! CREATE TABLE job_executions (execution_id TEXT PRIMARY KEY,  -- job by execution
//!   job_id INTEGER NOT NULL, status TEXT NOT NULL) STRICT, WITHOUT ROWID;
//! CREATE TABLE personal_aliases (user_key TEXT NOT NULL, name TEXT NOT NULL,
//!   sealed TEXT NOT NULL,            -- the command text, sealed (it may hold secrets)
//!   created_at INTEGER NOT NULL, PRIMARY KEY (user_key, name)) STRICT, WITHOUT ROWID;
//! CREATE TABLE trigger_tokens (id TEXT PRIMARY KEY,
//!   hash BLOB NOT NULL,              -- SHA-256 of the whole token; the token is kept nowhere
//!   user_key TEXT NOT NULL, user_name TEXT NOT NULL, connection TEXT NOT NULL,
//!   room_id TEXT NOT NULL, room_name TEXT, room_kind TEXT NOT NULL, thread TEXT,
//!   command TEXT NOT NULL,           -- sealed
//!   created_by TEXT NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER,
//!   uses INTEGER NOT NULL, revoked_at INTEGER) STRICT;   -- revoked rows stay as tombstones
//! CREATE INDEX trigger_tokens_user ON trigger_tokens (user_key);
//! -- v5
//! ALTER TABLE jobs ADD COLUMN run_started_at INTEGER;  -- StackStorm's start_timestamp (ms)
//! ALTER TABLE jobs ADD COLUMN run_ended_at INTEGER;    -- StackStorm's end_timestamp (ms)
//! ALTER TABLE jobs ADD COLUMN web_urls TEXT NOT NULL DEFAULT '{}';  -- execution id -> web_url
//! ALTER TABLE trigger_tokens ADD COLUMN org TEXT;      -- the creating message's organisation
//! ```
//!
//! The file is marked with `PRAGMA application_id = 0x53425331` ("SBS1")
//! and `PRAGMA user_version = 5`; `secure_delete` is on so deleted rows do
//! not linger in free pages, and the file is created with mode 0600.
//!
//! `cred_secret` holds `v1:<key id>:<nonce>:<ciphertext>` sealed with
//! associated data (session id, `"credential"`, user key). `word_hash` and
//! `link_hash` are one-way hashes and stored as such.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::crypto::{aad, OpenError, StoreKey};
use super::error::StoreError;
use super::model::{
    effective_expiry, CredentialKind, PendingLink, Session, SessionState, SessionSummary,
    StoredCredential, UserKey, WordHash,
};
use super::{activated, LinkLookup};

/// Highest schema version this build reads and writes.
const SCHEMA_VERSION: i64 = 5;

/// `PRAGMA application_id` marking the file as ours ("SBS1"), so a foreign
/// database is refused instead of being written into.
const APPLICATION_ID: i32 = 0x5342_5331;

/// Writes through [`SqliteBackend::write`] between two nudges of the checkpoint
/// thread. A command's write is a few WAL pages, so the WAL stays around 1 MB.
const WRITES_PER_CHECKPOINT: u32 = 64;

/// WAL pages (4 KiB each) at which a committing writer checkpoints itself: only
/// if the checkpoint thread falls far behind. SQLite's default is 1,000.
const WAL_BACKSTOP_PAGES: u32 = 10_000;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1
    "CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    CREATE TABLE sessions (
        id              TEXT PRIMARY KEY,
        user_key        TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'active')),
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        link_hash       TEXT UNIQUE,
        link_expires_at INTEGER,
        word_hash       TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        cred_kind       TEXT CHECK (cred_kind IN ('token', 'api_key')),
        cred_secret     TEXT,
        cred_st2_user   TEXT,
        cred_expires_at INTEGER,
        CHECK ((state = 'pending') = (link_hash IS NOT NULL
                                      AND link_expires_at IS NOT NULL
                                      AND word_hash IS NOT NULL)),
        CHECK ((state = 'active') = (cred_kind IS NOT NULL
                                     AND cred_secret IS NOT NULL
                                     AND cred_st2_user IS NOT NULL))
    ) STRICT;
    CREATE UNIQUE INDEX sessions_user_state ON sessions (user_key, state);
    CREATE TABLE used_links (
        link_hash  TEXT PRIMARY KEY,
        used_at    INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;",
    // v2: results owed to chat (see `store::results`).
    "CREATE TABLE pending_results (
        request_id   TEXT PRIMARY KEY,
        execution_id TEXT,
        context      TEXT NOT NULL,
        alias_ref    TEXT NOT NULL,
        alias_id     TEXT,
        created_at   INTEGER NOT NULL,
        delivered_at INTEGER
    ) STRICT;",
    // v3: commands waiting for a confirmation or an approval (see `store::waiting`).
    "CREATE TABLE waiting_commands (
        code       TEXT PRIMARY KEY,
        sealed     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;",
    // v4: jobs, personal aliases and trigger tokens (see `store::jobs`,
    // `store::personal_aliases`, `store::trigger_tokens`).
    "CREATE TABLE jobs (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        user_key      TEXT NOT NULL,
        user_name     TEXT NOT NULL,
        connection    TEXT NOT NULL,
        room_id       TEXT NOT NULL,
        room_name     TEXT,
        room_kind     TEXT NOT NULL CHECK (room_kind IN ('direct', 'group')),
        thread        TEXT,
        text          TEXT NOT NULL,
        kind          TEXT NOT NULL CHECK (kind IN ('alias', 'local', 'builtin')),
        target        TEXT NOT NULL,
        parameters    TEXT NOT NULL,
        execution_ids TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ('requested', 'running', 'succeeded',
                          'failed', 'canceled', 'timedout', 'refused', 'unknown')),
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        finished_at   INTEGER,
        decided_by    TEXT,
        output        TEXT NOT NULL
    ) STRICT;
    CREATE INDEX jobs_user ON jobs (user_key, id);
    CREATE INDEX jobs_unfinished ON jobs (id) WHERE finished_at IS NULL;
    CREATE TABLE job_executions (
        execution_id TEXT PRIMARY KEY,
        job_id       INTEGER NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('requested', 'running', 'succeeded',
                         'failed', 'canceled', 'timedout', 'refused', 'unknown'))
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE personal_aliases (
        user_key   TEXT NOT NULL,
        name       TEXT NOT NULL,
        sealed     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (user_key, name)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE trigger_tokens (
        id           TEXT PRIMARY KEY,
        hash         BLOB NOT NULL,
        user_key     TEXT NOT NULL,
        user_name    TEXT NOT NULL,
        connection   TEXT NOT NULL,
        room_id      TEXT NOT NULL,
        room_name    TEXT,
        room_kind    TEXT NOT NULL CHECK (room_kind IN ('direct', 'group')),
        thread       TEXT,
        command      TEXT NOT NULL,
        created_by   TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        uses         INTEGER NOT NULL CHECK (uses >= 0),
        revoked_at   INTEGER
    ) STRICT;
    CREATE INDEX trigger_tokens_user ON trigger_tokens (user_key);",
    // v5: StackStorm's own run times and links on jobs; a trigger token's organisation.
    "ALTER TABLE jobs ADD COLUMN run_started_at INTEGER;
    ALTER TABLE jobs ADD COLUMN run_ended_at INTEGER;
    ALTER TABLE jobs ADD COLUMN web_urls TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE trigger_tokens ADD COLUMN org TEXT;",
];

/// Plaintext of the key check value sealed into `meta` at creation.
const KEY_CHECK_PLAINTEXT: &[u8] = b"stormbridge session store key check v1";
const KEY_CHECK_FIELD: &str = "key_check";
const CREDENTIAL_FIELD: &str = "credential";

const SESSION_COLUMNS: &str = "id, user_key, state, created_at, expires_at, link_hash, \
     link_expires_at, word_hash, attempts, cred_kind, cred_secret, cred_st2_user, cred_expires_at";

pub(crate) struct SqliteBackend {
    pub(super) conn: Mutex<Connection>,
    pub(super) key: StoreKey,
    path: PathBuf,
    /// Declared after `conn`, so it drops last: its connection is then the last
    /// one to close, and closing checkpoints the WAL and removes it.
    checkpointer: Checkpointer,
}

impl SqliteBackend {
    pub(crate) fn open(path: &Path, key: &StoreKey) -> Result<Self, StoreError> {
        create_private_file(path)?;
        let not_a_db = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::NotAStore {
                path: path.to_path_buf(),
                reason: "it is not an SQLite database",
            },
            _ => StoreError::Sqlite(e),
        };
        let mut conn = Connection::open(path).map_err(not_a_db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The first statement that reads the header is where a non-SQLite
        // file shows itself.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(not_a_db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        // WAL: readers never block the writer, and a crash cannot tear a
        // transaction. Some file systems (network mounts) refuse it; SQLite
        // then stays in its rollback journal, which is slower but correct.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        // NORMAL is durable enough in WAL mode (a power cut can lose the last
        // commit, never corrupt), and avoids an fsync per command.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Overwrite deleted rows so old word hashes and sealed values do not
        // linger in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        // The checkpoint thread does this job; see the module docs.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;

        if version > 0 {
            let app_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
            if app_id != APPLICATION_ID {
                return Err(StoreError::NotAStore {
                    path: path.to_path_buf(),
                    reason: "it belongs to another application",
                });
            }
        }
        migrate(&mut conn, path, key)?;
        verify_key(&conn, path, key)?;
        Ok(Self {
            conn: Mutex::new(conn),
            key: key.clone(),
            path: path.to_path_buf(),
            checkpointer: Checkpointer::start(path)?,
        })
    }

    /// Runs `f` in an immediate transaction and commits it if `f` succeeds (an
    /// error rolls everything back), then counts the write toward the next
    /// background checkpoint.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let value = {
            let mut conn = self.conn.lock();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            value
        };
        self.checkpointer.wrote();
        Ok(value)
    }

    pub(crate) fn insert_pending(&self, session: &Session) -> Result<(), StoreError> {
        let link = session.link.as_ref().ok_or(StoreError::InvalidInput {
            what: "a pending session needs a link",
        })?;
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM sessions WHERE user_key = ?1 AND state = 'pending'",
            params![session.user.as_str()],
        )?;
        tx.execute(
            "INSERT INTO sessions (id, user_key, state, created_at, expires_at, link_hash, \
             link_expires_at, word_hash, attempts) \
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                session.id,
                session.user.as_str(),
                ms(session.created_at),
                ms(session.expires_at),
                link.link_hash,
                ms(link.expires_at),
                link.word_hash.encode(),
                session.attempts,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn find_link(&self, link_hash: &str) -> Result<LinkLookup, StoreError> {
        let conn = self.conn.lock();
        let row = conn
            .query_row(
                "SELECT id, user_key, link_expires_at, word_hash, attempts FROM sessions \
                 WHERE link_hash = ?1 AND state = 'pending'",
                params![link_hash],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, u32>(4)?,
                    ))
                },
            )
            .optional()?;
        if let Some((session_id, user, link_expires_at, word_hash, attempts)) = row {
            return Ok(LinkLookup::Pending {
                link: PendingLink {
                    link_hash: link_hash.to_owned(),
                    expires_at: from_ms(link_expires_at, "link_expires_at")?,
                    word_hash: decode_word_hash(&word_hash, &session_id)?,
                },
                session_id,
                user: UserKey(user),
                attempts,
            });
        }
        let used = conn
            .query_row(
                "SELECT 1 FROM used_links WHERE link_hash = ?1",
                params![link_hash],
                |_| Ok(()),
            )
            .optional()?;
        Ok(if used.is_some() {
            LinkLookup::Used
        } else {
            LinkLookup::Unknown
        })
    }

    /// Adds one attempt if the link is still pending with `seen` attempts
    /// (one atomic statement, so it holds across processes too).
    pub(crate) fn charge_attempt(
        &self,
        session_id: &str,
        link_hash: &str,
        seen: u32,
    ) -> Result<bool, StoreError> {
        let changed = self.conn.lock().execute(
            "UPDATE sessions SET attempts = attempts + 1 \
             WHERE id = ?1 AND link_hash = ?2 AND state = 'pending' AND attempts = ?3",
            params![session_id, link_hash, seen],
        )?;
        Ok(changed > 0)
    }

    pub(crate) fn activate(
        &self,
        session_id: &str,
        link_hash: &str,
        credential: StoredCredential,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let pending = tx
            .query_row(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions \
                     WHERE id = ?1 AND link_hash = ?2 AND state = 'pending'"
                ),
                params![session_id, link_hash],
                RawSession::from_row,
            )
            .optional()?;
        let Some(pending) = pending else {
            return Ok(None);
        };
        let pending = pending.into_session(&self.key, &self.path)?;
        let sealed = self.key.seal(
            &credential_aad(&pending.id, &pending.user),
            credential.secret.expose_secret().as_bytes(),
        )?;
        let (kind, st2_user, cred_expires_at) = (
            credential.kind,
            credential.st2_user.clone(),
            credential.expires_at,
        );
        let link_expiry = pending.link.as_ref().map_or(now, |l| l.expires_at);
        let session = activated(&pending, credential, now);
        // The previous active session is replaced only now, in the same
        // transaction that installs the new one.
        tx.execute(
            "DELETE FROM sessions WHERE user_key = ?1 AND state = 'active'",
            params![session.user.as_str()],
        )?;
        tx.execute(
            "UPDATE sessions SET state = 'active', expires_at = ?2, link_hash = NULL, \
             link_expires_at = NULL, word_hash = NULL, attempts = 0, cred_kind = ?3, \
             cred_secret = ?4, cred_st2_user = ?5, cred_expires_at = ?6 WHERE id = ?1",
            params![
                session.id,
                ms(session.expires_at),
                kind.as_str(),
                sealed,
                st2_user,
                cred_expires_at.map(ms),
            ],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO used_links (link_hash, used_at, expires_at) \
             VALUES (?1, ?2, ?3)",
            params![link_hash, ms(now), ms(link_expiry)],
        )?;
        tx.commit()?;
        Ok(Some(session))
    }

    pub(crate) fn active_session(&self, user: &UserKey) -> Result<Option<Session>, StoreError> {
        let raw = self
            .conn
            .lock()
            .query_row(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions \
                     WHERE user_key = ?1 AND state = 'active'"
                ),
                params![user.as_str()],
                RawSession::from_row,
            )
            .optional()?;
        // Decrypt after releasing the lock.
        raw.map(|r| r.into_session(&self.key, &self.path))
            .transpose()
    }

    pub(crate) fn has_active(&self, user: &UserKey) -> Result<bool, StoreError> {
        let found = self
            .conn
            .lock()
            .query_row(
                "SELECT 1 FROM sessions WHERE user_key = ?1 AND state = 'active'",
                params![user.as_str()],
                |_| Ok(()),
            )
            .optional()?;
        Ok(found.is_some())
    }

    pub(crate) fn remove_user(&self, user: &UserKey) -> Result<bool, StoreError> {
        let n = self.conn.lock().execute(
            "DELETE FROM sessions WHERE user_key = ?1",
            params![user.as_str()],
        )?;
        Ok(n > 0)
    }

    pub(crate) fn remove(&self, session_id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .lock()
            .execute("DELETE FROM sessions WHERE id = ?1", params![session_id])?;
        Ok(n > 0)
    }

    pub(crate) fn summaries(&self) -> Result<Vec<SessionSummary>, StoreError> {
        // Only non-secret columns: listing never decrypts anything.
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT id, user_key, state, created_at, expires_at, link_expires_at, \
             cred_expires_at FROM sessions",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<i64>>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, user, state, created_at, expires_at, link_expires_at, cred_expires_at) = row?;
            let state = parse_state(&state)?;
            let expires_at = from_ms(expires_at, "expires_at")?;
            let link_expires_at = link_expires_at
                .map(|t| from_ms(t, "link_expires_at"))
                .transpose()?;
            let cred_expires_at = cred_expires_at
                .map(|t| from_ms(t, "cred_expires_at"))
                .transpose()?;
            out.push(SessionSummary {
                id,
                user: UserKey(user),
                state,
                created_at: from_ms(created_at, "created_at")?,
                expires_at: effective_expiry(state, expires_at, link_expires_at, cred_expires_at),
            });
        }
        Ok(out)
    }

    pub(crate) fn purge(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = tx.execute(
            "DELETE FROM sessions WHERE \
             (state = 'pending' AND link_expires_at <= ?1) OR \
             (state = 'active' AND (expires_at <= ?1 OR cred_expires_at <= ?1))",
            params![ms(now)],
        )?;
        tx.execute(
            "DELETE FROM used_links WHERE expires_at <= ?1",
            params![ms(now)],
        )?;
        tx.commit()?;
        Ok(removed)
    }

    /// Seals `text` for the row and column that `aad_parts` name (see [`aad`]).
    pub(super) fn seal_text(&self, aad_parts: &[&str], text: &str) -> Result<String, StoreError> {
        self.key.seal(&aad(aad_parts), text.as_bytes())
    }

    /// Opens a value made by [`SqliteBackend::seal_text`] with the same `aad_parts`; a
    /// failure is [`StoreError::Corrupt`] naming the value with `what()` (a description,
    /// never the value).
    pub(super) fn open_text(
        &self,
        aad_parts: &[&str],
        sealed: &str,
        what: impl Fn() -> String,
    ) -> Result<String, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt {
            what: format!("{}: {why}", what()),
        };
        let mut plain = self
            .key
            .open(&aad(aad_parts), sealed)
            .map_err(|e| match e {
                OpenError::KeyMismatch { .. } => corrupt("sealed with another key"),
                OpenError::Authentication => corrupt("does not authenticate"),
                OpenError::Malformed => corrupt("malformed"),
            })?;
        // Moved out, not copied: the only plaintext left is the returned string.
        String::from_utf8(std::mem::take(&mut *plain)).map_err(|_| corrupt("not text"))
    }
}

/// Checkpoints the WAL from a thread of its own (see the module docs).
struct Checkpointer {
    writes: AtomicU32,
    /// Dropped first on shutdown, which ends the thread.
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // One pending nudge is enough: a checkpoint copies everything written so far.
        let (nudge, nudged) = sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    // PASSIVE copies what it can without waiting for or blocking
                    // anyone; what it leaves is copied next time.
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(error) = done {
                        tracing::warn!(%error, "session store: checkpointing the WAL failed");
                    }
                }
            })
            .map_err(|error| StoreError::Io {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(Self {
            writes: AtomicU32::new(0),
            nudge: Some(nudge),
            thread: Some(thread),
        })
    }

    /// Counts one write; every [`WRITES_PER_CHECKPOINT`]th nudges the thread.
    fn wrote(&self) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        if n % WRITES_PER_CHECKPOINT == WRITES_PER_CHECKPOINT - 1 {
            if let Some(nudge) = &self.nudge {
                // Full: a checkpoint is already due, which covers this write too.
                let _ = nudge.try_send(());
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(thread) = self.thread.take() {
            // It finishes at most one checkpoint; a panic there has been reported.
            let _ = thread.join();
        }
    }
}

/// Creates the database file readable by its owner only, before SQLite
/// does (SQLite would use the umask, typically 0644). SQLite gives the WAL
/// and shared-memory files the same permissions as the database.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::Io {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// Brings the schema up to [`SCHEMA_VERSION`]; creating v1 also seals the
/// key check value with `key`.
fn migrate(conn: &mut Connection, path: &Path, key: &StoreKey) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated.
    let mut version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        let objects: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if objects > 0 {
            return Err(StoreError::NotAStore {
                path: path.to_path_buf(),
                reason: "it already holds tables but has no stormbridge schema version",
            });
        }
    }
    while version < SCHEMA_VERSION {
        let step = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
            .ok_or(StoreError::Corrupt {
                what: format!("no migration from schema version {version}"),
            })?;
        tx.execute_batch(step)?;
        if version == 0 {
            let check = key.seal(&key_check_aad(), KEY_CHECK_PLAINTEXT)?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('key_check', ?1), ('key_id', ?2), \
                 ('created_at', ?3)",
                params![check, key.key_id(), Utc::now().to_rfc3339()],
            )?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        version += 1;
        tx.pragma_update(None, "user_version", version)?;
    }
    tx.commit()?;
    Ok(())
}

/// Proves `key` is the key the database was created with, before anything
/// is read or written with it.
fn verify_key(conn: &Connection, path: &Path, key: &StoreKey) -> Result<(), StoreError> {
    let meta = |name: &str| -> Result<Option<String>, StoreError> {
        Ok(conn
            .query_row(
                "SELECT value FROM meta WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    };
    let check = meta("key_check")?.ok_or(StoreError::Corrupt {
        what: "the key check value is missing".to_owned(),
    })?;
    let wrong_key = |expected: String| StoreError::WrongKey {
        path: path.to_path_buf(),
        expected,
        given: key.key_id().to_owned(),
    };
    match key.open(&key_check_aad(), &check) {
        Ok(plain) if plain[..] == *KEY_CHECK_PLAINTEXT => Ok(()),
        Ok(_) | Err(OpenError::Authentication) => Err(wrong_key(
            meta("key_id")?.unwrap_or_else(|| "unknown".to_owned()),
        )),
        Err(OpenError::KeyMismatch { found }) => Err(wrong_key(found)),
        Err(OpenError::Malformed) => Err(StoreError::Corrupt {
            what: "the key check value is malformed".to_owned(),
        }),
    }
}

fn key_check_aad() -> Vec<u8> {
    aad(&["meta", KEY_CHECK_FIELD])
}

/// Binds a sealed credential to its session *and* user, so a row edited to
/// point at another user fails to decrypt. The Redis backend seals with the
/// same binding, so a credential is sealed alike wherever it is kept.
pub(super) fn credential_aad(session_id: &str, user: &UserKey) -> Vec<u8> {
    aad(&[session_id, CREDENTIAL_FIELD, user.as_str()])
}

/// One `sessions` row as stored (`cred_secret` still sealed, `word_hash`
/// encoded, times in ms).
///
/// It is also the Redis backend's `session:<id>` record, as JSON (see
/// `store::redis_sessions`): the field names are a stored format there, so
/// renaming one needs a `#[serde(rename)]` to keep reading existing records.
#[derive(Serialize, Deserialize)]
pub(super) struct RawSession {
    pub(super) id: String,
    pub(super) user_key: String,
    pub(super) state: String,
    pub(super) created_at: i64,
    pub(super) expires_at: i64,
    pub(super) link_hash: Option<String>,
    pub(super) link_expires_at: Option<i64>,
    pub(super) word_hash: Option<String>,
    pub(super) attempts: u32,
    pub(super) cred_kind: Option<String>,
    pub(super) cred_secret: Option<String>,
    pub(super) cred_st2_user: Option<String>,
    pub(super) cred_expires_at: Option<i64>,
}

impl RawSession {
    /// Reads the columns in [`SESSION_COLUMNS`] order.
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            user_key: r.get(1)?,
            state: r.get(2)?,
            created_at: r.get(3)?,
            expires_at: r.get(4)?,
            link_hash: r.get(5)?,
            link_expires_at: r.get(6)?,
            word_hash: r.get(7)?,
            attempts: r.get(8)?,
            cred_kind: r.get(9)?,
            cred_secret: r.get(10)?,
            cred_st2_user: r.get(11)?,
            cred_expires_at: r.get(12)?,
        })
    }

    fn into_session(self, key: &StoreKey, path: &Path) -> Result<Session, StoreError> {
        self.open(key, |found| StoreError::WrongKey {
            path: path.to_path_buf(),
            expected: found,
            given: key.key_id().to_owned(),
        })
    }

    /// The session this row describes, its credential opened with `key`.
    /// `other_key` makes the error for a credential sealed with another key
    /// (given that key's id): what that means depends on the backend.
    pub(super) fn open(
        self,
        key: &StoreKey,
        other_key: impl FnOnce(String) -> StoreError,
    ) -> Result<Session, StoreError> {
        let user = UserKey(self.user_key);
        let link = match (self.link_hash, self.link_expires_at, self.word_hash) {
            (Some(link_hash), Some(expires_at), Some(word_hash)) => Some(PendingLink {
                link_hash,
                expires_at: from_ms(expires_at, "link_expires_at")?,
                word_hash: decode_word_hash(&word_hash, &self.id)?,
            }),
            _ => None,
        };
        let credential = match (self.cred_kind, self.cred_secret, self.cred_st2_user) {
            (Some(kind), Some(sealed), Some(st2_user)) => {
                let kind = CredentialKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                    what: format!("unknown credential kind in session {}", self.id),
                })?;
                let secret = open_secret(key, &self.id, &user, &sealed, other_key)?;
                Some(StoredCredential {
                    kind,
                    secret,
                    st2_user,
                    expires_at: self
                        .cred_expires_at
                        .map(|t| from_ms(t, "cred_expires_at"))
                        .transpose()?,
                })
            }
            _ => None,
        };
        Ok(Session {
            state: parse_state(&self.state)?,
            created_at: from_ms(self.created_at, "created_at")?,
            expires_at: from_ms(self.expires_at, "expires_at")?,
            id: self.id,
            user,
            link,
            credential,
            attempts: self.attempts,
        })
    }
}

/// Decrypts a credential into a `SecretString` without leaving plaintext
/// copies behind: the decrypted buffer is wiped on drop, and the string is
/// allocated once at its exact size.
fn open_secret(
    key: &StoreKey,
    session_id: &str,
    user: &UserKey,
    sealed: &str,
    other_key: impl FnOnce(String) -> StoreError,
) -> Result<SecretString, StoreError> {
    let plain = key
        .open(&credential_aad(session_id, user), sealed)
        .map_err(|e| match e {
            OpenError::KeyMismatch { found } => other_key(found),
            OpenError::Authentication => StoreError::Decrypt {
                session_id: session_id.to_owned(),
                field: CREDENTIAL_FIELD,
            },
            OpenError::Malformed => StoreError::Corrupt {
                what: format!("the sealed credential of session {session_id} is malformed"),
            },
        })?;
    let text = std::str::from_utf8(&plain).map_err(|_| StoreError::Corrupt {
        what: format!("the credential of session {session_id} is not text"),
    })?;
    Ok(SecretString::from(text))
}

/// Decodes a stored [`WordHash::encode`]; a malformed one is
/// [`StoreError::Corrupt`] naming the session (never the hash).
pub(super) fn decode_word_hash(text: &str, session_id: &str) -> Result<WordHash, StoreError> {
    WordHash::decode(text).ok_or_else(|| StoreError::Corrupt {
        what: format!("the word hash of session {session_id} is malformed"),
    })
}

fn parse_state(s: &str) -> Result<SessionState, StoreError> {
    SessionState::parse(s).ok_or(StoreError::Corrupt {
        what: "unknown session state".to_owned(),
    })
}

/// Times are stored as milliseconds since the Unix epoch.
pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(value: i64, column: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(value).ok_or_else(|| StoreError::Corrupt {
        what: format!("{column} is out of range"),
    })
}
