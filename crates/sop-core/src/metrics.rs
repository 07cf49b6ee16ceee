//! Execution metrics (SPEC §7), computed from facts the store keeps about runs: per SOP
//! and overall, for all time and for the last 30 and 7 days. Pure: the facts and the time
//! come in, the figures go out.
//!
//! A run belongs to a window by the time it was created (queued); a suppressed trigger by
//! the time it fired.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::run::{DecisionKind, Millis, RunStatus};

/// What the metrics need to know about one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub sop: String,
    pub status: RunStatus,
    pub created_at: Millis,
    /// First claimed (left the queue).
    pub started_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    /// Time spent queued before the first claim.
    pub queue_wait_ms: Option<i64>,
    /// Durations of the main steps that ran a process (or could not start one); not manual
    /// steps, not rollback steps.
    pub step_durations_ms: Vec<i64>,
    /// Decisions at gates, in the order they were made.
    pub decisions: Vec<DecisionFact>,
}

/// One decision at a gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionFact {
    pub kind: DecisionKind,
    /// The gate decided (`start`, `step 3`, ...).
    pub gate: String,
    /// How long the gate had waited when the decision was made.
    pub waited_ms: i64,
}

/// A trigger that fired while its SOP was in cooldown (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressedFact {
    pub sop: String,
    pub at: Millis,
}

/// A window of time the figures are given for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Window {
    #[serde(rename = "all")]
    All,
    #[serde(rename = "30d")]
    Days30,
    #[serde(rename = "7d")]
    Days7,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::All, Window::Days30, Window::Days7];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::All => "all",
            Window::Days30 => "30d",
            Window::Days7 => "7d",
        }
    }

    /// The earliest time in the window, given the time now (`None`: no bound).
    pub fn since(self, now: Millis) -> Option<Millis> {
        const DAY_MS: Millis = 24 * 60 * 60 * 1000;
        match self {
            Window::All => None,
            Window::Days30 => Some(now - 30 * DAY_MS),
            Window::Days7 => Some(now - 7 * DAY_MS),
        }
    }
}

/// Count, median, 95th percentile, largest and sum of a set of durations (milliseconds).
/// Percentiles are nearest-rank: values that occurred, never interpolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Spread {
    pub count: u64,
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub max: Option<i64>,
    pub sum: i64,
}

impl Spread {
    pub fn of(mut values: Vec<i64>) -> Spread {
        values.sort_unstable();
        let rank = |q: f64| -> Option<i64> {
            let n = values.len();
            // Nearest rank: the smallest value with at least q of the values at or below it.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let k = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
            values.get(k - 1).copied()
        };
        Spread {
            count: values.len() as u64,
            p50: rank(0.50),
            p95: rank(0.95),
            max: values.last().copied(),
            sum: values.iter().sum(),
        }
    }
}

/// The figures of one SOP (or all) in one window.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Figures {
    /// Runs created in the window.
    pub runs: u64,
    /// Those runs by their status now; every status is present, zero or not.
    pub by_status: BTreeMap<&'static str, u64>,
    /// `success` over the runs that ended (`success`, `failure`, `rejected`, `cancelled`,
    /// `timed_out`); `None` before any ended.
    pub success_rate: Option<f64>,
    /// From the first claim to the end, of the runs that ended after a claim.
    pub run_duration_ms: Spread,
    /// Main steps whose process ran.
    pub step_duration_ms: Spread,
    /// From queued to the first claim.
    pub queue_wait_ms: Spread,
    /// How long gates waited for the decision that released (approved, with its quorum)
    /// or rejected them.
    pub approval_wait_ms: Spread,
    /// Approvals given (each of a quorum counts).
    pub approvals: u64,
    /// Rejections by a person, and by the clock (`approval_timeout_action = "reject"`).
    pub rejections: u64,
    pub suppressed_triggers: u64,
}

/// Figures for every window.
pub type ByWindow = BTreeMap<Window, Figures>;

/// Everything `sop metrics` and the API show.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Metrics {
    pub overall: ByWindow,
    /// Per SOP name: SOPs with runs or suppressed triggers in the facts.
    pub sops: BTreeMap<String, ByWindow>,
}

/// Computes the metrics of `runs` and `suppressed` as of `now`.
pub fn compute(runs: &[RunFacts], suppressed: &[SuppressedFact], now: Millis) -> Metrics {
    let mut names: Vec<&str> = runs.iter().map(|r| r.sop.as_str()).collect();
    names.extend(suppressed.iter().map(|s| s.sop.as_str()));
    names.sort_unstable();
    names.dedup();
    let by_window = |sop: Option<&str>| -> ByWindow {
        Window::ALL
            .iter()
            .map(|&w| {
                let since = w.since(now).unwrap_or(Millis::MIN);
                let runs: Vec<&RunFacts> = runs
                    .iter()
                    .filter(|r| r.created_at >= since && sop.is_none_or(|s| r.sop == s))
                    .collect();
                let suppressed = suppressed
                    .iter()
                    .filter(|s| s.at >= since && sop.is_none_or(|n| s.sop == n))
                    .count() as u64;
                (w, figures(&runs, suppressed))
            })
            .collect()
    };
    Metrics {
        overall: by_window(None),
        sops: names
            .into_iter()
            .map(|n| (n.to_string(), by_window(Some(n))))
            .collect(),
    }
}

fn figures(runs: &[&RunFacts], suppressed_triggers: u64) -> Figures {
    let mut by_status: BTreeMap<&'static str, u64> =
        RunStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let (mut ended, mut succeeded) = (0u64, 0u64);
    let (mut run_ms, mut step_ms, mut queue_ms, mut wait_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut approvals, mut rejections) = (0u64, 0u64);
    for r in runs {
        *by_status.entry(r.status.as_str()).or_default() += 1;
        if r.status.is_terminal() {
            ended += 1;
            succeeded += u64::from(r.status == RunStatus::Success);
            if let (Some(start), Some(end)) = (r.started_at, r.completed_at) {
                run_ms.push((end - start).max(0));
            }
        }
        step_ms.extend(r.step_durations_ms.iter().copied());
        queue_ms.extend(r.queue_wait_ms);
        for (i, d) in r.decisions.iter().enumerate() {
            match d.kind {
                DecisionKind::Approved => approvals += 1,
                DecisionKind::Rejected | DecisionKind::TimedOut => rejections += 1,
                DecisionKind::Confirmed
                | DecisionKind::ConfirmedFailed
                | DecisionKind::Escalated => continue,
            }
            // A gate's wait ends with its last decision in a row: a quorum's earlier
            // approvals (and an escalation) leave it waiting.
            let next_same_gate = r.decisions.get(i + 1).is_some_and(|n| {
                n.gate == d.gate
                    && !matches!(
                        n.kind,
                        DecisionKind::Confirmed | DecisionKind::ConfirmedFailed
                    )
            });
            if d.kind != DecisionKind::Approved || !next_same_gate {
                wait_ms.push(d.waited_ms);
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let success_rate = (ended > 0).then(|| succeeded as f64 / ended as f64);
    Figures {
        runs: runs.len() as u64,
        by_status,
        success_rate,
        run_duration_ms: Spread::of(run_ms),
        step_duration_ms: Spread::of(step_ms),
        queue_wait_ms: Spread::of(queue_ms),
        approval_wait_ms: Spread::of(wait_ms),
        approvals,
        rejections,
        suppressed_triggers,
    }
}
