//! A real `redis-server` for the store tests (Debian package `redis-server`, installed by
//! `.ci/test-deps`), and what only the Redis backend has to prove: authentication, sealing
//! at rest as Redis holds it, the key check, and surviving a reconnect.
//!
//! One server per test process ([`shared`]), on a free loopback port, with no
//! persistence and a temporary directory; each [`Fixture::redis`] gets a key prefix of
//! its own, so tests stay independent. The server is started through a small shell that
//! kills it when its standard input closes: when this process ends, however it ends, the
//! pipe closes and the server goes (statics are never dropped).

use std::io::Write as _;

use ::redis::IntoConnectionInfo as _;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::*;
use crate::domain::message::RoomKind;
use crate::store::redis::RedisBackend;

/// How long a server may take to say it is ready.
const START_DEADLINE: Duration = Duration::from_secs(15);

pub(super) struct RedisServer {
    pub(super) port: u16,
    child: Child,
    /// Closing it stops the server (see the module docs).
    stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` with `extra` arguments; `auth` is the `(user, password)` to
    /// check it answers with.
    pub(super) fn start(extra: &[&str], auth: Option<(&str, &str)>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir = tempfile::tempdir().unwrap();
        let port_text = port.to_string();
        let dir_text = dir.path().to_str().unwrap().to_owned();
        let mut args = vec![
            "--port",
            port_text.as_str(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir_text.as_str(),
            "--daemonize",
            "no",
            "--loglevel",
            "notice",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"redis-server "$@" & pid=$!; read _ignored; kill "$pid"; wait "$pid""#)
            .arg("sh")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-server is installed (.ci/test-deps)");
        let stdin = child.stdin.take();
        // The server's log, read to its end (so the pipe never fills) on a thread of its
        // own; it says when the server is ready.
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let log = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(log).lines() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let server = Self {
            port,
            child,
            stdin,
            _dir: dir,
        };
        if ready.recv_timeout(START_DEADLINE).is_err() {
            panic!("redis-server on port {port} did not start within {START_DEADLINE:?}");
        }
        server.check_ping(auth);
        server
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain client (no prefix, no store), to look at what Redis holds.
    pub(super) fn plain(&self, auth: Option<(&str, &str)>) -> ::redis::Connection {
        let mut info = self.url().as_str().into_connection_info().unwrap();
        if let Some((user, password)) = auth {
            let settings = info
                .redis_settings()
                .clone()
                .set_username(user)
                .set_password(password);
            info = info.set_redis_settings(settings);
        }
        let con = ::redis::Client::open(info)
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        con
    }

    /// One `PING` (with `auth`), once the server said it is ready.
    fn check_ping(&self, auth: Option<(&str, &str)>) {
        let answer: String = ::redis::cmd("PING")
            .query(&mut self.plain(auth))
            .unwrap_or_else(|e| panic!("redis-server on port {} does not answer: {e}", self.port));
        assert_eq!(answer, "PONG");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        // The shell kills the server and waits for it, then exits.
        let _ = self.child.wait();
    }
}

/// The test process's server.
pub(super) fn shared() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start(&[], None))
}

/// A key prefix no other test of this process uses.
pub(super) fn fresh_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test{}-{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub(super) fn options(server: &RedisServer, prefix: &str) -> RedisOptions {
    RedisOptions {
        url: server.url(),
        username: None,
        password: None,
        tls_ca_pem: None,
        prefix: prefix.to_owned(),
    }
}

pub(super) fn open(options: &RedisOptions, key: &StoreKey) -> SessionStore {
    SessionStore::with_redis_parts(Arc::new(RedisBackend::open(options, key).unwrap()))
}

/// Every value under `prefix`, as bytes (strings, lists, and hash fields and values).
fn raw_values(con: &mut ::redis::Connection, prefix: &str) -> Vec<u8> {
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(con)
        .unwrap();
    assert!(!keys.is_empty());
    let mut all = Vec::new();
    for key in keys {
        all.extend(key.as_bytes());
        let kind: String = ::redis::cmd("TYPE").arg(&key).query(con).unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![::redis::cmd("GET").arg(&key).query(con).unwrap()],
            "hash" => ::redis::cmd("HGETALL").arg(&key).query(con).unwrap(),
            "set" => ::redis::cmd("SMEMBERS").arg(&key).query(con).unwrap(),
            "list" => ::redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(con)
                .unwrap(),
            "zset" => ::redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(con)
                .unwrap(),
            other => panic!("unexpected type {other} of {key}"),
        };
        for v in values {
            all.extend(v);
        }
    }
    all
}

#[test]
fn sealed_records_hold_no_secret_in_redis() {
    let server = shared();
    let prefix = fresh_prefix();
    let store = open(&options(server, &prefix), &StoreKey::generate().unwrap());
    let alice = user("U1");
    store
        .personal_aliases()
        .set(&alice, "db", "deploy --password hunter22", at(0))
        .unwrap();
    let (_, secret) = store
        .trigger_tokens()
        .create(
            NewTriggerToken {
                user: alice.clone(),
                user_name: "Alice".into(),
                connection: "slack".into(),
                room_id: "C1".into(),
                room_name: None,
                room_kind: RoomKind::Group,
                thread: None,
                org: None,
                command: "nagios ack --token hunter33".into(),
                created_by: alice.clone(),
            },
            at(0),
        )
        .unwrap();
    let raw = raw_values(&mut server.plain(None), &prefix);
    assert!(
        !contains(&raw, "hunter22"),
        "an alias text is sealed in Redis"
    );
    assert!(!contains(&raw, "hunter33"), "a token's command is sealed");
    let whole = secret.expose_secret();
    assert!(!contains(&raw, whole), "a token is kept only as a hash");
    assert!(!contains(&raw, &whole[whole.len() - 20..]));
    // And they read back through the store.
    let text = store.personal_aliases().get(&alice, "db").unwrap().unwrap();
    assert_eq!(text.text, "deploy --password hunter22");
    assert!(store.trigger_tokens().verify(whole, at(1)).is_ok());
}

#[test]
fn a_prefix_used_with_another_key_is_refused() {
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let store = open(&options(server, &prefix), &key);
    store
        .personal_aliases()
        .set(&user("U1"), "x", "run x", at(0))
        .unwrap();
    let other = StoreKey::generate().unwrap();
    let err = RedisBackend::open(&options(server, &prefix), &other).unwrap_err();
    assert!(matches!(err, StoreError::RedisWrongKey { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(other.key_id()), "{message}");
    assert!(message.contains(&prefix), "{message}");
    // The original key still opens it, and what was kept is there.
    let again = open(&options(server, &prefix), &key);
    assert_eq!(again.personal_aliases().list(&user("U1")).unwrap().len(), 1);
}

#[test]
fn what_redis_keeps_survives_a_new_connection() {
    // A server of its own: `CLIENT KILL` below drops every client of the server, and on
    // the shared one that would break the tests running alongside.
    let server = &RedisServer::start(&[], None);
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let alice = user("U1");
    let id = {
        let store = open(&options(server, &prefix), &key);
        assert!(store.jobs().is_persistent());
        assert!(store.personal_aliases().is_persistent());
        assert!(store.trigger_tokens().is_persistent());
        let job = NewJob {
            user: alice.clone(),
            user_name: "Alice".into(),
            connection: "slack".into(),
            room_id: "C1".into(),
            room_name: None,
            room_kind: RoomKind::Direct,
            thread: None,
            text: "uptime".into(),
            kind: JobKind::Local {
                command: "uptime".into(),
            },
            parameters: serde_json::Map::new(),
            status: JobStatus::Requested,
            decided_by: None,
        };
        store.jobs().record(job.clone(), at(0)).unwrap();
        store.jobs().record(job, at(1)).unwrap()
    };
    let store = open(&options(server, &prefix), &key);
    assert_eq!(store.jobs().get(id).unwrap().unwrap().text, "uptime");
    assert_eq!(store.jobs().unfinished().unwrap().len(), 2);
    // The server drops every client: the next call connects again.
    let _: () = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut server.plain(None))
        .unwrap();
    // The first call may see the dropped connection; one after it reconnects.
    let _ = store.jobs().count();
    assert_eq!(store.jobs().count().unwrap(), 2);
}

#[test]
fn passwords_and_acl_users_authenticate() {
    let server = RedisServer::start(
        &[
            "--requirepass",
            "default-pw",
            "--user",
            "bridge",
            "on",
            ">bridge-pw",
            "~*",
            "&*",
            "+@all",
        ],
        Some(("default", "default-pw")),
    );
    let key = StoreKey::generate().unwrap();
    let with = |user: Option<&str>, password: Option<&str>| RedisOptions {
        username: user.map(str::to_owned),
        password: password.map(SecretString::from),
        ..options(&server, &fresh_prefix())
    };
    // requirepass (the default user), then an ACL user.
    let store = open(&with(None, Some("default-pw")), &key);
    store
        .personal_aliases()
        .set(&user("U1"), "x", "run x", at(0))
        .unwrap();
    let store = open(&with(Some("bridge"), Some("bridge-pw")), &key);
    store
        .personal_aliases()
        .set(&user("U1"), "x", "run x", at(0))
        .unwrap();
    // No password, a wrong one, a wrong user: clear errors that never show the password.
    for (user, password) in [
        (None, None),
        (None, Some("not-the-pw")),
        (Some("bridge"), Some("not-the-pw")),
        (Some("nobody"), Some("bridge-pw")),
    ] {
        let options = with(user, password);
        let err = RedisBackend::open(&options, &key).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Redis { .. }), "{err:?}");
        assert!(
            message.contains("NOAUTH")
                || message.contains("WRONGPASS")
                || message.contains("uthentication"),
            "{message}"
        );
        assert!(message.contains("127.0.0.1"), "{message}");
        assert!(!message.contains("not-the-pw"), "{message}");
        assert!(!message.contains("bridge-pw"), "{message}");
        assert!(!format!("{options:?}").contains("-pw"), "{options:?}");
    }
    // A password in the URL itself is refused: it belongs in password_file/password_env.
    let in_url = RedisOptions {
        url: format!("redis://:default-pw@127.0.0.1:{}/", server.port),
        ..with(None, None)
    };
    let err = RedisBackend::open(&in_url, &key).unwrap_err();
    assert!(err.to_string().contains("password_file"), "{err}");
    assert!(!err.to_string().contains("default-pw"), "{err}");
}

/// A server that is not there (yet) is told apart from one that refuses (a `Redis` error:
/// `passwords_and_acl_users_authenticate`): a start waits for the first (a bundled Redis
/// starting beside the bridge) and stops at once for the second.
#[test]
fn a_redis_not_listening_or_not_resolving_is_unreachable() {
    let key = StoreKey::generate().unwrap();
    let port = {
        // A port nothing listens on any more.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let nobody = RedisOptions {
        url: format!("redis://127.0.0.1:{port}/0"),
        ..options(shared(), &fresh_prefix())
    };
    let err = RedisBackend::open(&nobody, &key).unwrap_err();
    assert!(
        matches!(err, StoreError::RedisUnreachable { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let unresolved = RedisOptions {
        url: "redis://no-such-host.invalid:6379/0".to_owned(),
        ..options(shared(), &fresh_prefix())
    };
    let err = RedisBackend::open(&unresolved, &key).unwrap_err();
    assert!(
        matches!(err, StoreError::RedisUnreachable { .. }),
        "{err:?}"
    );
}

#[test]
fn results_owed_and_held_commands_survive_a_restart_in_redis() {
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    // Each a new connection, as a restarted bridge opens.
    let backend = || Arc::new(RedisBackend::open(&options(server, &prefix), &key).unwrap());
    results_owed_survive_a_restart(ResultStore::redis(backend()), || {
        ResultStore::redis(backend())
    });
    held_commands_survive_a_restart_sealed(
        WaitingStore::redis(backend()),
        || WaitingStore::redis(backend()),
        || raw_values(&mut server.plain(None), &prefix),
    );
    // Another key cannot read them: the store refuses to open at all.
    let other = StoreKey::generate().unwrap();
    assert!(RedisBackend::open(&options(server, &prefix), &other).is_err());
}

#[test]
fn a_session_token_is_sealed_in_redis_and_survives_a_restart() {
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let (alice, bob) = (user("U1"), user("U2"));
    let word = "bobs-word-sentinel-31";
    let (before, used_link, bob_link) = {
        let store = open(&options(server, &prefix), &key);
        assert_eq!(store.backend_name(), "redis");
        let used_link = login(&store, &alice, token("tok-hunter44"), at(0));
        let (_, bob_link) = start(&store, &bob, word, at(1));
        assert!(matches!(
            consume(&store, &bob_link, "nope", at(2)),
            Err(LinkError::WrongWord { attempts_left: 4 })
        ));
        let raw = raw_values(&mut server.plain(None), &prefix);
        assert!(contains(&raw, "v1:"), "the sealed credential is there");
        assert!(contains(&raw, "st2-alice"), "sanity: the scan sees records");
        for secret in [
            "tok-hunter44",
            word,
            used_link.expose_secret(),
            bob_link.expose_secret(),
        ] {
            assert!(!contains(&raw, secret), "{secret} is in clear in Redis");
        }
        (store.try_list(at(3)).unwrap(), used_link, bob_link)
    };
    // A restart: a new store on the same prefix and key.
    let store = open(&options(server, &prefix), &key);
    assert_eq!(store.try_list(at(3)).unwrap(), before);
    assert_eq!(
        secret_of(&store, &alice, at(3)).as_deref(),
        Some("tok-hunter44")
    );
    assert!(matches!(
        consume(&store, &used_link, WORD, at(4)),
        Err(LinkError::Used)
    ));
    // The attempt spent before the restart still counts, and the link still works.
    assert!(matches!(
        consume(&store, &bob_link, "nope", at(4)),
        Err(LinkError::WrongWord { attempts_left: 3 })
    ));
    let claim = consume(&store, &bob_link, word, at(5)).unwrap();
    store.complete_link(claim, token("tok-B"), at(5)).unwrap();
    assert_eq!(secret_of(&store, &bob, at(6)).as_deref(), Some("tok-B"));
}

#[test]
fn a_moved_or_mangled_session_record_is_refused_without_showing_it() {
    let server = shared();
    let prefix = fresh_prefix();
    let store = open(&options(server, &prefix), &StoreKey::generate().unwrap());
    login(&store, &user("U1"), token("tok-A"), at(0));
    login(&store, &user("U2"), token("tok-B"), at(0));
    let mut con = server.plain(None);
    let record_of = |con: &mut ::redis::Connection, who: &str| -> (String, serde_json::Value) {
        let id: String = ::redis::cmd("HGET")
            .arg(format!("{prefix}session_user:slack:{who}"))
            .arg("active")
            .query(con)
            .unwrap();
        let key = format!("{prefix}session:{id}");
        let text: String = ::redis::cmd("GET").arg(&key).query(con).unwrap();
        (key, serde_json::from_str(&text).unwrap())
    };
    // Bob's sealed token copied onto alice's record: it is bound to bob's session.
    let (alice_key, mut alice_record) = record_of(&mut con, "U1");
    let (_, bob_record) = record_of(&mut con, "U2");
    alice_record["cred_secret"] = bob_record["cred_secret"].clone();
    let _: () = ::redis::cmd("SET")
        .arg(&alice_key)
        .arg(alice_record.to_string())
        .query(&mut con)
        .unwrap();
    a_moved_secret_is_refused(&store);
    // A record that is not JSON of a session: a clear error that does not quote it.
    let _: () = ::redis::cmd("SET")
        .arg(&alice_key)
        .arg(r#"{"id": "x", "cred_secret": "hunter55"}"#)
        .query(&mut con)
        .unwrap();
    let err = store.try_list(at(1)).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter55"), "{err}");
}

#[test]
fn two_bridges_cannot_both_complete_one_link() {
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let a = Arc::new(open(&options(server, &prefix), &key));
    let b = Arc::new(open(&options(server, &prefix), &key));
    let alice = user("U1");
    for round in 0..10 {
        let now = at(round * 10);
        let (_, link) = start(&a, &alice, WORD, now);
        // Claims belong to one process: each bridge claims the link for itself.
        let claims = [
            (
                a.clone(),
                consume(&a, &link, WORD, now).unwrap(),
                "tok-from-a",
            ),
            (
                b.clone(),
                consume(&b, &link, WORD, now).unwrap(),
                "tok-from-b",
            ),
        ];
        let results: Vec<_> = claims
            .into_iter()
            .map(|(store, claim, secret)| {
                std::thread::spawn(move || (secret, store.complete_link(claim, token(secret), now)))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let winners: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (_, result) in &results {
            if let Err(e) = result {
                assert!(matches!(e, StoreError::StaleClaim), "{e:?}");
            }
        }
        for store in [&a, &b] {
            let list = store.try_list(now).unwrap();
            assert_eq!(list.len(), 1, "exactly one session: {list:?}");
            assert_eq!(list[0].state, SessionState::Active);
            assert_eq!(secret_of(store, &alice, now).as_deref(), Some(winners[0].0));
            assert!(matches!(
                consume(store, &link, WORD, now),
                Err(LinkError::Used)
            ));
        }
    }
}

#[test]
fn two_bridges_share_one_attempt_budget() {
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let stores = [
        Arc::new(open(&options(server, &prefix), &key)),
        Arc::new(open(&options(server, &prefix), &key)),
    ];
    let (_, link) = start(&stores[0], &user("U1"), WORD, at(0));
    // Both bridges guess at once; every attempt is charged once, whoever makes it.
    let threads: Vec<_> = stores
        .iter()
        .flat_map(|store| [store.clone(), store.clone()])
        .map(|store| {
            let link = link.expose_secret().to_owned();
            std::thread::spawn(move || {
                (0..MAX_LINK_ATTEMPTS)
                    .map(|_| store.consume_link(&link, "guess", at(1)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut left: Vec<u32> = Vec::new();
    for thread in threads {
        for result in thread.join().unwrap() {
            match result {
                Err(LinkError::WrongWord { attempts_left }) => left.push(attempts_left),
                Err(LinkError::Busy | LinkError::TooManyAttempts) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    left.sort_unstable();
    let expected: Vec<u32> = (0..MAX_LINK_ATTEMPTS).collect();
    assert_eq!(left, expected, "each attempt was spent exactly once");
    for store in &stores {
        assert!(matches!(
            consume(store, &link, WORD, at(2)),
            Err(LinkError::TooManyAttempts)
        ));
    }
}

/// Requests held for a connection's next holder: any process holding the store's key reads
/// them oldest first; they are sealed (a bearer token in a header never shows in Redis);
/// one forgotten is gone; and no more than `HELD_MAX` wait.
#[test]
fn requests_held_for_the_next_holder_are_kept_sealed_in_order_and_bounded() {
    use crate::store::leases::{HeldRequest, HELD_MAX};
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let standby = open(&options(server, &prefix), &key).leases().unwrap();
    let next = open(&options(server, &prefix), &key).leases().unwrap();
    let request = |n: i64| HeldRequest {
        path: "/webex/events/wx".to_owned(),
        headers: vec![(
            "authorization".to_owned(),
            format!("Bearer secret-token-{n}"),
        )],
        body: "e30=".to_owned(),
        at: n,
    };
    assert!(standby.hold_request("wx", &request(1)).unwrap());
    assert!(standby.hold_request("wx", &request(2)).unwrap());
    let mut con = server.plain(None);
    let raw = raw_values(&mut con, &prefix);
    assert!(
        !String::from_utf8_lossy(&raw).contains("secret-token"),
        "a held request is sealed in Redis"
    );
    let held = next.held_requests("wx", 10).unwrap();
    let opened: Vec<i64> = held
        .iter()
        .map(|(_, r)| r.as_ref().expect("opens").at)
        .collect();
    assert_eq!(opened, [1, 2], "oldest first");
    assert!(next.held_requests("other", 10).unwrap().is_empty());
    next.forget_held_request("wx", &held[0].0).unwrap();
    let left = next.held_requests("wx", 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1.as_ref().expect("opens"), &request(2));
    for n in 0..HELD_MAX - 1 {
        assert!(standby.hold_request("wx", &request(n as i64 + 3)).unwrap());
    }
    assert!(
        !standby.hold_request("wx", &request(0)).unwrap(),
        "no more than HELD_MAX wait"
    );
}

#[test]
fn a_connection_lease_has_one_holder_at_a_time() {
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let a = open(&options(server, &prefix), &key).leases().unwrap();
    let b = open(&options(server, &prefix), &key).leases().unwrap();
    let ttl = Duration::from_secs(30);
    let held = a.acquire("mm", "bridge-a", ttl).unwrap().expect("free");
    assert!(held.value.starts_with("bridge-a#"), "{held:?}");
    assert_eq!(b.acquire("mm", "bridge-b", ttl).unwrap(), None, "held by a");
    assert_eq!(
        b.holder("mm").unwrap().as_deref(),
        Some(held.value.as_str())
    );
    // Another connection's lease is another lease.
    assert!(b.acquire("slack", "bridge-b", ttl).unwrap().is_some());
    assert!(a.renew(&held, ttl).unwrap());
    // A clean stop hands it over at once, with a larger fencing number.
    assert!(a.release(&held).unwrap());
    let taken = b.acquire("mm", "bridge-b", ttl).unwrap().expect("released");
    assert!(taken.fence > held.fence, "{taken:?} after {held:?}");
    assert!(!a.renew(&held, ttl).unwrap(), "not a's any more");
    assert!(!a.release(&held).unwrap(), "a cannot release b's lease");
    assert_eq!(
        a.holder("mm").unwrap().as_deref(),
        Some(taken.value.as_str())
    );
}

#[test]
fn a_lease_not_renewed_lapses_and_another_process_takes_it() {
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let a = open(&options(server, &prefix), &key).leases().unwrap();
    let b = open(&options(server, &prefix), &key).leases().unwrap();
    let held = a
        .acquire("mm", "bridge-a", Duration::from_millis(200))
        .unwrap()
        .unwrap();
    // Redis expires the lease on its own clock: wait for that, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let taken = loop {
        if let Some(taken) = b
            .acquire("mm", "bridge-b", Duration::from_secs(30))
            .unwrap()
        {
            break taken;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never lapsed"
        );
        std::thread::yield_now();
    };
    assert!(taken.fence > held.fence);
    assert!(
        !a.renew(&held, Duration::from_secs(30)).unwrap(),
        "a lapsed holder learns it lost the lease"
    );
    // Memory and SQLite stores have no leases: one process runs everything.
    assert!(SessionStore::memory().leases().is_none());
}

#[test]
fn a_chat_message_is_taken_once_and_the_link_state_is_passed_on() {
    let server = shared();
    let prefix = fresh_prefix();
    let key = StoreKey::generate().unwrap();
    let a = open(&options(server, &prefix), &key).leases().unwrap();
    let b = open(&options(server, &prefix), &key).leases().unwrap();
    let ids = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        a.take_messages("mm", &ids(&["p1", "p2"])).unwrap(),
        vec![true, true]
    );
    assert_eq!(
        b.take_messages("mm", &ids(&["p2", "p3"])).unwrap(),
        vec![false, true],
        "p2 already ran in a"
    );
    assert_eq!(
        b.take_messages("slack", &ids(&["p1"])).unwrap(),
        vec![true],
        "per connection"
    );
    assert!(a.take_messages("mm", &[]).unwrap().is_empty());
    assert_eq!(b.resume_state("mm").unwrap(), None);
    a.save_resume_state("mm", r#"{"connection_id":"c1","sequence_number":7}"#)
        .unwrap();
    assert_eq!(
        b.resume_state("mm").unwrap().as_deref(),
        Some(r#"{"connection_id":"c1","sequence_number":7}"#)
    );
}
