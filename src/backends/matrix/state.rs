//! The connection's persisted position: the `/sync` `since` token and the device id, in a
//! state file ([`crate::backends::state_file`]).

use std::path::Path;

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

pub use crate::backends::state_file::StateError;

/// Reads the state; a missing file is `Ok(None)`.
pub fn load(path: &Path) -> Result<Option<SyncState>, StateError> {
    crate::backends::state_file::load("matrix", path)
}

/// Writes the state atomically.
pub fn save(path: &Path, state: &SyncState) -> Result<(), StateError> {
    crate::backends::state_file::save("matrix", path, state)
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
