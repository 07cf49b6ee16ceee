//! Scheduling policy: cooldown, admission and who may start next. Pure: the store gathers
//! the facts inside one transaction, asks these functions, and commits what they decide.

use serde::Serialize;

use crate::model::{AdmissionPolicy, Priority};
use crate::run::Millis;

/// The last run of a SOP that executed a step (the cooldown anchor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastExecuted {
    pub run_id: String,
    pub started_at: Millis,
}

/// Facts about one SOP's runs, read in the same transaction as the decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SopLoad {
    /// Runs executing (status `running`), ids oldest first.
    pub running: Vec<String>,
    /// Runs waiting at a gate.
    pub waiting: u32,
    /// Runs queued (not counting the one being decided), ids in queue order.
    pub queued: Vec<String>,
    /// Runs interrupted, waiting for `sop resume`.
    pub interrupted: u32,
}

/// Limits from the SOP manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub cooldown_secs: u64,
    pub max_concurrent: u32,
    pub admission: AdmissionPolicy,
    pub max_pending_approvals: u32,
}

/// What happens to a new execution request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "admission", rename_all = "snake_case")]
pub enum Admission {
    /// Create a queued run.
    Accept,
    /// `coalesce`: the caller gets this existing run.
    Coalesce { run_id: String },
    /// Refused while in cooldown.
    Cooldown { remaining_secs: u64, run_id: String },
    /// `drop`: refused because the SOP is busy.
    Dropped { running: Vec<String> },
}

/// Decides a new execution request. `forced` (admin `--force`) overrides the cooldown only.
pub fn admit(
    limits: &Limits,
    load: &SopLoad,
    last: Option<&LastExecuted>,
    forced: bool,
    now: Millis,
) -> Admission {
    if let Some(last) = last {
        let until = last.started_at.saturating_add(
            i64::try_from(limits.cooldown_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
        );
        if limits.cooldown_secs > 0 && now < until && !forced {
            let remaining_ms = until - now;
            return Admission::Cooldown {
                remaining_secs: u64::try_from(remaining_ms.saturating_add(999) / 1000)
                    .unwrap_or(u64::MAX),
                run_id: last.run_id.clone(),
            };
        }
    }
    let busy = load.running.len() as u32 >= limits.max_concurrent.max(1);
    match limits.admission {
        AdmissionPolicy::Drop if busy => Admission::Dropped {
            running: load.running.clone(),
        },
        // A queued run would start first anyway: fold into it; else only when no slot is free.
        AdmissionPolicy::Coalesce if busy || !load.queued.is_empty() => {
            match load.queued.first().or(load.running.first()) {
                Some(id) => Admission::Coalesce { run_id: id.clone() },
                None => Admission::Accept,
            }
        }
        _ => Admission::Accept,
    }
}

/// Why a queued run cannot start yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Blocked {
    /// The SOP's `max_concurrent` slots are held by these runs.
    SlotsHeld {
        by: Vec<String>,
        max_concurrent: u32,
    },
    /// The node's `workers` are all busy.
    WorkersBusy { workers: u32 },
    /// `admission_policy = "hold"`: another run of the SOP is active or waiting.
    Held { active: u32 },
    /// `max_pending_approvals` runs already wait at a gate.
    PendingApprovals { waiting: u32, max: u32 },
    /// Runs ahead in the queue start first.
    Behind { position: u32 },
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::SlotsHeld { by, max_concurrent } => {
                write!(
                    f,
                    "max_concurrent = {max_concurrent}: slot held by run {}",
                    by.join(", ")
                )
            }
            Blocked::WorkersBusy { workers } => write!(f, "all {workers} workers are busy"),
            Blocked::Held { active } => write!(
                f,
                "admission_policy = \"hold\": {active} other run(s) active or waiting"
            ),
            Blocked::PendingApprovals { waiting, max } => {
                write!(
                    f,
                    "max_pending_approvals = {max}: {waiting} run(s) already wait at a gate"
                )
            }
            Blocked::Behind { position } => write!(f, "position {position} in the queue"),
        }
    }
}

/// A queued run as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    pub sop: String,
    pub priority: Priority,
    pub created_at: Millis,
    /// The run already passed a gate (it returns from a wait): `hold` and
    /// `max_pending_approvals` do not apply to it again.
    pub resumed: bool,
}

/// Queue order: priority first (critical first), then age, then id for a total order.
pub fn queue_order(a: &Queued, b: &Queued) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.created_at.cmp(&b.created_at))
        .then(a.id.cmp(&b.id))
}

/// Whether one queued run may start now, given its SOP's load and the node's.
pub fn may_start(
    run: &Queued,
    limits: &Limits,
    load: &SopLoad,
    running_total: u32,
    workers: u32,
) -> Result<(), Blocked> {
    if running_total >= workers.max(1) {
        return Err(Blocked::WorkersBusy { workers });
    }
    if load.running.len() as u32 >= limits.max_concurrent.max(1) {
        return Err(Blocked::SlotsHeld {
            by: load.running.clone(),
            max_concurrent: limits.max_concurrent.max(1),
        });
    }
    if !run.resumed {
        if limits.admission == AdmissionPolicy::Hold {
            let active = load.running.len() as u32 + load.waiting + load.interrupted;
            if active > 0 {
                return Err(Blocked::Held { active });
            }
        }
        if limits.max_pending_approvals > 0 && load.waiting >= limits.max_pending_approvals {
            return Err(Blocked::PendingApprovals {
                waiting: load.waiting,
                max: limits.max_pending_approvals,
            });
        }
    }
    Ok(())
}

/// 1-based position of `id` in the queue (after sorting by [`queue_order`]).
pub fn position(queue: &[Queued], id: &str) -> Option<u32> {
    let mut sorted: Vec<&Queued> = queue.iter().collect();
    sorted.sort_by(|a, b| queue_order(a, b));
    sorted.iter().position(|q| q.id == id).map(|p| p as u32 + 1)
}
