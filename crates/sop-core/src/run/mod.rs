//! Runs: the durable record, the fixed walk through a SOP, and the pure state machine.

mod machine;
mod plan;
mod record;

pub use machine::*;
pub use plan::{gate_label, plan, Point};
pub use record::*;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{Priority, Sop};

/// What is needed to create a run (vars already resolved and checked).
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub sop: Arc<Sop>,
    pub priority: Option<Priority>,
    pub skip_approval: bool,
    pub forced: bool,
    pub trigger: TriggerInfo,
    pub vars: BTreeMap<String, String>,
}

/// A new queued run.
pub fn new_run(n: NewRun, now: Millis) -> Run {
    let priority = n.priority.unwrap_or(n.sop.priority);
    let mode = n.sop.execution_mode.effective(priority);
    let steps = n.sop.steps.iter().map(record_for).collect();
    Run {
        id: n.id,
        priority,
        mode,
        skip_approval: n.skip_approval,
        forced: n.forced,
        trigger: n.trigger,
        status: RunStatus::Queued,
        created_at: now,
        started_at: None,
        completed_at: None,
        executed_step: false,
        vars: n.vars,
        phase: Phase::Main,
        cursor: 0,
        steps,
        rollback: Vec::new(),
        gates: BTreeMap::new(),
        approvals: Vec::new(),
        wait: None,
        outcome: None,
        cancel: None,
        error: None,
        queue_wait_ms: None,
        sop: n.sop,
    }
}
