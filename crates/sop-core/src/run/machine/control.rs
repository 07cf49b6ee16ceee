//! Operator control of a run: cancel, interruption after a crash, resume, and failing.

use crate::run::plan::{plan, Point};
use crate::run::record::{CancelRequest, Millis, Phase, Run, RunStatus, StepStatus};

use super::cursor::{current_label, current_record, current_record_mut, phase_steps, record_for};
use super::types::{Happened, Refusal, ResumeHow};
use super::walk::finish;

/// Whether a cancel applies to the step running now: a cancel asked for before the
/// rollback started does not stop the rollback it caused (a second cancel does).
pub fn cancel_requested(run: &Run) -> bool {
    run.cancel.as_ref().is_some_and(|c| c.phase == run.phase)
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
    if run
        .cancel
        .as_ref()
        .is_some_and(|c| c.phase == Phase::Rollback)
    {
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

/// The runner cannot keep the run's audit trail (or store) current: nothing more may run.
/// A step recorded as starting but never spawned fails with the reason; the run ends
/// `failure` without rollback (its steps could not be audited either).
pub fn halt(run: &mut Run, reason: &str, now: Millis, ev: &mut Vec<Happened>) {
    if run.status.is_terminal() {
        return;
    }
    let gate = current_label(run);
    if let Some(rec) =
        current_record_mut(run).filter(|r| r.status == StepStatus::Running && r.pid.is_none())
    {
        rec.status = StepStatus::Failure;
        rec.reason = Some(format!("not started: {reason}"));
        rec.completed_at = Some(now);
        ev.push(Happened::StepFinished {
            gate,
            status: StepStatus::Failure,
            exit_code: None,
        });
    }
    run.wait = None;
    run.error = Some(reason.to_string());
    finish(run, RunStatus::Failure, now, ev);
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
pub(super) fn fail(
    run: &mut Run,
    outcome: RunStatus,
    error: String,
    now: Millis,
    ev: &mut Vec<Happened>,
) {
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
            ev.push(Happened::StepFinished {
                gate,
                status: StepStatus::Failure,
                exit_code: None,
            });
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
