//! Stories about what the metrics read: run facts from the stored runs and their records,
//! and suppressed triggers.

use sop_core::metrics::{DecisionFact, SuppressedFact};
use sop_core::run::{Action, DecisionKind, RunStatus};
use sop_core::ExecutionMode;
use sop_store::{Store, Suppression};

use crate::fixture::{
    approve, cancel, claim, confirm, finish_step, queued, sop, start_step, SopExt,
};

const T0: i64 = 1_700_000_000_000;

pub fn facts_of_runs_and_suppressions(store: &dyn Store) {
    // Ran one step and succeeded: queued 5 ms, ran 20 ms, its step took 3 ms (the fixture's).
    queued(store, "ok", &sop("deploy"), T0);
    start_step(store, "ok", T0 + 5);
    assert!(matches!(
        finish_step(store, "ok", 0, T0 + 25),
        Action::Finished(_)
    ));
    // Waited 40 ms for the start approval, approved, then failed its step.
    let supervised = sop("deploy").with(|s| s.execution_mode = ExecutionMode::Supervised);
    queued(store, "bad", &supervised, T0 + 100);
    claim(store, "bad", 4, T0 + 100);
    assert!(matches!(
        crate::fixture::advance(store, "bad", T0 + 100),
        Action::Wait { .. }
    ));
    approve(store, "bad", T0 + 140);
    // Approved, it is queued again (a waiting run holds no slot).
    claim(store, "bad", 4, T0 + 140);
    match crate::fixture::advance(store, "bad", T0 + 140) {
        Action::Spawn(_) => {}
        other => panic!("expected a spawn, got {other:?}"),
    }
    finish_step(store, "bad", 1, T0 + 150);
    // A manual second step, confirmed 500 ms after it began waiting: a person's time, not
    // a step's.
    let with_manual = sop("deploy").with(|s| {
        let mut manual = s.steps[0].clone();
        manual.number = 2;
        manual.scripts.clear();
        s.steps.push(manual);
    });
    queued(store, "hand", &with_manual, T0 + 150);
    start_step(store, "hand", T0 + 150);
    assert!(matches!(
        finish_step(store, "hand", 0, T0 + 160),
        Action::Wait { .. }
    ));
    confirm(store, "hand", T0 + 660);
    claim(store, "hand", 4, T0 + 660);
    assert!(matches!(
        crate::fixture::advance(store, "hand", T0 + 660),
        Action::Finished(_)
    ));
    // Cancelled while queued; and one of another SOP created later.
    queued(store, "gone", &sop("deploy"), T0 + 200);
    cancel(store, "gone", T0 + 210);
    queued(store, "later", &sop("backup"), T0 + 1_000);

    store
        .record_suppression(&Suppression {
            sop: "deploy".into(),
            trigger: "command".into(),
            by: "alice".into(),
            at: T0 + 300,
            cooldown_run: "ok".into(),
        })
        .expect("recorded");

    let (mut runs, suppressed) = store.metric_facts(None, None).expect("facts");
    runs.sort_by_key(|r| r.created_at);
    let summary: Vec<(&str, RunStatus, Option<i64>, Option<i64>)> = runs
        .iter()
        .map(|r| (r.sop.as_str(), r.status, r.queue_wait_ms, r.completed_at))
        .collect();
    assert_eq!(
        summary,
        [
            ("deploy", RunStatus::Success, Some(5), Some(T0 + 25)),
            ("deploy", RunStatus::Failure, Some(0), Some(T0 + 150)),
            ("deploy", RunStatus::Success, Some(0), Some(T0 + 660)),
            ("deploy", RunStatus::Cancelled, None, Some(T0 + 210)),
            ("backup", RunStatus::Queued, None, None),
        ]
    );
    assert_eq!(runs[0].started_at, Some(T0 + 5));
    assert_eq!(runs[0].step_durations_ms, [3]);
    assert_eq!(runs[1].step_durations_ms, [3]);
    assert_eq!(
        runs[1].decisions,
        [DecisionFact {
            kind: DecisionKind::Approved,
            gate: "start".into(),
            waited_ms: 40
        }]
    );
    assert_eq!(
        runs[2].step_durations_ms,
        [3],
        "the manual step's wait is not a step's time"
    );
    assert_eq!(runs[2].decisions[0].kind, DecisionKind::Confirmed);
    assert!(runs[3].step_durations_ms.is_empty() && runs[4].decisions.is_empty());
    assert_eq!(
        suppressed,
        [SuppressedFact {
            sop: "deploy".into(),
            at: T0 + 300
        }]
    );

    // One SOP's only.
    let (runs, suppressed) = store.metric_facts(None, Some("backup")).expect("facts");
    assert_eq!((runs.len(), suppressed.len()), (1, 0));
    let (runs, suppressed) = store.metric_facts(None, Some("deploy")).expect("facts");
    assert_eq!((runs.len(), suppressed.len()), (4, 1));

    // A window: only what was created (or suppressed) at or after `since`.
    let (runs, suppressed) = store.metric_facts(Some(T0 + 250), None).expect("facts");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].sop, "backup");
    assert_eq!(suppressed.len(), 1);
    let (_, suppressed) = store.metric_facts(Some(T0 + 301), None).expect("facts");
    assert!(suppressed.is_empty());
}

pub fn ledger_for_the_notifier(store: &dyn Store) {
    queued(store, "a", &sop("deploy"), T0);
    queued(store, "b", &sop("backup"), T0 + 1);
    start_step(store, "a", T0 + 2);
    let all = store.events_after(0, 100).expect("events");
    let seen: Vec<(&str, &str)> = all
        .iter()
        .map(|(row, sop)| (row.run_id.as_str(), sop.as_str()))
        .collect();
    assert_eq!(&seen[..2], [("a", "deploy"), ("b", "backup")]);
    assert!(
        all.windows(2).all(|w| w[0].0.seq < w[1].0.seq),
        "in ledger order"
    );
    assert_eq!(
        all.last().map(|(r, _)| r.seq),
        Some(store.last_event_seq().expect("seq"))
    );
    // After a place, and at most `limit`.
    let first = all[0].0.seq;
    let rest = store.events_after(first, 1).expect("events");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0.seq, all[1].0.seq);

    assert_eq!(store.notify_cursor().expect("cursor"), None, "never ran");
    store.set_notify_cursor(first).expect("moved");
    assert_eq!(store.notify_cursor().expect("cursor"), Some(first));
    store
        .record_delivery(&sop_store::Delivery {
            at: T0 + 3,
            run_id: "a".into(),
            event: "run_failed".into(),
            channel: "command".into(),
            ok: false,
            detail: "command exit status: 3".into(),
        })
        .expect("recorded");
}
