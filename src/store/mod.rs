//! Session store: chat users' StackStorm sessions.
//!
//! # Flow
//!
//! 1. `!st2session_start <word>` → [`SessionStore::start_session`] creates a
//!    *pending* session holding a salted hash of the word and the SHA-256 of
//!    a random, short-lived link id; the id goes to the user in the DM as
//!    `<public_url>/login/<link id>` and is never stored.
//! 2. The login page POSTs the word and credentials →
//!    [`SessionStore::consume_link`] checks the link and the word and hands
//!    out a [`LinkClaim`].
//! 3. The handler validates the credentials with st2, then calls
//!    [`SessionStore::complete_link`] (the session becomes *active*, the link
//!    is used up) or [`SessionStore::release_claim`] (st2 said no: the link
//!    stays usable within its attempt budget).
//! 4. Commands look up [`SessionStore::credential_for`].
//!
//! # Errors
//!
//! Operations that change or create state (`start_session`, the link steps,
//! `open_sqlite`) return `Result`. The read/maintenance operations used from
//! command handling (`credential_for`, `had_session`, `end_session`,
//! `cancel`, `list`, `purge_expired`) return plain values and log a store
//! failure (`tracing::error!`), reading it as "nothing there"; each has a
//! `try_*` twin that returns the error instead.
//!
//! # Guarantees (and what err-stackstorm got wrong)
//!
//! * A new start never fails because of an old session: it replaces the old
//!   pending link, and an active session stays untouched until the new link
//!   is completed.
//! * Links are single use: the successful completion consumes the link; a
//!   replay gets [`LinkError::Used`]. Neither a replay nor a wrong word nor
//!   rejected credentials ever delete or weaken an existing active session.
//! * Each link allows [`MAX_LINK_ATTEMPTS`] attempts (wrong words plus
//!   credentials st2 rejected). The attempt is charged *before* the word is
//!   checked, so no crash or race gives an attacker extra guesses.
//! * The shared word is kept only as a PBKDF2 hash with a 128-bit salt and
//!   compared in constant time.
//! * With the SQLite backend (and the Redis one, see `redis_sessions`),
//!   sessions survive a restart and tokens/API keys are sealed with
//!   XChaCha20-Poly1305 under an operator-provided [`StoreKey`]; a wrong key
//!   refuses to start ([`StoreError::WrongKey`], [`StoreError::RedisWrongKey`]).
//! * No secret appears in `Debug` output or error messages.
//!
//! # Concurrency
//!
//! All operations take `&self`; [`SessionStore`] is `Send + Sync` and meant
//! to be shared in an `Arc`. Calls block (SQLite I/O, PBKDF2 ~50 ms), so run
//! them off the async executor (`web::block` / a `SyncArbiter`). Login steps
//! (consume/complete/release) are serialised by one lock so the attempt
//! budget is exact; the word hash is checked outside the backend lock, so
//! `credential_for` from command handling never waits for a PBKDF2.
//!
//! Time is always passed in (`now`) so expiry logic is testable. SQLite and
//! Redis store times with millisecond precision.
//!
//! # Jobs, personal aliases and trigger tokens
//!
//! [`SessionStore::jobs`], [`SessionStore::personal_aliases`] and
//! [`SessionStore::trigger_tokens`] hand out cheap-to-clone handles on the same
//! backend: the same SQLite file or Redis, or (memory backend) state that every handle
//! taken from one `SessionStore` shares and that lives as long as any of them.
//! Their APIs carry no SQL or SQLite types, so another backend can be added
//! behind them without changing callers.

pub mod crypto;
mod error;
pub mod jobs;
pub mod leases;
mod memory;
pub mod model;
pub mod personal_aliases;
mod place;
mod redis;
mod redis_sessions;
mod results;
mod sqlite;
pub mod trigger_tokens;
mod waiting;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};

pub use crypto::StoreKey;
pub use error::{LinkError, StoreError};
pub use jobs::{JobKind, JobQuery, JobRecord, JobStatus, JobStore, NewJob};
pub use model::{
    link_hash, new_link_id, CredentialKind, LinkClaim, PendingLink, Session, SessionId,
    SessionState, SessionSummary, StoredCredential, UserKey, WordHash,
};
pub use personal_aliases::{valid_alias_name, PersonalAlias, PersonalAliasStore, SetOutcome};
pub use redis::RedisOptions;
pub use results::ResultStore;
pub use trigger_tokens::{NewTriggerToken, TokenRejected, TriggerToken, TriggerTokenStore};
pub use waiting::WaitingStore;

use memory::MemoryBackend;
use model::new_session_id;
use sqlite::SqliteBackend;

/// Attempts allowed per login link: wrong shared words plus credentials
/// that st2 rejected. After that the user must start a new session.
pub const MAX_LINK_ATTEMPTS: u32 = 5;

/// How long a [`LinkClaim`] stays valid. It only has to cover one st2
/// validation round trip (5–10 s timeouts); if a handler dies holding a
/// claim, the link becomes usable again after this.
pub const CLAIM_TTL: Duration = Duration::from_secs(120);

/// The session store; see the module docs.
pub struct SessionStore {
    backend: Backend,
    /// Outstanding claims. Kept in memory on purpose even for SQLite: a
    /// claim belongs to an HTTP request of this process, and after a restart
    /// the link must be usable again.
    claims: Mutex<Claims>,
    /// Handles on the same backend, handed out as clones.
    jobs: JobStore,
    personal_aliases: PersonalAliasStore,
    trigger_tokens: TriggerTokenStore,
}

enum Backend {
    Memory(MemoryBackend),
    Sqlite(std::sync::Arc<SqliteBackend>),
    Redis(std::sync::Arc<redis::RedisBackend>),
}

#[derive(Default)]
struct Claims {
    next_no: u64,
    by_session: HashMap<SessionId, ClaimEntry>,
}

struct ClaimEntry {
    claim_no: u64,
    deadline: DateTime<Utc>,
}

/// What a backend knows about a link hash.
pub(crate) enum LinkLookup {
    /// A pending session carries it.
    Pending {
        session_id: SessionId,
        user: UserKey,
        link: PendingLink,
        attempts: u32,
    },
    /// It completed a login (and has not been purged yet).
    Used,
    /// Never issued, replaced, cancelled or purged.
    Unknown,
}

impl SessionStore {
    /// A store that keeps everything in this process (the default
    /// `[store] backend = "memory"`). Sessions are lost on restart.
    pub fn memory() -> Self {
        Self::with_backend(Backend::Memory(MemoryBackend::default()))
    }

    /// Opens (or creates) the SQLite store at `path`, sealing secrets with
    /// `key`.
    ///
    /// Errors are meant to stop start-up with a clear message:
    /// [`StoreError::WrongKey`] if the file was created with another key,
    /// [`StoreError::SchemaTooNew`] if a newer stormbridge wrote it,
    /// [`StoreError::NotAStore`] for a foreign or non-SQLite file.
    ///
    /// Obtaining the key is the caller's job: if `sqlite` is configured and
    /// no key source is, or [`StoreKey::from_file`]/[`StoreKey::from_env`]
    /// fails, report that and do not start — there is deliberately no way to
    /// open this store without a key.
    pub fn open_sqlite(path: &Path, key: &StoreKey) -> Result<Self, StoreError> {
        Ok(Self::with_backend(Backend::Sqlite(std::sync::Arc::new(
            SqliteBackend::open(path, key)?,
        ))))
    }

    /// Connects to Redis (`[store] backend = "redis"`), authenticates and checks that
    /// `key` is the key its prefix was first used with; everything the bridge keeps lives
    /// there, shared by every bridge process using the same server, prefix and key.
    ///
    /// Errors stop start-up with a clear message: [`StoreError::Redis`] when the server
    /// cannot be reached or refuses the credentials, [`StoreError::RedisWrongKey`] for
    /// another key.
    pub fn open_redis(options: &RedisOptions, key: &StoreKey) -> Result<Self, StoreError> {
        Ok(Self::with_backend(Backend::Redis(std::sync::Arc::new(
            redis::RedisBackend::open(options, key)?,
        ))))
    }

    /// [`SessionStore::open_redis`] on a backend already open (tests).
    #[cfg(test)]
    pub(crate) fn with_redis_parts(db: std::sync::Arc<redis::RedisBackend>) -> Self {
        Self::with_backend(Backend::Redis(db))
    }

    fn with_backend(backend: Backend) -> Self {
        let (jobs, personal_aliases, trigger_tokens) = match &backend {
            Backend::Memory(_) => (
                JobStore::memory(),
                PersonalAliasStore::memory(),
                TriggerTokenStore::memory(),
            ),
            Backend::Sqlite(b) => (
                JobStore::sqlite(b.clone()),
                PersonalAliasStore::sqlite(b.clone()),
                TriggerTokenStore::sqlite(b.clone()),
            ),
            Backend::Redis(db) => (
                JobStore::redis(db.clone()),
                PersonalAliasStore::redis(db.clone()),
                TriggerTokenStore::redis(db.clone()),
            ),
        };
        Self {
            backend,
            claims: Mutex::new(Claims::default()),
            jobs,
            personal_aliases,
            trigger_tokens,
        }
    }

    /// Where jobs (every chat command and what became of it) are kept: the same SQLite
    /// file, or this store's memory, shared by every handle taken from it.
    pub fn jobs(&self) -> JobStore {
        self.jobs.clone()
    }

    /// Where users' personal aliases are kept: the same SQLite file (sealed), or this
    /// store's memory, shared by every handle taken from it.
    pub fn personal_aliases(&self) -> PersonalAliasStore {
        self.personal_aliases.clone()
    }

    /// Where the trigger API's tokens are kept (as hashes): the same SQLite file, or this
    /// store's memory, shared by every handle taken from it.
    pub fn trigger_tokens(&self) -> TriggerTokenStore {
        self.trigger_tokens.clone()
    }

    /// Where the results owed to chat are kept: the same SQLite file or Redis, or nowhere (the
    /// memory backend: the result tracker's own memory is all there is).
    pub fn results(&self) -> ResultStore {
        match &self.backend {
            Backend::Memory(_) => ResultStore::none(),
            Backend::Sqlite(b) => ResultStore::sqlite(b.clone()),
            Backend::Redis(b) => ResultStore::redis(b.clone()),
        }
    }

    /// Where commands waiting for a confirmation or an approval are kept: the same SQLite
    /// file or Redis (sealed), or nowhere.
    pub fn waiting(&self) -> WaitingStore {
        match &self.backend {
            Backend::Memory(_) => WaitingStore::none(),
            Backend::Sqlite(b) => WaitingStore::sqlite(b.clone()),
            Backend::Redis(b) => WaitingStore::redis(b.clone()),
        }
    }

    /// Where the leases of chat connections are kept when several bridge processes share
    /// this store (Redis); `None` for one process (memory, SQLite).
    pub fn leases(&self) -> Option<leases::LeaseStore> {
        match &self.backend {
            Backend::Redis(b) => Some(leases::LeaseStore::new(b.clone())),
            _ => None,
        }
    }

    /// `"memory"`, `"sqlite"` or `"redis"`, for start-up logs and the status page.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Sqlite(_) => "sqlite",
            Backend::Redis(_) => "redis",
        }
    }

    /// Creates a pending session with a fresh login link for `user`.
    ///
    /// Returns the session id and the link id (to put in
    /// `<public_url>/login/<link id>`; it is not stored anywhere). An older
    /// pending link of the user is replaced; an active session is kept until
    /// the new link is completed. `link_ttl` bounds the link, `session_ttl`
    /// the session counted from completion.
    pub fn start_session(
        &self,
        user: &UserKey,
        word: &str,
        link_ttl: Duration,
        session_ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<(SessionId, SecretString), StoreError> {
        if word.is_empty() {
            return Err(StoreError::InvalidInput {
                what: "the shared word must not be empty",
            });
        }
        let link_expires_at = add_ttl(now, link_ttl, "link_ttl is too large")?;
        let expires_at = add_ttl(now, session_ttl, "session_ttl is too large")?;
        // Hash before touching any lock: PBKDF2 is deliberately slow.
        let word_hash = WordHash::new(word)?;
        let link_id = new_link_id()?;
        let id = new_session_id()?;
        let session = Session {
            id: id.clone(),
            user: user.clone(),
            state: SessionState::Pending,
            created_at: now,
            expires_at,
            link: Some(PendingLink {
                link_hash: link_hash(link_id.expose_secret()),
                expires_at: link_expires_at,
                word_hash,
            }),
            credential: None,
            attempts: 0,
        };
        match &self.backend {
            Backend::Memory(b) => b.insert_pending(session),
            Backend::Sqlite(b) => b.insert_pending(&session)?,
            Backend::Redis(b) => b.insert_pending(&session)?,
        }
        Ok((id, link_id))
    }

    /// Checks a login link and the shared word; on success the link is
    /// claimed for this request until [`SessionStore::complete_link`],
    /// [`SessionStore::release_claim`] or [`CLAIM_TTL`].
    ///
    /// A wrong word costs one of the link's [`MAX_LINK_ATTEMPTS`]; nothing
    /// here ever changes an active session.
    pub fn consume_link(
        &self,
        link_id: &str,
        word: &str,
        now: DateTime<Utc>,
    ) -> Result<LinkClaim, LinkError> {
        let hash = link_hash(link_id);
        let mut claims = self.claims.lock();
        claims.by_session.retain(|_, c| c.deadline > now);

        let lookup = match &self.backend {
            Backend::Memory(b) => b.find_link(&hash),
            Backend::Sqlite(b) => b.find_link(&hash)?,
            Backend::Redis(b) => b.find_link(&hash)?,
        };
        let (session_id, user, link, attempts) = match lookup {
            LinkLookup::Pending {
                session_id,
                user,
                link,
                attempts,
            } => (session_id, user, link, attempts),
            LinkLookup::Used => return Err(LinkError::Used),
            LinkLookup::Unknown => return Err(LinkError::Unknown),
        };
        if link.expires_at <= now {
            return Err(LinkError::Expired);
        }
        if attempts >= MAX_LINK_ATTEMPTS {
            return Err(LinkError::TooManyAttempts);
        }
        if claims.by_session.contains_key(&session_id) {
            // Double submit: don't charge an attempt, don't check the word.
            return Err(LinkError::Busy);
        }

        // Charge the attempt first and persist it, then verify: a crash
        // between the two can only cost the user an attempt, never give an
        // attacker a free guess. The charge is a compare-and-set on the
        // count we read, so even two processes sharing the SQLite file
        // cannot both spend the same attempt.
        let charged = match &self.backend {
            Backend::Memory(b) => b.charge_attempt(&session_id, &hash, attempts),
            Backend::Sqlite(b) => b.charge_attempt(&session_id, &hash, attempts)?,
            Backend::Redis(b) => b.charge_attempt(&session_id, &hash, attempts)?,
        };
        if !charged {
            // Replaced, cancelled or attempted elsewhere since the lookup.
            return Err(LinkError::Busy);
        }
        let attempts = attempts + 1;
        if !link.word_hash.verify(word) {
            return Err(LinkError::WrongWord {
                attempts_left: MAX_LINK_ATTEMPTS.saturating_sub(attempts),
            });
        }

        claims.next_no += 1;
        let claim_no = claims.next_no;
        let deadline = add_ttl(now, CLAIM_TTL, "the claim deadline is out of range")?;
        claims
            .by_session
            .insert(session_id.clone(), ClaimEntry { claim_no, deadline });
        Ok(LinkClaim {
            user,
            session_id,
            link_hash: hash,
            claim_no,
        })
    }

    /// Finishes a login: the claimed pending session becomes the user's
    /// active session with `credential`, the user's previous active session
    /// (if any) is removed, and the link is used up.
    ///
    /// Fails with [`StoreError::StaleClaim`] if the claim timed out, a newer
    /// link replaced the session, or it was ended/cancelled meanwhile.
    pub fn complete_link(
        &self,
        claim: LinkClaim,
        credential: StoredCredential,
        now: DateTime<Utc>,
    ) -> Result<Session, StoreError> {
        let mut claims = self.claims.lock();
        let live = claims
            .by_session
            .get(&claim.session_id)
            .is_some_and(|c| c.claim_no == claim.claim_no && c.deadline > now);
        if !live {
            return Err(StoreError::StaleClaim);
        }
        // The claim is spent whatever happens next; on any error below the
        // link is free again (within its attempt budget), as after a release.
        claims.by_session.remove(&claim.session_id);
        if credential.secret.expose_secret().is_empty() {
            return Err(StoreError::InvalidInput {
                what: "the credential secret is empty",
            });
        }
        let session = match &self.backend {
            Backend::Memory(b) => b.activate(&claim.session_id, &claim.link_hash, credential, now),
            Backend::Sqlite(b) => {
                b.activate(&claim.session_id, &claim.link_hash, credential, now)?
            }
            Backend::Redis(b) => {
                b.activate(&claim.session_id, &claim.link_hash, credential, now)?
            }
        };
        session.ok_or(StoreError::StaleClaim)
    }

    /// Gives a claim back after st2 rejected the credentials: the link can
    /// be tried again (the attempt stays counted). Returns false if the
    /// claim had already lapsed.
    pub fn release_claim(&self, claim: LinkClaim) -> bool {
        let mut claims = self.claims.lock();
        let mine = claims
            .by_session
            .get(&claim.session_id)
            .is_some_and(|c| c.claim_no == claim.claim_no);
        if mine {
            claims.by_session.remove(&claim.session_id);
        }
        mine
    }

    /// Where a login link stands, without using it or charging an attempt
    /// (for rendering the login page): the user it belongs to and when it
    /// expires, or why it cannot be used (`Unknown`, `Used`, `Expired`,
    /// `TooManyAttempts`, `Store`).
    pub fn peek_link(
        &self,
        link_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(UserKey, DateTime<Utc>), LinkError> {
        let hash = link_hash(link_id);
        let lookup = match &self.backend {
            Backend::Memory(b) => b.find_link(&hash),
            Backend::Sqlite(b) => b.find_link(&hash)?,
            Backend::Redis(b) => b.find_link(&hash)?,
        };
        match lookup {
            LinkLookup::Pending { link, .. } if link.expires_at <= now => Err(LinkError::Expired),
            LinkLookup::Pending { attempts, .. } if attempts >= MAX_LINK_ATTEMPTS => {
                Err(LinkError::TooManyAttempts)
            }
            LinkLookup::Pending { user, link, .. } => Ok((user, link.expires_at)),
            LinkLookup::Used => Err(LinkError::Used),
            LinkLookup::Unknown => Err(LinkError::Unknown),
        }
    }

    /// The credential to run `user`'s commands with, or `None` if the user
    /// has no active session or it (or its st2 token) has expired.
    ///
    /// A store failure (I/O, a value that fails to decrypt) is logged and
    /// reads as `None`: the user is asked to log in again, which replaces
    /// the broken session. Use [`SessionStore::try_credential_for`] to see
    /// the error.
    pub fn credential_for(&self, user: &UserKey, now: DateTime<Utc>) -> Option<StoredCredential> {
        self.try_credential_for(user, now)
            .unwrap_or_else(|e| logged(e, "reading a stored credential", None))
    }

    /// [`SessionStore::credential_for`], reporting store failures.
    pub fn try_credential_for(
        &self,
        user: &UserKey,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredCredential>, StoreError> {
        let session = match &self.backend {
            Backend::Memory(b) => b.active_session(user),
            Backend::Sqlite(b) => b.active_session(user)?,
            Backend::Redis(b) => b.active_session(user)?,
        };
        Ok(session
            .filter(|s| s.effective_expiry() > now)
            .and_then(|s| s.credential))
    }

    /// True if `user` has an active session record, live or expired but not
    /// yet purged. After `credential_for` returned `None`, this tells
    /// "expired" from "never logged in / ended". Store failures are logged
    /// and read as `false`.
    pub fn had_session(&self, user: &UserKey) -> bool {
        self.try_had_session(user)
            .unwrap_or_else(|e| logged(e, "looking up a session", false))
    }

    /// [`SessionStore::had_session`], reporting store failures.
    pub fn try_had_session(&self, user: &UserKey) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(b) => Ok(b.has_active(user)),
            Backend::Sqlite(b) => b.has_active(user),
            Backend::Redis(b) => b.has_active(user),
        }
    }

    /// Logs `user` out: removes their active and pending sessions. Returns
    /// whether there was anything to remove (store failures are logged and
    /// read as `false`).
    pub fn end_session(&self, user: &UserKey) -> bool {
        self.try_end_session(user)
            .unwrap_or_else(|e| logged(e, "ending a session", false))
    }

    /// [`SessionStore::end_session`], reporting store failures.
    pub fn try_end_session(&self, user: &UserKey) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(b) => Ok(b.remove_user(user)),
            Backend::Sqlite(b) => b.remove_user(user),
            Backend::Redis(b) => b.remove_user(user),
        }
    }

    /// Removes one session by id (admin `session_cancel`). Returns whether
    /// it existed (store failures are logged and read as `false`).
    pub fn cancel(&self, session_id: &str) -> bool {
        self.try_cancel(session_id)
            .unwrap_or_else(|e| logged(e, "cancelling a session", false))
    }

    /// [`SessionStore::cancel`], reporting store failures.
    pub fn try_cancel(&self, session_id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(b) => Ok(b.remove(session_id)),
            Backend::Sqlite(b) => b.remove(session_id),
            Backend::Redis(b) => b.remove(session_id),
        }
    }

    /// Live sessions (not yet expired at `now`), sorted by user and
    /// creation time. Summaries carry no secret, hash or link. Store
    /// failures are logged and read as an empty list.
    pub fn list(&self, now: DateTime<Utc>) -> Vec<SessionSummary> {
        self.try_list(now)
            .unwrap_or_else(|e| logged(e, "listing sessions", Vec::new()))
    }

    /// [`SessionStore::list`], reporting store failures.
    pub fn try_list(&self, now: DateTime<Utc>) -> Result<Vec<SessionSummary>, StoreError> {
        let mut all = match &self.backend {
            Backend::Memory(b) => b.summaries(),
            Backend::Sqlite(b) => b.summaries()?,
            Backend::Redis(b) => b.summaries()?,
        };
        all.retain(|s| s.expires_at > now);
        all.sort_by(|a, b| (&a.user, a.created_at, &a.id).cmp(&(&b.user, b.created_at, &b.id)));
        Ok(all)
    }

    /// Deletes sessions that expired by `now` (pending ones whose link
    /// expired, active ones past their or their credential's expiry) and
    /// forgets used links past their expiry. Returns the number of sessions
    /// removed (store failures are logged and read as 0). Call it
    /// periodically.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> usize {
        self.try_purge_expired(now)
            .unwrap_or_else(|e| logged(e, "purging expired sessions", 0))
    }

    /// [`SessionStore::purge_expired`], reporting store failures.
    pub fn try_purge_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.claims
            .lock()
            .by_session
            .retain(|_, c| c.deadline > now);
        match &self.backend {
            Backend::Memory(b) => Ok(b.purge(now)),
            Backend::Sqlite(b) => b.purge(now),
            Backend::Redis(b) => b.purge(now),
        }
    }
}

/// Logs a store failure behind one of the infallible wrappers and returns
/// the conservative `fallback`. Store errors never hold secrets, so the
/// error can be logged as is.
fn logged<T>(error: StoreError, doing: &'static str, fallback: T) -> T {
    tracing::error!(error = %error, "session store: {doing} failed");
    fallback
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

/// `now + ttl`, refusing TTLs so large that the date would overflow
/// (`what` is the error text).
fn add_ttl(
    now: DateTime<Utc>,
    ttl: Duration,
    what: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .ok_or(StoreError::InvalidInput { what })
}

/// The active session that `pending` turns into at `now`: same id, user and
/// creation time; expiry re-dated to `now + session_ttl` (the TTL the
/// pending session carried as `expires_at - created_at`).
pub(crate) fn activated(
    pending: &Session,
    credential: StoredCredential,
    now: DateTime<Utc>,
) -> Session {
    let ttl = pending.expires_at - pending.created_at;
    Session {
        id: pending.id.clone(),
        user: pending.user.clone(),
        state: SessionState::Active,
        created_at: pending.created_at,
        expires_at: now
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        link: None,
        credential: Some(credential),
        attempts: 0,
    }
}

#[cfg(test)]
mod tests;
