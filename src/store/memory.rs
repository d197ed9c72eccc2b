//! In-memory backend: the default. Nothing survives a restart, which is
//! exactly what an operator who chose `memory` asked for.
//!
//! Lookups by user or link scan all sessions. A bridge has at most a few
//! thousand chat users with sessions, so a scan is microseconds and keeps
//! this backend free of secondary indexes that could drift out of sync.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use super::model::{Session, SessionId, SessionState, SessionSummary, StoredCredential, UserKey};
use super::{activated, LinkLookup};

/// All sessions and recently used link hashes, behind one short lock.
#[derive(Default)]
pub(crate) struct MemoryBackend {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, Session>,
    /// Hashes of links that completed a login, with the link's original
    /// expiry: replays until then get `Used` rather than `Unknown`.
    used_links: HashMap<String, DateTime<Utc>>,
}

impl MemoryBackend {
    pub(crate) fn insert_pending(&self, session: Session) {
        let mut state = self.state.lock();
        let user = session.user.clone();
        state
            .sessions
            .retain(|_, s| !(s.user == user && s.state == SessionState::Pending));
        state.sessions.insert(session.id.clone(), session);
    }

    pub(crate) fn find_link(&self, link_hash: &str) -> LinkLookup {
        let state = self.state.lock();
        let found = state.sessions.values().find_map(|s| {
            let link = s.link.as_ref()?;
            (s.state == SessionState::Pending && link.link_hash == link_hash).then(|| {
                LinkLookup::Pending {
                    session_id: s.id.clone(),
                    user: s.user.clone(),
                    link: link.clone(),
                    attempts: s.attempts,
                }
            })
        });
        match found {
            Some(found) => found,
            None if state.used_links.contains_key(link_hash) => LinkLookup::Used,
            None => LinkLookup::Unknown,
        }
    }

    /// Adds one attempt if the link is still pending with `seen` attempts.
    pub(crate) fn charge_attempt(&self, session_id: &str, link_hash: &str, seen: u32) -> bool {
        let mut state = self.state.lock();
        match pending_mut(&mut state, session_id, link_hash) {
            Some(s) if s.attempts == seen => {
                s.attempts = seen.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn activate(
        &self,
        session_id: &str,
        link_hash: &str,
        credential: StoredCredential,
        now: DateTime<Utc>,
    ) -> Option<Session> {
        let mut state = self.state.lock();
        let pending = pending_mut(&mut state, session_id, link_hash)?;
        let link_expiry = pending.link.as_ref().map_or(now, |l| l.expires_at);
        let session = activated(pending, credential, now);
        // The previous active session goes only now, when the new one is in
        // place: until this point a failed or abandoned login left it alone.
        let user = session.user.clone();
        state
            .sessions
            .retain(|_, s| !(s.user == user && s.state == SessionState::Active));
        state.sessions.insert(session.id.clone(), session.clone());
        state.used_links.insert(link_hash.to_owned(), link_expiry);
        Some(session)
    }

    pub(crate) fn active_session(&self, user: &UserKey) -> Option<Session> {
        self.state
            .lock()
            .sessions
            .values()
            .find(|s| s.user == *user && s.state == SessionState::Active)
            .cloned()
    }

    pub(crate) fn has_active(&self, user: &UserKey) -> bool {
        self.state
            .lock()
            .sessions
            .values()
            .any(|s| s.user == *user && s.state == SessionState::Active)
    }

    pub(crate) fn remove_user(&self, user: &UserKey) -> bool {
        let mut state = self.state.lock();
        let before = state.sessions.len();
        state.sessions.retain(|_, s| s.user != *user);
        state.sessions.len() != before
    }

    pub(crate) fn remove(&self, session_id: &str) -> bool {
        self.state.lock().sessions.remove(session_id).is_some()
    }

    pub(crate) fn summaries(&self) -> Vec<SessionSummary> {
        self.state
            .lock()
            .sessions
            .values()
            .map(Session::summary)
            .collect()
    }

    pub(crate) fn purge(&self, now: DateTime<Utc>) -> usize {
        let mut state = self.state.lock();
        let before = state.sessions.len();
        state.sessions.retain(|_, s| s.effective_expiry() > now);
        state.used_links.retain(|_, expiry| *expiry > now);
        before - state.sessions.len()
    }
}

/// The pending session `session_id`, if it still carries link `link_hash`
/// (a newer `session_start` replaces both).
fn pending_mut<'a>(
    state: &'a mut State,
    session_id: &str,
    link_hash: &str,
) -> Option<&'a mut Session> {
    state.sessions.get_mut(session_id).filter(|s| {
        s.state == SessionState::Pending
            && s.link.as_ref().is_some_and(|l| l.link_hash == link_hash)
    })
}
