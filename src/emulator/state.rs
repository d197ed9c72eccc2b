//! Shared state of the emulator: credentials, aliases, executions, stream
//! subscribers, fault-injection switches, and the event bus that feeds the stream.
//!
//! Everything here is reached from the HTTP worker thread, the execution-runner
//! thread and the test's own thread at once, so it lives behind `parking_lot`
//! mutexes and atomics. Lock order: `state` before `subs`; neither lock is ever held
//! across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::alias::index::AliasIndex;
use crate::alias::model::{parse_alias_list, ActionAlias, ResultSpec};

use super::template::{default_result_message, render, Context, Var, ALIAS_API, EXECUTION_API};
use super::util::{api_key_hash, isotime, object_id, py_str, stable_object_id, token_string};
use super::{CredentialKind, ExecutionRecord, Framing};

/// Settings fixed at start (no `Debug`: it holds passwords and keys).
#[derive(Clone)]
pub(crate) struct Settings {
    pub users: Vec<(String, String)>,
    pub api_keys: Vec<(String, String)>,
    pub heartbeat: Duration,
    pub token_ttl_max: u64,
    pub execution_delay: Duration,
    pub web_url: Option<String>,
    pub framing: Framing,
}

/// Who a request authenticated as (no `Debug`: it may hold a token).
#[derive(Clone)]
pub(crate) struct Principal {
    pub user: String,
    pub kind: CredentialKind,
    /// The token and its expiry, when a token was used (for the `auth-token` cookie).
    pub token: Option<(String, DateTime<Utc>)>,
}

#[derive(Clone)]
struct TokenInfo {
    user: String,
    expiry: DateTime<Utc>,
}

/// One parsed alias set: the raw items (served verbatim) and the index over the
/// items that parse.
pub(crate) struct AliasSet {
    pub raw: Vec<Value>,
    pub index: AliasIndex,
    raw_by_ref: HashMap<String, Value>,
}

impl AliasSet {
    pub(crate) fn build(raw: Vec<Value>) -> AliasSet {
        let mut parsed = Vec::new();
        let mut raw_by_ref = HashMap::new();
        for item in &raw {
            let (mut ok, problems) =
                parse_alias_list(&Value::Array(vec![item.clone()])).unwrap_or_default();
            for p in problems {
                tracing::debug!(problem = %p, "st2 emulator: alias not usable");
            }
            if let Some(a) = ok.pop() {
                raw_by_ref
                    .entry(a.reference.clone())
                    .or_insert_with(|| item.clone());
                parsed.push(a);
            }
        }
        let (index, warnings) = AliasIndex::build(parsed);
        for w in warnings {
            tracing::debug!(warning = %w, "st2 emulator: alias format not usable");
        }
        AliasSet {
            raw,
            index,
            raw_by_ref,
        }
    }

    /// The raw JSON item behind a parsed alias.
    pub(crate) fn raw_for(&self, alias: &ActionAlias) -> Value {
        self.raw_by_ref
            .get(&alias.reference)
            .cloned()
            .unwrap_or_else(|| serde_json::to_value(alias).unwrap_or(Value::Null))
    }
}

/// Identity of a raw alias item for create/update/delete events.
fn raw_alias_key(v: &Value) -> Option<String> {
    if let Some(r) = v.get("ref").and_then(Value::as_str) {
        if !r.is_empty() {
            return Some(r.to_string());
        }
    }
    let pack = v.get("pack").and_then(Value::as_str)?;
    let name = v.get("name").and_then(Value::as_str)?;
    Some(format!("{pack}.{name}"))
}

/// The id st2 would have given an alias: its own `id`, or a stable one.
pub(crate) fn alias_id(alias: &ActionAlias) -> String {
    alias
        .id
        .clone()
        .unwrap_or_else(|| stable_object_id(&alias.reference))
}

/// One event as it goes out on the stream, with what st2's listener reads from its
/// body to filter it (`st2common/stream/listener.py`).
#[derive(Debug)]
pub(crate) struct Event {
    pub name: String,
    pub data: String,
    /// What `_get_action_ref_for_body` finds (executions, liveactions, output).
    pub action_ref: Option<String>,
    /// What `_get_execution_id_for_body` finds (executions and output; never
    /// liveactions).
    pub execution_id: Option<String>,
    /// `body.id`, compared with `end_execution_id` (a liveaction's own id for
    /// liveaction events).
    pub body_id: Option<String>,
    /// `body.status`; `None` when the body has no `status` attribute at all
    /// (announcements, output, aliases, raw events).
    pub status: Option<String>,
}

/// What a stream connection's queue carries.
#[derive(Debug, Clone)]
pub(crate) enum StreamMsg {
    /// A bus event.
    Event(Arc<Event>),
    /// End the response normally ([`super::Emulator::drop_streams`]).
    Close,
    /// The connection is dropped as it is, as when st2stream dies
    /// ([`super::Emulator::set_stream_service`]).
    Abort,
    /// Write only part of the next event, then drop the connection
    /// ([`super::Emulator::cut_streams_mid_event`]).
    CutNext,
}

/// Which st2 service a request is for, from its nginx prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// `/auth/...`: st2auth.
    Auth,
    /// `/api/...`: st2api.
    Api,
    /// `/stream/...`: st2stream.
    Stream,
    /// Anything else (nginx's `location /`, the web UI).
    Other,
}

impl Service {
    /// The service behind a request path, as st2.conf's locations route it.
    pub(crate) fn of(path: &str) -> Service {
        if path.starts_with("/auth/") {
            Service::Auth
        } else if path.starts_with("/api/") {
            Service::Api
        } else if path.starts_with("/stream/") {
            Service::Stream
        } else {
            Service::Other
        }
    }
}

#[derive(Default)]
struct Subscribers {
    next_id: u64,
    list: Vec<(u64, UnboundedSender<StreamMsg>)>,
}

/// A job for the execution-runner thread.
#[derive(Debug)]
pub(crate) struct RunJob {
    pub due: Instant,
    pub execution_id: String,
}

const CANCELABLE: &[&str] = &[
    "requested",
    "scheduled",
    "delayed",
    "running",
    "pausing",
    "paused",
    "resuming",
];

fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "succeeded" | "failed" | "timeout" | "canceled" | "abandoned"
    )
}

/// The runner type st2 would use for an action (the emulator knows `core.*`; any
/// other action is treated as a Python action).
fn runner_for(action_ref: &str) -> &'static str {
    match action_ref {
        "core.local" | "core.local_sudo" | "core.echo" => "local-shell-cmd",
        "core.remote" | "core.remote_sudo" => "remote-shell-cmd",
        "core.noop" => "noop",
        "core.http" => "http-request",
        _ => "python-script",
    }
}

/// One emulated execution.
struct Exec {
    id: String,
    liveaction_id: String,
    action_ref: String,
    runner: &'static str,
    parameters: Map<String, Value>,
    context: Value,
    notify: Value,
    status: String,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    result: Option<Value>,
    log: Vec<(String, DateTime<Utc>)>,
    web_url: Option<String>,
    route: Option<String>,
    alias_raw: Value,
    result_spec: Option<ResultSpec>,
    user: Option<String>,
    source_channel: String,
    source_context: Option<Value>,
    /// Top-level fields only rule-triggered executions have (`rule`, `trigger`,
    /// `trigger_type`, `trigger_instance`: st2common/services/executions.py).
    extra: Map<String, Value>,
}

impl Exec {
    fn set_status(&mut self, status: &str) {
        self.status = status.to_string();
        self.log.push((status.to_string(), Utc::now()));
    }

    fn action_json(&self) -> Value {
        let (pack, name) = self
            .action_ref
            .split_once('.')
            .unwrap_or(("", self.action_ref.as_str()));
        json!({
            "id": stable_object_id(&format!("action:{}", self.action_ref)),
            "ref": self.action_ref,
            "name": name,
            "pack": pack,
            "uid": format!("action:{pack}:{name}"),
            "runner_type": self.runner,
            "enabled": true,
            "entry_point": "",
            "description": format!("{} (emulated by the st2 API test double)", self.action_ref),
        })
    }

    /// The `ActionExecutionAPI` object (empty fields left out, as st2 does).
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("action".into(), self.action_json());
        m.insert(
            "runner".into(),
            json!({"name": self.runner, "enabled": true,
                   "description": format!("{} runner (emulated)", self.runner)}),
        );
        let mut live = Map::new();
        live.insert("id".into(), json!(self.liveaction_id));
        live.insert("action".into(), json!(self.action_ref));
        live.insert("action_is_workflow".into(), json!(false));
        live.insert("parameters".into(), Value::Object(self.parameters.clone()));
        if !self.notify.is_null() {
            live.insert("notify".into(), self.notify.clone());
        }
        m.insert("liveaction".into(), Value::Object(live));
        m.insert("status".into(), json!(self.status));
        m.insert("start_timestamp".into(), json!(isotime(self.start)));
        if let Some(end) = self.end {
            m.insert("end_timestamp".into(), json!(isotime(end)));
            let elapsed = (end - self.start).to_std().map_or(0.0, |d| d.as_secs_f64());
            m.insert("elapsed_seconds".into(), json!(elapsed));
        }
        if !self.parameters.is_empty() {
            m.insert("parameters".into(), Value::Object(self.parameters.clone()));
        }
        m.insert("context".into(), self.context.clone());
        if !self.notify.is_null() {
            m.insert("notify".into(), self.notify.clone());
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        if let Some(r) = &self.result {
            if super::util::py_truthy(r) {
                m.insert("result".into(), r.clone());
                let size = serde_json::to_string(r).map_or(0, |s| s.len());
                m.insert("result_size".into(), json!(size));
            }
        }
        if let Some(w) = &self.web_url {
            m.insert("web_url".into(), json!(w));
        }
        let log: Vec<Value> = self
            .log
            .iter()
            .map(|(s, t)| json!({"status": s, "timestamp": isotime(*t)}))
            .collect();
        m.insert("log".into(), Value::Array(log));
        Value::Object(m)
    }

    /// The `LiveActionAPI` object (`action` is a ref string).
    fn liveaction_json(&self) -> Value {
        let mut notify = self.notify.clone();
        if let Some(obj) = notify.as_object_mut() {
            if let Some(oc) = obj.remove("on_complete") {
                obj.insert("on-complete".into(), oc);
            }
        }
        let mut m = Map::new();
        m.insert("id".into(), json!(self.liveaction_id));
        m.insert("action".into(), json!(self.action_ref));
        m.insert("action_is_workflow".into(), json!(false));
        m.insert("status".into(), json!(self.status));
        m.insert("start_timestamp".into(), json!(isotime(self.start)));
        if let Some(end) = self.end {
            m.insert("end_timestamp".into(), json!(isotime(end)));
        }
        if !self.parameters.is_empty() {
            m.insert("parameters".into(), Value::Object(self.parameters.clone()));
        }
        m.insert("context".into(), self.context.clone());
        if !notify.is_null() {
            m.insert("notify".into(), notify);
        }
        if let Some(r) = &self.result {
            if super::util::py_truthy(r) {
                m.insert("result".into(), r.clone());
            }
        }
        m.insert(
            "runner_info".into(),
            json!({"hostname": "st2-emulator", "pid": std::process::id()}),
        );
        Value::Object(m)
    }
}

/// The data behind an alias execution request, already validated.
pub(crate) struct NewExecution {
    pub alias: Arc<ActionAlias>,
    pub alias_raw: Value,
    pub parameters: Map<String, Value>,
    pub principal: Principal,
    pub request: Value,
    pub user: Option<String>,
    pub source_channel: String,
    pub source_context: Option<Value>,
    pub route: Option<String>,
}

/// A rule-triggered execution for the background traffic (`background.rs`).
pub(crate) struct NewBackground {
    pub action_ref: String,
    pub parameters: Map<String, Value>,
    /// The liveaction context st2's rule enforcer gives it.
    pub context: Value,
    /// `rule`, `trigger`, `trigger_type`, `trigger_instance`.
    pub extra: Map<String, Value>,
    /// Lines the action prints, each with its newline.
    pub stdout: Vec<String>,
    /// The action's result.
    pub result: Value,
}

/// A background execution between its start and its end.
pub(crate) struct BackgroundRun {
    exec: Exec,
    stdout: Vec<String>,
    result: Value,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, TokenInfo>,
    executions: Vec<Exec>,
    by_id: HashMap<String, usize>,
    records: Vec<ExecutionRecord>,
    fail_next: Option<(u16, String)>,
    last_filter: Option<String>,
    alias_list_body: Option<String>,
}

/// Everything the server, the runner thread and the `Emulator` handle share.
pub(crate) struct Shared {
    pub settings: Settings,
    pub api_base: String,
    state: Mutex<State>,
    aliases: Mutex<Arc<AliasSet>>,
    subs: Mutex<Subscribers>,
    stalled: AtomicBool,
    announce_before_response: AtomicBool,
    login_count: AtomicUsize,
    connects_total: AtomicUsize,
    open_streams: AtomicUsize,
    runner: UnboundedSender<RunJob>,
    auth_up: AtomicBool,
    api_up: AtomicBool,
    stream_up: AtomicBool,
    stream_refused: AtomicUsize,
    response_delay: Mutex<Duration>,
    /// The background-traffic interval; the ticker (`background.rs`) watches it and
    /// ends when this sender is dropped with the rest of `Shared`.
    background: watch::Sender<Option<Duration>>,
    background_events: AtomicUsize,
    /// Every `st2.announcement__*` event published, connected listeners or not.
    announced: Mutex<Vec<(String, String)>>,
}

impl Shared {
    pub(crate) fn new(
        settings: Settings,
        aliases: Vec<Value>,
        api_base: String,
        runner: UnboundedSender<RunJob>,
        background: Option<Duration>,
    ) -> Shared {
        Shared {
            settings,
            api_base,
            state: Mutex::new(State::default()),
            aliases: Mutex::new(Arc::new(AliasSet::build(aliases))),
            subs: Mutex::new(Subscribers::default()),
            stalled: AtomicBool::new(false),
            announce_before_response: AtomicBool::new(false),
            announced: Mutex::new(Vec::new()),
            login_count: AtomicUsize::new(0),
            connects_total: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            runner,
            auth_up: AtomicBool::new(true),
            api_up: AtomicBool::new(true),
            stream_up: AtomicBool::new(true),
            stream_refused: AtomicUsize::new(0),
            response_delay: Mutex::new(Duration::ZERO),
            background: watch::Sender::new(background),
            background_events: AtomicUsize::new(0),
        }
    }

    // ----- credentials -------------------------------------------------------

    /// Check a username and password (Basic auth on `POST /auth/v1/tokens`).
    pub(crate) fn check_password(&self, user: &str, password: &str) -> bool {
        self.settings
            .users
            .iter()
            .any(|(u, p)| u == user && p == password)
    }

    /// Issue a token; the caller has checked the password and the TTL.
    pub(crate) fn issue_token(&self, user: &str, ttl: u64) -> (String, DateTime<Utc>) {
        let token = token_string();
        let expiry = i64::try_from(ttl)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
            .and_then(|d| Utc::now().checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.state.lock().tokens.insert(
            token.clone(),
            TokenInfo {
                user: user.to_string(),
                expiry,
            },
        );
        self.login_count.fetch_add(1, Ordering::SeqCst);
        (token, expiry)
    }

    /// Validate a token as the router does; `Err` is the 401 faultstring.
    pub(crate) fn validate_token(&self, token: &str) -> Result<Principal, String> {
        let st = self.state.lock();
        match st.tokens.get(token) {
            None => Err("Unauthorized".to_string()),
            Some(info) if info.expiry <= Utc::now() => {
                Err("Unauthorized - Token has expired.".to_string())
            }
            Some(info) => Ok(Principal {
                user: info.user.clone(),
                kind: CredentialKind::Token,
                token: Some((token.to_string(), info.expiry)),
            }),
        }
    }

    /// Validate an API key; `Err` is the 401 faultstring.
    pub(crate) fn validate_api_key(&self, key: &str) -> Result<Principal, String> {
        match self.settings.api_keys.iter().find(|(k, _)| k == key) {
            Some((_, user)) => Ok(Principal {
                user: user.clone(),
                kind: CredentialKind::ApiKey,
                token: None,
            }),
            None => Err(format!(
                "Unauthorized - ApiKey with key_hash={} not found.",
                api_key_hash(key)
            )),
        }
    }

    /// `POST /auth/v1/tokens/validate`: false for unknown and expired tokens.
    pub(crate) fn token_is_valid(&self, token: &str) -> bool {
        self.validate_token(token).is_ok()
    }

    /// Make every issued token expired.
    pub(crate) fn revoke_all_tokens(&self) {
        let past = Utc::now() - chrono::Duration::seconds(1);
        for info in self.state.lock().tokens.values_mut() {
            info.expiry = past;
        }
    }

    pub(crate) fn login_count(&self) -> usize {
        self.login_count.load(Ordering::SeqCst)
    }

    // ----- aliases -----------------------------------------------------------

    pub(crate) fn aliases(&self) -> Arc<AliasSet> {
        self.aliases.lock().clone()
    }

    /// Replace the alias set and publish create/update/delete events for the
    /// differences, as st2 ≥ 3.8.1 does.
    pub(crate) fn set_aliases(&self, raw: Vec<Value>) {
        let new_set = Arc::new(AliasSet::build(raw));
        let _st = self.state.lock();
        let old = std::mem::replace(&mut *self.aliases.lock(), new_set.clone());
        let keyed = |items: &[Value]| -> Vec<(String, Value)> {
            let mut out: Vec<(String, Value)> = Vec::new();
            for v in items {
                if let Some(k) = raw_alias_key(v) {
                    if !out.iter().any(|(ok, _)| *ok == k) {
                        out.push((k, v.clone()));
                    }
                }
            }
            out
        };
        let before = keyed(&old.raw);
        let after = keyed(&new_set.raw);
        for (k, v) in &before {
            if !after.iter().any(|(ak, _)| ak == k) {
                self.publish_locked(Self::plain_event("st2.actionalias__delete", v));
            }
        }
        for (k, v) in &after {
            match before.iter().find(|(bk, _)| bk == k) {
                None => self.publish_locked(Self::plain_event("st2.actionalias__create", v)),
                Some((_, old_v)) if old_v != v => {
                    self.publish_locked(Self::plain_event("st2.actionalias__update", v));
                }
                Some(_) => {}
            }
        }
    }

    // ----- events ------------------------------------------------------------

    fn plain_event(name: &str, data: &Value) -> Event {
        Event {
            name: name.to_string(),
            data: serde_json::to_string(data).unwrap_or_else(|_| "null".into()),
            action_ref: None,
            execution_id: None,
            body_id: None,
            status: None,
        }
    }

    /// Send one event to every open stream (the caller holds `state`, which keeps
    /// events in order).
    fn publish_locked(&self, event: Event) {
        tracing::debug!(event = %event.name, "st2 emulator: publish");
        if event.name.starts_with("st2.announcement__") {
            self.announced
                .lock()
                .push((event.name.clone(), event.data.clone()));
        }
        let event = Arc::new(event);
        let mut subs = self.subs.lock();
        subs.list
            .retain(|(_, tx)| tx.send(StreamMsg::Event(event.clone())).is_ok());
    }

    /// Every announcement published so far: event name and `data` text.
    pub(crate) fn announced(&self) -> Vec<(String, String)> {
        self.announced.lock().clone()
    }

    /// Publish an event from outside the execution flow.
    pub(crate) fn publish(&self, name: &str, data: String) {
        let _st = self.state.lock();
        self.publish_locked(Event {
            name: name.to_string(),
            data,
            action_ref: None,
            execution_id: None,
            body_id: None,
            status: None,
        });
    }

    /// Register a stream connection; `None` (nothing registered, nothing counted)
    /// when st2stream is down. The service flag is read under the subscriber lock,
    /// so a stream is either refused here or aborted by
    /// [`Shared::set_service`], never left open on a stopped service.
    pub(crate) fn subscribe(
        &self,
        tx: UnboundedSender<StreamMsg>,
        events: Option<String>,
    ) -> Option<u64> {
        let mut st = self.state.lock();
        let mut subs = self.subs.lock();
        if !self.stream_up.load(Ordering::SeqCst) {
            return None;
        }
        st.last_filter = events;
        subs.next_id += 1;
        let id = subs.next_id;
        subs.list.push((id, tx));
        self.connects_total.fetch_add(1, Ordering::SeqCst);
        self.open_streams.fetch_add(1, Ordering::SeqCst);
        Some(id)
    }

    /// A stream connection ended.
    pub(crate) fn unsubscribe(&self, id: u64) {
        self.subs.lock().list.retain(|(i, _)| *i != id);
        self.open_streams.fetch_sub(1, Ordering::SeqCst);
    }

    /// End every open stream with `msg` (`Close` or `Abort`).
    pub(crate) fn close_streams(&self, msg: &StreamMsg) {
        let list = std::mem::take(&mut self.subs.lock().list);
        for (_, tx) in list {
            let _ = tx.send(msg.clone());
        }
    }

    /// Tell every open stream to cut its next event short.
    pub(crate) fn cut_streams(&self) {
        let subs = self.subs.lock();
        for (_, tx) in &subs.list {
            let _ = tx.send(StreamMsg::CutNext);
        }
    }

    // ----- services behind nginx --------------------------------------------------

    /// Whether the st2 service behind a path is up (`Other` always is).
    pub(crate) fn service_up(&self, service: Service) -> bool {
        match service {
            Service::Auth => self.auth_up.load(Ordering::SeqCst),
            Service::Api => self.api_up.load(Ordering::SeqCst),
            Service::Stream => self.stream_up.load(Ordering::SeqCst),
            Service::Other => true,
        }
    }

    /// Take a service down or bring it up. Taking st2stream down drops every open
    /// stream as it is.
    pub(crate) fn set_service(&self, service: Service, up: bool) {
        match service {
            Service::Auth => self.auth_up.store(up, Ordering::SeqCst),
            Service::Api => self.api_up.store(up, Ordering::SeqCst),
            Service::Stream => {
                // Stored before the subscriber lock is taken (see `subscribe`).
                self.stream_up.store(up, Ordering::SeqCst);
                if !up {
                    self.close_streams(&StreamMsg::Abort);
                }
            }
            Service::Other => {}
        }
    }

    /// Count a stream request answered while st2stream was down.
    pub(crate) fn count_stream_refused(&self) {
        self.stream_refused.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn stream_refused(&self) -> usize {
        self.stream_refused.load(Ordering::SeqCst)
    }

    pub(crate) fn set_response_delay(&self, delay: Duration) {
        *self.response_delay.lock() = delay;
    }

    pub(crate) fn response_delay(&self) -> Duration {
        *self.response_delay.lock()
    }

    // ----- background traffic -------------------------------------------------

    pub(crate) fn set_background(&self, interval: Option<Duration>) {
        self.background.send_replace(interval);
    }

    /// A receiver of the background interval, for the ticker.
    pub(crate) fn background_watch(&self) -> watch::Receiver<Option<Duration>> {
        self.background.subscribe()
    }

    pub(crate) fn background_events(&self) -> usize {
        self.background_events.load(Ordering::SeqCst)
    }

    pub(crate) fn set_stalled(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }

    pub(crate) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }

    pub(crate) fn open_streams(&self) -> usize {
        self.open_streams.load(Ordering::SeqCst)
    }

    pub(crate) fn connects_total(&self) -> usize {
        self.connects_total.load(Ordering::SeqCst)
    }

    pub(crate) fn last_filter(&self) -> Option<String> {
        self.state.lock().last_filter.clone()
    }

    // ----- fault injection ----------------------------------------------------

    pub(crate) fn set_announce_before_response(&self, on: bool) {
        self.announce_before_response.store(on, Ordering::SeqCst);
    }

    pub(crate) fn announce_before_response(&self) -> bool {
        self.announce_before_response.load(Ordering::SeqCst)
    }

    pub(crate) fn fail_next(&self, status: u16, faultstring: &str) {
        self.state.lock().fail_next = Some((status, faultstring.to_string()));
    }

    pub(crate) fn take_fail_next(&self) -> Option<(u16, String)> {
        self.state.lock().fail_next.take()
    }

    pub(crate) fn set_alias_list_body(&self, body: Option<String>) {
        self.state.lock().alias_list_body = body;
    }

    pub(crate) fn alias_list_body(&self) -> Option<String> {
        self.state.lock().alias_list_body.clone()
    }

    // ----- executions ---------------------------------------------------------

    pub(crate) fn records(&self) -> Vec<ExecutionRecord> {
        self.state.lock().records.clone()
    }

    /// Create an execution (status `requested`), publish its create events, and
    /// return its id and `ActionExecutionAPI` object.
    pub(crate) fn create_execution(&self, n: NewExecution) -> (String, Value) {
        let id = object_id();
        let now = Utc::now();
        let context = json!({
            "action_alias_ref": {"id": alias_id(&n.alias), "name": n.alias.name},
            "api_user": n.user,
            "user": n.principal.user,
            "source_channel": n.source_channel,
        });
        let notify = json!({"on_complete": {
            "routes": [n.route],
            "data": {"user": n.user, "source_channel": n.source_channel,
                     "source_context": n.source_context},
        }});
        let web_url = self
            .settings
            .web_url
            .as_ref()
            .map(|base| format!("{}/#/history/{id}/general", base.trim_end_matches('/')));
        let exec = Exec {
            id: id.clone(),
            liveaction_id: object_id(),
            action_ref: n.alias.action_ref.clone(),
            runner: runner_for(&n.alias.action_ref),
            parameters: n.parameters.clone(),
            context,
            notify,
            status: "requested".into(),
            start: now,
            end: None,
            result: None,
            log: vec![("requested".into(), now)],
            web_url,
            route: n.route.clone(),
            alias_raw: n.alias_raw.clone(),
            result_spec: n.alias.result.clone(),
            user: n.user.clone(),
            source_channel: n.source_channel.clone(),
            source_context: n.source_context.clone(),
            extra: Map::new(),
        };
        let snapshot = exec.to_json();
        let live = exec.liveaction_json();
        let parameters: BTreeMap<String, String> = n
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), py_str(v)))
            .collect();
        let record = ExecutionRecord {
            id: id.clone(),
            request: n.request,
            st2_user: n.principal.user.clone(),
            credential_kind: n.principal.kind,
            alias_ref: n.alias.reference.clone(),
            parameters,
        };
        let mut st = self.state.lock();
        let idx = st.executions.len();
        st.by_id.insert(id.clone(), idx);
        st.executions.push(exec);
        st.records.push(record);
        self.publish_locked(Self::exec_event(
            "st2.liveaction__create",
            &live,
            &id,
            "requested",
        ));
        self.publish_locked(Self::exec_event(
            "st2.execution__create",
            &snapshot,
            &id,
            "requested",
        ));
        tracing::debug!(execution = %id, "st2 emulator: execution requested");
        (id, snapshot)
    }

    fn exec_event(name: &str, data: &Value, id: &str, status: &str) -> Event {
        let action_ref = match data.get("action") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(a) => a.get("ref").and_then(Value::as_str).map(str::to_string),
            None => None,
        };
        Event {
            name: name.to_string(),
            data: serde_json::to_string(data).unwrap_or_else(|_| "null".into()),
            action_ref,
            // st2 gives liveaction events no execution id (they are dropped by an
            // `execution_ids` filter).
            execution_id: if name.starts_with("st2.execution") {
                Some(id.to_string())
            } else {
                None
            },
            body_id: data.get("id").and_then(Value::as_str).map(str::to_string),
            status: Some(status.to_string()),
        }
    }

    /// Queue an execution to be completed after the configured delay.
    pub(crate) fn schedule_completion(&self, id: &str) {
        let job = RunJob {
            due: Instant::now() + self.settings.execution_delay,
            execution_id: id.to_string(),
        };
        if self.runner.send(job).is_err() {
            tracing::debug!("st2 emulator: runner gone; completing inline");
            self.complete_execution(id);
        }
    }

    /// Run an execution to its end: publish the status updates and, when chatops
    /// would, the result announcement. Does nothing for finished executions.
    pub(crate) fn complete_execution(&self, id: &str) {
        let mut st = self.state.lock();
        let Some(&idx) = st.by_id.get(id) else {
            return;
        };
        let Some(exec) = st.executions.get_mut(idx) else {
            return;
        };
        if is_terminal(&exec.status) {
            return;
        }
        let mut events = Vec::new();
        for status in ["scheduled", "running"] {
            exec.set_status(status);
            events.extend(Self::status_events(exec));
        }
        let (ok, result) = super::actions::run(&exec.action_ref, &exec.parameters);
        let final_status = if ok { "succeeded" } else { "failed" };
        exec.result = Some(result);
        exec.end = Some(Utc::now());
        exec.set_status(final_status);
        events.extend(Self::status_events(exec));
        let announcement = announcement_for(exec, &exec.to_json());
        for event in events {
            self.publish_locked(event);
        }
        if let Some((name, data)) = announcement {
            self.publish_locked(Self::plain_event(&name, &data));
        }
        tracing::debug!(execution = %id, status = final_status, "st2 emulator: execution finished");
    }

    // ----- background executions ------------------------------------------------

    /// Start a rule-triggered execution (`background.rs`): publish its
    /// `st2.liveaction__create` / `st2.execution__create` (status `requested`) and
    /// its `scheduled` updates. It is not stored: it is not in
    /// [`Shared::records`] and `GET /api/v1/executions/{id}` does not know it.
    pub(crate) fn background_start(&self, n: NewBackground) -> BackgroundRun {
        let now = Utc::now();
        let id = object_id();
        let web_url = self
            .settings
            .web_url
            .as_ref()
            .map(|base| format!("{}/#/history/{id}/general", base.trim_end_matches('/')));
        let mut exec = Exec {
            id,
            liveaction_id: object_id(),
            runner: runner_for(&n.action_ref),
            action_ref: n.action_ref,
            parameters: n.parameters,
            context: n.context,
            // A rule's action has no notify: nothing is announced.
            notify: Value::Null,
            status: "requested".into(),
            start: now,
            end: None,
            result: None,
            log: vec![("requested".into(), now)],
            web_url,
            route: None,
            alias_raw: Value::Null,
            result_spec: None,
            user: None,
            source_channel: String::new(),
            source_context: None,
            extra: n.extra,
        };
        let _st = self.state.lock();
        let id = exec.id.clone();
        let mut events = vec![
            Self::exec_event(
                "st2.liveaction__create",
                &exec.liveaction_json(),
                &id,
                "requested",
            ),
            Self::exec_event("st2.execution__create", &exec.to_json(), &id, "requested"),
        ];
        exec.set_status("scheduled");
        events.extend(Self::status_events(&exec));
        self.publish_background(events);
        BackgroundRun {
            exec,
            stdout: n.stdout,
            result: n.result,
        }
    }

    /// Finish a background execution: `running`, one `st2.execution.output__create`
    /// per stdout line (the local runner streams output line by line), then
    /// `succeeded`.
    pub(crate) fn background_finish(&self, run: BackgroundRun) {
        let BackgroundRun {
            mut exec,
            stdout,
            result,
        } = run;
        let _st = self.state.lock();
        let id = exec.id.clone();
        let mut events = Vec::new();
        exec.set_status("running");
        events.extend(Self::status_events(&exec));
        for line in &stdout {
            let output_id = object_id();
            let data = json!({
                "id": output_id,
                "execution_id": id,
                "action_ref": exec.action_ref,
                "runner_ref": exec.runner,
                "timestamp": isotime(Utc::now()),
                "output_type": "stdout",
                "data": line,
            });
            events.push(Event {
                name: "st2.execution.output__create".into(),
                data: serde_json::to_string(&data).unwrap_or_else(|_| "null".into()),
                action_ref: Some(exec.action_ref.clone()),
                execution_id: Some(id.clone()),
                body_id: Some(output_id),
                status: None,
            });
        }
        exec.result = Some(result);
        exec.end = Some(Utc::now());
        exec.set_status("succeeded");
        events.extend(Self::status_events(&exec));
        self.publish_background(events);
    }

    /// The `st2.liveaction__update` and `st2.execution__update` pair st2 publishes when
    /// an execution's status changes (already set on `exec`).
    fn status_events(exec: &Exec) -> [Event; 2] {
        [
            Self::exec_event(
                "st2.liveaction__update",
                &exec.liveaction_json(),
                &exec.id,
                &exec.status,
            ),
            Self::exec_event(
                "st2.execution__update",
                &exec.to_json(),
                &exec.id,
                &exec.status,
            ),
        ]
    }

    /// Publish background events (the caller holds `state`) and count them.
    fn publish_background(&self, events: Vec<Event>) {
        self.background_events
            .fetch_add(events.len(), Ordering::SeqCst);
        for ev in events {
            self.publish_locked(ev);
        }
    }

    /// `GET /api/v1/executions/{id}`.
    pub(crate) fn execution_json(&self, id: &str) -> Option<Value> {
        let st = self.state.lock();
        let idx = *st.by_id.get(id)?;
        st.executions.get(idx).map(Exec::to_json)
    }

    /// `DELETE /api/v1/executions/{id}`: `None` when unknown; `Ok` with the
    /// execution, or `Err` with the 200-status faultstring st2 returns.
    pub(crate) fn cancel_execution(&self, id: &str) -> Option<Result<Value, String>> {
        let mut st = self.state.lock();
        let idx = *st.by_id.get(id)?;
        let exec = st.executions.get_mut(idx)?;
        if exec.status == "canceled" {
            return Some(Ok(exec.to_json()));
        }
        if !CANCELABLE.contains(&exec.status.as_str()) {
            return Some(Err(format!(
                "Action cannot be canceled. State = {}.",
                exec.status
            )));
        }
        exec.end = Some(Utc::now());
        exec.set_status("canceled");
        let json = exec.to_json();
        let announcement = announcement_for(exec, &json);
        for event in Self::status_events(exec) {
            self.publish_locked(event);
        }
        if let Some((name, data)) = announcement {
            self.publish_locked(Self::plain_event(&name, &data));
        }
        Some(Ok(json))
    }
}

/// What chatops' notify rule + `post_result` would publish for a finished
/// execution: `None` without a route or with `result.enabled: false`.
fn announcement_for(exec: &Exec, execution: &Value) -> Option<(String, Value)> {
    let route = exec.route.as_deref()?;
    let spec = exec.result_spec.clone().unwrap_or_default();
    if spec.enabled == Some(false) {
        return None;
    }
    // format_execution_result drops these before rendering.
    let mut exec_ctx = execution.clone();
    if let Some(m) = exec_ctx.as_object_mut() {
        for k in ["trigger", "trigger_type", "trigger_instance", "liveaction"] {
            m.remove(k);
        }
    }
    let ctx = Context {
        vars: vec![
            Var {
                name: "execution",
                value: &exec_ctx,
                type_name: None,
            },
            Var {
                name: "alias",
                value: &exec.alias_raw,
                type_name: None,
            },
        ],
        st2kv: false,
    };
    let message = match &spec.format {
        Some(f) => render(f, &ctx, false).unwrap_or_default(),
        None => default_result_message(&exec_ctx),
    };
    let extra = match &spec.extra {
        Some(x) => render_values(x, &ctx, false).unwrap_or(Value::Null),
        None => Value::Null,
    };
    let payload = json!({
        "message": message,
        "channel": exec.source_channel,
        "user": exec.user,
        "whisper": false,
        "context": exec.source_context,
        "extra": extra,
    });
    // Rule chatops.notify handles route "hubot" and posts with post_message's
    // default route "chatops"; chatops.notify-errbot (and any operator rule built
    // the same way) posts to the route itself.
    let announce_route = if route == "hubot" { "chatops" } else { route };
    Some((
        format!("st2.announcement__{announce_route}"),
        json!({"payload": payload, "trace_context": null}),
    ))
}

/// st2's `render_values`: render every value of a mapping; containers go through
/// their JSON text, values that do not change keep their original type.
pub(crate) fn render_values(
    mapping: &Value,
    ctx: &Context<'_>,
    strict: bool,
) -> Result<Value, String> {
    let Value::Object(m) = mapping else {
        return Ok(mapping.clone());
    };
    let mut out = Map::new();
    for (k, v) in m {
        let rendered = match v {
            Value::String(s) => {
                let r = render(s, ctx, strict)?;
                if r == *s {
                    v.clone()
                } else {
                    Value::String(r)
                }
            }
            Value::Object(_) | Value::Array(_) => {
                let text = serde_json::to_string(v).unwrap_or_default();
                let r = render(&text, ctx, strict)?;
                if r == text {
                    v.clone()
                } else {
                    serde_json::from_str(&r).unwrap_or(Value::String(r))
                }
            }
            other => other.clone(),
        };
        out.insert(k.clone(), rendered);
    }
    Ok(Value::Object(out))
}

/// The Jinja context of an alias acknowledgement: `{execution, actionalias}` plus
/// st2's `__context`.
pub(crate) fn ack_context<'a>(
    execution: &'a Value,
    alias: &'a Value,
    whole: &'a Value,
) -> Context<'a> {
    Context {
        vars: vec![
            Var {
                name: "execution",
                value: execution,
                type_name: Some(EXECUTION_API),
            },
            Var {
                name: "actionalias",
                value: alias,
                type_name: Some(ALIAS_API),
            },
            Var {
                name: "__context",
                value: whole,
                type_name: None,
            },
        ],
        st2kv: false,
    }
}
