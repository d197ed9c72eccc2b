//! Wire shapes of the StackStorm API calls the bridge makes (aliases are in `crate::alias::model`).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::announcement::SourceContext;

/// `POST /api/v1/aliasexecution` body.
#[derive(Debug, Clone, Serialize)]
pub struct AliasExecutionRequest {
    /// Alias name (st2 looks it up by name, ignoring the pack).
    pub name: String,
    /// The representation that matched.
    pub format: String,
    /// The chat text without prefixes.
    pub command: String,
    /// The chat user's platform id.
    pub user: String,
    /// The room id.
    pub source_channel: String,
    /// Route for the result announcement.
    pub notification_route: String,
    /// Where the command came from, handed back with the result.
    pub source_context: SourceContext,
}

/// One execution created by an alias execution.
#[derive(Debug, Clone, Deserialize)]
pub struct AliasExecutionResult {
    /// The execution.
    pub execution: ExecutionSummary,
    /// The alias as st2 saw it (its `ack` settings are the client's to apply).
    #[serde(default)]
    pub actionalias: Option<ServerAlias>,
    /// `ack.format` rendered by st2, when the alias has one.
    #[serde(default)]
    pub message: Option<String>,
    /// `ack.extra` rendered by st2.
    #[serde(default)]
    pub extra: Option<Value>,
}

/// The part of the alias st2 returns with an alias execution that the bridge uses (the
/// rest, formats and all, is skipped unread).
#[derive(Debug, Clone, Deserialize)]
pub struct ServerAlias {
    /// `ack`: `enabled`, `append_url`, `format`.
    #[serde(default)]
    pub ack: Option<Value>,
}

/// The fields of an execution the bridge uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecutionSummary {
    /// Execution id.
    pub id: String,
    /// Status, when present.
    #[serde(default)]
    pub status: Option<String>,
    /// st2web link, when st2 knows its web UI.
    #[serde(default)]
    pub web_url: Option<String>,
}

/// How an execution stands, as `GET /api/v1/executions/{id}` tells it (`ActionExecutionAPI`,
/// `st2common/models/api/execution.py`, which leaves out empty fields): the fields read after
/// a result is posted or when a job is shown. Read straight from the answer, the rest of the
/// document (action, runner, parameters, context, log) skipped unparsed — building it as a
/// JSON value was a quarter of the bridge's work per command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ExecutionState {
    /// Execution id.
    #[serde(default)]
    pub id: Option<String>,
    /// Status word (`succeeded`, `failed`, `running`, …).
    #[serde(default)]
    pub status: Option<String>,
    /// When it started (ISO 8601, UTC).
    #[serde(default)]
    pub start_timestamp: Option<String>,
    /// When it ended (ISO 8601, UTC), once it has.
    #[serde(default)]
    pub end_timestamp: Option<String>,
    /// st2web link, when st2 knows its web UI.
    #[serde(default)]
    pub web_url: Option<String>,
}

impl ExecutionState {
    /// The same fields from an execution already read whole; a field of another type than
    /// StackStorm's is left out.
    pub fn of(execution: &Value) -> Self {
        let text = |key: &str| {
            execution
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            id: text("id"),
            status: text("status"),
            start_timestamp: text("start_timestamp"),
            end_timestamp: text("end_timestamp"),
            web_url: text("web_url"),
        }
    }

    /// The status word, empty when StackStorm gave none.
    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("")
    }
}

/// The 201 body: one result (`{execution, actionalias, message?, extra?}`), or
/// (`match_multiple`) several (`{"results": [...]}`).
///
/// Read as one struct rather than an untagged enum: serde buffers an untagged enum's whole
/// input (the execution object with its action, runner and parameters) before trying each
/// shape, which was the largest single cost of running a command.
#[derive(Debug, Clone, Deserialize)]
pub struct AliasExecutionResponse {
    /// `match_multiple`: one per execution.
    #[serde(default)]
    results: Option<Vec<AliasExecutionResult>>,
    /// One execution.
    #[serde(default)]
    execution: Option<ExecutionSummary>,
    #[serde(default)]
    actionalias: Option<ServerAlias>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    extra: Option<Value>,
}

impl AliasExecutionResponse {
    /// The executions, in order; `None` when the body has neither shape.
    pub fn into_results(self) -> Option<Vec<AliasExecutionResult>> {
        match (self.results, self.execution) {
            (Some(results), _) => Some(results),
            (None, Some(execution)) => Some(vec![AliasExecutionResult {
                execution,
                actionalias: self.actionalias,
                message: self.message,
                extra: self.extra,
            }]),
            (None, None) => None,
        }
    }
}

/// `POST /auth/v1/tokens` 201 body.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenGrant {
    /// The st2 user the token belongs to.
    pub user: String,
    /// The token. Secret.
    pub token: SecretString,
    /// ISO-8601 expiry.
    pub expiry: String,
}

impl TokenGrant {
    /// Seconds until expiry from `now`, when the expiry parses.
    pub fn seconds_left(&self, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(&self.expiry)
            .ok()
            .map(|e| (e.with_timezone(&chrono::Utc) - now).num_seconds())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An execution as `GET /api/v1/executions/{id}?exclude_attributes=result,trigger_instance`
    /// (or a st2 older than 2.9.0 to `?include_attributes=`) answers it (`ActionExecutionAPI.from_model`: empty fields left out, `elapsed_seconds`
    /// once ended).
    fn execution() -> Value {
        json!({
            "id": "5f0c0a4e8e1b2c3d4e5f6a7b",
            "action": {"ref": "core.local", "parameters": {"cmd": {"type": "string"}}},
            "runner": {"name": "local-shell-cmd", "runner_parameters": {}},
            "liveaction": {"id": "5f0c0a4e8e1b2c3d4e5f6a7c", "status": "succeeded"},
            "parameters": {"cmd": "date"},
            "context": {"user": "st2admin", "source_channel": "ops"},
            "status": "succeeded",
            "start_timestamp": "2026-12-03T10:00:00.123456Z",
            "end_timestamp": "2026-12-03T10:00:02.000000Z",
            "elapsed_seconds": 1.876544,
            "web_url": "https://st2.example.com/#/history/5f0c0a4e8e1b2c3d4e5f6a7b/general",
            "log": [{"status": "requested", "timestamp": "2026-12-03T10:00:00.100000Z"}]
        })
    }

    #[test]
    fn an_execution_read_as_its_state_keeps_what_the_bridge_uses() {
        let text = execution().to_string();
        let state: ExecutionState = serde_json::from_str(&text).expect("an execution");
        assert_eq!(state.id.as_deref(), Some("5f0c0a4e8e1b2c3d4e5f6a7b"));
        assert_eq!(state.status(), "succeeded");
        assert_eq!(
            state.start_timestamp.as_deref(),
            Some("2026-12-03T10:00:00.123456Z")
        );
        assert_eq!(
            state.end_timestamp.as_deref(),
            Some("2026-12-03T10:00:02.000000Z")
        );
        assert!(state.web_url.is_some_and(|u| u.contains("/history/")));
        // Read from the text or from an execution already read whole: the same.
        assert_eq!(
            ExecutionState::of(&execution()),
            serde_json::from_str(&text).unwrap()
        );
    }

    #[test]
    fn a_running_execution_has_no_end_and_an_odd_field_is_left_out() {
        let running = json!({"id": "abc", "status": "running", "start_timestamp": "x"});
        let state: ExecutionState = serde_json::from_value(running.clone()).unwrap();
        assert_eq!(state.status(), "running");
        assert_eq!(state.end_timestamp, None);
        assert_eq!(ExecutionState::of(&running), state);
        let odd = json!({"id": "abc", "status": 3});
        assert_eq!(ExecutionState::of(&odd).status(), "");
        assert!(serde_json::from_value::<ExecutionState>(odd).is_err());
        assert_eq!(ExecutionState::of(&json!([])), ExecutionState::default());
    }
}
