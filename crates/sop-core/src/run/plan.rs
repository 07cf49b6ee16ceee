//! The fixed sequence of points a run walks through, derived from the SOP and the run's mode.

use crate::model::{ExecutionMode, GateAt, GateKind};

use super::record::{Phase, Run};

/// One place in a run's walk. The walk of a run never changes after it is created:
/// it depends only on the SOP snapshot, the mode and `skip_approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Supervised mode: one approval before anything runs.
    StartApproval,
    /// A `[gates]` entry, by index in `Sop::gates`.
    Gate(usize),
    /// A step of the current phase, by index (0-based) in `Sop::steps` or `Sop::rollback`.
    Step(usize),
}

/// The points of `run`'s current phase, in order.
pub fn plan(run: &Run) -> Vec<Point> {
    let sop = &run.sop;
    match run.phase {
        Phase::Rollback => (0..sop.rollback.len()).map(Point::Step).collect(),
        Phase::Main => {
            let gates_at = |at: GateAt| {
                sop.gates
                    .iter()
                    .enumerate()
                    .filter(move |(_, g)| g.at == at)
                    .map(|(i, _)| Point::Gate(i))
            };
            let mut points: Vec<Point> = gates_at(GateAt::Start).collect();
            if run.mode == ExecutionMode::Supervised && !run.skip_approval {
                points.push(Point::StartApproval);
            }
            for (i, step) in sop.steps.iter().enumerate() {
                points.extend(gates_at(GateAt::Before(step.number)));
                points.push(Point::Step(i));
            }
            points.extend(gates_at(GateAt::End));
            points
        }
    }
}

/// The name of the gate a point waits at, as the audit file and the CLI show it.
pub fn gate_label(run: &Run, point: Point) -> String {
    match point {
        Point::StartApproval => "start".to_string(),
        Point::Gate(i) => format!("gate {}", run.sop.gates[i].name),
        Point::Step(i) => match run.phase {
            Phase::Main => format!("step {}", i + 1),
            Phase::Rollback => format!("rollback step {}", i + 1),
        },
    }
}

/// Whether a gate is an approval gate that pauses the run.
pub fn gate_pauses(run: &Run, index: usize) -> bool {
    matches!(
        run.sop.gates[index].kind,
        GateKind::Approval { required: true }
    ) && !run.skip_approval
}
