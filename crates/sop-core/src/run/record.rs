//! The durable record of one run: what the store keeps and the audit file shows.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{ExecutionMode, Priority, Sop};

/// Milliseconds since the Unix epoch, UTC. The core never reads a clock: callers pass `now`.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    WaitingApproval,
    WaitingConfirmation,
    Success,
    Failure,
    Rejected,
    Cancelled,
    /// The approval deadline passed (`approval_timeout_action = "reject"`).
    TimedOut,
    /// The process running a step died; an operator decides with `sop resume`.
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 10] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::WaitingApproval,
        RunStatus::WaitingConfirmation,
        RunStatus::Success,
        RunStatus::Failure,
        RunStatus::Rejected,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
        RunStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting_approval",
            RunStatus::WaitingConfirmation => "waiting_confirmation",
            RunStatus::Success => "success",
            RunStatus::Failure => "failure",
            RunStatus::Rejected => "rejected",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Finished for good: nothing more will happen to the run.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Success
                | RunStatus::Failure
                | RunStatus::Rejected
                | RunStatus::Cancelled
                | RunStatus::TimedOut
        )
    }

    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            RunStatus::WaitingApproval | RunStatus::WaitingConfirmation
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    #[default]
    Pending,
    Running,
    Success,
    Failure,
    Skipped,
    Cancelled,
    TimedOut,
    Interrupted,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Success => "success",
            StepStatus::Failure => "failure",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Interrupted => "interrupted",
        }
    }

    /// The value of `previous_step` / `step_N` after this status.
    pub fn condition_value(self) -> &'static str {
        match self {
            StepStatus::Success => "success",
            StepStatus::Skipped => "skipped",
            StepStatus::Pending | StepStatus::Running => "",
            _ => "failure",
        }
    }

    pub fn is_done(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Running)
    }
}

/// Where a run came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerInfo {
    /// `manual`, `command`, `file_watch`, `schedule`, `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    pub by: String,
}

/// One attempt-accumulating record of a step (main or rollback) or a verification gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StepRecord {
    pub number: u32,
    pub title: String,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Stored output of the last attempt, redacted and bounded.
    pub output: String,
    pub attempts: u32,
    /// Why the step was skipped, failed or interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Process of the running attempt, identified by pid and start time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_start_time: Option<u64>,
    /// The condition was evaluated and held (retries and resumes do not re-evaluate it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub entered: bool,
    /// The pre-step approval was granted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub approved: bool,
    /// A retry waits until this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Millis>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Approved,
    Rejected,
    Confirmed,
    /// A manual step confirmed as failed.
    ConfirmedFailed,
    /// The deadline passed and `approval_timeout_action = "escalate"`: waiting goes on.
    Escalated,
    /// The deadline passed and the gate was rejected by the clock.
    TimedOut,
}

/// One decision at a gate, as the audit file shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// `start`, `step 3`, `gate pre_patch`, `rollback step 1`.
    pub gate: String,
    pub decision: DecisionKind,
    pub by: String,
    pub channel: String,
    pub at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub waited_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    Approval,
    Confirmation,
}

/// What a waiting run waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    pub gate: String,
    pub kind: WaitKind,
    pub since: Millis,
    /// Approval waits only; confirmations of manual steps have no deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Millis>,
    /// Distinct identities that approved so far (quorum).
    pub approved_by: Vec<String>,
    pub required: u32,
}

/// Which list of steps the run is walking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Main,
    Rollback,
}

/// A cancel asked for while a step runs; the owner kills the step and applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub by: String,
    pub at: Millis,
    /// The phase it was asked for in: a cancel of the main phase does not stop the
    /// rollback it causes.
    #[serde(default)]
    pub phase: Phase,
}

/// Everything the store keeps about a run.
///
/// Serialized, a run is its *head* only: the SOP snapshot and the step records (`steps`,
/// `rollback`, `gates`) are skipped, because the store keeps them in rows of their own so
/// that a transition rewrites only what changed (a 1,000-step run does not rewrite 1,000
/// records per step). Whoever deserializes a head fills those fields in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    /// The SOP as it was when the run was created; shared, never changed during the run.
    #[serde(skip)]
    pub sop: Arc<Sop>,
    pub priority: Priority,
    /// The mode in effect (`priority_based` resolved).
    pub mode: ExecutionMode,
    pub skip_approval: bool,
    /// `--force` overrode a cooldown.
    pub forced: bool,
    pub trigger: TriggerInfo,
    pub status: RunStatus,
    pub created_at: Millis,
    /// First claimed (left the queue).
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    /// A step process was started at least once (cooldown anchor, rollback eligibility).
    pub executed_step: bool,
    pub vars: BTreeMap<String, String>,
    pub phase: Phase,
    /// Index into [`crate::run::plan`] of the phase.
    pub cursor: usize,
    /// Step records are shared between copies of a run (`Arc::make_mut` on change), so a
    /// copy costs a pointer per record and comparing two copies skips shared records: the
    /// store keeps the run as read to write only the records that changed.
    #[serde(skip)]
    pub steps: Vec<Arc<StepRecord>>,
    #[serde(skip)]
    pub rollback: Vec<Arc<StepRecord>>,
    /// Verification gates, by gate name.
    #[serde(skip)]
    pub gates: BTreeMap<String, Arc<StepRecord>>,
    pub approvals: Vec<ApprovalRecord>,
    pub wait: Option<Wait>,
    /// The final status once the main phase ended badly (rollback then runs).
    pub outcome: Option<RunStatus>,
    pub cancel: Option<CancelRequest>,
    /// Why the run failed, in one line.
    pub error: Option<String>,
    /// Time spent queued before the first claim.
    pub queue_wait_ms: Option<i64>,
}

impl Run {
    /// A copy without the step records (`steps`, `rollback`, `gates` empty): cheap, since
    /// the SOP is shared.
    #[must_use]
    pub fn clone_head(&self) -> Run {
        Run {
            id: self.id.clone(),
            sop: Arc::clone(&self.sop),
            priority: self.priority,
            mode: self.mode,
            skip_approval: self.skip_approval,
            forced: self.forced,
            trigger: self.trigger.clone(),
            status: self.status,
            created_at: self.created_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
            executed_step: self.executed_step,
            vars: self.vars.clone(),
            phase: self.phase,
            cursor: self.cursor,
            steps: Vec::new(),
            rollback: Vec::new(),
            gates: BTreeMap::new(),
            approvals: self.approvals.clone(),
            wait: self.wait.clone(),
            outcome: self.outcome,
            cancel: self.cancel.clone(),
            error: self.error.clone(),
            queue_wait_ms: self.queue_wait_ms,
        }
    }

    /// The step record the run is at (main or rollback), if the cursor is on a step.
    pub fn is_active(&self) -> bool {
        !self.status.is_terminal()
    }
}
