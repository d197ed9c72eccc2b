//! **A test double of StackStorm's API — not StackStorm.**
//!
//! This module emulates, in-process on a loopback port, the parts of st2 that a
//! ChatOps bridge talks to, behind nginx-style prefixes:
//!
//! * `/auth/v1/tokens` and `/auth/v1/tokens/validate` (Basic login, TTL rules,
//!   token validation);
//! * `/api/v1/actionalias` (list, `help`, `match`, get one), `/api/v1/aliasexecution`
//!   (and `match_and_execute`), `/api/v1/executions/{id}` (get, cancel);
//! * `/stream/v1/stream` (server-sent events with st2's framing, heartbeat and
//!   `events=` filtering).
//!
//! It reproduces st2's status codes, validation order and exact error texts
//! (`shared/design/st2-protocol.md`), runs no actions (results are emulated; see
//! `actions.rs`), and plays the chatops pack's part: when an execution with a
//! notification route finishes, it publishes the `st2.announcement__<route>` event
//! that the `chatops.notify` rule and `chatops.post_result` would. Everything it
//! serves is labelled as emulated where st2 has free text (action descriptions,
//! command output).
//!
//! It is used by the bridge's integration tests and by `stormbridge demo`. Tests
//! drive faults through the [`Emulator`] handle: stop/restart the server, revoke
//! tokens, drop or stall streams, inject raw events, fail the next execution,
//! publish announcements before the HTTP response.
//!
//! The HTTP server runs on its own thread with its own actix `System` (one worker),
//! so the emulator works the same from `#[actix_web::test]`, `#[tokio::test]` or
//! the demo binary; actions complete on a separate runner thread, so executions
//! finish even while the API is stopped (their events are then lost, as with st2).
//!
//! Behaviour worth knowing when writing tests against it:
//!
//! * An execution is created `requested` (`st2.liveaction__create`,
//!   `st2.execution__create`) and, after [`EmulatorConfig::execution_delay`], goes
//!   `scheduled` → `running` → `succeeded`/`failed` (one `__update` pair each).
//! * Then, if the request had a `notification_route` (or `notification_channel`)
//!   and the alias's `result.enabled` is not `false`, `st2.announcement__<route>` is
//!   published with `{"payload": {message, channel, user, whisper: false, context,
//!   extra}, "trace_context": null}`; absent values are `null`. `message` is
//!   `result.format` rendered (undefined values empty) or the chatops `default.j2`
//!   text. Route `hubot` is announced as `st2.announcement__chatops`, exactly as
//!   the pack's `chatops.notify` rule does; every other route under its own name,
//!   as `chatops.notify-errbot` does for `errbot`. Cancelling an unfinished
//!   execution announces it the same way, with status `canceled`.
//! * Alias items are served verbatim; only items that parse are matched and
//!   executed, and an alias whose format Python could not compile makes `/match`
//!   answer 500 for every command, as on st2.
//! * Every action ref exists; see `actions.rs` for what each one "outputs".
//! * A stream client that disconnects is noticed within about 100 ms, even while
//!   nothing is being written to it.

mod actions;
mod demo;
mod routes;
mod state;
mod stream;
mod template;
mod util;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix_web::{dev::ServerHandle, web, App, HttpServer};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use demo::demo_aliases;

use state::{RunJob, Settings, Shared};

/// How the emulator is set up. `Default` gives one user (`st2admin` / `Ch@ngeMe`,
/// st2's documented default), no API keys, [`demo_aliases`], a 25 s heartbeat,
/// st2's 86400 s token TTL cap and a 20 ms execution delay. `Debug` leaves out
/// passwords and keys.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// `(username, password)` pairs accepted by `POST /auth/v1/tokens`.
    pub users: Vec<(String, String)>,
    /// `(key, user)` pairs accepted as `St2-Api-Key`.
    pub api_keys: Vec<(String, String)>,
    /// Items served by `GET /api/v1/actionalias`, verbatim; only the ones that parse
    /// can be matched and executed.
    pub aliases: Vec<Value>,
    /// Silence after which the stream sends a bare `\n` (st2's `stream.heartbeat`).
    pub heartbeat: Duration,
    /// Largest accepted token TTL in seconds (st2's `auth.token_ttl`).
    pub token_ttl_max: u64,
    /// How long an execution takes to finish.
    pub execution_delay: Duration,
    /// st2 web UI base URL; when set, executions carry `web_url`.
    pub web_url: Option<String>,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        let key_users: Vec<&str> = self.api_keys.iter().map(|(_, u)| u.as_str()).collect();
        f.debug_struct("EmulatorConfig")
            .field("users", &users)
            .field("api_key_users", &key_users)
            .field("aliases", &self.aliases.len())
            .field("heartbeat", &self.heartbeat)
            .field("token_ttl_max", &self.token_ttl_max)
            .field("execution_delay", &self.execution_delay)
            .field("web_url", &self.web_url)
            .finish()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            users: vec![("st2admin".to_string(), "Ch@ngeMe".to_string())],
            api_keys: Vec::new(),
            aliases: demo_aliases(),
            heartbeat: Duration::from_secs(25),
            token_ttl_max: 86_400,
            execution_delay: Duration::from_millis(20),
            web_url: None,
        }
    }
}

/// Which kind of credential a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An auth token (`X-Auth-Token` header, `x-auth-token` query, cookie).
    Token,
    /// An API key (`St2-Api-Key` header, `st2-api-key` query).
    ApiKey,
}

/// One alias execution the emulator accepted (201), in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    /// The execution id (24 hex characters).
    pub id: String,
    /// The request body as received.
    pub request: Value,
    /// The st2 user behind the credential.
    pub st2_user: String,
    /// The kind of credential used.
    pub credential_kind: CredentialKind,
    /// `pack.name` of the executed alias.
    pub alias_ref: String,
    /// The action parameters (extracted and immutable ones), as text.
    pub parameters: BTreeMap<String, String>,
}

struct Running {
    handle: ServerHandle,
    done: oneshot::Receiver<()>,
}

#[derive(Default)]
struct Life {
    running: Option<Running>,
    /// Holds the port (bound, not listening: connections are refused) while stopped.
    reserved: Option<tokio::net::TcpSocket>,
}

/// A running (or stopped) StackStorm API test double. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    life: tokio::sync::Mutex<Life>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

const PORT_WAIT: Duration = Duration::from_secs(5);

impl Emulator {
    /// Start on `127.0.0.1:0` (a free port).
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound or a thread cannot be started.
    pub async fn start(cfg: EmulatorConfig) -> io::Result<Emulator> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let settings = Settings {
            users: cfg.users,
            api_keys: cfg.api_keys,
            heartbeat: cfg.heartbeat,
            token_ttl_max: cfg.token_ttl_max,
            execution_delay: cfg.execution_delay,
            web_url: cfg.web_url,
        };
        let (runner_tx, runner_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(
            settings,
            cfg.aliases,
            format!("http://{addr}/api"),
            runner_tx,
        ));
        spawn_runner(runner_rx, Arc::downgrade(&shared))?;
        let running = spawn_server(shared.clone(), listener).await?;
        tracing::debug!(%addr, "st2 emulator: started");
        Ok(Emulator {
            shared,
            addr,
            life: tokio::sync::Mutex::new(Life {
                running: Some(running),
                reserved: None,
            }),
        })
    }

    /// The socket address the emulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/api/v1`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v1", self.base_url())
    }

    /// `http://127.0.0.1:PORT/auth/v1`.
    pub fn auth_url(&self) -> String {
        format!("{}/auth/v1", self.base_url())
    }

    /// `http://127.0.0.1:PORT/stream/v1`.
    pub fn stream_url(&self) -> String {
        format!("{}/stream/v1", self.base_url())
    }

    /// st2 goes away: the server stops, every connection is dropped and the port
    /// refuses connections until [`Emulator::restart`]. State is kept.
    pub async fn stop(&self) {
        let mut life = self.life.lock().await;
        let Some(running) = life.running.take() else {
            return;
        };
        // A forced stop drops every connection as it is: open streams end without
        // the closing chunk, like a server that died.
        running.handle.stop(false).await;
        let _ = tokio::time::timeout(PORT_WAIT, running.done).await;
        // Hold the port (bound, not listening) so nothing else takes it.
        let deadline = Instant::now() + PORT_WAIT;
        loop {
            match reserve(self.addr) {
                Ok(sock) => {
                    life.reserved = Some(sock);
                    break;
                }
                Err(e) if Instant::now() >= deadline => {
                    tracing::debug!(error = %e, "st2 emulator: could not reserve the port");
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        tracing::debug!(addr = %self.addr, "st2 emulator: stopped");
    }

    /// Bring the server back on the same port with the same state (a no-op while
    /// running).
    ///
    /// # Errors
    ///
    /// When the port cannot be bound again within 5 s.
    pub async fn restart(&self) -> io::Result<()> {
        let mut life = self.life.lock().await;
        if life.running.is_some() {
            return Ok(());
        }
        life.reserved = None;
        let deadline = Instant::now() + PORT_WAIT;
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        };
        life.running = Some(spawn_server(self.shared.clone(), listener).await?);
        tracing::debug!(addr = %self.addr, "st2 emulator: restarted");
        Ok(())
    }

    /// Alias executions accepted so far, in order.
    pub fn executions(&self) -> Vec<ExecutionRecord> {
        self.shared.records()
    }

    /// Successful `POST /auth/v1/tokens` calls so far.
    pub fn login_count(&self) -> usize {
        self.shared.login_count()
    }

    /// Every token issued so far expires now (`401 Unauthorized - Token has
    /// expired.` from here on; `valid: false` from `tokens/validate`).
    pub fn revoke_all_tokens(&self) {
        self.shared.revoke_all_tokens();
    }

    /// Replace the aliases and publish `st2.actionalias__create` / `__update` /
    /// `__delete` for the differences (keyed by `ref`, or `pack.name`).
    pub fn set_aliases(&self, aliases: Vec<Value>) {
        self.shared.set_aliases(aliases);
    }

    /// Publish `st2.announcement__<route>` with `{"payload": payload,
    /// "trace_context": null}`.
    pub fn announce(&self, route: &str, payload: Value) {
        let data = serde_json::json!({"payload": payload, "trace_context": null});
        self.shared.publish(
            &format!("st2.announcement__{route}"),
            serde_json::to_string(&data).unwrap_or_default(),
        );
    }

    /// Publish an event whose `data:` line is `data` verbatim (may be malformed).
    pub fn send_raw_event(&self, event: &str, data: &str) {
        self.shared.publish(event, data.to_string());
    }

    /// The server ends every open stream (response body finished, connection closed).
    pub fn drop_streams(&self) {
        self.shared.close_streams();
    }

    /// While `true`, open and new stream connections stay open but receive nothing
    /// at all: no heartbeat, and events are discarded.
    pub fn stall_streams(&self, stalled: bool) {
        self.shared.set_stalled(stalled);
    }

    /// Stream connections open now.
    pub fn stream_connections(&self) -> usize {
        self.shared.open_streams()
    }

    /// Stream connections accepted (authenticated) since start.
    pub fn stream_connects_total(&self) -> usize {
        self.shared.connects_total()
    }

    /// When on, `aliasexecution` waits for the execution to finish and publishes
    /// its result announcement before sending the 201.
    pub fn set_announce_before_response(&self, on: bool) {
        self.shared.set_announce_before_response(on);
    }

    /// The next `aliasexecution` (or `match_and_execute`) request that passes
    /// authentication and body validation gets `{"faultstring": faultstring}` with
    /// this status instead.
    pub fn fail_next_execution(&self, status: u16, faultstring: &str) {
        self.shared.fail_next(status, faultstring);
    }

    /// The raw `events=` value of the most recent stream connection (`None` when it
    /// had none, or no stream has connected).
    pub fn stream_event_filter(&self) -> Option<String> {
        self.shared.last_filter()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Ok(mut life) = self.life.try_lock() {
            if let Some(running) = life.running.take() {
                // The stop command is sent when `stop` is called; not awaiting is fine.
                drop(running.handle.stop(false));
            }
        }
    }
}

/// A socket bound to `addr` but not listening: connection attempts are refused.
/// Fails while the old listener still exists.
fn reserve(addr: SocketAddr) -> io::Result<tokio::net::TcpSocket> {
    let sock = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    Ok(sock)
}

/// Start the HTTP server on its own thread and actix `System`.
async fn spawn_server(shared: Arc<Shared>, listener: TcpListener) -> io::Result<Running> {
    listener.set_nonblocking(true)?;
    let (ready_tx, ready_rx) = oneshot::channel::<io::Result<ServerHandle>>();
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("st2-emulator-http".into())
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::new(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .wrap_fn(|req, srv| {
                            use actix_web::dev::Service as _;
                            tracing::debug!(method = %req.method(), path = %req.path(), "st2 emulator: request");
                            let fut = srv.call(req);
                            async move {
                                let mut res = fut.await?;
                                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(
                                    &uuid::Uuid::new_v4().to_string(),
                                ) {
                                    res.headers_mut().insert(
                                        actix_web::http::header::HeaderName::from_static(
                                            "x-request-id",
                                        ),
                                        v,
                                    );
                                }
                                Ok(res)
                            }
                        })
                        .configure(routes::configure)
                        .default_service(web::to(routes::not_found))
                })
                .on_connect(stream::capture_peer)
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener);
                match server {
                    Ok(server) => {
                        let server = server.run();
                        let _ = ready_tx.send(Ok(server.handle()));
                        if let Err(e) = server.await {
                            tracing::debug!(error = %e, "st2 emulator: server ended with an error");
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            let _ = done_tx.send(());
        })?;
    let handle = ready_rx
        .await
        .map_err(|_| io::Error::other("st2 emulator: server thread ended before starting"))??;
    Ok(Running {
        handle,
        done: done_rx,
    })
}

/// Start the thread that finishes executions after their delay. It holds only a
/// weak reference, so it ends when the emulator is gone.
fn spawn_runner(rx: mpsc::UnboundedReceiver<RunJob>, shared: Weak<Shared>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("st2-emulator-runner".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build();
            match rt {
                Ok(rt) => rt.block_on(run_jobs(rx, shared)),
                Err(e) => tracing::debug!(error = %e, "st2 emulator: runner not started"),
            }
        })?;
    Ok(())
}

async fn run_jobs(mut rx: mpsc::UnboundedReceiver<RunJob>, shared: Weak<Shared>) {
    let mut queue: BinaryHeap<Reverse<(Instant, u64, String)>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next_due = queue.peek().map(|Reverse((t, _, _))| *t);
        let wait = async move {
            match next_due {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => {
                    seq += 1;
                    queue.push(Reverse((job.due, seq, job.execution_id)));
                }
                None => return,
            },
            () = wait => {
                let now = Instant::now();
                while queue.peek().is_some_and(|Reverse((t, _, _))| *t <= now) {
                    let Some(Reverse((_, _, id))) = queue.pop() else { break };
                    match shared.upgrade() {
                        Some(s) => s.complete_execution(&id),
                        None => return,
                    }
                }
            }
        }
    }
}
