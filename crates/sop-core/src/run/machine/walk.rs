//! Walking a run forward: claim, the next step or gate, spawn, exit, waits and deadlines.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{GateKind, Script, TimeoutAction};
use crate::run::plan::{gate_label, gate_pauses, plan, Point};
use crate::run::record::{
    DecisionKind, Millis, Phase, Run, RunStatus, StepRecord, StepStatus, Wait, WaitKind,
};

use super::control::fail;
use super::cursor::{phase_record_mut, phase_records, phase_steps, record_mut, target_label};
use super::decide::record_decision;
use super::types::{Action, Decision, Exec, ExitReport, Happened, Target, Verb};

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
                        let rec = run.gates.entry(gate.name.clone()).or_insert_with(|| {
                            Arc::new(StepRecord {
                                title: format!("verify: {}", gate.name),
                                ..StepRecord::default()
                            })
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
pub(super) fn walk_step(
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
                let rec = phase_record_mut(run, i).expect("the plan's step has a record");
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
        phase_record_mut(run, i)
            .expect("the plan's step has a record")
            .entered = true;
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

pub(super) fn start_exec(run: &mut Run, exec: Exec, now: Millis, ev: &mut Vec<Happened>) -> Action {
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

/// Milliseconds of a number of seconds from a manifest, saturating instead of overflowing.
pub(super) fn secs_to_ms(secs: u64) -> Millis {
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

/// Process `pid`, which [`spawned`] recorded, never ran the step's code (it was started
/// ahead of the commit and held, then let go): the step is recorded as not spawned again,
/// so that [`super::halt`] records it as not started. Nothing changes if `pid` is not the
/// one recorded (the commit that would have recorded it failed).
pub fn unspawned(run: &mut Run, target: &Target, pid: u32) {
    let rec = record_mut(run, target);
    if rec.pid == Some(pid) {
        rec.pid = None;
        rec.pid_start_time = None;
    }
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

pub(super) fn describe_exit(code: Option<i32>, signal: Option<i32>, timed_out: bool) -> String {
    if timed_out {
        "timed out".to_string()
    } else if let Some(sig) = signal {
        format!("killed by signal {sig}")
    } else {
        format!("exit code {}", code.unwrap_or(-1))
    }
}

pub(super) fn end_phase(run: &mut Run, now: Millis, ev: &mut Vec<Happened>) {
    let status = match run.phase {
        Phase::Main => RunStatus::Success,
        Phase::Rollback => run.outcome.unwrap_or(RunStatus::Failure),
    };
    finish(run, status, now, ev);
}

pub(super) fn finish(run: &mut Run, status: RunStatus, now: Millis, ev: &mut Vec<Happened>) {
    run.status = status;
    run.completed_at = Some(now);
    run.wait = None;
    ev.push(Happened::Finished { status });
}

pub(super) fn wait(
    run: &mut Run,
    point: Point,
    kind: WaitKind,
    now: Millis,
    ev: &mut Vec<Happened>,
) -> Action {
    let gate = gate_label(run, point);
    let deadline = (kind == WaitKind::Approval)
        .then(|| now.saturating_add(secs_to_ms(run.sop.approval_timeout_secs)));
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
pub(super) fn check_deadline(run: &mut Run, now: Millis, ev: &mut Vec<Happened>) -> Option<Action> {
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
            let next = deadline
                .max(now)
                .saturating_add(secs_to_ms(run.sop.approval_timeout_secs));
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
pub(super) fn passed(run: &Run, label: &str) -> bool {
    let approvals = run
        .approvals
        .iter()
        .filter(|a| a.gate == label && a.decision == DecisionKind::Approved)
        .count() as u32;
    approvals >= run.sop.required_approvals.max(1)
}

/// Value of a variable as a condition of step `i` (0-based, current phase) sees it.
pub(super) fn lookup_var(run: &Run, i: usize, name: &str) -> Option<String> {
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
