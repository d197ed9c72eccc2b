//! Addressing the person a message in a room is for, the way hubot-stackstorm did: its
//! messaging handlers put `@<user>: ` (Slack and its kin) or `<user>: ` (the rest) before a
//! result posted in a channel, never before a whisper (`src/lib/messaging_handler/*.js`).
//!
//! Each platform writes a mention its own way, so each chat backend supplies a
//! [`MentionFn`] (see `crate::backends::mention`); this module only knows that a mention
//! exists and where it goes.

/// The person a room message is for: the user who ran the command, or the `user` of an
/// announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee {
    /// The platform's id for them (what the bridge sends StackStorm as `user`), or, for an
    /// announcement from elsewhere, whatever `user` it names.
    pub id: String,
    /// Their display name, when known.
    pub name: Option<String>,
}

/// How one platform writes a mention that notifies `who`; `None` when it cannot (then the
/// message goes out unaddressed rather than with a broken mention).
pub type MentionFn = fn(&Addressee) -> Option<String>;

/// `text` addressed to `mention`, as hubot wrote it: `<mention>: <text>`.
pub fn addressed(mention: &str, text: &str) -> String {
    format!("{mention}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mention_leads_the_text() {
        assert_eq!(addressed("<@U1>", "done"), "<@U1>: done");
        assert_eq!(addressed("alice", ""), "alice: ");
    }
}
