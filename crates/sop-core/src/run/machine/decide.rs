//! Decisions at gates: approve (with quorum), reject, confirm a manual step.

use crate::run::plan::{plan, Point};
use crate::run::record::{
    ApprovalRecord, DecisionKind, Millis, Phase, Run, RunStatus, StepStatus, Wait, WaitKind,
};

use super::control::fail;
use super::cursor::{phase_record_mut, phase_steps};
use super::types::{Decision, Happened, Refusal, Verb};

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
            let rec = phase_record_mut(run, i).expect("the plan's step has a record");
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

pub(super) fn check_decider(run: &Run, d: &Decision, wait: &Wait) -> Result<(), Refusal> {
    if let Some(asked) = d.gate.as_ref().filter(|g| **g != wait.gate) {
        return Err(Refusal::WrongGate {
            run: run.id.clone(),
            waiting: wait.gate.clone(),
            asked: asked.clone(),
        });
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

pub(super) fn reject(
    run: &mut Run,
    d: &Decision,
    now: Millis,
    ev: &mut Vec<Happened>,
) -> Result<(), Refusal> {
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

pub(super) fn record_decision(
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
pub(super) fn release(
    run: &mut Run,
    wait: &Wait,
    approval: bool,
    now: Millis,
    ev: &mut Vec<Happened>,
) {
    let _ = now;
    run.wait = None;
    run.status = RunStatus::Queued;
    if approval {
        if let Some(Point::Step(i)) = plan(run).get(run.cursor).copied() {
            phase_record_mut(run, i)
                .expect("the plan's step has a record")
                .approved = true;
        } else {
            run.cursor += 1;
        }
    }
    ev.push(Happened::Requeued {
        reason: format!("{} released", wait.gate),
    });
}
