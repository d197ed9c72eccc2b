//! The Redis backend (`[store] backend = "redis"`): one connection to a Redis server,
//! shared by every store that keeps its data there, as [`super::sqlite::SqliteBackend`]
//! is shared for SQLite.
//!
//! # Keys
//!
//! Every key starts with the configured prefix (`stormbridge:` by default), so several
//! bridges (or tests) can share one Redis database. `<p>meta:key_check` holds a value
//! sealed with the store key at first use (and `<p>meta:key_id` its id): a bridge started
//! with another key refuses to start ([`StoreError::RedisWrongKey`]), as with SQLite. Each
//! store documents its own keys in its `redis` module.
//!
//! # Guarantees
//!
//! Every change that touches more than one key, or reads before it writes, runs as an
//! optimistic transaction ([`RedisBackend::atomically`]: `WATCH` the keys read, then
//! `MULTI`/`EXEC` the writes, and start again if another client changed a watched key
//! meanwhile), so several bridges sharing a Redis keep the same rules SQLite's
//! transactions keep. Ids come from `INCR` counters: they increase and are never reused.
//! Secrets are sealed with the store key exactly as SQLite seals them.
//!
//! # Connection
//!
//! One blocking connection, behind a lock (calls block; callers run them off the async
//! executor, as for SQLite). Connecting and every reply are bounded by timeouts; a
//! connection that failed (I/O error, timeout, dropped) is discarded and the next call
//! connects again. The password never appears in `Debug` output, logs or errors.

use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Client, Connection, IntoConnectionInfo, Pipeline, Value};
use secrecy::{ExposeSecret, SecretString};

use super::crypto::{aad, OpenError, StoreKey};
use super::error::StoreError;

/// How long connecting (TCP, TLS, `AUTH`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one reply may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Optimistic transactions retried before giving up (only other clients writing the same
/// keys make one retry).
const MAX_TRANSACTION_ATTEMPTS: usize = 100;

const KEY_CHECK_PLAINTEXT: &[u8] = b"stormbridge session store key check v1";

/// Where and how to reach Redis (from `[store]`).
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db` or `rediss://…` (TLS); never with a password in it.
    pub url: String,
    /// The ACL user, if not `default`.
    pub username: Option<String>,
    /// The password (of the ACL user, or `requirepass`).
    pub password: Option<SecretString>,
    /// A private CA to trust for `rediss://` (PEM), instead of the system's roots.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Prepended to every key.
    pub prefix: String,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[hidden]"))
            .field("tls_ca", &self.tls_ca_pem.is_some())
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// What went wrong inside a Redis call: a Redis error (which may mean the connection is
/// gone) or a store-level refusal.
pub(crate) enum Fail {
    Redis(redis::RedisError),
    Store(StoreError),
}

impl From<redis::RedisError> for Fail {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A Redis error as a store error. redis-rs messages name commands and server replies,
/// never argument values, so no secret reaches them.
pub(crate) fn redis_error(e: &redis::RedisError) -> StoreError {
    StoreError::Redis {
        what: e.to_string(),
    }
}

/// Whether a failed connection is Redis not being reachable (refused, timed out, dropped,
/// a name that does not resolve: all I/O errors) rather than Redis answering no.
fn unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_refusal() || e.is_connection_dropped()
}

pub(crate) struct RedisBackend {
    client: Client,
    conn: Mutex<Option<Connection>>,
    prefix: String,
    pub(super) key: StoreKey,
    /// `host:port` for messages.
    place: String,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("place", &self.place)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// Connects, authenticates and proves `key` is the key this prefix was first used
    /// with (recording it if the prefix is new).
    pub(crate) fn open(options: &RedisOptions, key: &StoreKey) -> Result<Self, StoreError> {
        let info = options
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| redis_error(&e))?;
        if info.redis_settings().password().is_some() {
            return Err(StoreError::InvalidInput {
                what: "the Redis URL must not hold a password (use password_file or password_env)",
            });
        }
        let place = info.addr().to_string();
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &options.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &options.password {
            settings = settings.set_password(password.expose_secret());
        }
        let info = info.set_redis_settings(settings);
        let client = match &options.tls_ca_pem {
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => Client::open(info),
        }
        .map_err(|e| redis_error(&e))?;
        let backend = Self {
            client,
            conn: Mutex::new(None),
            prefix: options.prefix.clone(),
            key: key.clone(),
            place,
        };
        backend.verify_key()?;
        Ok(backend)
    }

    /// `<prefix><rest>`.
    pub(super) fn key_of(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn connect(&self) -> Result<Connection, redis::RedisError> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        // A server that wants a password we did not give says so here (NOAUTH), as a clear
        // connection error rather than inside the first transaction (where redis-rs 1.8
        // trips over an error reply to `MULTI` itself).
        let mut con = con;
        redis::cmd("PING").exec(&mut con)?;
        Ok(con)
    }

    /// Runs `f` on the connection (connecting first if there is none). A connection that
    /// failed underneath is dropped; the next call connects again.
    pub(super) fn run<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        let mut slot = self.conn.lock();
        let mut con = match slot.take() {
            Some(con) => con,
            None => self.connect().map_err(|e| {
                let what = format!("cannot connect to Redis at {}: {e}", self.place);
                if unreachable(&e) {
                    StoreError::RedisUnreachable { what }
                } else {
                    StoreError::Redis { what }
                }
            })?,
        };
        match f(&mut con) {
            Ok(v) => {
                *slot = Some(con);
                Ok(v)
            }
            Err(Fail::Store(e)) => {
                *slot = Some(con);
                Err(e)
            }
            Err(Fail::Redis(e)) => {
                let broken = e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error();
                if !broken {
                    *slot = Some(con);
                }
                Err(redis_error(&e))
            }
        }
    }

    /// An optimistic transaction: `WATCH`es `watch`, runs `body` (which reads, may
    /// `WATCH` more keys with [`watch`], and queues its writes in the atomic pipeline),
    /// then `EXEC`s the writes; if a watched key changed meanwhile it starts again. An
    /// error from `body` writes nothing.
    pub(super) fn atomically<T>(
        &self,
        watch_keys: &[String],
        mut body: impl FnMut(&mut Connection, &mut Pipeline) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        self.run(|con| {
            for _ in 0..MAX_TRANSACTION_ATTEMPTS {
                if !watch_keys.is_empty() {
                    watch(con, watch_keys)?;
                }
                let mut pipe = redis::pipe();
                pipe.atomic();
                let out = match body(con, &mut pipe) {
                    Ok(out) => out,
                    Err(e) => {
                        redis::cmd("UNWATCH").exec(con)?;
                        return Err(e);
                    }
                };
                let reply: Value = pipe.query(con)?;
                if !matches!(reply, Value::Nil) {
                    return Ok(out);
                }
            }
            Err(Fail::Store(StoreError::Redis {
                what: "a change kept conflicting with other clients' changes; try again".to_owned(),
            }))
        })
    }

    fn verify_key(&self) -> Result<(), StoreError> {
        let check_key = self.key_of("meta:key_check");
        let id_key = self.key_of("meta:key_id");
        let sealed = self.key.seal(&key_check_aad(), KEY_CHECK_PLAINTEXT)?;
        let (check, key_id): (String, Option<String>) = self.run(|con| {
            // First use of this prefix: record the check value (only if nobody did).
            let (check, key_id): (Option<String>, Option<String>) = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&check_key)
                .arg(&sealed)
                .arg("NX")
                .ignore()
                .cmd("SET")
                .arg(&id_key)
                .arg(self.key.key_id())
                .arg("NX")
                .ignore()
                .cmd("GET")
                .arg(&check_key)
                .cmd("GET")
                .arg(&id_key)
                .query(con)?;
            let check = check.ok_or_else(|| {
                Fail::Store(StoreError::Corrupt {
                    what: "the key check value is missing".to_owned(),
                })
            })?;
            Ok((check, key_id))
        })?;
        let wrong_key = |expected: String| StoreError::RedisWrongKey {
            place: self.place.clone(),
            prefix: self.prefix.clone(),
            expected,
            given: self.key.key_id().to_owned(),
        };
        match self.key.open(&key_check_aad(), &check) {
            Ok(plain) if plain[..] == *KEY_CHECK_PLAINTEXT => Ok(()),
            Ok(_) | Err(OpenError::Authentication) => {
                Err(wrong_key(key_id.unwrap_or_else(|| "unknown".to_owned())))
            }
            Err(OpenError::KeyMismatch { found }) => Err(wrong_key(found)),
            Err(OpenError::Malformed) => Err(StoreError::Corrupt {
                what: "the key check value in Redis is malformed".to_owned(),
            }),
        }
    }

    /// Seals `text` for the record that `aad_parts` name (as SQLite does).
    pub(super) fn seal_text(&self, aad_parts: &[&str], text: &str) -> Result<String, StoreError> {
        self.key.seal(&aad(aad_parts), text.as_bytes())
    }

    /// Opens a value made by [`RedisBackend::seal_text`] with the same `aad_parts`.
    pub(super) fn open_text(
        &self,
        aad_parts: &[&str],
        sealed: &str,
        what: impl Fn() -> String,
    ) -> Result<String, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt {
            what: format!("{}: {why}", what()),
        };
        let mut plain = self
            .key
            .open(&aad(aad_parts), sealed)
            .map_err(|e| match e {
                OpenError::KeyMismatch { .. } => corrupt("sealed with another key"),
                OpenError::Authentication => corrupt("does not authenticate"),
                OpenError::Malformed => corrupt("malformed"),
            })?;
        String::from_utf8(std::mem::take(&mut *plain)).map_err(|_| corrupt("not text"))
    }
}

/// `WATCH`es more keys inside [`RedisBackend::atomically`].
pub(super) fn watch(con: &mut Connection, keys: &[String]) -> Result<(), Fail> {
    redis::cmd("WATCH").arg(keys).exec(con)?;
    Ok(())
}

/// Reads a JSON record (`None` if the key does not exist).
pub(super) fn get_json<T: serde::de::DeserializeOwned>(
    con: &mut Connection,
    key: &str,
    what: impl Fn() -> String,
) -> Result<Option<T>, Fail> {
    let raw: Option<String> = redis::cmd("GET").arg(key).query(con)?;
    raw.map(|text| from_json(&text, &what)).transpose()
}

/// Parses a JSON record read from Redis.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl Fn() -> String,
) -> Result<T, Fail> {
    serde_json::from_str(text).map_err(|e| {
        Fail::Store(StoreError::Corrupt {
            what: format!("{}: {e}", what()),
        })
    })
}

/// A record as JSON for Redis.
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        what: format!("a record cannot be written as JSON: {e}"),
    })
}

fn key_check_aad() -> Vec<u8> {
    aad(&["meta", "key_check"])
}
