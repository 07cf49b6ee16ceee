//! `OpenAPI` schemas of the JSON documents other crates produce: the checked SOP
//! (`sop_core::Sop` as serde writes it) and the run document (`sop_runtime::audit`). The
//! types here only describe; the router tests check real answers against them.
#![allow(dead_code)] // documentation only: never constructed

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::shapes::{PriorityName, RunStatusName, WaitKindName};

/// A run: the same document as its audit file (`logs/sop/<sop>/<time>.json`) and
/// `sop status --json`. Times are RFC 3339, UTC; secret variables are `***`.
#[derive(Serialize, ToSchema)]
pub struct RunDocument {
    sop: String,
    version: String,
    run_id: String,
    status: RunStatusName,
    priority: PriorityName,
    execution_mode: ExecutionModeName,
    created_at: String,
    started_at: Option<String>,
    completed_at: Option<String>,
    trigger: TriggerDoc,
    skip_approval: bool,
    forced: bool,
    vars: BTreeMap<String, String>,
    /// Number of the step running now.
    current_step: Option<u32>,
    waiting: Option<WaitingDoc>,
    /// Why the run failed, in one line.
    error: Option<String>,
    steps: Vec<StepRecordDoc>,
    rollback: Vec<StepRecordDoc>,
    /// Verification gates by name.
    gates: BTreeMap<String, StepRecordDoc>,
    approvals: Vec<ApprovalRecordDoc>,
    metrics: MetricsDoc,
    /// Only while the run is queued (API and `sop status`, not the audit file): why it
    /// waits and its place in the queue.
    #[schema(nullable = false)]
    queue: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionModeName {
    Automatic,
    Supervised,
    StepByStep,
    PriorityBased,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatusName {
    Pending,
    Running,
    Success,
    Failure,
    Skipped,
    Cancelled,
    TimedOut,
    Interrupted,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionName {
    Approved,
    Rejected,
    Confirmed,
    ConfirmedFailed,
    Escalated,
    TimedOut,
}

#[derive(Serialize, ToSchema)]
pub struct TriggerDoc {
    /// `manual`, `command`, `file_watch`, `schedule`, `webhook`.
    #[serde(rename = "type")]
    kind: String,
    by: String,
}

/// `"anyone"`, or the names and groups allowed to approve.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ApproversDoc {
    Anyone(String),
    Names(Vec<String>),
}

#[derive(Serialize, ToSchema)]
pub struct WaitingDoc {
    gate: String,
    kind: WaitKindName,
    since: String,
    deadline: Option<String>,
    approved_by: Vec<String>,
    required: u32,
    approvers: ApproversDoc,
    self_approval: bool,
    /// What happens at the deadline: `reject` or `escalate`.
    timeout_action: String,
}

#[derive(Serialize, ToSchema)]
pub struct StepRecordDoc {
    number: u32,
    title: String,
    status: StepStatusName,
    started_at: Option<String>,
    completed_at: Option<String>,
    duration_ms: Option<i64>,
    exit_code: Option<i32>,
    /// Output of the last attempt, redacted and bounded.
    output: String,
    attempts: u32,
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApprovalRecordDoc {
    gate: String,
    decision: DecisionName,
    by: String,
    /// `cli`, `api`, `ui`, `command`.
    channel: String,
    at: String,
    comment: Option<String>,
    waited_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct MetricsDoc {
    total_duration_ms: Option<i64>,
    queue_wait_ms: Option<i64>,
    steps_total: u64,
    steps_completed: u64,
    steps_skipped: u64,
    steps_failed: u64,
    approval_waits: u64,
    approval_wait_ms: i64,
}

/// A checked SOP (`sop show --json`); defaults of secret variables are `***`.
#[derive(Serialize, ToSchema)]
pub struct SopDocument {
    name: String,
    description: String,
    version: String,
    priority: PriorityName,
    execution_mode: ExecutionModeName,
    cooldown_secs: u64,
    max_concurrent: u32,
    timeout_secs: u64,
    approval_timeout_secs: u64,
    /// `reject` or `escalate`.
    approval_timeout_action: String,
    approvers: Vec<String>,
    required_approvals: u32,
    allow_self_approval: bool,
    workdir: String,
    shell: String,
    /// `parallel`, `hold`, `coalesce`, `drop`.
    admission_policy: String,
    max_pending_approvals: u32,
    vars: BTreeMap<String, VarDeclDoc>,
    /// `{"type": "command"|"file_watch"|"schedule"|"webhook"|"manual", ...}`.
    #[schema(value_type = Vec<Object>)]
    triggers: Vec<serde_json::Value>,
    /// `{"name", "at", "kind"}`.
    #[schema(value_type = Vec<Object>)]
    gates: Vec<serde_json::Value>,
    steps: Vec<StepDoc>,
    rollback: Vec<StepDoc>,
}

#[derive(Serialize, ToSchema)]
pub struct VarDeclDoc {
    required: bool,
    pattern: Option<String>,
    default: Option<String>,
    description: Option<String>,
    secret: bool,
}

#[derive(Serialize, ToSchema)]
pub struct StepDoc {
    number: u32,
    title: String,
    description: String,
    /// The parsed `[if: ...]` condition.
    #[schema(value_type = Option<Object>)]
    condition: Option<serde_json::Value>,
    requires_approval: bool,
    timeout_secs: Option<u64>,
    retry: u32,
    retry_delay_secs: u64,
    continue_on_error: bool,
    idempotent: bool,
    shell: Option<String>,
    workdir: Option<String>,
    outputs: Vec<String>,
    /// Executable fences in order; empty for a manual step.
    scripts: Vec<ScriptDoc>,
    metadata: BTreeMap<String, String>,
    line: u32,
}

#[derive(Serialize, ToSchema)]
pub struct ScriptDoc {
    interpreter: String,
    code: String,
    line: u32,
}

/// `GET /api/metrics`: figures per window, overall and per SOP (`sop_core::metrics`).
#[derive(Serialize, ToSchema)]
pub struct MetricsDocument {
    overall: WindowsDoc,
    /// Per SOP name: SOPs with runs or suppressed triggers.
    sops: BTreeMap<String, WindowsDoc>,
}

/// A run belongs to a window by the time it was created; a suppressed trigger by the time
/// it fired.
#[derive(Serialize, ToSchema)]
pub struct WindowsDoc {
    all: FiguresDoc,
    #[serde(rename = "30d")]
    days30: FiguresDoc,
    #[serde(rename = "7d")]
    days7: FiguresDoc,
}

#[derive(Serialize, ToSchema)]
pub struct FiguresDoc {
    /// Runs created in the window.
    runs: u64,
    /// Those runs by their status now; every status is present.
    by_status: BTreeMap<String, u64>,
    /// `success` over the runs that ended; `null` before any ended.
    success_rate: Option<f64>,
    /// From the first claim to the end, of the runs that ended.
    run_duration_ms: SpreadDoc,
    /// Main steps whose process ran.
    step_duration_ms: SpreadDoc,
    /// From queued to the first claim.
    queue_wait_ms: SpreadDoc,
    /// Waits of approval gates until approved or rejected.
    approval_wait_ms: SpreadDoc,
    approvals: u64,
    /// By a person or by the approval timeout.
    rejections: u64,
    suppressed_triggers: u64,
}

/// Nearest-rank percentiles (`null` while `count` is 0), milliseconds.
#[derive(Serialize, ToSchema)]
pub struct SpreadDoc {
    count: u64,
    p50: Option<i64>,
    p95: Option<i64>,
    max: Option<i64>,
    sum: i64,
}
