//! Where a run is: the record and label under its cursor, and the records of its phase.

use std::sync::Arc;

use crate::model::Step;
use crate::run::plan::{gate_label, plan, Point};
use crate::run::record::{Phase, Run, StepRecord};

use super::types::Target;

/// A fresh record for a step.
pub fn record_for(step: &Step) -> Arc<StepRecord> {
    Arc::new(StepRecord {
        number: step.number,
        title: step.title.clone(),
        ..StepRecord::default()
    })
}

pub(super) fn phase_steps(run: &Run) -> &[Step] {
    match run.phase {
        Phase::Main => &run.sop.steps,
        Phase::Rollback => &run.sop.rollback,
    }
}

pub(super) fn phase_records(run: &Run) -> &[Arc<StepRecord>] {
    match run.phase {
        Phase::Main => &run.steps,
        Phase::Rollback => &run.rollback,
    }
}

/// Record `i` of the run's phase, for changing (unshared first if a copy shares it).
pub(super) fn phase_record_mut(run: &mut Run, i: usize) -> Option<&mut StepRecord> {
    let records = match run.phase {
        Phase::Main => &mut run.steps,
        Phase::Rollback => &mut run.rollback,
    };
    records.get_mut(i).map(Arc::make_mut)
}

pub(super) fn record_mut<'a>(run: &'a mut Run, target: &Target) -> &'a mut StepRecord {
    match target {
        Target::Step {
            phase: Phase::Main,
            index,
        } => Arc::make_mut(&mut run.steps[*index]),
        Target::Step {
            phase: Phase::Rollback,
            index,
        } => Arc::make_mut(&mut run.rollback[*index]),
        Target::Gate { name } => Arc::make_mut(run.gates.entry(name.clone()).or_default()),
    }
}

pub(super) fn target_label(run: &Run, target: &Target) -> String {
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
        Point::Step(i) => phase_records(run).get(*i).map(AsRef::as_ref),
        Point::Gate(i) => run.gates.get(&run.sop.gates[*i].name).map(AsRef::as_ref),
        Point::StartApproval => None,
    }
}

pub(super) fn current_record_mut(run: &mut Run) -> Option<&mut StepRecord> {
    match *plan(run).get(run.cursor)? {
        Point::Step(i) => phase_record_mut(run, i),
        Point::Gate(i) => {
            let name = run.sop.gates[i].name.clone();
            run.gates.get_mut(&name).map(Arc::make_mut)
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
