//! Per-user StackStorm identity (`auth.mode = "clientside"`).
//!
//! A chat user DMs `!st2session_start <word>`; this actor creates a single-use, short-lived
//! login link and keeps only a salted hash of the word. The login page (`crate::http::login`)
//! hands the submitted credentials here; they are checked with StackStorm (a login for
//! username/password, `tokens/validate` for a token, an authenticated call for an API key),
//! the resulting token or key is stored (sealed at rest with `sqlite`), and the password is
//! dropped. Later commands from that user run with it. A failed or replayed attempt never
//! touches an existing session (err-stackstorm logs the victim out on any failed POST).

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::{
    status::{ActorState, StatusReporter},
    token_renewer::{current_credential, TokenRenewer},
};
use crate::{
    domain::message::ChatUser,
    st2::{
        client::{LocalClient, St2ClientFactory},
        Credential, CredentialKind, St2Client, St2Error,
    },
    store::{
        model::{CredentialKind as StoredKind, SessionSummary, StoredCredential, UserKey},
        LinkError, SessionStore,
    },
};

/// Settings of the session manager.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Base URL the login links start with.
    pub public_url: String,
    /// How long a login link works.
    pub link_ttl: Duration,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// TTL asked for users' StackStorm tokens.
    pub user_token_ttl: u64,
    /// Warn a user this long before their StackStorm token expires.
    pub warn_before: Duration,
    /// Login attempts (posts) allowed per client address per window; page views
    /// (`GET /login/<id>`) are counted separately against the same number.
    pub attempts_per_address: u32,
    /// The window for `attempts_per_address`.
    pub attempt_window: Duration,
}

/// A direct message the session manager wants delivered (link confirmations, expiry warnings).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct NotifyUser {
    /// Connection name.
    pub connection: String,
    /// Platform user id.
    pub user_id: String,
    /// Text.
    pub text: String,
}

/// `!st2session_start <word>`: creates a login link.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<SecretString, String>")]
pub struct StartSession {
    /// Who asked.
    pub user: ChatUser,
    /// The shared word; only its salted hash is kept.
    pub word: SecretString,
}

/// `!st2session_end`: ends the user's session.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct EndSession(pub UserKey);

/// `!st2session_list`: every session, without secrets.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<SessionSummary>")]
pub struct ListSessions;

/// `!st2session_cancel <id>`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct CancelSession(pub String);

/// Why a user has no credential to run a command with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoSession {
    /// Never started, or ended.
    #[error("no session")]
    Missing,
    /// The stored StackStorm token has expired.
    #[error("session expired")]
    Expired,
}

/// Asks for the credential a user's commands run with.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Credential, NoSession>")]
pub struct UserCredential(pub UserKey);

/// Reports that StackStorm rejected a user's stored credential (401): the session ends.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct UserCredentialRejected(pub UserKey);

/// Asks whether a login link can still be used, without using it: who it is for and how
/// long it stays valid, or the outcome a submission would get (expired, used, unknown).
/// Each ask counts as a page view of `client` (views per address are limited, so that link
/// ids cannot be guessed by loading pages).
#[derive(Clone, Message)]
#[rtype(result = "Result<(String, Duration), LoginOutcome>")]
pub struct LinkStatus {
    /// The link id from the URL.
    pub link_id: SecretString,
    /// The client's address (see `crate::http::forwarded`), for rate limiting.
    pub client: Option<IpAddr>,
}

/// What the login form sent.
#[derive(Clone)]
pub enum LoginCredentials {
    /// StackStorm username and password.
    Password {
        /// Username.
        username: String,
        /// Password; used once and dropped.
        password: SecretString,
    },
    /// A StackStorm token.
    Token(SecretString),
    /// A StackStorm API key.
    ApiKey(SecretString),
}

/// A login form submission.
#[derive(Clone, Message)]
#[rtype(result = "LoginOutcome")]
pub struct SubmitLogin {
    /// The link id from the URL.
    pub link_id: SecretString,
    /// The shared word.
    pub word: SecretString,
    /// The credentials.
    pub credentials: LoginCredentials,
    /// The client's address (see `crate::http::forwarded`), for rate limiting.
    pub client: Option<IpAddr>,
}

/// How a login attempt ended; each becomes its own page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Linked; the page names the StackStorm user.
    Linked {
        /// The st2 user the session runs as.
        st2_user: String,
    },
    /// The shared word was wrong.
    WrongWord {
        /// Attempts left on this link.
        attempts_left: u32,
    },
    /// StackStorm refused the credentials.
    WrongCredentials {
        /// What StackStorm said, in plain words.
        detail: String,
    },
    /// The link expired.
    Expired,
    /// The link was already used.
    Used,
    /// The link does not exist.
    Unknown,
    /// Too many wrong shared words on this link: the link is finished.
    TooManyAttempts,
    /// Too many requests from this client address; it may try again after `retry_after`.
    RateLimited {
        /// When the address's window ends.
        retry_after: Duration,
    },
    /// StackStorm could not be reached or failed.
    Unavailable(String),
}

/// The session actor.
pub struct SessionManager {
    settings: SessionSettings,
    store: Arc<SessionStore>,
    client: LocalClient,
    renewer: Addr<TokenRenewer>,
    notify: Recipient<NotifyUser>,
    status: StatusReporter,
    attempts_by_address: AddressLimiter,
    views_by_address: AddressLimiter,
    warned: std::collections::HashSet<String>,
}

impl SessionManager {
    /// A session manager over `store`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: SessionSettings,
        store: Arc<SessionStore>,
        st2: St2ClientFactory,
        renewer: Addr<TokenRenewer>,
        notify: Recipient<NotifyUser>,
        status: StatusReporter,
    ) -> Self {
        let attempts_by_address =
            AddressLimiter::new(settings.attempts_per_address, settings.attempt_window);
        let views_by_address =
            AddressLimiter::new(settings.attempts_per_address, settings.attempt_window);
        Self {
            settings,
            store,
            client: LocalClient::new(st2),
            renewer,
            notify,
            status,
            attempts_by_address,
            views_by_address,
            warned: std::collections::HashSet::new(),
        }
    }

    fn client(&mut self) -> St2Client {
        self.client.get()
    }

    /// Warns users whose StackStorm token is about to expire, once per session.
    fn warn_expiring(&mut self) {
        let now = chrono::Utc::now();
        // Keep recently expired sessions a day, so "your session expired" can still be said.
        self.store.purge_expired(now - chrono::Duration::days(1));
        for summary in self.store.list(now) {
            let Some(credential) = self.store.credential_for(&summary.user, now) else {
                continue;
            };
            let Some(expires) = credential.expires_at else {
                continue;
            };
            let left = (expires - now).num_seconds();
            let warn = i64::try_from(self.settings.warn_before.as_secs()).unwrap_or(i64::MAX);
            if left > 0 && left <= warn && self.warned.insert(summary.id.clone()) {
                if let Some((connection, user_id)) = summary.user.0.split_once(':') {
                    self.notify.do_send(NotifyUser {
                        connection: connection.to_owned(),
                        user_id: user_id.to_owned(),
                        text: format!(
                            "Your StackStorm session ends in {}. To keep running commands as yourself, send me `session_start <word>` here (with your usual prefix) and open the new link.",
                            if left < 120 { format!("{left} seconds") } else { format!("about {} minutes", (left + 59) / 60) }
                        ),
                    });
                }
            }
        }
    }
}

impl Actor for SessionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.status.state(ActorState::Up, None);
        let every = (self.settings.warn_before / 4)
            .clamp(Duration::from_millis(200), Duration::from_secs(60));
        ctx.run_interval(every, |act, _ctx| act.warn_expiring());
    }
}

impl Handler<StartSession> for SessionManager {
    type Result = Result<SecretString, String>;

    fn handle(&mut self, msg: StartSession, _ctx: &mut Self::Context) -> Self::Result {
        let user = UserKey(format!("{}:{}", msg.user.connection, msg.user.id));
        let (_, link_id) = self
            .store
            .start_session(
                &user,
                msg.word.expose_secret(),
                self.settings.link_ttl,
                self.settings.session_ttl,
                chrono::Utc::now(),
            )
            .map_err(|e| {
                tracing::error!(error = %e, "could not create a login link");
                "I could not create a login link right now; please try again.".to_owned()
            })?;
        tracing::info!(user = %user.0, "login link created");
        Ok(SecretString::from(format!(
            "{}/login/{}",
            self.settings.public_url.trim_end_matches('/'),
            link_id.expose_secret()
        )))
    }
}

impl Handler<EndSession> for SessionManager {
    type Result = bool;

    fn handle(&mut self, msg: EndSession, _ctx: &mut Self::Context) -> bool {
        let ended = self.store.end_session(&msg.0);
        if ended {
            tracing::info!(user = %msg.0 .0, "session ended by the user");
        }
        ended
    }
}

impl Handler<ListSessions> for SessionManager {
    type Result = MessageResult<ListSessions>;

    fn handle(&mut self, _msg: ListSessions, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.store.list(chrono::Utc::now()))
    }
}

impl Handler<CancelSession> for SessionManager {
    type Result = bool;

    fn handle(&mut self, msg: CancelSession, _ctx: &mut Self::Context) -> bool {
        let cancelled = self.store.cancel(&msg.0);
        if cancelled {
            tracing::info!(session = %msg.0, "session cancelled by an admin");
        }
        cancelled
    }
}

impl Handler<UserCredential> for SessionManager {
    type Result = Result<Credential, NoSession>;

    fn handle(&mut self, msg: UserCredential, _ctx: &mut Self::Context) -> Self::Result {
        let now = chrono::Utc::now();
        match self.store.credential_for(&msg.0, now) {
            Some(c) if c.expires_at.is_some_and(|e| e <= now) => Err(NoSession::Expired),
            Some(c) => {
                let kind = match c.kind {
                    StoredKind::Token => CredentialKind::Token,
                    StoredKind::ApiKey => CredentialKind::ApiKey,
                };
                Ok(Credential::new(kind, c.secret.clone(), 0))
            }
            None if self.store.had_session(&msg.0) => Err(NoSession::Expired),
            None => Err(NoSession::Missing),
        }
    }
}

impl Handler<UserCredentialRejected> for SessionManager {
    type Result = ();

    fn handle(&mut self, msg: UserCredentialRejected, _ctx: &mut Self::Context) {
        tracing::info!(user = %msg.0 .0, "StackStorm rejected a user's stored credential; ending the session");
        self.store.end_session(&msg.0);
    }
}

/// Asks for the StackStorm username a chat user's session runs as (`None` without an
/// active session). Used by the inquiry listing.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<String>")]
pub struct UserSt2Name(pub UserKey);

impl Handler<UserSt2Name> for SessionManager {
    type Result = Option<String>;

    fn handle(&mut self, msg: UserSt2Name, _ctx: &mut Self::Context) -> Option<String> {
        self.store
            .credential_for(&msg.0, chrono::Utc::now())
            .map(|c| c.st2_user)
    }
}

impl Handler<LinkStatus> for SessionManager {
    type Result = Result<(String, Duration), LoginOutcome>;

    fn handle(&mut self, msg: LinkStatus, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(ip) = msg.client {
            if let Err(over) = self.views_by_address.hit(ip, Instant::now()) {
                if over.first {
                    tracing::warn!(client = %ip, "login page views from one address over the limit");
                }
                return Err(LoginOutcome::RateLimited {
                    retry_after: over.retry_after,
                });
            }
        }
        let now = chrono::Utc::now();
        match self.store.peek_link(msg.link_id.expose_secret(), now) {
            Ok((user, expires_at)) => {
                let left = (expires_at - now).to_std().unwrap_or_default();
                Ok((user.0, left))
            }
            Err(LinkError::Unknown) => Err(LoginOutcome::Unknown),
            Err(LinkError::Expired) => Err(LoginOutcome::Expired),
            Err(LinkError::Used) => Err(LoginOutcome::Used),
            Err(LinkError::TooManyAttempts) => Err(LoginOutcome::TooManyAttempts),
            Err(other) => Err(LoginOutcome::Unavailable(other.to_string())),
        }
    }
}

impl Handler<SubmitLogin> for SessionManager {
    type Result = ResponseActFuture<Self, LoginOutcome>;

    fn handle(&mut self, msg: SubmitLogin, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(ip) = msg.client {
            if let Err(over) = self.attempts_by_address.hit(ip, Instant::now()) {
                if over.first {
                    tracing::warn!(client = %ip, "login attempts from one address over the limit");
                }
                return Box::pin(fut::ready(LoginOutcome::RateLimited {
                    retry_after: over.retry_after,
                }));
            }
        }
        let now = chrono::Utc::now();
        let claim = match self.store.consume_link(
            msg.link_id.expose_secret(),
            msg.word.expose_secret(),
            now,
        ) {
            Ok(claim) => claim,
            Err(e) => {
                let outcome = match e {
                    LinkError::Unknown => LoginOutcome::Unknown,
                    LinkError::Expired => LoginOutcome::Expired,
                    LinkError::Used => LoginOutcome::Used,
                    LinkError::WrongWord { attempts_left } => {
                        LoginOutcome::WrongWord { attempts_left }
                    }
                    LinkError::TooManyAttempts => LoginOutcome::TooManyAttempts,
                    other => LoginOutcome::Unavailable(other.to_string()),
                };
                return Box::pin(fut::ready(outcome));
            }
        };
        let client = self.client();
        let renewer = self.renewer.clone();
        let ttl = self.settings.user_token_ttl;
        let credentials = msg.credentials;
        let fut = async move { validate(&client, &renewer, credentials, ttl).await };
        Box::pin(fut.into_actor(self).map(move |result, act, _ctx| match result {
            Ok(credential) => {
                let st2_user = credential.st2_user.clone();
                match act.store.complete_link(claim, credential, chrono::Utc::now()) {
                    Ok(session) => {
                        tracing::info!(user = %session.user.0, st2_user = %st2_user, "chat user linked to StackStorm");
                        if let Some((connection, user_id)) = session.user.0.split_once(':') {
                            act.notify.do_send(NotifyUser {
                                connection: connection.to_owned(),
                                user_id: user_id.to_owned(),
                                text: format!("Your chat account is now linked to StackStorm user `{st2_user}`. Your commands run as that user."),
                            });
                        }
                        LoginOutcome::Linked { st2_user }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "storing the session failed");
                        LoginOutcome::Unavailable("the bridge could not store the session".into())
                    }
                }
            }
            Err(outcome) => {
                act.store.release_claim(claim);
                outcome
            }
        }))
    }
}

/// Requests counted per client address in fixed windows: at most `limit` per `window`,
/// counted from an address's first request in the window. Bounded (the least used
/// addresses are forgotten first), entries dropped once their window is over.
struct AddressLimiter {
    limit: u32,
    window: Duration,
    windows: moka::sync::Cache<IpAddr, (Instant, u32)>,
}

impl AddressLimiter {
    fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            // Re-inserting resets the time to live, so an entry always outlives its window.
            windows: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window)
                .build(),
        }
    }

    /// Counts one request from `ip`; an error when it is over the limit.
    fn hit(&self, ip: IpAddr, now: Instant) -> Result<(), OverLimit> {
        let (entry, verdict) = count_request(
            self.windows.get(&ip.to_canonical()),
            now,
            self.limit,
            self.window,
        );
        self.windows.insert(ip.to_canonical(), entry);
        verdict
    }
}

/// A request over an address's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OverLimit {
    /// How long until the address's window ends.
    retry_after: Duration,
    /// The first request over the limit in this window (the one worth a log line; the
    /// rest of a flood is not).
    first: bool,
}

/// One more request in a fixed window `(start, count)`: the updated window, and whether the
/// request is allowed or, when it is over `limit`, how long until the window ends.
fn count_request(
    entry: Option<(Instant, u32)>,
    now: Instant,
    limit: u32,
    window: Duration,
) -> ((Instant, u32), Result<(), OverLimit>) {
    let (start, count) = match entry {
        Some((start, count)) if now.saturating_duration_since(start) < window => (start, count),
        _ => (now, 0),
    };
    let count = count.saturating_add(1);
    let verdict = if count > limit {
        Err(OverLimit {
            retry_after: (start + window).saturating_duration_since(now),
            first: count == limit.saturating_add(1),
        })
    } else {
        Ok(())
    };
    ((start, count), verdict)
}

/// Checks the submitted credentials with StackStorm and turns them into what is stored.
async fn validate(
    client: &St2Client,
    renewer: &Addr<TokenRenewer>,
    credentials: LoginCredentials,
    ttl: u64,
) -> Result<StoredCredential, LoginOutcome> {
    let unavailable = |e: St2Error| LoginOutcome::Unavailable(e.user_message());
    match credentials {
        LoginCredentials::Password { username, password } => {
            let grant = client.login(&username, &password, Some(ttl)).await;
            drop(password);
            match grant {
                Ok(grant) => Ok(StoredCredential {
                    kind: StoredKind::Token,
                    expires_at: chrono::DateTime::parse_from_rfc3339(&grant.expiry)
                        .ok()
                        .map(|e| e.with_timezone(&chrono::Utc)),
                    secret: grant.token,
                    st2_user: grant.user,
                }),
                Err(St2Error::Unauthorized(_)) => Err(LoginOutcome::WrongCredentials {
                    detail: "StackStorm did not accept that username and password.".into(),
                }),
                Err(St2Error::Api { status: 400, faultstring, .. }) if faultstring.contains("TTL") => {
                    Err(LoginOutcome::Unavailable(format!(
                        "StackStorm refused the session length the bridge asks for ({faultstring}); an administrator must lower auth.user_token_ttl."
                    )))
                }
                Err(e) => Err(unavailable(e)),
            }
        }
        LoginCredentials::Token(token) => {
            let bridge = current_credential(renewer)
                .await
                .map_err(|e| LoginOutcome::Unavailable(e.to_string()))?;
            match client.validate_token(&bridge, &token).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(LoginOutcome::WrongCredentials {
                        detail: "StackStorm says that token is not valid (unknown or expired)."
                            .into(),
                    })
                }
                Err(e) => return Err(unavailable(e)),
            }
            probed(
                client,
                StoredKind::Token,
                token,
                "StackStorm refused that token.",
            )
            .await
        }
        LoginCredentials::ApiKey(key) => {
            probed(
                client,
                StoredKind::ApiKey,
                key,
                "StackStorm did not accept that API key.",
            )
            .await
        }
    }
}

/// Proves a submitted token or API key works with an authenticated call, and turns it into
/// what is stored. StackStorm does not say whose it is, so the st2 user is described.
async fn probed(
    client: &St2Client,
    kind: StoredKind,
    secret: SecretString,
    refused: &str,
) -> Result<StoredCredential, LoginOutcome> {
    let (credential_kind, owner) = match kind {
        StoredKind::Token => (CredentialKind::Token, "(owner of the token)"),
        StoredKind::ApiKey => (CredentialKind::ApiKey, "(owner of the API key)"),
    };
    let probe = Credential::new(credential_kind, secret.clone(), 0);
    client
        .list_aliases_probe(&probe)
        .await
        .map_err(|e| match e {
            St2Error::Unauthorized(_) => LoginOutcome::WrongCredentials {
                detail: refused.to_owned(),
            },
            other => LoginOutcome::Unavailable(other.user_message()),
        })?;
    Ok(StoredCredential {
        kind,
        secret,
        st2_user: owner.to_owned(),
        expires_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_limit_requests_per_window_then_is_told_when_to_retry() {
        let window = Duration::from_secs(600);
        let t0 = Instant::now();
        let mut entry = None;
        for i in 0..3 {
            let (next, verdict) = count_request(entry, t0 + Duration::from_secs(i), 3, window);
            assert_eq!(verdict, Ok(()), "request {i}");
            entry = Some(next);
        }
        let (next, verdict) = count_request(entry, t0 + Duration::from_secs(100), 3, window);
        assert_eq!(
            verdict,
            Err(OverLimit {
                retry_after: Duration::from_secs(500),
                first: true
            }),
            "counted from the first request"
        );
        // Further requests do not push the window out, and are not the first over.
        let (next, verdict) = count_request(Some(next), t0 + Duration::from_secs(599), 3, window);
        assert_eq!(
            verdict,
            Err(OverLimit {
                retry_after: Duration::from_secs(1),
                first: false
            })
        );
        // A new window.
        let (_, verdict) = count_request(Some(next), t0 + window, 3, window);
        assert_eq!(verdict, Ok(()));
    }

    #[test]
    fn addresses_are_limited_separately() {
        let limiter = AddressLimiter::new(2, Duration::from_secs(60));
        let now = Instant::now();
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        assert!(limiter.hit(a, now).is_ok() && limiter.hit(a, now).is_ok());
        assert!(limiter.hit(a, now).is_err());
        assert!(
            limiter
                .hit("::ffff:203.0.113.1".parse().unwrap(), now)
                .is_err(),
            "the same address written as IPv6"
        );
        assert!(limiter.hit(b, now).is_ok());
    }
}
