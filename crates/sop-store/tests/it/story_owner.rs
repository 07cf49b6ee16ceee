//! Stories about ownership: which process drives a run.

use std::sync::Barrier;

use sop_store::{Owner, Store, StoreError};

use crate::fixture::{queued, sop};

const T0: i64 = 1_700_000_000_000;

fn owner(pid: u32) -> Owner {
    Owner {
        pid,
        start_time: u64::from(pid) * 1_000,
    }
}

fn current(store: &dyn Store, id: &str) -> Option<Owner> {
    store.run_row(id).expect("row").expect("a row").owner
}

pub fn acquire_and_release(store: &dyn Store) {
    queued(store, "r", &sop("deploy"), T0);
    assert_eq!(current(store, "r"), None);
    let dead = owner(1);
    assert_eq!(store.acquire("r", dead, &|_| true).expect("acquire"), dead);
    assert_eq!(current(store, "r"), Some(dead));
    // Acquiring again as the same owner is fine.
    assert_eq!(store.acquire("r", dead, &|_| true).expect("acquire"), dead);

    // Eight processes race for the run of a dead owner: exactly one wins, and every loser
    // is told who did.
    let contenders: Vec<Owner> = (100..108).map(owner).collect();
    let alive = move |o: Owner| o != dead;
    let barrier = Barrier::new(contenders.len());
    let answers: Vec<(Owner, Owner)> = std::thread::scope(|s| {
        let handles: Vec<_> = contenders
            .iter()
            .map(|&me| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    (me, store.acquire("r", me, &alive).expect("acquire"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let winners: Vec<Owner> = answers
        .iter()
        .filter(|(me, got)| me == got)
        .map(|(me, _)| *me)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {answers:?}");
    let winner = winners[0];
    assert!(
        answers.iter().all(|(_, got)| *got == winner),
        "losers are told the winner: {answers:?}"
    );
    assert_eq!(current(store, "r"), Some(winner));

    // The live owner keeps it; a process whose pid matches but start time differs
    // (a reused pid) is a different process.
    let late = owner(200);
    assert_eq!(store.acquire("r", late, &alive).expect("acquire"), winner);
    let reused = Owner {
        pid: winner.pid,
        start_time: 7,
    };
    assert_eq!(store.acquire("r", reused, &alive).expect("acquire"), winner);
    assert_eq!(current(store, "r"), Some(winner));

    // release clears only the caller's own ownership.
    store.release("r", late).expect("release");
    store.release("r", reused).expect("release");
    assert_eq!(current(store, "r"), Some(winner));
    store.release("r", winner).expect("release");
    assert_eq!(current(store, "r"), None);
    // With no owner, anyone acquires.
    assert_eq!(store.acquire("r", late, &|_| true).expect("acquire"), late);
    assert_eq!(current(store, "r"), Some(late));

    // Ownership is per run.
    queued(store, "s", &sop("other"), T0 + 1);
    assert_eq!(current(store, "s"), None);
    assert_eq!(store.acquire("s", winner, &alive).expect("acquire"), winner);
    assert_eq!(current(store, "r"), Some(late));

    assert!(matches!(
        store.acquire("nope", late, &|_| true),
        Err(StoreError::NoSuchRun(_))
    ));
}

pub fn an_ended_run_has_no_owner(store: &dyn Store) {
    queued(store, "e", &sop("deploy"), T0);
    let me = owner(300);
    assert_eq!(store.acquire("e", me, &|_| true).expect("acquire"), me);
    crate::fixture::start_step(store, "e", T0 + 1);
    assert_eq!(
        current(store, "e"),
        Some(me),
        "a running run keeps its driver"
    );
    crate::fixture::finish_step(store, "e", 0, T0 + 2);
    assert!(store
        .run_row("e")
        .expect("row")
        .expect("a row")
        .status
        .is_terminal());
    assert_eq!(current(store, "e"), None, "the last transition let it go");
    // Releasing it then writes nothing, and nobody takes an ended run over.
    let counter = store.change_counter().expect("counter");
    store.release("e", me).expect("release");
    assert_eq!(
        store.acquire("e", owner(301), &|_| true).expect("acquire"),
        owner(301)
    );
    assert_eq!(store.change_counter().expect("counter"), counter);
    assert_eq!(current(store, "e"), None);
}
