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

/// Every value under `prefix`, as bytes (strings and hash fields and values).
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
    let server = shared();
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
