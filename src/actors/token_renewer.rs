//! The bridge's own StackStorm credential.
//!
//! With username/password it logs in at start, renews before the token's `expiry` (st2
//! has no refresh endpoint, so renewal is a new login), and logs in again at once when any
//! caller reports a 401. A static token or API key is handed out as configured; a 401 on
//! it is reported as an operator problem, since nothing here can fix it.
//!
//! Callers ask with [`GetCredential`]; after a 401 they send [`CredentialRejected`] with the
//! generation they used, so that ten commands failing at once cause one login, not ten.

use std::time::Duration;

use actix::prelude::*;

use super::status::{ActorState, StatusReporter};
use crate::{
    config::BridgeCredential,
    domain::backoff::Backoff,
    st2::{
        client::{LocalClient, St2ClientFactory},
        models::TokenGrant,
        Credential, CredentialKind, St2Client, St2Error,
    },
};

/// Why no credential can be handed out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Logging in failed.
    #[error("logging in to StackStorm failed: {0}")]
    Login(St2Error),
    /// StackStorm rejected the configured static token or API key.
    #[error("StackStorm rejected the configured {0}; fix [st2.credentials]")]
    StaticRejected(&'static str),
    /// The renewer is not running.
    #[error("the credential service is not running")]
    Unavailable,
}

/// Asks for the current credential, logging in first if there is none.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Credential, AuthError>")]
pub struct GetCredential;

/// Reports that StackStorm answered 401 to the credential of `generation`; answers with a
/// fresh credential.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Credential, AuthError>")]
pub struct CredentialRejected {
    /// The generation of the credential that was refused.
    pub generation: u64,
}

/// Reports that a request with the credential of `generation` succeeded.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct CredentialWorked {
    /// The generation that worked.
    pub generation: u64,
}

/// Settings the renewer needs.
#[derive(Debug, Clone)]
pub struct RenewerSettings {
    /// The configured credential.
    pub credential: BridgeCredential,
    /// TTL to ask for at login.
    pub token_ttl: Option<u64>,
    /// Renew this long before expiry.
    pub renew_before: Duration,
    /// Retry backoff after a failed login.
    pub backoff: Backoff,
}

/// The credential actor.
pub struct TokenRenewer {
    settings: RenewerSettings,
    client: LocalClient,
    current: Option<Credential>,
    generation: u64,
    status: StatusReporter,
    renewal: Option<SpawnHandle>,
}

impl TokenRenewer {
    /// A renewer; it logs in when started.
    pub fn new(settings: RenewerSettings, st2: St2ClientFactory, status: StatusReporter) -> Self {
        Self {
            settings,
            client: LocalClient::new(st2),
            current: None,
            generation: 0,
            status,
            renewal: None,
        }
    }

    fn client(&mut self) -> St2Client {
        self.client.get()
    }

    fn static_kind(&self) -> Option<&'static str> {
        match self.settings.credential {
            BridgeCredential::Password { .. } => None,
            BridgeCredential::Token(_) => Some("token"),
            BridgeCredential::ApiKey(_) => Some("API key"),
        }
    }

    /// A login as an actor future that stores the outcome. Run with `ctx.wait` or
    /// `AtomicResponse`, so that no other message is handled meanwhile.
    fn login(&mut self) -> ResponseActFuture<Self, Result<Credential, AuthError>> {
        let BridgeCredential::Password { username, password } = self.settings.credential.clone()
        else {
            return Box::pin(fut::ready(
                self.current.clone().ok_or(AuthError::Unavailable),
            ));
        };
        let client = self.client();
        let ttl = self.settings.token_ttl;
        Box::pin(
            async move { client.login(&username, &password, ttl).await }
                .into_actor(self)
                .map(|result, act, ctx| act.logged_in(result, ctx)),
        )
    }

    fn logged_in(
        &mut self,
        result: Result<TokenGrant, St2Error>,
        ctx: &mut Context<Self>,
    ) -> Result<Credential, AuthError> {
        match result {
            Ok(grant) => {
                self.generation += 1;
                let credential =
                    Credential::new(CredentialKind::Token, grant.token.clone(), self.generation);
                self.current = Some(credential.clone());
                self.settings.backoff.reset();
                self.status.state(ActorState::Up, None);
                let left = grant.seconds_left(chrono::Utc::now());
                tracing::info!(st2_user = %grant.user, expires_in_s = ?left, "logged in to StackStorm");
                self.schedule_renewal(left, ctx);
                Ok(credential)
            }
            Err(e) => {
                let delay = self.settings.backoff.next_delay();
                let hint = match &e {
                    St2Error::Api {
                        status: 400,
                        faultstring,
                        ..
                    } if faultstring.contains("TTL") => {
                        format!("{e} (lower st2.token_ttl to StackStorm's auth.token_ttl or less)")
                    }
                    _ => e.to_string(),
                };
                tracing::warn!(error = %hint, retry_in_ms = delay.as_millis() as u64, "StackStorm login failed");
                self.status.state(ActorState::Down, Some(hint));
                self.cancel_renewal(ctx);
                self.renewal = Some(ctx.run_later(delay, |act, ctx| {
                    act.renewal = None;
                    let fut = act.login().map(|_, _, _| ());
                    ctx.wait(fut);
                }));
                Err(AuthError::Login(e))
            }
        }
    }

    fn cancel_renewal(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.renewal.take() {
            ctx.cancel_future(handle);
        }
    }

    fn schedule_renewal(&mut self, seconds_left: Option<i64>, ctx: &mut Context<Self>) {
        self.cancel_renewal(ctx);
        let Some(left) = seconds_left.and_then(|s| u64::try_from(s).ok()) else {
            tracing::warn!(
                "StackStorm token has no readable expiry; it will be renewed on the first 401"
            );
            return;
        };
        let before = self.settings.renew_before.as_secs();
        // A token shorter-lived than the renewal margin is renewed at 80% of its life.
        let wait = if left > before {
            left - before
        } else {
            left * 4 / 5
        };
        let wait = Duration::from_secs(wait.max(1));
        tracing::debug!(renew_in_s = wait.as_secs(), "scheduled token renewal");
        self.renewal = Some(ctx.run_later(wait, |act, ctx| {
            act.renewal = None;
            let fut = act.login().map(|_, _, _| ());
            ctx.wait(fut);
        }));
    }
}

impl Actor for TokenRenewer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        match &self.settings.credential {
            BridgeCredential::Password { .. } => {
                let fut = self.login().map(|_, _, _| ());
                ctx.wait(fut);
            }
            BridgeCredential::Token(secret) => {
                self.generation = 1;
                self.current = Some(Credential::new(CredentialKind::Token, secret.clone(), 1));
                self.status.state(ActorState::Up, None);
            }
            BridgeCredential::ApiKey(secret) => {
                self.generation = 1;
                self.current = Some(Credential::new(CredentialKind::ApiKey, secret.clone(), 1));
                self.status.state(ActorState::Up, None);
            }
        }
    }
}

impl Supervised for TokenRenewer {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.status.restarted(None);
    }
}

impl Handler<GetCredential> for TokenRenewer {
    type Result = AtomicResponse<Self, Result<Credential, AuthError>>;

    fn handle(&mut self, _msg: GetCredential, _ctx: &mut Self::Context) -> Self::Result {
        match &self.current {
            Some(c) => AtomicResponse::new(Box::pin(fut::ready(Ok(c.clone())))),
            None => AtomicResponse::new(self.login()),
        }
    }
}

impl Handler<CredentialRejected> for TokenRenewer {
    type Result = AtomicResponse<Self, Result<Credential, AuthError>>;

    fn handle(&mut self, msg: CredentialRejected, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(current) = self
            .current
            .as_ref()
            .filter(|c| c.generation() > msg.generation)
        {
            // Someone already renewed since that request was sent.
            return AtomicResponse::new(Box::pin(fut::ready(Ok(current.clone()))));
        }
        if let Some(kind) = self.static_kind() {
            tracing::error!("StackStorm rejected the configured {kind} (401)");
            self.status.state(
                ActorState::Down,
                Some(format!("StackStorm rejected the configured {kind} (401)")),
            );
            return AtomicResponse::new(Box::pin(fut::ready(Err(AuthError::StaticRejected(kind)))));
        }
        tracing::info!("StackStorm answered 401; logging in again");
        self.current = None;
        AtomicResponse::new(self.login())
    }
}

impl Handler<CredentialWorked> for TokenRenewer {
    type Result = ();

    fn handle(&mut self, msg: CredentialWorked, _ctx: &mut Self::Context) {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.generation() == msg.generation)
        {
            self.status.state(ActorState::Up, None);
        }
    }
}

/// Asks how the bridge's StackStorm identity should be described to a user (`!st2whoami`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "String")]
pub struct DescribeIdentity;

impl Handler<DescribeIdentity> for TokenRenewer {
    type Result = String;

    fn handle(&mut self, _msg: DescribeIdentity, _ctx: &mut Self::Context) -> String {
        match &self.settings.credential {
            BridgeCredential::Password { username, .. } => {
                format!("`{username}` (the bridge's own login)")
            }
            BridgeCredential::Token(_) => "the owner of the bridge's token".into(),
            BridgeCredential::ApiKey(_) => "the owner of the bridge's API key".into(),
        }
    }
}

/// Asks for the bridge's StackStorm username, known when it logs in with a password (a
/// token's or key's owner is only known to StackStorm). Used by the inquiry listing.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<String>")]
pub struct BridgeUsername;

impl Handler<BridgeUsername> for TokenRenewer {
    type Result = Option<String>;

    fn handle(&mut self, _msg: BridgeUsername, _ctx: &mut Self::Context) -> Option<String> {
        match &self.settings.credential {
            BridgeCredential::Password { username, .. } => Some(username.clone()),
            BridgeCredential::Token(_) | BridgeCredential::ApiKey(_) => None,
        }
    }
}

/// Why a call made with the bridge's credential failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BridgeCallError {
    /// No credential could be had.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// StackStorm answered with an error (after the one retry a 401 earns).
    #[error(transparent)]
    St2(#[from] St2Error),
}

/// The current bridge credential, logging in first if needed.
pub async fn current_credential(renewer: &Addr<TokenRenewer>) -> Result<Credential, AuthError> {
    renewer
        .send(GetCredential)
        .await
        .unwrap_or(Err(AuthError::Unavailable))
}

/// Runs `call` with the bridge's credential. On a 401 the renewer logs in again (once, however
/// many callers saw the 401) and `call` is retried once with the fresh credential. Returns the
/// result and the generation of the credential that produced it.
pub async fn with_bridge_credential<T, F, Fut>(
    renewer: &Addr<TokenRenewer>,
    call: F,
) -> Result<(T, u64), BridgeCallError>
where
    F: Fn(Credential) -> Fut,
    Fut: std::future::Future<Output = Result<T, St2Error>>,
{
    let credential = current_credential(renewer).await?;
    let generation = credential.generation();
    match call(credential).await {
        Err(St2Error::Unauthorized(_)) => {
            let fresh = renewer
                .send(CredentialRejected { generation })
                .await
                .unwrap_or(Err(AuthError::Unavailable))?;
            let generation = fresh.generation();
            Ok((call(fresh).await?, generation))
        }
        other => Ok((other?, generation)),
    }
}
