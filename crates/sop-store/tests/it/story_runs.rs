//! Stories about the run records themselves: create, load, update, events, output,
//! listings and the change counter.

use sop_core::run::{self, Action, Happened, Refusal, RunStatus, StepStatus};
use sop_core::Priority;
use sop_store::{Created, Owner, RunFilter, Store, StoreError};

use crate::fixture::{
    advance, cancel, claim, create, event_count, finish_step, new_run, queued, sop, start_step,
    SopExt,
};

const T0: i64 = 1_700_000_000_000;

pub fn create_and_load(store: &dyn Store) {
    let run = new_run("r-create", sop("deploy"), Some(Priority::High), T0);
    let owner = Owner {
        pid: 77,
        start_time: 123,
    };
    let created = store
        .create_run(run.clone(), "logs/sop/deploy/x.json", Some(owner), T0)
        .expect("create_run");
    let Created::New(back) = created else {
        panic!("not created: {created:?}");
    };
    assert_eq!(*back, run, "create_run hands back the run it committed");
    assert_eq!(store.load_run("r-create").expect("load"), Some(run.clone()));

    let row = store.run_row("r-create").expect("row").expect("a row");
    assert_eq!(row.sop, "deploy");
    assert_eq!(row.status, RunStatus::Queued);
    assert_eq!(row.priority, Priority::High);
    assert_eq!(row.created_at, T0);
    assert_eq!(row.started_at, None);
    assert_eq!(row.owner, Some(owner));
    assert_eq!(row.audit_path.as_deref(), Some("logs/sop/deploy/x.json"));

    let events = store.events_since("r-create", 0).expect("events");
    assert_eq!(events.len(), 1, "creation is one event: {events:?}");
    assert_eq!(
        events[0].event,
        Happened::Requeued {
            reason: "created".into()
        }
    );
    assert_eq!(events[0].at, T0);

    assert_eq!(store.load_run("nope").expect("load"), None);
    assert!(store.run_row("nope").expect("row").is_none());
    assert!(matches!(
        store.update_run("nope", T0, &mut |_, _| Ok(())),
        Err(StoreError::NoSuchRun(id)) if id == "nope"
    ));
    // Creating the same id twice is an error, not a silent overwrite.
    assert!(store
        .create_run(run.clone(), "again.json", None, T0 + 1)
        .is_err());
    assert_eq!(store.load_run("r-create").expect("load"), Some(run));
}

pub fn update_and_refusal(store: &dyn Store) {
    let s = sop("deploy");
    queued(store, "r1", &s, T0);
    start_step(store, "r1", T0 + 10);
    let running = store.load_run("r1").expect("load").expect("run");
    assert_eq!(running.status, RunStatus::Running);
    assert!(running.executed_step);
    assert_eq!(running.started_at, Some(T0 + 10));
    assert_eq!(running.queue_wait_ms, Some(10));
    let row = store.run_row("r1").expect("row").expect("a row");
    assert_eq!(
        (row.status, row.started_at),
        (RunStatus::Running, Some(T0 + 10)),
        "the queried columns follow the document"
    );

    let counter = store.change_counter().expect("counter");
    let events = event_count(store, "r1");
    let result = store
        .update_run("r1", T0 + 20, &mut |r, ev| {
            // Changes made before the refusal must not be written either.
            r.vars.insert("half".into(), "written".into());
            r.status = RunStatus::Success;
            ev.push(Happened::Started);
            Err(Refusal::NotInterrupted {
                run: r.id.clone(),
                status: "running",
            })
        })
        .expect("update_run");
    assert!(matches!(result, Err(Refusal::NotInterrupted { .. })));
    assert_eq!(
        store.load_run("r1").expect("load"),
        Some(running.clone()),
        "a refused change writes nothing"
    );
    assert_eq!(event_count(store, "r1"), events, "no event for a refusal");
    assert_eq!(store.change_counter().expect("counter"), counter);
    assert_eq!(
        store.run_row("r1").expect("row").expect("a row").status,
        RunStatus::Running
    );

    // A real refusal from the core: resuming a run that is not interrupted.
    let refused = store
        .update_run("r1", T0 + 21, &mut |r, ev| {
            run::resume(r, run::ResumeHow::Retry, "bob", T0 + 21, ev)
        })
        .expect("update_run");
    assert!(matches!(refused, Err(Refusal::NotInterrupted { .. })));
    assert_eq!(store.load_run("r1").expect("load"), Some(running));

    // An accepted change is committed and returned.
    let after = finish_step(store, "r1", 0, T0 + 30);
    assert_eq!(after, Action::Finished(RunStatus::Success));
    let done = store.load_run("r1").expect("load").expect("run");
    assert_eq!(done.status, RunStatus::Success);
    assert_eq!(done.completed_at, Some(T0 + 30));
    assert_eq!(done.steps[0].status, StepStatus::Success);
    let row = store.run_row("r1").expect("row").expect("a row");
    assert_eq!(
        (row.status, row.completed_at),
        (RunStatus::Success, Some(T0 + 30))
    );
}

pub fn event_ledger(store: &dyn Store) {
    let s = sop("deploy");
    queued(store, "a", &s, T0);
    queued(store, "other", &sop("other"), T0 + 1);
    start_step(store, "a", T0 + 2);
    cancel(store, "other", T0 + 3);
    finish_step(store, "a", 0, T0 + 4);

    let events = store.events_since("a", 0).expect("events");
    let kinds: Vec<&Happened> = events.iter().map(|e| &e.event).collect();
    assert_eq!(
        kinds,
        [
            &Happened::Requeued {
                reason: "created".into()
            },
            &Happened::Started,
            &Happened::StepStarted {
                gate: "step 1".into(),
                attempt: 1
            },
            &Happened::StepSpawned {
                gate: "step 1".into(),
                pid: 4242
            },
            &Happened::StepFinished {
                gate: "step 1".into(),
                status: StepStatus::Success,
                exit_code: Some(0)
            },
            &Happened::Finished {
                status: RunStatus::Success
            },
        ]
    );
    assert!(
        events.iter().all(|e| e.run_id == "a"),
        "only run a's events"
    );
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq increases: {events:?}"
    );
    let times: Vec<i64> = events.iter().map(|e| e.at).collect();
    assert_eq!(times, [T0, T0 + 2, T0 + 2, T0 + 4, T0 + 4, T0 + 4]);

    let tail = store.events_since("a", events[2].seq).expect("events");
    assert_eq!(tail.len(), 3);
    assert_eq!(tail[0].seq, events[3].seq);
    let last = events.last().expect("events").seq;
    assert!(store.events_since("a", last).expect("events").is_empty());

    let other: Vec<Happened> = store
        .events_since("other", 0)
        .expect("events")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(
        matches!(
            other.as_slice(),
            [
                Happened::Requeued { .. },
                Happened::CancelRequested { .. },
                Happened::Finished {
                    status: RunStatus::Cancelled
                }
            ]
        ),
        "{other:?}"
    );
    assert!(store.events_since("nope", 0).expect("events").is_empty());
}

pub fn output(store: &dyn Store) {
    let s = sop("deploy");
    queued(store, "a", &s, T0);
    queued(store, "b", &s, T0 + 1);
    store.append_output("a", "step 1", 1, "one\n").expect("out");
    store.append_output("b", "step 1", 1, "b's\n").expect("out");
    store.append_output("a", "step 1", 2, "two\n").expect("out");
    store
        .append_output("a", "rollback step 1", 1, "ünïcode ✓\n")
        .expect("out");

    let chunks = store.output_since("a", 0).expect("output");
    let seen: Vec<(&str, u32, &str)> = chunks
        .iter()
        .map(|c| (c.gate.as_str(), c.attempt, c.text.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("step 1", 1, "one\n"),
            ("step 1", 2, "two\n"),
            ("rollback step 1", 1, "ünïcode ✓\n")
        ]
    );
    assert!(chunks.windows(2).all(|w| w[0].seq < w[1].seq));
    let rest = store.output_since("a", chunks[0].seq).expect("output");
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].text, "two\n");
    let b = store.output_since("b", 0).expect("output");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].text, "b's\n");
    assert!(store.output_since("nope", 0).expect("output").is_empty());
}

pub fn change_counter(store: &dyn Store) {
    let s = sop("deploy");
    let mut last = store.change_counter().expect("counter");
    let mut moved = |what: &str| {
        let now = store.change_counter().expect("counter");
        assert_ne!(now, last, "{what} did not move the change counter");
        last = now;
    };
    queued(store, "a", &s, T0);
    moved("create_run");
    claim(store, "a", 4, T0 + 1);
    moved("claim");
    advance(store, "a", T0 + 2);
    moved("update_run");
    let me = Owner {
        pid: 1,
        start_time: 1,
    };
    store.acquire("a", me, &|_| true).expect("acquire");
    moved("acquire");
    store.release("a", me).expect("release");
    moved("release");
    store.check_writable().expect("writable");
    moved("check_writable");

    // Reads, refusals and blocked claims commit nothing.
    let before = store.change_counter().expect("counter");
    queued(store, "b", &s, T0 + 3);
    let before_b = store.change_counter().expect("counter");
    assert_ne!(before, before_b);
    assert!(store.claim("b", 4, T0 + 4).expect("claim").is_err());
    store.claim_preview("b", 4, T0 + 4).expect("preview");
    store.load_run("b").expect("load");
    store.list_runs(&RunFilter::default()).expect("list");
    store.active_runs().expect("active");
    store.events_since("b", 0).expect("events");
    let _ = store
        .update_run("b", T0 + 5, &mut |r, ev| {
            run::resume(r, run::ResumeHow::Skip, "x", T0 + 5, ev)
        })
        .expect("update_run");
    assert_eq!(
        store.change_counter().expect("counter"),
        before_b,
        "reads, a blocked claim and a refused change must not move the counter"
    );
}

pub fn change_counter_on_output(store: &dyn Store) {
    queued(store, "a", &sop("deploy"), T0);
    let before = store.change_counter().expect("counter");
    store.append_output("a", "step 1", 1, "x\n").expect("out");
    assert_ne!(
        store.change_counter().expect("counter"),
        before,
        "append_output commits, so the change counter must move"
    );
}

pub fn active_runs(store: &dyn Store) {
    let s = sop("deploy").with_max(5);
    queued(store, "done", &s, T0);
    queued(store, "running", &s, T0 + 1);
    queued(store, "interrupted", &s, T0 + 2);
    start_step(store, "done", T0 + 10);
    finish_step(store, "done", 0, T0 + 11);
    start_step(store, "running", T0 + 12);
    start_step(store, "interrupted", T0 + 13);
    store
        .update_run("interrupted", T0 + 14, &mut |r, ev| {
            run::interrupt(r, T0 + 14, ev);
            Ok(())
        })
        .expect("update_run")
        .expect("interrupt");
    queued(store, "low", &s, T0 + 20);
    create(
        store,
        new_run("crit", s.clone(), Some(Priority::Critical), T0 + 21),
        T0 + 21,
    );
    queued(store, "cancelled", &s, T0 + 22);
    cancel(store, "cancelled", T0 + 23);

    let active: Vec<(String, RunStatus)> = store
        .active_runs()
        .expect("active")
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    let expect = |id: &str, st: RunStatus| (id.to_string(), st);
    assert_eq!(
        active,
        [
            expect("crit", RunStatus::Queued),
            expect("running", RunStatus::Running),
            expect("interrupted", RunStatus::Interrupted),
            expect("low", RunStatus::Queued),
        ],
        "non-terminal runs, by priority then age"
    );
}

pub fn listing(store: &dyn Store) {
    let a = sop("alpha").with_max(5);
    let b = sop("beta").with_max(5);
    queued(store, "abc111", &a, T0);
    queued(store, "abc222", &a, T0 + 1);
    queued(store, "abd333", &b, T0 + 2);
    queued(store, "xyz444", &a, T0 + 3);
    cancel(store, "abc222", T0 + 4);

    let ids = |f: RunFilter| -> Vec<String> {
        store
            .list_runs(&f)
            .expect("list")
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(
        ids(RunFilter::default()),
        ["xyz444", "abd333", "abc222", "abc111"],
        "newest first"
    );
    assert_eq!(
        ids(RunFilter {
            sop: Some("alpha".into()),
            ..RunFilter::default()
        }),
        ["xyz444", "abc222", "abc111"]
    );
    assert_eq!(
        ids(RunFilter {
            statuses: vec![RunStatus::Cancelled],
            ..RunFilter::default()
        }),
        ["abc222"]
    );
    assert_eq!(
        ids(RunFilter {
            sop: Some("alpha".into()),
            statuses: vec![RunStatus::Queued, RunStatus::Running],
            limit: None,
        }),
        ["xyz444", "abc111"]
    );
    assert_eq!(
        ids(RunFilter {
            limit: Some(2),
            ..RunFilter::default()
        }),
        ["xyz444", "abd333"]
    );
    assert!(ids(RunFilter {
        sop: Some("gamma".into()),
        ..RunFilter::default()
    })
    .is_empty());

    let find = |p: &str| store.find_run_ids(p).expect("find");
    assert_eq!(find("abc"), ["abc111", "abc222"]);
    assert_eq!(find("abd"), ["abd333"]);
    assert_eq!(find("abc111"), ["abc111"]);
    assert!(find("abc1112").is_empty());
    assert!(find("zzz").is_empty());
    // Prefixes are literal text, not patterns.
    assert!(find("%").is_empty());
    assert!(find("ab_").is_empty());
    assert!(find("ABC").is_empty(), "run ids are case-sensitive");
}
