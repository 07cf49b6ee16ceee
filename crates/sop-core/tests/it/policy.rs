//! Table tests of the scheduling policy: cooldown, admission, who may start.

use sop_core::policy::{
    admit, may_start, position, Admission, Blocked, LastExecuted, Limits, Queued, SopLoad,
};
use sop_core::{AdmissionPolicy, Priority};

fn limits(cooldown_secs: u64, max_concurrent: u32, admission: AdmissionPolicy) -> Limits {
    Limits {
        cooldown_secs,
        max_concurrent,
        admission,
        max_pending_approvals: 0,
    }
}

fn load(running: &[&str], waiting: u32, queued: &[&str]) -> SopLoad {
    SopLoad {
        running: running
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        waiting,
        queued: queued
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        interrupted: 0,
    }
}

#[test]
fn cooldown_refuses_with_remaining_time_and_the_run_that_started_it() {
    let last = LastExecuted {
        run_id: "abc".into(),
        started_at: 10_000,
    };
    let l = limits(3600, 1, AdmissionPolicy::Parallel);
    let cases: &[(i64, bool, Admission)] = &[
        (
            10_000,
            false,
            Admission::Cooldown {
                remaining_secs: 3600,
                run_id: "abc".into(),
            },
        ),
        (
            10_001,
            false,
            Admission::Cooldown {
                remaining_secs: 3600,
                run_id: "abc".into(),
            },
        ),
        (
            3_609_000,
            false,
            Admission::Cooldown {
                remaining_secs: 1,
                run_id: "abc".into(),
            },
        ),
        (3_610_000, false, Admission::Accept),
        (10_000, true, Admission::Accept),
    ];
    for (now, forced, want) in cases {
        assert_eq!(
            &admit(&l, &SopLoad::default(), Some(&last), *forced, *now),
            want,
            "now={now} forced={forced}"
        );
    }
    assert_eq!(
        admit(
            &limits(0, 1, AdmissionPolicy::Parallel),
            &SopLoad::default(),
            Some(&last),
            false,
            10_000
        ),
        Admission::Accept
    );
}

#[test]
fn admission_policies() {
    let busy = load(&["r1"], 0, &["q1"]);
    assert_eq!(
        admit(
            &limits(0, 1, AdmissionPolicy::Parallel),
            &busy,
            None,
            false,
            0
        ),
        Admission::Accept
    );
    assert_eq!(
        admit(&limits(0, 1, AdmissionPolicy::Hold), &busy, None, false, 0),
        Admission::Accept
    );
    assert_eq!(
        admit(&limits(0, 1, AdmissionPolicy::Drop), &busy, None, false, 0),
        Admission::Dropped {
            running: vec!["r1".into()]
        }
    );
    assert_eq!(
        admit(&limits(0, 2, AdmissionPolicy::Drop), &busy, None, false, 0),
        Admission::Accept
    );
    assert_eq!(
        admit(
            &limits(0, 1, AdmissionPolicy::Coalesce),
            &busy,
            None,
            false,
            0
        ),
        Admission::Coalesce {
            run_id: "q1".into()
        }
    );
    assert_eq!(
        admit(
            &limits(0, 1, AdmissionPolicy::Coalesce),
            &SopLoad::default(),
            None,
            false,
            0
        ),
        Admission::Accept
    );
}

fn q(id: &str, priority: Priority, created_at: i64) -> Queued {
    Queued {
        id: id.into(),
        sop: "s".into(),
        priority,
        created_at,
        resumed: false,
    }
}

type Case = (Limits, SopLoad, u32, u32, Result<(), Blocked>);

#[test]
fn may_start_respects_workers_max_concurrent_hold_and_pending_approvals() {
    let run = q("x", Priority::Medium, 0);
    let cases: Vec<Case> = vec![
        (
            limits(0, 1, AdmissionPolicy::Parallel),
            load(&[], 0, &[]),
            0,
            4,
            Ok(()),
        ),
        (
            limits(0, 1, AdmissionPolicy::Parallel),
            load(&["r1"], 0, &[]),
            1,
            4,
            Err(Blocked::SlotsHeld {
                by: vec!["r1".into()],
                max_concurrent: 1,
            }),
        ),
        (
            limits(0, 2, AdmissionPolicy::Parallel),
            load(&["r1"], 0, &[]),
            1,
            4,
            Ok(()),
        ),
        (
            limits(0, 2, AdmissionPolicy::Parallel),
            load(&[], 0, &[]),
            4,
            4,
            Err(Blocked::WorkersBusy { workers: 4 }),
        ),
        (
            limits(0, 2, AdmissionPolicy::Parallel),
            load(&[], 3, &[]),
            0,
            4,
            Ok(()),
        ),
        (
            limits(0, 2, AdmissionPolicy::Hold),
            load(&[], 1, &[]),
            0,
            4,
            Err(Blocked::Held { active: 1 }),
        ),
        (
            Limits {
                max_pending_approvals: 2,
                ..limits(0, 5, AdmissionPolicy::Parallel)
            },
            load(&[], 2, &[]),
            0,
            4,
            Err(Blocked::PendingApprovals { waiting: 2, max: 2 }),
        ),
    ];
    for (i, (l, ld, total, workers, want)) in cases.into_iter().enumerate() {
        assert_eq!(may_start(&run, &l, &ld, total, workers), want, "case {i}");
    }
    let resumed = Queued {
        resumed: true,
        ..run
    };
    assert_eq!(
        may_start(
            &resumed,
            &limits(0, 2, AdmissionPolicy::Hold),
            &load(&[], 1, &[]),
            0,
            4
        ),
        Ok(()),
        "a released run is not held again"
    );
}

#[test]
fn queue_order_is_priority_then_age() {
    let queue = vec![
        q("old-low", Priority::Low, 1),
        q("new-critical", Priority::Critical, 9),
        q("old-high", Priority::High, 2),
        q("new-high", Priority::High, 5),
    ];
    let order: Vec<u32> = ["new-critical", "old-high", "new-high", "old-low"]
        .iter()
        .map(|id| position(&queue, id).unwrap())
        .collect();
    assert_eq!(order, vec![1, 2, 3, 4]);
}
