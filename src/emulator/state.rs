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

use crate::alias::index::AliasIndex;
use crate::alias::model::{parse_alias_list, ActionAlias, ResultSpec};

use super::template::{default_result_message, render, Context, Var, ALIAS_API, EXECUTION_API};
use super::util::{api_key_hash, isotime, object_id, py_str, stable_object_id, token_string};
use super::{CredentialKind, ExecutionRecord};

/// Settings fixed at start (no `Debug`: it holds passwords and keys).
#[derive(Clone)]
pub(crate) struct Settings {
    pub users: Vec<(String, String)>,
    pub api_keys: Vec<(String, String)>,
    pub heartbeat: Duration,
    pub token_ttl_max: u64,
    pub execution_delay: Duration,
    pub web_url: Option<String>,
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
            let (mut ok, problems) = parse_alias_list(&Value::Array(vec![item.clone()]));
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

/// One event as it goes out on the stream.
#[derive(Debug)]
pub(crate) struct Event {
    pub name: String,
    pub data: String,
    pub action_ref: Option<String>,
    pub execution_id: Option<String>,
    pub status: Option<String>,
}

/// What a stream connection's queue carries.
#[derive(Debug, Clone)]
pub(crate) enum StreamMsg {
    Event(Arc<Event>),
    Close,
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
        m.insert(
            "liveaction".into(),
            json!({"id": self.liveaction_id, "action": self.action_ref,
                   "action_is_workflow": false, "parameters": self.parameters,
                   "notify": self.notify}),
        );
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
        m.insert("notify".into(), self.notify.clone());
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
        m.insert("notify".into(), notify);
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

#[derive(Default)]
struct State {
    tokens: HashMap<String, TokenInfo>,
    executions: Vec<Exec>,
    by_id: HashMap<String, usize>,
    records: Vec<ExecutionRecord>,
    fail_next: Option<(u16, String)>,
    last_filter: Option<String>,
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
}

impl Shared {
    pub(crate) fn new(
        settings: Settings,
        aliases: Vec<Value>,
        api_base: String,
        runner: UnboundedSender<RunJob>,
    ) -> Shared {
        Shared {
            settings,
            api_base,
            state: Mutex::new(State::default()),
            aliases: Mutex::new(Arc::new(AliasSet::build(aliases))),
            subs: Mutex::new(Subscribers::default()),
            stalled: AtomicBool::new(false),
            announce_before_response: AtomicBool::new(false),
            login_count: AtomicUsize::new(0),
            connects_total: AtomicUsize::new(0),
            open_streams: AtomicUsize::new(0),
            runner,
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
            status: None,
        }
    }

    /// Send one event to every open stream (the caller holds `state`, which keeps
    /// events in order).
    fn publish_locked(&self, event: Event) {
        tracing::debug!(event = %event.name, "st2 emulator: publish");
        let event = Arc::new(event);
        let mut subs = self.subs.lock();
        subs.list
            .retain(|(_, tx)| tx.send(StreamMsg::Event(event.clone())).is_ok());
    }

    /// Publish an event from outside the execution flow.
    pub(crate) fn publish(&self, name: &str, data: String) {
        let _st = self.state.lock();
        self.publish_locked(Event {
            name: name.to_string(),
            data,
            action_ref: None,
            execution_id: None,
            status: None,
        });
    }

    /// Register a stream connection.
    pub(crate) fn subscribe(&self, tx: UnboundedSender<StreamMsg>, events: Option<String>) -> u64 {
        let mut st = self.state.lock();
        st.last_filter = events;
        let mut subs = self.subs.lock();
        subs.next_id += 1;
        let id = subs.next_id;
        subs.list.push((id, tx));
        self.connects_total.fetch_add(1, Ordering::SeqCst);
        self.open_streams.fetch_add(1, Ordering::SeqCst);
        id
    }

    /// A stream connection ended.
    pub(crate) fn unsubscribe(&self, id: u64) {
        self.subs.lock().list.retain(|(i, _)| *i != id);
        self.open_streams.fetch_sub(1, Ordering::SeqCst);
    }

    /// Close every open stream.
    pub(crate) fn close_streams(&self) {
        let list = std::mem::take(&mut self.subs.lock().list);
        for (_, tx) in list {
            let _ = tx.send(StreamMsg::Close);
        }
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
            events.push(("st2.liveaction__update", exec.liveaction_json(), status));
            events.push(("st2.execution__update", exec.to_json(), status));
        }
        let (ok, result) = super::actions::run(&exec.action_ref, &exec.parameters);
        let final_status = if ok { "succeeded" } else { "failed" };
        exec.result = Some(result);
        exec.end = Some(Utc::now());
        exec.set_status(final_status);
        events.push((
            "st2.liveaction__update",
            exec.liveaction_json(),
            final_status,
        ));
        let final_json = exec.to_json();
        events.push(("st2.execution__update", final_json.clone(), final_status));
        let announcement = announcement_for(exec, &final_json);
        for (name, data, status) in events {
            self.publish_locked(Self::exec_event(name, &data, id, status));
        }
        if let Some((name, data)) = announcement {
            self.publish_locked(Self::plain_event(&name, &data));
        }
        tracing::debug!(execution = %id, status = final_status, "st2 emulator: execution finished");
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
        let live = exec.liveaction_json();
        let json = exec.to_json();
        let announcement = announcement_for(exec, &json);
        self.publish_locked(Self::exec_event(
            "st2.liveaction__update",
            &live,
            id,
            "canceled",
        ));
        self.publish_locked(Self::exec_event(
            "st2.execution__update",
            &json,
            id,
            "canceled",
        ));
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
