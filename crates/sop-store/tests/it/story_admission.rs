//! Stories about admission: what `create_run` decides inside its transaction (cooldown,
//! `--force`, `admission_policy = drop | coalesce`).

use sop_core::policy::Admission;
use sop_core::run::{Action, RunStatus};
use sop_core::{AdmissionPolicy, ExecutionMode, Sop};
use sop_store::{Created, RunFilter, Store};

use crate::fixture::{
    advance, approve, cancel, claim, finish_step, new_run, queued, sop, start_step, SopExt,
};

const T0: i64 = 1_700_000_000_000;

fn try_create(store: &dyn Store, id: &str, sop: &Sop, forced: bool, now: i64) -> Created {
    let mut run = new_run(id, sop.clone(), None, now);
    run.forced = forced;
    store
        .create_run(run, &format!("logs/{id}.json"), None, now)
        .expect("create_run")
}

fn refused_with(created: Created) -> Admission {
    match created {
        Created::NotCreated(a) => a,
        Created::New(run) => panic!("run {} was created", run.id),
        Created::AlreadyFired => panic!("no scheduled time was given"),
    }
}

fn run_count(store: &dyn Store, sop: &str) -> usize {
    store
        .list_runs(&RunFilter {
            sop: Some(sop.into()),
            ..RunFilter::default()
        })
        .expect("list")
        .len()
}

/// Approves the start gate of a supervised run, claims it and starts its first step.
fn approve_and_start(store: &dyn Store, id: &str, now: i64) {
    approve(store, id, now);
    claim(store, id, 4, now);
    assert!(matches!(advance(store, id, now), Action::Spawn(_)));
}

pub fn cooldown(store: &dyn Store) {
    let s = sop("deploy").with_max(5).with(|s| {
        s.cooldown_secs = 60;
        s.execution_mode = ExecutionMode::Supervised;
    });
    // A run that started but executed nothing does not anchor a cooldown.
    queued(store, "w", &s, T0);
    claim(store, "w", 4, T0 + 1);
    assert!(matches!(advance(store, "w", T0 + 2), Action::Wait { .. }));
    let w = store.load_run("w").expect("load").expect("run");
    assert_eq!((w.started_at, w.executed_step), (Some(T0 + 1), false));
    assert!(matches!(
        try_create(store, "a", &s, false, T0 + 3),
        Created::New(_)
    ));

    // Once it executes a step, its start (first claim) anchors the cooldown.
    approve_and_start(store, "w", T0 + 5);
    let refusal = refused_with(try_create(store, "b", &s, false, T0 + 10_000));
    assert_eq!(
        refusal,
        Admission::Cooldown {
            remaining_secs: 51,
            run_id: "w".into()
        },
        "60 s from T0+1 leaves 50.001 s, rounded up"
    );
    assert!(
        store.load_run("b").expect("load").is_none(),
        "nothing stored"
    );
    assert_eq!(run_count(store, "deploy"), 2);

    // The last millisecond is still in cooldown; the next one is not.
    assert_eq!(
        refused_with(try_create(store, "b", &s, false, T0 + 60_000)),
        Admission::Cooldown {
            remaining_secs: 1,
            run_id: "w".into()
        }
    );
    // Another SOP is not affected.
    assert!(matches!(
        try_create(store, "other", &sop("other"), false, T0 + 10_000),
        Created::New(_)
    ));

    // --force overrides, and the run records that it was forced.
    let Created::New(forced) = try_create(store, "f", &s, true, T0 + 10_000) else {
        panic!("forced run refused");
    };
    assert!(forced.forced);
    assert!(store.load_run("f").expect("load").expect("run").forced);

    // The anchor is the latest run that executed a step: `a` starts later than `w`.
    claim(store, "a", 4, T0 + 30_000);
    advance(store, "a", T0 + 30_000);
    approve_and_start(store, "a", T0 + 30_001);
    assert_eq!(
        refused_with(try_create(store, "c", &s, false, T0 + 70_000)),
        Admission::Cooldown {
            remaining_secs: 20,
            run_id: "a".into()
        }
    );
    assert!(matches!(
        try_create(store, "d", &s, false, T0 + 90_000),
        Created::New(_)
    ));
}

pub fn drop_policy(store: &dyn Store) {
    let s = sop("busy").with(|s| s.admission_policy = AdmissionPolicy::Drop);
    queued(store, "a", &s, T0);
    // Only executing runs make the SOP busy: a second queued run is accepted.
    assert!(matches!(
        try_create(store, "b", &s, false, T0 + 1),
        Created::New(_)
    ));
    cancel(store, "b", T0 + 2);
    start_step(store, "a", T0 + 3);
    assert_eq!(
        refused_with(try_create(store, "c", &s, false, T0 + 4)),
        Admission::Dropped {
            running: vec!["a".into()]
        }
    );
    assert!(store.load_run("c").expect("load").is_none());
    assert_eq!(run_count(store, "busy"), 2);
    assert_eq!(
        finish_step(store, "a", 0, T0 + 5),
        Action::Finished(RunStatus::Success)
    );
    assert!(matches!(
        try_create(store, "d", &s, false, T0 + 6),
        Created::New(_)
    ));
}

pub fn coalesce(store: &dyn Store) {
    let s = sop("co").with(|s| s.admission_policy = AdmissionPolicy::Coalesce);
    queued(store, "a", &s, T0);
    assert_eq!(
        refused_with(try_create(store, "b", &s, false, T0 + 1)),
        Admission::Coalesce { run_id: "a".into() },
        "folded into the queued run"
    );
    start_step(store, "a", T0 + 2);
    assert_eq!(
        refused_with(try_create(store, "c", &s, false, T0 + 3)),
        Admission::Coalesce { run_id: "a".into() },
        "folded into the running run"
    );
    assert_eq!(
        run_count(store, "co"),
        1,
        "coalesced requests create nothing"
    );
    finish_step(store, "a", 0, T0 + 4);
    assert!(matches!(
        try_create(store, "d", &s, false, T0 + 5),
        Created::New(_)
    ));
}

/// SPEC §2: the admission policy decides what happens "when a SOP already has
/// `max_concurrent` runs executing". With a slot free, a request is simply accepted.
pub fn coalesce_with_a_free_slot(store: &dyn Store) {
    let s = sop("co")
        .with_max(2)
        .with(|s| s.admission_policy = AdmissionPolicy::Coalesce);
    queued(store, "a", &s, T0);
    start_step(store, "a", T0 + 1);
    assert!(
        matches!(try_create(store, "b", &s, false, T0 + 2), Created::New(_)),
        "one of two slots is free: the run should be accepted, not coalesced"
    );
}
