//! The checked procedure: what a `SOP.toml` + `SOP.md` pair means once parsed.
//!
//! Everything here is plain data (serde round-trips it): a run stores the `Sop` it was
//! created from, so editing the files later never changes a run that already exists.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// Run priority. Ordered: `Low < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    /// Parses a priority, accepting `ZeroClaw`'s `normal` for `medium`.
    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "low" => Some(Priority::Low),
            "medium" | "normal" => Some(Priority::Medium),
            "high" => Some(Priority::High),
            "critical" => Some(Priority::Critical),
            _ => None,
        }
    }

    /// Numeric rank for ordering in SQL: higher runs first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Medium => 1,
            Priority::High => 2,
            Priority::Critical => 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// Pauses only at approval steps, approval gates and manual steps.
    Automatic,
    /// Also asks approval before the first step.
    #[default]
    Supervised,
    /// Asks approval before every step.
    StepByStep,
    /// Supervised for critical/high, automatic for medium/low.
    PriorityBased,
}

impl ExecutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Automatic => "automatic",
            ExecutionMode::Supervised => "supervised",
            ExecutionMode::StepByStep => "step_by_step",
            ExecutionMode::PriorityBased => "priority_based",
        }
    }

    /// Parses a mode, accepting `ZeroClaw`'s `auto` for `automatic`.
    pub fn parse(s: &str) -> Option<ExecutionMode> {
        match s {
            "automatic" | "auto" => Some(ExecutionMode::Automatic),
            "supervised" => Some(ExecutionMode::Supervised),
            "step_by_step" => Some(ExecutionMode::StepByStep),
            "priority_based" => Some(ExecutionMode::PriorityBased),
            _ => None,
        }
    }

    /// The mode in effect for a run of the given priority (`priority_based` resolved).
    #[must_use]
    pub fn effective(self, priority: Priority) -> ExecutionMode {
        match self {
            ExecutionMode::PriorityBased if priority >= Priority::High => ExecutionMode::Supervised,
            ExecutionMode::PriorityBased => ExecutionMode::Automatic,
            m => m,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAction {
    /// The run ends `timed_out` (never approved).
    #[default]
    Reject,
    /// Notify again and keep waiting for another period.
    Escalate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdmissionPolicy {
    #[default]
    Parallel,
    Hold,
    Coalesce,
    Drop,
}

/// A declared variable from `[vars]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VarDecl {
    pub required: bool,
    /// Regex the value must match (anchoring is up to the author).
    pub pattern: Option<String>,
    pub default: Option<String>,
    pub description: Option<String>,
    pub secret: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileEvent {
    Create,
    Modify,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    #[default]
    None,
    Latest,
    All,
}

/// A checked trigger. Unsupported types (`mqtt`, ...) are kept as `Unsupported` with a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    Command {
        pattern: String,
        capture_groups: bool,
    },
    FileWatch {
        path: String,
        events: Vec<FileEvent>,
        debounce_ms: u64,
    },
    Schedule {
        cron: String,
        timezone: String,
        catch_up: CatchUp,
        max_catch_up: u32,
    },
    Webhook {
        path: String,
        secret_env: Option<String>,
    },
    Manual,
    Unsupported {
        kind: String,
    },
}

impl Trigger {
    pub fn kind(&self) -> &str {
        match self {
            Trigger::Command { .. } => "command",
            Trigger::FileWatch { .. } => "file_watch",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Webhook { .. } => "webhook",
            Trigger::Manual => "manual",
            Trigger::Unsupported { kind } => kind,
        }
    }
}

/// Where a gate sits in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "at", content = "step")]
pub enum GateAt {
    Start,
    End,
    /// Before the step with this number (1-based).
    Before(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GateKind {
    /// Pauses like an approval step. `required = false` gates are recorded but never pause.
    Approval { required: bool },
    /// Runs `command` with the SOP's shell; non-zero exit fails the run.
    Verification { command: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub name: String,
    pub at: GateAt,
    pub kind: GateKind,
}

/// The interpreter of one executable code fence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// Program to run, e.g. `bash`, `sh`, `zsh`, `python3`, `node`.
    pub interpreter: String,
    pub code: String,
    /// 1-based line in `SOP.md` where the fence opens.
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Step {
    /// 1..n in file order (the number written in the file is a label only).
    pub number: u32,
    pub title: String,
    pub description: String,
    /// `[if: ...]`, parsed.
    pub condition: Option<Condition>,
    pub requires_approval: bool,
    /// Per-step timeout in seconds; `None` = the SOP's `timeout_secs`.
    pub timeout_secs: Option<u64>,
    /// Attempts after the first.
    pub retry: u32,
    pub retry_delay_secs: u64,
    pub continue_on_error: bool,
    pub idempotent: bool,
    pub shell: Option<String>,
    pub workdir: Option<String>,
    pub outputs: Vec<String>,
    /// Executable fences in order. Empty: a manual step.
    pub scripts: Vec<Script>,
    /// Other `- key: value` bullets kept as metadata (`ZeroClaw` `tools`, ...).
    pub metadata: BTreeMap<String, String>,
    /// 1-based line of the step's item in `SOP.md`.
    pub line: u32,
}

impl Step {
    pub fn is_manual(&self) -> bool {
        self.scripts.is_empty()
    }
}

/// A checked SOP. Built only by [`crate::parse::parse_sop`]; `Default` is an empty
/// placeholder, only for a [`crate::run::Run`] read from its head before its SOP snapshot.
/// `Eq` lets comparisons of a shared `Arc<Sop>` with itself stop at the pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Sop {
    pub name: String,
    pub description: String,
    pub version: String,
    pub priority: Priority,
    pub execution_mode: ExecutionMode,
    pub cooldown_secs: u64,
    pub max_concurrent: u32,
    /// Default step timeout.
    pub timeout_secs: u64,
    pub approval_timeout_secs: u64,
    pub approval_timeout_action: TimeoutAction,
    pub approvers: Vec<String>,
    pub required_approvals: u32,
    pub allow_self_approval: bool,
    /// Relative to the SOP directory.
    pub workdir: String,
    pub shell: String,
    pub admission_policy: AdmissionPolicy,
    /// 0 = unlimited.
    pub max_pending_approvals: u32,
    pub vars: BTreeMap<String, VarDecl>,
    pub triggers: Vec<Trigger>,
    pub gates: Vec<Gate>,
    pub steps: Vec<Step>,
    pub rollback: Vec<Step>,
}

impl Sop {
    /// The SOP as shown to people (`sop show --json`, the API): defaults of secret
    /// variables replaced by `***`.
    #[must_use]
    pub fn redacted(&self) -> Sop {
        let mut sop = self.clone();
        for decl in sop
            .vars
            .values_mut()
            .filter(|d| d.secret && d.default.is_some())
        {
            decl.default = Some("***".to_string());
        }
        sop
    }

    /// Names of declared vars marked `secret = true`.
    pub fn secret_vars(&self) -> impl Iterator<Item = &str> {
        self.vars
            .iter()
            .filter(|(_, d)| d.secret)
            .map(|(n, _)| n.as_str())
    }
}
