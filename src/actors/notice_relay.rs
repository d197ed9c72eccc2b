//! Chat notices for a connection another bridge process runs.
//!
//! When several processes share a Redis store, a login finished on the process that
//! served the login page, which may not run the user's chat connection. The session
//! manager's notices (a login confirmed, a session about to expire) go through the
//! [`NoticeRelay`]: to this process's dispatcher when it runs the connection, else sealed
//! with the store key (which every process sharing the store has, and nobody else) and
//! posted to the holder's published address (`POST /internal/v1/notice`,
//! `http::relay::take_notice`), which delivers it. A notice for a connection nobody is
//! known to run is logged and dropped, as before.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::{lease_keeper::HolderDirectory, session_manager::NotifyUser};
use crate::{
    lease::Gate,
    store::crypto::{aad, StoreKey},
};

/// Where a sealed notice is posted, under the holder's address.
pub const NOTICE_PATH: &str = "/internal/v1/notice";

/// How old a sealed notice may be when it arrives (clocks of processes sharing a Redis
/// store agree closely; a notice replayed later is refused).
pub const NOTICE_MAX_AGE: Duration = Duration::from_secs(60);

/// How long the holder may take to take a notice.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// A notice on its way to the process that runs its connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedNotice {
    /// Unique per notice: the holder takes each once.
    pub id: String,
    /// The connection's name.
    pub connection: String,
    /// The platform user id.
    pub user_id: String,
    /// The text.
    pub text: String,
    /// When it was sealed (Unix seconds).
    pub at: i64,
}

/// Why a sealed notice was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoticeRefused {
    /// Not sealed with this store's key, or changed on the way.
    #[error("not sealed with this store's key")]
    Seal,
    /// Sealed, but not a notice.
    #[error("not a notice")]
    Shape,
    /// Older than [`NOTICE_MAX_AGE`] (or from the future).
    #[error("too old")]
    Stale,
}

fn notice_aad() -> Vec<u8> {
    aad(&["relay", "notice"])
}

impl SealedNotice {
    /// `msg` as a notice sealed at `now` (Unix seconds).
    pub fn of(msg: &NotifyUser, now: i64) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            connection: msg.connection.clone(),
            user_id: msg.user_id.clone(),
            text: msg.text.clone(),
            at: now,
        }
    }

    /// The notice sealed with `key`.
    pub fn seal(&self, key: &StoreKey) -> Result<String, crate::store::StoreError> {
        let json = serde_json::to_vec(self).map_err(|_| crate::store::StoreError::Crypto)?;
        key.seal(&notice_aad(), &json)
    }

    /// Opens `sealed` with `key` and checks its age against `now` (Unix seconds).
    pub fn open(key: &StoreKey, sealed: &str, now: i64) -> Result<Self, NoticeRefused> {
        let json = key
            .open(&notice_aad(), sealed.trim())
            .map_err(|_| NoticeRefused::Seal)?;
        let notice: Self = serde_json::from_slice(&json).map_err(|_| NoticeRefused::Shape)?;
        let age = now.saturating_sub(notice.at);
        let max = i64::try_from(NOTICE_MAX_AGE.as_secs()).unwrap_or(i64::MAX);
        if !(-max..=max).contains(&age) {
            return Err(NoticeRefused::Stale);
        }
        Ok(notice)
    }

    /// The notice as the dispatcher takes it.
    pub fn into_notify(self) -> NotifyUser {
        NotifyUser {
            connection: self.connection,
            user_id: self.user_id,
            text: self.text,
        }
    }
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Sends each notice to this process's dispatcher or to the process running its
/// connection.
pub struct NoticeRelay {
    dispatcher: Recipient<NotifyUser>,
    gates: Arc<HashMap<String, Gate>>,
    holders: HolderDirectory,
    key: Arc<StoreKey>,
    client: Option<awc::Client>,
}

impl NoticeRelay {
    /// A relay for `gates`' connections, passing notices on to where `holders` says, sealed
    /// with `key`.
    pub fn new(
        dispatcher: Recipient<NotifyUser>,
        gates: Arc<HashMap<String, Gate>>,
        holders: HolderDirectory,
        key: Arc<StoreKey>,
    ) -> Self {
        Self {
            dispatcher,
            gates,
            holders,
            key,
            client: None,
        }
    }
}

impl Actor for NoticeRelay {
    type Context = Context<Self>;
}

impl Handler<NotifyUser> for NoticeRelay {
    type Result = ();

    fn handle(&mut self, msg: NotifyUser, ctx: &mut Self::Context) {
        let here = self
            .gates
            .get(&msg.connection)
            .is_none_or(|gate| gate.is_open(std::time::Instant::now()));
        if here {
            self.dispatcher.do_send(msg);
            return;
        }
        let Some(holder) = self.holders.url(&msg.connection) else {
            tracing::warn!(connection = %msg.connection, "a chat notice for a connection no bridge process is known to run (set [store] advertise_url on every process to pass notices on); dropped");
            return;
        };
        let sealed = match SealedNotice::of(&msg, now_unix()).seal(&self.key) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::error!(connection = %msg.connection, error = %e, "cannot seal a chat notice for the bridge process running its connection; dropped");
                return;
            }
        };
        let client = self
            .client
            .get_or_insert_with(|| {
                awc::Client::builder()
                    .timeout(POST_TIMEOUT)
                    .disable_redirects()
                    .finish()
            })
            .clone();
        let connection = msg.connection;
        ctx.spawn(
            async move {
                let answer = client
                    .post(format!("{holder}{NOTICE_PATH}"))
                    .content_type("text/plain")
                    .send_body(sealed)
                    .await;
                match answer {
                    Ok(resp) if resp.status().is_success() => {}
                    Ok(resp) => {
                        tracing::warn!(connection = %connection, status = resp.status().as_u16(), "the bridge process running the connection refused a chat notice; dropped")
                    }
                    Err(e) => {
                        tracing::warn!(connection = %connection, error = %e, "cannot reach the bridge process running the connection with a chat notice; dropped")
                    }
                }
            }
            .into_actor(self),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> NotifyUser {
        NotifyUser {
            connection: "mm".into(),
            user_id: "alice".into(),
            text: "You are logged in.".into(),
        }
    }

    #[test]
    fn a_sealed_notice_opens_with_the_same_key_while_it_is_fresh() {
        let key = StoreKey::generate().unwrap();
        let sealed = SealedNotice::of(&notice(), 1_000).seal(&key).unwrap();
        assert!(!sealed.contains("logged in"), "the text travels sealed");
        let opened = SealedNotice::open(&key, &sealed, 1_030).unwrap();
        assert_eq!(opened.clone().into_notify().text, "You are logged in.");
        assert_eq!(opened.connection, "mm");
        assert_eq!(
            SealedNotice::open(&key, &sealed, 1_000 + 61),
            Err(NoticeRefused::Stale)
        );
        let other = StoreKey::generate().unwrap();
        assert_eq!(
            SealedNotice::open(&other, &sealed, 1_030),
            Err(NoticeRefused::Seal)
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            SealedNotice::open(&key, &tampered, 1_030),
            Err(NoticeRefused::Seal)
        );
        assert_eq!(
            SealedNotice::open(&key, "hello", 1_030),
            Err(NoticeRefused::Seal)
        );
    }

    #[test]
    fn every_notice_has_its_own_id() {
        assert_ne!(
            SealedNotice::of(&notice(), 1).id,
            SealedNotice::of(&notice(), 1).id
        );
    }
}
