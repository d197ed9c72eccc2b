//! A connection's small persisted state (Matrix's sync position, Teams' service URLs): one
//! JSON file written atomically — a temporary file, fsynced, renamed over the old one — so a
//! crash mid-write leaves the previous state rather than a torn file.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Serialize};

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{what} state file {path}: {source}")]
    Io {
        /// Whose state (`matrix`, `teams`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not this format.
    #[error("{what} state file {path} is not valid: {source}")]
    Format {
        /// Whose state.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
}

/// Reads `what`'s state from `path`; a missing file is `Ok(None)`.
pub fn load<T: DeserializeOwned>(what: &'static str, path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                what,
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::Format {
            what,
            path: path.to_owned(),
            source,
        })
}

/// Writes `what`'s `state` to `path` atomically.
pub fn save<T: Serialize>(what: &'static str, path: &Path, state: &T) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    // A name of its own per write: a write left running by a restarted connection must not
    // share (and truncate) another write's temporary file.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let tmp = PathBuf::from(tmp);
    let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        // Nothing half-written is left beside the state file.
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}
