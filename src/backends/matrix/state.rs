//! The connection's persisted position: the `/sync` `since` token and the device id, in a
//! small JSON file written atomically (a temporary file renamed over the old one), so a
//! crash mid-write leaves the previous position rather than a torn file.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// What is kept between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The account the position belongs to; a different account starts afresh.
    pub user_id: String,
    /// The device the bot logs in as, so restarts do not pile up devices.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The `next_batch` of the last sync whose messages were all handled.
    #[serde(default)]
    pub since: Option<String>,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("matrix state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not this format.
    #[error("matrix state file {path} is not valid: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
}

/// Reads the state; a missing file is `Ok(None)`.
pub fn load(path: &Path) -> Result<Option<SyncState>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::Format {
            path: path.to_owned(),
            source,
        })
}

/// Writes the state atomically.
pub fn save(path: &Path, state: &SyncState) -> Result<(), StateError> {
    let io = |source| StateError::Io {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("matrix.json");
        assert_eq!(load(&path).unwrap(), None);
        let state = SyncState {
            user_id: "@bot:x".into(),
            device_id: Some("DEV".into()),
            since: Some("s1_2".into()),
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "no temporary file is left behind");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(load(&path), Err(StateError::Format { .. })));
        let missing_dir = dir.path().join("nope").join("matrix.json");
        assert!(matches!(
            save(&missing_dir, &SyncState::default()),
            Err(StateError::Io { .. })
        ));
    }
}
