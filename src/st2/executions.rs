//! StackStorm's executions API, for following and stopping jobs (`!st2logs`, `!st2tail`,
//! `!st2cancel`).
//!
//! - `GET /api/v1/executions/{id}` (`st2api/controllers/v1/actionexecutions.py`
//!   `ActionExecutionsController.get_one`): the execution (`ActionExecutionAPI`), read here
//!   into an [`ExecutionState`]. Needs RBAC `execution_view`; 404 `Unable to identify
//!   resource with id "<id>".` when unknown.
//! - `GET /api/v1/executions/{id}/output[?output_type=stdout|stderr|all]`
//!   (`ActionExecutionOutputController.get_one`): the output the runner has stored so
//!   far (`ActionExecutionOutputDB` records, one per line the local, remote and Python
//!   runners read), concatenated as `text/plain`; the whole of it on every call, however
//!   large, so [`St2Client::execution_output`] reads at most [`MAX_OUTPUT_BYTES`]. Needs
//!   `execution_view`. The same lines are published live as `st2.execution.output__create`
//!   stream events, which st2stream sends only to clients that name them in `events=`
//!   (its default list, `DEFAULT_EVENTS_WHITELIST`, leaves them out).
//! - `DELETE /api/v1/executions/{id}` (`ActionExecutionsController.delete`): needs
//!   `execution_stop` (st2-rbac-backend grants it with `action_execute` on the action or
//!   its pack: not only the user who started it may stop it). An execution already
//!   `canceled` comes back as it is; one in a state that cannot be cancelled (finished,
//!   `canceling`, `pending`) gets `abort(http_client.OK, "Action cannot be canceled.
//!   State = <status>.")` — **status 200** with a `{"faultstring": ...}` body, which is a
//!   refusal, not a success ([`CancelOutcome::Refused`]); otherwise st2's
//!   `request_cancellation` answers the execution `canceling` (it was running: its runner
//!   finishes the job) or `canceled` (it had not started). A local-shell or Python action
//!   is not killed by the cancellation (their runners keep st2's default
//!   `ActionRunner.cancel`, which only reports `canceled`): its output may go on after the
//!   execution is `canceled`.
//!
//! st2's `LIVEACTION_COMPLETED_STATES` (`st2common/constants/action.py`) are `succeeded`,
//! `failed`, `timeout`, `canceled` and `abandoned`; `pending` (an inquiry waiting for an
//! answer), `paused` and `canceling` are not finished.

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use serde_json::Value;

use super::{client::St2Client, credential::Credential, error::St2Error};

/// st2's `LIVEACTION_COMPLETED_STATES` (`st2common/constants/action.py:110-116`).
pub const COMPLETED_STATES: [&str; 5] = ["succeeded", "failed", "timeout", "canceled", "abandoned"];

/// Most output read by [`St2Client::execution_output`]: StackStorm sends the whole output
/// every time, and a chatty job's can run to many megabytes.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Longest execution id accepted (st2's are 24 hex digits; `last` is accepted too).
const MAX_ID_LEN: usize = 64;

/// Whether `status` is one of StackStorm's completed states ([`COMPLETED_STATES`]).
pub fn is_completed_status(status: &str) -> bool {
    COMPLETED_STATES.contains(&status)
}

/// An execution as `GET /api/v1/executions/{id}` describes it, reduced to what following
/// and stopping a job needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionState {
    /// The execution id.
    pub id: String,
    /// StackStorm's status: `requested`, `scheduled`, `delayed`, `running`, `pending`,
    /// `pausing`, `paused`, `resuming`, `canceling`, or a completed one.
    pub status: String,
    /// `action.ref` (`pack.name`), when present.
    pub action_ref: Option<String>,
    /// `start_timestamp`, when present and readable.
    pub start_timestamp: Option<DateTime<Utc>>,
    /// `end_timestamp`: set once the execution has completed.
    pub end_timestamp: Option<DateTime<Utc>>,
    /// `result`, as StackStorm sent it (`None` while it has none; st2 leaves an empty
    /// result out).
    pub result: Option<Value>,
}

impl ExecutionState {
    /// Reads an `ActionExecutionAPI` object: `id` and `status` are required (a
    /// [`St2Error::Decode`] otherwise), everything else is optional.
    ///
    /// # Errors
    ///
    /// [`St2Error::Decode`] when `v` is not an object with a string `id` and `status`.
    pub fn from_json(v: &Value) -> Result<Self, St2Error> {
        let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let (Some(id), Some(status)) = (text("id"), text("status")) else {
            return Err(St2Error::Decode(
                "execution: no `id` and `status` strings".into(),
            ));
        };
        let time = |key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Ok(Self {
            id,
            status,
            action_ref: v
                .pointer("/action/ref")
                .and_then(Value::as_str)
                .map(str::to_owned),
            start_timestamp: time("start_timestamp"),
            end_timestamp: time("end_timestamp"),
            result: v.get("result").filter(|r| !r.is_null()).cloned(),
        })
    }

    /// Whether the execution has completed ([`COMPLETED_STATES`]): it will not change
    /// status again.
    pub fn is_finished(&self) -> bool {
        is_completed_status(&self.status)
    }
}

/// What an execution's output read brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionOutput {
    /// The output, at most [`MAX_OUTPUT_BYTES`] of it (cut at a character boundary;
    /// invalid UTF-8 replaced).
    pub text: String,
    /// StackStorm had more than that: `text` is the beginning only.
    pub truncated: bool,
}

impl ExecutionOutput {
    /// The output from the bytes read; `truncated` when the body went on beyond them (a
    /// character cut in two at the end is dropped).
    pub fn from_bytes(bytes: &[u8], truncated: bool) -> Self {
        let bytes = if truncated {
            match std::str::from_utf8(bytes) {
                Ok(_) => bytes,
                // Only an incomplete character at the very end is dropped.
                Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
                Err(_) => bytes,
            }
        } else {
            bytes
        };
        Self {
            text: String::from_utf8_lossy(bytes).into_owned(),
            truncated,
        }
    }
}

/// What asking StackStorm to cancel an execution came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// StackStorm accepted the cancellation; `status` is what it answered: `canceling`
    /// (the job was running; its runner finishes the cancellation) or `canceled` (it had
    /// not started).
    Canceling {
        /// The execution's status in StackStorm's answer.
        status: String,
    },
    /// The execution was already canceled; nothing was changed.
    AlreadyCanceled,
    /// StackStorm refused: the execution is in a state that cannot be cancelled
    /// (finished, already `canceling`, an inquiry `pending`...). `reason` is its text,
    /// e.g. `Action cannot be canceled. State = succeeded.`
    Refused {
        /// StackStorm's `faultstring`.
        reason: String,
    },
}

/// Reads the 200 answer of `DELETE /api/v1/executions/{id}`: an execution (cancellation
/// accepted, or already canceled — see [`St2Client::cancel_execution`]) or st2's
/// `{"faultstring": ...}` refusal sent with status 200.
///
/// # Errors
///
/// [`St2Error::Decode`] for a body that is neither.
pub fn parse_cancel_answer(body: &[u8]) -> Result<CancelOutcome, St2Error> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| St2Error::Decode(format!("cancel answer: {e}")))?;
    if let Some(status) = v.get("status").and_then(Value::as_str) {
        return Ok(CancelOutcome::Canceling {
            status: status.to_owned(),
        });
    }
    match v.get("faultstring").and_then(Value::as_str) {
        Some(reason) => Ok(CancelOutcome::Refused {
            reason: reason.to_owned(),
        }),
        None => Err(St2Error::Decode(
            "cancel answer: neither an execution nor a faultstring".into(),
        )),
    }
}

fn checked_id(id: &str) -> Result<&str, St2Error> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        let shown: String = id.chars().take(40).collect();
        return Err(St2Error::api(
            400,
            format!("`{shown}` is not an execution id"),
        ));
    }
    Ok(id)
}

/// An `output_type` as the query gets it: letters, digits and `_` only.
fn checked_output_type(output_type: &str) -> Result<&str, St2Error> {
    if output_type.is_empty()
        || output_type.len() > 32
        || !output_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        let shown: String = output_type.chars().take(40).collect();
        return Err(St2Error::api(
            400,
            format!("`{shown}` is not an output type"),
        ));
    }
    Ok(output_type)
}

impl St2Client {
    /// `GET /api/v1/executions/{id}`, read as an [`ExecutionState`]. An unknown id is
    /// StackStorm's 404, a missing `execution_view` permission its 403 (both
    /// [`St2Error::Api`]).
    pub async fn execution(&self, cred: &Credential, id: &str) -> Result<ExecutionState, St2Error> {
        let id = checked_id(id)?;
        let v = self.get_execution(cred, id).await?;
        ExecutionState::from_json(&v)
    }

    /// `GET /api/v1/executions/{id}/output`: the output stored so far, all types or only
    /// `output_type` (`stdout`, `stderr`; StackStorm also takes `all`), at most
    /// [`MAX_OUTPUT_BYTES`] of it — the beginning; [`St2Client::execution_output_capped`]
    /// says whether there was more.
    pub async fn execution_output(
        &self,
        cred: &Credential,
        id: &str,
        output_type: Option<&str>,
    ) -> Result<String, St2Error> {
        self.execution_output_capped(cred, id, output_type)
            .await
            .map(|o| o.text)
    }

    /// [`St2Client::execution_output`], saying whether the output was cut at
    /// [`MAX_OUTPUT_BYTES`].
    pub async fn execution_output_capped(
        &self,
        cred: &Credential,
        id: &str,
        output_type: Option<&str>,
    ) -> Result<ExecutionOutput, St2Error> {
        let id = checked_id(id)?;
        let mut url = format!("{}/executions/{id}/output", self.api_url());
        if let Some(t) = output_type {
            url.push_str("?output_type=");
            url.push_str(checked_output_type(t)?);
        }
        let mut req = Self::request(Method::GET, &url, Some(cred.header()), None)?;
        req.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("text/plain"),
        );
        let (bytes, truncated) = self
            .exchange_capped("executions_output", req, StatusCode::OK, MAX_OUTPUT_BYTES)
            .await?;
        Ok(ExecutionOutput::from_bytes(&bytes, truncated))
    }

    /// Asks StackStorm to cancel execution `id`: `DELETE /api/v1/executions/{id}`, after a
    /// `GET` that tells an execution already canceled ([`CancelOutcome::AlreadyCanceled`],
    /// no `DELETE` sent) from one canceled now — StackStorm's answer is the same canceled
    /// execution for both. When the `GET` is refused (403: RBAC gives `execution_stop`
    /// without `execution_view`), the `DELETE` is sent all the same. A refusal sent with
    /// status 200 is [`CancelOutcome::Refused`]; an unknown id is StackStorm's 404, a
    /// missing `execution_stop` its 403 ([`St2Error::Api`]).
    pub async fn cancel_execution(
        &self,
        cred: &Credential,
        id: &str,
    ) -> Result<CancelOutcome, St2Error> {
        let id = checked_id(id)?;
        match self.execution(cred, id).await {
            Ok(e) if e.status == "canceled" => return Ok(CancelOutcome::AlreadyCanceled),
            Ok(_) | Err(St2Error::Api { status: 403, .. }) => {}
            Err(e) => return Err(e),
        }
        let url = format!("{}/executions/{id}", self.api_url());
        let req = Self::request(Method::DELETE, &url, Some(cred.header()), None)?;
        let body = self
            .exchange("executions_delete", req, StatusCode::OK)
            .await?;
        parse_cancel_answer(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_execution_is_read_as_st2_serves_it() {
        let v = json!({
            "id": "5f3c1a0e9d1b2c0001a1b0aa", "status": "succeeded",
            "action": {"ref": "ops.long_job", "runner_type": "local-shell-cmd"},
            "start_timestamp": "2024-05-01T10:00:00.123456Z",
            "end_timestamp": "2024-05-01T10:00:30.000000Z",
            "result": {"stdout": "step 1 of 1", "return_code": 0},
            "log": [],
        });
        let e = ExecutionState::from_json(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.id, "5f3c1a0e9d1b2c0001a1b0aa");
        assert_eq!(e.action_ref.as_deref(), Some("ops.long_job"));
        assert_eq!(
            e.start_timestamp.map(|t| t.timestamp_micros()),
            Some(1_714_557_600_123_456)
        );
        assert!(e.end_timestamp.is_some());
        assert_eq!(
            e.result,
            Some(json!({"stdout": "step 1 of 1", "return_code": 0}))
        );
        assert!(e.is_finished());

        let running = ExecutionState::from_json(&json!({"id": "x1", "status": "running"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(running.action_ref, None);
        assert_eq!(running.result, None);
        assert!(!running.is_finished());
        for bad in [
            json!({"id": "x"}),
            json!({"status": "running"}),
            json!([]),
            json!({"id": 1, "status": "running"}),
        ] {
            assert!(matches!(
                ExecutionState::from_json(&bad),
                Err(St2Error::Decode(_))
            ));
        }
    }

    #[test]
    fn completed_states_are_st2s() {
        for s in ["succeeded", "failed", "timeout", "canceled", "abandoned"] {
            assert!(is_completed_status(s), "{s}");
        }
        for s in [
            "requested",
            "scheduled",
            "delayed",
            "running",
            "pending",
            "pausing",
            "paused",
            "resuming",
            "canceling",
            "",
            "Succeeded",
        ] {
            assert!(!is_completed_status(s), "{s}");
        }
    }

    #[test]
    fn cancel_answers() {
        assert_eq!(
            parse_cancel_answer(br#"{"id": "a", "status": "canceling", "result": {}}"#),
            Ok(CancelOutcome::Canceling {
                status: "canceling".into()
            })
        );
        assert_eq!(
            parse_cancel_answer(br#"{"id": "a", "status": "canceled"}"#),
            Ok(CancelOutcome::Canceling {
                status: "canceled".into()
            })
        );
        assert_eq!(
            parse_cancel_answer(
                br#"{"faultstring": "Action cannot be canceled. State = succeeded."}"#
            ),
            Ok(CancelOutcome::Refused {
                reason: "Action cannot be canceled. State = succeeded.".into()
            })
        );
        for bad in [&b"{}"[..], b"null", b"<html>", b"{\"faultstring\": 3}"] {
            assert!(matches!(parse_cancel_answer(bad), Err(St2Error::Decode(_))));
        }
    }

    #[test]
    fn output_is_cut_at_a_character_boundary() {
        let o = ExecutionOutput::from_bytes(b"step 1\n", false);
        assert_eq!((o.text.as_str(), o.truncated), ("step 1\n", false));
        // "é" is two bytes: the first one alone is dropped.
        let o = ExecutionOutput::from_bytes(&"abcé".as_bytes()[..4], true);
        assert_eq!((o.text.as_str(), o.truncated), ("abc", true));
        // Invalid bytes inside are replaced, not a reason to drop the rest.
        let o = ExecutionOutput::from_bytes(b"a\xffb", false);
        assert_eq!(o.text, "a\u{fffd}b");
    }

    #[test]
    fn ids_and_output_types_are_checked_before_any_request() {
        assert!(checked_id("5f3c1a0e9d1b2c0001a1b0aa").is_ok());
        assert!(checked_id("last").is_ok());
        for bad in ["", "../x", "a b", "a?b=1", &"a".repeat(65)] {
            assert!(
                matches!(checked_id(bad), Err(St2Error::Api { status: 400, .. })),
                "{bad}"
            );
        }
        assert!(checked_output_type("stdout").is_ok());
        assert!(checked_output_type("all").is_ok());
        for bad in ["", "std out", "a&b=c", "x#"] {
            assert!(checked_output_type(bad).is_err(), "{bad}");
        }
    }
}
