//! Notifications (SPEC §5): which ledger events become a notice, and what a notice says.
//! Delivering them is the runtime's (`sop_runtime::notify`).

use serde::Serialize;

use crate::config::{NotifyEntry, NotifyEvent};
use crate::run::{DecisionKind, Happened, Millis, RunStatus, WaitKind};

/// Something a person should hear about a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub event: NotifyEvent,
    pub run_id: String,
    pub sop: String,
    /// When it happened (ms since the epoch).
    pub at: Millis,
    /// The gate waited at (`approval_needed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// `approval` or `confirmation` (a manual step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Millis>,
    /// The deadline passed and `approval_timeout_action = "escalate"`: asked again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub escalated: bool,
    /// The run's final status (`run_failed`, `run_succeeded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
}

/// The notice a ledger event of run `run_id` (of SOP `sop`) makes, if any.
pub fn notice_of(run_id: &str, sop: &str, at: Millis, event: &Happened) -> Option<Notice> {
    let notice = |event| Notice {
        event,
        run_id: run_id.to_string(),
        sop: sop.to_string(),
        at,
        gate: None,
        wait: None,
        deadline: None,
        escalated: false,
        status: None,
    };
    match event {
        Happened::Waiting {
            gate,
            kind,
            deadline,
        } => Some(Notice {
            gate: Some(gate.clone()),
            wait: Some(*kind),
            deadline: *deadline,
            ..notice(NotifyEvent::ApprovalNeeded)
        }),
        Happened::Decided {
            gate,
            decision: DecisionKind::Escalated,
            ..
        } => Some(Notice {
            gate: Some(gate.clone()),
            wait: Some(WaitKind::Approval),
            escalated: true,
            ..notice(NotifyEvent::ApprovalNeeded)
        }),
        Happened::Finished { status } => {
            let event = match status {
                RunStatus::Success => NotifyEvent::RunSucceeded,
                RunStatus::Failure | RunStatus::TimedOut => NotifyEvent::RunFailed,
                _ => return None,
            };
            Some(Notice {
                status: Some(*status),
                ..notice(event)
            })
        }
        _ => None,
    }
}

/// Whether `channel` is sent notices of `event`.
pub fn wants(channel: &NotifyEntry, event: NotifyEvent) -> bool {
    channel.events().contains(&event)
}

/// The notice in one line, for people (Slack's `text`, the log).
pub fn text(n: &Notice) -> String {
    let run = format!("run {} of `{}`", n.run_id, n.sop);
    match n.event {
        NotifyEvent::ApprovalNeeded => {
            let gate = n.gate.as_deref().unwrap_or("a gate");
            let (what, how) = match n.wait {
                Some(WaitKind::Confirmation) => ("confirmation", "sop confirm"),
                _ => ("approval", "sop approve"),
            };
            let again = if n.escalated {
                " (escalated: still waiting)"
            } else {
                ""
            };
            format!(
                "{what} needed: {run} waits at {gate}{again}; decide with `{how} {}`",
                n.run_id
            )
        }
        NotifyEvent::RunFailed => {
            let status = n.status.map_or("failure", RunStatus::as_str);
            format!(
                "run failed: {run} ended {status}; see `sop status {}`",
                n.run_id
            )
        }
        NotifyEvent::RunSucceeded => format!("run succeeded: {run}"),
    }
}
