//! Calls to StackStorm made on a chat user's behalf, with the identity their commands run
//! with: in client-side mode the user's own session (a 401 ends it: nothing here can renew
//! a user's token), else the bridge's credential (one re-login and retry on a 401).
//!
//! Running an alias, cancelling a job and reading its output all go through
//! [`call_as_sender`], so StackStorm's RBAC judges each of them as the same person.

use std::future::Future;

use actix::Addr;

use super::{
    session_manager::{NoSession, SessionManager, UserCredential, UserCredentialRejected},
    token_renewer::{with_bridge_credential, BridgeCallError, TokenRenewer},
};
use crate::{
    st2::{credential::Credential, St2Error},
    store::model::UserKey,
};

/// Why a call on a user's behalf failed.
#[derive(Debug, thiserror::Error)]
pub enum SenderCallError {
    /// The bridge has no credential (it cannot log in to StackStorm).
    #[error("no StackStorm credential: {0}")]
    Auth(String),
    /// StackStorm answered with an error.
    #[error(transparent)]
    St2(#[from] St2Error),
    /// Client-side mode, and the user has no usable session.
    #[error("the user has {0}")]
    NoSession(NoSession),
    /// StackStorm rejected the user's session (it has been ended).
    #[error("StackStorm rejected the user's session")]
    UserRejected,
}

impl SenderCallError {
    /// What the chat user is told. `prefix` is the command prefix (`!st2`).
    pub fn user_message(&self, prefix: &str) -> String {
        let session_start = format!("{prefix}session_start <word>");
        match self {
            Self::St2(err) => err.user_message(),
            Self::Auth(_) => St2Error::Unauthorized(String::new()).user_message(),
            Self::NoSession(NoSession::Missing) => format!(
                "you have no StackStorm session, so I cannot run it as you. Send me `{session_start}` in a direct message and open the link (help works without one)."
            ),
            Self::NoSession(NoSession::Expired) => format!(
                "your StackStorm session has expired. Send me `{session_start}` in a direct message to start a new one."
            ),
            Self::UserRejected => format!(
                "StackStorm no longer accepts your session (it expired or was revoked), so it has ended. Send me `{session_start}` in a direct message to start a new one."
            ),
        }
    }

    /// The user's session is the problem (not StackStorm or the bridge).
    pub fn is_session_problem(&self) -> bool {
        matches!(self, Self::NoSession(_) | Self::UserRejected)
    }
}

/// Runs `call` as `user`: with their session when `sessions` is given (client-side mode),
/// else with the bridge's credential.
pub async fn call_as_sender<T, F, Fut>(
    renewer: &Addr<TokenRenewer>,
    sessions: Option<Addr<SessionManager>>,
    user: UserKey,
    call: F,
) -> Result<T, SenderCallError>
where
    F: Fn(Credential) -> Fut,
    Fut: Future<Output = Result<T, St2Error>>,
{
    let Some(sessions) = sessions else {
        return with_bridge_credential(renewer, call)
            .await
            .map(|(value, _)| value)
            .map_err(|e| match e {
                BridgeCallError::Auth(e) => SenderCallError::Auth(e.to_string()),
                BridgeCallError::St2(e) => SenderCallError::St2(e),
            });
    };
    let credential = sessions
        .send(UserCredential(user.clone()))
        .await
        .map_err(|_| SenderCallError::Auth("session service stopped".into()))?
        .map_err(SenderCallError::NoSession)?;
    match call(credential).await {
        Err(St2Error::Unauthorized(_)) => {
            sessions.do_send(UserCredentialRejected(user));
            Err(SenderCallError::UserRejected)
        }
        other => Ok(other?),
    }
}
