//! Stories about claiming: which queued run may leave the queue, decided in the store.

use sop_core::policy::Blocked;
use sop_core::run::{Action, Happened, RunStatus};
use sop_core::{AdmissionPolicy, ExecutionMode, Priority};
use sop_store::Store;

use crate::fixture::{
    advance, approve, cancel, claim, create, event_count, new_run, queued, sop, SopExt,
};

const T0: i64 = 1_700_000_000_000;

fn status(store: &dyn Store, id: &str) -> RunStatus {
    store.run_row(id).expect("row").expect("a row").status
}

fn blocked(store: &dyn Store, id: &str, workers: u32) -> Blocked {
    match store.claim(id, workers, T0 + 1_000).expect("claim") {
        Err(b) => b,
        Ok(()) => panic!("claim of {id} was allowed"),
    }
}

pub fn limits_and_order(store: &dyn Store) {
    // max_concurrent = 1: the older run goes first, the other waits for the slot.
    let s = sop("single");
    queued(store, "a", &s, T0);
    queued(store, "b", &s, T0 + 1);
    assert!(matches!(blocked(store, "b", 10), Blocked::Behind { .. }));
    assert_eq!(status(store, "b"), RunStatus::Queued);
    claim(store, "a", 10, T0 + 2);
    let a = store.load_run("a").expect("load").expect("run");
    assert_eq!(a.status, RunStatus::Running);
    assert_eq!(a.started_at, Some(T0 + 2));
    assert_eq!(
        store
            .events_since("a", 0)
            .expect("events")
            .last()
            .map(|e| &e.event),
        Some(&Happened::Started)
    );
    assert_eq!(
        blocked(store, "b", 10),
        Blocked::SlotsHeld {
            by: vec!["a".into()],
            max_concurrent: 1
        }
    );
    assert_eq!(status(store, "b"), RunStatus::Queued);

    // Claiming a run that is not queued changes nothing.
    let events = event_count(store, "a");
    assert_eq!(store.claim("a", 10, T0 + 3).expect("claim"), Ok(()));
    assert_eq!(event_count(store, "a"), events);
    assert_eq!(
        store.load_run("a").expect("load").expect("run").started_at,
        Some(T0 + 2)
    );

    // Priority first, then age. `b` (older, medium) is blocked by its own SOP's slot, so
    // it does not hold back runs behind it.
    let p = sop("many").with_max(10);
    create(
        store,
        new_run("low", p.clone(), Some(Priority::Low), T0 + 10),
        T0 + 10,
    );
    create(
        store,
        new_run("crit", p.clone(), Some(Priority::Critical), T0 + 20),
        T0 + 20,
    );
    queued(store, "med1", &p, T0 + 30);
    queued(store, "med2", &p, T0 + 31);
    assert!(matches!(blocked(store, "low", 10), Blocked::Behind { .. }));
    assert!(matches!(blocked(store, "med1", 10), Blocked::Behind { .. }));
    assert!(matches!(blocked(store, "med2", 10), Blocked::Behind { .. }));
    claim(store, "crit", 10, T0 + 40);
    assert!(matches!(blocked(store, "med2", 10), Blocked::Behind { .. }));
    assert!(matches!(blocked(store, "low", 10), Blocked::Behind { .. }));
    claim(store, "med1", 10, T0 + 41);
    assert!(matches!(blocked(store, "low", 10), Blocked::Behind { .. }));
    claim(store, "med2", 10, T0 + 42);
    claim(store, "low", 10, T0 + 43);
    assert_eq!(status(store, "b"), RunStatus::Queued);

    // The node's workers: five runs execute now.
    queued(store, "other", &sop("other"), T0 + 50);
    assert_eq!(
        blocked(store, "other", 5),
        Blocked::WorkersBusy { workers: 5 }
    );
    assert_eq!(
        blocked(store, "b", 5),
        Blocked::WorkersBusy { workers: 5 },
        "workers are checked before the SOP's slots"
    );
    claim(store, "other", 6, T0 + 51);
    assert_eq!(status(store, "other"), RunStatus::Running);
}

pub fn preview_matches_claim(store: &dyn Store) {
    let s = sop("single");
    queued(store, "a", &s, T0);
    queued(store, "b", &s, T0 + 1);
    queued(store, "x", &sop("x"), T0 + 2);

    let preview = |id: &str, workers: u32| {
        let counter = store.change_counter().expect("counter");
        let before = store.load_run(id).expect("load");
        let p = store.claim_preview(id, workers, T0 + 5).expect("preview");
        assert_eq!(store.change_counter().expect("counter"), counter);
        assert_eq!(store.load_run(id).expect("load"), before);
        p
    };
    // Behind: `a` can start before `b`.
    let p = preview("b", 4);
    assert!(matches!(p, Some(Blocked::Behind { .. })), "{p:?}");
    assert_eq!(store.claim("b", 4, T0 + 5).expect("claim").err(), p);
    // Nothing blocks `a`.
    assert_eq!(preview("a", 4), None);
    claim(store, "a", 4, T0 + 6);
    // Slot held.
    let p = preview("b", 4);
    assert_eq!(
        p,
        Some(Blocked::SlotsHeld {
            by: vec!["a".into()],
            max_concurrent: 1
        })
    );
    assert_eq!(store.claim("b", 4, T0 + 7).expect("claim").err(), p);
    // Workers busy.
    let p = preview("x", 1);
    assert_eq!(p, Some(Blocked::WorkersBusy { workers: 1 }));
    assert_eq!(store.claim("x", 1, T0 + 8).expect("claim").err(), p);
    assert_eq!(preview("x", 2), None);
    claim(store, "x", 2, T0 + 9);
}

pub fn behind_position(store: &dyn Store) {
    let s = sop("single");
    queued(store, "a", &s, T0);
    queued(store, "b", &s, T0 + 1);
    queued(store, "c", &s, T0 + 2);
    assert_eq!(
        store.claim_preview("b", 4, T0 + 3).expect("preview"),
        Some(Blocked::Behind { position: 2 }),
        "`b` is second in the queue"
    );
    assert_eq!(
        store.claim_preview("c", 4, T0 + 3).expect("preview"),
        Some(Blocked::Behind { position: 3 }),
        "`c` is third in the queue"
    );
}

/// Claims and advances a supervised run to its start gate.
fn to_gate(store: &dyn Store, id: &str, now: i64) {
    claim(store, id, 4, now);
    assert!(matches!(advance(store, id, now), Action::Wait { .. }));
    assert_eq!(status(store, id), RunStatus::WaitingApproval);
}

pub fn waiting_and_hold(store: &dyn Store) {
    // A run waiting at a gate holds no max_concurrent slot.
    let sup = sop("sup").with(|s| s.execution_mode = ExecutionMode::Supervised);
    queued(store, "w", &sup, T0);
    to_gate(store, "w", T0 + 1);
    queued(store, "x", &sup, T0 + 2);
    claim(store, "x", 4, T0 + 3);

    // hold: queued until no run of the SOP is active or waiting.
    let hold = sop("hold").with_max(5).with(|s| {
        s.execution_mode = ExecutionMode::Supervised;
        s.admission_policy = AdmissionPolicy::Hold;
    });
    queued(store, "h1", &hold, T0 + 10);
    to_gate(store, "h1", T0 + 11);
    queued(store, "h2", &hold, T0 + 12);
    assert_eq!(blocked(store, "h2", 10), Blocked::Held { active: 1 });
    assert_eq!(
        store.claim_preview("h2", 10, T0 + 13).expect("preview"),
        Some(Blocked::Held { active: 1 })
    );
    // The held-back run's own return from its gate is not held.
    approve(store, "h1", T0 + 14);
    assert_eq!(status(store, "h1"), RunStatus::Queued);
    claim(store, "h1", 10, T0 + 15);
    cancel(store, "h1", T0 + 16);
    claim(store, "h2", 10, T0 + 17);

    // max_pending_approvals: new runs stay queued while enough runs wait at a gate.
    let pend = sop("pend").with_max(5).with(|s| {
        s.execution_mode = ExecutionMode::Supervised;
        s.max_pending_approvals = 1;
    });
    queued(store, "p1", &pend, T0 + 20);
    to_gate(store, "p1", T0 + 21);
    queued(store, "p2", &pend, T0 + 22);
    assert_eq!(
        blocked(store, "p2", 10),
        Blocked::PendingApprovals { waiting: 1, max: 1 }
    );
    approve(store, "p1", T0 + 23);
    claim(store, "p1", 10, T0 + 24);
    claim(store, "p2", 10, T0 + 25);
}

pub fn claim_and_walk(store: &dyn Store) {
    let s = sop("single");
    queued(store, "a", &s, T0);
    queued(store, "b", &s, T0 + 1);
    let mut walk = |run: &mut sop_core::run::Run, ev: &mut Vec<Happened>| {
        assert_eq!(
            run.status,
            RunStatus::Running,
            "`then` sees the claimed run"
        );
        assert!(matches!(
            sop_core::run::advance(run, T0 + 2, ev),
            Action::Spawn(_)
        ));
        Ok(())
    };
    // Blocked (`a` is ahead): nothing happens, `then` is not called.
    let counter = store.change_counter().expect("counter");
    let blocked = store
        .claim_and("b", 4, T0 + 2, &mut walk)
        .expect("claim_and");
    assert!(
        matches!(blocked, Err(Blocked::Behind { .. })),
        "{blocked:?}"
    );
    assert_eq!(store.change_counter().expect("counter"), counter);
    // Claimed and walked in one commit: the counter moves once, the step has started.
    let run = store
        .claim_and("a", 4, T0 + 2, &mut walk)
        .expect("claim_and")
        .expect("not blocked")
        .expect("it was queued");
    assert_eq!(store.change_counter().expect("counter"), counter + 1);
    assert_eq!(store.load_run("a").expect("load"), Some(run.clone()));
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.steps[0].status, sop_core::run::StepStatus::Running);
    let events: Vec<_> = store
        .events_since("a", 0)
        .expect("events")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.iter().any(|e| matches!(e, Happened::Started)));
    assert!(events
        .iter()
        .any(|e| matches!(e, Happened::StepStarted { .. })));
    // Not queued any more: nothing to do.
    let again = store
        .claim_and("a", 4, T0 + 3, &mut walk)
        .expect("claim_and");
    assert!(matches!(again, Ok(None)));
    assert_eq!(store.change_counter().expect("counter"), counter + 1);
    // A refusing `then` keeps the claim alone.
    store
        .update_run("a", T0 + 4, &mut |r, ev| {
            sop_core::run::halt(r, "done for the test", T0 + 4, ev);
            Ok(())
        })
        .expect("update")
        .expect("not refused");
    let run = store
        .claim_and("b", 4, T0 + 5, &mut |_, _| {
            Err(sop_core::run::Refusal::NotWaiting {
                run: "b".into(),
                status: "running",
                wanted: "a test",
            })
        })
        .expect("claim_and")
        .expect("not blocked")
        .expect("it was queued");
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.steps[0].status, sop_core::run::StepStatus::Pending);
}
