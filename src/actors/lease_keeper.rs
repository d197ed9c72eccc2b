//! Which chat connections this bridge process runs, when several share a Redis store.
//!
//! Each `[[chat]]` connection is run by the one process holding its lease in Redis
//! (`store::leases`). The keeper tries to take every lease it does not hold and renews
//! those it holds, every third of the lease's time to live. Taking one opens the
//! connection's [`Gate`] (it connects) and tells the result tracker to take over the
//! results the connection is owed; losing one (another process holds it, or no renewal
//! got through before the gate's deadline) closes the gate and tells the tracker to let
//! them go. The gate's deadline is three quarters of the lease after the renewal was
//! sent, so a process cut off from Redis stops sending before its lease expires there and
//! another process can take it: two processes never post for one connection at once.
//!
//! Redis calls block, so each runs on tokio's blocking pool; at most one call per lease
//! is under way at a time, and none ever runs on the actor's thread.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use serde_json::json;

use super::status::{ActorState, StatusReporter};
use crate::{
    lease::Gate,
    metrics::Metrics,
    store::leases::{Held, LeaseStore},
};

/// Where the other bridge processes run the connections this one does not: connection →
/// the address its holder published (`[store] advertise_url`). The keeper fills it from
/// each lease it sees held elsewhere; the HTTP server passes requests for those
/// connections on there. Clones share it.
#[derive(Clone, Default, Debug)]
pub struct HolderDirectory(Arc<parking_lot::RwLock<HashMap<String, String>>>);

impl HolderDirectory {
    /// The address of the process running `connection`, when another one does and
    /// published one.
    pub fn url(&self, connection: &str) -> Option<String> {
        self.0.read().get(connection).cloned()
    }

    fn set(&self, connection: &str, url: Option<&str>) {
        let mut map = self.0.write();
        match url {
            Some(url) => {
                if map.get(connection).map(String::as_str) != Some(url) {
                    map.insert(connection.to_owned(), url.to_owned());
                }
            }
            None => {
                map.remove(connection);
            }
        }
    }
}

/// A process's name in leases: `<host>:<pid>:<random>`, then `@<advertise_url>` when it
/// published one.
fn holder_name(host: &str, pid: u32, random: &str, advertise: Option<&str>) -> String {
    match advertise {
        Some(url) => format!("{host}:{pid}:{random}@{url}"),
        None => format!("{host}:{pid}:{random}"),
    }
}

/// The address a lease's value (`<holder>#<fence>`) publishes, if any.
pub fn advertised_url(lease_value: &str) -> Option<&str> {
    let holder = lease_value
        .rsplit_once('#')
        .map_or(lease_value, |(holder, _)| holder);
    let (_, url) = holder.split_once('@')?;
    (url.starts_with("http://") || url.starts_with("https://")).then_some(url)
}

/// A connection's lease was taken by this process (`held`) or lost.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ConnectionLease {
    /// The connection's name.
    pub connection: String,
    /// Whether this process holds it now.
    pub held: bool,
}

/// The process is stopping: give every lease up now, so another process takes the
/// connections over at once rather than when the leases expire.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ReleaseLeases;

/// One connection's lease, as this process sees it.
struct Lease {
    gate: Gate,
    held: Option<Held>,
    /// A Redis call for it is under way.
    busy: bool,
    /// Who held it when last looked at (for `/actors`).
    holder: Option<String>,
}

/// The keeper actor.
pub struct LeaseKeeper {
    store: LeaseStore,
    /// This process's name in leases: host, process id and a random part.
    holder: String,
    ttl: Duration,
    leases: BTreeMap<String, Lease>,
    tracker: Recipient<ConnectionLease>,
    status: StatusReporter,
    /// Why Redis calls fail, while they do (warned once per stretch, shown in `/actors`).
    failing: Option<String>,
    /// The periodic tick, cancelled when the leases are given up.
    ticker: Option<SpawnHandle>,
    /// The leases were given up: calls still under way change nothing.
    stopping: bool,
    /// Where the other processes run the connections this one does not.
    directory: HolderDirectory,
    /// Which leases this process holds, and whether Redis answers, for `/metrics`.
    metrics: Metrics,
}

impl LeaseKeeper {
    /// A keeper of the leases of `connections` (name → gate), each for `ttl`; leases this
    /// process takes publish `advertise` (its address for the others), and `directory`
    /// learns where the others run the rest.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: LeaseStore,
        ttl: Duration,
        connections: Vec<(String, Gate)>,
        tracker: Recipient<ConnectionLease>,
        status: StatusReporter,
        advertise: Option<&str>,
        directory: HolderDirectory,
        metrics: Metrics,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            store,
            holder: holder_name(&host, std::process::id(), &random[..8], advertise),
            directory,
            ttl,
            leases: connections
                .into_iter()
                .map(|(name, gate)| {
                    let lease = Lease {
                        gate,
                        held: None,
                        busy: false,
                        holder: None,
                    };
                    (name, lease)
                })
                .collect(),
            tracker,
            status,
            failing: None,
            ticker: None,
            stopping: false,
            metrics,
        }
    }

    /// How often leases are renewed and free ones tried.
    fn interval(&self) -> Duration {
        self.ttl / 3
    }

    /// How long a renewal sent at some instant keeps the gate open.
    fn open_for(&self) -> Duration {
        self.ttl * 3 / 4
    }

    /// Lets go of every lease whose gate's deadline passed without a renewal (Redis
    /// unreachable): the connection stops before the lease can pass to another process.
    fn check_deadlines(&mut self) {
        let now = Instant::now();
        for (name, lease) in &mut self.leases {
            if lease.held.is_some() && !lease.gate.is_open(now) {
                lease.held = None;
                lease.gate.close();
                tracing::warn!(connection = %name, "could not renew the connection's lease in time; another bridge process may take it over");
                self.tracker.do_send(ConnectionLease {
                    connection: name.clone(),
                    held: false,
                });
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.check_deadlines();
        let names: Vec<String> = self.leases.keys().cloned().collect();
        for name in names {
            let Some(lease) = self.leases.get_mut(&name) else {
                continue;
            };
            if lease.busy {
                continue;
            }
            lease.busy = true;
            let (store, ttl, holder) = (self.store.clone(), self.ttl, self.holder.clone());
            let held = lease.held.clone();
            let sent = Instant::now();
            let call = tokio::task::spawn_blocking(move || match held {
                Some(held) => store
                    .renew(&held, ttl)
                    .map(|kept| Step::Renewed(kept, held)),
                None => match store.acquire(&name, &holder, ttl)? {
                    Some(held) => Ok(Step::Taken(held)),
                    None => store.holder(&name).map(|h| Step::HeldElsewhere(name, h)),
                },
            });
            ctx.spawn(call.into_actor(self).map(move |joined, act, ctx| {
                let step = match joined {
                    Ok(step) => step,
                    Err(e) => Err(crate::store::StoreError::Redis {
                        what: format!("the lease call did not finish: {e}"),
                    }),
                };
                act.after(step, sent);
                // Closed right at the deadline if no renewal moves it: not a tick later.
                let deadline = (sent + act.open_for()).saturating_duration_since(Instant::now());
                ctx.run_later(deadline + Duration::from_millis(1), |act, _| {
                    act.check_deadlines();
                    act.report();
                });
            }));
        }
        self.report();
    }

    fn after(&mut self, step: Result<Step, crate::store::StoreError>, sent: Instant) {
        if self.stopping {
            // A lease this call took or kept is given up with the rest, or expires.
            if let Ok(Step::Taken(held) | Step::Renewed(true, held)) = step {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || store.release(&held));
            }
            return;
        }
        let open_until = sent + self.open_for();
        match step {
            Ok(step) => {
                if self.failing.take().is_some() {
                    tracing::info!("Redis answers lease calls again");
                }
                match step {
                    Step::Taken(held) => self.take(held, open_until),
                    Step::Renewed(true, held) => {
                        let Some(lease) = self.leases.get_mut(&held.name) else {
                            return;
                        };
                        lease.busy = false;
                        if lease.held.is_some() {
                            lease.gate.open_until(open_until);
                        } else {
                            // Renewed after its deadline had passed and it was let go: it
                            // is still this process's, so it is taken up again.
                            self.take(held, open_until);
                        }
                    }
                    Step::Renewed(false, held) => {
                        tracing::warn!(connection = %held.name, "the connection's lease passed to another bridge process");
                        // Who has it now is learnt at the next tick.
                        self.directory.set(&held.name, None);
                        if let Some(lease) = self.leases.get_mut(&held.name) {
                            lease.busy = false;
                            if lease.held.take().is_some() {
                                lease.gate.close();
                                self.tracker.do_send(ConnectionLease {
                                    connection: held.name.clone(),
                                    held: false,
                                });
                            }
                        }
                    }
                    Step::HeldElsewhere(name, holder) => {
                        self.directory
                            .set(&name, holder.as_deref().and_then(advertised_url));
                        if let Some(lease) = self.leases.get_mut(&name) {
                            lease.busy = false;
                            lease.holder = holder;
                        }
                    }
                }
            }
            Err(e) => {
                for lease in self.leases.values_mut() {
                    lease.busy = false;
                }
                if self.failing.replace(e.to_string()).is_none() {
                    tracing::error!(error = %e, "cannot reach Redis for the connections' leases; connections held stop when their leases run out");
                }
            }
        }
        self.report();
    }

    /// This process holds `held` now, until `open_until` unless renewed.
    fn take(&mut self, held: Held, open_until: Instant) {
        let name = held.name.clone();
        let Some(lease) = self.leases.get_mut(&name) else {
            return;
        };
        tracing::info!(connection = %name, fence = held.fence, "took the connection's lease: this bridge process runs it now");
        self.directory.set(&name, None);
        lease.busy = false;
        lease.holder = Some(held.value.clone());
        lease.held = Some(held);
        // Open before the tracker hears of it: whatever it posts for the connection goes out.
        lease.gate.open_until(open_until);
        self.tracker.do_send(ConnectionLease {
            connection: name,
            held: true,
        });
    }

    fn report(&mut self) {
        for (name, lease) in &self.leases {
            self.metrics
                .set_connection_lease_held(name, lease.held.is_some());
        }
        self.metrics
            .set_store_reachable("redis", self.failing.is_none());
        let held: Vec<&str> = self
            .leases
            .iter()
            .filter(|(_, l)| l.held.is_some())
            .map(|(n, _)| n.as_str())
            .collect();
        let holders: BTreeMap<&str, Option<&str>> = self
            .leases
            .iter()
            .map(|(n, l)| (n.as_str(), l.holder.as_deref()))
            .collect();
        self.status.details(vec![
            ("process".to_owned(), json!(self.holder)),
            ("held".to_owned(), json!(held)),
            ("holders".to_owned(), json!(holders)),
        ]);
        match &self.failing {
            Some(why) => self.status.state(
                ActorState::Degraded,
                Some(format!(
                    "cannot reach Redis ({why}); connections stop when their leases run out"
                )),
            ),
            None => self.status.state(ActorState::Up, None),
        }
    }
}

/// What a lease call found.
enum Step {
    /// This process took the lease.
    Taken(Held),
    /// A renewal: kept (`true`) or lost.
    Renewed(bool, Held),
    /// Someone else holds it (or held it when asked), perhaps nobody by now.
    HeldElsewhere(String, Option<String>),
}

impl Handler<ReleaseLeases> for LeaseKeeper {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: ReleaseLeases, ctx: &mut Self::Context) -> Self::Result {
        // No more takes or renewals: the process is going.
        self.stopping = true;
        if let Some(ticker) = self.ticker.take() {
            ctx.cancel_future(ticker);
        }
        let mut held = Vec::new();
        for lease in self.leases.values_mut() {
            // Closed first: nothing more is sent once another process may take over.
            lease.gate.close();
            held.extend(lease.held.take());
        }
        let store = self.store.clone();
        let release = tokio::task::spawn_blocking(move || {
            for held in &held {
                match store.release(held) {
                    Ok(_) => {
                        tracing::info!(connection = %held.name, "gave the connection's lease up for another bridge process")
                    }
                    Err(e) => {
                        tracing::warn!(connection = %held.name, error = %e, "could not give the connection's lease up; another process takes it when it expires")
                    }
                }
            }
        });
        Box::pin(release.into_actor(self).map(|_, _, _| ()))
    }
}

impl Actor for LeaseKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tick(ctx);
        self.ticker = Some(ctx.run_interval(self.interval(), |act, ctx| act.tick(ctx)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_publishes_its_holders_address_when_it_has_one() {
        let with = holder_name("pod-1", 7, "ab12cd34", Some("http://10.0.0.5:8080"));
        assert_eq!(with, "pod-1:7:ab12cd34@http://10.0.0.5:8080");
        assert_eq!(
            advertised_url(&format!("{with}#42")),
            Some("http://10.0.0.5:8080")
        );
        let without = holder_name("pod-1", 7, "ab12cd34", None);
        assert_eq!(advertised_url(&format!("{without}#42")), None);
        // What is no http(s) URL is not followed.
        assert_eq!(advertised_url("h:1:x@file:///etc/passwd#3"), None);
        assert_eq!(
            advertised_url("h:1:x@https://b.example/base#3"),
            Some("https://b.example/base")
        );
    }

    #[test]
    fn the_directory_forgets_a_connection_once_nobody_else_is_known_to_run_it() {
        let directory = HolderDirectory::default();
        directory.set("mm", Some("http://10.0.0.5:8080"));
        assert_eq!(
            directory.clone().url("mm").as_deref(),
            Some("http://10.0.0.5:8080")
        );
        directory.set("mm", None);
        assert_eq!(directory.url("mm"), None);
    }
}
