//! Behaviour tests. Every function in the first part runs against every
//! backend (see `backend_tests!` at the bottom); SQLite-only properties
//! (restart, encryption at rest, keys, schema) follow, and Redis-only ones are
//! in `tests/redis_server.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::*;

const WORD: &str = "open sesame";
const LINK_TTL: Duration = Duration::from_secs(600);
const SESSION_TTL: Duration = Duration::from_secs(3600);

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

fn user(id: &str) -> UserKey {
    UserKey::new("slack", id)
}

fn token(secret: &str) -> StoredCredential {
    StoredCredential {
        kind: CredentialKind::Token,
        secret: SecretString::from(secret),
        st2_user: "st2-alice".into(),
        expires_at: None,
    }
}

fn api_key(secret: &str) -> StoredCredential {
    StoredCredential {
        kind: CredentialKind::ApiKey,
        ..token(secret)
    }
}

fn start(
    store: &SessionStore,
    who: &UserKey,
    word: &str,
    now: DateTime<Utc>,
) -> (SessionId, SecretString) {
    store
        .start_session(who, word, LINK_TTL, SESSION_TTL, now)
        .unwrap()
}

fn consume(
    store: &SessionStore,
    link: &SecretString,
    word: &str,
    now: DateTime<Utc>,
) -> Result<LinkClaim, LinkError> {
    store.consume_link(link.expose_secret(), word, now)
}

/// Full successful login; returns the link it used.
fn login(
    store: &SessionStore,
    who: &UserKey,
    credential: StoredCredential,
    now: DateTime<Utc>,
) -> SecretString {
    let (_, link) = start(store, who, WORD, now);
    let claim = consume(store, &link, WORD, now).unwrap();
    store.complete_link(claim, credential, now).unwrap();
    link
}

fn secret_of(store: &SessionStore, who: &UserKey, now: DateTime<Utc>) -> Option<String> {
    store
        .try_credential_for(who, now)
        .unwrap()
        .map(|c| c.secret.expose_secret().to_owned())
}

// ---------------------------------------------------------------------------
// Shared behaviour (every backend)

fn full_flow(store: &SessionStore) {
    let alice = user("U1");
    let (sid, link) = start(store, &alice, WORD, at(0));
    assert!(matches!(
        consume(store, &link, "wrong", at(1)),
        Err(LinkError::WrongWord { attempts_left: 4 })
    ));
    let claim = consume(store, &link, WORD, at(2)).unwrap();
    assert_eq!(claim.user(), &alice);
    assert_eq!(claim.session_id(), sid);
    let session = store.complete_link(claim, token("tok-A"), at(3)).unwrap();
    assert_eq!(session.state, SessionState::Active);
    assert_eq!(session.id, sid);
    assert!(session.link.is_none());
    assert_eq!(
        session.expires_at,
        at(3 + 3600),
        "session_ttl counts from completion"
    );
    let cred = store.try_credential_for(&alice, at(4)).unwrap().unwrap();
    assert_eq!(cred.secret.expose_secret(), "tok-A");
    assert_eq!(cred.kind, CredentialKind::Token);
    assert_eq!(cred.st2_user, "st2-alice");
    assert!(store
        .try_credential_for(&user("U2"), at(4))
        .unwrap()
        .is_none());

    // A second login while active: the old credential stays usable through
    // a wrong word and until the new link is completed.
    let (sid2, link2) = start(store, &alice, "new word", at(10));
    assert_eq!(secret_of(store, &alice, at(11)).as_deref(), Some("tok-A"));
    assert!(matches!(
        consume(store, &link2, WORD, at(11)),
        Err(LinkError::WrongWord { attempts_left: 4 })
    ));
    assert_eq!(secret_of(store, &alice, at(12)).as_deref(), Some("tok-A"));
    let claim = consume(store, &link2, "new word", at(12)).unwrap();
    assert_eq!(secret_of(store, &alice, at(13)).as_deref(), Some("tok-A"));
    store
        .complete_link(claim, api_key("key-B"), at(13))
        .unwrap();
    let cred = store.try_credential_for(&alice, at(14)).unwrap().unwrap();
    assert_eq!(cred.secret.expose_secret(), "key-B");
    assert_eq!(cred.kind, CredentialKind::ApiKey);
    let list = store.try_list(at(14)).unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].id, sid2);
    assert_eq!(list[0].state, SessionState::Active);
}

fn replay_of_used_link(store: &SessionStore) {
    let alice = user("U1");
    let link = login(store, &alice, token("tok-A"), at(0));
    let before = store.try_list(at(1)).unwrap();
    assert!(matches!(
        consume(store, &link, WORD, at(1)),
        Err(LinkError::Used)
    ));
    assert!(matches!(
        consume(store, &link, "wrong", at(2)),
        Err(LinkError::Used)
    ));
    assert_eq!(secret_of(store, &alice, at(3)).as_deref(), Some("tok-A"));
    assert_eq!(store.try_list(at(3)).unwrap(), before);
    assert!(matches!(
        store.consume_link("never-issued", WORD, at(3)),
        Err(LinkError::Unknown)
    ));
}

fn expired_link(store: &SessionStore) {
    let alice = user("U1");
    login(store, &alice, token("tok-A"), at(0));
    let (_, link) = start(store, &alice, WORD, at(10));
    assert!(matches!(
        consume(store, &link, WORD, at(10 + 600)),
        Err(LinkError::Expired)
    ));
    assert!(matches!(
        consume(store, &link, "wrong", at(10 + 601)),
        Err(LinkError::Expired)
    ));
    assert_eq!(secret_of(store, &alice, at(700)).as_deref(), Some("tok-A"));
    // Still usable one second before.
    let (_, link) = start(store, &alice, WORD, at(1000));
    assert!(consume(store, &link, WORD, at(1599)).is_ok());
}

fn new_start_replaces_pending_keeps_active(store: &SessionStore) {
    let alice = user("U1");
    login(store, &alice, token("tok-A"), at(0));
    let (_, link1) = start(store, &alice, WORD, at(10));
    let stale_claim = consume(store, &link1, WORD, at(11)).unwrap();
    let (sid2, link2) = start(store, &alice, WORD, at(12));
    assert!(matches!(
        consume(store, &link1, WORD, at(13)),
        Err(LinkError::Unknown)
    ));
    assert!(matches!(
        store.complete_link(stale_claim, token("tok-STALE"), at(13)),
        Err(StoreError::StaleClaim)
    ));
    assert_eq!(secret_of(store, &alice, at(14)).as_deref(), Some("tok-A"));
    let states: Vec<_> = store
        .try_list(at(14))
        .unwrap()
        .iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states.len(), 2, "one active, one pending");
    assert!(states.contains(&SessionState::Active) && states.contains(&SessionState::Pending));

    let claim = consume(store, &link2, WORD, at(15)).unwrap();
    assert_eq!(claim.session_id(), sid2);
    store.complete_link(claim, token("tok-C"), at(16)).unwrap();
    assert_eq!(secret_of(store, &alice, at(17)).as_deref(), Some("tok-C"));
    assert_eq!(store.try_list(at(17)).unwrap().len(), 1);
}

fn too_many_attempts(store: &SessionStore) {
    let alice = user("U1");
    login(store, &alice, token("tok-A"), at(0));
    let (_, link) = start(store, &alice, WORD, at(10));
    for left in (0..MAX_LINK_ATTEMPTS).rev() {
        match consume(store, &link, "guess", at(11)) {
            Err(LinkError::WrongWord { attempts_left }) => assert_eq!(attempts_left, left),
            other => panic!("expected WrongWord, got {other:?}"),
        }
    }
    assert!(matches!(
        consume(store, &link, WORD, at(12)),
        Err(LinkError::TooManyAttempts)
    ));
    assert_eq!(secret_of(store, &alice, at(13)).as_deref(), Some("tok-A"));
    // A new start gives a fresh budget.
    let (_, link) = start(store, &alice, WORD, at(14));
    assert!(consume(store, &link, WORD, at(15)).is_ok());
}

fn release_and_claim_lifetime(store: &SessionStore) {
    let alice = user("U1");
    let (_, link) = start(store, &alice, WORD, at(0));
    let claim = consume(store, &link, WORD, at(1)).unwrap();
    // Double submit while st2 validates: refused, no attempt charged.
    assert!(matches!(
        consume(store, &link, WORD, at(2)),
        Err(LinkError::Busy)
    ));
    // st2 rejected the credentials: release; the link stays usable.
    assert!(store.release_claim(claim));
    let claim = consume(store, &link, WORD, at(3)).unwrap();
    assert!(store.release_claim(claim));
    // Two attempts spent (each st2 rejection counts), so a wrong word now
    // leaves 5 - 3.
    assert!(matches!(
        consume(store, &link, "x", at(4)),
        Err(LinkError::WrongWord { attempts_left: 2 })
    ));
    assert!(store.try_credential_for(&alice, at(4)).unwrap().is_none());

    // An abandoned claim lapses after CLAIM_TTL and frees the link.
    let abandoned = consume(store, &link, WORD, at(5)).unwrap();
    let later = at(5) + TimeDelta::from_std(CLAIM_TTL).unwrap();
    let claim = consume(store, &link, WORD, later).unwrap();
    assert!(matches!(
        store.complete_link(abandoned, token("tok-OLD"), later),
        Err(StoreError::StaleClaim)
    ));
    store.complete_link(claim, token("tok-A"), later).unwrap();
    assert_eq!(secret_of(store, &alice, later).as_deref(), Some("tok-A"));

    // Releasing after completion is a no-op.
    let (_, link) = start(store, &alice, WORD, later);
    let claim = consume(store, &link, WORD, later).unwrap();
    let duplicate = LinkClaim {
        user: claim.user.clone(),
        session_id: claim.session_id.clone(),
        link_hash: claim.link_hash.clone(),
        claim_no: claim.claim_no,
    };
    store.complete_link(claim, token("tok-B"), later).unwrap();
    assert!(!store.release_claim(duplicate));
    assert_eq!(secret_of(store, &alice, later).as_deref(), Some("tok-B"));
}

fn end_and_cancel(store: &SessionStore) {
    let alice = user("U1");
    let bob = user("U2");
    login(store, &alice, token("tok-A"), at(0));
    let (_, alice_link) = start(store, &alice, WORD, at(1));
    let (bob_sid, bob_link) = start(store, &bob, WORD, at(1));

    assert!(store.try_end_session(&alice).unwrap());
    assert!(store.try_credential_for(&alice, at(2)).unwrap().is_none());
    assert!(matches!(
        consume(store, &alice_link, WORD, at(2)),
        Err(LinkError::Unknown)
    ));
    assert!(!store.try_end_session(&alice).unwrap());

    assert!(store.try_cancel(&bob_sid).unwrap());
    assert!(matches!(
        consume(store, &bob_link, WORD, at(3)),
        Err(LinkError::Unknown)
    ));
    assert!(!store.try_cancel(&bob_sid).unwrap());
    assert!(!store.try_cancel("no-such-session").unwrap());

    // Cancelling an active session by id.
    login(store, &bob, token("tok-B"), at(4));
    let id = store.try_list(at(5)).unwrap()[0].id.clone();
    assert!(store.try_cancel(&id).unwrap());
    assert!(store.try_credential_for(&bob, at(5)).unwrap().is_none());
    assert!(store.try_list(at(5)).unwrap().is_empty());
}

fn list_has_no_secrets(store: &SessionStore) {
    let alice = user("U1");
    let bob = user("U2");
    login(store, &alice, token("tok-SECRET-123"), at(0));
    let (bob_sid, bob_link) = start(store, &bob, "bobs secret word", at(5));
    let list = store.try_list(at(6)).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].user, alice);
    assert_eq!(list[0].state, SessionState::Active);
    assert_eq!(list[0].expires_at, at(3600));
    assert_eq!(list[1].id, bob_sid);
    assert_eq!(list[1].state, SessionState::Pending);
    assert_eq!(
        list[1].expires_at,
        at(5 + 600),
        "pending: the link's expiry"
    );
    assert_eq!(list[1].created_at, at(5));
    let dbg = format!("{list:?}");
    for secret in [
        "tok-SECRET-123",
        "bobs secret word",
        bob_link.expose_secret(),
    ] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
    assert!(!dbg.contains(&link_hash(bob_link.expose_secret())), "{dbg}");
}

fn purge_and_expiry(store: &SessionStore) {
    let alice = user("U1");
    let bob = user("U2");
    let carol = user("U3");
    let alice_link = login(store, &alice, token("tok-A"), at(0)); // ends at 3600
    start(store, &bob, WORD, at(0)); // link ends at 600
    let short = StoredCredential {
        expires_at: Some(at(100)),
        ..token("tok-C")
    };
    login(store, &carol, short, at(0)); // token ends at 100

    assert_eq!(store.try_purge_expired(at(50)).unwrap(), 0);
    assert_eq!(secret_of(store, &carol, at(99)).as_deref(), Some("tok-C"));
    // Expired credentials are never handed out, purged or not.
    assert!(store.try_credential_for(&carol, at(100)).unwrap().is_none());
    assert_eq!(store.try_list(at(100)).unwrap().len(), 2);
    assert_eq!(store.try_purge_expired(at(100)).unwrap(), 1);
    assert_eq!(store.try_purge_expired(at(600)).unwrap(), 1);
    assert_eq!(store.try_list(at(600)).unwrap().len(), 1);
    // Used-link markers go with the link's expiry.
    assert!(matches!(
        consume(store, &alice_link, WORD, at(600)),
        Err(LinkError::Unknown)
    ));
    assert_eq!(secret_of(store, &alice, at(3599)).as_deref(), Some("tok-A"));
    assert!(store
        .try_credential_for(&alice, at(3600))
        .unwrap()
        .is_none());
    assert_eq!(store.try_purge_expired(at(3600)).unwrap(), 1);
    assert!(store.try_list(at(0)).unwrap().is_empty());
    assert_eq!(store.try_purge_expired(at(9999)).unwrap(), 0);
}

fn debug_output_has_no_secrets(store: &SessionStore) {
    let alice = user("U1");
    let (sid, link) = start(store, &alice, "the-shared-word", at(0));
    let claim = consume(store, &link, "the-shared-word", at(1)).unwrap();
    let claim_dbg = format!("{claim:?}");
    let session = store
        .complete_link(claim, token("tok-VERY-SECRET"), at(2))
        .unwrap();
    let err = consume(store, &link, "the-shared-word", at(3)).unwrap_err();
    let (_, link2) = start(store, &alice, "the-shared-word", at(4));
    let wrong = consume(store, &link2, "another-guess", at(5)).unwrap_err();
    let cred = store.try_credential_for(&alice, at(6)).unwrap().unwrap();
    let pending_hash = WordHash::new("the-shared-word").unwrap();
    let dbg = format!(
        "{claim_dbg} {session:?} {err:?} {err} {wrong:?} {wrong} {cred:?} {store:?} \
         {link:?} {pending_hash:?} {:?}",
        (sid, &link2)
    );
    for secret in [
        "tok-VERY-SECRET",
        "the-shared-word",
        "another-guess",
        link.expose_secret(),
        link2.expose_secret(),
    ] {
        assert!(!dbg.contains(secret), "leaked {secret:?} in {dbg}");
    }
}

fn peek_and_infallible_wrappers(store: &SessionStore) {
    let alice = user("U1");
    let bob = user("U2");
    assert!(!store.had_session(&alice));
    let (_, link) = start(store, &alice, WORD, at(0));
    // Peeking neither uses the link nor charges an attempt.
    for _ in 0..MAX_LINK_ATTEMPTS + 1 {
        let (who, expires) = store.peek_link(link.expose_secret(), at(1)).unwrap();
        assert_eq!(who, alice);
        assert_eq!(expires, at(600));
    }
    assert!(matches!(
        store.peek_link(link.expose_secret(), at(600)),
        Err(LinkError::Expired)
    ));
    assert!(matches!(
        store.peek_link("nope", at(1)),
        Err(LinkError::Unknown)
    ));
    assert!(!store.had_session(&alice), "pending is not a session yet");
    let claim = consume(store, &link, WORD, at(2)).unwrap();
    store.complete_link(claim, token("tok-A"), at(2)).unwrap();
    assert!(matches!(
        store.peek_link(link.expose_secret(), at(3)),
        Err(LinkError::Used)
    ));
    assert!(store.had_session(&alice));

    let (_, bob_link) = start(store, &bob, WORD, at(3));
    for _ in 0..MAX_LINK_ATTEMPTS {
        assert!(consume(store, &bob_link, "x", at(3)).is_err());
    }
    assert!(matches!(
        store.peek_link(bob_link.expose_secret(), at(4)),
        Err(LinkError::TooManyAttempts)
    ));

    assert_eq!(store.list(at(4)).len(), 2);
    assert_eq!(
        store.credential_for(&alice, at(4)).map(|c| c.st2_user),
        Some("st2-alice".to_owned())
    );
    // Expired but not purged: no credential, but "had a session".
    assert!(store.credential_for(&alice, at(2 + 3600)).is_none());
    assert!(store.had_session(&alice));
    assert_eq!(store.purge_expired(at(2 + 3600)), 2);
    assert!(!store.had_session(&alice));
    login(store, &alice, token("tok-A"), at(4000));
    let id = store.list(at(4000))[0].id.clone();
    assert!(store.cancel(&id));
    assert!(!store.cancel(&id));
    login(store, &alice, token("tok-A"), at(4001));
    assert!(store.end_session(&alice));
    assert!(!store.end_session(&alice));
}

fn input_validation(store: &SessionStore) {
    let alice = user("U1");
    assert!(matches!(
        store.start_session(&alice, "", LINK_TTL, SESSION_TTL, at(0)),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        store.start_session(&alice, WORD, Duration::MAX, SESSION_TTL, at(0)),
        Err(StoreError::InvalidInput { .. })
    ));
    let (_, link) = start(store, &alice, WORD, at(0));
    let claim = consume(store, &link, WORD, at(0)).unwrap();
    assert!(matches!(
        store.complete_link(claim, token(""), at(0)),
        Err(StoreError::InvalidInput { .. })
    ));
    // The failed completion freed the link again.
    assert!(consume(store, &link, WORD, at(0)).is_ok());
    assert!(store
        .try_list(at(0))
        .unwrap()
        .iter()
        .all(|s| s.state == SessionState::Pending));
}

// ---------------------------------------------------------------------------
// SQLite only

struct TempStore {
    dir: tempfile::TempDir,
    key: StoreKey,
}

impl TempStore {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            key: StoreKey::generate().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("sessions.db")
    }

    fn open(&self) -> SessionStore {
        SessionStore::open_sqlite(&self.path(), &self.key).unwrap()
    }
}

fn sqlite_store() -> (TempStore, SessionStore) {
    let tmp = TempStore::new();
    let store = tmp.open();
    assert_eq!(store.backend_name(), "sqlite");
    (tmp, store)
}

#[test]
fn sqlite_sessions_survive_reopen() {
    let tmp = TempStore::new();
    let alice = user("U1");
    let bob = user("U2");
    let carol = user("U3");
    let (before, carol_link, used_link) = {
        let store = tmp.open();
        let used = login(&store, &alice, token("tok-A"), at(0));
        let expiring = StoredCredential {
            expires_at: Some(at(2000)),
            ..api_key("key-B")
        };
        login(&store, &bob, expiring, at(0));
        let (_, carol_link) = start(&store, &carol, WORD, at(1));
        for _ in 0..2 {
            assert!(consume(&store, &carol_link, "nope", at(2)).is_err());
        }
        (store.try_list(at(3)).unwrap(), carol_link, used)
    };
    let store = tmp.open();
    assert_eq!(store.try_list(at(3)).unwrap(), before);
    assert_eq!(secret_of(&store, &alice, at(3)).as_deref(), Some("tok-A"));
    let bob_cred = store.try_credential_for(&bob, at(3)).unwrap().unwrap();
    assert_eq!(bob_cred.secret.expose_secret(), "key-B");
    assert_eq!(bob_cred.kind, CredentialKind::ApiKey);
    assert_eq!(bob_cred.expires_at, Some(at(2000)));
    // The attempt counter persisted, and the link still works.
    assert!(matches!(
        consume(&store, &carol_link, "nope", at(4)),
        Err(LinkError::WrongWord { attempts_left: 2 })
    ));
    assert!(matches!(
        consume(&store, &used_link, WORD, at(4)),
        Err(LinkError::Used)
    ));
    let claim = consume(&store, &carol_link, WORD, at(5)).unwrap();
    store.complete_link(claim, token("tok-C"), at(5)).unwrap();
    drop(store);
    assert_eq!(
        secret_of(&tmp.open(), &carol, at(6)).as_deref(),
        Some("tok-C")
    );
}

/// Every file SQLite keeps for the database (main, WAL, shared memory).
fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn sqlite_file_holds_no_plaintext_secrets() {
    let tmp = TempStore::new();
    let token_secret = "TOKEN-PLAINTEXT-SENTINEL-4f1c";
    let key_secret = "APIKEY-PLAINTEXT-SENTINEL-9a2e";
    let word = "WORD-PLAINTEXT-SENTINEL-77";
    let store = tmp.open();
    let (_, link) = start(&store, &user("U1"), word, at(0));
    let claim = consume(&store, &link, word, at(0)).unwrap();
    store
        .complete_link(claim, token(token_secret), at(0))
        .unwrap();
    let (_, link2) = start(&store, &user("U2"), word, at(0));
    let claim = consume(&store, &link2, word, at(0)).unwrap();
    store
        .complete_link(claim, api_key(key_secret), at(0))
        .unwrap();
    let (_, pending_link) = start(&store, &user("U3"), word, at(0));

    let check = |bytes: &[u8]| {
        assert!(contains(bytes, "v1:"), "sealed values are present");
        assert!(
            contains(bytes, "st2-alice"),
            "sanity: the scan sees row data"
        );
        for secret in [
            token_secret,
            key_secret,
            word,
            link.expose_secret(),
            link2.expose_secret(),
            pending_link.expose_secret(),
        ] {
            assert!(
                !contains(bytes, secret),
                "{secret} found in the database files"
            );
        }
    };
    check(&raw_bytes(tmp.dir.path())); // while open (data may sit in the WAL)
    drop(store);
    check(&raw_bytes(tmp.dir.path())); // after checkpoint on close
}

#[test]
fn sqlite_wrong_key_is_refused() {
    let tmp = TempStore::new();
    login(&tmp.open(), &user("U1"), token("tok-A"), at(0));
    let other = StoreKey::generate().unwrap();
    let err = SessionStore::open_sqlite(&tmp.path(), &other).unwrap_err();
    match &err {
        StoreError::WrongKey {
            expected, given, ..
        } => {
            assert_eq!(expected, tmp.key.key_id());
            assert_eq!(given, other.key_id());
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
    assert!(
        err.to_string().contains("does not match the database"),
        "{err}"
    );
    // The refused open changed nothing.
    assert_eq!(
        secret_of(&tmp.open(), &user("U1"), at(1)).as_deref(),
        Some("tok-A")
    );
}

#[test]
fn sqlite_garbage_key_file_is_a_clear_error() {
    let tmp = TempStore::new();
    let key_path = tmp.dir.path().join("store.key");
    std::fs::write(&key_path, "not-a-key\n").unwrap();
    let err = StoreKey::from_file(&key_path).unwrap_err();
    assert!(matches!(err, StoreError::KeyInvalid { .. }), "{err}");
    assert!(err.to_string().contains("store.key"), "{err}");
    std::fs::write(&key_path, format!("{}\n", "ab".repeat(32))).unwrap();
    let key = StoreKey::from_file(&key_path).unwrap();
    assert!(SessionStore::open_sqlite(&tmp.path(), &key).is_ok());
}

#[test]
fn sqlite_newer_schema_is_refused() {
    let tmp = TempStore::new();
    drop(tmp.open());
    rusqlite::Connection::open(tmp.path())
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = SessionStore::open_sqlite(&tmp.path(), &tmp.key).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn sqlite_foreign_files_are_refused() {
    let tmp = TempStore::new();
    std::fs::write(tmp.path(), vec![0x42u8; 8192]).unwrap();
    let err = SessionStore::open_sqlite(&tmp.path(), &tmp.key).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");

    let other = tmp.dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    let err = SessionStore::open_sqlite(&other, &tmp.key).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");

    let err =
        SessionStore::open_sqlite(&tmp.dir.path().join("no/such/dir.db"), &tmp.key).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
}

#[test]
fn sqlite_moved_ciphertext_fails_authentication() {
    let tmp = TempStore::new();
    let store = tmp.open();
    login(&store, &user("U1"), token("tok-A"), at(0));
    login(&store, &user("U2"), token("tok-B"), at(0));
    drop(store);
    // Attacker with write access copies bob's sealed token onto alice's row.
    rusqlite::Connection::open(tmp.path())
        .unwrap()
        .execute(
            "UPDATE sessions SET cred_secret = \
             (SELECT cred_secret FROM sessions WHERE user_key = 'slack:U2') \
             WHERE user_key = 'slack:U1'",
            [],
        )
        .unwrap();
    a_moved_secret_is_refused(&tmp.open());
}

#[test]
fn sqlite_two_instances_share_the_attempt_budget() {
    // Two bridge processes on one file: attempts and single use hold
    // across both.
    let tmp = TempStore::new();
    let (a, b) = (tmp.open(), tmp.open());
    let (_, link) = start(&a, &user("U1"), WORD, at(0));
    assert!(matches!(
        consume(&a, &link, "x", at(1)),
        Err(LinkError::WrongWord { attempts_left: 4 })
    ));
    assert!(matches!(
        consume(&b, &link, "y", at(1)),
        Err(LinkError::WrongWord { attempts_left: 3 })
    ));
    let claim = consume(&b, &link, WORD, at(2)).unwrap();
    b.complete_link(claim, token("tok-A"), at(2)).unwrap();
    assert!(matches!(
        consume(&a, &link, WORD, at(3)),
        Err(LinkError::Used)
    ));
    assert_eq!(secret_of(&a, &user("U1"), at(3)).as_deref(), Some("tok-A"));
}

#[test]
fn sqlite_uses_wal_and_private_permissions() {
    let (tmp, _store) = sqlite_store();
    let conn = rusqlite::Connection::open(tmp.path()).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::metadata(tmp.path()).unwrap().permissions();
        assert_eq!(perms.mode() & 0o777, 0o600);
    }
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SessionStore>();
    fn assert_send<T: Send>() {}
    assert_send::<LinkClaim>();
    assert_send::<StoreError>();
}

#[test]
fn memory_backend_name() {
    assert_eq!(SessionStore::memory().backend_name(), "memory");
}

macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod memory_backend {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::SessionStore::memory());
                }
            )*
        }
        mod sqlite_backend {
            $(
                #[test]
                fn $name() {
                    let (_tmp, store) = super::sqlite_store();
                    super::$name(&store);
                }
            )*
        }
        mod redis_backend {
            $(
                #[test]
                fn $name() {
                    let store = super::Fixture::redis().store;
                    assert_eq!(store.backend_name(), "redis");
                    super::$name(&store);
                }
            )*
        }
    };
}

backend_tests!(
    full_flow,
    replay_of_used_link,
    expired_link,
    new_start_replaces_pending_keeps_active,
    too_many_attempts,
    release_and_claim_lifetime,
    end_and_cancel,
    list_has_no_secrets,
    purge_and_expiry,
    debug_output_has_no_secrets,
    peek_and_infallible_wrappers,
    input_validation,
);

fn owed(id: &str, at_secs: i64) -> crate::domain::result_ledger::PendingResult {
    crate::domain::result_ledger::PendingResult {
        request_id: id.into(),
        execution_id: None,
        context: crate::domain::announcement::SourceContext {
            bridge: crate::domain::announcement::BRIDGE_MARKER.into(),
            connection: "slack".into(),
            room: "C1".into(),
            room_kind: crate::domain::message::RoomKind::Group,
            thread: Some("1700.1".into()),
            message_id: Some("1700.2".into()),
            user_id: "U1".into(),
            user_name: None,
            request_id: id.into(),
        },
        alias_ref: "demo.date".into(),
        alias_id: Some("5f00".into()),
        created_at: at(at_secs),
        delivered_at: None,
    }
}

/// After U2's sealed token (`tok-B`) was copied onto U1's record: U1's credential is
/// refused as not theirs, without showing it, and U2's still opens.
fn a_moved_secret_is_refused(store: &SessionStore) {
    let err = store.try_credential_for(&user("U1"), at(1)).unwrap_err();
    assert!(matches!(err, StoreError::Decrypt { .. }), "{err:?}");
    // The infallible accessor logs and treats it as "no session".
    assert!(store.credential_for(&user("U1"), at(1)).is_none());
    assert!(!err.to_string().contains("tok-"), "{err}");
    assert_eq!(
        secret_of(store, &user("U2"), at(1)).as_deref(),
        Some("tok-B")
    );
}

/// Results owed written through `results` come back, changed as they were, oldest first,
/// from `reopened` (the same store after a restart).
fn results_owed_survive_a_restart(results: ResultStore, reopened: impl FnOnce() -> ResultStore) {
    assert!(results.is_persistent());
    results.insert(&owed("r1", 0)).unwrap();
    results.insert(&owed("r3", 2)).unwrap();
    results.insert(&owed("r2", 1)).unwrap();
    results.set_execution("r1", "e1").unwrap();
    results.set_execution("r2", "e2").unwrap();
    results.set_delivered("r2", Some(at(5))).unwrap();
    results.remove(&["r3".to_owned()]).unwrap();
    // A change to an entry already forgotten does not bring it back.
    results.set_delivered("r3", Some(at(6))).unwrap();
    drop(results);
    let mut r1 = owed("r1", 0);
    r1.execution_id = Some("e1".into());
    let mut r2 = owed("r2", 1);
    r2.execution_id = Some("e2".into());
    r2.delivered_at = Some(at(5));
    assert_eq!(reopened().load().unwrap(), vec![r1, r2]);
}

/// Commands held through `waiting` come back from `reopened`, minus the one decided; their
/// text is in none of `at_rest()`'s bytes.
fn held_commands_survive_a_restart_sealed(
    waiting: WaitingStore,
    reopened: impl FnOnce() -> WaitingStore,
    at_rest: impl FnOnce() -> Vec<u8>,
) {
    assert!(waiting.is_persistent());
    waiting
        .insert(&held("aaaaa", "deploy hunter22 to prod"))
        .unwrap();
    waiting
        .insert(&held("bbbbb", "deploy api to prod"))
        .unwrap();
    waiting.remove("bbbbb").unwrap();
    drop(waiting);
    assert!(
        !contains(&at_rest(), "hunter22"),
        "a held command's text is sealed at rest"
    );
    let loaded = reopened().load().unwrap();
    assert_eq!(loaded, vec![held("aaaaa", "deploy hunter22 to prod")]);
}

#[test]
fn sqlite_results_owed_survive_reopen_and_changes_are_kept() {
    let tmp = TempStore::new();
    results_owed_survive_a_restart(tmp.open().results(), || tmp.open().results());
}

#[test]
fn memory_results_are_not_persisted() {
    let store = SessionStore::memory();
    let results = store.results();
    assert!(!results.is_persistent());
    results.insert(&owed("r1", 0)).unwrap();
    assert!(results.load().unwrap().is_empty());
}

#[test]
fn a_version_1_store_is_migrated_and_keeps_its_sessions() {
    let tmp = TempStore::new();
    let alice = user("U1");
    {
        let store = tmp.open();
        login(&store, &alice, token("tok-A"), at(0));
    }
    // Roll the file back to what an older stormbridge wrote.
    {
        let conn = rusqlite::Connection::open(tmp.path()).unwrap();
        conn.execute_batch(
            "DROP TABLE pending_results; DROP TABLE waiting_commands; DROP TABLE jobs;
             DROP TABLE job_executions; DROP TABLE personal_aliases; DROP TABLE trigger_tokens;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = tmp.open();
    assert_eq!(secret_of(&store, &alice, at(1)).as_deref(), Some("tok-A"));
    store.results().insert(&owed("r1", 0)).unwrap();
    assert_eq!(store.results().load().unwrap().len(), 1);
    store.waiting().insert(&held("ccccc", "x")).unwrap();
    assert_eq!(store.waiting().load().unwrap().len(), 1);
}

fn held(code: &str, text: &str) -> crate::confirm::Waiting {
    use crate::domain::message::{ChatUser, Room, RoomKind};
    crate::confirm::Waiting {
        code: code.into(),
        need: crate::confirm::Need::Confirmation,
        sender: ChatUser {
            connection: "chat".into(),
            id: "U1".into(),
            name: "Alice".into(),
        },
        room: Room {
            connection: "chat".into(),
            id: "C1".into(),
            kind: RoomKind::Group,
            thread: None,
        },
        room_name: None,
        org: None,
        message_id: None,
        text: text.into(),
        shown: text.into(),
        alias_ref: "ops.deploy".into(),
        pack: "ops".into(),
        parameters: Vec::new(),
        comment: None,
        created_at: at(0),
        expires_at: at(60),
        offer_message: None,
    }
}

#[test]
fn held_commands_survive_reopen_sealed() {
    let tmp = TempStore::new();
    held_commands_survive_a_restart_sealed(
        tmp.open().waiting(),
        || tmp.open().waiting(),
        || raw_bytes(tmp.dir.path()),
    );
    // The memory backend keeps nothing.
    let memory = SessionStore::memory().waiting();
    assert!(!memory.is_persistent());
    memory.insert(&held("aaaaa", "x")).unwrap();
    assert!(memory.load().unwrap().is_empty());
}

#[test]
fn a_version_3_store_is_migrated_and_keeps_what_it_had() {
    let tmp = TempStore::new();
    let alice = user("U1");
    {
        let store = tmp.open();
        login(&store, &alice, token("tok-A"), at(0));
        store.waiting().insert(&held("ddddd", "x")).unwrap();
    }
    {
        let conn = rusqlite::Connection::open(tmp.path()).unwrap();
        conn.execute_batch(
            "DROP TABLE jobs; DROP TABLE job_executions; DROP TABLE personal_aliases;
             DROP TABLE trigger_tokens; PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store = tmp.open();
    assert_eq!(secret_of(&store, &alice, at(1)).as_deref(), Some("tok-A"));
    assert_eq!(store.waiting().load().unwrap().len(), 1);
    let version: i64 = rusqlite::Connection::open(tmp.path())
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    store
        .personal_aliases()
        .set(&alice, "x", "run x", at(1))
        .unwrap();
    assert_eq!(store.personal_aliases().list(&alice).unwrap().len(), 1);
}

#[test]
fn a_version_4_store_keeps_its_jobs_and_tokens_without_the_new_columns() {
    use crate::store::jobs::{JobKind, JobStatus, NewJob};
    use crate::store::trigger_tokens::NewTriggerToken;
    let tmp = TempStore::new();
    let alice = user("U1");
    let (job, token) = {
        let store = tmp.open();
        let job = store
            .jobs()
            .record(
                NewJob {
                    user: alice.clone(),
                    user_name: "Alice".into(),
                    connection: "slack".into(),
                    room_id: "C1".into(),
                    room_name: None,
                    room_kind: crate::domain::message::RoomKind::Group,
                    thread: None,
                    text: "run date".into(),
                    kind: JobKind::Alias {
                        alias_ref: "core.run".into(),
                    },
                    parameters: serde_json::Map::new(),
                    status: JobStatus::Requested,
                    decided_by: None,
                },
                at(0),
            )
            .unwrap();
        let (token, secret) = store
            .trigger_tokens()
            .create(
                NewTriggerToken {
                    user: alice.clone(),
                    user_name: "Alice".into(),
                    connection: "slack".into(),
                    room_id: "C1".into(),
                    room_name: None,
                    room_kind: crate::domain::message::RoomKind::Group,
                    thread: None,
                    org: Some("T1".into()),
                    command: "run date".into(),
                    created_by: alice.clone(),
                },
                at(0),
            )
            .unwrap();
        drop(token);
        (job, secret)
    };
    {
        // The file as version 4 wrote it.
        let conn = rusqlite::Connection::open(tmp.path()).unwrap();
        conn.execute_batch(
            "ALTER TABLE jobs DROP COLUMN run_started_at; ALTER TABLE jobs DROP COLUMN run_ended_at;
             ALTER TABLE jobs DROP COLUMN web_urls; ALTER TABLE trigger_tokens DROP COLUMN org;
             PRAGMA user_version = 4;",
        )
        .unwrap();
    }
    let store = tmp.open();
    let read = store.jobs().get(job).unwrap().unwrap();
    assert_eq!(read.text, "run date");
    assert_eq!((read.run_started_at, read.run_ended_at), (None, None));
    assert!(read.web_urls.is_empty());
    let used = store
        .trigger_tokens()
        .verify(secrecy::ExposeSecret::expose_secret(&token), at(1))
        .unwrap();
    assert_eq!(
        used.org, None,
        "tokens from before keep working, without an org"
    );
}

// ---------------------------------------------------------------------------
// Jobs, personal aliases and trigger tokens: every test body runs on every backend.

/// A fresh, empty store on one backend. `_file` keeps a SQLite store's directory alive
/// while the test runs.
struct Fixture {
    store: SessionStore,
    _file: Option<TempStore>,
}

impl Fixture {
    fn memory() -> Self {
        Self {
            store: SessionStore::memory(),
            _file: None,
        }
    }

    fn sqlite() -> Self {
        let file = TempStore::new();
        Self {
            store: file.open(),
            _file: Some(file),
        }
    }

    /// On the test process's `redis-server`, under a key prefix of its own.
    fn redis() -> Self {
        let server = redis_server::shared();
        let options = redis_server::options(server, &redis_server::fresh_prefix());
        Self {
            store: redis_server::open(&options, &StoreKey::generate().unwrap()),
            _file: None,
        }
    }
}

/// `mod <backend>` with one `#[test]` per named test body, each on a fresh
/// `Fixture::<backend>()`.
macro_rules! on_backend {
    ($backend:ident: $($name:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $name() {
                    super::$name(&crate::store::tests::Fixture::$backend());
                }
            )*
        }
    };
}

/// Runs each named test body on every backend. A new backend is one more line here
/// (and its `Fixture` constructor).
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        on_backend!(memory: $($name),*);
        on_backend!(sqlite: $($name),*);
        on_backend!(redis: $($name),*);
    };
}

mod jobs;
mod personal_aliases;
mod redis_server;
mod trigger_tokens;
