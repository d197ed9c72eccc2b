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
