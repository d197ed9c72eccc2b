//! Where one of the newer stores (jobs, personal aliases, trigger tokens) keeps its data:
//! this process's memory, or the backend shared by every store (SQLite, Redis). Each store
//! is a cheap-to-clone handle over one `Place`; clones share the same data.

use std::sync::Arc;

use parking_lot::Mutex;

use super::{redis::RedisBackend, sqlite::SqliteBackend};

/// Where a store's data lives; `M` is its in-memory form.
pub(crate) enum Place<M> {
    /// In this process (`[store] backend = "memory"`): lost on restart.
    Memory(Arc<Mutex<M>>),
    /// The SQLite file.
    Sqlite(Arc<SqliteBackend>),
    /// The Redis server.
    Redis(Arc<RedisBackend>),
}

impl<M> Clone for Place<M> {
    fn clone(&self) -> Self {
        match self {
            Self::Memory(m) => Self::Memory(m.clone()),
            Self::Sqlite(db) => Self::Sqlite(db.clone()),
            Self::Redis(db) => Self::Redis(db.clone()),
        }
    }
}

impl<M: Default> Place<M> {
    /// A fresh place in this process's memory.
    pub(crate) fn memory() -> Self {
        Self::Memory(Arc::default())
    }
}

impl<M> Place<M> {
    /// Whether what is kept here survives a restart.
    pub(crate) fn is_persistent(&self) -> bool {
        !matches!(self, Self::Memory(_))
    }

    /// `Debug` for the store handle `name` (never its contents).
    pub(crate) fn debug(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(name)
            .field("persistent", &self.is_persistent())
            .finish()
    }
}
