//! What only the file-backed store has: several handles (processes) on one file, durability
//! across reopen, WAL, and schema versions.

use std::path::{Path, PathBuf};
use std::sync::Barrier;

use sop_core::run::{Happened, RunStatus};
use sop_store::{Owner, SqliteStore, Store, StoreError, Synchronous};

use crate::fixture::{advance, claim, event_count, queued, sop, start_step, SopExt};

const T0: i64 = 1_700_000_000_000;

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sop.db");
    (dir, path)
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, Synchronous::Full).expect("open")
}

#[test]
fn two_handles_on_one_file_see_each_others_commits() {
    let (_dir, path) = db();
    let one = open(&path);
    let two = open(&path);
    let s = sop("deploy");
    queued(&one, "a", &s, T0);
    assert_eq!(
        two.load_run("a").expect("load"),
        one.load_run("a").expect("load"),
        "a commit by one handle is visible to the other"
    );
    let counter = one.change_counter().expect("counter");
    claim(&two, "a", 4, T0 + 1);
    assert_eq!(
        one.run_row("a").expect("row").expect("a row").status,
        RunStatus::Running
    );
    assert_ne!(
        one.change_counter().expect("counter"),
        counter,
        "the other handle's commit moves the counter seen here"
    );
    assert_eq!(
        one.change_counter().expect("counter"),
        two.change_counter().expect("counter")
    );
    // The scheduling decision of one handle binds the other: the slot is taken.
    queued(&one, "b", &s, T0 + 2);
    assert!(one.claim("b", 4, T0 + 3).expect("claim").is_err());
    two.append_output("a", "step 1", 1, "hi\n").expect("output");
    assert_eq!(one.output_since("a", 0).expect("output")[0].text, "hi\n");
}

#[test]
fn concurrent_updates_from_many_handles_lose_nothing() {
    const THREADS: usize = 8;
    const EACH: usize = 25;
    let (_dir, path) = db();
    {
        let store = open(&path);
        queued(&store, "r", &sop("deploy"), T0);
    }
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (barrier, path) = (&barrier, &path);
            s.spawn(move || {
                // Its own connection, as a separate `sop` process would have.
                let store = open(path);
                barrier.wait();
                for i in 0..EACH {
                    store
                        .update_run("r", T0 + 1, &mut |r, ev| {
                            let n: usize = r
                                .vars
                                .get("count")
                                .map_or(0, |v| v.parse().expect("a number"));
                            r.vars.insert("count".into(), (n + 1).to_string());
                            r.vars.insert(format!("t{t}"), (i + 1).to_string());
                            ev.push(Happened::Requeued {
                                reason: format!("t{t}-{i}"),
                            });
                            Ok(())
                        })
                        .expect("update_run")
                        .expect("accepted");
                }
            });
        }
    });
    let store = open(&path);
    let run = store.load_run("r").expect("load").expect("run");
    assert_eq!(
        run.vars.get("count").map(String::as_str),
        Some((THREADS * EACH).to_string().as_str()),
        "every increment survived"
    );
    for t in 0..THREADS {
        assert_eq!(
            run.vars.get(&format!("t{t}")).map(String::as_str),
            Some(EACH.to_string().as_str())
        );
    }
    let events = store.events_since("r", 0).expect("events");
    assert_eq!(events.len(), 1 + THREADS * EACH, "one event per update");
    // Each writer's own events are in its own order in the ledger.
    for t in 0..THREADS {
        let mine: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.event {
                Happened::Requeued { reason } if reason.starts_with(&format!("t{t}-")) => {
                    Some(reason.clone())
                }
                _ => None,
            })
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("t{t}-{i}")).collect();
        assert_eq!(mine, expected);
    }
}

#[test]
fn concurrent_claims_from_many_handles_respect_max_concurrent() {
    let (_dir, path) = db();
    let ids: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    {
        let store = open(&path);
        for (i, id) in ids.iter().enumerate() {
            queued(&store, id, &sop("deploy").with_max(2), T0 + i as i64);
        }
    }
    let barrier = Barrier::new(ids.len());
    let won: usize = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (barrier, path) = (&barrier, &path);
                s.spawn(move || {
                    let store = open(path);
                    barrier.wait();
                    usize::from(store.claim(id, 100, T0 + 100).expect("claim").is_ok())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    let store = open(&path);
    let running = store
        .active_runs()
        .expect("active")
        .into_iter()
        .filter(|r| r.status == RunStatus::Running)
        .count();
    assert!(
        (1..=2).contains(&won),
        "{won} claims succeeded with max_concurrent = 2"
    );
    assert_eq!(
        store.run_row("r0").expect("row").expect("a row").status,
        RunStatus::Running,
        "the oldest run always gets a slot"
    );
    assert_eq!(running, won);
}

#[test]
fn reopening_the_file_keeps_everything() {
    let (_dir, path) = db();
    let owner = Owner {
        pid: 9,
        start_time: 99,
    };
    let (run, events, output, counter) = {
        let store = open(&path);
        queued(&store, "a", &sop("deploy"), T0);
        start_step(&store, "a", T0 + 1);
        store.acquire("a", owner, &|_| true).expect("acquire");
        store
            .append_output("a", "step 1", 1, "kept\n")
            .expect("output");
        (
            store.load_run("a").expect("load").expect("run"),
            event_count(&store, "a"),
            store.output_since("a", 0).expect("output").len(),
            store.change_counter().expect("counter"),
        )
    };
    // The write-ahead log outlives the handle (no checkpoint on close): the next process
    // writes over it instead of growing a new file.
    let wal = path.with_extension("db-wal");
    assert!(
        std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
        "the log is kept at close"
    );
    let store = open(&path);
    assert_eq!(store.load_run("a").expect("load"), Some(run));
    assert_eq!(event_count(&store, "a"), events);
    assert_eq!(store.output_since("a", 0).expect("output").len(), output);
    assert_eq!(store.change_counter().expect("counter"), counter);
    let row = store.run_row("a").expect("row").expect("a row");
    assert_eq!(row.owner, Some(owner));
    assert_eq!(row.status, RunStatus::Running);
    // And it keeps working: the run goes on in the reopened store.
    assert!(matches!(
        advance(&store, "a", T0 + 2),
        sop_core::run::Action::Interrupted
    ));
}

#[test]
fn the_database_is_in_wal_mode_with_the_schema_version_set() {
    let (_dir, path) = db();
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 3);
    drop(conn);
    // Opening again does not re-run the schema (which would fail on existing tables).
    drop(open(&path));
    drop(SqliteStore::open(&path, Synchronous::Normal).expect("open normal"));
}

#[test]
fn a_database_from_a_newer_sop_is_refused() {
    let (_dir, path) = db();
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.pragma_update(None, "user_version", 99)
        .expect("user_version");
    drop(conn);
    match SqliteStore::open(&path, Synchronous::Full) {
        Err(StoreError::TooNew { found, known }) => {
            assert_eq!((found, known), (99, 3));
        }
        Err(e) => panic!("expected TooNew, got {e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
}

#[test]
fn a_database_that_cannot_be_created_is_an_open_error() {
    let (dir, _) = db();
    let path = dir.path().join("missing-dir").join("sop.db");
    match SqliteStore::open(&path, Synchronous::Full) {
        Err(e @ StoreError::Open { .. }) => {
            assert!(e.to_string().contains("missing-dir"), "{e}");
        }
        Err(e) => panic!("expected an open error, got {e}"),
        Ok(_) => panic!("opened a database in a missing directory"),
    }
}

/// A SOP with three steps, so a run has records that change and records that do not.
fn three_steps() -> sop_core::Sop {
    let mut s = sop("deploy");
    let step = s.steps[0].clone();
    s.steps = (1..=3)
        .map(|n| sop_core::Step {
            number: n,
            title: format!("step {n}"),
            ..step.clone()
        })
        .collect();
    s
}

#[test]
fn a_version_1_database_is_migrated_and_its_runs_go_on() {
    let (_dir, path) = db();
    // A run in the middle of its second step, as this build stores it...
    let expected = {
        let scratch = tempfile::tempdir().expect("temp dir");
        let store = open(&scratch.path().join("sop.db"));
        queued(&store, "a", &three_steps(), T0);
        start_step(&store, "a", T0 + 1);
        assert!(matches!(
            crate::fixture::finish_step(&store, "a", 0, T0 + 2),
            sop_core::run::Action::Spawn(_)
        ));
        store.load_run("a").expect("load").expect("run a")
    };
    // ...written the way version 1 did: the whole run as one JSON document.
    let mut whole = serde_json::to_value(&expected).expect("head");
    let fields = whole.as_object_mut().expect("an object");
    fields.insert(
        "sop".into(),
        serde_json::to_value(&*expected.sop).expect("sop"),
    );
    fields.insert(
        "steps".into(),
        serde_json::to_value(&expected.steps).expect("steps"),
    );
    fields.insert("rollback".into(), serde_json::json!([]));
    fields.insert("gates".into(), serde_json::json!({}));
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(include_str!("../../src/sqlite/migrations/v1.sql"))
        .expect("version 1 schema");
    conn.pragma_update(None, "user_version", 1)
        .expect("user_version");
    conn.execute(
        "INSERT INTO runs (id, sop, status, priority, created_at, started_at, executed_step, limits, version, audit_path, doc)
         VALUES ('a', 'deploy', 'running', 1, ?1, ?2, 1, ?3, 7, 'logs/a.json', ?4)",
        rusqlite::params![
            T0,
            T0 + 1,
            r#"{"cooldown_secs":0,"max_concurrent":1,"admission":"parallel","max_pending_approvals":0}"#,
            whole.to_string()
        ],
    )
    .expect("a version 1 run");
    let created = serde_json::to_string(&Happened::Requeued {
        reason: "created".into(),
    })
    .expect("event");
    conn.execute(
        "INSERT INTO events (run_id, at, body) VALUES ('a', ?1, ?2)",
        rusqlite::params![T0, created],
    )
    .expect("a version 1 event");
    drop(conn);

    let store = open(&path);
    assert_eq!(
        store.load_run("a").expect("load").expect("run a"),
        expected,
        "the migrated run reads back as it was"
    );
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 3);
    let records: i64 = conn
        .query_row(
            "SELECT count(*) FROM run_records WHERE run_id = 'a'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(records, 3, "one row per step record");
    // A sop of schema 1 still running on the home cannot add whole runs any more.
    let refused = conn
        .execute(
            "INSERT INTO runs (id, sop, status, priority, created_at, limits, version, doc)
             VALUES ('old', 'deploy', 'queued', 1, 1, '{}', 1, '{}')",
            [],
        )
        .expect_err("an old writer is refused");
    assert!(refused.to_string().contains("schema 2"), "{refused}");
    let events = store.events_since("a", 0).expect("events");
    assert_eq!(events.len(), 1, "the ledger is carried over");
    assert!(matches!(events[0].event, Happened::Requeued { .. }));
    // And the run goes on: its second step ends, the third starts.
    assert!(matches!(
        crate::fixture::finish_step(&store, "a", 0, T0 + 5),
        sop_core::run::Action::Spawn(_)
    ));
    let after = open(&path).load_run("a").expect("load").expect("run a");
    assert_eq!(after.steps[1].status, sop_core::run::StepStatus::Success);
    assert_eq!(
        after.steps[0], expected.steps[0],
        "an untouched record is kept"
    );
}

#[test]
fn runs_of_one_sop_share_one_stored_snapshot() {
    let (_dir, path) = db();
    let store = open(&path);
    // Equal content in separate values (as two loads of the SOP files give) is one snapshot.
    queued(&store, "a", &three_steps(), T0);
    queued(&store, "b", &three_steps(), T0 + 1);
    queued(&store, "c", &sop("other"), T0 + 2);
    let conn = rusqlite::Connection::open(&path).expect("open");
    let snapshots: i64 = conn
        .query_row("SELECT count(*) FROM sop_snapshots", [], |r| r.get(0))
        .expect("count");
    assert_eq!(snapshots, 2);
    // A fresh handle (no cache) reads each run with its own SOP.
    let fresh = open(&path);
    assert_eq!(
        fresh
            .load_run("b")
            .expect("load")
            .expect("b")
            .sop
            .steps
            .len(),
        3
    );
    assert_eq!(
        fresh.load_run("c").expect("load").expect("c").sop.name,
        "other"
    );
}

#[test]
fn concurrent_creates_on_one_handle_are_committed_together_and_admitted_in_order() {
    let (_dir, path) = db();
    let store = open(&path);
    let coalescing =
        sop("deploy").with(|s| s.admission_policy = sop_core::AdmissionPolicy::Coalesce);
    let barrier = Barrier::new(16);
    let answers: Vec<sop_store::Created> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (barrier, store, coalescing) = (&barrier, &store, &coalescing);
                s.spawn(move || {
                    let run =
                        crate::fixture::new_run(&format!("r{i}"), coalescing.clone(), None, T0);
                    barrier.wait();
                    store
                        .create_run(run, &format!("logs/r{i}.json"), None, T0 + 1)
                        .expect("create")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    // One run is created; every other request, in whatever batch it was, coalesces onto it.
    let created: Vec<String> = answers
        .iter()
        .filter_map(|a| match a {
            sop_store::Created::New(run) => Some(run.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    for a in &answers {
        if let sop_store::Created::NotCreated(why) = a {
            assert_eq!(
                *why,
                sop_core::policy::Admission::Coalesce {
                    run_id: created[0].clone()
                }
            );
        }
    }
    // Committed: a fresh handle sees exactly that run.
    let fresh = open(&path);
    assert!(fresh.load_run(&created[0]).expect("load").is_some());
    assert_eq!(fresh.active_runs().expect("active").len(), 1);
}

#[test]
fn a_create_that_fails_takes_its_batch_down_and_no_caller_is_misinformed() {
    let (_dir, path) = db();
    let store = open(&path);
    // A trigger stands in for a disk that fails while `r3` is written: like a full disk, it
    // rolls the whole transaction back.
    rusqlite::Connection::open(&path)
        .expect("open")
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON runs WHEN NEW.id = 'r3'
             BEGIN SELECT RAISE(ROLLBACK, 'disk trouble'); END;",
        )
        .expect("trigger");
    let barrier = Barrier::new(8);
    let answers: Vec<(String, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (barrier, store) = (&barrier, &store);
                s.spawn(move || {
                    let id = format!("r{i}");
                    let run = crate::fixture::new_run(&id, sop("deploy").with_max(10), None, T0);
                    barrier.wait();
                    let created = store.create_run(run, &format!("logs/{id}.json"), None, T0);
                    (id, created.is_ok())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let fresh = open(&path);
    for (id, told_created) in &answers {
        let exists = fresh.load_run(id).expect("load").is_some();
        assert_eq!(
            exists, *told_created,
            "{id}: told {told_created}, stored {exists}"
        );
    }
    assert!(answers.iter().any(|(id, ok)| id == "r3" && !ok));
}

#[test]
#[allow(clippy::many_single_char_names)] // runs a to f, as in the other stories
fn a_run_that_ends_hands_its_slot_to_the_next_run_in_the_same_commit() {
    use sop_core::run::{self, Action};
    use sop_store::Successor;
    let (_dir, path) = db();
    let store = open(&path);
    let s = sop("single"); // max_concurrent = 1
    queued(&store, "a", &s, T0);
    queued(&store, "b", &s, T0 + 1);
    queued(&store, "c", &s, T0 + 2);
    start_step(&store, "a", T0 + 3);
    let me = Owner {
        pid: 7,
        start_time: 70,
    };
    let other = Owner {
        pid: 8,
        start_time: 80,
    };
    let alive = |o: Owner| o == other;
    let wanted = || true;
    let next = |id| Successor {
        id,
        me,
        is_alive: &alive,
        workers: 4,
        wanted: &wanted,
    };
    let status = |id| store.run_row(id).expect("row").expect("a row").status;
    let walked = std::cell::RefCell::new(Action::Claim);
    let mut walk = |r: &mut run::Run, ev: &mut Vec<Happened>| {
        *walked.borrow_mut() = run::advance(r, T0 + 9, ev);
        Ok(())
    };

    // A change that does not end `a`: `b` is not touched.
    let (a, b) = store
        .update_run_then_claim(
            "a",
            T0 + 4,
            &mut |r, _| {
                r.error = Some("noted".into());
                Ok(())
            },
            &next("b"),
            &mut walk,
        )
        .expect("commit");
    assert_eq!(a.expect("accepted").status, RunStatus::Running);
    assert!(b.is_none());
    assert_eq!(status("b"), RunStatus::Queued);

    // `a` ends: `b` takes its slot in the same commit (one change), walked, and `me`'s.
    let counter = store.change_counter().expect("counter");
    let (a, b) = store
        .update_run_then_claim(
            "a",
            T0 + 5,
            &mut |r, ev| {
                run::halt(r, "done", T0 + 5, ev);
                Ok(())
            },
            &next("b"),
            &mut walk,
        )
        .expect("commit");
    assert!(a.expect("accepted").status.is_terminal());
    let b = b.expect("b claimed");
    assert_eq!(b.status, RunStatus::Running);
    assert!(matches!(*walked.borrow(), Action::Spawn(_)), "{walked:?}");
    assert_eq!(store.change_counter().expect("counter"), counter + 1);
    assert_eq!(store.run_row("b").expect("row").expect("b").owner, Some(me));
    assert_eq!(store.load_run("b").expect("load"), Some(b));

    // `c` belongs to another live process: `b` ends, `c` is left as it was.
    store.acquire("c", other, &alive).expect("acquire");
    let (_, c) = store
        .update_run_then_claim(
            "b",
            T0 + 6,
            &mut |r, ev| {
                run::halt(r, "done", T0 + 6, ev);
                Ok(())
            },
            &next("c"),
            &mut walk,
        )
        .expect("commit");
    assert!(c.is_none());
    assert_eq!(status("c"), RunStatus::Queued);
    assert_eq!(
        store.run_row("c").expect("row").expect("c").owner,
        Some(other)
    );

    // A claimer that stops takes nothing; a run that ends in its own walk is nobody's.
    crate::fixture::cancel(&store, "c", T0 + 7);
    queued(&store, "d", &s, T0 + 7);
    queued(&store, "e", &s, T0 + 8);
    start_step(&store, "d", T0 + 9);
    let stopping = || false;
    let end = |r: &mut run::Run, ev: &mut Vec<Happened>| {
        run::halt(r, "done", T0 + 10, ev);
        Ok(())
    };
    let (_, e) = store
        .update_run_then_claim(
            "d",
            T0 + 10,
            &mut |r, ev| end(r, ev),
            &Successor {
                wanted: &stopping,
                ..next("e")
            },
            &mut walk,
        )
        .expect("commit");
    assert!(e.is_none());
    assert_eq!(status("e"), RunStatus::Queued);
    assert_eq!(store.run_row("e").expect("row").expect("e").owner, None);
    queued(&store, "f", &s, T0 + 11);
    start_step(&store, "e", T0 + 12);
    let (_, f) = store
        .update_run_then_claim(
            "e",
            T0 + 13,
            &mut |r, ev| end(r, ev),
            &next("f"),
            &mut |r, ev| end(r, ev),
        )
        .expect("commit");
    assert!(f.expect("claimed").status.is_terminal());
    assert_eq!(store.run_row("f").expect("row").expect("f").owner, None);
}

#[test]
fn settle_marks_are_kept_per_process_across_reopen_and_ended_runs_are_found_by_event() {
    let (_dir, path) = db();
    let store = open(&path);
    let s = sop("deploy");
    assert_eq!(store.last_event_seq().expect("seq"), 0);
    for (id, at) in [("a", T0), ("b", T0 + 1), ("c", T0 + 2), ("d", T0 + 3)] {
        queued(&store, id, &s, at);
    }
    let before = store.last_event_seq().expect("seq");
    // `b` ends before `a`; `c` ends later; `d` never ends.
    crate::fixture::cancel(&store, "b", T0 + 10);
    crate::fixture::cancel(&store, "a", T0 + 20);
    let between = store.last_event_seq().expect("seq");
    assert!(between > before, "{before} {between}");
    crate::fixture::cancel(&store, "c", T0 + 30);
    assert_eq!(store.ended_since(0).expect("ended"), ["b", "a", "c"]);
    assert_eq!(store.ended_since(before).expect("ended"), ["b", "a", "c"]);
    assert_eq!(store.ended_since(between).expect("ended"), ["c"]);
    let last = store.last_event_seq().expect("seq");
    assert!(store.ended_since(last).expect("ended").is_empty());

    let one = Owner {
        pid: 7,
        start_time: 70,
    };
    let two = Owner {
        pid: 7,
        start_time: 71,
    };
    assert!(store.settle_marks().expect("marks").is_empty());
    store.set_settle_mark(one, Some(before)).expect("set");
    store.set_settle_mark(two, Some(between)).expect("set");
    store.set_settle_mark(one, Some(last)).expect("moved");
    drop(store);
    let store = open(&path);
    let mut marks = store.settle_marks().expect("marks");
    marks.sort_by_key(|(o, _)| o.start_time);
    assert_eq!(marks, [(one, last), (two, between)]);
    store.set_settle_mark(one, None).expect("removed");
    assert_eq!(store.settle_marks().expect("marks"), [(two, between)]);
}

#[test]
fn a_version_2_database_with_runs_gains_the_tables_of_version_3() {
    let (_dir, path) = db();
    {
        let store = open(&path);
        queued(&store, "a", &three_steps(), T0);
        start_step(&store, "a", T0 + 1);
    }
    // Version 3 only added tables: without them, and marked 2, the file is a version 2 one.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(
        "DROP TABLE suppressed_triggers; DROP TABLE notifications; DROP TABLE schedule_fires;
         DROP TABLE schedule_seen; DROP TRIGGER events_need_hash;
         ALTER TABLE events DROP COLUMN hash; PRAGMA user_version = 2;",
    )
    .expect("back to version 2");
    drop(conn);

    let store = open(&path);
    let run = store.load_run("a").expect("load").expect("run a");
    assert_eq!(run.status, RunStatus::Running);
    store
        .record_suppression(&sop_store::Suppression {
            sop: "deploy".into(),
            trigger: "command".into(),
            by: "alice".into(),
            at: T0 + 2,
            cooldown_run: "a".into(),
        })
        .expect("the new table takes rows");
    let (runs, suppressed) = store.metric_facts(None, None).expect("facts");
    assert_eq!((runs.len(), suppressed.len()), (1, 1));
    // The events of version 2 were given their hashes: the chain holds.
    let ledger = store.verify_ledger().expect("ledger");
    assert!(
        ledger.events >= 3 && ledger.first_broken.is_none(),
        "{ledger:?}"
    );
    let conn = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, 3);
}

#[test]
fn the_ledger_is_hash_chained_and_tampering_shows() {
    let (_dir, path) = db();
    {
        let store = open(&path);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            queued(&store, id, &sop("deploy").with_max(5), T0 + i as i64);
            start_step(&store, id, T0 + 10 + i as i64);
        }
        let check = store.verify_ledger().expect("verify");
        assert_eq!(check.first_broken, None);
        assert_eq!(check.events, event_count(&store, "a") as u64 * 3);
        let (seq, hash) = check.head.expect("a head");
        assert_eq!(seq, store.last_event_seq().expect("seq"));
        assert_eq!(hash.len(), 64);
    }
    let conn = rusqlite::Connection::open(&path).expect("open");
    let seqs: Vec<i64> = conn
        .prepare("SELECT seq FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let broken = |sql: &str| -> Option<i64> {
        let scratch = tempfile::tempdir().expect("dir");
        let copy = scratch.path().join("sop.db");
        conn.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
            .expect("copy");
        let tampered = rusqlite::Connection::open(&copy).expect("open copy");
        tampered.execute_batch(sql).expect("tamper");
        drop(tampered);
        open(&copy).verify_ledger().expect("verify").first_broken
    };
    let third = seqs[2];
    // Altered, removed, moved: the chain breaks where it happened.
    assert_eq!(
        broken(&format!(
            "UPDATE events SET body = body || ' ' WHERE seq = {third}"
        )),
        Some(third)
    );
    assert_eq!(
        broken(&format!("DELETE FROM events WHERE seq = {third}")),
        Some(seqs[3])
    );
    assert_eq!(
        broken(&format!(
            "UPDATE events SET run_id = 'c' WHERE seq = {third}; UPDATE events SET at = at + 1 WHERE seq = {}",
            seqs[4]
        )),
        Some(third)
    );
    // Two events swapped (each keeps its hash, moved with it): broken where they were.
    assert_eq!(
        broken(&format!(
            "UPDATE events SET seq = -1 WHERE seq = {a}; UPDATE events SET seq = {a} WHERE seq = {b}; \
             UPDATE events SET seq = {b} WHERE seq = -1",
            a = seqs[1],
            b = seqs[2]
        )),
        Some(seqs[1])
    );
    // An older sop cannot append an event without a hash.
    let err = conn
        .execute(
            "INSERT INTO events (run_id, at, body) VALUES ('a', 1, '{}')",
            [],
        )
        .expect_err("refused");
    assert!(err.to_string().contains("upgraded to schema 3"), "{err}");
}
