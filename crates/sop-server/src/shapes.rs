//! The JSON shapes the API accepts and returns (`docs/API.md`, "Shapes"), with their
//! `OpenAPI` schemas. Requests refuse unknown fields, so a typo is an error, not ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sop_core::run::{RunStatus, Verb};
use sop_runtime::command::{CommandAnswer, FireOutcome, Fired};
use utoipa::ToSchema;

/// `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `not_waiting`, `cooldown`, `dropped`, `conflict`, `invalid_vars`, `invalid_sop`,
    /// `internal`.
    pub code: String,
    pub message: String,
}

/// Run statuses (SPEC §5).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only: the API sends the names as strings
pub enum RunStatusName {
    Queued,
    Running,
    WaitingApproval,
    WaitingConfirmation,
    Success,
    Failure,
    Rejected,
    Cancelled,
    TimedOut,
    Interrupted,
}

/// Priorities, lowest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only: the API sends the names as strings
pub enum PriorityName {
    Low,
    Medium,
    High,
    Critical,
}

/// One SOP in `GET /api/sops`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SopSummary {
    pub name: String,
    pub description: String,
    pub version: String,
    #[schema(value_type = PriorityName)]
    pub priority: &'static str,
    /// `automatic`, `supervised`, `step_by_step`, `priority_based`.
    pub execution_mode: &'static str,
    /// Number of steps.
    pub steps: usize,
    /// Trigger types: `manual`, `command`, `file_watch`, `schedule`, `webhook`.
    pub triggers: Vec<String>,
    /// Status of the newest run; `null` when the SOP never ran.
    #[schema(value_type = Option<RunStatusName>)]
    pub last_status: Option<&'static str>,
}

/// A variable value: strings as they are, numbers and booleans as their JSON text.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only: requests carry `serde_json::Value`s, checked by `routes::sops`
pub enum VarValue {
    Text(String),
    Number(f64),
    Flag(bool),
}

/// `POST /api/sops/{name}/execute`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExecuteBody {
    /// Variables of the run (string, number or boolean values).
    #[schema(value_type = BTreeMap<String, VarValue>)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Skip approvals (never manual steps). Needs the `admin` role; audited.
    pub skip_approval: bool,
    /// `low`, `medium`, `high`, `critical` (default: the SOP's).
    #[schema(value_type = Option<PriorityName>)]
    pub priority: Option<String>,
    /// Override a cooldown. Needs the `admin` role; audited.
    pub force: bool,
}

/// The answer of every call that creates or changes a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunRef {
    pub run_id: String,
    #[schema(value_type = RunStatusName)]
    pub status: &'static str,
}

impl RunRef {
    pub fn new(run_id: impl Into<String>, status: RunStatus) -> RunRef {
        RunRef {
            run_id: run_id.into(),
            status: status.as_str(),
        }
    }
}

/// `POST /api/sop/approve`: approve the run of `sop` that waits (or the one named).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBySopBody {
    pub sop: String,
    /// Needed when several runs of `sop` wait.
    pub run_id: Option<String>,
    pub comment: Option<String>,
    /// Variables to set for the rest of the run.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// The gate decided on (`step 3`, `start`, ...): refused with 409 if the run now waits
    /// at another one. Leave it out to decide whatever the run waits at.
    pub gate: Option<String>,
}

/// `POST /api/runs/{id}/approve`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    pub comment: Option<String>,
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// The gate decided on (`step 3`, `start`, ...): refused with 409 if the run now waits
    /// at another one. Leave it out to decide whatever the run waits at.
    pub gate: Option<String>,
}

/// `POST /api/runs/{id}/reject`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub reason: String,
    /// The gate decided on (`step 3`, `start`, ...): refused with 409 if the run now waits
    /// at another one. Leave it out to decide whatever the run waits at.
    pub gate: Option<String>,
}

/// `POST /api/runs/{id}/confirm`: a manual step was done (or failed).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// The manual step failed: the run fails (and rolls back).
    #[serde(default)]
    pub failed: bool,
    pub comment: Option<String>,
    /// The gate decided on (`step 3`, `start`, ...): refused with 409 if the run now waits
    /// at another one. Leave it out to decide whatever the run waits at.
    pub gate: Option<String>,
}

/// The process driving a run.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerBody {
    pub pid: u32,
    pub start_time: u64,
}

/// One run in `GET /api/runs`. Times are milliseconds since the Unix epoch.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunRowBody {
    pub id: String,
    pub sop: String,
    #[schema(value_type = RunStatusName)]
    pub status: &'static str,
    #[schema(value_type = PriorityName)]
    pub priority: &'static str,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub owner: Option<OwnerBody>,
    /// The audit file, relative to the home.
    pub audit_path: Option<String>,
}

impl From<sop_store::RunRow> for RunRowBody {
    fn from(r: sop_store::RunRow) -> RunRowBody {
        RunRowBody {
            id: r.id,
            sop: r.sop,
            status: r.status.as_str(),
            priority: r.priority.as_str(),
            created_at: r.created_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
            owner: r.owner.map(|o| OwnerBody {
                pid: o.pid,
                start_time: o.start_time,
            }),
            audit_path: r.audit_path,
        }
    }
}

/// `GET /api/runs` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, default)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of this SOP.
    pub sop: Option<String>,
    /// Only runs in these statuses (comma-separated).
    pub status: Option<String>,
    /// At most this many runs (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// `GET /api/metrics?sop=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, default)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Only this SOP's figures (they are then also `overall`).
    pub sop: Option<String>,
}

/// What kind of decision a waiting run needs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documentation only: the API sends the names as strings
pub enum WaitKindName {
    Approval,
    Confirmation,
}

/// A run waiting at a gate, in `GET /api/approvals`. Times are RFC 3339, UTC.
#[derive(Debug, Serialize, ToSchema)]
pub struct Approval {
    pub run_id: String,
    pub sop: String,
    /// `start`, `step 3`, `gate pre_patch`, `rollback step 1`.
    pub gate: String,
    #[schema(value_type = WaitKindName)]
    pub kind: &'static str,
    pub since: String,
    /// Approval waits only.
    pub deadline: Option<String>,
    /// Distinct identities that approved so far.
    pub approved_by: Vec<String>,
    /// Approvals needed.
    pub required: u32,
    /// Who may approve (names or groups); empty: anyone.
    pub approvers: Vec<String>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// Why the store cannot be written (when degraded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /api/command`: a command line (SPEC §6).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// `/approve <sop|run> [comment]`, `/reject <sop|run> <reason>`, or text matched
    /// against every SOP's `command` triggers.
    pub text: String,
    /// Do nothing; answer what would be done (`sop trigger test`).
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer to a command line: a built-in decision, or the SOPs its text matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandReply {
    /// `approve` or `reject` (a built-in), or `triggers`.
    pub kind: &'static str,
    pub dry_run: bool,
    /// The run a built-in decided (in a dry run: would decide), as it is now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRef>,
    /// The SOPs whose `command` trigger matched the text, in name order (empty: none did).
    pub matched: Vec<Matched>,
    /// SOPs with errors, which were not matched (`sop validate` tells why).
    pub invalid: Vec<String>,
}

/// One SOP a command line matched, and what became of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Matched {
    pub sop: String,
    /// The vars the trigger caught (`match_1`, ..., named groups); secrets as `***`.
    pub vars: BTreeMap<String, String>,
    /// `would_run` (dry run), `queued`, `coalesced` (into `run_id`), `suppressed` (the SOP is
    /// in cooldown: not queued) or `refused` (`error` says why).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

impl CommandReply {
    /// The reply for what [`sop_runtime::ops::Ops::command`] answered.
    pub fn new(answer: CommandAnswer, dry_run: bool) -> CommandReply {
        match answer {
            CommandAnswer::Decided { verb, run } => CommandReply {
                kind: match verb {
                    Verb::Reject => "reject",
                    _ => "approve",
                },
                dry_run,
                run: Some(RunRef::new(run.id.clone(), run.status)),
                matched: vec![],
                invalid: vec![],
            },
            CommandAnswer::Fired { fired, invalid } => CommandReply {
                kind: "triggers",
                dry_run,
                run: None,
                matched: fired.into_iter().map(Matched::new).collect(),
                invalid,
            },
        }
    }
}

/// The answer to a webhook: what became of each SOP it fired.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookReply {
    pub path: String,
    /// The SOPs served at the path that this request may fire, in name order.
    pub matched: Vec<Matched>,
    /// Top-level body fields that gave no variable: names that cannot be variables
    /// (`PATH`, `hook-id`, ...) and `null` values.
    pub skipped_fields: Vec<String>,
}

impl Matched {
    pub fn new(fired: Fired) -> Matched {
        let (outcome, run_id, error) = match fired.outcome {
            FireOutcome::WouldRun => ("would_run", None, None),
            FireOutcome::Queued(run) => ("queued", Some(run.id), None),
            FireOutcome::Coalesced(id) => ("coalesced", Some(id), None),
            FireOutcome::AlreadyFired => ("already_fired", None, None),
            FireOutcome::Suppressed {
                remaining_secs,
                run_id,
            } => {
                let message = format!(
                    "`{}` is in cooldown: {} remain (run `{run_id}` started it); the trigger was suppressed",
                    fired.sop,
                    sop_runtime::clock::human_secs(remaining_secs)
                );
                let error = ErrorDetail {
                    code: "cooldown".to_string(),
                    message,
                };
                ("suppressed", None, Some(error))
            }
            FireOutcome::Refused(e) => ("refused", None, Some(crate::ApiError::from(e).detail())),
        };
        Matched {
            sop: fired.sop,
            vars: fired.vars,
            outcome,
            run_id,
            error,
        }
    }
}
