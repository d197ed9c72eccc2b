//! `backend = "console"` settings.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::{ChatTable, PlatformSettings};

/// `backend = "console"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Id of the one user typing at the console.
    #[serde(default = "default_user_id")]
    pub user_id: String,
    /// Display name of that user.
    #[serde(default = "default_user_name")]
    pub user_name: String,
    /// Room the console user speaks in (lines starting `/dm ` are direct messages).
    #[serde(default = "default_room")]
    pub room: String,
    /// Split longer messages into parts; 0 means unlimited.
    #[serde(default)]
    pub max_message_length: usize,
    /// Stop the bridge when standard input ends (the demo does this).
    #[serde(default)]
    pub exit_on_eof: bool,
}

fn default_user_id() -> String {
    "console-user".into()
}
fn default_user_name() -> String {
    "Console User".into()
}
fn default_room() -> String {
    "console".into()
}

crate::platform_settings!(ConsoleSettings, "console");

/// Reads a `[[chat]]` table of `backend = "console"`.
pub fn parse(table: &mut ChatTable) -> Option<Arc<dyn PlatformSettings>> {
    let settings: ConsoleSettings = table.deserialize()?;
    Some(Arc::new(settings))
}
