//! The run state machine: `(run, input, now) -> run' + what happened + what to do next`.
//!
//! Every function here mutates a [`Run`] value and appends [`Happened`] events; none does
//! IO. The caller (the runtime, through a store transaction) commits the new run and the
//! events *before* acting on the returned [`Action`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{GateKind, Script, Step, TimeoutAction};

use super::plan::{gate_label, gate_pauses, plan, Point};
use super::record::{
    ApprovalRecord, CancelRequest, DecisionKind, Millis, Phase, Run, RunStatus, StepRecord,
    StepStatus, Wait, WaitKind,
};

/// What the owner of a run must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The run is queued: claim a slot through the store, then advance again.
    Claim,
    /// Run this command; the step is already recorded as running.
    Spawn(Exec),
    /// Wait for a decision (approve, reject, confirm, cancel) or the deadline.
    Wait { deadline: Option<Millis> },
    /// A retry waits until this time.
    Sleep { until: Millis },
    /// A step was interrupted: an operator decides with `sop resume`.
    Interrupted,
    /// The run is over.
    Finished(RunStatus),
}

/// Which record a spawned command belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Target {
    Step { phase: Phase, index: usize },
    Gate { name: String },
}

/// A command to spawn for the current step or verification gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub target: Target,
    pub number: u32,
    pub attempt: u32,
    pub scripts: Vec<Script>,
    pub timeout_secs: u64,
    /// Relative to the SOP directory.
    pub workdir: String,
    /// Stable across retries and resumes of the same step: `<run>:<phase>:<number>`.
    pub idempotency_key: String,
}

/// How a spawned command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    pub duration_ms: i64,
    /// Redacted, bounded output.
    pub output: String,
    /// Variables the step wrote to `$SOP_OUTPUT` (already checked by the caller).
    pub outputs: BTreeMap<String, String>,
}

/// A person's decision at a waiting gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verb: Verb,
    pub by: String,
    /// Groups `by` belongs to (for `approvers`).
    pub groups: Vec<String>,
    /// `cli`, `api`, `ui`, `command`.
    pub channel: String,
    pub comment: Option<String>,
    pub set: BTreeMap<String, String>,
    /// The gate the person decided on (`step 3`, `start`, ...), when known: a decision
    /// that arrives after the run moved on to another gate is refused, never applied to
    /// a gate nobody saw.
    pub gate: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Approve,
    Reject,
    Confirm,
    ConfirmFailed,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Approve => "approve",
            Verb::Reject => "reject",
            Verb::Confirm | Verb::ConfirmFailed => "confirm",
        }
    }
}

/// How `sop resume` continues an interrupted run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeHow {
    Retry,
    Skip,
    Abort,
}

/// Why an input was refused. The run is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("run `{run}` is {status}, not waiting for {wanted}")]
    NotWaiting {
        run: String,
        status: &'static str,
        wanted: &'static str,
    },
    #[error("`{by}` is not allowed to approve `{sop}`: approvers are {approvers}")]
    NotAnApprover {
        by: String,
        sop: String,
        approvers: String,
    },
    #[error("`{by}` started run `{run}` and `{sop}` does not allow self-approval")]
    SelfApproval {
        by: String,
        run: String,
        sop: String,
    },
    #[error("`{by}` already approved gate `{gate}`: it needs {required} distinct approvers")]
    AlreadyApproved {
        by: String,
        gate: String,
        required: u32,
    },
    #[error("run `{run}` now waits at `{waiting}`, not at `{asked}`: decide again for the gate it waits at")]
    WrongGate { run: String, waiting: String, asked: String },
    #[error("invalid variable: {0}")]
    BadVar(String),
    #[error("run `{run}` is already {status}")]
    Finished { run: String, status: &'static str },
    #[error("run `{run}` is {status}, not interrupted: nothing to resume")]
    NotInterrupted { run: String, status: &'static str },
}

/// Something that happened to a run, appended to the store's event ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Happened {
    Started,
    Requeued {
        reason: String,
    },
    StepStarted {
        gate: String,
        attempt: u32,
    },
    StepSpawned {
        gate: String,
        pid: u32,
    },
    StepFinished {
        gate: String,
        status: StepStatus,
        exit_code: Option<i32>,
    },
    StepSkipped {
        gate: String,
        reason: String,
    },
    Waiting {
        gate: String,
        kind: WaitKind,
        deadline: Option<Millis>,
    },
    Decided {
        gate: String,
        decision: DecisionKind,
        by: String,
        channel: String,
    },
    CancelRequested {
        by: String,
    },
    RollbackStarted,
    Interrupted {
        gate: String,
    },
    Resumed {
        how: ResumeHow,
        by: String,
    },
    Finished {
        status: RunStatus,
    },
}

/// Leaves the queue: the caller holds a slot granted by the scheduling policy.
pub fn claimed(run: &mut Run, now: Millis, ev: &mut Vec<Happened>) {
    if run.status != RunStatus::Queued {
        return;
    }
    run.status = RunStatus::Running;
    if run.started_at.is_none() {
        run.started_at = Some(now);
        run.queue_wait_ms = Some(now - run.created_at);
    }
    ev.push(Happened::Started);
}

/// Walks the run forward to its next action, recording skips, waits and endings.
pub fn advance(run: &mut Run, now: Millis, ev: &mut Vec<Happened>) -> Action {
    loop {
        match run.status {
            RunStatus::Queued => return Action::Claim,
            RunStatus::Interrupted => return Action::Interrupted,
            s if s.is_terminal() => return Action::Finished(s),
            RunStatus::WaitingApproval | RunStatus::WaitingConfirmation => {
                if let Some(action) = check_deadline(run, now, ev) {
                    return action;
                }
                continue;
            }
            _ => {}
        }
        let points = plan(run);
        let Some(&point) = points.get(run.cursor) else {
            end_phase(run, now, ev);
            continue;
        };
        match point {
            Point::StartApproval => {
                if passed(run, &gate_label(run, point)) {
                    run.cursor += 1;
                } else {
                    return wait(run, point, WaitKind::Approval, now, ev);
                }
            }
            Point::Gate(i) => {
                let gate = run.sop.gates[i].clone();
                match gate.kind {
                    GateKind::Approval { .. } => {
                        if !gate_pauses(run, i) || passed(run, &gate_label(run, point)) {
                            run.cursor += 1;
                        } else {
                            return wait(run, point, WaitKind::Approval, now, ev);
                        }
                    }
                    GateKind::Verification { command } => {
                        let rec =
                            run.gates
                                .entry(gate.name.clone())
                                .or_insert_with(|| StepRecord {
                                    title: format!("verify: {}", gate.name),
                                    ..StepRecord::default()
                                });
                        match rec.status {
                            StepStatus::Pending => {
                                let script = Script {
                                    interpreter: run.sop.shell.clone(),
                                    code: command,
                                    line: 0,
                                };
                                let exec = Exec {
                                    target: Target::Gate {
                                        name: gate.name.clone(),
                                    },
                                    number: 0,
                                    attempt: 0,
                                    scripts: vec![script],
                                    timeout_secs: run.sop.timeout_secs,
                                    workdir: run.sop.workdir.clone(),
                                    idempotency_key: format!("{}:gate:{}", run.id, gate.name),
                                };
                                return start_exec(run, exec, now, ev);
                            }
                            StepStatus::Running => return Action::Interrupted,
                            _ => run.cursor += 1,
                        }
                    }
                }
            }
            Point::Step(i) => {
                if let Some(action) = walk_step(run, point, i, now, ev) {
                    return action;
                }
            }
        }
    }
}

/// One step's walk: condition, approval, manual confirmation, spawn. `None`: moved on.
fn walk_step(
    run: &mut Run,
    point: Point,
    i: usize,
    now: Millis,
    ev: &mut Vec<Happened>,
) -> Option<Action> {
    let step = phase_steps(run)[i].clone();
    let label = gate_label(run, point);
    let rec = &phase_records(run)[i];
    match rec.status {
        StepStatus::Pending => {}
        StepStatus::Running | StepStatus::Interrupted => return Some(Action::Interrupted),
        _ => {
            run.cursor += 1;
            return None;
        }
    }
    if !rec.entered {
        if let Some(cond) = &step.condition {
            let lookup = |name: &str| lookup_var(run, i, name);
            if !cond.eval(&lookup) {
                let reason = format!("condition `{}` is false", cond.source());
                let rec = &mut phase_records_mut(run)[i];
                rec.status = StepStatus::Skipped;
                rec.reason = Some(reason.clone());
                rec.completed_at = Some(now);
                ev.push(Happened::StepSkipped {
                    gate: label,
                    reason,
                });
                run.cursor += 1;
                return None;
            }
        }
        phase_records_mut(run)[i].entered = true;
    }
    let rec = &phase_records(run)[i];
    let wants_approval = !run.skip_approval
        && (step.requires_approval
            || (run.mode == crate::model::ExecutionMode::StepByStep && run.phase == Phase::Main));
    if wants_approval && !rec.approved {
        return Some(wait(run, point, WaitKind::Approval, now, ev));
    }
    if step.is_manual() {
        return Some(wait(run, point, WaitKind::Confirmation, now, ev));
    }
    if let Some(until) = rec.retry_at {
        if until > now {
            return Some(Action::Sleep { until });
        }
    }
    let phase_name = match run.phase {
        Phase::Main => "step",
        Phase::Rollback => "rollback",
    };
    let exec = Exec {
        target: Target::Step {
            phase: run.phase,
            index: i,
        },
        number: step.number,
        attempt: rec.attempts + 1,
        scripts: step.scripts.clone(),
        timeout_secs: step.timeout_secs.unwrap_or(run.sop.timeout_secs),
        workdir: step
            .workdir
            .clone()
            .unwrap_or_else(|| run.sop.workdir.clone()),
        idempotency_key: format!("{}:{phase_name}:{}", run.id, step.number),
    };
    Some(start_exec(run, exec, now, ev))
}

fn start_exec(run: &mut Run, exec: Exec, now: Millis, ev: &mut Vec<Happened>) -> Action {
    let gate = target_label(run, &exec.target);
    let rec = record_mut(run, &exec.target);
    rec.status = StepStatus::Running;
    rec.attempts += 1;
    rec.started_at = Some(now);
    rec.completed_at = None;
    rec.retry_at = None;
    rec.pid = None;
    rec.pid_start_time = None;
    ev.push(Happened::StepStarted {
        gate,
        attempt: exec.attempt,
    });
    run.executed_step = true;
    Action::Spawn(exec)
}

/// Whether a cancel applies to the step running now: a cancel asked for before the
/// rollback started does not stop the rollback it caused (a second cancel does).
pub fn cancel_requested(run: &Run) -> bool {
    run.cancel.as_ref().is_some_and(|c| c.phase == run.phase)
}

/// Milliseconds of a number of seconds from a manifest, saturating instead of overflowing.
fn secs_to_ms(secs: u64) -> Millis {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

/// Records the pid of the process now running the current step.
pub fn spawned(run: &mut Run, target: &Target, pid: u32, start_time: u64, ev: &mut Vec<Happened>) {
    let gate = target_label(run, target);
    let rec = record_mut(run, target);
    rec.pid = Some(pid);
    rec.pid_start_time = Some(start_time);
    ev.push(Happened::StepSpawned { gate, pid });
}

/// Records how the current step's process ended and what follows from it.
pub fn exited(
    run: &mut Run,
    target: &Target,
    report: ExitReport,
    now: Millis,
    ev: &mut Vec<Happened>,
) {
    let gate = target_label(run, target);
    let (retry, retry_delay, continue_on_error) = match target {
        Target::Step { phase, index } => {
            let step = match phase {
                Phase::Main => &run.sop.steps[*index],
                Phase::Rollback => &run.sop.rollback[*index],
            };
            (step.retry, step.retry_delay_secs, step.continue_on_error)
        }
        Target::Gate { .. } => (0, 0, false),
    };
    let status = if report.cancelled {
        StepStatus::Cancelled
    } else if report.timed_out {
        StepStatus::TimedOut
    } else if report.exit_code == Some(0) {
        StepStatus::Success
    } else {
        StepStatus::Failure
    };
    let rec = record_mut(run, target);
    rec.exit_code = report.exit_code;
    rec.output = report.output;
    rec.duration_ms = Some(report.duration_ms);
    rec.pid = None;
    rec.pid_start_time = None;
    let failed_attempt = matches!(status, StepStatus::Failure | StepStatus::TimedOut);
    if failed_attempt && rec.attempts <= retry {
        rec.status = StepStatus::Pending;
        rec.retry_at = Some(now.saturating_add(secs_to_ms(retry_delay)));
        rec.reason = Some(describe_exit(
            report.exit_code,
            report.signal,
            report.timed_out,
        ));
        ev.push(Happened::StepFinished {
            gate,
            status,
            exit_code: report.exit_code,
        });
        return;
    }
    rec.status = status;
    rec.completed_at = Some(now);
    rec.reason = (status != StepStatus::Success)
        .then(|| describe_exit(report.exit_code, report.signal, report.timed_out));
    ev.push(Happened::StepFinished {
        gate,
        status,
        exit_code: report.exit_code,
    });
    for (k, v) in report.outputs {
        run.vars.insert(k, v);
    }
    match status {
        StepStatus::Success => run.cursor += 1,
        StepStatus::Cancelled => {
            let by = run
                .cancel
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |c| c.by.clone());
            fail(
                run,
                RunStatus::Cancelled,
                format!("cancelled by {by}"),
                now,
                ev,
            );
        }
        _ if continue_on_error || run.phase == Phase::Rollback => run.cursor += 1,
        _ => {
            let err = format!(
                "{} failed: {}",
                target_label(run, target),
                describe_exit(report.exit_code, report.signal, report.timed_out)
            );
            fail(run, RunStatus::Failure, err, now, ev);
        }
    }
}

fn describe_exit(code: Option<i32>, signal: Option<i32>, timed_out: bool) -> String {
    if timed_out {
        "timed out".to_string()
    } else if let Some(sig) = signal {
        format!("killed by signal {sig}")
    } else {
        format!("exit code {}", code.unwrap_or(-1))
    }
}

/// Applies an approve, reject or confirm at the gate the run waits at.
pub fn decide(
    run: &mut Run,
    d: &Decision,
    now: Millis,
    ev: &mut Vec<Happened>,
) -> Result<(), Refusal> {
    let wanted_kind = match d.verb {
        Verb::Approve | Verb::Reject => WaitKind::Approval,
        Verb::Confirm | Verb::ConfirmFailed => WaitKind::Confirmation,
    };
    let wanted_text = match wanted_kind {
        WaitKind::Approval => "approval",
        WaitKind::Confirmation => "confirmation",
    };
    let Some(wait) = run
        .wait
        .clone()
        .filter(|w| w.kind == wanted_kind && run.status.is_waiting())
    else {
        // A manual step may be rejected like an approval: allowed below, only for reject.
        if d.verb == Verb::Reject && run.status == RunStatus::WaitingConfirmation {
            return reject(run, d, now, ev);
        }
        return Err(Refusal::NotWaiting {
            run: run.id.clone(),
            status: run.status.as_str(),
            wanted: wanted_text,
        });
    };
    check_decider(run, d, &wait)?;
    if let Err(errors) = crate::vars::check_set(&run.sop.vars, &d.set) {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(Refusal::BadVar(text.join("; ")));
    }
    if d.verb != Verb::Reject {
        run.vars
            .extend(d.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    match d.verb {
        Verb::Reject => reject(run, d, now, ev),
        Verb::Approve => {
            let mut wait = wait;
            wait.approved_by.push(d.by.clone());
            record_decision(run, &wait, DecisionKind::Approved, d, now, ev);
            if (wait.approved_by.len() as u32) < wait.required {
                run.wait = Some(wait);
                return Ok(());
            }
            release(run, &wait, true, now, ev);
            Ok(())
        }
        Verb::Confirm | Verb::ConfirmFailed => {
            let kind = if d.verb == Verb::Confirm {
                DecisionKind::Confirmed
            } else {
                DecisionKind::ConfirmedFailed
            };
            record_decision(run, &wait, kind, d, now, ev);
            release(run, &wait, false, now, ev);
            let Some(Point::Step(i)) = plan(run).get(run.cursor).copied() else {
                return Ok(());
            };
            let continue_on_error = phase_steps(run)[i].continue_on_error;
            let gate = wait.gate.clone();
            let rec = &mut phase_records_mut(run)[i];
            rec.attempts += 1;
            rec.started_at.get_or_insert(wait.since);
            rec.completed_at = Some(now);
            rec.duration_ms = Some(now - wait.since);
            rec.status = if kind == DecisionKind::Confirmed {
                StepStatus::Success
            } else {
                StepStatus::Failure
            };
            let status = rec.status;
            if kind == DecisionKind::ConfirmedFailed {
                rec.reason = Some(format!("marked failed by {}", d.by));
            }
            ev.push(Happened::StepFinished {
                gate: gate.clone(),
                status,
                exit_code: None,
            });
            run.executed_step = true;
            if status == StepStatus::Success || continue_on_error || run.phase == Phase::Rollback {
                run.cursor += 1;
            } else {
                fail(
                    run,
                    RunStatus::Failure,
                    format!("{gate} marked failed by {}", d.by),
                    now,
                    ev,
                );
            }
            Ok(())
        }
    }
}

fn check_decider(run: &Run, d: &Decision, wait: &Wait) -> Result<(), Refusal> {
    if let Some(asked) = d.gate.as_ref().filter(|g| **g != wait.gate) {
        return Err(Refusal::WrongGate { run: run.id.clone(), waiting: wait.gate.clone(), asked: asked.clone() });
    }
    let sop = &run.sop;
    if !sop.approvers.is_empty()
        && !sop
            .approvers
            .iter()
            .any(|a| *a == d.by || d.groups.contains(a))
    {
        return Err(Refusal::NotAnApprover {
            by: d.by.clone(),
            sop: sop.name.clone(),
            approvers: sop.approvers.join(", "),
        });
    }
    if !sop.allow_self_approval && d.by == run.trigger.by && d.verb != Verb::Reject {
        return Err(Refusal::SelfApproval {
            by: d.by.clone(),
            run: run.id.clone(),
            sop: sop.name.clone(),
        });
    }
    if d.verb == Verb::Approve && wait.approved_by.contains(&d.by) {
        return Err(Refusal::AlreadyApproved {
            by: d.by.clone(),
            gate: wait.gate.clone(),
            required: wait.required,
        });
    }
    Ok(())
}

fn reject(run: &mut Run, d: &Decision, now: Millis, ev: &mut Vec<Happened>) -> Result<(), Refusal> {
    let Some(wait) = run.wait.clone() else {
        return Err(Refusal::NotWaiting {
            run: run.id.clone(),
            status: run.status.as_str(),
            wanted: "approval",
        });
    };
    check_decider(run, d, &wait)?;
    record_decision(run, &wait, DecisionKind::Rejected, d, now, ev);
    run.wait = None;
    run.status = RunStatus::Queued;
    let reason = d.comment.clone().unwrap_or_default();
    fail(
        run,
        RunStatus::Rejected,
        format!("{} rejected by {}: {reason}", wait.gate, d.by),
        now,
        ev,
    );
    Ok(())
}

fn record_decision(
    run: &mut Run,
    wait: &Wait,
    decision: DecisionKind,
    d: &Decision,
    now: Millis,
    ev: &mut Vec<Happened>,
) {
    run.approvals.push(ApprovalRecord {
        gate: wait.gate.clone(),
        decision,
        by: d.by.clone(),
        channel: d.channel.clone(),
        at: now,
        comment: d.comment.clone(),
        waited_ms: now - wait.since,
    });
    ev.push(Happened::Decided {
        gate: wait.gate.clone(),
        decision,
        by: d.by.clone(),
        channel: d.channel.clone(),
    });
}

/// The wait is over in favour of going on. The run goes back to the queue: waiting runs
/// hold no slot, so it must claim one again before its next step.
fn release(run: &mut Run, wait: &Wait, approval: bool, now: Millis, ev: &mut Vec<Happened>) {
    let _ = now;
    run.wait = None;
    run.status = RunStatus::Queued;
    if approval {
        if let Some(Point::Step(i)) = plan(run).get(run.cursor).copied() {
            phase_records_mut(run)[i].approved = true;
        } else {
            run.cursor += 1;
        }
    }
    ev.push(Happened::Requeued {
        reason: format!("{} released", wait.gate),
    });
}

/// Asks a run to stop. A running step is killed by its owner, who then reports it cancelled;
/// any other active run ends here (with rollback when a step already ran).
/// Returns true when a step process must be killed by the owner.
pub fn cancel(
    run: &mut Run,
    by: &str,
    now: Millis,
    ev: &mut Vec<Happened>,
) -> Result<bool, Refusal> {
    if run.status.is_terminal() {
        return Err(Refusal::Finished {
            run: run.id.clone(),
            status: run.status.as_str(),
        });
    }
    if run.cancel.as_ref().is_some_and(|c| c.phase == Phase::Rollback) {
        return Err(Refusal::Finished {
            run: run.id.clone(),
            status: "cancelled during its rollback",
        });
    }
    run.cancel = Some(CancelRequest {
        by: by.to_string(),
        at: now,
        phase: run.phase,
    });
    ev.push(Happened::CancelRequested { by: by.to_string() });
    if run.status == RunStatus::Running
        && current_record(run).is_some_and(|r| r.status == StepStatus::Running)
    {
        return Ok(true);
    }
    if let Some(rec) = current_record_mut(run)
        .filter(|r| matches!(r.status, StepStatus::Interrupted | StepStatus::Running))
    {
        rec.status = StepStatus::Cancelled;
        rec.completed_at = Some(now);
    }
    run.wait = None;
    // Nothing runs now, so the run holds no slot: rollback steps claim one first.
    run.status = RunStatus::Queued;
    fail(
        run,
        RunStatus::Cancelled,
        format!("cancelled by {by}"),
        now,
        ev,
    );
    Ok(false)
}

/// The owner of the run died: a running step becomes `interrupted` (never re-run silently).
/// A run between steps simply goes back to the queue.
pub fn interrupt(run: &mut Run, now: Millis, ev: &mut Vec<Happened>) {
    if !matches!(run.status, RunStatus::Running) {
        return;
    }
    let label = current_label(run);
    match current_record_mut(run) {
        Some(rec) if rec.status == StepStatus::Running => {
            rec.status = StepStatus::Interrupted;
            rec.reason = Some("the process running this step stopped".to_string());
            rec.completed_at = Some(now);
            rec.pid = None;
            rec.pid_start_time = None;
            run.status = RunStatus::Interrupted;
            ev.push(Happened::Interrupted { gate: label });
        }
        _ => {
            run.status = RunStatus::Queued;
            ev.push(Happened::Requeued {
                reason: "owner process stopped between steps".to_string(),
            });
        }
    }
}

/// Whether the interrupted step may be retried without asking (`idempotent: true`).
pub fn interrupted_step_is_idempotent(run: &Run) -> bool {
    run.status == RunStatus::Interrupted
        && matches!(plan(run).get(run.cursor), Some(Point::Step(i)) if phase_steps(run)[*i].idempotent)
}

/// `sop resume`: retry, skip or abort the interrupted step.
pub fn resume(
    run: &mut Run,
    how: ResumeHow,
    by: &str,
    now: Millis,
    ev: &mut Vec<Happened>,
) -> Result<(), Refusal> {
    if run.status != RunStatus::Interrupted {
        return Err(Refusal::NotInterrupted {
            run: run.id.clone(),
            status: run.status.as_str(),
        });
    }
    ev.push(Happened::Resumed {
        how,
        by: by.to_string(),
    });
    let label = current_label(run);
    match how {
        ResumeHow::Retry => {
            if let Some(rec) = current_record_mut(run) {
                rec.status = StepStatus::Pending;
                rec.completed_at = None;
            }
            run.status = RunStatus::Queued;
        }
        ResumeHow::Skip => {
            if let Some(rec) = current_record_mut(run) {
                rec.status = StepStatus::Skipped;
                rec.reason = Some(format!("skipped by {by} after interruption"));
                rec.completed_at = Some(now);
            }
            run.cursor += 1;
            run.status = RunStatus::Queued;
            ev.push(Happened::StepSkipped {
                gate: label,
                reason: format!("skipped by {by}"),
            });
        }
        ResumeHow::Abort => {
            run.status = RunStatus::Queued;
            fail(
                run,
                RunStatus::Cancelled,
                format!("aborted by {by} after interruption"),
                now,
                ev,
            );
        }
    }
    Ok(())
}

/// Ends the main phase badly: rollback runs when a step already ran, else the run ends.
fn fail(run: &mut Run, outcome: RunStatus, error: String, now: Millis, ev: &mut Vec<Happened>) {
    run.wait = None;
    if run.error.is_none() {
        run.error = Some(error.clone());
    }
    if run.phase == Phase::Rollback {
        if outcome == RunStatus::Cancelled {
            // A cancel during rollback stops it.
            finish(run, RunStatus::Cancelled, now, ev);
            return;
        }
        // A rollback step's gate was rejected or timed out: that step fails and the
        // rollback goes on, like after any failed rollback step.
        let gate = current_label(run);
        if let Some(rec) = current_record_mut(run).filter(|r| !r.status.is_done()) {
            rec.status = StepStatus::Failure;
            rec.reason = Some(error);
            rec.completed_at = Some(now);
            ev.push(Happened::StepFinished { gate, status: StepStatus::Failure, exit_code: None });
        }
        run.cursor += 1;
        return;
    }
    run.outcome = Some(outcome);
    if run.executed_step && !run.sop.rollback.is_empty() {
        run.phase = Phase::Rollback;
        run.cursor = 0;
        run.rollback = run.sop.rollback.iter().map(record_for).collect();
        ev.push(Happened::RollbackStarted);
    } else {
        finish(run, outcome, now, ev);
    }
}

fn end_phase(run: &mut Run, now: Millis, ev: &mut Vec<Happened>) {
    let status = match run.phase {
        Phase::Main => RunStatus::Success,
        Phase::Rollback => run.outcome.unwrap_or(RunStatus::Failure),
    };
    finish(run, status, now, ev);
}

fn finish(run: &mut Run, status: RunStatus, now: Millis, ev: &mut Vec<Happened>) {
    run.status = status;
    run.completed_at = Some(now);
    run.wait = None;
    ev.push(Happened::Finished { status });
}

fn wait(
    run: &mut Run,
    point: Point,
    kind: WaitKind,
    now: Millis,
    ev: &mut Vec<Happened>,
) -> Action {
    let gate = gate_label(run, point);
    let deadline =
        (kind == WaitKind::Approval).then(|| now.saturating_add(secs_to_ms(run.sop.approval_timeout_secs)));
    let required = if kind == WaitKind::Approval {
        run.sop.required_approvals.max(1)
    } else {
        1
    };
    run.status = match kind {
        WaitKind::Approval => RunStatus::WaitingApproval,
        WaitKind::Confirmation => RunStatus::WaitingConfirmation,
    };
    run.wait = Some(Wait {
        gate: gate.clone(),
        kind,
        since: now,
        deadline,
        approved_by: Vec::new(),
        required,
    });
    ev.push(Happened::Waiting {
        gate,
        kind,
        deadline,
    });
    Action::Wait { deadline }
}

/// Applies a passed approval deadline and nothing else (no walking on): for recovery,
/// which has no driver at hand. Returns whether the run changed.
pub fn expire(run: &mut Run, now: Millis, ev: &mut Vec<Happened>) -> bool {
    if !run.status.is_waiting()
        || run
            .wait
            .as_ref()
            .and_then(|w| w.deadline)
            .is_none_or(|d| now < d)
    {
        return false;
    }
    // A rejection by the clock leaves the run queued (rollback steps claim a slot) or over.
    check_deadline(run, now, ev);
    true
}

/// Applies an approval deadline. `None`: the run's state changed; walk on.
fn check_deadline(run: &mut Run, now: Millis, ev: &mut Vec<Happened>) -> Option<Action> {
    let wait = run.wait.clone()?;
    let Some(deadline) = wait.deadline.filter(|d| now >= *d) else {
        return Some(Action::Wait {
            deadline: wait.deadline,
        });
    };
    let d = Decision {
        verb: Verb::Reject,
        by: "sop".to_string(),
        groups: Vec::new(),
        channel: "timeout".to_string(),
        comment: None,
        set: BTreeMap::new(),
        gate: None,
    };
    match run.sop.approval_timeout_action {
        TimeoutAction::Escalate => {
            record_decision(run, &wait, DecisionKind::Escalated, &d, now, ev);
            let next = deadline.max(now).saturating_add(secs_to_ms(run.sop.approval_timeout_secs));
            if let Some(w) = run.wait.as_mut() {
                w.deadline = Some(next);
            }
            ev.push(Happened::Waiting {
                gate: wait.gate.clone(),
                kind: wait.kind,
                deadline: Some(next),
            });
            Some(Action::Wait {
                deadline: Some(next),
            })
        }
        TimeoutAction::Reject => {
            record_decision(run, &wait, DecisionKind::TimedOut, &d, now, ev);
            run.status = RunStatus::Queued;
            fail(
                run,
                RunStatus::TimedOut,
                format!("{} was not approved in time", wait.gate),
                now,
                ev,
            );
            None
        }
    }
}

/// Whether an approval at `label` already passed (quorum reached) in this run.
fn passed(run: &Run, label: &str) -> bool {
    let approvals = run
        .approvals
        .iter()
        .filter(|a| a.gate == label && a.decision == DecisionKind::Approved)
        .count() as u32;
    approvals >= run.sop.required_approvals.max(1)
}

/// Value of a variable as a condition of step `i` (0-based, current phase) sees it.
fn lookup_var(run: &Run, i: usize, name: &str) -> Option<String> {
    let records = phase_records(run);
    match name {
        "previous_step" => Some(if i == 0 {
            String::new()
        } else {
            records[i - 1].status.condition_value().to_string()
        }),
        "run_id" => Some(run.id.clone()),
        "sop_name" => Some(run.sop.name.clone()),
        "trigger" => Some(run.trigger.kind.clone()),
        _ => {
            if let Some(n) = name
                .strip_prefix("step_")
                .and_then(|n| n.parse::<usize>().ok())
            {
                if let Some(rec) = run.steps.get(n.wrapping_sub(1)) {
                    return Some(rec.status.condition_value().to_string());
                }
            }
            run.vars.get(name).cloned()
        }
    }
}

/// A fresh record for a step.
pub fn record_for(step: &Step) -> StepRecord {
    StepRecord {
        number: step.number,
        title: step.title.clone(),
        ..StepRecord::default()
    }
}

fn phase_steps(run: &Run) -> &[Step] {
    match run.phase {
        Phase::Main => &run.sop.steps,
        Phase::Rollback => &run.sop.rollback,
    }
}

fn phase_records(run: &Run) -> &[StepRecord] {
    match run.phase {
        Phase::Main => &run.steps,
        Phase::Rollback => &run.rollback,
    }
}

fn phase_records_mut(run: &mut Run) -> &mut Vec<StepRecord> {
    match run.phase {
        Phase::Main => &mut run.steps,
        Phase::Rollback => &mut run.rollback,
    }
}

fn record_mut<'a>(run: &'a mut Run, target: &Target) -> &'a mut StepRecord {
    match target {
        Target::Step {
            phase: Phase::Main,
            index,
        } => &mut run.steps[*index],
        Target::Step {
            phase: Phase::Rollback,
            index,
        } => &mut run.rollback[*index],
        Target::Gate { name } => run.gates.entry(name.clone()).or_default(),
    }
}

fn target_label(run: &Run, target: &Target) -> String {
    match target {
        Target::Step {
            phase: Phase::Main,
            index,
        } => format!("step {}", index + 1),
        Target::Step {
            phase: Phase::Rollback,
            index,
        } => format!("rollback step {}", index + 1),
        Target::Gate { name } => {
            let _ = run;
            format!("gate {name}")
        }
    }
}

/// The record under the cursor (step or verification gate), if any.
pub fn current_record(run: &Run) -> Option<&StepRecord> {
    match plan(run).get(run.cursor)? {
        Point::Step(i) => phase_records(run).get(*i),
        Point::Gate(i) => run.gates.get(&run.sop.gates[*i].name),
        Point::StartApproval => None,
    }
}

fn current_record_mut(run: &mut Run) -> Option<&mut StepRecord> {
    match *plan(run).get(run.cursor)? {
        Point::Step(i) => phase_records_mut(run).get_mut(i),
        Point::Gate(i) => {
            let name = run.sop.gates[i].name.clone();
            run.gates.get_mut(&name)
        }
        Point::StartApproval => None,
    }
}

/// The label of the point under the cursor (`step 3`, `gate post_patch`, ...).
pub fn current_label(run: &Run) -> String {
    plan(run)
        .get(run.cursor)
        .map_or_else(|| "end".to_string(), |p| gate_label(run, *p))
}

/// The target of the step under the cursor, if it is a step or verification gate.
pub fn current_target(run: &Run) -> Option<Target> {
    match *plan(run).get(run.cursor)? {
        Point::Step(index) => Some(Target::Step {
            phase: run.phase,
            index,
        }),
        Point::Gate(i) => Some(Target::Gate {
            name: run.sop.gates[i].name.clone(),
        }),
        Point::StartApproval => None,
    }
}

impl Verb {
    /// For messages: `approve`, `reject`, `confirm`.
    pub fn name(self) -> &'static str {
        self.as_str()
    }
}
