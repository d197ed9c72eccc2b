//! Background traffic on the message bus, like a busy install produces: a timer rule
//! fires and its action runs, again and again, with no chatops involved.
//!
//! The rule is st2's own example `examples.sample_rule_with_timer`
//! (`contrib/examples/rules/sample_rule_with_timer.yaml`, shipped disabled; here
//! enabled): trigger `core.st2.IntervalTimer`, action `core.local` with
//! `cmd: echo "{{trigger.executed_at}}"`. Each tick the emulator publishes what st2
//! would for one run of it:
//!
//! * `st2.liveaction__create` and `st2.execution__create` (`requested`), then the
//!   `scheduled` updates;
//! * after a short run time, the `running` updates, one
//!   `st2.execution.output__create` per stdout line (the local runner streams its
//!   output), and the `succeeded` updates.
//!
//! The payloads follow st2: the liveaction context is what the rule enforcer builds
//! (`st2reactor/rules/enforcer.py`: `trigger_instance` and `rule` references, `user`
//! `stanley`, `pack`, `trace_context`), the execution carries `rule`, `trigger`,
//! `trigger_type` and `trigger_instance` (`st2common/services/executions.py`), the
//! timer payload is `{executed_at, schedule}` (`st2reactor/timer/base.py`). There is
//! no `notify`, so nothing is announced. These executions are not stored: they are
//! not in [`super::Emulator::executions`] and `GET /api/v1/executions/{id}` answers
//! 404 for them.
//!
//! Every event reaches every stream connection's queue, so a connection whose
//! `events=` filter drops all of them still has its heartbeat wait restarted by
//! each one (`st2common/stream/listener.py`): with traffic more frequent than the
//! heartbeat, such a connection receives no bytes at all.

use std::sync::Weak;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::state::{NewBackground, Shared};
use super::util::{isotime, object_id, stable_object_id};

/// The shortest interval the ticker runs at (`Some(Duration::ZERO)` would spin).
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The longest an emulated background action runs.
const MAX_RUN_TIME: Duration = Duration::from_millis(200);

const RULE_REF: &str = "examples.sample_rule_with_timer";
const TRIGGER_TYPE_REF: &str = "core.st2.IntervalTimer";

/// The rule and trigger of the background traffic: fixed for one emulator.
pub(crate) struct TimerRule {
    trigger_name: String,
}

impl TimerRule {
    pub(crate) fn new() -> TimerRule {
        // st2 names the trigger it creates for a rule's parameters with a uuid.
        TimerRule {
            trigger_name: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn rule_id() -> String {
        stable_object_id(&format!("rule:{RULE_REF}"))
    }

    fn trigger_ref(&self) -> String {
        format!("core.{}", self.trigger_name)
    }

    fn rule_json(&self) -> Value {
        json!({
            "id": Self::rule_id(),
            "ref": RULE_REF,
            "uid": "rule:examples:sample_rule_with_timer",
            "name": "sample_rule_with_timer",
            "pack": "examples",
            "description": "Sample rule using an Interval Timer.",
            "enabled": true,
            "type": {"ref": "standard", "parameters": {}},
            "trigger": {
                "type": TRIGGER_TYPE_REF,
                "parameters": {"delta": 5, "unit": "seconds"},
                "ref": self.trigger_ref(),
            },
            "criteria": {},
            "action": {
                "ref": "core.local",
                "parameters": {"cmd": "echo \"{{trigger.executed_at}}\""},
            },
            "context": {},
            "tags": [],
            "metadata_file": "rules/sample_rule_with_timer.yaml",
        })
    }

    fn trigger_json(&self) -> Value {
        json!({
            "id": stable_object_id(&format!("trigger:{}", self.trigger_name)),
            "ref": self.trigger_ref(),
            "uid": format!("trigger:core:{}:{}", self.trigger_name, stable_object_id(&self.trigger_name)),
            "name": self.trigger_name,
            "pack": "core",
            "type": TRIGGER_TYPE_REF,
            "parameters": {"delta": 5, "unit": "seconds"},
        })
    }

    fn trigger_type_json() -> Value {
        json!({
            "id": stable_object_id(&format!("trigger_type:{TRIGGER_TYPE_REF}")),
            "ref": TRIGGER_TYPE_REF,
            "uid": "trigger_type:core:st2.IntervalTimer",
            "name": "st2.IntervalTimer",
            "pack": "core",
            "description": "Triggers on specified intervals. e.g. every 30s, 1week etc.",
            "payload_schema": {
                "type": "object",
                "properties": {
                    "executed_at": {"type": "string", "format": "date-time",
                                    "default": "2014-07-30 05:04:24.578325"},
                    "schedule": {"type": "object",
                                 "default": {"delta": 30, "units": "seconds"}},
                },
            },
            "parameters_schema": {
                "type": "object",
                "properties": {
                    "timezone": {"type": "string"},
                    "unit": {"enum": ["weeks", "days", "hours", "minutes", "seconds"],
                             "required": true},
                    "delta": {"type": "integer", "required": true},
                },
                "additionalProperties": false,
            },
            "tags": [],
        })
    }

    /// One firing of the timer and the execution its rule starts.
    pub(crate) fn fire(&self) -> NewBackground {
        let now = Utc::now();
        // Python's str() of an aware datetime, as the timer puts in `executed_at`.
        let executed_at = now.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string();
        let instance_id = object_id();
        let trigger_instance = json!({
            "id": instance_id,
            "trigger": self.trigger_ref(),
            "occurrence_time": isotime(now),
            "payload": {"executed_at": executed_at, "schedule": null},
            "status": "processing",
        });
        let context = json!({
            "trigger_instance": {"id": instance_id, "name": null},
            "rule": {"id": Self::rule_id(), "name": "sample_rule_with_timer"},
            "user": "stanley",
            "pack": "core",
            "trace_context": {
                "id_": object_id(),
                "trace_tag": format!("st2.IntervalTimer-{}", self.trigger_name),
            },
        });
        let mut extra = Map::new();
        extra.insert("rule".into(), self.rule_json());
        extra.insert("trigger".into(), self.trigger_json());
        extra.insert("trigger_type".into(), Self::trigger_type_json());
        extra.insert("trigger_instance".into(), trigger_instance);
        let mut parameters = Map::new();
        parameters.insert("cmd".into(), json!(format!("echo \"{executed_at}\"")));
        NewBackground {
            action_ref: "core.local".into(),
            parameters,
            context,
            extra,
            stdout: vec![format!("{executed_at}\n")],
            result: json!({
                "failed": false,
                "succeeded": true,
                "return_code": 0,
                "stdout": executed_at,
                "stderr": "",
            }),
        }
    }
}

/// The ticker: one background execution per interval while the interval is
/// `Some`; parked on the watch (no wake-ups) while it is `None`. Holds only a weak
/// reference and ends when the emulator's shared state is gone.
pub(crate) async fn run(mut interval: watch::Receiver<Option<Duration>>, shared: Weak<Shared>) {
    let rule = TimerRule::new();
    loop {
        let current = *interval.borrow_and_update();
        let Some(every) = current else {
            if interval.changed().await.is_err() {
                return;
            }
            continue;
        };
        let every = every.max(MIN_INTERVAL);
        let run_time = (every / 2).min(MAX_RUN_TIME);
        let Some(s) = shared.upgrade() else { return };
        let started = s.background_start(rule.fire());
        drop(s);
        tokio::time::sleep(run_time).await;
        let Some(s) = shared.upgrade() else { return };
        s.background_finish(started);
        drop(s);
        tokio::select! {
            () = tokio::time::sleep(every.saturating_sub(run_time)) => {}
            changed = interval.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_firing_looks_like_st2s_timer_rule() {
        let rule = TimerRule::new();
        let n = rule.fire();
        assert_eq!(n.action_ref, "core.local");
        let cmd = n.parameters["cmd"].as_str().unwrap_or_default();
        assert!(
            cmd.starts_with("echo \"") && cmd.ends_with("+00:00\""),
            "{cmd}"
        );
        assert_eq!(n.context["rule"]["name"], "sample_rule_with_timer");
        assert_eq!(n.context["user"], "stanley");
        assert!(n.context["trigger_instance"]["id"].is_string());
        assert_eq!(n.extra["trigger_type"]["ref"], TRIGGER_TYPE_REF);
        assert_eq!(
            n.extra["trigger"]["ref"],
            n.extra["trigger_instance"]["trigger"]
        );
        assert_eq!(n.stdout.len(), 1);
        assert!(n.stdout[0].ends_with('\n'));
        assert_eq!(
            format!("{}\n", n.result["stdout"].as_str().unwrap_or_default()),
            n.stdout[0]
        );
    }
}
