//! Leases in Redis: which of the bridge processes sharing a Redis store holds each chat
//! connection.
//!
//! # Keys (after the prefix)
//!
//! * `resume:<name>` — where the holder's link stood (the platform's JSON), for the next
//!   holder to resume from.
//! * `taken:<name>:<message id>` — a chat message some holder already ran, kept for
//!   [`MESSAGE_MEMORY`] so one the platform delivers again after a takeover runs once.
//! * `held:<name>` — requests for the connection that reached a process while nobody could
//!   take them (its holder gone, the next not there yet): a list of sealed
//!   [`HeldRequest`]s, at most [`HELD_MAX`] of at most [`HELD_MAX_BODY`], for the next
//!   holder to handle.
//! * `lease:<name>` — `<holder>#<fence>`, with an expiry: the process `holder` holds the
//!   lease until then, and keeps it by renewing it. `fence` is a number that grows with
//!   every new holder (`lease_fence:<name>`, an `INCR` counter), so a holder that was cut
//!   off and comes back can tell its lease is gone even if nobody holds it now.
//!
//! Every check-and-change is one Lua script, which Redis runs atomically: two processes
//! can never both take a lease.

use std::{sync::Arc, time::Duration};

use super::{error::StoreError, redis::RedisBackend};

/// How long a chat message is remembered as run: far longer than a platform replays.
pub const MESSAGE_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// How many requests wait for a connection's next holder at most; more are refused (503)
/// as before. Plenty for a takeover's seconds; a bound for a flood of unsigned junk.
pub const HELD_MAX: usize = 100;

/// The largest body held (a platform's delivery is a few kilobytes); a larger one is refused
/// (503) as before. With [`HELD_MAX`], a connection's held requests stay under 10 MB.
pub const HELD_MAX_BODY: usize = 64 * 1024;

/// How long held requests are kept: a connection nobody takes over for this long loses
/// them (a command that old would not be run anyway, `max_command_age_secs`).
pub const HELD_MEMORY: Duration = Duration::from_secs(600);

/// Appends a held request unless the list is full: 1, else 0.
const HOLD: &str = r"
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// A request to a connection's HTTP route, kept for the connection's next holder: the path,
/// the headers and body as they came (its signature is checked by the holder, as for any
/// request), and when it came (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldRequest {
    /// The route's path.
    pub path: String,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, base64.
    pub body: String,
    /// When it came (Unix seconds).
    pub at: i64,
}

/// Takes a free lease: `{1, value}`, or `{0, current value}` when it is held.
const ACQUIRE: &str = r"
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
local fence = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. '#' .. fence
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value}
";

/// Extends a lease if it is still the caller's: 1, else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Gives a lease up if it is still the caller's: 1, else 0.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// A lease held by this process: what it must show to renew or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The lease's name (a chat connection's name).
    pub name: String,
    /// `<holder>#<fence>` as Redis keeps it.
    pub value: String,
    /// The fencing number: larger for every new holder.
    pub fence: u64,
}

/// Leases in Redis; cheap to clone.
#[derive(Clone)]
pub struct LeaseStore {
    db: Arc<RedisBackend>,
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStore").finish_non_exhaustive()
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl LeaseStore {
    pub(super) fn new(db: Arc<RedisBackend>) -> Self {
        Self { db }
    }

    fn keys(&self, name: &str) -> (String, String) {
        (
            self.db.key_of(&format!("lease:{name}")),
            self.db.key_of(&format!("lease_fence:{name}")),
        )
    }

    /// Takes the lease `name` for `holder` for `ttl` if nobody holds it. `Ok(None)`: held
    /// by someone (perhaps an earlier life of this process, until it expires).
    pub fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Held>, StoreError> {
        let (lease, fence) = self.keys(name);
        let (taken, value): (i64, String) = self.db.run(|con| {
            Ok(::redis::cmd("EVAL")
                .arg(ACQUIRE)
                .arg(2)
                .arg(&lease)
                .arg(&fence)
                .arg(holder)
                .arg(millis(ttl))
                .query(con)?)
        })?;
        if taken != 1 {
            return Ok(None);
        }
        let fence = value
            .rsplit_once('#')
            .and_then(|(_, n)| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("lease {name}: not `holder#fence`"),
            })?;
        Ok(Some(Held {
            name: name.to_owned(),
            value,
            fence,
        }))
    }

    /// Extends `held` by `ttl` from now: false when it is no longer this process's (it
    /// expired, and perhaps another took it).
    pub fn renew(&self, held: &Held, ttl: Duration) -> Result<bool, StoreError> {
        let (lease, _) = self.keys(&held.name);
        self.if_still_mine(RENEW, &lease, &held.value, Some(ttl))
    }

    /// Gives `held` up (a clean stop), so another process takes over at once.
    pub fn release(&self, held: &Held) -> Result<bool, StoreError> {
        let (lease, _) = self.keys(&held.name);
        self.if_still_mine(RELEASE, &lease, &held.value, None)
    }

    /// Runs `script` (renew or release: it acts only if `lease` still holds `value`) and
    /// says whether it did; `ttl` is the new expiry, where the script takes one.
    fn if_still_mine(
        &self,
        script: &str,
        lease: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let done: i64 = self.db.run(|con| {
            let mut cmd = ::redis::cmd("EVAL");
            cmd.arg(script).arg(1).arg(lease).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg(millis(ttl));
            }
            Ok(cmd.query(con)?)
        })?;
        Ok(done == 1)
    }

    /// Who holds `name` now (`<holder>#<fence>`), if anyone.
    pub fn holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let (lease, _) = self.keys(name);
        self.db
            .run(|con| Ok(::redis::cmd("GET").arg(&lease).query(con)?))
    }

    /// Where the last holder of `name` said its link stood.
    pub fn resume_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        let key = self.db.key_of(&format!("resume:{name}"));
        self.db
            .run(|con| Ok(::redis::cmd("GET").arg(&key).query(con)?))
    }

    /// Saves where this holder's link of `name` stands.
    pub fn save_resume_state(&self, name: &str, state: &str) -> Result<(), StoreError> {
        let key = self.db.key_of(&format!("resume:{name}"));
        self.db.run(|con| {
            ::redis::cmd("SET")
                .arg(&key)
                .arg(state)
                .arg("PX")
                .arg(millis(MESSAGE_MEMORY))
                .exec(con)?;
            Ok(())
        })
    }

    /// Records chat messages `ids` of connection `name` as run: for each, whether this call
    /// was the first to record it.
    pub fn take_messages(&self, name: &str, ids: &[String]) -> Result<Vec<bool>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.db.key_of(&format!("taken:{name}:{id}")))
            .collect();
        let replies: Vec<Option<String>> = self.db.run(|con| {
            let mut pipe = ::redis::pipe();
            for key in &keys {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(MESSAGE_MEMORY));
            }
            Ok(pipe.query(con)?)
        })?;
        Ok(replies.into_iter().map(|r| r.is_some()).collect())
    }

    /// Keeps `request` for connection `name`'s next holder, sealed with the store key (it
    /// may carry a platform's bearer token). `Ok(false)`: [`HELD_MAX`] are waiting already.
    pub fn hold_request(&self, name: &str, request: &HeldRequest) -> Result<bool, StoreError> {
        let key = self.db.key_of(&format!("held:{name}"));
        let json = serde_json::to_string(request).map_err(|e| StoreError::Corrupt {
            what: format!("a held request: {e}"),
        })?;
        let sealed = self.db.seal_text(&["held", name], &json)?;
        let kept: i64 = self.db.run(|con| {
            Ok(::redis::cmd("EVAL")
                .arg(HOLD)
                .arg(1)
                .arg(&key)
                .arg(&sealed)
                .arg(HELD_MAX)
                .arg(millis(HELD_MEMORY))
                .query(con)?)
        })?;
        Ok(kept == 1)
    }

    /// Up to `max` requests held for connection `name`, oldest first, each with the value to
    /// give [`LeaseStore::forget_held_request`] once handled. One that does not open (sealed
    /// with another key, changed) comes as an error, to be forgotten.
    #[allow(clippy::type_complexity)]
    pub fn held_requests(
        &self,
        name: &str,
        max: usize,
    ) -> Result<Vec<(String, Result<HeldRequest, StoreError>)>, StoreError> {
        let key = self.db.key_of(&format!("held:{name}"));
        let last = isize::try_from(max).unwrap_or(isize::MAX) - 1;
        let sealed: Vec<String> = self.db.run(|con| {
            Ok(::redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(last)
                .query(con)?)
        })?;
        Ok(sealed
            .into_iter()
            .map(|value| {
                let request = self
                    .db
                    .open_text(&["held", name], &value, || {
                        format!("a request held for connection {name}")
                    })
                    .and_then(|json| {
                        serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                            what: format!("a request held for connection {name}: {e}"),
                        })
                    });
                (value, request)
            })
            .collect())
    }

    /// Forgets a held request of connection `name` (`value` as [`LeaseStore::held_requests`]
    /// gave it): it was handled, or cannot be.
    pub fn forget_held_request(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let key = self.db.key_of(&format!("held:{name}"));
        self.db.run(|con| {
            ::redis::cmd("LREM").arg(&key).arg(1).arg(value).exec(con)?;
            Ok(())
        })
    }
}
