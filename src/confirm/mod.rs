//! Commands that wait for a confirmation or a second person's approval (`[confirm]`).
//!
//! A command a `[[confirm.rules]]` entry covers (or whose alias says
//! `extra.stormbridge.confirm: true`) is not sent to StackStorm. It becomes a [`Waiting`]
//! command with a short code, and the room is told what would run. Then exactly one of:
//!
//! * **confirmed** by its sender, in the room it was sent in (`!st2confirm <code>`) — for
//!   a command that only needs confirming;
//! * **approved** by someone else from the rule's approvers (`!st2approve <code>`), in the
//!   same room, or in a direct chat with the bot when `approve_in_direct` is on;
//! * **aborted** by its sender (`!st2abort <code>`), or **denied** by an approver
//!   (`!st2deny <code> [reason]`);
//! * **expired** when its time is up.
//!
//! The first decision removes it, so a command runs at most once however many people
//! press at the same time. Everything here is plain data and decisions: no actor, no I/O,
//! time passed in. The dispatcher checks the access rules again before a confirmed or
//! approved command runs, and persists the list through [`crate::store::WaitingStore`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::message::{ChatUser, Room, RoomKind};

/// Characters of a code: lower-case letters and digits without the ones people confuse
/// (`0/o`, `1/l/i`), so a code read aloud or retyped from a phone works.
const CODE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Length of a code: 31^5 ≈ 29 million, enough that a code is not guessed while it waits,
/// short enough to type. (A guessed code is of no use anyway: each decision checks who.)
pub const CODE_LEN: usize = 5;

/// Most commands waiting at once; past it new ones are refused (a flood of requests must
/// not grow memory and the store without bound).
pub const MAX_WAITING: usize = 1000;

/// What a waiting command needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Need {
    /// Its sender confirms it.
    Confirmation,
    /// Someone else from the approvers of `[[confirm.rules]]` entry `rule` approves it.
    Approval {
        /// The rule's index (the approvers are checked against the rules in force when
        /// the decision is made).
        rule: usize,
        /// The approvers as written, for messages.
        approvers: Vec<String>,
    },
}

/// A command waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The code people type (`!st2confirm <code>`).
    pub code: String,
    /// What it needs.
    pub need: Need,
    /// Who sent it (and whose identity it runs with).
    pub sender: ChatUser,
    /// Where it was sent (and where its acknowledgement and result go).
    pub room: Room,
    /// The room's name, for access rules.
    pub room_name: Option<String>,
    /// The organisation, for access rules.
    pub org: Option<String>,
    /// The chat message that sent it (replies thread under it).
    pub message_id: Option<String>,
    /// The command text after the prefixes, as it will be matched again.
    pub text: String,
    /// The command text as shown in chat: secret parameter values masked.
    pub shown: String,
    /// The alias it matched.
    pub alias_ref: String,
    /// The alias's pack.
    pub pack: String,
    /// The parameters it would run with, as shown (secret ones masked).
    pub parameters: Vec<(String, String)>,
    /// Why it waits (the rule's comment).
    pub comment: Option<String>,
    /// When it was asked.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The chat message that offered buttons for it, where the platform told: updated
    /// when the command is decided without a press or expires, so its buttons go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_message: Option<String>,
}

impl Waiting {
    /// Whether `user` sent it.
    pub fn sent_by(&self, user: &ChatUser) -> bool {
        self.sender.connection == user.connection && self.sender.id == user.id
    }

    /// Whether `room` is the room it was sent in (any thread of it).
    pub fn sent_in(&self, room: &Room) -> bool {
        self.room.connection == room.connection && self.room.id == room.id
    }
}

/// A decision someone typed or pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// `!st2confirm`.
    Confirm,
    /// `!st2abort`.
    Abort,
    /// `!st2approve`.
    Approve,
    /// `!st2deny`.
    Deny,
}

impl Verb {
    /// The built-in's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Confirm => "confirm",
            Verb::Abort => "abort",
            Verb::Approve => "approve",
            Verb::Deny => "deny",
        }
    }

    /// The verb of a built-in name.
    pub fn from_builtin(verb: &str) -> Option<Self> {
        Some(match verb {
            "confirm" => Verb::Confirm,
            "abort" => Verb::Abort,
            "approve" => Verb::Approve,
            "deny" => Verb::Deny,
            _ => return None,
        })
    }

    /// Whether the command then runs.
    pub fn runs(self) -> bool {
        matches!(self, Verb::Confirm | Verb::Approve)
    }
}

/// Who decides, and where.
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    /// The person.
    pub user: &'a ChatUser,
    /// Where they typed or pressed.
    pub room: &'a Room,
    /// Whether they are among the approvers of the rule (the caller asks the policy).
    pub is_approver: bool,
    /// `[confirm] approve_in_direct`.
    pub approve_in_direct: bool,
}

/// Why a decision was not taken. The waiting command, if any, is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No command waits under that code (never was, already decided, or expired and swept).
    #[error("nothing is waiting under that code")]
    Unknown,
    /// Its time was up (it is removed).
    #[error("it expired")]
    Expired,
    /// Someone other than the sender tried to confirm or abort it.
    #[error("only the person who sent it can {0} it")]
    NotTheSender(&'static str),
    /// Confirmed somewhere other than the room it was sent in.
    #[error("it must be confirmed in the room it was sent in")]
    WrongRoom,
    /// Approved somewhere other than its room (or a direct chat, when allowed).
    #[error("it must be decided in the room it was sent in{}", if *.direct_allowed { " or in a direct chat with me" } else { "" })]
    WrongPlace {
        /// Whether a direct chat would have done.
        direct_allowed: bool,
    },
    /// The sender tried to approve their own command.
    #[error("you cannot approve your own command: someone else from its approvers must")]
    OwnCommand,
    /// The decider is not among the approvers.
    #[error("you are not one of its approvers")]
    NotAnApprover,
    /// `confirm` on a command that needs an approval.
    #[error("it needs another person's approval, not a confirmation")]
    NeedsApproval,
    /// `approve` on a command that needs its sender's confirmation.
    #[error("it needs its sender's confirmation, not an approval")]
    NeedsConfirmation,
    /// Too many commands are waiting.
    #[error("too many commands are waiting for a decision; try again later")]
    Full,
}

/// The commands waiting, by code.
#[derive(Debug, Default)]
pub struct WaitingList {
    by_code: BTreeMap<String, Waiting>,
}

impl WaitingList {
    /// A list holding `waiting` (loaded after a restart); duplicates by code keep the last.
    pub fn from_saved(waiting: impl IntoIterator<Item = Waiting>) -> Self {
        Self {
            by_code: waiting.into_iter().map(|w| (w.code.clone(), w)).collect(),
        }
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }

    /// A code no waiting command has, from `random` bytes (one byte per character;
    /// fresh bytes are asked for until the code is free).
    pub fn new_code(&self, mut random: impl FnMut() -> [u8; CODE_LEN]) -> String {
        loop {
            let code: String = random()
                .iter()
                .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
                .collect();
            if !self.by_code.contains_key(&code) {
                return code;
            }
        }
    }

    /// Adds a command (its code from [`new_code`](Self::new_code)).
    pub fn add(&mut self, waiting: Waiting) -> Result<(), Refusal> {
        if self.by_code.len() >= MAX_WAITING {
            return Err(Refusal::Full);
        }
        self.by_code.insert(waiting.code.clone(), waiting);
        Ok(())
    }

    /// The command waiting under `code`.
    pub fn get(&self, code: &str) -> Option<&Waiting> {
        self.by_code.get(&normalise_code(code))
    }

    /// Notes the message that offered buttons for the command under `code`; the command
    /// as it now is, or `None` when it is no longer waiting.
    pub fn set_offer_message(&mut self, code: &str, message_id: String) -> Option<&Waiting> {
        let w = self.by_code.get_mut(&normalise_code(code))?;
        w.offer_message = Some(message_id);
        Some(w)
    }

    /// Takes a decision: on success the command is removed and returned (to run when
    /// `verb.runs()`, else to report as dropped). An expired command is removed and
    /// refused; any other refusal leaves it waiting.
    pub fn decide(
        &mut self,
        code: &str,
        verb: Verb,
        by: Decider<'_>,
        now: DateTime<Utc>,
    ) -> Result<Waiting, Refusal> {
        let code = normalise_code(code);
        let waiting = self.by_code.get(&code).ok_or(Refusal::Unknown)?;
        if waiting.expires_at <= now {
            self.by_code.remove(&code);
            return Err(Refusal::Expired);
        }
        check(waiting, verb, by)?;
        Ok(self
            .by_code
            .remove(&code)
            .expect("present: looked up above"))
    }

    /// Removes and returns every command whose time is up at `now`.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<Waiting> {
        let codes: Vec<String> = self
            .by_code
            .values()
            .filter(|w| w.expires_at <= now)
            .map(|w| w.code.clone())
            .collect();
        codes
            .iter()
            .filter_map(|c| self.by_code.remove(c))
            .collect()
    }

    /// The earliest expiry, to wake up for.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.by_code.values().map(|w| w.expires_at).min()
    }

    /// Every waiting command, oldest first.
    pub fn all(&self) -> Vec<&Waiting> {
        let mut all: Vec<&Waiting> = self.by_code.values().collect();
        all.sort_by_key(|w| w.created_at);
        all
    }
}

/// A code as the list keys it: codes are shown lower-case; people may type them otherwise
/// (or with a stray `#`).
pub fn normalise_code(code: &str) -> String {
    code.trim().trim_start_matches('#').to_ascii_lowercase()
}

/// Whether `by` may take `verb` on `w`.
fn check(w: &Waiting, verb: Verb, by: Decider<'_>) -> Result<(), Refusal> {
    let is_sender = w.sent_by(by.user);
    match (verb, &w.need) {
        (Verb::Confirm, Need::Approval { .. }) => Err(Refusal::NeedsApproval),
        (Verb::Approve, Need::Confirmation) => Err(Refusal::NeedsConfirmation),
        (Verb::Confirm, Need::Confirmation) => {
            if !is_sender {
                Err(Refusal::NotTheSender("confirm"))
            } else if !w.sent_in(by.room) {
                Err(Refusal::WrongRoom)
            } else {
                Ok(())
            }
        }
        // The sender may withdraw it from anywhere: stopping is always safe.
        (Verb::Abort, _) => is_sender
            .then_some(())
            .ok_or(Refusal::NotTheSender("abort")),
        // A sender's deny of their own request is a withdrawal.
        (Verb::Deny, Need::Approval { .. }) if is_sender => Ok(()),
        (Verb::Deny, Need::Confirmation) => is_sender
            .then_some(())
            .ok_or(Refusal::NotTheSender("abort")),
        (Verb::Approve | Verb::Deny, Need::Approval { .. }) => {
            if is_sender {
                return Err(Refusal::OwnCommand);
            }
            if !by.is_approver {
                return Err(Refusal::NotAnApprover);
            }
            let in_direct = by.approve_in_direct
                && by.room.kind == RoomKind::Direct
                && by.room.connection == w.room.connection;
            if w.sent_in(by.room) || in_direct {
                Ok(())
            } else {
                Err(Refusal::WrongPlace {
                    direct_allowed: by.approve_in_direct,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
