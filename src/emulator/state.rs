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
use serde_json::{json, value::RawValue, Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use super::aliases::Alias;
pub(crate) use super::aliases::AliasSet;
use super::jinja::{self, Extras, Var, CLIENT_ALIAS};
use super::registry::Registry;
use super::stream::Glob;
use super::template::{default_result_message, DEFAULT_MESSAGE_READS};
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
    /// st2's `webui_base_url`: the configured one, or `https://<made-up host>`.
    pub webui_base_url: String,
    pub framing: Framing,
    pub rbac: bool,
    pub admins: Vec<String>,
    /// `(user, role)` assignments besides the admins' `admin` (with RBAC on).
    pub roles: Vec<(String, String)>,
    /// `(user, permission type)` grants from custom roles (with RBAC on). Shared and
    /// changeable while running ([`super::Emulator::grant`], [`super::Emulator::revoke`]),
    /// as an st2 admin changes a role and applies it with `st2-apply-rbac-definitions`.
    pub grants: Arc<Mutex<Vec<(String, String)>>>,
    /// `(user, action ref)` pairs without `action_execute` (with RBAC on).
    pub denied_actions: Vec<(String, String)>,
    /// `(notification route, announcement route)` of the installed notify rules.
    pub notify_rules: Vec<(String, String)>,
    pub registry: Registry,
}

/// st2's system roles in the order st2 creates them (`SystemRole`,
/// `st2common/rbac/types.py:273`, inserted in that order by `insert_system_roles`,
/// `st2common/rbac/migrations.py:33`), which is the order `get_roles_for_user` finds
/// them in (`Role.query(name__in=...)`, st2-rbac-backend `service.py:72`).
const SYSTEM_ROLES: [&str; 3] = ["system_admin", "admin", "observer"];

/// st2-rbac-backend's `READ_PERMISSION_NAMES` (`resolvers.py:61`): what `observer` grants.
const READ_PERMISSION_NAMES: [&str; 3] = ["view", "list", "search"];

/// The inquiry permissions any one of which passes a check on an existing inquiry
/// (`InquiryPermissionsResolver.user_has_resource_db_permission`, st2-rbac-backend
/// `resolvers.py:1251`: the grants are looked up for all three, whichever was asked).
const INQUIRY_RESOURCE_PERMISSIONS: [&str; 3] = ["inquiry_view", "inquiry_respond", "inquiry_all"];

impl Settings {
    /// Whether `user` is an st2 admin: `user_is_admin` is true for `system_admin` or
    /// `admin` (st2-rbac-backend `utils.py:191`); every user is one while RBAC is off
    /// (st2's no-op RBAC backend, and `user_has_role` is true when `rbac.enable` is off,
    /// `utils.py:236`).
    pub(crate) fn is_admin(&self, user: &str) -> bool {
        !self.rbac
            || self
                .roles_of(user)
                .iter()
                .any(|r| r == "system_admin" || r == "admin")
    }

    /// The roles assigned to `user` with RBAC on, as `GET /api/v1/user` lists them:
    /// [`Settings::admins`] have `admin` (st2's documented assignment for `st2admin` and
    /// `stanley`, st2docs `rbac.rst` "Enabling RBAC"; nothing in st2 assigns
    /// `system_admin` by itself), plus the [`Settings::roles`] assignments; system roles
    /// first in st2's order, then the others as assigned, each once.
    pub(crate) fn roles_of(&self, user: &str) -> Vec<String> {
        let mut assigned: Vec<&str> = Vec::new();
        if self.admins.iter().any(|a| a == user) {
            assigned.push("admin");
        }
        assigned.extend(
            self.roles
                .iter()
                .filter(|(u, _)| u == user)
                .map(|(_, r)| r.as_str()),
        );
        let mut out: Vec<String> = Vec::new();
        for r in SYSTEM_ROLES
            .iter()
            .copied()
            .filter(|r| assigned.contains(r))
            .chain(
                assigned
                    .iter()
                    .copied()
                    .filter(|r| !SYSTEM_ROLES.contains(r)),
            )
        {
            if !out.iter().any(|o| o == r) {
                out.push(r.to_string());
            }
        }
        out
    }

    /// `RBACUtils.user_has_role` (st2-rbac-backend `utils.py:224`): always true with RBAC
    /// off.
    pub(crate) fn has_role(&self, user: &str, role: &str) -> bool {
        !self.rbac || self.roles_of(user).iter().any(|r| r == role)
    }

    /// `_user_has_system_role_permission` (st2-rbac-backend `resolvers.py:137`):
    /// `system_admin` and `admin` have every permission, `observer` the `view`, `list`
    /// and `search` ones (the name is what follows the last `_`,
    /// `PermissionType.get_permission_name`, `st2common/rbac/types.py:194`).
    fn has_system_role_permission(&self, user: &str, permission_type: &str) -> bool {
        let roles = self.roles_of(user);
        let has = |r: &str| roles.iter().any(|x| x == r);
        let name = permission_type.rsplit('_').next().unwrap_or("");
        has("system_admin")
            || has("admin")
            || (has("observer") && READ_PERMISSION_NAMES.contains(&name))
    }

    fn granted(&self, user: &str, permission_type: &str) -> bool {
        self.grants
            .lock()
            .iter()
            .any(|(u, p)| u == user && p == permission_type)
    }

    /// A global ("list") permission such as `inquiry_list`, as the router checks an
    /// endpoint's `x-permissions` (`st2common/router.py:445`, only with `rbac.enable`)
    /// through `_user_has_global_permission` (st2-rbac-backend `resolvers.py:102`): a
    /// system role, or a grant of exactly that permission type (`inquiry_all` does not
    /// give `inquiry_list`).
    pub(crate) fn has_global_permission(&self, user: &str, permission_type: &str) -> bool {
        !self.rbac
            || self.has_system_role_permission(user, permission_type)
            || self.granted(user, permission_type)
    }

    /// `inquiry_view` / `inquiry_respond` on an existing inquiry
    /// (`user_has_resource_db_permission`: true with RBAC off, st2-rbac-backend
    /// `utils.py:301`; then `InquiryPermissionsResolver`, `resolvers.py:1239`): a system
    /// role, or a grant of any of `inquiry_view`, `inquiry_respond`, `inquiry_all`. (The
    /// resolver's last resort, grants on the parent workflow's action or pack, never
    /// applies: the emulator's inquiries have no parent.)
    pub(crate) fn has_inquiry_permission(&self, user: &str, permission_type: &str) -> bool {
        !self.rbac
            || self.has_system_role_permission(user, permission_type)
            || INQUIRY_RESOURCE_PERMISSIONS
                .iter()
                .any(|p| self.granted(user, p))
    }

    /// A permission on an execution, as `_get_one_by_id` asks for it
    /// (`st2api/controllers/resource.py:321-327`: before it looks at whether the execution
    /// exists) through st2-rbac-backend's `ExecutionPermissionsResolver`
    /// (`resolvers.py:805-873`): true with RBAC off (`utils.py:301`); then a system role
    /// that has it (`admin`, `system_admin`; `observer` for `execution_view`); then the
    /// action permission it stands for on the execution's action or its pack —
    /// `execution_view` → `action_view`, `execution_stop` and `execution_re_run` →
    /// `action_execute`, `execution_all` → `action_all`, each also given by
    /// `action_all`. In the emulator's model a user has `action_view` by a grant
    /// ([`Settings::grants`], not per resource) and `action_execute` on every action
    /// [`Settings::denied_actions`] does not deny them, grants or not (as
    /// `aliasexecution` checks it).
    ///
    /// `None` when st2 fails: the resolver reads `resource_db["action"]` of the execution
    /// it was given, which is `None` for an unknown id (`TypeError`, a 500) — so with RBAC
    /// on, only users whose role decides it alone get the 404.
    pub(crate) fn execution_permission(
        &self,
        user: &str,
        permission_type: &str,
        action_ref: Option<&str>,
    ) -> Option<bool> {
        if !self.rbac || self.has_system_role_permission(user, permission_type) {
            return Some(true);
        }
        let action_ref = action_ref?;
        let all = self.granted(user, "action_all");
        Some(match permission_type {
            "execution_view" => all || self.granted(user, "action_view"),
            "execution_stop" | "execution_re_run" => !self
                .denied_actions
                .iter()
                .any(|(u, r)| u == user && r == action_ref),
            _ => all,
        })
    }

    /// `<webui_base_url>/#/history/<id>/general` (`st2common/services/executions.py`).
    pub(crate) fn web_url_for(&self, id: &str) -> String {
        format!(
            "{}/#/history/{id}/general",
            self.webui_base_url.trim_end_matches('/')
        )
    }

    /// The runner type of an action (`python-script` for one the registry lacks).
    fn runner_for(&self, action_ref: &str) -> String {
        self.registry
            .get(action_ref)
            .map_or_else(|| "python-script".to_string(), |a| a.runner.clone())
    }

    /// The parameters of `action_ref` (its own and its runner's) marked `secret: true`,
    /// which st2 masks in every execution it serves (`ActionExecutionDB.mask_secrets`,
    /// st2common/models/db/execution.py, through `get_secret_parameters` in
    /// st2common/util/secrets.py).
    fn secret_parameters_for(&self, action_ref: &str) -> Vec<String> {
        self.registry
            .get(action_ref)
            .map(|a| a.secret_parameters().to_vec())
            .unwrap_or_default()
    }
}

/// st2's `MASKED_ATTRIBUTE_VALUE` (st2common/constants/secrets.py).
const MASKED_ATTRIBUTE_VALUE: &str = "********";

/// An execution's parameters as st2 serves them without `show_secrets`: each secret
/// parameter's value replaced by [`MASKED_ATTRIBUTE_VALUE`].
struct MaskedParameters<'a>(&'a Map<String, Value>, &'a [String]);

impl serde::Serialize for MaskedParameters<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            if self.1.contains(k) {
                m.serialize_entry(k, MASKED_ATTRIBUTE_VALUE)?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

/// Who a request authenticated as (no `Debug`: it may hold a token).
#[derive(Clone)]
pub(crate) struct Principal {
    pub user: String,
    pub kind: CredentialKind,
    /// Where the credential was found, as st2's router records it in `auth_info`
    /// (`st2common/router.py:382`: the security definition's `in`): `header` or
    /// `query` (the `auth-token` cookie's definition says `in: header`, with `x-in:
    /// cookie`; `openapi.yaml.j2:5572`).
    pub location: &'static str,
    /// The token and its expiry, when a token was used (for the `auth-token` cookie).
    pub token: Option<(String, DateTime<Utc>)>,
}

#[derive(Clone)]
struct TokenInfo {
    user: String,
    expiry: DateTime<Utc>,
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
    /// Each open stream: its id, its queue, and the event names it asked for.
    list: Vec<(u64, UnboundedSender<StreamMsg>, Arc<[Glob]>)>,
}

/// What the execution-runner thread does when a job is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum JobKind {
    /// The execution's delay is over: run it ([`Shared::complete_execution`]).
    Complete,
    /// `ops.long_job` prints its next line ([`Shared::long_job_tick`]).
    Tick,
    /// An action runner handles a `canceling` execution ([`Shared::finish_cancel`]).
    CancelDispatch,
}

/// A job for the execution-runner thread.
#[derive(Debug)]
pub(crate) struct RunJob {
    pub due: Instant,
    pub execution_id: String,
    pub kind: JobKind,
}

/// How long after `DELETE /api/v1/executions/{id}` has left a running execution
/// `canceling` an action runner takes it to `canceled`: st2api publishes the liveaction's
/// status (`LiveAction.publish_status`, `st2common/services/action.py:264-265`), an action
/// runner consumes it (`ActionExecutionDispatcher.process`, `st2actions/worker.py:131-138`:
/// `canceling` → `_cancel_action`) — a message-bus hop.
const CANCEL_DISPATCH_DELAY: Duration = Duration::from_millis(50);

/// What `DELETE /api/v1/executions/{id}` found and did
/// (`ActionExecutionsController.delete`, `st2api/controllers/v1/actionexecutions.py:948-1015`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CancelResult {
    /// No such execution (the 404 of `_get_one_by_id`).
    Unknown,
    /// Already `canceled`: the execution, unchanged (actionexecutions.py:989-995).
    AlreadyCanceled(Value),
    /// Cancellation requested (`request_cancellation`): the execution as it is now,
    /// `canceling` or `canceled` (actionexecutions.py:1003-1015).
    Requested(Value),
    /// Not in `LIVEACTION_CANCELABLE_STATES`: its status, for st2's
    /// `abort(http_client.OK, "Action cannot be canceled. State = <status>.")`
    /// (actionexecutions.py:997-1001).
    NotCancelable(String),
}

/// st2's `LIVEACTION_CANCELABLE_STATES` (`st2common/constants/action.py:100-108`).
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

/// One emulated execution.
struct Exec {
    id: String,
    liveaction_id: String,
    action_ref: String,
    runner: String,
    parameters: Map<String, Value>,
    /// The parameters st2 masks when it serves the execution.
    secret_parameters: Vec<String>,
    context: Value,
    notify: Value,
    status: String,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
    result: Option<Value>,
    log: Vec<(String, DateTime<Utc>)>,
    web_url: String,
    route: Option<String>,
    /// The alias's id (`context.action_alias_ref.id`): `format_execution_result`
    /// looks the alias up again when the execution completes.
    alias_id: Option<String>,
    user: Option<String>,
    source_channel: String,
    source_context: Option<Value>,
    /// Top-level fields only rule-triggered executions have (`rule`, `trigger`,
    /// `trigger_type`, `trigger_instance`: st2common/services/executions.py).
    extra: Map<String, Value>,
    /// Its output records, oldest first (`ActionExecutionOutputDB`).
    output: Vec<OutputRecord>,
    /// The command of an `ops.long_job` execution while it runs.
    long_run: Option<LongRun>,
}

/// One `ActionExecutionOutputDB` record (`st2common/models/db/execution.py:182-218`): a
/// line the runner read, stored by `store_execution_output_data`
/// (`st2common/services/action.py:497-540`).
struct OutputRecord {
    id: String,
    output_type: &'static str,
    data: String,
    timestamp: DateTime<Utc>,
}

/// The command of an `ops.long_job` execution, from its start to its exit. It is not
/// tied to the execution's status: cancelling does not stop it (see
/// [`Shared::long_job_tick`]).
struct LongRun {
    /// Lines it prints in all.
    total: u64,
    /// Lines printed so far.
    done: u64,
    /// Time between two lines.
    tick: Duration,
    /// Everything printed so far.
    stdout: String,
}

/// `ActionExecutionOutputAPI.from_model` (`st2common/models/api/execution.py:200-223`):
/// the record's fields in the model's order, `timestamp` as `isotime.format(...,
/// offset=False)` (`...Z`), `delay` (never set by the runners) left out as `None`.
fn output_json(exec: &Exec, rec: &OutputRecord) -> Value {
    json!({
        "id": rec.id,
        "execution_id": exec.id,
        "action_ref": exec.action_ref,
        "runner_ref": exec.runner,
        "timestamp": isotime(rec.timestamp),
        "output_type": rec.output_type,
        "data": rec.data,
    })
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
        serde_json::to_value(ExecutionView {
            exec: self,
            only: None,
        })
        .unwrap_or(Value::Null)
    }

    /// `InquiryResponseAPI`: `id` and the inquiry fields of the result.
    fn inquiry_json(&self) -> Value {
        let field = |k: &str| {
            self.result
                .as_ref()
                .and_then(|r| r.get(k))
                .cloned()
                .unwrap_or(Value::Null)
        };
        json!({"id": self.id, "route": field("route"), "ttl": field("ttl"),
               "users": field("users"), "roles": field("roles"), "schema": field("schema")})
    }

    /// The `ActionExecutionAPI` object with only the top-level attributes `only` names.
    fn to_json_only(&self, only: &[&str]) -> Value {
        serde_json::to_value(ExecutionView {
            exec: self,
            only: Some(only),
        })
        .unwrap_or(Value::Null)
    }

    /// The `LiveActionAPI` object (`action` is a ref string).
    fn liveaction_json(&self) -> Value {
        serde_json::to_value(LiveActionView(self)).unwrap_or(Value::Null)
    }
}

/// An execution as `ActionExecutionAPI` serialises it, borrowed: publishing an update
/// serialises the execution without copying its parameters, context and result first.
/// With `only`, just those top-level attributes (a read with `include_attributes`).
struct ExecutionView<'a> {
    exec: &'a Exec,
    only: Option<&'a [&'a str]>,
}

impl ExecutionView<'_> {
    fn keeps(&self, name: &str) -> bool {
        self.only.is_none_or(|only| only.contains(&name))
    }
}

impl serde::Serialize for ExecutionView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        /// The execution's `liveaction` field.
        #[derive(serde::Serialize)]
        struct Nested<'a> {
            id: &'a str,
            action: &'a str,
            action_is_workflow: bool,
            parameters: MaskedParameters<'a>,
            #[serde(skip_serializing_if = "Value::is_null")]
            notify: &'a Value,
        }
        let e = self.exec;
        let mut m = s.serialize_map(None)?;
        if self.keeps("id") {
            m.serialize_entry("id", &e.id)?;
        }
        if self.keeps("action") {
            m.serialize_entry("action", &e.action_json())?;
        }
        if self.keeps("runner") {
            m.serialize_entry(
                "runner",
                &json!({"name": e.runner, "enabled": true,
                        "description": format!("{} runner (emulated)", e.runner)}),
            )?;
        }
        if self.keeps("liveaction") {
            m.serialize_entry(
                "liveaction",
                &Nested {
                    id: &e.liveaction_id,
                    action: &e.action_ref,
                    action_is_workflow: false,
                    parameters: MaskedParameters(&e.parameters, &e.secret_parameters),
                    notify: &e.notify,
                },
            )?;
        }
        if self.keeps("status") {
            m.serialize_entry("status", &e.status)?;
        }
        if self.keeps("start_timestamp") {
            m.serialize_entry("start_timestamp", &isotime(e.start))?;
        }
        if let Some(end) = e.end {
            if self.keeps("end_timestamp") {
                m.serialize_entry("end_timestamp", &isotime(end))?;
            }
            if self.keeps("elapsed_seconds") {
                let elapsed = (end - e.start).to_std().map_or(0.0, |d| d.as_secs_f64());
                m.serialize_entry("elapsed_seconds", &elapsed)?;
            }
        }
        if !e.parameters.is_empty() && self.keeps("parameters") {
            m.serialize_entry(
                "parameters",
                &MaskedParameters(&e.parameters, &e.secret_parameters),
            )?;
        }
        if self.keeps("context") {
            m.serialize_entry("context", &e.context)?;
        }
        if !e.notify.is_null() && self.keeps("notify") {
            m.serialize_entry("notify", &e.notify)?;
        }
        for (k, v) in e.extra.iter().filter(|(k, _)| self.keeps(k)) {
            m.serialize_entry(k, v)?;
        }
        if let Some(r) = e.result.as_ref().filter(|r| super::util::py_truthy(r)) {
            if self.keeps("result") {
                m.serialize_entry("result", r)?;
            }
            if self.keeps("result_size") {
                let size = serde_json::to_string(r).map_or(0, |s| s.len());
                m.serialize_entry("result_size", &size)?;
            }
        }
        if self.keeps("web_url") {
            m.serialize_entry("web_url", &e.web_url)?;
        }
        if self.keeps("log") {
            let log: Vec<Value> = e
                .log
                .iter()
                .map(|(s, t)| json!({"status": s, "timestamp": isotime(*t)}))
                .collect();
            m.serialize_entry("log", &log)?;
        }
        m.end()
    }
}

/// An execution as `LiveActionAPI` serialises it, borrowed (see [`ExecutionView`]).
struct LiveActionView<'a>(&'a Exec);

impl serde::Serialize for LiveActionView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &e.liveaction_id)?;
        m.serialize_entry("action", &e.action_ref)?;
        m.serialize_entry("action_is_workflow", &false)?;
        m.serialize_entry("status", &e.status)?;
        m.serialize_entry("start_timestamp", &isotime(e.start))?;
        if let Some(end) = e.end {
            m.serialize_entry("end_timestamp", &isotime(end))?;
        }
        if !e.parameters.is_empty() {
            m.serialize_entry(
                "parameters",
                &MaskedParameters(&e.parameters, &e.secret_parameters),
            )?;
        }
        m.serialize_entry("context", &e.context)?;
        if !e.notify.is_null() {
            // The liveaction spells it `on-complete`.
            let mut notify = e.notify.clone();
            if let Some(obj) = notify.as_object_mut() {
                if let Some(oc) = obj.remove("on_complete") {
                    obj.insert("on-complete".into(), oc);
                }
            }
            m.serialize_entry("notify", &notify)?;
        }
        if let Some(r) = &e.result {
            if super::util::py_truthy(r) {
                m.serialize_entry("result", r)?;
            }
        }
        m.serialize_entry(
            "runner_info",
            &json!({"hostname": "st2-emulator", "pid": std::process::id()}),
        )?;
        m.end()
    }
}

/// The data behind an alias execution request, already validated.
pub(crate) struct NewExecution {
    pub alias: Arc<Alias>,
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
    /// While `true`, every `/api` and `/auth` answer waits (computed, not yet sent).
    responses_held: watch::Sender<bool>,
    /// `POST /api/v1/aliasexecution` requests being answered now, and the most at once.
    alias_runs_in_flight: AtomicUsize,
    alias_runs_in_flight_max: AtomicUsize,
    /// The `X-Request-ID` every answer carries instead of the request's own (a proxy that
    /// sets its own id); `None`: st2's `RequestIDMiddleware` alone.
    request_id_override: Mutex<Option<String>>,
    /// The background-traffic interval; the ticker (`background.rs`) watches it and
    /// ends when this sender is dropped with the rest of `Shared`.
    background: watch::Sender<Option<Duration>>,
    background_events: AtomicUsize,
    /// Every `st2.announcement__*` event published, connected listeners or not.
    announced: Mutex<Vec<(String, String)>>,
    /// Time between two lines of an `ops.long_job` started from now on.
    long_job_tick: Mutex<Duration>,
    /// While set, a running `ops.long_job` prints nothing and does not end: a test's way to
    /// keep a job running for as long as its scenario needs ([`Shared::hold_long_jobs`]).
    long_jobs_held: AtomicBool,
    /// While held, executions due to finish wait here, by id ([`Shared::hold_completions`]).
    completions_held: Mutex<Option<Vec<String>>>,
}

/// An alias run being answered ([`Shared::alias_run_started`]).
pub(crate) struct AliasRunInFlight(Arc<Shared>);

impl Drop for AliasRunInFlight {
    fn drop(&mut self) {
        self.0.alias_runs_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
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
            responses_held: watch::Sender::new(false),
            alias_runs_in_flight: AtomicUsize::new(0),
            alias_runs_in_flight_max: AtomicUsize::new(0),
            request_id_override: Mutex::new(None),
            background: watch::Sender::new(background),
            background_events: AtomicUsize::new(0),
            long_job_tick: Mutex::new(super::actions::LONG_JOB_TICK),
            long_jobs_held: AtomicBool::new(false),
            completions_held: Mutex::new(None),
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
                location: "header",
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
                location: "header",
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
            .retain(|(_, tx, _)| tx.send(StreamMsg::Event(event.clone())).is_ok());
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
        wants: Arc<[Glob]>,
    ) -> Option<u64> {
        let mut st = self.state.lock();
        let mut subs = self.subs.lock();
        if !self.stream_up.load(Ordering::SeqCst) {
            return None;
        }
        st.last_filter = events;
        subs.next_id += 1;
        let id = subs.next_id;
        subs.list.push((id, tx, wants));
        self.connects_total.fetch_add(1, Ordering::SeqCst);
        self.open_streams.fetch_add(1, Ordering::SeqCst);
        Some(id)
    }

    /// A stream connection ended.
    pub(crate) fn unsubscribe(&self, id: u64) {
        self.subs.lock().list.retain(|(i, _, _)| *i != id);
        self.open_streams.fetch_sub(1, Ordering::SeqCst);
    }

    /// End every open stream with `msg` (`Close` or `Abort`).
    pub(crate) fn close_streams(&self, msg: &StreamMsg) {
        let list = std::mem::take(&mut self.subs.lock().list);
        for (_, tx, _) in list {
            let _ = tx.send(msg.clone());
        }
    }

    /// Tell every open stream to cut its next event short.
    pub(crate) fn cut_streams(&self) {
        let subs = self.subs.lock();
        for (_, tx, _) in &subs.list {
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

    pub(crate) fn set_request_id_override(&self, id: Option<String>) {
        *self.request_id_override.lock() = id;
    }

    pub(crate) fn request_id_override(&self) -> Option<String> {
        self.request_id_override.lock().clone()
    }

    pub(crate) fn set_granted(&self, user: &str, permission_type: &str, on: bool) {
        let mut grants = self.settings.grants.lock();
        grants.retain(|(u, p)| !(u == user && p == permission_type));
        if on {
            grants.push((user.to_string(), permission_type.to_string()));
        }
    }

    pub(crate) fn response_delay(&self) -> Duration {
        *self.response_delay.lock()
    }

    pub(crate) fn hold_responses(&self, held: bool) {
        self.responses_held.send_replace(held);
    }

    /// Returns once answers are no longer held (at once when they are not).
    pub(crate) async fn responses_released(&self) {
        let mut held = self.responses_held.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = held.wait_for(|held| !held).await;
    }

    /// Counts an alias run being answered until the returned guard is dropped.
    pub(crate) fn alias_run_started(self: &Arc<Self>) -> AliasRunInFlight {
        let now = self.alias_runs_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.alias_runs_in_flight_max
            .fetch_max(now, Ordering::SeqCst);
        AliasRunInFlight(self.clone())
    }

    pub(crate) fn alias_runs_in_flight_max(&self) -> usize {
        self.alias_runs_in_flight_max.load(Ordering::SeqCst)
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
    /// return its id and `ActionExecutionAPI` object, serialised.
    pub(crate) fn create_execution(&self, n: NewExecution) -> (String, Box<RawValue>) {
        let id = object_id();
        let now = Utc::now();
        let context = json!({
            "action_alias_ref": {"id": n.alias.id, "name": n.alias.name},
            "api_user": n.user,
            "user": n.principal.user,
            "source_channel": n.source_channel,
        });
        let notify = json!({"on_complete": {
            "routes": [n.route],
            "data": {"user": n.user, "source_channel": n.source_channel,
                     "source_context": n.source_context},
        }});
        let web_url = self.settings.web_url_for(&id);
        let exec = Exec {
            id: id.clone(),
            liveaction_id: object_id(),
            action_ref: n.alias.action_ref.clone(),
            runner: self.settings.runner_for(&n.alias.action_ref),
            secret_parameters: self.settings.secret_parameters_for(&n.alias.action_ref),
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
            alias_id: Some(n.alias.id.clone()),
            user: n.user.clone(),
            source_channel: n.source_channel.clone(),
            source_context: n.source_context.clone(),
            extra: Map::new(),
            output: Vec::new(),
            long_run: None,
        };
        let snapshot = serde_json::value::to_raw_value(&ExecutionView {
            exec: &exec,
            only: None,
        })
        .unwrap_or_else(|_| RawValue::NULL.to_owned());
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
        let created = [
            self.exec_update("st2.liveaction__create", &exec),
            self.exec_update("st2.execution__create", &exec),
        ];
        let idx = st.executions.len();
        st.by_id.insert(id.clone(), idx);
        st.executions.push(exec);
        st.records.push(record);
        for event in created {
            self.publish_locked(event);
        }
        tracing::debug!(execution = %id, "st2 emulator: execution requested");
        (id, snapshot)
    }

    /// An execution or liveaction event with `data` as its body (left unserialised, as in
    /// [`Self::exec_update`], when no stream asked for `name`).
    fn exec_event(&self, name: &str, data: &Value, id: &str, status: &str) -> Event {
        let action_ref = match data.get("action") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(a) => a.get("ref").and_then(Value::as_str).map(str::to_string),
            None => None,
        };
        Event {
            name: name.to_string(),
            data: if self.wanted(name) {
                serde_json::to_string(data).unwrap_or_else(|_| "null".into())
            } else {
                String::new()
            },
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
        if !self.schedule(id, JobKind::Complete, self.settings.execution_delay) {
            tracing::debug!("st2 emulator: runner gone; completing inline");
            self.complete_execution(id);
        }
    }

    /// Queue a job for the runner thread; `false` when the runner is gone.
    fn schedule(&self, id: &str, kind: JobKind, after: Duration) -> bool {
        let job = RunJob {
            due: Instant::now() + after,
            execution_id: id.to_string(),
            kind,
        };
        self.runner.send(job).is_ok()
    }

    /// Run a due job (the runner thread).
    pub(crate) fn run_job(&self, kind: JobKind, id: &str) {
        match kind {
            JobKind::Complete => {
                if let Some(parked) = self.completions_held.lock().as_mut() {
                    parked.push(id.to_owned());
                    return;
                }
                self.complete_execution(id);
            }
            JobKind::Tick => self.long_job_tick(id),
            JobKind::CancelDispatch => self.finish_cancel(id),
        }
    }

    /// Store one output line of `exec` and make its `st2.execution.output__create` event:
    /// `ActionExecutionOutput.add_or_update(output_db, publish=True)`
    /// (`st2common/services/action.py:536-538`), which st2stream's listener turns into that
    /// event (`st2common/stream/listener.py:231-235`). The event is in no `events=` list
    /// unless asked for: st2stream's `DEFAULT_EVENTS_WHITELIST`
    /// (`st2stream/controllers/v1/stream.py:28-36`) does not name it.
    fn record_output(&self, exec: &mut Exec, output_type: &'static str, data: String) -> Event {
        let rec = OutputRecord {
            id: object_id(),
            output_type,
            data,
            timestamp: Utc::now(),
        };
        let name = "st2.execution.output__create";
        let body = if self.wanted(name) {
            serde_json::to_string(&output_json(exec, &rec)).unwrap_or_else(|_| "null".into())
        } else {
            String::new()
        };
        let event = Event {
            name: name.to_string(),
            data: body,
            action_ref: Some(exec.action_ref.clone()),
            execution_id: Some(exec.id.clone()),
            body_id: Some(rec.id.clone()),
            status: None,
        };
        exec.output.push(rec);
        event
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
        if exec.action_ref == super::actions::LONG_JOB {
            if exec.status == "requested" {
                self.start_long_job(exec);
            }
            return;
        }
        let mut events = Vec::new();
        for status in ["scheduled", "running"] {
            exec.set_status(status);
            events.extend(self.status_events(exec));
        }
        let (ok, result) = super::actions::run(&exec.action_ref, &exec.parameters);
        // What the runner read while it ran, stored and published line by line.
        for (output_type, line) in super::actions::output_lines(&exec.runner, &result) {
            events.push(self.record_output(exec, output_type, line));
        }
        let final_status = if ok { "succeeded" } else { "failed" };
        exec.result = Some(result);
        exec.end = Some(Utc::now());
        exec.set_status(final_status);
        events.extend(self.status_events(exec));
        let aliases = self.aliases();
        let announcements = announcements_for(exec, &self.settings, &aliases);
        for event in events {
            self.publish_locked(event);
        }
        for (name, data) in announcements {
            self.publish_locked(Self::plain_event(&name, &data));
        }
        tracing::debug!(execution = %id, status = final_status, "st2 emulator: execution finished");
    }

    // ----- ops.long_job ------------------------------------------------------------

    /// Time between two lines of an `ops.long_job` started from now on.
    pub(crate) fn set_long_job_tick(&self, tick: Duration) {
        *self.long_job_tick.lock() = tick.max(Duration::from_millis(1));
    }

    /// Holds (or lets go) every running `ops.long_job`: while held, each tick prints
    /// nothing and waits for the next one, so a job stays `running` however slow the
    /// machine; let go, it goes on from the line where it stopped.
    pub(crate) fn hold_long_jobs(&self, held: bool) {
        self.long_jobs_held.store(held, Ordering::SeqCst);
    }

    /// Holds (or lets go) the end of every execution: while held, an execution whose
    /// delay is over stays where it is; let go, those that waited finish, in order.
    pub(crate) fn hold_completions(&self, held: bool) {
        let parked = {
            let mut slot = self.completions_held.lock();
            if held {
                slot.get_or_insert_with(Vec::new);
                return;
            }
            slot.take().unwrap_or_default()
        };
        for id in parked {
            self.complete_execution(&id);
        }
    }

    /// An `ops.long_job` execution's delay is over: `scheduled` → `running` (one update
    /// pair each), and its command starts printing.
    fn start_long_job(&self, exec: &mut Exec) {
        let mut events = Vec::new();
        for status in ["scheduled", "running"] {
            exec.set_status(status);
            events.extend(self.status_events(exec));
        }
        let tick = *self.long_job_tick.lock();
        exec.long_run = Some(LongRun {
            total: super::actions::long_job_steps(&exec.parameters),
            done: 0,
            tick,
            stdout: String::new(),
        });
        for event in events {
            self.publish_locked(event);
        }
        if !self.schedule(&exec.id, JobKind::Tick, tick) {
            tracing::debug!("st2 emulator: runner gone; the long job will not print");
        }
        tracing::debug!(execution = %exec.id, "st2 emulator: long job running");
    }

    /// `ops.long_job` prints its next line: stored and published as the local runner does
    /// (`read_and_store_stream`, `st2common/runners/utils.py:161-180`). After the last line
    /// the command exits 0 and the action runner records the result
    /// (`RunnerContainer._do_run` → `_update_status`, `st2actions/container/base.py:159-163`):
    /// `succeeded`, with its updates and, when chatops would, the announcement.
    ///
    /// Cancelling does not stop the command: the local runner does not override
    /// `ActionRunner.cancel` (`st2common/runners/base.py:188-193`), which only reports
    /// `canceled`, so the command goes on printing — each line still stored and published
    /// — until it exits. Its exit then changes nothing: `update_liveaction_status` refuses to
    /// move a `canceled` liveaction (`st2common/util/action_db.py:273-285`) and
    /// `update_execution` skips a completed execution without publishing
    /// (`st2common/services/executions.py:200-206`). An execution still `canceling` when the
    /// command exits (the runner has not handled the cancellation yet) becomes `succeeded`
    /// (`_update_live_action_db`, `st2actions/container/base.py:322-325`: `canceling` is no
    /// completed state).
    pub(crate) fn long_job_tick(&self, id: &str) {
        let mut st = self.state.lock();
        let Some(&idx) = st.by_id.get(id) else {
            return;
        };
        let Some(exec) = st.executions.get_mut(idx) else {
            return;
        };
        let Some(run) = exec.long_run.as_mut() else {
            return;
        };
        if self.long_jobs_held.load(Ordering::SeqCst) {
            let tick = run.tick;
            if !self.schedule(id, JobKind::Tick, tick) {
                tracing::debug!("st2 emulator: runner gone; the held long job stays running");
            }
            return;
        }
        run.done += 1;
        let line = super::actions::long_job_line(run.done, run.total);
        run.stdout.push_str(&line);
        let more = run.done < run.total;
        let tick = run.tick;
        let mut events = vec![self.record_output(exec, "stdout", line)];
        if more {
            for event in events {
                self.publish_locked(event);
            }
            if !self.schedule(id, JobKind::Tick, tick) {
                tracing::debug!("st2 emulator: runner gone; the long job stops printing");
            }
            return;
        }
        let Some(run) = exec.long_run.take() else {
            return;
        };
        let mut announcements = Vec::new();
        if matches!(exec.status.as_str(), "running" | "canceling") {
            exec.result = Some(super::actions::long_job_result(&run.stdout));
            exec.end = Some(Utc::now());
            exec.set_status("succeeded");
            events.extend(self.status_events(exec));
            let aliases = self.aliases();
            announcements = announcements_for(exec, &self.settings, &aliases);
        }
        for event in events {
            self.publish_locked(event);
        }
        for (name, data) in announcements {
            self.publish_locked(Self::plain_event(&name, &data));
        }
        tracing::debug!(execution = %id, status = %exec.status, "st2 emulator: long job's command exited");
    }

    /// An action runner handles a `canceling` execution (`_cancel_action`,
    /// `st2actions/worker.py:237-265` → `RunnerContainer._do_cancel`,
    /// `st2actions/container/base.py:177-210`): the local and Python runners keep
    /// `ActionRunner.cancel` (`st2common/runners/base.py:188-193`), which answers
    /// `canceled` with the liveaction's result and context as they are (the
    /// `request_cancellation` message), so the execution becomes `canceled` (end time
    /// set, one update pair) and, being complete, is announced by the notifier and the
    /// chatops rules like any other end (`st2actions/notifier/notifier.py:88-106`; the
    /// chatops `notify` rule's only criterion is the route,
    /// `contrib/chatops/rules/notify_hubot.yaml`). Nothing happens for an execution
    /// that is no longer `canceling`.
    pub(crate) fn finish_cancel(&self, id: &str) {
        let mut st = self.state.lock();
        let Some(&idx) = st.by_id.get(id) else {
            return;
        };
        let Some(exec) = st.executions.get_mut(idx) else {
            return;
        };
        if exec.status != "canceling" {
            return;
        }
        exec.end = Some(Utc::now());
        exec.set_status("canceled");
        let aliases = self.aliases();
        let announcements = announcements_for(exec, &self.settings, &aliases);
        for event in self.status_events(exec) {
            self.publish_locked(event);
        }
        for (name, data) in announcements {
            self.publish_locked(Self::plain_event(&name, &data));
        }
        tracing::debug!(execution = %id, "st2 emulator: execution canceled by its runner");
    }

    // ----- inquiries -------------------------------------------------------------

    /// An execution of `core.ask` (runner `inquirer`) that has reached `pending`, as the
    /// inquirer runner leaves it (`contrib/runners/inquirer_runner`): its result holds
    /// `schema`, `roles`, `users`, `route` and `ttl`. Publishes its create and update
    /// events; it never completes on its own.
    pub(crate) fn create_inquiry(&self, spec: &super::InquirySpec) -> String {
        let now = Utc::now();
        let id = object_id();
        let schema = spec.schema.clone().unwrap_or_else(|| {
            json!({"title": "response_data", "type": "object", "properties": {"continue": {
                "type": "boolean", "description": "Would you like to continue the workflow?",
                "required": true}}})
        });
        let result = json!({"schema": schema, "roles": spec.roles, "users": spec.users,
                            "route": spec.route, "ttl": spec.ttl});
        let parameters = result.as_object().cloned().unwrap_or_default();
        let mut exec = Exec {
            id: id.clone(),
            liveaction_id: object_id(),
            action_ref: "core.ask".into(),
            runner: "inquirer".into(),
            parameters,
            secret_parameters: Vec::new(),
            context: json!({"user": "stanley"}),
            notify: Value::Null,
            status: "requested".into(),
            start: now,
            end: None,
            result: None,
            log: vec![("requested".into(), now)],
            web_url: self.settings.web_url_for(&id),
            route: None,
            alias_id: None,
            user: None,
            source_channel: String::new(),
            source_context: None,
            extra: Map::new(),
            output: Vec::new(),
            long_run: None,
        };
        let mut st = self.state.lock();
        let mut events = vec![
            self.exec_event(
                "st2.liveaction__create",
                &exec.liveaction_json(),
                &id,
                "requested",
            ),
            self.exec_event("st2.execution__create", &exec.to_json(), &id, "requested"),
        ];
        for status in ["scheduled", "running"] {
            exec.set_status(status);
            events.extend(self.status_events(&exec));
        }
        exec.result = Some(result);
        exec.set_status("pending");
        events.extend(self.status_events(&exec));
        let idx = st.executions.len();
        st.by_id.insert(id.clone(), idx);
        st.executions.push(exec);
        for event in events {
            self.publish_locked(event);
        }
        tracing::debug!(inquiry = %id, "st2 emulator: inquiry pending");
        id
    }

    /// `InquiryResponseAPI` of every pending inquiry, in DB order.
    pub(crate) fn pending_inquiries(&self) -> Vec<Value> {
        let st = self.state.lock();
        st.executions
            .iter()
            .filter(|e| e.status == "pending" && e.runner == "inquirer")
            .map(Exec::inquiry_json)
            .collect()
    }

    /// An execution looked up as an inquiry: `(runner, status, InquiryResponseAPI)`.
    pub(crate) fn inquiry(&self, id: &str) -> Option<(String, String, Value)> {
        let st = self.state.lock();
        let e = st.executions.get(*st.by_id.get(id)?)?;
        Some((e.runner.clone(), e.status.clone(), e.inquiry_json()))
    }

    /// `inquiry_service.respond`: the response goes into the result and the execution
    /// succeeds (a standalone `core.ask` has no parent workflow to resume).
    pub(crate) fn respond_inquiry(&self, id: &str, response: &Value) -> bool {
        let mut st = self.state.lock();
        let Some(&idx) = st.by_id.get(id) else {
            return false;
        };
        let Some(exec) = st.executions.get_mut(idx) else {
            return false;
        };
        let mut result = exec.result.clone().unwrap_or_else(|| json!({}));
        if let Some(m) = result.as_object_mut() {
            m.insert("response".into(), response.clone());
        }
        exec.result = Some(result);
        exec.end = Some(Utc::now());
        exec.set_status("succeeded");
        for event in self.status_events(exec) {
            self.publish_locked(event);
        }
        true
    }

    /// The response an inquiry received, once answered.
    pub(crate) fn inquiry_response(&self, id: &str) -> Option<Value> {
        let st = self.state.lock();
        let e = st.executions.get(*st.by_id.get(id)?)?;
        if e.runner != "inquirer" {
            return None;
        }
        e.result.as_ref()?.get("response").cloned()
    }

    // ----- background executions ------------------------------------------------

    /// Start a rule-triggered execution (`background.rs`): publish its
    /// `st2.liveaction__create` / `st2.execution__create` (status `requested`) and
    /// its `scheduled` updates. It is not stored: it is not in
    /// [`Shared::records`] and `GET /api/v1/executions/{id}` does not know it.
    pub(crate) fn background_start(&self, n: NewBackground) -> BackgroundRun {
        let now = Utc::now();
        let id = object_id();
        let web_url = self.settings.web_url_for(&id);
        let mut exec = Exec {
            id,
            liveaction_id: object_id(),
            runner: self.settings.runner_for(&n.action_ref),
            secret_parameters: self.settings.secret_parameters_for(&n.action_ref),
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
            alias_id: None,
            user: None,
            source_channel: String::new(),
            source_context: None,
            extra: n.extra,
            output: Vec::new(),
            long_run: None,
        };
        let _st = self.state.lock();
        let id = exec.id.clone();
        let mut events = vec![
            self.exec_event(
                "st2.liveaction__create",
                &exec.liveaction_json(),
                &id,
                "requested",
            ),
            self.exec_event("st2.execution__create", &exec.to_json(), &id, "requested"),
        ];
        exec.set_status("scheduled");
        events.extend(self.status_events(&exec));
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
        events.extend(self.status_events(&exec));
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
        events.extend(self.status_events(&exec));
        self.publish_background(events);
    }

    /// The `st2.liveaction__update` and `st2.execution__update` pair st2 publishes when
    /// an execution's status changes (already set on `exec`).
    fn status_events(&self, exec: &Exec) -> [Event; 2] {
        [
            self.exec_update("st2.liveaction__update", exec),
            self.exec_update("st2.execution__update", exec),
        ]
    }

    /// Whether any open stream asked for events named `name` (the caller holds `state`,
    /// as `subscribe` does: no stream opens in between).
    fn wanted(&self, name: &str) -> bool {
        self.subs
            .lock()
            .list
            .iter()
            .any(|(_, _, wants)| wants.iter().any(|g| g.matches(name)))
    }

    /// [`Self::exec_event`] for `exec` as it is now, serialised straight from it (the
    /// hot path: three updates per execution). Every stream still gets the event — a
    /// dropped event restarts st2stream's heartbeat wait — but when no stream asked for
    /// its name, no stream reads its body, and it is not serialised.
    fn exec_update(&self, name: &str, exec: &Exec) -> Event {
        let liveaction = name.starts_with("st2.liveaction");
        let body_id = if liveaction {
            &exec.liveaction_id
        } else {
            &exec.id
        };
        let data = if !self.wanted(name) {
            Ok(String::new())
        } else if liveaction {
            serde_json::to_string(&LiveActionView(exec))
        } else {
            serde_json::to_string(&ExecutionView { exec, only: None })
        };
        Event {
            name: name.to_string(),
            data: data.unwrap_or_else(|_| "null".into()),
            action_ref: Some(exec.action_ref.clone()),
            execution_id: (!liveaction).then(|| exec.id.clone()),
            body_id: Some(body_id.clone()),
            status: Some(exec.status.clone()),
        }
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

    /// A stored execution as `ActionExecutionAPI`, with only the top-level attributes
    /// `only` names (what a read with `include_attributes` can keep).
    pub(crate) fn execution_json_only(&self, id: &str, only: &[&str]) -> Option<Value> {
        let st = self.state.lock();
        let exec = st.executions.get(*st.by_id.get(id)?)?;
        Some(exec.to_json_only(only))
    }

    /// The action ref of a stored execution (what st2's RBAC resolvers read from it).
    pub(crate) fn execution_action_ref(&self, id: &str) -> Option<String> {
        let st = self.state.lock();
        let e = st.executions.get(*st.by_id.get(id)?)?;
        Some(e.action_ref.clone())
    }

    /// `GET /api/v1/executions/{id}/output` (`ActionExecutionOutputController.get_one`,
    /// `st2api/controllers/v1/actionexecutions.py:513-525`): the `data` of the execution's
    /// output records, in storage order, joined with nothing; only those of
    /// `output_type` unless it is empty or `all`. `None` when the execution is unknown.
    pub(crate) fn execution_output(&self, id: &str, output_type: Option<&str>) -> Option<String> {
        let st = self.state.lock();
        let e = st.executions.get(*st.by_id.get(id)?)?;
        let filter = output_type.filter(|t| !t.is_empty() && *t != "all");
        Some(
            e.output
                .iter()
                .filter(|r| filter.is_none_or(|t| r.output_type == t))
                .map(|r| r.data.as_str())
                .collect(),
        )
    }

    /// The output records of an execution as `ActionExecutionOutputAPI` objects, oldest
    /// first (empty when unknown).
    pub(crate) fn output_records(&self, id: &str) -> Vec<Value> {
        let st = self.state.lock();
        let Some(e) = st.by_id.get(id).and_then(|&i| st.executions.get(i)) else {
            return Vec::new();
        };
        e.output.iter().map(|r| output_json(e, r)).collect()
    }

    /// `DELETE /api/v1/executions/{id}` once authorised, for `requester` (the st2 user):
    /// see [`CancelResult`]. A cancellable execution goes through st2's
    /// `request_cancellation` (`st2common/services/action.py:286-321`): its result becomes
    /// `{"message": "Action canceled by user.", "user": <requester>}`, its context gains
    /// `cancelled_by`, and its status becomes `canceling` when it is `running` (or part
    /// of a workflow: `"parent"` in its context), an action runner then taking it to
    /// `canceled` ([`Shared::finish_cancel`]), or straight `canceled` otherwise (it has
    /// not started: no runner is involved). Each change publishes its update pair
    /// (`update_status`, services/action.py:217-267); reaching `canceled` announces it as
    /// any completed execution is announced.
    pub(crate) fn cancel_execution(&self, id: &str, requester: &str) -> CancelResult {
        let mut st = self.state.lock();
        let Some(&idx) = st.by_id.get(id) else {
            return CancelResult::Unknown;
        };
        let Some(exec) = st.executions.get_mut(idx) else {
            return CancelResult::Unknown;
        };
        if exec.status == "canceled" {
            return CancelResult::AlreadyCanceled(exec.to_json());
        }
        if !CANCELABLE.contains(&exec.status.as_str()) {
            return CancelResult::NotCancelable(exec.status.clone());
        }
        // `liveaction.status in LIVEACTION_STATUS_RUNNING` is a substring test on the
        // string "running"; of the cancelable states only "running" passes it.
        let runs = exec.status == "running" || exec.context.get("parent").is_some();
        exec.result = Some(json!({"message": "Action canceled by user.", "user": requester}));
        if let Some(ctx) = exec.context.as_object_mut() {
            ctx.insert("cancelled_by".into(), json!(requester));
        }
        let mut announcements = Vec::new();
        if runs {
            exec.set_status("canceling");
        } else {
            exec.end = Some(Utc::now());
            exec.set_status("canceled");
            let aliases = self.aliases();
            announcements = announcements_for(exec, &self.settings, &aliases);
        }
        let json = exec.to_json();
        for event in self.status_events(exec) {
            self.publish_locked(event);
        }
        for (name, data) in announcements {
            self.publish_locked(Self::plain_event(&name, &data));
        }
        if runs && !self.schedule(id, JobKind::CancelDispatch, CANCEL_DISPATCH_DELAY) {
            tracing::debug!("st2 emulator: runner gone; the execution stays canceling");
        }
        CancelResult::Requested(json)
    }
}

/// What st2's notifier, the installed notify rules and `chatops.post_result` publish for
/// a finished execution: one `st2.announcement__<route>` per rule whose criteria
/// (`trigger.route equals <route>`) match the execution's notification route
/// (`contrib/chatops/rules/notify_hubot.yaml`, `notify_errbot.yaml`), none when
/// `format_execution_result` says `enabled: false` or fails.
fn announcements_for(exec: &Exec, settings: &Settings, aliases: &AliasSet) -> Vec<(String, Value)> {
    let Some(route) = exec.route.as_deref() else {
        return Vec::new();
    };
    let rules: Vec<&str> = settings
        .notify_rules
        .iter()
        .filter(|(matched, _)| matched == route)
        .map(|(_, announce)| announce.as_str())
        .collect();
    if rules.is_empty() {
        tracing::debug!(route, "st2 emulator: no notify rule covers this route");
        return Vec::new();
    }
    let formatted = match format_execution_result(exec, aliases) {
        Ok(Some(f)) => f,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "st2 emulator: format_execution_result failed; nothing posted");
            return Vec::new();
        }
    };
    let (message, extra) = formatted;
    rules
        .into_iter()
        .map(|announce| {
            let payload = json!({
                "message": message,
                "channel": exec.source_channel,
                "user": exec.user,
                "whisper": false,
                "context": exec.source_context,
                "extra": extra,
            });
            (
                format!("st2.announcement__{announce}"),
                json!({"payload": payload, "trace_context": null}),
            )
        })
        .collect()
}

/// `chatops.format_execution_result` (`contrib/chatops/actions/format_execution_result.py`):
/// `Ok(None)` for `result.enabled: false`, else the message and `extra` (`{}` when the
/// alias has none, as `post_result`'s `publish` gives `post_message`). The alias is
/// looked up by id at completion time; a deleted one means the default template.
fn format_execution_result(
    exec: &Exec,
    aliases: &AliasSet,
) -> Result<Option<(String, Value)>, jinja::JinjaError> {
    let alias = exec
        .alias_id
        .as_deref()
        .and_then(|id| aliases.get_by_id(id));
    // The template's variables, built only for a template to render:
    // `execution.to_dict(exclude_attributes=[...])` and the alias.
    let vars = || {
        let mut exec_ctx = exec.to_json();
        if let Some(m) = exec_ctx.as_object_mut() {
            for k in ["trigger", "trigger_type", "trigger_instance", "liveaction"] {
                m.remove(k);
            }
        }
        let mut vars = vec![Var::dict("execution", exec_ctx)];
        if let Some(a) = &alias {
            vars.push(Var::api("alias", a.raw.clone(), CLIENT_ALIAS));
        }
        vars
    };
    let extras = Extras {
        six: true,
        st2kv: false,
    };
    let mut template: Option<&str> = None;
    let mut extra = json!({});
    if let Some(result) = alias
        .as_ref()
        .and_then(|a| a.result.as_ref())
        .filter(|r| !r.is_empty())
    {
        if result
            .get("enabled")
            .is_some_and(|e| !super::util::py_truthy(e))
        {
            return Ok(None);
        }
        if let Some(f) = result.get("format") {
            template = Some(f.as_str().unwrap_or(""));
        }
        if let Some(x) = result.get("extra") {
            extra = match x {
                Value::Object(m) => Value::Object(jinja::render_values(m, &vars(), extras, true)?),
                other => other.clone(),
            };
        }
    }
    let message = match template {
        Some(t) => jinja::render(t, &vars(), extras, false)?,
        None => default_result_message(&exec.to_json_only(&DEFAULT_MESSAGE_READS)),
    };
    Ok(Some((message, extra)))
}
