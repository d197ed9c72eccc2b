//! **A test double of StackStorm's API — not StackStorm.**
//!
//! This module emulates, in-process on a loopback port, the parts of st2 that a
//! ChatOps bridge talks to, behind nginx-style prefixes:
//!
//! * `/auth/v1/tokens` and `/auth/v1/tokens/validate` (Basic login, TTL rules,
//!   token validation);
//! * `/api/v1/actionalias` (list, RBAC-checked; `help`, `match`, get one), `/api/v1/aliasexecution`
//!   (and `match_and_execute`), `/api/v1/executions/{id}` (get, cancel),
//!   `/api/v1/executions/{id}/output`,
//!   `/api/v1/inquiries` (list, get one, respond; RBAC-checked as st2 does, see
//!   [`EmulatorConfig::rbac`]), `/api/v1/user` (who the credential is, its roles);
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
//! It is a model of st2 **as users deploy it**, built from st2's own source
//! (`conf/nginx/st2.conf`, `st2common/stream/listener.py`,
//! `st2stream/controllers/v1/stream.py`, ...; each file is cited beside the
//! behaviour it gives), inconvenient parts included, and never answers with the
//! bridge's own code.
//!
//! It is used by the bridge's integration tests, and runs alone as `stormbridge emulator`
//! (which `stormbridge demo` starts as a process of its own, as StackStorm is one).
//!
//! The HTTP server runs on its own thread with its own actix `System` (one worker),
//! so the emulator works the same from `#[actix_web::test]`, `#[tokio::test]` or
//! the demo binary; actions complete, and the background traffic runs, on a
//! separate runner thread, so executions finish even while the API is stopped or a
//! service is down (their events are then lost, as with st2). Both threads end when
//! the [`Emulator`] is dropped.
//!
//! Behaviour worth knowing when writing tests against it:
//!
//! * **Framing** ([`EmulatorConfig::framing`], `proxy.rs`). By default
//!   ([`Framing::Nginx`]) every answer that nginx relays from st2 — the stream,
//!   JSON answers, st2's errors — has no `Content-Length`, no `Transfer-Encoding`
//!   and `Connection: close`: the body ends when the connection closes, as
//!   st2.conf's nginx sends the stream (for JSON this is the worst case: nginx does
//!   it only when it compresses; `proxy.rs` says exactly when). Clients that
//!   cannot read such bodies (awc: actix/actix-web#2287) need [`Framing::Direct`]:
//!   st2's services reached directly, actix-web's usual framing (chunked stream,
//!   `Content-Length` on JSON).
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
//!   execution announces it the same way, with status `canceled`, once it is
//!   `canceled`: at once for one that has not started, after its runner has handled
//!   the cancellation for a running one (`canceling` first). `DELETE` of a finished
//!   one is st2's `abort(200, ...)`: status 200, body `{"faultstring": "Action cannot
//!   be canceled. State = <status>."}`.
//! * `ops.long_job` ([`long_job_alias`], `start long job {{seconds=30}}`) is the one
//!   action that runs for a while: `running` from the end of the execution delay, it
//!   prints `step i of N` every 200 ms ([`Emulator::set_long_job_tick`]), `N = 5 ×
//!   seconds`, each line stored (`GET /api/v1/executions/{id}/output`,
//!   [`Emulator::execution_output`]) and published as `st2.execution.output__create`
//!   (sent only to streams that ask for it with `events=`), then succeeds. Cancelled
//!   while running, it is `canceling`, then `canceled`, and — as with st2's local
//!   runner, which does not kill the command — its output goes on until the command
//!   would have ended. `core.local`-like and Python actions store their emulated stdout
//!   as output records too, when they finish.
//! * **The bus is busy by default** ([`EmulatorConfig::background_interval`],
//!   `background.rs`): every second a timer rule runs `core.local` and its
//!   liveaction, execution and output events go to every stream (never an
//!   announcement). Each of them restarts the heartbeat wait of every connection,
//!   as in st2's listener, so a connection filtered to announcements receives no
//!   bytes at all — not even heartbeats — while the bus is busier than the
//!   heartbeat. Connections with st2's default event list receive these
//!   executions' events. Background executions are not in
//!   [`Emulator::executions`], and `GET /api/v1/executions/{id}` does not know them.
//! * Alias items are served verbatim; only items that parse are matched and
//!   executed, and an alias whose format Python could not compile makes `/match`
//!   answer 500 for every command, as on st2.
//! * Every action ref exists; see `actions.rs` for what each one "outputs".
//! * The stream (`stream.rs`) sends a bare `\n` on connect and after every
//!   heartbeat interval in which no bus event at all reached the connection; an
//!   `end_event` that the filters drop still ends the stream, as in st2.
//! * A stream client that disconnects is noticed within about 100 ms, even while
//!   nothing is being written to it.
//!
//! Fault switches on [`Emulator`] (each documented on its method):
//!
//! * [`Emulator::stop`] / [`Emulator::restart`]: the whole server goes away (port
//!   refused) and comes back on the same port with the same state.
//! * [`Emulator::set_stream_service`], [`Emulator::set_api_service`],
//!   [`Emulator::set_auth_service`]: one st2 service goes down behind nginx. In
//!   `Nginx` mode requests get st2.conf's `@streamError` (200, `retry: 1000`) or
//!   `@apiError` / `@authError` (503) answers, framed as nginx 1.22 sends them; in
//!   `Direct` mode their connections are closed unanswered. Going down drops open
//!   streams.
//! * [`Emulator::set_response_delay`]: a slow st2api/st2auth (streams unaffected);
//!   [`Emulator::hold_responses`]: one that answers only when released.
//! * [`Emulator::hold_completions`]: executions that do not end until let go.
//! * [`Emulator::set_background_traffic`]: how busy the bus is.
//! * [`Emulator::drop_streams`] (clean end), [`Emulator::stall_streams`] (silence,
//!   connection open), [`Emulator::cut_streams_mid_event`] (half an event, then the
//!   connection drops).
//! * [`Emulator::revoke_all_tokens`], [`Emulator::fail_next_execution`],
//!   [`Emulator::set_announce_before_response`], and [`Emulator::announce`] /
//!   [`Emulator::send_raw_event`] to publish events by hand.

mod actions;
mod aliases;
mod background;
mod demo;
mod jinja;
mod jsonschema;
mod matching;
mod proxy;
mod pyre;
mod registry;
mod routes;
mod state;
mod stream;
mod template;
mod util;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix_web::{dev::ServerHandle, web, App, HttpServer};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use demo::{demo_aliases, long_job_alias, set_password_alias};

use state::{JobKind, RunJob, Service, Settings, Shared};

/// How st2 is reached, which decides how every answer is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Through st2's stock nginx site (`conf/nginx/st2.conf`), the way st2 is
    /// installed: every proxied answer (stream, API, auth, their errors) comes with
    /// no `Content-Length`, no `Transfer-Encoding` and `Connection: close`, its body
    /// ending only when the connection closes; a service that is down gets nginx's
    /// error page. Worst case on purpose for the JSON answers: see `proxy.rs`.
    #[default]
    Nginx,
    /// st2's services reached directly (ports 9100–9102): the stream is chunked,
    /// JSON answers carry `Content-Length`; a service that is down gets its
    /// connections closed without an answer.
    Direct,
}

/// How the emulator is set up. `Default` gives one user (`st2admin` / `Ch@ngeMe`,
/// st2's documented default), no API keys, [`demo_aliases`], a 25 s heartbeat,
/// st2's 86400 s token TTL cap, a 20 ms execution delay, [`Framing::Nginx`] and
/// background traffic every second. `Debug` leaves out passwords and keys.
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
    /// st2's `webui_base_url`. Every execution carries `web_url` =
    /// `<base>/#/history/<id>/general`; when `None`, the base is st2's default,
    /// `https://<the API host's fqdn>`, here [`DEFAULT_WEBUI_BASE_URL`] (an internal name
    /// nobody in chat can reach, as on many installations).
    pub web_url: Option<String>,
    /// How answers are framed: behind st2's nginx (default) or direct.
    pub framing: Framing,
    /// How often a timer rule runs an action in the background (see
    /// [`Emulator::set_background_traffic`]); `None` for a quiet bus.
    pub background_interval: Option<Duration>,
    /// st2's `rbac.enable` (default `false`: every user is an admin, as with st2's no-op
    /// RBAC backend, and has every permission). With RBAC on, users who are not admins
    /// (see [`EmulatorConfig::admins`], [`EmulatorConfig::roles`]) may not list aliases
    /// at all without `action_alias_list` (`observer` has it, or a grant), nor with
    /// `limit=-1` or `limit` > 100 (403), nor run the actions
    /// [`EmulatorConfig::denied_actions`] names for them, and have of the inquiry
    /// permissions only what their roles give ([`EmulatorConfig::grants`]).
    pub rbac: bool,
    /// Users assigned st2's `admin` role (st2's documented assignment for `st2admin`:
    /// `roles: [admin]` in `/opt/stackstorm/rbac/assignments/st2admin.yaml`); default
    /// `["st2admin"]`. An admin has every permission.
    pub admins: Vec<String>,
    /// More `(user, role)` assignments, with RBAC on: st2's system roles `system_admin`
    /// (an admin too), `admin`, `observer` (every `view`, `list` and `search`
    /// permission: `inquiry_list` and `inquiry_view`, not `inquiry_respond`), or any
    /// custom role name (which counts only for an inquiry's `roles`). `GET /api/v1/user`
    /// lists them. Default: none — a new st2 user has no role, so with RBAC on a user
    /// who is not an admin may not list, view or answer inquiries unless given
    /// `observer` or [`EmulatorConfig::grants`].
    pub roles: Vec<(String, String)>,
    /// `(user, permission type)` grants, as custom roles give them, with RBAC on; the
    /// emulator checks `action_alias_list` (every page of `GET /api/v1/actionalias`:
    /// a bridge account that is no admin needs it, or `observer`), the inquiry ones:
    /// `inquiry_list` (`GET /api/v1/inquiries`), and `inquiry_view`, `inquiry_respond`,
    /// `inquiry_all` (any of them allows both `GET` and `PUT /api/v1/inquiries/{id}`, as
    /// st2's inquiry resolver does), and `action_view`. Default: none. Changed while
    /// running with [`Emulator::grant`] and [`Emulator::revoke`].
    pub grants: Vec<(String, String)>,
    /// `(user, action ref)` pairs: with RBAC on, that (non-admin) user lacks
    /// `action_execute` on that action (403 on `aliasexecution`).
    pub denied_actions: Vec<(String, String)>,
    /// The notify rules installed: `(notification route matched, announcement route)`.
    /// Default: the chatops pack's `chatops.notify` (`hubot` → `chatops`) and
    /// `chatops.notify-errbot` (`errbot` → `errbot`), plus `stormbridge` →
    /// `stormbridge` (`deploy/st2/notify_stormbridge.yaml`). A route no rule covers
    /// announces nothing.
    pub notify_rules: Vec<(String, String)>,
    /// More actions (or replacements for built-in ones), shaped like st2's
    /// `GET /api/v1/actions` items: `pack`, `name`, `runner_type`, `parameters`
    /// (st2's parameter specs), `enabled`. See `registry.rs` for the built-in ones.
    pub actions: Vec<Value>,
    /// The port on 127.0.0.1 to listen on; 0 (the default) takes a free one.
    pub port: u16,
}

/// The web UI base URL executions carry when [`EmulatorConfig::web_url`] is `None`:
/// st2's default `https://<fqdn>` for a made-up internal host name.
pub const DEFAULT_WEBUI_BASE_URL: &str = "https://st2-internal.emulator.test";

/// An inquiry for [`Emulator::ask`]: the `core.ask` parameters
/// (`contrib/runners/inquirer_runner/runner.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct InquirySpec {
    /// JSON schema the response must satisfy; `None` for the runner's default (one
    /// required boolean, `continue`).
    pub schema: Option<Value>,
    /// Users allowed to answer (empty: anyone).
    pub users: Vec<String>,
    /// Roles allowed to answer (empty: anyone; checked only with RBAC on, where
    /// [`EmulatorConfig::admins`] have `admin` and users have the
    /// [`EmulatorConfig::roles`] assigned to them).
    pub roles: Vec<String>,
    /// Route for notification rules.
    pub route: String,
    /// Minutes before it times out (not enforced by the emulator).
    pub ttl: u64,
}

impl Default for InquirySpec {
    fn default() -> Self {
        InquirySpec {
            schema: None,
            users: Vec::new(),
            roles: Vec::new(),
            route: String::new(),
            ttl: 1440,
        }
    }
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
            .field("framing", &self.framing)
            .field("background_interval", &self.background_interval)
            .field("rbac", &self.rbac)
            .field("admins", &self.admins)
            .field("roles", &self.roles)
            .field("grants", &self.grants)
            .field("denied_actions", &self.denied_actions)
            .field("notify_rules", &self.notify_rules)
            .field("actions", &self.actions.len())
            .field("port", &self.port)
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
            framing: Framing::Nginx,
            background_interval: Some(Duration::from_secs(1)),
            rbac: false,
            admins: vec!["st2admin".to_string()],
            roles: Vec::new(),
            grants: Vec::new(),
            denied_actions: Vec::new(),
            notify_rules: vec![
                ("hubot".to_string(), "chatops".to_string()),
                ("errbot".to_string(), "errbot".to_string()),
                ("stormbridge".to_string(), "stormbridge".to_string()),
            ],
            actions: Vec::new(),
            port: 0,
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
    /// Start on 127.0.0.1, on [`EmulatorConfig::port`] (by default a free port).
    ///
    /// # Errors
    ///
    /// When the loopback port cannot be bound or a thread cannot be started.
    pub async fn start(cfg: EmulatorConfig) -> io::Result<Emulator> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, cfg.port))?;
        let addr = listener.local_addr()?;
        let settings = Settings {
            users: cfg.users,
            api_keys: cfg.api_keys,
            heartbeat: cfg.heartbeat,
            token_ttl_max: cfg.token_ttl_max,
            execution_delay: cfg.execution_delay,
            webui_base_url: cfg
                .web_url
                .unwrap_or_else(|| DEFAULT_WEBUI_BASE_URL.to_string()),
            framing: cfg.framing,
            rbac: cfg.rbac,
            admins: cfg.admins,
            roles: cfg.roles,
            grants: Arc::new(parking_lot::Mutex::new(cfg.grants)),
            denied_actions: cfg.denied_actions,
            notify_rules: cfg.notify_rules,
            registry: registry::Registry::new(&cfg.actions),
        };
        let (runner_tx, runner_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(
            settings,
            cfg.aliases,
            format!("http://{addr}/api"),
            runner_tx,
            cfg.background_interval,
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

    /// The output records stored for execution `id` so far, oldest first, each shaped as
    /// st2's `ActionExecutionOutputAPI` (`id`, `execution_id`, `action_ref`, `runner_ref`,
    /// `timestamp`, `output_type`, `data`); empty for an unknown id. What
    /// `GET /api/v1/executions/{id}/output` concatenates.
    pub fn execution_output(&self, id: &str) -> Vec<Value> {
        self.shared.output_records(id)
    }

    /// Time between two lines of `ops.long_job` ([`long_job_alias`]) for the jobs that
    /// start from now on (default 200 ms, so that `seconds` is how long it runs): a test
    /// makes a job end quickly with a short tick. A job prints `5 × seconds` lines
    /// whatever the tick.
    pub fn set_long_job_tick(&self, tick: Duration) {
        self.shared.set_long_job_tick(tick);
    }

    /// Holds every running `ops.long_job` where it is (no line printed, no end) until
    /// called again with `false`: not StackStorm behaviour but a test's control over time,
    /// so that a job is surely still running when a scenario needs it to be.
    pub fn hold_long_jobs(&self, held: bool) {
        self.shared.hold_long_jobs(held);
    }

    /// Holds the end of every execution whose delay runs out from now on (it stays
    /// `requested`, announced nothing) until called again with `false`, when those that
    /// waited finish in order (with [`Self::set_announce_before_response`] an execution
    /// ends inside its request, and is not held): not StackStorm behaviour but a test's control over time, so
    /// that a command is surely still under way when a scenario needs it to be.
    pub fn hold_completions(&self, held: bool) {
        self.shared.hold_completions(held);
    }

    /// What a successful `POST /auth/v1/tokens` for `user`/`password` would give: a token
    /// with st2's maximum TTL (`None` for a wrong password). For tests that need a token to
    /// hand to the bridge without speaking HTTP themselves.
    pub fn issue_token(&self, user: &str, password: &str) -> Option<String> {
        if !self.shared.check_password(user, password) {
            return None;
        }
        let ttl = self.shared.settings.token_ttl_max;
        Some(self.shared.issue_token(user, ttl).0)
    }

    /// Every `st2.announcement__<route>` event published so far — whether or not a stream
    /// was connected to hear it — as `(event name, data)`, oldest first. Lets a test
    /// compare what the bridge posted with what StackStorm announced.
    pub fn announcements(&self) -> Vec<(String, Value)> {
        self.shared
            .announced()
            .into_iter()
            .map(|(name, data)| {
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                (name, data)
            })
            .collect()
    }

    /// Create a pending inquiry: an execution of `core.ask` (runner `inquirer`) that
    /// stops in `pending` with `spec` as its result (`schema`, `roles`, `users`,
    /// `route`, `ttl`), as st2's inquirer runner leaves it. Its id is both the
    /// execution's and the inquiry's. Answering it (`PUT /api/v1/inquiries/{id}`) makes
    /// the execution `succeeded` with the response in its result.
    pub fn ask(&self, spec: InquirySpec) -> String {
        self.shared.create_inquiry(&spec)
    }

    /// The response accepted for inquiry `id` (`None` while unanswered or unknown).
    pub fn inquiry_response(&self, id: &str) -> Option<Value> {
        self.shared.inquiry_response(id)
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

    /// The server ends every open stream (response body finished, connection
    /// closed; in [`Framing::Direct`] with the last chunk).
    pub fn drop_streams(&self) {
        self.shared.close_streams(&state::StreamMsg::Close);
    }

    /// st2stream goes down (`false`) or comes back (`true`) behind nginx. Going down
    /// drops every open stream as a dying upstream does (in [`Framing::Direct`] the
    /// chunked body never gets its last chunk). While down, `GET /stream/...` gets
    /// st2.conf's `@streamError` answer in [`Framing::Nginx`] — 200, body exactly
    /// `retry: 1000\n\n` with `Content-Length: 13`, a `Content-Type` of
    /// `application/octet-stream` followed by one of `text/event-stream`, the
    /// connection kept alive — and its connection closed without an answer in
    /// [`Framing::Direct`]. Executions go on; their events are lost for the streams
    /// that are not connected (st2stream has no replay).
    pub fn set_stream_service(&self, up: bool) {
        self.shared.set_service(Service::Stream, up);
    }

    /// Stream requests answered while st2stream was down (nginx's `@streamError`
    /// pages; in [`Framing::Direct`], connections closed unanswered). They are not
    /// counted in [`Emulator::stream_connects_total`].
    pub fn stream_error_pages(&self) -> usize {
        self.shared.stream_refused()
    }

    /// st2api goes down (`false`) or comes back (`true`). While down, every
    /// `/api/...` request gets st2.conf's `@apiError` answer in [`Framing::Nginx`]:
    /// 503, body exactly `{ "faultstring": "Nginx is unable to reach st2api. Make
    /// sure service is running." }` with its `Content-Length`, `Content-Type`
    /// `application/octet-stream` followed by `application/json`, the connection
    /// kept alive. In [`Framing::Direct`] the connection is closed unanswered.
    pub fn set_api_service(&self, up: bool) {
        self.shared.set_service(Service::Api, up);
    }

    /// st2auth goes down (`false`) or comes back (`true`): like
    /// [`Emulator::set_api_service`] for `/auth/...`, with st2.conf's `@authError`
    /// text (`Nginx is unable to reach st2auth. Make sure service is running.`).
    pub fn set_auth_service(&self, up: bool) {
        self.shared.set_service(Service::Auth, up);
    }

    /// A slow st2: every `/api` and `/auth` answer is held back this long after it
    /// was computed (its effects, such as a new execution and its events, happen at
    /// once). Streams are not delayed. `Duration::ZERO` turns it off.
    pub fn set_response_delay(&self, delay: Duration) {
        self.shared.set_response_delay(delay);
    }

    /// A stalled st2: while `held`, every `/api` and `/auth` answer is held back once
    /// computed (its effects happen at once), until `hold_responses(false)`. Streams are
    /// not held. For a test that needs an answer to arrive only after something else.
    pub fn hold_responses(&self, held: bool) {
        self.shared.hold_responses(held);
    }

    /// The most `POST /api/v1/aliasexecution` requests answered at once so far (a client
    /// that sends every command at once has StackStorm work on them all together).
    pub fn alias_runs_in_flight_max(&self) -> usize {
        self.shared.alias_runs_in_flight_max()
    }

    /// Background traffic on the message bus: every `interval`, a timer rule runs
    /// an action (st2's `examples.sample_rule_with_timer`: `core.local` `echo`) and
    /// its liveaction, execution and output events are published to every stream;
    /// nothing is announced. `None` stops it. See `background.rs`.
    pub fn set_background_traffic(&self, interval: Option<Duration>) {
        self.shared.set_background(interval);
    }

    /// Events the background traffic has published so far.
    pub fn background_events_total(&self) -> usize {
        self.shared.background_events()
    }

    /// Every open stream writes only about half of the next event it sends, then
    /// its connection drops: a proxy or the network cutting the TCP stream at an
    /// arbitrary byte. Heartbeats in between are sent whole.
    pub fn cut_streams_mid_event(&self) {
        self.shared.cut_streams();
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
    /// its result announcement before sending the 201 (an `ops.long_job` is only
    /// started: it finishes later, as usual).
    pub fn set_announce_before_response(&self, on: bool) {
        self.shared.set_announce_before_response(on);
    }

    /// While `Some`, an authenticated `GET /api/v1/actionalias` answers 200 with exactly
    /// this body (`null`, `{"faultstring": "…"}`, garbage): what a broken st2api or proxy
    /// has been seen to send. `None` restores the real list.
    pub fn set_alias_list_body(&self, body: Option<&str>) {
        self.shared.set_alias_list_body(body.map(str::to_owned));
    }

    /// Give `user` the permission type `permission` (with RBAC on), as an st2 admin does
    /// by adding it to one of the user's roles and running `st2-apply-rbac-definitions`:
    /// it counts from the next request on.
    pub fn grant(&self, user: &str, permission: &str) {
        self.shared.set_granted(user, permission, true);
    }

    /// Take back a permission [`EmulatorConfig::grants`] or [`Emulator::grant`] gave
    /// `user` (roles are untouched: an `observer` keeps every `list` permission).
    pub fn revoke(&self, user: &str, permission: &str) {
        self.shared.set_granted(user, permission, false);
    }

    /// While `Some`, every answer carries this `X-Request-ID` instead of the one the
    /// request sent: what a proxy in front of st2api that sets its own request ids
    /// (nginx's `proxy_set_header X-Request-ID $request_id`) makes st2 send back, since
    /// st2's `RequestIDMiddleware` echoes whatever id reaches it. `None` restores st2's
    /// own behaviour (the request's id, else a new uuid).
    pub fn set_request_id_override(&self, id: Option<&str>) {
        self.shared.set_request_id_override(id.map(str::to_owned));
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
                        .wrap_fn(proxy::handle)
                        .configure(routes::configure)
                        .default_service(web::to(routes::not_found))
                })
                .on_connect(stream::capture_peer)
                // st2's nginx site sets `tcp_nodelay on` for the stream (conf/nginx/st2.conf,
                // `location /stream/`), and nginx's default `tcp_nodelay on` covers the API's
                // unbuffered proxying (`proxy_buffering off`): each event leaves at once. Without it Nagle holds an event while the one before is
                // unacknowledged, and the client's delayed ACK makes that a 40 ms stall.
                .tcp_nodelay(true)
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

/// Start the thread that finishes executions after their delay and runs the
/// background traffic. It holds only weak references, so it ends when the emulator
/// is gone (the job channel closes; the background task ends with the runtime).
fn spawn_runner(rx: mpsc::UnboundedReceiver<RunJob>, shared: Weak<Shared>) -> io::Result<()> {
    let background = shared.upgrade().map(|s| s.background_watch());
    std::thread::Builder::new()
        .name("st2-emulator-runner".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build();
            match rt {
                Ok(rt) => {
                    if let Some(watch) = background {
                        rt.spawn(background::run(watch, shared.clone()));
                    }
                    rt.block_on(run_jobs(rx, shared));
                }
                Err(e) => tracing::debug!(error = %e, "st2 emulator: runner not started"),
            }
        })?;
    Ok(())
}

async fn run_jobs(mut rx: mpsc::UnboundedReceiver<RunJob>, shared: Weak<Shared>) {
    let mut queue: BinaryHeap<Reverse<(Instant, u64, String, JobKind)>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next_due = queue.peek().map(|Reverse((t, _, _, _))| *t);
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
                    queue.push(Reverse((job.due, seq, job.execution_id, job.kind)));
                }
                None => return,
            },
            () = wait => {
                let now = Instant::now();
                while queue.peek().is_some_and(|Reverse((t, _, _, _))| *t <= now) {
                    let Some(Reverse((_, _, id, kind))) = queue.pop() else { break };
                    match shared.upgrade() {
                        Some(s) => s.run_job(kind, &id),
                        None => return,
                    }
                }
            }
        }
    }
}
