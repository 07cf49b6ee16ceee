//! Metrics from run facts: windows, percentiles, rates (time passed in, no clock).

use sop_core::metrics::{compute, DecisionFact, RunFacts, Spread, SuppressedFact, Window};
use sop_core::run::{DecisionKind, RunStatus};

const DAY: i64 = 24 * 60 * 60 * 1000;
const NOW: i64 = 1_000 * DAY;

fn run(sop: &str, status: RunStatus, days_ago: i64) -> RunFacts {
    let created = NOW - days_ago * DAY;
    RunFacts {
        sop: sop.to_string(),
        status,
        created_at: created,
        started_at: None,
        completed_at: None,
        queue_wait_ms: None,
        step_durations_ms: vec![],
        decisions: vec![],
    }
}

fn decided(kind: DecisionKind, gate: &str, waited_ms: i64) -> DecisionFact {
    DecisionFact {
        kind,
        gate: gate.to_string(),
        waited_ms,
    }
}

fn ran(mut r: RunFacts, queued_ms: i64, took_ms: i64, steps: &[i64]) -> RunFacts {
    r.started_at = Some(r.created_at + queued_ms);
    r.completed_at = r
        .status
        .is_terminal()
        .then_some(r.created_at + queued_ms + took_ms);
    r.queue_wait_ms = Some(queued_ms);
    r.step_durations_ms = steps.to_vec();
    r
}

#[test]
fn spreads_are_nearest_rank_percentiles_of_values_that_occurred() {
    let spread = |count, p50, p95, max, sum| Spread {
        count,
        p50,
        p95,
        max,
        sum,
    };
    let cases: &[(&[i64], Spread)] = &[
        (&[], spread(0, None, None, None, 0)),
        (&[7], spread(1, Some(7), Some(7), Some(7), 7)),
        (&[3, 1, 2], spread(3, Some(2), Some(3), Some(3), 6)),
        (&[4, 1, 3, 2], spread(4, Some(2), Some(4), Some(4), 10)),
        // 20 values 1..=20: the median is the 10th, the 95th percentile the 19th.
        (
            &[
                20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1,
            ],
            spread(20, Some(10), Some(19), Some(20), 210),
        ),
    ];
    for (values, want) in cases {
        assert_eq!(&Spread::of(values.to_vec()), want, "{values:?}");
    }
}

#[test]
fn figures_per_window_and_per_sop() {
    let mut approved = ran(
        run("deploy", RunStatus::Success, 1),
        100,
        5_000,
        &[1_000, 3_000],
    );
    // A quorum of two at `start` (one wait, ended by the second approval), a manual step.
    approved.decisions = vec![
        decided(DecisionKind::Approved, "start", 30_000),
        decided(DecisionKind::Approved, "start", 60_000),
        decided(DecisionKind::Confirmed, "step 2", 5),
    ];
    let mut rejected = run("deploy", RunStatus::Rejected, 10);
    rejected.decisions = vec![
        decided(DecisionKind::Approved, "start", 10),
        decided(DecisionKind::Rejected, "step 2", 120_000),
    ];
    // One approval of a quorum of two, an escalation, then the timeout: one wait.
    let mut timed_out = run("deploy", RunStatus::TimedOut, 40);
    timed_out.decisions = vec![
        decided(DecisionKind::Approved, "start", 100),
        decided(DecisionKind::Escalated, "start", 1),
        decided(DecisionKind::TimedOut, "start", 86_400_000),
    ];
    let runs = vec![
        approved,
        rejected,
        timed_out,
        ran(run("deploy", RunStatus::Failure, 2), 300, 2_000, &[2_000]),
        // Still going: counted, but not in the success rate or run durations.
        ran(run("backup", RunStatus::Running, 0), 50, 0, &[]),
        run("backup", RunStatus::Queued, 0),
        ran(run("backup", RunStatus::Success, 100), 10, 1_000, &[900]),
    ];
    let suppressed = vec![
        SuppressedFact {
            sop: "deploy".to_string(),
            at: NOW - DAY,
        },
        SuppressedFact {
            sop: "deploy".to_string(),
            at: NOW - 20 * DAY,
        },
        SuppressedFact {
            sop: "quiet".to_string(),
            at: NOW - 3 * DAY,
        },
    ];
    let m = compute(&runs, &suppressed, NOW);
    assert_eq!(
        m.sops.keys().collect::<Vec<_>>(),
        ["backup", "deploy", "quiet"],
        "a SOP with only suppressed triggers is listed too"
    );

    let deploy = &m.sops["deploy"];
    let all = &deploy[&Window::All];
    assert_eq!(all.runs, 4);
    assert_eq!(all.by_status["success"], 1);
    assert_eq!(all.by_status["timed_out"], 1);
    assert_eq!(all.by_status["queued"], 0, "every status is present");
    assert_eq!(all.success_rate, Some(0.25));
    assert_eq!(all.approvals, 4, "each approval of a quorum counts");
    assert_eq!(all.rejections, 2, "a person's and the clock's");
    assert_eq!(
        all.approval_wait_ms,
        Spread::of(vec![60_000, 10, 120_000, 86_400_000]),
        "one wait per gate decided; confirmations and escalations are not approval waits"
    );
    assert_eq!(all.step_duration_ms, Spread::of(vec![1_000, 3_000, 2_000]));
    assert_eq!(all.run_duration_ms, Spread::of(vec![5_000, 2_000]));
    assert_eq!(all.queue_wait_ms, Spread::of(vec![100, 300]));
    assert_eq!(all.suppressed_triggers, 2);

    let d30 = &deploy[&Window::Days30];
    assert_eq!(
        (d30.runs, d30.rejections, d30.suppressed_triggers),
        (3, 1, 2)
    );
    let d7 = &deploy[&Window::Days7];
    assert_eq!((d7.runs, d7.rejections, d7.suppressed_triggers), (2, 0, 1));
    assert_eq!(d7.success_rate, Some(0.5));

    let backup = &m.sops["backup"];
    assert_eq!(backup[&Window::All].success_rate, Some(1.0));
    assert_eq!(backup[&Window::Days7].runs, 2);
    assert_eq!(
        backup[&Window::Days7].success_rate,
        None,
        "none ended in the window"
    );
    assert_eq!(backup[&Window::Days7].queue_wait_ms.count, 1);

    let overall = &m.overall[&Window::All];
    assert_eq!(overall.runs, 7);
    assert_eq!(overall.suppressed_triggers, 3);
    assert_eq!(overall.success_rate, Some(2.0 / 5.0));
    assert_eq!(m.overall[&Window::Days7].runs, 4);
}

#[test]
fn no_facts_no_sops_and_empty_figures() {
    let m = compute(&[], &[], NOW);
    assert!(m.sops.is_empty());
    let all = &m.overall[&Window::All];
    assert_eq!(
        (all.runs, all.success_rate, all.run_duration_ms.p50),
        (0, None, None)
    );
    assert_eq!(all.by_status.len(), RunStatus::ALL.len());
}
