//! The audit document as typed structs borrowing from a [`Run`]: what each key holds and
//! in which order an operator reads them (who and what, status, timing, the records, the
//! decisions, the totals).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use sop_core::run::{
    ApprovalRecord, DecisionKind, Millis, Run, RunStatus, StepRecord, StepStatus, WaitKind,
};
use sop_core::TimeoutAction;

use crate::clock::rfc3339;

/// The whole document: [`Head`], the records, then [`Tail`]. The audit file is rendered
/// piecewise in this order (see `render.rs`); this struct renders it in one go.
#[derive(Serialize)]
pub(super) struct Document<'a> {
    #[serde(flatten)]
    head: Head<'a>,
    steps: Records<'a>,
    rollback: Records<'a>,
    gates: Gates<'a>,
    #[serde(flatten)]
    tail: Tail<'a>,
}

impl<'a> Document<'a> {
    pub(super) fn of(run: &'a Run) -> Self {
        Document {
            head: Head::of(run),
            steps: Records(&run.steps),
            rollback: Records(&run.rollback),
            gates: Gates(&run.gates),
            tail: Tail::of(run),
        }
    }
}

/// The keys before the step records.
#[derive(Serialize)]
pub(super) struct Head<'a> {
    sop: &'a str,
    version: &'a str,
    run_id: &'a str,
    status: RunStatus,
    priority: &'static str,
    execution_mode: &'static str,
    created_at: Stamp,
    started_at: Option<Stamp>,
    completed_at: Option<Stamp>,
    trigger: Trigger<'a>,
    skip_approval: bool,
    forced: bool,
    vars: Vars<'a>,
    current_step: Option<u32>,
    waiting: Option<Waiting<'a>>,
    error: Option<&'a str>,
}

impl<'a> Head<'a> {
    pub(super) fn of(run: &'a Run) -> Self {
        let current_step = run
            .steps
            .iter()
            .chain(&run.rollback)
            .find(|s| s.status == StepStatus::Running)
            .map(|s| s.number);
        Head {
            sop: &run.sop.name,
            version: &run.sop.version,
            run_id: &run.id,
            status: run.status,
            priority: run.priority.as_str(),
            execution_mode: run.mode.as_str(),
            created_at: Stamp(run.created_at),
            started_at: run.started_at.map(Stamp),
            completed_at: run.completed_at.map(Stamp),
            trigger: Trigger {
                kind: &run.trigger.kind,
                by: &run.trigger.by,
            },
            skip_approval: run.skip_approval,
            forced: run.forced,
            vars: Vars(run),
            current_step,
            waiting: Waiting::of(run),
            error: run.error.as_deref(),
        }
    }
}

/// The keys after the step records.
#[derive(Serialize)]
pub(super) struct Tail<'a> {
    approvals: Approvals<'a>,
    metrics: Metrics,
}

impl<'a> Tail<'a> {
    pub(super) fn of(run: &'a Run) -> Self {
        Tail {
            approvals: Approvals(&run.approvals),
            metrics: Metrics::of(run),
        }
    }
}

/// One step, rollback step or verification gate record.
#[derive(Serialize)]
pub(super) struct StepDoc<'a> {
    number: u32,
    title: &'a str,
    status: StepStatus,
    started_at: Option<Stamp>,
    completed_at: Option<Stamp>,
    duration_ms: Option<i64>,
    exit_code: Option<i32>,
    output: &'a str,
    attempts: u32,
    reason: Option<&'a str>,
}

impl<'a> StepDoc<'a> {
    pub(super) fn of(s: &'a StepRecord) -> Self {
        StepDoc {
            number: s.number,
            title: &s.title,
            status: s.status,
            started_at: s.started_at.map(Stamp),
            completed_at: s.completed_at.map(Stamp),
            duration_ms: s.duration_ms,
            exit_code: s.exit_code,
            output: &s.output,
            attempts: s.attempts,
            reason: s.reason.as_deref(),
        }
    }
}

/// A time as `2026-02-25T13:00:00.123Z`.
struct Stamp(Millis);

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

#[derive(Serialize)]
struct Trigger<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    by: &'a str,
}

/// The run's variables, secret ones as `***`.
struct Vars<'a>(&'a Run);

impl Serialize for Vars<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let run = self.0;
        s.collect_map(run.vars.iter().map(|(k, v)| {
            let secret = run.sop.vars.get(k).is_some_and(|d| d.secret);
            (k, if secret { "***" } else { v.as_str() })
        }))
    }
}

#[derive(Serialize)]
struct Waiting<'a> {
    gate: &'a str,
    kind: WaitKind,
    since: Stamp,
    deadline: Option<Stamp>,
    approved_by: &'a [String],
    required: u32,
    approvers: Approvers<'a>,
    self_approval: bool,
    timeout_action: TimeoutAction,
}

impl<'a> Waiting<'a> {
    fn of(run: &'a Run) -> Option<Self> {
        run.wait.as_ref().map(|w| Waiting {
            gate: &w.gate,
            kind: w.kind,
            since: Stamp(w.since),
            deadline: w.deadline.map(Stamp),
            approved_by: &w.approved_by,
            required: w.required,
            approvers: Approvers(&run.sop.approvers),
            self_approval: run.sop.allow_self_approval,
            timeout_action: run.sop.approval_timeout_action,
        })
    }
}

/// The SOP's approvers, or `"anyone"` when it names none.
struct Approvers<'a>(&'a [String]);

impl Serialize for Approvers<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            s.serialize_str("anyone")
        } else {
            s.collect_seq(self.0)
        }
    }
}

struct Records<'a>(&'a [Arc<StepRecord>]);

impl Serialize for Records<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| StepDoc::of(r)))
    }
}

struct Gates<'a>(&'a BTreeMap<String, Arc<StepRecord>>);

impl Serialize for Gates<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, r)| (k, StepDoc::of(r))))
    }
}

struct Approvals<'a>(&'a [ApprovalRecord]);

impl Serialize for Approvals<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|a| ApprovalDoc {
            gate: &a.gate,
            decision: a.decision,
            by: &a.by,
            channel: &a.channel,
            at: Stamp(a.at),
            comment: a.comment.as_deref(),
            waited_ms: a.waited_ms,
        }))
    }
}

#[derive(Serialize)]
struct ApprovalDoc<'a> {
    gate: &'a str,
    decision: DecisionKind,
    by: &'a str,
    channel: &'a str,
    at: Stamp,
    comment: Option<&'a str>,
    waited_ms: i64,
}

#[derive(Serialize)]
struct Metrics {
    total_duration_ms: Option<i64>,
    queue_wait_ms: Option<i64>,
    steps_total: usize,
    steps_completed: usize,
    steps_skipped: usize,
    steps_failed: usize,
    approval_waits: usize,
    approval_wait_ms: i64,
}

impl Metrics {
    fn of(run: &Run) -> Self {
        let (mut completed, mut skipped, mut failed) = (0, 0, 0);
        for s in &run.steps {
            match s.status {
                StepStatus::Success => completed += 1,
                StepStatus::Skipped => skipped += 1,
                StepStatus::Failure | StepStatus::TimedOut | StepStatus::Interrupted => {
                    failed += 1;
                }
                StepStatus::Pending | StepStatus::Running | StepStatus::Cancelled => {}
            }
        }
        let decided = run
            .approvals
            .iter()
            .filter(|a| !matches!(a.decision, DecisionKind::Escalated));
        Metrics {
            total_duration_ms: run.started_at.zip(run.completed_at).map(|(s, e)| e - s),
            queue_wait_ms: run.queue_wait_ms,
            steps_total: run.steps.len(),
            steps_completed: completed,
            steps_skipped: skipped,
            steps_failed: failed,
            approval_waits: decided.clone().count(),
            approval_wait_ms: decided.map(|a| a.waited_ms).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::audit::fixtures::shapes;

    /// The document as it was built before the typed structs, as a `Value` tree.
    fn legacy(run: &Run) -> Value {
        let secret: Vec<&str> = run.sop.secret_vars().collect();
        let vars: Map<String, Value> = run
            .vars
            .iter()
            .map(|(k, v)| {
                let v = if secret.contains(&k.as_str()) {
                    "***"
                } else {
                    v
                };
                (k.clone(), Value::String(v.to_string()))
            })
            .collect();
        let step = |s: &StepRecord| {
            json!({
                "number": s.number, "title": s.title, "status": s.status,
                "started_at": s.started_at.map(rfc3339),
                "completed_at": s.completed_at.map(rfc3339),
                "duration_ms": s.duration_ms, "exit_code": s.exit_code, "output": s.output,
                "attempts": s.attempts, "reason": s.reason,
            })
        };
        let steps: Vec<Value> = run.steps.iter().map(|s| step(s)).collect();
        let rollback: Vec<Value> = run.rollback.iter().map(|s| step(s)).collect();
        let gates: Map<String, Value> = run
            .gates
            .iter()
            .map(|(k, r)| (k.clone(), step(r)))
            .collect();
        let approvals: Vec<Value> = run
            .approvals
            .iter()
            .map(|a| {
                json!({
                    "gate": a.gate, "decision": a.decision, "by": a.by, "channel": a.channel,
                    "at": rfc3339(a.at), "comment": a.comment, "waited_ms": a.waited_ms,
                })
            })
            .collect();
        let waiting = run.wait.as_ref().map(|w| {
            json!({
                "gate": w.gate, "kind": w.kind, "since": rfc3339(w.since),
                "deadline": w.deadline.map(rfc3339), "approved_by": w.approved_by,
                "required": w.required,
                "approvers": if run.sop.approvers.is_empty() {
                    json!("anyone")
                } else {
                    json!(run.sop.approvers)
                },
                "self_approval": run.sop.allow_self_approval,
                "timeout_action": run.sop.approval_timeout_action,
            })
        });
        let current_step = run
            .steps
            .iter()
            .chain(run.rollback.iter())
            .find(|s| s.status == StepStatus::Running)
            .map(|s| s.number);
        let count = |st: StepStatus| run.steps.iter().filter(|s| s.status == st).count();
        let failed = run
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    StepStatus::Failure | StepStatus::TimedOut | StepStatus::Interrupted
                )
            })
            .count();
        let decided: Vec<_> = run
            .approvals
            .iter()
            .filter(|a| !matches!(a.decision, DecisionKind::Escalated))
            .collect();
        json!({
            "sop": run.sop.name, "version": run.sop.version, "run_id": run.id,
            "status": run.status, "priority": run.priority.as_str(),
            "execution_mode": run.mode.as_str(), "created_at": rfc3339(run.created_at),
            "started_at": run.started_at.map(rfc3339),
            "completed_at": run.completed_at.map(rfc3339),
            "trigger": {"type": run.trigger.kind, "by": run.trigger.by},
            "skip_approval": run.skip_approval, "forced": run.forced, "vars": vars,
            "current_step": current_step, "waiting": waiting, "error": run.error,
            "steps": steps, "rollback": rollback, "gates": gates, "approvals": approvals,
            "metrics": {
                "total_duration_ms": run.started_at.zip(run.completed_at).map(|(s, e)| e - s),
                "queue_wait_ms": run.queue_wait_ms,
                "steps_total": run.steps.len(),
                "steps_completed": count(StepStatus::Success),
                "steps_skipped": count(StepStatus::Skipped),
                "steps_failed": failed,
                "approval_waits": decided.len(),
                "approval_wait_ms": decided.iter().map(|a| a.waited_ms).sum::<i64>(),
            },
        })
    }

    #[test]
    fn typed_document_has_the_keys_and_values_of_the_value_tree() {
        for (shape, run) in shapes() {
            let typed: Value = serde_json::to_value(Document::of(&run)).expect("serializes");
            assert_eq!(typed, legacy(&run), "{shape}");
            let pretty = serde_json::to_vec_pretty(&Document::of(&run)).expect("serializes");
            let parsed: Value = serde_json::from_slice(&pretty).expect("parses");
            assert_eq!(parsed, typed, "{shape}");
            assert_eq!(crate::audit::document(&run), typed, "{shape}");
        }
    }

    #[test]
    fn secret_vars_are_redacted() {
        let (_, run) = shapes().swap_remove(1);
        let text = String::from_utf8(serde_json::to_vec_pretty(&Document::of(&run)).unwrap())
            .expect("utf-8");
        assert!(text.contains("\"token\": \"***\""), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn keys_come_in_reading_order() {
        let (_, run) = shapes().swap_remove(1);
        let text = String::from_utf8(serde_json::to_vec_pretty(&Document::of(&run)).unwrap())
            .expect("utf-8");
        let keys = [
            "sop",
            "version",
            "run_id",
            "status",
            "priority",
            "execution_mode",
            "created_at",
            "started_at",
            "completed_at",
            "trigger",
            "skip_approval",
            "forced",
            "vars",
            "current_step",
            "waiting",
            "error",
            "steps",
            "rollback",
            "gates",
            "approvals",
            "metrics",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| {
                text.find(&format!("\n  \"{k}\": "))
                    .unwrap_or_else(|| panic!("no top-level `{k}` in {text}"))
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        let top_level = text.matches("\n  \"").count();
        assert_eq!(top_level, keys.len(), "{text}");
    }
}
