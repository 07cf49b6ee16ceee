//! The inputs, outputs and refusals of the run state machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Script;
use crate::run::record::{DecisionKind, Millis, Phase, RunStatus, StepStatus, WaitKind};

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

impl ExitReport {
    /// Exit code 0 in no time, with no output and no variables.
    pub fn success() -> ExitReport {
        ExitReport {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            cancelled: false,
            duration_ms: 0,
            output: String::new(),
            outputs: BTreeMap::new(),
        }
    }
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
    WrongGate {
        run: String,
        waiting: String,
        asked: String,
    },
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

impl Verb {
    /// For messages: `approve`, `reject`, `confirm`.
    pub fn name(self) -> &'static str {
        self.as_str()
    }
}
